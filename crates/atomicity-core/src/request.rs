//! Payment requests, pure: a payee asks for an amount that many payers fill in parts, each by a
//! method the request accepts (credit, Lightning, on-chain), as in the design document's dinner
//! ("I post a request for $270 ... some paid in credit, some to my on-chain address, others to
//! my Lightning node").
//!
//! The payee publishes the request's [`RequestTerms`] as the value of a signed document at
//! [`request_path`] (see [`crate::published`]) and hands out its URI:
//!
//! ```text
//! atomicity:<payee z-base32>?request=<id, 32 hex>&amount=270.00&asset=USD[&memo=dinner]
//! ```
//!
//! The URI only says where to look: a payer fetches the document from the payee, checks its
//! signature, and trusts nothing else. To pay part of it, the payer asks the payee for a *fill*
//! of an amount by one method. The payee's [`RequestBook`] reserves that amount first, so the
//! sum of what is reserved, awaiting confirmation and paid never exceeds the request: a fill
//! that would overpay is refused before anything is paid. The reservation then carries what
//! the method needs (a credit invoice, a Lightning invoice, an on-chain transaction id) until
//! the payment is proven (the invoice paid, the Lightning preimage shown, the transaction
//! confirmed by the payee) or given up.

use std::fmt;
use std::str::FromStr;

use pkarr::PublicKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::invoice::SCHEME;
use crate::objects::MAX_MEMO_LEN;

/// The folder of published payment requests; a request lives at [`request_path`].
pub const REQUESTS_DIR: &str = "/pub/atomicity/v1/requests/";
/// Most fills one request keeps (paid, pending or given up).
pub const MAX_FILLS: usize = 1024;
/// Most fills of one request that may be reserved or awaiting confirmation at once.
pub const MAX_OPEN_FILLS: usize = 64;
/// Longest on-chain address or transaction id, in bytes.
pub const MAX_REFERENCE_LEN: usize = 128;
/// The most satoshis per unit of the request's asset a request may name (10^12: a unit worth
/// ten thousand bitcoin), so that conversions stay far from overflow.
pub const MAX_SATS_PER_UNIT: u64 = 1_000_000_000_000;

/// A request's id: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub [u8; 16]);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for RequestId {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<RequestId, RequestError> {
        let bad = || RequestError::Bad {
            field: "id",
            why: "a request id is 32 hex digits".into(),
        };
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let bytes = hex::decode(s).map_err(|_| bad())?;
        Ok(RequestId(bytes.try_into().map_err(|_| bad())?))
    }
}

/// Where the request `id` is published.
pub fn request_path(id: &RequestId) -> String {
    format!("{REQUESTS_DIR}{id}")
}

/// A way to pay a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// An IOU to the payee, through the credit network (a witness-conditional invoice).
    Credit,
    /// A Lightning payment to an invoice the payee makes for the fill.
    Lightning,
    /// A bitcoin transaction to the payee's address, confirmed by the payee.
    Onchain,
}

impl MethodKind {
    /// Every method, in the order payers are offered them.
    pub const ALL: [MethodKind; 3] = [
        MethodKind::Credit,
        MethodKind::Lightning,
        MethodKind::Onchain,
    ];

    /// `credit`, `lightning` or `onchain`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Credit => "credit",
            MethodKind::Lightning => "lightning",
            MethodKind::Onchain => "onchain",
        }
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodKind {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<MethodKind, RequestError> {
        MethodKind::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| RequestError::Bad {
                field: "method",
                why: format!("{s:?} is not credit, lightning or onchain"),
            })
    }
}

/// One accepted method with what a payer needs to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Method {
    /// Credit in the request's asset.
    Credit,
    /// Lightning, at a rate fixed by the payee.
    Lightning {
        /// Satoshis per whole unit of the request's asset.
        sats_per_unit: u64,
    },
    /// On-chain bitcoin to `address`, at a rate fixed by the payee.
    Onchain {
        /// The payee's bitcoin address.
        address: String,
        /// Satoshis per whole unit of the request's asset.
        sats_per_unit: u64,
    },
}

impl Method {
    /// Its kind.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Credit => MethodKind::Credit,
            Method::Lightning { .. } => MethodKind::Lightning,
            Method::Onchain { .. } => MethodKind::Onchain,
        }
    }

    fn sats_per_unit(&self) -> Option<u64> {
        match self {
            Method::Credit => None,
            Method::Lightning { sats_per_unit } | Method::Onchain { sats_per_unit, .. } => {
                Some(*sats_per_unit)
            }
        }
    }
}

/// Why a request, its URI or a fill's input is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Not JSON, or not the request's shape.
    #[error("malformed payment request: {0}")]
    Malformed(String),
    /// A field that does not pass its check.
    #[error("bad {field} in the payment request: {why}")]
    Bad {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The conversion to satoshis does not fit.
    #[error("the amount in satoshis is too large")]
    Overflow,
}

fn bad(field: &'static str, why: impl ToString) -> RequestError {
    RequestError::Bad {
        field,
        why: why.to_string(),
    }
}

/// What a payment request asks for: the value of its signed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTerms {
    /// Its id.
    pub id: RequestId,
    /// Who is paid (the key that signs the document).
    pub payee: PublicKey,
    /// How much in all.
    pub amount: Amount,
    /// In which asset.
    pub asset: Asset,
    /// What it is for.
    pub memo: String,
    /// How it may be paid: at least one, each kind at most once.
    pub methods: Vec<Method>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds: no fill is taken from then on.
    pub expires_at: u64,
}

/// The JSON form of [`RequestTerms`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsJson {
    id: String,
    payee: String,
    amount: String,
    asset: String,
    #[serde(default)]
    memo: String,
    methods: Vec<Method>,
    created_at: u64,
    expires_at: u64,
}

impl RequestTerms {
    /// Checks the terms: a non-zero amount, a memo of at most 256 bytes, 1–3 methods of
    /// different kinds, rates in `1..=MAX_SATS_PER_UNIT`, an address of 1–128 printable ASCII
    /// bytes, and `created_at < expires_at`.
    pub fn check(&self) -> Result<(), RequestError> {
        if self.amount.is_zero() {
            return Err(bad("amount", "must not be zero"));
        }
        if self.memo.len() > MAX_MEMO_LEN {
            return Err(bad("memo", "longer than 256 bytes"));
        }
        if self.methods.is_empty() {
            return Err(bad("methods", "none given"));
        }
        for (i, method) in self.methods.iter().enumerate() {
            if self.methods[..i].iter().any(|m| m.kind() == method.kind()) {
                return Err(bad("methods", format!("{} is listed twice", method.kind())));
            }
            if let Some(rate) = method.sats_per_unit()
                && !(1..=MAX_SATS_PER_UNIT).contains(&rate)
            {
                return Err(bad("sats_per_unit", format!("{rate} is not 1 to 10^12")));
            }
            if let Method::Onchain { address, .. } = method
                && (address.is_empty()
                    || address.len() > MAX_REFERENCE_LEN
                    || !address.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                return Err(bad("address", "1 to 128 letters and digits"));
            }
        }
        if self.created_at >= self.expires_at {
            return Err(bad("expires_at", "not after created_at"));
        }
        Ok(())
    }

    /// The document's value: compact JSON, fields in a fixed order.
    pub fn to_json(&self) -> String {
        let json = TermsJson {
            id: self.id.to_string(),
            payee: self.payee.to_z32(),
            amount: self.asset.format(self.amount),
            asset: self.asset.to_string(),
            memo: self.memo.clone(),
            methods: self.methods.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        };
        // A struct of strings, numbers and enums always serializes.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Reads and checks a document's value.
    pub fn from_json(text: &str) -> Result<RequestTerms, RequestError> {
        if text.len() > crate::published::MAX_DOCUMENT_LEN {
            return Err(RequestError::Malformed("too large".into()));
        }
        let json: TermsJson =
            serde_json::from_str(text).map_err(|e| RequestError::Malformed(e.to_string()))?;
        let asset: Asset = json.asset.parse().map_err(|e| bad("asset", e))?;
        let terms = RequestTerms {
            id: json.id.parse()?,
            payee: crate::parse_key(&json.payee).map_err(|e| bad("payee", e))?,
            amount: asset
                .parse_amount(&json.amount)
                .map_err(|e| bad("amount", e))?,
            asset,
            memo: json.memo,
            methods: json.methods,
            created_at: json.created_at,
            expires_at: json.expires_at,
        };
        terms.check()?;
        Ok(terms)
    }

    /// The `atomicity:` URI to share (a QR code's content).
    pub fn to_uri(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("request", &self.id.to_string());
        query.append_pair("amount", &self.asset.format(self.amount));
        query.append_pair("asset", &self.asset.to_string());
        if !self.memo.is_empty() {
            query.append_pair("memo", &self.memo);
        }
        format!("{SCHEME}{}?{}", self.payee.to_z32(), query.finish())
    }

    /// The accepted method of `kind`, if any.
    pub fn method(&self, kind: MethodKind) -> Option<&Method> {
        self.methods.iter().find(|m| m.kind() == kind)
    }

    /// What `amount` of the request's asset is in satoshis by `kind`'s rate, rounded up (the
    /// payer pays the fraction). `None` for credit, or a method the request does not accept.
    pub fn sats_for(&self, kind: MethodKind, amount: Amount) -> Result<Option<u64>, RequestError> {
        let Some(rate) = self.method(kind).and_then(Method::sats_per_unit) else {
            return Ok(None);
        };
        let unit = 10u128.pow(u32::from(self.asset.scale()));
        let scaled = u128::from(amount.minor())
            .checked_mul(u128::from(rate))
            .ok_or(RequestError::Overflow)?;
        let sats = scaled.div_ceil(unit);
        u64::try_from(sats)
            .map(Some)
            .map_err(|_| RequestError::Overflow)
    }
}

/// What a request URI names; the amount and asset are hints, the signed document decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestUri {
    /// The payee.
    pub payee: PublicKey,
    /// The request.
    pub id: RequestId,
}

impl RequestUri {
    /// Parses `atomicity:<key>?request=<id>[&...]`.
    pub fn parse(uri: &str) -> Result<RequestUri, RequestError> {
        let rest = uri
            .trim()
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("uri", "a payment request starts with `atomicity:`"))?;
        let (payee, query) = rest.split_once('?').unwrap_or((rest, ""));
        let payee = crate::parse_key(payee).map_err(|e| bad("payee", e))?;
        let mut id = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name == "request" {
                if id.is_some() {
                    return Err(bad("uri", "request= given twice"));
                }
                id = Some(value.parse()?);
            }
        }
        let id = id.ok_or_else(|| bad("uri", "no request= (is it an invoice?)"))?;
        Ok(RequestUri { payee, id })
    }
}

/// Where a fill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillStatus {
    /// Held for the payer until `reserved_until`: the payment is under way.
    Reserved,
    /// The payer says it paid (an on-chain transaction); the payee has to confirm.
    Claimed,
    /// Paid: counts toward the request.
    Paid,
    /// Given up (expired, failed, or rejected by the payee): counts for nothing.
    Released,
    /// Proven paid after its reservation was given up, when the request had no room left: the
    /// payee owes it back to the payer.
    Excess,
}

impl FillStatus {
    /// The status as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FillStatus::Reserved => "reserved",
            FillStatus::Claimed => "claimed",
            FillStatus::Paid => "paid",
            FillStatus::Released => "released",
            FillStatus::Excess => "excess",
        }
    }

    fn is_open(self) -> bool {
        matches!(self, FillStatus::Reserved | FillStatus::Claimed)
    }
}

/// One payer's part of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Its number within the request (1, 2, ...).
    pub id: u32,
    /// How it is paid.
    pub method: MethodKind,
    /// How much of the request's asset it fills (stored as minor units).
    #[serde(with = "minor_units")]
    pub amount: Amount,
    /// What it costs in satoshis (Lightning and on-chain).
    pub sats: Option<u64>,
    /// What ties it to its payment: the credit or Lightning invoice's payment hash (hex), or
    /// the on-chain transaction id.
    pub reference: String,
    /// Who says they pay it (z-base32), if they said.
    pub payer: Option<String>,
    /// Its status.
    pub status: FillStatus,
    /// Unix seconds: when it was asked for.
    pub created_at: u64,
    /// Unix seconds: a reserved fill is given up from then on.
    pub reserved_until: u64,
    /// The secret the payee handed the payer with the fill, with which the payer may give the
    /// fill up at once when its payment fails (kept by the payee only; never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_key: Option<String>,
}

/// An [`Amount`] stored as its integer minor units.
mod minor_units {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::amount::Amount;

    pub fn serialize<S: Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(amount.minor())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        u64::deserialize(d).map(Amount::from_minor)
    }
}

/// Why a fill is refused or cannot change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FillRefusal {
    /// The request expired.
    #[error("the payment request expired")]
    Expired,
    /// The payee cancelled it.
    #[error("the payment request was cancelled")]
    Cancelled,
    /// Nothing is left to pay.
    #[error("the payment request is already filled")]
    Filled,
    /// The request does not accept this method.
    #[error("the payment request does not accept {0}")]
    MethodNotAccepted(MethodKind),
    /// A zero amount.
    #[error("the amount must not be zero")]
    ZeroAmount,
    /// More than what is left (reserved fills count as taken).
    #[error("that would overpay: {left} {asset} is left to fill, {asked} {asset} was offered")]
    Overpay {
        /// What is left (decimal).
        left: String,
        /// What was asked (decimal).
        asked: String,
        /// The asset.
        asset: String,
    },
    /// Too many fills under way, or in all.
    #[error("too many fills on this request ({0} at most)")]
    TooMany(usize),
    /// No fill has that number.
    #[error("no fill {0} on this request")]
    UnknownFill(u32),
    /// The fill is not in a status that allows the change.
    #[error("fill {id} is {status}, so it cannot be {change}")]
    WrongStatus {
        /// The fill.
        id: u32,
        /// Its status.
        status: &'static str,
        /// The change asked for.
        change: &'static str,
    },
    /// The reference does not fit.
    #[error("bad reference: 1 to 128 letters and digits")]
    BadReference,
    /// The release key does not match the fill's.
    #[error("fill {0} is not yours to release")]
    NotYours(u32),
    /// Another fill already names this reference (an on-chain transaction claimed twice).
    #[error("another fill of this request already names {0}")]
    DuplicateReference(String),
}

/// Where the whole request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Taking fills.
    Open,
    /// Paid in full.
    Filled,
    /// Expired before it was filled.
    Expired,
    /// Cancelled by the payee.
    Cancelled,
}

impl RequestStatus {
    /// The status as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Filled => "filled",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
        }
    }
}

/// The sums over a request's fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Paid.
    pub paid: Amount,
    /// Reserved or awaiting confirmation.
    pub pending: Amount,
    /// Neither: still free to fill.
    pub left: Amount,
    /// Proven paid with no room left (owed back to payers).
    pub excess: Amount,
}

/// The payee's book of one request: its terms and its fills. Every change keeps
/// `paid + pending <= amount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBook {
    /// The terms, as published.
    pub terms: RequestTerms,
    /// Every fill, in order.
    pub fills: Vec<Fill>,
    /// Whether the payee cancelled it.
    pub cancelled: bool,
}

impl RequestBook {
    /// A new request with no fills.
    pub fn new(terms: RequestTerms) -> RequestBook {
        RequestBook {
            terms,
            fills: Vec::new(),
            cancelled: false,
        }
    }

    /// The sums over the fills.
    pub fn progress(&self) -> Progress {
        let sum = |pick: &dyn Fn(FillStatus) -> bool| {
            self.fills
                .iter()
                .filter(|f| pick(f.status))
                .fold(0u128, |acc, f| acc + u128::from(f.amount.minor()))
        };
        let paid = sum(&|s| s == FillStatus::Paid);
        let pending = sum(&FillStatus::is_open);
        let excess = sum(&|s| s == FillStatus::Excess);
        let total = u128::from(self.terms.amount.minor());
        // The book never lets paid + pending exceed the amount; clamp anyway.
        let to_amount = |v: u128| Amount::from_minor(u64::try_from(v.min(total)).unwrap_or(0));
        Progress {
            paid: to_amount(paid),
            pending: to_amount(pending),
            left: to_amount(total.saturating_sub(paid + pending)),
            excess: Amount::from_minor(u64::try_from(excess).unwrap_or(u64::MAX)),
        }
    }

    /// Where the request stands at `now`.
    pub fn status(&self, now: u64) -> RequestStatus {
        if self.progress().paid == self.terms.amount {
            RequestStatus::Filled
        } else if self.cancelled {
            RequestStatus::Cancelled
        } else if now >= self.terms.expires_at {
            RequestStatus::Expired
        } else {
            RequestStatus::Open
        }
    }

    /// Checks that a fill of `amount` by `method` would be taken at `now`, without taking it.
    pub fn check_fill(
        &self,
        method: MethodKind,
        amount: Amount,
        now: u64,
    ) -> Result<(), FillRefusal> {
        match self.status(now) {
            RequestStatus::Open => {}
            RequestStatus::Filled => return Err(FillRefusal::Filled),
            RequestStatus::Expired => return Err(FillRefusal::Expired),
            RequestStatus::Cancelled => return Err(FillRefusal::Cancelled),
        }
        if self.terms.method(method).is_none() {
            return Err(FillRefusal::MethodNotAccepted(method));
        }
        if amount.is_zero() {
            return Err(FillRefusal::ZeroAmount);
        }
        let left = self.progress().left;
        if left.is_zero() {
            return Err(FillRefusal::Filled);
        }
        if amount > left {
            return Err(FillRefusal::Overpay {
                left: self.terms.asset.format(left),
                asked: self.terms.asset.format(amount),
                asset: self.terms.asset.to_string(),
            });
        }
        if self.fills.len() >= MAX_FILLS {
            return Err(FillRefusal::TooMany(MAX_FILLS));
        }
        if self.fills.iter().filter(|f| f.status.is_open()).count() >= MAX_OPEN_FILLS {
            return Err(FillRefusal::TooMany(MAX_OPEN_FILLS));
        }
        Ok(())
    }

    /// Takes a fill: checked as [`RequestBook::check_fill`], then held as `Reserved` until
    /// `reserved_until` (or, for an on-chain payment already made, `Claimed` with its
    /// transaction id as `reference`). Returns the new fill.
    #[allow(clippy::too_many_arguments)]
    pub fn reserve(
        &mut self,
        method: MethodKind,
        amount: Amount,
        reference: String,
        payer: Option<String>,
        now: u64,
        reserved_until: u64,
    ) -> Result<&Fill, FillRefusal> {
        self.check_fill(method, amount, now)?;
        if reference.len() > MAX_REFERENCE_LEN
            || !reference.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(FillRefusal::BadReference);
        }
        if self.fill_by_reference(&reference).is_some() {
            return Err(FillRefusal::DuplicateReference(reference));
        }
        let sats = self
            .terms
            .sats_for(method, amount)
            .map_err(|_| FillRefusal::ZeroAmount)?;
        let id =
            u32::try_from(self.fills.len() + 1).map_err(|_| FillRefusal::TooMany(MAX_FILLS))?;
        let status = if method == MethodKind::Onchain {
            FillStatus::Claimed
        } else {
            FillStatus::Reserved
        };
        self.fills.push(Fill {
            id,
            method,
            amount,
            sats,
            reference,
            payer,
            status,
            created_at: now,
            reserved_until,
            release_key: None,
        });
        self.fills.last().ok_or(FillRefusal::UnknownFill(id))
    }

    fn fill_mut(&mut self, id: u32) -> Result<&mut Fill, FillRefusal> {
        self.fills
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or(FillRefusal::UnknownFill(id))
    }

    /// The fill's payment is proven. A reserved or claimed fill becomes `Paid`; a fill given
    /// up before becomes `Paid` if the request still has room for it, else `Excess`. Returns
    /// the new status (proving a paid fill again changes nothing).
    pub fn mark_paid(&mut self, id: u32) -> Result<FillStatus, FillRefusal> {
        let left = self.progress().left;
        let fill = self.fill_mut(id)?;
        fill.status = match fill.status {
            FillStatus::Reserved | FillStatus::Claimed | FillStatus::Paid => FillStatus::Paid,
            FillStatus::Excess => FillStatus::Excess,
            FillStatus::Released if fill.amount <= left => FillStatus::Paid,
            FillStatus::Released => FillStatus::Excess,
        };
        Ok(fill.status)
    }

    /// Gives a reserved or claimed fill up (its payment failed, or the payee rejects the
    /// claim); releasing it again changes nothing.
    pub fn release(&mut self, id: u32) -> Result<(), FillRefusal> {
        let fill = self.fill_mut(id)?;
        match fill.status {
            FillStatus::Reserved | FillStatus::Claimed => {
                fill.status = FillStatus::Released;
                Ok(())
            }
            FillStatus::Released => Ok(()),
            status => Err(FillRefusal::WrongStatus {
                id,
                status: status.as_str(),
                change: "released",
            }),
        }
    }

    /// The payer gives its reserved fill up at once (its payment failed before anything was
    /// paid), proving it is the payer with the fill's release key. Giving it up again changes
    /// nothing.
    pub fn release_by_payer(&mut self, id: u32, key: &str) -> Result<(), FillRefusal> {
        let fill = self.fill_mut(id)?;
        if fill.release_key.as_deref() != Some(key) {
            return Err(FillRefusal::NotYours(id));
        }
        match fill.status {
            FillStatus::Reserved => {
                fill.status = FillStatus::Released;
                Ok(())
            }
            FillStatus::Released => Ok(()),
            status => Err(FillRefusal::WrongStatus {
                id,
                status: status.as_str(),
                change: "released by its payer (only a reserved fill is)",
            }),
        }
    }

    /// The payee saw a claimed (on-chain) fill's payment arrive: it is paid.
    pub fn confirm(&mut self, id: u32) -> Result<(), FillRefusal> {
        self.check_claimed(id, "confirmed (only a claimed on-chain fill is)")?;
        self.mark_paid(id).map(drop)
    }

    /// The payee never saw a claimed (on-chain) fill's payment: it is given up.
    pub fn reject(&mut self, id: u32) -> Result<(), FillRefusal> {
        self.check_claimed(id, "rejected (only a claimed on-chain fill is)")?;
        self.release(id)
    }

    fn check_claimed(&self, id: u32, change: &'static str) -> Result<(), FillRefusal> {
        let fill = self
            .fills
            .iter()
            .find(|f| f.id == id)
            .ok_or(FillRefusal::UnknownFill(id))?;
        if fill.status == FillStatus::Claimed {
            Ok(())
        } else {
            Err(FillRefusal::WrongStatus {
                id,
                status: fill.status.as_str(),
                change,
            })
        }
    }

    /// Gives up every reserved fill whose time ran out (claimed fills wait for the payee).
    /// Returns the fills released.
    pub fn tick(&mut self, now: u64) -> Vec<u32> {
        let mut released = Vec::new();
        for fill in &mut self.fills {
            if fill.status == FillStatus::Reserved && now >= fill.reserved_until {
                fill.status = FillStatus::Released;
                released.push(fill.id);
            }
        }
        released
    }

    /// The fill whose reference is `reference`, if any.
    pub fn fill_by_reference(&self, reference: &str) -> Option<&Fill> {
        self.fills.iter().find(|f| f.reference == reference)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn terms() -> RequestTerms {
        RequestTerms {
            id: RequestId([7; 16]),
            payee: pkarr::Keypair::from_secret_key(&[1; 32]).public_key(),
            amount: Amount::from_minor(27_000),
            asset: "USD".parse().unwrap(),
            memo: "dinner".into(),
            methods: vec![
                Method::Credit,
                Method::Lightning {
                    sats_per_unit: 1_100,
                },
                Method::Onchain {
                    address: "bcrt1qexample".into(),
                    sats_per_unit: 1_100,
                },
            ],
            created_at: 100,
            expires_at: 1_000,
        }
    }

    #[test]
    fn terms_round_trip_through_json_and_the_uri() {
        let t = terms();
        assert_eq!(RequestTerms::from_json(&t.to_json()).unwrap(), t);
        let uri = RequestUri::parse(&t.to_uri()).unwrap();
        assert_eq!((uri.payee, uri.id), (t.payee.clone(), t.id));
        assert!(t.to_uri().contains("request=07070707"));
    }

    #[test]
    fn bad_terms_are_refused() {
        type Change = Box<dyn Fn(&mut RequestTerms)>;
        let cases: Vec<(&str, Change)> = vec![
            ("amount", Box::new(|t| t.amount = Amount::from_minor(0))),
            ("methods", Box::new(|t| t.methods.clear())),
            ("methods", Box::new(|t| t.methods.push(Method::Credit))),
            (
                "sats_per_unit",
                Box::new(|t| t.methods[1] = Method::Lightning { sats_per_unit: 0 }),
            ),
            (
                "address",
                Box::new(|t| {
                    t.methods[2] = Method::Onchain {
                        address: "no spaces".into(),
                        sats_per_unit: 1,
                    }
                }),
            ),
            ("expires_at", Box::new(|t| t.expires_at = t.created_at)),
            ("memo", Box::new(|t| t.memo = "x".repeat(257))),
        ];
        for (field, change) in cases {
            let mut t = terms();
            change(&mut t);
            match RequestTerms::from_json(&t.to_json()) {
                Err(RequestError::Bad { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        for text in [
            "",
            "[]",
            "{}",
            r#"{"id":"zz"}"#,
            &terms()
                .to_json()
                .replace("\"memo\"", "\"extra\":1,\"memo\""),
        ] {
            assert!(RequestTerms::from_json(text).is_err(), "{text}");
        }
    }

    #[test]
    fn uri_without_a_request_or_with_a_bad_one_is_refused() {
        let key = terms().payee.to_z32();
        for uri in [
            format!("bitcoin:{key}?request=00"),
            format!("atomicity:{key}?amount=1&asset=USD"),
            format!("atomicity:{key}?request=123"),
            format!("atomicity:{key}?request={0}&request={0}", "ab".repeat(16)),
            "atomicity:notakey?request=00".to_string(),
        ] {
            assert!(RequestUri::parse(&uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn sats_round_up_and_credit_has_none() {
        let t = terms();
        // 10.00 USD at 1,100 sat/USD.
        assert_eq!(
            t.sats_for(MethodKind::Lightning, Amount::from_minor(1_000)),
            Ok(Some(11_000))
        );
        // 0.01 USD = 11 sat exactly; 0.001 does not exist, so try a rate that leaves a rest.
        let mut odd = t.clone();
        odd.methods[1] = Method::Lightning { sats_per_unit: 3 };
        assert_eq!(
            odd.sats_for(MethodKind::Lightning, Amount::from_minor(1)),
            Ok(Some(1))
        );
        assert_eq!(
            t.sats_for(MethodKind::Credit, Amount::from_minor(1)),
            Ok(None)
        );
    }

    #[test]
    fn the_dinner_fills_exactly_and_refuses_overpayment() {
        let mut book = RequestBook::new(terms());
        let usd = |m| Amount::from_minor(m);
        book.reserve(MethodKind::Credit, usd(10_000), "aa".into(), None, 200, 900)
            .unwrap();
        book.reserve(
            MethodKind::Lightning,
            usd(9_000),
            "bb".into(),
            None,
            200,
            900,
        )
        .unwrap();
        // 8,000 left: 9,000 more would overpay, and nothing changes.
        let before = book.clone();
        assert!(matches!(
            book.reserve(MethodKind::Onchain, usd(9_000), "cc".into(), None, 200, 900),
            Err(FillRefusal::Overpay { .. })
        ));
        assert_eq!(book, before);
        let f = book
            .reserve(MethodKind::Onchain, usd(8_000), "cc".into(), None, 200, 900)
            .unwrap();
        assert_eq!((f.status, f.sats), (FillStatus::Claimed, Some(88_000)));
        // Only a claimed fill is confirmed or rejected.
        assert!(matches!(
            book.confirm(1),
            Err(FillRefusal::WrongStatus { id: 1, .. })
        ));
        assert_eq!(book.reject(9), Err(FillRefusal::UnknownFill(9)));

        assert_eq!(book.progress().left, usd(0));
        assert_eq!(
            book.reserve(MethodKind::Credit, usd(1), "dd".into(), None, 200, 900),
            Err(FillRefusal::Filled)
        );
        for id in 1..=3 {
            assert_eq!(book.mark_paid(id), Ok(FillStatus::Paid));
        }
        assert_eq!(book.status(300), RequestStatus::Filled);
        assert_eq!(book.progress().paid, usd(27_000));
    }

    #[test]
    fn reservations_run_out_and_late_proofs_count_only_if_there_is_room() {
        let mut book = RequestBook::new(terms());
        let usd = Amount::from_minor;
        book.reserve(
            MethodKind::Lightning,
            usd(20_000),
            "aa".into(),
            None,
            200,
            300,
        )
        .unwrap();
        assert_eq!(book.tick(299), Vec::<u32>::new());
        assert_eq!(book.tick(300), vec![1]);
        book.reserve(MethodKind::Credit, usd(27_000), "bb".into(), None, 301, 900)
            .unwrap();
        // The late Lightning payment finds no room: owed back.
        assert_eq!(book.mark_paid(1), Ok(FillStatus::Excess));
        assert_eq!(book.progress().excess, usd(20_000));
        book.release(2).unwrap();
        assert_eq!(book.progress().left, usd(27_000));
        assert!(matches!(
            book.release(1),
            Err(FillRefusal::WrongStatus { .. })
        ));
        assert_eq!(book.mark_paid(9), Err(FillRefusal::UnknownFill(9)));
        // The payer gives a fill up with its key, and only with it.
        book.reserve(MethodKind::Credit, usd(100), "cc".into(), None, 302, 900)
            .unwrap();
        book.fills[2].release_key = Some("k3".into());
        assert_eq!(
            book.release_by_payer(3, "nope"),
            Err(FillRefusal::NotYours(3))
        );
        assert_eq!(book.fills[2].status, FillStatus::Reserved);
        assert_eq!(book.release_by_payer(3, "k3"), Ok(()));
        assert_eq!(book.fills[2].status, FillStatus::Released);
        assert_eq!(
            book.release_by_payer(1, "k3"),
            Err(FillRefusal::NotYours(1))
        );
    }

    #[test]
    fn closed_requests_and_bad_fills_are_refused() {
        let mut book = RequestBook::new(terms());
        let one = Amount::from_minor(1);
        assert_eq!(
            book.check_fill(MethodKind::Credit, one, 1_000),
            Err(FillRefusal::Expired)
        );
        assert_eq!(
            book.check_fill(MethodKind::Credit, Amount::from_minor(0), 200),
            Err(FillRefusal::ZeroAmount)
        );
        assert_eq!(
            book.reserve(MethodKind::Credit, one, "not hex!".into(), None, 200, 300)
                .map(|_| ()),
            Err(FillRefusal::BadReference)
        );
        // The same transaction cannot fill twice, even once given up.
        book.reserve(MethodKind::Onchain, one, "d1ce".into(), None, 200, 300)
            .unwrap();
        book.reject(1).unwrap();
        assert_eq!(
            book.reserve(MethodKind::Onchain, one, "d1ce".into(), None, 200, 300)
                .map(|_| ()),
            Err(FillRefusal::DuplicateReference("d1ce".into()))
        );
        book.terms.methods.truncate(1);
        assert_eq!(
            book.check_fill(MethodKind::Onchain, one, 200),
            Err(FillRefusal::MethodNotAccepted(MethodKind::Onchain))
        );
        book.cancelled = true;
        assert_eq!(
            book.check_fill(MethodKind::Credit, one, 200),
            Err(FillRefusal::Cancelled)
        );
    }
}
