//! The local API of settlements (`/v1/settlements…`, `/v1/ln/pay-via-credit`).

use std::time::Duration;

use atomicity_core::published::EndpointId;
use atomicity_core::{SettlementRecord, SettlementStatus};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::api::{
    PayViaCreditBody, SettlePayBody, SettleRefuseBody, SettleRequestBody, SettlementRow,
};
use crate::lightning::{LnError, parse_preimage_hex};
use crate::server::{ApiError, ApiResult, AppState, amount_arg, asset_arg, key_arg, parse_json};
use crate::settle::{self, DEFAULT_REQUEST_SECS, NewRequest, PayChoice, SettleError};

type Json<T> = axum::Json<T>;

/// How long `POST /v1/settlements` waits for the payer to take (or refuse) the request.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// How long `pay-via-credit` waits for the outcome by default.
const SWAP_WAIT: Duration = Duration::from_secs(30);

impl From<SettleError> for ApiError {
    fn from(e: SettleError) -> ApiError {
        match e {
            SettleError::Actor(e) => e.into(),
            SettleError::Unknown(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_settlement", e.to_string())
            }
            SettleError::Refused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string())
            }
            SettleError::Lightning(ref l) => {
                let code = match l {
                    LnError::Expired { .. } => "invoice_expired",
                    LnError::WrongNetwork { .. } => "wrong_network",
                    LnError::WrongAmount { .. } | LnError::NoAmount => "wrong_amount",
                    LnError::WrongPreimage | LnError::BadPreimage(_) => "wrong_preimage",
                    LnError::Malformed(_) => "bad_invoice",
                    _ => "lightning",
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            }
            SettleError::Bad(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_settlement",
                e.to_string(),
            ),
            SettleError::Fetch(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "unreachable", e.to_string())
            }
        }
    }
}

fn id_arg(text: &str) -> ApiResult<[u8; 32]> {
    settle::parse_id(text).map_err(|e| ApiError::bad("bad_id", e.to_string()))
}

fn method_arg(text: &str) -> ApiResult<EndpointId> {
    EndpointId::parse(text).map_err(|e| ApiError::bad("bad_method", e.to_string()))
}

/// Waits until `done` holds for the settlement or `wait` passes; returns it as it is then.
async fn wait_for(
    state: &AppState,
    id: [u8; 32],
    wait: Duration,
    done: impl Fn(&SettlementRecord) -> bool,
) -> ApiResult<SettlementRecord> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let record = settle::show(state, id).await?;
        if done(&record) || tokio::time::Instant::now() >= deadline {
            return Ok(record);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /v1/settlements`.
pub async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SettlementRow>> {
    let req: SettleRequestBody = parse_json(&headers, &body)?;
    let peer = key_arg(&req.peer)?;
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    if req.memo.len() > atomicity_core::objects::MAX_MEMO_LEN {
        return Err(ApiError::bad(
            "bad_memo",
            "the memo is longer than 256 bytes",
        ));
    }
    let expires_in = req.expires_in.unwrap_or(DEFAULT_REQUEST_SECS);
    if !(60..=30 * 24 * 3600).contains(&expires_in) {
        return Err(ApiError::bad(
            "bad_expiry",
            "expires_in is 60 seconds to 30 days",
        ));
    }
    let methods = req
        .methods
        .iter()
        .map(|m| method_arg(m))
        .collect::<ApiResult<Vec<_>>>()?;
    let record = settle::request(
        &state,
        NewRequest {
            peer,
            asset,
            amount,
            methods,
            invoice: req.invoice.filter(|i| !i.trim().is_empty()),
            memo: req.memo,
            expires_in,
        },
    )
    .await?;
    let record = wait_for(&state, record.id, REQUEST_WAIT, |r| {
        r.delivered || r.status != SettlementStatus::Requested
    })
    .await?;
    Ok(axum::Json(settle::row(&record)))
}

/// `GET /v1/settlements`.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<SettlementRow>>> {
    let all = settle::list(&state).await?;
    Ok(axum::Json(all.iter().map(settle::row).collect()))
}

/// `GET /v1/settlements/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SettlementRow>> {
    let id = id_arg(&id)?;
    Ok(axum::Json(settle::row(&settle::show(&state, id).await?)))
}

/// `POST /v1/settlements/{id}/pay`.
pub async fn pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SettlementRow>> {
    let id = id_arg(&id)?;
    let req: SettlePayBody = if body.is_empty() {
        SettlePayBody::default()
    } else {
        parse_json(&headers, &body)?
    };
    let choice = PayChoice {
        method: req.method.as_deref().map(method_arg).transpose()?,
        reference: req.reference,
        preimage: req
            .preimage
            .as_deref()
            .map(parse_preimage_hex)
            .transpose()
            .map_err(SettleError::from)?,
        route: req
            .route
            .as_ref()
            .map(|keys| {
                keys.iter()
                    .map(|k| key_arg(k))
                    .collect::<ApiResult<Vec<_>>>()
            })
            .transpose()?,
    };
    let record = settle::pay(&state, id, choice).await?;
    Ok(axum::Json(settle::row(&record)))
}

/// `POST /v1/settlements/{id}/confirm`.
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SettlementRow>> {
    let id = id_arg(&id)?;
    Ok(axum::Json(settle::row(&settle::confirm(&state, id).await?)))
}

/// `POST /v1/settlements/{id}/refuse`.
pub async fn refuse(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SettlementRow>> {
    let id = id_arg(&id)?;
    let req: SettleRefuseBody = parse_json(&headers, &body)?;
    Ok(axum::Json(settle::row(
        &settle::refuse(&state, id, req.reason).await?,
    )))
}

/// `POST /v1/ln/pay-via-credit`.
pub async fn pay_via_credit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SettlementRow>> {
    let req: PayViaCreditBody = parse_json(&headers, &body)?;
    let asset = asset_arg(req.asset.as_deref().unwrap_or("BTC"))?;
    let amount = req
        .amount
        .as_deref()
        .map(|a| amount_arg(&asset, a))
        .transpose()?;
    let via = req.via.as_deref().map(key_arg).transpose()?;
    let record = settle::pay_via_credit(&state, &req.invoice, asset, amount, via).await?;
    let wait = req
        .wait_ms
        .map_or(SWAP_WAIT, Duration::from_millis)
        .min(Duration::from_secs(600));
    let record = wait_for(&state, record.id, wait, |r| r.status.is_final()).await?;
    Ok(axum::Json(settle::row(&record)))
}
