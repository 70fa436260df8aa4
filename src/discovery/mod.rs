//! Discovery: which (address, port) pairs are open, before any probe is spent on them, as ZMap hands
//! its results to ZGrab2.
//!
//! [`syn::run`] is the stateless SYN stage over raw IPv4 sockets. It takes a stream of
//! [`SynTarget`]s (each tagged with its permutation position), sends each a SYN at a paced rate
//! (retries included in the rate, at most `host_pps` packets per second to any one address), and
//! hands back one [`Verdict`] per target: SYN-ACK is open, RST is closed, silence after the last
//! retry is filtered, and a target the scanner itself failed to probe is [`PortState::NotCovered`],
//! never closed or filtered. Between verdicts it hands back [`Watermark`]s for checkpoints.
//!
//! IPv6 targets are not handled here: the caller sends them to connect discovery. IPv6 scopes are
//! registered host by host (nobody sweeps a /64), so the stateless sender would buy little there.

mod pending;
mod recent_hosts;
pub mod syn;
pub mod validation;

use crate::net::raw::LocalFailure;
use std::net::Ipv4Addr;

/// One target of SYN discovery. `position` is opaque to discovery and comes back in its verdict and
/// in watermarks; the engine passes the permutation position, which also lets it rebuild the full
/// target (owner, hostname) from the target space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SynTarget {
    pub position: u64,
    pub addr: Ipv4Addr,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortState {
    /// The target answered SYN-ACK.
    Open,
    /// The target answered RST.
    Closed,
    /// No answer to any SYN within the wait after each.
    Filtered,
    /// The scanner could not probe the target, or could not have heard its answer: this says
    /// nothing about the target, and the target is outside the scan's coverage.
    NotCovered(NotCovered),
}

/// Why a target was not covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotCovered {
    /// Every attempt to send its SYN failed locally; the last failure.
    Send(LocalFailure),
    /// The kernel dropped received packets (a full receive buffer) while this target was waiting, so
    /// its silence may be ours.
    ReceiveOverflow,
}

impl std::fmt::Display for PortState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortState::Open => f.write_str("open"),
            PortState::Closed => f.write_str("closed"),
            PortState::Filtered => f.write_str("filtered"),
            PortState::NotCovered(NotCovered::Send(e)) => write!(f, "not covered (send failed: {e})"),
            PortState::NotCovered(NotCovered::ReceiveOverflow) => {
                f.write_str("not covered (replies dropped by a full receive buffer)")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub target: SynTarget,
    pub state: PortState,
}

/// How far discovery has got, for a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Every target handed over before the one at this position has had its verdict handed back;
    /// that one and later ones may not have (a resume starts there).
    Before(u64),
    /// Every target has its verdict.
    Complete,
}

/// What discovery hands back, in order: a watermark vouches for every verdict before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryEvent {
    Verdict(Verdict),
    Checkpoint(Watermark),
}
