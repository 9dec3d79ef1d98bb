//! The shutdown signal passed to every long-running task: a `watch` channel that turns `true` once.

use tokio::sync::watch;

/// Sender side: `send(true)` starts the shutdown.
pub type Trigger = watch::Sender<bool>;
/// Receiver side, cloned into each task.
pub type Signal = watch::Receiver<bool>;

/// A new trigger and its signal.
pub fn channel() -> (Trigger, Signal) {
    watch::channel(false)
}

/// Resolves once shutdown has started (or the trigger is gone).
pub async fn stopped(signal: &mut Signal) {
    // Map the guard away at once: it must not be held across an await (it is not `Send`).
    let _ = signal.wait_for(|down| *down).await.map(|_| ());
}
