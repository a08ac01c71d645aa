//! Account administration. sled lets one process open the store, so while the server
//! runs the command-line tools talk to it over a Unix socket in the data directory
//! (mode 0600, inside the 0700 data directory); when it does not, they open the store.
//! One JSON request line, one JSON response line.

use crate::core::state::ServerState;
use crate::core::Control;
use crate::sasl::credentials::StoredCredentials;
use crate::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xmpp_parsers::jid::BareJid;

#[derive(Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    Adduser {
        jid: String,
        password: String,
    },
    /// Accounts whose credentials the client derived (`stanzad adduser --from-file`).
    AdduserMany {
        accounts: Vec<(String, StoredCredentials)>,
    },
    Passwd {
        jid: String,
        password: String,
    },
    Deluser {
        jid: String,
    },
    Users,
}

/// Never shows the password.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Adduser { jid, .. } => write!(f, "adduser {jid}"),
            Request::AdduserMany { accounts } => write!(f, "adduser {} accounts", accounts.len()),
            Request::Passwd { jid, .. } => write!(f, "passwd {jid}"),
            Request::Deluser { jid } => write!(f, "deluser {jid}"),
            Request::Users => write!(f, "users"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Response {
    Done,
    Users(Vec<String>),
    Failed(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Carries out one request: the same code whether the server runs (the admin socket) or
/// not (the command line, with a `ServerState` over the store that nobody is connected
/// to). It reads and writes storage at length: the caller runs it on the blocking pool
/// (`carry_out`) and makes it durable before answering.
pub async fn execute(state: &ServerState, request: Request) -> Response {
    let users = state.store.as_ref();
    let (hosts, iterations) = (&state.config.hosts, state.config.auth.scram_iterations);
    let result = match request {
        Request::Adduser { jid, password } => create(users, hosts, &jid, derive(&password, iterations)).await,
        Request::AdduserMany { accounts } => create_many(users, hosts, accounts).await,
        Request::Passwd { jid, password } => match (local_jid(&jid, hosts), derive(&password, iterations)) {
            (Ok(jid), Ok(creds)) => users.set_credentials(&jid, &creds).await.map_err(describe),
            (Err(why), _) | (_, Err(why)) => Err(why),
        },
        Request::Deluser { jid } => match local_jid(&jid, hosts) {
            Ok(jid) => delete_account(state, &jid).await,
            Err(why) => Err(why),
        },
        Request::Users => {
            return match users.list_users().await {
                Ok(list) => Response::Users(list.iter().map(ToString::to_string).collect()),
                Err(e) => Response::Failed(describe(e)),
            }
        }
    };
    match result {
        Ok(()) => Response::Done,
        Err(reason) => Response::Failed(reason),
    }
}

/// Deletes an account and everything it had. Its contacts first lose it (RFC 6121 §2.5.2:
/// every roster that holds it forgets it, with pushes and unavailable presence to whoever
/// is online, and their waiting requests are refused), so that a later account of the same
/// name inherits nothing; when that fails nothing is deleted and the operator retries.
async fn delete_account(state: &ServerState, jid: &BareJid) -> Result<(), String> {
    let store = state.store.as_ref();
    if !store.user_exists(jid).await.map_err(describe)? {
        return Err(describe(StorageError::NotFound(jid.to_string())));
    }
    let forget = async |pass: &str| {
        crate::core::subscription::forget_account(state, jid).await.map_err(|e| {
            tracing::error!(error = %e, pass, "ending a deleted account's subscriptions failed");
            format!("storage error while ending its subscriptions ({pass}): {e}")
        })
    };
    forget("the account was not deleted").await?;
    store.delete_user(jid).await.map_err(describe)?;
    // What raced the first pass (a request its session sent meanwhile) is caught now:
    // changes made from here on find no account and change nothing.
    crate::core::subscription::settle(state, jid).await;
    forget("the account was deleted; run deluser again to finish").await?;
    wipe_leftovers(store, jid).await
}

/// Everything an account keeps besides its credentials: deleted with it, and again when an
/// account of the same name is created, so that a new account starts empty (whatever the
/// deleted one left behind, a message archived while it was being deleted, say, is not
/// the new owner's).
async fn wipe_leftovers(users: &dyn Storage, jid: &BareJid) -> Result<(), String> {
    users.delete_archive(jid).await.map_err(describe)?;
    users.delete_offline(jid).await.map_err(describe)?;
    users.delete_vcard(jid).await.map_err(describe)?;
    users.delete_private(jid).await.map_err(describe)?;
    users.delete_roster(jid).await.map_err(describe)
}

/// Creates one account, starting empty.
async fn create(
    users: &dyn Storage,
    hosts: &[String],
    jid: &str,
    creds: Result<StoredCredentials, String>,
) -> Result<(), String> {
    let jid = local_jid(jid, hosts)?;
    users.create_user(&jid, &creds?).await.map_err(describe)?;
    wipe_leftovers(users, &jid).await
}

/// Creates each account; all are tried, and the failures are reported together.
async fn create_many(
    users: &dyn Storage,
    hosts: &[String],
    accounts: Vec<(String, StoredCredentials)>,
) -> Result<(), String> {
    let mut failures: Vec<String> = Vec::new();
    for (jid, creds) in accounts {
        if let Err(why) = create(users, hosts, &jid, Ok(creds)).await {
            failures.push(why);
        }
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} accounts not created; the first: {first}", failures.len())),
    }
}

fn derive(password: &str, iterations: u32) -> Result<StoredCredentials, String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    StoredCredentials::derive(password, iterations).map_err(|e| format!("unusable password: {e:?}"))
}

fn describe(e: StorageError) -> String {
    e.to_string()
}

/// An account JID on one of our hosts.
fn local_jid(text: &str, hosts: &[String]) -> Result<BareJid, String> {
    let jid = BareJid::new(text).map_err(|e| format!("{text:?} is not a JID: {e}"))?;
    if jid.node().is_none() {
        return Err(format!("{text} has no user part (user@domain)"));
    }
    if !hosts.iter().any(|h| h == jid.domain().as_str()) {
        return Err(format!("{} is not a host of this server (hosts: {})", jid.domain(), hosts.join(", ")));
    }
    Ok(jid)
}

/// Serves the admin socket for the running server.
pub fn serve(path: &Path, state: Arc<ServerState>, mut stop: watch::Receiver<bool>) -> std::io::Result<JoinHandle<()>> {
    remove_socket_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin socket accept failed");
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let state = state.clone();
            tokio::spawn(async move { answer(stream, state).await });
        }
    }))
}

async fn answer(stream: tokio::net::UnixStream, state: Arc<ServerState>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(64 * 1024);
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), reader.read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => carry_out(state, request).await,
        Err(e) => Response::Failed(format!("bad request: {e}")),
    };
    if let Ok(mut bytes) = serde_json::to_vec(&response) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
    }
}

/// Carries out a request (on the blocking pool), ends the sessions it concerns and makes
/// it durable: for the running server, and for the command line with the server stopped.
pub async fn carry_out(state: Arc<ServerState>, request: Request) -> Response {
    tracing::info!(command = command_name(&request), "admin request");
    // RFC 6120 §4.9.3.17: the account's sessions end with `reset` when its password
    // changes (a stolen password stops working at once), `not-authorized` when it goes.
    let ended = match &request {
        Request::Deluser { jid } => BareJid::new(jid).ok().map(|jid| (jid, Control::AccountDeleted)),
        Request::Passwd { jid, .. } => BareJid::new(jid).ok().map(|jid| (jid, Control::PasswordChanged)),
        _ => None,
    };
    let worker = state.clone();
    let response = crate::storage::on_blocking_pool(async move { execute(&worker, request).await })
        .await
        .unwrap_or_else(|e| Response::Failed(format!("internal error: {e}")));
    if let Some((jid, why)) = ended {
        // A deletion that failed after the account went still ends its sessions.
        let gone = why == Control::AccountDeleted && !state.store.user_exists(&jid).await.unwrap_or(true);
        if response == Response::Done || gone {
            // Streams still negotiating first: from here on none of them binds.
            state.revocations.revoke(&jid, why);
            end_sessions(&state, &jid, why);
        }
    }
    match state.flusher.durable().await {
        Ok(()) => response,
        Err(e) => Response::Failed(format!("not durable: {e}")),
    }
}

/// Ends every session of the account at once.
fn end_sessions(state: &ServerState, jid: &BareJid, why: Control) {
    for resource in state.registry.resources(jid) {
        tracing::info!(jid = %resource.jid, ?why, "ending a session for an admin command");
        state.registry.control(&resource, why);
    }
}

/// The command's name, for logs (never the password).
fn command_name(request: &Request) -> &'static str {
    match request {
        Request::Adduser { .. } | Request::AdduserMany { .. } => "adduser",
        Request::Passwd { .. } => "passwd",
        Request::Deluser { .. } => "deluser",
        Request::Users => "users",
    }
}

/// Sends a request to a running server. Err if no server answers on the socket.
pub async fn send(path: &Path, request: &Request) -> std::io::Result<Response> {
    let stream = tokio::net::UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(request)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    let mut line = String::new();
    // A server that takes the socket but never answers must not hang the command.
    let mut reader = BufReader::new(read);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(120), reader.read_line(&mut line));
    answer.await.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the server did not answer"))??;
    Ok(serde_json::from_str(&line)?)
}

pub fn remove_socket(data_dir: &Path) {
    remove_socket_file(&socket_path(data_dir));
}

fn remove_socket_file(path: &Path) {
    let _ = std::fs::remove_file(path);
}
