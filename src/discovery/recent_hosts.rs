//! The state of the per-host limiter: governor's GCRA over a fixed-size table instead of a hash map.
//!
//! governor's map store inserts every new address and sweeps them out later; in a permuted scan
//! nearly every packet goes to a new address, and that costs about half a microsecond per packet
//! (measured: an insert and a lookup into a map of the last few intervals' addresses). This store is
//! a 4-way set-associative table of (address, theoretical arrival time): one cache line per check,
//! and memory fixed when the scan starts.
//!
//! It evicts only what governor would treat as fresh. With a burst of one, an address whose
//! theoretical arrival time has passed may send now, exactly as an address never seen; so when a set
//! is full, a new address is offered the earliest arrival time of the set. If that time has passed,
//! the new address takes that way; if not, the new address waits until it has, which only ever
//! delays a packet and never lets one through early.
//!
//! At a high rate nearly every check misses the cache (a new address, a random set of a table of a
//! few MiB), and that miss was the sender's largest cost of its own. A clone of the store shares the
//! table, so the sender can [`RecentHosts::prefetch`] a target's set a few targets ahead of its check.

use governor::nanos::Nanos;
use governor::state::StateStore;
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;

const WAYS: usize = 4;

/// One set: addresses (0 is an empty way: 0.0.0.0 is never a target) and their arrival times.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Set {
    addrs: [u32; WAYS],
    arrivals: [u64; WAYS],
}

/// Clones share one table.
#[derive(Clone)]
pub(super) struct RecentHosts {
    sets: Rc<RefCell<Box<[Set]>>>,
    /// Bits of the set index, taken from the top of a multiplicative hash.
    index_bits: u32,
}

impl RecentHosts {
    /// A table for about `addresses` recent addresses: four ways per address expected, so that a
    /// set rarely fills (when one does, a new address waits for a way, at most one interval).
    pub fn with_capacity(addresses: usize) -> RecentHosts {
        let sets = addresses.next_power_of_two().max(16);
        RecentHosts {
            sets: Rc::new(RefCell::new(vec![Set::default(); sets].into_boxed_slice())),
            index_bits: sets.trailing_zeros(),
        }
    }

    /// Asks the processor to bring `addr`'s set into the cache, so that its check soon after does not
    /// wait for memory. Only a hint: nothing is read or changed.
    pub fn prefetch(&self, addr: Ipv4Addr) {
        #[cfg(target_arch = "x86_64")]
        {
            let index = self.set_of(u32::from(addr));
            // `as_ptr` takes no borrow; the pointer is only handed to the prefetch hint.
            let set = self.sets.as_ptr();
            // SAFETY: `index` is within the table (set_of takes index_bits of the hash), and a
            // prefetch neither reads into the program nor faults, whatever the address.
            unsafe {
                let line = (*set).as_ptr().add(index).cast::<i8>();
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    fn set_of(&self, addr: u32) -> usize {
        // Fibonacci hashing: consecutive addresses land in unrelated sets.
        (addr.wrapping_mul(0x9e37_79b9) >> (32 - self.index_bits)) as usize
    }
}

impl StateStore for RecentHosts {
    type Key = Ipv4Addr;

    fn measure_and_replace<T, F, E>(&self, key: &Ipv4Addr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let addr = u32::from(*key);
        let index = self.set_of(addr);
        let mut sets = self.sets.borrow_mut();
        let set = &mut sets[index];
        let (way, offered) = match set.addrs.iter().position(|&a| a == addr) {
            Some(way) => (way, Some(Nanos::from(set.arrivals[way]))),
            None => match set.addrs.iter().position(|&a| a == 0) {
                Some(way) => (way, None),
                None => {
                    let way = (0..WAYS).min_by_key(|&w| set.arrivals[w]).expect("ways");
                    (way, Some(Nanos::from(set.arrivals[way])))
                }
            },
        };
        let (outcome, arrival) = f(offered)?;
        set.addrs[way] = addr;
        set.arrivals[way] = arrival.as_u64();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use governor::middleware::NoOpMiddleware;
    use governor::{Quota, RateLimiter};
    use std::time::Duration;

    fn limiter(
        capacity: usize,
    ) -> (RateLimiter<Ipv4Addr, RecentHosts, FakeRelativeClock, NoOpMiddleware<Nanos>>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = Quota::with_period(Duration::from_millis(100)).expect("period");
        (RateLimiter::new(quota, RecentHosts::with_capacity(capacity), clock.clone()), clock)
    }

    #[test]
    fn an_address_waits_a_whole_interval_between_packets() {
        let (l, clock) = limiter(64);
        let a = Ipv4Addr::new(127, 0, 0, 1);
        assert!(l.check_key(&a).is_ok());
        assert!(l.check_key(&a).is_err());
        clock.advance(Duration::from_millis(99));
        assert!(l.check_key(&a).is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.check_key(&a).is_ok());
        // Other addresses are not held back by it.
        assert!(l.check_key(&Ipv4Addr::new(127, 0, 0, 2)).is_ok());
    }

    #[test]
    fn a_full_table_delays_new_addresses_and_never_lets_an_old_one_through_early() {
        // 16 sets of 4 ways: 64 addresses at most; 1,000 addresses in one instant overflow it.
        let (l, clock) = limiter(1);
        let addrs: Vec<Ipv4Addr> = (1..=1000u32).map(|i| Ipv4Addr::from(0x7f00_0000 + i)).collect();
        let allowed: Vec<bool> = addrs.iter().map(|a| l.check_key(a).is_ok()).collect();
        let first_round = allowed.iter().filter(|&&ok| ok).count();
        assert!(first_round <= 64, "{first_round}");
        // Every address let through is held back for the whole interval, whatever came after it.
        for (a, ok) in addrs.iter().zip(&allowed) {
            if *ok {
                assert!(l.check_key(a).is_err(), "{a} let through twice at once");
            }
        }
        // An interval later every way has passed, so an address held back gets its turn.
        clock.advance(Duration::from_millis(100));
        let held_back = addrs.iter().zip(&allowed).find(|(_, ok)| !**ok).map(|(a, _)| *a).expect("some held back");
        assert!(l.check_key(&held_back).is_ok());
    }
}
