//! A full disk under a stream-managed sender: the real binary with its data directory on a
//! small tmpfs, a sender (XEP-0198) pipelining large messages to an offline account until
//! the filesystem is full.
//!
//! What must hold (docs/delivery.md, "When storage fails"):
//! * every batch the sender wrote gets an answer within seconds: an `<a/>` that counts it,
//!   stanza errors, or the end of the stream; never silence;
//! * nothing is acknowledged that is not on disk: after space comes back (a ballast file
//!   is removed) and the server is started again, every message whose `<a/>` came is
//!   delivered;
//! * the server does not keep serving on a store that fails: it stops by itself, with an
//!   error line an operator (or a supervisor) acts on, and a non-zero exit status, within
//!   seconds, and a SIGTERM meanwhile would not hang.
//!
//! Needs `mount -t tmpfs` (root, as in CI). Where that is refused the test says so and
//! passes without running: it cannot make a disk full otherwise.

use crate::support::daemon::{adduser, Daemon};
use crate::support::sm::{Event, SmClient, NS_SM};
use crate::support::{collect_messages, NS_CLIENT};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .status();
        matches!(status, Ok(s) if s.success()).then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const MESSAGE_BYTES: usize = 60_000;
/// Messages the sender tries at most (far more than the filesystem holds).
const ATTEMPTS: u32 = 2_000;
/// The longest a batch may wait for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What the sender learned of its messages.
#[derive(Default)]
struct Outcome {
    acked: Vec<String>,
    refused: usize,
    /// The stream ended (the server stopped) with messages unacknowledged.
    ended: bool,
}

/// With the archive on (the default), whose writes meet the full disk first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_answered_never_acknowledged_and_survived() {
    full_disk("").await;
}

/// With the archive off: the offline store's writes and flushes meet it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_offline_store_alone() {
    full_disk("[archive]\nenabled = false\n").await;
}

/// The scenario, with `config` (TOML) for the server.
async fn full_disk(config: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        eprintln!("disk_full: SKIPPED: mounting a tmpfs was refused (needs root)");
        return;
    };
    for user in ["alice", "bob"] {
        adduser(dir.path(), &format!("{user}@localhost"));
    }
    let ballast = dir.path().join("data/ballast");
    std::fs::write(&ballast, vec![0u8; 4 << 20]).expect("ballast");

    let mut server = Daemon::start_with(dir.path(), 0, config).await;
    let alice = SmClient::login(server.addr, "alice", "laptop", None, false).await.client;
    let outcome = send_until_full(alice).await;
    assert!(outcome.refused > 0 || outcome.ended, "the disk never filled: {} acknowledged", outcome.acked.len());
    assert!(!outcome.acked.is_empty(), "nothing was acknowledged before the disk filled");

    // The server does not serve on with a store that fails: it stops, and says why.
    let status = server.wait_exit(Duration::from_secs(20)).await;
    let log = server.log_text();
    let status = status.unwrap_or_else(|| panic!("the server kept running on a failing store:\n{log}"));
    assert!(!status.success(), "a storage failure is not a clean exit: {status}\n{log}");
    assert!(log.contains("storage failed"), "the log says why:\n{log}");

    // Space comes back; a supervisor starts the server again.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    let server = Daemon::start_with(dir.path(), 1, config).await;
    let mut bob = server.session("bob", "phone").await;
    bob.send("<presence/>").await;
    let got: HashSet<String> = collect_messages(&mut bob).await.into_iter().collect();
    let lost: Vec<&String> = outcome.acked.iter().filter(|id| !got.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {} of {}: {lost:?}", lost.len(), outcome.acked.len());
    drop(server);
}

/// Alice pipelines batches of four large messages to offline Bob, each batch followed by
/// `<r/>`, until errors come back or the stream ends; every batch must be answered within
/// [`ANSWER_WITHIN`].
async fn send_until_full(mut alice: SmClient) -> Outcome {
    let pad = "p".repeat(MESSAGE_BYTES);
    let mut outcome = Outcome::default();
    // (h after the batch, its ids)
    let mut unanswered: std::collections::VecDeque<(u32, Vec<String>)> = Default::default();
    let mut errors: HashSet<String> = HashSet::new();
    let mut next = 0u32;
    let mut waiting_since: Option<Instant> = None;
    loop {
        if next < ATTEMPTS && unanswered.len() < 2 && outcome.refused == 0 {
            let ids: Vec<String> = (next..next + 4).map(|i| format!("big{i}")).collect();
            next += 4;
            let mut bytes: String = ids
                .iter()
                .map(|id| {
                    format!("<message to='bob@localhost' type='chat' id='{id}' pad='{pad}'><body>{id}</body></message>")
                })
                .collect();
            bytes.push_str(&format!("<r xmlns='{NS_SM}'/>"));
            if !alice.send_stanzas(&bytes, ids.len() as u32).await {
                outcome.ended = true;
                break;
            }
            unanswered.push_back((alice.sent, ids));
            waiting_since.get_or_insert_with(Instant::now);
        }
        if unanswered.is_empty() {
            break;
        }
        if waiting_since.is_some_and(|since| since.elapsed() > ANSWER_WITHIN) {
            panic!("a batch went unanswered for {ANSWER_WITHIN:?} ({} acknowledged so far)", outcome.acked.len());
        }
        match alice.next(Duration::from_millis(200)).await {
            Event::Element(e) if e.is("a", NS_SM) => {
                let h: u32 = e.attr("h").and_then(|h| h.parse().ok()).expect("h");
                while unanswered.front().is_some_and(|(upto, _)| *upto <= h) {
                    let Some((_, ids)) = unanswered.pop_front() else { break };
                    for id in ids {
                        match errors.remove(&id) {
                            true => outcome.refused += 1,
                            false => outcome.acked.push(id),
                        }
                    }
                }
                waiting_since = (!unanswered.is_empty()).then(Instant::now);
            }
            Event::Element(e) if e.is("message", NS_CLIENT) && e.attr("type") == Some("error") => {
                errors.insert(e.attr("id").unwrap_or_default().to_owned());
            }
            Event::Element(e) if e.is("r", NS_SM) => {
                alice.ack().await;
            }
            Event::Element(_) | Event::Idle => {}
            Event::Closed => {
                outcome.ended = true;
                break;
            }
        }
    }
    outcome
}
