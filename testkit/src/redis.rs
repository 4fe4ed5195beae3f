//! A throwaway `redis-server` on a free loopback port, for tests of the Redis store.
//!
//! ```no_run
//! # fn demo() -> std::io::Result<()> {
//! use testkit::redis::RedisServer;
//!
//! // Prints "skipped: redis-server is not installed" and returns None when it is missing
//! // (and panics instead when CI=true).
//! let Some(mut redis) = RedisServer::start()? else { return Ok(()) };
//! let url = redis.url(); // redis://127.0.0.1:PORT
//! // ... connect the store, publish ...
//! redis.restart()?; // same port, empty data set
//! # Ok(())
//! # }
//! ```
//!
//! The server keeps nothing on disk (`--save "" --appendonly no`), so a restart starts with an
//! empty data set, as after losing a cache node. It is killed when the [`RedisServer`] drops.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait for a started server to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports `start` tries when another process takes the one it picked.
const PORT_ATTEMPTS: usize = 3;

/// A `redis-server` child process bound to `127.0.0.1` on a port of its own.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` from `PATH` on a free loopback port and waits until it answers
    /// `PING`.
    ///
    /// When `redis-server` is not installed, prints the single line
    /// `skipped: redis-server is not installed` and returns `Ok(None)`, so the calling test can
    /// return early.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed and the environment has `CI=true`: CI must run
    /// every test.
    ///
    /// # Errors
    ///
    /// When the server can not be spawned or does not answer within 10 seconds; the error
    /// includes the end of its log.
    pub fn start() -> io::Result<Option<Self>> {
        let Some(binary) = crate::find_executable("redis-server") else {
            crate::missing("redis-server is not installed");
            return Ok(None);
        };
        let mut server = Self {
            binary,
            port: 0,
            dir: TempDir::new("redis")?,
            child: None,
        };
        let mut attempt = 1;
        loop {
            server.port = crate::free_port();
            match server.spawn() {
                Ok(()) => return Ok(Some(server)),
                // Another process may have taken the port between `free_port` and the bind:
                // the server then exits at once, so try another port. A hang is not retried.
                Err(error)
                    if error.kind() != io::ErrorKind::TimedOut && attempt < PORT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (it stays the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server (abruptly, as a crash would) and waits for it to exit. Does nothing if
    /// it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killing an already exited child fails harmlessly; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a fresh one on the same port (with an empty
    /// data set) and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// When the server can not be started again, for example because another process took the
    /// port meanwhile.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        if let Err(error) = self.wait_until_ready() {
            self.stop();
            return Err(io::Error::new(
                error.kind(),
                format!(
                    "redis-server on port {} did not become ready: {error}\n--- its log ---\n{}",
                    self.port,
                    self.log_tail()
                ),
            ));
        }
        Ok(())
    }

    /// Waits until the server answers `PING`, and checks that the answer came from our process
    /// (not from another server that holds the port).
    fn wait_until_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!("it exited with {status}")));
                }
            }
            if let Ok(pid) = ping_and_get_pid(address) {
                let ours = self.child.as_ref().map(Child::id);
                return if Some(pid) == ours {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another redis-server (pid {pid}) answers on the port"),
                    ))
                };
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no PONG within {STARTUP_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path.join("redis.log")
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `PING` and `INFO server` as inline commands; returns the server's `process_id` if it
/// answered `+PONG`.
fn ping_and_get_pid(address: SocketAddr) -> io::Result<u32> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"PING\r\nINFO server\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("+PONG") {
        return Err(io::Error::other(format!("unexpected answer {line:?}")));
    }
    // The INFO answer is a bulk string: `$<length>\r\n<text>\r\n`.
    line.clear();
    reader.read_line(&mut line)?;
    let length: usize = line
        .trim_end()
        .strip_prefix('$')
        .and_then(|length| length.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected INFO answer {line:?}")))?;
    let mut info = vec![0; length];
    reader.read_exact(&mut info)?;
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
        .ok_or_else(|| io::Error::other("INFO server has no process_id"))
}

/// A uniquely named directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(prefix: &str) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "testkit-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path)?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(port: u16) -> io::Result<u32> {
        ping_and_get_pid(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    #[test]
    fn starts_restarts_on_the_same_port_and_stops() {
        let Some(mut redis) = RedisServer::start().unwrap() else {
            return;
        };
        let port = redis.port();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
        let first_pid = ping(port).unwrap();

        redis.stop();
        assert!(!redis.is_running());
        assert!(ping(port).is_err(), "the stopped server still answers");

        redis.restart().unwrap();
        assert!(redis.is_running());
        assert_eq!(redis.port(), port);
        assert_ne!(ping(port).unwrap(), first_pid);

        let dir = redis.dir.path.clone();
        drop(redis);
        assert!(ping(port).is_err(), "the dropped server still answers");
        assert!(!dir.exists(), "the temp dir was not removed");
    }

    #[test]
    fn restart_while_running() {
        let Some(mut redis) = RedisServer::start().unwrap() else {
            return;
        };
        let before = ping(redis.port()).unwrap();
        redis.restart().unwrap();
        assert_ne!(ping(redis.port()).unwrap(), before);
    }
}
