//! Hostnames in the ledger are resolved through `--resolver` (here a small DNS responder on loopback),
//! scanned, and reported with the hostname.

mod common;

use common::dns::dns_responder;
use common::{banner_device, ledger};
use std::net::Ipv4Addr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnames_resolve_through_the_named_server_and_are_reported() {
    static RECORDS: [(&str, Ipv4Addr); 1] = [("plc.lab.test", Ipv4Addr::new(127, 113, 0, 7))];
    let _dns = dns_responder("127.113.0.53:5353", &RECORDS).await;
    let plc = banner_device("127.113.0.7:2222", Some(b"220 ready\r\n")).await;
    let (_dir, path) = ledger("A-1,a,d,s,important,plc.lab.test;127.113.0.8,c\nB-2,b,d,s,general,nowhere.lab.test,c\n");
    let scope = otscope::pipeline::ScopeOptions {
        resolver: Some("127.113.0.53:5353".parse().unwrap()),
        ..common::scope(&path, "2222", &Default::default())
    };
    let findings = common::scan_scope(&scope, common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].ip.to_string(), "127.113.0.7");
    assert_eq!(findings[0].hostname.as_deref(), Some("plc.lab.test"));
    assert_eq!(findings[0].enterprise_id, "A-1");
    assert_eq!(plc.connections(), 1);
}
