//! Findings: what the verifier reports, typed, with names a user of rpm recognises and the package concerned.
//!
//! Why typed: the harness classifies a cycle's outcome from the *kind* of finding (an index row missing is
//! `inconsistent`, a damaged lock region `corrupt-env`), and reports count them by kind. Findings only a
//! harness can make (an acknowledged commit missing, a worker that crashed) are the harness's own.

use serde::Serialize;
use std::fmt;

/// How a finding bears on a cycle's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingClass {
    /// Storage engine damage (sqlite integrity, unreadable file).
    Corrupt,
    /// Indexes disagree with Packages, or a transaction was applied in part.
    Inconsistent,
    /// Shared-environment damage (lock region, stale locks): used by the environment backends.
    Environment,
    /// The database could not be opened, read or written.
    Inoperable,
    /// Locks, lockers or thread slots of dead processes remain (or the environment demands recovery).
    StaleLocks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Finding {
    UnreadableHeader {
        hnum: u32,
        error: String,
    },
    DigestMismatch {
        hnum: u32,
        package: String,
        digest: String,
        stored: String,
        computed: String,
    },
    MissingIndexEntry {
        index: String,
        key: String,
        hnum: u32,
        tagnum: u32,
        package: String,
    },
    StaleIndexEntry {
        index: String,
        key: String,
        hnum: u32,
        tagnum: u32,
        package: String,
    },
    DanglingHeaderNumber {
        index: String,
        key: String,
        hnum: u32,
    },
    WrongTagIndex {
        index: String,
        key: String,
        hnum: u32,
        expected: u32,
        found: u32,
        package: String,
    },
    DuplicateEntry {
        index: String,
        key: String,
        hnum: u32,
        tagnum: u32,
        package: String,
    },
    DuplicatePackage {
        package: String,
        hnums: Vec<u32>,
    },
    IntegrityCheck {
        detail: String,
    },
    ForeignKeyViolation {
        table: String,
        rowid: i64,
        hnum: i64,
    },
    SchemaMismatch {
        detail: String,
    },
    UnexpectedPackage {
        package: String,
        detail: String,
    },
    Unopenable {
        detail: String,
    },
    ProbeFailed {
        detail: String,
    },
    /// Damage in the shared lock region, named by the db4 check it breaks.
    LockRegion {
        check: String,
        detail: String,
    },
    /// Damage in the environment header or buffer cache region.
    EnvRegion {
        region: String,
        detail: String,
    },
    /// Locks, lockers, thread slots or mutexes of dead processes.
    StaleLock {
        detail: String,
    },
    /// A data file page that cannot be read.
    DataFileDamaged {
        file: String,
        detail: String,
    },
    /// An error a worker got from the environment, in Berkeley DB's words.
    EnvironmentError {
        by: String,
        message: String,
    },
    /// An engine message that cannot be true of a correct engine (a locker freed twice).
    EngineMessage {
        message: String,
        detail: String,
    },
    /// A conversion by the real rpm left no whole database in place (`state`: neither, mix, or a rerun that
    /// did not finish whole).
    ConversionBroken {
        state: String,
        detail: String,
    },
    /// The real rpm, regenerating the indexes from the same Packages, disagrees with what is stored (or
    /// accepts a different set of headers): `ours` and `rpm` say what each side has.
    RpmDisagrees {
        index: String,
        key: String,
        package: String,
        ours: String,
        rpm: String,
    },
    /// A process was told to run recovery (DB_RUNRECOVERY), or ran out of lock table entries.
    RunRecovery {
        by: String,
        message: String,
    },
}

impl Finding {
    /// The user-facing name of the kind, e.g. "missing index entry".
    pub fn name(&self) -> &'static str {
        match self {
            Finding::UnreadableHeader { .. } => "unreadable header",
            Finding::DigestMismatch { .. } => "digest mismatch",
            Finding::MissingIndexEntry { .. } => "missing index entry",
            Finding::StaleIndexEntry { .. } => "stale index entry",
            Finding::DanglingHeaderNumber { .. } => "dangling header number",
            Finding::WrongTagIndex { .. } => "wrong tag index",
            Finding::DuplicateEntry { .. } => "duplicate entry",
            Finding::DuplicatePackage { .. } => "duplicate package",
            Finding::IntegrityCheck { .. } => "integrity check failed",
            Finding::ForeignKeyViolation { .. } => "foreign key violation",
            Finding::SchemaMismatch { .. } => "schema mismatch",
            Finding::UnexpectedPackage { .. } => "unexpected package",
            Finding::Unopenable { .. } => "database cannot be opened",
            Finding::ProbeFailed { .. } => "operability probe failed",
            Finding::LockRegion { .. } => "lock region damage",
            Finding::EnvRegion { .. } => "environment region damage",
            Finding::StaleLock { .. } => "stale lock",
            Finding::DataFileDamaged { .. } => "data file damage",
            Finding::EnvironmentError { .. } => "environment error",
            Finding::RunRecovery { .. } => "run recovery",
            Finding::EngineMessage { .. } => "engine message",
            Finding::ConversionBroken { .. } => "conversion broken",
            Finding::RpmDisagrees { .. } => "rpm disagrees",
        }
    }

    pub fn class(&self) -> FindingClass {
        match self {
            Finding::UnreadableHeader { .. }
            | Finding::DigestMismatch { .. }
            | Finding::IntegrityCheck { .. }
            | Finding::SchemaMismatch { .. } => FindingClass::Corrupt,
            Finding::Unopenable { .. } | Finding::ProbeFailed { .. } => FindingClass::Inoperable,
            Finding::LockRegion { .. } | Finding::EnvRegion { .. } | Finding::EnvironmentError { .. } => {
                FindingClass::Environment
            }
            Finding::StaleLock { .. } | Finding::RunRecovery { .. } => FindingClass::StaleLocks,
            Finding::EngineMessage { .. } => FindingClass::Environment,
            Finding::DataFileDamaged { .. } => FindingClass::Corrupt,
            Finding::MissingIndexEntry { .. }
            | Finding::StaleIndexEntry { .. }
            | Finding::DanglingHeaderNumber { .. }
            | Finding::WrongTagIndex { .. }
            | Finding::DuplicateEntry { .. }
            | Finding::DuplicatePackage { .. }
            | Finding::ForeignKeyViolation { .. }
            | Finding::UnexpectedPackage { .. }
            | Finding::ConversionBroken { .. }
            | Finding::RpmDisagrees { .. } => FindingClass::Inconsistent,
        }
    }

    /// The package concerned, if one is known.
    pub fn package(&self) -> Option<&str> {
        match self {
            Finding::DigestMismatch { package, .. }
            | Finding::MissingIndexEntry { package, .. }
            | Finding::StaleIndexEntry { package, .. }
            | Finding::WrongTagIndex { package, .. }
            | Finding::DuplicateEntry { package, .. }
            | Finding::DuplicatePackage { package, .. }
            | Finding::UnexpectedPackage { package, .. }
            | Finding::RpmDisagrees { package, .. } => Some(package),
            _ => None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Finding::UnreadableHeader { hnum, error } => write!(f, "header #{hnum}: {error}"),
            Finding::DigestMismatch { hnum, package, digest, stored, computed } => {
                write!(f, "{package} (#{hnum}): {digest} stored {stored}, computed {computed}")
            }
            Finding::MissingIndexEntry { index, key, hnum, tagnum, package } => {
                write!(f, "{index} has no entry {key:?} -> #{hnum} (tag index {tagnum}) for {package}")
            }
            Finding::StaleIndexEntry { index, key, hnum, tagnum, package } => {
                write!(f, "{index} entry {key:?} -> #{hnum} (tag index {tagnum}) is not in the header of {package}")
            }
            Finding::DanglingHeaderNumber { index, key, hnum } => {
                write!(f, "{index} entry {key:?} points at #{hnum}, which is not in Packages")
            }
            Finding::WrongTagIndex { index, key, hnum, expected, found, package } => {
                write!(f, "{index} entry {key:?} -> #{hnum} has tag index {found}, expected {expected} ({package})")
            }
            Finding::DuplicateEntry { index, key, hnum, tagnum, package } => {
                write!(f, "{index} entry {key:?} -> #{hnum} (tag index {tagnum}) is stored twice ({package})")
            }
            Finding::DuplicatePackage { package, hnums } => {
                write!(f, "{package} is installed as {hnums:?}")
            }
            Finding::IntegrityCheck { detail } => f.write_str(detail),
            Finding::ForeignKeyViolation { table, rowid, hnum } => {
                write!(f, "{table} row {rowid} refers to #{hnum}, which is not in Packages")
            }
            Finding::SchemaMismatch { detail } => f.write_str(detail),
            Finding::UnexpectedPackage { package, detail } => write!(f, "{package}: {detail}"),
            Finding::Unopenable { detail } => f.write_str(detail),
            Finding::ProbeFailed { detail } => f.write_str(detail),
            Finding::LockRegion { check, detail } => write!(f, "{check}: {detail}"),
            Finding::EnvRegion { region, detail } => write!(f, "{region}: {detail}"),
            Finding::StaleLock { detail } => f.write_str(detail),
            Finding::DataFileDamaged { file, detail } => write!(f, "{file}: {detail}"),
            Finding::EnvironmentError { by, message } => write!(f, "{by}: {message}"),
            Finding::RunRecovery { by, message } => write!(f, "{by}: {message}"),
            Finding::EngineMessage { message, detail } => write!(f, "{message:?} {detail}"),
            Finding::ConversionBroken { state, detail } => write!(f, "{state}: {detail}"),
            Finding::RpmDisagrees { index, key, package, ours, rpm } => {
                write!(f, "{index} {key:?} of {package}: ours {ours}, rpm {rpm}")
            }
        }
    }
}

/// Render an index key for humans: text if it is printable UTF-8, else hex.
pub fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => s.to_string(),
        _ => format!("0x{}", hex(key)),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}
