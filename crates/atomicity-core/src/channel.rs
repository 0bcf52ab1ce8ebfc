//! One credit relationship `(me, peer, asset)`: both directed lines, both sides' limits, and the
//! rules that accept or reject what the peer sends.
//!
//! Sans-I/O: every method takes the time and the key it needs and only changes memory; the
//! caller persists the result (see [`crate::ledger`]) before anything leaves the node.

use std::collections::{BTreeMap, BTreeSet};

use pkarr::PublicKey;
use thiserror::Error;

use crate::amount::{Amount, Asset, Total};
use crate::condition::{ProofCache, WitnessProof};
use crate::conditionals::{Conditionals, Open};
use crate::forward::{FeePolicy, Onward};
use crate::objects::{
    Acceptance, Condition, ConditionalIou, IouState, LineId, MAX_RESOLVED_ABOVE, Release,
    ReleaseReason, ResolvedSet,
};
use crate::signed::{Signed, Signer};

/// Most conditional IOUs that may be pending on one directed line at once.
pub const MAX_PENDING_PER_LINE: usize = 10_000;

/// My local policy toward a peer in one asset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// How much the peer may owe me.
    pub accept: Amount,
    /// How much I am willing to owe the peer.
    pub issue: Amount,
}

/// The holder's answer to an offered conditional IOU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accepted: the holder consents, the IOU is payable.
    Accepted(Signed<Acceptance>),
    /// Released: the IOU will never be claimed.
    Released(Signed<Release>),
}

impl Answer {
    /// Whether this is an acceptance.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Answer::Accepted(_))
    }
}

/// A conditional IOU I issued that no IOU state of mine has resolved yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutConditional {
    /// The IOU as signed and sent.
    pub iou: Signed<ConditionalIou>,
    /// The holder's answer, once it arrived.
    pub answer: Option<Answer>,
    /// Forwarding instructions sent with a routed IOU (resent with it until answered).
    pub onward: Option<Onward>,
    /// A proof that its witness condition holds, once I know one.
    pub proof: Option<WitnessProof>,
    /// Whether the holder claimed it with the proof (only then does my state count it).
    pub claimed: bool,
}

impl OutConditional {
    /// A fresh, unanswered IOU.
    pub fn new(iou: Signed<ConditionalIou>, onward: Option<Onward>) -> OutConditional {
        OutConditional {
            iou,
            answer: None,
            onward,
            proof: None,
            claimed: false,
        }
    }

    fn is_witness(&self) -> bool {
        self.iou.body().condition.witness().is_some()
    }

    fn is_accepted(&self) -> bool {
        matches!(self.answer, Some(Answer::Accepted(_)))
    }

    /// Owed by me: accepted and, for a routed IOU, claimed with a proof.
    pub fn is_owed(&self) -> bool {
        self.is_accepted() && (!self.is_witness() || self.claimed)
    }

    /// Not decided yet: unanswered, or a routed IOU accepted but not claimed.
    pub fn is_pending(&self) -> bool {
        self.answer.is_none() || (self.is_accepted() && self.is_witness() && !self.claimed)
    }

    /// Whether my next state may resolve it at `now`: answered and decided, or a routed IOU past
    /// its hard deadline plus `grace` for which I know no proof.
    fn is_mergeable(&self, now: u64, grace: u64) -> bool {
        match &self.answer {
            None => false,
            Some(Answer::Released(_)) => true,
            Some(Answer::Accepted(_)) => {
                !self.is_witness()
                    || self.claimed
                    || (self.proof.is_none()
                        && now >= self.iou.body().expires_at.saturating_add(grace))
            }
        }
    }
}

impl Open for OutConditional {
    fn amount(&self) -> Amount {
        self.iou.body().amount
    }

    fn payment_hash(&self) -> Option<[u8; 32]> {
        self.iou.body().condition.witness().map(|w| w.hash)
    }

    fn is_owed(&self) -> bool {
        OutConditional::is_owed(self)
    }

    fn is_pending(&self) -> bool {
        OutConditional::is_pending(self)
    }
}

/// A conditional IOU the peer issued to me that its IOU states have not resolved yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InConditional {
    /// The IOU as received.
    pub iou: Signed<ConditionalIou>,
    /// My answer (always given, and kept so that a resent offer gets the same one). An
    /// accepted routed IOU may later be released early, when its payment failed.
    pub answer: Answer,
    /// The proof I claimed it with (routed IOUs only).
    pub proof: Option<WitnessProof>,
}

impl InConditional {
    fn is_witness(&self) -> bool {
        self.iou.body().condition.witness().is_some()
    }

    /// Owed to me: accepted and, for a routed IOU, claimed with a proof.
    pub fn is_owed(&self) -> bool {
        self.answer.is_accepted() && (!self.is_witness() || self.proof.is_some())
    }

    /// A routed IOU I accepted and have no proof for yet.
    pub fn is_pending(&self) -> bool {
        self.answer.is_accepted() && self.is_witness() && self.proof.is_none()
    }
}

impl Open for InConditional {
    fn amount(&self) -> Amount {
        self.iou.body().amount
    }

    fn payment_hash(&self) -> Option<[u8; 32]> {
        self.iou.body().condition.witness().map(|w| w.hash)
    }

    fn is_owed(&self) -> bool {
        InConditional::is_owed(self)
    }

    fn is_pending(&self) -> bool {
        InConditional::is_pending(self)
    }
}

/// Something a peer sent that was rejected; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// The object's signature does not verify under its signer's key.
    #[error("bad signature on the {0}")]
    BadSignature(&'static str),
    /// The object is not about this line (wrong issuer, holder or asset).
    #[error("wrong line: {0}")]
    WrongLine(String),
    /// No line in this asset with this peer.
    #[error("no line in {0} with this peer")]
    UnknownAsset(String),
    /// The sender is not a known peer.
    #[error("unknown peer")]
    UnknownPeer,
    /// A state older than the one held.
    #[error("stale state: seq {got} is below the held seq {held}")]
    StaleSeq {
        /// Seq held.
        held: u64,
        /// Seq received.
        got: u64,
    },
    /// A different state with the seq already held: the issuer signed two histories.
    #[error("equivocation: a different state with the held seq {seq}")]
    Equivocation {
        /// The seq.
        seq: u64,
    },
    /// The total went down.
    #[error("total decreased from {held} to {got} minor units")]
    TotalDecreased {
        /// Total held.
        held: u128,
        /// Total received.
        got: u128,
    },
    /// An id resolved before is missing from the new state.
    #[error("the state un-resolves conditional IOUs resolved before")]
    ResolvedShrank,
    /// The state resolves conditional IOUs I accepted without counting them in the total.
    #[error("the state resolves accepted IOUs without counting {missing} minor units of them")]
    UncountedFulfilled {
        /// How much is missing from the total.
        missing: u128,
    },
    /// The total grew by more than the IOUs I accepted: debt I never consented to.
    #[error("the total grows by {excess} minor units more than the accepted IOUs")]
    UnconsentedIncrease {
        /// The excess.
        excess: u128,
    },
    /// Another IOU with the same id and different content.
    #[error("conflicting conditional IOU with id {id}")]
    ConflictingOffer {
        /// The id.
        id: u64,
    },
    /// An answer that contradicts the answer already held (accepted and released).
    #[error("conflicting answer for conditional IOU {id}")]
    ConflictingAnswer {
        /// The id.
        id: u64,
    },
    /// The id was resolved by an earlier state; the message is late and harmless.
    #[error("conditional IOU {id} was already resolved")]
    AlreadyResolved {
        /// The id.
        id: u64,
    },
    /// An answer for an IOU I never issued.
    #[error("no pending conditional IOU with id {id}")]
    UnknownConditional {
        /// The id.
        id: u64,
    },
    /// The answer names a different IOU than the one with that id.
    #[error("the answer is for a different IOU (hash mismatch)")]
    HashMismatch,
    /// Too many ids outstanding to describe in one state.
    #[error("too many unresolved conditional IOUs on the line")]
    TooManyPending,
    /// The state drops a routed IOU I accepted, without a proof, before its hard deadline.
    #[error("the state drops conditional IOU {id} before its deadline")]
    NotExpired {
        /// The id.
        id: u64,
    },
    /// A proof that does not fulfil the IOU's condition, or for no IOU on the line.
    #[error("bad proof: {0}")]
    BadProof(String),
    /// An early release of an IOU already claimed with a proof.
    #[error("conditional IOU {id} was claimed and cannot be released")]
    AlreadyClaimed {
        /// The id.
        id: u64,
    },
    /// The numbers would overflow.
    #[error("amount overflow")]
    Overflow,
    /// A settlement request or update that cannot be taken (over what is owed, expired, not
    /// for me, conflicting).
    #[error("settlement: {0}")]
    BadSettlement(String),
}

impl Rejection {
    /// Stable code for [`crate::Reply::Rejected`].
    pub fn code(&self) -> u16 {
        match self {
            Rejection::BadSignature(_) => 1,
            Rejection::WrongLine(_) => 10,
            Rejection::UnknownAsset(_) => 11,
            Rejection::UnknownPeer => 12,
            Rejection::StaleSeq { .. } => 20,
            Rejection::Equivocation { .. } => 21,
            Rejection::TotalDecreased { .. } => 22,
            Rejection::ResolvedShrank => 23,
            Rejection::UncountedFulfilled { .. } => 24,
            Rejection::UnconsentedIncrease { .. } => 25,
            Rejection::ConflictingOffer { .. } => 30,
            Rejection::ConflictingAnswer { .. } => 31,
            Rejection::AlreadyResolved { .. } => 32,
            Rejection::UnknownConditional { .. } => 33,
            Rejection::HashMismatch => 34,
            Rejection::TooManyPending => 40,
            Rejection::Overflow => 41,
            Rejection::NotExpired { .. } => 26,
            Rejection::BadProof(_) => 35,
            Rejection::AlreadyClaimed { .. } => 36,
            Rejection::BadSettlement(_) => 50,
        }
    }

    /// Whether this proves the peer signed two contradicting things (worth keeping as evidence).
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Rejection::Equivocation { .. }
                | Rejection::UncountedFulfilled { .. }
                | Rejection::ConflictingOffer { .. }
                | Rejection::ConflictingAnswer { .. }
                | Rejection::AlreadyClaimed { .. }
        )
    }
}

/// Why I cannot offer a payment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfferError {
    /// Zero is not a payment.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// It would take me over the limit I set for what I owe this peer.
    #[error("over my issue limit toward this peer: {available} minor units available")]
    OverIssueLimit {
        /// How much more I could issue now.
        available: u64,
    },
    /// Too many payments pending on the line.
    #[error("too many payments pending on this line")]
    TooManyPending,
    /// The memo is too long.
    #[error("the memo is longer than 256 bytes")]
    MemoTooLong,
    /// The numbers would overflow.
    #[error("amount overflow")]
    Overflow,
}

/// Both directed lines between me and one peer in one asset.
#[derive(Clone, Debug)]
pub struct Channel {
    me: PublicKey,
    peer: PublicKey,
    asset: Asset,
    /// My limits toward the peer.
    pub limits: Limits,
    /// What I charge to forward routed payments to the peer over my line.
    pub fees: FeePolicy,
    out_state: Option<Signed<IouState>>,
    in_state: Option<Signed<IouState>>,
    next_id: u64,
    out: Conditionals<OutConditional>,
    inn: Conditionals<InConditional>,
    /// Ids of my routed IOUs the holder claimed before its answer reached me. The holder
    /// answers an offer in the reply to it, and may publish and send its claim on another
    /// connection before I have read that reply; the claim counts once the acceptance arrives.
    /// Memory only: a holder sends its claim again until my state resolves the IOU.
    early_claims: BTreeSet<u64>,
}

/// A summary of a channel for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelView {
    /// The peer.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// Positive: the peer owes me; negative: I owe the peer. Includes accepted IOUs not yet merged.
    pub net: i128,
    /// My limits.
    pub limits: Limits,
    /// Conditional amounts the peer offered me that are not yet payable.
    pub pending_in: Amount,
    /// Conditional amounts I offered the peer that are not yet answered or resolved.
    pub pending_out: Amount,
    /// Total of the newest state I signed.
    pub out_total: Total,
    /// Total of the newest state the peer signed.
    pub in_total: Total,
    /// Seq of the newest state I signed (0: none).
    pub out_seq: u64,
    /// Seq of the newest state the peer signed (0: none).
    pub in_seq: u64,
}

impl Channel {
    /// A fresh channel with no states.
    pub fn new(me: PublicKey, peer: PublicKey, asset: Asset, limits: Limits) -> Channel {
        Channel {
            me,
            peer,
            asset,
            limits,
            fees: FeePolicy::default(),
            out_state: None,
            in_state: None,
            next_id: 0,
            out: Conditionals::default(),
            inn: Conditionals::default(),
            early_claims: BTreeSet::new(),
        }
    }

    /// Rebuilds a channel from stored parts (the store is trusted: no signatures re-checked).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        me: PublicKey,
        peer: PublicKey,
        asset: Asset,
        limits: Limits,
        next_id: u64,
        out_state: Option<Signed<IouState>>,
        in_state: Option<Signed<IouState>>,
        out: BTreeMap<u64, OutConditional>,
        inn: BTreeMap<u64, InConditional>,
    ) -> Channel {
        Channel {
            me,
            peer,
            asset,
            limits,
            fees: FeePolicy::default(),
            out_state,
            in_state,
            next_id,
            out: out.into_iter().collect(),
            inn: inn.into_iter().collect(),
            early_claims: BTreeSet::new(),
        }
    }

    /// The peer.
    pub fn peer(&self) -> &PublicKey {
        &self.peer
    }

    /// The asset.
    pub fn asset(&self) -> &Asset {
        &self.asset
    }

    /// The id my next conditional IOU will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The newest IOU state I signed.
    pub fn out_state(&self) -> Option<&Signed<IouState>> {
        self.out_state.as_ref()
    }

    /// The newest IOU state the peer signed.
    pub fn in_state(&self) -> Option<&Signed<IouState>> {
        self.in_state.as_ref()
    }

    /// My conditional IOUs not yet resolved by my newest state.
    pub fn out_conditionals(&self) -> &Conditionals<OutConditional> {
        &self.out
    }

    /// The peer's conditional IOUs not yet resolved by its newest state.
    pub fn in_conditionals(&self) -> &Conditionals<InConditional> {
        &self.inn
    }

    /// The line on which I issue.
    pub fn out_line(&self) -> LineId {
        LineId {
            issuer: self.me.clone(),
            holder: self.peer.clone(),
            asset: self.asset.clone(),
        }
    }

    /// The line on which the peer issues.
    pub fn in_line(&self) -> LineId {
        LineId {
            issuer: self.peer.clone(),
            holder: self.me.clone(),
            asset: self.asset.clone(),
        }
    }

    fn out_total(&self) -> Total {
        self.out_state
            .as_ref()
            .map_or(Total::ZERO, |s| s.body().total)
    }

    fn in_total(&self) -> Total {
        self.in_state
            .as_ref()
            .map_or(Total::ZERO, |s| s.body().total)
    }

    fn in_resolved(&self) -> Option<&ResolvedSet> {
        self.in_state.as_ref().map(|s| &s.body().resolved)
    }

    /// Everything I ever issued on my line, including accepted IOUs not merged yet, in minor
    /// units (a cumulative total, like the state's: it only grows).
    fn out_owed(&self) -> Option<u128> {
        self.out_total().minor().checked_add(self.out.owed()?)
    }

    /// Everything the peer ever issued on its line, including accepted IOUs not merged yet.
    fn in_owed(&self) -> Option<u128> {
        self.in_total().minor().checked_add(self.inn.owed()?)
    }

    /// My offers not decided yet: unanswered, or routed and not claimed.
    /// [`Channel::offer`] keeps this sum within a `u64`.
    fn out_pending(&self) -> Option<Amount> {
        u64::try_from(self.out.pending()?)
            .ok()
            .map(Amount::from_minor)
    }

    /// Routed IOUs I accepted and hold no proof for. Bounded by my accept limit, checked when
    /// each was accepted, except after the limit was lowered.
    fn in_pending(&self) -> Option<Amount> {
        u64::try_from(self.inn.pending()?)
            .ok()
            .map(Amount::from_minor)
    }

    /// Positive: the peer owes me. The difference of two cumulative totals: `None` only if one
    /// of them passes 2^127 minor units (both are non-negative below that, so the subtraction
    /// itself cannot overflow).
    fn net(&self) -> Option<i128> {
        let in_owed = i128::try_from(self.in_owed()?).ok()?;
        let out_owed = i128::try_from(self.out_owed()?).ok()?;
        in_owed.checked_sub(out_owed)
    }

    /// A summary for display. `None` only if a cumulative total passes 2^127 minor units (not
    /// reachable by this code: 2^63 payments of the largest amount) or the unanswered offers
    /// pass a `u64`, which [`Channel::offer`] prevents; so only a corrupt store gives `None`.
    pub fn view(&self) -> Option<ChannelView> {
        Some(ChannelView {
            peer: self.peer.clone(),
            asset: self.asset.clone(),
            net: self.net()?,
            limits: self.limits,
            pending_in: self.in_pending()?,
            pending_out: self.out_pending()?,
            out_total: self.out_total(),
            in_total: self.in_total(),
            out_seq: self.out_state.as_ref().map_or(0, |s| s.body().seq),
            in_seq: self.in_state.as_ref().map_or(0, |s| s.body().seq),
        })
    }

    /// How much more I could offer now without passing my issue limit.
    pub fn available_to_issue(&self) -> Option<Amount> {
        let committed = i128::from(self.out_pending()?.minor()).checked_sub(self.net()?)?;
        let available = i128::from(self.limits.issue.minor()).checked_sub(committed)?;
        Some(Amount::from_minor(
            u64::try_from(available.max(0)).unwrap_or(u64::MAX),
        ))
    }

    /// Issues and signs a conditional IOU with [`Condition::HolderAccepts`].
    pub fn offer(
        &mut self,
        key: &Signer,
        amount: Amount,
        payment_id: [u8; 32],
        expires_at: u64,
        memo: String,
    ) -> Result<Signed<ConditionalIou>, OfferError> {
        self.offer_with(
            key,
            amount,
            Condition::HolderAccepts,
            None,
            payment_id,
            expires_at,
            memo,
        )
    }

    /// Checks that I could issue `amount` now (limits, pending count, memo), changing nothing.
    pub fn can_offer(&self, amount: Amount, memo_len: usize) -> Result<(), OfferError> {
        if amount.is_zero() {
            return Err(OfferError::ZeroAmount);
        }
        if memo_len > crate::objects::MAX_MEMO_LEN {
            return Err(OfferError::MemoTooLong);
        }
        if self.out.len() >= MAX_PENDING_PER_LINE {
            return Err(OfferError::TooManyPending);
        }
        let available = self.available_to_issue().ok_or(OfferError::Overflow)?;
        if amount > available {
            return Err(OfferError::OverIssueLimit {
                available: available.minor(),
            });
        }
        // Keeps the pending sum (shown as `pending_out`) within a u64, so that the view never
        // fails on it. Reachable only with limits near u64::MAX.
        self.out_pending()
            .and_then(|u| u.checked_add(amount))
            .ok_or(OfferError::Overflow)?;
        Ok(())
    }

    /// Issues and signs a conditional IOU with any condition; `onward` travels with a routed
    /// one (and is resent with it).
    #[allow(clippy::too_many_arguments)]
    pub fn offer_with(
        &mut self,
        key: &Signer,
        amount: Amount,
        condition: Condition,
        onward: Option<Onward>,
        payment_id: [u8; 32],
        expires_at: u64,
        memo: String,
    ) -> Result<Signed<ConditionalIou>, OfferError> {
        self.can_offer(amount, memo.len())?;
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or(OfferError::Overflow)?;
        let iou = key.sign(ConditionalIou {
            line: self.out_line(),
            id,
            amount,
            condition,
            payment_id,
            expires_at,
            memo,
        });
        self.out
            .insert(id, OutConditional::new(iou.clone(), onward));
        Ok(iou)
    }

    /// The holder's side: checks an offered IOU against my limits and answers it; `veto` is a
    /// refusal decided by the caller (no invoice, cannot forward...). The answer is kept, so the
    /// same offer sent again gets the same answer. Returns whether anything changed.
    pub fn handle_offer(
        &mut self,
        key: &Signer,
        iou: Signed<ConditionalIou>,
        now: u64,
        veto: Option<ReleaseReason>,
    ) -> Result<(Answer, bool), Rejection> {
        self.handle_offer_checked(key, iou, now, veto, true)
    }

    /// [`Channel::handle_offer`], with my accept limit checked or not: a settlement's receipt
    /// is taken whatever the limit, since it only pays back what I paid for the peer.
    pub fn handle_offer_checked(
        &mut self,
        key: &Signer,
        iou: Signed<ConditionalIou>,
        now: u64,
        veto: Option<ReleaseReason>,
        check_limit: bool,
    ) -> Result<(Answer, bool), Rejection> {
        let body = iou.body();
        if body.line != self.in_line() {
            return Err(Rejection::WrongLine(format!(
                "expected {}, got {}",
                self.in_line(),
                body.line
            )));
        }
        if self.in_resolved().is_some_and(|r| r.contains(body.id)) {
            return Err(Rejection::AlreadyResolved { id: body.id });
        }
        if let Some(held) = self.inn.get(&body.id) {
            return if held.iou.same_body(&iou) {
                Ok((held.answer.clone(), false))
            } else {
                Err(Rejection::ConflictingOffer { id: body.id })
            };
        }
        if self.inn.len() >= MAX_PENDING_PER_LINE {
            return Err(Rejection::TooManyPending);
        }
        let refuse = |reason| {
            Answer::Released(key.sign(Release {
                line: body.line.clone(),
                id: body.id,
                iou_hash: iou.hash(),
                reason,
            }))
        };
        let answer = if body.expires_at <= now {
            refuse(ReleaseReason::Expired)
        } else if let Some(reason) = self.would_accept(body.amount)?.filter(|_| check_limit) {
            refuse(reason)
        } else if let Some(reason) = veto {
            refuse(reason)
        } else {
            Answer::Accepted(key.sign(Acceptance {
                line: body.line.clone(),
                id: body.id,
                iou_hash: iou.hash(),
            }))
        };
        let id = body.id;
        self.inn.insert(
            id,
            InConditional {
                iou,
                answer: answer.clone(),
                proof: None,
            },
        );
        Ok((answer, true))
    }

    /// Why I would refuse `amount` more from the peer now, if I would: it would take the peer's
    /// debt to me, counting the routed IOUs I accepted that may still become payable, over my
    /// accept limit. Changes nothing.
    /// A hop asks this before it forwards. With a zero limit the peer can still pay back what
    /// I owe it.
    pub fn would_accept(&self, amount: Amount) -> Result<Option<ReleaseReason>, Rejection> {
        let owed_after = self
            .net()
            .and_then(|net| net.checked_add(i128::from(self.in_pending()?.minor())))
            .and_then(|v| v.checked_add(i128::from(amount.minor())))
            .ok_or(Rejection::Overflow)?;
        if owed_after <= i128::from(self.limits.accept.minor()) {
            return Ok(None);
        }
        Ok(Some(if self.limits.accept.is_zero() {
            ReleaseReason::UnknownAsset
        } else {
            ReleaseReason::OverLimit
        }))
    }

    /// The holder's side: releases a routed IOU I accepted and have no proof for (its payment
    /// failed). Returns the signed release, or `None` if it was already released.
    pub fn release_in(
        &mut self,
        key: &Signer,
        id: u64,
        reason: ReleaseReason,
    ) -> Result<Option<Signed<Release>>, Rejection> {
        let held = self
            .inn
            .get(&id)
            .ok_or(Rejection::UnknownConditional { id })?;
        match &held.answer {
            Answer::Released(_) => return Ok(None),
            Answer::Accepted(_) if held.proof.is_some() || !held.is_witness() => {
                return Err(Rejection::AlreadyClaimed { id });
            }
            Answer::Accepted(_) => {}
        }
        let release = key.sign(Release {
            line: held.iou.body().line.clone(),
            id,
            iou_hash: held.iou.hash(),
            reason,
        });
        self.inn
            .update(id, |held| held.answer = Answer::Released(release.clone()));
        Ok(Some(release))
    }

    /// The issuer's side: takes the holder's answer to one of my offers. A routed IOU that was
    /// accepted and not claimed may be released later (an early release). Returns whether
    /// anything changed (false for a repeated answer).
    pub fn handle_answer(&mut self, answer: Answer) -> Result<bool, Rejection> {
        let (line, id, hash) = match &answer {
            Answer::Accepted(a) => (&a.body().line, a.body().id, a.body().iou_hash),
            Answer::Released(r) => (&r.body().line, r.body().id, r.body().iou_hash),
        };
        if *line != self.out_line() {
            return Err(Rejection::WrongLine(format!(
                "expected {}, got {line}",
                self.out_line()
            )));
        }
        let Some(pending) = self.out.get(&id) else {
            let resolved = self
                .out_state
                .as_ref()
                .is_some_and(|s| s.body().resolved.contains(id));
            return Err(if resolved {
                Rejection::AlreadyResolved { id }
            } else {
                Rejection::UnknownConditional { id }
            });
        };
        if pending.iou.hash() != hash {
            return Err(Rejection::HashMismatch);
        }
        let early_release = pending.is_witness() && !answer.is_accepted();
        let claimed_early = self.early_claims.remove(&id);
        let take = |pending: &mut OutConditional| match &pending.answer {
            None => {
                pending.answer = Some(answer);
                if claimed_early && pending.is_accepted() && pending.proof.is_some() {
                    pending.claimed = true;
                }
                Ok(true)
            }
            Some(held) if *held == answer => Ok(false),
            Some(held) if held.is_accepted() == answer.is_accepted() => Ok(false),
            Some(Answer::Accepted(_)) if early_release && !pending.claimed => {
                pending.answer = Some(answer);
                Ok(true)
            }
            Some(Answer::Accepted(_)) if early_release => Err(Rejection::AlreadyClaimed { id }),
            // A routed IOU's acceptance arriving after its early release (the network reordered
            // them): the release stands.
            Some(Answer::Released(_)) if pending.is_witness() && answer.is_accepted() => Ok(false),
            Some(_) => Err(Rejection::ConflictingAnswer { id }),
        };
        self.out
            .update(id, take)
            .unwrap_or(Err(Rejection::UnknownConditional { id }))
    }

    /// The issuer's side: takes a proof for the routed IOUs with `hash` I issued on this line.
    /// `claimed`: it came from the holder (a claim, after which my state counts the IOU);
    /// otherwise I learned it elsewhere (and may no longer let the IOU expire). Returns the ids
    /// it changed. A proof that fulfils none of them is rejected.
    pub fn prove_out(
        &mut self,
        hash: &[u8; 32],
        proof: &WitnessProof,
        claimed: bool,
        cache: &mut ProofCache,
    ) -> Result<Vec<u64>, Rejection> {
        let mut changed = Vec::new();
        let mut last_error = None;
        let early_claims = &mut self.early_claims;
        for id in self.out.ids_with_hash(hash) {
            self.out.update(id, |c| {
                let Some(condition) = c.iou.body().condition.witness() else {
                    return;
                };
                if let Err(e) = cache.check(proof, condition, c.iou.body().expires_at) {
                    last_error = Some(e);
                    return;
                }
                if claimed && !c.is_accepted() {
                    last_error = None;
                    // A claim on a released IOU claims nothing.
                    if c.answer.is_none() {
                        // The claim overtook the holder's acceptance: I know the proof now,
                        // and the claim counts when the acceptance arrives.
                        early_claims.insert(id);
                        if c.proof.is_none() {
                            c.proof = Some(proof.clone());
                            changed.push(id);
                        }
                    }
                    return;
                }
                let mut did = false;
                if c.proof.is_none() {
                    c.proof = Some(proof.clone());
                    did = true;
                }
                if claimed && !c.claimed {
                    c.claimed = true;
                    did = true;
                }
                if did {
                    changed.push(id);
                }
            });
        }
        match (changed.is_empty(), last_error) {
            (true, Some(e)) => Err(Rejection::BadProof(e.to_string())),
            _ => Ok(changed),
        }
    }

    /// The holder's side: takes a proof for the routed IOUs with `hash` the peer issued to me.
    /// Those I accepted and had no proof for are now claimed (the caller sends the proof to the
    /// peer). Returns their ids.
    pub fn prove_in(
        &mut self,
        hash: &[u8; 32],
        proof: &WitnessProof,
        cache: &mut ProofCache,
    ) -> Vec<u64> {
        let mut claimed = Vec::new();
        for id in self.inn.ids_with_hash(hash) {
            self.inn.update(id, |c| {
                let Some(condition) = c.iou.body().condition.witness() else {
                    return;
                };
                if !c.answer.is_accepted() || c.proof.is_some() {
                    return;
                }
                if cache
                    .check(proof, condition, c.iou.body().expires_at)
                    .is_ok()
                {
                    c.proof = Some(proof.clone());
                    claimed.push(id);
                }
            });
        }
        claimed
    }

    /// Whether my next state could resolve something at `now`.
    pub fn has_mergeable(&self, now: u64, grace: u64) -> bool {
        self.out.values().any(|c| c.is_mergeable(now, grace))
    }

    /// Signs my next IOU state: counts owed IOUs into the total and marks every decided IOU
    /// resolved (released ones, and routed ones past their deadline plus `grace` with no proof
    /// known: expired). Returns the new state and the ids it resolved (now dropped from memory),
    /// or `None` when nothing is waiting.
    #[allow(clippy::type_complexity)]
    pub fn merge_answered(
        &mut self,
        key: &Signer,
        now: u64,
        grace: u64,
    ) -> Result<Option<(Signed<IouState>, Vec<u64>)>, Rejection> {
        let (seq, mut total, mut resolved) = match &self.out_state {
            Some(s) => (s.body().seq, s.body().total, s.body().resolved.clone()),
            None => (0, Total::ZERO, ResolvedSet::new()),
        };
        let mut merged = Vec::new();
        for (id, c) in &self.out {
            if !c.is_mergeable(now, grace) {
                continue;
            }
            // A full list takes no new id, except the watermark itself: that one folds the
            // list and makes room (without it, a line whose oldest offer is answered last
            // could never merge again).
            let grows = !resolved.contains(*id) && *id != resolved.watermark();
            if resolved.listed_len() >= MAX_RESOLVED_ABOVE && grows {
                break;
            }
            if c.is_owed() {
                // A u128 total: overflows only beyond 2^128 minor units of lifetime turnover.
                total = total
                    .checked_add(c.iou.body().amount)
                    .ok_or(Rejection::Overflow)?;
            }
            resolved.insert(*id);
            merged.push(*id);
        }
        if merged.is_empty() {
            return Ok(None);
        }
        let state = key.sign(IouState {
            line: self.out_line(),
            seq: seq + 1,
            total,
            resolved,
        });
        for id in &merged {
            self.out.remove(*id);
        }
        self.out_state = Some(state.clone());
        Ok(Some((state, merged)))
    }

    /// The holder's side: takes the peer's new IOU state if it follows every rule. Returns the
    /// ids it resolved (dropped from memory), or `None` if it is the state already held.
    ///
    /// Every IOU it resolves must be counted iff it is owed to me: accepted direct ones, and
    /// routed ones I claimed with a proof. A routed IOU I accepted without a proof may be
    /// dropped only once my clock has passed its hard deadline.
    pub fn handle_state(
        &mut self,
        state: Signed<IouState>,
        now: u64,
    ) -> Result<Option<Vec<u64>>, Rejection> {
        let body = state.body();
        if body.line != self.in_line() {
            return Err(Rejection::WrongLine(format!(
                "expected {}, got {}",
                self.in_line(),
                body.line
            )));
        }
        let empty = ResolvedSet::new();
        let (held_seq, held_total, held_resolved) = match &self.in_state {
            Some(s) => (s.body().seq, s.body().total, &s.body().resolved),
            None => (0, Total::ZERO, &empty),
        };
        if body.seq < held_seq {
            return Err(Rejection::StaleSeq {
                held: held_seq,
                got: body.seq,
            });
        }
        if body.seq == held_seq {
            return match &self.in_state {
                Some(held) if held.same_body(&state) => Ok(None),
                Some(_) => Err(Rejection::Equivocation { seq: body.seq }),
                // Seq 0 is the empty state nobody signs (the first state is seq 1): not a second
                // history, so not evidence of misbehaviour.
                None => Err(Rejection::StaleSeq {
                    held: held_seq,
                    got: body.seq,
                }),
            };
        }
        let Some(grown) = body.total.checked_sub(held_total) else {
            return Err(Rejection::TotalDecreased {
                held: held_total.minor(),
                got: body.total.minor(),
            });
        };
        if !body.resolved.is_superset_of(held_resolved) {
            return Err(Rejection::ResolvedShrank);
        }
        let newly: Vec<u64> = self
            .inn
            .keys()
            .copied()
            .filter(|id| body.resolved.contains(*id))
            .collect();
        let mut owed = 0u128;
        for c in newly.iter().filter_map(|id| self.inn.get(id)) {
            if c.is_owed() {
                owed = owed
                    .checked_add(u128::from(c.iou.body().amount.minor()))
                    .ok_or(Rejection::Overflow)?;
            } else if c.is_pending() && now < c.iou.body().expires_at {
                return Err(Rejection::NotExpired {
                    id: c.iou.body().id,
                });
            }
        }
        if grown < owed {
            return Err(Rejection::UncountedFulfilled {
                missing: owed - grown,
            });
        }
        if grown > owed {
            return Err(Rejection::UnconsentedIncrease {
                excess: grown - owed,
            });
        }
        for id in &newly {
            self.inn.remove(*id);
        }
        self.in_state = Some(state);
        Ok(Some(newly))
    }
}
