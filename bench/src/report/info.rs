//! Facts about the run for the report's header: date, machine, toolchain and crate versions.

/// Facts about the run for the report's header.
pub struct RunInfo {
    pub date: String,
    pub machine: Vec<String>,
    pub versions: Vec<String>,
    pub command: String,
    pub reps: usize,
    pub smoke: bool,
    /// Whether servers and generator were pinned to separate cores.
    pub pinned: bool,
}

impl RunInfo {
    /// Reads the machine from `/proc`, the versions from `rustc` and `Cargo.lock` (in the
    /// current directory); a fact that cannot be read is left empty or `unknown`. `nofile` is
    /// the open-file limit the driver raised itself to.
    pub fn collect(reps: usize, smoke: bool, command: &str, nofile: u64) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
        let crate_versions: Vec<String> = ["poem", "axum", "hyper", "h2", "tokio", "rustls"]
            .iter()
            .filter_map(|name| {
                let needle = format!("name = \"{name}\"\nversion = \"");
                let i = lock.find(&needle)? + needle.len();
                let v = lock[i..].split('"').next()?;
                Some(format!("{name} {v}"))
            })
            .collect();
        RunInfo {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            machine: vec![
                format!("CPU: {model}; {cores} core(s); memory {mem}"),
                format!("Linux {}; open files per process: {nofile}", kernel.trim()),
            ],
            versions: vec![
                command_output("rustc", &["--version"]),
                format!("crates (Cargo.lock): {}", crate_versions.join(", ")),
            ],
            command: command.into(),
            reps,
            smoke,
            pinned: false,
        }
    }
}

/// The trimmed standard output of a command, or nothing when it cannot run.
fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
