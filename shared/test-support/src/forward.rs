//! Passing one HTTP request on to an upstream server, for the test bed's proxies in front of
//! moto (the policy gate, the bench's counting proxy): the request's method, path, headers and
//! body go along, and the upstream's status, headers and body come back, without the
//! hop-by-hop headers that belong to each connection.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::Response;

/// Whether the `Host` header of the request goes along to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Sent unchanged: a hop that checks SigV4 signatures (which cover `Host`) comes next.
    Keep,
    /// Left to the HTTP client, which names the upstream.
    Replace,
}

/// The headers that belong to one connection and never cross a proxy.
const HOP_BY_HOP: [HeaderName; 3] = [CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING];

/// Sends the request (`parts` and `body`) to `upstream` (`http://host:port`, its path and
/// query appended) with `http`, and answers with the upstream's reply; an error says what
/// failed (the connection, or reading the reply).
pub async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    parts: &Parts,
    body: Bytes,
    host: Host,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = http.request(parts.method.clone(), format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        let dropped = HOP_BY_HOP.contains(name) || (host == Host::Replace && name == HOST);
        if !dropped {
            outgoing = outgoing.header(name, value);
        }
    }
    let reply = outgoing
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        if !HOP_BY_HOP.contains(name) {
            response = response.header(name, value);
        }
    }
    let bytes = reply.bytes().await.map_err(|e| e.to_string())?;
    response.body(Full::new(bytes)).map_err(|e| e.to_string())
}
