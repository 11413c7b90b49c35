//! The recorder's log: every mutating file operation on a database directory, in the order the filesystem
//! saw it, with a global sequence number (its position in [`Log::ops`]).
//!
//! Why a log of its own (and not strace-like text): the crash-image model replays it many times per cycle,
//! and a bundle must carry it so `replay` rebuilds an image byte for byte. The encoding is a small
//! length-prefixed binary format (little-endian, stated at each field) that decodes garbage into an error,
//! never a panic or an unbounded allocation.

use std::collections::BTreeMap;

/// An inode number of the recorder's (not the backing filesystem's). 1 is the mounted directory.
pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `write` (or a dirty shared-mmap page written back) of `data` at `off`.
    Write {
        ino: Ino,
        off: u64,
        data: Vec<u8>,
    },
    /// `truncate`/`ftruncate` to `len`.
    Truncate {
        ino: Ino,
        len: u64,
    },
    /// A new regular file `name` in `parent`, as inode `ino`.
    Create {
        parent: Ino,
        name: String,
        ino: Ino,
    },
    Mkdir {
        parent: Ino,
        name: String,
        ino: Ino,
    },
    Unlink {
        parent: Ino,
        name: String,
    },
    Rmdir {
        parent: Ino,
        name: String,
    },
    Rename {
        parent: Ino,
        name: String,
        newparent: Ino,
        newname: String,
    },
    /// `renameat2(RENAME_EXCHANGE)`: the two entries swap their inodes in one step.
    Exchange {
        parent: Ino,
        name: String,
        newparent: Ino,
        newname: String,
    },
    /// `fsync` (`datasync`: `fdatasync`; `msync(MS_SYNC)` arrives as this too) of a file, returned Ok.
    Fsync {
        ino: Ino,
        datasync: bool,
    },
    /// `fsync` of a directory, returned Ok.
    FsyncDir {
        ino: Ino,
    },
    /// `close` of a descriptor (FUSE flush): no durability, recorded for the bundle's reader.
    Flush {
        ino: Ino,
    },
}

impl Op {
    /// The sync operations: the boundaries at which a crash image is always taken.
    pub fn is_sync(&self) -> bool {
        matches!(self, Op::Fsync { .. } | Op::FsyncDir { .. })
    }
    /// Operations on directory entries (the metadata journal).
    pub fn is_meta(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Mkdir { .. }
                | Op::Unlink { .. }
                | Op::Rmdir { .. }
                | Op::Rename { .. }
                | Op::Exchange { .. }
        )
    }
}

/// What the recorder saw: the inodes it bound to the directory's contents when mounting, then the ops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    /// Path (relative, '/'-separated) → inode, for everything present at mount time (directories included).
    pub pre: BTreeMap<String, (Ino, bool)>,
    pub ops: Vec<Op>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("operation log: truncated at byte {0}")]
    Truncated(usize),
    #[error("operation log: unknown record tag {tag} at byte {at}")]
    Tag { tag: u8, at: usize },
    #[error("operation log: bad magic")]
    Magic,
    #[error("operation log: a name is not UTF-8 at byte {0}")]
    Utf8(usize),
}

const MAGIC: &[u8; 8] = b"DBTPLOG1";

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encode one op (also used by the recorder to stream records as they happen).
pub fn encode_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { ino, off, data } => {
            out.push(b'W');
            put_u64(out, *ino);
            put_u64(out, *off);
            put_bytes(out, data);
        }
        Op::Truncate { ino, len } => {
            out.push(b'T');
            put_u64(out, *ino);
            put_u64(out, *len);
        }
        Op::Create { parent, name, ino } | Op::Mkdir { parent, name, ino } => {
            out.push(if matches!(op, Op::Create { .. }) { b'C' } else { b'M' });
            put_u64(out, *parent);
            put_bytes(out, name.as_bytes());
            put_u64(out, *ino);
        }
        Op::Unlink { parent, name } | Op::Rmdir { parent, name } => {
            out.push(if matches!(op, Op::Unlink { .. }) { b'U' } else { b'D' });
            put_u64(out, *parent);
            put_bytes(out, name.as_bytes());
        }
        Op::Rename { parent, name, newparent, newname } | Op::Exchange { parent, name, newparent, newname } => {
            out.push(if matches!(op, Op::Rename { .. }) { b'R' } else { b'X' });
            put_u64(out, *parent);
            put_bytes(out, name.as_bytes());
            put_u64(out, *newparent);
            put_bytes(out, newname.as_bytes());
        }
        Op::Fsync { ino, datasync } => {
            out.push(if *datasync { b'd' } else { b'F' });
            put_u64(out, *ino);
        }
        Op::FsyncDir { ino } => {
            out.push(b'S');
            put_u64(out, *ino);
        }
        Op::Flush { ino } => {
            out.push(b'L');
            put_u64(out, *ino);
        }
    }
}

/// Encode a pre-binding record (path present at mount time).
pub fn encode_pre(out: &mut Vec<u8>, path: &str, ino: Ino, dir: bool) {
    out.push(if dir { b'p' } else { b'P' });
    put_u64(out, ino);
    put_bytes(out, path.as_bytes());
}

pub fn header() -> &'static [u8] {
    MAGIC
}

impl Log {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (path, (ino, dir)) in &self.pre {
            encode_pre(&mut out, path, *ino, *dir);
        }
        for op in &self.ops {
            encode_op(&mut out, op);
        }
        out
    }

    /// Decode a log; a record cut short at the end (the recorder killed mid-write) is an error.
    pub fn decode(b: &[u8]) -> Result<Log, DecodeError> {
        if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
            return Err(DecodeError::Magic);
        }
        let mut r = Reader { b, at: MAGIC.len() };
        let mut log = Log::default();
        while r.at < b.len() {
            let at = r.at;
            let tag = r.byte()?;
            let op = match tag {
                b'W' => Op::Write { ino: r.u64()?, off: r.u64()?, data: r.bytes()?.to_vec() },
                b'T' => Op::Truncate { ino: r.u64()?, len: r.u64()? },
                b'C' => Op::Create { parent: r.u64()?, name: r.string()?, ino: r.u64()? },
                b'M' => Op::Mkdir { parent: r.u64()?, name: r.string()?, ino: r.u64()? },
                b'U' => Op::Unlink { parent: r.u64()?, name: r.string()? },
                b'D' => Op::Rmdir { parent: r.u64()?, name: r.string()? },
                b'R' => Op::Rename { parent: r.u64()?, name: r.string()?, newparent: r.u64()?, newname: r.string()? },
                b'X' => Op::Exchange { parent: r.u64()?, name: r.string()?, newparent: r.u64()?, newname: r.string()? },
                b'F' => Op::Fsync { ino: r.u64()?, datasync: false },
                b'd' => Op::Fsync { ino: r.u64()?, datasync: true },
                b'S' => Op::FsyncDir { ino: r.u64()? },
                b'L' => Op::Flush { ino: r.u64()? },
                b'P' | b'p' => {
                    let ino = r.u64()?;
                    let path = r.string()?;
                    log.pre.insert(path, (ino, tag == b'p'));
                    continue;
                }
                tag => return Err(DecodeError::Tag { tag, at }),
            };
            log.ops.push(op);
        }
        Ok(log)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(DecodeError::Truncated(self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let s = self.take(8)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u64()?;
        // Bounded by what is left: a garbage length is "truncated", not an allocation.
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated(self.at))?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.at;
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::Utf8(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Log {
        let mut log = Log::default();
        log.pre.insert(String::new(), (ROOT, true));
        log.pre.insert("rpmdb.sqlite".into(), (2, false));
        log.ops = vec![
            Op::Create { parent: ROOT, name: "rpmdb.sqlite-wal".into(), ino: 3 },
            Op::Write { ino: 3, off: 4096, data: vec![7; 100] },
            Op::Truncate { ino: 2, len: 8192 },
            Op::Fsync { ino: 3, datasync: true },
            Op::Fsync { ino: 2, datasync: false },
            Op::Rename { parent: ROOT, name: "a".into(), newparent: ROOT, newname: "b".into() },
            Op::Unlink { parent: ROOT, name: "b".into() },
            Op::Exchange { parent: ROOT, name: "c".into(), newparent: ROOT, newname: "e".into() },
            Op::Mkdir { parent: ROOT, name: "d".into(), ino: 4 },
            Op::Rmdir { parent: ROOT, name: "d".into() },
            Op::FsyncDir { ino: ROOT },
            Op::Flush { ino: 3 },
        ];
        log
    }

    #[test]
    fn log_round_trips() {
        let log = sample();
        assert_eq!(Log::decode(&log.encode()).unwrap(), log);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            // Every strict prefix either decodes to fewer ops or errs; none panics.
            if let Ok(l) = Log::decode(&bytes[..cut]) {
                assert!(l.ops.len() < sample().ops.len() || l.pre.len() < 2);
            }
        }
        let mut huge = MAGIC.to_vec();
        huge.push(b'W');
        huge.extend_from_slice(&[1; 16]);
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Log::decode(&huge), Err(DecodeError::Truncated(_))));
        assert_eq!(Log::decode(b"nope"), Err(DecodeError::Magic));
    }
}
