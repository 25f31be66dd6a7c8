//! Rates, lag trend and time to catch up, computed from successive status snapshots of a
//! pipeline (for `pipeline status --watch`). Pure arithmetic, so it is unit-tested here.
//!
//! Counters are per process and start at 0 when a process (re)starts, so a rate is summed
//! from each process's own increase; a counter that went down (a restart between two
//! snapshots) counts from 0, as Prometheus' `rate` treats a counter reset. Rates are smoothed
//! with an exponentially weighted moving average, because counters arrive at most every
//! 250 ms and lag every second, which makes raw per-interval rates jumpy.

use std::collections::BTreeMap;
use std::time::Duration;

/// Weight of the newest interval in a smoothed rate.
const SMOOTHING: f64 = 0.5;

/// What grew by how much: `now - before`, or `now` if the counter was reset in between.
pub fn increase(before: u64, now: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

/// Per second, over `elapsed` (`None` for no time).
pub fn per_second(amount: f64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| amount / secs)
}

/// An exponentially weighted moving average; the first sample is taken as is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Smoothed(Option<f64>);

impl Smoothed {
    /// Adds a sample and returns the new average.
    pub fn add(&mut self, sample: f64) -> f64 {
        let value = match self.0 {
            None => sample,
            Some(old) => SMOOTHING * sample + (1.0 - SMOOTHING) * old,
        };
        self.0 = Some(value);
        value
    }

    /// The average so far.
    pub fn value(&self) -> Option<f64> {
        self.0
    }
}

/// How long until a lag of `lag` records is gone at `drain_per_sec` records per second
/// (the rate at which lag falls). `None` when it is not falling.
pub fn eta(lag: u64, drain_per_sec: f64) -> Option<Duration> {
    if lag == 0 {
        return Some(Duration::ZERO);
    }
    (drain_per_sec > 0.0 && drain_per_sec.is_finite())
        .then(|| Duration::from_secs_f64(lag as f64 / drain_per_sec))
}

/// Where a stage is relative to its input.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Lag unknown (a source, or nothing committed yet).
    Unknown,
    /// No lag.
    CaughtUp,
    /// Lag falling: the share of the peak lag already worked off, and when it will be gone.
    CatchingUp {
        /// 0.0 to 1.0 of the highest lag seen while watching.
        done: f64,
        /// Time to lag 0 at the current rate.
        eta: Duration,
    },
    /// Lag under a second of input: the stage keeps up, what lag there is are records in
    /// flight between commits.
    KeepingUp,
    /// Lag growing.
    FallingBehind,
    /// Lag neither falling nor growing.
    Steady,
}

impl Progress {
    /// From the current lag, the smoothed rate at which it falls, the peak lag seen and the
    /// smoothed input rate. A change of lag counts as a trend only above 2% of the input rate
    /// (at least 1 record/s): commits and statistics arrive in steps, so a steady stage's lag
    /// wobbles by a few records.
    pub fn of(
        lag: Option<u64>,
        drain_per_sec: Option<f64>,
        peak: u64,
        input_per_sec: Option<f64>,
    ) -> Progress {
        let Some(lag) = lag else {
            return Progress::Unknown;
        };
        if lag == 0 {
            return Progress::CaughtUp;
        }
        let input = input_per_sec.unwrap_or(0.0);
        let threshold = (input * 0.02).max(1.0);
        match drain_per_sec {
            Some(rate) if rate > threshold => Progress::CatchingUp {
                done: if peak > 0 {
                    1.0 - (lag as f64 / peak as f64).min(1.0)
                } else {
                    0.0
                },
                eta: eta(lag, rate).unwrap_or_default(),
            },
            Some(rate) if rate < -threshold => Progress::FallingBehind,
            _ if (lag as f64) < input => Progress::KeepingUp,
            _ => Progress::Steady,
        }
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Unknown => write!(f, "-"),
            Progress::CaughtUp => write!(f, "caught up"),
            Progress::CatchingUp { done, eta } => write!(
                f,
                "catching up {:>3.0}%, ETA {}",
                done * 100.0,
                human_duration(*eta)
            ),
            Progress::KeepingUp => write!(f, "keeping up"),
            Progress::FallingBehind => write!(f, "falling behind"),
            Progress::Steady => write!(f, "lag steady"),
        }
    }
}

/// `45s`, `3m05s`, `2h10m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// One process's counters in a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// Records consumed.
    pub records_in: u64,
    /// Records produced.
    pub records_out: u64,
    /// Its consumer lag, when known.
    pub lag: Option<u64>,
}

/// A stage's processes (keyed by replica and pid, so a restart is a new key) in a snapshot.
pub type StageSample = BTreeMap<(u64, u64), ProcessSample>;

/// What the view shows for a stage, updated snapshot by snapshot.
#[derive(Debug, Clone, Default)]
pub struct StageTrend {
    last: Option<StageSample>,
    /// Smoothed records in per second.
    pub in_rate: Smoothed,
    /// Smoothed records out per second.
    pub out_rate: Smoothed,
    /// Smoothed rate at which lag falls (negative: grows).
    pub drain_rate: Smoothed,
    /// Highest lag seen.
    pub peak_lag: u64,
}

impl StageTrend {
    /// Takes the next snapshot of the stage, `elapsed` after the previous one.
    pub fn update(&mut self, sample: StageSample, elapsed: Duration) {
        let lag_now = total_lag(&sample);
        if let Some(lag) = lag_now {
            self.peak_lag = self.peak_lag.max(lag);
        }
        if let Some(last) = &self.last {
            let grown = |field: fn(&ProcessSample) -> u64| -> u64 {
                sample
                    .iter()
                    .map(|(key, now)| {
                        let before = last.get(key).map(field).unwrap_or(0);
                        increase(before, field(now))
                    })
                    .sum()
            };
            if let Some(rate) = per_second(grown(|p| p.records_in) as f64, elapsed) {
                self.in_rate.add(rate);
            }
            if let Some(rate) = per_second(grown(|p| p.records_out) as f64, elapsed) {
                self.out_rate.add(rate);
            }
            if let (Some(before), Some(now)) = (total_lag(last), lag_now) {
                if let Some(rate) = per_second(before as f64 - now as f64, elapsed) {
                    self.drain_rate.add(rate);
                }
            }
        }
        self.last = Some(sample);
    }

    /// The stage's current lag (summed over its processes), when known.
    pub fn lag(&self) -> Option<u64> {
        self.last.as_ref().and_then(total_lag)
    }

    /// Records consumed and produced so far (summed over the current processes).
    pub fn totals(&self) -> (u64, u64) {
        self.last
            .iter()
            .flat_map(|s| s.values())
            .fold((0, 0), |(i, o), p| (i + p.records_in, o + p.records_out))
    }

    /// Where the stage is relative to its input.
    pub fn progress(&self) -> Progress {
        Progress::of(
            self.lag(),
            self.drain_rate.value(),
            self.peak_lag,
            self.in_rate.value(),
        )
    }
}

fn total_lag(sample: &StageSample) -> Option<u64> {
    sample
        .values()
        .filter_map(|p| p.lag)
        .fold(None, |sum, lag| Some(sum.unwrap_or(0) + lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process in a test snapshot: (replica, pid), records in, records out, lag.
    type Proc = ((u64, u64), u64, u64, Option<u64>);

    fn sample(procs: &[Proc]) -> StageSample {
        procs
            .iter()
            .map(|&(key, records_in, records_out, lag)| {
                (
                    key,
                    ProcessSample {
                        records_in,
                        records_out,
                        lag,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn increase_treats_a_drop_as_a_reset() {
        assert_eq!(increase(10, 25), 15);
        assert_eq!(increase(10, 10), 0);
        assert_eq!(increase(100, 7), 7, "restarted: counts from 0");
    }

    #[test]
    fn per_second_needs_time() {
        assert_eq!(per_second(50.0, Duration::from_millis(500)), Some(100.0));
        assert_eq!(per_second(50.0, Duration::ZERO), None);
    }

    #[test]
    fn smoothing_starts_at_the_first_sample_and_moves_halfway() {
        let mut rate = Smoothed::default();
        assert_eq!(rate.value(), None);
        assert_eq!(rate.add(100.0), 100.0);
        assert_eq!(rate.add(200.0), 150.0);
        assert_eq!(rate.add(150.0), 150.0);
    }

    #[test]
    fn eta_is_lag_over_drain_rate() {
        assert_eq!(eta(1000, 100.0), Some(Duration::from_secs(10)));
        assert_eq!(eta(0, 0.0), Some(Duration::ZERO));
        assert_eq!(eta(10, 0.0), None, "not falling: no ETA");
        assert_eq!(eta(10, -5.0), None);
        assert_eq!(eta(10, f64::INFINITY), None);
    }

    #[test]
    fn progress_from_lag_and_its_trend() {
        assert_eq!(Progress::of(None, Some(10.0), 0, None), Progress::Unknown);
        assert_eq!(Progress::of(Some(0), None, 50, None), Progress::CaughtUp);
        assert_eq!(
            Progress::of(Some(250), Some(50.0), 1000, Some(100.0)),
            Progress::CatchingUp {
                done: 0.75,
                eta: Duration::from_secs(5)
            }
        );
        assert_eq!(
            Progress::of(Some(250), Some(-20.0), 250, Some(100.0)),
            Progress::FallingBehind
        );
        assert_eq!(
            Progress::of(Some(250), Some(0.0), 250, Some(100.0)),
            Progress::Steady
        );
        assert_eq!(Progress::of(Some(250), None, 250, None), Progress::Steady);
        assert_eq!(
            Progress::of(Some(250), Some(50.0), 1000, None).to_string(),
            "catching up  75%, ETA 5s"
        );
        // 25 records behind at 100 records/s, wobbling by 2/s: in-flight records, not a trend.
        assert_eq!(
            Progress::of(Some(25), Some(-1.5), 26, Some(100.0)),
            Progress::KeepingUp
        );
        assert_eq!(
            Progress::of(Some(25), Some(1.5), 26, Some(100.0)),
            Progress::KeepingUp
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(human_duration(Duration::from_secs(7800)), "2h10m");
    }

    #[test]
    fn trend_sums_rates_over_processes_and_survives_a_restart() {
        let mut trend = StageTrend::default();
        trend.update(
            sample(&[((0, 10), 100, 100, Some(900)), ((1, 11), 50, 50, Some(100))]),
            Duration::from_secs(1),
        );
        assert_eq!(trend.in_rate.value(), None, "one snapshot: no rate yet");
        assert_eq!(trend.lag(), Some(1000));
        // Replica 1 restarted (new pid 12) and counted 30 since; replica 0 did 200 more.
        trend.update(
            sample(&[((0, 10), 300, 300, Some(700)), ((1, 12), 30, 30, None)]),
            Duration::from_secs(2),
        );
        assert_eq!(trend.in_rate.value(), Some(115.0), "(200 + 30) / 2 s");
        assert_eq!(trend.drain_rate.value(), Some(150.0), "(1000 - 700) / 2 s");
        assert_eq!(trend.totals(), (330, 330));
        assert_eq!(trend.peak_lag, 1000);
        let Progress::CatchingUp { done, eta } = trend.progress() else {
            panic!("catching up expected: {:?}", trend.progress());
        };
        assert!((done - 0.3).abs() < 1e-9, "{done}");
        assert_eq!(eta, Duration::from_secs_f64(700.0 / 150.0));
    }
}
