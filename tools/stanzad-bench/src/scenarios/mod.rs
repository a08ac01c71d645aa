//! The scenarios, and the worker pool they share.

pub mod body;
pub mod idle;
pub mod login;
pub mod msg;
mod msg_tasks;
pub mod offline;
pub mod query;
pub mod register;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ctx::Ctx;

/// Runs `job(i)` for i in `0..count`, `concurrency` at a time; no new job starts after the
/// run's deadline (each job's waits are bounded by `--timeout` and the deadline).
pub async fn pool<F, Fut>(ctx: &Arc<Ctx>, count: u64, concurrency: u64, job: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let job = Arc::new(job);
    let workers: Vec<_> = (0..concurrency.min(count))
        .map(|_| {
            let (ctx, next, job) = (ctx.clone(), next.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || ctx.expired() {
                        break;
                    }
                    job(i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        // A panicking job is a bug; the others go on.
        if let Err(e) = worker.await {
            eprintln!("stanzad-bench: worker failed: {e}");
        }
    }
}

/// `count / secs`, 0 for an empty interval.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}
