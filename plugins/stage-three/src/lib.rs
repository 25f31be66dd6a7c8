//! Stage three of the example pipeline: reads `test_stage_two_topic` in group `stage_three_g1`
//! and produces `{postid, ppm: 200.0}` to `test_stage_three_topic`. It uses the dynamic,
//! `GenericRecord` API, to show that side of plugin-api.

use plugin_api::apache_avro::types::Value;
use plugin_api::{BoxError, Config, Emitter, GenericRecord, Record, Stage, StageSpec};

/// The stage.
pub struct StageThree;

impl Stage for StageThree {
    type Input = GenericRecord;
    type Output = GenericRecord;

    fn spec() -> StageSpec {
        StageSpec::stage("stage-three", env!("CARGO_PKG_VERSION"))
            .input("test_stage_two_topic", "stage_three_g1")
            .output("test_stage_three_topic", 2, 1)
            .output_schema(include_str!("../../../schemas/stage_three.json"))
    }

    fn new(_config: &Config) -> Result<Self, BoxError> {
        Ok(StageThree)
    }

    fn transform(
        &mut self,
        record: Record<'_, GenericRecord>,
        out: &mut Emitter<'_, GenericRecord>,
    ) -> Result<(), BoxError> {
        let postid = record
            .value
            .field("postid")
            .cloned()
            .ok_or("input record has no postid")?;
        out.emit(GenericRecord(Value::Record(vec![
            ("postid".into(), postid),
            ("ppm".into(), Value::Float(200.0)),
        ])))?;
        Ok(())
    }
}

plugin_api::export_stage!(StageThree);
