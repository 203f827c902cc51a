//! `obscura-relay`: parse the configuration, bind, start the shards, and
//! shut down gracefully on SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use obscura_relay::config::{Config, LogFormat};
use obscura_relay::server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn,scylla=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.telemetry_log_format);
    if let Err(e) = config.validate() {
        tracing::error!("invalid configuration: {e}");
        return ExitCode::from(2);
    }
    if let Some(command) = &config.command {
        return match obscura_relay::store::run_command(command, &config) {
            Ok(report) => {
                tracing::info!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready_file = config.ready_file.clone();
    let running = match server::bind(&config).and_then(|listeners| server::start(config, listeners)) {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = ready_file {
        if let Err(e) = server::write_ready_file(&path, running.main_port, running.mgmt_port) {
            tracing::error!(path = %path.display(), "cannot write the ready file: {e}");
        }
    }
    if let Some(signal) = signals.forever().next() {
        tracing::info!(
            signal,
            "shutting down: no new connections, finishing requests in flight"
        );
    }
    match running.shutdown() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("store flush at shutdown failed: {e}");
            ExitCode::FAILURE
        }
    }
}
