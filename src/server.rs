//! Starting and stopping the server: storage, TLS, listeners, the admin socket, and
//! graceful shutdown (`system-shutdown` to every stream, storage flushed).

use crate::admin;
use crate::c2s::admission::{Admission, Refusal};
use crate::config::Config;
use crate::core::state::ServerState;
use crate::storage::{Backend, Storage, StorageError};
use crate::transport::tcp::Listener;
use crate::transport::tls::{self, TlsSetup};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
}

pub struct Server {
    pub state: Arc<ServerState>,
    /// What the client listeners share (login throttle, resumable sessions).
    c2s: Arc<crate::c2s::Shared>,
    /// Where the STARTTLS listener ended up (useful with port 0).
    pub c2s_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub cert_path: PathBuf,
    store: Arc<dyn Storage>,
    shutdown: watch::Sender<bool>,
    admission: Arc<Admission>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the store (in `data_dir` for sled), sets up TLS, binds the listeners and the
    /// admin socket.
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        Server::start_with(config, |store| store).await
    }

    /// As [`start`](Self::start), over the configured store as `wrap` makes it (the tests
    /// run the whole server over a store that answers later: `storage::later`).
    pub async fn start_with(
        config: Config,
        wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>,
    ) -> Result<Server, ServerError> {
        let backend = config.storage.backend()?;
        create_private_dir(&config.data_dir)?;
        crate::sasl::credentials::use_secret(load_secret(&config.data_dir)?);
        if backend == Backend::Memory {
            tracing::warn!(
                "storage.backend = \"memory\": nothing is kept on disk; accounts, rosters, offline messages \
                 and archives do not survive a restart"
            );
        }
        let store = wrap(backend.open(&config.data_dir)?);
        recover_inflight(store.as_ref()).await?;
        let tls = Arc::new(tls::setup(&config)?);
        let admin_path = admin::socket_path(&config.data_dir);
        let modules = crate::modules::standard(&config);
        let state = ServerState::new(config, store.clone(), modules);
        let (shutdown, _) = watch::channel(false);
        let mut server = Server {
            c2s: Arc::new(crate::c2s::Shared::new(&state.config)),
            state: state.clone(),
            c2s_addr: None,
            tls_addr: None,
            cert_path: tls.cert_path.clone(),
            store,
            shutdown,
            admission: Admission::new(&state.config.limits),
            tasks: Vec::new(),
        };
        if let Some(addr) = state.config.listeners.c2s {
            server.c2s_addr = Some(server.listen(addr, tls.clone(), false).await?);
        }
        if let Some(addr) = state.config.listeners.c2s_tls {
            server.tls_addr = Some(server.listen(addr, tls.clone(), true).await?);
        }
        // Also with the archive off: what it kept before still ages out.
        server.tasks.push(tokio::spawn(crate::modules::mam::retention::enforce(state.clone())));
        let admin = admin::serve(&admin_path, state.clone(), server.shutdown.subscribe())
            .map_err(|source| ServerError::DataDir { path: admin_path, source })?;
        server.tasks.push(admin);
        Ok(server)
    }

    async fn listen(
        &mut self,
        addr: SocketAddr,
        tls: Arc<TlsSetup>,
        direct_tls: bool,
    ) -> Result<SocketAddr, ServerError> {
        let socket = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let local = socket.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
        let listener = Arc::new(Listener {
            state: self.state.clone(),
            c2s: self.c2s.clone(),
            tls,
            direct_tls,
            shutdown: self.shutdown.subscribe(),
        });
        let kind = if direct_tls { "direct TLS (XEP-0368)" } else { "STARTTLS" };
        tracing::info!(addr = %local, "listening for clients with {kind}");
        let admission = self.admission.clone();
        let mut stop = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = socket.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Usually EMFILE: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = stop.changed() => return,
                };
                let guard = match admission.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refusal) => {
                        refuse(&tcp, peer, refusal, &listener);
                        continue;
                    }
                };
                let listener = listener.clone();
                tokio::spawn(async move {
                    // The admission is counted until the session ends: the session holds it.
                    // Spawned as it is: wrapped in another async block, the session's state
                    // would be kept twice (the captured future and the awaited one).
                    let Some(session) = listener.serve(tcp, peer, guard).await else { return };
                    tokio::spawn(session);
                });
            }
        }));
        Ok(local)
    }

    /// The store (its accounts, say), for tools and tests.
    pub fn users(&self) -> &dyn Storage {
        self.store.as_ref()
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.admission.active()
    }

    /// Waits for SIGINT or SIGTERM, then shuts down. Stops by itself, with an error, when
    /// the store fails: a server that cannot store acknowledges nothing, and one that goes
    /// on serving would lose what it holds in memory; a supervisor starts it again, on a
    /// store that works (`storage/flusher.rs`).
    pub async fn run_until_signal(self) -> Result<(), String> {
        let mut failure = self.state.flusher.watch_failure();
        let failed = tokio::select! {
            () = wait_for_signal() => None,
            failed = failure.wait_for(Option::is_some) => failed.ok().and_then(|why| why.clone()),
        };
        match &failed {
            None => tracing::info!("shutting down"),
            Some(why) => tracing::error!(
                error = %why,
                "storage failed: stopping; start the server again once the cause is fixed (disk space, say)"
            ),
        }
        // The last drop of a sled store flushes it. After an I/O error that flush may
        // never return (most likely racing sled's own flusher thread, sled #1308): a
        // server that stopped for a failed store was seen not to exit. So after a failure
        // one handle is kept for good, no thread drops the last one, and the process
        // exits; everything was flushed, or failed to be, through the flusher already.
        let store = failed.is_some().then(|| self.store.clone());
        let clean = self.shutdown().await;
        std::mem::forget(store);
        match (failed, clean) {
            (Some(why), _) => Err(format!("storage failed: {why}")),
            (None, false) => Err("sessions were still open at exit: what they held may be lost".into()),
            (None, true) => Ok(()),
        }
    }

    /// Sends `system-shutdown` to every stream, waits for them (bounded by
    /// `shutdown_grace_secs`, then a little more for sessions still storing what they
    /// hold), stops the listeners and flushes storage. False when connections were still
    /// open at the end, or the last flush failed.
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown.send(true);
        // Bound sessions hear it on their control channel too, which ends even a wait for
        // a client that does not read: each then stores what it holds before it goes.
        self.state.registry.shutdown_all();
        let grace = Duration::from_secs(self.state.config.timeouts.shutdown_grace_secs);
        let deadline = tokio::time::Instant::now() + grace;
        while self.admission.active() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Sessions end within the grace (their last words wait a second at most), but the
        // messages they hold must be stored before the process exits: wait for them.
        let stragglers = tokio::time::Instant::now() + STRAGGLERS;
        while self.admission.active() > 0 && tokio::time::Instant::now() < stragglers {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let open = self.admission.active();
        if open > 0 {
            tracing::error!(connections = open, "connections still open at exit");
        }
        for task in self.tasks {
            task.abort();
        }
        admin::remove_socket(&self.state.config.data_dir);
        // Through the flusher: sled must never flush twice at once (sled #1308).
        match self.state.flusher.durable().await {
            Ok(()) => {
                tracing::info!("storage flushed");
                open == 0
            }
            Err(e) => {
                tracing::error!(error = %e, "storage flush failed");
                false
            }
        }
    }
}

/// How long shutdown waits, after the grace, for sessions still storing what they hold.
const STRAGGLERS: Duration = Duration::from_secs(10);

/// Messages that were in flight to stream-managed sessions when the last run stopped
/// (killed, say) were never acknowledged: they go to offline storage before anyone logs in.
async fn recover_inflight(store: &dyn Storage) -> Result<(), ServerError> {
    let keys = store.inflight_keys().await?;
    if keys.is_empty() {
        return Ok(());
    }
    let owners = store.inflight_to_offline(&keys, crate::core::offline::with_delay).await?;
    store.flush().await?;
    tracing::info!(
        messages = keys.len(),
        accounts = owners.len(),
        "unacknowledged messages from the last run kept offline"
    );
    Ok(())
}

/// Tells a refused client why (not over direct TLS: that would cost a handshake) and
/// closes its connection. A fresh socket's send buffer takes the few bytes at once.
fn refuse(tcp: &tokio::net::TcpStream, peer: SocketAddr, refusal: Refusal, listener: &Listener) {
    match refusal {
        Refusal::Full => tracing::warn!(%peer, "connection limit reached (limits.max_connections), refusing"),
        Refusal::TooManyFromSource => {
            tracing::info!(%peer, "too many connections from this address (limits.max_connections_per_ip), refusing")
        }
    }
    if !listener.direct_tls {
        let host = listener.state.config.default_host();
        let _ = tcp.try_write(refusal.stream_error(host).as_bytes());
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The secret of the fake credentials shown for unknown names, made once and kept in the
/// data directory (mode 0600) so that they do not change at restarts.
fn load_secret(data_dir: &std::path::Path) -> Result<[u8; 32], ServerError> {
    let path = data_dir.join("fake-credentials.secret");
    let err = |source| ServerError::DataDir { path: path.clone(), source };
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(secret);
        }
        tracing::warn!(path = %path.display(), "the fake-credentials secret is damaged: making a new one");
    }
    let secret: [u8; 32] = rand::random();
    crate::storage::files::write_private(&path, &secret).map_err(err)?;
    Ok(secret)
}

/// Creates the data directory readable only by its owner.
pub fn create_private_dir(path: &std::path::Path) -> Result<(), ServerError> {
    let err = |source| ServerError::DataDir { path: path.to_owned(), source };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}
