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

/// Resolves on SIGTERM or SIGINT. The handlers are registered when this is called, not when it is polled, so a
/// signal arriving right after the process announces itself starts a graceful stop instead of killing it.
///
/// # Errors
/// When the handlers cannot be installed.
pub fn os_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
