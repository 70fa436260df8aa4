//! The one HTTP client of the exchanges (TAXII push, CSAF provider sync): ureq over rustls (ring),
//! HTTPS with the Mozilla roots or one trusted CA, bounded bodies, bounded retries.
//!
//! Plain HTTP is allowed to loopback only (a local test server); anything else must be HTTPS.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// How the client connects and how often it tries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// A PEM file of the CA certificate(s) to trust instead of the Mozilla roots (an internal CA).
    pub ca: Option<PathBuf>,
    /// The longest one request may take, from connecting to the end of its body.
    pub timeout: Duration,
    /// How many times a request is sent when it fails for a reason a retry can help (a connection
    /// failure, 429, 5xx); 1 means no retry.
    pub attempts: u32,
    /// The pause before the first retry; each later one waits twice as long.
    pub backoff: Duration,
    /// The largest response body read, in bytes.
    pub max_body: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca: None,
            timeout: Duration::from_secs(60),
            attempts: 3,
            backoff: Duration::from_millis(500),
            max_body: 64 << 20,
        }
    }
}

/// A failed exchange, naming the URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Setup(String),
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

/// Where credentials go in a request.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Auth {
    fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
}

/// A response that arrived, whatever its status.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    agent: ureq::Agent,
    options: ClientOptions,
    auth: Auth,
}

/// Refuses an URL that is neither HTTPS nor HTTP to a loopback address.
pub fn check_url(url: &str) -> Result<(), HttpError> {
    let bad = |why: &str| Err(HttpError::Setup(format!("{url}: {why}")));
    let Some((scheme, rest)) = url.split_once("://") else { return bad("not an URL (expected https://...)") };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return bad("no host");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) => {
            Ok(())
        }
        "http" => bad("plain HTTP is refused except to loopback: use https://"),
        _ => bad("only https:// URLs are supported"),
    }
}

impl Client {
    pub fn new(options: ClientOptions, auth: Auth) -> Result<Client, HttpError> {
        let roots = match &options.ca {
            None => RootCerts::WebPki,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| HttpError::Setup(format!("{}: {e}", path.display())))?;
                let mut certs = Vec::new();
                for item in ureq::tls::parse_pem(&pem) {
                    match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                        Ok(_) => {}
                        Err(e) => return Err(HttpError::Setup(format!("{}: {e}", path.display()))),
                    }
                }
                if certs.is_empty() {
                    return Err(HttpError::Setup(format!("{}: no PEM certificate in it", path.display())));
                }
                RootCerts::new_with_certs(&certs.iter().map(Certificate::to_owned).collect::<Vec<_>>())
            }
        };
        let tls = TlsConfig::builder().root_certs(roots).build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("otscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client { agent, options, auth })
    }

    pub fn get(&self, url: &str, accept: &str) -> Result<Response, HttpError> {
        self.send(url, accept, None)
    }

    pub fn post(&self, url: &str, accept: &str, content_type: &str, body: &[u8]) -> Result<Response, HttpError> {
        self.send(url, accept, Some((content_type, body)))
    }

    /// Sends a request up to `attempts` times while it fails for a reason a retry can help. POSTs are
    /// retried too: the one POST here, a TAXII add, is idempotent by object id and version.
    fn send(&self, url: &str, accept: &str, body: Option<(&str, &[u8])>) -> Result<Response, HttpError> {
        check_url(url)?;
        let mut pause = self.options.backoff;
        let mut attempt = 1;
        loop {
            let result = self.send_once(url, accept, body);
            let retry = match &result {
                Err(_) => true,
                Ok(r) => r.status == 429 || r.status >= 500,
            };
            if !retry || attempt >= self.options.attempts.max(1) {
                return result;
            }
            tracing::warn!(
                url,
                attempt,
                "retrying after {}",
                match &result {
                    Err(e) => e.to_string(),
                    Ok(r) => format!("HTTP {}", r.status),
                }
            );
            std::thread::sleep(pause);
            pause *= 2;
            attempt += 1;
        }
    }

    fn send_once(&self, url: &str, accept: &str, body: Option<(&str, &[u8])>) -> Result<Response, HttpError> {
        let failed = |e: ureq::Error| HttpError::Request { url: url.to_string(), message: e.to_string() };
        let auth = self.auth.header();
        let response = match body {
            None => {
                let mut request = self.agent.get(url).header("Accept", accept);
                if let Some(a) = &auth {
                    request = request.header("Authorization", a);
                }
                request.call()
            }
            Some((content_type, bytes)) => {
                let mut request = self.agent.post(url).header("Accept", accept).header("Content-Type", content_type);
                if let Some(a) = &auth {
                    request = request.header("Authorization", a);
                }
                request.send(bytes)
            }
        };
        let mut response = response.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(self.options.max_body).read_to_vec().map_err(failed)?;
        Ok(Response { status, body })
    }
}

/// A body for an error message: its start, as text.
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("https://taxii.invalid/api1/").is_ok());
        assert!(check_url("http://127.0.0.1:5000/api1/").is_ok());
        assert!(check_url("http://[::1]:5000/").is_ok());
        assert!(check_url("http://localhost/").is_ok());
        let e = check_url("http://taxii.invalid/api1/").unwrap_err().to_string();
        assert!(e.contains("plain HTTP is refused except to loopback"), "{e}");
        assert!(check_url("http://user@taxii.invalid/").is_err());
        assert!(check_url("ftp://127.0.0.1/").is_err());
        assert!(check_url("127.0.0.1/").is_err());
    }
}
