//! Time for freshness, made to survive pauses that the monotonic clock does not see.
//!
//! Cached values age by the monotonic clock (`tokio::time::Instant`, so tests pause and advance it). In Lambda that is
//! not enough: a process stopped with SIGSTOP sees its monotonic clock advance, but a paused or snapshot-restored
//! micro-VM (SnapStart, and by public reports frozen warm environments too) may resume with the monotonic clock where
//! it stopped, while the wall clock has been set to the real time. Trusting the monotonic clock alone would then
//! serve a value fetched before the pause as fresh, however long the pause was.
//!
//! [`Clock`] therefore watches the offset between the wall clock and the monotonic clock. While both run, the offset
//! stays put (NTP slews both); when it grows by more than [`PAUSE_THRESHOLD`] between two readings, the monotonic
//! clock missed that much time, and every later reading is moved forward by it (the skew), so every entry ages by the
//! pause. A wall clock that jumps backwards lowers the offset and is ignored: it never makes an entry younger. Only
//! the wall clock is injected ([`WallClock`]); the monotonic side is tokio's.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A jump of the wall clock ahead of the monotonic clock larger than this is a pause the monotonic clock missed.
/// Smaller ones are noise (a reading delayed between the two clock calls) or an NTP step not worth acting on; a TTL
/// is at least seconds long.
pub const PAUSE_THRESHOLD: Duration = Duration::from_secs(1);

/// The wall clock, injectable so tests can simulate a pause with no sleeping.
pub trait WallClock: Clone + Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// One reading of [`Clock::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Monotonic time moved forward by every pause seen so far. Never goes backwards.
    pub now: Instant,
    /// A pause the monotonic clock did not see, detected by this reading.
    pub pause: Option<Duration>,
}

/// Monotonic time that also counts the pauses the monotonic clock did not see.
#[derive(Debug)]
pub struct Clock<W = SystemWallClock> {
    wall: W,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// The last reading of each clock.
    mono: Instant,
    wall: SystemTime,
    /// Every pause counted so far.
    skew: Duration,
}

impl<W: WallClock> Clock<W> {
    /// A clock whose first reading is now.
    pub fn new(wall: W) -> Self {
        let state = State {
            mono: Instant::now(),
            wall: wall.now(),
            skew: Duration::ZERO,
        };
        Self {
            wall,
            state: Mutex::new(state),
        }
    }

    /// The wall clock it checks against.
    pub fn wall(&self) -> &W {
        &self.wall
    }

    /// Reads both clocks; returns the pause-corrected monotonic time and any pause found since the last reading.
    pub fn read(&self) -> Reading {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mono = Instant::now();
        let wall = self.wall.now();
        let mono_step = mono.saturating_duration_since(s.mono);
        // A wall clock set backwards gives an error here: no step, and never a younger entry.
        let wall_step = wall.duration_since(s.wall).unwrap_or(Duration::ZERO);
        let missed = wall_step.saturating_sub(mono_step);
        let pause = (missed > PAUSE_THRESHOLD).then(|| {
            s.skew += missed;
            missed
        });
        s.mono = mono;
        s.wall = wall;
        Reading {
            now: mono + s.skew,
            pause,
        }
    }

    /// The pause-corrected monotonic time.
    pub fn now(&self) -> Instant {
        self.read().now
    }

    /// Every pause counted so far.
    #[cfg(test)]
    pub fn skew(&self) -> Duration {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).skew
    }
}

/// A UTC time written in fixed-position digits: `at` holds the byte ranges of its year, month, day, hour, minute and
/// second in `s` (`X-Amz-Date`'s `20261204T050000Z`, the AWS extension's `2026-12-04T05:00:00.000Z`). `None` unless
/// each range is all ASCII digits and that date and time exist; the separators are the caller's to check.
pub fn utc_from_fixed_digits(
    s: &str,
    at: [std::ops::Range<usize>; 6],
) -> Option<time::OffsetDateTime> {
    let [year, month, day, hour, minute, second] = at.map(|r| {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse::<u16>().ok())?
    });
    let month = time::Month::try_from(u8::try_from(month?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(year?), month, u8::try_from(day?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(hour?).ok()?,
        u8::try_from(minute?).ok()?,
        u8::try_from(second?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A wall clock the test sets by hand.
    #[derive(Debug, Clone)]
    pub(crate) struct ManualWall(Arc<Mutex<SystemTime>>);

    impl Default for ManualWall {
        fn default() -> Self {
            Self(Arc::new(Mutex::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )))
        }
    }

    impl ManualWall {
        /// Moves the wall clock forward (a negative step moves it back).
        pub(crate) fn step(&self, secs: i64) {
            let mut t = self.0.lock().expect("lock");
            let d = Duration::from_secs(secs.unsigned_abs());
            *t = if secs >= 0 { *t + d } else { *t - d };
        }
    }

    impl WallClock for ManualWall {
        fn now(&self) -> SystemTime {
            *self.0.lock().expect("lock")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn clocks_running_together_add_no_skew() {
        let wall = ManualWall::default();
        let clock = Clock::new(wall.clone());
        let start = clock.now();
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(30)).await;
            wall.step(30);
            assert_eq!(clock.read().pause, None);
        }
        assert_eq!(clock.now() - start, Duration::from_secs(300));
        assert_eq!(clock.skew(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_the_monotonic_clock_missed_moves_time_forward_by_it() {
        let wall = ManualWall::default();
        let clock = Clock::new(wall.clone());
        let start = clock.now();
        // A micro-VM paused for ten minutes: the wall clock is set to the real time, the monotonic one is not.
        wall.step(600);
        let r = clock.read();
        assert_eq!(r.pause, Some(Duration::from_secs(600)));
        assert_eq!(r.now - start, Duration::from_secs(600));
        // Counted once: the next readings see no new pause, and time runs on from there.
        tokio::time::advance(Duration::from_secs(5)).await;
        wall.step(5);
        let r = clock.read();
        assert_eq!(r.pause, None);
        assert_eq!(r.now - start, Duration::from_secs(605));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_set_backwards_never_makes_time_go_back_or_eats_a_later_pause() {
        let wall = ManualWall::default();
        let clock = Clock::new(wall.clone());
        let start = clock.now();
        wall.step(-3600);
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = clock.read();
        assert_eq!(r.pause, None);
        assert_eq!(r.now - start, Duration::from_secs(1));
        // A pause after the backwards step is still seen in full.
        wall.step(120);
        assert_eq!(clock.read().pause, Some(Duration::from_secs(120)));
        assert!(clock.now() >= r.now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_process_whose_monotonic_clock_ran_sees_no_pause() {
        let wall = ManualWall::default();
        let clock = Clock::new(wall.clone());
        // SIGSTOP: both clocks ran while the process was stopped; the monotonic one already counts the gap.
        tokio::time::advance(Duration::from_secs(900)).await;
        wall.step(900);
        assert_eq!(clock.read().pause, None);
        assert_eq!(clock.skew(), Duration::ZERO);
    }
}
