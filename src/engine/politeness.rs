//! Per-host politeness: small PLCs have tiny connection tables and fault under bursts, so each
//! address gets at most `per_host` probes in flight and a pause between probe starts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

struct HostSlot {
    in_flight: Arc<Semaphore>,
    next_start: Mutex<Instant>,
}

pub struct HostGate {
    hosts: Mutex<HashMap<IpAddr, Arc<HostSlot>>>,
    per_host: usize,
    interval: Duration,
    /// Map size at which idle entries are swept, so memory follows the active hosts, not the scan size.
    sweep_at: Mutex<usize>,
    min_sweep: usize,
}

/// Held while a probe talks to a host; dropping it frees the host's slot.
pub struct HostPass {
    slot: Arc<HostSlot>,
    interval: Duration,
    _permit: OwnedSemaphorePermit,
}

impl Drop for HostPass {
    fn drop(&mut self) {
        // The pause also runs from the end of a probe, so a slow reply is not followed at once by the next.
        let mut next = self.slot.next_start.lock().expect("not poisoned");
        *next = (*next).max(Instant::now() + self.interval);
    }
}

impl HostGate {
    pub fn new(per_host: usize, interval: Duration, expected_active: usize) -> HostGate {
        let min_sweep = (4 * expected_active).max(1024);
        HostGate { hosts: Mutex::new(HashMap::new()), per_host, interval, sweep_at: Mutex::new(min_sweep), min_sweep }
    }

    /// Waits until a probe to `addr` is allowed to start.
    pub async fn enter(&self, addr: IpAddr) -> HostPass {
        let slot = self.slot(addr);
        let permit = slot.in_flight.clone().acquire_owned().await.expect("semaphore never closed");
        let start = {
            let mut next = slot.next_start.lock().expect("not poisoned");
            let start = (*next).max(Instant::now());
            *next = start + self.interval;
            start
        };
        tokio::time::sleep_until(start).await;
        HostPass { slot, interval: self.interval, _permit: permit }
    }

    /// How many hosts the gate currently tracks.
    pub fn tracked(&self) -> usize {
        self.hosts.lock().expect("not poisoned").len()
    }

    fn slot(&self, addr: IpAddr) -> Arc<HostSlot> {
        let mut hosts = self.hosts.lock().expect("not poisoned");
        let mut sweep_at = self.sweep_at.lock().expect("not poisoned");
        if hosts.len() >= *sweep_at {
            let now = Instant::now();
            hosts.retain(|_, s| Arc::strong_count(s) > 1 || *s.next_start.lock().expect("not poisoned") > now);
            *sweep_at = (2 * hosts.len()).max(self.min_sweep);
        }
        hosts
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(HostSlot {
                    in_flight: Arc::new(Semaphore::new(self.per_host)),
                    next_start: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn serialises_one_host_and_spaces_its_probes() {
        let gate = Arc::new(HostGate::new(1, Duration::from_millis(100), 8));
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let first = gate.enter(addr).await;
        let g = gate.clone();
        let second = tokio::spawn(async move {
            let _p = g.enter(addr).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(first);
        let started = second.await.unwrap();
        // The second waited for the first to end, then for the pause.
        assert!(started - t0 >= Duration::from_millis(600), "{:?}", started - t0);
    }

    #[tokio::test(start_paused = true)]
    async fn other_hosts_do_not_wait() {
        let gate = HostGate::new(1, Duration::from_secs(10), 8);
        let t0 = Instant::now();
        let _a = gate.enter("127.0.0.1".parse().unwrap()).await;
        let _b = gate.enter("127.0.0.2".parse().unwrap()).await;
        assert!(Instant::now() - t0 < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_hosts_are_forgotten() {
        let gate = HostGate::new(1, Duration::from_millis(10), 1);
        for i in 0..5000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i));
            drop(gate.enter(addr).await);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(gate.tracked() < 2100, "{}", gate.tracked());
    }
}
