//! `processors.gardener`: the enrichment stage's configuration.

use serde::Deserialize;

/// Configuration of the gardener processor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// `false` turns enrichment off: records are counted and forwarded
    /// untouched (used to measure what enrichment costs).
    pub enabled: bool,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl ProcessorConfig {
    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
