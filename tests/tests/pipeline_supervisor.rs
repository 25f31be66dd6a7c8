//! The pipeline supervisor on the real broker: ordered start, restarts, ordered stop, and hot
//! swaps (good, broken, and measured). Every test uses its own topics, groups and run
//! directory, so they run in parallel with each other and with other tests.

mod pipeline_support;

use pipeline_support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Topics and groups of one test.
struct Names {
    one: String,
    two: String,
    three: String,
    group_two: String,
    group_three: String,
}

impl Names {
    fn new(test: &str) -> Names {
        let base = unique(test);
        Names {
            one: format!("{base}_one"),
            two: format!("{base}_two"),
            three: format!("{base}_three"),
            group_two: format!("{base}_g2"),
            group_three: format!("{base}_g3"),
        }
    }
}

/// A pipeline file: the source with `source_config`, stage two with `replicas`, and stage
/// three if `three`.
fn pipeline_file(n: &Names, source_config: &str, replicas: u32, three: bool) -> String {
    let mut text = format!(
        r#"
[pipeline]
name = "test"
[pipeline.swap]
probation_secs = 3.0

[[stage]]
name = "one"
plugin = "{one}"
config = {source_config}
output_topic = "{t1}"

[[stage]]
name = "two"
plugin = "{two}"
replicas = {replicas}
input_topic = "{t1}"
output_topic = "{t2}"
group_id = "{g2}"
"#,
        one = plugin("stage-one").display(),
        two = plugin("stage-two").display(),
        t1 = n.one,
        t2 = n.two,
        g2 = n.group_two,
    );
    if three {
        text.push_str(&format!(
            r#"
[[stage]]
name = "three"
plugin = "{three}"
input_topic = "{t2}"
output_topic = "{t3}"
group_id = "{g3}"
"#,
            three = plugin("stage-three").display(),
            t2 = n.two,
            t3 = n.three,
            g3 = n.group_three,
        ));
    }
    text
}

/// A copy of `library` under a new name in `dir`: how a new version is deployed (a running
/// process's mapped file is never overwritten).
fn deploy_copy(library: &Path, dir: &Path, name: &str) -> std::path::PathBuf {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(library, &temp).expect("copy library");
    std::fs::rename(&temp, &target).expect("rename library");
    target
}

#[test]
fn three_stages_run_through_the_supervisor_and_stop_cleanly_on_sigterm() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_three");
    let records = 200;
    let mut run = PipelineRun::start(&pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 200 }}"),
        2,
        true,
    ));
    let status = run.wait_running(Duration::from_secs(90));
    assert_eq!(pids(&status, "two").len(), 2, "two replicas of stage two");
    let out = read_scored(&n.three, records as usize, Duration::from_secs(90));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
    assert!(out.iter().all(|r| r.ppm == 200.0));

    let status = run.wait_status("counters reported", Duration::from_secs(30), |s| {
        counter(s, "three", "records_out") >= records
    });
    let children: Vec<u32> = ["one", "two", "three"]
        .iter()
        .flat_map(|stage| pids(&status, stage))
        .collect();
    assert_eq!(
        run.terminate(Duration::from_secs(120)),
        0,
        "{}",
        run.log_text()
    );
    for pid in children {
        assert!(!alive(pid), "stage process {pid} outlived the supervisor");
    }
    // Every record was processed before the stop, and the drain committed all of it.
    assert_eq!(committed(&n.group_two, &n.one), end_offsets(&n.one));
    assert_eq!(committed(&n.group_three, &n.two), end_offsets(&n.two));
    let log = run.log_text();
    let stop_one = log
        .find("stopping stage stage=one")
        .expect("stage one stopped");
    let stop_three = log
        .find("stopping stage stage=three")
        .expect("stage three stopped");
    assert!(stop_one < stop_three, "stages stop source first");
}

#[test]
fn a_stage_config_the_plugin_refuses_stops_the_start_before_the_source_runs() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_badcfg");
    // Stage two's `ppm` is a number; the library loads, but the plugin refuses this config
    // when it is constructed.
    let text = pipeline_file(&n, "{ records = 100, rate_per_second = 100 }", 1, false).replace(
        &format!("group_id = \"{}\"\n", n.group_two),
        &format!(
            "group_id = \"{}\"\nconfig = {{ ppm = \"lots\" }}\n",
            n.group_two
        ),
    );
    let mut run = PipelineRun::start(&text);
    let code = run.wait(Duration::from_secs(120));
    let log = run.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("stage two"),
        "the refusal names the stage: {log}"
    );
    assert!(
        log.contains("could not be constructed"),
        "the refusal says why: {log}"
    );
    // The source creates its output topic when it starts: it never did.
    assert!(
        !topic_exists(&n.one),
        "the source started before the pipeline's stages were checked"
    );
}

#[test]
fn a_killed_stage_process_is_restarted_and_no_record_is_lost() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_kill");
    let records = 3000;
    let run = PipelineRun::start(&pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 500 }}"),
        1,
        false,
    ));
    run.wait_running(Duration::from_secs(90));
    let status = run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 200
    });
    let victim = pids(&status, "two")[0];
    signal(victim, libc::SIGKILL);
    let status = run.wait_status("stage two restarted", Duration::from_secs(60), |s| {
        let pids = pids(s, "two");
        pids.len() == 1 && pids[0] != victim && counter(s, "two", "restarts") == 1
    });
    assert!(!pids(&status, "two").contains(&victim));
    let out = read_scored(&n.two, records as usize, Duration::from_secs(120));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
}

#[test]
fn sigkill_of_the_supervisor_leaves_no_orphan() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_orphan");
    let mut run = PipelineRun::start(&pipeline_file(
        &n,
        "{ records = 0, rate_per_second = 50 }",
        1,
        false,
    ));
    let status = run.wait_running(Duration::from_secs(90));
    let children: Vec<u32> = ["one", "two"]
        .iter()
        .flat_map(|stage| pids(&status, stage))
        .collect();
    signal(run.pid(), libc::SIGKILL);
    run.wait(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(60);
    while children.iter().any(|&pid| alive(pid)) {
        assert!(
            Instant::now() < deadline,
            "stage processes outlived a killed supervisor"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The killed supervisor left its control socket behind: `status` says the pipeline is
    // not running, not what connecting to the socket answered.
    let status = Command::new(stage_host())
        .args(["pipeline", "status"])
        .arg(&run.file)
        .output()
        .expect("run stage-host pipeline status");
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(
            "the pipeline is not running: its supervisor is gone and left a stale control socket"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("Connection refused"), "{stderr}");
}

/// A source swap is a hand-over: the new process resumes from the old one's checkpoint
/// (checkpoints are keyed by the pipeline, stage and replica, so the pipeline has a name of its
/// own), and the output holds every record of the source once.
#[test]
fn swapping_a_source_that_resumes_sends_no_record_twice() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_swap_source");
    // 30 s of input: the source still produces when the swap is done on a loaded machine.
    let records = 9000;
    let file = pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 300, resume = true }}"),
        1,
        false,
    )
    .replacen(
        "name = \"test\"",
        &format!("name = \"{}\"", unique("swap_source")),
        1,
    );
    let run = PipelineRun::start(&file);
    run.wait_running(Duration::from_secs(90));
    let before = run.wait_status("the source producing", Duration::from_secs(60), |s| {
        counter(s, "one", "records_out") > 300
    });
    let v2 = deploy_copy(&plugin("stage-one"), run.dir(), "libstage_one-v2.so");
    let (code, answer) = run.swap("one", &v2, None);
    assert_eq!(code, 0, "swap failed: {answer}\n{}", run.log_text());
    assert_eq!(answer["ok"], true);
    let after = run.status().expect("status");
    assert_ne!(
        pids(&after, "one"),
        pids(&before, "one"),
        "a new source process"
    );
    assert_eq!(after["stages"][0]["plugin"], v2.display().to_string());

    let out = read_scored(&n.two, records as usize, Duration::from_secs(120));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
    assert_eq!(
        duplicates(&out),
        Vec::<String>::new(),
        "records the new source sent again"
    );
    assert_eq!(out.len(), records as usize, "each source record once");
}

/// A source that keeps no checkpoint (the example source without `resume`) cannot resume, so
/// a swap would send every record again: refused in one line, the old process serving on,
/// unless `--restart-source` asks for exactly that.
#[test]
fn swapping_a_source_that_cannot_resume_is_refused_unless_restart_source() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_swap_norestart");
    let run = PipelineRun::start(&pipeline_file(
        &n,
        "{ records = 0, rate_per_second = 100 }",
        1,
        false,
    ));
    let before = run.wait_running(Duration::from_secs(90));
    let v2 = deploy_copy(&plugin("stage-one"), run.dir(), "libstage_one-v2.so");
    let (code, answer) = run.swap("one", &v2, None);
    assert_ne!(code, 0, "{answer}");
    assert_eq!(answer["ok"], false, "{answer}");
    let reason = answer["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("stage one is a source that cannot resume across a swap: its running version keeps no checkpoint")
            && reason.ends_with("give --restart-source to swap anyway")
            && !reason.contains('\n'),
        "{answer}"
    );
    let status = run.status().expect("status");
    assert_eq!(
        pids(&status, "one"),
        pids(&before, "one"),
        "the old source serves on"
    );
    assert_ne!(status["stages"][0]["plugin"], v2.display().to_string());

    let (code, answer) = run.swap_with("one", &v2, None, &["--restart-source"]);
    assert_eq!(code, 0, "swap failed: {answer}\n{}", run.log_text());
    assert_eq!(answer["ok"], true);
    let status = run.status().expect("status");
    assert_eq!(status["stages"][0]["plugin"], v2.display().to_string());
}

#[test]
fn swap_under_load_hands_over_without_losing_a_record() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_swap");
    let records = 8000;
    let run = PipelineRun::start(&pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 400 }}"),
        1,
        false,
    ));
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 100
    });
    let v2 = deploy_copy(&plugin("stage-two"), run.dir(), "libstage_two-v2.so");
    let (code, answer) = run.swap("two", &v2, Some(r#"{"ppm": 150.0}"#));
    let swapped_at = now_ms();
    assert_eq!(code, 0, "swap failed: {answer}\n{}", run.log_text());
    assert_eq!(answer["ok"], true);
    let status = run.status().expect("status");
    let stage_two = &status["stages"][1];
    assert_eq!(stage_two["plugin"], v2.display().to_string());
    assert!(stage_two["processes"][0]["sha256"].as_str().unwrap().len() == 64);

    let out = read_scored(&n.two, records as usize, Duration::from_secs(120));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
    let after: Vec<_> = out.iter().filter(|r| r.timestamp_ms > swapped_at).collect();
    assert!(
        !after.is_empty(),
        "the source was still producing after the swap"
    );
    assert!(
        after.iter().all(|r| r.ppm == 150.0),
        "records processed after the swap carry the new value"
    );
    assert!(
        out.iter().any(|r| r.ppm == 100.0),
        "the old version served before"
    );
}

#[test]
fn swap_to_a_broken_library_rolls_back_and_the_old_version_keeps_serving() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_rollback");
    let records = 4000;
    let run = PipelineRun::start(&pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 400 }}"),
        1,
        false,
    ));
    run.wait_running(Duration::from_secs(90));
    let before = run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 100
    });
    let serving = pids(&before, "two");

    // Wrong plugin API version: refused by the checks, before any process runs it.
    let wrong = deploy_copy(&plugin("wrong-api"), run.dir(), "libwrong-api-v9.so");
    let (code, answer) = run.swap("two", &wrong, None);
    assert_ne!(code, 0);
    assert_eq!(answer["rolled_back"], true, "{answer}");
    assert_eq!(answer["phase"], "check");
    let reason = answer["reason"].as_str().unwrap();
    assert!(reason.contains("plugin API version"), "reason: {reason}");
    assert_eq!(pids(&run.status().unwrap(), "two"), serving);

    // Panics on its first record: started, fails, stopped; the old process takes over.
    let faulty = deploy_copy(&plugin("faulty-stage"), run.dir(), "libfaulty-v2.so");
    let (code, answer) = run.swap("two", &faulty, Some(r#"{"fail": "transform_panic"}"#));
    assert_ne!(code, 0);
    assert_eq!(answer["rolled_back"], true, "{answer}");
    let reason = answer["reason"].as_str().unwrap();
    assert!(reason.contains("panic"), "reason: {reason}");
    let status = run.status().unwrap();
    assert_eq!(
        pids(&status, "two"),
        serving,
        "the old process keeps serving"
    );
    assert_eq!(
        status["stages"][1]["plugin"],
        plugin("stage-two").display().to_string()
    );

    let out = read_scored(&n.two, records as usize, Duration::from_secs(120));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
    assert!(
        out.iter().all(|r| r.ppm == 100.0),
        "only the old version produced"
    );
}

/// Hot swap at about 5,000 records/s, as a benchmark-style check: it fails only on a lost
/// record, and prints the longest gap in the output around the swap and the duplicates
/// (`cargo test -p e2e-tests --test pipeline_supervisor swap_measurement -- --nocapture`).
/// Timings are not asserted: this machine is shared and noisy.
#[test]
fn swap_measurement() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_measure");
    let rate = 5000;
    let records: u64 = 75_000;
    // Extra stage-host flags for stage two, e.g. "-X partition.assignment.strategy=cooperative-sticky".
    let mut file = pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = {rate} }}"),
        1,
        false,
    );
    if let Ok(extra) = std::env::var("SWAP_MEASUREMENT_ARGS") {
        let args: Vec<String> = extra.split_whitespace().map(|a| format!("{a:?}")).collect();
        file.push_str(&format!("args = [{}]\n", args.join(", ")));
    }
    let run = PipelineRun::start(&file);
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 10_000
    });
    let v2 = deploy_copy(&plugin("stage-two"), run.dir(), "libstage_two-v2.so");
    let swap_started = now_ms();
    let (code, answer) = run.swap("two", &v2, Some(r#"{"ppm": 150.0}"#));
    let swap_done = now_ms();
    assert_eq!(code, 0, "swap failed: {answer}");
    let mut out = read_scored(&n.two, records as usize, Duration::from_secs(180));
    let lost = missing(&out, 0, records).len();
    let distinct: std::collections::HashSet<&str> = out.iter().map(|r| r.postid.as_str()).collect();
    let duplicates = out.len() - distinct.len();
    out.sort_by_key(|r| r.timestamp_ms);
    let window: Vec<i64> = out
        .iter()
        .map(|r| r.timestamp_ms)
        .filter(|&t| t >= swap_started - 1000 && t <= swap_done + 1000)
        .collect();
    let longest_gap = window.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let overall_gap = out
        .windows(2)
        .map(|w| w[1].timestamp_ms - w[0].timestamp_ms)
        .max()
        .unwrap_or(0);
    println!(
        "swap_measurement: rate {rate}/s, {records} records, swap took {} ms; longest output gap during the swap {longest_gap} ms (whole run {overall_gap} ms); lost {lost}; duplicates {duplicates}",
        swap_done - swap_started
    );
    assert_eq!(lost, 0);
    // The old version commits every partition it hands over: the new one processes none of
    // its records again.
    assert_eq!(duplicates, 0, "records processed by both versions");
}

/// `pipeline reload` with only a stage's replica count changed scales it: added replicas join
/// the group, removed ones drain and leave, the others keep running (no swap), and no record
/// is lost.
#[test]
fn reload_scales_a_stage_up_and_down_without_a_swap() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_scale");
    let records: u64 = 15_000;
    let file = pipeline_file(
        &n,
        &format!("{{ records = {records}, rate_per_second = 1000 }}"),
        1,
        false,
    );
    let run = PipelineRun::start(&file);
    run.wait_running(Duration::from_secs(90));
    let first = pids(&run.status().expect("status"), "two");
    assert_eq!(first.len(), 1);
    let reload = |replicas: u32| {
        std::fs::write(
            &run.file,
            file.replace("replicas = 1", &format!("replicas = {replicas}")),
        )
        .expect("rewrite the pipeline file");
        let out = Command::new(stage_host())
            .args(["pipeline", "reload"])
            .arg(&run.file)
            .output()
            .expect("reload runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    reload(3);
    let up = run.wait_status("three replicas ready", Duration::from_secs(60), |s| {
        pids(s, "two").len() == 3
    });
    assert!(
        pids(&up, "two").contains(&first[0]),
        "the first replica kept running: scaled, not swapped"
    );
    reload(1);
    let down = run.wait_status("one replica left", Duration::from_secs(60), |s| {
        pids(s, "two").len() == 1
    });
    assert_eq!(pids(&down, "two"), first, "the first replica stays");
    let out = read_scored(&n.two, records as usize, Duration::from_secs(120));
    assert_eq!(
        missing(&out, 0, records),
        Vec::<String>::new(),
        "records lost"
    );
    // Partitions move twice; each time their last owner commits what it finished first.
    assert_eq!(
        duplicates(&out),
        Vec::<String>::new(),
        "records processed twice while scaling"
    );
}

/// The post ids that occur more than once in `out`.
fn duplicates(out: &[Scored]) -> Vec<String> {
    let mut counts = std::collections::BTreeMap::new();
    for record in out {
        *counts.entry(record.postid.as_str()).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect()
}

/// A swap runs the new version beside the old one, replica for replica. Under
/// `--exactly-once` the two must not share transactional ids (the new would fence the old it
/// runs beside, and each restart would fence the other in turn, until the swap rolled back).
/// Swapped twice, so both id sets serve once; an independent `read_committed` reader then sees
/// every input's output exactly once.
#[test]
fn an_exactly_once_stage_swaps_twice_under_load_and_every_record_arrives_once() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("pipe_swap_eos");
    let records: u32 = 9000;
    let file = format!(
        r#"
[pipeline]
name = "eos_swap"
[pipeline.swap]
probation_secs = 3.0

[[stage]]
name = "one"
plugin = "{one}"
config = {{ records = {records}, rate_per_second = 500 }}
output_topic = "{t1}"
args = ["--exactly-once"]

[[stage]]
name = "two"
plugin = "{two}"
replicas = 2
input_topic = "{t1}"
output_topic = "{t2}"
group_id = "{g2}"
args = ["--exactly-once"]
"#,
        one = plugin("stage-one").display(),
        two = plugin("stage-two").display(),
        t1 = n.one,
        t2 = n.two,
        g2 = n.group_two,
    );
    let run = PipelineRun::start(&file);
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 500
    });
    for version in ["v2", "v3"] {
        let next = deploy_copy(
            &plugin("stage-two"),
            run.dir(),
            &format!("libstage_two-{version}.so"),
        );
        let (code, answer) = run.swap("two", &next, None);
        assert_eq!(
            (code, &answer["ok"]),
            (0, &serde_json::Value::Bool(true)),
            "swap to {version}: {answer}\n{}",
            run.log_text()
        );
    }
    read_scored(&n.two, records as usize, Duration::from_secs(180));
    let counts = e2e_tests::post_counts(&e2e_tests::consume_avro(&n.two, 0, 120));
    let missing = (0..records).filter(|n| !counts.contains_key(n)).count();
    let duplicated = counts.values().filter(|c| **c > 1).count();
    assert_eq!(
        (missing, duplicated),
        (0, 0),
        "lost and duplicated posts\n{}",
        run.log_text()
    );
}
