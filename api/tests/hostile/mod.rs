//! The hostile requests of `request_fuzz.rs`: the request model (each part kept as
//! the choice that made it, so a shrunk failure reads as what was sent), the proptest
//! strategies that generate it, route by route, and the JWTs forged for it.
//!
//! Every part of a request is mostly what its route takes and now and then hostile,
//! independently: a case usually breaks one or two things at once, so it gets past the
//! others to the parsing behind them.

use std::net::SocketAddr;

use axum::http::Method;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::{ADMIN_TOKEN, JWT_SECRET};

// ---------------------------------------------------------------------------------
// The generated request.
// ---------------------------------------------------------------------------------

/// A path segment where a route takes `{id}`.
#[derive(Clone, Debug)]
pub enum Seg {
    /// The id of the fixture's flash sale (so deeper paths are reached).
    Sale,
    /// The id of the fixture's red packet.
    Packet,
    /// A flash sale that starts in 2099 (claims: 409 not_started).
    Later,
    /// A closed flash sale (409 ended).
    Closed,
    /// A sold-out flash sale (409 sold_out).
    SoldOut,
    /// A flash sale that takes claims only with a ticket (403 ticket_required).
    Ticketed,
    /// Written into the path as is (already percent-encoded where it must be).
    Raw(String),
}

/// The `Authorization` header.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Admin,
    /// The admin token with a lower-case scheme and padding.
    AdminOddScheme,
    /// A valid user JWT of the fixture's user `n` (user 0 is the busy one that the
    /// rate limit catches).
    User(usize),
    /// A user JWT with the scheme spelled `bearer` and a trailing space.
    UserOddScheme(usize),
    /// A hand-built token; see [`forge`].
    Forged(Forgery),
    /// The whole header value.
    Raw(Vec<u8>),
}

/// Tokens a JWT library would refuse to produce, or produces for the wrong secret.
#[derive(Clone, Debug)]
pub enum Forgery {
    AlgNone,
    AlgNoneNoDot,
    WrongSecret,
    Hs512Header,
    Expired,
    NoSub,
    NoExp,
    BadSub(String),
    ExpAsString,
    ExpHuge,
    ExpFloat,
    ExpNegative,
    NotBefore,
    /// HS256 over the right secret with this payload text (often not JSON at all).
    Payload(String),
    /// HS256 over the right secret with this header text.
    Header(String),
    /// A valid user token with something appended.
    Suffixed(usize, String),
    FourParts,
    /// base64url-looking garbage in three parts.
    Parts(String, String, String),
}

#[derive(Clone, Debug)]
pub enum ContentLength {
    /// No header (the oneshot path sets none; hyper would infer one).
    Absent,
    /// The body's real length.
    Exact,
    /// Any text.
    Value(String),
    /// Two headers.
    Twice(String, String),
}

#[derive(Clone)]
pub struct Fuzz {
    pub method: Method,
    pub path: String,
    pub cred: Cred,
    pub content_type: Option<Vec<u8>>,
    pub content_length: ContentLength,
    /// Other headers as (name, value bytes); values hold only bytes `http` accepts.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The connection's peer (the api trusts 127.0.0.1 and 10.0.0.0/8 as proxies).
    pub peer: SocketAddr,
    pub body: Vec<u8>,
}

/// Failures print a case; long bodies are cut so the report stays readable.
impl std::fmt::Debug for Fuzz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), shorten(v, 120)))
            .collect();
        f.debug_struct("Fuzz")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("cred", &self.cred)
            .field(
                "content_type",
                &self.content_type.as_ref().map(|c| shorten(c, 80)),
            )
            .field("content_length", &self.content_length)
            .field("headers", &headers)
            .field("peer", &self.peer)
            .field(
                "body",
                &format_args!("{} bytes: {}", self.body.len(), shorten(&self.body, 300)),
            )
            .finish()
    }
}

pub fn shorten(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() <= max {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head:?}...")
    }
}

// ---------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------

/// Who a route is for, so that most cases carry the credentials it takes and get past
/// them to the parsing behind.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    Public,
    User,
    Admin,
}

/// What a route reads from the body.
#[derive(Clone, Copy, Debug)]
pub enum Reads {
    Nothing,
    Campaign,
    Claim,
}

/// Every route of the router, plus the contract's routes it does not serve (yet), with
/// the method it takes. `{id}` (and `{claim_id}`) is where a [`Seg`] goes.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, Access, Reads)] = &[
    ("/v1/campaigns", "POST", Access::Admin, Reads::Campaign),
    ("/v1/campaigns", "GET", Access::Public, Reads::Nothing),
    ("/v1/campaigns/{id}", "GET", Access::Public, Reads::Nothing),
    ("/v1/campaigns/{id}/claims", "POST", Access::User, Reads::Claim),
    ("/v1/campaigns/{id}/claims/me", "GET", Access::User, Reads::Nothing),
    ("/v1/campaigns/{id}/ticket", "GET", Access::User, Reads::Nothing),
    ("/v1/me/claims", "GET", Access::User, Reads::Nothing),
    ("/v1/events", "POST", Access::User, Reads::Nothing),
    ("/v1/signin", "POST", Access::User, Reads::Nothing),
    ("/v1/me/points", "GET", Access::User, Reads::Nothing),
    ("/v1/me/signins", "GET", Access::User, Reads::Nothing),
    ("/v1/claims/{claim_id}/cancel", "POST", Access::User, Reads::Nothing),
    ("/v1/payments/notify", "POST", Access::Public, Reads::Nothing),
    ("/v1/admin/refunds", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/close", "POST", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/stats", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/funnel", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/claims", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/rebuild", "POST", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/reconcile", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/dead-letters", "GET", Access::Admin, Reads::Nothing),
    ("/v1/admin/campaigns/{id}/dead-letters/replay", "POST", Access::Admin, Reads::Nothing),
    ("/v1/admin/blocklist", "POST", Access::Admin, Reads::Campaign),
    ("/v1/admin/blocklist", "DELETE", Access::Admin, Reads::Campaign),
    ("/v1/admin/blocklist", "GET", Access::Admin, Reads::Nothing),
    ("/openapi.json", "GET", Access::Public, Reads::Nothing),
    ("/healthz", "GET", Access::Public, Reads::Nothing),
    ("/readyz", "GET", Access::Public, Reads::Nothing),
    ("/metrics", "GET", Access::Public, Reads::Nothing),
    ("/dashboard", "GET", Access::Public, Reads::Nothing),
    ("/dashboard/events", "GET", Access::Public, Reads::Nothing),
    ("/dashboard/dashboard.js", "GET", Access::Public, Reads::Nothing),
    ("/dashboard/dashboard.css", "GET", Access::Public, Reads::Nothing),
];

/// Percent-encodes every byte outside the unreserved set.
pub fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Any text, control characters included (`any::<String>()` leaves them out, and they
/// are what a database or a one-line message chokes on).
pub fn text() -> impl Strategy<Value = String> {
    let control = prop_oneof![
        Just('\0'),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('\u{7f}'),
        Just('\u{1b}'),
        Just('\u{85}'),
        Just('a'),
        Just('.'),
    ];
    let with_control = (
        "[a-zA-Z0-9 ._-]{0,12}",
        prop_oneof![
            Just('\0'),
            Just('\n'),
            Just('\r'),
            Just('\u{1b}'),
            Just('\u{7f}'),
            Just('\u{85}'),
            Just('\u{2028}'),
            Just('\u{feff}'),
        ],
        any::<prop::sample::Index>(),
    )
        .prop_map(|(base, c, at)| {
            let mut chars: Vec<char> = base.chars().collect();
            chars.insert(at.index(chars.len() + 1), c);
            chars.into_iter().collect()
        });
    prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter),
        1 => prop::collection::vec(control, 1..8).prop_map(String::from_iter),
        2 => with_control,
    ]
}

pub fn interesting_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("007".to_string()),
        Just("9007199254740991".to_string()),
        Just("9007199254740992".to_string()),
        Just("9223372036854775807".to_string()),
        Just("9223372036854775808".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9".repeat(400)),
        Just("1.5".to_string()),
        Just("1e3".to_string()),
        Just("0x1F".to_string()),
        Just("NaN".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("%2e%2e".to_string()),
        Just("%2F".to_string()),
        Just("%00".to_string()),
        Just("%FF".to_string()),
        Just("%C3%28".to_string()),
        Just("%".to_string()),
        Just("%zz".to_string()),
        Just("%31".to_string()),
        Just("%F0%9F%92%A5".to_string()),
        Just("%20".to_string()),
        Just("1;2".to_string()),
        Just("1,2".to_string()),
        "[0-9]{1,30}",
    ]
}

pub fn segment() -> impl Strategy<Value = Seg> {
    prop_oneof![
        8 => Just(Seg::Sale),
        4 => Just(Seg::Packet),
        1 => Just(Seg::Later),
        1 => Just(Seg::Closed),
        1 => Just(Seg::SoldOut),
        2 => Just(Seg::Ticketed),
        2 => interesting_text().prop_map(Seg::Raw),
        1 => text().prop_map(|s| Seg::Raw(pct(s.as_bytes()))),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| Seg::Raw(pct(&b))),
        // Unencoded characters: some make a URI the `http` crate refuses (skipped).
        1 => "[!-~]{0,12}".prop_map(Seg::Raw),
    ]
}

pub fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("limit".to_string()),
        Just("before".to_string()),
        Just("after".to_string()),
        Just("status".to_string()),
        Just("month".to_string()),
        Just("token".to_string()),
        Just(String::new()),
        "[a-z%&=+;]{1,8}",
        text().prop_map(|s| pct(s.as_bytes())),
    ]
}

pub fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        interesting_text(),
        Just("active".to_string()),
        Just("sold_out".to_string()),
        Just("2026-11".to_string()),
        Just("2026-13".to_string()),
        Just("+999-01".to_string()),
        Just("9999-12".to_string()),
        Just("-001-01".to_string()),
        Just("1700000000000.c1-abc".to_string()),
        Just("1.".to_string()),
        Just(".x".to_string()),
        Just("99999999999999999999.x".to_string()),
        ("[0-9]{1,13}", text()).prop_map(|(ms, t)| format!("{ms}.{}", pct(t.as_bytes()))),
        Just(ADMIN_TOKEN.to_string()),
        "[a-zA-Z0-9._-]{0,70}",
        text().prop_map(|s| pct(s.as_bytes())),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| pct(&b)),
    ]
}

/// The query keys a route reads.
pub fn route_keys(template: &str) -> Vec<&'static str> {
    match template {
        "/v1/campaigns" => vec!["status"],
        "/v1/me/claims" => vec!["limit", "before"],
        "/v1/me/signins" => vec!["month"],
        "/dashboard" => vec!["token"],
        t if t.ends_with("/claims") && t.starts_with("/v1/admin") => vec!["after", "limit"],
        t if t.contains("dead-letters") => vec!["limit"],
        _ => vec!["limit"],
    }
}

/// Mostly the route's own keys with values good or hostile; any keys otherwise.
pub fn query(keys: Vec<&'static str>) -> impl Strategy<Value = Option<String>> {
    let key = prop_oneof![
        4 => prop::sample::select(keys).prop_map(String::from),
        1 => query_key(),
    ];
    let value = prop_oneof![
        2 => query_value(),
        1 => text().prop_map(|t| pct(t.as_bytes())),
    ];
    prop_oneof![
        3 => Just(None),
        4 => prop::collection::vec((key, value, prop::bool::weighted(0.9)), 1..4).prop_map(
            |pairs| {
                Some(
                    pairs
                        .into_iter()
                        .map(|(k, v, eq)| if eq { format!("{k}={v}") } else { k })
                        .collect::<Vec<_>>()
                        .join("&"),
                )
            }
        ),
        1 => "[!-~]{0,20}".prop_map(Some),
    ]
}

pub fn path(template: &str) -> impl Strategy<Value = (Seg, String, Option<String>)> {
    let suffix = prop_oneof![
        60 => Just(String::new()),
        1 => Just("/".to_string()),
        1 => Just("//".to_string()),
        1 => Just("/..".to_string()),
        1 => "/[a-z]{1,6}",
    ];
    (segment(), suffix, query(route_keys(template)))
}

/// The route's own method mostly, any of five otherwise.
pub fn method(own: &str) -> impl Strategy<Value = Method> {
    let own = Method::from_bytes(own.as_bytes()).unwrap_or(Method::GET);
    prop_oneof![
        50 => Just(own),
        1 => Just(Method::GET),
        1 => Just(Method::POST),
        1 => Just(Method::DELETE),
        1 => Just(Method::PUT),
        1 => Just(Method::PATCH),
    ]
}

/// Bytes a header value may hold (`http` refuses controls but tab, and DEL).
pub fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(b'\t')],
        0..max,
    )
}

pub fn base64ish() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_=+/-]{0,40}"
}

pub fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::AlgNone),
        Just(Forgery::AlgNoneNoDot),
        Just(Forgery::WrongSecret),
        Just(Forgery::Hs512Header),
        Just(Forgery::Expired),
        Just(Forgery::NoSub),
        Just(Forgery::NoExp),
        prop_oneof![
            Just(String::new()),
            Just("a".repeat(65)),
            Just("no spaces!".to_string()),
            Just("ü".to_string()),
            Just("a\nb".to_string()),
            text(),
        ]
        .prop_map(Forgery::BadSub),
        Just(Forgery::ExpAsString),
        Just(Forgery::ExpHuge),
        Just(Forgery::ExpFloat),
        Just(Forgery::ExpNegative),
        Just(Forgery::NotBefore),
        prop_oneof![
            text(),
            Just("[".repeat(10_000)),
            Just(r#"{"sub":"u0","exp":1e999}"#.to_string()),
            Just(r#"{"sub":["u0"],"exp":9999999999}"#.to_string()),
            Just(r#"{"sub":"u0","exp":9999999999,"sub":"u1"}"#.to_string()),
            Just("null".to_string()),
        ]
        .prop_map(Forgery::Payload),
        prop_oneof![
            text(),
            Just(r#"{"alg":"HS256"}"#.to_string()),
            Just(r#"{"alg":"hs256","typ":"JWT"}"#.to_string()),
            Just(r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#.to_string()),
            Just(r#"{"alg":"HS256","kid":"../../etc/passwd"}"#.to_string()),
            Just(r#"{"typ":"JWT"}"#.to_string()),
        ]
        .prop_map(Forgery::Header),
        (0usize..4, "[ .=a-z]{1,8}").prop_map(|(u, s)| Forgery::Suffixed(u, s)),
        Just(Forgery::FourParts),
        (base64ish(), base64ish(), base64ish()).prop_map(|(a, b, c)| Forgery::Parts(a, b, c)),
    ]
}

/// Mostly the credentials the route takes; every kind of wrong one otherwise.
pub fn cred(access: Access) -> impl Strategy<Value = Cred> {
    let (admin, user) = match access {
        Access::Admin => (50, 2),
        Access::User => (1, 50),
        Access::Public => (2, 2),
    };
    prop_oneof![
        2 => Just(Cred::None),
        admin => Just(Cred::Admin),
        1 => Just(Cred::AdminOddScheme),
        // u0 is the busy user, the one the rate limit catches.
        user => prop_oneof![3 => Just(0usize), 2 => 1usize..6].prop_map(Cred::User),
        1 => (0usize..6).prop_map(Cred::UserOddScheme),
        4 => forgery().prop_map(Cred::Forged),
        1 => header_bytes(80).prop_map(Cred::Raw),
    ]
}

pub fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        3 => Just(None),
        60 => Just(Some(b"application/json".to_vec())),
        1 => Just(Some(b"application/json; charset=utf-8".to_vec())),
        1 => Just(Some(b"APPLICATION/JSON".to_vec())),
        1 => Just(Some(b"application/merge-patch+json".to_vec())),
        1 => Just(Some(b"application/jsonx".to_vec())),
        1 => Just(Some(b"text/plain".to_vec())),
        1 => Just(Some(b"multipart/form-data; boundary=x".to_vec())),
        1 => Just(Some(b"application/x-www-form-urlencoded".to_vec())),
        1 => Just(Some(Vec::new())),
        1 => Just(Some(b";;;".to_vec())),
        1 => header_bytes(40).prop_map(Some),
    ]
}

pub fn content_length() -> impl Strategy<Value = ContentLength> {
    prop_oneof![
        8 => Just(ContentLength::Absent),
        8 => Just(ContentLength::Exact),
        2 => prop_oneof![
            Just("0".to_string()),
            Just("1".to_string()),
            Just("16384".to_string()),
            Just("16385".to_string()),
            Just("17000".to_string()),
            Just("18446744073709551615".to_string()),
            Just("99999999999999999999999".to_string()),
            Just("-1".to_string()),
            Just("abc".to_string()),
            Just(" 5".to_string()),
            Just("5, 5".to_string()),
            Just("0x10".to_string()),
            Just(String::new()),
            "[0-9]{1,6}",
        ]
        .prop_map(ContentLength::Value),
        1 => ("[0-9]{1,5}", "[0-9]{1,5}").prop_map(|(a, b)| ContentLength::Twice(a, b)),
    ]
}

pub fn other_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let xff = prop_oneof![
        Just(b"203.0.113.9".to_vec()),
        Just(b"203.0.113.9, 10.0.0.1".to_vec()),
        Just(b"not-an-ip".to_vec()),
        Just(b"unknown, 10.0.0.1".to_vec()),
        Just(b"fe80::1%eth0".to_vec()),
        Just(b"[::1]:80".to_vec()),
        Just(b", , ,".to_vec()),
        Just(b"999.999.999.999".to_vec()),
        Just("10.0.0.1, ".repeat(2_000).into_bytes()),
        header_bytes(60),
    ]
    .prop_map(|v| ("x-forwarded-for".to_string(), v));
    let request_id = prop_oneof![
        Just(b"abc-123".to_vec()),
        Just(vec![b'a'; 36]),
        Just(vec![b'a'; 37]),
        Just(b"../../etc".to_vec()),
        Just(b"id with spaces".to_vec()),
        Just(Vec::new()),
        header_bytes(60),
    ]
    .prop_map(|v| ("x-request-id".to_string(), v));
    let if_none_match = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"\"0000000000000000\"".to_vec()),
        Just(b"W/\"x\", ,,".to_vec()),
        header_bytes(40),
    ]
    .prop_map(|v| ("if-none-match".to_string(), v));
    let cookie = prop_oneof![
        Just(None),
        Just(Some(b"stampede_dashboard=1.2".to_vec())),
        Just(Some(
            b"stampede_dashboard=99999999999999999999999.ff".to_vec()
        )),
        Just(Some(b"stampede_dashboard".to_vec())),
        // Replaced by a valid session cookie when the request is built.
        Just(Some(b"session".to_vec())),
        Just(Some(b";;=;".to_vec())),
        header_bytes(60).prop_map(Some),
    ]
    .prop_filter_map("a cookie", |c| c)
    .prop_map(|v| ("cookie".to_string(), v));
    let any_header = ("[a-z][a-z0-9-]{0,20}", header_bytes(40));
    let transfer = prop_oneof![
        Just(b"chunked".to_vec()),
        Just(b"gzip, chunked".to_vec()),
        Just(b"identity".to_vec()),
    ]
    .prop_map(|v| ("transfer-encoding".to_string(), v));
    let ticket = prop_oneof![
        Just(b"t1.1.2.3.AAAA".to_vec()),
        Just(b"t1.99999999999999999999.-1.-1.====".to_vec()),
        Just(b"t1....".to_vec()),
        Just(vec![b'.'; 400]),
        header_bytes(80),
    ]
    .prop_map(|v| ("x-claim-ticket".to_string(), v));
    let device = prop_oneof![
        Just(b"phone-1".to_vec()),
        Just(vec![b'd'; 128]),
        Just(vec![b'd'; 129]),
        Just(b"with space".to_vec()),
        Just(Vec::new()),
        header_bytes(60),
    ]
    .prop_map(|v| ("x-device-id".to_string(), v));
    let one = prop_oneof![
        3 => xff,
        3 => request_id,
        1 => if_none_match,
        2 => cookie,
        1 => transfer,
        2 => ticket,
        2 => device,
        1 => any_header,
        1 => header_bytes(40).prop_map(|v| ("accept".to_string(), v)),
        1 => header_bytes(40).prop_map(|v| ("host".to_string(), v)),
        1 => header_bytes(20).prop_map(|v| ("content-encoding".to_string(), v)),
    ];
    prop::collection::vec(one, 0..4)
}

/// A JSON value of any shape, weighted towards what the routes read.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(2),
            Just(1_000),
            Just(1_000_000_000),
            Just(1_000_000_001),
            Just(10_000_000),
            Just(1_000_000_000_000),
            Just(i64::MAX),
            Just(i64::MIN),
        ]
        .prop_map(Value::from),
        prop_oneof![
            Just("flash_sale".to_string()),
            Just("red_packet".to_string()),
            Just("2026-11-22T20:00:00Z".to_string()),
            Just("9999-12-31T23:59:59Z".to_string()),
            Just("0000-01-01T00:00:00Z".to_string()),
            Just("2026-02-30T00:00:00Z".to_string()),
            Just("2026-11-22T20:00:00+14:00".to_string()),
            Just("a\u{0}b".to_string()),
            Just("\u{0}".to_string()),
            Just("x".repeat(201)),
            Just(" ".to_string()),
            Just("\u{feff}\u{200b}".to_string()),
            text(),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields the routes read, and others.
pub fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop_oneof![
            Just("kind"),
            Just("name"),
            Just("stock"),
            Just("per_user_limit"),
            Just("price_cents"),
            Just("total_cents"),
            Just("count"),
            Just("min_cents"),
            Just("starts_at"),
            Just("ends_at"),
            Just("quantity"),
            Just("user_id"),
            Just("ip"),
            Just("ttl_secs"),
            Just("ticket_required"),
        ]
        .prop_map(String::from),
        1 => Just("a\nb\r\nc".to_string()),
        1 => Just("/work/src/x.rs: SELECT".to_string()),
        2 => text(),
    ]
}

/// A field's value: mostly the good one, else anything (text included, with control
/// characters).
pub fn good_or_hostile(good: Value) -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => Just(good),
        1 => json_value(),
        1 => text().prop_map(Value::from),
    ]
}

/// A campaign creation where each field is good or hostile on its own, and now and
/// then a field dropped or an unknown one added.
pub fn near_valid_campaign() -> impl Strategy<Value = Value> {
    let flash = vec![
        ("kind", json!("flash_sale")),
        ("name", json!("Fuzz sale")),
        ("stock", json!(5)),
        ("per_user_limit", json!(2)),
        ("price_cents", json!(100)),
        ("starts_at", json!("2026-01-01T00:00:00Z")),
        ("ends_at", json!("2099-01-01T00:00:00Z")),
    ];
    let packet = vec![
        ("kind", json!("red_packet")),
        ("name", json!("Fuzz packet")),
        ("total_cents", json!(1000)),
        ("count", json!(10)),
        ("min_cents", json!(1)),
        ("starts_at", json!("2026-01-01T00:00:00Z")),
        ("ends_at", json!("2099-01-01T00:00:00Z")),
    ];
    let fields = |good: Vec<(&'static str, Value)>| {
        good.into_iter()
            .map(|(k, v)| good_or_hostile(v).prop_map(move |v| (k, v)))
            .collect::<Vec<_>>()
    };
    let edit = (field_name(), prop::option::of(json_value()));
    (
        prop_oneof![fields(flash), fields(packet)],
        prop::collection::vec(edit, 0..2),
    )
        .prop_map(|(fields, edits)| {
            let mut v: Value = Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            );
            for (k, e) in edits {
                match e {
                    Some(e) => v[k] = e,
                    None => {
                        if let Some(o) = v.as_object_mut() {
                            o.remove(&k);
                        }
                    }
                }
            }
            v
        })
}

/// Mostly the body the route reads (or none); anything otherwise.
pub fn body(reads: Reads) -> impl Strategy<Value = Vec<u8>> {
    let (campaign, claim, empty) = match reads {
        Reads::Campaign => (10, 1, 1),
        Reads::Claim => (1, 6, 6),
        Reads::Nothing => (1, 1, 10),
    };
    prop_oneof![
        empty => Just(Vec::new()),
        campaign => near_valid_campaign().prop_map(|v| v.to_string().into_bytes()),
        claim => claim_body(),
        4 => any_body(),
    ]
}

pub fn claim_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"quantity": 1})),
        Just(json!({"quantity": 2})),
        Just(json!({"quantity": 3})),
        Just(json!({"quantity": 0})),
        Just(json!({"quantity": -1})),
        Just(json!({"quantity": i64::MAX})),
        Just(json!({"quantity": u64::MAX})),
        Just(json!({"quantity": "1"})),
        Just(json!({"quantity": null})),
        Just(json!({"quantity": 1, "extra": true})),
        prop::collection::btree_map(field_name(), json_value(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .prop_map(|v| v.to_string().into_bytes())
}

/// Any body at all.
pub fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        Just("[".repeat(10_000)),
        Just("{\"a\":".repeat(5_000)),
        Just(format!("{}{}", "[".repeat(100), "]".repeat(100))),
        Just(format!("{{\"quantity\": {}}}", "9".repeat(500))),
        Just("{\"quantity\": 1e400}".to_string()),
        Just("{\"quantity\": -0}".to_string()),
        Just("{\"quantity\": 1.0}".to_string()),
        Just("{\"quantity\": 1, \"quantity\": 2}".to_string()),
        Just("{\"stock\": 18446744073709551616}".to_string()),
        Just("\u{feff}{\"quantity\": 1}".to_string()),
        Just("null".to_string()),
        Just("\"a string\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just(" \n\t ".to_string()),
        Just("{\"quantity\":\"\\ud800\"}".to_string()),
        Just(" ".repeat(16 * 1024 + 1)),
        Just(format!(
            "{{\"kind\":\"flash_sale\",\"name\":\"{}\",\"stock\":1}}",
            "x".repeat(17 * 1024)
        )),
    ]
    .prop_map(String::into_bytes);
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        // Truncated JSON.
        2 => (near_valid_campaign(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            s[..i.index(s.len())].to_vec()
        }),
        3 => text,
        2 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..20_000),
        // Invalid UTF-8 inside a JSON string.
        1 => prop::collection::vec(0x80u8..=0xff, 1..8).prop_map(|b| {
            let mut v = b"{\"name\":\"".to_vec();
            v.extend(b);
            v.extend(b"\",\"kind\":\"flash_sale\",\"stock\":1}");
            v
        }),
    ]
}

pub fn peer() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        Just(SocketAddr::from(([127, 0, 0, 1], 40_000))),
        Just(SocketAddr::from(([10, 9, 8, 7], 40_000))),
        Just(SocketAddr::from(([203, 0, 113, 5], 40_000))),
        Just("[::1]:40000".parse().expect("addr")),
    ]
}

/// Route indexes, the routes that parse the most (bodies, queries) more often.
pub fn route() -> impl Strategy<Value = usize> {
    let weighted: Vec<usize> = ROUTES
        .iter()
        .enumerate()
        .flat_map(|(i, (template, _, _, reads))| {
            let weight = match reads {
                _ if template.contains("blocklist") => 1,
                Reads::Campaign => 16,
                Reads::Claim => 12,
                Reads::Nothing if template.contains("claims") || template.contains("signins") => 2,
                Reads::Nothing => 1,
            };
            std::iter::repeat_n(i, weight)
        })
        .collect();
    prop::sample::select(weighted)
}

/// The whole request. Each part is boxed: unboxed, the strategy's type nests so deep
/// that building a case overflows a test thread's stack in a debug build.
pub fn fuzz() -> BoxedStrategy<Fuzz> {
    route()
        .prop_flat_map(|route| {
            let (template, own, access, reads) = ROUTES[route];
            (
                method(own).boxed(),
                path(template).boxed(),
                cred(access).boxed(),
                content_type().boxed(),
                content_length().boxed(),
                other_headers().boxed(),
                peer().boxed(),
                body(reads).boxed(),
            )
                .prop_map(
                    move |(
                        method,
                        (seg, suffix, query),
                        cred,
                        content_type,
                        content_length,
                        headers,
                        peer,
                        body,
                    )| {
                        Fuzz {
                            method,
                            path: render_path(template, &seg, &suffix, query.as_deref()),
                            cred,
                            content_type,
                            content_length,
                            headers,
                            peer,
                            body,
                        }
                    },
                )
        })
        .boxed()
}

/// The path; the fixture's campaigns stand in as `{sale}`, `{packet}`... until the
/// fixture puts their ids in.
pub fn render_path(template: &str, seg: &Seg, suffix: &str, query: Option<&str>) -> String {
    let seg = match seg {
        Seg::Sale => "{sale}".to_string(),
        Seg::Packet => "{packet}".to_string(),
        Seg::Later => "{later}".to_string(),
        Seg::Closed => "{closed}".to_string(),
        Seg::SoldOut => "{sold_out}".to_string(),
        Seg::Ticketed => "{ticketed}".to_string(),
        Seg::Raw(s) => s.clone(),
    };
    let mut p = format!(
        "{}{suffix}",
        template.replace("{id}", &seg).replace("{claim_id}", &seg)
    );
    if let Some(q) = query {
        p.push('?');
        p.push_str(q);
    }
    p
}

// ---------------------------------------------------------------------------------
// Tokens.
// ---------------------------------------------------------------------------------

pub fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

pub fn sign(header: &str, payload: &str, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

pub fn later() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3_600)
        .unwrap_or(0)
}

pub const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn forge(f: &Forgery, users: &[String]) -> String {
    let exp = later();
    let ok = |payload: &str| sign(HS256, payload, JWT_SECRET);
    match f {
        Forgery::AlgNone => format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(format!(r#"{{"sub":"u1","exp":{exp}}}"#).as_bytes())
        ),
        Forgery::AlgNoneNoDot => format!(
            "{}.{}",
            b64(br#"{"alg":"none"}"#),
            b64(format!(r#"{{"sub":"u1","exp":{exp}}}"#).as_bytes())
        ),
        Forgery::WrongSecret => sign(
            HS256,
            &format!(r#"{{"sub":"u1","exp":{exp}}}"#),
            "another-secret-0123456789",
        ),
        Forgery::Hs512Header => sign(
            r#"{"alg":"HS512","typ":"JWT"}"#,
            &format!(r#"{{"sub":"u1","exp":{exp}}}"#),
            JWT_SECRET,
        ),
        Forgery::Expired => ok(r#"{"sub":"u1","exp":1000}"#),
        Forgery::NoSub => ok(&format!(r#"{{"exp":{exp}}}"#)),
        Forgery::NoExp => ok(r#"{"sub":"u1"}"#),
        Forgery::BadSub(s) => ok(&json!({"sub": s, "exp": exp}).to_string()),
        Forgery::ExpAsString => ok(&format!(r#"{{"sub":"u1","exp":"{exp}"}}"#)),
        Forgery::ExpHuge => ok(r#"{"sub":"u1","exp":18446744073709551615}"#),
        Forgery::ExpFloat => ok(&format!(r#"{{"sub":"u1","exp":{exp}.5}}"#)),
        Forgery::ExpNegative => ok(r#"{"sub":"u1","exp":-1}"#),
        Forgery::NotBefore => ok(&format!(
            r#"{{"sub":"u1","exp":{exp},"nbf":{}}}"#,
            exp + 1_000
        )),
        Forgery::Payload(p) => ok(p),
        Forgery::Header(h) => sign(h, &format!(r#"{{"sub":"u1","exp":{exp}}}"#), JWT_SECRET),
        Forgery::Suffixed(u, s) => format!("{}{s}", users[*u % users.len()]),
        Forgery::FourParts => format!("{}.e30", ok(&format!(r#"{{"sub":"u1","exp":{exp}}}"#))),
        Forgery::Parts(a, b, c) => format!("{a}.{b}.{c}"),
    }
}
