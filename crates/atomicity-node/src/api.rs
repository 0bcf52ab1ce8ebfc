//! JSON shapes of the local API (shared by the server, the CLI and tests). Amounts are decimal
//! strings in the asset's unit; keys are z-base32.

use serde::{Deserialize, Serialize};

/// `GET /v1/id`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdResponse {
    /// This node's public key.
    pub key: String,
    /// Its peer-facing URL.
    pub node_url: String,
}

/// `POST /v1/peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddPeerRequest {
    /// The peer's key.
    pub key: String,
    /// Its peer API base URL.
    pub url: Option<String>,
}

/// One row of `GET /v1/peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerRow {
    /// The peer's key.
    pub key: String,
    /// Its URL, if known.
    pub url: Option<String>,
}

/// `POST /v1/lines`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetLineRequest {
    /// The peer.
    pub peer: String,
    /// The asset, e.g. `USD` or `HOUR:0`.
    pub asset: String,
    /// How much the peer may owe me (unchanged if absent).
    pub accept: Option<String>,
    /// How much I am willing to owe the peer (unchanged if absent).
    pub issue: Option<String>,
    /// My fixed fee for forwarding routed payments to the peer, decimal (unchanged if absent).
    #[serde(default)]
    pub fee_base: Option<String>,
    /// My proportional fee for forwarding to the peer, in millionths (unchanged if absent).
    #[serde(default)]
    pub fee_ppm: Option<u32>,
}

/// `POST /v1/pay`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayRequest {
    /// The payee.
    pub peer: String,
    /// Decimal amount.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// A note for the payee.
    #[serde(default)]
    pub memo: String,
    /// How long to wait for the payee's answer before answering `pending` (default 10 s).
    pub wait_ms: Option<u64>,
    /// Routes through intermediate keys (each in order, neither payer nor payee); several
    /// routes split the amount (multi-path). Empty: a direct payment. A routed payment without
    /// an invoice is payer-published: the payer publishes the secret once the last hop issued
    /// to the payee, so the payee may be offline.
    #[serde(default)]
    pub routes: Vec<Vec<String>>,
}

/// `POST /v1/invoices`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// Decimal amount to receive.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// A note for the payer.
    #[serde(default)]
    pub memo: String,
    /// Seconds until the hard deadline (default 600).
    pub expires_in: Option<u64>,
}

/// An invoice of mine (`POST /v1/invoices`, `GET /v1/invoices/{hash}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoiceRow {
    /// The `atomicity:` URI to hand the payer.
    pub invoice: String,
    /// Hex payment hash.
    pub hash: String,
    /// Decimal amount.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// `open`, `publishing`, `paid` or `failed`.
    pub status: String,
    /// Unix seconds: the hard deadline.
    pub expires_at: u64,
    /// Memo.
    pub memo: String,
}

/// `POST /v1/invoices/pay`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayInvoiceRequest {
    /// The `atomicity:` URI.
    pub invoice: String,
    /// Routes as for [`PayRequest::routes`]; empty: pay the payee directly (a line is needed).
    #[serde(default)]
    pub routes: Vec<Vec<String>>,
    /// How long to wait for the outcome before answering `pending` (default 30 s).
    pub wait_ms: Option<u64>,
}

/// `POST /peer/v1/quote` (peer API, plain JSON): what each hop of a route must receive to
/// deliver `amount` to the last key of `route`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteRequest {
    /// The asset.
    pub asset: String,
    /// Decimal amount the last key must receive.
    pub amount: String,
    /// The keys after the asked node, ending with the payee (1 to 16).
    pub route: Vec<String>,
}

/// One hop of a quote.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteHop {
    /// The hop's key.
    pub key: String,
    /// Decimal amount it must receive.
    pub amount: String,
}

/// The answer to a quote: the asked node first, the payee last.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteResponse {
    /// Each hop and what it must receive.
    pub hops: Vec<QuoteHop>,
}

/// The answer to `POST /v1/pay`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayResponse {
    /// Hex payment id.
    pub payment_id: String,
    /// `completed`, `failed` or `pending` (the payee has not answered yet; the node keeps
    /// trying and `history` shows the outcome).
    pub status: String,
    /// Why it failed, or what it waits for.
    pub reason: Option<String>,
}

/// One row of `GET /v1/balance` (and of `atomicity balance --json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BalanceRow {
    /// The peer.
    pub peer: String,
    /// The asset.
    pub asset: String,
    /// Positive: the peer owes me.
    pub net: String,
    /// How much the peer may owe me.
    pub accept: String,
    /// How much I am willing to owe the peer.
    pub issue: String,
    /// Conditional amounts offered to me, not yet payable.
    pub pending_in: String,
    /// Conditional amounts I offered, not yet answered.
    pub pending_out: String,
    /// Seq of the newest IOU state I signed on the line.
    pub out_seq: u64,
    /// Seq of the newest IOU state the peer signed.
    pub in_seq: u64,
    /// Total of the newest IOU state I signed.
    pub out_total: String,
    /// Total of the newest IOU state the peer signed.
    pub in_total: String,
}

/// One row of `GET /v1/history`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryRow {
    /// Hex payment id.
    pub payment_id: String,
    /// `sent` or `received`.
    pub direction: String,
    /// The other side.
    pub peer: String,
    /// The asset.
    pub asset: String,
    /// The amount.
    pub amount: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// The memo.
    pub memo: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// `POST /v1/endpoints`: sets (adds or replaces) a Paykit endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddEndpointRequest {
    /// `{asset}-{rail}-{format}`, e.g. `btc-lightning-bolt11`; not `*-atomicity-key`.
    pub id: String,
    /// A non-empty JSON string or object, at most 4096 bytes of compact JSON.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// One row of `GET /v1/endpoints` (and the answer of `POST /v1/endpoints` and
/// `DELETE /v1/endpoints/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointRow {
    /// The endpoint id.
    pub id: String,
    /// Its value, as published.
    pub value: serde_json::Value,
    /// Published by the node itself (`<asset>-atomicity-key`, value: its key), not configured.
    pub automatic: bool,
    /// Where it is published on the peer API (`/pub/paykit/v0/apps/atomicity/endpoints/{id}`).
    pub path: String,
}

/// The answer of `POST /v1/lines/{peer}/refresh?asset=…`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshResponse {
    /// The peer's published state was newer than the one held, and is now held.
    pub updated: bool,
    /// The seq of the peer's state now held.
    pub seq: u64,
    /// The line after the refresh.
    pub line: BalanceRow,
}

/// Every error of the local and peer APIs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable snake_case code.
    pub code: String,
    /// What was wrong, in words.
    pub error: String,
}

/// One settlement (`GET /v1/settlements`, and the answer of every settlement call).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettlementRow {
    /// Its id (64 hex digits).
    pub id: String,
    /// `requester` (I asked) or `payer` (I was asked).
    pub role: String,
    /// `settle` (pay out what you owe me) or `swap` (pay this invoice against my IOU).
    pub kind: String,
    /// The other side.
    pub peer: String,
    /// The asset of the credit.
    pub asset: String,
    /// The amount of credit.
    pub amount: String,
    /// The methods the requester accepts, best first.
    pub methods: Vec<String>,
    /// The BOLT11 invoice of a Lightning request (empty otherwise).
    pub invoice: String,
    /// The payment hash of a Lightning request's conditional IOU.
    pub payment_hash: Option<String>,
    /// `requested`, `paying`, `paid`, `done`, `refused` or `failed`.
    pub status: String,
    /// The method paid through.
    pub method: Option<String>,
    /// What shows the payment, in words.
    pub evidence: Option<String>,
    /// Why it was refused or failed, or what is happening.
    pub note: String,
    /// Whether the other side has taken my last message about it.
    pub delivered: bool,
    /// The requester's note.
    pub memo: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
    /// Unix seconds after which it may no longer be paid.
    pub expires_at: u64,
}

/// `POST /v1/settlements`: ask `peer` to pay out what it owes me.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettleRequestBody {
    /// The issuer asked to pay.
    pub peer: String,
    /// Decimal amount.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// The endpoint ids I accept, best first (default: my configured endpoints).
    #[serde(default)]
    pub methods: Vec<String>,
    /// A BOLT11 invoice to be paid (a Lightning settlement; my conditional IOU comes with it).
    #[serde(default)]
    pub invoice: Option<String>,
    /// A note for the payer.
    #[serde(default)]
    pub memo: String,
    /// Seconds the request stays payable (default one day).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `POST /v1/settlements/{id}/pay`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettlePayBody {
    /// Pay through this endpoint id only.
    #[serde(default)]
    pub method: Option<String>,
    /// What I paid outside (an on-chain transaction id, a note), for on-chain or manual rails.
    #[serde(default)]
    pub reference: Option<String>,
    /// The preimage (64 hex digits), when I paid the request's invoice by hand.
    #[serde(default)]
    pub preimage: Option<String>,
    /// Pay the requester's endpoint key through these intermediate keys, in order.
    #[serde(default)]
    pub route: Option<Vec<String>>,
}

/// `POST /v1/settlements/{id}/refuse`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettleRefuseBody {
    /// Why, for the requester.
    pub reason: String,
}

/// `POST /v1/ln/pay-via-credit`: have a peer pay a Lightning invoice against my credit.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayViaCreditBody {
    /// The BOLT11 invoice.
    pub invoice: String,
    /// The asset of the credit I give (default `BTC`).
    #[serde(default)]
    pub asset: Option<String>,
    /// How much credit (default: the invoice's amount, for `BTC`).
    #[serde(default)]
    pub amount: Option<String>,
    /// The peer to ask (default: the first that pays Lightning and takes my credit).
    #[serde(default)]
    pub via: Option<String>,
    /// How long to wait for the outcome before answering (default 30 s; 0: do not wait).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `GET /v1/trust`: my web of trust.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrustView {
    /// My tags, by key (z-base32).
    pub tags: std::collections::BTreeMap<String, Vec<String>>,
    /// Keys I block.
    pub blocked: Vec<String>,
    /// My degree rules.
    pub degrees: Vec<DegreeRow>,
    /// The accept limits my rules set now.
    pub auto: Vec<AutoLimitRow>,
    /// The trust documents the last crawl needed but could not use (unreachable, not signed
    /// by their key, malformed), and why: they count as empty.
    #[serde(default)]
    pub unread: Vec<UnreadRow>,
}

/// A trust document the crawl could not use.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnreadRow {
    /// Whose document.
    pub key: String,
    /// Why it was not used.
    pub why: String,
}

/// One degree rule: keys at distance 2..=`depth` through `via` get `accept` in `asset`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DegreeRow {
    /// The asset.
    pub asset: String,
    /// 2 to 4.
    pub depth: u8,
    /// The accept limit (decimal).
    pub accept: String,
    /// The key the rule goes through (distance 1).
    pub via: String,
    /// Only keys tagged with this tag along the way (default: any tag).
    #[serde(default)]
    pub tag: Option<String>,
}

/// An accept limit the web of trust set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AutoLimitRow {
    /// The key.
    pub key: String,
    /// The asset.
    pub asset: String,
    /// The accept limit (decimal).
    pub accept: String,
}

/// `POST /v1/trust/tag` and `/v1/trust/untag`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagRequest {
    /// The key.
    pub key: String,
    /// Tags to add or remove (untag with none: every tag of the key).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /v1/trust/block` and `/v1/trust/unblock`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyRequest {
    /// The key.
    pub key: String,
}

/// `POST /v1/trust/degrees/remove`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoveDegreeRequest {
    /// The asset.
    pub asset: String,
    /// The key the rule goes through.
    pub via: String,
}

/// `GET /v1/witnesses/policy`, and the answer of its changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessPolicyView {
    /// Only these logs, if any (verifier keys or origins).
    pub allow: Vec<String>,
    /// Never these logs.
    pub block: Vec<String>,
}

/// `POST /v1/witnesses/allow|disallow|block|unblock`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessRequest {
    /// A log's verifier key (`<origin>+<key id>+<base64>`) or its origin.
    pub witness: String,
}

/// `POST /v1/requests`: a new payment request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewRequestBody {
    /// Decimal amount.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// What it is for.
    #[serde(default)]
    pub memo: String,
    /// `credit`, `lightning`, `onchain` (default: credit only).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Satoshis per whole unit of the asset, for Lightning and on-chain (implied for BTC).
    pub sats_per_unit: Option<u64>,
    /// The on-chain address (default: the value of my first `*-bitcoin-*` or `*-onchain-*`
    /// Paykit endpoint).
    pub address: Option<String>,
    /// Seconds until it expires (default one day).
    pub expires_in: Option<u64>,
    /// A BOLT11 invoice the node pays with its wallet once the request is filled.
    pub then_pay: Option<String>,
}

/// A payment request as the payee sees it (`GET /v1/requests/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestRow {
    /// Its id (32 hex).
    pub id: String,
    /// The `atomicity:` URI to share (the QR code's content).
    pub uri: String,
    /// The payee.
    pub payee: String,
    /// Decimal amount asked.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// What it is for.
    pub memo: String,
    /// The methods it accepts.
    pub methods: Vec<String>,
    /// `open`, `filled`, `expired` or `cancelled`.
    pub status: String,
    /// Paid so far (decimal).
    pub paid: String,
    /// Reserved or awaiting confirmation (decimal).
    pub pending: String,
    /// Still free to fill (decimal).
    pub left: String,
    /// Paid after its reservation ran out with no room left: owed back (decimal).
    pub excess: String,
    /// Whole percent paid.
    pub percent: u8,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Every fill.
    pub fills: Vec<FillRow>,
    /// What the node does once it is filled, and how that went.
    pub action: Option<crate::request::Action>,
}

/// One fill of a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FillRow {
    /// Its number in the request.
    pub id: u32,
    /// `credit`, `lightning` or `onchain`.
    pub method: String,
    /// Decimal amount in the request's asset.
    pub amount: String,
    /// Satoshis (Lightning, on-chain).
    pub sats: Option<u64>,
    /// Invoice payment hash (hex) or transaction id.
    pub reference: String,
    /// Who said they pay it.
    pub payer: Option<String>,
    /// `reserved`, `claimed`, `paid`, `released` or `excess`.
    pub status: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// `POST /peer/v1/requests/{id}/fill` (peer API, JSON): a payer asks to pay part of a request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FillAsk {
    /// `credit`, `lightning` or `onchain`.
    pub method: String,
    /// Decimal amount in the request's asset.
    pub amount: String,
    /// The payer's key, to show the payee (not checked).
    pub payer: Option<String>,
    /// On-chain: the transaction already sent.
    pub txid: Option<String>,
}

/// The payee's answer to a [`FillAsk`]: the fill is reserved; pay it so.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FillOfferRow {
    /// The request id.
    pub request: String,
    /// The fill's number.
    pub fill: u32,
    /// The method.
    pub method: String,
    /// Decimal amount in the request's asset.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// What to pay in satoshis (Lightning, on-chain).
    pub sats: Option<u64>,
    /// Credit: the `atomicity:` invoice to pay; Lightning: the BOLT11 invoice.
    pub invoice: Option<String>,
    /// On-chain: the payee's address.
    pub address: Option<String>,
    /// The fill's status (`reserved`, or `claimed` for on-chain).
    pub status: String,
    /// Unix seconds: the reservation is given up from then on.
    pub reserved_until: u64,
    /// The secret with which the payer gives the fill up at once if its payment fails
    /// (`POST /peer/v1/requests/{id}/fills/{n}/release`).
    #[serde(default)]
    pub release_key: Option<String>,
}

/// `POST /peer/v1/requests/{id}/fills/{n}/release`: the payer gives its fill up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The fill's release key, from the payee's answer to the fill.
    pub release_key: String,
}

/// `POST /peer/v1/requests/{id}/fills/{fill}/preimage`: proof of a Lightning fill's payment.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PreimageBody {
    /// 64 hex digits.
    pub preimage: String,
}

/// `GET /peer/v1/requests/{id}`: how far a request is filled (public, for payers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestProgressRow {
    /// The request id.
    pub id: String,
    /// `open`, `filled`, `expired` or `cancelled`.
    pub status: String,
    /// Decimal amount asked.
    pub amount: String,
    /// Paid (decimal).
    pub paid: String,
    /// Reserved or awaiting confirmation (decimal).
    pub pending: String,
    /// Free to fill (decimal).
    pub left: String,
    /// The asset.
    pub asset: String,
}

/// `POST /v1/requests/pay`: pay part of someone's payment request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayRequestBody {
    /// The request's `atomicity:` URI.
    pub uri: String,
    /// Decimal amount in the request's asset.
    pub amount: String,
    /// `credit` (default), `lightning` or `onchain`.
    pub method: Option<String>,
    /// On-chain: the id of the transaction the payer sent to the request's address.
    pub txid: Option<String>,
    /// Credit: routes as for [`PayRequest::routes`].
    #[serde(default)]
    pub routes: Vec<Vec<String>>,
    /// Credit: how long to wait for the outcome.
    pub wait_ms: Option<u64>,
}

/// The answer of `POST /v1/requests/pay`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaidFillRow {
    /// The request id.
    pub request: String,
    /// The fill's number.
    pub fill: u32,
    /// The method.
    pub method: String,
    /// Decimal amount in the request's asset.
    pub amount: String,
    /// The asset.
    pub asset: String,
    /// Satoshis paid (Lightning, on-chain).
    pub sats: Option<u64>,
    /// `paid`, `claimed` (on-chain: the payee confirms), `pending` (credit: not yet known) or
    /// `failed`.
    pub status: String,
    /// Why it failed, or what it waits for.
    pub reason: Option<String>,
}

/// One cap of a new delegation (`POST /v1/delegations`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScopeCap {
    /// The asset.
    pub asset: String,
    /// The most the sub key may spend of it per period (decimal, greater than zero).
    pub cap: String,
}

/// `POST /v1/delegations`: a new delegated payment account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewDelegationRequest {
    /// A label for my own view (at most 64 bytes).
    #[serde(default)]
    pub label: String,
    /// Per asset, the cap per period (1 to 16 assets).
    pub caps: Vec<ScopeCap>,
    /// Seconds per period.
    pub period_secs: u64,
    /// The keys the sub key may pay (at most 64); empty: any payee.
    #[serde(default)]
    pub payees: Vec<String>,
    /// Seconds from `not_before` (default: now) until the delegation expires.
    pub expires_in: u64,
    /// Unix seconds from which it may be used (default: now).
    #[serde(default)]
    pub not_before: Option<u64>,
}

/// One cap of a delegation and what was spent of it in the current period.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapRow {
    /// The asset.
    pub asset: String,
    /// The cap per period (decimal).
    pub cap: String,
    /// Spent in the current period (decimal).
    pub spent: String,
}

/// One delegation (`GET /v1/delegations`, and the answer of the other delegation calls).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegationRow {
    /// Its id (32 hex digits).
    pub id: String,
    /// The label.
    pub label: String,
    /// The sub key (z-base32).
    pub sub_key: String,
    /// Per asset: cap and spent this period.
    pub caps: Vec<CapRow>,
    /// Seconds per period.
    pub period_secs: u64,
    /// Unix seconds: when the current period ends (`None` before `not_before`).
    pub period_ends_at: Option<u64>,
    /// Allowed payees; empty: any.
    pub payees: Vec<String>,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Past `expires_at`.
    pub expired: bool,
    /// Revoked.
    pub revoked: bool,
}

/// The answer of `POST /v1/delegations`: everything the app needs, once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewDelegationResponse {
    /// The delegation.
    pub delegation: DelegationRow,
    /// The signed delegation's wire bytes (hex).
    pub signed: String,
    /// The sub key's secret (64 hex digits). The node does not keep it.
    pub sub_secret: String,
    /// This node's peer URL, where the app sends its orders.
    pub node_url: String,
}

/// A delegation token file, as `atomicity delegate new --out FILE` writes it (mode 0600): what
/// an app needs to pay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegationToken {
    /// The master node's peer URL.
    pub node_url: String,
    /// The signed delegation (hex).
    pub delegation: String,
    /// The sub key's secret (hex).
    pub sub_secret: String,
}

/// `POST /v1/delegated/pay` (peer API): a signed delegation and a signed order, in hex.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegatedPayBody {
    /// The signed delegation's wire bytes (hex).
    pub delegation: String,
    /// The signed order's wire bytes (hex).
    pub order: String,
}

/// The answer of `POST /v1/delegated/pay` when the order passed every check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegatedPayResponse {
    /// The delegation id (hex).
    pub delegation_id: String,
    /// The order id (hex).
    pub order_id: String,
    /// The payment's id (hex).
    pub payment_id: String,
    /// `completed`, `failed` (the amount was given back) or `pending`.
    pub status: String,
    /// Why it failed, or what it waits for.
    pub reason: Option<String>,
    /// The asset.
    pub asset: String,
    /// The amount.
    pub amount: String,
    /// Spent under the delegation in this period, this order included unless it failed.
    pub spent: String,
    /// The cap per period.
    pub cap: String,
}
