//! Pushing STIX 2.1 bundles into a TAXII 2.1 collection (OASIS TAXII 2.1, cs01).
//!
//! The push first reads the collection's manifest (every version of every object, page by page) and
//! sends only the objects whose (id, version) the server lacks, so pushing an unchanged export again
//! sends nothing and never makes duplicates. Objects go in envelopes of bounded size; each envelope's
//! status resource is read (and polled while pending, a bounded number of times), and every object the
//! server refused is reported by id with the server's message.

use super::http::{body_excerpt, Auth, Client, ClientOptions, HttpError};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TAXII: &str = "application/taxii+json;version=2.1";
/// Objects per envelope: small enough for servers' default request size limits.
const ENVELOPE_OBJECTS: usize = 200;
/// The manifest page size asked for (servers cap it at their own). Always sent: some servers (medallion
/// 3.0) fail on a `next` request without it.
const MANIFEST_PAGE: usize = 1000;
/// Manifest pages read at most (each up to the server's page size): a bound on a hostile server.
const MANIFEST_PAGES: usize = 10_000;
/// How often a pending status is read again, and how long apart.
const STATUS_POLLS: u32 = 30;
const STATUS_POLL_PAUSE: Duration = Duration::from_secs(1);

/// What `exchange push` does.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The API root, e.g. `https://127.0.0.1:8443/api1/`.
    pub api_root: String,
    pub collection: String,
    pub auth: Auth,
    pub client: ClientOptions,
}

/// An object the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: String,
    pub version: Option<String>,
    pub message: String,
}

/// What a push did.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Objects read from the bundles (an object in two bundles counts once).
    pub objects: usize,
    /// Objects the collection already held in the same version, not sent.
    pub present: usize,
    /// Objects sent and accepted.
    pub added: usize,
    pub rejected: Vec<Rejected>,
    /// Objects still pending when the polls ran out.
    pub pending: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{0}")]
    Refused(String),
}

/// Reads the credentials: `file` holds `user:password` (HTTP Basic) or a bearer token on its first
/// line; without a file, `OTSCOPE_TAXII_USER` and `OTSCOPE_TAXII_PASSWORD`, or `OTSCOPE_TAXII_TOKEN`.
/// Never from the command line, where other users see it.
pub fn credentials(file: Option<&Path>) -> Result<Auth, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim();
        return match line.split_once(':') {
            _ if line.is_empty() => Err(format!("{}:1: empty: expected user:password or a token", path.display())),
            Some((user, password)) => Ok(Auth::Basic { user: user.into(), password: password.into() }),
            None => Ok(Auth::Bearer(line.into())),
        };
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("OTSCOPE_TAXII_USER"), var("OTSCOPE_TAXII_PASSWORD"), var("OTSCOPE_TAXII_TOKEN")) {
        (Some(user), Some(password), _) => Ok(Auth::Basic { user, password }),
        (Some(_), None, _) => Err("OTSCOPE_TAXII_USER is set but OTSCOPE_TAXII_PASSWORD is not".into()),
        (None, _, Some(token)) => Ok(Auth::Bearer(token)),
        _ => Ok(Auth::None),
    }
}

/// The objects of the bundles in `paths` (files, or folders whose `.json` files are bundles; a hidden
/// file, such as the export's manifest or a file being written, is none).
pub fn read_bundles(paths: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let hidden = |f: &PathBuf| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json") && !hidden(f))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    for f in files {
        let bytes = crate::input::read_bounded(&f, 1 << 30).map_err(|e| e.to_string())?;
        let bundle: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", f.display()))?;
        if bundle["type"] != "bundle" {
            return Err(format!("{}: /type: not a STIX bundle", f.display()));
        }
        let Some(list) = bundle["objects"].as_array() else {
            return Err(format!("{}: /objects: missing or not a list", f.display()));
        };
        for (i, o) in list.iter().enumerate() {
            let id = o["id"].as_str().ok_or_else(|| format!("{}: /objects/{i}/id: missing", f.display()))?;
            if seen.insert((id.to_string(), version_of(o))) {
                objects.push(o.clone());
            }
        }
    }
    Ok(objects)
}

/// An object's version as TAXII defines it: `modified`, else `created`; None for a cyber-observable.
fn version_of(object: &Value) -> Option<String> {
    object.get("modified").or_else(|| object.get("created")).and_then(Value::as_str).map(normal_time)
}

/// Timestamps compared as instants, whatever precision the server writes them with.
fn normal_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>().map(|t| t.to_string()).unwrap_or_else(|_| t.to_string())
}

fn json(url: &str, response: super::http::Response) -> Result<Value, PushError> {
    if !(200..300).contains(&response.status) {
        return Err(
            HttpError::Status { url: url.into(), status: response.status, body: body_excerpt(&response.body) }.into()
        );
    }
    serde_json::from_slice(&response.body).map_err(|e| PushError::Refused(format!("{url}: not JSON: {e}")))
}

/// Pushes `objects` into the collection.
pub fn push(options: &PushOptions, objects: &[Value]) -> Result<PushReport, PushError> {
    let client = Client::new(options.client.clone(), options.auth.clone())?;
    let root =
        if options.api_root.ends_with('/') { options.api_root.clone() } else { format!("{}/", options.api_root) };
    let collection = format!("{root}collections/{}/", options.collection);
    let info = json(&collection, client.get(&collection, TAXII)?)?;
    if info["can_write"] != true {
        return Err(PushError::Refused(format!(
            "{collection}: the collection does not accept writes (can_write is not true)"
        )));
    }

    // What the collection holds: (id, version) of every version, and the ids of the observables.
    let mut held: HashSet<(String, Option<String>)> = HashSet::new();
    let mut next: Option<String> = None;
    for page in 0.. {
        if page == MANIFEST_PAGES {
            return Err(PushError::Refused(format!("{collection}manifest/: more than {MANIFEST_PAGES} pages")));
        }
        let mut url = format!("{collection}manifest/?match[version]=all&limit={MANIFEST_PAGE}");
        if let Some(n) = &next {
            url.push_str(&format!("&next={n}"));
        }
        let manifest = json(&url, client.get(&url, TAXII)?)?;
        for record in manifest["objects"].as_array().into_iter().flatten() {
            let (Some(id), Some(version)) = (record["id"].as_str(), record["version"].as_str()) else { continue };
            held.insert((id.to_string(), Some(normal_time(version))));
            held.insert((id.to_string(), None));
        }
        match (manifest["more"].as_bool(), manifest["next"].as_str()) {
            (Some(true), Some(n)) => next = Some(n.to_string()),
            _ => break,
        }
    }

    let mut report = PushReport { objects: objects.len(), ..PushReport::default() };
    let wanted: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            let key = (o["id"].as_str().unwrap_or_default().to_string(), version_of(o));
            !held.contains(&key)
        })
        .collect();
    report.present = objects.len() - wanted.len();
    let objects_url = format!("{collection}objects/");
    for envelope in wanted.chunks(ENVELOPE_OBJECTS) {
        let body = serde_json::to_vec(&serde_json::json!({ "objects": envelope })).expect("JSON serialises");
        let mut status = json(&objects_url, client.post(&objects_url, TAXII, TAXII, &body)?)?;
        let mut polls = 0;
        while status["status"] == "pending" && polls < STATUS_POLLS {
            std::thread::sleep(STATUS_POLL_PAUSE);
            let Some(id) = status["id"].as_str() else { break };
            let url = format!("{root}status/{id}/");
            status = json(&url, client.get(&url, TAXII)?)?;
            polls += 1;
        }
        let count = |key: &str| status[key].as_u64().unwrap_or(0) as usize;
        report.added += count("success_count");
        report.pending += count("pending_count");
        for failure in status["failures"].as_array().into_iter().flatten() {
            report.rejected.push(Rejected {
                id: failure["id"].as_str().unwrap_or("?").to_string(),
                version: failure["version"].as_str().map(str::to_string),
                message: failure["message"].as_str().unwrap_or("no message").to_string(),
            });
        }
        // A server that counts failures without listing them still gets them reported.
        let unnamed = count("failure_count").saturating_sub(status["failures"].as_array().map_or(0, Vec::len));
        if unnamed > 0 {
            report.rejected.push(Rejected {
                id: "?".into(),
                version: None,
                message: format!("{unnamed} object(s) refused without their ids"),
            });
        }
    }
    Ok(report)
}
