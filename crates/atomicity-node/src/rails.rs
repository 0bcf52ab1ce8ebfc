//! The payout rails: how a payer pays one Paykit method of a settlement request. Each rail is
//! a `{rail}-{format}` of Paykit's `{asset}-{rail}-{format}` endpoint ids, behind [`Rail`]; it
//! only decides (reading the requester's endpoint, checking what it can pay) and answers the
//! [`PayWith`] the ledger commits. Anything no rail names is paid outside and recorded by
//! reference ([`Outside`]).

use std::future::Future;
use std::pin::Pin;

use atomicity_core::published::EndpointId;
use atomicity_core::settlement::rail_of;
use atomicity_core::{
    Amount, Asset, PayWith, PublicKey, RoutePart, SettlementRecord, SettlementRequest,
};

use crate::lightning::{Bolt11, check_amount, parse_bolt11};
use crate::published::fetch_document;
use crate::server::AppState;
use crate::settle::{
    LIGHTNING_MARGIN_SECS, PayChoice, RAIL_ATOMICITY_KEY, RAIL_LIGHTNING, SettleError, btc_msat,
};
use crate::unix_now;

/// Why a rail cannot pay a method now.
pub(crate) enum Plan {
    /// This method cannot be used, and why.
    Cannot(String),
    /// It can, once the user says what it paid outside (to this endpoint value).
    NeedsReference(String),
    /// It might: the requester's endpoint could not be read now (it may be offline).
    Unavailable(String),
    /// Something broke; stop.
    Failed(SettleError),
}

/// What [`Rail::plan`] returns.
pub(crate) type PlanFuture<'a> = Pin<Box<dyn Future<Output = Result<PayWith, Plan>> + Send + 'a>>;

/// One way of paying out.
pub(crate) trait Rail: Sync {
    /// The `{rail}-{format}` it pays (the middle and last parts of an endpoint id).
    fn name(&self) -> &'static str;

    /// How this rail could pay `method` of the request `held` now, or why not. Changes
    /// nothing.
    fn plan<'a>(
        &'a self,
        state: &'a AppState,
        held: &'a SettlementRecord,
        method: &'a EndpointId,
        choice: &'a PayChoice,
    ) -> PlanFuture<'a>;
}

/// Credit reassignment (`atomicity-key`): pay the key the requester's endpoint names, over my
/// direct line with it, else over a route.
pub(crate) struct Credit;

/// Lightning (`lightning-bolt11`): pay the request's invoice with my wallet; the request's
/// conditional IOU pays me back.
pub(crate) struct Lightning;

/// On-chain, cash, anything else: I pay outside Atomicity and say what I paid.
pub(crate) struct Outside;

/// The rail that pays `method`.
pub(crate) fn rail_for(method: &EndpointId) -> &'static dyn Rail {
    const RAILS: [&dyn Rail; 2] = [&Credit, &Lightning];
    let rail = rail_of(method);
    RAILS
        .into_iter()
        .find(|r| r.name() == rail)
        .unwrap_or(&Outside)
}

impl Rail for Credit {
    fn name(&self) -> &'static str {
        RAIL_ATOMICITY_KEY
    }

    fn plan<'a>(
        &'a self,
        state: &'a AppState,
        held: &'a SettlementRecord,
        method: &'a EndpointId,
        choice: &'a PayChoice,
    ) -> PlanFuture<'a> {
        Box::pin(async move {
            let body = held.body();
            let value = endpoint_value(state, &held.peer, method).await?;
            let text = value
                .as_str()
                .ok_or_else(|| Plan::Cannot("its value is not a key".into()))?;
            let key = atomicity_core::parse_key(text).map_err(Plan::Cannot)?;
            if key == state.me || key == held.peer {
                return Err(Plan::Cannot("it names one of us, not a third key".into()));
            }
            let asset = body.asset.clone();
            let amount = body.amount;
            let k = key.clone();
            let room = state
                .actor
                .run(move |ledger, _, _| {
                    Ok(ledger
                        .channel(&k, &asset)
                        .and_then(|c| c.available_to_issue()))
                })
                .await
                .map_err(|e| Plan::Failed(e.into()))?;
            let direct = match room {
                _ if choice.route.is_some() => "a route was asked for".to_string(),
                None => format!("I have no {} line with {}", body.asset, key.to_z32()),
                Some(room) if room < amount => format!(
                    "I can issue only {} more to {}",
                    body.asset.format(room),
                    key.to_z32()
                ),
                Some(_) => return Ok(PayWith::Credit(key)),
            };
            routed_plan(state, key, &body.asset, amount, choice)
                .await
                .map_err(|why| Plan::Cannot(format!("{direct}, and {why}")))
        })
    }
}

impl Rail for Lightning {
    fn name(&self) -> &'static str {
        RAIL_LIGHTNING
    }

    fn plan<'a>(
        &'a self,
        state: &'a AppState,
        held: &'a SettlementRecord,
        _method: &'a EndpointId,
        choice: &'a PayChoice,
    ) -> PlanFuture<'a> {
        Box::pin(async move {
            let body = held.body();
            if body.condition.is_none() || body.invoice.is_empty() {
                return Err(Plan::Cannot("the request carries no invoice".into()));
            }
            if state.lightning.payer.is_none() && choice.preimage.is_none() {
                return Err(Plan::Cannot(
                    "this node has no Lightning wallet (node run --ln-pay-cmd), and no \
                         --preimage was given"
                        .into(),
                ));
            }
            let Some(condition) = &body.condition else {
                return Err(Plan::Cannot(
                    "the request carries no conditional IOU".into(),
                ));
            };
            let publishes = condition
                .witnesses
                .iter()
                .any(|t| state.witnesses.iter().any(|w| w.vkey == t.log));
            if !publishes {
                return Err(Plan::Cannot(
                    "I publish on none of the witness logs the conditional IOU names, so I \
                         could not claim it"
                        .into(),
                ));
            }
            let now = unix_now();
            let invoice = parse_bolt11(&body.invoice, state.lightning.network, now)
                .map_err(|e| Plan::Failed(e.into()))?;
            // Time to run the wallet, then publish and claim before the IOU's deadline.
            let needed = match (&choice.preimage, &state.lightning.payer) {
                (None, Some(payer)) => payer.timeout().as_secs(),
                _ => 0,
            }
            .saturating_add(LIGHTNING_MARGIN_SECS);
            check_invoice(body, &invoice, now, needed).map_err(Plan::Failed)?;
            // A preimage typed by hand is checked before anything is recorded.
            if let Some(p) = &choice.preimage {
                crate::lightning::check_preimage(&invoice, p)
                    .map_err(|e| Plan::Failed(e.into()))?;
            }
            Ok(PayWith::Lightning)
        })
    }
}

impl Rail for Outside {
    fn name(&self) -> &'static str {
        "outside"
    }

    fn plan<'a>(
        &'a self,
        state: &'a AppState,
        held: &'a SettlementRecord,
        method: &'a EndpointId,
        choice: &'a PayChoice,
    ) -> PlanFuture<'a> {
        Box::pin(async move {
            if let Some(reference) = &choice.reference {
                if reference.is_empty()
                    || reference.len() > atomicity_core::settlement::MAX_NOTE_LEN
                {
                    return Err(Plan::Failed(SettleError::Bad(
                        "a reference is 1 to 512 bytes".into(),
                    )));
                }
                // The holder still publishes this endpoint (or it could not be paid there).
                endpoint_value(state, &held.peer, method).await?;
                return Ok(PayWith::Reference(reference.clone()));
            }
            let value = endpoint_value(state, &held.peer, method).await?;
            Err(Plan::NeedsReference(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }))
        })
    }
}

/// A route to pay `payee` over: the one the user gave, else the first the routers propose
/// that every hop quotes; with the condition on a fresh secret of mine.
async fn routed_plan(
    state: &AppState,
    payee: PublicKey,
    asset: &Asset,
    amount: Amount,
    choice: &PayChoice,
) -> Result<PayWith, String> {
    let paths: Vec<Vec<PublicKey>> = match &choice.route {
        Some(route) => {
            let mut path = route.clone();
            path.push(payee.clone());
            vec![path]
        }
        None if state.routers.any() => state
            .routers
            .propose(
                &state.me,
                &payee,
                amount,
                asset,
                &state.directory,
                &crate::trust::blocked_keys(state).await,
            )
            .await
            .into_iter()
            .take(crate::routers::MAX_TRIES)
            .map(|p| p.path)
            .collect(),
        None => return Err("this node knows no router to find a route".into()),
    };
    let mut refused = Vec::new();
    for path in paths {
        match crate::server::quote_route(state, asset, amount, &path).await {
            Ok(hops) => {
                let secret: [u8; 32] = rand::random();
                let expires_at = unix_now().saturating_add(crate::server::DEFAULT_EXPIRY_SECS);
                let condition = crate::server::witness_condition(
                    &state.witnesses,
                    &state.cosigning,
                    atomicity_core::payment_hash(&secret),
                    expires_at,
                )
                .await
                .map_err(|e| e.to_string())?;
                return Ok(PayWith::Routed {
                    payee,
                    part: RoutePart { hops },
                    condition,
                    expires_at,
                    secret,
                });
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    Err(if refused.is_empty() {
        "no router gave a route".to_string()
    } else {
        format!("no route quoted: {}", refused.join("; "))
    })
}

/// The invoice matches the request: its hash, its amount (for bitcoin credit), and it leaves
/// time to pay, publish and claim before the IOU's deadline.
pub(crate) fn check_invoice(
    body: &SettlementRequest,
    invoice: &Bolt11,
    now: u64,
    needed: u64,
) -> Result<(), SettleError> {
    let Some(condition) = &body.condition else {
        return Err(SettleError::Bad(
            "the request carries no conditional IOU".into(),
        ));
    };
    if invoice.payment_hash != condition.hash {
        return Err(SettleError::Bad(
            "the invoice's payment hash is not the conditional IOU's".into(),
        ));
    }
    if let Some(msat) = btc_msat(&body.asset, body.amount) {
        check_amount(invoice, msat)?;
    }
    if body.expires_at <= now.saturating_add(needed) {
        return Err(SettleError::Bad(format!(
            "the conditional IOU's deadline is less than {needed} s away (the wallet's time \
             limit and a margin to publish and claim); paying now could leave me unpaid"
        )));
    }
    Ok(())
}

/// The value of `peer`'s published endpoint `method`, verified.
async fn endpoint_value(
    state: &AppState,
    peer: &PublicKey,
    method: &EndpointId,
) -> Result<serde_json::Value, Plan> {
    let path = atomicity_core::published::endpoint_path(method);
    let text = fetch_document(state, peer, &path)
        .await
        .map_err(|e| match e {
            crate::published::RefreshError::NoState(_) => {
                Plan::Cannot("the requester does not publish it".into())
            }
            e => Plan::Unavailable(format!("{method}: cannot read it: {e}")),
        })?;
    serde_json::from_str(&text).map_err(|e| Plan::Cannot(format!("its value is not JSON: {e}")))
}
