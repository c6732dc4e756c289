//! Incremental view maintenance (DESIGN.md ideas 1–4, issue 17; `docs/design/0014-materialized-views.md`).
//!
//! A view's optimised DataFusion `LogicalPlan` is compiled into an incremental [`Plan`]
//! (`plan.rs`) and rendered onto differential dataflow (`render.rs`) over one runtime row type
//! (`row.rs`). Each [`View`] runs its dataflow on a timely worker thread of its own, fed over
//! a channel with the base tables' changes in commit order; the view's frontier says up to
//! which commit its output is complete, and a reader waits for it ([`View::wait`], or [`View::wait_async`] on a runtime).
//! The output keeps its recent history for older snapshots (`history.rs`) and any indexes
//! on it (`index.rs`, [`View::set_indexes`]).
//!
//! Invariant: once the frontier has passed `ts`, the view's rows (or its error) are exactly
//! what the defining query returns at a snapshot at `ts`.

mod accumulable;
pub mod feed;
pub mod history;
mod index;
pub mod plan;
pub mod render;
pub mod row;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, ScalarValue, TableReference};
use differential_dataflow::input::InputSession;
use parking_lot::{Condvar, Mutex};
use timely::dataflow::ProbeHandle;

pub use feed::{Feed, Permits};
use history::History;
pub use index::{IndexSpec, UniqueText};
pub use plan::{compile, Aggregate, Plan};
pub use row::{Row, RowCodec};

/// How an expression's error is kept in a view's error collection (its text). The server
/// installs one that keeps the SQLSTATE ([`set_error_text`]); the default is the message.
static ERROR_TEXT: std::sync::OnceLock<fn(&DataFusionError) -> String> = std::sync::OnceLock::new();

/// Sets how errors raised while maintaining views are recorded (once per process; later calls
/// are ignored). A read returns the text as [`ViewError::Query`].
pub fn set_error_text(text: fn(&DataFusionError) -> String) {
    let _ = ERROR_TEXT.set(text);
}

pub(crate) fn error_text(e: &DataFusionError) -> String {
    match ERROR_TEXT.get() {
        Some(text) => text(e),
        None => e.to_string(),
    }
}

/// Why a view cannot be created, maintained or read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The query has a construct views cannot maintain yet (named in the message).
    #[error("materialized views do not support {0} yet")]
    Unsupported(String),
    /// The defining query fails at the snapshot read (as the query itself would).
    #[error("{0}")]
    Query(String),
    /// The view skipped this commit while catching up with its base tables: it cannot
    /// answer as of it (a newer snapshot can).
    #[error(
        "the materialized view fell behind its base tables and has no answer as of {0}; retry"
    )]
    Behind(u64),
    /// The view did not catch up with the snapshot in time.
    #[error("the materialized view did not catch up within {0:?}")]
    Timeout(Duration),
    /// The view's maintenance stopped (its thread ended).
    #[error("the materialized view's maintenance stopped: {0}")]
    Stopped(String),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Storage(#[from] floe_storage::StorageError),
}

/// Bytes an arranged update holds beyond its row's (its key, time, diff, the batch's share).
const ARRANGED_OVERHEAD: u64 = 48;

/// What [`View::stats`] reports.
#[derive(Debug, Clone, Copy)]
pub struct ViewStats {
    /// Every change below it is applied.
    pub frontier: u64,
    /// Output rows (at the oldest snapshot still readable).
    pub rows: u64,
    /// Memory the output and its history hold (estimated).
    pub output_bytes: u64,
    /// Updates held in the dataflow's arrangements (counted from differential's events).
    pub arranged_updates: u64,
    /// Memory the view holds: its arrangements (estimated from the updates they hold and the
    /// input rows' average size) and its output.
    pub state_bytes: u64,
    /// Whether the defining query fails at the newest complete snapshot.
    pub errors: bool,
}

enum Command {
    /// Changes of the source at `source` (a position in [`Plan::sources`]), row `i`
    /// committed at `times[i]`.
    Changes {
        times: Vec<u64>,
        source: usize,
        rows: RecordBatch,
        diffs: Vec<isize>,
    },
    /// Every change committed at or before `ts` has been sent.
    Advance(u64),
}

struct Output {
    /// Changes at timestamps below it are all applied.
    frontier: u64,
    rows: History<Row>,
    errors: History<String>,
    stopped: Option<String>,
    /// Commit ranges (inclusive) the view skipped while catching up: no answer there.
    gaps: Vec<(u64, u64)>,
    /// The indexes of `rows` ([`View::set_indexes`]).
    indexes: Vec<index::OutputIndex>,
}

impl Output {
    /// Whether the view can answer at `ts`: why not, if it cannot.
    fn readable(&self, ts: u64) -> Result<(), ViewError> {
        if let Some(reason) = &self.stopped {
            return Err(ViewError::Stopped(reason.clone()));
        }
        if ts >= self.frontier {
            return Err(ViewError::Stopped(format!(
                "the view is not complete at {ts} (read after waiting for it)"
            )));
        }
        if self
            .gaps
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&ts))
        {
            return Err(ViewError::Behind(ts));
        }
        if !self.errors.is_empty_at(ts) {
            let errors = self.errors.at(ts).ok_or_else(|| too_old(ts))?;
            if let Some((message, _)) = errors.into_iter().next() {
                return Err(ViewError::Query(message));
            }
        }
        if let Some(message) = self.indexes.iter().find_map(|i| i.violation(ts)) {
            return Err(ViewError::Query(message));
        }
        Ok(())
    }
}

fn too_old(ts: u64) -> ViewError {
    ViewError::Stopped(format!("the view's history before {ts} is gone"))
}

struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
    /// Bumped with every notification, for async waiters.
    version: tokio::sync::watch::Sender<u64>,
    /// Updates held in the dataflow's arrangements.
    arranged: AtomicI64,
    /// Input rows encoded so far, and their bytes (the average sizes an arranged update).
    input_rows: AtomicU64,
    input_bytes: AtomicU64,
    /// Bytes the view may hold ([`View::set_memory_limit`]; 0: no limit).
    memory_limit: AtomicU64,
}

impl Shared {
    fn stats(&self) -> ViewStats {
        let output = self.output.lock();
        let arranged = self.arranged.load(Ordering::Relaxed).max(0) as u64;
        let rows_in = self.input_rows.load(Ordering::Relaxed).max(1);
        let bytes_in = self.input_bytes.load(Ordering::Relaxed);
        // An arranged update: its row (about an input row's size), a key, time and diff.
        let per_update = bytes_in / rows_in + ARRANGED_OVERHEAD;
        let indexes: usize = output.indexes.iter().map(index::OutputIndex::bytes).sum();
        let output_bytes = (output.rows.bytes() + output.errors.bytes() + indexes) as u64;
        ViewStats {
            frontier: output.frontier,
            rows: output.rows.base_rows().max(0) as u64,
            output_bytes,
            arranged_updates: arranged,
            state_bytes: arranged * per_update + output_bytes,
            errors: !output.errors.is_empty_at(output.frontier.saturating_sub(1)),
        }
    }
}

impl Shared {
    /// Wakes every waiter (the frontier moved, or the view stopped).
    fn notify(&self) {
        self.changed.notify_all();
        self.version.send_modify(|v| *v += 1);
    }
}

/// A maintained view: its dataflow on a worker thread, and its output.
pub struct View {
    commands: Option<mpsc::Sender<Command>>,
    shared: Arc<Shared>,
    sources: Vec<TableReference>,
    schema: SchemaRef,
    thread: Option<JoinHandle<()>>,
}

impl View {
    /// Starts maintaining `plan`; its first changes may come at `after_ts + 1` (the sources'
    /// snapshots at `after_ts` are sent as changes at `after_ts`).
    pub fn start(plan: Plan, after_ts: u64) -> Result<View, ViewError> {
        let sources = plan.sources();
        let schema = plan.schema();
        let shared = Arc::new(Shared {
            output: Mutex::new(Output {
                frontier: after_ts,
                rows: History::new(after_ts),
                errors: History::new(after_ts),
                stopped: None,
                gaps: Vec::new(),
                indexes: Vec::new(),
            }),
            changed: Condvar::new(),
            version: tokio::sync::watch::Sender::new(0),
            arranged: AtomicI64::new(0),
            input_rows: AtomicU64::new(0),
            input_bytes: AtomicU64::new(0),
            memory_limit: AtomicU64::new(0),
        });
        let (commands, receiver) = mpsc::channel();
        let (ready, started) = mpsc::sync_channel(1);
        let worker_shared = Arc::clone(&shared);
        let panic_shared = Arc::clone(&shared);
        let source_schemas: Vec<SchemaRef> =
            plan.source_schemas().into_iter().map(|(_, s)| s).collect();
        let thread = std::thread::Builder::new()
            .name("floe-view".into())
            .spawn(move || {
                // Only this thread ever takes the receiver; the mutex makes the closure Sync.
                let receiver = Mutex::new(receiver);
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    timely::execute_directly(move |worker| {
                        let receiver = receiver.into_inner();
                        run(worker, plan, source_schemas, receiver, ready, worker_shared)
                    })
                }));
                if let Err(panic) = ran {
                    // A bug, never a hang: readers and the feed get the view's error.
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".into());
                    tracing::error!(panic = %what, "materialized view worker panicked");
                    let mut output = panic_shared.output.lock();
                    output.stopped = Some(format!("internal error in view maintenance: {what}"));
                    drop(output);
                    panic_shared.notify();
                }
            })
            .map_err(|e| ViewError::Stopped(e.to_string()))?;
        match started.recv() {
            Ok(Ok(())) => Ok(View {
                commands: Some(commands),
                shared,
                sources,
                schema,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ViewError::Stopped("the worker did not start".into())),
        }
    }

    /// The base tables the view reads, in the order [`View::update`] numbers them.
    pub fn sources(&self) -> &[TableReference] {
        &self.sources
    }

    /// The view's output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Sends rows of source `source` changed at `ts` (+1 inserted, -1 deleted each).
    pub fn update(
        &self,
        ts: u64,
        source: usize,
        rows: RecordBatch,
        diffs: Vec<isize>,
    ) -> Result<(), ViewError> {
        let times = vec![ts; rows.num_rows()];
        self.update_at(times, source, rows, diffs)
    }

    /// Sends rows of source `source` changed in several commits: row `i` at `times[i]`.
    pub fn update_at(
        &self,
        times: Vec<u64>,
        source: usize,
        rows: RecordBatch,
        diffs: Vec<isize>,
    ) -> Result<(), ViewError> {
        self.send(Command::Changes {
            times,
            source,
            rows,
            diffs,
        })
    }

    /// Says every change committed at or before `ts` has been sent.
    pub fn advance(&self, ts: u64) -> Result<(), ViewError> {
        self.send(Command::Advance(ts))
    }

    fn send(&self, command: Command) -> Result<(), ViewError> {
        let stopped = || ViewError::Stopped(self.stopped_reason());
        self.commands
            .as_ref()
            .ok_or_else(stopped)?
            .send(command)
            .map_err(|_| stopped())
    }

    fn stopped_reason(&self) -> String {
        let output = self.shared.output.lock();
        output
            .stopped
            .clone()
            .unwrap_or_else(|| "the worker ended".into())
    }

    /// Marks the view stopped (its feed failed): waiting readers get the reason.
    pub fn stop(&self, reason: String) {
        let mut output = self.shared.output.lock();
        output.stopped.get_or_insert(reason);
        self.shared.notify();
    }

    /// The view's output as last reported: rows at the oldest readable snapshot and the
    /// memory its output and history hold (estimated).
    pub fn stats(&self) -> ViewStats {
        self.shared.stats()
    }

    /// Limits the memory the view holds ([`ViewStats::state_bytes`]): past it, maintenance
    /// stops with a 53200-style error (DataFusion's `ResourcesExhausted`, as
    /// [`set_error_text`] records it) that reads return. 0: no limit.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.shared.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Says the view will have no answer at the commits `from ..= to` (its feed skipped them
    /// to catch up); reads there get [`ViewError::Behind`].
    pub fn mark_gap(&self, from: u64, to: u64) {
        if from <= to {
            self.shared.output.lock().gaps.push((from, to));
        }
    }

    /// Why the view's maintenance stopped, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.shared.output.lock().stopped.clone()
    }

    /// Lets the view forget how it looked before `ts` (no reader has an older snapshot).
    pub fn compact(&self, ts: u64) {
        let mut output = self.shared.output.lock();
        let ts = ts.min(output.frontier.saturating_sub(1));
        output.rows.compact(ts);
        output.errors.compact(ts);
        for index in &mut output.indexes {
            index.compact(ts);
        }
        output.gaps.retain(|(_, to)| *to >= ts);
    }

    /// The timestamp below which every change is applied.
    pub fn frontier(&self) -> u64 {
        self.shared.output.lock().frontier
    }

    /// Waits until the view is complete at `ts` (its frontier has passed it).
    pub fn wait(&self, ts: u64, timeout: Duration) -> Result<(), ViewError> {
        let deadline = Instant::now() + timeout;
        let mut output = self.shared.output.lock();
        while output.frontier <= ts {
            if let Some(reason) = &output.stopped {
                return Err(ViewError::Stopped(reason.clone()));
            }
            if self
                .shared
                .changed
                .wait_until(&mut output, deadline)
                .timed_out()
            {
                return Err(ViewError::Timeout(timeout));
            }
        }
        Ok(())
    }

    /// [`View::wait`] without blocking the thread: for readers on an async runtime (a
    /// statement's timeout or cancel drops the future).
    pub async fn wait_async(&self, ts: u64) -> Result<(), ViewError> {
        let mut version = self.shared.version.subscribe();
        loop {
            {
                let output = self.shared.output.lock();
                if output.frontier > ts {
                    return Ok(());
                }
                if let Some(reason) = &output.stopped {
                    return Err(ViewError::Stopped(reason.clone()));
                }
            }
            if version.changed().await.is_err() {
                return Err(ViewError::Stopped("the worker ended".into()));
            }
        }
    }

    /// The view's rows as of the newest complete commit: see [`View::read_at`].
    pub fn read(&self) -> Result<RecordBatch, ViewError> {
        let ts = self.frontier().saturating_sub(1);
        self.read_at(ts)
    }

    /// The view's rows at snapshot `ts`, each repeated by its multiplicity, or the error the
    /// defining query raises there. `ts` must be complete ([`View::wait`]) and not compacted
    /// away ([`View::compact`]).
    pub fn read_at(&self, ts: u64) -> Result<RecordBatch, ViewError> {
        let output = self.shared.output.lock();
        output.readable(ts)?;
        let contents = output.rows.at(ts).ok_or_else(|| too_old(ts))?;
        drop(output);
        self.decode(&contents)
    }

    /// The columns of each index of the view's rows.
    pub fn indexes(&self) -> Vec<Vec<usize>> {
        let output = self.shared.output.lock();
        output.indexes.iter().map(|i| i.columns.clone()).collect()
    }

    /// Keeps an index of the view's rows for each of `wanted`, building the new ones from
    /// the rows and their history (a unique one checked over all of it), dropping the others.
    /// An index on the same columns is kept as it is, unique or not, once each way.
    pub fn set_indexes(&self, wanted: Vec<IndexSpec>) -> Result<(), ViewError> {
        let mut seen = Vec::new();
        let wanted: Vec<IndexSpec> = wanted
            .into_iter()
            .filter(|spec| {
                let shape = (spec.columns.clone(), spec.unique.is_some());
                let new = !seen.contains(&shape);
                seen.push(shape);
                new
            })
            .collect();
        let mut output = self.shared.output.lock();
        let same = output.indexes.len() == wanted.len()
            && output
                .indexes
                .iter()
                .zip(&wanted)
                .all(|(i, w)| i.columns == w.columns && i.is_unique() == w.unique.is_some());
        if same {
            return Ok(());
        }
        let codec = RowCodec::new(Arc::clone(&self.schema))?;
        let mut kept = std::mem::take(&mut output.indexes);
        let mut indexes = Vec::with_capacity(wanted.len());
        for spec in wanted {
            let existing = kept
                .iter()
                .position(|i| i.columns == spec.columns && i.is_unique() == spec.unique.is_some());
            match existing {
                Some(at) => indexes.push(kept.swap_remove(at)),
                None => {
                    let mut index = index::build(spec, &codec, &output.rows)?;
                    // Every update below the frontier is in the rows; later ones are
                    // checked once the step recording them is done.
                    index.check_unique(output.frontier)?;
                    indexes.push(index);
                }
            }
        }
        output.indexes = indexes;
        Ok(())
    }

    /// [`View::read_at`], only the rows whose columns `columns` equal `values` (values of
    /// the view's column types), through an index whose leading columns they are; without
    /// such an index, every row.
    pub fn read_at_key(
        &self,
        ts: u64,
        columns: &[usize],
        values: &[ScalarValue],
    ) -> Result<RecordBatch, ViewError> {
        let output = self.shared.output.lock();
        output.readable(ts)?;
        let Some(index) = output
            .indexes
            .iter()
            .find(|i| i.columns.starts_with(columns))
        else {
            drop(output);
            return self.read_at(ts);
        };
        let contents = index.lookup(ts, values)?.ok_or_else(|| too_old(ts))?;
        drop(output);
        self.decode(&contents)
    }

    /// The rows of `contents`, each repeated by its multiplicity.
    fn decode(
        &self,
        contents: &std::collections::BTreeMap<Row, isize>,
    ) -> Result<RecordBatch, ViewError> {
        let codec = RowCodec::new(Arc::clone(&self.schema))?;
        let mut rows = Vec::new();
        for (row, count) in contents {
            if *count < 0 {
                return Err(ViewError::Stopped(
                    "the view holds a row a negative number of times".into(),
                ));
            }
            rows.extend(std::iter::repeat_n(row, *count as usize));
        }
        Ok(codec.decode(rows)?)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The worker: builds the dataflow, then applies commands until the view is dropped.
fn run(
    worker: &mut timely::worker::Worker,
    plan: Plan,
    source_schemas: Vec<SchemaRef>,
    receiver: mpsc::Receiver<Command>,
    ready: mpsc::SyncSender<Result<(), ViewError>>,
    shared: Arc<Shared>,
) {
    let sources = plan.sources();
    let probe = ProbeHandle::new();
    // Updates held in the dataflow's arrangements, from differential's batch events (each
    // batch added, each merge's inputs replaced by its output, each dropped batch removed).
    if let Some(mut register) = worker.log_register() {
        let arranged = Arc::clone(&shared);
        register.insert::<differential_dataflow::logging::DifferentialEventBuilder, _>(
            "differential/arrange",
            move |_time, data| {
                use differential_dataflow::logging::DifferentialEvent as E;
                let Some(events) = data else { return };
                let mut delta = 0i64;
                for (_, event) in events.iter() {
                    match event {
                        E::Batch(b) => delta += b.length as i64,
                        E::Merge(m) => {
                            if let Some(done) = m.complete {
                                delta += done as i64 - m.length1 as i64 - m.length2 as i64;
                            }
                        }
                        E::Drop(d) => delta -= d.length as i64,
                        _ => {}
                    }
                }
                arranged.arranged.fetch_add(delta, Ordering::Relaxed);
            },
        );
    }
    let built = worker.dataflow::<u64, _, _>(|scope| {
        let mut inputs: Vec<InputSession<u64, Row, isize>> =
            sources.iter().map(|_| InputSession::new()).collect();
        let collections: Vec<_> = inputs
            .iter_mut()
            .map(|input| input.to_collection(scope))
            .collect();
        let no_errors = differential_dataflow::collection::concatenate(scope, Vec::new());
        let source = |table: &TableReference| {
            let i = sources.iter().position(|t| t == table).unwrap_or(0);
            (collections[i].clone(), no_errors.clone())
        };
        let (rows, errors) = render::render(&plan, scope, &source)?;
        let rows_output = Arc::clone(&shared);
        let out_codec = RowCodec::new(plan.schema())?;
        rows.inspect_batch(move |_, updates| {
            let mut output = rows_output.output.lock();
            for (row, time, diff) in updates {
                output.rows.update(*time, row, *diff);
            }
            if !output.indexes.is_empty() {
                let updates: Vec<(u64, &Row, isize)> = updates
                    .iter()
                    .map(|(row, time, diff)| (*time, row, *diff))
                    .collect();
                let indexed = out_codec
                    .decode(updates.iter().map(|(_, row, _)| *row))
                    .and_then(|batch| {
                        output
                            .indexes
                            .iter_mut()
                            .try_for_each(|index| index.update(&batch, &updates))
                    });
                if let Err(e) = indexed {
                    output.stopped = Some(format!("indexing the view's rows failed: {e}"));
                    rows_output.notify();
                }
            }
        })
        .probe_with(&probe);
        let errors_output = Arc::clone(&shared);
        errors
            .inspect_batch(move |_, updates| {
                let mut output = errors_output.output.lock();
                for (message, time, diff) in updates {
                    output.errors.update(*time, message, *diff);
                }
            })
            .probe_with(&probe);
        Ok::<_, ViewError>(inputs)
    });
    let mut inputs = match built {
        Ok(inputs) => {
            let _ = ready.send(Ok(()));
            inputs
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let codecs: Vec<Option<RowCodec>> = source_schemas
        .into_iter()
        .map(|schema| RowCodec::new(schema).ok())
        .collect();
    let start = shared.output.lock().frontier;
    for input in &mut inputs {
        input.advance_to(start);
    }
    // Applies one command's changes to the inputs; false when the view must stop.
    let apply = |inputs: &mut Vec<InputSession<u64, Row, isize>>,
                 times: Vec<u64>,
                 source: usize,
                 rows: RecordBatch,
                 diffs: Vec<isize>|
     -> bool {
        let Some(codec) = codecs.get(source).and_then(Option::as_ref) else {
            return true;
        };
        match codec.encode(rows.columns(), rows.num_rows()) {
            Ok(encoded) => {
                let bytes: usize = encoded.iter().map(|r| r.0.len()).sum();
                shared
                    .input_rows
                    .fetch_add(encoded.len() as u64, Ordering::Relaxed);
                shared
                    .input_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                for ((row, diff), ts) in encoded.into_iter().zip(diffs).zip(times) {
                    inputs[source].update_at(row, ts, diff);
                }
                true
            }
            Err(e) => {
                let mut output = shared.output.lock();
                output.stopped = Some(e.to_string());
                shared.notify();
                false
            }
        }
    };
    while let Ok(first) = receiver.recv() {
        // Under load, the commits already queued behind an Advance are applied before the
        // dataflow runs, so one step (and one wake-up of the readers) covers them all; each
        // keeps its own ts.
        let mut command = Some(first);
        let mut advance: Option<u64> = None;
        while let Some(current) = command.take() {
            match current {
                Command::Changes {
                    times,
                    source,
                    rows,
                    diffs,
                } => {
                    if !apply(&mut inputs, times, source, rows, diffs) {
                        return;
                    }
                }
                Command::Advance(ts) => advance = Some(advance.unwrap_or(0).max(ts + 1)),
            }
            if advance.is_some() {
                command = receiver.try_recv().ok();
            }
        }
        let Some(next) = advance else {
            continue;
        };
        for input in &mut inputs {
            input.advance_to(next);
            input.flush();
        }
        // The state is checked after the step, and during a long one (a recursive query's
        // many rounds) every so often, so a view outgrowing its share stops before the server
        // runs out of memory.
        let over_limit = || {
            let limit = shared.memory_limit.load(Ordering::Relaxed);
            let used = shared.stats().state_bytes;
            (limit > 0 && used > limit).then(|| {
                let e = DataFusionError::ResourcesExhausted(format!(
                    "materialized view state of {used} bytes exceeds its share of the memory limit ({limit} bytes)"
                ));
                let mut output = shared.output.lock();
                output.stopped = Some(error_text(&e));
                shared.notify();
            })
        };
        let mut steps = 0u64;
        while probe.less_than(&next) {
            worker.step();
            steps += 1;
            if steps.is_multiple_of(1024) && over_limit().is_some() {
                return;
            }
        }
        if over_limit().is_some() {
            return;
        }
        let mut output = shared.output.lock();
        // Every update below `next` is in: the unique indexes' keys can be checked.
        let checked = output
            .indexes
            .iter_mut()
            .try_for_each(|index| index.check_unique(next));
        if let Err(e) = checked {
            output.stopped = Some(format!("checking the view's unique indexes failed: {e}"));
        }
        output.frontier = output.frontier.max(next);
        shared.notify();
    }
}
