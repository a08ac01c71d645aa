//! One connection under a session: its reader (framer → elements, read by the session's
//! own task), a writer task (bytes → socket) fed by a bounded channel, and the session
//! loop's way of carrying out a session's [`Action`]s on them.

use super::error::{StreamCondition, StreamEnd};
use super::negotiate::{Conn, Reader};
use super::rate::TokenBucket;
use crate::c2s::session::{Action, Out};
use crate::core::state::ServerState;
use crate::core::{signal, Control};
use crate::xml::framer::{Frame, FramerError};
use crate::xml::seam::ByteWriter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Writes queued for the writer task.
const WRITE_QUEUE: usize = 64;

/// How long the last words of a session may wait for its writer when the server ends it
/// (shutdown, or replaced by another session), and any close once the server shuts down.
pub const BRIEF_CLOSE: Duration = Duration::from_secs(1);

/// One connection attached to the session: its reader and its writer task.
pub struct Link {
    /// Taken by the session loop while it runs on this connection ([`read_frame`]).
    /// Boxed: a `Link` moves between the session's futures, and each would keep a copy
    /// of the framer's 350 bytes.
    pub reader: Option<Reader>,
    /// `limits.stanzas_per_sec`: a client that sends faster is read more slowly.
    rate: TokenBucket,
    throttled: bool,
    pub out: mpsc::Sender<Out>,
    /// The writer holds its queue behind a lock: when it ends (or is stopped), what it
    /// never wrote can be taken back and routed again.
    out_queue: Arc<tokio::sync::Mutex<WriteQueue>>,
    writer_task: JoinHandle<()>,
    /// Bytes that could not even be queued for the writer.
    pub unsent: Vec<Out>,
    /// How the transport writes the stream's end.
    pub framing: &'static dyn crate::xml::seam::Framing,
}

impl Link {
    pub fn attach(state: &ServerState, conn: Conn) -> Link {
        let mut reader = conn.reader;
        reader.set_limits(super::negotiate::session_limits(state));
        let limits = &state.config.limits;
        let rate = TokenBucket::new(limits.stanzas_per_sec, limits.stanza_burst, tokio::time::Instant::now());
        let (out, out_rx) = mpsc::channel::<Out>(WRITE_QUEUE);
        let out_queue = Arc::new(tokio::sync::Mutex::new(WriteQueue { rx: out_rx, current: None }));
        let framing = conn.wire.out.framing();
        let writer_task = tokio::spawn(write_bytes(conn.wire.out, out_queue.clone()).in_current_span());
        Link { reader: Some(reader), rate, throttled: false, out, out_queue, writer_task, unsent: Vec::new(), framing }
    }

    /// After a frame: how long to wait before reading the next (zero unless the client
    /// sends faster than its stanza rate allows; it is read more slowly, never refused).
    pub fn pause_after_frame(&mut self) -> Duration {
        let pause = self.rate.take(tokio::time::Instant::now());
        if pause.is_zero() {
            self.throttled = false;
        } else if !self.throttled {
            tracing::debug!("the client sends faster than limits.stanzas_per_sec: reading it more slowly");
            self.throttled = true;
        }
        pause
    }

    /// Sends the last words (if the connection can take them), stops both tasks, and
    /// returns what was never written. Once the server is shutting down (`shutdown`), no
    /// close waits longer than [`BRIEF_CLOSE`]: what the session holds must be stored
    /// before the process exits.
    pub async fn close(
        mut self,
        last: Option<String>,
        limit: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Vec<Out> {
        let out = self.out;
        let writer = &mut self.writer_task;
        let orderly = async {
            if let Some(last) = last {
                let _ = tokio::time::timeout(limit, out.send(last.into_bytes().into())).await;
            }
            drop(out);
            // A client that stopped reading must not keep its socket and task alive.
            tokio::time::timeout(limit, writer).await.is_ok()
        };
        let stopping = async {
            if shutdown.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(BRIEF_CLOSE).await;
        };
        let finished = tokio::select! {
            finished = orderly => finished,
            () = stopping => false,
        };
        if !finished {
            self.writer_task.abort();
            let _ = (&mut self.writer_task).await; // returns once the task is gone, lock released
        }
        let mut queue = self.out_queue.lock().await;
        // The write in progress when the writer was stopped may have been cut short: the
        // client cannot have read it whole, so it is routed again with the rest.
        // Oldest first: that write, the writer's queue, then what could not even be queued.
        let mut never_written: Vec<Out> = queue.current.take().into_iter().collect();
        while let Ok(bytes) = queue.rx.try_recv() {
            never_written.push(bytes);
        }
        never_written.extend(self.unsent);
        never_written
    }

    /// Drops the connection at once, writing nothing more (it is dead, or another
    /// connection took over); what its writer held is counted by stream management.
    pub async fn abort(self) {
        self.writer_task.abort();
        let _ = self.writer_task.await;
    }
}

/// Carries out the session's actions; returns how the stream ends, if it does.
/// Bytes that could not be queued for the writer go to `unsent`, with the rest of the
/// writes, to be routed again. While it waits on a stalled writer, a word from the router
/// on `control` (every one ends the session) ends the wait.
pub async fn perform(
    state: &ServerState,
    actions: Vec<Action>,
    out: Option<&mpsc::Sender<Out>>,
    limit: Duration,
    unsent: &mut Vec<Out>,
    mut control: Option<&mut signal::Receiver<Control>>,
) -> Option<StreamEnd> {
    let mut actions = actions.into_iter();
    while let Some(action) = actions.next() {
        match action {
            Action::AwaitDurable => {
                if let Err(e) = state.flusher.durable().await {
                    // Nothing may be acknowledged that is not on disk: the stream ends
                    // before the client learns anything more.
                    tracing::error!(error = %e, "storage is failing: ending the stream");
                    return Some(StreamEnd::error(StreamCondition::InternalServerError, "storage failure"));
                }
            }
            Action::Write(bytes) | Action::Send(bytes) => {
                let Some(out) = out else { continue };
                // Nearly always there is room: no timer, no wait, nothing kept in the
                // session's future for this (the slow path is boxed).
                let (bytes, end) = match out.try_send(bytes) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Closed(bytes)) => (bytes, broken_pipe()),
                    Err(mpsc::error::TrySendError::Full(bytes)) => {
                        match Box::pin(wait_for_room(out, limit, control.as_deref_mut())).await {
                            Ok(permit) => {
                                permit.send(bytes);
                                continue;
                            }
                            Err(end) => (bytes, end),
                        }
                    }
                };
                unsent.push(bytes);
                unsent.extend(actions.filter_map(|a| match a {
                    Action::Write(bytes) | Action::Send(bytes) => Some(bytes),
                    _ => None,
                }));
                return Some(end);
            }
            Action::End(end) => return Some(end),
            // The session task resolves these first (`Session::resolved`), so stream
            // management counts the replies; one that got here is written as it is.
            Action::Await(pending) => {
                debug_assert!(false, "an unresolved answer reached the writer");
                let replies = Box::pin(pending.replies()).await;
                let writes = replies.iter().map(|reply| Action::Write(crate::xml::writer::to_bytes(reply).into()));
                let writes: Vec<Action> = writes.collect();
                if let Some(end) = Box::pin(perform(state, writes, out, limit, unsent, control.as_deref_mut())).await {
                    return Some(end);
                }
            }
        }
    }
    None
}

/// Waits up to `limit` for room in a full writer queue; a word from the router on
/// `control` (every one ends the session) ends the wait.
async fn wait_for_room<'a>(
    out: &'a mpsc::Sender<Out>,
    limit: Duration,
    control: Option<&mut signal::Receiver<Control>>,
) -> Result<mpsc::Permit<'a, Out>, StreamEnd> {
    let reserve = tokio::time::timeout(limit, out.reserve());
    let waited = match control {
        Some(control) => tokio::select! {
            reserved = reserve => Ok(reserved),
            word = control.recv() => Err(word),
        },
        None => Ok(reserve.await),
    };
    match waited {
        Ok(Ok(Ok(permit))) => Ok(permit),
        Ok(Ok(Err(_))) => Err(broken_pipe()),
        Ok(Err(_)) => Err(StreamEnd::error(StreamCondition::ConnectionTimeout, "the client stopped reading")),
        Err(word) => Err(control_end(word)),
    }
}

fn broken_pipe() -> StreamEnd {
    StreamEnd::Io(std::io::ErrorKind::BrokenPipe.into())
}

/// How a word from the router ends the stream.
pub fn control_end(control: Control) -> StreamEnd {
    match control {
        Control::Replaced => {
            StreamEnd::error(StreamCondition::Conflict, "replaced by a new session with the same resource")
        }
        Control::AccountDeleted => StreamEnd::error(StreamCondition::NotAuthorized, "the account was deleted"),
        Control::PasswordChanged => StreamEnd::error(StreamCondition::Reset, "the password changed: log in again"),
        Control::Overflow => {
            StreamEnd::error(StreamCondition::ResourceConstraint, "too much waiting for this client; reconnect")
        }
        Control::Shutdown => StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"),
    }
}

/// The next frame from the client, after `pause` (see [`Link::pause_after_frame`]). The
/// future owns the reader while it runs and gives it back with the frame: the framer is
/// not cancel-safe, so the session loop keeps one read going across its `select!` turns
/// rather than starting a read on every turn. Read in the session's own task: a reader
/// task of its own cost every idle session a task and a channel (about 1.4 KiB), and
/// every stanza a hand-over between tasks.
pub async fn read_frame(mut reader: Reader, pause: Duration) -> (Reader, Result<Frame, FramerError>) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    let frame = reader.next_frame().await;
    (reader, frame)
}

/// The writer's queue, and the bytes it is writing (taken back if it is stopped).
struct WriteQueue {
    rx: mpsc::Receiver<Out>,
    current: Option<Out>,
}

/// Writes queued bytes, flushing once per batch. It holds the queue's lock while it runs,
/// so the session can take back what it never wrote once it ends or is stopped.
async fn write_bytes(mut out: Box<dyn ByteWriter>, queue: Arc<tokio::sync::Mutex<WriteQueue>>) {
    let mut queue = queue.lock_owned().await;
    while let Some(bytes) = queue.rx.recv().await {
        let mut next = Some(bytes);
        while let Some(bytes) = next {
            let bytes = queue.current.insert(bytes);
            if out.write_all(bytes).await.is_err() {
                // A session waiting for room learns at once that the connection is dead;
                // what is queued stays, to be taken back.
                queue.rx.close();
                return;
            }
            queue.current = None;
            next = queue.rx.try_recv().ok();
        }
        if out.flush().await.is_err() {
            queue.rx.close();
            return;
        }
    }
    let _ = out.shutdown().await;
}
