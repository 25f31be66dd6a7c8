//! A Schema Registry that requires HTTP basic auth: `--schema-registry-auth` passes the
//! credentials through to every registry call, and without them the stage stops at start-up
//! with one clear error. Input and output are checked with the independent client, which
//! authenticates with the same credentials.

use e2e_tests::*;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CREDENTIALS: &str = "alice:s3cret";

/// The workspace's registry on a free port, requiring [`CREDENTIALS`].
struct AuthRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start() -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let binary = build_dir().join("schema-registry");
        assert!(binary.exists(), "{} is missing", binary.display());
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--basic-auth", CREDENTIALS])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("schema-registry starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthRegistry {
            child,
            port,
            _dir: dir,
        }
    }

    /// The URL without credentials, as `stage-host` takes it.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL with the credentials in it, as confluent-kafka's client takes them.
    fn url_with_credentials(&self) -> String {
        format!("http://{CREDENTIALS}@127.0.0.1:{}", self.port)
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn registry_credentials_pass_through_and_their_absence_is_a_clear_error() {
    if !cluster_available() {
        return;
    }
    let registry = AuthRegistry::start();
    let input = unique("auth_in");
    let output = unique("auth_out");
    let group = unique("auth_g");
    create_topic(&input, 1);
    let url_with_credentials = registry.url_with_credentials();
    produce_posts_with(
        &[("SCHEMA_REGISTRY_URL", &url_with_credentials)],
        &input,
        0,
        20,
    );
    let plugin = plugin("stage-two");
    let url = registry.url();
    let mut base = stage_args(&plugin, &input, &output, &group);
    base.extend_from_slice(&["--schema-registry-url", &url]);

    let refused = run_stage_host(&base, Duration::from_secs(60));
    refused.assert_failed_with(5, &["401"]);

    let mut args = base.clone();
    args.extend_from_slice(&["--schema-registry-auth", CREDENTIALS]);
    let stage = StageProcess::start(&args);
    let records = consume_avro_with_registry(&registry.url_with_credentials(), &output, 20, 90);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(records.len(), 20);
    assert!(records.iter().all(|r| r.value["ppm"].is_number()));
}
