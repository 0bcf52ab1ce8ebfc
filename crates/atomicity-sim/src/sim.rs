//! The simulation proper: nodes, the network, the fault injector and the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use atomicity_core::ledger::ENVELOPE_WINDOW_SECS;
use atomicity_core::message::MAX_MESSAGES;
use atomicity_core::{
    Amount, Asset, Channel, ConditionalIou, Direction, EnvelopeError, IouState, Keypair, Ledger,
    LedgerError, Message, PaymentOutcome, PaymentRecord, PaymentStatus, PublicKey, Reply, Signed,
    StoreOp, decode_replies, encode_replies,
};
use atomicity_store::{MemoryStore, Store};

use crate::oracle::{self, Summary};
use crate::rng::SimRng;
use crate::trace::Trace;
use crate::{ASSET_CODES, ConfigError, Report, SimConfig, Violation};

/// The simulated clock starts here (Unix seconds, November 2023).
const START_TIME: u64 = 1_700_000_000;
/// Events kept for a violation report when the whole trace is not kept.
const TRACE_TAIL: usize = 80;
/// Most network packets one batch takes in.
const MAX_PACKETS_PER_BATCH: u64 = 6;
/// Outbox ticks come every this many seconds (range).
const TICK_SECS: (u64, u64) = (4, 9);
/// The clock advances by up to this much per step.
const MAX_STEP_SECS: u64 = 3;
/// Settling gives up after this many rounds.
const MAX_SETTLE_ROUNDS: u64 = 60;
/// Rejection codes an honest peer can cause: 11 (no line in the asset: the holder never opened
/// it), 20 (a stale state overtaken by a newer one) and 32 (an offer resent after a state
/// resolved it). Anything else, from an uncorrupted message, means somebody misbehaved.
const BENIGN_CODES: [u16; 3] = [11, 20, 32];

/// What the sender of an envelope remembers about each message, to read the replies (the
/// simulation's stand-in for the request an HTTP response answers).
#[derive(Clone, Debug)]
enum Sent {
    /// An offer for this payment.
    Offer([u8; 32]),
    /// The newest state on a line, in this asset, with this seq.
    State(Asset, u64),
}

#[derive(Clone, Debug)]
enum Packet {
    /// A sealed envelope. `epoch` is the sender's incarnation, for the reply.
    Envelope {
        bytes: Vec<u8>,
        epoch: u64,
        sent: Vec<Sent>,
    },
    /// Encoded replies to an envelope, addressed to the incarnation that sent it.
    Replies {
        bytes: Vec<u8>,
        epoch: u64,
        sent: Vec<Sent>,
    },
}

impl Packet {
    fn bytes_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Packet::Envelope { bytes, .. } | Packet::Replies { bytes, .. } => bytes,
        }
    }
}

/// A copy of a packet on the wire.
#[derive(Clone, Debug)]
struct InFlight {
    id: u64,
    at: u64,
    from: usize,
    to: usize,
    corrupted: bool,
    packet: Packet,
}

/// One simulated node: its key, its durable store, and (while it runs) its ledger and the
/// volatile state of its outbox.
struct Node {
    key: Keypair,
    pk: PublicKey,
    store: MemoryStore,
    /// `None` while the node is down.
    ledger: Option<Ledger>,
    down_until: u64,
    /// Incarnation: bumped by every crash, so replies to a dead process are dropped.
    epoch: u64,
    /// Offset of this node's clock from the simulation's.
    skew: i64,
    next_tick: u64,
    /// Newest states sent and not acknowledged yet (the outbox's queue; lost in a crash).
    unacked: BTreeMap<(usize, Asset), Signed<IouState>>,
    /// The oracle's view of what this node last committed.
    summary: Summary,
}

/// What a batch asks the outbox to resend after its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resend {
    Nothing,
    /// The periodic tick: unanswered offers and states not acknowledged yet.
    Unacked,
    /// After a restart: every unanswered offer and every newest state.
    All,
}

/// One input of a node's batch.
enum Input {
    /// The user pays somebody.
    Pay,
    /// The user raises a limit or opens a missing line.
    LimitChange,
    /// Something arrived from the network.
    Packet(InFlight),
}

/// A payment the simulation saw offered, for the final checks.
#[derive(Clone, Debug)]
struct PaymentInfo {
    payer: usize,
    payee: usize,
    asset: Asset,
    amount: u64,
}

/// What a batch will do once committed.
#[derive(Default)]
struct Outgoing {
    replies: Vec<(usize, Vec<Reply>, u64, Vec<Sent>)>,
    offers: BTreeMap<usize, Vec<(Message, Sent)>>,
    acks: Vec<(usize, Asset, u64)>,
    completed: Vec<[u8; 32]>,
    new_payments: Vec<([u8; 32], PaymentInfo)>,
}

/// A running simulation. [`crate::run`] drives one from start to end; the methods here allow
/// stepping by hand.
pub struct Sim {
    config: SimConfig,
    rng: SimRng,
    clock: u64,
    step: u64,
    faults_on: bool,
    assets: Vec<Asset>,
    nodes: Vec<Node>,
    net: Vec<InFlight>,
    next_packet: u64,
    payments: BTreeMap<[u8; 32], PaymentInfo>,
    seen_completed: BTreeSet<[u8; 32]>,
    report: Report,
    trace: Trace,
}

impl Sim {
    /// Sets up the nodes: keys from the seed, every node a peer of every other, random limits
    /// per pair and asset (some zero, some lines missing), all committed to each node's store.
    pub fn new(config: SimConfig) -> Result<Sim, ConfigError> {
        config.validate()?;
        let mut rng = SimRng::new(config.seed);
        let assets: Vec<Asset> = ASSET_CODES[..config.assets]
            .iter()
            .filter_map(|code| Asset::new(code, 2).ok())
            .collect();
        let max_skew = config.faults.max_clock_skew_secs;
        let nodes: Vec<Node> = (0..config.nodes)
            .map(|_| {
                let key = Keypair::from_secret_key(&rng.bytes32());
                let skew = rng.range(0, max_skew.saturating_mul(2));
                let skew = i64::try_from(skew).unwrap_or(0) - i64::try_from(max_skew).unwrap_or(0);
                let next_tick = START_TIME + rng.range(TICK_SECS.0, TICK_SECS.1);
                Node {
                    pk: key.public_key(),
                    key,
                    store: MemoryStore::new(),
                    ledger: None,
                    down_until: 0,
                    epoch: 0,
                    skew,
                    next_tick,
                    unacked: BTreeMap::new(),
                    summary: Summary::new(),
                }
            })
            .collect();
        let keep_trace = config.keep_trace;
        let mut sim = Sim {
            report: Report {
                seed: config.seed,
                nodes: config.nodes,
                assets: config.assets,
                ..Report::default()
            },
            config,
            rng,
            clock: START_TIME,
            step: 0,
            faults_on: true,
            assets,
            nodes,
            net: Vec::new(),
            next_packet: 0,
            payments: BTreeMap::new(),
            seen_completed: BTreeSet::new(),
            trace: Trace::new(TRACE_TAIL, keep_trace),
        };
        sim.setup().map_err(|v| ConfigError::Setup(v.what))?;
        Ok(sim)
    }

    fn setup(&mut self) -> Result<(), Violation> {
        let count = self.nodes.len();
        for n in 0..count {
            let mut ledger = Ledger::new(self.nodes[n].key.clone());
            ledger.set_batch_signing(true);
            let mut ops = Vec::new();
            for p in (0..count).filter(|p| *p != n) {
                let pk = self.nodes[p].pk.clone();
                ledger
                    .add_peer(pk.clone(), None, &mut ops)
                    .map_err(|e| self.violation(format!("n{n} cannot add n{p}: {e}")))?;
                for a in 0..self.assets.len() {
                    let asset = self.assets[a].clone();
                    if self.rng.chance(self.config.workload.missing_line_permille) {
                        self.event(format!("n{n} has no {asset} line with n{p}"));
                        continue;
                    }
                    let accept = self.random_limit();
                    let issue = self.random_limit();
                    ledger
                        .set_limits(&pk, &asset, Some(accept), Some(issue), &mut ops)
                        .map_err(|e| self.violation(format!("n{n} cannot set limits: {e}")))?;
                    self.event(format!(
                        "n{n} {asset} with n{p}: accept {} issue {}",
                        accept.minor(),
                        issue.minor()
                    ));
                }
            }
            self.nodes[n]
                .store
                .commit(&ops)
                .map_err(|e| self.violation(format!("n{n}'s store refused the setup: {e}")))?;
            self.nodes[n].ledger = Some(ledger);
            self.check_node(n, None)?;
        }
        Ok(())
    }

    fn random_limit(&mut self) -> Amount {
        if self.rng.chance(self.config.workload.zero_limit_permille) {
            Amount::ZERO
        } else {
            Amount::from_minor(self.rng.range(1, self.config.workload.max_limit))
        }
    }

    /// Steps run so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The simulated clock (Unix seconds).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Runs the remaining steps, settles, checks the end state, and reports.
    pub fn run_to_end(mut self) -> Result<Report, Violation> {
        while self.step < self.config.steps {
            self.guarded(Sim::step)?;
        }
        self.guarded(Sim::settle)?;
        self.guarded(Sim::final_checks)?;
        let mut digest = self.trace.digest();
        for node in &mut self.nodes {
            let snapshot = node.store.load();
            let history = node.store.history(usize::MAX);
            let evidence = node.store.evidence();
            digest.write(format!("{snapshot:?}{history:?}{evidence:?}").as_bytes());
        }
        self.report.steps = self.step;
        self.report.sim_seconds = self.clock - START_TIME;
        self.report.digest = digest.value();
        self.report.trace = self.trace.take_all();
        Ok(self.report)
    }

    /// Runs `f`, turning a panic into a violation.
    fn guarded(&mut self, f: fn(&mut Sim) -> Result<(), Violation>) -> Result<(), Violation> {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(result) => result,
            Err(payload) => {
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                Err(self.violation(format!("panic: {text}")))
            }
        }
    }

    /// One step with faults: restarts and outbox ticks that are due, then one batch of one
    /// random running node (packets that arrived for it, maybe a payment or a limit change).
    /// The invariants are checked after every batch.
    pub fn step(&mut self) -> Result<(), Violation> {
        self.step += 1;
        self.clock += self.rng.range(0, MAX_STEP_SECS);
        for n in 0..self.nodes.len() {
            if self.nodes[n].ledger.is_none() && self.nodes[n].down_until <= self.clock {
                self.restart(n)?;
            }
        }
        self.drop_arrivals_at_down_nodes();
        for n in 0..self.nodes.len() {
            if self.nodes[n].ledger.is_some() && self.nodes[n].next_tick <= self.clock {
                self.nodes[n].next_tick = self.clock + self.rng.range(TICK_SECS.0, TICK_SECS.1);
                self.report.ticks += 1;
                self.batch(n, Vec::new(), Resend::Unacked)?;
            }
        }
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].ledger.is_some())
            .collect();
        if up.is_empty() {
            return Ok(());
        }
        let n = up[self.rng.index(up.len())];
        let mut ready: Vec<u64> = self
            .net
            .iter()
            .filter(|p| p.to == n && p.at <= self.clock)
            .map(|p| p.id)
            .collect();
        self.rng.shuffle(&mut ready);
        let take = self.rng.range(0, MAX_PACKETS_PER_BATCH);
        ready.truncate(usize::try_from(take).unwrap_or(usize::MAX));
        let mut inputs: Vec<Input> = self
            .take_packets(&ready)
            .into_iter()
            .map(Input::Packet)
            .collect();
        let workload = &self.config.workload;
        let (pay, limit) = (workload.pay_permille, workload.limit_change_permille);
        if self.rng.chance(pay) {
            inputs.push(Input::Pay);
            if self.rng.chance(pay / 3) {
                inputs.push(Input::Pay);
            }
        }
        if self.rng.chance(limit) {
            inputs.push(Input::LimitChange);
        }
        self.rng.shuffle(&mut inputs);
        self.batch(n, inputs, Resend::Nothing)?;
        Ok(())
    }

    /// Removes the packets with these ids from the network, in the order of `ids`.
    fn take_packets(&mut self, ids: &[u64]) -> Vec<InFlight> {
        let wanted: BTreeSet<u64> = ids.iter().copied().collect();
        let mut taken = BTreeMap::new();
        let mut kept = Vec::with_capacity(self.net.len());
        for p in self.net.drain(..) {
            if wanted.contains(&p.id) {
                taken.insert(p.id, p);
            } else {
                kept.push(p);
            }
        }
        self.net = kept;
        ids.iter().filter_map(|id| taken.remove(id)).collect()
    }

    /// Packets due at a node that is down are lost (connection refused).
    fn drop_arrivals_at_down_nodes(&mut self) {
        let due: Vec<u64> = self
            .net
            .iter()
            .filter(|p| p.at <= self.clock && self.nodes[p.to].ledger.is_none())
            .map(|p| p.id)
            .collect();
        for p in self.take_packets(&due) {
            self.report.messages_node_down += 1;
            self.event(format!(
                "#{} n{}→n{} lost: n{} is down",
                p.id, p.from, p.to, p.to
            ));
        }
    }

    /// The node's own clock.
    fn now_of(&self, n: usize) -> u64 {
        self.clock.saturating_add_signed(self.nodes[n].skew)
    }

    /// One batch of node `n`, as the ledger actor runs it: every input through the ledger,
    /// `merge_states`, one commit, then (unless it crashes) the replies, offers and states go
    /// out, and the outbox resends what `resend` says. Returns whether anything was committed.
    fn batch(&mut self, n: usize, inputs: Vec<Input>, resend: Resend) -> Result<bool, Violation> {
        let Some(mut ledger) = self.nodes[n].ledger.take() else {
            for input in inputs {
                if let Input::Packet(p) = input {
                    self.report.messages_node_down += 1;
                    self.event(format!("#{} lost: n{n} is down", p.id));
                }
            }
            return Ok(false);
        };
        self.report.batches += 1;
        let before_batch = fingerprint(&ledger);
        let now = self.now_of(n);
        let mut ops = Vec::new();
        let mut out = Outgoing::default();
        for input in inputs {
            match input {
                Input::Pay => self.user_pays(n, &mut ledger, now, &mut ops, &mut out)?,
                Input::LimitChange => self.user_changes_limits(n, &mut ledger, &mut ops)?,
                Input::Packet(p) => self.receive(n, &mut ledger, now, p, &mut ops, &mut out)?,
            }
        }
        let states = ledger.merge_states(now, &mut ops);
        ledger.sign_batch();
        let faults = &self.config.faults;
        let (before, after) = (
            u64::from(faults.crash_before_commit_permille),
            u64::from(faults.crash_after_commit_permille),
        );
        let roll = if self.faults_on {
            self.rng.below(1000)
        } else {
            u64::MAX
        };
        if roll < before {
            self.report.crashes_before_commit += 1;
            self.report.payments_lost_in_crash += out.new_payments.len() as u64;
            self.crash(n, "before committing", ops.len());
            return Ok(false);
        }
        self.nodes[n]
            .store
            .commit(&ops)
            .map_err(|e| self.violation(format!("n{n}'s store refused a batch: {e}")))?;
        self.report.states_signed += states.len() as u64;
        self.report.payments_offered += out.new_payments.len() as u64;
        for (id, info) in out.new_payments.drain(..) {
            self.payments.insert(id, info);
        }
        if !ops.is_empty() {
            self.check_node(n, Some(&ledger))?;
        } else if fingerprint(&ledger) != before_batch {
            // Nothing to persist, so nothing may have changed in memory either.
            return Err(self.violation(format!(
                "n{n}'s ledger changed in a batch that produced nothing to persist"
            )));
        }
        if roll < before + after {
            self.report.crashes_after_commit += 1;
            self.crash(n, "after committing, before sending", ops.len());
            return Ok(!ops.is_empty());
        }

        // Persisted: now speak.
        for (to, replies, epoch, sent) in out.replies {
            let bytes = encode_replies(&replies);
            self.send(n, to, Packet::Replies { bytes, epoch, sent });
        }
        for (to, messages) in std::mem::take(&mut out.offers) {
            self.send_messages(n, &ledger, to, messages, now);
        }
        for (peer, asset, seq) in out.acks {
            let key = (peer, asset);
            if self.nodes[n]
                .unacked
                .get(&key)
                .is_some_and(|s| s.body().seq <= seq)
            {
                self.nodes[n].unacked.remove(&key);
            }
        }
        self.seen_completed.extend(out.completed);
        let mut new_states: BTreeMap<usize, Vec<(Message, Sent)>> = BTreeMap::new();
        for (pk, state) in states {
            let peer = self
                .index_of(&pk)
                .ok_or_else(|| self.violation("state for a stranger".into()))?;
            let asset = state.body().line.asset.clone();
            self.event(format!(
                "n{n} signs {asset} state for n{peer}: seq {} total {}",
                state.body().seq,
                state.body().total.minor()
            ));
            new_states.entry(peer).or_default().push((
                Message::State(state.clone()),
                Sent::State(asset.clone(), state.body().seq),
            ));
            self.nodes[n].unacked.insert((peer, asset), state);
        }
        // The outbox sends new states at once; its tick and a restart resend.
        let mut resend_offers = Vec::new();
        match resend {
            Resend::Nothing => {}
            Resend::Unacked => resend_offers = sorted_offers(&ledger, self),
            Resend::All => {
                resend_offers = sorted_offers(&ledger, self);
                for (pk, state) in ledger.latest_out_states() {
                    if let Some(peer) = self.index_of(&pk) {
                        let asset = state.body().line.asset.clone();
                        self.nodes[n].unacked.insert((peer, asset), state);
                    }
                }
            }
        }
        if resend != Resend::Nothing {
            // Everything not acknowledged, instead of only the new states.
            new_states.clear();
            for ((peer, asset), state) in &self.nodes[n].unacked {
                let seq = state.body().seq;
                new_states.entry(*peer).or_default().push((
                    Message::State(state.clone()),
                    Sent::State(asset.clone(), seq),
                ));
            }
        }
        let mut offers: BTreeMap<usize, Vec<(Message, Sent)>> = BTreeMap::new();
        for (peer, iou) in resend_offers {
            let pid = iou.body().payment_id;
            offers
                .entry(peer)
                .or_default()
                .push((Message::Offer(iou), Sent::Offer(pid)));
        }
        if !offers.is_empty() {
            self.event(format!(
                "n{n} resends {} offers",
                offers.values().map(Vec::len).sum::<usize>()
            ));
        }
        for (to, messages) in offers {
            self.send_messages(n, &ledger, to, messages, now);
        }
        for (to, messages) in new_states {
            self.send_messages(n, &ledger, to, messages, now);
        }
        self.nodes[n].ledger = Some(ledger);
        Ok(!ops.is_empty())
    }

    fn crash(&mut self, n: usize, when: &str, ops: usize) {
        let node = &mut self.nodes[n];
        node.epoch += 1;
        node.unacked.clear();
        node.ledger = None;
        let down = self
            .rng
            .range(1, self.config.faults.max_downtime_secs.max(1));
        self.nodes[n].down_until = self.clock + down;
        self.event(format!("n{n} CRASHES {when} ({ops} ops), down {down} s"));
    }

    fn restart(&mut self, n: usize) -> Result<(), Violation> {
        let snapshot = self.nodes[n]
            .store
            .load()
            .map_err(|e| self.violation(format!("n{n} cannot load its store: {e}")))?;
        let mut ledger = Ledger::restore(self.nodes[n].key.clone(), snapshot)
            .map_err(|e| self.violation(format!("n{n} cannot restore its ledger: {e}")))?;
        ledger.set_batch_signing(true);
        self.nodes[n].ledger = Some(ledger);
        self.report.restarts += 1;
        self.event(format!("n{n} restarts"));
        self.batch(n, Vec::new(), Resend::All)?;
        Ok(())
    }

    fn user_pays(
        &mut self,
        n: usize,
        ledger: &mut Ledger,
        now: u64,
        ops: &mut Vec<StoreOp>,
        out: &mut Outgoing,
    ) -> Result<(), Violation> {
        self.report.payments_attempted += 1;
        let count = self.nodes.len();
        let payee = (n + 1 + self.rng.index(count - 1)) % count;
        let asset = self.assets[self.rng.index(self.assets.len())].clone();
        let w = &self.config.workload;
        let (max_amount, short, ttl) = (
            w.max_amount,
            w.short_expiry_permille,
            (w.min_ttl_secs, w.max_ttl_secs),
        );
        let amount = self.rng.range(1, max_amount);
        let payment_id = self.rng.bytes32();
        let expires_at = if self.rng.chance(short) {
            now.saturating_sub(3) + self.rng.range(0, 15)
        } else {
            now + self.rng.range(ttl.0, ttl.1)
        };
        let pk = self.nodes[payee].pk.clone();
        let memo = format!("sim {}", short_id(&payment_id));
        match ledger.pay(
            &pk,
            &asset,
            Amount::from_minor(amount),
            payment_id,
            memo,
            now,
            expires_at,
            ops,
        ) {
            Ok(iou) => {
                self.event(format!(
                    "n{n} pays n{payee} {amount} {asset} (id {}, pay {}, expires in {} s)",
                    iou.body().id,
                    short_id(&payment_id),
                    expires_at as i128 - now as i128
                ));
                out.offers
                    .entry(payee)
                    .or_default()
                    .push((Message::Offer(iou), Sent::Offer(payment_id)));
                out.new_payments.push((
                    payment_id,
                    PaymentInfo {
                        payer: n,
                        payee,
                        asset,
                        amount,
                    },
                ));
            }
            Err(e @ (LedgerError::OverIssueLimit { .. } | LedgerError::NoLine { .. })) => {
                self.report.payments_refused_locally += 1;
                self.event(format!("n{n} cannot pay n{payee} {amount} {asset}: {e}"));
            }
            Err(e) => {
                return Err(self.violation(format!("n{n} pay n{payee}: unexpected error {e}")));
            }
        }
        Ok(())
    }

    fn user_changes_limits(
        &mut self,
        n: usize,
        ledger: &mut Ledger,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), Violation> {
        let count = self.nodes.len();
        let peer = (n + 1 + self.rng.index(count - 1)) % count;
        let asset = self.assets[self.rng.index(self.assets.len())].clone();
        let pk = self.nodes[peer].pk.clone();
        let max = self.config.workload.max_limit;
        let (accept, issue) = match ledger.channel(&pk, &asset) {
            Some(channel) => {
                let raise = Amount::from_minor(self.rng.range(1, max / 2 + 1));
                let limits = channel.limits;
                if self.rng.chance(500) {
                    (limits.accept.checked_add(raise), None)
                } else {
                    (None, limits.issue.checked_add(raise))
                }
            }
            None => (Some(self.random_limit()), Some(self.random_limit())),
        };
        let limits = ledger
            .set_limits(&pk, &asset, accept, issue, ops)
            .map_err(|e| self.violation(format!("n{n} cannot set limits: {e}")))?;
        self.event(format!(
            "n{n} sets {asset} limits with n{peer}: accept {} issue {}",
            limits.accept.minor(),
            limits.issue.minor()
        ));
        Ok(())
    }

    fn receive(
        &mut self,
        n: usize,
        ledger: &mut Ledger,
        now: u64,
        p: InFlight,
        ops: &mut Vec<StoreOp>,
        out: &mut Outgoing,
    ) -> Result<(), Violation> {
        self.report.messages_delivered += 1;
        let from = p.from;
        let mangled = if p.corrupted { " (corrupted)" } else { "" };
        match p.packet {
            Packet::Envelope { bytes, epoch, sent } => {
                let envelope = match ledger.open_envelope(&bytes, now) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        self.report.envelopes_refused += 1;
                        self.event(format!(
                            "#{} n{from}→n{n} envelope refused{mangled}: {e}",
                            p.id
                        ));
                        if !p.corrupted && !matches!(e, EnvelopeError::Stale { .. }) {
                            return Err(self.violation(format!(
                                "n{n} refused an intact envelope from n{from}: {e}"
                            )));
                        }
                        return Ok(());
                    }
                };
                if envelope.from != self.nodes[from].pk {
                    return Err(self.violation(format!(
                        "an envelope from n{from} opened as from {}",
                        envelope.from
                    )));
                }
                let replies: Vec<Reply> = envelope
                    .messages
                    .into_iter()
                    .map(|m| ledger.handle_message(&envelope.from, m, now, ops))
                    .collect();
                self.event(format!(
                    "#{} n{from}→n{n} envelope{mangled}: {}",
                    p.id,
                    describe(&replies)
                ));
                for reply in &replies {
                    if let Reply::Rejected { code, text } = reply
                        && !BENIGN_CODES.contains(code)
                    {
                        return Err(self.violation(format!(
                            "n{n} rejected a message of honest n{from} with code {code}: {text}"
                        )));
                    }
                }
                out.replies.push((from, replies, epoch, sent));
            }
            Packet::Replies { bytes, epoch, sent } => {
                if epoch != self.nodes[n].epoch {
                    self.report.replies_orphaned += 1;
                    self.event(format!(
                        "#{} n{from}→n{n} replies for an earlier incarnation, dropped",
                        p.id
                    ));
                    return Ok(());
                }
                let replies = match decode_replies(&bytes) {
                    Ok(replies) if replies.len() == sent.len() => replies,
                    Ok(replies) if p.corrupted => {
                        self.event(format!(
                            "#{} {} replies to {} messages{mangled}",
                            p.id,
                            replies.len(),
                            sent.len()
                        ));
                        return Ok(());
                    }
                    Err(e) if p.corrupted => {
                        self.event(format!(
                            "#{} n{from}→n{n} replies undecodable{mangled}: {e}",
                            p.id
                        ));
                        return Ok(());
                    }
                    Ok(replies) => {
                        return Err(self.violation(format!(
                            "n{from} sent {} replies to {} messages",
                            replies.len(),
                            sent.len()
                        )));
                    }
                    Err(e) => {
                        return Err(self
                            .violation(format!("intact replies from n{from} do not decode: {e}")));
                    }
                };
                self.event(format!(
                    "#{} n{from}→n{n} replies{mangled}: {}",
                    p.id,
                    describe(&replies)
                ));
                let pk = self.nodes[from].pk.clone();
                for (reply, sent) in replies.into_iter().zip(sent) {
                    if let (Sent::State(asset, sent_seq), Reply::StateAck { seq }) = (&sent, &reply)
                        && !p.corrupted
                    {
                        if seq != sent_seq {
                            return Err(self.violation(format!(
                                "n{from} acknowledged seq {seq} for a {asset} state with seq {sent_seq}"
                            )));
                        }
                        out.acks.push((from, asset.clone(), *seq));
                    }
                    match ledger.handle_reply(&pk, reply, now, ops) {
                        Ok(Some(PaymentOutcome::Completed)) => {
                            if let (Sent::Offer(pid), false) = (&sent, p.corrupted) {
                                out.completed.push(*pid);
                            }
                        }
                        Ok(_) => {}
                        Err(e) if p.corrupted => {
                            self.event(format!("n{n} rejects a corrupted reply from n{from}: {e}"));
                        }
                        Err(e) => {
                            return Err(self.violation(format!(
                                "n{n} rejected an honest reply from n{from}: {e}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Seals messages to a peer (in envelopes of at most [`MAX_MESSAGES`]) and sends them.
    fn send_messages(
        &mut self,
        n: usize,
        ledger: &Ledger,
        to: usize,
        messages: Vec<(Message, Sent)>,
        now: u64,
    ) {
        let pk = self.nodes[to].pk.clone();
        let epoch = self.nodes[n].epoch;
        for chunk in messages.chunks(MAX_MESSAGES) {
            let (msgs, sent): (Vec<Message>, Vec<Sent>) = chunk.iter().cloned().unzip();
            let bytes = ledger.seal(&pk, now, msgs);
            self.send(n, to, Packet::Envelope { bytes, epoch, sent });
        }
    }

    /// Hands a packet to the network, which may lose, duplicate, delay or corrupt it.
    fn send(&mut self, from: usize, to: usize, packet: Packet) {
        self.report.messages_sent += 1;
        let faults = self.config.faults.clone();
        let on = self.faults_on;
        if on && self.rng.chance(faults.drop_permille) {
            self.report.messages_dropped += 1;
            self.event(format!("n{from}→n{to} lost by the network"));
            return;
        }
        let copies = if on && self.rng.chance(faults.duplicate_permille) {
            self.report.messages_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = if on {
                self.rng.range(0, faults.max_delay_secs)
            } else {
                0
            };
            if on && self.rng.chance(faults.stale_permille) {
                delay =
                    ENVELOPE_WINDOW_SECS + 2 * faults.max_clock_skew_secs + self.rng.range(1, 60);
            }
            let mut packet = packet.clone();
            let mut corrupted = false;
            if on && self.rng.chance(faults.corrupt_permille) {
                let bytes = packet.bytes_mut();
                if !bytes.is_empty() {
                    let at = self.rng.index(bytes.len());
                    let flip = u8::try_from(self.rng.range(1, 255)).unwrap_or(1);
                    bytes[at] ^= flip;
                    corrupted = true;
                    self.report.messages_corrupted += 1;
                }
            }
            let id = self.next_packet;
            self.next_packet += 1;
            self.net.push(InFlight {
                id,
                at: self.clock + delay,
                from,
                to,
                corrupted,
                packet,
            });
        }
    }

    /// Settling: no more faults or payments; every node runs, the network delivers everything
    /// in order, and every node resends everything, round after round, until a round commits
    /// nothing and no offer waits for an answer (jumping the clock past expiries when only
    /// expiry can answer them).
    fn settle(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.event("settling: faults off".into());
        for n in 0..self.nodes.len() {
            if self.nodes[n].ledger.is_none() {
                self.restart(n)?;
            }
        }
        let max_skew = self.config.faults.max_clock_skew_secs;
        loop {
            self.report.settle_rounds += 1;
            if self.report.settle_rounds > MAX_SETTLE_ROUNDS {
                return Err(self.violation(format!(
                    "the network did not settle in {MAX_SETTLE_ROUNDS} rounds"
                )));
            }
            self.clock += 1;
            let mut changed = self.deliver_all()?;
            for n in 0..self.nodes.len() {
                changed |= self.batch(n, Vec::new(), Resend::All)?;
            }
            changed |= self.deliver_all()?;
            if changed {
                continue;
            }
            let waiting = self
                .nodes
                .iter()
                .filter_map(|node| node.ledger.as_ref())
                .flat_map(Ledger::unanswered_offers)
                .map(|(_, iou)| iou.body().expires_at)
                .min();
            match waiting {
                None => return Ok(()),
                Some(expiry) => {
                    // Every node's clock must pass the expiry, whatever its skew.
                    let target = expiry + max_skew + 1;
                    self.event(format!(
                        "settling: offers wait for expiry, clock jumps {} s",
                        target.saturating_sub(self.clock)
                    ));
                    self.clock = self.clock.max(target);
                }
            }
        }
    }

    /// Delivers every packet in flight, in the order sent, until the network is empty.
    fn deliver_all(&mut self) -> Result<bool, Violation> {
        let mut changed = false;
        let mut rounds = 0;
        while !self.net.is_empty() {
            rounds += 1;
            if rounds > 100 {
                return Err(self.violation("messages keep bouncing while settling".into()));
            }
            let mut by_node: BTreeMap<usize, Vec<Input>> = BTreeMap::new();
            let mut all = std::mem::take(&mut self.net);
            all.sort_by_key(|p| p.id);
            for p in all {
                by_node.entry(p.to).or_default().push(Input::Packet(p));
            }
            for (n, inputs) in by_node {
                changed |= self.batch(n, inputs, Resend::Nothing)?;
            }
        }
        Ok(changed)
    }

    /// The oracle after a commit of node `n`: monotonicity, limits, evidence, and (when the
    /// node runs on) that its memory equals what its store rebuilds.
    fn check_node(&mut self, n: usize, live: Option<&Ledger>) -> Result<(), Violation> {
        let snapshot = self.nodes[n]
            .store
            .load()
            .map_err(|e| self.violation(format!("n{n} cannot load its store: {e}")))?;
        let keys: Vec<PublicKey> = self.nodes.iter().map(|node| node.pk.clone()).collect();
        let index_of = |pk: &PublicKey| keys.iter().position(|k| k == pk);
        let summary = oracle::summarize(&snapshot, index_of)
            .map_err(|e| self.violation(format!("n{n}: {e}")))?;
        let accepted =
            oracle::compare(n, &self.nodes[n].summary, &summary).map_err(|e| self.violation(e))?;
        let evidence = self.nodes[n]
            .store
            .evidence()
            .map_err(|e| self.violation(format!("n{n} cannot read evidence: {e}")))?;
        if let Some(e) = evidence.first() {
            let peer = index_of(&e.peer).map_or_else(|| e.peer.to_string(), |i| format!("n{i}"));
            return Err(self.violation(format!(
                "n{n} recorded evidence against honest {peer}: {}",
                e.what
            )));
        }
        for (peer, asset) in accepted {
            let holder = summary
                .get(&(peer, asset.clone()))
                .cloned()
                .unwrap_or_default();
            let issuer = self.nodes[peer].summary.get(&(n, asset.clone())).cloned();
            let owed_back = issuer.as_ref().map_or(0, |l| l.in_owed);
            let issue = issuer.as_ref().map_or(0, |l| l.limits.issue.minor());
            // Both are a u128 cumulative total plus a sum of at most MAX_PENDING_PER_LINE u64
            // amounts; a run's turnover stays far below 2^126, so the difference fits an i128.
            let debt = holder.in_owed as i128 - owed_back as i128;
            let limit = issue.min(holder.limits.accept.minor());
            if debt > i128::from(limit) {
                return Err(self.violation(format!(
                    "n{n} accepted from n{peer} in {asset}: n{peer} now owes {debt}, over the effective \
                     limit {limit} (n{peer} issue {issue}, n{n} accept {})",
                    holder.limits.accept.minor()
                )));
            }
        }
        // The issuer's side of the limit rule: what it committed to owe (merged, accepted,
        // unanswered), net of what the peer owes it, stays within its issue limit. Limits only
        // go up and each term only moves the right way, so this holds after every commit.
        for ((peer, asset), line) in &summary {
            let committed = line.out_committed();
            let issue = line.limits.issue.minor();
            if committed > i128::from(issue) {
                return Err(self.violation(format!(
                    "n{n} has committed {committed} {asset} toward n{peer} (incl. {} unanswered), \
                     over its issue limit {issue}",
                    line.out_unanswered
                )));
            }
        }
        if let Some(ledger) = live {
            let restored = Ledger::restore(self.nodes[n].key.clone(), snapshot)
                .map_err(|e| self.violation(format!("n{n} cannot restore from its store: {e}")))?;
            if let Some(what) = differs(ledger, &restored) {
                return Err(self.violation(format!(
                    "n{n}'s memory differs from its store after a commit (persist before you speak): {what}"
                )));
            }
        }
        self.nodes[n].summary = summary;
        Ok(())
    }

    /// The end state: every pair agrees, nothing is pending, nets sum to zero, histories match.
    fn final_checks(&mut self) -> Result<(), Violation> {
        self.event("final checks".into());
        let count = self.nodes.len();
        let mut ledgers = Vec::with_capacity(count);
        for n in 0..count {
            match self.nodes[n].ledger.take() {
                Some(ledger) => ledgers.push(ledger),
                None => return Err(self.violation(format!("n{n} is down after settling"))),
            }
        }
        let result = self.check_end_state(&ledgers);
        for (node, ledger) in self.nodes.iter_mut().zip(ledgers) {
            node.ledger = Some(ledger);
        }
        result.map_err(|what| self.violation(what))
    }

    fn check_end_state(&mut self, ledgers: &[Ledger]) -> Result<(), String> {
        let count = ledgers.len();
        let keys: Vec<PublicKey> = self.nodes.iter().map(|node| node.pk.clone()).collect();
        // Per node, peer and asset: the net from the channel.
        let mut nets: BTreeMap<(usize, usize, Asset), i128> = BTreeMap::new();
        for asset in &self.assets {
            let mut sum: i128 = 0;
            for a in 0..count {
                for b in (0..count).filter(|b| *b != a) {
                    let Some(channel) = ledgers[a].channel(&keys[b], asset) else {
                        continue;
                    };
                    let view = channel
                        .view()
                        .ok_or_else(|| format!("n{a}'s {asset} channel with n{b} overflows"))?;
                    if !view.pending_out.is_zero() || !channel.out_conditionals().is_empty() {
                        return Err(format!(
                            "n{a} still has {} offers ({} unanswered) to n{b} in {asset}",
                            channel.out_conditionals().len(),
                            view.pending_out.minor()
                        ));
                    }
                    if !channel.in_conditionals().is_empty() {
                        return Err(format!(
                            "n{a} still holds {} unresolved IOUs of n{b} in {asset}",
                            channel.in_conditionals().len()
                        ));
                    }
                    sum += view.net;
                    nets.insert((a, b, asset.clone()), view.net);
                    match ledgers[b].channel(&keys[a], asset) {
                        Some(other) => agree(a, b, asset, channel, other)?,
                        None => {
                            if view.net != 0 || !view.out_total.is_zero() || view.in_seq != 0 {
                                return Err(format!(
                                    "n{a} has a {asset} position with n{b}, which has no line: net {}",
                                    view.net
                                ));
                            }
                        }
                    }
                }
            }
            if sum != 0 {
                return Err(format!("the nets in {asset} sum to {sum}, not zero"));
            }
        }

        let mut histories = Vec::with_capacity(count);
        for n in 0..count {
            histories.push(
                self.nodes[n]
                    .store
                    .history(usize::MAX)
                    .map_err(|e| format!("n{n}'s history: {e}"))?,
            );
        }
        let index_of = |pk: &PublicKey| keys.iter().position(|k| k == pk);
        // (payer, payment id) → the payer's record; (payee, payment id) → the payee's.
        let mut sent: BTreeMap<(usize, [u8; 32]), &PaymentRecord> = BTreeMap::new();
        let mut received: BTreeMap<(usize, [u8; 32]), &PaymentRecord> = BTreeMap::new();
        let mut from_history: BTreeMap<(usize, usize, Asset), i128> = BTreeMap::new();
        for (n, history) in histories.iter().enumerate() {
            for record in history {
                let peer = index_of(&record.peer).ok_or("a payment with a stranger")?;
                let amount = i128::from(record.amount.minor());
                let key = (n, peer, record.asset.clone());
                match (record.dir, &record.status) {
                    (Direction::Out, PaymentStatus::Pending) => {
                        return Err(format!(
                            "n{n}'s payment {} to n{peer} is still pending",
                            short_id(&record.payment_id)
                        ));
                    }
                    (Direction::Out, PaymentStatus::Completed) => {
                        *from_history.entry(key).or_default() -= amount;
                        self.report.payments_completed += 1;
                    }
                    (Direction::Out, PaymentStatus::Failed(_)) => self.report.payments_refused += 1,
                    (Direction::In, PaymentStatus::Completed) => {
                        *from_history.entry(key).or_default() += amount;
                    }
                    (Direction::In, status) => {
                        return Err(format!("n{n} received a payment in state {status:?}"));
                    }
                }
                let map = match record.dir {
                    Direction::Out => &mut sent,
                    Direction::In => &mut received,
                };
                if map.insert((n, record.payment_id), record).is_some() {
                    return Err(format!(
                        "n{n} has two history entries for payment {}",
                        short_id(&record.payment_id)
                    ));
                }
            }
        }
        for ((payer, pid), record) in &sent {
            let payee = index_of(&record.peer).ok_or("a payment to a stranger")?;
            let got = received.get(&(payee, *pid));
            match (&record.status, got) {
                (PaymentStatus::Completed, Some(r))
                    if r.amount == record.amount
                        && r.asset == record.asset
                        && index_of(&r.peer) == Some(*payer) => {}
                (PaymentStatus::Completed, _) => {
                    return Err(format!(
                        "n{payer}'s payment {} is completed but n{payee} has no matching receipt",
                        short_id(pid)
                    ));
                }
                (PaymentStatus::Failed(why), Some(_)) => {
                    return Err(format!(
                        "n{payer}'s payment {} failed ({why}) but n{payee} received it",
                        short_id(pid)
                    ));
                }
                _ => {}
            }
        }
        for ((payee, pid), record) in &received {
            let payer = index_of(&record.peer).ok_or("a payment from a stranger")?;
            match sent.get(&(payer, *pid)) {
                Some(r) if r.status == PaymentStatus::Completed => {}
                other => {
                    return Err(format!(
                        "n{payee} received payment {} that n{payer} records as {:?}",
                        short_id(pid),
                        other.map(|r| &r.status)
                    ));
                }
            }
        }
        for (pid, info) in &self.payments {
            if !sent.contains_key(&(info.payer, *pid)) {
                return Err(format!(
                    "n{}'s committed payment {} of {} {} to n{} vanished from its history",
                    info.payer,
                    short_id(pid),
                    info.amount,
                    info.asset,
                    info.payee
                ));
            }
        }
        for pid in &self.seen_completed {
            let info = self
                .payments
                .get(pid)
                .ok_or("a completed payment nobody offered")?;
            if !received.contains_key(&(info.payee, *pid)) {
                return Err(format!(
                    "n{} saw payment {} completed, but n{} has not received it",
                    info.payer,
                    short_id(pid),
                    info.payee
                ));
            }
        }
        for (key, net) in &nets {
            let expected = from_history.get(key).copied().unwrap_or(0);
            if *net != expected {
                let (a, b, asset) = key;
                return Err(format!(
                    "n{a}'s net toward n{b} in {asset} is {net}, but its history says {expected}"
                ));
            }
        }
        for (key, expected) in &from_history {
            if *expected != 0 && !nets.contains_key(key) {
                let (a, b, asset) = key;
                return Err(format!(
                    "n{a}'s history has {expected} {asset} with n{b} but no channel"
                ));
            }
        }
        Ok(())
    }

    fn index_of(&self, pk: &PublicKey) -> Option<usize> {
        self.nodes.iter().position(|node| node.pk == *pk)
    }

    fn event(&mut self, what: String) {
        self.trace.event(self.step, self.clock - START_TIME, &what);
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            seed: self.config.seed,
            step: self.step,
            what,
            trace: self.trace.lines(),
            replay: self.config.replay_hint(),
        }
    }
}

/// Unanswered offers of `ledger`, in a fixed order (the ledger iterates a hash map).
fn sorted_offers(ledger: &Ledger, sim: &Sim) -> Vec<(usize, Signed<ConditionalIou>)> {
    let mut offers: Vec<(usize, Signed<ConditionalIou>)> = ledger
        .unanswered_offers()
        .into_iter()
        .filter_map(|(pk, iou)| sim.index_of(&pk).map(|i| (i, iou)))
        .collect();
    offers.sort_by(|a, b| {
        (a.0, &a.1.body().line.asset, a.1.body().id).cmp(&(
            b.0,
            &b.1.body().line.asset,
            b.1.body().id,
        ))
    });
    offers
}

/// Everything a ledger's channels hold, in a fixed order (no decoding, so cheap).
#[allow(clippy::type_complexity)]
fn fingerprint(
    ledger: &Ledger,
) -> Vec<(
    [u8; 32],
    Asset,
    atomicity_core::Limits,
    u64,
    Option<Signed<IouState>>,
    Option<Signed<IouState>>,
    Vec<u64>,
    Vec<u64>,
)> {
    let mut all: Vec<_> = ledger
        .channels()
        .map(|c| {
            (
                *c.peer().as_bytes(),
                c.asset().clone(),
                c.limits,
                c.next_id(),
                c.out_state().cloned(),
                c.in_state().cloned(),
                c.out_conditionals()
                    .iter()
                    .map(|(id, o)| id * 2 + u64::from(o.answer.is_some()))
                    .collect(),
                c.in_conditionals().keys().copied().collect(),
            )
        })
        .collect();
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    all
}

/// The first difference between a running ledger and the one its store rebuilds.
fn differs(live: &Ledger, restored: &Ledger) -> Option<String> {
    if live.balances() != restored.balances() {
        return Some("balances".into());
    }
    let mut peers_live: Vec<[u8; 32]> = live.peers().map(|p| *p.key.as_bytes()).collect();
    let mut peers_restored: Vec<[u8; 32]> = restored.peers().map(|p| *p.key.as_bytes()).collect();
    peers_live.sort_unstable();
    peers_restored.sort_unstable();
    if peers_live != peers_restored {
        return Some("peers".into());
    }
    if live.channels().count() != restored.channels().count() {
        return Some("channel count".into());
    }
    for channel in live.channels() {
        let Some(other) = restored.channel(channel.peer(), channel.asset()) else {
            return Some(format!("{} channel missing", channel.asset()));
        };
        let same = channel.limits == other.limits
            && channel.next_id() == other.next_id()
            && channel.out_state() == other.out_state()
            && channel.in_state() == other.in_state()
            && channel.out_conditionals() == other.out_conditionals()
            && channel.in_conditionals() == other.in_conditionals();
        if !same {
            return Some(format!(
                "{} channel with {}",
                channel.asset(),
                channel.peer()
            ));
        }
    }
    None
}

/// Both ends of a channel hold the same states and mirrored nets.
fn agree(
    a: usize,
    b: usize,
    asset: &Asset,
    mine: &Channel,
    theirs: &Channel,
) -> Result<(), String> {
    if mine.out_state() != theirs.in_state() {
        let seq = |s: Option<&Signed<IouState>>| s.map_or(0, |s| s.body().seq);
        return Err(format!(
            "n{a}→n{b} {asset}: issuer's newest state is seq {}, holder holds seq {}",
            seq(mine.out_state()),
            seq(theirs.in_state())
        ));
    }
    let (Some(va), Some(vb)) = (mine.view(), theirs.view()) else {
        return Err(format!("n{a}/n{b} {asset}: a view overflows"));
    };
    if va.out_seq != vb.in_seq
        || va.out_total != vb.in_total
        || va.in_seq != vb.out_seq
        || va.in_total != vb.out_total
    {
        return Err(format!(
            "n{a}/n{b} {asset}: seqs or totals disagree: {va:?} vs {vb:?}"
        ));
    }
    if va.net != -vb.net {
        return Err(format!(
            "n{a}/n{b} {asset}: nets {} and {} do not mirror",
            va.net, vb.net
        ));
    }
    Ok(())
}

/// Short form of replies for the trace.
fn describe(replies: &[Reply]) -> String {
    let parts: Vec<String> = replies
        .iter()
        .map(|r| match r {
            Reply::Accepted(a) => format!("accepted {}", a.body().id),
            Reply::Released(r) => format!("released {} ({})", r.body().id, r.body().reason.code()),
            Reply::StateAck { seq } => format!("ack seq {seq}"),
            Reply::Ok => "ok".into(),
            Reply::Rejected { code, .. } => format!("rejected {code}"),
        })
        .collect();
    parts.join(", ")
}

/// The first four bytes of an id, in hex.
fn short_id(id: &[u8; 32]) -> String {
    id[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! The oracle must bite: each test breaks one invariant by hand and expects the check that
    //! guards it to report a violation.

    use atomicity_core::{EvidenceRecord, LineRecord};

    use super::*;
    use crate::Faults;

    fn stepped(seed: u64, steps: u64, faults: Faults) -> Sim {
        let mut sim = Sim::new(SimConfig {
            nodes: 3,
            assets: 1,
            faults,
            ..SimConfig::for_seed(seed)
        })
        .expect("valid config");
        for _ in 0..steps {
            sim.step().expect("no violation while stepping");
        }
        sim
    }

    /// A stored line on which `holder` holds a state of its peer with `in_owed > 0`.
    fn line_with_debt(sim: &Sim) -> Option<(usize, usize, Asset)> {
        sim.nodes.iter().enumerate().find_map(|(holder, node)| {
            node.summary
                .iter()
                .find(|(_, line)| line.in_seq > 0 && line.in_owed > 0)
                .map(|((peer, asset), _)| (holder, *peer, asset.clone()))
        })
    }

    fn stored_line(sim: &mut Sim, holder: usize, peer: usize, asset: &Asset) -> LineRecord {
        let pk = sim.nodes[peer].pk.clone();
        sim.nodes[holder]
            .store
            .load()
            .expect("load")
            .lines
            .into_iter()
            .find(|l| l.peer == pk && l.asset == *asset)
            .expect("the line is stored")
    }

    #[test]
    fn a_rolled_back_state_is_caught() {
        let mut sim = stepped(11, 150, Faults::none());
        let (holder, peer, asset) = line_with_debt(&sim).expect("some payment was merged");
        let mut line = stored_line(&mut sim, holder, peer, &asset);
        line.in_state = None;
        sim.nodes[holder]
            .store
            .commit(&[StoreOp::PutLine(line)])
            .expect("commit");
        let violation = sim
            .check_node(holder, None)
            .expect_err("rollback not caught");
        assert!(violation.what.contains("seq went down"), "{violation}");
        assert_eq!(violation.seed, 11);
        assert_eq!(violation.step, 150);
    }

    #[test]
    fn recorded_evidence_is_caught() {
        let mut sim = stepped(12, 10, Faults::none());
        let peer = sim.nodes[1].pk.clone();
        let evidence = EvidenceRecord {
            peer,
            what: "made up".into(),
            received: vec![1, 2, 3],
            at: sim.clock,
        };
        sim.nodes[0]
            .store
            .commit(&[StoreOp::PutEvidence(evidence)])
            .expect("commit");
        let violation = sim.check_node(0, None).expect_err("evidence not caught");
        assert!(
            violation.what.contains("evidence against honest n1"),
            "{violation}"
        );
    }

    #[test]
    fn memory_ahead_of_the_store_is_caught() {
        let mut sim = stepped(13, 10, Faults::none());
        let mut ledger = sim.nodes[0].ledger.take().expect("node 0 runs");
        let peer = sim.nodes[1].pk.clone();
        let asset = sim.assets[0].clone();
        let mut forgotten = Vec::new();
        ledger
            .set_limits(
                &peer,
                &asset,
                Some(Amount::from_minor(1_000_000)),
                None,
                &mut forgotten,
            )
            .expect("set limits");
        let violation = sim.check_node(0, Some(&ledger)).expect_err("not caught");
        assert!(
            violation.what.contains("persist before you speak"),
            "{violation}"
        );
    }

    #[test]
    fn debt_over_the_limit_is_caught() {
        let mut sim = stepped(14, 150, Faults::none());
        let (holder, peer, asset) = line_with_debt(&sim).expect("some payment was merged");
        // Pretend the issuer's limit was zero and the holder had accepted nothing before.
        if let Some(line) = sim.nodes[peer].summary.get_mut(&(holder, asset.clone())) {
            line.limits.issue = Amount::ZERO;
        }
        if let Some(line) = sim.nodes[holder].summary.get_mut(&(peer, asset.clone())) {
            line.in_owed = 0;
        }
        let violation = sim.check_node(holder, None).expect_err("not caught");
        assert!(
            violation.what.contains("over the effective limit"),
            "{violation}"
        );
    }

    #[test]
    fn an_offer_over_the_issue_limit_is_caught() {
        let mut sim = stepped(17, 5, Faults::none());
        let key = sim.nodes[0].key.clone();
        let (p, asset) = sim.nodes[0].summary.keys().next().cloned().expect("a line");
        let peer = sim.nodes[p].pk.clone();
        let line = stored_line(&mut sim, 0, p, &asset);
        let amount = line.limits.issue.minor() + 1_000_000;
        let iou = Signed::sign(
            ConditionalIou {
                line: atomicity_core::LineId {
                    issuer: key.public_key(),
                    holder: peer.clone(),
                    asset: asset.clone(),
                },
                id: 1_000,
                amount: Amount::from_minor(amount),
                condition: atomicity_core::Condition::HolderAccepts,
                payment_id: [9; 32],
                expires_at: sim.clock + 600,
                memo: String::new(),
            },
            &key,
        );
        let record = atomicity_core::ConditionalRecord {
            peer,
            asset,
            dir: Direction::Out,
            id: 1_000,
            iou: iou.to_bytes().into(),
            answer: None,
            onward: None,
            proof: None,
            claimed: false,
        };
        sim.nodes[0]
            .store
            .commit(&[StoreOp::PutConditional(record)])
            .expect("commit");
        let violation = sim.check_node(0, None).expect_err("not caught");
        assert!(
            violation.what.contains("over its issue limit"),
            "{violation}"
        );
    }

    #[test]
    fn a_forged_history_is_caught_at_the_end() {
        let mut sim = stepped(15, 150, Faults::none());
        sim.settle().expect("settles");
        let (payer, mut record) = sim
            .nodes
            .iter_mut()
            .enumerate()
            .find_map(|(n, node)| {
                let history = node.store.history(usize::MAX).expect("history");
                history
                    .into_iter()
                    .find(|r| r.dir == Direction::Out && r.status == PaymentStatus::Completed)
                    .map(|r| (n, r))
            })
            .expect("a completed payment");
        record.amount = Amount::from_minor(record.amount.minor() + 1);
        sim.nodes[payer]
            .store
            .commit(&[StoreOp::PutPayment(record)])
            .expect("commit");
        let violation = sim.final_checks().expect_err("not caught");
        assert!(
            violation.what.contains("no matching receipt"),
            "{violation}"
        );
    }

    #[test]
    fn a_line_left_disagreeing_is_caught_at_the_end() {
        let mut sim = stepped(16, 150, Faults::none());
        sim.settle().expect("settles");
        let (holder, peer, asset) = line_with_debt(&sim).expect("some payment was merged");
        let mut line = stored_line(&mut sim, holder, peer, &asset);
        line.in_state = None;
        sim.nodes[holder]
            .store
            .commit(&[StoreOp::PutLine(line)])
            .expect("commit");
        let snapshot = sim.nodes[holder].store.load().expect("load");
        let key = sim.nodes[holder].key.clone();
        sim.nodes[holder].ledger = Some(Ledger::restore(key, snapshot).expect("restore"));
        let violation = sim.final_checks().expect_err("not caught");
        let what = &violation.what;
        assert!(
            what.contains("holder holds seq 0") || what.contains("disagree"),
            "{violation}"
        );
    }

    #[test]
    fn assets_are_valid() {
        for code in ASSET_CODES {
            assert!(Asset::new(code, 2).is_ok(), "{code}");
        }
    }
}
