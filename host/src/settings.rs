//! Connection settings shared by every command that talks to a cluster, and the librdkafka
//! configuration built from them.

use crate::kafka_properties::{Clients, KafkaProperty};
use clap::Args;
use confluent::{
    KafkaAdmin, RegistryError, RegistrySettings, RestProxy, SchemaRegistry, TopicAdmin, TopicError,
};
use rdkafka::ClientConfig;
use std::time::Duration;

/// Where the cluster is, and any librdkafka property to pass through.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "STAGE_HOST_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Schema Registry URL.
    #[arg(
        long,
        env = "STAGE_HOST_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry_url: String,

    /// Schema Registry basic auth, `user:password`.
    #[arg(long, env = "STAGE_HOST_SCHEMA_REGISTRY_AUTH", hide_env_values = true)]
    pub schema_registry_auth: Option<String>,

    /// A PEM CA certificate to trust for an `https` Schema Registry signed by a private CA
    /// (the system's roots are trusted too).
    #[arg(long, env = "STAGE_HOST_SCHEMA_REGISTRY_CA", value_name = "PEM")]
    pub schema_registry_ca: Option<std::path::PathBuf>,

    /// Kafka REST Proxy URL. When given, topics are created through its v3 API instead of the
    /// Kafka Admin API.
    #[arg(long, env = "STAGE_HOST_REST_PROXY_URL")]
    pub rest_proxy_url: Option<String>,

    /// A librdkafka property, `key=value` (repeatable), e.g. `-X security.protocol=SASL_SSL`.
    /// It goes to the clients librdkafka's scope of the property names (consumer, producer or
    /// both); `consumer.key=value` or `producer.key=value` sends it to one kind only. Properties
    /// the host sets (group.id, transactional.id, enable.auto.commit, isolation.level, ...) are
    /// refused, naming the flag to use.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = KafkaProperty::parse)]
    pub kafka_properties: Vec<KafkaProperty>,

    /// How long to wait for the broker to answer at start-up.
    #[arg(long, default_value = "15", value_name = "SECONDS")]
    pub connect_timeout_secs: u64,
}

impl Connection {
    /// The Schema Registry client for this connection.
    pub fn registry(&self) -> Result<SchemaRegistry, RegistryError> {
        SchemaRegistry::new(
            &RegistrySettings::new(&self.schema_registry_url)
                .basic_auth(self.schema_registry_auth.as_deref())
                .ca_file(self.schema_registry_ca.clone()),
        )
    }

    /// The Kafka Admin API of this connection's cluster.
    pub fn kafka_admin(&self) -> KafkaAdmin {
        KafkaAdmin::new(self.client_config(&[]), self.connect_timeout())
    }

    /// Topic administration as this connection asks for it: through the REST Proxy when its
    /// URL is given (bound to `cluster`, or its first), the Kafka Admin API otherwise.
    pub fn topic_admin(&self, cluster: Option<&str>) -> Result<Box<dyn TopicAdmin>, TopicError> {
        Ok(match &self.rest_proxy_url {
            Some(url) => Box::new(RestProxy::connect(url, cluster, self.connect_timeout())?),
            None => Box::new(self.kafka_admin()),
        })
    }

    /// The start-up connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// A librdkafka config for a client that is neither the stage's consumer nor its producer
    /// (admin and metadata clients): the bootstrap servers, then `defaults`, then the `-X`
    /// properties for every client (which win).
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        self.config_for(Clients::All, defaults)
    }

    /// [`Connection::client_config`] for a consumer: with the `-X` consumer properties too.
    pub fn consumer_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        self.config_for(Clients::Consumers, defaults)
    }

    /// [`Connection::client_config`] for a producer: with the `-X` producer properties too.
    pub fn producer_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        self.config_for(Clients::Producers, defaults)
    }

    /// The `-X` properties a client of `kind` takes, in the order given (a later one wins).
    pub fn properties_for(&self, kind: Clients) -> impl Iterator<Item = &KafkaProperty> {
        self.kafka_properties.iter().filter(move |p| match kind {
            Clients::All => p.clients() == Clients::All,
            kind => p.for_client(kind),
        })
    }

    fn config_for(&self, kind: Clients, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for property in self.properties_for(kind) {
            config.set(&property.key, &property.value);
        }
        config
    }
}

/// Producer settings: batched and lingering for throughput, idempotent so retries neither
/// duplicate nor reorder. Never flushed per record.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "500000"),
    ("queue.buffering.max.kbytes", "262144"),
];

/// Consumer settings: offsets are committed by the host after outputs are acknowledged, never
/// automatically.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    // Incremental rebalancing: when a replica joins or leaves (a scale-up, a hot swap), only
    // the partitions that move stop, instead of every member giving up everything twice.
    // The swap gap on the local cluster went from 3.3 s (eager) to under a second.
    ("partition.assignment.strategy", "cooperative-sticky"),
    ("enable.partition.eof", "false"),
    // Bound the prefetch queue and each fetch: ten batches ahead is all the loop needs, and
    // the rest is resident memory. librdkafka's defaults (64 MB / 100,000 records queued, 1 MB
    // per partition per fetch) put a stage at 50 MB peak RSS in `scripts/bench`; 16 MB queued
    // at 47 MB; these at 31-33 MB with the same records/s within the run-to-run noise.
    ("queued.max.messages.kbytes", "2048"),
    ("queued.min.messages", "10000"),
    ("max.partition.fetch.bytes", "262144"),
    // Once a partition's prefetch queue is over those bounds, librdkafka postpones its next
    // fetch by this long (default 1000 ms): with the bounds above that capped a stage at
    // 10,000 records per partition per second (40,600 records/s on 4 partitions in
    // `scripts/bench`, the process idle 95% of the time). 10 ms refills the queue as soon as
    // the loop has drained it.
    ("fetch.queue.backoff.ms", "10"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        connection: Connection,
    }

    fn connection(args: &[&str]) -> Connection {
        let all = std::iter::once("test").chain(args.iter().copied());
        Args::try_parse_from(all).expect("parses").connection
    }

    #[test]
    fn each_client_gets_the_properties_of_its_kind() {
        let conn = connection(&[
            "-X",
            "security.protocol=SSL",
            "-X",
            "session.timeout.ms=7000",
            "-X",
            "linger.ms=20",
            "-X",
            "consumer.client.id=reader",
            "-X",
            "producer.client.id=writer",
        ]);
        let consumer = conn.consumer_config(CONSUMER_DEFAULTS);
        assert_eq!(consumer.get("security.protocol"), Some("SSL"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("7000"), "-X wins");
        assert_eq!(consumer.get("client.id"), Some("reader"));
        assert_eq!(consumer.get("linger.ms"), None);
        let producer = conn.producer_config(PRODUCER_DEFAULTS);
        assert_eq!(producer.get("security.protocol"), Some("SSL"));
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("client.id"), Some("writer"));
        assert_eq!(producer.get("session.timeout.ms"), None);
        let admin = conn.client_config(&[]);
        assert_eq!(admin.get("security.protocol"), Some("SSL"));
        for only_one_kind in ["session.timeout.ms", "linger.ms", "client.id"] {
            assert_eq!(admin.get(only_one_kind), None, "{only_one_kind}");
        }
    }
}
