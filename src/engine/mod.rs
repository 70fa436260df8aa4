//! The scheduler: a bounded number of probes in flight, a global rate, per-host politeness,
//! a deadline per target, and a clean stop that lets in-flight probes finish.
//!
//! The engine knows nothing of protocols: it hands each [`Target`] to a [`Prober`].

mod politeness;
mod progress;

pub use politeness::HostGate;
pub use progress::{Progress, ProgressStyle};

use crate::probes::Identity;
use crate::scope::Target;
use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// An open service on a target, as a probe found it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub target: Target,
    pub identity: Identity,
    /// The first bytes of the peer's reply.
    pub evidence: Vec<u8>,
    pub observed_at: OffsetDateTime,
}

impl Observation {
    pub fn new(target: Target, identity: Identity, evidence: Vec<u8>, observed_at: OffsetDateTime) -> Observation {
        Observation { target, identity, evidence, observed_at }
    }
}

/// What the engine asks of each target: `None` when nothing answers.
#[async_trait]
pub trait Prober: Send + Sync {
    async fn probe(&self, target: &Target) -> Option<Observation>;
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Probes started per second across the scan; `None` is unlimited.
    pub rate: Option<NonZeroU32>,
    /// Probes in flight at once to one address.
    pub per_host: usize,
    /// Minimum pause between two probes to one address.
    pub host_interval: Duration,
    /// Hard limit on everything one target may take, whatever the peer does.
    pub target_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 256,
            rate: NonZeroU32::new(1000),
            per_host: 1,
            host_interval: Duration::from_millis(100),
            target_deadline: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    pub probed: u64,
    pub open: u64,
    pub deadline_hits: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
}

impl RunStats {
    pub fn rate(&self) -> f64 {
        self.probed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Probes every target of `targets`, sending each observation to `found`, until the targets run out
/// or `stop` is cancelled; then waits for the probes in flight to finish or hit their deadline.
pub async fn run(
    targets: impl Iterator<Item = Target>,
    prober: Arc<dyn Prober>,
    config: &EngineConfig,
    found: mpsc::Sender<Observation>,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> RunStats {
    let started = tokio::time::Instant::now();
    let concurrency = config.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    let gate = Arc::new(HostGate::new(config.per_host.max(1), config.host_interval, concurrency));
    let limiter: Option<Arc<DefaultDirectRateLimiter>> =
        config.rate.map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r).allow_burst(NonZeroU32::MIN))));
    let deadline = config.target_deadline;

    let mut interrupted = false;
    for target in targets {
        let slot = tokio::select! {
            biased;
            _ = stop.cancelled() => { interrupted = true; break; }
            s = slots.clone().acquire_owned() => s.expect("semaphore never closed"),
        };
        let (prober, gate, limiter, found, progress, stop) =
            (prober.clone(), gate.clone(), limiter.clone(), found.clone(), progress.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let pass = tokio::select! {
                _ = stop.cancelled() => return,
                pass = gate.enter(target.addr()) => pass,
            };
            if let Some(l) = &limiter {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = l.until_ready() => {}
                }
            }
            let outcome = tokio::time::timeout(deadline, prober.probe(&target)).await;
            drop(pass);
            match outcome {
                Ok(Some(observation)) => {
                    progress.record(true, false);
                    let _ = found.send(observation).await;
                }
                Ok(None) => progress.record(false, false),
                Err(_) => progress.record(false, true),
            }
        });
    }
    // Every slot back means every spawned probe has finished.
    let _all = slots.acquire_many(concurrency as u32).await.expect("semaphore never closed");
    let (probed, open, deadline_hits) = progress.counts();
    RunStats {
        probed,
        open,
        deadline_hits,
        elapsed: started.elapsed(),
        interrupted: interrupted || stop.is_cancelled(),
    }
}
