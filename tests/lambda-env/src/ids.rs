//! Identifiers and clocks the platform hands out: request ids, trace ids, epoch milliseconds and API Gateway's
//! request time.
//!
//! Request ids only need to be unique within a run, not unguessable, so they come from std's randomly seeded hasher
//! and a counter rather than a random-number crate.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A version-4-shaped UUID, like Lambda's request ids.
pub fn uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header, as the Runtime API passes in `Lambda-Runtime-Trace-Id`.
pub fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{:012x}{:012x};Parent={:016x};Sampled=0",
        epoch_millis() / 1000,
        random_u64() & 0xffff_ffff_ffff,
        random_u64() & 0xffff_ffff_ffff,
        random_u64()
    )
}

/// Milliseconds since the Unix epoch, the unit of `deadlineMs`.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// API Gateway's `requestContext.time`: `13/Mar/2024:10:15:32 +0000`.
pub fn apigw_time(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get((m as usize).saturating_sub(1)).unwrap_or(&"Jan");
    format!(
        "{d:02}/{month}/{y}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `YYYY/MM/DD`, the date part of a Lambda log stream name.
pub fn log_stream_date(epoch_ms: u64) -> String {
    let (y, m, d) = civil_from_days((epoch_ms / 1000 / 86_400) as i64);
    format!("{y}/{m:02}/{d:02}")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A random hex string of `n` characters (`n` <= 16).
pub fn hex(n: usize) -> String {
    let s = format!("{:016x}", random_u64());
    s[..n.min(16)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apigw_time_matches_a_recorded_event() {
        // From a recorded HTTP API event: "time": "13/Mar/2024:10:15:32 +0000", "timeEpoch": 1710324932123.
        assert_eq!(apigw_time(1_710_324_932_123), "13/Mar/2024:10:15:32 +0000");
        assert_eq!(log_stream_date(1_710_324_932_123), "2024/03/13");
    }

    #[test]
    fn uuids_look_like_uuids_and_differ() {
        let (a, b) = (uuid(), uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }
}
