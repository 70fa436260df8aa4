//! Pacing of sends at a global rate, with governor's GCRA and a burst quota.
//!
//! A GCRA whose burst is `rate × slack` is an absolute schedule (the k-th send due at `start + k / rate`)
//! with bounded catch-up: a sender that wakes late (a timer's granularity, a busy machine) may make
//! good at most `slack` worth of sends back to back, and time lost beyond that is given up. A burst
//! of 1 would instead make every late wake-up permanent, which loses a fifth of the rate to timer
//! granularity at a few thousand sends per second.
//!
//! The pacer does not wait by itself: [`Pacer::try_take`] says how long until the next send is due,
//! so a thread can wait on something else meanwhile (the SYN sender waits on its replies, and reads
//! the clock once per turn of its loop). With the [`TokioClock`], [`Pacer::ready`] waits on tokio's
//! timer, and paused-time tests drive it: that is the engine's pacer.

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// How far a pacer may fall behind its schedule and then catch up at once.
pub const PACER_SLACK: Duration = Duration::from_millis(20);

/// Sends at a steady rate: see the module documentation.
pub struct Pacer<C: Clock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock + Clone> Pacer<C> {
    /// A pacer of `rate` sends per second that catches up at most `slack` of lateness at once.
    pub fn with_clock(rate: NonZeroU32, slack: Duration, clock: C) -> Pacer<C> {
        let period = Duration::from_nanos((1_000_000_000 / u64::from(rate.get())).max(1));
        let burst = (slack.as_nanos() / period.as_nanos()).clamp(1, u128::from(u32::MAX)) as u32;
        let burst = NonZeroU32::new(burst).expect("clamped to at least 1");
        let quota = Quota::with_period(period).expect("period is non-zero").allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        // A fresh GCRA holds a full burst; spending it now starts the schedule at its first slot
        // instead of with `slack` worth of sends at once.
        let _ = limiter.check_n(burst);
        Pacer { limiter, clock }
    }

    /// Takes the next send's slot if it is due, or says how long until it is.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl Pacer<TokioClock> {
    /// A pacer on tokio's clock, for async senders.
    pub fn on_tokio(rate: NonZeroU32) -> Pacer<TokioClock> {
        Pacer::with_clock(rate, PACER_SLACK, TokioClock)
    }

    /// Waits until the next send is due, and takes its slot.
    pub async fn ready(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// tokio's clock for governor, so that paused-time tests drive a pacer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

/// A reading of [`TokioClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl std::ops::Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn keeps_an_absolute_schedule() {
        let p = Pacer::on_tokio(NonZeroU32::new(5000).unwrap());
        let t0 = Instant::now();
        for _ in 0..5000 {
            p.ready().await;
        }
        // 5000 sends at 5000/s, the first one period after the start: the last is due at 1 s.
        let elapsed = Instant::now() - t0;
        assert!(
            elapsed >= Duration::from_micros(999_900) && elapsed <= Duration::from_micros(1_000_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn catches_up_a_stall_only_within_the_slack() {
        let p = Pacer::on_tokio(NonZeroU32::new(1000).unwrap());
        p.ready().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        let mut at_once = 0;
        for _ in 0..100 {
            p.ready().await;
            if Instant::now() == t0 {
                at_once += 1;
            }
        }
        // 20 ms of slack at 1 ms per send: 20 go out at once, not the 1000 the stall missed.
        assert_eq!(at_once, 20);
        // And the rest keep the schedule: 80 more at 1 ms each.
        let elapsed = Instant::now() - t0;
        assert!(elapsed >= Duration::from_millis(79) && elapsed <= Duration::from_millis(81), "{elapsed:?}");
    }

    #[test]
    fn try_take_says_how_long_to_wait() {
        let p = Pacer::with_clock(NonZeroU32::new(10).unwrap(), PACER_SLACK, governor::clock::MonotonicClock);
        // The burst was spent at creation: the first slot is one period (100 ms) away.
        let wait = p.try_take().unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
    }
}
