//! The HTML report's charts cannot mislead: a single-backend run's bars have a positive width, count axes
//! have integer ticks (never "2.0"), and the per-cycle chart's x axis spans every cycle of every backend.

use dbtorture_reports::model::Environment;
use dbtorture_reports::{Aggregate, Outcome, RunEvent};
use std::collections::BTreeMap;

fn run(backends: &[&str], cycles: u64) -> String {
    let mut agg = Aggregate::new();
    agg.push(&RunEvent::RunStart {
        schema: dbtorture_reports::SCHEMA_VERSION,
        scenario: "s".into(),
        scenario_hash: "h".into(),
        seed: 1,
        backends: backends.iter().map(|b| b.to_string()).collect(),
        version: "v".into(),
        environment: Environment::default(),
        shard: None,
        replay: "dbtorture run s".into(),
    });
    for cycle in 0..cycles {
        for b in backends {
            agg.push(&RunEvent::CycleStart { cycle, backend: b.to_string(), seed: cycle, plan: String::new() });
            agg.push(&RunEvent::CycleEnd {
                cycle,
                backend: b.to_string(),
                outcome: if cycle % 3 == 0 { Outcome::Recovered } else { Outcome::Clean },
                expected: true,
                findings: 0,
                commits: 1,
                duration_ms: 10.0,
                armed: None,
                hits: BTreeMap::new(),
                index_rows: BTreeMap::new(),
            });
        }
    }
    agg.push(&RunEvent::RunEnd { cycles, unexpected: 0, interrupted: false, duration_s: 1.0, harness_error: None });
    dbtorture_reports::html::html(&agg.summary(), agg.timeline())
}

/// The `<svg>` whose caption contains `caption`.
fn chart<'a>(html: &'a str, caption: &str) -> &'a str {
    let at = html.find(caption).unwrap_or_else(|| panic!("no chart {caption:?}"));
    let start = html[..at].rfind("<svg").unwrap();
    let end = at + html[at..].find("</svg>").unwrap();
    &html[start..end]
}

fn rect_widths(svg: &str) -> Vec<f64> {
    svg.split("<rect").skip(1).filter_map(|r| r.split("width=\"").nth(1)?.split('"').next()?.parse().ok()).collect()
}

#[test]
fn a_single_backend_run_has_visible_bars() {
    let html = run(&["sqlite"], 6);
    let svg = chart(&html, "Outcomes per backend");
    let widths = rect_widths(svg);
    assert!(widths.iter().all(|w| *w >= 0.0), "no negative sizes: {widths:?}");
    // The background and the two outcome segments (clean, recovered), each wider than a hairline.
    assert!(widths.iter().filter(|w| **w > 20.0).count() >= 3, "bars are drawn: {widths:?}");
    // One backend, one bar across the plot (not half of it beside an empty segment).
    assert!(widths.iter().filter(|w| **w < 760.0).any(|w| *w > 400.0), "the bar fills its segment: {widths:?}");
}

#[test]
fn count_axes_have_integer_ticks() {
    let html = run(&["sqlite", "bdbenv"], 4);
    for caption in ["Outcomes per backend", "Outcomes over the run"] {
        let svg = chart(&html, caption);
        let labels: Vec<&str> =
            svg.split("<text").skip(1).filter_map(|t| t.split('>').nth(1)?.split('<').next()).map(str::trim).collect();
        let fractional: Vec<&&str> = labels.iter().filter(|l| l.contains('.') && l.parse::<f64>().is_ok()).collect();
        assert!(labels.len() > 4, "{caption}: the axes are labelled: {labels:?}");
        assert!(fractional.is_empty(), "{caption}: count ticks are integers, got {fractional:?} among {labels:?}");
    }
}
