//! A fault-injecting object store for tests: it fails a seeded share of the calls of chosen
//! kinds, and some failed puts land before failing (a timeout after the store applied the
//! write), which is what makes retries ambiguous.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::Mutex;

/// Kinds of calls faults can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
    Delete,
}

#[derive(Debug)]
struct Faults {
    rng: u64,
    ops: Vec<Op>,
    per_mille: u64,
    injected: u64,
}

/// Wraps a store and fails a share of its calls (see the module doc).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Mutex<Faults>,
}

impl FaultyStore {
    /// No faults until [`FaultyStore::fail`]; the seed makes them replayable.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            faults: Mutex::new(Faults {
                rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                ops: Vec::new(),
                per_mille: 0,
                injected: 0,
            }),
        })
    }

    /// Fails `per_mille`/1000 of the calls of `ops` from now on.
    pub fn fail(&self, ops: &[Op], per_mille: u64) {
        let mut faults = self.faults.lock();
        faults.ops = ops.to_vec();
        faults.per_mille = per_mille;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.faults.lock().injected
    }

    /// Whether this call fails, and (for puts) whether it lands first.
    fn roll(&self, op: Op) -> Option<bool> {
        let mut faults = self.faults.lock();
        if !faults.ops.contains(&op) {
            return None;
        }
        faults.rng ^= faults.rng << 13;
        faults.rng ^= faults.rng >> 7;
        faults.rng ^= faults.rng << 17;
        let roll = faults.rng % 1000;
        if roll >= faults.per_mille {
            return None;
        }
        faults.injected += 1;
        Some(roll.is_multiple_of(2))
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: "injected fault".into(),
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.roll(Op::Put) {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(lands) => {
                if lands {
                    self.inner.put_opts(location, payload, opts).await?;
                }
                Err(injected())
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.roll(Op::Put).is_some() {
            return Err(injected());
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self.roll(Op::Get).is_some() {
            return Err(injected());
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if self.roll(Op::Get).is_some() {
            return Err(injected());
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.roll(Op::Delete).is_some() {
            return futures::stream::once(async { Err(injected()) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.roll(Op::List).is_some() {
            return futures::stream::once(async { Err(injected()) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        if self.roll(Op::List).is_some() {
            return Err(injected());
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        if self.roll(Op::Put).is_some() {
            return Err(injected());
        }
        self.inner.copy_opts(from, to, options).await
    }
}
