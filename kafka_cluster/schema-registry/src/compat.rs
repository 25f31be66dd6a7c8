//! Compatibility levels and the Avro schema-resolution check behind them.
//!
//! The check is written here rather than taken from
//! `apache_avro::schema_compatibility::SchemaCompatibility::can_read` because that one departs
//! from the Avro specification (and from Java's `SchemaCompatibility`, which Confluent uses) in
//! cases users hit: a writer union of records against a reader record is rejected outright,
//! reader enum defaults and named-type aliases are ignored, logical types are compared by their
//! logical kind instead of their underlying type, and its errors do not say which field broke.
//! This module follows Java's `ReaderWriterCompatibilityChecker` rule for rule and reports each
//! incompatibility with Confluent's error type names and a JSON-pointer-like path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// A subject's (or the global) compatibility rule, with Confluent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema can read data written with the latest live version.
    #[default]
    Backward,
    /// The new schema can read data written with every live version.
    BackwardTransitive,
    /// The latest live version can read data written with the new schema.
    Forward,
    /// Every live version can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest live version.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Confluent's name for the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema is checked against every live version, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = RegistryError;

    /// Accepts Confluent's names in any letter case, as Confluent does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let level = match s.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel(s.to_string())),
        };
        Ok(level)
    }
}

/// One reason a reader cannot read a writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Java/Confluent's name for the kind of break, e.g. `READER_FIELD_MISSING_DEFAULT_VALUE`.
    pub error_type: &'static str,
    /// Where in the reader schema it breaks, e.g. `/fields/1/type`.
    pub path: String,
    /// A sentence naming the field or type at fault.
    pub description: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{errorType:'{}', description:'{}', path:'{}'}}",
            self.error_type, self.description, self.path
        )
    }
}

/// Checks `new` against `existing` live versions (oldest first) under `level`, returning one
/// message per break, labelled with the version it was found against; empty means compatible.
pub fn check(level: CompatibilityLevel, new: &Schema, existing: &[(u32, &Schema)]) -> Vec<String> {
    let against: &[(u32, &Schema)] = if level.is_transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    for (version, old) in against.iter().rev() {
        if level.checks_backward() {
            for i in can_read(old, new, "new", "old") {
                messages.push(format!("{i} (backward check against version {version})"));
            }
        }
        if level.checks_forward() {
            for i in can_read(new, old, "old", "new") {
                messages.push(format!("{i} (forward check against version {version})"));
            }
        }
    }
    messages
}

/// Lists why data written with `writer` cannot be read with `reader` (empty when it can).
///
/// `reader_label` and `writer_label` ("new"/"old") only word the messages.
pub fn can_read(
    writer: &Schema,
    reader: &Schema,
    reader_label: &'static str,
    writer_label: &'static str,
) -> Vec<Incompatibility> {
    let (Ok(w_names), Ok(r_names)) = (
        ResolvedSchema::try_from(writer),
        ResolvedSchema::try_from(reader),
    ) else {
        return vec![Incompatibility {
            error_type: "TYPE_MISMATCH",
            path: "/".into(),
            description: "a named type reference cannot be resolved".into(),
        }];
    };
    let mut checker = Checker {
        writer_names: w_names.get_names(),
        reader_names: r_names.get_names(),
        in_progress: HashSet::new(),
        reader_label,
        writer_label,
        found: Vec::new(),
    };
    checker.check(writer, reader, String::new());
    checker.found
}

/// The physical type of a schema: logical types are read and written as their underlying
/// type, so compatibility is decided on that type (as Java does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed,
    Enum,
    Record,
    Array,
    Map,
    Union,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Bytes => "bytes",
            Kind::String => "string",
            Kind::Fixed => "fixed",
            Kind::Enum => "enum",
            Kind::Record => "record",
            Kind::Array => "array",
            Kind::Map => "map",
            Kind::Union => "union",
        }
    }
}

struct Checker<'a, 's> {
    writer_names: &'a HashMap<Name, &'s Schema>,
    reader_names: &'a HashMap<Name, &'s Schema>,
    /// Named (writer, reader) pairs under check, so recursive types terminate (assumed
    /// compatible while in progress, as Java's memo does).
    in_progress: HashSet<(String, String)>,
    reader_label: &'static str,
    writer_label: &'static str,
    found: Vec<Incompatibility>,
}

impl<'s> Checker<'_, 's> {
    /// Follows named-type references, and decimals to the type that carries their bytes.
    fn resolve(&self, schema: &'s Schema, names: &HashMap<Name, &'s Schema>) -> &'s Schema {
        let mut current = schema;
        loop {
            match current {
                Schema::Ref { name } => match names
                    .get(name)
                    .or_else(|| names.iter().find(|(n, _)| n.name == name.name).map(|e| e.1))
                {
                    Some(target) => current = target,
                    None => return current,
                },
                Schema::Decimal(d) => current = &d.inner,
                _ => return current,
            }
        }
    }

    fn kind(schema: &Schema) -> Kind {
        match schema {
            Schema::Null => Kind::Null,
            Schema::Boolean => Kind::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Kind::Long,
            Schema::Float => Kind::Float,
            Schema::Double => Kind::Double,
            Schema::Bytes | Schema::BigDecimal | Schema::Decimal(_) => Kind::Bytes,
            Schema::String | Schema::Uuid => Kind::String,
            Schema::Fixed(_) | Schema::Duration => Kind::Fixed,
            Schema::Enum(_) => Kind::Enum,
            Schema::Record(_) => Kind::Record,
            Schema::Array(_) => Kind::Array,
            Schema::Map(_) => Kind::Map,
            Schema::Union(_) => Kind::Union,
            // An unresolvable reference: compare by name only.
            Schema::Ref { .. } => Kind::Record,
        }
    }

    fn report(&mut self, error_type: &'static str, path: &str, description: String) {
        self.found.push(Incompatibility {
            error_type,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            description,
        });
    }

    /// Adds to `found` every reason `reader` cannot read `writer`'s data; `path` locates
    /// `reader` within the top-level reader schema.
    fn check(&mut self, writer: &'s Schema, reader: &'s Schema, path: String) {
        let writer = self.resolve(writer, self.writer_names);
        let reader = self.resolve(reader, self.reader_names);
        let (w_kind, r_kind) = (Self::kind(writer), Self::kind(reader));

        if w_kind == r_kind {
            match (writer, reader) {
                (Schema::Array(w), Schema::Array(r)) => {
                    self.check(&w.items, &r.items, format!("{path}/items"))
                }
                (Schema::Map(w), Schema::Map(r)) => {
                    self.check(&w.types, &r.types, format!("{path}/values"))
                }
                (Schema::Union(w), Schema::Union(_)) => {
                    for (i, branch) in w.variants().iter().enumerate() {
                        if !self.readable(branch, reader) {
                            let branch = self.resolve(branch, self.writer_names);
                            self.report(
                                "MISSING_UNION_BRANCH",
                                &path,
                                format!(
                                    "The {} schema is missing a type inside a union field at path '{}' in the {} schema: branch {i} ({})",
                                    self.reader_label,
                                    display_path(&path),
                                    self.writer_label,
                                    type_name(branch),
                                ),
                            );
                        }
                    }
                }
                (Schema::Record(_), Schema::Record(_)) => self.check_record(writer, reader, path),
                (Schema::Enum(w), Schema::Enum(r)) => {
                    if !names_match(&w.name, &r.name, r.aliases.as_deref()) {
                        self.name_mismatch(&w.name, &r.name, &path);
                    }
                    if r.default.is_none() {
                        let at = format!("{path}/symbols");
                        for symbol in w.symbols.iter().filter(|s| !r.symbols.contains(s)) {
                            self.report(
                                "MISSING_ENUM_SYMBOLS",
                                &at,
                                format!(
                                    "The {} schema is missing enum symbol '{symbol}' at path '{at}' in the {} schema",
                                    self.reader_label,
                                    self.writer_label
                                ),
                            );
                        }
                    }
                }
                (Schema::Fixed(w), Schema::Fixed(r)) => {
                    if !names_match(&w.name, &r.name, r.aliases.as_deref()) {
                        self.name_mismatch(&w.name, &r.name, &path);
                    }
                    if w.size != r.size {
                        let at = format!("{path}/size");
                        self.report(
                            "FIXED_SIZE_MISMATCH",
                            &at,
                            format!(
                                "The size of FIXED type field at path '{at}' in the {} schema does not match with the {} schema: expected {}, found {}",
                                self.reader_label,
                                self.writer_label,
                                w.size,
                                r.size
                            ),
                        );
                    }
                }
                // Primitives (and logical types over them), and Duration against a fixed.
                _ => {}
            }
            return;
        }

        // A writer union is readable when each of its branches is.
        if let Schema::Union(w) = writer {
            for branch in w.variants() {
                self.check(branch, reader, path.clone());
            }
            return;
        }

        let promoted = matches!(
            (w_kind, r_kind),
            (Kind::Int, Kind::Long)
                | (Kind::Int | Kind::Long, Kind::Float)
                | (Kind::Int | Kind::Long | Kind::Float, Kind::Double)
                | (Kind::String, Kind::Bytes)
                | (Kind::Bytes, Kind::String)
        );
        if promoted {
            return;
        }
        if let Schema::Union(r) = reader {
            if r.variants().iter().any(|b| self.readable(writer, b)) {
                return;
            }
            self.report(
                "MISSING_UNION_BRANCH",
                &path,
                format!(
                    "The {} schema is missing a type inside a union field at path '{}' in the {} schema: {}",
                    self.reader_label,
                    display_path(&path),
                    self.writer_label,
                    type_name(writer)
                ),
            );
            return;
        }
        self.report(
            "TYPE_MISMATCH",
            &path,
            format!(
                "The type (path '{}') of a field in the {} schema does not match with the {} schema: {} cannot read {}",
                display_path(&path),
                self.reader_label,
                self.writer_label,
                type_name(reader),
                type_name(writer)
            ),
        );
    }

    /// Whether `reader` can read `writer` without recording anything.
    fn readable(&mut self, writer: &'s Schema, reader: &'s Schema) -> bool {
        let before = self.found.len();
        self.check(writer, reader, String::new());
        let ok = self.found.len() == before;
        self.found.truncate(before);
        ok
    }

    fn name_mismatch(&mut self, writer: &Name, reader: &Name, path: &str) {
        let at = format!("{path}/name");
        self.report(
            "NAME_MISMATCH",
            &at,
            format!(
                "The name of the schema at path '{at}' has changed from '{}' in the {} schema to '{}' in the {} schema",
                writer.fullname(None),
                self.writer_label,
                reader.fullname(None),
                self.reader_label
            ),
        );
    }

    fn check_record(&mut self, writer: &'s Schema, reader: &'s Schema, path: String) {
        let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else {
            return;
        };
        if !names_match(&w.name, &r.name, r.aliases.as_deref()) {
            self.name_mismatch(&w.name, &r.name, &path);
            return;
        }
        let key = (w.name.fullname(None), r.name.fullname(None));
        if !self.in_progress.insert(key.clone()) {
            return;
        }
        for (i, field) in r.fields.iter().enumerate() {
            let field_path = format!("{path}/fields/{i}");
            // The field by its own name first, then by one of its aliases (Avro's rule).
            let writer_field = w
                .fields
                .iter()
                .find(|wf| wf.name == field.name)
                .or_else(|| {
                    let aliases = field.aliases.as_deref().unwrap_or_default();
                    w.fields.iter().find(|wf| aliases.contains(&wf.name))
                });
            match writer_field {
                Some(wf) => self.check(&wf.schema, &field.schema, format!("{field_path}/type")),
                None if field.default.is_none() => self.report(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    &field_path,
                    format!(
                        "The field '{}' at path '{}' in the {} schema has no default value and is missing in the {} schema",
                        field.name,
                        display_path(&field_path),
                        self.reader_label,
                        self.writer_label
                    ),
                ),
                None => {}
            }
        }
        self.in_progress.remove(&key);
    }
}

/// Avro's name rule (as Java applies it): unqualified names match, or a reader alias names
/// the writer.
fn names_match(
    writer: &Name,
    reader: &Name,
    reader_aliases: Option<&[apache_avro::schema::Alias]>,
) -> bool {
    writer.name == reader.name
        || reader_aliases.is_some_and(|aliases| {
            aliases.iter().any(|a| {
                let alias = a.fullname(reader.namespace.clone());
                alias == writer.fullname(None) || alias.rsplit('.').next() == Some(&writer.name)
            })
        })
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        other => Checker::kind(other).name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    fn record(fields: &str) -> Schema {
        parse(&format!(
            r#"{{"type":"record","name":"r","fields":[{fields}]}}"#
        ))
    }

    fn reads(writer: &Schema, reader: &Schema) -> bool {
        can_read(writer, reader, "new", "old").is_empty()
    }

    #[test]
    fn level_names_round_trip() {
        for name in [
            "NONE",
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ] {
            assert_eq!(name.parse::<CompatibilityLevel>().unwrap().as_str(), name);
        }
        assert_eq!(
            "full".parse::<CompatibilityLevel>().unwrap(),
            CompatibilityLevel::Full
        );
        assert_eq!(
            "SIDEWAYS"
                .parse::<CompatibilityLevel>()
                .unwrap_err()
                .error_code(),
            42203
        );
    }

    #[test]
    fn added_field_needs_default_to_read_old_data() {
        let old = record(r#"{"name":"a","type":"string"}"#);
        let with_default =
            record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":1}"#);
        let without_default = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(reads(&old, &with_default));
        let found = can_read(&old, &without_default, "new", "old");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].error_type, "READER_FIELD_MISSING_DEFAULT_VALUE");
        assert!(found[0].description.contains("'b'"));
        assert_eq!(found[0].path, "/fields/1");
    }

    #[test]
    fn removed_field_is_backward_compatible_but_not_forward_without_default() {
        let old = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        let new = record(r#"{"name":"a","type":"string"}"#);
        assert!(reads(&old, &new));
        assert!(!reads(&new, &old));
    }

    #[test]
    fn promotions() {
        let int = record(r#"{"name":"a","type":"int"}"#);
        let long = record(r#"{"name":"a","type":"long"}"#);
        let double = record(r#"{"name":"a","type":"double"}"#);
        let string = record(r#"{"name":"a","type":"string"}"#);
        let bytes = record(r#"{"name":"a","type":"bytes"}"#);
        assert!(reads(&int, &long));
        assert!(reads(&int, &double));
        assert!(reads(&long, &double));
        assert!(!reads(&long, &int));
        assert!(reads(&string, &bytes));
        assert!(reads(&bytes, &string));
        assert!(!reads(&string, &int));
    }

    #[test]
    fn unions() {
        let opt = record(r#"{"name":"a","type":["null","string"],"default":null}"#);
        let plain = record(r#"{"name":"a","type":"string"}"#);
        let single = record(r#"{"name":"a","type":["string"],"default":"x"}"#);
        // Widening to a union reads old data; narrowing cannot read the null branch.
        assert!(reads(&plain, &opt));
        assert!(!reads(&opt, &plain));
        // A single-branch union is interchangeable with its branch.
        assert!(reads(&single, &plain));
        assert!(reads(&plain, &single));
        let found = can_read(&opt, &plain, "new", "old");
        assert_eq!(found[0].error_type, "TYPE_MISMATCH");
    }

    #[test]
    fn writer_union_of_records_against_reader_record() {
        let inner = r#"{"type":"record","name":"inner","fields":[{"name":"x","type":"int"}]}"#;
        let writer = record(&format!(r#"{{"name":"a","type":[{inner}]}}"#));
        let reader = record(&format!(r#"{{"name":"a","type":{inner}}}"#));
        assert!(reads(&writer, &reader));
        assert!(reads(&reader, &writer));
    }

    #[test]
    fn enums_and_fixed() {
        let e2 = parse(r#"{"type":"enum","name":"e","symbols":["A","B"]}"#);
        let e3 = parse(r#"{"type":"enum","name":"e","symbols":["A","B","C"]}"#);
        let e3_default = parse(r#"{"type":"enum","name":"e","symbols":["A","B"],"default":"A"}"#);
        assert!(reads(&e2, &e3));
        assert!(!reads(&e3, &e2));
        assert!(reads(&e3, &e3_default));
        let f4 = parse(r#"{"type":"fixed","name":"f","size":4}"#);
        let f8 = parse(r#"{"type":"fixed","name":"f","size":8}"#);
        assert_eq!(
            can_read(&f4, &f8, "new", "old")[0].error_type,
            "FIXED_SIZE_MISMATCH"
        );
    }

    #[test]
    fn record_rename_needs_alias() {
        let a = parse(r#"{"type":"record","name":"a","fields":[]}"#);
        let b = parse(r#"{"type":"record","name":"b","fields":[]}"#);
        let b_alias = parse(r#"{"type":"record","name":"b","aliases":["a"],"fields":[]}"#);
        assert_eq!(
            can_read(&a, &b, "new", "old")[0].error_type,
            "NAME_MISMATCH"
        );
        assert!(reads(&a, &b_alias));
    }

    #[test]
    fn field_rename_needs_alias() {
        let old = record(r#"{"name":"a","type":"int"}"#);
        let renamed = record(r#"{"name":"b","type":"int"}"#);
        let aliased = record(r#"{"name":"b","type":"int","aliases":["a"]}"#);
        assert!(!reads(&old, &renamed));
        assert!(reads(&old, &aliased));
    }

    #[test]
    fn recursive_types_terminate() {
        let list = parse(
            r#"{"type":"record","name":"node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","node"],"default":null}]}"#,
        );
        assert!(reads(&list, &list));
    }

    #[test]
    fn logical_types_compare_by_underlying_type() {
        let date = record(r#"{"name":"a","type":{"type":"int","logicalType":"date"}}"#);
        let int = record(r#"{"name":"a","type":"int"}"#);
        assert!(reads(&date, &int));
        assert!(reads(&int, &date));
    }

    #[test]
    fn levels_pick_direction_and_versions() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        let no_default = record(r#"{"name":"a","type":"string"},{"name":"c","type":"int"}"#);
        let existing = [(1, &v1), (2, &v2)];
        assert!(check(CompatibilityLevel::Backward, &v2, &existing[..1]).is_empty());
        assert!(!check(CompatibilityLevel::Backward, &no_default, &existing).is_empty());
        assert!(check(CompatibilityLevel::Forward, &no_default, &existing).is_empty());
        assert!(!check(CompatibilityLevel::Full, &no_default, &existing).is_empty());
        assert!(check(CompatibilityLevel::None, &no_default, &existing).is_empty());
        // v1 lacks b: dropping a (keeping b) is forward-compatible with v2 only.
        let only_b = record(r#"{"name":"b","type":"int","default":0}"#);
        assert!(check(CompatibilityLevel::Forward, &only_b, &existing).len() == 1);
    }
}
