//! The report's "Kill points × outcomes" table: every crash point the run's backends can pass — the ones the
//! run never passed and never armed included, flagged — with what kills there led to.
//!
//! Why list the gaps: a table of only the points that were reached reads as complete coverage. A sweep that
//! never reaches libdb's or the rebuild's points must show those rows empty and marked, with their count in the
//! line above the table. The run says which points its backends can pass (`run-start`'s `points`); the fold
//! gives each a row even when nothing happened there.

use crate::model::{Outcome, PointCoverage, Summary};
use crate::style::{colour, esc};
use std::fmt::Write as _;

/// Counts over the table's points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gaps {
    pub points: usize,
    pub passed: usize,
    pub armed: usize,
    pub killed: usize,
    /// Points never passed, in order.
    pub never_passed: Vec<String>,
    /// Points passed but never armed (a kill could have been placed there and was not).
    pub never_armed: Vec<String>,
}

/// The table's rows: every point of the coverage map and every point a kill landed after.
fn rows(s: &Summary) -> Vec<(&String, PointCoverage)> {
    let mut points: Vec<&String> = s.coverage.keys().chain(s.kill_points.keys()).collect();
    points.sort();
    points.dedup();
    points.into_iter().map(|p| (p, s.coverage.get(p).cloned().unwrap_or_default())).collect()
}

/// What the coverage map covers and where its gaps are (only crash points: not "(before any point)").
pub fn gaps(s: &Summary) -> Gaps {
    // `points`/`passed`/`never_*` are crash points only: the I/O kill points' rows (`io:write`, …) count
    // operations, and the terminal line names them apart. `armed`/`killed` are kill points of both kinds.
    let points: Vec<_> = s.coverage.iter().filter(|(p, _)| !p.starts_with("io:")).collect();
    Gaps {
        points: points.len(),
        passed: points.iter().filter(|(_, c)| c.hits > 0).count(),
        armed: s.coverage.values().filter(|c| c.armed > 0).count(),
        killed: s.coverage.values().filter(|c| c.kills > 0).count(),
        never_passed: points.iter().filter(|(_, c)| c.hits == 0).map(|(p, _)| (*p).clone()).collect(),
        never_armed: points.iter().filter(|(_, c)| c.hits > 0 && c.armed == 0).map(|(p, _)| (*p).clone()).collect(),
    }
}

/// Points named inline above the table (the table has every one).
const NAMED: usize = 12;

fn named(points: &[String]) -> String {
    let mut t = points.iter().take(NAMED).map(|p| format!("<code>{}</code>", esc(p))).collect::<Vec<_>>().join(" ");
    if points.len() > NAMED {
        t.push_str(&format!(" … and {} more (marked in the table)", points.len() - NAMED));
    }
    t
}

/// The section, or nothing when the run knows no crash points.
pub fn html(s: &Summary) -> String {
    let mut h = String::new();
    if s.coverage.is_empty() && s.kill_points.is_empty() {
        return h;
    }
    let g = gaps(s);
    let _ = write!(
        h,
        "<h2>Kill points × outcomes</h2>\n<p class=\"meta\">{} of {} crash points passed; {} armed, {} killed at. \
         A cell counts the cycles armed at that point that ended in that outcome; \"random kills\" counts kills at \
         random times that landed after that point.</p>\n",
        g.passed, g.points, g.armed, g.killed
    );
    if !g.never_passed.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"bad\">{} crash point{} never passed (no kill can land there: the workload does not reach \
             {}): {}</p>",
            g.never_passed.len(),
            if g.never_passed.len() == 1 { "" } else { "s" },
            if g.never_passed.len() == 1 { "it" } else { "them" },
            named(&g.never_passed)
        );
    }
    if !g.never_armed.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"meta\">{} passed but never armed (no exact kill there this run).</p>",
            g.never_armed.len()
        );
    }
    h.push_str(
        "<table><tr><th class=\"l\">crash point</th><th>passed</th><th>armed</th><th>killed at</th>\
         <th>random kills</th>",
    );
    let used: Vec<Outcome> =
        Outcome::ALL.into_iter().filter(|o| s.coverage.values().any(|c| c.outcomes.contains_key(o.name()))).collect();
    for o in &used {
        let _ = write!(h, "<th>{}</th>", o.name());
    }
    h.push_str("<th class=\"l\">gap</th></tr>\n");
    let cmax = s.coverage.values().flat_map(|c| c.outcomes.values()).copied().max().unwrap_or(1).max(1) as f64;
    for (p, c) in rows(s) {
        let random = s.kill_points.get(p).copied().unwrap_or(0).saturating_sub(c.kills);
        let known = s.coverage.contains_key(p);
        let gap = if !known {
            ""
        } else if c.hits == 0 {
            "never passed"
        } else if c.armed == 0 {
            "never armed"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{}><td class=\"l\"><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if c.hits == 0 && known { " class=\"bad\"" } else { "" },
            esc(p),
            c.hits,
            c.armed,
            c.kills,
            random
        );
        for o in &used {
            let n = c.outcomes.get(o.name()).copied().unwrap_or(0);
            let col = colour(*o);
            let alpha = if n == 0 { 0.0 } else { 0.15 + 0.6 * (n as f64 / cmax) };
            let _ = write!(
                h,
                "<td style=\"background:rgba({},{},{},{alpha:.2})\">{}</td>",
                col.0,
                col.1,
                col.2,
                if n == 0 { String::new() } else { n.to_string() }
            );
        }
        let _ = writeln!(h, "<td class=\"l\">{gap}</td></tr>");
    }
    h.push_str("</table>\n");
    h
}
