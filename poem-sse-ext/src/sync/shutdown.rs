//! A shutdown signal that is cheap to check on every poll.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::sync::waiters::{Waiter, Waiters};

/// Fires when shutdown begins, for futures and streams that are polled once per event.
///
/// Polling a `CancellationToken`'s future takes the token's mutex, and every stream and
/// connection shares one token: done on every poll, it was the hottest user-space symbol per
/// delivered event. A signal of a [`ShutdownTrigger`] reads an atomic flag instead, and its
/// waker waits among the trigger's [`Waiters`]: registered once (again only when the task being
/// polled changes), with no future kept per stream, so shutdown still wakes an idle task.
pub(crate) enum ShutdownSignal {
    /// A trigger's: its flag, and a place among its waiters.
    Trigger { shared: Arc<Shared>, waiter: Waiter },
    /// A token cancelled by others (no flag is set before it): its future, polled each time.
    Token(Pin<Box<WaitForCancellationFutureOwned>>),
}

/// What a trigger and its signals share.
#[derive(Default, Debug)]
pub(crate) struct Shared {
    fired: AtomicBool,
    waiters: Waiters,
}

/// The sending side: sets the flag, wakes the signals, then cancels the token (for the child
/// tokens handed out). The token must only be cancelled through [`ShutdownTrigger::fire`].
#[derive(Clone, Default, Debug)]
pub(crate) struct ShutdownTrigger {
    shared: Arc<Shared>,
    token: CancellationToken,
}

impl ShutdownTrigger {
    /// A trigger that fires together with `token` when `token` is cancelled through it.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fire(&self) {
        // The flag first: a task that is woken must find it set.
        self.shared.fired.store(true, Ordering::Release);
        self.shared.waiters.wake_all();
        self.token.cancel();
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.shared.fired.load(Ordering::Acquire) || self.token.is_cancelled()
    }

    /// A token cancelled when the trigger fires; cancelling it does not fire the trigger.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal::Trigger {
            shared: Arc::clone(&self.shared),
            waiter: Waiter::default(),
        }
    }
}

impl ShutdownSignal {
    /// A signal for a token cancelled by others (no flag is set before it): polled each time.
    pub(crate) fn from_token(token: CancellationToken) -> Self {
        Self::Token(Box::pin(token.cancelled_owned()))
    }

    /// Whether shutdown began; registers the task's waker otherwise.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Self::Trigger { shared, waiter } => {
                if shared.fired.load(Ordering::Acquire) {
                    return true;
                }
                // Registered before the second look: a fire in between still wakes the task.
                shared.waiters.register(waiter, cx.waker());
                shared.fired.load(Ordering::Acquire)
            }
            Self::Token(cancelled) => cancelled.as_mut().poll(cx).is_ready(),
        }
    }
}

impl Drop for ShutdownSignal {
    fn drop(&mut self) {
        if let Self::Trigger { shared, waiter } = self {
            shared.waiters.unregister(waiter);
        }
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
    async fn a_waiting_signal_holds_one_place_which_it_gives_back_when_dropped() {
        let trigger = ShutdownTrigger::new();
        let mut signals: Vec<_> = (0..3).map(|_| trigger.signal()).collect();
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..2 {
            for signal in &mut signals {
                assert!(!signal.poll_fired(&mut cx));
            }
        }
        assert_eq!(trigger.shared.waiters.len(), 3);
        signals.pop();
        assert_eq!(trigger.shared.waiters.len(), 2);
        trigger.fire();
        assert!(signals.iter_mut().all(|signal| signal.poll_fired(&mut cx)));
        drop(signals);
        assert_eq!(trigger.shared.waiters.len(), 0);
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
