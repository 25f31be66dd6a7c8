//! A stage process's metrics and health endpoints (`--metrics-addr`) and the pipeline's live
//! view (`pipeline status --watch`), on the real local cluster. The exposition is read with a
//! small parser here and, independently, with the Prometheus project's Python parser.

mod pipeline_support;

use e2e_tests::*;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `/metrics` of the process at `addr`, parsed; `Err` with why while it does not answer.
fn scrape(addr: &str) -> Result<Vec<Sample>, String> {
    let response = http_get(addr, "/metrics").ok_or("no answer")?;
    if response.status != 200 {
        return Err(format!("status {}", response.status));
    }
    assert!(
        response
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "Prometheus text format expected, got {}",
        response.content_type
    );
    Ok(parse_prometheus(&response.body))
}

fn value_of(samples: &[Sample], name: &str) -> f64 {
    sample_value(samples, name, &[])
}

/// Runs stage two with a metrics endpoint on a free port over `records` records in a
/// two-partition topic; returns the process and its metrics address.
fn stage_with_metrics(plugin_name: &str, records: u32, extra: &[&str]) -> (StageProcess, String) {
    let input = unique("obs_in");
    let output = unique("obs_out");
    let group = unique("obs_g");
    create_topic(&input, 2);
    produce_posts(&input, 0, records);
    let addr = format!("127.0.0.1:{}", free_port());
    let plugin = plugin(plugin_name);
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&["--metrics-addr", &addr, "-X", "session.timeout.ms=6000"]);
    args.extend_from_slice(extra);
    (StageProcess::start(&args), addr)
}

#[test]
fn metrics_count_every_record_and_lag_falls_to_zero() {
    if !cluster_available() {
        return;
    }
    let records = 50;
    let (stage, addr) = stage_with_metrics("stage-two", records, &[]);

    let live = wait_for("/health/live", Duration::from_secs(30), || {
        http_get(&addr, "/health/live").ok_or("no answer")
    });
    assert_eq!(live.status, 200, "{}", live.body);
    let ready = wait_for(
        "ready after assignment",
        Duration::from_secs(90),
        || match http_get(&addr, "/health/ready") {
            Some(r) if r.status == 200 => Ok(r),
            other => Err(other.map(|r| (r.status, r.body))),
        },
    );
    let body: serde_json::Value = serde_json::from_str(&ready.body).expect("JSON body");
    assert_eq!(body["state"], "ready");

    let metrics = wait_for("every record counted", Duration::from_secs(90), || {
        let m = scrape(&addr)?;
        let (inn, out) = (
            value_of(&m, "stage_host_records_in_total"),
            value_of(&m, "stage_host_records_out_total"),
        );
        if inn == f64::from(records) && out == f64::from(records) {
            Ok(m)
        } else {
            Err(format!("in {inn}, out {out}"))
        }
    });
    for kind in ["decode", "transform", "panic", "encode"] {
        assert_eq!(
            sample_value(&metrics, "stage_host_errors_total", &[("kind", kind)]),
            0.0
        );
    }
    assert_eq!(value_of(&metrics, "stage_host_records_skipped_total"), 0.0);
    assert!(value_of(&metrics, "stage_host_rebalances_total") >= 1.0);
    assert_eq!(value_of(&metrics, "stage_host_assigned_partitions"), 2.0);
    assert!(value_of(&metrics, "stage_host_batch_latency_seconds_count") >= 1.0);
    let info = samples(&metrics, "stage_host_plugin_info", &[]);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(info[0].labels["stage"], "stage-two");
    assert_eq!(info[0].labels["kind"], "stage");
    assert_eq!(info[0].labels["plugin_version"], "0.1.0");
    assert_eq!(info[0].labels["api_version"], "1");

    // Lag comes from librdkafka's statistics once offsets are committed.
    let lags = wait_for(
        "lag of 0 on the partitions",
        Duration::from_secs(60),
        || {
            let m = scrape(&addr)?;
            let lags: Vec<Sample> = samples(&m, "stage_host_consumer_lag", &[])
                .into_iter()
                .cloned()
                .collect();
            if !lags.is_empty() && lags.iter().all(|s| s.value == 0.0) {
                Ok(lags)
            } else {
                Err(format!("{lags:?}"))
            }
        },
    );
    assert!(lags
        .iter()
        .all(|s| s.labels.contains_key("topic")
            && ["0", "1"].contains(&s.labels["partition"].as_str())));

    // The same exposition, read by the Prometheus project's own parser.
    let text = http_get(&addr, "/metrics").expect("answers").body;
    let python = parse_prometheus_with_python(&text);
    assert_eq!(
        sample_value(&python, "stage_host_records_in_total", &[]),
        f64::from(records)
    );
    assert_eq!(
        sample_value(&python, "stage_host_plugin_info", &[("stage", "stage-two")]),
        1.0
    );
    assert_eq!(python.len(), parse_prometheus(&text).len(), "same samples");

    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

/// `records_in = processed + skipped + dead_lettered + in_flight`, and the errors by kind
/// equal the failed records settled: what one scrape shows of a record's fate.
fn fates_add_up(m: &[Sample]) -> Result<(), String> {
    let v = |name: &str| value_of(m, name);
    let (inn, processed, skipped, dead, in_flight) = (
        v("stage_host_records_in_total"),
        v("stage_host_records_processed_total"),
        v("stage_host_records_skipped_total"),
        v("stage_host_records_dead_lettered_total"),
        v("stage_host_records_in_flight"),
    );
    let errors: f64 = samples(m, "stage_host_errors_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    if inn != processed + skipped + dead + in_flight {
        return Err(format!(
            "in {inn} != processed {processed} + skipped {skipped} + dead-lettered {dead} + in flight {in_flight}"
        ));
    }
    if errors != skipped + dead {
        return Err(format!(
            "errors {errors} != skipped {skipped} + dead-lettered {dead}"
        ));
    }
    Ok(())
}

#[test]
fn the_counters_of_a_records_fate_add_up_on_every_scrape_under_load() {
    if !cluster_available() {
        return;
    }
    let records = 30_000;
    let (stage, addr) = stage_with_metrics(
        "faulty-stage",
        records,
        &[
            "--config-json",
            r#"{"fail": "transform_error", "every": 7}"#,
            "--on-error",
            "skip",
            "--batch-size",
            "100",
        ],
    );
    let started = Instant::now();
    let mut scrapes = 0;
    let mut mid_batch = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not every record settled after {scrapes} scrapes"
        );
        let Ok(m) = scrape(&addr) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        scrapes += 1;
        if let Err(e) = fates_add_up(&m) {
            panic!("scrape {scrapes}: {e}");
        }
        if value_of(&m, "stage_host_records_in_flight") > 0.0 {
            mid_batch += 1;
        }
        if value_of(&m, "stage_host_records_processed_total")
            + value_of(&m, "stage_host_records_skipped_total")
            == f64::from(records)
        {
            break;
        }
    }
    eprintln!("{scrapes} scrapes, {mid_batch} of them with a batch in flight: every one adds up");
    assert!(scrapes >= 20, "only {scrapes} scrapes");
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

#[test]
fn metrics_count_errors_by_kind_under_skip() {
    if !cluster_available() {
        return;
    }
    let records = 20;
    let (stage, addr) = stage_with_metrics(
        "faulty-stage",
        records,
        &[
            "--config-json",
            r#"{"fail": "transform_error", "every": 5}"#,
            "--on-error",
            "skip",
        ],
    );
    let metrics = wait_for("every record settled", Duration::from_secs(90), || {
        let m = scrape(&addr)?;
        let inn = value_of(&m, "stage_host_records_in_total");
        let in_flight = value_of(&m, "stage_host_records_in_flight");
        if inn == f64::from(records) && in_flight == 0.0 {
            Ok(m)
        } else {
            Err(format!("in {inn}, in flight {in_flight}"))
        }
    });
    let failed = f64::from(records / 5);
    assert_eq!(
        sample_value(
            &metrics,
            "stage_host_errors_total",
            &[("kind", "transform")]
        ),
        failed
    );
    for kind in ["decode", "panic", "encode"] {
        assert_eq!(
            sample_value(&metrics, "stage_host_errors_total", &[("kind", kind)]),
            0.0
        );
    }
    assert_eq!(
        value_of(&metrics, "stage_host_records_skipped_total"),
        failed
    );
    assert_eq!(
        value_of(&metrics, "stage_host_records_dead_lettered_total"),
        0.0
    );
    assert_eq!(
        value_of(&metrics, "stage_host_records_out_total"),
        f64::from(records) - failed
    );
    let python = parse_prometheus_with_python(&http_get(&addr, "/metrics").unwrap().body);
    assert_eq!(
        sample_value(&python, "stage_host_errors_total", &[("kind", "transform")]),
        failed
    );
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

#[test]
fn a_metrics_address_in_use_is_a_configuration_error() {
    // Bound before the plugin is loaded or the cluster is reached, so no cluster is needed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--metrics-addr",
            &addr,
        ],
        Duration::from_secs(30),
    );
    done.assert_failed_with(2, &["--metrics-addr", &addr, "in use"]);

    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--metrics-addr",
            "no-port-here",
        ],
        Duration::from_secs(30),
    );
    done.assert_failed_with(2, &["--metrics-addr no-port-here", "not an address"]);
}

/// `count` ports from `base` that are free now.
fn free_block(count: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    (0..200)
        .map(|i| 20_000 + ((seed + i * 7919) % 30_000) as u16)
        .find(|&base| {
            (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .expect("a free block of ports")
}

#[test]
fn the_watch_view_shows_throughput_and_lag_per_stage() {
    if !cluster_available() {
        return;
    }
    use pipeline_support::{counter, PipelineRun};
    let base = unique("obs_watch");
    let (t1, t2, g2) = (
        format!("{base}_one"),
        format!("{base}_two"),
        format!("{base}_g2"),
    );
    // Two stages' metrics blocks of 32 ports each.
    let port = free_block(64);
    let run = PipelineRun::start(&format!(
        r#"
[pipeline]
name = "watched"
metrics_port = {port}

[[stage]]
name = "one"
plugin = "{one}"
config = {{ records = 0, rate_per_second = 100 }}
output_topic = "{t1}"

[[stage]]
name = "two"
plugin = "{two}"
input_topic = "{t1}"
output_topic = "{t2}"
group_id = "{g2}"
args = ["-X", "session.timeout.ms=6000"]
"#,
        one = plugin("stage-one").display(),
        two = plugin("stage-two").display(),
    ));
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two reports lag", Duration::from_secs(60), |s| {
        counter(s, "two", "records_in") > 0 && s["stages"][1]["processes"][0]["lag"].is_u64()
    });

    // Each replica serves metrics on its port of the pipeline's scheme.
    let source = scrape(&format!("127.0.0.1:{port}")).expect("stage one serves metrics");
    assert_eq!(
        sample_value(&source, "stage_host_plugin_info", &[("kind", "source")]),
        1.0
    );
    assert!(value_of(&source, "stage_host_records_out_total") > 0.0);
    let two = scrape(&format!("127.0.0.1:{}", port + 32)).expect("stage two serves metrics");
    assert_eq!(
        sample_value(&two, "stage_host_plugin_info", &[("stage", "stage-two")]),
        1.0
    );

    let mut watch = Command::new(stage_host())
        .args(["pipeline", "status", "--watch", "--interval-ms", "500"])
        .arg(&run.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the watch view");
    let mut stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    // A few frames, however slow the machine: the header of each frame names its columns.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    signal(watch.id(), "INT");
    let status = watch.wait().expect("the view exits");
    let text = reader.join().unwrap();
    eprintln!("{text}");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends the view cleanly");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !text.contains('\x1b'),
        "no ANSI codes when not on a terminal"
    );
    let frames: Vec<&str> = text.split("pipeline watched").skip(1).collect();
    assert!(frames.len() >= 2, "a frame per interval expected:\n{text}");
    let last = frames.last().unwrap();
    assert!(
        last.contains("IN/S") && last.contains("OUT/S") && last.contains("LAG"),
        "{text}"
    );
    let row = |stage: &str| -> Vec<String> {
        last.lines()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("no row for {stage}:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // STAGE STATE PROCS IN OUT IN/S OUT/S LAG PROGRESS
    let two = row("two");
    assert_eq!(two[1], "ready", "{text}");
    assert!(two[3].parse::<u64>().unwrap() > 0, "records in: {text}");
    assert!(two[5].parse::<f64>().is_ok(), "throughput: {text}");
    assert!(two[7].parse::<u64>().is_ok(), "lag: {text}");
    let one = row("one");
    assert_eq!(
        (one[3].as_str(), one[7].as_str()),
        ("-", "-"),
        "a source has no input"
    );
    assert!(one[6].parse::<f64>().is_ok(), "source throughput: {text}");
}
