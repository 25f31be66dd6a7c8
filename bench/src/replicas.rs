//! The replicas curve: stage two as 1, 2 and 4 `stage-host` processes in one consumer group,
//! and Kafka Streams with 1, 2 and 4 stream threads in one process, each over the same fresh
//! 4-partition input. Measured like the scenarios (the group's committed offsets reach the
//! input's count), with the timed window opening once every replica (or thread) holds a
//! partition: replicas start one after another, and the rebalances until the last has joined
//! are start-up, not throughput. CPU is summed over the processes; peak RSS is per process.

use crate::cli::BenchArgs;
use crate::cluster::Cluster;
use crate::commands::{self, Topics};
use crate::group::GroupWatch;
use crate::process::{ProcessSet, StageProcess};
use crate::scenario::{measure_throughput_from, Throughput};
use anyhow::{Context, Result};
use plugin_api::Stage;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What runs the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Implementation {
    /// `stage-host --plugin libstage_two.so` processes, at-least-once.
    StageHost,
    /// One Kafka Streams process with that many stream threads, at_least_once.
    KafkaStreams,
}

impl Implementation {
    /// What is counted, singular and plural.
    pub fn unit(self, count: u32) -> &'static str {
        match (self, count) {
            (Implementation::StageHost, 1) => "process",
            (Implementation::StageHost, _) => "processes",
            (Implementation::KafkaStreams, 1) => "thread",
            (Implementation::KafkaStreams, _) => "threads",
        }
    }

    /// For tables and the chart.
    pub fn label(self, count: u32) -> String {
        match self {
            Implementation::StageHost => format!("stage-host, {count} {}", self.unit(count)),
            Implementation::KafkaStreams => {
                format!("Kafka Streams, {count} {}", self.unit(count))
            }
        }
    }

    fn id(self) -> &'static str {
        match self {
            Implementation::StageHost => "replicas",
            Implementation::KafkaStreams => "kstreams-threads",
        }
    }
}

/// One point of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaRun {
    /// What ran.
    pub implementation: Implementation,
    /// Processes (stage-host) or stream threads (Kafka Streams).
    pub count: u32,
    /// Records/s and CPU s per M over all processes; `peak_rss_mb` is the largest of any one.
    pub throughput: Throughput,
    /// Peak RSS of each process, MB.
    pub peak_rss_mb_each: Vec<f64>,
    /// Whether the timed window opened once every replica held a partition (otherwise at the
    /// first commit: they were not all assigned before half the input was committed).
    pub window_all_assigned: bool,
}

/// Runs the curve over a fresh input of `args.records` records in `partitions` partitions.
pub fn run(
    args: &BenchArgs,
    cluster: &mut Cluster,
    run_id: u64,
    input: &str,
    bytes_per_record: f64,
) -> Result<Vec<ReplicaRun>> {
    let mut plan: Vec<(Implementation, u32)> = args
        .replicas
        .iter()
        .map(|&n| (Implementation::StageHost, n))
        .collect();
    if !args.skip_kstreams {
        plan.extend(
            args.replicas
                .iter()
                .map(|&n| (Implementation::KafkaStreams, n)),
        );
    }
    let mut runs = Vec::new();
    for (implementation, count) in plan {
        let run = run_one(
            args,
            cluster,
            run_id,
            input,
            bytes_per_record,
            implementation,
            count,
        )
        .with_context(|| implementation.label(count))?;
        runs.push(run);
    }
    Ok(runs)
}

fn run_one(
    args: &BenchArgs,
    cluster: &mut Cluster,
    run_id: u64,
    input: &str,
    bytes_per_record: f64,
    implementation: Implementation,
    count: u32,
) -> Result<ReplicaRun> {
    let name = format!("{}-{count}", implementation.id());
    let output = format!("bench-{run_id}-{name}-output");
    let group = format!("bench-{run_id}-{name}");
    let partitions = stage_two::StageTwo::spec().output_topic.partitions;
    cluster.create_topic(&output, partitions)?;
    let topics = Topics {
        input,
        output: &output,
        group: &group,
    };
    let mut processes = Vec::new();
    let started = (|| {
        match implementation {
            Implementation::StageHost => {
                for i in 0..count {
                    let log = args.log_dir.join(format!("{name}.{i}.log"));
                    processes.push(StageProcess::start(
                        commands::stage_host(args, topics),
                        &log,
                    )?);
                }
            }
            Implementation::KafkaStreams => {
                let log = args.log_dir.join(format!("{name}.log"));
                processes.push(StageProcess::start(
                    commands::kafka_streams(args, topics, false, count),
                    &log,
                )?);
            }
        }
        anyhow::Ok(())
    })();
    let mut set = ProcessSet(processes);
    let measured = started.and_then(|()| {
        tracing::info!(replicas = %implementation.label(count), records = args.records, "running");
        let watch = GroupWatch::new(cluster, &group, input)?;
        let members = count as usize;
        let mut all_assigned = false;
        let mut last_look: Option<Instant> = None;
        let throughput = measure_throughput_from(
            cluster,
            &mut set,
            input,
            &group,
            args.records,
            bytes_per_record,
            |seen| {
                // A window opening after half the input would time a few commits, not the
                // replicas (commits jump as partitions change hands): the first commit's
                // window then, flagged.
                if 2 * seen > args.records {
                    return Ok(false);
                }
                // Describing the group costs a request: at most five times a second.
                if last_look.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
                    return Ok(false);
                }
                last_look = Some(Instant::now());
                all_assigned = watch.assigned_members()? >= members;
                Ok(all_assigned)
            },
        )?;
        let each = set.usage_each()?;
        tracing::info!(
            replicas = %implementation.label(count),
            records_per_second = throughput.records_per_second as u64,
            cpu_s_per_m = throughput.cpu_seconds_per_million,
            window_all_assigned = all_assigned,
            "throughput"
        );
        anyhow::Ok(ReplicaRun {
            implementation,
            count,
            throughput,
            peak_rss_mb_each: each.iter().map(|u| u.peak_rss_bytes as f64 / 1e6).collect(),
            window_all_assigned: all_assigned,
        })
    });
    let stopped = set.stop(Duration::from_secs(40));
    cluster.delete_topic(&output);
    let run = measured?;
    stopped?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_count_processes_and_threads() {
        assert_eq!(Implementation::StageHost.label(1), "stage-host, 1 process");
        assert_eq!(
            Implementation::StageHost.label(4),
            "stage-host, 4 processes"
        );
        assert_eq!(
            Implementation::KafkaStreams.label(2),
            "Kafka Streams, 2 threads"
        );
    }
}
