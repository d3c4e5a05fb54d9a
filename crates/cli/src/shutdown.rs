//! Stop signals: Ctrl-C (SIGINT) and SIGTERM (what systemd sends), so every command can
//! close the store cleanly (`manager.close()`) instead of dying mid-write.
//!
//! Owns: turning signals into a future. Must not: close anything itself.
//! Used by: long-running commands (`share`, `follow`, `tail --follow`, `seed`,
//! `bootstrap`) and `append -`, which call [`install`] before they print or open
//! anything: a signal that arrives before the command first waits on [`stop_signal`]
//! (it prints its first line, then the signal comes) is kept, not lost to the default
//! disposition that would kill the process with the store open.

use std::sync::OnceLock;

use tokio::sync::watch;

/// Set once the handlers are installed: turns true at the first stop signal.
static STOPPED: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Installs the SIGINT and SIGTERM handlers now (inside the runtime), so signals from
/// here on are remembered for [`stop_signal`]. Idempotent. Commands that never wait
/// for a signal do not call it: Ctrl-C then ends them as usual.
pub fn install() {
    if STOPPED.get().is_some() {
        return;
    }
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registering is synchronous: from here on the signals are caught.
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            // Could not install: leave the default disposition (it ends the process).
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
    }
    let _ = STOPPED.set(rx);
}

/// Resolves on the first Ctrl-C or SIGTERM since [`install`] (installing the handlers
/// now if it was not called). If the handlers cannot be installed it never resolves
/// (the default disposition then still ends the process).
pub async fn stop_signal() {
    install();
    let Some(rx) = STOPPED.get() else {
        return std::future::pending().await;
    };
    let mut rx = rx.clone();
    if rx.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}
