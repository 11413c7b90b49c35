//! Writers: events.jsonl streams one flushed line per event (so an interrupted run keeps what happened);
//! summary.json, junit.xml and report.html are written atomically (temp file + fsync + rename), so a reader
//! never sees half of one, even when the run is killed while writing.

use crate::fold::Timeline;
use crate::model::{RunEvent, Summary};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// events.jsonl, appended and flushed per event.
pub struct EventLog {
    out: Option<(PathBuf, BufWriter<File>)>,
}

impl EventLog {
    /// A log that discards events.
    pub fn disabled() -> EventLog {
        EventLog { out: None }
    }

    pub fn create(path: &Path) -> Result<EventLog, WriteError> {
        let f = File::create(path).map_err(|source| WriteError { path: path.into(), source })?;
        Ok(EventLog { out: Some((path.into(), BufWriter::new(f))) })
    }

    pub fn emit(&mut self, ev: &RunEvent) -> Result<(), WriteError> {
        let Some((path, w)) = &mut self.out else {
            return Ok(());
        };
        let line = serde_json::to_string(ev).expect("events serialize");
        let r = writeln!(w, "{line}").and_then(|_| w.flush());
        r.map_err(|source| WriteError { path: path.clone(), source })
    }
}

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    // A failed write (a full disk) leaves nothing behind: not a truncated temporary file beside the reports.
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        WriteError { path: path.into(), source }
    })
}

/// Write `value` as pretty JSON to `path` atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), WriteError> {
    let mut text = serde_json::to_string_pretty(value).expect("reports serialize");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Write summary.json, junit.xml and report.html into `dir`.
/// Each is attempted even when one before it failed (a nearly full disk may still take the small ones); the
/// first error is returned.
pub fn write_reports(dir: &Path, summary: &Summary, timeline: &Timeline) -> Result<(), WriteError> {
    let summary_json = write_json_atomic(&dir.join("summary.json"), summary);
    let junit = crate::junit::junit(summary)
        .to_string()
        .map_err(|e| WriteError { path: dir.join("junit.xml"), source: std::io::Error::other(e.to_string()) })
        .and_then(|xml| write_atomic(&dir.join("junit.xml"), xml.as_bytes()));
    let html = write_atomic(&dir.join("report.html"), crate::html::html(summary, timeline).as_bytes());
    summary_json.and(junit).and(html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    #[test]
    fn outcome_names_round_trip_as_kebab_case() {
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.name()));
            assert_eq!(Outcome::from_name(o.name()), Some(o));
        }
    }

    #[test]
    fn events_are_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut log = EventLog::create(&p).unwrap();
        log.emit(&RunEvent::RunEnd {
            cycles: 3,
            unexpected: 0,
            interrupted: false,
            duration_s: 1.5,
            harness_error: None,
        })
        .unwrap();
        log.emit(&RunEvent::CycleStart { cycle: 1, backend: "sqlite".into(), seed: 9, plan: "x".into() }).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["event"], "run-end");
        let back: RunEvent = serde_json::from_str(lines[1]).unwrap();
        assert!(matches!(back, RunEvent::CycleStart { cycle: 1, .. }));
    }

    #[test]
    fn summary_written_atomically_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        let s = crate::fold::Aggregate::new().summary();
        write_json_atomic(&p, &s).unwrap();
        let back: Summary = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
