//! "Outcomes over the run": one chart per backend, cumulative cycles per outcome against the run's own clock.
//!
//! Why per backend and on a clock: merging backends by cycle index drew a 2-backend, 40-cycle run as 20 points
//! per outcome (the x axis stopped at 20) and hid which backend went wrong when. Each backend's cycles sit where
//! they ended on the run's clock — the cycles' own `duration_ms` summed in the order the run logged them
//! (merged shards follow one another) — so every backend's chart spans the whole run, and a backend that ran
//! fewer or slower cycles shows it.

use crate::fold::Timeline;
use crate::model::Outcome;
use crate::style::colour;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// A backend's cycles: (end of the cycle on the run clock, outcome).
type Ends = Vec<(f64, Outcome)>;

/// Where each backend's cycles ended on the run clock (ms), and the run clock's end.
pub fn cycle_ends(t: &Timeline) -> (BTreeMap<String, Ends>, f64) {
    let mut clock = 0.0f64;
    let mut by: BTreeMap<String, Ends> = BTreeMap::new();
    for p in &t.cycles {
        clock += p.duration_ms.max(0.0);
        by.entry(p.backend.clone()).or_default().push((clock, p.outcome));
    }
    (by, clock)
}

/// The clock's unit: milliseconds for short runs, seconds otherwise — integers either way (no "0.5" ticks).
fn unit(total_ms: f64) -> (f64, &'static str) {
    if total_ms < 10_000.0 { (1.0, "run time (ms)") } else { (1000.0, "run time (s)") }
}

/// One SVG per backend (in `backends` order, then any others the timeline holds); none without cycles.
pub fn charts(t: &Timeline, backends: &[String]) -> Vec<Result<String, String>> {
    let (by, total_ms) = cycle_ends(t);
    let mut order: Vec<&String> = backends.iter().filter(|b| by.contains_key(*b)).collect();
    order.extend(by.keys().filter(|b| !backends.contains(b)));
    order.into_iter().map(|b| chart(b, &by[b], total_ms)).collect()
}

fn chart(backend: &str, ends: &Ends, total_ms: f64) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (per, desc) = unit(total_ms);
    let xmax = ((total_ms / per).ceil() as u64).max(1);
    let mut series: BTreeMap<Outcome, Vec<(u64, u64)>> = BTreeMap::new();
    for (at, o) in ends {
        let s = series.entry(*o).or_default();
        let n = s.last().map_or(0, |p| p.1) + 1;
        s.push((((at / per).round() as u64).min(xmax), n));
    }
    let ymax = series.values().filter_map(|v| v.last()).map(|p| p.1).max().unwrap_or(1).max(1);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (760, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Outcomes over the run: {backend} (cumulative cycles)"), ("sans-serif", 16))
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0u64..xmax, 0u64..ymax + ymax / 20 + 1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .x_desc(desc)
            .y_desc("cycles")
            .draw()
            .map_err(|e| err(&e))?;
        for (o, mut v) in series {
            // From zero, and on to the end of the run, so a line that stopped growing reads as flat.
            if let Some(&(first, _)) = v.first() {
                v.insert(0, (first, 0));
            }
            if let Some(&(_, last)) = v.last() {
                v.push((xmax, last));
            }
            let c = colour(o);
            chart
                .draw_series(LineSeries::new(v, c.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(o.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}
