//! Loghub-2k loading, shared by the signature bench and the accuracy
//! example (`#[path]`-included: it is not a target of its own).

use std::path::Path;

/// The 16 datasets of Loghub-2k.
pub const DATASETS: [&str; 16] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "HPC",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Mac",
    "OpenSSH",
    "OpenStack",
    "Proxifier",
    "Spark",
    "Thunderbird",
    "Windows",
    "Zookeeper",
];

/// One line of a `*_2k.log_structured.csv` ground-truth file.
#[derive(Debug, serde::Deserialize)]
pub struct Line {
    #[serde(rename = "Content")]
    pub content: String,
    #[serde(rename = "EventId")]
    pub event_id: String,
    #[serde(rename = "EventTemplate")]
    pub template: String,
}

/// Reads `<dir>/<name>/<name>_2k.log_structured.csv`.
pub fn read(dir: &Path, name: &str) -> Result<Vec<Line>, csv::Error> {
    let path = dir.join(name).join(format!("{name}_2k.log_structured.csv"));
    csv::Reader::from_path(path)?.deserialize().collect()
}
