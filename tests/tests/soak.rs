//! Soak: the three-stage example pipeline under steady load, three runs in a row on one
//! cluster and one with a hot swap of stage two mid-stream. An independent consumer
//! (confluent-kafka) counts every topic: no record may be missing at any hop, and no stage may
//! report an offset gap (the continuity audit counts jumps in what its consumer delivers).

mod pipeline_support;

use pipeline_support::{counter, plugin, unique, PipelineRun};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const RECORDS: u32 = 20_000;
const RATE: u32 = 2_000;

/// The topics and groups of one run.
struct Run {
    one: String,
    two: String,
    three: String,
}

fn pipeline(run: &Run, base: &str) -> String {
    format!(
        r#"
[pipeline]
name = "soak"
[pipeline.swap]
probation_secs = 2.0

[[stage]]
name = "one"
plugin = "{one}"
config = {{ records = {RECORDS}, rate_per_second = {RATE} }}
output_topic = "{t1}"

[[stage]]
name = "two"
plugin = "{two}"
replicas = 2
input_topic = "{t1}"
output_topic = "{t2}"
group_id = "{base}_g2"

[[stage]]
name = "three"
plugin = "{three}"
on_error = "fail"
input_topic = "{t2}"
output_topic = "{t3}"
group_id = "{base}_g3"
"#,
        one = plugin("stage-one").display(),
        two = plugin("stage-two").display(),
        three = plugin("stage-three").display(),
        t1 = run.one,
        t2 = run.two,
        t3 = run.three,
    )
}

/// The post numbers in `topic`, read by confluent-kafka until every one of `RECORDS` is there
/// (or the timeout), and how many records it read.
fn posts_in(topic: &str) -> (BTreeSet<u32>, usize) {
    let records = e2e_tests::wait_for(
        &format!("all {RECORDS} posts in {topic}"),
        Duration::from_secs(240),
        || {
            let records = e2e_tests::consume_avro(topic, 0, 120);
            let posts: BTreeSet<u32> = records.iter().map(|r| r.post_number()).collect();
            if posts.len() == RECORDS as usize {
                Ok(records)
            } else {
                Err(posts.len())
            }
        },
    );
    let posts = records.iter().map(|r| r.post_number()).collect();
    (posts, records.len())
}

/// Lines of the stages' own logs (under the run directory) that report an offset gap.
fn gap_lines(dir: &Path) -> Vec<String> {
    let logs = dir.join(".run/soak/logs");
    std::fs::read_dir(&logs)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("offset gap"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn soak(swap: bool) {
    let base = unique(if swap { "soak_swap" } else { "soak" });
    let run = Run {
        one: format!("{base}_one"),
        two: format!("{base}_two"),
        three: format!("{base}_three"),
    };
    let mut pipeline_run = PipelineRun::start(&pipeline(&run, &base));
    pipeline_run.wait_running(Duration::from_secs(120));
    if swap {
        pipeline_run.wait_status("stage two mid-stream", Duration::from_secs(120), |s| {
            counter(s, "two", "records_in") > u64::from(RECORDS) / 4
        });
        let copy = pipeline_run.dir().join("libstage_two-next.so");
        std::fs::copy(plugin("stage-two"), &copy).expect("copy the plugin");
        let (code, answer) = pipeline_run.swap("two", &copy, None);
        assert_eq!(code, 0, "swap failed: {answer}");
    }
    // Every hop, counted by an independent consumer: nothing lost.
    for topic in [&run.one, &run.two, &run.three] {
        let (posts, read) = posts_in(topic);
        assert_eq!(posts.len(), RECORDS as usize, "posts missing from {topic}");
        eprintln!(
            "soak{}: {topic}: {RECORDS} posts, {read} records read ({} duplicates)",
            if swap { " with swap" } else { "" },
            read - RECORDS as usize
        );
    }
    let status = pipeline_run
        .status()
        .expect("the supervisor answers status");
    for stage in status["stages"].as_array().expect("stages") {
        for process in stage["processes"].as_array().expect("processes") {
            assert_eq!(
                process["offset_gaps"].as_u64().unwrap_or(0),
                0,
                "stage {} reported offset gaps: {process}",
                stage["name"]
            );
        }
    }
    assert_eq!(pipeline_run.terminate(Duration::from_secs(120)), 0);
    let gaps = gap_lines(pipeline_run.dir());
    assert!(gaps.is_empty(), "offset gaps reported: {gaps:#?}");
}

#[test]
fn the_example_pipeline_loses_nothing_under_steady_load_three_runs_then_a_swap() {
    if !e2e_tests::cluster_available() {
        return;
    }
    for _ in 0..3 {
        soak(false);
    }
    soak(true);
}
