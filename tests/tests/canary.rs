//! `pipeline canary` on a running pipeline: a copy of stage two (same code) passes with every
//! compared input identical; a version that computes a wrong `ppm` for one post in ten fails
//! with the differences shown; the live pipeline meanwhile loses and duplicates nothing; and
//! `--promote` ends a passing canary in a swap, after which a canary's live side is the
//! swapped-in library.

mod pipeline_support;

use pipeline_support::{counter, plugin, unique, PipelineRun};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// A pipeline: stage one emitting `records` at `rate`, stage two with two replicas, exactly
/// once (at-least-once would duplicate the records in flight when the second replica joins and
/// takes half the partitions, canary or not, so "undisturbed" could not be checked exactly).
fn pipeline(base: &str, records: u64, rate: u64) -> String {
    format!(
        r#"
[pipeline]
name = "canary"
[pipeline.swap]
probation_secs = 2.0

[[stage]]
name = "one"
plugin = "{one}"
config = {{ records = {records}, rate_per_second = {rate} }}
output_topic = "{base}_one"

[[stage]]
name = "two"
plugin = "{two}"
replicas = 2
input_topic = "{base}_one"
output_topic = "{base}_two"
group_id = "{base}_g2"
args = ["--exactly-once"]
"#,
        one = plugin("stage-one").display(),
        two = plugin("stage-two").display(),
    )
}

/// A copy of `plugin` under a new name in `dir` (a new version is a new file).
fn deploy(plugin: &Path, dir: &Path, name: &str) -> String {
    let to = dir.join(name);
    std::fs::copy(plugin, &to).expect("copy the plugin");
    to.display().to_string()
}

fn canary(run: &PipelineRun, args: &[&str]) -> Output {
    Command::new(pipeline_support::stage_host())
        .args(["pipeline", "canary", "-f"])
        .arg(&run.file)
        .args(args)
        .output()
        .expect("stage-host runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every post of `topic`, counted by confluent-kafka.
fn post_counts(topic: &str, expected: usize) -> BTreeMap<u32, usize> {
    e2e_tests::wait_for(
        &format!("{expected} posts in {topic}"),
        Duration::from_secs(180),
        || {
            let counts = e2e_tests::post_counts(&e2e_tests::consume_avro(topic, 0, 120));
            if counts.len() >= expected {
                Ok(counts)
            } else {
                Err(counts.len())
            }
        },
    )
}

#[test]
fn a_canary_passes_for_the_same_code_and_fails_with_the_differences_for_a_wrong_one() {
    if !e2e_tests::cluster_available() {
        return;
    }
    let base = unique("canary");
    // Enough for the source to keep producing through both canaries (75 s at 800/s): a canary
    // starts at the live group's committed offsets, so after the source's end it would have
    // no input to compare.
    let records = 60_000;
    let run = PipelineRun::start(&pipeline(&base, records, 800));
    run.wait_running(Duration::from_secs(120));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 500
    });

    let same = deploy(&plugin("stage-two"), run.dir(), "libstage_two-same.so");
    let passed = canary(&run, &["two", &same, "--records", "1500", "--secs", "60"]);
    let report = text(&passed);
    eprintln!("{report}");
    assert_eq!(passed.status.code(), Some(0), "{report}");
    assert!(
        report.contains(" 0 different, 0 only live, 0 only new"),
        "{report}"
    );
    assert!(report.contains("PASS"), "{report}");

    let wrong = deploy(&plugin("faulty-stage"), run.dir(), "libstage_two-wrong.so");
    let failed = canary(
        &run,
        &[
            "two",
            &wrong,
            "--config-json",
            r#"{"off_every": 10}"#,
            "--records",
            "1500",
            "--secs",
            "60",
        ],
    );
    let report = text(&failed);
    eprintln!("{report}");
    assert_eq!(failed.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL"), "{report}");
    assert!(
        report.contains("\"ppm\":100.0") && report.contains("\"ppm\":101.0"),
        "the differences side by side: {report}"
    );

    // The live pipeline went on undisturbed: every post once.
    let counts = post_counts(&format!("{base}_two"), records as usize);
    let missing = (0..records as u32)
        .filter(|n| !counts.contains_key(n))
        .count();
    let duplicated = counts.values().filter(|c| **c > 1).count();
    if (missing, duplicated) != (0, 0) {
        let input = e2e_tests::post_counts(&e2e_tests::consume_avro(&format!("{base}_one"), 0, 60));
        let input_duplicated = input.values().filter(|c| **c > 1).count();
        let logs = run.dir().join(".run/canary/logs");
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(" INFO ") || l.contains("assign") || l.contains("revok"))
                .collect();
            eprintln!("{}:\n{}", entry.path().display(), notable.join("\n"));
        }
        panic!(
            "the live pipeline lost {missing} and duplicated {duplicated} posts \
             (stage one's output: {} posts, {input_duplicated} duplicated)\nsupervisor log:\n{}",
            input.len(),
            run.log_text(),
        );
    }
    // The shadow topics were removed.
    let topics = Command::new(pipeline_support::stage_host())
        .args(["topic", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&topics.stdout).contains(&format!("{base}_two.canary")),
        "shadow topic left behind"
    );
}

#[test]
fn a_passing_canary_with_promote_ends_in_a_swap() {
    if !e2e_tests::cluster_available() {
        return;
    }
    let base = unique("canary_promote");
    let records = 20_000;
    let run = PipelineRun::start(&pipeline(&base, records, 800));
    run.wait_running(Duration::from_secs(120));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 500
    });
    let next = deploy(&plugin("stage-two"), run.dir(), "libstage_two-next.so");
    let promoted = canary(
        &run,
        &[
            "two",
            &next,
            "--records",
            "1000",
            "--secs",
            "60",
            "--promote",
        ],
    );
    let report = text(&promoted);
    eprintln!("{report}");
    assert_eq!(promoted.status.code(), Some(0), "{report}");
    assert!(report.contains("PASS"), "{report}");
    assert!(
        report.contains(r#""changed":true"#),
        "the swap's answer: {report}"
    );
    let status = run.status().expect("status");
    let stage = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "two")
        .unwrap();
    assert_eq!(stage["plugin"].as_str(), Some(next.as_str()));
    // A later canary compares against what serves now, the swapped-in library, not the
    // file's. `--secs` alone bounds it by time; whether it passes depends on the input left.
    let again = deploy(&plugin("stage-two"), run.dir(), "libstage_two-again.so");
    let report = text(&canary(&run, &["two", &again, "--secs", "2"]));
    eprintln!("{report}");
    assert!(
        report.contains(&format!(
            "canary of stage two: {again} (new) against {next} (live)"
        )),
        "{report}"
    );
    let counts = post_counts(&format!("{base}_two"), records as usize);
    assert_eq!(
        counts.len(),
        records as usize,
        "nothing lost across the swap"
    );
}

#[test]
fn a_source_stage_is_refused_in_one_line() {
    if !e2e_tests::cluster_available() {
        return;
    }
    let base = unique("canary_source");
    let run = PipelineRun::start(&pipeline(&base, 0, 50));
    run.wait_running(Duration::from_secs(120));
    let copy = deploy(&plugin("stage-one"), run.dir(), "libstage_one-next.so");
    let refused = canary(&run, &["one", &copy]);
    let report = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{report}");
    assert!(report.contains("is a source"), "{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{report}");
}
