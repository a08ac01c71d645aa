//! The server under test, started in-process on ephemeral ports.

use super::client::{Client, Mech};
use super::DOMAIN;
use stanzad::config::Config;
use stanzad::sasl::credentials::StoredCredentials;
use stanzad::server::Server;
use std::net::SocketAddr;
use std::path::PathBuf;
use tempfile::TempDir;
use xmpp_parsers::jid::BareJid;

/// PBKDF2 iterations for test accounts (the configured minimum, to keep tests fast).
pub const ITERATIONS: u32 = 4096;

pub struct TestServer {
    server: Option<Server>,
    /// The STARTTLS listener (plaintext until `<starttls/>`).
    pub addr: SocketAddr,
    /// The direct TLS listener (XEP-0368).
    pub tls_addr: SocketAddr,
    /// The generated self-signed certificate (PEM) that clients trust.
    pub cert_path: PathBuf,
    pub allow_plaintext: bool,
    /// The data directory (sled store, admin socket).
    pub data_dir: PathBuf,
    config: Config,
    _dir: TempDir,
}

impl TestServer {
    /// A server with the test defaults: plaintext allowed, no login throttle.
    pub async fn start() -> TestServer {
        TestServer::with(|_| {}).await
    }

    /// A server that requires TLS (the production default).
    pub async fn start_tls_required() -> TestServer {
        TestServer::with(|c| c.auth.allow_plaintext = false).await
    }

    /// A server with the test defaults, then `configure` applied.
    ///
    /// Defaults: host `localhost`; both listeners on `127.0.0.1:0`; data and certificates in
    /// a fresh temporary directory; `auth.allow_plaintext = true`;
    /// `auth.scram_iterations = 4096`; `auth.failure_delay_ms = 0`;
    /// `timeouts.shutdown_grace_secs = 2`; `archive.enabled = false` (delivered messages would
    /// carry XEP-0359 stanza-ids; tests about the archive turn it on); everything else as
    /// `Config::default()`.
    pub async fn with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config =
            Config { hosts: vec![DOMAIN.to_owned()], data_dir: dir.path().join("data"), ..Config::default() };
        config.tls.cert_dir = dir.path().join("certs");
        config.listeners.c2s = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.listeners.c2s_tls = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.auth.allow_plaintext = true;
        config.auth.scram_iterations = ITERATIONS;
        config.auth.failure_delay_ms = 0;
        config.timeouts.shutdown_grace_secs = 2;
        config.archive.enabled = false;
        configure(&mut config);
        config.validate().expect("the test configuration is valid");
        TestServer::launch(config, dir).await
    }

    async fn launch(config: Config, dir: TempDir) -> TestServer {
        let server = start(&config).await.expect("server starts");
        TestServer::from_server(server, config, dir)
    }

    fn from_server(server: Server, config: Config, dir: TempDir) -> TestServer {
        let allow_plaintext = config.auth.allow_plaintext;
        let data_dir = config.data_dir.clone();
        TestServer {
            addr: server.c2s_addr.expect("STARTTLS listener"),
            tls_addr: server.tls_addr.expect("direct TLS listener"),
            cert_path: server.cert_path.clone(),
            allow_plaintext,
            data_dir,
            config,
            server: Some(server),
            _dir: dir,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Creates an account; `jid` is a bare JID such as `alice@localhost`.
    pub async fn add_user(&self, jid: &str, password: &str) {
        let creds = StoredCredentials::derive(password, ITERATIONS).expect("derive credentials");
        let jid = BareJid::new(jid).expect("valid bare JID");
        self.server().users().create_user(&jid, &creds).await.expect("create user");
    }

    /// Sends one request to the running server's admin socket.
    pub async fn admin(&self, request: stanzad::admin::Request) -> stanzad::admin::Response {
        let path = stanzad::admin::socket_path(&self.data_dir);
        tokio::time::timeout(super::TIMEOUT, stanzad::admin::send(&path, &request))
            .await
            .expect("admin answer within the timeout")
            .expect("admin socket")
    }

    /// Graceful shutdown (`system-shutdown` to every stream, storage flushed).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Graceful shutdown, then a new server on the same data directory and configuration
    /// (listeners get new ephemeral ports).
    pub async fn restart(mut self) -> TestServer {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let TestServer { config, _dir: dir, .. } = self;
        // The old server's aborted tasks drop their handles on the store asynchronously;
        // until then sled's lock is held.
        let deadline = tokio::time::Instant::now() + super::TIMEOUT;
        loop {
            match start(&config).await {
                Ok(server) => return TestServer::from_server(server, config, dir),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("the server does not start again on its data: {e}"),
            }
        }
    }

    /// A plain TCP connection to the STARTTLS port (nothing sent yet).
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A connection with its stream open: on a server that requires TLS, STARTTLS is
    /// negotiated first. Returns after the (post-TLS) features were read.
    pub async fn connect_open(&self) -> Client {
        let mut client = self.connect().await;
        client.open_stream().await;
        if !self.allow_plaintext {
            client.starttls(&self.cert_path).await;
        }
        client
    }

    /// A connection authenticated (SCRAM-SHA-256) as `user` (a localpart), stream
    /// restarted, no resource bound yet.
    pub async fn authenticated(&self, user: &str, password: &str) -> Client {
        let mut client = self.connect_open().await;
        client
            .authenticate(Mech::ScramSha256, user, password)
            .await
            .unwrap_or_else(|condition| panic!("login of {user} failed: {condition}"));
        client
    }

    /// A bound session of `user`@localhost/`resource`, without initial presence.
    pub async fn session(&self, user: &str, password: &str, resource: &str) -> Client {
        self.login(self.connect().await, user, password, resource).await
    }

    /// Takes a fresh connection to a bound session (STARTTLS first if required).
    pub async fn login(&self, mut client: Client, user: &str, password: &str, resource: &str) -> Client {
        client.open_stream().await;
        if !self.allow_plaintext {
            client.starttls(&self.cert_path).await;
        }
        client
            .authenticate(Mech::ScramSha256, user, password)
            .await
            .unwrap_or_else(|condition| panic!("login of {user} failed: {condition}"));
        let jid = client.bind(Some(resource)).await;
        assert_eq!(jid, format!("{user}@{DOMAIN}/{resource}"));
        client
    }

    /// A bound session that sent initial presence with `priority`, read its echo and then
    /// the presence of each of the account's other available resources (RFC 6121 §4.2.2,
    /// §4.3.2: a new resource learns of the others at once). For an account none of
    /// whose contacts is online and with no subscription request waiting: those would
    /// come between the echo and the own resources' presence.
    pub async fn available(&self, user: &str, password: &str, resource: &str, priority: i8) -> Client {
        let mut client = self.session(user, password, resource).await;
        let bare = BareJid::new(&format!("{user}@{DOMAIN}")).expect("valid bare JID");
        let others = self.server().state.registry.available(&bare).len();
        client.available(priority).await;
        let full = client.jid().to_owned();
        for _ in 0..others {
            let presence = client.recv().await;
            let from = presence.attr("from").unwrap_or_default();
            let own = presence.is("presence", super::NS_CLIENT) && presence.attr("type").is_none();
            assert!(
                own && from.starts_with(&format!("{bare}/")) && from != full && presence.attr("to") == Some(&full),
                "{full}: the presence of another resource of its account, got {}",
                super::xml::show(&presence)
            );
        }
        client
    }
}

/// Starts a server on `config`; with `STANZAD_TEST_STORE=later`, over its store answering
/// later, as a store across a network does (`storage::later`).
async fn start(config: &Config) -> Result<Server, stanzad::server::ServerError> {
    let later = std::env::var("STANZAD_TEST_STORE").is_ok_and(|store| store == "later");
    let wrap = |store| match later {
        true => std::sync::Arc::new(stanzad::storage::later::Later::new(store)) as _,
        false => store,
    };
    Server::start_with(config.clone(), wrap).await
}
