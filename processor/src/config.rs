//! `processors.gardener`: the enrichment stage's configuration.

use serde::Deserialize;

use crate::signature::SignatureConfig;
use crate::sli::SliConfig;
use crate::trace_context::TraceContextConfig;

/// Configuration of the gardener processor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// `false` turns enrichment off: records are counted and forwarded
    /// untouched (used to measure what enrichment costs).
    pub enabled: bool,
    /// Which records get a signature, the signature budget, user rules.
    pub signatures: SignatureConfig,
    /// Trace-context checks, orphan detection, ID-consistency rules.
    pub trace_context: TraceContextConfig,
    /// SLI definitions (built-ins and user-defined).
    pub sli: SliConfig,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            signatures: SignatureConfig::default(),
            trace_context: TraceContextConfig::default(),
            sli: SliConfig::default(),
        }
    }
}

impl ProcessorConfig {
    /// Checks what types alone cannot, by compiling everything once.
    pub fn validate(&self) -> Result<(), String> {
        crate::enrich::Processor::new(self)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
