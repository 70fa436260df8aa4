//! Errors that carry their exit status up to `main`, the only place that exits.
//!
//! Exit statuses: 0 done, 1 runtime failure, 2 bad input (nothing was probed), 3 something new,
//! changed or gone (`diff`, `check`, `event`), 130 interrupted.

/// A problem with what the user gave (ledger, flags, library, configuration): reported, and nothing runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub const EXIT_BAD_INPUT: u8 = 2;
/// `diff`, `check` and `event` exit with this when something is new, changed or gone.
pub const EXIT_CHANGES: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;
