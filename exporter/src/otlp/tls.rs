//! TLS for the HTTP client (gRPC uses tonic's own TLS settings, built from
//! the same `tls` section in `grpc.rs`): roots from `ca_file`, else the
//! system's, else the Mozilla roots; an optional client certificate.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::config::TlsConfig;

/// The system's root certificates, loaded once.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        if !result.errors.is_empty() {
            tracing::debug!(errors = ?result.errors, "some system root certificates could not be loaded");
        }
        result.certs
    })
}

/// Whether the system has root certificates at all.
pub fn native_roots_available() -> bool {
    !native_roots().is_empty()
}

/// A rustls client configuration for the `tls` section.
pub fn rustls_config(tls: &TlsConfig) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = read_certs(path, "ca_file")?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.ca_file `{path}`: {e}"))?;
            }
        }
        None if native_roots_available() => {
            roots.add_parsable_certificates(native_roots().iter().cloned());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("exporters.otlp.tls: {e}"))?
        .with_root_certificates(roots);
    // hyper-rustls sets ALPN (http/1.1) itself.
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "cert_file")?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.key_file `{key}`: {e}"))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.cert_file: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

fn read_certs(path: &str, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.{key} `{path}`: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("exporters.otlp.tls.{key} `{path}`: no PEM certificate found");
    }
    Ok(certs)
}
