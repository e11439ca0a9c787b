//! The lean HTTP/1.1 connection (`--client lean`, the default hot path).
//!
//! A load generator needs a tiny slice of HTTP/1.1: send one request, read one reply,
//! repeat on the same connection. Done directly it is one `write` of a head assembled in a
//! reused buffer, then reads into one buffer that `httparse` (the parser inside hyper)
//! reads the reply head from, and whose body is split off without copying. No channels,
//! no per-request tasks or wakers beyond the socket's own: that is the difference between
//! ~75 % of wrk's rate through hyper's client and parity with wrk (see
//! `scripts/http-vs-wrk.sh`).
//!
//! Framing follows RFC 9112 §6.3: 1xx replies are skipped; 204, 304 and replies to HEAD
//! have no body; `Transfer-Encoding: chunked` is decoded; otherwise `Content-Length`; a
//! reply with neither is read until the server closes. `Connection: close` (or an HTTP/1.0
//! reply without keep-alive) marks the connection closed after the reply.

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Call, Exchange, Reply};
use crate::error::{Error, Result};

/// Read granularity; also roughly the buffer each connection keeps.
const READ_CHUNK: usize = 16 * 1024;
/// Reply headers the parser accepts (hyper's default is 100; the engine sends ~5).
const MAX_HEADERS: usize = 64;
/// A reply head larger than this is refused rather than buffered forever.
const MAX_HEAD: usize = 64 * 1024;
/// A reply body larger than this is refused: a load test never needs one.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One keep-alive connection.
pub struct LeanConn {
    stream: TcpStream,
    /// Bytes read and not yet consumed. Bodies are split off its front, so a reply's body
    /// shares this allocation until the reply is dropped.
    read: BytesMut,
    /// The outgoing request, rebuilt in place for every call.
    write: Vec<u8>,
    /// The server will not take another request on this connection.
    closed: bool,
}

/// How the reply body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed reply head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: StatusCode,
    /// Bytes of the head, blank line included.
    len: usize,
    framing: Framing,
    close: bool,
}

impl LeanConn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(1024),
            closed: false,
        }
    }

    /// Reads what the socket has into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
            self.read.reserve(READ_CHUNK);
        }
        self.stream
            .read_buf(&mut self.read)
            .await
            .map_err(Error::Transport)
    }

    /// Like [`fill`](Self::fill), but the end of the stream is an error: the reply was cut.
    async fn fill_more(&mut self) -> Result<()> {
        if self.fill().await? == 0 {
            self.closed = true;
            return Err(Error::Protocol(
                "the server closed the connection mid-reply",
            ));
        }
        Ok(())
    }
}

impl Exchange for LeanConn {
    async fn exchange(&mut self, call: &Call<'_>, host: &HeaderValue) -> Result<Reply> {
        encode(&mut self.write, call, host);
        if let Err(e) = self.stream.write_all(&self.write).await {
            self.closed = true;
            return Err(Error::Transport(e));
        }
        let head_request = *call.method == Method::HEAD;
        loop {
            let head = loop {
                if let Some(head) = parse_head(&self.read, head_request)? {
                    break head;
                }
                if self.read.len() > MAX_HEAD {
                    return Err(Error::Protocol("the reply head is too large"));
                }
                self.fill_more().await?;
            };
            if head.status.is_informational() {
                // 100 Continue and friends precede the real reply.
                self.read.advance(head.len);
                continue;
            }
            self.closed |= head.close;
            let body = match head.framing {
                Framing::Empty => {
                    self.read.advance(head.len);
                    Bytes::new()
                }
                Framing::Length(n) => {
                    if n > MAX_BODY {
                        return Err(Error::Protocol("the reply body is too large"));
                    }
                    while self.read.len() < head.len + n {
                        self.fill_more().await?;
                    }
                    self.read.advance(head.len);
                    self.read.split_to(n).freeze()
                }
                Framing::Chunked => loop {
                    if let Some((body, used)) = decode_chunked(&self.read[head.len..])? {
                        self.read.advance(head.len + used);
                        break body;
                    }
                    if self.read.len() > MAX_BODY {
                        return Err(Error::Protocol("the reply body is too large"));
                    }
                    self.fill_more().await?;
                },
                Framing::UntilClose => {
                    while self.fill().await? > 0 {
                        if self.read.len() > MAX_BODY {
                            return Err(Error::Protocol("the reply body is too large"));
                        }
                    }
                    self.closed = true;
                    self.read.advance(head.len);
                    self.read.split().freeze()
                }
            };
            return Ok(Reply {
                status: head.status,
                body,
            });
        }
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Writes the request into `out` (cleared first): head and body in one buffer, one write.
fn encode(out: &mut Vec<u8>, call: &Call<'_>, host: &HeaderValue) {
    out.clear();
    out.extend_from_slice(call.method.as_str().as_bytes());
    out.push(b' ');
    let target = call.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    if let Some(auth) = call.auth {
        out.extend_from_slice(b"\r\nauthorization: ");
        out.extend_from_slice(auth.as_bytes());
    }
    for (name, value) in call.headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    let has_body = !call.body.is_empty();
    if has_body {
        out.extend_from_slice(b"\r\ncontent-type: application/json");
    }
    // A POST without a body still says so: some servers wait for a length otherwise.
    if has_body || matches!(*call.method, Method::POST | Method::PUT | Method::PATCH) {
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(call.body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(call.body);
}

/// Parses a reply head at the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut reply = httparse::Response::new(&mut headers);
    let len = match reply.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Protocol("the reply head is not valid HTTP/1.1")),
    };
    let status = reply
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Error::Protocol("the reply has no valid status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = reply.version == Some(0);
    for header in reply.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Error::Protocol("the reply has an invalid Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(Error::Protocol("the reply has conflicting Content-Lengths"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Chunked must be the last coding applied.
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let code = status.as_u16();
    let framing = if head_request || status.is_informational() || code == 204 || code == 304 {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Some(Head {
        status,
        len,
        framing,
        close,
    }))
}

/// Decodes a complete chunked body at the start of `buf`: the body and the bytes it took,
/// trailers included; `None` while incomplete. Scans first and copies once, so a body
/// that arrives in many reads is not copied again on every read.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Bytes, usize)>> {
    let invalid = || Error::Protocol("the reply's chunked body is malformed");
    let mut pos = 0;
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(invalid()),
        };
        let size = usize::try_from(size).map_err(|_| invalid())?;
        pos += used;
        if size == 0 {
            break;
        }
        total = total.checked_add(size).ok_or_else(invalid)?;
        if total > MAX_BODY {
            return Err(Error::Protocol("the reply body is too large"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(invalid());
        }
        chunks.push((pos, size));
        pos += size + 2;
    }
    // Trailer lines, then the blank line that ends the body.
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        pos += eol + 2;
        if eol == 0 {
            break;
        }
    }
    let mut body = BytesMut::with_capacity(total);
    for (start, size) in chunks {
        body.extend_from_slice(&buf[start..start + size]);
    }
    Ok(Some((body.freeze(), pos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Uri;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[test]
    fn a_claim_request_is_one_buffer_with_head_and_body() {
        let mut out = Vec::new();
        let uri: Uri = "/v1/campaigns/7/claims".parse().expect("uri");
        let auth = HeaderValue::from_static("Bearer abc");
        let body = Bytes::from_static(br#"{"quantity":1}"#);
        let call = Call {
            method: &Method::POST,
            uri: &uri,
            auth: Some(&auth),
            headers: &[],
            body: &body,
        };
        encode(&mut out, &call, &HeaderValue::from_static("h:1"));
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "POST /v1/campaigns/7/claims HTTP/1.1\r\nhost: h:1\r\nauthorization: Bearer abc\r\n\
             content-type: application/json\r\ncontent-length: 14\r\n\r\n{\"quantity\":1}"
        );
    }

    #[test]
    fn extra_headers_go_between_the_credentials_and_the_body() {
        let mut out = Vec::new();
        let uri: Uri = "/v1/payments/notify".parse().expect("uri");
        let body = Bytes::from_static(b"{}");
        let headers = [(
            hyper::header::HeaderName::from_static("stampede-signature"),
            HeaderValue::from_static("t=1,v1=ab"),
        )];
        let call = Call {
            method: &Method::POST,
            uri: &uri,
            auth: None,
            headers: &headers,
            body: &body,
        };
        encode(&mut out, &call, &HeaderValue::from_static("h"));
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "POST /v1/payments/notify HTTP/1.1\r\nhost: h\r\nstampede-signature: t=1,v1=ab\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_bodiless_post_still_sends_a_zero_length() {
        let mut out = Vec::new();
        let uri: Uri = "/v1/signin".parse().expect("uri");
        let call = Call {
            method: &Method::POST,
            uri: &uri,
            auth: None,
            headers: &[],
            body: &Bytes::new(),
        };
        encode(&mut out, &call, &HeaderValue::from_static("h"));
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
    }

    #[test]
    fn heads_are_framed_as_rfc_9112_says() {
        let framing = |raw: &str| {
            parse_head(raw.as_bytes(), false)
                .expect("valid")
                .expect("complete")
        };
        let h = framing("HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(
            (h.status.as_u16(), h.framing, h.close),
            (201, Framing::Length(5), false)
        );
        assert_eq!(h.len, 43);
        let h = framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = framing("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let h = framing("HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let h = framing("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx");
        assert!(h.close);
        let h = framing("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 1\r\n\r\nx");
        assert!(!h.close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false)
            .expect("valid so far")
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded_only_when_complete() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let (body, used) = decode_chunked(raw).expect("valid").expect("complete");
        assert_eq!(&body[..], b"hello, world");
        assert_eq!(&raw[used..], b"NEXT");
        for cut in 0..raw.len() - 4 {
            assert!(
                decode_chunked(&raw[..cut]).expect("valid prefix").is_none(),
                "cut at {cut}"
            );
        }
        assert!(decode_chunked(b"5\r\nhelloXX0\r\n\r\n").is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
    }

    /// Serves canned replies, one per request read, on one connection.
    async fn canned(replies: Vec<&'static [u8]>) -> (TcpStream, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            for reply in replies {
                // One read per request is enough for these tiny requests.
                let _ = socket.read(&mut buf).await;
                // Split writes, to make the client reassemble.
                let (a, b) = reply.split_at(reply.len() / 2);
                let _ = socket.write_all(a).await;
                let _ = socket.flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let _ = socket.write_all(b).await;
            }
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        (stream, server)
    }

    #[tokio::test]
    async fn replies_of_every_framing_come_through_one_connection() {
        let (stream, server) = canned(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
        ])
        .await;
        let mut conn = LeanConn::new(stream);
        let uri: Uri = "/".parse().expect("uri");
        let host = HeaderValue::from_static("x");
        let empty = Bytes::new();
        let call = Call {
            method: &Method::GET,
            uri: &uri,
            auth: None,
            headers: &[],
            body: &empty,
        };
        let mut got = Vec::new();
        for _ in 0..4 {
            assert!(!conn.is_closed());
            let reply = conn.exchange(&call, &host).await.expect("reply");
            got.push((reply.status.as_u16(), reply.body));
        }
        assert_eq!(
            got,
            vec![
                (201, Bytes::from_static(b"ok")),
                (200, Bytes::from_static(b"abc")),
                (204, Bytes::new()),
                (200, Bytes::from_static(b"until the end")),
            ]
        );
        assert!(conn.is_closed());
        server.await.expect("server");
    }

    #[tokio::test]
    async fn a_reply_cut_short_is_an_error_and_closes_the_connection() {
        let (stream, server) =
            canned(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        let mut conn = LeanConn::new(stream);
        let uri: Uri = "/".parse().expect("uri");
        let empty = Bytes::new();
        let call = Call {
            method: &Method::GET,
            uri: &uri,
            auth: None,
            headers: &[],
            body: &empty,
        };
        let result = conn.exchange(&call, &HeaderValue::from_static("x")).await;
        assert!(result.is_err());
        assert!(conn.is_closed());
        server.await.expect("server");
    }
}
