//! The local API of the web of trust (`/v1/trust…`).

use atomicity_core::trust::{DegreeRule, MyTrust, check_tag};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::api::{AutoLimitRow, DegreeRow, KeyRequest, RemoveDegreeRequest, TagRequest, TrustView};
use crate::server::{ApiError, ApiResult, AppState, amount_arg, asset_arg, key_arg, parse_json};
use crate::trust::TrustChangeError;

type Json<T> = axum::Json<T>;

impl From<TrustChangeError> for ApiError {
    fn from(e: TrustChangeError) -> ApiError {
        match e {
            TrustChangeError::Bad(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_trust", m),
            TrustChangeError::Storage(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", m)
            }
        }
    }
}

async fn view(state: &AppState, mine: &MyTrust) -> TrustView {
    TrustView {
        tags: mine
            .tags
            .iter()
            .map(|(k, t)| (k.clone(), t.iter().cloned().collect()))
            .collect(),
        blocked: mine.blocked.iter().cloned().collect(),
        degrees: mine
            .degrees
            .iter()
            .map(|r| DegreeRow {
                asset: r.asset.to_string(),
                depth: r.depth,
                accept: r.asset.format(r.accept),
                via: r.via.to_z32(),
                tag: r.tag.clone(),
            })
            .collect(),
        auto: state
            .trust
            .applied()
            .await
            .into_iter()
            .map(|a| AutoLimitRow {
                key: a.key,
                asset: a.asset,
                accept: a.accept,
            })
            .collect(),
        unread: state
            .trust
            .unread()
            .into_iter()
            .map(|(key, why)| crate::api::UnreadRow { key, why })
            .collect(),
    }
}

/// `GET /v1/trust`.
pub async fn show(State(state): State<AppState>) -> Json<TrustView> {
    let mine = state.trust.mine().await;
    axum::Json(view(&state, &mine).await)
}

fn tags_arg(tags: &[String]) -> ApiResult<Vec<String>> {
    for t in tags {
        check_tag(t).map_err(|e| ApiError::bad("bad_tag", e.to_string()))?;
    }
    Ok(tags.to_vec())
}

/// `POST /v1/trust/tag`.
pub async fn tag(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: TagRequest = parse_json(&headers, &body)?;
    let key = key_arg(&req.key)?;
    if key == state.me {
        return Err(ApiError::bad("self_peer", "you cannot tag your own key"));
    }
    let tags = tags_arg(&req.tags)?;
    if tags.is_empty() {
        return Err(ApiError::bad("bad_tag", "give at least one tag"));
    }
    let mine = state
        .trust
        .update(|mine| {
            for t in &tags {
                mine.tag(&key, t).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

/// `POST /v1/trust/untag` (no tags: every tag of the key).
pub async fn untag(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: TagRequest = parse_json(&headers, &body)?;
    let key = key_arg(&req.key)?;
    let tags = tags_arg(&req.tags)?;
    let mine = state
        .trust
        .update(|mine| {
            if tags.is_empty() {
                return match mine.untag(&key, None) {
                    true => Ok(()),
                    false => Err(format!("{key} has no tags")),
                };
            }
            for t in &tags {
                if !mine.untag(&key, Some(t)) {
                    return Err(format!("{key} is not tagged {t}"));
                }
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

/// `POST /v1/trust/block`: the key gets no automatic limit and is dropped from my tags.
pub async fn block(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: KeyRequest = parse_json(&headers, &body)?;
    let key = key_arg(&req.key)?;
    if key == state.me {
        return Err(ApiError::bad("self_peer", "you cannot block your own key"));
    }
    let mine = state
        .trust
        .update(|mine| mine.block(&key).map(drop).map_err(|e| e.to_string()))
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

/// `POST /v1/trust/unblock`.
pub async fn unblock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: KeyRequest = parse_json(&headers, &body)?;
    let key = key_arg(&req.key)?;
    let mine = state
        .trust
        .update(|mine| match mine.unblock(&key) {
            true => Ok(()),
            false => Err(format!("{key} is not blocked")),
        })
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

/// `POST /v1/trust/degrees`: sets (or replaces) the rule for an asset through a key.
pub async fn set_degree(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: DegreeRow = parse_json(&headers, &body)?;
    let asset = asset_arg(&req.asset)?;
    let accept = amount_arg(&asset, &req.accept)?;
    let via = key_arg(&req.via)?;
    if via == state.me {
        return Err(ApiError::bad(
            "self_peer",
            "a rule goes through another key",
        ));
    }
    if !(2..=4).contains(&req.depth) {
        return Err(ApiError::bad(
            "bad_depth",
            "depth is 2 (the via key's friends) to 4",
        ));
    }
    if let Some(t) = &req.tag {
        check_tag(t).map_err(|e| ApiError::bad("bad_tag", e.to_string()))?;
    }
    let rule = DegreeRule {
        asset,
        depth: req.depth,
        accept,
        via,
        tag: req.tag,
    };
    let mine = state
        .trust
        .update(|mine| {
            mine.degrees
                .retain(|r| !(r.asset == rule.asset && r.via == rule.via));
            mine.degrees.push(rule);
            mine.check().map_err(|e| e.to_string())
        })
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

/// `POST /v1/trust/degrees/remove`.
pub async fn remove_degree(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<TrustView>> {
    let req: RemoveDegreeRequest = parse_json(&headers, &body)?;
    let asset = asset_arg(&req.asset)?;
    let via = key_arg(&req.via)?;
    let mine = state
        .trust
        .update(|mine| {
            let before = mine.degrees.len();
            mine.degrees.retain(|r| !(r.asset == asset && r.via == via));
            if mine.degrees.len() == before {
                return Err(format!("no {asset} rule through {via}"));
            }
            Ok(())
        })
        .await?;
    Ok(axum::Json(view(&state, &mine).await))
}

fn policy_view(p: &atomicity_core::trust::WitnessPolicy) -> crate::api::WitnessPolicyView {
    crate::api::WitnessPolicyView {
        allow: p.allow.iter().cloned().collect(),
        block: p.block.iter().cloned().collect(),
    }
}

/// `GET /v1/witnesses/policy`.
pub async fn witness_policy(State(state): State<AppState>) -> Json<crate::api::WitnessPolicyView> {
    axum::Json(policy_view(&state.trust.witnesses().await))
}

/// `POST /v1/witnesses/{allow|disallow|block|unblock}`.
pub async fn witness_change(
    State(state): State<AppState>,
    axum::extract::Path(what): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::api::WitnessPolicyView>> {
    let req: crate::api::WitnessRequest = parse_json(&headers, &body)?;
    let name = req.witness.trim().to_string();
    let valid = !name.is_empty()
        && name.len() <= 512
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ApiError::bad(
            "bad_witness",
            "name a witness log by its verifier key or its origin",
        ));
    }
    let policy = state
        .trust
        .update_witnesses(|p| {
            let changed = match what.as_str() {
                "allow" => p.allow.insert(name.clone()),
                "disallow" => p.allow.remove(&name),
                "block" => p.block.insert(name.clone()),
                "unblock" => p.block.remove(&name),
                other => return Err(format!("unknown change {other:?}")),
            };
            if changed {
                Ok(())
            } else {
                Err(format!("{name} is already so"))
            }
        })
        .await?;
    crate::trust::apply_witness_policy(&state).await?;
    Ok(axum::Json(policy_view(&policy)))
}
