//! Stampede's benchmarks. Nothing here is a timed test: each figure is measured side
//! by side with a baseline in the same run, and reported as a ratio.
//!
//! - `benches/engine.rs` (criterion): the claim step in the in-process store, JWT
//!   verification, the red-packet split.
//! - `src/bin/plain-claim.rs`: the baseline for claims through HTTP, a plain axum +
//!   redis-rs handler doing one EVALSHA of the same claim script per request, without
//!   anything else Stampede does; `claim-throughput.sh` drives it and `stampede api`
//!   with wrk, alternately, and prints the ratio.
//! - `src/bin/drain.rs`: fills a campaign's claim stream for `drain.sh`, which times
//!   `stampede worker` (its own process, default settings) emptying it into PostgreSQL
//!   against pgbench's 100-row inserts of the same rows on 8 connections.
