//! Test support shared by every crate's tests (feature `testkit`): a `redis-server` of
//! the test's own on a free port, a fresh PostgreSQL or MySQL/MariaDB database per
//! test, dropped afterwards, a throwaway Redis Cluster ([`TestCluster`]), and a [`CutProxy`] to cut
//! either off. Tests never flush or reconfigure
//! the shared instances.

mod cluster;
mod cut_proxy;

pub use cluster::TestCluster;
pub use cut_proxy::CutProxy;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PostgreSQL to create test databases on; `STAMPEDE_TEST_PG` overrides it.
pub fn pg_admin_url() -> String {
    std::env::var("STAMPEDE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// MySQL or MariaDB to create test databases on; `STAMPEDE_TEST_MYSQL` overrides it.
pub fn mysql_admin_url() -> String {
    std::env::var("STAMPEDE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A free TCP port on loopback (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

fn unique_suffix() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rng().next_u64())
}

/// A `redis-server` owned by one test, killed when dropped.
pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// Starts a server without persistence on a free port and waits until it answers.
    pub fn start() -> TestRedis {
        Self::start_free(&[])
    }

    /// Starts a server on `port` (a restart on the port an earlier one had).
    pub fn start_on(port: u16) -> TestRedis {
        Self::start_with(port, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a replica of `primary` on a free port.
    pub fn start_replica_of(primary: &TestRedis) -> TestRedis {
        Self::start_free(&["--replicaof", "127.0.0.1", &primary.port.to_string()])
    }

    /// Starts a server on `port` that keeps its snapshot (`dump.rdb`) in `dir`, and loads
    /// the one there if any: with [`TestRedis::save`] and a kill, a Redis that comes
    /// back with an older state. It snapshots only when told to.
    pub fn start_snapshotting(port: u16, dir: &std::path::Path) -> TestRedis {
        let dir = dir.to_str().expect("a UTF-8 directory");
        Self::start_with(port, &["--dir", dir, "--dbfilename", "dump.rdb"])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes the snapshot now (`SAVE`); only for a server started with
    /// [`TestRedis::start_snapshotting`], so no test writes one into its working directory.
    pub fn save(&self) {
        let mut conn = redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test's redis-server");
        let _: () = redis::cmd("SAVE").query(&mut conn).expect("SAVE");
    }

    /// On a free port, tried again on another one when the port was taken between
    /// [`free_port`] releasing it and the server binding it (by anything on the machine).
    fn start_free(extra: &[&str]) -> TestRedis {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_with(free_port(), extra) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("{last}")
    }

    /// Spawns the server and waits until the server it spawned answers `PING` on `port`:
    /// a connection alone could reach whatever else took the port.
    fn start_with(port: u16, extra: &[&str]) -> Result<TestRedis, String> {
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on {port} exited at its start ({status}): the port was taken"
                ));
            }
            if answers_ping(port) {
                // Ours, unless it exited since and something else answers there.
                if child.try_wait().is_ok_and(|s| s.is_none()) {
                    return Ok(TestRedis {
                        port,
                        child: Some(child),
                    });
                }
                continue;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not answer on {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, like a
    /// Redis that hangs or a network that drops packets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Kills the server (its data is gone: it keeps nothing on disk).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis answers `PING` on loopback `port` within a second.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A fresh PostgreSQL database with a random name, dropped with this guard.
pub struct TestPg {
    pub name: String,
    admin: String,
}

impl TestPg {
    pub async fn create() -> TestPg {
        let admin = pg_admin_url();
        let name = format!("stampede_test_{}", unique_suffix());
        let pool = sqlx::PgPool::connect(&format!("{admin}/postgres"))
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        TestPg { name, admin }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.admin, self.name)
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        on_own_runtime(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&format!("{admin}/postgres")).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    }
}

/// Runs `work` to its end on a runtime of its own in a plain thread: a guard's `Drop`
/// runs outside async context (or inside a runtime it must not block).
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// A fresh MySQL/MariaDB database with a random name, dropped with this guard.
pub struct TestMysql {
    pub name: String,
    admin: String,
}

impl TestMysql {
    pub async fn create() -> TestMysql {
        let admin = mysql_admin_url();
        let name = format!("stampede_test_{}", unique_suffix());
        let pool = sqlx::MySqlPool::connect(&admin)
            .await
            .expect("MySQL/MariaDB reachable (.ci/run installs and starts MariaDB)");
        sqlx::query(&format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .execute(&pool)
        .await
        .expect("create test database");
        pool.close().await;
        TestMysql { name, admin }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.admin, self.name)
    }
}

impl Drop for TestMysql {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        on_own_runtime(async move {
            if let Ok(pool) = sqlx::MySqlPool::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    }
}

/// A SQLite file in a fresh temporary directory, removed with this guard.
pub struct TestSqlite {
    pub dir: std::path::PathBuf,
}

impl TestSqlite {
    pub fn create() -> TestSqlite {
        let dir = std::env::temp_dir().join(format!("stampede-test-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TestSqlite { dir }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.dir.join("stampede.db").display())
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
