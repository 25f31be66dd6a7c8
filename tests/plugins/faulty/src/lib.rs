//! A stage that fails on purpose, for the tests of every way a plugin can go wrong. It reads
//! the example's stage-one records and writes stage-two records, like stage two, except where
//! its config says to fail.
//!
//! Config: `fail` = "none" | "constructor_error" | "constructor_panic" | "transform_error" |
//! "transform_panic" | "bad_output" | "hang"; `every` = fail on every Nth record (default 1);
//! `ppm` = the value written (default 100.0); `slow_ms` = sleep this long per record (to make
//! a stream last long enough to kill a process in the middle of it).

use plugin_api::{BoxError, Config, Emitter, Record, Stage, StageSpec};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Fault {
    #[default]
    None,
    ConstructorError,
    ConstructorPanic,
    TransformError,
    TransformPanic,
    BadOutput,
    Hang,
}

#[derive(Deserialize)]
#[serde(default)]
struct FaultConfig {
    fail: Fault,
    every: u64,
    ppm: f32,
    slow_ms: u64,
    /// A wrong result, not a failure: `ppm + 1` for every post whose number is a multiple
    /// of this (0: never), as a new version with a bug would compute.
    off_every: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            fail: Fault::None,
            every: 1,
            ppm: 100.0,
            slow_ms: 0,
            off_every: 0,
        }
    }
}

#[derive(Deserialize)]
struct Post {
    postid: String,
}

/// What the stage emits: either a well-formed stage-two record or, for `bad_output`, a record
/// whose `ppm` is a string, which the output schema refuses.
#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Scored { postid: String, ppm: f32 },
    Wrong { postid: String, ppm: String },
}

struct Faulty {
    config: FaultConfig,
    seen: u64,
}

impl Stage for Faulty {
    type Input = Post;
    type Output = Output;

    fn spec() -> StageSpec {
        StageSpec::stage("faulty", env!("CARGO_PKG_VERSION"))
            .input("faulty_in", "faulty_g1")
            .output("faulty_out", 1, 1)
            .output_schema(include_str!("../../../../schemas/stage_two.json"))
    }

    fn new(config: &Config) -> Result<Self, BoxError> {
        let config: FaultConfig = config.parse()?;
        match config.fail {
            Fault::ConstructorError => return Err("refusing to start, as configured".into()),
            Fault::ConstructorPanic => panic!("constructor panics, as configured"),
            _ => {}
        }
        Ok(Faulty { config, seen: 0 })
    }

    fn transform(
        &mut self,
        record: Record<'_, Post>,
        out: &mut Emitter<'_, Output>,
    ) -> Result<(), BoxError> {
        self.seen += 1;
        if self.config.slow_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.config.slow_ms));
        }
        let postid = record.value.postid;
        if self.seen.is_multiple_of(self.config.every.max(1)) {
            match self.config.fail {
                Fault::TransformError => return Err(format!("cannot score {postid}").into()),
                Fault::TransformPanic => panic!("transform panics on {postid}"),
                Fault::BadOutput => {
                    out.emit(Output::Wrong {
                        postid,
                        ppm: "lots".into(),
                    })?;
                    return Ok(());
                }
                Fault::Hang => loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                },
                _ => {}
            }
        }
        let number = postid
            .rsplit('_')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let off = self.config.off_every > 0
            && number.is_some_and(|n| n.is_multiple_of(self.config.off_every));
        let ppm = if off {
            self.config.ppm + 1.0
        } else {
            self.config.ppm
        };
        out.emit(Output::Scored { postid, ppm })?;
        Ok(())
    }
}

plugin_api::export_stage!(Faulty);
