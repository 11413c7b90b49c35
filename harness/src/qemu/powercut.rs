//! `dbtorture qemu --power-cut`: a real power cut of the ARM guest — the end-to-end check of the crash-image
//! model (`fault::powerloss`) on a real kernel, file system and card.
//!
//! Why SIGKILL of qemu: it is what pulling the plug is to the guest — no signal it could see, no sync, its
//! page cache gone; the SD image file holds exactly what the guest kernel had written back. Per cut: boot
//! with writers committing in a loop (`powercut_guest`), watch their drained console lines (every
//! acknowledged commit and every begun transaction), SIGKILL qemu a seeded time after the first acknowledged
//! commit, then judge a copy of the card (`powercut_judge`: e2fsck, debugfs, verifier + oracle against each
//! engine's power-loss promise). Each backend of each cut is one cycle in the usual out directory (events,
//! summary, JUnit, report); a cut the scenario does not allow keeps its card as evidence.
//!
//! Fixed by the seed: the packages, the transactions (the same in every boot of a run), the cut's delay
//! after the first acknowledged commit. Not fixed: how many commits the guest makes in that delay (host
//! load, emulation speed) and what the guest kernel has written back by then — the point of a real cut.

use super::boot::{PowerSwitch, boot};
use super::console::{KernelTrouble, PREFIX};
use super::guest::Job;
use super::host::{Artifacts, QemuArgs};
use super::powercut_guest::{self as pg, WORD};
use super::powercut_judge::{self as pj, Judged};
use super::results::ExitReason;
use super::{disk, results};
use crate::exit_codes;
use crate::scenario::Scenario;
use crate::scheduler::collect::Collected;
use crate::scheduler::derive_seed;
use anyhow::{Context, Result};
use dbtorture_backends::BackendKind;
use dbtorture_reports::{FaultKind, ImageTally, LostOutcome, Outcome, Role, RunEvent, SCHEMA_VERSION};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `--cut-after MIN..MAX`: the window the cut's delay after the first acknowledged commit is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutWindow {
    pub min: Duration,
    pub max: Duration,
}

impl CutWindow {
    pub fn parse(s: &str) -> Result<CutWindow, String> {
        let (a, b) = s.split_once("..").ok_or_else(|| format!("expected MIN..MAX like 200ms..4s, got {s:?}"))?;
        let d = |v: &str| {
            crate::scenario::parse_duration(v.trim()).ok_or_else(|| format!("{v:?} is not a duration like 500ms or 4s"))
        };
        let (min, max) = (d(a)?, d(b)?);
        if min > max || max > Duration::from_secs(600) {
            return Err(format!("{s:?}: need MIN ≤ MAX ≤ 600s"));
        }
        Ok(CutWindow { min, max })
    }

    /// The delay of cut `cut` of a run with `seed`.
    pub fn draw(&self, seed: u64, cut: u64) -> Duration {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 0xc07c, cut));
        let (lo, hi) = (self.min.as_millis() as u64, self.max.as_millis() as u64);
        Duration::from_millis(rng.random_range(lo..=hi))
    }
}

/// The console during one boot: the writers' messages per backend, and the moment to cut.
struct Switch {
    delay: Duration,
    writers: u32,
    collected: BTreeMap<BackendKind, Collected>,
    first_ack: Option<Instant>,
    /// Writer lines damaged on the serial line: the oracle's log may miss a commit, so the cut is a harness fault.
    damaged: Vec<String>,
    booted: Instant,
}

impl PowerSwitch for Switch {
    fn line(&mut self, line: &str, at: Instant) {
        if !line.contains(&format!("{PREFIX}{WORD} ")) {
            return;
        }
        let Some((kind, w, msg)) = pg::parse(line) else {
            self.damaged.push(line.to_string());
            return;
        };
        let writers = self.writers;
        let c = self.collected.entry(kind).or_insert_with(|| Collected::new(writers));
        let before = c.commits();
        let mut buf = format!("{msg}\n").into_bytes();
        c.take_lines(w, Role::Writer, &mut buf);
        if c.commits() > before && self.first_ack.is_none() {
            self.first_ack = Some(at);
        }
    }

    fn cut_at(&self) -> Option<Instant> {
        self.first_ack.map(|t| t + self.delay)
    }
}

/// cut.json: one cut, what was acknowledged before it, and what each database came to.
#[derive(Debug, Serialize)]
struct CutRecord {
    cut: u64,
    seed: u64,
    delay_ms: u64,
    /// Host seconds from starting qemu: the first acknowledged commit, the kill.
    first_ack_s: Option<f64>,
    cut_at_s: Option<f64>,
    /// No cut: why the boot ended first.
    exit_reason: ExitReason,
    fsck_exit: Option<i32>,
    damaged_lines: usize,
    backends: Vec<BackendRecord>,
    /// Kept because a backend's outcome is not allowed (or --keep-sd): the card as the cut left it.
    evidence: Vec<String>,
}

#[derive(Debug, Serialize)]
struct BackendRecord {
    backend: String,
    acknowledged: usize,
    in_flight: bool,
    outcome: Outcome,
    expected: bool,
    recovered: Option<bool>,
    findings: Vec<String>,
}

/// Run `--cycles` cuts (default 1) of scenario `sc` in the guest; the exit code as `run`'s (plus 4/5 for a
/// guest kernel in trouble / lost before the cut).
pub(super) fn run(a: &QemuArgs, art: &Artifacts, sc: &Scenario, scenario: &Path, text: &str, seed: u64) -> Result<i32> {
    let window = a.cut_after;
    let plant = dbtorture_backends::planted::from_env().map_err(anyhow::Error::msg)?.map(|p| p.name.to_string());
    let kinds = sc.backend_kinds();
    anyhow::ensure!(!kinds.is_empty(), "the scenario names no backend");
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("target/qemu/{}-power-cut-seed{seed}", sc.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in ["summary.json", "events.jsonl", "junit.xml", "report.html"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let _ = std::fs::remove_dir_all(out.join("cuts"));
    let pool = pg::pool(sc, seed).map_err(anyhow::Error::msg)?;
    let before = pg::initial_installed(seed, &sc.workload);
    let cuts = a.cycles.unwrap_or(1);
    let rel = super::host::guest_scenario_path(scenario);
    let replay = format!(
        "dbtorture qemu --power-cut --scenario {} --seed {seed} --cycles {cuts} --cut-after {}ms..{}ms",
        scenario.display(),
        window.min.as_millis(),
        window.max.as_millis()
    );
    let mut environment = crate::environment::detect();
    environment.guest = Some(format!("{} -M {}", a.qemu, a.machine));
    let mut events = vec![RunEvent::RunStart {
        schema: SCHEMA_VERSION,
        scenario: sc.name.clone(),
        scenario_hash: crate::environment::sha256_hex(text.as_bytes()),
        seed,
        backends: kinds.iter().map(|k| k.name().to_string()).collect(),
        version: crate::environment::binary_version(),
        environment,
        shard: None,
        replay: replay.clone(),
        points: Vec::new(),
    }];
    let started = Instant::now();
    let mut guest_trouble = None;
    let mut interrupted = false;
    for cut in 0..cuts {
        let dir = out.join("cuts").join(format!("cut-{cut:03}"));
        std::fs::create_dir_all(&dir)?;
        let delay = window.draw(seed, cut);
        let sd = dir.join("sd.img");
        disk::prepare(&art.sd_template, &sd, &rel, text).context("preparing the SD image")?;
        let job = Job {
            scenario: Some(rel.clone()),
            seed: Some(seed),
            dev: a.guest_dev.clone(),
            power_cut: true,
            plant: plant.clone(),
            ..Job::default()
        };
        let timeout = a.timeout.unwrap_or(Duration::from_secs(240) + window.max);
        let title = format!(
            "{} power cut {cut} on {} (seed {seed}, {} ms after the first commit)",
            sc.name,
            a.machine,
            delay.as_millis()
        );
        let mut sw = Switch {
            delay,
            writers: sc.workload.writers.max(1),
            collected: BTreeMap::new(),
            first_ack: None,
            damaged: Vec::new(),
            booted: Instant::now(),
        };
        let booted = boot(a, art, &sd, &dir, &job, timeout, &title, Some(&mut sw))?;
        let w = &booted.watch;
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(sw.booted).as_secs_f64());
        let mut rec = CutRecord {
            cut,
            seed,
            delay_ms: delay.as_millis() as u64,
            first_ack_s: since(sw.first_ack),
            cut_at_s: booted.cut_at_s,
            exit_reason: match booted.cut_at_s {
                // Killed on purpose; only a kernel that oopsed or panicked before it says otherwise.
                Some(_) if w.worst().is_none_or(|k| k < KernelTrouble::Oops) => ExitReason::PowerCut,
                _ => booted.exit_reason(),
            },
            fsck_exit: None,
            damaged_lines: sw.damaged.len(),
            backends: Vec::new(),
            evidence: Vec::new(),
        };
        let info = booted.info(a, art, rec.exit_reason, BTreeMap::new(), "sd-image");
        dbtorture_reports::write_json_atomic(&dir.join("guest.json"), &info)?;
        if booted.interrupted {
            interrupted = true;
            break;
        }
        if booted.cut_at_s.is_none() {
            // No cut: the guest died, hung or ended before it. One lost cycle, as a dead guest run has.
            let reason = match rec.exit_reason {
                ExitReason::Completed => ExitReason::GuestError,
                r => r,
            };
            let outcome = reason.lost_outcome().unwrap_or(LostOutcome::GuestError);
            let detail = match sw.first_ack {
                None => format!("{reason:?} before any acknowledged commit"),
                Some(_) => format!("{reason:?} before the cut (the writers ended or the guest died)"),
            };
            events.push(RunEvent::CycleLost { cycle: Some(cut), backend: kinds[0].name().into(), outcome, detail });
            guest_trouble = Some(reason);
            write_json(&dir.join("cut.json"), &rec)?;
            continue;
        }
        if rec.exit_reason != ExitReason::PowerCut {
            // Cut, but the guest kernel was in trouble first: judged all the same, and the run says so.
            guest_trouble = Some(rec.exit_reason);
        }
        let fsck = pj::fsck_copy(&sd, &dir.join("fsck.img")).context("e2fsck on a copy of the card")?;
        std::fs::write(dir.join("e2fsck.log"), &fsck.log)?;
        rec.fsck_exit = Some(fsck.exit);
        let mut keep = a.keep_sd;
        let heard: Vec<BackendKind> = sw.collected.keys().copied().collect();
        for (slot, &kind) in kinds.iter().enumerate() {
            let c = sw.collected.remove(&kind).unwrap_or_else(|| Collected::new(sc.workload.writers.max(1)));
            let mut extra: Vec<_> = fsck.finding().into_iter().collect();
            extra.extend(c.findings.iter().cloned());
            extra.extend(unheard(kind, heard.contains(&kind), &sw.damaged));
            for (wk, msg) in &c.panics {
                extra.push(crate::finding::Finding::from(crate::finding::HarnessFinding::WorkerPanicked {
                    worker: *wk,
                    role: "writer".into(),
                    message: msg.clone(),
                }));
            }
            let j = match pj::extract(&dir.join("fsck.img"), &pg::db_rel(kind), &dir.join("fs").join(kind.name())) {
                Ok(db) => pj::judge_db(kind, &db, &pool, &c.logs, &before, extra),
                Err(e) => {
                    extra.push(crate::finding::Finding::from(dbtorture_backends::rpmdb::Finding::Unopenable {
                        detail: format!("the database directory could not be read off the card: {e}"),
                    }));
                    let outcome = crate::scheduler::verdict::classify(&extra, false);
                    Judged { kind, outcome, findings: extra, recovered: None, acked: c.commits() as usize }
                }
            };
            let expected = sc.expected(kind).contains(&j.outcome) && !j.findings.iter().any(pj::damaged_fs);
            keep |= !expected;
            let in_flight = c.logs.iter().any(|l| l.txns.iter().any(|t| t.2 == crate::oracle::TxnState::Begun));
            cycle_events(&mut events, cut, slot, &j, expected, &rec, delay, &fsck, booted.wall_s);
            rec.backends.push(BackendRecord {
                backend: kind.name().into(),
                acknowledged: j.acked,
                in_flight,
                outcome: j.outcome,
                expected,
                recovered: j.recovered,
                findings: j.findings.iter().map(|f| f.to_string()).collect(),
            });
        }
        let _ = std::fs::remove_file(dir.join("fsck.img"));
        if keep {
            rec.evidence = vec![rel_to(&out, &sd), rel_to(&out, &dir.join("fs"))];
        } else {
            let _ = std::fs::remove_file(&sd);
            let _ = std::fs::remove_dir_all(dir.join("fs"));
        }
        if !a.quiet {
            for b in &rec.backends {
                eprintln!(
                    "[power cut {cut}] {}: {} acknowledged, {}{}",
                    b.backend,
                    b.acknowledged,
                    b.outcome,
                    if b.expected { "" } else { " (UNEXPECTED)" }
                );
            }
        }
        write_json(&dir.join("cut.json"), &rec)?;
    }
    let agg_cycles =
        events.iter().filter(|e| matches!(e, RunEvent::CycleEnd { .. } | RunEvent::CycleLost { .. })).count();
    let unexpected = events
        .iter()
        .filter(|e| matches!(e, RunEvent::CycleEnd { expected: false, .. } | RunEvent::CycleLost { .. }))
        .count();
    events.push(RunEvent::RunEnd {
        cycles: agg_cycles as u64,
        unexpected: unexpected as u64,
        interrupted,
        duration_s: started.elapsed().as_secs_f64(),
        harness_error: None,
    });
    let mut f = std::fs::File::create(out.join("events.jsonl"))?;
    for ev in &events {
        writeln!(f, "{}", serde_json::to_string(ev)?)?;
    }
    drop(f);
    let summary = results::summary_from_events(&events, replay).context("summarising the cuts")?;
    dbtorture_reports::write_reports(&out, &summary, &super::host::timeline(&events))?;
    crate::say_raw!("{}", crate::run::summary_table(&summary, false));
    crate::say!("power cut: {cuts} cut(s) of {}, results in {}", sc.name, out.display());
    Ok(if interrupted {
        exit_codes::INTERRUPTED
    } else if let Some(r) = guest_trouble {
        r.exit_code(None)
    } else if unexpected > 0 {
        exit_codes::FINDINGS
    } else {
        exit_codes::OK
    })
}

/// One backend's cycle of a cut, as events: start, the cut (a fault), findings, recovery, the image, end.
#[allow(clippy::too_many_arguments)]
fn cycle_events(
    events: &mut Vec<RunEvent>,
    cut: u64,
    slot: usize,
    j: &Judged,
    expected: bool,
    rec: &CutRecord,
    delay: Duration,
    fsck: &pj::Fsck,
    wall_s: f64,
) {
    let backend = j.kind.name().to_string();
    events.push(RunEvent::CycleStart {
        cycle: cut,
        backend: backend.clone(),
        seed: derive_seed(rec.seed, 0xc07c, cut) ^ slot as u64,
        plan: format!("power cut {} ms after the first acknowledged commit", delay.as_millis()),
    });
    events.push(RunEvent::Fault {
        cycle: cut,
        backend: backend.clone(),
        kind: FaultKind::PowerCut,
        detail: format!(
            "qemu SIGKILLed {:.2} s after boot ({} ms after the first acknowledged commit); {} of this backend's \
             commits acknowledged; e2fsck -fy exit {}",
            rec.cut_at_s.unwrap_or_default(),
            delay.as_millis(),
            j.acked,
            fsck.exit
        ),
    });
    for f in &j.findings {
        events.push(RunEvent::Finding {
            cycle: cut,
            backend: backend.clone(),
            phase: "power-cut".into(),
            finding: crate::scheduler::events::record(f),
        });
    }
    if let Some(ok) = j.recovered {
        events.push(RunEvent::Recovery {
            cycle: cut,
            backend: backend.clone(),
            procedure: j.kind.recovery_name().into(),
            ok,
            detail: "after the power cut, on the copy read off the card".into(),
        });
    }
    let has = |c: crate::finding::Class| j.findings.iter().any(|f| f.class() == c);
    let tally =
        ImageTally {
            images: 1,
            lost_commit: u64::from(has(crate::finding::Class::LostCommit)),
            inconsistent: u64::from(has(crate::finding::Class::Inconsistent)),
            corrupt: u64::from(has(crate::finding::Class::Corrupt)),
            unopenable: u64::from(j.findings.iter().any(|f| {
                matches!(f, crate::finding::Finding::Db(dbtorture_backends::rpmdb::Finding::Unopenable { .. }))
            })),
            damaged: u64::from(j.recovered.is_some()),
            mended: u64::from(j.recovered == Some(true)),
        };
    events.push(RunEvent::CrashImages { cycle: cut, backend: backend.clone(), tally, elapsed_ms: 0.0, cpu_ms: 0.0 });
    events.push(RunEvent::CycleEnd {
        cycle: cut,
        backend,
        outcome: j.outcome,
        expected,
        findings: j.findings.len(),
        commits: j.acked as u64,
        duration_ms: wall_s * 1000.0,
        armed: None,
        hits: BTreeMap::new(),
        index_rows: BTreeMap::new(),
    });
}

fn rel_to(out: &Path, p: &Path) -> String {
    p.strip_prefix(out).unwrap_or(p).display().to_string()
}

fn write_json(p: &Path, v: &impl Serialize) -> Result<()> {
    std::fs::write(p, serde_json::to_vec_pretty(v)?).with_context(|| format!("writing {}", p.display()))
}

/// What the console did not tell, as harness findings: a backend whose writers said nothing before the cut
/// (its judgement would rest on no acknowledgement at all), and writer lines damaged on the serial line (an
/// acknowledgement among them would be missing from the oracle's log, so a lost commit could pass as clean).
fn unheard(kind: BackendKind, heard: bool, damaged: &[String]) -> Vec<crate::finding::Finding> {
    use crate::finding::{Finding, HarnessFinding};
    let mut out = Vec::new();
    if !heard {
        out.push(Finding::from(HarnessFinding::HarnessFault {
            detail: format!("the {} writers said nothing on the console before the cut", kind.name()),
        }));
    }
    if !damaged.is_empty() {
        out.push(Finding::from(HarnessFinding::HarnessFault {
            detail: format!(
                "{} writer line(s) came damaged over the serial console (first: {:?}): an acknowledgement may be missing",
                damaged.len(),
                damaged[0].chars().take(120).collect::<String>()
            ),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_backend_or_a_damaged_console_line_is_never_judged_clean() {
        let classify = |f: &[crate::finding::Finding]| crate::scheduler::verdict::classify(f, false);
        assert!(unheard(BackendKind::Sqlite, true, &[]).is_empty());
        let silent = unheard(BackendKind::Bdbenv, false, &[]);
        assert_eq!(silent.len(), 1);
        assert_eq!(classify(&silent), dbtorture_reports::Outcome::HarnessError);
        let damaged = unheard(BackendKind::Sqlite, true, &["@@dbtorture pc sq#lite 0 C 1".to_string()]);
        assert!(damaged[0].to_string().contains("1 writer line(s) came damaged"), "{}", damaged[0]);
        assert_eq!(classify(&damaged), dbtorture_reports::Outcome::HarnessError);
    }

    #[test]
    fn the_cut_window_parses_and_each_cut_draws_its_delay_from_the_seed() {
        let w = CutWindow::parse("200ms..4s").unwrap();
        assert_eq!((w.min, w.max), (Duration::from_millis(200), Duration::from_secs(4)));
        let d: Vec<Duration> = (0..20).map(|c| w.draw(7, c)).collect();
        assert!(d.iter().all(|d| *d >= w.min && *d <= w.max), "{d:?}");
        assert_eq!(d, (0..20).map(|c| w.draw(7, c)).collect::<Vec<_>>(), "same seed, same delays");
        assert_ne!(d, (0..20).map(|c| w.draw(8, c)).collect::<Vec<_>>(), "another seed, other delays");
        for bad in ["4s", "4s..1s", "x..1s", "1s..11m"] {
            assert!(CutWindow::parse(bad).is_err(), "{bad}");
        }
    }

    fn switch() -> Switch {
        Switch {
            delay: Duration::from_millis(300),
            writers: 1,
            collected: BTreeMap::new(),
            first_ack: None,
            damaged: Vec::new(),
            booted: Instant::now(),
        }
    }

    #[test]
    fn the_cut_is_timed_from_the_first_acknowledged_commit_and_begun_transactions_are_in_flight() {
        let mut s = switch();
        let t0 = Instant::now();
        s.line("[    4.1] EXT4-fs (mmcblk0): mounted", t0);
        s.line(&pg::frame(BackendKind::Sqlite, 0, "B 7 i+3"), t0);
        assert_eq!(s.cut_at(), None, "a begun transaction is not an acknowledgement");
        let t1 = t0 + Duration::from_secs(1);
        s.line(&pg::frame(BackendKind::Sqlite, 0, "C 7"), t1);
        assert_eq!(s.cut_at(), Some(t1 + Duration::from_millis(300)));
        s.line(&pg::frame(BackendKind::Bdbenv, 0, "B 1 i+2"), t1);
        s.line(&pg::frame(BackendKind::Sqlite, 0, "B 8 i+5"), t1);
        s.line(&pg::frame(BackendKind::Sqlite, 0, "C 8"), t1 + Duration::from_secs(1));
        assert_eq!(s.cut_at(), Some(t1 + Duration::from_millis(300)), "later commits do not move the cut");
        let sq = &s.collected[&BackendKind::Sqlite];
        assert_eq!(sq.commits(), 2);
        assert!(sq.findings.is_empty());
        assert_eq!(s.collected[&BackendKind::Bdbenv].logs[0].txns.len(), 1, "bdbenv's transaction is in flight");
        // A line a kernel message cut: counted when the frame itself is damaged, a worker error (the oracle's
        // log can no longer be trusted) when the message is.
        s.line("@@dbtorture pc sqli[    5.0] mmc0: timeout", t1);
        assert_eq!(s.damaged.len(), 1);
        s.line("@@dbtorture pc sqlite 0 C 9[    5.0] mmc0: timeout", t1);
        assert_eq!(s.collected[&BackendKind::Sqlite].findings.len(), 1);
    }
}
