//! report.html as a browser draws it: a real small run's report and a harness-error run's, rendered in
//! headless Chromium. A script added to a copy of the page measures every chart after layout: each SVG has a
//! size, no element has a negative width, height or radius, every chart has data marks (coloured shapes with
//! a non-empty box, legend samples not counted), and every legend box holds text. Screenshots are kept in
//! `target/report-render/` for people to look at.
//!
//! Skipped with a printed reason when Chromium is missing; under `CI` that is a failure (ci/deps.sh installs
//! the `chromium` package).

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Measures the rendered page and appends the result as JSON in `<pre id="render-check">`.
const PROBE: &str = r#"<script>
(() => {
  const dark = c => !c || c === 'none' || /^#(000000|ffffff)$/i.test(c);
  const charts = [...document.querySelectorAll('svg')].map(svg => {
    const box = svg.getBoundingClientRect();
    const all = [...svg.querySelectorAll('*')];
    const negEls = all.filter(e => ['width', 'height', 'r'].some(a => parseFloat(e.getAttribute(a)) < 0));
    const negative = negEls.map(e => e.outerHTML.slice(0, 120));
    const marks = all.filter(e => {
      if (!['rect', 'polyline', 'circle', 'polygon', 'path'].includes(e.tagName)) return false;
      const colour = e.getAttribute('fill') !== 'none' && !dark(e.getAttribute('fill'))
        ? e.getAttribute('fill') : e.getAttribute('stroke');
      if (dark(colour)) return false;
      const b = e.getBBox();
      const area = e.tagName === 'polyline' || e.tagName === 'path'
        ? b.width > 0 || b.height > 0 : b.width > 0 && b.height > 0;
      if (!area || negEls.includes(e)) return false;
      return !(e.tagName === 'polyline' && b.height === 0 && b.width <= 18); // a legend sample
    }).length;
    const legends = all.filter(e => e.tagName === 'rect' && /^#ffffff$/i.test(e.getAttribute('fill') || '')
      && parseFloat(e.getAttribute('opacity') || e.getAttribute('fill-opacity') || '1') < 1);
    const texts = [...svg.querySelectorAll('text')];
    const emptyLegends = legends.filter(l => {
      const lb = l.getBoundingClientRect();
      return !texts.some(t => {
        const tb = t.getBoundingClientRect();
        return t.textContent.trim() && tb.left >= lb.left - 1 && tb.right <= lb.right + 1
          && tb.top >= lb.top - 1 && tb.bottom <= lb.bottom + 1;
      });
    }).length;
    return { caption: ((texts[0] || {}).textContent || '').trim(), width: box.width, height: box.height, negative, marks,
             legends: legends.length, emptyLegends };
  });
  const legend = [...document.querySelectorAll('.legend span')].filter(s => s.textContent.trim()).length;
  const pre = document.createElement('pre');
  pre.id = 'render-check';
  pre.textContent = JSON.stringify({ charts, legend, failed: [...document.querySelectorAll('p.bad')].some(p => p.textContent.startsWith('chart failed')) });
  document.body.appendChild(pre);
})();
</script>"#;

fn chromium() -> Option<&'static str> {
    let found =
        ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must render report.html: install chromium (ci/deps.sh)");
        eprintln!("SKIP the report render test: no chromium here; ci/deps.sh installs it");
    }
    found
}

fn headless(chromium: &str, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1200,2400",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Render `out/report.html`: the probe's measurements, and a screenshot saved as `target/report-render/NAME.png`.
fn render(chromium: &str, out: &Path, name: &str) -> (Value, PathBuf) {
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let probed = out.join("report-probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let profile = out.join("chromium-profile");
    let dom = headless(chromium, &profile).arg("--dump-dom").arg(format!("file://{}", probed.display())).output();
    let dom = String::from_utf8_lossy(&dom.unwrap().stdout).into_owned();
    let json = dom
        .split("<pre id=\"render-check\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("the probe did not run in {name}'s report:\n{dom}"));
    let json = json.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let dir = root().join("target/report-render");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let shot = headless(chromium, &profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    assert!(png.is_file(), "no screenshot {}: {}", png.display(), text(&shot));
    eprintln!("screenshot of {name}'s report: {}", png.display());
    (serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}")), png)
}

/// Every chart the browser drew is sized, has no negative size, has marks, and no legend box is empty.
fn assert_charts_drawn(name: &str, check: &Value) {
    assert_eq!(check["failed"], false, "{name}: a chart failed to draw");
    assert!(check["legend"].as_u64().unwrap() >= 9, "{name}: the outcome legend lists the outcomes: {check}");
    for c in check["charts"].as_array().unwrap() {
        let cap = c["caption"].as_str().unwrap();
        assert!(c["width"].as_f64().unwrap() > 100.0 && c["height"].as_f64().unwrap() > 100.0, "{name}: {c}");
        assert!(c["negative"].as_array().unwrap().is_empty(), "{name}: {cap}: negative sizes {}", c["negative"]);
        assert!(c["marks"].as_u64().unwrap() >= 1, "{name}: {cap}: a chart without marks: {c}");
        assert_eq!(c["emptyLegends"], 0, "{name}: {cap}: an empty legend: {c}");
    }
}

#[test]
fn a_small_runs_report_renders_with_every_chart_drawn() {
    let Some(chromium) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .args(["run", "scenarios/smoke.toml", "--cycles", "4", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (check, _) = render(chromium, &out, "smoke");
    assert_charts_drawn("smoke", &check);
    let captions: Vec<&str> =
        check["charts"].as_array().unwrap().iter().filter_map(|c| c["caption"].as_str()).collect();
    // Outcomes per backend, one over-the-run chart per backend (smoke runs two), the failure rate.
    assert!(captions.iter().any(|c| c.starts_with("Outcomes per backend")), "{captions:?}");
    for b in ["sqlite", "bdbenv"] {
        assert!(captions.iter().any(|c| c.starts_with(&format!("Outcomes over the run: {b}"))), "{captions:?}");
    }
    assert!(captions.iter().any(|c| c.starts_with("Failure rate")), "{captions:?}");
    // Each over-the-run chart has a legend with text.
    for c in check["charts"].as_array().unwrap() {
        if c["caption"].as_str().unwrap().starts_with("Outcomes over the run") {
            assert!(c["legends"].as_u64().unwrap() >= 1, "{c}");
        }
    }
}

#[test]
fn a_harness_error_runs_report_renders_without_blank_charts() {
    let Some(chromium) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (work, out) = (tmp.path().join("work"), tmp.path().join("out"));
    std::fs::create_dir_all(&work).unwrap();
    // A file where the scheduler makes sqlite's database directory: preparing the databases fails (exit 3).
    std::fs::write(work.join("sqlite"), "in the way").unwrap();
    let o = bin()
        .current_dir(root())
        .args(["run", "scenarios/smoke.toml", "--cycles", "2", "-q"])
        .arg("--workdir")
        .arg(&work)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("No cycle ended: nothing to chart."), "the report says why it has no charts");
    assert!(html.contains("The harness itself failed: ") && html.contains("preparing the databases"), "{html}");
    let (check, _) = render(chromium, &out, "harness-error");
    assert_charts_drawn("harness-error", &check);
    assert!(check["charts"].as_array().unwrap().is_empty(), "no blank chart for a run without cycles: {check}");
}

#[test]
fn the_probe_catches_a_blank_chart_a_negative_bar_and_an_empty_legend() {
    let Some(chromium) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // The shapes of the bugs this test guards against: a bar of width -60, a chart with only its
    // background, a legend box with nothing in it.
    std::fs::write(
        tmp.path().join("report.html"),
        "<!DOCTYPE html><html><body><div class=\"legend\"><span>clean</span></div>\
         <svg width=\"760\" height=\"300\"><rect x=\"0\" y=\"0\" width=\"760\" height=\"300\" fill=\"#FFFFFF\"/>\
         <text x=\"300\" y=\"20\">Outcomes per backend</text>\
         <rect x=\"100\" y=\"50\" width=\"-60\" height=\"100\" fill=\"#2EA043\"/>\
         <rect x=\"60\" y=\"60\" width=\"120\" height=\"40\" fill=\"#FFFFFF\" opacity=\"0.85\"/></svg>\
         </body></html>",
    )
    .unwrap();
    let (check, _) = render(chromium, tmp.path(), "probe-self-test");
    let c = &check["charts"][0];
    assert_eq!(c["negative"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(c["marks"], 0, "{check}");
    assert_eq!(c["emptyLegends"], 1, "{check}");
}
