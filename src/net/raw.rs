//! Raw IPv4 sockets for stateless SYN discovery, and the wire layout of the SYN and its replies.
//!
//! - The sender is an `IPPROTO_RAW` socket: it writes whole IPv4 packets (the kernel fills in
//!   nothing but the header checksum and length), and it never receives anything, so no ICMP error
//!   about an earlier probe can surface as the error of a later send.
//! - The receiver is an `IPPROTO_TCP` raw socket: the kernel hands it a copy of every TCP segment
//!   delivered to this host. A classic BPF program keeps only segments to the scanner's source
//!   ports that carry ACK or RST, so the scanner's own SYNs (which loop back on `lo`) and unrelated
//!   traffic are dropped in the kernel.
//!
//! When a SYN-ACK arrives, no socket owns its destination port, so the kernel answers it with a RST
//! of its own. That closes the half-open connection on the peer (ZMap and masscan behave the same);
//! the scanner's source ports sit above the kernel's ephemeral range so that no local connection is
//! ever hit.
//!
//! Received checksums are not verified: on `lo` the kernel leaves TCP checksums partial (the device
//! offloads them), and a corrupted reply would also have to carry the keyed acknowledgement number.

use etherparse::{IpNumber, Ipv4Header, Ipv4Slice, TcpHeader, TcpOptionElement, TcpSlice};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::ops::RangeInclusive;
use std::time::Duration;

/// Bytes in the SYN that [`SynWriter`] builds: a 20-byte IPv4 header and a 24-byte TCP header
/// (with the MSS option, whose absence makes some stacks ignore a SYN).
pub const SYN_LEN: usize = 44;

/// Most SYNs handed to the kernel in one system call.
pub const SEND_BATCH: usize = 64;

/// Largest packet read from the receive socket; longer ones are truncated (the headers fit).
const RECEIVE_BUFFER: usize = 2048;

/// Most segments read from the receive socket in one system call.
const RECEIVE_BATCH: usize = 64;

/// Kernel receive buffer asked for: replies arrive in bursts while the sender is busy.
const RECEIVE_SOCKET_BYTES: usize = 32 << 20;

/// A blocked send gives up after this long with `EAGAIN`, so the send loop stays bounded in time.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum RawSocketError {
    #[error("raw sockets need root or the CAP_NET_RAW capability: {0}")]
    NotPermitted(io::Error),
    #[error("cannot open a raw socket: {0}")]
    Io(io::Error),
}

impl From<io::Error> for RawSocketError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => RawSocketError::NotPermitted(e),
            _ => RawSocketError::Io(e),
        }
    }
}

/// Whether this process may open raw IPv4 sockets (root, or CAP_NET_RAW). Opening one is the only
/// reliable test: capabilities, user namespaces and seccomp filters all have a say.
pub fn raw_sockets_available() -> Result<(), RawSocketError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).map(drop).map_err(RawSocketError::from)
}

/// The source address the kernel would use towards `dst` (a route lookup; nothing is sent).
pub fn source_address_for(dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let probe = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    probe.connect(SocketAddrV4::new(dst, 9))?;
    match probe.local_addr()? {
        std::net::SocketAddr::V4(a) => Ok(*a.ip()),
        std::net::SocketAddr::V6(_) => Err(io::Error::other("an IPv4 route gave an IPv6 source")),
    }
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), when it can be read.
pub fn ephemeral_ports() -> Option<RangeInclusive<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Some(low..=high),
        _ => None,
    }
}

/// Why a packet could not be sent. None of these says anything about the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalFailure {
    /// `ENOBUFS`: a queue on the way out is full.
    NoBuffers,
    /// `EAGAIN`: the socket's send buffer stayed full for the whole send timeout.
    SendBufferFull,
    /// `EPERM`/`EACCES`: a local firewall or policy refused the packet.
    NotPermitted,
    /// Any other error of the send call, by errno.
    Other(i32),
}

impl LocalFailure {
    fn from_io(e: &io::Error) -> LocalFailure {
        match e.raw_os_error() {
            Some(libc::ENOBUFS) => LocalFailure::NoBuffers,
            Some(libc::EAGAIN) => LocalFailure::SendBufferFull,
            Some(libc::EPERM | libc::EACCES) => LocalFailure::NotPermitted,
            Some(errno) => LocalFailure::Other(errno),
            None => LocalFailure::Other(0),
        }
    }
}

impl std::fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalFailure::NoBuffers => f.write_str("no buffer space (ENOBUFS)"),
            LocalFailure::SendBufferFull => f.write_str("send buffer full (EAGAIN)"),
            LocalFailure::NotPermitted => f.write_str("refused by local policy (EPERM)"),
            LocalFailure::Other(errno) => write!(f, "{}", io::Error::from_raw_os_error(*errno)),
        }
    }
}

/// The send-only raw socket.
pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    pub fn open() -> Result<RawSender, RawSocketError> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        // Without IP_RECVERR the kernel reports a raw packet dropped for lack of buffers as sent.
        set_int_option(&socket, libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(RawSender { socket })
    }

    /// Sends SYNs in order, as many as one system call takes (`sendmmsg`): returns how many went
    /// (at least one), or why the first could not. At most [`SEND_BATCH`] at a time.
    pub fn send_batch(&self, batch: &[(Ipv4Addr, [u8; SYN_LEN])]) -> Result<usize, LocalFailure> {
        assert!(!batch.is_empty() && batch.len() <= SEND_BATCH, "a batch of 1 to {SEND_BATCH}");
        // SAFETY: all-zero is a valid sockaddr_in, iovec and mmsghdr; each is filled in below.
        let mut addrs: [libc::sockaddr_in; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut iovecs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut messages: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (i, (dst, packet)) in batch.iter().enumerate() {
            addrs[i].sin_family = libc::AF_INET as libc::sa_family_t;
            addrs[i].sin_addr.s_addr = u32::from(*dst).to_be();
            iovecs[i].iov_base = packet.as_ptr() as *mut libc::c_void;
            iovecs[i].iov_len = SYN_LEN;
            messages[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            messages[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            messages[i].msg_hdr.msg_iov = &mut iovecs[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        // An interrupted call is tried again, a bounded number of times.
        let mut last = io::Error::from_raw_os_error(libc::EINTR);
        for _ in 0..4 {
            // SAFETY: `messages` holds `batch.len()` headers pointing at live buffers and addresses.
            let sent = unsafe {
                libc::sendmmsg(
                    std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                    messages.as_mut_ptr(),
                    batch.len() as libc::c_uint,
                    0,
                )
            };
            if sent > 0 {
                return Ok(sent as usize);
            }
            last = io::Error::last_os_error();
            if last.kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        Err(LocalFailure::from_io(&last))
    }

    /// Sends one whole IPv4 packet to `dst`.
    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> Result<(), LocalFailure> {
        let to = SockAddr::from(SocketAddrV4::new(dst, 0));
        // An interrupted call is tried again, a bounded number of times.
        let mut result = self.socket.send_to(packet, &to);
        for _ in 0..3 {
            match &result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => result = self.socket.send_to(packet, &to),
                _ => break,
            }
        }
        match result {
            Ok(n) if n == packet.len() => Ok(()),
            Ok(_) => Err(LocalFailure::Other(libc::EMSGSIZE)),
            Err(e) => Err(LocalFailure::from_io(&e)),
        }
    }
}

/// The receive socket for replies to the scanner's SYNs.
pub struct RawReceiver {
    socket: Socket,
    buffers: Box<[[MaybeUninit<u8>; RECEIVE_BUFFER]; RECEIVE_BATCH]>,
    /// Bytes of each buffer filled by the last read.
    lengths: [usize; RECEIVE_BATCH],
}

impl RawReceiver {
    /// Opens the receive socket, keeping only segments to `local` (the SYNs' source address; any
    /// local address if unspecified), to `ports`, that carry ACK or RST.
    pub fn open(local: Ipv4Addr, ports: RangeInclusive<u16>) -> Result<RawReceiver, RawSocketError> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
        // Bound to an address, the socket is not even offered segments to others: on `lo` that
        // spares the scanner a copy of each of its own SYNs.
        socket.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))?;
        socket.attach_filter(&reply_filter(ports))?;
        // Root may exceed net.core.rmem_max; anyone else gets what the system allows.
        let bytes = RECEIVE_SOCKET_BYTES as libc::c_int;
        if set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
            socket.set_recv_buffer_size(RECEIVE_SOCKET_BYTES)?;
        }
        // Read without blocking: a reader that sleeps between drains is never woken per packet, which
        // at a few hundred thousand replies a second costs the sending core more than the replies.
        socket.set_nonblocking(true)?;
        Ok(RawReceiver {
            socket,
            buffers: Box::new([[MaybeUninit::uninit(); RECEIVE_BUFFER]; RECEIVE_BATCH]),
            lengths: [0; RECEIVE_BATCH],
        })
    }

    /// The segments queued (whole IPv4 packets), as many as one system call reads (`recvmmsg`);
    /// none if none is.
    pub fn try_recv(&mut self) -> io::Result<impl Iterator<Item = &[u8]>> {
        // SAFETY: all-zero is a valid iovec and mmsghdr; each is pointed at its buffer below.
        let mut iovecs: [libc::iovec; RECEIVE_BATCH] = unsafe { std::mem::zeroed() };
        let mut messages: [libc::mmsghdr; RECEIVE_BATCH] = unsafe { std::mem::zeroed() };
        for (i, buffer) in self.buffers.iter_mut().enumerate() {
            iovecs[i].iov_base = buffer.as_mut_ptr().cast();
            iovecs[i].iov_len = RECEIVE_BUFFER;
            messages[i].msg_hdr.msg_iov = &mut iovecs[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each header points at one live buffer of RECEIVE_BUFFER bytes.
        let received = unsafe {
            libc::recvmmsg(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                messages.as_mut_ptr(),
                RECEIVE_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let count = if received >= 0 {
            received as usize
        } else {
            let e = io::Error::last_os_error();
            if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                return Err(e);
            }
            0
        };
        for (length, message) in self.lengths.iter_mut().zip(&messages).take(count) {
            *length = (message.msg_len as usize).min(RECEIVE_BUFFER);
        }
        let (buffers, lengths) = (&self.buffers, &self.lengths);
        // SAFETY: recvmmsg initialised the first `msg_len` bytes of each of the first `count` buffers.
        Ok((0..count).map(move |i| unsafe { std::slice::from_raw_parts(buffers[i].as_ptr().cast::<u8>(), lengths[i]) }))
    }

    /// A handle for reading the socket's drop counter from another thread.
    pub fn drop_counter(&self) -> io::Result<DropCounter> {
        Ok(DropCounter { socket: self.socket.try_clone()? })
    }
}

/// Reads how many packets the kernel dropped because the receive buffer was full.
pub struct DropCounter {
    socket: Socket,
}

impl DropCounter {
    pub fn read(&self) -> io::Result<u32> {
        // SO_MEMINFO fills an array of SK_MEMINFO_VARS (9) counters; index SK_MEMINFO_DROPS is ours.
        let mut info = [0u32; 9];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info[libc::SK_MEMINFO_DROPS as usize])
    }
}

fn set_int_option(socket: &Socket, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a plain int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A classic BPF program over the IPv4 packet: keep unfragmented TCP segments whose destination port
/// is in `ports` and whose flags include ACK or RST.
fn reply_filter(ports: RangeInclusive<u16>) -> [SockFilter; 10] {
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const LD_B_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    const LDX_B_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Jump offsets count the instructions skipped; instruction 9 rejects.
    [
        // 0: flags and fragment offset; a later fragment holds no TCP header.
        SockFilter::new(LD_H_ABS, 0, 0, 6),
        SockFilter::new(JSET, 7, 0, 0x1fff),
        // 2: X = IP header length.
        SockFilter::new(LDX_B_MSH, 0, 0, 0),
        // 3: destination port within the range.
        SockFilter::new(LD_H_IND, 0, 0, 2),
        SockFilter::new(JGE, 0, 4, u32::from(*ports.start())),
        SockFilter::new(JGT, 3, 0, u32::from(*ports.end())),
        // 6: TCP flags carry ACK (0x10) or RST (0x04).
        SockFilter::new(LD_B_IND, 0, 0, 13),
        SockFilter::new(JSET, 0, 1, 0x14),
        SockFilter::new(RET, 0, 0, u32::MAX),
        SockFilter::new(RET, 0, 0, 0),
    ]
}

/// The fields of one SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
}

/// Writes SYNs as whole IPv4 packets, checksums included. The packet is laid out once, as a template
/// with every varying field zero (etherparse builds it from the headers' definitions); each SYN is
/// a copy with its addresses, ports and sequence number set, and both checksums completed from the
/// template's precomputed sums (RFC 1071: a one's-complement sum may be taken in any order, so the
/// varying words are simply added to the constant part).
pub struct SynWriter {
    template: [u8; SYN_LEN],
    /// One's-complement sums (unfolded) of the template's constant words: the IPv4 header's, and the
    /// TCP segment's with the pseudo-header's protocol and length.
    ip_sum: u32,
    tcp_sum: u32,
}

/// Where the varying fields sit in the packet.
const IP_CHECKSUM: usize = 10;
const IP_SOURCE: usize = 12;
const IP_DESTINATION: usize = 16;
const TCP: usize = 20;
const TCP_SOURCE_PORT: usize = TCP;
const TCP_DESTINATION_PORT: usize = TCP + 2;
const TCP_SEQUENCE: usize = TCP + 4;
const TCP_CHECKSUM: usize = TCP + 16;

impl Default for SynWriter {
    fn default() -> Self {
        let mut tcp = TcpHeader::new(0, 0, 0, u16::MAX);
        tcp.syn = true;
        tcp.set_options(&[TcpOptionElement::MaximumSegmentSize(1460)]).expect("one MSS option fits");
        let tcp_len = tcp.header_len_u16();
        let ip = Ipv4Header::new(tcp_len, 64, IpNumber::TCP, [0; 4], [0; 4]).expect("a 24-byte payload fits");
        let mut template = [0u8; SYN_LEN];
        let mut cursor = &mut template[..];
        ip.write(&mut cursor).expect("the buffer holds the IPv4 header");
        tcp.write(&mut cursor).expect("the buffer holds the TCP header");
        debug_assert!(cursor.is_empty());
        // The template's own checksums are not part of what is summed.
        template[IP_CHECKSUM..IP_CHECKSUM + 2].fill(0);
        template[TCP_CHECKSUM..TCP_CHECKSUM + 2].fill(0);
        let ip_sum = word_sum(&template[..TCP]);
        let tcp_sum = word_sum(&template[TCP..]) + u32::from(u8::from(IpNumber::TCP)) + u32::from(tcp_len);
        SynWriter { template, ip_sum, tcp_sum }
    }
}

impl SynWriter {
    pub fn write(&self, syn: &Syn, out: &mut [u8; SYN_LEN]) {
        *out = self.template;
        let (src, dst) = (syn.src.octets(), syn.dst.octets());
        out[IP_SOURCE..IP_SOURCE + 4].copy_from_slice(&src);
        out[IP_DESTINATION..IP_DESTINATION + 4].copy_from_slice(&dst);
        out[TCP_SOURCE_PORT..TCP_SOURCE_PORT + 2].copy_from_slice(&syn.src_port.to_be_bytes());
        out[TCP_DESTINATION_PORT..TCP_DESTINATION_PORT + 2].copy_from_slice(&syn.dst_port.to_be_bytes());
        out[TCP_SEQUENCE..TCP_SEQUENCE + 4].copy_from_slice(&syn.seq.to_be_bytes());
        // Both checksums cover the addresses (the TCP one through its pseudo-header).
        let addresses = word_sum(&src) + word_sum(&dst);
        let ip = fold(self.ip_sum + addresses);
        let tcp = fold(
            self.tcp_sum
                + addresses
                + u32::from(syn.src_port)
                + u32::from(syn.dst_port)
                + (syn.seq >> 16)
                + (syn.seq & 0xffff),
        );
        out[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&(!ip).to_be_bytes());
        out[TCP_CHECKSUM..TCP_CHECKSUM + 2].copy_from_slice(&(!tcp).to_be_bytes());
    }
}

/// The sum of `bytes` as big-endian 16-bit words (an even number of bytes), not yet folded.
fn word_sum(bytes: &[u8]) -> u32 {
    bytes.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum()
}

/// Folds carries back into 16 bits: the one's-complement sum.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// What a received TCP segment says, as far as discovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ack_number: u32,
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
}

/// Reads a whole IPv4 packet carrying a TCP segment; `None` for anything else or anything malformed.
pub fn parse_segment(packet: &[u8]) -> Option<Segment> {
    let ip = Ipv4Slice::from_slice(packet).ok()?;
    if ip.payload_ip_number() != IpNumber::TCP || ip.is_payload_fragmented() {
        return None;
    }
    let tcp = TcpSlice::from_slice(ip.payload().payload).ok()?;
    Some(Segment {
        src: ip.header().source_addr(),
        dst: ip.header().destination_addr(),
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        ack_number: tcp.acknowledgment_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        rst: tcp.rst(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_is_laid_out_byte_by_byte() {
        let syn = Syn {
            src: Ipv4Addr::new(127, 0, 0, 1),
            dst: Ipv4Addr::new(127, 9, 8, 7),
            src_port: 61234,
            dst_port: 502,
            seq: 0xdead_beef,
        };
        let mut packet = [0u8; SYN_LEN];
        let writer = SynWriter::default();
        // A first packet with other fields, so that nothing of it may linger in the second.
        let other = Syn {
            src: Ipv4Addr::new(127, 1, 1, 1),
            dst: Ipv4Addr::new(127, 2, 2, 2),
            src_port: 1,
            dst_port: 2,
            seq: 3,
        };
        writer.write(&other, &mut packet);
        writer.write(&syn, &mut packet);
        // IPv4: version 4, IHL 5; total length 44; DF; TTL 64; protocol 6; addresses.
        assert_eq!(packet[0], 0x45);
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 44);
        assert_eq!(packet[6] & 0x40, 0x40);
        assert_eq!(packet[8], 64);
        assert_eq!(packet[9], 6);
        assert_eq!(&packet[12..16], &[127, 0, 0, 1]);
        assert_eq!(&packet[16..20], &[127, 9, 8, 7]);
        // The IPv4 header checksum sums to 0xffff over the header.
        assert_eq!(ones_complement_sum(&packet[..20], 0), 0xffff);
        // TCP: ports, sequence number, no acknowledgement, data offset 6, SYN only, MSS 1460.
        let tcp = &packet[20..];
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 61234);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 502);
        assert_eq!(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]), 0xdead_beef);
        assert_eq!(&tcp[8..12], &[0, 0, 0, 0]);
        assert_eq!(tcp[12] >> 4, 6);
        assert_eq!(tcp[13], 0x02);
        assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4]);
        // The TCP checksum covers the pseudo-header (addresses, protocol, TCP length) and the segment.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&packet[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 24]);
        assert_eq!(ones_complement_sum(tcp, ones_complement_sum(&pseudo, 0)), 0xffff);
    }

    #[test]
    fn every_field_reaches_both_checksums() {
        let writer = SynWriter::default();
        let mut packet = [0u8; SYN_LEN];
        // Extremes of each varying field (all-ones words make the carries wrap), then mixtures.
        let fields = [
            ([127, 0, 0, 1], [127, 0, 0, 2], 1, 1, 0),
            ([127, 255, 255, 255], [127, 255, 255, 254], u16::MAX, u16::MAX, u32::MAX),
            ([127, 0, 255, 0], [127, 255, 0, 255], 0xff00, 0x00ff, 0xffff_0000),
            ([127, 18, 52, 86], [127, 120, 154, 188], 61000, 502, 0x8000_0001),
        ];
        for (src, dst, src_port, dst_port, seq) in fields {
            let syn = Syn { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), src_port, dst_port, seq };
            writer.write(&syn, &mut packet);
            assert_eq!(ones_complement_sum(&packet[..20], 0), 0xffff, "IPv4 checksum of {syn:?}");
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&packet[12..20]);
            pseudo.extend_from_slice(&[0, 6, 0, 24]);
            let tcp = &packet[20..];
            assert_eq!(ones_complement_sum(tcp, ones_complement_sum(&pseudo, 0)), 0xffff, "TCP checksum of {syn:?}");
            let s = parse_segment(&packet).expect("a TCP segment");
            assert_eq!((s.src, s.dst, s.src_port, s.dst_port), (syn.src, syn.dst, src_port, dst_port));
        }
    }

    fn ones_complement_sum(bytes: &[u8], start: u16) -> u16 {
        let mut sum = u32::from(start);
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn a_reply_is_read_back() {
        let syn = Syn {
            src: Ipv4Addr::new(127, 1, 2, 3),
            dst: Ipv4Addr::new(127, 0, 0, 1),
            src_port: 502,
            dst_port: 61000,
            seq: 7,
        };
        let mut packet = [0u8; SYN_LEN];
        SynWriter::default().write(&syn, &mut packet);
        let s = parse_segment(&packet).expect("a TCP segment");
        assert_eq!((s.src, s.dst, s.src_port, s.dst_port), (syn.src, syn.dst, 502, 61000));
        assert!(s.syn && !s.ack && !s.rst);
        // Truncated, not TCP, or a later fragment: nothing.
        assert_eq!(parse_segment(&packet[..30]), None);
        let mut udp = packet;
        udp[9] = 17;
        assert_eq!(parse_segment(&udp), None);
        let mut fragment = packet;
        fragment[6] = 0x00;
        fragment[7] = 0x10;
        assert_eq!(parse_segment(&fragment), None);
        assert_eq!(parse_segment(&[]), None);
    }
}
