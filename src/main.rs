//! The `log-gardener` command; everything lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use log_gardener::cli;

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
