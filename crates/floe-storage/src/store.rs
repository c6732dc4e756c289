//! Where the cold tier's objects live: an object store and a prefix inside it, the calls the
//! cold tier makes on it (retried, their errors typed), and the runtime those calls run on.
//!
//! A location is `file:///some/dir` (the default is a folder inside the data directory) or
//! `s3://bucket/prefix`, whose region, credentials and endpoint come from the usual `AWS_*`
//! settings (`AmazonS3Builder::from_env`), so any S3-compatible endpoint works; plain HTTP is
//! allowed only for a loopback endpoint (a local test server).
//!
//! Invariants:
//! - the cold tier writes every object create-only ([`ColdStore::put_create`]): a name is
//!   written at most once, so a stale writer can never replace a live object. For `file://`
//!   locations the object and its directory are fsync'd before the put returns (object_store's
//!   local store does not), so "put returned" means durable on every backend.
//! - every call runs on the store's own runtime ([`ColdIo`]): a synchronous caller (a
//!   [`crate::source::Source`] lookup) waits for it from any thread, inside or outside
//!   another tokio runtime, without deadlock, and S3 connections live on one runtime.
//! - transient failures (timeouts, 5xx, I/O errors) are retried with backoff, first by
//!   object_store's own S3 client ([`RetryConfig`]), then by [`RetryPolicy`] around each of
//!   our calls; the rest (missing object, already exists, denied) are returned at once.

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};

use crate::error::{ColdError, ColdResult};

/// The folder inside the data directory that holds cold data when no location is given.
pub const DEFAULT_COLD_DIR: &str = "cold";

thread_local! {
    /// Set on the cold runtime's own threads: a blocking wait there could deadlock.
    static ON_COLD_IO: Cell<bool> = const { Cell::new(false) };
}

/// The cold tier's own tokio runtime: every object-store call and Parquet read runs here.
///
/// Why a runtime of its own: [`crate::source::Source`] is synchronous (the hot tier answers
/// from memory, and the engine calls sources from DataFusion's threads and from synchronous
/// transaction code). A cold lookup sends its future here and waits on a channel. The wait
/// needs nothing from the caller's thread, so it cannot deadlock whether the caller is a
/// plain thread, a current-thread runtime or a multi-thread runtime's worker (where
/// `Handle::block_on` would panic and `block_in_place` is unavailable on current-thread
/// runtimes). The cost: the caller's thread is parked for the read (one round trip per row
/// group touched); batch scans will read runs asynchronously through DataFusion instead.
#[derive(Debug)]
pub struct ColdIo {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl ColdIo {
    /// A runtime with `threads` workers.
    pub fn new(threads: usize) -> ColdResult<ColdIo> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("floe-cold-io")
            .on_thread_start(|| ON_COLD_IO.with(|flag| flag.set(true)))
            .enable_all()
            .build()
            .map_err(|e| ColdError::Internal(format!("could not start the cold runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(ColdIo {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `future` here and waits for it from a synchronous caller.
    pub fn block_on<F>(&self, future: F) -> ColdResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if ON_COLD_IO.with(|flag| flag.get()) {
            return Err(ColdError::Internal(
                "a blocking cold read on the cold runtime's own thread".into(),
            ));
        }
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            // The receiver is gone only if the caller stopped waiting.
            let _ = done.send(future.await);
        });
        wait.recv()
            .map_err(|_| ColdError::Internal("a cold read stopped before it finished".into()))
    }

    /// Runs `future` here and awaits it from any async caller.
    pub async fn run<F>(&self, future: F) -> ColdResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|e| ColdError::Internal(format!("a cold task failed: {e}")))
    }
}

impl Drop for ColdIo {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; this does not wait.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How our own object-store calls are retried (on top of the S3 client's retries).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The wait before the first retry; it doubles per retry up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// How a create-only put ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was created by this call.
    New,
    /// A retry found the object already there: an earlier attempt of this call may have
    /// written it before failing (a timeout after the store applied the put). The caller
    /// decides (a run name is unique to its writer, so it is ours; a manifest is compared).
    FoundOnRetry,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The object's name below the store's prefix.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The cold tier's object store: a store, a prefix in it, a retry policy and the runtime
/// every call runs on. Share it as `Arc<ColdStore>`.
#[derive(Debug)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    /// The directory a `file://` location maps names to (for fsync).
    local_root: Option<PathBuf>,
    retry: RetryPolicy,
    io: ColdIo,
}

impl ColdStore {
    /// The store at `location` (`file:///dir` or `s3://bucket/prefix`), or at
    /// `<data_dir>/cold` when `location` is `None`.
    pub fn open(location: Option<&str>, data_dir: &std::path::Path) -> ColdResult<ColdStore> {
        let io = ColdIo::new(2)?;
        let Some(location) = location else {
            return ColdStore::local(data_dir.join(DEFAULT_COLD_DIR), io);
        };
        let bad = |detail: &str| ColdError::Location {
            url: location.to_string(),
            detail: detail.to_string(),
        };
        if let Some(dir) = location.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad(
                    "a file:// location needs an absolute path (file:///dir)",
                ));
            }
            return ColdStore::local(PathBuf::from(dir), io);
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("an s3:// location needs a bucket (s3://bucket/prefix)"));
            }
            let store = s3_store(bucket).map_err(|e| bad(&e.to_string()))?;
            let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| bad(&e.to_string()))?;
            tracing::info!(location, "cold tier on S3");
            return Ok(ColdStore {
                store,
                prefix,
                location: location.to_string(),
                local_root: None,
                retry: RetryPolicy::default(),
                io,
            });
        }
        Err(bad("expected file:///dir or s3://bucket/prefix"))
    }

    fn local(dir: PathBuf, io: ColdIo) -> ColdResult<ColdStore> {
        let bad = |detail: String| ColdError::Location {
            url: format!("file://{}", dir.display()),
            detail,
        };
        std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
        Ok(ColdStore {
            store: Arc::new(store),
            prefix: Path::default(),
            location: format!("file://{}", dir.display()),
            local_root: Some(dir),
            retry: RetryPolicy::default(),
            io,
        })
    }

    /// A store over `store` (an in-memory store, a test's fault-injecting wrapper) with
    /// names below `prefix`.
    pub fn with_object_store(store: Arc<dyn ObjectStore>, prefix: &str) -> ColdResult<ColdStore> {
        let location = format!("{store}/{prefix}");
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| ColdError::Location {
            url: location.clone(),
            detail: e.to_string(),
        })?;
        Ok(ColdStore {
            store,
            prefix,
            location,
            local_root: None,
            retry: RetryPolicy::default(),
            io: ColdIo::new(2)?,
        })
    }

    /// An empty in-memory store (tests).
    pub fn in_memory() -> ColdResult<ColdStore> {
        ColdStore::with_object_store(Arc::new(InMemory::new()), "")
    }

    /// The same store with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> ColdStore {
        self.retry = retry;
        self
    }

    /// The location as configured (for logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store underneath (for readers that take one, such as Parquet's).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The runtime cold calls run on.
    pub fn io(&self) -> &ColdIo {
        &self.io
    }

    /// The store path of `name` (a name below the prefix, `/`-separated).
    pub fn path(&self, name: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The name below the prefix of a store path (`None`: outside the prefix).
    fn name_of(&self, path: &Path) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    /// Runs one object-store call with retries: `call(attempt)` for attempt 0, 1, …; a
    /// transient error is retried after a backoff, anything else returned.
    async fn retrying<T, F, Fut>(&self, op: &'static str, name: &str, mut call: F) -> ColdResult<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 0;
        loop {
            match call(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) if is_transient(&error) && attempt + 1 < self.retry.attempts => {
                    tracing::warn!(op, name, attempt, %error, "object store call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(ColdError::ObjectStore {
                        op,
                        path: name.to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// Writes `bytes` as `name` if no object has that name (create-only), durably.
    pub async fn put_create(&self, name: &str, bytes: Bytes) -> ColdResult<Created> {
        let path = self.path(name);
        let payload = PutPayload::from(bytes);
        let outcome = self
            .retrying("put", name, |attempt| {
                let (store, path, payload) = (self.store.clone(), path.clone(), payload.clone());
                async move {
                    let options = PutOptions::from(PutMode::Create);
                    match store.put_opts(&path, payload, options).await {
                        Ok(_) => Ok(Created::New),
                        Err(object_store::Error::AlreadyExists { .. }) if attempt > 0 => {
                            Ok(Created::FoundOnRetry)
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await
            .map_err(|e| match e {
                ColdError::ObjectStore {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                } => ColdError::AlreadyExists {
                    path: name.to_string(),
                },
                other => other,
            })?;
        self.sync_local(name).await?;
        Ok(outcome)
    }

    /// fsyncs a `file://` object and its directory (the local store writes without fsync).
    async fn sync_local(&self, name: &str) -> ColdResult<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = name
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(root.clone(), |dir, part| dir.join(part));
        let name_owned = name.to_string();
        let synced = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ColdError::Internal(format!("fsync task failed: {e}")))?;
        synced.map_err(|e| ColdError::ObjectStore {
            op: "fsync",
            path: name_owned,
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        })
    }

    /// The bytes of `name`.
    pub async fn get(&self, name: &str) -> ColdResult<Bytes> {
        let path = self.path(name);
        self.retrying("get", name, |_| {
            let (store, path) = (self.store.clone(), path.clone());
            async move { store.get(&path).await?.bytes().await }
        })
        .await
    }

    /// Bytes `range` of `name`.
    pub async fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> ColdResult<Bytes> {
        let path = self.path(name);
        self.retrying("read", name, |_| {
            let (store, path, range) = (self.store.clone(), path.clone(), range.clone());
            async move { store.get_range(&path, range).await }
        })
        .await
    }

    /// Several byte ranges of `name` (the store may coalesce them into fewer requests).
    pub async fn get_ranges(
        &self,
        name: &str,
        ranges: &[std::ops::Range<u64>],
    ) -> ColdResult<Vec<Bytes>> {
        let path = self.path(name);
        self.retrying("read", name, |_| {
            let (store, path) = (self.store.clone(), path.clone());
            async move { store.get_ranges(&path, ranges).await }
        })
        .await
    }

    /// The objects whose names start with `dir/` (names below the store's prefix).
    pub async fn list(&self, dir: &str) -> ColdResult<Vec<Listed>> {
        let path = self.path(dir);
        let listed: Vec<object_store::ObjectMeta> = self
            .retrying("list", dir, |_| {
                let (store, path) = (self.store.clone(), path.clone());
                async move { store.list(Some(&path)).try_collect().await }
            })
            .await?;
        let mut out: Vec<Listed> = listed
            .into_iter()
            .filter_map(|meta| {
                Some(Listed {
                    name: self.name_of(&meta.location)?,
                    size: meta.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes `name`; an object already gone is not an error.
    pub async fn delete(&self, name: &str) -> ColdResult<()> {
        let path = self.path(name);
        self.retrying("delete", name, |_| {
            let (store, path) = (self.store.clone(), path.clone());
            async move {
                match store.delete(&path).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                }
            }
        })
        .await
    }
}

impl ColdError {
    /// Whether the failure was of the kind retries are for (see [`is_transient`]): once
    /// returned, retries were spent on it.
    pub fn is_transient(&self) -> bool {
        matches!(self, ColdError::ObjectStore { source, .. } if is_transient(source))
    }

    /// Whether the object a call named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ColdError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// Whether an object-store error may go away on retry: the store's generic failures (I/O,
/// HTTP after the client's own retries, timeouts) and a failed task; not a missing object,
/// a name taken, a failed precondition, a refused or unsupported call.
fn is_transient(error: &object_store::Error) -> bool {
    matches!(
        error,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// An S3 store for `bucket` configured from the `AWS_*` environment.
fn s3_store(bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .unwrap_or_default();
    if ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|local| endpoint.starts_with(local))
    {
        builder = builder.with_allow_http(true);
    }
    if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(60),
    };
    // Timeouts key by key: `with_client_options` would replace every client option read from
    // the environment (`AWS_ALLOW_HTTP`, proxies, …) and the loopback allowance above.
    for (key, value) in [
        (ClientConfigKey::Timeout, "30s"),
        (ClientConfigKey::ConnectTimeout, "5s"),
    ] {
        let key = AmazonS3ConfigKey::Client(key);
        if builder.get_config_value(&key).is_none() {
            builder = builder.with_config(key, value);
        }
    }
    Ok(Arc::new(builder.with_retry(retry).build()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_explain() {
        let dir = tempfile::tempdir().unwrap();
        let default = ColdStore::open(None, dir.path()).unwrap();
        assert!(default.location().ends_with("/cold"));
        assert!(dir.path().join("cold").is_dir());
        let url = format!("file://{}/elsewhere", dir.path().display());
        assert_eq!(
            ColdStore::open(Some(&url), dir.path()).unwrap().location(),
            url
        );
        for bad in ["file://relative", "s3://", "gs://bucket/x", "/plain/path"] {
            let err = ColdStore::open(Some(bad), dir.path()).unwrap_err();
            assert!(matches!(err, ColdError::Location { .. }), "{bad}: {err}");
        }
        // An S3 location builds without touching the network.
        let s3 = ColdStore::open(Some("s3://bucket/some/prefix/"), dir.path()).unwrap();
        assert_eq!(s3.path("runs/1").as_ref(), "some/prefix/runs/1");
    }

    #[test]
    fn create_only_puts_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let local = Arc::new(ColdStore::open(Some(&url), dir.path()).unwrap());
        let memory =
            Arc::new(ColdStore::with_object_store(Arc::new(InMemory::new()), "pre/fix").unwrap());
        for store in [local, memory] {
            let s = store.clone();
            store
                .io()
                .block_on(async move {
                    assert_eq!(
                        s.put_create("a/x", Bytes::from_static(b"1")).await.unwrap(),
                        Created::New
                    );
                    let again = s.put_create("a/x", Bytes::from_static(b"2")).await;
                    assert!(matches!(again, Err(ColdError::AlreadyExists { .. })));
                    s.put_create("a/y", Bytes::from_static(b"22"))
                        .await
                        .unwrap();
                    s.put_create("b/z", Bytes::from_static(b"3")).await.unwrap();
                    assert_eq!(s.get("a/x").await.unwrap().as_ref(), b"1");
                    let listed = s.list("a").await.unwrap();
                    assert_eq!(
                        listed,
                        vec![
                            Listed {
                                name: "a/x".into(),
                                size: 1
                            },
                            Listed {
                                name: "a/y".into(),
                                size: 2
                            }
                        ]
                    );
                    s.delete("a/x").await.unwrap();
                    s.delete("a/x").await.unwrap();
                    assert!(s.get("a/x").await.unwrap_err().is_not_found());
                    assert_eq!(s.list("a").await.unwrap().len(), 1);
                })
                .unwrap();
        }
    }

    /// A synchronous wait works from a plain thread, from a current-thread runtime and from a
    /// multi-thread runtime's worker; a wait on the cold runtime's own thread is refused.
    #[test]
    fn blocking_waits_work_inside_and_outside_runtimes() {
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let read = |store: &Arc<ColdStore>| {
            let s = store.clone();
            store
                .io()
                .block_on(async move { s.list("").await.map(|l| l.len()) })
                .unwrap()
                .unwrap()
        };
        assert_eq!(read(&store), 0);
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = store.clone();
        assert_eq!(current.block_on(async move { read(&s) }), 0);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let s = store.clone();
        assert_eq!(
            multi.block_on(async move { tokio::spawn(async move { read(&s) }).await.unwrap() }),
            0
        );
        let s = store.clone();
        let nested = store
            .io()
            .block_on(async move { s.io().block_on(async { 1 }).is_err() })
            .unwrap();
        assert!(nested);
    }
}
