//! The `stampede-loadgen` binary: parses the command line, builds the runtime, runs the
//! scenario from the library, prints the report. Exit status 0 when all is well, 1 on an
//! error, 3 when an audit found a violation.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stampede_loadgen::capacity::{self, CapacityArgs};
use stampede_loadgen::hello::{self, HelloArgs};
use stampede_loadgen::report::Report;
use stampede_loadgen::scenario::events::{self, EventsArgs};
use stampede_loadgen::scenario::flash::FlashCommand;
use stampede_loadgen::scenario::http::{self, HttpArgs};
use stampede_loadgen::scenario::red_packet::{self, RedPacketArgs};
use stampede_loadgen::scenario::signin::{self, SigninArgs};
use stampede_loadgen::scenario::Common;
use stampede_loadgen::{plot, EXIT_AUDIT_FAILED};

/// Drives a running Stampede engine like a crowd would, then audits what it did.
#[derive(Parser)]
#[command(name = "stampede-loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Flash sale: create it, fire the crowd's claims, wait for the queue, audit. With
    /// --payment-window the winners then pay, cancel or let their orders expire while a
    /// second wave claims what comes back, and every order's fate is audited too. With
    /// --with-events the crowd first reports behaviour events, as `events` does.
    Flash(FlashCommand),
    /// A crowd that looks before it claims: a flash sale whose users report behaviour
    /// events (mostly views) and then claim; the audit adds the campaign's funnel.
    Events(EventsArgs),
    /// Red packet: create it, fire the crowd's claims, wait for the queue, audit.
    RedPacket(RedPacketArgs),
    /// The morning sign-in rush, with racing duplicates.
    Signin(SigninArgs),
    /// Plain GET load on one URL.
    Http(HttpArgs),
    /// Average and peak QPS from daily users, and the instances they need.
    Capacity(CapacityArgs),
    /// A trivial keep-alive "Hello, world!" server (for scripts/http-vs-wrk.sh).
    #[command(hide = true)]
    Hello(HelloArgs),
}

impl Command {
    /// Runtime worker threads the command asked for.
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Flash(a) => a.sale.common.threads,
            Command::Events(a) => a.common.threads,
            Command::RedPacket(a) => a.common.threads,
            Command::Signin(a) => a.common.threads,
            Command::Http(a) => a.common.threads,
            Command::Capacity(a) => a.threads,
            Command::Hello(a) => Some(a.threads),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stampede-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = runtime(cli.command.threads()).context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Flash(a) => finish(a.run().await.context("flash run")?, &a.sale.common),
            Command::Events(a) => finish(events::run(&a).await.context("events run")?, &a.common),
            Command::RedPacket(a) => finish(
                red_packet::run(&a).await.context("red-packet run")?,
                &a.common,
            ),
            Command::Signin(a) => finish(signin::run(&a).await.context("signin run")?, &a.common),
            Command::Http(a) => finish(http::run(&a).await.context("http run")?, &a.common),
            Command::Capacity(a) => {
                let estimate = capacity::run(&a).await.context("capacity estimate")?;
                if a.json {
                    println!("{}", estimate.to_json());
                } else {
                    print!("{}", estimate.table());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Hello(a) => {
                let listener = hello::bind(a.listen).await?;
                eprintln!("hello: listening on http://{}", listener.local_addr()?);
                hello::serve(listener, async {
                    // No signal handler means run until killed, which is fine for a test target.
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// One worker thread: a current-thread runtime (no work stealing, no cross-thread wakeups),
/// which is what drives the most requests per core; more: a multi-threaded one.
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Prints the report, draws the plot, and turns the audit's verdict into the exit status.
fn finish(report: Report, common: &Common) -> anyhow::Result<ExitCode> {
    if common.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &common.plot {
        plot::write(&report, path).context("--plot")?;
    }
    if report.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_AUDIT_FAILED as u8))
    }
}
