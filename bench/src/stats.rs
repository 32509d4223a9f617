//! Order statistics over repeated timings.

use std::time::Duration;

use serde::Serialize;

/// Median, 95th percentile and range of a set of samples, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How many samples.
    pub runs: usize,
    /// The median.
    pub median_ms: f64,
    /// The 95th percentile (nearest rank).
    pub p95_ms: f64,
    /// The fastest sample.
    pub min_ms: f64,
    /// The slowest sample.
    pub max_ms: f64,
}

impl Summary {
    /// Summarizes `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let median = if ms.len() % 2 == 1 {
            ms[ms.len() / 2]
        } else {
            (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
        };
        Some(Summary {
            runs: ms.len(),
            median_ms: round(median),
            p95_ms: round(nearest_rank(&ms, 0.95)),
            min_ms: round(ms[0]),
            max_ms: round(ms[ms.len() - 1]),
        })
    }
}

/// The nearest-rank percentile `p` (0..=1) of sorted samples.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rounds to a tenth of a millisecond.
fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn odd_count_median_is_the_middle_sample() {
        let s = Summary::of(&ms(&[30, 10, 20])).unwrap();
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (20.0, 10.0, 30.0));
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_two() {
        assert_eq!(Summary::of(&ms(&[10, 20, 30, 40])).unwrap().median_ms, 25.0);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let samples: Vec<u64> = (1..=20).collect();
        assert_eq!(Summary::of(&ms(&samples)).unwrap().p95_ms, 19.0);
        assert_eq!(Summary::of(&ms(&[7])).unwrap().p95_ms, 7.0);
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Summary::of(&[]).is_none());
    }
}
