//! Stage one of the example pipeline: a source producing `{postid: "postid_<i>", title: <uuid
//! hex>}` keyed `postid_<i>` to `test_stage_one_topic`, at a configurable rate.
//!
//! Config (all optional): `records` (default 100; 0 = never stop), `rate_per_second` (default
//! 20; 0 = as fast as the host takes them), `first_id` (default 0).
//!
//! With `resume = true` it keeps a checkpoint (how many records it emitted), so a restarted run
//! goes on with the next post id instead of starting again at `first_id`, and a finished one
//! emits nothing more. Off by default: the example pipeline emits its posts on every run.

use plugin_api::{BoxError, Config, Emitter, Poll, SourceStage, StageSpec};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A value of `test_stage_one_topic`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Post {
    /// `postid_<i>`.
    pub postid: String,
    /// A random UUID in hex.
    pub title: String,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SourceConfig {
    records: u64,
    rate_per_second: f64,
    first_id: u64,
    resume: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            records: 100,
            rate_per_second: 20.0,
            first_id: 0,
            resume: false,
        }
    }
}

/// The source.
pub struct StageOne {
    config: SourceConfig,
    emitted: u64,
    /// `emitted` when this run started (a restored checkpoint): the rate counts from here.
    resumed_at: u64,
    started: Option<Instant>,
}

/// What the checkpoint holds.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    emitted: u64,
}

impl StageOne {
    /// How many records are due by now at the configured rate.
    fn due(&mut self) -> u64 {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.config.rate_per_second <= 0.0 {
            return u64::MAX;
        }
        self.resumed_at + (started.elapsed().as_secs_f64() * self.config.rate_per_second) as u64 + 1
    }

    fn finished(&self) -> bool {
        self.config.records != 0 && self.emitted >= self.config.records
    }
}

impl SourceStage for StageOne {
    type Output = Post;

    fn spec() -> StageSpec {
        StageSpec::source("stage-one", env!("CARGO_PKG_VERSION"))
            .output("test_stage_one_topic", 4, 1)
            .output_schema(include_str!("../../../schemas/stage_one.json"))
    }

    fn new(config: &Config) -> Result<Self, BoxError> {
        let config: SourceConfig = config.parse()?;
        Ok(StageOne {
            config,
            emitted: 0,
            resumed_at: 0,
            started: None,
        })
    }

    fn checkpoint(&self) -> Option<String> {
        if !self.config.resume {
            return None;
        }
        serde_json::to_string(&Checkpoint {
            emitted: self.emitted,
        })
        .ok()
    }

    fn restore(&mut self, checkpoint: &str) -> Result<(), BoxError> {
        let checkpoint: Checkpoint = serde_json::from_str(checkpoint)?;
        self.emitted = checkpoint.emitted;
        self.resumed_at = checkpoint.emitted;
        Ok(())
    }

    fn poll(&mut self, out: &mut Emitter<'_, Post>, max: usize) -> Result<Poll, BoxError> {
        let due = self.due();
        while !self.finished() && self.emitted < due && out.emitted() < max {
            let id = self.config.first_id + self.emitted;
            let postid = format!("postid_{id}");
            let title = uuid::Uuid::new_v4().simple().to_string();
            out.emit_keyed(
                postid.as_bytes(),
                Post {
                    postid: postid.clone(),
                    title,
                },
            )?;
            self.emitted += 1;
        }
        Ok(if self.finished() {
            Poll::Finished
        } else if self.emitted < due {
            Poll::Ready
        } else {
            let next = Duration::from_secs_f64(
                (self.emitted - self.resumed_at) as f64 / self.config.rate_per_second,
            );
            let elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
            Poll::Wait(next.saturating_sub(elapsed).max(Duration::from_millis(1)))
        })
    }
}

plugin_api::export_source!(StageOne);
