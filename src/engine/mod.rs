//! The scheduler: a bounded number of probes in flight, a global rate, a turn per target at its
//! host (the politeness itself holds every connection, in [`crate::net`]), a deadline per target
//! from its turn, and a clean stop that lets in-flight probes finish.
//!
//! The engine knows nothing of protocols: it hands each [`Target`] to a [`Prober`].

mod progress;

pub use progress::{Progress, ProgressStyle};

use crate::discovery::syn::{self, SynConfig, SynError, SynStats};
use crate::discovery::{DiscoveryEvent, PortState, SynTarget, Verdict, Watermark};
use crate::net::pacing::Pacer;
use crate::net::{HostGate, HostTurn};
use crate::probes::Identity;
use crate::scope::{Target, Transport};
use crate::targets::TargetStream;
use async_trait::async_trait;
use futures_util::FutureExt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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

/// What the engine hands downstream, in order: observations, targets it could not cover, and
/// checkpoints that vouch for every event of an earlier position having been handed over before them.
#[derive(Debug)]
pub enum EngineEvent {
    Found(Observation),
    /// A target the scanner itself failed to probe (a local failure, after retries): it says nothing
    /// about the target, which leaves the scan's coverage.
    NotCovered {
        target: Target,
        reason: String,
    },
    /// Every target before this permutation position has been probed (and its events sent).
    Checkpoint(u64),
}

/// What a prober found of one target.
#[derive(Debug)]
pub enum Outcome {
    Found(Observation),
    /// Nothing answers: closed, filtered, or silent.
    Nothing,
    /// The target's deadline passed before the probing ended: the observation of what is known by
    /// then (an open port, its identity `unknown`, whatever it sent) when the port is known open.
    CutOff(Option<Observation>),
    /// The scanner could not probe it (no file descriptor, no buffer, no local address, ...): never
    /// an answer about the target. The engine retries it a few times, then reports it not covered.
    LocalFailure(String),
}

/// What the engine grants one target: its turn at its host, through which every connection to the
/// target opens (the host's politeness), and the instant by which the prober must be done.
pub struct Visit {
    pub turn: HostTurn,
    pub deadline: tokio::time::Instant,
}

/// What the engine asks of each target. A prober answers by the visit's deadline (a cut-off is an
/// outcome of its own); one that overruns it by [`DEADLINE_GRACE`] is dropped and counted as cut off.
#[async_trait]
pub trait Prober: Send + Sync {
    async fn probe(&self, target: &Target, visit: &Visit) -> Outcome;
}

/// How long past a target's deadline the engine waits for its prober to report the cut-off.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// How the open (address, port) pairs are found before they are identified.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// A connection attempt to each target, paced by the rate; an open one is identified at once.
    Connect,
    /// A stateless SYN to each IPv4 TCP target, paced by the SYN stage's own rate; only the ones that
    /// answer SYN-ACK are identified. UDP and IPv6 targets go straight to identification.
    Syn(SynConfig),
}

impl Discovery {
    pub fn name(&self) -> &'static str {
        match self {
            Discovery::Connect => "connect",
            Discovery::Syn(_) => "syn",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Probes started per second across the scan; `None` is unlimited.
    pub rate: Option<NonZeroU32>,
    /// Connections open at once to one address, and targets of it identified at once.
    pub per_host: usize,
    /// Minimum pause before each connection to one address, from the previous one's close and open.
    pub host_interval: Duration,
    /// Hard limit on everything one target may take, whatever the peer does.
    pub target_deadline: Duration,
    /// How often to emit a checkpoint (`None`: never, for runs nobody will resume).
    pub checkpoint_every: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 256,
            rate: NonZeroU32::new(1000),
            per_host: 1,
            host_interval: Duration::from_millis(100),
            target_deadline: Duration::from_secs(20),
            checkpoint_every: Some(Duration::from_secs(1)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub probed: u64,
    pub open: u64,
    pub deadline_hits: u64,
    /// Targets the scanner could not probe (local failures): outside the scan's coverage.
    pub not_covered: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
    /// Which discovery ran, and the SYN stage's own counts when it did.
    pub discovery: &'static str,
    pub syn: Option<SynStats>,
    /// Why discovery failed, when it did (the scan then stops as partial).
    pub failure: Option<String>,
}

impl RunStats {
    pub fn rate(&self) -> f64 {
        self.probed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Attempts at a target that fails locally before it is reported not covered, and the pause before
/// each retry (doubling).
const LOCAL_ATTEMPTS: u32 = 3;
const LOCAL_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Probes every target of `targets` (after `discovery` found it open), sending each observation to
/// `events`, until the targets run out or `stop` is cancelled; then waits for the probes in flight
/// to finish or hit their deadline. With checkpoints on, it also sends the position before which
/// every target is done, through both stages.
#[allow(clippy::too_many_arguments)]
/// The file descriptors of the process, shared by every scan it runs at once (the daemon's profiles):
/// each target in flight holds one (a probe holds one socket at a time), so scans side by side queue
/// for descriptors instead of running out of them. One scan's slots never exceed them by themselves.
fn descriptors() -> Arc<Semaphore> {
    static DESCRIPTORS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    DESCRIPTORS.get_or_init(|| Arc::new(Semaphore::new(crate::net::fd_budget()))).clone()
}

pub async fn run(
    targets: TargetStream,
    discovery: &Discovery,
    prober: Arc<dyn Prober>,
    config: &EngineConfig,
    events: mpsc::Sender<EngineEvent>,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> RunStats {
    let started = tokio::time::Instant::now();
    let concurrency = config.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    let gate = Arc::new(HostGate::new(config.per_host.max(1), config.host_interval, concurrency));
    let frontier = Arc::new(Frontier::new(targets.position()));
    let ticker = config.checkpoint_every.map(|every| {
        let (f, events) = (frontier.clone(), events.clone());
        tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::time::sleep(every).await;
                let mark = f.watermark();
                if last != Some(mark) && events.send(EngineEvent::Checkpoint(mark)).await.is_err() {
                    return;
                }
                last = Some(mark);
            }
        })
    });
    let not_covered = Arc::new(AtomicU64::new(0));
    let (mut feed, discovering) = match discovery {
        Discovery::Connect => (Feed::Stream(targets), None),
        Discovery::Syn(syn) => {
            let (tx, rx) = mpsc::channel(concurrency.max(64));
            let stage = SynFeed {
                targets,
                config: syn.clone(),
                frontier: frontier.clone(),
                progress: progress.clone(),
                events: events.clone(),
                not_covered: not_covered.clone(),
                stop: stop.clone(),
            };
            (Feed::Discovered(rx), Some(tokio::task::spawn_blocking(move || stage.run(tx))))
        }
    };
    // In connect mode the rate paces connection attempts; in SYN mode it paces the SYN stage, and
    // here only the targets that skip it (UDP, IPv6).
    let pacer = config.rate.map(Pacer::on_tokio);

    let mut interrupted = false;
    loop {
        let slot = tokio::select! {
            biased;
            _ = stop.cancelled() => { interrupted = true; break; }
            s = slots.clone().acquire_owned() => s.expect("semaphore never closed"),
        };
        let descriptor = tokio::select! {
            biased;
            _ = stop.cancelled() => { interrupted = true; break; }
            d = descriptors().acquire_owned() => d.expect("semaphore never closed"),
        };
        let Some((position, target, paced)) = feed.next(&frontier).await else { break };
        // The rate is paced here, in dispatch order: waiting inside the probes would let a limiter with
        // many waiters starve some of them for seconds, holding back the checkpoint behind them.
        if let (Some(p), true) = (&pacer, paced) {
            tokio::select! {
                biased;
                _ = stop.cancelled() => { interrupted = true; break; }
                _ = p.ready() => {}
            }
        }
        let (prober, gate, events, progress, stop, frontier, not_covered) = (
            prober.clone(),
            gate.clone(),
            events.clone(),
            progress.clone(),
            stop.clone(),
            frontier.clone(),
            not_covered.clone(),
        );
        let deadline = config.target_deadline;
        tokio::spawn(async move {
            let (_slot, _descriptor) = (slot, descriptor);
            let mut pause = LOCAL_RETRY_PAUSE;
            for attempt in 1..=LOCAL_ATTEMPTS {
                // A probe abandoned on stop stays in flight for the frontier: a resume probes it again.
                let turn = tokio::select! {
                    _ = stop.cancelled() => return,
                    turn = gate.turn(target.addr()) => turn,
                };
                // The deadline runs from the target's turn: waiting for the host is not the target's time.
                let visit = Visit { turn, deadline: tokio::time::Instant::now() + deadline };
                let probing = tokio::time::timeout_at(visit.deadline + DEADLINE_GRACE, prober.probe(&target, &visit));
                // A prober that panics (a bug) must not take the target's position with it: the
                // target leaves the coverage with the panic as its reason, and the checkpoint moves on.
                let outcome = std::panic::AssertUnwindSafe(probing).catch_unwind().await;
                drop(visit);
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        let reason = format!("the prober panicked: {}", panic_message(&*panic));
                        tracing::error!(target = %target.socket_addr(), "{reason}");
                        progress.record(false, false);
                        not_covered.fetch_add(1, Ordering::Relaxed);
                        let _ = events.send(EngineEvent::NotCovered { target, reason }).await;
                        break;
                    }
                };
                match outcome {
                    Ok(Outcome::Found(observation)) => {
                        progress.record(true, false);
                        let _ = events.send(EngineEvent::Found(observation)).await;
                    }
                    Ok(Outcome::CutOff(Some(observation))) => {
                        progress.record(true, true);
                        let _ = events.send(EngineEvent::Found(observation)).await;
                    }
                    Ok(Outcome::Nothing) => progress.record(false, false),
                    Ok(Outcome::CutOff(None)) | Err(_) => progress.record(false, true),
                    Ok(Outcome::LocalFailure(reason)) if attempt == LOCAL_ATTEMPTS => {
                        progress.record(false, false);
                        not_covered.fetch_add(1, Ordering::Relaxed);
                        let _ = events.send(EngineEvent::NotCovered { target, reason }).await;
                    }
                    Ok(Outcome::LocalFailure(reason)) => {
                        tracing::debug!(target = %target.socket_addr(), "local failure, retrying: {reason}");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause *= 2;
                        continue;
                    }
                }
                break;
            }
            // Only after the finding is queued may the frontier move past this position.
            frontier.done(position);
        });
    }
    let mut failure = None;
    let mut syn = None;
    if let Some(stage) = discovering {
        // On a stop the stage ends at once; its pending targets stay behind the watermark.
        drop(feed);
        match stage.await.expect("the discovery stage does not panic") {
            Ok(stats) => syn = Some(stats),
            Err(e) => {
                tracing::error!("SYN discovery failed, the scan stops: {e}");
                failure = Some(format!("SYN discovery failed: {e}"));
            }
        }
    }
    // Every slot back means every spawned probe has finished.
    let _all = slots.acquire_many(concurrency as u32).await.expect("semaphore never closed");
    if let Some(t) = ticker {
        t.abort();
    }
    if config.checkpoint_every.is_some() {
        let _ = events.send(EngineEvent::Checkpoint(frontier.watermark())).await;
    }
    let (probed, open, deadline_hits) = progress.counts();
    RunStats {
        probed,
        open,
        deadline_hits,
        not_covered: not_covered.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        interrupted: interrupted || stop.is_cancelled() || failure.is_some(),
        discovery: discovery.name(),
        syn,
        failure,
    }
}

/// The text a panic carried (`panic!` with a message gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Where the identification loop takes its next target from.
enum Feed {
    /// Every target, in permutation order (connect discovery).
    Stream(TargetStream),
    /// The targets the SYN stage found open, and those it does not handle.
    Discovered(mpsc::Receiver<(u64, Target, bool)>),
}

impl Feed {
    /// The next target, its position, and whether the engine's pacer applies to it.
    async fn next(&mut self, frontier: &Frontier) -> Option<(u64, Target, bool)> {
        match self {
            Feed::Stream(targets) => {
                let position = TargetStream::position(targets);
                let target = targets.next()?;
                frontier.dispatched(position);
                frontier.advance(TargetStream::position(targets));
                Some((position, target, true))
            }
            Feed::Discovered(rx) => rx.recv().await,
        }
    }
}

/// The SYN stage, run on a blocking thread: it walks the targets, hands IPv4 TCP ones to
/// [`syn::run`], and feeds identification with the ones found open and the ones it does not handle.
struct SynFeed {
    targets: TargetStream,
    config: SynConfig,
    frontier: Arc<Frontier>,
    progress: Arc<Progress>,
    events: mpsc::Sender<EngineEvent>,
    not_covered: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl SynFeed {
    fn run(self, feed: mpsc::Sender<(u64, Target, bool)>) -> Result<SynStats, SynError> {
        let SynFeed { targets, config, frontier, progress, events, not_covered, stop } = self;
        let lookup = targets.clone();
        let end = targets.end_position();
        let space_scope = lookup.clone();
        let in_scope = move |a: std::net::Ipv4Addr| space_scope.in_scope(std::net::IpAddr::V4(a));
        let mut walk = targets.clone();
        let diverted = feed.clone();
        let divert_frontier = frontier.clone();
        let syn_targets = std::iter::from_fn(move || loop {
            let position = walk.position();
            let target = walk.next()?;
            match (target.addr(), target.transport()) {
                (std::net::IpAddr::V4(addr), Transport::Tcp) => {
                    return Some(SynTarget { position, addr, port: target.port() })
                }
                // UDP and IPv6 targets skip discovery: identification probes them as it would.
                _ => {
                    divert_frontier.dispatched(position);
                    if diverted.blocking_send((position, target, true)).is_err() {
                        return None;
                    }
                }
            }
        });
        let mut on_event = |event: DiscoveryEvent| match event {
            DiscoveryEvent::Verdict(Verdict { target, state }) => match state {
                PortState::Open => {
                    frontier.dispatched(target.position);
                    let _ = feed.blocking_send((target.position, lookup.target_at(target.position), false));
                }
                PortState::Closed | PortState::Filtered => progress.record(false, false),
                PortState::NotCovered(why) => {
                    progress.record(false, false);
                    not_covered.fetch_add(1, Ordering::Relaxed);
                    let target = lookup.target_at(target.position);
                    let reason = PortState::NotCovered(why).to_string();
                    let _ = events.blocking_send(EngineEvent::NotCovered { target, reason });
                }
            },
            DiscoveryEvent::Checkpoint(Watermark::Before(position)) => frontier.advance(position),
            DiscoveryEvent::Checkpoint(Watermark::Complete) => frontier.advance(end),
        };
        syn::run(syn_targets, &config, &in_scope, &stop, &mut on_event)
    }
}

/// The positions handed to identification and not yet done, and how far the feed has got: the
/// watermark is the lowest position not yet done, so every target before it is done in both stages.
struct Frontier {
    state: std::sync::Mutex<(std::collections::BTreeSet<u64>, u64)>,
}

impl Frontier {
    fn new(first: u64) -> Frontier {
        Frontier { state: std::sync::Mutex::new((std::collections::BTreeSet::new(), first)) }
    }

    /// A target handed to identification.
    fn dispatched(&self, position: u64) {
        self.state.lock().expect("not poisoned").0.insert(position);
    }

    /// Every target before `position` has been handed over or decided by discovery.
    fn advance(&self, position: u64) {
        let mut s = self.state.lock().expect("not poisoned");
        s.1 = s.1.max(position);
    }

    fn done(&self, position: u64) {
        self.state.lock().expect("not poisoned").0.remove(&position);
    }

    fn watermark(&self) -> u64 {
        let s = self.state.lock().expect("not poisoned");
        s.0.first().copied().map_or(s.1, |p| p.min(s.1))
    }
}
