//! log-gardener: an OpenTelemetry-compatible collector that gives every
//! warning, error, error span and 5xx a deterministic error signature, checks
//! trace context, and derives the SLIs behind your alerts.

mod admin;
mod api; // gardener report
mod cli;
mod config;
mod enrich;
// perf tooling: `log-gardener loadgen` (benches/README.md)
mod loadgen;
mod pipeline;
mod receiver;
mod replay; // gardener report
mod report_cmd; // gardener report
mod run;
mod signature_cmd;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli);
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("log-gardener: {error:#}");
            ExitCode::FAILURE
        }
    }
}
