//! Interruption, handled in one place: the first Ctrl-C (or SIGTERM) asks the run to stop
//! gracefully — the current condition ends, QEMU is killed, the partial report is written and
//! the exit code is 130; a second Ctrl-C exits at once (QEMU still dies: see `qemu::process`).

use std::sync::Arc;
use tokio::sync::watch;

/// A cancellation flag that async code can also wait on.
#[derive(Clone, Debug)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Cancel {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once cancelled (at once if already).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in self, so this only ends by cancellation.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Listen for SIGINT/SIGTERM on the current tokio runtime (call it inside the runtime's
/// context). The handlers are in place when this returns, not when the listening task first
/// runs: a signal from then on sets `cancel` instead of ending the process.
pub fn install(cancel: Cancel) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("bootaudit: warning: cannot listen for Ctrl-C: it ends the run without a report");
        return;
    };
    tokio::spawn(async move {
        let mut presses = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            presses += 1;
            if presses == 1 {
                eprintln!("\nbootaudit: interrupted — stopping QEMU and writing the partial report (press Ctrl-C again to quit at once)");
                cancel.cancel();
            } else {
                eprintln!("\nbootaudit: quitting at once");
                crate::qemu::process::kill_all_now();
                crate::cleanup::remove_owned_now();
                std::process::exit(crate::exit_codes::INTERRUPTED);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelled_resolves_after_cancel() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.cancelled().await });
        c.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(c.is_cancelled());
        // Already cancelled: resolves at once.
        tokio::time::timeout(std::time::Duration::from_millis(100), c.cancelled())
            .await
            .unwrap();
    }
}
