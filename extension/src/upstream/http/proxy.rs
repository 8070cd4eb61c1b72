//! The TCP connector under TLS, with the proxies of `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (config/proxy.rs):
//! - an https destination the matcher sends to a proxy is reached through an HTTP CONNECT tunnel (hyper-util's
//!   `Tunnel`), and TLS to the destination runs inside it, so the proxy sees only the host name and port;
//! - an http destination it sends to a proxy is a connection to the proxy, marked as proxied so that hyper writes
//!   requests in absolute form (`POST http://host/ HTTP/1.1`), as a forward proxy expects;
//! - anything else, or every destination when no proxy is configured, is a direct connection.

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn Error + Send + Sync>;

/// Connects directly or through the proxy the matcher names for each destination.
#[derive(Clone)]
pub struct ProxyConnector {
    tcp: HttpConnector,
    matcher: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for ProxyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConnector")
            .field("proxied", &self.matcher.is_some())
            .finish_non_exhaustive()
    }
}

impl ProxyConnector {
    /// `tcp` for every connection, to the destination or to its proxy.
    pub fn new(tcp: HttpConnector, matcher: Option<Arc<Matcher>>) -> Self {
        Self { tcp, matcher }
    }
}

/// A connection, direct or through a proxy.
#[derive(Debug)]
pub struct ProxyStream {
    io: TokioIo<TcpStream>,
    /// Requests go to an HTTP forward proxy (absolute-form URIs).
    forward: bool,
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.matcher.as_ref().and_then(|m| m.intercept(&dst));
        let mut tcp = self.tcp.clone();
        Box::pin(async move {
            let Some(proxy) = intercept else {
                let io = tcp.call(dst).await?;
                return Ok(ProxyStream { io, forward: false });
            };
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await?;
                Ok(ProxyStream { io, forward: false })
            } else {
                let io = tcp.call(proxy.uri().clone()).await?;
                Ok(ProxyStream { io, forward: true })
            }
        })
    }
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forward)
    }
}

impl Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
