//! The watchtower, sans-I/O: it cosigns checkpoints (C2SP `tlog-witness`), follows logs, keeps
//! every fork proof it verifies, and answers "is this log indicted?".
//!
//! [`Watchtower`] holds no sockets, files or clock: the time comes in as an argument and every
//! state change it makes is also pushed as a [`Change`] onto the caller's list. The shell
//! (`tower_service`) writes those changes durably *before* it answers, so a cosignature is never
//! sent for a checkpoint the watchtower could forget, and an indictment is never reported and
//! then lost.
//!
//! What it watches, per log (known by its origin and verifier key):
//!
//! - **Cosigning** ([`Watchtower::add_checkpoint`]): the `add-checkpoint` request of
//!   c2sp.org/tlog-witness. A checkpoint is cosigned only if it is signed by the log, its
//!   `old` size is the size last cosigned, and the consistency proof from the last cosigned
//!   checkpoint verifies. A refused, log-signed checkpoint is kept as evidence.
//! - **Every checkpoint seen** (cosigning requests, [`Watchtower::ingest_checkpoint`], the
//!   monitor), one per size: a second one of the same size with a different root is a
//!   [`ForkProof::SplitView`], built and kept at once.
//! - **Monitoring** ([`Watchtower::observe`]): the shell downloads the log's checkpoint and
//!   its new leaves; the watchtower recomputes the root. A tree that does not extend the one
//!   it followed becomes a [`ForkProof::PrefixRewrite`]; block numbers that go down become a
//!   [`ForkProof::BlockRegression`].
//! - **Fork proofs from anyone** ([`Watchtower::ingest_fork_proof`]), for any log key: they are
//!   self-authenticating, so they are kept if and only if [`ForkProof::verify`] accepts them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use thiserror::Error;

use crate::fork::{ForkError, ForkKind, ForkProof, MAX_CHECKPOINT_NOTE_SIZE};
use crate::leaf::Leaf;
use crate::merkle::{Hash, Tree, empty_root, leaf_hash, verify_consistency};
use crate::note::{self, Checkpoint, Cosigner, Note, NoteError, Verifier};

/// Largest `add-checkpoint` request body, in bytes.
pub const MAX_ADD_CHECKPOINT_BODY: usize = 64 * 1024;
/// Most consistency proof lines in an `add-checkpoint` request (c2sp.org/tlog-witness).
pub const MAX_CONSISTENCY_LINES: usize = 63;
/// Most fork proofs kept per log key: one proof indicts; a few more show the extent.
pub const MAX_PROOFS_PER_LOG: usize = 16;

/// A signed checkpoint note with its parsed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The complete signed note, as the log sent it.
    pub note: String,
}

/// A verified fork proof held against a log key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indictment {
    /// What the proof shows.
    pub kind: ForkKind,
    /// The proof's encoding ([`ForkProof::to_bytes`]).
    pub proof: Vec<u8>,
    /// When the watchtower verified it (seconds since the Unix epoch).
    pub received: u64,
}

/// A state change the shell must make durable before it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A log to watch (new, or its URL changed).
    Log {
        /// The log's verifier key.
        vkey: String,
        /// Where to download it from, if it is monitored.
        url: Option<String>,
    },
    /// The latest checkpoint cosigned for the log with this origin.
    Cosigned {
        /// The log's origin.
        origin: String,
        /// The checkpoint's size.
        size: u64,
        /// The signed note.
        note: String,
    },
    /// A verified checkpoint seen for the first time at its size.
    Seen {
        /// The log's origin.
        origin: String,
        /// The checkpoint's size.
        size: u64,
        /// The signed note.
        note: String,
    },
    /// A log-signed checkpoint the watchtower refused to cosign, kept as evidence.
    Refused {
        /// The log's origin.
        origin: String,
        /// The signed note.
        note: String,
        /// Why it was refused.
        reason: String,
        /// When.
        time: u64,
    },
    /// Leaves the monitor verified against a signed checkpoint.
    Leaves {
        /// The log's origin.
        origin: String,
        /// Index of the first leaf.
        start: u64,
        /// The leaves' encodings.
        leaves: Vec<Vec<u8>>,
        /// The signed checkpoint of size `start + leaves.len()` they lead to.
        note: String,
    },
    /// A verified fork proof against a log key.
    Indicted {
        /// The log's verifier key (canonical form).
        vkey: String,
        /// The proof.
        indictment: Indictment,
    },
}

/// Why an `add-checkpoint` request was not cosigned; each maps to the HTTP status that
/// c2sp.org/tlog-witness prescribes ([`AddError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddError {
    /// The request is malformed (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No log with this origin is watched (404).
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No valid signature by the log's key (403).
    #[error("checkpoint is not signed by the log: {0}")]
    NotSigned(String),
    /// `old` is larger than the checkpoint's size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldTooLarge {
        /// The old size given.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// `old` is not the size last cosigned (409, body: that size).
    #[error("old size {old} is not the latest cosigned size {latest}")]
    WrongOldSize {
        /// The old size given.
        old: u64,
        /// The size last cosigned.
        latest: u64,
    },
    /// Same size as the last cosigned checkpoint, different root (409); a split view.
    #[error("a different checkpoint of size {0} was already cosigned")]
    RootConflict(u64),
    /// The consistency proof does not verify (422); the checkpoint is kept as evidence.
    #[error("consistency proof does not verify: {0}")]
    Inconsistent(String),
    /// The log is indicted; the watchtower no longer cosigns for it (409).
    #[error("the log is indicted; refusing to cosign")]
    Indicted,
}

impl AddError {
    /// The HTTP status c2sp.org/tlog-witness prescribes for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) | AddError::OldTooLarge { .. } => 400,
            AddError::NotSigned(_) => 403,
            AddError::UnknownOrigin(_) => 404,
            AddError::WrongOldSize { .. } | AddError::RootConflict(_) | AddError::Indicted => 409,
            AddError::Inconsistent(_) => 422,
        }
    }
}

/// Why a checkpoint, fork proof or monitor observation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WatchError {
    /// The verifier key does not parse.
    #[error("bad verifier key: {0}")]
    BadKey(NoteError),
    /// The checkpoint note is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(NoteError),
    /// No log with this origin is watched.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// The checkpoint is not signed by the log.
    #[error("checkpoint is not signed by the log: {0}")]
    NotSigned(NoteError),
    /// The fork proof does not decode.
    #[error("{0}")]
    ProofMalformed(ForkError),
    /// The fork proof does not show misbehaviour by this key.
    #[error("fork proof rejected: {0}")]
    ProofRejected(ForkError),
    /// The log served leaves that do not lead to the root it signed (not evidence: anyone
    /// can send wrong leaves; the shell may retry).
    #[error("the log's leaves do not match its checkpoint of size {0}")]
    LeavesMismatch(u64),
    /// The number of leaves given does not fit the checkpoint.
    #[error("expected {expected} leaves, got {got}")]
    LeafCount {
        /// Leaves needed.
        expected: u64,
        /// Leaves given.
        got: u64,
    },
    /// The log committed to a leaf that is neither `COMMIT` nor `BLOCK`.
    #[error("leaf {0} of the signed tree does not parse")]
    BadLeaf(u64),
}

/// What a monitor observation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The log's checkpoint extends (or equals) the followed tree; the leaves were kept.
    Extended {
        /// The followed size now.
        size: u64,
    },
    /// The checkpoint is of an older size, and that older tree matches.
    Older,
    /// The checkpoint does not extend the followed tree; call [`Watchtower::observe_full`]
    /// with all its leaves to build the proof.
    Diverged {
        /// The checkpoint's size.
        size: u64,
    },
    /// The log is indicted (now or before); it is no longer followed.
    Indicted(ForkKind),
}

/// What the watchtower knows of a checkpoint it was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// The first checkpoint seen at its size.
    New,
    /// The same checkpoint was seen before.
    Known,
    /// Another checkpoint of this size has a different root: the log is indicted.
    SplitView,
}

/// The monitor's copy of a log: every leaf, and the newest checkpoint they lead to.
#[derive(Debug, Clone, Default)]
struct Monitor {
    tree: Tree,
    leaves: Vec<Leaf>,
    /// The signed checkpoint of size `tree.len()`, once there is one.
    note: Option<String>,
    /// Index and block of the earliest leaf holding the largest block so far.
    top: Option<(u64, u64)>,
}

/// One watched log.
#[derive(Debug, Clone)]
pub struct WatchedLog {
    verifier: Verifier,
    url: Option<String>,
    cosigned: Option<SignedCheckpoint>,
    seen: BTreeMap<u64, SignedCheckpoint>,
    monitor: Monitor,
}

impl WatchedLog {
    /// The log's verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Where the log is downloaded from, if it is monitored.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The size last cosigned (0 if none).
    pub fn cosigned_size(&self) -> u64 {
        self.cosigned.as_ref().map_or(0, |c| c.checkpoint.size)
    }

    /// How many leaves the monitor verified.
    pub fn monitored_size(&self) -> u64 {
        self.monitor.tree.len()
    }

    /// How many distinct checkpoint sizes were seen.
    pub fn checkpoints_seen(&self) -> usize {
        self.seen.len()
    }
}

/// The watchtower's whole state (see the module docs).
#[derive(Debug, Clone)]
pub struct Watchtower {
    cosigner: Cosigner,
    logs: BTreeMap<String, WatchedLog>,
    indictments: BTreeMap<String, Vec<Indictment>>,
}

/// The canonical form of a verifier key string.
pub fn canonical_vkey(vkey: &str) -> Result<String, WatchError> {
    Ok(Verifier::from_vkey(vkey.trim())
        .map_err(WatchError::BadKey)?
        .vkey())
}

/// The note as the log signed it: only the log's own verified signature is kept, so what the
/// watchtower stores (and puts into fork proofs) is bounded and carries no one else's lines.
/// Cosignatures matter to clients, not to evidence against the log.
fn log_signed_only(note: &Note, log: &Verifier) -> Result<String, WatchError> {
    let (_, verified) = note::open(note.to_text().as_bytes(), std::slice::from_ref(log))
        .map_err(WatchError::NotSigned)?;
    let text = Note {
        text: note.text.clone(),
        signatures: verified,
    }
    .to_text();
    if text.len() > MAX_CHECKPOINT_NOTE_SIZE {
        return Err(WatchError::Malformed(NoteError::TooLarge {
            size: text.len(),
            limit: MAX_CHECKPOINT_NOTE_SIZE,
        }));
    }
    Ok(text)
}

/// Parses an `add-checkpoint` body: `old N`, proof lines, an empty line, a signed note.
fn parse_add_checkpoint(body: &[u8]) -> Result<(u64, Vec<Hash>, Note, Checkpoint), AddError> {
    let bad = |m: &str| AddError::Malformed(m.to_owned());
    if body.len() > MAX_ADD_CHECKPOINT_BODY {
        return Err(bad("request body too large"));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8"))?;
    let (first, mut rest) = text
        .split_once('\n')
        .ok_or_else(|| bad("missing the old size line"))?;
    let old = first
        .strip_prefix("old ")
        .ok_or_else(|| bad("the first line must be `old <size>`"))?;
    if old.is_empty()
        || !old.bytes().all(|b| b.is_ascii_digit())
        || (old.len() > 1 && old.starts_with('0'))
    {
        return Err(bad("old size is not a canonical decimal"));
    }
    let old: u64 = old.parse().map_err(|_| bad("old size overflows"))?;
    let mut proof = Vec::new();
    loop {
        let (line, tail) = rest
            .split_once('\n')
            .ok_or_else(|| bad("missing the empty line before the checkpoint"))?;
        rest = tail;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_CONSISTENCY_LINES {
            return Err(bad("more than 63 consistency proof lines"));
        }
        let hash: Hash = B64
            .decode(line)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("a consistency proof line is not a base64 32-byte hash"))?;
        proof.push(hash);
    }
    let note = Note::parse(rest.as_bytes()).map_err(|e| AddError::Malformed(e.to_string()))?;
    let checkpoint =
        Checkpoint::from_text(&note.text).map_err(|e| AddError::Malformed(e.to_string()))?;
    Ok((old, proof, note, checkpoint))
}

impl Watchtower {
    /// A watchtower that cosigns with `cosigner` and watches nothing yet.
    pub fn new(cosigner: Cosigner) -> Self {
        Self {
            cosigner,
            logs: BTreeMap::new(),
            indictments: BTreeMap::new(),
        }
    }

    /// The cosigner key.
    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// The watched logs, by origin.
    pub fn logs(&self) -> &BTreeMap<String, WatchedLog> {
        &self.logs
    }

    /// Every log key with at least one verified fork proof, with its proofs.
    pub fn indictments(&self) -> &BTreeMap<String, Vec<Indictment>> {
        &self.indictments
    }

    /// The verified fork proofs against a log key (empty if it is not indicted).
    pub fn indictments_of(&self, vkey: &str) -> Result<&[Indictment], WatchError> {
        let vkey = canonical_vkey(vkey)?;
        Ok(self.indictments.get(&vkey).map_or(&[], |v| v.as_slice()))
    }

    /// Starts watching the log with this verifier key (its origin is the key's name), or
    /// updates its URL. Another key for the same origin is an error: an origin has one key.
    pub fn watch(
        &mut self,
        vkey: &str,
        url: Option<String>,
        out: &mut Vec<Change>,
    ) -> Result<(), WatchError> {
        let verifier = Verifier::from_vkey(vkey.trim()).map_err(WatchError::BadKey)?;
        let origin = verifier.name().to_owned();
        match self.logs.get_mut(&origin) {
            Some(log) if log.verifier != verifier => {
                return Err(WatchError::BadKey(NoteError::MalformedKey(
                    "another key is already watched for this origin",
                )));
            }
            Some(log) => {
                if url.is_none() || log.url == url {
                    return Ok(());
                }
                log.url.clone_from(&url);
            }
            None => {
                self.logs.insert(
                    origin,
                    WatchedLog {
                        verifier: verifier.clone(),
                        url: url.clone(),
                        cosigned: None,
                        seen: BTreeMap::new(),
                        monitor: Monitor::default(),
                    },
                );
            }
        }
        out.push(Change::Log {
            vkey: verifier.vkey(),
            url,
        });
        Ok(())
    }

    /// Handles a c2sp.org/tlog-witness `add-checkpoint` request; on success returns the
    /// cosignature line (ending in a newline) for `now`.
    pub fn add_checkpoint(
        &mut self,
        body: &[u8],
        now: u64,
        out: &mut Vec<Change>,
    ) -> Result<String, AddError> {
        let (old, proof, note, cp) = parse_add_checkpoint(body)?;
        let origin = cp.origin.clone();
        let log = self
            .logs
            .get(&origin)
            .ok_or_else(|| AddError::UnknownOrigin(origin.clone()))?;
        let note_text = log_signed_only(&note, &log.verifier).map_err(|e| match e {
            WatchError::Malformed(e) => AddError::Malformed(e.to_string()),
            e => AddError::NotSigned(e.to_string()),
        })?;
        let signed = SignedCheckpoint {
            checkpoint: cp.clone(),
            note: note_text,
        };
        if self.record_sighting(&origin, &signed, now, out) == Sighting::SplitView {
            return Err(AddError::RootConflict(cp.size));
        }
        if old > cp.size {
            return Err(AddError::OldTooLarge { old, size: cp.size });
        }
        let vkey = self.log(&origin)?.verifier.vkey();
        if self.indictments.contains_key(&vkey) {
            return Err(AddError::Indicted);
        }
        let log = self.log(&origin)?;
        let latest = log.cosigned_size();
        if old != latest {
            return Err(AddError::WrongOldSize { old, latest });
        }
        let verdict = match &log.cosigned {
            Some(prev) if prev.checkpoint.size > 0 => verify_consistency(
                prev.checkpoint.size,
                cp.size,
                &prev.checkpoint.root,
                &cp.root,
                &proof,
            )
            .map_err(|e| e.to_string()),
            // From nothing (or the empty tree) anything is consistent; there is no proof.
            _ if !proof.is_empty() => Err("the proof must be empty when old is 0".to_owned()),
            _ if cp.size == 0 && cp.root != empty_root() => {
                Err("an empty tree must have the empty root".to_owned())
            }
            _ => Ok(()),
        };
        if let Err(reason) = verdict {
            out.push(Change::Refused {
                origin,
                note: signed.note,
                reason: reason.clone(),
                time: now,
            });
            return Err(AddError::Inconsistent(reason));
        }
        let line = self
            .cosigner
            .sign(&cp, now)
            .map_err(|e| AddError::Malformed(e.to_string()))?;
        out.push(Change::Cosigned {
            origin: origin.clone(),
            size: cp.size,
            note: signed.note.clone(),
        });
        if let Some(log) = self.logs.get_mut(&origin) {
            log.cosigned = Some(signed);
        }
        // `Cosigner::sign` ends the line with its newline; the answer is exactly the lines.
        Ok(line)
    }

    fn log(&self, origin: &str) -> Result<&WatchedLog, AddError> {
        self.logs
            .get(origin)
            .ok_or_else(|| AddError::UnknownOrigin(origin.to_owned()))
    }

    /// Takes a signed checkpoint note of a watched log from anyone (a node that got it in a
    /// proof bundle, another watchtower): it is kept, and compared with every other
    /// checkpoint of its size.
    pub fn ingest_checkpoint(
        &mut self,
        note_text: &str,
        now: u64,
        out: &mut Vec<Change>,
    ) -> Result<Sighting, WatchError> {
        let signed = self.open_checkpoint(note_text)?;
        let origin = signed.checkpoint.origin.clone();
        Ok(self.record_sighting(&origin, &signed, now, out))
    }

    /// Parses a note and checks the watched log's signature on it.
    fn open_checkpoint(&self, note_text: &str) -> Result<SignedCheckpoint, WatchError> {
        let note = Note::parse(note_text.as_bytes()).map_err(WatchError::Malformed)?;
        let checkpoint = Checkpoint::from_text(&note.text).map_err(WatchError::Malformed)?;
        let log = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| WatchError::UnknownOrigin(checkpoint.origin.clone()))?;
        Ok(SignedCheckpoint {
            checkpoint,
            note: log_signed_only(&note, &log.verifier)?,
        })
    }

    /// Records a verified checkpoint; a different root at a known size indicts the log.
    fn record_sighting(
        &mut self,
        origin: &str,
        signed: &SignedCheckpoint,
        now: u64,
        out: &mut Vec<Change>,
    ) -> Sighting {
        let Some(log) = self.logs.get_mut(origin) else {
            return Sighting::Known;
        };
        let size = signed.checkpoint.size;
        match log.seen.get(&size) {
            Some(prev) if prev.checkpoint.root == signed.checkpoint.root => Sighting::Known,
            Some(prev) => {
                let proof = ForkProof::SplitView {
                    a: prev.note.clone(),
                    b: signed.note.clone(),
                };
                let vkey = log.verifier.vkey();
                self.indict(&vkey, &proof, now, out);
                Sighting::SplitView
            }
            None => {
                log.seen.insert(size, signed.clone());
                out.push(Change::Seen {
                    origin: origin.to_owned(),
                    size,
                    note: signed.note.clone(),
                });
                Sighting::New
            }
        }
    }

    /// Keeps a proof we built ourselves (verified first, like any other).
    fn indict(&mut self, vkey: &str, proof: &ForkProof, now: u64, out: &mut Vec<Change>) {
        let Ok(bytes) = proof.to_bytes() else {
            return;
        };
        // Our own proofs verify by construction; checking anyway keeps one rule for all.
        let _ = self.ingest_fork_proof(vkey, &bytes, now, out);
    }

    /// Takes a fork proof against the watched log with verifier key `vkey` from anyone; keeps
    /// it if it verifies. Returns its kind and whether it was new. Proofs against logs that are
    /// not watched are refused ([`WatchError::UnknownOrigin`]): anyone can make a key and
    /// fork it, so only watched logs may make the watchtower store anything.
    pub fn ingest_fork_proof(
        &mut self,
        vkey: &str,
        bytes: &[u8],
        now: u64,
        out: &mut Vec<Change>,
    ) -> Result<(ForkKind, bool), WatchError> {
        let verifier = Verifier::from_vkey(vkey.trim()).map_err(WatchError::BadKey)?;
        if self
            .logs
            .get(verifier.name())
            .is_none_or(|log| log.verifier != verifier)
        {
            return Err(WatchError::UnknownOrigin(verifier.name().to_owned()));
        }
        let proof = ForkProof::from_bytes(bytes).map_err(WatchError::ProofMalformed)?;
        let kind = proof.verify(&verifier).map_err(WatchError::ProofRejected)?;
        let vkey = verifier.vkey();
        let held = self.indictments.entry(vkey.clone()).or_default();
        if held.iter().any(|i| i.proof == bytes) || held.len() >= MAX_PROOFS_PER_LOG {
            return Ok((kind, false));
        }
        let indictment = Indictment {
            kind,
            proof: bytes.to_vec(),
            received: now,
        };
        held.push(indictment.clone());
        out.push(Change::Indicted { vkey, indictment });
        Ok((kind, true))
    }

    /// The first verified fork proof against the log with this origin, if any.
    fn indicted_kind(&self, origin: &str) -> Option<ForkKind> {
        let log = self.logs.get(origin)?;
        let held = self.indictments.get(&log.verifier.vkey())?;
        held.first().map(|i| i.kind)
    }

    /// Where the monitor should download the log with this origin from, and from which
    /// leaf index; `None` if it is not monitored (no URL) or is indicted.
    pub fn monitor_target(&self, origin: &str) -> Option<(String, u64)> {
        let log = self.logs.get(origin)?;
        if self.indicted_kind(origin).is_some() {
            return None;
        }
        Some((log.url.clone()?, log.monitor.tree.len()))
    }

    /// The monitor's step: `note_text` is the log's current checkpoint and `new_leaves` the
    /// leaves from [`Watchtower::monitor_target`]'s index up to the checkpoint's size (none
    /// if the checkpoint is not larger).
    pub fn observe(
        &mut self,
        note_text: &str,
        new_leaves: &[Vec<u8>],
        now: u64,
        out: &mut Vec<Change>,
    ) -> Result<Observed, WatchError> {
        let signed = self.open_checkpoint(note_text)?;
        let origin = signed.checkpoint.origin.clone();
        let sighting = self.record_sighting(&origin, &signed, now, out);
        if let Some(kind) = self.indicted_kind(&origin) {
            return Ok(Observed::Indicted(kind));
        }
        if sighting == Sighting::SplitView {
            // Only if the proof could not be kept; never follow a log caught forking.
            return Err(WatchError::NotSigned(NoteError::MalformedNote(
                "split view without a storable proof",
            )));
        }
        let Some(log) = self.logs.get_mut(&origin) else {
            return Err(WatchError::UnknownOrigin(origin));
        };
        let size = signed.checkpoint.size;
        let have = log.monitor.tree.len();
        if size < have {
            return Ok(match log.monitor.tree.root_at(size) {
                Ok(root) if root == signed.checkpoint.root => Observed::Older,
                _ => Observed::Diverged { size },
            });
        }
        let expected = size - have;
        let got = new_leaves.len() as u64;
        if got != expected {
            return Err(WatchError::LeafCount { expected, got });
        }
        let monitor = &mut log.monitor;
        for data in new_leaves {
            monitor.tree.push(leaf_hash(data));
        }
        if monitor.tree.root() != signed.checkpoint.root {
            // Either the new leaves are wrong or the old prefix was rewritten.
            monitor.tree.truncate(have);
            return Ok(Observed::Diverged { size });
        }
        let mut parsed = Vec::with_capacity(new_leaves.len());
        for (index, data) in (have..).zip(new_leaves) {
            match Leaf::from_bytes(data) {
                Ok(leaf) => parsed.push(leaf),
                Err(_) => {
                    monitor.tree.truncate(have);
                    return Err(WatchError::BadLeaf(index));
                }
            }
        }
        monitor.leaves.extend(parsed);
        monitor.note = Some(signed.note.clone());
        out.push(Change::Leaves {
            origin: origin.clone(),
            start: have,
            leaves: new_leaves.to_vec(),
            note: signed.note.clone(),
        });
        if let Some(proof) = find_regression(monitor, have, &signed.note) {
            let vkey = log.verifier.vkey();
            self.indict(&vkey, &proof, now, out);
            if let Some(kind) = self.indicted_kind(&origin) {
                return Ok(Observed::Indicted(kind));
            }
        }
        Ok(Observed::Extended { size })
    }

    /// After [`Observed::Diverged`]: `all_leaves` are the log's leaves `0..size` of the
    /// checkpoint `note_text`. If they lead to its root and differ from the followed tree
    /// below the followed size, the log rewrote its history: a prefix-rewrite proof is
    /// built and kept.
    pub fn observe_full(
        &mut self,
        note_text: &str,
        all_leaves: &[Vec<u8>],
        now: u64,
        out: &mut Vec<Change>,
    ) -> Result<Observed, WatchError> {
        let signed = self.open_checkpoint(note_text)?;
        let origin = signed.checkpoint.origin.clone();
        self.record_sighting(&origin, &signed, now, out);
        if let Some(kind) = self.indicted_kind(&origin) {
            return Ok(Observed::Indicted(kind));
        }
        let size = signed.checkpoint.size;
        if all_leaves.len() as u64 != size {
            return Err(WatchError::LeafCount {
                expected: size,
                got: all_leaves.len() as u64,
            });
        }
        let theirs: Tree = all_leaves.iter().map(|d| leaf_hash(d)).collect();
        if theirs.root() != signed.checkpoint.root {
            return Err(WatchError::LeavesMismatch(size));
        }
        let Some(log) = self.logs.get(&origin) else {
            return Err(WatchError::UnknownOrigin(origin));
        };
        let ours = &log.monitor;
        let Some(our_note) = ours.note.clone() else {
            return Err(WatchError::LeavesMismatch(size));
        };
        let have = ours.tree.len();
        let proof = if size > have {
            ForkProof::prefix_rewrite(&our_note, &ours.tree, &signed.note, &theirs)
        } else {
            // Their tree is the smaller one.
            ForkProof::prefix_rewrite(&signed.note, &theirs, &our_note, &ours.tree)
        };
        match proof {
            Ok(proof) => {
                let vkey = log.verifier.vkey();
                self.indict(&vkey, &proof, now, out);
                match self.indicted_kind(&origin) {
                    Some(kind) => Ok(Observed::Indicted(kind)),
                    None => Err(WatchError::LeavesMismatch(size)),
                }
            }
            // Same prefix: only the new leaves we were sent earlier were wrong.
            Err(_) => Err(WatchError::LeavesMismatch(size)),
        }
    }

    /// Rebuilds a watched log from what the shell stored: its cosigned checkpoint, the
    /// checkpoints seen, and the monitor's leaves with their checkpoint.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_log(
        &mut self,
        vkey: &str,
        url: Option<String>,
        cosigned: Option<&str>,
        seen: &[String],
        leaves: &[Vec<u8>],
        leaves_note: Option<&str>,
    ) -> Result<(), WatchError> {
        let mut ignored = Vec::new();
        self.watch(vkey, url, &mut ignored)?;
        let parse = |text: &str| -> Result<SignedCheckpoint, WatchError> {
            let note = Note::parse(text.as_bytes()).map_err(WatchError::Malformed)?;
            let checkpoint = Checkpoint::from_text(&note.text).map_err(WatchError::Malformed)?;
            Ok(SignedCheckpoint {
                checkpoint,
                note: text.to_owned(),
            })
        };
        let verifier = Verifier::from_vkey(vkey.trim()).map_err(WatchError::BadKey)?;
        let Some(log) = self.logs.get_mut(verifier.name()) else {
            return Err(WatchError::UnknownOrigin(verifier.name().to_owned()));
        };
        log.cosigned = cosigned.map(parse).transpose()?;
        for text in seen {
            let s = parse(text)?;
            log.seen.entry(s.checkpoint.size).or_insert(s);
        }
        let mut monitor = Monitor::default();
        for (index, data) in (0u64..).zip(leaves) {
            let leaf = Leaf::from_bytes(data).map_err(|_| WatchError::BadLeaf(index))?;
            monitor.tree.push(leaf_hash(data));
            monitor.leaves.push(leaf);
        }
        monitor.top = top_of(&monitor.leaves);
        monitor.note = leaves_note.map(str::to_owned);
        log.monitor = monitor;
        Ok(())
    }

    /// Restores a stored indictment.
    pub fn restore_indictment(&mut self, vkey: &str, indictment: Indictment) {
        self.indictments
            .entry(vkey.to_owned())
            .or_default()
            .push(indictment);
    }
}

/// Index and block of the earliest leaf with the largest block number.
fn top_of(leaves: &[Leaf]) -> Option<(u64, u64)> {
    let mut top: Option<(u64, u64)> = None;
    for (i, leaf) in (0u64..).zip(leaves) {
        if top.is_none_or(|(_, b)| leaf.block() > b) {
            top = Some((i, leaf.block()));
        }
    }
    top
}

/// Checks the leaves from `from` on against the largest block before them; builds a
/// block-regression proof for `note` at the first leaf whose block went down.
fn find_regression(monitor: &mut Monitor, from: u64, note: &str) -> Option<ForkProof> {
    let start = usize::try_from(from).ok()?;
    for (k, leaf) in (from..).zip(monitor.leaves.get(start..)?) {
        match monitor.top {
            Some((i, block)) if leaf.block() < block => {
                let earlier = monitor.leaves.get(usize::try_from(i).ok()?)?.to_bytes();
                return ForkProof::block_regression(
                    note,
                    &monitor.tree,
                    (i, &earlier),
                    (k, &leaf.to_bytes()),
                )
                .ok();
            }
            Some((_, block)) if leaf.block() <= block => {}
            _ => monitor.top = Some((k, leaf.block())),
        }
    }
    None
}
