//! Advisory locks: application-defined locks on numbers (`pg_advisory_lock` and friends).
//!
//! A lock is named by a key — a database and one `bigint` or two `integer`s (two separate key
//! spaces), as in PostgreSQL — and held by a session (its backend pid) in shared or exclusive mode, at session
//! level (until unlocked or the session ends) or transaction level (until the transaction
//! ends). Holds are counted: a session that locks a key twice must unlock it twice.
//!
//! Invariants a reader must keep:
//! - a session's own holds never conflict with each other: it may take any mode on a key it
//!   already holds, whatever others wait for;
//! - an exclusive hold excludes every other session's hold; shared holds exclude only other
//!   sessions' exclusive ones;
//! - every wait is recorded in the wait-for graph while it lasts (removed however it ends:
//!   granted, cancelled, timed out), and a wait that would close a cycle fails at once with
//!   [`StorageError::Deadlock`] (40P01). The graph is this table's own: a cycle that runs
//!   through row locks as well ([`crate::lock`]) is not seen, and is broken by
//!   `lock_timeout` or `statement_timeout` instead.
//!
//! Waiters are woken whenever a hold on their key ends and retry; there is no queue, so a
//! stream of shared lockers can starve an exclusive waiter (PostgreSQL queues it).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::{StorageError, StorageResult};

/// Who holds advisory locks: a session's backend pid.
pub type HolderId = i32;

/// The key of an advisory lock: numbers within a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdvisoryKey {
    /// The OID of the database of the sessions that use the key.
    pub database: u32,
    /// The numbers.
    pub number: AdvisoryNumber,
}

/// The numbers that name an advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdvisoryNumber {
    /// `pg_advisory_lock(bigint)`.
    Int8(i64),
    /// `pg_advisory_lock(integer, integer)`.
    Int4Pair(i32, i32),
}

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// `…_shared` functions (PostgreSQL's ShareLock).
    Shared,
    /// The others (PostgreSQL's ExclusiveLock).
    Exclusive,
}

impl LockMode {
    /// PostgreSQL's name of the mode, as `pg_locks.mode` and its messages print it.
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::Shared => "ShareLock",
            LockMode::Exclusive => "ExclusiveLock",
        }
    }
}

/// How long a hold lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// Until unlocked or the session ends.
    Session,
    /// Until the transaction ends.
    Transaction,
}

/// One holder's counts on one key, by mode and scope.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holds {
    shared_session: u32,
    shared_xact: u32,
    exclusive_session: u32,
    exclusive_xact: u32,
}

impl Holds {
    fn count(&mut self, mode: LockMode, scope: LockScope) -> &mut u32 {
        match (mode, scope) {
            (LockMode::Shared, LockScope::Session) => &mut self.shared_session,
            (LockMode::Shared, LockScope::Transaction) => &mut self.shared_xact,
            (LockMode::Exclusive, LockScope::Session) => &mut self.exclusive_session,
            (LockMode::Exclusive, LockScope::Transaction) => &mut self.exclusive_xact,
        }
    }

    fn exclusive(&self) -> bool {
        self.exclusive_session + self.exclusive_xact > 0
    }

    fn shared(&self) -> bool {
        self.shared_session + self.shared_xact > 0
    }

    fn is_empty(&self) -> bool {
        !self.exclusive() && !self.shared()
    }
}

#[derive(Debug)]
struct Entry {
    holders: HashMap<HolderId, Holds>,
    /// Woken whenever a hold on the key ends.
    released: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<AdvisoryKey, Entry>,
    /// Each waiting holder and the holders it waits for.
    waits_for: HashMap<HolderId, Vec<HolderId>>,
}

/// A hold as `pg_locks` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// The key.
    pub key: AdvisoryKey,
    /// The holding session.
    pub holder: HolderId,
    /// Its mode.
    pub mode: LockMode,
}

/// The advisory lock table of a database server, shared by all its sessions.
#[derive(Debug, Default)]
pub struct AdvisoryLocks {
    table: Mutex<Table>,
}

/// Removes a waiter's wait-for edges however its wait ends.
struct WaitEdges<'a> {
    locks: &'a AdvisoryLocks,
    holder: HolderId,
}

impl Drop for WaitEdges<'_> {
    fn drop(&mut self) {
        self.locks.table.lock().waits_for.remove(&self.holder);
    }
}

impl Table {
    /// The other holders that keep `holder` from taking `key` in `mode`.
    fn blockers(&self, holder: HolderId, key: &AdvisoryKey, mode: LockMode) -> Vec<HolderId> {
        let Some(entry) = self.entries.get(key) else {
            return Vec::new();
        };
        if entry.holders.contains_key(&holder) {
            return Vec::new();
        }
        let mut blockers: Vec<HolderId> = entry
            .holders
            .iter()
            .filter(|(_, holds)| match mode {
                LockMode::Exclusive => !holds.is_empty(),
                LockMode::Shared => holds.exclusive(),
            })
            .map(|(h, _)| *h)
            .collect();
        blockers.sort_unstable();
        blockers
    }

    fn grant(&mut self, holder: HolderId, key: AdvisoryKey, mode: LockMode, scope: LockScope) {
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            holders: HashMap::new(),
            released: Arc::new(Notify::new()),
        });
        *entry.holders.entry(holder).or_default().count(mode, scope) += 1;
    }

    /// Drops `holder`'s holds on `key` that `release` clears; wakes waiters if any ended.
    fn release_where(
        &mut self,
        holder: HolderId,
        key: AdvisoryKey,
        release: impl FnOnce(&mut Holds),
    ) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let Some(holds) = entry.holders.get_mut(&holder) else {
            return;
        };
        let before = *holds;
        release(holds);
        let (exclusive_ended, shared_ended) = (
            before.exclusive() && !holds.exclusive(),
            before.shared() && !holds.shared(),
        );
        if holds.is_empty() {
            entry.holders.remove(&holder);
        }
        if exclusive_ended || shared_ended {
            entry.released.notify_waiters();
        }
        if entry.holders.is_empty() {
            self.entries.remove(&key);
        }
    }

    /// If `holder` waiting for `blockers` closes a cycle, a description of it.
    fn cycle(&self, holder: HolderId, blockers: &[HolderId]) -> Option<String> {
        // Depth-first from each blocker along wait-for edges, looking for `holder`.
        let mut stack: Vec<Vec<HolderId>> = blockers.iter().map(|b| vec![holder, *b]).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap_or(&holder);
            if last == holder && path.len() > 1 {
                let steps: Vec<String> = path
                    .windows(2)
                    .map(|w| format!("Process {} waits for process {}.", w[0], w[1]))
                    .collect();
                return Some(steps.join(" "));
            }
            if !seen.insert(last) {
                continue;
            }
            for next in self.waits_for.get(&last).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(*next);
                stack.push(longer);
            }
        }
        None
    }
}

impl AdvisoryLocks {
    /// Takes `key` in `mode` for `holder`, waiting while other sessions hold it in a
    /// conflicting mode. Cancel the wait by dropping the future. Fails with
    /// [`StorageError::Deadlock`] if the wait would close a cycle of waiting sessions.
    pub async fn lock(
        &self,
        holder: HolderId,
        key: AdvisoryKey,
        mode: LockMode,
        scope: LockScope,
    ) -> StorageResult<()> {
        let mut edges = None;
        loop {
            let notified = {
                let mut table = self.table.lock();
                let blockers = table.blockers(holder, &key, mode);
                if blockers.is_empty() {
                    table.grant(holder, key, mode, scope);
                    return Ok(());
                }
                if let Some(cycle) = table.cycle(holder, &blockers) {
                    return Err(StorageError::Deadlock { detail: cycle });
                }
                table.waits_for.insert(holder, blockers);
                let released = match table.entries.get(&key) {
                    Some(entry) => entry.released.clone(),
                    None => continue,
                };
                // Enabled under the table's lock: a release after this point wakes us.
                let mut notified = Box::pin(released.notified_owned());
                notified.as_mut().enable();
                notified
            };
            edges.get_or_insert(WaitEdges {
                locks: self,
                holder,
            });
            notified.await;
        }
    }

    /// Takes `key` in `mode` for `holder` if no other session holds it in a conflicting mode.
    pub fn try_lock(
        &self,
        holder: HolderId,
        key: AdvisoryKey,
        mode: LockMode,
        scope: LockScope,
    ) -> bool {
        let mut table = self.table.lock();
        if !table.blockers(holder, &key, mode).is_empty() {
            return false;
        }
        table.grant(holder, key, mode, scope);
        true
    }

    /// Releases one session-level hold of `key` in `mode`; `false` if `holder` has none
    /// (transaction-level holds are released only when the transaction ends).
    pub fn unlock(&self, holder: HolderId, key: AdvisoryKey, mode: LockMode) -> bool {
        let mut table = self.table.lock();
        let held = table
            .entries
            .get(&key)
            .and_then(|e| e.holders.get(&holder))
            .is_some_and(|h| {
                let mut h = *h;
                *h.count(mode, LockScope::Session) > 0
            });
        if held {
            table.release_where(holder, key, |holds| {
                *holds.count(mode, LockScope::Session) -= 1;
            });
        }
        held
    }

    /// Releases every session-level hold of `holder` (`pg_advisory_unlock_all`).
    pub fn unlock_all(&self, holder: HolderId) {
        self.release_all_where(holder, |holds| {
            holds.shared_session = 0;
            holds.exclusive_session = 0;
        });
    }

    /// Releases every transaction-level hold of `holder` (its transaction ended).
    pub fn release_transaction(&self, holder: HolderId) {
        self.release_all_where(holder, |holds| {
            holds.shared_xact = 0;
            holds.exclusive_xact = 0;
        });
    }

    /// Releases everything `holder` holds (its session ended).
    pub fn release_holder(&self, holder: HolderId) {
        self.release_all_where(holder, |holds| *holds = Holds::default());
    }

    fn release_all_where(&self, holder: HolderId, release: impl Fn(&mut Holds)) {
        let mut table = self.table.lock();
        let keys: Vec<AdvisoryKey> = table
            .entries
            .iter()
            .filter(|(_, e)| e.holders.contains_key(&holder))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            table.release_where(holder, key, &release);
        }
    }

    /// Every hold, one row per key, holder and mode, ordered by key then holder.
    pub fn held(&self) -> Vec<HeldLock> {
        let table = self.table.lock();
        let mut out = Vec::new();
        for (key, entry) in &table.entries {
            for (holder, holds) in &entry.holders {
                for (mode, held) in [
                    (LockMode::Shared, holds.shared()),
                    (LockMode::Exclusive, holds.exclusive()),
                ] {
                    if held {
                        out.push(HeldLock {
                            key: *key,
                            holder: *holder,
                            mode,
                        });
                    }
                }
            }
        }
        out.sort_by_key(|l| (l.key, l.holder, l.mode == LockMode::Exclusive));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use LockMode::{Exclusive, Shared};
    use LockScope::{Session, Transaction};

    const K: AdvisoryKey = key(1);

    const fn key(n: i64) -> AdvisoryKey {
        AdvisoryKey {
            database: 5,
            number: AdvisoryNumber::Int8(n),
        }
    }

    #[test]
    fn session_holds_are_counted() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(1, K, Exclusive, Session));
        assert!(locks.try_lock(1, K, Exclusive, Session));
        assert!(!locks.try_lock(2, K, Exclusive, Session));
        assert!(locks.unlock(1, K, Exclusive));
        assert!(!locks.try_lock(2, K, Shared, Session));
        assert!(locks.unlock(1, K, Exclusive));
        assert!(!locks.unlock(1, K, Exclusive));
        assert!(locks.try_lock(2, K, Exclusive, Session));
    }

    #[test]
    fn key_spaces_are_separate() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(1, key(1), Exclusive, Session));
        let pair = AdvisoryKey {
            database: 5,
            number: AdvisoryNumber::Int4Pair(0, 1),
        };
        assert!(locks.try_lock(2, pair, Exclusive, Session));
        let other_database = AdvisoryKey {
            database: 6,
            number: AdvisoryNumber::Int8(1),
        };
        assert!(locks.try_lock(3, other_database, Exclusive, Session));
    }

    #[test]
    fn shared_holds_exclude_only_exclusive_ones() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(1, K, Shared, Session));
        assert!(locks.try_lock(2, K, Shared, Session));
        assert!(!locks.try_lock(3, K, Exclusive, Session));
        // A holder's own holds never conflict: 1 may add an exclusive hold.
        assert!(locks.try_lock(1, K, Exclusive, Session));
        assert!(!locks.try_lock(3, K, Shared, Session));
        // Unlocking a mode one does not hold fails and changes nothing.
        assert!(!locks.unlock(2, K, Exclusive));
        assert!(locks.unlock(1, K, Exclusive));
        assert!(locks.try_lock(3, K, Shared, Session));
    }

    #[test]
    fn transaction_holds_end_with_the_transaction_only() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(1, K, Exclusive, Transaction));
        assert!(locks.try_lock(1, K, Exclusive, Session));
        // Unlock releases the session-level hold only; unlock_all too.
        assert!(locks.unlock(1, K, Exclusive));
        assert!(!locks.unlock(1, K, Exclusive));
        locks.unlock_all(1);
        assert!(!locks.try_lock(2, K, Shared, Session));
        locks.release_transaction(1);
        assert!(locks.try_lock(2, K, Shared, Session));
        assert!(locks.held().len() == 1);
    }

    #[test]
    fn session_end_releases_everything() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(1, K, Exclusive, Session));
        assert!(locks.try_lock(1, key(2), Shared, Transaction));
        assert_eq!(locks.held().len(), 2);
        locks.release_holder(1);
        assert!(locks.held().is_empty());
        assert!(locks.table.lock().entries.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_it_is_released() {
        let locks = Arc::new(AdvisoryLocks::default());
        locks.lock(1, K, Exclusive, Session).await.unwrap();
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock(2, K, Shared, Session).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        assert!(locks.unlock(1, K, Exclusive));
        waiter.await.unwrap().unwrap();
        assert_eq!(
            locks.held(),
            vec![HeldLock {
                key: K,
                holder: 2,
                mode: Shared
            }]
        );
        assert!(locks.table.lock().waits_for.is_empty());
    }

    #[tokio::test]
    async fn deadlocks_are_detected() {
        let locks = Arc::new(AdvisoryLocks::default());
        let k2 = key(2);
        locks.lock(1, K, Exclusive, Session).await.unwrap();
        locks.lock(2, k2, Exclusive, Session).await.unwrap();
        let l1 = locks.clone();
        let first = tokio::spawn(async move { l1.lock(1, k2, Exclusive, Session).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = locks.lock(2, K, Exclusive, Session).await.unwrap_err();
        assert!(matches!(err, StorageError::Deadlock { .. }), "{err:?}");
        locks.release_holder(2);
        first.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_edge() {
        let locks = AdvisoryLocks::default();
        locks.lock(1, K, Exclusive, Session).await.unwrap();
        let wait = tokio::time::timeout(
            Duration::from_millis(20),
            locks.lock(2, K, Exclusive, Session),
        );
        assert!(wait.await.is_err());
        assert!(locks.table.lock().waits_for.is_empty());
        assert!(!locks.try_lock(2, K, Exclusive, Session));
    }
}
