//! Start-up of one stage process, in the order that lets it fail early and clearly: load and
//! check the plugin, construct the stage (a dry run of its config), reach the broker, create
//! the output topic, register the output schema, wait for the input topic, then run.

use crate::cli::RunArgs;
use crate::error::HostError;
use crate::observe::{server, Observer};
use crate::runner::checkpoint::{CheckpointStore, CHECKPOINT_TOPIC_CONFIG};
use crate::runner::liveness::LivenessLimits;
use crate::runner::source::{run_source, SourceOptions};
use crate::runner::stage::{StageOptions, StageRunner, MAX_IN_FLIGHT_BATCHES};
use crate::runner::{Counters, OutputTopic};
use crate::shutdown::Shutdown;
use crate::status_report::{self, StatusEvent};
use crate::{policy::ErrorPolicy, replication, stage_config, topics};
use confluent::SchemaRegistry;
use plugin_host::Plugin;
use plugin_host::{StageKind, TopicSpec};
use std::sync::Arc;
use std::time::Duration;

/// Runs the stage described by `args` until it stops.
pub fn run(args: &RunArgs, shutdown: &Shutdown) -> Result<Counters, HostError> {
    let path = args.plugin.as_ref().ok_or_else(|| {
        HostError::Config(
            "no plugin given: use --plugin <lib.so> (or a subcommand; see --help)".into(),
        )
    })?;
    let config = match (&args.config, &args.config_json) {
        (Some(file), _) => stage_config::from_file(file).map_err(HostError::Config)?,
        (None, Some(json)) => stage_config::from_json(json)
            .map_err(|e| HostError::Config(format!("--config-json: {e}")))?,
        (None, None) => serde_json::json!({}),
    };
    crate::validate::run_args(args).map_err(HostError::Config)?;
    status_report::init(args.status_fd);
    // Bound before anything slow, so a taken port fails the start at once; served once the
    // plugin is known (the metrics name it). A dry run binds it too, so it refuses what the
    // real run would, and lets it go again unserved.
    let metrics_endpoint = match &args.metrics_addr {
        Some(addr) => Some(server::bind(addr).map_err(HostError::Config)?),
        None => None,
    }
    .filter(|_| !args.dry_run);

    crate::trust::check_plugin_file(path, args.plugin_sha256.as_deref())
        .map_err(HostError::Plugin)?;
    let plugin =
        Plugin::load_with_config(path, &config).map_err(|e| HostError::Plugin(e.to_string()))?;
    let mut spec = plugin.spec().clone();
    if let Some(topic) = &args.output_topic {
        spec.output_topic.name = topic.clone();
    }
    // The operator's replication factor wins over the plugin's; dead-letter and checkpoint
    // topics follow the output's.
    if let Some(replicas) = args.replication_factor {
        spec.output_topic.replication_factor = replicas;
    }
    tracing::info!(plugin = %path.display(), stage = %spec.name, version = %spec.version, "plugin loaded");
    check_effective_names(args, &spec)?;
    let observer = Arc::new(Observer::new(spec.kind, &spec.name, &spec.version));
    if let Some(bound) = metrics_endpoint {
        server::serve(bound, Arc::clone(&observer))
            .map_err(|e| HostError::Config(format!("cannot start the metrics endpoint: {e}")))?;
    }
    let conn = &args.connection;

    // Construct before touching the cluster: a config error is the plugin's to report.
    let constructed = match spec.kind {
        StageKind::Stage => Constructed::Stage(plugin.new_stage(&config)),
        StageKind::Source => Constructed::Source(plugin.new_source(&config)),
    };
    if let Some(e) = constructed.error() {
        return Err(HostError::Plugin(format!(
            "stage {} could not be constructed: {e}",
            spec.name
        )));
    }

    if args.dry_run {
        crate::dry_run::check_and_report(conn, &spec, constructed.resumes())?;
        return Ok(Counters::default());
    }

    match constructed {
        Constructed::Source(instance) => {
            let instance = instance.expect("checked above");
            run_source_instance(args, &spec, instance, shutdown, &observer)
        }
        Constructed::Stage(instance) => {
            let instance = instance.expect("checked above");
            run_stage(args, &spec, instance, shutdown, observer)
        }
    }
}

/// Creates the output topic if it is missing and registers the output schemas: where the
/// outputs go, and the ids they are framed with.
fn prepare_output(
    args: &RunArgs,
    spec: &plugin_host::StageSpec,
    registry: &SchemaRegistry,
    shutdown: &Shutdown,
) -> Result<OutputTopic, HostError> {
    replication::check_writable(
        &args.connection,
        "output topic",
        &spec.output_topic,
        args.replication_factor,
        shutdown,
    )?;
    if topics::ensure_topic(&args.connection, &spec.output_topic, shutdown)? {
        tracing::info!(topic = %spec.output_topic.name, replication_factor = spec.output_topic.replication_factor, "created output topic");
    }
    let value_subject = format!("{}-value", spec.output_topic.name);
    let value_schema_id = registry.register(&value_subject, &spec.output_value_schema)?;
    let key_schema_id = spec
        .output_key_schema
        .as_deref()
        .map(|schema| registry.register(&format!("{}-key", spec.output_topic.name), schema))
        .transpose()?;
    tracing::info!(subject = %value_subject, id = value_schema_id, "output schema registered");
    Ok(OutputTopic {
        topic: spec.output_topic.name.clone(),
        value_schema_id,
        key_schema_id,
    })
}

/// Runs a constructed source until it stops or its input ends.
fn run_source_instance(
    args: &RunArgs,
    spec: &plugin_host::StageSpec,
    instance: plugin_host::SourceInstance,
    shutdown: &Shutdown,
    observer: &Arc<Observer>,
) -> Result<Counters, HostError> {
    let conn = &args.connection;
    let registry = conn.registry()?;
    let output = prepare_output(args, spec, &registry, shutdown)?;
    let flush_timeout = Duration::from_secs(args.flush_timeout_secs);
    let checkpoints = source_checkpoints(args, spec, &instance)?;
    if let Some(store) = &checkpoints {
        let topic = TopicSpec {
            name: store.topic.clone(),
            partitions: 1,
            replication_factor: spec.output_topic.replication_factor,
        };
        replication::check_writable(
            conn,
            "checkpoint topic",
            &topic,
            args.replication_factor,
            shutdown,
        )?;
        topics::ensure_topic_with_config(conn, &topic, CHECKPOINT_TOPIC_CONFIG, shutdown)?;
    }
    report_ready(spec);
    let options = SourceOptions {
        batch_size: args.batch_size,
        flush_timeout,
        batch_timeout: Duration::from_secs(args.batch_timeout_secs),
        transactional_id: transactional_id(args, spec),
        checkpoints,
    };
    let stats = run_source(conn, &output, instance, &options, shutdown, observer)?;
    status_report::report(&StatusEvent::Counters(stats));
    Ok(stats)
}

/// Runs a constructed stage, loaded from a library or linked into the binary, as `stage-host`
/// runs one: creates its output (and dead-letter) topic, registers its output schemas, waits
/// for its input topic, and consumes until stopped. `spec` is the stage's declaration with
/// the command line's names already applied.
pub fn run_stage(
    args: &RunArgs,
    spec: &plugin_host::StageSpec,
    instance: plugin_host::StageInstance,
    shutdown: &Shutdown,
    observer: Arc<Observer>,
) -> Result<Counters, HostError> {
    let conn = &args.connection;
    let registry = conn.registry()?;
    let output = prepare_output(args, spec, &registry, shutdown)?;
    let flush_timeout = Duration::from_secs(args.flush_timeout_secs);
    let input_topic = args
        .input_topic
        .clone()
        .or(spec.input_topic.clone())
        .ok_or_else(|| {
            HostError::Config("the stage declares no input topic; give --input-topic".into())
        })?;
    let group_id = args
        .group_id
        .clone()
        .or(spec.group_id.clone())
        .ok_or_else(|| {
            HostError::Config("the stage declares no consumer group; give --group-id".into())
        })?;
    let dead_letter_topic = (args.on_error == ErrorPolicy::DeadLetter).then(|| {
        args.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", spec.output_topic.name))
    });
    if let Some(topic) = &dead_letter_topic {
        let dlq = TopicSpec {
            name: topic.clone(),
            partitions: 1,
            replication_factor: spec.output_topic.replication_factor,
        };
        replication::check_writable(
            conn,
            "dead-letter topic",
            &dlq,
            args.replication_factor,
            shutdown,
        )?;
        topics::ensure_topic(conn, &dlq, shutdown)?;
    }
    topics::wait_for_topic(
        conn,
        &input_topic,
        Duration::from_secs(args.input_topic_timeout_secs),
        shutdown,
    )?;
    let input_compacted = topics::is_compacted(conn, &input_topic);
    let options = StageOptions {
        stage_name: spec.name.clone(),
        plugin_version: spec.version.clone(),
        input_topic,
        group_id,
        input_key_framed: spec.input_key_framed,
        batch_size: args.batch_size,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        policy: args.on_error,
        dead_letter_topic,
        max_in_flight_batches: MAX_IN_FLIGHT_BATCHES,
        transaction_interval: Duration::from_millis(args.transaction_ms),
        flush_timeout,
        batch_timeout: Duration::from_secs(args.batch_timeout_secs),
        failure_window: args.failure_window,
        max_failure_ratio: args.max_failure_ratio,
        transactional_id: transactional_id(args, spec),
        on_offset_gap: args.on_offset_gap,
        position_headers: args.position_headers,
        input_compacted,
        liveness: LivenessLimits {
            no_assignment_warn: Duration::from_secs(args.no_assignment_warn_secs),
            stall_timeout: Duration::from_secs(args.stall_timeout_secs),
        },
    };
    tracing::info!(topic = %options.input_topic, group = %options.group_id, "consuming");
    let runner = StageRunner::new(
        conn,
        options,
        output,
        &registry,
        instance,
        shutdown.clone(),
        Arc::clone(&observer),
    )?;
    report_ready(spec);
    let stats = runner.run()?;
    status_report::report(&StatusEvent::Counters(Counters {
        lag: observer.lag.total(),
        ..stats
    }));
    Ok(stats)
}

/// The topic and group names the run will use, with the plugin's declarations filled in,
/// checked before anything is created: a stage must not create a topic it cannot use.
fn check_effective_names(args: &RunArgs, spec: &plugin_host::StageSpec) -> Result<(), HostError> {
    let declared = |what: &str, name: &str| {
        crate::validate::topic_name(name)
            .map_err(|e| HostError::Config(format!("the {what} (declared by the plugin): {e}")))
    };
    declared("output topic", &spec.output_topic.name)?;
    if spec.kind == StageKind::Stage {
        if args.input_topic.is_none() {
            if let Some(input) = &spec.input_topic {
                declared("input topic", input)?;
            }
        }
        if args.group_id.is_none() && spec.group_id.as_deref().is_some_and(str::is_empty) {
            return Err(HostError::Config(
                "the plugin declares an empty consumer group; give --group-id".into(),
            ));
        }
        if args.on_error == ErrorPolicy::DeadLetter && args.dead_letter_topic.is_none() {
            declared(
                "dead-letter topic",
                &format!("{}.dlq", spec.output_topic.name),
            )?;
        }
    }
    Ok(())
}

/// The transactional id in exactly-once mode (see [`process_identity`]).
fn transactional_id(args: &RunArgs, spec: &plugin_host::StageSpec) -> Option<String> {
    args.exactly_once.then(|| process_identity(args, spec))
}

/// What identifies this process's work across restarts: `--transactional-id` if given, else
/// the group (or, for a source, the output topic) and the stage name. It is the transactional
/// id, so a restarted process fences its predecessor, and the key of a source's checkpoints.
fn process_identity(args: &RunArgs, spec: &plugin_host::StageSpec) -> String {
    args.transactional_id.clone().unwrap_or_else(|| {
        let scope = args
            .group_id
            .clone()
            .or(spec.group_id.clone())
            .unwrap_or_else(|| spec.output_topic.name.clone());
        format!("{scope}.{}", spec.name)
    })
}

/// Where a source keeps its checkpoints: only a source that reports one before its first poll
/// (its starting position) keeps them.
fn source_checkpoints(
    args: &RunArgs,
    spec: &plugin_host::StageSpec,
    instance: &plugin_host::SourceInstance,
) -> Result<Option<CheckpointStore>, HostError> {
    let keeps = instance
        .checkpoint()
        .map_err(|e| HostError::Plugin(format!("source checkpoint failed: {}", e.0)))?
        .is_some();
    Ok(keeps.then(|| CheckpointStore {
        topic: args.checkpoint_topic.clone(),
        key: process_identity(args, spec),
    }))
}

/// Tells a supervisor (if any) that this stage is up: for a stage, subscribed to its input.
fn report_ready(spec: &plugin_host::StageSpec) {
    let kind = match spec.kind {
        StageKind::Stage => "stage",
        StageKind::Source => "source",
    };
    status_report::report(&StatusEvent::Ready {
        stage: spec.name.clone(),
        version: spec.version.clone(),
        kind: kind.into(),
    });
}

enum Constructed {
    Stage(Result<plugin_host::StageInstance, plugin_host::CallError>),
    Source(Result<plugin_host::SourceInstance, plugin_host::CallError>),
}

impl Constructed {
    fn error(&self) -> Option<String> {
        match self {
            Constructed::Stage(Err(e)) => Some(e.0.clone()),
            Constructed::Source(Err(e)) => Some(e.0.clone()),
            _ => None,
        }
    }

    /// For a source, whether it keeps checkpoints and so resumes where a predecessor stopped
    /// (the rule of [`source_checkpoints`]); `None` for a stage, which resumes from its group.
    fn resumes(&self) -> Option<bool> {
        match self {
            Constructed::Source(Ok(instance)) => {
                Some(instance.checkpoint().is_ok_and(|c| c.is_some()))
            }
            _ => None,
        }
    }
}
