//! Every collector configuration shown in the documentation is one that
//! `log-gardener check-config` accepts, so that a reader who copies a block
//! gets a working config, and a renamed or removed key fails here before it
//! fails a user.
//!
//! The blocks are the ```` ```yaml ```` blocks of README.md and
//! exporter/README.md (the Helm chart's README shows chart values, which
//! the chart's own checks render). Paths a block names under `/etc/` or
//! `/var/` are the reader's; the test points them at files of its own:
//! TLS paths at a certificate and key made here, other paths at a temp
//! directory.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The documents whose YAML blocks are collector configurations.
const DOCUMENTS: &[&str] = &["README.md", "exporter/README.md"];

/// The ```` ```yaml ```` blocks of `text`, with the line each starts on.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((number + 2, String::new()));
            }
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "a ```yaml block is never closed");
    blocks
}

/// A self-signed certificate and its key, as PEM files in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("generate a key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("certificate parameters")
        .self_signed(&key)
        .expect("self-sign");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// `block` with the reader's paths replaced by the test's: certificate
/// files (`cert_file`, `client_ca_file`) by `cert`, key files by `key`,
/// anything else under `/etc/` or `/var/` by a path in `dir`.
fn with_local_paths(block: &str, cert: &Path, key: &Path, dir: &Path) -> String {
    block
        .lines()
        .map(|line| {
            let Some((name, value)) = line.split_once(": ") else {
                return line.to_string();
            };
            let value = value.trim();
            if !(value.starts_with("/etc/") || value.starts_with("/var/")) {
                return line.to_string();
            }
            let local = match name.trim() {
                "key_file" => key.to_path_buf(),
                n if n.ends_with("_file") => cert.to_path_buf(),
                _ => dir.join(value.trim_start_matches('/').replace('/', "_")),
            };
            format!("{name}: {}", local.display())
        })
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn every_documented_config_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let mut checked = 0;
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(document)).unwrap();
        for (line, block) in yaml_blocks(&text) {
            let block = with_local_paths(&block, &cert, &key, dir.path());
            let path = dir.path().join(format!("block-{checked}.yaml"));
            std::fs::write(&path, &block).unwrap();
            let output = support::run_with_timeout(
                Command::new(env!("CARGO_BIN_EXE_log-gardener"))
                    .arg("check-config")
                    .arg(&path)
                    // The exporter's example reads its token from the environment.
                    .env("OTLP_TOKEN", "example-token"),
                Duration::from_secs(30),
            );
            assert!(
                output.status.success(),
                "{document}, the block at line {line}, fails check-config:\n{}\n{block}",
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    // README's reference config, TLS, SLI override and persistent queue;
    // the exporter's OTLP, debug and Cloud Monitoring examples.
    assert!(checked >= 7, "only {checked} blocks found");
}

#[test]
fn yaml_blocks_are_found_with_their_lines() {
    let text = "intro\n```yaml\na: 1\nb: 2\n```\ntext\n  ```yaml\nc: 3\n  ```\n";
    assert_eq!(
        yaml_blocks(text),
        vec![(3, "a: 1\nb: 2\n".to_string()), (8, "c: 3\n".to_string())]
    );
}
