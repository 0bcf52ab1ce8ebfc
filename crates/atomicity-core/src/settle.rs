//! Settlements on the ledger: the records of both sides, and how they follow the payments and
//! hashlocks they depend on. See [`crate::settlement`] for the objects and the mechanism.
//!
//! Every step is a change of a [`SettlementRecord`] appended as a [`StoreOp`] to the batch that
//! makes the matching payment change, so a crash never separates them: the payer's credit
//! payment is offered in the commit that moves the settlement to `paying`, the holder's
//! counter-IOU in the commit that moves it to `done`. Nothing that is paid is paid twice.

use pkarr::PublicKey;

use crate::amount::{Amount, Asset};
use crate::channel::Rejection;
use crate::condition::WitnessCondition;
use crate::condition::payment_hash;
use crate::ledger::{
    HashlockRecord, HashlockRole, HashlockStatus, IouKey, Ledger, LedgerError, StoreOp,
};
use crate::message::{Message, Reply};
use crate::objects::ConditionalIou;
use crate::published::EndpointId;
use crate::routed::RoutePart;
use crate::settlement::{
    Evidence, Outcome, SettlementKind, SettlementRequest, SettlementUpdate, payout_payment_id,
    receipt_payment_id,
};
use crate::signed::Signed;

/// Most requests one peer may have open with me (waiting, being paid or paid).
pub const MAX_OPEN_PER_PEER: usize = 64;

/// Which side of a settlement I am.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementRole {
    /// I asked (the holder, or the swapper).
    Requester,
    /// I was asked to pay.
    Payer,
}

impl SettlementRole {
    /// `requester` or `payer`.
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementRole::Requester => "requester",
            SettlementRole::Payer => "payer",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<SettlementRole> {
        match s {
            "requester" => Some(SettlementRole::Requester),
            "payer" => Some(SettlementRole::Payer),
            _ => None,
        }
    }
}

/// Where a settlement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementStatus {
    /// Asked, not paid yet.
    Requested,
    /// The payer started paying (a credit payment is in flight, or its Lightning wallet runs).
    Paying,
    /// The payer paid and said so; the receipt is not in yet.
    Paid,
    /// Paid and receipted: the debt went down (or the swap's IOU was claimed).
    Done,
    /// The payer will not pay (the note says why).
    Refused,
    /// The payment failed (the note says why); nothing is owed for it.
    Failed,
}

impl SettlementStatus {
    /// The name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Requested => "requested",
            SettlementStatus::Paying => "paying",
            SettlementStatus::Paid => "paid",
            SettlementStatus::Done => "done",
            SettlementStatus::Refused => "refused",
            SettlementStatus::Failed => "failed",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<SettlementStatus> {
        Some(match s {
            "requested" => SettlementStatus::Requested,
            "paying" => SettlementStatus::Paying,
            "paid" => SettlementStatus::Paid,
            "done" => SettlementStatus::Done,
            "refused" => SettlementStatus::Refused,
            "failed" => SettlementStatus::Failed,
            _ => return None,
        })
    }

    /// Done, refused or failed.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SettlementStatus::Done | SettlementStatus::Refused | SettlementStatus::Failed
        )
    }
}

/// One settlement as both the ledger and the store keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRecord {
    /// The request's id.
    pub id: [u8; 32],
    /// My side.
    pub role: SettlementRole,
    /// The other side.
    pub peer: PublicKey,
    /// The signed request.
    pub request: Signed<SettlementRequest>,
    /// Where it stands.
    pub status: SettlementStatus,
    /// The method paid through, once chosen.
    pub method: Option<EndpointId>,
    /// What shows the payment, once paid.
    pub evidence: Option<Evidence>,
    /// Why it was refused or failed; what is being paid.
    pub note: String,
    /// Whether the peer has taken my last message about it (the request, or my update).
    pub delivered: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

impl SettlementRecord {
    /// The request's body.
    pub fn body(&self) -> &SettlementRequest {
        self.request.body()
    }
}

/// What the payer's node needs to pay a request through one method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayWith {
    /// Pay the holder's endpoint key over a direct line (credit reassignment).
    Credit(PublicKey),
    /// Pay the holder's endpoint key over a route, publishing the secret myself once the last
    /// hop issued to the key (credit reassignment when I have no line to it).
    Routed {
        /// The endpoint key.
        payee: PublicKey,
        /// The route, quoted: `hops[0]` is my peer, the last hop the key.
        part: RoutePart,
        /// The witness condition on `SHA-256(secret)`.
        condition: WitnessCondition,
        /// The hard deadline.
        expires_at: u64,
        /// The secret I publish.
        secret: [u8; 32],
    },
    /// Pay the request's invoice; the node runs the wallet next.
    Lightning,
    /// Paid outside (on-chain, cash): this is what the payer says it paid.
    Reference(String),
}

impl Ledger {
    /// A settlement, by id.
    pub fn settlement(&self, id: &[u8; 32]) -> Option<&SettlementRecord> {
        self.settlements.get(id)
    }

    /// Every settlement, newest first.
    pub fn settlements(&self) -> Vec<&SettlementRecord> {
        let mut all: Vec<&SettlementRecord> = self.settlements.values().collect();
        all.sort_by_key(|r| (std::cmp::Reverse(r.created_at), r.id));
        all
    }

    /// What `peer` owes me in `asset` (negative: I owe it), or `None` without a line.
    pub fn net_with(&self, peer: &PublicKey, asset: &Asset) -> Option<i128> {
        self.channel(peer, asset)
            .and_then(|c| c.view())
            .map(|v| v.net)
    }

    fn put_settlement(&mut self, record: SettlementRecord, ops: &mut Vec<StoreOp>) {
        ops.push(StoreOp::PutSettlement(Box::new(record.clone())));
        self.settlements.insert(record.id, record);
    }

    fn update_settlement(
        &mut self,
        id: &[u8; 32],
        now: u64,
        ops: &mut Vec<StoreOp>,
        change: impl FnOnce(&mut SettlementRecord),
    ) {
        let Some(record) = self.settlements.get_mut(id) else {
            return;
        };
        change(record);
        record.updated_at = now;
        ops.push(StoreOp::PutSettlement(Box::new(record.clone())));
    }

    /// Signs and records my request, and queues it for the payer. For a settle request the
    /// payer must owe me at least the amount. A Lightning request's conditional IOU is the
    /// caller's next step ([`Ledger::pay_routed`] with [`receipt_payment_id`], same batch).
    pub fn request_settlement(
        &mut self,
        body: SettlementRequest,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<SettlementRecord, LedgerError> {
        self.check_settlement_request(&body, now)?;
        if body.methods.is_empty() {
            return Err(LedgerError::Settlement(
                "a request accepts at least one method".into(),
            ));
        }
        let request = Signed::sign(body, self.signer.key());
        let record = SettlementRecord {
            id: request.body().id,
            role: SettlementRole::Requester,
            peer: request.body().to.clone(),
            request: request.clone(),
            status: SettlementStatus::Requested,
            method: None,
            evidence: None,
            note: String::new(),
            delivered: false,
            created_at: now,
            updated_at: now,
        };
        self.put_settlement(record.clone(), ops);
        self.settle_sent.insert(record.id, now);
        // First in the batch: a Lightning request's IOU, issued in the same batch, must find
        // the request already taken.
        self.outgoing
            .insert(0, (record.peer.clone(), Message::Settle(Box::new(request))));
        Ok(record)
    }

    /// Whether [`Ledger::request_settlement`] would take `body` now; changes nothing.
    pub fn check_settlement_request(
        &self,
        body: &SettlementRequest,
        now: u64,
    ) -> Result<(), LedgerError> {
        if body.from != self.me {
            return Err(LedgerError::Settlement("a request is signed by me".into()));
        }
        // What the decoder refuses, refused here with words (a request that does not decode
        // could not be sent, nor stored).
        if body.amount.is_zero() {
            return Err(LedgerError::Settlement(
                "the amount must be greater than zero".into(),
            ));
        }
        if body.methods.len() > crate::settlement::MAX_METHODS {
            return Err(LedgerError::Settlement(
                "a request accepts at most 16 methods".into(),
            ));
        }
        if body.invoice.len() > crate::settlement::MAX_INVOICE_LEN || !body.invoice.is_ascii() {
            return Err(LedgerError::Settlement(
                "the invoice is not an ASCII BOLT11 invoice of at most 2048 bytes".into(),
            ));
        }
        if body.memo.len() > crate::objects::MAX_MEMO_LEN {
            return Err(LedgerError::Settlement(
                "the memo is longer than 256 bytes".into(),
            ));
        }
        if body.kind == SettlementKind::Swap && body.condition.is_none() {
            return Err(LedgerError::Settlement(
                "a swap needs the condition of its IOU".into(),
            ));
        }
        if body.condition.is_some() && body.invoice.is_empty() {
            return Err(LedgerError::Settlement(
                "a conditional IOU comes only with an invoice to pay".into(),
            ));
        }
        if !self.peers.contains_key(&body.to) {
            return Err(LedgerError::UnknownPeer(body.to.to_z32()));
        }
        if self.settlements.contains_key(&body.id) {
            return Err(LedgerError::Settlement(
                "a settlement with this id exists".into(),
            ));
        }
        if body.expires_at <= now {
            return Err(LedgerError::Settlement("the request has expired".into()));
        }
        if body.kind == SettlementKind::Settle {
            let owed = self.net_with(&body.to, &body.asset).unwrap_or(0);
            if i128::from(body.amount.minor()) > owed {
                return Err(LedgerError::Settlement(format!(
                    "over what is owed: {} owes you {}",
                    body.to.to_z32(),
                    format_signed(&body.asset, owed)
                )));
            }
        }
        Ok(())
    }

    /// A request from `from`.
    pub(crate) fn handle_settle(
        &mut self,
        from: &PublicKey,
        request: Signed<SettlementRequest>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        request
            .verify()
            .map_err(|e| Rejection::BadSignature(e.kind))?;
        let body = request.body().clone();
        if body.from != *from || body.to != self.me {
            return Err(Rejection::BadSettlement(
                "a request must be from its sender to this node".into(),
            ));
        }
        if let Some(held) = self.settlements.get(&body.id) {
            return if held.request == request {
                Ok(Reply::Ok)
            } else {
                Err(Rejection::BadSettlement(
                    "another request with this id exists".into(),
                ))
            };
        }
        if body.expires_at <= now {
            return Err(Rejection::BadSettlement("the request has expired".into()));
        }
        let open = self
            .settlements
            .values()
            .filter(|r| r.peer == *from && r.role == SettlementRole::Payer)
            .filter(|r| !r.status.is_final())
            .count();
        if open >= MAX_OPEN_PER_PEER {
            return Err(Rejection::BadSettlement(format!(
                "you have {MAX_OPEN_PER_PEER} requests open with me already"
            )));
        }
        if body.kind == SettlementKind::Settle {
            let owed = self.net_with(from, &body.asset).map_or(0, |n| -n);
            if i128::from(body.amount.minor()) > owed {
                return Err(Rejection::BadSettlement(format!(
                    "over what is owed: you ask {} and I owe you {}",
                    body.asset.format(body.amount),
                    format_signed(&body.asset, owed)
                )));
            }
        }
        if let Some(condition) = &body.condition {
            if let Err(log) = self.witness_policy.check(condition) {
                return Err(Rejection::BadSettlement(format!(
                    "the condition names witness log {log}, which I do not accept"
                )));
            }
            if self.hashlocks.contains_key(&condition.hash) {
                return Err(Rejection::BadSettlement(
                    "a payment with this hash exists".into(),
                ));
            }
            let lock = HashlockRecord {
                hash: condition.hash,
                p: [0; 32],
                role: HashlockRole::Swap,
                payee: self.me.clone(),
                asset: body.asset.clone(),
                amount: body.amount,
                condition: crate::routed::encode_condition(condition),
                expires_at: body.expires_at,
                memo: body.memo.clone(),
                status: HashlockStatus::Open,
                proof: None,
                issued: Vec::new(),
                created_at: now,
                updated_at: now,
            };
            ops.push(StoreOp::PutHashlock(lock.clone()));
            self.hashlocks.insert(lock.hash, lock);
        }
        self.put_settlement(
            SettlementRecord {
                id: body.id,
                role: SettlementRole::Payer,
                peer: from.clone(),
                request,
                status: SettlementStatus::Requested,
                method: None,
                evidence: None,
                note: String::new(),
                delivered: true,
                created_at: now,
                updated_at: now,
            },
            ops,
        );
        Ok(Reply::Ok)
    }

    fn payer_record(&self, id: &[u8; 32]) -> Result<&SettlementRecord, LedgerError> {
        let record = self
            .settlements
            .get(id)
            .ok_or_else(|| LedgerError::Settlement("no such settlement".into()))?;
        if record.role != SettlementRole::Payer {
            return Err(LedgerError::Settlement(
                "this settlement is one I asked for; the other side pays it".into(),
            ));
        }
        Ok(record)
    }

    /// Whether the conditional IOU of a Lightning request has arrived in full (accepted, not
    /// released), so that paying the invoice would be paid back.
    pub fn swap_ready(&self, hash: &[u8; 32]) -> bool {
        self.hashlocks.get(hash).is_some_and(|h| {
            h.role == HashlockRole::Swap
                && h.status == HashlockStatus::Open
                && self.accepted_with_hash(hash, &h.asset) >= u128::from(h.amount.minor())
        })
    }

    /// The payer starts paying request `id` through `method`. A credit payment is offered in
    /// this same batch; a Lightning payment is recorded as started before the wallet runs (a
    /// restart finds it `paying` and asks the wallet again, which answers with the same
    /// preimage); a reference is final at once.
    #[allow(clippy::too_many_arguments)]
    pub fn pay_settlement(
        &mut self,
        id: &[u8; 32],
        method: EndpointId,
        with: PayWith,
        now: u64,
        expires_at: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        let record = self.payer_record(id)?.clone();
        if record.status != SettlementStatus::Requested {
            return Err(LedgerError::Settlement(format!(
                "the settlement is {}, not waiting to be paid",
                record.status.as_str()
            )));
        }
        let body = record.body().clone();
        if body.expires_at <= now {
            return Err(LedgerError::Settlement("the request has expired".into()));
        }
        if !body.methods.contains(&method) {
            return Err(LedgerError::Settlement(format!(
                "the request does not accept the method {method}"
            )));
        }
        if body.kind == SettlementKind::Settle && body.condition.is_none() {
            let owed = self.net_with(&record.peer, &body.asset).map_or(0, |n| -n);
            if i128::from(body.amount.minor()) > owed {
                return Err(LedgerError::Settlement(format!(
                    "over what is owed: asked {}, I owe {}",
                    body.asset.format(body.amount),
                    format_signed(&body.asset, owed)
                )));
            }
        }
        let note = match &with {
            PayWith::Credit(payee) => {
                if *payee == self.me || *payee == record.peer {
                    return Err(LedgerError::Settlement(
                        "the endpoint key must be a third party".into(),
                    ));
                }
                self.pay(
                    payee,
                    &body.asset,
                    body.amount,
                    payout_payment_id(id),
                    format!("settlement for {}", record.peer.to_z32()),
                    now,
                    expires_at,
                    ops,
                )?;
                format!("paying {}", payee.to_z32())
            }
            PayWith::Routed {
                payee,
                part,
                condition,
                expires_at,
                secret,
            } => {
                if *payee == self.me || *payee == record.peer {
                    return Err(LedgerError::Settlement(
                        "the endpoint key must be a third party".into(),
                    ));
                }
                self.pay_routed(
                    payee,
                    &body.asset,
                    vec![part.clone()],
                    condition.clone(),
                    *expires_at,
                    payout_payment_id(id),
                    format!("settlement for {}", record.peer.to_z32()),
                    Some(*secret),
                    now,
                    ops,
                )?;
                format!("paying {} through {} hops", payee.to_z32(), part.hops.len())
            }
            PayWith::Lightning => {
                let Some(condition) = &body.condition else {
                    return Err(LedgerError::Settlement(
                        "the request carries no invoice with a conditional IOU".into(),
                    ));
                };
                if !self.swap_ready(&condition.hash) {
                    return Err(LedgerError::Settlement(
                        "the conditional IOU for this invoice has not arrived in full".into(),
                    ));
                }
                "running the Lightning wallet".to_string()
            }
            PayWith::Reference(text) => {
                if text.is_empty() || text.len() > crate::settlement::MAX_NOTE_LEN {
                    return Err(LedgerError::Settlement(
                        "a payment reference is 1 to 512 bytes".into(),
                    ));
                }
                String::new()
            }
        };
        let status = match with {
            PayWith::Reference(text) => {
                self.update_settlement(id, now, ops, |r| {
                    r.status = SettlementStatus::Paying;
                    r.method = Some(method);
                });
                return self.settlement_paid(id, Evidence::Reference(text), now, ops);
            }
            _ => SettlementStatus::Paying,
        };
        self.update_settlement(id, now, ops, |r| {
            r.status = status;
            r.method = Some(method);
            r.note = note;
        });
        Ok(())
    }

    /// The payer's payment is made: record the evidence and tell the requester. A Lightning
    /// preimage also lets me publish it and claim the request's conditional IOU.
    pub fn settlement_paid(
        &mut self,
        id: &[u8; 32],
        evidence: Evidence,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        let record = self.payer_record(id)?.clone();
        if record.status != SettlementStatus::Paying {
            return Err(LedgerError::Settlement(format!(
                "the settlement is {}, not being paid",
                record.status.as_str()
            )));
        }
        if record.method.is_none() {
            return Err(LedgerError::Settlement("no method was chosen".into()));
        }
        if let Evidence::Preimage(p) = &evidence {
            let Some(condition) = &record.body().condition else {
                return Err(LedgerError::Settlement("no invoice in this request".into()));
            };
            let hash = payment_hash(p);
            if hash != condition.hash {
                return Err(LedgerError::Settlement(
                    "the preimage does not hash to the invoice's payment hash".into(),
                ));
            }
            if let Some(h) = self.hashlocks.get_mut(&hash) {
                h.p = *p;
                h.updated_at = now;
                ops.push(StoreOp::PutHashlock(h.clone()));
            }
            self.set_hashlock_status(&hash, HashlockStatus::Publishing, None, now, ops);
        }
        self.update_settlement(id, now, ops, |r| {
            r.status = SettlementStatus::Paid;
            r.evidence = Some(evidence);
            r.note = String::new();
            r.delivered = false;
        });
        self.send_update(id, now);
        Ok(())
    }

    /// The payer will not pay request `id`: tell the requester why, and release its
    /// conditional IOU if one came with it.
    pub fn refuse_settlement(
        &mut self,
        id: &[u8; 32],
        reason: String,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), LedgerError> {
        let record = self.payer_record(id)?.clone();
        if !matches!(
            record.status,
            SettlementStatus::Requested | SettlementStatus::Paying
        ) {
            return Err(LedgerError::Settlement(format!(
                "the settlement is {} and can no longer be refused",
                record.status.as_str()
            )));
        }
        if record.status == SettlementStatus::Paying && record.body().condition.is_none() {
            return Err(LedgerError::Settlement(
                "a credit payment for it is in flight; wait for its outcome".into(),
            ));
        }
        self.refuse(&record, reason, now, ops);
        Ok(())
    }

    fn refuse(
        &mut self,
        record: &SettlementRecord,
        reason: String,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let mut reason = reason;
        cut_to(&mut reason, crate::settlement::MAX_NOTE_LEN);
        if let Some(condition) = &record.body().condition {
            self.fail_hashlock(
                &condition.hash,
                crate::objects::ReleaseReason::Declined,
                now,
                ops,
            );
        }
        self.update_settlement(&record.id, now, ops, |r| {
            r.status = SettlementStatus::Refused;
            r.note = reason;
            r.delivered = false;
        });
        self.send_update(&record.id, now);
    }

    /// Queues my update for the record as it now stands (paid or refused).
    fn send_update(&mut self, id: &[u8; 32], now: u64) {
        let Some((peer, message)) = self
            .settlements
            .get(id)
            .and_then(|r| Some((r.peer.clone(), self.update_message(r)?)))
        else {
            return;
        };
        self.settle_sent.insert(*id, now);
        self.outgoing.push((peer, message));
    }

    /// The signed update that answers the record's request as it now stands.
    fn update_message(&self, record: &SettlementRecord) -> Option<Message> {
        let outcome = match record.status {
            SettlementStatus::Refused => Outcome::Refused(record.note.clone()),
            SettlementStatus::Paid | SettlementStatus::Done => Outcome::Paid {
                method: record.method.clone()?,
                evidence: record.evidence.clone()?,
            },
            _ => return None,
        };
        Some(Message::SettleUpdate(Box::new(Signed::sign(
            SettlementUpdate {
                id: record.id,
                request_hash: record.request.hash(),
                from: self.me.clone(),
                to: record.peer.clone(),
                outcome,
            },
            self.signer.key(),
        ))))
    }

    /// The payer's answer to my request.
    pub(crate) fn handle_settle_update(
        &mut self,
        from: &PublicKey,
        update: Signed<SettlementUpdate>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Reply, Rejection> {
        update
            .verify()
            .map_err(|e| Rejection::BadSignature(e.kind))?;
        let body = update.body().clone();
        let Some(record) = self.settlements.get(&body.id).cloned() else {
            return Err(Rejection::BadSettlement("no such settlement".into()));
        };
        if record.role != SettlementRole::Requester
            || body.from != *from
            || record.peer != *from
            || body.to != self.me
            || body.request_hash != record.request.hash()
        {
            return Err(Rejection::BadSettlement(
                "the update does not answer a request I sent to its sender".into(),
            ));
        }
        // The first answer stands; but a refusal that arrives after the conditional IOU's
        // release (which marked the settlement failed) still records why.
        let refusal_after_failure = record.status == SettlementStatus::Failed
            && matches!(body.outcome, Outcome::Refused(_));
        if (record.status.is_final() && !refusal_after_failure)
            || record.status == SettlementStatus::Paid
        {
            return Ok(Reply::Ok);
        }
        match body.outcome {
            Outcome::Refused(reason) => {
                self.update_settlement(&body.id, now, ops, |r| {
                    r.status = SettlementStatus::Refused;
                    r.note = reason;
                    r.delivered = true;
                });
            }
            Outcome::Paid { method, evidence } => {
                if !record.body().methods.contains(&method) {
                    return Err(Rejection::BadSettlement(
                        "paid through a method the request does not accept".into(),
                    ));
                }
                if let (Evidence::Preimage(p), Some(c)) = (&evidence, &record.body().condition)
                    && payment_hash(p) != c.hash
                {
                    return Err(Rejection::BadSettlement(
                        "the preimage does not hash to the invoice's payment hash".into(),
                    ));
                }
                // A Lightning settlement is receipted by the conditional IOU the payer claims;
                // the others wait for my node to check the evidence (or my user to confirm).
                self.update_settlement(&body.id, now, ops, |r| {
                    r.status = SettlementStatus::Paid;
                    r.method = Some(method);
                    r.evidence = Some(evidence);
                    r.delivered = true;
                });
            }
        }
        Ok(Reply::Ok)
    }

    /// The requester receipts a paid settlement: its counter-IOU to the payer (a direct
    /// payment of the amount, payment id [`receipt_payment_id`]) is offered in this batch.
    pub fn receipt_settlement(
        &mut self,
        id: &[u8; 32],
        now: u64,
        expires_at: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Signed<ConditionalIou>, LedgerError> {
        let record = self
            .settlements
            .get(id)
            .cloned()
            .ok_or_else(|| LedgerError::Settlement("no such settlement".into()))?;
        if record.role != SettlementRole::Requester {
            return Err(LedgerError::Settlement(
                "only the requester gives the receipt".into(),
            ));
        }
        if record.status != SettlementStatus::Paid {
            return Err(LedgerError::Settlement(format!(
                "the settlement is {}; only a paid one is receipted",
                record.status.as_str()
            )));
        }
        if record.body().condition.is_some() {
            return Err(LedgerError::Settlement(
                "a Lightning settlement is receipted by its conditional IOU".into(),
            ));
        }
        let body = record.body().clone();
        let iou = self.pay(
            &record.peer,
            &body.asset,
            body.amount,
            receipt_payment_id(id),
            format!("settlement receipt {}", hex::encode(&id[..8])),
            now,
            expires_at,
            ops,
        )?;
        self.update_settlement(id, now, ops, |r| {
            r.status = SettlementStatus::Done;
            r.note = "receipt issued".into();
        });
        Ok(iou)
    }

    /// The peer took (or refused) my last message about a settlement.
    pub fn settlement_reply(
        &mut self,
        sent: &Message,
        reply: &Reply,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let id = match sent {
            Message::Settle(r) => r.body().id,
            Message::SettleUpdate(u) => u.body().id,
            _ => return,
        };
        let Some(record) = self.settlements.get(&id) else {
            return;
        };
        if record.delivered {
            return;
        }
        match (sent, reply) {
            (Message::Settle(_), Reply::Rejected { text, .. })
                if record.status == SettlementStatus::Requested =>
            {
                let mut note = format!("refused: {text}");
                cut_to(&mut note, crate::settlement::MAX_NOTE_LEN);
                self.update_settlement(&id, now, ops, |r| {
                    r.status = SettlementStatus::Refused;
                    r.note = note;
                    r.delivered = true;
                });
            }
            (_, Reply::Ok | Reply::Rejected { .. }) => {
                self.update_settlement(&id, now, ops, |r| r.delivered = true);
            }
            _ => {}
        }
    }

    /// Settlement messages the peer has not taken yet, last sent at least `min_age` ago.
    pub(crate) fn settlement_resends(
        &mut self,
        now: u64,
        min_age: u64,
    ) -> Vec<(PublicKey, Message)> {
        let due: Vec<SettlementRecord> = self
            .settlements
            .values()
            .filter(|r| !r.delivered)
            .filter(|r| {
                self.settle_sent
                    .get(&r.id)
                    .is_none_or(|t| now.saturating_sub(*t) >= min_age)
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for record in due {
            let message = match record.role {
                SettlementRole::Requester if record.status == SettlementStatus::Requested => {
                    Message::Settle(Box::new(record.request.clone()))
                }
                SettlementRole::Payer => match self.update_message(&record) {
                    Some(m) => m,
                    None => continue,
                },
                _ => continue,
            };
            self.settle_sent.insert(record.id, now);
            out.push((record.peer.clone(), message));
        }
        out
    }

    /// The settlement I am paying with payment id `payment_id` (a payout), if any.
    fn paying_payout(&self, payment_id: &[u8; 32]) -> Option<[u8; 32]> {
        self.settlements
            .values()
            .find(|r| {
                r.role == SettlementRole::Payer
                    && r.status == SettlementStatus::Paying
                    && payout_payment_id(&r.id) == *payment_id
            })
            .map(|r| r.id)
    }

    /// One of my direct IOUs was answered: a settlement's credit payment is then paid (with
    /// the third party's acceptance as evidence) or failed.
    pub(crate) fn settlement_payout_answered(
        &mut self,
        key: &IouKey,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        // On every answer of every payment: cheap when no settlement is being paid.
        if !self
            .settlements
            .values()
            .any(|r| r.role == SettlementRole::Payer && r.status == SettlementStatus::Paying)
        {
            return;
        }
        let Some(out) = self
            .channel(&key.0, &key.1)
            .and_then(|c| c.out_conditionals().get(&key.2))
            .cloned()
        else {
            return;
        };
        // A routed payout is decided by its proof (`settlement_payout_proved`), not by the
        // first hop's answer.
        if out.iou.body().condition.witness().is_some() {
            return;
        }
        let payment_id = out.iou.body().payment_id;
        let Some(id) = self.paying_payout(&payment_id) else {
            return;
        };
        match out.answer {
            Some(crate::channel::Answer::Accepted(acceptance)) => {
                let evidence = Evidence::Credit {
                    iou: Box::new(out.iou),
                    acceptance: Box::new(acceptance),
                };
                let _ = self.settlement_paid(&id, evidence, now, ops);
            }
            Some(crate::channel::Answer::Released(release)) => {
                if let Some(record) = self.settlements.get(&id).cloned() {
                    let reason = format!(
                        "paying {} failed: {}",
                        key.0.to_z32(),
                        release.body().reason
                    );
                    self.refuse(&record, reason, now, ops);
                }
            }
            None => {}
        }
    }

    /// Whether `iou` from `from` is the receipt of a settlement I paid it (taken whatever my
    /// accept limit: it pays back exactly what I paid for `from`).
    pub(crate) fn is_settlement_receipt(&self, from: &PublicKey, iou: &ConditionalIou) -> bool {
        self.settlements.values().any(|r| {
            r.role == SettlementRole::Payer
                && r.peer == *from
                && r.status == SettlementStatus::Paid
                && receipt_payment_id(&r.id) == iou.payment_id
                && r.body().amount == iou.amount
                && r.body().asset == iou.line.asset
        })
    }

    /// A payment secret I published for a payer-published payment is proved: if it paid a
    /// settlement's endpoint key over a route, the issued IOUs and the proof are the evidence.
    pub(crate) fn settlement_payout_proved(
        &mut self,
        lock: &HashlockRecord,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(proof) = lock
            .proof
            .as_deref()
            .and_then(|b| crate::condition::WitnessProof::from_bytes(b).ok())
        else {
            return;
        };
        let issued: Vec<Signed<ConditionalIou>> = lock
            .issued
            .iter()
            .filter_map(|b| Signed::decode(b).ok())
            .collect();
        let Some(payment_id) = issued.first().map(|i| i.body().payment_id) else {
            return;
        };
        let Some(id) = self.paying_payout(&payment_id) else {
            return;
        };
        let evidence = Evidence::Routed {
            issued: issued
                .into_iter()
                .take(crate::settlement::MAX_ROUTED_IOUS)
                .collect(),
            proof: Box::new(proof),
        };
        let _ = self.settlement_paid(&id, evidence, now, ops);
    }

    /// One of my payments failed: a settlement paid by it is refused with the reason.
    pub(crate) fn settlement_payout_failed(
        &mut self,
        payment_id: &[u8; 32],
        why: &str,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(record) = self
            .paying_payout(payment_id)
            .and_then(|id| self.settlements.get(&id))
            .cloned()
        else {
            return;
        };
        self.refuse(
            &record,
            format!("paying the endpoint key failed: {why}"),
            now,
            ops,
        );
    }

    /// I accepted a direct IOU: a requester's receipt of a settlement I paid finishes it.
    pub(crate) fn settlement_receipt_arrived(
        &mut self,
        from: &PublicKey,
        iou: &ConditionalIou,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(id) = self
            .settlements
            .values()
            .find(|r| {
                r.role == SettlementRole::Payer
                    && r.peer == *from
                    && r.status == SettlementStatus::Paid
                    && receipt_payment_id(&r.id) == iou.payment_id
                    && r.body().amount == iou.amount
                    && r.body().asset == iou.line.asset
            })
            .map(|r| r.id)
        else {
            return;
        };
        self.update_settlement(&id, now, ops, |r| {
            r.status = SettlementStatus::Done;
            r.note = "receipt taken".into();
        });
    }

    /// A hashlock finished: the payer's side of a Lightning settlement is done when its proof
    /// is known (the IOU is then claimable), failed otherwise.
    pub(crate) fn settlement_hashlock_finished(
        &mut self,
        hash: &[u8; 32],
        done: bool,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(id) = self
            .settlements
            .values()
            .find(|r| {
                r.role == SettlementRole::Payer
                    && !r.status.is_final()
                    && r.body().condition.as_ref().is_some_and(|c| c.hash == *hash)
            })
            .map(|r| r.id)
        else {
            return;
        };
        self.update_settlement(&id, now, ops, |r| {
            if done {
                r.status = SettlementStatus::Done;
                r.note = "the IOU is claimed".into();
            } else {
                r.status = SettlementStatus::Failed;
                r.note = "the conditional IOU expired or was released".into();
            }
        });
    }

    /// One of my payments finished: the requester's side of a Lightning settlement follows its
    /// conditional IOU (claimed: done, with the preimage; failed: failed).
    pub(crate) fn settlement_payment_finished(
        &mut self,
        payment_id: &[u8; 32],
        failure: Option<&str>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(id) = self
            .settlements
            .values()
            .find(|r| {
                r.role == SettlementRole::Requester
                    && r.status != SettlementStatus::Done
                    && r.body().condition.is_some()
                    && receipt_payment_id(&r.id) == *payment_id
            })
            .map(|r| r.id)
        else {
            return;
        };
        let preimage = self
            .settlements
            .get(&id)
            .and_then(|r| r.body().condition.as_ref())
            .and_then(|c| self.known_secret(&c.hash));
        self.update_settlement(&id, now, ops, |r| match failure {
            None => {
                r.status = SettlementStatus::Done;
                r.note = "the invoice was paid and the IOU claimed".into();
                if let Some(p) = preimage {
                    r.evidence = Some(Evidence::Preimage(p));
                }
            }
            // A refused settlement keeps its status and the payer's reason.
            Some(why) => {
                if r.status != SettlementStatus::Refused {
                    r.status = SettlementStatus::Failed;
                    r.note = format!("the conditional IOU failed: {why}");
                }
            }
        });
    }

    /// The secret of `hash`, if a proof I hold reveals it.
    fn known_secret(&self, hash: &[u8; 32]) -> Option<[u8; 32]> {
        self.channels
            .values()
            .flat_map(|c| c.out_conditionals().values())
            .filter(|c| {
                c.iou
                    .body()
                    .condition
                    .witness()
                    .is_some_and(|w| w.hash == *hash)
            })
            .find_map(|c| c.proof.as_ref().map(|p| p.p))
    }
}

fn format_signed(asset: &Asset, value: i128) -> String {
    let magnitude = u64::try_from(value.unsigned_abs()).unwrap_or(u64::MAX);
    let text = asset.format(Amount::from_minor(magnitude));
    if value < 0 { format!("-{text}") } else { text }
}

fn cut_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
