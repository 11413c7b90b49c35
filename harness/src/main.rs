//! The `dbtorture` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dbtorture::exit_codes;
use dbtorture::run::{RunOptions, run, summary_table};
use dbtorture::scenario::{Scenario, parse_duration};
use dbtorture_backends::{BackendKind, OpenMode};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dbtorture", version, about = "Crash-consistency torture tests for package databases")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario: fork workers, kill them, verify, classify; exit 1 if any outcome was unexpected.
    Run {
        scenario: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        /// Cycles per backend.
        #[arg(long, conflicts_with = "duration")]
        cycles: Option<u64>,
        /// Run for a duration instead, e.g. 60s, 5m.
        #[arg(long, value_parser = parse_duration_arg)]
        duration: Option<std::time::Duration>,
        /// Write summary.json and events.jsonl here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the databases here instead of a temporary directory.
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Allow --workdir inside a system rpm database location.
        #[arg(long)]
        allow_system_db: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// With --out, don't write bundles of failing cycles (each cycle otherwise starts by copying the
        /// database, which costs time on large databases).
        #[arg(long)]
        no_bundles: bool,
        /// Run only shard I of N (0-based): epochs are dealt round-robin, so N shards with the same seed
        /// together run exactly the cycles of one unsharded run; combine them with `dbtorture merge`.
        #[arg(long, value_parser = dbtorture::run::parse_shard)]
        shard: Option<dbtorture_reports::Shard>,
        /// Run only this backend of the scenario (repeatable); its cycles are the ones it has in a full run,
        /// so per-backend CI jobs merge into the full run's report.
        #[arg(long = "backend", value_parser = parse_backend)]
        backends: Vec<BackendKind>,
    },
    /// Combine the output directories of several runs (e.g. shards) into one summary.json, junit.xml and
    /// report.html; bundles are copied along. Exit 0 if every cycle's outcome was allowed, 1 if not.
    Merge {
        /// Output directories of `dbtorture run --out`.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a database directory: storage checks plus the full rpmdb cross-check (read-only).
    Verify {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        dir: PathBuf,
        /// Print findings as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Dump a BDB-style environment like `db_stat -CA`, with every broken link or count where it is.
    Inspect {
        dir: PathBuf,
        #[arg(long, default_value = "bdbenv")]
        backend: String,
        #[arg(long)]
        json: bool,
    },
    /// List scenarios, backends and crash points.
    List {
        /// Directory of scenarios.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
    },
    /// Re-run a failing cycle from its bundle (same seed, plan, kill points); exit 0 if it reaches the same
    /// verdict, 1 if not.
    Replay { bundle: PathBuf },
    /// Reduce a failing cycle while its finding persists and write a minimal bundle (default:
    /// BUNDLE-min.tar.gz).
    Shrink {
        bundle: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a named recovery procedure on a database directory (what a cycle runs after damage).
    Recover {
        #[arg(long)]
        backend: String,
        dir: PathBuf,
        /// rebuilddb (sqlite: rebuild; bdbenv: rm __db.* + rebuilddb) or db_recover (bdbenv: set panic and
        /// remove the region files, data untouched).
        #[arg(long, default_value = "rebuilddb")]
        procedure: String,
        #[arg(long)]
        allow_system_db: bool,
    },
    /// rebuilddb from one backend into another (e.g. bdbenv → sqlite); the original stays in place until
    /// the new database is complete.
    Convert {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        dir: PathBuf,
        #[arg(long)]
        allow_system_db: bool,
    },
    /// Open a bdbenv or libdb database and hold a cursor lock on Packages until killed (reproduces stale locks).
    #[command(hide = true, name = "__hold")]
    Hold {
        #[arg(long, default_value = "bdbenv")]
        backend: String,
        dir: PathBuf,
        /// Hold a write cursor (IW) instead of a read cursor (R).
        #[arg(long)]
        write: bool,
    },
    /// Prove the harness catches bugs here: run every planted bug (must be detected within the budget) and
    /// the same scenarios without one (must be clean); prints a table. Exit 0 if all behaved.
    Selftest {
        /// Time budget per case.
        #[arg(long, default_value = "20s", value_parser = parse_duration_arg)]
        budget: std::time::Duration,
    },
    /// Boot an armv5tel guest under qemu-system-arm and run a scenario inside it (artifacts from
    /// qemu/build-guest.sh); the out directory is shaped like `run --out`'s, plus console.log and guest.json.
    Qemu(Box<dbtorture::qemu::QemuArgs>),
    /// Measure harness overhead, kills/s and full-verify time (prints figures).
    Bench {
        /// Which figure: overhead, smoke, verify-fedora, or all.
        #[arg(default_value = "all")]
        what: String,
        #[arg(long, default_value = "scenarios/smoke.toml")]
        scenario: PathBuf,
    },
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    BackendKind::from_name(s).ok_or_else(|| {
        format!(
            "unknown backend {s:?}, expected one of: {}",
            BackendKind::ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).ok_or_else(|| format!("expected a duration like 60s or 5m, got {s:?}"))
}

/// Colour only on a terminal, and never with NO_COLOR set.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn is_system_db(p: &Path) -> bool {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let home_rpmdb = std::env::var_os("HOME").map(|h| Path::new(&h).join(".rpmdb"));
    abs.starts_with("/var/lib/rpm") || home_rpmdb.is_some_and(|h| abs.starts_with(h))
}

fn main() -> ExitCode {
    // Started as the qemu guest's /init (pid 1, no arguments): set the guest up, run the job, power off.
    if dbtorture::qemu::guest::is_guest_init() {
        dbtorture::qemu::guest::init_main();
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit_codes::USAGE as u8 } else { 0 });
        }
    };
    match cli.cmd {
        Cmd::Run {
            scenario,
            seed,
            cycles,
            duration,
            out,
            workdir,
            allow_system_db,
            quiet,
            no_bundles,
            shard,
            backends,
        } => {
            let sc = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(exit_codes::USAGE as u8);
                }
            };
            if let Some(w) = &workdir
                && is_system_db(w)
                && !allow_system_db
            {
                eprintln!(
                    "error: refusing to use {} (a system rpm database location); pass --allow-system-db",
                    w.display()
                );
                return ExitCode::from(exit_codes::USAGE as u8);
            }
            let opts = RunOptions { seed, cycles, duration, out, workdir, quiet, no_bundles, shard, backends };
            match run(&sc, &opts) {
                Ok(report) => {
                    print!("{}", summary_table(&report.summary, colour()));
                    for f in report.failures.iter().take(10) {
                        println!("unexpected: cycle {} {} → {}", f.cycle, f.backend.name(), f.outcome);
                        for finding in f.findings.iter().take(5) {
                            println!("    {finding}");
                        }
                    }
                    println!("replay: {}", report.summary.replay);
                    let code = if report.summary.interrupted {
                        exit_codes::INTERRUPTED
                    } else if report.summary.unexpected > 0 {
                        exit_codes::FINDINGS
                    } else {
                        exit_codes::OK
                    };
                    ExitCode::from(code as u8)
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(exit_codes::HARNESS as u8)
                }
            }
        }
        Cmd::Merge { dirs, out } => match dbtorture::merge::merge(&dirs, &out) {
            Ok(summary) => {
                print!("{}", summary_table(&summary, colour()));
                println!("merged {} runs into {}", summary.runs.len(), out.display());
                ExitCode::from(if summary.unexpected > 0 { exit_codes::FINDINGS } else { exit_codes::OK } as u8)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit_codes::USAGE as u8)
            }
        },
        Cmd::Verify { backend, dir, json } => {
            let Some(kind) = BackendKind::from_name(&backend) else {
                eprintln!("error: unknown backend {backend:?}");
                return ExitCode::from(exit_codes::USAGE as u8);
            };
            match kind.verify(&dir, OpenMode::ReadOnly) {
                Ok(findings) => {
                    for f in &findings {
                        if json {
                            println!("{}", serde_json::to_string(f).unwrap_or_default());
                        } else {
                            println!("{f}");
                        }
                    }
                    if findings.is_empty() {
                        if !json {
                            println!("{}: clean", dir.display());
                        }
                        ExitCode::from(exit_codes::OK as u8)
                    } else {
                        eprintln!("{} finding(s)", findings.len());
                        ExitCode::from(exit_codes::FINDINGS as u8)
                    }
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", dir.display());
                    ExitCode::from(exit_codes::USAGE as u8)
                }
            }
        }
        Cmd::Inspect { dir, backend, json } => {
            let Some(profile) = BackendKind::from_name(&backend).and_then(|k| k.profile()) else {
                eprintln!("error: inspect needs a bdbenv backend, not {backend:?}");
                return ExitCode::from(exit_codes::USAGE as u8);
            };
            match dbtorture_backends::bdbenv::inspect::inspect(&dir, profile) {
                Ok(i) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
                    } else {
                        print!("{i}");
                    }
                    ExitCode::from(if i.findings.is_empty() { exit_codes::OK } else { exit_codes::FINDINGS } as u8)
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", dir.display());
                    ExitCode::from(exit_codes::USAGE as u8)
                }
            }
        }
        Cmd::List { scenarios } => {
            println!("scenarios ({}):", scenarios.display());
            let mut entries: Vec<_> = std::fs::read_dir(&scenarios)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for p in entries.iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
                match Scenario::load(p) {
                    Ok(s) => println!("  {:<28} {}", p.display(), s.description),
                    Err(e) => println!("  {:<28} INVALID: {e}", p.display()),
                }
            }
            println!("backends:");
            for b in BackendKind::ALL {
                let pr = b.promises();
                println!("  {:<10} {} (atomic: {}, durable: {})", b.name(), b.description(), pr.atomic, pr.durable);
            }
            println!("crash points:");
            for p in dbtorture_backends::crash::ALL {
                println!("  {p}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Replay { bundle } => match dbtorture::replay::replay(&bundle) {
            Ok(r) => {
                println!(
                    "replayed cycle {} of {} on {} (seed {}): {} — recorded {}",
                    r.info.cycle, r.info.scenario_path, r.info.backend, r.info.seed, r.replayed, r.recorded
                );
                if !r.placement.is_empty() {
                    println!("random-time kills replayed as: {}", r.placement.join(", "));
                }
                for f in r.findings.iter().take(10) {
                    println!("    {f}");
                }
                if r.replayed == r.recorded {
                    println!("same verdict");
                    ExitCode::SUCCESS
                } else {
                    println!("DIFFERENT verdict");
                    ExitCode::from(exit_codes::FINDINGS as u8)
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit_codes::USAGE as u8)
            }
        },
        Cmd::Shrink { bundle, out } => {
            let out = out.unwrap_or_else(|| dbtorture::shrink::default_out(&bundle));
            match dbtorture::shrink::shrink(&bundle, &out) {
                Ok(r) => {
                    println!("shrunk in {} tries:", r.tried);
                    for s in &r.steps {
                        println!("  {s}");
                    }
                    println!(
                        "minimal bundle: {} (replay: dbtorture replay {})",
                        r.bundle.display(),
                        r.bundle.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(exit_codes::HARNESS as u8)
                }
            }
        }
        Cmd::Recover { backend, dir, procedure, allow_system_db } => {
            if is_system_db(&dir) && !allow_system_db {
                eprintln!(
                    "error: refusing to modify {} (a system rpm database); pass --allow-system-db",
                    dir.display()
                );
                return ExitCode::from(exit_codes::USAGE as u8);
            }
            let Some(kind) = BackendKind::from_name(&backend) else {
                eprintln!("error: unknown backend {backend:?}");
                return ExitCode::from(exit_codes::USAGE as u8);
            };
            dbtorture::fault::crashpoint::install_from_env();
            let res = match (procedure.as_str(), kind) {
                ("rebuilddb", _) => {
                    kind.recover(&dir).map(|r| format!("rebuilt: {} headers, {} skipped", r.copied, r.skipped.len()))
                }
                ("db_recover", BackendKind::Bdbenv | BackendKind::BdbenvDb43) => {
                    dbtorture_backends::bdbenv::db_recover(&dir)
                        .map(|()| "environment panicked and region files removed".to_string())
                        .map_err(|source| dbtorture_backends::BackendError::Io { path: dir.clone(), source })
                }
                (p, _) => {
                    eprintln!("error: no procedure {p:?} for backend {backend}");
                    return ExitCode::from(exit_codes::USAGE as u8);
                }
            };
            match res {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit_codes::HARNESS as u8)
                }
            }
        }
        Cmd::Convert { from, to, dir, allow_system_db } => {
            if is_system_db(&dir) && !allow_system_db {
                eprintln!(
                    "error: refusing to modify {} (a system rpm database); pass --allow-system-db",
                    dir.display()
                );
                return ExitCode::from(exit_codes::USAGE as u8);
            }
            let (Some(f), Some(t)) = (BackendKind::from_name(&from), BackendKind::from_name(&to)) else {
                eprintln!("error: unknown backend in {from:?} → {to:?}");
                return ExitCode::from(exit_codes::USAGE as u8);
            };
            dbtorture::fault::crashpoint::install_from_env();
            match dbtorture_backends::rebuild::rebuilddb(f, t, &dir) {
                Ok(r) => {
                    println!("converted {} → {}: {} headers, {} skipped", from, to, r.copied, r.skipped.len());
                    for (_, why) in &r.skipped {
                        println!("  {why}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e} (original database remains in place)");
                    ExitCode::from(exit_codes::HARNESS as u8)
                }
            }
        }
        Cmd::Hold { backend, dir, write } => {
            let Some(kind) = BackendKind::from_name(&backend) else {
                eprintln!("error: unknown backend {backend:?}");
                return ExitCode::from(exit_codes::USAGE as u8);
            };
            match kind.hold(&dir, write) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit_codes::HARNESS as u8)
                }
            }
        }
        Cmd::Selftest { budget } => match dbtorture::selftest::run(budget) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(exit_codes::FINDINGS as u8),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit_codes::HARNESS as u8)
            }
        },
        Cmd::Qemu(args) => match dbtorture::qemu::run(&args) {
            Ok(code) => ExitCode::from(code as u8),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit_codes::USAGE as u8)
            }
        },
        Cmd::Bench { what, scenario } => match dbtorture::bench::run_bench(&what, &scenario).context("bench") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit_codes::HARNESS as u8)
            }
        },
    }
}
