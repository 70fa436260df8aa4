//! HTTP/1.x (RFC 9110, 9112): `GET /`, the status line, a few headers and the page title.
//!
//! The request is a plain read of the root page; redirects are reported (`location`), never
//! followed. HTTP is a text protocol, so the identification strategy never sends it to a known ICS
//! port without `--deep` ([`Probe::sends_text`]).

use super::text::decode_references;
use super::{printable, Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};
use crate::scope::Target;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const PROTOCOL: &str = "http";

/// Largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Header lines read from one head.
const MAX_HEADERS: usize = 100;
/// Body bytes read (after de-chunking).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Chunks read from a chunked body.
const MAX_CHUNKS: usize = 1024;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 4;
/// Bytes of the body searched for a `<meta charset>`.
const CHARSET_WINDOW: usize = 4096;
/// Raw bytes of a title considered, and characters kept of it.
const MAX_TITLE_RAW: usize = 4096;
const MAX_TITLE_CHARS: usize = 256;
/// Characters kept of a header value.
const MAX_VALUE_CHARS: usize = 512;

/// The request: the root page, identifying the scanner, asking the server to close afterwards.
pub fn request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: otscope\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The Host header for a target: its hostname when it has a clean one, else its address; the port
/// is added unless it is the scheme's default.
pub fn host_header(target: &Target, tls: bool) -> String {
    let clean = |h: &&str| {
        !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let host = match (target.hostname().filter(clean), target.addr()) {
        (Some(h), _) => h.to_string(),
        (None, IpAddr::V6(a)) => format!("[{a}]"),
        (None, a) => a.to_string(),
    };
    let default = if tls { 443 } else { 80 };
    if target.port() == default {
        host
    } else {
        format!("{host}:{}", target.port())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated HTTP response head")]
    Incomplete,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> ParseError {
    ParseError::Invalid(why.into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The minor version of `HTTP/1.x`.
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The body as received (de-chunked), at most [`BODY_LIMIT`] bytes; possibly cut short.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `HTTP/1.x NNN[ reason]` → (minor, status, reason).
fn parse_status_line(line: &[u8]) -> Result<(u8, u16, String), ParseError> {
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(|| invalid("status line is not HTTP/1.x"))?;
    let (minor, rest) = match rest {
        [m, b' ', rest @ ..] if m.is_ascii_digit() => (m - b'0', rest),
        _ => return Err(invalid("malformed HTTP version")),
    };
    let (code, reason) = match rest {
        [a, b, c, tail @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let reason = match tail {
                [] => &[][..],
                [b' ', reason @ ..] => reason,
                _ => return Err(invalid("malformed HTTP status code")),
            };
            ((*a - b'0') as u16 * 100 + (*b - b'0') as u16 * 10 + (*c - b'0') as u16, reason)
        }
        _ => return Err(invalid("malformed HTTP status code")),
    };
    if !(100..=599).contains(&code) {
        return Err(invalid("HTTP status code out of range"));
    }
    Ok((minor, code, header_text(reason)))
}

/// Bytes of a header as text: UTF-8 when valid, else ISO-8859-1 (the historical default of HTTP).
fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Finds the end of a response head starting at `from`: the position after its blank line.
/// `Ok(None)` while the head is incomplete. The status line is validated as soon as it is whole.
fn head_end(buf: &[u8], from: usize, max_head: usize) -> Result<Option<usize>, ParseError> {
    let start = buf.get(from..).unwrap_or_default();
    let prefix = b"HTTP/1.";
    let n = start.len().min(prefix.len());
    if start[..n] != prefix[..n] {
        return Err(invalid("reply does not start with HTTP/1."));
    }
    let mut pos = 0;
    for i in 0..=MAX_HEADERS + 1 {
        let window = start.get(pos..).unwrap_or_default();
        let Some(nl) = window.iter().take(max_head.saturating_sub(pos) + 1).position(|&b| b == b'\n') else {
            // No line end within the limit: once the limit's bytes are in, the head cannot end in it.
            if start.len() < max_head {
                return Ok(None);
            }
            // A valid status line and a header too large to read whole (a 100 KB `Server:`): the head
            // is cut at the limit and read as far as it goes (see `is_cut`). Anything else is not HTTP.
            let header_name = window.iter().position(|&b| b == b':').map(|colon| &window[..colon]);
            return match header_name {
                Some(name) if i > 0 && !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()) => {
                    Ok(Some(from + max_head))
                }
                _ => Err(invalid("HTTP response head too large")),
            };
        };
        let line = &window[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if i == 0 {
            parse_status_line(line)?;
        } else if line.is_empty() {
            return Ok(Some(from + pos + nl + 1));
        }
        pos += nl + 1;
    }
    Err(invalid("too many HTTP header lines"))
}

/// Whether a head was cut at the size limit rather than ended by its blank line: its last header is
/// partial and its body unknown.
fn is_cut(head: &[u8]) -> bool {
    !(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"))
}

fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for line in head.split(|&b| b == b'\n').skip(1).take(MAX_HEADERS) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
            continue;
        }
        let value = header_text(&line[colon + 1..]);
        headers.push((header_text(name), value.trim().to_string()));
    }
    headers
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

fn body_kind(status: u16, head: &[u8], headers: &[(String, String)]) -> BodyKind {
    if status < 200 || status == 204 || status == 304 || is_cut(head) {
        return BodyKind::Empty;
    }
    let chunked = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .any(|(_, v)| v.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")));
    if chunked {
        return BodyKind::Chunked;
    }
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .map_or(BodyKind::UntilClose, BodyKind::Length)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunks {
    /// The body ended (last chunk and trailers read, or the limit reached) after this many bytes.
    Done(usize),
    NeedMore,
    /// The chunk framing broke after this many bytes: what came before is kept.
    Broken(usize),
}

/// One line from `pos` (without `\r\n`), and the position after it; `None` when not yet whole.
fn line_from(raw: &[u8], pos: usize, max: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = raw.get(pos..).unwrap_or_default();
    match rest.iter().take(max + 1).position(|&b| b == b'\n') {
        Some(n) => {
            let line = &rest[..n];
            Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), pos + n + 1)))
        }
        None if rest.len() > max => Err(()),
        None => Ok(None),
    }
}

/// Decodes a chunked body (RFC 9112 §7.1), keeping at most `limit` bytes.
fn dechunk(raw: &[u8], limit: usize) -> (Vec<u8>, Chunks) {
    let mut out = Vec::new();
    let mut pos = 0;
    for _ in 0..MAX_CHUNKS {
        let (line, after) = match line_from(raw, pos, 256) {
            Ok(Some(l)) => l,
            Ok(None) => return (out, Chunks::NeedMore),
            Err(()) => return (out, Chunks::Broken(pos)),
        };
        let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        let size = match std::str::from_utf8(digits).ok().filter(|d| !d.is_empty() && d.len() <= 15) {
            Some(d) => match usize::from_str_radix(d, 16) {
                Ok(s) => s,
                Err(_) => return (out, Chunks::Broken(pos)),
            },
            None => return (out, Chunks::Broken(pos)),
        };
        pos = after;
        if size == 0 {
            // Trailer fields, then the blank line.
            for _ in 0..MAX_HEADERS {
                match line_from(raw, pos, 8192) {
                    Ok(Some((&[], after))) => return (out, Chunks::Done(after)),
                    Ok(Some((_, after))) => pos = after,
                    Ok(None) => return (out, Chunks::NeedMore),
                    Err(()) => return (out, Chunks::Broken(pos)),
                }
            }
            return (out, Chunks::Broken(pos));
        }
        let available = raw.len() - pos;
        let room = limit - out.len();
        if room <= size.min(available) {
            out.extend_from_slice(&raw[pos..pos + room]);
            return (out, Chunks::Done(pos + room));
        }
        if available < size {
            out.extend_from_slice(&raw[pos..]);
            return (out, Chunks::NeedMore);
        }
        out.extend_from_slice(&raw[pos..pos + size]);
        pos += size;
        match (raw.get(pos), raw.get(pos + 1)) {
            (Some(b'\n'), _) => pos += 1,
            (Some(b'\r'), Some(b'\n')) => pos += 2,
            (None, _) | (Some(b'\r'), None) => return (out, Chunks::NeedMore),
            _ => return (out, Chunks::Broken(pos)),
        }
    }
    (out, Chunks::Broken(pos))
}

/// The final response's head: (start of its status line, end of its head), skipping interim 1xx.
fn final_head(buf: &[u8], max_head: usize) -> Result<Option<(usize, usize)>, ParseError> {
    let mut start = 0;
    for _ in 0..=MAX_INTERIM {
        let Some(end) = head_end(buf, start, max_head)? else { return Ok(None) };
        let line = buf[start..end].split(|&b| b == b'\n').next().unwrap_or_default();
        let (_, status, _) = parse_status_line(line.strip_suffix(b"\r").unwrap_or(line))?;
        if (100..200).contains(&status) && status != 101 {
            start = end;
            continue;
        }
        return Ok(Some((start, end)));
    }
    Err(invalid("too many interim responses"))
}

/// The framing function for [`crate::net::Conn::recv_frame`]: the whole response, or as much as
/// `cap` bytes of it. A body delimited by the connection's close never completes here; the driver
/// takes what arrived when the peer closes.
pub fn frame(buf: &[u8], cap: usize) -> Frame {
    let max_head = MAX_HEAD.min(cap);
    let (start, end) = match final_head(buf, max_head) {
        Ok(Some(h)) => h,
        Ok(None) => return Frame::Incomplete,
        Err(ParseError::Invalid(why)) => return Frame::Invalid(why),
        Err(ParseError::Incomplete) => return Frame::Incomplete,
    };
    let headers = parse_headers(&buf[start..end]);
    let status = parse_status_line(first_line(&buf[start..end])).map(|s| s.1).unwrap_or(200);
    let complete = match body_kind(status, &buf[start..end], &headers) {
        BodyKind::Empty => Some(end),
        BodyKind::Length(n) => Some(end.saturating_add(n.min(BODY_LIMIT))).filter(|&need| buf.len() >= need),
        BodyKind::Chunked => match dechunk(&buf[end..], BODY_LIMIT).1 {
            Chunks::Done(n) | Chunks::Broken(n) => Some(end + n),
            Chunks::NeedMore => None,
        },
        BodyKind::UntilClose => Some(end + BODY_LIMIT).filter(|&need| buf.len() >= need),
    };
    match complete {
        Some(n) => Frame::Complete(n.min(buf.len())),
        None if buf.len() >= cap => Frame::Complete(cap),
        None => Frame::Incomplete,
    }
}

fn first_line(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a response whose head is whole; the body may be cut short.
pub fn parse_response(buf: &[u8]) -> Result<Response, ParseError> {
    let (start, end) = final_head(buf, MAX_HEAD)?.ok_or(ParseError::Incomplete)?;
    let (minor, status, reason) = parse_status_line(first_line(&buf[start..end]))?;
    let headers = parse_headers(&buf[start..end]);
    let raw = &buf[end..];
    let body = match body_kind(status, &buf[start..end], &headers) {
        BodyKind::Empty => Vec::new(),
        BodyKind::Length(n) => raw[..raw.len().min(n).min(BODY_LIMIT)].to_vec(),
        BodyKind::Chunked => dechunk(raw, BODY_LIMIT).0,
        BodyKind::UntilClose => raw[..raw.len().min(BODY_LIMIT)].to_vec(),
    };
    Ok(Response { minor, status, reason, headers, body })
}

/// Case-insensitive ASCII search.
fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let hay = hay.get(from..)?;
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle)).map(|p| p + from)
}

/// The charset named by a Content-Type value or a `<meta>` of the page.
fn charset(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let from_text = |text: &[u8]| {
        let at = find_ci(text, b"charset=", 0)? + b"charset=".len();
        let rest = &text[at..];
        let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
        let name: Vec<u8> = rest
            .iter()
            .take(40)
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
            .copied()
            .collect();
        (!name.is_empty()).then(|| String::from_utf8_lossy(&name).to_ascii_lowercase())
    };
    content_type.and_then(|ct| from_text(ct.as_bytes())).or_else(|| from_text(&body[..body.len().min(CHARSET_WINDOW)]))
}

/// Page text as characters: ISO-8859-1 pages mapped byte for byte, UTF-8 as is, anything else
/// (GBK, Shift_JIS, ...) with its non-UTF-8 bytes shown as `\xNN` rather than guessed.
fn decode_text(bytes: &[u8], charset: Option<&str>) -> String {
    let latin = matches!(
        charset,
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" | "us-ascii" | "ascii")
    );
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) if latin => bytes.iter().map(|&b| b as char).collect(),
        Err(_) => printable(bytes),
    }
}

/// Decodes the HTML character references that appear in titles.
pub fn decode_entities(text: &str) -> String {
    decode_references(text, '&', 2..=10, entity)
}

/// The character an HTML character reference (`amp`, `#233`, `#xE9`, ...) stands for.
fn entity(name: &str) -> Option<char> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        _ => {
            let code = match name.strip_prefix('#') {
                Some(hex) if hex.starts_with(['x', 'X']) => u32::from_str_radix(&hex[1..], 16).ok()?,
                Some(dec) => dec.parse::<u32>().ok()?,
                None => return None,
            };
            char::from_u32(code)?
        }
    };
    Some(c)
}

/// The text of the page's first `<title>`, decoded, with whitespace collapsed.
pub fn title(body: &[u8], content_type: Option<&str>) -> Option<String> {
    let mut from = 0;
    let open = loop {
        let at = find_ci(body, b"<title", from)?;
        match body.get(at + 6) {
            Some(b'>' | b' ' | b'\t' | b'\r' | b'\n') => break at,
            _ => from = at + 6,
        }
    };
    let start = open + body[open..].iter().position(|&b| b == b'>')? + 1;
    let window = &body[start..body.len().min(start + MAX_TITLE_RAW)];
    let end = find_ci(window, b"</title", 0).or_else(|| window.iter().position(|&b| b == b'<')).unwrap_or(window.len());
    let text = decode_text(&window[..end], charset(content_type, body).as_deref());
    let text = decode_entities(&text);
    let collapsed: String =
        text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_TITLE_CHARS).collect();
    (!collapsed.is_empty()).then_some(collapsed)
}

/// The realm of a `WWW-Authenticate` challenge.
pub fn realm(challenge: &str) -> Option<String> {
    let at = find_ci(challenge.as_bytes(), b"realm=", 0)? + "realm=".len();
    let rest = challenge.get(at..)?;
    let value: String = match rest.strip_prefix('"') {
        Some(quoted) => {
            let mut v = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => v.extend(chars.next()),
                    c => v.push(c),
                }
            }
            v
        }
        None => rest.chars().take_while(|c| *c != ',' && !c.is_whitespace()).collect(),
    };
    let value = value.trim().to_string();
    (!value.is_empty()).then_some(value)
}

fn clip(value: &str) -> String {
    value.trim().chars().take(MAX_VALUE_CHARS).collect()
}

/// The identity a parsed response establishes.
pub fn identity(r: &Response) -> Identity {
    let mut id = Identity::new(PROTOCOL, false);
    id.field("status", r.status);
    for (header, field) in [
        ("server", "server"),
        ("content-type", "content_type"),
        ("location", "location"),
        ("www-authenticate", "www_authenticate"),
        ("x-powered-by", "powered_by"),
    ] {
        if let Some(v) = r.header(header) {
            id.field(field, clip(v));
        }
    }
    if let Some(realm) = r.header("www-authenticate").and_then(realm) {
        id.field("realm", clip(&realm));
    }
    if let Some(t) = title(&r.body, r.header("content-type")) {
        id.field("title", t);
    }
    id
}

pub const PROBE: Probe = Probe::service(PROTOCOL, |session| Box::pin(run(session)))
    .tcp(&[80, 8080, 8000, 8081, 8888])
    .tls(&[443, 8443])
    .text()
    .recognises(recognise);

/// A web server's answer to a request that was not HTTP (the `400 Bad Request` page a web server
/// on port 502 sends back to a Modbus request): an HTTP response whose head is whole.
fn recognise(reply: &[u8]) -> Option<Identity> {
    parse_response(reply).ok().map(|r| identity(&r))
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let request = request(&host_header(session.target(), session.is_tls()));
    let conn = session.conn();
    let cap = conn.limits().max_frame;
    conn.send(&request).await?;
    let seen = AtomicUsize::new(0);
    let raw = match conn
        .recv_frame(|b: &[u8]| {
            seen.store(b.len(), Ordering::Relaxed);
            frame(b, cap)
        })
        .await
    {
        Ok(raw) => raw,
        // A body delimited by the close of the connection (or a server that ignores
        // `Connection: close`): what arrived is the response when its head is whole.
        Err(e @ (NetError::Closed(_) | NetError::Timeout(_) | NetError::Io(_))) if seen.load(Ordering::Relaxed) > 0 => {
            let all = |b: &[u8]| if b.is_empty() { Frame::Incomplete } else { Frame::Complete(b.len()) };
            match conn.recv_frame(all).await {
                Ok(raw) if matches!(final_head(&raw, MAX_HEAD.min(cap)), Ok(Some(_))) => raw,
                _ => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let response = parse_response(&raw).map_err(|e| ProbeError::not(PROTOCOL, e.to_string()))?;
    Ok(identity(&response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAP: usize = 64 * 1024;

    #[test]
    fn request_bytes() {
        assert_eq!(
            request("10.0.0.5:8080"),
            b"GET / HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: otscope\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    /// A WAGO 750-8xx controller's start page, as its web server sends it.
    const WAGO: &[u8] = b"HTTP/1.1 200 OK\r\nServer: lighttpd/1.4.59\r\nContent-Type: text/html\r\nContent-Length: 201\r\n\r\n\
<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<html>\n<head>\n<title>WAGO Ethernet Web-Based Management</title>\n\
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\n";

    #[test]
    fn a_page_with_a_title() {
        let body_len = WAGO.len() - WAGO.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;
        assert_eq!(body_len, 201, "the example's Content-Length");
        assert_eq!(frame(WAGO, CAP), Frame::Complete(WAGO.len()));
        for n in 0..WAGO.len() {
            assert_eq!(frame(&WAGO[..n], CAP), Frame::Incomplete, "at {n}");
        }
        let r = parse_response(WAGO).unwrap();
        assert_eq!((r.minor, r.status, r.reason.as_str()), (1, 200, "OK"));
        let id = identity(&r);
        assert_eq!(
            serde_json::Value::Object(id.fields),
            json!({
                "status": 200, "server": "lighttpd/1.4.59", "content_type": "text/html",
                "title": "WAGO Ethernet Web-Based Management"
            })
        );
    }

    #[test]
    fn titles_are_decoded_and_collapsed() {
        let t = |body: &[u8], ct: Option<&str>| title(body, ct);
        assert_eq!(
            t(b"<title>SIMATIC&nbsp;1200&nbsp;station_1</title>", None).as_deref(),
            Some("SIMATIC 1200 station_1")
        );
        assert_eq!(
            t(b"<TITLE lang=en>\r\n  A &amp; B &#8211; &#x41;&lt;&gt;  </TITLE>", None).as_deref(),
            Some("A & B \u{2013} A<>")
        );
        assert_eq!(t(b"<titlebar>x</titlebar><title>Real</title>", None).as_deref(), Some("Real"));
        assert_eq!(
            t(b"<title>Bedienoberfl\xe4che</title>", Some("text/html; charset=ISO-8859-1")).as_deref(),
            Some("Bedienoberfläche")
        );
        assert_eq!(t(b"<meta charset=\"windows-1252\"><title>Stra\xdfe</title>", None).as_deref(), Some("Straße"));
        // GBK bytes without a decoder: shown, not guessed.
        assert_eq!(t(b"<meta charset=gbk><title>\xb1\xc3</title>", None).as_deref(), Some("\\xb1\\xc3"));
        assert_eq!(t("<title>泵站 HMI</title>".as_bytes(), None).as_deref(), Some("泵站 HMI"));
        assert_eq!(t(b"<title>   </title>", None), None);
        assert_eq!(t(b"<html>no title</html>", None), None);
        assert_eq!(t(b"<title>cut short", None).as_deref(), Some("cut short"));
        assert_eq!(
            t(b"<title>&bogus; &amp &#xZZ; &#99999999;</title>", None).as_deref(),
            Some("&bogus; &amp &#xZZ; &#99999999;")
        );
        let long = format!("<title>{}</title>", "x ".repeat(1000));
        assert_eq!(t(long.as_bytes(), None).unwrap().chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn chunked_bodies() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
7\r\n<title>\r\n5;ext=1\r\nNiaga\r\nA\r\nra 4</titl\r\n2\r\ne>\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(frame(resp, CAP), Frame::Complete(resp.len()));
        for n in 0..resp.len() {
            assert_eq!(frame(&resp[..n], CAP), Frame::Incomplete, "at {n}");
        }
        let r = parse_response(resp).unwrap();
        assert_eq!(r.body, b"<title>Niagara 4</title>");
        assert_eq!(identity(&r).fields["title"], "Niagara 4");
        // Truncated mid-chunk: the bytes so far are kept.
        let cut = resp.len() - 28;
        assert!(resp[..cut].ends_with(b"</titl"));
        let r = parse_response(&resp[..cut]).unwrap();
        assert_eq!(r.body, b"<title>Niagara 4</titl");
        // A broken chunk size ends the body where it broke.
        let broken = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nmore";
        assert!(matches!(frame(broken, CAP), Frame::Complete(_)));
        assert_eq!(parse_response(broken).unwrap().body, b"abc");
        // A chunk that claims an absurd size is cut at the limit, never allocated.
        let (body, state) = dechunk(b"ffffffffffffff\r\nabc", BODY_LIMIT);
        assert_eq!((body.as_slice(), state), (&b"abc"[..], Chunks::NeedMore));
        let (_, state) = dechunk(b"fffffffffffffffffff\r\nabc", BODY_LIMIT);
        assert_eq!(state, Chunks::Broken(0));
        let big = [b"10000\r\n".as_slice(), &vec![b'a'; 70_000]].concat();
        let (body, state) = dechunk(&big, BODY_LIMIT);
        assert_eq!((body.len(), state), (BODY_LIMIT, Chunks::Done(7 + BODY_LIMIT)));
    }

    #[test]
    fn bodies_without_length_and_caps() {
        let resp = b"HTTP/1.0 200 OK\r\nServer: GoAhead-Webs\r\n\r\n<title>x</title>";
        assert_eq!(frame(resp, CAP), Frame::Incomplete, "ends with the connection");
        assert_eq!(parse_response(resp).unwrap().body, b"<title>x</title>");
        assert_eq!(frame(resp, 50), Frame::Complete(50), "never more than the cap");
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{}", "a".repeat(100));
        assert_eq!(frame(huge.as_bytes(), 80), Frame::Complete(80));
        let no_body = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n";
        assert_eq!(frame(no_body, CAP), Frame::Complete(no_body.len()));
        let redirect = b"HTTP/1.1 302 Found\r\nLocation: /Portal/Portal.mwsl\r\nContent-Length: 0\r\n\r\n";
        let r = parse_response(redirect).unwrap();
        assert_eq!(identity(&r).fields["location"], "/Portal/Portal.mwsl");
    }

    #[test]
    fn interim_responses_are_skipped() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Schneider Web\"\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(resp, CAP), Frame::Complete(resp.len()));
        let id = identity(&parse_response(resp).unwrap());
        assert_eq!(
            serde_json::Value::Object(id.fields),
            json!({ "status": 401, "www_authenticate": "Basic realm=\"Schneider Web\"", "realm": "Schneider Web" })
        );
    }

    #[test]
    fn realms() {
        assert_eq!(realm("Basic realm=\"WAGO \\\"PFC\\\"\"").as_deref(), Some("WAGO \"PFC\""));
        assert_eq!(realm("Digest REALM=GoAhead, nonce=\"1\"").as_deref(), Some("GoAhead"));
        assert_eq!(realm("Bearer"), None);
        assert_eq!(realm("Basic realm=\"\""), None);
    }

    #[test]
    fn non_http_replies_are_invalid() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 OK 200\r\n\r\n",
            b"HTTP/1.1 20\r\n\r\n",
            b"HTTP/1.1 999 Nope\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"\x03\x00\x00\x16\x11\xd0",
            b"http/1.1 200 OK\r\n\r\n",
        ] {
            assert!(matches!(frame(bad, CAP), Frame::Invalid(_)), "{:?}", String::from_utf8_lossy(bad));
            assert!(parse_response(bad).is_err());
        }
        let too_big = [b"HTTP/1.1 200 OK\r\n".as_slice(), &vec![b'a'; MAX_HEAD + 10]].concat();
        assert!(matches!(frame(&too_big, CAP), Frame::Invalid(_)));
        // A header too large to read whole is cut at the limit: the response is read as far as it goes.
        let huge = [b"HTTP/1.1 200 OK\r\nServer: ".as_slice(), &vec![b'a'; 100 * 1024], b"\r\n\r\n"].concat();
        assert_eq!(frame(&huge, CAP), Frame::Complete(MAX_HEAD));
        let response = parse_response(&huge).unwrap();
        assert_eq!((response.status, response.body.len()), (200, 0));
        let server = &identity(&response).fields["server"];
        assert_eq!(server.as_str().unwrap().len(), MAX_VALUE_CHARS);
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_HEADERS + 1 {
            many.extend_from_slice(b"X: y\r\n");
        }
        assert!(matches!(frame(&many, CAP), Frame::Invalid(_)));
    }

    #[test]
    fn headers_are_tolerant() {
        let resp = b"HTTP/1.1 200\nserver:  Niagara Web Server/4.1.27.20 \nbogus line\nX-Powered-By: PHP/5.4\nContent-Length: 0\n\n";
        let r = parse_response(resp).unwrap();
        assert_eq!(r.reason, "");
        let id = identity(&r);
        assert_eq!(id.fields["server"], "Niagara Web Server/4.1.27.20");
        assert_eq!(id.fields["powered_by"], "PHP/5.4");
        let latin = b"HTTP/1.1 200 OK\r\nServer: Caf\xe9\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(identity(&parse_response(latin).unwrap()).fields["server"], "Café");
    }
}
