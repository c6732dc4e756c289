//! Floe's SQL layer: sessions and the statements they run.
//!
//! Owns parsing (sqlparser, PostgreSQL dialect), routing each statement to DataFusion or to the
//! session itself (transactions, `SET`/`SHOW`), PostgreSQL type semantics on top of Arrow, and
//! the mapping of every failure to a SQLSTATE. It must not know how bytes are stored
//! (`floe-storage`) or how they travel (`floe-wire`).

mod apply;
mod arithmetic;
pub mod array_text;
mod bounded_text;
mod cast_names;
pub mod catalog;
pub mod colnames;
mod common_types;
mod const_errors;
pub mod copy;
mod date_days;
pub mod datetime;
mod datetime_udf;
pub mod engine;
pub mod error;
mod filter_pushdown_guard;
mod functions;
mod interval;
mod lazy_logic;
pub mod literals;
pub mod matview;
mod names;
mod null_conditions;
pub mod numeric;
mod param_types;
pub mod pg_catalog;
mod rewrite;
pub mod session;
mod set_operations;
mod sort_positions;
mod sqlbuild;
mod subquery;
mod syntax;
mod table_params;
mod type_tags;
pub mod types;
pub mod vars;
mod view_shapes;
mod window_frames;

pub use datafusion;
pub use engine::{Engine, EngineConfig};
pub use error::{sqlstate, SqlError, SqlResult};
pub use session::{Notice, Prepared, RowStream, Session, StatementResult, TxnStatus};
pub use types::SqlType;
