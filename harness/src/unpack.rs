//! Unpacking a bundle archive from another machine, bounded.
//!
//! Why not `tar::Archive::unpack`: an archive is hostile input. A gzip bomb would be written out in full
//! before anyone noticed it holds no `bundle.json`, a million empty entries would fill the inode table, and a
//! link or device entry has no business in a bundle. Here every entry's declared size is checked against
//! what is left of the budget *before* its bytes are read, entries are counted, only files and directories are
//! accepted, and the path given must be a regular file (a FIFO would block the open for ever).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How much one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub bytes: u64,
    pub entries: u64,
}

/// A bundle holds two copies of a database (a Fedora rpmdb is ~200 MiB) and a few small files.
pub const LIMITS: Limits = Limits { bytes: 4 << 30, entries: 100_000 };

/// A bundle (archive or contents) dbtorture would not have written: bad input (exit 2), not a harness failure.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct BadBundle {
    pub path: std::path::PathBuf,
    pub why: String,
}

/// Unpack the `.tar.gz` at `archive` into `into` within `limits`.
pub fn unpack(archive: &Path, into: &Path, limits: Limits) -> Result<(), BadBundle> {
    let Limits { bytes: max_bytes, entries: max_entries } = limits;
    let bad = |why: String| BadBundle { path: archive.to_path_buf(), why };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(archive)
        .map_err(|e| bad(format!("no such bundle ({e})")))?;
    let meta = f.metadata().map_err(|e| bad(e.to_string()))?;
    crate::readonly::check_regular(archive, &meta).map_err(|e| bad(e.to_string()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    let entries = tar.entries().map_err(|e| bad(format!("not a bundle archive (.tar.gz): {e}")))?;
    let (mut bytes, mut count) = (0u64, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a bundle archive (.tar.gz): {e}")))?;
        count += 1;
        if count > max_entries {
            return Err(bad(format!("more than {max_entries} entries; not a bundle")));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(bad(format!("entry {name:?} is a {kind:?}; a bundle holds only files and directories")));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        bytes = bytes.saturating_add(size);
        if bytes > max_bytes {
            return Err(bad(format!("unpacks to more than {} MiB; not a bundle", max_bytes >> 20)));
        }
        // `unpack_in` refuses paths that leave `into`; the reader is bounded by the declared size.
        match entry.unpack_in(into) {
            Ok(true) => {}
            Ok(false) => return Err(bad("an entry's path leaves the archive's directory".into())),
            Err(e) => return Err(bad(format!("unpacking: {e}"))),
        }
    }
    Ok(())
}

/// `bundle.json`'s `installed_before` must name packages of the pool its scenario builds.
pub fn check_installed(installed_before: &[u32], pool_len: usize) -> Result<(), BadBundle> {
    match installed_before.iter().find(|&&id| id as usize >= pool_len) {
        Some(id) => Err(BadBundle {
            path: "bundle.json".into(),
            why: format!("installed_before names package {id}, but the scenario's pool has {pool_len} packages"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn archive(
        dir: &Path,
        build: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>),
    ) -> std::path::PathBuf {
        let p = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        build(&mut b);
        b.into_inner().unwrap().finish().unwrap();
        p
    }

    fn file(b: &mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>, name: &str, len: u64) {
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, std::io::repeat(0).take(len)).unwrap();
    }

    use std::io::Read;

    #[test]
    fn a_bomb_is_refused_at_the_entry_header_before_its_bytes_are_written() {
        let d = tempfile::tempdir().unwrap();
        // 64 MiB of zeros compress to ~64 KiB; the budget here is 1 MiB.
        let a = archive(d.path(), |b| file(b, "x/pre/Packages", 64 << 20));
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let e = unpack(&a, &out, Limits { bytes: 1 << 20, entries: 10 }).unwrap_err();
        assert!(e.why.contains("more than 1 MiB"), "{e}");
        assert!(!out.join("x/pre/Packages").exists(), "nothing of the big entry was written");
    }

    #[test]
    fn too_many_entries_and_links_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let a = archive(d.path(), |b| {
            for i in 0..=100 {
                file(b, &format!("x/{i}"), 0);
            }
        });
        assert!(
            unpack(&a, &out, Limits { bytes: 1 << 20, entries: 100 })
                .unwrap_err()
                .why
                .contains("more than 100 entries")
        );
        assert!(unpack(&a, &out, Limits { bytes: 1 << 20, entries: 101 }).is_ok());
        let a = archive(d.path(), |b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "x/Packages", "/dev/zero").unwrap();
        });
        assert!(unpack(&a, &out, LIMITS).unwrap_err().why.contains("only files"));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking_and_garbage_is_not_an_archive() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("b.tar.gz");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(unpack(&fifo, d.path(), LIMITS).unwrap_err().why.contains("FIFO"));
        let junk = d.path().join("junk.tar.gz");
        std::fs::File::create(&junk).unwrap().write_all(b"not gzip at all").unwrap();
        assert!(unpack(&junk, d.path(), LIMITS).is_err());
    }
}
