//! Forking a cycle's children (writers and readers, or the conversion) with what each needs before it
//! runs — its crash-point slot, its region faults (mlock, MADV_PAGEOUT, from the harness side for every
//! engine) — and reporting what those region faults measurably did.
//!
//! Why its own module: the scheduler's cycle reads as plan → spawn → supervise → judge → record; this is
//! the spawn step, with the per-child set-up that would otherwise sit inline in it.

use super::*;

impl Scheduler<'_> {
    /// Fork the cycle's children: writers and readers, or the conversion.
    pub(super) fn spawn(&self, t: usize, cycle: u64, plan: &CyclePlan) -> Result<Vec<Child>> {
        let words = self.slots.words();
        let w = &self.scenario.workload;
        let mut children = Vec::with_capacity(plan.children.len());
        for (i, cp) in plan.children.iter().enumerate() {
            let slot = &words[i * crashpoint::SLOT_WORDS..(i + 1) * crashpoint::SLOT_WORDS];
            let (arm, after) = plan.arming(i);
            crashpoint::arm_at(slot, arm, after);
            let tickets = self
                .replay_schedule
                .as_ref()
                .and_then(|s| s.get(i))
                .map(|t| (t.as_slice(), crate::fault::schedule::end_of(self.replay_kills.as_deref(), i)));
            crate::fault::schedule::arm(crashpoint::schedule_words(slot), tickets);
            let global_at = self.max_children * crashpoint::SLOT_WORDS;
            let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().context("pipe")?;
            let shared = &self.slots;
            let wr_ref = &wr;
            let memcg = self.memcg.as_ref();
            let dir = self.targets[t].dir.as_path();
            let regions = self.region_faults(dir);
            let (role, pid) = match plan.work {
                Work::Workers { writers, .. } => {
                    let role = if (i as u32) < writers { Role::Writer } else { Role::Reader };
                    let installed: BTreeSet<u32> = match role {
                        Role::Writer => self.targets[t]
                            .installed
                            .iter()
                            .copied()
                            .filter(|&id| in_slice(&self.pool, id, i as u32, writers))
                            .collect(),
                        _ => BTreeSet::new(),
                    };
                    let spec = WorkerSpec {
                        index: i as u32,
                        role,
                        writers,
                        backend: self.targets[t].kind,
                        dir,
                        seed: cp.seed,
                        ops: if role == Role::Writer { w.txns_per_writer } else { w.queries_per_reader },
                        txn_base: cycle * 1_000_000 + i as u64 * 10_000,
                        installed,
                    };
                    let pool = &self.pool;
                    let pid = sys::fork_child(move || {
                        if let Some(cg) = memcg
                            && cg.add(std::process::id()).is_err()
                        {
                            return ChildExit::SetupFailed.code();
                        }
                        let all = shared.child_static();
                        let slot = &all[i * crashpoint::SLOT_WORDS..(i + 1) * crashpoint::SLOT_WORDS];
                        crashpoint::install(slot, regions, &all[global_at..]);
                        match wr_ref.try_clone() {
                            Ok(fd) => worker::run(spec, pool, std::fs::File::from(fd)),
                            Err(_) => ChildExit::PipeBroken.code(),
                        }
                    })?;
                    (role, pid)
                }
                Work::Convert { from, to, by } => {
                    let pid = sys::fork_child(move || {
                        let all = shared.child_static();
                        crashpoint::install(&all[..crashpoint::SLOT_WORDS], regions, &all[global_at..]);
                        match wr_ref.try_clone() {
                            Ok(fd) => worker::convert(from, to, by, dir, std::fs::File::from(fd)),
                            Err(_) => ChildExit::PipeBroken.code(),
                        }
                    })?;
                    (Role::Rebuilddb, pid)
                }
            };
            drop(wr);
            nix::fcntl::fcntl(rd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
            children.push(Child::new(i as u32, role, pid, Some(std::fs::File::from(rd)), cp.kill.clone()));
        }
        Ok(children)
    }

    /// What the region faults (mlock, MADV_PAGEOUT) do inside this cycle's children.
    fn region_faults(&self, dir: &Path) -> crate::fault::regions::Config {
        let sc = self.scenario;
        crate::fault::regions::Config {
            dir: dir.to_path_buf(),
            mlock: sc.stale_page.as_ref().is_some_and(|s| s.mlock),
            pageout: sc.memory.as_ref().is_some_and(|m| m.pageout),
        }
    }

    /// Say what the region faults measurably did in the children (never what they were only asked to do).
    pub(super) fn report_regions(&self, words: &[crate::sys::AtomicU64], ctx: &mut Ctx<'_>) {
        let cfg = self.region_faults(Path::new(""));
        let per: Vec<crate::fault::regions::Measured> =
            words.chunks(crashpoint::SLOT_WORDS).map(crate::fault::regions::measured).collect();
        if cfg.mlock {
            ctx.fault(FaultKind::Mlock, crate::fault::regions::describe_mlock(&per));
        }
        if cfg.pageout {
            ctx.fault(FaultKind::Pageout, crate::fault::regions::describe_pageout(&per));
        }
    }
}
