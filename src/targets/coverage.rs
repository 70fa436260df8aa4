//! What a scan covered, stored with it: the address spans, ports, shard and seed. From these alone
//! (no ledger needed) the history can tell whether a later scan probed a given service, so that a
//! shard or a one-district scan never makes the rest look resolved.

use super::{Permutation, Shard};
use crate::ledger::to_u128;
use crate::scope::PortSpec;
use crate::scope::Transport;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Address spans in the order of the scan's address numbering.
    pub spans: Vec<(IpAddr, IpAddr)>,
    pub ports: Vec<PortSpec>,
    pub shard: Shard,
    pub seed: u64,
}

/// A [`Coverage`] prepared for many membership questions.
pub struct CoverageIndex<'c> {
    coverage: &'c Coverage,
    /// (family is v4, first, last, ordinal of first), sorted by address.
    sorted: Vec<(bool, u128, u128, u64)>,
    permutation: Permutation,
}

impl Coverage {
    pub fn addresses(&self) -> u64 {
        self.spans.iter().map(|(a, b)| (to_u128(*b) - to_u128(*a) + 1) as u64).sum()
    }

    pub fn index(&self) -> CoverageIndex<'_> {
        let mut ordinal = 0u64;
        let mut sorted = Vec::with_capacity(self.spans.len());
        for (a, b) in &self.spans {
            sorted.push((a.is_ipv4(), to_u128(*a), to_u128(*b), ordinal));
            ordinal += (to_u128(*b) - to_u128(*a) + 1) as u64;
        }
        sorted.sort_by_key(|s| (!s.0, s.1));
        let total = ordinal * self.ports.len() as u64;
        CoverageIndex { coverage: self, sorted, permutation: Permutation::new(total, self.seed) }
    }
}

impl CoverageIndex<'_> {
    /// Whether the scan this coverage describes probed (ip, port, transport), walked to the end.
    pub fn contains(&self, ip: IpAddr, port: u16, transport: Transport) -> bool {
        let Some(port_index) = self.coverage.ports.iter().position(|p| p.port == port && p.transport == transport)
        else {
            return false;
        };
        let key = (!ip.is_ipv4(), to_u128(ip));
        let i = self.sorted.partition_point(|s| (!s.0, s.1) <= key);
        let Some(&(v4, first, last, ordinal)) = i.checked_sub(1).and_then(|i| self.sorted.get(i)) else {
            return false;
        };
        if v4 != ip.is_ipv4() || key.1 > last {
            return false;
        }
        let shard = self.coverage.shard;
        if shard.count == 1 {
            return true;
        }
        let index = (ordinal + (key.1 - first) as u64) * self.coverage.ports.len() as u64 + port_index as u64;
        self.permutation.position(index) % shard.count == shard.index - 1
    }
}
