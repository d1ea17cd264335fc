//! Latency percentiles and rates for `flow --ues N`.

use std::time::Duration;

/// Summary of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// The `q`-quantile (0.0–1.0) of sorted samples, nearest-rank method.
#[must_use]
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or_default()
}

/// Summarises latency samples (in any order).
#[must_use]
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    Summary {
        count: sorted.len(),
        p50: quantile(&sorted, 0.50),
        p99: quantile(&sorted, 0.99),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

/// Completed operations per second over `elapsed`.
#[must_use]
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Median and range of a figure measured once per round (`flow --ues N --rounds R`): on a
/// shared machine single rounds scatter widely, so only the median of several says much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Number of values.
    pub count: usize,
    /// Median: the middle value, or the mean of the two middle ones for an even count.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (in any order); `None` when there are none or one is NaN.
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Self {
            count: sorted.len(),
            median,
            min,
            max,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = summarize(&samples);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(summarize(&[]).p99, Duration::ZERO);
        assert!((rate(10, Duration::from_secs(2)) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn spread_of_rounds() {
        let odd = Spread::of(&[1.9, 1.4, 1.6]).unwrap();
        assert_eq!(
            (odd.count, odd.median, odd.min, odd.max),
            (3, 1.6, 1.4, 1.9)
        );
        // An even count takes the mean of the two middle values.
        let even = Spread::of(&[1.7, 1.4, 1.5, 2.0]).unwrap();
        assert!((even.median - 1.6).abs() < 1e-12);
        assert_eq!((even.min, even.max), (1.4, 2.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[1.0, f64::NAN]), None);
    }
}
