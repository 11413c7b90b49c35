//! Putting the lanes' events back into the order one lane would have written them: cycle by cycle, in the
//! run's (or shard's) cycle order, each cycle's events (all its backends) as one block.
//!
//! Why: the summary, the timeline and the failure list are a fold over `events.jsonl` in file order; with
//! the events in the `--jobs 1` order, a `--jobs N` run folds to the same summary. A cycle waits here until
//! every earlier cycle of the run has ended; at the end of the run (finished, interrupted, failed) what is
//! left is written in cycle order, gaps and all.

use dbtorture_reports::{RunEvent, Shard};
use std::collections::BTreeMap;

/// The reorder buffer: open blocks per lane, ended blocks waiting for the cycles before them.
#[derive(Debug)]
pub struct Order {
    shard: Option<Shard>,
    epoch_len: u64,
    /// The cycle whose block is written next.
    next: u64,
    ended: BTreeMap<u64, Vec<RunEvent>>,
    open: BTreeMap<usize, (u64, Vec<RunEvent>)>,
}

/// A lane broke the protocol: an event outside any cycle it had begun.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("lane {lane} sent an event outside a cycle")]
pub struct OutsideCycle {
    pub lane: usize,
}

impl Order {
    pub fn new(shard: Option<Shard>, epoch_len: u64) -> Order {
        let epoch_len = epoch_len.max(1);
        let next = shard.map_or(0, |s| u64::from(s.index - 1) * epoch_len);
        Order { shard, epoch_len, next, ended: BTreeMap::new(), open: BTreeMap::new() }
    }

    /// The cycle after `c` in the run's order (the shard's epochs only).
    fn after(&self, c: u64) -> u64 {
        let n = c + 1;
        match self.shard {
            Some(s) if !crate::run::in_shard(self.shard, self.epoch_len, n) => {
                let (count, index) = (u64::from(s.count), u64::from(s.index) - 1);
                let e = n / self.epoch_len;
                (e + (index + count - e % count) % count) * self.epoch_len
            }
            _ => n,
        }
    }

    /// Lane `lane` begins cycle `cycle` (a block it had open is ended as it is).
    pub fn begin(&mut self, lane: usize, cycle: u64) {
        if let Some((c, evs)) = self.open.insert(lane, (cycle, Vec::new())) {
            self.ended.entry(c).or_default().extend(evs);
        }
    }

    pub fn event(&mut self, lane: usize, ev: RunEvent) -> Result<(), OutsideCycle> {
        let (_, evs) = self.open.get_mut(&lane).ok_or(OutsideCycle { lane })?;
        evs.push(ev);
        Ok(())
    }

    /// Lane `lane` ended its cycle: the events now in order, ready to write (maybe none yet).
    pub fn end(&mut self, lane: usize) -> Vec<RunEvent> {
        if let Some((c, evs)) = self.open.remove(&lane) {
            self.ended.entry(c).or_default().extend(evs);
        }
        let mut out = Vec::new();
        while let Some(evs) = self.ended.remove(&self.next) {
            out.extend(evs);
            self.next = self.after(self.next);
        }
        out
    }

    /// Events held back so far (a lane far ahead of a slow one).
    pub fn held(&self) -> usize {
        self.ended.values().chain(self.open.values().map(|(_, e)| e)).map(Vec::len).sum()
    }

    /// The run is over: everything left, in cycle order (open blocks of interrupted cycles included).
    pub fn finish(mut self) -> Vec<RunEvent> {
        for (_, (c, evs)) in std::mem::take(&mut self.open) {
            self.ended.entry(c).or_default().extend(evs);
        }
        self.ended.into_values().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(cycle: u64) -> RunEvent {
        RunEvent::CycleStart { cycle, backend: "sqlite".into(), seed: cycle, plan: Default::default() }
    }

    fn cycles(evs: &[RunEvent]) -> Vec<u64> {
        evs.iter()
            .map(|e| match e {
                RunEvent::CycleStart { cycle, .. } => *cycle,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_cycle_waits_for_the_ones_before_it() {
        let mut o = Order::new(None, 2);
        o.begin(1, 2);
        o.event(1, start(2)).unwrap();
        assert!(o.end(1).is_empty(), "cycle 2 must wait for 0 and 1");
        o.begin(0, 0);
        o.event(0, start(0)).unwrap();
        assert_eq!(cycles(&o.end(0)), [0]);
        o.begin(0, 1);
        o.event(0, start(1)).unwrap();
        assert_eq!(o.held(), 2);
        assert_eq!(cycles(&o.end(0)), [1, 2]);
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn shards_skip_the_other_shards_epochs() {
        // Shard 2/3 of epochs of 2: cycles 2, 3, 8, 9, 14, …
        let mut o = Order::new(Some(Shard { index: 2, count: 3 }), 2);
        assert_eq!(o.next, 2);
        assert_eq!([o.after(2), o.after(3), o.after(9)], [3, 8, 14]);
        o.begin(0, 8);
        o.event(0, start(8)).unwrap();
        assert!(o.end(0).is_empty());
        for c in [2, 3] {
            o.begin(1, c);
            o.event(1, start(c)).unwrap();
        }
        // Beginning cycle 3 ended lane 1's block of cycle 2.
        assert_eq!(cycles(&o.end(1)), [2, 3, 8]);
    }

    #[test]
    fn finish_writes_what_is_left_in_cycle_order() {
        let mut o = Order::new(None, 10);
        o.begin(1, 10);
        o.event(1, start(10)).unwrap();
        o.begin(0, 3);
        o.event(0, start(3)).unwrap();
        assert_eq!(o.event(2, start(0)), Err(OutsideCycle { lane: 2 }));
        assert_eq!(cycles(&o.finish()), [3, 10]);
    }
}
