//! A TCP proxy that a test puts between the engine and Redis or PostgreSQL, to cut the
//! connection for real: [`CutProxy::cut`] drops every open connection and refuses new
//! ones (accepted and closed at once, so a client sees its connection reset), and
//! [`CutProxy::restore`] lets connections through again. The engine's clients go through
//! their real failure paths: broken sockets, failed reconnects, pools that refill.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct CutProxy {
    /// The port clients connect to, on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    target: SocketAddr,
    cut: AtomicBool,
    /// Connections refused while cut.
    refused: AtomicU64,
    /// Cancelled on a cut: every connection opened before it is dropped.
    connections: parking_lot::Mutex<CancellationToken>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            target,
            cut: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            connections: parking_lot::Mutex::new(CancellationToken::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        CutProxy {
            port,
            shared,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let old = std::mem::take(&mut *self.shared.connections.lock());
        old.cancel();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// How many connections were refused while cut: how hard a client hammered.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// `url` with its `host:port` replaced by this proxy's.
    pub fn rewrite_url(&self, url: &str, target_port: u16) -> String {
        let from = format!("127.0.0.1:{target_port}");
        assert!(url.contains(&from), "{url} does not name {from}");
        url.replace(&from, &format!("127.0.0.1:{}", self.port))
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.connections.lock().cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            // Reset rather than a polite close: what a client sees from a dead peer.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let token = shared.connections.lock().clone();
        let target = shared.target;
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = token.cancelled() => {
                    let _ = client.set_zero_linger();
                }
            }
        });
    }
}
