//! The scratch root's state outside the database, between cycles: what a killed rpm left behind.
//!
//! Why: rpm unpacks each file to a temporary `PATH;XXXXXXXX` (the transaction id in hex, which is the time in
//! seconds) and renames it into place. An rpm killed in between leaves the temporary; the next rpm to unpack
//! the same file in the same second opens the same name with O_EXCL and fails ("cpio: open failed - File
//! exists") — state outside the database, out of scope for a database torture test, which showed as a false
//! alarm in 2 of 352 cycles. Before each cycle the scheduler removes these leftovers (never anything under
//! the database directory or the workload's package files).

use crate::rpmcli::{DBPATH, PKGS};
use std::path::Path;

/// Whether `name` is one of rpm's unpacking temporaries: ends in `;` and eight hex digits.
pub fn is_rpm_temporary(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 9 && b[b.len() - 9] == b';' && b[b.len() - 8..].iter().all(u8::is_ascii_hexdigit)
}

/// Remove every rpm temporary under `root` (outside the database and package directories), without
/// following symlinks. Returns how many it removed.
pub fn clear_killed_leftovers(root: &Path) -> std::io::Result<usize> {
    let keep = [root.join(DBPATH), root.join(PKGS)];
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if keep.contains(&path) {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_str().is_some_and(is_rpm_temporary) {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_rpms_temporaries_and_nothing_else() {
        assert!(is_rpm_temporary("file2.dat;6a3f1b2c"));
        assert!(!is_rpm_temporary("file2.dat"));
        assert!(!is_rpm_temporary(";6a3f1b2"));
        assert!(!is_rpm_temporary("a;6a3f1b2g"));
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["usr/share/x", DBPATH, PKGS] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let files = ["usr/share/x/f;0000abcd", "usr/share/x/f", "usr/share/x/g;12345678"];
        let kept = [format!("{DBPATH}/rpmdb.sqlite;0000abcd"), format!("{PKGS}/p.rpm;0000abcd")];
        for f in files.iter().map(|s| s.to_string()).chain(kept.iter().cloned()) {
            std::fs::write(r.join(f), b"x").unwrap();
        }
        assert_eq!(clear_killed_leftovers(r).unwrap(), 2);
        assert!(r.join("usr/share/x/f").exists() && !r.join("usr/share/x/f;0000abcd").exists());
        assert!(kept.iter().all(|k| r.join(k).exists()), "the database and package directories are not touched");
        assert_eq!(clear_killed_leftovers(r).unwrap(), 0);
    }
}
