//! Real rpm as an independent oracle of the index layer: rpm 4.18 regenerates every index from the same
//! Packages (`rpmdb --define '_db_backend sqlite' --rebuilddb` on a private copy; a Berkeley DB database is
//! read through rpm's `bdb_ro`), and every index table of the result is compared row by row with what the
//! database stores; so is which headers each side accepts (rpm's "skipping" messages).
//!
//! Why: our cross-check (`rpmdb::check`) regenerates indexes with the same layer (`rpmdb::index`) the backends
//! write them with, so a semantic bug in that layer — Dirnames from the wrong array, a filter added or
//! dropped — passes it: writer and checker agree. rpm is a second implementation.
//!
//! Rows are compared normalised: header numbers differ between the two databases (rpm renumbers when it
//! rebuilds), so a row's header is named by its SHA1HEADER on each side. The copy is never the original:
//! rpm creates and renames files in what it rebuilds.

use crate::backend::{BackendKind, OpenMode};
use crate::rpmdb::check::{nevra, sha1_header};
use crate::rpmdb::{Finding, Header, IndexTag, Snapshot, tags};
use crate::tool;
use rusqlite::types::ValueRef;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long rpm may take to rebuild a copy.
const DEADLINE: Duration = Duration::from_secs(300);
/// At most this many disagreements are reported one by one; the rest are counted in one more finding.
pub const MAX_FINDINGS: usize = 50;

/// What the oracle found, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct OracleReport {
    pub findings: Vec<Finding>,
    /// Packages rpm's rebuilt database holds, and index rows compared (ours + rpm's).
    pub packages: usize,
    pub rows: usize,
    /// What rpm printed while rebuilding (its "skipping" lines among them).
    pub rpm_said: Vec<String>,
    pub elapsed: Duration,
}

/// Whether the oracle can judge this backend's databases (rpm 4.18 reads sqlite, and BDB through bdb_ro).
pub fn supports(kind: BackendKind) -> bool {
    matches!(kind, BackendKind::Sqlite | BackendKind::Libdb | BackendKind::Rpm)
}

/// The directory holding the database files of a backend's `dir`.
fn db_files(kind: BackendKind, dir: &Path) -> PathBuf {
    match kind {
        BackendKind::Rpm => crate::rpmcli::db_dir(dir),
        _ => dir.to_path_buf(),
    }
}

/// A header's identity on both sides: its SHA1HEADER (stored, else computed), else its number.
fn identity(hnum: u32, blob: &[u8]) -> (String, Option<String>) {
    match Header::parse(blob) {
        Ok(h) => {
            let sha1 = h
                .string(tags::SHA1HEADER)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .or_else(|| sha1_header(&h))
                .unwrap_or_else(|| format!("#{hnum}"));
            (sha1, Some(nevra(&h)))
        }
        Err(_) => (format!("#{hnum}"), None),
    }
}

/// Rows of one side, normalised: index → (key, header identity) → sorted tag indexes.
type Rows = BTreeMap<String, BTreeMap<(Vec<u8>, String), Vec<u32>>>;

struct Side {
    /// identity → (label, header number)
    packages: HashMap<String, (String, u32)>,
    rows: Rows,
}

fn side(snap: &Snapshot) -> Side {
    let mut ids: HashMap<u32, String> = HashMap::new();
    let mut packages = HashMap::new();
    for (hnum, blob) in &snap.packages {
        let (id, label) = identity(*hnum, blob);
        if let Some(label) = label {
            packages.insert(id.clone(), (label, *hnum));
        }
        ids.insert(*hnum, id);
    }
    let mut rows: Rows = BTreeMap::new();
    for (idx, entries) in &snap.indexes {
        let m = rows.entry(idx.to_string()).or_default();
        for e in entries {
            let id = ids.get(&e.hnum).cloned().unwrap_or_else(|| format!("#{} (not in Packages)", e.hnum));
            m.entry((e.key.clone(), id)).or_default().push(e.tagnum);
        }
    }
    for m in rows.values_mut() {
        for v in m.values_mut() {
            v.sort_unstable();
        }
    }
    Side { packages, rows }
}

/// Read rpm's rebuilt `rpmdb.sqlite` with rusqlite directly (not through our sqlite backend).
fn read_rpm_sqlite(db: &Path) -> Result<Snapshot, String> {
    let err = |e: rusqlite::Error| format!("reading rpm's rebuilt {}: {e}", db.display());
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let bytes = |v: ValueRef<'_>| match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Integer(i) => (i as u32).to_ne_bytes().to_vec(),
        _ => Vec::new(),
    };
    let mut snap = Snapshot::default();
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages").map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        snap.packages.push((r.get::<_, i64>(0).map_err(err)? as u32, bytes(r.get_ref(1).map_err(err)?)));
    }
    drop(rows);
    drop(stmt);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    for idx in tags::INDEXES.iter() {
        let name = idx.to_string();
        let mut entries = Vec::new();
        if tables.contains(&name) {
            let mut stmt = conn.prepare(&format!("SELECT key, hnum, idx FROM '{name}'")).map_err(err)?;
            let mut rows = stmt.query([]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                entries.push(crate::rpmdb::index::Entry {
                    key: bytes(r.get_ref(0).map_err(err)?),
                    hnum: r.get::<_, i64>(1).map_err(err)? as u32,
                    tagnum: r.get::<_, i64>(2).map_err(err)? as u32,
                });
            }
        }
        snap.indexes.push((IndexTag(idx.0), entries));
    }
    Ok(snap)
}

/// Have rpm rebuild a copy of `dir`'s database in `scratch` and read the result.
fn rpm_side(kind: BackendKind, dir: &Path, scratch: &Path) -> Result<(Snapshot, Vec<String>), String> {
    let db = scratch.join("db");
    let src = db_files(kind, dir);
    crate::rpmconvert::copy_db(&src, &db).map_err(|e| format!("copying {}: {e}", src.display()))?;
    let abs = std::path::absolute(&db).unwrap_or(db.clone());
    let mut c = Command::new("rpmdb");
    c.arg("--dbpath").arg(&abs).args(["--define", "_db_backend sqlite", "--rebuilddb"]);
    let r = tool::run(c, DEADLINE, None).map_err(|e| format!("rpmdb --rebuilddb: {e}"))?;
    let said: Vec<String> = r.lines().map(String::from).collect();
    if !r.ok() {
        return Err(format!("rpmdb --rebuilddb {}: {}", r.describe(), said.join(" | ")));
    }
    let snap = read_rpm_sqlite(&db.join(crate::sqlite::DB_FILE))?;
    Ok((snap, said))
}

fn tagnums(v: Option<&Vec<u32>>) -> String {
    match v {
        None => "no row".into(),
        Some(v) => format!("tag index {}", v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
    }
}

/// Compare `ours` (what the database stores) with what rpm regenerated from the same Packages.
pub fn compare(ours: &Snapshot, rpm: &Snapshot, rpm_said: &[String]) -> Vec<Finding> {
    let (o, r) = (side(ours), side(rpm));
    let mut out = Vec::new();
    let label =
        |id: &str| o.packages.get(id).or(r.packages.get(id)).map(|(l, _)| l.clone()).unwrap_or_else(|| id.to_string());
    // Header acceptance: the headers each side holds (rpm skips the ones it rejects).
    for (id, (l, hnum)) in &o.packages {
        if !r.packages.contains_key(id) {
            let why = rpm_said
                .iter()
                .find(|s| s.contains("skipping") && s.contains(&format!("#{hnum} ")))
                .or_else(|| rpm_said.iter().find(|s| s.contains("skipping")))
                .cloned()
                .unwrap_or_else(|| "not in its rebuilt Packages".into());
            out.push(Finding::RpmDisagrees {
                index: "Packages".into(),
                key: id.clone(),
                package: l.clone(),
                ours: format!("accepted as #{hnum}"),
                rpm: why,
            });
        }
    }
    for (id, (l, _)) in &r.packages {
        if !o.packages.contains_key(id) {
            out.push(Finding::RpmDisagrees {
                index: "Packages".into(),
                key: id.clone(),
                package: l.clone(),
                ours: "not a readable header here".into(),
                rpm: "accepted".into(),
            });
        }
    }
    // Index rows, only for headers both sides accept (a header one side rejects is reported above).
    let one_sided = |id: &str| o.packages.contains_key(id) != r.packages.contains_key(id);
    let empty = BTreeMap::new();
    for idx in tags::INDEXES.iter() {
        let name = idx.to_string();
        let (om, rm) = (o.rows.get(&name).unwrap_or(&empty), r.rows.get(&name).unwrap_or(&empty));
        let keys: std::collections::BTreeSet<&(Vec<u8>, String)> = om.keys().chain(rm.keys()).collect();
        for k in keys {
            let (ov, rv) = (om.get(k), rm.get(k));
            if ov == rv || one_sided(&k.1) {
                continue;
            }
            out.push(Finding::RpmDisagrees {
                index: name.clone(),
                key: crate::rpmdb::finding::display_key(&k.0),
                package: label(&k.1),
                ours: tagnums(ov),
                rpm: tagnums(rv),
            });
        }
    }
    if out.len() > MAX_FINDINGS {
        let more = out.len() - MAX_FINDINGS;
        out.truncate(MAX_FINDINGS);
        out.push(Finding::RpmDisagrees {
            index: "(all)".into(),
            key: String::new(),
            package: "(more)".into(),
            ours: format!("{more} more disagreements not listed"),
            rpm: String::new(),
        });
    }
    out
}

/// The whole oracle on the database of backend `kind` in `dir` (read-only: our side reads it as the offline
/// check does, rpm rebuilds a copy under `scratch`, which is emptied first and removed after).
pub fn check(kind: BackendKind, dir: &Path, scratch: &Path) -> Result<OracleReport, String> {
    if !supports(kind) {
        return Err(format!("rpm 4.18 cannot read a {} database", kind.name()));
    }
    let t0 = Instant::now();
    let _ = std::fs::remove_dir_all(scratch);
    let (_, ours) = kind.check(dir, OpenMode::ReadOnly).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let ours = ours.ok_or_else(|| format!("{} cannot be read: nothing to compare", dir.display()))?;
    let res = rpm_side(kind, dir, scratch);
    let _ = std::fs::remove_dir_all(scratch);
    let (theirs, said) = match res {
        Ok(x) => x,
        // rpm cannot rebuild what we read: a disagreement on the whole database.
        Err(e) if !ours.packages.is_empty() => {
            return Ok(OracleReport {
                findings: vec![Finding::RpmDisagrees {
                    index: "Packages".into(),
                    key: String::new(),
                    package: "(database)".into(),
                    ours: format!("reads {} headers", ours.packages.len()),
                    rpm: e,
                }],
                elapsed: t0.elapsed(),
                ..OracleReport::default()
            });
        }
        Err(e) => return Err(e),
    };
    let findings = compare(&ours, &theirs, &said);
    let rows = |s: &Snapshot| s.indexes.iter().map(|(_, v)| v.len()).sum::<usize>();
    Ok(OracleReport {
        findings,
        packages: theirs.packages.len(),
        rows: rows(&ours) + rows(&theirs),
        rpm_said: said,
        elapsed: t0.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpmdb::index::Entry;

    fn snap(rows: &[(&str, u32, u32)]) -> Snapshot {
        let mut s = Snapshot::default();
        let mut basenames = Vec::new();
        for (k, h, t) in rows {
            basenames.push(Entry { key: k.as_bytes().to_vec(), hnum: *h, tagnum: *t });
        }
        s.indexes.push((IndexTag(tags::BASENAMES), basenames));
        s
    }

    #[test]
    fn rows_are_compared_by_key_header_and_tag_index_and_name_both_sides() {
        // No parseable headers: identities are header numbers, the same on both sides here.
        let ours = snap(&[("a", 1, 0), ("b", 1, 1)]);
        let same = snap(&[("b", 1, 1), ("a", 1, 0)]);
        assert!(compare(&ours, &same, &[]).is_empty());
        let other = snap(&[("a", 1, 0), ("b", 1, 2), ("c", 1, 3)]);
        let f: Vec<String> = compare(&ours, &other, &[]).iter().map(|f| f.to_string()).collect();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("\"b\"") && f[0].contains("ours tag index 1, rpm tag index 2"), "{f:?}");
        assert!(f[1].contains("\"c\"") && f[1].contains("ours no row, rpm tag index 3"), "{f:?}");
    }

    #[test]
    fn a_flood_of_disagreements_is_capped() {
        let ours = snap(&[]);
        let many: Vec<(String, u32, u32)> = (0..200).map(|i| (format!("k{i}"), 1, 0)).collect();
        let refs: Vec<(&str, u32, u32)> = many.iter().map(|(k, h, t)| (k.as_str(), *h, *t)).collect();
        let f = compare(&ours, &snap(&refs), &[]);
        assert_eq!(f.len(), MAX_FINDINGS + 1);
        assert!(f.last().unwrap().to_string().contains("150 more"), "{}", f.last().unwrap());
    }
}
