//! Support for the pipeline supervisor tests: run `stage-host pipeline ...` on a pipeline file
//! written for the test, and read what reached a topic with an independent client (rdkafka,
//! without a consumer group, so reading never disturbs the pipeline's groups).

#![allow(dead_code)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bootstrap servers of the local cluster.
pub const BROKER: &str = "127.0.0.1:9092";

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Where `cargo build --workspace` put the binaries and plugins.
pub fn build_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = if target.is_relative() {
        repo_root().join(target)
    } else {
        target
    };
    target.join("debug")
}

/// The built `stage-host` binary.
pub fn stage_host() -> PathBuf {
    let path = build_dir().join("stage-host");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

/// The built plugin of crate `name` (`lib<name>.so`, dashes as underscores).
pub fn plugin(name: &str) -> PathBuf {
    let path = build_dir().join(format!("lib{}.so", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

/// Whether the local cluster answers; panics when it must (`STAGE_HOST_REQUIRE_CLUSTER`).
pub fn cluster_available() -> bool {
    let up = ["127.0.0.1:9092", "127.0.0.1:8081"].iter().all(|addr| {
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok()
    });
    if !up && std::env::var_os("STAGE_HOST_REQUIRE_CLUSTER").is_some() {
        panic!("the local cluster is required but not reachable: kafka_cluster/local-cluster up");
    }
    if !up {
        eprintln!("skipping: local cluster not running (kafka_cluster/local-cluster up)");
    }
    up
}

/// A name no other test or run uses.
pub fn unique(base: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{base}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A `stage-host pipeline run` in the background, on a file in its own temporary directory.
pub struct PipelineRun {
    child: Option<Child>,
    /// The pipeline file.
    pub file: PathBuf,
    /// The supervisor's stderr.
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl PipelineRun {
    /// Writes `toml` as the pipeline file and starts the supervisor on it.
    pub fn start(toml: &str) -> PipelineRun {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pipeline.toml");
        std::fs::write(&file, toml).expect("write pipeline file");
        let log = dir.path().join("supervisor.log");
        let child = Command::new(stage_host())
            .args(["pipeline", "run"])
            .arg(&file)
            .env("STAGE_HOST_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start stage-host pipeline run");
        PipelineRun {
            child: Some(child),
            file,
            log,
            dir,
        }
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A directory for the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `pipeline status --json`, or `None` while the supervisor does not answer yet.
    pub fn status(&self) -> Option<Value> {
        let output = Command::new(stage_host())
            .args(["pipeline", "status", "--json"])
            .arg(&self.file)
            .output()
            .expect("run stage-host pipeline status");
        let status: Value = output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("status JSON"))?;
        assert_fates_add_up(&status);
        Some(status)
    }

    /// Polls status until `cond` holds; panics with the supervisor's log after `timeout`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status() {
                if cond(&status) {
                    return status;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status: {:?}\nsupervisor log:\n{}",
                    self.status(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every stage has all its replicas ready (a finished source counts).
    pub fn wait_running(&self, timeout: Duration) -> Value {
        self.wait_status("every stage ready", timeout, |s| {
            s["stages"].as_array().unwrap().iter().all(|stage| {
                let procs = stage["processes"].as_array().unwrap();
                procs.len() as u64 >= stage["replicas"].as_u64().unwrap()
                    && procs
                        .iter()
                        .all(|p| p["state"] == "ready" || p["state"] == "finished")
            })
        })
    }

    /// `pipeline swap`: its exit code and printed JSON.
    pub fn swap(&self, stage: &str, plugin: &Path, config: Option<&str>) -> (i32, Value) {
        self.swap_with(stage, plugin, config, &[])
    }

    /// `pipeline swap` with further flags (`--restart-source`): its exit code and printed JSON.
    pub fn swap_with(
        &self,
        stage: &str,
        plugin: &Path,
        config: Option<&str>,
        flags: &[&str],
    ) -> (i32, Value) {
        let mut command = Command::new(stage_host());
        command
            .args(["pipeline", "swap", stage])
            .arg(plugin)
            .arg("--file")
            .arg(&self.file)
            .args(flags);
        if let Some(config) = config {
            command.args(["--config-json", config]);
        }
        let output = command.output().expect("run stage-host pipeline swap");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "swap printed no JSON: {stdout}\n{}\nsupervisor log:\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.log_text()
            )
        });
        (output.status.code().unwrap_or(-1), answer)
    }

    /// Sends SIGTERM to the supervisor and waits for its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> i32 {
        signal(self.pid(), libc::SIGTERM);
        self.wait(timeout)
    }

    /// Waits for the supervisor to exit; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the supervisor did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The supervisor's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PipelineRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of the processes of stage `stage` in a status snapshot.
pub fn pids(status: &Value, stage: &str) -> Vec<u32> {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == stage)
        .flat_map(|s| s["processes"].as_array().unwrap().iter())
        .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
        .collect()
}

/// Every process's counters in `status` account for each record it took in: `records_in =
/// processed + skipped + dead_lettered + in_flight` (a source's are all 0).
pub fn assert_fates_add_up(status: &Value) {
    for stage in status["stages"].as_array().unwrap() {
        for p in stage["processes"].as_array().unwrap() {
            let n = |field: &str| p[field].as_u64().unwrap_or(0);
            assert_eq!(
                n("records_in"),
                n("processed") + n("skipped") + n("dead_lettered") + n("in_flight"),
                "the counters of stage {} replica {} do not add up: {p}",
                stage["name"],
                p["replica"]
            );
        }
    }
}

/// The sum of `field` over the processes of `stage`.
pub fn counter(status: &Value, stage: &str, field: &str) -> u64 {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == stage)
        .flat_map(|s| s["processes"].as_array().unwrap().iter())
        .filter_map(|p| p[field].as_u64())
        .sum()
}

/// One record of a `{postid, ppm}` topic (stages two and three write these).
#[derive(Debug, Clone)]
pub struct Scored {
    /// The post id.
    pub postid: String,
    /// The score.
    pub ppm: f32,
    /// The producer's timestamp.
    pub timestamp_ms: i64,
}

/// Decodes a Confluent-framed `{postid: ["string"], ppm: ["float"]}` Avro value.
pub fn decode_scored(value: &[u8]) -> Option<(String, f32)> {
    if value.len() < 5 || value[0] != 0 {
        return None;
    }
    let mut data = &value[5..];
    let varint = |data: &mut &[u8]| -> Option<i64> {
        let mut result: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = data.split_first()?;
            *data = rest;
            result |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        None
    };
    varint(&mut data)?; // union branch
    let len = varint(&mut data)? as usize;
    let postid = String::from_utf8(data.get(..len)?.to_vec()).ok()?;
    data = &data[len..];
    varint(&mut data)?; // union branch
    let ppm = f32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    Some((postid, ppm))
}

fn reader() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", unique("pipeline_test_reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// Whether `topic` exists now, by the broker's metadata (no waiting for it to appear).
pub fn topic_exists(topic: &str) -> bool {
    let metadata = reader()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && !t.partitions().is_empty() {
                    return t.partitions().iter().map(|p| p.id()).collect();
                }
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads `topic` from the beginning until `distinct` different post ids arrived (or
/// `timeout`), and then on to the end of every partition as it is at that moment, so that
/// duplicates written after the last new id are read too; returns every record read,
/// duplicates included.
pub fn read_scored(topic: &str, distinct: usize, timeout: Duration) -> Vec<Scored> {
    let consumer = reader();
    let mut tpl = TopicPartitionList::new();
    let all = partitions(&consumer, topic);
    for &partition in &all {
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + timeout;
    // Per partition, the offset after the last record read.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut ends: Option<BTreeMap<i32, i64>> = None;
    while Instant::now() < deadline {
        if seen.len() >= distinct {
            let ends = ends.get_or_insert_with(|| {
                all.iter()
                    .map(|&p| {
                        let (_, high) = consumer
                            .fetch_watermarks(topic, p, Duration::from_secs(10))
                            .expect("watermarks");
                        (p, high)
                    })
                    .collect()
            });
            if ends
                .iter()
                .all(|(p, high)| next.get(p).copied().unwrap_or(0) >= *high)
            {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                next.insert(message.partition(), message.offset() + 1);
                let (postid, ppm) =
                    decode_scored(message.payload().unwrap_or_default()).expect("a scored record");
                seen.insert(postid.clone());
                records.push(Scored {
                    postid,
                    ppm,
                    timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
                });
            }
            Some(Err(e)) => eprintln!("reader: {e}"),
            None => {}
        }
    }
    records
}

/// The committed offsets of `group` on `topic`, per partition (absent = none committed).
pub fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for partition in partitions(&consumer, topic) {
        tpl.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The offset after the last record of every partition of `topic`, found by reading it to
/// the end (until nothing arrives for two seconds). Reading rather than asking for the high
/// watermark, which counts transaction markers too: this is the offset after the last record.
pub fn end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    let consumer = reader();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in partitions(&consumer, topic) {
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            ends.insert(message.partition(), message.offset() + 1);
            quiet_since = Instant::now();
        }
    }
    ends
}

/// The ids `postid_<first>..postid_<first+count>` missing from `records`.
pub fn missing(records: &[Scored], first: u64, count: u64) -> Vec<String> {
    let seen: std::collections::HashSet<&str> = records.iter().map(|r| r.postid.as_str()).collect();
    (first..first + count)
        .map(|i| format!("postid_{i}"))
        .filter(|id| !seen.contains(id.as_str()))
        .collect()
}
