//! A transaction's pending catalog: the DDL it ran that is not committed yet.
//!
//! DDL inside a transaction block does not touch the shared catalog. Each change goes into the
//! transaction's [`PendingCatalog`] (through [`crate::Txn::change_catalog`]), together with
//! the live state the session must use for the tables it creates, redefines or drops. At
//! COMMIT the changes travel in the transaction's one commit request with its rows, so they
//! are written in the same RocksDB batch and applied together; ROLLBACK (or dropping the
//! transaction) just forgets them, and ROLLBACK TO SAVEPOINT truncates them to a mark.
//!
//! Visibility: the session that owns the transaction runs its statements inside
//! [`with_pending_catalog`] (a tokio task-local). While a non-empty pending catalog is in
//! scope, [`crate::Db::catalog`] answers the *effective* catalog — the newest committed one
//! with the pending changes applied on top (cached until either side changes) — and
//! [`crate::Db::table`] answers the pending live state of the tables the transaction changed.
//! Every other task (other sessions, the committer, checkpoints) sees the committed catalog
//! only. Outside a transaction block nothing is in scope, and with an empty pending catalog the
//! cost is one task-local read and one atomic load.
//!
//! Invariant: the pending changes apply cleanly on top of any later committed catalog because
//! the transaction holds the DDL name locks ([`crate::Txn::lock_name`]) of every object it
//! changes until it ends, so no other transaction can change those names meanwhile; the
//! committer still re-checks names at commit ([`crate::StorageError::DuplicateTable`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::{Catalog, CatalogChange};
use crate::table::TableData;

tokio::task_local! {
    static SESSION_PENDING: Arc<PendingCatalog>;
}

/// Runs `future` with `pending` as the session's pending catalog (see the module docs).
pub async fn with_pending_catalog<F: Future>(pending: Arc<PendingCatalog>, future: F) -> F::Output {
    SESSION_PENDING.scope(pending, future).await
}

/// Runs `f` synchronously with `pending` in scope (for polling a result stream).
pub fn sync_with_pending_catalog<R>(pending: Arc<PendingCatalog>, f: impl FnOnce() -> R) -> R {
    SESSION_PENDING.sync_scope(pending, f)
}

/// The pending catalog in scope, if it holds any change.
pub(crate) fn current() -> Option<Arc<PendingCatalog>> {
    SESSION_PENDING
        .try_with(|p| p.active.load(Ordering::Acquire).then(|| p.clone()))
        .ok()
        .flatten()
}

/// The live state of one table as the pending catalog sees it: `Some` for a table created or
/// redefined by the transaction, `None` for one it dropped.
pub(crate) type PendingTable = Option<Arc<TableData>>;

/// A transaction's uncommitted catalog changes (see the module docs).
#[derive(Debug, Default)]
pub struct PendingCatalog {
    /// Whether `state.changes` is non-empty (read without the mutex on every lookup).
    active: AtomicBool,
    state: Mutex<PendingState>,
}

#[derive(Debug, Default)]
struct PendingState {
    changes: Vec<CatalogChange>,
    tables: HashMap<u32, PendingTable>,
    /// How to undo each entry of `tables`: (length of `changes` before it, table id, entry
    /// before it).
    table_undo: Vec<(usize, u32, Option<PendingTable>)>,
    /// (committed catalog, effective catalog computed over it).
    cached: Option<(Arc<Catalog>, Arc<Catalog>)>,
}

impl PendingCatalog {
    /// Whether the transaction changed the catalog.
    pub fn is_empty(&self) -> bool {
        !self.active.load(Ordering::Acquire)
    }

    /// Adds a change; `table` is the new live state of the table it concerns, if any.
    pub(crate) fn push(&self, change: CatalogChange, table: Option<(u32, PendingTable)>) {
        let mut state = self.state.lock();
        if let Some((id, data)) = table {
            let mark = state.changes.len();
            let before = state.tables.insert(id, data);
            state.table_undo.push((mark, id, before));
        }
        state.changes.push(change);
        state.cached = None;
        self.active.store(true, Ordering::Release);
    }

    /// A position to roll back to.
    pub(crate) fn mark(&self) -> usize {
        self.state.lock().changes.len()
    }

    /// Forgets every change made after `mark`; whether any was.
    pub(crate) fn rollback_to(&self, mark: usize) -> bool {
        let mut state = self.state.lock();
        if state.changes.len() <= mark {
            return false;
        }
        state.changes.truncate(mark);
        while state
            .table_undo
            .last()
            .is_some_and(|(at, _, _)| *at >= mark)
        {
            let Some((_, id, before)) = state.table_undo.pop() else {
                break;
            };
            match before {
                Some(data) => state.tables.insert(id, data),
                None => state.tables.remove(&id),
            };
        }
        state.cached = None;
        self.active
            .store(!state.changes.is_empty(), Ordering::Release);
        true
    }

    /// Takes every change (for the commit) and the ids of the tables the transaction dropped.
    pub(crate) fn take(&self) -> (Vec<CatalogChange>, Vec<u32>) {
        let mut state = self.state.lock();
        let state = std::mem::take(&mut *state);
        self.active.store(false, Ordering::Release);
        let dropped = state
            .tables
            .into_iter()
            .filter(|(_, data)| data.is_none())
            .map(|(id, _)| id)
            .collect();
        (state.changes, dropped)
    }

    /// The pending live state of table `id`: `None` when the transaction did not change it.
    pub(crate) fn table(&self, id: u32) -> Option<PendingTable> {
        self.state.lock().tables.get(&id).cloned()
    }

    /// `committed` with the pending changes applied.
    pub(crate) fn effective(&self, committed: Arc<Catalog>) -> Arc<Catalog> {
        let mut state = self.state.lock();
        if let Some((base, effective)) = &state.cached {
            if Arc::ptr_eq(base, &committed) {
                return effective.clone();
            }
        }
        let mut catalog = (*committed).clone();
        for change in &state.changes {
            catalog.apply(change);
        }
        let effective = Arc::new(catalog);
        state.cached = Some((committed, effective.clone()));
        effective
    }
}
