//! Kafka security with `-X` properties only: a SASL_SSL listener (SCRAM-SHA-512 users, a
//! certificate signed by a CA made at start-up) with Kafka's StandardAuthorizer and ACLs, on a
//! broker of the test's own. Records flow for the right user and CA; a wrong password or a
//! CA that did not sign the broker's certificate is a start-up failure (exit 4, one line);
//! a user the ACLs refuse is exit 5 with one line naming what was denied, and nothing is
//! committed.

use e2e_tests::private_kafka::PrivateKafka;
use e2e_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const EXIT_UNREACHABLE: i32 = 4;
const EXIT_REFUSED: i32 = 5;

/// One secure broker for a test, with input and output topics made by the admin (through the
/// plaintext listener, whose anonymous principal is a super user) and a user of the test's own.
struct SecureSetup {
    broker: PrivateKafka,
    input: String,
    output: String,
    group: String,
    user: String,
    password: String,
}

impl SecureSetup {
    fn new(records: u32) -> SecureSetup {
        let broker = PrivateKafka::start_secure();
        let bootstrap = broker.bootstrap();
        let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
        let setup = SecureSetup {
            input: unique("secure_in"),
            output: unique("secure_out"),
            group: unique("secure_g"),
            user: unique("alice"),
            password: "alice-secret".into(),
            broker,
        };
        for topic in [&setup.input, &setup.output] {
            kafka_tool_with(&env, &["create-topic", "--topic", topic]);
        }
        produce_posts_with(&env, &setup.input, 0, records);
        setup.broker.add_scram_user(&setup.user, &setup.password);
        setup
    }

    /// Grants the user `operation` on a resource (`--topic t`, `--group g`).
    fn allow(&self, operation: &str, resource: &[&str]) {
        let principal = format!("User:{}", self.user);
        let mut args = vec![
            "--add",
            "--allow-principal",
            &principal,
            "--operation",
            operation,
        ];
        args.extend_from_slice(resource);
        self.broker.acls(&args);
    }

    /// What a stage needs: read its input with its group, write its output.
    fn allow_stage(&self, write_output: bool, read_group: bool) {
        self.allow("Read", &["--topic", &self.input]);
        self.allow("Describe", &["--topic", &self.output]);
        if write_output {
            self.allow("Write", &["--topic", &self.output]);
        }
        if read_group {
            self.allow("Read", &["--group", &self.group]);
        }
    }

    /// Runs stage two on the secure listener as `user` with `password`, trusting `ca`.
    fn run_stage(&self, password: &str, ca: &Path, extra: &[&str]) -> StageProcess {
        let plugin = plugin("stage-two");
        let secure = self.broker.secure_bootstrap();
        let properties = PrivateKafka::sasl_properties(&self.user, password, ca);
        let mut args = stage_args(&plugin, &self.input, &self.output, &self.group);
        args.extend_from_slice(&[
            "--bootstrap-servers",
            &secure,
            "--connect-timeout-secs",
            "10",
        ]);
        for property in &properties {
            args.extend_from_slice(&["-X", property]);
        }
        args.extend_from_slice(extra);
        StageProcess::start(&args)
    }

    fn committed(&self) -> std::collections::BTreeMap<i32, i64> {
        let bootstrap = self.broker.bootstrap();
        committed_with(
            &[("BOOTSTRAP_SERVERS", bootstrap.as_str())],
            &self.input,
            &self.group,
        )
    }
}

/// A certificate authority of its own, which signed nothing the broker has.
fn other_ca(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("other-ca.key");
    let cert = dir.join("other-ca.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not the broker's CA"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made a CA");
    cert
}

#[test]
fn the_right_user_and_ca_move_records_over_sasl_ssl() {
    if !cluster_available() {
        return;
    }
    let setup = SecureSetup::new(50);
    setup.allow_stage(true, true);
    let stage = setup.run_stage(&setup.password.clone(), &setup.broker.ca_file(), &[]);
    let bootstrap = setup.broker.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let records = consume_avro_with(&env, &setup.output, 50, 60);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(post_counts(&records).len(), 50);
    assert!(setup.committed().values().all(|o| *o > 0));
}

#[test]
fn a_wrong_password_is_a_start_up_failure_in_one_line() {
    if !cluster_available() {
        return;
    }
    let setup = SecureSetup::new(1);
    setup.allow_stage(true, true);
    let done = setup
        .run_stage("not-the-password", &setup.broker.ca_file(), &[])
        .wait(Duration::from_secs(60));
    done.assert_failed_with(EXIT_UNREACHABLE, &["cannot reach Kafka", "uthentication"]);
}

#[test]
fn a_ca_that_did_not_sign_the_brokers_certificate_is_a_start_up_failure_in_one_line() {
    if !cluster_available() {
        return;
    }
    let setup = SecureSetup::new(1);
    setup.allow_stage(true, true);
    let dir = tempfile::tempdir().unwrap();
    let done = setup
        .run_stage(&setup.password.clone(), &other_ca(dir.path()), &[])
        .wait(Duration::from_secs(60));
    done.assert_failed_with(
        EXIT_UNREACHABLE,
        &["cannot reach Kafka", "certificate verify failed"],
    );
}

#[test]
fn a_user_without_write_on_the_output_is_refused_and_commits_nothing() {
    if !cluster_available() {
        return;
    }
    let setup = SecureSetup::new(20);
    setup.allow_stage(false, true);
    let done = setup
        .run_stage(&setup.password.clone(), &setup.broker.ca_file(), &[])
        .wait(Duration::from_secs(60));
    done.assert_failed_with(
        EXIT_REFUSED,
        &["not authorized", "write", setup.output.as_str()],
    );
    assert!(
        setup.committed().values().all(|o| *o < 0),
        "nothing committed: {:?}",
        setup.committed()
    );
}

#[test]
fn a_user_without_read_on_the_group_is_refused_and_commits_nothing() {
    if !cluster_available() {
        return;
    }
    let setup = SecureSetup::new(20);
    setup.allow_stage(true, false);
    let done = setup
        .run_stage(&setup.password.clone(), &setup.broker.ca_file(), &[])
        .wait(Duration::from_secs(60));
    done.assert_failed_with(
        EXIT_REFUSED,
        &["not authorized", "group", setup.group.as_str()],
    );
    assert!(
        setup.committed().values().all(|o| *o < 0),
        "nothing committed: {:?}",
        setup.committed()
    );
}
