//! A throwaway Redis Cluster owned by one test: 6 `redis-server --cluster-enabled yes`
//! nodes (3 masters, 3 replicas) on free ports at most 55535 (each node's cluster bus is
//! its port + 10000), each in a directory of its own, joined by `redis-cli --cluster
//! create ... --cluster-replicas 1`, ready when every node says `cluster_state:ok` and
//! every master's replica is in sync.
//! Killed and removed when dropped.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The highest port a node may take: its bus (port + 10000) must be a valid port too.
const MAX_PORT: u16 = 55_535;
/// How long a master may be unreachable before its replica takes over, ms. Short, so a
/// failover test takes seconds.
const NODE_TIMEOUT_MS: u64 = 2_000;

struct Node {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

fn spawn_node(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
            "--dir",
            dir.to_str().expect("a UTF-8 directory"),
            "--save",
            "",
            "--appendonly",
            "no",
            // A replica's first sync starts at once, not after Redis's default 5 s.
            "--repl-diskless-sync-delay",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (.ci/run installs it)")
}

pub struct TestCluster {
    nodes: Vec<Node>,
    dir: std::path::PathBuf,
}

/// A port whose bus port (+10000) is free too, in 20000..=MAX_PORT.
fn free_cluster_port(taken: &[u16]) -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    loop {
        let port: u16 = rng.random_range(20_000..=MAX_PORT);
        if taken.contains(&port) {
            continue;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli on PATH (.ci/run installs redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl TestCluster {
    /// Starts 6 nodes and joins them into a cluster of 3 masters with a replica each.
    pub fn start() -> TestCluster {
        let dir =
            std::env::temp_dir().join(format!("stampede-cluster-{:016x}", rand::random::<u64>()));
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port(&ports);
            ports.push(port);
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node directory");
            let child = spawn_node(port, &node_dir);
            nodes.push(Node {
                port,
                dir: node_dir,
                child: Some(child),
            });
        }
        let cluster = TestCluster { nodes, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(Instant::now() < deadline, "cluster node {p} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli on PATH");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_for_replicas(Duration::from_secs(30));
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` and knows 3 masters that
    /// serve every slot.
    pub fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.live_ports().iter().all(|p| {
                let info = cli(*p, &["cluster", "info"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The seed node URLs (every node), for `STAMPEDE_REDIS_CLUSTER` or a `RedisTarget`.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The seeds as `STAMPEDE_REDIS_CLUSTER` takes them.
    pub fn seeds_env(&self) -> String {
        self.seeds().join(",")
    }

    /// The live masters as a live node sees them: port -> the slot ranges it serves.
    fn master_slots(&self) -> Vec<(u16, Vec<(u16, u16)>)> {
        let Some(&asker) = self.live_ports().first() else {
            return Vec::new();
        };
        let mut masters: Vec<(u16, Vec<(u16, u16)>)> = cli(asker, &["cluster", "nodes"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let flags = *f.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let port = f[1].split(['@', ':']).nth(1)?.parse().ok()?;
                let ranges = f[8..]
                    .iter()
                    .filter_map(|r| {
                        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
                        Some((lo.parse().ok()?, hi.parse().ok()?))
                    })
                    .collect();
                Some((port, ranges))
            })
            .collect();
        masters.sort();
        masters
    }

    /// The ports of the live masters.
    pub fn masters(&self) -> Vec<u16> {
        self.master_slots().into_iter().map(|(p, _)| p).collect()
    }

    /// The port of the master that serves `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.live_ports()[0], &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT of {key}"));
        self.master_slots()
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|&(lo, hi)| lo <= slot && slot <= hi))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// `INFO commandstats` calls of `command` (lower case, e.g. `evalsha`) on each live
    /// master, by port.
    pub fn calls_per_master(&self, command: &str) -> HashMap<u16, u64> {
        let field = format!("cmdstat_{command}:calls=");
        self.masters()
            .into_iter()
            .map(|p| {
                let calls = cli(p, &["info", "commandstats"])
                    .lines()
                    .find_map(|l| l.strip_prefix(&field))
                    .and_then(|rest| rest.split(',').next()?.parse().ok())
                    .unwrap_or(0);
                (p, calls)
            })
            .collect()
    }

    /// Runs `redis-cli` against the node on `port` (assertions and set-ups).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// Kills the node on `port` by its own pid (SIGKILL): its data is gone.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Starts a killed node again on its port and directory: it rejoins the cluster from
    /// its `nodes.conf`, as a replica of whichever node took over its slots.
    pub fn restart(&mut self, port: u16) {
        if let Some(n) = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port && n.child.is_none())
        {
            n.child = Some(spawn_node(n.port, &n.dir));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cluster node {port} did not restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every master has at least one replica that is in sync.
    pub fn wait_for_replicas(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let synced = self.masters().iter().all(|p| {
                let info = cli(*p, &["info", "replication"]);
                info.lines()
                    .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
            });
            if synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the masters did not get their replicas back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a replica has taken over every slot of the killed master on `dead`:
    /// the others flag it failed, 3 other masters serve every slot, and the cluster is ok.
    pub fn wait_for_failover(&self, dead: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let masters = self.masters();
            if masters.len() == 3 && !masters.contains(&dead) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over from {dead}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_until_ok(deadline.saturating_duration_since(Instant::now()));
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
