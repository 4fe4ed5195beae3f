//! What the benchmark reads about processes and the machine from `/proc`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time of `pid`, all threads. Uses the nanosecond run time of each thread
/// (`/proc/PID/task/*/schedstat`) where the kernel has it, since `utime` + `stime` of
/// `/proc/PID/stat` count in 10 ms ticks, too coarse for the setup cost of 1,000 HTTP/2
/// streams; falls back to `/proc/PID/stat`. Servers here keep their threads, so the per-thread
/// sum loses nothing to exited threads.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    match schedstat_time(pid) {
        Some(t) => Ok(t),
        None => stat_cpu_time(pid),
    }
}

fn schedstat_time(pid: u32) -> Option<Duration> {
    let mut total: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// User plus system CPU time of `pid`, all threads, from `/proc/PID/stat` (`utime` + `stime`).
pub fn stat_cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the fields start at `state` (field 3); utime is field 14, stime field 15.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat field {i}"))
    };
    let total = ticks(14)? + ticks(15)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks()))
}

/// CPU time of this process.
pub fn own_cpu_time() -> Result<Duration> {
    cpu_time(std::process::id())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
fn machine_jiffies() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 5 {
        return Err(anyhow!("malformed /proc/stat"));
    }
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v[3] + v[4];
    Ok((total - idle, total))
}

/// Waits until the machine's CPU use over a one-second window stays under `max_busy`
/// (a fraction of all cores), giving up after `limit`. Returns the last busy fraction seen.
pub async fn wait_quiet(max_busy: f64, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    let mut last = 1.0;
    loop {
        let Ok((b0, t0)) = machine_jiffies() else {
            return last;
        };
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let Ok((b1, t1)) = machine_jiffies() else {
            return last;
        };
        last = if t1 > t0 {
            (b1 - b0) as f64 / (t1 - t0) as f64
        } else {
            0.0
        };
        if last <= max_busy || Instant::now() >= deadline {
            return last;
        }
    }
}

/// The kernel's count of connections dropped because a listen queue was full
/// (`TcpExt ListenOverflows` of `/proc/net/netstat`); a burst of connects that overflows a
/// server's accept backlog costs each dropped client a 1 s SYN retransmit.
pub fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Raises this process's open-file soft limit to its hard limit; children inherit it.
pub fn raise_nofile_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(rss_kib(std::process::id()).expect("rss") > 0);
        let _ = own_cpu_time().expect("cpu");
        let _ = stat_cpu_time(std::process::id()).expect("stat cpu");
        let (busy, total) = machine_jiffies().expect("jiffies");
        assert!(busy <= total);
        assert!(listen_overflows().is_some());
    }
}
