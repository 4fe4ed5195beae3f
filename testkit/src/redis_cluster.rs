//! A throwaway Redis Cluster of 3 masters and 3 replicas on free loopback ports, for tests of
//! the cluster store.
//!
//! ```no_run
//! # fn demo() -> std::io::Result<()> {
//! use testkit::redis_cluster::RedisCluster;
//!
//! // Prints "skipped: redis-server is not installed" and returns None when it is missing
//! // (and panics instead when CI=true).
//! let Some(mut cluster) = RedisCluster::start()? else { return Ok(()) };
//! let seeds = cluster.seeds(); // ["redis://127.0.0.1:PORT", ...], every node
//! let master = cluster.masters()?[0];
//! cluster.kill(master); // SIGKILL, as a crash; its replica takes over
//! cluster.wait_until_ok(std::time::Duration::from_secs(10))?;
//! # Ok(())
//! # }
//! ```
//!
//! Each node is a `redis-server` with `--cluster-enabled yes`, its own bus port
//! (`--cluster-port`), `--cluster-node-timeout 500` (a killed master's replica takes over in
//! about 1–2 s) and nothing on disk; `DEBUG` is allowed from loopback so that tests can freeze a
//! node (`DEBUG SLEEP`). The cluster is made with `redis-cli --cluster create ...
//! --cluster-replicas 1 --cluster-yes`. Every process is killed when the [`RedisCluster`] drops.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::redis::TempDir;

/// How many nodes: 3 masters, each with one replica.
const NODES: usize = 6;
/// The cluster's node timeout: how long a master may be silent before it is failed over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(500);
/// How many sets of ports `start` tries when another process takes one it picked.
const PORT_ATTEMPTS: usize = 3;
/// How long `start` waits for the cluster to form.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running Redis Cluster of child processes.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: TempDir,
}

impl RedisCluster {
    /// Starts 6 nodes, makes them a cluster of 3 masters with one replica each, and waits
    /// until every node reports `cluster_state:ok` and every replica is in sync.
    ///
    /// When `redis-server` or `redis-cli` is not installed, prints one `skipped: ...` line and
    /// returns `Ok(None)`.
    ///
    /// # Panics
    ///
    /// When they are not installed and the environment has `CI=true`.
    ///
    /// # Errors
    ///
    /// When a node can not be started or the cluster does not form in time; the error holds
    /// the end of the logs.
    pub fn start() -> io::Result<Option<Self>> {
        let (Some(server), Some(cli)) = (
            crate::find_executable("redis-server"),
            crate::find_executable("redis-cli"),
        ) else {
            crate::missing("redis-server is not installed");
            return Ok(None);
        };
        // Another process may take a port between `free_port` and the bind: try again with
        // other ports (a cluster that formed and then hangs is not retried).
        let mut attempt = 1;
        loop {
            match Self::start_with(&server, &cli) {
                Err(error)
                    if attempt < PORT_ATTEMPTS && error.kind() == io::ErrorKind::AddrInUse =>
                {
                    attempt += 1;
                }
                started => return started.map(Some),
            }
        }
    }

    fn start_with(server: &PathBuf, cli: &PathBuf) -> io::Result<Self> {
        let mut cluster = Self {
            nodes: Vec::new(),
            dir: TempDir::new("redis-cluster")?,
        };
        // Every port (each node's and its bus port) distinct before any node binds one.
        let mut ports = std::collections::BTreeSet::new();
        while ports.len() < 2 * NODES {
            ports.insert(crate::free_port());
        }
        let mut ports = ports.into_iter();
        for _ in 0..NODES {
            let (Some(port), Some(bus)) = (ports.next(), ports.next()) else {
                unreachable!("2 * NODES ports were collected");
            };
            let child = cluster.spawn(server, port, bus)?;
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for index in 0..cluster.nodes.len() {
            let port = cluster.nodes[index].port;
            while ping(port).is_err() {
                let exited = cluster.nodes[index]
                    .child
                    .as_mut()
                    .is_some_and(|child| !matches!(child.try_wait(), Ok(None)));
                if exited {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        cluster.failure(format!("node {port} exited (a port was taken?)")),
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(cluster.failure(format!("node {port} did not answer")));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new(cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !created.status.success() {
            return Err(cluster.failure(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout)
            )));
        }
        cluster.wait_until_ok(deadline.saturating_duration_since(Instant::now()))?;
        Ok(cluster)
    }

    /// A cluster shared by every caller that holds it at the same time (tests of one binary that
    /// run side by side and leave the cluster as they found it): started by the first, stopped
    /// when the last one drops it. Tests that kill or reshard nodes use [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn shared() -> io::Result<Option<Arc<Self>>> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return Ok(Some(cluster));
        }
        let Some(cluster) = Self::start()? else {
            return Ok(None);
        };
        let cluster = Arc::new(cluster);
        *shared = Arc::downgrade(&cluster);
        Ok(Some(cluster))
    }

    /// `redis://127.0.0.1:PORT` of every node started (running or not).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// The ports of every node started.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The ports of the running masters that own slots, as the cluster sees them now.
    ///
    /// # Errors
    ///
    /// When no running node answers `CLUSTER NODES`.
    pub fn masters(&mut self) -> io::Result<Vec<u16>> {
        Ok(self
            .topology()?
            .into_iter()
            .filter(|node| node.master_of.is_none() && node.slots)
            .map(|node| node.port)
            .collect())
    }

    /// The port of a running replica of the master at `master`, if it has one.
    ///
    /// # Errors
    ///
    /// When no running node answers `CLUSTER NODES`.
    pub fn replica_of(&mut self, master: u16) -> io::Result<Option<u16>> {
        let topology = self.topology()?;
        let Some(id) = topology
            .iter()
            .find(|node| node.port == master)
            .map(|node| node.id.clone())
        else {
            return Ok(None);
        };
        Ok(topology
            .iter()
            .find(|node| node.master_of.as_deref() == Some(id.as_str()))
            .map(|node| node.port))
    }

    /// Moves `slots` slots from the master at `from` to the master at `to`, live
    /// (`redis-cli --cluster reshard`), and returns when they are moved.
    ///
    /// # Errors
    ///
    /// When `redis-cli` fails; the error holds its output.
    pub fn reshard(&self, from: u16, to: u16, slots: u16) -> io::Result<()> {
        let cli = crate::find_executable("redis-cli")
            .ok_or_else(|| io::Error::other("redis-cli is not installed"))?;
        let id = |port| self.command(port, "CLUSTER MYID");
        let output = Command::new(cli)
            .args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{from}"))
            .arg("--cluster-from")
            .arg(id(from)?)
            .arg("--cluster-to")
            .arg(id(to)?)
            .arg("--cluster-slots")
            .arg(slots.to_string())
            .args(["--cluster-pipeline", "100", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "redis-cli --cluster reshard failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }

    /// Kills the node at `port` abruptly (SIGKILL, as a crash) and waits for it to exit.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Sends one command (inline: words separated by spaces) to the node at `port` and returns
    /// its reply as text (a status, an error, a number or a bulk string; arrays are not read).
    ///
    /// # Errors
    ///
    /// When the node does not answer within a second.
    pub fn command(&self, port: u16, command: &str) -> io::Result<String> {
        query(port, command, Duration::from_secs(1))
    }

    /// Waits until every running node reports `cluster_state:ok`, sees every slot served, and
    /// every running replica's link to its master is up.
    ///
    /// # Errors
    ///
    /// When that does not happen within `timeout`; the error holds what the nodes said.
    pub fn wait_until_ok(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut waiting = Vec::new();
            for port in self.running() {
                let info =
                    query(port, "CLUSTER INFO", Duration::from_millis(500)).unwrap_or_default();
                if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                    waiting.push(format!("{port}: {}", first_line(&info, "cluster_state")));
                    continue;
                }
                let replication =
                    query(port, "INFO replication", Duration::from_millis(500)).unwrap_or_default();
                if replication.contains("role:slave")
                    && !replication.contains("master_link_status:up")
                {
                    waiting.push(format!("{port}: replica not in sync"));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format!(
                    "the cluster is not ok after {timeout:?}: {}",
                    waiting.join("; ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&mut self) -> Vec<u16> {
        self.nodes
            .iter_mut()
            .filter_map(|node| {
                let child = node.child.as_mut()?;
                matches!(child.try_wait(), Ok(None)).then_some(node.port)
            })
            .collect()
    }

    /// The running nodes as the first one that answers sees them.
    fn topology(&mut self) -> io::Result<Vec<NodeView>> {
        let running = self.running();
        let mut last = io::Error::other("no node is running");
        for port in running.iter().copied() {
            match query(port, "CLUSTER NODES", Duration::from_millis(500)) {
                Ok(nodes) => {
                    return Ok(nodes
                        .lines()
                        .filter_map(NodeView::parse)
                        .filter(|node| running.contains(&node.port) && !node.failed)
                        .collect())
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    fn spawn(&self, server: &PathBuf, port: u16, bus: u16) -> io::Result<Child> {
        let dir = self.dir.path.join(port.to_string());
        fs::create_dir_all(&dir)?;
        let log = File::create(dir.join("redis.log"))?;
        Command::new(server)
            .arg("--port")
            .arg(port.to_string())
            .arg("--cluster-port")
            .arg(bus.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .arg("--cluster-node-timeout")
            .arg(NODE_TIMEOUT.as_millis().to_string())
            // A replica may always take over (the tests make replicas lag on purpose), and
            // replicas stay with their master.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-replica-migration", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--enable-debug-command", "local"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    fn failure(&self, what: String) -> io::Error {
        let mut tails = String::new();
        for node in &self.nodes {
            let log =
                fs::read_to_string(self.dir.path.join(node.port.to_string()).join("redis.log"))
                    .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            tails.push_str(&format!(
                "\n--- node {} ---\n{}",
                node.port,
                lines[lines.len().saturating_sub(8)..].join("\n")
            ));
        }
        io::Error::other(format!("{what}{tails}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A line of `CLUSTER NODES`.
struct NodeView {
    id: String,
    port: u16,
    master_of: Option<String>,
    slots: bool,
    failed: bool,
}

impl NodeView {
    /// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...`
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let id = (*fields.first()?).to_owned();
        let port = fields
            .get(1)?
            .split('@')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags = fields.get(2)?;
        let master = fields.get(3)?;
        Some(Self {
            id,
            port,
            master_of: (*master != "-").then(|| (*master).to_owned()),
            slots: fields.len() > 8,
            failed: flags.contains("fail") && !flags.contains("fail?"),
        })
    }
}

fn first_line(text: &str, prefix: &str) -> String {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or("no answer")
        .trim()
        .to_owned()
}

fn ping(port: u16) -> io::Result<()> {
    let reply = query(port, "PING", Duration::from_millis(300))?;
    if reply == "PONG" {
        Ok(())
    } else {
        Err(io::Error::other(reply))
    }
}

/// Sends an inline command and reads one reply that is not an array.
fn query(port: u16, command: &str, timeout: Duration) -> io::Result<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+" | "-" | ":", rest)) => Ok(rest.to_owned()),
        Some(("$", length)) => {
            let length: usize = length
                .parse()
                .map_err(|_| io::Error::other(format!("unexpected reply {line:?}")))?;
            let mut text = vec![0; length + 2];
            reader.read_exact(&mut text)?;
            text.truncate(length);
            Ok(String::from_utf8_lossy(&text).into_owned())
        }
        _ => Err(io::Error::other(format!("unexpected reply {line:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_three_masters_with_a_replica_each_and_stops_them() {
        let Some(mut cluster) = RedisCluster::start().unwrap() else {
            return;
        };
        let masters = cluster.masters().unwrap();
        assert_eq!(masters.len(), 3, "{masters:?}");
        for master in &masters {
            assert!(cluster.replica_of(*master).unwrap().is_some());
        }
        let ports = cluster.ports();
        let dir = cluster.dir.path.clone();
        drop(cluster);
        for port in ports {
            assert!(ping(port).is_err(), "node {port} still answers");
        }
        assert!(!dir.exists());
    }

    #[test]
    fn a_killed_master_is_replaced_by_its_replica() {
        let Some(mut cluster) = RedisCluster::start().unwrap() else {
            return;
        };
        let master = cluster.masters().unwrap()[0];
        let replica = cluster.replica_of(master).unwrap().expect("a replica");
        cluster.kill(master);
        cluster.wait_until_ok(Duration::from_secs(10)).unwrap();
        assert!(cluster.masters().unwrap().contains(&replica));
    }
}
