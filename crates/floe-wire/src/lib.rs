//! Floe's PostgreSQL protocol layer (protocol v3 through `pgwire`).
//!
//! Owns the connection lifecycle: startup (trust authentication for now), the simple and the
//! extended query protocol, cancel requests, statement timeouts, notices, ParameterStatus, and
//! the encoding of Arrow results and decoding of bound parameters in text and binary formats
//! (Arrow⇄Postgres value encoding is `arrow-pg`'s; a few PostgreSQL types Arrow cannot tell
//! apart — uuid, jsonb — are encoded here). It plans and executes nothing itself: every
//! statement goes to a [`floe_sql::Session`].
//!
//! Departures from pgwire's defaults: the transaction status in ReadyForQuery is always taken
//! from the session (which knows about failed blocks), not from pgwire's own bookkeeping; and
//! extended-protocol replies (BindComplete, descriptions, rows, CommandComplete) are buffered
//! until Sync or Flush as in PostgreSQL, not flushed per message (module `deferred`): one
//! write per `PQexecPrepared` instead of three, which doubled pgbench's select-only throughput.

mod cancel;
mod copy;
mod deferred;
mod encode;
mod handler;
mod params;
mod server;

pub use server::{Server, ServerConfig};
