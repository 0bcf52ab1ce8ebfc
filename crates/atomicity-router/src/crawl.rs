//! The crawler: from seed keys and every key found in a channel list, fetch each node's signed
//! channel list (`/pub/atomicity/v1/channels`), verify it under the node's key, and report what
//! changed since the last round.
//!
//! - **Incremental.** A document whose seq is the one already indexed is not parsed again; one
//!   with a lower seq (a replay, or a stale cache) is refused.
//! - **Polite.** At most [`CrawlConfig::concurrency`] fetches at once, and a node is fetched at
//!   most once per [`CrawlConfig::min_interval`]; a node that keeps failing is tried less often
//!   (doubling, up to an hour).
//! - **Expiring.** A node whose document could not be fetched for [`CrawlConfig::expire_after`]
//!   leaves the index: its lines are as good as unknown. Seeds are never forgotten.
//!
//! Where a node is comes from its Pkarr record on the DHT (or a URL given with its seed key).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use atomicity_core::published::{CHANNELS_PATH, ChannelsValue, PublishedError, verify_document};
pub use atomicity_core::router_api::RoundReport;
use atomicity_core::{Amount, Asset, PublicKey};
use atomicity_discovery::Dht;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The largest channel list fetched (documents are at most 64 KiB).
const MAX_BODY: usize = 64 * 1024;

/// How the crawler behaves.
#[derive(Clone, Debug)]
pub struct CrawlConfig {
    /// Fetches in flight at once.
    pub concurrency: usize,
    /// The shortest time between two fetches of one node.
    pub min_interval: Duration,
    /// A node not fetched successfully for this long is dropped.
    pub expire_after: Duration,
    /// How long one fetch (lookup + GET) may take.
    pub timeout: Duration,
    /// Most nodes known at once (a bound on what strangers can make the crawler remember).
    pub max_nodes: usize,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            concurrency: 16,
            min_interval: Duration::from_secs(30),
            expire_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            max_nodes: 200_000,
        }
    }
}

/// One line of a node's channel list, parsed: the node issues to `peer` in `asset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The peer.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// What the node would still issue to the peer (minor units).
    pub capacity: Amount,
    /// Fixed fee for forwarding to the peer (minor units).
    pub fee_base: Amount,
    /// Proportional fee, millionths.
    pub fee_ppm: u32,
}

/// A node's verified channel list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channels {
    /// The document's seq (microseconds when the node signed it).
    pub seq: u64,
    /// Its lines (the malformed ones dropped).
    pub lines: Vec<Line>,
    /// The witness logs it accepts.
    pub witnesses: Vec<String>,
}

/// What one round changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Nodes whose channel list is new or changed.
    pub updated: Vec<(PublicKey, Channels)>,
    /// Nodes dropped (not fetched for too long).
    pub expired: Vec<PublicKey>,
}

/// What the crawler knows about one node.
#[derive(Clone, Debug, Default)]
struct Known {
    /// A URL given with its seed key (else the DHT says).
    url: Option<String>,
    /// The seq indexed.
    seq: Option<u64>,
    /// When it was last fetched successfully (or first seen), crawler seconds.
    last_ok: u64,
    /// When it may be fetched next, crawler seconds.
    next_try: u64,
    /// Failures in a row.
    failures: u32,
    /// Given as a seed: never forgotten (a seed key the DHT does not know yet is tried again,
    /// less and less often).
    seed: bool,
}

/// Why one fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The DHT has no record of the key (or no DHT and no URL).
    #[error("no URL for the key")]
    NoUrl,
    /// The node did not answer, or answered an error.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The document did not verify: forged, tampered, replayed or malformed.
    #[error("bad document: {0}")]
    BadDocument(#[from] PublishedError),
    /// The value is not a channel list.
    #[error("not a channel list: {0}")]
    NotChannels(String),
}

/// The crawler's state between rounds (the index itself is the caller's).
pub struct Crawler {
    config: CrawlConfig,
    dht: Option<Arc<Dht>>,
    http: reqwest::Client,
    known: HashMap<PublicKey, Known>,
}

impl Crawler {
    /// A crawler starting from `seeds` (each with an optional URL).
    pub fn new(
        config: CrawlConfig,
        dht: Option<Arc<Dht>>,
        seeds: Vec<(PublicKey, Option<String>)>,
    ) -> Crawler {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let known = seeds
            .into_iter()
            .map(|(key, url)| {
                (
                    key,
                    Known {
                        url,
                        seed: true,
                        ..Known::default()
                    },
                )
            })
            .collect();
        Crawler {
            config,
            dht,
            http,
            known,
        }
    }

    /// Nodes known.
    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// One round at crawler time `now` (seconds): fetches every node that is due, at most
    /// `concurrency` at a time; returns what changed and the counts.
    pub async fn round(&mut self, now: u64) -> (Changes, RoundReport) {
        let started = std::time::Instant::now();
        let mut report = RoundReport::default();
        let mut changes = Changes::default();
        let due: Vec<(PublicKey, Known)> = self
            .known
            .iter()
            .filter(|(_, k)| k.next_try <= now)
            .map(|(key, k)| (key.clone(), k.clone()))
            .collect();
        let gate = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut fetches = JoinSet::new();
        for (key, known) in due {
            let (gate, http, dht) = (Arc::clone(&gate), self.http.clone(), self.dht.clone());
            fetches.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let result =
                    fetch(&http, dht.as_deref(), &key, known.url.as_deref(), known.seq).await;
                (key, result)
            });
        }
        let mut discovered = Vec::new();
        while let Some(done) = fetches.join_next().await {
            let Ok((key, result)) = done else { continue };
            report.fetched += 1;
            let min_interval = self.config.min_interval.as_secs();
            let Some(known) = self.known.get_mut(&key) else {
                continue;
            };
            match result {
                Ok(Fetched::Unchanged) => {
                    report.unchanged += 1;
                    known.last_ok = now;
                    known.failures = 0;
                    known.next_try = now + min_interval;
                }
                Ok(Fetched::Changed(channels)) => {
                    report.changed += 1;
                    known.last_ok = now;
                    known.failures = 0;
                    known.next_try = now + min_interval;
                    known.seq = Some(channels.seq);
                    discovered.extend(channels.lines.iter().map(|l| l.peer.clone()));
                    changes.updated.push((key, channels));
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::debug!(node = %key, "crawl: {e}");
                    known.failures = known.failures.saturating_add(1);
                    let backoff = min_interval
                        .saturating_mul(1u64 << known.failures.min(7))
                        .min(3600);
                    known.next_try = now + backoff;
                }
            }
        }
        for key in discovered {
            if self.known.len() >= self.config.max_nodes {
                break;
            }
            self.known.entry(key).or_insert_with(|| {
                report.discovered += 1;
                Known {
                    last_ok: now,
                    ..Known::default()
                }
            });
        }
        let expire = self.config.expire_after.as_secs();
        let expired: Vec<PublicKey> = self
            .known
            .iter()
            .filter(|(_, k)| !k.seed && now.saturating_sub(k.last_ok) > expire)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            let was_indexed = self.known.remove(&key).is_some_and(|k| k.seq.is_some());
            if was_indexed {
                changes.expired.push(key);
            }
        }
        report.expired = changes.expired.len();
        report.known = self.known.len();
        report.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (changes, report)
    }
}

enum Fetched {
    Unchanged,
    Changed(Channels),
}

/// Finds the node, GETs its channel list and verifies it (not older than `indexed`).
async fn fetch(
    http: &reqwest::Client,
    dht: Option<&Dht>,
    key: &PublicKey,
    url: Option<&str>,
    indexed: Option<u64>,
) -> Result<Fetched, FetchError> {
    let url = match url {
        Some(url) => url.to_string(),
        None => {
            let dht = dht.ok_or(FetchError::NoUrl)?;
            dht.resolve_node_url(key)
                .await
                .map_err(|e| FetchError::Unreachable(e.to_string()))?
                .ok_or(FetchError::NoUrl)?
                .url
        }
    };
    let response = http
        .get(format!("{}{CHANNELS_PATH}", url.trim_end_matches('/')))
        .send()
        .await
        .map_err(|e| FetchError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(FetchError::Unreachable(format!(
            "answered {}",
            response.status()
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(FetchError::Unreachable("document too large".into()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| FetchError::Unreachable(e.to_string()))?;
    let document = verify_document(&body, key, CHANNELS_PATH, indexed)?;
    if Some(document.seq) == indexed {
        return Ok(Fetched::Unchanged);
    }
    let value: ChannelsValue = serde_json::from_str(document.value.get())
        .map_err(|e| FetchError::NotChannels(e.to_string()))?;
    Ok(Fetched::Changed(parse_channels(document.seq, value)))
}

/// The lines of a channel list, each parsed; a malformed line is dropped (the rest of the list
/// is still the node's signed word), and so is a second line for one (peer, asset).
pub fn parse_channels(seq: u64, value: ChannelsValue) -> Channels {
    let mut lines = BTreeMap::new();
    for ad in value.lines {
        let parsed = (|| {
            let peer = atomicity_core::parse_key(&ad.peer).ok()?;
            let asset: Asset = ad.asset.parse().ok()?;
            let capacity = asset.parse_amount(&ad.capacity_hint).ok()?;
            let fee_base = asset.parse_amount(&ad.fee_base).ok()?;
            Some(Line {
                peer,
                asset,
                capacity,
                fee_base,
                fee_ppm: ad.fee_ppm,
            })
        })();
        if let Some(line) = parsed {
            lines
                .entry((line.peer.to_z32(), line.asset.to_string()))
                .or_insert(line);
        }
    }
    Channels {
        seq,
        lines: lines.into_values().collect(),
        witnesses: value.witnesses,
    }
}
