//! The one guard between a command that writes and the system's rpm database.
//!
//! Why one: `recover` and `convert` swap a directory for a new one and `run --workdir` runs torture cycles in
//! it; pointed at the machine's own rpm database they would destroy it. A path is judged after resolving what
//! the kernel would resolve: the deepest existing ancestor is canonicalised (symlinks and `..`), the rest is
//! normalised lexically, and the result is refused when it is at or inside a protected location — rpm's
//! usual database directories, `~/.rpmdb`, and the host rpm's own `%_dbpath` (asked with `rpm --eval`).
//! A bind mount is another name for the same directory that no path resolution sees through, so the path's
//! existing ancestors are also compared by identity (device and inode) with the protected directories.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// rpm's database directories whatever the distribution (Debian, RHEL ≤ 8: /var/lib/rpm; Fedora ≥ 36,
/// openSUSE: /usr/lib/sysimage/rpm).
pub const SYSTEM_DB_DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "refusing to write into {given} (resolves to {resolved}, inside the system rpm database location \
         {protected}); pass --allow-system-db to do it anyway"
    )]
    SystemDb { given: PathBuf, resolved: PathBuf, protected: PathBuf },
    #[error("{given}: cannot resolve the path: {source}")]
    Resolve { given: PathBuf, source: std::io::Error },
}

/// `p` made absolute with symlinks (dangling ones too) and `..` resolved the way the kernel resolves them, as
/// far as the path exists; the part that does not exist yet is normalised lexically.
pub fn resolve(p: &Path) -> std::io::Result<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut todo, &std::path::absolute(p)?);
    let mut base = PathBuf::from("/");
    let mut hops = 0;
    // `todo` is a stack: the next component is at the end.
    while let Some(c) = todo.pop() {
        if c == ".." {
            base.pop();
            continue;
        }
        let candidate = base.join(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    base = PathBuf::from("/");
                }
                push_components(&mut todo, &target);
            }
            Ok(_) => base = candidate,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => base = candidate,
            // A permission error: the path cannot be judged, so it is not used.
            Err(e) => return Err(e),
        }
    }
    Ok(base)
}

/// Push `p`'s normal and `..` components onto the stack `todo`, first component last.
fn push_components(todo: &mut Vec<std::ffi::OsString>, p: &Path) {
    for c in p.components().rev() {
        match c {
            Component::Normal(n) => todo.push(n.to_os_string()),
            Component::ParentDir => todo.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// The protected locations, each as given and resolved (e.g. /var/lib/rpm may be a symlink to
/// /usr/lib/sysimage/rpm).
pub fn protected_locations() -> Vec<PathBuf> {
    let mut raw: Vec<PathBuf> = SYSTEM_DB_DIRS.iter().map(PathBuf::from).collect();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        raw.push(Path::new(&home).join(".rpmdb"));
    }
    if let Some(p) = host_rpm_dbpath() {
        raw.push(p.clone());
    }
    let mut all = Vec::new();
    for p in raw {
        if let Ok(r) = resolve(&p)
            && !all.contains(&r)
        {
            all.push(r);
        }
        if !all.contains(&p) {
            all.push(p);
        }
    }
    all
}

/// The host rpm's `%_dbpath` (`rpm --eval '%_dbpath'`), if rpm is installed and answers an absolute path.
pub fn host_rpm_dbpath() -> Option<&'static PathBuf> {
    static DBPATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    DBPATH
        .get_or_init(|| {
            let mut cmd = std::process::Command::new("rpm");
            cmd.args(["--eval", "%_dbpath"]);
            let run = dbtorture_backends::tool::run(cmd, Duration::from_secs(10), None).ok()?;
            let line = run.stdout.lines().next()?.trim().to_string();
            (run.ok() && line.starts_with('/')).then(|| PathBuf::from(line))
        })
        .as_ref()
}

/// Refuse `p` if it is at or inside a protected location, unless `allow_system_db`.
pub fn check_writable(p: &Path, allow_system_db: bool) -> Result<(), GuardError> {
    if allow_system_db {
        return Ok(());
    }
    let resolved = resolve(p).map_err(|source| GuardError::Resolve { given: p.to_path_buf(), source })?;
    let protected = protected_locations();
    check_against(p, &resolved, &protected)?;
    check_identity(p, &resolved, &protected)
}

/// A directory's identity: the same for every name it has (bind mounts included).
fn identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// Refuse `resolved` when it, or an existing ancestor of it, is a protected directory under another name.
fn check_identity(given: &Path, resolved: &Path, protected: &[PathBuf]) -> Result<(), GuardError> {
    let ids: Vec<((u64, u64), &PathBuf)> = protected.iter().filter_map(|p| identity(p).map(|id| (id, p))).collect();
    if ids.is_empty() {
        return Ok(());
    }
    for ancestor in resolved.ancestors() {
        let Some(id) = identity(ancestor) else { continue };
        if let Some((_, prot)) = ids.iter().find(|(pid, _)| *pid == id) {
            return Err(GuardError::SystemDb {
                given: given.to_path_buf(),
                resolved: resolved.to_path_buf(),
                protected: (*prot).clone(),
            });
        }
    }
    Ok(())
}

fn check_against(given: &Path, resolved: &Path, protected: &[PathBuf]) -> Result<(), GuardError> {
    match protected.iter().find(|prot| resolved.starts_with(prot)) {
        Some(prot) => Err(GuardError::SystemDb {
            given: given.to_path_buf(),
            resolved: resolved.to_path_buf(),
            protected: prot.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dotdot_and_symlinks_of_the_existing_part() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(base.join("lib/rpm")).unwrap();
        std::os::unix::fs::symlink(base.join("lib"), base.join("link")).unwrap();
        assert_eq!(resolve(&base.join("x/../lib/rpm")).unwrap(), base.join("lib/rpm"));
        assert_eq!(resolve(&base.join("link/rpm")).unwrap(), base.join("lib/rpm"));
        assert_eq!(resolve(&base.join("link/rpm/new/../sub")).unwrap(), base.join("lib/rpm/sub"));
        assert_eq!(resolve(&base.join("link/missing/../rpm")).unwrap(), base.join("lib/rpm"));
        std::os::unix::fs::symlink("/nonexistent/x/y", base.join("dangling")).unwrap();
        assert_eq!(resolve(&base.join("dangling/../z")).unwrap(), Path::new("/nonexistent/x/z"));
        std::os::unix::fs::symlink("lib/../lib/rpm", base.join("rel")).unwrap();
        assert_eq!(resolve(&base.join("rel")).unwrap(), base.join("lib/rpm"));
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(resolve(&base.join("loop/x")).is_err());
    }

    #[test]
    fn refuses_at_or_inside_a_protected_location_only() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let prot = base.join("var/lib/rpm");
        std::fs::create_dir_all(&prot).unwrap();
        std::os::unix::fs::symlink(&prot, base.join("alias")).unwrap();
        let list = vec![prot.clone()];
        let judge = |p: &Path| check_against(p, &resolve(p).unwrap(), &list).is_err();
        assert!(judge(&prot));
        assert!(judge(&base.join("var/lib/../lib/rpm")));
        assert!(judge(&base.join("alias")));
        assert!(judge(&base.join("alias/sub/dir")));
        assert!(!judge(&base.join("var/lib/rpm-other")));
        assert!(!judge(&base.join("var/lib")));
    }

    #[test]
    fn identity_refuses_the_protected_directory_and_what_is_below_it_only() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let prot = base.join("var/lib/rpm");
        std::fs::create_dir_all(prot.join("sub")).unwrap();
        std::fs::create_dir_all(base.join("other")).unwrap();
        let list = vec![prot.clone()];
        assert!(check_identity(&prot, &prot.join("sub/new"), &list).is_err());
        assert!(check_identity(&prot, &prot, &list).is_err());
        assert!(check_identity(&base, &base.join("other/new"), &list).is_ok());
        assert!(check_identity(&base, &base.join("var/lib"), &list).is_ok(), "a parent is not refused");
        // A protected location that does not exist protects nothing by identity (its path still does).
        assert!(check_identity(&base, &base.join("x"), &[base.join("missing")]).is_ok());
    }

    #[test]
    fn the_system_locations_are_always_protected() {
        let all = protected_locations();
        for p in SYSTEM_DB_DIRS {
            assert!(all.iter().any(|q| q == Path::new(p)), "{p} is protected");
        }
        assert!(check_writable(Path::new("/var/lib/../lib/rpm/x"), false).is_err());
        assert!(check_writable(Path::new("/usr/lib/sysimage/rpm"), false).is_err());
        assert!(check_writable(Path::new("/usr/lib/sysimage/rpm"), true).is_ok());
    }
}
