//! Delegated payment accounts, the I/O half: the delegations this node issued, which it revoked,
//! what each spent in its current period and which orders it has seen, kept in
//! `DIR/delegations.json` (`atomicity_core::delegation` decides; this module remembers).
//!
//! Persist before you speak: an accepted order's spend and id are written durably (temp file,
//! fsync, rename, fsync of the directory) before the payment starts, and a failed payment's
//! spend is given back durably too. A crash in between can only leave a spend recorded that was
//! not paid, never a payment that was not counted.

use std::collections::{BTreeMap, BTreeSet};

use atomicity_core::delegation::{Cap, MAX_ORDER_SKEW_SECS};
use atomicity_core::{
    Amount, Asset, DelegatedPayment, Delegation, DelegationRefusal, Keypair, PublicKey, ScopeError,
    Signed, check_order,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::datadir::{DataDir, DataDirError};

/// The file the delegations live in.
pub const DELEGATIONS_FILE: &str = "delegations.json";
/// The peer API route an app posts its orders to (no API token: the signatures are the
/// credentials).
pub const DELEGATED_PAY_PATH: &str = "/v1/delegated/pay";
/// Most delegations one node keeps.
pub const MAX_DELEGATIONS: usize = 1024;
/// Most order ids remembered at once (each only while its order could still be fresh).
pub const MAX_SEEN_ORDERS: usize = 100_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct DelegationsFile {
    version: u32,
    /// By id (hex).
    #[serde(default)]
    issued: BTreeMap<String, Issued>,
    /// Ids (hex) of revoked delegations.
    #[serde(default)]
    revoked: BTreeSet<String>,
    /// `"{delegation id}:{order id}"` (hex) → the order's `created_at`.
    #[serde(default)]
    seen: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Issued {
    /// The signed delegation's wire bytes (hex).
    signed: String,
    /// Per asset (as shown, e.g. `USD`): what was spent in which period.
    #[serde(default)]
    spent: BTreeMap<String, Spent>,
}

/// What a delegation spent of one asset in its latest period with a spend.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Spent {
    period: u64,
    minor: u64,
}

impl Issued {
    fn spent_in(&self, asset: &Asset, period: u64) -> Amount {
        match self.spent.get(&asset.to_string()) {
            Some(s) if s.period == period => Amount::from_minor(s.minor),
            _ => Amount::ZERO,
        }
    }
}

/// Why a delegation request was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// The order breaks a rule of its delegation (or is forged).
    #[error(transparent)]
    Refused(#[from] DelegationRefusal),
    /// The bytes sent are not a delegation and an order.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which object.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// Signed by this node, but not a delegation it keeps.
    #[error("this node keeps no such delegation")]
    UnknownDelegation,
    /// Bad terms for a new delegation.
    #[error("{0}")]
    Bad(String),
    /// Too many delegations or remembered orders.
    #[error("{0}")]
    Full(String),
    /// The file could not be written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<ScopeError> for DelegateError {
    fn from(e: ScopeError) -> DelegateError {
        DelegateError::Bad(e.to_string())
    }
}

/// One delegation as the master sees it.
#[derive(Clone, Debug)]
pub struct DelegationInfo {
    /// The signed delegation.
    pub signed: Signed<Delegation>,
    /// Per cap, what was spent in the period `now` falls in.
    pub spent: Vec<Amount>,
    /// The period `now` falls in: (start, end), if the delegation has started.
    pub period: Option<(u64, u64)>,
    /// Revoked by the master.
    pub revoked: bool,
    /// Past its `expires_at`.
    pub expired: bool,
}

/// An accepted order's spend, recorded before paying.
#[derive(Clone, Debug)]
pub struct Reservation {
    /// The delegation.
    pub delegation: Signed<Delegation>,
    /// The order.
    pub order: DelegatedPayment,
    /// The period it was counted in.
    pub period: u64,
    /// The cap of the order's asset.
    pub cap: Amount,
    /// Spent in the period with this order.
    pub spent: Amount,
}

/// Terms of a new delegation (already parsed).
#[derive(Clone, Debug)]
pub struct NewTerms {
    /// A label for the master's own view.
    pub label: String,
    /// Per asset, the cap per period.
    pub caps: Vec<Cap>,
    /// Seconds per period.
    pub period_secs: u64,
    /// The allowed payees (empty: any).
    pub payees: Vec<PublicKey>,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The delegations this node issued, and what it remembers about them.
pub struct Delegations {
    dir: DataDir,
    key: Keypair,
    file: Mutex<DelegationsFile>,
}

fn decode_signed(hex_text: &str) -> Option<Signed<Delegation>> {
    let bytes = hex::decode(hex_text).ok()?;
    Signed::<Delegation>::decode_verified(&bytes).ok()
}

impl Delegations {
    /// Reads `DIR/delegations.json` (none: no delegations). `key` is the node's identity, which
    /// signs delegations.
    pub fn open(dir: &DataDir, key: Keypair) -> Result<Delegations, DataDirError> {
        let corrupt = |why: String| DataDirError::Corrupt {
            path: dir.file(DELEGATIONS_FILE),
            why,
        };
        let file = match dir.read_optional(DELEGATIONS_FILE)? {
            Some(bytes) => {
                let file: DelegationsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(format!("does not read back: {e}")))?;
                if file.version != 1 {
                    return Err(corrupt(format!("unknown version {}", file.version)));
                }
                for (id, issued) in &file.issued {
                    let ok = decode_signed(&issued.signed).is_some_and(|d| {
                        hex::encode(d.body().id) == *id && d.body().master == key.public_key()
                    });
                    if !ok {
                        return Err(corrupt(format!("delegation {id} does not verify")));
                    }
                }
                file
            }
            None => DelegationsFile {
                version: 1,
                ..DelegationsFile::default()
            },
        };
        Ok(Delegations {
            dir: dir.clone(),
            key,
            file: Mutex::new(file),
        })
    }

    async fn persist(&self, file: &DelegationsFile) -> Result<(), DelegateError> {
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|e| DelegateError::Storage(e.to_string()))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.write_durable(DELEGATIONS_FILE, &bytes))
            .await
            .map_err(|e| DelegateError::Storage(e.to_string()))?
            .map_err(|e| DelegateError::Storage(e.to_string()))
    }

    /// Signs a delegation of `terms` to a new random sub key and keeps it; returns it with the
    /// sub key.
    pub async fn issue(
        &self,
        terms: NewTerms,
    ) -> Result<(Signed<Delegation>, Keypair), DelegateError> {
        let sub = Keypair::from_secret_key(&rand::random::<[u8; 32]>());
        let mut body = Delegation {
            id: rand::random(),
            master: self.key.public_key(),
            sub: sub.public_key(),
            label: terms.label,
            caps: terms.caps,
            period_secs: terms.period_secs,
            payees: terms.payees,
            not_before: terms.not_before,
            expires_at: terms.expires_at,
        };
        body.canonicalize();
        body.validate()?;
        let signed = Signed::sign(body, &self.key);
        let mut file = self.file.lock().await;
        if file.issued.len() >= MAX_DELEGATIONS {
            return Err(DelegateError::Full(format!(
                "this node keeps at most {MAX_DELEGATIONS} delegations"
            )));
        }
        let mut next = file.clone();
        next.issued.insert(
            hex::encode(signed.body().id),
            Issued {
                signed: hex::encode(signed.to_bytes()),
                spent: BTreeMap::new(),
            },
        );
        self.persist(&next).await?;
        *file = next;
        Ok((signed, sub))
    }

    /// Revokes delegation `id` (hex); `None` if there is no such delegation. Revoking twice is
    /// fine.
    pub async fn revoke(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<DelegationInfo>, DelegateError> {
        let id = id.trim().to_ascii_lowercase();
        let mut file = self.file.lock().await;
        if !file.issued.contains_key(&id) {
            return Ok(None);
        }
        if !file.revoked.contains(&id) {
            let mut next = file.clone();
            next.revoked.insert(id.clone());
            self.persist(&next).await?;
            *file = next;
        }
        Ok(info(&file, &id, now))
    }

    /// Delegation `id` (hex), as of `now`.
    pub async fn get(&self, id: &str, now: u64) -> Option<DelegationInfo> {
        info(&*self.file.lock().await, id, now)
    }

    /// Every delegation, as of `now`.
    pub async fn list(&self, now: u64) -> Vec<DelegationInfo> {
        let file = self.file.lock().await;
        file.issued
            .keys()
            .filter_map(|id| info(&file, id, now))
            .collect()
    }

    /// Checks `order` under `delegation` (wire bytes) at `now` and, if every check passes,
    /// records the order as seen and its amount as spent, durably, before returning.
    pub async fn reserve(
        &self,
        delegation: &[u8],
        order: &[u8],
        now: u64,
    ) -> Result<Reservation, DelegateError> {
        let signed =
            Signed::<Delegation>::decode(delegation).map_err(|e| DelegateError::Malformed {
                what: "delegation",
                why: e.to_string(),
            })?;
        let order =
            Signed::<DelegatedPayment>::decode(order).map_err(|e| DelegateError::Malformed {
                what: "order",
                why: e.to_string(),
            })?;
        let d = signed.body();
        let o = order.body();
        let id = hex::encode(d.id);
        let seen_key = format!("{id}:{}", hex::encode(o.order_id));

        let mut file = self.file.lock().await;
        let mut next = file.clone();
        // Orders outside the freshness window are refused anyway: forget their ids.
        next.seen
            .retain(|_, created_at| created_at.saturating_add(MAX_ORDER_SKEW_SECS) >= now);
        let issued = next.issued.get(&id);
        let period = d.period_at(now).map_or(0, |p| p.index);
        let spent = issued.map_or(Amount::ZERO, |i| i.spent_in(&o.asset, period));
        let revoked = next.revoked.contains(&id);
        let seen = next.seen.contains_key(&seen_key);
        let period = check_order(
            &signed,
            &order,
            &self.key.public_key(),
            now,
            spent,
            revoked,
            seen,
        )?;
        // Genuinely signed by this node, but it must also be one the node keeps (and so counts).
        let issued = next
            .issued
            .get_mut(&id)
            .filter(|i| i.signed == hex::encode(signed.to_bytes()))
            .ok_or(DelegateError::UnknownDelegation)?;
        if next.seen.len() >= MAX_SEEN_ORDERS {
            return Err(DelegateError::Full(
                "too many orders in the last minutes; try again later".into(),
            ));
        }
        // check_order accepted: spent + amount is within the cap, so it does not overflow.
        let total = spent
            .checked_add(o.amount)
            .ok_or_else(|| DelegateError::Bad("amount overflow".into()))?;
        let cap = d.cap_for(&o.asset).unwrap_or(Amount::ZERO);
        issued.spent.insert(
            o.asset.to_string(),
            Spent {
                period: period.index,
                minor: total.minor(),
            },
        );
        next.seen.insert(seen_key, o.created_at);
        self.persist(&next).await?;
        *file = next;
        Ok(Reservation {
            delegation: signed.clone(),
            order: o.clone(),
            period: period.index,
            cap,
            spent: total,
        })
    }

    /// Gives back a reservation whose payment failed (durably). The order stays seen.
    pub async fn give_back(&self, r: &Reservation) -> Result<(), DelegateError> {
        let id = hex::encode(r.delegation.body().id);
        let asset = r.order.asset.to_string();
        let mut file = self.file.lock().await;
        let mut next = file.clone();
        let Some(spent) = next
            .issued
            .get_mut(&id)
            .and_then(|i| i.spent.get_mut(&asset))
            .filter(|s| s.period == r.period)
        else {
            // A new period began since: nothing of this one is counted any more.
            return Ok(());
        };
        spent.minor = spent.minor.saturating_sub(r.order.amount.minor());
        self.persist(&next).await?;
        *file = next;
        Ok(())
    }
}

fn info(file: &DelegationsFile, id: &str, now: u64) -> Option<DelegationInfo> {
    let issued = file.issued.get(id)?;
    // Verified when the file was opened or the delegation signed.
    let signed = Signed::<Delegation>::decode(&hex::decode(&issued.signed).ok()?).ok()?;
    let d = signed.body();
    let period = d.period_at(now);
    let index = period.map_or(0, |p| p.index);
    let spent = d
        .caps
        .iter()
        .map(|c| match period {
            Some(_) => issued.spent_in(&c.asset, index),
            None => Amount::ZERO,
        })
        .collect();
    Some(DelegationInfo {
        spent,
        period: period.map(|p| (p.starts_at, p.ends_at)),
        revoked: file.revoked.contains(id),
        expired: now >= d.expires_at,
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn usd() -> Asset {
        Asset::new("USD", 2).expect("USD")
    }

    fn terms(payee: &PublicKey) -> NewTerms {
        NewTerms {
            label: "app".into(),
            caps: vec![Cap {
                asset: usd(),
                cap: Amount::from_minor(2000),
            }],
            period_secs: 86_400,
            payees: vec![payee.clone()],
            not_before: NOW,
            expires_at: NOW + 86_400 * 30,
        }
    }

    fn order(
        d: &Signed<Delegation>,
        sub: &Keypair,
        payee: &PublicKey,
        n: u8,
        minor: u64,
    ) -> Vec<u8> {
        Signed::sign(
            DelegatedPayment {
                delegation_id: d.body().id,
                order_id: [n; 16],
                sub: sub.public_key(),
                payee: payee.clone(),
                asset: usd(),
                amount: Amount::from_minor(minor),
                memo: String::new(),
                created_at: NOW + 5,
            },
            sub,
        )
        .to_bytes()
    }

    #[tokio::test]
    async fn spends_revocations_and_seen_orders_survive_a_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        let key = Keypair::from_secret_key(&[1; 32]);
        let payee = Keypair::from_secret_key(&[2; 32]).public_key();
        let ds = Delegations::open(&dir, key.clone()).expect("open");
        let (d, sub) = ds.issue(terms(&payee)).await.expect("issue");
        let (d2, sub2) = ds.issue(terms(&payee)).await.expect("issue");
        let wire = d.to_bytes();

        let r = ds
            .reserve(&wire, &order(&d, &sub, &payee, 1, 500), NOW + 5)
            .await
            .expect("accepted");
        assert_eq!(r.spent, Amount::from_minor(500));
        let r2 = ds
            .reserve(&wire, &order(&d, &sub, &payee, 2, 1500), NOW + 5)
            .await
            .expect("accepted");
        // The second payment failed: its amount comes back, its order stays seen.
        ds.give_back(&r2).await.expect("give back");
        let again = ds
            .reserve(&wire, &order(&d, &sub, &payee, 2, 1500), NOW + 6)
            .await;
        assert!(matches!(
            again,
            Err(DelegateError::Refused(DelegationRefusal::Replayed))
        ));
        assert!(
            ds.revoke(&hex::encode(d2.body().id), NOW)
                .await
                .expect("ok")
                .is_some()
        );
        assert!(ds.revoke("00", NOW).await.expect("ok").is_none());
        drop(ds);

        let ds = Delegations::open(&dir, key).expect("reopen");
        let list = ds.list(NOW + 10).await;
        let first = list
            .iter()
            .find(|i| i.signed.body().id == d.body().id)
            .expect("kept");
        assert_eq!(first.spent, vec![Amount::from_minor(500)]);
        assert!(!first.revoked);
        let over = ds
            .reserve(&wire, &order(&d, &sub, &payee, 3, 1501), NOW + 10)
            .await;
        assert!(matches!(
            over,
            Err(DelegateError::Refused(DelegationRefusal::OverCap { .. }))
        ));
        let replay = ds
            .reserve(&wire, &order(&d, &sub, &payee, 1, 500), NOW + 10)
            .await;
        assert!(matches!(
            replay,
            Err(DelegateError::Refused(DelegationRefusal::Replayed))
        ));
        let revoked = ds
            .reserve(&d2.to_bytes(), &order(&d2, &sub2, &payee, 1, 1), NOW + 10)
            .await;
        assert!(matches!(
            revoked,
            Err(DelegateError::Refused(DelegationRefusal::Revoked))
        ));
        // The next day the cap is whole again, and yesterday's order ids are forgotten.
        let next_day = NOW + 86_400 + 5;
        let d_bytes = Signed::sign(
            DelegatedPayment {
                delegation_id: d.body().id,
                order_id: [1; 16],
                sub: sub.public_key(),
                payee: payee.clone(),
                asset: usd(),
                amount: Amount::from_minor(2000),
                memo: String::new(),
                created_at: next_day,
            },
            &sub,
        )
        .to_bytes();
        let r = ds
            .reserve(&wire, &d_bytes, next_day)
            .await
            .expect("new day");
        assert_eq!(r.period, 1);
        assert_eq!(r.spent, Amount::from_minor(2000));
    }

    #[tokio::test]
    async fn a_delegation_signed_by_this_key_but_not_kept_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        let key = Keypair::from_secret_key(&[1; 32]);
        let payee = Keypair::from_secret_key(&[2; 32]).public_key();
        let sub = Keypair::from_secret_key(&[4; 32]);
        let ds = Delegations::open(&dir, key.clone()).expect("open");
        let t = terms(&payee);
        let d = Signed::sign(
            Delegation {
                id: [9; 16],
                master: key.public_key(),
                sub: sub.public_key(),
                label: t.label,
                caps: t.caps,
                period_secs: t.period_secs,
                payees: t.payees,
                not_before: t.not_before,
                expires_at: t.expires_at,
            },
            &key,
        );
        let r = ds
            .reserve(&d.to_bytes(), &order(&d, &sub, &payee, 1, 1), NOW + 5)
            .await;
        assert!(matches!(r, Err(DelegateError::UnknownDelegation)));
        let r = ds.reserve(b"junk", b"junk", NOW).await;
        assert!(matches!(r, Err(DelegateError::Malformed { .. })));
    }
}
