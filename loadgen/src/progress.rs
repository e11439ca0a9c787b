//! The live progress line on stderr.
//!
//! Silent for the first second, so short runs print nothing; then one line per second with
//! the elapsed time, replies, errors and the last second's rate. On a terminal the line
//! rewrites itself in place; in a log it is one line per second.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::recorder::Live;

/// A running progress printer; [`Progress::stop`] ends it and finishes the line.
pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing if `enabled`; a disabled one costs nothing.
    pub fn start(live: Arc<Live>, label: String, enabled: bool) -> Self {
        if !enabled {
            return Self {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await; // the first tick fires at once; skip it
            let mut previous = 0;
            let mut printed = false;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = &mut stopped => break,
                }
                let replies = live.replies.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let line = format!(
                    "[{label} {:>4.0}s] {replies} replies, {errors} errors, {} req/s",
                    live.start.elapsed().as_secs_f64(),
                    replies.saturating_sub(previous)
                );
                previous = replies;
                let mut err = std::io::stderr().lock();
                // Progress is best effort: a closed stderr must not stop the run.
                let _ = if tty {
                    write!(err, "\r\x1b[2K{line}")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
                printed = true;
            }
            if printed && tty {
                let _ = writeln!(std::io::stderr());
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops printing and waits for the line to be finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
