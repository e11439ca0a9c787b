//! One typed configuration, read once at start-up from flags and `STAMPEDE_*`
//! environment variables (contract: "Running it"), validated, secrets never printed.

use std::time::Duration;

use clap::{Args, ValueEnum};
use stampede_engine::redis_conn::RedisTarget;

/// A development secret used when none is configured; start-up warns loudly.
pub const DEV_JWT_SECRET: &str = "stampede-development-jwt-secret";
pub const DEV_ADMIN_TOKEN: &str = "stampede-development-admin-token";
pub const DEV_PAYMENT_SECRET: &str = "stampede-development-payment-secret";

/// How log lines are written (`STAMPEDE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the enclosing spans (the request id).
    Json,
}

#[derive(Clone, Args)]
pub struct Config {
    /// `development` or `production`. Production refuses to start with the development
    /// JWT secret or admin token.
    #[arg(long = "env", env = "STAMPEDE_ENV", default_value = "development")]
    pub environment: String,
    /// HTTP address to listen on.
    #[arg(long, env = "STAMPEDE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// `redis://...` for the Redis store and queue; unset runs the embedded in-process store.
    #[arg(long, env = "STAMPEDE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// `redis://h1:7000,redis://h2:7001,...`: the seed nodes of a Redis Cluster for the
    /// store, the queue and the signals (instead of STAMPEDE_REDIS_URL).
    #[arg(long, env = "STAMPEDE_REDIS_CLUSTER")]
    pub redis_cluster: Option<String>,
    /// `postgres://...` for PostgreSQL, `mysql://...` for MySQL 8 or MariaDB 10.11+, or
    /// `sqlite://FILE`.
    #[arg(
        long,
        env = "STAMPEDE_DATABASE_URL",
        default_value = "sqlite://stampede.db"
    )]
    pub database_url: String,
    /// A read replica of the database (same kind) for the reads that may lag: the admin
    /// export, the campaign list, claim pages past the first. Unset: the database itself.
    #[arg(long, env = "STAMPEDE_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// HS256 secret for user tokens.
    #[arg(long, env = "STAMPEDE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Admin bearer token.
    #[arg(long, env = "STAMPEDE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// HMAC-SHA256 key of the payment provider's notifications (`Stampede-Signature`).
    #[arg(long, env = "STAMPEDE_PAYMENT_SECRET", hide_env_values = true)]
    pub payment_secret: Option<String>,
    /// Bound on every Redis call, in milliseconds: past it the claim answers 503.
    #[arg(long, env = "STAMPEDE_REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,
    /// Database connections per process.
    #[arg(long, env = "STAMPEDE_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// Worker consumer tasks per process.
    #[arg(long, env = "STAMPEDE_WORKER_CONSUMERS", default_value_t = 4)]
    pub worker_consumers: usize,
    /// Days of behaviour events kept: the workers drop the days older than this.
    #[arg(long, env = "STAMPEDE_EVENTS_RETENTION_DAYS", default_value_t = 30)]
    pub events_retention_days: u32,
    /// Claims per worker batch (one transaction each).
    #[arg(long, env = "STAMPEDE_WORKER_BATCH", default_value_t = 1000)]
    pub worker_batch: usize,
    /// Most claims of one campaign decided by one store call when they arrive together
    /// (Redis only; 1 sends every claim alone).
    #[arg(long, env = "STAMPEDE_CLAIM_BATCH", default_value_t = 64)]
    pub claim_batch: usize,
    /// Claim and sign-in requests per second per user (burst twice that); 0 turns it off.
    #[arg(long, env = "STAMPEDE_USER_RATE", default_value_t = 20)]
    pub user_rate: u32,
    /// Requests per second per client address on the claim and sign-in routes; 0 (the
    /// default) is off, because many users may share an address.
    #[arg(long, env = "STAMPEDE_IP_RATE", default_value_t = 0)]
    pub ip_rate: u32,
    /// Addresses and networks of the reverse proxies in front of the api (comma
    /// separated); `X-Forwarded-For` is believed only from them. Empty: never.
    #[arg(long, env = "STAMPEDE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Accepted claims that may wait unpersisted before new claims get 503 (load shedding).
    #[arg(long, env = "STAMPEDE_BACKLOG_CAP", default_value_t = 1_000_000)]
    pub backlog_cap: u64,
    /// Behaviour events that may wait unwritten before new ones get 503 (their own cap).
    #[arg(
        long,
        env = "STAMPEDE_EVENTS_BACKLOG_CAP",
        default_value_t = 10_000_000
    )]
    pub events_backlog_cap: u64,
    /// IANA time zone of the sign-in day (`Asia/Shanghai`, `Europe/Berlin`, `UTC`).
    #[arg(long, env = "STAMPEDE_TIMEZONE", default_value = "UTC")]
    pub timezone: String,
    /// Points a sign-in earns before its streak bonus.
    #[arg(long, env = "STAMPEDE_SIGNIN_POINTS", default_value_t = 10)]
    pub signin_points: u64,
    /// Bonus points per consecutive earlier day of the streak.
    #[arg(long, env = "STAMPEDE_SIGNIN_STREAK_BONUS", default_value_t = 5)]
    pub signin_streak_bonus: u64,
    /// The most bonus points a streak earns.
    #[arg(long, env = "STAMPEDE_SIGNIN_BONUS_CAP", default_value_t = 50)]
    pub signin_bonus_cap: u64,
    /// Milliseconds a claim event may stay pending with a consumer before another takes it over.
    #[arg(long, env = "STAMPEDE_RECLAIM_IDLE_MS", default_value_t = 30_000)]
    pub reclaim_idle_ms: u64,
    /// Milliseconds a campaign's live counters are served from the api's in-process
    /// cache (public reads lag the truth by at most this).
    #[arg(long, env = "STAMPEDE_CACHE_TTL_MS", default_value_t = 500)]
    pub cache_ttl_ms: u64,
    /// Milliseconds a local sold-out flag is trusted before claims ask Redis again (the
    /// flag spreads between api instances over pub/sub; this is the fallback).
    #[arg(long, env = "STAMPEDE_SOLD_OUT_TTL_MS", default_value_t = 1_000)]
    pub sold_out_ttl_ms: u64,
    /// Redis replicas that must confirm each claim batch (`WAIT`) before its claims are
    /// answered, and hold the claim events a worker read before it writes them; 0 answers
    /// at once. When fewer confirm in time, the claims get 503.
    #[arg(long, env = "STAMPEDE_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// Consecutive failures to reach Redis that open its circuit breaker.
    #[arg(long, env = "STAMPEDE_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,
    /// Milliseconds an open breaker fails calls at once before it lets a probe through.
    #[arg(long, env = "STAMPEDE_BREAKER_COOL_DOWN_MS", default_value_t = 1_000)]
    pub breaker_cool_down_ms: u64,
    /// Attempts to write a claim event the database keeps refusing before it moves to
    /// the campaign's dead letters.
    #[arg(long, env = "STAMPEDE_POISON_ATTEMPTS", default_value_t = 5)]
    pub poison_attempts: u32,
    /// Seconds a claim ticket stays valid after the campaign's start (or after it was
    /// handed out, when that is later).
    #[arg(long, env = "STAMPEDE_TICKET_TTL_SECS", default_value_t = 60)]
    pub ticket_ttl_secs: u64,
    /// Risk rule: distinct users claiming from one `X-Device-Id` in a window
    /// (`off`, `refuse:N` or `flag:N`).
    #[arg(long, env = "STAMPEDE_RISK_DEVICE_USERS", default_value = "refuse:10")]
    pub risk_device_users: String,
    /// Risk rule: distinct users claiming from one address in a window.
    #[arg(long, env = "STAMPEDE_RISK_IP_USERS", default_value = "flag:200")]
    pub risk_ip_users: String,
    /// Risk rule: accounts younger than N seconds (the token's `account_created_at`).
    #[arg(
        long,
        env = "STAMPEDE_RISK_ACCOUNT_AGE_SECS",
        default_value = "flag:3600"
    )]
    pub risk_account_age_secs: String,
    /// Risk rule: a claim fewer than N milliseconds after its ticket was handed out.
    #[arg(long, env = "STAMPEDE_RISK_TICKET_MIN_MS", default_value = "flag:150")]
    pub risk_ticket_min_ms: String,
    /// The window of the velocity rules, in seconds.
    #[arg(long, env = "STAMPEDE_RISK_WINDOW_SECS", default_value_t = 60)]
    pub risk_window_secs: u64,
    /// Where `stampede worker` serves `/metrics` and `/healthz` for Prometheus (the api
    /// modes serve them on STAMPEDE_LISTEN). Unset: a worker process serves no HTTP.
    #[arg(long, env = "STAMPEDE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log format: `text` or `json` (the filter is `RUST_LOG`).
    #[arg(long, env = "STAMPEDE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("redis", &self.redis_url.as_ref().map(|_| "<set>"))
            .field(
                "redis_cluster",
                &self.redis_cluster.as_ref().map(|_| "<set>"),
            )
            .field(
                "database",
                &self
                    .database_url
                    .split_once("://")
                    .map_or("?", |(scheme, _)| scheme),
            )
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Config {
    /// Where Redis is: a cluster, one Redis, or `None` for the embedded in-process store.
    /// `validate` has checked that at most one is set and that the cluster's list parses.
    pub fn redis_target(&self) -> Option<RedisTarget> {
        if let Some(seeds) = &self.redis_cluster {
            return RedisTarget::cluster(seeds).ok();
        }
        self.redis_url.clone().map(RedisTarget::Single)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// The sign-in time zone; `validate` has checked that it parses.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Tz::UTC)
    }

    pub fn jwt_secret(&self) -> &str {
        self.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET)
    }

    pub fn admin_token(&self) -> &str {
        self.admin_token.as_deref().unwrap_or(DEV_ADMIN_TOKEN)
    }

    /// The key payment notifications are checked with. Unset: the development secret,
    /// except with `STAMPEDE_ENV=production`, where no notification is accepted (a
    /// deployment without payments needs none, and must not take the public one).
    pub fn payment_secret(&self) -> Option<&str> {
        match (&self.payment_secret, self.environment.as_str()) {
            (Some(s), _) => Some(s),
            (None, "production") => None,
            (None, _) => Some(DEV_PAYMENT_SECRET),
        }
    }

    /// The risk rules' settings; `validate` has checked that they parse.
    pub fn risk(&self) -> Result<crate::risk::RiskConfig, String> {
        use crate::risk::Rule;
        if self.risk_window_secs == 0 || self.risk_window_secs > 86_400 {
            return Err("STAMPEDE_RISK_WINDOW_SECS must be between 1 and 86400".into());
        }
        Ok(crate::risk::RiskConfig {
            device_users: Rule::parse("STAMPEDE_RISK_DEVICE_USERS", &self.risk_device_users)?,
            ip_users: Rule::parse("STAMPEDE_RISK_IP_USERS", &self.risk_ip_users)?,
            account_age_secs: Rule::parse(
                "STAMPEDE_RISK_ACCOUNT_AGE_SECS",
                &self.risk_account_age_secs,
            )?,
            ticket_min_ms: Rule::parse("STAMPEDE_RISK_TICKET_MIN_MS", &self.risk_ticket_min_ms)?,
            window_secs: self.risk_window_secs,
        })
    }

    /// Problems that make the configuration unusable.
    pub fn validate(&self) -> Result<(), String> {
        crate::client_ip::TrustedProxies::parse(&self.trusted_proxies)?;
        self.risk()?;
        if self.ticket_ttl_secs == 0 || self.ticket_ttl_secs > 86_400 {
            return Err("STAMPEDE_TICKET_TTL_SECS must be between 1 and 86400".into());
        }
        match self.environment.as_str() {
            "development" => {}
            "production" => {
                let dev = |v: &Option<String>, dev: &str| v.as_deref().is_none_or(|s| s == dev);
                if dev(&self.jwt_secret, DEV_JWT_SECRET)
                    || dev(&self.admin_token, DEV_ADMIN_TOKEN)
                    || self.payment_secret.as_deref() == Some(DEV_PAYMENT_SECRET)
                {
                    return Err("STAMPEDE_ENV=production refuses the development secrets: \
                        set STAMPEDE_JWT_SECRET and STAMPEDE_ADMIN_TOKEN (and \
                        STAMPEDE_PAYMENT_SECRET, if payments are used)"
                        .into());
                }
            }
            other => {
                return Err(format!(
                    "STAMPEDE_ENV must be development or production, not {other:?}"
                ))
            }
        }
        if let Some(read) = &self.database_read_url {
            let kind = |url: &str| stampede_engine::db::kind_of(url);
            if kind(read) != kind(&self.database_url) {
                return Err(
                    "STAMPEDE_DATABASE_READ_URL must name a database of the same kind as \
                     STAMPEDE_DATABASE_URL (a replica of it)"
                        .into(),
                );
            }
        }
        if let Some(seeds) = &self.redis_cluster {
            if self.redis_url.is_some() {
                return Err("set STAMPEDE_REDIS_URL or STAMPEDE_REDIS_CLUSTER, not both".into());
            }
            RedisTarget::cluster(seeds)?;
        }
        if self.redis_timeout_ms == 0 || self.redis_timeout_ms > 10_000 {
            return Err("STAMPEDE_REDIS_TIMEOUT_MS must be between 1 and 10000".into());
        }
        if !(1..=3_650).contains(&self.events_retention_days) {
            return Err("STAMPEDE_EVENTS_RETENTION_DAYS must be between 1 and 3650".into());
        }
        if self.worker_batch == 0 || self.worker_batch > 10_000 {
            return Err("STAMPEDE_WORKER_BATCH must be between 1 and 10000".into());
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(format!(
                "STAMPEDE_TIMEZONE {:?} is not an IANA time zone name",
                self.timezone
            ));
        }
        if self.signin_points > 1_000_000
            || self.signin_streak_bonus > 1_000_000
            || self.signin_bonus_cap > 1_000_000
        {
            return Err("sign-in points settings must be at most 1000000".into());
        }
        if self.cache_ttl_ms > 60_000 || self.sold_out_ttl_ms > 60_000 {
            return Err(
                "STAMPEDE_CACHE_TTL_MS and STAMPEDE_SOLD_OUT_TTL_MS must be at most 60000".into(),
            );
        }
        if self.breaker_failures == 0 || self.breaker_cool_down_ms > 60_000 {
            return Err(
                "STAMPEDE_BREAKER_FAILURES must be at least 1 and STAMPEDE_BREAKER_COOL_DOWN_MS at most 60000"
                    .into(),
            );
        }
        if self.redis_wait_replicas > 16 {
            return Err("STAMPEDE_REDIS_WAIT_REPLICAS must be at most 16".into());
        }
        if self.poison_attempts == 0 || self.poison_attempts > 100 {
            return Err("STAMPEDE_POISON_ATTEMPTS must be between 1 and 100".into());
        }
        if self.claim_batch == 0 || self.claim_batch > 1_000 {
            return Err("STAMPEDE_CLAIM_BATCH must be between 1 and 1000".into());
        }
        if self.jwt_secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err("STAMPEDE_JWT_SECRET must be at least 16 bytes".into());
        }
        if self.admin_token.as_deref().is_some_and(|s| s.len() < 16) {
            return Err("STAMPEDE_ADMIN_TOKEN must be at least 16 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["stampede"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").config
    }

    #[test]
    fn production_refuses_the_development_secrets() {
        let jwt = "a-real-secret-0123456789";
        let admin = "a-real-admin-token-0123456789";
        assert!(
            parse(&[]).validate().is_ok(),
            "development allows them (with a warning)"
        );
        for args in [
            vec!["--env", "production"],
            vec!["--env", "production", "--jwt-secret", jwt],
            vec!["--env", "production", "--admin-token", admin],
            vec![
                "--env",
                "production",
                "--jwt-secret",
                DEV_JWT_SECRET,
                "--admin-token",
                admin,
            ],
            vec![
                "--env",
                "production",
                "--jwt-secret",
                jwt,
                "--admin-token",
                DEV_ADMIN_TOKEN,
            ],
            vec![
                "--env",
                "production",
                "--jwt-secret",
                jwt,
                "--admin-token",
                admin,
                "--payment-secret",
                DEV_PAYMENT_SECRET,
            ],
        ] {
            let err = parse(&args).validate().expect_err("refused");
            assert!(err.contains("development secrets"), "{err}");
        }
        let ok = parse(&[
            "--env",
            "production",
            "--jwt-secret",
            jwt,
            "--admin-token",
            admin,
        ]);
        assert!(ok.validate().is_ok());
        // Production without a payment secret takes no notification at all.
        assert_eq!(ok.payment_secret(), None);
        assert_eq!(parse(&[]).payment_secret(), Some(DEV_PAYMENT_SECRET));
        assert!(parse(&["--env", "staging"]).validate().is_err());
    }

    #[test]
    fn risk_rules_have_conservative_defaults_and_bad_settings_are_refused() {
        use crate::risk::{Action, Rule};
        let risk = parse(&[]).risk().expect("defaults parse");
        assert_eq!(
            risk.device_users,
            Some(Rule {
                action: Action::Refuse,
                threshold: 10
            })
        );
        for flagged in [risk.ip_users, risk.account_age_secs, risk.ticket_min_ms] {
            assert_eq!(flagged.map(|r| r.action), Some(Action::Flag));
        }
        for args in [
            vec!["--risk-device-users", "block:3"],
            vec!["--risk-ip-users", "refuse:0"],
            vec!["--risk-window-secs", "0"],
            vec!["--ticket-ttl-secs", "0"],
        ] {
            assert!(parse(&args).validate().is_err(), "{args:?}");
        }
        assert!(parse(&["--risk-device-users", "off"]).validate().is_ok());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = parse(&[
            "--jwt-secret",
            "a-real-secret-0123456789",
            "--admin-token",
            "a-real-admin-token-0123456789",
        ]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("a-real-secret") && !shown.contains("a-real-admin"),
            "{shown}"
        );
    }
}
