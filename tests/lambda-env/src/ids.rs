//! Identifiers and clocks the platform hands out: request ids (`uuid`), trace ids and random hex (`fastrand`; they
//! need to be unique within a run, not unguessable), epoch milliseconds, and the dates API Gateway and the log stream
//! name carry (`time`).

use std::time::{SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::OffsetDateTime;

/// A version-4 UUID, like Lambda's request ids.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An X-Ray trace header, as the Runtime API passes in `Lambda-Runtime-Trace-Id`.
pub fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        epoch_millis() / 1000,
        fastrand::u128(..) & ((1 << 96) - 1),
        fastrand::u64(..)
    )
}

/// Milliseconds since the Unix epoch, the unit of `deadlineMs`.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn utc(epoch_ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((epoch_ms / 1000) as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// API Gateway's `requestContext.time`: `13/Mar/2024:10:15:32 +0000`.
pub fn apigw_time(epoch_ms: u64) -> String {
    utc(epoch_ms)
        .format(format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default()
}

/// `YYYY/MM/DD`, the date part of a Lambda log stream name.
pub fn log_stream_date(epoch_ms: u64) -> String {
    utc(epoch_ms)
        .format(format_description!("[year]/[month]/[day]"))
        .unwrap_or_default()
}

/// A random hex string of `n` characters.
pub fn hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apigw_time_matches_a_recorded_event() {
        // From a recorded HTTP API event: "time": "13/Mar/2024:10:15:32 +0000", "timeEpoch": 1710324932123.
        assert_eq!(apigw_time(1_710_324_932_123), "13/Mar/2024:10:15:32 +0000");
        assert_eq!(log_stream_date(1_710_324_932_123), "2024/03/13");
        assert_eq!(apigw_time(1_704_067_199_000), "31/Dec/2023:23:59:59 +0000");
    }

    #[test]
    fn uuids_look_like_uuids_and_differ() {
        let (a, b) = (uuid(), uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }

    #[test]
    fn ids_have_their_shapes() {
        let h = hex(20);
        assert_eq!(h.len(), 20);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
        let t = trace_id();
        let root = t
            .strip_prefix("Root=1-")
            .and_then(|r| r.split(';').next())
            .expect("Root=1-...");
        assert_eq!(root.len(), 8 + 1 + 24, "{t}");
    }
}
