//! A Kafka cluster of a test's own, laid out as production runs one: three brokers and three
//! KRaft controllers, each its own process on free ports with its own data directory, all
//! formatted with one cluster id; replication factor 3 and `min.insync.replicas=2` by default
//! (internal topics too), unclean leader election off.
//!
//! A test takes single nodes away the ways production loses them: [`PrivateCluster::kill`]
//! (SIGKILL, a crash), [`PrivateCluster::stop`] (SIGTERM, a controlled shutdown as in a
//! rolling restart), [`PrivateCluster::pause`] / [`PrivateCluster::resume`] (SIGSTOP /
//! SIGCONT, a node that stops answering without dying: a follower falls out of the ISR), and
//! [`PrivateCluster::restart`] starts a node again on its data. It asks the cluster who holds
//! what: the leader and ISR of a partition (the Metadata API, through librdkafka), the active
//! controller (`kafka-metadata-quorum`), the coordinator of a group (`kafka-consumer-groups`)
//! and of a transactional id (`kafka-transactions`), the under-replicated partitions; and
//! waits until nothing is under-replicated. Every answer comes from the cluster itself.
//!
//! Why separate controllers rather than three combined nodes: `kafka_cluster/README.md`
//! ("Three brokers"). It is the launcher the local cluster uses (`kafka_cluster/kafka/kafka
//! broker`), with the same settings. Six JVMs take about a minute to start on two busy cores
//! and about 1.4 GB of memory, so tests share one cluster across the faults they try.

use crate::private_kafka::kafka_script;
use crate::{free_port, kafka_cli};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many brokers and controllers a cluster has.
const NODES_PER_ROLE: i32 = 3;
/// Controllers' node ids are 101, 102, 103; brokers' are 1, 2, 3.
const CONTROLLER_ID_BASE: i32 = 100;
/// The longest a start, a restart or a clean stop may take before the test fails: six JVMs
/// formatting and joining on two cores shared with builds took up to two minutes.
const NODE_PATIENCE: Duration = Duration::from_secs(300);

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves clients and holds partition replicas.
    Broker,
    /// A voter of the KRaft quorum that holds the cluster's metadata.
    Controller,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Broker => "broker",
            Role::Controller => "controller",
        }
    }
}

/// Settings of a private cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `replica.lag.time.max.ms`: how long a follower may lag before the leader drops it from
    /// the ISR. `None`: Kafka's default (30 s).
    pub replica_lag_time_max: Option<Duration>,
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's broker id; `None` while the partition has none.
    pub leader: Option<i32>,
    /// Broker ids of the replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

impl PartitionState {
    /// The replicas other than the leader.
    pub fn followers(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| Some(*id) != self.leader)
            .collect()
    }
}

/// What a node's process is doing, as this kit left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Running,
    Paused,
    Down,
}

struct Node {
    id: i32,
    role: Role,
    /// The client port of a broker, the controller port of a controller.
    port: u16,
    child: Option<Child>,
    state: NodeState,
}

/// Three brokers and three controllers on free ports, killed (SIGKILL) and deleted when
/// dropped.
///
/// Questions go to the brokers that run and are not paused: a paused broker still accepts
/// connections (the kernel does) but answers nothing. While a node is away the cluster may
/// not know the answer yet (a new leader is elected once the controllers fence the broker
/// that is gone): ask through [`crate::wait_for`].
pub struct PrivateCluster {
    nodes: Vec<Node>,
    cluster_id: String,
    options: ClusterOptions,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts a cluster with Kafka's default settings apart from those of
    /// `kafka_cluster/kafka/kafka`, and waits until every broker serves.
    pub fn start() -> PrivateCluster {
        PrivateCluster::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with `options`, and waits until every broker serves.
    pub fn start_with(options: ClusterOptions) -> PrivateCluster {
        let mut nodes = Vec::new();
        for (role, base) in [(Role::Controller, CONTROLLER_ID_BASE), (Role::Broker, 0)] {
            for i in 1..=NODES_PER_ROLE {
                nodes.push(Node {
                    id: base + i,
                    role,
                    port: free_port(),
                    child: None,
                    state: NodeState::Down,
                });
            }
        }
        let mut cluster = PrivateCluster {
            nodes,
            cluster_id: kafka_cli(&["storage", "random-uuid"]).trim().to_string(),
            options,
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        // All at once: each node formats its storage (a JVM) before it starts, and a node
        // waits for a quorum of controllers before it serves. A broker registers only with a
        // quorum, so brokers serving means the controllers do; then every voter is checked.
        let started_ms = epoch_ms();
        for id in cluster
            .broker_ids()
            .into_iter()
            .chain(cluster.controller_ids())
        {
            cluster.spawn(id);
        }
        for id in cluster.broker_ids() {
            cluster.wait_until_serving(id);
        }
        let voters = cluster.controller_ids();
        crate::wait_for("every controller in the quorum", NODE_PATIENCE, || {
            cluster.assert_alive();
            match voters
                .iter()
                .find(|id| !cluster.caught_up_since(**id, started_ms))
            {
                Some(id) => Err(format!("controller {id} has not caught up")),
                None => Ok(()),
            }
        });
        cluster
    }

    /// `host:port` of every broker, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        brokers_bootstrap(&self.nodes)
    }

    /// `host:port` of one broker.
    pub fn broker_address(&self, id: i32) -> String {
        let node = self.node(id);
        assert_eq!(node.role, Role::Broker, "node {id} is not a broker");
        format!("127.0.0.1:{}", node.port)
    }

    /// The brokers' node ids (1, 2, 3).
    pub fn broker_ids(&self) -> Vec<i32> {
        self.ids_of(Role::Broker)
    }

    /// The controllers' node ids (101, 102, 103).
    pub fn controller_ids(&self) -> Vec<i32> {
        self.ids_of(Role::Controller)
    }

    /// The process id of a node, while it runs (or is paused).
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    /// A node's log (its stdout and stderr, across restarts).
    pub fn log(&self, id: i32) -> PathBuf {
        let node = self.node(id);
        self.dir
            .path()
            .join(format!("{}-{}.log", node.role.name(), node.id))
    }

    // ---- faults ------------------------------------------------------------------------

    /// Kills a node with SIGKILL: no controlled shutdown, as in a crash of the process (what
    /// it wrote stays in the page cache and on disk). Waits until the process is gone.
    pub fn kill(&mut self, id: i32) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.state = NodeState::Down;
    }

    /// Stops a node with SIGTERM and waits for its controlled shutdown to end: a broker hands
    /// leadership of its partitions to other replicas first, as in a rolling restart. Fails the
    /// test if the node is still running after five minutes.
    pub fn stop(&mut self, id: i32) {
        let log = self.log(id);
        let node = self.node_mut(id);
        assert_ne!(
            node.state,
            NodeState::Paused,
            "node {id} is paused: resume it first"
        );
        let Some(mut child) = node.child.take() else {
            return;
        };
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + NODE_PATIENCE;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} did not finish its controlled shutdown within {NODE_PATIENCE:?}; log:\n{}",
                    tail(&log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        node.state = NodeState::Down;
    }

    /// Pauses a node with SIGSTOP: its process keeps its sockets open but answers nothing.
    /// A paused follower leaves a partition's ISR once records arrive that it does not fetch
    /// for `replica.lag.time.max.ms` (Kafka keeps a follower that has everything the leader
    /// has in the ISR however long it is silent, so on an idle partition this never fires);
    /// and the controllers fence a paused broker when its heartbeats have stopped for
    /// `broker.session.timeout.ms` (9 s), which takes it out of every ISR at once and moves
    /// the leadership of the partitions it led. A paused controller stops voting; if it led
    /// the quorum, another is elected.
    pub fn pause(&mut self, id: i32) {
        let node = self.node_mut(id);
        let child = node
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        signal(child, libc::SIGSTOP);
        node.state = NodeState::Paused;
    }

    /// Resumes a paused node with SIGCONT.
    pub fn resume(&mut self, id: i32) {
        let node = self.node_mut(id);
        let child = node
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        signal(child, libc::SIGCONT);
        node.state = NodeState::Running;
    }

    /// Starts a node again on its ports and data (killing it first if it still runs), and
    /// waits until it serves: a broker until it is registered and unfenced (it is in the
    /// cluster's metadata), a controller until it has caught up with the quorum's leader.
    /// Kafka recovers the log of an unclean shutdown on the way up. The partitions it holds
    /// may still be catching up: [`PrivateCluster::wait_until_fully_replicated`].
    pub fn restart(&mut self, id: i32) {
        self.kill(id);
        self.spawn(id);
        self.wait_until_serving(id);
    }

    /// Whether a node's process is running (paused counts as running).
    pub fn is_up(&self, id: i32) -> bool {
        self.node(id).state != NodeState::Down
    }

    // ---- questions ---------------------------------------------------------------------

    /// One partition's leader, replicas and ISR, from the cluster's metadata.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<PartitionState, String> {
        let metadata = self
            .metadata_client()?
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
            .ok_or_else(|| format!("{topic}-{partition} is not in the cluster's metadata"))?;
        Ok(PartitionState {
            leader: (found.leader() >= 0).then_some(found.leader()),
            replicas: found.replicas().to_vec(),
            isr: found.isr().to_vec(),
        })
    }

    /// The broker that leads a partition; an error while it has no leader.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<i32, String> {
        let state = self.partition(topic, partition)?;
        state
            .leader
            .ok_or_else(|| format!("{topic}-{partition} has no leader: {state:?}"))
    }

    /// Every partition whose ISR is shorter than its replica list (internal topics included),
    /// as `(topic, partition, state)`.
    pub fn under_replicated(&self) -> Result<Vec<(String, i32, PartitionState)>, String> {
        let metadata = self
            .metadata_client()?
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| format!("metadata: {e}"))?;
        let mut short = Vec::new();
        for topic in metadata.topics() {
            for p in topic.partitions() {
                if p.isr().len() < p.replicas().len() {
                    short.push((
                        topic.name().to_string(),
                        p.id(),
                        PartitionState {
                            leader: (p.leader() >= 0).then_some(p.leader()),
                            replicas: p.replicas().to_vec(),
                            isr: p.isr().to_vec(),
                        },
                    ));
                }
            }
        }
        Ok(short)
    }

    /// The brokers the cluster's metadata lists: registered with the controllers and not
    /// fenced.
    pub fn live_brokers(&self) -> Result<Vec<i32>, String> {
        let metadata = self
            .metadata_client()?
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| format!("metadata: {e}"))?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The leader of the KRaft quorum, the active controller (`kafka-metadata-quorum describe
    /// --status`, `LeaderId`).
    pub fn active_controller(&self) -> Result<i32, String> {
        let status = self.try_tool(&[
            "metadata-quorum",
            "--bootstrap-controller",
            &self.controllers_bootstrap(),
            "describe",
            "--status",
        ])?;
        field(&status, "LeaderId:")
            .and_then(|id| id.parse().ok())
            .filter(|id: &i32| *id >= 0)
            .ok_or_else(|| format!("no leader in the quorum's status:\n{status}"))
    }

    /// The broker that coordinates consumer group `group` (the `COORDINATOR (ID)` column of
    /// `kafka-consumer-groups --describe --state`; the group must exist: a member joined, or
    /// offsets were committed).
    pub fn group_coordinator(&self, group: &str) -> Result<i32, String> {
        let described = self.try_tool(&[
            "consumer-groups",
            "--bootstrap-server",
            &self.answering_bootstrap()?,
            "--describe",
            "--state",
            "--group",
            group,
        ])?;
        // GROUP  COORDINATOR (ID)  ASSIGNMENT-STRATEGY  STATE  #MEMBERS
        // g      127.0.0.1:4711  (2)  ...
        described
            .lines()
            .find(|line| line.split_whitespace().next() == Some(group))
            .and_then(|line| {
                let open = line.find('(')?;
                let close = open + line[open..].find(')')?;
                line[open + 1..close].trim().parse().ok()
            })
            .ok_or_else(|| format!("no coordinator for group {group} in:\n{described}"))
    }

    /// The broker that coordinates transactional id `id` (`CoordinatorId` of
    /// `kafka-transactions describe`; a producer must have initialized the id).
    pub fn transaction_coordinator(&self, transactional_id: &str) -> Result<i32, String> {
        let described = self.try_tool(&[
            "transactions",
            "--bootstrap-server",
            &self.answering_bootstrap()?,
            "describe",
            "--transactional-id",
            transactional_id,
        ])?;
        // CoordinatorId  TransactionalId  ProducerId ...
        // 2              tx               0 ...
        let mut lines = described.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (coordinator, id) = (column("CoordinatorId"), column("TransactionalId"));
        lines
            .find_map(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                (cells.get(id?) == Some(&transactional_id))
                    .then(|| cells.get(coordinator?)?.parse().ok())
                    .flatten()
            })
            .ok_or_else(|| {
                format!("no coordinator for transactional id {transactional_id} in:\n{described}")
            })
    }

    /// The replication factor of `topic` as Kafka's own `kafka-topics --describe` reports it.
    pub fn replication_factor(&self, topic: &str) -> Result<usize, String> {
        let described = self.try_tool(&[
            "topics",
            "--bootstrap-server",
            &self.answering_bootstrap()?,
            "--describe",
            "--topic",
            topic,
        ])?;
        field(&described, "ReplicationFactor:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no replication factor in:\n{described}"))
    }

    /// Creates a topic with the cluster's defaults (replication factor 3, min ISR 2) through
    /// Kafka's own `kafka-topics`.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.tool(&[
            "topics",
            "--bootstrap-server",
            &self.bootstrap(),
            "--create",
            "--topic",
            topic,
            "--partitions",
            &partitions.to_string(),
        ]);
    }

    // ---- waiting -----------------------------------------------------------------------

    /// Waits until every broker that runs is in the cluster's metadata and no partition is
    /// under-replicated (every replica back in the ISR), for at most `timeout`.
    pub fn wait_until_fully_replicated(&self, timeout: Duration) {
        let running: Vec<i32> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Broker && n.state == NodeState::Running)
            .map(|n| n.id)
            .collect();
        crate::wait_for(
            "every running broker registered and no partition under-replicated",
            timeout,
            || {
                let live = self.live_brokers()?;
                if let Some(missing) = running.iter().find(|id| !live.contains(id)) {
                    return Err(format!(
                        "broker {missing} is not in the metadata ({live:?})"
                    ));
                }
                match self.under_replicated()? {
                    short if short.is_empty() => Ok(()),
                    short => Err(format!("{} under-replicated: {short:?}", short.len())),
                }
            },
        );
    }

    // ---- tools -------------------------------------------------------------------------

    /// Runs one of Kafka's tools (see [`crate::kafka_cli`]); panics if it fails.
    pub fn tool(&self, args: &[&str]) -> String {
        kafka_cli(args)
    }

    /// Runs one of Kafka's tools; its stderr as the error if it fails.
    fn try_tool(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(kafka_script())
            .args(args)
            .output()
            .map_err(|e| format!("kafka_cluster/kafka/kafka does not run: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "kafka {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    // ---- the processes -----------------------------------------------------------------

    fn ids_of(&self, role: Role) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.id)
            .collect()
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} (brokers 1-3, controllers 101-103)"))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} (brokers 1-3, controllers 101-103)"))
    }

    /// `host:port` of the brokers that run and are not paused, for the kit's own questions.
    fn answering_bootstrap(&self) -> Result<String, String> {
        let answering: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Broker && n.state == NodeState::Running)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        if answering.is_empty() {
            return Err("no broker is running".into());
        }
        Ok(answering.join(","))
    }

    /// A client for one metadata question: a new one each time, so that it knows only the
    /// brokers that answer when it is asked and sends its request to one of them.
    fn metadata_client(&self) -> Result<BaseConsumer, String> {
        ClientConfig::new()
            .set("bootstrap.servers", self.answering_bootstrap()?)
            .set("group.id", "private-cluster-metadata")
            .set("allow.auto.create.topics", "false")
            .create()
            .map_err(|e| format!("a metadata client: {e}"))
    }

    /// Fails the test, with the end of its log, when a node this kit started has exited by
    /// itself.
    fn assert_alive(&mut self) {
        let dir = self.dir.path().to_path_buf();
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = dir.join(format!("{}-{}.log", node.role.name(), node.id));
                panic!(
                    "{} {} exited ({status}); log:\n{}",
                    node.role.name(),
                    node.id,
                    tail(&log, 40)
                );
            }
        }
    }

    /// `host:port` of every controller.
    fn controllers_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Controller)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The quorum: `id@host:port` of every controller.
    fn voters(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Controller)
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts a node's process (`kafka_cluster/kafka/kafka broker ...`) without waiting.
    fn spawn(&mut self, id: i32) {
        let log_path = self.log(id);
        let voters = self.voters();
        let data = self.dir.path().join(format!("data-{id}"));
        let cluster_id = self.cluster_id.clone();
        let lag = self
            .options
            .replica_lag_time_max
            .map(|lag| lag.as_millis().to_string());
        let node = self.node_mut(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("node log");
        let mut command = Command::new(kafka_script());
        command
            .arg("broker")
            .args(["--roles", node.role.name()])
            .args(["--node-id", &node.id.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(["--cluster-id", &cluster_id, "--voters", &voters])
            .args(["--replication-factor", "3", "--min-insync-replicas", "2"]);
        match node.role {
            Role::Broker => command
                .args(["--port", &node.port.to_string()])
                .args(["--heap", "512m"]),
            Role::Controller => command
                .args(["--controller-port", &node.port.to_string()])
                .args(["--heap", "256m"]),
        };
        if let Some(lag) = &lag {
            command.args(["--replica-lag-time-max-ms", lag]);
        }
        let child = command
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("kafka_cluster/kafka/kafka starts");
        node.child = Some(child);
        node.state = NodeState::Running;
    }

    /// Waits until a node serves: a broker is in the cluster's metadata, a controller has
    /// caught up with the quorum's leader since it started.
    fn wait_until_serving(&mut self, id: i32) {
        let started_ms = epoch_ms();
        let deadline = Instant::now() + NODE_PATIENCE;
        let role = self.node(id).role;
        loop {
            self.assert_alive();
            let serving = match role {
                Role::Broker => self.live_brokers().is_ok_and(|live| live.contains(&id)),
                Role::Controller => self.caught_up_since(id, started_ms),
            };
            if serving {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not serve within {NODE_PATIENCE:?}; log:\n{}",
                tail(&self.log(id), 40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether controller `id` is a voter that has caught up with the quorum's leader at or
    /// after `since_ms` (`kafka-metadata-quorum describe --replication`: its
    /// `LastCaughtUpTimestamp`).
    fn caught_up_since(&self, id: i32, since_ms: u128) -> bool {
        let Ok(replication) = self.try_tool(&[
            "metadata-quorum",
            "--bootstrap-controller",
            &self.controllers_bootstrap(),
            "describe",
            "--replication",
        ]) else {
            return false;
        };
        // NodeId DirectoryId LogEndOffset Lag LastFetchTimestamp LastCaughtUpTimestamp Status
        replication.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.len() >= 7
                && cells[0] == id.to_string()
                && matches!(cells[6], "Leader" | "Follower")
                && cells[5].parse::<u128>().is_ok_and(|at| at >= since_ms)
        })
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let ids: Vec<i32> = self.nodes.iter().map(|n| n.id).collect();
        for id in ids {
            self.kill(id);
        }
    }
}

fn brokers_bootstrap(nodes: &[Node]) -> String {
    nodes
        .iter()
        .filter(|n| n.role == Role::Broker)
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect::<Vec<_>>()
        .join(",")
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with a pid this process spawned and has not reaped.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// The value after `name` in a `Name: value` listing.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split_whitespace()
        .skip_while(|word| *word != name)
        .nth(1)
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
