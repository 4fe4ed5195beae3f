//! Figures of the machine, read from `/proc` once a second.
//!
//! Counters in `/proc` are totals since boot; a [`Sampler`] keeps the previous reading and turns
//! them into rates. A file that can not be read (not Linux, a restricted container) leaves its
//! widgets without new samples instead of failing the others.

use std::{collections::HashMap, fs, path::Path, time::Instant};

use serde::{Deserialize, Serialize};

/// A figure of the machine, published on a channel of its own. Its channel name is written here
/// and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Figure {
    /// Busy share of all CPUs, in percent.
    Cpu,
    /// Busy share of each CPU, in percent.
    Cores,
    /// Memory in use, in percent.
    Mem,
    /// Swap in use, in percent.
    Swap,
    /// Load averages over 1, 5 and 15 minutes.
    Load,
    /// Bytes received and sent per second on every interface but loopback, in KiB.
    Net,
    /// Bytes read and written per second on whole disks, in KiB.
    Disk,
    /// Running and blocked processes.
    Procs,
    /// Context switches and interrupts per second.
    Ctxt,
    /// Processes created per second.
    Forks,
    /// Time since boot, in hours.
    Uptime,
}

impl Figure {
    /// Every figure.
    #[cfg(test)]
    pub const ALL: [Figure; 11] = [
        Figure::Cpu,
        Figure::Cores,
        Figure::Mem,
        Figure::Swap,
        Figure::Load,
        Figure::Net,
        Figure::Disk,
        Figure::Procs,
        Figure::Ctxt,
        Figure::Forks,
        Figure::Uptime,
    ];

    /// The channel the figure is published on.
    pub fn channel(self) -> &'static str {
        match self {
            Figure::Cpu => "sys.cpu",
            Figure::Cores => "sys.cores",
            Figure::Mem => "sys.mem",
            Figure::Swap => "sys.swap",
            Figure::Load => "sys.load",
            Figure::Net => "sys.net",
            Figure::Disk => "sys.disk",
            Figure::Procs => "sys.procs",
            Figure::Ctxt => "sys.ctxt",
            Figure::Forks => "sys.forks",
            Figure::Uptime => "sys.uptime",
        }
    }
}

/// One point of a widget's chart: a value per series, and the text the widget shows. Published
/// as the JSON data of a `sample` event, and read back from the store to render a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// One value per series of the widget, in the widget's unit.
    pub v: Vec<f64>,
    /// The figure as the widget shows it.
    pub text: String,
}

/// Reads `/proc` and produces one [`Sample`] per [`Figure`].
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<Counters>,
}

/// The cumulative counters that rates are computed from.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    /// Per CPU line of `/proc/stat` (`cpu`, `cpu0`, ...): (busy, total) jiffies.
    cpu: Vec<(u64, u64)>,
    ctxt: u64,
    intr: u64,
    forks: u64,
    net: (u64, u64),
    disk: (u64, u64),
}

impl Sampler {
    /// Reads the current figures. The first call has no rates yet and returns only the figures
    /// that need no previous reading.
    pub fn sample(&mut self) -> Vec<(Figure, Sample)> {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let now = Counters {
            at: Instant::now(),
            cpu: cpu_lines(&stat),
            ctxt: stat_value(&stat, "ctxt"),
            intr: stat_value(&stat, "intr"),
            forks: stat_value(&stat, "processes"),
            net: net_bytes(),
            disk: disk_bytes(),
        };
        let mut out = Vec::with_capacity(10);
        out.extend(memory());
        out.extend(load(&stat));
        if let Some(uptime) = uptime() {
            out.push((Figure::Uptime, uptime));
        }
        if let Some(before) = self.previous.replace(now.clone()) {
            out.extend(rates(&before, &now));
        }
        out
    }
}

fn rates(before: &Counters, now: &Counters) -> Vec<(Figure, Sample)> {
    let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let busy: Vec<f64> = before
        .cpu
        .iter()
        .zip(&now.cpu)
        .map(|(&(b0, t0), &(b1, t1))| {
            let total = t1.saturating_sub(t0);
            if total == 0 {
                0.0
            } else {
                100.0 * b1.saturating_sub(b0) as f64 / total as f64
            }
        })
        .collect();
    let mut out = Vec::new();
    if let Some((&total, cores)) = busy.split_first() {
        out.push((
            Figure::Cpu,
            Sample {
                v: vec![round1(total)],
                text: format!("{total:.1} %"),
            },
        ));
        let text = cores
            .iter()
            .map(|c| format!("{c:.0}%"))
            .collect::<Vec<_>>()
            .join(" · ");
        out.push((
            Figure::Cores,
            Sample {
                v: cores.iter().copied().map(round1).collect(),
                text,
            },
        ));
    }
    let (rx, tx) = (
        rate(before.net.0, now.net.0) / 1024.0,
        rate(before.net.1, now.net.1) / 1024.0,
    );
    out.push((
        Figure::Net,
        Sample {
            v: vec![round1(rx), round1(tx)],
            text: format!("↓ {} ↑ {}", per_second(rx), per_second(tx)),
        },
    ));
    let (read, write) = (
        rate(before.disk.0, now.disk.0) / 1024.0,
        rate(before.disk.1, now.disk.1) / 1024.0,
    );
    out.push((
        Figure::Disk,
        Sample {
            v: vec![round1(read), round1(write)],
            text: format!("read {} · write {}", per_second(read), per_second(write)),
        },
    ));
    let (ctxt, intr) = (rate(before.ctxt, now.ctxt), rate(before.intr, now.intr));
    out.push((
        Figure::Ctxt,
        Sample {
            v: vec![ctxt.round(), intr.round()],
            text: format!("{ctxt:.0} switches/s · {intr:.0} irq/s"),
        },
    ));
    let forks = rate(before.forks, now.forks);
    out.push((
        Figure::Forks,
        Sample {
            v: vec![round1(forks)],
            text: format!("{forks:.1} new processes/s"),
        },
    ));
    out
}

fn memory() -> Vec<(Figure, Sample)> {
    let Ok(text) = fs::read_to_string("/proc/meminfo") else {
        return Vec::new();
    };
    let fields: HashMap<&str, u64> = text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            Some((key, rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    let kib = |key: &str| fields.get(key).copied().unwrap_or(0);
    let mut out = Vec::new();
    let (total, available) = (kib("MemTotal"), kib("MemAvailable"));
    if total > 0 {
        let used = total.saturating_sub(available);
        out.push((
            Figure::Mem,
            Sample {
                v: vec![round1(100.0 * used as f64 / total as f64)],
                text: format!("{} of {}", size(used), size(total)),
            },
        ));
    }
    let (swap_total, swap_free) = (kib("SwapTotal"), kib("SwapFree"));
    let used = swap_total.saturating_sub(swap_free);
    out.push((
        Figure::Swap,
        Sample {
            v: vec![if swap_total == 0 {
                0.0
            } else {
                round1(100.0 * used as f64 / swap_total as f64)
            }],
            text: if swap_total == 0 {
                "no swap".to_owned()
            } else {
                format!("{} of {}", size(used), size(swap_total))
            },
        },
    ));
    out
}

fn load(stat: &str) -> Vec<(Figure, Sample)> {
    let Ok(text) = fs::read_to_string("/proc/loadavg") else {
        return Vec::new();
    };
    let mut parts = text.split_whitespace();
    let loads: Vec<f64> = parts
        .by_ref()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total = parts
        .next()
        .and_then(|x| x.split_once('/'))
        .and_then(|(_, total)| total.parse::<u64>().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    if loads.len() == 3 {
        out.push((
            Figure::Load,
            Sample {
                text: format!("{:.2} · {:.2} · {:.2}", loads[0], loads[1], loads[2]),
                v: loads,
            },
        ));
    }
    let (running, blocked) = (
        stat_value(stat, "procs_running"),
        stat_value(stat, "procs_blocked"),
    );
    out.push((
        Figure::Procs,
        Sample {
            v: vec![running as f64, blocked as f64],
            text: format!("{running} running · {blocked} blocked · {total} threads"),
        },
    ));
    out
}

fn uptime() -> Option<Sample> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    let secs = secs as u64;
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    Some(Sample {
        v: vec![(secs as f64 / 3_600.0 * 100.0).round() / 100.0],
        text: if days > 0 {
            format!("{days} d {hours:02}:{minutes:02}:{seconds:02}")
        } else {
            format!("{hours:02}:{minutes:02}:{seconds:02}")
        },
    })
}

/// (busy, total) jiffies of each `cpu*` line; busy excludes idle and iowait.
fn cpu_lines(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|line| line.starts_with("cpu"))
        .map(|line| {
            let values: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest is counted in user).
            let total: u64 = values.iter().take(8).sum();
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            (total.saturating_sub(idle), total)
        })
        .collect()
}

/// The first number after `key` on its line of `/proc/stat`.
fn stat_value(stat: &str, key: &str) -> u64 {
    stat.lines()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == key).then(|| parts.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// Received and sent bytes over all interfaces but loopback.
fn net_bytes() -> (u64, u64) {
    let text = fs::read_to_string("/proc/net/dev").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let values: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*values.first()?, *values.get(8)?))
        })
        .fold((0, 0), |(rx, tx), (r, t)| (rx + r, tx + t))
}

/// Bytes read and written on whole disks (those listed in `/sys/block`, loop devices excluded).
fn disk_bytes() -> (u64, u64) {
    let text = fs::read_to_string("/proc/diskstats").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let name = *parts.get(2)?;
            if name.starts_with("loop") || !Path::new("/sys/block").join(name).exists() {
                return None;
            }
            let sectors = |i: usize| parts.get(i)?.parse::<u64>().ok();
            Some((sectors(5)? * 512, sectors(9)? * 512))
        })
        .fold((0, 0), |(r, w), (a, b)| (r + a, w + b))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A size given in KiB, in the largest unit that keeps it above 1.
fn size(kib: u64) -> String {
    let kib = kib as f64;
    if kib >= 1024.0 * 1024.0 {
        format!("{:.1} GiB", kib / 1024.0 / 1024.0)
    } else if kib >= 1024.0 {
        format!("{:.0} MiB", kib / 1024.0)
    } else {
        format!("{kib:.0} KiB")
    }
}

/// A rate given in KiB/s.
fn per_second(kib: f64) -> String {
    if kib >= 1024.0 {
        format!("{:.1} MiB/s", kib / 1024.0)
    } else {
        format!("{kib:.1} KiB/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let stat =
            "cpu  10 0 10 70 10 0 0 0 0 0\ncpu0 5 0 5 35 5 0 0 0 0 0\nctxt 42\nprocesses 7\n";
        assert_eq!(cpu_lines(stat), vec![(20, 100), (10, 50)]);
        assert_eq!(stat_value(stat, "ctxt"), 42);
        assert_eq!(stat_value(stat, "processes"), 7);
        assert_eq!(stat_value(stat, "missing"), 0);
    }

    #[test]
    fn second_sample_has_every_figure() {
        let mut sampler = Sampler::default();
        let _ = sampler.sample();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let figures: Vec<_> = sampler.sample().into_iter().map(|(f, _)| f).collect();
        if Path::new("/proc/stat").exists() {
            for figure in Figure::ALL {
                assert!(figures.contains(&figure), "{figure:?} missing");
            }
        }
    }
}
