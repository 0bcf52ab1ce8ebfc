//! Payment requests in the node: the payee's books (`DIR/requests.json`), the fills payers ask
//! for over the peer API, the loop that follows their payments and runs the payee's action
//! when a request is filled, and the payer's side (fetch the signed request, ask for a fill,
//! pay it by its method). The rules are in [`atomicity_core::request`]; docs/requests.md has
//! the flows.

use std::collections::BTreeMap;
use std::time::Duration;

use atomicity_core::request::{
    Fill, FillRefusal, FillStatus, MethodKind, Progress, RequestBook, RequestId, RequestStatus,
    RequestTerms,
};
use atomicity_core::{Amount, PublicKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::api::{FillOfferRow, FillRow, RequestRow};
use crate::datadir::{DataDir, DataDirError};
use crate::lightning::parse_bolt11;

/// The file the payee's requests live in.
pub const REQUESTS_FILE: &str = "requests.json";
/// How long a Lightning fill's invoice (and its reservation) lasts.
pub const LIGHTNING_FILL_SECS: u64 = 600;
/// How long a credit fill's invoice lasts. Its reservation ends with the invoice: paid, or
/// failed at the latest at its deadline (the ledger fails every unpaid invoice then); the
/// reservation's own time, [`CREDIT_FILL_GRACE_SECS`] after the deadline, is only a safety net.
/// Short, because anyone holding the URI can reserve a part and never pay it.
pub const CREDIT_FILL_SECS: u64 = 300;
/// See [`CREDIT_FILL_SECS`].
pub const CREDIT_FILL_GRACE_SECS: u64 = 60;
/// Most requests a node keeps.
pub const MAX_REQUESTS: usize = 10_000;
/// How often the loop looks at credit fills' invoices and reservations.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The action the payee's node takes once a request is filled: pay this Lightning invoice
/// (the waitress's) with the node's wallet.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Action {
    /// No action, or not yet started.
    #[default]
    None,
    /// Waiting for the request to fill.
    Waiting {
        /// The BOLT11 invoice to pay.
        invoice: String,
    },
    /// The wallet was asked to pay (recorded before it runs: after a crash it is asked again,
    /// and a wallet pays one invoice at most once).
    Paying {
        /// The BOLT11 invoice.
        invoice: String,
    },
    /// Paid.
    Paid {
        /// The BOLT11 invoice.
        invoice: String,
        /// The preimage the wallet returned (hex).
        preimage: String,
    },
    /// The wallet failed (the user pays by hand).
    Failed {
        /// The BOLT11 invoice.
        invoice: String,
        /// Why.
        reason: String,
    },
}

/// One request as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredRequest {
    /// The terms' JSON text, exactly as published.
    terms: String,
    fills: Vec<Fill>,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    action: Action,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RequestsFile {
    version: u32,
    requests: Vec<StoredRequest>,
}

/// One request in memory.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its book.
    pub book: RequestBook,
    /// The payee's action.
    pub action: Action,
}

/// The payee's requests, saved durably after every change (before anyone is told of it).
pub struct Requests {
    dir: DataDir,
    entries: Mutex<BTreeMap<RequestId, Entry>>,
    changed: watch::Sender<u64>,
}

/// Why a request change was not made.
#[derive(Debug, thiserror::Error)]
pub enum RequestsError {
    /// No request has that id.
    #[error("no payment request {0} on this node")]
    Unknown(RequestId),
    /// The fill was refused.
    #[error(transparent)]
    Refused(#[from] FillRefusal),
    /// Too many requests.
    #[error("this node keeps at most {MAX_REQUESTS} payment requests")]
    TooMany,
    /// The file could not be written.
    #[error("storage: {0}")]
    Storage(String),
}

impl Requests {
    /// Loads `DIR/requests.json` (none: no requests).
    pub fn open(dir: &DataDir) -> Result<Requests, DataDirError> {
        let mut entries = BTreeMap::new();
        if let Some(bytes) = dir.read_optional(REQUESTS_FILE)? {
            let file: RequestsFile =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(dir, e.to_string()))?;
            for stored in file.requests {
                let terms = RequestTerms::from_json(&stored.terms)
                    .map_err(|e| corrupt(dir, e.to_string()))?;
                let book = RequestBook {
                    terms,
                    fills: stored.fills,
                    cancelled: stored.cancelled,
                };
                entries.insert(
                    book.terms.id,
                    Entry {
                        book,
                        action: stored.action,
                    },
                );
            }
        }
        Ok(Requests {
            dir: dir.clone(),
            entries: Mutex::new(entries),
            changed: watch::channel(0).0,
        })
    }

    /// A receiver that sees a new number after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A copy of one request.
    pub async fn get(&self, id: &RequestId) -> Option<Entry> {
        self.entries.lock().await.get(id).cloned()
    }

    /// Copies of the requests the follow loop has work on at `now`: a reserved fill, a credit
    /// fill given up whose invoice may still be paid, or an action to run.
    pub async fn active(&self, now: u64) -> Vec<Entry> {
        self.entries
            .lock()
            .await
            .values()
            .filter(|e| {
                e.book.fills.iter().any(|f| follows(f, now))
                    || matches!(e.action, Action::Waiting { .. } | Action::Paying { .. })
            })
            .cloned()
            .collect()
    }

    /// Copies of every request, newest first.
    pub async fn list(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.entries.lock().await.values().cloned().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.book.terms.created_at));
        all
    }

    /// Applies `change` to request `id`; if it succeeds and changed anything, saves every
    /// request durably before returning what it returned. On an error nothing changes.
    pub async fn update<T>(
        &self,
        id: &RequestId,
        change: impl FnOnce(&mut Entry) -> Result<T, RequestsError>,
    ) -> Result<T, RequestsError> {
        let mut entries = self.entries.lock().await;
        let entry = entries.get(id).ok_or(RequestsError::Unknown(*id))?;
        let mut next = entry.clone();
        let out = change(&mut next)?;
        if next.book != entry.book || next.action != entry.action {
            self.put(&mut entries, next).await?;
        }
        Ok(out)
    }

    /// Adds a new request, saved durably.
    pub async fn add(&self, book: RequestBook, action: Action) -> Result<(), RequestsError> {
        let mut entries = self.entries.lock().await;
        if entries.len() >= MAX_REQUESTS {
            return Err(RequestsError::TooMany);
        }
        self.put(&mut entries, Entry { book, action }).await
    }

    /// Puts `entry` in and saves every request; if saving fails, puts back what was there.
    async fn put(
        &self,
        entries: &mut BTreeMap<RequestId, Entry>,
        entry: Entry,
    ) -> Result<(), RequestsError> {
        let id = entry.book.terms.id;
        let before = entries.insert(id, entry);
        if let Err(e) = self.save(entries).await {
            match before {
                Some(old) => entries.insert(id, old),
                None => entries.remove(&id),
            };
            return Err(e);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn save(&self, all: &BTreeMap<RequestId, Entry>) -> Result<(), RequestsError> {
        let file = RequestsFile {
            version: 1,
            requests: all
                .values()
                .map(|e| StoredRequest {
                    terms: e.book.terms.to_json(),
                    fills: e.book.fills.clone(),
                    cancelled: e.book.cancelled,
                    action: e.action.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| RequestsError::Storage(e.to_string()))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.write_durable(REQUESTS_FILE, &bytes))
            .await
            .map_err(|e| RequestsError::Storage(e.to_string()))?
            .map_err(|e| RequestsError::Storage(e.to_string()))
    }
}

fn corrupt(dir: &DataDir, why: String) -> DataDirError {
    DataDirError::Corrupt {
        path: dir.file(REQUESTS_FILE),
        why,
    }
}

/// The API row of a request.
pub fn request_row(entry: &Entry, now: u64) -> RequestRow {
    let book = &entry.book;
    let terms = &book.terms;
    let asset = &terms.asset;
    let Progress {
        paid,
        pending,
        left,
        excess,
    } = book.progress();
    RequestRow {
        id: terms.id.to_string(),
        uri: terms.to_uri(),
        payee: terms.payee.to_z32(),
        amount: asset.format(terms.amount),
        asset: asset.to_string(),
        memo: terms.memo.clone(),
        methods: terms.methods.iter().map(|m| m.kind().to_string()).collect(),
        status: book.status(now).as_str().to_string(),
        paid: asset.format(paid),
        pending: asset.format(pending),
        left: asset.format(left),
        excess: asset.format(excess),
        percent: percent(paid, terms.amount),
        created_at: terms.created_at,
        expires_at: terms.expires_at,
        fills: book.fills.iter().map(|f| fill_row(asset, f)).collect(),
        action: match &entry.action {
            Action::None => None,
            other => Some(other.clone()),
        },
    }
}

/// The API row of a fill of a request in `asset`.
pub fn fill_row(asset: &atomicity_core::Asset, f: &Fill) -> FillRow {
    FillRow {
        id: f.id,
        method: f.method.to_string(),
        amount: asset.format(f.amount),
        sats: f.sats,
        reference: f.reference.clone(),
        payer: f.payer.clone(),
        status: f.status.as_str().to_string(),
        created_at: f.created_at,
    }
}

/// Whole percent of `part` in `whole`, rounded down (100 only when equal).
pub fn percent(part: Amount, whole: Amount) -> u8 {
    if whole.is_zero() {
        return 0;
    }
    let p = u128::from(part.minor()) * 100 / u128::from(whole.minor());
    u8::try_from(p.min(100)).unwrap_or(100)
}

/// What the payee answers a fill: what the payer needs to pay it.
pub fn fill_offer(book: &RequestBook, fill: &Fill, invoice: Option<String>) -> FillOfferRow {
    let asset = &book.terms.asset;
    FillOfferRow {
        request: book.terms.id.to_string(),
        fill: fill.id,
        method: fill.method.to_string(),
        amount: asset.format(fill.amount),
        asset: asset.to_string(),
        sats: fill.sats,
        invoice,
        address: match book.terms.method(fill.method) {
            Some(atomicity_core::request::Method::Onchain { address, .. }) => Some(address.clone()),
            _ => None,
        },
        status: fill.status.as_str().to_string(),
        reserved_until: fill.reserved_until,
        release_key: fill.release_key.clone(),
    }
}

/// Follows the payee's fills: credit fills settle or fail with their invoice, reservations run
/// out, and a filled request's action runs. Every [`FOLLOW_EVERY`], until the node stops.
pub async fn run(state: crate::server::AppState) {
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        follow(&state).await;
    }
}

async fn follow(state: &crate::server::AppState) {
    let now = crate::unix_now();
    for entry in state.requests.active(now).await {
        let id = entry.book.terms.id;
        // Credit fills: their invoice says.
        for fill in &entry.book.fills {
            if fill.method != MethodKind::Credit || !follows(fill, now) {
                continue;
            }
            let Some(hash) = hex::decode(&fill.reference)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            let status = state
                .actor
                .call(|r| crate::actor::Command::Hashlock(hash, r))
                .await
                .ok()
                .flatten()
                .map(|h| h.status.as_str());
            let fill_id = fill.id;
            let result = match status {
                Some("paid") => {
                    state
                        .requests
                        .update(&id, |e| Ok(e.book.mark_paid(fill_id).map(|_| ())?))
                        .await
                }
                Some("failed") if fill.status == FillStatus::Reserved => {
                    state
                        .requests
                        .update(&id, |e| Ok(e.book.release(fill_id)?))
                        .await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(request = %id, fill = fill_id, "cannot update a fill: {e}");
            }
        }
        if entry
            .book
            .fills
            .iter()
            .any(|f| f.status == FillStatus::Reserved)
        {
            let released = state
                .requests
                .update(&id, |e| Ok(e.book.tick(now)))
                .await
                .unwrap_or_default();
            for fill in released {
                tracing::info!(request = %id, fill, "a fill's reservation ran out");
            }
        }
        if matches!(entry.action, Action::Waiting { .. } | Action::Paying { .. })
            && entry.book.status(now) == RequestStatus::Filled
        {
            run_action(state, &id).await;
        }
    }
}

/// Whether the follow loop watches `fill` at `now`: reserved, or a credit fill given up (by its
/// payer) whose invoice has not reached its deadline: a payer that gave up may still pay it,
/// and the payee then counts it (paid, or excess).
fn follows(fill: &Fill, now: u64) -> bool {
    fill.status == FillStatus::Reserved
        || (fill.method == MethodKind::Credit
            && fill.status == FillStatus::Released
            && now < fill.reserved_until)
}

/// Pays the filled request's invoice with the node's wallet, at most once: `Paying` is saved
/// before the wallet runs.
async fn run_action(state: &crate::server::AppState, id: &RequestId) {
    let invoice = match state
        .requests
        .update(id, |e| match &e.action {
            Action::Waiting { invoice } | Action::Paying { invoice } => {
                let invoice = invoice.clone();
                e.action = Action::Paying {
                    invoice: invoice.clone(),
                };
                Ok(Some(invoice))
            }
            _ => Ok(None),
        })
        .await
    {
        Ok(Some(invoice)) => invoice,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(request = %id, "cannot start the request's action: {e}");
            return;
        }
    };
    let outcome = match (
        &state.lightning.payer,
        parse_bolt11(&invoice, state.lightning.network, 0),
    ) {
        (None, _) => Err("this node has no Lightning wallet (node run --ln-pay-cmd)".to_string()),
        (_, Err(e)) => Err(e.to_string()),
        (Some(payer), Ok(bolt11)) => payer.pay(&bolt11).await.map_err(|e| e.to_string()),
    };
    let action = match outcome {
        Ok(preimage) => {
            tracing::info!(request = %id, "request filled: paid its invoice");
            Action::Paid {
                invoice,
                preimage: hex::encode(preimage),
            }
        }
        Err(reason) => {
            tracing::warn!(request = %id, "request filled, but paying its invoice failed: {reason}");
            Action::Failed { invoice, reason }
        }
    };
    if let Err(e) = state
        .requests
        .update(id, |e| {
            e.action = action;
            Ok(())
        })
        .await
    {
        tracing::warn!(request = %id, "cannot record the request's action: {e}");
    }
}

/// Reads a fetched request document's terms and checks they are the ones the URI names.
pub fn check_fetched(
    terms_json: &str,
    payee: &PublicKey,
    id: &RequestId,
) -> Result<RequestTerms, String> {
    let terms = RequestTerms::from_json(terms_json).map_err(|e| e.to_string())?;
    if &terms.payee != payee || &terms.id != id {
        return Err("the signed request is not the one the URI names".into());
    }
    Ok(terms)
}

/// `text` (a request's URI) as an SVG QR code.
pub fn qr_svg(text: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| e.to_string())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// `text` as a QR code for a terminal: two rows of modules per line, light on dark so that
/// it scans on the usual dark terminal.
pub fn qr_text(text: &str) -> Result<String, String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| e.to_string())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
