//! Who is asking: tokens (made here, only their hash stored), their role and reach, sessions of
//! the console, and the limit on authentication failures per source.
//!
//! A token reads `ots_<id>_<secret>`: the id finds the stored record, the SHA-256 of the secret is
//! compared with the stored one in constant time.

use crate::store::{SqliteStore, StoreError, TokenRecord};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PREFIX: &str = "ots_";

/// What a token may see: everything, one district, or one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Center,
    District(String),
    Enterprise(String),
}

impl Reach {
    pub fn role(&self) -> &'static str {
        match self {
            Reach::Center => "center",
            Reach::District(_) => "district",
            Reach::Enterprise(_) => "enterprise",
        }
    }

    /// The one test of ownership: whether an object of `enterprise_id` in `district` is within reach.
    pub fn admits(&self, district: &str, enterprise_id: &str) -> bool {
        match self {
            Reach::Center => true,
            Reach::District(d) => d == district,
            Reach::Enterprise(e) => e == enterprise_id,
        }
    }

    /// The reach a stored token grants; a token whose record is inconsistent grants nothing.
    fn of(token: &TokenRecord) -> Option<Reach> {
        match (token.role.as_str(), &token.district, &token.enterprise_id) {
            ("center", None, None) => Some(Reach::Center),
            ("district", Some(d), None) => Some(Reach::District(d.clone())),
            ("enterprise", _, Some(e)) => Some(Reach::Enterprise(e.clone())),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub reach: Reach,
}

/// What `token create` asks for.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub district: Option<String>,
    pub enterprise_id: Option<String>,
    pub expires_at: Option<String>,
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("the system random source works");
    hex::encode(buf)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(digest(&SHA256, text.as_bytes()))
}

/// Equality that takes the same time wherever the inputs differ (their lengths are not secret).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Checks a new token's fields, stores it, and returns the token text (shown once, never stored).
pub fn create_token(store: &mut SqliteStore, new: &NewToken, now: &str) -> Result<String, StoreError> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
    match (new.role.as_str(), &new.district, &new.enterprise_id) {
        ("center", None, None) => {}
        ("center", _, _) => {
            return invalid("--role center sees everything: it takes neither --district nor --enterprise")
        }
        ("district", Some(d), None) if !d.trim().is_empty() => {}
        ("district", _, Some(_)) => return invalid("--role district takes --district, not --enterprise"),
        ("district", _, None) => return invalid("--role district needs --district D"),
        ("enterprise", _, Some(e)) if !e.trim().is_empty() => {}
        ("enterprise", _, _) => return invalid("--role enterprise needs --enterprise ID"),
        (other, _, _) => {
            return Err(StoreError::Invalid(format!("--role {other:?}: expected center, district or enterprise")))
        }
    }
    if new.name.trim().is_empty() {
        return invalid("--name must not be empty");
    }
    let id = random_hex(8);
    let secret = random_hex(32);
    store.create_token(&TokenRecord {
        id: id.clone(),
        name: new.name.clone(),
        secret_sha256: sha256_hex(&secret),
        role: new.role.clone(),
        district: new.district.clone(),
        enterprise_id: new.enterprise_id.clone(),
        created_at: now.to_string(),
        expires_at: new.expires_at.clone(),
        revoked_at: None,
    })?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

/// Whether the RFC 3339 time `now` comes before `expiry`, compared as times (the texts may differ in
/// their fractions of a second). A time that does not parse is never before: such a token fails closed.
fn before(now: &str, expiry: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    match (time::OffsetDateTime::parse(now, &Rfc3339), time::OffsetDateTime::parse(expiry, &Rfc3339)) {
        (Ok(now), Ok(expiry)) => now < expiry,
        _ => false,
    }
}

/// The caller a stored token stands for, if the token is in force at `now`.
pub fn caller_of(token: TokenRecord, now: &str) -> Option<Caller> {
    if token.revoked_at.is_some() || token.expires_at.as_deref().is_some_and(|e| !before(now, e)) {
        return None;
    }
    let reach = Reach::of(&token)?;
    Some(Caller { token_id: token.id, name: token.name, reach })
}

/// The caller presenting `text`, when it is a valid token in force at `now`.
pub fn verify_token(store: &SqliteStore, text: &str, now: &str) -> Result<Option<Caller>, StoreError> {
    let Some((id, secret)) = text.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else {
        return Ok(None);
    };
    let Some(token) = store.token(id)? else { return Ok(None) };
    if !same_secret(sha256_hex(secret).as_bytes(), token.secret_sha256.as_bytes()) {
        return Ok(None);
    }
    Ok(caller_of(token, now))
}

/// Authentication failures per source address: past `limit` within `window`, a source is refused
/// until its window ends, even with a valid token.
pub struct FailureLimit {
    limit: u32,
    window: Duration,
    sources: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Sources remembered at most; past this, expired windows are forgotten first.
const MAX_SOURCES: usize = 10_000;

impl FailureLimit {
    pub fn new(limit: u32, window: Duration) -> FailureLimit {
        FailureLimit { limit, window, sources: Mutex::new(HashMap::new()) }
    }

    /// How long `source` must still wait, if it is refused.
    pub fn refused(&self, source: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().expect("the failure table is never poisoned");
        let (count, start) = sources.get(&source)?;
        let left = self.window.checked_sub(start.elapsed())?;
        (*count >= self.limit).then_some(left)
    }

    pub fn fail(&self, source: IpAddr) {
        let mut sources = self.sources.lock().expect("the failure table is never poisoned");
        if sources.len() >= MAX_SOURCES {
            let window = self.window;
            sources.retain(|_, (_, start)| start.elapsed() < window);
        }
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            // Every remembered source is in its window: the newest failures still count against the
            // fullest table, by sharing one slot, rather than letting the table grow without bound.
            let any = *sources.keys().next().expect("the table is full");
            sources.remove(&any);
        }
        let entry = sources.entry(source).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_compares_whole_inputs() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"xbc", b"abc"));
    }

    #[test]
    fn failures_past_the_limit_refuse_the_source_and_only_it() {
        let limit = FailureLimit::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        for _ in 0..2 {
            limit.fail(a);
        }
        assert!(limit.refused(a).is_none());
        limit.fail(a);
        assert!(limit.refused(a).is_some());
        assert!(limit.refused(b).is_none());
    }

    #[test]
    fn a_token_expires_at_its_instant_whatever_the_fraction_of_a_second() {
        let token = |expires: &str| TokenRecord {
            id: "t".into(),
            name: "n".into(),
            secret_sha256: String::new(),
            role: "center".into(),
            district: None,
            enterprise_id: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: Some(expires.into()),
            revoked_at: None,
        };
        let in_force = |expires: &str, now: &str| caller_of(token(expires), now).is_some();
        assert!(in_force("2027-01-01T00:00:00Z", "2026-12-31T23:59:59.999999999Z"));
        // As text, "…00Z" sorts after "…00.5Z": compared as times, the token has expired.
        assert!(!in_force("2027-01-01T00:00:00Z", "2027-01-01T00:00:00.5Z"));
        assert!(!in_force("2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert!(!in_force("not a time", "2026-01-01T00:00:00Z"), "an unreadable expiry fails closed");
    }

    #[test]
    fn reach_admits_only_its_own() {
        assert!(Reach::Center.admits("a", "E-1"));
        assert!(Reach::District("a".into()).admits("a", "E-1"));
        assert!(!Reach::District("a".into()).admits("b", "E-1"));
        assert!(Reach::Enterprise("E-1".into()).admits("b", "E-1"));
        assert!(!Reach::Enterprise("E-1".into()).admits("a", "E-2"));
    }
}
