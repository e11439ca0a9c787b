//! What the claim route reads from its request, taken in one extractor (the hot path's:
//! every claim of a crowd, refusals included, pays for it): the caller's verified
//! token, the client's address, the ticket and device headers, the request id, the
//! campaign id from the path and the optional body.
//!
//! The headers are found in one pass over them instead of one lookup each (six names,
//! each hashed and probed: about 500 instructions of a sold-out refusal). Each part is
//! read as its own extractor in [`crate::extract`] reads it, and a request that fails
//! several gets the answer the extractors gave in the route's old order: 401 for the
//! token, then 422 for the device id, then 404 for the campaign id, then the body's.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use stampede_engine::auth::Verified;
use stampede_engine::clock::now_ms;
use stampede_engine::request_id::RequestId;

use crate::error::ApiError;
use crate::extract::{
    bearer_token, parse_json, BodyHeaders, CampaignPath, ClaimHeaders, ClientIp, RawJson,
};
use crate::state::AppState;

/// A claim request: who, from where, for which campaign, with what.
pub struct ClaimRequest<B> {
    pub caller: Verified,
    pub ip: Option<IpAddr>,
    pub headers: ClaimHeaders,
    pub request_id: Option<RequestId>,
    pub campaign_id: u64,
    /// The JSON body, `None` when there is none.
    pub body: Option<B>,
    /// When the request was read (unix ms): the one clock reading of the token's
    /// expiry, the gates and the claim.
    pub now_ms: i64,
}

/// The first value of each header the claim route reads (what `HeaderMap::get` gives).
#[derive(Default)]
struct Found<'a> {
    authorization: Option<&'a HeaderValue>,
    ticket: Option<&'a HeaderValue>,
    device: Option<&'a HeaderValue>,
    forwarded_for: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
    content_type: Option<&'a HeaderValue>,
    transfer_encoding: bool,
}

impl<'a> Found<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = Found::default();
        for (name, value) in headers {
            // Names arrive lowercase (`HeaderName` is always).
            let slot = match name.as_str() {
                "authorization" => &mut found.authorization,
                "x-claim-ticket" => &mut found.ticket,
                "x-device-id" => &mut found.device,
                "x-forwarded-for" => &mut found.forwarded_for,
                "content-length" => &mut found.content_length,
                "content-type" => &mut found.content_type,
                "transfer-encoding" => {
                    found.transfer_encoding = true;
                    continue;
                }
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }
}

impl<B: DeserializeOwned> FromRequest<AppState> for ClaimRequest<B> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let found = Found::scan(&parts.headers);
        let now_ms = now_ms();
        let caller = found
            .authorization
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)
            .and_then(|t| {
                state
                    .auth
                    .verify_at(t, now_ms.div_euclid(1_000).max(0) as u64)
                    .map_err(|_| ApiError::Unauthorized)
            })?;
        let ClientIp(ip) = ClientIp::of(&parts, state, || found.forwarded_for);
        let headers = ClaimHeaders::from_values(found.ticket, found.device)?;
        let body_headers = BodyHeaders::from_values(
            found.content_length,
            found.transfer_encoding,
            found.content_type,
        );
        let request_id = parts.extensions.get::<RequestId>().copied();
        let CampaignPath(campaign_id) = CampaignPath::from_request_parts(&mut parts, state).await?;
        // Most claims have no body: nothing to read, and no request to put back together.
        let body = if axum::body::HttpBody::is_end_stream(&body) {
            None
        } else {
            let raw = RawJson::read(Request::from_parts(parts, body), body_headers, state).await?;
            parse_json(raw.json_type, &raw.bytes)?
        };
        Ok(ClaimRequest {
            caller,
            ip,
            headers,
            request_id,
            campaign_id,
            body,
            now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_what_each_lookup_would() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "x"),
            ("x-device-id", "d-1"),
            ("authorization", "Bearer first"),
            ("authorization", "Bearer second"),
            ("content-type", "application/json"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-claim-ticket", "t"),
            ("content-length", "2"),
            ("x-device-idx", "not it"),
        ] {
            headers.append(
                axum::http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let found = Found::scan(&headers);
        let names = [
            (found.authorization, "authorization"),
            (found.ticket, "x-claim-ticket"),
            (found.device, "x-device-id"),
            (found.forwarded_for, "x-forwarded-for"),
            (found.content_length, "content-length"),
            (found.content_type, "content-type"),
        ];
        for (got, name) in names {
            assert_eq!(got, headers.get(name), "{name}");
            assert!(got.is_some(), "{name}");
        }
        assert!(!found.transfer_encoding);
        headers.append("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(Found::scan(&headers).transfer_encoding);
        let empty = HeaderMap::new();
        let none = Found::scan(&empty);
        assert!(none.authorization.is_none() && none.device.is_none());
    }
}
