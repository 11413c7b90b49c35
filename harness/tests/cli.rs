//! Command-line conventions: every argument of every command has help text, the values an argument accepts
//! are listed (backends, bench figures), and `list` shows the shipped scenarios from any directory.

mod common;
use common::*;

const COMMANDS: &[&str] = &[
    "run", "merge", "verify", "inspect", "list", "replay", "shrink", "recover", "convert", "selftest", "qemu", "bench",
];

/// The argument lines of a `--help` text that carry no help: `  <DIR>` or `      --seed <SEED>` alone.
fn undocumented(help: &str) -> Vec<String> {
    let mut bare = Vec::new();
    let mut in_args = false;
    let lines: Vec<&str> = help.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.ends_with(':') && !l.starts_with(' ') {
            in_args = *l == "Arguments:" || *l == "Options:";
            continue;
        }
        let t = l.trim_start();
        if !in_args || !(t.starts_with('<') || t.starts_with('-') || t.starts_with('[')) {
            continue;
        }
        // Help follows the spec after two spaces, or (long specs) on the next, deeper-indented line.
        let inline = t.split_once("  ").is_some_and(|(_, h)| !h.trim().is_empty());
        let indent = l.len() - t.len();
        let below = lines.get(i + 1).is_some_and(|n| {
            let nt = n.trim_start();
            !nt.is_empty() && n.len() - nt.len() > indent && !nt.starts_with('-') && !nt.starts_with('<')
        });
        if !inline && !below {
            bare.push(t.to_string());
        }
    }
    bare
}

#[test]
fn every_argument_of_every_command_has_help() {
    let mut bare = Vec::new();
    for c in COMMANDS {
        let o = bin().args([c, "--help"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{c}: {}", text(&o));
        let h = String::from_utf8_lossy(&o.stdout);
        bare.extend(undocumented(&h).into_iter().map(|a| format!("{c} {a}")));
    }
    assert!(bare.is_empty(), "arguments without help: {bare:#?}");
    // The checker sees a bare argument.
    assert_eq!(undocumented("Arguments:\n  <DIR>\n\nOptions:\n      --seed <SEED>  Seed\n"), ["<DIR>"]);
}

#[test]
fn possible_values_are_listed_and_enforced() {
    let h = |c: &str| String::from_utf8_lossy(&bin().args([c, "--help"]).output().unwrap().stdout).into_owned();
    let bench = h("bench");
    for f in ["overhead", "smoke", "verify-fedora", "bdbenv", "power-loss", "rpm", "lanes", "all"] {
        assert!(bench.contains(f), "bench --help lacks {f}: {bench}");
    }
    for c in ["run", "verify", "recover", "convert"] {
        let t = h(c);
        for b in dbtorture_backends::BackendKind::ALL {
            assert!(t.contains(b.name()), "{c} --help does not list backend {}: {t}", b.name());
        }
    }
    let o = bin().args(["verify", "--backend", "nope", "."]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("sqlite"), "{}", text(&o));
    assert!(h("run").contains("report.html"), "run --help says what --out writes");
}

#[test]
fn list_shows_the_shipped_scenarios_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bin().arg("list").current_dir(tmp.path()).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for e in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        if n.ends_with(".toml") {
            assert!(t.contains(&n), "list run outside the repository lacks {n}: {t}");
        }
    }
    assert!(!t.contains("INVALID"), "{t}");
    // --scenarios DIR still lists a directory.
    std::fs::write(tmp.path().join("mine.toml"), "name='m'\nbackends=['sqlite']\n[expect]\nsqlite=['clean']\n")
        .unwrap();
    let o = bin().args(["list", "--scenarios"]).arg(tmp.path()).output().unwrap();
    assert!(text(&o).contains("mine.toml"), "{}", text(&o));
}
