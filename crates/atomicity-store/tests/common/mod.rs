//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use atomicity_core::{
    Amount, Asset, ConditionalRecord, Direction, EvidenceRecord, Keypair, Limits, LineRecord,
    PaymentRecord, PaymentStatus, PeerRecord, PublicKey, Snapshot, StoreOp,
};

/// A deterministic key (`n` seeds the secret key).
pub fn key(n: u8) -> PublicKey {
    Keypair::from_secret_key(&[n; 32]).public_key()
}

pub fn usd() -> Asset {
    Asset::new("USD", 2).expect("USD:2")
}

pub fn btc() -> Asset {
    Asset::new("BTC", 8).expect("BTC:8")
}

pub fn peer(key: &PublicKey, url: Option<&str>) -> PeerRecord {
    PeerRecord {
        key: key.clone(),
        url: url.map(str::to_string),
    }
}

pub fn line(peer: &PublicKey, asset: &Asset, accept: u64, next_id: u64) -> LineRecord {
    LineRecord {
        peer: peer.clone(),
        asset: asset.clone(),
        limits: Limits {
            accept: Amount::from_minor(accept),
            issue: Amount::from_minor(accept / 2),
        },
        next_id,
        out_state: Some(vec![1, 2, 3, next_id as u8]),
        in_state: None,
    }
}

pub fn conditional(
    peer: &PublicKey,
    asset: &Asset,
    dir: Direction,
    id: u64,
    answer: Option<Vec<u8>>,
) -> ConditionalRecord {
    ConditionalRecord {
        peer: peer.clone(),
        asset: asset.clone(),
        dir,
        id,
        iou: vec![9, id as u8, 7],
        answer,
    }
}

pub fn payment(
    id: u8,
    dir: Direction,
    peer: &PublicKey,
    status: PaymentStatus,
    created_at: u64,
    updated_at: u64,
) -> PaymentRecord {
    PaymentRecord {
        entry: entry_key(id, dir),
        payment_id: [id; 32],
        dir,
        peer: peer.clone(),
        asset: usd(),
        amount: Amount::from_minor(1_000 + u64::from(id)),
        status,
        memo: format!("payment {id}"),
        created_at,
        updated_at,
    }
}

pub fn evidence(peer: &PublicKey, what: &str, at: u64) -> EvidenceRecord {
    EvidenceRecord {
        peer: peer.clone(),
        what: what.to_string(),
        received: what.as_bytes().to_vec(),
        at,
    }
}

pub fn delete(c: &ConditionalRecord) -> StoreOp {
    StoreOp::DeleteConditional {
        peer: c.peer.clone(),
        asset: c.asset.clone(),
        dir: c.dir,
        id: c.id,
    }
}

/// The snapshot with every vector in a canonical order.
pub fn sorted(mut s: Snapshot) -> Snapshot {
    s.peers.sort_by_key(|p| *p.key.as_bytes());
    s.lines
        .sort_by(|a, b| (a.peer.as_bytes(), &a.asset).cmp(&(b.peer.as_bytes(), &b.asset)));
    s.conditionals.sort_by(|a, b| {
        (a.peer.as_bytes(), &a.asset, a.dir, a.id).cmp(&(b.peer.as_bytes(), &b.asset, b.dir, b.id))
    });
    s.pending_payments.sort_by_key(|p| (p.payment_id, p.dir));
    s
}

/// A history entry key per (id, direction), as the ledger's are unique per entry.
pub fn entry_key(id: u8, dir: Direction) -> [u8; 32] {
    let mut entry = [id; 32];
    entry[31] = match dir {
        Direction::In => 0,
        Direction::Out => 1,
    };
    entry
}
