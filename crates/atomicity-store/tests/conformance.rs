//! One conformance suite, run against both [`SqliteStore`] and [`MemoryStore`].
#![allow(missing_docs)]

mod common;

use atomicity_core::{
    Amount, Direction, Evidence, FeePolicy, HashlockRecord, HashlockRole, HashlockStatus, Limits,
    LineRecord, PaymentStatus, SettlementRecord, SettlementStatus, Snapshot, StoreOp,
};
use atomicity_store::{MemoryStore, SqliteStore, Store, StoreError};
use common::*;

fn load(store: &mut dyn Store) -> Snapshot {
    sorted(store.load().expect("load"))
}

fn commit(store: &mut dyn Store, ops: Vec<StoreOp>) {
    store.commit(&ops).expect("commit");
}

fn round_trip_every_op(store: &mut dyn Store) {
    let (a, b) = (key(1), key(2));
    let peer_a = peer(&a, Some("https://a.example"));
    let peer_b = peer(&b, None);
    let line_a = line(&a, &usd(), 10_000, 3);
    let mut line_b = line(&b, &btc(), 5, 0);
    line_b.out_state = None;
    line_b.in_state = Some(vec![4, 5, 6].into());
    let out_a = conditional(&a, &usd(), Direction::Out, 1, None);
    let in_a = conditional(&a, &usd(), Direction::In, 1, Some(vec![3, 1, 1]));
    let gone = conditional(&a, &usd(), Direction::Out, 2, Some(vec![4, 2, 2]));
    let pending = payment(1, Direction::Out, &a, PaymentStatus::Pending, 10, 10);
    let completed = payment(2, Direction::In, &a, PaymentStatus::Completed, 11, 12);
    let failed = payment(
        3,
        Direction::Out,
        &b,
        PaymentStatus::Failed("refused".into()),
        5,
        6,
    );
    let proof = evidence(&b, "equivocation", 42);
    let link = forward(&a, 1, &b, 4);
    let gone_link = forward(&b, 2, &a, 5);
    let open = hashlock(1, HashlockStatus::Open, 20, 20);
    let paid = hashlock(2, HashlockStatus::Done, 21, 22);
    let swap = swap_hashlock(3, HashlockStatus::Open, 19);
    let requested = settlement(1, SettlementStatus::Requested, 30, 30);
    let credited = paid_settlement(2, "usd-atomicity-key", credit_evidence(2), 31, 33);
    let swapped = swap_settlement(3, 32, 34);
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer_a.clone()),
            StoreOp::PutPeer(peer_b.clone()),
            StoreOp::PutLine(line_a.clone()),
            StoreOp::PutLine(line_b.clone()),
            StoreOp::PutConditional(out_a.clone()),
            StoreOp::PutConditional(in_a.clone()),
            StoreOp::PutConditional(gone.clone()),
            delete(&gone),
            StoreOp::PutPayment(pending.clone()),
            StoreOp::PutPayment(completed.clone()),
            StoreOp::PutPayment(failed.clone()),
            StoreOp::PutEvidence(proof.clone()),
            StoreOp::PutForward(link.clone()),
            StoreOp::PutForward(gone_link.clone()),
            delete_forward(&gone_link),
            StoreOp::PutHashlock(open.clone()),
            StoreOp::PutHashlock(paid.clone()),
            StoreOp::PutHashlock(swap.clone()),
            StoreOp::PutSettlement(Box::new(requested.clone())),
            StoreOp::PutSettlement(Box::new(credited.clone())),
            StoreOp::PutSettlement(Box::new(swapped.clone())),
        ],
    );
    let expected = sorted(Snapshot {
        peers: vec![peer_a, peer_b],
        lines: vec![line_a, line_b],
        conditionals: vec![out_a, in_a],
        pending_payments: vec![pending.clone()],
        forwards: vec![link],
        hashlocks: vec![open.clone(), swap.clone()],
        settlements: vec![requested.clone(), credited.clone(), swapped.clone()],
    });
    assert_eq!(load(store), expected);
    assert_eq!(
        store.history(10).expect("history"),
        vec![completed, pending, failed]
    );
    assert_eq!(store.evidence().expect("evidence"), vec![proof]);
    assert_eq!(
        store.hashlocks(10).expect("hashlocks"),
        vec![paid, open, swap]
    );
    assert_eq!(
        store.settlements(10).expect("settlements"),
        vec![swapped, credited, requested]
    );
}

fn extreme_values_round_trip(store: &mut dyn Store) {
    let a = key(1);
    let line = LineRecord {
        peer: a.clone(),
        asset: usd(),
        limits: Limits {
            accept: Amount::from_minor(u64::MAX),
            issue: Amount::from_minor(1 << 63),
        },
        fees: FeePolicy {
            base: Amount::from_minor(u64::MAX),
            ppm: u32::MAX,
        },
        next_id: u64::MAX,
        out_state: Some(Vec::new().into()),
        in_state: Some(vec![0; 4096].into()),
    };
    let mut c = conditional(&a, &usd(), Direction::In, u64::MAX, Some(Vec::new()));
    c.iou = Vec::new().into();
    c.onward = Some(Vec::new());
    c.proof = Some(vec![0; 4096]);
    c.claimed = true;
    let f = atomicity_core::ForwardRecord {
        asset: usd(),
        in_peer: a.clone(),
        in_id: u64::MAX,
        out_peer: a.clone(),
        out_id: 1 << 63,
    };
    let h = HashlockRecord {
        hash: [0xff; 32],
        p: [0; 32],
        role: HashlockRole::Payer,
        payee: a.clone(),
        asset: btc(),
        amount: Amount::from_minor(u64::MAX),
        condition: Vec::new(),
        expires_at: u64::MAX,
        memo: "nul \0 inside, ünïcødé 🧾".into(),
        status: HashlockStatus::Publishing,
        proof: Some(Vec::new()),
        issued: vec![Vec::new(), vec![0xff; 70_000], vec![0]],
        created_at: i64::MAX as u64,
        updated_at: i64::MAX as u64,
    };
    let mut p = payment(
        0xff,
        Direction::In,
        &a,
        PaymentStatus::Failed(String::new()),
        i64::MAX as u64,
        i64::MAX as u64,
    );
    p.amount = Amount::from_minor(u64::MAX);
    p.memo = "nul \0 inside, ünïcødé 💸".into();
    let mut e = evidence(&a, "", 0);
    e.received = Vec::new();
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, Some(""))),
            StoreOp::PutLine(line.clone()),
            StoreOp::PutConditional(c.clone()),
            StoreOp::PutPayment(p.clone()),
            StoreOp::PutEvidence(e.clone()),
            StoreOp::PutForward(f.clone()),
            StoreOp::PutHashlock(h.clone()),
        ],
    );
    let s = load(store);
    assert_eq!(s.peers, vec![peer(&a, Some(""))]);
    assert_eq!(s.lines, vec![line]);
    assert_eq!(s.conditionals, vec![c]);
    assert!(s.pending_payments.is_empty());
    assert_eq!(s.forwards, vec![f]);
    assert_eq!(s.hashlocks, vec![h.clone()]);
    assert_eq!(store.history(1).expect("history"), vec![p]);
    assert_eq!(store.evidence().expect("evidence"), vec![e]);
    assert_eq!(store.hashlocks(1).expect("hashlocks"), vec![h.clone()]);
    assert_eq!(store.hashlock(&h.hash).expect("hashlock"), Some(h));
}

fn put_twice_replaces(store: &mut dyn Store) {
    let a = key(1);
    let first_line = line(&a, &usd(), 100, 1);
    let c = conditional(&a, &usd(), Direction::Out, 0, None);
    let p = payment(1, Direction::Out, &a, PaymentStatus::Pending, 1, 1);
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, None)),
            StoreOp::PutLine(first_line),
            StoreOp::PutConditional(c.clone()),
            StoreOp::PutPayment(p.clone()),
        ],
    );
    let mut second_line = line(&a, &usd(), 200, 2);
    second_line.out_state = None;
    second_line.in_state = Some(vec![8].into());
    let mut answered = c;
    answered.answer = Some(vec![3, 0].into());
    let mut done = p;
    done.status = PaymentStatus::Completed;
    done.updated_at = 2;
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, Some("https://new.example"))),
            StoreOp::PutLine(second_line.clone()),
            StoreOp::PutConditional(answered.clone()),
            StoreOp::PutPayment(done.clone()),
        ],
    );
    let s = load(store);
    assert_eq!(s.peers, vec![peer(&a, Some("https://new.example"))]);
    assert_eq!(s.lines, vec![second_line]);
    assert_eq!(s.conditionals, vec![answered]);
    assert!(s.pending_payments.is_empty());
    assert_eq!(store.history(10).expect("history"), vec![done]);
}

fn same_key_in_one_batch_keeps_the_last(store: &mut dyn Store) {
    let a = key(1);
    let mut ops = vec![StoreOp::PutPeer(peer(&a, Some("one")))];
    ops.push(StoreOp::PutPeer(peer(&a, Some("two"))));
    for next_id in 0..5 {
        ops.push(StoreOp::PutLine(line(&a, &usd(), 7, next_id)));
    }
    commit(store, ops);
    let s = load(store);
    assert_eq!(s.peers, vec![peer(&a, Some("two"))]);
    assert_eq!(s.lines, vec![line(&a, &usd(), 7, 4)]);
}

fn lines_are_keyed_by_peer_and_asset(store: &mut dyn Store) {
    let (a, b) = (key(1), key(2));
    let usd0 = atomicity_core::Asset::new("USD", 0).expect("USD:0");
    let lines = vec![
        line(&a, &usd(), 1, 0),
        line(&a, &usd0, 2, 0),
        line(&a, &btc(), 3, 0),
        line(&b, &usd(), 4, 0),
    ];
    let mut ops = vec![
        StoreOp::PutPeer(peer(&a, None)),
        StoreOp::PutPeer(peer(&b, None)),
    ];
    ops.extend(lines.iter().cloned().map(StoreOp::PutLine));
    // The same id in both directions and on two lines are four conditionals.
    let conditionals = vec![
        conditional(&a, &usd(), Direction::Out, 5, None),
        conditional(&a, &usd(), Direction::In, 5, None),
        conditional(&a, &usd0, Direction::Out, 5, None),
        conditional(&b, &usd(), Direction::Out, 5, None),
    ];
    ops.extend(conditionals.iter().cloned().map(StoreOp::PutConditional));
    commit(store, ops);
    let s = load(store);
    assert_eq!(s.lines.len(), 4);
    assert_eq!(
        s,
        sorted(Snapshot {
            peers: s.peers.clone(),
            lines,
            conditionals,
            ..Snapshot::default()
        })
    );
}

fn delete_removes(store: &mut dyn Store) {
    let a = key(1);
    let keep = conditional(&a, &usd(), Direction::Out, 1, None);
    let drop_out = conditional(&a, &usd(), Direction::Out, 2, None);
    let drop_in = conditional(&a, &usd(), Direction::In, 1, Some(vec![3]));
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, None)),
            StoreOp::PutLine(line(&a, &usd(), 1, 3)),
            StoreOp::PutConditional(keep.clone()),
            StoreOp::PutConditional(drop_out.clone()),
            StoreOp::PutConditional(drop_in.clone()),
        ],
    );
    commit(store, vec![delete(&drop_out), delete(&drop_in)]);
    assert_eq!(load(store).conditionals, vec![keep.clone()]);
    // Deleting what is not there is a no-op, not an error.
    commit(
        store,
        vec![
            delete(&drop_out),
            delete(&conditional(&key(9), &btc(), Direction::In, 0, None)),
        ],
    );
    assert_eq!(load(store).conditionals, vec![keep]);
}

fn load_returns_only_pending_payments(store: &mut dyn Store) {
    let a = key(1);
    let p1 = payment(1, Direction::Out, &a, PaymentStatus::Pending, 1, 1);
    let p2 = payment(2, Direction::Out, &a, PaymentStatus::Completed, 2, 2);
    let p3 = payment(
        3,
        Direction::In,
        &a,
        PaymentStatus::Failed("x".into()),
        3,
        3,
    );
    let p4 = payment(4, Direction::Out, &a, PaymentStatus::Pending, 4, 4);
    // The same payment id in the other direction is another payment.
    let p1_in = payment(1, Direction::In, &a, PaymentStatus::Completed, 5, 5);
    commit(
        store,
        [&p1, &p2, &p3, &p4, &p1_in]
            .into_iter()
            .map(|p| StoreOp::PutPayment(p.clone()))
            .collect(),
    );
    assert_eq!(load(store).pending_payments, vec![p1.clone(), p4.clone()]);
    let mut p4_done = p4;
    p4_done.status = PaymentStatus::Failed("expired".into());
    commit(store, vec![StoreOp::PutPayment(p4_done)]);
    assert_eq!(load(store).pending_payments, vec![p1]);
    assert_eq!(store.history(usize::MAX).expect("history").len(), 5);
}

fn history_order_and_limit(store: &mut dyn Store) {
    let a = key(1);
    let newest = payment(1, Direction::Out, &a, PaymentStatus::Pending, 1, 100);
    // Same updated_at: the later created_at first.
    let tie_created_late = payment(2, Direction::Out, &a, PaymentStatus::Completed, 50, 90);
    let tie_created_early = payment(3, Direction::Out, &a, PaymentStatus::Completed, 40, 90);
    // Same updated_at and created_at: by payment id, then `in` before `out`.
    let tie_id_low_in = payment(4, Direction::In, &a, PaymentStatus::Completed, 10, 80);
    let tie_id_low_out = payment(4, Direction::Out, &a, PaymentStatus::Pending, 10, 80);
    let tie_id_high = payment(5, Direction::Out, &a, PaymentStatus::Pending, 10, 80);
    let oldest = payment(0, Direction::Out, &a, PaymentStatus::Pending, 0, 0);
    let expected = vec![
        newest,
        tie_created_late,
        tie_created_early,
        tie_id_low_in,
        tie_id_low_out,
        tie_id_high,
        oldest,
    ];
    // Committed in a scrambled order, over two commits.
    let mut ops: Vec<StoreOp> = expected.iter().cloned().map(StoreOp::PutPayment).collect();
    ops.reverse();
    ops.swap(1, 4);
    let later = ops.split_off(3);
    commit(store, ops);
    commit(store, later);
    assert_eq!(store.history(usize::MAX).expect("history"), expected);
    assert_eq!(store.history(100).expect("history"), expected);
    assert_eq!(store.history(3).expect("history"), expected[..3].to_vec());
    assert_eq!(store.history(0).expect("history"), Vec::new());
}

fn history_follows_updates(store: &mut dyn Store) {
    let a = key(1);
    let old = payment(1, Direction::Out, &a, PaymentStatus::Pending, 10, 10);
    let new = payment(2, Direction::Out, &a, PaymentStatus::Pending, 20, 20);
    commit(
        store,
        vec![
            StoreOp::PutPayment(old.clone()),
            StoreOp::PutPayment(new.clone()),
        ],
    );
    assert_eq!(store.history(1).expect("history"), vec![new]);
    let mut answered = old;
    answered.status = PaymentStatus::Completed;
    answered.updated_at = 30;
    commit(store, vec![StoreOp::PutPayment(answered.clone())]);
    assert_eq!(store.history(1).expect("history"), vec![answered]);
}

fn evidence_appends_in_order(store: &mut dyn Store) {
    let (a, b) = (key(1), key(2));
    let first = evidence(&a, "equivocation", 5);
    let second = evidence(&b, "conflicting offer", 3);
    commit(
        store,
        vec![
            StoreOp::PutEvidence(first.clone()),
            StoreOp::PutEvidence(second.clone()),
        ],
    );
    // The same record twice is kept twice.
    commit(store, vec![StoreOp::PutEvidence(first.clone())]);
    assert_eq!(
        store.evidence().expect("evidence"),
        vec![first.clone(), second, first]
    );
    // Evidence is not part of the snapshot.
    assert_eq!(load(store), Snapshot::default());
}

fn line_fees_round_trip(store: &mut dyn Store) {
    let a = key(1);
    let mut with_fees = line(&a, &usd(), 100, 1);
    with_fees.fees = FeePolicy {
        base: Amount::from_minor(25),
        ppm: 1_500,
    };
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, None)),
            StoreOp::PutLine(with_fees.clone()),
        ],
    );
    assert_eq!(load(store).lines, vec![with_fees.clone()]);
    // Replacing the line replaces its fees, back to none too.
    let mut changed = with_fees;
    changed.fees.ppm = 0;
    changed.fees.base = Amount::from_minor(1);
    commit(store, vec![StoreOp::PutLine(changed.clone())]);
    assert_eq!(load(store).lines, vec![changed.clone()]);
    changed.fees = FeePolicy::default();
    commit(store, vec![StoreOp::PutLine(changed.clone())]);
    assert_eq!(load(store).lines, vec![changed]);
}

fn conditional_routing_fields_round_trip(store: &mut dyn Store) {
    let a = key(1);
    let mut routed = conditional(&a, &usd(), Direction::Out, 4, None);
    routed.onward = Some(vec![1, 2, 3]);
    let plain = conditional(&a, &usd(), Direction::In, 4, None);
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, None)),
            StoreOp::PutLine(line(&a, &usd(), 100, 5)),
            StoreOp::PutConditional(routed.clone()),
            StoreOp::PutConditional(plain.clone()),
        ],
    );
    assert_eq!(
        load(store).conditionals,
        vec![routed.clone(), plain.clone()]
    );
    // The proof becomes known, then the holder claims.
    let mut proven = routed.clone();
    proven.proof = Some(vec![7; 100]);
    commit(store, vec![StoreOp::PutConditional(proven.clone())]);
    assert_eq!(
        load(store).conditionals,
        vec![proven.clone(), plain.clone()]
    );
    let mut claimed = proven;
    claimed.claimed = true;
    claimed.answer = Some(vec![3, 9].into());
    commit(store, vec![StoreOp::PutConditional(claimed.clone())]);
    assert_eq!(
        load(store).conditionals,
        vec![claimed.clone(), plain.clone()]
    );
    // And every field can be cleared again by a put.
    commit(store, vec![StoreOp::PutConditional(routed.clone())]);
    assert_eq!(load(store).conditionals, vec![routed, plain]);
}

fn forwards_put_replace_delete(store: &mut dyn Store) {
    let (a, b, c) = (key(1), key(2), key(3));
    let first = forward(&a, 1, &b, 10);
    // The same incoming id from another peer, or in another asset, is another link.
    let other_peer = forward(&c, 1, &b, 11);
    let mut other_asset = forward(&a, 1, &c, 12);
    other_asset.asset = btc();
    let second = forward(&a, 2, &c, 13);
    // Forwarding links need no stored peer, line or conditional.
    commit(
        store,
        vec![
            StoreOp::PutForward(first.clone()),
            StoreOp::PutForward(other_peer.clone()),
            StoreOp::PutForward(other_asset.clone()),
            StoreOp::PutForward(second.clone()),
        ],
    );
    assert_eq!(
        load(store).forwards,
        sorted(Snapshot {
            forwards: vec![
                first.clone(),
                other_peer.clone(),
                other_asset.clone(),
                second.clone()
            ],
            ..Snapshot::default()
        })
        .forwards
    );
    // A put with the same incoming IOU replaces the outgoing side.
    let replaced = forward(&a, 1, &c, 99);
    commit(
        store,
        vec![
            StoreOp::PutForward(replaced.clone()),
            delete_forward(&second),
            delete_forward(&other_asset),
        ],
    );
    assert_eq!(
        load(store).forwards,
        sorted(Snapshot {
            forwards: vec![replaced.clone(), other_peer.clone()],
            ..Snapshot::default()
        })
        .forwards
    );
    // Deleting what is not there is a no-op; put then delete in one batch leaves nothing.
    let transient = forward(&b, 7, &a, 8);
    commit(
        store,
        vec![
            delete_forward(&second),
            delete_forward(&forward(&key(9), 0, &a, 0)),
            StoreOp::PutForward(transient.clone()),
            delete_forward(&transient),
        ],
    );
    let s = load(store);
    assert_eq!(
        s.forwards,
        sorted(Snapshot {
            forwards: vec![replaced, other_peer],
            ..Snapshot::default()
        })
        .forwards
    );
    assert!(s.peers.is_empty() && s.lines.is_empty() && s.conditionals.is_empty());
    // Deleting them all.
    let all: Vec<StoreOp> = s.forwards.iter().map(delete_forward).collect();
    commit(store, all);
    assert_eq!(load(store), Snapshot::default());
}

fn hashlocks_load_only_unfinished(store: &mut dyn Store) {
    let open = hashlock(1, HashlockStatus::Open, 1, 1);
    let publishing = hashlock(2, HashlockStatus::Publishing, 2, 2);
    let paid = hashlock(3, HashlockStatus::Done, 3, 3);
    let failed = hashlock(4, HashlockStatus::Failed, 4, 4);
    commit(
        store,
        [&open, &publishing, &paid, &failed]
            .into_iter()
            .map(|h| StoreOp::PutHashlock(h.clone()))
            .collect(),
    );
    assert_eq!(
        load(store).hashlocks,
        vec![open.clone(), publishing.clone()]
    );
    // A put with the same hash replaces it: open → publishing → paid.
    let mut next = open.clone();
    next.status = HashlockStatus::Publishing;
    next.issued = vec![vec![1, 2], vec![3]];
    next.updated_at = 5;
    commit(store, vec![StoreOp::PutHashlock(next.clone())]);
    assert_eq!(
        load(store).hashlocks,
        vec![next.clone(), publishing.clone()]
    );
    assert_eq!(
        store.hashlock(&open.hash).expect("hashlock"),
        Some(next.clone())
    );
    let mut done = next;
    done.status = HashlockStatus::Done;
    done.proof = Some(vec![8; 64]);
    done.updated_at = 6;
    commit(store, vec![StoreOp::PutHashlock(done.clone())]);
    // Finished: no longer loaded, but kept as the proof of payment.
    assert_eq!(load(store).hashlocks, vec![publishing]);
    assert_eq!(
        store.hashlock(&done.hash).expect("hashlock"),
        Some(done.clone())
    );
    assert_eq!(
        store.hashlock(&paid.hash).expect("hashlock"),
        Some(paid.clone())
    );
    assert_eq!(
        store.hashlock(&failed.hash).expect("hashlock"),
        Some(failed)
    );
    assert_eq!(store.hashlock(&[9; 32]).expect("hashlock"), None);
    assert_eq!(store.hashlocks(usize::MAX).expect("hashlocks").len(), 4);
    // A finished hashlock put back to open is loaded again (the store does not judge).
    let mut reopened = paid;
    reopened.status = HashlockStatus::Open;
    commit(store, vec![StoreOp::PutHashlock(reopened.clone())]);
    assert!(load(store).hashlocks.contains(&reopened));
}

fn hashlocks_order_and_limit(store: &mut dyn Store) {
    let newest = hashlock(1, HashlockStatus::Open, 1, 100);
    // Same updated_at: the later created_at first.
    let tie_created_late = hashlock(2, HashlockStatus::Done, 50, 90);
    let tie_created_early = hashlock(3, HashlockStatus::Failed, 40, 90);
    // Same updated_at and created_at: by hash.
    let tie_low = hashlock(4, HashlockStatus::Publishing, 10, 80);
    let tie_high = hashlock(5, HashlockStatus::Open, 10, 80);
    let oldest = hashlock(0, HashlockStatus::Done, 0, 0);
    let expected = vec![
        newest,
        tie_created_late,
        tie_created_early,
        tie_low,
        tie_high,
        oldest,
    ];
    let mut ops: Vec<StoreOp> = expected.iter().cloned().map(StoreOp::PutHashlock).collect();
    ops.reverse();
    ops.swap(1, 4);
    let later = ops.split_off(3);
    commit(store, ops);
    commit(store, later);
    assert_eq!(store.hashlocks(usize::MAX).expect("hashlocks"), expected);
    assert_eq!(store.hashlocks(100).expect("hashlocks"), expected);
    assert_eq!(
        store.hashlocks(2).expect("hashlocks"),
        expected[..2].to_vec()
    );
    assert_eq!(store.hashlocks(0).expect("hashlocks"), Vec::new());
    // An update moves it to the front.
    let mut updated = expected[5].clone();
    updated.updated_at = 200;
    commit(store, vec![StoreOp::PutHashlock(updated.clone())]);
    assert_eq!(store.hashlocks(1).expect("hashlocks"), vec![updated]);
}

/// Every kind of evidence, and none, reads back through the snapshot and both queries.
fn settlements_round_trip(store: &mut dyn Store) {
    let requested = settlement(1, SettlementStatus::Requested, 10, 10);
    let credited = paid_settlement(2, "usd-atomicity-key", credit_evidence(2), 11, 12);
    let swapped = swap_settlement(3, 12, 15);
    let mut referenced = paid_settlement(
        4,
        "usd-manual-note",
        Evidence::Reference("wire 2024-05-01 #88".into()),
        13,
        13,
    );
    referenced.role = atomicity_core::SettlementRole::Payer;
    referenced.peer = key(1);
    let mut refused = settlement(5, SettlementStatus::Refused, 14, 20);
    refused.note = "no mutual method ✗".into();
    refused.delivered = true;
    let all = [&requested, &credited, &swapped, &referenced, &refused];
    commit(
        store,
        all.iter()
            .map(|s| StoreOp::PutSettlement(Box::new((*s).clone())))
            .collect(),
    );
    // Settlements reference nothing: no peer or line needs to be stored.
    let s = load(store);
    assert_eq!(
        s.settlements,
        vec![
            requested.clone(),
            credited.clone(),
            swapped.clone(),
            referenced.clone(),
            refused.clone()
        ]
    );
    assert!(s.peers.is_empty());
    for record in all {
        assert_eq!(
            store.settlement(&record.id).expect("settlement").as_ref(),
            Some(record)
        );
    }
    assert_eq!(store.settlement(&[9; 32]).expect("settlement"), None);
    let got = store.settlement(&credited.id).expect("settlement");
    let Some(Evidence::Credit { iou, acceptance }) = got.and_then(|r| r.evidence) else {
        panic!("credit evidence");
    };
    iou.verify().expect("the IOU's signature survives");
    acceptance
        .verify()
        .expect("the acceptance's signature survives");
    assert_eq!(
        store.settlements(10).expect("settlements"),
        vec![refused, referenced, swapped, credited, requested]
    );
}

fn settlements_put_replaces(store: &mut dyn Store) {
    let first = settlement(1, SettlementStatus::Requested, 10, 10);
    let mut paying = first.clone();
    paying.status = SettlementStatus::Paying;
    paying.method = Some(method("usd-atomicity-key"));
    paying.updated_at = 11;
    commit(
        store,
        vec![
            StoreOp::PutSettlement(Box::new(first.clone())),
            StoreOp::PutSettlement(Box::new(paying.clone())),
        ],
    );
    assert_eq!(load(store).settlements, vec![paying.clone()]);
    let done = SettlementRecord {
        status: SettlementStatus::Done,
        evidence: Some(Evidence::Preimage([7; 32])),
        note: "receipt issued".into(),
        delivered: true,
        updated_at: 12,
        ..paying
    };
    commit(store, vec![StoreOp::PutSettlement(Box::new(done.clone()))]);
    assert_eq!(load(store).settlements, vec![done.clone()]);
    assert_eq!(
        store.settlements(10).expect("settlements"),
        vec![done.clone()]
    );
    assert_eq!(store.settlement(&first.id).expect("settlement"), Some(done));
    // Back to no method and no evidence: the columns go back to NULL.
    commit(store, vec![StoreOp::PutSettlement(Box::new(first.clone()))]);
    assert_eq!(
        store.settlement(&first.id).expect("settlement"),
        Some(first)
    );
}

fn settlements_order_and_limit(store: &mut dyn Store) {
    let newest = settlement(1, SettlementStatus::Requested, 100, 100);
    // Same created_at: by id, whatever updated_at says.
    let tie_low = settlement(2, SettlementStatus::Done, 50, 50);
    let tie_high = settlement(3, SettlementStatus::Failed, 50, 90);
    let oldest = settlement(0, SettlementStatus::Refused, 0, 200);
    let expected = vec![newest, tie_low, tie_high, oldest];
    let mut ops: Vec<StoreOp> = expected
        .iter()
        .cloned()
        .map(|s| StoreOp::PutSettlement(Box::new(s)))
        .collect();
    ops.reverse();
    let later = ops.split_off(2);
    commit(store, ops);
    commit(store, later);
    assert_eq!(
        store.settlements(usize::MAX).expect("settlements"),
        expected
    );
    assert_eq!(store.settlements(100).expect("settlements"), expected);
    assert_eq!(
        store.settlements(2).expect("settlements"),
        expected[..2].to_vec()
    );
    assert_eq!(store.settlements(0).expect("settlements"), Vec::new());
    // Final or not, every settlement is loaded.
    assert_eq!(load(store).settlements.len(), 4);
}

fn swap_hashlocks_round_trip(store: &mut dyn Store) {
    // Its secret is zero until the wallet paid the invoice.
    let open = swap_hashlock(1, HashlockStatus::Open, 5);
    commit(store, vec![StoreOp::PutHashlock(open.clone())]);
    assert_eq!(load(store).hashlocks, vec![open.clone()]);
    assert_eq!(
        store.hashlock(&open.hash).expect("hashlock"),
        Some(open.clone())
    );
    let publishing = HashlockRecord {
        p: [0x42; 32],
        status: HashlockStatus::Publishing,
        updated_at: 6,
        ..open
    };
    commit(store, vec![StoreOp::PutHashlock(publishing.clone())]);
    assert_eq!(load(store).hashlocks, vec![publishing.clone()]);
    assert_eq!(store.hashlocks(10).expect("hashlocks"), vec![publishing]);
}

fn proofs_keep_the_first(store: &mut dyn Store) {
    let first = proof(1, 10);
    let other = proof(2, 11);
    commit(
        store,
        vec![
            StoreOp::PutProof(first.clone()),
            StoreOp::PutProof(other.clone()),
            // A later proof for the same hash, even in the same batch, is ignored.
            StoreOp::PutProof(proof(2, 12)),
        ],
    );
    commit(store, vec![StoreOp::PutProof(proof(1, 13))]);
    assert_eq!(store.proof(&first.hash).expect("proof"), Some(first));
    assert_eq!(store.proof(&other.hash).expect("proof"), Some(other));
    assert_eq!(store.proof(&[3; 32]).expect("proof"), None);
    // Proofs are not part of the snapshot, and need no hashlock.
    assert_eq!(load(store), Snapshot::default());
    // Extremes.
    let mut big = proof(0xff, i64::MAX as u64);
    big.proof = vec![0; 10_000];
    let mut empty = proof(0, 0);
    empty.proof = Vec::new();
    commit(
        store,
        vec![
            StoreOp::PutProof(big.clone()),
            StoreOp::PutProof(empty.clone()),
        ],
    );
    assert_eq!(store.proof(&big.hash).expect("proof"), Some(big));
    assert_eq!(store.proof(&empty.hash).expect("proof"), Some(empty));
}

fn empty_store_and_empty_commit(store: &mut dyn Store) {
    assert_eq!(load(store), Snapshot::default());
    commit(store, Vec::new());
    assert_eq!(load(store), Snapshot::default());
    assert_eq!(store.history(10).expect("history"), Vec::new());
    assert_eq!(store.evidence().expect("evidence"), Vec::new());
    assert_eq!(store.hashlocks(10).expect("hashlocks"), Vec::new());
    assert_eq!(store.hashlock(&[0; 32]).expect("hashlock"), None);
    assert_eq!(store.settlements(10).expect("settlements"), Vec::new());
    assert_eq!(store.settlement(&[0; 32]).expect("settlement"), None);
    assert_eq!(store.proof(&[0; 32]).expect("proof"), None);
}

/// Sets up one peer with a line, a conditional, a pending payment and evidence.
fn populated(store: &mut dyn Store) -> Snapshot {
    let a = key(1);
    commit(
        store,
        vec![
            StoreOp::PutPeer(peer(&a, None)),
            StoreOp::PutLine(line(&a, &usd(), 10, 1)),
            StoreOp::PutConditional(conditional(&a, &usd(), Direction::Out, 0, None)),
            StoreOp::PutPayment(payment(1, Direction::Out, &a, PaymentStatus::Pending, 1, 1)),
            StoreOp::PutEvidence(evidence(&a, "first", 1)),
            StoreOp::PutForward(forward(&a, 0, &key(2), 0)),
            StoreOp::PutHashlock(hashlock(1, HashlockStatus::Open, 1, 1)),
            StoreOp::PutSettlement(Box::new(settlement(1, SettlementStatus::Requested, 1, 1))),
            StoreOp::PutProof(proof(1, 1)),
        ],
    );
    load(store)
}

/// Ops that are fine on their own, to put in front of a failing one.
fn harmless_ops() -> Vec<StoreOp> {
    let (a, b) = (key(1), key(2));
    vec![
        StoreOp::PutPeer(peer(&a, Some("changed"))),
        StoreOp::PutPeer(peer(&b, None)),
        StoreOp::PutLine(line(&b, &btc(), 99, 9)),
        delete(&conditional(&a, &usd(), Direction::Out, 0, None)),
        StoreOp::PutConditional(conditional(&b, &btc(), Direction::In, 3, None)),
        StoreOp::PutPayment(payment(
            1,
            Direction::Out,
            &a,
            PaymentStatus::Completed,
            1,
            2,
        )),
        StoreOp::PutEvidence(evidence(&b, "second", 2)),
        delete_forward(&forward(&a, 0, &b, 0)),
        StoreOp::PutForward(forward(&b, 3, &a, 1)),
        StoreOp::PutHashlock(hashlock(1, HashlockStatus::Done, 1, 2)),
        StoreOp::PutHashlock(hashlock(2, HashlockStatus::Open, 2, 2)),
        StoreOp::PutSettlement(Box::new(settlement(1, SettlementStatus::Paying, 1, 2))),
        StoreOp::PutSettlement(Box::new(swap_settlement(2, 2, 2))),
        StoreOp::PutProof(proof(2, 2)),
    ]
}

fn assert_unchanged(store: &mut dyn Store, before: &Snapshot) {
    assert_eq!(&load(store), before);
    let history = store.history(10).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, PaymentStatus::Pending);
    assert_eq!(store.evidence().expect("evidence").len(), 1);
    assert_eq!(
        store.hashlocks(10).expect("hashlocks"),
        vec![hashlock(1, HashlockStatus::Open, 1, 1)]
    );
    assert_eq!(
        store.settlements(10).expect("settlements"),
        vec![settlement(1, SettlementStatus::Requested, 1, 1)]
    );
    assert_eq!(store.proof(&[1; 32]).expect("proof"), Some(proof(1, 1)));
    assert_eq!(store.proof(&[2; 32]).expect("proof"), None);
}

fn failed_commit_out_of_range_changes_nothing(store: &mut dyn Store) {
    let before = populated(store);
    let a = key(1);
    let mut ops = harmless_ops();
    ops.push(StoreOp::PutPayment(payment(
        7,
        Direction::Out,
        &a,
        PaymentStatus::Pending,
        1,
        u64::MAX,
    )));
    ops.extend(harmless_ops());
    let err = store.commit(&ops).expect_err("out of range");
    assert!(
        matches!(
            err,
            StoreError::OutOfRange {
                field: "payment.updated_at",
                value: u64::MAX
            }
        ),
        "{err:?}"
    );
    assert_unchanged(store, &before);

    let mut ops = harmless_ops();
    ops.push(StoreOp::PutEvidence(evidence(&a, "late", 1 << 63)));
    let err = store.commit(&ops).expect_err("out of range");
    assert!(
        matches!(
            err,
            StoreError::OutOfRange {
                field: "evidence.at",
                ..
            }
        ),
        "{err:?}"
    );
    assert_unchanged(store, &before);

    for (late, field) in [
        (
            hashlock(3, HashlockStatus::Open, u64::MAX, 0),
            "hashlock.created_at",
        ),
        (
            hashlock(3, HashlockStatus::Open, 0, 1 << 63),
            "hashlock.updated_at",
        ),
    ] {
        let mut ops = harmless_ops();
        ops.push(StoreOp::PutHashlock(late));
        ops.extend(harmless_ops());
        let err = store.commit(&ops).expect_err("out of range");
        assert!(
            matches!(err, StoreError::OutOfRange { field: f, .. } if f == field),
            "{err:?}"
        );
        assert_unchanged(store, &before);
    }

    for (late, field) in [
        (
            settlement(3, SettlementStatus::Requested, u64::MAX, 0),
            "settlement.created_at",
        ),
        (
            settlement(3, SettlementStatus::Requested, 0, 1 << 63),
            "settlement.updated_at",
        ),
    ] {
        let mut ops = harmless_ops();
        ops.push(StoreOp::PutSettlement(Box::new(late)));
        ops.extend(harmless_ops());
        let err = store.commit(&ops).expect_err("out of range");
        assert!(
            matches!(err, StoreError::OutOfRange { field: f, .. } if f == field),
            "{err:?}"
        );
        assert_unchanged(store, &before);
    }

    let mut ops = harmless_ops();
    ops.push(StoreOp::PutProof(proof(4, u64::MAX)));
    let err = store.commit(&ops).expect_err("out of range");
    assert!(
        matches!(
            err,
            StoreError::OutOfRange {
                field: "proof.at",
                value: u64::MAX
            }
        ),
        "{err:?}"
    );
    assert_unchanged(store, &before);

    // The store still works.
    commit(store, harmless_ops());
    assert_eq!(load(store).peers.len(), 2);
    assert_eq!(store.proof(&[2; 32]).expect("proof"), Some(proof(2, 2)));
}

/// A settlement that would not read back is refused rather than stored as a corrupt row.
fn failed_commit_unstorable_settlement_changes_nothing(store: &mut dyn Store) {
    let before = populated(store);
    // The request names another settlement.
    let mut misfiled = settlement(3, SettlementStatus::Requested, 1, 1);
    misfiled.id = [4; 32];
    // Evidence whose bytes do not decode: a reference over MAX_NOTE_LEN.
    let long = paid_settlement(
        3,
        "usd-manual-note",
        Evidence::Reference("x".repeat(atomicity_core::settlement::MAX_NOTE_LEN + 1)),
        1,
        1,
    );
    for (bad, field) in [
        (misfiled, "settlement.request"),
        (long, "settlement.evidence"),
    ] {
        let mut ops = harmless_ops();
        ops.push(StoreOp::PutSettlement(Box::new(bad)));
        ops.extend(harmless_ops());
        let err = store.commit(&ops).expect_err("unstorable");
        assert!(
            matches!(err, StoreError::Unstorable { field: f, .. } if f == field),
            "{err:?}"
        );
        assert_unchanged(store, &before);
    }
    // At the limit it is fine.
    let longest = paid_settlement(
        3,
        "usd-manual-note",
        Evidence::Reference("x".repeat(atomicity_core::settlement::MAX_NOTE_LEN)),
        1,
        1,
    );
    commit(
        store,
        vec![StoreOp::PutSettlement(Box::new(longest.clone()))],
    );
    assert_eq!(
        store.settlement(&longest.id).expect("settlement"),
        Some(longest)
    );
}

fn failed_commit_dangling_changes_nothing(store: &mut dyn Store) {
    let before = populated(store);
    let stranger = key(7);
    let dangling_batches = [
        // A line whose peer is not stored.
        vec![StoreOp::PutLine(line(&stranger, &usd(), 1, 0))],
        // A conditional whose line is not stored (peer known, asset not).
        vec![StoreOp::PutConditional(conditional(
            &key(1),
            &btc(),
            Direction::Out,
            0,
            None,
        ))],
        // A conditional of an unknown peer, put after a peer/asset-mismatched line.
        vec![
            StoreOp::PutPeer(peer(&stranger, None)),
            StoreOp::PutLine(line(&stranger, &btc(), 1, 0)),
            StoreOp::PutConditional(conditional(&stranger, &usd(), Direction::In, 0, None)),
        ],
    ];
    for dangling in dangling_batches {
        let mut ops = harmless_ops();
        ops.extend(dangling);
        let err = store.commit(&ops).expect_err("dangling");
        assert!(matches!(err, StoreError::Dangling(_)), "{err:?}");
        assert_unchanged(store, &before);
    }
    commit(store, harmless_ops());
    let s = load(store);
    assert_eq!(s.peers.len(), 2);
    assert_eq!(s.forwards, vec![forward(&key(2), 3, &key(1), 1)]);
    assert_eq!(s.hashlocks, vec![hashlock(2, HashlockStatus::Open, 2, 2)]);
}

fn references_are_checked_at_the_end_of_the_batch(store: &mut dyn Store) {
    let a = key(1);
    let c = conditional(&a, &usd(), Direction::Out, 0, None);
    let orphan = conditional(&a, &btc(), Direction::Out, 0, None);
    commit(
        store,
        vec![
            // Child before parent is fine within a batch.
            StoreOp::PutConditional(c.clone()),
            StoreOp::PutLine(line(&a, &usd(), 1, 1)),
            StoreOp::PutPeer(peer(&a, None)),
            // So is a conditional without a line that is gone by the end.
            StoreOp::PutConditional(orphan.clone()),
            delete(&orphan),
        ],
    );
    let s = load(store);
    assert_eq!(s.conditionals, vec![c]);
    assert_eq!(s.lines.len(), 1);
    // Payments and evidence need no stored peer.
    let stranger = key(8);
    commit(
        store,
        vec![
            StoreOp::PutPayment(payment(
                1,
                Direction::In,
                &stranger,
                PaymentStatus::Pending,
                1,
                1,
            )),
            StoreOp::PutEvidence(evidence(&stranger, "who?", 1)),
        ],
    );
    assert_eq!(load(store).pending_payments.len(), 1);
}

fn many_ops_in_one_commit(store: &mut dyn Store) {
    let peers: Vec<_> = (1..=4).map(key).collect();
    let mut ops = Vec::new();
    for p in &peers {
        ops.push(StoreOp::PutPeer(peer(p, None)));
        ops.push(StoreOp::PutLine(line(p, &usd(), 1_000, 0)));
    }
    for i in 0..2_000u64 {
        let p = &peers[(i % 4) as usize];
        ops.push(StoreOp::PutLine(line(p, &usd(), 1_000, i + 1)));
        ops.push(StoreOp::PutConditional(conditional(
            p,
            &usd(),
            Direction::Out,
            i,
            None,
        )));
        if i % 2 == 0 {
            ops.push(delete(&conditional(p, &usd(), Direction::Out, i, None)));
        }
    }
    commit(store, ops);
    let s = load(store);
    assert_eq!(s.peers.len(), 4);
    assert_eq!(s.lines.len(), 4);
    assert_eq!(s.conditionals.len(), 1_000);
    assert!(s.lines.iter().all(|l| l.next_id > 1_990));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let mut store =
                        SqliteStore::open(&dir.path().join("atomicity.db")).expect("open");
                    super::$name(&mut store);
                }
            )*
        }

        mod memory {
            use super::*;
            $(
                #[test]
                fn $name() {
                    super::$name(&mut MemoryStore::new());
                }
            )*
        }

        mod boxed {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let mut store: Box<dyn Store> = Box::new(MemoryStore::new());
                    super::$name(&mut store);
                }
            )*
        }
    };
}

conformance!(
    round_trip_every_op,
    extreme_values_round_trip,
    put_twice_replaces,
    same_key_in_one_batch_keeps_the_last,
    lines_are_keyed_by_peer_and_asset,
    delete_removes,
    load_returns_only_pending_payments,
    history_order_and_limit,
    history_follows_updates,
    evidence_appends_in_order,
    line_fees_round_trip,
    conditional_routing_fields_round_trip,
    forwards_put_replace_delete,
    hashlocks_load_only_unfinished,
    hashlocks_order_and_limit,
    settlements_round_trip,
    settlements_put_replaces,
    settlements_order_and_limit,
    swap_hashlocks_round_trip,
    proofs_keep_the_first,
    empty_store_and_empty_commit,
    failed_commit_out_of_range_changes_nothing,
    failed_commit_unstorable_settlement_changes_nothing,
    failed_commit_dangling_changes_nothing,
    references_are_checked_at_the_end_of_the_batch,
    many_ops_in_one_commit,
);
