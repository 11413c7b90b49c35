//! The system-database guard against the real paths, safely: inside a private mount namespace (`unshare -m`)
//! with a tmpfs over `/var/lib` (and `/usr/lib/sysimage` when it exists), a real database is put at
//! `/var/lib/rpm` and every way of reaching it is tried with `recover`, `convert`, `run --workdir` and the
//! `--out` of `run`/`merge`/`shrink`, also through bind mounts of it or of its parent (another name for
//! the same directory that no path resolution sees through). Needs root (CI runs as root): skipped with a reason otherwise, a failure
//! under `CI`.

mod common;

use common::{bin, root};
use dbtorture_backends::{OpenMode, Reader};
use std::collections::BTreeMap;
use std::process::Command;

fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must run the guard test in a mount namespace: {why}");
    eprintln!("SKIPPED guard namespace test: {why}");
}

#[test]
fn every_way_into_a_system_database_is_refused_in_a_mount_namespace() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip_or_fail("not root (unshare -m and mount need it)");
    }
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        return skip_or_fail("unshare -m does not work here");
    }
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("db");
    let db = dbtorture_backends::sqlite::SqliteBackend::open(&src, OpenMode::Create).unwrap();
    Box::new(db).close().unwrap();
    let have_rpm = Command::new("rpm").arg("--version").output().is_ok_and(|o| o.status.success());
    let bin_path = env!("CARGO_BIN_EXE_dbtorture");
    let smoke = root().join("scenarios/smoke.toml");
    let script = format!(
        r#"
set -u
mount -t tmpfs dbtorture-guard /var/lib || exit 90
if [ -d /usr/lib/sysimage ]; then mount -t tmpfs dbtorture-guard /usr/lib/sysimage || exit 91; fi
export HOME=/var/lib/home
mkdir -p /var/lib/rpm /var/lib/home/.rpmdb /var/lib/custom
cp -a {src}/. /var/lib/rpm/
cp -a {src}/. /var/lib/home/.rpmdb/
cp -a {src}/. /var/lib/custom/
echo keep > /var/lib/rpm/unrelated
ln -s /var/lib/rpm /var/lib/alias
ln -s /var/lib /var/lib/home/varlib
B={bin}
c() {{ name=$1; shift; "$@" > /var/lib/home/out 2>&1; rc=$?; echo "CASE $name $rc $(grep -c allow-system-db /var/lib/home/out)"; }}
c recover_plain $B recover --backend sqlite /var/lib/rpm
c recover_dotdot $B recover --backend sqlite /var/lib/../lib/rpm
c recover_dot_slashes $B recover --backend sqlite //var/./lib//rpm/
c recover_symlink $B recover --backend sqlite /var/lib/alias
c recover_symlinked_parent $B recover --backend sqlite /var/lib/home/varlib/rpm
c recover_relative sh -c "cd /var/lib/home && $B recover --backend sqlite ../rpm"
c recover_inside $B recover --backend sqlite /var/lib/rpm/sub/dir
c recover_sysimage $B recover --backend sqlite /usr/lib/sysimage/rpm
c recover_home_rpmdb $B recover --backend sqlite /var/lib/home/.rpmdb
c convert_symlink $B convert --from sqlite --to bdbenv /var/lib/alias
c convert_dotdot $B convert --from sqlite --to bdbenv /var/lib/home/../rpm
c run_workdir $B run {smoke} --cycles 1 -q --workdir /var/lib/alias/work
c run_out $B run {smoke} --cycles 1 -q --out /var/lib/home/varlib/rpm/out
c merge_out $B merge /nonexistent --out /var/lib/rpm/merged
c shrink_out $B shrink /nonexistent.tar.gz --out /var/lib/alias/min.tar.gz
c hold $B __hold --backend bdbenv /var/lib/alias
# The same directories under another name that no path resolution sees through: bind mounts.
mkdir -p /var/lib/home/bound /var/lib/home/bound-parent
mount --bind /var/lib/rpm /var/lib/home/bound || exit 92
mount --bind /var/lib /var/lib/home/bound-parent || exit 93
c recover_bind_mount $B recover --backend sqlite /var/lib/home/bound
c recover_bind_mounted_parent $B recover --backend sqlite /var/lib/home/bound-parent/rpm
c convert_bind_mount $B convert --from sqlite --to bdbenv /var/lib/home/bound
c run_workdir_bind_mount $B run {smoke} --cycles 1 -q --workdir /var/lib/home/bound/work
c run_out_bind_mount $B run {smoke} --cycles 1 -q --out /var/lib/home/bound-parent/home/.rpmdb/out
echo "BOUND $(ls /var/lib/rpm | tr '\n' ' ')"
umount /var/lib/home/bound-parent /var/lib/home/bound
if [ {have_rpm} = 1 ]; then
  echo '%_dbpath /var/lib/custom' > /var/lib/home/.rpmmacros
  echo "DBPATH $(rpm --eval '%_dbpath')"
  c recover_host_dbpath $B recover --backend sqlite /var/lib/custom
  rm /var/lib/home/.rpmmacros
fi
echo "KEEP $(cat /var/lib/rpm/unrelated) $(ls /var/lib/rpm | tr '\n' ' ')"
c allowed $B recover --backend sqlite --allow-system-db /var/lib/alias
c not_protected $B recover --backend sqlite /var/lib/custom
"#,
        src = src.display(),
        bin = bin_path,
        smoke = smoke.display(),
        have_rpm = u8::from(have_rpm),
    );
    let out = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    let text = common::text(&out);
    assert!(out.status.success(), "namespace script failed: {text}");
    let cases: BTreeMap<String, (i32, u32)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("CASE "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect();
    let mut refused = 0;
    for (name, (rc, mentions)) in &cases {
        if name == "allowed" || name == "not_protected" {
            continue;
        }
        assert_eq!(*rc, 2, "{name} must be refused with exit 2: {text}");
        assert!(*mentions > 0, "{name}: the message names --allow-system-db: {text}");
        refused += 1;
    }
    assert!(refused >= 21, "all cases ran: {text}");
    if have_rpm {
        assert!(text.contains("DBPATH /var/lib/custom"), "rpm read the test's macros: {text}");
        assert!(cases.contains_key("recover_host_dbpath"), "{text}");
    } else {
        eprintln!("rpm not installed: the host %_dbpath case was not tried");
    }
    assert!(text.contains("KEEP keep "), "the refusals left the directory alone: {text}");
    // Not vacuous: the same database is recovered when allowed, and an unprotected one without the flag.
    assert_eq!(cases["allowed"].0, 0, "{text}");
    assert_eq!(cases["not_protected"].0, 0, "{text}");
}

#[test]
fn a_symlink_to_a_protected_path_is_refused_without_a_namespace() {
    // Refused before anything is read, whatever is (or is not) behind the link.
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("db");
    std::os::unix::fs::symlink("/usr/lib/sysimage/rpm", &link).unwrap();
    let o = bin().args(["recover", "--backend", "sqlite"]).arg(&link).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(common::text(&o).contains("/usr/lib/sysimage/rpm"), "{}", common::text(&o));
}
