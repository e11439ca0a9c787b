//! The OpenAPI document at `GET /openapi.json` (`api/assets/openapi.json`, written by
//! hand) against the router: served as JSON, the same (method, path) list as
//! `routes::route_table()` in both directions, every `$ref` resolving, and every
//! documented route reaching its handler with a status the document lists; the
//! constraints the OpenAPI fuzzer of issue #16 found missing, and the links from
//! `POST /v1/campaigns`.

mod common;

use std::collections::BTreeSet;

use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use stampede_api::routes::route_table;

/// The document as the binary embeds it.
const DOCUMENT: &str = include_str!("../assets/openapi.json");

/// The keys of a Path Item object that are operations.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("assets/openapi.json is JSON")
}

/// Every operation of the document: (METHOD, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut ops = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                ops.push((key.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn list(set: &BTreeSet<(String, String)>) -> String {
    set.iter()
        .map(|(m, p)| format!("\n    {m} {p}"))
        .collect::<String>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_as_json_at_openapi_json_without_credentials() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    let res = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = res.text().await.expect("body");
    assert_eq!(body, DOCUMENT, "the served document is the embedded asset");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi is {version:?}");
    assert!(
        doc["paths"].as_object().is_some_and(|p| !p.is_empty()),
        "no paths"
    );
    app.stop().await;
}

#[test]
fn the_document_parses_as_openapi_3_0() {
    let parsed: Result<openapiv3::OpenAPI, _> = serde_json::from_str(DOCUMENT);
    let parsed = parsed.unwrap_or_else(|e| panic!("not an OpenAPI 3.0 document: {e}"));
    assert!(parsed.openapi.starts_with("3.0."), "{}", parsed.openapi);
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_router() {
    let routed: BTreeSet<(String, String)> = route_table()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_string(), p.to_string()))
        .collect();
    assert_eq!(
        routed.len(),
        route_table().len(),
        "route_table() lists a route twice"
    );
    let documented: BTreeSet<(String, String)> = operations(&document())
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();

    let undocumented: BTreeSet<_> = routed.difference(&documented).cloned().collect();
    let unrouted: BTreeSet<_> = documented.difference(&routed).cloned().collect();

    let mut problems = String::new();
    if !undocumented.is_empty() {
        problems += &format!(
            "\n  routed but not in assets/openapi.json:{}",
            list(&undocumented)
        );
    }
    if !unrouted.is_empty() {
        problems += &format!(
            "\n  in assets/openapi.json but not routed:{}",
            list(&unrouted)
        );
    }
    assert!(
        problems.is_empty(),
        "the OpenAPI document and routes::route_table() differ:{problems}"
    );
}

/// Every `$ref` (and every discriminator mapping) under `v`, with where it was found.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push((here, r.clone())),
                    ("mapping", Value::Object(m)) if at.ends_with("/discriminator") => {
                        for (name, r) in m {
                            if let Value::String(r) = r {
                                out.push((format!("{here}/{name}"), r.clone()));
                            }
                        }
                    }
                    _ => refs(child, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Follows a `$ref` to what it names (one hop is enough: no component here is itself
/// a bare reference).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(&Value::Null),
        None => v,
    }
}

#[test]
fn every_operation_answers_something_and_every_reference_resolves() {
    let doc = document();
    let mut problems = Vec::new();

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty(), "no $ref at all: the walk is broken");
    for (at, r) in &found {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        if !r.starts_with("#/") || target.is_none() {
            problems.push(format!("{at}: {r} does not resolve inside the document"));
        }
    }

    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
            problems.push(format!("{name}: no responses"));
        }
        match op["operationId"].as_str() {
            Some(id) if !ids.insert(id.to_string()) => {
                problems.push(format!("{name}: operationId {id} is used twice"))
            }
            Some(_) => {}
            None => problems.push(format!("{name}: no operationId")),
        }
        // Each `{name}` of the path is declared as a path parameter, on the path or
        // on the operation.
        let declared: BTreeSet<String> = [&doc["paths"][&path]["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        for segment in path.split('/') {
            if let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !declared.contains(param) {
                    problems.push(format!("{name}: path parameter {param} is not declared"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The credentials an operation's `security` asks for: a user JWT, the admin token,
/// or none (public, or the dashboard's cookie, which the test does not have).
fn bearer_for(app: &TestApp, op: &Value) -> Option<String> {
    let schemes: BTreeSet<&str> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys().map(String::as_str))
        .collect();
    if schemes.contains("adminToken") {
        Some(ADMIN_TOKEN.to_string())
    } else if schemes.contains("userJwt") {
        Some(app.token("openapi-user"))
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_reaches_its_handler_with_a_documented_status() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    // A real campaign, so that a 404 can only mean the route was not found; and a real
    // order of the caller's, for the routes on a claim.
    let id = app.flash(100, 5).await;
    let sale = app
        .create(
            json!({"kind": "flash_sale", "name": "orders", "stock": 5, "payment_window_secs": 600}),
        )
        .await;
    let (_, claimed) = app.claim(sale, &app.token("openapi-user"), None).await;
    let claim_id = claimed["claim"]["id"]
        .as_str()
        .expect("a claim")
        .to_string();
    let doc = document();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        let url = app.url(
            &path
                .replace("{id}", &id.to_string())
                .replace("{claim_id}", &claim_id),
        );
        let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = app.http.request(verb, url);
        if let Some(token) = bearer_for(&app, &op) {
            req = req.bearer_auth(token);
        }
        if method != "GET" {
            // Well-formed, and empty: every body here is optional or refused by rule.
            req = req.json(&json!({}));
        }
        let res = req.send().await.expect("send");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or_default();
        if status == 405 || code == "method_not_allowed" {
            problems.push(format!("{name}: 405, the method is not routed: {body}"));
        } else if status == 404 {
            problems.push(format!(
                "{name}: 404 for campaign {id}, which exists: the route is not found: {body}"
            ));
        } else if !op["responses"]
            .as_object()
            .is_some_and(|r| r.contains_key(&status.to_string()) || r.contains_key("default"))
        {
            problems.push(format!(
                "{name}: answered {status}, which the document does not list: {body}"
            ));
        }
        if status >= 400 && !body.is_null() && !body["error"]["message"].is_string() {
            problems.push(format!(
                "{name}: {status} is not in the Error shape: {body}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.stop().await;
}

/// The schema of a query parameter of an operation.
fn query_schema(doc: &Value, path: &str, method: &str, name: &str) -> Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["schema"].clone())
        .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))
}

/// Whether `value` passes a string schema's pattern and lengths (the parts used here).
fn string_allows(schema: &Value, value: &str) -> bool {
    let chars = value.chars().count() as u64;
    let pattern = schema["pattern"]
        .as_str()
        .map(|p| regex::Regex::new(p).expect("the pattern compiles"));
    pattern.is_none_or(|p| p.is_match(value))
        && schema["minLength"].as_u64().is_none_or(|n| chars >= n)
        && schema["maxLength"].as_u64().is_none_or(|n| chars <= n)
        && schema["enum"]
            .as_array()
            .is_none_or(|e| e.iter().any(|v| v == value))
}

/// Issue #16: each place where the fuzzer found the document allowing what the server
/// refuses (or the other way round) is now stated in the document, as the server
/// enforces it (`tests/bad_inputs.rs` checks the server side).
#[test]
fn the_document_states_what_the_fuzzer_found_the_server_enforcing() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let refused = |schema: &Value, value: &str, what: &str| {
        assert!(
            !string_allows(schema, value),
            "the document should refuse {what}: {value:?}"
        );
    };
    let allowed = |schema: &Value, value: &str, what: &str| {
        assert!(
            string_allows(schema, value),
            "the document should allow {what}: {value:?}"
        );
    };

    let status = query_schema(&doc, "/v1/campaigns", "get", "status");
    refused(&status, "", "an empty status");
    allowed(&status, "active", "a status");

    let month = query_schema(&doc, "/v1/me/signins", "get", "month");
    for bad in ["", "4008-90", "2026-00", "2026-1", "2026-11-01"] {
        refused(&month, bad, "a month");
    }
    allowed(&month, "2026-11", "a month");

    let before = query_schema(&doc, "/v1/me/claims", "get", "before");
    for bad in ["", "zzz", "-5.c1", "1.\u{1f}", "1234567890123456789.c1"] {
        refused(&before, bad, "a cursor");
    }
    allowed(&before, "1764000000000.c9-0000000001", "a cursor");

    let after = query_schema(&doc, "/v1/admin/campaigns/{id}/claims", "get", "after");
    refused(&after, "\u{1f}", "a control character in after");
    refused(&after, &"x".repeat(65), "a long after");
    allowed(&after, "", "an empty after");
    allowed(&after, "c9-0000000001", "a claim id");

    for kind in ["NewFlashSale", "NewRedPacket"] {
        let props = &schemas[kind]["properties"];
        let name = &props["name"];
        refused(name, "a\u{0}b", "a NUL in a name");
        refused(name, "   ", "a name of white space");
        allowed(name, " padded ", "a padded name");
        // Optional fields are typed without null: `null` is outside them.
        for field in [
            "ends_at",
            "starts_at",
            "buckets",
            "ticket_lead_secs",
            "ticket_required",
        ] {
            assert!(
                props[field]["type"].is_string(),
                "{kind}.{field}: one type, no null"
            );
            assert_ne!(
                props[field]["nullable"], true,
                "{kind}.{field}: not nullable"
            );
        }
        assert!(
            props["ends_at"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("in the future")),
            "{kind}: a campaign born ended is refused"
        );
        assert_eq!(schemas[kind]["additionalProperties"], false, "{kind}");
    }
    assert_eq!(
        schemas["NewRedPacket"]["properties"]["min_cents"]["maximum"],
        json!(1_000_000_000_000u64),
        "min_cents has its maximum"
    );

    for branch in schemas["BlocklistRequest"]["oneOf"]
        .as_array()
        .expect("oneOf")
    {
        let ttl = &branch["properties"]["ttl_secs"];
        assert_eq!(ttl["type"], "integer", "ttl_secs is an integer, never null");
        assert_eq!(
            ttl["maximum"],
            json!(31_536_000),
            "ttl_secs: at most a year"
        );
        if let Some(ip) = branch["properties"].get("ip") {
            let formats: Vec<&str> = ip["anyOf"]
                .as_array()
                .expect("ip: anyOf formats")
                .iter()
                .filter_map(|f| f["format"].as_str())
                .collect();
            assert_eq!(
                formats,
                ["ipv4", "ipv6"],
                "ip: an address, so \"\" is refused"
            );
        }
    }

    let quantity = &schemas["ClaimRequest"]["properties"]["quantity"];
    assert_eq!(quantity["type"], "integer");
    let claim_422 = &doc["paths"]["/v1/campaigns/{id}/claims"]["post"]["responses"]["422"];
    assert!(
        claim_422["content"]["application/json"]["examples"]["over_the_limit"].is_object(),
        "a quantity over the limit (a red packet's is 1) is a 422 the document lists"
    );
}

/// Issue #16 item 3: the `201` of `POST /v1/campaigns` links the new `id` to the
/// operations a stateful fuzzer walks a sale with, and each link names a real
/// operation with an `{id}` parameter.
#[test]
fn the_created_campaign_links_to_the_operations_on_it() {
    let doc = document();
    let links = doc["paths"]["/v1/campaigns"]["post"]["responses"]["201"]["links"]
        .as_object()
        .expect("links on the 201");
    let ids: BTreeSet<String> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.contains("{id}"))
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(String::from))
        .collect();
    let linked: BTreeSet<String> = links
        .values()
        .map(|l| {
            assert_eq!(l["parameters"]["id"], "$response.body#/id", "{l}");
            let op = l["operationId"].as_str().expect("operationId").to_string();
            assert!(ids.contains(&op), "{op}: an operation on a campaign id");
            op
        })
        .collect();
    for wanted in [
        "getCampaign",
        "claim",
        "getClaimTicket",
        "campaignStats",
        "closeCampaign",
        "rebuildCampaign",
        "exportClaims",
    ] {
        assert!(linked.contains(wanted), "a link to {wanted}");
    }
}
