//! The generator of the shipped "peak month" trace (`traces/peak-month.csv`): a month of
//! uploads compressed in time, with daily cycles, quiet weekends, a 3× surge around the VAT
//! deadline and bursts of large documents from one tenant. Seeded: the same spec always gives
//! the same trace. `traces/README.md` describes the result.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::trace::{Arrival, Trace};

/// The tenant whose scanners upload large documents in bursts.
pub const BULK_TENANT: &str = "bulk";

/// Relative upload rate per hour of a working day (hour 0 = midnight), interpolated linearly
/// between hour midpoints: nights nearly idle, a morning peak, a lunch dip, an afternoon peak.
const HOURLY_PROFILE: [f64; 24] = [
    0.05, 0.04, 0.04, 0.04, 0.05, 0.10, 0.25, 0.55, 0.85, 1.00, 1.00, 0.95, 0.75, 0.85, 0.95, 0.90, 0.75, 0.50, 0.30,
    0.20, 0.15, 0.10, 0.08, 0.06,
];

/// What the month looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct PeakMonthSpec {
    pub seed: u64,
    /// Days in the month; day 1 is a Monday.
    pub days: u32,
    /// Seconds of simulated time per day (14 400: a day in four hours, the month in five days).
    pub day_secs: f64,
    /// Expected uploads of an ordinary weekday, batches and bursts not included.
    pub weekday_uploads: f64,
    /// Weekend days run at this fraction of a weekday.
    pub weekend_factor: f64,
    /// The VAT advance return is due on this day (the 10th in Germany and Austria).
    pub deadline_day: u32,
    /// Uploads on the days before the deadline, relative to an ordinary day.
    pub surge_factor: f64,
    /// Days before the deadline (the deadline included) at the full surge.
    pub surge_days: u32,
    /// Month-end closing: the last three days run at this factor.
    pub month_end_factor: f64,
    /// Regular tenants (`t01` …), with Zipf-like upload shares.
    pub tenants: u32,
    /// Share of regular uploads that are large (10+ pages).
    pub large_share: f64,
    /// Batch uploads of small documents (an accounting system syncing) per ordinary weekday.
    pub batches_per_day: f64,
    /// Documents in a batch upload (uniform between the bounds).
    pub batch_docs: (u32, u32),
    /// Bursts of large scans from [`BULK_TENANT`] per ordinary weekday.
    pub bulk_bursts_per_day: f64,
    /// Documents in a burst of large scans (uniform between the bounds).
    pub bulk_burst_docs: (u32, u32),
}

impl Default for PeakMonthSpec {
    fn default() -> PeakMonthSpec {
        PeakMonthSpec {
            seed: 20_240_610,
            days: 30,
            day_secs: 14_400.0,
            weekday_uploads: 2500.0,
            weekend_factor: 0.25,
            deadline_day: 10,
            surge_factor: 3.0,
            surge_days: 7,
            month_end_factor: 1.3,
            tenants: 40,
            large_share: 0.06,
            batches_per_day: 3.0,
            batch_docs: (50, 300),
            bulk_bursts_per_day: 1.5,
            bulk_burst_docs: (30, 120),
        }
    }
}

impl PeakMonthSpec {
    /// The upload level of `day` (1-based) relative to an ordinary weekday.
    pub fn day_factor(&self, day: u32) -> f64 {
        let weekday = if day.saturating_sub(1) % 7 >= 5 { self.weekend_factor } else { 1.0 };
        weekday * self.surge_level(day) * if day + 3 > self.days { self.month_end_factor } else { 1.0 }
    }

    /// 1 on ordinary days, `surge_factor` in the days up to the deadline, half-way the day
    /// before that window and the day after the deadline.
    fn surge_level(&self, day: u32) -> f64 {
        let first = self.deadline_day.saturating_sub(self.surge_days.saturating_sub(1)).max(1);
        let extra = self.surge_factor - 1.0;
        if (first..=self.deadline_day).contains(&day) {
            1.0 + extra
        } else if day + 1 == first || day == self.deadline_day + 1 {
            1.0 + extra / 2.0
        } else {
            1.0
        }
    }

    fn duration_secs(&self) -> f64 {
        f64::from(self.days) * self.day_secs
    }
}

/// The daily profile at `hour` (0 ≤ hour < 24), interpolated between hour midpoints.
fn hourly_level(hour: f64) -> f64 {
    let position = (hour - 0.5).rem_euclid(24.0);
    let low = position.floor() as usize % 24;
    let high = (low + 1) % 24;
    let fraction = position - position.floor();
    HOURLY_PROFILE[low] * (1.0 - fraction) + HOURLY_PROFILE[high] * fraction
}

/// Generates the month.
pub fn peak_month(spec: &PeakMonthSpec) -> Trace {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tenants = Tenants::new(spec.tenants);
    let mut arrivals = regular_uploads(spec, &tenants, &mut rng);
    for day in 1..=spec.days {
        arrivals.extend(batches(spec, day, &tenants, &mut rng));
        arrivals.extend(bulk_bursts(spec, day, &mut rng));
    }
    arrivals.retain(|a| a.at_secs < spec.duration_secs());
    // Round to the written precision so a trace read back equals the generated one.
    for arrival in &mut arrivals {
        arrival.at_secs = (arrival.at_secs * 100.0).round() / 100.0;
    }
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Trace { arrivals, duration_secs: spec.duration_secs() }
}

/// The steady stream: a Poisson process whose rate follows the day and the month.
fn regular_uploads(spec: &PeakMonthSpec, tenants: &Tenants, rng: &mut StdRng) -> Vec<Arrival> {
    let mean_level = HOURLY_PROFILE.iter().sum::<f64>() / 24.0;
    let per_sec_at_peak = spec.weekday_uploads / (spec.day_secs * mean_level);
    let mut arrivals = Vec::new();
    for second in 0..spec.duration_secs() as u64 {
        let t = second as f64;
        let day = (t / spec.day_secs) as u32 + 1;
        let hour = (t % spec.day_secs) / spec.day_secs * 24.0;
        let rate = per_sec_at_peak * hourly_level(hour) * spec.day_factor(day);
        for _ in 0..poisson(rate, rng) {
            let at_secs = t + rng.random::<f64>();
            let tenant = tenants.pick(rng).to_owned();
            let (size_bytes, pages) =
                if rng.random::<f64>() < spec.large_share { large_document(rng) } else { small_document(rng) };
            arrivals.push(Arrival { at_secs, tenant, size_bytes, pages });
        }
    }
    arrivals
}

/// Batch uploads of small documents by one regular tenant, in business hours.
fn batches(spec: &PeakMonthSpec, day: u32, tenants: &Tenants, rng: &mut StdRng) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    for _ in 0..poisson(spec.batches_per_day * spec.day_factor(day), rng) {
        let start = business_hours_time(spec, day, rng);
        let spread = rng.random_range(30.0..120.0);
        let tenant = tenants.pick(rng);
        for _ in 0..rng.random_range(spec.batch_docs.0..=spec.batch_docs.1.max(spec.batch_docs.0)) {
            let (size_bytes, pages) = small_document(rng);
            let at_secs = start + rng.random::<f64>() * spread;
            arrivals.push(Arrival { at_secs, tenant: tenant.to_owned(), size_bytes, pages });
        }
    }
    arrivals
}

/// Bursts of large scans from the bulk tenant, in business hours.
fn bulk_bursts(spec: &PeakMonthSpec, day: u32, rng: &mut StdRng) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    for _ in 0..poisson(spec.bulk_bursts_per_day * spec.day_factor(day), rng) {
        let start = business_hours_time(spec, day, rng);
        let spread = rng.random_range(20.0..90.0);
        for _ in 0..rng.random_range(spec.bulk_burst_docs.0..=spec.bulk_burst_docs.1.max(spec.bulk_burst_docs.0)) {
            let pages = rng.random_range(15..=80);
            let size_bytes = u64::from(pages) * rng.random_range(100_000..400_000);
            let at_secs = start + rng.random::<f64>() * spread;
            arrivals.push(Arrival { at_secs, tenant: BULK_TENANT.to_owned(), size_bytes, pages });
        }
    }
    arrivals
}

/// A time between 08:00 and 18:00 of `day`.
fn business_hours_time(spec: &PeakMonthSpec, day: u32, rng: &mut StdRng) -> f64 {
    let hour = rng.random_range(8.0..18.0);
    f64::from(day.saturating_sub(1)) * spec.day_secs + hour / 24.0 * spec.day_secs
}

/// An invoice: a third are XML e-invoices (one page, a few KB), the rest PDFs of one to
/// eight pages, mostly one or two.
fn small_document(rng: &mut StdRng) -> (u64, u32) {
    if rng.random::<f64>() < 0.35 {
        return (rng.random_range(6_000..80_000), 1);
    }
    let pages = match rng.random::<f64>() {
        x if x < 0.55 => 1,
        x if x < 0.80 => 2,
        _ => rng.random_range(3..=8),
    };
    (u64::from(pages) * rng.random_range(40_000..350_000), pages)
}

/// A large document from a regular tenant: 10 to 60 pages.
fn large_document(rng: &mut StdRng) -> (u64, u32) {
    let pages = rng.random_range(10..=60);
    (u64::from(pages) * rng.random_range(60_000..300_000), pages)
}

/// A Poisson draw (Knuth's method; `mean` is small here).
fn poisson(mean: f64, rng: &mut StdRng) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    let limit = (-mean).exp();
    let mut product = rng.random::<f64>();
    let mut count = 0;
    while product > limit {
        count += 1;
        product *= rng.random::<f64>();
    }
    count
}

/// Regular tenants with Zipf-like shares (the k-th uploads 1/k of the first).
struct Tenants {
    names: Vec<String>,
    cumulative: Vec<f64>,
}

impl Tenants {
    fn new(count: u32) -> Tenants {
        let names = (1..=count.max(1)).map(|k| format!("t{k:02}")).collect();
        let mut total = 0.0;
        let cumulative = (1..=count.max(1))
            .map(|k| {
                total += 1.0 / f64::from(k);
                total
            })
            .collect();
        Tenants { names, cumulative }
    }

    fn pick(&self, rng: &mut StdRng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.random::<f64>() * total;
        let index = self.cumulative.partition_point(|&c| c < x).min(self.names.len() - 1);
        &self.names[index]
    }
}

/// Where the shipped trace lives, from the repository root.
pub const SHIPPED_TRACE_PATH: &str = "traces/peak-month.csv";

/// The comment lines the shipped trace starts with.
pub const SHIPPED_TRACE_COMMENTS: [&str; 3] = [
    "Surge \"peak month\": 30 days in 4-hour days, a 3x surge up to the VAT deadline on the 10th,",
    "batch uploads, and bursts of large scans from tenant `bulk`. Generated by",
    "dispatcher::simulate::generate::peak_month(&PeakMonthSpec::default()); see traces/README.md.",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::parse_trace;

    fn shipped_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SHIPPED_TRACE_PATH)
    }

    /// `cargo test -p dispatcher --lib -- --ignored regenerate_the_shipped_trace` rewrites the file.
    #[test]
    #[ignore = "writes traces/peak-month.csv"]
    fn regenerate_the_shipped_trace() {
        let trace = peak_month(&PeakMonthSpec::default());
        std::fs::write(shipped_path(), trace.to_csv(&SHIPPED_TRACE_COMMENTS)).unwrap();
    }

    #[test]
    fn the_shipped_trace_is_the_generators_output() {
        let text = std::fs::read_to_string(shipped_path()).expect("traces/peak-month.csv is shipped");
        let shipped = parse_trace(&text).unwrap();
        let generated = peak_month(&PeakMonthSpec::default());
        assert!(
            shipped == generated,
            "traces/peak-month.csv differs from the generator; regenerate it with \
             `cargo test -p dispatcher --lib -- --ignored regenerate_the_shipped_trace`"
        );
    }

    #[test]
    fn the_peak_month_has_its_shape() {
        let spec = PeakMonthSpec::default();
        let trace = peak_month(&spec);
        let per_day = |day: u32| {
            let (start, end) = (f64::from(day - 1) * spec.day_secs, f64::from(day) * spec.day_secs);
            trace.arrivals.iter().filter(|a| a.at_secs >= start && a.at_secs < end).count() as f64
        };
        // Ordinary weekdays (days 15 to 19) against the days before the deadline (8 to 10).
        let ordinary = (15..=19).map(per_day).sum::<f64>() / 5.0;
        let surge = (8..=10).map(per_day).sum::<f64>() / 3.0;
        assert!((2.5..3.5).contains(&(surge / ordinary)), "a 3x surge: {surge} against {ordinary}");
        // Daily cycle: office hours against the night, over the whole month.
        let at_hour = |hour: f64| {
            let hour_secs = spec.day_secs / 24.0;
            let offset = hour * hour_secs;
            trace.arrivals.iter().filter(|a| (a.at_secs % spec.day_secs - offset).abs() < hour_secs / 2.0).count()
        };
        assert!(at_hour(10.0) > 10 * at_hour(3.0), "busy mornings, quiet nights");
        // Bursts of large documents from one tenant: groups of 30 or more, none longer than
        // two minutes, dozens of them.
        let bulk: Vec<f64> = trace.arrivals.iter().filter(|a| a.tenant == BULK_TENANT).map(|a| a.at_secs).collect();
        let mut groups: Vec<Vec<f64>> = Vec::new();
        for at in bulk {
            match groups.last_mut() {
                Some(group) if at - group[group.len() - 1] < 300.0 => group.push(at),
                _ => groups.push(vec![at]),
            }
        }
        let bursts = groups.iter().filter(|g| g.len() >= 30 && g[g.len() - 1] - g[0] <= 120.0).count();
        assert!(bursts > 20, "bulk bursts: {bursts}");
        assert!(trace.arrivals.iter().filter(|a| a.tenant == BULK_TENANT).all(|a| a.pages >= 15));
    }

    #[test]
    fn the_month_has_cycles_a_surge_and_bursts() {
        let spec = PeakMonthSpec::default();
        assert_eq!(spec.day_factor(1), 1.0, "Monday");
        assert_eq!(spec.day_factor(6), 0.25 * 3.0, "a surge Saturday");
        assert_eq!(spec.day_factor(9), 3.0, "the day before the deadline");
        assert_eq!(spec.day_factor(15), 1.0);
        assert_eq!(spec.day_factor(30), 1.3, "month end");
        assert!(hourly_level(10.0) > 10.0 * hourly_level(3.0));
        assert!((hourly_level(9.5) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_generator_is_deterministic() {
        let spec = PeakMonthSpec { days: 1, ..PeakMonthSpec::default() };
        assert_eq!(peak_month(&spec), peak_month(&spec));
        assert_ne!(peak_month(&spec), peak_month(&PeakMonthSpec { seed: 7, ..spec.clone() }));
    }
}
