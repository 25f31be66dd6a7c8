use clap::Parser;
use stage_host::commands::{self, Cli, Command, LogFormat};
use stage_host::{HostError, Shutdown};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    stage_host::cap_malloc_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match &cli.command {
        Some(Command::Topic { command }) => commands::topic(command),
        Some(Command::Schema { command }) => commands::schema(command),
        Some(Command::Harness(args)) => commands::harness(args),
        Some(Command::New(args)) => commands::new(args),
        Some(Command::Inspect {
            plugin,
            json,
            config_json,
        }) => inspect_config(config_json.as_deref()).and_then(|config| {
            commands::check_plugin_file(plugin, None)
                .and_then(|()| {
                    plugin_host::Plugin::load_with_config(plugin, &config)
                        .map_err(|e| e.to_string())
                })
                .map(|p| print!("{}", commands::inspect(&p, *json)))
                .map_err(HostError::Plugin)
        }),
        Some(Command::Pipeline { command }) => commands::pipeline(command).map_err(HostError::from),
        None => Shutdown::on_signals()
            .map_err(|e| HostError::Config(format!("cannot install signal handlers: {e}")))
            .and_then(|shutdown| stage_host::run(&cli.run, &shutdown).map(drop)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_stop() => {
            tracing::info!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, naming the cause; the code tells a supervisor what kind of failure,
            // and so does the status line (when a supervisor listens).
            tracing::error!("{e}");
            stage_host::report_status(&stage_host::StatusEvent::Failed {
                kind: e.kind(),
                reason: e.to_string(),
            });
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `inspect --config-json`: the config to ask the plugin's spec for (default `{}`).
fn inspect_config(json: Option<&str>) -> Result<serde_json::Value, HostError> {
    json.map(|text| {
        serde_json::from_str(text).map_err(|e| HostError::Config(format!("--config-json: {e}")))
    })
    .unwrap_or_else(|| Ok(serde_json::json!({})))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("STAGE_HOST_LOG")
        // apache_avro warns about one-member unions, which the Python library's schemas (and
        // so this repository's) use throughout: noise, not a problem.
        .unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn,apache_avro=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
