//! The two tasks of one `msg` client: the sender (closed loop with a window, or open loop
//! at a fixed rate) and the receiver (latency from the body's timestamp).

use stanzad::xml::{Element, NS_CLIENT};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{Duration, Instant};

use super::body::{self, Template};
use crate::client::Writer;
use crate::error::Result;
use crate::session::{self, Phase};
use crate::stats::{now_ns, Batch};
use crate::xmpp;

/// Most messages written with one write call.
const MAX_BATCH: u64 = 64;

/// Totals over all clients.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Error replies to our messages.
    pub bounced: AtomicU64,
    /// Messages not of this run (e.g. offline messages from an earlier one).
    pub stale: AtomicU64,
    /// When the last message of this run arrived (ns since the base instant).
    pub last_rx_ns: AtomicU64,
}

/// When the sender may send.
pub enum Pace {
    /// Closed loop: one permit per message in flight; the receiver gives it back.
    Window(Arc<Semaphore>),
    /// Open loop: one message per `interval`. A sender that falls behind sends what is due
    /// at once (never fewer messages: no coordinated omission), stamped when written: the
    /// timer's millisecond granularity is the tool's lag, not the server's latency.
    Rate { next: Instant, interval: Duration },
}

impl Pace {
    /// Waits until messages are due: (how many, first timestamp, step between timestamps).
    async fn next(&mut self) -> (u64, u64, u64) {
        match self {
            Pace::Window(permits) => {
                match permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => std::future::pending().await, // never closed
                }
                let mut n = 1;
                while n < MAX_BATCH {
                    let Ok(permit) = permits.try_acquire() else { break };
                    permit.forget();
                    n += 1;
                }
                (n, now_ns(), 0)
            }
            Pace::Rate { next, interval } => {
                tokio::time::sleep_until(*next).await;
                let step = interval.as_nanos().max(1);
                let behind = Instant::now().saturating_duration_since(*next).as_nanos();
                let n = (1 + behind / step).min(u128::from(MAX_BATCH)) as u64;
                *next += *interval * n as u32;
                (n, now_ns(), 0)
            }
        }
    }
}

/// The sending half of one client.
pub struct Sender {
    pub writer: Writer,
    pub replies: mpsc::Receiver<Vec<u8>>,
    pub phase: watch::Receiver<Phase>,
    pub template: Template,
    pub pace: Pace,
    pub counters: Arc<Counters>,
}

impl Sender {
    /// Sends while the phase is `Run`, then relays answers until `Close`.
    pub async fn run(mut self) -> Result<()> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = session::phase(&mut self.phase, |p| *p != Phase::Run) => break,
                Some(reply) = self.replies.recv() => session::write(&mut self.writer, &reply).await?,
                (n, ts, step) = self.pace.next() => {
                    buf.clear();
                    for k in 0..n {
                        seq += 1;
                        self.template.push(&mut buf, seq, ts + k * step);
                    }
                    session::write(&mut self.writer, &buf).await?;
                    self.counters.sent.fetch_add(n, Relaxed);
                }
            }
        }
        session::relay(self.writer, self.replies, self.phase).await
    }
}

/// The receiving half of one client.
pub struct Receiver {
    pub run_tag: Arc<str>,
    /// Our own window (a bounce gives the permit back).
    pub own: Option<Arc<Semaphore>>,
    /// The partner's window (a delivery gives the permit back).
    pub partner: Option<Arc<Semaphore>>,
    pub counters: Arc<Counters>,
    pub latency: Batch,
}

impl Receiver {
    pub fn on_stanza(&mut self, el: &Element) {
        if el.name() != "message" {
            return;
        }
        if el.attr("type") == Some("error") {
            self.counters.bounced.fetch_add(1, Relaxed);
            self.own.iter().for_each(|w| w.add_permits(1));
            return;
        }
        let Some(text) = xmpp::child_text(el, "body", NS_CLIENT) else { return };
        let Some((ts, _seq)) = body::parse(text, &self.run_tag) else {
            self.counters.stale.fetch_add(1, Relaxed);
            return;
        };
        let now = now_ns();
        self.latency.record(now.saturating_sub(ts));
        self.counters.received.fetch_add(1, Relaxed);
        self.counters.last_rx_ns.fetch_max(now, Relaxed);
        self.partner.iter().for_each(|w| w.add_permits(1));
    }
}
