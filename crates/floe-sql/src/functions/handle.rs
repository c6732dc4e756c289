//! What a statement's functions reach of their session while the statement runs.
//!
//! DataFusion evaluates functions with no session in sight. The functions that act on the
//! session — advisory locks, held by the session ([`super::advisory`]), and `set_config`, which
//! changes its settings ([`super::settings`]) — are registered on the engine as placeholders
//! that only plan ([`placeholders`]); after planning, the session binds every call in its plan
//! to an instance that carries its [`SessionHandle`] ([`bind`]). Plans stay per session (the
//! statement cache and prepared statements are the session's own), so a bound plan never runs
//! for another session.
//!
//! The functions leave what the session must do in the handle, and the session picks it up
//! when the statement ends ([`crate::Session::finish_statement`], which the wire layer calls
//! once the statement's last row is sent or it failed):
//! - `set_config` changes are applied like `SET` / `SET LOCAL`, in call order, only if the
//!   statement succeeded (PostgreSQL undoes them with a failed statement's transaction);
//! - warnings (`pg_advisory_unlock` of a lock not held) become the statement's notices;
//! - transaction-level advisory locks taken outside a transaction block are released (the
//!   statement was their transaction); inside a block they go when it commits or rolls back.
//!
//! Consequence: a `set_config` is seen by the statements after it, not later in its own
//! statement (`current_setting` is a plan-time constant, [`crate::rewrite`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF};
use floe_storage::advisory::{AdvisoryKey, AdvisoryNumber, LockMode, LockScope};
use floe_storage::{Db, StorageError};

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::session::Notice;
use crate::vars::SessionVars;

/// A `set_config` call's change, applied when its statement ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingChange {
    /// The parameter.
    pub name: String,
    /// The new value; `None` resets it (`set_config(name, NULL, …)`).
    pub value: Option<String>,
    /// `SET LOCAL`: until the end of the transaction.
    pub local: bool,
}

/// What the session picks up at the end of a statement.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub settings: Vec<SettingChange>,
    pub notices: Vec<Notice>,
}

/// The part of a session its bound functions can reach (see the module doc).
#[derive(Debug)]
pub(crate) struct SessionHandle {
    /// The session's backend pid: the holder of its advisory locks.
    pid: i32,
    /// The OID of the session's database: advisory lock keys are per database.
    database: u32,
    db: Arc<Db>,
    /// The session's settings as they were at connection start: `set_config` validates a
    /// value and finds the text it reports on a copy of them.
    startup_vars: SessionVars,
    /// The session's `lock_timeout` in milliseconds (0: none), kept current by the session.
    lock_timeout_ms: AtomicU64,
    /// Whether something waits in `effects` or transaction-level locks to release: one
    /// atomic load per statement when nothing does.
    pending: AtomicBool,
    /// Whether the session may hold transaction-level advisory locks.
    xact_locks: AtomicBool,
    effects: Mutex<Effects>,
}

impl SessionHandle {
    pub(crate) fn new(
        pid: i32,
        database: u32,
        db: Arc<Db>,
        startup_vars: SessionVars,
    ) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            pid,
            database,
            db,
            lock_timeout_ms: AtomicU64::new(millis(startup_vars.lock_timeout())),
            startup_vars,
            pending: AtomicBool::new(false),
            xact_locks: AtomicBool::new(false),
            effects: Mutex::new(Effects::default()),
        })
    }

    fn effects(&self) -> MutexGuard<'_, Effects> {
        self.effects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows the session's `lock_timeout`.
    pub(crate) fn set_lock_timeout(&self, timeout: Option<Duration>) {
        self.lock_timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
    }

    /// What the functions of the statement that just ended left for the session, if anything.
    pub(crate) fn take_effects(&self) -> Option<Effects> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(std::mem::take(&mut *self.effects()))
    }

    /// Releases the session's transaction-level advisory locks (its transaction ended).
    pub(crate) fn end_transaction(&self) {
        if self.xact_locks.swap(false, Ordering::AcqRel) {
            self.db.advisory_locks().release_transaction(self.pid);
        }
    }

    /// Releases every advisory lock of the session (it ended).
    pub(crate) fn end_session(&self) {
        self.db.advisory_locks().release_holder(self.pid);
    }

    /// Releases the session-level advisory locks (`pg_advisory_unlock_all`, `DISCARD ALL`).
    pub(crate) fn unlock_all(&self) {
        self.db.advisory_locks().unlock_all(self.pid);
    }

    /// Takes an advisory lock, waiting at most `lock_timeout` (the statement's cancellation
    /// and `statement_timeout` end the wait by dropping this future).
    pub(crate) async fn lock(
        &self,
        number: AdvisoryNumber,
        mode: LockMode,
        scope: LockScope,
    ) -> SqlResult<()> {
        let key = self.key(number);
        let wait = self.db.advisory_locks().lock(self.pid, key, mode, scope);
        match self.lock_timeout_ms.load(Ordering::Relaxed) {
            0 => wait.await?,
            ms => tokio::time::timeout(Duration::from_millis(ms), wait)
                .await
                .map_err(|_| StorageError::LockTimeout)??,
        }
        self.note_granted(scope);
        Ok(())
    }

    /// Takes an advisory lock if no other session holds it in a conflicting mode.
    pub(crate) fn try_lock(
        &self,
        number: AdvisoryNumber,
        mode: LockMode,
        scope: LockScope,
    ) -> bool {
        let granted = self
            .db
            .advisory_locks()
            .try_lock(self.pid, self.key(number), mode, scope);
        if granted {
            self.note_granted(scope);
        }
        granted
    }

    fn key(&self, number: AdvisoryNumber) -> AdvisoryKey {
        AdvisoryKey {
            database: self.database,
            number,
        }
    }

    fn note_granted(&self, scope: LockScope) {
        if scope == LockScope::Transaction {
            self.xact_locks.store(true, Ordering::Release);
            self.pending.store(true, Ordering::Release);
        }
    }

    /// Releases one session-level hold; warns (as PostgreSQL does) if there is none.
    pub(crate) fn unlock(&self, number: AdvisoryNumber, mode: LockMode) -> bool {
        let released = self
            .db
            .advisory_locks()
            .unlock(self.pid, self.key(number), mode);
        if !released {
            self.notice(Notice {
                severity: "WARNING",
                code: sqlstate::WARNING,
                message: format!("you don't own a lock of type {}", mode.pg_name()),
            });
        }
        released
    }

    fn notice(&self, notice: Notice) {
        self.effects().notices.push(notice);
        self.pending.store(true, Ordering::Release);
    }

    /// `set_config(name, value, is_local)`: checks the change, records it for the end of the
    /// statement and returns the value as `current_setting` will show it.
    pub(crate) fn set_config(
        &self,
        name: &str,
        value: Option<&str>,
        local: bool,
    ) -> SqlResult<String> {
        let mut scratch = self.startup_vars.clone();
        match value {
            Some(value) => scratch.set(name, value)?,
            None => scratch.reset(name)?,
        };
        let shown = scratch.get_opt(name).unwrap_or_default();
        self.effects().settings.push(SettingChange {
            name: name.to_string(),
            value: value.map(str::to_string),
            local,
        });
        self.pending.store(true, Ordering::Release);
        Ok(shown)
    }
}

/// A timeout in milliseconds, 0 for none.
fn millis(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| t.as_millis().max(1) as u64)
}

/// Whether `name` is a function the session must bind.
fn is_session_function(name: &str) -> bool {
    name == super::settings::SET_CONFIG || super::advisory::is_advisory(name)
}

/// The planning-only placeholders of the session functions, for the engine's registry.
pub(crate) fn placeholders() -> Vec<ScalarUDF> {
    let mut udfs = super::advisory::udfs(None);
    udfs.push(super::settings::set_config_udf(None));
    udfs
}

/// The session's own instance of session function `name`.
fn bound(name: &str, handle: &Arc<SessionHandle>) -> Option<ScalarUDF> {
    if name == super::settings::SET_CONFIG {
        return Some(super::settings::set_config_udf(Some(handle.clone())));
    }
    super::advisory::udf(name, Some(handle.clone()))
}

/// Binds the session function calls of `plan` to `handle` (see the module doc).
pub(crate) fn bind(plan: LogicalPlan, handle: &Arc<SessionHandle>) -> SqlResult<LogicalPlan> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| {
                if matches!(e, Expr::ScalarFunction(f) if is_session_function(f.name())) {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if !found {
        return Ok(plan);
    }
    let bound_plan = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::ScalarFunction(f) if is_session_function(f.name()) => {
                    match bound(f.name(), handle) {
                        Some(udf) => Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(Arc::new(udf), f.args),
                        ))),
                        None => Ok(Transformed::no(Expr::ScalarFunction(f))),
                    }
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(bound_plan.data)
}

/// The error of a session function that runs unbound (a plan path that skipped [`bind`]).
pub(crate) fn unbound(name: &str) -> datafusion::error::DataFusionError {
    SqlError::not_supported(format!("{name}() cannot be used here")).into()
}
