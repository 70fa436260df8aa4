//! The negative set: services that are not industrial, on their usual ports and on ICS ports, must
//! never produce an `ics: true` finding, and ICS ports must never receive a text request without --deep.

mod common;

use common::{always, banner_device, tcp_device, Handler};
use std::sync::{Arc, Mutex};

fn http_server(seen: Arc<Mutex<Vec<u8>>>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let seen = seen.clone();
        Box::new(move |req: &[u8]| {
            seen.lock().unwrap().extend_from_slice(req);
            Some(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 44\r\n\r\n<html><title>Welcome</title>hello</html>\r\n\r\n".to_vec())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_industrial_services_are_never_reported_as_ics() {
    let web_seen = Arc::new(Mutex::new(Vec::new()));
    let on_502_seen = Arc::new(Mutex::new(Vec::new()));
    let _web = tcp_device("127.116.0.1:8080", http_server(web_seen.clone())).await;
    let _ssh = banner_device("127.116.0.2:22", Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")).await;
    let _redis = tcp_device("127.116.0.3:6379", || always(b"-NOAUTH Authentication required.\r\n")).await;
    let _garbage = tcp_device("127.116.0.4:502", || {
        Box::new(|req: &[u8]| {
            Some(req.iter().rev().map(|b| b.wrapping_mul(31) ^ 0x5a).chain(*b"\xde\xad\xbe\xef").collect())
        })
    })
    .await;
    let _silent = banner_device("127.116.0.5:102", None).await;
    let _http_on_502 = tcp_device("127.116.0.6:502", http_server(on_502_seen.clone())).await;
    let _garbage_banner = banner_device("127.116.0.7:20000", Some(b"\x00\xff\x13\x37 not a protocol \x00\x00")).await;

    let (_dir, ledger) = common::ledger("N-1,negatives,d,s,important,127.116.0.1-127.116.0.7,c\n");
    let findings = common::scan(&ledger, "22,102,502,6379,8080,20000", &Default::default(), common::options()).await;
    for f in &findings {
        assert!(!f.ics, "false ICS finding: {f:#?}");
    }
    let ports: Vec<(String, u16)> = findings.iter().map(|f| (f.ip.to_string(), f.port)).collect();
    for open in
        [("127.116.0.1", 8080), ("127.116.0.2", 22), ("127.116.0.3", 6379), ("127.116.0.5", 102), ("127.116.0.6", 502)]
    {
        assert!(ports.contains(&(open.0.to_string(), open.1)), "{open:?} missing from {ports:?}");
    }
    let sent_to_502 = on_502_seen.lock().unwrap().clone();
    assert!(
        !sent_to_502.windows(4).any(|w| w == b"GET "),
        "a text request went to an ICS port: {:?}",
        String::from_utf8_lossy(&sent_to_502)
    );
    assert!(!sent_to_502.windows(4).any(|w| w == b"\r\n\r\n"), "a text request went to an ICS port");
}
