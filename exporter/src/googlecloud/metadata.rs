//! A very small client for the GCE metadata server
//! (`http://metadata.google.internal/computeMetadata/v1/...`), used on Cloud
//! Run, GKE and GCE to find the project, region/zone, instance id and GKE
//! cluster. Every call has a short timeout; off Google Cloud the first probe
//! fails fast and nothing else is asked.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::resource::{last_segment, MetadataValues};

const DEFAULT_HOST: &str = "metadata.google.internal";

/// Metadata server client.
#[derive(Clone)]
pub struct MetadataClient {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl MetadataClient {
    /// `GCE_METADATA_HOST` (as Google's client libraries honour it) or
    /// `metadata.google.internal`.
    pub fn from_env(env: &HashMap<String, String>, timeout: Duration) -> Self {
        let host = env
            .get("GCE_METADATA_HOST")
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_HOST);
        Self::new(host, timeout)
    }

    pub fn new(host: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        Self {
            base: format!("http://{host}/computeMetadata/v1/"),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// `GET <path>` with `Metadata-Flavor: Google`; `None` on any failure.
    pub async fn get(&self, path: &str) -> Option<String> {
        let req = http::Request::get(format!("{}{}", self.base, path))
            .header("Metadata-Flavor", "Google")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let fut = async {
            let resp = self.client.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            let text = String::from_utf8(body.to_vec()).ok()?;
            let text = text.trim().to_string();
            (!text.is_empty()).then_some(text)
        };
        tokio::time::timeout(self.timeout, fut).await.ok().flatten()
    }

    /// Everything the resource detection may use. Empty when the server does
    /// not answer.
    pub async fn fetch(&self) -> MetadataValues {
        let Some(project_id) = self.get("project/project-id").await else {
            return MetadataValues::default();
        };
        let (region, zone, instance_id, cluster_name, cluster_location) = tokio::join!(
            self.get("instance/region"),
            self.get("instance/zone"),
            self.get("instance/id"),
            self.get("instance/attributes/cluster-name"),
            self.get("instance/attributes/cluster-location"),
        );
        MetadataValues {
            project_id: Some(project_id),
            region: region.map(|r| last_segment(&r)),
            zone: zone.map(|z| last_segment(&z)),
            instance_id,
            cluster_name,
            cluster_location,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake metadata server answering a few paths, only with the
    /// `Metadata-Flavor: Google` header.
    async fn fake_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                    let flavored = req.to_ascii_lowercase().contains("metadata-flavor: google");
                    let body = match path.as_str() {
                        _ if !flavored => None,
                        "/computeMetadata/v1/project/project-id" => Some("my-proj"),
                        "/computeMetadata/v1/instance/region" => {
                            Some("projects/12/regions/europe-west1")
                        }
                        "/computeMetadata/v1/instance/id" => Some("abc123"),
                        _ => None,
                    };
                    let resp = match body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n{b}",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr.to_string()
    }

    #[tokio::test]
    async fn reads_values() {
        let host = fake_server().await;
        let env = HashMap::from([("GCE_METADATA_HOST".to_string(), host)]);
        let md = MetadataClient::from_env(&env, Duration::from_secs(2))
            .fetch()
            .await;
        assert_eq!(
            md,
            MetadataValues {
                project_id: Some("my-proj".into()),
                region: Some("europe-west1".into()),
                instance_id: Some("abc123".into()),
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn nothing_when_no_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let md = MetadataClient::new(&addr.to_string(), Duration::from_millis(500))
            .fetch()
            .await;
        assert_eq!(md, MetadataValues::default());
    }
}
