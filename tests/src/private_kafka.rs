//! A broker of a test's own: Apache Kafka on private ports and a private data directory, which
//! the test may kill with SIGKILL and start again on the same data, or start with the SASL_SSL
//! listener and ACLs.
//!
//! The shared local cluster serves every other test at once, so faults that take the broker
//! away (a crash, a restart) or change how it authorizes clients run here instead. It is the
//! same Kafka as the local cluster, started by the same script (`kafka_cluster/kafka/kafka
//! broker`), so what is proven here holds there. A start takes about five seconds (a JVM).

use crate::{free_port, repo_root};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A one-node Kafka on free ports, stopped (SIGKILL) and deleted when dropped.
pub struct PrivateKafka {
    broker: Option<Child>,
    port: u16,
    controller_port: u16,
    secure_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl PrivateKafka {
    /// Starts a broker with only the plaintext listener, and waits until it answers.
    pub fn start() -> PrivateKafka {
        PrivateKafka::launch(false)
    }

    /// Starts a broker that also has a SASL_SSL listener (SCRAM-SHA-512, a certificate signed
    /// by [`PrivateKafka::ca_file`]) with Kafka's StandardAuthorizer, and creates the admin
    /// user's credential.
    pub fn start_secure() -> PrivateKafka {
        let broker = PrivateKafka::launch(true);
        let (user, password) = admin_credentials();
        broker.add_scram_user(&user, &password);
        broker
    }

    fn launch(secure: bool) -> PrivateKafka {
        let mut broker = PrivateKafka {
            broker: None,
            port: free_port(),
            controller_port: free_port(),
            secure_port: secure.then(free_port),
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        broker.restart();
        broker
    }

    /// `host:port` of the plaintext listener, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `host:port` of the SASL_SSL listener.
    pub fn secure_bootstrap(&self) -> String {
        format!(
            "127.0.0.1:{}",
            self.secure_port.expect("started with start_secure")
        )
    }

    /// The certificate authority that signed the secure listener's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("data/tls/ca.pem")
    }

    /// The broker's log (its stdout and stderr).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// Kills the broker with SIGKILL: no controlled shutdown, as in a crash or power loss of
    /// the process (the data already written stays in the page cache and on disk).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.broker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same ports and data, and waits until it answers a
    /// metadata request. Kafka recovers its log from an unclean shutdown on the way up.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("broker log");
        let mut command = Command::new(kafka_script());
        command
            .arg("broker")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--port", &self.port.to_string()])
            .args(["--controller-port", &self.controller_port.to_string()])
            .args(["--heap", "512m"]);
        if let Some(port) = self.secure_port {
            command.args(["--secure-port", &port.to_string()]);
        }
        let child = command
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("kafka_cluster/kafka/kafka starts");
        self.broker = Some(child);
        self.wait_until_serving(Duration::from_secs(120));
    }

    fn wait_until_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", "private-kafka-probe")
            .create()
            .expect("a metadata client");
        loop {
            if let Some(status) = self
                .broker
                .as_mut()
                .and_then(|child| child.try_wait().expect("try_wait"))
            {
                panic!(
                    "the private broker exited ({status}) while starting; log:\n{}",
                    tail(&self.log(), 40)
                );
            }
            if client
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|m| !m.brokers().is_empty())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private broker did not answer within {timeout:?}; log:\n{}",
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Creates (or changes) a SCRAM-SHA-512 user, through the plaintext listener.
    pub fn add_scram_user(&self, user: &str, password: &str) {
        self.tool(&[
            "configs",
            "--bootstrap-server",
            &self.bootstrap(),
            "--alter",
            "--add-config",
            &format!("SCRAM-SHA-512=[password={password}]"),
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ]);
    }

    /// Runs `kafka-acls` against this broker with `args` (e.g. `--add --allow-principal
    /// User:alice --operation Read --topic t`).
    pub fn acls(&self, args: &[&str]) -> String {
        let mut all = vec!["acls", "--bootstrap-server"];
        let bootstrap = self.bootstrap();
        all.push(&bootstrap);
        all.extend_from_slice(args);
        self.tool(&all)
    }

    /// Runs one of Kafka's tools (see [`crate::kafka_cli`]).
    pub fn tool(&self, args: &[&str]) -> String {
        crate::kafka_cli(args)
    }

    /// The `-X` librdkafka properties that connect to the secure listener as `user`, trusting
    /// `ca_file`.
    pub fn sasl_properties(user: &str, password: &str, ca_file: &Path) -> Vec<String> {
        vec![
            "security.protocol=SASL_SSL".into(),
            "sasl.mechanism=SCRAM-SHA-512".into(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
            format!("ssl.ca.location={}", ca_file.display()),
        ]
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The secure listener's super user and password (`kafka_cluster/kafka/kafka admin-credentials`).
pub fn admin_credentials() -> (String, String) {
    let output = Command::new(kafka_script())
        .arg("admin-credentials")
        .output()
        .expect("kafka_cluster/kafka/kafka runs");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let (user, password) = text
        .trim()
        .split_once(' ')
        .expect("`admin-credentials` prints `user password`");
    (user.to_string(), password.to_string())
}

/// `kafka_cluster/kafka/kafka`: runs Kafka's broker and tools from the pinned jars.
pub fn kafka_script() -> PathBuf {
    repo_root().join("kafka_cluster/kafka/kafka")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
