//! `COPY … FROM STDIN` and `COPY … TO STDOUT`.
//!
//! COPY FROM is an INSERT whose rows come from the client: the statement is planned once as
//! `INSERT INTO t (cols) SELECT * FROM floe_internal.copy` (so values convert exactly as string
//! literals do in an INSERT, defaults and constraints included). The bulk-load path:
//!
//! - the parser writes values straight into Arrow string columns ([`TextColumns`]), no
//!   allocation per value or row;
//! - every [`CHUNK_ROWS`] rows run through the plan at once (vectorised casts, defaults,
//!   CHECKs), are encoded once into keys and rows, and go to the transaction in one
//!   [`floe_storage::Txn::insert_new`] call: one pass over the lock table, the hot tier (to
//!   check for existing keys) and the write set per chunk, not one await per row;
//! - the commit encodes the log record batch by batch ([`floe_storage::codec::RecordBuilder`]).
//!
//! So memory during a COPY is the rows themselves (the write set, which becomes the hot tier
//! at commit) plus one chunk, and the `--memory-limit` check runs per chunk (53200 beyond it).
//! The whole COPY is one transaction: nothing is visible before it commits and a failed COPY
//! leaves nothing behind. Errors name the input line in CONTEXT (`COPY t, line 3`) like
//! PostgreSQL; when the conversion of a chunk fails, the first failing row is found by
//! converting ever shorter prefixes of the chunk (a bisection, only on that error path).
//!
//! COPY TO runs the query (or `SELECT cols FROM t`) and hands the rows to the wire layer with
//! the output options.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    CopySource, CopyTarget, Expr, ObjectName, SelectItem, Statement, TableFactor, TableObject,
};

use super::dml::{replace_sources, CopyRowsError, DmlPlan};
use super::{Session, StatementResult, StatementTxn};
use crate::copy::{CopyOptions, CopyParser, TextColumns};
use crate::error::{sqlstate, SqlError, SqlResult};

/// Rows converted and written at a time.
const CHUNK_ROWS: usize = 16 * 1024;

/// A COPY FROM STDIN waiting for the client's data.
pub(crate) struct CopyIn {
    plan: Arc<DmlPlan>,
    /// The INSERT the plan was made from (planned again when NaN widens a column).
    insert: Statement,
    source_schema: SchemaRef,
    parser: CopyParser,
    txn: StatementTxn,
    rows: TextColumns,
    count: u64,
    /// The first error; later data is read and dropped, the error is reported at the end.
    error: Option<SqlError>,
}

impl Session {
    pub(super) async fn copy(&mut self, statement: Statement) -> SqlResult<StatementResult> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            values,
        } = statement
        else {
            return Err(SqlError::internal("not a COPY statement"));
        };
        let options = CopyOptions::from_ast(&options, &legacy_options)?;
        match (&target, to) {
            (CopyTarget::Stdin, false) | (CopyTarget::Stdout, true) => {}
            _ => {
                return Err(SqlError::not_supported(
                    "COPY to or from a file or program is not supported; use STDIN/STDOUT \
                     (psql's \\copy)",
                ))
            }
        }
        if to {
            let query = match source {
                CopySource::Query(query) => *query,
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let mut query = crate::sqlbuild::template_query("SELECT * FROM t")?;
                    let select = crate::sqlbuild::select_mut(&mut query)?;
                    if let Some(TableFactor::Table { name, .. }) =
                        select.from.first_mut().map(|t| &mut t.relation)
                    {
                        *name = table_name;
                    }
                    if !columns.is_empty() {
                        select.projection = columns
                            .into_iter()
                            .map(|c| SelectItem::UnnamedExpr(Expr::Identifier(c)))
                            .collect();
                    }
                    query
                }
            };
            let statement = Statement::Query(Box::new(query));
            let prepared = self.prepare(Some(statement), &[]).await?;
            return match Box::pin(self.execute(&prepared, vec![])).await? {
                StatementResult::Rows { rows, .. } => {
                    Ok(StatementResult::CopyOut { rows, options })
                }
                _ => Err(SqlError::internal("COPY query returned no rows")),
            };
        }
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(SqlError::syntax("COPY FROM needs a table"));
        };
        let mut def = self.relation(&table_name)?;
        if self.db().relations_locked() {
            // Uncommitted DDL of another session on the table: wait, then look again.
            self.wait_for_tables(vec![def.id]).await?;
            def = self.relation(&table_name)?;
        }
        let names: Vec<String> = if columns.is_empty() {
            def.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            crate::copy::column_names(&columns)
        };
        let width = names.len();
        let source_schema: SchemaRef = Arc::new(Schema::new(
            (0..width)
                .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let mut insert = self.parse_one(&format!(
            "INSERT INTO t SELECT * FROM {}.copy",
            crate::catalog::INTERNAL_SCHEMA
        ))?;
        if let Statement::Insert(insert) = &mut insert {
            insert.table = TableObject::TableName(table_name.clone());
            insert.columns = columns.iter().cloned().map(ObjectName::from).collect();
        }
        let (plan, _, _) = self
            .plan_dml_from(&insert, &[], Some(source_schema.clone()))
            .await?;
        let txn = self.statement_txn().await?;
        let copy_in = CopyIn {
            plan: Arc::new(plan),
            insert,
            source_schema,
            parser: CopyParser::new(options, &def.name),
            txn,
            rows: TextColumns::new(names),
            count: 0,
            error: None,
        };
        // Data given inline after the statement (a script piped to psql).
        if !values.is_empty() {
            let mut inline = Vec::new();
            for value in values {
                inline.extend_from_slice(value.unwrap_or_else(|| "\\N".into()).as_bytes());
                inline.push(b'\n');
            }
            self.copy_in = Some(copy_in);
            self.copy_data(&[inline]).await;
            let tag = self.copy_done().await?;
            return Ok(StatementResult::Command(tag));
        }
        self.copy_in = Some(copy_in);
        Ok(StatementResult::CopyIn { columns: width })
    }

    /// Whether a COPY FROM STDIN is waiting for data.
    pub fn copy_in_progress(&self) -> bool {
        self.copy_in.is_some()
    }

    /// COPY data from the client, in the pieces it came in: parsed (a line may continue in
    /// the next piece), and the rows written once a chunk is full. Errors are kept for
    /// [`Session::copy_done`]. The wire layer collects the client's CopyData messages (one
    /// per row from pgbench or psql's `\copy`) into about 128 KiB of pieces before calling
    /// this, without copying them.
    pub async fn copy_data<B: AsRef<[u8]>>(&mut self, pieces: &[B]) {
        let Some(mut state) = self.copy_in.take() else {
            return;
        };
        if state.error.is_none() {
            let parsed = pieces
                .iter()
                .try_for_each(|piece| state.parser.feed(piece.as_ref(), &mut state.rows));
            if let Err(e) = parsed {
                state.error = Some(e);
            } else if state.rows.len() >= CHUNK_ROWS {
                if let Err(e) = self.write_copy_rows(&mut state).await {
                    state.error = Some(e);
                }
            }
        }
        self.copy_in = Some(state);
    }

    /// The client's data ended: writes the rest, commits (outside a transaction block) and
    /// returns the command tag.
    pub async fn copy_done(&mut self) -> SqlResult<String> {
        let Some(mut state) = self.copy_in.take() else {
            return Err(SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "unexpected CopyDone: no COPY in progress",
            ));
        };
        let mut result = match state.error.take() {
            Some(e) => Err(e),
            None => state.parser.finish(&mut state.rows),
        };
        if result.is_ok() {
            result = self.write_copy_rows(&mut state).await;
        }
        let count = state.count;
        let mut outcome = self.finish_statement_txn(state.txn, result).await;
        // The last statement of a multi-statement query string ends its implicit block.
        let ended = self.end_implicit(outcome.is_ok()).await;
        if outcome.is_ok() {
            outcome = ended;
        }
        match outcome {
            Ok(()) => Ok(format!("COPY {count}")),
            Err(e) => {
                self.on_statement_error();
                Err(e)
            }
        }
    }

    /// The client aborted the COPY: nothing of it is kept.
    pub fn copy_fail(&mut self, message: &str) -> SqlError {
        self.copy_in = None;
        self.on_statement_error();
        self.abort_implicit();
        SqlError::new(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {message}"),
        )
    }

    /// Writes the rows parsed so far, seeing the block's uncommitted DDL (COPY data arrives
    /// outside [`Session::execute`], which otherwise puts it in scope).
    async fn write_copy_rows(&mut self, state: &mut CopyIn) -> SqlResult<()> {
        // The block's pending catalog, or the COPY's own once NaN widened a column.
        let pending = state.txn.pending_catalog();
        match (!pending.is_empty()).then_some(pending) {
            Some(pending) => {
                Box::pin(floe_storage::with_pending_catalog(
                    pending,
                    self.write_copy_rows_now(state),
                ))
                .await
            }
            None => self.write_copy_rows_now(state).await,
        }
    }

    async fn write_copy_rows_now(&mut self, state: &mut CopyIn) -> SqlResult<()> {
        if state.rows.is_empty() {
            return Ok(());
        }
        let (columns, lines) = state.rows.take();
        let batch = RecordBatch::try_new(state.source_schema.clone(), columns)?;
        let mut result = self.copy_chunk(state, &batch).await;
        // NaN into a `numeric(p, s)` column held as `Decimal128`: the column becomes a wide
        // numeric inside the COPY's transaction (rows already written included), and the
        // chunk is converted again (once per typmod that needs it).
        while let Err(CopyRowsError::Convert(error)) = &result {
            let Some(typmod) = crate::numeric::value::nan_in_fixed(error) else {
                break;
            };
            let table = state.plan.table_def().id;
            // Boxed (rare): keeps the COPY's futures small.
            if !Box::pin(self.widen_for_nan_in(&mut state.txn, table, typmod)).await? {
                break;
            }
            let pending = state.txn.pending_catalog();
            let (plan, _, _) = Box::pin(floe_storage::with_pending_catalog(
                pending,
                self.plan_dml_from(&state.insert, &[], Some(state.source_schema.clone())),
            ))
            .await?;
            state.plan = Arc::new(plan);
            result = self.copy_chunk(state, &batch).await;
        }
        match result {
            Ok(written) => {
                state.count += written;
                Ok(())
            }
            Err(CopyRowsError::Row(error, row)) => Err(match row.and_then(|r| lines.get(r)) {
                Some(&line) => error.with_context(state.parser.context(line)),
                None => error,
            }),
            Err(CopyRowsError::Convert(error)) => {
                let line = self.first_failing_line(state, &batch, &lines).await;
                Err(match line {
                    Some(line) => error.with_context(state.parser.context(line)),
                    None => error,
                })
            }
        }
    }

    /// Converts and writes one chunk of rows.
    async fn copy_chunk(
        &self,
        state: &mut CopyIn,
        batch: &RecordBatch,
    ) -> Result<u64, CopyRowsError> {
        let select = replace_sources(state.plan.select().clone(), &[("copy", batch.clone())])
            .map_err(|e| CopyRowsError::Row(e, None))?;
        self.copy_rows(&state.plan, &select, &mut state.txn).await
    }

    /// The line of the first row of `batch` whose conversion fails: the shortest failing
    /// prefix, by bisection (an error path only).
    async fn first_failing_line(
        &mut self,
        state: &mut CopyIn,
        batch: &RecordBatch,
        lines: &[usize],
    ) -> Option<usize> {
        // Invariant: the prefix of `high` rows fails, that of `low` rows converts.
        let (mut low, mut high) = (0, batch.num_rows());
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            let prefix = batch.slice(0, mid);
            let select = replace_sources(state.plan.select().clone(), &[("copy", prefix)]).ok()?;
            if self.copy_converts(&select, &mut state.txn).await {
                low = mid;
            } else {
                high = mid;
            }
        }
        lines.get(high.checked_sub(1)?).copied()
    }
}
