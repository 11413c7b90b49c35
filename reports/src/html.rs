//! report.html: one self-contained file (inline SVG charts, no scripts, no network) that says at a glance
//! whether a run passed, and where to look when it did not.
//!
//! Why plotters' SVG backend: the report must open from a CI artifact store or a bug report attachment, on a
//! machine without our fonts or the network; SVG text falls back to the browser's sans-serif.

use crate::fold::Timeline;
use crate::model::{Outcome, Summary};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::style::hex;
pub use crate::style::{colour, esc};

type Chart = Result<String, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Axis labels readable at a glance.
const LABEL: (&str, u32) = ("sans-serif", 13);

/// Name of category `i` on a segmented axis (the label sits at the segment's centre).
fn category(names: &[String], v: &SegmentValue<i32>) -> String {
    match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Stacked bars: cycles per outcome, one bar per backend.
fn outcome_bars(s: &Summary) -> Chart {
    let mut buf = String::new();
    let names: Vec<String> = s.outcomes.keys().cloned().collect();
    if names.is_empty() {
        return Ok(String::new());
    }
    {
        let root = SVGBackend::with_string(&mut buf, (760, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = s.outcomes.values().map(|m| m.values().sum::<u64>()).max().unwrap_or(1).max(1);
        // Counts on an integer axis (ticks 0, 1, 2 — never 0.5); one segment per backend, also for one.
        let mut chart = ChartBuilder::on(&root)
            .caption("Outcomes per backend (cycles)", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(names.as_slice().into_segmented(), 0u64..max + max / 20 + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .label_style(LABEL)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(b) => b.to_string(),
                _ => String::new(),
            })
            .y_desc("cycles")
            .draw()
            .map_err(err)?;
        for (i, b) in names.iter().enumerate() {
            let mut y = 0u64;
            for o in Outcome::ALL {
                let c = s.outcomes[b].get(o.name()).copied().unwrap_or(0);
                if c > 0 {
                    let right = names.get(i + 1).map_or(SegmentValue::Last, SegmentValue::Exact);
                    let mut bar = Rectangle::new([(SegmentValue::Exact(b), y), (right, y + c)], colour(o).filled());
                    bar.set_margin(0, 0, 30, 30);
                    chart.draw_series(std::iter::once(bar)).map_err(err)?;
                    y += c;
                }
            }
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// Failure rate per 10,000 kills with its 95% interval, per backend.
fn rate_chart(s: &Summary) -> Chart {
    let mut buf = String::new();
    let rows: Vec<_> = s.per_backend.iter().filter(|(_, t)| t.failure_rate.per_10k.is_some()).collect();
    if rows.is_empty() {
        return Ok(String::new());
    }
    let ymax = rows.iter().filter_map(|(_, t)| t.failure_rate.high_per_10k).fold(1.0f64, f64::max);
    {
        let root = SVGBackend::with_string(&mut buf, (760, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let names: Vec<String> = rows.iter().map(|(b, _)| b.to_string()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption("Failure rate per 10,000 kills (95% Wilson interval)", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d((0..rows.len() as i32 - 1).into_segmented(), 0f64..ymax * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .label_style(LABEL)
            .x_label_formatter(&|v| category(&names, v))
            .y_desc("failing kills / 10k")
            .draw()
            .map_err(err)?;
        for (i, (_, t)) in rows.iter().enumerate() {
            let x = SegmentValue::CenterOf(i as i32);
            let r = &t.failure_rate;
            let (lo, hi, p) = (r.low_per_10k.unwrap_or(0.0), r.high_per_10k.unwrap_or(0.0), r.per_10k.unwrap_or(0.0));
            let c = if r.failing_kills > 0 { colour(Outcome::LostCommit) } else { colour(Outcome::Clean) };
            chart
                .draw_series([PathElement::new(vec![(x.clone(), lo), (x.clone(), hi)], c.stroke_width(2))])
                .map_err(err)?;
            // Whiskers and the estimate, drawn in pixels around the data point.
            for (y, marker) in [(lo, true), (hi, true), (p, false)] {
                let e = EmptyElement::at((x.clone(), y))
                    + if marker {
                        PathElement::new(vec![(-10, 0), (10, 0)], c.stroke_width(2)).into_dyn()
                    } else {
                        Circle::new((0, 0), 5, c.filled()).into_dyn()
                    };
                chart.draw_series(std::iter::once(e)).map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// Memory-cgroup limit hits and pages written out per cycle.
fn memory_chart(t: &Timeline) -> Chart {
    if t.memory.is_empty() {
        return Ok(String::new());
    }
    let mut buf = String::new();
    let mut m: Vec<_> = t.memory.iter().collect();
    m.sort_by_key(|p| p.cycle);
    let xmax = m.last().map(|p| p.cycle as f64 + 1.0).unwrap_or(1.0);
    let hits_max = m.iter().map(|p| p.limit_hits + p.high).max().unwrap_or(1).max(1) as f64;
    let out_max = m.iter().map(|p| p.pageouts).max().unwrap_or(1).max(1) as f64;
    {
        let root = SVGBackend::with_string(&mut buf, (760, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Memory pressure per cycle", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..hits_max * 1.1)
            .map_err(err)?
            .set_secondary_coord(0f64..xmax, 0f64..out_max * 1.1);
        chart.configure_mesh().label_style(LABEL).x_desc("cycle").y_desc("limit + high hits").draw().map_err(err)?;
        chart.configure_secondary_axes().label_style(LABEL).y_desc("pages out").draw().map_err(err)?;
        // One pair of lines per backend: limit hits (solid) and pages out (light, right axis).
        let mut by_backend: BTreeMap<&str, Vec<&crate::fold::MemoryPoint>> = BTreeMap::new();
        for p in &m {
            by_backend.entry(p.backend.as_str()).or_default().push(p);
        }
        let palette = [RGBColor(210, 40, 40), RGBColor(56, 132, 220), RGBColor(140, 60, 180), RGBColor(46, 160, 67)];
        for (i, (b, pts)) in by_backend.iter().enumerate() {
            let c = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.cycle as f64, (p.limit_hits + p.high) as f64)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{b}: limit + high hits"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
            let light = c.mix(0.45);
            chart
                .draw_secondary_series(LineSeries::new(pts.iter().map(|p| (p.cycle as f64, p.pageouts as f64)), light))
                .map_err(err)?
                .label(format!("{b}: pages out (right)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], light));
        }
        let ooms: Vec<_> = m.iter().filter(|p| p.oom_kills > 0).map(|p| (p.cycle as f64, 0.0)).collect();
        let black = colour(Outcome::HarnessError);
        chart
            .draw_series(ooms.into_iter().map(|p| TriangleMarker::new(p, 6, black.filled())))
            .map_err(err)?
            .label("OOM kill")
            .legend(move |(x, y)| TriangleMarker::new((x + 9, y), 5, black.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

fn fmt_rate(r: &crate::model::Rate) -> String {
    match (r.per_10k, r.low_per_10k, r.high_per_10k) {
        (Some(p), Some(l), Some(h)) => format!("{p:.1} [{l:.1}, {h:.1}]"),
        _ => "— (no kills)".into(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:700;margin-right:10px}
.pass{background:#2ea043}.fail{background:#d22828}.meta{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:12px}.bad{color:#d22828;font-weight:600}
.charts svg{display:block;margin:6px 0}.legend span{margin-right:12px;font-size:13px}";

/// The whole report.
pub fn html(s: &Summary, t: &Timeline) -> String {
    let mut h = String::new();
    let pass = s.unexpected == 0 && !s.interrupted;
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dbtorture: {} seed {}</title>\
         <style>{STYLE}</style></head><body>",
        esc(&s.scenario),
        s.seed
    );
    let verdict = if s.interrupted && s.unexpected == 0 {
        "<span class=\"verdict fail\">INTERRUPTED</span>".to_string()
    } else if pass {
        "<span class=\"verdict pass\">PASS</span>".to_string()
    } else {
        format!("<span class=\"verdict fail\">FAIL · {} unexpected</span>", s.unexpected)
    };
    let _ = writeln!(h, "<h1>{verdict}dbtorture · {} · seed {}</h1>", esc(&s.scenario), s.seed);
    let e = &s.environment;
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} cycles · {} kills · {} commits · {:.1} s ({:.1} kills/s) · {} run{} · \
         failure rate {} per 10k kills<br>kernel {} · {} · cgroup {} · {} CPUs · {} MiB{} · dbtorture {} · \
         scenario sha256 {}<br>reproduce: <code>{}</code></p>",
        s.cycles,
        s.kills,
        s.commits,
        s.duration_s,
        s.kills_per_sec,
        s.runs.len(),
        if s.runs.len() == 1 { "" } else { "s (merged)" },
        fmt_rate(&s.failure_rate),
        esc(&e.kernel),
        esc(&e.arch),
        esc(&e.cgroup),
        e.cpus,
        e.mem_total_mb,
        e.guest.as_ref().map(|g| format!(" · guest {}", esc(g))).unwrap_or_default(),
        esc(&s.version),
        esc(&s.scenario_hash),
        esc(&s.replay)
    );

    // Outcomes per backend: table + chart.
    h.push_str("<h2>Outcomes</h2>\n<div class=\"legend\">");
    for o in Outcome::ALL {
        let _ = write!(h, "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>", hex(colour(o)), o.name());
    }
    h.push_str("</div>\n<table><tr><th class=\"l\">backend</th>");
    let used: Vec<Outcome> =
        Outcome::ALL.into_iter().filter(|o| s.outcomes.values().any(|m| m.contains_key(o.name()))).collect();
    for o in &used {
        let _ = write!(h, "<th>{}</th>", o.name());
    }
    h.push_str("<th>kills</th><th>unexpected</th><th>failure rate / 10k kills [95%]</th></tr>\n");
    for (b, m) in &s.outcomes {
        let t = s.per_backend.get(b).cloned().unwrap_or_default();
        let _ = write!(h, "<tr><td class=\"l\">{}</td>", esc(b));
        for o in &used {
            let _ = write!(h, "<td>{}</td>", m.get(o.name()).copied().unwrap_or(0));
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td{}>{}</td><td>{}</td></tr>",
            t.kills,
            if t.unexpected > 0 { " class=\"bad\"" } else { "" },
            t.unexpected,
            fmt_rate(&t.failure_rate)
        );
    }
    h.push_str("</table>\n<div class=\"charts\">\n");
    let mut charts = vec![outcome_bars(s)];
    charts.extend(crate::run_clock::charts(t, &s.backends));
    charts.extend([rate_chart(s), memory_chart(t)]);
    if t.cycles.is_empty() {
        h.push_str("<p class=\"meta\">No cycle ended: nothing to chart.</p>\n");
    }
    for chart in charts.into_iter().filter(|c| c.as_ref().map_or(true, |svg| !svg.is_empty())) {
        match chart {
            Ok(svg) => h.push_str(&svg),
            Err(e) => {
                let _ = write!(h, "<p class=\"bad\">chart failed: {}</p>", esc(&e));
            }
        }
        h.push('\n');
    }
    h.push_str("</div>\n");

    // Failures.
    let _ = writeln!(h, "<h2>Failures ({})</h2>", s.unexpected);
    if let Some(e) = &s.harness_error {
        let _ = writeln!(h, "<p class=\"bad\">The harness itself failed: {}</p>", esc(e));
    }
    if s.failures.is_empty() {
        h.push_str("<p>No cycle ended in an outcome the scenario does not allow.</p>\n");
    } else {
        h.push_str(
            "<table><tr><th>cycle</th><th class=\"l\">backend</th><th class=\"l\">outcome</th>\
             <th class=\"l\">findings</th><th class=\"l\">kills (last crash point)</th><th class=\"l\">bundle</th></tr>\n",
        );
        for f in &s.failures {
            let kills: Vec<String> = f
                .kills
                .iter()
                .map(|k| {
                    format!(
                        "{} {} {}",
                        k.signal,
                        k.trigger,
                        k.last_point.as_ref().map(|p| format!("{p}#{}", k.last_hit.unwrap_or(0))).unwrap_or_default()
                    )
                })
                .collect();
            let findings = f.findings.iter().map(|m| esc(m)).collect::<Vec<_>>().join("<br>")
                + &if f.finding_count > f.findings.len() as u64 {
                    format!("<br>… {} in all", f.finding_count)
                } else {
                    String::new()
                };
            let bundle = match &f.bundle {
                Some(b) => format!(
                    "<a href=\"{0}\">{0}</a><br><code>{1}</code>",
                    esc(b),
                    esc(f.replay.as_deref().unwrap_or(""))
                ),
                None => "—".into(),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\" style=\"color:{}\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                f.cycle,
                esc(&f.backend),
                hex(colour(f.outcome)),
                f.outcome,
                findings,
                esc(&kills.join(", ")),
                bundle
            );
        }
        h.push_str("</table>\n");
        if s.failures_omitted > 0 {
            let _ = writeln!(h, "<p>… and {} more (see events.jsonl).</p>", s.failures_omitted);
        }
    }

    // Kill points × outcomes, gaps included.
    h.push_str(&crate::coverage_table::html(s));

    // Index coverage: rows written per rpm index table.
    if !s.index_rows.is_empty() {
        let never = s.index_rows.values().filter(|&&n| n == 0).count();
        let _ = write!(
            h,
            "<h2>Index coverage</h2>\n<p class=\"meta\">Rows the workload wrote to each rpm index table (the entries of \
             every package a cycle installed or erased); {never} of {} tables never written.</p>\n\
             <table><tr><th class=\"l\">index table</th><th>rows written</th></tr>\n",
            s.index_rows.len()
        );
        for (table, n) in &s.index_rows {
            let style = if *n == 0 { " style=\"background:rgba(220,50,47,0.35)\"" } else { "" };
            let _ = writeln!(h, "<tr><td class=\"l\">{}</td><td{style}>{n}</td></tr>", esc(table));
        }
        h.push_str("</table>\n");
    }

    // Runs.
    h.push_str(
        "<h2>Runs</h2>\n<table><tr><th class=\"l\">scenario</th><th>seed</th><th>shard</th><th>cycles</th>\
                <th>seconds</th><th class=\"l\">environment</th><th class=\"l\">source</th></tr>\n",
    );
    for r in &s.runs {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{:.1}</td><td class=\"l\">{} {} {}</td>\
             <td class=\"l\">{}</td></tr>",
            esc(&r.scenario),
            r.seed,
            r.shard.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
            r.cycles,
            if r.interrupted { " (interrupted)" } else { "" },
            r.duration_s,
            esc(&r.environment.arch),
            esc(&r.environment.kernel),
            esc(r.environment.guest.as_deref().unwrap_or("")),
            esc(r.source.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
