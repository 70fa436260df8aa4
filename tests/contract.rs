//! The output contract of the README for replies outside the common case: `evidence` holds at most
//! the first 256 bytes the service sent; a UDP reply that validates as nothing is `unknown` with its
//! evidence; an oversized but valid HTTP reply is named `http`, its fields truncated.

mod common;

use common::{always, options, scan_range, tcp_device, udp_device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_holds_at_most_the_first_256_bytes() {
    let garbage: &'static [u8] = Box::leak((0..4096u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>().into());
    let _peer = common::banner_device("127.159.0.1:20000", Some(garbage)).await;
    let findings = scan_range("127.159.0.1", "20000", options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "unknown");
    assert_eq!(findings[0].evidence, hex::encode(&garbage[..256]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_reply_that_validates_as_nothing_is_unknown_with_its_evidence() {
    let _bacnet_port = udp_device("127.159.0.2:47808", || always(b"\x00\x07 not a protocol \xde\xad\xbe\xef")).await;
    let findings = scan_range("127.159.0.2", "47808/udp", options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.transport.as_str()), ("unknown", false, "udp"), "{f:#?}");
    // Each request got the same datagram back: the evidence is the first of them (and what followed).
    assert!(f.evidence.starts_with(&hex::encode(b"\x00\x07 not a protocol \xde\xad\xbe\xef")), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_reply_with_a_100_kb_server_header_is_http_with_the_header_cut() {
    let server = "A".repeat(100 * 1024);
    let reply: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nServer: {server}\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
            .into(),
    );
    let _web = tcp_device("127.159.0.3:8080", move || always(reply)).await;
    let findings = scan_range("127.159.0.3", "8080", options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "http", "{f:#?}");
    assert_eq!(f.attributes["status"], 200, "{f:#?}");
    let kept = f.attributes["server"].as_str().unwrap();
    assert!(kept.len() < 1024 && kept.chars().all(|c| c == 'A'), "cut: {} bytes", kept.len());
    assert!(f.evidence.len() <= 512);
}
