//! What a store answers: a future, so that a store across a network (PostgreSQL, later)
//! implements the same traits as the embedded ones and no caller changes for it.
//!
//! An embedded store (sled, memory) answers at once: its [`Reply`] holds the result and
//! costs no allocation. A networked store answers [`Soon::later`], a boxed future.
//! [`Soon`] serves the module hooks the same way (most answer at once).

use super::StorageError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type Answer<T> = Result<T, StorageError>;

/// A store's answer to one call; `.await` it.
pub type Reply<'a, T> = Soon<'a, Answer<T>>;

/// A value now or a future of it; `.await` it.
#[must_use = "an answer does nothing unless awaited"]
pub struct Soon<'a, T>(State<'a, T>);

enum State<'a, T> {
    /// Answered already (None once taken).
    Ready(Option<T>),
    Later(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> Soon<'a, T> {
    /// A value there is already.
    pub fn ready(value: T) -> Soon<'a, T> {
        Soon(State::Ready(Some(value)))
    }

    /// A value that comes later (a store across a network, a hook that awaits one).
    pub fn later(value: impl Future<Output = T> + Send + 'a) -> Soon<'a, T> {
        Soon(State::Later(Box::pin(value)))
    }
}

impl<'a, T> Reply<'a, T> {
    /// The answer `work` computes now, on the caller's thread (an embedded store).
    pub fn now(work: impl FnOnce() -> Answer<T>) -> Reply<'a, T> {
        Soon::ready(work())
    }

    /// The answer, when it came at once, as an embedded store's always does: for an
    /// embedded store calling its own methods, and for setup code that holds one. An
    /// error for an answer that comes later.
    pub(crate) fn at_once(self) -> Answer<T> {
        match self.0 {
            State::Ready(Some(answer)) => answer,
            _ => Err(StorageError::Backend("an embedded store answered later".into())),
        }
    }

    /// The answer changed by `f` (for a default method built on another).
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'a) -> Reply<'a, U>
    where
        T: Send + 'a,
    {
        match self.0 {
            State::Ready(answer) => Soon(State::Ready(answer.map(|a| a.map(f)))),
            State::Later(answer) => Soon::later(async move { answer.await.map(f) }),
        }
    }
}

impl<T: Unpin> Future for Soon<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().0 {
            // Like any future, it may not be polled again once it gave its value.
            State::Ready(value) => Poll::Ready(value.take().expect("an answer polled after it was given")),
            State::Later(value) => value.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_reply_and_a_later_one_read_alike() {
        assert_eq!(Reply::now(|| Ok(2)).map(|n| n * 3).await.ok(), Some(6));
        let later: Reply<'_, u8> = Soon::later(async {
            tokio::task::yield_now().await;
            Ok(2)
        });
        assert_eq!(later.map(|n| n * 3).await.ok(), Some(6));
        let failed: Reply<'_, u8> = Soon::ready(Err(StorageError::NotFound("x".into())));
        assert!(matches!(failed.await, Err(StorageError::NotFound(_))));
        assert!(Reply::<u8>::later(async { Ok(1) }).at_once().is_err(), "no answer at once from a later one");
    }
}
