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
/// here on are remembered for [`stop_signal`]; a second one exits at once (130),
/// without waiting for the clean close. Idempotent. Commands that never wait for a
/// signal do not call it: Ctrl-C then ends them as usual.
pub fn install() {
    if STOPPED.get().is_some() {
        return;
    }
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registering is synchronous: from here on the signals are caught. SIGINT alone
        // if SIGTERM cannot be (its default disposition then still ends the process).
        let Ok(mut int) = signal(SignalKind::interrupt()) else {
            // Could not install: leave the default disposition (it ends the process).
            return;
        };
        let mut term = signal(SignalKind::terminate()).ok();
        tokio::spawn(async move {
            let mut stops = 0u32;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    Some(_) = async {
                        match term.as_mut() {
                            Some(t) => t.recv().await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                stops += 1;
                if stops == 1 {
                    let _ = tx.send(true);
                } else {
                    // A second Ctrl-C: the user does not want to wait for a clean close
                    // (what is acknowledged is in the files already; the next open
                    // replays the oplog).
                    eprintln!("stopped again: exiting without closing the store");
                    std::process::exit(130);
                }
            }
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
