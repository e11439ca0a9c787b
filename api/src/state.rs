//! The state every handler shares: the engine, the credentials checker, the metrics
//! renderer, the rate limits and the dashboard. Cheap to clone (all `Arc`s).

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
}
