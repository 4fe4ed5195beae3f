//! The channels the pages show, and how each dashboard widget draws its channel.

/// One dashboard widget: one channel, one `EventSource`, one chart.
#[derive(Debug, Clone, Copy)]
pub struct Widget {
    /// The channel it reads (and the publisher writes).
    pub channel: &'static str,
    /// Its heading.
    pub title: &'static str,
    /// The names of the chart's series; empty means one series per value, unnamed (CPU cores).
    pub series: &'static [&'static str],
    /// The top of the chart's scale, or `None` to scale to the largest value shown.
    pub max: Option<f64>,
}

/// The dashboard's widgets, in page order: one channel each, published every second by
/// [`crate::sources::system`].
pub const DASHBOARD: &[Widget] = &[
    Widget {
        channel: "sys.cpu",
        title: "CPU",
        series: &["busy %"],
        max: Some(100.0),
    },
    Widget {
        channel: "sys.cores",
        title: "CPU cores",
        series: &[],
        max: Some(100.0),
    },
    Widget {
        channel: "sys.mem",
        title: "Memory",
        series: &["used %"],
        max: Some(100.0),
    },
    Widget {
        channel: "sys.swap",
        title: "Swap",
        series: &["used %"],
        max: Some(100.0),
    },
    Widget {
        channel: "sys.load",
        title: "Load average",
        series: &["1 min", "5 min", "15 min"],
        max: None,
    },
    Widget {
        channel: "sys.net",
        title: "Network",
        series: &["rx KiB/s", "tx KiB/s"],
        max: None,
    },
    Widget {
        channel: "sys.disk",
        title: "Disk",
        series: &["read KiB/s", "write KiB/s"],
        max: None,
    },
    Widget {
        channel: "sys.procs",
        title: "Processes",
        series: &["running", "blocked"],
        max: None,
    },
    Widget {
        channel: "sys.ctxt",
        title: "Scheduler",
        series: &["switches/s", "irq/s"],
        max: None,
    },
    Widget {
        channel: "sys.forks",
        title: "Process creation",
        series: &["forks/s"],
        max: None,
    },
    Widget {
        channel: "sys.uptime",
        title: "Uptime",
        series: &["hours"],
        max: None,
    },
];

/// The channel of the notification feed.
pub const NOTIFICATIONS: &str = "notifications";

/// The channel the hub's own metrics are published on, every second.
pub const HUB: &str = "hub";

/// Points kept per dashboard channel (one minute).
pub const CHART_POINTS: usize = 60;

/// Notifications kept for the feed.
pub const FEED_ITEMS: usize = 50;

/// The pages, by the name used in `/api/state/{page}`, with their channels.
pub fn page_channels(page: &str) -> Option<Vec<&'static str>> {
    match page {
        "dashboard" => Some(DASHBOARD.iter().map(|w| w.channel).collect()),
        "notifications" => Some(vec![NOTIFICATIONS]),
        "hub" => Some(vec![HUB]),
        _ => None,
    }
}

/// How many recent items the app keeps for rendering `channel`, if it renders it at all.
pub fn kept_items(channel: &str) -> Option<usize> {
    if channel == NOTIFICATIONS {
        Some(FEED_ITEMS)
    } else if channel == HUB || DASHBOARD.iter().any(|w| w.channel == channel) {
        Some(CHART_POINTS)
    } else {
        None
    }
}
