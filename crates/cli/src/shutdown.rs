//! Stop signals: Ctrl-C (SIGINT) and SIGTERM (what systemd sends), so every command can
//! close the store cleanly (`manager.close()`) instead of dying mid-write.
//!
//! Owns: turning signals into a future. Must not: close anything itself.
//! Used by: long-running commands (`share`, `follow`, `tail --follow`, `seed`,
//! `bootstrap`) and `append -`.

/// Resolves on the first Ctrl-C or SIGTERM. If the handlers cannot be installed it
/// never resolves (the default disposition then still ends the process).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
