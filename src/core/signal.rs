//! A channel for rare words: the router's [`Control`](super::Control) to a session, and a
//! resuming connection offered to the session it resumes (XEP-0198).
//!
//! Every session has one of each, and nearly all of them carry nothing in the session's
//! whole life (at most a word or two, each of which ends the session). A tokio mpsc
//! channel allocates a block of 32 slots and its cache-padded shared state when it is
//! created: about 530 bytes per channel, twice per idle session (heaptrack; a counting
//! allocator says 576 bytes for an unbounded channel, 800 for a bounded one). This one is
//! a mutex-held queue and the receiver's waker behind one `Arc`: 80 bytes (64 of state,
//! see the tests, and the `Arc`'s counts), and nothing more until a word is sent.
//!
//! One receiver, any number of senders, unbounded (the words are few by construction: the
//! router says `Overflow` once, and a resumption comes from an authenticated connection).
//!
//! Each session's mailbox is one too: idle, it holds nothing at all, and busy, it holds
//! what is queued (the router bounds it by count and bytes, see `SessionHandle::send`);
//! a queue that drained gives back a large allocation.
//! [`Receiver::recv`] never completes while the queue is empty, even once every sender is
//! gone: in a `select!` loop its branch simply never fires, and the loop cannot spin.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// A new channel: nothing queued, open.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared(Mutex::new(State { queue: VecDeque::new(), waker: None, closed: false })));
    (Sender { shared: shared.clone() }, Receiver { shared })
}

struct Shared<T>(Mutex<State<T>>);

struct State<T> {
    /// Empty (and unallocated) for nearly every channel's whole life.
    queue: VecDeque<T>,
    /// The receiver waiting in [`Receiver::recv`] (its task's waker, left behind when that
    /// wait was dropped: a send then wakes the task once for nothing).
    waker: Option<Waker>,
    /// The receiver closed or was dropped: sends fail.
    closed: bool,
}

/// Capacity a drained queue keeps (a burst's worth beyond it is given back).
const KEPT_CAPACITY: usize = 8;

impl<T> State<T> {
    fn take(&mut self) -> Option<T> {
        let word = self.queue.pop_front()?;
        if self.queue.is_empty() && self.queue.capacity() > KEPT_CAPACITY {
            self.queue = VecDeque::new();
        }
        Some(word)
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; a poisoned lock still holds a consistent queue.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side; cloned freely.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender { shared: self.shared.clone() }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("signal::Sender").finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Queues `word` and wakes the receiver; the word comes back once the receiver was
    /// closed or dropped.
    pub fn send(&self, word: T) -> Result<(), T> {
        self.queue(word, false)
    }

    /// Like [`send`](Self::send), but refused (the word comes back) while another word is
    /// still queued: for offers that must not pile up behind a receiver that is busy.
    pub fn send_alone(&self, word: T) -> Result<(), T> {
        self.queue(word, true)
    }

    fn queue(&self, word: T, alone: bool) -> Result<(), T> {
        let waker = {
            let mut state = self.shared.lock();
            if state.closed || (alone && !state.queue.is_empty()) {
                return Err(word);
            }
            state.queue.push_back(word);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

/// The receiving side. Dropping it closes the channel and drops what was still queued.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next word, waiting for one. Cancel-safe: a word is taken only by the poll that
    /// returns it, so a `recv` dropped unfinished (another `select!` branch won) loses
    /// nothing. Never completes while nothing is queued, even after every sender is gone
    /// or the channel was closed.
    pub async fn recv(&mut self) -> T {
        std::future::poll_fn(|cx| {
            // tokio's per-task budget, as its own channels use it: a receiver whose queue
            // is refilled as fast as it drains still lets its worker run other tasks.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            let mut state = self.shared.lock();
            if let Some(word) = state.take() {
                coop.made_progress();
                return Poll::Ready(word);
            }
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next word, if one is queued (also after [`close`](Self::close)).
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().take()
    }

    /// Refuses further sends; what is already queued can still be taken.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Dropped outside the lock: a queued word may own anything (a resuming connection
        // and the sender of its answer, which its negotiating task waits on).
        let (queue, waker) = {
            let mut state = self.shared.lock();
            state.closed = true;
            (std::mem::take(&mut state.queue), state.waker.take())
        };
        drop((queue, waker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its wakes.
    struct Counter(AtomicUsize);

    impl futures::task::ArcWake for Counter {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_shared_state_is_small() {
        // Kept here so that a change that makes it grow is seen: queue 32 bytes, waker 16,
        // the flag and the mutex's word (the `Arc` adds its two counts).
        let state = std::mem::size_of::<Shared<crate::core::Control>>();
        let boxed = std::mem::size_of::<Shared<Box<[u8; 512]>>>();
        assert!(state <= 64 && boxed <= 64, "control {state} B, boxed {boxed} B");
        assert_eq!(std::mem::size_of::<Sender<crate::core::Control>>(), std::mem::size_of::<usize>());
    }

    #[tokio::test]
    async fn words_arrive_in_order_from_every_sender() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        assert_eq!(rx.try_recv(), None);
        assert_eq!(tx.send(1), Ok(()));
        assert_eq!(other.send(2), Ok(()));
        assert_eq!(tx.send(3), Ok(()));
        assert_eq!(rx.recv().await, 1);
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.recv().await, 3);
        assert_eq!(rx.try_recv(), None);
        assert!(format!("{tx:?}").contains("Sender"));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken() {
        let (tx, mut rx) = channel();
        let task = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send("word").expect("open");
        assert_eq!(task.await.expect("task"), "word");
    }

    #[tokio::test]
    async fn a_word_sent_before_the_first_poll_is_not_missed() {
        let (tx, mut rx) = channel();
        let recv = rx.recv();
        tx.send(7).expect("open");
        assert_eq!(recv.now_or_never(), Some(7));
    }

    #[tokio::test]
    async fn a_dropped_recv_loses_nothing_and_a_send_wakes_the_waiter() {
        let (tx, mut rx) = channel();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = futures::task::waker(counter.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        {
            let mut recv = std::pin::pin!(rx.recv());
            assert!(recv.as_mut().poll(&mut cx).is_pending());
            tx.send(1).expect("open");
            assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the waiting task was woken");
            // Dropped without the poll that would have returned the word.
        }
        assert_eq!(rx.recv().now_or_never(), Some(1), "the word is still there");
        // Dropped while pending, with nothing sent: the next recv still sees later words.
        {
            let mut recv = std::pin::pin!(rx.recv());
            assert!(recv.as_mut().poll(&mut cx).is_pending());
        }
        tx.send(2).expect("open");
        assert_eq!(rx.recv().await, 2);
    }

    #[tokio::test]
    async fn close_refuses_sends_and_keeps_what_was_queued() {
        let (tx, mut rx) = channel();
        tx.send(1).expect("open");
        tx.send(2).expect("open");
        rx.close();
        assert_eq!(tx.send(3), Err(3), "the word comes back");
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.recv().await, 2);
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.recv().now_or_never(), None, "closed and empty: pending, not ended");
    }

    #[tokio::test]
    async fn a_dropped_receiver_refuses_sends_and_drops_what_was_queued() {
        let (tx, rx) = channel();
        let queued = Arc::new(());
        tx.send(queued.clone()).expect("open");
        drop(rx);
        assert_eq!(Arc::strong_count(&queued), 1, "dropped with the receiver");
        let back = tx.send(queued.clone()).expect_err("closed");
        assert!(Arc::ptr_eq(&back, &queued));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_receiver_that_is_never_short_of_words_lets_other_tasks_run() {
        let (tx, mut rx) = channel();
        (0..1000).for_each(|i| tx.send(i).expect("open"));
        let other_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = other_ran.clone();
        let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        let mut taken_before_it_ran = None;
        for taken in 0..1000 {
            assert_eq!(rx.recv().await, taken);
            if taken_before_it_ran.is_none() && other_ran.load(Ordering::SeqCst) {
                taken_before_it_ran = Some(taken);
            }
        }
        other.await.expect("task");
        assert!(taken_before_it_ran.is_some_and(|n| n < 999), "{taken_before_it_ran:?}");
    }

    #[test]
    fn send_alone_waits_for_nothing_and_queues_nothing_behind_another() {
        let (tx, mut rx) = channel();
        assert_eq!(tx.send_alone(1), Ok(()));
        assert_eq!(tx.send_alone(2), Err(2), "one is queued already");
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(tx.send_alone(3), Ok(()));
        rx.close();
        assert_eq!(tx.send_alone(4), Err(4), "closed");
    }

    #[test]
    fn a_drained_queue_gives_back_a_large_allocation() {
        let (tx, mut rx) = channel();
        (0..100).for_each(|i| tx.send(i).expect("open"));
        while rx.try_recv().is_some() {}
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        tx.send(1).expect("open");
        tx.send(2).expect("open");
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert!(rx.shared.lock().queue.capacity() > 0, "a small one is kept");
    }

    #[tokio::test]
    async fn recv_stays_pending_once_every_sender_is_gone() {
        let (tx, mut rx) = channel::<u8>();
        tx.send(1).expect("open");
        drop(tx);
        assert_eq!(rx.recv().await, 1, "what was sent is still taken");
        assert_eq!(rx.recv().now_or_never(), None);
        assert_eq!(rx.try_recv(), None);
    }
}
