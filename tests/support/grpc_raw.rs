//! A raw HTTP/2 gRPC client (the `h2` crate), for requests no gRPC library
//! sends: arbitrary headers (`grpc-encoding: br`), hand-made frames
//! (compressed flag without an encoding, a length past the data) and
//! streams left open on purpose.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
pub const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
pub const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// How long any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// One gRPC message frame: the compressed flag, the length, the bytes.
pub fn frame(message: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(u8::from(compressed));
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The answer to a gRPC call: `grpc-status` (from the headers of a
/// trailers-only response, else from the trailers) and `grpc-message`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: tonic::Code,
    pub message: String,
    pub headers: http::HeaderMap,
}

/// One HTTP/2 connection to a gRPC receiver.
pub struct Connection {
    client: h2::client::SendRequest<Bytes>,
    authority: String,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Connection {
        let tcp = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect within 10 s")
            .expect("connect to the gRPC receiver");
        let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Connection {
            client,
            authority: addr.to_string(),
        }
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS as the server announced it (once its
    /// SETTINGS arrived: after a first call).
    pub fn max_concurrent_streams(&self) -> usize {
        self.client.current_max_send_streams()
    }

    /// Opens a call to `path` with `headers` and sends `body`; the stream
    /// stays open (a client still sending) unless `end` is set.
    pub async fn start(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        end: bool,
    ) -> Call {
        let mut request = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let client = tokio::time::timeout(STEP, self.client.clone().ready())
            .await
            .expect("a stream slot within 10 s")
            .expect("the connection is usable");
        self.client = client;
        let (response, mut stream) = self
            .client
            .send_request(request.body(()).unwrap(), body.is_empty() && end)
            .expect("send the request headers");
        if !body.is_empty() || !end {
            // h2 buffers what the flow-control window does not allow yet.
            stream
                .send_data(Bytes::from(body), end)
                .expect("send the request body");
        }
        Call { response, stream }
    }

    /// A call of `path` whose one message is `message` gzip-compressed
    /// (`grpc-encoding: gzip`).
    pub async fn call_gzip(&mut self, path: &str, message: &[u8]) -> Answer {
        let body = frame(&super::gzip(message), true);
        self.call(path, &[("grpc-encoding", "gzip")], body).await
    }

    /// A whole unary call: sends `body`, ends the stream, waits for the answer.
    pub async fn call(&mut self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        self.start(path, headers, body, true).await.answer().await
    }
}

/// A call in progress.
pub struct Call {
    response: h2::client::ResponseFuture,
    // Dropping it would reset the stream.
    stream: h2::SendStream<Bytes>,
}

impl Call {
    /// Sends more of the request body (a call started without `end`),
    /// ending the stream when `end` is set.
    pub fn send(&mut self, data: Vec<u8>, end: bool) {
        self.stream
            .send_data(Bytes::from(data), end)
            .expect("send the request body");
    }

    /// Waits (at most 10 s) for the answer.
    pub async fn answer(self) -> Answer {
        tokio::time::timeout(STEP, answer(self.response))
            .await
            .expect("an answer within 10 s")
    }
}

async fn answer(response: h2::client::ResponseFuture) -> Answer {
    let response = response.await.expect("a response");
    let (parts, mut body) = response.into_parts();
    // tonic reads `grpc-status` and the percent-encoded `grpc-message`.
    let status_of = |headers: &http::HeaderMap| {
        tonic::Status::from_header_map(headers).map(|s| (s.code(), s.message().to_string()))
    };
    if let Some((code, message)) = status_of(&parts.headers) {
        return Answer {
            code,
            message,
            headers: parts.headers,
        };
    }
    while let Some(data) = body.data().await {
        let data = data.expect("response data");
        let _ = body.flow_control().release_capacity(data.len());
    }
    let trailers = body
        .trailers()
        .await
        .expect("response trailers")
        .unwrap_or_default();
    let (code, message) = status_of(&trailers).expect("a grpc-status in the trailers");
    Answer {
        code,
        message,
        headers: parts.headers,
    }
}
