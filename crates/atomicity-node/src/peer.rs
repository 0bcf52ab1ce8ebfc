//! Talking to other nodes: sealing messages in envelopes, POSTing them, reading the replies, and
//! the outbox that resends what a peer has not taken yet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use atomicity_core::{
    Asset, IouState, Keypair, Message, PaymentOutcome, PublicKey, Reply, Signed, VerifiedRoots,
    decode_replies, envelope_batches,
};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::actor::{ActorHandle, Command, Outbound};
use crate::unix_now;

/// Path of the peer API endpoint that takes envelopes.
pub const ENVELOPE_PATH: &str = "/peer/v1/envelope";
/// Path of the peer API endpoint that quotes a route's fees.
pub const QUOTE_PATH: &str = "/peer/v1/quote";
/// How long one request to a peer may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// Offers younger than this are left to the request that sent them.
const RETRY_AFTER_SECS: u64 = 3;

/// Why a peer could not be reached or did not answer sensibly.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No URL is known for the peer.
    #[error("no URL known for peer {0}")]
    NoUrl(String),
    /// The request failed (connection refused, timeout...).
    #[error("cannot reach peer: {0}")]
    Unreachable(String),
    /// The peer refused the whole envelope.
    #[error("peer refused the envelope ({status}): {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error body.
        body: String,
    },
    /// The peer's answer did not decode, or did not match what was sent.
    #[error("malformed reply from peer: {0}")]
    BadReply(String),
}

pub use crate::directory::Directory;

/// Sends envelopes to peers.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    key: Arc<Keypair>,
    actor: ActorHandle,
    directory: Directory,
}

impl PeerClient {
    /// A client signing with `key`.
    pub fn new(key: Keypair, actor: ActorHandle, directory: Directory) -> PeerClient {
        let http = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        PeerClient {
            http,
            key: Arc::new(key),
            actor,
            directory,
        }
    }

    /// Sends messages to `peer` in one signed envelope and returns its replies, one per message.
    pub async fn send(
        &self,
        peer: &PublicKey,
        messages: Vec<Message>,
    ) -> Result<Vec<Reply>, PeerError> {
        let count = messages.len();
        let envelope = Signed::sign(
            atomicity_core::Envelope {
                from: self.key.public_key(),
                to: peer.clone(),
                sent_at: unix_now(),
                messages,
            },
            &self.key,
        )
        .to_bytes();
        // Cheap to clone, for a second try at a peer that moved.
        let envelope = axum::body::Bytes::from(envelope);
        let body = self
            .post(peer, ENVELOPE_PATH, |request| {
                request
                    .header("content-type", "application/octet-stream")
                    .body(envelope.clone())
            })
            .await?;
        let replies = decode_replies(&body).map_err(|e| PeerError::BadReply(e.to_string()))?;
        // Checked here rather than on the ledger's thread (see `Message::precheck`).
        let mut roots = VerifiedRoots::default();
        for reply in &replies {
            reply.precheck(&mut roots);
        }
        if replies.len() != count {
            return Err(PeerError::BadReply(format!(
                "{} replies to {count} messages",
                replies.len()
            )));
        }
        Ok(replies)
    }

    /// POSTs to `path` on the peer's API; the body of a 2xx answer, or why not.
    async fn post(
        &self,
        peer: &PublicKey,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<axum::body::Bytes, PeerError> {
        let url = self
            .directory
            .locate(peer)
            .await
            .ok_or_else(|| PeerError::NoUrl(peer.to_z32()))?;
        // The request is rebuilt for a second try at a peer's new address.
        let request = |url: &str| {
            build(
                self.http
                    .post(format!("{}{path}", url.trim_end_matches('/'))),
            )
        };
        let response = match request(&url).send().await {
            Ok(response) => response,
            // Nothing answered there: the peer may have moved and said so on the DHT.
            Err(e) if e.is_connect() || e.is_timeout() => {
                let Some(moved) = self.directory.relocate(peer, &url).await else {
                    return Err(PeerError::Unreachable(e.to_string()));
                };
                tracing::info!(peer = %peer, url = %moved, "the peer moved");
                request(&moved)
                    .send()
                    .await
                    .map_err(|e| PeerError::Unreachable(e.to_string()))?
            }
            Err(e) => return Err(PeerError::Unreachable(e.to_string())),
        };
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(PeerError::Refused {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    /// Asks `peer` what each hop of a route must receive (see [`crate::api::QuoteRequest`]).
    pub async fn quote(
        &self,
        peer: &PublicKey,
        request: &crate::api::QuoteRequest,
    ) -> Result<crate::api::QuoteResponse, PeerError> {
        let body = self
            .post(peer, QUOTE_PATH, |builder| builder.json(request))
            .await?;
        serde_json::from_slice(&body).map_err(|e| PeerError::BadReply(e.to_string()))
    }

    /// Sends messages and feeds the replies to the ledger. Per message: the outcome of an
    /// answered offer, `Ok(None)` for other accepted messages, or the peer's rejection.
    pub async fn exchange(
        &self,
        peer: &PublicKey,
        messages: Vec<Message>,
    ) -> Result<Vec<Result<Option<PaymentOutcome>, String>>, PeerError> {
        // Settlement messages learn from their replies whether they were delivered.
        let settlements: Vec<(usize, Message)> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m, Message::Settle(_) | Message::SettleUpdate(_)))
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let replies = self.send(peer, messages).await?;
        let rejections: Vec<Option<String>> = replies
            .iter()
            .map(|reply| match reply {
                Reply::Rejected { code, text } => {
                    tracing::debug!(peer = %peer, code, "peer rejected a message: {text}");
                    Some(text.clone())
                }
                _ => None,
            })
            .collect();
        let outcomes = self
            .actor
            .call(|reply| Command::Replies {
                from: peer.clone(),
                settlements,
                replies,
                now: unix_now(),
                reply,
            })
            .await
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        Ok(outcomes
            .into_iter()
            .zip(rejections)
            .map(|(outcome, rejection)| match rejection {
                Some(text) => Err(text),
                None => Ok(outcome),
            })
            .collect())
    }
}

/// Delivers my newest IOU states to their holders, coalescing (only the newest state per line
/// matters), one delivery in flight per peer (so states arrive in order), retrying until each
/// holder takes them; and the ledger's protocol messages (forwards, proofs, releases), which
/// the ledger itself offers again until they have had their effect.
pub struct Outbox {
    inner: Mutex<OutboxInner>,
    wake: Notify,
    resends: Mutex<HashMap<PublicKey, ResendState>>,
}

#[derive(Default)]
struct OutboxInner {
    pending: HashMap<PublicKey, HashMap<Asset, Signed<IouState>>>,
    messages: HashMap<PublicKey, Vec<Message>>,
    busy: HashSet<PublicKey>,
}

impl OutboxInner {
    fn queue(&mut self, peer: PublicKey, state: Signed<IouState>) {
        let lines = self.pending.entry(peer).or_default();
        let asset = state.body().line.asset.clone();
        let newer = lines
            .get(&asset)
            .is_none_or(|held| held.body().seq < state.body().seq);
        if newer {
            lines.insert(asset, state);
        }
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox {
            inner: Mutex::new(OutboxInner::default()),
            wake: Notify::new(),
            resends: Mutex::new(HashMap::new()),
        })
    }

    /// Queues a state, replacing an older one for the same line.
    pub async fn push(&self, peer: PublicKey, state: Signed<IouState>) {
        self.inner.lock().await.queue(peer, state);
        self.wake.notify_one();
    }

    /// Queues a protocol message for a peer.
    pub async fn push_message(&self, peer: PublicKey, message: Message) {
        self.inner
            .lock()
            .await
            .messages
            .entry(peer)
            .or_default()
            .push(message);
        self.wake.notify_one();
    }

    /// Runs the delivery loop: takes committed states from the actor, sends them, and every few
    /// seconds resends unanswered offers and undelivered states.
    pub async fn run(
        self: Arc<Self>,
        client: PeerClient,
        mut committed: mpsc::UnboundedReceiver<Outbound>,
        actor: ActorHandle,
    ) {
        // After a restart, nothing is known to be delivered: offer everything again once.
        resend_all(&self, &client, &actor, 0).await;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                out = committed.recv() => match out {
                    Some(Outbound::State(peer, state)) => self.push(peer, state).await,
                    Some(Outbound::Message(peer, message)) => self.push_message(peer, message).await,
                    None => return,
                },
                _ = self.wake.notified() => self.flush(&client).await,
                _ = tick.tick() => {
                    resend_all(&self, &client, &actor, RETRY_AFTER_SECS).await;
                    self.flush(&client).await;
                }
            }
        }
    }

    /// Starts a delivery to every peer with queued states and none in flight.
    async fn flush(self: &Arc<Self>, client: &PeerClient) {
        let mut inner = self.inner.lock().await;
        let ready: HashSet<PublicKey> = inner
            .pending
            .keys()
            .chain(inner.messages.keys())
            .filter(|p| !inner.busy.contains(*p))
            .cloned()
            .collect();
        for peer in ready {
            let lines = inner.pending.remove(&peer).unwrap_or_default();
            let messages = inner.messages.remove(&peer).unwrap_or_default();
            inner.busy.insert(peer.clone());
            let this = Arc::clone(self);
            let client = client.clone();
            tokio::spawn(async move {
                // Messages first: a forward should not wait behind a state. A failed one is
                // not queued again: the ledger offers it again on the next resend.
                for chunk in envelope_batches(&messages) {
                    if let Err(e) = client.exchange(&peer, chunk.to_vec()).await {
                        tracing::debug!(peer = %peer, "message delivery failed, will resend: {e}");
                        break;
                    }
                }
                let states: Vec<Signed<IouState>> = lines.into_values().collect();
                let state_messages: Vec<Message> =
                    states.iter().cloned().map(Message::State).collect();
                let mut failed = Vec::new();
                let mut start = 0;
                for chunk in envelope_batches(&state_messages) {
                    let sent = &states[start..start + chunk.len()];
                    start += chunk.len();
                    match client.send(&peer, chunk.to_vec()).await {
                        Ok(replies) => {
                            for (state, reply) in sent.iter().zip(replies) {
                                if let Reply::Rejected { code, text } = reply {
                                    tracing::warn!(peer = %peer, seq = state.body().seq, code, "peer rejected my IOU state: {text}");
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(peer = %peer, "state delivery failed, will retry: {e}");
                            failed.extend_from_slice(sent);
                        }
                    }
                }
                let mut inner = this.inner.lock().await;
                inner.busy.remove(&peer);
                let retry_now = failed.is_empty()
                    && (inner.pending.contains_key(&peer) || inner.messages.contains_key(&peer));
                for state in failed {
                    inner.queue(peer.clone(), state);
                }
                drop(inner);
                // Newer states queued meanwhile go out at once; failed ones wait for the tick.
                if retry_now {
                    this.wake.notify_one();
                }
            });
        }
    }
}

/// Resends what peers may not have taken (offers without an answer, releases, claims and
/// reveals of proofs, as the ledger lists them: last sent at least `min_age` seconds ago), and
/// (on start) every newest state.
async fn resend_all(outbox: &Arc<Outbox>, client: &PeerClient, actor: &ActorHandle, min_age: u64) {
    if min_age == 0 {
        let Ok(snapshot) = actor.call(Command::Outbox).await else {
            return;
        };
        for (peer, state) in snapshot.states {
            outbox.push(peer, state).await;
        }
        for (peer, message) in snapshot.awaiting_claim {
            outbox.push_message(peer, message).await;
        }
    }
    let now = unix_now();
    let Ok(messages) = actor
        .call(|reply| Command::Resend {
            now,
            min_age,
            reply,
        })
        .await
    else {
        return;
    };
    let mut by_peer: HashMap<PublicKey, Vec<Message>> = HashMap::new();
    for (peer, message) in messages {
        by_peer.entry(peer).or_default().push(message);
    }
    for (peer, offers) in by_peer {
        if !outbox.start_resend(&peer).await {
            continue;
        }
        let (client, outbox) = (client.clone(), Arc::clone(outbox));
        tokio::spawn(async move {
            let mut reached = true;
            for chunk in envelope_batches(&offers) {
                if let Err(e) = client.exchange(&peer, chunk.to_vec()).await {
                    tracing::debug!(peer = %peer, "resending offers failed, will retry: {e}");
                    reached = false;
                    break;
                }
            }
            outbox.finish_resend(&peer, reached).await;
        });
    }
}

/// When offers to an unreachable peer may be resent next: one resend in flight per peer, and
/// the wait doubles after each failure (up to [`MAX_RESEND_BACKOFF`]), so a peer that is down
/// for long is not hammered.
#[derive(Default)]
struct ResendState {
    in_flight: bool,
    backoff: Duration,
    not_before: Option<tokio::time::Instant>,
}

/// Longest wait between resends of offers to an unreachable peer.
const MAX_RESEND_BACKOFF: Duration = Duration::from_secs(60);

impl Outbox {
    /// Claims the right to resend offers to `peer` now; false while one is in flight or the
    /// peer's backoff has not passed.
    async fn start_resend(&self, peer: &PublicKey) -> bool {
        let mut resends = self.resends.lock().await;
        let state = resends.entry(peer.clone()).or_default();
        let due = state
            .not_before
            .is_none_or(|t| tokio::time::Instant::now() >= t);
        if state.in_flight || !due {
            return false;
        }
        state.in_flight = true;
        true
    }

    /// The peer just reached us, so it is up: resend to it at the next tick, not after its
    /// backoff (this is how a restarted node gets its answers quickly).
    pub async fn peer_is_up(&self, peer: &PublicKey) {
        if let Some(state) = self.resends.lock().await.get_mut(peer) {
            state.backoff = Duration::ZERO;
            state.not_before = None;
        }
    }

    async fn finish_resend(&self, peer: &PublicKey, reached: bool) {
        let mut resends = self.resends.lock().await;
        let state = resends.entry(peer.clone()).or_default();
        state.in_flight = false;
        if reached {
            *state = ResendState::default();
        } else {
            state.backoff = (state.backoff * 2).clamp(Duration::from_secs(2), MAX_RESEND_BACKOFF);
            state.not_before = Some(tokio::time::Instant::now() + state.backoff);
        }
    }
}
