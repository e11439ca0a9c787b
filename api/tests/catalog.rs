//! `stampede export-catalog` (the real binary) against a running engine: the files list
//! the campaigns not ended, each the bytes `GET /v1/campaigns/{id}` serves, with a
//! version that moves only when they do; `--watch` follows claims and closes and no
//! reader ever sees part of a file; embedded, the figures come from the database; a bad
//! `--out` is refused with a message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp};
use serde_json::{json, Value};
use stampede_api::config::Config;

/// A fresh directory under the system's temporary one, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use rand::RngCore;
        let dir =
            std::env::temp_dir().join(format!("stampede-catalog-{:016x}", rand::rng().next_u64()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn out(&self) -> PathBuf {
        self.0.join("catalog")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `stampede export-catalog --out OUT` over the test's Redis and database.
fn export_command(config: &Config, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stampede"));
    cmd.arg("export-catalog")
        .arg("--out")
        .arg(out)
        .env("STAMPEDE_DATABASE_URL", &config.database_url)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .env_remove("STAMPEDE_REDIS_URL")
        .env_remove("STAMPEDE_REDIS_CLUSTER");
    if let Some(url) = &config.redis_url {
        cmd.env("STAMPEDE_REDIS_URL", url);
    }
    cmd
}

/// Runs a one-shot export to its end.
async fn export_once(config: &Config, out: &Path) -> Output {
    let mut cmd = export_command(config, out);
    tokio::task::spawn_blocking(move || cmd.output().expect("run export-catalog"))
        .await
        .expect("export task")
}

/// A one-shot export that must succeed; the index it wrote.
async fn export(config: &Config, out: &Path) -> Value {
    let done = export_once(config, out).await;
    assert!(
        done.status.success(),
        "export-catalog failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    read_json(&out.join("campaigns.json"))
}

/// `export-catalog --watch` as a child process, SIGKILLed if the test fails.
fn start_watching(config: &Config, out: &Path) -> Process {
    let child = export_command(config, out)
        .arg("--watch")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn export-catalog --watch");
    Process { child, addr: None }
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn campaign_file(out: &Path, id: u64) -> PathBuf {
    out.join("campaigns").join(format!("{id}.json"))
}

/// The ids the index lists, in its order.
fn listed(index: &Value) -> Vec<u64> {
    index["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .map(|c| c["id"].as_u64().expect("id"))
        .collect()
}

/// The index's entry for campaign `id`.
fn entry(index: &Value, id: u64) -> Option<&Value> {
    index["campaigns"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
}

/// The bytes `GET /v1/campaigns/{id}` answers.
async fn served(app: &TestApp, id: u64) -> Vec<u8> {
    let res = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    res.bytes().await.expect("body").to_vec()
}

/// Waits (at most 10 s) until the index in `out` satisfies `ok`; the index then.
async fn wait_for_index(out: &Path, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let index = std::fs::read(out.join("campaigns.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if let Some(index) = index.filter(|i| ok(i)) {
            return index;
        }
        assert!(Instant::now() < deadline, "the catalog never showed {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM and waits (at most 10 s) for the exit; its code.
async fn terminate(p: &mut Process) -> Option<i32> {
    let term = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = p.child.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No temporary file is left beside the ones served.
fn assert_no_temporary_files(out: &Path) {
    for dir in [out.to_path_buf(), out.join("campaigns")] {
        for e in std::fs::read_dir(&dir).expect("list") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left behind: {name}");
        }
    }
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_export_lists_the_campaigns_not_ended_as_the_api_serves_them() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let active = app.flash(5, 2).await;
    let scheduled = app
        .create(json!({"kind": "flash_sale", "name": "later", "stock": 5,
                       "starts_at": "2099-01-01T00:00:00Z"}))
        .await;
    let packet = app
        .create(json!({"kind": "red_packet", "name": "rp", "total_cents": 400, "count": 4}))
        .await;
    let ended = app.flash(5, 1).await;
    app.close(ended).await;
    let sold = app.flash(1, 1).await;
    assert_eq!(app.claim(sold, &app.token("first"), None).await.0, 201);

    let scratch = Scratch::new();
    let out = scratch.out();
    let index = export(&config, &out).await;
    assert_eq!(
        listed(&index),
        [sold, packet, scheduled, active],
        "newest first, the ended one left out"
    );
    let version = index["version"].as_str().expect("version").to_string();
    assert!(
        version.len() == 64 && version.chars().all(|c| c.is_ascii_hexdigit()),
        "{version}"
    );
    for (id, status) in [
        (sold, "sold_out"),
        (packet, "active"),
        (scheduled, "scheduled"),
        (active, "active"),
    ] {
        let file = std::fs::read(campaign_file(&out, id)).expect("campaign file");
        assert_eq!(
            String::from_utf8_lossy(&file),
            String::from_utf8_lossy(&served(&app, id).await),
            "campaign {id}: the file is what the api serves"
        );
        let file: Value = serde_json::from_slice(&file).expect("json");
        assert_eq!(entry(&index, id), Some(&file), "the index holds the same");
        assert_eq!(file["status"], status, "{file}");
    }
    assert!(!campaign_file(&out, ended).exists());

    // Nothing changed: the same version, and no file rewritten.
    let packet_written = modified(&campaign_file(&out, packet));
    let again = export(&config, &out).await;
    assert_eq!(again["version"], version.as_str());
    assert_eq!(modified(&campaign_file(&out, packet)), packet_written);

    // A claim changes the version and the claimed campaign's file only.
    let (status, body) = app
        .claim(active, &app.token("buyer"), Some(json!({"quantity": 2})))
        .await;
    assert_eq!(status, 201, "{body}");
    let after = export(&config, &out).await;
    assert_ne!(after["version"], version.as_str());
    assert_eq!(entry(&after, active).expect("listed")["remaining"], 3);
    assert_eq!(
        std::fs::read(campaign_file(&out, active)).expect("file"),
        served(&app, active).await
    );
    assert_eq!(modified(&campaign_file(&out, packet)), packet_written);
    assert_no_temporary_files(&out);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_follows_claims_and_closes_and_no_reader_sees_part_of_a_file() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let hot = app.flash(100, 5).await;
    let doomed = app.flash(10, 1).await;
    let scratch = Scratch::new();
    let out = scratch.out();
    let mut watcher = start_watching(&config, &out);
    wait_for_index(&out, "both campaigns", |i| {
        entry(i, hot).is_some() && entry(i, doomed).is_some()
    })
    .await;

    // A reader reads both files as fast as it can while they are rewritten: every read
    // must find a whole JSON document.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (stop, reads, broken) = (stop.clone(), reads.clone(), broken.clone());
        let paths = [out.join("campaigns.json"), campaign_file(&out, hot)];
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for path in &paths {
                    let read = std::fs::read(path)
                        .map_err(|e| e.to_string())
                        .and_then(|b| {
                            serde_json::from_slice::<Value>(&b)
                                .map(drop)
                                .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&b)))
                        });
                    reads.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = read {
                        broken
                            .lock()
                            .expect("lock")
                            .push(format!("{}: {e}", path.display()));
                    }
                }
            }
        })
    };

    for u in 0..20 {
        let (status, body) = app.claim(hot, &app.token(&format!("u{u}")), None).await;
        assert_eq!(status, 201, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_index(&out, "the 20 claims", |i| {
        entry(i, hot).is_some_and(|c| c["remaining"] == 80)
    })
    .await;
    assert_eq!(read_json(&campaign_file(&out, hot))["remaining"], 80);

    app.close(doomed).await;
    let index = wait_for_index(&out, "the close", |i| entry(i, doomed).is_none()).await;
    assert_eq!(listed(&index), [hot]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while campaign_file(&out, doomed).exists() {
        assert!(
            Instant::now() < deadline,
            "the closed campaign's file stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    let broken = broken.lock().expect("lock").clone();
    eprintln!(
        "{} reads during the rewrites",
        reads.load(Ordering::Relaxed)
    );
    assert!(
        broken.is_empty(),
        "reads that found no whole file: {broken:?}"
    );

    assert_eq!(
        terminate(&mut watcher).await,
        Some(0),
        "exit 0 after SIGTERM"
    );
    assert_no_temporary_files(&out);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_the_watched_figures_come_from_the_database() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let sale = app.flash(10, 5).await;
    let packet = app
        .create(json!({"kind": "red_packet", "name": "rp", "total_cents": 500, "count": 5}))
        .await;
    let windowed = app
        .create(
            json!({"kind": "flash_sale", "name": "orders", "stock": 4, "per_user_limit": 2,
                       "price_cents": 100, "payment_window_secs": 600}),
        )
        .await;
    let scratch = Scratch::new();
    let out = scratch.out();
    // Started before the claims: what it shows later it read from the database then,
    // not from a copy of the live state taken at its start.
    let mut watcher = start_watching(&config, &out);
    wait_for_index(&out, "the three campaigns", |i| listed(i).len() == 3).await;

    let (status, body) = app
        .claim(sale, &app.token("u1"), Some(json!({"quantity": 3})))
        .await;
    assert_eq!(status, 201, "{body}");
    for u in ["u1", "u2"] {
        assert_eq!(app.claim(packet, &app.token(u), None).await.0, 201);
    }
    // An order claimed and cancelled: its units went back on sale.
    let (status, body) = app
        .claim(windowed, &app.token("alice"), Some(json!({"quantity": 2})))
        .await;
    assert_eq!(status, 201, "{body}");
    let claim_id = body["claim"]["id"].as_str().expect("claim id").to_string();
    let res = app
        .http
        .post(app.url(&format!("/v1/claims/{claim_id}/cancel")))
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 200);
    let (status, body) = app.claim(windowed, &app.token("bob"), None).await;
    assert_eq!(status, 201, "{body}");

    // Every claim and order change written (the queue carries both).
    for id in [sale, packet, windowed] {
        app.wait_drained(id).await;
    }
    // Total minus the units persisted claims hold (the cancelled order's count again).
    let index = wait_for_index(&out, "the persisted claims", |i| {
        [(sale, 7), (packet, 3), (windowed, 3)]
            .iter()
            .all(|&(id, remaining)| entry(i, id).is_some_and(|c| c["remaining"] == remaining))
    })
    .await;
    // Settled, the database and the store agree: the files are what the api serves.
    for id in [sale, packet, windowed] {
        let api: Value = serde_json::from_slice(&served(&app, id).await).expect("json");
        assert_eq!(entry(&index, id), Some(&api), "campaign {id}");
        assert_eq!(read_json(&campaign_file(&out, id)), api, "campaign {id}");
    }
    assert_eq!(
        terminate(&mut watcher).await,
        Some(0),
        "exit 0 after SIGTERM"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_out_that_is_not_a_writable_directory_is_refused_with_a_message() {
    // The database is never opened: `--out` is checked first.
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let sqlite = deps.sqlite.as_ref().expect("sqlite");
    let scratch = Scratch::new();
    let file = scratch.0.join("a-file");
    std::fs::write(&file, b"not a directory").expect("file");
    let read_only = scratch.0.join("read-only");
    std::fs::create_dir_all(&read_only).expect("dir");
    let mut unwritable = read_only.join("catalog");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
        // Root writes through permissions; sysfs takes no new files from anyone.
        if std::fs::create_dir(&unwritable).is_ok() {
            std::fs::remove_dir(&unwritable).expect("rmdir");
            unwritable = PathBuf::from("/sys/stampede-catalog-test");
        }
    }
    for (out, says) in [
        (file.clone(), "not a directory"),
        (file.join("below"), "cannot create"),
        (unwritable, "cannot create"),
    ] {
        let done = export_once(&config, &out).await;
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(1), "{}: {stderr}", out.display());
        assert!(
            stderr.contains("--out") && stderr.contains(says),
            "{}: {stderr}",
            out.display()
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(
        std::fs::read(&file).expect("file"),
        b"not a directory",
        "left as it was"
    );
    assert!(
        !sqlite.dir.join("stampede.db").exists(),
        "the database was not opened"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755));
    }
}
