//! Sequences: `nextval`, `setval` and the current value of each sequence.
//!
//! A sequence's state is in memory; on disk (column family `sequences`) is only a reservation:
//! a value at least as far as any handed out. `nextval` makes a new reservation durable (fsync)
//! before it returns a value past the old one, [`SEQUENCE_RESERVE`] values at a time.
//!
//! Invariant: after a crash a sequence continues past every value it handed out (gaps are
//! allowed, repeats are not). Temporary sequences are never stored.

use std::collections::HashMap;

use rocksdb::WriteOptions;

use crate::catalog::TableDef;
use crate::db::{cf, Db, Inner};
use crate::error::{StorageError, StorageResult};

pub(crate) const CF_SEQUENCES: &str = "sequences";
/// Values a sequence reserves on disk at a time (PostgreSQL logs 32 ahead too).
const SEQUENCE_RESERVE: i64 = 32;

#[derive(Debug)]
pub(crate) struct SequenceState {
    /// The last value handed out, and whether one was (`setval(…, false)` clears it).
    last: i64,
    called: bool,
    /// Values up to here are covered by the durable reservation.
    reserved: Option<i64>,
}

impl Db {
    /// `nextval`: the sequence's next value, durable before it is returned.
    pub fn nextval(&self, sequence: &TableDef) -> StorageResult<Option<i64>> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal(format!(
                "\"{}\" is not a sequence",
                sequence.name
            )));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        let next = if state.called {
            match state.last.checked_add(params.increment) {
                Some(v) if v <= params.max && v >= params.min => v,
                _ if params.cycle && params.increment > 0 => params.min,
                _ if params.cycle => params.max,
                _ => return Ok(None),
            }
        } else {
            state.last
        };
        let reserved = state.reserved.is_some_and(|r| {
            if params.increment > 0 {
                next <= r
            } else {
                next >= r
            }
        });
        if !reserved {
            let upto = next.saturating_add(params.increment.saturating_mul(SEQUENCE_RESERVE));
            if !sequence.is_temporary() {
                self.inner.persist_sequence(sequence.id, upto)?;
            }
            state.reserved = Some(upto);
        }
        state.last = next;
        state.called = true;
        Ok(Some(next))
    }

    /// `setval(seq, value, is_called)`.
    pub fn setval(&self, sequence: &TableDef, value: i64, called: bool) -> StorageResult<()> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal("not a sequence".into()));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        // After a crash, continue after `value` (a gap is allowed, a repeat is not).
        if !sequence.is_temporary() {
            self.inner.persist_sequence(sequence.id, value)?;
        }
        state.last = value;
        state.called = called;
        state.reserved = Some(value);
        Ok(())
    }

    /// The sequence's last value and whether it was handed out (for `SELECT * FROM seq`).
    pub fn sequence_value(&self, sequence: &TableDef) -> StorageResult<(i64, bool)> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal("not a sequence".into()));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        Ok((state.last, state.called))
    }
}

impl Inner {
    fn sequence_state<'a>(
        &self,
        states: &'a mut HashMap<u32, SequenceState>,
        id: u32,
        params: &crate::catalog::SequenceDef,
        temporary: bool,
    ) -> StorageResult<&'a mut SequenceState> {
        let entry = match states.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => return Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => e,
        };
        // A temporary sequence is never stored.
        let stored = match temporary {
            true => None,
            false => self
                .rocks
                .get_cf(cf(&self.rocks, CF_SEQUENCES)?, id.to_be_bytes())?,
        };
        let state = match stored {
            // After a restart, continue past everything that may have been handed out.
            Some(bytes) => {
                let reserved = i64::from_be_bytes(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StorageError::corrupt("sequence", "not 8 bytes"))?,
                );
                SequenceState {
                    last: reserved,
                    called: true,
                    reserved: Some(reserved),
                }
            }
            None => SequenceState {
                last: params.start,
                called: false,
                reserved: None,
            },
        };
        Ok(entry.insert(state))
    }

    fn persist_sequence(&self, id: u32, reserved: i64) -> StorageResult<()> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.rocks.put_cf_opt(
            cf(&self.rocks, CF_SEQUENCES)?,
            id.to_be_bytes(),
            reserved.to_be_bytes(),
            &sync,
        )?;
        Ok(())
    }
}
