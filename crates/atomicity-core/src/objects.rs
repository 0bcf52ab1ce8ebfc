//! The protocol's signed objects: IOU states, conditional IOUs, acceptances and releases.

use std::fmt;

use pkarr::PublicKey;

use crate::amount::{Amount, Asset, Total};
use crate::condition::WitnessCondition;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::signed::SignedBody;

/// Most ids a [`ResolvedSet`] may list above its watermark: bounds the size of a state.
pub const MAX_RESOLVED_ABOVE: usize = 4096;
/// Longest memo on a conditional IOU, in bytes.
pub const MAX_MEMO_LEN: usize = 256;

/// A directed credit line: `issuer` owes `holder` in `asset`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LineId {
    /// Who signs the IOUs on this line.
    pub issuer: PublicKey,
    /// Who holds them.
    pub holder: PublicKey,
    /// The denomination.
    pub asset: Asset,
}

impl LineId {
    fn encode(&self, w: &mut Writer) {
        w.key(&self.issuer);
        w.key(&self.holder);
        w.asset(&self.asset);
    }

    fn decode(r: &mut Reader<'_>) -> Result<LineId, DecodeError> {
        let issuer = r.key("line issuer")?;
        let holder = r.key("line holder")?;
        let asset = r.asset()?;
        if issuer == holder {
            return Err(DecodeError::Invalid {
                field: "line",
                why: "issuer and holder are the same key",
            });
        }
        Ok(LineId {
            issuer,
            holder,
            asset,
        })
    }
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}→{} {}", self.issuer, self.holder, self.asset)
    }
}

/// The set of conditional-IOU ids that an IOU state has finished.
///
/// Ids are issued per line from 0 upwards, so the set is "every id below `below`" plus a short
/// sorted list of ids above it. Canonical form: every listed id is greater than `below`
/// (an id equal to it is folded into the watermark).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedSet {
    below: u64,
    above: Vec<u64>,
}

impl ResolvedSet {
    /// The empty set.
    pub fn new() -> ResolvedSet {
        ResolvedSet::default()
    }

    /// Every id below this one is resolved.
    pub fn watermark(&self) -> u64 {
        self.below
    }

    /// Resolved ids at or above the watermark, ascending.
    pub fn above(&self) -> &[u64] {
        &self.above
    }

    /// Whether `id` is resolved.
    pub fn contains(&self, id: u64) -> bool {
        id < self.below || self.above.binary_search(&id).is_ok()
    }

    /// Adds `id`, keeping the canonical form.
    pub fn insert(&mut self, id: u64) {
        if self.contains(id) {
            return;
        }
        if let Err(pos) = self.above.binary_search(&id) {
            self.above.insert(pos, id);
        }
        // Fold the ids that continue the watermark into it. Checked: the watermark cannot pass
        // u64::MAX (a set holding every id has no canonical form; issuers never use u64::MAX).
        let mut folded = 0;
        while let Some(next) = self.above.get(folded) {
            match self.below.checked_add(1) {
                Some(after) if *next == self.below => {
                    self.below = after;
                    folded += 1;
                }
                _ => break,
            }
        }
        self.above.drain(..folded);
    }

    /// Whether every id in `other` is in `self`.
    pub fn is_superset_of(&self, other: &ResolvedSet) -> bool {
        // In canonical form `self` never contains its own watermark, so a larger watermark in
        // `other` can never be covered.
        other.below <= self.below && other.above.iter().all(|id| self.contains(*id))
    }

    /// How many ids are listed above the watermark (the part that costs space).
    pub fn listed_len(&self) -> usize {
        self.above.len()
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.below);
        // Bounded by MAX_RESOLVED_ABOVE, checked by whoever grows the set.
        w.u32(self.above.len() as u32);
        for id in &self.above {
            w.u64(*id);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<ResolvedSet, DecodeError> {
        let below = r.u64("resolved watermark")?;
        let count = r.count("resolved ids", MAX_RESOLVED_ABOVE)?;
        let mut above = Vec::with_capacity(count);
        let mut previous = below;
        for _ in 0..count {
            let id = r.u64("resolved id")?;
            if id <= previous {
                return Err(DecodeError::Invalid {
                    field: "resolved ids",
                    why: "must be ascending and above the watermark + 1",
                });
            }
            previous = id;
            above.push(id);
        }
        Ok(ResolvedSet { below, above })
    }
}

/// The issuer's signed statement of everything it owes on a line (the seed's "signed state of
/// the channel").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IouState {
    /// The line.
    pub line: LineId,
    /// Strictly increases with every new state.
    pub seq: u64,
    /// Cumulative amount ever issued on the line; never decreases. 128-bit (16 bytes on the
    /// wire): it counts the line's whole lifetime of payments, not the debt.
    pub total: Total,
    /// Conditional IOUs this state has finished: fulfilled ones are inside `total`, expired
    /// or released ones are not.
    pub resolved: ResolvedSet,
}

impl SignedBody for IouState {
    const KIND: u8 = 1;
    const NAME: &'static str = "iou-state";

    fn encode_body(&self, w: &mut Writer) {
        self.line.encode(w);
        w.u64(self.seq);
        w.total(self.total);
        self.resolved.encode(w);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(IouState {
            line: LineId::decode(r)?,
            seq: r.u64("seq")?,
            total: r.total("total")?,
            resolved: ResolvedSet::decode(r)?,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.line.issuer
    }
}

/// What makes a conditional IOU payable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Payable once the holder signs an [`Acceptance`] of it (direct payments: the holder
    /// consents after checking its own limits).
    HolderAccepts,
    /// Payable once the holder, having accepted it, shows a witness log's proof that the
    /// payment's secret was published in time (routed payments; see [`crate::condition`]).
    WitnessCommit(WitnessCondition),
}

impl Condition {
    /// The witness condition, if this is one.
    pub fn witness(&self) -> Option<&WitnessCondition> {
        match self {
            Condition::WitnessCommit(c) => Some(c),
            Condition::HolderAccepts => None,
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Condition::HolderAccepts => w.u8(1),
            Condition::WitnessCommit(c) => {
                w.u8(2);
                c.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Condition, DecodeError> {
        match r.u8("condition")? {
            1 => Ok(Condition::HolderAccepts),
            2 => Ok(Condition::WitnessCommit(WitnessCondition::decode(r)?)),
            tag => Err(DecodeError::UnknownTag {
                field: "condition",
                tag,
            }),
        }
    }
}

/// An IOU that becomes payable when its condition holds before `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionalIou {
    /// The line it is issued on.
    pub line: LineId,
    /// Per-line id, issued from 0 upwards by the issuer.
    pub id: u64,
    /// Greater than zero.
    pub amount: Amount,
    /// What makes it payable.
    pub condition: Condition,
    /// Names the payment this IOU belongs to (random, chosen by the payer).
    pub payment_id: [u8; 32],
    /// Unix seconds after which the condition can no longer be met.
    pub expires_at: u64,
    /// Free text for the holder, UTF-8, at most [`MAX_MEMO_LEN`] bytes.
    pub memo: String,
}

impl SignedBody for ConditionalIou {
    const KIND: u8 = 2;
    const NAME: &'static str = "conditional-iou";

    fn encode_body(&self, w: &mut Writer) {
        self.line.encode(w);
        w.u64(self.id);
        w.amount(self.amount);
        self.condition.encode(w);
        w.fixed(&self.payment_id);
        w.u64(self.expires_at);
        w.bytes(self.memo.as_bytes());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let line = LineId::decode(r)?;
        let id = r.u64("id")?;
        let amount = r.amount("amount")?;
        if amount.is_zero() {
            return Err(DecodeError::Invalid {
                field: "amount",
                why: "must be greater than zero",
            });
        }
        let condition = Condition::decode(r)?;
        let payment_id = r.array("payment id")?;
        let expires_at = r.u64("expires at")?;
        let memo = r.bytes("memo", MAX_MEMO_LEN)?;
        let memo = String::from_utf8(memo.to_vec()).map_err(|_| DecodeError::Invalid {
            field: "memo",
            why: "not UTF-8",
        })?;
        Ok(ConditionalIou {
            line,
            id,
            amount,
            condition,
            payment_id,
            expires_at,
            memo,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.line.issuer
    }
}

/// The holder's consent to a conditional IOU (fulfils [`Condition::HolderAccepts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// The line of the IOU.
    pub line: LineId,
    /// The IOU's id.
    pub id: u64,
    /// [`crate::Signed::hash`] of the exact IOU accepted.
    pub iou_hash: [u8; 32],
}

impl SignedBody for Acceptance {
    const KIND: u8 = 3;
    const NAME: &'static str = "acceptance";

    fn encode_body(&self, w: &mut Writer) {
        self.line.encode(w);
        w.u64(self.id);
        w.fixed(&self.iou_hash);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acceptance {
            line: LineId::decode(r)?,
            id: r.u64("id")?,
            iou_hash: r.array("iou hash")?,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.line.holder
    }
}

/// Why a holder refused or gave up a conditional IOU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseReason {
    /// Taking it would put the issuer over the holder's acceptance limit.
    OverLimit,
    /// The holder takes no credit from the issuer in this asset (no line, or a zero limit).
    UnknownAsset,
    /// It arrived after its expiry.
    Expired,
    /// Too many conditional IOUs are pending on the line.
    TooManyPending,
    /// The holder's user declined it.
    Declined,
    /// A hop could not forward it (no line to the next key, over its limits, bad instructions).
    CannotForward,
    /// A hop's fee is not covered by the difference between what it gets and what it forwards.
    FeeTooLow,
    /// The payee has no open invoice matching it (hash, asset, amount or deadline).
    UnknownPayment,
    /// The payment failed further along the route.
    PaymentFailed,
    /// The payee could not publish the secret on any listed witness in time.
    WitnessUnavailable,
    /// The condition lists no witness log the holder accepts, or its terms are unusable.
    WitnessNotAccepted,
}

impl ReleaseReason {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            ReleaseReason::OverLimit => 1,
            ReleaseReason::UnknownAsset => 2,
            ReleaseReason::Expired => 3,
            ReleaseReason::TooManyPending => 4,
            ReleaseReason::Declined => 5,
            ReleaseReason::CannotForward => 6,
            ReleaseReason::FeeTooLow => 7,
            ReleaseReason::UnknownPayment => 8,
            ReleaseReason::PaymentFailed => 9,
            ReleaseReason::WitnessUnavailable => 10,
            ReleaseReason::WitnessNotAccepted => 11,
        }
    }

    /// From a wire code.
    pub fn from_code(code: u8) -> Option<ReleaseReason> {
        Some(match code {
            1 => ReleaseReason::OverLimit,
            2 => ReleaseReason::UnknownAsset,
            3 => ReleaseReason::Expired,
            4 => ReleaseReason::TooManyPending,
            5 => ReleaseReason::Declined,
            6 => ReleaseReason::CannotForward,
            7 => ReleaseReason::FeeTooLow,
            8 => ReleaseReason::UnknownPayment,
            9 => ReleaseReason::PaymentFailed,
            10 => ReleaseReason::WitnessUnavailable,
            11 => ReleaseReason::WitnessNotAccepted,
            _ => return None,
        })
    }
}

impl fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseReason::OverLimit => "over the holder's acceptance limit",
            ReleaseReason::UnknownAsset => "the holder takes no credit from you in this asset",
            ReleaseReason::Expired => "expired before it arrived",
            ReleaseReason::TooManyPending => "too many payments pending on the line",
            ReleaseReason::Declined => "declined by the holder",
            ReleaseReason::CannotForward => "a hop could not forward it",
            ReleaseReason::FeeTooLow => "the fee does not cover the hop's fee policy",
            ReleaseReason::UnknownPayment => "the payee has no matching invoice",
            ReleaseReason::PaymentFailed => "the payment failed further along the route",
            ReleaseReason::WitnessUnavailable => "no listed witness published the secret in time",
            ReleaseReason::WitnessNotAccepted => "no witness in the condition is accepted",
        })
    }
}

/// The holder's signed statement that a conditional IOU will never be claimed: a refusal, or an
/// early release of a failed payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The line of the IOU.
    pub line: LineId,
    /// The IOU's id.
    pub id: u64,
    /// [`crate::Signed::hash`] of the exact IOU released.
    pub iou_hash: [u8; 32],
    /// Why.
    pub reason: ReleaseReason,
}

impl SignedBody for Release {
    const KIND: u8 = 4;
    const NAME: &'static str = "release";

    fn encode_body(&self, w: &mut Writer) {
        self.line.encode(w);
        w.u64(self.id);
        w.fixed(&self.iou_hash);
        w.u8(self.reason.code());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let line = LineId::decode(r)?;
        let id = r.u64("id")?;
        let iou_hash = r.array("iou hash")?;
        let tag = r.u8("release reason")?;
        let reason = ReleaseReason::from_code(tag).ok_or(DecodeError::UnknownTag {
            field: "release reason",
            tag,
        })?;
        Ok(Release {
            line,
            id,
            iou_hash,
            reason,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.line.holder
    }
}
