//! Writer schemas from the Schema Registry, made known to the plugin once per id.
//!
//! A record names the schema it was written with by id. The first record with an id costs one
//! registry lookup, and the plugin parses the schema once (`add_writer_schema`); every later
//! record with the id costs a set lookup. An id the registry does not have, or a schema the
//! plugin cannot use, fails its records (the error policy decides), and is remembered so it
//! is not asked again. A registry that does not answer is retried with backoff: that is not
//! the record's fault, and the stage waits rather than dead-lettering good records.

use super::batch::WriterSchemas;
use super::RunError;
use crate::shutdown::Shutdown;
use confluent::SchemaRegistry;
use plugin_host::StageInstance;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The writer schemas the plugin knows, and the ids that cannot be had.
pub struct RegistrySchemas<'a> {
    registry: &'a SchemaRegistry,
    shutdown: Shutdown,
    known: HashSet<u32>,
    unusable: HashMap<u32, String>,
}

impl<'a> RegistrySchemas<'a> {
    /// Schemas from `registry`; a lookup retried while the registry is away stops waiting
    /// when `shutdown` is requested.
    pub fn new(registry: &'a SchemaRegistry, shutdown: Shutdown) -> Self {
        RegistrySchemas {
            registry,
            shutdown,
            known: HashSet::new(),
            unusable: HashMap::new(),
        }
    }
}

impl WriterSchemas for RegistrySchemas<'_> {
    fn ensure(
        &mut self,
        id: u32,
        instance: &mut StageInstance,
    ) -> Result<Result<(), String>, RunError> {
        if self.known.contains(&id) {
            return Ok(Ok(()));
        }
        if let Some(reason) = self.unusable.get(&id) {
            return Ok(Err(reason.clone()));
        }
        let mut backoff = Duration::from_millis(200);
        let schema = loop {
            match self.registry.schema_by_id(id) {
                Ok(schema) => break schema,
                Err(e) if e.is_transient() => {
                    if self.shutdown.requested() {
                        return Err(RunError::Registry(e.to_string()));
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "schema lookup failed; retrying");
                    self.shutdown.sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    let reason = format!("unknown writer schema id {id}: {e}");
                    self.unusable.insert(id, reason.clone());
                    return Ok(Err(reason));
                }
            }
        };
        match instance.add_writer_schema(id, &schema) {
            Ok(()) => {
                self.known.insert(id);
                Ok(Ok(()))
            }
            Err(e) => {
                let reason = format!("writer schema {id} is unusable: {e}");
                self.unusable.insert(id, reason.clone());
                Ok(Err(reason))
            }
        }
    }
}
