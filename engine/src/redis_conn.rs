//! The connection to Redis: one node, or a Redis Cluster.
//!
//! [`RedisTarget`] says where Redis is (`STAMPEDE_REDIS_URL` or the seed nodes of
//! `STAMPEDE_REDIS_CLUSTER`); [`RedisConn`] is a connection to it that every Redis user
//! of the engine (store, queue, signals, claim pages) talks through. It implements
//! redis-rs's `ConnectionLike`, so commands, pipelines and scripts run unchanged on both.
//!
//! What differs on a cluster, and is handled here or by the callers:
//! - A command is routed by its first key's slot. A pipeline must stay in ONE slot (redis-rs
//!   refuses a cross-slot pipeline): callers that touch many slots send one command per key
//!   ([`RedisConn::is_cluster`] tells them; see `claim_lists.rs` and the queue).
//! - redis-rs re-sends a command after a dropped connection, a MOVED/ASK redirect or a
//!   timeout. Its default retries last minutes; ours are bounded ([`CLUSTER_RETRIES`],
//!   [`CLUSTER_MAX_RETRY_WAIT_MS`]) and every state-changing script is safe to run twice
//!   (README, "Guarantees"; see the batch ids in `lua/claim.lua`).
//! - `WAIT` is about the writes of one connection to one master: it is sent to the master
//!   of the campaign's slot ([`RedisConn::wait_replicas`]), not to every master.
//! - The script cache is not replicated: a promoted replica answers `NOSCRIPT`, and
//!   redis-rs's `Script` loads the script on the node the key routes to and runs it again.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::error::{EngineError, Result};

/// How many times redis-rs re-sends a cluster request (after a dropped connection, a
/// redirect, `TRYAGAIN` or `CLUSTERDOWN`) before the error reaches the caller.
pub const CLUSTER_RETRIES: u32 = 3;
/// The longest wait between two of those tries, ms (redis-rs's default is 655 s).
pub const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;
/// The shortest wait between two tries, ms.
pub const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;

/// Where Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis (`redis://host:port`), possibly with replicas behind it.
    Single(String),
    /// The seed nodes of a Redis Cluster; the rest of the topology is discovered.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTarget {
    // URLs may carry passwords: name the mode and the node count only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Single(_) => f.write_str("Single(<url>)"),
            RedisTarget::Cluster(seeds) => write!(f, "Cluster(<{} seed nodes>)", seeds.len()),
        }
    }
}

impl RedisTarget {
    /// `STAMPEDE_REDIS_CLUSTER`'s value: seed node URLs separated by commas.
    pub fn cluster(seeds: &str) -> std::result::Result<RedisTarget, String> {
        let seeds: Vec<String> = seeds
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if seeds.is_empty() {
            return Err("STAMPEDE_REDIS_CLUSTER names no seed node".into());
        }
        for s in &seeds {
            if !(s.starts_with("redis://") || s.starts_with("rediss://")) {
                return Err(
                    "STAMPEDE_REDIS_CLUSTER takes redis:// URLs separated by commas".into(),
                );
            }
        }
        Ok(RedisTarget::Cluster(seeds))
    }

    /// The node URLs a pub/sub subscriber may use, in the order to try them: on a cluster
    /// a plain `PUBLISH` reaches the subscribers of every node, so any one will do.
    pub fn subscribe_urls(&self) -> Vec<String> {
        match self {
            RedisTarget::Single(url) => vec![url.clone()],
            RedisTarget::Cluster(seeds) => seeds.clone(),
        }
    }

    /// A connection whose every call is bounded by `timeout` (a connection attempt too).
    /// It connects lazily: a Redis that is down at start-up fails the first calls, not
    /// the start.
    pub async fn connect(&self, timeout: Duration) -> Result<RedisConn> {
        match self {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    // One quick retry, then fail: the caller answers 503 and the next
                    // request tries again; the manager keeps reconnecting in the background.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisTarget::Cluster(seeds) => {
                // The response timeout bounds each try and, set here on the builder, the
                // whole request with its re-sends too (redis-rs's overall timeout).
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .response_timeout(timeout)
                    .connection_timeout(timeout)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                Ok(RedisConn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }
}

/// A connection to one Redis or to a cluster. Cloning is cheap: clones share the
/// underlying multiplexed connections.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Waits until `replicas` replicas hold every write made so far on the connection
    /// that carried the writes to `key` (its slot's master on a cluster); returns how many
    /// confirmed within `timeout`.
    pub async fn wait_replicas(&self, key: &str, replicas: u32, timeout: Duration) -> Result<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout.as_millis().max(1) as u64);
        match self {
            RedisConn::Single(c) => Ok(cmd.query_async(&mut c.clone()).await?),
            RedisConn::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let v = c
                    .clone()
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                redis::from_redis_value(v).map_err(|_| {
                    EngineError::Store("WAIT answered something else than a count".into())
                })
            }
        }
    }

    /// The text of `INFO section` of every master (one on a single Redis).
    pub async fn info_of_masters(&self, section: &str) -> Result<Vec<String>> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        match self {
            RedisConn::Single(c) => Ok(vec![cmd.query_async(&mut c.clone()).await?]),
            RedisConn::Cluster(c) => {
                let v = c
                    .clone()
                    .route_command(
                        cmd,
                        RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            Some(ResponsePolicy::Special),
                        )),
                    )
                    .await?;
                info_texts(v)
            }
        }
    }
}

/// The per-node texts of an `INFO` answered by several nodes (a map of node -> text).
fn info_texts(v: Value) -> Result<Vec<String>> {
    let bad = || EngineError::Store("INFO answered something else than text".into());
    match v {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(_, text)| redis::from_redis_value::<String>(text).map_err(|_| bad()))
            .collect(),
        other => Ok(vec![
            redis::from_redis_value::<String>(other).map_err(|_| bad())?
        ]),
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_seeds_are_parsed_and_checked() {
        assert_eq!(
            RedisTarget::cluster("redis://a:7000, redis://b:7001,"),
            Ok(RedisTarget::Cluster(vec![
                "redis://a:7000".into(),
                "redis://b:7001".into()
            ]))
        );
        assert!(RedisTarget::cluster(" , ").is_err());
        assert!(RedisTarget::cluster("a:7000").is_err());
    }

    #[test]
    fn targets_do_not_print_their_urls() {
        let t = RedisTarget::Single("redis://:secret@h:1".into());
        assert!(!format!("{t:?}").contains("secret"));
        let t = RedisTarget::Cluster(vec!["redis://:secret@h:1".into()]);
        assert!(!format!("{t:?}").contains("secret"));
    }
}
