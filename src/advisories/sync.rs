//! Fetching advisories from a CSAF 2.0 provider (CSAF 2.0 §7: requirements 7-9 and 11-19).
//!
//! [`sync`] reads the provider's `provider-metadata.json`, then each distribution: a directory (its
//! `changes.csv`, else its `index.txt`) or ROLIE feeds. It fetches only the documents whose date
//! differs from the state the caller passes in, checks each against its `.sha256`/`.sha512` files and
//! its detached OpenPGP signature (`.asc`, against the provider's `public_openpgp_keys`) where the
//! provider publishes them, and hands back the documents that passed with the new state. A document
//! that fails a check is refused by URL with the reason; it is not in the new state's accepted set,
//! so it is not fetched again until the provider changes it.
//!
//! Wiring: `otscope advisories sync URL` calls [`sync`] with the state it keeps in the store and passes
//! each [`Fetched::bytes`] (named by [`Fetched::url`]) to the import (`advisories::parse_document` and the
//! store's advisory tables), then stores [`SyncReport::state`].

use crate::exchange::http::{body_excerpt, Auth, Client, ClientOptions, HttpError};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Documents listed at most per provider: a bound on a hostile feed.
const MAX_DOCUMENTS: usize = 100_000;
const JSON: &str = "application/json";

/// What the caller keeps between syncs: per document URL, the provider's date for it and what became
/// of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    pub documents: BTreeMap<String, Known>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Known {
    /// The date `changes.csv` or the ROLIE entry gave (`current_release_date`), as written.
    pub updated: String,
    /// The SHA-256 of the accepted document; None when it was refused.
    pub sha256: Option<String>,
    /// Why it was refused.
    pub refused: Option<String>,
}

/// A document that passed every check the provider allows.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    pub bytes: Vec<u8>,
    pub updated: String,
    pub sha256: String,
    /// The fingerprint of the provider key whose signature verified, if the document is signed.
    pub signed_by: Option<String>,
}

/// A document that failed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct SyncReport {
    pub fetched: Vec<Fetched>,
    pub refused: Vec<Refused>,
    /// Documents whose date had not changed: not fetched.
    pub unchanged: usize,
    /// Documents whose date changed but whose bytes had not.
    pub same_content: usize,
    pub state: SyncState,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: {message}")]
    Provider { url: String, message: String },
}

fn provider_error(url: &str, message: impl Into<String>) -> SyncError {
    SyncError::Provider { url: url.to_string(), message: message.into() }
}

/// One document a distribution lists, with its date and where its hash and signature files are.
struct Listed {
    url: String,
    updated: String,
    sha256: String,
    sha512: String,
    signature: String,
}

/// `relative` against the folder of `base` (an URL ending in a file name or in `/`).
fn join(base: &str, relative: &str) -> String {
    if relative.starts_with("https://") || relative.starts_with("http://") {
        return relative.to_string();
    }
    let folder = &base[..base.rfind('/').map_or(base.len(), |i| i + 1)];
    format!("{folder}{}", relative.trim_start_matches('/'))
}

fn listed(url: String, updated: String) -> Listed {
    Listed {
        sha256: format!("{url}.sha256"),
        sha512: format!("{url}.sha512"),
        signature: format!("{url}.asc"),
        url,
        updated,
    }
}

/// GET that answers None for 404, the body for 2xx, and an error otherwise.
fn fetch_optional(client: &Client, url: &str, accept: &str) -> Result<Option<Vec<u8>>, HttpError> {
    let response = client.get(url, accept)?;
    match response.status {
        200..=299 => Ok(Some(response.body)),
        404 => Ok(None),
        status => Err(HttpError::Status { url: url.into(), status, body: body_excerpt(&response.body) }),
    }
}

fn fetch(client: &Client, url: &str, accept: &str) -> Result<Vec<u8>, SyncError> {
    fetch_optional(client, url, accept)?.ok_or_else(|| provider_error(url, "not found (HTTP 404)"))
}

/// The documents of a directory distribution: `changes.csv` (path, date), else `index.txt` (paths, whose
/// date is then unknown: such a document is fetched when its `.sha256` differs from the known one).
fn directory(client: &Client, directory_url: &str) -> Result<Vec<Listed>, SyncError> {
    let base = if directory_url.ends_with('/') { directory_url.to_string() } else { format!("{directory_url}/") };
    let changes_url = format!("{base}changes.csv");
    if let Some(bytes) = fetch_optional(client, &changes_url, "text/csv")? {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
        let mut out = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| provider_error(&changes_url, format!("line {}: {e}", i + 1)))?;
            let (Some(path), Some(date)) = (record.get(0), record.get(1)) else {
                return Err(provider_error(&changes_url, format!("line {}: expected \"path\",\"date\"", i + 1)));
            };
            out.push(listed(join(&base, path), date.to_string()));
        }
        return Ok(out);
    }
    let index_url = format!("{base}index.txt");
    let index = fetch(client, &index_url, "text/plain")?;
    let text = String::from_utf8_lossy(&index);
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(|l| listed(join(&base, l.trim()), String::new())).collect())
}

/// The documents of a ROLIE feed (CSAF 2.0 §7.1.15): each entry's content, date, hash and signature links.
fn rolie(client: &Client, feed_url: &str) -> Result<Vec<Listed>, SyncError> {
    let feed: Value = serde_json::from_slice(&fetch(client, feed_url, JSON)?)
        .map_err(|e| provider_error(feed_url, format!("not JSON: {e}")))?;
    let Some(entries) = feed["feed"]["entry"].as_array() else {
        return Err(provider_error(feed_url, "/feed/entry: missing or not a list"));
    };
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let links = entry["link"].as_array().map(Vec::as_slice).unwrap_or_default();
        let link = |rel: &str, suffix: &str| {
            links
                .iter()
                .filter(|l| l["rel"] == rel)
                .filter_map(|l| l["href"].as_str())
                .find(|h| h.ends_with(suffix))
                .map(|h| join(feed_url, h))
        };
        let Some(url) = entry["content"]["src"].as_str().map(|s| join(feed_url, s)).or_else(|| link("self", "")) else {
            return Err(provider_error(feed_url, format!("/feed/entry/{i}: no content src nor self link")));
        };
        let updated = entry["updated"].as_str().unwrap_or_default().to_string();
        let mut document = listed(url, updated);
        if let Some(h) = link("hash", ".sha256") {
            document.sha256 = h;
        }
        if let Some(h) = link("hash", ".sha512") {
            document.sha512 = h;
        }
        if let Some(s) = link("signature", "") {
            document.signature = s;
        }
        out.push(document);
    }
    Ok(out)
}

/// The provider's keys, each checked against the fingerprint the metadata gives for it.
fn provider_keys(client: &Client, metadata_url: &str, metadata: &Value) -> Result<Vec<SignedPublicKey>, SyncError> {
    let mut keys = Vec::new();
    for (i, entry) in metadata["public_openpgp_keys"].as_array().into_iter().flatten().enumerate() {
        let pointer = format!("/public_openpgp_keys/{i}");
        let Some(url) = entry["url"].as_str().map(|u| join(metadata_url, u)) else {
            return Err(provider_error(metadata_url, format!("{pointer}/url: missing")));
        };
        let armored = fetch(client, &url, "application/pgp-keys")?;
        let (key, _) = SignedPublicKey::from_armor_single(armored.as_slice())
            .map_err(|e| provider_error(&url, format!("not an OpenPGP public key: {e}")))?;
        key.verify_bindings()
            .map_err(|e| provider_error(&url, format!("the key's self-signatures do not verify: {e}")))?;
        let actual = format!("{:X}", key.fingerprint());
        if let Some(declared) = entry["fingerprint"].as_str() {
            let declared: String = declared.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
            if declared != actual {
                return Err(provider_error(
                    &url,
                    format!(
                        "the key's fingerprint is {actual}, not the {declared} that {pointer}/fingerprint declares"
                    ),
                ));
            }
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The first hex word of a hash file (`<hex>  <file name>`), lower-cased.
fn hash_in(file: &[u8]) -> String {
    String::from_utf8_lossy(file).split_whitespace().next().unwrap_or_default().to_ascii_lowercase()
}

/// Checks one fetched document; the fingerprint of the key that signed it, or why it is refused.
fn check(client: &Client, doc: &Listed, bytes: &[u8], keys: &[SignedPublicKey]) -> Result<Option<String>, String> {
    let digests = [(&doc.sha256, &ring::digest::SHA256, "SHA-256"), (&doc.sha512, &ring::digest::SHA512, "SHA-512")];
    for (url, algorithm, name) in digests {
        if let Some(file) = fetch_optional(client, url, "text/plain").map_err(|e| e.to_string())? {
            let actual = hex::encode(ring::digest::digest(algorithm, bytes));
            let published = hash_in(&file);
            if published != actual {
                return Err(format!("{name} mismatch: {url} says {published}, the document's is {actual}"));
            }
        }
    }
    let Some(armored) =
        fetch_optional(client, &doc.signature, "application/pgp-signature").map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let (signature, _) = DetachedSignature::from_armor_single(armored.as_slice())
        .map_err(|e| format!("bad OpenPGP signature: {}: not an armored signature: {e}", doc.signature))?;
    if keys.is_empty() {
        return Err(format!("bad OpenPGP signature: {}: the provider publishes no key to check it", doc.signature));
    }
    for key in keys {
        if signature.verify(key, bytes).is_ok() {
            return Ok(Some(format!("{:X}", key.fingerprint())));
        }
        for subkey in &key.public_subkeys {
            if signature.verify(subkey, bytes).is_ok() {
                return Ok(Some(format!("{:X}", key.fingerprint())));
            }
        }
    }
    Err(format!("bad OpenPGP signature: {} does not verify with any key of the provider", doc.signature))
}

/// Syncs from the provider whose `provider-metadata.json` is at `metadata_url`.
pub fn sync(
    metadata_url: &str,
    state: &SyncState,
    options: &ClientOptions,
    auth: Auth,
) -> Result<SyncReport, SyncError> {
    let client = Client::new(options.clone(), auth)?;
    let metadata: Value = serde_json::from_slice(&fetch(&client, metadata_url, JSON)?)
        .map_err(|e| provider_error(metadata_url, format!("not JSON: {e}")))?;
    let Some(distributions) = metadata["distributions"].as_array() else {
        return Err(provider_error(metadata_url, "/distributions: missing or not a list"));
    };
    let keys = provider_keys(&client, metadata_url, &metadata)?;
    let mut documents = Vec::new();
    for (i, distribution) in distributions.iter().enumerate() {
        if let Some(url) = distribution["directory_url"].as_str() {
            documents.extend(directory(&client, &join(metadata_url, url))?);
        }
        for (j, feed) in distribution["rolie"]["feeds"].as_array().into_iter().flatten().enumerate() {
            let Some(url) = feed["url"].as_str() else {
                return Err(provider_error(metadata_url, format!("/distributions/{i}/rolie/feeds/{j}/url: missing")));
            };
            documents.extend(rolie(&client, &join(metadata_url, url))?);
        }
        if documents.len() > MAX_DOCUMENTS {
            return Err(provider_error(metadata_url, format!("more than {MAX_DOCUMENTS} documents listed")));
        }
    }
    // A document listed twice (a directory and a feed) is fetched once.
    documents.sort_by(|a, b| a.url.cmp(&b.url));
    documents.dedup_by(|a, b| a.url == b.url);

    let mut report = SyncReport { state: state.clone(), ..SyncReport::default() };
    for doc in documents {
        let known = state.documents.get(&doc.url);
        // Without a date (index.txt only), the published SHA-256 tells whether the document changed.
        let mut updated = doc.updated.clone();
        if updated.is_empty() {
            match fetch_optional(&client, &doc.sha256, "text/plain")? {
                Some(file) => updated = format!("sha256:{}", hash_in(&file)),
                None => updated = String::new(),
            }
        }
        if let Some(k) = known.filter(|k| !updated.is_empty() && k.updated == updated) {
            report.unchanged += 1;
            if let Some(reason) = &k.refused {
                report.refused.push(Refused { url: doc.url.clone(), reason: format!("{reason} (unchanged since)") });
            }
            continue;
        }
        let bytes = fetch(&client, &doc.url, JSON)?;
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        match check(&client, &doc, &bytes, &keys) {
            Ok(signed_by) => {
                let entry = Known { updated: updated.clone(), sha256: Some(sha256.clone()), refused: None };
                let same = known.and_then(|k| k.sha256.as_deref()) == Some(sha256.as_str());
                report.state.documents.insert(doc.url.clone(), entry);
                if same {
                    report.same_content += 1;
                } else {
                    report.fetched.push(Fetched { url: doc.url, bytes, updated, sha256, signed_by });
                }
            }
            Err(reason) => {
                let entry = Known { updated, sha256: None, refused: Some(reason.clone()) };
                report.state.documents.insert(doc.url.clone(), entry);
                report.refused.push(Refused { url: doc.url, reason });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_folder() {
        assert_eq!(
            join("https://p.invalid/.well-known/csaf/white/", "2023/a.json"),
            "https://p.invalid/.well-known/csaf/white/2023/a.json"
        );
        assert_eq!(join("https://p.invalid/csaf/feed.json", "2023/a.json"), "https://p.invalid/csaf/2023/a.json");
        assert_eq!(join("https://p.invalid/csaf/feed.json", "https://q.invalid/a.json"), "https://q.invalid/a.json");
    }

    #[test]
    fn hash_files_give_their_first_word() {
        assert_eq!(hash_in(b"ABCDEF  a.json\n"), "abcdef");
        assert_eq!(hash_in(b""), "");
    }
}
