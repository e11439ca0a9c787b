//! The state every handler shares: the engine, the credentials checker, the metrics
//! renderer, the rate limits, the dashboard, the claim tickets and the risk rules. Cheap to clone (all `Arc`s).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use stampede_engine::auth::Auth;
use stampede_engine::service::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<Auth>,
    pub metrics: PrometheusHandle,
    pub limits: Arc<crate::rate_limit::RateLimits>,
    pub proxies: Arc<crate::client_ip::TrustedProxies>,
    pub dashboard: Arc<crate::dashboard::Dashboard>,
    pub tickets: Arc<stampede_engine::ticket::Tickets>,
    pub risk: Arc<crate::risk::RiskRules>,
}

impl AppState {
    /// The gates every user write route (claim, ticket, sign-in) passes first, cheapest
    /// first: the blocklist (`403 blocked`), then the user's and the address's rates
    /// (`429`). No I/O.
    pub fn admit_caller(
        &self,
        user: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(), crate::error::ApiError> {
        use crate::error::ApiError;
        if self
            .engine
            .blocklist
            .refuses(user, ip, stampede_engine::clock::now_ms())
        {
            crate::telemetry::risk_refusal("blocklist", "refuse");
            return Err(ApiError::BLOCKED);
        }
        self.limits.check(user, ip).map_err(ApiError::RateLimited)
    }
}
