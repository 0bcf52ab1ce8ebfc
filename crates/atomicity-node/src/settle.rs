//! Settlement, the I/O half: reading the holder's Paykit endpoints, choosing a mutual method,
//! running the Lightning wallet, checking evidence and giving receipts. The ledger keeps every
//! settlement's state (`atomicity_core::settle`); this module only decides and does the I/O,
//! and each step it takes is committed before anything depending on it leaves the node.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use atomicity_core::published::EndpointId;
use atomicity_core::{
    Amount, Asset, Evidence, Hop, PayWith, PublicKey, RoutePart, SettlementKind, SettlementRecord,
    SettlementRequest, SettlementRole, SettlementStatus, receipt_payment_id,
};

use crate::actor::ActorError;
use crate::api::SettlementRow;
use crate::lightning::{Bolt11, LnError, LnNetwork, LnPayer, check_amount, parse_bolt11};
use crate::published::{Capabilities, fetch_document};
use crate::rails::{self, Plan};
use crate::server::AppState;
use crate::unix_now;

/// The rail of credit reassignment.
pub const RAIL_ATOMICITY_KEY: &str = "atomicity-key";
/// The Lightning rail.
pub const RAIL_LIGHTNING: &str = "lightning-bolt11";
/// The endpoint id of a Lightning invoice carried by a request.
pub const LIGHTNING_METHOD: &str = "btc-lightning-bolt11";
/// How long a settlement request stays payable by default.
pub const DEFAULT_REQUEST_SECS: u64 = 24 * 3600;
/// How long the conditional IOU of a Lightning request lives at most (its hard deadline).
pub const LIGHTNING_WINDOW_SECS: u64 = 600;
/// The least time a Lightning payer wants before the IOU's deadline (to pay, publish, claim).
pub const LIGHTNING_MARGIN_SECS: u64 = 30;
/// How long a direct credit payment of a settlement may wait for its answer.
const PAYOUT_EXPIRY_SECS: u64 = 3600;

/// The node's Lightning set-up: the wallet command, if any, and the network it pays on.
pub struct Lightning {
    /// Runs the user's wallet.
    pub payer: Option<LnPayer>,
    /// The network of the invoices it pays and accepts.
    pub network: LnNetwork,
    /// Makes invoices for payment requests paid by Lightning.
    pub invoicer: Option<crate::lightning::LnInvoicer>,
    /// Settlements whose evidence did not check (not retried by the receipt loop).
    bad_evidence: Mutex<HashSet<[u8; 32]>>,
}

impl Lightning {
    /// A set-up.
    pub fn new(payer: Option<LnPayer>, network: LnNetwork) -> Lightning {
        Lightning {
            payer,
            network,
            invoicer: None,
            bad_evidence: Mutex::new(HashSet::new()),
        }
    }

    /// The same, making request invoices with `invoicer`.
    pub fn with_invoicer(mut self, invoicer: Option<crate::lightning::LnInvoicer>) -> Lightning {
        self.invoicer = invoicer;
        self
    }

    /// What the node publishes at `/pub/atomicity/v1/capabilities`.
    pub fn capabilities(&self) -> Capabilities {
        match self.payer {
            Some(_) => Capabilities {
                pays: vec![RAIL_LIGHTNING.to_string()],
                lightning_network: Some(self.network.as_str().to_string()),
            },
            None => Capabilities::default(),
        }
    }
}

/// Why a settlement step failed; nothing changed unless it says so.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Bad input from the user.
    #[error("{0}")]
    Bad(String),
    /// No such settlement.
    #[error("no settlement with id {0}")]
    Unknown(String),
    /// The ledger refused the step.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// A Lightning problem.
    #[error(transparent)]
    Lightning(#[from] LnError),
    /// No mutual method: the request was refused with this reason.
    #[error("refused: {0}")]
    Refused(String),
    /// A peer's document could not be read.
    #[error("{0}")]
    Fetch(String),
}

/// A request the user makes (`settle request`).
pub struct NewRequest {
    /// The issuer asked to pay.
    pub peer: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// The amount.
    pub amount: Amount,
    /// The methods I accept, best first; empty: my configured endpoints.
    pub methods: Vec<EndpointId>,
    /// A BOLT11 invoice for this request (Lightning), if any.
    pub invoice: Option<String>,
    /// A note.
    pub memo: String,
    /// How long the request stays payable.
    pub expires_in: u64,
}

/// Makes and sends a settlement request. With an invoice, the request carries my conditional
/// IOU to the payer on the invoice's payment hash (committed in the same batch).
pub async fn request(state: &AppState, new: NewRequest) -> Result<SettlementRecord, SettleError> {
    if let Some(invoice) = &new.invoice {
        return lightning_request(
            state,
            new.peer,
            new.asset,
            Some(new.amount),
            invoice,
            SettlementKind::Settle,
            new.memo,
        )
        .await;
    }
    let methods = if new.methods.is_empty() {
        my_methods(state, &new.asset).await?
    } else {
        new.methods
    };
    let now = unix_now();
    let mut body = SettlementRequest {
        id: rand::random(),
        from: state.me.clone(),
        to: new.peer,
        kind: SettlementKind::Settle,
        asset: new.asset,
        amount: new.amount,
        methods,
        invoice: String::new(),
        condition: None,
        created_at: now,
        expires_at: now.saturating_add(new.expires_in),
        memo: new.memo,
    };
    // What is owed first: no endpoint helps a request over it.
    let checked = body.clone();
    state
        .actor
        .run(move |ledger, _, _| {
            ledger
                .check_settlement_request(&checked, now)
                .map_err(ActorError::Ledger)
        })
        .await?;
    let methods = std::mem::take(&mut body.methods);
    if methods.is_empty() {
        return Err(SettleError::Bad(format!(
            "you publish no payment endpoint to be paid through; add one with `atomicity \
             endpoint add {}-atomicity-key KEY` (another key of yours) or \
             `atomicity endpoint add btc-bitcoin-address ADDRESS`, or give an invoice",
            body.asset.code().to_ascii_lowercase()
        )));
    }
    if methods.len() > atomicity_core::settlement::MAX_METHODS {
        return Err(SettleError::Bad("at most 16 methods".into()));
    }
    body.methods = methods;
    let record = state
        .actor
        .run(move |ledger, _, ops| {
            ledger
                .request_settlement(body, now, ops)
                .map_err(ActorError::Ledger)
        })
        .await?;
    Ok(record)
}

/// My endpoints a payer could use, the request's asset first (not my own automatic key: the
/// issuer paying me more credit settles nothing).
async fn my_methods(state: &AppState, asset: &Asset) -> Result<Vec<EndpointId>, SettleError> {
    let prefix = format!("{}-", asset.code().to_ascii_lowercase());
    let mut same = Vec::new();
    let mut other = Vec::new();
    for (id, _) in state.published.user_endpoints().await {
        if id.as_str().starts_with(&prefix) {
            same.push(id);
        } else {
            other.push(id);
        }
    }
    same.extend(other);
    same.truncate(atomicity_core::settlement::MAX_METHODS);
    Ok(same)
}

/// A Lightning request: the invoice, checked, and my conditional IOU to `peer` on its hash.
pub async fn lightning_request(
    state: &AppState,
    peer: PublicKey,
    asset: Asset,
    amount: Option<Amount>,
    invoice: &str,
    kind: SettlementKind,
    memo: String,
) -> Result<SettlementRecord, SettleError> {
    let now = unix_now();
    let bolt11 = parse_bolt11(invoice, state.lightning.network, now)?;
    let amount = match amount {
        Some(a) => {
            if let Some(msat) = btc_msat(&asset, a) {
                check_amount(&bolt11, msat)?;
            }
            a
        }
        None => invoice_amount(&asset, &bolt11)?,
    };
    if bolt11.expires_at <= now.saturating_add(LIGHTNING_MARGIN_SECS) {
        return Err(SettleError::Bad(format!(
            "the invoice expires in less than {LIGHTNING_MARGIN_SECS} s; ask for a new one"
        )));
    }
    let expires_at = bolt11
        .expires_at
        .min(now.saturating_add(LIGHTNING_WINDOW_SECS));
    let condition = crate::server::witness_condition(
        &state.witnesses,
        &state.cosigning,
        bolt11.payment_hash,
        expires_at,
    )
    .await
    .map_err(|e| SettleError::Bad(e.to_string()))?;
    let id: [u8; 32] = rand::random();
    let body = SettlementRequest {
        id,
        from: state.me.clone(),
        to: peer.clone(),
        kind,
        asset: asset.clone(),
        amount,
        methods: vec![
            EndpointId::parse(LIGHTNING_METHOD).map_err(|e| SettleError::Bad(e.to_string()))?,
        ],
        invoice: bolt11.invoice.clone(),
        condition: Some(condition.clone()),
        created_at: now,
        expires_at,
        memo: memo.clone(),
    };
    let record = state
        .actor
        .run(move |ledger, _, ops| {
            // Both or neither: check the request, issue the IOU (which changes nothing if it
            // fails), then record the request (which cannot fail after the check). The request
            // is sent first in the batch, so the payer knows the hash when the IOU arrives.
            ledger
                .check_settlement_request(&body, now)
                .map_err(ActorError::Ledger)?;
            ledger
                .pay_routed(
                    &peer,
                    &asset,
                    vec![RoutePart {
                        hops: vec![Hop {
                            next: peer.clone(),
                            amount,
                        }],
                    }],
                    condition,
                    expires_at,
                    receipt_payment_id(&id),
                    memo,
                    None,
                    now,
                    ops,
                )
                .map_err(ActorError::Ledger)?;
            ledger
                .request_settlement(body, now, ops)
                .map_err(ActorError::Ledger)
        })
        .await?;
    Ok(record)
}

/// `amount` of `asset` in millisatoshis, if the asset is bitcoin.
pub(crate) fn btc_msat(asset: &Asset, amount: Amount) -> Option<u64> {
    if !asset.code().eq_ignore_ascii_case("BTC") || asset.scale() > 11 {
        return None;
    }
    let factor = 10u64.checked_pow(u32::from(11 - asset.scale()))?;
    amount.minor().checked_mul(factor)
}

/// The invoice's amount as credit in `asset` (bitcoin only, exactly).
fn invoice_amount(asset: &Asset, invoice: &Bolt11) -> Result<Amount, SettleError> {
    let msat = invoice.amount_msat.ok_or(LnError::NoAmount)?;
    if !asset.code().eq_ignore_ascii_case("BTC") || asset.scale() > 11 {
        return Err(SettleError::Bad(format!(
            "say how much {asset} credit the invoice is worth (--amount)"
        )));
    }
    let factor = 10u64.pow(u32::from(11 - asset.scale()));
    if msat % factor != 0 {
        return Err(SettleError::Bad(format!(
            "the invoice's {msat} msat is not a whole number of {asset} minor units"
        )));
    }
    let amount = Amount::from_minor(msat / factor);
    if amount.is_zero() {
        return Err(SettleError::Bad("the invoice asks nothing".into()));
    }
    Ok(amount)
}

/// What the user tells `settle pay`.
#[derive(Default)]
pub struct PayChoice {
    /// Only this method.
    pub method: Option<EndpointId>,
    /// What I paid outside (on-chain, cash), for a method that needs it.
    pub reference: Option<String>,
    /// The preimage, when I paid the invoice by hand.
    pub preimage: Option<[u8; 32]>,
    /// Pay an endpoint key through these intermediate keys (default: a direct line, else the
    /// routers' routes).
    pub route: Option<Vec<PublicKey>>,
}

async fn record(state: &AppState, id: [u8; 32]) -> Result<SettlementRecord, SettleError> {
    state
        .actor
        .run(move |ledger, _, _| Ok(ledger.settlement(&id).cloned()))
        .await?
        .ok_or_else(|| SettleError::Unknown(hex::encode(id)))
}

/// Pays a request I was asked: through the requester's best method that I can pay.
pub async fn pay(
    state: &AppState,
    id: [u8; 32],
    choice: PayChoice,
) -> Result<SettlementRecord, SettleError> {
    let held = record(state, id).await?;
    if held.role != SettlementRole::Payer {
        return Err(SettleError::Bad(
            "you asked for this settlement; the other side pays it".into(),
        ));
    }
    // A Lightning payment interrupted by a crash (or a slow wallet) is resumed: the wallet
    // pays an invoice once and answers again with the same preimage.
    if held.status == SettlementStatus::Paying && held.body().condition.is_some() {
        resume_lightning(state, &held, choice.preimage, false).await?;
        return record(state, id).await;
    }
    if held.status != SettlementStatus::Requested {
        return Err(SettleError::Bad(format!(
            "the settlement is {}, not waiting to be paid",
            held.status.as_str()
        )));
    }
    let body = held.body().clone();
    let mut reasons = Vec::new();
    let mut needs_reference = None;
    let mut unavailable = Vec::new();
    for method in &body.methods {
        if choice.method.as_ref().is_some_and(|m| m != method) {
            continue;
        }
        match rails::rail_for(method)
            .plan(state, &held, method, &choice)
            .await
        {
            Ok(with) => {
                return execute(state, &held, method.clone(), with, choice.preimage).await;
            }
            Err(Plan::NeedsReference(value)) => {
                needs_reference.get_or_insert((method.clone(), value));
            }
            Err(Plan::Cannot(why)) => reasons.push(format!("{method}: {why}")),
            Err(Plan::Unavailable(why)) => unavailable.push(why),
            Err(Plan::Failed(e)) => return Err(e),
        }
    }
    if let Some((method, value)) = needs_reference {
        return Err(SettleError::Bad(format!(
            "pay {} to {value} outside Atomicity, then run `atomicity settle pay {} --method \
             {method} --reference TEXT` (e.g. the transaction id)",
            body.asset.format(body.amount),
            hex::encode(id)
        )));
    }
    // The requester's endpoints could not be read: try again later, refuse nothing.
    if !unavailable.is_empty() {
        return Err(SettleError::Fetch(format!(
            "{}; nothing was paid or refused, try again",
            unavailable.join("; ")
        )));
    }
    if let Some(m) = &choice.method
        && !body.methods.contains(m)
    {
        return Err(SettleError::Bad(format!(
            "the request does not accept {m}; it accepts {}",
            method_list(&body.methods)
        )));
    }
    let reason = format!(
        "no mutual payment method: {}",
        if reasons.is_empty() {
            "none offered".to_string()
        } else {
            reasons.join("; ")
        }
    );
    let text = reason.clone();
    let now = unix_now();
    state
        .actor
        .run(move |ledger, _, ops| {
            ledger
                .refuse_settlement(&id, text, now, ops)
                .map_err(ActorError::Ledger)
        })
        .await?;
    Err(SettleError::Refused(reason))
}

fn method_list(methods: &[EndpointId]) -> String {
    methods
        .iter()
        .map(EndpointId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn execute(
    state: &AppState,
    held: &SettlementRecord,
    method: EndpointId,
    with: PayWith,
    preimage: Option<[u8; 32]>,
) -> Result<SettlementRecord, SettleError> {
    let id = held.id;
    let now = unix_now();
    let lightning = matches!(with, PayWith::Lightning);
    state
        .actor
        .run(move |ledger, _, ops| {
            ledger
                .pay_settlement(
                    &id,
                    method,
                    with,
                    now,
                    now.saturating_add(PAYOUT_EXPIRY_SECS),
                    ops,
                )
                .map_err(ActorError::Ledger)
        })
        .await?;
    if lightning {
        let held = record(state, id).await?;
        resume_lightning(state, &held, preimage, true).await?;
    }
    record(state, id).await
}

/// Runs the wallet for a Lightning settlement marked `paying` (or takes the preimage the user
/// gives), then records the preimage: the ledger publishes it and claims the IOU. A failure
/// of the first run refuses the settlement (the wallet did not pay); a failure of a resumed
/// run (after a restart, or `settle pay` again) leaves it `paying`, since the wallet may have
/// paid before the restart and some wallets answer a repeat with an error.
async fn resume_lightning(
    state: &AppState,
    held: &SettlementRecord,
    preimage: Option<[u8; 32]>,
    first_run: bool,
) -> Result<(), SettleError> {
    let id = held.id;
    // No expiry check here: the wallet decides, and it pays an invoice at most once.
    let invoice = parse_bolt11(&held.body().invoice, state.lightning.network, 0)?;
    let result = match (preimage, &state.lightning.payer) {
        (Some(p), _) => crate::lightning::check_preimage(&invoice, &p).map(|()| p),
        (None, Some(payer)) => payer.pay(&invoice).await,
        (None, None) => {
            return Err(SettleError::Bad(
                "this node has no Lightning wallet; give the preimage (--preimage)".into(),
            ));
        }
    };
    let now = unix_now();
    match result {
        Ok(p) => {
            state
                .actor
                .run(move |ledger, _, ops| {
                    ledger
                        .settlement_paid(&id, Evidence::Preimage(p), now, ops)
                        .map_err(ActorError::Ledger)
                })
                .await?;
            Ok(())
        }
        // The wallet may still pay: stay `paying`; `settle pay` or a restart asks it again.
        Err(e @ LnError::Timeout { .. }) => Err(e.into()),
        // A preimage typed by hand that does not match changes nothing.
        Err(e @ LnError::WrongPreimage) if preimage.is_some() => Err(e.into()),
        Err(e) if !first_run => Err(SettleError::Bad(format!(
            "the Lightning wallet failed on a resumed payment ({e}); it may have paid before \
             the restart: if it did, give the preimage with `atomicity settle pay {} \
             --preimage HEX`, else refuse it with `atomicity settle refuse`",
            hex::encode(id)
        ))),
        Err(e) => {
            let reason = format!("the Lightning payment failed: {e}");
            let text = reason.clone();
            state
                .actor
                .run(move |ledger, _, ops| {
                    ledger
                        .refuse_settlement(&id, text, now, ops)
                        .map_err(ActorError::Ledger)
                })
                .await?;
            Err(SettleError::Refused(reason))
        }
    }
}

/// Refuses a request I was asked.
pub async fn refuse(
    state: &AppState,
    id: [u8; 32],
    reason: String,
) -> Result<SettlementRecord, SettleError> {
    if reason.is_empty() || reason.len() > atomicity_core::settlement::MAX_NOTE_LEN {
        return Err(SettleError::Bad("a reason is 1 to 512 bytes".into()));
    }
    let now = unix_now();
    state
        .actor
        .run(move |ledger, _, ops| {
            ledger
                .refuse_settlement(&id, reason, now, ops)
                .map_err(ActorError::Ledger)
        })
        .await?;
    record(state, id).await
}

/// The requester confirms a paid settlement (a reference it checked by hand, or evidence its
/// node could not check): its counter-IOU lowers what the payer owes.
pub async fn confirm(state: &AppState, id: [u8; 32]) -> Result<SettlementRecord, SettleError> {
    let now = unix_now();
    state
        .actor
        .run(move |ledger, _, ops| {
            ledger
                .receipt_settlement(&id, now, now.saturating_add(PAYOUT_EXPIRY_SECS), ops)
                .map(drop)
                .map_err(ActorError::Ledger)
        })
        .await?;
    record(state, id).await
}

/// Every settlement, newest first.
pub async fn list(state: &AppState) -> Result<Vec<SettlementRecord>, SettleError> {
    Ok(state
        .actor
        .run(|ledger, _, _| Ok(ledger.settlements().into_iter().cloned().collect()))
        .await?)
}

/// One settlement.
pub async fn show(state: &AppState, id: [u8; 32]) -> Result<SettlementRecord, SettleError> {
    record(state, id).await
}

/// Mom's swap: pays a Lightning invoice through the first peer I can issue enough credit to
/// that publishes a Lightning capability (or `via`), against my conditional IOU to it.
pub async fn pay_via_credit(
    state: &AppState,
    invoice: &str,
    asset: Asset,
    amount: Option<Amount>,
    via: Option<PublicKey>,
) -> Result<SettlementRecord, SettleError> {
    let now = unix_now();
    let bolt11 = parse_bolt11(invoice, state.lightning.network, now)?;
    let credit = match amount {
        Some(a) => a,
        None => invoice_amount(&asset, &bolt11)?,
    };
    let helper = match via {
        Some(key) => key,
        None => find_helper(state, &asset, credit).await?,
    };
    lightning_request(
        state,
        helper,
        asset,
        Some(credit),
        invoice,
        SettlementKind::Swap,
        bolt11.description.chars().take(200).collect(),
    )
    .await
}

/// The first peer I can issue `amount` of `asset` to that pays Lightning invoices on my
/// network: the top of my web of trust first (tagged `family`, then tagged at all), then the
/// most room.
async fn find_helper(
    state: &AppState,
    asset: &Asset,
    amount: Amount,
) -> Result<PublicKey, SettleError> {
    let wanted = asset.clone();
    let mut candidates: Vec<(Amount, PublicKey)> = state
        .actor
        .run(move |ledger, _, _| {
            Ok(ledger
                .channels()
                .filter(|c| *c.asset() == wanted)
                .filter_map(|c| Some((c.available_to_issue()?, c.peer().clone())))
                .filter(|(room, _)| *room >= amount)
                .collect())
        })
        .await?;
    // The top of my web of trust first (keys I tag `family`, then any other tag), then the
    // most room.
    let mine = state.trust.mine().await;
    let rank = |key: &PublicKey| match mine.tags.get(&key.to_z32()) {
        Some(tags) if tags.contains("family") => 0,
        Some(_) => 1,
        None => 2,
    };
    candidates.sort_by(|a, b| {
        rank(&a.1)
            .cmp(&rank(&b.1))
            .then_with(|| b.0.cmp(&a.0))
            .then_with(|| a.1.to_z32().cmp(&b.1.to_z32()))
    });
    if candidates.is_empty() {
        return Err(SettleError::Bad(format!(
            "no peer takes {} of your {asset} credit",
            asset.format(amount)
        )));
    }
    let mut why = Vec::new();
    for (_, peer) in candidates {
        match fetch_document(state, &peer, atomicity_core::published::CAPABILITIES_PATH).await {
            Ok(text) => match serde_json::from_str::<Capabilities>(&text) {
                Ok(c)
                    if c.pays.iter().any(|r| r == RAIL_LIGHTNING)
                        && c.lightning_network.as_deref()
                            == Some(state.lightning.network.as_str()) =>
                {
                    return Ok(peer);
                }
                Ok(_) => why.push(format!(
                    "{}: pays no {} Lightning",
                    short(&peer),
                    state.lightning.network
                )),
                Err(e) => why.push(format!("{}: bad capabilities: {e}", short(&peer))),
            },
            Err(e) => why.push(format!("{}: {e}", short(&peer))),
        }
    }
    Err(SettleError::Bad(format!(
        "no peer I have credit with pays Lightning invoices: {}",
        why.join("; ")
    )))
}

fn short(key: &PublicKey) -> String {
    key.to_z32().chars().take(12).collect()
}

/// Background work: the requester's receipts for credit evidence its node can check, and (at
/// start) Lightning payments a crash interrupted.
pub async fn run(state: AppState) {
    resume_all(&state).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        receipts(&state).await;
    }
}

async fn resume_all(state: &AppState) {
    let Ok(all) = list(state).await else {
        return;
    };
    for held in all.into_iter().filter(|r| {
        r.role == SettlementRole::Payer
            && r.status == SettlementStatus::Paying
            && r.body().condition.is_some()
    }) {
        if let Err(e) = resume_lightning(state, &held, None, false).await {
            tracing::warn!(id = %hex::encode(held.id), "resuming a Lightning settlement: {e}");
        }
    }
}

async fn receipts(state: &AppState) {
    let Ok(due) = state
        .actor
        .run(|ledger, _, _| {
            Ok(ledger
                .settlements()
                .into_iter()
                .filter(|r| {
                    r.role == SettlementRole::Requester
                        && r.status == SettlementStatus::Paid
                        && matches!(
                            r.evidence,
                            Some(Evidence::Credit { .. } | Evidence::Routed { .. })
                        )
                })
                .cloned()
                .collect::<Vec<_>>())
        })
        .await
    else {
        return;
    };
    for held in due {
        let skip = state
            .lightning
            .bad_evidence
            .lock()
            .map(|s| s.contains(&held.id))
            .unwrap_or(true);
        if skip {
            continue;
        }
        match check_my_evidence(state, &held).await {
            Ok(()) => {
                if let Err(e) = confirm(state, held.id).await {
                    tracing::warn!(
                        id = %hex::encode(held.id),
                        "cannot give the settlement's receipt ({e}); give it with \
                         `atomicity settle confirm` once it can be"
                    );
                    if let Ok(mut s) = state.lightning.bad_evidence.lock() {
                        s.insert(held.id);
                    }
                }
            }
            Err(why) => {
                tracing::warn!(
                    id = %hex::encode(held.id),
                    "the settlement's evidence does not check ({why}); confirm it by hand with \
                     `atomicity settle confirm` if you were paid"
                );
                if let Ok(mut s) = state.lightning.bad_evidence.lock() {
                    s.insert(held.id);
                }
            }
        }
    }
}

/// Credit evidence shows the payer paid my endpoint key for this method the amount.
async fn check_my_evidence(state: &AppState, held: &SettlementRecord) -> Result<(), String> {
    let (Some(method), Some(evidence)) = (&held.method, &held.evidence) else {
        return Err("no method or evidence".into());
    };
    let value = state
        .published
        .user_endpoints()
        .await
        .get(method)
        .cloned()
        .ok_or_else(|| format!("I no longer publish {method}"))?;
    let key = value
        .as_str()
        .ok_or("my endpoint's value is not a key")
        .and_then(|t| {
            atomicity_core::parse_key(t).map_err(|_| "my endpoint's value is not a key")
        })?;
    let body = held.body();
    match evidence {
        Evidence::Routed { .. } => evidence.check_routed(&key, &body.asset, body.amount, &held.id),
        _ => evidence.check_credit(&held.peer, &key, &body.asset, body.amount, &held.id),
    }
    .map_err(|e| e.to_string())
}

/// A settlement as the API shows it.
pub fn row(r: &SettlementRecord) -> SettlementRow {
    let body = r.body();
    SettlementRow {
        id: hex::encode(r.id),
        role: r.role.as_str().to_string(),
        kind: body.kind.as_str().to_string(),
        peer: r.peer.to_z32(),
        asset: body.asset.to_string(),
        amount: body.asset.format(body.amount),
        methods: body
            .methods
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
        invoice: body.invoice.clone(),
        payment_hash: body.condition.as_ref().map(|c| hex::encode(c.hash)),
        status: r.status.as_str().to_string(),
        method: r.method.as_ref().map(|m| m.as_str().to_string()),
        evidence: r.evidence.as_ref().map(evidence_text),
        note: r.note.clone(),
        delivered: r.delivered,
        memo: body.memo.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        expires_at: body.expires_at,
    }
}

fn evidence_text(e: &Evidence) -> String {
    match e {
        Evidence::Credit { iou, .. } => {
            format!("credit to {} accepted", iou.body().line.holder.to_z32())
        }
        Evidence::Preimage(p) => format!("preimage {}", hex::encode(p)),
        Evidence::Reference(text) => format!("reference {text}"),
        Evidence::Routed { issued, .. } => format!(
            "credit to {} over a route, proved",
            issued
                .first()
                .map(|i| i.body().line.holder.to_z32())
                .unwrap_or_default()
        ),
    }
}

/// Parses a settlement id (64 hex digits).
pub fn parse_id(text: &str) -> Result<[u8; 32], SettleError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SettleError::Bad("a settlement id is 64 hex digits".into()))
}
