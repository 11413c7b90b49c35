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
        points: Vec::new(),
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

/// The x coordinates of every polyline vertex in `svg`.
fn polyline_xs(svg: &str) -> Vec<f64> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
        .flat_map(|pts| pts.split_whitespace().filter_map(|xy| xy.split(',').next()?.parse().ok()))
        .collect()
}

#[test]
fn outcomes_over_the_run_are_per_backend_and_span_the_whole_run() {
    // 2 backends × 40 cycles of 10 ms, interleaved: the run's clock ends at 800 ms.
    let html = run(&["sqlite", "bdbenv"], 40);
    let mut right_edges = Vec::new();
    for b in ["sqlite", "bdbenv"] {
        let svg = chart(&html, &format!("Outcomes over the run: {b}"));
        let texts: Vec<&str> =
            svg.split("<text").skip(1).filter_map(|t| t.split('>').nth(1)?.split('<').next()).map(str::trim).collect();
        let labels: Vec<f64> = texts.iter().filter_map(|t| t.parse().ok()).collect();
        // The x axis is the run's clock in ms, up to its end (not cycle indices, which stop at 39).
        assert!(svg.contains("run time (ms)"), "{b}: x axis is the run's clock");
        assert!(labels.iter().any(|l| *l >= 700.0), "{b}: the x axis reaches the end of the run: {labels:?}");
        let xs = polyline_xs(svg);
        assert!(!xs.is_empty(), "{b}: the chart has lines");
        right_edges.push(xs.iter().copied().fold(0.0, f64::max));
        // One line per outcome this backend had: clean and recovered, both in the legend.
        assert!(texts.contains(&"clean") && texts.contains(&"recovered"), "{b}: legend {texts:?}");
    }
    // Both backends' lines run to the same right edge: the end of the run.
    assert!((right_edges[0] - right_edges[1]).abs() < 1.0, "{right_edges:?}");
    assert!(!html.contains("Outcomes over the run (cumulative"), "no merged chart by cycle index");
}

#[test]
fn the_run_clock_orders_cycles_as_logged() {
    let mut agg = dbtorture_reports::Aggregate::new();
    for (cycle, b, ms) in [(0, "a", 10.0), (0, "b", 30.0), (1, "a", 5.0)] {
        agg.push(&RunEvent::CycleEnd {
            cycle,
            backend: b.into(),
            outcome: Outcome::Clean,
            expected: true,
            findings: 0,
            commits: 0,
            duration_ms: ms,
            armed: None,
            hits: BTreeMap::new(),
            index_rows: BTreeMap::new(),
        });
    }
    let (by, total) = dbtorture_reports::run_clock::cycle_ends(agg.timeline());
    assert_eq!(total, 45.0);
    assert_eq!(by["a"].iter().map(|e| e.0).collect::<Vec<_>>(), vec![10.0, 45.0]);
    assert_eq!(by["b"].iter().map(|e| e.0).collect::<Vec<_>>(), vec![40.0]);
}
