//! Hostile peers: services that never speak, drip, stream forever, flood, reset, half-close, claim
//! lengths far beyond what they send, or present absurd TLS handshakes. A scan of all of them, run
//! as the otscope binary in a child process (once plain, once with `--deep`), must finish within a
//! stated time, stay within a stated peak memory, keep its findings small, and never identify an
//! industrial protocol that is not there.
//!
//! Measured on the development machine (debug build): about 6 s plain and 9 s with `--deep` against
//! the 14 s bound; peak RSS about 40 MiB against the 200 MiB bound.
//!
//! Every responder sits on its own loopback address in 127.130.77.0/24 (within the tests' 127.130.0.0/16);
//! every loop that sends is bounded in count, and every connection it serves ends after [`CAP`]
//! whatever the scanner does.

mod common;

use common::{Responder, Session};
use otscope_lab::tls::Identity;
use otscope_lab::{bacnet, s7};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// No responder connection lives longer than this, so nothing outlives the test by much.
const CAP: Duration = Duration::from_secs(20);
/// Connections one listener accepts before it stops (the scan needs a handful per target).
const MAX_CONNS: usize = 256;
/// Requests one UDP responder answers before it stops.
const MAX_DATAGRAMS: usize = 64;

/// The scan's flags: every (address, port) is bounded by the target deadline, and all run at once.
const TARGET_DEADLINE_S: u64 = 8;
/// The whole scan, all targets in parallel, must end within the target deadline plus this margin
/// (process start, fingerprint library load, the last findings written).
const TIME_MARGIN: Duration = Duration::from_secs(6);
/// Peak resident memory of the scanning process, with several megabyte and endless streams in play:
/// each connection keeps at most `max_total` (256 KiB) of what it reads.
const MAX_PEAK_RSS_KIB: u64 = 200 * 1024;
/// Largest finding (one JSON line) a hostile peer may cause, certificates aside.
const MAX_FINDING_BYTES: usize = 32 * 1024;

#[derive(Clone, Copy, Debug)]
enum Peer {
    /// Accepts, never sends a byte; reads (and discards) whatever comes until the scanner hangs up.
    Silent,
    /// One byte a second, at most 30, until the scanner hangs up.
    Drip,
    /// 1 MiB writes in a loop, at most 256 of them, until the scanner hangs up.
    Endless,
    /// 4 MiB of garbage at once, then closes.
    GarbageThenClose,
    /// Waits for a request, sends the start of a valid-looking reply, then resets (SO_LINGER 0).
    ResetMidReply,
    /// Shuts down its write half right after accept, then reads until the scanner hangs up.
    HalfCloseAtAccept,
    /// Waits for a request, sends the start of a valid-looking reply, then shuts down its write half.
    HalfCloseAfterPartial,
    /// Modbus (502): answers each request with an MBAP header claiming 0xFFFF bytes, then 8 bytes.
    ModbusLongClaim,
    /// S7 (102): accepts the COTP connection, then answers with a TPKT claiming 0xFFFF bytes.
    S7LongClaim,
    /// EtherNet/IP (44818): a ListIdentity encapsulation header claiming 0xFFFF bytes, then 32.
    EnipLongClaim,
    /// 443: a TLS handshake record header (length 0x4000), then 64 KiB of garbage.
    TlsRecordGarbage,
}

/// Pseudo-random bytes (xorshift), so garbage never repeats a pattern a parser might like.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Reads and discards until the peer closes (or errors); bounded by the caller's [`CAP`].
async fn drain(sock: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Waits briefly for a request (the scanner may instead wait for a banner).
async fn request(sock: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    match timeout(Duration::from_millis(700), sock.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].to_vec(),
        _ => Vec::new(),
    }
}

/// The start of a reply that looks right for the request: an MBAP header promising 32 bytes (and
/// three of them) for a Modbus request, else the start of an HTTP response.
fn partial_reply(req: &[u8]) -> Vec<u8> {
    if req.len() >= 8 && req[2..4] == [0, 0] {
        vec![req[0], req[1], 0, 0, 0, 32, req[6], 0x2B, 0x0E, 0x01]
    } else {
        b"HTTP/1.1 200 OK\r\nServer: Siem".to_vec()
    }
}

/// Plays `peer` on one connection, counting in `acted` each time the misbehaviour was delivered.
async fn behave(peer: Peer, mut sock: TcpStream, seed: u64, acted: &AtomicUsize) -> io::Result<()> {
    let act = || acted.fetch_add(1, Ordering::SeqCst);
    match peer {
        Peer::Silent => {
            act();
            drain(&mut sock).await
        }
        Peer::Drip => {
            for i in 0..30u8 {
                sock.write_all(&[0x80 | i]).await?;
                if i == 0 {
                    act();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Peer::Endless => {
            let chunk = garbage(1 << 20, seed);
            // Counted once the first 64 KiB are taken: the scanner may hang up before it reads a MiB.
            sock.write_all(&chunk[..64 << 10]).await?;
            act();
            sock.write_all(&chunk[64 << 10..]).await?;
            for _ in 1..256 {
                sock.write_all(&chunk).await?;
            }
        }
        Peer::GarbageThenClose => {
            // The scanner hangs up after its byte budget: the rest of the write then fails, as it should.
            for (i, piece) in garbage(4 << 20, seed).chunks(64 << 10).enumerate() {
                sock.write_all(piece).await?;
                if i == 0 {
                    act();
                }
            }
        }
        Peer::ResetMidReply => {
            let req = request(&mut sock).await;
            sock.write_all(&partial_reply(&req)).await?;
            sock.flush().await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Deprecated because a non-zero linger blocks the thread on drop; a zero linger never waits.
            #[allow(deprecated)]
            sock.set_linger(Some(Duration::ZERO))?;
            drop(sock); // with linger 0: an RST, not a FIN
            act();
        }
        Peer::HalfCloseAtAccept => {
            sock.shutdown().await?;
            act();
            drain(&mut sock).await;
        }
        Peer::HalfCloseAfterPartial => {
            let req = request(&mut sock).await;
            sock.write_all(&partial_reply(&req)).await?;
            sock.shutdown().await?;
            act();
            drain(&mut sock).await;
        }
        Peer::ModbusLongClaim => {
            let mut buf = vec![0u8; 4096];
            for _ in 0..16 {
                let n = sock.read(&mut buf).await?;
                if n < 8 {
                    return Ok(());
                }
                let mut reply = vec![buf[0], buf[1], 0, 0, 0xFF, 0xFF, buf[6], buf[7]];
                reply.extend_from_slice(&garbage(8, seed));
                sock.write_all(&reply).await?;
                act();
            }
        }
        Peer::S7LongClaim => {
            let mut buf = vec![0u8; 4096];
            for _ in 0..16 {
                let n = sock.read(&mut buf).await?;
                if n < 6 {
                    return Ok(());
                }
                if buf[5] == 0xE0 {
                    sock.write_all(&s7::confirm(&[0x01, 0x00], &[0x01, 0x02], true)).await?;
                } else {
                    // A DT TPDU carrying the start of an S7 ack-data header, in a TPKT claiming 0xFFFF bytes.
                    let mut reply = vec![0x03, 0x00, 0xFF, 0xFF, 0x02, 0xF0, 0x80, 0x32, 0x03, 0x00, 0x00];
                    reply.extend_from_slice(&garbage(16, seed));
                    sock.write_all(&reply).await?;
                    act();
                }
            }
        }
        Peer::EnipLongClaim => {
            let mut buf = vec![0u8; 4096];
            for _ in 0..16 {
                let n = sock.read(&mut buf).await?;
                if n < 24 {
                    return Ok(());
                }
                let mut reply = vec![buf[0], buf[1], 0xFF, 0xFF];
                reply.extend_from_slice(&buf[4..8]); // session handle
                reply.extend_from_slice(&[0; 4]); // status: success
                reply.extend_from_slice(&buf[12..20]); // sender context
                reply.extend_from_slice(&[0; 4]); // options
                reply.extend_from_slice(&garbage(32, seed));
                sock.write_all(&reply).await?;
                act();
            }
        }
        Peer::TlsRecordGarbage => {
            let _hello = request(&mut sock).await;
            let mut reply = vec![0x16, 0x03, 0x03, 0x40, 0x00];
            reply.extend_from_slice(&garbage(64 << 10, seed));
            sock.write_all(&reply).await?;
            act();
            drain(&mut sock).await;
        }
    }
    Ok(())
}

/// Listens on `addr` and serves each connection (at most [`MAX_CONNS`], each at most [`CAP`]) as `peer`;
/// `acted` counts the misbehaviours delivered.
async fn serve(addr: &str, peer: Peer, acted: Arc<AtomicUsize>) -> JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    tokio::spawn(async move {
        for i in 0..MAX_CONNS {
            let Ok((sock, _)) = listener.accept().await else { return };
            let acted = acted.clone();
            tokio::spawn(async move {
                let _ = timeout(CAP, behave(peer, sock, 0x9E37_79B9_7F4A_7C15 ^ i as u64, &acted)).await;
            });
        }
    })
}

/// What a plain BACnet/IP device (instance 1234, vendor 7, no properties but its identifier and
/// vendor) answers: I-Am to Who-Is, ReadProperty of its device object; anything else is dropped.
fn bacnet_answer(req: &[u8]) -> Option<Vec<u8>> {
    let device = bacnet::Device {
        instance: 1234,
        vendor_id: 7,
        answers_who_is: true,
        accepts_wildcard: true,
        strings: Default::default(),
    };
    device.answer(req)
}

#[derive(Clone, Copy, Debug)]
enum UdpPeer {
    /// Answers each request with a BVLC header claiming 0xFFFF bytes and the start of an I-Am.
    BacnetLongClaim,
    /// Answers each request with 300 datagrams of 1000 bytes of garbage.
    Flood,
    /// Answers like a real BACnet device, but from another source port of its address (as some
    /// BACnet stacks do): read on an unconnected socket and matched by content, it is a device.
    OtherSourcePort,
    /// Answers like a real BACnet device (the control: this one must be found).
    Honest,
}

/// Answers at most [`MAX_DATAGRAMS`] requests on `addr` as `peer`; `acted` counts the answers sent.
async fn serve_udp(addr: &str, peer: UdpPeer, acted: Arc<AtomicUsize>) -> JoinHandle<()> {
    let sock = UdpSocket::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let ip = sock.local_addr().unwrap().ip();
    let other = UdpSocket::bind((ip, 0)).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        for i in 0..MAX_DATAGRAMS {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
            let req = &buf[..n];
            let act = || acted.fetch_add(1, Ordering::SeqCst);
            match peer {
                UdpPeer::BacnetLongClaim => {
                    let mut reply = vec![0x81, 0x0A, 0xFF, 0xFF, 0x01, 0x00, 0x10, 0x00, 0xC4, 0x02, 0x00];
                    reply.extend_from_slice(&garbage(8, i as u64 + 1));
                    if sock.send_to(&reply, from).await.is_ok() {
                        act();
                    }
                }
                UdpPeer::Flood => {
                    for k in 0..300u64 {
                        let _ = sock.send_to(&garbage(1000, (i as u64) << 16 | (k + 1)), from).await;
                    }
                    act();
                }
                UdpPeer::OtherSourcePort => {
                    if let Some(reply) = bacnet_answer(req) {
                        if other.send_to(&reply, from).await.is_ok() {
                            act();
                        }
                    }
                }
                UdpPeer::Honest => {
                    if let Some(reply) = bacnet_answer(req) {
                        if sock.send_to(&reply, from).await.is_ok() {
                            act();
                        }
                    }
                }
            }
        }
    })
}

/// A fresh self-signed certificate for `names`, with `cn` as its common name.
fn cert(names: Vec<String>, cn: &str) -> Identity {
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    Identity::from_params(params).unwrap()
}

/// A TLS server whose Certificate message carries `identity`'s chain; it completes handshakes and
/// says nothing after them.
async fn tls_server(addr: &str, identity: Identity) -> Responder {
    common::device(addr, Session::tls(identity), common::silent).await
}

/// The highest VmHWM (peak resident set, KiB) of a running process, if it can still be read.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The largest peak RSS (KiB) among the waited-for children of this process.
fn children_max_rss_kib() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64 // kilobytes on Linux
}

const TCP_PEERS: [(&str, Peer); 11] = [
    ("127.130.77.1", Peer::Silent),
    ("127.130.77.2", Peer::Drip),
    ("127.130.77.3", Peer::Endless),
    ("127.130.77.4", Peer::GarbageThenClose),
    ("127.130.77.5", Peer::ResetMidReply),
    ("127.130.77.6", Peer::HalfCloseAtAccept),
    ("127.130.77.7", Peer::HalfCloseAfterPartial),
    ("127.130.77.8", Peer::ModbusLongClaim),
    ("127.130.77.9", Peer::S7LongClaim),
    ("127.130.77.10", Peer::EnipLongClaim),
    ("127.130.77.14", Peer::TlsRecordGarbage),
];

/// The ports a TCP peer listens on.
fn peer_ports(peer: Peer) -> &'static [u16] {
    match peer {
        // The generic misbehaviours, on an ICS port (binary probes) and on an unknown one.
        Peer::Silent
        | Peer::Drip
        | Peer::Endless
        | Peer::GarbageThenClose
        | Peer::ResetMidReply
        | Peer::HalfCloseAtAccept
        | Peer::HalfCloseAfterPartial => &[502, PLAIN_PORT],
        Peer::ModbusLongClaim => &[502],
        Peer::S7LongClaim => &[102],
        Peer::EnipLongClaim => &[44818],
        Peer::TlsRecordGarbage => &[443],
    }
}

/// A port no probe names: the scanner runs its whole unknown-port strategy there (passive read, TLS
/// hello, text probes).
const PLAIN_PORT: u16 = 7777;

/// What one scan of the hostile peers gave.
struct Outcome {
    elapsed: Duration,
    /// Peak RSS of the scanning process: its polled VmHWM, or the children's maxrss if higher.
    peak_kib: u64,
    /// Its stderr (the summary).
    log: String,
    findings: Vec<Value>,
}

impl Outcome {
    fn get(&self, ip: &str, port: u16) -> Option<&Value> {
        self.findings.iter().find(|f| f["ip"] == ip && f["port"] == port)
    }

    /// The bounds that hold whatever the peers do, and no false ICS identification.
    fn assert_bounded(&self) {
        let bound = Duration::from_secs(TARGET_DEADLINE_S) + TIME_MARGIN;
        assert!(self.elapsed < bound, "the scan took {:?}, beyond {bound:?}", self.elapsed);
        assert!(self.peak_kib < MAX_PEAK_RSS_KIB, "peak RSS {} KiB, beyond {MAX_PEAK_RSS_KIB} KiB", self.peak_kib);
        assert!(self.log.contains("scan complete"), "{}", self.log);
        assert!(self.log.contains("targets probed: 102 of 102"), "{}", self.log);
        for f in self.findings.iter().filter(|f| f["ip"] != "127.130.77.16" && f["ip"] != "127.130.77.17") {
            assert_eq!(f["ics"], false, "false ICS finding: {f:#}");
        }
        // A finding keeps at most 4 KiB of a banner (16 KiB of text with every byte escaped), however
        // much garbage the peer streamed; only the 1500-name certificate (under 64 KiB of DER) says more.
        for f in self.findings.iter().filter(|f| f["ip"] != "127.130.77.13") {
            let size = f.to_string().len();
            assert!(size < MAX_FINDING_BYTES, "a {size}-byte finding for {}:{}", f["ip"], f["port"]);
        }
        // The UDP long claim and the flood validate as nothing: never BACnet; `unknown` when their replies
        // come within the target's deadline, with at most the first 256 bytes they sent as evidence.
        for ip in ["127.130.77.11", "127.130.77.15"] {
            if let Some(peer) = self.get(ip, 47808) {
                assert_eq!((&peer["protocol"], &peer["transport"]), (&json!("unknown"), &json!("udp")), "{peer:#}");
                assert!(peer["evidence"].as_str().is_some_and(|e| !e.is_empty() && e.len() <= 512), "{peer:#}");
            }
        }
        // The control, and the same BACnet answers from another port of the device: BACnet devices.
        for ip in ["127.130.77.17", "127.130.77.16"] {
            let device = self.get(ip, 47808).unwrap_or_else(|| panic!("the BACnet device {ip} is found"));
            assert_eq!(device["protocol"], "bacnet", "{device:#}");
            assert_eq!(device["attributes"]["instance"], 1234, "{device:#}");
        }
    }
}

/// Runs the otscope binary over the hostile ledger (with `--deep` when asked), polling its peak RSS.
async fn run_scan(dir: &std::path::Path, ledger: &std::path::Path, deep: bool) -> Outcome {
    let out = dir.join(if deep { "deep.jsonl" } else { "findings.jsonl" });
    let deadline = format!("{TARGET_DEADLINE_S}s");
    let ports = format!("102,443,502,{PLAIN_PORT},44818,47808/udp");
    let fingerprints = common::fingerprints_dir();
    let args: Vec<&std::ffi::OsStr> = [
        "scan",
        "--targets",
        ledger.to_str().unwrap(),
        "--ports",
        &ports,
        "--fingerprints",
        fingerprints.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-db",
        "--rate",
        "0",
        "--seed",
        "7",
        "--per-host",
        "16",
        "--host-interval",
        "0ms",
        "--connect-timeout",
        "1s",
        "--read-timeout",
        "1s",
        "--banner-wait",
        "500ms",
        "--udp-retries",
        "1",
        "--target-deadline",
        &deadline,
        "--quiet",
    ]
    .into_iter()
    .chain(deep.then_some("--deep"))
    .map(std::ffi::OsStr::new)
    .collect();
    let log_path = dir.join(if deep { "deep.log" } else { "scan.log" });
    let stderr = std::fs::File::create(&log_path).unwrap();

    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut polled_hwm = 0u64;
    // Bounded: the poll gives up (and kills the scan) after 60 s, far beyond the asserted bound.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kib) = vm_hwm_kib(pid) {
            polled_hwm = polled_hwm.max(kib);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the scan of hostile peers did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let peak_kib = polled_hwm.max(children_max_rss_kib());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "scan failed: {status:?}\n{log}");
    eprintln!("hostile scan (deep: {deep}): {elapsed:?}, peak RSS {peak_kib} KiB (polled VmHWM {polled_hwm} KiB)");

    let findings: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary: Vec<String> =
        findings.iter().map(|f| format!("{}:{}/{} {}", f["ip"], f["port"], f["transport"], f["protocol"])).collect();
    eprintln!("{summary:#?}");
    Outcome { elapsed, peak_kib, log, findings }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scan_of_hostile_peers_stays_bounded_and_identifies_nothing_false() {
    let mut tasks = Vec::new();
    // Per address: how often its misbehaviour was delivered to the scanner.
    let mut acted: HashMap<String, Arc<AtomicUsize>> = HashMap::new();
    for (ip, peer) in TCP_PEERS {
        let count = acted.entry(ip.to_string()).or_default().clone();
        let ports = peer_ports(peer);
        for port in ports {
            tasks.push(serve(&format!("{ip}:{port}"), peer, count.clone()).await);
        }
    }
    for (ip, peer) in [
        ("127.130.77.11", UdpPeer::BacnetLongClaim),
        ("127.130.77.15", UdpPeer::Flood),
        ("127.130.77.16", UdpPeer::OtherSourcePort),
        ("127.130.77.17", UdpPeer::Honest),
    ] {
        let count = acted.entry(ip.to_string()).or_default().clone();
        tasks.push(serve_udp(&format!("{ip}:47808"), peer, count).await);
    }
    // A chain of 30 self-signed certificates (the scanner records at most 8 of them).
    let mut chain = cert(vec!["chain.lab.test".into()], "chain.lab.test");
    chain.chain.extend((1..30).map(|i| cert(vec![format!("ca{i}.lab.test")], &format!("CA {i}")).chain.remove(0)));
    // One certificate with 1500 subject alternative names (about 40 KiB of DER).
    let names: Vec<String> = (0..1500).map(|i| format!("host-{i:05}.plant.lab.test")).collect();
    let tls_peers = [
        ("127.130.77.12", tls_server("127.130.77.12:443", chain).await),
        ("127.130.77.13", tls_server("127.130.77.13:443", cert(names, "san.lab.test")).await),
    ];

    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.csv");
    std::fs::write(&ledger, format!("{}H-1,hostile,d,s,important,127.130.77.1-127.130.77.17,c\n", common::HEADER))
        .unwrap();
    let first = run_scan(dir.path(), &ledger, false).await;
    let by_target: HashMap<(String, u64), &Value> = first
        .findings
        .iter()
        .map(|f| ((f["ip"].as_str().unwrap().to_string(), f["port"].as_u64().unwrap()), f))
        .collect();
    first.assert_bounded();
    let log = &first.log;

    // Every peer's misbehaviour really reached the scanner (TLS: a handshake completed).
    for (ip, count) in &acted {
        assert!(count.load(Ordering::SeqCst) > 0, "{ip}'s misbehaviour never reached the scanner");
    }
    for (ip, server) in &tls_peers {
        assert!(server.handshakes() > 0, "{ip}'s certificate never reached the scanner");
    }
    // Every target finished on its own, none was cut off by the deadline: no probe hung on a peer.
    assert!(!log.contains("cut off at the deadline"), "{log}");
    // Each hostile TCP peer is an open port that answered nothing recognisable: `unknown`, exactly.
    for (ip, peer) in TCP_PEERS {
        for port in [102, 443, 502, PLAIN_PORT, 44818] {
            let f = by_target.get(&(ip.to_string(), u64::from(port)));
            match (f, peer_ports(peer).contains(&port)) {
                (Some(f), true) => assert_eq!(f["protocol"], "unknown", "{peer:?} on {port}: {f:#}"),
                (None, true) => panic!("{peer:?} on {port}: no finding (the probe did not finish on its own)"),
                (Some(f), false) => panic!("a finding on a closed port: {f:#}"),
                (None, false) => {}
            }
        }
    }

    // TLS with a 30-certificate chain: a `tls` finding that tells the chain's true length.
    let chain = by_target.get(&("127.130.77.12".to_string(), 443)).expect("the 30-certificate TLS peer is found");
    assert_eq!(chain["protocol"], "tls", "{chain:#}");
    let tls = &chain["attributes"]["tls"];
    assert!(tls["subject"].as_str().unwrap().contains("chain.lab.test"), "{tls:#}");
    // Only 8 certificates are kept and parsed, but the length reported is the one the peer sent.
    assert_eq!(tls["chain_length"], 30, "{tls:#}");
    // TLS with 1500 SANs: a `tls` finding that lists them.
    let san = by_target.get(&("127.130.77.13".to_string(), 443)).expect("the 1500-SAN TLS peer is found");
    assert_eq!(san["protocol"], "tls", "{san:#}");
    // Every name is listed: the certificate message cannot exceed 64 KiB, so neither can this list.
    let sans = san["attributes"]["tls"]["san"].as_array().expect("a SAN list");
    assert_eq!(sans.len(), 1500);
    assert!(sans[1499].as_str().unwrap().contains("host-01499.plant.lab.test"), "{:?}", sans[1499]);

    // The same peers under --deep: every probe of the registry on every open port. Probes that wait
    // out their read timeouts may now reach the target deadline (no finding then), but the bounds
    // hold and nothing is named that is not there.
    let deep = run_scan(dir.path(), &ledger, true).await;
    deep.assert_bounded();
    for (ip, peer) in TCP_PEERS {
        for &port in peer_ports(peer) {
            if let Some(f) = deep.get(ip, port) {
                assert_eq!(f["protocol"], "unknown", "--deep, {peer:?} on {port}: {f:#}");
            }
        }
    }
    for ip in ["127.130.77.12", "127.130.77.13"] {
        if let Some(f) = deep.get(ip, 443) {
            assert_eq!(f["protocol"], "tls", "--deep: {f:#}");
        }
    }

    for t in tasks {
        t.abort();
    }
}
