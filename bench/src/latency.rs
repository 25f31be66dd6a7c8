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
use stage_host::settings::PRODUCER_DEFAULTS;
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
    /// Slowest, milliseconds.
    pub max_ms: f64,
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
    let receiver = start_receiver(cluster, output_topic, total)?;
    let mut config = cluster.conn().client_config(PRODUCER_DEFAULTS);
    for (key, value) in LOAD_PRODUCER {
        config.set(*key, *value);
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.create().context("load producer")?;
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
        max_ms: millis.last().copied().unwrap_or(f64::NAN),
    })
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
        .client_config(MEASURING_CONSUMER)
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
