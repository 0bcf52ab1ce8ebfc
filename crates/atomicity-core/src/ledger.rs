//! All of one node's credit relationships, and the changes to persist after each input.
//!
//! Every input method appends the [`StoreOp`]s that make its effect durable. The shell commits
//! them in one transaction, and only then sends the messages the method returned: *persist
//! before you speak*.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pkarr::{Keypair, PublicKey};
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::channel::{
    Answer, Channel, ChannelView, InConditional, Limits, OfferError, OutConditional, Rejection,
};
use crate::encoding::DecodeError;
use crate::message::{Envelope, MAX_MESSAGES, Message, Reply};
use crate::objects::{ConditionalIou, IouState};
use crate::signed::Signed;

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
    /// The id my next conditional IOU gets.
    pub next_id: u64,
    /// Encoded newest state I signed.
    pub out_state: Option<Vec<u8>>,
    /// Encoded newest state the peer signed.
    pub in_state: Option<Vec<u8>>,
}

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
    /// The encoded signed IOU.
    pub iou: Vec<u8>,
    /// The encoded answer, if any: `3 || acceptance` or `4 || release`.
    pub answer: Option<Vec<u8>>,
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

/// The node's whole credit state in memory.
pub struct Ledger {
    key: Keypair,
    me: PublicKey,
    peers: HashMap<PublicKey, PeerRecord>,
    channels: HashMap<(PublicKey, Asset), Channel>,
    /// Payments I sent that are not answered yet, by (peer, asset, id).
    payments: HashMap<(PublicKey, Asset, u64), PaymentRecord>,
    /// Channels with answered IOUs waiting to be merged into a new state.
    dirty: BTreeSet<(Vec<u8>, Asset)>,
}

impl Ledger {
    /// An empty ledger for `key`.
    pub fn new(key: Keypair) -> Ledger {
        let me = key.public_key();
        Ledger {
            key,
            me,
            peers: HashMap::new(),
            channels: HashMap::new(),
            payments: HashMap::new(),
            dirty: BTreeSet::new(),
        }
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
            let iou = Signed::<ConditionalIou>::decode(&c.iou)
                .map_err(|e| CorruptStore(format!("conditional {}: {e}", c.id)))?;
            let answer = c.answer.as_deref().map(decode_answer).transpose()?;
            let key = (c.peer, c.asset);
            match c.dir {
                Direction::Out => {
                    outs.entry(key)
                        .or_default()
                        .insert(c.id, OutConditional { iou, answer });
                }
                Direction::In => {
                    let answer = answer.ok_or_else(|| {
                        CorruptStore(format!("incoming conditional {} has no answer", c.id))
                    })?;
                    ins.entry(key)
                        .or_default()
                        .insert(c.id, InConditional { iou, answer });
                }
            }
        }
        for line in snapshot.lines {
            let decode_state = |bytes: &Option<Vec<u8>>| {
                bytes
                    .as_deref()
                    .map(Signed::<IouState>::decode)
                    .transpose()
                    .map_err(|e| CorruptStore(format!("state: {e}")))
            };
            let key = (line.peer.clone(), line.asset.clone());
            let channel = Channel::restore(
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
            if channel.has_mergeable() {
                ledger.mark_dirty(&key.0, &key.1);
            }
            ledger.channels.insert(key, channel);
        }
        if let Some((peer, asset)) = outs.keys().chain(ins.keys()).next() {
            return Err(CorruptStore(format!(
                "conditional IOUs without a line: {peer} {asset}"
            )));
        }
        for p in snapshot.pending_payments {
            if let Some(id) = ledger.out_id_of(&p) {
                ledger
                    .payments
                    .insert((p.peer.clone(), p.asset.clone(), id), p);
            }
        }
        Ok(ledger)
    }

    fn out_id_of(&self, p: &PaymentRecord) -> Option<u64> {
        let channel = self.channels.get(&(p.peer.clone(), p.asset.clone()))?;
        channel
            .out_conditionals()
            .iter()
            .find(|(_, c)| c.iou.body().payment_id == p.payment_id)
            .map(|(id, _)| *id)
    }

    /// My public key.
    pub fn me(&self) -> &PublicKey {
        &self.me
    }

    /// My keypair (for signing envelopes in the shell).
    pub fn keypair(&self) -> &Keypair {
        &self.key
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
            .offer(&self.key, amount, payment_id, expires_at, memo.clone())
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
        self.payments
            .insert((peer.clone(), asset.clone(), iou.body().id), record);
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
            &self.key,
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
                let line = iou.body().line.clone();
                if line.issuer != *from || line.holder != self.me {
                    return Err(Rejection::WrongLine(
                        "an offer must be issued by the sender to this node".into(),
                    ));
                }
                let key = (from.clone(), line.asset.clone());
                if !self.channels.contains_key(&key) {
                    // An offer in an asset I have no line in still gets a definite, stored
                    // answer: a channel with zero limits is opened to keep the release, so a
                    // resent offer gets the same release even after I open the line. A peer
                    // cannot make me open more than a few such channels.
                    let held = self.channels.keys().filter(|(p, _)| p == from).count();
                    if held >= MAX_ASSETS_PER_PEER {
                        return Err(Rejection::UnknownAsset(line.asset.to_string()));
                    }
                    let channel = Channel::new(
                        self.me.clone(),
                        from.clone(),
                        line.asset.clone(),
                        Limits::default(),
                    );
                    ops.push(StoreOp::PutLine(line_record(&channel)));
                    self.channels.insert(key.clone(), channel);
                }
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
                let (answer, changed) = channel.handle_offer(&self.key, iou, now)?;
                if changed {
                    ops.push(StoreOp::PutConditional(in_record(channel, id)?));
                    if answer.is_accepted() {
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
                if let Some(resolved) = channel.handle_state(state)? {
                    push_resolved(ops, channel, Direction::In, resolved);
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
        }
    }

    /// Takes the payee's answer to my offer (from a reply or a message). The answer's
    /// signature must already be verified.
    fn handle_answer(
        &mut self,
        from: &PublicKey,
        answer: Answer,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        let (asset, id, outcome) = match &answer {
            Answer::Accepted(a) => (
                a.body().line.asset.clone(),
                a.body().id,
                PaymentOutcome::Completed,
            ),
            Answer::Released(r) => (
                r.body().line.asset.clone(),
                r.body().id,
                PaymentOutcome::Refused(r.body().reason.to_string()),
            ),
        };
        let channel = channel_mut(&mut self.channels, from, &asset)?;
        match channel.handle_answer(answer) {
            Ok(true) => {}
            Ok(false) | Err(Rejection::AlreadyResolved { .. }) => return Ok(Reply::Ok),
            Err(e) => return Err(e),
        }
        ops.push(StoreOp::PutConditional(out_record(channel, id)?));
        self.mark_dirty(from, &asset);
        if let Some(mut record) = self.payments.remove(&(from.clone(), asset, id)) {
            record.status = match outcome {
                PaymentOutcome::Completed => PaymentStatus::Completed,
                PaymentOutcome::Refused(why) => PaymentStatus::Failed(why),
            };
            record.updated_at = now;
            ops.push(StoreOp::PutPayment(record));
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
        let (message, outcome) = match reply {
            Reply::Accepted(a) => (Message::Accept(a), PaymentOutcome::Completed),
            Reply::Released(r) => {
                let why = r.body().reason.to_string();
                (Message::Release(r), PaymentOutcome::Refused(why))
            }
            // Acks, and rejections of a resent offer that was already resolved, need nothing.
            _ => return Ok(None),
        };
        match self.handle_keeping_evidence(from, message, now, ops)? {
            Reply::Rejected { .. } => Ok(None),
            _ => Ok(Some(outcome)),
        }
    }

    /// Signs new IOU states for every channel with answered IOUs (one state merges many
    /// payments). Returns them to send, after the ops are committed.
    pub fn merge_states(&mut self, ops: &mut Vec<StoreOp>) -> Vec<(PublicKey, Signed<IouState>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut states = Vec::new();
        for (peer_bytes, asset) in dirty {
            let Ok(peer) = PublicKey::try_from(peer_bytes.as_slice()) else {
                continue;
            };
            let Some(channel) = self.channels.get_mut(&(peer.clone(), asset.clone())) else {
                continue;
            };
            match channel.merge_answered(&self.key) {
                Ok(Some((state, merged))) => {
                    push_resolved(ops, channel, Direction::Out, merged);
                    if channel.has_mergeable() {
                        self.dirty.insert((peer_bytes, asset));
                    }
                    states.push((peer, state));
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

    /// Offers of mine still waiting for an answer (to resend after a restart or a failure).
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

    fn mark_dirty(&mut self, peer: &PublicKey, asset: &Asset) {
        self.dirty.insert((peer.as_bytes().to_vec(), asset.clone()));
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

fn channel_mut<'a>(
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
fn push_resolved(ops: &mut Vec<StoreOp>, channel: &Channel, dir: Direction, ids: Vec<u64>) {
    ops.push(StoreOp::PutLine(line_record(channel)));
    ops.extend(ids.into_iter().map(|id| StoreOp::DeleteConditional {
        peer: channel.peer().clone(),
        asset: channel.asset().clone(),
        dir,
        id,
    }));
}

fn line_record(channel: &Channel) -> LineRecord {
    LineRecord {
        peer: channel.peer().clone(),
        asset: channel.asset().clone(),
        limits: channel.limits,
        next_id: channel.next_id(),
        out_state: channel.out_state().map(Signed::to_bytes),
        in_state: channel.in_state().map(Signed::to_bytes),
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

fn out_record(channel: &Channel, id: u64) -> Result<ConditionalRecord, Rejection> {
    let c = channel
        .out_conditionals()
        .get(&id)
        .ok_or(Rejection::UnknownConditional { id })?;
    Ok(conditional_record(
        channel,
        Direction::Out,
        &c.iou,
        c.answer.as_ref(),
    ))
}

fn in_record(channel: &Channel, id: u64) -> Result<ConditionalRecord, Rejection> {
    let c = channel
        .in_conditionals()
        .get(&id)
        .ok_or(Rejection::UnknownConditional { id })?;
    Ok(conditional_record(
        channel,
        Direction::In,
        &c.iou,
        Some(&c.answer),
    ))
}

fn conditional_record(
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
        iou: iou.to_bytes(),
        answer: answer.map(encode_answer),
    }
}
