//! The request id, end to end on the real binary with JSON logs: every reply carries
//! one (the client's when it is safe, a fresh one otherwise), and the worker's log line
//! for a persisted claim names the id of the request that made it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Deps, ADMIN_TOKEN, JWT_SECRET};
use serde_json::{json, Value};
use stampede_engine::auth::Auth;

/// Kills the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn header(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn is_generated(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claims_request_id_reaches_the_workers_json_log() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let port = stampede_engine::testkit::free_port();
    let mut child = common::serve_command(&config, port)
        .env("STAMPEDE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,sqlx=warn,stampede_worker=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stampede serve");
    let stdout = child.stdout.take().expect("stdout");
    let _server = Server(child);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Ok(res) = http.get(format!("{base}/healthz")).send().await {
            break res;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(is_generated(&header(&health)), "{:?}", header(&health));

    // An unsafe or overlong id is replaced, on any route, an unknown one included.
    for bad in ["has space", "a|b", &"x".repeat(37)] {
        let res = http
            .get(format!("{base}/nowhere"))
            .header("x-request-id", bad)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 404);
        assert!(is_generated(&header(&res)), "{bad:?} -> {:?}", header(&res));
    }

    let created: Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"kind": "flash_sale", "name": "traced", "stock": 10}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_u64().expect("id");
    let token = Auth::new(JWT_SECRET, ADMIN_TOKEN)
        .mint("traced-user", 600)
        .expect("mint");
    let res = http
        .post(format!("{base}/v1/campaigns/{id}/claims"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-0001")
        .send()
        .await
        .expect("claim");
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res), "trace-me-0001", "a safe client id is kept");
    let claim: Value = res.json().await.expect("json");
    let claim_id = claim["claim"]["id"].as_str().expect("claim id").to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    let persisted = loop {
        let found = lines.lock().expect("lines").iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "claim persisted" && v["claim"] == claim_id.as_str()).then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no worker log line for {claim_id}: {:?}",
            lines.lock().expect("lines")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(persisted["request_id"], "trace-me-0001", "{persisted}");
    assert_eq!(persisted["target"], "stampede_worker", "{persisted}");
    assert_eq!(persisted["level"], "DEBUG", "{persisted}");

    let all = lines.lock().expect("lines").clone();
    assert!(
        all.iter().any(|l| l.contains("stampede listening")),
        "{all:?}"
    );
    for l in &all {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "not a JSON line: {l}"
        );
    }
}
