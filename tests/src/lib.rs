//! Support for the end-to-end tests: where the built binaries and plugins are, how to run
//! `stage-host`, and the independent client (Python confluent-kafka, `tools/kafka_tool.py`)
//! that produces input and reads output.
//!
//! The tests need the local cluster (`kafka_cluster/local-cluster up`) and a built workspace
//! (`cargo build --workspace`); `scripts/test` does both. Without a broker they skip, unless
//! `STAGE_HOST_REQUIRE_CLUSTER` is set (CI), when they fail.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod private_cluster;
pub mod private_kafka;
pub mod private_registry;
pub mod python_stage;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The directory cargo builds the workspace's debug artifacts into.
pub fn build_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug")
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

/// The `stage-host` binary.
pub fn stage_host() -> PathBuf {
    built(build_dir().join("stage-host"))
}

/// A plugin library of the workspace, by crate name (`stage-two` → `libstage_two.so`).
pub fn plugin(crate_name: &str) -> PathBuf {
    built(build_dir().join(format!("lib{}.so", crate_name.replace('-', "_"))))
}

/// A schema file of `schemas/`.
pub fn schema(file: &str) -> PathBuf {
    repo_root().join("schemas").join(file)
}

/// Whether the local cluster answers. Without it a test returns early (skips), unless
/// `STAGE_HOST_REQUIRE_CLUSTER` is set, when it fails.
pub fn cluster_available() -> bool {
    let up = TcpStream::connect_timeout(&"127.0.0.1:9092".parse().unwrap(), Duration::from_secs(2))
        .is_ok()
        && TcpStream::connect_timeout(&"127.0.0.1:8081".parse().unwrap(), Duration::from_secs(2))
            .is_ok();
    if !up {
        let required =
            std::env::var("STAGE_HOST_REQUIRE_CLUSTER").is_ok_and(|v| v != "0" && !v.is_empty());
        assert!(
            !required,
            "the local cluster is not running (kafka_cluster/local-cluster up)"
        );
        eprintln!("skipping: the local cluster is not running (kafka_cluster/local-cluster up)");
    }
    up
}

/// A name no other test run uses: `<base>_<pid>_<n>_<nanos>`.
pub fn unique(base: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{base}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Python of the project's venv (`scripts/python-env`).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("STAGE_HOST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/stage-host/venv")
        });
    built(venv.join("bin/python"))
}

/// Runs the independent client with `args`; panics with its stderr if it fails.
pub fn kafka_tool(args: &[&str]) -> String {
    kafka_tool_with_registry("http://127.0.0.1:8081", args)
}

/// Runs the independent client against the Schema Registry at `registry_url`.
pub fn kafka_tool_with_registry(registry_url: &str, args: &[&str]) -> String {
    kafka_tool_with(&[("SCHEMA_REGISTRY_URL", registry_url)], args)
}

/// Runs the independent client with extra environment (`BOOTSTRAP_SERVERS`,
/// `SCHEMA_REGISTRY_URL`).
pub fn kafka_tool_with(env: &[(&str, &str)], args: &[&str]) -> String {
    try_kafka_tool_with(env, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`kafka_tool_with`], answering `Err` with the client's stderr when it fails (while a
/// broker is down, say).
pub fn try_kafka_tool_with(env: &[(&str, &str)], args: &[&str]) -> Result<String, String> {
    let output = Command::new(python())
        .arg(repo_root().join("tests/tools/kafka_tool.py"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("python runs");
    if !output.status.success() {
        return Err(format!(
            "kafka_tool {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8(output.stdout).expect("utf-8 output"))
}

/// Creates a topic with the independent client.
pub fn create_topic(topic: &str, partitions: u32) {
    kafka_tool(&[
        "create-topic",
        "--topic",
        topic,
        "--partitions",
        &partitions.to_string(),
    ]);
}

/// Produces `count` stage-one records `{postid: "<prefix><i>", title}` keyed by postid, with
/// confluent-kafka's AvroSerializer.
pub fn produce_posts(topic: &str, start: u32, count: u32) {
    produce_posts_with(&[], topic, start, count);
}

/// [`produce_posts`] with extra environment for the client (`BOOTSTRAP_SERVERS`,
/// `SCHEMA_REGISTRY_URL`).
pub fn produce_posts_with(env: &[(&str, &str)], topic: &str, start: u32, count: u32) {
    kafka_tool_with(
        env,
        &[
            "produce-avro",
            "--topic",
            topic,
            "--schema",
            schema("stage_one.json").to_str().unwrap(),
            "--start",
            &start.to_string(),
            "--count",
            &count.to_string(),
        ],
    );
}

/// The arguments that run `plugin` from `input` to `output` in consumer group `group`; tests
/// add their own flags after them.
pub fn stage_args<'a>(
    plugin: &'a Path,
    input: &'a str,
    output: &'a str,
    group: &'a str,
) -> Vec<&'a str> {
    vec![
        "--plugin",
        plugin.to_str().expect("a UTF-8 path"),
        "--input-topic",
        input,
        "--output-topic",
        output,
        "--group-id",
        group,
    ]
}

/// Produces one record with raw bytes as its value.
pub fn produce_raw(topic: &str, key: &str, value: &[u8]) {
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    kafka_tool(&[
        "produce-raw",
        "--topic",
        topic,
        "--key",
        key,
        "--value-hex",
        &hex,
    ]);
}

/// One record read back with confluent-kafka's AvroDeserializer.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// The key as text.
    pub key: Option<String>,
    /// The decoded value.
    pub value: serde_json::Value,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

impl ConsumedRecord {
    /// The number in `postid_<n>`.
    pub fn post_number(&self) -> u32 {
        self.value["postid"].as_str().expect("a postid")["postid_".len()..]
            .parse()
            .expect("postid_<n>")
    }
}

/// Reads `count` records of `topic` from the beginning, failing after `timeout_secs`.
/// `count` 0 reads everything there is (until nothing new arrives for 5 s).
pub fn consume_avro(topic: &str, count: usize, timeout_secs: u32) -> Vec<ConsumedRecord> {
    consume_avro_with_registry("http://127.0.0.1:8081", topic, count, timeout_secs)
}

/// [`consume_avro`] against the Schema Registry at `registry_url`.
pub fn consume_avro_with_registry(
    registry_url: &str,
    topic: &str,
    count: usize,
    timeout_secs: u32,
) -> Vec<ConsumedRecord> {
    consume_avro_with(
        &[("SCHEMA_REGISTRY_URL", registry_url)],
        topic,
        count,
        timeout_secs,
    )
}

/// [`consume_avro`] with extra environment for the client (`BOOTSTRAP_SERVERS`,
/// `SCHEMA_REGISTRY_URL`).
pub fn consume_avro_with(
    env: &[(&str, &str)],
    topic: &str,
    count: usize,
    timeout_secs: u32,
) -> Vec<ConsumedRecord> {
    kafka_tool_with(
        env,
        &[
            "consume-avro",
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--timeout",
            &timeout_secs.to_string(),
        ],
    )
    .lines()
    .map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).expect("kafka_tool prints JSON");
        ConsumedRecord {
            key: v["key"].as_str().map(str::to_string),
            value: v["value"].clone(),
            partition: v["partition"].as_i64().unwrap_or(-1) as i32,
            offset: v["offset"].as_i64().unwrap_or(-1),
        }
    })
    .collect()
}

/// How often each post number (`postid_<n>`) occurs among `records`.
pub fn post_counts(records: &[ConsumedRecord]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.post_number()).or_insert(0) += 1;
    }
    counts
}

/// The committed offset per partition of `group` on `topic` (negative: none committed).
pub fn committed(topic: &str, group: &str) -> BTreeMap<i32, i64> {
    committed_with(&[], topic, group)
}

/// [`committed`] with extra environment for the client (`BOOTSTRAP_SERVERS`).
pub fn committed_with(env: &[(&str, &str)], topic: &str, group: &str) -> BTreeMap<i32, i64> {
    try_committed_with(env, topic, group).unwrap_or_else(|e| panic!("{e}"))
}

/// [`committed_with`], answering `Err` when the client fails (while a broker is down, say).
pub fn try_committed_with(
    env: &[(&str, &str)],
    topic: &str,
    group: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let text = try_kafka_tool_with(env, &["committed", "--topic", topic, "--group", group])?;
    let json: BTreeMap<String, i64> =
        serde_json::from_str(&text).map_err(|e| format!("kafka_tool printed {text:?}: {e}"))?;
    Ok(json
        .into_iter()
        .map(|(p, o)| (p.parse().expect("partition number"), o))
        .collect())
}

/// A running `stage-host` process whose stderr is collected. Dropped while it still runs (a
/// test failed before it could stop the process), it is killed, and when the test is
/// panicking its stderr is printed: a failed test shows what the stage said.
pub struct StageProcess {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl StageProcess {
    /// Starts `stage-host` with `args`.
    pub fn start(args: &[&str]) -> StageProcess {
        let mut child = Command::new(stage_host())
            .args(args)
            .env("STAGE_HOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stage-host starts");
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        StageProcess {
            child,
            stderr: Some(stderr),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn collected_stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits for the process to exit by itself, killing it after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let stderr = self.collected_stderr();
                panic!("stage-host did not exit within {timeout:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            status,
            stderr: self.collected_stderr(),
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(self, timeout: Duration) -> Finished {
        signal(self.pid(), "TERM");
        self.wait(timeout)
    }
}

impl Drop for StageProcess {
    fn drop(&mut self) {
        if self.stderr.is_none() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.collected_stderr();
        if std::thread::panicking() {
            eprintln!(
                "---- stderr of stage-host (pid {}) ----\n{stderr}",
                self.child.id()
            );
        }
    }
}

/// Sends a signal by name (`TERM`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// How a `stage-host` process ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Finished {
    /// The exit code (panics if it was killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal; stderr:\n{}", self.stderr))
    }

    /// The ERROR lines of the log.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("ERROR"))
            .collect()
    }

    /// Asserts the process failed with `code` and exactly one error line containing every
    /// one of `needles`, and no panic message or backtrace.
    pub fn assert_failed_with(&self, code: i32, needles: &[&str]) {
        assert_eq!(self.code(), code, "exit code; stderr:\n{}", self.stderr);
        let errors = self.error_lines();
        assert_eq!(
            errors.len(),
            1,
            "one error line expected; stderr:\n{}",
            self.stderr
        );
        for needle in needles {
            assert!(
                errors[0].contains(needle),
                "error line lacks {needle:?}: {}",
                errors[0]
            );
        }
        for forbidden in [
            "stack backtrace",
            "RUST_BACKTRACE",
            "thread 'main' panicked",
        ] {
            assert!(
                !self.stderr.contains(forbidden),
                "stderr shows a Rust panic ({forbidden}):\n{}",
                self.stderr
            );
        }
    }
}

/// Runs `stage-host` to completion with `args` (for runs that must fail on their own).
pub fn run_stage_host(args: &[&str], timeout: Duration) -> Finished {
    StageProcess::start(args).wait(timeout)
}

/// `stage-host` output as `Output`, for short commands like `inspect`.
pub fn stage_host_output(args: &[&str]) -> Output {
    Command::new(stage_host())
        .args(args)
        .output()
        .expect("stage-host runs")
}

/// Reads `count` records of `topic` as raw JSON objects `{key, value_hex, headers, offset}`.
pub fn consume_raw(topic: &str, count: usize, timeout_secs: u32) -> Vec<serde_json::Value> {
    kafka_tool(&[
        "consume-raw",
        "--topic",
        topic,
        "--count",
        &count.to_string(),
        "--timeout",
        &timeout_secs.to_string(),
    ])
    .lines()
    .map(|line| serde_json::from_str(line).expect("kafka_tool prints JSON"))
    .collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`; fails after `timeout`,
/// naming `what` was expected there.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP response: status code, `Content-Type` and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header (empty if none).
    pub content_type: String,
    /// The body as text.
    pub body: String,
}

/// `GET path` from `addr` (`host:port`) over plain HTTP/1.1, one request per connection.
/// `None` while nothing answers there.
pub fn http_get(addr: &str, path: &str) -> Option<HttpResponse> {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    Some(HttpResponse {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// One sample of a Prometheus text exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (for a counter, with `_total`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Parses the samples of a Prometheus text exposition (comments and `# HELP`/`# TYPE` lines
/// are skipped; label values may hold escaped quotes and backslashes).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, labels, rest) = match line.find('{') {
                Some(open) => {
                    let close = line.rfind('}').expect("labels close");
                    (
                        &line[..open],
                        parse_labels(&line[open + 1..close]),
                        &line[close + 1..],
                    )
                }
                None => {
                    let (name, rest) = line.split_once(' ').expect("a value");
                    (name, BTreeMap::new(), rest)
                }
            };
            let value = rest.split_whitespace().next().expect("a value");
            Sample {
                name: name.to_string(),
                labels,
                value: value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number: {line}")),
            }
        })
        .collect()
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let name = name.trim().trim_start_matches(',').trim().to_string();
        if name.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} is quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name, value);
    }
}

/// The samples named `name` whose labels include every pair of `labels`.
pub fn samples<'a>(all: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one sample named `name` with `labels` (panics if there is not exactly one).
pub fn sample_value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(all, name, labels);
    assert_eq!(
        found.len(),
        1,
        "one sample {name}{labels:?} expected, found {found:?}"
    );
    found[0].value
}

/// Parses `text` with the Prometheus project's own Python parser (`tools/prom_parse.py`);
/// panics with its message if it refuses the exposition.
pub fn parse_prometheus_with_python(text: &str) -> Vec<Sample> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/tools/prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write the exposition");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "the Python parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            Sample {
                name: v["name"].as_str().expect("name").to_string(),
                labels: v["labels"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                value: v["value"].as_f64().expect("value"),
            }
        })
        .collect()
}

/// Polls `probe` every 200 ms until it returns `Some`, panicking with `what` and the last
/// thing seen after `timeout`.
pub fn wait_for<T, S: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {seen:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Runs one of Kafka's own tools (`kafka_cluster/kafka/kafka TOOL ARGS...`, e.g.
/// `["consumer-groups", "--bootstrap-server", ..]`) and returns its stdout; panics with its
/// stderr if it fails.
pub fn kafka_cli(args: &[&str]) -> String {
    let output = Command::new(private_kafka::kafka_script())
        .args(args)
        .output()
        .expect("kafka_cluster/kafka/kafka runs");
    assert!(
        output.status.success(),
        "kafka {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// The keys of every record of `topic` that Kafka's own console consumer reads with
/// `isolation.level=read_committed`, from the beginning until `expected` records arrived (or
/// until nothing arrived for `idle`). A witness that shares no code with the project nor with
/// librdkafka.
pub fn console_consumer_keys(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    idle: Duration,
) -> Vec<String> {
    let idle_ms = idle.as_millis().to_string();
    let max = expected.to_string();
    let output = Command::new(private_kafka::kafka_script())
        .args(["console-consumer", "--bootstrap-server", bootstrap])
        .args(["--topic", topic, "--from-beginning"])
        .args(["--isolation-level", "read_committed"])
        .args(["--formatter-property", "print.key=true"])
        .args(["--formatter-property", "print.value=false"])
        .args(["--max-messages", &max, "--timeout-ms", &idle_ms])
        .output()
        .expect("kafka_cluster/kafka/kafka runs");
    // The console consumer ends with an error and a non-zero code when it times out waiting,
    // which is how a short count shows: the keys read are what the caller checks.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Processed a total of"),
        "kafka-console-consumer failed: {stderr}"
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 keys")
        .lines()
        .map(str::to_string)
        .collect()
}

/// One partition's row of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (`None`: `-`, nothing committed).
    pub committed: Option<i64>,
    /// The partition's log end offset.
    pub log_end: Option<i64>,
}

/// The committed offsets of `group` on `topic` as Kafka's own `kafka-consumer-groups
/// --describe` reports them.
pub fn describe_group(bootstrap: &str, group: &str, topic: &str) -> Vec<GroupPartition> {
    let text = kafka_cli(&[
        "consumer-groups",
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--group",
        group,
    ]);
    let number = |s: &str| s.parse::<i64>().ok();
    let mut rows: Vec<GroupPartition> = text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        .filter(|cols| cols.len() >= 6 && cols[0] == group && cols[1] == topic)
        .map(|cols| GroupPartition {
            partition: cols[2].parse().expect("a partition number"),
            committed: number(cols[3]),
            log_end: number(cols[4]),
        })
        .collect();
    rows.sort_by_key(|r| r.partition);
    rows
}
