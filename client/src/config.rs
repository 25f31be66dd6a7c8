//! Where the cluster is, shared by producers and consumers.

/// Connection settings: bootstrap servers, registry, and any librdkafka property.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Kafka bootstrap servers.
    pub bootstrap_servers: String,
    /// Schema Registry URL.
    pub schema_registry_url: String,
    /// Schema Registry basic auth, `(user, password)`.
    pub schema_registry_auth: Option<(String, String)>,
    /// librdkafka properties applied last (they win), e.g. `security.protocol`.
    pub properties: Vec<(String, String)>,
}

impl ClientConfig {
    /// Settings for a cluster and registry.
    pub fn new(
        bootstrap_servers: impl Into<String>,
        schema_registry_url: impl Into<String>,
    ) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into(),
            schema_registry_url: schema_registry_url.into(),
            schema_registry_auth: None,
            properties: vec![],
        }
    }

    /// Adds a librdkafka property.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    pub(crate) fn registry(&self) -> Result<confluent::SchemaRegistry, crate::ClientError> {
        let auth = self
            .schema_registry_auth
            .as_ref()
            .map(|(user, password)| format!("{user}:{password}"));
        confluent::SchemaRegistry::new(
            &confluent::RegistrySettings::new(&self.schema_registry_url)
                .basic_auth(auth.as_deref()),
        )
        .map_err(crate::ClientError::from)
    }

    pub(crate) fn kafka(&self, defaults: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}
