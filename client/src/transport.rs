//! One attempt on the wire: an HTTP/1.1 `GET` to the extension on `127.0.0.1`, and its answer read into memory that
//! is wiped when dropped.
//!
//! Parts: [`Transport`], the connector (built once per client, shared by its clones), and [`Attempt`], the two ways an
//! attempt fails that the retry loop (`retry.rs`) tells apart: nothing listening, or anything else.

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use crate::contract::TOKEN_HEADER;
use crate::error::Error;

/// The largest answer read. Secrets Manager caps a secret at 64 KiB; escaped, with the JSON around it, it fits.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// HTTP/1.1 to the extension. Cheap to clone: clones share the connector.
#[derive(Clone)]
pub(crate) struct Transport {
    http: hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>,
}

/// How one attempt failed.
pub(crate) enum Attempt {
    /// No connection: nothing listens yet (or at all).
    Refused,
    /// Anything else, as the caller will see it.
    Failed(Error),
}

impl Transport {
    /// A transport whose connections give up after `connect_timeout`. Nothing connects yet.
    pub(crate) fn new(connect_timeout: std::time::Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        // No pooled connections: a read through the extension is rare for a client that keeps what it reads, and a
        // kept-alive connection may have been closed by the extension while the environment was frozen.
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self { http }
    }

    /// `GET uri` with the token header, once: the status and the body, whatever the status.
    pub(crate) async fn get(
        &self,
        uri: &str,
        token: &HeaderValue,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), Attempt> {
        let request = http::Request::get(uri)
            .header(TOKEN_HEADER, token.clone())
            .body(Empty::<Bytes>::new())
            // Every query value is percent-encoded, so the URI always parses; this is only for the type's sake.
            .map_err(|e| Attempt::Failed(Error::Transport(e.to_string())))?;
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                Attempt::Refused
            } else {
                Attempt::Failed(Error::Transport(e.to_string()))
            }
        })?;
        let status = response.status().as_u16();
        let length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = read_body(response.into_body(), length)
            .await
            .map_err(Attempt::Failed)?;
        Ok((status, body))
    }
}

/// Reads a body into a buffer that is wiped when dropped, growing it by hand so that no reallocation leaves a copy of
/// the secret behind. (hyper's own read buffer is not ours to wipe.)
async fn read_body(
    mut body: hyper::body::Incoming,
    length: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let too_large = || {
        Error::Transport(format!(
            "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
        ))
    };
    if length.is_some_and(|n| n > MAX_RESPONSE_BYTES) {
        return Err(too_large());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(length.unwrap_or(0)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() + data.len();
        if needed > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        if needed > buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
            bigger.extend_from_slice(&buf);
            // The old buffer is wiped as it drops.
            buf = bigger;
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}
