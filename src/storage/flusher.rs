//! Group commit: one task makes writes durable for everyone waiting (and, when nobody
//! asks, every [`UNASKED_EVERY`] anyway). sled's
//! `flush_async` deadlocks when called concurrently (sled #1308), so callers
//! never flush themselves: they ask the flusher and wait; all who asked while a flush ran
//! are served by the next one.
//!
//! It also decides when the store is broken. sled's I/O errors are sticky (after one, every
//! write fails until the database is opened again) and a flush that met one can wait for
//! ever (measured with a full disk: `make_stable` never returns). So a flush is never
//! waited for blindly: while it runs the store is probed every [`PROBE_EVERY`], and a
//! failed probe, a failed flush, an I/O error reported by a writer, or a flush longer than
//! [`FLUSH_LIMIT`] marks the store broken: every waiter and every later request gets the
//! error at once (nothing is acknowledged), and the server stops (`server.rs`) so that a
//! supervisor starts it again on a store that works.

use super::{StorageError, UserStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

type Waiter = oneshot::Sender<Result<(), String>>;

/// How often the store is probed while a flush runs.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The longest the store goes without a flush (and maintenance) when nobody asks for one:
/// what was written without waiting (the archive entries of messages whose senders asked
/// for no acknowledgement yet, sled's own writes) is on disk within this, and the sled
/// store's archive tails stay small.
pub const UNASKED_EVERY: Duration = Duration::from_millis(500);
/// How often the store is probed when no flush runs.
pub const IDLE_PROBE_EVERY: Duration = Duration::from_secs(5);
/// The longest a flush may take before the store counts as broken.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
    /// Why the store is broken, once it is.
    broken: Arc<watch::Sender<Option<String>>>,
    /// Taken around every flush; [`Flusher::hold`] keeps flushes from completing.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Flusher {
    /// Starts the flusher task for `store`.
    pub fn start(store: Arc<dyn UserStore>) -> Flusher {
        let (requests, queue) = mpsc::unbounded_channel::<Waiter>();
        let broken = Arc::new(watch::Sender::new(None));
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(serve(store, queue, broken.clone(), gate.clone()));
        Flusher { requests, broken, gate }
    }

    /// Holds every flush (none completes) until the guard is dropped: lets tests see that
    /// nothing is acknowledged before its flush, on a live server.
    pub async fn hold(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Returns once everything written before the call is on disk.
    pub async fn durable(&self) -> Result<(), StorageError> {
        self.request().wait().await
    }

    /// Asks for a flush of everything written so far, now; wait for it later.
    pub fn request(&self) -> Pending {
        let (tx, rx) = oneshot::channel();
        match self.failure() {
            Some(why) => {
                let _ = tx.send(Err(why));
            }
            // A stopped flusher drops it: the wait says so.
            None => {
                let _ = self.requests.send(tx);
            }
        }
        Pending(rx)
    }

    /// A writer met this error: an I/O error means the store is broken (sled's are sticky).
    pub fn report(&self, error: &StorageError) {
        if let StorageError::Io(why) = error {
            mark_broken(&self.broken, why.clone());
        }
    }

    /// Why the store is broken, if it is.
    pub fn failure(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    /// Changes when the store breaks.
    pub fn watch_failure(&self) -> watch::Receiver<Option<String>> {
        self.broken.subscribe()
    }
}

fn mark_broken(broken: &watch::Sender<Option<String>>, why: String) {
    broken.send_if_modified(|current| {
        if current.is_some() {
            return false;
        }
        tracing::error!(error = %why, "storage failed: nothing more is acknowledged");
        *current = Some(why);
        true
    });
}

async fn serve(
    store: Arc<dyn UserStore>,
    mut queue: mpsc::UnboundedReceiver<Waiter>,
    broken: Arc<watch::Sender<Option<String>>>,
    gate: Arc<tokio::sync::Mutex<()>>,
) {
    let mut failed = broken.subscribe();
    let mut idle_probe = tokio::time::interval(IDLE_PROBE_EVERY);
    idle_probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let unasked = tokio::time::sleep(UNASKED_EVERY);
    tokio::pin!(unasked);
    loop {
        let first = tokio::select! {
            first = queue.recv() => match first {
                Some(first) => Some(first),
                None => return,
            },
            () = &mut unasked => {
                unasked.as_mut().reset(tokio::time::Instant::now() + UNASKED_EVERY);
                if broken.borrow().is_some() {
                    continue;
                }
                None
            }
            _ = idle_probe.tick() => {
                // Writes that ask for no flush (rosters, block lists) meet a broken store
                // too: it is found within seconds even when nothing waits for durability.
                if broken.borrow().is_none() {
                    if let Err(why) = probe(&store).await {
                        mark_broken(&broken, why);
                    }
                }
                continue;
            }
        };
        let _gate = gate.lock().await;
        let mut waiters: Vec<Waiter> = first.into_iter().collect();
        while let Ok(more) = queue.try_recv() {
            waiters.push(more);
        }
        let known = broken.borrow().clone();
        let (result, maintenance) = match known {
            Some(why) => (Err(why), None),
            None => flush_watched(&store, &mut failed).await,
        };
        if let Err(why) = &result {
            mark_broken(&broken, why.clone());
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
        // Done before the next flush starts: its waiters wait for it, these did not.
        if let Some(maintenance) = maintenance {
            maintained(maintenance.await, &broken);
        }
        unasked.as_mut().reset(tokio::time::Instant::now() + UNASKED_EVERY);
    }
}

fn maintained(done: Result<Result<(), StorageError>, tokio::task::JoinError>, broken: &watch::Sender<Option<String>>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(StorageError::Io(why))) => mark_broken(broken, why),
        Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
        Err(e) => tracing::error!(error = %e, "storage maintenance stopped"),
    }
}

/// The store's own work after a flush (`UserStore::maintain`), on the blocking pool.
type Maintenance = tokio::task::JoinHandle<Result<(), StorageError>>;

/// One flush, while probing the store; fails as soon as the store is known broken. The
/// task that flushed then maintains the store (one trip to the blocking pool for both):
/// its handle comes with a flush that worked.
async fn flush_watched(
    store: &Arc<dyn UserStore>,
    failed: &mut watch::Receiver<Option<String>>,
) -> (Result<(), String>, Option<Maintenance>) {
    let (flushed, mut flush) = oneshot::channel();
    let flushing = store.clone();
    let task = super::on_blocking_pool(async move {
        let result = flushing.flush().await;
        let ok = result.is_ok();
        let _ = flushed.send(result);
        if ok {
            flushing.maintain().await
        } else {
            Ok(())
        }
    });
    let deadline = tokio::time::Instant::now() + FLUSH_LIMIT;
    loop {
        tokio::select! {
            done = &mut flush => {
                let result = done.map_err(|_| "the flush stopped".to_string()).and_then(|r| r.map_err(|e| e.to_string()));
                let maintenance = result.is_ok().then_some(task);
                return (result, maintenance);
            }
            _ = failed.changed() => {
                let why = failed.borrow().clone();
                if let Some(why) = why {
                    return (Err(why), None);
                }
            }
            () = tokio::time::sleep(PROBE_EVERY) => {
                if tokio::time::Instant::now() >= deadline {
                    return (Err(format!("a flush took longer than {} s", FLUSH_LIMIT.as_secs())), None);
                }
                if let Err(why) = probe(store).await {
                    return (Err(why), None);
                }
            }
        }
    }
}

/// One probe of the store, on the blocking pool; one slower than [`PROBE_EVERY`] is
/// logged and left to the next.
async fn probe(store: &Arc<dyn UserStore>) -> Result<(), String> {
    let probing = store.clone();
    let probe = super::on_blocking_pool(async move { probing.check().await });
    match tokio::time::timeout(PROBE_EVERY, probe).await {
        Ok(done) => joined(done),
        Err(_) => {
            tracing::warn!("a storage probe is slow");
            Ok(())
        }
    }
}

fn joined(done: Result<Result<(), StorageError>, tokio::task::JoinError>) -> Result<(), String> {
    done.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()))
}

/// A flush asked for and not yet waited for.
pub struct Pending(oneshot::Receiver<Result<(), String>>);

impl Pending {
    pub async fn wait(self) -> Result<(), StorageError> {
        let stopped = || StorageError::Backend("the flusher has stopped".into());
        self.0.await.map_err(|_| stopped())?.map_err(StorageError::Backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::credentials::StoredCredentials;
    use crate::storage::sled::SledStore;
    use xmpp_parsers::jid::BareJid;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_waiters_are_all_served() {
        let store = Arc::new(SledStore::temporary().expect("sled"));
        let flusher = Flusher::start(store);
        let waits: Vec<_> = (0..64)
            .map(|_| {
                let flusher = flusher.clone();
                tokio::spawn(async move { flusher.durable().await })
            })
            .collect();
        for wait in waits {
            let done = tokio::time::timeout(std::time::Duration::from_secs(10), wait).await;
            assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
        }
    }

    /// A store that counts its flushes and maintenance; when `broken`, its writes fail (as
    /// sled's after an I/O error), and its flush, when it is `stuck`, does not return until
    /// the flag is cleared (sled's never does).
    #[derive(Default)]
    struct Fake {
        broken: bool,
        stuck: Option<Arc<std::sync::atomic::AtomicBool>>,
        flushes: std::sync::atomic::AtomicUsize,
        maintained: std::sync::atomic::AtomicUsize,
    }

    impl UserStore for Fake {
        fn create_user(&self, _: &BareJid, _: &StoredCredentials) -> crate::storage::Reply<'_, ()> {
            crate::storage::Reply::now(|| Ok(()))
        }
        fn set_credentials(&self, _: &BareJid, _: &StoredCredentials) -> crate::storage::Reply<'_, ()> {
            crate::storage::Reply::now(|| Ok(()))
        }
        fn delete_user(&self, _: &BareJid) -> crate::storage::Reply<'_, ()> {
            crate::storage::Reply::now(|| Ok(()))
        }
        fn credentials(&self, _: &BareJid) -> crate::storage::Reply<'_, Option<StoredCredentials>> {
            crate::storage::Reply::now(|| Ok(None))
        }
        fn list_users(&self) -> crate::storage::Reply<'_, Vec<BareJid>> {
            crate::storage::Reply::now(|| Ok(Vec::new()))
        }
        fn flush(&self) -> crate::storage::Reply<'_, ()> {
            self.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::storage::Reply::now(|| {
                while self.stuck.as_ref().is_some_and(|stuck| stuck.load(std::sync::atomic::Ordering::Relaxed)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            })
        }
        fn maintain(&self) -> crate::storage::Reply<'_, ()> {
            self.maintained.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::storage::Reply::now(|| Ok(()))
        }
        fn check(&self) -> crate::storage::Reply<'_, ()> {
            match self.broken {
                true => crate::storage::Reply::now(|| Err(StorageError::Io("No space left on device".into()))),
                false => crate::storage::Reply::now(|| Ok(())),
            }
        }
    }

    #[tokio::test]
    async fn a_hung_flush_fails_its_waiters_once_a_probe_fails_and_later_ones_at_once() {
        let stuck = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flusher = Flusher::start(Arc::new(Fake { broken: true, stuck: Some(stuck.clone()), ..Fake::default() }));
        let waited = tokio::time::timeout(PROBE_EVERY * 5, flusher.durable()).await;
        stuck.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(waited, Ok(Err(StorageError::Backend(ref why))) if why.contains("No space")), "{waited:?}");
        assert!(flusher.failure().is_some());
        assert!(flusher.request().wait().await.is_err(), "once broken, every request fails");
    }

    #[tokio::test]
    async fn an_idle_store_is_probed_too() {
        let flusher = Flusher::start(Arc::new(Fake { broken: true, ..Fake::default() }));
        let mut watch = flusher.watch_failure();
        let told = tokio::time::timeout(IDLE_PROBE_EVERY * 3, watch.wait_for(Option::is_some)).await;
        assert!(matches!(told, Ok(Ok(_))), "no flush asked for, and still found broken");
    }

    /// Nobody asks, and the store is flushed and maintained all the same, every
    /// `UNASKED_EVERY`.
    #[tokio::test]
    async fn an_unasked_store_is_flushed_and_maintained_regularly() {
        use std::sync::atomic::Ordering::Relaxed;
        let store = Arc::new(Fake::default());
        let _flusher = Flusher::start(store.clone());
        tokio::time::sleep(UNASKED_EVERY * 4 + UNASKED_EVERY / 2).await;
        let (flushes, maintained) = (store.flushes.load(Relaxed), store.maintained.load(Relaxed));
        // Four periods: about four of each (fewer on a loaded machine), never a flush loop.
        assert!((2..=5).contains(&flushes), "{flushes} flushes");
        assert!(maintained + 1 >= flushes && maintained <= flushes, "{maintained} maintained, {flushes} flushes");
    }

    #[tokio::test]
    async fn a_reported_io_error_breaks_the_store() {
        let store = Arc::new(SledStore::temporary().expect("sled"));
        let flusher = Flusher::start(store);
        let mut watch = flusher.watch_failure();
        flusher.report(&StorageError::Backend("not an I/O error".into()));
        assert!(flusher.durable().await.is_ok());
        flusher.report(&StorageError::Io("No space left on device".into()));
        watch.changed().await.expect("told");
        assert!(flusher.durable().await.is_err());
    }
}
