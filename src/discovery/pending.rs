//! The targets of SYN discovery that have been taken from the stream but have no verdict yet, and
//! what is due for each: a first SYN, a retry after the wait, a retry after a local failure, a slot
//! at a busy host, or the "filtered" verdict after the last wait.
//!
//! Memory is bounded by `max_pending` targets (the span from the oldest undecided target to the
//! newest taken), whatever the size of the scan: a target leaves as soon as it is decided. The
//! state reads the time from a [`LoopClock`] that its owner sets (the sender once per turn of its
//! loop), so tests drive it by hand, without sockets.

use super::recent_hosts::RecentHosts;
use super::{NotCovered, PortState, SynTarget, Verdict, Watermark};
use crate::net::raw::LocalFailure;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::{Quota, RateLimiter};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

type Key = (Ipv4Addr, u16);

/// Maps keyed by address are hashed with foldhash: every lookup is on the per-packet path, and the
/// keys are the scan's own targets, which no peer chooses.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The first retry after a local send failure waits this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Timers of decided targets are dropped once they outnumber the live ones by this much and more.
const STALE_TIMER_SLACK: usize = 1024;

/// The time as its owner last set it: one reading of the system clock serves a whole turn of the
/// sender's loop (its own checks, the per-host limiter's), and tests move it by hand.
#[derive(Debug, Clone)]
pub(super) struct LoopClock(Rc<Cell<Instant>>);

impl LoopClock {
    pub fn new(now: Instant) -> LoopClock {
        LoopClock(Rc::new(Cell::new(now)))
    }

    pub fn set(&self, now: Instant) {
        self.0.set(now);
    }
}

impl Clock for LoopClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        self.0.get()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// SYNs to a silent target after the first.
    pub retries: u8,
    /// How long each SYN is given to be answered.
    pub wait: Duration,
    /// Targets taken from the stream and not yet decided, at most.
    pub max_pending: usize,
    /// Failed sends after which a target is not covered.
    pub max_local_failures: u8,
    /// Packets per second to one address.
    pub host_pps: Option<NonZeroU32>,
    /// Packets per second in all (sizes the per-host state).
    pub rate: Option<NonZeroU32>,
}

/// Addresses the per-host state is sized for at an unlimited rate: 2 MiB of it.
const UNLIMITED_RATE_RECENT_HOSTS: usize = 1 << 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In a send queue (ready, cleared, or a busy host's).
    Queued,
    /// Sent; waiting for an answer until `due`.
    Awaiting,
    /// A send failed locally; queued again at `due`.
    Backoff,
}

struct Entry {
    target: SynTarget,
    ordinal: u64,
    sends: u8,
    failures: u8,
    /// The receive socket's drop counter when the target was taken.
    drops_at_admit: u32,
    due: Instant,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Target(Ipv4Addr, u16),
    Host(Ipv4Addr),
}

type HostLimiter = RateLimiter<Ipv4Addr, RecentHosts, LoopClock, NoOpMiddleware<Instant>>;

/// At most `host_pps` packets per second to one address: targets of a busy address wait in that
/// address's queue, in order, and leave it one per slot.
struct HostSpacing {
    limiter: HostLimiter,
    /// The limiter's table, shared, for prefetching.
    recent: RecentHosts,
    interval: Duration,
    queues: FastMap<Ipv4Addr, VecDeque<Key>>,
}

/// Positions in the order taken, each marked once decided: the oldest undecided one is the
/// watermark. Decided positions leave from the front.
#[derive(Default)]
struct Order {
    first_ordinal: u64,
    slots: VecDeque<(u64, bool)>,
}

impl Order {
    fn push(&mut self, position: u64) -> u64 {
        self.slots.push_back((position, false));
        self.first_ordinal + self.slots.len() as u64 - 1
    }

    fn done(&mut self, ordinal: u64) {
        if let Some(slot) = self.slots.get_mut((ordinal - self.first_ordinal) as usize) {
            slot.1 = true;
        }
        while self.slots.front().is_some_and(|s| s.1) {
            self.slots.pop_front();
            self.first_ordinal += 1;
        }
    }
}

pub(super) struct Pending {
    clock: LoopClock,
    limits: Limits,
    entries: FastMap<Key, Entry>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Due for a send, once the host allows.
    ready: VecDeque<Key>,
    /// Due for a send, the host's slot already taken.
    cleared: VecDeque<Key>,
    hosts: Option<HostSpacing>,
    order: Order,
    decided: Vec<Verdict>,
}

impl Pending {
    pub fn new(limits: Limits, clock: LoopClock) -> Pending {
        let hosts = limits.host_pps.map(|pps| {
            let interval = Duration::from_nanos((1_000_000_000 / u64::from(pps.get())).max(1));
            // A burst of one: consecutive packets to an address are a whole interval apart.
            let quota = Quota::with_period(interval).expect("non-zero period");
            // The addresses sent to within one interval are the ones the limiter must remember.
            let recent = limits.rate.map_or(UNLIMITED_RATE_RECENT_HOSTS, |rate| {
                (u128::from(rate.get()) * interval.as_nanos() / 1_000_000_000) as usize + 1
            });
            let recent = RecentHosts::with_capacity(recent);
            HostSpacing {
                limiter: RateLimiter::new(quota, recent.clone(), clock.clone()),
                recent,
                interval,
                queues: FastMap::default(),
            }
        });
        Pending {
            clock,
            limits,
            entries: FastMap::default(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            cleared: VecDeque::new(),
            hosts,
            order: Order::default(),
            decided: Vec::new(),
        }
    }

    /// Whether another target may be taken from the stream.
    pub fn has_room(&self) -> bool {
        self.order.slots.len() < self.limits.max_pending
    }

    /// Targets due for a send whose host has not been asked yet (a few may have been decided since).
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether no target is waiting for anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes a target from the stream; `false` if the same (address, port) is already pending.
    pub fn admit(&mut self, target: SynTarget, drops: u32) -> bool {
        let key = (target.addr, target.port);
        if self.entries.contains_key(&key) {
            return false;
        }
        let ordinal = self.order.push(target.position);
        let due = self.clock.now();
        self.entries.insert(
            key,
            Entry { target, ordinal, sends: 0, failures: 0, drops_at_admit: drops, due, phase: Phase::Queued },
        );
        self.ready.push_back(key);
        // Its host's state is looked at when its turn comes: start fetching it now.
        if let Some(hosts) = &self.hosts {
            hosts.recent.prefetch(target.addr);
        }
        true
    }

    /// The next target to send a SYN to now, its host's slot taken; `None` if none is due.
    pub fn next_send(&mut self) -> Option<SynTarget> {
        while let Some(key) = self.cleared.pop_front() {
            if let Some(e) = self.entries.get(&key).filter(|e| e.phase == Phase::Queued) {
                return Some(e.target);
            }
        }
        while let Some(key) = self.ready.pop_front() {
            let Some(e) = self.entries.get(&key).filter(|e| e.phase == Phase::Queued) else { continue };
            let target = e.target;
            let Some(hosts) = &mut self.hosts else { return Some(target) };
            if let Some(queue) = hosts.queues.get_mut(&key.0) {
                // Earlier targets of this address are waiting: keep their order.
                queue.push_back(key);
                continue;
            }
            match hosts.limiter.check_key(&key.0) {
                Ok(()) => return Some(target),
                Err(not_until) => {
                    hosts.queues.insert(key.0, VecDeque::from([key]));
                    self.timers.push(Reverse((not_until.earliest_possible(), Timer::Host(key.0))));
                }
            }
        }
        None
    }

    /// The SYN to `target` went out; returns how many have, this one included.
    pub fn sent(&mut self, target: &SynTarget) -> u8 {
        let due = self.clock.now() + self.limits.wait;
        let Some(e) = self.entries.get_mut(&(target.addr, target.port)) else { return 0 };
        e.sends += 1;
        e.due = due;
        e.phase = Phase::Awaiting;
        self.timers.push(Reverse((due, Timer::Target(target.addr, target.port))));
        e.sends
    }

    /// The SYN to `target` could not be sent: it is tried again after a backoff, or, after too many
    /// failures, is not covered.
    pub fn send_failed(&mut self, target: &SynTarget, failure: LocalFailure) {
        let key = (target.addr, target.port);
        let Some(e) = self.entries.get_mut(&key) else { return };
        e.failures += 1;
        if e.failures >= self.limits.max_local_failures {
            self.decide(key, PortState::NotCovered(NotCovered::Send(failure)));
            return;
        }
        e.due = self.clock.now() + FIRST_BACKOFF * (1 << (e.failures - 1).min(10));
        e.phase = Phase::Backoff;
        self.timers.push(Reverse((e.due, Timer::Target(key.0, key.1))));
    }

    /// A validated answer from (addr, port); `false` if that target is not pending (a late or
    /// repeated answer).
    pub fn answer(&mut self, addr: Ipv4Addr, port: u16, open: bool) -> bool {
        if !self.entries.contains_key(&(addr, port)) {
            return false;
        }
        self.decide((addr, port), if open { PortState::Open } else { PortState::Closed });
        true
    }

    /// When the next timer is due (it may turn out stale: a target answered meanwhile).
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs every timer that is due: retries are queued, busy hosts release their next target, and
    /// targets silent after their last SYN are decided. `drops` reads the receive socket's drop
    /// counter (only when a target is about to be called filtered): a target that was waiting while
    /// it moved may have lost its answer.
    pub fn fire(&mut self, mut drops: impl FnMut() -> u32) {
        let now = self.clock.now();
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Target(addr, port) => self.target_due((addr, port), at, &mut drops),
                Timer::Host(addr) => self.host_due(addr, now),
            }
        }
    }

    fn target_due(&mut self, key: Key, at: Instant, drops: &mut impl FnMut() -> u32) {
        let Some(e) = self.entries.get_mut(&key).filter(|e| e.due == at) else { return };
        match e.phase {
            Phase::Awaiting if e.sends > self.limits.retries => {
                let state = if drops() != e.drops_at_admit {
                    PortState::NotCovered(NotCovered::ReceiveOverflow)
                } else {
                    PortState::Filtered
                };
                self.decide(key, state);
            }
            Phase::Awaiting | Phase::Backoff => {
                e.phase = Phase::Queued;
                self.ready.push_back(key);
            }
            Phase::Queued => {}
        }
    }

    fn host_due(&mut self, addr: Ipv4Addr, now: Instant) {
        let Some(hosts) = &mut self.hosts else { return };
        let Some(queue) = hosts.queues.get_mut(&addr) else { return };
        // Targets decided while queued (a late answer) give up their place.
        while queue.front().is_some_and(|k| !self.entries.get(k).is_some_and(|e| e.phase == Phase::Queued)) {
            queue.pop_front();
        }
        if queue.is_empty() {
            hosts.queues.remove(&addr);
            return;
        }
        match hosts.limiter.check_key(&addr) {
            Ok(()) => {
                self.cleared.push_back(queue.pop_front().expect("not empty"));
                if queue.is_empty() {
                    hosts.queues.remove(&addr);
                } else {
                    self.timers.push(Reverse((now + hosts.interval, Timer::Host(addr))));
                }
            }
            Err(not_until) => self.timers.push(Reverse((not_until.earliest_possible(), Timer::Host(addr)))),
        }
    }

    fn decide(&mut self, key: Key, state: PortState) {
        if let Some(e) = self.entries.remove(&key) {
            self.order.done(e.ordinal);
            self.decided.push(Verdict { target: e.target, state });
        }
        // Most targets are decided by an answer well before their timer: without this, a fast scan
        // would hold `rate × wait` dead timers.
        if self.timers.len() > 2 * self.entries.len() + STALE_TIMER_SLACK {
            let (entries, hosts) = (&self.entries, &self.hosts);
            self.timers.retain(|Reverse((at, timer))| match timer {
                Timer::Target(addr, port) => entries.get(&(*addr, *port)).is_some_and(|e| e.due == *at),
                Timer::Host(addr) => hosts.as_ref().is_some_and(|h| h.queues.contains_key(addr)),
            });
        }
    }

    /// Hands over the verdicts reached since the last call, in the order reached.
    pub fn drain_decided(&mut self) -> std::vec::Drain<'_, Verdict> {
        self.decided.drain(..)
    }

    /// The checkpoint: the oldest undecided target, or else `next`, the position of the next target
    /// the stream will give (`None` once it is exhausted).
    pub fn watermark(&self, next: Option<u64>) -> Watermark {
        match (self.order.slots.front(), next) {
            (Some(&(position, _)), _) | (None, Some(position)) => Watermark::Before(position),
            (None, None) => Watermark::Complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> LoopClock {
        LoopClock::new(Instant::now())
    }

    impl LoopClock {
        fn advance(&self, by: Duration) {
            self.set(self.now() + by);
        }
    }

    fn limits(host_pps: Option<u32>) -> Limits {
        Limits {
            retries: 1,
            wait: Duration::from_secs(1),
            max_pending: 100,
            max_local_failures: 3,
            host_pps: host_pps.and_then(NonZeroU32::new),
            rate: NonZeroU32::new(1000),
        }
    }

    fn target(position: u64, last_octet: u8, port: u16) -> SynTarget {
        SynTarget { position, addr: Ipv4Addr::new(127, 50, 0, last_octet), port }
    }

    fn decided(p: &mut Pending) -> Vec<(u64, PortState)> {
        p.drain_decided().map(|v| (v.target.position, v.state)).collect()
    }

    #[test]
    fn a_silent_target_is_retried_after_the_wait_then_filtered() {
        let clock = clock();
        let mut p = Pending::new(limits(None), clock.clone());
        let t = target(0, 1, 502);
        assert!(p.admit(t, 0));
        assert_eq!(p.next_send(), Some(t));
        p.sent(&t);
        assert_eq!(p.next_send(), None);
        clock.advance(Duration::from_millis(999));
        p.fire(|| 0);
        assert_eq!(p.next_send(), None, "the wait is not over");
        clock.advance(Duration::from_millis(1));
        p.fire(|| 0);
        assert_eq!(p.next_send(), Some(t), "the retry is due");
        p.sent(&t);
        clock.advance(Duration::from_secs(1));
        p.fire(|| 0);
        assert_eq!(p.next_send(), None, "one retry only");
        assert_eq!(decided(&mut p), [(0, PortState::Filtered)]);
        assert!(p.is_empty());
        assert_eq!(p.watermark(None), Watermark::Complete);
    }

    #[test]
    fn answers_decide_at_once_and_late_ones_are_not_pending() {
        let clock = clock();
        let mut p = Pending::new(limits(None), clock.clone());
        let (a, b) = (target(0, 1, 502), target(1, 2, 502));
        p.admit(a, 0);
        p.admit(b, 0);
        for _ in 0..2 {
            let t = p.next_send().unwrap();
            p.sent(&t);
        }
        assert!(p.answer(b.addr, 502, false));
        assert!(p.answer(a.addr, 502, true));
        assert!(!p.answer(a.addr, 502, true), "a repeated SYN-ACK");
        assert!(!p.answer(Ipv4Addr::new(127, 50, 0, 9), 502, true), "never probed");
        assert_eq!(decided(&mut p), [(1, PortState::Closed), (0, PortState::Open)]);
        // Their timers fire into nothing.
        clock.advance(Duration::from_secs(5));
        p.fire(|| 0);
        assert_eq!(p.next_send(), None);
        assert!(decided(&mut p).is_empty());
    }

    #[test]
    fn an_answer_to_the_first_syn_counts_while_the_retry_is_queued() {
        let clock = clock();
        let mut p = Pending::new(limits(None), clock.clone());
        let t = target(0, 1, 502);
        p.admit(t, 0);
        p.next_send();
        p.sent(&t);
        clock.advance(Duration::from_secs(1));
        p.fire(|| 0);
        assert!(p.answer(t.addr, 502, true));
        assert_eq!(p.next_send(), None, "no retry once answered");
        assert_eq!(decided(&mut p), [(0, PortState::Open)]);
    }

    #[test]
    fn local_failures_back_off_and_end_as_not_covered() {
        let clock = clock();
        let mut p = Pending::new(limits(None), clock.clone());
        let t = target(0, 1, 502);
        p.admit(t, 0);
        let mut waits = Vec::new();
        for _ in 0..3 {
            let mut waited = Duration::ZERO;
            let sent = loop {
                p.fire(|| 0);
                if let Some(s) = p.next_send() {
                    break s;
                }
                clock.advance(Duration::from_millis(1));
                waited += Duration::from_millis(1);
            };
            waits.push(waited);
            p.send_failed(&sent, LocalFailure::NoBuffers);
        }
        assert_eq!(waits, [Duration::ZERO, Duration::from_millis(10), Duration::from_millis(20)]);
        assert_eq!(decided(&mut p), [(0, PortState::NotCovered(NotCovered::Send(LocalFailure::NoBuffers)))]);
    }

    #[test]
    fn silence_while_the_receive_buffer_overflowed_is_not_covered() {
        let clock = clock();
        let mut p = Pending::new(Limits { retries: 0, ..limits(None) }, clock.clone());
        let (a, b) = (target(0, 1, 502), target(1, 2, 502));
        p.admit(a, 4);
        let s = p.next_send().unwrap();
        p.sent(&s);
        clock.advance(Duration::from_millis(500));
        p.admit(b, 5);
        let s = p.next_send().unwrap();
        p.sent(&s);
        clock.advance(Duration::from_millis(500));
        p.fire(|| 5);
        clock.advance(Duration::from_millis(500));
        p.fire(|| 5);
        // `a` was waiting when the counter moved from 4 to 5; `b` came after.
        assert_eq!(
            decided(&mut p),
            [(0, PortState::NotCovered(NotCovered::ReceiveOverflow)), (1, PortState::Filtered)]
        );
    }

    #[test]
    fn one_address_gets_at_most_host_pps_packets_a_second() {
        let clock = clock();
        let mut p = Pending::new(Limits { retries: 0, max_pending: 1000, ..limits(Some(10)) }, clock.clone());
        // 30 ports of one address and 30 of another, interleaved.
        for i in 0..60u64 {
            p.admit(target(i, 1 + (i % 2) as u8, 1000 + i as u16), 0);
        }
        let mut sends: HashMap<Ipv4Addr, Vec<Instant>> = HashMap::new();
        let start = clock.now();
        for _ in 0..3500 {
            p.fire(|| 0);
            while let Some(t) = p.next_send() {
                sends.entry(t.addr).or_default().push(clock.now());
                p.sent(&t);
                p.answer(t.addr, t.port, false);
            }
            clock.advance(Duration::from_millis(1));
        }
        for times in sends.values() {
            assert_eq!(times.len(), 30);
            for pair in times.windows(2) {
                assert!(pair[1].duration_since(pair[0]) >= Duration::from_millis(100), "{:?}", pair[1] - pair[0]);
            }
            // 30 packets at 10 per second: the last leaves 2.9 s after the first, not much later.
            let span = times[29].duration_since(start);
            assert!(span <= Duration::from_millis(2950), "{span:?}");
        }
        assert_eq!(decided(&mut p).len(), 60);
        assert_eq!(p.watermark(Some(60)), Watermark::Before(60));
    }

    #[test]
    fn answered_targets_leave_no_timers_behind() {
        let clock = clock();
        // 100,000 targets answered within their wait, on 100,000 addresses, 10 µs apart: 100,000/s.
        let rate = NonZeroU32::new(100_000);
        let mut p = Pending::new(Limits { max_pending: 1 << 20, rate, ..limits(Some(10)) }, clock.clone());
        for i in 0..100_000u32 {
            let t = SynTarget { position: u64::from(i), addr: Ipv4Addr::from(0x7f40_0000 + i), port: 502 };
            p.admit(t, 0);
            let sent = p.next_send().expect("due");
            p.sent(&sent);
            p.answer(sent.addr, 502, false);
            clock.advance(Duration::from_micros(10));
        }
        assert!(p.is_empty());
        assert!(p.timers.len() <= STALE_TIMER_SLACK + 1, "{}", p.timers.len());
    }

    #[test]
    fn the_watermark_is_the_oldest_undecided_target() {
        let clock = clock();
        let mut p = Pending::new(limits(None), clock.clone());
        assert_eq!(p.watermark(Some(7)), Watermark::Before(7));
        for (i, position) in [7u64, 10, 13].into_iter().enumerate() {
            p.admit(target(position, i as u8 + 1, 502), 0);
        }
        while let Some(t) = p.next_send() {
            p.sent(&t);
        }
        p.answer(Ipv4Addr::new(127, 50, 0, 2), 502, true);
        assert_eq!(p.watermark(Some(16)), Watermark::Before(7));
        p.answer(Ipv4Addr::new(127, 50, 0, 1), 502, false);
        assert_eq!(p.watermark(Some(16)), Watermark::Before(13));
        p.answer(Ipv4Addr::new(127, 50, 0, 3), 502, false);
        assert_eq!(p.watermark(Some(16)), Watermark::Before(16));
        assert_eq!(p.watermark(None), Watermark::Complete);
    }

    #[test]
    fn room_is_bounded_by_the_span_of_undecided_positions() {
        let clock = clock();
        let mut p = Pending::new(Limits { max_pending: 3, ..limits(None) }, clock.clone());
        for i in 0..3 {
            assert!(p.has_room());
            p.admit(target(i, i as u8 + 1, 502), 0);
        }
        assert!(!p.has_room());
        // Deciding a later target does not make room while the oldest is undecided.
        p.answer(Ipv4Addr::new(127, 50, 0, 3), 502, true);
        assert!(!p.has_room());
        p.answer(Ipv4Addr::new(127, 50, 0, 1), 502, true);
        assert!(p.has_room());
        assert!(!p.admit(target(9, 2, 502), 0), "already pending");
    }
}
