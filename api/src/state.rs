//! The state every handler shares: the engine, the credentials checker, the metrics
//! renderer, the rate limits, the dashboard, the claim tickets and the risk rules.
//!
//! axum clones the state for every request: [`AppState`] is ONE `Arc` around
//! [`Shared`], so that clone is one reference count, not one per field (a profile of
//! the claim path showed the clone and drop of a struct of many `Arc`s at about 1.5%).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use stampede_engine::auth::Auth;
use stampede_engine::service::Engine;

/// What every handler shares; reached through [`AppState`] (it derefs to this).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub engine: Arc<Engine>,
    pub auth: Arc<Auth>,
    pub metrics: PrometheusHandle,
    pub limits: Arc<crate::rate_limit::RateLimits>,
    pub proxies: Arc<crate::client_ip::TrustedProxies>,
    pub dashboard: Arc<crate::dashboard::Dashboard>,
    pub tickets: Arc<stampede_engine::ticket::Tickets>,
    pub risk: Arc<crate::risk::RiskRules>,
    /// `GET /v1/campaigns/{id}`'s replies, rendered once per change.
    pub campaign_replies: crate::campaign_reply::CampaignReplies,
    /// Checks the payment provider's signatures (`POST /v1/payments/notify`).
    pub payments: Arc<crate::payment_signature::Signatures>,
}

impl Shared {
    /// The gates every user write route (claim, ticket, sign-in) passes first, cheapest
    /// first: the blocklist (`403 blocked`), then the user's and the address's rates
    /// (`429`). No I/O.
    pub fn admit_caller(
        &self,
        user: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(), crate::error::ApiError> {
        self.admit_caller_at(user, ip, stampede_engine::clock::now_ms())
    }

    /// [`AppState::admit_caller`] with the blocklist read at `now_ms`.
    pub fn admit_caller_at(
        &self,
        user: &str,
        ip: Option<std::net::IpAddr>,
        now_ms: i64,
    ) -> Result<(), crate::error::ApiError> {
        use crate::error::ApiError;
        if self.engine.blocklist.refuses(user, ip, now_ms) {
            crate::telemetry::risk_refusal("blocklist", "refuse");
            return Err(ApiError::BLOCKED);
        }
        self.limits.check(user, ip).map_err(ApiError::RateLimited)
    }
}
