//! A cycle's report context: which cycle of which backend, and the observer its events go to.
//!
//! Why: every event of a cycle carries the same cycle number and backend name; threading
//! `(cycle, &bname, obs)` through every function invited mismatches. Events are built here, typed, and
//! nowhere else in the scheduler.

use super::Observer;
use crate::finding::Finding;
use dbtorture_backends::BackendKind;
use dbtorture_reports::{FaultKind, FindingRecord, KillRecord, Role, RunEvent, WorkerEnd};

/// The worker number engine messages of the operability probe carry.
pub const PROBE_WORKER: u32 = u32::MAX;

pub struct Ctx<'o> {
    pub cycle: u64,
    pub backend: BackendKind,
    obs: &'o mut dyn Observer,
}

impl<'o> Ctx<'o> {
    pub fn new(cycle: u64, backend: BackendKind, obs: &'o mut dyn Observer) -> Ctx<'o> {
        Ctx { cycle, backend, obs }
    }

    fn name(&self) -> String {
        self.backend.name().to_string()
    }

    pub fn emit(&mut self, ev: &RunEvent) {
        self.obs.event(ev);
    }

    pub fn observer(&mut self) -> &mut dyn Observer {
        self.obs
    }

    pub fn cycle_start(&mut self, seed: u64, plan: String) {
        let ev = RunEvent::CycleStart { cycle: self.cycle, backend: self.name(), seed, plan };
        self.obs.event(&ev);
    }

    pub fn fault(&mut self, kind: FaultKind, detail: String) {
        let ev = RunEvent::Fault { cycle: self.cycle, backend: self.name(), kind, detail };
        self.obs.event(&ev);
    }

    pub fn kill(&mut self, kill: &KillRecord) {
        let ev = RunEvent::Kill { cycle: self.cycle, backend: self.name(), kill: kill.clone() };
        self.obs.event(&ev);
    }

    pub fn worker_exit(&mut self, worker: u32, role: Role, end: &WorkerEnd) {
        let ev = RunEvent::WorkerExit { cycle: self.cycle, backend: self.name(), worker, role, end: end.clone() };
        self.obs.event(&ev);
    }

    pub fn finding(&mut self, phase: &str, f: &Finding) {
        let ev = RunEvent::Finding { cycle: self.cycle, backend: self.name(), phase: phase.into(), finding: record(f) };
        self.obs.event(&ev);
    }

    pub fn io_error(&mut self, io: dbtorture_reports::IoErrorRecord) {
        let ev = RunEvent::IoError { cycle: self.cycle, backend: self.name(), io };
        self.obs.event(&ev);
    }

    pub fn engine_message(&mut self, worker: u32, message: String) {
        let ev = RunEvent::EngineMessage { cycle: self.cycle, backend: self.name(), worker, message };
        self.obs.event(&ev);
    }

    pub fn recovery(&mut self, procedure: &str, ok: bool, detail: String) {
        let ev =
            RunEvent::Recovery { cycle: self.cycle, backend: self.name(), procedure: procedure.into(), ok, detail };
        self.obs.event(&ev);
    }

    pub fn conversion(
        &mut self,
        state: dbtorture_reports::ConversionState,
        killed: bool,
        rerun_ok: bool,
        detail: String,
    ) {
        let ev = RunEvent::Conversion { cycle: self.cycle, backend: self.name(), state, killed, rerun_ok, detail };
        self.obs.event(&ev);
    }

    pub fn bundle(&mut self, path: String) {
        let ev = RunEvent::Bundle { cycle: self.cycle, backend: self.name(), path };
        self.obs.event(&ev);
    }

    pub fn memory(&mut self, d: &crate::fault::memory::MemEvents) {
        let ev = RunEvent::Memory {
            cycle: self.cycle,
            backend: self.name(),
            limit_hits: d.limit_hits,
            high: d.high,
            oom_kills: d.oom_kills,
            pageouts: d.pageouts,
        };
        self.obs.event(&ev);
    }
}

/// A finding as reports carry it.
pub fn record(f: &Finding) -> FindingRecord {
    let detail = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
    let kind = detail.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_string();
    FindingRecord { kind, message: f.to_string(), package: f.package().map(str::to_string), detail }
}
