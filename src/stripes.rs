//! Striped mutexes: a lock per key, or per pair of keys, without a map that grows with
//! the keys. Two keys may share a stripe, which only makes them wait for each other.
//! A pair's two stripes are always taken in the same order, so two threads locking
//! pairs never wait on each other in a cycle.

use crate::keyed::KeyedState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

pub struct Stripes<T> {
    locks: Box<[Mutex<T>]>,
    /// Keyed at random per instance: nobody can pick names that share a stripe on purpose.
    hasher: KeyedState,
}

/// The one or two stripes of a pair, held together.
pub struct PairGuard<'a, T> {
    _first: MutexGuard<'a, T>,
    _second: Option<MutexGuard<'a, T>>,
}

impl<T: Default> Stripes<T> {
    /// `count` stripes (at least one).
    pub fn new(count: usize) -> Stripes<T> {
        Stripes { locks: (0..count.max(1)).map(|_| Mutex::default()).collect(), hasher: KeyedState::default() }
    }
}

impl<T> Stripes<T> {
    /// The stripe of `key`.
    pub fn index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % self.locks.len() as u64) as usize
    }

    fn take(&self, index: usize) -> MutexGuard<'_, T> {
        // A panic while a stripe was held leaves nothing half-done that a lock protects.
        self.locks[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stripe of `key`, held.
    pub fn lock(&self, key: &str) -> MutexGuard<'_, T> {
        self.take(self.index(key))
    }

    /// Every stripe in turn, each held only while `visit` runs on it.
    pub fn for_each(&self, mut visit: impl FnMut(&mut T)) {
        for index in 0..self.locks.len() {
            visit(&mut self.take(index));
        }
    }

    /// The stripes of both keys, the lower index first.
    pub fn lock_pair(&self, a: &str, b: &str) -> PairGuard<'_, T> {
        let (i, j) = (self.index(a), self.index(b));
        let first = self.take(i.min(j));
        let second = (i != j).then(|| self.take(i.max(j)));
        PairGuard { _first: first, _second: second }
    }
}

/// Stripes that are awaited rather than blocked on, for a lock held across awaits (a
/// change that reads and writes a store across a network). Pairs as in [`Stripes`].
pub struct AsyncStripes {
    locks: Box<[tokio::sync::Mutex<()>]>,
    hasher: KeyedState,
}

/// The one or two stripes of a pair, held together.
pub struct AsyncPairGuard<'a> {
    _first: tokio::sync::MutexGuard<'a, ()>,
    _second: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl AsyncStripes {
    /// `count` stripes (at least one).
    pub fn new(count: usize) -> AsyncStripes {
        AsyncStripes { locks: (0..count.max(1)).map(|_| Default::default()).collect(), hasher: KeyedState::default() }
    }

    /// The stripe of `key`.
    pub fn index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % self.locks.len() as u64) as usize
    }

    /// The stripe of `key`, held.
    pub async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks[self.index(key)].lock().await
    }

    /// The stripes of both keys, the lower index first.
    pub async fn lock_pair(&self, a: &str, b: &str) -> AsyncPairGuard<'_> {
        let (i, j) = (self.index(a), self.index(b));
        let first = self.locks[i.min(j)].lock().await;
        let second = match i != j {
            true => Some(self.locks[i.max(j)].lock().await),
            false => None,
        };
        AsyncPairGuard { _first: first, _second: second }
    }
}

#[cfg(test)]
mod tests {
    use super::Stripes;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Two names of `stripes` whose stripes differ from each other and from `taken`.
    fn names_apart(stripes: &Stripes<()>, taken: &[usize]) -> (String, String) {
        let mut free = (0..).map(|i| format!("user{i}@example.org")).filter(|n| !taken.contains(&stripes.index(n)));
        let first = free.next().unwrap_or_default();
        let second = free.find(|n| stripes.index(n) != stripes.index(&first)).unwrap_or_default();
        (first, second)
    }

    #[test]
    fn disjoint_pairs_do_not_wait_for_each_other_and_the_same_pair_does() {
        let stripes = std::sync::Arc::new(Stripes::<()>::new(64));
        let (a, b) = names_apart(&stripes, &[]);
        let (c, d) = names_apart(&stripes, &[stripes.index(&a), stripes.index(&b)]);
        let held = stripes.lock_pair(&a, &b);
        let (done, finished) = mpsc::channel();
        let other = stripes.clone();
        std::thread::spawn(move || {
            let _pair = other.lock_pair(&d, &c);
            let _ = done.send("c-d");
            drop(_pair);
            let _same = other.lock_pair(&b, &a);
            let _ = done.send("b-a");
        });
        assert_eq!(finished.recv_timeout(Duration::from_secs(5)), Ok("c-d"), "a disjoint pair waited");
        assert!(finished.recv_timeout(Duration::from_millis(100)).is_err(), "the same pair did not wait");
        drop(held);
        assert_eq!(finished.recv_timeout(Duration::from_secs(5)), Ok("b-a"));
    }

    /// Bounded: a deadlock fails the test instead of hanging it.
    #[test]
    fn pairs_locked_in_both_orders_never_deadlock() {
        let stripes = std::sync::Arc::new(Stripes::<u64>::new(4));
        let names: Vec<String> = (0..8).map(|i| format!("u{i}@example.org")).collect();
        let (done, finished) = mpsc::channel();
        for t in 0..4 {
            let (stripes, names, done) = (stripes.clone(), names.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    let (x, y) = (&names[(i + t) % 8], &names[(i * 3 + t * 5) % 8]);
                    let (x, y) = if i % 2 == 0 { (x, y) } else { (y, x) };
                    let _pair = stripes.lock_pair(x, y);
                }
                let _ = done.send(t);
            });
        }
        for _ in 0..4 {
            assert!(finished.recv_timeout(Duration::from_secs(10)).is_ok(), "threads waited on each other");
        }
    }
}
