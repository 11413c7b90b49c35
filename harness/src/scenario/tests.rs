//! The scenario loader's unit tests: defaults, field errors with line and column, validation, every shipped
//! scenario loads.

use super::*;

fn parse(s: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(s, Path::new("t.toml"))
}

const OK: &str = "name='t'\nbackends=['sqlite']\n[expect]\nsqlite=['clean']\n";

#[test]
fn minimal_scenario_loads_with_defaults() {
    let s = parse(OK).unwrap();
    assert_eq!(s.workload.writers, 2);
    assert_eq!(s.expected(BackendKind::Sqlite), vec![Outcome::Clean]);
}

#[test]
fn errors_name_file_field_and_expectation() {
    let e = parse(&OK.replace("[expect]", "[workload]\nwriters='two'\n[expect]")).unwrap_err().to_string();
    assert!(e.contains("t.toml") && e.contains("workload.writers"), "{e}");
    assert!(e.contains("line 4, column 9"), "TOML errors keep line and column: {e}");
    let e = parse(&OK.replace("name='t'", "name='t'\nbogus=1")).unwrap_err().to_string();
    assert!(e.contains("bogus"), "{e}");
    let e = parse(&OK.replace("['clean']", "['fine']")).unwrap_err().to_string();
    assert!(e.contains("expect.sqlite[0]") && e.contains("clean"), "{e}");
    let e = parse(&OK.replace("['sqlite']", "['nope']")).unwrap_err().to_string();
    assert!(e.contains("backends[0]") && e.contains("sqlite"), "{e}");
    let e = parse(&format!("{OK}[kill]\nprobability=2.0\n")).unwrap_err().to_string();
    assert!(e.contains("kill.probability"), "{e}");
    let e = parse(&format!("{OK}[kill]\npoint='no.such.point'\n")).unwrap_err().to_string();
    assert!(e.contains("kill.point"), "{e}");
    // A point of a backend the scenario does not run would kill nothing: refused, listing the valid ones.
    let e = parse(&format!("{OK}[kill]\nmode='crash-point'\npoint='bdbenv.sync.before'\n")).unwrap_err().to_string();
    assert!(e.contains("kill.point") && e.contains("sqlite.commit.before"), "{e}");
    let e = parse("name='t'\nbackends=['rpm']\n[kill]\nmode='sweep'\n[expect]\nrpm=['clean']\n").unwrap_err();
    assert!(e.to_string().contains("kill.mode"), "{e}");
    let e = parse("name='t'\nbackends=['sqlite']\n[expect]\n").unwrap_err().to_string();
    assert!(e.contains("expect.sqlite"), "{e}");
    let e = parse(&OK.replace("name='t'", "name='t'\nduration='soon'")).unwrap_err().to_string();
    assert!(e.contains("duration"), "{e}");
}

#[test]
fn bundle_policy_defaults_to_unexpected_and_findings_keeps_expected_findings() {
    assert_eq!(parse(OK).unwrap().bundles, BundlePolicy::Unexpected);
    let s = parse(&OK.replace("name='t'", "name='t'\nbundles='findings'")).unwrap();
    assert_eq!(s.bundles, BundlePolicy::Findings);
    assert!(BundlePolicy::Findings.keeps(true, true));
    assert!(!BundlePolicy::Findings.keeps(true, false));
    assert!(BundlePolicy::Findings.keeps(false, false));
    assert!(!BundlePolicy::Unexpected.keeps(true, true));
    assert!(BundlePolicy::Unexpected.keeps(false, false));
    assert!(!BundlePolicy::None.keeps(false, true));
    let e = parse(&OK.replace("name='t'", "name='t'\nbundles='all'")).unwrap_err().to_string();
    assert!(e.contains("bundles") && e.contains("findings"), "{e}");
}

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("x"), None);
    assert_eq!(parse_duration("-1s"), None);
}

#[test]
fn every_shipped_scenario_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shipped scenarios in {}", dir.display());
}

#[test]
fn a_pool_too_big_to_build_is_refused_at_load_naming_its_size() {
    // The example: 100,000 packages of ~2,000 files each would build for hours.
    let big = format!("{OK}[workload]\npackages=2000\nversions=50\nfiles_mean=2000\n");
    let e = parse(&big).unwrap_err().to_string();
    assert!(e.contains("workload.files_mean") && e.contains("200,000,000 files"), "{e}");
    let e = parse(&format!("{OK}[workload]\npackages=100000\nversions=50\nfiles_mean=0\n")).unwrap_err().to_string();
    assert!(e.contains("workload.versions") && e.contains("5,000,000 packages"), "{e}");
    // Fedora-sized pools (2,500 packages × 140 files) load.
    parse(&format!("{OK}[workload]\npackages=2500\nversions=2\nfiles_mean=140\n")).unwrap();
}

#[test]
fn the_real_rpm_converts_libdb_into_sqlite_only() {
    let conv = |backend: &str, to: &str| {
        parse(&format!(
            "name='t'\nbackends=['{backend}']\n[workload]\nconvert_to='{to}'\nconverter='rpm'\n[expect]\n{backend}=['clean']\n"
        ))
    };
    assert_eq!(conv("libdb", "sqlite").unwrap().workload.converter, Converter::Rpm);
    for (b, to) in [("bdbenv", "sqlite"), ("libdb", "bdbenv")] {
        let e = conv(b, to).unwrap_err().to_string();
        assert!(e.contains("workload.converter") && e.contains("libdb into sqlite only"), "{e}");
    }
    let e = parse(&OK.replace("[expect]", "[workload]\nconverter='rpm'\n[expect]")).unwrap_err().to_string();
    assert!(e.contains("workload.converter") && e.contains("convert_to"), "{e}");
    let e = parse(&OK.replace("[expect]", "[workload]\nconverter='yum'\n[expect]")).unwrap_err().to_string();
    assert!(e.contains("converter"), "{e}");
}

#[test]
fn the_rpm_oracle_key_is_range_checked_and_refuses_what_rpm_cannot_read() {
    let with = |backend: &str, every: &str| {
        parse(&format!(
            "name='t'\nbackends=['{backend}']\n[oracle]\nrpm_every={every}\n[expect]\n{backend}=['clean']\n"
        ))
    };
    assert_eq!(with("sqlite", "3").unwrap().oracle.unwrap().rpm_every, 3);
    assert!(with("libdb", "1").is_ok());
    let e = with("sqlite", "0").unwrap_err().to_string();
    assert!(e.contains("oracle.rpm_every") && e.contains("1..="), "{e}");
    let e = with("bdbenv", "1").unwrap_err().to_string();
    assert!(e.contains("oracle.rpm_every") && e.contains("cannot read a bdbenv database"), "{e}");
    let e = parse(&OK.replace("[expect]", "[oracle]\nrpm_evry=1\n[expect]")).unwrap_err().to_string();
    assert!(e.contains("rpm_evry"), "{e}");
}

#[test]
fn the_rpm_oracle_runs_after_every_nth_cycle() {
    let sc = parse(&OK.replace("[expect]", "[oracle]\nrpm_every=3\n[expect]")).unwrap();
    let due: Vec<u64> = (0..9).filter(|c| crate::scheduler::rpmoracle::due(&sc, *c)).collect();
    assert_eq!(due, [2, 5, 8]);
    assert!(!crate::scheduler::rpmoracle::due(&parse(OK).unwrap(), 0));
}

#[test]
fn io_kill_is_validated() {
    let s = parse(&format!("{OK}[io_kill]\nops=['fsync','rename']\nfirst=3\naction='kill'\n")).unwrap();
    let io = s.io_kill.unwrap();
    assert_eq!((io.ops.len(), io.first, io.action, io.mode), (2, 3, IoAction::Kill, IoMode::Sweep));
    // Injected errors are judged on sqlite: accepted there, every kind.
    for action in ["eio", "enospc", "short", "errors"] {
        let s = parse(&format!("{OK}[io_kill]\naction='{action}'\n")).unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_ne!(s.io_kill.unwrap().action, IoAction::Kill);
    }
    // … and refused, naming the engine and why, on one whose reaction is not judged.
    let bdb = OK
        .replace("backends=['sqlite']", "backends=['sqlite','bdbenv']")
        .replace("[expect]\n", "[expect]\nbdbenv=['clean']\n");
    let e = parse(&format!("{bdb}[io_kill]\naction='enospc'\n")).unwrap_err().to_string();
    assert!(e.contains("io_kill.action") && e.contains("not on bdbenv"), "{e}");
    for (bad, field) in [
        ("ops=[]", "io_kill.ops"),
        ("first=0", "io_kill.first"),
        ("ops=['truncate']", "io_kill.ops"),
        ("action='explode'", "io_kill.action"),
    ] {
        let e = parse(&format!("{OK}[io_kill]\n{bad}\n")).unwrap_err().to_string();
        assert!(e.contains(field), "{bad}: {e}");
    }
    let conv = "name='t'\nbackends=['libdb']\n[workload]\nwriters=0\nreaders=0\nconvert_to='sqlite'\n\
                converter='rpm'\n[kill]\nmode='none'\n[io_kill]\n[expect]\nlibdb=['clean']\n";
    // A conversion is recorded over the database's parent (its renames stay inside the mount): killed at its
    // I/O operations, yes; failed there, no.
    parse(conv).unwrap();
    let e = parse(&conv.replace("[io_kill]\n", "[io_kill]\naction='eio'\n")).unwrap_err().to_string();
    assert!(e.contains("io_kill.action"), "{e}");
}
