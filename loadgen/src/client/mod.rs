//! The HTTP client: one keep-alive HTTP/1.1 connection per worker, nothing pooled.
//!
//! Why not a pooled client: a load generator's worker already *is* a pool of one. Each
//! worker owns one TCP connection and sends on it back to back, so a pool would only add a
//! lock and a lookup per request.
//!
//! Two interchangeable connection types speak the hot path ([`Exchange`]):
//! - [`lean::LeanConn`] (the default, `--client lean`): writes each request head with one
//!   `write` and parses replies with `httparse` (hyper's own parser) straight out of its
//!   read buffer — no channels, no extra tasks. It drives as much as `wrk` does;
//! - [`hyper_conn`] (`--client hyper`): hyper 1's `client::conn::http1`, its driver polled in
//!   the worker's own task. Fully general, measured at about three quarters of `wrk`'s rate
//!   on the 2-core machine, because each request crosses hyper's dispatch channels.
//!
//! [`Client`] is the convenience flavour (hyper, lazily reopened) for the handful of admin
//! calls around a run: create the campaign, poll stats, page the export.

pub mod hyper_conn;
pub mod lean;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The hyper request body type: a whole body known up front.
pub type Body = Full<Bytes>;

/// Which connection type carries the load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// httparse over a raw tokio socket: the fastest.
    #[default]
    Lean,
    /// hyper 1's HTTP/1 client connection.
    Hyper,
}

impl ClientKind {
    pub fn name(&self) -> &'static str {
        match self {
            ClientKind::Lean => "lean",
            ClientKind::Hyper => "hyper",
        }
    }
}

/// Where the load goes: one resolved address plus what the `Host` header must say.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as the operator gave it, for reports.
    pub url: String,
    /// Resolved once before the run: resolving per connection would put DNS on the
    /// measured path.
    pub addr: SocketAddr,
    /// `host[:port]` exactly as in the URL.
    pub host: HeaderValue,
    /// The URL's path and query (`/` when it has none); the `http` scenario requests it.
    pub path: String,
}

impl Target {
    /// Parses an `http://host[:port][/path]` URL and resolves its host. `https` is refused:
    /// the engine is measured behind TLS termination, not through it.
    pub async fn resolve(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTarget {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(invalid("only http:// is supported")),
            None => return Err(invalid("missing http:// scheme")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host_name = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host_name, port))
            .await
            .map_err(|source| Error::Connect {
                addr: authority.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| invalid("host resolves to no address"))?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| invalid("bad host name"))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            host,
            path,
        })
    }

    /// An origin-form URI (`/v1/...`) for a path on this target.
    pub fn uri(&self, path: &str) -> Result<Uri> {
        path.parse().map_err(|_| Error::InvalidTarget {
            url: format!("{}{}", self.url, path),
            reason: "bad path".to_owned(),
        })
    }
}

/// Opens a TCP connection with Nagle off: requests are small and latency is the point.
pub async fn connect(target: &Target) -> Result<TcpStream> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|source| Error::Connect {
            addr: target.addr.to_string(),
            source,
        })?;
    // A failure here only costs latency, never correctness.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One request, borrowed from a workload that prepared every part before the run.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub method: &'a Method,
    /// Origin form: path and query.
    pub uri: &'a Uri,
    /// `Bearer ...`, or none for public routes.
    pub auth: Option<&'a HeaderValue>,
    /// Any other request headers (the payment provider's `Stampede-Signature`); empty on
    /// the crowd's requests.
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// Empty means no body and no content type; a non-empty body is JSON.
    pub body: &'a Bytes,
}

impl Call<'_> {
    /// The same request as a hyper request. Cannot fail: every part is already valid.
    pub fn to_hyper(&self, host: &HeaderValue) -> hyper::Request<Body> {
        let mut req = hyper::Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        headers.insert(HOST, host.clone());
        if let Some(auth) = self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        for (name, value) in self.headers {
            headers.insert(name.clone(), value.clone());
        }
        if !self.body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        req
    }
}

/// A finished exchange: the status and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// A keep-alive connection that can carry one request at a time.
pub trait Exchange {
    /// Sends `call` and reads the whole reply. After an error the connection is unusable.
    fn exchange(
        &mut self,
        call: &Call<'_>,
        host: &HeaderValue,
    ) -> impl Future<Output = Result<Reply>> + Send;

    /// The peer asked to close (or closed): open a new connection before the next call.
    fn is_closed(&self) -> bool;
}

/// A bearer header value for a token or admin secret.
pub fn bearer(token: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Config("a token contains characters a header cannot carry".into()))?;
    // Keeps the secret out of any debug print of the request.
    value.set_sensitive(true);
    Ok(value)
}

/// An owned request, for the calls around a run.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub method: Method,
    pub uri: Uri,
    pub auth: Option<HeaderValue>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Prepared {
    pub fn call(&self) -> Call<'_> {
        Call {
            method: &self.method,
            uri: &self.uri,
            auth: self.auth.as_ref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// A tiny reconnecting client for the calls around a run (not on the measured path).
pub struct Client {
    target: Target,
    timeout: Duration,
    sender: Option<SendRequest<Body>>,
}

impl Client {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            sender: None,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request, reopening the connection when the last one was closed. A GET is
    /// retried once on a broken connection (one that died while idle between calls); the
    /// single create call is never retried, so no campaign is created twice.
    pub async fn request(&mut self, prepared: &Prepared) -> Result<Reply> {
        let mut attempts = if prepared.method == Method::GET { 2 } else { 1 };
        loop {
            attempts -= 1;
            let sender = match self.sender.as_mut() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    let stream = connect(&self.target).await?;
                    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
                    // Spawned here (unlike the hot path): this connection outlives any one call.
                    tokio::spawn(conn);
                    self.sender.insert(sender)
                }
            };
            let call = prepared.call();
            let exchange = sender.exchange(&call, &self.target.host);
            let result = match tokio::time::timeout(self.timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout(self.timeout)),
            };
            match result {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    self.sender = None;
                    if attempts == 0 || !matches!(e, Error::Http(_)) {
                        return Err(e);
                    }
                }
            }
        }
    }
}
