//! Stage two of the example pipeline: reads `test_stage_one_topic` in group `stage_two_g1` and
//! produces `{postid, ppm}` to `test_stage_two_topic`, with `ppm` 100.0 (config `ppm`).

use plugin_api::{BoxError, Config, Emitter, Record, Stage, StageSpec};
use serde::{Deserialize, Serialize};

/// A value of `test_stage_one_topic`, as this stage reads it: only the field the transform
/// uses. The decoder skips the others (`title`) in the bytes without allocating them.
#[derive(Debug, Deserialize)]
pub struct Post {
    /// The post id.
    pub postid: String,
}

/// A value of `test_stage_two_topic`.
#[derive(Debug, Serialize)]
pub struct Scored {
    /// The post id.
    pub postid: String,
    /// The score.
    pub ppm: f32,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StageTwoConfig {
    ppm: f32,
}

impl Default for StageTwoConfig {
    fn default() -> Self {
        StageTwoConfig { ppm: 100.0 }
    }
}

/// The stage.
pub struct StageTwo {
    ppm: f32,
}

impl Stage for StageTwo {
    type Input = Post;
    type Output = Scored;

    fn spec() -> StageSpec {
        StageSpec::stage("stage-two", env!("CARGO_PKG_VERSION"))
            .input("test_stage_one_topic", "stage_two_g1")
            .input_schema(include_str!("../../../schemas/stage_one.json"))
            .output("test_stage_two_topic", 2, 1)
            .output_schema(include_str!("../../../schemas/stage_two.json"))
    }

    fn new(config: &Config) -> Result<Self, BoxError> {
        let config: StageTwoConfig = config.parse()?;
        Ok(StageTwo { ppm: config.ppm })
    }

    fn transform(
        &mut self,
        record: Record<'_, Post>,
        out: &mut Emitter<'_, Scored>,
    ) -> Result<(), BoxError> {
        out.emit(Scored {
            postid: record.value.postid,
            ppm: self.ppm,
        })?;
        Ok(())
    }
}

plugin_api::export_stage!(StageTwo);
