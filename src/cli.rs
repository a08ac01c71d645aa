//! The `stanzad` command line: serve, account administration, config checking.

use crate::admin::{self, Request, Response};
use crate::config::Config;
use crate::core::state::ServerState;
use crate::server::Server;
use crate::storage::sled::{is_locked, SledStore};
use crate::storage::Backend;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod bulk;

#[derive(Parser)]
#[command(name = "stanzad", version, about = "An XMPP server")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults need no config file).
    Serve(ServeArgs),
    /// Create an account, or many with --from-file.
    Adduser(AdduserArgs),
    /// Change an account's password.
    Passwd(AccountArgs),
    /// Delete an account.
    Deluser(StoreArgs),
    /// List accounts.
    Users(StoreOnly),
    /// Validate a configuration file.
    CheckConfig { path: PathBuf },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve this domain (replaces the configured hosts).
    #[arg(long)]
    domain: Option<String>,
    /// STARTTLS listener address, or "off".
    #[arg(long)]
    c2s_addr: Option<String>,
    /// Direct TLS listener address, or "off".
    #[arg(long)]
    tls_addr: Option<String>,
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Allow unencrypted client streams and PLAIN on them (tests and benchmarks only).
    #[arg(long)]
    allow_plaintext: bool,
}

#[derive(Args)]
pub(crate) struct StoreOnly {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct StoreArgs {
    /// The account, user@domain.
    jid: String,
    #[command(flatten)]
    store: StoreOnly,
}

#[derive(Args)]
struct AdduserArgs {
    /// The account, user@domain.
    #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
    jid: Option<String>,
    /// Create every account of FILE: one `user@domain password` per line (blank lines and
    /// lines starting with # are skipped).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Read the password from standard input instead of prompting.
    #[arg(long, conflicts_with = "from_file")]
    password_stdin: bool,
    #[command(flatten)]
    store: StoreOnly,
}

#[derive(Args)]
struct AccountArgs {
    #[command(flatten)]
    account: StoreArgs,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { path } => Config::load(&path)
            .map(|c| {
                println!("{}: valid; hosts: {}", path.display(), c.hosts.join(", "));
            })
            .map_err(|e| e.to_string()),
        Command::Adduser(AdduserArgs { jid: Some(jid), store, password_stdin, .. }) => {
            read_password(password_stdin).and_then(|password| administer(&store, Request::Adduser { jid, password }))
        }
        Command::Adduser(AdduserArgs { from_file: Some(file), store, .. }) => bulk::adduser_many(&file, &store),
        Command::Adduser(_) => Err("give an account or --from-file".into()),
        Command::Passwd(args) => read_password(args.password_stdin).and_then(|password| {
            let jid = args.account.jid.clone();
            administer(&args.account.store, Request::Passwd { jid, password })
        }),
        Command::Deluser(args) => administer(&args.store, Request::Deluser { jid: args.jid }),
        Command::Users(args) => administer(&args, Request::Users),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stanzad: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn parse_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| format!("{text:?}: {e}"))
}

/// Applies the `serve` flags over the configuration.
fn serve_config(args: &ServeArgs) -> Result<Config, String> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(domain) = &args.domain {
        config.hosts = vec![domain.clone()];
    }
    if let Some(addr) = &args.c2s_addr {
        config.listeners.c2s = parse_addr(addr)?;
    }
    if let Some(addr) = &args.tls_addr {
        config.listeners.c2s_tls = parse_addr(addr)?;
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(key.clone());
    }
    config.auth.allow_plaintext |= args.allow_plaintext;
    config.normalize_hosts().map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = serve_config(&args)?;
    init_tracing();
    let runtime = runtime()?;
    let served = runtime.block_on(async move {
        let server = Server::start(config).await.map_err(|e| e.to_string())?;
        let config = &server.state.config;
        tracing::info!(
            hosts = %config.hosts.join(", "),
            data_dir = %config.data_dir.display(),
            storage = %config.storage.backend,
            certificate = %server.cert_path.display(),
            "stanzad {} ready; create an account with: stanzad adduser user@{}",
            env!("CARGO_PKG_VERSION"),
            config.default_host(),
        );
        if config.auth.allow_plaintext {
            tracing::warn!("plaintext client streams are allowed: do not use this in production");
        }
        server.run_until_signal().await
    });
    // Not the runtime's drop, which waits for every blocking task: a flush stuck in a
    // failed store (storage/flusher.rs) would keep the process from exiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    served
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}

/// Runs an account command through the running server's admin socket, or on the store.
fn administer(args: &StoreOnly, request: Request) -> Result<(), String> {
    let config = store_config(args)?;
    administer_with(&config, request)
}

/// The configuration a store command works on.
pub(crate) fn store_config(args: &StoreOnly) -> Result<Config, String> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

pub(crate) fn administer_with(config: &Config, request: Request) -> Result<(), String> {
    let socket = admin::socket_path(&config.data_dir);
    let runtime = runtime()?;
    let via_server = runtime.block_on(async { admin::send(&socket, &request).await.ok() });
    let response = match via_server {
        Some(response) => response,
        None => {
            if config.storage.backend().map_err(|e| e.to_string())? == Backend::Memory {
                return Err(format!(
                    "storage.backend is \"memory\": accounts exist only in the running server, and its admin \
                     socket {} does not answer",
                    socket.display()
                ));
            }
            crate::server::create_private_dir(&config.data_dir).map_err(|e| e.to_string())?;
            let store = SledStore::open(&config.data_dir).map_err(|e| {
                if is_locked(&e) {
                    format!(
                        "the store is in use by another process and its admin socket {} does not answer",
                        socket.display()
                    )
                } else {
                    e.to_string()
                }
            })?;
            // The server's own code path, over a state that nobody is connected to: a
            // deleted account leaves its contacts' rosters here too.
            let response = runtime.block_on(async {
                let modules = crate::modules::standard(config);
                let state = ServerState::new(config.clone(), Arc::new(store.clone()), modules);
                admin::carry_out(state, request).await
            });
            runtime.block_on(crate::storage::UserStore::flush(&store)).map_err(|e| e.to_string())?;
            response
        }
    };
    match response {
        Response::Done => Ok(()),
        Response::Users(users) => {
            users.iter().for_each(|u| println!("{u}"));
            Ok(())
        }
        Response::Failed(reason) => Err(reason),
    }
}
