//! One retry policy: exponential backoff, capped, optionally jittered.
//!
//! Three places wait between attempts, each with its own numbers:
//! - the client's cold-start retry (`retry.rs`): 20 ms doubling to 250 ms, no jitter (one process, one extension);
//! - the `/items` function's wait for the other half of a password rotation: 50 ms doubling to 500 ms, no jitter;
//! - the extension's per-key backoff after a transient upstream failure: 500 ms doubling to 5 s, with
//!   [`Jitter::Equal`], so that many execution environments failing together do not retry in lockstep.
//!
//! A [`Backoff`] is a `const` value (the policy), and [`Backoff::delay`] answers "how long after `failures`
//! consecutive failures". A caller that counts failures itself (the extension keeps a count per key) asks for
//! `delay(failures)`; a retry loop takes [`Backoff::delays`], which yields `delay(1)`, `delay(2)`, ... forever (the
//! loop bounds itself, by a deadline or a count).
//!
//! # The extension's per-key backoff
//!
//! `extension/src/cache` keeps, per key, the consecutive transient failures and the instant its next upstream call is
//! due. With this type its policy is one constant, and the due instant is `now + BACKOFF.delay(failures)`:
//!
//! ```
//! use std::time::Duration;
//! use secretcache_client::backoff::{Backoff, Jitter};
//!
//! /// First retry after about 500 ms, doubling per failure up to 5 s, half of it random.
//! const BACKOFF: Backoff =
//!     Backoff::new(Duration::from_millis(500), Duration::from_secs(5)).with_jitter(Jitter::Equal);
//!
//! for failures in 1..40 {
//!     let exp = BACKOFF.ceiling(failures);
//!     let d = BACKOFF.delay(failures);
//!     assert!(d >= exp / 2 && d <= exp, "{failures}: {d:?}");
//! }
//! assert_eq!(BACKOFF.ceiling(1), Duration::from_millis(500));
//! assert_eq!(BACKOFF.ceiling(5), Duration::from_secs(5));
//! ```
//!
//! Tests stay deterministic: a policy without jitter is a pure function of the failure count, and a jittered one is
//! too through [`Backoff::delay_with`], which takes the random draw as an argument.

use std::time::Duration;

/// How much of a delay is random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// None: the delay is exactly the exponential value. For one caller retrying one thing.
    #[default]
    None,
    /// "Equal jitter": half of the exponential value fixed, the other half uniformly random. It keeps a floor (a retry
    /// never comes at once) while spreading callers that failed together.
    Equal,
}

/// An exponential backoff policy: `base` after the first failure, doubling per failure, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Doubling from `base` up to `max`, without jitter.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            jitter: Jitter::None,
        }
    }

    /// The same policy with `jitter`.
    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The first delay.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The jitter.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before jitter after `failures` consecutive failures: `base * 2^(failures - 1)`, capped at `max`;
    /// zero when nothing has failed. Saturating, so any count is safe.
    pub fn ceiling(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        self.base
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(self.max)
    }

    /// The wait after `failures` consecutive failures (zero when nothing has failed). With [`Jitter::Equal`] the
    /// random half is drawn here.
    pub fn delay(&self, failures: u32) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(failures),
            Jitter::Equal => self.delay_with(failures, fastrand::f64()),
        }
    }

    /// As [`Backoff::delay`], with the random draw given: `unit` in `[0, 1]` (clamped; NaN counts as 0). Without
    /// jitter it is ignored. For tests, and for callers that bring their own randomness.
    pub fn delay_with(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Equal => {
                let unit = if unit.is_nan() {
                    0.0
                } else {
                    unit.clamp(0.0, 1.0)
                };
                let half = ceiling / 2;
                half + half.mul_f64(unit)
            }
        }
    }

    /// The delays of a retry loop: after the first failure, after the second, and so on, without end.
    pub fn delays(&self) -> Delays {
        Delays {
            policy: *self,
            failures: 0,
        }
    }
}

/// The delays of one retry loop, from [`Backoff::delays`]. Endless: the loop stops itself.
#[derive(Debug, Clone)]
#[must_use = "an iterator does nothing unless consumed"]
pub struct Delays {
    policy: Backoff,
    failures: u32,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        Some(self.policy.delay(self.failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn it_doubles_from_the_base_to_the_cap() {
        let b = Backoff::new(MS(20), MS(250));
        let got: Vec<Duration> = b.delays().take(6).collect();
        assert_eq!(got, [MS(20), MS(40), MS(80), MS(160), MS(250), MS(250)]);
        assert_eq!(
            b.delay(0),
            Duration::ZERO,
            "nothing failed, nothing to wait"
        );
        assert_eq!(b.delay(1), b.base());
        assert_eq!(
            b.delay(u32::MAX),
            b.max(),
            "saturates rather than overflows"
        );
    }

    #[test]
    fn the_loops_that_doubled_by_hand_get_the_same_pauses() {
        // What the client's retry loop and the function's rotation code computed before this type:
        // `pause = (pause * 2).min(max)`.
        for (base, max) in [(MS(20), MS(250)), (MS(50), MS(500)), (MS(500), MS(5_000))] {
            let mut pause = base;
            for (i, d) in Backoff::new(base, max).delays().take(40).enumerate() {
                assert_eq!(d, pause, "{base:?}..{max:?}, failure {}", i + 1);
                pause = (pause * 2).min(max);
            }
        }
    }

    #[test]
    fn equal_jitter_keeps_half_and_randomises_half() {
        let b = Backoff::new(MS(500), MS(5_000)).with_jitter(Jitter::Equal);
        assert_eq!(b.jitter(), Jitter::Equal);
        assert_eq!(b.delay_with(1, 0.0), MS(250));
        assert_eq!(b.delay_with(1, 1.0), MS(500));
        assert_eq!(b.delay_with(2, 0.5), MS(750));
        assert_eq!(b.delay_with(9, 0.0), MS(2_500), "capped before the jitter");
        assert_eq!(b.delay_with(1, -3.0), MS(250), "clamped");
        assert_eq!(b.delay_with(1, 7.0), MS(500), "clamped");
        assert_eq!(b.delay_with(1, f64::NAN), MS(250));
        for failures in 1..40 {
            let (d, exp) = (b.delay(failures), b.ceiling(failures));
            assert!(d >= exp / 2 && d <= exp, "{failures}: {d:?}");
        }
    }

    #[test]
    fn without_jitter_the_draw_is_ignored() {
        let b = Backoff::new(MS(50), MS(500));
        assert_eq!(b.delay_with(3, 0.9), MS(200));
        assert_eq!(b.with_jitter(Jitter::None), b);
    }
}
