//! End-to-end latency of one hop at a fixed input rate: records keyed `lat-<n>` are produced
//! into a running stage's input at `rate` per second, and each one's hop time is from the
//! moment it was handed to the producer to the moment its output reached a consumer of the
//! output topic (both in this process, so one clock).

use crate::cluster::Cluster;
use crate::preload::{is_queue_full, RecordMaker};
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use stage_host::PRODUCER_DEFAULTS;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the load producer, on top of the host's producer settings (it stands for the
/// upstream stage): lingering a little less, so more of the measured time is the hop itself.
pub const LOAD_PRODUCER: &[(&str, &str)] = &[("linger.ms", "1"), ("acks", "all")];
/// Settings of the measuring consumer: fetch answers as soon as anything is there.
pub const MEASURING_CONSUMER: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "5"),
    ("enable.partition.eof", "false"),
    ("group.id", "stage-bench-latency"),
    ("enable.auto.commit", "false"),
];

/// Latency of one stage at a fixed rate.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Input records per second.
    pub rate: u64,
    /// Seconds of input.
    pub seconds: u64,
    /// Records produced.
    pub sent: u64,
    /// Outputs received in time.
    pub received: u64,
    /// Median hop time, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
    /// Input records per second the load producer achieved (below `rate` when the machine
    /// could not hand records over that fast).
    pub achieved_rate: f64,
}

/// How long outputs may trail the last input.
const TAIL: Duration = Duration::from_secs(15);

/// Produces `rate × seconds` records into `input_topic` and times their arrival in
/// `output_topic`, which the stage under test must be consuming and writing.
pub fn measure_latency(
    cluster: &Cluster,
    maker: &mut RecordMaker,
    input_topic: &str,
    output_topic: &str,
    rate: u64,
    seconds: u64,
) -> Result<Latency> {
    let total = rate * seconds;
    let mut config = cluster.conn().producer_config(PRODUCER_DEFAULTS);
    for (key, value) in LOAD_PRODUCER {
        config.set(*key, *value);
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.create().context("load producer")?;
    warm_up(&producer, input_topic, output_topic)?;
    let receiver = start_receiver(cluster, output_topic, total)?;
    let mut sent_at: Vec<Instant> = Vec::with_capacity(total as usize);
    let mut value = Vec::new();
    let start = Instant::now();
    while (sent_at.len() as u64) < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while (sent_at.len() as u64) < due {
            let key = format!("lat-{}", sent_at.len());
            maker.value(&key, &mut value)?;
            let mut record = BaseRecord::to(input_topic)
                .key(key.as_bytes())
                .payload(&value);
            let at = Instant::now();
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, returned)) if is_queue_full(&e) => {
                        record = returned;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e).context("producing latency records"),
                }
            }
            sent_at.push(at);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let sending = start.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(30))?;
    let arrivals = receiver.finish(Instant::now() + TAIL)?;
    let mut millis: Vec<f64> = arrivals
        .iter()
        .filter_map(|&(n, at)| {
            sent_at
                .get(n as usize)
                .map(|&s| (at - s).as_secs_f64() * 1e3)
        })
        .collect();
    millis.sort_by(f64::total_cmp);
    Ok(Latency {
        rate,
        seconds,
        sent: total,
        received: millis.len() as u64,
        p50_ms: percentile(&millis, 0.50),
        p99_ms: percentile(&millis, 0.99),
        p999_ms: percentile(&millis, 0.999),
        max_ms: millis.last().copied().unwrap_or(f64::NAN),
        achieved_rate: total as f64 / sending.max(1e-6),
    })
}

/// Readies the load producer before the first timed record: a new idempotent producer first
/// connects, fetches metadata and asks the broker for a producer id, and records handed to it
/// meanwhile wait in its queue (the first half second of every run, about 5,000 records at
/// 10,000 records/s, had arrived 0.3 to 0.6 s late: the p99 of a 10 s run was the start-up of
/// the producer, not the hop). One record, keyed so the receiver ignores it, goes to the
/// output topic, which the stage never reads, before the receiver takes the output's end
/// offsets; then the input's metadata is fetched.
fn warm_up(
    producer: &ThreadedProducer<DefaultProducerContext>,
    input_topic: &str,
    output_topic: &str,
) -> Result<()> {
    producer
        .send(
            BaseRecord::to(output_topic)
                .key(b"stage-bench-warm-up".as_slice())
                .payload(b"".as_slice()),
        )
        .map_err(|(e, _)| e)
        .context("warming up the load producer")?;
    producer
        .flush(Duration::from_secs(30))
        .context("warming up the load producer")?;
    producer
        .client()
        .fetch_metadata(Some(input_topic), Duration::from_secs(15))
        .with_context(|| format!("metadata of {input_topic}"))?;
    Ok(())
}

/// A scenario's throughput must exceed a latency run's rate by this factor, or the run would
/// time a growing backlog rather than the hop.
pub const SUSTAIN_MARGIN: f64 = 1.2;

/// The two latency runs of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The same fixed rate for every scenario (`--latency-rate`, 10,000 records/s).
    Fixed,
    /// Half of the scenario's own measured maximum throughput.
    HalfMax,
}

/// The input rate of `load`'s run for a scenario whose throughput run measured
/// `max_records_per_second`, or why that run is skipped.
pub fn run_rate(load: Load, fixed_rate: u64, max_records_per_second: f64) -> Result<u64, String> {
    let max = max_records_per_second;
    let rate = match load {
        Load::Fixed => fixed_rate,
        Load::HalfMax => (max / 2.0).floor() as u64,
    };
    if rate == 0 {
        return Err(format!(
            "its throughput ({max:.0} records/s) leaves no rate to measure at"
        ));
    }
    if (rate as f64) * SUSTAIN_MARGIN > max {
        return Err(format!(
            "its throughput ({max:.0} records/s) cannot sustain {rate} records/s"
        ));
    }
    Ok(rate)
}

/// Nearest-rank percentile of sorted values (NaN when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A thread consuming the output topic from its current end, noting when each `lat-<n>`
/// output arrives.
struct Receiver {
    stop: Arc<AtomicBool>,
    deadline: Arc<std::sync::Mutex<Option<Instant>>>,
    thread: std::thread::JoinHandle<Result<Vec<(u64, Instant)>>>,
}

fn start_receiver(cluster: &Cluster, topic: &str, expected: u64) -> Result<Receiver> {
    let consumer: BaseConsumer = cluster
        .conn()
        .consumer_config(MEASURING_CONSUMER)
        .create()
        .context("measuring consumer")?;
    let partitions = cluster.partitions(topic)?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        // The end as it is now, before the first latency record is produced. With Offset::End
        // librdkafka looks the end up only once it starts fetching, and a stage that answers
        // faster than that has written its first outputs already: they were missed (the first
        // few thousand records of a Kafka Streams run).
        let (_, end) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(15))
            .with_context(|| format!("end offsets of {topic}"))?;
        assignment.add_partition_offset(topic, p, Offset::Offset(end))?;
    }
    consumer.assign(&assignment)?;
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let thread = {
        let (stop, deadline) = (Arc::clone(&stop), Arc::clone(&deadline));
        std::thread::spawn(move || {
            let mut arrivals = Vec::with_capacity(expected as usize);
            while (arrivals.len() as u64) < expected {
                if stop.load(Ordering::Relaxed) {
                    let passed = deadline
                        .lock()
                        .expect("deadline lock")
                        .is_some_and(|d| Instant::now() >= d);
                    if passed {
                        break;
                    }
                }
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let at = Instant::now();
                        if let Some(n) = m.key().and_then(sequence_number) {
                            arrivals.push((n, at));
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "measuring consumer"),
                    None => {}
                }
            }
            Ok(arrivals)
        })
    };
    Ok(Receiver {
        stop,
        deadline,
        thread,
    })
}

impl Receiver {
    /// Waits for the outputs until `deadline`, then returns the arrivals.
    fn finish(self, deadline: Instant) -> Result<Vec<(u64, Instant)>> {
        *self.deadline.lock().expect("deadline lock") = Some(deadline);
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the measuring consumer panicked"))?
    }
}

/// `n` from a `lat-<n>` key.
fn sequence_number(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(b"lat-")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 500.0);
        assert_eq!(percentile(&values, 0.99), 990.0);
        assert_eq!(percentile(&values, 0.999), 999.0);
        assert_eq!(percentile(&values, 1.0), 1000.0);
        // With fewer than 1000 values, p99.9 is the slowest one.
        let few: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&few, 0.999), 10.0);
        assert_eq!(percentile(&few, 0.5), 5.0);
        assert_eq!(percentile(&[7.0], 0.001), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_fixed_rate_needs_headroom() {
        assert_eq!(run_rate(Load::Fixed, 10_000, 50_000.0), Ok(10_000));
        assert_eq!(run_rate(Load::Fixed, 10_000, 12_000.0), Ok(10_000));
        let why = run_rate(Load::Fixed, 10_000, 11_999.0).unwrap_err();
        assert_eq!(
            why,
            "its throughput (11999 records/s) cannot sustain 10000 records/s"
        );
        assert!(run_rate(Load::Fixed, 10_000, 3_000.0).is_err());
    }

    #[test]
    fn half_max_is_half_the_measured_throughput() {
        assert_eq!(run_rate(Load::HalfMax, 10_000, 150_001.0), Ok(75_000));
        // Below the fixed rate too: a slow scenario still gets its half-max run.
        assert_eq!(run_rate(Load::HalfMax, 10_000, 3_007.0), Ok(1_503));
        assert_eq!(run_rate(Load::HalfMax, 10_000, 3.0), Ok(1));
        assert!(run_rate(Load::HalfMax, 10_000, 1.9).is_err());
        assert!(run_rate(Load::HalfMax, 10_000, 0.0).is_err());
    }

    #[test]
    fn sequence_numbers_come_from_latency_keys_only() {
        assert_eq!(sequence_number(b"lat-0"), Some(0));
        assert_eq!(sequence_number(b"lat-123456"), Some(123_456));
        assert_eq!(sequence_number(b"postid_3"), None);
        assert_eq!(sequence_number(b"lat-x"), None);
    }
}
