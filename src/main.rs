//! The `log-gardener` command; everything lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use log_gardener::cli;

/// mimalloc instead of the system allocator (feature `mimalloc`, off by
/// default): decoding OTLP allocates a string per attribute key and value, and
/// glibc's allocator was the largest single cost of a record. Run it with
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` to keep the idle RSS at the system
/// allocator's (benches/README.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
