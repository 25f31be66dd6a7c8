//! The registry's rules: ids, versions, soft and permanent deletes, configuration, and when
//! compatibility is enforced. HTTP is left to `api`, durability to `store`.
//!
//! All changes go through one mutex and are persisted before they become visible, so
//! concurrent registrations of the same schema get one id and one version, and a change the
//! store could not write is not applied at all.
//!
//! Behaviour worth knowing (all as Confluent does it):
//! - Ids are global: the same schema (see `schema` for "same") registered under two subjects
//!   has one id. Ids are never reused, even after a permanent delete.
//! - Registering a schema that is already a live version of the subject returns its id and
//!   creates nothing. If it only exists as a soft-deleted version, a new version is created
//!   with the same id.
//! - Soft-deleted versions are invisible to reads (unless `deleted=true` is asked for) and are
//!   not checked for compatibility, but their schemas stay readable by id so old records can
//!   still be decoded. A schema id disappears only when no version refers to it any more.
//! - Version numbers continue after soft deletes (max version ever + 1) and restart from 1
//!   only once a subject has been permanently deleted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use apache_avro::Schema;

use crate::compat::{self, CompatibilityLevel};
use crate::error::RegistryError;
use crate::schema::{self, ParsedSchema};
use crate::store::{State, Store, StoreError, StoredSchema, SubjectVersion};

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `latest` or `-1`: the highest live version.
    Latest,
    /// A version number, 1 or more.
    Number(u32),
}

impl VersionSpec {
    /// Parses a version path segment the way Confluent does; anything else is 42202.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Ok(Self::Latest);
        }
        match text.parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(Self::Number(n as u32)),
            _ => Err(RegistryError::InvalidVersion(text.to_string())),
        }
    }
}

/// A version of a subject, as returned by reads and lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The subject.
    pub subject: String,
    /// The version within the subject.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema text as first registered.
    pub schema: String,
}

/// A parsed stored schema, kept in memory for compatibility checks and identity lookups.
struct Cached {
    schema: Arc<Schema>,
    identity: String,
}

struct Inner {
    store: Store,
    state: State,
    by_id: HashMap<u32, Cached>,
    id_by_identity: HashMap<String, u32>,
}

/// The schema registry: state in memory, persisted to its data directory on every change.
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// Opens the registry stored in `dir`, creating an empty one if there is none.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let (store, state) = Store::open(dir)?;
        let mut inner = Inner {
            store,
            state,
            by_id: HashMap::new(),
            id_by_identity: HashMap::new(),
        };
        let stored: Vec<(u32, String)> = inner
            .state
            .schemas
            .iter()
            .map(|(id, s)| (*id, s.schema.clone()))
            .collect();
        for (id, text) in stored {
            match schema::parse(&text) {
                Ok(parsed) => inner.cache(id, parsed),
                Err(e) => {
                    tracing::warn!(id, error = %e, "stored schema no longer parses; it is served but not checked")
                }
            }
        }
        tracing::debug!(
            schemas = inner.state.schemas.len(),
            subjects = inner.state.subjects.len(),
            dir = %dir.display(),
            "registry state loaded"
        );
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Changes are made on a copy and swapped in whole, so a panic mid-request cannot leave
        // half-applied state behind; the poison flag carries no information.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `text` under `subject` (or finds it already there) and returns its id.
    pub fn register(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<u32, RegistryError> {
        schema::check_schema_type(schema_type)?;
        let parsed = schema::parse(text)?;
        let mut inner = self.lock();
        let versions = inner
            .state
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default();
        if let Some(existing) = versions
            .iter()
            .filter(|v| !v.deleted)
            .find(|v| inner.identity(v.id) == Some(parsed.identity.as_str()))
        {
            return Ok(existing.id);
        }

        let level = inner.level(subject);
        let messages = compat::check(level, &parsed.schema, &inner.live_schemas(&versions));
        if !messages.is_empty() {
            return Err(RegistryError::Incompatible(format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" (compatibility level {level}), details: [{}]",
                messages.join("; ")
            )));
        }

        let mut next = inner.state.clone();
        let id = match inner.id_by_identity.get(&parsed.identity) {
            Some(id) => *id,
            None => {
                let id = next.next_id;
                next.next_id += 1;
                next.schemas.insert(
                    id,
                    StoredSchema {
                        schema: text.to_string(),
                    },
                );
                id
            }
        };
        let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        next.subjects
            .entry(subject.to_string())
            .or_default()
            .push(SubjectVersion {
                version,
                id,
                deleted: false,
            });
        inner.commit(next)?;
        inner.cache(id, parsed);
        tracing::info!(subject, version, id, "registered schema");
        Ok(id)
    }

    /// Finds the version of `subject` whose schema is `text` (Confluent's `POST /subjects/{s}`).
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        schema::check_schema_type(schema_type)?;
        let parsed = schema::parse(text)?;
        let inner = self.lock();
        let versions = inner.visible(subject, deleted)?;
        let found = versions
            .iter()
            .rev()
            .find(|v| inner.identity(v.id) == Some(parsed.identity.as_str()))
            .ok_or(RegistryError::SchemaNotFound)?;
        Ok(inner.info(subject, found))
    }

    /// The schema text with this id, live or soft-deleted.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let inner = self.lock();
        inner
            .state
            .schemas
            .get(&id)
            .map(|s| s.schema.clone())
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// The (subject, version) pairs that use schema `id`.
    pub fn versions_of_id(
        &self,
        id: u32,
        deleted: bool,
    ) -> Result<Vec<(String, u32)>, RegistryError> {
        let inner = self.lock();
        if !inner.state.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaNotFound);
        }
        Ok(inner
            .state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id && (deleted || !v.deleted))
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect())
    }

    /// Subject names, optionally including those whose versions are all soft-deleted.
    pub fn subjects(&self, deleted: bool, prefix: &str) -> Vec<String> {
        let inner = self.lock();
        inner
            .state
            .subjects
            .iter()
            .filter(|(name, versions)| {
                name.starts_with(prefix) && versions.iter().any(|v| deleted || !v.deleted)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Version numbers of a subject.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let inner = self.lock();
        Ok(inner
            .visible(subject, deleted)?
            .iter()
            .map(|v| v.version)
            .collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        let inner = self.lock();
        let versions = inner.visible(subject, deleted)?;
        let found = find_version(&versions, spec)?;
        Ok(inner.info(subject, found))
    }

    /// Deletes a subject: soft by default (returns the versions it hid), or permanently after
    /// a soft delete (returns the versions it removed).
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut inner = self.lock();
        let versions = inner.visible(subject, true)?;
        let mut next = inner.state.clone();
        let removed: Vec<u32> = if permanent {
            if versions.iter().any(|v| !v.deleted) {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            next.subjects.remove(subject);
            next.subject_compatibility.remove(subject);
            collect_unused_schemas(&mut next);
            versions.iter().map(|v| v.version).collect()
        } else {
            let live: Vec<u32> = versions
                .iter()
                .filter(|v| !v.deleted)
                .map(|v| v.version)
                .collect();
            if live.is_empty() {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
            }
            for v in next.subjects.get_mut(subject).into_iter().flatten() {
                v.deleted = true;
            }
            live
        };
        inner.commit(next)?;
        tracing::info!(subject, permanent, versions = ?removed, "deleted subject");
        Ok(removed)
    }

    /// Deletes one version: soft by default, or permanently after a soft delete.
    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let mut inner = self.lock();
        let all = inner.visible(subject, true)?;
        let target = if permanent {
            find_version(&all, spec)?.clone()
        } else {
            let live: Vec<SubjectVersion> = all.iter().filter(|v| !v.deleted).cloned().collect();
            match spec {
                VersionSpec::Latest if live.is_empty() => {
                    return Err(RegistryError::SubjectNotFound(subject.to_string()))
                }
                VersionSpec::Latest => live[live.len() - 1].clone(),
                VersionSpec::Number(_) => find_version(&all, spec)?.clone(),
            }
        };
        match (permanent, target.deleted) {
            (false, true) => {
                return Err(RegistryError::VersionSoftDeleted(
                    subject.to_string(),
                    target.version,
                ))
            }
            (true, false) => {
                return Err(RegistryError::VersionNotSoftDeleted(
                    subject.to_string(),
                    target.version,
                ))
            }
            _ => {}
        }
        let mut next = inner.state.clone();
        let versions = next.subjects.entry(subject.to_string()).or_default();
        if permanent {
            versions.retain(|v| v.version != target.version);
            if versions.is_empty() {
                next.subjects.remove(subject);
            }
            collect_unused_schemas(&mut next);
        } else if let Some(v) = versions.iter_mut().find(|v| v.version == target.version) {
            v.deleted = true;
        }
        inner.commit(next)?;
        tracing::info!(
            subject,
            version = target.version,
            permanent,
            "deleted version"
        );
        Ok(target.version)
    }

    /// The global level (`subject` None), or a subject's own level; a subject without one is
    /// 40408 unless `default_to_global`.
    pub fn compatibility(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let inner = self.lock();
        let global = inner.state.global_compatibility;
        match subject {
            None => Ok(global),
            Some(s) => match inner.state.subject_compatibility.get(s) {
                Some(level) => Ok(*level),
                None if default_to_global => Ok(global),
                None => Err(RegistryError::SubjectConfigNotFound(s.to_string())),
            },
        }
    }

    /// Sets the global level or a subject's own level.
    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        match subject {
            None => next.global_compatibility = level,
            Some(s) => {
                next.subject_compatibility.insert(s.to_string(), level);
            }
        }
        inner.commit(next)?;
        tracing::info!(subject = subject.unwrap_or("(global)"), %level, "compatibility set");
        Ok(())
    }

    /// Removes a subject's own level (or resets the global one) and returns the old level.
    pub fn delete_compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        let old = match subject {
            None => std::mem::take(&mut next.global_compatibility),
            Some(s) => next
                .subject_compatibility
                .remove(s)
                .ok_or_else(|| RegistryError::SubjectConfigNotFound(s.to_string()))?,
        };
        inner.commit(next)?;
        Ok(old)
    }

    /// Tests `text` against one version (`Some`), or against the versions the subject's level
    /// selects (`None`), without registering it. Returns the reasons it is incompatible.
    pub fn test_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<Vec<String>, RegistryError> {
        schema::check_schema_type(schema_type)?;
        let parsed = schema::parse(text)?;
        let inner = self.lock();
        let level = inner.level(subject);
        let against = match spec {
            Some(spec) => {
                let versions = inner.visible(subject, false)?;
                vec![find_version(&versions, spec)?.clone()]
            }
            None => inner
                .state
                .subjects
                .get(subject)
                .cloned()
                .unwrap_or_default(),
        };
        Ok(compat::check(
            level,
            &parsed.schema,
            &inner.live_schemas(&against),
        ))
    }
}

impl Inner {
    fn commit(&mut self, next: State) -> Result<(), RegistryError> {
        self.store
            .save(&next)
            .map_err(|e| RegistryError::Store(error_chain(&e)))?;
        self.state = next;
        let live_ids = &self.state.schemas;
        self.by_id.retain(|id, _| live_ids.contains_key(id));
        self.id_by_identity
            .retain(|_, id| live_ids.contains_key(id));
        Ok(())
    }

    fn cache(&mut self, id: u32, parsed: ParsedSchema) {
        self.id_by_identity
            .entry(parsed.identity.clone())
            .or_insert(id);
        self.by_id.insert(
            id,
            Cached {
                schema: parsed.schema,
                identity: parsed.identity,
            },
        );
    }

    fn identity(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(|c| c.identity.as_str())
    }

    fn level(&self, subject: &str) -> CompatibilityLevel {
        self.state
            .subject_compatibility
            .get(subject)
            .copied()
            .unwrap_or(self.state.global_compatibility)
    }

    /// The subject's versions a request may see; none at all is 40401.
    fn visible(&self, subject: &str, deleted: bool) -> Result<Vec<SubjectVersion>, RegistryError> {
        let versions: Vec<SubjectVersion> = self
            .state
            .subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|v| deleted || !v.deleted)
            .cloned()
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(versions)
    }

    /// The live versions among `versions` with their parsed schemas, oldest first.
    fn live_schemas(&self, versions: &[SubjectVersion]) -> Vec<(u32, &Schema)> {
        versions
            .iter()
            .filter(|v| !v.deleted)
            .filter_map(|v| {
                self.by_id
                    .get(&v.id)
                    .map(|c| (v.version, c.schema.as_ref()))
            })
            .collect()
    }

    fn info(&self, subject: &str, version: &SubjectVersion) -> VersionInfo {
        VersionInfo {
            subject: subject.to_string(),
            version: version.version,
            id: version.id,
            schema: self
                .state
                .schemas
                .get(&version.id)
                .map(|s| s.schema.clone())
                .unwrap_or_default(),
        }
    }
}

/// The error and its causes on one line, for an HTTP error message.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn find_version(
    versions: &[SubjectVersion],
    spec: VersionSpec,
) -> Result<&SubjectVersion, RegistryError> {
    match spec {
        VersionSpec::Latest => versions.last(),
        VersionSpec::Number(n) => versions.iter().find(|v| v.version == n),
    }
    .ok_or_else(|| {
        RegistryError::VersionNotFound(match spec {
            VersionSpec::Latest => "latest".to_string(),
            VersionSpec::Number(n) => n.to_string(),
        })
    })
}

/// Drops schemas no version refers to any more (after a permanent delete).
fn collect_unused_schemas(state: &mut State) {
    let used: std::collections::HashSet<u32> =
        state.subjects.values().flatten().map(|v| v.id).collect();
    state.schemas.retain(|id, _| used.contains(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specs() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("3").unwrap(), VersionSpec::Number(3));
        for bad in ["0", "-2", "abc", "2147483648", ""] {
            assert_eq!(
                VersionSpec::parse(bad).unwrap_err().error_code(),
                42202,
                "{bad}"
            );
        }
    }
}
