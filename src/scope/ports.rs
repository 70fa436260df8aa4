//! Port lists: which (port, transport) pairs a scan covers.

use super::Transport;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    pub port: u16,
    pub transport: Transport,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.transport.as_str())
    }
}

impl serde::Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v = parse_ports(s)?;
        match v.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!("{s:?} names {} ports, expected one", v.len())),
        }
    }
}

/// Parses `502,102,44818/udp,47808/udp,1000-1100` (a range may carry `/udp` too); sorted, without duplicates.
///
/// The ports are gathered in a bit set of every (port, transport) pair, a range a word at a time, so
/// the work and memory are bounded by the port space however many overlapping ranges the text repeats.
pub fn parse_ports(text: &str) -> Result<Vec<PortSpec>, String> {
    // One bit per port and transport ([tcp, udp]), ranges set a word at a time.
    let mut seen = [vec![0u64; 65536 / 64], vec![0u64; 65536 / 64]];
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("empty entry in port list {text:?}"));
        }
        let (range, transport) = match item.split_once('/') {
            Some((r, "tcp")) => (r, Transport::Tcp),
            Some((r, "udp")) => (r, Transport::Udp),
            Some((_, t)) => return Err(format!("{item:?}: unknown transport {t:?} (tcp or udp)")),
            None => (item, Transport::Tcp),
        };
        let port = |p: &str| -> Result<u16, String> {
            match p.trim().parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("{item:?}: {p:?} is not a port number (1-65535)")),
                Ok(n) => Ok(n),
            }
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(range)?, port(range)?),
        };
        if first > last {
            return Err(format!("{item:?}: empty port range"));
        }
        let set = &mut seen[usize::from(transport == Transport::Udp)];
        let (first, last) = (usize::from(first), usize::from(last));
        for (w, word) in set.iter_mut().enumerate().take(last / 64 + 1).skip(first / 64) {
            let low = first.max(w * 64) - w * 64;
            let high = last.min(w * 64 + 63) - w * 64;
            *word |= (u64::MAX >> (63 - high)) & (u64::MAX << low);
        }
    }
    let has = |t: usize, port: usize| seen[t][port / 64] & (1 << (port % 64)) != 0;
    let count = seen.iter().flatten().map(|w| w.count_ones() as usize).sum();
    let mut out = Vec::with_capacity(count);
    for port in 1..=u16::MAX {
        for (t, transport) in [Transport::Tcp, Transport::Udp].into_iter().enumerate() {
            if has(t, usize::from(port)) {
                out.push(PortSpec { port, transport });
            }
        }
    }
    Ok(out)
}

/// A port list as a person reads it and `--ports` takes it back: consecutive ports of one transport
/// as a range, TCP before UDP (`1-1024/tcp,47808/udp`, not a thousand entries).
pub fn show_ports(ports: &[PortSpec]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_by_key(|p| (p.transport == Transport::Udp, p.port));
    sorted.dedup();
    let mut runs: Vec<(u16, u16, Transport)> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some((_, last, t)) if *t == p.transport && u32::from(*last) + 1 == u32::from(p.port) => *last = p.port,
            _ => runs.push((p.port, p.port, p.transport)),
        }
    }
    let run = |(first, last, t): (u16, u16, Transport)| match first == last {
        true => format!("{first}/{}", t.as_str()),
        false => format!("{first}-{last}/{}", t.as_str()),
    };
    runs.into_iter().map(run).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_across_word_boundaries_match_their_expansion() {
        for text in ["63-65,1,64/udp,127-128/udp,65535", "1-64,64-129/udp,192-255", "65472-65535/udp,65471"] {
            let mut expected = Vec::new();
            for item in text.split(',') {
                let (range, transport) = match item.split_once('/') {
                    Some((r, _)) => (r, Transport::Udp),
                    None => (item, Transport::Tcp),
                };
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
                expected.extend((a..=b).map(|port| PortSpec { port, transport }));
            }
            expected.sort();
            expected.dedup();
            assert_eq!(parse_ports(text).unwrap(), expected, "{text}");
        }
    }

    /// Found by the port_lists_of_whole_ranges property: a few KiB of repeated whole ranges used to
    /// expand to one entry per port per range (about 100 MB and a sort of 26 million entries)
    /// before deduplication.
    #[test]
    fn repeated_whole_ranges_cost_the_port_space_only() {
        let text = ["1-65535", "1-65535/udp", "1-65535/tcp"].repeat(130).join(",");
        let ports = parse_ports(&text).unwrap();
        assert_eq!(ports.len(), 2 * 65535);
        assert_eq!(ports[0], PortSpec { port: 1, transport: Transport::Tcp });
        assert_eq!(ports[1], PortSpec { port: 1, transport: Transport::Udp });
        assert_eq!(ports.last(), Some(&PortSpec { port: 65535, transport: Transport::Udp }));
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parses_port_lists() {
        let p = parse_ports("502,102,44818/udp,47808/udp,1000-1002,502").unwrap();
        let s: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["102/tcp", "502/tcp", "1000/tcp", "1001/tcp", "1002/tcp", "44818/udp", "47808/udp"]);
        assert_eq!(parse_ports("1-3/udp").unwrap().len(), 3);
        assert!(parse_ports("0").unwrap_err().contains("not a port"));
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("502/sctp").unwrap_err().contains("unknown transport"));
        assert!(parse_ports("9-5").unwrap_err().contains("empty"));
        assert!(parse_ports("502,,102").is_err());
    }

    #[test]
    fn port_lists_are_shown_as_ranges_that_parse_back() {
        let ports = parse_ports("1-1024,2000,2002,47808/udp,47809/udp,161/udp").unwrap();
        let shown = show_ports(&ports);
        assert_eq!(shown, "1-1024/tcp,2000/tcp,2002/tcp,161/udp,47808-47809/udp");
        assert_eq!(parse_ports(&shown).unwrap(), ports);
        assert_eq!(show_ports(&[]), "");
        assert_eq!(show_ports(&parse_ports("65535,65534/udp").unwrap()), "65535/tcp,65534/udp");
    }
}
