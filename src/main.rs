//! The `log-gardener` command; everything lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use log_gardener::cli;

/// jemalloc instead of the system allocator (feature `jemalloc`, on by
/// default): decoding OTLP allocates a string per attribute key and value,
/// and the batch is freed on another thread after export. glibc's allocator
/// was the largest single cost of a record; jemalloc's thread caches take
/// such cross-thread frees cheaply (benches/README.md, "Allocator").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them).
///
/// `background_thread`: freed memory goes back to the system on a timer
/// (`dirty_decay_ms`, 10 s), from a thread of jemalloc's own. Without it
/// jemalloc returns memory only from within later allocations in the same
/// arena, so after a burst (600 uploads of 1 MiB each, abandoned) the
/// resident memory stayed at 260 MiB for minutes with nothing in flight, and
/// the memory limiter, which reads resident memory, kept refusing every
/// request. With it the collector was back at 25 MiB and accepting 12 s
/// after the burst.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true\0";

fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    cli::init_logging(&cli);
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("log-gardener: {error:#}");
            ExitCode::FAILURE
        }
    }
}
