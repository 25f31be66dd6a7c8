//! The `-X` librdkafka properties: which clients each one goes to, and the ones the host owns.
//!
//! A stage runs a consumer and a producer (and admin and metadata clients). librdkafka warns
//! (`CONFWARN`) when a client is given a property of the other kind and ignores it, so a
//! property goes only to the clients it is for: `-X consumer.KEY=V` and `-X producer.KEY=V`
//! say so, and an unprefixed key follows librdkafka's own scope of the property (consumer,
//! producer, or both), read from librdkafka's property table. Admin and metadata clients get
//! only the properties of both kinds (connection and security settings).
//!
//! Some properties the host sets itself because its guarantees depend on them, or because a
//! flag sets them; `-X` for one of those is refused, naming the flag to use instead, rather
//! than ignored or obeyed against the guarantee.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Which clients a property goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// Every client (connection, security, logging...).
    All,
    /// Consumers only.
    Consumers,
    /// Producers only.
    Producers,
}

impl Clients {
    fn name(self) -> &'static str {
        match self {
            Clients::All => "client",
            Clients::Consumers => "consumer",
            Clients::Producers => "producer",
        }
    }
}

/// One `-X` property as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaProperty {
    /// The librdkafka property name, without a `consumer.`/`producer.` prefix.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The clients a `consumer.` or `producer.` prefix named, if any.
    pub named: Option<Clients>,
}

impl KafkaProperty {
    /// Parses `KEY=VALUE`, `consumer.KEY=VALUE` or `producer.KEY=VALUE` (a clap value parser;
    /// what the key may be is checked by [`KafkaProperty::check`]).
    pub fn parse(text: &str) -> Result<KafkaProperty, String> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => (k.trim(), v),
            _ => return Err(format!("expected KEY=VALUE, got `{text}`")),
        };
        let (named, key) = match (key.strip_prefix("consumer."), key.strip_prefix("producer.")) {
            (Some(rest), _) => (Some(Clients::Consumers), rest),
            (_, Some(rest)) => (Some(Clients::Producers), rest),
            _ => (None, key),
        };
        if key.is_empty() {
            return Err(format!("expected KEY=VALUE after the prefix, got `{text}`"));
        }
        Ok(KafkaProperty {
            key: key.to_string(),
            value: value.to_string(),
            named,
        })
    }

    /// The clients this property goes to: those its prefix names, else librdkafka's scope of
    /// the property (every client for one librdkafka does not list).
    pub fn clients(&self) -> Clients {
        self.named
            .unwrap_or_else(|| scope_in(librdkafka_scopes(), &self.key))
    }

    /// Whether a client of kind `kind` (a consumer or a producer) takes this property.
    pub fn for_client(&self, kind: Clients) -> bool {
        let clients = self.clients();
        clients == Clients::All || clients == kind
    }

    /// Refuses a property the host owns (naming what to use instead), and a prefix that names
    /// clients the property is not for (they would ignore it).
    pub fn check(&self) -> Result<(), String> {
        if let Some(instead) = owned(&self.key) {
            return Err(format!("-X {}: {instead}", self.given()));
        }
        let scope = scope_in(librdkafka_scopes(), &self.key);
        match self.named {
            Some(named) if scope != Clients::All && scope != named => Err(format!(
                "-X {}: {} is a {} property, which a {} ignores; give it as -X {}.{}=...",
                self.given(),
                self.key,
                scope.name(),
                named.name(),
                scope.name(),
                self.key
            )),
            _ => Ok(()),
        }
    }

    /// `KEY` as the operator wrote it, prefix included.
    fn given(&self) -> String {
        match self.named {
            Some(named) => format!("{}.{}", named.name(), self.key),
            None => self.key.clone(),
        }
    }
}

/// What to do instead of setting `key` with `-X`, for a property the host owns.
fn owned(key: &str) -> Option<&'static str> {
    Some(match key {
        "bootstrap.servers" | "metadata.broker.list" => {
            "the host sets the brokers; use --bootstrap-servers"
        }
        "group.id" => {
            "the host sets the consumer group; use --group-id (in a pipeline file, a stage's group_id)"
        }
        "transactional.id" => {
            "the host sets the transactional id; use --transactional-id (with --exactly-once)"
        }
        "enable.auto.commit" | "auto.commit.enable" | "enable.auto.offset.store" => {
            "the host commits offsets itself, only once the outputs are acknowledged; automatic commits would lose records after a crash (no flag changes this)"
        }
        "isolation.level" => {
            "the host reads only committed records (read_committed), which exactly-once depends on (no flag changes this)"
        }
        "enable.partition.eof" => {
            "the host sets it for each of its consumers, which depend on it (no flag changes this)"
        }
        _ => return None,
    })
}

/// Property name → clients, from librdkafka's own table (its `rd_kafka_conf_properties_show`,
/// the source of CONFIGURATION.md), read once.
fn librdkafka_scopes() -> &'static HashMap<String, Clients> {
    static SCOPES: OnceLock<HashMap<String, Clients>> = OnceLock::new();
    SCOPES.get_or_init(|| {
        let scopes = parse_table(&librdkafka_table());
        if scopes.is_empty() {
            tracing::warn!("cannot read librdkafka's property table; -X properties without a consumer. or producer. prefix go to every client");
        }
        scopes
    })
}

fn scope_in(scopes: &HashMap<String, Clients>, key: &str) -> Clients {
    scopes.get(key).copied().unwrap_or(Clients::All)
}

/// librdkafka's property table, as `rd_kafka_conf_properties_show` prints it: Markdown rows
/// `name | C/P | range | default | importance | description`, aliases with the scope of the
/// property they stand for.
fn librdkafka_table() -> String {
    let mut buffer: *mut libc::c_char = std::ptr::null_mut();
    let mut length: libc::size_t = 0;
    // SAFETY: open_memstream returns a stream that writes into a buffer it allocates and
    // reports through `buffer` and `length` once closed; librdkafka only writes to the stream.
    // The bytes are copied out before the buffer is freed, and nothing else holds it.
    unsafe {
        let stream = libc::open_memstream(&mut buffer, &mut length);
        if stream.is_null() {
            return String::new();
        }
        rdkafka::bindings::rd_kafka_conf_properties_show(stream);
        libc::fclose(stream);
        if buffer.is_null() {
            return String::new();
        }
        let bytes = std::slice::from_raw_parts(buffer.cast::<u8>(), length);
        let table = String::from_utf8_lossy(bytes).into_owned();
        libc::free(buffer.cast());
        table
    }
}

/// The scope of each property in librdkafka's table.
fn parse_table(table: &str) -> HashMap<String, Clients> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let name = fields.next()?;
            let clients = match fields.next()? {
                "*" => Clients::All,
                "C" => Clients::Consumers,
                "P" => Clients::Producers,
                _ => return None,
            };
            (!name.is_empty() && name != "Property").then(|| (name.to_string(), clients))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(text: &str) -> KafkaProperty {
        KafkaProperty::parse(text).expect("parses")
    }

    #[test]
    fn properties_parse_with_or_without_a_client_prefix() {
        assert_eq!(
            property("compression.type=zstd"),
            KafkaProperty {
                key: "compression.type".into(),
                value: "zstd".into(),
                named: None
            }
        );
        assert_eq!(property("sasl.password=a=b").value, "a=b");
        let consumer = property("consumer.fetch.wait.max.ms=5");
        assert_eq!(consumer.key, "fetch.wait.max.ms");
        assert_eq!(consumer.named, Some(Clients::Consumers));
        assert_eq!(
            property("producer.linger.ms=1").named,
            Some(Clients::Producers)
        );
        for bad in ["novalue", "=x", "consumer.=1"] {
            assert!(KafkaProperty::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn librdkafkas_own_table_gives_each_propertys_clients() {
        let scopes = librdkafka_scopes();
        assert!(scopes.len() > 100, "{} properties read", scopes.len());
        for (key, clients) in [
            ("security.protocol", Clients::All),
            ("statistics.interval.ms", Clients::All),
            ("client.id", Clients::All),
            ("session.timeout.ms", Clients::Consumers),
            ("partition.assignment.strategy", Clients::Consumers),
            ("auto.offset.reset", Clients::Consumers),
            ("fetch.wait.max.ms", Clients::Consumers),
            ("linger.ms", Clients::Producers),
            ("compression.type", Clients::Producers),
            ("enable.idempotence", Clients::Producers),
            // An alias has the scope of the property it stands for.
            ("acks", Clients::Producers),
            ("request.required.acks", Clients::Producers),
        ] {
            assert_eq!(property(&format!("{key}=1")).clients(), clients, "{key}");
        }
        // Unknown to the table (librdkafka's own check refuses a typo): every client.
        assert_eq!(property("no.such.key=1").clients(), Clients::All);
    }

    #[test]
    fn a_property_goes_to_its_clients_and_a_prefix_overrides_the_scope() {
        let linger = property("linger.ms=1");
        assert!(linger.for_client(Clients::Producers));
        assert!(!linger.for_client(Clients::Consumers));
        let session = property("session.timeout.ms=6000");
        assert!(session.for_client(Clients::Consumers));
        assert!(!session.for_client(Clients::Producers));
        let tls = property("ssl.ca.location=ca.pem");
        assert!(tls.for_client(Clients::Consumers) && tls.for_client(Clients::Producers));
        let consumer_only = property("consumer.client.id=reader");
        assert!(consumer_only.for_client(Clients::Consumers));
        assert!(!consumer_only.for_client(Clients::Producers));
    }

    #[test]
    fn owned_properties_are_refused_naming_the_flag() {
        for (given, needle) in [
            ("group.id=other", "--group-id"),
            ("consumer.group.id=other", "--group-id"),
            ("transactional.id=t", "--transactional-id"),
            ("bootstrap.servers=h:9092", "--bootstrap-servers"),
            ("metadata.broker.list=h:9092", "--bootstrap-servers"),
            ("enable.auto.commit=true", "commits offsets itself"),
            ("auto.commit.enable=true", "commits offsets itself"),
            ("enable.auto.offset.store=true", "commits offsets itself"),
            ("isolation.level=read_uncommitted", "read_committed"),
            ("enable.partition.eof=true", "sets it"),
        ] {
            let refused = property(given).check().expect_err(given);
            let key = given.split('=').next().unwrap();
            assert!(refused.starts_with(&format!("-X {key}: ")), "{refused}");
            assert!(refused.contains(needle), "{given}: {refused}");
        }
    }

    #[test]
    fn a_prefix_naming_the_wrong_clients_is_refused() {
        let refused = property("consumer.acks=1").check().unwrap_err();
        assert!(refused.contains("acks is a producer property"), "{refused}");
        assert!(refused.contains("-X producer.acks="), "{refused}");
        assert!(property("producer.session.timeout.ms=1").check().is_err());
        for fine in [
            "producer.acks=1",
            "consumer.session.timeout.ms=6000",
            "consumer.client.id=reader",
            "acks=1",
            "security.protocol=SSL",
        ] {
            assert_eq!(property(fine).check(), Ok(()), "{fine}");
        }
    }
}
