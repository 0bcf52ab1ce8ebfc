//! Payment requests over HTTP. Peer API (no token: payers are anyone holding the URI): the
//! signed request document, its progress, fills and Lightning proofs. Local API: the payee's
//! `/v1/requests…` and the payer's `/v1/requests/pay`.

use std::time::Duration;

use atomicity_core::Amount;
use atomicity_core::request::{
    FillRefusal, Method, MethodKind, RequestBook, RequestId, RequestStatus, RequestTerms,
    RequestUri, request_path,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::api::{
    FillAsk, FillOfferRow, FillRow, InvoiceRequest, NewRequestBody, PaidFillRow, PayInvoiceRequest,
    PreimageBody, RequestProgressRow, RequestRow,
};
use crate::lightning::{check_amount, check_preimage, parse_bolt11, parse_preimage_hex};
use crate::published::{RefreshError, fetch_document};
use crate::request::{
    Action, CREDIT_FILL_GRACE_SECS, CREDIT_FILL_SECS, LIGHTNING_FILL_SECS, RequestsError,
    fill_offer, fill_row, request_row,
};
use crate::server::{
    ApiError, ApiResult, AppState, amount_arg, asset_arg, create_invoice, document_response,
    parse_json, pay_invoice_with,
};
use crate::unix_now;

/// Default lifetime of a request: one day.
const DEFAULT_REQUEST_SECS: u64 = 24 * 3600;
/// Longest lifetime of a request: 90 days.
const MAX_REQUEST_SECS: u64 = 90 * 24 * 3600;
/// How long a payer waits for the payee's answers.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

impl From<RequestsError> for ApiError {
    fn from(e: RequestsError) -> ApiError {
        let (status, code) = match &e {
            RequestsError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_request"),
            RequestsError::Refused(r) => (StatusCode::UNPROCESSABLE_ENTITY, refusal_code(r)),
            RequestsError::TooMany => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_requests"),
            RequestsError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn refusal_code(r: &FillRefusal) -> &'static str {
    match r {
        FillRefusal::Expired => "request_expired",
        FillRefusal::Cancelled => "request_cancelled",
        FillRefusal::Filled => "request_filled",
        FillRefusal::MethodNotAccepted(_) => "method_not_accepted",
        FillRefusal::ZeroAmount => "bad_amount",
        FillRefusal::Overpay { .. } => "overpay",
        FillRefusal::TooMany(_) => "too_many_fills",
        FillRefusal::UnknownFill(_) => "unknown_fill",
        FillRefusal::WrongStatus { .. } => "wrong_fill_status",
        FillRefusal::BadReference => "bad_reference",
        FillRefusal::DuplicateReference(_) => "duplicate_txid",
        FillRefusal::NotYours(_) => "not_your_fill",
    }
}

fn id_arg(text: &str) -> ApiResult<RequestId> {
    text.parse()
        .map_err(|_| ApiError::bad("bad_request_id", "a request id is 32 hex digits"))
}

async fn entry(state: &AppState, id: &RequestId) -> ApiResult<crate::request::Entry> {
    state
        .requests
        .get(id)
        .await
        .ok_or_else(|| RequestsError::Unknown(*id).into())
}

// ---- Peer API -------------------------------------------------------------------------------

/// `GET /pub/atomicity/v1/requests/{id}`: the signed request.
pub(crate) async fn document(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = id_arg(&id)?;
    let entry = entry(&state, &id).await?;
    let mut signer = state.published.signer().await;
    let doc = signer
        .document(&request_path(&id), entry.book.terms.to_json().into_bytes())
        .await?;
    Ok(document_response(doc))
}

/// `GET /peer/v1/requests/{id}`: how far it is filled.
pub(crate) async fn progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RequestProgressRow>> {
    let id = id_arg(&id)?;
    let row = request_row(&entry(&state, &id).await?, unix_now());
    Ok(axum::Json(RequestProgressRow {
        id: row.id,
        status: row.status,
        amount: row.amount,
        paid: row.paid,
        pending: row.pending,
        left: row.left,
        asset: row.asset,
    }))
}

/// `POST /peer/v1/requests/{id}/fill`: reserves a fill and answers what to pay.
pub(crate) async fn fill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<FillOfferRow>> {
    let id = id_arg(&id)?;
    let ask: FillAsk = parse_json(&headers, &body)?;
    let method: MethodKind =
        ask.method
            .parse()
            .map_err(|e: atomicity_core::request::RequestError| {
                ApiError::bad("bad_method", e.to_string())
            })?;
    let book = entry(&state, &id).await?.book;
    let amount = amount_arg(&book.terms.asset, &ask.amount)?;
    let payer = match &ask.payer {
        Some(p) => Some(crate::server::key_arg(p)?.to_z32()),
        None => None,
    };
    let now = unix_now();
    // Check before making an invoice, so that a refused fill leaves nothing behind.
    book.check_fill(method, amount, now)
        .map_err(RequestsError::from)?;
    let (reference, invoice, until) = match method {
        MethodKind::Credit => {
            let invoice = create_invoice(
                &state,
                InvoiceRequest {
                    amount: ask.amount.clone(),
                    asset: book.terms.asset.to_string(),
                    memo: fill_memo(&book.terms),
                    expires_in: Some(CREDIT_FILL_SECS),
                },
            )
            .await?;
            let until = invoice.expires_at + CREDIT_FILL_GRACE_SECS;
            (invoice.hash, Some(invoice.invoice), until)
        }
        MethodKind::Lightning => {
            let invoicer = state.lightning.invoicer.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_lightning",
                    "the payee's node cannot make Lightning invoices now",
                )
            })?;
            let sats = sats(&book.terms, method, amount)?;
            let msat = sats.checked_mul(1000).ok_or_else(too_large)?;
            let bolt11 = invoicer
                .invoice(
                    msat,
                    LIGHTNING_FILL_SECS,
                    &fill_memo(&book.terms),
                    state.lightning.network,
                    now,
                )
                .await
                .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "lightning", e.to_string()))?;
            (
                hex::encode(bolt11.payment_hash),
                Some(bolt11.invoice),
                now + LIGHTNING_FILL_SECS,
            )
        }
        MethodKind::Onchain => {
            let txid = ask
                .txid
                .clone()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::bad("no_txid", "an on-chain fill names its txid"))?;
            (txid, None, book.terms.expires_at)
        }
    };
    let release_key = hex::encode(rand::random::<[u8; 16]>());
    let offer = state
        .requests
        .update(&id, |e| {
            let n = e
                .book
                .reserve(method, amount, reference, payer, now, until)?
                .id;
            let fill = e
                .book
                .fills
                .iter_mut()
                .find(|f| f.id == n)
                .ok_or(FillRefusal::UnknownFill(n))?;
            fill.release_key = Some(release_key);
            let fill = fill.clone();
            Ok(fill_offer(&e.book, &fill, invoice))
        })
        .await?;
    tracing::info!(request = %id, fill = offer.fill, method = %method, amount = %offer.amount, "fill reserved");
    Ok(axum::Json(offer))
}

/// `POST /peer/v1/requests/{id}/fills/{fill}/release`: the payer gives its fill up (its
/// payment failed), with the fill's release key.
pub(crate) async fn release(
    State(state): State<AppState>,
    Path((id, fill)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<FillRow>> {
    let id = id_arg(&id)?;
    let ask: crate::api::ReleaseBody = parse_json(&headers, &body)?;
    let row = state
        .requests
        .update(&id, |e| {
            e.book.release_by_payer(fill, &ask.release_key)?;
            row_of(&e.book, fill)
        })
        .await?;
    tracing::info!(request = %id, fill, "the payer gave its fill up");
    Ok(axum::Json(row))
}

/// `POST /peer/v1/requests/{id}/fills/{fill}/preimage`: a Lightning fill is paid.
pub(crate) async fn preimage(
    State(state): State<AppState>,
    Path((id, fill)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<FillRow>> {
    let id = id_arg(&id)?;
    let proof: PreimageBody = parse_json(&headers, &body)?;
    let preimage = parse_preimage_hex(&proof.preimage)
        .map_err(|e| ApiError::bad("bad_preimage", e.to_string()))?;
    let book = entry(&state, &id).await?.book;
    let f = book
        .fills
        .iter()
        .find(|f| f.id == fill)
        .ok_or_else(|| RequestsError::from(FillRefusal::UnknownFill(fill)))?;
    if f.method != MethodKind::Lightning {
        return Err(ApiError::bad(
            "not_lightning",
            "that fill is not paid by Lightning",
        ));
    }
    let hash: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        preimage,
    ))
    .into();
    if hex::encode(hash) != f.reference {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_preimage",
            "the preimage does not hash to the fill's invoice",
        ));
    }
    let row = state
        .requests
        .update(&id, |e| {
            e.book.mark_paid(fill)?;
            row_of(&e.book, fill)
        })
        .await?;
    tracing::info!(request = %id, fill, status = %row.status, "Lightning fill proven");
    Ok(axum::Json(row))
}

/// The API row of fill `fill` of `book`.
fn row_of(book: &RequestBook, fill: u32) -> Result<FillRow, RequestsError> {
    book.fills
        .iter()
        .find(|f| f.id == fill)
        .map(|f| fill_row(&book.terms.asset, f))
        .ok_or_else(|| FillRefusal::UnknownFill(fill).into())
}

fn fill_memo(terms: &RequestTerms) -> String {
    let memo = if terms.memo.is_empty() {
        format!("request {}", terms.id)
    } else {
        format!("{} (request {})", terms.memo, terms.id)
    };
    memo.chars().take(200).collect()
}

fn sats(terms: &RequestTerms, method: MethodKind, amount: Amount) -> ApiResult<u64> {
    terms
        .sats_for(method, amount)
        .map_err(|_| too_large())?
        .ok_or_else(|| ApiError::bad("method_not_accepted", "no rate for that method"))
}

fn too_large() -> ApiError {
    ApiError::bad("bad_amount", "the amount in satoshis is too large")
}

// ---- Local API: the payee -------------------------------------------------------------------

/// `POST /v1/requests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<RequestRow>> {
    let req: NewRequestBody = parse_json(&headers, &body)?;
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    let kinds: Vec<MethodKind> = if req.methods.is_empty() {
        vec![MethodKind::Credit]
    } else {
        req.methods
            .iter()
            .map(|m| m.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: atomicity_core::request::RequestError| {
                ApiError::bad("bad_method", e.to_string())
            })?
    };
    let rate = || -> ApiResult<u64> {
        match req.sats_per_unit {
            Some(r) => Ok(r),
            // A whole bitcoin is 10^8 satoshis, whatever scale the asset counts in.
            None if asset.code() == "BTC" => Ok(100_000_000),
            None => Err(ApiError::bad(
                "no_rate",
                format!("Lightning and on-chain need --sats-per-unit (satoshis per 1 {asset})"),
            )),
        }
    };
    let mut methods = Vec::new();
    for kind in kinds {
        methods.push(match kind {
            MethodKind::Credit => Method::Credit,
            MethodKind::Lightning => {
                if state.lightning.invoicer.is_none() {
                    return Err(ApiError::bad(
                        "no_lightning",
                        "this node makes no Lightning invoices: start it with --ln-invoice-cmd",
                    ));
                }
                Method::Lightning {
                    sats_per_unit: rate()?,
                }
            }
            MethodKind::Onchain => {
                let address = match &req.address {
                    Some(a) => a.clone(),
                    None => onchain_endpoint(&state).await.ok_or_else(|| {
                        ApiError::bad(
                            "no_address",
                            "give --address, or add an on-chain endpoint \
                             (atomicity endpoint add btc-bitcoin-p2wpkh ADDRESS)",
                        )
                    })?,
                };
                Method::Onchain {
                    address,
                    sats_per_unit: rate()?,
                }
            }
        });
    }
    let now = unix_now();
    let expires_in = req.expires_in.unwrap_or(DEFAULT_REQUEST_SECS);
    if !(1..=MAX_REQUEST_SECS).contains(&expires_in) {
        return Err(ApiError::bad(
            "bad_expiry",
            "expires_in is 1 second to 90 days",
        ));
    }
    if let Some(invoice) = &req.then_pay {
        parse_bolt11(invoice, state.lightning.network, now)
            .map_err(|e| ApiError::bad("bad_then_pay", e.to_string()))?;
        if state.lightning.payer.is_none() {
            return Err(ApiError::bad(
                "no_wallet",
                "paying an invoice when filled needs a Lightning wallet (--ln-pay-cmd)",
            ));
        }
    }
    let terms = RequestTerms {
        id: RequestId(rand::random()),
        payee: state.me.clone(),
        amount,
        asset,
        memo: req.memo,
        methods,
        created_at: now,
        expires_at: now + expires_in,
    };
    terms
        .check()
        .map_err(|e| ApiError::bad("bad_request", e.to_string()))?;
    let action = match req.then_pay {
        Some(invoice) => Action::Waiting { invoice },
        None => Action::None,
    };
    let book = RequestBook::new(terms);
    let id = book.terms.id;
    state.requests.add(book, action).await?;
    tracing::info!(request = %id, "payment request created");
    Ok(axum::Json(request_row(&entry(&state, &id).await?, now)))
}

/// The value of my first on-chain Paykit endpoint (`*-bitcoin-*` or `*-onchain-*`).
async fn onchain_endpoint(state: &AppState) -> Option<String> {
    state
        .published
        .user_endpoints()
        .await
        .into_iter()
        .find(|(id, _)| matches!(id.rail(), "bitcoin" | "onchain"))
        .and_then(|(_, value)| match value {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
}

/// `GET /v1/requests`.
pub(crate) async fn list(State(state): State<AppState>) -> axum::Json<Vec<RequestRow>> {
    let now = unix_now();
    axum::Json(
        state
            .requests
            .list()
            .await
            .iter()
            .map(|e| request_row(e, now))
            .collect(),
    )
}

/// `GET /v1/requests/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RequestRow>> {
    let id = id_arg(&id)?;
    Ok(axum::Json(request_row(
        &entry(&state, &id).await?,
        unix_now(),
    )))
}

/// `POST /v1/requests/{id}/fills/{fill}/confirm`: the payee saw the on-chain payment.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Path((id, fill)): Path<(String, u32)>,
) -> ApiResult<axum::Json<RequestRow>> {
    change_fill(&state, &id, fill, RequestBook::confirm).await
}

/// `POST /v1/requests/{id}/fills/{fill}/reject`: the payee never saw that payment.
pub(crate) async fn reject(
    State(state): State<AppState>,
    Path((id, fill)): Path<(String, u32)>,
) -> ApiResult<axum::Json<RequestRow>> {
    change_fill(&state, &id, fill, RequestBook::reject).await
}

async fn change_fill(
    state: &AppState,
    id: &str,
    fill: u32,
    change: fn(&mut RequestBook, u32) -> Result<(), FillRefusal>,
) -> ApiResult<axum::Json<RequestRow>> {
    let id = id_arg(id)?;
    state
        .requests
        .update(&id, |e| Ok(change(&mut e.book, fill)?))
        .await?;
    Ok(axum::Json(request_row(
        &entry(state, &id).await?,
        unix_now(),
    )))
}

/// `POST /v1/requests/{id}/cancel`: takes no more fills.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RequestRow>> {
    let id = id_arg(&id)?;
    let now = unix_now();
    state
        .requests
        .update(&id, |e| {
            if e.book.status(now) == RequestStatus::Filled {
                return Err(FillRefusal::Filled.into());
            }
            e.book.cancelled = true;
            Ok(())
        })
        .await?;
    Ok(axum::Json(request_row(&entry(&state, &id).await?, now)))
}

/// `GET /v1/requests/{id}/qr.svg`: the URI as a QR code.
pub(crate) async fn qr_svg(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    use axum::response::IntoResponse;
    let id = id_arg(&id)?;
    let uri = entry(&state, &id).await?.book.terms.to_uri();
    let svg = crate::request::qr_svg(&uri)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

// ---- Local API: the payer -------------------------------------------------------------------

/// `POST /v1/requests/pay`: fetch the request from its payee, check its signature, ask for a
/// fill and pay it by its method.
pub(crate) async fn pay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<PaidFillRow>> {
    let req: crate::api::PayRequestBody = parse_json(&headers, &body)?;
    let uri =
        RequestUri::parse(&req.uri).map_err(|e| ApiError::bad("bad_request_uri", e.to_string()))?;
    if uri.payee == state.me {
        return Err(ApiError::bad(
            "self_payment",
            "that is this node's own request",
        ));
    }
    let method: MethodKind = req.method.as_deref().unwrap_or("credit").parse().map_err(
        |e: atomicity_core::request::RequestError| ApiError::bad("bad_method", e.to_string()),
    )?;
    let path = request_path(&uri.id);
    // The same fetch as every published document: the payee's URL (or its record on the
    // DHT, looked up again if it moved), the signature checked under its key and path.
    let value = fetch_document(&state, &uri.payee, &path)
        .await
        .map_err(|e| fetch_error(&uri.payee, e))?;
    let base = state
        .directory
        .locate(&uri.payee)
        .await
        .ok_or_else(|| fetch_error(&uri.payee, RefreshError::NoUrl(uri.payee.to_z32())))?;
    let base = base.trim_end_matches('/').to_string();
    let http = &state.published.http;
    let terms = crate::request::check_fetched(&value, &uri.payee, &uri.id)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "bad_request_document", e))?;
    let amount = amount_arg(&terms.asset, &req.amount)?;
    if terms.method(method).is_none() {
        return Err(RequestsError::from(FillRefusal::MethodNotAccepted(method)).into());
    }
    if unix_now() >= terms.expires_at {
        return Err(RequestsError::from(FillRefusal::Expired).into());
    }
    // What each method needs before anything is reserved.
    if method == MethodKind::Lightning && state.lightning.payer.is_none() {
        return Err(ApiError::bad(
            "no_wallet",
            "paying by Lightning needs a Lightning wallet: start the node with --ln-pay-cmd",
        ));
    }
    if method == MethodKind::Onchain && req.txid.as_deref().unwrap_or("").is_empty() {
        let sats = sats(&terms, method, amount)?;
        let address = match terms.method(method) {
            Some(Method::Onchain { address, .. }) => address.clone(),
            _ => String::new(),
        };
        return Err(ApiError::bad(
            "no_txid",
            format!(
                "send {sats} sat to {address} with your wallet, then give its transaction id \
                 (--txid)"
            ),
        ));
    }
    let ask = FillAsk {
        method: method.to_string(),
        amount: terms.asset.format(amount),
        payer: Some(state.me.to_z32()),
        txid: req.txid.clone(),
    };
    let offer: FillOfferRow = post_json(
        http,
        &format!("{base}/peer/v1/requests/{}/fill", uri.id),
        &ask,
    )
    .await?;
    if offer.fill == 0 || offer.amount != ask.amount || offer.asset != terms.asset.to_string() {
        return Err(bad_answer("the payee's fill does not match what was asked"));
    }
    let row = |status: &str, reason: Option<String>| PaidFillRow {
        request: uri.id.to_string(),
        fill: offer.fill,
        method: method.to_string(),
        amount: offer.amount.clone(),
        asset: offer.asset.clone(),
        sats: offer.sats,
        status: status.to_string(),
        reason,
    };
    match method {
        MethodKind::Credit => {
            let invoice = offer
                .invoice
                .clone()
                .ok_or_else(|| bad_answer("no invoice in the payee's answer"))?;
            let parsed = atomicity_core::Invoice::parse(&invoice)
                .map_err(|e| bad_answer(&format!("bad invoice: {e}")))?;
            if parsed.payee != terms.payee || parsed.amount != amount || parsed.asset != terms.asset
            {
                return Err(bad_answer("the invoice is not for this fill"));
            }
            let paid = pay_invoice_with(
                &state,
                PayInvoiceRequest {
                    invoice,
                    routes: req.routes.clone(),
                    wait_ms: req.wait_ms,
                },
            )
            .await;
            // Failed: the payee gets its part back at once rather than when the invoice
            // expires (should the payment still complete, the payee counts it anyway).
            let failed = match &paid {
                Ok(p) => p.status == "failed",
                Err(_) => true,
            };
            if failed {
                give_up(http, &base, &uri.id, &offer).await;
            }
            let paid = paid?;
            let status = match paid.status.as_str() {
                "completed" => "paid",
                other => other,
            };
            Ok(axum::Json(row(status, paid.reason)))
        }
        MethodKind::Lightning => {
            let text = offer
                .invoice
                .clone()
                .ok_or_else(|| bad_answer("no Lightning invoice in the payee's answer"))?;
            let sats = sats(&terms, method, amount)?;
            let bolt11 = parse_bolt11(&text, state.lightning.network, unix_now())
                .map_err(|e| bad_answer(&e.to_string()))?;
            check_amount(&bolt11, sats.saturating_mul(1000))
                .map_err(|e| bad_answer(&e.to_string()))?;
            let payer = state.lightning.payer.as_ref().ok_or_else(|| {
                ApiError::bad(
                    "no_wallet",
                    "this node has no Lightning wallet (--ln-pay-cmd)",
                )
            })?;
            let preimage = match payer.pay(&bolt11).await {
                Ok(preimage) => preimage,
                Err(e) => {
                    // A wallet that timed out may still pay: then the fill stays held until
                    // its invoice expires. Any other failure paid nothing.
                    if !matches!(e, crate::lightning::LnError::Timeout { .. }) {
                        give_up(http, &base, &uri.id, &offer).await;
                    }
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "lightning",
                        e.to_string(),
                    ));
                }
            };
            check_preimage(&bolt11, &preimage).map_err(|e| bad_answer(&e.to_string()))?;
            let proven: FillRow = post_json(
                http,
                &format!(
                    "{base}/peer/v1/requests/{}/fills/{}/preimage",
                    uri.id, offer.fill
                ),
                &PreimageBody {
                    preimage: hex::encode(preimage),
                },
            )
            .await?;
            Ok(axum::Json(row(&proven.status, None)))
        }
        MethodKind::Onchain => Ok(axum::Json(row(
            "claimed",
            Some("the payee confirms it once the transaction is seen".into()),
        ))),
    }
}

/// Gives the fill of `offer` back to the payee (best effort: if the payee does not hear it, the
/// reservation runs out by itself).
async fn give_up(http: &reqwest::Client, base: &str, id: &RequestId, offer: &FillOfferRow) {
    let Some(release_key) = offer.release_key.clone() else {
        return;
    };
    let url = format!("{base}/peer/v1/requests/{id}/fills/{}/release", offer.fill);
    let released: ApiResult<FillRow> =
        post_json(http, &url, &crate::api::ReleaseBody { release_key }).await;
    if let Err(e) = released {
        tracing::info!(request = %id, fill = offer.fill, "could not give the fill back: {e}");
    }
}

fn bad_answer(why: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "bad_payee_answer", why.to_string())
}

/// Why the payee's request document could not be had, in the words of a payment request.
fn fetch_error(payee: &atomicity_core::PublicKey, e: RefreshError) -> ApiError {
    match e {
        RefreshError::NoUrl(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_url",
            format!(
                "no URL known for the payee {payee}; add it with `atomicity peer add KEY --url URL`"
            ),
        ),
        RefreshError::NoState(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            "the payee has no such payment request",
        ),
        RefreshError::BadDocument(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "bad_request_document",
            format!("the payment request is not validly signed by {payee}: {e}"),
        ),
        RefreshError::Unreachable { url, why } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "payee_unreachable",
            format!("cannot reach the payee at {url}: {why}"),
        ),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "payee_error", other.to_string()),
    }
}

/// POSTs JSON to the payee; its JSON errors come back as ours, with its code and words.
async fn post_json<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &T,
) -> ApiResult<R> {
    let response = http
        .post(url)
        .timeout(PEER_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| unreachable(url, &e))?;
    if !status.is_success() {
        let error: Option<crate::api::ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (code, words) = error.map_or_else(
            || ("payee_error", format!("the payee answered HTTP {status}")),
            |e| (payee_code(&e.code), e.error),
        );
        let status = StatusCode::from_u16(status.as_u16())
            .ok()
            .filter(StatusCode::is_client_error)
            .unwrap_or(StatusCode::BAD_GATEWAY);
        return Err(ApiError::new(
            status,
            code,
            format!("the payee refused: {words}"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| bad_answer(&format!("unreadable answer: {e}")))
}

/// Our code for a code the payee sent (codes are `&'static str`; unknown ones are generic).
fn payee_code(code: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "request_expired",
        "request_cancelled",
        "request_filled",
        "method_not_accepted",
        "bad_amount",
        "overpay",
        "too_many_fills",
        "unknown_fill",
        "unknown_request",
        "no_lightning",
        "duplicate_txid",
        "bad_reference",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == code)
        .unwrap_or("payee_refused")
}

fn unreachable(url: &str, e: &reqwest::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "payee_unreachable",
        format!("cannot reach the payee at {url}: {e}"),
    )
}
