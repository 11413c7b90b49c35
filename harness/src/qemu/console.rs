//! The serial-console protocol between the guest's `/init` and the host runner.
//!
//! Why: qemu's exit status says nothing about the guest, and the serial line is the only channel that
//! works even when the guest kernel dies. The guest frames what the host must act on as lines starting with
//! [`PREFIX`] (boot milestones, every run event, the final sentinel); everything else on the line is the
//! kernel's or the run's own output, scanned for oopses and panics. The SD image stays the authoritative
//! copy of the results; the framed events are the fallback when it cannot be read.

use dbtorture_reports::RunEvent;

/// Every framed line starts with this (possibly after kernel noise that interrupted the line).
pub const PREFIX: &str = "@@dbtorture ";

/// What the guest says, framed.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestMsg {
    /// `/init` started (guest uptime in seconds).
    Init { uptime_s: f64 },
    /// Mounts, modules and cgroups are set up; the run starts now.
    Ready { uptime_s: f64 },
    /// One line of the run's events.jsonl.
    Event(Box<RunEvent>),
    /// `/init` could not set the guest up or run the job.
    Error(String),
    /// The sentinel: the run exited with `exit`, results are synced and the SD card unmounted.
    Done { exit: i32, uptime_s: f64 },
}

impl GuestMsg {
    /// The line the guest prints (without the newline).
    pub fn frame(&self) -> String {
        let body = match self {
            GuestMsg::Init { uptime_s } => format!("init uptime={uptime_s:.2}"),
            GuestMsg::Ready { uptime_s } => format!("ready uptime={uptime_s:.2}"),
            GuestMsg::Event(ev) => format!("ev {}", serde_json::to_string(ev).expect("events serialize")),
            GuestMsg::Error(text) => format!("error {}", text.replace(['\n', '\r'], " ")),
            GuestMsg::Done { exit, uptime_s } => format!("done exit={exit} uptime={uptime_s:.2}"),
        };
        format!("{PREFIX}{body}")
    }

    /// Parse a console line (trailing `\r` and kernel noise before the prefix are tolerated). `None` for
    /// lines that are not framed, or framed lines damaged in transit (e.g. cut by a kernel message).
    pub fn parse(line: &str) -> Option<GuestMsg> {
        let line = line.trim_end_matches(['\r', '\n']);
        let body = &line[line.find(PREFIX)? + PREFIX.len()..];
        let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
        let field =
            |key: &str| rest.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
        match word {
            "init" => Some(GuestMsg::Init { uptime_s: field("uptime")?.parse().ok()? }),
            "ready" => Some(GuestMsg::Ready { uptime_s: field("uptime")?.parse().ok()? }),
            "ev" => serde_json::from_str(rest).ok().map(|e| GuestMsg::Event(Box::new(e))),
            "error" => Some(GuestMsg::Error(rest.to_string())),
            "done" => {
                Some(GuestMsg::Done { exit: field("exit")?.parse().ok()?, uptime_s: field("uptime")?.parse().ok()? })
            }
            _ => None,
        }
    }
}

/// A guest kernel in trouble, recognised on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelTrouble {
    /// A warning worth keeping (WARN_ON, soft lockup, hung task); the guest carries on.
    Warning,
    /// An oops or BUG: the kernel killed a task; the guest may limp on but can no longer be trusted.
    Oops,
    /// `Kernel panic - not syncing`: the guest is dead.
    Panic,
}

/// Whether a console line reports kernel trouble (the printk timestamp prefix, if any, is ignored).
pub fn kernel_trouble(line: &str) -> Option<KernelTrouble> {
    const PANIC: &[&str] = &["Kernel panic - not syncing"];
    const OOPS: &[&str] = &[
        "Internal error: Oops",
        "Unable to handle kernel",
        "kernel BUG at",
        "BUG: ",
        "Oops: ",
        "Oops - ",
        "Unhandled fault:",
    ];
    const WARNING: &[&str] = &["WARNING: CPU:", "soft lockup", "blocked for more than", "Out of memory:"];
    if line.contains(PREFIX) {
        return None; // our own framing (e.g. a finding's text) is never the kernel's
    }
    let hit = |pats: &[&str]| pats.iter().any(|p| line.contains(p));
    if hit(PANIC) {
        Some(KernelTrouble::Panic)
    } else if hit(OOPS) {
        Some(KernelTrouble::Oops)
    } else if hit(WARNING) {
        Some(KernelTrouble::Warning)
    } else {
        None
    }
}

/// Splits a byte stream into lines, however the reads happen to cut it (the serial line delivers bytes).
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feed bytes; returns the complete lines (without `\n` and `\r`), lossily decoded.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial).trim_end_matches('\r').to_string();
                out.push(line);
                self.partial.clear();
            } else {
                self.partial.push(b);
            }
        }
        out
    }

    /// What is left after the stream ended (a last line without newline), if anything.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).trim_end_matches('\r').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtorture_reports::Outcome;

    #[test]
    fn framed_messages_round_trip_through_the_console() {
        let ev = RunEvent::CycleEnd {
            cycle: 3,
            backend: "bdbenv".into(),
            outcome: Outcome::StaleLocks,
            expected: true,
            findings: 2,
            commits: 7,
            duration_ms: 812.5,
            armed: Some("bdbenv.put.before".into()),
            hits: [("bdbenv.put.before".to_string(), 3)].into(),
            index_rows: Default::default(),
        };
        for m in [
            GuestMsg::Init { uptime_s: 2.61 },
            GuestMsg::Ready { uptime_s: 4.0 },
            GuestMsg::Event(Box::new(ev)),
            GuestMsg::Error("mount /dev/mmcblk0 on /sd: ENODEV".into()),
            GuestMsg::Done { exit: 1, uptime_s: 93.25 },
        ] {
            let line = m.frame();
            assert!(line.starts_with(PREFIX));
            assert!(!line.contains('\n'));
            assert_eq!(GuestMsg::parse(&format!("{line}\r")), Some(m.clone()), "{line}");
        }
    }

    #[test]
    fn framed_lines_are_found_after_kernel_noise_and_damage_is_dropped() {
        let line = format!("[   12.3] random: crng init done{}", GuestMsg::Done { exit: 0, uptime_s: 1.0 }.frame());
        assert_eq!(GuestMsg::parse(&line), Some(GuestMsg::Done { exit: 0, uptime_s: 1.0 }));
        // An event cut in half by a kernel message is not an event.
        assert_eq!(GuestMsg::parse("@@dbtorture ev {\"event\":\"cycle-end\",\"cyc[  3.1] mmc0: new"), None);
        assert_eq!(GuestMsg::parse("@@dbtorture done exit=zero uptime=1"), None);
        assert_eq!(GuestMsg::parse("plain output"), None);
        assert_eq!(GuestMsg::parse("@@dbtorture frobnicate"), None);
    }

    #[test]
    fn kernel_panics_and_oopses_are_recognised_on_arm_console_lines() {
        let arm_oops = [
            "[   47.101] 8<--- cut here ---",
            "[   47.102] Unable to handle kernel NULL pointer dereference at virtual address 00000000",
            "[   47.110] Internal error: Oops: 805 [#1] ARM",
        ];
        assert_eq!(kernel_trouble(arm_oops[0]), None);
        assert_eq!(kernel_trouble(arm_oops[1]), Some(KernelTrouble::Oops));
        assert_eq!(kernel_trouble(arm_oops[2]), Some(KernelTrouble::Oops));
        assert_eq!(
            kernel_trouble("[   48.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"),
            Some(KernelTrouble::Panic)
        );
        assert_eq!(
            kernel_trouble("[    9.9] BUG: scheduling while atomic: init/1/0x00000002"),
            Some(KernelTrouble::Oops)
        );
        assert_eq!(
            kernel_trouble("[  120.0] INFO: task dbtorture:77 blocked for more than 120 seconds."),
            Some(KernelTrouble::Warning)
        );
        assert_eq!(kernel_trouble("[    3.1] EXT4-fs (mmcblk0): mounted filesystem"), None);
        // A finding whose text mentions a panic is the harness talking, not the kernel.
        assert_eq!(kernel_trouble("@@dbtorture error Kernel panic - not syncing"), None);
        assert!(KernelTrouble::Panic > KernelTrouble::Oops && KernelTrouble::Oops > KernelTrouble::Warning);
    }

    #[test]
    fn lines_are_split_however_the_serial_reads_cut_them() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"@@dbtorture ini").is_empty());
        assert_eq!(s.push(b"t uptime=1.00\r\nboot"), vec!["@@dbtorture init uptime=1.00".to_string()]);
        assert_eq!(s.push(b"ing\r\n\r\n"), vec!["booting".to_string(), String::new()]);
        assert_eq!(s.push(b"tail"), Vec::<String>::new());
        assert_eq!(s.finish(), Some("tail".to_string()));
        assert_eq!(s.finish(), None);
    }
}
