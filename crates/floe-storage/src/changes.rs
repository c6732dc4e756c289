//! The change stream: every commit's row changes `(commit_ts, table, row, diff)`, in commit
//! order, for materialized views and SUBSCRIBE (DESIGN.md idea 1).
//!
//! The committer publishes each commit after applying it to the hot tier, so a reader never
//! sees a change that a snapshot at that ts would not. Recent commits are retained in memory
//! (by count and bytes); a reader may start at any retained ts and then follows live commits.
//! A reader that falls behind the retention window gets [`ChangeError::Lagged`] and must
//! rebuild from a table snapshot (views are rebuildable, DESIGN.md idea 4).
//!
//! Rows are in the table's row format ([`crate::TableCodec`]); an update is a retraction of
//! the old row and an insertion of the new one. Rolled-back transactions never reach the stream.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::codec::RowBytes;

/// One row change.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The table's OID.
    pub table_id: u32,
    /// The row, in the table's row format.
    pub row: RowBytes,
    /// +1 inserted, -1 deleted.
    pub diff: i64,
}

/// Everything one commit changed.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitChanges {
    /// The commit's timestamp.
    pub commit_ts: u64,
    /// Row changes, in the order the commit applied them.
    pub changes: Vec<RowChange>,
}

impl CommitChanges {
    fn bytes(&self) -> usize {
        64 + self.changes.iter().map(|c| c.row.len() + 32).sum::<usize>()
    }
}

/// Why a reader could not get its next commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The commits the reader needs are no longer retained.
    #[error("changes after timestamp {0} are no longer retained")]
    Lagged(u64),
    /// The database shut down.
    #[error("the change stream closed")]
    Closed,
}

#[derive(Debug, Default)]
struct Retained {
    commits: VecDeque<Arc<CommitChanges>>,
    bytes: usize,
    /// Highest ts ever published; readers may wait for newer ones.
    published_ts: u64,
}

/// The change stream of a database.
#[derive(Debug)]
pub struct ChangeLog {
    retained: Mutex<Retained>,
    latest: watch::Sender<u64>,
    max_commits: usize,
    max_bytes: usize,
}

impl ChangeLog {
    /// A stream that retains at most `max_commits` commits and `max_bytes` bytes of changes,
    /// starting after `start_ts` (the last commit before it was created).
    pub fn new(start_ts: u64, max_commits: usize, max_bytes: usize) -> ChangeLog {
        ChangeLog {
            retained: Mutex::new(Retained {
                published_ts: start_ts,
                ..Retained::default()
            }),
            latest: watch::channel(start_ts).0,
            max_commits: max_commits.max(1),
            max_bytes,
        }
    }

    /// Publishes a commit. Called in commit order by the committer only.
    pub(crate) fn publish(&self, commit: CommitChanges) {
        let ts = commit.commit_ts;
        {
            let mut retained = self.retained.lock();
            retained.bytes += commit.bytes();
            retained.commits.push_back(Arc::new(commit));
            retained.published_ts = ts;
            while retained.commits.len() > self.max_commits
                || (retained.bytes > self.max_bytes && retained.commits.len() > 1)
            {
                if let Some(old) = retained.commits.pop_front() {
                    retained.bytes -= old.bytes();
                }
            }
        }
        self.latest.send_replace(ts);
    }

    /// A reader that yields every commit with `commit_ts > after_ts`.
    pub fn subscribe(self: &Arc<Self>, after_ts: u64) -> ChangeReader {
        ChangeReader {
            log: self.clone(),
            after_ts,
            latest: self.latest.subscribe(),
        }
    }

    /// The newest published commit ts.
    pub fn published_ts(&self) -> u64 {
        self.retained.lock().published_ts
    }

    /// Marks the stream closed: readers get [`ChangeError::Closed`] once caught up.
    pub(crate) fn close(&self) {
        self.latest.send_replace(u64::MAX);
    }
}

/// Follows the change stream from a timestamp.
#[derive(Debug)]
pub struct ChangeReader {
    log: Arc<ChangeLog>,
    after_ts: u64,
    latest: watch::Receiver<u64>,
}

impl ChangeReader {
    /// The next commit after the last one returned, waiting for it if need be.
    pub async fn next(&mut self) -> Result<Arc<CommitChanges>, ChangeError> {
        loop {
            if let Some(commit) = self.try_next()? {
                return Ok(commit);
            }
            if *self.latest.borrow_and_update() == u64::MAX {
                return Err(ChangeError::Closed);
            }
            if self.latest.changed().await.is_err() {
                return Err(ChangeError::Closed);
            }
        }
    }

    /// The next commit if it is already published.
    pub fn try_next(&mut self) -> Result<Option<Arc<CommitChanges>>, ChangeError> {
        let retained = self.log.retained.lock();
        if retained.published_ts <= self.after_ts {
            return Ok(None);
        }
        let oldest = match retained.commits.front() {
            Some(c) => c.commit_ts,
            None => return Err(ChangeError::Lagged(self.after_ts)),
        };
        if oldest > self.after_ts + 1 {
            return Err(ChangeError::Lagged(self.after_ts));
        }
        // Commit timestamps are consecutive, so the position is arithmetic.
        let index = (self.after_ts + 1 - oldest) as usize;
        match retained.commits.get(index) {
            Some(commit) => {
                self.after_ts = commit.commit_ts;
                Ok(Some(commit.clone()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(ts: u64) -> CommitChanges {
        CommitChanges {
            commit_ts: ts,
            changes: vec![RowChange {
                table_id: 1,
                row: Arc::from(ts.to_be_bytes().as_slice()),
                diff: 1,
            }],
        }
    }

    #[tokio::test]
    async fn readers_start_anywhere_retained_and_follow() {
        let log = Arc::new(ChangeLog::new(0, 3, usize::MAX));
        for ts in 1..=5 {
            log.publish(commit(ts));
        }
        let mut late = log.subscribe(0);
        assert_eq!(late.next().await, Err(ChangeError::Lagged(0)));
        let mut reader = log.subscribe(2);
        assert_eq!(reader.next().await.unwrap().commit_ts, 3);
        assert_eq!(reader.next().await.unwrap().commit_ts, 4);
        assert_eq!(reader.next().await.unwrap().commit_ts, 5);
        let waiter = tokio::spawn(async move { reader.next().await.map(|c| c.commit_ts) });
        tokio::task::yield_now().await;
        log.publish(commit(6));
        assert_eq!(waiter.await.unwrap(), Ok(6));
        log.close();
        let mut closed = log.subscribe(6);
        assert_eq!(closed.next().await, Err(ChangeError::Closed));
    }
}
