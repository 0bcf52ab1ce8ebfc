//! All of one node's credit relationships, and the changes to persist after each input.
//!
//! Every input method appends the [`StoreOp`]s that make its effect durable. The shell commits
//! them in one transaction, and only then sends the messages the method returned: *persist
//! before you speak*.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use pkarr::{Keypair, PublicKey};
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::channel::{
    Answer, Channel, ChannelView, InConditional, Limits, OfferError, OutConditional, Rejection,
};
use crate::condition::WitnessProof;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::forward::{FeePolicy, Onward};
use crate::message::{Envelope, MAX_MESSAGES, Message, Reply};
use crate::objects::{ConditionalIou, IouState};
use crate::signed::{Signed, Signer};

/// Most channels (assets) one peer may have with me, counting those its offers opened.
pub const MAX_ASSETS_PER_PEER: usize = 64;

/// How far an envelope's `sent_at` may be from my clock, in seconds.
pub const ENVELOPE_WINDOW_SECS: u64 = 300;

/// Which way a conditional IOU or payment goes, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// I issued it / I pay.
    Out,
    /// The peer issued it / I am paid.
    In,
}

impl Direction {
    /// `out` or `in`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// A peer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// Its key.
    pub key: PublicKey,
    /// Where its peer API is, if known.
    pub url: Option<String>,
}

/// The head of a channel as stored: limits, id counter and the two newest states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRecord {
    /// The peer.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// My limits.
    pub limits: Limits,
    /// My fee policy for forwarding to the peer.
    pub fees: FeePolicy,
    /// The id my next conditional IOU gets.
    pub next_id: u64,
    /// Newest state I signed.
    pub out_state: Option<Blob>,
    /// Newest state the peer signed.
    pub in_state: Option<Blob>,
}

/// A signed object in a record, as the store keeps it: encoded bytes.
///
/// The ledger puts the objects it makes into records before their batch is signed (see
/// [`Ledger::set_batch_signing`]), so it hands them over whole and the store encodes them
/// when it writes, which is after the batch was signed. Equal when the encodings are.
#[derive(Clone)]
pub struct Blob {
    /// The encoding, once made (always, for what a store loaded).
    bytes: Option<Vec<u8>>,
    /// The object to encode, for what the ledger made.
    object: Option<BlobObject>,
}

#[derive(Clone, Debug)]
enum BlobObject {
    Iou(Signed<ConditionalIou>),
    State(Signed<IouState>),
    Answer(Answer),
}

impl Blob {
    fn object(object: BlobObject) -> Blob {
        Blob {
            bytes: None,
            object: Some(object),
        }
    }

    /// The encoding the store keeps (borrowed when it was loaded from the store).
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match (&self.bytes, &self.object) {
            (Some(bytes), _) => Cow::Borrowed(bytes),
            (None, Some(BlobObject::Iou(iou))) => Cow::Owned(iou.to_bytes()),
            (None, Some(BlobObject::State(state))) => Cow::Owned(state.to_bytes()),
            (None, Some(BlobObject::Answer(answer))) => Cow::Owned(encode_answer(answer)),
            (None, None) => Cow::Borrowed(&[]),
        }
    }

    /// The encoding, to change in place (tests damage a store with it).
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        if self.bytes.is_none() {
            self.bytes = Some(self.bytes().into_owned());
        }
        self.object = None;
        self.bytes.get_or_insert_with(Vec::new)
    }
}

/// The bytes the store will write (as a `Vec<u8>` in a record was shown), or that they wait for
/// their batch's signature.
impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signed = match &self.object {
            Some(BlobObject::Iou(iou)) => iou.signature().is_some(),
            Some(BlobObject::State(state)) => state.signature().is_some(),
            Some(BlobObject::Answer(Answer::Accepted(a))) => a.signature().is_some(),
            Some(BlobObject::Answer(Answer::Released(r))) => r.signature().is_some(),
            None => true,
        };
        if signed {
            f.debug_tuple("Blob").field(&self.bytes()).finish()
        } else {
            f.write_str("Blob(waiting for its batch's signature)")
        }
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Blob {
        Blob {
            bytes: Some(bytes),
            object: None,
        }
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Blob {}

/// An unresolved conditional IOU as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionalRecord {
    /// The peer.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// Who issued it.
    pub dir: Direction,
    /// Its id on the line.
    pub id: u64,
    /// The signed IOU.
    pub iou: Blob,
    /// The answer, if any, encoded as `3 || acceptance` or `4 || release`.
    pub answer: Option<Blob>,
    /// Encoded forwarding instructions sent with a routed IOU of mine.
    pub onward: Option<Vec<u8>>,
    /// The encoded proof ([`WitnessProof::to_bytes`]) once known.
    pub proof: Option<Vec<u8>>,
    /// For my IOUs: whether the holder claimed it with the proof.
    pub claimed: bool,
}

/// A routed IOU I accepted and the IOU I issued to forward it: releases and proofs travel
/// between the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRecord {
    /// The asset of both.
    pub asset: Asset,
    /// Who issued the incoming IOU.
    pub in_peer: PublicKey,
    /// Its id.
    pub in_id: u64,
    /// Who holds the outgoing IOU.
    pub out_peer: PublicKey,
    /// Its id.
    pub out_id: u64,
}

/// Which side of a payment hash this node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashlockRole {
    /// I made the invoice and publish the secret when the whole amount has arrived.
    Payee,
    /// I pay and publish the secret myself once the last hop issued to the payee (the
    /// offline-receiver flow).
    Payer,
    /// I am paid by a settlement request's conditional IOU once I pay its Lightning invoice:
    /// the secret is the invoice's preimage, unknown (zero) until my wallet paid it.
    Swap,
}

/// Where a payment hash stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashlockStatus {
    /// Waiting for the parts to arrive (or be issued).
    Open,
    /// Every part is in place: the secret is being published.
    Publishing,
    /// Published; the proof is known.
    Done,
    /// Expired, or the secret could not be published: every part is released or expires.
    Failed,
}

impl HashlockStatus {
    /// `open`, `publishing`, `paid` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashlockStatus::Open => "open",
            HashlockStatus::Publishing => "publishing",
            HashlockStatus::Done => "paid",
            HashlockStatus::Failed => "failed",
        }
    }
}

/// A payment secret I hold: an invoice of mine, or a payment whose secret I publish myself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashlockRecord {
    /// `SHA-256(p)`.
    pub hash: [u8; 32],
    /// The secret.
    pub p: [u8; 32],
    /// Payee or payer.
    pub role: HashlockRole,
    /// The payee (me, for an invoice).
    pub payee: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// The amount the payee must receive.
    pub amount: Amount,
    /// The encoded condition every part must carry (`WitnessCondition`).
    pub condition: Vec<u8>,
    /// The hard deadline T* (unix seconds) every part carries as its `expires_at`.
    pub expires_at: u64,
    /// Memo.
    pub memo: String,
    /// Where it stands.
    pub status: HashlockStatus,
    /// The proof, once published.
    pub proof: Option<Vec<u8>>,
    /// For a payer-published payment: the IOUs the last hops issued to the payee (encoded).
    pub issued: Vec<Vec<u8>>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// Where a payment stands, for the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Sent, not answered yet.
    Pending,
    /// Accepted by the payee.
    Completed,
    /// Refused or released, with the reason.
    Failed(String),
}

impl PaymentStatus {
    /// `pending`, `completed` or `failed`.
    pub fn as_str(&self) -> &str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed(_) => "failed",
        }
    }
}

/// One payment in the user's history (not needed by the protocol; kept for the user's view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    /// This history entry's own key: the payment id for a payment I sent, the hash of the
    /// accepted IOU for one I received (a payer chooses its payment ids, so they cannot key
    /// other people's entries).
    pub entry: [u8; 32],
    /// Random id chosen by the payer.
    pub payment_id: [u8; 32],
    /// Sent or received.
    pub dir: Direction,
    /// The other side.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// The amount.
    pub amount: Amount,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The memo.
    pub memo: String,
    /// Unix seconds when it started.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// Proof that a peer signed two contradicting things.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceRecord {
    /// Who misbehaved.
    pub peer: PublicKey,
    /// What the rejection said.
    pub what: String,
    /// The newly received object, encoded.
    pub received: Vec<u8>,
    /// Unix seconds.
    pub at: u64,
}

/// One change to persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace a peer.
    PutPeer(PeerRecord),
    /// Insert or replace a channel head.
    PutLine(LineRecord),
    /// Insert or replace an unresolved conditional IOU.
    PutConditional(ConditionalRecord),
    /// Forget a conditional IOU that a state resolved.
    DeleteConditional {
        /// The peer.
        peer: PublicKey,
        /// The asset.
        asset: Asset,
        /// Who issued it.
        dir: Direction,
        /// Its id.
        id: u64,
    },
    /// Insert or replace a payment in the history.
    PutPayment(PaymentRecord),
    /// Keep evidence of misbehaviour.
    PutEvidence(EvidenceRecord),
    /// Insert a forwarding link.
    PutForward(ForwardRecord),
    /// Forget a forwarding link (both of its IOUs are resolved).
    DeleteForward {
        /// The asset.
        asset: Asset,
        /// Who issued the incoming IOU.
        in_peer: PublicKey,
        /// Its id.
        in_id: u64,
    },
    /// Insert or replace a payment secret.
    PutHashlock(HashlockRecord),
    /// Insert or replace a settlement.
    PutSettlement(Box<crate::settle::SettlementRecord>),
    /// Keep the proof that a payment hash's secret was published (kept after the IOUs it
    /// fulfilled are resolved: the hop's evidence of what it paid and was paid).
    PutProof(ProofRecord),
}

/// A proof of publication, kept for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofRecord {
    /// The payment hash.
    pub hash: [u8; 32],
    /// The encoded [`WitnessProof`].
    pub proof: Vec<u8>,
    /// Unix seconds when it was first learned.
    pub at: u64,
}

/// Everything the store holds, for [`Ledger::restore`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every peer.
    pub peers: Vec<PeerRecord>,
    /// Every channel head.
    pub lines: Vec<LineRecord>,
    /// Every unresolved conditional IOU.
    pub conditionals: Vec<ConditionalRecord>,
    /// Payments still pending (to resume their history entries).
    pub pending_payments: Vec<PaymentRecord>,
    /// Every forwarding link.
    pub forwards: Vec<ForwardRecord>,
    /// Payment secrets not yet paid or failed.
    pub hashlocks: Vec<HashlockRecord>,
    /// Every settlement (they are few: one per human request).
    pub settlements: Vec<crate::settle::SettlementRecord>,
}

/// The store holds something this code cannot read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("corrupt store: {0}")]
pub struct CorruptStore(pub String);

/// The caller asked for something impossible; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LedgerError {
    /// The key is not a known peer.
    #[error("unknown peer {0}; add it first with `atomicity peer add`")]
    UnknownPeer(String),
    /// There is no line with that peer in that asset.
    #[error("no line with {peer} in {asset}; set one with `atomicity line set`")]
    NoLine {
        /// The peer.
        peer: String,
        /// The asset.
        asset: String,
    },
    /// My own key.
    #[error("that is this node's own key")]
    SelfPeer,
    /// The payment would take me over the limit I set for what I owe this peer.
    #[error("over your issue limit toward this peer: {available} {asset} available")]
    OverIssueLimit {
        /// How much could still be paid, as a decimal.
        available: String,
        /// The asset.
        asset: String,
    },
    /// The offer could not be made.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// A route that cannot be used as given.
    #[error("bad route: {0}")]
    BadRoute(String),
    /// A payment condition that cannot be used.
    #[error("bad condition: {0}")]
    BadCondition(String),
    /// No payment secret with that hash.
    #[error("no invoice or payment with hash {0}")]
    UnknownHash(String),
    /// A settlement step that cannot be taken now.
    #[error("{0}")]
    Settlement(String),
}

/// Why an envelope was refused as a whole; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    /// Not a well-formed signed envelope.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] DecodeError),
    /// The signature does not verify.
    #[error("bad signature on the envelope")]
    BadSignature,
    /// It is addressed to another key.
    #[error("envelope addressed to another key")]
    WrongRecipient,
    /// `sent_at` is too far from my clock.
    #[error("stale envelope: sent at {sent_at}, my clock says {now}")]
    Stale {
        /// The envelope's time.
        sent_at: u64,
        /// My time.
        now: u64,
    },
    /// The sender is not a peer of mine.
    #[error("unknown peer {0}")]
    UnknownPeer(String),
}

/// What happened to a payment I made, once the payee answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The payee accepted: the credit moved.
    Completed,
    /// The payee refused; nothing moved.
    Refused(String),
}

/// A conditional IOU of a channel: (peer, asset, id).
pub type IouKey = (PublicKey, Asset, u64);

/// How long after a routed IOU's hard deadline its issuer waits before it lets the IOU expire
/// unclaimed, by default: time for a claim made just before the deadline to arrive.
pub const DEFAULT_EXPIRY_GRACE_SECS: u64 = 30;

/// The node's whole credit state in memory.
pub struct Ledger {
    /// Signs what the ledger issues: at once, or in one batch per commit (see
    /// [`Ledger::set_batch_signing`]).
    pub(crate) signer: Signer,
    pub(crate) me: PublicKey,
    pub(crate) peers: HashMap<PublicKey, PeerRecord>,
    pub(crate) channels: HashMap<(PublicKey, Asset), Channel>,
    /// Payments I sent that are not finished, by payment id.
    pub(crate) pending: HashMap<[u8; 32], PaymentRecord>,
    /// The IOUs I issued for each pending payment (one per part), to its payment id.
    pub(crate) part_of: HashMap<IouKey, [u8; 32]>,
    /// Channels with answered IOUs waiting to be merged into a new state.
    pub(crate) dirty: BTreeSet<([u8; 32], Asset)>,
    /// Forwarding links by incoming IOU.
    pub(crate) fwd_in: HashMap<IouKey, ForwardRecord>,
    /// Forwarding links by outgoing IOU, to the incoming IOU.
    pub(crate) fwd_out: HashMap<IouKey, IouKey>,
    /// Payment secrets not yet paid or failed, by hash.
    pub(crate) hashlocks: HashMap<[u8; 32], HashlockRecord>,
    /// Messages to send once the current batch is committed.
    pub(crate) outgoing: Vec<(PublicKey, Message)>,
    /// When a message about a conditional IOU was last queued (to pace resends).
    pub(crate) last_sent: HashMap<(IouKey, Direction), u64>,
    /// How long after a routed IOU's deadline I let it expire unclaimed.
    pub(crate) grace: u64,
    /// Proofs already verified against a condition.
    pub(crate) proof_cache: crate::condition::ProofCache,
    /// Every settlement, by id.
    pub(crate) settlements: HashMap<[u8; 32], crate::settle::SettlementRecord>,
    /// When a settlement message was last queued (to pace resends).
    pub(crate) settle_sent: HashMap<[u8; 32], u64>,
    /// The witness logs I accept in conditions (set by the shell from the user's lists).
    pub(crate) witness_policy: crate::trust::WitnessPolicy,
}

impl Ledger {
    /// An empty ledger for `key`.
    pub fn new(key: Keypair) -> Ledger {
        let me = key.public_key();
        Ledger {
            signer: Signer::new(key),
            me,
            peers: HashMap::new(),
            channels: HashMap::new(),
            pending: HashMap::new(),
            part_of: HashMap::new(),
            dirty: BTreeSet::new(),
            fwd_in: HashMap::new(),
            fwd_out: HashMap::new(),
            hashlocks: HashMap::new(),
            outgoing: Vec::new(),
            last_sent: HashMap::new(),
            grace: DEFAULT_EXPIRY_GRACE_SECS,
            proof_cache: Default::default(),
            settlements: HashMap::new(),
            settle_sent: HashMap::new(),
            witness_policy: Default::default(),
        }
    }

    /// Sets the witness logs I accept in conditions: a routed IOU or a Lightning request whose
    /// condition names another is refused (`WitnessNotAccepted`). Not stored: the shell sets it
    /// at start from the user's settings.
    pub fn set_witness_policy(&mut self, policy: crate::trust::WitnessPolicy) {
        self.witness_policy = policy;
    }

    /// The witness logs I accept.
    pub fn witness_policy(&self) -> &crate::trust::WitnessPolicy {
        &self.witness_policy
    }

    /// Sets how long after a routed IOU's hard deadline I let it expire unclaimed.
    pub fn set_expiry_grace(&mut self, secs: u64) {
        self.grace = secs;
    }

    /// Rebuilds the ledger from what the store holds.
    pub fn restore(key: Keypair, snapshot: Snapshot) -> Result<Ledger, CorruptStore> {
        let mut ledger = Ledger::new(key);
        for peer in snapshot.peers {
            ledger.peers.insert(peer.key.clone(), peer);
        }
        let mut outs: HashMap<(PublicKey, Asset), BTreeMap<u64, OutConditional>> = HashMap::new();
        let mut ins: HashMap<(PublicKey, Asset), BTreeMap<u64, InConditional>> = HashMap::new();
        for c in snapshot.conditionals {
            let iou = Signed::<ConditionalIou>::decode(&c.iou.bytes())
                .map_err(|e| CorruptStore(format!("conditional {}: {e}", c.id)))?;
            let answer = c.answer.map(|a| decode_answer(&a.bytes())).transpose()?;
            let corrupt =
                |what: &str, e: DecodeError| CorruptStore(format!("{what} {}: {e}", c.id));
            let proof = c
                .proof
                .as_deref()
                .map(WitnessProof::from_bytes)
                .transpose()
                .map_err(|e| corrupt("proof of conditional", e))?;
            let onward = c
                .onward
                .as_deref()
                .map(|bytes| {
                    let mut r = Reader::new(bytes);
                    let onward = Onward::decode(&mut r)?;
                    r.finish().map(|()| onward)
                })
                .transpose()
                .map_err(|e| corrupt("instructions of conditional", e))?;
            let key = (c.peer, c.asset);
            match c.dir {
                Direction::Out => {
                    outs.entry(key).or_default().insert(
                        c.id,
                        OutConditional {
                            iou,
                            answer,
                            onward,
                            proof,
                            claimed: c.claimed,
                        },
                    );
                }
                Direction::In => {
                    let answer = answer.ok_or_else(|| {
                        CorruptStore(format!("incoming conditional {} has no answer", c.id))
                    })?;
                    ins.entry(key)
                        .or_default()
                        .insert(c.id, InConditional { iou, answer, proof });
                }
            }
        }
        for line in snapshot.lines {
            let decode_state = |blob: &Option<Blob>| {
                blob.as_ref()
                    .map(|b| Signed::<IouState>::decode(&b.bytes()))
                    .transpose()
                    .map_err(|e| CorruptStore(format!("state: {e}")))
            };
            let key = (line.peer.clone(), line.asset.clone());
            let mut channel = Channel::restore(
                ledger.me.clone(),
                line.peer,
                line.asset,
                line.limits,
                line.next_id,
                decode_state(&line.out_state)?,
                decode_state(&line.in_state)?,
                outs.remove(&key).unwrap_or_default(),
                ins.remove(&key).unwrap_or_default(),
            );
            channel.fees = line.fees;
            // Answered IOUs wait to be merged; expired ones are found by the next tick.
            if channel.has_mergeable(0, 0) {
                ledger.mark_dirty(&key.0, &key.1);
            }
            ledger.channels.insert(key, channel);
        }
        if let Some((peer, asset)) = outs.keys().chain(ins.keys()).next() {
            return Err(CorruptStore(format!(
                "conditional IOUs without a line: {peer} {asset}"
            )));
        }
        // A pending payment's parts are the IOUs I issued with its payment id (a hop copies the
        // payer's id, but a route never passes through its own payer).
        let pending: HashMap<[u8; 32], PaymentRecord> = snapshot
            .pending_payments
            .into_iter()
            .map(|p| (p.payment_id, p))
            .collect();
        for channel in ledger.channels.values() {
            for (id, c) in channel.out_conditionals() {
                let payment_id = c.iou.body().payment_id;
                if pending.contains_key(&payment_id) {
                    ledger.part_of.insert(
                        (channel.peer().clone(), channel.asset().clone(), *id),
                        payment_id,
                    );
                }
            }
        }
        ledger.pending = pending;
        for f in snapshot.forwards {
            ledger.fwd_out.insert(
                (f.out_peer.clone(), f.asset.clone(), f.out_id),
                (f.in_peer.clone(), f.asset.clone(), f.in_id),
            );
            ledger
                .fwd_in
                .insert((f.in_peer.clone(), f.asset.clone(), f.in_id), f);
        }
        for h in snapshot.hashlocks {
            ledger.hashlocks.insert(h.hash, h);
        }
        for s in snapshot.settlements {
            ledger.settlements.insert(s.id, s);
        }
        Ok(ledger)
    }

    /// My public key.
    pub fn me(&self) -> &PublicKey {
        &self.me
    }

    /// My keypair (for signing envelopes in the shell).
    pub fn keypair(&self) -> &Keypair {
        self.signer.key()
    }

    /// Signs what the ledger issues (IOUs, answers, releases, states) in batches, with one
    /// signature over the Merkle root of each batch, rather than one by one. The owner then
    /// calls [`Ledger::sign_batch`] before it stores or sends anything the ledger made: a node
    /// does it once per commit, so one signature serves every payment of that commit.
    pub fn set_batch_signing(&mut self, on: bool) {
        self.sign_batch();
        let key = self.signer.key().clone();
        self.signer = if on {
            Signer::batching(key)
        } else {
            Signer::new(key)
        };
    }

    /// Signs every object the ledger made since the last call (see
    /// [`Ledger::set_batch_signing`]); returns how many. Nothing to do when not batching.
    pub fn sign_batch(&self) -> usize {
        self.signer.sign_batch()
    }

    /// A known peer.
    pub fn peer(&self, key: &PublicKey) -> Option<&PeerRecord> {
        self.peers.get(key)
    }

    /// Every known peer.
    pub fn peers(&self) -> impl Iterator<Item = &PeerRecord> {
        self.peers.values()
    }

    /// Every channel.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    /// A channel.
    pub fn channel(&self, peer: &PublicKey, asset: &Asset) -> Option<&Channel> {
        self.channels.get(&(peer.clone(), asset.clone()))
    }

    /// Summaries of every channel, sorted by peer then asset.
    pub fn balances(&self) -> Vec<ChannelView> {
        // `view` fails only if a cumulative total passes 2^127 minor units (or the store is
        // corrupt): totals are u128 and unanswered offers are kept within a u64 by `offer`, so
        // no channel this code built is left out.
        let mut views: Vec<ChannelView> =
            self.channels.values().filter_map(Channel::view).collect();
        views.sort_by(|a, b| (a.peer.to_z32(), &a.asset).cmp(&(b.peer.to_z32(), &b.asset)));
        views
    }

    /// Adds or updates a peer.
    pub fn add_peer(
        &mut self,
        key: PublicKey,
        url: Option<String>,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        if key == self.me {
            return Err(LedgerError::SelfPeer);
        }
        let record = PeerRecord {
            key: key.clone(),
            url,
        };
        if self.peers.get(&key) != Some(&record) {
            self.peers.insert(key, record.clone());
            ops.push(StoreOp::PutPeer(record));
        }
        Ok(())
    }

    /// Sets my limits toward a peer in an asset, opening the channel if needed. `None` keeps a
    /// limit as it is (0 for a new channel).
    pub fn set_limits(
        &mut self,
        peer: &PublicKey,
        asset: &Asset,
        accept: Option<Amount>,
        issue: Option<Amount>,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Limits, LedgerError> {
        if !self.peers.contains_key(peer) {
            return Err(LedgerError::UnknownPeer(peer.to_z32()));
        }
        let me = self.me.clone();
        let channel = self
            .channels
            .entry((peer.clone(), asset.clone()))
            .or_insert_with(|| Channel::new(me, peer.clone(), asset.clone(), Limits::default()));
        if let Some(accept) = accept {
            channel.limits.accept = accept;
        }
        if let Some(issue) = issue {
            channel.limits.issue = issue;
        }
        let limits = channel.limits;
        ops.push(StoreOp::PutLine(line_record(channel)));
        Ok(limits)
    }

    /// Starts a direct payment: a signed conditional IOU to send to the peer.
    #[allow(clippy::too_many_arguments)]
    pub fn pay(
        &mut self,
        peer: &PublicKey,
        asset: &Asset,
        amount: Amount,
        payment_id: [u8; 32],
        memo: String,
        now: u64,
        expires_at: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Signed<ConditionalIou>, LedgerError> {
        if !self.peers.contains_key(peer) {
            return Err(LedgerError::UnknownPeer(peer.to_z32()));
        }
        let channel = self
            .channels
            .get_mut(&(peer.clone(), asset.clone()))
            .ok_or_else(|| LedgerError::NoLine {
                peer: peer.to_z32(),
                asset: asset.to_string(),
            })?;
        let iou = channel
            .offer(&self.signer, amount, payment_id, expires_at, memo.clone())
            .map_err(|e| match e {
                OfferError::OverIssueLimit { available } => LedgerError::OverIssueLimit {
                    available: asset.format(Amount::from_minor(available)),
                    asset: asset.to_string(),
                },
                e => LedgerError::Offer(e),
            })?;
        ops.push(StoreOp::PutLine(line_record(channel)));
        ops.push(StoreOp::PutConditional(conditional_record(
            channel,
            Direction::Out,
            &iou,
            None,
        )));
        let record = PaymentRecord {
            entry: payment_id,
            payment_id,
            dir: Direction::Out,
            peer: peer.clone(),
            asset: asset.clone(),
            amount,
            status: PaymentStatus::Pending,
            memo,
            created_at: now,
            updated_at: now,
        };
        ops.push(StoreOp::PutPayment(record.clone()));
        let key = (peer.clone(), asset.clone(), iou.body().id);
        self.last_sent.insert((key.clone(), Direction::Out), now);
        self.part_of.insert(key, payment_id);
        self.pending.insert(payment_id, record);
        Ok(iou)
    }

    /// Opens an envelope: [`open_envelope`], then checks that the sender is a known peer.
    pub fn open_envelope(&self, bytes: &[u8], now: u64) -> Result<Envelope, EnvelopeError> {
        let envelope = open_envelope(&self.me, bytes, now)?;
        if !self.peers.contains_key(&envelope.from) {
            return Err(EnvelopeError::UnknownPeer(envelope.from.to_z32()));
        }
        Ok(envelope)
    }

    /// Seals messages for a peer in a signed envelope (at most [`MAX_MESSAGES`]).
    pub fn seal(&self, to: &PublicKey, now: u64, messages: Vec<Message>) -> Vec<u8> {
        debug_assert!(messages.len() <= MAX_MESSAGES);
        Signed::sign(
            Envelope {
                from: self.me.clone(),
                to: to.clone(),
                sent_at: now,
                messages,
            },
            self.signer.key(),
        )
        .to_bytes()
    }

    /// Handles one message from `from` (already authenticated by its envelope). Rejections
    /// change nothing; misbehaviour is kept as evidence.
    pub fn handle_message(
        &mut self,
        from: &PublicKey,
        message: Message,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Reply {
        self.handle_keeping_evidence(from, message, now, ops)
            .unwrap_or_else(|rejection| Reply::Rejected {
                code: rejection.code(),
                text: rejection.to_string(),
            })
    }

    /// [`Self::try_handle`], keeping the message as evidence when its rejection proves the peer
    /// signed two contradicting things (answers mostly arrive as replies, so both paths use it).
    fn handle_keeping_evidence(
        &mut self,
        from: &PublicKey,
        message: Message,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        let received = message.object_bytes();
        self.try_handle(from, message, now, ops)
            .inspect_err(|rejection| {
                if rejection.is_misbehaviour() {
                    ops.push(StoreOp::PutEvidence(EvidenceRecord {
                        peer: from.clone(),
                        what: rejection.to_string(),
                        received,
                        at: now,
                    }));
                }
            })
    }

    fn try_handle(
        &mut self,
        from: &PublicKey,
        message: Message,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        if !self.peers.contains_key(from) {
            return Err(Rejection::UnknownPeer);
        }
        match message {
            Message::Offer(iou) => {
                iou.verify().map_err(|e| Rejection::BadSignature(e.kind))?;
                if iou.body().condition.witness().is_some() {
                    return Err(Rejection::WrongLine(
                        "a routed IOU comes as a Forward, with its instructions".into(),
                    ));
                }
                let line = iou.body().line.clone();
                if line.issuer != *from || line.holder != self.me {
                    return Err(Rejection::WrongLine(
                        "an offer must be issued by the sender to this node".into(),
                    ));
                }
                let key = (from.clone(), line.asset.clone());
                let receipt = self.is_settlement_receipt(from, iou.body());
                self.open_channel_for_offer(from, &line.asset, ops)?;
                let Some(channel) = self.channels.get_mut(&key) else {
                    return Err(Rejection::UnknownAsset(line.asset.to_string()));
                };
                let id = iou.body().id;
                let iou_hash = iou.hash();
                let (payment_id, amount, memo) = (
                    iou.body().payment_id,
                    iou.body().amount,
                    iou.body().memo.clone(),
                );
                let (answer, changed) =
                    channel.handle_offer_checked(&self.signer, iou, now, None, !receipt)?;
                if changed {
                    ops.push(StoreOp::PutConditional(in_record(channel, id)?));
                    if answer.is_accepted() {
                        let iou = channel.in_conditionals().get(&id).map(|c| c.iou.clone());
                        ops.push(StoreOp::PutPayment(PaymentRecord {
                            entry: iou_hash,
                            payment_id,
                            dir: Direction::In,
                            peer: from.clone(),
                            asset: line.asset.clone(),
                            amount,
                            status: PaymentStatus::Completed,
                            memo,
                            created_at: now,
                            updated_at: now,
                        }));
                        if let Some(iou) = iou {
                            self.settlement_receipt_arrived(from, iou.body(), now, ops);
                        }
                    }
                }
                Ok(match answer {
                    Answer::Accepted(a) => Reply::Accepted(a),
                    Answer::Released(r) => Reply::Released(r),
                })
            }
            Message::State(state) => {
                state
                    .verify()
                    .map_err(|e| Rejection::BadSignature(e.kind))?;
                let asset = state.body().line.asset.clone();
                let seq = state.body().seq;
                let channel = channel_mut(&mut self.channels, from, &asset)?;
                if let Some(resolved) = channel.handle_state(state, now)? {
                    push_resolved(ops, channel, Direction::In, resolved.clone());
                    self.forget_links(from, &asset, Direction::In, &resolved, ops);
                }
                Ok(Reply::StateAck { seq })
            }
            Message::Accept(a) => {
                a.verify().map_err(|e| Rejection::BadSignature(e.kind))?;
                self.handle_answer(from, Answer::Accepted(a), now, ops)
            }
            Message::Release(r) => {
                r.verify().map_err(|e| Rejection::BadSignature(e.kind))?;
                self.handle_answer(from, Answer::Released(r), now, ops)
            }
            Message::Forward(iou, onward) => self.handle_forward(from, iou, onward, now, ops),
            Message::Proof { hash, proof } => self.handle_proof(from, hash, proof, now, ops),
            Message::Issued(iou) => self.handle_issued(from, iou, now, ops),
            Message::Settle(request) => self.handle_settle(from, *request, now, ops),
            Message::SettleUpdate(update) => self.handle_settle_update(from, *update, now, ops),
        }
    }

    /// Takes the holder's answer to my offer (from a reply or a message), or its early release
    /// of a routed IOU. The answer's signature must already be verified.
    fn handle_answer(
        &mut self,
        from: &PublicKey,
        answer: Answer,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        let (asset, id) = match &answer {
            Answer::Accepted(a) => (a.body().line.asset.clone(), a.body().id),
            Answer::Released(r) => (r.body().line.asset.clone(), r.body().id),
        };
        let channel = channel_mut(&mut self.channels, from, &asset)?;
        match channel.handle_answer(answer.clone()) {
            Ok(true) => {}
            Ok(false) | Err(Rejection::AlreadyResolved { .. }) => return Ok(Reply::Ok),
            Err(e) => return Err(e),
        }
        ops.push(StoreOp::PutConditional(out_record(channel, id)?));
        self.mark_dirty(from, &asset);
        let key = (from.clone(), asset, id);
        self.settlement_payout_answered(&key, now, ops);
        match answer {
            Answer::Accepted(_) => self.part_accepted(&key, now, ops),
            Answer::Released(r) => {
                let why = r.body().reason.to_string();
                self.part_failed(&key, &why, now, ops);
                // The upstream IOU may already be claimed (the proof came first) or released:
                // then there is nothing to release, and the downstream release stands.
                let _ = self.release_upstream(&key, now, ops);
            }
        }
        Ok(Reply::Ok)
    }

    /// Takes a reply from `from` to one of my messages. Answers to offers are applied; other
    /// replies need nothing. Returns the outcome of an answered payment.
    pub fn handle_reply(
        &mut self,
        from: &PublicKey,
        reply: Reply,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Option<PaymentOutcome>, Rejection> {
        let (message, outcome, line, id) = match reply {
            Reply::Accepted(a) => {
                let (line, id) = (a.body().line.clone(), a.body().id);
                (Message::Accept(a), PaymentOutcome::Completed, line, id)
            }
            Reply::Released(r) => {
                let why = r.body().reason.to_string();
                let (line, id) = (r.body().line.clone(), r.body().id);
                (Message::Release(r), PaymentOutcome::Refused(why), line, id)
            }
            // Acks, and rejections of a resent offer that was already resolved, need nothing.
            _ => return Ok(None),
        };
        // Only a direct payment is decided by its answer; a routed one by its proof.
        let routed = self
            .channel(from, &line.asset)
            .and_then(|c| c.out_conditionals().get(&id))
            .is_some_and(|c| c.iou.body().condition.witness().is_some());
        match self.handle_keeping_evidence(from, message, now, ops)? {
            Reply::Rejected { .. } => Ok(None),
            _ => Ok((!routed).then_some(outcome)),
        }
    }

    /// Signs new IOU states for every channel with answered IOUs (one state merges many
    /// payments). Returns them to send, after the ops are committed.
    pub fn merge_states(
        &mut self,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Vec<(PublicKey, Signed<IouState>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut states = Vec::new();
        for (peer_bytes, asset) in dirty {
            let Some(peer) = crate::encoding::known_key(&peer_bytes) else {
                continue;
            };
            let Some(channel) = self.channels.get_mut(&(peer.clone(), asset.clone())) else {
                continue;
            };
            // Routed IOUs accepted and not claimed: if the merge resolves one, it expired.
            let unclaimed: Vec<u64> = channel
                .out_conditionals()
                .iter()
                .filter(|(_, c)| c.is_pending() && c.answer.is_some())
                .map(|(id, _)| *id)
                .collect();
            match channel.merge_answered(&self.signer, now, self.grace) {
                Ok(Some((state, merged))) => {
                    push_resolved(ops, channel, Direction::Out, merged.clone());
                    if channel.has_mergeable(now, self.grace) {
                        self.dirty.insert((peer_bytes, asset.clone()));
                    }
                    states.push((peer.clone(), state));
                    // Routed IOUs that expired unclaimed: their payments failed here.
                    let expired: Vec<u64> = unclaimed
                        .into_iter()
                        // `merged` comes in ascending order.
                        .filter(|id| merged.binary_search(id).is_ok())
                        .collect();
                    for id in expired {
                        let key = (peer.clone(), asset.clone(), id);
                        self.part_failed(&key, "expired unclaimed at its deadline", now, ops);
                        // An error here means the upstream IOU is already decided: nothing to do.
                        let _ = self.release_upstream(&key, now, ops);
                    }
                    self.forget_links(&peer, &asset, Direction::Out, &merged, ops);
                }
                Ok(None) => {}
                // `merge_answered` fails only with `Overflow`: a line's total passing 2^128 minor
                // units, which no run of this code reaches (2^64 payments of the largest amount).
                // Nothing is lost if it ever did: the channel is unchanged and stays dirty, so its
                // answered IOUs wait (and their accepted amounts still count in the channel's
                // view) instead of being silently dropped.
                Err(_) => {
                    self.dirty.insert((peer_bytes, asset));
                }
            }
        }
        states
    }

    /// Offers of mine still waiting for an answer, direct and routed.
    pub fn unanswered_offers(&self) -> Vec<(PublicKey, Signed<ConditionalIou>)> {
        self.channels
            .values()
            .flat_map(|c| {
                c.out_conditionals()
                    .values()
                    .filter(|o| o.answer.is_none())
                    .map(|o| (c.peer().clone(), o.iou.clone()))
            })
            .collect()
    }

    /// The newest state I signed on every line (to push to peers after a restart).
    pub fn latest_out_states(&self) -> Vec<(PublicKey, Signed<IouState>)> {
        self.channels
            .values()
            .filter_map(|c| c.out_state().map(|s| (c.peer().clone(), s.clone())))
            .collect()
    }

    pub(crate) fn mark_dirty(&mut self, peer: &PublicKey, asset: &Asset) {
        self.dirty.insert((*peer.as_bytes(), asset.clone()));
    }
}

/// Opens an envelope addressed to `me`: parses it, checks the signature, the recipient and the
/// time window. (Whether the sender is a peer is the caller's question.)
pub fn open_envelope(me: &PublicKey, bytes: &[u8], now: u64) -> Result<Envelope, EnvelopeError> {
    let envelope = Signed::<Envelope>::decode(bytes)?;
    envelope.verify().map_err(|_| EnvelopeError::BadSignature)?;
    let envelope = envelope.body().clone();
    if envelope.to != *me {
        return Err(EnvelopeError::WrongRecipient);
    }
    if envelope.sent_at.abs_diff(now) > ENVELOPE_WINDOW_SECS {
        return Err(EnvelopeError::Stale {
            sent_at: envelope.sent_at,
            now,
        });
    }
    Ok(envelope)
}

pub(crate) fn channel_mut<'a>(
    channels: &'a mut HashMap<(PublicKey, Asset), Channel>,
    peer: &PublicKey,
    asset: &Asset,
) -> Result<&'a mut Channel, Rejection> {
    channels
        .get_mut(&(peer.clone(), asset.clone()))
        .ok_or_else(|| Rejection::UnknownAsset(asset.to_string()))
}

/// The ops that make a new state durable: the channel head, and the conditional IOUs it
/// resolved forgotten (N + C).
pub(crate) fn push_resolved(
    ops: &mut Vec<StoreOp>,
    channel: &Channel,
    dir: Direction,
    ids: Vec<u64>,
) {
    ops.push(StoreOp::PutLine(line_record(channel)));
    ops.extend(ids.into_iter().map(|id| StoreOp::DeleteConditional {
        peer: channel.peer().clone(),
        asset: channel.asset().clone(),
        dir,
        id,
    }));
}

pub(crate) fn line_record(channel: &Channel) -> LineRecord {
    LineRecord {
        peer: channel.peer().clone(),
        asset: channel.asset().clone(),
        limits: channel.limits,
        fees: channel.fees,
        next_id: channel.next_id(),
        out_state: channel
            .out_state()
            .map(|s| Blob::object(BlobObject::State(s.clone()))),
        in_state: channel
            .in_state()
            .map(|s| Blob::object(BlobObject::State(s.clone()))),
    }
}

fn encode_answer(answer: &Answer) -> Vec<u8> {
    let (tag, bytes) = match answer {
        Answer::Accepted(a) => (3u8, a.to_bytes()),
        Answer::Released(r) => (4u8, r.to_bytes()),
    };
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(tag);
    out.extend_from_slice(&bytes);
    out
}

fn decode_answer(bytes: &[u8]) -> Result<Answer, CorruptStore> {
    let corrupt = |e: DecodeError| CorruptStore(format!("answer: {e}"));
    match bytes.split_first() {
        Some((3, rest)) => Ok(Answer::Accepted(Signed::decode(rest).map_err(corrupt)?)),
        Some((4, rest)) => Ok(Answer::Released(Signed::decode(rest).map_err(corrupt)?)),
        _ => Err(CorruptStore("answer: unknown tag".into())),
    }
}

pub(crate) fn out_record(channel: &Channel, id: u64) -> Result<ConditionalRecord, Rejection> {
    let c = channel
        .out_conditionals()
        .get(&id)
        .ok_or(Rejection::UnknownConditional { id })?;
    let mut record = conditional_record(channel, Direction::Out, &c.iou, c.answer.as_ref());
    record.onward = c.onward.as_ref().map(|o| {
        let mut w = Writer::new();
        o.encode(&mut w);
        w.into_bytes()
    });
    record.proof = c.proof.as_ref().map(WitnessProof::to_bytes);
    record.claimed = c.claimed;
    Ok(record)
}

pub(crate) fn in_record(channel: &Channel, id: u64) -> Result<ConditionalRecord, Rejection> {
    let c = channel
        .in_conditionals()
        .get(&id)
        .ok_or(Rejection::UnknownConditional { id })?;
    let mut record = conditional_record(channel, Direction::In, &c.iou, Some(&c.answer));
    record.proof = c.proof.as_ref().map(WitnessProof::to_bytes);
    Ok(record)
}

pub(crate) fn conditional_record(
    channel: &Channel,
    dir: Direction,
    iou: &Signed<ConditionalIou>,
    answer: Option<&Answer>,
) -> ConditionalRecord {
    ConditionalRecord {
        peer: channel.peer().clone(),
        asset: channel.asset().clone(),
        dir,
        id: iou.body().id,
        iou: Blob::object(BlobObject::Iou(iou.clone())),
        answer: answer.map(|a| Blob::object(BlobObject::Answer(a.clone()))),
        onward: None,
        proof: None,
        claimed: false,
    }
}
