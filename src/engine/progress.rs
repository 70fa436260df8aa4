//! Scan progress: a bar on a terminal, periodic log lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    Quiet,
}

pub struct Progress {
    total: u64,
    done: AtomicU64,
    open: AtomicU64,
    deadline_hits: AtomicU64,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    pub fn new(total: u64, style: ProgressStyle) -> Progress {
        let bar = (style == ProgressStyle::Auto && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} probes  {per_sec}  open {msg}  ETA {eta}",
                )
                .expect("valid template"),
            );
            bar.set_message("0");
            bar
        });
        Progress {
            total,
            done: AtomicU64::new(0),
            open: AtomicU64::new(0),
            deadline_hits: AtomicU64::new(0),
            bar,
            started: Instant::now(),
        }
    }

    pub fn record(&self, open: bool, deadline_hit: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if deadline_hit {
            self.deadline_hits.fetch_add(1, Ordering::Relaxed);
        }
        if open {
            let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(bar) = &self.bar {
                bar.set_message(n.to_string());
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// (probed, open, deadline hits) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.open.load(Ordering::Relaxed),
            self.deadline_hits.load(Ordering::Relaxed),
        )
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Logs a line every `every` until the scan ends; a no-op when a bar is drawn.
    pub async fn log_periodically(&self, every: Duration) {
        if self.bar.is_some() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            let (done, open, _) = self.counts();
            let secs = self.started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            let eta = if rate > 0.0 { (self.total.saturating_sub(done)) as f64 / rate } else { f64::INFINITY };
            tracing::info!("progress: {done}/{} probes, {rate:.0}/s, {open} open, ETA {eta:.0}s", self.total);
        }
    }
}
