//! The stateless SYN stage: one thread sends SYNs through a raw IPv4 socket at a paced rate, another
//! reads the replies from a raw receive socket and validates them by their keyed numbers
//! ([`super::validation`]); the sending thread turns them into verdicts.
//!
//! Cost per target: a closed port costs one packet; a filtered one `1 + retries` packets and no
//! socket or file descriptor while waiting, only an entry among the pending targets.
//!
//! Every loop is bounded: a target gets at most `1 + retries` SYNs that went out and at most
//! `max_local_failures` that did not, each spaced by the wait or a backoff, and the receiver stops
//! within [`RECEIVE_NAP`] of the sender. `stop` ends the stage at once; targets still pending then
//! get no verdict, and the last watermark says where a resume starts.

use super::pending::{Limits, LoopClock, Pending};
use super::validation::{Answer, Rejected, Validator};
use super::{DiscoveryEvent, PortState, SynTarget};
use crate::net::pacing::{Pacer, PACER_SLACK};
use crate::net::raw::{
    ephemeral_ports, parse_segment, source_address_for, DropCounter, LocalFailure, RawReceiver, RawSender,
    RawSocketError, Syn, SynWriter, SEND_BATCH, SYN_LEN,
};
use std::io;
use std::iter::Peekable;
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Answers queued between the receiving and the sending thread.
const ANSWER_QUEUE: usize = 1 << 16;

/// The receiver sleeps this long whenever it has read every queued segment: replies wait at most
/// this long, and no reply costs a wake-up.
const RECEIVE_NAP: Duration = Duration::from_millis(1);

/// With nothing to send, the sender checks for a stop at least this often.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// After a local send failure, the sender pauses this long before its next packet.
const LOCAL_FAILURE_PAUSE: Duration = Duration::from_millis(1);

/// New targets taken from the stream ahead of their sends (see `Stage::next_target`).
const ADMIT_AHEAD: usize = 8;

/// Consecutive receive errors after which the receive socket is taken to be broken.
const MAX_RECEIVE_ERRORS: u32 = 100;

/// The default bound on pending targets ([`SynConfig::max_pending`]) never exceeds this: about a
/// hundred bytes of state each.
const MAX_DEFAULT_PENDING: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct SynConfig {
    /// Packets per second, first SYNs and retries together; `None` is unlimited.
    pub rate: Option<NonZeroU32>,
    /// Packets per second to any one address; `None` is unlimited.
    pub host_pps: Option<NonZeroU32>,
    /// SYNs sent to a silent target after the first.
    pub retries: u8,
    /// How long each SYN is given to be answered before the retry, or after the last, "filtered".
    pub wait: Duration,
    /// Source ports of the SYNs. Keep them out of the kernel's ephemeral range
    /// (`net.ipv4.ip_local_port_range`, 32768-60999 by default) so that no local connection is hit.
    pub source_ports: RangeInclusive<u16>,
    /// Source address; `None`: the one the kernel routes the first target from.
    pub source: Option<Ipv4Addr>,
    /// Targets taken from the stream and not yet decided, at most. This bounds memory and the work a
    /// resume repeats. `None`: enough for `rate × wait × (1 + retries)` twice over, or 65,536 at an
    /// unlimited rate (which then caps a filtered space at 65,536 targets per `wait × (1 + retries)`).
    pub max_pending: Option<usize>,
    /// Sends of one target that fail locally before it is not covered.
    pub max_local_failures: u8,
    /// How often a watermark is handed back (`None`: only at the end).
    pub checkpoint_every: Option<Duration>,
}

impl Default for SynConfig {
    fn default() -> Self {
        SynConfig {
            rate: NonZeroU32::new(1000),
            host_pps: NonZeroU32::new(10),
            retries: 1,
            wait: Duration::from_secs(1),
            source_ports: 61000..=65535,
            source: None,
            max_pending: None,
            max_local_failures: 5,
            checkpoint_every: Some(Duration::from_secs(1)),
        }
    }
}

impl SynConfig {
    fn limits(&self) -> Result<Limits, SynError> {
        if self.source_ports.is_empty() || *self.source_ports.start() == 0 {
            return Err(SynError::Config(format!(
                "source ports {:?}: need a non-empty range of 1-65535",
                self.source_ports
            )));
        }
        if self.wait.is_zero() || self.wait > Duration::from_secs(60) {
            return Err(SynError::Config(format!("wait {:?}: need more than 0 and at most 60 s", self.wait)));
        }
        if self.max_local_failures == 0 {
            return Err(SynError::Config("max_local_failures: need at least 1".into()));
        }
        let max_pending = match (self.max_pending, self.rate) {
            (Some(0), _) => return Err(SynError::Config("max_pending: need at least 1".into())),
            (Some(n), _) => n,
            (None, Some(rate)) => {
                let held = self.wait.as_secs_f64() * f64::from(1 + u32::from(self.retries));
                ((f64::from(rate.get()) * held * 2.0) as usize + 1024).min(MAX_DEFAULT_PENDING)
            }
            (None, None) => 1 << 16,
        };
        Ok(Limits {
            retries: self.retries,
            wait: self.wait,
            max_pending,
            max_local_failures: self.max_local_failures,
            host_pps: self.host_pps,
            rate: self.rate,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynError {
    #[error(transparent)]
    RawSocket(#[from] RawSocketError),
    #[error("no route to {0} to take a source address from: {1}")]
    NoRoute(Ipv4Addr, io::Error),
    #[error("SYN discovery settings: {0}")]
    Config(String),
    #[error("the raw receive socket failed: {0}")]
    Receive(io::Error),
}

/// Local send failures, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalFailureCounts {
    pub no_buffers: u64,
    pub send_buffer_full: u64,
    pub not_permitted: u64,
    pub other: u64,
}

impl LocalFailureCounts {
    fn count(&mut self, f: LocalFailure) {
        match f {
            LocalFailure::NoBuffers => self.no_buffers += 1,
            LocalFailure::SendBufferFull => self.send_buffer_full += 1,
            LocalFailure::NotPermitted => self.not_permitted += 1,
            LocalFailure::Other(_) => self.other += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.no_buffers + self.send_buffer_full + self.not_permitted + self.other
    }
}

/// What one run of the stage did.
#[derive(Debug, Clone, Default)]
pub struct SynStats {
    /// Targets taken from the stream.
    pub targets: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub not_covered: u64,
    /// Targets still pending when the stage was stopped: they have no verdict.
    pub abandoned: u64,
    /// Targets given again while the same (address, port) was pending, merged into it.
    pub duplicates: u64,
    /// SYNs that went out, retries included.
    pub packets: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Sends that failed locally (each retried or ending as not covered).
    pub local_failures: LocalFailureCounts,
    /// Segments the receive socket delivered (after its kernel filter).
    pub segments: u64,
    /// Segments that were neither SYN-ACK nor RST, or not TCP over IPv4 at all.
    pub not_replies: u64,
    /// Replies to ports the scanner does not send from.
    pub other_port: u64,
    /// Replies from addresses outside the scope, dropped.
    pub out_of_scope: u64,
    /// Replies that failed validation (stray, spoofed, or another scan's), ignored.
    pub invalid: u64,
    /// Valid replies for targets already decided (a late or repeated answer).
    pub unmatched: u64,
    /// Packets the kernel dropped from the full receive buffer.
    pub receive_drops: u32,
    /// Receive errors (ICMP errors surface once on a raw socket).
    pub receive_errors: u64,
    pub elapsed: Duration,
    /// From the first SYN sent to the last.
    pub sending: Duration,
}

impl SynStats {
    /// SYNs per second while sending (retries included).
    pub fn send_rate(&self) -> f64 {
        self.packets.saturating_sub(1) as f64 / self.sending.as_secs_f64().max(1e-9)
    }

    fn count(&mut self, state: PortState) {
        match state {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
            PortState::NotCovered(_) => self.not_covered += 1,
        }
    }
}

/// Runs SYN discovery over `targets` until each has its verdict or `stop` is cancelled, handing
/// verdicts and watermarks to `on_event` as they come (on the calling thread). Replies from an
/// address for which `in_scope` is false are dropped and counted.
///
/// Blocks the calling thread, and uses one more thread for receiving: call it from a dedicated or
/// blocking thread (`tokio::task::spawn_blocking`).
pub fn run<I>(
    targets: I,
    config: &SynConfig,
    in_scope: &(dyn Fn(Ipv4Addr) -> bool + Sync),
    stop: &CancellationToken,
    on_event: &mut dyn FnMut(DiscoveryEvent),
) -> Result<SynStats, SynError>
where
    I: IntoIterator<Item = SynTarget>,
{
    let started = Instant::now();
    let limits = config.limits()?;
    let mut targets = targets.into_iter().peekable();
    let source = match (config.source, targets.peek()) {
        (Some(source), _) => source,
        (None, Some(first)) => source_address_for(first.addr).map_err(|e| SynError::NoRoute(first.addr, e))?,
        (None, None) => Ipv4Addr::UNSPECIFIED,
    };
    let sender = RawSender::open()?;
    let mut receiver = RawReceiver::open(source, config.source_ports.clone())?;
    let drops = receiver.drop_counter().map_err(RawSocketError::Io)?;
    if let Some(ephemeral) = ephemeral_ports() {
        if ephemeral.start() <= config.source_ports.end() && config.source_ports.start() <= ephemeral.end() {
            tracing::warn!(
                "SYN source ports {:?} overlap the kernel's ephemeral ports {:?}: replies may reach local connections",
                config.source_ports,
                ephemeral
            );
        }
    }
    let validator = Validator::random(config.source_ports.clone());
    let (answers_in, answers) = mpsc::sync_channel(ANSWER_QUEUE);
    let done = AtomicBool::new(false);

    let mut stats = SynStats::default();
    let (sent, received) = std::thread::scope(|scope| {
        let (validator, done) = (&validator, &done);
        let receiving = scope.spawn(move || receive(&mut receiver, validator, in_scope, answers_in, done));
        let clock = LoopClock::new(Instant::now());
        let sent = Stage {
            config,
            clock: clock.clone(),
            source,
            validator,
            sender: &sender,
            drops: &drops,
            pending: Pending::new(limits, clock.clone()),
            pacer: config.rate.map(|rate| Pacer::with_clock(rate, PACER_SLACK, clock.clone())),
            stats: &mut stats,
            on_event,
        }
        .send_all(&mut targets, answers, stop);
        // The answer channel is closed (send_all took it), so the receiver cannot block on it.
        done.store(true, Ordering::Relaxed);
        (sent, receiving.join().expect("the receiving thread does not panic"))
    });
    let received = received.map_err(SynError::Receive)?;
    stats.segments = received.segments;
    stats.not_replies = received.not_replies;
    stats.other_port = received.other_port;
    stats.out_of_scope = received.out_of_scope;
    stats.invalid = received.invalid;
    stats.receive_errors = received.errors;
    stats.receive_drops = drops.read().map_err(SynError::Receive)?;
    stats.elapsed = started.elapsed();
    sent.map(|()| stats)
}

/// The sending side's state.
struct Stage<'a> {
    config: &'a SynConfig,
    source: Ipv4Addr,
    validator: &'a Validator,
    sender: &'a RawSender,
    drops: &'a DropCounter,
    /// The time of this turn of the loop, for the pending targets and the per-host limiter.
    clock: LoopClock,
    pending: Pending,
    pacer: Option<Pacer<LoopClock>>,
    stats: &'a mut SynStats,
    on_event: &'a mut dyn FnMut(DiscoveryEvent),
}

impl Stage<'_> {
    fn send_all<I: Iterator<Item = SynTarget>>(
        mut self,
        targets: &mut Peekable<I>,
        answers: Receiver<Answer>,
        stop: &CancellationToken,
    ) -> Result<(), SynError> {
        let writer = SynWriter::default();
        // Targets whose SYNs go out together, and the packets.
        let (mut targets_out, mut batch) = (Vec::with_capacity(SEND_BATCH), Vec::with_capacity(SEND_BATCH));
        // The drop counter as last read: the baseline of targets taken until it is read again.
        let mut drops = self.drops.read().map_err(SynError::Receive)?;
        let mut paused_until = None::<Instant>;
        let mut last_checkpoint = Instant::now();
        let mut last_mark = None;
        let (mut first_send, mut last_send) = (None::<Instant>, None::<Instant>);
        'run: loop {
            if stop.is_cancelled() {
                break;
            }
            let now = Instant::now();
            self.clock.set(now);
            loop {
                match answers.try_recv() {
                    Ok(a) => self.answer(a),
                    Err(TryRecvError::Empty) => break,
                    // The receiver stopped on a broken socket (its error is returned by `run`).
                    Err(TryRecvError::Disconnected) => break 'run,
                }
            }
            if self.pending.next_timer().is_some_and(|t| t <= now) {
                let (counter, mut failed) = (self.drops, None);
                self.pending.fire(|| match counter.read() {
                    Ok(n) => {
                        drops = n;
                        n
                    }
                    // Unknowable: count it as moved, so that nothing is called filtered on it.
                    Err(e) => {
                        failed = Some(e);
                        drops.wrapping_add(1)
                    }
                });
                if let Some(e) = failed {
                    return Err(SynError::Receive(e));
                }
            }
            self.hand_over_verdicts();
            if let Some(every) = self.config.checkpoint_every {
                if now.duration_since(last_checkpoint) >= every {
                    last_checkpoint = now;
                    let mark = self.pending.watermark(targets.peek().map(|t| t.position));
                    if last_mark != Some(mark) {
                        (self.on_event)(DiscoveryEvent::Checkpoint(mark));
                        last_mark = Some(mark);
                    }
                }
            }

            if let Some(until) = paused_until.filter(|u| *u > now) {
                self.wait_for_answers(&answers, until - now, now);
                continue;
            }
            // The SYNs due now, each with its slot of the rate, go out together.
            let mut paced = None;
            targets_out.clear();
            batch.clear();
            while batch.len() < SEND_BATCH {
                if let Some(Err(wait)) = self.pacer.as_ref().map(|p| p.try_take()) {
                    paced = Some(wait);
                    break;
                }
                let Some(target) = self.next_target(targets, drops) else { break };
                let (src_port, seq) = self.validator.probe(target.addr, target.port);
                let mut packet = [0u8; SYN_LEN];
                writer.write(
                    &Syn { src: self.source, dst: target.addr, src_port, dst_port: target.port, seq },
                    &mut packet,
                );
                targets_out.push(target);
                batch.push((target.addr, packet));
            }
            if !batch.is_empty() {
                first_send.get_or_insert(now);
                last_send = Some(now);
                let mut next = 0;
                while next < batch.len() {
                    match self.sender.send_batch(&batch[next..]) {
                        Ok(sent) => {
                            for target in &targets_out[next..next + sent] {
                                let sends = self.pending.sent(target);
                                self.stats.packets += 1;
                                self.stats.retries += u64::from(sends > 1);
                            }
                            next += sent;
                        }
                        Err(failure) => {
                            self.stats.local_failures.count(failure);
                            self.pending.send_failed(&targets_out[next], failure);
                            paused_until = Some(now + LOCAL_FAILURE_PAUSE);
                            next += 1;
                        }
                    }
                }
                continue;
            }
            let wait = match paced {
                Some(wait) => wait,
                None if self.pending.is_empty() && targets.peek().is_none() => break,
                // Nothing is due: wait for an answer or the next timer.
                None => IDLE_POLL,
            };
            self.wait_for_answers(&answers, wait, now);
        }
        self.stats.abandoned = self.pending.len() as u64;
        self.hand_over_verdicts();
        let mark = self.pending.watermark(targets.peek().map(|t| t.position));
        (self.on_event)(DiscoveryEvent::Checkpoint(mark));
        if let (Some(first), Some(last)) = (first_send, last_send) {
            self.stats.sending = last - first;
        }
        Ok(())
    }

    /// The next target to send to: a due retry first, else a new target from the stream. New targets
    /// are taken [`ADMIT_AHEAD`] ahead of their sends, so that each one's per-host state comes from
    /// memory while the ones before it go out.
    fn next_target<I: Iterator<Item = SynTarget>>(
        &mut self,
        targets: &mut Peekable<I>,
        drops: u32,
    ) -> Option<SynTarget> {
        loop {
            while self.pending.ready_len() < ADMIT_AHEAD && self.pending.has_room() {
                let Some(t) = targets.next() else { break };
                self.stats.targets += 1;
                if !self.pending.admit(t, drops) {
                    self.stats.duplicates += 1;
                }
            }
            if let Some(t) = self.pending.next_send() {
                return Some(t);
            }
            // Nothing was due: the stream is done, pending is full, or every target taken waits
            // for its host (then more are taken, while there is room).
            if !self.pending.has_room() || targets.peek().is_none() {
                return None;
            }
        }
    }

    /// Waits at most `wait`, and not past the next timer, for an answer.
    fn wait_for_answers(&mut self, answers: &Receiver<Answer>, wait: Duration, now: Instant) {
        let wait = self.pending.next_timer().map_or(wait, |t| wait.min(t.saturating_duration_since(now)));
        // A closed channel is noticed at the top of the loop.
        if let Ok(a) = answers.recv_timeout(wait) {
            self.answer(a);
        }
    }

    fn answer(&mut self, a: Answer) {
        if !self.pending.answer(a.addr, a.port, a.open) {
            self.stats.unmatched += 1;
        }
    }

    fn hand_over_verdicts(&mut self) {
        for verdict in self.pending.drain_decided() {
            self.stats.count(verdict.state);
            (self.on_event)(DiscoveryEvent::Verdict(verdict));
        }
    }
}

/// What the receiving thread saw.
#[derive(Debug, Default)]
struct Received {
    segments: u64,
    not_replies: u64,
    other_port: u64,
    out_of_scope: u64,
    invalid: u64,
    errors: u64,
}

fn receive(
    receiver: &mut RawReceiver,
    validator: &Validator,
    in_scope: &(dyn Fn(Ipv4Addr) -> bool + Sync),
    answers: SyncSender<Answer>,
    done: &AtomicBool,
) -> Result<Received, io::Error> {
    let mut seen = Received::default();
    let mut consecutive_errors = 0;
    while !done.load(Ordering::Relaxed) {
        let packets = match receiver.try_recv() {
            Ok(packets) => packets,
            Err(_) if consecutive_errors + 1 < MAX_RECEIVE_ERRORS => {
                seen.errors += 1;
                consecutive_errors += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        consecutive_errors = 0;
        let before = seen.segments;
        for packet in packets {
            seen.segments += 1;
            let Some(segment) = parse_segment(packet) else {
                seen.not_replies += 1;
                continue;
            };
            match validator.check(&segment, in_scope) {
                Ok(answer) => {
                    // The sender has finished and closed the channel: nothing more to hear.
                    if answers.send(answer).is_err() {
                        return Ok(seen);
                    }
                }
                Err(Rejected::NotAReply) => seen.not_replies += 1,
                Err(Rejected::OtherPort) => seen.other_port += 1,
                Err(Rejected::OutOfScope) => seen.out_of_scope += 1,
                Err(Rejected::Invalid) => seen.invalid += 1,
            }
        }
        if seen.segments == before {
            std::thread::sleep(RECEIVE_NAP);
        }
    }
    Ok(seen)
}
