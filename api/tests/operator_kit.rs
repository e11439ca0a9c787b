//! The operator kit (`ops/`) names only series that `/metrics` really exposes: the real
//! server on Redis + PostgreSQL serves a little traffic, then every `stampede_*` name in
//! the alert rules, their promtool tests and the Grafana dashboard must be among the
//! scraped ones. A renamed metric then fails here instead of silencing an alert.
//! (promtool itself checks the rules' syntax and behaviour in `.ci/run`.)

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{Backend, Deps, TestApp};
use serde_json::Value;

/// A file of the operator kit, by its path under `ops/`.
fn ops_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ops")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
}

/// Every `stampede_*` metric name in `text`: a word starting with `stampede_`, made of
/// lower-case letters, digits and underscores (PromQL, YAML and JSON alike).
fn names_in(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("stampede_") {
        let starts_word = text[..at].chars().next_back().is_none_or(|c| !is_name(c));
        if starts_word {
            let name: String = text[at..].chars().take_while(|&c| is_name(c)).collect();
            names.insert(name);
        }
    }
    names
}

/// The names a scrape exposes: each sample's series name (histograms' `_bucket`, `_sum`
/// and `_count` among them) and each `# TYPE` line's metric name (a histogram's own).
fn exposed(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names `used` that `exposed` lacks.
fn missing(used: &BTreeSet<String>, exposed: &BTreeSet<String>) -> Vec<String> {
    used.difference(exposed).cloned().collect()
}

/// Every string in a JSON document (the dashboard's queries, variables and texts).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(fields) => fields.values().for_each(|f| strings(f, out)),
        _ => {}
    }
}

/// The `expr` of every panel target, for the shape checks below.
fn target_exprs(dashboard: &Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// The value of the sample line that is exactly `series` followed by its value.
fn value_of(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_and_the_dashboard_use_only_exposed_metric_names() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    // Traffic that touches every metric family: accepted and sold-out claims (store,
    // caches, queue), sign-ins and balance reads (database), then a drained queue (the
    // workers' batches).
    let id = app.flash(2, 1).await;
    for user in ["a", "b", "c"] {
        app.claim(id, &app.token(user), None).await;
    }
    app.signin("d").await;
    app.user_get("d", "/v1/me/points").await;
    app.user_get("d", "/v1/me/points").await;
    // An order paid by a signed notification, another cancelled (the orders' series).
    let sale = app
        .create(
            serde_json::json!({"kind": "flash_sale", "name": "orders", "stock": 5,
            "price_cents": 100, "payment_window_secs": 600}),
        )
        .await;
    let (_, paid) = app.claim(sale, &app.token("e"), None).await;
    let (_, cancelled) = app.claim(sale, &app.token("f"), None).await;
    let body = serde_json::json!({"payment_id": "p-1", "claim_id": paid["claim"]["id"],
        "amount_cents": 100, "status": "succeeded"})
    .to_string();
    let t = stampede_engine::clock::now_ms() / 1_000;
    let signature = stampede_api::payment_signature::Signatures::new(common::PAYMENT_SECRET)
        .sign(t, body.as_bytes());
    let res = app
        .http
        .post(app.url("/v1/payments/notify"))
        .header("Stampede-Signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("notify");
    assert_eq!(res.status(), 200);
    let cancel = format!(
        "/v1/claims/{}/cancel",
        cancelled["claim"]["id"].as_str().expect("id")
    );
    let res = app
        .http
        .post(app.url(&cancel))
        .bearer_auth(app.token("f"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 200);
    app.wait_drained(id).await;
    app.wait_drained(sale).await;
    let scrape = app.metrics().await;
    let exposed = exposed(&scrape);

    let dashboard: Value =
        serde_json::from_str(&ops_file("grafana/stampede-dashboard.json")).expect("dashboard JSON");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "a Grafana dashboard"
    );
    let exprs = target_exprs(&dashboard);
    assert!(exprs.len() >= 10, "panels with queries: {exprs:?}");
    let mut texts = Vec::new();
    strings(&dashboard, &mut texts);

    for (file, text) in [
        ("grafana/stampede-dashboard.json", texts.join("\n")),
        (
            "prometheus/stampede-alerts.yml",
            ops_file("prometheus/stampede-alerts.yml"),
        ),
        (
            "prometheus/stampede-alerts.test.yml",
            ops_file("prometheus/stampede-alerts.test.yml"),
        ),
    ] {
        let used = names_in(&text);
        assert!(!used.is_empty(), "{file} names no stampede_* metric");
        let missing = missing(&used, &exposed);
        assert!(
            missing.is_empty(),
            "ops/{file} uses {missing:?}, which /metrics does not expose:\n{scrape}"
        );
    }

    // At rest, the alerts' gauges say all is well.
    assert_eq!(value_of(&scrape, "stampede_ready"), Some(1.0), "{scrape}");
    assert_eq!(value_of(&scrape, "stampede_dead_letters"), Some(0.0));
    assert_eq!(value_of(&scrape, "stampede_load_shedding"), Some(0.0));
    assert_eq!(
        value_of(&scrape, r#"stampede_breaker_open{dependency="store"}"#),
        Some(0.0)
    );
    app.stop().await;
}

#[test]
fn a_name_that_metrics_does_not_expose_is_caught() {
    let scrape = "# TYPE stampede_claim_duration_seconds histogram\n\
                  stampede_claim_duration_seconds_bucket{le=\"0.1\"} 3\n\
                  stampede_claims_total{outcome=\"accepted\"} 2\n";
    let used = names_in(
        r#"histogram_quantile(0.99, rate(stampede_claim_duration_seconds_bucket[5m])) and
           rate(stampede_claims_totl[5m]) # see stampede_claim_duration_seconds; my_stampede_x"#,
    );
    assert_eq!(
        missing(&used, &exposed(scrape)),
        vec!["stampede_claims_totl".to_string()]
    );
}
