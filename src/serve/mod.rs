//! `otscope serve`: the JSON API and the web console over the scan history, for the center, the
//! districts and the enterprises, each seeing only what its token reaches.
//!
//! - [`auth`]: tokens, reach, sessions, the limit on authentication failures;
//! - [`view`]: the store as a caller may read it (reach enforced there, once);
//! - [`gate`]: the middleware every request passes (body size, authentication, audit);
//! - [`api`]: the `/api/v1` endpoints and their OpenAPI document;
//! - [`console`]: the server-rendered pages.

pub mod api;
pub mod auth;
pub mod console;
pub mod gate;
pub mod view;

use crate::store::{AuditEntry, SqliteStore, StoreError};
use auth::{Caller, FailureLimit};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use view::{Denied, Issuer, View};

/// What `otscope serve` is given.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub db: PathBuf,
    pub listen: SocketAddr,
    /// A PEM certificate chain and its PEM private key: HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Authentication failures a source may make within `failure_window` before it is refused.
    pub failure_limit: u32,
    pub failure_window: Duration,
    /// What the center's `POST /api/v1/notices` issues with; none: the server issues no notices.
    pub issuer: Option<Issuer>,
}

impl ServeOptions {
    pub fn new(db: PathBuf, listen: SocketAddr) -> ServeOptions {
        ServeOptions { db, listen, tls: None, failure_limit: 10, failure_window: Duration::from_secs(60), issuer: None }
    }
}

/// The largest request body accepted (forms, claims, exceptions); larger ones get 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Store connections open at once; more requests wait for one.
const CONNECTIONS: usize = 8;
/// Audit entries waiting to be written; a full queue slows requests down rather than dropping any.
const AUDIT_QUEUE: usize = 4096;

/// Store connections for the request handlers, each used by one blocking task at a time.
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<SqliteStore>>,
    permits: Semaphore,
}

impl Pool {
    fn new(path: PathBuf) -> Pool {
        Pool { path, idle: Mutex::new(Vec::new()), permits: Semaphore::new(CONNECTIONS) }
    }

    /// Runs `work` on a connection, off the async threads.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut SqliteStore) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.expect("the pool's semaphore is never closed");
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let taken = pool.idle.lock().expect("the pool is never poisoned").pop();
            let mut store = match taken {
                Some(store) => store,
                None => SqliteStore::open(&pool.path)?,
            };
            let out = work(&mut store);
            pool.idle.lock().expect("the pool is never poisoned").push(store);
            Ok(out)
        })
        .await
        .expect("store work does not panic")
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub pool: Arc<Pool>,
    pub failures: Arc<FailureLimit>,
    audit: mpsc::Sender<AuditEntry>,
    /// Whether the console is served over HTTPS (its cookies are then `Secure`).
    pub https: bool,
    pub issuer: Option<Arc<Issuer>>,
}

impl App {
    /// Reads the store as `caller` may: the one way handlers reach the data.
    pub async fn read<T: Send + 'static>(
        &self,
        caller: &Caller,
        work: impl FnOnce(&View<'_>) -> Result<T, Denied> + Send + 'static,
    ) -> Result<T, Denied> {
        let reach = caller.reach.clone();
        self.pool.run(move |store| work(&View::new(store, &reach))).await?
    }

    /// Runs a change on the store: one of [`view`]'s, which check the caller's reach first.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteStore, &str) -> Result<T, Denied> + Send + 'static,
    ) -> Result<T, Denied> {
        self.pool.run(move |store| work(store, &crate::pipeline::now_rfc3339())).await?
    }

    pub async fn audit(&self, entry: AuditEntry) {
        // The writer lives as long as the server: a send fails only while it shuts down.
        let _ = self.audit.send(entry).await;
    }
}

/// Writes audit entries in batches until every sender is gone.
async fn write_audit(pool: Arc<Pool>, mut entries: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::new();
    while entries.recv_many(&mut batch, 512).await > 0 {
        let written = std::mem::take(&mut batch);
        let count = written.len();
        match pool.run(move |store| store.append_audit(&written)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => tracing::error!("audit log: {count} entries not written: {e}"),
        }
    }
}

/// A TLS listener: handshakes run beside the accept loop, so a slow client delays only itself.
struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
}

/// How long a client may take to finish its TLS handshake, and how many may be in one at once.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKES: usize = 256;

impl TlsListener {
    fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (send, ready) = mpsc::channel(HANDSHAKES);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
                let (stream, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, send) = (acceptor.clone(), send.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = send.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ended (the server stops): wait for the graceful shutdown to end us.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The source address of a connection, for the failure limit and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, crate::error::BadInput> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &std::path::Path, what: &str, e: &dyn std::fmt::Display| {
        crate::error::BadInput(format!("{}: {what}: {e}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, "cannot read the certificate chain", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, "not a PEM certificate chain", &e))?;
    if chain.is_empty() {
        return Err(bad(cert, "not a PEM certificate chain", &"no CERTIFICATE block"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "not a PEM private key", &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, "TLS setup", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(key, "does not match the certificate", &e))
}

/// Serves until `stop` is cancelled, then lets the requests in flight finish and writes the last
/// audit entries. `ready` is told the bound address once the server accepts connections.
pub async fn run(
    options: ServeOptions,
    stop: CancellationToken,
    ready: impl FnOnce(SocketAddr, bool),
) -> anyhow::Result<()> {
    // Opening migrates the store, and refuses one from a newer otscope, before anything listens.
    SqliteStore::open(&options.db).map_err(|e| crate::error::BadInput(e.to_string()))?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(Arc::new(tls_config(cert, key)?)),
        None => None,
    };
    let tcp = TcpListener::bind(options.listen)
        .await
        .map_err(|e| crate::error::BadInput(format!("--listen {}: cannot listen: {e}", options.listen)))?;
    let pool = Arc::new(Pool::new(options.db.clone()));
    let (audit, entries) = mpsc::channel(AUDIT_QUEUE);
    let writer = tokio::spawn(write_audit(Arc::clone(&pool), entries));
    let app = App {
        pool,
        failures: Arc::new(FailureLimit::new(options.failure_limit, options.failure_window)),
        audit,
        https: tls.is_some(),
        issuer: options.issuer.map(Arc::new),
    };
    let router = api::router(app.clone()).merge(console::router(app.clone()));
    let router = gate::wrap(router, app).into_make_service_with_connect_info::<Peer>();
    let local = tcp.local_addr()?;
    let shutdown = stop.clone().cancelled_owned();
    match tls {
        Some(config) => {
            let listener = TlsListener::new(tcp, config, stop.clone())?;
            ready(local, true);
            axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        }
        None => {
            ready(local, false);
            axum::serve(tcp, router).with_graceful_shutdown(shutdown).await?;
        }
    }
    // Every handler, and so every audit sender, is gone: the writer drains the queue and ends.
    let _ = writer.await;
    Ok(())
}
