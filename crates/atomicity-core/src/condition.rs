//! The witness condition of routed payments: terms, the hop rule, and the proof that fulfils it.
//!
//! A conditional IOU with [`WitnessCondition`] is payable iff, for one of the listed witness
//! logs, a proof bundle shows `COMMIT(b, p)` with `SHA-256(p) = hash`, `start ≤ b < deadline`, in
//! a block that started by the IOU's `expires_at` (the hard deadline T*), under a checkpoint
//! signed by the log and, when the terms name cosigners, cosigned by `threshold` of them with
//! timestamps ≤ T*. Any valid proof wins (existential rule), so every hop of a route depends on
//! the same public fact: all complete, or none does.

use std::collections::HashSet;

use atomicity_witness::bundle::{CheckpointCache, ProofBundle, verify_publication_cached};
use atomicity_witness::note::{CosignatureVerifier, CosignerPolicy, NoteError, Verifier};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::encoding::{DecodeError, Reader, Writer};
use crate::memo::{self, TextCache};

/// Most witness logs one condition may list.
pub const MAX_WITNESSES: usize = 8;
/// Most cosigners one witness's terms may name.
pub const MAX_COSIGNERS: usize = 8;
/// Longest verifier key string, in bytes.
pub const MAX_VKEY_LEN: usize = 256;
/// Largest proof bundle carried in a message.
pub const MAX_BUNDLE_LEN: usize = 48 * 1024;

thread_local! {
    static LOG_KEYS: TextCache<Verifier> = TextCache::default();
    static COSIGNER_KEYS: TextCache<CosignatureVerifier> = TextCache::default();
}

/// The log verifier of a key string (memoized).
pub(crate) fn log_verifier(vkey: &str) -> Result<Verifier, NoteError> {
    memo::memoized(&LOG_KEYS, vkey, Verifier::from_vkey)
}

/// The cosignature verifier of a key string (memoized).
pub(crate) fn cosigner_verifier(vkey: &str) -> Result<CosignatureVerifier, NoteError> {
    memo::memoized(&COSIGNER_KEYS, vkey, CosignatureVerifier::from_vkey)
}

/// One witness log a condition accepts, with its window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WitnessTerms {
    /// The log's verifier key (`<origin>+<key id>+<base64>`).
    pub log: String,
    /// Cosigner verifier keys whose cosignatures the checkpoint needs (may be empty).
    pub cosigners: Vec<String>,
    /// How many of `cosigners` must cosign: 0 iff there are none, else 1..=n.
    pub threshold: u8,
    /// First block in which the publication counts.
    pub start_block: u64,
    /// First block in which it no longer counts.
    pub deadline_block: u64,
}

impl WitnessTerms {
    /// Terms without cosigners.
    pub fn new(log: String, start_block: u64, deadline_block: u64) -> WitnessTerms {
        WitnessTerms {
            log,
            cosigners: Vec::new(),
            threshold: 0,
            start_block,
            deadline_block,
        }
    }

    /// Whether a proof of `other` also proves `self`: same log and cosigner policy, and a window
    /// at least as wide (`self` is the incoming terms of a hop, `other` the outgoing).
    pub fn covers(&self, other: &WitnessTerms) -> bool {
        self.log == other.log
            && self.cosigners == other.cosigners
            && self.threshold == other.threshold
            && self.start_block <= other.start_block
            && other.deadline_block <= self.deadline_block
    }

    /// The log's verifier.
    pub fn verifier(&self) -> Result<Verifier, String> {
        log_verifier(&self.log).map_err(|e| format!("witness key: {e}"))
    }

    /// The cosigner policy, if the terms name cosigners.
    pub fn policy(&self) -> Result<Option<CosignerPolicy>, String> {
        if self.cosigners.is_empty() {
            return Ok(None);
        }
        let cosigners = self
            .cosigners
            .iter()
            .map(|v| cosigner_verifier(v).map_err(|e| format!("cosigner key: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CosignerPolicy {
            cosigners,
            threshold: usize::from(self.threshold),
        }))
    }

    fn encode(&self, w: &mut Writer) {
        w.bytes(self.log.as_bytes());
        // Bounded by MAX_COSIGNERS when decoded or built by the node.
        w.u32(self.cosigners.len() as u32);
        for c in &self.cosigners {
            w.bytes(c.as_bytes());
        }
        w.u8(self.threshold);
        w.u64(self.start_block);
        w.u64(self.deadline_block);
    }

    fn decode(r: &mut Reader<'_>) -> Result<WitnessTerms, DecodeError> {
        let log = vkey(r, "witness log key")?;
        log_verifier(&log).map_err(|_| DecodeError::Invalid {
            field: "witness log key",
            why: "not a signed-note verifier key",
        })?;
        let count = r.count("cosigners", MAX_COSIGNERS)?;
        let mut cosigners = Vec::with_capacity(count);
        for _ in 0..count {
            let c = vkey(r, "cosigner key")?;
            cosigner_verifier(&c).map_err(|_| DecodeError::Invalid {
                field: "cosigner key",
                why: "not a cosignature verifier key",
            })?;
            cosigners.push(c);
        }
        let threshold = r.u8("threshold")?;
        if (count == 0) != (threshold == 0) || usize::from(threshold) > count {
            return Err(DecodeError::Invalid {
                field: "threshold",
                why: "must be 0 without cosigners, else 1 to the number of cosigners",
            });
        }
        let start_block = r.u64("start block")?;
        let deadline_block = r.u64("deadline block")?;
        if deadline_block <= start_block {
            return Err(DecodeError::Invalid {
                field: "deadline block",
                why: "must be after the start block",
            });
        }
        Ok(WitnessTerms {
            log,
            cosigners,
            threshold,
            start_block,
            deadline_block,
        })
    }
}

fn vkey(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let bytes = r.bytes(field, MAX_VKEY_LEN)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
        field,
        why: "not UTF-8",
    })
}

/// The condition of a routed payment: the payment hash and the witness logs that may show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WitnessCondition {
    /// `SHA-256(p)`.
    pub hash: [u8; 32],
    /// One to [`MAX_WITNESSES`] accepted logs, distinct.
    pub witnesses: Vec<WitnessTerms>,
}

impl WitnessCondition {
    /// The hop rule: whether `out` (the condition a hop issues downstream) is implied by `self`
    /// (the condition it holds from upstream): same hash, and every witness `out` lists is
    /// covered by one `self` lists. With `out_expires ≤ in_expires` (checked by the caller),
    /// every proof that fulfils `out` fulfils `self`.
    pub fn implies(&self, out: &WitnessCondition) -> bool {
        self.hash == out.hash
            && out
                .witnesses
                .iter()
                .all(|o| self.witnesses.iter().any(|i| i.covers(o)))
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.fixed(&self.hash);
        // Bounded by MAX_WITNESSES when decoded or built by the node.
        w.u32(self.witnesses.len() as u32);
        for t in &self.witnesses {
            t.encode(w);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<WitnessCondition, DecodeError> {
        let hash = r.array("payment hash")?;
        let count = r.count("witnesses", MAX_WITNESSES)?;
        if count == 0 {
            return Err(DecodeError::Invalid {
                field: "witnesses",
                why: "a witness condition lists at least one log",
            });
        }
        let mut witnesses: Vec<WitnessTerms> = Vec::with_capacity(count);
        for _ in 0..count {
            let t = WitnessTerms::decode(r)?;
            if witnesses.iter().any(|w| w.log == t.log) {
                return Err(DecodeError::Invalid {
                    field: "witnesses",
                    why: "a log is listed twice",
                });
            }
            witnesses.push(t);
        }
        Ok(WitnessCondition { hash, witnesses })
    }
}

/// `SHA-256(p)`: the payment hash of a secret.
pub fn payment_hash(p: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(p).into()
}

/// Evidence that a witness condition holds: the secret and a proof bundle from one listed log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessProof {
    /// The secret.
    pub p: [u8; 32],
    /// The verifier key of the log the bundle is from (one the condition lists).
    pub log: String,
    /// The log's proof bundle (`ATWB`, see `docs/witness.md`).
    pub bundle: Vec<u8>,
}

/// Why a proof does not fulfil a condition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// `SHA-256(p)` is not the condition's hash.
    #[error("the secret does not match the payment hash")]
    WrongSecret,
    /// The proof's log is not in the condition's list.
    #[error("the condition does not list the witness log {0}")]
    UnknownWitness(String),
    /// The bundle does not prove the publication under the terms.
    #[error("the proof bundle does not verify: {0}")]
    Bundle(String),
}

impl WitnessProof {
    /// Checks that this proof fulfils `condition` for an IOU with hard deadline `expires_at`.
    pub fn verify(&self, condition: &WitnessCondition, expires_at: u64) -> Result<(), ProofError> {
        self.verify_cached(condition, expires_at, &mut CheckpointCache::default())
    }

    /// [`WitnessProof::verify`], checking the checkpoint's signatures once per `checkpoints`.
    pub fn verify_cached(
        &self,
        condition: &WitnessCondition,
        expires_at: u64,
        checkpoints: &mut CheckpointCache,
    ) -> Result<(), ProofError> {
        if payment_hash(&self.p) != condition.hash {
            return Err(ProofError::WrongSecret);
        }
        let terms = condition
            .witnesses
            .iter()
            .find(|t| t.log == self.log)
            .ok_or_else(|| ProofError::UnknownWitness(self.log.clone()))?;
        let bundle =
            ProofBundle::from_bytes(&self.bundle).map_err(|e| ProofError::Bundle(e.to_string()))?;
        let verifier = terms.verifier().map_err(ProofError::Bundle)?;
        let policy = terms.policy().map_err(ProofError::Bundle)?;
        verify_publication_cached(
            &bundle,
            &self.p,
            &verifier,
            policy.as_ref(),
            terms.start_block,
            terms.deadline_block,
            expires_at,
            checkpoints,
        )
        .map(|_| ())
        .map_err(|e| ProofError::Bundle(e.to_string()))
    }

    /// Canonical encoding: `p (32) || log key (bytes) || bundle (bytes)`.
    pub fn encode(&self, w: &mut Writer) {
        w.fixed(&self.p);
        w.bytes(self.log.as_bytes());
        w.bytes(&self.bundle);
    }

    /// Strict decoding (the bundle is checked by [`WitnessProof::verify`]).
    pub fn decode(r: &mut Reader<'_>) -> Result<WitnessProof, DecodeError> {
        let p = r.array("secret")?;
        let log = vkey(r, "proof log key")?;
        let bundle = r.bytes("proof bundle", MAX_BUNDLE_LEN)?.to_vec();
        Ok(WitnessProof { p, log, bundle })
    }

    /// The encoding on its own (for the store).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes [`WitnessProof::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<WitnessProof, DecodeError> {
        let mut r = Reader::new(bytes);
        let proof = WitnessProof::decode(&mut r)?;
        r.finish()?;
        Ok(proof)
    }
}

/// Most verified (proof, condition) pairs a [`ProofCache`] remembers before it starts over.
const PROOF_CACHE_LIMIT: usize = 65_536;

/// Remembers which (proof, condition, deadline) triples verified, and which checkpoints'
/// signatures did, so that a node checks a checkpoint's signatures once even though it applies
/// proofs against it to every IOU of every route it holds or issued (a hop sees the same proof
/// for its incoming and its outgoing IOU, under different windows and deadlines, and a busy
/// log serves one checkpoint for many secrets).
#[derive(Debug, Default)]
pub struct ProofCache {
    verified: HashSet<[u8; 32]>,
    checkpoints: CheckpointCache,
}

impl ProofCache {
    /// [`WitnessProof::verify`], remembered on success.
    pub fn check(
        &mut self,
        proof: &WitnessProof,
        condition: &WitnessCondition,
        expires_at: u64,
    ) -> Result<(), ProofError> {
        let mut w = Writer::new();
        proof.encode(&mut w);
        condition.encode(&mut w);
        w.u64(expires_at);
        let key: [u8; 32] = Sha256::digest(w.into_bytes()).into();
        if self.verified.contains(&key) {
            return Ok(());
        }
        proof.verify_cached(condition, expires_at, &mut self.checkpoints)?;
        if self.verified.len() >= PROOF_CACHE_LIMIT {
            self.verified.clear();
        }
        self.verified.insert(key);
        Ok(())
    }
}
