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

/// Every error of the local and peer APIs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable snake_case code.
    pub code: String,
    /// What was wrong, in words.
    pub error: String,
}
