//! Niagara Fox (Tridium): the `hello` exchange that opens every Fox session.
//!
//! Fox is a text protocol. A message is an envelope line `fox <type> <seq> <reply> <channel> <command>`,
//! a body `{` ... `}` of `name=<type char>:<value>` lines, and the terminator `;;`:
//!
//! ```text
//! fox a 0 -1 fox hello
//! {
//! fox.version=s:1.0.1
//! hostName=s:jace-01
//! ...
//! };;
//! ```
//!
//! Value types seen in hellos: `s` string, `i` integer, `z` boolean, and `o` an encoded object
//! (`sysInfo=o:bog 61[<61 bytes>]`, whose bytes may span lines). Strings escape special characters
//! as `#<hex>;`.
//!
//! The probe sends the client's hello and reads the station's hello, then closes: that is the first
//! step of every Workbench connection and touches nothing in the station (no login, no channel opened).

use super::text::decode_references;
use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};

pub const PROTOCOL: &str = "fox";

/// Longest envelope line accepted (`fox a 0 -1 fox hello` is 20 bytes).
const MAX_ENVELOPE: usize = 128;
/// Body lines accepted in one message.
const MAX_LINES: usize = 256;
/// Longest body line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Largest encoded object (`o:` value) accepted.
const MAX_OBJECT: usize = 60 * 1024;
/// Characters kept of one value in a finding.
const MAX_VALUE_CHARS: usize = 512;

/// The client hello: the protocol version and an id, plus who is asking. A station answers any hello
/// with its own; nothing more is sent (no credentials, no channel).
pub fn hello_request() -> Vec<u8> {
    format!(
        "fox a 1 -1 fox hello\n{{\nfox.version=s:1.0\nid=i:1\napp.name=s:otscope\napp.version=s:{}\nlang=s:en\n}};;\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// The envelope line of a Fox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The message type letter (`a` in every hello seen).
    pub kind: char,
    pub seq: i64,
    pub reply: i64,
    pub channel: String,
    pub command: String,
}

/// One `name=<type>:<value>` line of a body. Objects (`o:`) keep only their encoding name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub name: String,
    pub kind: char,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub envelope: Envelope,
    pub values: Vec<Value>,
}

impl Message {
    /// The first value of this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|v| v.name == name).map(|v| v.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated Fox message")]
    Incomplete,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> ParseError {
    ParseError::Invalid(why.into())
}

/// The framing function for [`crate::net::Conn::recv_frame`]: one whole message, up to its `};;` line.
pub fn frame(buf: &[u8]) -> Frame {
    match scan(buf) {
        Ok((len, _)) => Frame::Complete(len),
        Err(ParseError::Incomplete) => Frame::Incomplete,
        Err(ParseError::Invalid(why)) => Frame::Invalid(why),
    }
}

/// Parses the first message of `buf`.
pub fn parse_message(buf: &[u8]) -> Result<Message, ParseError> {
    scan(buf).map(|(_, m)| m)
}

/// The next line of `buf` from `pos`, without its `\n` (and `\r`), and the position after it.
fn line_at(buf: &[u8], pos: usize, max: usize) -> Result<(&[u8], usize), ParseError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.iter().take(max + 1).position(|&b| b == b'\n') {
        Some(n) => {
            let line = &rest[..n];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok((line, pos + n + 1))
        }
        None if rest.len() > max => Err(invalid("line too long for a Fox message")),
        None => Err(ParseError::Incomplete),
    }
}

fn scan(buf: &[u8]) -> Result<(usize, Message), ParseError> {
    // Reject early what can never be Fox, so a foreign reply fails fast instead of timing out.
    let prefix = b"fox ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return Err(invalid("reply does not start with \"fox \""));
    }
    let (line, mut pos) = line_at(buf, 0, MAX_ENVELOPE)?;
    let envelope = parse_envelope(line)?;
    let (open, next) = line_at(buf, pos, MAX_LINE)?;
    if open != b"{" {
        return Err(invalid("Fox envelope not followed by '{'"));
    }
    pos = next;
    let mut values = Vec::new();
    for _ in 0..MAX_LINES {
        let (line, next) = line_at(buf, pos, MAX_LINE)?;
        if line == b"};;" {
            return Ok((next, Message { envelope, values }));
        }
        if let Some((name, kind, after_colon)) = split_value(line) {
            let raw = &line[after_colon..];
            if let Some(open) = raw.iter().position(|&b| b == b'[').filter(|_| kind == 'o') {
                // `name=o:<encoding> <length>[<length bytes>]`: the bytes may hold newlines.
                let (encoding, end) = skip_object(buf, &raw[..open], pos + after_colon + open + 1)?;
                values.push(Value { name, kind, value: encoding });
                pos = end;
                continue;
            }
            values.push(Value { name, kind, value: unescape(raw) });
        }
        // Other lines (nested structures of newer stations) are skipped, not judged.
        pos = next;
    }
    Err(invalid("too many lines in a Fox message"))
}

fn parse_envelope(line: &[u8]) -> Result<Envelope, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("Fox envelope is not text"))?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [fox, kind, seq, reply, channel, command] = parts.as_slice() else {
        return Err(invalid("Fox envelope does not have six fields"));
    };
    let word = |s: &str| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let mut kind_chars = kind.chars();
    let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
        return Err(invalid("Fox message type is not one letter"));
    };
    if *fox != "fox" || !kind.is_ascii_lowercase() || !word(channel) || !word(command) {
        return Err(invalid("malformed Fox envelope"));
    }
    let number = |s: &str| s.parse::<i64>().ok().filter(|_| s.len() <= 11);
    let (Some(seq), Some(reply)) = (number(seq), number(reply)) else {
        return Err(invalid("Fox sequence numbers are not integers"));
    };
    Ok(Envelope { kind, seq, reply, channel: channel.to_string(), command: command.to_string() })
}

/// `name=t:...` → (name, type char, offset of the value in the line).
fn split_value(line: &[u8]) -> Option<(String, char, usize)> {
    let eq = line.iter().take(128).position(|&b| b == b'=')?;
    let name = &line[..eq];
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return None;
    }
    let kind = *line.get(eq + 1)?;
    if !kind.is_ascii_alphabetic() || line.get(eq + 2) != Some(&b':') {
        return None;
    }
    Some((String::from_utf8_lossy(name).into_owned(), kind as char, eq + 3))
}

/// Skips an encoded object whose head (`bog 61`) precedes a `[` and whose bytes start at `body`:
/// returns its encoding name and the position after its closing `]` and newline.
fn skip_object(buf: &[u8], head: &[u8], body: usize) -> Result<(String, usize), ParseError> {
    let malformed = || invalid("malformed Fox object value");
    let head = std::str::from_utf8(head).map_err(|_| malformed())?;
    let (encoding, length) = head.rsplit_once(' ').ok_or_else(malformed)?;
    let length: usize = length.parse().map_err(|_| malformed())?;
    if length > MAX_OBJECT {
        return Err(invalid("Fox object larger than the limit"));
    }
    let close = body + length;
    match (buf.get(close), buf.get(close + 1)) {
        (Some(b']'), Some(b'\n')) => Ok((encoding.to_string(), close + 2)),
        (Some(b']'), None) | (None, _) => Err(ParseError::Incomplete),
        _ => Err(invalid("Fox object length does not match its bytes")),
    }
}

/// Decodes `#<hex>;` escapes; everything else is kept (bytes that are not UTF-8 are replaced).
fn unescape(raw: &[u8]) -> String {
    let hex = |code: &str| char::from_u32(u32::from_str_radix(code, 16).ok()?);
    decode_references(&String::from_utf8_lossy(raw), '#', 1..=6, hex)
}

fn clip(value: &str) -> String {
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    value.chars().take(MAX_VALUE_CHARS).collect()
}

/// The hello fields reported, by their Fox names.
const FIELDS: &[(&str, &str)] = &[
    ("fox.version", "fox_version"),
    ("hostName", "host_name"),
    ("hostAddress", "host_address"),
    ("app.name", "app_name"),
    ("app.version", "app_version"),
    ("vm.name", "vm_name"),
    ("vm.version", "vm_version"),
    ("os.name", "os_name"),
    ("os.version", "os_version"),
    ("station.name", "station_name"),
    ("lang", "lang"),
    ("hostId", "host_id"),
    ("vmUuid", "vm_uuid"),
    ("brandId", "brand_id"),
    ("authAgentTypeSpecs", "auth_agent_type"),
    ("fatal", "fatal"),
];

/// The identity a station's message establishes.
pub fn identity(message: &Message) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    for (fox_name, field) in FIELDS {
        if let Some(v) = message.get(fox_name) {
            id.field(field, clip(v));
        }
    }
    // timeZone=s:America/Chicago;-21600000;3600000;<DST rules>: the zone id comes first.
    if let Some(tz) = message.get("timeZone") {
        id.field("time_zone", clip(tz.split(';').next().unwrap_or_default()));
    }
    if message.envelope.command != "hello" {
        id.field("fox_command", message.envelope.command.clone());
    }
    id
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[1911]).tls(&[4911]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let request = hello_request();
    let reply = session.conn().exchange(&request, frame).await?;
    if reply == request {
        return Err(ProbeError::not(PROTOCOL, "the reply is an echo of the hello"));
    }
    let message = parse_message(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.to_string()))?;
    if message.envelope.channel != "fox" {
        return Err(ProbeError::not(PROTOCOL, "the reply is not on the fox channel"));
    }
    Ok(identity(&message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A station hello as a QNX JACE sends it (the layout of public captures of AX 3.8 stations).
    const JACE: &[u8] = b"fox a 0 -1 fox hello\n{\nfox.version=s:1.0.1\nid=i:122\nhostName=s:10.17.40.40\n\
hostAddress=s:10.17.40.40\napp.name=s:Station\napp.version=s:3.8.213\nvm.name=s:Java HotSpot(TM) Client VM\n\
vm.version=s:1.5.0_81-b06\nos.name=s:QNX\nos.version=s:6.4.1\nstation.name=s:Honeywell\nlang=s:en\n\
timeZone=s:EST5EDT;-18000000;3600000;02:00:00.000,wall,march,8,on or after,sunday,undefined;02:00:00.000,wall,november,1,on or after,sunday,undefined\n\
hostId=s:Qnx-NPM6-0000-16A3-8210\nvmUuid=s:11e8e9a6-0b40-571a-0000-00000000a096\nbrandId=s:FacExp\n\
sysInfo=o:bog 61[<bog version=\"1.0\">\n<p m=\"b=baja\" t=\"b:Facets\" v=\"\"/>\n</bog>\n]\n\
authAgentTypeSpecs=s:fox:FoxUsernamePasswordAuthAgent\n};;\n";

    #[test]
    fn hello_request_bytes() {
        let expected = format!(
            "fox a 1 -1 fox hello\n{{\nfox.version=s:1.0\nid=i:1\napp.name=s:otscope\napp.version=s:{}\nlang=s:en\n}};;\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(hello_request(), expected.as_bytes());
        // The request is itself a well-formed Fox message.
        let m = parse_message(&hello_request()).unwrap();
        assert_eq!(m.envelope.seq, 1);
        assert_eq!(m.get("fox.version"), Some("1.0"));
    }

    #[test]
    fn parses_a_station_hello() {
        assert_eq!(frame(JACE), Frame::Complete(JACE.len()));
        let m = parse_message(JACE).unwrap();
        assert_eq!(
            m.envelope,
            Envelope { kind: 'a', seq: 0, reply: -1, channel: "fox".into(), command: "hello".into() }
        );
        assert_eq!(m.get("sysInfo"), Some("bog"));
        assert_eq!(m.get("id"), Some("122"));
        let id = identity(&m);
        assert_eq!(id.protocol, "fox");
        assert!(id.ics);
        let f = serde_json::Value::Object(id.fields);
        assert_eq!(
            f,
            json!({
                "fox_version": "1.0.1", "host_name": "10.17.40.40", "host_address": "10.17.40.40",
                "app_name": "Station", "app_version": "3.8.213", "vm_name": "Java HotSpot(TM) Client VM",
                "vm_version": "1.5.0_81-b06", "os_name": "QNX", "os_version": "6.4.1",
                "station_name": "Honeywell", "lang": "en", "host_id": "Qnx-NPM6-0000-16A3-8210",
                "vm_uuid": "11e8e9a6-0b40-571a-0000-00000000a096", "brand_id": "FacExp",
                "auth_agent_type": "fox:FoxUsernamePasswordAuthAgent", "time_zone": "EST5EDT"
            })
        );
    }

    #[test]
    fn every_truncation_is_incomplete() {
        for n in 0..JACE.len() {
            assert_eq!(frame(&JACE[..n]), Frame::Incomplete, "at {n}");
            assert_eq!(parse_message(&JACE[..n]), Err(ParseError::Incomplete), "at {n}");
        }
    }

    #[test]
    fn a_minimal_hello_and_escapes() {
        let m = parse_message(b"fox a 0 -1 fox hello\r\n{\r\nstation.name=s:Plant#20;A#23;\r\nflag=z:t\r\n};;\r\n")
            .unwrap();
        assert_eq!(m.get("station.name"), Some("Plant A#"));
        assert_eq!(m.get("flag"), Some("t"));
        let m = parse_message(b"fox a 0 -1 fox hello\n{\nx=o:null\n};;\n").unwrap();
        assert_eq!(m.get("x"), Some("null"));
        assert_eq!(unescape(b"50#25; #zz; #;"), "50% #zz; #;");
    }

    #[test]
    fn foreign_and_malformed_replies_are_invalid() {
        for bad in [
            &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"fox\n",
            b"fox a 0 -1 fox\n{\n};;\n",
            b"fox a x -1 fox hello\n{\n};;\n",
            b"fox A 0 -1 fox hello\n{\n};;\n",
            b"fox a 0 -1 fox hello\nnot a brace\n",
            b"fox a 0 -1 fox hello\n{\nx=o:bog 5[abc]\n};;\n",
            b"fox a 0 -1 fox hello\n{\nx=o:bog 99999999[\n",
            b"fox a 0 -1 fox hello\n{\nx=o:bog notanumber[ab]\n};;\n",
        ] {
            assert!(matches!(frame(bad), Frame::Invalid(_)), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"fox ".as_slice(), &[b'a'; 200]].concat();
        assert!(matches!(frame(&long), Frame::Invalid(_)));
        let mut many = b"fox a 0 -1 fox hello\n{\n".to_vec();
        for _ in 0..=MAX_LINES {
            many.extend_from_slice(b"k=s:v\n");
        }
        assert!(matches!(frame(&many), Frame::Invalid(_)));
    }

    #[test]
    fn long_values_are_clipped() {
        let msg = format!("fox a 0 -1 fox hello\n{{\nhostName=s:{}\n}};;\n", "h".repeat(2000));
        let id = identity(&parse_message(msg.as_bytes()).unwrap());
        assert_eq!(id.fields["host_name"].as_str().unwrap().len(), MAX_VALUE_CHARS);
    }
}
