//! The guest's SD card image, prepared and read back on the host without mounting it.
//!
//! Why debugfs: e2fsprogs writes the job into a copy of the blank ext4 template and copies the results out
//! (`rdump`) as an ordinary user, with no loop device or root mount; and the results on the image are the
//! run's own files, so the host's out directory is byte for byte what `run --out` writes on x86.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{tool} failed on {}: {stderr}", image.display())]
    Tool { tool: &'static str, image: PathBuf, stderr: String },
}

fn run(tool: &'static str, args: &[&std::ffi::OsStr], image: &Path) -> Result<String, DiskError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| DiskError::Io { what: format!("running {tool} (install e2fsprogs/coreutils)"), source })?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // debugfs reports most failures on stderr with exit status 0: any line naming an error counts.
    let failed = !out.status.success()
        || stderr.lines().any(|l| !l.starts_with("debugfs ") && !l.trim().is_empty() && !l.contains("Allocated inode"));
    if failed {
        return Err(DiskError::Tool { tool, image: image.into(), stderr: stderr.trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A fresh SD image at `image`: a sparse copy of `template` with `scenario_text` written to
/// `/job/<rel_scenario>` (e.g. `scenarios/qemu-smoke.toml`).
pub fn prepare(template: &Path, image: &Path, rel_scenario: &str, scenario_text: &str) -> Result<(), DiskError> {
    let _ = std::fs::remove_file(image);
    run("cp", &["--sparse=always".as_ref(), template.as_os_str(), image.as_os_str()], image)?;
    let staged = image.with_extension("scenario.toml");
    std::fs::write(&staged, scenario_text)
        .map_err(|source| DiskError::Io { what: format!("writing {}", staged.display()), source })?;
    let mut cmds = String::from("mkdir /job\ncd /job\n");
    let rel = Path::new(rel_scenario);
    let mut dir = PathBuf::from("/job");
    for c in rel.parent().into_iter().flat_map(|p| p.components()) {
        dir.push(c);
        cmds.push_str(&format!("mkdir \"{}\"\n", dir.display()));
    }
    cmds.push_str(&format!("cd \"{}\"\n", dir.display()));
    let name = rel.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "scenario.toml".into());
    cmds.push_str(&format!("write \"{}\" \"{name}\"\n", staged.display()));
    let cmdfile = image.with_extension("debugfs");
    std::fs::write(&cmdfile, cmds)
        .map_err(|source| DiskError::Io { what: format!("writing {}", cmdfile.display()), source })?;
    let res = run("debugfs", &["-w".as_ref(), "-f".as_ref(), cmdfile.as_os_str(), image.as_os_str()], image);
    let _ = std::fs::remove_file(&cmdfile);
    let _ = std::fs::remove_file(&staged);
    res.map(|_| ())
}

/// Copy the local file `src` into the image as `/job/<name>` (after [`prepare`]).
pub fn put(image: &Path, src: &Path, name: &str) -> Result<(), DiskError> {
    let cmdfile = image.with_extension("put.debugfs");
    std::fs::write(&cmdfile, format!("cd /job\nwrite \"{}\" \"{name}\"\n", src.display()))
        .map_err(|source| DiskError::Io { what: format!("writing {}", cmdfile.display()), source })?;
    let res = run("debugfs", &["-w".as_ref(), "-f".as_ref(), cmdfile.as_os_str(), image.as_os_str()], image);
    let _ = std::fs::remove_file(&cmdfile);
    res.map(|_| ())
}

/// Copy the image's `/out` into `dest/out` (dest must exist). Works on an image whose guest died without
/// unmounting (the journal is not replayed: the newest writes may be missing).
pub fn read_out(image: &Path, dest: &Path) -> Result<PathBuf, DiskError> {
    let req = format!("rdump /out \"{}\"", dest.display());
    run("debugfs", &["-R".as_ref(), req.as_ref(), image.as_os_str()], image)?;
    Ok(dest.join("out"))
}
