//! A counting HTTP proxy in front of moto. The functions send their Secrets Manager requests
//! through it (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), and it counts them by operation, read from
//! the `X-Amz-Target` header: the calls as they cross the wire, not as the code thinks it made
//! them (SDK retries included).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use test_support::forward::Host;

/// Requests seen, by operation (`GetSecretValue`, ...).
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<String, u32>>>);

impl Counts {
    fn add(&self, operation: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(operation.to_owned()).or_default() += 1;
    }

    /// The counts so far, resetting them.
    pub fn take(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The running proxy; it stops when dropped.
pub struct CountingProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it counted.
    pub counts: Counts,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream` (e.g. moto's URL).
    pub async fn start(upstream: &str) -> std::io::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Counts::default();
        let http = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counts, http, upstream) = (shared.clone(), http.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(request, counts.clone(), http.clone(), upstream.clone())
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(CountingProxy { addr, counts, task })
    }

    /// The proxy's URL, for `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation of an AWS JSON-protocol request: `secretsmanager.GetSecretValue` gives
/// `GetSecretValue`.
fn operation(target: Option<&str>) -> &str {
    target
        .and_then(|t| t.rsplit('.').next())
        .filter(|t| !t.is_empty())
        .unwrap_or("(no X-Amz-Target)")
}

async fn forward(
    request: Request<Incoming>,
    counts: Counts,
    http: reqwest::Client,
    upstream: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    counts.add(operation(
        parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok()),
    ));
    let answer = async {
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        test_support::forward::forward(&http, &upstream, &parts, body, Host::Replace).await
    };
    Ok(answer.await.unwrap_or_else(|e| {
        let mut response = Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    }))
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn operation_is_the_target_after_the_last_dot() {
        assert_eq!(
            operation(Some("secretsmanager.GetSecretValue")),
            "GetSecretValue"
        );
        assert_eq!(operation(None), "(no X-Amz-Target)");
        assert_eq!(operation(Some("secretsmanager.")), "(no X-Amz-Target)");
    }
}
