//! Backend keys, query cancellation, and the shutdown signal every connection watches.
//!
//! Each connection registers its backend pid with a random secret (sent to the client in
//! BackendKeyData). A CancelRequest arriving on another socket with a matching pair cancels
//! the statement running at that moment, if any — like PostgreSQL, a cancel that arrives
//! between statements is ignored.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};

/// Why a running statement should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// A CancelRequest from the client.
    User,
    /// The server is shutting down and the grace period is over.
    Shutdown,
}

/// Per-connection control block shared with the registry.
#[derive(Debug)]
pub(crate) struct ConnControl {
    secret: i32,
    busy: AtomicBool,
    cancel_requested: Mutex<Option<CancelReason>>,
    notify: Notify,
    idle: Notify,
    /// When the last statement ended (or the connection started): the start of the idle time
    /// `idle_in_transaction_session_timeout` measures.
    last_end: Mutex<std::time::Instant>,
}

impl ConnControl {
    /// Marks the start of a statement (clears stale cancel requests).
    pub(crate) fn begin(&self) {
        *self
            .cancel_requested
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.busy.store(true, Ordering::SeqCst);
    }

    /// Marks the end of a statement.
    pub(crate) fn end(&self) {
        *self.last_end.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        self.busy.store(false, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    /// How long the connection has been idle (zero while a statement runs).
    pub(crate) fn idle_for(&self) -> std::time::Duration {
        if self.is_busy() {
            return std::time::Duration::ZERO;
        }
        self.last_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Resolves when the next statement ends (the future is armed before it is returned, so
    /// a statement ending right after the call is not missed).
    pub(crate) fn next_end(&self) -> impl std::future::Future<Output = ()> + '_ {
        let mut notified = Box::pin(self.idle.notified());
        notified.as_mut().enable();
        notified
    }

    /// Whether a statement is running.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Asks the running statement (if any) to stop.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        if self.is_busy() {
            *self
                .cancel_requested
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(reason);
            self.notify.notify_waiters();
        }
    }

    /// Resolves when the running statement is asked to stop.
    pub(crate) async fn cancelled(&self) -> CancelReason {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = *self
                .cancel_requested
                .lock()
                .unwrap_or_else(|e| e.into_inner())
            {
                return reason;
            }
            notified.await;
        }
    }

    /// Resolves once no statement is running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_busy() {
                return;
            }
            notified.await;
        }
    }
}

/// All live connections, by backend pid, plus the server-wide shutdown flag.
#[derive(Debug)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<i32, Arc<ConnControl>>>,
    shutdown_tx: watch::Sender<bool>,
    count: AtomicUsize,
    random: RandomState,
}

impl Registry {
    pub(crate) fn new() -> Arc<Registry> {
        let (shutdown_tx, _) = watch::channel(false);
        Arc::new(Registry {
            conns: Mutex::new(HashMap::new()),
            shutdown_tx,
            count: AtomicUsize::new(0),
            random: RandomState::new(),
        })
    }

    fn secret_for(&self, pid: i32) -> i32 {
        let mut hasher = self.random.build_hasher();
        hasher.write_i32(pid);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        hasher.write_u128(nanos);
        hasher.finish() as i32
    }

    /// Registers a connection; the returned guard unregisters it when dropped.
    pub(crate) fn register(self: &Arc<Self>, pid: i32) -> Registration {
        let control = Arc::new(ConnControl {
            secret: self.secret_for(pid),
            busy: AtomicBool::new(false),
            cancel_requested: Mutex::new(None),
            notify: Notify::new(),
            idle: Notify::new(),
            last_end: Mutex::new(std::time::Instant::now()),
        });
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, control.clone());
        Registration {
            registry: self.clone(),
            pid,
            control,
        }
    }

    /// Handles a CancelRequest: cancels only when pid and secret match.
    pub(crate) fn cancel(&self, pid: i32, secret: i32) -> bool {
        let control = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .cloned();
        match control {
            Some(c) if c.secret == secret => {
                c.cancel(CancelReason::User);
                true
            }
            _ => false,
        }
    }

    /// Number of open client connections (for limits and metrics).
    pub(crate) fn connection_count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// A connection task started (counts sockets, even before startup completes).
    pub(crate) fn connection_opened(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// A connection task ended.
    pub(crate) fn connection_closed(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Starts shutdown: every connection closes once it is idle.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// A receiver that turns true when shutdown begins.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }
}

/// A registered connection; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    pid: i32,
    control: Arc<ConnControl>,
}

impl Registration {
    pub(crate) fn secret(&self) -> i32 {
        self.control.secret
    }

    pub(crate) fn control(&self) -> &Arc<ConnControl> {
        &self.control
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cancel_needs_the_right_secret_and_a_running_statement() {
        let registry = Registry::new();
        let reg = registry.register(7);
        let control = reg.control().clone();
        // Nothing running: a cancel is a no-op and does not leak into the next statement.
        assert!(registry.cancel(7, reg.secret()));
        control.begin();
        let waiter = {
            let c = control.clone();
            tokio::spawn(async move { c.cancelled().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!registry.cancel(7, reg.secret().wrapping_add(1)));
        assert!(!waiter.is_finished());
        assert!(registry.cancel(7, reg.secret()));
        assert_eq!(waiter.await.unwrap(), CancelReason::User);
        control.end();
        drop(reg);
        assert!(!registry.cancel(7, 0));
    }
}
