//! The permutation and shards: the order in which the target space is walked.

mod coverage;
mod permutation;

pub use coverage::{Coverage, CoverageIndex};
pub use permutation::Permutation;

use crate::scope::{Target, TargetSpace};
use std::fmt;
use std::sync::Arc;

/// The permutation seed of a scan given none: a digest of what the scan covers (its address spans and
/// ports, not the ledger file's bytes, so re-saving the ledger changes nothing) and of the shard count.
/// Every shard of one scan, run in separate processes or on separate machines, walks the same
/// permutation, so the shards are disjoint and together complete.
pub fn content_seed(space: &TargetSpace, shards: u64) -> u64 {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for (first, last) in space.scope().spans() {
        digest.update(format!("{first}-{last};").as_bytes());
    }
    for port in space.ports() {
        digest.update(format!("{port};").as_bytes());
    }
    digest.update(format!("shards {shards}").as_bytes());
    let bytes = digest.finish();
    u64::from_be_bytes(bytes.as_ref()[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// `--shard i/n`: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 1, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected i/n, e.g. 1/4"))?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| format!("{s:?}: {i:?} is not a number"))?,
            n.trim().parse().map_err(|_| format!("{s:?}: {n:?} is not a number"))?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(format!("{s:?}: need 1 <= i <= n"));
        }
        Ok(Shard { index, count })
    }
}

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Walks one shard of the permuted target space, lazily: shard `i/n` takes permutation positions
/// `i-1, i-1+n, i-1+2n, ...`, so the shards are disjoint and together complete.
#[derive(Debug, Clone)]
pub struct TargetStream {
    space: Arc<TargetSpace>,
    permutation: Permutation,
    next_position: u64,
    step: u64,
}

impl TargetStream {
    pub fn new(space: Arc<TargetSpace>, seed: u64, shard: Shard) -> TargetStream {
        let permutation = Permutation::new(space.len(), seed);
        TargetStream { space, permutation, next_position: shard.index - 1, step: shard.count }
    }

    /// The permutation position of the next target: what a checkpoint records.
    pub fn position(&self) -> u64 {
        self.next_position
    }

    /// Continues from a checkpointed position of this shard (earlier positions are skipped).
    pub fn resume_at(mut self, position: u64) -> Result<TargetStream, String> {
        if position < self.next_position || !(position - self.next_position).is_multiple_of(self.step) {
            return Err(format!("checkpoint {position} is not a position of this shard"));
        }
        self.next_position = position;
        Ok(self)
    }

    /// The target at a position of the permutation (a position this stream yields or yielded).
    pub fn target_at(&self, position: u64) -> Target {
        self.space.target(self.permutation.get(position))
    }

    /// Whether an address is in the scan's scope.
    pub fn in_scope(&self, addr: std::net::IpAddr) -> bool {
        self.space.scope().contains(addr)
    }

    /// The position after this shard's last target: the checkpoint of a stream walked to its end.
    pub fn end_position(&self) -> u64 {
        self.next_position + self.total() * self.step
    }

    /// How many targets this stream yields in all.
    pub fn total(&self) -> u64 {
        let n = self.permutation.len();
        let first = self.next_position;
        if first >= n {
            0
        } else {
            (n - first).div_ceil(self.step)
        }
    }

    pub fn space(&self) -> &Arc<TargetSpace> {
        &self.space
    }

    /// What this stream covers when walked to the end, as a self-contained description.
    pub fn coverage(&self, seed: u64, shard: Shard) -> Coverage {
        Coverage { spans: self.space.scope().spans(), ports: self.space.ports().to_vec(), shard, seed }
    }
}

impl Iterator for TargetStream {
    type Item = Target;
    fn next(&mut self) -> Option<Target> {
        if self.next_position >= self.permutation.len() {
            return None;
        }
        let index = self.permutation.get(self.next_position);
        self.next_position += self.step;
        Some(self.space.target(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shards() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
