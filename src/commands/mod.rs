//! The commands behind the command line; `main` maps their outcome to an exit status.

mod advisories;
mod check;
mod daemon;
mod event;
mod exchange;
mod history;
mod ledger;
mod notices;
mod rules;
mod scan;
mod serve;

use crate::cli::{
    Cli, Command, EventCommand, ExchangeCommand, LedgerCommand, NoticesCommand, RulesCommand, TokenCommand,
};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Runs a command. `stop` is cancelled by the first SIGINT or SIGTERM: the commands that probe stop
/// dispatching and record what they found; the others are not long enough to care.
pub async fn run(cli: Cli, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.command {
        // A resumed scan takes its profile from what the scan recorded.
        Command::Scan(args) if args.config.is_some() && args.resume.is_none() => {
            daemon::scan_profile(*args, stop).await
        }
        Command::Scan(args) => scan::command(*args, stop).await,
        Command::Check(args) => check::command(*args, stop).await,
        Command::Daemon { config } => daemon::daemon(&config, stop).await,
        Command::Status { config, db } => daemon::status(&config, db.as_deref()),
        Command::Ledger(LedgerCommand::Check { file, exclude, format }) => {
            ledger::check(&format.options(&file), exclude.as_deref())
        }
        Command::Ledger(LedgerCommand::Template { lang, out }) => ledger::template(lang, &out),
        Command::Rules(RulesCommand::Check { fingerprints }) => rules::check(&fingerprints),
        Command::Rules(RulesCommand::Test { fingerprints }) => rules::test(&fingerprints),
        Command::History { upgrade, db } => history::list(&db.db, upgrade),
        Command::Export(args) => history::export(&args),
        Command::Exchange(ExchangeCommand::Push(args)) => exchange::push(args).await,
        Command::Report { scan, out, lang, db } => history::report(scan, &out, lang, &db.db),
        Command::Event(command) => event::run(*command, stop).await,
        Command::Show { ip, db } => history::show(&db.db, ip),
        Command::Advisories(command) => advisories::run(command),
        Command::Notices(command) => notices::run(*command, stop).await,
        Command::Diff { from, to, all, format, db } => history::diff(&db.db, from, to, all, format),
        Command::Serve(args) => serve::serve(args, stop).await,
        Command::Token(TokenCommand::Create { role, district, enterprise, name, expires, db }) => {
            serve::create_token(&db.db, role, district, enterprise, name, expires.as_deref())
        }
        Command::Token(TokenCommand::List(db)) => serve::list_tokens(&db.db),
        Command::Token(TokenCommand::Revoke { name, db }) => serve::revoke_token(&db.db, &name),
        Command::Audit { since, token, db } => serve::audit(&db.db, since.as_deref(), token.as_deref()),
    }
}

/// Whether a command stops cleanly on the first signal (the second quits at once): those that probe,
/// and the server, which lets requests in flight finish and writes its audit log.
pub fn stops_cleanly(command: &Command) -> bool {
    probes(command) || matches!(command, Command::Serve(_))
}

/// Whether a command probes: such a command stops cleanly on the first signal (it is let finish what
/// is in flight and record it), and when it refuses its input it says that nothing was probed.
pub fn probes(command: &Command) -> bool {
    match command {
        Command::Scan(_) | Command::Check(_) | Command::Daemon { .. } => true,
        Command::Event(event) => matches!(**event, EventCommand::Start { .. } | EventCommand::Check { .. }),
        Command::Notices(notices) => matches!(**notices, NoticesCommand::Verify { .. }),
        _ => false,
    }
}
