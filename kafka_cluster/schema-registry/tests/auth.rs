//! HTTP basic authentication: with credentials configured, requests without them or with
//! wrong ones get Confluent's 401, and requests with them are served.

use schema_registry::BasicAuth;

#[tokio::test]
async fn requests_need_the_configured_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = BasicAuth::parse("alice:s3cret").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(schema_registry::serve_with_auth_until(
        listener,
        dir.path().to_path_buf(),
        Some(auth),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let subjects = format!("{base}/subjects");

    let mut anonymous = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(&subjects).send().await {
            anonymous = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let anonymous = anonymous.expect("the registry answers");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"SchemaRegistry\""
    );
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error_code"], 401);

    let wrong = client
        .get(&subjects)
        .basic_auth("alice", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let right = client
        .get(&subjects)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.text().await.unwrap(), "[]");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
