//! The stage's log lines from Python (`print()`, writes to `sys.stderr`, the bridge's own
//! notes), written to the process's stderr in the host's format: text by default, JSON when
//! `STAGE_HOST_LOG_FORMAT=json`. The plugin has its own copy of any logging crate and so
//! cannot reach the host's subscriber; a line on stderr is what the host's lines are too.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How severe a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// `print()` and notes.
    Info,
    /// Writes to `sys.stderr`, and the bridge's warnings.
    Warn,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
        }
    }
}

fn json_format() -> bool {
    static JSON: OnceLock<bool> = OnceLock::new();
    *JSON.get_or_init(|| {
        std::env::var("STAGE_HOST_LOG_FORMAT")
            .map(|v| v.eq_ignore_ascii_case("json"))
            .unwrap_or(false)
    })
}

/// Writes one log line for `stage` (the class name).
pub(crate) fn line(level: Level, stage: &str, message: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let timestamp = rfc3339(now.as_secs(), now.subsec_micros());
    let text = if json_format() {
        serde_json::json!({
            "timestamp": timestamp,
            "level": level.name(),
            "fields": { "message": message, "stage": stage },
            "target": "python",
        })
        .to_string()
    } else {
        format!(
            "{timestamp} {:>5} python{{stage={stage}}}: {message}",
            level.name()
        )
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// `2026-12-03T16:01:16.123456Z` for seconds and microseconds since the epoch (UTC).
fn rfc3339(secs: u64, micros: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(1_796_310_076, 123_456),
            "2026-12-03T15:01:16.123456Z"
        );
    }
}
