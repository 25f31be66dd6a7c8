//! The comparison at the heart of a canary: for each input position (topic, partition,
//! offset), the outputs the live version produced from it against those the new version
//! produced, and what the differences amount to. Pure, so its rules are tested on their own.
//!
//! Outputs are compared as decoded values with their keys, as sets per input: at-least-once
//! may produce an output twice (a re-read after a rebalance), which is not a difference.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Where an output came from: the input record's position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    /// The input partition.
    pub partition: i32,
    /// The input offset.
    pub offset: i64,
}

/// One output, decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Produced {
    /// Its key, as text (lossy), if any.
    pub key: Option<String>,
    /// Its value as JSON text (decoded with its writer schema).
    pub value: String,
}

/// The outputs of one version, by input position.
#[derive(Debug, Default, Clone)]
pub struct Outputs(BTreeMap<Position, BTreeSet<Produced>>);

impl Outputs {
    /// Adds an output derived from the input at `from`.
    pub fn add(&mut self, from: Position, key: Option<String>, value: &Value) {
        self.0.entry(from).or_default().insert(Produced {
            key,
            value: value.to_string(),
        });
    }

    /// Whether no input has an output.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One input whose outputs differ.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The input.
    pub input: Position,
    /// What the live version produced from it.
    pub live: Vec<Produced>,
    /// What the new version produced from it.
    pub new: Vec<Produced>,
}

/// What comparing the two versions found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// Inputs compared (those either version produced something from).
    pub compared: usize,
    /// Inputs both versions turned into the same outputs.
    pub identical: usize,
    /// Inputs both versions produced from, differently.
    pub different: usize,
    /// Inputs only the live version produced from.
    pub only_live: usize,
    /// Inputs only the new version produced from.
    pub only_new: usize,
    /// The first differences (any kind), in input order.
    pub examples: Vec<Difference>,
}

impl Comparison {
    /// Compares `live` and `new`, keeping at most `examples` differences to show.
    pub fn of(live: &Outputs, new: &Outputs, examples: usize) -> Comparison {
        let inputs: BTreeSet<&Position> = live.0.keys().chain(new.0.keys()).collect();
        let mut comparison = Comparison {
            compared: inputs.len(),
            ..Comparison::default()
        };
        for input in inputs {
            let (l, n) = (live.0.get(input), new.0.get(input));
            match (l, n) {
                (Some(l), Some(n)) if l == n => comparison.identical += 1,
                (Some(_), Some(_)) => comparison.different += 1,
                (Some(_), None) => comparison.only_live += 1,
                (None, Some(_)) => comparison.only_new += 1,
                (None, None) => unreachable!("an input of one of them"),
            }
            let same = matches!((l, n), (Some(l), Some(n)) if l == n);
            if !same && comparison.examples.len() < examples {
                comparison.examples.push(Difference {
                    input: input.clone(),
                    live: l.map(|s| s.iter().cloned().collect()).unwrap_or_default(),
                    new: n.map(|s| s.iter().cloned().collect()).unwrap_or_default(),
                });
            }
        }
        comparison
    }

    /// The share of compared inputs that are not identical (0 when nothing was compared).
    pub fn diff_ratio(&self) -> f64 {
        if self.compared == 0 {
            return 0.0;
        }
        (self.compared - self.identical) as f64 / self.compared as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(offset: i64) -> Position {
        Position {
            partition: 0,
            offset,
        }
    }

    #[test]
    fn counts_identical_different_and_one_sided_inputs() {
        let (mut live, mut new) = (Outputs::default(), Outputs::default());
        for offset in 0..10 {
            live.add(at(offset), Some("k".into()), &json!({"ppm": 100.0}));
            let ppm = if offset % 5 == 0 { 101.0 } else { 100.0 };
            new.add(at(offset), Some("k".into()), &json!({ "ppm": ppm }));
        }
        live.add(at(10), None, &json!({"ppm": 1.0}));
        new.add(at(11), None, &json!({"ppm": 1.0}));
        let c = Comparison::of(&live, &new, 3);
        assert_eq!(
            (
                c.compared,
                c.identical,
                c.different,
                c.only_live,
                c.only_new
            ),
            (12, 8, 2, 1, 1)
        );
        assert_eq!(c.examples.len(), 3);
        assert_eq!(c.examples[0].input, at(0));
        assert!((c.diff_ratio() - 4.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn an_output_produced_twice_is_not_a_difference() {
        let (mut live, mut new) = (Outputs::default(), Outputs::default());
        live.add(at(0), Some("k".into()), &json!({"ppm": 1.0}));
        live.add(at(0), Some("k".into()), &json!({"ppm": 1.0}));
        new.add(at(0), Some("k".into()), &json!({"ppm": 1.0}));
        let c = Comparison::of(&live, &new, 5);
        assert_eq!((c.identical, c.different), (1, 0));
        assert_eq!(
            Comparison::of(&Outputs::default(), &Outputs::default(), 5).diff_ratio(),
            0.0
        );
    }
}
