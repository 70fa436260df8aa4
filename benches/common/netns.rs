//! A private network namespace for the benches that need raw sockets or filtered ports, the filtered
//! ports themselves, and a clock that timestamps SYNs on the wire.
//!
//! Inside a namespace of its own (`unshare(CLONE_NEWNET)`) whose only interface is `lo`, a bench's
//! raw sockets see only its own traffic, and a wildcard listener filters one port on every 127/8
//! address without touching anything else on the machine. Needs CAP_SYS_ADMIN (root; CI runs as
//! root).

use otscope::net::raw::{parse_segment, raw_sockets_available};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Moves this process into a new network namespace and brings its `lo` up. Call it before the
/// process starts any thread: `unshare` moves only the calling thread.
pub fn enter_private_network() -> io::Result<()> {
    // SAFETY: plain syscalls on a socket and a request struct we own.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request);
        if rc == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &request);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Checks for raw sockets and enters the private namespace, for a bench named `bench`. `Err` is the
/// exit status when it cannot: success (skipped) on a machine without the privilege, failure under
/// CI, where the bench must run.
pub fn private_network_with_raw_sockets(bench: &str) -> Result<(), ExitCode> {
    if let Err(e) = raw_sockets_available() {
        eprintln!("{bench} bench: skipped: {e}");
        return Err(if std::env::var_os("CI").is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    if let Err(e) = enter_private_network() {
        eprintln!("{bench} bench: cannot make a private network namespace (needs CAP_SYS_ADMIN): {e}");
        return Err(ExitCode::FAILURE);
    }
    Ok(())
}

/// A listener whose accept queue is full (backlog 0, one connection queued and never accepted):
/// Linux drops every further SYN to it without an answer, as a firewall's DROP does. Keep it alive
/// for as long as the port must stay filtered.
pub struct FullQueue {
    _listener: Socket,
    _queued: TcpStream,
}

impl FullQueue {
    /// Filters `addr`. On 0.0.0.0 that is the port on every 127/8 address: only ever do that inside
    /// the private namespace, where `lo` is the only interface.
    pub fn at(addr: SocketAddrV4) -> FullQueue {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener.bind(&SocketAddr::from(addr).into()).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.listen(0).expect("listen");
        let reach = if addr.ip().is_unspecified() { SocketAddrV4::new(Ipv4Addr::LOCALHOST, addr.port()) } else { addr };
        let queued = TcpStream::connect_timeout(&reach.into(), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("the one queued connection to {reach}: {e}"));
        FullQueue { _listener: listener, _queued: queued }
    }

    /// Filters `port` on every 127/8 address of the private namespace.
    pub fn everywhere(port: u16) -> FullQueue {
        FullQueue::at(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
    }
}

/// A SYN (without ACK) seen on the wire.
#[derive(Debug, Clone, Copy)]
pub struct WireSyn {
    pub at: Instant,
    pub dst: Ipv4Addr,
    pub src_port: u16,
}

/// Timestamps every SYN to `port` on loopback, from a raw socket and a thread of its own: an
/// independent witness of what a scan sent and when.
pub struct SynClock {
    seen: Arc<Mutex<Vec<WireSyn>>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SynClock {
    pub fn start(port: u16) -> SynClock {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).expect("raw socket");
        socket.set_recv_buffer_size(32 << 20).expect("receive buffer");
        socket.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        let (seen, done) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (seen, done) = (seen.clone(), done.clone());
            std::thread::spawn(move || {
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 256];
                while !done.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else { continue };
                    let at = Instant::now();
                    // SAFETY: recv initialised the first n bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                    match parse_segment(bytes) {
                        Some(s) if s.dst_port == port && s.syn && !s.ack => {
                            seen.lock().expect("not poisoned").push(WireSyn { at, dst: s.dst, src_port: s.src_port })
                        }
                        _ => {}
                    }
                }
            })
        };
        SynClock { seen, done, thread: Some(thread) }
    }

    /// The SYNs seen since the last call, in the order seen.
    pub fn take(&self) -> Vec<WireSyn> {
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

impl Drop for SynClock {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
