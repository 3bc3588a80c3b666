//! How times and dates are written to the database: one fixed-width text format, so that text comparison is
//! time comparison and the hash chain sees the same bytes on every read.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-11-21T20:00:00.123456Z`.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_time(text: &str) -> Result<DateTime<Utc>, crate::StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| crate::StoreError::Corrupt(format!("bad time '{text}': {e}")))
}
