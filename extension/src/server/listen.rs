//! The loopback listeners and the connection loop: bind, accept under the connection cap, drain on shutdown.

use crate::cache::Upstream;
use crate::clock::WallClock;
use crate::error::ApiError;
use http::Request;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{handle_on, App, HEADER_READ_TIMEOUT, MAX_BUF};
use crate::token::Accepted;

/// The port cannot be served on: the one failure that stops the extension, with what to change.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on 127.0.0.1:{port}: {source}; set PARAMETERS_SECRETS_EXTENSION_HTTP_PORT to a free port \
         (in Lambda, 9001 is taken by the Runtime API)")]
pub struct BindError {
    /// The port asked for.
    pub port: u16,
    /// Why the system refused.
    pub source: std::io::Error,
}

/// Binds `127.0.0.1:port`, and `[::1]:port` where the host has IPv6 loopback. Only the first is required: a host
/// without IPv6 (or with `::1` taken by someone else) is served on IPv4 alone, with a log line saying why.
pub async fn bind(port: u16) -> Result<Vec<TcpListener>, BindError> {
    let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| BindError { port, source })?;
    // Port 0 (tests) means "any": IPv6 then takes the port IPv4 got, so both are one address for clients.
    let port = v4.local_addr().map_or(port, |a| a.port());
    let mut listeners = vec![v4];
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await {
        Ok(v6) => listeners.push(v6),
        // No `::1` configured, or no IPv6 at all (EAFNOSUPPORT, 97 on Linux, has no ErrorKind of its own).
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(97) =>
        {
            tracing::debug!(error = %e, "no IPv6 loopback on this host; serving 127.0.0.1 only");
        }
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot listen on [::1]; serving 127.0.0.1 only");
        }
    }
    Ok(listeners)
}

/// Serves connections from `listeners` until `shutdown` is cancelled, then drains them.
///
/// Returns when every connection has finished; the caller bounds that wait with the shutdown deadline.
pub async fn serve<U: Upstream, W: WallClock>(
    listeners: Vec<TcpListener>,
    app: Arc<App<U, W>>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                Arc::clone(&app),
                Arc::clone(&permits),
                tracker.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for a in accepting {
        let _ = a.await;
    }
    tracker.close();
    tracker.wait().await;
}

/// Accepts on one listener until shutdown; every connection is a task of `tracker`, sharing one connection cap.
async fn accept_loop<U: Upstream, W: WallClock>(
    listener: TcpListener,
    app: Arc<App<U, W>>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Over the cap, the connection is still answered, with a quick 503 and a close, so the client is told why.
        let permit = Arc::clone(&permits).try_acquire_owned().ok();
        let app = Arc::clone(&app);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let over_limit = permit.is_none();
            // The token this connection presented and had accepted: its next requests compare bytes, not digests.
            let seen = Arc::new(Accepted::default());
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (app, seen) = (Arc::clone(&app), Arc::clone(&seen));
                async move {
                    let resp = if over_limit {
                        ApiError::Overloaded.into_response()
                    } else if req.method() == http::Method::POST {
                        super::sdk::serve(&app, req, &seen).await
                    } else {
                        handle_on(&app, req, &seen).await
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                // Without it, hyper reads the socket once more while every request is in flight (to see a client
                // leave early), and that read has to allocate a new 8 KiB buffer: the request being answered still
                // holds the old one. A client that leaves is seen when its answer is written.
                .half_close(true)
                .keep_alive(!over_limit)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    // Finish the request in progress, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
}
