//! Every reply is evidence: what a peer sends back to an ICS probe goes through the recognisers and
//! the banner rules before the port is called `unknown`, and nothing more is sent to the ICS port.

mod common;

use common::{banner_device, tcp_device, Handler};
use std::sync::{Arc, Mutex};

const NGINX_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 11:00:36 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 157\r\nConnection: close\r\n\r\n<html>\r\n<head><title>400 Bad Request</title>\
</head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n";

/// Answers whatever arrives with `reply`, recording every byte it was sent.
fn answering(reply: &'static [u8], seen: Arc<Mutex<Vec<u8>>>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let seen = seen.clone();
        Box::new(move |request: &[u8]| {
            seen.lock().unwrap().extend_from_slice(request);
            Some(reply.to_vec())
        })
    }
}

/// Neither text nor a TLS hello reached the port.
fn assert_nothing_but_binary(seen: &[u8], port: u16) {
    let text = String::from_utf8_lossy(seen);
    assert!(!seen.windows(4).any(|w| w == b"GET "), "an HTTP request went to ICS port {port}: {text:?}");
    assert!(!seen.windows(4).any(|w| w == b"\r\n\r\n"), "a text request went to ICS port {port}: {text:?}");
    assert!(!seen.windows(3).any(|w| w == [0x16, 0x03, 0x01]), "a TLS hello went to ICS port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_answering_ics_requests_is_named_from_its_400_page() {
    let ports = [502u16, 1911, 4840];
    let mut devices = Vec::new();
    let mut seen = Vec::new();
    for port in ports {
        let s = Arc::new(Mutex::new(Vec::new()));
        devices.push(tcp_device(&format!("127.117.0.1:{port}"), answering(NGINX_400, s.clone())).await);
        seen.push(s);
    }
    let (_dir, ledger) = common::ledger("R-1,replies,d,s,important,127.117.0.1,c\n");
    let findings = common::scan(&ledger, "502,1911,4840", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for (f, port) in findings.iter().zip(ports) {
        assert_eq!(f.port, port);
        assert_eq!((f.protocol.as_str(), f.ics), ("http", false), "{f:#?}");
        assert_eq!(f.attributes.get("status"), Some(&serde_json::json!(400)), "{f:#?}");
        assert_eq!(f.attributes.get("server"), Some(&serde_json::json!("nginx/1.22.1")), "{f:#?}");
        assert_eq!((f.product.as_deref(), f.version.as_deref()), (Some("nginx"), Some("1.22.1")), "{f:#?}");
        assert!(f.evidence.starts_with(&hex::encode("HTTP/1.1 400")), "{}", f.evidence);
    }
    for (s, port) in seen.iter().zip(ports) {
        let seen = s.lock().unwrap();
        assert!(!seen.is_empty(), "port {port} got no probe at all");
        assert_nothing_but_binary(&seen, port);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greeting_read_as_the_reply_to_an_ics_request_names_the_service() {
    // An SSH daemon on 102 greets as soon as the S7 probe connects: its greeting is the reply.
    let _ssh = banner_device("127.117.0.2:102", Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")).await;
    let (_dir, ledger) = common::ledger("R-2,replies,d,s,important,127.117.0.2,c\n");
    let findings = common::scan(&ledger, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("ssh", false), "{f:#?}");
    assert_eq!((f.product.as_deref(), f.version.as_deref()), (Some("OpenSSH"), Some("9.2p1")), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_validates_as_nothing_stays_unknown_with_its_evidence() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _garbage =
        tcp_device("127.117.0.3:502", answering(b"\x00\x07 not a protocol \xde\xad\xbe\xef", seen.clone())).await;
    let (_dir, ledger) = common::ledger("R-3,replies,d,s,important,127.117.0.3,c\n");
    let findings = common::scan(&ledger, "502", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.rule.as_deref()), ("unknown", false, None), "{f:#?}");
    assert!(f.attributes.is_empty(), "{f:#?}");
    assert_eq!(f.evidence, hex::encode(b"\x00\x07 not a protocol \xde\xad\xbe\xef"));
    assert_nothing_but_binary(&seen.lock().unwrap(), 502);
}
