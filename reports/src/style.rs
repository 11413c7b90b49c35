//! The report's look, shared by every part of report.html (`html.rs`, `coverage_table.rs`, `run_clock.rs`):
//! a colour per outcome and HTML escaping — in a module of its own so the parts need not import each other.

use crate::model::Outcome;
use plotters::style::RGBColor;

/// A colour per outcome: green is good, red is lost data, purple a damaged environment.
pub fn colour(o: Outcome) -> RGBColor {
    match o {
        Outcome::Clean => RGBColor(46, 160, 67),
        Outcome::Recovered => RGBColor(56, 132, 220),
        Outcome::StaleLocks => RGBColor(230, 170, 30),
        Outcome::Inconsistent => RGBColor(235, 110, 30),
        Outcome::LostCommit => RGBColor(210, 40, 40),
        Outcome::CorruptEnv => RGBColor(140, 60, 180),
        Outcome::Hang => RGBColor(120, 120, 120),
        Outcome::Crashed => RGBColor(200, 30, 120),
        Outcome::HarnessError => RGBColor(20, 20, 20),
    }
}

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
