//! The operations board: the last ten minutes of what the autoscaler saw each second (backlog,
//! workers desired and running, completions and their durations) and the busiest tenants, kept
//! in memory for the dashboard, and drawn as server-side SVG charts.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::{Lane, TenantId};

/// Samples kept: ten minutes at one a second.
const KEEP: usize = 600;

/// One lane in one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct LaneSample {
    pub backlog_jobs: u64,
    /// Waiting work in estimated worker-seconds.
    pub backlog_secs: f64,
    pub in_flight_jobs: u64,
    pub desired: usize,
    pub running: usize,
    /// Jobs finished since the previous sample, and percentiles of the sampled durations.
    pub completed: u64,
    pub duration_p50_secs: Option<f64>,
    pub duration_p95_secs: Option<f64>,
    pub duration_p99_secs: Option<f64>,
}

/// What the autoscaler saw in one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Sample {
    pub at: DateTime<Utc>,
    pub lanes: BTreeMap<Lane, LaneSample>,
}

/// The board's contents.
#[derive(Debug, Default)]
pub(crate) struct Board {
    samples: VecDeque<Sample>,
    busiest: Vec<(TenantId, u64)>,
}

/// The board as the autoscaler, the dispatcher and the dashboard share it. A std mutex: held
/// only to copy or push.
pub(crate) type SharedBoard = Arc<Mutex<Board>>;

impl Board {
    pub(crate) fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub(crate) fn set_busiest(&mut self, busiest: Vec<(TenantId, u64)>) {
        self.busiest = busiest;
    }

    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }

    pub(crate) fn busiest(&self) -> Vec<(TenantId, u64)> {
        self.busiest.clone()
    }
}

/// The `q` quantile (0 to 1) of sorted `durations` (nearest rank), `None` when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The charts the dashboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chart {
    /// Jobs waiting per lane.
    Backlog,
    /// Workers desired and running per lane.
    Workers,
    /// Jobs finished per second.
    Throughput,
    /// Job duration percentiles (p50, p95, p99) per lane.
    Latency,
}

impl std::str::FromStr for Chart {
    type Err = ();

    fn from_str(name: &str) -> Result<Chart, ()> {
        match name {
            "backlog" => Ok(Chart::Backlog),
            "workers" => Ok(Chart::Workers),
            "throughput" => Ok(Chart::Throughput),
            "latency" => Ok(Chart::Latency),
            _ => Err(()),
        }
    }
}

/// A named series of a chart: its points (oldest first, `None` where unknown) and colour.
struct Series {
    name: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<Option<f64>>,
}

const SMALL: &str = "#2563eb";
const LARGE: &str = "#ea580c";

fn colour(lane: Lane) -> &'static str {
    match lane {
        Lane::Small => SMALL,
        Lane::Large => LARGE,
    }
}

/// Draws `chart` from `samples` as a self-contained SVG document.
pub(crate) fn render(chart: Chart, samples: &[Sample]) -> String {
    let per_lane = |f: &dyn Fn(&LaneSample) -> Option<f64>, suffix: &str, dashed: bool| -> Vec<Series> {
        Lane::ALL
            .iter()
            .map(|&lane| Series {
                name: format!("{lane}{suffix}"),
                colour: colour(lane),
                dashed,
                points: samples.iter().map(|s| s.lanes.get(&lane).and_then(f)).collect(),
            })
            .collect()
    };
    let (title, unit, series) = match chart {
        Chart::Backlog => ("Backlog", "jobs", per_lane(&|l| Some(l.backlog_jobs as f64), "", false)),
        Chart::Workers => {
            let mut series = per_lane(&|l| Some(l.running as f64), " running", false);
            series.extend(per_lane(&|l| Some(l.desired as f64), " desired", true));
            ("Workers", "workers", series)
        }
        Chart::Throughput => {
            let total = Series {
                name: "all lanes".into(),
                colour: "#16a34a",
                dashed: false,
                points: samples.iter().map(|s| Some(s.lanes.values().map(|l| l.completed as f64).sum())).collect(),
            };
            ("Throughput", "jobs/s", vec![total])
        }
        Chart::Latency => {
            let mut series = per_lane(&|l| l.duration_p50_secs, " p50", true);
            series.extend(per_lane(&|l| l.duration_p95_secs, " p95", false));
            for s in per_lane(&|l| l.duration_p99_secs, " p99", false) {
                series.push(Series { colour: if s.colour == SMALL { "#7c3aed" } else { "#dc2626" }, ..s });
            }
            ("Job duration", "s", series)
        }
    };
    svg(title, unit, &series)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn svg(title: &str, unit: &str, series: &[Series]) -> String {
    const W: f64 = 560.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 48.0;
    const TOP: f64 = 28.0;
    const BOTTOM: f64 = 22.0;
    let plot_w = W - LEFT - 12.0;
    let plot_h = H - TOP - BOTTOM;
    let max = series.iter().flat_map(|s| s.points.iter().flatten()).copied().fold(0.0, f64::max);
    let top = nice_ceiling(max);
    let slots = series.iter().map(|s| s.points.len()).max().unwrap_or(0).max(2);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{title}" font-family="system-ui, sans-serif" font-size="11">"#,
        title = escape(title)
    );
    let _ = write!(out, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#111827">{}</text>"##,
        escape(title)
    );
    for i in 0..=4 {
        let value = top * f64::from(i) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end" fill="#6b7280">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            format_value(value)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{}" fill="#6b7280">{} ago</text><text x="{}" y="{}" text-anchor="end" fill="#6b7280">now · {}</text>"##,
        H - 6.0,
        span_label(slots),
        LEFT + plot_w,
        H - 6.0,
        escape(unit)
    );
    let mut legend_x = LEFT + 150.0;
    // A series without a single point (a lane that finished nothing) gets no line and no legend.
    for s in series.iter().filter(|s| s.points.iter().any(Option::is_some)) {
        let mut path = String::new();
        let offset = slots - s.points.len();
        for (i, point) in s.points.iter().enumerate() {
            let Some(value) = point else { continue };
            let x = LEFT + plot_w * (offset + i) as f64 / (slots - 1) as f64;
            let y = TOP + plot_h - if top > 0.0 { plot_h * value / top } else { 0.0 };
            let _ = write!(path, "{}{x:.1},{y:.1} ", if path.is_empty() { "M" } else { "L" });
        }
        let dash = if s.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.8"{dash} class="series" data-series="{}"/>"#,
                path.trim_end(),
                s.colour,
                escape(&s.name)
            );
        }
        let _ = write!(
            out,
            r##"<line x1="{legend_x}" x2="{}" y1="12" y2="12" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="16" fill="#374151">{}</text>"##,
            legend_x + 14.0,
            s.colour,
            legend_x + 18.0,
            escape(&s.name)
        );
        legend_x += 24.0 + 6.5 * s.name.len() as f64;
    }
    out.push_str("</svg>");
    out
}

/// The smallest of 1, 2, 5 × 10^n at or above `value` (at least 1).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= value).unwrap_or(10.0 * magnitude)
}

fn format_value(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}").trim_end_matches('0').to_owned()
    }
}

fn span_label(slots: usize) -> String {
    if slots >= 120 { format!("{} min", slots / 60) } else { format!("{slots} s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(small_backlog: u64, completed: u64) -> Sample {
        let lane = LaneSample { backlog_jobs: small_backlog, desired: 3, running: 2, completed, ..Default::default() };
        Sample { at: Utc::now(), lanes: BTreeMap::from([(Lane::Small, lane), (Lane::Large, LaneSample::default())]) }
    }

    #[test]
    fn the_board_keeps_ten_minutes() {
        let mut board = Board::default();
        for i in 0..(KEEP as u64 + 5) {
            board.push(sample(i, 0));
        }
        let samples = board.samples();
        assert_eq!(samples.len(), KEEP);
        assert_eq!(samples[0].lanes[&Lane::Small].backlog_jobs, 5, "the oldest samples go first");
    }

    #[test]
    fn charts_draw_one_path_per_series_scaled_to_a_round_maximum() {
        let samples: Vec<Sample> = (0..10).map(|i| sample(i * 10, i)).collect();
        let backlog = render(Chart::Backlog, &samples);
        assert!(backlog.starts_with("<svg") && backlog.ends_with("</svg>"));
        assert_eq!(backlog.matches(r#"class="series""#).count(), 2, "small and large");
        assert!(backlog.contains(">100<"), "90 jobs round up to a 100 axis: {backlog}");
        let workers = render(Chart::Workers, &samples);
        assert_eq!(workers.matches(r#"class="series""#).count(), 4, "running and desired per lane");
        assert!(workers.contains("stroke-dasharray"), "desired is dashed");
        let latency = render(Chart::Latency, &samples);
        assert_eq!(latency.matches(r#"class="series""#).count(), 0, "no durations, no line");
        assert!(!latency.contains("small p95"), "and no legend");
        assert!(render(Chart::Throughput, &[]).contains("Throughput"), "an empty board still draws axes");
    }

    #[test]
    fn quantiles_and_round_numbers() {
        assert_eq!(quantile(&[], 0.95), None);
        let durations: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&durations, 0.5), Some(50.0));
        assert_eq!(quantile(&durations, 0.95), Some(95.0));
        assert_eq!(quantile(&durations, 0.99), Some(99.0));
        assert_eq!(nice_ceiling(0.3), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
