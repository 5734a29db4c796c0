//! Command-line interface (clap). `run` is the default subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;

/// An OpenTelemetry-compatible collector that turns WARNING and ERROR floods
/// into error signatures, trace-context checks and SLI counters.
#[derive(Debug, Parser)]
#[command(name = "log-gardener", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `run`, accepted without the subcommand.
    #[command(flatten)]
    pub run: RunArgs,

    /// Format of the collector's own logs on stderr (`json` suits Cloud Logging).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter for the collector's own logs (tracing EnvFilter syntax).
    #[arg(long, global = true, env = "LOG_GARDENER_LOG", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector (the default). Without --config it runs the embedded
    /// default: OTLP gRPC :4317, OTLP HTTP :4318, admin and Prometheus :9464.
    Run(RunArgs),
    /// Validate a configuration (several files are merged, later ones
    /// overriding, as repeated `run --config`); errors name the file, the
    /// line and the key.
    CheckConfig {
        /// The YAML file(s) to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override one key after the files (as `run --set`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Read one message per line on stdin and print, per line,
    /// `SIGNATURE<TAB>CATEGORY<TAB>TEMPLATE` (the collector's own code path).
    Signature {
        /// service.name that enters the fingerprint.
        #[arg(long, default_value = "unknown")]
        service: String,
        /// Take the signature settings and user rules from this config file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    // perf tooling (benches/README.md)
    /// Send a bounded, realistic OTLP load to a collector and print one JSON
    /// line of results (records/s, latency percentiles, errors).
    Loadgen(crate::loadgen::LoadgenArgs),
    // gardener report: replay and report subcommands.
    /// Read a Cloud Logging export (`gcloud logging read --format=json`), OTLP/JSON
    /// or JSON lines (LogEntry objects, or an application's structured stdout
    /// lines); process it locally and print the report, or send it to a
    /// collector with --to.
    Replay {
        /// The export file.
        file: PathBuf,
        /// Send to a collector instead: http://HOST:4318 (OTLP/HTTP protobuf) or
        /// grpc://HOST:4317; a batch is retried with backoff while the collector
        /// answers busy (429, 502, 503, 504 or UNAVAILABLE) or cannot be reached.
        #[arg(long)]
        to: Option<String>,
        /// With --to: how long one batch is retried while the collector cannot
        /// be reached or answers busy (at most 10 attempts); then replay fails.
        #[arg(long, requires = "to", value_parser = humantime::parse_duration, default_value = "30s")]
        timeout: std::time::Duration,
        /// With --to: the bearer token of a collector whose receiver has
        /// `auth_token` (sent as `Authorization: Bearer TOKEN`). Prefer the
        /// environment variable: a flag's value shows in the process list.
        #[arg(long, env = "LOG_GARDENER_AUTH_TOKEN", hide_env_values = true)]
        auth_token: Option<String>,
        #[command(flatten)]
        local: LocalReportArgs,
    },
    /// Print the gardener report (Markdown or JSON) from a running collector
    /// (--url http://HOST:9464) or a file (--from: a log export or a saved JSON report).
    Report {
        /// The collector's admin URL (GET /v1/report).
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        url: Option<String>,
        /// A log export (processed locally, like `replay FILE`) or a saved JSON report.
        #[arg(long)]
        from: Option<PathBuf>,
        #[command(flatten)]
        local: LocalReportArgs,
    },
}

/// What `replay` and `report --from` share: how a log export is read and
/// processed locally, and how the report is printed.
#[derive(Debug, Clone, Args)]
pub struct LocalReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = crate::report_cmd::ReportFormat::Markdown)]
    format: crate::report_cmd::ReportFormat,
    /// Resource label holding the service name (or `labels.KEY` for an entry
    /// label); default service_name, container_name, function_name, module_id.
    #[arg(long)]
    service_name_from: Option<String>,
    /// Take the processor settings from this config file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

impl LocalReportArgs {
    fn map_options(&self) -> crate::replay::MapOptions {
        crate::replay::MapOptions {
            service_name_from: self.service_name_from.clone(),
        }
    }

    fn processor_config(&self) -> anyhow::Result<gardener_processor::ProcessorConfig> {
        Ok(Config::load(self.config.as_deref())?.processors.gardener)
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// YAML configuration file (OpenTelemetry-Collector shaped, ${env:VAR}
    /// expanded). Repeat it to merge several: later files override earlier
    /// ones key by key (maps merge, lists and values are replaced).
    #[arg(long, short = 'c', env = "LOG_GARDENER_CONFIG")]
    pub config: Vec<PathBuf>,
    /// Override one key after the files, as the Collector's `--set`:
    /// `--set exporters::otlp::endpoint=http://gateway:4317` (keys
    /// separated by `::` or `.`, the value read as YAML). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl Cli {
    /// Parses the process's command line; on an error, prints it and exits
    /// as clap does.
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` (the program name first). The global flags
    /// (`--log-format`, `--log-level`) go before or after the subcommand;
    /// `run`'s own `--config` and `--set`, accepted without a subcommand,
    /// are refused before one (`log-gardener -c x.yaml check-config y.yaml`
    /// would otherwise ignore them).
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some(subcommand) = matches.subcommand_name() {
            for (id, flag) in [("config", "--config"), ("set", "--set")] {
                if matches.value_source(id) == Some(ValueSource::CommandLine) {
                    return Err(command.error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "{flag} before the subcommand '{subcommand}' is not read by it; \
                             give '{subcommand}' its options after its name \
                             (see log-gardener {subcommand} --help)"
                        ),
                    ));
                }
            }
        }
        Self::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
    }
}

/// Sets up the collector's own logs on stderr (stdout belongs to the debug exporter).
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => run_collector(cli.run),
        Some(Command::Run(args)) => run_collector(args),
        Some(Command::CheckConfig { files, set }) => {
            let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let config = Config::load_all(&paths, &set)?;
            config.validate_deep()?;
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            // What the pipelines (or the defaults) do with each signal.
            let routing = config.routing()?;
            write_stdout(&format!("{}: ok\n{routing}", names.join(" + ")))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Signature { service, config }) => {
            let config = Config::load(config.as_deref())?;
            crate::signature_cmd::run(&config.processors.gardener.signatures, &service)?;
            Ok(ExitCode::SUCCESS)
        }
        // perf tooling (benches/README.md)
        Some(Command::Loadgen(args)) => crate::loadgen::run(args),
        // gardener report
        Some(Command::Replay {
            file,
            to,
            timeout,
            auth_token,
            local,
        }) => {
            match to {
                Some(to) => {
                    let sending = crate::replay::Sending {
                        timeout,
                        auth_token: auth_token.as_deref(),
                    };
                    let read = crate::replay::send(&file, &to, &local.map_options(), &sending)?;
                    eprintln!("replay: sent {} log records to {to}", read.records);
                }
                None => {
                    let report = crate::replay::report_locally(
                        &file,
                        &local.processor_config()?,
                        &local.map_options(),
                    )?;
                    crate::report_cmd::print(&report, local.format)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Report { url, from, local }) => {
            let report = match (url, from) {
                (Some(url), _) => crate::report_cmd::fetch(&url)?,
                (None, Some(from)) => crate::report_cmd::from_file(
                    &from,
                    &local.processor_config()?,
                    &local.map_options(),
                )?,
                (None, None) => anyhow::bail!("report: give --url or --from"),
            };
            crate::report_cmd::print(&report, local.format)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::DefaultConfig) => {
            write_stdout(crate::config::EMBEDDED_DEFAULT)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a command's output to stdout. A reader that went away (`| head`)
/// ends the output, as for `signature`: not a failure, and never the panic
/// of `print!` on a closed pipe.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run_collector(args: RunArgs) -> anyhow::Result<ExitCode> {
    let paths: Vec<&std::path::Path> = args.config.iter().map(PathBuf::as_path).collect();
    let config = Config::load_all(&paths, &args.set)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gardener")
        .build()?;
    runtime.block_on(crate::run::run(config))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, LogFormat};
    use clap::CommandFactory;

    /// The global flags are accepted before the subcommand as after it, as
    /// the README's "Global flags" says (`log-gardener --log-format json run`
    /// was refused as a conflict with the subcommand).
    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        for args in [
            &[
                "log-gardener",
                "--log-format",
                "json",
                "run",
                "-c",
                "a.yaml",
            ][..],
            &[
                "log-gardener",
                "run",
                "--log-format",
                "json",
                "-c",
                "a.yaml",
            ][..],
        ] {
            let cli = Cli::try_parse_args(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.log_format, LogFormat::Json, "{args:?}");
            match cli.command {
                Some(Command::Run(run)) => {
                    assert_eq!(run.config, [std::path::PathBuf::from("a.yaml")])
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
        let cli = Cli::try_parse_args([
            "log-gardener",
            "--log-level",
            "debug",
            "check-config",
            "a.yaml",
        ])
        .unwrap();
        assert_eq!(cli.log_level, "debug");
        assert!(matches!(cli.command, Some(Command::CheckConfig { .. })));
        // Without a subcommand, run's flags as before.
        let cli =
            Cli::try_parse_args(["log-gardener", "--log-format", "json", "-c", "a.yaml"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.config, [std::path::PathBuf::from("a.yaml")]);
        assert_eq!(cli.log_format, LogFormat::Json);
    }

    /// `run`'s --config and --set before another subcommand are refused,
    /// naming the flag, rather than ignored.
    #[test]
    fn run_flags_before_a_subcommand_are_refused() {
        for (args, flag) in [
            (
                &["log-gardener", "-c", "x.yaml", "check-config", "y.yaml"][..],
                "--config",
            ),
            (
                &["log-gardener", "--set", "a.b=1", "default-config"][..],
                "--set",
            ),
        ] {
            let error = Cli::try_parse_args(args).unwrap_err().to_string();
            assert!(
                error.contains(&format!("{flag} before the subcommand")),
                "{args:?}: {error}"
            );
        }
    }

    /// `replay --help` names every answer `--to` retries (see `replay::Retry`
    /// and its HTTP and gRPC callers), not only 503.
    #[test]
    fn replay_to_help_names_the_retried_answers() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("replay")
            .expect("replay subcommand")
            .render_long_help()
            .to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("429, 502, 503, 504 or UNAVAILABLE")
                && flat.contains("cannot be reached"),
            "{help}"
        );
    }
}
