//! Test support shared by every test of the workspace.
//!
//! - [`parser`]: an independent, WHATWG-conformant event-stream parser, to judge what the
//!   encoder puts on the wire.
//! - [`sse_client`]: reads an SSE stream over HTTP with bounded waits.
//! - [`redis`]: a throwaway `redis-server` on a free loopback port.
//! - [`free_port`] and [`chromium`]: a port for a server under test, the browser for end-to-end
//!   tests.
//!
//! Tools that may be missing on a developer's machine ([`redis::RedisServer::start`],
//! [`chromium`]) make a test skip with one `skipped: ...` line, except under `CI=true`, where a
//! missing tool fails the test: CI must run everything.
//!
//! ```
//! use testkit::parser::{parse_all, ParsedEvent};
//!
//! let (events, retry) = parse_all("retry: 3000\nid: 1\ndata: hello\n\n");
//! assert_eq!(events, vec![ParsedEvent::new("message", "hello", "1")]);
//! assert_eq!(retry, Some(3000));
//! ```

#![warn(missing_docs)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

pub mod parser;
pub mod redis;
pub mod redis_cluster;
pub mod sse_client;

pub use parser::{parse_all, ParsedEvent, Parser};
pub use sse_client::SseConnection;

/// A TCP port that is free on `127.0.0.1` right now.
///
/// The port is released before returning, so another process could take it before the caller
/// binds it; the kernel does not hand the same port out again soon, which makes this rare.
///
/// # Panics
///
/// If no socket can be bound on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding a socket on 127.0.0.1 failed")
}

/// The Chromium browser and its matching `chromedriver`, found on `PATH`.
///
/// When either is missing, prints the single line
/// `skipped: chromium or chromedriver is not installed` and returns `None`.
///
/// # Panics
///
/// When either is missing and the environment has `CI=true`.
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    let browser = [
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ]
    .into_iter()
    .find_map(find_executable);
    match (browser, find_executable("chromedriver")) {
        (Some(browser), Some(driver)) => Some((browser, driver)),
        _ => {
            missing("chromium or chromedriver is not installed");
            None
        }
    }
}

/// Whether the tests run in CI (`CI=true`, as CI services set it; `CI=1` counts too), where no
/// test may be skipped for a missing tool.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Reports a missing tool: one `skipped:` line locally, a panic in CI.
pub(crate) fn missing(what: &str) {
    assert!(
        !in_ci(),
        "{what}, but CI=true requires it: CI must install it (see .ci/run)"
    );
    // Written to the stderr handle itself, not through `println!`: the test harness captures the
    // print macros of passing tests, and this line must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}");
}

/// The first executable file called `name` in the directories of `PATH`.
pub(crate) fn find_executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn find_executable_searches_path() {
        assert!(find_executable("sh").is_some());
        assert!(find_executable("no-such-tool-testkit").is_none());
    }
}
