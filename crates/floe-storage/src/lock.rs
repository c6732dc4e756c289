//! Row locks: one writer per row key until its transaction ends, waits in line, deadlocks found.
//!
//! A transaction locks every key it writes (and every key `SELECT … FOR UPDATE` returns) and
//! holds the locks until it commits or rolls back; the locks are released only after the
//! commit is applied, so a waiter that wakes up sees the new version. Deadlocks are detected
//! when a wait would close a cycle in the wait-for graph; the transaction that would close it
//! gets [`StorageError::Deadlock`] (PostgreSQL's 40P01).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::codec::Key;
use crate::error::{StorageError, StorageResult};

/// A transaction's identity for locking.
pub type TxnId = u64;

#[derive(Debug)]
struct Owner {
    txn: TxnId,
    released: Arc<Notify>,
}

#[derive(Debug, Default)]
struct LockTable {
    /// A keyed fast hash (SipHash dominated bulk loads; keys come from users, so keyed).
    owners: HashMap<(u32, Key), Owner, ahash::RandomState>,
    waits_for: HashMap<TxnId, TxnId>,
}

/// The row-lock table of a database.
#[derive(Debug, Default)]
pub struct LockManager {
    table: Mutex<LockTable>,
}

/// Removes a waiter's wait-for edge however its wait ends (woken, cancelled, timed out).
struct WaitEdge<'a> {
    manager: &'a LockManager,
    txn: TxnId,
}

impl Drop for WaitEdge<'_> {
    fn drop(&mut self) {
        self.manager.table.lock().waits_for.remove(&self.txn);
    }
}

impl LockManager {
    /// Locks `key` of `table` for `txn`, waiting while another transaction holds it (at most
    /// `timeout`, else [`StorageError::LockTimeout`]). Returns `true` if the lock is new to
    /// `txn` (the caller must release it), `false` if `txn` already held it.
    pub async fn lock(
        &self,
        txn: TxnId,
        table: u32,
        key: &Key,
        timeout: Option<std::time::Duration>,
    ) -> StorageResult<bool> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let lock_key = (table, key.clone());
        loop {
            let released = {
                let mut t = self.table.lock();
                let owner = match t.owners.get(&lock_key) {
                    None => {
                        t.owners.insert(
                            lock_key,
                            Owner {
                                txn,
                                released: Arc::new(Notify::new()),
                            },
                        );
                        return Ok(true);
                    }
                    Some(owner) if owner.txn == txn => return Ok(false),
                    Some(owner) => owner,
                };
                let (blocker, released) = (owner.txn, owner.released.clone());
                if let Some(cycle) = cycle_through(&t.waits_for, txn, blocker) {
                    return Err(StorageError::Deadlock { detail: cycle });
                }
                t.waits_for.insert(txn, blocker);
                released
            };
            let _edge = WaitEdge { manager: self, txn };
            let notified = released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The owner may have released between our check and `enable`.
            let still_held = self
                .table
                .lock()
                .owners
                .get(&lock_key)
                .is_some_and(|o| Arc::ptr_eq(&o.released, &released));
            if still_held {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, notified)
                        .await
                        .map_err(|_| StorageError::LockTimeout)?,
                    None => notified.await,
                }
            }
        }
    }

    /// Locks `key` of `table` for `txn` if no other transaction holds it (NOWAIT, SKIP
    /// LOCKED). `None`: another transaction holds it; `Some(new)` as for [`LockManager::lock`].
    pub fn try_lock(&self, txn: TxnId, table: u32, key: &Key) -> Option<bool> {
        let mut t = self.table.lock();
        match t.owners.get(&(table, key.clone())) {
            Some(owner) if owner.txn == txn => Some(false),
            Some(_) => None,
            None => {
                t.owners.insert(
                    (table, key.clone()),
                    Owner {
                        txn,
                        released: Arc::new(Notify::new()),
                    },
                );
                Some(true)
            }
        }
    }

    /// Locks every key of `keys` that no other transaction holds, under one acquisition of the
    /// lock table (bulk loads). Keys newly locked are appended to `newly` (the caller must
    /// release them); the keys another transaction holds are returned, for the caller to wait
    /// for one by one with [`LockManager::lock`]. The new locks share one wake-up signal: a
    /// transaction releases all its locks at once, so waiters lose nothing by it.
    pub fn try_lock_many<'a>(
        &self,
        txn: TxnId,
        table: u32,
        keys: impl IntoIterator<Item = &'a Key>,
        newly: &mut Vec<(u32, Key)>,
    ) -> Vec<Key> {
        let released = Arc::new(Notify::new());
        let mut busy = Vec::new();
        let mut t = self.table.lock();
        for key in keys {
            match t.owners.entry((table, key.clone())) {
                std::collections::hash_map::Entry::Occupied(owner) => {
                    if owner.get().txn != txn {
                        busy.push(key.clone());
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Owner {
                        txn,
                        released: released.clone(),
                    });
                    newly.push((table, key.clone()));
                }
            }
        }
        busy
    }

    /// Whether `txn` holds the lock on `key`.
    pub fn holds(&self, txn: TxnId, table: u32, key: &Key) -> bool {
        self.table
            .lock()
            .owners
            .get(&(table, key.clone()))
            .is_some_and(|o| o.txn == txn)
    }

    /// Releases `txn`'s locks on `keys` and wakes their waiters.
    pub fn release(&self, txn: TxnId, keys: impl IntoIterator<Item = (u32, Key)>) {
        let mut t = self.table.lock();
        let mut last: Option<Arc<Notify>> = None;
        for key in keys {
            if let std::collections::hash_map::Entry::Occupied(owner) = t.owners.entry(key) {
                if owner.get().txn == txn {
                    let owner = owner.remove();
                    // Keys locked together share a signal: notify it once per run.
                    if !last
                        .as_ref()
                        .is_some_and(|l| Arc::ptr_eq(l, &owner.released))
                    {
                        owner.released.notify_waiters();
                        last = Some(owner.released);
                    }
                }
            }
        }
    }
}

/// If `txn` waiting for `blocker` closes a cycle, a description of it.
fn cycle_through(waits_for: &HashMap<TxnId, TxnId>, txn: TxnId, blocker: TxnId) -> Option<String> {
    let mut path = vec![txn, blocker];
    let mut current = blocker;
    while let Some(&next) = waits_for.get(&current) {
        if next == txn {
            path.push(txn);
            let steps: Vec<String> = path
                .windows(2)
                .map(|w| format!("Transaction {} waits for transaction {}.", w[0], w[1]))
                .collect();
            return Some(steps.join(" "));
        }
        if path.contains(&next) {
            return None;
        }
        path.push(next);
        current = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(s: &str) -> Key {
        Arc::from(s.as_bytes())
    }

    #[tokio::test]
    async fn second_locker_waits_for_release() {
        let locks = Arc::new(LockManager::default());
        assert!(locks.lock(1, 7, &key("a"), None).await.unwrap());
        assert!(!locks.lock(1, 7, &key("a"), None).await.unwrap());
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock(2, 7, &key("a"), None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        locks.release(1, [(7, key("a"))]);
        assert!(waiter.await.unwrap().unwrap());
        assert!(locks.holds(2, 7, &key("a")));
    }

    #[tokio::test]
    async fn deadlocks_are_detected() {
        let locks = Arc::new(LockManager::default());
        locks.lock(1, 7, &key("a"), None).await.unwrap();
        locks.lock(2, 7, &key("b"), None).await.unwrap();
        let l1 = locks.clone();
        let t1 = tokio::spawn(async move { l1.lock(1, 7, &key("b"), None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = locks.lock(2, 7, &key("a"), None).await.unwrap_err();
        assert!(matches!(err, StorageError::Deadlock { .. }), "{err:?}");
        locks.release(2, [(7, key("b"))]);
        assert!(t1.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_edge() {
        let locks = Arc::new(LockManager::default());
        locks.lock(1, 7, &key("a"), None).await.unwrap();
        let a = key("a");
        let wait = tokio::time::timeout(Duration::from_millis(20), locks.lock(2, 7, &a, None));
        assert!(wait.await.is_err());
        assert!(locks.table.lock().waits_for.is_empty());
    }

    #[tokio::test]
    async fn a_wait_past_the_lock_timeout_fails_and_leaves_no_edge() {
        let locks = Arc::new(LockManager::default());
        locks.lock(1, 7, &key("a"), None).await.unwrap();
        let err = locks
            .lock(2, 7, &key("a"), Some(Duration::from_millis(20)))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::LockTimeout), "{err:?}");
        assert!(locks.table.lock().waits_for.is_empty());
        // A free key is taken at once, timeout or not.
        assert!(locks
            .lock(2, 7, &key("b"), Some(Duration::from_millis(1)))
            .await
            .unwrap());
    }
}
