//! The recorder's FUSE filesystem: what its daemon serves — every operation passed through to the backing
//! directory, the mutating ones logged with a global sequence number (`oplog.rs`) and counted in the shared
//! acknowledgement page before they are answered. (Starting and stopping the daemon is `recorder.rs`.)

use super::iogate::{self, Gate};
use super::oplog::{self, Ino, Op, ROOT};
use dbtorture_reports::IoOp;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub(super) struct State {
    root: PathBuf,
    paths: HashMap<Ino, PathBuf>,
    inos: HashMap<PathBuf, Ino>,
    next_ino: Ino,
    files: HashMap<u64, (Ino, File)>,
    next_fh: u64,
    pub(super) log: Vec<u8>,
    pub(super) gate: iogate::Counter,
}

const TTL: Duration = Duration::from_secs(60);

impl State {
    /// Bind every path under `root` to an inode, in sorted order, and log the bindings.
    pub(super) fn new(root: &Path, gate: iogate::Counter) -> std::io::Result<State> {
        let mut s = State {
            root: root.to_path_buf(),
            paths: HashMap::new(),
            inos: HashMap::new(),
            next_ino: ROOT + 1,
            files: HashMap::new(),
            next_fh: 1,
            log: oplog::header().to_vec(),
            gate,
        };
        s.paths.insert(ROOT, PathBuf::new());
        s.inos.insert(PathBuf::new(), ROOT);
        oplog::encode_pre(&mut s.log, "", ROOT, true);
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let mut names: Vec<(String, bool)> = std::fs::read_dir(root.join(&rel))?
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().is_ok_and(|t| t.is_dir())))
                .collect();
            names.sort();
            for (name, dir) in names {
                let p = rel.join(&name);
                let ino = s.bind(&p);
                oplog::encode_pre(&mut s.log, &p.to_string_lossy(), ino, dir);
                if dir {
                    stack.push(p);
                }
            }
        }
        Ok(s)
    }

    fn bind(&mut self, rel: &Path) -> Ino {
        if let Some(i) = self.inos.get(rel) {
            return *i;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(ino, rel.to_path_buf());
        self.inos.insert(rel.to_path_buf(), ino);
        ino
    }

    fn record(&mut self, op: &Op) {
        oplog::encode_op(&mut self.log, op);
        self.gate.answered();
    }

    fn rel(&self, ino: Ino) -> Result<&PathBuf, Errno> {
        self.paths.get(&ino).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: Ino, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn attr(&self, ino: Ino, md: &std::fs::Metadata) -> FileAttr {
        let t =
            |s: i64, ns: i64| SystemTime::UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        FileAttr {
            ino: INodeNo(ino),
            size: md.size(),
            blocks: md.blocks(),
            atime: t(md.atime(), md.atime_nsec()),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: if md.is_dir() {
                FileType::Directory
            } else if md.file_type().is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            },
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn stat(&self, ino: Ino) -> Result<FileAttr, Errno> {
        let md = match self.paths.get(&ino) {
            Some(rel) => std::fs::symlink_metadata(self.root.join(rel)),
            // Unlinked but still open: fstat an open handle.
            None => match self.files.values().find(|(i, _)| *i == ino) {
                Some((_, f)) => f.metadata(),
                None => return Err(Errno::ENOENT),
            },
        };
        md.map(|md| self.attr(ino, &md)).map_err(Errno::from)
    }

    fn open_fh(&mut self, ino: Ino, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (ino, file));
        fh
    }

    /// Move the bindings of `from` (and everything under it) to `to`.
    fn rebind(&mut self, from: &Path, to: &Path) {
        if let Some(old) = self.inos.remove(to) {
            self.paths.remove(&old);
        }
        let moved: Vec<(PathBuf, Ino)> =
            self.inos.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        for (p, i) in moved {
            self.inos.remove(&p);
            let np = to.join(p.strip_prefix(from).expect("prefix"));
            self.paths.insert(i, np.clone());
            self.inos.insert(np, i);
        }
    }

    fn unbind(&mut self, rel: &Path) {
        if let Some(i) = self.inos.remove(rel) {
            self.paths.remove(&i);
        }
    }
}

pub(super) struct Fs {
    pub(super) s: Arc<Mutex<State>>,
}

impl Fs {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn name_str(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let md = std::fs::symlink_metadata(s.root.join(&rel)).map_err(Errno::from)?;
            let ino = s.bind(&rel);
            Ok::<_, Errno>(s.attr(ino, &md))
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.st().stat(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.st();
        let res = (|| {
            if let Some(len) = size {
                let r = match fh.and_then(|h| s.files.get(&h.0)) {
                    Some((_, f)) => f.set_len(len),
                    None => {
                        let p = s.root.join(s.rel(ino.0)?);
                        std::fs::OpenOptions::new().write(true).open(p).and_then(|f| f.set_len(len))
                    }
                };
                r.map_err(Errno::from)?;
                s.record(&Op::Truncate { ino: ino.0, len });
            }
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                let p = s.root.join(s.rel(ino.0)?);
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(m & 0o7777)).map_err(Errno::from)?;
            }
            s.stat(ino.0)
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let s = self.st();
        match s.rel(ino.0).and_then(|r| std::fs::read_link(s.root.join(r)).map_err(Errno::from)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let p = s.root.join(&rel);
            std::fs::create_dir(&p).map_err(Errno::from)?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777));
            let ino = s.bind(&rel);
            s.record(&Op::Mkdir { parent: parent.0, name: name_str(name), ino });
            s.stat(ino)
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            std::fs::remove_file(s.root.join(&rel)).map_err(Errno::from)?;
            s.unbind(&rel);
            s.record(&Op::Unlink { parent: parent.0, name: name_str(name) });
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            std::fs::remove_dir(s.root.join(&rel)).map_err(Errno::from)?;
            s.unbind(&rel);
            s.record(&Op::Rmdir { parent: parent.0, name: name_str(name) });
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.st();
        let res = (|| {
            // RENAME_EXCHANGE (an atomic swap, what rebuilddb uses) is passed through; other flags refused.
            let exchange = flags == fuser::RenameFlags::RENAME_EXCHANGE;
            if flags.bits() != 0 && !exchange {
                return Err(Errno::EINVAL);
            }
            if let Gate::Fail(e) = s.gate.check(IoOp::Rename, req.pid()) {
                return Err(Errno::from_i32(e));
            }
            let from = s.child(parent.0, name)?;
            let to = s.child(newparent.0, newname)?;
            let (parent, name, newparent, newname) = (parent.0, name_str(name), newparent.0, name_str(newname));
            if exchange {
                super::swapdir::exchange(&s.root.join(&from), &s.root.join(&to))
                    .map_err(|e| Errno::from_i32(e as i32))?;
                let st = &mut *s;
                super::swapdir::swap_bindings(&mut st.inos, &mut st.paths, &from, &to);
                s.record(&Op::Exchange { parent, name, newparent, newname });
            } else {
                std::fs::rename(s.root.join(&from), s.root.join(&to)).map_err(Errno::from)?;
                s.rebind(&from, &to);
                s.record(&Op::Rename { parent, name, newparent, newname });
            }
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.st();
        let res = (|| {
            let p = s.root.join(s.rel(ino.0)?);
            let acc = flags.0 & libc::O_ACCMODE;
            let f = std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                .open(&p)
                .map_err(Errno::from)?;
            if flags.0 & libc::O_TRUNC != 0 && acc != libc::O_RDONLY {
                f.set_len(0).map_err(Errno::from)?;
                s.record(&Op::Truncate { ino: ino.0, len: 0 });
            }
            Ok::<_, Errno>(s.open_fh(ino.0, f))
        })();
        match res {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let p = s.root.join(&rel);
            let existed = p.exists();
            if existed && flags & libc::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .mode(mode & !umask & 0o7777)
                .open(&p)
                .map_err(Errno::from)?;
            let ino = s.bind(&rel);
            if !existed {
                s.record(&Op::Create { parent: parent.0, name: name_str(name), ino });
            } else if flags & libc::O_TRUNC != 0 {
                s.record(&Op::Truncate { ino, len: 0 });
            }
            let a = s.stat(ino)?;
            Ok::<_, Errno>((a, s.open_fh(ino, f)))
        })();
        match res {
            Ok((a, fh)) => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.st();
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(Errno::from(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.st();
        if !s.files.contains_key(&fh.0) {
            return reply.error(Errno::EBADF);
        }
        let data = match s.gate.check_sized(IoOp::Write, req.pid(), data.len()) {
            Gate::Pass => data,
            Gate::Fail(e) => return reply.error(Errno::from_i32(e)),
            Gate::Short => &data[..iogate::short_len(data.len())],
        };
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        if let Err(e) = f.write_all_at(data, offset) {
            return reply.error(Errno::from(e));
        }
        s.record(&Op::Write { ino: ino.0, off: offset, data: data.to_vec() });
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.st().record(&Op::Flush { ino: ino.0 });
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.st().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let mut s = self.st();
        if let Gate::Fail(e) = s.gate.check(IoOp::Fsync, req.pid()) {
            return reply.error(Errno::from_i32(e));
        }
        s.record(&Op::Fsync { ino: ino.0, datasync });
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.rel(ino.0)?.clone();
            let mut names: Vec<(String, FileType)> = std::fs::read_dir(s.root.join(&rel))
                .map_err(Errno::from)?
                .filter_map(|e| e.ok())
                .map(|e| {
                    let t = match e.file_type() {
                        Ok(t) if t.is_dir() => FileType::Directory,
                        Ok(t) if t.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    (e.file_name().to_string_lossy().into_owned(), t)
                })
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let mut all = vec![(ino.0, FileType::Directory, ".".to_string()), (ROOT, FileType::Directory, "..".into())];
            for (n, t) in names {
                let i = s.bind(&rel.join(&n));
                all.push((i, t, n));
            }
            Ok::<_, Errno>(all)
        })();
        match res {
            Ok(all) => {
                for (k, (i, t, n)) in all.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(i), k as u64 + 1, t, n) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.st();
        if let Gate::Fail(e) = s.gate.check(IoOp::Fsync, req.pid()) {
            return reply.error(Errno::from_i32(e));
        }
        s.record(&Op::FsyncDir { ino: ino.0 });
        reply.ok();
    }

    // fsblkcnt_t is 32 bits on armel (the qemu guest), 64 on x86_64: `u64::from` fits both.
    #[allow(clippy::useless_conversion)]
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.st().root.clone();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(v) => reply.statfs(
                u64::from(v.blocks()),
                u64::from(v.blocks_free()),
                u64::from(v.blocks_available()),
                u64::from(v.files()),
                u64::from(v.files_free()),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        match self.st().stat(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.st();
        if mode != 0 {
            // Punching holes, zero ranges, keep-size: not something the engines here do; refuse loudly.
            return reply.error(Errno::EOPNOTSUPP);
        }
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let res = f.metadata().and_then(|md| {
            let end = offset + length;
            if end > md.size() { f.set_len(end).map(|_| Some(end)) } else { Ok(None) }
        });
        match res {
            Ok(grown) => {
                if let Some(len) = grown {
                    s.record(&Op::Truncate { ino: ino.0, len });
                }
                reply.ok()
            }
            Err(e) => reply.error(Errno::from(e)),
        }
    }
}
