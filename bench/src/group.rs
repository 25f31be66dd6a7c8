//! A consumer group's membership as the coordinator describes it: how many members hold a
//! partition of a topic. Several processes (or stream threads) start one after another, so
//! their group rebalances until the last has joined; a measurement of their joint throughput
//! starts once every one of them has its partitions, and a profile starts once the stage
//! under it has its assignment.

use crate::cluster::Cluster;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

/// Describes one group.
pub struct GroupWatch {
    client: BaseConsumer,
    group: String,
    topic: String,
}

impl GroupWatch {
    /// Watches `group`'s members' assignments of `topic` (without joining the group).
    pub fn new(cluster: &Cluster, group: &str, topic: &str) -> Result<Self> {
        let client = cluster
            .conn()
            .client_config(&[])
            .create()
            .context("group description client")?;
        Ok(GroupWatch {
            client,
            group: group.to_string(),
            topic: topic.to_string(),
        })
    }

    /// Members of the group, when it is stable, that hold at least one partition of the
    /// topic; 0 while it rebalances or does not exist.
    pub fn assigned_members(&self) -> Result<usize> {
        let list = self
            .client
            .fetch_group_list(Some(&self.group), Duration::from_secs(10))
            .with_context(|| format!("describing group {}", self.group))?;
        let Some(group) = list.groups().iter().find(|g| g.name() == self.group) else {
            return Ok(0);
        };
        if group.state() != "Stable" {
            return Ok(0);
        }
        Ok(group
            .members()
            .iter()
            .filter(|m| {
                m.assignment()
                    .is_some_and(|a| assignment_names(a, self.topic.as_bytes()))
            })
            .count())
    }

    /// Waits until `members` members hold partitions, failing after `timeout`.
    pub fn wait_for(&self, members: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let assigned = self.assigned_members()?;
            if assigned >= members {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "group {}: {assigned} of {members} members hold a partition of {} after {} s",
                    self.group,
                    self.topic,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Whether a member's assignment (the consumer protocol's bytes: version, then topics with
/// their partitions, then user data) names `topic` with at least one partition. The topic
/// name is a length-prefixed string followed by a partition count; an empty assignment has
/// no topics at all.
fn assignment_names(assignment: &[u8], topic: &[u8]) -> bool {
    let mut prefixed = (topic.len() as u16).to_be_bytes().to_vec();
    prefixed.extend_from_slice(topic);
    assignment
        .windows(prefixed.len() + 4)
        .filter(|w| w.starts_with(&prefixed))
        .any(|w| {
            let count = &w[prefixed.len()..];
            i32::from_be_bytes([count[0], count[1], count[2], count[3]]) > 0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ConsumerProtocolAssignment v0: version, [topic, [partition]], user data.
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut out = 0i16.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend((topic.len() as u16).to_be_bytes());
            out.extend(topic.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        out.extend((-1i32).to_be_bytes());
        out
    }

    #[test]
    fn a_member_holds_the_topic_only_with_partitions() {
        let t = b"bench-1-replicas-input";
        assert!(assignment_names(
            &assignment(&[("bench-1-replicas-input", &[0, 3])]),
            t
        ));
        assert!(!assignment_names(
            &assignment(&[("bench-1-replicas-input", &[])]),
            t
        ));
        assert!(!assignment_names(&assignment(&[]), t));
        assert!(!assignment_names(&assignment(&[("other", &[0])]), t));
        // A longer name that starts with the topic's is another topic.
        assert!(!assignment_names(
            &assignment(&[("bench-1-replicas-input-2", &[0])]),
            t
        ));
        assert!(assignment_names(
            &assignment(&[("other", &[1]), ("bench-1-replicas-input", &[2])]),
            t
        ));
    }
}
