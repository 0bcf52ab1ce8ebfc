//! Delegated payment accounts: a master key lets a sub key (held by an untrusted app) pay
//! through the master's credit lines, within a scope.
//!
//! The master signs a [`Delegation`] (kind 8): which sub key, how much of each asset per
//! period, to which payees, from when until when. The app signs a [`DelegatedPayment`] order
//! (kind 9) with its sub key and sends both to the master's node, which runs [`check_order`]
//! with what it remembers (the amount spent in the current period, whether the delegation was
//! revoked, whether it saw the order before) and pays only when every check passes.
//!
//! Sans-I/O like the rest of the core: no clock, no randomness. The caller passes `now`, the
//! random ids, and its own records.

use pkarr::PublicKey;
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::objects::MAX_MEMO_LEN;
use crate::signed::{Signed, SignedBody};

/// Most assets one delegation's scope may name.
pub const MAX_SCOPE_ASSETS: usize = 16;
/// Most payees one delegation may allow (none: any payee).
pub const MAX_PAYEES: usize = 64;
/// Longest label, in bytes of UTF-8.
pub const MAX_LABEL_LEN: usize = 64;
/// How far an order's `created_at` may be from the node's clock, either way, in seconds.
/// Orders outside this window are refused, so a node need remember the ids of orders only
/// this long.
pub const MAX_ORDER_SKEW_SECS: u64 = 300;

/// A delegation id: 16 random bytes chosen by the master.
pub type DelegationId = [u8; 16];
/// An order id: 16 random bytes chosen by the app (replay protection).
pub type OrderId = [u8; 16];

/// A spending cap: at most `cap` of `asset` per period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cap {
    /// The asset.
    pub asset: Asset,
    /// The most the sub key may spend of it in one period (greater than zero).
    pub cap: Amount,
}

/// The master's signed grant to a sub key (kind 8, `delegation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    /// Random, chosen by the master; names the delegation everywhere.
    pub id: DelegationId,
    /// The master key, who signs and whose credit lines pay.
    pub master: PublicKey,
    /// The sub key, who signs orders.
    pub sub: PublicKey,
    /// Free text for the master's own view ("coffee app"), at most [`MAX_LABEL_LEN`] bytes.
    pub label: String,
    /// Per asset, the cap per period: 1 to [`MAX_SCOPE_ASSETS`], in strictly increasing order
    /// of asset (code bytes, then scale), caps greater than zero.
    pub caps: Vec<Cap>,
    /// Length of a period in seconds (greater than zero). Periods are fixed windows from
    /// `not_before`.
    pub period_secs: u64,
    /// The keys orders may pay, in strictly increasing byte order, at most [`MAX_PAYEES`];
    /// empty: any payee.
    pub payees: Vec<PublicKey>,
    /// Unix seconds from which orders may be paid.
    pub not_before: u64,
    /// Unix seconds from which orders are refused (after `not_before`).
    pub expires_at: u64,
}

/// Why a delegation's terms are not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ScopeError {
    /// No asset in the scope.
    #[error("a delegation allows at least one asset")]
    NoAsset,
    /// Too many assets.
    #[error("a delegation allows at most {MAX_SCOPE_ASSETS} assets")]
    TooManyAssets,
    /// The same asset twice, or not in increasing order.
    #[error("each asset at most once, in increasing order")]
    AssetOrder,
    /// A cap of zero.
    #[error("a cap must be greater than zero")]
    ZeroCap,
    /// Too many payees.
    #[error("a delegation allows at most {MAX_PAYEES} payees")]
    TooManyPayees,
    /// The same payee twice, or not in increasing order.
    #[error("each payee at most once, in increasing order")]
    PayeeOrder,
    /// A period of zero seconds.
    #[error("the period must be at least one second")]
    ZeroPeriod,
    /// `expires_at` not after `not_before`.
    #[error("a delegation must expire after it starts")]
    Window,
    /// The label is too long.
    #[error("the label is at most {MAX_LABEL_LEN} bytes")]
    LabelTooLong,
    /// The sub key is the master key.
    #[error("the sub key must not be the master key")]
    SubIsMaster,
}

impl ScopeError {
    fn field(self) -> &'static str {
        match self {
            ScopeError::NoAsset
            | ScopeError::TooManyAssets
            | ScopeError::AssetOrder
            | ScopeError::ZeroCap => "caps",
            ScopeError::TooManyPayees | ScopeError::PayeeOrder => "payees",
            ScopeError::ZeroPeriod => "period",
            ScopeError::Window => "expires at",
            ScopeError::LabelTooLong => "label",
            ScopeError::SubIsMaster => "sub key",
        }
    }

    fn why(self) -> &'static str {
        match self {
            ScopeError::NoAsset => "a delegation allows at least one asset",
            ScopeError::TooManyAssets => "too many assets",
            ScopeError::AssetOrder => "each asset at most once, in increasing order",
            ScopeError::ZeroCap => "a cap must be greater than zero",
            ScopeError::TooManyPayees => "too many payees",
            ScopeError::PayeeOrder => "each payee at most once, in increasing order",
            ScopeError::ZeroPeriod => "must be greater than zero",
            ScopeError::Window => "must be after not before",
            ScopeError::LabelTooLong => "too long",
            ScopeError::SubIsMaster => "must not be the master key",
        }
    }
}

impl From<ScopeError> for DecodeError {
    fn from(e: ScopeError) -> DecodeError {
        DecodeError::Invalid {
            field: e.field(),
            why: e.why(),
        }
    }
}

/// One period of a delegation: the fixed window `[starts_at, ends_at)` that `now` falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// `(now - not_before) / period_secs`.
    pub index: u64,
    /// Unix seconds, inclusive.
    pub starts_at: u64,
    /// Unix seconds, exclusive (saturates at `u64::MAX`).
    pub ends_at: u64,
}

impl Delegation {
    /// Sorts the caps by asset and the payees by key, the canonical order (duplicates remain,
    /// and [`Delegation::validate`] refuses them).
    pub fn canonicalize(&mut self) {
        self.caps.sort_by(|a, b| a.asset.cmp(&b.asset));
        self.payees.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    }

    /// Checks every rule of the terms (the decoder checks the same).
    pub fn validate(&self) -> Result<(), ScopeError> {
        if self.sub == self.master {
            return Err(ScopeError::SubIsMaster);
        }
        if self.label.len() > MAX_LABEL_LEN {
            return Err(ScopeError::LabelTooLong);
        }
        if self.caps.is_empty() {
            return Err(ScopeError::NoAsset);
        }
        if self.caps.len() > MAX_SCOPE_ASSETS {
            return Err(ScopeError::TooManyAssets);
        }
        if self.caps.iter().any(|c| c.cap.is_zero()) {
            return Err(ScopeError::ZeroCap);
        }
        if self.caps.windows(2).any(|w| w[0].asset >= w[1].asset) {
            return Err(ScopeError::AssetOrder);
        }
        if self.payees.len() > MAX_PAYEES {
            return Err(ScopeError::TooManyPayees);
        }
        if self
            .payees
            .windows(2)
            .any(|w| w[0].as_bytes() >= w[1].as_bytes())
        {
            return Err(ScopeError::PayeeOrder);
        }
        if self.period_secs == 0 {
            return Err(ScopeError::ZeroPeriod);
        }
        if self.expires_at <= self.not_before {
            return Err(ScopeError::Window);
        }
        Ok(())
    }

    /// The cap on `asset`, if the scope names it.
    pub fn cap_for(&self, asset: &Asset) -> Option<Amount> {
        self.caps.iter().find(|c| &c.asset == asset).map(|c| c.cap)
    }

    /// Whether orders may pay `payee`.
    pub fn allows_payee(&self, payee: &PublicKey) -> bool {
        self.payees.is_empty() || self.payees.contains(payee)
    }

    /// The period `now` falls in; `None` before `not_before` (or with a zero period).
    pub fn period_at(&self, now: u64) -> Option<Period> {
        let since = now.checked_sub(self.not_before)?;
        let index = since.checked_div(self.period_secs)?;
        let offset = index.checked_mul(self.period_secs)?;
        let starts_at = self.not_before.checked_add(offset)?;
        Some(Period {
            index,
            starts_at,
            ends_at: starts_at.saturating_add(self.period_secs),
        })
    }
}

fn read_text(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<String, DecodeError> {
    let bytes = r.bytes(field, max)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
        field,
        why: "not UTF-8",
    })
}

impl SignedBody for Delegation {
    const KIND: u8 = 8;
    const NAME: &'static str = "delegation";

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.id);
        w.key(&self.master);
        w.key(&self.sub);
        w.bytes(self.label.as_bytes());
        // Bounded by MAX_SCOPE_ASSETS when built by this implementation.
        w.u32(self.caps.len() as u32);
        for c in &self.caps {
            w.asset(&c.asset);
            w.amount(c.cap);
        }
        w.u64(self.period_secs);
        // Bounded by MAX_PAYEES when built by this implementation.
        w.u32(self.payees.len() as u32);
        for p in &self.payees {
            w.key(p);
        }
        w.u64(self.not_before);
        w.u64(self.expires_at);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.array("delegation id")?;
        let master = r.key("master")?;
        let sub = r.key("sub key")?;
        let label = read_text(r, "label", MAX_LABEL_LEN)?;
        let count = r.count("caps", MAX_SCOPE_ASSETS)?;
        let caps = (0..count)
            .map(|_| {
                Ok(Cap {
                    asset: r.asset()?,
                    cap: r.amount("cap")?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let period_secs = r.u64("period")?;
        let count = r.count("payees", MAX_PAYEES)?;
        let payees = (0..count)
            .map(|_| r.key("payee"))
            .collect::<Result<Vec<_>, _>>()?;
        let not_before = r.u64("not before")?;
        let expires_at = r.u64("expires at")?;
        let delegation = Delegation {
            id,
            master,
            sub,
            label,
            caps,
            period_secs,
            payees,
            not_before,
            expires_at,
        };
        delegation.validate()?;
        Ok(delegation)
    }

    fn signer(&self) -> &PublicKey {
        &self.master
    }
}

/// An order to pay, signed by a delegation's sub key (kind 9, `delegated-payment`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegatedPayment {
    /// The delegation it spends under.
    pub delegation_id: DelegationId,
    /// Random, chosen by the app: the node pays each order at most once.
    pub order_id: OrderId,
    /// The sub key, who signs (the delegation's `sub`).
    pub sub: PublicKey,
    /// Who is to be paid.
    pub payee: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// How much (greater than zero).
    pub amount: Amount,
    /// A note for the payee, at most [`MAX_MEMO_LEN`] bytes.
    pub memo: String,
    /// Unix seconds, by the app's clock.
    pub created_at: u64,
}

impl SignedBody for DelegatedPayment {
    const KIND: u8 = 9;
    const NAME: &'static str = "delegated-payment";

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.delegation_id);
        w.fixed(&self.order_id);
        w.key(&self.sub);
        w.key(&self.payee);
        w.asset(&self.asset);
        w.amount(self.amount);
        w.bytes(self.memo.as_bytes());
        w.u64(self.created_at);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let delegation_id = r.array("delegation id")?;
        let order_id = r.array("order id")?;
        let sub = r.key("sub key")?;
        let payee = r.key("payee")?;
        let asset = r.asset()?;
        let amount = r.amount("amount")?;
        if amount.is_zero() {
            return Err(DecodeError::Invalid {
                field: "amount",
                why: "must be greater than zero",
            });
        }
        let memo = read_text(r, "memo", MAX_MEMO_LEN)?;
        let created_at = r.u64("created at")?;
        Ok(DelegatedPayment {
            delegation_id,
            order_id,
            sub,
            payee,
            asset,
            amount,
            memo,
            created_at,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.sub
    }
}

/// Why a node refuses a delegated order. Each is the app's (or a forger's) doing; nothing is
/// paid and nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DelegationRefusal {
    /// The delegation is not signed by this node's key (or names another master).
    #[error("the delegation is not signed by this node's key")]
    NotSignedByNode,
    /// The order is not signed by the delegation's sub key.
    #[error("the order is not signed by the delegation's sub key")]
    BadOrderSignature,
    /// The order names another delegation.
    #[error("the order is for another delegation")]
    WrongDelegation,
    /// The master revoked the delegation.
    #[error("the delegation was revoked")]
    Revoked,
    /// Before the delegation's `not_before`.
    #[error("the delegation is valid only from {not_before} (now {now})")]
    NotYetValid {
        /// Unix seconds.
        not_before: u64,
        /// Unix seconds.
        now: u64,
    },
    /// At or after the delegation's `expires_at`.
    #[error("the delegation expired at {expires_at} (now {now})")]
    Expired {
        /// Unix seconds.
        expires_at: u64,
        /// Unix seconds.
        now: u64,
    },
    /// The scope has no cap on the order's asset.
    #[error("asset {0} is not in the delegation's scope")]
    AssetNotInScope(Asset),
    /// The scope lists payees and the order's is not one of them.
    #[error("payee {0} is not allowed by the delegation")]
    PayeeNotAllowed(Box<PublicKey>),
    /// The order would take the period's spending over the cap.
    #[error(
        "over the cap: {} {asset} per period, {} already spent, {} asked",
        asset.format(*cap),
        asset.format(*spent),
        asset.format(*asked)
    )]
    OverCap {
        /// The asset.
        asset: Asset,
        /// The cap per period.
        cap: Amount,
        /// Spent in this period before the order.
        spent: Amount,
        /// The order's amount.
        asked: Amount,
    },
    /// The order's `created_at` is more than [`MAX_ORDER_SKEW_SECS`] from now.
    #[error("the order is stale or from the future: created at {created_at}, now {now}")]
    StaleOrder {
        /// The order's time.
        created_at: u64,
        /// The node's time.
        now: u64,
    },
    /// The node has already seen this order.
    #[error("the order was already used")]
    Replayed,
}

impl DelegationRefusal {
    /// A stable snake_case code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            DelegationRefusal::NotSignedByNode => "forged_delegation",
            DelegationRefusal::BadOrderSignature => "bad_order_signature",
            DelegationRefusal::WrongDelegation => "wrong_delegation",
            DelegationRefusal::Revoked => "revoked",
            DelegationRefusal::NotYetValid { .. } => "not_yet_valid",
            DelegationRefusal::Expired { .. } => "expired",
            DelegationRefusal::AssetNotInScope(_) => "asset_not_in_scope",
            DelegationRefusal::PayeeNotAllowed(_) => "payee_not_allowed",
            DelegationRefusal::OverCap { .. } => "over_cap",
            DelegationRefusal::StaleOrder { .. } => "stale_order",
            DelegationRefusal::Replayed => "replayed_order",
        }
    }
}

/// Decides whether the node whose key is `master` may pay `order` under `delegation` at `now`.
///
/// The caller supplies what it remembers: `spent_this_period` (of the order's asset, in the
/// period `now` falls in: see [`Delegation::period_at`]), whether it `revoked` the delegation
/// and whether it has `seen_order` (its id) before. On `Ok` the caller records the order's
/// amount as spent in the returned period and the order id as seen, durably, before paying.
///
/// The checks, in order: the delegation's signature and master, the order's signature and sub
/// key, the delegation id, revocation, validity window, order freshness, replay, asset, payee,
/// cap.
pub fn check_order(
    delegation: &Signed<Delegation>,
    order: &Signed<DelegatedPayment>,
    master: &PublicKey,
    now: u64,
    spent_this_period: Amount,
    revoked: bool,
    seen_order: bool,
) -> Result<Period, DelegationRefusal> {
    let d = delegation.body();
    let o = order.body();
    if &d.master != master || delegation.verify().is_err() {
        return Err(DelegationRefusal::NotSignedByNode);
    }
    if o.sub != d.sub || order.verify().is_err() {
        return Err(DelegationRefusal::BadOrderSignature);
    }
    if o.delegation_id != d.id {
        return Err(DelegationRefusal::WrongDelegation);
    }
    if revoked {
        return Err(DelegationRefusal::Revoked);
    }
    if now >= d.expires_at {
        return Err(DelegationRefusal::Expired {
            expires_at: d.expires_at,
            now,
        });
    }
    let Some(period) = d.period_at(now) else {
        return Err(DelegationRefusal::NotYetValid {
            not_before: d.not_before,
            now,
        });
    };
    if now.abs_diff(o.created_at) > MAX_ORDER_SKEW_SECS {
        return Err(DelegationRefusal::StaleOrder {
            created_at: o.created_at,
            now,
        });
    }
    if seen_order {
        return Err(DelegationRefusal::Replayed);
    }
    let Some(cap) = d.cap_for(&o.asset) else {
        return Err(DelegationRefusal::AssetNotInScope(o.asset.clone()));
    };
    if !d.allows_payee(&o.payee) {
        return Err(DelegationRefusal::PayeeNotAllowed(Box::new(
            o.payee.clone(),
        )));
    }
    let within = spent_this_period
        .checked_add(o.amount)
        .is_some_and(|total| total <= cap);
    if !within {
        return Err(DelegationRefusal::OverCap {
            asset: o.asset.clone(),
            cap,
            spent: spent_this_period,
            asked: o.amount,
        });
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkarr::Keypair;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;

    fn master() -> Keypair {
        Keypair::from_secret_key(&[1; 32])
    }
    fn sub() -> Keypair {
        Keypair::from_secret_key(&[4; 32])
    }
    fn payee() -> PublicKey {
        Keypair::from_secret_key(&[2; 32]).public_key()
    }
    fn other_payee() -> PublicKey {
        Keypair::from_secret_key(&[3; 32]).public_key()
    }
    fn usd() -> Asset {
        Asset::new("USD", 2).expect("USD")
    }
    fn cents(n: u64) -> Amount {
        Amount::from_minor(n)
    }

    fn terms() -> Delegation {
        Delegation {
            id: [7; 16],
            master: master().public_key(),
            sub: sub().public_key(),
            label: "coffee".into(),
            caps: vec![Cap {
                asset: usd(),
                cap: cents(2000),
            }],
            period_secs: DAY,
            payees: vec![payee()],
            not_before: NOW,
            expires_at: NOW + 30 * DAY,
        }
    }

    fn delegation() -> Signed<Delegation> {
        Signed::sign(terms(), &master())
    }

    fn order_with(f: impl FnOnce(&mut DelegatedPayment)) -> Signed<DelegatedPayment> {
        let mut o = DelegatedPayment {
            delegation_id: [7; 16],
            order_id: [9; 16],
            sub: sub().public_key(),
            payee: payee(),
            asset: usd(),
            amount: cents(500),
            memo: "latte".into(),
            created_at: NOW + 10,
        };
        f(&mut o);
        Signed::sign(o, &sub())
    }

    fn order() -> Signed<DelegatedPayment> {
        order_with(|_| {})
    }

    fn check(
        d: &Signed<Delegation>,
        o: &Signed<DelegatedPayment>,
        now: u64,
        spent: u64,
    ) -> Result<Period, DelegationRefusal> {
        check_order(
            d,
            o,
            &master().public_key(),
            now,
            cents(spent),
            false,
            false,
        )
    }

    #[test]
    fn a_good_order_is_accepted_in_its_period() {
        let period = check(&delegation(), &order(), NOW + 10, 0).expect("accepted");
        assert_eq!(
            period,
            Period {
                index: 0,
                starts_at: NOW,
                ends_at: NOW + DAY
            }
        );
        let later = order_with(|o| o.created_at = NOW + 3 * DAY + 5);
        let period = check(&delegation(), &later, NOW + 3 * DAY + 5, 0).expect("accepted");
        assert_eq!(period.index, 3);
        assert_eq!(period.starts_at, NOW + 3 * DAY);
        // Exactly at the cap is fine.
        assert!(check(&delegation(), &order(), NOW + 10, 1500).is_ok());
    }

    #[test]
    fn round_trips_both_kinds() {
        let d = delegation();
        let back = Signed::<Delegation>::decode_verified(&d.to_bytes()).expect("decodes");
        assert_eq!(back.body(), d.body());
        let o = order();
        let back = Signed::<DelegatedPayment>::decode_verified(&o.to_bytes()).expect("decodes");
        assert_eq!(back.body(), o.body());
    }

    #[test]
    fn a_delegation_signed_by_another_key_is_forged() {
        let forged = Signed::sign(terms(), &Keypair::from_secret_key(&[5; 32]));
        assert_eq!(
            check(&forged, &order(), NOW + 10, 0),
            Err(DelegationRefusal::NotSignedByNode)
        );
        // Genuine, but another node's delegation.
        let theirs = check_order(
            &delegation(),
            &order(),
            &payee(),
            NOW + 10,
            Amount::ZERO,
            false,
            false,
        );
        assert_eq!(theirs, Err(DelegationRefusal::NotSignedByNode));
    }

    #[test]
    fn an_order_not_signed_by_the_sub_key_is_refused() {
        let by_other = Signed::sign(order().body().clone(), &Keypair::from_secret_key(&[5; 32]));
        assert_eq!(
            check(&delegation(), &by_other, NOW + 10, 0),
            Err(DelegationRefusal::BadOrderSignature)
        );
        let other_sub = Keypair::from_secret_key(&[6; 32]);
        let mut body = order().body().clone();
        body.sub = other_sub.public_key();
        let signed = Signed::sign(body, &other_sub);
        assert_eq!(
            check(&delegation(), &signed, NOW + 10, 0),
            Err(DelegationRefusal::BadOrderSignature)
        );
        // A flipped byte in the amount.
        let mut bytes = order().to_bytes();
        let at = bytes.len() - 64 - 8 - 4 - 5 - 1;
        bytes[at] ^= 1;
        let tampered = Signed::<DelegatedPayment>::decode(&bytes).expect("still decodes");
        assert_ne!(tampered.body().amount, order().body().amount);
        assert_eq!(
            check(&delegation(), &tampered, NOW + 10, 0),
            Err(DelegationRefusal::BadOrderSignature)
        );
    }

    #[test]
    fn an_order_for_another_delegation_is_refused() {
        let o = order_with(|o| o.delegation_id = [8; 16]);
        assert_eq!(
            check(&delegation(), &o, NOW + 10, 0),
            Err(DelegationRefusal::WrongDelegation)
        );
    }

    #[test]
    fn a_revoked_delegation_pays_nothing() {
        let r = check_order(
            &delegation(),
            &order(),
            &master().public_key(),
            NOW + 10,
            Amount::ZERO,
            true,
            false,
        );
        assert_eq!(r, Err(DelegationRefusal::Revoked));
    }

    #[test]
    fn outside_the_window_is_refused() {
        let early = order_with(|o| o.created_at = NOW - 1);
        assert_eq!(
            check(&delegation(), &early, NOW - 1, 0),
            Err(DelegationRefusal::NotYetValid {
                not_before: NOW,
                now: NOW - 1
            })
        );
        let end = NOW + 30 * DAY;
        let late = order_with(|o| o.created_at = end);
        assert_eq!(
            check(&delegation(), &late, end, 0),
            Err(DelegationRefusal::Expired {
                expires_at: end,
                now: end
            })
        );
        let last = order_with(|o| o.created_at = end - 1);
        assert!(check(&delegation(), &last, end - 1, 0).is_ok());
    }

    #[test]
    fn stale_and_future_orders_are_refused() {
        let now = NOW + 1000;
        let edge = order_with(|o| o.created_at = now - MAX_ORDER_SKEW_SECS);
        assert!(check(&delegation(), &edge, now, 0).is_ok());
        let stale = order_with(|o| o.created_at = now - MAX_ORDER_SKEW_SECS - 1);
        assert_eq!(
            check(&delegation(), &stale, now, 0),
            Err(DelegationRefusal::StaleOrder {
                created_at: now - MAX_ORDER_SKEW_SECS - 1,
                now
            })
        );
        let future = order_with(|o| o.created_at = now + MAX_ORDER_SKEW_SECS + 1);
        assert_eq!(
            check(&delegation(), &future, now, 0).map_err(|e| e.code()),
            Err("stale_order")
        );
    }

    #[test]
    fn a_seen_order_is_a_replay() {
        let r = check_order(
            &delegation(),
            &order(),
            &master().public_key(),
            NOW + 10,
            Amount::ZERO,
            false,
            true,
        );
        assert_eq!(r, Err(DelegationRefusal::Replayed));
    }

    #[test]
    fn other_assets_and_payees_are_out_of_scope() {
        let eur = Asset::new("EUR", 2).expect("EUR");
        let o = order_with(|o| o.asset = eur.clone());
        assert_eq!(
            check(&delegation(), &o, NOW + 10, 0),
            Err(DelegationRefusal::AssetNotInScope(eur))
        );
        // Same code, other scale: another asset.
        let o = order_with(|o| o.asset = Asset::new("USD", 0).expect("USD:0"));
        assert_eq!(
            check(&delegation(), &o, NOW + 10, 0).map_err(|e| e.code()),
            Err("asset_not_in_scope")
        );
        let o = order_with(|o| o.payee = other_payee());
        assert_eq!(
            check(&delegation(), &o, NOW + 10, 0),
            Err(DelegationRefusal::PayeeNotAllowed(Box::new(other_payee())))
        );
        // No payee list: any payee.
        let mut any = terms();
        any.payees.clear();
        let any = Signed::sign(any, &master());
        assert!(check(&any, &o, NOW + 10, 0).is_ok());
    }

    #[test]
    fn over_the_cap_is_refused_with_the_numbers() {
        let o = order_with(|o| o.amount = cents(1600));
        let refusal = check(&delegation(), &o, NOW + 10, 500).expect_err("over");
        assert_eq!(
            refusal,
            DelegationRefusal::OverCap {
                asset: usd(),
                cap: cents(2000),
                spent: cents(500),
                asked: cents(1600)
            }
        );
        assert_eq!(
            refusal.to_string(),
            "over the cap: 20.00 USD per period, 5.00 already spent, 16.00 asked"
        );
        let one_cent = order_with(|o| o.amount = cents(1));
        assert_eq!(
            check(&delegation(), &one_cent, NOW + 10, 2000).map_err(|e| e.code()),
            Err("over_cap")
        );
        // Overflow is over the cap, not a panic.
        assert_eq!(
            check(&delegation(), &one_cent, NOW + 10, u64::MAX).map_err(|e| e.code()),
            Err("over_cap")
        );
    }

    #[test]
    fn the_decoder_refuses_bad_terms() {
        let bad = |f: fn(&mut Delegation)| {
            let mut t = terms();
            f(&mut t);
            let bytes = Signed::sign(t, &master()).to_bytes();
            Signed::<Delegation>::decode(&bytes).expect_err("refused")
        };
        assert!(matches!(
            bad(|t| t.caps.clear()),
            DecodeError::Invalid { field: "caps", .. }
        ));
        assert!(matches!(
            bad(|t| t.caps[0].cap = Amount::ZERO),
            DecodeError::Invalid { field: "caps", .. }
        ));
        assert!(matches!(
            bad(|t| t.caps.push(t.caps[0].clone())),
            DecodeError::Invalid { field: "caps", .. }
        ));
        assert!(matches!(
            bad(|t| t.payees.push(t.payees[0].clone())),
            DecodeError::Invalid {
                field: "payees",
                ..
            }
        ));
        assert!(matches!(
            bad(|t| t.period_secs = 0),
            DecodeError::Invalid {
                field: "period",
                ..
            }
        ));
        assert!(matches!(
            bad(|t| t.expires_at = t.not_before),
            DecodeError::Invalid {
                field: "expires at",
                ..
            }
        ));
        assert!(matches!(
            bad(|t| t.label = "x".repeat(MAX_LABEL_LEN + 1)),
            DecodeError::TooLong { field: "label", .. }
        ));
        assert!(matches!(
            bad(|t| t.sub = t.master.clone()),
            DecodeError::Invalid {
                field: "sub key",
                ..
            }
        ));
        assert!(matches!(
            bad(|t| t.caps = (0..=MAX_SCOPE_ASSETS)
                .map(|i| Cap {
                    asset: Asset::new(&format!("A{i:02}"), 2).expect("asset"),
                    cap: Amount::from_minor(1),
                })
                .collect()),
            DecodeError::TooLong { field: "caps", .. }
        ));
        // Payees out of order.
        let mut t = terms();
        t.payees = vec![payee(), other_payee()];
        t.canonicalize();
        assert_eq!(t.validate(), Ok(()));
        t.payees.reverse();
        assert_eq!(t.validate(), Err(ScopeError::PayeeOrder));
        // A zero-amount order.
        let bytes = order_with(|o| o.amount = Amount::ZERO).to_bytes();
        assert!(Signed::<DelegatedPayment>::decode(&bytes).is_err());
    }

    #[test]
    fn orders_carry_no_other_kind_of_signature() {
        // A delegation's bytes are not an order's, and the other way round.
        assert!(Signed::<DelegatedPayment>::decode(&delegation().to_bytes()).is_err());
        assert!(Signed::<Delegation>::decode(&order().to_bytes()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever orders arrive, in whatever amounts and at whatever times, the node that
        /// records each accepted order's amount in its period never lets one period's total
        /// pass the cap.
        #[test]
        fn accepted_orders_never_pass_the_cap(
            cap in 1u64..5_000,
            period in 1u64..500,
            steps in proptest::collection::vec((0u64..200, 1u64..3_000), 1..40),
        ) {
            let mut t = terms();
            t.caps[0].cap = cents(cap);
            t.period_secs = period;
            let d = Signed::sign(t, &master());
            let mut spent: std::collections::BTreeMap<u64, u64> = Default::default();
            let mut now = NOW;
            for (i, (advance, amount)) in steps.into_iter().enumerate() {
                now += advance;
                let o = order_with(|o| {
                    o.order_id = [i as u8; 16];
                    o.amount = cents(amount);
                    o.created_at = now;
                });
                let index = d.body().period_at(now).expect("in window").index;
                let before = spent.get(&index).copied().unwrap_or(0);
                match check(&d, &o, now, before) {
                    Ok(p) => {
                        prop_assert_eq!(p.index, index);
                        let total = before + amount;
                        prop_assert!(total <= cap, "period {} spent {} > cap {}", index, total, cap);
                        spent.insert(index, total);
                    }
                    Err(DelegationRefusal::OverCap { spent: s, asked, .. }) => {
                        prop_assert_eq!(s.minor(), before);
                        prop_assert!(before + asked.minor() > cap);
                    }
                    Err(e) => prop_assert!(false, "unexpected refusal {e}"),
                }
            }
        }
    }
}
