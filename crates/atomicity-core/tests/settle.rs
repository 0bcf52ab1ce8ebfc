//! Settlements between real ledgers: a holder asks its issuer to pay out credit (to a third key
//! of its own, by a reference outside Atomicity, or a Lightning invoice against a conditional
//! IOU), the payer pays and answers, the holder checks the evidence and gives its receipt.
//!
//! Each node is a `Ledger` over the test store. Messages travel sealed in real envelopes (and
//! replies encoded as bytes) and are handled the way the node's actor handles them: a batch,
//! `merge_states`, a commit, then what the ledger wants to send. After every commit the node's
//! store must rebuild exactly the live ledger, and a step that fails must change nothing.

mod common;

use std::collections::VecDeque;

use atomicity_core::published::EndpointId;
use atomicity_core::{
    Amount, Evidence, HashlockRole, HashlockStatus, Hop, Ledger, LedgerError, Message, NewHashlock,
    Outcome, PayWith, PaymentStatus, PublicKey, Reply, RoutePart, SettlementKind, SettlementRecord,
    SettlementRequest, SettlementRole, SettlementStatus, SettlementUpdate, Signed, StoreOp,
    WitnessCondition, WitnessProof, WitnessTerms, decode_replies, encode_replies, payment_hash,
    payout_payment_id, receipt_payment_id,
};
use atomicity_witness::log::Log;
use atomicity_witness::note::Signer;
use common::{Store, key, print_of, usd};

const T0: u64 = 1_700_000_000;

fn pk(i: usize) -> PublicKey {
    key(i).public_key()
}

fn d(s: &str) -> Amount {
    usd().parse_amount(s).expect("amount")
}

fn method(id: &str) -> EndpointId {
    EndpointId::parse(id).expect("endpoint id")
}

/// A message delivered, the recipient's reply, and what the recipient committed for it.
struct Delivery {
    reply: Reply,
    ops: Vec<StoreOp>,
}

struct Net {
    nodes: Vec<Ledger>,
    stores: Vec<Store>,
    /// (from, to, message), in the order the senders queued them.
    queue: VecDeque<(usize, usize, Message)>,
    now: u64,
    log: Log,
    /// Direct payments made so far (their payment ids).
    payments: u8,
}

impl Net {
    /// `n` nodes, each a peer of every other; `lines` are (a, b, limit): each side accepts and
    /// issues up to `limit`.
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
            now: T0,
            log: Log::new("witness.test/log".into(), signer, 10, T0).expect("log"),
            payments: 0,
        };
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    net.act(a, |l, _, ops| l.add_peer(pk(b), None, ops))
                        .expect("peer");
                }
            }
        }
        for &(a, b, limit) in lines {
            net.limits(a, b, limit, limit);
            net.limits(b, a, limit, limit);
        }
        net
    }

    /// Sets `node`'s limits toward `peer`.
    fn limits(&mut self, node: usize, peer: usize, accept: &str, issue: &str) {
        self.act(node, |l, _, ops| {
            l.set_limits(&pk(peer), &usd(), Some(d(accept)), Some(d(issue)), ops)
        })
        .expect("limits");
    }

    fn index(&self, key: &PublicKey) -> usize {
        (0..self.nodes.len())
            .find(|i| pk(*i) == *key)
            .expect("a node's key")
    }

    /// Runs one input of `node` as a batch of its own and commits it.
    fn act<R>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Ledger, u64, &mut Vec<StoreOp>) -> R,
    ) -> R {
        let mut ops = Vec::new();
        let result = f(&mut self.nodes[node], self.now, &mut ops);
        self.finish(node, ops);
        result
    }

    /// Runs an input of `node` that must fail, and checks that it changed nothing: no store
    /// change, nothing to send, the same ledger.
    fn refused<R: std::fmt::Debug>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Ledger, u64, &mut Vec<StoreOp>) -> Result<R, LedgerError>,
    ) -> String {
        let before = Seen::of(&self.nodes[node]);
        let mut ops = Vec::new();
        let result = f(&mut self.nodes[node], self.now, &mut ops);
        let Err(e) = result else {
            panic!("node {node}: expected a refusal, got {result:?}");
        };
        assert!(ops.is_empty(), "node {node}: a refused step wrote {ops:?}");
        assert!(
            self.nodes[node].take_outgoing().is_empty(),
            "node {node}: a refused step queued messages"
        );
        assert_eq!(Seen::of(&self.nodes[node]), before, "node {node} changed");
        e.to_string()
    }

    /// Commits a node's batch: new states are signed, the ops applied to its store, and what it
    /// sends is queued. The store must then rebuild the live ledger.
    fn finish(&mut self, n: usize, mut ops: Vec<StoreOp>) {
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
        self.check_restore(n);
    }

    /// Queues `node`'s unanswered offers (the node's outbox sends them).
    fn send_offers(&mut self, node: usize) {
        for (peer, iou) in self.nodes[node].unanswered_offers() {
            let to = self.index(&peer);
            self.queue.push_back((node, to, Message::Offer(iou)));
        }
    }

    /// Seals `message` in an envelope from `from` to `to`, which opens it and handles it; the
    /// sender then takes the reply (answers of offers, and the replies to settlement messages).
    fn deliver(&mut self, from: usize, to: usize, message: Message) -> Delivery {
        let sealed = self.nodes[from].seal(&pk(to), self.now, vec![message.clone()]);
        let envelope = self.nodes[to]
            .open_envelope(&sealed, self.now)
            .expect("the envelope opens");
        let [received] = <[Message; 1]>::try_from(envelope.messages).expect("one message");
        assert_eq!(received, message, "the message survives its envelope");
        let before = Seen::of(&self.nodes[to]);
        let mut ops = Vec::new();
        let reply = self.nodes[to].handle_message(&pk(from), received, self.now, &mut ops);
        if let Reply::Rejected { .. } = reply {
            assert!(ops.is_empty(), "a rejection wrote {ops:?}");
            assert_eq!(
                Seen::of(&self.nodes[to]),
                before,
                "a rejection changed node {to}"
            );
        }
        let committed = ops.clone();
        self.finish(to, ops);
        let reply = decode_replies(&encode_replies(std::slice::from_ref(&reply)))
            .expect("replies decode")
            .remove(0);
        let mut ops = Vec::new();
        self.nodes[from].settlement_reply(&message, &reply, self.now, &mut ops);
        let _ = self.nodes[from].handle_reply(&pk(to), reply.clone(), self.now, &mut ops);
        self.finish(from, ops);
        Delivery {
            reply,
            ops: committed,
        }
    }

    /// Delivers the next queued message.
    fn step(&mut self) -> (usize, usize, Message, Reply) {
        let (from, to, message) = self.queue.pop_front().expect("a queued message");
        let reply = self.deliver(from, to, message.clone()).reply;
        (from, to, message, reply)
    }

    /// Delivers everything until quiet; every message must be taken.
    fn run(&mut self) {
        for _ in 0..1000 {
            if self.queue.is_empty() {
                return;
            }
            let (from, to, message, reply) = self.step();
            if let Reply::Rejected { code, text } = reply {
                panic!("node {to} rejected {message:?} from {from}: {code} {text}");
            }
        }
        panic!("the network never went quiet");
    }

    /// A direct payment, delivered and merged.
    fn pay(&mut self, from: usize, to: usize, amount: &str) {
        self.payments += 1;
        let payment_id = [0xa0 + self.payments; 32];
        let now = self.now;
        self.act(from, |l, _, ops| {
            l.pay(
                &pk(to),
                &usd(),
                d(amount),
                payment_id,
                "a payment".into(),
                now,
                now + 3600,
                ops,
            )
        })
        .expect("pay");
        self.send_offers(from);
        self.run();
    }

    /// Net position of `a` toward `b` (positive: b owes a), in minor units; both must agree.
    fn net(&self, a: usize, b: usize) -> i128 {
        let mine = self.nodes[a].net_with(&pk(b), &usd()).unwrap_or(0);
        let theirs = self.nodes[b].net_with(&pk(a), &usd()).unwrap_or(0);
        assert_eq!(mine, -theirs, "nodes {a} and {b} disagree");
        mine
    }

    fn record(&self, node: usize, id: &[u8; 32]) -> SettlementRecord {
        self.nodes[node]
            .settlement(id)
            .cloned()
            .expect("a settlement")
    }

    fn status(&self, node: usize, id: &[u8; 32]) -> SettlementStatus {
        self.record(node, id).status
    }

    /// A request body from `from` to `to`.
    fn body(&self, id: u8, from: usize, to: usize, amount: &str) -> SettlementRequest {
        SettlementRequest {
            id: [id; 32],
            from: pk(from),
            to: pk(to),
            kind: SettlementKind::Settle,
            asset: usd(),
            amount: d(amount),
            methods: vec![method("usd-atomicity-key"), method("usd-bank-iban")],
            invoice: String::new(),
            condition: None,
            created_at: self.now,
            expires_at: self.now + 3600,
            memo: "settle up".into(),
        }
    }

    /// `from` asks `to` for `amount`; the request is queued, not delivered.
    fn request(&mut self, id: u8, from: usize, to: usize, amount: &str) -> [u8; 32] {
        let body = self.body(id, from, to, amount);
        let record = self
            .act(from, |l, now, ops| l.request_settlement(body, now, ops))
            .expect("request");
        assert_eq!(record.status, SettlementStatus::Requested);
        assert_eq!(record.role, SettlementRole::Requester);
        assert!(!record.delivered);
        record.id
    }

    /// Every node's memory equals what its store rebuilds.
    fn check_restore(&self, n: usize) {
        let restored = Ledger::restore(key(n).clone(), self.stores[n].snapshot()).expect("restore");
        assert_eq!(Seen::of(&restored), Seen::of(&self.nodes[n]), "node {n}");
    }

    /// The log's proof that `p` was published now.
    fn publish(&mut self, p: [u8; 32]) -> WitnessProof {
        self.log.submit(p, self.now);
        let bundle = self.log.bundle(&p).expect("log").expect("submitted");
        WitnessProof {
            p,
            log: self.log.verifier().vkey(),
            bundle: bundle.to_bytes().expect("bundle"),
        }
    }

    fn condition(&self, p: &[u8; 32]) -> WitnessCondition {
        WitnessCondition {
            hash: payment_hash(p),
            witnesses: vec![WitnessTerms::new(self.log.verifier().vkey(), 0, 1_000)],
        }
    }
}

/// Everything a ledger shows about its lines, settlements and secrets, in a comparable form.
#[derive(Debug, PartialEq)]
struct Seen {
    print: common::LedgerPrint,
    settlements: Vec<SettlementRecord>,
    publications: Vec<([u8; 32], [u8; 32])>,
}

impl Seen {
    fn of(ledger: &Ledger) -> Seen {
        Seen {
            print: print_of(ledger),
            settlements: ledger.settlements().into_iter().cloned().collect(),
            publications: ledger
                .publications(0)
                .into_iter()
                .map(|p| (p.hash, p.p))
                .collect(),
        }
    }
}

const H: usize = 0;
const I: usize = 1;
const T: usize = 2;

/// H holds 50.00 USD of I's credit; T is H's endpoint key, with a line to I.
fn holder_issuer_key() -> Net {
    let mut net = Net::new(3, &[(H, I, "100"), (I, T, "100")]);
    net.pay(I, H, "50");
    assert_eq!(net.net(H, I), 5000);
    net
}

fn is_rejected(reply: &Reply, code: u16) -> bool {
    matches!(reply, Reply::Rejected { code: c, .. } if *c == code)
}

/// The message an update about `record` from its payer would be.
fn update(
    signer: usize,
    from: usize,
    to: usize,
    record: &SettlementRecord,
    outcome: Outcome,
) -> Message {
    Message::SettleUpdate(Box::new(Signed::sign(
        SettlementUpdate {
            id: record.id,
            request_hash: record.request.hash(),
            from: pk(from),
            to: pk(to),
            outcome,
        },
        key(signer),
    )))
}

#[test]
fn credit_reassignment_to_the_holders_key_then_the_receipt() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");

    // The request reaches I, which records it; H learns it arrived.
    let (_, _, _, reply) = net.step();
    assert_eq!(reply, Reply::Ok);
    let held = net.record(I, &id);
    assert_eq!(
        (held.role, held.status, held.peer.clone()),
        (SettlementRole::Payer, SettlementStatus::Requested, pk(H))
    );
    assert_eq!(held.request, net.record(H, &id).request);
    assert!(net.record(H, &id).delivered);

    // I pays H's key T 20.00 under the payout id: offered in the batch that marks it paying.
    net.act(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-atomicity-key"),
            PayWith::Credit(pk(T)),
            now,
            now + 3600,
            ops,
        )
    })
    .expect("pay");
    assert_eq!(net.status(I, &id), SettlementStatus::Paying);
    let offers = net.nodes[I].unanswered_offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].0, pk(T));
    assert_eq!(offers[0].1.body().payment_id, payout_payment_id(&id));
    assert_eq!(offers[0].1.body().amount, d("20"));

    // T accepts: I's settlement is paid, with the IOU and T's acceptance as evidence, and the
    // update goes to H.
    net.send_offers(I);
    let (_, to, _, reply) = net.step();
    assert_eq!(to, T);
    assert!(matches!(reply, Reply::Accepted(_)));
    let paid = net.record(I, &id);
    assert_eq!(paid.status, SettlementStatus::Paid);
    assert_eq!(paid.method, Some(method("usd-atomicity-key")));
    assert!(!paid.delivered);
    assert!(
        net.queue
            .iter()
            .any(|(f, t, m)| (*f, *t) == (I, H) && matches!(m, Message::SettleUpdate(_)))
    );
    net.run();
    assert!(net.record(I, &id).delivered);

    // H holds the update; the evidence shows I paid T exactly this settlement.
    let record = net.record(H, &id);
    assert_eq!(record.status, SettlementStatus::Paid);
    let evidence = record.evidence.clone().expect("evidence");
    evidence
        .check_credit(&pk(I), &pk(T), &usd(), d("20"), &id)
        .expect("the evidence checks");
    // ... and nothing else.
    for (payer, payee, amount, sid) in [
        (pk(T), pk(T), d("20"), id),
        (pk(I), pk(H), d("20"), id),
        (pk(I), pk(T), d("21"), id),
        (pk(I), pk(T), d("20"), [9; 32]),
    ] {
        assert!(
            evidence
                .check_credit(&payer, &payee, &usd(), amount, &sid)
                .is_err()
        );
    }
    assert_eq!(
        Evidence::from_bytes(&evidence.to_bytes()).expect("decodes"),
        evidence
    );

    // H's receipt: a counter-IOU of 20.00 to I under the receipt id. I accepts it; both done.
    let receipt = net
        .act(H, |l, now, ops| {
            l.receipt_settlement(&id, now, now + 3600, ops)
        })
        .expect("receipt");
    assert_eq!(receipt.body().payment_id, receipt_payment_id(&id));
    assert_eq!(receipt.body().line.issuer, pk(H));
    assert_eq!(receipt.body().line.holder, pk(I));
    assert_eq!(net.status(H, &id), SettlementStatus::Done);
    net.send_offers(H);
    net.run();
    assert_eq!(net.status(I, &id), SettlementStatus::Done);

    // I owes H 30 and T 20: in all still 50, as before.
    assert_eq!(net.net(H, I), 3000);
    assert_eq!(net.net(T, I), 2000);
    assert_eq!(net.net(H, T), 0);

    // A second receipt is refused: nothing is paid twice.
    let why = net.refused(H, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("done"), "{why}");
    // The history shows both payments under their derived ids.
    let completed = |n: usize, pid: [u8; 32]| {
        net.stores[n]
            .payments
            .values()
            .any(|p| p.payment_id == pid && p.status == PaymentStatus::Completed)
    };
    assert!(completed(I, payout_payment_id(&id)));
    assert!(completed(T, payout_payment_id(&id)));
    assert!(completed(H, receipt_payment_id(&id)));
    assert!(completed(I, receipt_payment_id(&id)));
}

#[test]
fn a_reference_is_paid_then_receipted() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    net.run();
    net.refused(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-bank-iban"),
            PayWith::Reference(String::new()),
            now,
            now,
            ops,
        )
    });
    net.act(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-bank-iban"),
            PayWith::Reference("SEPA 2024-11-24 #77".into()),
            now,
            now,
            ops,
        )
    })
    .expect("pay");
    assert_eq!(net.status(I, &id), SettlementStatus::Paid);
    net.run();
    let record = net.record(H, &id);
    assert_eq!(record.status, SettlementStatus::Paid);
    assert_eq!(record.method, Some(method("usd-bank-iban")));
    assert_eq!(
        record.evidence,
        Some(Evidence::Reference("SEPA 2024-11-24 #77".into()))
    );
    // Nothing moved yet; the receipt (once H's user confirms) lowers I's debt.
    assert_eq!(net.net(H, I), 5000);
    net.act(H, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    })
    .expect("receipt");
    net.send_offers(H);
    net.run();
    assert_eq!(net.status(H, &id), SettlementStatus::Done);
    assert_eq!(net.status(I, &id), SettlementStatus::Done);
    assert_eq!(net.net(H, I), 3000);
    assert_eq!(net.net(T, I), 0);
}

#[test]
fn a_refusal_reaches_the_holder_and_moves_nothing() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    net.run();
    // Only the payer refuses, and only its own settlement.
    net.refused(H, |l, now, ops| {
        l.refuse_settlement(&id, "no".into(), now, ops)
    });
    net.act(I, |l, now, ops| {
        l.refuse_settlement(&id, "not this month".into(), now, ops)
    })
    .expect("refuse");
    net.run();
    for n in [H, I] {
        let record = net.record(n, &id);
        assert_eq!(record.status, SettlementStatus::Refused, "node {n}");
        assert_eq!(record.note, "not this month", "node {n}");
        assert!(record.evidence.is_none());
    }
    assert!(net.record(I, &id).delivered);
    let why = net.refused(H, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("refused"), "{why}");
    net.refused(I, |l, now, ops| {
        l.refuse_settlement(&id, "again".into(), now, ops)
    });
    net.refused(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-bank-iban"),
            PayWith::Reference("late".into()),
            now,
            now,
            ops,
        )
    });
    assert_eq!(net.net(H, I), 5000);
}

#[test]
fn over_what_is_owed_is_refused_by_both_sides() {
    let mut net = holder_issuer_key();
    // The requester's own check: nothing is stored or sent.
    let body = net.body(1, H, I, "50.01");
    let why = net.refused(H, |l, now, ops| l.request_settlement(body, now, ops));
    assert!(why.contains("over what is owed"), "{why}");
    assert!(net.stores[H].settlements.is_empty());

    // The payer's: a request it gets for more than it owes is rejected and not stored.
    let body = net.body(2, H, I, "50.01");
    let request = Message::Settle(Box::new(Signed::sign(body, key(H))));
    let delivered = net.deliver(H, I, request);
    assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
    assert!(net.nodes[I].settlement(&[2; 32]).is_none());
    assert!(net.stores[I].settlements.is_empty());

    // A request that was fine when made, but not when it arrives (H paid I 40 meanwhile), is
    // rejected; H's settlement is then refused with the payer's reason.
    let id = net.request(3, H, I, "20");
    let queued = net.queue.pop_front().expect("the request");
    net.pay(H, I, "40");
    assert_eq!(net.net(H, I), 1000);
    net.queue.push_back(queued);
    let (_, _, _, reply) = net.step();
    assert!(is_rejected(&reply, 50), "{reply:?}");
    assert!(net.nodes[I].settlement(&id).is_none());
    let record = net.record(H, &id);
    assert_eq!(record.status, SettlementStatus::Refused);
    assert!(record.note.contains("over what is owed"), "{}", record.note);
    assert!(record.delivered);
}

#[test]
fn over_what_is_owed_is_checked_again_when_paying() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    net.run();
    // I owed 50 when asked for 20, only 10 when it pays.
    net.pay(H, I, "40");
    assert_eq!(net.net(H, I), 1000);
    for with in [PayWith::Credit(pk(T)), PayWith::Reference("cash".into())] {
        let why = net.refused(I, |l, now, ops| {
            l.pay_settlement(&id, method("usd-atomicity-key"), with, now, now + 3600, ops)
        });
        assert!(why.contains("over what is owed"), "{why}");
    }
    assert_eq!(net.status(I, &id), SettlementStatus::Requested);
    assert!(net.nodes[I].unanswered_offers().is_empty());
}

#[test]
fn forged_and_conflicting_requests_are_rejected_and_change_nothing() {
    let mut net = holder_issuer_key();
    let ok = net.body(1, H, I, "20");
    let tampered = {
        // The amount's last byte (after version, kind, id, two keys, kind and USD:2): 20.00 is
        // 2000 = 0x07d0, and 0x07d1 still decodes, but no longer verifies.
        let mut bytes = Signed::sign(ok.clone(), key(H)).to_bytes();
        assert_eq!(bytes[111], 0xd0);
        bytes[111] = 0xd1;
        Signed::<SettlementRequest>::decode(&bytes).expect("still decodes")
    };
    assert_eq!(tampered.body().amount, Amount::from_minor(2001));
    let with = |change: &dyn Fn(&mut SettlementRequest)| {
        let mut body = ok.clone();
        change(&mut body);
        body
    };
    // (what, signer, sender, request, expected code)
    let cases: Vec<(&str, usize, usize, SettlementRequest, u16)> = vec![
        ("signed by another key", T, H, ok.clone(), 1),
        (
            "from another key than its sender",
            T,
            H,
            with(&|b| b.from = pk(T)),
            50,
        ),
        ("relayed by another peer", H, T, ok.clone(), 50),
        (
            "addressed to another key",
            H,
            H,
            with(&|b| b.to = pk(T)),
            50,
        ),
        (
            "expired",
            H,
            H,
            with(&|b| {
                b.created_at = T0 - 100;
                b.expires_at = T0;
            }),
            50,
        ),
        (
            "over what is owed",
            H,
            H,
            with(&|b| b.amount = d("50.01")),
            50,
        ),
    ];
    for (what, signer, sender, body, code) in cases {
        let message = Message::Settle(Box::new(Signed::sign(body, key(signer))));
        let delivered = net.deliver(sender, I, message);
        assert!(
            is_rejected(&delivered.reply, code),
            "{what}: {:?}",
            delivered.reply
        );
        assert!(net.nodes[I].settlements().is_empty(), "{what}");
    }
    let delivered = net.deliver(H, I, Message::Settle(Box::new(tampered)));
    assert!(is_rejected(&delivered.reply, 1), "{:?}", delivered.reply);
    assert!(net.stores[I].settlements.is_empty());

    // The real request is taken; the same request again is taken and changes nothing.
    let id = net.request(1, H, I, "20");
    assert_eq!(id, ok.id);
    net.run();
    let held = net.record(I, &id);
    let again = Message::Settle(Box::new(held.request.clone()));
    let delivered = net.deliver(H, I, again);
    assert_eq!(delivered.reply, Reply::Ok);
    assert!(delivered.ops.is_empty(), "{:?}", delivered.ops);
    assert_eq!(net.record(I, &id), held);

    // Another request with the same id is rejected, even a smaller one, and the first stands.
    for other in [
        with(&|b| b.amount = d("10")),
        with(&|b| b.memo = "another".into()),
        with(&|b| b.expires_at += 1),
    ] {
        let message = Message::Settle(Box::new(Signed::sign(other, key(H))));
        let delivered = net.deliver(H, I, message);
        assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
        if let Reply::Rejected { text, .. } = &delivered.reply {
            assert!(text.contains("another request with this id"), "{text}");
        }
        assert_eq!(net.record(I, &id), held);
    }
    // The requester cannot reuse the id either.
    net.refused(H, |l, now, ops| {
        l.request_settlement(
            SettlementRequest {
                amount: d("10"),
                ..ok.clone()
            },
            now,
            ops,
        )
    });
    // Nor ask for a key that is not a peer, nor in someone else's name.
    let mut stranger = ok.clone();
    stranger.id = [7; 32];
    stranger.to = key(5).public_key();
    net.refused(H, |l, now, ops| l.request_settlement(stranger, now, ops));
    let mut forged = ok.clone();
    forged.id = [8; 32];
    forged.from = pk(T);
    net.refused(H, |l, now, ops| l.request_settlement(forged, now, ops));
}

#[test]
fn updates_for_unknown_requests_or_from_the_wrong_key_are_rejected() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    net.run();
    let record = net.record(H, &id);
    let refused = || Outcome::Refused("no".into());
    let mut unknown = record.clone();
    unknown.id = [9; 32];
    let mut other_request = record.clone();
    other_request.request = Signed::sign(net.body(1, H, I, "19"), key(H));
    // (what, message, sender, expected code)
    let cases: Vec<(&str, Message, usize, u16)> = vec![
        ("unknown id", update(I, I, H, &unknown, refused()), I, 50),
        (
            "from the wrong key",
            update(T, T, H, &record, refused()),
            T,
            50,
        ),
        (
            "signed by another key",
            update(T, I, H, &record, refused()),
            I,
            1,
        ),
        (
            "relayed by another peer",
            update(I, I, H, &record, refused()),
            T,
            50,
        ),
        (
            "for another request",
            update(I, I, H, &other_request, refused()),
            I,
            50,
        ),
        (
            "addressed to another key",
            update(I, I, T, &record, refused()),
            I,
            50,
        ),
    ];
    for (what, message, sender, code) in cases {
        let delivered = net.deliver(sender, H, message);
        assert!(
            is_rejected(&delivered.reply, code),
            "{what}: {:?}",
            delivered.reply
        );
        assert_eq!(net.record(H, &id), record, "{what}");
    }
    // An update sent to the payer about its own settlement is not an answer to anything.
    let delivered = net.deliver(H, I, update(H, H, I, &net.record(I, &id), refused()));
    assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
    assert_eq!(net.status(I, &id), SettlementStatus::Requested);

    // The real answer is taken; a late, different one changes nothing.
    let real = update(I, I, H, &record, Outcome::Refused("not now".into()));
    assert_eq!(net.deliver(I, H, real.clone()).reply, Reply::Ok);
    let late = update(
        I,
        I,
        H,
        &record,
        Outcome::Paid {
            method: method("usd-bank-iban"),
            evidence: Evidence::Reference("paid after all".into()),
        },
    );
    for message in [real, late] {
        let delivered = net.deliver(I, H, message);
        assert_eq!(delivered.reply, Reply::Ok);
        assert!(delivered.ops.is_empty(), "{:?}", delivered.ops);
    }
    let record = net.record(H, &id);
    assert_eq!(record.status, SettlementStatus::Refused);
    assert_eq!(record.note, "not now");
}

#[test]
fn a_credit_payment_the_key_releases_refuses_the_settlement() {
    let mut net = holder_issuer_key();
    // T takes at most 10.00 of I's credit.
    net.limits(T, I, "10", "100");
    let id = net.request(1, H, I, "20");
    net.run();
    net.act(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-atomicity-key"),
            PayWith::Credit(pk(T)),
            now,
            now + 3600,
            ops,
        )
    })
    .expect("pay");
    // While the payment is in flight, I may not refuse.
    let why = net.refused(I, |l, now, ops| {
        l.refuse_settlement(&id, "changed my mind".into(), now, ops)
    });
    assert!(why.contains("in flight"), "{why}");
    net.send_offers(I);
    let (_, to, _, reply) = net.step();
    assert_eq!(to, T);
    assert!(matches!(reply, Reply::Released(_)), "{reply:?}");
    net.run();
    for n in [H, I] {
        let record = net.record(n, &id);
        assert_eq!(record.status, SettlementStatus::Refused, "node {n}");
        assert_eq!(
            record.note,
            format!(
                "paying {} failed: over the holder's acceptance limit",
                pk(T).to_z32()
            ),
            "node {n}"
        );
    }
    assert_eq!(net.net(H, I), 5000);
    assert_eq!(net.net(T, I), 0);
    // I cannot pay the same key its own credit, nor H its own.
    let id = net.request(2, H, I, "20");
    net.run();
    for payee in [I, H] {
        let why = net.refused(I, |l, now, ops| {
            l.pay_settlement(
                &id,
                method("usd-atomicity-key"),
                PayWith::Credit(pk(payee)),
                now,
                now + 3600,
                ops,
            )
        });
        assert!(why.contains("third party"), "{why}");
    }
}

#[test]
fn only_a_paid_settlement_is_receipted_and_only_by_its_requester() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    // Requested, not delivered yet.
    let why = net.refused(H, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("requested"), "{why}");
    net.run();
    // The payer gives no receipt, and pays nothing it did not record as started.
    let why = net.refused(I, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("requester"), "{why}");
    net.refused(I, |l, now, ops| {
        l.settlement_paid(&id, Evidence::Reference("x".into()), now, ops)
    });
    // The requester does not pay its own request.
    net.refused(H, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-bank-iban"),
            PayWith::Reference("x".into()),
            now,
            now,
            ops,
        )
    });
    // Unknown ids.
    net.refused(H, |l, now, ops| {
        l.receipt_settlement(&[9; 32], now, now + 3600, ops)
    });
    net.refused(I, |l, now, ops| {
        l.refuse_settlement(&[9; 32], "x".into(), now, ops)
    });
    // Paying: still no receipt.
    net.act(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-atomicity-key"),
            PayWith::Credit(pk(T)),
            now,
            now + 3600,
            ops,
        )
    })
    .expect("pay");
    let why = net.refused(H, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("requested"), "{why}");
    // Paying twice is refused too.
    net.refused(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-atomicity-key"),
            PayWith::Credit(pk(T)),
            now,
            now + 3600,
            ops,
        )
    });
    assert_eq!(net.nodes[I].unanswered_offers().len(), 1);
}

#[test]
fn a_request_and_an_update_survive_a_restart_and_are_resent() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    // H crashes before sending: it rebuilds from its store and resends the request.
    net.queue.clear();
    net.nodes[H] = Ledger::restore(key(H).clone(), net.stores[H].snapshot()).expect("restore");
    let resent = net.nodes[H].resend_messages(net.now, 0);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].0, pk(I));
    assert_eq!(
        resent[0].1,
        Message::Settle(Box::new(net.record(H, &id).request))
    );
    net.queue.push_back((H, I, resent[0].1.clone()));
    net.run();
    // Delivered: not resent again.
    assert!(net.nodes[H].resend_messages(net.now + 100, 0).is_empty());

    // I pays by reference and crashes before the update leaves: it resends the same update.
    net.act(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("usd-bank-iban"),
            PayWith::Reference("cash".into()),
            now,
            now,
            ops,
        )
    })
    .expect("pay");
    let (_, _, first) = net.queue.pop_front().expect("the update");
    assert!(net.queue.is_empty());
    net.nodes[I] = Ledger::restore(key(I).clone(), net.stores[I].snapshot()).expect("restore");
    let resent = net.nodes[I].resend_messages(net.now, 0);
    assert_eq!(resent, vec![(pk(H), first.clone())]);
    // Both copies arrive: the second is taken and changes nothing.
    assert_eq!(net.deliver(I, H, first.clone()).reply, Reply::Ok);
    let delivered = net.deliver(I, H, first);
    assert_eq!(delivered.reply, Reply::Ok);
    assert!(delivered.ops.is_empty());
    assert_eq!(net.status(H, &id), SettlementStatus::Paid);
    assert!(net.nodes[I].resend_messages(net.now + 100, 0).is_empty());
}

#[test]
fn a_payer_pays_only_through_a_method_the_request_accepts() {
    let mut net = holder_issuer_key();
    let id = net.request(1, H, I, "20");
    net.run();
    let why = net.refused(I, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("btc-bitcoin-address"),
            PayWith::Reference("txid".into()),
            now,
            now,
            ops,
        )
    });
    assert!(why.contains("method"), "{why}");
    // And the requester does not take an update paid through a method it did not ask for.
    let record = net.record(H, &id);
    let delivered = net.deliver(
        I,
        H,
        update(
            I,
            I,
            H,
            &record,
            Outcome::Paid {
                method: method("btc-bitcoin-address"),
                evidence: Evidence::Reference("txid".into()),
            },
        ),
    );
    assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
    assert_eq!(net.record(H, &id), record);
}

const M: usize = 0;
const X: usize = 1;

/// M asks helper X to pay a Lightning invoice (hash `SHA-256(p)`) against M's conditional IOU
/// of 10.00 USD, issued in the same batch as the request. Nothing is delivered yet.
fn swap(net: &mut Net, p: &[u8; 32]) -> [u8; 32] {
    let condition = net.condition(p);
    let body = SettlementRequest {
        id: [0x77; 32],
        from: pk(M),
        to: pk(X),
        kind: SettlementKind::Swap,
        asset: usd(),
        amount: d("10"),
        methods: vec![method("btc-lightning-bolt11")],
        invoice: "lnbc1swap".into(),
        condition: Some(condition.clone()),
        created_at: net.now,
        expires_at: net.now + 600,
        memo: "swap".into(),
    };
    let id = body.id;
    net.act(M, |l, now, ops| {
        l.check_settlement_request(&body, now)?;
        l.pay_routed(
            &pk(X),
            &usd(),
            vec![RoutePart {
                hops: vec![Hop {
                    next: pk(X),
                    amount: d("10"),
                }],
            }],
            condition,
            body.expires_at,
            receipt_payment_id(&body.id),
            "swap".into(),
            None,
            now,
            ops,
        )?;
        l.request_settlement(body, now, ops)
    })
    .expect("swap request");
    // The request goes first: the IOU must find it.
    let kinds: Vec<&str> = net
        .queue
        .iter()
        .map(|(_, _, m)| match m {
            Message::Settle(_) => "settle",
            Message::Forward(..) => "forward",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["settle", "forward"]);
    id
}

#[test]
fn a_lightning_swap_is_paid_published_and_claimed() {
    let mut net = Net::new(2, &[(M, X, "100")]);
    let p = [0x42; 32];
    let hash = payment_hash(&p);
    let id = swap(&mut net, &p);

    // The request arrives first: X keeps a swap secret for the hash, not yet backed.
    let (_, _, _, reply) = net.step();
    assert_eq!(reply, Reply::Ok);
    let lock = net.nodes[X]
        .hashlock(&hash)
        .cloned()
        .expect("a swap secret");
    assert_eq!(
        (lock.role, lock.status, lock.amount),
        (HashlockRole::Swap, HashlockStatus::Open, d("10"))
    );
    assert!(!net.nodes[X].swap_ready(&hash));
    let why = net.refused(X, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("btc-lightning-bolt11"),
            PayWith::Lightning,
            now,
            now + 3600,
            ops,
        )
    });
    assert!(why.contains("has not arrived"), "{why}");

    // The conditional IOU arrives and is accepted: paying the invoice would be paid back.
    let (_, _, message, reply) = net.step();
    assert!(matches!(message, Message::Forward(..)));
    assert!(matches!(reply, Reply::Accepted(_)), "{reply:?}");
    assert!(net.nodes[X].swap_ready(&hash));
    assert_eq!(net.net(X, M), 0, "pending: not owed yet");

    // X starts paying (the wallet runs); nothing is published before the preimage is known.
    net.act(X, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("btc-lightning-bolt11"),
            PayWith::Lightning,
            now,
            now + 3600,
            ops,
        )
    })
    .expect("pay");
    assert_eq!(net.status(X, &id), SettlementStatus::Paying);
    assert!(net.nodes[X].publications(net.now).is_empty());

    // A wrong preimage is refused and changes nothing.
    let why = net.refused(X, |l, now, ops| {
        l.settlement_paid(&id, Evidence::Preimage([0x43; 32]), now, ops)
    });
    assert!(why.contains("does not hash"), "{why}");
    // ... and so is an update that carries one.
    let forged = update(
        X,
        X,
        M,
        &net.record(M, &id),
        Outcome::Paid {
            method: method("btc-lightning-bolt11"),
            evidence: Evidence::Preimage([0x43; 32]),
        },
    );
    let delivered = net.deliver(X, M, forged);
    assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
    assert_eq!(net.status(M, &id), SettlementStatus::Requested);

    // The right preimage: paid, and the secret is to be published.
    net.act(X, |l, now, ops| {
        l.settlement_paid(&id, Evidence::Preimage(p), now, ops)
    })
    .expect("paid");
    assert_eq!(net.status(X, &id), SettlementStatus::Paid);
    let publications = net.nodes[X].publications(net.now);
    assert_eq!(publications.len(), 1);
    assert_eq!((publications[0].hash, publications[0].p), (hash, p));
    assert_eq!(publications[0].condition, net.condition(&p));
    net.run();
    let record = net.record(M, &id);
    assert_eq!(record.status, SettlementStatus::Paid);
    assert_eq!(record.evidence, Some(Evidence::Preimage(p)));
    // No counter-IOU for a Lightning settlement: its conditional IOU is the receipt.
    let why = net.refused(M, |l, now, ops| {
        l.receipt_settlement(&id, now, now + 3600, ops)
    });
    assert!(why.contains("conditional IOU"), "{why}");

    // X publishes p on the witness log and claims the IOU with the proof: both done, and M
    // owes X the 10.00 it paid for M.
    let proof = net.publish(p);
    net.act(X, |l, now, ops| l.published(&hash, proof, now, ops))
        .expect("published");
    assert!(net.nodes[X].publications(net.now).is_empty());
    net.run();
    assert_eq!(net.status(X, &id), SettlementStatus::Done);
    let record = net.record(M, &id);
    assert_eq!(record.status, SettlementStatus::Done);
    assert_eq!(record.evidence, Some(Evidence::Preimage(p)));
    assert_eq!(net.net(X, M), 1000);
    let completed = net.stores[M]
        .payments
        .values()
        .any(|r| r.payment_id == receipt_payment_id(&id) && r.status == PaymentStatus::Completed);
    assert!(completed);
}

#[test]
fn a_refused_swap_releases_its_iou_and_the_requester_learns_why() {
    let mut net = Net::new(2, &[(M, X, "100")]);
    let p = [0x42; 32];
    let hash = payment_hash(&p);
    let id = swap(&mut net, &p);
    net.run();
    assert!(net.nodes[X].swap_ready(&hash));
    net.act(X, |l, now, ops| {
        l.pay_settlement(
            &id,
            method("btc-lightning-bolt11"),
            PayWith::Lightning,
            now,
            now + 3600,
            ops,
        )
    })
    .expect("pay");
    // The wallet failed: X refuses, which releases the IOU.
    net.act(X, |l, now, ops| {
        l.refuse_settlement(
            &id,
            "the Lightning payment failed: no route".into(),
            now,
            ops,
        )
    })
    .expect("refuse");
    assert!(net.nodes[X].hashlock(&hash).is_none());
    assert!(net.nodes[X].publications(net.now).is_empty());
    net.run();
    for n in [M, X] {
        let record = net.record(n, &id);
        assert_eq!(record.status, SettlementStatus::Refused, "node {n}");
        assert_eq!(
            record.note, "the Lightning payment failed: no route",
            "node {n}"
        );
    }
    assert_eq!(net.net(X, M), 0);
    let failed = net.stores[M].payments.values().any(|r| {
        r.payment_id == receipt_payment_id(&id) && matches!(r.status, PaymentStatus::Failed(_))
    });
    assert!(failed);
    assert_eq!(net.nodes[M].balances()[0].pending_out, Amount::ZERO);
}

#[test]
fn a_swap_on_a_hash_in_use_is_rejected_and_its_iou_released() {
    let mut net = Net::new(2, &[(M, X, "100")]);
    let p = [0x42; 32];
    // X already has an invoice with this hash (another deadline).
    let condition = net.condition(&p);
    net.act(X, |l, now, ops| {
        l.add_hashlock(
            NewHashlock {
                p,
                role: HashlockRole::Payee,
                payee: pk(X),
                asset: usd(),
                amount: d("10"),
                condition,
                expires_at: now + 300,
                memo: "invoice".into(),
            },
            now,
            ops,
        )
    })
    .expect("invoice");
    let id = swap(&mut net, &p);
    let (_, _, _, reply) = net.step();
    assert!(is_rejected(&reply, 50), "{reply:?}");
    assert!(net.nodes[X].settlement(&id).is_none());
    let (_, _, _, reply) = net.step();
    assert!(matches!(reply, Reply::Released(_)), "{reply:?}");
    net.run();
    let record = net.record(M, &id);
    assert_eq!(record.status, SettlementStatus::Refused);
    assert!(
        record.note.contains("a payment with this hash exists"),
        "{}",
        record.note
    );
    assert_eq!(
        net.nodes[X].hashlock(&payment_hash(&p)).map(|h| h.role),
        Some(HashlockRole::Payee)
    );
    assert_eq!(net.net(X, M), 0);
}

#[test]
fn a_peer_may_have_only_so_many_requests_open() {
    let mut net = holder_issuer_key();
    let max = atomicity_core::settle::MAX_OPEN_PER_PEER;
    for i in 0..max {
        let body = net.body(u8::try_from(i + 1).expect("few"), H, I, "0.01");
        let request = Message::Settle(Box::new(Signed::sign(body, key(H))));
        let delivered = net.deliver(H, I, request);
        assert!(
            matches!(delivered.reply, Reply::Ok),
            "{:?}",
            delivered.reply
        );
    }
    let body = net.body(200, H, I, "0.01");
    let request = Message::Settle(Box::new(Signed::sign(body, key(H))));
    let delivered = net.deliver(H, I, request);
    assert!(is_rejected(&delivered.reply, 50), "{:?}", delivered.reply);
    assert!(net.nodes[I].settlement(&[200; 32]).is_none());
}
