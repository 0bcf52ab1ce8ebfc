//! Settlement: turning credit into a payment the holder wants.
//!
//! The holder of an issuer's credit sends a signed [`SettlementRequest`] naming the Paykit
//! methods it accepts; the issuer reads the holder's published endpoints, pays through a method
//! both support and answers with a signed [`SettlementUpdate`] carrying the [`Evidence`] of the
//! payment (or why it will not pay). The holder's receipt is a **counter-IOU**: an ordinary IOU
//! from the holder to the issuer for the settled amount, whose payment id is
//! [`receipt_payment_id`] of the request. It lowers the issuer's net debt through the same
//! machinery as any payment (consent, states, N + C), so nothing else in the ledger changes.
//!
//! A Lightning settlement, and the Lightning swap of the design document's first example, are
//! atomic instead: the request carries a conditional IOU from the requester to the payer on the
//! invoice's payment hash (a [`WitnessCondition`]); the payer pays the invoice, learns the
//! preimage, publishes it on a witness log and claims the IOU, so the IOU is valid exactly when
//! the invoice was paid in time.

use pkarr::PublicKey;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::condition::{WitnessCondition, WitnessProof};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::objects::{Acceptance, Condition, ConditionalIou, MAX_MEMO_LEN};
use crate::published::EndpointId;
use crate::signed::{Signed, SignedBody};

/// Most methods a request may list.
pub const MAX_METHODS: usize = 16;
/// Longest BOLT11 invoice a request may carry.
pub const MAX_INVOICE_LEN: usize = 2048;
/// Longest reason or payment reference.
pub const MAX_NOTE_LEN: usize = 512;
/// Most IOUs routed evidence may show (one per part of a multi-path payment).
pub const MAX_ROUTED_IOUS: usize = 16;

/// What the requester asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementKind {
    /// Pay me out of what you owe me (the payer must owe at least the amount).
    Settle,
    /// Pay this invoice for me against my new conditional IOU (a swap: no debt needed before).
    Swap,
}

impl SettlementKind {
    /// `settle` or `swap`.
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementKind::Settle => "settle",
            SettlementKind::Swap => "swap",
        }
    }
}

/// A signed request to pay: from the holder of `to`'s credit (settle), or from a key asking
/// `to` to pay a Lightning invoice against a conditional IOU (swap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRequest {
    /// Random, chosen by the requester; names the settlement everywhere.
    pub id: [u8; 32],
    /// The requester, who signs.
    pub from: PublicKey,
    /// Who is asked to pay.
    pub to: PublicKey,
    /// Settle or swap.
    pub kind: SettlementKind,
    /// The asset of the credit.
    pub asset: Asset,
    /// How much credit the payment is worth (greater than zero).
    pub amount: Amount,
    /// The Paykit endpoint ids the requester accepts, best first (1 to [`MAX_METHODS`]).
    pub methods: Vec<EndpointId>,
    /// A BOLT11 invoice made for this request, or empty.
    pub invoice: String,
    /// For a Lightning request: the condition of the conditional IOU that comes with it (its
    /// hash is the invoice's payment hash). Its deadline is `expires_at`.
    pub condition: Option<WitnessCondition>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which the request may no longer be paid (for a Lightning request:
    /// the IOU's hard deadline too).
    pub expires_at: u64,
    /// Free text, at most [`MAX_MEMO_LEN`] bytes.
    pub memo: String,
}

fn read_text(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<String, DecodeError> {
    let bytes = r.bytes(field, max)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
        field,
        why: "not UTF-8",
    })
}

fn read_method(r: &mut Reader<'_>) -> Result<EndpointId, DecodeError> {
    let text = read_text(r, "method", crate::published::MAX_ENDPOINT_ID_LEN)?;
    EndpointId::parse(&text).map_err(|_| DecodeError::Invalid {
        field: "method",
        why: "not an endpoint id {asset}-{rail}-{format}",
    })
}

impl SignedBody for SettlementRequest {
    const KIND: u8 = 6;
    const NAME: &'static str = "settlement-request";

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.id);
        w.key(&self.from);
        w.key(&self.to);
        w.u8(match self.kind {
            SettlementKind::Settle => 1,
            SettlementKind::Swap => 2,
        });
        w.asset(&self.asset);
        w.amount(self.amount);
        // Bounded by MAX_METHODS when built by this implementation.
        w.u32(self.methods.len() as u32);
        for m in &self.methods {
            w.bytes(m.as_str().as_bytes());
        }
        w.bytes(self.invoice.as_bytes());
        match &self.condition {
            None => w.u8(0),
            Some(c) => {
                w.u8(1);
                c.encode(w);
            }
        }
        w.u64(self.created_at);
        w.u64(self.expires_at);
        w.bytes(self.memo.as_bytes());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.array("settlement id")?;
        let from = r.key("from")?;
        let to = r.key("to")?;
        let kind = match r.u8("settlement kind")? {
            1 => SettlementKind::Settle,
            2 => SettlementKind::Swap,
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "settlement kind",
                    tag,
                });
            }
        };
        let asset = r.asset()?;
        let amount = r.amount("amount")?;
        if amount.is_zero() {
            return Err(DecodeError::Invalid {
                field: "amount",
                why: "must be greater than zero",
            });
        }
        let count = r.count("methods", MAX_METHODS)?;
        if count == 0 {
            return Err(DecodeError::Invalid {
                field: "methods",
                why: "a request accepts at least one method",
            });
        }
        let methods = (0..count)
            .map(|_| read_method(r))
            .collect::<Result<Vec<_>, _>>()?;
        let invoice = read_text(r, "invoice", MAX_INVOICE_LEN)?;
        if !invoice.is_ascii() {
            return Err(DecodeError::Invalid {
                field: "invoice",
                why: "a BOLT11 invoice is ASCII",
            });
        }
        let condition = match r.u8("condition flag")? {
            0 => None,
            1 => Some(WitnessCondition::decode(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "condition flag",
                    tag,
                });
            }
        };
        if condition.is_some() && invoice.is_empty() {
            return Err(DecodeError::Invalid {
                field: "condition",
                why: "a conditional IOU comes only with an invoice to pay",
            });
        }
        if kind == SettlementKind::Swap && condition.is_none() {
            return Err(DecodeError::Invalid {
                field: "condition",
                why: "a swap needs the condition of its IOU",
            });
        }
        let created_at = r.u64("created at")?;
        let expires_at = r.u64("expires at")?;
        if expires_at <= created_at {
            return Err(DecodeError::Invalid {
                field: "expires at",
                why: "must be after created at",
            });
        }
        let memo = read_text(r, "memo", MAX_MEMO_LEN)?;
        Ok(SettlementRequest {
            id,
            from,
            to,
            kind,
            asset,
            amount,
            methods,
            invoice,
            condition,
            created_at,
            expires_at,
            memo,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.from
    }
}

/// What the payer shows for a payment it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Credit reassignment: my IOU to the holder's endpoint key and that key's signed
    /// acceptance of it (the third party's acknowledgement).
    Credit {
        /// The IOU I issued to the third party.
        iou: Box<Signed<ConditionalIou>>,
        /// Its holder's acceptance.
        acceptance: Box<Signed<Acceptance>>,
    },
    /// Lightning: the invoice's payment preimage.
    Preimage([u8; 32]),
    /// Credit reassignment over a route (the payer had no line to the endpoint key): the IOUs
    /// the route's last hops issued to the key, and the witness log's proof that makes them
    /// payable (the payer published the secret once they covered the amount).
    Routed {
        /// The IOUs issued to the endpoint key (1 to [`MAX_ROUTED_IOUS`]).
        issued: Vec<Signed<ConditionalIou>>,
        /// The proof of their condition.
        proof: Box<WitnessProof>,
    },
    /// On-chain or manual: what the payer says it paid (a transaction id, a note); the holder
    /// confirms it by hand.
    Reference(String),
}

impl Evidence {
    /// Canonical bytes.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Evidence::Credit { iou, acceptance } => {
                w.u8(1);
                w.bytes(&iou.to_bytes());
                w.bytes(&acceptance.to_bytes());
            }
            Evidence::Preimage(p) => {
                w.u8(2);
                w.fixed(p);
            }
            Evidence::Reference(text) => {
                w.u8(3);
                w.bytes(text.as_bytes());
            }
            Evidence::Routed { issued, proof } => {
                w.u8(4);
                // Bounded by MAX_ROUTED_IOUS when built by this implementation.
                w.u32(issued.len() as u32);
                for iou in issued {
                    w.bytes(&iou.to_bytes());
                }
                proof.encode(w);
            }
        }
    }

    /// Strict decoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Evidence, DecodeError> {
        match r.u8("evidence")? {
            1 => {
                let iou = Box::new(Signed::decode(
                    r.bytes("evidence IOU", crate::message::MAX_OBJECT_LEN)?,
                )?);
                let acceptance = Box::new(Signed::decode(r.bytes("evidence acceptance", 1024)?)?);
                Ok(Evidence::Credit { iou, acceptance })
            }
            2 => Ok(Evidence::Preimage(r.array("preimage")?)),
            3 => Ok(Evidence::Reference(read_text(
                r,
                "reference",
                MAX_NOTE_LEN,
            )?)),
            4 => {
                let count = r.count("issued IOUs", MAX_ROUTED_IOUS)?;
                if count == 0 {
                    return Err(DecodeError::Invalid {
                        field: "issued IOUs",
                        why: "routed evidence shows at least one IOU",
                    });
                }
                let issued = (0..count)
                    .map(|_| Signed::decode(r.bytes("issued IOU", crate::message::MAX_OBJECT_LEN)?))
                    .collect::<Result<Vec<_>, _>>()?;
                let proof = Box::new(WitnessProof::decode(r)?);
                Ok(Evidence::Routed { issued, proof })
            }
            tag => Err(DecodeError::UnknownTag {
                field: "evidence",
                tag,
            }),
        }
    }

    /// Canonical bytes, standalone.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes [`Evidence::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Evidence, DecodeError> {
        let mut r = Reader::new(bytes);
        let e = Evidence::decode(&mut r)?;
        r.finish()?;
        Ok(e)
    }

    /// Checks credit evidence: `payer` issued `amount` of `asset` to `payee` under the payment
    /// id [`payout_payment_id`] of settlement `id`, and `payee` signed its acceptance.
    pub fn check_credit(
        &self,
        payer: &PublicKey,
        payee: &PublicKey,
        asset: &Asset,
        amount: Amount,
        id: &[u8; 32],
    ) -> Result<(), EvidenceError> {
        let Evidence::Credit { iou, acceptance } = self else {
            return Err(EvidenceError::NotCredit);
        };
        iou.verify()
            .map_err(|_| EvidenceError::BadSignature("IOU"))?;
        acceptance
            .verify()
            .map_err(|_| EvidenceError::BadSignature("acceptance"))?;
        let body = iou.body();
        if body.line.issuer != *payer {
            return Err(EvidenceError::Mismatch("the IOU's issuer is not the payer"));
        }
        if body.line.holder != *payee {
            return Err(EvidenceError::Mismatch(
                "the IOU's holder is not my endpoint key",
            ));
        }
        if body.line.asset != *asset || body.amount != amount {
            return Err(EvidenceError::Mismatch(
                "the IOU's asset or amount is not the settlement's",
            ));
        }
        if body.payment_id != payout_payment_id(id) {
            return Err(EvidenceError::Mismatch(
                "the IOU's payment id is not this settlement's",
            ));
        }
        if body.condition != Condition::HolderAccepts {
            return Err(EvidenceError::Mismatch("the IOU is not a direct payment"));
        }
        let a = acceptance.body();
        if a.line != body.line || a.id != body.id || a.iou_hash != iou.hash() {
            return Err(EvidenceError::Mismatch(
                "the acceptance is not for this IOU",
            ));
        }
        Ok(())
    }
}

impl Evidence {
    /// Checks routed evidence: IOUs issued to `payee` in `asset` under the payment id
    /// [`payout_payment_id`] of settlement `id`, all with one witness condition that `proof`
    /// fulfils before their deadline, together worth at least `amount`.
    pub fn check_routed(
        &self,
        payee: &PublicKey,
        asset: &Asset,
        amount: Amount,
        id: &[u8; 32],
    ) -> Result<(), EvidenceError> {
        let Evidence::Routed { issued, proof } = self else {
            return Err(EvidenceError::NotCredit);
        };
        let mut total: u128 = 0;
        for iou in issued {
            iou.verify()
                .map_err(|_| EvidenceError::BadSignature("issued IOU"))?;
            let body = iou.body();
            if body.line.holder != *payee || body.line.asset != *asset {
                return Err(EvidenceError::Mismatch(
                    "an issued IOU is not to my endpoint key in the settlement's asset",
                ));
            }
            if body.payment_id != payout_payment_id(id) {
                return Err(EvidenceError::Mismatch(
                    "an issued IOU's payment id is not this settlement's",
                ));
            }
            let Some(condition) = body.condition.witness() else {
                return Err(EvidenceError::Mismatch(
                    "an issued IOU has no witness condition",
                ));
            };
            proof
                .verify(condition, body.expires_at)
                .map_err(|e| EvidenceError::BadProof(e.to_string()))?;
            total = total.saturating_add(u128::from(body.amount.minor()));
        }
        if total < u128::from(amount.minor()) {
            return Err(EvidenceError::Mismatch(
                "the issued IOUs are worth less than the settlement",
            ));
        }
        Ok(())
    }
}

/// Why evidence does not show the payment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvidenceError {
    /// Not credit evidence.
    #[error("the evidence is not a credit payment")]
    NotCredit,
    /// A signature does not verify.
    #[error("the evidence's {0} signature does not verify")]
    BadSignature(&'static str),
    /// It shows some other payment.
    #[error("{0}")]
    Mismatch(&'static str),
    /// The proof does not fulfil the issued IOUs' condition.
    #[error("the proof does not fulfil the IOUs' condition: {0}")]
    BadProof(String),
}

/// The payer's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It will not pay, and why (no mutual method, over what it owes, a failed payment...).
    Refused(String),
    /// It paid through `method`.
    Paid {
        /// The endpoint id used.
        method: EndpointId,
        /// What shows it.
        evidence: Evidence,
    },
}

/// The payer's signed answer to a [`SettlementRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementUpdate {
    /// The settlement.
    pub id: [u8; 32],
    /// [`Signed::hash`] of the exact request answered.
    pub request_hash: [u8; 32],
    /// The payer, who signs.
    pub from: PublicKey,
    /// The requester.
    pub to: PublicKey,
    /// Refused or paid.
    pub outcome: Outcome,
}

impl SignedBody for SettlementUpdate {
    const KIND: u8 = 7;
    const NAME: &'static str = "settlement-update";

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.id);
        w.fixed(&self.request_hash);
        w.key(&self.from);
        w.key(&self.to);
        match &self.outcome {
            Outcome::Refused(reason) => {
                w.u8(1);
                w.bytes(reason.as_bytes());
            }
            Outcome::Paid { method, evidence } => {
                w.u8(2);
                w.bytes(method.as_str().as_bytes());
                evidence.encode(w);
            }
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.array("settlement id")?;
        let request_hash = r.array("request hash")?;
        let from = r.key("from")?;
        let to = r.key("to")?;
        let outcome = match r.u8("outcome")? {
            1 => Outcome::Refused(read_text(r, "reason", MAX_NOTE_LEN)?),
            2 => {
                let method = read_method(r)?;
                let evidence = Evidence::decode(r)?;
                Outcome::Paid { method, evidence }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "outcome",
                    tag,
                });
            }
        };
        Ok(SettlementUpdate {
            id,
            request_hash,
            from,
            to,
            outcome,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.from
    }
}

fn derive(tag: &str, id: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update([0u8]);
    h.update(id);
    h.finalize().into()
}

/// The payment id of the payer's credit payment to the holder's endpoint key (reassignment):
/// `SHA-256("atomicity/v1/settlement-payout" || 0x00 || id)`.
pub fn payout_payment_id(id: &[u8; 32]) -> [u8; 32] {
    derive("atomicity/v1/settlement-payout", id)
}

/// The payment id of the holder's counter-IOU (its receipt), and of the conditional IOU that
/// comes with a Lightning request: `SHA-256("atomicity/v1/settlement-receipt" || 0x00 || id)`.
pub fn receipt_payment_id(id: &[u8; 32]) -> [u8; 32] {
    derive("atomicity/v1/settlement-receipt", id)
}

/// The rail of an endpoint id (`{asset}-{rail}-{format}` → `{rail}-{format}`).
pub fn rail_of(method: &EndpointId) -> &str {
    method
        .as_str()
        .split_once('-')
        .map_or(method.as_str(), |(_, rest)| rest)
}
