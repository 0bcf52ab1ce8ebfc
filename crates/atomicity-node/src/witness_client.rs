//! A client of witness logs (`docs/witness.md`): what a node needs to publish a payment's
//! secret `p` and fetch the proof that it was published.
//!
//! - [`WitnessClient`] talks to one witness: `GET /vkey`, `GET /block`, `POST /submit` and
//!   `GET /bundle/{p}`, and their batched forms `POST /submit-batch` and `POST /bundles`, which
//!   the publisher uses through [`WitnessClient::submit_soon`] and
//!   [`WitnessClient::bundle_soon`]. Every call has a short timeout ([`TIMEOUT`]) and reads at
//!   most [`MAX_RESPONSE`] bytes per secret, so a slow or hostile witness cannot hold the node
//!   up for long or make it buffer without bound.
//! - [`publish_any`] publishes `p` on several witnesses at once and returns the first bundle the
//!   caller accepts. It retries a witness that is down or refuses the secret (a censoring
//!   witness) until a deadline: one honest, reachable witness is enough.
//!
//! Bundles are returned as bytes. Checking them (the log's key, the window `S ≤ b < X`, the
//! hard deadline, a cosigner policy) is the caller's job, with
//! [`atomicity_witness::bundle::verify_publication`], inside [`PublishTarget::accept`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use atomicity_witness::note::Verifier;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Timeout of each request to a witness (connecting included).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest wait between two rounds of [`publish_any`] on one witness (a smaller `poll` is
/// raised to it, so a dead witness is not retried in a busy loop).
pub const MIN_POLL: Duration = Duration::from_millis(10);
/// Largest answer read from a witness, in bytes. A proof bundle holds a checkpoint note of at
/// most 64 KiB and two inclusion proofs of at most 64 hashes each, so this leaves ample room.
pub const MAX_RESPONSE: usize = 256 * 1024;

/// Why a call to a witness failed. Every message names the witness's URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WitnessClientError {
    /// No answer: the connection failed, timed out or broke.
    #[error("cannot reach the witness at {url}: {reason}")]
    Unreachable {
        /// The witness's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The witness answered with an error (for example 503 `censored` from a witness that
    /// refuses submissions, or 503 `storage`).
    #[error("the witness at {url} refused: {status} {code}: {message}")]
    Refused {
        /// The witness's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The stable error code from the JSON error body (`"unknown"` if it had none).
        code: String,
        /// The witness's words.
        message: String,
    },
    /// The answer did not parse, was too large, or was not what a witness sends.
    #[error("unexpected answer from the witness at {url}: {reason}")]
    BadAnswer {
        /// The witness's URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl WitnessClientError {
    /// The witness's error code, if it answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            WitnessClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A witness's current block (`GET /block`): what a payee needs to choose the window
/// `S ≤ b < X` of a payment condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The current block number.
    pub block: u64,
    /// Unix time (seconds) at which that block started.
    pub time: u64,
    /// Block length in seconds (the next block starts no earlier than `time + block_seconds`).
    pub block_seconds: u64,
    /// The log's tree size.
    pub size: u64,
}

/// The answer to a submission, given once the commit is durable on the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// Leaf index of the `COMMIT`.
    pub index: u64,
    /// The block it is in.
    pub block: u64,
    /// `false` if the secret had been submitted before (index and block are the original's).
    pub new: bool,
}

/// The JSON error body of the witness API.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    error: String,
}

/// Talks to one witness log.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: reqwest::Client,
    url: String,
    batches: Arc<Batches>,
}

/// A secret waiting for its share of a batched answer.
type Waiting<T> = ([u8; 32], oneshot::Sender<Result<T, WitnessClientError>>);

/// The queues of [`WitnessClient::submit_soon`] and [`WitnessClient::bundle_soon`], each
/// drained by its own task (started on first use).
#[derive(Debug, Default)]
struct Batches {
    submits: OnceLock<mpsc::UnboundedSender<Waiting<Submitted>>>,
    bundles: OnceLock<mpsc::UnboundedSender<Waiting<Option<Vec<u8>>>>>,
}

impl WitnessClient {
    /// A client for the witness at `url` (`http://host:port`; a trailing `/` is ignored), with
    /// [`TIMEOUT`] per request.
    pub fn new(url: &str) -> WitnessClient {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        WitnessClient {
            http,
            url: url.trim().trim_end_matches('/').to_string(),
            batches: Arc::default(),
        }
    }

    /// [`WitnessClient::submit`], sent together with the other secrets submitted at about the
    /// same time on this client (`POST /submit-batch`). One batch is in flight at a time: what
    /// comes meanwhile waits for the next, so a busy payee makes few requests and an idle one
    /// waits for none.
    pub async fn submit_soon(&self, p: &[u8; 32]) -> Result<Submitted, WitnessClientError> {
        let queue = self.batches.submits.get_or_init(|| {
            self.start_batches(|client, ps| async move { client.submit_batch(&ps).await })
        });
        self.wait_in(queue, p).await
    }

    /// [`WitnessClient::bundle`], fetched together with the other bundles asked for at about
    /// the same time on this client (`POST /bundles`), as [`WitnessClient::submit_soon`].
    pub async fn bundle_soon(&self, p: &[u8; 32]) -> Result<Option<Vec<u8>>, WitnessClientError> {
        let queue = self.batches.bundles.get_or_init(|| {
            self.start_batches(|client, ps| async move { client.bundles(&ps).await })
        });
        self.wait_in(queue, p).await
    }

    async fn wait_in<T>(
        &self,
        queue: &mpsc::UnboundedSender<Waiting<T>>,
        p: &[u8; 32],
    ) -> Result<T, WitnessClientError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || WitnessClientError::Unreachable {
            url: self.url.clone(),
            reason: "the node is stopping".into(),
        };
        queue.send((*p, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Submits several secrets in one request (`POST /submit-batch`, at most
    /// [`MAX_BATCH`]); the entries in the same order.
    pub async fn submit_batch(
        &self,
        ps: &[[u8; 32]],
    ) -> Result<Vec<Submitted>, WitnessClientError> {
        #[derive(Deserialize)]
        struct Entries {
            entries: Vec<Submitted>,
        }
        let ps: Vec<String> = ps.iter().map(hex::encode).collect();
        let request = self
            .http
            .post(self.endpoint("/submit-batch"))
            .json(&serde_json::json!({ "ps": ps }));
        let body = self.send(request).await?;
        let entries = self.json::<Entries>(&body)?.entries;
        if entries.len() != ps.len() {
            return Err(self.bad_answer(format!(
                "{} entries for {} secrets",
                entries.len(),
                ps.len()
            )));
        }
        Ok(entries)
    }

    /// The bundles of several secrets in one request (`POST /bundles`, at most [`MAX_BATCH`]),
    /// in the same order, `None` for a secret the witness never logged. A witness without
    /// that endpoint is asked for each bundle in turn.
    pub async fn bundles(
        &self,
        ps: &[[u8; 32]],
    ) -> Result<Vec<Option<Vec<u8>>>, WitnessClientError> {
        let hexes: Vec<String> = ps.iter().map(hex::encode).collect();
        let request = self
            .http
            .post(self.endpoint("/bundles"))
            .json(&serde_json::json!({ "ps": hexes }));
        let limit = MAX_RESPONSE.saturating_mul(ps.len());
        match self.send_limited(request, limit).await {
            Ok(body) => atomicity_witness::bundle::decode_bundles(&body, ps.len())
                .map_err(|e| self.bad_answer(e)),
            // An older witness: no such route.
            Err(WitnessClientError::Refused { status: 404, .. }) => {
                let mut bundles = Vec::with_capacity(ps.len());
                for p in ps {
                    bundles.push(self.bundle(p).await?);
                }
                Ok(bundles)
            }
            Err(e) => Err(e),
        }
    }

    /// The witness's URL, as used in requests and error messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The log's C2SP verifier key (`GET /vkey`), trimmed; checked to parse as one.
    pub async fn vkey(&self) -> Result<String, WitnessClientError> {
        let body = self.send(self.http.get(self.endpoint("/vkey"))).await?;
        let text = String::from_utf8(body)
            .map_err(|_| self.bad_answer("the verifier key is not UTF-8"))?;
        let vkey = text.trim();
        Verifier::from_vkey(vkey)
            .map_err(|e| self.bad_answer(format!("not a verifier key ({e}): {vkey:?}")))?;
        Ok(vkey.to_string())
    }

    /// The log's current block (`GET /block`; the witness starts a block first if one is due).
    pub async fn block(&self) -> Result<BlockInfo, WitnessClientError> {
        let body = self.send(self.http.get(self.endpoint("/block"))).await?;
        self.json(&body)
    }

    /// Submits the secret `p` (`POST /submit`); answers once the witness has made it durable.
    /// Submitting the same secret again is harmless and returns the original entry.
    pub async fn submit(&self, p: &[u8; 32]) -> Result<Submitted, WitnessClientError> {
        let request = self
            .http
            .post(self.endpoint("/submit"))
            .json(&serde_json::json!({ "p": hex::encode(p) }));
        let body = self.send(request).await?;
        self.json(&body)
    }

    /// The proof bundle for `p` (`GET /bundle/{p}`), as `ProofBundle` bytes, or `None` if the
    /// witness has never logged `p` (404 `unknown_p`). The bytes are not checked here.
    pub async fn bundle(&self, p: &[u8; 32]) -> Result<Option<Vec<u8>>, WitnessClientError> {
        let path = format!("/bundle/{}", hex::encode(p));
        match self.send(self.http.get(self.endpoint(&path))).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(WitnessClientError::Refused {
                status: 404, code, ..
            }) if code == "unknown_p" => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn bad_answer(&self, reason: impl Into<String>) -> WitnessClientError {
        WitnessClientError::BadAnswer {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, WitnessClientError> {
        serde_json::from_slice(body).map_err(|e| self.bad_answer(e.to_string()))
    }

    /// Sends a request; the body of a 2xx answer, or the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, WitnessClientError> {
        self.send_limited(request, MAX_RESPONSE).await
    }

    /// [`WitnessClient::send`], reading at most `limit` bytes.
    async fn send_limited(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<Vec<u8>, WitnessClientError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| WitnessClientError::Unreachable {
                url: self.url.clone(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len().saturating_add(chunk.len()) > limit {
                        return Err(self.bad_answer(format!(
                            "{status}: the answer is larger than {limit} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(WitnessClientError::Unreachable {
                        url: self.url.clone(),
                        reason: format!("reading the answer: {}", error_chain(&e)),
                    });
                }
            }
        }
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.code, e.error),
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.trim().chars().take(200).collect();
                ("unknown".to_string(), text)
            }
        };
        Err(WitnessClientError::Refused {
            url: self.url.clone(),
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// Most secrets in one batched request of [`WitnessClient::submit_soon`] or
/// [`WitnessClient::bundle_soon`] (the witness's limit for `/bundles`).
pub const MAX_BATCH: usize = atomicity_witness::bundle::MAX_BUNDLES;

impl WitnessClient {
    /// Starts the task that drains a queue of secrets in batches of at most [`MAX_BATCH`]: it
    /// takes whatever is waiting, makes one request with `send`, and gives each secret its share
    /// of the answer (or the request's error). The task's client has no queues of its own in
    /// use (a task holding the sender of its own queue would never see it close).
    fn start_batches<T, Fut>(
        &self,
        send: fn(WitnessClient, Vec<[u8; 32]>) -> Fut,
    ) -> mpsc::UnboundedSender<Waiting<T>>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<T>, WitnessClientError>> + Send + 'static,
    {
        let client = WitnessClient {
            http: self.http.clone(),
            url: self.url.clone(),
            batches: Arc::default(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiting<T>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(waiting) => batch.push(waiting),
                        Err(_) => break,
                    }
                }
                let ps = batch.iter().map(|(p, _)| *p).collect();
                match send(client.clone(), ps).await {
                    Ok(answers) => {
                        for ((_, reply), answer) in batch.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in batch {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        tx
    }
}

/// An error with its causes (reqwest's own message is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

/// The check a bundle must pass, given its bytes: `Ok(())` to take it, or why not.
pub type AcceptBundle = Box<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// One witness to publish on, with the check its bundle must pass.
pub struct PublishTarget {
    /// The witness (a client kept for the node's life, so publications reuse connections).
    pub client: WitnessClient,
    /// Takes a bundle from this witness, or says why not. Typically it decodes the bytes as a
    /// `ProofBundle` and runs `verify_publication` with this log's key, the window, the hard
    /// deadline and a cosigner policy. A rejected bundle is fetched again at the next poll,
    /// since it may only lack cosignatures yet.
    pub accept: AcceptBundle,
}

impl std::fmt::Debug for PublishTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishTarget")
            .field("url", &self.client.url)
            .finish_non_exhaustive()
    }
}

/// Why [`publish_any`] found no bundle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PublishError {
    /// No witness was given.
    #[error("no witness to publish on")]
    NoTargets,
    /// The deadline passed before any witness gave an accepted bundle.
    #[error("no witness gave an accepted bundle before the deadline: {}", attempts.join("; "))]
    Timeout {
        /// The last outcome on each witness, in words (each naming its URL), in target order.
        attempts: Vec<String>,
    },
}

/// Publishes `p` on every target at once and returns the first bundle a target's `accept`
/// takes, as (index of that target, bundle bytes).
///
/// Each target is worked on concurrently: the secret is submitted (again on every `poll` while
/// the submission fails: the witness is down, busy or censoring), then the bundle is fetched
/// on every `poll` (at least [`MIN_POLL`]) until `accept` takes it. Everything stops at `deadline`, with
/// [`PublishError::Timeout`] listing what last went wrong on each target.
pub async fn publish_any(
    targets: Vec<PublishTarget>,
    p: [u8; 32],
    deadline: Instant,
    poll: Duration,
) -> Result<(usize, Vec<u8>), PublishError> {
    if targets.is_empty() {
        return Err(PublishError::NoTargets);
    }
    let attempts = Arc::new(Mutex::new(
        targets
            .iter()
            .map(|t| format!("{}: not tried before the deadline", t.client.url))
            .collect::<Vec<_>>(),
    ));
    let mut tasks = JoinSet::new();
    for (index, target) in targets.into_iter().enumerate() {
        let attempts = Arc::clone(&attempts);
        tasks.spawn(async move {
            let note = |words: String| {
                if let Ok(mut all) = attempts.lock()
                    && let Some(slot) = all.get_mut(index)
                {
                    *slot = words;
                }
            };
            (index, publish_one(&target, &p, poll, note).await)
        });
    }
    let first = tokio::time::timeout_at(deadline, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(found) = done {
                return Some(found);
            }
        }
        None
    })
    .await;
    tasks.abort_all();
    match first {
        Ok(Some(found)) => Ok(found),
        // Every task ended without a bundle (they only end that way by panicking in `accept`),
        // or the deadline passed.
        Ok(None) | Err(_) => {
            let attempts = attempts.lock().map(|a| a.clone()).unwrap_or_default();
            Err(PublishError::Timeout { attempts })
        }
    }
}

/// Works on one target until `accept` takes its bundle (the caller stops it at the deadline),
/// telling `note` the outcome of every round.
async fn publish_one(
    target: &PublishTarget,
    p: &[u8; 32],
    poll: Duration,
    note: impl Fn(String),
) -> Vec<u8> {
    let client = &target.client;
    let poll = poll.max(MIN_POLL);
    let mut submitted = false;
    loop {
        if !submitted {
            match client.submit_soon(p).await {
                Ok(_) => submitted = true,
                Err(e) => note(format!("submit: {e}")),
            }
        }
        if submitted {
            match client.bundle_soon(p).await {
                Ok(Some(bytes)) => match (target.accept)(&bytes) {
                    Ok(()) => return bytes,
                    Err(why) => note(format!(
                        "the bundle from the witness at {} was not accepted: {why}",
                        client.url()
                    )),
                },
                Ok(None) => note(format!(
                    "the witness at {} took the secret but has no bundle for it",
                    client.url()
                )),
                Err(e) => note(format!("bundle: {e}")),
            }
        }
        tokio::time::sleep(poll).await;
    }
}
