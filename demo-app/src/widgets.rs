//! What each page shows: its widgets, the channel each one reads, and how many of the channel's
//! recent events it draws.
//!
//! A channel's name is written once, where its data comes from ([`Figure::channel`],
//! [`crate::sources::hub`]) or, for the feed that only the API publishes to, here
//! ([`NOTIFICATIONS`]).

use crate::sources::{hub, system::Figure};

/// One dashboard widget: one figure, one `EventSource`, one chart.
#[derive(Debug, Clone, Copy)]
pub struct Widget {
    /// The figure it shows (and the channel it reads).
    pub figure: Figure,
    /// Its heading.
    pub title: &'static str,
    /// The names of the chart's series; empty means one series per value, unnamed (CPU cores).
    pub series: &'static [&'static str],
    /// The unit of the chart's scale (`%`, `KiB/s`, ...), empty for a plain number.
    pub unit: &'static str,
    /// The top of the chart's scale, or `None` to scale to the largest value shown.
    pub max: Option<f64>,
}

impl Widget {
    /// The channel it reads.
    pub fn channel(&self) -> &'static str {
        self.figure.channel()
    }
}

/// The dashboard's widgets, in page order: one channel each, published every second by
/// [`crate::sources`].
pub const DASHBOARD: &[Widget] = &[
    Widget {
        figure: Figure::Cpu,
        title: "CPU",
        series: &["busy"],
        unit: "%",
        max: Some(100.0),
    },
    Widget {
        figure: Figure::Cores,
        title: "CPU cores",
        series: &[],
        unit: "%",
        max: Some(100.0),
    },
    Widget {
        figure: Figure::Mem,
        title: "Memory",
        series: &["used"],
        unit: "%",
        max: Some(100.0),
    },
    Widget {
        figure: Figure::Swap,
        title: "Swap",
        series: &["used"],
        unit: "%",
        max: Some(100.0),
    },
    Widget {
        figure: Figure::Load,
        title: "Load average",
        series: &["1 min", "5 min", "15 min"],
        unit: "",
        max: None,
    },
    Widget {
        figure: Figure::Net,
        title: "Network",
        series: &["rx", "tx"],
        unit: "KiB/s",
        max: None,
    },
    Widget {
        figure: Figure::Disk,
        title: "Disk",
        series: &["read", "write"],
        unit: "KiB/s",
        max: None,
    },
    Widget {
        figure: Figure::Procs,
        title: "Processes",
        series: &["running", "blocked"],
        unit: "",
        max: None,
    },
    Widget {
        figure: Figure::Ctxt,
        title: "Scheduler",
        series: &["switches", "interrupts"],
        unit: "/s",
        max: None,
    },
    Widget {
        figure: Figure::Forks,
        title: "Process creation",
        series: &["forks"],
        unit: "/s",
        max: None,
    },
    Widget {
        figure: Figure::Uptime,
        title: "Uptime",
        series: &["uptime"],
        unit: "h",
        max: None,
    },
];

/// The channel of the notification feed: whatever is posted to it through the API.
pub const NOTIFICATIONS: &str = "notifications";

/// The time every chart shows, ending now: a chart after a restart shows its few points at
/// their time, not stretched across the chart.
pub const CHART_WINDOW_SECS: u64 = 120;

/// Events read per chart: [`CHART_WINDOW_SECS`] of samples, one a second.
pub const CHART_POINTS: usize = 120;

/// Notifications shown in the feed.
pub const FEED_ITEMS: usize = 50;

/// Events kept by a widget that shows only the newest (a table redrawn from each snapshot).
pub const LATEST: usize = 1;

/// A page, by the name used in `/api/state/{page}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/`: the machine's figures.
    Dashboard,
    /// `/notifications`: the feed.
    Notifications,
    /// `/hub`: the hub's own metrics.
    Hub,
}

impl Page {
    /// Every page.
    pub const ALL: [Page; 3] = [Page::Dashboard, Page::Notifications, Page::Hub];

    /// The page's name in `/api/state/{page}` and in its `data-page` attribute.
    pub fn name(self) -> &'static str {
        match self {
            Page::Dashboard => "dashboard",
            Page::Notifications => "notifications",
            Page::Hub => "hub",
        }
    }

    /// The page called `name`, if any.
    pub fn from_name(name: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|page| page.name() == name)
    }

    /// The page's channels, in page order: the set its one stream reads
    /// (`/events?channels=<them, comma-separated>`).
    pub fn set(self) -> Vec<&'static str> {
        self.channels().into_iter().map(|(name, _)| name).collect()
    }

    /// The channels the page reads, each with how many of its newest events the page draws.
    pub fn channels(self) -> Vec<(&'static str, usize)> {
        match self {
            Page::Dashboard => DASHBOARD
                .iter()
                .map(|w| (w.channel(), CHART_POINTS))
                .collect(),
            Page::Notifications => vec![(NOTIFICATIONS, FEED_ITEMS)],
            Page::Hub => vec![(hub::CHANNEL, CHART_POINTS), (hub::TOP_CHANNEL, LATEST)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_is_valid_and_read_by_one_widget() {
        let mut seen = std::collections::HashSet::new();
        for page in Page::ALL {
            assert_eq!(Page::from_name(page.name()), Some(page));
            for (channel, keep) in page.channels() {
                assert!(
                    poem_sse_ext::hub::validate_channel(channel).is_ok(),
                    "{channel}"
                );
                assert!(seen.insert(channel), "{channel} read by two widgets");
                assert!(keep > 0);
            }
        }
        assert_eq!(DASHBOARD.len(), Figure::ALL.len(), "a widget per figure");
        assert_eq!(Page::from_name("nope"), None);
    }
}
