//! Properties of the runner's batch handling, over generated batch shapes: all good, all
//! failing, mixed, single records, empty; every kind of failure (broken framing, tombstones,
//! unknown writer schemas, undecodable data, transform errors, panics); under every error
//! policy and both delivery modes. The plugin is a real stage compiled into the test and
//! driven through the same ABI object a loaded plugin is; no broker is needed.
//!
//! What must hold for every shape: nothing panics; every consumed record ends as exactly one
//! output or exactly one failure of the right kind; `fail` stops at the first failure and
//! names it; the batch commits, per partition, the offset after its last consumed record;
//! a partition revoked during the fill leaves the batch whole for the others (its records
//! neither reach the plugin nor are committed); and a batch leaves nothing behind for the
//! next one.

use super::batch::{Batch, Commit, Consumed, Delivery, WriterSchemas};
use super::failures::{FailureRouter, Route, RouterSettings};
use super::RunError;
use crate::policy::ErrorPolicy;
use plugin_api::{BoxError, Config, Emitter, Record, Stage, StageSpec};
use plugin_host::{RecordPosition, StageInstance};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const STAGE_ONE: &str = include_str!("../../../schemas/stage_one.json");
const STAGE_TWO: &str = include_str!("../../../schemas/stage_two.json");
/// The registry id the test's records are written with, and one it does not know.
const KNOWN_ID: u32 = 1;
const UNKNOWN_ID: u32 = 99;

#[derive(Deserialize)]
pub(super) struct Post {
    postid: String,
    title: String,
}

#[derive(Serialize)]
pub(super) struct Scored {
    postid: String,
    ppm: f32,
}

/// Emits one output per record; fails on title `error`, panics on title `panic`.
pub(super) struct Probe;

impl Stage for Probe {
    type Input = Post;
    type Output = Scored;

    fn spec() -> StageSpec {
        StageSpec::stage("probe", "0")
            .input("in", "g")
            .input_schema(STAGE_ONE)
            .output("out", 1, 1)
            .output_schema(STAGE_TWO)
    }

    fn new(_: &Config) -> Result<Self, BoxError> {
        Ok(Probe)
    }

    fn transform(
        &mut self,
        record: Record<'_, Post>,
        out: &mut Emitter<'_, Scored>,
    ) -> Result<(), BoxError> {
        match record.value.title.as_str() {
            "error" => Err("the transform refused it".into()),
            "panic" => panic!("the transform panicked"),
            _ => {
                out.emit(Scored {
                    postid: record.value.postid,
                    ppm: 1.0,
                })?;
                Ok(())
            }
        }
    }
}

/// A registry that knows one schema.
pub(super) struct OneSchema;

impl WriterSchemas for OneSchema {
    fn ensure(
        &mut self,
        id: u32,
        instance: &mut StageInstance,
    ) -> Result<Result<(), String>, RunError> {
        if id != KNOWN_ID {
            return Ok(Err(format!("unknown writer schema id {id}")));
        }
        Ok(instance.add_writer_schema(id, STAGE_ONE).map_err(|e| e.0))
    }
}

/// What one consumed record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Good,
    TransformError,
    Panic,
    BrokenFraming,
    Tombstone,
    UnknownSchema,
    BadDatum,
}

impl Shape {
    /// The failure kind it must end as, `None` for an output.
    fn failure_kind(self) -> Option<&'static str> {
        match self {
            Shape::Good => None,
            Shape::TransformError => Some("transform"),
            Shape::Panic => Some("panic"),
            _ => Some("decode"),
        }
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        4 => Just(Shape::Good),
        1 => Just(Shape::TransformError),
        1 => Just(Shape::Panic),
        1 => Just(Shape::BrokenFraming),
        1 => Just(Shape::Tombstone),
        1 => Just(Shape::UnknownSchema),
        1 => Just(Shape::BadDatum),
    ]
}

/// A batch of records, each a shape on a partition (0..4).
fn batch_shape() -> impl Strategy<Value = Vec<(Shape, i32)>> {
    prop_oneof![
        Just(vec![]),
        (shape(), 0..4).prop_map(|r| vec![r]),
        prop::collection::vec((Just(Shape::Good), 0..4), 1..40),
        prop::collection::vec(
            (shape().prop_filter("failing", |s| *s != Shape::Good), 0..4),
            1..40
        ),
        prop::collection::vec((shape(), 0..4), 0..60),
    ]
}

fn policy() -> impl Strategy<Value = ErrorPolicy> {
    prop_oneof![
        Just(ErrorPolicy::Fail),
        Just(ErrorPolicy::Skip),
        Just(ErrorPolicy::DeadLetter)
    ]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![Just(Delivery::AtLeastOnce), Just(Delivery::ExactlyOnce)]
}

/// The Confluent-framed value of a record of `shape` number `n`.
fn value_of(shape: Shape, n: usize) -> Option<Vec<u8>> {
    let title = match shape {
        Shape::TransformError => "error",
        Shape::Panic => "panic",
        _ => "fine",
    };
    let framed = confluent::framing::frame;
    let datum = datum_with_title(title, n);
    match shape {
        Shape::Tombstone => None,
        Shape::BrokenFraming => Some(b"not avro".to_vec()),
        Shape::UnknownSchema => Some(framed(UNKNOWN_ID, &datum)),
        Shape::BadDatum => Some(framed(KNOWN_ID, &[0xff, 0xff, 0xff])),
        _ => Some(framed(KNOWN_ID, &datum)),
    }
}

/// A stage-one record `p<n>` with `title`, framed with the known writer schema id: the probe
/// emits it (`fine`), refuses it (`error`) or panics on it (`panic`).
pub(super) fn value_with_title(title: &str, n: usize) -> Vec<u8> {
    confluent::framing::frame(KNOWN_ID, &datum_with_title(title, n))
}

fn datum_with_title(title: &str, n: usize) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(STAGE_ONE).expect("the schema parses");
    let record = apache_avro::types::Value::Record(vec![
        (
            "postid".into(),
            apache_avro::types::Value::Union(0, Box::new(format!("p{n}").into())),
        ),
        (
            "title".into(),
            apache_avro::types::Value::Union(0, Box::new(title.into())),
        ),
    ]);
    apache_avro::to_avro_datum(&schema, record).expect("the record encodes")
}

fn router(policy: ErrorPolicy) -> FailureRouter {
    FailureRouter::new(RouterSettings {
        policy,
        // A window no generated batch fills: the breaker has tests of its own.
        failure_window: 10_000,
        max_failure_ratio: 1.0,
        input_topic: "in".into(),
        stage_name: "probe".into(),
        plugin_version: "0".into(),
    })
}

/// Runs one batch of `shapes` through `batch` and checks every property.
fn check_batch(
    batch: &mut Batch,
    instance: &mut StageInstance,
    shapes: &[(Shape, i32)],
    policy: ErrorPolicy,
    delivery: Delivery,
    first_offset: i64,
    revoked: Option<i32>,
) -> Result<(), TestCaseError> {
    batch.clear();
    let values: Vec<Option<Vec<u8>>> = shapes
        .iter()
        .enumerate()
        .map(|(n, (shape, _))| value_of(*shape, n))
        .collect();
    let keys: Vec<String> = (0..shapes.len()).map(|n| format!("k{n}")).collect();
    for (n, (_, partition)) in shapes.iter().enumerate() {
        let consumed = Consumed {
            key: Some(keys[n].as_bytes()),
            value: values[n].as_deref(),
            position: RecordPosition {
                partition: *partition,
                offset: first_offset + n as i64,
                timestamp_ms: 0,
            },
            // The revoked partition's records were read in an epoch that is over.
            epoch: if Some(*partition) == revoked { 0 } else { 1 },
        };
        batch
            .add(consumed, || None, &mut OneSchema, instance)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    batch.retain_current(|_, epoch| epoch == 1);
    // What is left: the records of the partitions still held, by their number in `shapes`.
    let kept: Vec<usize> = (0..shapes.len())
        .filter(|&n| Some(shapes[n].1) != revoked)
        .collect();
    batch
        .run_plugin(instance)
        .map_err(|e| TestCaseError::fail(format!("the call failed as a whole: {e}")))?;
    prop_assert_eq!(batch.len(), kept.len());

    // Every record is one output (in order, with its key) or one failure of its kind.
    let outputs: Vec<_> = batch.outputs().collect();
    let good: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|&n| shapes[n].0 == Shape::Good)
        .collect();
    prop_assert_eq!(outputs.len(), good.len());
    for (output, &n) in outputs.iter().zip(&good) {
        prop_assert_eq!(output.key, Some(keys[n].as_bytes()));
        prop_assert_eq!(
            batch.position(output.input_index).offset,
            first_offset + n as i64
        );
    }
    let failed: Vec<(usize, &str)> = batch
        .failures()
        .iter()
        .map(|f| (f.consumed_index, f.kind))
        .collect();
    let expected: Vec<(usize, &str)> = kept
        .iter()
        .enumerate()
        .filter_map(|(index, &n)| shapes[n].0.failure_kind().map(|kind| (index, kind)))
        .collect();
    prop_assert_eq!(&failed, &expected);
    for failure in batch.failures() {
        prop_assert_eq!(
            failure.position.offset,
            first_offset + kept[failure.consumed_index] as i64
        );
    }

    // The policy: fail names the first failure; skip and dead-letter route them all.
    let mut router = router(policy);
    let routed = router.route(batch.len(), batch.failures());
    match (policy, expected.first()) {
        (ErrorPolicy::Fail, Some(&(first, _))) => {
            let err = routed.expect_err("fail stops");
            let n = kept[first];
            let at = format!("in[{}]@{}", shapes[n].1, first_offset + n as i64);
            prop_assert!(err.to_string().contains(&at), "{} lacks {}", err, at);
        }
        _ => {
            let route = routed.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                route,
                if policy == ErrorPolicy::DeadLetter {
                    Route::DeadLetter
                } else {
                    Route::Skip
                }
            );
            if route == Route::DeadLetter {
                for failure in batch.failures() {
                    let original = batch.original(failure);
                    prop_assert!(original.is_some(), "the original of a dead letter is kept");
                    let n = kept[failure.consumed_index];
                    prop_assert_eq!(
                        original.and_then(|o| o.value.as_deref()),
                        values[n].as_deref()
                    );
                }
            }
            let settlement = batch.settlement(route, delivery);
            prop_assert_eq!(settlement.outputs, good.len());
            prop_assert_eq!(settlement.failures.len(), expected.len());
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            for &n in &kept {
                next.insert(shapes[n].1, first_offset + n as i64 + 1);
            }
            let offsets = match (settlement.commit, delivery) {
                (Commit::AfterAcknowledgement(o), Delivery::AtLeastOnce) => o,
                (Commit::InTransaction(o), Delivery::ExactlyOnce) => o,
                (commit, delivery) => {
                    return Err(TestCaseError::fail(format!(
                        "{commit:?} under {delivery:?}"
                    )))
                }
            };
            prop_assert_eq!(offsets, &next);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_record_of_every_batch_shape_is_accounted_for(
        first in batch_shape(),
        second in batch_shape(),
        policy in policy(),
        delivery in delivery(),
        revoked in prop_oneof![3 => Just(None), 1 => (0..4).prop_map(Some)],
    ) {
        let mut instance =
            plugin_api::linked::stage::<Probe>(&serde_json::json!({})).expect("the stage builds");
        // One batch reused for two, as the loop does: the second must not see the first.
        let mut batch = Batch::new(false, policy == ErrorPolicy::DeadLetter);
        // A partition revoked while the first batch filled: its records leave the batch
        // before the plugin sees them, and the batch accounts for the rest exactly.
        check_batch(&mut batch, &mut instance, &first, policy, delivery, 0, revoked)?;
        check_batch(&mut batch, &mut instance, &second, policy, delivery, 1000, None)?;
    }
}

#[test]
fn a_dead_letter_batch_keeps_the_originals_of_its_failures() {
    let mut instance = plugin_api::linked::stage::<Probe>(&serde_json::json!({})).unwrap();
    let mut batch = Batch::new(false, true);
    let bad = b"not avro".to_vec();
    batch
        .add(
            Consumed {
                key: Some(b"k"),
                value: Some(&bad),
                position: RecordPosition {
                    partition: 0,
                    offset: 5,
                    timestamp_ms: 0,
                },
                epoch: 0,
            },
            || None,
            &mut OneSchema,
            &mut instance,
        )
        .unwrap();
    batch.run_plugin(&mut instance).unwrap();
    let failure = &batch.failures()[0];
    let original = batch.original(failure).expect("kept");
    assert_eq!(original.value.as_deref(), Some(&bad[..]));
    assert_eq!(original.key.as_deref(), Some(&b"k"[..]));
}
