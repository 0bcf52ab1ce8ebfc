//! The web of trust, the I/O half: my tags, blocks and degree rules (kept in `DIR/trust.json`),
//! the trust document I publish (`/pub/atomicity/v1/trust`), and the crawl that reads the trust
//! documents of the keys my rules go through and turns the rules into accept limits
//! (`atomicity_core::trust` decides; this module fetches and applies).
//!
//! An automatic limit is only ever set on a line whose accept limit is the one the crawl set
//! before (or zero on a line it opens): a limit the user set by hand always wins, and the crawl
//! stops managing that line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use atomicity_core::trust::{
    MyTrust, TRUST_PATH, TrustDoc, WitnessPolicy, auto_limits, keys_to_crawl,
};
use atomicity_core::{Amount, Asset, PublicKey};
use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::actor::{ActorError, Command};
use crate::datadir::{DataDir, DataDirError};
use crate::published::{PublishError, fetch_document};
use crate::server::AppState;

/// The file my trust settings live in.
pub const TRUST_FILE: &str = "trust.json";
/// How many rounds of fetching one crawl makes at most (one per degree of separation).
const MAX_CRAWL_ROUNDS: usize = 8;

/// One accept limit the crawl set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    /// The key (z-base32).
    pub key: String,
    /// The asset.
    pub asset: String,
    /// The accept limit set (decimal).
    pub accept: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    version: u32,
    mine: MyTrust,
    #[serde(default)]
    applied: Vec<Applied>,
    /// The witness logs I accept in conditions.
    #[serde(default)]
    witnesses: WitnessPolicy,
}

/// My trust settings and what the crawl applied.
pub struct Trust {
    dir: DataDir,
    file: Mutex<TrustFile>,
    wake: Notify,
    refresh: Duration,
    /// The documents the last crawl could not use, and why.
    unread: std::sync::Mutex<Vec<(String, String)>>,
}

/// Why a trust change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustChangeError {
    /// Bad input.
    #[error("{0}")]
    Bad(String),
    /// The file could not be written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl Trust {
    /// Reads `DIR/trust.json` (none: no tags, no rules); crawls every `refresh`.
    pub fn open(dir: &DataDir, refresh: Duration) -> Result<Trust, DataDirError> {
        let file = match dir.read_optional(TRUST_FILE)? {
            Some(bytes) => {
                let file: TrustFile =
                    serde_json::from_slice(&bytes).map_err(|e| DataDirError::Corrupt {
                        path: dir.file(TRUST_FILE),
                        why: format!("does not read back: {e}"),
                    })?;
                if file.version != 1 {
                    return Err(DataDirError::Corrupt {
                        path: dir.file(TRUST_FILE),
                        why: format!("unknown version {}", file.version),
                    });
                }
                file
            }
            None => TrustFile {
                version: 1,
                ..TrustFile::default()
            },
        };
        Ok(Trust {
            dir: dir.clone(),
            file: Mutex::new(file),
            wake: Notify::new(),
            refresh,
            unread: std::sync::Mutex::default(),
        })
    }

    /// The trust documents the last crawl could not use, with why (key, reason).
    pub fn unread(&self) -> Vec<(String, String)> {
        self.unread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// My settings.
    pub async fn mine(&self) -> MyTrust {
        self.file.lock().await.mine.clone()
    }

    /// The witness logs I accept.
    pub async fn witnesses(&self) -> WitnessPolicy {
        self.file.lock().await.witnesses.clone()
    }

    /// Changes my witness lists with `change` and makes them durable; on error nothing
    /// changed. The caller hands the result to the ledger ([`apply_witness_policy`]).
    pub async fn update_witnesses(
        &self,
        change: impl FnOnce(&mut WitnessPolicy) -> Result<(), String>,
    ) -> Result<WitnessPolicy, TrustChangeError> {
        let mut file = self.file.lock().await;
        let mut next = file.clone();
        change(&mut next.witnesses).map_err(TrustChangeError::Bad)?;
        let max = atomicity_core::trust::MAX_WITNESS_LIST;
        if next.witnesses.allow.len() > max || next.witnesses.block.len() > max {
            return Err(TrustChangeError::Bad(format!(
                "at most {max} logs in each list"
            )));
        }
        self.persist(&next).await?;
        *file = next;
        Ok(file.witnesses.clone())
    }

    /// The limits the crawl set.
    pub async fn applied(&self) -> Vec<Applied> {
        self.file.lock().await.applied.clone()
    }

    /// Changes my settings with `change` and makes them durable; on error nothing changed.
    /// The crawl runs again at once.
    pub async fn update(
        &self,
        change: impl FnOnce(&mut MyTrust) -> Result<(), String>,
    ) -> Result<MyTrust, TrustChangeError> {
        let mut file = self.file.lock().await;
        let mut next = file.clone();
        change(&mut next.mine).map_err(TrustChangeError::Bad)?;
        self.persist(&next).await?;
        *file = next;
        let mine = file.mine.clone();
        drop(file);
        self.wake.notify_one();
        Ok(mine)
    }

    async fn persist(&self, file: &TrustFile) -> Result<(), TrustChangeError> {
        let bytes = serde_json::to_vec_pretty(file)
            .map_err(|e| TrustChangeError::Storage(e.to_string()))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.write_durable(TRUST_FILE, &bytes))
            .await
            .map_err(|e| TrustChangeError::Storage(e.to_string()))?
            .map_err(|e| TrustChangeError::Storage(e.to_string()))
    }
}

/// The signed trust document: my tags and blocked keys (limits and rules stay private).
pub async fn trust_document(state: &AppState) -> Result<Bytes, PublishError> {
    let mut signer = state.published.signer().await;
    let doc = TrustDoc::from_mine(&state.trust.mine().await);
    signer
        .document(TRUST_PATH, doc.to_json().into_bytes())
        .await
}

/// The keys I block, to avoid in routes.
pub async fn blocked_keys(state: &AppState) -> Vec<PublicKey> {
    state
        .trust
        .mine()
        .await
        .blocked
        .iter()
        .filter_map(|k| atomicity_core::parse_key(k).ok())
        .collect()
}

/// Hands my witness lists to the ledger.
pub async fn apply_witness_policy(state: &AppState) -> Result<(), ActorError> {
    let policy = state.trust.witnesses().await;
    state
        .actor
        .run(move |ledger, _, _| {
            ledger.set_witness_policy(policy);
            Ok(())
        })
        .await
}

/// Crawls now and every `refresh` (and whenever the settings change).
pub async fn run(state: AppState) {
    loop {
        if let Err(e) = crawl(&state).await {
            tracing::warn!("web of trust: {e}");
        }
        let trust = Arc::clone(&state.trust);
        let _ = tokio::time::timeout(trust.refresh, trust.wake.notified()).await;
    }
}

/// One crawl: fetch the documents the rules need, evaluate, apply the difference.
pub async fn crawl(state: &AppState) -> Result<(), ActorError> {
    let mine = state.trust.mine().await;
    let mut docs: HashMap<String, TrustDoc> = HashMap::new();
    let mut failed: HashMap<String, String> = HashMap::new();
    for _ in 0..MAX_CRAWL_ROUNDS {
        let want: Vec<String> = keys_to_crawl(&mine, &docs)
            .into_iter()
            .filter(|k| !docs.contains_key(k) && !failed.contains_key(k))
            .collect();
        if want.is_empty() {
            break;
        }
        for key in want {
            match fetch_trust(state, &key).await {
                Ok(doc) => {
                    docs.insert(key, doc);
                }
                Err(why) => {
                    tracing::info!(%key, "trust document not used: {why}");
                    failed.insert(key, why);
                }
            }
        }
    }
    let mut unread: Vec<(String, String)> = failed.into_iter().collect();
    unread.sort();
    *state
        .trust
        .unread
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = unread;
    let limits = auto_limits(&state.me, &mine, &docs);
    apply(state, limits).await
}

async fn fetch_trust(state: &AppState, key: &str) -> Result<TrustDoc, String> {
    let peer = atomicity_core::parse_key(key)?;
    let text = fetch_document(state, &peer, TRUST_PATH)
        .await
        .map_err(|e| e.to_string())?;
    TrustDoc::from_json(&text).map_err(|e| e.to_string())
}

/// Sets the new automatic limits and takes back the ones no rule gives any more, on lines the
/// user has not set by hand.
async fn apply(
    state: &AppState,
    limits: BTreeMap<(String, Asset), Amount>,
) -> Result<(), ActorError> {
    let lines: HashMap<(String, Asset), Amount> = state
        .actor
        .call(Command::Lines)
        .await?
        .into_iter()
        .map(|l| {
            (
                (l.view.peer.to_z32(), l.view.asset.clone()),
                l.view.limits.accept,
            )
        })
        .collect();
    let before: HashMap<(String, Asset), Amount> = state
        .trust
        .applied()
        .await
        .into_iter()
        .filter_map(|a| {
            let asset: Asset = a.asset.parse().ok()?;
            let accept = asset.parse_amount(&a.accept).ok()?;
            Some(((a.key, asset), accept))
        })
        .collect();
    let mut applied = Vec::new();
    for ((key, asset), accept) in &limits {
        let held = lines.get(&(key.clone(), asset.clone())).copied();
        let managed = before.get(&(key.clone(), asset.clone())).copied();
        // A limit the user set by hand (neither zero nor the one I set) wins.
        if held.is_some_and(|h| !h.is_zero() && Some(h) != managed && h != *accept) {
            continue;
        }
        if held != Some(*accept) {
            let Ok(peer) = atomicity_core::parse_key(key) else {
                continue;
            };
            if !state.directory.contains(&peer) {
                state
                    .actor
                    .call(|reply| Command::AddPeer(peer.clone(), None, reply))
                    .await?;
                state.directory.set(peer.clone(), None);
            }
            set_accept(state, &peer, asset, *accept).await?;
            tracing::info!(%key, %asset, accept = %asset.format(*accept), "web of trust: accept limit set");
        }
        applied.push(Applied {
            key: key.clone(),
            asset: asset.to_string(),
            accept: asset.format(*accept),
        });
    }
    for ((key, asset), accept) in &before {
        if limits.contains_key(&(key.clone(), asset.clone())) {
            continue;
        }
        let held = lines.get(&(key.clone(), asset.clone())).copied();
        if held == Some(*accept)
            && let Ok(peer) = atomicity_core::parse_key(key)
        {
            set_accept(state, &peer, asset, Amount::ZERO).await?;
            tracing::info!(%key, %asset, "web of trust: accept limit taken back");
        }
    }
    let mut file = state.trust.file.lock().await;
    if file.applied != applied {
        let mut next = file.clone();
        next.applied = applied;
        if let Err(e) = state.trust.persist(&next).await {
            tracing::warn!("web of trust: cannot save the applied limits: {e}");
        } else {
            *file = next;
        }
    }
    Ok(())
}

async fn set_accept(
    state: &AppState,
    peer: &PublicKey,
    asset: &Asset,
    accept: Amount,
) -> Result<(), ActorError> {
    state
        .actor
        .call(|reply| Command::SetLimits {
            peer: peer.clone(),
            asset: asset.clone(),
            accept: Some(accept),
            issue: None,
            reply,
        })
        .await
        .map(drop)
}
