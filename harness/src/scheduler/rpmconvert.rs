//! Judging a conversion cycle run by the real rpm (`[workload] converter = "rpm"`): after the kill, either the
//! Berkeley DB original is in place and rpm (through `bdb_ro`, by way of its "Found bdb_ro Packages database
//! while attempting sqlite backend" fallback) reads every package of it, or the sqlite database is in place
//! and rpm reads exactly the original's packages from it — never neither, never a mix — and rerunning the
//! conversion, unkilled, finishes with every package.
//!
//! Why here and not in `verdict.rs`: this is rpm's behaviour judged by rpm's own reading (the scheduler's
//! usual checks of the database in place run as well); the cycle's typed state goes into the report as a
//! `conversion` event, so the run's summary counts what real rpm leaves per kill.

use super::events::Ctx;
use crate::finding::Finding;
use dbtorture_backends::rpmconvert::{self, InPlace};
use dbtorture_backends::rpmdb;
use dbtorture_reports::ConversionState;
use std::collections::BTreeSet;
use std::path::Path;

/// What one conversion left, judged: its state, and findings when it is not one of the two whole states.
pub struct Judged {
    pub state: ConversionState,
    pub findings: Vec<Finding>,
}

fn broken(state: &str, detail: String) -> Finding {
    Finding::from(rpmdb::Finding::ConversionBroken { state: state.into(), detail })
}

/// "N of the M packages (missing …, extra …)" when `got` is not `want`.
fn compare(what: &str, want: &BTreeSet<String>, got: &BTreeSet<String>) -> Option<String> {
    if want == got {
        return None;
    }
    let missing: Vec<&str> = want.difference(got).map(String::as_str).take(3).collect();
    let extra: Vec<&str> = got.difference(want).map(String::as_str).take(3).collect();
    Some(format!(
        "{what}: rpm reads {} packages, the original held {} (missing e.g. {missing:?}, extra e.g. {extra:?})",
        got.len(),
        want.len()
    ))
}

/// Judge `dir` after a conversion cycle; `want` are the SHA1HEADERs the original held; `scratch` is the
/// harness's own directory for copies. Emits the `conversion` event.
pub fn judge(dir: &Path, scratch: &Path, want: &BTreeSet<String>, killed: bool, ctx: &mut Ctx<'_>) -> Judged {
    let _ = std::fs::remove_dir_all(scratch);
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let in_place = InPlace::of(dir);
    let left = rpmconvert::leftovers(dir);
    if !left.is_empty() {
        let names: Vec<String> =
            left.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        notes.push(format!("rpm left {}", names.join(", ")));
    }
    let mut state = match in_place {
        InPlace::Original => ConversionState::Original,
        InPlace::Converted => ConversionState::Converted,
        InPlace::Neither => ConversionState::Neither,
        InPlace::Mix => ConversionState::Mix,
    };
    match in_place {
        InPlace::Original | InPlace::Converted => match rpmconvert::rpm_reads(dir, &scratch.join("read")) {
            Ok(r) => {
                if in_place == InPlace::Original && r.found_bdb {
                    notes.push("rpm fell back to bdb_ro (Found bdb_ro Packages database …)".into());
                }
                if let Some(d) = compare(&format!("{} database in place", state.name()), want, &r.sha1s) {
                    findings.push(broken(state.name(), d));
                    state = ConversionState::Neither;
                }
            }
            Err(e) => {
                findings.push(broken(state.name(), format!("rpm cannot read the database in place: {e}")));
                state = ConversionState::Neither;
            }
        },
        InPlace::Neither => findings.push(broken(
            "neither",
            format!("no database at {} after the conversion ({})", dir.display(), notes.join("; ")),
        )),
        InPlace::Mix => findings.push(broken(
            "mix",
            format!("{} holds both Packages and {}", dir.display(), dbtorture_backends::sqlite::DB_FILE),
        )),
    }
    let rerun_ok = match rpmconvert::rerun(dir, &scratch.join("rerun")) {
        Ok((_, r)) => match compare("after rerunning the conversion", want, &r.sha1s) {
            None => true,
            Some(d) => {
                findings.push(broken("rerun", d));
                false
            }
        },
        Err(e) => {
            findings.push(broken("rerun", format!("rerunning the conversion did not finish: {e}")));
            false
        }
    };
    let _ = std::fs::remove_dir_all(scratch);
    ctx.conversion(state, killed, rerun_ok, notes.join("; "));
    Judged { state, findings }
}

/// Remove what killed conversions of rpm left beside `dir` (its scratch and old directories).
pub fn clear_leftovers(dir: &Path) {
    for p in rpmconvert::leftovers(dir) {
        let _ = std::fs::remove_dir_all(p);
    }
}
