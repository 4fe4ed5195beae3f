//! A server out of file descriptors backs off instead of spinning, warns once, and serves again
//! as soon as descriptors are free.
//!
//! The file limit is per process, so the server runs in a child process (this test binary,
//! running the ignored `child_server` helper) with a limit a few dozen descriptors above what it
//! has open; the test opens more connections than that from its own process.

#![cfg(target_os = "linux")]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Descriptors the child may open beyond those it has when it starts.
const SPARE_FDS: u64 = 40;
/// Connections the test opens: more than the child can accept.
const STALLED: usize = 200;

/// The server side, run by [`accept_backs_off_when_descriptors_run_out`] in a child process.
#[test]
#[ignore = "helper: run in a child process by accept_backs_off_when_descriptors_run_out"]
fn child_server() {
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count()) as u64;
    let limit = libc::rlimit {
        rlim_cur: open_fds + SPARE_FDS,
        rlim_max: open_fds + SPARE_FDS,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = poem_serve::StreamServer::bind("127.0.0.1:0").await.unwrap();
        println!("port={}", server.local_addr().unwrap().port());
        let app = poem::Route::new().at("/", poem::get(poem::endpoint::make_sync(|_| "hello")));
        // Runs until the parent closes stdin.
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            })
            .await;
        };
        server
            .run_with_graceful_shutdown(app, stdin_closed)
            .await
            .unwrap();
    });
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at "state"; utime and stime
    // are fields 14 and 15 of the whole line.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads the named configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

struct ChildServer {
    child: Child,
    /// Held open so that the child's last lines to stdout do not meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    port: u16,
    log: std::path::PathBuf,
}

impl ChildServer {
    fn start() -> Self {
        let log = std::env::temp_dir().join(format!("poem-serve-fd-{}.log", std::process::id()));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--ignored", "--nocapture"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("the child printed no port");
            }
            if let Some(port) = line.trim().strip_prefix("port=") {
                break port.parse().unwrap();
            }
        };
        Self {
            child,
            _stdout: stdout,
            port,
            log,
        }
    }

    /// Closes the child's stdin (its shutdown signal), waits for it to exit, returns its log.
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("the child server did not stop within 5 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET /` on a new connection; the time until the whole answer arrived.
fn get_hello(port: u16) -> Duration {
    let started = Instant::now();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    started.elapsed()
}

#[test]
fn accept_backs_off_when_descriptors_run_out() {
    let server = ChildServer::start();
    get_hello(server.port);

    // More connections than the child has descriptors; they send nothing and stay in its
    // listen queue once it can accept no more.
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_time(server.child.id());
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let busy = cpu_time(server.child.id()) - before;
    let window = window.elapsed();

    // Every descriptor comes back when the stalled clients leave; the server serves at once.
    drop(stalled);
    let answered = get_hello(server.port);
    let log = server.stop();
    println!("{log}");
    println!("child CPU {busy:?} in {window:?} out of descriptors; answered after {answered:?}");
    assert!(
        busy < Duration::from_millis(300),
        "the server used {busy:?} of CPU in {window:?} while out of descriptors:\n{log}"
    );
    assert!(
        answered < Duration::from_secs(1),
        "answered after {answered:?}"
    );
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "one warning per episode:\n{log}");
    assert!(warnings[0].contains("accept failed"), "{log}");
    let recovered = log
        .lines()
        .find(|l| l.contains("accept works again"))
        .unwrap_or_else(|| panic!("no line saying accept works again:\n{log}"));
    let attempts: u64 = recovered
        .split("failed_attempts=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {recovered}"));
    // 2.3 s out of descriptors: 10 ms doubling to 1 s is about ten attempts, a spin thousands.
    assert!((1..=30).contains(&attempts), "{recovered}");
}
