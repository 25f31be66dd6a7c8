//! Produces `count` posts to a topic, as the Python `AvroProducer` example did.
//!
//! `cargo run -p stage-client --example produce_posts -- <topic> [count]`
//! (cluster from `BOOTSTRAP_SERVERS` / `SCHEMA_REGISTRY_URL`, default the local cluster).

use serde::Serialize;
use stage_client::{AvroProducer, ClientConfig};
use std::time::Duration;

#[derive(Serialize)]
struct Post {
    postid: String,
    title: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().ok_or("usage: produce_posts <topic> [count]")?;
    let count: u32 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(10);
    let config = ClientConfig::new(
        std::env::var("BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into()),
    );
    let schema = include_str!("../../schemas/stage_one.json");
    let producer = AvroProducer::<Post>::new(&config, &topic, schema)?;
    for i in 0..count {
        let postid = format!("postid_{i}");
        let post = Post {
            postid: postid.clone(),
            title: format!("title {i}"),
        };
        producer.send(Some(&postid), &post)?;
    }
    producer.flush(Duration::from_secs(30))?;
    println!(
        "produced {count} records to {topic} with schema id {}",
        producer.schema_id()
    );
    Ok(())
}
