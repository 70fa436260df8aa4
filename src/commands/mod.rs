//! The commands behind the command line; `main` maps their outcome to an exit status.

mod check;
mod daemon;
mod event;
mod history;
mod ledger;
mod rules;
mod scan;

pub use scan::{exit_status, file_sinks, plan_scan, run_scan, Recording, ScanPlan, ScanReport};

use crate::cli::{Cli, Command, LedgerCommand, RulesCommand};
use std::process::ExitCode;

/// Exit statuses: 0 done, 1 runtime failure, 2 bad input (nothing was probed), 130 interrupted.
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// A problem with what the user gave (ledger, flags, library): reported, and nothing runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) if args.config.is_some() => daemon::scan_profile(*args).await,
        Command::Scan(args) => scan::command(*args).await,
        Command::Check(args) => check::command(*args).await,
        Command::Daemon { config } => daemon::daemon(&config).await,
        Command::Status { config, db } => daemon::status(&config, db.as_deref()),
        Command::Ledger(LedgerCommand::Check { file, exclude }) => ledger::check(&file, exclude.as_deref()),
        Command::Rules(RulesCommand::Check { fingerprints }) => rules::check(&fingerprints),
        Command::Rules(RulesCommand::Test { fingerprints }) => rules::test(&fingerprints),
        Command::History(db) => history::list(&db.db),
        Command::Export(args) => history::export(&args),
        Command::Report { scan, out, lang, db } => history::report(scan, &out, lang, &db.db),
        Command::Event(command) => event::run(*command).await,
        Command::Show { ip, db } => history::show(&db.db, ip),
        Command::Diff { from, to, all, format, db } => history::diff(&db.db, from, to, all, format),
    }
}
