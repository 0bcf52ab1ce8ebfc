//! A typed client of a node's local API.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AddEndpointRequest, AddPeerRequest, BalanceRow, EndpointRow, ErrorBody, HistoryRow, IdResponse,
    InvoiceRequest, InvoiceRow, PayInvoiceRequest, PayRequest, PayResponse, PayViaCreditBody,
    PeerRow, RefreshResponse, SetLineRequest, SettlePayBody, SettleRefuseBody, SettleRequestBody,
    SettlementRow, TrustView,
};
use crate::datadir::{API_TOKEN_FILE, API_URL_FILE, DataDir, DataDirError};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// Its API URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Words.
        error: String,
    },
    /// The node's answer did not parse.
    #[error("unexpected answer from the node: {0}")]
    BadResponse(String),
    /// The data directory has no running node.
    #[error("no running node found in {dir} ({source}); start one with `atomicity node run`")]
    NotRunning {
        /// The data directory.
        dir: String,
        /// What was missing.
        source: DataDirError,
    },
}

/// Talks to one node's local API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl ApiClient {
    /// A client for the API at `url` with `token`.
    pub fn new(url: &str, token: &str) -> ApiClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(330))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ApiClient {
            http,
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// A client for the node running on `dir` (reads `api.url` and `api.token`).
    pub fn from_dir(dir: &DataDir) -> Result<ApiClient, ClientError> {
        let not_running = |source| ClientError::NotRunning {
            dir: dir.root().display().to_string(),
            source,
        };
        let url = dir.read_text(API_URL_FILE).map_err(not_running)?;
        let token = dir.read_text(API_TOKEN_FILE).map_err(not_running)?;
        Ok(ApiClient::new(&url, &token))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            ClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => ClientError::Api {
                    status: status.as_u16(),
                    code: e.code,
                    error: e.error,
                },
                Err(_) => ClientError::BadResponse(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                )),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(self.http.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    /// This node's key and URL.
    pub async fn id(&self) -> Result<IdResponse, ClientError> {
        self.get("/v1/id").await
    }

    /// Adds or updates a peer.
    pub async fn add_peer(&self, key: &str, url: Option<&str>) -> Result<PeerRow, ClientError> {
        let body = AddPeerRequest {
            key: key.to_string(),
            url: url.map(str::to_string),
        };
        self.post("/v1/peers", &body).await
    }

    /// Every peer.
    pub async fn peers(&self) -> Result<Vec<PeerRow>, ClientError> {
        self.get("/v1/peers").await
    }

    /// Sets limits toward a peer.
    pub async fn set_line(&self, request: &SetLineRequest) -> Result<BalanceRow, ClientError> {
        self.post("/v1/lines", request).await
    }

    /// Pays a peer directly.
    pub async fn pay(&self, request: &PayRequest) -> Result<PayResponse, ClientError> {
        self.post("/v1/pay", request).await
    }

    /// Makes an invoice.
    pub async fn new_invoice(&self, request: &InvoiceRequest) -> Result<InvoiceRow, ClientError> {
        self.post("/v1/invoices", request).await
    }

    /// One of my invoices, by hex payment hash.
    pub async fn invoice(&self, hash: &str) -> Result<InvoiceRow, ClientError> {
        self.get(&format!("/v1/invoices/{hash}")).await
    }

    /// Pays an invoice (routed, or directly to the payee).
    pub async fn pay_invoice(
        &self,
        request: &PayInvoiceRequest,
    ) -> Result<PayResponse, ClientError> {
        self.post("/v1/invoices/pay", request).await
    }

    /// One row per (peer, asset).
    pub async fn balance(&self) -> Result<Vec<BalanceRow>, ClientError> {
        self.get("/v1/balance").await
    }

    /// Payments, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryRow>, ClientError> {
        self.get(&format!("/v1/history?limit={limit}")).await
    }

    /// Sets (adds or replaces) a Paykit endpoint the node publishes; `value` is a JSON string
    /// or object.
    pub async fn add_endpoint(
        &self,
        id: &str,
        value: serde_json::Value,
    ) -> Result<EndpointRow, ClientError> {
        let body = AddEndpointRequest {
            id: id.to_string(),
            value,
        };
        self.post("/v1/endpoints", &body).await
    }

    /// Asks a peer to pay out what it owes me (`settle request`).
    pub async fn settle_request(
        &self,
        request: &SettleRequestBody,
    ) -> Result<SettlementRow, ClientError> {
        self.post("/v1/settlements", request).await
    }

    /// Every settlement, newest first.
    pub async fn settlements(&self) -> Result<Vec<SettlementRow>, ClientError> {
        self.get("/v1/settlements").await
    }

    /// One settlement.
    pub async fn settlement(&self, id: &str) -> Result<SettlementRow, ClientError> {
        self.get(&format!("/v1/settlements/{}", path_segment(id)))
            .await
    }

    /// Pays a settlement I was asked for.
    pub async fn settle_pay(
        &self,
        id: &str,
        body: &SettlePayBody,
    ) -> Result<SettlementRow, ClientError> {
        self.post(&format!("/v1/settlements/{}/pay", path_segment(id)), body)
            .await
    }

    /// Confirms a paid settlement I asked for: my receipt lowers what the payer owes.
    pub async fn settle_confirm(&self, id: &str) -> Result<SettlementRow, ClientError> {
        self.post(
            &format!("/v1/settlements/{}/confirm", path_segment(id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// Refuses a settlement I was asked for.
    pub async fn settle_refuse(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<SettlementRow, ClientError> {
        let body = SettleRefuseBody {
            reason: reason.to_string(),
        };
        self.post(
            &format!("/v1/settlements/{}/refuse", path_segment(id)),
            &body,
        )
        .await
    }

    /// Has a peer pay a Lightning invoice against my credit (the swap).
    pub async fn pay_via_credit(
        &self,
        body: &PayViaCreditBody,
    ) -> Result<SettlementRow, ClientError> {
        self.post("/v1/ln/pay-via-credit", body).await
    }

    /// The witness logs my node accepts in payment conditions.
    pub async fn witness_policy(&self) -> Result<crate::api::WitnessPolicyView, ClientError> {
        self.get("/v1/witnesses/policy").await
    }

    /// Changes my witness lists: `what` is `allow`, `disallow`, `block` or `unblock`.
    pub async fn witness_change(
        &self,
        what: &str,
        witness: &str,
    ) -> Result<crate::api::WitnessPolicyView, ClientError> {
        let body = crate::api::WitnessRequest {
            witness: witness.to_string(),
        };
        self.post(&format!("/v1/witnesses/{what}"), &body).await
    }

    /// A new payment request of mine.
    pub async fn new_request(
        &self,
        body: &crate::api::NewRequestBody,
    ) -> Result<crate::api::RequestRow, ClientError> {
        self.post("/v1/requests", body).await
    }

    /// My payment requests, newest first.
    pub async fn requests(&self) -> Result<Vec<crate::api::RequestRow>, ClientError> {
        self.get("/v1/requests").await
    }

    /// One of my payment requests, with its fills.
    pub async fn request(&self, id: &str) -> Result<crate::api::RequestRow, ClientError> {
        self.get(&format!("/v1/requests/{id}")).await
    }

    /// A change to one of my requests: `what` is `cancel`, `fills/N/confirm` or
    /// `fills/N/reject`.
    pub async fn request_change(
        &self,
        id: &str,
        what: &str,
    ) -> Result<crate::api::RequestRow, ClientError> {
        self.post(&format!("/v1/requests/{id}/{what}"), &serde_json::json!({}))
            .await
    }

    /// Pays part of someone's payment request.
    pub async fn pay_request(
        &self,
        body: &crate::api::PayRequestBody,
    ) -> Result<crate::api::PaidFillRow, ClientError> {
        self.post("/v1/requests/pay", body).await
    }

    /// My web of trust.
    pub async fn trust(&self) -> Result<TrustView, ClientError> {
        self.get("/v1/trust").await
    }

    /// A change to my web of trust: `what` is `tag`, `untag`, `block`, `unblock`, `degrees` or
    /// `degrees/remove`, `body` its JSON request.
    pub async fn trust_change<B: Serialize>(
        &self,
        what: &str,
        body: &B,
    ) -> Result<TrustView, ClientError> {
        self.post(&format!("/v1/trust/{what}"), body).await
    }

    /// Every Paykit endpoint the node publishes, the automatic ones marked.
    pub async fn list_endpoints(&self) -> Result<Vec<EndpointRow>, ClientError> {
        self.get("/v1/endpoints").await
    }

    /// Removes a Paykit endpoint the user set; answers its last row.
    pub async fn remove_endpoint(&self, id: &str) -> Result<EndpointRow, ClientError> {
        self.call(
            self.http
                .delete(format!("{}/v1/endpoints/{}", self.url, path_segment(id))),
        )
        .await
    }

    /// Fetches the newest IOU state `peer` published toward this node in `asset` and takes it
    /// as if the peer had sent it; answers the line after.
    pub async fn refresh_line(
        &self,
        peer: &str,
        asset: &str,
    ) -> Result<RefreshResponse, ClientError> {
        self.call(self.http.post(format!(
            "{}/v1/lines/{}/refresh?asset={}",
            self.url,
            path_segment(peer),
            path_segment(asset)
        )))
        .await
    }
}

/// `text` escaped for a URL path segment or query value (everything but ASCII letters, digits
/// and `-._~`).
fn path_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Delegated payment accounts (`/v1/delegations…` on the local API, `/v1/delegated/pay` on the
/// peer API).
impl ApiClient {
    /// The delegations this node issued.
    pub async fn delegations(&self) -> Result<Vec<crate::api::DelegationRow>, ClientError> {
        self.get("/v1/delegations").await
    }

    /// Signs a new delegation to a new sub key.
    pub async fn new_delegation(
        &self,
        request: &crate::api::NewDelegationRequest,
    ) -> Result<crate::api::NewDelegationResponse, ClientError> {
        self.post("/v1/delegations", request).await
    }

    /// Revokes delegation `id` (hex).
    pub async fn revoke_delegation(
        &self,
        id: &str,
    ) -> Result<crate::api::DelegationRow, ClientError> {
        self.post(
            &format!("/v1/delegations/{}/revoke", path_segment(id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// Sends a delegated order to a master node's peer API: on a client made with
    /// `ApiClient::new(node_url, "")` (the peer API needs no token; the signatures are the
    /// credentials).
    pub async fn delegated_pay(
        &self,
        body: &crate::api::DelegatedPayBody,
    ) -> Result<crate::api::DelegatedPayResponse, ClientError> {
        self.post(crate::delegate::DELEGATED_PAY_PATH, body).await
    }
}
