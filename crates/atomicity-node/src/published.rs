//! Signed public documents: what the node serves on its peer API at Pubky-style paths
//! (`/pub/…`, plain `GET`, no authentication), and reading a peer's own documents back
//! ([`refresh_line`]). The format is [`atomicity_core::published`]'s; `docs/publishing.md`
//! describes every document.
//!
//! Documents are signed on request and cached per path until their content changes, so a
//! reader that polls costs one ledger read and a comparison. Seqs are microseconds since the
//! epoch and never go backward, not even across restarts with a clock set back: the node
//! persists a bound a minute ahead of the seqs it signs ([`PUBLISHED_SEQ_FILE`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use atomicity_core::published::{
    self, ChannelsValue, EndpointId, EndpointIdError, LineAd, MAX_DOCUMENT_LEN, PublishedError,
    StateValue, WitnessAd, WitnessesValue,
};
use atomicity_core::{Asset, Keypair, Message, PublicKey, Reply};
use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};

use crate::actor::{ActorError, Command, LineInfo};
use crate::datadir::{DataDir, DataDirError, ENDPOINTS_FILE, PUBLISHED_SEQ_FILE};
use crate::server::AppState;
use crate::unix_micros;

/// Largest value of a user's endpoint (its compact JSON), in bytes.
pub const MAX_ENDPOINT_VALUE_LEN: usize = 4096;
/// Most endpoints a user may configure.
pub const MAX_ENDPOINTS: usize = 256;
/// How far ahead of the seqs signed the persisted bound is kept (one minute).
const SEQ_RESERVE_MICROS: u64 = 60 * 1_000_000;
/// Most documents kept signed in memory (one per path; states are one per line).
const CACHE_MAX: usize = 4096;
/// How long fetching a peer's document may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Signs and caches the node's documents, and keeps the user's Paykit endpoints.
pub struct Publisher {
    key: Keypair,
    dir: DataDir,
    signing: Mutex<Signing>,
    endpoints: Mutex<BTreeMap<EndpointId, serde_json::Value>>,
    pub(crate) http: reqwest::Client,
}

struct Signing {
    cache: HashMap<String, Cached>,
    /// The last seq signed (or, after a start, the persisted bound above every earlier one).
    last_seq: u64,
    /// The persisted bound: every seq signed is below it.
    reserved: u64,
}

struct Cached {
    value: Vec<u8>,
    document: Bytes,
}

/// `DIR/endpoints.json`.
#[derive(Serialize, Deserialize)]
struct EndpointsFile {
    version: u32,
    endpoints: BTreeMap<String, serde_json::Value>,
}

/// Why a document could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The ledger could not be read.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// The seq bound could not be persisted.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The document could not be signed (a bug: the node builds its own paths and values).
    #[error(transparent)]
    Sign(#[from] PublishedError),
}

/// Why a user's endpoint was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Not `{asset}-{rail}-{format}`.
    #[error(transparent)]
    BadId(#[from] EndpointIdError),
    /// `*-atomicity-key` whose value is not a key (the node publishes its own key there unless
    /// the user names another: credit reassignment).
    #[error(
        "{0} names the Atomicity key to pay in that asset: its value must be a key (z-base32); \
         by default the node publishes its own"
    )]
    Reserved(EndpointId),
    /// Not a non-empty string or object.
    #[error("the value must be {0}")]
    BadValue(&'static str),
    /// Its compact JSON is over [`MAX_ENDPOINT_VALUE_LEN`].
    #[error("the value is {0} bytes of JSON; at most 4096")]
    TooLarge(usize),
    /// [`MAX_ENDPOINTS`] already.
    #[error("at most 256 endpoints; remove one first")]
    TooMany,
    /// No such user endpoint.
    #[error("no endpoint {0} is configured")]
    Unknown(String),
    /// `endpoints.json` could not be written.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Checks a user's endpoint: a valid id that is not reserved, and a value that is a non-empty
/// string or a non-empty object of at most [`MAX_ENDPOINT_VALUE_LEN`] bytes of compact JSON.
pub fn check_endpoint(id: &str, value: &serde_json::Value) -> Result<EndpointId, EndpointError> {
    let id = EndpointId::parse(id)?;
    if id.is_reserved()
        && value
            .as_str()
            .is_none_or(|text| atomicity_core::parse_key(text).is_err())
    {
        return Err(EndpointError::Reserved(id));
    }
    let empty = match value {
        serde_json::Value::String(s) => s.trim().is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => return Err(EndpointError::BadValue("a JSON string or object")),
    };
    if empty {
        return Err(EndpointError::BadValue("non-empty"));
    }
    let len = serde_json::to_vec(value).map_or(usize::MAX, |b| b.len());
    if len > MAX_ENDPOINT_VALUE_LEN {
        return Err(EndpointError::TooLarge(len));
    }
    Ok(id)
}

impl Publisher {
    /// Loads the user's endpoints and the seq bound from `dir`.
    pub fn open(key: Keypair, dir: &DataDir) -> Result<Publisher, DataDirError> {
        let corrupt = |name: &str, why: String| DataDirError::Corrupt {
            path: dir.file(name),
            why,
        };
        let last_seq = match dir.read_optional(PUBLISHED_SEQ_FILE)? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| corrupt(PUBLISHED_SEQ_FILE, "not a decimal number".into()))?,
        };
        let mut endpoints = BTreeMap::new();
        if let Some(bytes) = dir.read_optional(ENDPOINTS_FILE)? {
            let file: EndpointsFile = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(ENDPOINTS_FILE, e.to_string()))?;
            if file.version != 1 {
                return Err(corrupt(
                    ENDPOINTS_FILE,
                    format!("unknown version {}", file.version),
                ));
            }
            for (id, value) in file.endpoints {
                let id = check_endpoint(&id, &value)
                    .map_err(|e| corrupt(ENDPOINTS_FILE, format!("endpoint {id:?}: {e}")))?;
                endpoints.insert(id, value);
            }
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Ok(Publisher {
            key,
            dir: dir.clone(),
            signing: Mutex::new(Signing {
                cache: HashMap::new(),
                last_seq,
                reserved: 0,
            }),
            endpoints: Mutex::new(endpoints),
            http,
        })
    }

    /// Takes the signing lock. Build a document's value while holding it, then sign it with
    /// [`Signer::document`]: so the newest seq always carries the newest content.
    pub async fn signer(&self) -> Signer<'_> {
        Signer {
            publisher: self,
            signing: self.signing.lock().await,
        }
    }

    /// The user's endpoints.
    pub async fn user_endpoints(&self) -> BTreeMap<EndpointId, serde_json::Value> {
        self.endpoints.lock().await.clone()
    }

    /// Sets a user's endpoint (checked with [`check_endpoint`]), replacing one with the same
    /// id, and persists the list; its id, and true if it replaced one. On error nothing
    /// changed.
    pub async fn set_endpoint(
        &self,
        id: &str,
        value: serde_json::Value,
    ) -> Result<(EndpointId, bool), EndpointError> {
        let id = check_endpoint(id, &value)?;
        let mut endpoints = self.endpoints.lock().await;
        let replaced = endpoints.contains_key(&id);
        if !replaced && endpoints.len() >= MAX_ENDPOINTS {
            return Err(EndpointError::TooMany);
        }
        let mut next = endpoints.clone();
        next.insert(id.clone(), value);
        self.persist(&next).await?;
        *endpoints = next;
        Ok((id, replaced))
    }

    /// Removes a user's endpoint and persists the list; its id and value. On error nothing
    /// changed.
    pub async fn remove_endpoint(
        &self,
        id: &str,
    ) -> Result<(EndpointId, serde_json::Value), EndpointError> {
        let unknown = || EndpointError::Unknown(id.chars().take(100).collect());
        let parsed = EndpointId::parse(id).map_err(|_| unknown())?;
        let mut endpoints = self.endpoints.lock().await;
        let mut next = endpoints.clone();
        let value = next.remove(&parsed).ok_or_else(unknown)?;
        self.persist(&next).await?;
        *endpoints = next;
        Ok((parsed, value))
    }

    async fn persist(
        &self,
        endpoints: &BTreeMap<EndpointId, serde_json::Value>,
    ) -> Result<(), EndpointError> {
        let file = EndpointsFile {
            version: 1,
            endpoints: endpoints
                .iter()
                .map(|(id, v)| (id.to_string(), v.clone()))
                .collect(),
        };
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| EndpointError::Storage(e.to_string()))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.write_durable(ENDPOINTS_FILE, &bytes))
            .await
            .map_err(|e| EndpointError::Storage(e.to_string()))?
            .map_err(|e| EndpointError::Storage(e.to_string()))
    }
}

/// The signing lock, held while a document's value is built and signed.
pub struct Signer<'a> {
    publisher: &'a Publisher,
    signing: MutexGuard<'a, Signing>,
}

impl Signer<'_> {
    /// The document at `path` with `value`: the cached one if the value has not changed, else
    /// a new one with the next seq.
    pub async fn document(&mut self, path: &str, value: Vec<u8>) -> Result<Bytes, PublishError> {
        if let Some(cached) = self.signing.cache.get(path)
            && cached.value == value
        {
            return Ok(cached.document.clone());
        }
        let seq = self.next_seq().await?;
        let document = Bytes::from(published::sign_document(
            &self.publisher.key,
            path,
            seq,
            &value,
        )?);
        let cache = &mut self.signing.cache;
        if cache.len() >= CACHE_MAX && !cache.contains_key(path) {
            cache.clear();
        }
        cache.insert(
            path.to_string(),
            Cached {
                value,
                document: document.clone(),
            },
        );
        Ok(document)
    }

    /// `max(now in µs, last + 1)`, first moving the persisted bound ahead if it is reached.
    async fn next_seq(&mut self) -> Result<u64, PublishError> {
        let signing = &mut *self.signing;
        let seq = unix_micros().max(signing.last_seq.saturating_add(1));
        if seq > published::MAX_SEQ {
            return Err(PublishedError::BadSeq(seq).into());
        }
        if seq >= signing.reserved {
            let reserved = seq.saturating_add(SEQ_RESERVE_MICROS);
            let dir = self.publisher.dir.clone();
            tokio::task::spawn_blocking(move || {
                dir.write_durable(PUBLISHED_SEQ_FILE, reserved.to_string().as_bytes())
            })
            .await
            .map_err(|e| PublishError::Storage(e.to_string()))?
            .map_err(|e| PublishError::Storage(e.to_string()))?;
            signing.reserved = reserved;
        }
        signing.last_seq = seq;
        Ok(seq)
    }
}

/// One Paykit endpoint of the node.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Its value.
    pub value: serde_json::Value,
    /// Published by the node itself (`<asset>-atomicity-key`), not configured by the user.
    pub automatic: bool,
}

/// Every endpoint the node publishes, sorted by id: `<asset>-atomicity-key` (value: the node's
/// key) for every asset in which some line has an accept limit above zero (where the node can
/// be paid), and the user's.
pub async fn endpoints(state: &AppState) -> Result<Vec<Endpoint>, ActorError> {
    let lines = state.actor.call(Command::Lines).await?;
    let me = serde_json::Value::String(state.me.to_z32());
    let mut all: BTreeMap<EndpointId, Endpoint> = BTreeMap::new();
    // The user's come first: an `<asset>-atomicity-key` naming another key replaces mine
    // (the holder asks to be paid there: credit reassignment).
    for (id, value) in state.published.user_endpoints().await {
        all.entry(id.clone()).or_insert(Endpoint {
            id,
            value,
            automatic: false,
        });
    }
    for line in lines.iter().filter(|l| !l.view.limits.accept.is_zero()) {
        let id = EndpointId::atomicity_key(&line.view.asset);
        all.entry(id.clone()).or_insert_with(|| Endpoint {
            id,
            value: me.clone(),
            automatic: true,
        });
    }
    Ok(all.into_values().collect())
}

/// The Pubky-style listing of the endpoints directory: one `pubky://<key><path>` a line, in
/// id order, after `cursor` (an id or such a URL) if given, at most `limit`.
pub async fn endpoint_listing(
    state: &AppState,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> Result<String, ActorError> {
    let after = cursor.map(|c| c.rsplit_once('/').map_or(c, |(_, id)| id).to_string());
    let mut out = String::new();
    for endpoint in endpoints(state)
        .await?
        .into_iter()
        .filter(|e| after.as_deref().is_none_or(|a| e.id.as_str() > a))
        .take(limit.unwrap_or(usize::MAX))
    {
        out.push_str(&published::pubky_url(
            &state.me,
            &published::endpoint_path(&endpoint.id),
        ));
        out.push('\n');
    }
    Ok(out)
}

/// The signed document of endpoint `id`, if the node publishes one.
pub async fn endpoint_document(state: &AppState, id: &str) -> Result<Option<Bytes>, PublishError> {
    let Ok(id) = EndpointId::parse(id) else {
        return Ok(None);
    };
    let mut signer = state.published.signer().await;
    let Some(endpoint) = endpoints(state).await?.into_iter().find(|e| e.id == id) else {
        return Ok(None);
    };
    let value = serde_json::to_vec(&endpoint.value)
        .map_err(|e| PublishError::Sign(PublishedError::BadValue(e.to_string())))?;
    signer
        .document(&published::endpoint_path(&id), value)
        .await
        .map(Some)
}

fn line_ad(line: &LineInfo) -> LineAd {
    let asset = &line.view.asset;
    LineAd {
        peer: line.view.peer.to_z32(),
        asset: asset.to_string(),
        capacity_hint: asset.format(line.available),
        fee_base: asset.format(line.fees.base),
        fee_ppm: line.fees.ppm,
    }
}

/// The signed channel list: every line with an issue limit above zero, and the witnesses.
pub async fn channels_document(state: &AppState) -> Result<Bytes, PublishError> {
    let mut signer = state.published.signer().await;
    let lines = state.actor.call(Command::Lines).await?;
    let value = ChannelsValue {
        lines: lines
            .iter()
            .filter(|l| !l.view.limits.issue.is_zero())
            .map(line_ad)
            .collect(),
        witnesses: state.witnesses.iter().map(|w| w.vkey.clone()).collect(),
    };
    signer
        .document(published::CHANNELS_PATH, to_json(&value)?)
        .await
}

/// The signed list of the witness logs the node publishes on.
pub async fn witnesses_document(state: &AppState) -> Result<Bytes, PublishError> {
    let mut signer = state.published.signer().await;
    let value = WitnessesValue {
        witnesses: state
            .witnesses
            .iter()
            .map(|w| WitnessAd {
                vkey: w.vkey.clone(),
                url: w.url.clone(),
            })
            .collect(),
    };
    signer
        .document(published::WITNESSES_PATH, to_json(&value)?)
        .await
}

/// What a node says it can pay out for others ([`published::CAPABILITIES_PATH`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capabilities {
    /// Rails (`{rail}-{format}`) the node pays through for settlements and swaps.
    #[serde(default)]
    pub pays: Vec<String>,
    /// The Lightning network it pays invoices on, if it pays Lightning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightning_network: Option<String>,
}

/// The signed list of rails the node pays through for others.
pub async fn capabilities_document(state: &AppState) -> Result<Bytes, PublishError> {
    let mut signer = state.published.signer().await;
    let value = state.lightning.capabilities();
    signer
        .document(published::CAPABILITIES_PATH, to_json(&value)?)
        .await
}

/// Fetches `peer`'s document at `path` (from its URL as the directory knows it, asking the DHT
/// again if nothing answers there) and verifies it: signed by `peer`, for `path`. Returns the
/// value's JSON text.
pub async fn fetch_document(
    state: &AppState,
    peer: &PublicKey,
    path: &str,
) -> Result<String, RefreshError> {
    let base = state
        .directory
        .locate(peer)
        .await
        .ok_or_else(|| RefreshError::NoUrl(peer.to_z32()))?;
    let body = match fetch(&state.published.http, &base, path, peer).await {
        Err(Fetch::Unanswered(why)) => match state.directory.relocate(peer, &base).await {
            Some(moved) => fetch(&state.published.http, &moved, path, peer).await,
            None => Err(Fetch::Unanswered(why)),
        },
        other => other,
    }
    .map_err(RefreshError::from)?;
    let verified = published::verify_document(&body, peer, path, None)?;
    Ok(verified.value.get().to_string())
}

/// The signed ratings of the routers the node asked: what their routes did.
pub async fn routers_document(state: &AppState) -> Result<Bytes, PublishError> {
    let mut signer = state.published.signer().await;
    let ratings: BTreeMap<String, crate::routers::Rating> =
        state.routers.ratings().into_iter().collect();
    signer
        .document(published::ROUTERS_PATH, to_json(&ratings)?)
        .await
}

/// The signed newest IOU state the node issued to `holder` in `asset`, if it signed one.
pub async fn state_document(
    state: &AppState,
    holder: &PublicKey,
    asset: &Asset,
) -> Result<Option<Bytes>, PublishError> {
    let mut signer = state.published.signer().await;
    let newest = state
        .actor
        .call(|r| Command::OutState(holder.clone(), asset.clone(), r))
        .await?;
    let Some(newest) = newest else {
        return Ok(None);
    };
    let value = to_json(&StateValue::new(&newest))?;
    signer
        .document(&published::state_path(holder, asset), value)
        .await
        .map(Some)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, PublishError> {
    serde_json::to_vec(value)
        .map_err(|e| PublishError::Sign(PublishedError::BadValue(e.to_string())))
}

/// Why [`refresh_line`] took nothing. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Not a peer of this node.
    #[error("{0} is not a peer of this node")]
    UnknownPeer(String),
    /// No line with the peer in the asset.
    #[error("no line with {peer} in {asset}")]
    NoLine {
        /// The peer.
        peer: String,
        /// The asset.
        asset: String,
    },
    /// No URL known for the peer.
    #[error("no URL known for {0}")]
    NoUrl(String),
    /// The peer did not answer, or answered an error.
    #[error("cannot fetch {url}: {why}")]
    Unreachable {
        /// What was fetched.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// The peer publishes no state toward this node in the asset (404).
    #[error("{0} publishes no IOU state toward this node in this asset")]
    NoState(String),
    /// The document or the state in it does not verify.
    #[error("the peer's state document does not verify: {0}")]
    BadDocument(#[from] PublishedError),
    /// The node holds a newer state from the peer than the one published.
    #[error("the published state (seq {got}) is older than the one held (seq {held})")]
    Stale {
        /// The seq held.
        held: u64,
        /// The seq published.
        got: u64,
    },
    /// The ledger refused the state (as it would a pushed one).
    #[error("the state was rejected (code {code}): {text}")]
    Rejected {
        /// The rejection code (protocol.md, §Replies).
        code: u16,
        /// Why.
        text: String,
    },
    /// The ledger could not be reached or could not commit.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// What [`refresh_line`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    /// The published state was newer than the one held, and is now held.
    pub updated: bool,
    /// The seq of the peer's state now held.
    pub seq: u64,
}

/// Fetches the newest IOU state `issuer` published toward this node in `asset`
/// (`GET {issuer's URL}/pub/atomicity/v1/states/{me}/{asset}`; the URL as the directory knows
/// it, asking the DHT if there is none, and again if nothing answers there), verifies the document (the
/// issuer's key, the path) and the state (the issuer's signature, the line), and hands it to
/// the ledger exactly as a pushed `State` message: a stale, equivocating or otherwise invalid
/// state is rejected there and changes nothing.
pub async fn refresh_line(
    state: &AppState,
    issuer: &PublicKey,
    asset: &Asset,
) -> Result<Refreshed, RefreshError> {
    if !state.directory.contains(issuer) {
        return Err(RefreshError::UnknownPeer(issuer.to_z32()));
    }
    let held = state
        .actor
        .call(Command::Lines)
        .await?
        .into_iter()
        .find(|l| l.view.peer == *issuer && l.view.asset == *asset)
        .map(|l| l.view.in_seq)
        .ok_or_else(|| RefreshError::NoLine {
            peer: issuer.to_z32(),
            asset: asset.to_string(),
        })?;
    let path = published::state_path(&state.me, asset);
    let base = state
        .directory
        .locate(issuer)
        .await
        .ok_or_else(|| RefreshError::NoUrl(issuer.to_z32()))?;
    let body = match fetch(&state.published.http, &base, &path, issuer).await {
        // Nothing answered there: the peer may have moved and said so on the DHT.
        Err(Fetch::Unanswered(why)) => match state.directory.relocate(issuer, &base).await {
            Some(moved) => fetch(&state.published.http, &moved, &path, issuer).await,
            None => Err(Fetch::Unanswered(why)),
        },
        other => other,
    }
    .map_err(RefreshError::from)?;
    let (signed, _) = published::verify_state_document(&body, issuer, &state.me, asset, None)?;
    let got = signed.body().seq;
    let replies = state
        .actor
        .call(|reply| Command::Inbound {
            from: issuer.clone(),
            messages: vec![Message::State(signed)],
            now: crate::unix_now(),
            reply,
        })
        .await?;
    match replies.into_iter().next() {
        Some(Reply::StateAck { seq }) => Ok(Refreshed {
            updated: seq > held,
            seq,
        }),
        Some(Reply::Rejected { code, .. }) if code == STALE_SEQ => {
            Err(RefreshError::Stale { held, got })
        }
        Some(Reply::Rejected { code, text }) => Err(RefreshError::Rejected { code, text }),
        other => Err(RefreshError::Rejected {
            code: 0,
            text: format!("unexpected answer {other:?}"),
        }),
    }
}

/// The rejection code of a state older than the one held (protocol.md, §Replies).
const STALE_SEQ: u16 = 20;

/// A failed fetch.
enum Fetch {
    /// Nothing answered (connection refused, timeout): worth asking the DHT where the peer is.
    Unanswered(RefreshError),
    /// Anything else.
    Failed(RefreshError),
}

impl From<Fetch> for RefreshError {
    fn from(f: Fetch) -> RefreshError {
        match f {
            Fetch::Unanswered(e) | Fetch::Failed(e) => e,
        }
    }
}

/// GETs `base` + `path`, at most [`MAX_DOCUMENT_LEN`] bytes.
async fn fetch(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    issuer: &PublicKey,
) -> Result<Vec<u8>, Fetch> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let unreachable = |why: String| RefreshError::Unreachable {
        url: url.clone(),
        why,
    };
    let mut response = match http.get(&url).send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() || e.is_timeout() => {
            return Err(Fetch::Unanswered(unreachable(e.to_string())));
        }
        Err(e) => return Err(Fetch::Failed(unreachable(e.to_string()))),
    };
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Fetch::Failed(RefreshError::NoState(issuer.to_z32())));
    }
    if !status.is_success() {
        return Err(Fetch::Failed(unreachable(format!("HTTP {status}"))));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Fetch::Failed(unreachable(e.to_string())))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_LEN {
            return Err(Fetch::Failed(
                PublishedError::TooLarge {
                    len: body.len(),
                    max: MAX_DOCUMENT_LEN,
                }
                .into(),
            ));
        }
    }
    Ok(body)
}
