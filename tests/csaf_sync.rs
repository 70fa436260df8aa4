//! The CSAF provider sync against a provider on loopback over HTTPS (a self-signed certificate made
//! here, trusted through the client's CA option): a directory distribution (changes.csv) and a ROLIE
//! feed, documents signed with GnuPG (an independent OpenPGP implementation) and hashed. A good
//! document is fetched with its signer; a bad hash and a bad signature are refused by name; a second
//! sync with the returned state fetches no document; a changed document alone is fetched again.

use otscope::advisories::sync::{sync, SyncState};
use otscope::exchange::http::{Auth, ClientOptions};
use otscope_lab::tls::Identity;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A static HTTPS file server on loopback that logs the paths asked for.
struct Provider {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn provider(root: PathBuf, identity: &Identity) -> Provider {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(identity.key_pkcs8.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.141.4.1:0").await.unwrap();
    let base = format!("https://127.141.4.1:{}/", listener.local_addr().unwrap().port());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, root, log) = (acceptor.clone(), root.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(path.clone());
                let file = root.join(path.trim_start_matches('/'));
                let reply = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let mut r =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .into_bytes();
                        r.extend(body);
                        r
                    }
                    _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = tls.write_all(&reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Provider { base, requests, task }
}

/// GnuPG in a home of its own: a fresh Ed25519 signing key.
struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn new(home: PathBuf) -> Option<Gpg> {
        if Command::new("gpg").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none_or(|v| v.is_empty()), "gpg (Debian's gpg package) is missing");
            eprintln!("skipped: gpg is not installed");
            return None;
        }
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let gpg = Gpg { home };
        gpg.run(&["--quick-gen-key", "otscope test provider <csaf@provider.invalid>", "ed25519", "sign", "never"]);
        Some(gpg)
    }

    fn fingerprint(&self) -> String {
        let listing = String::from_utf8(self.run(&["--with-colons", "--fingerprint", "--list-keys"])).unwrap();
        listing.lines().find(|l| l.starts_with("fpr:")).unwrap().split(':').nth(9).unwrap().to_string()
    }

    fn sign(&self, file: &Path) {
        let asc = format!("{}.asc", file.display());
        self.run(&["--armor", "--detach-sign", "--output", &asc, &file.display().to_string()]);
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(&self.home).args(["--kill", "gpg-agent"]).output();
    }
}

fn sha(algorithm: &'static ring::digest::Algorithm, bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(algorithm, bytes))
}

/// Writes a document with its hash files; signs it when `gpg` is given.
fn publish(dir: &Path, name: &str, tracking: &str, gpg: Option<&Gpg>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let doc = serde_json::json!({"document": {"category": "csaf_security_advisory", "csaf_version": "2.0",
        "title": tracking,
        "publisher": {"category": "vendor", "name": "otscope test", "namespace": "https://provider.invalid"},
        "tracking": {"id": tracking, "current_release_date": "2026-11-01T00:00:00Z",
            "initial_release_date": "2026-11-01T00:00:00Z", "status": "final", "version": "1",
            "revision_history": [{"date": "2026-11-01T00:00:00Z", "number": "1", "summary": "first"}]}}});
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!("{}  {file_name}\n", sha(&ring::digest::SHA256, &bytes)),
    )
    .unwrap();
    std::fs::write(
        format!("{}.sha512", path.display()),
        format!("{}  {file_name}\n", sha(&ring::digest::SHA512, &bytes)),
    )
    .unwrap();
    if let Some(gpg) = gpg {
        gpg.sign(&path);
    }
    path
}

fn documents(requests: &[String]) -> Vec<&str> {
    requests
        .iter()
        .map(String::as_str)
        .filter(|p| p.ends_with(".json") && !p.contains("provider-metadata") && !p.contains("feed"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_checks_hashes_and_signatures_and_fetches_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(gpg) = Gpg::new(dir.path().join("g")) else { return };
    let root = dir.path().join("www");
    let white = root.join(".well-known/csaf/white");
    std::fs::create_dir_all(&white).unwrap();

    let identity = Identity::self_signed(&["127.141.4.1"]).unwrap();
    let ca = dir.path().join("ca.pem");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &identity.chain[0])
    );
    std::fs::write(&ca, pem).unwrap();
    let server = provider(root.clone(), &identity).await;
    let base = server.base.clone();

    // The directory distribution: a good document, one whose .sha256 lies, one signed over other bytes.
    publish(&white, "2026/good-1.json", "OTS-2026-001", Some(&gpg));
    let bad_hash = publish(&white, "2026/bad-hash.json", "OTS-2026-002", Some(&gpg));
    std::fs::write(format!("{}.sha256", bad_hash.display()), format!("{}  bad-hash.json\n", "0".repeat(64))).unwrap();
    let bad_signature = publish(&white, "2026/bad-signature.json", "OTS-2026-003", Some(&gpg));
    let forged = publish(&white, "2026/forged.json", "OTS-2026-999", Some(&gpg));
    std::fs::copy(format!("{}.asc", forged.display()), format!("{}.asc", bad_signature.display())).unwrap();
    std::fs::remove_file(&forged).unwrap();
    let changes = "\"2026/good-1.json\",\"2026-11-01T00:00:00Z\"\n\"2026/bad-hash.json\",\"2026-11-02T00:00:00Z\"\n\"2026/bad-signature.json\",\"2026-11-03T00:00:00Z\"\n";
    std::fs::write(white.join("changes.csv"), changes).unwrap();
    std::fs::write(white.join("index.txt"), "2026/good-1.json\n2026/bad-hash.json\n2026/bad-signature.json\n").unwrap();
    // The ROLIE feed: one document, its links absolute as ROLIE writes them.
    publish(&root, ".well-known/csaf/feed/2026/rolie-1.json", "OTS-2026-010", Some(&gpg));
    let href = format!("{base}.well-known/csaf/feed/2026/rolie-1.json");
    let feed = serde_json::json!({"feed": {"id": "otscope-test-white", "title": "white", "updated": "2026-11-04T00:00:00Z",
        "entry": [{"id": "OTS-2026-010", "title": "OTS-2026-010", "published": "2026-11-04T00:00:00Z", "updated": "2026-11-04T00:00:00Z",
            "link": [{"rel": "self", "href": href}, {"rel": "hash", "href": format!("{href}.sha256")}, {"rel": "hash", "href": format!("{href}.sha512")}, {"rel": "signature", "href": format!("{href}.asc")}],
            "content": {"type": "application/json", "src": href}, "format": {"schema": "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json", "version": "2.0"}}]}});
    std::fs::write(root.join(".well-known/csaf/feed-tlp-white.json"), feed.to_string()).unwrap();
    std::fs::write(root.join(".well-known/csaf/key.asc"), gpg.run(&["--armor", "--export"])).unwrap();
    let metadata = serde_json::json!({
        "canonical_url": format!("{base}.well-known/csaf/provider-metadata.json"),
        "distributions": [
            {"directory_url": format!("{base}.well-known/csaf/white/")},
            {"rolie": {"feeds": [{"summary": "white", "tlp_label": "WHITE", "url": format!("{base}.well-known/csaf/feed-tlp-white.json")}]}},
        ],
        "last_updated": "2026-11-04T00:00:00Z", "list_on_CSAF_aggregators": false, "metadata_version": "2.0", "mirror_on_CSAF_aggregators": false,
        "public_openpgp_keys": [{"fingerprint": gpg.fingerprint(), "url": format!("{base}.well-known/csaf/key.asc")}],
        "publisher": {"category": "vendor", "name": "otscope test", "namespace": "https://provider.invalid"}, "role": "csaf_trusted_provider",
    });
    std::fs::write(root.join(".well-known/csaf/provider-metadata.json"), metadata.to_string()).unwrap();
    let metadata_url = format!("{base}.well-known/csaf/provider-metadata.json");
    let options = ClientOptions { ca: Some(ca.clone()), attempts: 1, ..ClientOptions::default() };

    let run = |state: SyncState| {
        let (url, options) = (metadata_url.clone(), options.clone());
        tokio::task::spawn_blocking(move || sync(&url, &state, &options, Auth::None))
    };
    let first = run(SyncState::default()).await.unwrap().unwrap();
    let fetched: BTreeMap<String, Option<String>> =
        first.fetched.iter().map(|f| (f.url.trim_start_matches(&base).to_string(), f.signed_by.clone())).collect();
    let fingerprint = gpg.fingerprint();
    assert_eq!(
        fetched,
        BTreeMap::from([
            (".well-known/csaf/feed/2026/rolie-1.json".to_string(), Some(fingerprint.clone())),
            (".well-known/csaf/white/2026/good-1.json".to_string(), Some(fingerprint.clone())),
        ])
    );
    let good = first.fetched.iter().find(|f| f.url.ends_with("good-1.json")).unwrap();
    assert_eq!(good.bytes, std::fs::read(white.join("2026/good-1.json")).unwrap());
    let refused: BTreeMap<&str, &str> =
        first.refused.iter().map(|r| (r.url.trim_start_matches(&base), r.reason.as_str())).collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(refused[".well-known/csaf/white/2026/bad-hash.json"].starts_with("SHA-256 mismatch: "), "{refused:#?}");
    assert!(
        refused[".well-known/csaf/white/2026/bad-signature.json"].starts_with("bad OpenPGP signature: "),
        "{refused:#?}"
    );
    assert!(
        refused[".well-known/csaf/white/2026/bad-signature.json"].contains("bad-signature.json.asc"),
        "{refused:#?}"
    );

    // Again with the state it returned: no document is fetched; the refused ones are still named.
    server.requests.lock().unwrap().clear();
    let second = run(first.state.clone()).await.unwrap().unwrap();
    assert!(second.fetched.is_empty());
    assert_eq!(second.unchanged, 4);
    assert_eq!(second.refused.len(), 2);
    assert_eq!(documents(&server.requests.lock().unwrap()), Vec::<&str>::new());
    assert_eq!(second.state, first.state);

    // The provider revises one document: only it is fetched.
    publish(&white, "2026/good-1.json", "OTS-2026-001-r1", Some(&gpg));
    std::fs::write(white.join("changes.csv"), changes.replace("2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z")).unwrap();
    server.requests.lock().unwrap().clear();
    let third = run(second.state.clone()).await.unwrap().unwrap();
    assert_eq!(third.fetched.len(), 1);
    assert!(third.fetched[0].url.ends_with("white/2026/good-1.json"));
    assert_eq!(documents(&server.requests.lock().unwrap()), ["/.well-known/csaf/white/2026/good-1.json"]);

    // The command: fetches, checks and imports into the history, refusing the two by name (exit 2);
    // a second run fetches nothing and imports nothing new.
    let db = dir.path().join("h.db");
    let command = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"));
        c.args(args).arg("--db").arg(&db);
        c
    };
    let sync_command = || {
        let mut c = command(&["advisories", "sync", &metadata_url, "--ca", ca.to_str().unwrap()]);
        c.arg("--fingerprints").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fingerprints"));
        tokio::task::spawn_blocking(move || c.output().unwrap())
    };
    server.requests.lock().unwrap().clear();
    let out = sync_command().await.unwrap();
    let told = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{told}");
    assert!(told.contains("bad-hash.json: SHA-256 mismatch: "), "{told}");
    assert!(told.contains("bad-signature.json: bad OpenPGP signature: "), "{told}");
    assert!(told.contains("2 new, 0 revised, 0 unchanged, 0 refused"), "{told}");
    let listed = command(&["advisories", "list"]).output().unwrap();
    let listed = format!("{}{}", String::from_utf8_lossy(&listed.stdout), String::from_utf8_lossy(&listed.stderr));
    assert!(listed.contains("OTS-2026-001-r1") && listed.contains("OTS-2026-010"), "{listed}");
    server.requests.lock().unwrap().clear();
    let again = sync_command().await.unwrap();
    let told = format!("{}{}", String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
    assert!(told.contains("0 fetched, 2 refused by its checks, 4 unchanged"), "{told}");
    assert!(told.contains("0 new, 0 revised, 0 unchanged, 0 refused"), "{told}");
    assert_eq!(documents(&server.requests.lock().unwrap()), Vec::<&str>::new());

    // Without the CA, the provider's self-signed certificate is refused.
    let strict = ClientOptions { attempts: 1, ..ClientOptions::default() };
    let url = metadata_url.clone();
    let e = tokio::task::spawn_blocking(move || sync(&url, &SyncState::default(), &strict, Auth::None)).await.unwrap();
    let e = e.expect_err("an unknown issuer is refused").to_string();
    assert!(e.contains(&metadata_url) && e.to_lowercase().contains("certificate"), "{e}");
}
