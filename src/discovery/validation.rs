//! Stateless reply validation, as ZMap does it: the source port and sequence number of the SYN to a
//! target are a keyed hash (SipHash-2-4 under a per-scan random key) of the target's address and
//! port. A reply is ours only if it comes from a target's address and port, to that target's source
//! port, and acknowledges that target's sequence number; nothing needs to be remembered per SYN, and
//! an off-path host that does not know the key cannot forge one.

use crate::net::raw::Segment;
use siphasher::sip::SipHasher24;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// What a validated reply says of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// SYN-ACK (true) or RST (false).
    pub open: bool,
}

/// Why a received segment is not an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Neither a SYN-ACK nor a RST (on `lo`, the scanner's own SYNs, or other traffic).
    NotAReply,
    /// Addressed to a port the scanner does not send from.
    OtherPort,
    /// From an address outside the scan's scope: never a target, whatever it claims.
    OutOfScope,
    /// Does not match the keyed source port and sequence number of its sender.
    Invalid,
}

#[derive(Clone)]
pub struct Validator {
    hasher: SipHasher24,
    first_port: u16,
    ports: u32,
}

impl Validator {
    /// A validator under a fresh random key, sending from `source_ports`.
    pub fn random(source_ports: RangeInclusive<u16>) -> Validator {
        let mut key = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .expect("the system random source works");
        Validator::with_key(key, source_ports)
    }

    pub fn with_key(key: [u8; 16], source_ports: RangeInclusive<u16>) -> Validator {
        assert!(!source_ports.is_empty(), "an empty source port range");
        let ports = u32::from(*source_ports.end()) - u32::from(*source_ports.start()) + 1;
        Validator { hasher: SipHasher24::new_with_key(&key), first_port: *source_ports.start(), ports }
    }

    /// The source port and sequence number of every SYN to (addr, port).
    pub fn probe(&self, addr: Ipv4Addr, port: u16) -> (u16, u32) {
        let mut input = [0u8; 6];
        input[..4].copy_from_slice(&addr.octets());
        input[4..].copy_from_slice(&port.to_be_bytes());
        let h = self.hasher.hash(&input);
        let source_port = self.first_port + ((h >> 32) % u64::from(self.ports)) as u16;
        (source_port, h as u32)
    }

    pub fn is_source_port(&self, port: u16) -> bool {
        port >= self.first_port && u32::from(port - self.first_port) < self.ports
    }

    /// Classifies a received segment. Replies from outside the scope are dropped before anything is
    /// computed for them. A SYN-ACK must acknowledge the SYN's sequence number plus one; a RST may
    /// carry it plus zero or one (stacks differ), as ZMap accepts.
    pub fn check(&self, s: &Segment, in_scope: impl Fn(Ipv4Addr) -> bool) -> Result<Answer, Rejected> {
        let open = match (s.syn, s.ack, s.rst) {
            (true, true, false) => true,
            (_, _, true) => false,
            _ => return Err(Rejected::NotAReply),
        };
        if !self.is_source_port(s.dst_port) {
            return Err(Rejected::OtherPort);
        }
        if !in_scope(s.src) {
            return Err(Rejected::OutOfScope);
        }
        let (source_port, seq) = self.probe(s.src, s.src_port);
        let acked = if open {
            s.ack_number == seq.wrapping_add(1)
        } else {
            s.ack_number == seq || s.ack_number == seq.wrapping_add(1)
        };
        if s.dst_port != source_port || !acked {
            return Err(Rejected::Invalid);
        }
        Ok(Answer { addr: s.src, port: s.src_port, open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(v: &Validator, from: Ipv4Addr, port: u16, ack_delta: u32, syn: bool, rst: bool) -> Segment {
        let (source_port, seq) = v.probe(from, port);
        Segment {
            src: from,
            dst: Ipv4Addr::new(127, 0, 0, 1),
            src_port: port,
            dst_port: source_port,
            ack_number: seq.wrapping_add(ack_delta),
            syn,
            ack: true,
            rst,
        }
    }

    impl Validator {
        fn check_all(&self, s: &Segment) -> Result<Answer, Rejected> {
            self.check(s, |_| true)
        }
    }

    #[test]
    fn genuine_replies_are_answers() {
        let v = Validator::with_key([7; 16], 61000..=65535);
        let a = Ipv4Addr::new(127, 3, 0, 1);
        assert_eq!(v.check_all(&reply(&v, a, 502, 1, true, false)), Ok(Answer { addr: a, port: 502, open: true }));
        assert_eq!(v.check_all(&reply(&v, a, 503, 1, false, true)), Ok(Answer { addr: a, port: 503, open: false }));
        assert_eq!(v.check_all(&reply(&v, a, 503, 0, false, true)), Ok(Answer { addr: a, port: 503, open: false }));
    }

    #[test]
    fn forged_and_stray_segments_are_not() {
        let v = Validator::with_key([7; 16], 61000..=65535);
        let a = Ipv4Addr::new(127, 3, 0, 1);
        // A SYN-ACK that acknowledges the wrong number, or no sequence number of ours.
        assert_eq!(v.check_all(&reply(&v, a, 502, 0, true, false)), Err(Rejected::Invalid));
        assert_eq!(v.check_all(&reply(&v, a, 502, 2, true, false)), Err(Rejected::Invalid));
        // The right numbers for 127.3.0.1:502, claimed by another address or port.
        let mut moved = reply(&v, a, 502, 1, true, false);
        moved.src = Ipv4Addr::new(127, 3, 0, 2);
        assert_eq!(v.check_all(&moved), Err(Rejected::Invalid));
        moved.src = a;
        moved.src_port = 503;
        assert_eq!(v.check_all(&moved), Err(Rejected::Invalid));
        // Our own SYN looping back, and a bare ACK.
        let mut own = reply(&v, a, 502, 1, true, false);
        own.ack = false;
        assert_eq!(v.check_all(&own), Err(Rejected::NotAReply));
        let mut bare = reply(&v, a, 502, 1, false, false);
        bare.ack = true;
        assert_eq!(v.check_all(&bare), Err(Rejected::NotAReply));
        // A reply to a port we never send from.
        let mut elsewhere = reply(&v, a, 502, 1, true, false);
        elsewhere.dst_port = 40000;
        assert_eq!(v.check_all(&elsewhere), Err(Rejected::OtherPort));
        // Another scan's key.
        let other = Validator::with_key([8; 16], 61000..=65535);
        assert_eq!(other.check_all(&reply(&v, a, 502, 1, true, false)), Err(Rejected::Invalid));
    }

    #[test]
    fn replies_from_outside_the_scope_are_dropped_even_when_genuine() {
        let v = Validator::with_key([7; 16], 61000..=65535);
        let a = Ipv4Addr::new(127, 3, 0, 1);
        let in_scope = |x: Ipv4Addr| x.octets()[1] == 4;
        assert_eq!(v.check(&reply(&v, a, 502, 1, true, false), in_scope), Err(Rejected::OutOfScope));
        let b = Ipv4Addr::new(127, 4, 0, 1);
        assert!(v.check(&reply(&v, b, 502, 1, true, false), in_scope).is_ok());
    }

    #[test]
    fn source_ports_stay_in_their_range_and_spread_over_it() {
        let v = Validator::random(61000..=61015);
        let mut seen = [0u32; 16];
        for i in 0..4096u32 {
            let (port, _) = v.probe(Ipv4Addr::from(0x7f00_0000 + i), 502);
            assert!((61000..=61015).contains(&port));
            seen[usize::from(port - 61000)] += 1;
        }
        // 256 expected per port; a keyed hash gives every port a fair share.
        assert!(seen.iter().all(|&n| (160..=352).contains(&n)), "{seen:?}");
        assert!(v.is_source_port(61000) && v.is_source_port(61015));
        assert!(!v.is_source_port(60999) && !v.is_source_port(61016) && !v.is_source_port(0));
    }
}
