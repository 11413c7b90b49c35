//! Expectations that depend on what happened: `[[expect_when]]` rules, each saying which outcomes a cycle of
//! one backend must have when its recorded faults were of one shape ("no fault → clean", "readers-only kills
//! on bdbenv with failchk → clean").
//!
//! Why: `[expect]` allows outcomes over every cycle of a backend, so it must allow the worst any fault can
//! cause (`hang`, `recovered`) — and then also allows them for a cycle no fault touched, or one where failchk
//! alone should have been enough. A rule narrows the allowed outcomes for the cycles it applies to; the
//! scheduler judges it (`scheduler/expectations.rs`).

use dbtorture_backends::BackendKind;
use dbtorture_backends::explain::Cause;
use dbtorture_reports::{KillRecord, KillTrigger, Outcome, Role};
use serde::Deserialize;

/// One `[[expect_when]]` table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenRule {
    /// The backend the rule is about (one of the scenario's `backends`).
    #[schemars(with = "String")]
    pub backend: BackendKind,
    /// The shape of the cycle's recorded faults the rule applies to: `none` or `readers-only`.
    pub faults: FaultShape,
    /// The outcomes such a cycle may have (at least one).
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub outcomes: Vec<Outcome>,
}

/// What a cycle's recorded faults were, as far as a rule can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultShape {
    /// No fault at all: no kill landed (the timeout's kills are a hang's effect, not a fault), no worker
    /// ended on an error, no stale page written, no memory pressure, nothing left by earlier cycles.
    None,
    /// Only readers were killed: at least one reader kill, and nothing else of the above.
    ReadersOnly,
}

impl FaultShape {
    pub fn name(self) -> &'static str {
        match self {
            FaultShape::None => "none",
            FaultShape::ReadersOnly => "readers-only",
        }
    }
}

/// What a cycle recorded, for deciding its [`FaultShape`].
pub struct CycleFaults<'a> {
    /// Every kill of the cycle (timeout and interrupt kills included; they are ignored).
    pub kills: &'a [KillRecord],
    /// The cycle's causes (`scheduler::explain::causes`), carried ones included.
    pub causes: &'a [Cause],
    /// The causes carried in from earlier cycles.
    pub carried: &'a [Cause],
    /// A worker ended on an error it reported (it left without closing, like a killed one).
    pub exited_on_error: bool,
}

impl CycleFaults<'_> {
    /// The shape of these faults (None: one no rule names, e.g. a writer killed).
    pub fn shape(&self) -> Option<FaultShape> {
        if self.causes.is_empty() {
            return Some(FaultShape::None);
        }
        let landed: Vec<_> =
            self.kills.iter().filter(|k| !matches!(k.trigger, KillTrigger::Timeout | KillTrigger::Interrupt)).collect();
        let readers_only = self.causes == [Cause::Kill]
            && self.carried.is_empty()
            && !self.exited_on_error
            && !landed.is_empty()
            && landed.iter().all(|k| k.role == Role::Reader);
        readers_only.then_some(FaultShape::ReadersOnly)
    }
}

impl super::Scenario {
    /// Each rule names a backend the scenario runs, allows at least one outcome, and can apply at all.
    pub(super) fn validate_when(&self) -> Result<(), super::ScenarioError> {
        if !self.expect_when.is_empty() && self.power_loss.is_some() {
            // A power-loss cycle is judged per crash image, not by its processes' faults: no rule applies.
            return Err(self.field_err(
                "expect_when",
                "cannot be combined with power_loss (crash images are judged by the engine's power-loss promise)",
            ));
        }
        for (i, r) in self.expect_when.iter().enumerate() {
            if !self.backends.iter().any(|b| b == r.backend.name()) {
                return Err(self.field_err(
                    &format!("expect_when[{i}].backend"),
                    format!("backend {:?} is not listed in `backends`", r.backend.name()),
                ));
            }
            if r.outcomes.is_empty() {
                return Err(self.field_err(&format!("expect_when[{i}].outcomes"), "expected at least one outcome"));
            }
            let k = &self.kill;
            let timed = matches!(k.mode, super::KillMode::RandomTime | super::KillMode::Mixed);
            let no_reader_kills = self.workload.readers == 0 || !k.readers || !timed;
            if r.faults == FaultShape::ReadersOnly && no_reader_kills {
                return Err(self.field_err(
                    &format!("expect_when[{i}].faults"),
                    "\"readers-only\" can never apply: readers are killed only by random-time kills (`kill.mode` \
                     \"random-time\" or \"mixed\") with `kill.readers = true` and at least one reader",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(role: Role, trigger: KillTrigger) -> KillRecord {
        KillRecord {
            worker: 0,
            role,
            signal: "SIGKILL".into(),
            at_ms: 1,
            trigger,
            last_point: None,
            last_hit: None,
            points_passed: 0,
        }
    }

    fn parse(rule: &str) -> Result<super::super::Scenario, String> {
        let text = format!(
            "name='t'\nbackends=['sqlite','bdbenv']\n[kill]\nmode='random-time'\n[expect]\nsqlite=['clean']\n\
             bdbenv=['clean','hang']\n[[expect_when]]\n{rule}\n"
        );
        super::super::Scenario::parse(&text, std::path::Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_are_typed_and_errors_name_the_field() {
        let s = parse("backend='bdbenv'\nfaults='none'\noutcomes=['clean']").unwrap();
        assert_eq!(s.expect_when.len(), 1);
        assert_eq!(s.expect_when[0].backend, BackendKind::Bdbenv);
        assert_eq!(s.expect_when[0].faults, FaultShape::None);
        assert_eq!(s.expect_when[0].outcomes, [Outcome::Clean]);
        assert!(parse("backend='bdbenv'\nfaults='readers-only'\noutcomes=['clean','stale-locks']").is_ok());
        for (rule, field) in [
            ("backend='libdb'\nfaults='none'\noutcomes=['clean']", "expect_when[0].backend"),
            ("backend='nope'\nfaults='none'\noutcomes=['clean']", "expect_when[0].backend"),
            ("backend='bdbenv'\nfaults='some'\noutcomes=['clean']", "expect_when[0].faults"),
            ("backend='bdbenv'\nfaults='none'\noutcomes=['fine']", "expect_when[0].outcomes"),
            ("backend='bdbenv'\nfaults='none'\noutcomes=[]", "expect_when[0].outcomes"),
            ("backend='bdbenv'\nfaults='none'\noutcomes=['clean']\nwhy=1", "expect_when[0]"),
        ] {
            let e = parse(rule).unwrap_err();
            assert!(e.contains(field), "{rule:?}: {e}");
        }
        let text = "name='t'\nbackends=['bdbenv']\n[kill]\nmode='crash-point'\n[expect]\nbdbenv=['clean']\n\
                    [[expect_when]]\nbackend='bdbenv'\nfaults='readers-only'\noutcomes=['clean']\n";
        let e = super::super::Scenario::parse(text, std::path::Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("expect_when[0].faults") && e.contains("never apply"), "{e}");
    }

    #[test]
    fn the_shape_of_a_cycles_faults() {
        let f = |kills: &[KillRecord], causes: &[Cause], carried: &[Cause], err: bool| {
            CycleFaults { kills, causes, carried, exited_on_error: err }.shape()
        };
        let timeout = [kill(Role::Writer, KillTrigger::Timeout)];
        assert_eq!(f(&timeout, &[], &[], false), Some(FaultShape::None), "the timeout's kill is no fault");
        let reader = [kill(Role::Reader, KillTrigger::Time), kill(Role::Writer, KillTrigger::Timeout)];
        assert_eq!(f(&reader, &[Cause::Kill], &[], false), Some(FaultShape::ReadersOnly));
        assert_eq!(f(&reader, &[Cause::Kill], &[Cause::Kill], false), None, "earlier cycles' leftovers");
        assert_eq!(f(&reader, &[Cause::Kill], &[], true), None, "a worker ended on an error");
        assert_eq!(f(&reader, &[Cause::Kill, Cause::Memory], &[], false), None);
        let writer = [kill(Role::Reader, KillTrigger::Time), kill(Role::Writer, KillTrigger::Point)];
        assert_eq!(f(&writer, &[Cause::Kill], &[], false), None);
        assert_eq!(f(&[], &[Cause::StalePage], &[], false), None);
    }
}
