//! The `dbtorture` command line.

use clap::{Parser, Subcommand};
use dbtorture::arg_values::BenchWhat;
use dbtorture::cli_error::CliError;
use dbtorture::run::{RunOptions, run, summary_table};
use dbtorture::scenario::{Scenario, parse_duration};
use dbtorture::{exit_codes, say, say_raw};
use dbtorture_backends::BackendKind;
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
        /// The scenario file (TOML; see scenarios/ and docs of every key in scenarios/smoke.toml).
        scenario: PathBuf,
        /// Seed of the packages, transactions and kill plans (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Cycles per backend (at least 1).
        #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
        cycles: Option<u64>,
        /// Run for a duration instead, e.g. 60s, 5m.
        #[arg(long, value_parser = parse_duration_arg)]
        duration: Option<std::time::Duration>,
        /// Write the reports here: events.jsonl, summary.json, junit.xml, report.html and bundles/ of the
        /// cycles the scenario's `bundles` policy keeps.
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
        /// Run only shard I of N (1 ≤ I ≤ N, e.g. 1/4 … 4/4): epochs are dealt round-robin, so N shards with the same seed
        /// together run exactly the cycles of one unsharded run; combine them with `dbtorture merge`.
        #[arg(long, value_parser = dbtorture::run::parse_shard)]
        shard: Option<dbtorture_reports::Shard>,
        /// Run only this backend of the scenario (repeatable); its cycles are the ones it has in a full run,
        /// so per-backend CI jobs merge into the full run's report.
        #[arg(long = "backend", value_parser = dbtorture::arg_values::backend_kind())]
        backends: Vec<BackendKind>,
        /// Lanes: N scheduler processes side by side, each with its own databases, taking whole epochs
        /// (default: one per CPU, but 1 for a --duration run; never more than the run has epochs). The cycles, their seeds and the
        /// summary are those of --jobs 1 (today's single process) up to timing. What differs: events.jsonl
        /// is written a cycle at a time in cycle order (a cycle waits for the ones before it); with
        /// --duration, a lane finishes the epoch it has begun when time is up (so the run may overrun by
        /// up to an epoch); memory pressure runs one cgroup and balloon per lane.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..1025))]
        jobs: Option<u64>,
    },
    /// Combine the output directories of several runs (e.g. shards) into one summary.json, junit.xml and
    /// report.html; bundles are copied along. Exit 0 if every cycle's outcome was allowed, 1 if not, 130 if a
    /// merged run did not finish (interrupted, or its events end without run-end: its harness died).
    Merge {
        /// Output directories of `dbtorture run --out`.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Directory for the merged reports (and the inputs' bundles, one folder per input).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a database directory: storage checks plus the full rpmdb cross-check (read-only).
    Verify {
        /// The backend whose database is in DIR.
        #[arg(long, default_value = "sqlite", value_parser = dbtorture::arg_values::backend_name())]
        backend: String,
        /// A database directory, or a root in which to find one where rpm keeps it.
        dir: PathBuf,
        /// The database directory inside DIR (as rpm's --root DIR --dbpath P).
        #[arg(long)]
        dbpath: Option<PathBuf>,
        /// Print findings as JSON lines.
        #[arg(long)]
        json: bool,
        /// Also have an independent implementation regenerate every index from the same Packages and compare
        /// row by row: `rpm` (rpm 4.18's `rpmdb --rebuilddb` on a private copy; sqlite, libdb and rpm roots).
        #[arg(long, value_parser = ["rpm"])]
        oracle: Option<String>,
    },
    /// Dump a BDB-style environment like `db_stat -CA`, with every broken link or count where it is.
    Inspect {
        /// The environment directory (with __db.001…003), e.g. a bundle's post/.
        dir: PathBuf,
        /// Which BDB-style layout to read.
        #[arg(long, default_value = "bdbenv", value_parser = dbtorture::arg_values::inspect_backend())]
        backend: String,
        /// Print the whole dump as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List scenarios, backends and crash points.
    List {
        /// List the scenarios in this directory instead of the ones shipped with (built into) dbtorture.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
    /// Re-run a failing cycle from its bundle (same seed, plan, kill points); exit 0 if it reaches the same
    /// verdict, 1 if not.
    Replay {
        /// A bundle: OUT/bundles/cycle-….tar.gz, or its unpacked directory.
        bundle: PathBuf,
    },
    /// Reduce a failing cycle while its finding persists and write a minimal bundle (default:
    /// BUNDLE-min.tar.gz).
    Shrink {
        /// A bundle: OUT/bundles/cycle-….tar.gz, or its unpacked directory.
        bundle: PathBuf,
        /// The minimal bundle to write (.tar.gz is added; its directory must exist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a named recovery procedure on a database directory (what a cycle runs after damage).
    Recover {
        /// The backend whose database is in DIR.
        #[arg(long, value_parser = dbtorture::arg_values::backend_name())]
        backend: String,
        /// The database directory.
        dir: PathBuf,
        /// rebuilddb (sqlite: rebuild; bdbenv: rm __db.* + rebuilddb) or db_recover (bdbenv: set panic and
        /// remove the region files, data untouched).
        #[arg(long, default_value = "rebuilddb", value_parser = dbtorture::arg_values::procedure())]
        procedure: String,
        /// Allow DIR inside a system rpm database location.
        #[arg(long)]
        allow_system_db: bool,
    },
    /// rebuilddb from one backend into another (e.g. bdbenv → sqlite); the original stays in place until
    /// the new database is complete.
    Convert {
        /// The backend of the database in DIR now.
        #[arg(long, value_parser = dbtorture::arg_values::backend_name())]
        from: String,
        /// The backend to convert it into (not rpm: it installs from .rpm files a database does not hold).
        #[arg(long, value_parser = dbtorture::arg_values::backend_name())]
        to: String,
        /// The database directory; replaced by the converted database only once that is complete.
        dir: PathBuf,
        /// Allow DIR inside a system rpm database location.
        #[arg(long)]
        allow_system_db: bool,
    },
    /// Open a bdbenv or libdb database and hold a cursor lock on Packages until killed (reproduces stale locks).
    #[command(hide = true, name = "__hold")]
    Hold {
        /// The backend whose database is in DIR.
        #[arg(long, default_value = "bdbenv", value_parser = dbtorture::arg_values::backend_name())]
        backend: String,
        /// The database directory.
        dir: PathBuf,
        /// Hold a write cursor (IW) instead of a read cursor (R).
        #[arg(long)]
        write: bool,
    },
    /// Seeded mutation fuzzing of what reads user bytes (header, sqlite, bdbenv, libdb, bundle, merge);
    /// prints inputs, time and failures per target; exit 1 on any panic, crash, hang or allocation over the cap.
    #[command(hide = true, name = "__fuzz")]
    Fuzz {
        /// Targets (default: all).
        targets: Vec<String>,
        /// Inputs per target.
        #[arg(long, default_value_t = 1000)]
        inputs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Index of the first input (reproduce one with --from I --inputs 1).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Save failing inputs here.
        #[arg(long)]
        crashes: Option<PathBuf>,
        /// An input running longer than this is a hang.
        #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
        time_limit: std::time::Duration,
    },
    /// Prove the harness catches bugs here: run every planted bug (must be detected within the budget) and
    /// the same scenarios without one (must be clean); prints a table. Exit 0 if all behaved.
    Selftest {
        /// Time budget per case (twice this for the bugs that show only after a random kill).
        #[arg(long, default_value = "20s", value_parser = parse_duration_arg)]
        budget: std::time::Duration,
    },
    /// Boot an armv5tel guest under qemu-system-arm and run a scenario inside it (artifacts from
    /// qemu/build-guest.sh); the out directory is shaped like `run --out`'s, plus console.log and guest.json.
    Qemu(Box<dbtorture::qemu::QemuArgs>),
    /// Measure harness overhead, kills/s, full-verify time, and (rpm) the real-rpm scenario against
    /// ci/naive-rpm-loop.sh side by side (prints figures).
    Bench {
        /// Which figure (rpm: the real-rpm scenario vs ci/naive-rpm-loop.sh in alternating rounds; all: every
        /// figure but rpm).
        #[arg(value_enum, default_value = "all")]
        what: BenchWhat,
        /// The scenario the smoke figure runs (default scenarios/smoke.toml; for rpm, scenarios/rpm-sqlite.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// rpm: seconds each side runs per round.
        #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
        each: std::time::Duration,
        /// rpm: rounds (naive loop, then dbtorture).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
    /// Write the packages of a scenario's pool for ci/naive-rpm-loop.sh (initial/, cycle/, probe.rpm, delay-ms).
    #[command(hide = true, name = "__naive-rpm-packages")]
    NaiveRpmPackages {
        /// The scenario whose pool (seed, packages, versions, files) and kill delays to write.
        scenario: PathBuf,
        /// A new directory.
        dir: PathBuf,
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

/// Refuse to write into a system rpm database unless asked to (one guard for every command that writes).
fn guard_system_db(dir: &Path, allow: bool) -> Result<(), CliError> {
    dbtorture::guard::check_writable(dir, allow).map_err(|e| CliError::bad_input(e.to_string()))
}

/// A backend named on the command line (clap's value parsers take the usual path; this is for `--from`/`--to`).
fn backend(name: &str) -> Result<BackendKind, CliError> {
    parse_backend(name).map_err(CliError::bad_input)
}

/// How to read a database inside a bundle written on another kind of machine: in its layout (bdbenv), or
/// refused with the reason (what cannot be read here), never judged as damage.
fn read_origin(dir: &Path, kind: BackendKind) -> Result<dbtorture_backends::bdbenv::origin::Origin, CliError> {
    let Some(info) = dbtorture::bundle::enclosing(dir) else {
        return Ok(dbtorture_backends::bdbenv::origin::Origin::HERE);
    };
    let origin = dbtorture::bundle::origin(&info, kind)
        .map_err(|e| CliError::bad_input(format!("{}: cannot read it here", dir.display())).cause(e))?;
    if let Some(m) = info.written_on.as_ref().filter(|_| !origin.local) {
        eprintln!(
            "{}: written on {} ({}-bit): reading its region files with {}-byte links; its processes count as dead here",
            dir.display(),
            m.arch,
            m.pointer_width,
            origin.layout.word()
        );
    }
    Ok(origin)
}

/// The database `kind` must be in `dir` before a command that changes it runs.
fn need_database(kind: BackendKind, dir: &Path) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::bad_input(format!("{}: no such directory", dir.display())));
    }
    if !kind.present(dir) {
        return Err(CliError::bad_input(format!("{}: no {} database here", dir.display(), kind.name()))
            .hint("name the directory that holds the database files, and its backend with --backend/--from"));
    }
    Ok(())
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
    let res = dbtorture_backends::planted::from_env()
        .map_err(|e| CliError::bad_input(e).hint("unset DBTORTURE_PLANT, or name a planted bug from the list"))
        .and_then(|_| dispatch(cli.cmd));
    let code = match res {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.render());
            e.exit_code()
        }
    };
    ExitCode::from(code as u8)
}

fn dispatch(cmd: Cmd) -> Result<i32, CliError> {
    // Commands that make scratch directories or memory cgroups first clear those of runs that died.
    if matches!(
        cmd,
        Cmd::Run { .. }
            | Cmd::Replay { .. }
            | Cmd::Shrink { .. }
            | Cmd::Selftest { .. }
            | Cmd::Qemu(_)
            | Cmd::Bench { .. }
            | Cmd::Fuzz { .. }
    ) {
        dbtorture::leftovers::sweep();
    }
    match cmd {
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
            jobs,
        } => {
            let sc = Scenario::load(&scenario)?;
            for d in [&workdir, &out].into_iter().flatten() {
                guard_system_db(d, allow_system_db)?;
            }
            let _owned = dbtorture::dirlock::lock_all(&[workdir.as_deref(), out.as_deref()])
                .map_err(|e| CliError::bad_input(e.to_string()))?;
            let jobs = jobs.map(|j| j as usize);
            let opts = RunOptions { seed, cycles, duration, out, workdir, quiet, no_bundles, shard, backends, jobs };
            dbtorture::run::check(&sc, &opts)?;
            let report = run(&sc, &opts).map_err(|e| {
                CliError::harness("the harness failed; reports were written for the cycles done").cause(e)
            })?;
            say_raw!("{}", summary_table(&report.summary, colour()));
            say_raw!("{}", dbtorture::run_text::run_result(&report, opts.out.as_deref()));
            Ok(if report.summary.interrupted {
                exit_codes::INTERRUPTED
            } else if report.summary.unexpected > 0 {
                exit_codes::FINDINGS
            } else {
                exit_codes::OK
            })
        }
        Cmd::Merge { dirs, out } => {
            guard_system_db(&out, false)?;
            let summary = dbtorture::merge::merge(&dirs, &out)
                .map_err(|e| CliError::bad_input("cannot merge these runs").cause(e))?;
            say_raw!("{}", summary_table(&summary, colour()));
            say!("merged {} runs into {}", summary.runs.len(), out.display());
            eprint!("{}", dbtorture::run_text::unfinished_runs(&summary));
            // As `run` exits for the run it was: a run that did not finish never passes.
            Ok(if summary.interrupted {
                exit_codes::INTERRUPTED
            } else if summary.unexpected > 0 {
                exit_codes::FINDINGS
            } else {
                exit_codes::OK
            })
        }
        Cmd::Verify { backend: name, dir, dbpath, json, oracle } => {
            let kind = backend(&name)?;
            let origin = read_origin(&dir, kind)?;
            let mut findings = dbtorture::readonly::verify(kind, &dir, dbpath.as_deref(), origin)
                .map_err(|e| CliError::bad_input(format!("{}: cannot verify", dir.display())).cause(e))?;
            if oracle.is_some() {
                let r = dbtorture::readonly::rpm_oracle(kind, &dir, dbpath.as_deref())
                    .map_err(|e| CliError::bad_input(format!("{}: cannot verify", dir.display())).cause(e))?
                    .map_err(|e| {
                        CliError::bad_input(format!("{}: the rpm oracle cannot judge it", dir.display()))
                            .cause(anyhow::anyhow!(e))
                            .hint("needs rpm 4.18 (Debian package rpm) and a sqlite, libdb or rpm database")
                    })?;
                eprintln!(
                    "rpm oracle: {} packages, {} index rows compared, {} disagreement(s), {:.0} ms",
                    r.packages,
                    r.rows,
                    r.findings.len(),
                    r.elapsed.as_secs_f64() * 1000.0
                );
                findings.extend(r.findings);
            }
            for f in &findings {
                if json {
                    say!("{}", serde_json::to_string(f).unwrap_or_default());
                } else {
                    say!("{f}");
                }
            }
            if findings.is_empty() {
                if !json {
                    say!("{}: clean", dir.display());
                }
                Ok(exit_codes::OK)
            } else {
                eprintln!("{} finding(s)", findings.len());
                Ok(exit_codes::FINDINGS)
            }
        }
        Cmd::Inspect { dir, backend: name, json } => {
            let profile = backend(&name)?.profile().ok_or_else(|| {
                CliError::bad_input(format!("inspect reads BDB-style environments, not {name:?}"))
                    .hint("--backend bdbenv or bdbenv-db43")
            })?;
            let origin = read_origin(&dir, backend(&name)?)?;
            let i = dbtorture::readonly::inspect(&dir, profile, origin)
                .map_err(|e| CliError::bad_input(format!("{}: cannot inspect", dir.display())).cause(e))?;
            if json {
                say!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
            } else {
                say_raw!("{i}");
            }
            Ok(if i.findings.is_empty() { exit_codes::OK } else { exit_codes::FINDINGS })
        }
        Cmd::List { scenarios } => {
            say_raw!("{}", dbtorture::shipped::listing(scenarios.as_deref()));
            say!("backends:");
            for b in BackendKind::ALL {
                let pr = b.promises();
                say!("  {:<10} {} (atomic: {}, durable: {})", b.name(), b.description(), pr.atomic, pr.durable);
            }
            say!("crash points:");
            for p in dbtorture_backends::crash::ALL {
                say!("  {p}");
            }
            say!("planted bugs (DBTORTURE_PLANT):");
            for p in dbtorture_backends::planted::ALL {
                say!("  {:<30} {}", p.name, p.breaks);
            }
            Ok(exit_codes::OK)
        }
        Cmd::Replay { bundle } => {
            dbtorture::replay::check(&bundle).map_err(|e| {
                CliError::bad_input(format!("{}: not a bundle that can be replayed", bundle.display())).cause(e)
            })?;
            let r = dbtorture::replay::replay(&bundle)
                .map_err(|e| CliError::harness(format!("replaying {} failed", bundle.display())).cause(e))?;
            say!(
                "replayed cycle {} of {} on {} (seed {}): {} — recorded {}",
                r.info.cycle,
                r.info.scenario_path,
                r.info.backend,
                r.info.seed,
                r.replayed,
                r.recorded
            );
            if !r.placement.is_empty() {
                say!("kills replayed as: {}", r.placement.join(", "));
            }
            match r.diverged {
                Some(false) => say!("interleaving: followed the recorded schedule to its end"),
                Some(true) => say!(
                    "interleaving: left the recorded schedule (a worker waited too long for its turn, or ended before its last recorded one)"
                ),
                None => say!("interleaving: free (the bundle records no schedule)"),
            }
            for f in r.findings.iter().take(10) {
                say!("    {f}");
            }
            if r.replayed == r.recorded {
                say!("same verdict (run {} of the cycle)", r.tries);
                Ok(exit_codes::OK)
            } else {
                say!("DIFFERENT verdict");
                Ok(exit_codes::FINDINGS)
            }
        }
        Cmd::Shrink { bundle, out } => {
            guard_system_db(&out.clone().unwrap_or_else(|| dbtorture::shrink::default_out(&bundle)), false)?;
            dbtorture::replay::check(&bundle).map_err(|e| {
                CliError::bad_input(format!("{}: not a bundle that can be shrunk", bundle.display())).cause(e)
            })?;
            let out = out.unwrap_or_else(|| dbtorture::shrink::default_out(&bundle));
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.is_dir()
            {
                return Err(CliError::bad_input(format!("--out {}: no directory {}", out.display(), parent.display())));
            }
            let r = dbtorture::shrink::shrink(&bundle, &out)
                .map_err(|e| CliError::harness(format!("shrinking {} failed", bundle.display())).cause(e))?;
            say_raw!("{}", dbtorture::run_text::shrunk(&r));
            Ok(exit_codes::OK)
        }
        Cmd::Recover { backend: name, dir, procedure, allow_system_db } => {
            guard_system_db(&dir, allow_system_db)?;
            let kind = backend(&name)?;
            if !kind.procedures().contains(&procedure.as_str()) {
                return Err(CliError::bad_input(format!("no procedure {procedure:?} for backend {name}"))
                    .hint(format!("one of: {}", kind.procedures().join(", "))));
            }
            need_database(kind, &dir)?;
            dbtorture::fault::crashpoint::install_from_env();
            let msg = if procedure == "db_recover" {
                dbtorture_backends::bdbenv::db_recover(&dir)
                    .map(|()| "environment panicked and region files removed".to_string())
                    .map_err(|e| CliError::harness(format!("db_recover of {} failed", dir.display())).cause(e))?
            } else {
                kind.recover(&dir)
                    .map(|r| format!("rebuilt: {} headers, {} skipped", r.copied, r.skipped.len()))
                    .map_err(|e| CliError::harness(format!("rebuilddb of {} failed", dir.display())).cause(e))?
            };
            say!("{msg}");
            Ok(exit_codes::OK)
        }
        Cmd::Convert { from, to, dir, allow_system_db } => {
            guard_system_db(&dir, allow_system_db)?;
            let (f, t) = (backend(&from)?, backend(&to)?);
            if t.rebuilds_itself() || f.rebuilds_itself() {
                return Err(CliError::bad_input(format!("convert {from} → {to}: the rpm target converts itself"))
                    .hint("run `rpmdb --rebuilddb` (or `dbtorture recover --backend rpm`) on an rpm root"));
            }
            need_database(f, &dir)?;
            dbtorture::fault::crashpoint::install_from_env();
            let r = dbtorture_backends::rebuild::rebuilddb(f, t, &dir).map_err(|e| {
                CliError::harness(format!(
                    "converting {} failed (the original database remains in place)",
                    dir.display()
                ))
                .cause(e)
            })?;
            say!("converted {} → {}: {} headers, {} skipped", from, to, r.copied, r.skipped.len());
            for (_, why) in &r.skipped {
                say!("  {why}");
            }
            Ok(exit_codes::OK)
        }
        Cmd::Hold { backend: name, dir, write } => {
            guard_system_db(&dir, false)?;
            let kind = backend(&name)?;
            match kind.hold(&dir, write) {
                Ok(never) => match never {},
                Err(e) => Err(CliError::harness(format!("holding a cursor in {}", dir.display())).cause(e)),
            }
        }
        Cmd::Fuzz { targets, inputs, seed, from, crashes, time_limit } => {
            Ok(dbtorture::fuzz::main(targets, inputs, seed, from, crashes, time_limit))
        }
        Cmd::Selftest { budget } => match dbtorture::selftest::run(budget) {
            Ok(true) => Ok(exit_codes::OK),
            Ok(false) => Ok(exit_codes::FINDINGS),
            Err(e) => Err(CliError::harness("selftest could not run its cases").cause(e)),
        },
        Cmd::Qemu(args) => dbtorture::qemu::run(&args).map_err(dbtorture::qemu::cli_error),
        Cmd::Bench { what, scenario, each, rounds } => {
            let default =
                if matches!(what, BenchWhat::Rpm) { "scenarios/rpm-sqlite.toml" } else { "scenarios/smoke.toml" };
            let scenario = scenario.unwrap_or_else(|| PathBuf::from(default));
            if !scenario.exists() {
                return Err(CliError::bad_input(format!("--scenario {}: no such file", scenario.display())));
            }
            let res = if matches!(what, BenchWhat::Rpm) {
                let sc = Scenario::load(&scenario)?;
                if !sc.backends.iter().any(|b| b == "rpm") {
                    return Err(CliError::bad_input(format!("{}: not a real-rpm scenario", scenario.display()))
                        .hint("bench rpm runs a scenario with backends = [\"rpm\"], e.g. scenarios/rpm-sqlite.toml"));
                }
                dbtorture::bench_rpm::compare(&scenario, each, rounds)
            } else {
                dbtorture::bench::run_bench(what.name(), &scenario)
            };
            res.map_err(|e| CliError::harness(format!("bench {}", what.name())).cause(e))?;
            Ok(exit_codes::OK)
        }
        Cmd::NaiveRpmPackages { scenario, dir } => {
            let sc = Scenario::load(&scenario)?;
            if dir.exists() {
                return Err(CliError::bad_input(format!("{}: already exists (name a new directory)", dir.display())));
            }
            let set = dbtorture::naive_rpm::write_packages(&sc, &dir)
                .map_err(|e| CliError::harness(format!("writing {}'s packages", sc.name)).cause(e))?;
            println!("{}: {} initial packages, {} per cycle, in {}", sc.name, set.initial, set.cycle, dir.display());
            Ok(exit_codes::OK)
        }
    }
}
