//! `stampede-loadgen hello` (hidden): the smallest useful HTTP/1.1 keep-alive server, a
//! fixed `Hello, world!` for every request. It is the target `scripts/http-vs-wrk.sh`
//! points both wrk and the load generator at when no engine is given, so that the
//! comparison measures the two clients and not the target.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

#[derive(Args, Clone, Debug)]
pub struct HelloArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

const BODY: &[u8] = b"Hello, world!";

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

/// Binds `addr`; separate from [`serve`] so callers (and tests) can learn the port first.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Connect {
            addr: addr.to_string(),
            source,
        })
}

/// Serves until `shutdown` completes. Each connection is its own task.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A failed accept (out of descriptors, a reset) costs one connection only.
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
