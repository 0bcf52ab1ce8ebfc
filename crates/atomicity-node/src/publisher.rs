//! Publishing payment secrets on witness logs: the I/O half of a routed payment's completion.
//!
//! The ledger decides *when* a secret is published (the payee: the whole amount has arrived;
//! the payer of a payer-published payment: every part was issued to the payee). This task does
//! the publishing on every witness the condition lists that this node knows a URL for, takes
//! the first proof bundle that meets the condition, and hands it back to the ledger, which
//! claims and reveals with it. If no witness gives one in time, the ledger releases the parts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use atomicity_core::{Publication, WitnessProof};
use atomicity_witness::bundle::CheckpointCache;
use tokio::sync::mpsc;

use crate::actor::{ActorHandle, Command};
use crate::datadir::{DataDir, WITNESSES_FILE};
use crate::unix_now;
use crate::witness_client::{PublishTarget, WitnessClient, publish_any};

/// How long to keep trying to publish before giving up (and releasing the parts), unless the
/// payment's deadline comes first.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a witness is polled for the bundle.
const POLL: Duration = Duration::from_millis(100);

/// A witness log this node uses: where it is and its verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownWitness {
    /// Its base URL.
    pub url: String,
    /// Its verifier key (`<origin>+<key id>+<base64>`).
    pub vkey: String,
}

/// The cosigners a node's invoices require on every witness log's checkpoint: a proof counts
/// only under a checkpoint that `threshold` of them cosigned (each a watchtower that checked the
/// log's consistency, so a log that forks cannot prove a secret to some and hide it from
/// others). The payee then waits for the next cosigned checkpoint before it can claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CosignerRequirement {
    /// Cosigner verifier keys (`<name>+<key id>+<base64>`); empty: no cosigning required.
    pub cosigners: Vec<String>,
    /// How many of them must cosign: 0 iff there are none.
    pub threshold: u8,
}

impl CosignerRequirement {
    /// Checks a node's `--witness-cosigner` keys and `--witness-threshold` (default: all of
    /// them), or says what is wrong.
    pub fn new(cosigners: Vec<String>, threshold: Option<u8>) -> Result<Self, String> {
        use atomicity_core::condition::MAX_COSIGNERS;
        use atomicity_witness::note::CosignatureVerifier;
        if cosigners.len() > MAX_COSIGNERS {
            return Err(format!(
                "{} witness cosigners given; a condition may name at most {MAX_COSIGNERS}",
                cosigners.len()
            ));
        }
        for (i, vkey) in cosigners.iter().enumerate() {
            CosignatureVerifier::from_vkey(vkey)
                .map_err(|e| format!("witness cosigner {vkey}: not a cosigner key: {e}"))?;
            if cosigners[..i].contains(vkey) {
                return Err(format!("witness cosigner {vkey} is given twice"));
            }
        }
        let count = u8::try_from(cosigners.len()).unwrap_or(u8::MAX);
        let threshold = match threshold {
            None => count,
            Some(t) if cosigners.is_empty() => {
                return Err(format!(
                    "a witness threshold of {t} needs witness cosigners (--witness-cosigner)"
                ));
            }
            Some(t) if t == 0 || t > count => {
                return Err(format!(
                    "the witness threshold must be 1 to {count} (the number of cosigners), not {t}"
                ));
            }
            Some(t) => t,
        };
        Ok(CosignerRequirement {
            cosigners,
            threshold,
        })
    }
}

/// Fetches each witness's key, so a node can name its witnesses in invoices.
pub async fn discover(urls: &[String]) -> Result<Vec<KnownWitness>, String> {
    let mut known = Vec::new();
    for url in urls {
        let vkey = WitnessClient::new(url)
            .vkey()
            .await
            .map_err(|e| format!("witness {url}: {e}"))?;
        known.push(KnownWitness {
            url: url.trim_end_matches('/').to_string(),
            vkey,
        });
    }
    Ok(known)
}

/// Like [`discover`], but a witness that cannot be reached now is used with the key it had
/// when this node last reached it (remembered in `DIR/`[`WITNESSES_FILE`]): a node whose
/// witness is down must still start, to claim, release and forward. A witness never reached
/// before is an error (most likely a wrong URL).
pub async fn discover_remembered(
    dir: &DataDir,
    urls: &[String],
) -> Result<Vec<KnownWitness>, String> {
    let remembered: Vec<KnownWitness> = dir
        .read_text(WITNESSES_FILE)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (url, vkey) = line.split_once(' ')?;
            Some(KnownWitness {
                url: url.to_string(),
                vkey: vkey.trim().to_string(),
            })
        })
        .collect();
    let mut known = Vec::new();
    for url in urls {
        match discover(std::slice::from_ref(url)).await {
            Ok(found) => known.extend(found),
            Err(e) => {
                let url = url.trim_end_matches('/');
                let Some(w) = remembered.iter().find(|w| w.url == url) else {
                    return Err(e);
                };
                tracing::warn!("{e}; using the key it had before: {}", w.vkey);
                known.push(w.clone());
            }
        }
    }
    if known.is_empty() {
        return Ok(known);
    }
    // What was just reached first, then what is remembered of other URLs.
    let mut text = String::new();
    for w in known.iter().chain(&remembered) {
        if !text
            .lines()
            .any(|l| l.split_once(' ').is_some_and(|(u, _)| u == w.url))
        {
            text.push_str(&format!("{} {}\n", w.url, w.vkey));
        }
    }
    dir.write_text(WITNESSES_FILE, &text, false)
        .map_err(|e| e.to_string())?;
    Ok(known)
}

/// What every publication shares: one HTTP client per witness (so publications reuse
/// connections) and the checkpoints whose signatures were checked (a busy log serves one
/// checkpoint for many secrets).
struct Witnesses {
    known: Vec<(KnownWitness, WitnessClient)>,
    checkpoints: Mutex<CheckpointCache>,
}

/// Runs the publisher: takes secrets from the ledger (and, on start, those a restart left
/// half-published) and publishes each once at a time.
pub async fn run(
    witnesses: Arc<Vec<KnownWitness>>,
    actor: ActorHandle,
    mut ready: mpsc::UnboundedReceiver<Publication>,
) {
    let witnesses = Arc::new(Witnesses {
        known: witnesses
            .iter()
            .map(|w| (w.clone(), WitnessClient::new(&w.url)))
            .collect(),
        checkpoints: Mutex::default(),
    });
    let busy: Arc<Mutex<HashSet<[u8; 32]>>> = Arc::default();
    if let Ok(resume) = actor.call(|r| Command::Publications(unix_now(), r)).await {
        for publication in resume {
            start(&witnesses, &actor, &busy, publication);
        }
    }
    while let Some(publication) = ready.recv().await {
        start(&witnesses, &actor, &busy, publication);
    }
}

fn start(
    witnesses: &Arc<Witnesses>,
    actor: &ActorHandle,
    busy: &Arc<Mutex<HashSet<[u8; 32]>>>,
    publication: Publication,
) {
    let hash = publication.hash;
    if !busy
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(hash)
    {
        return;
    }
    let (witnesses, actor, busy) = (Arc::clone(witnesses), actor.clone(), Arc::clone(busy));
    tokio::spawn(async move {
        publish(&witnesses, &actor, publication).await;
        busy.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&hash);
    });
}

async fn publish(witnesses: &Arc<Witnesses>, actor: &ActorHandle, publication: Publication) {
    let Publication {
        hash,
        p,
        condition,
        expires_at,
    } = publication;
    let mut logs = Vec::new();
    let targets: Vec<PublishTarget> = witnesses
        .known
        .iter()
        .filter(|(w, _)| condition.witnesses.iter().any(|t| t.log == w.vkey))
        .map(|(w, client)| {
            logs.push(w.vkey.clone());
            let (condition, log) = (condition.clone(), w.vkey.clone());
            let shared = Arc::clone(witnesses);
            PublishTarget {
                client: client.clone(),
                accept: Box::new(move |bundle: &[u8]| {
                    let mut checkpoints = shared
                        .checkpoints
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    WitnessProof {
                        p,
                        log: log.clone(),
                        bundle: bundle.to_vec(),
                    }
                    .verify_cached(&condition, expires_at, &mut checkpoints)
                    .map_err(|e| e.to_string())
                }),
            }
        })
        .collect();
    let left = Duration::from_secs(expires_at.saturating_sub(unix_now()));
    let deadline = tokio::time::Instant::now() + left.min(PUBLISH_TIMEOUT);
    let now = unix_now();
    match publish_any(targets, p, deadline, POLL).await {
        Ok((index, bundle)) => {
            let Some(log) = logs.get(index).cloned() else {
                return;
            };
            let proof = WitnessProof { p, log, bundle };
            tracing::debug!(hash = %hex::encode(hash), "secret published");
            if let Err(e) = actor
                .call(|r| Command::Published(hash, Box::new(proof), unix_now(), r))
                .await
            {
                tracing::error!("cannot record the proof: {e}");
            }
        }
        Err(e) => {
            tracing::warn!(hash = %hex::encode(hash), "could not publish the secret: {e}");
            let _ = actor.call(|r| Command::PublishFailed(hash, now, r)).await;
        }
    }
}
