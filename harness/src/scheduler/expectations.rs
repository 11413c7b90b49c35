//! Judging a cycle against the scenario's `[[expect_when]]` rules: the rules of its backend whose fault
//! shape is the cycle's, and the outcome each allows (see `scenario/when.rs`).
//!
//! Why apart from the expect list: the list is judged on the outcome alone; a rule needs what the cycle
//! recorded (its kills and their roles, the causes it inherited), which only the scheduler knows.

use crate::finding::{Finding, HarnessFinding};
use crate::scenario::when::{CycleFaults, WhenRule};
use dbtorture_backends::BackendKind;
use dbtorture_reports::Outcome;

/// An `expectation-unmet` finding for each rule of `kind` that applies to a cycle with these faults and
/// does not allow `outcome`.
pub fn unmet(rules: &[WhenRule], kind: BackendKind, faults: &CycleFaults<'_>, outcome: Outcome) -> Vec<Finding> {
    let Some(shape) = faults.shape() else { return Vec::new() };
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.backend == kind && r.faults == shape && !r.outcomes.contains(&outcome))
        .map(|(i, r)| {
            HarnessFinding::ExpectationUnmet {
                rule: format!("expect_when[{i}] ({}, faults = {})", kind.name(), shape.name()),
                outcome: outcome.name().into(),
                allowed: r.outcomes.iter().map(|o| o.name()).collect::<Vec<_>>().join(", "),
            }
            .into()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::when::FaultShape;
    use dbtorture_backends::explain::Cause;

    fn rule(backend: BackendKind, faults: FaultShape, outcomes: &[Outcome]) -> WhenRule {
        WhenRule { backend, faults, outcomes: outcomes.to_vec() }
    }

    #[test]
    fn a_rule_judges_only_the_cycles_of_its_backend_and_shape() {
        let rules = [
            rule(BackendKind::Bdbenv, FaultShape::None, &[Outcome::Clean]),
            rule(BackendKind::Sqlite, FaultShape::None, &[Outcome::Clean, Outcome::Hang]),
        ];
        let none = CycleFaults { kills: &[], causes: &[], carried: &[], exited_on_error: false };
        let u = unmet(&rules, BackendKind::Bdbenv, &none, Outcome::Hang);
        assert_eq!(u.len(), 1, "{u:?}");
        let s = u[0].to_string();
        assert!(s.contains("expect_when[0]") && s.contains("hang") && s.contains("allows clean"), "{s}");
        assert!(unmet(&rules, BackendKind::Bdbenv, &none, Outcome::Clean).is_empty());
        assert!(unmet(&rules, BackendKind::Sqlite, &none, Outcome::Hang).is_empty(), "that rule allows hang");
        assert!(unmet(&rules, BackendKind::Libdb, &none, Outcome::Hang).is_empty(), "no rule for libdb");
        let killed = CycleFaults { kills: &[], causes: &[Cause::StalePage], carried: &[], exited_on_error: false };
        assert!(unmet(&rules, BackendKind::Bdbenv, &killed, Outcome::Hang).is_empty(), "a fault: not the rule's shape");
    }
}
