//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use atomicity_core::{
    Amount, Asset, ConditionalRecord, Direction, EvidenceRecord, FeePolicy, ForwardRecord,
    HashlockRecord, HashlockRole, HashlockStatus, Keypair, Limits, LineRecord, PaymentRecord,
    PaymentStatus, PeerRecord, ProofRecord, PublicKey, Snapshot, StoreOp,
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
        fees: FeePolicy::default(),
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
        onward: None,
        proof: None,
        claimed: false,
    }
}

pub fn forward(
    in_peer: &PublicKey,
    in_id: u64,
    out_peer: &PublicKey,
    out_id: u64,
) -> ForwardRecord {
    ForwardRecord {
        asset: usd(),
        in_peer: in_peer.clone(),
        in_id,
        out_peer: out_peer.clone(),
        out_id,
    }
}

pub fn delete_forward(f: &ForwardRecord) -> StoreOp {
    StoreOp::DeleteForward {
        asset: f.asset.clone(),
        in_peer: f.in_peer.clone(),
        in_id: f.in_id,
    }
}

/// A proof of publication for hash `[n; 32]`.
pub fn proof(n: u8, at: u64) -> ProofRecord {
    ProofRecord {
        hash: [n; 32],
        proof: vec![0xaa, n, at as u8],
        at,
    }
}

/// A hashlock with hash `[n; 32]`.
pub fn hashlock(n: u8, status: HashlockStatus, created_at: u64, updated_at: u64) -> HashlockRecord {
    HashlockRecord {
        hash: [n; 32],
        p: [n ^ 0xff; 32],
        role: HashlockRole::Payee,
        payee: key(1),
        asset: usd(),
        amount: Amount::from_minor(500 + u64::from(n)),
        condition: vec![6, n, 6],
        expires_at: 1_000 + u64::from(n),
        memo: format!("invoice {n}"),
        status,
        proof: match status {
            HashlockStatus::Done => Some(vec![5, n]),
            _ => None,
        },
        issued: Vec::new(),
        created_at,
        updated_at,
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
    s.forwards.sort_by(|a, b| {
        (a.in_peer.as_bytes(), &a.asset, a.in_id).cmp(&(b.in_peer.as_bytes(), &b.asset, b.in_id))
    });
    s.hashlocks.sort_by_key(|h| h.hash);
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
