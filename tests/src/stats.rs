//! Small statistics, one implementation for every figure we print: percentiles of latency samples (the reliability
//! table's p99 column, `make bench`'s latency rows), and the median/min/max summary of repeats that every figure in
//! the bench's table is.

use std::time::Duration;

use serde::Serialize;

/// The `p`-th percentile (0–100) of `sorted` by the nearest-rank method; `None` when there are no samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    // The epsilon keeps float error from pushing an exact rank up by one (0.999 * 1000 is 999.0000000000001).
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The `p`-th percentile of `samples` (in any order) in milliseconds, by [`percentile`]; 0 when there are none.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The figure reported for one measurement: the median of its repeats, with their min and max and every sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Median of the repeats (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest repeat.
    pub min: f64,
    /// Largest repeat.
    pub max: f64,
    /// Every repeat, in the order measured.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (the measurement did not run).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            samples: samples.to_vec(),
        })
    }

    /// Ratios of paired repeats (`ours[i] / base[i]`), summarised. Pairing repeats that ran back to back cancels
    /// most of the drift a shared machine adds between them.
    pub fn paired_ratio(ours: &[f64], base: &[f64]) -> Option<Summary> {
        let ratios: Vec<f64> = ours
            .iter()
            .zip(base)
            .filter(|(_, b)| **b != 0.0)
            .map(|(o, b)| o / b)
            .collect();
        Summary::of(&ratios)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile::<u64>(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.9), Some(7));
    }

    #[test]
    fn percentile_ms_sorts_durations_first() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        v.reverse();
        // 0.99 * 100 is 99.00000000000001 in floating point: still the 99th sample, not the 100th.
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
    }

    #[test]
    fn summary_is_median_min_max() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("samples");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).expect("samples");
        assert_eq!(s.median, 2.5);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn paired_ratios_skip_a_zero_baseline() {
        let r = Summary::paired_ratio(&[2.0, 3.0, 5.0], &[1.0, 0.0, 5.0]).expect("ratios");
        assert_eq!(r.samples, vec![2.0, 1.0]);
        assert_eq!(r.median, 1.5);
    }
}
