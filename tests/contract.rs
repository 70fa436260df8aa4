//! The output contract of the README for replies outside the common case: `evidence` holds at most
//! the first 256 bytes the service sent; a UDP reply that validates as nothing is `unknown` with its
//! evidence; an oversized but valid HTTP reply is named `http`, its fields truncated, and a TLS server
//! whose certificate is too large for a TLS client to read is named `tls` from its server hello.

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

/// A TLS 1.2 server's answer to any client hello (RFC 5246 7.4): a server hello choosing
/// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, then a certificate message holding `der`, in records of
/// at most 16 KiB.
fn server_hello_and_certificate(der: &[u8]) -> Vec<u8> {
    let handshake = |kind: u8, body: &[u8]| {
        let len = (body.len() as u32).to_be_bytes();
        [&[kind, len[1], len[2], len[3]][..], body].concat()
    };
    let mut hello = vec![0x03, 0x03];
    hello.extend((1..=32u8).map(|i| i.wrapping_mul(37)));
    hello.extend([0x00, 0xC0, 0x2F, 0x00, 0x00, 0x00]);
    let cert_len = (der.len() as u32).to_be_bytes();
    let list_len = (der.len() as u32 + 3).to_be_bytes();
    let certificate =
        [&[list_len[1], list_len[2], list_len[3], cert_len[1], cert_len[2], cert_len[3]][..], der].concat();
    let messages = [handshake(0x02, &hello), handshake(0x0b, &certificate)].concat();
    let mut out = Vec::new();
    for record in messages.chunks(16 * 1024) {
        out.extend([0x16, 0x03, 0x03]);
        out.extend((record.len() as u16).to_be_bytes());
        out.extend(record);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_whose_certificate_is_too_large_to_read_is_tls() {
    // About 230 KB of subject alternative names, as a badly made device certificate may hold: beyond
    // the 64 KiB a TLS client reads of one handshake message.
    let names: Vec<String> = (0..9000).map(|i| format!("host-{i:05}.plant.lab.test")).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let der = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap().der().to_vec();
    assert!(der.len() > 200 * 1024, "{} bytes", der.len());
    let reply: &'static [u8] = Box::leak(server_hello_and_certificate(&der).into());
    let _server = tcp_device("127.159.0.4:9443", move || always(reply)).await;
    let findings = scan_range("127.159.0.4", "9443", options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("tls", false), "{f:#?}");
    let tls = f.attributes["tls"].as_object().unwrap();
    assert_eq!(tls["version"], "TLS 1.2", "{tls:?}");
    assert_eq!(tls["cipher"], "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "{tls:?}");
    assert_eq!(tls["certificate_bytes"], der.len() + 6, "{tls:?}");
    assert_eq!(tls["handshake"], "not completed", "{tls:?}");
    assert!(f.evidence.len() <= 512 && f.evidence.starts_with("160303"), "{}", f.evidence);
}
