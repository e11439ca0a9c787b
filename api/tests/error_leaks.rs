//! No error reply ever carries internal text. Every error the contract lists is driven
//! for real, on both backends: the bad inputs (400, 401, 403, 404, 405, 409, 413, 415,
//! 422, 429) and, on Redis + PostgreSQL, the outages (503): PostgreSQL and Redis each
//! cut off by a [`CutProxy`], then each answering with errors of its own (a Redis key
//! of the wrong type, PostgreSQL tables renamed away), so the engine's failures carry
//! SQL, Redis replies and OS errors in their text.
//!
//! Every reply is collected and checked at the end: no body or header value holds SQL,
//! a Redis reply, a panic or backtrace, or a file path; every error is the contract's
//! shape with a snake_case code and a one-line, one-sentence message. A failure prints
//! every request sent with its status.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Campaigns, Deps, TestApp, ADMIN_TOKEN};
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use stampede_api::startup::Mode;
use stampede_engine::testkit::CutProxy;

/// Text that must never reach a client, matched exactly (upper-case words, which the
/// api's own sentences never hold).
const LEAKS_EXACT: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE ",
    "SQLSTATE",
    "ERR",
    "WRONGTYPE",
    "NOSCRIPT",
    "RUST_BACKTRACE",
];

/// Text that must never reach a client, in any case.
const LEAKS_ANY_CASE: &[&str] = &[
    "sqlx",
    "syntax error",
    "relation",
    "constraint",
    "redis",
    "connection refused",
    "connection reset",
    "broken pipe",
    "os error",
    "panicked",
    "backtrace",
    "src/",
    ".rs:",
    "/home",
    "/work",
    "/tmp",
    "/usr",
    "/var",
    "postgres",
    "sqlite",
];

/// One request of the sweep and what came back.
struct Reply {
    /// `[phase] name METHOD path`, for the report.
    what: String,
    phase: String,
    name: String,
    status: u16,
    /// The status the sweep requires, when it is certain.
    expected: Option<u16>,
    headers: Vec<(String, String)>,
    body: String,
}

/// A request to send: built with the helpers below.
struct Req {
    what: String,
    method: Method,
    path: String,
    auth: Option<String>,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    expected: Option<u16>,
}

fn req(what: impl Into<String>, method: Method, path: impl Into<String>) -> Req {
    Req {
        what: what.into(),
        method,
        path: path.into(),
        auth: None,
        content_type: None,
        body: None,
        expected: None,
    }
}

impl Req {
    fn auth(mut self, token: &str) -> Self {
        self.auth = Some(token.to_string());
        self
    }
    fn admin(self) -> Self {
        self.auth(ADMIN_TOKEN)
    }
    fn json(mut self, v: Value) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(v.to_string().into_bytes());
        self
    }
    fn raw(mut self, content_type: &'static str, body: &[u8]) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body.to_vec());
        self
    }
    fn expect(mut self, status: u16) -> Self {
        self.expected = Some(status);
        self
    }
}

/// Sends requests and keeps every reply for the audit.
struct Sweep<'a> {
    app: &'a TestApp,
    label: &'static str,
    replies: Vec<Reply>,
}

impl<'a> Sweep<'a> {
    fn new(app: &'a TestApp, label: &'static str) -> Self {
        Sweep {
            app,
            label,
            replies: Vec::new(),
        }
    }

    async fn one(app: &TestApp, phase: &str, r: Req) -> Reply {
        let mut b = app
            .http
            .request(r.method.clone(), app.url(&r.path))
            .timeout(Duration::from_secs(15));
        if let Some(t) = &r.auth {
            b = b.bearer_auth(t);
        }
        if let Some(ct) = r.content_type {
            b = b.header("content-type", ct);
        }
        if let Some(body) = r.body {
            b = b.body(body);
        }
        let what = format!("[{phase}] {} {} {}", r.what, r.method, r.path);
        let (phase, name) = (phase.to_string(), r.what.clone());
        match b.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let headers = res
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let body = res.text().await.unwrap_or_default();
                Reply {
                    what,
                    phase,
                    name,
                    status,
                    expected: r.expected,
                    headers,
                    body,
                }
            }
            // Recorded as status 0: the audit fails it (every request gets a reply).
            Err(e) => Reply {
                what,
                phase,
                name,
                status: 0,
                expected: r.expected,
                headers: Vec::new(),
                body: format!("no reply: {e}"),
            },
        }
    }

    /// Sends the requests one after the other.
    async fn run(&mut self, phase: &str, reqs: Vec<Req>) {
        for r in reqs {
            let reply = Self::one(self.app, phase, r).await;
            self.replies.push(reply);
        }
    }

    /// Sends the requests all at once: with the database cut off each waits for the
    /// pool's acquire timeout (3 s), and in sequence the phase would take minutes.
    async fn run_concurrently(&mut self, phase: &str, reqs: Vec<Req>) {
        let app = self.app;
        let replies: Vec<Reply> = stream::iter(reqs)
            .map(|r| Self::one(app, phase, r))
            .buffered(32)
            .collect()
            .await;
        self.replies.extend(replies);
    }

    /// Checks every reply; on failure prints the whole sweep.
    fn audit(&self) {
        let mut failures = Vec::new();
        for r in &self.replies {
            for problem in problems(r) {
                failures.push(format!("{}: {problem}", r.what));
            }
        }
        if failures.is_empty() {
            eprintln!("{}: {} replies audited", self.label, self.replies.len());
            return;
        }
        let table: Vec<String> = self
            .replies
            .iter()
            .map(|r| format!("  {:>3}  {}", r.status, r.what))
            .collect();
        panic!(
            "{}: {} problems in {} replies:\n{}\n\nevery request and its status:\n{}",
            self.label,
            failures.len(),
            self.replies.len(),
            failures.join("\n"),
            table.join("\n")
        );
    }

    /// The statuses seen, to check that the sweep drove what it meant to.
    fn statuses(&self) -> std::collections::BTreeSet<u16> {
        self.replies.iter().map(|r| r.status).collect()
    }
}

/// What is wrong with one reply.
fn problems(r: &Reply) -> Vec<String> {
    let mut out = Vec::new();
    if r.status == 0 {
        out.push(r.body.clone());
        return out;
    }
    if let Some(e) = r.expected {
        if e != r.status {
            out.push(format!("expected {e}, got {}: {}", r.status, r.body));
        }
    }
    let mut texts = vec![("body".to_string(), r.body.as_str())];
    texts.extend(
        r.headers
            .iter()
            .map(|(n, v)| (format!("header {n}"), v.as_str())),
    );
    for (where_, text) in texts {
        let lower = text.to_ascii_lowercase();
        for leak in LEAKS_EXACT {
            if text.contains(leak) {
                out.push(format!("{where_} leaks {leak:?}: {text}"));
            }
        }
        for leak in LEAKS_ANY_CASE {
            if lower.contains(leak) {
                out.push(format!("{where_} leaks {leak:?}: {text}"));
            }
        }
    }
    if r.status >= 400 {
        out.extend(shape_problems(r));
    }
    out
}

/// The contract's error shape, or (readiness only) its `{"store", "database"}`.
fn shape_problems(r: &Reply) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
        return vec![format!("not JSON: {}", r.body)];
    };
    if r.what.ends_with(" /readyz") {
        let ok = v.as_object().is_some_and(|o| {
            o.len() == 2
                && ["store", "database"]
                    .iter()
                    .all(|k| matches!(o.get(*k).and_then(Value::as_str), Some("ok" | "down")))
        });
        return if ok {
            Vec::new()
        } else {
            vec![format!("readiness shape: {}", r.body)]
        };
    }
    let mut out = Vec::new();
    let shaped = v.as_object().is_some_and(|o| o.len() == 1)
        && v["error"].as_object().is_some_and(|e| e.len() == 2);
    if !shaped {
        out.push(format!("not the error shape: {}", r.body));
    }
    let code = v["error"]["code"].as_str().unwrap_or_default();
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        || code.starts_with('_')
        || code.ends_with('_')
    {
        out.push(format!("code is not snake_case: {code:?}"));
    }
    let message = v["error"]["message"].as_str().unwrap_or_default();
    if let Some(why) = not_one_sentence(message) {
        out.push(format!("message {why}: {message:?}"));
    }
    if (r.status == 429 || r.status == 503)
        && !r
            .headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v.parse::<u64>().is_ok())
    {
        out.push(format!("{} without a Retry-After in seconds", r.status));
    }
    out
}

/// Why `m` is not one human sentence on one line, if it is not.
fn not_one_sentence(m: &str) -> Option<&'static str> {
    if m.trim().is_empty() {
        return Some("is empty");
    }
    if m.chars().any(char::is_control) {
        return Some("holds a line break or control character");
    }
    if m.chars().count() > 300 {
        return Some("is longer than a sentence");
    }
    // A second sentence: a full stop, a space, a capital.
    let chars: Vec<char> = m.chars().collect();
    if chars
        .windows(3)
        .any(|w| matches!(w[0], '.' | '!' | '?') && w[1] == ' ' && w[2].is_uppercase())
    {
        return Some("holds more than one sentence");
    }
    None
}

/// Every bad input the contract lists, with the status it gets. The app runs with a
/// per-user rate of 1 a second (burst 2), so each claim here is by its own user. One
/// request a line: a table reads better than rustfmt's layout of it.
#[rustfmt::skip]
fn bad_inputs(app: &TestApp, c: &Campaigns) -> Vec<Req> {
    let Campaigns { sale, packet, later, closed, sold, .. } = *c;
    let user = |n: &str| app.token(n);
    let claims = format!("/v1/campaigns/{sale}/claims");
    let good = json!({"kind": "flash_sale", "name": "x", "stock": 1});
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(br#"{"sub":"u1","exp":99999999999}"#)
    );
    let other_secret = stampede_engine::auth::Auth::new("another-secret-0123456789", ADMIN_TOKEN)
        .mint("u1", 60)
        .expect("mint");
    let admin_paths = [
        format!("/v1/admin/campaigns/{sale}/stats"),
        format!("/v1/admin/campaigns/{sale}/claims"),
        format!("/v1/admin/campaigns/{sale}/reconcile"),
        format!("/v1/admin/campaigns/{sale}/dead-letters"),
    ];
    let mut reqs = vec![
        // 400
        req("not json", Method::POST, "/v1/campaigns").admin().raw("application/json", b"{nope").expect(400),
        req("truncated json", Method::POST, "/v1/campaigns").admin().raw("application/json", br#"{"kind": "flash_sa"#).expect(400),
        req("not an object", Method::POST, "/v1/campaigns").admin().raw("application/json", b"[1,2]").expect(400),
        req("deep nesting", Method::POST, "/v1/campaigns").admin().raw("application/json", "[".repeat(10_000).as_bytes()).expect(400),
        req("number out of range", Method::POST, "/v1/campaigns").admin().raw("application/json", br#"{"stock": 1e400}"#).expect(400),
        req("claim body not json", Method::POST, &claims).auth(&user("b1")).raw("application/json", b"quantity=1").expect(400),
        req("invalid utf-8", Method::POST, "/v1/campaigns").admin().raw("application/json", b"{\"name\":\"\xff\"}").expect(400),
        // 401
        req("no token", Method::POST, &claims).expect(401),
        req("garbage token", Method::POST, &claims).auth("not.a.jwt").expect(401),
        req("alg none", Method::POST, &claims).auth(&none).expect(401),
        req("wrong secret", Method::POST, &claims).auth(&other_secret).expect(401),
        req("no token on points", Method::GET, "/v1/me/points").expect(401),
        req("admin without token", Method::POST, "/v1/campaigns").json(good.clone()).expect(401),
        req("admin wrong token", Method::POST, "/v1/campaigns").auth("wrong").json(good.clone()).expect(401),
        req("dashboard events without a session", Method::GET, "/dashboard/events").expect(401),
        // 403
        req("user creates a campaign", Method::POST, "/v1/campaigns").auth(&user("b2")).json(good.clone()).expect(403),
        // 404
        req("unknown route", Method::GET, "/v1/nothing").expect(404),
        req("unknown campaign", Method::GET, "/v1/campaigns/999999").expect(404),
        req("non-numeric id", Method::GET, "/v1/campaigns/abc").expect(404),
        req("id not UTF-8", Method::GET, "/v1/campaigns/%FF").expect(404),
        req("id past 2^53", Method::GET, "/v1/campaigns/9007199254740992").expect(404),
        req("id past u64", Method::GET, "/v1/campaigns/18446744073709551616").expect(404),
        req("claim unknown campaign", Method::POST, "/v1/campaigns/999999/claims").auth(&user("b3")).expect(404),
        req("stats unknown campaign", Method::GET, "/v1/admin/campaigns/999999/stats").admin().expect(404),
        req("export unknown campaign", Method::GET, "/v1/admin/campaigns/999999/claims").admin().expect(404),
        req("rebuild unknown campaign", Method::POST, "/v1/admin/campaigns/999999/rebuild").admin().expect(404),
        req("reconcile unknown campaign", Method::GET, "/v1/admin/campaigns/999999/reconcile").admin().expect(404),
        req("close unknown campaign", Method::POST, "/v1/admin/campaigns/999999/close").admin().expect(404),
        // 405
        req("delete a campaign", Method::DELETE, format!("/v1/campaigns/{sale}")).admin().expect(405),
        req("put the list", Method::PUT, "/v1/campaigns").admin().expect(405),
        req("get a claim", Method::GET, &claims).auth(&user("b4")).expect(405),
        // 409
        req("not started", Method::POST, format!("/v1/campaigns/{later}/claims")).auth(&user("b5")).expect(409),
        req("ended", Method::POST, format!("/v1/campaigns/{closed}/claims")).auth(&user("b6")).expect(409),
        req("sold out", Method::POST, format!("/v1/campaigns/{sold}/claims")).auth(&user("b7")).expect(409),
        req("rebuild of a live campaign", Method::POST, format!("/v1/admin/campaigns/{sale}/rebuild")).admin().expect(409),
        // 413
        req("too large", Method::POST, "/v1/campaigns").admin().raw("application/json", &[b' '; 17 * 1024]).expect(413),
        req("too large claim", Method::POST, &claims).auth(&user("b8")).raw("application/json", &[b' '; 17 * 1024]).expect(413),
        req("too large, no body read", Method::POST, "/v1/signin").auth(&user("b9")).raw("application/json", &[b' '; 17 * 1024]).expect(413),
        // 415
        req("form body", Method::POST, "/v1/campaigns").admin().raw("application/x-www-form-urlencoded", b"kind=flash_sale").expect(415),
        req("text claim body", Method::POST, &claims).auth(&user("b10")).raw("text/plain", b"{}").expect(415),
        // 422
        req("unknown kind", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "auction", "name": "x", "stock": 1})).expect(422),
        req("string stock", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "x", "stock": "1"})).expect(422),
        req("stock past i64", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "x", "stock": u64::MAX})).expect(422),
        req("missing kind", Method::POST, "/v1/campaigns").admin().json(json!({"name": "x"})).expect(422),
        req("empty body", Method::POST, "/v1/campaigns").admin().expect(422),
        req("unknown field", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "x", "stock": 1, "colour": "red"})).expect(422),
        req("unknown field with a line break", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "x", "stock": 1, "a\nb": 1})).expect(422),
        req("bad time", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "x", "stock": 1, "starts_at": "tomorrow"})).expect(422),
        req("name with a NUL", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "a\u{0}b", "stock": 1})).expect(422),
        req("packets below minimum", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "red_packet", "name": "x", "total_cents": 99, "count": 100})).expect(422),
        req("quantity zero", Method::POST, &claims).auth(&user("b11")).json(json!({"quantity": 0})).expect(422),
        req("quantity negative", Method::POST, &claims).auth(&user("b12")).json(json!({"quantity": -3})).expect(422),
        req("quantity over limit", Method::POST, &claims).auth(&user("b13")).json(json!({"quantity": 3})).expect(422),
        req("quantity a string", Method::POST, &claims).auth(&user("b14")).json(json!({"quantity": "1"})).expect(422),
        req("more than one red packet", Method::POST, format!("/v1/campaigns/{packet}/claims")).auth(&user("b15")).json(json!({"quantity": 2})).expect(422),
        req("me claims limit", Method::GET, "/v1/me/claims?limit=500").auth(&user("b16")).expect(422),
        req("me claims cursor", Method::GET, "/v1/me/claims?before=zzz").auth(&user("b16")).expect(422),
        req("me claims cursor with a NUL", Method::GET, "/v1/me/claims?before=1.%00").auth(&user("b16")).expect(422),
        req("repeated query key", Method::GET, "/v1/me/claims?limit=1&limit=2").auth(&user("b16")).expect(422),
        req("calendar month", Method::GET, "/v1/me/signins?month=2026-13").auth(&user("b16")).expect(422),
        req("list status", Method::GET, "/v1/campaigns?status=weird").expect(422),
        req("export limit", Method::GET, format!("/v1/admin/campaigns/{sale}/claims?limit=0")).admin().expect(422),
        req("export after too long", Method::GET, format!("/v1/admin/campaigns/{sale}/claims?after={}", "x".repeat(65))).admin().expect(422),
        req("export after with a NUL", Method::GET, format!("/v1/admin/campaigns/{sale}/claims?after=%00")).admin().expect(422),
        req("dead letters limit", Method::GET, format!("/v1/admin/campaigns/{sale}/dead-letters?limit=-1")).admin().expect(422),
        req("replay limit", Method::POST, format!("/v1/admin/campaigns/{sale}/dead-letters/replay?limit=abc")).admin().expect(422),
    ];
    for p in admin_paths {
        reqs.push(req("user on an admin route", Method::GET, &p).auth(&user("b17")).expect(403));
        reqs.push(req("no token on an admin route", Method::GET, &p).expect(401));
    }
    reqs
}

/// Four sign-ins of one user at once, with a rate of 1 a second (burst 2): some get 429
/// (the coverage check looks for one). Sent together, so a slow machine cannot space them
/// out past the rate.
fn busy_signins(app: &TestApp) -> Vec<Req> {
    let token = app.token("busy");
    (1..=4)
        .map(|n| {
            req(
                format!("sign-in {n} of a busy user"),
                Method::POST,
                "/v1/signin",
            )
            .auth(&token)
        })
        .collect()
}

fn b64(s: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The statuses a bad-input sweep must have produced.
const BAD_INPUT_STATUSES: &[u16] = &[400, 401, 403, 404, 405, 409, 413, 415, 422, 429];

fn assert_covered(sweep: &Sweep<'_>, wanted: &[u16]) {
    let seen = sweep.statuses();
    let missing: Vec<u16> = wanted
        .iter()
        .copied()
        .filter(|s| !seen.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: never answered {missing:?}",
        sweep.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_on_the_embedded_engine_leak_nothing() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.user_rate = 1;
    let mut app = TestApp::start(&config).await;
    let c = app.campaigns(10, 2, 10).await;
    let mut sweep = Sweep::new(&app, "embedded");
    sweep.run("bad input", bad_inputs(&app, &c)).await;
    sweep
        .run_concurrently("bad input", busy_signins(&app))
        .await;
    sweep.audit();
    assert_covered(&sweep, BAD_INPUT_STATUSES);
    app.stop().await;
}

/// Every route that reads the database or the store, as the admin and as `user` (and,
/// for the rate-limited claims, users named after it); none has a certain status (some
/// answer from a cache), so none is expected.
#[rustfmt::skip]
fn dependency_routes(app: &TestApp, c: &Campaigns, user: &str, fresh_id: u64) -> Vec<Req> {
    let sale = c.sale;
    let token = app.token(user);
    let claimer = |n: u32| app.token(&format!("{user}-c{n}"));
    vec![
        req("create a campaign", Method::POST, "/v1/campaigns").admin().json(json!({"kind": "flash_sale", "name": "during", "stock": 3})),
        req("read a campaign not yet cached", Method::GET, format!("/v1/campaigns/{fresh_id}")),
        req("read a campaign", Method::GET, format!("/v1/campaigns/{sale}")),
        req("list campaigns", Method::GET, "/v1/campaigns"),
        req("list active campaigns", Method::GET, "/v1/campaigns?status=active"),
        req("claim", Method::POST, format!("/v1/campaigns/{sale}/claims")).auth(&claimer(1)),
        req("claim a campaign not yet cached", Method::POST, format!("/v1/campaigns/{fresh_id}/claims")).auth(&claimer(2)),
        req("my claims in a campaign", Method::GET, format!("/v1/campaigns/{sale}/claims/me")).auth(&token),
        req("my claims", Method::GET, "/v1/me/claims").auth(&token),
        req("my claims, second page", Method::GET, "/v1/me/claims?before=1700000000000.c1-x&limit=5").auth(&token),
        req("sign in", Method::POST, "/v1/signin").auth(&token),
        req("points", Method::GET, "/v1/me/points").auth(&token),
        req("calendar", Method::GET, "/v1/me/signins?month=2020-02").auth(&token),
        req("stats", Method::GET, format!("/v1/admin/campaigns/{sale}/stats")).admin(),
        req("export", Method::GET, format!("/v1/admin/campaigns/{sale}/claims")).admin(),
        req("rebuild", Method::POST, format!("/v1/admin/campaigns/{sale}/rebuild")).admin(),
        req("reconcile", Method::GET, format!("/v1/admin/campaigns/{sale}/reconcile")).admin(),
        req("dead letters", Method::GET, format!("/v1/admin/campaigns/{sale}/dead-letters")).admin(),
        req("replay dead letters", Method::POST, format!("/v1/admin/campaigns/{sale}/dead-letters/replay")).admin(),
        req("close a campaign not yet cached", Method::POST, format!("/v1/admin/campaigns/{fresh_id}/close")).admin(),
        req("readiness", Method::GET, "/readyz"),
    ]
}

/// A campaign made behind the engine's back (straight into the database), so that the
/// engine has no cached row for it and must read the database.
async fn campaign_only_in_the_database(pg: &sqlx::PgPool) -> u64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (kind, name, total, per_user_limit, price_cents, total_cents, \
         min_cents, split_seed, starts_at_ms, ends_at_ms, created_at_ms) \
         VALUES ('flash_sale', 'direct', 5, 1, 0, 0, 0, 1, 0, 4102444800000, 0) RETURNING id",
    )
    .fetch_one(pg)
    .await
    .expect("insert a campaign");
    id as u64
}

/// Waits until `path` answers 200 (at most `within`).
async fn wait_until(app: &TestApp, what: &str, path: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let ready = app
            .http
            .get(app.url(path))
            .send()
            .await
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The requests of `phase` that got a 503.
fn unavailable_in(sweep: &Sweep<'_>, phase: &str) -> Vec<String> {
    sweep
        .replies
        .iter()
        .filter(|r| r.phase == phase && r.status == 503)
        .map(|r| r.what.clone())
        .collect()
}

fn status_of(sweep: &Sweep<'_>, phase: &str, what: &str) -> u16 {
    sweep
        .replies
        .iter()
        .find(|r| r.phase == phase && r.name == what)
        .map_or(0, |r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_and_outages_on_redis_and_postgres_leak_nothing() {
    let deps = Deps::new(Backend::Redis).await;
    let redis = deps.redis.as_ref().expect("redis");
    let pg = deps.pg.as_ref().expect("pg");
    let redis_proxy = CutProxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let pg_proxy = CutProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let mut config = deps.config();
    config.redis_url = Some(redis_proxy.rewrite_url(&redis.url(), redis.port));
    config.database_url = pg_proxy.rewrite_url(&pg.url(), 5432);
    config.user_rate = 1;
    // The api alone: its own connections are the only ones the proxies cut, and no
    // worker retries in the background.
    let mut app = TestApp::start_in(&config, Mode::Api, None).await;
    let direct = sqlx::PgPool::connect(&pg.url()).await.expect("direct pg");
    let c = app.campaigns(10, 2, 10).await;
    let mut sweep = Sweep::new(&app, "redis+postgres");

    sweep.run("bad input", bad_inputs(&app, &c)).await;
    sweep
        .run_concurrently("bad input", busy_signins(&app))
        .await;

    // PostgreSQL cut off.
    let fresh = campaign_only_in_the_database(&direct).await;
    pg_proxy.cut();
    sweep
        .run_concurrently("pg cut", dependency_routes(&app, &c, "pgcut", fresh))
        .await;
    pg_proxy.restore();
    wait_until(&app, "postgres", "/readyz", Duration::from_secs(15)).await;

    // Redis cut off: a few claims first, so the circuit breaker opens and both its
    // refusal and the failed calls before it are seen.
    redis_proxy.cut();
    let claims: Vec<Req> = (0..8)
        .map(|n| {
            req(
                format!("claim {n}"),
                Method::POST,
                format!("/v1/campaigns/{}/claims", c.sale),
            )
            .auth(&app.token(&format!("rcut-claimer{n}")))
            .expect(503)
        })
        .collect();
    sweep.run("redis cut", claims).await;
    let fresh = campaign_only_in_the_database(&direct).await;
    sweep
        .run("redis cut", dependency_routes(&app, &c, "rcut", fresh))
        .await;
    redis_proxy.restore();
    wait_until(&app, "redis", "/readyz", Duration::from_secs(15)).await;

    // Redis answering with errors: keys of the wrong type for one campaign and one user.
    let broken = app.flash(10, 1).await;
    let mut r = redis::Client::open(redis.url())
        .expect("redis client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let victim = "wrongtype";
    for key in [
        format!("{{c:{broken}}}:state"),
        format!("{{c:{broken}}}:users"),
        format!("{{c:{broken}}}:claims"),
        format!("{{c:{broken}}}:dead"),
        format!("{{u:{victim}}}:signin:days"),
        format!("{{u:{victim}}}:claims"),
    ] {
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut r)
            .await
            .expect("del");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("not what you expect")
            .query_async(&mut r)
            .await
            .expect("set");
    }
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut r)
        .await
        .expect("script flush");
    let broken_campaign = Campaigns { sale: broken, ..c };
    sweep
        .run(
            "redis errors",
            dependency_routes(&app, &broken_campaign, victim, broken),
        )
        .await;

    // PostgreSQL answering with errors: the tables renamed away.
    for table in [
        "campaigns",
        "claims",
        "signins",
        "points_ledger",
        "points_balances",
    ] {
        sqlx::query(&format!("ALTER TABLE {table} RENAME TO {table}_gone"))
            .execute(&direct)
            .await
            .expect("rename");
    }
    let fresh = 424_242;
    sweep
        .run_concurrently("pg errors", dependency_routes(&app, &c, "pgerr", fresh))
        .await;

    eprintln!(
        "503s: pg cut {:?}\nredis cut {:?}\nredis errors {:?}\npg errors {:?}",
        unavailable_in(&sweep, "pg cut"),
        unavailable_in(&sweep, "redis cut"),
        unavailable_in(&sweep, "redis errors"),
        unavailable_in(&sweep, "pg errors"),
    );
    sweep.audit();
    assert_covered(&sweep, &[BAD_INPUT_STATUSES, &[503]].concat());
    // The outages really failed the routes that need the dependency.
    for (phase, what) in [
        ("pg cut", "create a campaign"),
        ("pg cut", "export"),
        ("pg cut", "stats"),
        ("pg cut", "reconcile"),
        ("pg cut", "my claims, second page"),
        ("pg cut", "sign in"),
        ("pg cut", "read a campaign not yet cached"),
        ("pg cut", "readiness"),
        ("redis cut", "sign in"),
        ("redis cut", "stats"),
        ("redis cut", "reconcile"),
        ("redis cut", "readiness"),
        ("redis errors", "claim"),
        ("redis errors", "stats"),
        ("redis errors", "sign in"),
        ("pg errors", "create a campaign"),
        ("pg errors", "export"),
        ("pg errors", "points"),
    ] {
        assert_eq!(
            status_of(&sweep, phase, what),
            503,
            "[{phase}] {what} did not fail"
        );
    }
    direct.close().await;
    app.stop().await;
}
