//! Feeds a [`View`] from the database: each source table's rows at a snapshot `ts0`, sent as
//! changes at `ts0`, then every commit after `ts0` in commit order from the change stream
//! (`floe_storage::changes`), each exactly once, with `View::advance` after each commit
//! whether or not it touched a source (so a reader at any snapshot knows when the view has
//! caught up with it).
//!
//! TRUNCATE publishes no row changes (it is a table-level marker in the hot tier): a commit
//! whose truncation marker is its own ts is sent as the table's rows at that commit minus its
//! rows just before it. The feed holds a snapshot no newer than the last commit it sent, so
//! those older rows are still readable.
//!
//! Invariant: after `View::advance(ts)` the view has been sent exactly the rows of each source
//! at `ts` (as a sum of changes). A source whose row layout changes (ALTER TABLE rewriting it)
//! or that is dropped stops the feed with an error, never with rows read under the wrong
//! layout. A feed that falls behind the change stream's retention catches up from a new
//! snapshot: at its ts it retracts the rows of the last commit it sent (its held snapshot
//! keeps them readable) and inserts the rows at the new snapshot; the commits in between are
//! a gap the view cannot answer at ([`View::mark_gap`]: readers there get an error, never a
//! stale answer).

use std::ops::Bound;
use std::sync::Arc;
use std::thread::JoinHandle;

use datafusion::arrow::array::RecordBatch;
use floe_storage::{ChangeError, Db, TableCodec};
use futures::channel::oneshot;
use futures::future::{select, Either};

use crate::{View, ViewError};

/// Rows read per chunk of a snapshot scan.
const CHUNK: usize = 4096;

/// A running feed; dropping it stops it.
pub struct Feed {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ViewError>>>,
}

impl Feed {
    /// Starts feeding `view` the tables `tables` (by OID, in the order of
    /// [`View::sources`]). Returns once the snapshot's ts is chosen, with that ts.
    pub fn start(db: Arc<Db>, view: Arc<View>, tables: Vec<u32>) -> Result<(Feed, u64), ViewError> {
        Feed::start_with(db, view, tables, None)
    }

    /// [`Feed::start`], loading the snapshot only while holding one of `permits` (several
    /// views rebuilt at once load a few at a time; the changes after the snapshot are kept
    /// for the feed meanwhile).
    pub fn start_with(
        db: Arc<Db>,
        view: Arc<View>,
        tables: Vec<u32>,
        permits: Option<Arc<Permits>>,
    ) -> Result<(Feed, u64), ViewError> {
        let (stop, stopped) = oneshot::channel();
        let snapshot = db.snapshot();
        let start = snapshot.ts;
        let reader = db.changes(start);
        let thread = std::thread::Builder::new()
            .name("floe-view-feed".into())
            .spawn(move || {
                let result = run(&db, &view, &tables, snapshot, reader, stopped, permits);
                if let Err(e) = &result {
                    // A dropped source means the view is being dropped with it (CASCADE).
                    if matches!(e, ViewError::Stopped(m) if m.ends_with(DROPPED)) {
                        tracing::debug!(error = %e, "view feed stopped");
                    } else {
                        tracing::warn!(error = %e, "view feed stopped");
                    }
                    view.stop(match e {
                        ViewError::Stopped(reason) => reason.clone(),
                        other => other.to_string(),
                    });
                }
                result
            })
            .map_err(|e| ViewError::Stopped(e.to_string()))?;
        Ok((
            Feed {
                stop: Some(stop),
                thread: Some(thread),
            },
            start,
        ))
    }

    /// Stops the feed and returns why it had stopped, if it had failed.
    pub fn stop(mut self) -> Result<(), ViewError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), ViewError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ViewError::Stopped("the feed panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn run(
    db: &Arc<Db>,
    view: &View,
    tables: &[u32],
    snapshot: Arc<floe_storage::Snapshot>,
    mut reader: floe_storage::ChangeReader,
    mut stopped: oneshot::Receiver<()>,
    permits: Option<Arc<Permits>>,
) -> Result<(), ViewError> {
    let start = snapshot.ts;
    let mut held = snapshot;
    let permit = match &permits {
        Some(permits) => match permits.acquire(&mut stopped) {
            Some(permit) => Some(permit),
            None => return Ok(()),
        },
        None => None,
    };
    let mut codecs: Vec<Arc<TableCodec>> = Vec::with_capacity(tables.len());
    for (i, &id) in tables.iter().enumerate() {
        let table = db.table(id).ok_or_else(|| gone(id))?;
        codecs.push(Arc::clone(&table.codec));
        let rows = rows_at(db, id, &table.codec, start)?;
        let n = rows.num_rows();
        view.update(start, i, rows, vec![1; n])?;
    }
    view.advance(start)?;
    // Built (the worker applies the snapshot before the next command): the next view may load.
    view.wait(start, std::time::Duration::from_secs(365 * 24 * 3600))?;
    drop(permit);
    // The last commit sent: the held snapshot keeps its rows readable.
    let mut last = start;
    loop {
        let next = futures::executor::block_on(async {
            match select(Box::pin(reader.next()), &mut stopped).await {
                Either::Left((commit, _)) => Some(commit),
                Either::Right(_) => None,
            }
        });
        let commit = match next {
            None => return Ok(()),
            Some(Ok(commit)) => commit,
            Some(Err(ChangeError::Closed)) => return Ok(()),
            Some(Err(ChangeError::Lagged(_))) => {
                // Fell behind the stream's retention: catch up from a new snapshot.
                let snapshot = db.snapshot();
                let now = snapshot.ts;
                reader = db.changes(now);
                view.mark_gap(last + 1, now.saturating_sub(1));
                for (i, &id) in tables.iter().enumerate() {
                    let table = db.table(id).ok_or_else(|| gone(id))?;
                    if !table.codec.same_layout(&codecs[i]) {
                        return Err(ViewError::Stopped(format!(
                            "the row layout of table {id} changed"
                        )));
                    }
                    let before = rows_at(db, id, &codecs[i], last)?;
                    let after = rows_at(db, id, &codecs[i], now)?;
                    let (b, a) = (before.num_rows(), after.num_rows());
                    view.update(now, i, before, vec![-1; b])?;
                    view.update(now, i, after, vec![1; a])?;
                }
                view.advance(now)?;
                tracing::info!(from = last, to = now, "view feed caught up from a snapshot");
                last = now;
                held = snapshot;
                continue;
            }
        };
        // Under load more commits are already published: they go to the view together (one
        // decode per table, one advance), each row keeping its commit's ts.
        let mut batch = vec![commit];
        while batch.len() < MAX_BATCH {
            match reader.try_next() {
                Ok(Some(commit)) => batch.push(commit),
                // A lag shows again at the next `next()`.
                Ok(None) | Err(_) => break,
            }
        }
        // Every commit of the batch is published, so a layout change among them shows here.
        for (i, &id) in tables.iter().enumerate() {
            let table = db.table(id).ok_or_else(|| gone(id))?;
            if !table.codec.same_layout(&codecs[i]) {
                return Err(ViewError::Stopped(format!(
                    "the row layout of table {id} changed"
                )));
            }
        }
        let mut pending = Pending::new(tables.len());
        for commit in &batch {
            let ts = commit.commit_ts;
            for (i, &id) in tables.iter().enumerate() {
                let table = db.table(id).ok_or_else(|| gone(id))?;
                if table.hot.truncated_at(ts) == ts {
                    // The table's rows before and after the TRUNCATE, after what came first.
                    pending.send(view, &codecs)?;
                    let before = rows_at(db, id, &codecs[i], ts - 1)?;
                    let after = rows_at(db, id, &codecs[i], ts)?;
                    let (b, a) = (before.num_rows(), after.num_rows());
                    view.update(ts, i, before, vec![-1; b])?;
                    view.update(ts, i, after, vec![1; a])?;
                    continue;
                }
                for change in commit.changes.iter().filter(|c| c.table_id == id) {
                    pending.tables[i].push((change.row.clone(), ts, change.diff as isize));
                }
            }
        }
        pending.send(view, &codecs)?;
        let ts = batch.last().map_or(last, |c| c.commit_ts);
        view.advance(ts)?;
        last = ts;
        // No reader will ask for the view as of a ts older than the oldest snapshot held.
        view.compact(db.oldest_snapshot_ts());
        // Keep a snapshot no newer than what was sent: the rows before the next commit must
        // stay readable (a TRUNCATE reads them).
        if let Some(newer) = db.snapshot_at(ts, &held) {
            held = newer;
        }
        debug_assert!(held.ts <= ts);
    }
}

const DROPPED: &str = "was dropped";

/// Commits sent to the view in one batch at most.
const MAX_BATCH: usize = 1024;

/// Row changes gathered per source table: (stored row, commit ts, diff).
struct Pending {
    tables: Vec<Vec<(floe_storage::RowBytes, u64, isize)>>,
}

impl Pending {
    fn new(tables: usize) -> Pending {
        Pending {
            tables: vec![Vec::new(); tables],
        }
    }

    /// Sends each table's gathered changes (decoded in one batch) and forgets them.
    fn send(&mut self, view: &View, codecs: &[Arc<TableCodec>]) -> Result<(), ViewError> {
        for (i, changes) in self.tables.iter_mut().enumerate() {
            if changes.is_empty() {
                continue;
            }
            let rows = codecs[i].decode_rows(changes.iter().map(|(row, _, _)| row.as_ref()))?;
            let times = changes.iter().map(|(_, ts, _)| *ts).collect();
            let diffs = changes.iter().map(|(_, _, diff)| *diff).collect();
            view.update_at(times, i, rows, diffs)?;
            changes.clear();
        }
        Ok(())
    }
}

/// A counting semaphore bounding how many feeds load their snapshot at once.
#[derive(Debug)]
pub struct Permits {
    free: parking_lot::Mutex<usize>,
    released: parking_lot::Condvar,
}

/// One held permit; released when dropped.
pub struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.released.notify_one();
    }
}

impl Permits {
    /// `n` permits (at least one).
    pub fn new(n: usize) -> Permits {
        Permits {
            free: parking_lot::Mutex::new(n.max(1)),
            released: parking_lot::Condvar::new(),
        }
    }

    /// A permit if one is free now.
    pub fn try_take(&self) -> Option<Permit<'_>> {
        let mut free = self.free.lock();
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(Permit(self))
    }

    /// Waits for a permit; `None` once `stopped` fires (or its sender is gone).
    fn acquire(&self, stopped: &mut oneshot::Receiver<()>) -> Option<Permit<'_>> {
        let mut free = self.free.lock();
        loop {
            if !matches!(stopped.try_recv(), Ok(None)) {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Permit(self));
            }
            self.released
                .wait_for(&mut free, std::time::Duration::from_millis(50));
        }
    }
}

fn gone(id: u32) -> ViewError {
    ViewError::Stopped(format!("table {id} {DROPPED}"))
}

/// Every row of table `id` at `ts`, as a batch of the table's schema.
fn rows_at(db: &Db, id: u32, codec: &TableCodec, ts: u64) -> Result<RecordBatch, ViewError> {
    let table = db.table(id).ok_or_else(|| gone(id))?;
    let sources = table.sources(ts);
    let mut all = Vec::new();
    let mut range = (Bound::Unbounded, Bound::Unbounded);
    while let Some(last) = sources.try_scan_chunk(&range, CHUNK, &mut all)? {
        range.0 = Bound::Excluded(last);
    }
    Ok(codec.decode_rows(all.iter().map(|(_, row)| row.as_ref()))?)
}
