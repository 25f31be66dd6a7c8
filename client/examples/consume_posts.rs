//! Prints the posts of a topic as JSON lines, committing as it goes, until it has been idle
//! for fifteen seconds (the Python `KafkaConsumer.listen` with a `handle_message`).
//!
//! `cargo run -p stage-client --example consume_posts -- <topic> <group>`

use serde::{Deserialize, Serialize};
use stage_client::{AvroConsumer, ClientConfig};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Post {
    postid: String,
    title: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: consume_posts <topic> <group>";
    let topic = args.next().ok_or(usage)?;
    let group = args.next().ok_or(usage)?;
    let config = ClientConfig::new(
        std::env::var("BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into()),
    );
    let mut consumer = AvroConsumer::<Post>::new(&config, &topic, &group)?;
    consumer.listen(Duration::from_secs(15), |message| {
        match message {
            Ok(m) => println!(
                "{}",
                serde_json::json!({"key": m.key_str(), "value": m.value, "offset": m.offset})
            ),
            Err(e) => eprintln!("skipping a record: {e}"),
        }
        true
    })?;
    Ok(())
}
