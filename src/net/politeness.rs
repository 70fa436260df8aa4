//! Per-host politeness: small PLCs have tiny connection tables and fault under bursts. The gate
//! works where connections are opened, so a probe's own reconnects (S7 TSAP retries, a Modbus
//! reconnect, the passive read, a TLS handshake) are held to it like a first connection:
//! - at most `per_host` connections (TCP, TLS or UDP sockets) to one address are open at once;
//! - a connection to an address opens at least `interval` after the previous one to it closed, and
//!   at least `interval` after the previous one opened.
//!
//! The engine also takes a [`HostTurn`] per target: at most `per_host` targets of one address are
//! identified at once, so the connections of one target follow each other instead of queueing
//! behind every other port of the host (which would spend the target's deadline waiting).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

struct Host {
    /// Targets of the address being identified.
    targets: Arc<Semaphore>,
    /// Connections to the address open now.
    connections: Arc<Semaphore>,
    /// No connection opens before this instant.
    next_open: Mutex<Instant>,
}

pub struct HostGate {
    hosts: Mutex<HashMap<IpAddr, Arc<Host>>>,
    per_host: usize,
    interval: Duration,
    /// Map size at which idle entries are swept, so memory follows the active hosts, not the scan size.
    sweep_at: Mutex<usize>,
    min_sweep: usize,
}

/// One target's turn at its host: every connection of the target opens through it.
pub struct HostTurn {
    host: Arc<Host>,
    interval: Duration,
    _target: OwnedSemaphorePermit,
}

/// Held by an open connection; dropping it (the connection closed) starts the host's interval.
pub struct ConnectionPass {
    host: Arc<Host>,
    interval: Duration,
    _connection: OwnedSemaphorePermit,
}

impl Drop for ConnectionPass {
    fn drop(&mut self) {
        let mut next = self.host.next_open.lock().expect("not poisoned");
        *next = (*next).max(Instant::now() + self.interval);
    }
}

impl HostGate {
    pub fn new(per_host: usize, interval: Duration, expected_active: usize) -> HostGate {
        let min_sweep = (4 * expected_active).max(1024);
        HostGate {
            hosts: Mutex::new(HashMap::new()),
            per_host: per_host.max(1),
            interval,
            sweep_at: Mutex::new(min_sweep),
            min_sweep,
        }
    }

    /// Waits until one more target of `addr` may be identified.
    pub async fn turn(&self, addr: IpAddr) -> HostTurn {
        let host = self.host(addr);
        let permit = host.targets.clone().acquire_owned().await.expect("semaphore never closed");
        HostTurn { host, interval: self.interval, _target: permit }
    }

    /// How many hosts the gate currently tracks.
    pub fn tracked(&self) -> usize {
        self.hosts.lock().expect("not poisoned").len()
    }

    fn host(&self, addr: IpAddr) -> Arc<Host> {
        let mut hosts = self.hosts.lock().expect("not poisoned");
        let mut sweep_at = self.sweep_at.lock().expect("not poisoned");
        if hosts.len() >= *sweep_at {
            let now = Instant::now();
            hosts.retain(|_, h| Arc::strong_count(h) > 1 || *h.next_open.lock().expect("not poisoned") > now);
            *sweep_at = (2 * hosts.len()).max(self.min_sweep);
        }
        hosts
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Host {
                    targets: Arc::new(Semaphore::new(self.per_host)),
                    connections: Arc::new(Semaphore::new(self.per_host)),
                    next_open: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }
}

impl HostTurn {
    /// Waits until a connection to the host may open: a free connection slot, then the interval
    /// after the previous connection's close and open.
    pub async fn connection(&self) -> ConnectionPass {
        let permit = self.host.connections.clone().acquire_owned().await.expect("semaphore never closed");
        let open_at = {
            let mut next = self.host.next_open.lock().expect("not poisoned");
            let open_at = (*next).max(Instant::now());
            *next = open_at + self.interval;
            open_at
        };
        tokio::time::sleep_until(open_at).await;
        ConnectionPass { host: self.host.clone(), interval: self.interval, _connection: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "127.0.0.1";

    #[tokio::test(start_paused = true)]
    async fn a_connection_waits_for_the_previous_close_and_the_interval() {
        let gate = Arc::new(HostGate::new(1, Duration::from_millis(100), 8));
        let turn = Arc::new(gate.turn(HOST.parse().unwrap()).await);
        let t0 = Instant::now();
        let first = turn.connection().await;
        let t = turn.clone();
        let second = tokio::spawn(async move {
            let _c = t.connection().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(first);
        let opened = second.await.unwrap();
        // The second waited for the first to close, then for the interval.
        assert!(opened - t0 >= Duration::from_millis(600), "{:?}", opened - t0);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_of_one_host_take_turns() {
        let gate = Arc::new(HostGate::new(1, Duration::ZERO, 8));
        let first = gate.turn(HOST.parse().unwrap()).await;
        let g = gate.clone();
        let second = tokio::spawn(async move { g.turn(HOST.parse().unwrap()).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!second.is_finished(), "a second target of the host began before the first ended");
        drop(first);
        second.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn other_hosts_do_not_wait() {
        let gate = HostGate::new(1, Duration::from_secs(10), 8);
        let t0 = Instant::now();
        let a = gate.turn("127.0.0.1".parse().unwrap()).await;
        let b = gate.turn("127.0.0.2".parse().unwrap()).await;
        let _ca = a.connection().await;
        let _cb = b.connection().await;
        assert!(Instant::now() - t0 < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_hosts_are_forgotten() {
        let gate = HostGate::new(1, Duration::from_millis(10), 1);
        for i in 0..5000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i));
            let turn = gate.turn(addr).await;
            drop(turn.connection().await);
            drop(turn);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(gate.tracked() < 2100, "{}", gate.tracked());
    }
}
