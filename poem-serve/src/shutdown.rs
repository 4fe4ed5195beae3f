//! The server's shutdown signal, cheap to check on every poll of a connection.

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

/// The sending side: sets the flag, then cancels the token (which wakes the registered tasks).
/// The token is only cancelled through [`ShutdownTrigger::fire`]; others get child tokens.
#[derive(Clone, Default)]
pub(crate) struct ShutdownTrigger {
    flag: Arc<AtomicBool>,
    token: CancellationToken,
}

impl ShutdownTrigger {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fire(&self) {
        // The flag first: a task that is woken by the token must find it set.
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// A token cancelled when the trigger fires; cancelling it does not fire the trigger.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            flag: Arc::clone(&self.flag),
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
            registered: None,
        }
    }
}

/// Completes when shutdown begins; polled on every wake-up of a connection.
///
/// Polling a `CancellationToken`'s future takes the token's mutex, and every connection shares
/// one token: a connection that writes an event per wake-up would take it once per event. This
/// signal reads an atomic flag instead, and polls the token's future only to register a waker:
/// once, and again only when the waker changes. A registered waker stays registered, so shutdown
/// still wakes an idle connection.
pub(crate) struct ShutdownSignal {
    flag: Arc<AtomicBool>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: Option<Waker>,
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if this.cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_an_idle_task_after_one_registration() {
        let trigger = ShutdownTrigger::new();
        let waiter = tokio::spawn(trigger.signal());
        tokio::task::yield_now().await;
        trigger.fire();
        assert!(tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn child_tokens_are_cancelled_by_the_trigger_only() {
        let trigger = ShutdownTrigger::new();
        let child = trigger.child_token();
        trigger.child_token().cancel();
        assert!(!child.is_cancelled());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), trigger.signal())
                .await
                .is_err()
        );
        trigger.fire();
        assert!(child.is_cancelled());
    }
}
