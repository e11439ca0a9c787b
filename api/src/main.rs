//! `stampede`: one binary for the whole engine. Thin: parse the command line, start
//! logging, hand over to `startup` (or `catalog` for `export-catalog`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stampede_api::catalog;
use stampede_api::config::Config;
use stampede_api::startup::{self, Mode};
use stampede_engine::auth::Auth;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "stampede", version, about = "Flash-sale and red-packet engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the queue workers in one process (embedded when no Redis is configured).
    Serve(Config),
    /// Run only the API (needs STAMPEDE_REDIS_URL).
    Api(Config),
    /// Run only the queue workers (needs STAMPEDE_REDIS_URL).
    Worker(Config),
    /// Print a user JWT signed with the configured secret.
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// The optional `account_created_at` claim (unix seconds), for the account-age rule.
        #[arg(long)]
        account_created_at: Option<i64>,
        #[command(flatten)]
        config: Config,
    },
    /// Apply the database migrations and exit.
    Migrate(Config),
    /// Write the campaigns not yet ended as static JSON files for a CDN or web server
    /// (`campaigns.json` and `campaigns/{id}.json`, each replaced atomically).
    ExportCatalog {
        /// The directory to write into (created when missing).
        #[arg(long)]
        out: PathBuf,
        /// Keep running and rewrite the files within a second of a change, until SIGTERM
        /// or ctrl-c.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        config: Config,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if let Command::Serve(c)
    | Command::Api(c)
    | Command::Worker(c)
    | Command::Migrate(c)
    | Command::ExportCatalog { config: c, .. } = &command
    {
        stampede_api::telemetry::init_logs(c.log_format);
    }
    let (config, mode) = match command {
        Command::Serve(c) => (c, Mode::Serve),
        Command::Api(c) => (c, Mode::Api),
        Command::Worker(c) => (c, Mode::Worker),
        Command::Token {
            user,
            ttl,
            account_created_at,
            config,
        } => {
            let auth = Auth::new(config.jwt_secret(), config.admin_token());
            let token = auth
                .mint_with_account_age(&user, ttl, account_created_at)
                .map_err(|_| {
                    anyhow::anyhow!("--user must be 1-64 characters of A-Z a-z 0-9 _ . -")
                })?;
            println!("{token}");
            return Ok(());
        }
        Command::Migrate(c) => {
            let db = stampede_engine::db::Database::connect(&c.database_url, 1)
                .await
                .context("opening the database")?;
            db.migrate().await.context("applying migrations")?;
            println!("migrations applied");
            return Ok(());
        }
        Command::ExportCatalog { out, watch, config } => {
            let stop = CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                startup::signal().await;
                on_signal.cancel();
            });
            return catalog::run(&config, &out, watch, stop).await;
        }
    };
    let running = startup::start(&config, mode, None).await?;
    if let Some(addr) = running.addr {
        tracing::info!(%addr, ?mode, "stampede listening");
    }
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        startup::signal().await;
        tracing::info!("shutdown signal received");
        stop.cancel();
    });
    running.wait().await
}
