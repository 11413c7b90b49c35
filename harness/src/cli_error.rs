//! The command line's one error model: every subcommand fails through a [`CliError`], whose kind fixes the
//! exit code (the table is `exit_codes.rs`), printed as a lowercase headline, a hint, then the causes.
//!
//! Why one model: the same mistake used to exit 2 in one subcommand and 3 in another (a bad bundle: 2 for
//! `replay`, 3 for `shrink`), so a CI script could not tell "you called it wrong" from "the harness broke".
//! Bad input of any kind — arguments, a scenario, a bundle, a database path, nothing to run — is exit 2;
//! a failure of the harness after it started is exit 3.

use crate::exit_codes;
use std::fmt::Write as _;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The user's input cannot be used (exit 2): fix the command or the file.
    BadInput,
    /// The harness failed after it started (exit 3): a bug in dbtorture, or the machine.
    Harness,
}

#[derive(Debug)]
pub struct CliError {
    pub kind: Failure,
    pub headline: String,
    pub hint: Option<String>,
    pub cause: Option<anyhow::Error>,
}

impl CliError {
    pub fn bad_input(headline: impl Into<String>) -> CliError {
        CliError { kind: Failure::BadInput, headline: headline.into(), hint: None, cause: None }
    }

    pub fn harness(headline: impl Into<String>) -> CliError {
        CliError { kind: Failure::Harness, headline: headline.into(), hint: None, cause: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    pub fn cause(mut self, cause: impl Into<anyhow::Error>) -> CliError {
        self.cause = Some(cause.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Failure::BadInput => exit_codes::USAGE,
            Failure::Harness => exit_codes::HARNESS,
        }
    }

    /// `error: headline`, `  hint: …`, then `  caused by: …` for each cause in the chain.
    pub fn render(&self) -> String {
        let mut s = format!("error: {}\n", self.headline);
        if let Some(h) = &self.hint {
            let _ = writeln!(s, "  hint: {h}");
        }
        if let Some(c) = &self.cause {
            for cause in c.chain() {
                let _ = writeln!(s, "  caused by: {cause}");
            }
        }
        s
    }
}

impl From<crate::run::BadInput> for CliError {
    fn from(b: crate::run::BadInput) -> CliError {
        CliError { kind: Failure::BadInput, headline: b.headline, hint: b.hint, cause: None }
    }
}

impl From<crate::scenario::ScenarioError> for CliError {
    fn from(e: crate::scenario::ScenarioError) -> CliError {
        CliError::bad_input(e.to_string()).hint("see scenarios/smoke.toml for every key, and `dbtorture list`")
    }
}

/// `println!` that ends quietly when stdout is closed (`dbtorture list | head -1`) instead of panicking.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that ends quietly when stdout is closed.
#[macro_export]
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_hint_then_causes_and_the_kind_decides_the_code() {
        let e = CliError::bad_input("no such bundle x.tar.gz")
            .hint("bundles are written to OUT/bundles/")
            .cause(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.render(),
            "error: no such bundle x.tar.gz\n  hint: bundles are written to OUT/bundles/\n  caused by: outer\n  caused by: inner\n"
        );
        assert_eq!(CliError::harness("x").exit_code(), 3);
    }
}
