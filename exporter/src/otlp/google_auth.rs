//! `auth.google`: Google OAuth 2.0 access tokens on every OTLP request, so
//! that enriched logs and traces can go straight to Google Cloud's
//! Telemetry (OTLP) API (`https://telemetry.googleapis.com`), as the
//! Collector's `googleclientauth` extension does for its exporters.
//!
//! Tokens come from `gcp_auth` (Application Default Credentials: the
//! metadata server on Cloud Run and GKE, `GOOGLE_APPLICATION_CREDENTIALS`,
//! gcloud's credentials), or from the service-account key in
//! `credentials_file`; `gcp_auth` caches each token and fetches a new one
//! before it expires, so a request costs a token fetch only about once an
//! hour. With the token go Google's system parameters: `x-goog-project-id`
//! (the project the telemetry belongs to when its resource has no
//! `gcp.project_id`) and, when set, `x-goog-user-project` (the quota
//! project).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::retry::Failure;

/// The scope asked for by default: the Telemetry API accepts it for
/// traces, logs and metrics.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// `exporters.otlp.auth.google`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleAuthConfig {
    /// A service-account key (JSON); unset: Application Default Credentials.
    pub credentials_file: Option<PathBuf>,
    /// `x-goog-project-id`; unset: `GOOGLE_CLOUD_PROJECT`, else the
    /// credentials' project (the metadata server's on Cloud Run and GKE).
    pub project: Option<String>,
    /// `x-goog-user-project`, the project billed for quota; unset: none.
    pub quota_project: Option<String>,
    /// OAuth 2.0 scopes of the token.
    pub scopes: Vec<String>,
}

impl Default for GoogleAuthConfig {
    fn default() -> Self {
        Self {
            credentials_file: None,
            project: None,
            quota_project: None,
            scopes: vec![DEFAULT_SCOPE.to_string()],
        }
    }
}

impl GoogleAuthConfig {
    /// Checks what serde cannot; the message names the key under
    /// `exporters.otlp.auth.google`.
    pub fn validate(&self) -> Result<(), String> {
        const KEY: &str = "exporters.otlp.auth.google";
        if self.scopes.is_empty() || self.scopes.iter().any(|s| s.trim().is_empty()) {
            return Err(format!(
                "{KEY}.scopes: empty; leave it out for {DEFAULT_SCOPE}"
            ));
        }
        for (key, value) in [
            ("project", &self.project),
            ("quota_project", &self.quota_project),
        ] {
            if let Some(value) = value {
                if value.is_empty() || HeaderValue::from_str(value).is_err() {
                    return Err(format!("{KEY}.{key}: {value:?} is not a project id"));
                }
            }
        }
        if let Some(file) = &self.credentials_file {
            if !file.is_file() {
                return Err(format!(
                    "{KEY}.credentials_file: {} is not a readable file",
                    file.display()
                ));
            }
        }
        Ok(())
    }
}

/// A token source and the headers that go with it.
pub struct GoogleAuth {
    provider: Arc<dyn gcp_auth::TokenProvider>,
    scopes: Vec<String>,
    /// `x-goog-project-id` and `x-goog-user-project`, fixed at start-up.
    parameters: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for GoogleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAuth")
            .field("scopes", &self.scopes)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

impl GoogleAuth {
    /// Finds the credentials and the project at start-up, so that a
    /// collector without credentials fails to start with the reason rather
    /// than failing every export.
    pub async fn new(cfg: &GoogleAuthConfig) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let provider: Arc<dyn gcp_auth::TokenProvider> = match &cfg.credentials_file {
            Some(file) => Arc::new(
                gcp_auth::CustomServiceAccount::from_file(file)
                    .with_context(|| format!("auth.google.credentials_file {}", file.display()))?,
            ),
            None => gcp_auth::provider().await.context(
                "auth.google: no Google credentials found (metadata server, GOOGLE_APPLICATION_CREDENTIALS or gcloud's application default credentials)",
            )?,
        };
        let project = match &cfg.project {
            Some(project) => Some(project.clone()),
            None => match std::env::var("GOOGLE_CLOUD_PROJECT") {
                Ok(project) if !project.is_empty() => Some(project),
                _ => provider.project_id().await.ok().map(|p| p.to_string()),
            },
        };
        let mut parameters = Vec::new();
        for (name, value) in [
            ("x-goog-project-id", project),
            ("x-goog-user-project", cfg.quota_project.clone()),
        ] {
            if let Some(value) = value {
                let value = HeaderValue::from_str(&value)
                    .with_context(|| format!("auth.google: project {value:?}"))?;
                parameters.push((HeaderName::from_static(name), value));
            }
        }
        Ok(Self {
            provider,
            scopes: cfg.scopes.clone(),
            parameters,
        })
    }

    /// The headers of one request: `authorization: Bearer …` (a cached
    /// token, or a fresh one when it is about to expire) and the system
    /// parameters. A token that cannot be had is a retryable failure: the
    /// metadata server or the token endpoint may be back by the next try.
    pub async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let token = self
            .provider
            .token(&scopes)
            .await
            .map_err(|e| Failure::Retryable {
                message: format!("cannot get a Google access token: {e}"),
                hint: None,
            })?;
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {}", token.as_str())).map_err(|_| {
                Failure::Retryable {
                    message: "the Google access token is not a valid header value".into(),
                    hint: None,
                }
            })?;
        bearer.set_sensitive(true);
        let mut headers = Vec::with_capacity(1 + self.parameters.len());
        headers.push((http::header::AUTHORIZATION, bearer));
        headers.extend(self.parameters.iter().cloned());
        Ok(headers)
    }
}
