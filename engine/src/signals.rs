//! Signals between api instances over Redis pub/sub (channel [`CHANNEL`]): a campaign
//! sold out, or got stock back, or the blocklist changed. Fire-and-forget: an instance that misses one (its
//! subscription was reconnecting) learns the same from the store within the sold-out
//! flag's TTL (see [`crate::sold_out`]).
//!
//! On a Redis Cluster a plain `PUBLISH` reaches the subscribers of every node (the
//! cluster bus carries it), so a listener subscribes on any one node and, when that
//! node goes away, on the next seed node.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;

use crate::error::Result;
use crate::redis_conn::{RedisConn, RedisTarget};

/// The pub/sub channel every api instance subscribes to.
pub const CHANNEL: &str = "stampede:signals";
/// How often a quiet listener checks that its sink still exists.
const SINK_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The campaign has no stock left.
    SoldOut(u64),
    /// The campaign got stock back (a rebuild): its claims must reach the store again.
    Restocked(u64),
    /// The blocklist changed: read it again (see [`crate::blocklist`]).
    BlocklistChanged,
}

impl Signal {
    pub fn encode(&self) -> String {
        match self {
            Signal::SoldOut(id) => format!("sold_out:{id}"),
            Signal::Restocked(id) => format!("restocked:{id}"),
            Signal::BlocklistChanged => "blocklist".into(),
        }
    }

    pub fn decode(s: &str) -> Option<Signal> {
        if s == "blocklist" {
            return Some(Signal::BlocklistChanged);
        }
        let (kind, id) = s.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "sold_out" => Some(Signal::SoldOut(id)),
            "restocked" => Some(Signal::Restocked(id)),
            _ => None,
        }
    }
}

/// Whoever acts on the signals (the engine).
pub trait SignalSink: Send + Sync {
    fn on_signal(&self, signal: Signal);
}

/// Publishes signals on the store's connection; listens on a connection of its own
/// (a subscribed connection can do nothing else).
#[derive(Clone)]
pub struct RedisSignals {
    target: RedisTarget,
    conn: RedisConn,
}

impl RedisSignals {
    pub fn new(target: RedisTarget, conn: RedisConn) -> Self {
        RedisSignals { target, conn }
    }

    pub async fn publish(&self, signal: Signal) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.publish(CHANNEL, signal.encode()).await?;
        Ok(())
    }

    /// Hands every signal published to `sink`, from a task that subscribes again (after
    /// a second) whenever its connection fails. It ends once the sink is gone.
    pub fn listen(&self, sink: Weak<dyn SignalSink>) -> tokio::task::JoinHandle<()> {
        let urls = self.target.subscribe_urls();
        tokio::spawn(async move {
            // The node to subscribe on next: the following one after a failure.
            let mut next = 0;
            while sink.strong_count() > 0 {
                let url = &urls[next % urls.len()];
                next += 1;
                match subscribe(url).await {
                    Ok(mut messages) => loop {
                        let next = tokio::time::timeout(SINK_CHECK, messages.next()).await;
                        let Some(sink) = sink.upgrade() else { return };
                        match next {
                            Ok(Some(msg)) => {
                                let payload: String = msg.get_payload().unwrap_or_default();
                                match Signal::decode(&payload) {
                                    Some(s) => sink.on_signal(s),
                                    None => tracing::warn!(payload, "unknown campaign signal"),
                                }
                            }
                            Ok(None) => {
                                tracing::warn!(
                                    "campaign signal subscription lost; subscribing again"
                                );
                                break;
                            }
                            Err(_) => {} // quiet: check the sink is still there, go on
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe to campaign signals"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

async fn subscribe(url: &str) -> Result<redis::aio::PubSubStream> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub.into_on_message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip() {
        for s in [
            Signal::SoldOut(17),
            Signal::Restocked(1 << 52),
            Signal::BlocklistChanged,
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        assert_eq!(Signal::decode("sold_out:x"), None);
        assert_eq!(Signal::decode("other:1"), None);
    }
}
