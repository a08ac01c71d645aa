//! Group commit: one task makes writes durable for everyone waiting. sled's
//! `flush_async` deadlocks when called concurrently (sled #1308, PITFALLS.md), so callers
//! never flush themselves: they ask the flusher and wait; all who asked while a flush ran
//! are served by the next one.

use super::{StorageError, UserStore};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    /// Starts the flusher task for `store`.
    pub fn start(store: Arc<dyn UserStore>) -> Flusher {
        let (requests, mut queue) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = queue.try_recv() {
                    waiters.push(more);
                }
                let store = store.clone();
                let result = tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "storage flush failed");
                }
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Flusher { requests }
    }

    /// Returns once everything written before the call is on disk.
    pub async fn durable(&self) -> Result<(), StorageError> {
        self.request().wait().await
    }

    /// Asks for a flush of everything written so far, now; wait for it later.
    pub fn request(&self) -> Pending {
        let (tx, rx) = oneshot::channel();
        let _ = self.requests.send(tx); // a stopped flusher drops it: the wait says so
        Pending(rx)
    }
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
    use crate::storage::sled::SledStore;

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
}
