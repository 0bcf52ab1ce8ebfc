//! Property tests of the ledger invariants: several [`Ledger`]s in a simulated closed network
//! make random direct payments while the network reorders, drops and duplicates messages, and
//! nodes restart from what they persisted.
//!
//! Checked after every step: totals never decrease and seqs strictly increase on every line;
//! what each node holds is exactly what its store ops rebuild; debt never passes the effective
//! limit `min(issuer.issue, holder.accept)` and debt plus unanswered offers never passes the
//! issuer's limit; the holder always knows at least as much debt as the issuer has counted.
//! Once every message is delivered: both ends of every line agree, the sum of all net positions
//! is zero per asset, and the totals equal the completed payments.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;

use atomicity_core::{
    Amount, Answer, Asset, Channel, Direction, Keypair, Ledger, LedgerError, Limits, Message,
    OfferError, PaymentOutcome, PaymentStatus, PublicKey, ReleaseReason, Reply, ResolvedSet,
    StoreOp, Total, decode_replies, encode_replies,
};
use proptest::prelude::*;

const MAX_NODES: usize = 5;
const MAX_ASSETS: usize = 2;
const START: u64 = 1_700_000_000;

use common::{Store, cases, print_of};

// ---------------------------------------------------------------------------------------------
// The scenario.

#[derive(Clone, Debug)]
struct Setup {
    nodes: usize,
    assets: usize,
    /// `(accept, issue)` of node i toward node j in asset a, at `(i * MAX_NODES + j) * MAX_ASSETS + a`.
    limits: Vec<(u64, u64)>,
    /// Whether node i has no line toward j in asset a (same index as `limits`).
    missing: Vec<bool>,
    /// Send every message in a sealed envelope, opened by the recipient.
    envelopes: bool,
}

#[derive(Clone, Debug)]
enum Action {
    /// `from` pays the `to`-th other node.
    Pay {
        from: usize,
        to: usize,
        asset: usize,
        amount: u64,
        ttl: u64,
    },
    /// Deliver the packet at this index (modulo the queue length).
    Deliver(usize),
    /// Lose it.
    Drop(usize),
    /// Deliver it twice (a copy goes to the back of the queue).
    Duplicate(usize),
    /// The node signs new states for its answered offers.
    Merge(usize),
    /// The node resends its unanswered offers and newest states.
    Resend(usize),
    /// The clock moves.
    Tick(u64),
    /// The node restarts from its store.
    Restart(usize),
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        3..=MAX_NODES,
        1..=MAX_ASSETS,
        prop::collection::vec(
            prop_oneof![
                1 => Just((0u64, 0u64)),
                6 => (0u64..=200, 0u64..=200),
            ],
            MAX_NODES * MAX_NODES * MAX_ASSETS,
        ),
        prop::collection::vec(
            prop::bool::weighted(0.1),
            MAX_NODES * MAX_NODES * MAX_ASSETS,
        ),
        any::<bool>(),
    )
        .prop_map(|(nodes, assets, limits, missing, envelopes)| Setup {
            nodes,
            assets,
            limits,
            missing,
            envelopes,
        })
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 1u64..=25, 1 => 1u64..=120]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..MAX_NODES, 0..MAX_NODES, 0..MAX_ASSETS, amount(), 0u64..=40).prop_map(
            |(from, to, asset, amount, ttl)| Action::Pay { from, to, asset, amount, ttl }
        ),
        8 => any::<usize>().prop_map(Action::Deliver),
        1 => any::<usize>().prop_map(Action::Drop),
        2 => any::<usize>().prop_map(Action::Duplicate),
        2 => (0..MAX_NODES).prop_map(Action::Merge),
        1 => (0..MAX_NODES).prop_map(Action::Resend),
        1 => (1u64..=15).prop_map(Action::Tick),
        1 => (0..MAX_NODES).prop_map(Action::Restart),
    ]
}

#[derive(Clone, Debug)]
enum Packet {
    Msg {
        from: usize,
        to: usize,
        msg: Message,
    },
    Reply {
        from: usize,
        to: usize,
        reply: Reply,
    },
}

/// What the model expects a message to get.
#[derive(Debug)]
enum Expect {
    /// An offer seen for the first time, within the limit and in time.
    Accept,
    /// An offer seen for the first time that must be refused.
    Release(ReleaseReason),
    /// The recipient has no line in the asset.
    NoLine,
    /// Anything that follows the rules (repeats, states, late messages).
    Anything,
}

/// The newest state somebody was seen holding on a line.
struct Seen {
    seq: u64,
    total: Total,
    resolved: ResolvedSet,
    bytes: Vec<u8>,
}

struct Sim {
    setup: Setup,
    keys: Vec<Keypair>,
    pubs: Vec<PublicKey>,
    index: HashMap<[u8; 32], usize>,
    assets: Vec<Asset>,
    ledgers: Vec<Ledger>,
    stores: Vec<Store>,
    queue: Vec<Packet>,
    now: u64,
    seen: HashMap<(usize, usize, usize, Direction), Seen>,
    restarts: bool,
    payments: u64,
    trace: Vec<String>,
}

type Outcome = Result<(), TestCaseError>;

fn fail<T>(why: impl Into<String>) -> Result<T, TestCaseError> {
    Err(TestCaseError::fail(why.into()))
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { fail(why()) }
}

fn in_owed(c: &Channel) -> u128 {
    let accepted: u128 = c
        .in_conditionals()
        .values()
        .filter(|i| i.answer.is_accepted())
        .map(|i| u128::from(i.iou.body().amount.minor()))
        .sum();
    c.in_state().map_or(0, |s| s.body().total.minor()) + accepted
}

fn out_owed(c: &Channel) -> u128 {
    let accepted: u128 = c
        .out_conditionals()
        .values()
        .filter(|o| matches!(o.answer, Some(Answer::Accepted(_))))
        .map(|o| u128::from(o.iou.body().amount.minor()))
        .sum();
    c.out_state().map_or(0, |s| s.body().total.minor()) + accepted
}

impl Sim {
    fn new(setup: Setup, restarts: bool) -> Result<Sim, TestCaseError> {
        let keys: Vec<Keypair> = (0..setup.nodes)
            .map(|i| Keypair::from_secret_key(&[i as u8 + 1; 32]))
            .collect();
        let pubs: Vec<PublicKey> = keys.iter().map(Keypair::public_key).collect();
        let index = pubs
            .iter()
            .enumerate()
            .map(|(i, k)| (*k.as_bytes(), i))
            .collect();
        let assets: Vec<Asset> = [("USD", 2), ("HOUR", 0)]
            .iter()
            .take(setup.assets)
            .map(|(code, scale)| Asset::new(code, *scale).expect("asset"))
            .collect();
        let mut sim = Sim {
            ledgers: keys.iter().map(|k| Ledger::new(k.clone())).collect(),
            stores: vec![Store::default(); setup.nodes],
            keys,
            pubs,
            index,
            assets,
            setup,
            queue: Vec::new(),
            now: START,
            seen: HashMap::new(),
            restarts,
            payments: 0,
            trace: Vec::new(),
        };
        for i in 0..sim.setup.nodes {
            let mut ops = Vec::new();
            for j in 0..sim.setup.nodes {
                if i == j {
                    continue;
                }
                let peer = sim.pubs[j].clone();
                sim.ledgers[i]
                    .add_peer(peer.clone(), Some(format!("http://node{j}")), &mut ops)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for a in 0..sim.setup.assets {
                    if sim.missing(i, j, a) {
                        continue;
                    }
                    let l = sim.limits(i, j, a);
                    let asset = sim.assets[a].clone();
                    let set = sim.ledgers[i]
                        .set_limits(&peer, &asset, Some(l.accept), Some(l.issue), &mut ops)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(set, l);
                }
            }
            sim.commit(i, ops)?;
        }
        Ok(sim)
    }

    fn limits(&self, i: usize, j: usize, a: usize) -> Limits {
        let (accept, issue) = self.setup.limits[(i * MAX_NODES + j) * MAX_ASSETS + a];
        Limits {
            accept: Amount::from_minor(accept),
            issue: Amount::from_minor(issue),
        }
    }

    fn missing(&self, i: usize, j: usize, a: usize) -> bool {
        self.setup.missing[(i * MAX_NODES + j) * MAX_ASSETS + a]
    }

    fn node(&self, key: &PublicKey) -> usize {
        self.index[key.as_bytes()]
    }

    fn asset_index(&self, asset: &Asset) -> usize {
        self.assets
            .iter()
            .position(|a| a == asset)
            .expect("known asset")
    }

    /// Node i's line toward j in asset a, unless the setup left it out.
    fn channel(&self, i: usize, j: usize, a: usize) -> Option<&Channel> {
        let channel = self.ledgers[i].channel(&self.pubs[j], &self.assets[a]);
        // A missing line may since have been opened (with zero limits) by an offer in it.
        assert!(
            channel.is_some() || self.missing(i, j, a),
            "line {i}→{j} {a}"
        );
        channel
    }

    /// Persists a step's ops (persist before speak: before anything is queued).
    fn commit(&mut self, node: usize, ops: Vec<StoreOp>) -> Outcome {
        if ops.iter().any(|op| matches!(op, StoreOp::PutEvidence(_))) {
            return fail(format!(
                "node {node} kept evidence against an honest peer: {ops:?}"
            ));
        }
        self.stores[node].apply(&ops).map_err(TestCaseError::fail)?;
        if !ops.is_empty() {
            self.trace.push(format!("{node} persists {ops:?}"));
        }
        Ok(())
    }

    fn send(&mut self, packet: Packet) {
        self.trace.push(format!("queue {packet:?}"));
        self.queue.push(packet);
    }

    fn step(&mut self, action: &Action) -> Outcome {
        let n = self.setup.nodes;
        match *action {
            Action::Pay {
                from,
                to,
                asset,
                amount,
                ttl,
            } => {
                let from = from % n;
                let to = (from + 1 + to % (n - 1)) % n;
                let a = asset % self.setup.assets;
                self.pay(from, to, a, amount, ttl)?;
            }
            Action::Deliver(i) => {
                if !self.queue.is_empty() {
                    let packet = self.queue.remove(i % self.queue.len());
                    self.deliver(packet)?;
                }
            }
            Action::Drop(i) => {
                if !self.queue.is_empty() {
                    let packet = self.queue.remove(i % self.queue.len());
                    self.trace.push(format!("drop {packet:?}"));
                }
            }
            Action::Duplicate(i) => {
                if !self.queue.is_empty() {
                    let packet = self.queue[i % self.queue.len()].clone();
                    self.send(packet);
                }
            }
            Action::Merge(node) => {
                self.merge(node % n)?;
            }
            Action::Resend(node) => {
                self.resend(node % n);
            }
            Action::Tick(secs) => self.now += secs,
            Action::Restart(node) => {
                if self.restarts {
                    self.restart(node % n)?;
                }
            }
        }
        self.check_invariants()
    }

    fn pay(&mut self, from: usize, to: usize, a: usize, amount: u64, ttl: u64) -> Outcome {
        let Some(channel) = self.channel(from, to, a) else {
            let mut ops = Vec::new();
            let result = self.ledgers[from].pay(
                &self.pubs[to],
                &self.assets[a],
                Amount::from_minor(amount),
                [0xff; 32],
                String::new(),
                self.now,
                self.now + ttl,
                &mut ops,
            );
            let no_line = matches!(result, Err(LedgerError::NoLine { .. }));
            prop_assert!(no_line, "paid without a line: {:?}", result);
            prop_assert!(ops.is_empty());
            return Ok(());
        };
        let view = channel.view().expect("view");
        // The channel's own limits: one opened by a peer's offer has zero limits.
        let available =
            i128::from(view.limits.issue.minor()) + view.net - i128::from(view.pending_out.minor());
        self.payments += 1;
        let mut payment_id = [0u8; 32];
        payment_id[..8].copy_from_slice(&self.payments.to_be_bytes());
        let mut ops = Vec::new();
        let (peer, asset) = (self.pubs[to].clone(), self.assets[a].clone());
        let result = self.ledgers[from].pay(
            &peer,
            &asset,
            Amount::from_minor(amount),
            payment_id,
            format!("payment {}", self.payments),
            self.now,
            self.now + ttl,
            &mut ops,
        );
        match result {
            Ok(iou) => {
                check(i128::from(amount) <= available, || {
                    format!("{from} paid {amount} to {to} with only {available} available")
                })?;
                prop_assert_eq!(iou.body().amount, Amount::from_minor(amount));
                prop_assert_eq!(iou.verify(), Ok(()));
                self.commit(from, ops)?;
                self.send(Packet::Msg {
                    from,
                    to,
                    msg: Message::Offer(iou),
                });
            }
            Err(
                LedgerError::OverIssueLimit { .. }
                | LedgerError::Offer(OfferError::OverIssueLimit { .. }),
            ) => {
                check(i128::from(amount) > available, || {
                    format!("{from} could not pay {amount} to {to} with {available} available")
                })?;
                prop_assert!(ops.is_empty(), "a refused payment persisted {:?}", ops);
                self.trace.push(format!("{from} cannot pay {amount}"));
            }
            Err(e) => return fail(format!("pay failed: {e}")),
        }
        Ok(())
    }

    fn deliver(&mut self, packet: Packet) -> Outcome {
        self.trace.push(format!("deliver {packet:?}"));
        match packet {
            Packet::Msg { from, to, msg } => {
                let msg = if self.setup.envelopes {
                    let sealed = self.ledgers[from].seal(&self.pubs[to], self.now, vec![msg]);
                    let mut envelope = self.ledgers[to]
                        .open_envelope(&sealed, self.now)
                        .map_err(|e| TestCaseError::fail(format!("envelope refused: {e}")))?;
                    prop_assert_eq!(envelope.messages.len(), 1);
                    envelope.messages.remove(0)
                } else {
                    msg
                };
                let expected = self.expected_answer(from, to, &msg);
                let mut ops = Vec::new();
                let reply =
                    self.ledgers[to].handle_message(&self.pubs[from], msg, self.now, &mut ops);
                match (&reply, expected) {
                    // No line: the only rejection an honest message may get besides the
                    // harmless "late" ones.
                    (Reply::Rejected { code: 11, .. }, Expect::NoLine) => {}
                    (Reply::Rejected { code, text }, _) if *code != 20 && *code != 32 => {
                        return fail(format!("honest message rejected: {code} {text}"));
                    }
                    (Reply::Accepted(_), Expect::Accept) => {}
                    (Reply::Released(r), Expect::Release(reason)) if r.body().reason == reason => {}
                    (_, Expect::Anything) => {}
                    (got, want) => {
                        return fail(format!("answer {got:?}, the model expected {want:?}"));
                    }
                }
                self.commit(to, ops)?;
                // Replies travel as bytes.
                let bytes = encode_replies(std::slice::from_ref(&reply));
                let mut replies = decode_replies(&bytes)
                    .map_err(|e| TestCaseError::fail(format!("reply does not decode: {e}")))?;
                prop_assert_eq!(&replies, &vec![reply]);
                self.send(Packet::Reply {
                    from: to,
                    to: from,
                    reply: replies.remove(0),
                });
            }
            Packet::Reply { from, to, reply } => {
                let kind = match &reply {
                    Reply::Accepted(_) => Some(true),
                    Reply::Released(_) => Some(false),
                    _ => None,
                };
                let mut ops = Vec::new();
                let outcome = self.ledgers[to]
                    .handle_reply(&self.pubs[from], reply, self.now, &mut ops)
                    .map_err(|e| TestCaseError::fail(format!("honest reply rejected: {e}")))?;
                let ok = matches!(
                    (kind, &outcome),
                    (None, None)
                        | (Some(true), Some(PaymentOutcome::Completed))
                        | (Some(false), Some(PaymentOutcome::Refused(_)))
                );
                check(ok, || format!("reply outcome {outcome:?} for {kind:?}"))?;
                self.commit(to, ops)?;
            }
        }
        Ok(())
    }

    /// What the model says the recipient must answer.
    fn expected_answer(&self, from: usize, to: usize, msg: &Message) -> Expect {
        let (line, offer) = match msg {
            Message::Offer(iou) => (&iou.body().line, Some(iou.body())),
            Message::State(s) => (&s.body().line, None),
            _ => return Expect::Anything,
        };
        let a = self.asset_index(&line.asset);
        let Some(holder) = self.channel(to, from, a) else {
            // An offer opens the line with zero limits to keep its release; a state does not.
            return match offer {
                Some(body) if body.expires_at <= self.now => {
                    Expect::Release(ReleaseReason::Expired)
                }
                Some(_) => Expect::Release(ReleaseReason::UnknownAsset),
                None => Expect::NoLine,
            };
        };
        let Some(body) = offer else {
            return Expect::Anything;
        };
        let seen = holder.in_conditionals().contains_key(&body.id)
            || holder
                .in_state()
                .is_some_and(|s| s.body().resolved.contains(body.id));
        if seen {
            return Expect::Anything;
        }
        let net = holder.view().expect("view").net;
        let accept = holder.limits.accept;
        if body.expires_at <= self.now {
            Expect::Release(ReleaseReason::Expired)
        } else if net + i128::from(body.amount.minor()) > i128::from(accept.minor()) {
            Expect::Release(if accept.is_zero() {
                ReleaseReason::UnknownAsset
            } else {
                ReleaseReason::OverLimit
            })
        } else {
            Expect::Accept
        }
    }

    fn merge(&mut self, node: usize) -> Result<usize, TestCaseError> {
        let mut ops = Vec::new();
        let states = self.ledgers[node].merge_states(self.now, &mut ops);
        self.commit(node, ops)?;
        let count = states.len();
        for (peer, state) in states {
            prop_assert_eq!(state.verify(), Ok(()));
            let to = self.node(&peer);
            self.send(Packet::Msg {
                from: node,
                to,
                msg: Message::State(state),
            });
        }
        Ok(count)
    }

    /// Resends unanswered offers and the newest states; returns how many offers.
    fn resend(&mut self, node: usize) -> usize {
        let key = |peer: &PublicKey, asset: &Asset, n: u64| (*peer.as_bytes(), asset.clone(), n);
        let mut offers = self.ledgers[node].unanswered_offers();
        offers.sort_by_key(|(p, o)| key(p, &o.body().line.asset, o.body().id));
        let mut states = self.ledgers[node].latest_out_states();
        states.sort_by_key(|(p, s)| key(p, &s.body().line.asset, s.body().seq));
        let count = offers.len();
        for (peer, iou) in offers {
            let to = self.node(&peer);
            self.send(Packet::Msg {
                from: node,
                to,
                msg: Message::Offer(iou),
            });
        }
        for (peer, state) in states {
            let to = self.node(&peer);
            self.send(Packet::Msg {
                from: node,
                to,
                msg: Message::State(state),
            });
        }
        count
    }

    fn restart(&mut self, node: usize) -> Outcome {
        let before = print_of(&self.ledgers[node]);
        let restored = Ledger::restore(self.keys[node].clone(), self.stores[node].snapshot())
            .map_err(|e| TestCaseError::fail(format!("restore failed: {e}")))?;
        prop_assert_eq!(
            print_of(&restored),
            before,
            "node {} restarted differently",
            node
        );
        self.ledgers[node] = restored;
        Ok(())
    }

    fn check_invariants(&mut self) -> Outcome {
        let (n, assets) = (self.setup.nodes, self.setup.assets);
        for i in 0..n {
            // What the node holds is exactly what its store rebuilds.
            let restored = Ledger::restore(self.keys[i].clone(), self.stores[i].snapshot())
                .map_err(|e| TestCaseError::fail(format!("store of {i} is corrupt: {e}")))?;
            prop_assert_eq!(print_of(&restored), print_of(&self.ledgers[i]));

            for j in 0..n {
                if i == j {
                    continue;
                }
                for a in 0..assets {
                    self.check_history(i, j, a)?;
                }
            }
        }
        for a in 0..assets {
            let mut sum = 0i128;
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        if let Some(c) = self.channel(i, j, a) {
                            sum += c.view().expect("view").net;
                        }
                        self.check_line(i, j, a)?;
                    }
                }
            }
            // Each end counts at most what its peer has: the sum only lags behind zero.
            check(sum >= 0, || {
                format!("net positions sum to {sum} in {}", self.assets[a])
            })?;
        }
        Ok(())
    }

    /// Seqs strictly increase, totals never decrease, resolved sets only grow, for the states
    /// node `i` signed for `j` and the states it holds from `j`.
    fn check_history(&mut self, i: usize, j: usize, a: usize) -> Outcome {
        let Some(c) = self.channel(i, j, a) else {
            return Ok(());
        };
        let states = [
            (Direction::Out, c.out_state().cloned()),
            (Direction::In, c.in_state().cloned()),
        ];
        for (dir, state) in states {
            let key = (i, j, a, dir);
            match (self.seen.get(&key), state) {
                (None, None) => {}
                (Some(_), None) => return fail(format!("{key:?}: the state disappeared")),
                (held, Some(state)) => {
                    let bytes = state.to_bytes();
                    let b = state.body();
                    if let Some(held) = held {
                        if held.bytes == bytes {
                            continue;
                        }
                        check(b.seq > held.seq, || {
                            format!("{key:?}: seq went from {} to {}", held.seq, b.seq)
                        })?;
                        check(b.total >= held.total, || {
                            format!("{key:?}: total went from {:?} to {:?}", held.total, b.total)
                        })?;
                        check(b.resolved.is_superset_of(&held.resolved), || {
                            format!("{key:?}: resolved set shrank")
                        })?;
                    }
                    self.seen.insert(
                        key,
                        Seen {
                            seq: b.seq,
                            total: b.total,
                            resolved: b.resolved.clone(),
                            bytes,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Limits and knowledge on the line where `i` issues to `j`.
    fn check_line(&self, i: usize, j: usize, a: usize) -> Outcome {
        let (issuer, holder) = (self.channel(i, j, a), self.channel(j, i, a));
        // A side without the line has a limit of zero.
        let issue = issuer.map_or(0, |c| i128::from(c.limits.issue.minor()));
        let accept = holder.map_or(0, |c| i128::from(c.limits.accept.minor()));
        let line = format!("{i}→{j} {}", self.assets[a]);

        // Each side's own view: net + pending never passes its own limit.
        if let Some(c) = issuer {
            let v = c.view().expect("view");
            check(-v.net + i128::from(v.pending_out.minor()) <= issue, || {
                format!("{line}: issuer view {v:?} passes issue limit {issue}")
            })?;
        }
        if let Some(c) = holder {
            let v = c.view().expect("view");
            check(v.net + i128::from(v.pending_in.minor()) <= accept, || {
                format!("{line}: holder view {v:?} passes accept limit {accept}")
            })?;
        }

        // The holder knows every acceptance; the issuer has counted only some of them.
        let owed = holder.map_or(0, in_owed);
        let counted = issuer.map_or(0, out_owed);
        check(owed >= counted, || {
            format!("{line}: issuer counts {counted} owed, holder only {owed}")
        })?;
        // The newest state the holder has is one the issuer signed.
        match (
            issuer.and_then(Channel::out_state),
            holder.and_then(Channel::in_state),
        ) {
            (_, None) => {}
            (None, Some(s)) => return fail(format!("{line}: holder has unsigned {s:?}")),
            (Some(o), Some(h)) => {
                check(h.body().seq <= o.body().seq, || {
                    format!("{line}: holder is ahead of the issuer")
                })?;
                if h.body().seq == o.body().seq {
                    prop_assert_eq!(h, o, "{}: two states with one seq", line);
                }
            }
        }

        // The truth: what i owes j net, by every signed acceptance.
        // Both far below 2^127 here (limits of at most 200 minor units).
        let debt = owed as i128 - issuer.map_or(0, in_owed) as i128;
        check(debt <= issue.min(accept), || {
            format!("{line}: debt {debt} passes min(issue {issue}, accept {accept})")
        })?;
        // Plus the offers the holder has not seen yet: still within the issuer's limit.
        let unseen: u64 = issuer
            .iter()
            .flat_map(|c| c.out_conditionals().values())
            .filter(|o| o.answer.is_none())
            .filter(|o| !holder.is_some_and(|h| h.in_conditionals().contains_key(&o.iou.body().id)))
            .map(|o| o.iou.body().amount.minor())
            .sum();
        check(debt + i128::from(unseen) <= issue, || {
            format!("{line}: debt {debt} + unseen offers {unseen} pass issue limit {issue}")
        })
    }

    /// Delivers everything, merges, resends, until nothing moves; then checks that both ends
    /// of every line agree and the totals are the completed payments.
    fn settle(&mut self) -> Outcome {
        let n = self.setup.nodes;
        let mut settled = false;
        for round in 0..12 {
            if round > 0 {
                // Offers to a peer without the line wait for their expiry.
                self.now += 20;
            }
            self.deliver_all()?;
            let mut busy = 0;
            for i in 0..n {
                busy += self.merge(i)?;
            }
            for i in 0..n {
                busy += self.resend(i);
            }
            self.deliver_all()?;
            if busy == 0 {
                settled = true;
                break;
            }
        }
        check(settled, || "the network did not settle".into())?;
        self.check_invariants()?;

        for a in 0..self.setup.assets {
            let mut sum = 0i128;
            for i in 0..n {
                for j in 0..n {
                    if i == j {
                        continue;
                    }
                    let line = format!("{i}→{j} {}", self.assets[a]);
                    let (Some(c), Some(peer)) = (self.channel(i, j, a), self.channel(j, i, a))
                    else {
                        // One side has no line: nothing can have moved either way.
                        let sides = [self.channel(i, j, a), self.channel(j, i, a)];
                        for side in sides.into_iter().flatten() {
                            let v = side.view().expect("view");
                            prop_assert_eq!(v.net, 0, "{}", &line);
                            prop_assert_eq!(v.out_total, Total::ZERO, "{}", &line);
                            prop_assert_eq!(v.in_total, Total::ZERO, "{}", &line);
                            prop_assert!(side.out_conditionals().is_empty(), "{}", &line);
                            prop_assert!(side.in_conditionals().is_empty(), "{}", &line);
                        }
                        continue;
                    };
                    let (v, w) = (c.view().expect("view"), peer.view().expect("view"));
                    sum += v.net;
                    prop_assert_eq!(v.net, -w.net, "{}: the ends disagree", &line);
                    prop_assert_eq!(v.out_seq, w.in_seq, "{}", &line);
                    prop_assert_eq!(v.out_total, w.in_total, "{}", &line);
                    prop_assert_eq!(c.out_state(), peer.in_state(), "{}", &line);
                    prop_assert!(c.out_conditionals().is_empty(), "{}: unmerged", &line);
                    prop_assert!(c.in_conditionals().is_empty(), "{}: unresolved", &line);
                    prop_assert_eq!(v.pending_out, Amount::ZERO);

                    // The total is exactly the payments that completed.
                    let (pay_id, peer_key) = (self.pubs[j].as_bytes(), self.pubs[i].as_bytes());
                    let paid: u128 = self.stores[i]
                        .payments
                        .values()
                        .filter(|p| p.dir == Direction::Out && p.peer.as_bytes() == pay_id)
                        .filter(|p| p.asset == self.assets[a])
                        .map(|p| {
                            prop_assert_ne!(&p.status, &PaymentStatus::Pending);
                            Ok(if p.status == PaymentStatus::Completed {
                                u128::from(p.amount.minor())
                            } else {
                                0
                            })
                        })
                        .sum::<Result<u128, TestCaseError>>()?;
                    let received: u128 = self.stores[j]
                        .payments
                        .values()
                        .filter(|p| p.dir == Direction::In && p.peer.as_bytes() == peer_key)
                        .filter(|p| p.asset == self.assets[a])
                        .map(|p| u128::from(p.amount.minor()))
                        .sum();
                    prop_assert_eq!(v.out_total.minor(), paid, "{}: paid", &line);
                    prop_assert_eq!(w.in_total.minor(), received, "{}: received", &line);
                }
            }
            prop_assert_eq!(
                sum,
                0,
                "net positions in {} do not sum to zero",
                self.assets[a]
            );
        }
        Ok(())
    }

    fn deliver_all(&mut self) -> Outcome {
        let mut budget = 100_000;
        while !self.queue.is_empty() {
            budget -= 1;
            check(budget > 0, || "messages never stop".into())?;
            let packet = self.queue.remove(0);
            self.deliver(packet)?;
            self.check_invariants()?;
        }
        Ok(())
    }
}

fn run(setup: &Setup, actions: &[Action], restarts: bool) -> Result<Sim, TestCaseError> {
    let mut sim = Sim::new(setup.clone(), restarts)?;
    sim.check_invariants()?;
    for action in actions {
        sim.step(action)?;
    }
    sim.settle()?;
    Ok(sim)
}

fn show<T: Debug>(x: T) -> String {
    format!("{x:?}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(40)))]

    /// Random payments over a lossy, reordering, duplicating network with restarts.
    #[test]
    fn invariants_hold_under_faults(
        setup in setup(),
        actions in prop::collection::vec(action(), 0..80),
    ) {
        run(&setup, &actions, true)?;
    }

    /// A node rebuilt from its store at any point does exactly what it would have done anyway:
    /// the same messages, replies and store ops, byte for byte.
    #[test]
    fn restarts_change_nothing(
        setup in setup(),
        actions in prop::collection::vec(action(), 0..60),
    ) {
        prop_assume!(actions.iter().any(|a| matches!(a, Action::Restart(_))));
        let with = run(&setup, &actions, true)?;
        let without = run(&setup, &actions, false)?;
        prop_assert_eq!(with.trace.len(), without.trace.len());
        for (k, (a, b)) in with.trace.iter().zip(&without.trace).enumerate() {
            prop_assert_eq!(a, b, "trace differs at entry {}", k);
        }
        for (a, b) in with.ledgers.iter().zip(&without.ledgers) {
            prop_assert_eq!(show(print_of(a)), show(print_of(b)));
        }
    }
}

/// A hand-made run through the common faults, so a regression shows up without shrinking.
#[test]
fn lossy_scenario() {
    let setup = Setup {
        nodes: 3,
        assets: 1,
        limits: vec![(100, 100); MAX_NODES * MAX_NODES * MAX_ASSETS],
        missing: (0..MAX_NODES * MAX_NODES * MAX_ASSETS)
            // Node 0 has no line toward node 2.
            .map(|k| k == 2 * MAX_ASSETS)
            .collect(),
        envelopes: true,
    };
    use Action::*;
    let pay = |from, amount, ttl| Pay {
        from,
        to: 0,
        asset: 0,
        amount,
        ttl,
    };
    let actions = [
        pay(0, 30, 20), // 0 offers 30 to 1
        Duplicate(0),
        Deliver(0), // the offer: accepted
        Drop(1),    // the acceptance is lost
        Deliver(0), // the copy of the offer: the same acceptance again
        Deliver(0), // the issuer takes it
        Merge(0),
        Restart(1),
        Duplicate(0),
        Deliver(0),    // the state
        Deliver(1),    // its ack
        Deliver(0),    // the copy of the state: harmless
        pay(1, 90, 0), // 1 offers 90 to 2, expired on arrival
        Deliver(1),
        pay(2, 120, 50), // over 2's issue limit: refused locally
        pay(2, 50, 50),  // node 0 has no line toward 2: rejected until it expires
        Deliver(2),
        Restart(0),
        Tick(30),
        Restart(2),
    ];
    let sim = run(&setup, &actions, true).unwrap_or_else(|e| panic!("{e}"));
    let v = sim.channel(0, 1, 0).expect("line").view().expect("view");
    assert_eq!(v.net, -30);
    assert_eq!(v.out_seq, 1);
    let v = sim.channel(2, 0, 0).expect("line").view().expect("view");
    assert_eq!((v.net, v.out_seq, v.pending_out), (0, 1, Amount::ZERO));
    let refused = sim.stores[2]
        .payments
        .values()
        .filter(|p| matches!(p.status, PaymentStatus::Failed(_)))
        .count();
    assert_eq!(refused, 1);
}
