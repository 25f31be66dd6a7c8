//! A Schema Registry that requires HTTP basic auth: `--schema-registry-auth` passes the
//! credentials through to every registry call, and without them the stage stops at start-up
//! with one clear error. Input and output are checked with the independent client, which
//! authenticates with the same credentials.

use e2e_tests::private_registry::PrivateRegistry;
use e2e_tests::*;
use std::time::Duration;

const CREDENTIALS: &str = "alice:s3cret";

#[test]
fn registry_credentials_pass_through_and_their_absence_is_a_clear_error() {
    if !cluster_available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let registry = PrivateRegistry::start_with_auth(free_port(), data.path(), Some(CREDENTIALS));
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
