//! The `log-gardener` command; everything lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use log_gardener::cli;

/// jemalloc instead of the system allocator (feature `jemalloc`, on by
/// default): decoding OTLP allocates a string per attribute key and value,
/// and the batch is freed on another thread after export. glibc's allocator
/// was the largest single cost of a record; jemalloc's thread caches take
/// such cross-thread frees cheaply (benches/README.md, "Allocator").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
