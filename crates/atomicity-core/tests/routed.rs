//! Routed payments through real ledgers and a real (sans-I/O) witness log: the hop rule,
//! fees, proofs flowing back, releases, expiry, multi-path and the payer-published flow.
//!
//! Each node is a `Ledger` over the test store; messages travel encoded as bytes and are
//! handled the way the node's actor handles them: a batch, `merge_states`, a commit, then the
//! replies, the new states and the ledger's outgoing messages are sent.

mod common;

use std::collections::VecDeque;

use atomicity_core::{
    Amount, FeePolicy, HashlockRole, Hop, Ledger, Message, NewHashlock, PaymentStatus, PublicKey,
    Reply, RoutePart, WitnessCondition, WitnessProof, WitnessTerms, payment_hash,
};
use atomicity_witness::log::Log;
use atomicity_witness::note::Signer;
use common::{Store, key, usd};

const T0: u64 = 1_700_000_000;

struct Net {
    nodes: Vec<Ledger>,
    stores: Vec<Store>,
    /// (from, to, message)
    queue: VecDeque<(usize, usize, Message)>,
    /// Nodes that are down: what is sent to them is held, not lost (a peer's retries).
    offline: Vec<bool>,
    held: Vec<(usize, usize, Message)>,
    /// When set, answers to offers are held here (replier, asker, reply) instead of being
    /// delivered: a slow connection, which later messages overtake.
    late_replies: Option<Vec<(usize, usize, Reply)>>,
    now: u64,
    log: Log,
}

fn pk(i: usize) -> PublicKey {
    key(i).public_key()
}

fn d(s: &str) -> Amount {
    usd().parse_amount(s).expect("amount")
}

impl Net {
    /// `n` nodes; `lines` are (a, b, limit): each side accepts and issues up to `limit`.
    fn new(n: usize, lines: &[(usize, usize, &str)]) -> Net {
        let signer = Signer::new(
            "witness.test/log",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .expect("signer");
        let mut net = Net {
            nodes: (0..n).map(|i| Ledger::new(key(i).clone())).collect(),
            stores: (0..n).map(|_| Store::default()).collect(),
            queue: VecDeque::new(),
            offline: vec![false; n],
            held: Vec::new(),
            late_replies: None,
            now: T0,
            log: Log::new("witness.test/log".into(), signer, 10, T0).expect("log"),
        };
        for &(a, b, limit) in lines {
            for (x, y) in [(a, b), (b, a)] {
                let mut ops = Vec::new();
                let peer = key(y).public_key();
                net.nodes[x]
                    .add_peer(peer.clone(), None, &mut ops)
                    .expect("peer");
                net.nodes[x]
                    .set_limits(&peer, &usd(), Some(d(limit)), Some(d(limit)), &mut ops)
                    .expect("limits");
                net.stores[x].apply(&ops).expect("commit");
            }
        }
        net
    }

    fn index(&self, pk: &PublicKey) -> usize {
        (0..self.nodes.len())
            .find(|i| key(*i).public_key() == *pk)
            .expect("known key")
    }

    fn set_fee(&mut self, node: usize, toward: usize, base: &str, ppm: u32) {
        let mut ops = Vec::new();
        let peer = pk(toward);
        self.nodes[node]
            .set_fees(&peer, &usd(), FeePolicy { base: d(base), ppm }, &mut ops)
            .expect("fees");
        self.stores[node].apply(&ops).expect("commit");
    }

    fn condition(&self, p: &[u8; 32]) -> WitnessCondition {
        WitnessCondition {
            hash: payment_hash(p),
            witnesses: vec![WitnessTerms::new(self.log.verifier().vkey(), 0, 1_000)],
        }
    }

    /// Commits a node's batch and queues what it sends.
    fn finish(&mut self, n: usize, mut ops: Vec<atomicity_core::StoreOp>) {
        let states = self.nodes[n].merge_states(self.now, &mut ops);
        self.stores[n].apply(&ops).expect("commit");
        for (peer, state) in states {
            let to = self.index(&peer);
            self.queue.push_back((n, to, Message::State(state)));
        }
        for (peer, message) in self.nodes[n].take_outgoing() {
            let to = self.index(&peer);
            self.queue.push_back((n, to, message));
        }
    }

    /// Delivers everything until quiet, publishing secrets on the log when a payee asks.
    fn run(&mut self) {
        for _ in 0..10_000 {
            self.publish_all();
            let Some((from, to, message)) = self.queue.pop_front() else {
                return;
            };
            if self.offline[to] {
                self.held.push((from, to, message));
                continue;
            }
            let wire = Message::decode_object(&message);
            let mut ops = Vec::new();
            let sender = pk(from);
            let reply = self.nodes[to].handle_message(&sender, wire, self.now, &mut ops);
            if let Reply::Rejected { code, text } = &reply {
                panic!("node {to} rejected {message:?} from {from}: {code} {text}");
            }
            self.finish(to, ops);
            if matches!(reply, Reply::Accepted(_) | Reply::Released(_)) {
                if let Some(late) = &mut self.late_replies {
                    late.push((to, from, reply));
                    continue;
                }
                self.deliver_reply(to, from, reply);
            }
        }
        panic!("the network never went quiet");
    }

    /// Node `to` reads the reply `from` gave to its message.
    fn deliver_reply(&mut self, from: usize, to: usize, reply: Reply) {
        let mut ops = Vec::new();
        self.nodes[to]
            .handle_reply(&pk(from), reply, self.now, &mut ops)
            .expect("reply");
        self.finish(to, ops);
    }

    /// Delivers the answers held by [`Net::late_replies`], then runs until quiet.
    fn deliver_late_replies(&mut self) {
        for (from, to, reply) in self.late_replies.take().unwrap_or_default() {
            self.deliver_reply(from, to, reply);
        }
        self.run();
    }

    fn publish_all(&mut self) {
        for n in 0..self.nodes.len() {
            if self.offline[n] {
                continue;
            }
            for publication in self.nodes[n].publications(self.now) {
                self.log.submit(publication.p, self.now);
                let bundle = self
                    .log
                    .bundle(&publication.p)
                    .expect("log")
                    .expect("submitted");
                let proof = WitnessProof {
                    p: publication.p,
                    log: self.log.verifier().vkey(),
                    bundle: bundle.to_bytes().expect("bundle"),
                };
                let mut ops = Vec::new();
                self.nodes[n]
                    .published(&publication.hash, proof, self.now, &mut ops)
                    .expect("published");
                self.finish(n, ops);
            }
        }
    }

    fn tick(&mut self, secs: u64) {
        self.now += secs;
        for n in 0..self.nodes.len() {
            if self.offline[n] {
                continue;
            }
            let mut ops = Vec::new();
            self.nodes[n].tick(self.now, &mut ops);
            self.finish(n, ops);
        }
        self.run();
    }

    fn set_online(&mut self, n: usize) {
        self.offline[n] = false;
        let mut ops = Vec::new();
        self.nodes[n].tick(self.now, &mut ops);
        self.finish(n, ops);
        let held = std::mem::take(&mut self.held);
        for m in held {
            self.queue.push_back(m);
        }
        // The node's own resends after a restart.
        let messages = self.nodes[n].resend_messages(self.now, 0);
        for (peer, message) in messages {
            let to = self.index(&peer);
            self.queue.push_back((n, to, message));
        }
        self.run();
    }

    /// Net position of `a` toward `b` (positive: b owes a), in minor units.
    fn net(&self, a: usize, b: usize) -> i128 {
        self.nodes[a]
            .channel(&pk(b), &usd())
            .and_then(|c| c.view())
            .map_or(0, |v| v.net)
    }

    fn pending(&self, a: usize) -> (u64, u64) {
        self.nodes[a].balances().iter().fold((0, 0), |(i, o), v| {
            (i + v.pending_in.minor(), o + v.pending_out.minor())
        })
    }

    fn invoice(&mut self, payee: usize, amount: &str, p: [u8; 32]) -> WitnessCondition {
        let condition = self.condition(&p);
        let mut ops = Vec::new();
        let me = pk(payee);
        self.nodes[payee]
            .add_hashlock(
                NewHashlock {
                    p,
                    role: HashlockRole::Payee,
                    payee: me,
                    asset: usd(),
                    amount: d(amount),
                    condition: condition.clone(),
                    expires_at: T0 + 600,
                    memo: "invoice".into(),
                },
                self.now,
                &mut ops,
            )
            .expect("invoice");
        self.stores[payee].apply(&ops).expect("commit");
        condition
    }

    fn pay(
        &mut self,
        payer: usize,
        payee: usize,
        parts: &[&[(usize, &str)]],
        condition: WitnessCondition,
        payer_secret: Option<[u8; 32]>,
    ) -> [u8; 32] {
        let payment_id = [payer as u8 + 100; 32];
        let parts = parts
            .iter()
            .map(|hops| RoutePart {
                hops: hops
                    .iter()
                    .map(|(n, a)| Hop {
                        next: pk(*n),
                        amount: d(a),
                    })
                    .collect(),
            })
            .collect();
        let mut ops = Vec::new();
        let payee_key = pk(payee);
        self.nodes[payer]
            .pay_routed(
                &payee_key,
                &usd(),
                parts,
                condition,
                T0 + 600,
                payment_id,
                "dinner".into(),
                payer_secret,
                self.now,
                &mut ops,
            )
            .expect("pay");
        self.finish(payer, ops);
        self.run();
        payment_id
    }

    fn status(&self, node: usize, payment_id: [u8; 32]) -> PaymentStatus {
        self.stores[node]
            .payments
            .values()
            .find(|p| p.payment_id == payment_id)
            .map(|p| p.status.clone())
            .expect("payment recorded")
    }

    /// Every node's memory equals what its store rebuilds.
    fn check_restore(&self) {
        for (n, store) in self.stores.iter().enumerate() {
            let restored = Ledger::restore(key(n).clone(), store.snapshot()).expect("restore");
            assert_eq!(restored.balances(), self.nodes[n].balances(), "node {n}");
        }
    }
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;

/// A → B → C → D → E: four hops with fees at B, C and D.
fn chain() -> Net {
    let mut net = Net::new(
        5,
        &[(A, B, "100"), (B, C, "100"), (C, D, "100"), (D, E, "100")],
    );
    net.set_fee(B, C, "0.10", 10_000); // 0.10 + 1%
    net.set_fee(C, D, "0.05", 0);
    net.set_fee(D, E, "0", 5_000); // 0.5%
    net
}

#[test]
fn a_claim_that_overtakes_the_acceptance_counts_when_the_acceptance_arrives() {
    // Every answer travels on a slow connection: C's claim reaches B, and B's claim reaches
    // A, before the acceptances they follow.
    let mut net = Net::new(3, &[(A, B, "100"), (B, C, "100")]);
    net.set_fee(B, C, "0.10", 0);
    net.late_replies = Some(Vec::new());
    let p = [43; 32];
    let condition = net.invoice(C, "10", p);
    let id = net.pay(A, C, &[&[(B, "10.10"), (C, "10")]], condition, None);
    // Each issuer knows the proof already (it cannot let its IOU expire, and B has claimed
    // A's IOU with it), but owes nothing until the holder's acceptance arrives.
    assert_eq!(net.status(A, id), PaymentStatus::Pending);
    assert_eq!(net.pending(A), (0, 1010));
    assert_eq!(net.pending(B), (0, 1000));
    net.deliver_late_replies();
    assert_eq!(net.status(A, id), PaymentStatus::Completed);
    assert_eq!(net.net(A, B), -1010);
    assert_eq!(net.net(B, A), 1010);
    assert_eq!(net.net(B, C), -1000);
    assert_eq!(net.net(C, B), 1000);
    for n in [A, B, C] {
        assert_eq!(net.pending(n), (0, 0), "node {n} has nothing pending");
    }
    net.check_restore();
}

#[test]
fn a_four_hop_payment_with_fees_settles_at_every_hop() {
    let mut net = chain();
    let p = [42; 32];
    let condition = net.invoice(E, "10", p);
    // E gets 10.00; D charges 0.05 (0.5% of 10); C 0.05; B 0.10 + 1% of 10.10 = 0.20 (rounded
    // down from 0.201).
    let id = net.pay(
        A,
        E,
        &[&[(B, "10.30"), (C, "10.10"), (D, "10.05"), (E, "10")]],
        condition,
        None,
    );
    assert_eq!(net.status(A, id), PaymentStatus::Completed);
    assert_eq!(net.net(A, B), -1030);
    assert_eq!(net.net(B, A), 1030);
    assert_eq!(net.net(B, C), -1010);
    assert_eq!(net.net(C, B), 1010);
    assert_eq!(net.net(C, D), -1005);
    assert_eq!(net.net(D, C), 1005);
    assert_eq!(net.net(D, E), -1000);
    assert_eq!(net.net(E, D), 1000);
    for n in [A, B, C, D, E] {
        assert_eq!(net.pending(n), (0, 0), "node {n} has nothing pending");
        if n != A {
            assert!(
                net.stores[n].proofs.contains_key(&payment_hash(&p)),
                "node {n} keeps the proof"
            );
        }
        assert!(net.stores[n].conditionals.is_empty(), "node {n}: N + C");
        assert!(
            net.stores[n].forwards.is_empty(),
            "node {n}: links forgotten"
        );
    }
    net.check_restore();
}

#[test]
fn a_hop_over_its_limit_fails_the_payment_and_releases_everything() {
    let mut net = Net::new(
        5,
        &[(A, B, "100"), (B, C, "100"), (C, D, "5"), (D, E, "100")],
    );
    let condition = net.invoice(E, "10", [1; 32]);
    let id = net.pay(
        A,
        E,
        &[&[(B, "10"), (C, "10"), (D, "10"), (E, "10")]],
        condition,
        None,
    );
    assert!(matches!(net.status(A, id), PaymentStatus::Failed(_)));
    for n in [A, B, C, D, E] {
        assert_eq!(net.pending(n), (0, 0), "node {n}");
        for m in [A, B, C, D, E] {
            assert_eq!(net.net(n, m), 0, "{n} toward {m}");
        }
    }
    net.check_restore();
}

#[test]
fn a_fee_too_low_is_refused() {
    let mut net = chain();
    let condition = net.invoice(E, "10", [2; 32]);
    let id = net.pay(
        A,
        E,
        &[&[(B, "10"), (C, "10"), (D, "10"), (E, "10")]],
        condition,
        None,
    );
    match net.status(A, id) {
        PaymentStatus::Failed(why) => assert!(why.contains("fee"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(net.net(A, B), 0);
}

#[test]
fn a_payee_that_never_publishes_lets_everything_expire() {
    let mut net = chain();
    let p = [3; 32];
    let condition = net.invoice(E, "10", p);
    // E goes offline right after the parts arrive: it never publishes.
    let id = {
        let payment_id = [9; 32];
        let mut ops = Vec::new();
        let payee = pk(E);
        let hops = [(B, "10.30"), (C, "10.10"), (D, "10.05"), (E, "10")]
            .iter()
            .map(|(n, a)| Hop {
                next: pk(*n),
                amount: d(a),
            })
            .collect();
        net.nodes[A]
            .pay_routed(
                &payee,
                &usd(),
                vec![RoutePart { hops }],
                condition,
                T0 + 600,
                payment_id,
                String::new(),
                None,
                net.now,
                &mut ops,
            )
            .expect("pay");
        net.finish(A, ops);
        // Deliver up to E's acceptance, then E disappears before it publishes.
        net.offline[E] = false;
        while let Some((from, to, message)) = net.queue.pop_front() {
            let mut ops = Vec::new();
            let sender = pk(from);
            let reply = net.nodes[to].handle_message(&sender, message, net.now, &mut ops);
            let mut ops2 = ops;
            let states = net.nodes[to].merge_states(net.now, &mut ops2);
            net.stores[to].apply(&ops2).expect("commit");
            assert!(states.is_empty());
            for (peer, m) in net.nodes[to].take_outgoing() {
                let t = net.index(&peer);
                net.queue.push_back((to, t, m));
            }
            if matches!(reply, Reply::Accepted(_) | Reply::Released(_)) {
                let mut ops = Vec::new();
                let receiver = pk(to);
                net.nodes[from]
                    .handle_reply(&receiver, reply, net.now, &mut ops)
                    .expect("reply");
                net.finish(from, ops);
            }
        }
        net.offline[E] = true;
        payment_id
    };
    assert_eq!(net.pending(B), (1030, 1010));
    assert_eq!(net.status(A, id), PaymentStatus::Pending);
    // Before the deadline nothing moves; after it plus the grace, every hop lets it expire.
    net.tick(300);
    assert_eq!(net.pending(B), (1030, 1010));
    net.tick(300 + 31);
    assert!(matches!(net.status(A, id), PaymentStatus::Failed(_)));
    for n in [A, B, C, D] {
        assert_eq!(net.pending(n), (0, 0), "node {n}");
        for m in [A, B, C, D, E] {
            assert_eq!(net.net(n, m), 0, "{n} toward {m}");
        }
    }
    // E comes back: it takes D's state that drops the expired IOU (its clock is past the
    // deadline too) and owes nothing.
    net.set_online(E);
    assert_eq!(net.pending(E), (0, 0));
    assert_eq!(net.net(E, D), 0);
    net.check_restore();
}

#[test]
fn multi_path_over_three_routes_is_all_or_nothing() {
    // A pays E over A-B-E, A-C-E and A-D-E.
    let lines = [
        (A, B, "100"),
        (A, C, "100"),
        (A, D, "100"),
        (B, E, "100"),
        (C, E, "100"),
        (D, E, "100"),
    ];
    let mut net = Net::new(5, &lines);
    let condition = net.invoice(E, "30", [4; 32]);
    let id = net.pay(
        A,
        E,
        &[
            &[(B, "10"), (E, "10")],
            &[(C, "10"), (E, "10")],
            &[(D, "10"), (E, "10")],
        ],
        condition,
        None,
    );
    assert_eq!(net.status(A, id), PaymentStatus::Completed);
    assert_eq!(net.net(E, B) + net.net(E, C) + net.net(E, D), 3000);
    assert_eq!(net.net(A, B) + net.net(A, C) + net.net(A, D), -3000);

    // The same with the D-E line too small: E never publishes, releases at the deadline.
    let mut net = Net::new(
        5,
        &[
            (A, B, "100"),
            (A, C, "100"),
            (A, D, "100"),
            (B, E, "100"),
            (C, E, "100"),
            (D, E, "5"),
        ],
    );
    let condition = net.invoice(E, "30", [5; 32]);
    let id = net.pay(
        A,
        E,
        &[
            &[(B, "10"), (E, "10")],
            &[(C, "10"), (E, "10")],
            &[(D, "10"), (E, "10")],
        ],
        condition,
        None,
    );
    assert!(matches!(net.status(A, id), PaymentStatus::Failed(_)));
    assert_eq!(net.pending(E), (2000, 0), "two parts wait for the rest");
    net.tick(600);
    for n in [A, B, C, D, E] {
        assert_eq!(net.pending(n), (0, 0), "node {n}");
        for m in [A, B, C, D, E] {
            assert_eq!(net.net(n, m), 0, "{n} toward {m}");
        }
    }
    net.check_restore();
}

#[test]
fn an_offline_payee_is_paid_by_the_payer_publishing() {
    let mut net = chain();
    net.offline[E] = true;
    let p = [6; 32];
    let condition = net.condition(&p);
    let id = net.pay(
        A,
        E,
        &[&[(B, "10.30"), (C, "10.10"), (D, "10.05"), (E, "10")]],
        condition,
        Some(p),
    );
    // D issued to E and said so; A published; the hops up to D are settled.
    assert_eq!(net.status(A, id), PaymentStatus::Completed);
    assert_eq!(net.net(A, B), -1030);
    assert_eq!(net.net(C, D), -1005);
    assert_eq!(net.pending(D), (0, 1000), "D's IOU to E waits for E");
    // E comes online: D's outbox delivers the IOU and the proof; E accepts and claims.
    net.set_online(E);
    assert_eq!(net.net(E, D), 1000);
    assert_eq!(net.net(D, E), -1000);
    for n in [A, B, C, D, E] {
        assert_eq!(net.pending(n), (0, 0), "node {n}");
    }
    net.check_restore();
}

#[test]
fn a_state_that_drops_a_claimed_iou_is_rejected_as_evidence() {
    let mut net = Net::new(2, &[(A, B, "100")]);
    let p = [8; 32];
    let condition = net.invoice(B, "10", p);
    // B accepts but the claim never reaches A (A drops it): A later lets it expire.
    let payee = pk(B);
    let hops = vec![Hop {
        next: payee.clone(),
        amount: d("10"),
    }];
    let mut ops = Vec::new();
    net.nodes[A]
        .pay_routed(
            &payee,
            &usd(),
            vec![RoutePart { hops }],
            condition,
            T0 + 600,
            [1; 32],
            String::new(),
            None,
            net.now,
            &mut ops,
        )
        .expect("pay");
    net.finish(A, ops);
    let (from, to, forward) = net.queue.pop_front().expect("forward");
    let mut ops = Vec::new();
    let reply = net.nodes[to].handle_message(&pk(from), forward, net.now, &mut ops);
    net.finish(to, ops);
    net.deliver_reply(B, A, reply);
    net.publish_all();
    // B's claim is lost.
    net.queue.clear();
    assert_eq!(net.pending(B), (0, 0), "B claimed");
    // A's clock runs past the deadline: A's state drops the IOU without counting it.
    net.now += 700;
    let mut ops = Vec::new();
    net.nodes[A].tick(net.now, &mut ops);
    let states = net.nodes[A].merge_states(net.now, &mut ops);
    net.stores[A].apply(&ops).expect("commit");
    let (_, state) = states.into_iter().next().expect("a state");
    let mut ops = Vec::new();
    let reply = net.nodes[B].handle_message(&pk(A), Message::State(state), net.now, &mut ops);
    match reply {
        Reply::Rejected { code, .. } => assert_eq!(code, 24, "UncountedFulfilled"),
        other => panic!("{other:?}"),
    }
    net.stores[B].apply(&ops).expect("commit");
    assert_eq!(
        net.stores[B].evidence.len(),
        1,
        "the state is kept as evidence"
    );
}

impl Net {
    #[allow(dead_code)]
    fn node_index_for_tests(&self, pk: &PublicKey) -> usize {
        self.index(pk)
    }
}

trait DecodeObject {
    fn decode_object(m: &Message) -> Message;
}

impl DecodeObject for Message {
    /// The message as the peer would decode it from an envelope.
    fn decode_object(m: &Message) -> Message {
        let envelope = atomicity_core::Envelope {
            from: key(0).public_key(),
            to: key(1).public_key(),
            sent_at: T0,
            messages: vec![m.clone()],
        };
        let bytes = atomicity_core::Signed::sign(envelope, key(0)).to_bytes();
        let back =
            atomicity_core::Signed::<atomicity_core::Envelope>::decode(&bytes).expect("decodes");
        back.body().messages[0].clone()
    }
}
