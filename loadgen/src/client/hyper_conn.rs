//! The hot path over hyper 1's `client::conn::http1` (`--client hyper`).
//!
//! hyper splits a connection into a `SendRequest` handle and a `Connection` future that
//! does the I/O. Spawning that future as its own task (the usual way) costs two cross-task
//! wakeups per request; [`with_connection`] instead polls it joined with the worker in the
//! worker's own task, which measured about 25 % faster here.

use std::future::Future;

use http_body_util::BodyExt;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{Body, Call, Exchange, Reply};
use crate::error::Result;

/// Runs `work` over a new HTTP/1.1 connection on `stream`, driving the connection in this
/// same task. `work` owns the sender; when it returns, the sender is dropped and the
/// connection closes gracefully. If the connection dies first, `work`'s in-flight request
/// fails and its next `ready()` reports the connection closed.
pub async fn with_connection<F, Fut, T>(stream: TcpStream, work: F) -> Result<T>
where
    F: FnOnce(SendRequest<Body>) -> Fut,
    Fut: Future<Output = T>,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    let (out, _closed) = tokio::join!(work(sender), conn);
    Ok(out)
}

impl Exchange for SendRequest<Body> {
    async fn exchange(&mut self, call: &Call<'_>, host: &HeaderValue) -> Result<Reply> {
        let req = call.to_hyper(host);
        self.ready().await?;
        let resp = self.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }
}
