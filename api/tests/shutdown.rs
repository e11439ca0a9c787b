//! SIGTERM on the real binary, in the middle of a stream of claims: it stops accepting,
//! finishes what is in flight, flushes the worker into the database and exits 0, and
//! every claim answered `201` is in the database, none other.

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
    let mut child = common::serve_command(&config, port)
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
        .json(&json!({"kind": "flash_sale", "name": "term", "stock": 10000}))
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

    // A crowd still claiming when the signal comes: 32 at a time, until refused.
    let load = {
        let (http, base) = (http.clone(), base.clone());
        let tokens: Vec<String> = (0..3_000)
            .map(|u| auth.mint(&format!("late{u}"), 600).expect("mint"))
            .collect();
        tokio::spawn(async move {
            use futures::stream::{self, StreamExt};
            stream::iter(tokens)
                .map(|token| {
                    let (http, base) = (http.clone(), base.clone());
                    async move {
                        http.post(format!("{base}/v1/campaigns/{id}/claims"))
                            .bearer_auth(token)
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

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
    let late = load.await.expect("load task");
    let late_accepted = late.iter().filter(|s| matches!(s, Ok(201))).count();
    assert!(
        late_accepted > 0,
        "the signal came while claims were flowing"
    );
    assert!(
        late.iter().all(|s| matches!(s, Ok(201) | Ok(503) | Err(_))),
        "in flight answered, later ones refused: {:?}",
        late.iter()
            .filter(|s| !matches!(s, Ok(201) | Ok(503) | Err(_)))
            .take(3)
            .collect::<Vec<_>>()
    );
    let db = Database::connect(&config.database_url, 1)
        .await
        .expect("sqlite");
    assert_eq!(
        db.persisted_count(id).await.expect("count") as usize,
        300 + late_accepted,
        "every claim answered 201 flushed, and no other"
    );
    db.close().await;
}
