//! The operator's HTTP endpoint (`--metrics ADDR:PORT`): `GET /metrics` (Prometheus text, in
//! the OpenMetrics flavour `prometheus-client` writes), `GET /health` (liveness: the process
//! answers) and `GET /ready` (every storage the process depends on answers a cheap query).
//!
//! Owns: the listener, its tiny request loop (one request per connection, heads bounded by
//! [`crate::mailbox::http::MAX_HEAD`]) and the readiness probes. Must not: touch protocol state;
//! readiness asks the engine thread, which alone owns the storage.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::ServerError;
use crate::mailbox::engine::EngineInput;
use crate::mailbox::http;

/// How long `/ready` waits for a probe before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Content type of `/metrics`.
const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Something `/ready` checks.
#[derive(Debug, Clone)]
pub enum Probe {
    /// The mailbox engine: it runs a cheap query on its storage.
    Engine(mpsc::Sender<EngineInput>),
}

impl Probe {
    async fn check(&self) -> Result<(), String> {
        match self {
            Probe::Engine(engine) => {
                let (tx, rx) = oneshot::channel();
                engine
                    .send(EngineInput::Ready(tx))
                    .await
                    .map_err(|_| "the mailbox engine has stopped".to_owned())?;
                match tokio::time::timeout(READY_TIMEOUT, rx).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err("the mailbox engine has stopped".to_owned()),
                    Err(_) => Err(format!("storage did not answer within {READY_TIMEOUT:?}")),
                }
            }
        }
    }
}

/// What the endpoint serves.
#[derive(Debug, Default)]
pub struct Ops {
    /// Every metric of the process.
    pub registry: Registry,
    /// What `/ready` checks (all must pass; none: always ready).
    pub probes: Vec<Probe>,
}

/// Bind `addr` and serve `ops` on it in a background task; prints `metrics on http://ADDR/metrics`
/// (not the words `listening on`, which tools read as the mailbox's address).
pub async fn start(addr: &str, ops: Arc<Ops>) -> Result<std::net::SocketAddr, ServerError> {
    let listener = crate::mailbox::server::bind(addr).await?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    eprintln!("metrics on http://{local}/metrics");
    tokio::spawn(serve(listener, ops));
    Ok(local)
}

/// Serve `ops` on `listener` forever.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, ops.clone()));
            }
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, ops: Arc<Ops>) {
    let Ok((head, _)) = http::read_head(&mut stream).await else {
        return;
    };
    let Some(req) = http::parse_head(&head) else {
        return reply(&mut stream, "400 Bad Request", "text/plain", "bad request\n").await;
    };
    if req.method != "GET" {
        return reply(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n").await;
    }
    match req.path.as_str() {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, &ops.registry) {
                Ok(()) => reply(&mut stream, "200 OK", METRICS_TYPE, &text).await,
                Err(_) => {
                    reply(
                        &mut stream,
                        "500 Internal Server Error",
                        "text/plain",
                        "encoding failed\n",
                    )
                    .await
                }
            }
        }
        "/health" => reply(&mut stream, "200 OK", "text/plain", "ok\n").await,
        "/ready" => match ready(&ops).await {
            Ok(()) => reply(&mut stream, "200 OK", "text/plain", "ready\n").await,
            Err(e) => {
                tracing::warn!("not ready: {e}");
                let body = format!("not ready: {e}\n");
                reply(&mut stream, "503 Service Unavailable", "text/plain", &body).await
            }
        },
        _ => {
            reply(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "try /metrics, /health or /ready\n",
            )
            .await
        }
    }
}

async fn ready(ops: &Ops) -> Result<(), String> {
    for p in &ops.probes {
        p.check().await?;
    }
    Ok(())
}

async fn reply(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}
