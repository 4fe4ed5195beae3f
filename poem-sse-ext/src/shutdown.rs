//! A shutdown signal that is cheap to check on every poll.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Fires when shutdown begins, for futures and streams that are polled once per event.
///
/// Polling a `CancellationToken`'s future takes the token's mutex, and every stream and
/// connection shares one token: done on every poll, it was the hottest user-space symbol per
/// delivered event. This signal reads an atomic flag instead, and polls the token's future only
/// to register a waker: once, and again only when the waker changes (the task being polled is
/// different). A registered waker stays registered, so shutdown still wakes an idle task.
pub(crate) struct ShutdownSignal {
    /// Set before the token is cancelled; `None` for a token cancelled by others.
    flag: Option<Arc<AtomicBool>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: Option<Waker>,
}

/// The sending side: sets the flag, then cancels the token (which wakes the registered tasks).
/// The token must only be cancelled through [`ShutdownTrigger::fire`]; hand out child tokens.
#[derive(Clone, Default, Debug)]
pub(crate) struct ShutdownTrigger {
    flag: Arc<AtomicBool>,
    token: CancellationToken,
}

impl ShutdownTrigger {
    /// A trigger that fires together with `token` when `token` is cancelled through it.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fire(&self) {
        // The flag first: a task that is woken by the token must find it set.
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.flag.load(Ordering::Acquire) || self.token.is_cancelled()
    }

    /// A token cancelled when the trigger fires; cancelling it does not fire the trigger.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            flag: Some(Arc::clone(&self.flag)),
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
            registered: None,
        }
    }
}

impl ShutdownSignal {
    /// A signal for a token cancelled by others (no flag is set before it): polled each time.
    pub(crate) fn from_token(token: CancellationToken) -> Self {
        Self {
            flag: None,
            cancelled: Box::pin(token.cancelled_owned()),
            registered: None,
        }
    }

    /// Whether shutdown began; registers `cx`'s waker if it is not registered yet.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(flag) = &self.flag else {
            return self.cancelled.as_mut().poll(cx).is_ready();
        };
        if flag.load(Ordering::Acquire) {
            return true;
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return false;
        }
        if self.cancelled.as_mut().poll(cx).is_ready() {
            return true;
        }
        self.registered = Some(cx.waker().clone());
        false
    }
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.get_mut().poll_fired(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_an_idle_task_after_one_registration() {
        let trigger = ShutdownTrigger::new();
        let signal = trigger.signal();
        let waiter = tokio::spawn(signal);
        tokio::task::yield_now().await;
        trigger.fire();
        assert!(tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .is_ok());
        assert!(trigger.is_fired());
    }

    #[tokio::test]
    async fn a_bare_token_still_works() {
        let token = CancellationToken::new();
        let waiter = tokio::spawn(ShutdownSignal::from_token(token.clone()));
        tokio::task::yield_now().await;
        token.cancel();
        assert!(tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .is_ok());
    }
}
