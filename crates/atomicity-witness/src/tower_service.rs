//! The watchtower service: a [`Watchtower`] made durable in SQLite, served over HTTP, with a
//! monitor that follows logs.
//!
//! One actor thread owns the watchtower and its [`TowerStore`]. It takes requests in batches,
//! applies them to the watchtower, writes every resulting [`Change`] in one transaction, and
//! only then answers: a cosignature leaves only once the cosigned size is on disk, so a
//! restarted watchtower never cosigns a checkpoint inconsistent with one it cosigned before.
//! If a commit fails the watchtower is rebuilt from the database.
//!
//! HTTP API (errors are JSON `{"code", "error"}` unless the C2SP protocol says otherwise):
//!
//! - `POST /add-checkpoint`: c2sp.org/tlog-witness; answers cosignature lines (`text/plain`),
//!   or 400/403/404/409/422 as the spec says (409 for a wrong old size has the body
//!   `<size>\n` with `Content-Type: text/x.tlog.size`).
//! - `GET /vkey`: the cosigner's verifier key (`text/plain`).
//! - `GET /v1/logs`: the watched logs.
//! - `POST /v1/checkpoints`: a signed checkpoint note (`text/plain` body) of a watched log.
//! - `POST /v1/fork-proofs` `{"vkey", "proof": "<base64 of the ATFP encoding>"}`.
//! - `GET /v1/indicted?vkey=<verifier key>`: whether the log is indicted, with the proofs.
//! - `GET /v1/refused?origin=<origin>`: checkpoints the log signed that were refused.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use crate::actor::{self, ActorError, Deferred, Reply, Writer, defer};
use crate::http::{ApiError, bind, json_errors, lock_dir, serve, write_file};
use crate::note::{Checkpoint, Cosigner, Note};
use crate::tower_store::{Refusal, TowerStore, TowerStoreError};
use crate::watchtower::{AddError, Change, Observed, Sighting, WatchError, Watchtower};

/// The SQLite database.
pub const DB_FILE: &str = "watchtower.db";
/// The cosigner key (signed-note key string, type 0x04), mode 0600.
pub const KEY_FILE: &str = "watchtower.key";
/// The URL of a running watchtower.
pub const URL_FILE: &str = "watchtower.url";
/// The cosigner's verifier key.
pub const VKEY_FILE: &str = "watchtower.vkey";
/// Held locked while a watchtower runs on the directory.
pub const LOCK_FILE: &str = "watchtower.lock";
/// Largest request body, in bytes (a fork proof in base64 inside JSON).
pub const MAX_BODY: usize = 256 * 1024;
/// How often logs are polled when not configured.
pub const DEFAULT_POLL_SECONDS: u64 = 10;
/// Leaves asked for per `/entries` request.
const ENTRIES_PAGE: u64 = 1000;
/// Most requests folded into one transaction.
const MAX_BATCH: usize = 1024;

/// How to run a watchtower.
#[derive(Clone, Debug)]
pub struct WatchtowerConfig {
    /// Data directory (created if missing).
    pub dir: PathBuf,
    /// Listening address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The cosigner name for a new key [default: `atomicity-watchtower/<8 hex of the key>`].
    pub name: Option<String>,
    /// Logs to watch: verifier key, and the URL to monitor it at if any. Logs watched before
    /// stay watched.
    pub logs: Vec<(String, Option<String>)>,
    /// Seconds between two polls of each monitored log (at least 1).
    pub poll_seconds: u64,
}

/// Why a watchtower could not start.
#[derive(Debug, Error)]
pub enum TowerError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is unusable or does not fit the configuration.
    #[error("{0}")]
    Key(String),
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] TowerStoreError),
    /// Another watchtower runs on this directory.
    #[error("another watchtower is already running on {0}")]
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TowerError + '_ {
    move |source| TowerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A watchtower running in this process.
pub struct RunningWatchtower {
    /// Its URL (`http://<address>`).
    pub url: String,
    /// The cosigner's verifier key.
    pub vkey: String,
    shutdown: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    monitor: Option<tokio::task::JoinHandle<()>>,
    handle: Option<Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    _lock: fs::File,
}

impl RunningWatchtower {
    /// Stops serving, lets requests in progress finish, and waits for the actor to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(monitor) = self.monitor.take() {
            monitor.abort();
            let _ = monitor.await;
        }
        self.handle.take();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let _ = fs::remove_file(self.dir.join(URL_FILE));
    }
}

fn load_or_create_cosigner(dir: &Path, name: Option<&str>) -> Result<Cosigner, TowerError> {
    let path = dir.join(KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let cosigner = Cosigner::from_skey(text.trim())
                .map_err(|e| TowerError::Key(format!("{}: {e}", path.display())))?;
            if let Some(name) = name
                && name != cosigner.name()
            {
                return Err(TowerError::Key(format!(
                    "--name {name:?} differs from the key's name {:?} in {}",
                    cosigner.name(),
                    path.display()
                )));
            }
            Ok(cosigner)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let name = match name {
                Some(n) => n.to_string(),
                None => format!(
                    "atomicity-watchtower/{}",
                    &hex::encode(key.verifying_key().as_bytes())[..8]
                ),
            };
            let cosigner = Cosigner::new(&name, key)
                .map_err(|e| TowerError::Config(format!("name {name:?}: {e}")))?;
            write_file(dir, KEY_FILE, cosigner.skey().as_bytes(), true).map_err(io_err(&path))?;
            Ok(cosigner)
        }
        Err(source) => Err(TowerError::Io { path, source }),
    }
}

/// A log URL must be `http(s)://host[:port][/path]`.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("the URL must be http:// or https:// with a host".into());
    }
    Ok(())
}

/// Rebuilds the watchtower from the database.
fn load(cosigner: Cosigner, store: &TowerStore) -> Result<Watchtower, TowerError> {
    let mut tower = Watchtower::new(cosigner);
    for log in store.load_logs()? {
        tower
            .restore_log(
                &log.vkey,
                log.url,
                log.cosigned.as_deref(),
                &log.seen,
                &log.leaves,
                log.monitor_note.as_deref(),
            )
            .map_err(|e| TowerStoreError::Corrupt(format!("log {}: {e}", log.vkey)))?;
    }
    for (vkey, indictment) in store.load_indictments()? {
        tower.restore_indictment(&vkey, indictment);
    }
    Ok(tower)
}

/// Starts a watchtower: opens (or creates) its directory, key and database, adds the
/// configured logs, binds the listener, writes `watchtower.url` and `watchtower.vkey`, and
/// starts the monitor.
pub async fn start(config: WatchtowerConfig) -> Result<RunningWatchtower, TowerError> {
    if config.poll_seconds == 0 {
        return Err(TowerError::Config(
            "--poll-seconds must be at least 1".into(),
        ));
    }
    // Check every argument before touching the disk.
    for (vkey, url) in &config.logs {
        crate::watchtower::canonical_vkey(vkey)
            .map_err(|e| TowerError::Config(format!("--log {vkey}: {e}")))?;
        if let Some(url) = url {
            check_url(url).map_err(|e| TowerError::Config(format!("--log {vkey},{url}: {e}")))?;
        }
    }
    if let Some(name) = &config.name {
        Cosigner::new(name, SigningKey::from_bytes(&[0; 32]))
            .map_err(|e| TowerError::Config(format!("--name {name:?}: {e}")))?;
    }
    let dir = config.dir.clone();
    let lock = lock_dir(&dir, LOCK_FILE)
        .map_err(io_err(&dir))?
        .ok_or_else(|| TowerError::Locked(dir.clone()))?;
    let _ = fs::remove_file(dir.join(URL_FILE));
    let mut store = TowerStore::open(&dir.join(DB_FILE))?;
    let cosigner = load_or_create_cosigner(&dir, config.name.as_deref())?;
    let vkey = cosigner.vkey();
    let mut tower = load(cosigner.clone(), &store)?;
    let mut changes = Vec::new();
    for (log_vkey, url) in &config.logs {
        tower
            .watch(log_vkey, url.clone(), &mut changes)
            .map_err(|e| TowerError::Config(format!("--log {log_vkey}: {e}")))?;
    }
    store.apply(&changes)?;
    tracing::info!(logs = tower.logs().len(), "watchtower state loaded");

    let (listener, url) = bind(config.listen)
        .await
        .map_err(|source| TowerError::Bind {
            addr: config.listen,
            source,
        })?;

    let actor = Actor {
        tower,
        store,
        changes: Vec::new(),
    };
    let (handle, thread) = actor::spawn(actor, "watchtower");
    let state = AppState {
        handle: handle.clone(),
        vkey: vkey.clone(),
        cosigner,
    };
    let (shutdown, server) = serve(listener, router(state));
    let monitor = tokio::spawn(monitor_loop(
        handle.clone(),
        Duration::from_secs(config.poll_seconds),
    ));

    write_file(&dir, VKEY_FILE, format!("{vkey}\n").as_bytes(), false)
        .map_err(io_err(&dir.join(VKEY_FILE)))?;
    write_file(&dir, URL_FILE, format!("{url}\n").as_bytes(), false)
        .map_err(io_err(&dir.join(URL_FILE)))?;
    tracing::info!(%url, %vkey, "watchtower running");
    Ok(RunningWatchtower {
        url,
        vkey,
        shutdown,
        server: Some(server),
        monitor: Some(monitor),
        handle: Some(handle),
        thread: Some(thread),
        dir,
        _lock: lock,
    })
}

// ---------------------------------------------------------------------------------------------
// The actor.

/// One watched log, as `/v1/logs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogStatus {
    /// The log's origin.
    pub origin: String,
    /// Its verifier key.
    pub vkey: String,
    /// Where it is monitored, if it is.
    pub url: Option<String>,
    /// The size last cosigned (0 if none).
    pub cosigned_size: u64,
    /// Leaves the monitor verified.
    pub monitored_size: u64,
    /// Distinct checkpoint sizes seen.
    pub checkpoints_seen: usize,
    /// Whether a verified fork proof is held against it.
    pub indicted: bool,
}

/// One fork proof, as `/v1/indicted` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProofStatus {
    /// What it shows (`split_view`, `prefix_rewrite`, `conflicting_leaves`,
    /// `block_regression`).
    pub kind: String,
    /// When the watchtower verified it (Unix seconds).
    pub received: u64,
    /// The proof's ATFP encoding, base64; check it offline with the log's key.
    pub proof: String,
}

/// The answer of `/v1/indicted`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndictedStatus {
    /// The log key asked about (canonical form).
    pub vkey: String,
    /// Whether this watchtower watches the log (it keeps proofs only for logs it watches).
    pub watched: bool,
    /// Whether any verified fork proof is held against it.
    pub indicted: bool,
    /// The proofs.
    pub proofs: Vec<ProofStatus>,
}

enum Request {
    Add(Bytes, Reply<Result<String, AddError>>),
    Checkpoint(String, Reply<Result<(Checkpoint, Sighting), WatchError>>),
    Proof(
        String,
        Vec<u8>,
        Reply<Result<(&'static str, bool), WatchError>>,
    ),
    Indicted(String, Reply<Result<IndictedStatus, WatchError>>),
    Logs(Reply<Vec<LogStatus>>),
    Refused(String, Reply<Result<Vec<Refusal>, String>>),
    Targets(Reply<Vec<(String, String, u64)>>),
    Observe(String, Vec<Vec<u8>>, Reply<Result<Observed, WatchError>>),
    ObserveFull(String, Vec<Vec<u8>>, Reply<Result<Observed, WatchError>>),
}

type Handle = actor::Handle<Request>;

struct Actor {
    tower: Watchtower,
    store: TowerStore,
    /// What the current batch changed, committed in one transaction.
    changes: Vec<Change>,
}

impl Writer for Actor {
    type Request = Request;

    fn batch_full(&self, taken: usize) -> bool {
        taken >= MAX_BATCH
    }

    fn process(&mut self, request: Request, now: u64) -> Deferred {
        let mut changes = std::mem::take(&mut self.changes);
        let answer = self.apply(request, now, &mut changes);
        self.changes = changes;
        answer
    }

    fn commit(&mut self) -> Result<(), String> {
        let changes = std::mem::take(&mut self.changes);
        self.store.apply(&changes).map_err(|e| e.to_string())
    }

    fn reload(&mut self) -> Result<(), String> {
        self.tower = load(self.tower.cosigner().clone(), &self.store).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Actor {
    fn apply(&mut self, request: Request, now: u64, out: &mut Vec<Change>) -> Deferred {
        let tower = &mut self.tower;
        match request {
            Request::Add(body, reply) => defer(reply, Ok(tower.add_checkpoint(&body, now, out))),
            Request::Checkpoint(note, reply) => {
                let result = tower.ingest_checkpoint(&note, now, out).and_then(|s| {
                    let cp = Note::parse(note.as_bytes())
                        .and_then(|n| Checkpoint::from_text(&n.text))
                        .map_err(WatchError::Malformed)?;
                    Ok((cp, s))
                });
                defer(reply, Ok(result))
            }
            Request::Proof(vkey, bytes, reply) => {
                let result = tower
                    .ingest_fork_proof(&vkey, &bytes, now, out)
                    .map(|(kind, new)| (kind.name(), new));
                defer(reply, Ok(result))
            }
            Request::Indicted(vkey, reply) => {
                let canonical = crate::watchtower::canonical_vkey(&vkey).unwrap_or(vkey.clone());
                let watched = tower
                    .logs()
                    .values()
                    .any(|log| log.verifier().vkey() == canonical);
                let result = tower.indictments_of(&vkey).map(|held| IndictedStatus {
                    vkey: canonical,
                    watched,
                    indicted: !held.is_empty(),
                    proofs: held
                        .iter()
                        .map(|i| ProofStatus {
                            kind: i.kind.name().to_string(),
                            received: i.received,
                            proof: B64.encode(&i.proof),
                        })
                        .collect(),
                });
                defer(reply, Ok(result))
            }
            Request::Logs(reply) => {
                let logs = tower
                    .logs()
                    .iter()
                    .map(|(origin, log)| {
                        let vkey = log.verifier().vkey();
                        LogStatus {
                            origin: origin.clone(),
                            indicted: tower.indictments().contains_key(&vkey),
                            vkey,
                            url: log.url().map(str::to_owned),
                            cosigned_size: log.cosigned_size(),
                            monitored_size: log.monitored_size(),
                            checkpoints_seen: log.checkpoints_seen(),
                        }
                    })
                    .collect();
                defer(reply, Ok(logs))
            }
            Request::Refused(origin, reply) => {
                let result = self.store.refusals(&origin, 100).map_err(|e| e.to_string());
                defer(reply, Ok(result))
            }
            Request::Targets(reply) => {
                let targets = tower
                    .logs()
                    .keys()
                    .filter_map(|origin| {
                        let (url, from) = tower.monitor_target(origin)?;
                        Some((origin.clone(), url, from))
                    })
                    .collect();
                defer(reply, Ok(targets))
            }
            Request::Observe(note, leaves, reply) => {
                defer(reply, Ok(tower.observe(&note, &leaves, now, out)))
            }
            Request::ObserveFull(note, leaves, reply) => {
                defer(reply, Ok(tower.observe_full(&note, &leaves, now, out)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The monitor.

/// Why one poll of a log failed (logged; the next poll retries).
#[derive(Debug, Error)]
enum PollError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Bad(String),
    #[error("{0}")]
    Actor(#[from] ActorError),
    #[error("{0}")]
    Watch(#[from] WatchError),
}

async fn monitor_loop(handle: Handle, every: Duration) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("monitor disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let targets = match handle.call(Request::Targets).await {
            Ok(t) => t,
            Err(_) => return,
        };
        for (origin, url, from) in targets {
            match poll(&handle, &client, &url, from).await {
                Ok(Observed::Indicted(kind)) => {
                    tracing::warn!(%origin, kind = kind.name(), "log indicted");
                }
                Ok(_) => {}
                Err(PollError::Actor(ActorError::Stopped)) => return,
                Err(e) => tracing::warn!(%origin, %url, "monitor: {e}"),
            }
        }
    }
}

/// Downloads the log's checkpoint and its leaves from `from` on, and has the watchtower
/// check them; on a divergence downloads the whole log to build the proof.
async fn poll(
    handle: &Handle,
    client: &reqwest::Client,
    url: &str,
    from: u64,
) -> Result<Observed, PollError> {
    let note = client
        .get(format!("{url}/checkpoint"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let size = Note::parse(note.as_bytes())
        .and_then(|n| Checkpoint::from_text(&n.text))
        .map_err(|e| PollError::Bad(format!("checkpoint: {e}")))?
        .size;
    let leaves = if size > from {
        fetch_leaves(client, url, from, size).await?
    } else {
        Vec::new()
    };
    let observed = handle
        .call(|r| Request::Observe(note.clone(), leaves, r))
        .await??;
    if let Observed::Diverged { size } = observed {
        let all = fetch_leaves(client, url, 0, size).await?;
        return Ok(handle
            .call(|r| Request::ObserveFull(note, all, r))
            .await??);
    }
    Ok(observed)
}

#[derive(Deserialize)]
struct EntriesPage {
    start: u64,
    leaves: Vec<String>,
}

/// Leaves `start..end` from the log's `/entries`, page by page.
async fn fetch_leaves(
    client: &reqwest::Client,
    url: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, PollError> {
    let mut out = Vec::new();
    let mut next = start;
    while next < end {
        let count = (end - next).min(ENTRIES_PAGE);
        let page: EntriesPage = client
            .get(format!("{url}/entries?start={next}&count={count}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if page.start != next || page.leaves.is_empty() {
            return Err(PollError::Bad(format!(
                "the log served no leaves at {next} but signed a size of {end}"
            )));
        }
        for hex_leaf in page.leaves.into_iter().take((end - next) as usize) {
            out.push(hex::decode(&hex_leaf).map_err(|_| PollError::Bad("leaf is not hex".into()))?);
            next += 1;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Clone)]
struct AppState {
    handle: Handle,
    vkey: String,
    /// The cosigner key, to prove it to clients that found this watchtower on the DHT.
    cosigner: Cosigner,
}

impl From<WatchError> for ApiError {
    fn from(e: WatchError) -> ApiError {
        let code = match &e {
            WatchError::BadKey(_) => "bad_vkey",
            WatchError::Malformed(_) => "bad_checkpoint",
            WatchError::UnknownOrigin(_) => {
                return ApiError::new(StatusCode::NOT_FOUND, "unknown_log", e.to_string());
            }
            WatchError::NotSigned(_) => {
                return ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string());
            }
            WatchError::ProofMalformed(_) => "bad_proof",
            WatchError::ProofRejected(_) => {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not_evidence",
                    e.to_string(),
                );
            }
            WatchError::LeavesMismatch(_)
            | WatchError::LeafCount { .. }
            | WatchError::BadLeaf(_) => "bad_leaves",
        };
        ApiError::bad(code, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn router(state: AppState) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/vkey", get(vkey))
        .route("/v1/logs", get(logs))
        .route("/v1/checkpoints", post(checkpoint))
        .route("/v1/fork-proofs", post(fork_proof))
        .route("/v1/indicted", get(indicted))
        .route("/v1/refused", get(refused))
        .route(crate::identity::IDENTITY_PATH, get(identity))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// `GET /v1/identity?challenge=<64 hex>`: the cosigner key, proven by signing the challenge.
async fn identity(
    State(state): State<AppState>,
    query: crate::http::ChallengeParam,
) -> ApiResult<axum::Json<crate::identity::IdentityProof>> {
    let challenge = crate::http::parse_challenge(query)?;
    Ok(axum::Json(crate::identity::prove_watchtower(
        &state.cosigner,
        &challenge,
    )))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn add_checkpoint(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    if body.len() > crate::watchtower::MAX_ADD_CHECKPOINT_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "an add-checkpoint body is at most {} bytes",
                crate::watchtower::MAX_ADD_CHECKPOINT_BODY
            ),
        ));
    }
    match state.handle.call(|r| Request::Add(body, r)).await? {
        Ok(lines) => Ok(text(StatusCode::OK, "text/plain; charset=utf-8", lines)),
        Err(AddError::WrongOldSize { latest, .. }) => Ok(text(
            StatusCode::CONFLICT,
            "text/x.tlog.size",
            format!("{latest}\n"),
        )),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let code = match e {
                AddError::Malformed(_) | AddError::OldTooLarge { .. } => "bad_request",
                AddError::NotSigned(_) => "bad_signature",
                AddError::UnknownOrigin(_) => "unknown_log",
                AddError::RootConflict(_) => "split_view",
                AddError::Indicted => "indicted",
                AddError::WrongOldSize { .. } => "wrong_old_size",
                AddError::Inconsistent(_) => "inconsistent",
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}

async fn vkey(State(state): State<AppState>) -> Response {
    text(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        format!("{}\n", state.vkey),
    )
}

async fn logs(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<LogStatus>>> {
    Ok(axum::Json(state.handle.call(Request::Logs).await?))
}

/// The answer of `POST /v1/checkpoints`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointStatus {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint's size.
    pub size: u64,
    /// `new`, `known`, or `split_view` (the log is now indicted).
    pub sighting: String,
}

async fn checkpoint(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<axum::Json<CheckpointStatus>> {
    let note = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad("bad_checkpoint", "the body is not UTF-8"))?;
    let (cp, sighting) = state
        .handle
        .call(|r| Request::Checkpoint(note, r))
        .await??;
    Ok(axum::Json(CheckpointStatus {
        origin: cp.origin,
        size: cp.size,
        sighting: match sighting {
            Sighting::New => "new",
            Sighting::Known => "known",
            Sighting::SplitView => "split_view",
        }
        .to_string(),
    }))
}

/// A fork proof submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSubmission {
    /// The accused log's verifier key.
    pub vkey: String,
    /// The proof's ATFP encoding, base64.
    pub proof: String,
}

/// The answer to a fork proof submission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProofAccepted {
    /// What the proof shows.
    pub kind: String,
    /// `false` if the same proof was already held (or enough are held for this log).
    pub new: bool,
    /// Always `true`: the log is indicted.
    pub indicted: bool,
}

async fn fork_proof(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<axum::Json<ProofAccepted>> {
    let expected = |e: &dyn std::fmt::Display| {
        ApiError::bad(
            "bad_json",
            format!("expected {{\"vkey\": \"<verifier key>\", \"proof\": \"<base64>\"}}: {e}"),
        )
    };
    // serde would also take a JSON array for the struct; only an object is a submission.
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| expected(&e))?;
    if !value.is_object() {
        return Err(expected(&"not a JSON object"));
    }
    let submission: ProofSubmission = serde_json::from_value(value).map_err(|e| expected(&e))?;
    let bytes = B64
        .decode(submission.proof.trim())
        .map_err(|_| ApiError::bad("bad_proof", "proof is not base64"))?;
    let (kind, new) = state
        .handle
        .call(|r| Request::Proof(submission.vkey, bytes, r))
        .await??;
    Ok(axum::Json(ProofAccepted {
        kind: kind.to_string(),
        new,
        indicted: true,
    }))
}

/// Reads a verifier key from a query string, where an unencoded `+` arrives as a space.
fn query_vkey(query: &HashMap<String, String>) -> ApiResult<String> {
    let vkey = query
        .get("vkey")
        .ok_or_else(|| ApiError::bad("bad_vkey", "give ?vkey=<the log's verifier key>"))?;
    Ok(vkey.trim().replace(' ', "+"))
}

async fn indicted(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<IndictedStatus>> {
    let vkey = query_vkey(&query)?;
    Ok(axum::Json(
        state.handle.call(|r| Request::Indicted(vkey, r)).await??,
    ))
}

/// One refused checkpoint, as `/v1/refused` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusalStatus {
    /// The signed note.
    pub note: String,
    /// Why it was refused.
    pub reason: String,
    /// When (Unix seconds).
    pub time: u64,
}

async fn refused(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<RefusalStatus>>> {
    let origin = query
        .get("origin")
        .ok_or_else(|| ApiError::bad("bad_origin", "give ?origin=<the log's origin>"))?
        .clone();
    let refusals = state
        .handle
        .call(|r| Request::Refused(origin, r))
        .await?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e))?;
    Ok(axum::Json(
        refusals
            .into_iter()
            .map(|r| RefusalStatus {
                note: r.note,
                reason: r.reason,
                time: r.time,
            })
            .collect(),
    ))
}
