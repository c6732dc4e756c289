//! COPY on the wire: the copy-in sub-protocol (CopyData/CopyDone/CopyFail routed to the
//! session) and copy-out (rows encoded as text, then written in COPY's format).
//!
//! Clients send a CopyData message per row (pgbench, psql's `\copy`): the messages' data is
//! collected here ([`CopyPending`], the protocol layer's buffers, not copied),
//! [`COPY_BATCH_BYTES`] at a time, before the session is locked and given it, instead of one
//! session lock and call per row.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use floe_sql::copy::{write_row, CopyOptions};
use futures::sink::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::CommandComplete;
use pgwire::messages::PgWireBackendMessage;

use crate::handler::{txn_status, user_error, Connection};

/// COPY data collected before the session gets it.
const COPY_BATCH_BYTES: usize = 128 * 1024;

/// The values of a text-format DataRow (`None`: NULL).
fn fields(row: &DataRow) -> Vec<Option<&str>> {
    let data = &row.data[..];
    let mut out = Vec::with_capacity(row.field_count.max(0) as usize);
    let mut pos = 0;
    for _ in 0..row.field_count {
        let Some(len) = data.get(pos..pos + 4) else {
            break;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        pos += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let end = pos + len as usize;
        out.push(data.get(pos..end).and_then(|b| std::str::from_utf8(b).ok()));
        pos = end;
    }
    out
}

/// One CopyData message per row, in `options`' format.
pub(crate) fn copy_data(rows: &[DataRow], options: &CopyOptions) -> Vec<CopyData> {
    let mut out = Vec::with_capacity(rows.len());
    let mut buffer = Vec::new();
    for row in rows {
        buffer.clear();
        write_row(&fields(row), options, &mut buffer);
        out.push(CopyData::new(Bytes::copy_from_slice(&buffer)));
    }
    out
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let full = {
            let mut pending = self.shared.copy_pending();
            pending.bytes += copy_data.data.len();
            pending.pieces.push(copy_data.data);
            (pending.bytes >= COPY_BATCH_BYTES).then(|| pending.take())
        };
        if let Some(pieces) = full {
            // Boxed: the session's write path is a deep future, and inline it would make
            // this one (built and moved into a box per CopyData message, one per row) as big.
            Box::pin(self.give_copy_data(pieces)).await;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let rest = self.shared.copy_pending().take();
        let mut guard = self.shared.session.lock().await;
        let Some(session) = guard.as_mut() else {
            return Ok(());
        };
        session.copy_data(&rest).await;
        let result = session.copy_done().await;
        client.set_transaction_status(txn_status(session.txn_status()));
        let tag = result.map_err(user_error)?;
        client
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.shared.copy_pending().take();
        let mut guard = self.shared.session.lock().await;
        match guard.as_mut() {
            Some(session) => {
                let error = session.copy_fail(&fail.message);
                client.set_transaction_status(txn_status(session.txn_status()));
                user_error(error)
            }
            None => user_error(floe_sql::SqlError::query_canceled()),
        }
    }
}

impl Connection {
    /// Hands collected COPY data to the session; the list's memory is kept for the next.
    async fn give_copy_data(&self, mut pieces: Vec<Bytes>) {
        {
            let mut guard = self.shared.session.lock().await;
            if let Some(session) = guard.as_mut() {
                session.copy_data(&pieces).await;
            }
        }
        pieces.clear();
        let mut pending = self.shared.copy_pending();
        if pending.pieces.is_empty() {
            std::mem::swap(&mut pending.pieces, &mut pieces);
        }
    }
}

/// CopyData payloads received and not yet given to the session. They are kept as the
/// protocol layer's buffers (no copy per message); a client sends one message per row.
#[derive(Debug, Default)]
pub(crate) struct CopyPending {
    pieces: Vec<Bytes>,
    bytes: usize,
}

impl CopyPending {
    /// The pieces, leaving none.
    fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        std::mem::take(&mut self.pieces)
    }
}
