//! Monitored resource detection: Cloud Run → `generic_task`, GKE →
//! `k8s_container`, elsewhere `generic_node`.
//!
//! [`detect`] is a pure function of the environment variables, the values
//! read from the metadata server (if any) and the configured overrides, so it
//! can be tested without a cloud.
//!
//! Cloud Run follows the mapping of Google's own OpenTelemetry exporters
//! (`generic_task` with `location` = region, `job` = service name, `task_id`
//! = instance id); `namespace`, which they take from `service.namespace`
//! (unset on Cloud Run), is the Cloud Run service name here so that it is
//! never empty.

use std::collections::{BTreeMap, HashMap};

use gardener_proto::api::MonitoredResource;

use super::config::ResourceOverride;
use super::series::sanitize_label_value;

/// Labels the Cloud Monitoring API requires per resource type (`project_id`
/// included; it is always set to the exporter's project).
pub fn required_labels(resource_type: &str) -> Option<&'static [&'static str]> {
    match resource_type {
        "generic_task" => Some(&["project_id", "location", "namespace", "job", "task_id"]),
        "k8s_container" => Some(&[
            "project_id",
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ]),
        "generic_node" => Some(&["project_id", "location", "namespace", "node_id"]),
        _ => None,
    }
}

/// Values read from the GCE metadata server (all optional; `None` when not on
/// Google Cloud or when a value is absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataValues {
    /// `project/project-id`.
    pub project_id: Option<String>,
    /// `instance/region` (Cloud Run), last path segment: `us-central1`.
    pub region: Option<String>,
    /// `instance/zone`, last path segment: `us-central1-a`.
    pub zone: Option<String>,
    /// `instance/id`.
    pub instance_id: Option<String>,
    /// `instance/attributes/cluster-name` (GKE).
    pub cluster_name: Option<String>,
    /// `instance/attributes/cluster-location` (GKE).
    pub cluster_location: Option<String>,
}

/// Where the collector runs, as far as Cloud Monitoring cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    CloudRun,
    CloudRunJob,
    Kubernetes,
    Other,
}

fn get<'a>(env: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Platform from environment variables alone.
pub fn detect_platform(env: &HashMap<String, String>) -> Platform {
    if get(env, "K_SERVICE").is_some() {
        Platform::CloudRun
    } else if get(env, "CLOUD_RUN_JOB").is_some() {
        Platform::CloudRunJob
    } else if get(env, "KUBERNETES_SERVICE_HOST").is_some() {
        Platform::Kubernetes
    } else {
        Platform::Other
    }
}

/// The monitored resource for this process.
pub fn detect(
    env: &HashMap<String, String>,
    md: &MetadataValues,
    project_id: &str,
    overrides: &ResourceOverride,
) -> MonitoredResource {
    let platform = detect_platform(env);
    let resource_type = overrides.kind.clone().unwrap_or_else(|| {
        match platform {
            Platform::CloudRun | Platform::CloudRunJob => "generic_task",
            Platform::Kubernetes => "k8s_container",
            Platform::Other => "generic_node",
        }
        .to_string()
    });

    let region = md
        .region
        .clone()
        .or_else(|| md.zone.as_deref().and_then(region_of_zone));
    let hostname = get(env, "HOSTNAME").map(str::to_string);
    let first = |candidates: &[Option<&str>], fallback: &str| -> String {
        candidates
            .iter()
            .flatten()
            .find(|s| !s.is_empty())
            .map(|s| s.to_string())
            .unwrap_or_else(|| fallback.to_string())
    };

    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("project_id".into(), project_id.to_string());
    match resource_type.as_str() {
        "generic_task" => {
            let (namespace, job) = match platform {
                Platform::CloudRunJob => (get(env, "CLOUD_RUN_JOB"), get(env, "CLOUD_RUN_JOB")),
                _ => (get(env, "K_SERVICE"), get(env, "K_SERVICE")),
            };
            labels.insert(
                "location".into(),
                first(&[region.as_deref(), md.zone.as_deref()], "global"),
            );
            labels.insert("namespace".into(), first(&[namespace], "log-gardener"));
            labels.insert("job".into(), first(&[job], "log-gardener"));
            let task_index = match (
                get(env, "CLOUD_RUN_EXECUTION"),
                get(env, "CLOUD_RUN_TASK_INDEX"),
            ) {
                (Some(e), Some(i)) => Some(format!("{e}-{i}")),
                _ => None,
            };
            labels.insert(
                "task_id".into(),
                first(
                    &[
                        md.instance_id.as_deref(),
                        task_index.as_deref(),
                        hostname.as_deref(),
                    ],
                    "unknown",
                ),
            );
        }
        "k8s_container" => {
            labels.insert(
                "location".into(),
                first(
                    &[
                        md.cluster_location.as_deref(),
                        get(env, "CLUSTER_LOCATION"),
                        md.zone.as_deref(),
                        region.as_deref(),
                    ],
                    "global",
                ),
            );
            labels.insert(
                "cluster_name".into(),
                first(
                    &[md.cluster_name.as_deref(), get(env, "CLUSTER_NAME")],
                    "unknown",
                ),
            );
            labels.insert(
                "namespace_name".into(),
                first(
                    &[
                        get(env, "NAMESPACE_NAME"),
                        get(env, "POD_NAMESPACE"),
                        get(env, "K8S_NAMESPACE"),
                    ],
                    "default",
                ),
            );
            labels.insert(
                "pod_name".into(),
                first(&[get(env, "POD_NAME"), hostname.as_deref()], "unknown"),
            );
            labels.insert(
                "container_name".into(),
                first(&[get(env, "CONTAINER_NAME")], "log-gardener"),
            );
        }
        _ => {
            labels.insert(
                "location".into(),
                first(&[md.zone.as_deref(), region.as_deref()], "global"),
            );
            labels.insert("namespace".into(), "log-gardener".into());
            labels.insert(
                "node_id".into(),
                first(&[hostname.as_deref(), md.instance_id.as_deref()], "unknown"),
            );
        }
    }
    for (k, v) in &overrides.labels {
        labels.insert(k.clone(), v.clone());
    }
    let labels = labels
        .into_iter()
        .map(|(k, v)| (k, sanitize_label_value(&v)))
        .collect::<HashMap<_, _>>();
    MonitoredResource {
        r#type: resource_type,
        labels,
    }
}

/// `us-central1-a` → `us-central1`.
pub fn region_of_zone(zone: &str) -> Option<String> {
    let (region, suffix) = zone.rsplit_once('-')?;
    (suffix.len() == 1 && region.contains('-')).then(|| region.to_string())
}

/// Last path segment of a metadata value: `projects/123/zones/us-central1-a`
/// → `us-central1-a`.
pub fn last_segment(value: &str) -> String {
    value.trim().rsplit('/').next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What `detect` finds from `e` alone: no metadata server answers and
    /// nothing is overridden (project `proj`).
    fn detect_off_google(e: &HashMap<String, String>) -> MonitoredResource {
        detect(
            e,
            &MetadataValues::default(),
            "proj",
            &ResourceOverride::default(),
        )
    }

    fn labels(r: &MonitoredResource) -> BTreeMap<&str, &str> {
        r.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn assert_complete(r: &MonitoredResource) {
        let req = required_labels(&r.r#type).unwrap();
        let mut keys: Vec<&str> = r.labels.keys().map(String::as_str).collect();
        keys.sort();
        let mut want = req.to_vec();
        want.sort();
        assert_eq!(keys, want, "{r:?}");
        assert!(r.labels.values().all(|v| !v.is_empty()), "{r:?}");
    }

    #[test]
    fn cloud_run_service() {
        let e = env(&[
            ("K_SERVICE", "api"),
            ("K_REVISION", "api-00042-xyz"),
            ("K_CONFIGURATION", "api"),
            ("HOSTNAME", "localhost"),
        ]);
        let md = MetadataValues {
            project_id: Some("proj".into()),
            region: Some(last_segment("projects/123/regions/europe-west1")),
            instance_id: Some("00f46b9285".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.r#type, "generic_task");
        assert_complete(&r);
        assert_eq!(
            labels(&r),
            BTreeMap::from([
                ("project_id", "proj"),
                ("location", "europe-west1"),
                ("namespace", "api"),
                ("job", "api"),
                ("task_id", "00f46b9285"),
            ])
        );
    }

    #[test]
    fn cloud_run_without_metadata_fills_defaults() {
        let e = env(&[("K_SERVICE", "api")]);
        let r = detect_off_google(&e);
        assert_eq!(r.r#type, "generic_task");
        assert_complete(&r);
        assert_eq!(r.labels["location"], "global");
        assert_eq!(r.labels["task_id"], "unknown");
    }

    #[test]
    fn cloud_run_job() {
        let e = env(&[
            ("CLOUD_RUN_JOB", "nightly"),
            ("CLOUD_RUN_EXECUTION", "nightly-abc"),
            ("CLOUD_RUN_TASK_INDEX", "3"),
        ]);
        let md = MetadataValues {
            region: Some("us-east1".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.r#type, "generic_task");
        assert_complete(&r);
        assert_eq!(r.labels["job"], "nightly");
        assert_eq!(r.labels["task_id"], "nightly-abc-3");
        assert_eq!(r.labels["location"], "us-east1");
    }

    #[test]
    fn gke_container() {
        let e = env(&[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("NAMESPACE_NAME", "observability"),
            ("POD_NAME", "log-gardener-abcde"),
            ("CONTAINER_NAME", "gardener"),
            ("HOSTNAME", "log-gardener-abcde"),
        ]);
        let md = MetadataValues {
            project_id: Some("proj".into()),
            zone: Some(last_segment("projects/123/zones/us-central1-b")),
            cluster_name: Some("prod".into()),
            cluster_location: Some("us-central1".into()),
            instance_id: Some("4242".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.r#type, "k8s_container");
        assert_complete(&r);
        assert_eq!(
            labels(&r),
            BTreeMap::from([
                ("project_id", "proj"),
                ("location", "us-central1"),
                ("cluster_name", "prod"),
                ("namespace_name", "observability"),
                ("pod_name", "log-gardener-abcde"),
                ("container_name", "gardener"),
            ])
        );
    }

    #[test]
    fn kubernetes_without_downward_api() {
        let e = env(&[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("HOSTNAME", "pod-1"),
        ]);
        let r = detect_off_google(&e);
        assert_eq!(r.r#type, "k8s_container");
        assert_complete(&r);
        assert_eq!(r.labels["pod_name"], "pod-1");
        assert_eq!(r.labels["cluster_name"], "unknown");
        assert_eq!(r.labels["location"], "global");
    }

    /// Off GKE's metadata server, the cluster's name and location come from
    /// `CLUSTER_NAME` and `CLUSTER_LOCATION` (what the Helm chart's
    /// `googleCloud.clusterName` / `clusterLocation` set); the metadata
    /// server's values win where it answers.
    #[test]
    fn kubernetes_cluster_from_env() {
        let e = env(&[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("HOSTNAME", "pod-1"),
            ("CLUSTER_NAME", "prod-eu"),
            ("CLUSTER_LOCATION", "europe-west1"),
        ]);
        let r = detect_off_google(&e);
        assert_eq!(r.r#type, "k8s_container");
        assert_complete(&r);
        assert_eq!(r.labels["cluster_name"], "prod-eu");
        assert_eq!(r.labels["location"], "europe-west1");
        // A zone alone (a GCE VM's metadata) does not beat the variable.
        let md = MetadataValues {
            zone: Some("europe-west1-b".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.labels["location"], "europe-west1");
        let md = MetadataValues {
            cluster_name: Some("gke-name".into()),
            cluster_location: Some("us-central1".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.labels["cluster_name"], "gke-name");
        assert_eq!(r.labels["location"], "us-central1");
    }

    #[test]
    fn generic_node() {
        let e = env(&[("HOSTNAME", "laptop")]);
        let r = detect_off_google(&e);
        assert_eq!(r.r#type, "generic_node");
        assert_complete(&r);
        assert_eq!(
            labels(&r),
            BTreeMap::from([
                ("project_id", "proj"),
                ("location", "global"),
                ("namespace", "log-gardener"),
                ("node_id", "laptop"),
            ])
        );
        // On a GCE VM the zone is known.
        let md = MetadataValues {
            zone: Some("asia-east1-c".into()),
            ..Default::default()
        };
        let r = detect(&e, &md, "proj", &ResourceOverride::default());
        assert_eq!(r.labels["location"], "asia-east1-c");
    }

    #[test]
    fn overrides() {
        let e = env(&[("K_SERVICE", "api")]);
        let o = ResourceOverride {
            kind: Some("generic_node".into()),
            labels: BTreeMap::from([("namespace".to_string(), "team-a".to_string())]),
        };
        let r = detect(&e, &MetadataValues::default(), "proj", &o);
        assert_eq!(r.r#type, "generic_node");
        assert_complete(&r);
        assert_eq!(r.labels["namespace"], "team-a");
    }

    #[test]
    fn zones() {
        assert_eq!(
            region_of_zone("us-central1-a").as_deref(),
            Some("us-central1")
        );
        assert_eq!(region_of_zone("us-central1"), None);
        assert_eq!(last_segment("projects/1/regions/eu-west4"), "eu-west4");
        assert_eq!(last_segment("plain"), "plain");
    }
}
