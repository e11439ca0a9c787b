//! SIGTERM on the real binary: it stops accepting, finishes what is in flight, flushes
//! the worker into the database and exits 0.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Deps, ADMIN_TOKEN, JWT_SECRET};
use serde_json::{json, Value};
use stampede_engine::auth::Auth;
use stampede_engine::db::Database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_accepted_claims_and_exits_zero() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let port = stampede_engine::testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .arg("serve")
        .env("STAMPEDE_LISTEN", format!("127.0.0.1:{port}"))
        .env("STAMPEDE_DATABASE_URL", &config.database_url)
        .env("STAMPEDE_JWT_SECRET", JWT_SECRET)
        .env("STAMPEDE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stampede serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created: Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"kind": "flash_sale", "name": "term", "stock": 1000}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_u64().expect("id");
    let auth = Auth::new(JWT_SECRET, ADMIN_TOKEN);
    let claims = (0..300).map(|u| {
        let (http, base, token) = (
            http.clone(),
            base.clone(),
            auth.mint(&format!("u{u}"), 600).expect("mint"),
        );
        async move {
            http.post(format!("{base}/v1/campaigns/{id}/claims"))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(claims).await;
    let accepted = statuses.iter().filter(|s| matches!(s, Ok(201))).count();
    assert_eq!(accepted, 300);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM");
    let db = Database::connect(&config.database_url, 1)
        .await
        .expect("sqlite");
    assert_eq!(
        db.persisted_count(id).await.expect("count"),
        300,
        "every accepted claim flushed"
    );
    db.close().await;
}
