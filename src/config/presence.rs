//! OpenTelemetry-Collector style "present means enabled" for optional sections.

use serde::{Deserialize, Deserializer};

/// A key written with no value (`grpc:`) enables the section with its
/// defaults, as in the OpenTelemetry Collector; a missing key leaves it off.
pub fn present_means_enabled<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}
