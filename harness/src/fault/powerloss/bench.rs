//! `dbtorture bench power-loss`: crash images judged per second on a 100-package sqlite database (goal
//! ≥ 200/s on 2 cores), and what the recorder costs a cycle (the same cycles run with and without it).

use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use anyhow::Result;
use dbtorture_reports::RunEvent;
use std::path::Path;

fn scenario(power: bool) -> String {
    format!(
        "name = \"bench-power-loss\"\nbackends = [\"sqlite\"]\nseed = 5\n\
         [workload]\npackages = 100\nversions = 2\nfiles_mean = 12\ninitial_fraction = 0.9\nwriters = 2\n\
         readers = 0\ntxns_per_writer = 3\nqueries_per_reader = 0\n\
         [kill]\nmode = \"none\"\n{}\
         [timeouts]\ncycle_ms = 60000\nprobe_ms = 30000\n[expect]\nsqlite = [\"clean\"]\n",
        if power { "[power_loss]\nimages_random = 150\nimages_max = 250\n" } else { "" }
    )
}

/// Mean cycle time (ms), images, wall ms and CPU ms spent judging images — from a run's events.
fn figures(out: &Path) -> Result<(f64, u64, f64, f64)> {
    let (mut cycles, mut ms, mut images, mut judge_ms, mut cpu) = (0u64, 0.0f64, 0u64, 0.0f64, 0.0f64);
    dbtorture_reports::read_events(&out.join("events.jsonl"), |e| match e {
        RunEvent::CycleEnd { duration_ms, .. } => {
            cycles += 1;
            ms += duration_ms;
        }
        RunEvent::CrashImages { tally, elapsed_ms, cpu_ms, .. } => {
            images += tally.images;
            judge_ms += elapsed_ms;
            cpu += cpu_ms;
        }
        _ => {}
    })?;
    Ok((ms / cycles.max(1) as f64, images, judge_ms, cpu))
}

pub fn power_loss() -> Result<()> {
    let tmp = crate::leftovers::scratch("bench")?;
    let mut res = Vec::new();
    for power in [false, true] {
        let path = tmp.path().join(format!("bench-{power}.toml"));
        std::fs::write(&path, scenario(power))?;
        let sc = Scenario::load(&path)?;
        let out = tmp.path().join(format!("out-{power}"));
        run(
            &sc,
            &RunOptions {
                quiet: true,
                cycles: Some(4),
                out: Some(out.clone()),
                no_bundles: true,
                ..Default::default()
            },
        )?;
        res.push(figures(&out)?);
    }
    let ((plain_ms, _, _, _), (rec_ms, images, judge_ms, cpu_ms)) = (res[0], res[1]);
    let per_s = |ms: f64| images as f64 / (ms / 1000.0).max(1e-9);
    println!("power-loss: 100-package sqlite database, 2 writers x 3 transactions, 4 cycles");
    println!(
        "  crash images judged    {images} in {:.2} s: {:.0} images/s wall, {:.0} per CPU-second (model + write + \
         verify + oracle; goal 200/s)",
        judge_ms / 1000.0,
        per_s(judge_ms),
        per_s(cpu_ms)
    );
    let recorded = rec_ms - judge_ms / 4.0;
    println!(
        "  recorder cost          cycle {:.1} ms recorded vs {:.1} ms plain: +{:.1} ms per cycle (mount, log, unmount)",
        recorded,
        plain_ms,
        recorded - plain_ms
    );
    Ok(())
}
