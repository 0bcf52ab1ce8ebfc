//! Delegated payment accounts over HTTP: the app's `POST /v1/delegated/pay` on the peer API,
//! and the master's `GET/POST /v1/delegations…` on the local API.

use atomicity_core::delegation::Cap;
use atomicity_core::{Amount, DelegationRefusal, PublicKey};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::api::{
    CapRow, DelegatedPayBody, DelegatedPayResponse, DelegationRow, NewDelegationRequest,
    NewDelegationResponse, PayRequest,
};
use crate::delegate::{DelegateError, DelegationInfo, NewTerms};
use crate::server::{ApiError, ApiResult, AppState, amount_arg, asset_arg, key_arg, parse_json};
use crate::unix_now;

type Json<T> = axum::Json<T>;

impl From<DelegateError> for ApiError {
    fn from(e: DelegateError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match &e {
            DelegateError::Refused(r) => (refusal_status(r), r.code()),
            DelegateError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed"),
            DelegateError::UnknownDelegation => (StatusCode::FORBIDDEN, "unknown_delegation"),
            DelegateError::Bad(_) => (StatusCode::BAD_REQUEST, "bad_delegation"),
            DelegateError::Full(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
            DelegateError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
        };
        ApiError::new(status, code, message)
    }
}

fn refusal_status(r: &DelegationRefusal) -> StatusCode {
    match r {
        DelegationRefusal::WrongDelegation => StatusCode::BAD_REQUEST,
        DelegationRefusal::StaleOrder { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        DelegationRefusal::Replayed => StatusCode::CONFLICT,
        _ => StatusCode::FORBIDDEN,
    }
}

fn row(info: &DelegationInfo) -> DelegationRow {
    let d = info.signed.body();
    DelegationRow {
        id: hex::encode(d.id),
        label: d.label.clone(),
        sub_key: d.sub.to_z32(),
        caps: d
            .caps
            .iter()
            .zip(&info.spent)
            .map(|(c, spent)| CapRow {
                asset: c.asset.to_string(),
                cap: c.asset.format(c.cap),
                spent: c.asset.format(*spent),
            })
            .collect(),
        period_secs: d.period_secs,
        period_ends_at: info.period.map(|(_, end)| end),
        payees: d.payees.iter().map(PublicKey::to_z32).collect(),
        not_before: d.not_before,
        expires_at: d.expires_at,
        expired: info.expired,
        revoked: info.revoked,
    }
}

/// `GET /v1/delegations`.
pub async fn list(State(state): State<AppState>) -> Json<Vec<DelegationRow>> {
    let infos = state.delegations.list(unix_now()).await;
    axum::Json(infos.iter().map(row).collect())
}

/// `POST /v1/delegations`: signs a delegation to a new sub key; answers it with the sub key's
/// secret (which the node does not keep) and this node's peer URL.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<NewDelegationResponse>> {
    let req: NewDelegationRequest = parse_json(&headers, &body)?;
    let mut caps = Vec::with_capacity(req.caps.len());
    for c in &req.caps {
        let asset = asset_arg(&c.asset)?;
        let cap = amount_arg(&asset, &c.cap)?;
        if cap == Amount::ZERO {
            return Err(ApiError::bad(
                "bad_amount",
                "a cap must be greater than zero",
            ));
        }
        caps.push(Cap { asset, cap });
    }
    let payees = req
        .payees
        .iter()
        .map(|p| key_arg(p))
        .collect::<ApiResult<Vec<_>>>()?;
    if payees.contains(&state.me) {
        return Err(ApiError::bad(
            "self_peer",
            "a delegation cannot pay this node itself",
        ));
    }
    if req.expires_in == 0 {
        return Err(ApiError::bad(
            "bad_expiry",
            "expires_in must be at least 1 second",
        ));
    }
    let not_before = req.not_before.unwrap_or_else(unix_now);
    let expires_at = not_before
        .checked_add(req.expires_in)
        .ok_or_else(|| ApiError::bad("bad_expiry", "expires_in is too large"))?;
    let (signed, sub) = state
        .delegations
        .issue(NewTerms {
            label: req.label,
            caps,
            period_secs: req.period_secs,
            payees,
            not_before,
            expires_at,
        })
        .await?;
    let id = hex::encode(signed.body().id);
    let info = state
        .delegations
        .get(&id, unix_now())
        .await
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", id))?;
    Ok(axum::Json(NewDelegationResponse {
        delegation: row(&info),
        signed: hex::encode(signed.to_bytes()),
        sub_secret: hex::encode(sub.secret_key()),
        node_url: state.node_url.clone(),
    }))
}

/// `POST /v1/delegations/{id}/revoke`: orders under it are refused from now on.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DelegationRow>> {
    match state.delegations.revoke(&id, unix_now()).await? {
        Some(info) => Ok(axum::Json(row(&info))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_delegation",
            format!("no delegation {id}"),
        )),
    }
}

fn hex_arg(what: &'static str, text: &str) -> ApiResult<Vec<u8>> {
    hex::decode(text.trim())
        .map_err(|e| ApiError::bad("malformed", format!("malformed {what}: not hex: {e}")))
}

/// `POST /v1/delegated/pay` (peer API): an app pays with its sub key. The order is checked,
/// its spend recorded durably, then paid like `POST /v1/pay`; a failed payment gives the
/// spend back.
pub async fn pay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<DelegatedPayResponse>> {
    let req: DelegatedPayBody = parse_json(&headers, &body)?;
    let delegation = hex_arg("delegation", &req.delegation)?;
    let order = hex_arg("order", &req.order)?;
    let reservation = state
        .delegations
        .reserve(&delegation, &order, unix_now())
        .await?;
    let o = &reservation.order;
    let asset = &o.asset;
    tracing::info!(
        delegation = %hex::encode(o.delegation_id),
        payee = %o.payee,
        amount = %asset.format(o.amount),
        %asset,
        "delegated payment"
    );
    let pay = PayRequest {
        peer: o.payee.to_z32(),
        amount: asset.format(o.amount),
        asset: asset.to_string(),
        memo: o.memo.clone(),
        wait_ms: None,
        routes: Vec::new(),
    };
    // Direct only: the fees of a routed payment would be spent beyond the cap.
    let outcome = crate::server::pay_request(&state, &pay, false).await;
    let failed = match &outcome {
        Ok(r) => r.status == "failed",
        Err(_) => true,
    };
    let mut spent = reservation.spent;
    if failed {
        match state.delegations.give_back(&reservation).await {
            Ok(()) => spent = spent.checked_sub(o.amount).unwrap_or(Amount::ZERO),
            Err(e) => tracing::warn!("cannot give back a failed delegated payment: {e}"),
        }
    }
    let response = outcome?;
    Ok(axum::Json(DelegatedPayResponse {
        delegation_id: hex::encode(o.delegation_id),
        order_id: hex::encode(o.order_id),
        payment_id: response.payment_id,
        status: response.status,
        reason: response.reason,
        asset: asset.to_string(),
        amount: asset.format(o.amount),
        spent: asset.format(spent),
        cap: asset.format(reservation.cap),
    }))
}
