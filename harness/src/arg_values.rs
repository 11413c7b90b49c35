//! The values command-line arguments accept, as clap value parsers, so `--help` lists them and a wrong one is
//! refused with the list (exit 2). Why a module: the names come from the types (backends,
//! recovery procedures), never from a second hand-written list in a help string.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dbtorture_backends::BackendKind;

/// Every backend name, as a `String` argument.
pub fn backend_name() -> PossibleValuesParser {
    PossibleValuesParser::new(BackendKind::ALL.iter().map(|b| b.name()))
}

/// Every backend, parsed to its kind.
pub fn backend_kind() -> impl TypedValueParser<Value = BackendKind> {
    backend_name().map(|s| BackendKind::from_name(&s).expect("a listed backend"))
}

/// The backends `inspect` reads (our BDB-style environment, with or without failchk).
pub fn inspect_backend() -> PossibleValuesParser {
    PossibleValuesParser::new(BackendKind::ALL.iter().filter(|b| b.profile().is_some()).map(|b| b.name()))
}

/// The recovery procedures `dbtorture recover` runs.
pub fn procedure() -> PossibleValuesParser {
    PossibleValuesParser::new(["rebuilddb", "db_recover"])
}

/// The figures `dbtorture bench` can measure.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BenchWhat {
    Overhead,
    Smoke,
    VerifyFedora,
    Bdbenv,
    PowerLoss,
    Rpm,
    // --jobs 1 against --jobs 2, side by side, on smoke, bdbenv-kill and sqlite-kill (lanes::bench).
    Lanes,
    All,
}

impl BenchWhat {
    pub fn name(self) -> &'static str {
        match self {
            BenchWhat::Overhead => "overhead",
            BenchWhat::Smoke => "smoke",
            BenchWhat::VerifyFedora => "verify-fedora",
            BenchWhat::Bdbenv => "bdbenv",
            BenchWhat::PowerLoss => "power-loss",
            BenchWhat::Rpm => "rpm",
            BenchWhat::Lanes => "lanes",
            BenchWhat::All => "all",
        }
    }
}
