//! End-to-end tests of every endpoint over HTTP against an in-process registry.

mod common;

use common::{assert_error, record, Server, STAGE_ONE, STAGE_THREE, STAGE_TWO, TEST_TOPIC};
use serde_json::{json, Value};

async fn fresh() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    (dir, server)
}

#[tokio::test]
async fn root_types_mode_and_unknown_routes() {
    let (_dir, s) = fresh().await;
    assert_eq!(s.get("/").await, (200, json!({})));
    assert_eq!(s.get("/schemas/types").await, (200, json!(["AVRO"])));
    assert_eq!(s.get("/mode").await, (200, json!({"mode": "READWRITE"})));
    assert_error(&s.get("/no/such/route").await, 404, 404);
    assert_error(&s.call("PATCH", "/subjects", None).await, 405, 405);
    // A path that is not valid UTF-8 after decoding is rejected by the router: still JSON.
    let r = s.get("/subjects/%FF/versions").await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert!(r.1["error_code"].is_u64());
}

#[tokio::test]
async fn project_schemas_register_and_read_back() {
    let (_dir, s) = fresh().await;
    for (i, text) in [STAGE_ONE, STAGE_TWO, STAGE_THREE, TEST_TOPIC]
        .into_iter()
        .enumerate()
    {
        let subject = format!("topic{i}-value");
        let id = s.register_ok(&subject, text).await;
        let (status, body) = s.get(&format!("/schemas/ids/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["schema"].as_str().unwrap(), text);
        assert!(body.get("schemaType").is_none(), "AVRO type is omitted");
    }
}

#[tokio::test]
async fn registration_is_idempotent_and_ids_are_global() {
    let (_dir, s) = fresh().await;
    let id = s.register_ok("a-value", STAGE_ONE).await;
    assert_eq!(s.register_ok("a-value", STAGE_ONE).await, id);
    // Whitespace and key order do not make a new schema.
    let reformatted: Value = serde_json::from_str(STAGE_ONE).unwrap();
    assert_eq!(s.register_ok("a-value", &reformatted.to_string()).await, id);
    assert_eq!(s.get("/subjects/a-value/versions").await, (200, json!([1])));

    // Same schema under another subject: same id, version 1 there.
    assert_eq!(s.register_ok("b-value", STAGE_ONE).await, id);
    let (_, b) = s.get("/subjects/b-value/versions/1").await;
    assert_eq!(b["id"].as_u64(), Some(id));

    // A different schema gets a new id.
    let other = s.register_ok("c-value", STAGE_TWO).await;
    assert_ne!(other, id);

    assert_eq!(
        s.get(&format!("/schemas/ids/{id}/subjects")).await,
        (200, json!(["a-value", "b-value"]))
    );
    assert_eq!(
        s.get(&format!("/schemas/ids/{id}/versions")).await,
        (
            200,
            json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
        )
    );
    let (status, raw) = s
        .call_text("GET", &format!("/schemas/ids/{id}/schema"), None, "")
        .await;
    assert_eq!((status, raw.as_str()), (200, STAGE_ONE));

    assert_error(&s.get("/schemas/ids/999").await, 404, 40403);
    assert_error(&s.get("/schemas/ids/abc").await, 404, 40403);
    assert_error(&s.get("/schemas/ids/999/versions").await, 404, 40403);
    assert_error(&s.get("/schemas/ids/999/subjects").await, 404, 40403);
}

#[tokio::test]
async fn subject_and_version_reads() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"string"}"#);
    let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
    let id1 = s.register_ok("s", &v1).await;
    let id2 = s.register_ok("s", &v2).await;
    s.register_ok("t", &v1).await;

    assert_eq!(s.get("/subjects").await, (200, json!(["s", "t"])));
    assert_eq!(
        s.get("/subjects?subjectPrefix=s").await,
        (200, json!(["s"]))
    );
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([1, 2])));
    assert_eq!(
        s.get("/subjects/s/versions/1").await,
        (
            200,
            json!({"subject": "s", "version": 1, "id": id1, "schema": v1})
        )
    );
    for latest in ["latest", "-1"] {
        let (status, body) = s.get(&format!("/subjects/s/versions/{latest}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["version"].as_u64(), body["id"].as_u64()),
            (Some(2), Some(id2))
        );
    }
    let (status, raw) = s
        .call_text("GET", "/subjects/s/versions/2/schema", None, "")
        .await;
    assert_eq!((status, raw), (200, v2.clone()));
    assert_eq!(
        s.get("/subjects/s/versions/1/referencedby").await,
        (200, json!([]))
    );

    assert_error(&s.get("/subjects/nope/versions").await, 404, 40401);
    assert_error(&s.get("/subjects/nope/versions/1").await, 404, 40401);
    assert_error(&s.get("/subjects/nope/versions/latest").await, 404, 40401);
    assert_error(&s.get("/subjects/s/versions/3").await, 404, 40402);
    assert_error(&s.get("/subjects/s/versions/3/schema").await, 404, 40402);
    for bad in ["abc", "0", "-2", "1.5", "99999999999"] {
        assert_error(
            &s.get(&format!("/subjects/s/versions/{bad}")).await,
            422,
            42202,
        );
    }
    assert_error(&s.get("/subjects/s/versions/x/schema").await, 422, 42202);
    assert_error(&s.delete("/subjects/s/versions/x").await, 422, 42202);
}

#[tokio::test]
async fn subject_names_with_slashes_and_spaces() {
    let (_dir, s) = fresh().await;
    s.register_ok("a%2Fb%20c", STAGE_ONE).await;
    assert_eq!(s.get("/subjects").await, (200, json!(["a/b c"])));
    let (status, body) = s.get("/subjects/a%2Fb%20c/versions/latest").await;
    assert_eq!(status, 200);
    assert_eq!(body["subject"], "a/b c");
}

#[tokio::test]
async fn lookup_schema_under_subject() {
    let (_dir, s) = fresh().await;
    s.set_level("s", "NONE").await;
    let id = s.register_ok("s", STAGE_ONE).await;
    let (status, body) = s.post("/subjects/s", json!({"schema": STAGE_ONE})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"subject": "s", "version": 1, "id": id, "schema": STAGE_ONE})
    );
    assert_error(
        &s.post("/subjects/s", json!({"schema": STAGE_TWO})).await,
        404,
        40403,
    );
    assert_error(
        &s.post("/subjects/nope", json!({"schema": STAGE_ONE})).await,
        404,
        40401,
    );
    assert_error(
        &s.post("/subjects/s", json!({"schema": "{"})).await,
        422,
        42201,
    );
    // Soft-deleted versions are found only with deleted=true.
    s.delete("/subjects/s/versions/1").await;
    assert_error(
        &s.post("/subjects/s", json!({"schema": STAGE_ONE})).await,
        404,
        40401,
    );
    let (status, body) = s
        .post("/subjects/s?deleted=true", json!({"schema": STAGE_ONE}))
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)));
}

#[tokio::test]
async fn invalid_schemas_and_bodies() {
    let (_dir, s) = fresh().await;
    let invalid = [
        json!({"schema": "{\"type\":\"record\",\"name\":\"r\"}"}),
        json!({"schema": "not json"}),
        json!({"schema": "{\"type\":\"nosuchtype\"}"}),
        json!({"schema": ""}),
        json!({"schemaType": "AVRO"}),
        json!({"schema": 5}),
        json!({"schema": STAGE_ONE, "schemaType": "PROTOBUF"}),
        json!({"schema": STAGE_ONE, "schemaType": "JSON"}),
        json!({"schema": STAGE_ONE, "references": [{"name": "x", "subject": "y", "version": 1}]}),
    ];
    for body in invalid {
        let r = s.post("/subjects/s/versions", body.clone()).await;
        assert_error(&r, 422, 42201);
        if body["schemaType"] == "PROTOBUF" {
            assert!(r.1["message"].as_str().unwrap().contains("only AVRO"));
        }
    }
    // Nothing was registered by the failures.
    assert_error(&s.get("/subjects/s/versions").await, 404, 40401);

    // Malformed JSON is a 400 with Confluent's generic code, never a 500 or a hang.
    for body in ["{bad", "", "[1,2]", "\"schema\""] {
        let r = s
            .call_raw(
                "POST",
                "/subjects/s/versions",
                Some(body.into()),
                "application/vnd.schemaregistry.v1+json",
            )
            .await;
        assert_error(&r, 400, 400);
    }
    let r = s
        .call_raw("PUT", "/config", Some("{".into()), "application/json")
        .await;
    assert_error(&r, 400, 400);

    // Every content type clients use is accepted, and explicit AVRO is fine.
    for (i, ct) in [
        "application/json",
        "application/vnd.schemaregistry+json",
        "application/vnd.schemaregistry.v1+json",
        "application/octet-stream",
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"schema": STAGE_ONE, "schemaType": "AVRO", "references": []});
        let (status, body) = s
            .call_raw(
                "POST",
                &format!("/subjects/ct{i}/versions"),
                Some(body.to_string()),
                ct,
            )
            .await;
        assert_eq!(status, 200, "{ct}: {body}");
    }
}

/// Registers `first` under NONE, then `second`, then sets `level`.
async fn subject_with(s: &Server, subject: &str, versions: &[String], level: &str) {
    s.set_level(subject, "NONE").await;
    for v in versions {
        s.register_ok(subject, v).await;
    }
    s.set_level(subject, level).await;
}

#[tokio::test]
async fn backward_is_the_default_and_names_the_field() {
    let (_dir, s) = fresh().await;
    s.register_ok("s", &record(r#"{"name":"a","type":"string"}"#))
        .await;
    let no_default = record(r#"{"name":"a","type":"string"},{"name":"age","type":"int"}"#);
    let r = s.register("s", &no_default).await;
    assert_error(&r, 409, 409);
    let message = r.1["message"].as_str().unwrap();
    assert!(message.contains("'age'"), "{message}");
    assert!(
        message.contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{message}"
    );
    assert!(message.contains("BACKWARD"), "{message}");

    // Adding with a default, removing a field and promoting int to long are all backward
    // compatible.
    s.register_ok(
        "s",
        &record(r#"{"name":"a","type":"string"},{"name":"age","type":"int","default":0}"#),
    )
    .await;
    s.register_ok("s", &record(r#"{"name":"age","type":"int","default":0}"#))
        .await;
    s.register_ok("s", &record(r#"{"name":"age","type":"long","default":0}"#))
        .await;
    // Re-registering a live version returns its id without a check; a narrowing is refused.
    assert_eq!(
        s.register_ok("s", &record(r#"{"name":"age","type":"int","default":0}"#))
            .await,
        3
    );
    let r = s
        .register("s", &record(r#"{"name":"age","type":"int"}"#))
        .await;
    assert_error(&r, 409, 409);
    assert_eq!(
        s.get("/subjects/s/versions").await,
        (200, json!([1, 2, 3, 4]))
    );
}

#[tokio::test]
async fn backward_transitive_checks_every_live_version() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"int"}"#);
    let v2 = record(r#"{"name":"a","type":"string"}"#);
    let candidate = record(r#"{"name":"a","type":"string"},{"name":"c","type":"int","default":0}"#);
    subject_with(&s, "s", &[v1, v2], "BACKWARD").await;
    // Against the latest only it is fine...
    let (_, body) = s
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": candidate}),
        )
        .await;
    assert_eq!(body["is_compatible"], true);
    // ...but string cannot read the int written by version 1.
    s.set_level("s", "BACKWARD_TRANSITIVE").await;
    let r = s.register("s", &candidate).await;
    assert_error(&r, 409, 409);
    assert!(
        r.1["message"].as_str().unwrap().contains("version 1"),
        "{}",
        r.1
    );
}

#[tokio::test]
async fn forward_requires_old_readers_to_cope() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
    subject_with(&s, "s", &[v1], "FORWARD").await;
    // Dropping b breaks readers of version 1, which have no default for it.
    let r = s
        .register("s", &record(r#"{"name":"a","type":"string"}"#))
        .await;
    assert_error(&r, 409, 409);
    assert!(r.1["message"].as_str().unwrap().contains("'b'"), "{}", r.1);
    // Adding a field without default is forward compatible.
    s.register_ok(
        "s",
        &record(
            r#"{"name":"a","type":"string"},{"name":"b","type":"int"},{"name":"c","type":"int"}"#,
        ),
    )
    .await;
}

#[tokio::test]
async fn forward_transitive_checks_every_live_version() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"long"}"#);
    let v2 = record(r#"{"name":"a","type":"double"}"#);
    let candidate = record(r#"{"name":"a","type":"float"}"#);
    subject_with(&s, "s", &[v1, v2], "FORWARD").await;
    let (_, body) = s
        .post(
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": candidate}),
        )
        .await;
    assert_eq!(body["is_compatible"], true);
    s.set_level("s", "FORWARD_TRANSITIVE").await;
    assert_error(&s.register("s", &candidate).await, 409, 409);
}

#[tokio::test]
async fn full_needs_both_directions() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"string"}"#);
    subject_with(&s, "s", &[v1], "FULL").await;
    // Forward-compatible but not backward.
    assert_error(
        &s.register(
            "s",
            &record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#),
        )
        .await,
        409,
        409,
    );
    s.register_ok(
        "s",
        &record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":1}"#),
    )
    .await;
}

#[tokio::test]
async fn full_transitive_checks_every_live_version() {
    let (_dir, s) = fresh().await;
    let v1 = record(r#"{"name":"a","type":"int"}"#);
    let v2 = record(r#"{"name":"a","type":"long"}"#);
    let candidate = record(r#"{"name":"a","type":"long"},{"name":"x","type":"int","default":0}"#);
    subject_with(&s, "s", &[v1, v2], "FULL").await;
    let (_, body) = s
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": candidate}),
        )
        .await;
    assert_eq!(body["is_compatible"], true);
    s.set_level("s", "FULL_TRANSITIVE").await;
    assert_error(&s.register("s", &candidate).await, 409, 409);
}

#[tokio::test]
async fn none_accepts_anything_and_global_level_applies() {
    let (_dir, s) = fresh().await;
    s.register_ok("s", &record(r#"{"name":"a","type":"string"}"#))
        .await;
    let breaking = record(r#"{"name":"a","type":"int"}"#);
    assert_error(&s.register("s", &breaking).await, 409, 409);
    let (status, _) = s.put("/config", json!({"compatibility": "NONE"})).await;
    assert_eq!(status, 200);
    s.register_ok("s", &breaking).await;
}

#[tokio::test]
async fn soft_deleted_versions_are_not_checked() {
    let (_dir, s) = fresh().await;
    s.register_ok("s", &record(r#"{"name":"a","type":"string"}"#))
        .await;
    s.set_level("s", "NONE").await;
    s.register_ok("s", &record(r#"{"name":"a","type":"int"}"#))
        .await;
    s.set_level("s", "BACKWARD").await;
    let candidate = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
    assert_error(&s.register("s", &candidate).await, 409, 409);
    assert_eq!(s.delete("/subjects/s/versions/2").await, (200, json!(2)));
    s.register_ok("s", &candidate).await;
    // Versions continue after the soft-deleted one.
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([1, 3])));
}

#[tokio::test]
async fn compatibility_endpoint() {
    let (_dir, s) = fresh().await;
    s.register_ok("s", STAGE_ONE).await;
    let compatible: Value = serde_json::from_str(STAGE_ONE).unwrap();
    let mut incompatible = compatible.clone();
    incompatible["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra", "type": "string"}));
    let incompatible = incompatible.to_string();
    let compatible = compatible.to_string();

    for path in [
        "/compatibility/subjects/s/versions/latest",
        "/compatibility/subjects/s/versions/1",
        "/compatibility/subjects/s/versions",
    ] {
        assert_eq!(
            s.post(path, json!({"schema": compatible})).await,
            (200, json!({"is_compatible": true}))
        );
        assert_eq!(
            s.post(path, json!({"schema": incompatible})).await,
            (200, json!({"is_compatible": false}))
        );
        let (status, verbose) = s
            .post(
                &format!("{path}?verbose=true"),
                json!({"schema": incompatible}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(verbose["is_compatible"], false);
        let messages = verbose["messages"].as_array().unwrap();
        assert!(
            messages[0].as_str().unwrap().contains("'extra'"),
            "{verbose}"
        );
        let (_, verbose) = s
            .post(
                &format!("{path}?verbose=True"),
                json!({"schema": compatible}),
            )
            .await;
        assert_eq!(verbose, json!({"is_compatible": true, "messages": []}));
    }
    // Nothing was registered by testing.
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([1])));

    assert_error(
        &s.post(
            "/compatibility/subjects/s/versions/2",
            json!({"schema": compatible}),
        )
        .await,
        404,
        40402,
    );
    assert_error(
        &s.post(
            "/compatibility/subjects/s/versions/x",
            json!({"schema": compatible}),
        )
        .await,
        422,
        42202,
    );
    assert_error(
        &s.post(
            "/compatibility/subjects/nope/versions/latest",
            json!({"schema": compatible}),
        )
        .await,
        404,
        40401,
    );
    // A subject with no versions accepts anything.
    assert_eq!(
        s.post(
            "/compatibility/subjects/nope/versions",
            json!({"schema": compatible})
        )
        .await,
        (200, json!({"is_compatible": true}))
    );
    assert_error(
        &s.post("/compatibility/subjects/s/versions", json!({"schema": "{"}))
            .await,
        422,
        42201,
    );
}

#[tokio::test]
async fn config_endpoints() {
    let (_dir, s) = fresh().await;
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        s.put("/config", json!({"compatibility": "FULL"})).await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );

    assert_error(&s.get("/config/s").await, 404, 40408);
    assert_eq!(
        s.get("/config/s?defaultToGlobal=true").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        s.put("/config/s", json!({"compatibility": "forward_transitive"}))
            .await,
        (200, json!({"compatibility": "FORWARD_TRANSITIVE"}))
    );
    assert_eq!(
        s.get("/config/s").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );
    for level in [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] {
        let (status, _) = s.put("/config/t", json!({"compatibility": level})).await;
        assert_eq!(status, 200, "{level}");
    }

    assert_error(
        &s.put("/config", json!({"compatibility": "SIDEWAYS"})).await,
        422,
        42203,
    );
    assert_error(
        &s.put("/config/s", json!({"compatibility": "SIDEWAYS"}))
            .await,
        422,
        42203,
    );
    assert_error(&s.put("/config/s", json!({})).await, 422, 42203);
    assert_eq!(
        s.get("/config/s").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );

    assert_eq!(
        s.delete("/config/s").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );
    assert_error(&s.get("/config/s").await, 404, 40408);
    assert_error(&s.delete("/config/s").await, 404, 40408);
    assert_eq!(
        s.delete("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
}

#[tokio::test]
async fn deleting_versions() {
    let (_dir, s) = fresh().await;
    s.set_level("s", "NONE").await;
    let v1 = s.register_ok("s", STAGE_ONE).await;
    s.register_ok("s", STAGE_TWO).await;
    s.register_ok("s", STAGE_THREE).await;

    assert_eq!(s.delete("/subjects/s/versions/1").await, (200, json!(1)));
    assert_error(&s.get("/subjects/s/versions/1").await, 404, 40402);
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([2, 3])));
    assert_eq!(
        s.get("/subjects/s/versions?deleted=true").await,
        (200, json!([1, 2, 3]))
    );
    let (status, body) = s.get("/subjects/s/versions/1?deleted=true").await;
    assert_eq!((status, body["id"].as_u64()), (200, Some(v1)));
    // The schema stays readable by id so old records can still be decoded.
    assert_eq!(s.get(&format!("/schemas/ids/{v1}")).await.0, 200);
    assert_eq!(
        s.get(&format!("/schemas/ids/{v1}/versions")).await,
        (200, json!([]))
    );
    assert_eq!(
        s.get(&format!("/schemas/ids/{v1}/versions?deleted=true"))
            .await,
        (200, json!([{"subject": "s", "version": 1}]))
    );

    assert_error(&s.delete("/subjects/s/versions/1").await, 404, 40406);
    assert_error(
        &s.delete("/subjects/s/versions/2?permanent=true").await,
        404,
        40407,
    );
    assert_error(&s.delete("/subjects/s/versions/9").await, 404, 40402);
    assert_error(&s.delete("/subjects/nope/versions/1").await, 404, 40401);

    assert_eq!(
        s.delete("/subjects/s/versions/1?permanent=true").await,
        (200, json!(1))
    );
    assert_error(
        &s.get("/subjects/s/versions/1?deleted=true").await,
        404,
        40402,
    );
    assert_error(&s.get(&format!("/schemas/ids/{v1}")).await, 404, 40403);

    // latest resolves to the highest live version.
    assert_eq!(
        s.delete("/subjects/s/versions/latest").await,
        (200, json!(3))
    );
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([2])));

    // Re-registering a soft-deleted schema makes a new version with the same id.
    let (_, v3) = s.get("/subjects/s/versions/3?deleted=true").await;
    let id3 = s.register_ok("s", STAGE_THREE).await;
    assert_eq!(Some(id3), v3["id"].as_u64());
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([2, 4])));

    // A permanently deleted schema gets a new id when registered again.
    let again = s.register_ok("s", STAGE_ONE).await;
    assert!(again > v1);
}

#[tokio::test]
async fn deleting_subjects() {
    let (_dir, s) = fresh().await;
    s.set_level("s", "NONE").await;
    let id = s.register_ok("s", STAGE_ONE).await;
    s.register_ok("s", &record(r#"{"name":"postid","type":["string"]}"#))
        .await;
    s.register_ok("keep", STAGE_ONE).await;
    s.set_level("s", "FULL").await;

    assert_error(&s.delete("/subjects/s?permanent=true").await, 404, 40405);
    assert_eq!(s.delete("/subjects/s").await, (200, json!([1, 2])));
    assert_eq!(s.get("/subjects").await, (200, json!(["keep"])));
    assert_eq!(
        s.get("/subjects?deleted=true").await,
        (200, json!(["keep", "s"]))
    );
    assert_error(&s.get("/subjects/s/versions").await, 404, 40401);
    assert_error(&s.get("/subjects/s/versions/latest").await, 404, 40401);
    assert_error(&s.delete("/subjects/s").await, 404, 40404);
    assert_error(&s.delete("/subjects/nope").await, 404, 40401);
    assert_error(&s.delete("/subjects/nope?permanent=true").await, 404, 40401);

    assert_eq!(
        s.delete("/subjects/s?permanent=true").await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        s.get("/subjects?deleted=true").await,
        (200, json!(["keep"]))
    );
    assert_error(&s.delete("/subjects/s?permanent=true").await, 404, 40401);
    // The permanent delete dropped the subject's config too.
    assert_error(&s.get("/config/s").await, 404, 40408);
    // The id is still used by another subject.
    assert_eq!(s.get(&format!("/schemas/ids/{id}")).await.0, 200);
    // After a permanent delete versions start again at 1.
    s.register_ok("s", STAGE_TWO).await;
    assert_eq!(s.get("/subjects/s/versions").await, (200, json!([1])));
}

#[tokio::test]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let id1 = s.register_ok("a", STAGE_ONE).await;
    s.set_level("b", "NONE").await;
    let id2 = s.register_ok("b", STAGE_TWO).await;
    s.register_ok("b", STAGE_THREE).await;
    s.register_ok("gone", TEST_TOPIC).await;
    s.delete("/subjects/b/versions/1").await;
    s.delete("/subjects/gone").await;
    s.put("/config", json!({"compatibility": "FULL"})).await;
    s.set_level("a", "NONE").await;
    s.stop().await;

    let s = Server::start(dir.path()).await;
    assert_eq!(s.get("/subjects").await, (200, json!(["a", "b"])));
    assert_eq!(
        s.get("/subjects?deleted=true").await,
        (200, json!(["a", "b", "gone"]))
    );
    assert_eq!(s.get("/subjects/b/versions").await, (200, json!([2])));
    assert_eq!(
        s.get("/subjects/b/versions?deleted=true").await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        s.get(&format!("/schemas/ids/{id1}")).await,
        (200, json!({"schema": STAGE_ONE}))
    );
    assert_eq!(s.get(&format!("/schemas/ids/{id2}")).await.0, 200);
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        s.get("/config/a").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    // Identity and compatibility work on the reloaded schemas.
    assert_eq!(s.register_ok("a", STAGE_ONE).await, id1);
    assert_eq!(s.register_ok("c", STAGE_ONE).await, id1);
    assert_error(
        &s.register("c", &record(r#"{"name":"x","type":"int"}"#))
            .await,
        409,
        409,
    );
    // New ids continue after the old ones.
    let id = s
        .register_ok("d", &record(r#"{"name":"x","type":"int"}"#))
        .await;
    assert!(id > id2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_one_id() {
    let (_dir, s) = fresh().await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.register_ok("same", STAGE_ONE).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(s.get("/subjects/same/versions").await, (200, json!([1])));

    // Sixteen different schemas at once get sixteen ids and versions 1..=16.
    s.set_level("many", "NONE").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.register_ok(
                "many",
                &record(&format!(r#"{{"name":"f{i}","type":"int"}}"#)),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16);
    let (_, versions) = s.get("/subjects/many/versions").await;
    assert_eq!(versions, json!((1..=16).collect::<Vec<u32>>()));
}

#[tokio::test]
async fn failed_writes_are_not_applied() {
    let (_dir, s) = fresh().await;
    s.register_ok("s", STAGE_ONE).await;
    // Make the data directory unwritable even for root: replace it with a file.
    std::fs::remove_dir_all(&s.dir).unwrap();
    std::fs::write(&s.dir, b"not a directory").unwrap();

    let r = s.register("t", STAGE_TWO).await;
    assert_error(&r, 500, 50001);
    assert_error(&s.get("/subjects/t/versions").await, 404, 40401);
    assert_error(
        &s.put("/config", json!({"compatibility": "NONE"})).await,
        500,
        50001,
    );
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    // Reads keep working.
    assert_eq!(s.get("/subjects").await, (200, json!(["s"])));
    std::fs::remove_file(&s.dir).unwrap();
}
