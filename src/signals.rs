//! Stopping by signal: the first SIGINT or SIGTERM asks the running work to stop (no new probes, the
//! ones in flight finish or reach their deadline, everything found is recorded); a second one asks
//! `main` to exit at once. Nothing here exits: `main` does.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Cancelled by the first SIGINT or SIGTERM.
    pub first: CancellationToken,
    /// Cancelled by the second.
    pub second: CancellationToken,
}

/// Starts listening for SIGINT and SIGTERM (on the current tokio runtime).
pub fn listen() -> Signals {
    let signals = Signals::default();
    let tokens = signals.clone();
    tokio::spawn(async move {
        let mut term = signal(SignalKind::terminate()).ok();
        for round in 0..2 {
            let name = match term.as_mut() {
                Some(t) => tokio::select! { _ = tokio::signal::ctrl_c() => "SIGINT", _ = t.recv() => "SIGTERM" },
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                    "SIGINT"
                }
            };
            if round == 0 {
                tracing::warn!(
                    "{name}: stopping: no new probes, the ones in flight finish (signal again to quit at once)"
                );
                tokens.first.cancel();
            } else {
                tokens.second.cancel();
            }
        }
    });
    signals
}
