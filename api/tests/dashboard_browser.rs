//! The operators' dashboard: nothing without the admin login (plain HTTP), and in a real
//! browser (headless Chromium driven over the DevTools protocol) the figures of a sale
//! move while a crowd claims, and a campaign's funnel shows the views and the claim just
//! made. The browser test keeps a screenshot in `target/artifacts/dashboard.png`.
//!
//! Chromium is Debian's `chromium` package (`.ci/run` installs it). Without it the
//! browser test is skipped with a loud message, except under CI (`CI=true`), where it
//! fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in with the admin token; the session cookie's `name=value`.
async fn login(app: &TestApp) -> String {
    let res = no_redirects()
        .get(app.url(&format!("/dashboard?token={ADMIN_TOKEN}")))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    let set = res.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(
        !set.contains(ADMIN_TOKEN),
        "the cookie must not hold the token"
    );
    set.split(';').next().expect("name=value").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_nothing_without_the_admin_login() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    app.create(json!({"kind": "flash_sale", "name": "Secret sale", "stock": 5}))
        .await;
    let http = no_redirects();
    let get = |path: &str, cookie: Option<&str>| {
        let mut req = http.get(app.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };

    // No cookie, a forged one, or a wrong token: a login page or 401, and no data.
    let forged = "stampede_dashboard=99999999999.0000000000000000000000000000000000000000000000000000000000000000";
    for cookie in [None, Some(forged), Some("stampede_dashboard=garbage")] {
        let page = get("/dashboard", cookie).await.expect("page");
        assert_eq!(page.status(), 401);
        let body = page.text().await.expect("text");
        assert!(body.contains("Log in"), "{body}");
        assert!(!body.contains("Secret sale") && !body.contains("dashboard.js"));
        for path in [
            "/dashboard/events",
            "/dashboard/dashboard.js",
            "/dashboard/dashboard.css",
        ] {
            let res = get(path, cookie).await.expect("get");
            assert_eq!(res.status(), 401, "{path}");
            assert_eq!(
                res.json::<Value>().await.expect("json")["error"]["code"],
                "unauthorized"
            );
        }
    }
    let wrong = get("/dashboard?token=not-the-admin-token", None)
        .await
        .expect("wrong");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let user_jwt = app.token("u1");
    let as_user = get(&format!("/dashboard?token={user_jwt}"), None)
        .await
        .expect("user");
    assert_eq!(as_user.status(), 401, "a user token is not the admin token");
    assert!(as_user.headers().get("set-cookie").is_none());

    // Logged in: the page, its assets and the event stream.
    let cookie = login(&app).await;
    let page = get("/dashboard", Some(&cookie)).await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("default-src 'none'"));
    assert!(page
        .text()
        .await
        .expect("text")
        .contains("/dashboard/dashboard.js"));
    for path in ["/dashboard/dashboard.js", "/dashboard/dashboard.css"] {
        assert_eq!(get(path, Some(&cookie)).await.expect("asset").status(), 200);
    }
    let mut events = get("/dashboard/events", Some(&cookie))
        .await
        .expect("events");
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("Secret sale") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no snapshot naming the campaign: {other:?} after {seen:?}"),
        }
    }
    assert!(seen.contains("event: snapshot"), "{seen}");
    drop(events);

    // A sale with a payment window shows its orders by state.
    let orders = app
        .create(
            json!({"kind": "flash_sale", "name": "Window sale", "stock": 5,
            "payment_window_secs": 600}),
        )
        .await;
    for u in ["a", "b"] {
        assert_eq!(app.claim(orders, &app.token(u), None).await.0, 201);
    }
    let mut events = get("/dashboard/events", Some(&cookie))
        .await
        .expect("events");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no snapshot with the orders: {other:?} after {seen:?}"),
        }
        let found = seen
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find_map(|d| {
                let v: Value = serde_json::from_str(d).ok()?;
                v["campaigns"]
                    .as_array()?
                    .iter()
                    .find(|c| {
                        // The funnel's counts arrive within a flush (a second).
                        let accepted: u64 = c["funnel"]
                            .as_array()
                            .map(|m| m.iter().filter_map(|m| m["accepted"].as_u64()).sum())
                            .unwrap_or(0);
                        c["id"] == orders && c["orders"]["pending_orders"] == 2 && accepted == 2
                    })
                    .cloned()
            });
        if let Some(c) = found {
            break c;
        }
    };
    assert_eq!(shown["orders"]["paid_orders"], 0, "{shown}");
    assert_eq!(shown["orders"]["expired_orders"], 0, "{shown}");
    // Its funnel: the last 30 minutes, oldest first, the two claims in them.
    let funnel = shown["funnel"].as_array().expect("funnel");
    assert_eq!(funnel.len(), 30, "{shown}");
    let sum = |k: &str| funnel.iter().filter_map(|m| m[k].as_u64()).sum::<u64>();
    assert_eq!(
        (sum("claim"), sum("accepted"), sum("paid"), sum("view")),
        (2, 2, 0, 0)
    );
    assert!(funnel
        .windows(2)
        .all(|w| w[1]["at_ms"].as_i64() > w[0]["at_ms"].as_i64()));
    drop(events);
    app.stop().await;
}

/// The first `chromium` (or `chromium-browser`) on the PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A headless Chromium with its own profile directory; killed (its whole process
/// group) and cleaned up on drop, however the test ends.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts Chromium and returns it with its DevTools address (`host:port`).
    fn launch(binary: &PathBuf) -> (Browser, String) {
        use std::os::unix::process::CommandExt;
        let profile = std::env::temp_dir().join(format!(
            "stampede-chromium-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that drop kills the renderers too.
            .process_group(0)
            .spawn()
            .expect("spawn chromium");
        let stderr = child.stderr.take().expect("stderr");
        let browser = Browser { child, profile };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium printed its DevTools address within 30 s");
        let host = ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host")
            .to_string();
        (browser, host)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools protocol session with one page.
struct Page {
    ws: Socket,
    next_id: u64,
}

impl Page {
    async fn attach(devtools: &str) -> Page {
        let targets: Value = reqwest::get(format!("http://{devtools}/json/list"))
            .await
            .expect("targets")
            .json()
            .await
            .expect("json");
        let url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("devtools websocket");
        Page { ws, next_id: 0 }
    }

    /// Calls `method` and returns its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let msg = self.ws.next().await.expect("open").expect("message");
                let Ok(text) = msg.to_text() else { continue };
                let v: Value = serde_json::from_str(text).expect("json");
                if v["id"] == id {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no reply within 15 s"));
        assert!(reply["error"].is_null(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// Evaluates a JavaScript expression that returns a JSON string, and parses it.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        let text = r["result"]["value"].as_str().unwrap_or("null").to_string();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// What the page shows of a campaign, read from its stable attributes.
fn reader(campaign: u64) -> String {
    format!(
        r#"(() => {{
  const c = document.querySelector('[data-campaign="{campaign}"]');
  const f = (n) => {{
    const e = c && c.querySelector('[data-figure="' + n + '"]');
    return e && e.dataset.value !== "" ? Number(e.dataset.value) : null;
  }};
  return JSON.stringify({{
    updates: Number((document.body && document.body.dataset.updates) || 0),
    path: location.pathname, search: location.search, cookie: document.cookie,
    connection: (document.getElementById("connection") || {{}}).textContent || null,
    remaining: f("remaining"), accepted: f("accepted"), persisted: f("persisted"),
    backlog: f("backlog"), accepted_per_sec: f("accepted_per_sec"),
    p50_ms: f("p50_ms"), p99_ms: f("p99_ms"),
    funnel_view: f("funnel_view"), funnel_claim: f("funnel_claim"),
    funnel_accepted: f("funnel_accepted"),
    funnel_series: c ? [...c.querySelectorAll('[data-chart="funnel"] polyline')].map((l) => ({{
      series: l.getAttribute("class"),
      points: (l.getAttribute("points") || "").split(" ").filter((p) => p).length,
    }})) : [],
    lines: c ? c.querySelectorAll("polyline").length : 0,
    listed: !!document.querySelector('[data-campaign-row="{campaign}"]'),
  }});
}})()"#
    )
}

/// Reads the page until `done` holds for what it shows; panics after `within`.
async fn wait_for(
    page: &mut Page,
    campaign: u64,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let seen = page.eval(&reader(campaign)).await;
        if done(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: the page shows {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

const STOCK: u64 = 400;
const CROWD: u64 = 600;
/// The views posted for the funnel's check.
const VIEWS: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_sale_as_it_happens_in_a_browser() {
    let Some(chromium) = find_chromium() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI=true but chromium is not installed (apt-get install chromium; .ci/run does it)"
        );
        eprintln!("\n!!!!! SKIPPED the dashboard browser test: no `chromium` on the PATH (apt-get install chromium) !!!!!\n");
        return;
    };
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app
        .create(json!({"kind": "flash_sale", "name": "Browser sale", "stock": STOCK}))
        .await;

    let (browser, devtools) = Browser::launch(&chromium);
    let mut page = Page::attach(&devtools).await;
    // Logging in through the address bar: the cookie is set and the token leaves the URL.
    page.call(
        "Page.navigate",
        json!({"url": app.url(&format!("/dashboard?token={ADMIN_TOKEN}"))}),
    )
    .await;
    let first = wait_for(
        &mut page,
        id,
        Duration::from_secs(20),
        "the first snapshot",
        |v| num(v, "updates") >= 1.0 && v["remaining"].is_number() && v["listed"] == true,
    )
    .await;
    assert_eq!(first["path"], "/dashboard");
    assert_eq!(first["search"], "", "the token is gone from the address");
    assert_eq!(first["cookie"], "", "the session cookie is HttpOnly");
    assert_eq!(num(&first, "remaining"), STOCK as f64);
    assert_eq!(num(&first, "accepted"), 0.0);

    // A crowd of CROWD users over about three seconds, in waves.
    let (http, url) = (
        app.http.clone(),
        app.url(&format!("/v1/campaigns/{id}/claims")),
    );
    let tokens: Vec<String> = (0..CROWD).map(|u| app.token(&format!("b{u}"))).collect();
    let crowd = tokio::spawn(async move {
        let mut accepted = 0;
        for wave in tokens.chunks(50) {
            let claims = wave.iter().map(|t| http.post(&url).bearer_auth(t).send());
            for res in futures::future::join_all(claims).await {
                if res.is_ok_and(|r| r.status() == 201) {
                    accepted += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        accepted
    });

    // While it runs, the figures move: stock melts, claims and their rate show.
    let moving = wait_for(
        &mut page,
        id,
        Duration::from_secs(20),
        "figures moving during the sale",
        |v| {
            num(v, "remaining") < STOCK as f64
                && num(v, "accepted") > 0.0
                && num(v, "accepted_per_sec") > 0.0
                && num(v, "p99_ms") > 0.0
                && num(v, "updates") > num(&first, "updates")
        },
    )
    .await;
    assert!(num(&moving, "p50_ms") <= num(&moving, "p99_ms"), "{moving}");
    assert!(num(&moving, "lines") >= 4.0, "charts drawn: {moving}");

    let accepted = tokio::time::timeout(Duration::from_secs(60), crowd)
        .await
        .expect("the crowd finished")
        .expect("crowd task");
    assert_eq!(accepted, STOCK, "exactly the stock is sold");
    let settled = wait_for(
        &mut page,
        id,
        Duration::from_secs(20),
        "the sold-out sale, all persisted",
        |v| {
            num(v, "remaining") == 0.0
                && num(v, "accepted") == STOCK as f64
                && num(v, "persisted") == STOCK as f64
                && num(v, "backlog") == 0.0
        },
    )
    .await;
    assert!(num(&settled, "updates") > num(&moving, "updates"));

    // The funnel, live: a campaign viewed VIEWS times (one batch of events), claimed once.
    let viewed = app
        .create(json!({"kind": "flash_sale", "name": "Viewed sale", "stock": 5}))
        .await;
    let views: Vec<Value> = (0..VIEWS)
        .map(|_| json!({"type": "view", "campaign_id": viewed}))
        .collect();
    let posted = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(app.token("viewer"))
        .json(&json!({ "events": views }))
        .send()
        .await
        .expect("events");
    assert_eq!(posted.status(), 202);
    assert_eq!(app.claim(viewed, &app.token("viewer"), None).await.0, 201);
    let funnel = wait_for(
        &mut page,
        viewed,
        Duration::from_secs(30),
        "the funnel's views and the claim",
        |v| {
            num(v, "funnel_view") == VIEWS as f64
                && num(v, "funnel_claim") == 1.0
                && num(v, "funnel_accepted") == 1.0
                && v["funnel_series"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|l| l["series"] == "s-view"))
        },
    )
    .await;
    // One point per minute of the snapshot's 30, for views as for the claims.
    let series = funnel["funnel_series"].as_array().expect("series");
    for name in ["s-view", "s-claim", "s-accepted"] {
        let line = series.iter().find(|l| l["series"] == name);
        assert_eq!(
            line.and_then(|l| l["points"].as_u64()),
            Some(30),
            "{name}: {funnel}"
        );
    }
    assert!(
        series.iter().all(|l| l["series"] != "s-paid"),
        "nothing paid, no paid line: {funnel}"
    );

    let shot = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("png data"))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let path = dir.join("dashboard.png");
    std::fs::write(&path, &png).expect("write screenshot");
    println!("dashboard screenshot: {}", path.display());

    drop(page);
    drop(browser);
    app.stop().await;
}
