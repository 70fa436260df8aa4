//! SYN discovery on loopback, through real raw sockets: SYN-ACK and RST come back on a raw receive
//! socket; a mixed range of open, closed and filtered ports on several 127.77.x.y addresses is
//! classified exactly (and as connect() sees it); forged and out-of-scope replies change nothing;
//! a local send failure is "not covered", never closed or filtered; a stop ends the stage at once;
//! without CAP_NET_RAW the stage refuses clearly.
//!
//! A filtered port on loopback is a listener whose accept queue is full: Linux drops every further
//! SYN to it without an answer, which is what a firewall's DROP looks like from outside.
//!
//! These need root or CAP_NET_RAW. Without it they print why they skipped, and fail when `CI` is set
//! (CI runs as root, so a skip there would hide a regression).

use etherparse::{Ipv4Slice, PacketBuilder, TcpSlice};
use otscope::discovery::syn::{self, SynConfig, SynError, SynStats};
use otscope::discovery::{DiscoveryEvent, NotCovered, PortState, SynTarget, Watermark};
use otscope::net::raw::{
    parse_segment, raw_sockets_available, LocalFailure, RawReceiver, RawSender, RawSocketError, Segment, Syn,
    SynWriter, SYN_LEN,
};
use socket2::{Domain, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

mod common;
use common::privileged;
use tokio_util::sync::CancellationToken;

const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A listener that answers SYNs (nobody accepts; the kernel completes handshakes by itself).
fn open_port(addr: Ipv4Addr, port: u16) -> TcpListener {
    TcpListener::bind(SocketAddrV4::new(addr, port)).unwrap_or_else(|e| panic!("bind {addr}:{port}: {e}"))
}

/// A listener whose accept queue is full: Linux drops every further SYN to it.
struct FilteredPort {
    _listener: Socket,
    _queued: TcpStream,
}

fn filtered_port(addr: Ipv4Addr, port: u16) -> FilteredPort {
    let at = SocketAddr::from(SocketAddrV4::new(addr, port));
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener.bind(&at.into()).unwrap_or_else(|e| panic!("bind {at}: {e}"));
    // A backlog of 0 holds one completed connection; the one below fills it.
    listener.listen(0).expect("listen");
    let queued = TcpStream::connect_timeout(&at, Duration::from_secs(2)).expect("the first connection is queued");
    FilteredPort { _listener: listener, _queued: queued }
}

fn in_range(first: Ipv4Addr, count: u32) -> impl Fn(Ipv4Addr) -> bool + Sync {
    move |a| (u32::from(first)..u32::from(first) + count).contains(&u32::from(a))
}

fn config() -> SynConfig {
    SynConfig {
        rate: NonZeroU32::new(2000),
        wait: Duration::from_millis(300),
        checkpoint_every: Some(Duration::from_millis(50)),
        ..SynConfig::default()
    }
}

/// Runs the stage, returning its verdicts by (address, port), every event in order, and its stats.
fn discover(
    targets: Vec<SynTarget>,
    config: &SynConfig,
    in_scope: &(dyn Fn(Ipv4Addr) -> bool + Sync),
) -> (HashMap<(Ipv4Addr, u16), PortState>, Vec<DiscoveryEvent>, SynStats) {
    let mut events = Vec::new();
    let stats = syn::run(targets, config, in_scope, &CancellationToken::new(), &mut |e| events.push(e))
        .unwrap_or_else(|e| panic!("SYN discovery: {e}"));
    let mut verdicts = HashMap::new();
    for e in &events {
        if let DiscoveryEvent::Verdict(v) = e {
            let previous = verdicts.insert((v.target.addr, v.target.port), v.state);
            assert_eq!(previous, None, "one verdict per target: {v:?}");
        }
    }
    (verdicts, events, stats)
}

/// Reads segments from `rx` until one satisfies `wanted`, for at most two seconds.
fn wait_for(rx: &mut RawReceiver, wanted: impl Fn(&Segment) -> bool) -> Option<Segment> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let mut packets = rx.try_recv().expect("receive").peekable();
        if packets.peek().is_none() {
            drop(packets);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if let Some(s) = packets.filter_map(parse_segment).find(&wanted) {
            return Some(s);
        }
    }
    None
}

#[test]
fn a_raw_syn_gets_a_syn_ack_from_a_listener_and_a_rst_from_a_closed_port() {
    if !privileged("a_raw_syn_gets_a_syn_ack_from_a_listener_and_a_rst_from_a_closed_port") {
        return;
    }
    let (open, closed) = (Ipv4Addr::new(127, 77, 9, 1), Ipv4Addr::new(127, 77, 9, 2));
    let _listener = open_port(open, 15020);
    let sender = RawSender::open().expect("raw sender");
    let mut rx = RawReceiver::open(LOCAL, 61000..=61001).expect("raw receiver");
    let (mut packet, writer) = ([0u8; SYN_LEN], SynWriter::default());

    writer.write(&Syn { src: LOCAL, dst: open, src_port: 61000, dst_port: 15020, seq: 0x1234_5678 }, &mut packet);
    sender.send(&packet, open).expect("send");
    let reply = wait_for(&mut rx, |s| s.src == open && s.dst_port == 61000).expect("a reply from the listener");
    assert!(reply.syn && reply.ack && !reply.rst, "{reply:?}");
    assert_eq!((reply.src_port, reply.dst, reply.ack_number), (15020, LOCAL, 0x1234_5679));

    writer.write(&Syn { src: LOCAL, dst: closed, src_port: 61001, dst_port: 15020, seq: 99 }, &mut packet);
    sender.send(&packet, closed).expect("send");
    let reply = wait_for(&mut rx, |s| s.src == closed && s.dst_port == 61001).expect("a reply from the closed port");
    assert!(reply.rst && reply.ack && !reply.syn, "{reply:?}");
    assert_eq!(reply.ack_number, 100);
}

#[test]
fn a_mixed_range_is_classified_exactly_and_as_connect_sees_it() {
    if !privileged("a_mixed_range_is_classified_exactly_and_as_connect_sees_it") {
        return;
    }
    let first = Ipv4Addr::new(127, 77, 0, 1);
    let ports = [15021u16, 15022, 15023, 15024, 15025, 15026];
    let mut expected = HashMap::new();
    let (mut listeners, mut filtered) = (Vec::new(), Vec::new());
    let mut targets = Vec::new();
    for i in 0..4u32 {
        let addr = Ipv4Addr::from(u32::from(first) + i);
        for (j, &port) in ports.iter().enumerate() {
            let state = [PortState::Open, PortState::Closed, PortState::Filtered][(i as usize + j) % 3];
            match state {
                PortState::Open => listeners.push(open_port(addr, port)),
                PortState::Filtered => filtered.push(filtered_port(addr, port)),
                _ => {}
            }
            expected.insert((addr, port), state);
            targets.push(SynTarget { position: targets.len() as u64, addr, port });
        }
    }
    let cfg = config();
    let started = Instant::now();
    let (verdicts, events, stats) = discover(targets, &cfg, &in_range(first, 4));
    assert_eq!(verdicts, expected);
    assert_eq!((stats.open, stats.closed, stats.filtered, stats.not_covered), (8, 8, 8, 0), "{stats:?}");
    // Each filtered port got its retry; nobody else did.
    assert_eq!((stats.packets, stats.retries), (24 + 8, 8), "{stats:?}");
    assert_eq!(stats.local_failures.total(), 0);
    assert_eq!(stats.abandoned, 0);
    // Six ports and two retries to one address at 10 packets a second: under a second; plus the waits.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(events.last(), Some(&DiscoveryEvent::Checkpoint(Watermark::Complete)));

    // connect() agrees: a SYN-ACK is a connection, a RST a refusal, silence a timeout.
    for (&(addr, port), &state) in &expected {
        let seen = match TcpStream::connect_timeout(&SocketAddrV4::new(addr, port).into(), Duration::from_millis(300)) {
            Ok(_) => PortState::Open,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => PortState::Closed,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => PortState::Filtered,
            Err(e) => panic!("connect {addr}:{port}: {e}"),
        };
        assert_eq!(seen, state, "{addr}:{port}");
    }
}

#[test]
fn forged_replies_are_ignored_and_out_of_scope_ones_dropped() {
    if !privileged("forged_replies_are_ignored_and_out_of_scope_ones_dropped") {
        return;
    }
    let target = Ipv4Addr::new(127, 77, 1, 1);
    let outside = Ipv4Addr::new(127, 78, 1, 1);
    let port = 15030;
    let _filtered = filtered_port(target, port);
    let cfg = SynConfig { wait: Duration::from_millis(800), ..config() };
    // The scanner's SYN, read from a raw socket of our own, shows its source port and sequence number
    // (as it would to an on-path observer); the forgeries are what an off-path host could try with them.
    let mut sniffer = Socket::new(Domain::IPV4, Type::RAW, Some(socket2::Protocol::TCP)).expect("raw socket");
    sniffer.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    let forger = RawSender::open().expect("raw sender");
    let forging = std::thread::spawn(move || {
        let (src_port, seq) = sniff_syn(&mut sniffer, target, port).expect("the scanner's SYN");
        let forge = |from: Ipv4Addr, from_port: u16, ack: u32, rst: bool| {
            let tcp = PacketBuilder::ipv4(from.octets(), LOCAL.octets(), 64).tcp(from_port, src_port, 1, 1024);
            let tcp = if rst { tcp.rst().ack(ack) } else { tcp.syn().ack(ack) };
            let mut packet = Vec::new();
            tcp.write(&mut packet, &[]).expect("build");
            forger.send(&packet, LOCAL).expect("send a forgery");
        };
        let right = seq.wrapping_add(1);
        forge(target, port, right.wrapping_add(1), false); // a wrong acknowledgement number
        forge(target, port, right.wrapping_add(7), true); // a RST with a wrong one
        forge(target, port + 1, right, false); // the right numbers, from another port
        forge(outside, port, right, false); // the right numbers, from outside the scope
    });
    let targets = vec![SynTarget { position: 0, addr: target, port }];
    let (verdicts, _, stats) = discover(targets, &cfg, &in_range(Ipv4Addr::new(127, 77, 0, 0), 1 << 16));
    forging.join().expect("forger");
    assert_eq!(verdicts[&(target, port)], PortState::Filtered, "{stats:?}");
    assert!(stats.invalid >= 3, "{stats:?}");
    assert!(stats.out_of_scope >= 1, "{stats:?}");
    assert_eq!(stats.unmatched, 0, "{stats:?}");
}

/// The source port and sequence number of the scanner's SYN to (addr, port), read from an
/// unfiltered raw TCP socket.
fn sniff_syn(raw: &mut Socket, addr: Ipv4Addr, port: u16) -> Option<(u16, u32)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while Instant::now() < deadline {
        let Ok(n) = raw.recv(&mut buf) else { continue };
        // SAFETY: recv initialised the first n bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        let Ok(ip) = Ipv4Slice::from_slice(bytes) else { continue };
        let Ok(tcp) = TcpSlice::from_slice(ip.payload().payload) else { continue };
        if ip.header().destination_addr() == addr && tcp.destination_port() == port && tcp.syn() && !tcp.ack() {
            return Some((tcp.source_port(), tcp.sequence_number()));
        }
    }
    None
}

#[test]
fn a_genuine_reply_from_outside_the_scope_is_dropped() {
    if !privileged("a_genuine_reply_from_outside_the_scope_is_dropped") {
        return;
    }
    // The stage is (wrongly) handed a target whose address the scope does not hold: its real SYN-ACK
    // is dropped, so the target is never reported open.
    let addr = Ipv4Addr::new(127, 77, 2, 1);
    let _listener = open_port(addr, 15040);
    let targets = vec![SynTarget { position: 0, addr, port: 15040 }];
    let (verdicts, _, stats) = discover(targets, &config(), &in_range(Ipv4Addr::new(127, 77, 3, 0), 256));
    assert_eq!(verdicts[&(addr, 15040)], PortState::Filtered);
    assert!(stats.out_of_scope >= 2, "both SYN-ACKs dropped: {stats:?}");
}

#[test]
fn a_stop_ends_the_stage_at_once_and_the_watermark_says_where_to_resume() {
    if !privileged("a_stop_ends_the_stage_at_once_and_the_watermark_says_where_to_resume") {
        return;
    }
    // 1,000 closed ports of one address: at 10 packets a second to it, that would take 100 s.
    let addr = Ipv4Addr::new(127, 77, 4, 1);
    let targets: Vec<SynTarget> =
        (0..1000u16).map(|i| SynTarget { position: 3 * u64::from(i), addr, port: 20000 + i }).collect();
    let stop = CancellationToken::new();
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.cancel();
        })
    };
    let mut events = Vec::new();
    let started = Instant::now();
    let stats =
        syn::run(targets, &config(), &in_range(addr, 1), &stop, &mut |e| events.push(e)).expect("SYN discovery");
    stopper.join().expect("stopper");
    assert!(started.elapsed() < Duration::from_millis(800), "{:?}", started.elapsed());
    let decided: Vec<u64> = events
        .iter()
        .filter_map(|e| if let DiscoveryEvent::Verdict(v) = e { Some(v.target.position) } else { None })
        .collect();
    // About three packets went out in 300 ms; the rest were waiting for their turn at the host.
    assert!((1..=6).contains(&decided.len()), "{decided:?}");
    assert_eq!(decided.len() as u64 + stats.abandoned, stats.targets, "{stats:?}");
    // They went in order, so the watermark is the first one without a verdict.
    let last = events.last().copied();
    assert_eq!(last, Some(DiscoveryEvent::Checkpoint(Watermark::Before(3 * decided.len() as u64))));
}

#[test]
fn a_local_send_failure_is_not_covered_never_closed_or_filtered() {
    if !privileged("a_local_send_failure_is_not_covered_never_closed_or_filtered") {
        return;
    }
    // 127.255.255.255 is the broadcast address of lo's 127.0.0.0/8: the kernel refuses a raw packet
    // to it (EACCES, no SO_BROADCAST), every time, before anything leaves.
    let closed = SynTarget { position: 0, addr: Ipv4Addr::new(127, 77, 6, 1), port: 15060 };
    let broadcast = SynTarget { position: 1, addr: Ipv4Addr::new(127, 255, 255, 255), port: 15060 };
    let cfg = config();
    let (verdicts, _, stats) = discover(vec![closed, broadcast], &cfg, &in_range(Ipv4Addr::new(127, 0, 0, 0), 1 << 24));
    assert_eq!(verdicts[&(closed.addr, closed.port)], PortState::Closed);
    assert_eq!(
        verdicts[&(broadcast.addr, broadcast.port)],
        PortState::NotCovered(NotCovered::Send(LocalFailure::NotPermitted)),
        "{stats:?}"
    );
    assert_eq!(stats.local_failures.not_permitted, u64::from(cfg.max_local_failures), "{stats:?}");
    assert_eq!((stats.closed, stats.not_covered, stats.filtered, stats.packets), (1, 1, 0, 1), "{stats:?}");
}

#[test]
fn without_cap_net_raw_the_stage_refuses_clearly() {
    if !privileged("without_cap_net_raw_the_stage_refuses_clearly") {
        return;
    }
    // Capabilities belong to a thread: this one drops CAP_NET_RAW from its effective set.
    let outcome = std::thread::spawn(|| {
        drop_cap_net_raw().expect("capset");
        let available = raw_sockets_available();
        let targets = vec![SynTarget { position: 0, addr: Ipv4Addr::new(127, 77, 5, 1), port: 1 }];
        let run = syn::run(targets, &config(), &|_| true, &CancellationToken::new(), &mut |_| {});
        (available, run.map(|_| ()))
    })
    .join()
    .expect("thread");
    assert!(matches!(outcome.0, Err(RawSocketError::NotPermitted(_))), "{:?}", outcome.0);
    let err = outcome.1.expect_err("the stage needs raw sockets");
    assert!(matches!(err, SynError::RawSocket(RawSocketError::NotPermitted(_))), "{err:?}");
    assert!(err.to_string().contains("CAP_NET_RAW"), "{err}");
}

/// Clears CAP_NET_RAW from the calling thread's effective capabilities (capget/capset, version 3).
fn drop_cap_net_raw() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: the kernel reads the header and fills two data records.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: as above; capset reads the header and two data records.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
