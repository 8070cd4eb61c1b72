//! `make bench`: what the extension costs on every invocation and at cold start, measured side by side with a
//! minimal hyper server (the physical limit) and, optionally, a compatible peer, **in one run**.
//!
//! Parts:
//! - [`host`]: CPUs, pinning with `taskset`, CPU time and RSS from `/proc`;
//! - [`targets`]: the processes under test (baseline, ours, peer);
//! - [`load`]: the keep-alive, closed-loop load generator (hyper client);
//! - [`scenarios`]: items 1–11 of the issues, each returning table rows;
//! - [`report`]: the Markdown table and the JSON; percentiles, medians of repeats and paired ratios come from
//!   [`secretcache_tests::stats`], which the reliability suite uses too.
//!
//! Every figure is the median of several repeats with their min and max, and each has a ratio to the baseline
//! measured in the same run (paired repeat by repeat). Nothing here asserts on timing: this is a measurement, not a
//! test, so a noisy shared machine cannot fail a build with it.

pub mod host;
pub mod load;
pub mod report;
pub mod scenarios;
pub mod targets;

use std::time::Duration;

use serde::Serialize;

/// Environment variable: seconds of each measured load window.
pub const SECONDS_VAR: &str = "BENCH_SECONDS";
/// Environment variable: seconds of warm-up before each window.
pub const WARMUP_VAR: &str = "BENCH_WARMUP_SECONDS";
/// Environment variable: repeats of every measurement.
pub const REPEATS_VAR: &str = "BENCH_REPEATS";
/// Environment variable: the scenarios to run, comma-separated (all when unset).
pub const ONLY_VAR: &str = "BENCH_ONLY";
/// Environment variable: how many secrets the scale rows cache (item 10).
pub const SCALE_VAR: &str = "BENCH_SCALE_SECRETS";
/// The scenarios, by the names `BENCH_ONLY` takes.
pub const SCENARIOS: [&str; 9] = [
    "hit", "cold", "memory", "scale", "size", "function", "batch", "sdk", "mi",
];

/// How long and how often to measure.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Measured window of each load point.
    pub seconds: f64,
    /// Warm-up before each window (same connections, not measured).
    pub warmup_seconds: f64,
    /// Repeats of every measurement (each load point, each cold start, each memory fill).
    pub repeats: usize,
    /// Keep-alive connections of the load points.
    pub connections: Vec<usize>,
    /// Concurrent cold requests for the single-flight check.
    pub burst: usize,
    /// Secrets cached for the memory figures, and their size.
    pub memory_secrets: Vec<usize>,
    /// Bytes of each secret used for the memory figures (and the scale rows).
    pub memory_secret_bytes: usize,
    /// Secrets cached for the scale rows (item 10), of [`Settings::memory_secret_bytes`] each.
    pub scale_secrets: usize,
    /// The scenarios run ([`SCENARIOS`] by default).
    pub only: Vec<String>,
}

/// A setting that could not be read from the environment.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not valid: expected {accepted}")]
pub struct SettingError {
    var: &'static str,
    value: String,
    accepted: &'static str,
}

impl Settings {
    /// Repeats of each cold start (item 4): three times [`Settings::repeats`]. One process start is one sample, and
    /// on a shared 2-CPU machine a start varies by several times its median (another process scheduled at the wrong
    /// millisecond), where a 10 s load window averages that out; the medians of three starts moved the ratios by
    /// half from one run to the next.
    pub fn cold_repeats(&self) -> usize {
        self.repeats * 3
    }

    /// The 10 s per load point, repeated 3 times: about 4 minutes on two CPUs for ours and the baseline (a
    /// peer adds about 1.5 minutes).
    pub fn defaults() -> Settings {
        Settings {
            seconds: 10.0,
            warmup_seconds: 1.0,
            repeats: 3,
            connections: vec![1, 8, 64],
            burst: 1000,
            memory_secrets: vec![100, 1000],
            memory_secret_bytes: 4096,
            scale_secrets: 10_000,
            only: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Whether scenario `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|s| s == name)
    }

    /// How many secrets of [`Settings::memory_secret_bytes`] the scenarios run need in moto: the most the memory
    /// rows fill, or the scale rows' count, whichever runs and is larger (none when neither runs).
    pub fn bulk_secrets(&self) -> usize {
        let memory = match self.runs("memory") {
            true => self.memory_secrets.iter().copied().max().unwrap_or(0),
            false => 0,
        };
        let scale = match self.runs("scale") {
            true => self.scale_secrets,
            false => 0,
        };
        memory.max(scale)
    }

    /// Defaults overridden by `BENCH_SECONDS`, `BENCH_WARMUP_SECONDS`, `BENCH_REPEATS`, `BENCH_ONLY` and
    /// `BENCH_SCALE_SECRETS`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let mut s = Settings::defaults();
        let seconds = |var: &'static str, lo: f64, hi: f64| -> Result<Option<f64>, SettingError> {
            get(var)
                .map(|v| match v.trim().parse::<f64>() {
                    Ok(x) if (lo..=hi).contains(&x) => Ok(x),
                    _ => Err(SettingError {
                        var,
                        value: v,
                        accepted: if var == WARMUP_VAR {
                            "seconds from 0 to 60"
                        } else {
                            "seconds from 0.1 to 600"
                        },
                    }),
                })
                .transpose()
        };
        if let Some(x) = seconds(SECONDS_VAR, 0.1, 600.0)? {
            s.seconds = x;
        }
        if let Some(x) = seconds(WARMUP_VAR, 0.0, 60.0)? {
            s.warmup_seconds = x;
        }
        if let Some(v) = get(REPEATS_VAR) {
            s.repeats = match v.trim().parse::<usize>() {
                Ok(n) if (1..=50).contains(&n) => n,
                _ => {
                    return Err(SettingError {
                        var: REPEATS_VAR,
                        value: v,
                        accepted: "an integer from 1 to 50",
                    })
                }
            };
        }
        if let Some(v) = get(SCALE_VAR) {
            s.scale_secrets = match v.trim().parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => {
                    return Err(SettingError {
                        var: SCALE_VAR,
                        value: v,
                        accepted: "an integer from 1 to 100000",
                    })
                }
            };
        }
        if let Some(v) = get(ONLY_VAR) {
            let names: Vec<String> = v
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() || names.iter().any(|n| !SCENARIOS.contains(&n.as_str())) {
                return Err(SettingError {
                    var: ONLY_VAR,
                    value: v,
                    accepted: "scenario names from hit, cold, memory, scale, size, function, batch, sdk, mi, \
                               comma-separated",
                });
            }
            s.only = names;
        }
        Ok(s)
    }

    /// The measured window.
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// The warm-up.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_default_and_override() {
        let s = Settings::from_env(env(&[])).expect("defaults");
        assert_eq!((s.seconds, s.repeats), (10.0, 3));
        let s = Settings::from_env(env(&[(SECONDS_VAR, "3"), (REPEATS_VAR, "5")])).expect("set");
        assert_eq!((s.seconds, s.repeats), (3.0, 5));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = Settings::from_env(env(&[(REPEATS_VAR, "0")])).expect_err("0 repeats");
        assert!(e.to_string().contains(REPEATS_VAR), "{e}");
        let e = Settings::from_env(env(&[(SECONDS_VAR, "ten")])).expect_err("not a number");
        assert!(e.to_string().contains(SECONDS_VAR), "{e}");
        let e = Settings::from_env(env(&[(ONLY_VAR, "sdk,hits")])).expect_err("no such scenario");
        assert!(e.to_string().contains(ONLY_VAR), "{e}");
        let e = Settings::from_env(env(&[(SCALE_VAR, "100001")])).expect_err("too many");
        assert!(e.to_string().contains(SCALE_VAR), "{e}");
        let e = Settings::from_env(env(&[(SCALE_VAR, "0")])).expect_err("none");
        assert!(e.to_string().contains(SCALE_VAR), "{e}");
    }

    #[test]
    fn bulk_secrets_follow_the_scenarios_run() {
        let s = Settings::from_env(env(&[])).expect("defaults");
        assert_eq!(s.bulk_secrets(), 10_000);
        let s = Settings::from_env(env(&[(ONLY_VAR, "memory")])).expect("memory");
        assert_eq!(s.bulk_secrets(), 1000);
        let s = Settings::from_env(env(&[(ONLY_VAR, "memory,scale"), (SCALE_VAR, "500")]))
            .expect("both");
        assert_eq!(s.bulk_secrets(), 1000);
        let s =
            Settings::from_env(env(&[(ONLY_VAR, "scale"), (SCALE_VAR, "20000")])).expect("scale");
        assert_eq!(s.bulk_secrets(), 20_000);
        let s = Settings::from_env(env(&[(ONLY_VAR, "hit,mi")])).expect("neither");
        assert_eq!(s.bulk_secrets(), 0);
    }

    #[test]
    fn only_names_the_scenarios_run() {
        let s = Settings::from_env(env(&[])).expect("defaults");
        assert!(SCENARIOS.iter().all(|n| s.runs(n)));
        let s = Settings::from_env(env(&[(ONLY_VAR, "sdk, batch")])).expect("two");
        assert!(s.runs("sdk") && s.runs("batch") && !s.runs("hit"));
    }
}
