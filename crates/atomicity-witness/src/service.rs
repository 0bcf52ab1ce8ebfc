//! The witness service: a [`Log`] made durable in SQLite and served over HTTP.
//!
//! One actor thread owns the log and the [`WitnessStore`]. It takes requests in batches, applies
//! them all to the log, commits every new leaf (and the newest checkpoint) in one transaction,
//! and only then answers: *persist before you speak*. A submission is acknowledged, and a
//! checkpoint is shown, only once the leaves it covers are on disk, so a restarted witness
//! always extends every checkpoint it ever served. If a commit fails the log is rebuilt from the
//! database, so memory never runs ahead of the disk.
//!
//! HTTP API (errors are JSON `{"code", "error"}`, request bodies at most [`MAX_BODY`] bytes):
//!
//! - `GET /checkpoint`: the C2SP signed checkpoint note (`text/plain`); starts a block if due.
//! - `GET /block` → `{"block", "time", "block_seconds", "size"}`: the current block, the Unix
//!   time it started, the block length and the tree size; starts a block if due. A payee reads
//!   it to choose the window `S ≤ b < X` of a payment condition.
//! - `POST /submit` `{"p": "<64 hex>"}` → `{"index", "block", "new"}`.
//! - `POST /submit-batch` `{"ps": ["<64 hex>", ...]}` (1 to [`MAX_SUBMIT_BATCH`] secrets) →
//!   `{"entries": [{"index", "block", "new"}, ...]}` in request order. One request to the log,
//!   so all its secrets land in one block and one commit; a bad secret refuses the whole batch.
//! - `GET /bundle/{p hex}`: the [`ProofBundle`](crate::bundle::ProofBundle) encoding
//!   (`application/octet-stream`), 404 if `p` was never submitted.
//! - `POST /bundles` `{"ps": ["<64 hex>", ...]}` (1 to [`MAX_BUNDLES`](crate::bundle::MAX_BUNDLES) secrets): the bundles of
//!   many secrets in one answer (`application/octet-stream`), see
//!   [`encode_bundles`](crate::bundle::encode_bundles).
//! - `GET /entry/{index}` → `{"index", "kind": "commit"|"block", "block", "p"|"time"}`.
//! - `GET /entries?start=N&count=M` (1 ≤ M ≤ [`MAX_ENTRIES`]) → `{"start", "leaves"}`: the
//!   leaves `N..min(N + M, size)` as hex of their canonical encoding
//!   ([`Leaf::to_bytes`](crate::leaf::Leaf::to_bytes)), the exact bytes under the RFC 6962 leaf
//!   hash, so a monitor can download the log and recompute every root. `N == size` gives an
//!   empty list, `N > size` is 404.
//! - `GET /proof/consistency?old=N&new=M` → a JSON array of hex hashes.
//! - `GET /vkey`: the log's C2SP verifier key (`text/plain`).
//! - `GET /checkpoint/cosigned`: the newest checkpoint with the cosignatures collected from the
//!   configured cosigners (404 until one cosigned); bundles use it when it covers the secret.
//!
//! A *censoring* witness ([`WitnessConfig::censor`], for tests) checks submissions as usual
//! but stores nothing and answers 503 `censored`, so clients must publish elsewhere.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use crate::actor::{self, ActorError, Deferred, Reply, Writer, defer};
use crate::cosigning;
use crate::http::{ApiError, bind, json_errors, lock_dir, serve, write_file};
use crate::leaf::Leaf;
use crate::log::{Log, LogError, Submission};
use crate::merkle::Hash;
use crate::note::{Checkpoint, CosignatureVerifier, Note, NoteSignature, Signer};
use crate::store::{StoreError, WitnessStore};

/// The SQLite database.
pub const DB_FILE: &str = "witness.db";
/// The signing key (C2SP signer key string), mode 0600.
pub const KEY_FILE: &str = "witness.key";
/// The URL of a running witness.
pub const URL_FILE: &str = "witness.url";
/// The log's C2SP verifier key.
pub const VKEY_FILE: &str = "witness.vkey";
/// Held locked while a witness runs on the directory.
pub const LOCK_FILE: &str = "witness.lock";
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Block length when none is given.
pub const DEFAULT_BLOCK_SECONDS: u64 = 10;
/// Most secrets in one `POST /submit-batch`.
pub const MAX_SUBMIT_BATCH: usize = 512;
/// Most leaves in one `GET /entries` answer.
pub const MAX_ENTRIES: u64 = 1000;
/// Most requests folded into one transaction.
const MAX_BATCH: usize = 4096;
/// Most new leaves folded into one transaction.
const MAX_BATCH_LEAVES: u64 = 16_384;
/// How often the background task lets blocks advance without traffic.
const TICK_EVERY: Duration = Duration::from_secs(1);

pub use crate::http::{ErrorBody, unix_now};

/// How to run a witness.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    /// Data directory (created if missing).
    pub dir: PathBuf,
    /// Listening address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Block length in seconds (at least 1).
    pub block_seconds: u64,
    /// The log's origin for a new key [default: `atomicity-witness/<8 hex of the public key>`];
    /// with an existing key it must match the key's name.
    pub origin: Option<String>,
    /// Cosigners (watchtowers) to ask for cosignatures on every new checkpoint, as
    /// (verifier key, URL); their cosignatures go into `/checkpoint/cosigned` and the bundles.
    pub cosigners: Vec<(String, String)>,
    /// Test only: a censoring witness. `POST /submit` and `POST /submit-batch` check their input
    /// as usual, then store nothing and answer 503 `censored`; everything else works.
    pub censor: bool,
}

/// Why a witness could not start.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is unusable, or does not fit the configuration or the database.
    #[error("{0}")]
    Key(String),
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The stored leaves do not form a valid log.
    #[error("stored log is invalid: {0}")]
    Log(#[from] LogError),
    /// Another witness runs on this directory.
    #[error("another witness is already running on {0}")]
    Locked(PathBuf),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A witness running in this process.
pub struct RunningWitness {
    /// Its URL (`http://<address>`).
    pub url: String,
    /// The log's origin.
    pub origin: String,
    /// The log's C2SP verifier key.
    pub vkey: String,
    shutdown: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    cosign: Option<tokio::task::JoinHandle<()>>,
    handle: Option<Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    _lock: fs::File,
}

impl RunningWitness {
    /// Stops serving, lets requests in progress finish, and waits for the log to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        for task in [self.ticker.take(), self.cosign.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        self.handle.take();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let _ = fs::remove_file(self.dir.join(URL_FILE));
    }
}

/// Reads the signing key, or creates one if there is none and the log is empty.
fn load_or_create_signer(
    dir: &Path,
    origin: Option<&str>,
    log_is_empty: bool,
) -> Result<Signer, ServiceError> {
    let path = dir.join(KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let signer = Signer::from_skey(text.trim())
                .map_err(|e| ServiceError::Key(format!("{}: {e}", path.display())))?;
            if let Some(origin) = origin
                && origin != signer.name()
            {
                return Err(ServiceError::Key(format!(
                    "--origin {origin:?} differs from the key's origin {:?} in {}",
                    signer.name(),
                    path.display()
                )));
            }
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !log_is_empty {
                return Err(ServiceError::Key(format!(
                    "{} is missing but {} holds a log; refusing to start a different log",
                    path.display(),
                    dir.join(DB_FILE).display()
                )));
            }
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let origin = match origin {
                Some(o) => o.to_string(),
                None => format!(
                    "atomicity-witness/{}",
                    &hex::encode(key.verifying_key().as_bytes())[..8]
                ),
            };
            let signer = Signer::new(&origin, key)
                .map_err(|e| ServiceError::Config(format!("origin {origin:?}: {e}")))?;
            write_file(dir, KEY_FILE, signer.skey().as_bytes(), true)
                .map_err(io_err(&dir.join(KEY_FILE)))?;
            Ok(signer)
        }
        Err(source) => Err(ServiceError::Io { path, source }),
    }
}

/// Starts a witness: opens (or creates) its directory, key and database, rebuilds the log,
/// binds the listener, writes `witness.url` and `witness.vkey`, and starts the block ticker.
pub async fn start(config: WitnessConfig) -> Result<RunningWitness, ServiceError> {
    if config.block_seconds == 0 {
        return Err(ServiceError::Config(
            "--block-seconds must be at least 1".into(),
        ));
    }
    let mut cosigners = Vec::new();
    for (vkey, url) in &config.cosigners {
        let verifier = CosignatureVerifier::from_vkey(vkey.trim())
            .map_err(|e| ServiceError::Config(format!("--cosigner {vkey}: {e}")))?;
        cosigners.push(CosignerState::new(verifier, url.clone()));
    }
    let dir = config.dir.clone();
    let lock = lock_dir(&dir, LOCK_FILE)
        .map_err(io_err(&dir))?
        .ok_or_else(|| ServiceError::Locked(dir.clone()))?;
    let _ = fs::remove_file(dir.join(URL_FILE));
    let mut store = WitnessStore::open(&dir.join(DB_FILE))?;
    let signer = load_or_create_signer(&dir, config.origin.as_deref(), store.size() == 0)?;
    let origin = signer.name().to_string();
    let vkey = signer.vkey();
    let leaves = store.load_leaves()?;
    let log = if leaves.is_empty() {
        let mut log = Log::new(
            origin.clone(),
            signer.clone(),
            config.block_seconds,
            unix_now(),
        )?;
        let note = log.latest_checkpoint()?;
        store.append(0, log.leaves(), Some((log.size(), &note)))?;
        log
    } else {
        Log::restore(origin.clone(), signer.clone(), config.block_seconds, leaves)?
    };
    tracing::info!(size = log.size(), block = log.block(), %origin, "witness log loaded");

    let (listener, url) = bind(config.listen)
        .await
        .map_err(|source| ServiceError::Bind {
            addr: config.listen,
            source,
        })?;

    let actor = Actor {
        log,
        store,
        signer: signer.clone(),
        block_seconds: config.block_seconds,
        cosigned: None,
        batch_start: 0,
    };
    let (handle, thread) = actor::spawn(actor, "witness-log");
    let state = AppState {
        handle: handle.clone(),
        vkey: vkey.clone(),
        censor: config.censor,
        signer,
    };
    if config.censor {
        tracing::warn!("censoring: this witness refuses every submission");
    }
    let (shutdown, server) = serve(listener, router(state));
    let ticker_handle = handle.clone();
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match ticker_handle.call(Request::Checkpoint).await {
                Ok(_) => {}
                Err(ActorError::Stopped) => break,
                Err(e) => tracing::warn!("block tick failed: {e}"),
            }
        }
    });

    let cosign =
        (!cosigners.is_empty()).then(|| tokio::spawn(cosign_loop(handle.clone(), cosigners)));

    write_file(&dir, VKEY_FILE, format!("{vkey}\n").as_bytes(), false)
        .map_err(io_err(&dir.join(VKEY_FILE)))?;
    write_file(&dir, URL_FILE, format!("{url}\n").as_bytes(), false)
        .map_err(io_err(&dir.join(URL_FILE)))?;
    tracing::info!(%url, %vkey, "witness running");
    Ok(RunningWitness {
        url,
        origin,
        vkey,
        shutdown,
        server: Some(server),
        ticker: Some(ticker),
        cosign,
        handle: Some(handle),
        thread: Some(thread),
        dir,
        _lock: lock,
    })
}

// ---------------------------------------------------------------------------------------------
// The actor.

enum Request {
    Submit([u8; 32], Reply<Submission>),
    SubmitBatch(Vec<[u8; 32]>, Reply<Vec<Submission>>),
    Checkpoint(Reply<String>),
    /// The current block (after starting one if due).
    Block(Reply<BlockResponse>),
    Bundle([u8; 32], Reply<Option<Vec<u8>>>),
    Entry(u64, Reply<Option<Leaf>>),
    /// Leaves `start..start + count` (cut at the size); `None` if `start` is past the end.
    Entries(u64, u64, Reply<Option<Vec<Leaf>>>),
    Consistency(u64, u64, Reply<Vec<Hash>>),
    /// A checkpoint note of this log carrying cosignatures; kept if it is the newest.
    Cosigned(String, Reply<()>),
    /// The newest cosigned checkpoint note.
    CosignedNote(Reply<Option<String>>),
}

fn bad(e: impl std::fmt::Display) -> ActorError {
    ActorError::Bad(e.to_string())
}

type Handle = actor::Handle<Request>;

struct Actor {
    log: Log,
    store: WitnessStore,
    signer: Signer,
    block_seconds: u64,
    /// The newest checkpoint note with cosignatures (memory only: after a restart the cosign
    /// loop asks again).
    cosigned: Option<(u64, String)>,
    /// The log's size when the current batch began.
    batch_start: u64,
}

impl Writer for Actor {
    type Request = Request;

    fn begin_batch(&mut self) {
        self.batch_start = self.log.size();
    }

    // Bounded by requests and by new leaves: a flood of 512-secret batches must not make one
    // huge transaction (and one long wait for everyone in it).
    fn batch_full(&self, taken: usize) -> bool {
        taken >= MAX_BATCH || self.log.size().saturating_sub(self.batch_start) >= MAX_BATCH_LEAVES
    }

    fn process(&mut self, request: Request, now: u64) -> Deferred {
        self.apply(request, now)
    }

    fn commit(&mut self) -> Result<(), String> {
        self.persist().map_err(|e| e.to_string())
    }

    fn reload(&mut self) -> Result<(), String> {
        self.rebuild().map_err(|e| e.to_string())
    }
}

impl Actor {
    fn apply(&mut self, request: Request, now: u64) -> Deferred {
        match request {
            Request::Submit(p, reply) => defer(reply, Ok(self.log.submit(p, now))),
            Request::SubmitBatch(ps, reply) => defer(reply, Ok(self.log.submit_batch(&ps, now))),
            Request::Checkpoint(reply) => defer(reply, self.log.checkpoint(now).map_err(bad)),
            Request::Block(reply) => {
                self.log.tick(now);
                defer(
                    reply,
                    Ok(BlockResponse {
                        block: self.log.block(),
                        time: self.log.block_start(),
                        block_seconds: self.log.block_seconds(),
                        size: self.log.size(),
                    }),
                )
            }
            Request::Bundle(p, reply) => {
                // Against the newest cosigned checkpoint if it covers p, else the latest.
                let cosigned = self
                    .cosigned
                    .as_ref()
                    .and_then(|(_, note)| self.log.bundle_with(&p, note.clone()).ok().flatten());
                let bundle = match cosigned {
                    Some(b) => Ok(Some(b)),
                    None => self.log.bundle(&p),
                };
                let result = match bundle {
                    Ok(Some(b)) => b.to_bytes().map(Some).map_err(bad),
                    Ok(None) => Ok(None),
                    Err(e) => Err(bad(e)),
                };
                defer(reply, result)
            }
            Request::Entry(index, reply) => defer(reply, Ok(self.log.entry(index))),
            Request::Entries(start, count, reply) => {
                let leaves = self.log.leaves();
                let result = usize::try_from(start).ok().and_then(|first| {
                    let end = first
                        .saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
                        .min(leaves.len());
                    leaves.get(first..end).map(<[Leaf]>::to_vec)
                });
                defer(reply, Ok(result))
            }
            Request::Consistency(old, new, reply) => {
                let result = if old == 0 || old > new || new > self.log.size() {
                    Err(ActorError::Bad(format!(
                        "need 0 < old <= new <= {} (the log's size)",
                        self.log.size()
                    )))
                } else {
                    self.log.consistency_proof(old, new).map_err(bad)
                };
                defer(reply, result)
            }
            Request::Cosigned(note, reply) => defer(reply, self.keep_cosigned(note)),
            Request::CosignedNote(reply) => {
                defer(reply, Ok(self.cosigned.as_ref().map(|(_, n)| n.clone())))
            }
        }
    }

    /// Keeps a cosigned note of this log's tree if it is at least as new as the one held.
    fn keep_cosigned(&mut self, note: String) -> Result<(), ActorError> {
        let cp = Note::parse(note.as_bytes())
            .and_then(|n| Checkpoint::from_text(&n.text))
            .map_err(bad)?;
        let ours = self.log.root_at(cp.size).map_err(bad)?;
        if cp.origin != self.log.origin() || ours != cp.root {
            return Err(ActorError::Bad("not a checkpoint of this log".into()));
        }
        if self
            .cosigned
            .as_ref()
            .is_none_or(|(size, _)| cp.size >= *size)
        {
            self.cosigned = Some((cp.size, note));
        }
        Ok(())
    }

    /// Commits the leaves appended since the last commit, with the checkpoint covering them.
    fn persist(&mut self) -> Result<(), ServiceError> {
        let stored = self.store.size();
        let size = self.log.size();
        if size == stored {
            return Ok(());
        }
        let note = self.log.latest_checkpoint()?;
        let first = usize::try_from(stored).unwrap_or(usize::MAX);
        let new = self.log.leaves().get(first..).unwrap_or_default();
        self.store.append(stored, new, Some((size, &note)))?;
        Ok(())
    }

    fn rebuild(&mut self) -> Result<(), ServiceError> {
        let leaves = self.store.load_leaves()?;
        self.log = Log::restore(
            self.log.origin().to_string(),
            self.signer.clone(),
            self.block_seconds,
            leaves,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Cosigning (c2sp.org/tlog-witness, the log's side).

/// What the log knows of one cosigner.
struct CosignerState {
    verifier: CosignatureVerifier,
    url: String,
    /// The size it last cosigned, as far as the log knows (0: never).
    size: u64,
    /// Its cosignatures on the checkpoint of `size`.
    signatures: Vec<NoteSignature>,
}

impl CosignerState {
    fn new(verifier: CosignatureVerifier, url: String) -> Self {
        CosignerState {
            verifier,
            url: url.trim_end_matches('/').to_string(),
            size: 0,
            signatures: Vec::new(),
        }
    }
}

/// Every tick: asks each cosigner to cosign the latest checkpoint (with a consistency proof
/// from the size it last cosigned), and hands the note with every cosignature to the actor.
async fn cosign_loop(handle: Handle, mut cosigners: Vec<CosignerState>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cosigning disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut interval = tokio::time::interval(TICK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let note = match handle.call(Request::Checkpoint).await {
            Ok(note) => note,
            Err(ActorError::Stopped) => return,
            Err(e) => {
                tracing::warn!("cosigning: no checkpoint: {e}");
                continue;
            }
        };
        let Ok(size) = Note::parse(note.as_bytes())
            .and_then(|n| Checkpoint::from_text(&n.text))
            .map(|cp| cp.size)
        else {
            continue;
        };
        let mut signatures = Vec::new();
        for cosigner in &mut cosigners {
            let fresh = cosigner.size == size && !cosigner.signatures.is_empty();
            if !fresh
                && let Err(e) = request_cosignature(&handle, &client, cosigner, &note, size).await
            {
                tracing::warn!(cosigner = cosigner.verifier.name(), "cosigning: {e}");
            }
            if cosigner.size == size {
                signatures.extend(cosigner.signatures.iter().cloned());
            }
        }
        if signatures.is_empty() {
            continue;
        }
        match cosigning::attach(&note, &signatures) {
            Ok(cosigned) => match handle.call(|r| Request::Cosigned(cosigned, r)).await {
                Ok(()) => {}
                Err(ActorError::Stopped) => return,
                Err(e) => tracing::warn!("cosigning: {e}"),
            },
            Err(e) => tracing::warn!("cosigning: {e}"),
        }
    }
}

/// One `add-checkpoint` exchange (and one retry if the cosigner knows another old size).
async fn request_cosignature(
    handle: &Handle,
    client: &reqwest::Client,
    cosigner: &mut CosignerState,
    note: &str,
    size: u64,
) -> Result<(), String> {
    for _ in 0..2 {
        if cosigner.size > size {
            return Err(format!(
                "it cosigned size {} but the log has only {size} leaves",
                cosigner.size
            ));
        }
        let proof = if cosigner.size == 0 || cosigner.size == size {
            Vec::new()
        } else {
            handle
                .call(|r| Request::Consistency(cosigner.size, size, r))
                .await
                .map_err(|e| e.to_string())?
        };
        let body = cosigning::add_checkpoint_body(cosigner.size, &proof, note);
        let response = client
            .post(format!("{}/add-checkpoint", cosigner.url))
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status == StatusCode::CONFLICT
            && let Some(theirs) = cosigning::parse_conflict_size(&text)
        {
            cosigner.size = theirs;
            cosigner.signatures.clear();
            continue;
        }
        if !status.is_success() {
            return Err(format!("{status}: {}", text.trim()));
        }
        let signatures = cosigning::verified_cosignatures(&text, note, &cosigner.verifier)
            .map_err(|e| e.to_string())?;
        cosigner.size = size;
        cosigner.signatures = signatures;
        return Ok(());
    }
    Err("the cosigner's size kept changing".into())
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Clone)]
struct AppState {
    handle: Handle,
    vkey: String,
    censor: bool,
    /// The log's key, to prove it to clients that found this witness on the DHT.
    signer: Signer,
}

type ApiResult<T> = Result<T, ApiError>;

/// A submission.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// The 32-byte secret, hex.
    pub p: String,
}

/// The answer to a submission (sent only once the commit is durable).
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// Leaf index of the commit.
    pub index: u64,
    /// The block it is in.
    pub block: u64,
    /// `false` if `p` had been submitted before (index and block are the original's).
    pub new: bool,
}

/// A batch of submissions.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitBatchRequest {
    /// The 32-byte secrets, hex, 1 to [`MAX_SUBMIT_BATCH`] of them.
    pub ps: Vec<String>,
}

/// The answer to a batch (sent only once the commit is durable).
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitBatchResponse {
    /// One entry per secret, in request order.
    pub entries: Vec<SubmitResponse>,
}

/// The current block (`GET /block`), for choosing a payment's window `S ≤ b < X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockResponse {
    /// The current block number.
    pub block: u64,
    /// Unix time (seconds) at which it started: the time in its `BLOCK` marker.
    pub time: u64,
    /// Block length in seconds: the next block starts with the first submission or checkpoint
    /// at or after `time + block_seconds`.
    pub block_seconds: u64,
    /// The tree size (number of leaves).
    pub size: u64,
}

/// A run of leaves.
#[derive(Debug, Serialize, Deserialize)]
pub struct EntriesResponse {
    /// Index of the first leaf.
    pub start: u64,
    /// Hex of each leaf's canonical encoding (the data under its RFC 6962 leaf hash).
    pub leaves: Vec<String>,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/checkpoint/cosigned", get(cosigned_checkpoint))
        .route("/block", get(block))
        .route("/vkey", get(vkey))
        .route("/submit", post(submit))
        .route("/submit-batch", post(submit_batch))
        .route("/bundle/{p}", get(bundle))
        .route("/bundles", post(bundles))
        .route("/entry/{index}", get(entry))
        .route("/entries", get(entries))
        .route("/proof/consistency", get(consistency))
        .route(crate::identity::IDENTITY_PATH, get(identity))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// The secrets of a `{"ps": [...]}` body: 1 to `max` of them, each valid, or the first error
/// (naming the position of a bad secret).
fn parse_ps(body: &[u8], max: usize) -> ApiResult<Vec<[u8; 32]>> {
    let request: SubmitBatchRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("expected {{\"ps\": [\"<64 hex>\", ...]}}: {e}"),
        )
    })?;
    if request.ps.is_empty() {
        return Err(ApiError::bad("empty_batch", "ps must not be empty"));
    }
    if request.ps.len() > max {
        return Err(ApiError::bad(
            "too_many",
            format!(
                "at most {max} secrets per request, got {}",
                request.ps.len()
            ),
        ));
    }
    request
        .ps
        .iter()
        .enumerate()
        .map(|(i, text)| {
            parse_p(text).map_err(|e| ApiError::bad(e.code, format!("ps[{i}]: {}", e.message)))
        })
        .collect()
}

fn parse_p(text: &str) -> ApiResult<[u8; 32]> {
    let mut p = [0u8; 32];
    if text.len() != 64 || hex::decode_to_slice(text, &mut p).is_err() {
        return Err(ApiError::bad(
            "bad_p",
            "p must be 64 hex characters (32 bytes)",
        ));
    }
    Ok(p)
}

async fn checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    let note = state.handle.call(Request::Checkpoint).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET /v1/identity?challenge=<64 hex>`: the log's key, proven by signing the challenge.
async fn identity(
    State(state): State<AppState>,
    query: crate::http::ChallengeParam,
) -> ApiResult<axum::Json<crate::identity::IdentityProof>> {
    let challenge = crate::http::parse_challenge(query)?;
    Ok(axum::Json(crate::identity::prove_witness(
        &state.signer,
        &challenge,
    )))
}

async fn block(State(state): State<AppState>) -> ApiResult<axum::Json<BlockResponse>> {
    Ok(axum::Json(state.handle.call(Request::Block).await?))
}

/// The answer of a censoring witness to a well-formed submission.
fn censored() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "censored",
        "this witness refuses submissions",
    )
}

async fn cosigned_checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    match state.handle.call(Request::CosignedNote).await? {
        Some(note) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_cosigned",
            "no checkpoint has been cosigned yet",
        )),
    }
}

async fn vkey(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.vkey),
    )
        .into_response()
}

async fn submit(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<axum::Json<SubmitResponse>> {
    let request: SubmitRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_json", format!("expected {{\"p\": \"<64 hex>\"}}: {e}")))?;
    let p = parse_p(&request.p)?;
    if state.censor {
        return Err(censored());
    }
    let s = state.handle.call(|r| Request::Submit(p, r)).await?;
    Ok(axum::Json(SubmitResponse {
        index: s.index,
        block: s.block,
        new: s.new,
    }))
}

async fn submit_batch(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<axum::Json<SubmitBatchResponse>> {
    // Every secret is checked before any is submitted: a batch is all or nothing.
    let ps = parse_ps(&body, MAX_SUBMIT_BATCH)?;
    if state.censor {
        return Err(censored());
    }
    let submissions = state.handle.call(|r| Request::SubmitBatch(ps, r)).await?;
    Ok(axum::Json(SubmitBatchResponse {
        entries: submissions
            .into_iter()
            .map(|s| SubmitResponse {
                index: s.index,
                block: s.block,
                new: s.new,
            })
            .collect(),
    }))
}

async fn bundle(State(state): State<AppState>, UrlPath(p): UrlPath<String>) -> ApiResult<Response> {
    let p = parse_p(&p)?;
    match state.handle.call(|r| Request::Bundle(p, r)).await? {
        Some(bytes) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_p",
            "p was never submitted to this log",
        )),
    }
}

async fn bundles(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let ps = parse_ps(&body, crate::bundle::MAX_BUNDLES)?;
    let mut bundles = Vec::with_capacity(ps.len());
    for p in ps {
        bundles.push(state.handle.call(|r| Request::Bundle(p, r)).await?);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        crate::bundle::encode_bundles(&bundles),
    )
        .into_response())
}

async fn entry(
    State(state): State<AppState>,
    UrlPath(index): UrlPath<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad("bad_index", "index must be a non-negative integer"))?;
    let leaf = state
        .handle
        .call(|r| Request::Entry(index, r))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_entry", "no leaf at that index"))?;
    Ok(axum::Json(match leaf {
        Leaf::Commit { block, p } => serde_json::json!({
            "index": index, "kind": "commit", "block": block, "p": hex::encode(p),
        }),
        Leaf::Block { block, time } => serde_json::json!({
            "index": index, "kind": "block", "block": block, "time": time,
        }),
    }))
}

async fn entries(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<EntriesResponse>> {
    let start: u64 = query
        .get("start")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad("bad_index", "give ?start=<leaf index>"))?;
    let count: u64 = query
        .get("count")
        .and_then(|v| v.parse().ok())
        .filter(|c| (1..=MAX_ENTRIES).contains(c))
        .ok_or_else(|| ApiError::bad("bad_count", format!("give ?count=<1 to {MAX_ENTRIES}>")))?;
    let leaves = state
        .handle
        .call(|r| Request::Entries(start, count, r))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_entry",
                "start is past the end of the log",
            )
        })?;
    Ok(axum::Json(EntriesResponse {
        start,
        leaves: leaves.iter().map(|l| hex::encode(l.to_bytes())).collect(),
    }))
}

async fn consistency(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<String>>> {
    let size = |name: &'static str| -> ApiResult<u64> {
        query
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad("bad_size", format!("give ?{name}=<tree size>")))
    };
    let (old, new) = (size("old")?, size("new")?);
    let proof = state
        .handle
        .call(|r| Request::Consistency(old, new, r))
        .await?;
    Ok(axum::Json(proof.iter().map(hex::encode).collect()))
}
