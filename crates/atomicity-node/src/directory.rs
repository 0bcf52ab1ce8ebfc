//! Where each peer is: the URL given with `peer add --url`, or the one the peer's own Pkarr
//! record on the Mainline DHT names (signed by the peer's key, so nobody else can redirect it).
//!
//! A record is cached for its TTL. A peer that cannot be reached at its URL is looked up again:
//! it may have moved (a new port, a new host), and the record it republished says where.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use atomicity_core::PublicKey;
use atomicity_discovery::Dht;
use tokio::time::Instant;

/// How long "this key has no record" is remembered, so that a burst of messages to a peer that
/// never published asks the DHT once.
const NOT_FOUND_TTL: Duration = Duration::from_secs(5);
/// The shortest time a found record is kept, whatever TTL it carries.
const MIN_TTL: Duration = Duration::from_secs(30);
/// The longest.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// A peer that cannot be reached is looked up again at most this often.
const RELOOKUP_EVERY: Duration = Duration::from_secs(2);

/// Known peers and how to reach them, shared by the HTTP handlers and the peer client (the
/// ledger keeps the durable copy of the configured URLs).
#[derive(Clone, Default)]
pub struct Directory(Arc<Inner>);

#[derive(Default)]
struct Inner {
    peers: RwLock<HashMap<PublicKey, Entry>>,
    dht: Option<Arc<Dht>>,
    /// One lookup at a time per key: concurrent senders wait for it instead of asking again.
    lookups: tokio::sync::Mutex<HashMap<PublicKey, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone, Default)]
struct Entry {
    /// Given by the user (`peer add KEY --url URL`).
    configured: Option<String>,
    /// The last DHT lookup: the URL found (None: no record), until when to trust it, and when
    /// it was made.
    found: Option<Found>,
}

#[derive(Clone)]
struct Found {
    url: Option<String>,
    until: Instant,
    at: Instant,
}

impl Directory {
    /// A directory that looks keys up on the DHT (`None`: configured URLs only).
    pub fn new(dht: Option<Arc<Dht>>) -> Directory {
        Directory(Arc::new(Inner {
            dht,
            ..Inner::default()
        }))
    }

    /// Records a peer and the URL the user gave for it, if any.
    pub fn set(&self, key: PublicKey, url: Option<String>) {
        let mut peers = self.0.peers.write().unwrap_or_else(PoisonError::into_inner);
        let entry = peers.entry(key).or_default();
        entry.configured = url;
    }

    /// Whether `key` is a known peer.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.0
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// Whether keys without a URL can be looked up.
    pub fn has_dht(&self) -> bool {
        self.0.dht.is_some()
    }

    /// The peer's URL as known now, without asking the network: a fresh DHT record (it is newer
    /// than the configured URL, which it only replaces when that failed or was never given),
    /// else the configured URL.
    pub fn url(&self, key: &PublicKey) -> Option<String> {
        let peers = self.0.peers.read().unwrap_or_else(PoisonError::into_inner);
        let entry = peers.get(key)?;
        let now = Instant::now();
        entry
            .found
            .as_ref()
            .filter(|f| f.until > now)
            .and_then(|f| f.url.clone())
            .or_else(|| entry.configured.clone())
    }

    /// The peer's URL, looked up on the DHT if none is known (or the record expired).
    pub async fn locate(&self, key: &PublicKey) -> Option<String> {
        if let Some(url) = self.url(key) {
            return Some(url);
        }
        self.lookup(key, None).await
    }

    /// `failed` did not answer: looks the peer up again (at most every [`RELOOKUP_EVERY`]) and
    /// returns its URL if the record names another one.
    pub async fn relocate(&self, key: &PublicKey, failed: &str) -> Option<String> {
        self.lookup(key, Some(failed))
            .await
            .filter(|url| url != failed)
    }

    /// Asks the DHT for the key's record (one lookup at a time per key) and caches the answer.
    /// With `failed`, a cached answer naming that URL does not count.
    async fn lookup(&self, key: &PublicKey, failed: Option<&str>) -> Option<String> {
        let dht = self.0.dht.as_ref()?;
        let gate = Arc::clone(self.0.lookups.lock().await.entry(key.clone()).or_default());
        let _turn = gate.lock().await;
        // Someone else may have looked while this call waited.
        let now = Instant::now();
        if let Some(found) = self.found(key) {
            match failed {
                None if found.until > now => return found.url,
                Some(bad) if now.duration_since(found.at) < RELOOKUP_EVERY => {
                    return found.url.filter(|url| url != bad);
                }
                _ => {}
            }
        }
        let (url, ttl) = match dht.resolve_node_url(key).await {
            Ok(Some(record)) => (
                Some(record.url),
                Duration::from_secs(u64::from(record.ttl_secs)).clamp(MIN_TTL, MAX_TTL),
            ),
            Ok(None) => (None, NOT_FOUND_TTL),
            Err(e) => {
                tracing::debug!(peer = %key, "DHT lookup failed: {e}");
                (None, NOT_FOUND_TTL)
            }
        };
        match &url {
            Some(url) => tracing::debug!(peer = %key, %url, "found on the DHT"),
            None => tracing::debug!(peer = %key, "no record on the DHT"),
        }
        let at = Instant::now();
        let mut peers = self.0.peers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = peers.get_mut(key) {
            entry.found = Some(Found {
                url: url.clone(),
                until: at + ttl,
                at,
            });
        }
        url
    }

    fn found(&self, key: &PublicKey) -> Option<Found> {
        self.0
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|e| e.found.clone())
    }
}
