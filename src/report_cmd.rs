//! `log-gardener report`: the gardener report from a running collector
//! (`--url`, GET /v1/report) or from a file (`--from`: a log export, processed
//! locally like `replay FILE`, or a saved JSON report, re-rendered).

use std::path::Path;

use anyhow::{bail, Context};
use gardener_processor::report::Report;

use crate::replay::{self, MapOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
}

pub fn print(report: &Report, format: ReportFormat) -> anyhow::Result<()> {
    let text = match format {
        ReportFormat::Markdown => report.to_markdown(),
        ReportFormat::Json => serde_json::to_string_pretty(report)? + "\n",
    };
    crate::cli::write_stdout(&text)
}

/// GET {url}/v1/report over plain HTTP/1.1.
pub fn fetch(url: &str) -> anyhow::Result<Report> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--url {url}: expected http://HOST:PORT"))?;
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let path = if base.ends_with("/v1/report") {
        base.to_string()
    } else {
        format!("{base}/v1/report")
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(&addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let mut body = response[split + 4..].to_vec();
    if head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    }) {
        body = dechunk(&body)?;
    }
    if status != 200 {
        bail!(
            "GET {url}{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("decoding the report")
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_text = std::str::from_utf8(&body[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).context("short chunk")?);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

/// `--from FILE`: a saved JSON report, or a log export processed locally.
pub fn from_file(
    path: &Path,
    config: &gardener_processor::ProcessorConfig,
    options: &MapOptions,
) -> anyhow::Result<Report> {
    if let Some(report) = replay::read_saved_report(path) {
        return Ok(report);
    }
    replay::report_locally(path, config, options)
}
