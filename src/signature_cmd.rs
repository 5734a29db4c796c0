//! `log-gardener signature`: stdin messages to signatures, one line each.

use std::io::{BufRead, BufWriter, Write};

use gardener_processor::signature::{SignatureConfig, Signer};

/// Streams stdin to stdout; invalid UTF-8 is replaced rather than refused,
/// so that one odd line never stops a pipeline.
pub fn run(config: &SignatureConfig, service: &str) -> anyhow::Result<()> {
    let signer = Signer::new(config)?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::new();
    let mut reader = std::io::BufReader::new(stdin);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let message = text.trim_end_matches(['\n', '\r']);
        let signature = signer.sign_message(service, message);
        let result = writeln!(
            out,
            "{}\t{}\t{}",
            signature.hex(),
            signature.category,
            signature.template.replace(['\t', '\n'], " ")
        );
        if let Err(error) = result {
            // A closed pipe (`| head`) is a normal end, not a failure.
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(error.into());
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
