//! The physical-limit baseline of `make bench`: the least a hyper HTTP/1.1 server on 127.0.0.1 can do per request.
//!
//! It answers every request with the same fixed body (as many bytes as the extension's cache-hit body, so the bytes
//! on the wire match) and does nothing else: no routing, no token check, no cache. It runs on the same runtime shape
//! as the extension (a multi-thread tokio runtime with two workers, `TCP_NODELAY` on accepted sockets), so the gap
//! between the two is the extension's own per-request work.
//!
//! Usage: `bench-baseline-server <port> <body-bytes>`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(Ok(port)), Some(Ok(size))) = (
        args.next().map(|a| a.parse::<u16>()),
        args.next().map(|a| a.parse::<usize>()),
    ) else {
        eprintln!("usage: bench-baseline-server <port> <body-bytes>");
        return ExitCode::from(2);
    };
    // JSON-looking filler, so nothing downstream could treat it differently from a secret body.
    let mut body = vec![b'x'; size];
    if size >= 2 {
        body[0] = b'"';
        body[size - 1] = b'"';
    }
    let body = Bytes::from(body);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-baseline-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bench-baseline-server: cannot bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let mut resp = http::Response::new(Full::new(body.clone()));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
