//! Hostname resolution with hickory: A and AAAA, bounded by a timeout, optionally through a named server.

use super::Resolved;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::Resolver;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// A DNS server to ask instead of the system's (`--resolver`).
    pub server: Option<SocketAddr>,
    pub timeout: Duration,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings { server: None, timeout: Duration::from_secs(5) }
    }
}

/// Resolves every name; a failure is recorded per name and never aborts the others.
pub async fn resolve_hostnames(names: &[String], settings: &ResolverSettings) -> Resolved {
    let mut out = Resolved::new();
    if names.is_empty() {
        return out;
    }
    let builder = match settings.server {
        Some(server) => {
            let mut ns = NameServerConfig::udp_and_tcp(server.ip());
            for c in &mut ns.connections {
                c.port = server.port();
            }
            Ok(Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            ))
        }
        None => Resolver::builder(TokioRuntimeProvider::default()),
    };
    let resolver = match builder.and_then(|mut b| {
        let opts = b.options_mut();
        opts.timeout = settings.timeout;
        opts.attempts = 2;
        opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        b.build()
    }) {
        Ok(r) => r,
        Err(e) => {
            for n in names {
                out.insert(n.clone(), Err(format!("no resolver: {e}")));
            }
            return out;
        }
    };
    let server: std::sync::Arc<str> = match settings.server {
        Some(s) => format!("the DNS server {s}").into(),
        None => "the system's DNS resolver".into(),
    };
    let mut lookups = tokio::task::JoinSet::new();
    for name in names {
        let (resolver, name, server) = (resolver.clone(), name.clone(), server.clone());
        let deadline = settings.timeout * 3;
        lookups.spawn(async move {
            let result =
                match tokio::time::timeout(deadline, resolver.lookup_ip(format!("{}.", name.trim_end_matches('.'))))
                    .await
                {
                    Ok(Ok(ips)) => {
                        let mut v: Vec<_> = ips.iter().collect();
                        v.sort();
                        v.dedup();
                        if v.is_empty() {
                            Err(format!("{server} has no address (A or AAAA record) for it"))
                        } else {
                            Ok(v)
                        }
                    }
                    Ok(Err(e)) => Err(plain_words(&e, &server)),
                    Err(_) => Err(format!("{server} did not answer within {deadline:?}")),
                };
            (name, result)
        });
    }
    while let Some(joined) = lookups.join_next().await {
        if let Ok((name, result)) = joined {
            out.insert(name, result);
        }
    }
    out
}

/// Why a name was not resolved, in plain words: the resolver's own messages quote its query structures.
fn plain_words(e: &NetError, server: &str) -> String {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(n)) if n.response_code == ResponseCode::NXDomain => {
            format!("no such name ({server} says it does not exist)")
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => format!("{server} has no address (A or AAAA record) for it"),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => format!("{server} refused to answer"),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            format!("{server} could not answer (server failure)")
        }
        NetError::Dns(DnsError::ResponseCode(code)) => format!("{server} answered with an error ({code})"),
        NetError::Timeout => format!("{server} did not answer in time"),
        NetError::Io(io) => format!("{server} could not be reached ({io})"),
        NetError::NoConnections => format!("{server} could not be reached"),
        other => format!("{server}: {other}"),
    }
}
