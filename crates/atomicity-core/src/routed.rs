//! Routed payments on top of the ledger: forwarding, proofs, releases, invoices and expiry.
//!
//! A routed IOU carries a [`WitnessCondition`]. Each hop accepts the IOU from upstream only
//! after checking that it can issue the next one downstream (limits, fee, hop rule), and issues
//! it in the same batch. The payee, once the whole amount has arrived, publishes the secret on a
//! witness log; the proof then flows back up: each holder claims from its issuer with the proof,
//! and the issuer's next IOU state counts the claimed IOU. A failure anywhere flows back as
//! releases. Like the rest of the ledger, every method here only changes memory, appends the
//! [`StoreOp`]s to commit, and queues messages that [`Ledger::take_outgoing`] hands over after
//! the commit.

use pkarr::PublicKey;

use crate::amount::{Amount, Asset};
use crate::channel::{Answer, Rejection};
use crate::condition::{WitnessCondition, WitnessProof, payment_hash};
use crate::encoding::{Reader, Writer};
use crate::forward::{FeePolicy, Hop, Onward};
use crate::ledger::{
    Direction, ForwardRecord, HashlockRecord, HashlockRole, HashlockStatus, IouKey, Ledger,
    LedgerError, PaymentRecord, PaymentStatus, ProofRecord, StoreOp, in_record, line_record,
    out_record,
};
use crate::message::{Message, Reply};
use crate::objects::{Condition, ConditionalIou, ReleaseReason};
use crate::signed::Signed;

/// One part of a routed payment: the keys it passes through and what each must receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePart {
    /// `hops[0]` is my peer (I issue it `hops[0].amount`); the last hop is the payee and its
    /// amount is what the payee receives from this part.
    pub hops: Vec<Hop>,
}

/// A payment secret to publish on a witness log (the shell does the I/O).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// `SHA-256(p)`.
    pub hash: [u8; 32],
    /// The secret.
    pub p: [u8; 32],
    /// The condition the proof must meet.
    pub condition: WitnessCondition,
    /// The hard deadline.
    pub expires_at: u64,
}

/// A new payment secret for [`Ledger::add_hashlock`].
#[derive(Clone, Debug)]
pub struct NewHashlock {
    /// The secret (random, from the shell).
    pub p: [u8; 32],
    /// Payee (an invoice) or payer (payer-published).
    pub role: HashlockRole,
    /// Who receives.
    pub payee: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// What the payee must receive.
    pub amount: Amount,
    /// The witness condition (its hash must be `SHA-256(p)`).
    pub condition: WitnessCondition,
    /// The hard deadline T*.
    pub expires_at: u64,
    /// Memo.
    pub memo: String,
}

pub(crate) fn encode_condition(c: &WitnessCondition) -> Vec<u8> {
    let mut w = Writer::new();
    c.encode(&mut w);
    w.into_bytes()
}

/// Decodes a stored condition (the store is trusted, so a failure means corruption).
pub fn decode_condition(bytes: &[u8]) -> Option<WitnessCondition> {
    let mut r = Reader::new(bytes);
    let c = WitnessCondition::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some(c)
}

impl Ledger {
    /// My fee policy for forwarding to `peer` in `asset`.
    pub fn fees(&self, peer: &PublicKey, asset: &Asset) -> Option<FeePolicy> {
        self.channel(peer, asset).map(|c| c.fees)
    }

    /// Sets my fee policy for forwarding to `peer` in `asset` (the channel must exist).
    pub fn set_fees(
        &mut self,
        peer: &PublicKey,
        asset: &Asset,
        fees: FeePolicy,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        let channel = self
            .channels
            .get_mut(&(peer.clone(), asset.clone()))
            .ok_or_else(|| LedgerError::NoLine {
                peer: peer.to_z32(),
                asset: asset.to_string(),
            })?;
        channel.fees = fees;
        ops.push(StoreOp::PutLine(line_record(channel)));
        Ok(())
    }

    /// Messages to send now that the batch is committed.
    pub fn take_outgoing(&mut self) -> Vec<(PublicKey, Message)> {
        std::mem::take(&mut self.outgoing)
    }

    fn send(&mut self, to: &PublicKey, message: Message, key: IouKey, dir: Direction, now: u64) {
        self.last_sent.insert((key, dir), now);
        self.outgoing.push((to.clone(), message));
    }

    /// A payment secret I hold, by hash.
    pub fn hashlock(&self, hash: &[u8; 32]) -> Option<&HashlockRecord> {
        self.hashlocks.get(hash)
    }

    /// Records a new payment secret: an invoice (payee) or a payer-published payment.
    pub fn add_hashlock(
        &mut self,
        new: NewHashlock,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<HashlockRecord, LedgerError> {
        let hash = payment_hash(&new.p);
        if new.condition.hash != hash {
            return Err(LedgerError::BadCondition(
                "the condition's hash is not SHA-256 of the secret".into(),
            ));
        }
        if new.amount.is_zero() {
            return Err(LedgerError::Offer(crate::OfferError::ZeroAmount));
        }
        if new.expires_at <= now {
            return Err(LedgerError::BadCondition("the deadline has passed".into()));
        }
        if self.hashlocks.contains_key(&hash) {
            return Err(LedgerError::BadCondition(
                "a payment with this hash exists".into(),
            ));
        }
        let record = HashlockRecord {
            hash,
            p: new.p,
            role: new.role,
            payee: new.payee,
            asset: new.asset,
            amount: new.amount,
            condition: encode_condition(&new.condition),
            expires_at: new.expires_at,
            memo: new.memo,
            status: HashlockStatus::Open,
            proof: None,
            issued: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        ops.push(StoreOp::PutHashlock(record.clone()));
        self.hashlocks.insert(hash, record.clone());
        Ok(record)
    }

    pub(crate) fn set_hashlock_status(
        &mut self,
        hash: &[u8; 32],
        status: HashlockStatus,
        proof: Option<&WitnessProof>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(h) = self.hashlocks.get_mut(hash) else {
            return;
        };
        if h.status == status || matches!(h.status, HashlockStatus::Done) {
            return;
        }
        h.status = status;
        if let Some(proof) = proof {
            h.proof = Some(proof.to_bytes());
        }
        h.updated_at = now;
        ops.push(StoreOp::PutHashlock(h.clone()));
        let role = h.role;
        let done = status == HashlockStatus::Done;
        // A payer-published payment may have paid a settlement's endpoint key: its IOUs and
        // proof are the evidence (cloned only then: this is on every routed payment's path).
        let proved = (role == HashlockRole::Payer && done).then(|| h.clone());
        if matches!(status, HashlockStatus::Done | HashlockStatus::Failed) {
            self.hashlocks.remove(hash);
            if role == HashlockRole::Swap {
                self.settlement_hashlock_finished(hash, done, now, ops);
            }
            if let Some(lock) = proved {
                self.settlement_payout_proved(&lock, now, ops);
            }
        }
    }

    /// Starts a routed payment: one conditional IOU per part, each to the part's first hop with
    /// the instructions for the rest of its route. Nothing changes unless every part can be
    /// offered. With `payer_secret`, I publish the secret myself once every part has been issued
    /// to the payee (the offline-receiver flow); the condition's hash must be its hash.
    #[allow(clippy::too_many_arguments)]
    pub fn pay_routed(
        &mut self,
        payee: &PublicKey,
        asset: &Asset,
        parts: Vec<RoutePart>,
        condition: WitnessCondition,
        expires_at: u64,
        payment_id: [u8; 32],
        memo: String,
        payer_secret: Option<[u8; 32]>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Vec<(PublicKey, Signed<ConditionalIou>)>, LedgerError> {
        if parts.is_empty() {
            return Err(LedgerError::BadRoute("no route".into()));
        }
        if expires_at <= now {
            return Err(LedgerError::BadCondition("the deadline has passed".into()));
        }
        if self.pending.contains_key(&payment_id) {
            return Err(LedgerError::BadRoute("payment id in use".into()));
        }
        let mut delivered = Amount::ZERO;
        let mut per_channel: Vec<(PublicKey, Amount)> = Vec::new();
        for part in &parts {
            let (Some(first), Some(last)) = (part.hops.first(), part.hops.last()) else {
                return Err(LedgerError::BadRoute("an empty route".into()));
            };
            if part.hops.len() > crate::forward::MAX_HOPS + 1 {
                return Err(LedgerError::BadRoute(format!(
                    "more than {} hops",
                    crate::forward::MAX_HOPS + 1
                )));
            }
            if last.next != *payee {
                return Err(LedgerError::BadRoute(
                    "a route must end at the payee".into(),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for hop in &part.hops {
                if hop.next == self.me || !seen.insert(hop.next.clone()) {
                    return Err(LedgerError::BadRoute(
                        "a route may not visit a key twice or pass through the payer".into(),
                    ));
                }
                if hop.amount.is_zero() {
                    return Err(LedgerError::BadRoute("a hop amount is zero".into()));
                }
            }
            if part.hops.windows(2).any(|w| w[1].amount > w[0].amount) {
                return Err(LedgerError::BadRoute(
                    "amounts must not grow along the route".into(),
                ));
            }
            if !self.peers.contains_key(&first.next) {
                return Err(LedgerError::UnknownPeer(first.next.to_z32()));
            }
            delivered = delivered
                .checked_add(last.amount)
                .ok_or(LedgerError::Offer(crate::OfferError::Overflow))?;
            match per_channel.iter_mut().find(|(p, _)| *p == first.next) {
                Some((_, sum)) => {
                    *sum = sum
                        .checked_add(first.amount)
                        .ok_or(LedgerError::Offer(crate::OfferError::Overflow))?
                }
                None => per_channel.push((first.next.clone(), first.amount)),
            }
        }
        for (peer, amount) in &per_channel {
            let channel = self
                .channel(peer, asset)
                .ok_or_else(|| LedgerError::NoLine {
                    peer: peer.to_z32(),
                    asset: asset.to_string(),
                })?;
            channel
                .can_offer(*amount, memo.len())
                .map_err(|e| match e {
                    crate::OfferError::OverIssueLimit { available } => {
                        LedgerError::OverIssueLimit {
                            available: asset.format(Amount::from_minor(available)),
                            asset: asset.to_string(),
                        }
                    }
                    e => LedgerError::Offer(e),
                })?;
        }
        if let Some(p) = payer_secret {
            self.add_hashlock(
                NewHashlock {
                    p,
                    role: HashlockRole::Payer,
                    payee: payee.clone(),
                    asset: asset.clone(),
                    amount: delivered,
                    condition: condition.clone(),
                    expires_at,
                    memo: memo.clone(),
                },
                now,
                ops,
            )?;
        }
        let mut sent = Vec::new();
        for part in parts {
            let first = part.hops[0].clone();
            let onward = Onward {
                hops: part.hops[1..].to_vec(),
                payer_publishes: payer_secret.is_some(),
            };
            let Some(channel) = self.channels.get_mut(&(first.next.clone(), asset.clone())) else {
                continue;
            };
            // Checked above for the sum per channel, so this cannot fail.
            let iou = channel.offer_with(
                &self.signer,
                first.amount,
                Condition::WitnessCommit(condition.clone()),
                Some(onward.clone()),
                payment_id,
                expires_at,
                memo.clone(),
            )?;
            ops.push(StoreOp::PutLine(line_record(channel)));
            let key = (first.next.clone(), asset.clone(), iou.body().id);
            if let Ok(record) = out_record(channel, key.2) {
                ops.push(StoreOp::PutConditional(record));
            }
            self.part_of.insert(key.clone(), payment_id);
            self.send(
                &first.next,
                Message::Forward(iou.clone(), onward),
                key,
                Direction::Out,
                now,
            );
            sent.push((first.next, iou));
        }
        let record = PaymentRecord {
            entry: payment_id,
            payment_id,
            dir: Direction::Out,
            peer: payee.clone(),
            asset: asset.clone(),
            amount: delivered,
            status: PaymentStatus::Pending,
            memo,
            created_at: now,
            updated_at: now,
        };
        ops.push(StoreOp::PutPayment(record.clone()));
        self.pending.insert(payment_id, record);
        Ok(sent)
    }

    /// A holder accepted one of my IOUs: a direct payment is then complete, and so is a routed
    /// one whose claim came first.
    pub(crate) fn part_accepted(&mut self, key: &IouKey, now: u64, ops: &mut Vec<StoreOp>) {
        // A direct IOU is paid once accepted; a routed one once claimed, and its claim may
        // have come before this acceptance.
        let paid = self
            .channel(&key.0, &key.1)
            .and_then(|c| c.out_conditionals().get(&key.2))
            .is_some_and(|c| c.iou.body().condition.witness().is_none() || c.claimed);
        if paid {
            self.finish_payment(key, PaymentStatus::Completed, now, ops);
        }
    }

    /// One of my IOUs was released or expired: its payment failed (a later proof still
    /// completes it, if the payee got enough by other parts).
    pub(crate) fn part_failed(
        &mut self,
        key: &IouKey,
        why: &str,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        self.finish_payment(key, PaymentStatus::Failed(why.to_string()), now, ops);
    }

    fn finish_payment(
        &mut self,
        key: &IouKey,
        status: PaymentStatus,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(payment_id) = self.part_of.get(key).copied() else {
            return;
        };
        let Some(record) = self.pending.get_mut(&payment_id) else {
            return;
        };
        if matches!(record.status, PaymentStatus::Failed(_))
            && matches!(status, PaymentStatus::Failed(_))
        {
            return;
        }
        record.status = status;
        record.updated_at = now;
        ops.push(StoreOp::PutPayment(record.clone()));
        let failure = match &record.status {
            PaymentStatus::Failed(why) => Some(why.clone()),
            _ => None,
        };
        if matches!(record.status, PaymentStatus::Completed) {
            self.pending.remove(&payment_id);
            self.part_of.retain(|_, id| *id != payment_id);
        }
        self.settlement_payment_finished(&payment_id, failure.as_deref(), now, ops);
        if let Some(why) = &failure {
            self.settlement_payout_failed(&payment_id, why, now, ops);
        }
    }

    /// My IOU `out` (to a downstream holder) failed: release the IOU it forwards, if any.
    pub(crate) fn release_upstream(
        &mut self,
        out: &IouKey,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), Rejection> {
        let Some(inn) = self.fwd_out.get(out).cloned() else {
            return Ok(());
        };
        self.release_in(&inn, ReleaseReason::PaymentFailed, now, ops)
    }

    fn release_in(
        &mut self,
        inn: &IouKey,
        reason: ReleaseReason,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), Rejection> {
        let Some(channel) = self.channels.get_mut(&(inn.0.clone(), inn.1.clone())) else {
            return Ok(());
        };
        if let Some(release) = channel.release_in(&self.signer, inn.2, reason)? {
            ops.push(StoreOp::PutConditional(in_record(channel, inn.2)?));
            self.send(
                &inn.0,
                Message::Release(release),
                inn.clone(),
                Direction::In,
                now,
            );
        }
        Ok(())
    }

    /// Forgets the forwarding links whose IOUs are now both resolved.
    pub(crate) fn forget_links(
        &mut self,
        peer: &PublicKey,
        asset: &Asset,
        dir: Direction,
        ids: &[u64],
        ops: &mut Vec<StoreOp>,
    ) {
        for id in ids {
            let key = (peer.clone(), asset.clone(), *id);
            self.last_sent.remove(&(key.clone(), dir));
            let (inn, out) = match dir {
                Direction::In => match self.fwd_in.get(&key) {
                    Some(f) => (key.clone(), (f.out_peer.clone(), f.asset.clone(), f.out_id)),
                    None => continue,
                },
                Direction::Out => {
                    if let Some(payment_id) = self.part_of.remove(&key)
                        && !self.part_of.values().any(|p| *p == payment_id)
                    {
                        self.pending.remove(&payment_id);
                    }
                    match self.fwd_out.get(&key) {
                        Some(inn) => (inn.clone(), key.clone()),
                        None => continue,
                    }
                }
            };
            let in_open = self.is_open(&inn, Direction::In);
            let out_open = self.is_open(&out, Direction::Out);
            if !in_open && !out_open {
                self.fwd_in.remove(&inn);
                self.fwd_out.remove(&out);
                ops.push(StoreOp::DeleteForward {
                    asset: inn.1.clone(),
                    in_peer: inn.0.clone(),
                    in_id: inn.2,
                });
            }
        }
    }

    fn is_open(&self, key: &IouKey, dir: Direction) -> bool {
        self.channel(&key.0, &key.1).is_some_and(|c| match dir {
            Direction::In => c.in_conditionals().contains_key(&key.2),
            Direction::Out => c.out_conditionals().contains_key(&key.2),
        })
    }

    /// A routed IOU offered to me, with where to forward it.
    pub(crate) fn handle_forward(
        &mut self,
        from: &PublicKey,
        iou: Signed<ConditionalIou>,
        onward: Onward,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        iou.verify().map_err(|e| Rejection::BadSignature(e.kind))?;
        let body = iou.body().clone();
        if body.line.issuer != *from || body.line.holder != self.me {
            return Err(Rejection::WrongLine(
                "an offer must be issued by the sender to this node".into(),
            ));
        }
        let Some(condition) = body.condition.witness().cloned() else {
            return Err(Rejection::WrongLine(
                "a forwarded IOU must carry a witness condition".into(),
            ));
        };
        let asset = body.line.asset.clone();
        self.open_channel_for_offer(from, &asset, ops)?;
        let held = self
            .channel(from, &asset)
            .is_some_and(|c| c.in_conditionals().contains_key(&body.id));
        let veto = if held {
            None
        } else {
            self.forward_veto(from, &body, &condition, &onward)?
        };
        let Some(channel) = self.channels.get_mut(&(from.clone(), asset.clone())) else {
            return Err(Rejection::UnknownAsset(asset.to_string()));
        };
        let (answer, changed) = channel.handle_offer(&self.signer, iou, now, veto)?;
        if changed {
            ops.push(StoreOp::PutConditional(in_record(channel, body.id)?));
            if answer.is_accepted() {
                let inn = (from.clone(), asset.clone(), body.id);
                match onward.hops.first() {
                    Some(_) => self.forward(inn, &body, onward, now, ops)?,
                    None => self.part_arrived(&body, &condition, onward.payer_publishes, now, ops),
                }
            }
        }
        Ok(match answer {
            Answer::Accepted(a) => Reply::Accepted(a),
            Answer::Released(r) => Reply::Released(r),
        })
    }

    /// An offer in an asset I have no line in still gets a definite, stored answer: a channel
    /// with zero limits is opened to keep the release, so a resent offer gets the same release
    /// even after I open the line. A peer cannot make me open more than a few such channels.
    pub(crate) fn open_channel_for_offer(
        &mut self,
        from: &PublicKey,
        asset: &Asset,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), Rejection> {
        let key = (from.clone(), asset.clone());
        if self.channels.contains_key(&key) {
            return Ok(());
        }
        let held = self.channels.keys().filter(|(p, _)| p == from).count();
        if held >= crate::ledger::MAX_ASSETS_PER_PEER {
            return Err(Rejection::UnknownAsset(asset.to_string()));
        }
        let channel = crate::channel::Channel::new(
            self.me.clone(),
            from.clone(),
            asset.clone(),
            crate::channel::Limits::default(),
        );
        ops.push(StoreOp::PutLine(line_record(&channel)));
        self.channels.insert(key, channel);
        Ok(())
    }

    /// Why I would refuse a routed IOU, apart from my accept limit (checked by the channel).
    fn forward_veto(
        &self,
        from: &PublicKey,
        body: &ConditionalIou,
        condition: &WitnessCondition,
        onward: &Onward,
    ) -> Result<Option<ReleaseReason>, Rejection> {
        // Any listed log's proof would make it payable: one log I do not accept is enough.
        if self.witness_policy.check(condition).is_err() {
            return Ok(Some(ReleaseReason::WitnessNotAccepted));
        }
        let Some(next) = onward.hops.first() else {
            if onward.payer_publishes {
                return Ok(None);
            }
            let matches = self.hashlocks.get(&condition.hash).is_some_and(|h| {
                matches!(h.role, HashlockRole::Payee | HashlockRole::Swap)
                    && matches!(h.status, HashlockStatus::Open | HashlockStatus::Publishing)
                    && h.asset == body.line.asset
                    && h.expires_at == body.expires_at
                    && h.condition == encode_condition(condition)
            });
            return Ok((!matches).then_some(ReleaseReason::UnknownPayment));
        };
        if next.next == *from || next.next == self.me {
            return Ok(Some(ReleaseReason::CannotForward));
        }
        let Some(out) = self.channel(&next.next, &body.line.asset) else {
            return Ok(Some(ReleaseReason::CannotForward));
        };
        if !self.peers.contains_key(&next.next) {
            return Ok(Some(ReleaseReason::CannotForward));
        }
        let Some(needed) = out.fees.amount_to_receive(next.amount) else {
            return Ok(Some(ReleaseReason::FeeTooLow));
        };
        if body.amount < needed {
            return Ok(Some(ReleaseReason::FeeTooLow));
        }
        if out.can_offer(next.amount, body.memo.len()).is_err() {
            return Ok(Some(ReleaseReason::CannotForward));
        }
        // The IOU I issue carries the same condition and deadline, so the hop rule holds.
        Ok(None)
    }

    /// Issues the next IOU of a route for the incoming IOU `inn` I just accepted.
    fn forward(
        &mut self,
        inn: IouKey,
        body: &ConditionalIou,
        onward: Onward,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), Rejection> {
        let Some(next) = onward.hops.first().cloned() else {
            return Ok(());
        };
        let rest = Onward {
            hops: onward.hops[1..].to_vec(),
            payer_publishes: onward.payer_publishes,
        };
        let last_hop = rest.hops.is_empty();
        let Some(channel) = self.channels.get_mut(&(next.next.clone(), inn.1.clone())) else {
            return self.release_in(&inn, ReleaseReason::CannotForward, now, ops);
        };
        let out = match channel.offer_with(
            &self.signer,
            next.amount,
            body.condition.clone(),
            Some(rest.clone()),
            body.payment_id,
            body.expires_at,
            body.memo.clone(),
        ) {
            Ok(out) => out,
            // Checked by `forward_veto` in the same batch; kept safe all the same.
            Err(_) => return self.release_in(&inn, ReleaseReason::CannotForward, now, ops),
        };
        let out_key = (next.next.clone(), inn.1.clone(), out.body().id);
        ops.push(StoreOp::PutLine(line_record(channel)));
        ops.push(StoreOp::PutConditional(out_record(channel, out_key.2)?));
        let record = ForwardRecord {
            asset: inn.1.clone(),
            in_peer: inn.0.clone(),
            in_id: inn.2,
            out_peer: out_key.0.clone(),
            out_id: out_key.2,
        };
        ops.push(StoreOp::PutForward(record.clone()));
        self.fwd_in.insert(inn.clone(), record);
        self.fwd_out.insert(out_key.clone(), inn.clone());
        self.send(
            &next.next,
            Message::Forward(out.clone(), rest),
            out_key,
            Direction::Out,
            now,
        );
        if last_hop && onward.payer_publishes {
            self.outgoing.push((inn.0.clone(), Message::Issued(out)));
        }
        Ok(())
    }

    /// The payee's side: a part arrived and was accepted. Once the accepted parts reach the
    /// invoice's amount, the secret is published.
    fn part_arrived(
        &mut self,
        body: &ConditionalIou,
        condition: &WitnessCondition,
        payer_publishes: bool,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        if payer_publishes {
            return;
        }
        let Some(h) = self.hashlocks.get(&condition.hash) else {
            return;
        };
        // A swap's secret comes from paying its invoice ([`Ledger::settlement_paid`]).
        if h.status != HashlockStatus::Open || h.role == HashlockRole::Swap {
            return;
        }
        let arrived = self.accepted_with_hash(&condition.hash, &body.line.asset);
        if arrived >= u128::from(h.amount.minor()) {
            let hash = h.hash;
            self.set_hashlock_status(&hash, HashlockStatus::Publishing, None, now, ops);
        }
    }

    /// The sum of the routed IOUs with `hash` I accepted and have not released.
    pub(crate) fn accepted_with_hash(&self, hash: &[u8; 32], asset: &Asset) -> u128 {
        self.channels
            .values()
            .filter(|c| c.asset() == asset)
            .flat_map(|c| c.in_conditionals().with_hash(hash))
            .filter(|(_, c)| c.answer.is_accepted())
            .map(|(_, c)| u128::from(c.iou.body().amount.minor()))
            .sum()
    }

    /// Secrets to publish now (payee: the whole amount arrived; payer: every part issued),
    /// before their deadline (after it, [`Ledger::tick`] fails them).
    pub fn publications(&self, now: u64) -> Vec<Publication> {
        self.hashlocks
            .values()
            .filter(|h| h.status == HashlockStatus::Publishing && now < h.expires_at)
            .filter_map(|h| {
                Some(Publication {
                    hash: h.hash,
                    p: h.p,
                    condition: decode_condition(&h.condition)?,
                    expires_at: h.expires_at,
                })
            })
            .collect()
    }

    /// The shell published a secret and got a proof: claim and reveal with it.
    pub fn published(
        &mut self,
        hash: &[u8; 32],
        proof: WitnessProof,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        let h = self
            .hashlocks
            .get(hash)
            .ok_or_else(|| LedgerError::UnknownHash(hex::encode(hash)))?;
        let condition = decode_condition(&h.condition)
            .ok_or_else(|| LedgerError::BadCondition("stored condition is corrupt".into()))?;
        let expires_at = h.expires_at;
        self.proof_cache
            .check(&proof, &condition, expires_at)
            .map_err(|e| LedgerError::BadCondition(e.to_string()))?;
        self.learn_proof(hash, &proof, None, now, ops);
        Ok(())
    }

    /// The shell could not publish a secret in time: the payee releases every part (the payer
    /// of a payer-published payment lets its parts expire).
    pub fn publish_failed(&mut self, hash: &[u8; 32], now: u64, ops: &mut Vec<StoreOp>) {
        self.fail_hashlock(hash, ReleaseReason::WitnessUnavailable, now, ops);
    }

    pub(crate) fn fail_hashlock(
        &mut self,
        hash: &[u8; 32],
        reason: ReleaseReason,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(h) = self.hashlocks.get(hash) else {
            return;
        };
        if matches!(h.role, HashlockRole::Payee | HashlockRole::Swap) {
            let parts: Vec<IouKey> = self
                .channels
                .values()
                .flat_map(|c| {
                    c.in_conditionals()
                        .with_hash(hash)
                        .map(|(id, _)| (c.peer().clone(), c.asset().clone(), id))
                })
                .collect();
            for part in parts {
                // Already released, or (impossible without a proof) claimed: nothing to do.
                let _ = self.release_in(&part, reason, now, ops);
            }
        }
        self.set_hashlock_status(hash, HashlockStatus::Failed, None, now, ops);
    }

    /// Expiry: invoices past their deadline release their parts; channels with routed IOUs past
    /// their deadline plus the grace are marked for merging (which lets them expire).
    pub fn tick(&mut self, now: u64, ops: &mut Vec<StoreOp>) {
        let expired: Vec<[u8; 32]> = self
            .hashlocks
            .values()
            .filter(|h| h.status != HashlockStatus::Done && now >= h.expires_at)
            .map(|h| h.hash)
            .collect();
        for hash in expired {
            self.fail_hashlock(&hash, ReleaseReason::Expired, now, ops);
        }
        let grace = self.grace;
        let due: Vec<(PublicKey, Asset)> = self
            .channels
            .values()
            .filter(|c| c.has_mergeable(now, grace))
            .map(|c| (c.peer().clone(), c.asset().clone()))
            .collect();
        for (peer, asset) in due {
            self.mark_dirty(&peer, &asset);
        }
    }

    /// A proof for `hash` from a peer: a claim of the IOUs I issued to it, or a reveal of the
    /// IOUs it issued to me.
    pub(crate) fn handle_proof(
        &mut self,
        from: &PublicKey,
        hash: [u8; 32],
        proof: WitnessProof,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        if payment_hash(&proof.p) != hash {
            return Err(Rejection::BadProof(
                "the secret does not match the payment hash".into(),
            ));
        }
        let assets: Vec<Asset> = self
            .channels
            .keys()
            .filter(|(p, _)| p == from)
            .map(|(_, a)| a.clone())
            .collect();
        let mut matched = false;
        let mut first_error = None;
        for asset in &assets {
            let Some(channel) = self.channels.get_mut(&(from.clone(), asset.clone())) else {
                continue;
            };
            match channel.prove_out(&hash, &proof, true, &mut self.proof_cache) {
                Ok(ids) => {
                    for id in &ids {
                        ops.push(StoreOp::PutConditional(out_record(channel, *id)?));
                    }
                    if !ids.is_empty() {
                        matched = true;
                        self.mark_dirty(from, asset);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !matched && let Some(e) = first_error {
            return Err(e);
        }
        // A reveal: the proof must fulfil an IOU the sender issued to me. Nothing is learned
        // from a proof that fulfils nothing of ours: it is not kept, and it pays no invoice.
        let revealed = matched
            || assets.iter().any(|asset| {
                self.channels
                    .get(&(from.clone(), asset.clone()))
                    .is_some_and(|c| {
                        c.in_conditionals().with_hash(&hash).any(|(_, i)| {
                            i.iou.body().condition.witness().is_some_and(|w| {
                                self.proof_cache
                                    .check(&proof, w, i.iou.body().expires_at)
                                    .is_ok()
                            })
                        })
                    })
            });
        if !revealed {
            // Typically a claim or reveal resent after the IOUs were resolved: harmless, and
            // nothing to do.
            return Ok(Reply::Ok);
        }
        self.learn_proof(&hash, &proof, Some(from), now, ops);
        Ok(Reply::Ok)
    }

    /// I know a proof for `hash`: claim every IOU with that hash I accepted, reveal it to the
    /// holders of those I issued that are not claimed yet, and finish my payment secret.
    fn learn_proof(
        &mut self,
        hash: &[u8; 32],
        proof: &WitnessProof,
        claimed_by: Option<&PublicKey>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let keys: Vec<(PublicKey, Asset)> = self.channels.keys().cloned().collect();
        let mut claims_or_reveals = claimed_by.is_some() || self.hashlocks.contains_key(hash);
        for (peer, asset) in keys {
            let Some(channel) = self.channels.get_mut(&(peer.clone(), asset.clone())) else {
                continue;
            };
            let relevant = channel.in_conditionals().with_hash(hash).next().is_some()
                || channel.out_conditionals().with_hash(hash).next().is_some();
            if !relevant {
                continue;
            }
            // Claims: the IOUs with this hash the peer issued to me.
            let claimed = channel.prove_in(hash, proof, &mut self.proof_cache);
            let mut records = Vec::new();
            for id in &claimed {
                if let Ok(r) = in_record(channel, *id) {
                    records.push(r);
                }
            }
            // Reveals: the IOUs I issued to the peer that it has not claimed.
            let learned = channel
                .prove_out(hash, proof, false, &mut self.proof_cache)
                .unwrap_or_default();
            for id in &learned {
                if let Ok(r) = out_record(channel, *id) {
                    records.push(r);
                }
            }
            let reveal: Vec<u64> = channel
                .out_conditionals()
                .with_hash(hash)
                .filter(|(_, c)| c.proof.is_some() && !c.claimed)
                .filter(|(_, c)| !matches!(c.answer, Some(Answer::Released(_))))
                .map(|(id, _)| id)
                .collect();
            claims_or_reveals |= !records.is_empty();
            ops.extend(records.into_iter().map(StoreOp::PutConditional));
            for id in claimed {
                let key = (peer.clone(), asset.clone(), id);
                let message = Message::Proof {
                    hash: *hash,
                    proof: proof.clone(),
                };
                self.send(&peer, message, key, Direction::In, now);
            }
            if claimed_by != Some(&peer) {
                for id in reveal {
                    let key = (peer.clone(), asset.clone(), id);
                    let message = Message::Proof {
                        hash: *hash,
                        proof: proof.clone(),
                    };
                    self.send(&peer, message, key, Direction::Out, now);
                }
            }
        }
        if claims_or_reveals {
            ops.push(StoreOp::PutProof(ProofRecord {
                hash: *hash,
                proof: proof.to_bytes(),
                at: now,
            }));
        }
        // My payments with a claimed part are complete (only parts with this hash can have
        // become claimed here).
        let done: Vec<IouKey> = self
            .channels
            .iter()
            .flat_map(|((peer, asset), c)| {
                c.out_conditionals()
                    .with_hash(hash)
                    .filter(|(_, o)| o.claimed)
                    .map(move |(id, _)| (peer.clone(), asset.clone(), id))
            })
            .filter(|key| self.part_of.contains_key(key))
            .collect();
        for key in done {
            self.finish_payment(&key, PaymentStatus::Completed, now, ops);
        }
        self.set_hashlock_status(hash, HashlockStatus::Done, Some(proof), now, ops);
    }

    /// The IOU the last hop of a payer-published route issued to the payee, on its way up to
    /// me (the payer) or through me.
    pub(crate) fn handle_issued(
        &mut self,
        from: &PublicKey,
        iou: Signed<ConditionalIou>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        iou.verify().map_err(|e| Rejection::BadSignature(e.kind))?;
        let body = iou.body().clone();
        let Some(condition) = body.condition.witness() else {
            return Err(Rejection::WrongLine("the issued IOU is not routed".into()));
        };
        let hash = condition.hash;
        // I am the payer: count it toward the payment.
        if let Some(h) = self.hashlocks.get_mut(&hash)
            && h.role == HashlockRole::Payer
        {
            let fits = body.line.holder == h.payee
                && body.line.asset == h.asset
                && body.expires_at <= h.expires_at
                && decode_condition(&h.condition).is_some_and(|c| c.implies(condition));
            if !fits {
                return Err(Rejection::WrongLine(
                    "the issued IOU does not match the payment".into(),
                ));
            }
            let bytes = iou.to_bytes();
            if h.status == HashlockStatus::Open && !h.issued.contains(&bytes) {
                h.issued.push(bytes);
                h.updated_at = now;
                let issued: u128 = h
                    .issued
                    .iter()
                    .filter_map(|b| Signed::<ConditionalIou>::decode(b).ok())
                    .map(|i| u128::from(i.body().amount.minor()))
                    .sum();
                if issued >= u128::from(h.amount.minor()) {
                    h.status = HashlockStatus::Publishing;
                }
                ops.push(StoreOp::PutHashlock(h.clone()));
            }
            return Ok(Reply::Ok);
        }
        // I forwarded it: pass it up to whoever issued the IOU I forwarded.
        let ups: Vec<IouKey> = self
            .fwd_out
            .iter()
            .filter(|((peer, asset, id), _)| {
                peer == from
                    && *asset == body.line.asset
                    && self
                        .channel(peer, asset)
                        .and_then(|c| c.out_conditionals().get(id))
                        .is_some_and(|c| {
                            c.iou
                                .body()
                                .condition
                                .witness()
                                .is_some_and(|w| w.hash == hash)
                        })
            })
            .map(|(_, inn)| inn.clone())
            .collect();
        for up in ups {
            self.outgoing
                .push((up.0.clone(), Message::Issued(iou.clone())));
        }
        Ok(Reply::Ok)
    }

    /// Messages about unresolved IOUs that the peer may not have yet, last sent at least
    /// `min_age` seconds ago: unanswered offers (with their instructions), my early releases,
    /// my claims, and reveals of proofs to holders that have not claimed.
    pub fn resend_messages(&mut self, now: u64, min_age: u64) -> Vec<(PublicKey, Message)> {
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for channel in self.channels.values() {
            let peer = channel.peer();
            let asset = channel.asset();
            for (id, c) in channel.out_conditionals() {
                let key = ((peer.clone(), asset.clone(), *id), Direction::Out);
                if self
                    .last_sent
                    .get(&key)
                    .is_some_and(|t| now.saturating_sub(*t) < min_age)
                {
                    continue;
                }
                let message = match (&c.answer, &c.onward, &c.proof) {
                    (None, None, _) => Message::Offer(c.iou.clone()),
                    (None, Some(onward), _) => Message::Forward(c.iou.clone(), onward.clone()),
                    (Some(Answer::Accepted(_)), _, Some(proof)) if !c.claimed => {
                        let Some(w) = c.iou.body().condition.witness() else {
                            continue;
                        };
                        Message::Proof {
                            hash: w.hash,
                            proof: proof.clone(),
                        }
                    }
                    _ => continue,
                };
                out.push((peer.clone(), message));
                sent.push(key);
            }
            for (id, c) in channel.in_conditionals() {
                let key = ((peer.clone(), asset.clone(), *id), Direction::In);
                let Some(w) = c.iou.body().condition.witness() else {
                    continue;
                };
                if self
                    .last_sent
                    .get(&key)
                    .is_some_and(|t| now.saturating_sub(*t) < min_age)
                {
                    continue;
                }
                let message = match (&c.answer, &c.proof) {
                    (Answer::Released(r), _) => Message::Release(r.clone()),
                    (Answer::Accepted(_), Some(proof)) => Message::Proof {
                        hash: w.hash,
                        proof: proof.clone(),
                    },
                    _ => continue,
                };
                out.push((peer.clone(), message));
                sent.push(key);
            }
        }
        for key in sent {
            self.last_sent.insert(key, now);
        }
        out.extend(self.settlement_resends(now, min_age));
        out
    }
}
