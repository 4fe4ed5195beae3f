//! Figures of the machine, read once a second.
//!
//! CPU, memory, swap, load, network, disk and uptime are read through `sysinfo`, on Linux,
//! macOS and Windows alike (the load average is not on Windows). The scheduler's counters
//! (context switches, interrupts, processes created, running and blocked tasks) exist only in
//! Linux's `/proc` ([`linux`]); elsewhere their widgets get no samples.
//!
//! Counters are totals since boot (or since the interface or disk appeared); a [`Sampler`] keeps
//! the previous reading and turns them into rates.

#[cfg(target_os = "linux")]
mod linux;

use std::{collections::HashSet, time::Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{DiskRefreshKind, Disks, Networks, System};

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

    /// Whether this platform has a source for the figure.
    #[cfg(test)]
    pub fn available(self) -> bool {
        match self {
            Figure::Procs | Figure::Ctxt | Figure::Forks => cfg!(target_os = "linux"),
            Figure::Load => !cfg!(windows),
            _ => true,
        }
    }

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// One value per series of the widget, in the widget's unit.
    pub v: Vec<f64>,
    /// The figure as the widget shows it.
    pub text: String,
}

/// Reads the machine's figures and produces one [`Sample`] per [`Figure`] this platform has.
#[derive(Debug)]
pub struct Sampler {
    system: System,
    networks: Networks,
    disks: Disks,
    previous: Option<Counters>,
}

/// The cumulative counters that rates are computed from.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    /// Bytes received and sent, all interfaces but loopback.
    net: (u64, u64),
    /// Bytes read and written, each mounted disk once.
    disk: (u64, u64),
    #[cfg(target_os = "linux")]
    kernel: linux::Counters,
}

impl Default for Sampler {
    fn default() -> Self {
        let mut system = System::new();
        // CPU usage is the busy share between two refreshes: this is the first.
        system.refresh_cpu_usage();
        Sampler {
            system,
            networks: Networks::new_with_refreshed_list(),
            disks: Disks::new_with_refreshed_list_specifics(disk_io()),
            previous: None,
        }
    }
}

impl Sampler {
    /// Reads the current figures. The first call has no rates yet and returns only the figures
    /// that need no previous reading.
    pub fn sample(&mut self) -> Vec<(Figure, Sample)> {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.networks.refresh(true);
        self.disks.refresh_specifics(true, disk_io());
        #[cfg(target_os = "linux")]
        let (kernel, tasks) = linux::read();
        let now = Counters {
            at: Instant::now(),
            net: net_bytes(&self.networks),
            disk: disk_bytes(&self.disks),
            #[cfg(target_os = "linux")]
            kernel,
        };
        let mut out = Vec::with_capacity(11);
        out.extend(memory(&self.system));
        if let Some(load) = load() {
            out.push((Figure::Load, load));
        }
        #[cfg(target_os = "linux")]
        out.push((Figure::Procs, procs(tasks)));
        out.push((Figure::Uptime, uptime(System::uptime())));
        if let Some(before) = self.previous.replace(now.clone()) {
            out.extend(cpu(&self.system));
            out.extend(rates(&before, &now));
        }
        out
    }
}

fn disk_io() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_io_usage()
}

fn cpu(system: &System) -> Vec<(Figure, Sample)> {
    let total = f64::from(system.global_cpu_usage());
    let cores: Vec<f64> = system
        .cpus()
        .iter()
        .map(|c| f64::from(c.cpu_usage()))
        .collect();
    let text = cores
        .iter()
        .map(|c| format!("{c:.0}%"))
        .collect::<Vec<_>>()
        .join(" · ");
    vec![
        (
            Figure::Cpu,
            Sample {
                v: vec![round1(total)],
                text: format!("{total:.1} %"),
            },
        ),
        (
            Figure::Cores,
            Sample {
                v: cores.into_iter().map(round1).collect(),
                text,
            },
        ),
    ]
}

fn rates(before: &Counters, now: &Counters) -> Vec<(Figure, Sample)> {
    let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let mut out = Vec::new();
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
    #[cfg(target_os = "linux")]
    {
        let (b, n) = (&before.kernel, &now.kernel);
        let (ctxt, intr) = (rate(b.ctxt, n.ctxt), rate(b.intr, n.intr));
        out.push((
            Figure::Ctxt,
            Sample {
                v: vec![ctxt.round(), intr.round()],
                text: format!("{ctxt:.0} switches/s · {intr:.0} irq/s"),
            },
        ));
        let forks = rate(b.forks, n.forks);
        out.push((
            Figure::Forks,
            Sample {
                v: vec![round1(forks)],
                text: format!("{forks:.1} new processes/s"),
            },
        ));
    }
    out
}

fn memory(system: &System) -> Vec<(Figure, Sample)> {
    let kib = |bytes: u64| bytes / 1024;
    let mut out = Vec::new();
    let (total, available) = (kib(system.total_memory()), kib(system.available_memory()));
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
    let (swap_total, used) = (kib(system.total_swap()), kib(system.used_swap()));
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

/// The load averages; Windows has none.
fn load() -> Option<Sample> {
    if cfg!(windows) {
        return None;
    }
    let load = System::load_average();
    let loads = vec![load.one, load.five, load.fifteen];
    Some(Sample {
        text: format!("{:.2} · {:.2} · {:.2}", loads[0], loads[1], loads[2]),
        v: loads,
    })
}

#[cfg(target_os = "linux")]
fn procs(tasks: linux::Tasks) -> Sample {
    let linux::Tasks {
        running,
        blocked,
        threads,
    } = tasks;
    Sample {
        v: vec![running as f64, blocked as f64],
        text: format!("{running} running · {blocked} blocked · {threads} threads"),
    }
}

fn uptime(secs: u64) -> Sample {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    Sample {
        v: vec![(secs as f64 / 3_600.0 * 100.0).round() / 100.0],
        text: if days > 0 {
            format!("{days} d {hours:02}:{minutes:02}:{seconds:02}")
        } else {
            format!("{hours:02}:{minutes:02}:{seconds:02}")
        },
    }
}

/// Received and sent bytes over all interfaces but loopback (`lo` on Linux, `lo0` on macOS,
/// the loopback pseudo-interface on Windows).
fn net_bytes(networks: &Networks) -> (u64, u64) {
    networks
        .iter()
        .filter(|(name, _)| !is_loopback(name))
        .fold((0, 0), |(rx, tx), (_, data)| {
            (rx + data.total_received(), tx + data.total_transmitted())
        })
}

fn is_loopback(name: &str) -> bool {
    name == "lo" || name == "lo0" || name.to_ascii_lowercase().contains("loopback")
}

/// Bytes read and written on the mounted disks, each device once (a device mounted at several
/// places, as bind mounts in containers are, is counted once).
fn disk_bytes(disks: &Disks) -> (u64, u64) {
    let mut seen = HashSet::new();
    disks
        .list()
        .iter()
        .filter(|disk| seen.insert(disk.name().to_owned()))
        .fold((0, 0), |(r, w), disk| {
            let usage = disk.usage();
            (r + usage.total_read_bytes, w + usage.total_written_bytes)
        })
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
    fn uptime_reads_as_a_clock() {
        assert_eq!(uptime(3_725).text, "01:02:05");
        assert_eq!(uptime(90_061).text, "1 d 01:01:01");
        assert!(is_loopback("lo") && is_loopback("lo0") && !is_loopback("eth0"));
    }

    #[test]
    fn second_sample_has_every_figure() {
        let mut sampler = Sampler::default();
        let _ = sampler.sample();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let samples = sampler.sample();
        let figures: Vec<_> = samples.iter().map(|(f, _)| *f).collect();
        for figure in Figure::ALL {
            assert_eq!(
                figures.contains(&figure),
                figure.available(),
                "{figure:?} on this platform"
            );
        }
        let (_, cpu) = &samples[figures.iter().position(|f| *f == Figure::Cpu).unwrap()];
        assert!((0.0..=100.0).contains(&cpu.v[0]), "{cpu:?}");
    }
}
