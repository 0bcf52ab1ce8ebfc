//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, ConditionalRecord, Direction, Evidence,
    EvidenceRecord, FeePolicy, ForwardRecord, HashlockRecord, HashlockRole, HashlockStatus,
    Keypair, Limits, LineId, LineRecord, PaymentRecord, PaymentStatus, PeerRecord, ProofRecord,
    PublicKey, SettlementKind, SettlementRecord, SettlementRequest, SettlementRole,
    SettlementStatus, Signed, Snapshot, StoreOp, WitnessCondition, WitnessTerms, payout_payment_id,
    published::EndpointId,
};

/// A deterministic key (`n` seeds the secret key).
pub fn key(n: u8) -> PublicKey {
    Keypair::from_secret_key(&[n; 32]).public_key()
}

/// The key pair of [`key`]`(n)`.
pub fn keypair(n: u8) -> Keypair {
    Keypair::from_secret_key(&[n; 32])
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
        out_state: Some(vec![1, 2, 3, next_id as u8].into()),
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
        iou: vec![9, id as u8, 7].into(),
        answer: answer.map(Into::into),
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
    s.settlements.sort_by_key(|s| s.id);
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

pub fn method(id: &str) -> EndpointId {
    EndpointId::parse(id).expect("endpoint id")
}

/// When the test requests were signed (the records' own timestamps are independent of it).
pub const REQUESTED_AT: u64 = 1_700_000_000;

/// A signed settle request with id `[n; 32]` from `key(1)` (the holder) to `key(2)`.
pub fn settle_request(n: u8) -> Signed<SettlementRequest> {
    Signed::sign(
        SettlementRequest {
            id: [n; 32],
            from: key(1),
            to: key(2),
            kind: SettlementKind::Settle,
            asset: usd(),
            amount: Amount::from_minor(2_500 + u64::from(n)),
            methods: vec![method("usd-atomicity-key"), method("usd-manual-note")],
            invoice: String::new(),
            condition: None,
            created_at: REQUESTED_AT,
            expires_at: REQUESTED_AT + 3_600,
            memo: format!("settle {n}"),
        },
        &keypair(1),
    )
}

/// The verifier key of a witness log `witness.example` whose key is the public key of RFC 8032's
/// first Ed25519 test vector.
pub const WITNESS_VKEY: &str =
    "witness.example+7ae038f4+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";

/// A signed swap request with id `[n; 32]` from `key(1)` to `key(2)`: pay an invoice with
/// payment hash `[n ^ 0x55; 32]` against a conditional IOU.
pub fn swap_request(n: u8) -> Signed<SettlementRequest> {
    Signed::sign(
        SettlementRequest {
            id: [n; 32],
            from: key(1),
            to: key(2),
            kind: SettlementKind::Swap,
            asset: btc(),
            amount: Amount::from_minor(10_000),
            methods: vec![method("btc-lightning-bolt11")],
            invoice: "lnbc100n1pexample".into(),
            condition: Some(WitnessCondition {
                hash: [n ^ 0x55; 32],
                witnesses: vec![WitnessTerms::new(WITNESS_VKEY.into(), 10, 20)],
            }),
            created_at: REQUESTED_AT,
            expires_at: REQUESTED_AT + 600,
            memo: String::new(),
        },
        &keypair(1),
    )
}

/// Real credit evidence for settlement `[n; 32]`: the payer `key(2)`'s IOU to the holder's
/// endpoint key `key(3)`, and `key(3)`'s acceptance of it.
pub fn credit_evidence(n: u8) -> Evidence {
    let line = LineId {
        issuer: key(2),
        holder: key(3),
        asset: usd(),
    };
    let iou = Signed::sign(
        ConditionalIou {
            line: line.clone(),
            id: u64::from(n),
            amount: Amount::from_minor(2_500 + u64::from(n)),
            condition: Condition::HolderAccepts,
            payment_id: payout_payment_id(&[n; 32]),
            expires_at: 9_999,
            memo: "settlement".into(),
        },
        &keypair(2),
    );
    let acceptance = Signed::sign(
        Acceptance {
            line,
            id: u64::from(n),
            iou_hash: iou.hash(),
        },
        &keypair(3),
    );
    Evidence::Credit {
        iou: Box::new(iou),
        acceptance: Box::new(acceptance),
    }
}

/// The requester's record of settlement `[n; 32]` (a settle request to `key(2)`).
pub fn settlement(
    n: u8,
    status: SettlementStatus,
    created_at: u64,
    updated_at: u64,
) -> SettlementRecord {
    SettlementRecord {
        id: [n; 32],
        role: SettlementRole::Requester,
        peer: key(2),
        request: settle_request(n),
        status,
        method: None,
        evidence: None,
        note: String::new(),
        delivered: false,
        created_at,
        updated_at,
    }
}

/// Settlement `[n; 32]` paid with `evidence` through `via`.
pub fn paid_settlement(
    n: u8,
    via: &str,
    evidence: Evidence,
    created_at: u64,
    updated_at: u64,
) -> SettlementRecord {
    SettlementRecord {
        method: Some(method(via)),
        evidence: Some(evidence),
        note: format!("paid {n}"),
        delivered: true,
        ..settlement(n, SettlementStatus::Paid, created_at, updated_at)
    }
}

/// The payer's record of swap `[n; 32]`, paid with the invoice's preimage.
pub fn swap_settlement(n: u8, created_at: u64, updated_at: u64) -> SettlementRecord {
    SettlementRecord {
        id: [n; 32],
        role: SettlementRole::Payer,
        peer: key(1),
        request: swap_request(n),
        status: SettlementStatus::Done,
        method: Some(method("btc-lightning-bolt11")),
        evidence: Some(Evidence::Preimage([n ^ 0xaa; 32])),
        note: "the invoice was paid and the IOU claimed".into(),
        delivered: true,
        created_at,
        updated_at,
    }
}

/// A swap hashlock with hash `[n; 32]` whose secret is not known yet.
pub fn swap_hashlock(n: u8, status: HashlockStatus, created_at: u64) -> HashlockRecord {
    HashlockRecord {
        p: [0; 32],
        role: HashlockRole::Swap,
        issued: vec![vec![n, 1], vec![n, 2]],
        ..hashlock(n, status, created_at, created_at)
    }
}
