//! The client against the local cluster, checked with the independent client
//! (confluent-kafka's AvroSerializer/AvroDeserializer) in both directions.

use e2e_tests::{cluster_available, consume_avro, create_topic, produce_posts, unique};
use serde::{Deserialize, Serialize};
use stage_client::{AvroConsumer, AvroProducer, ClientConfig, ClientError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    postid: String,
    title: String,
}

const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");

fn config() -> ClientConfig {
    ClientConfig::new("127.0.0.1:9092", "http://127.0.0.1:8081")
}

#[test]
fn records_produced_here_read_with_confluent_kafka() {
    if !cluster_available() {
        return;
    }
    let topic = unique("client_out");
    create_topic(&topic, 2);
    let producer = AvroProducer::<Post>::new(&config(), &topic, STAGE_ONE).unwrap();
    for i in 0..20 {
        let post = Post {
            postid: format!("p{i}"),
            title: format!("t{i}"),
        };
        producer.send(Some(&post.postid), &post).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let mut read = consume_avro(&topic, 20, 60);
    read.sort_by_key(|r| {
        r.value["postid"].as_str().unwrap()[1..]
            .parse::<u32>()
            .unwrap()
    });
    assert_eq!(read.len(), 20);
    assert_eq!(read[7].key.as_deref(), Some("p7"));
    assert_eq!(read[7].value["title"], "t7");
}

#[test]
fn records_produced_by_confluent_kafka_read_here_and_commit() {
    if !cluster_available() {
        return;
    }
    let topic = unique("client_in");
    create_topic(&topic, 1);
    produce_posts(&topic, 0, 5);
    let group = unique("client_group");
    let mut consumer = AvroConsumer::<Post>::new(&config(), &topic, &group).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 5 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            got.push(m.unwrap());
        }
    }
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].key_str(), Some(got[0].value.postid.as_str()));
    consumer.commit().unwrap();
    let committed = e2e_tests::committed(&topic, &group);
    assert_eq!(committed.get(&0), Some(&5));
}

#[test]
fn values_that_do_not_fit_and_unreachable_registries_are_errors() {
    #[derive(Serialize)]
    struct Wrong {
        postid: i64,
    }
    let unreachable = ClientConfig::new("127.0.0.1:9092", "http://127.0.0.1:1");
    let err = AvroProducer::<Post>::new(&unreachable, "t", STAGE_ONE)
        .err()
        .expect("no registry");
    assert!(matches!(err, ClientError::Registry(_)), "{err}");
    let err = AvroProducer::<Post>::new(&config(), "t", "{not json")
        .err()
        .expect("bad schema");
    assert!(matches!(err, ClientError::Avro(_)), "{err}");
    if !cluster_available() {
        return;
    }
    let topic = unique("client_wrong");
    let producer = AvroProducer::<Wrong>::new(&config(), &topic, STAGE_ONE).unwrap();
    let err = producer.send(None, &Wrong { postid: 1 }).unwrap_err();
    assert!(matches!(err, ClientError::Avro(_)), "{err}");
}
