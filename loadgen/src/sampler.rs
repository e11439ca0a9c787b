//! Samples a campaign's stats in the background while a run goes on.
//!
//! Some invariants hold "at every moment" (units sold = paid + pending orders), so checking
//! them once at the end proves little: a unit counted twice for a second and then put right
//! would pass. The sampler polls `GET /v1/admin/campaigns/{id}/stats` every
//! [`SAMPLE_EVERY`] on its own admin connection, keeps every sample for the audit, and
//! publishes the latest one on a `watch` channel (the second wave reads the stock left
//! from it instead of polling on its own).

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::wire::Stats;

/// How often the stats are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// What the sampler collected.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Every stats reply, in order.
    pub stats: Vec<Stats>,
    /// Stats calls that failed (no reply, not 200, not JSON); they are not samples.
    pub errors: u64,
}

/// A running sampler; [`Sampler::stop`] ends it and hands back the samples.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Samples>,
    /// The latest sample and its number (1 for the first).
    latest: watch::Receiver<Option<(u64, Stats)>>,
}

impl Sampler {
    /// Starts sampling `campaign` through `admin` (which the sampler owns from now on).
    pub fn start(mut admin: Admin, campaign: u64, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let (publish, latest) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut ticker = tokio::time::interval(every);
            // A slow stats call must not be followed by a burst of catch-up calls.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticker.tick() => {}
                }
                match admin.stats(campaign).await {
                    Ok(stats) => {
                        samples.stats.push(stats.clone());
                        publish.send_replace(Some((samples.stats.len() as u64, stats)));
                    }
                    Err(_) => samples.errors += 1,
                }
            }
            samples
        });
        Self { stop, task, latest }
    }

    /// The latest sample with its number, 1 for the first (`None` before the first one).
    /// A sample numbered two past the one seen when a round of requests ended was taken
    /// after that round.
    pub fn latest(&self) -> Option<(u64, Stats)> {
        self.latest.borrow().clone()
    }

    /// Stops sampling and returns what was collected.
    pub async fn stop(self) -> Samples {
        // The task may have ended already; then the send fails and the join still works.
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
