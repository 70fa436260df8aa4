//! One entry of a ledger row's `targets` column: an address, a CIDR block, a dash range or a hostname.

use ipnetwork::IpNetwork;
use std::fmt;
use std::net::IpAddr;

/// IPv4 blocks wider than this are refused: a registered /7 is a typo, not an asset.
pub const MIN_IPV4_PREFIX: u8 = 8;
/// IPv6 blocks wider than this are refused: a /64 holds 2^64 addresses and cannot be swept.
pub const MIN_IPV6_PREFIX: u8 = 104;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Address(IpAddr),
    Block(IpNetwork),
    /// Inclusive on both ends, same address family, first <= last.
    Range(IpAddr, IpAddr),
    Hostname(String),
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Address(a) => write!(f, "{a}"),
            TargetSpec::Block(n) => write!(f, "{n}"),
            TargetSpec::Range(a, b) => write!(f, "{a}-{b}"),
            TargetSpec::Hostname(h) => f.write_str(h),
        }
    }
}

impl TargetSpec {
    /// The inclusive numeric interval this spec covers, or `None` for a hostname.
    pub fn interval(&self) -> Option<(IpAddr, IpAddr)> {
        match *self {
            TargetSpec::Address(a) => Some((a, a)),
            TargetSpec::Block(n) => Some((n.network(), n.broadcast_or_last())),
            TargetSpec::Range(a, b) => Some((a, b)),
            TargetSpec::Hostname(_) => None,
        }
    }

    /// Parses one token; the error says what is wrong with it in words a ledger editor understands.
    pub fn parse(token: &str) -> Result<TargetSpec, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("empty entry (two ';' in a row?)".into());
        }
        if let Some((net, prefix)) = token.split_once('/') {
            let addr: IpAddr = net
                .trim()
                .parse()
                .map_err(|_| format!("{token:?} is not a valid CIDR block: {net:?} is not an IP address"))?;
            let prefix: u8 = prefix
                .trim()
                .parse()
                .map_err(|_| format!("{token:?} is not a valid CIDR block: prefix {prefix:?} is not a number"))?;
            let (max, min) = match addr {
                IpAddr::V4(_) => (32, MIN_IPV4_PREFIX),
                IpAddr::V6(_) => (128, MIN_IPV6_PREFIX),
            };
            if prefix > max {
                return Err(format!("{token:?} is not a valid CIDR block: prefix /{prefix} is longer than /{max}"));
            }
            if prefix < min {
                return Err(format!(
                    "{token:?} is too large to register: blocks wider than /{min} are refused for this address family"
                ));
            }
            let net = IpNetwork::new(addr, prefix).map_err(|e| format!("{token:?}: {e}"))?;
            if net.network() != addr {
                return Err(format!("{token:?} has host bits set: the block starts at {}/{prefix}", net.network()));
            }
            return Ok(TargetSpec::Block(net));
        }
        if let Ok(addr) = token.parse::<IpAddr>() {
            return Ok(TargetSpec::Address(addr));
        }
        if let Some((a, b)) = token.split_once('-') {
            if let (Ok(first), Ok(last)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
                if first.is_ipv4() != last.is_ipv4() {
                    return Err(format!("{token:?} mixes IPv4 and IPv6 in one range"));
                }
                if to_u128(first) > to_u128(last) {
                    return Err(format!("{token:?} is an empty range: {first} comes after {last}"));
                }
                let width = to_u128(last) - to_u128(first) + 1;
                let max_width = match first {
                    IpAddr::V4(_) => 1u128 << (32 - MIN_IPV4_PREFIX),
                    IpAddr::V6(_) => 1u128 << (128 - MIN_IPV6_PREFIX),
                };
                if width > max_width {
                    return Err(format!("{token:?} is too large to register: {width} addresses (at most {max_width})"));
                }
                return Ok(TargetSpec::Range(first, last));
            }
            if a.trim().parse::<IpAddr>().is_ok() || looks_numeric(b) {
                return Err(format!(
                    "{token:?} is not a valid range: write it as first-last, e.g. 127.0.0.1-127.0.0.9"
                ));
            }
        }
        if looks_numeric(token) {
            return Err(format!("{token:?} is not a valid IP address"));
        }
        validate_hostname(token)?;
        Ok(TargetSpec::Hostname(token.to_ascii_lowercase()))
    }
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn validate_hostname(h: &str) -> Result<(), String> {
    let name = h.strip_suffix('.').unwrap_or(h);
    if name.len() > 253 {
        return Err(format!("hostname {h:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{h:?} is neither an IP address, a CIDR block, a range nor a valid hostname (label {label:?})"
            ));
        }
    }
    Ok(())
}

pub(crate) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

trait LastAddress {
    fn broadcast_or_last(&self) -> IpAddr;
}

impl LastAddress for IpNetwork {
    fn broadcast_or_last(&self) -> IpAddr {
        match self {
            IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
            IpNetwork::V6(n) => {
                let host_bits = 128 - n.prefix() as u32;
                let mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
                IpAddr::V6((u128::from(n.network()) | mask).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(TargetSpec::parse("127.0.0.1").unwrap(), TargetSpec::Address("127.0.0.1".parse().unwrap()));
        assert!(matches!(TargetSpec::parse("127.1.0.0/16").unwrap(), TargetSpec::Block(_)));
        assert!(matches!(TargetSpec::parse("127.0.0.1-127.0.0.9").unwrap(), TargetSpec::Range(..)));
        assert!(matches!(TargetSpec::parse("::1").unwrap(), TargetSpec::Address(_)));
        assert_eq!(TargetSpec::parse("PLC-1.Example.org").unwrap(), TargetSpec::Hostname("plc-1.example.org".into()));
    }

    #[test]
    fn block_interval_covers_the_block() {
        let (a, b) = TargetSpec::parse("127.1.2.0/24").unwrap().interval().unwrap();
        assert_eq!(a.to_string(), "127.1.2.0");
        assert_eq!(b.to_string(), "127.1.2.255");
        let (a, b) = TargetSpec::parse("::100/120").unwrap().interval().unwrap();
        assert_eq!(a.to_string(), "::100");
        assert_eq!(b.to_string(), "::1ff");
    }

    #[test]
    fn rejects_bad_entries_with_reasons() {
        let err = |s: &str| TargetSpec::parse(s).unwrap_err();
        assert!(err("127.0.0.0/33").contains("longer than /32"), "{}", err("127.0.0.0/33"));
        assert!(err("127.0.0.1/24").contains("host bits"));
        assert!(err("127.0.0.0/4").contains("too large"));
        assert!(err("127.0.0.9-127.0.0.1").contains("empty range"));
        assert!(err("127.0.0.1-::1").contains("mixes"));
        assert!(err("127.0.0.300").contains("not a valid IP"));
        assert!(err("plc_1.example").contains("valid hostname"));
        assert!(err("::/64").contains("too large"));
        assert!(err("").contains("empty"));
    }
}
