//! What a Redis error means for the store: its [`StoreError`] kind, and whether it is about one
//! key (that channel alone is affected) or about the connection (every channel is).

use std::time::Duration;

use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreError;

/// `err`, from `operation` on `key` (if the command was about one key), as a [`StoreError`] of
/// the right kind: a timeout leaves the outcome unknown, a lost connection did nothing, a key
/// of another type names the key.
pub(super) fn store_error(
    err: &RedisError,
    key: Option<&str>,
    operation: &'static str,
    timeout: Duration,
) -> StoreError {
    if err.is_timeout() {
        return StoreError::Timeout { operation, timeout };
    }
    if is_connection_error(err) || is_topology_error(err) {
        return StoreError::Connection(format!("redis: {err}"));
    }
    match key {
        Some(key) if is_wrong_type(err) => wrong_type(key, err),
        _ => StoreError::Backend(format!("redis: {err}")),
    }
}

/// The error of a channel whose key holds another type than a stream.
pub(super) fn wrong_type(key: &str, err: &RedisError) -> StoreError {
    StoreError::WrongKeyType {
        key: key.to_owned(),
        detail: format!("it is not a stream (another program stored another type there): {err}"),
    }
}

/// Whether the connection (rather than the command) failed: every channel is affected.
pub(super) fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

/// An error answered by the server about one key (its type, typically), rather than about the
/// connection or the server as a whole.
pub(super) fn is_key_error(err: &RedisError) -> bool {
    !is_connection_error(err)
        && !is_topology_error(err)
        && (is_wrong_type(err) || err.kind() == ErrorKind::Server(ServerErrorKind::ResponseError))
}

/// A cluster's answer that the slot is served elsewhere or is changing hands: `MOVED`, `ASK`,
/// `TRYAGAIN` (mid-migration), `CLUSTERDOWN` (a failed master awaits its replacement),
/// `UNBLOCKED` (a blocked read on a master that was demoted), `MASTERDOWN`, `READONLY` (a
/// replica), `LOADING`. The reader re-routes and resumes; it never takes them as "this channel
/// is broken".
pub(super) fn is_topology_error(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
        )
    ) || err.code() == Some("UNBLOCKED")
}

fn is_wrong_type(err: &RedisError) -> bool {
    err.code() == Some("WRONGTYPE") || err.to_string().contains("WRONGTYPE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, detail: &str) -> RedisError {
        ::redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            format!("{code} {detail}"),
        ))
    }

    #[test]
    fn each_failure_keeps_its_kind() {
        let timeout = Duration::from_millis(500);
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(matches!(
            store_error(&io, Some("sse:a"), "append", timeout),
            StoreError::Connection(_)
        ));
        let timed_out = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert_eq!(
            store_error(&timed_out, Some("sse:a"), "append", timeout),
            StoreError::Timeout {
                operation: "append",
                timeout
            }
        );
        let wrong = server_error(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
        );
        match store_error(&wrong, Some("sse:a"), "append", timeout) {
            StoreError::WrongKeyType { key, detail } => {
                assert_eq!(key, "sse:a");
                assert!(detail.contains("not a stream"), "{detail}");
            }
            other => panic!("expected WrongKeyType, got {other:?}"),
        }
        assert!(is_key_error(&wrong));
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "An error was signalled by the server",
            "1234 127.0.0.1:7000".to_owned(),
        ));
        let unblocked = ::redis::make_extension_error("UNBLOCKED".to_owned(), None);
        for topology in [moved, unblocked] {
            assert!(is_topology_error(&topology), "{topology}");
            assert!(!is_key_error(&topology), "never a broken key: {topology}");
            assert!(matches!(
                store_error(&topology, Some("sse:a"), "append", timeout),
                StoreError::Connection(_)
            ));
        }
        let other = server_error("ERR", "something else");
        assert!(matches!(
            store_error(&other, None, "head", timeout),
            StoreError::Backend(_)
        ));
    }
}
