//! Routed payments under faults: many nodes on a simulated clock, a lossy and partitioned
//! network, crashes, and witness logs that go down or censor, driven by one `u64` seed.
//!
//! Each node is a real [`Ledger`] over its own [`MemoryStore`], run the way the node's ledger
//! actor runs it: a batch of inputs, `merge_states`, one commit, and only then the replies, the
//! new IOU states and the ledger's outgoing messages leave ("persist before you speak"). The
//! payees publish their secrets on real sans-I/O witness logs ([`Log`]) and prove it with real
//! proof bundles. Every invariant is checked after every commit; see [`run_routed`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use atomicity_core::channel::{InConditional, OutConditional};
use atomicity_core::message::MAX_MESSAGES;
use atomicity_core::{
    Amount, Asset, Channel, Direction, FeePolicy, HashlockRole, HashlockStatus, Hop, IouState,
    Keypair, Ledger, LedgerError, Limits, Message, NewHashlock, PaymentStatus, PublicKey,
    Publication, ReleaseReason, Reply, RoutePart, Signed, StoreOp, WitnessCondition, WitnessProof,
    WitnessTerms, decode_replies, encode_replies, payment_hash,
};
use atomicity_store::{MemoryStore, Store};
use atomicity_witness::log::Log;
use atomicity_witness::note::Signer;
use ed25519_dalek::SigningKey;

use crate::Violation;
use crate::rng::SimRng;
use crate::routed_check::{Answer, IouId, Outcome, Tracker, name, short};
use crate::trace::Trace;

/// Fewest nodes of a routed run.
pub const MIN_ROUTED_NODES: usize = 3;
/// Most nodes of a routed run (the checks after each commit cost little per node).
pub const MAX_ROUTED_NODES: usize = 64;
/// Most witness logs of a routed run.
pub const MAX_WITNESS_LOGS: usize = 4;

/// The simulated clock starts here (Unix seconds, November 2023).
const START_TIME: u64 = 1_700_000_000;
/// Block length of the witness logs.
const BLOCK_SECS: u64 = 10;
/// A payee gives up publishing a secret after this long (the node's `PUBLISH_TIMEOUT`).
const PUBLISH_TIMEOUT_SECS: u64 = 20;
/// An invoice's hard deadline is this many seconds after it is made (range)...
const TTL_SECS: (u64, u64) = (60, 120);
/// ...except for these payments per thousand, whose deadline races their forwards and claims.
const SHORT_TTL_PERMILLE: u32 = 50;
/// Their deadline (range).
const SHORT_TTL_SECS: (u64, u64) = (6, 20);
/// Each node's outbox resends every this many seconds (range)...
const RESEND_EVERY_SECS: (u64, u64) = (2, 4);
/// ...what it last sent at least this long ago (the node's `RETRY_AFTER_SECS`).
const RESEND_MIN_AGE_SECS: u64 = 3;
/// Longest route, in lines (payer to payee).
const MAX_ROUTE_EDGES: usize = 5;
/// Most packets one batch takes in while faults are on.
const MAX_PACKETS_PER_BATCH: usize = 8;
/// Payments whose amount is far over most lines' limits, per thousand.
const OVERSIZED_PERMILLE: u32 = 30;
/// Payments that underpay one hop's fee by one minor unit, per thousand.
const UNDERPAID_FEE_PERMILLE: u32 = 30;
/// Events kept for a violation when the whole trace is not kept.
const TRACE_TAIL: usize = 150;
/// Rejections an honest peer can cause: a state overtaken by a newer one (20) and an offer
/// resent after a state resolved it (32). Anything else means somebody misbehaved.
const BENIGN_CODES: [u16; 2] = [20, 32];
/// Settling gives up this long after the last deadline plus the grace.
const SETTLE_LIMIT_SECS: u64 = 900;

/// What goes wrong in a routed run: rates in parts per thousand, bounds in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedFaults {
    /// A sent envelope or reply is lost.
    pub drop_permille: u32,
    /// A sent envelope or reply arrives twice (each copy with its own delay).
    pub duplicate_permille: u32,
    /// Delays are uniform in `0..=max_delay_secs` (so messages overtake each other).
    pub max_delay_secs: u64,
    /// A node crashes after running a batch with changes but before committing it.
    pub crash_before_commit_permille: u32,
    /// A node crashes after committing a batch, before sending anything.
    pub crash_after_commit_permille: u32,
    /// A crashed node restarts from its store after `1..=max_downtime_secs`.
    pub max_downtime_secs: u64,
    /// Chance per simulated second that a partition starts (when none is on): a random cut of
    /// the nodes, across which everything is lost.
    pub partition_permille: u32,
    /// A partition heals after `5..=max_partition_secs`.
    pub max_partition_secs: u64,
    /// Chance per second that a working witness log goes down (submissions fail).
    pub witness_down_permille: u32,
    /// Chance per second that a working witness log starts censoring (refuses everything).
    pub witness_censor_permille: u32,
    /// A witness outage or censorship lasts `5..=max_witness_outage_secs`.
    pub max_witness_outage_secs: u64,
    /// Each node's clock is off by a fixed `-max_clock_skew_secs..=max_clock_skew_secs`.
    pub max_clock_skew_secs: u64,
}

impl RoutedFaults {
    /// The default for the seeded runs: every fault, often enough to matter.
    pub fn standard() -> RoutedFaults {
        RoutedFaults {
            drop_permille: 50,
            duplicate_permille: 30,
            max_delay_secs: 4,
            crash_before_commit_permille: 3,
            crash_after_commit_permille: 3,
            max_downtime_secs: 30,
            partition_permille: 10,
            max_partition_secs: 30,
            witness_down_permille: 6,
            witness_censor_permille: 4,
            max_witness_outage_secs: 40,
            max_clock_skew_secs: 2,
        }
    }

    /// A perfect network, processes that never crash, witnesses that never fail (delays of up
    /// to a second still reorder messages).
    pub fn none() -> RoutedFaults {
        RoutedFaults {
            drop_permille: 0,
            duplicate_permille: 0,
            max_delay_secs: 1,
            crash_before_commit_permille: 0,
            crash_after_commit_permille: 0,
            max_downtime_secs: 1,
            partition_permille: 0,
            max_partition_secs: 5,
            witness_down_permille: 0,
            witness_censor_permille: 0,
            max_witness_outage_secs: 5,
            max_clock_skew_secs: 0,
        }
    }

    /// Everything much more often than [`RoutedFaults::standard`].
    pub fn heavy() -> RoutedFaults {
        RoutedFaults {
            drop_permille: 150,
            duplicate_permille: 100,
            max_delay_secs: 8,
            crash_before_commit_permille: 10,
            crash_after_commit_permille: 10,
            max_downtime_secs: 40,
            partition_permille: 25,
            max_partition_secs: 40,
            witness_down_permille: 15,
            witness_censor_permille: 10,
            max_witness_outage_secs: 60,
            max_clock_skew_secs: 3,
        }
    }
}

impl Default for RoutedFaults {
    fn default() -> RoutedFaults {
        RoutedFaults::standard()
    }
}

/// One routed simulation run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedConfig {
    /// Fixes everything random in the run.
    pub seed: u64,
    /// How many nodes, [`MIN_ROUTED_NODES`]`..=`[`MAX_ROUTED_NODES`], on a connected random
    /// graph (a ring plus as many random chords).
    pub nodes: usize,
    /// How many payments the users start before the network is left to settle.
    pub payments: u64,
    /// How many witness logs, `1..=`[`MAX_WITNESS_LOGS`]; each invoice lists some of them.
    pub witnesses: usize,
    /// Every node's expiry grace ([`Ledger::set_expiry_grace`]): how long after a routed IOU's
    /// hard deadline its issuer waits for a late claim. Must exceed twice the longest a claim
    /// can be held up by one crash, one partition and one delay (see [`RoutedConfig::validate`]).
    pub expiry_grace_secs: u64,
    /// What goes wrong.
    pub faults: RoutedFaults,
    /// Keep every event in [`RoutedReport::trace`] (and in a [`Violation`]).
    pub keep_trace: bool,
}

impl RoutedConfig {
    /// The standard run for `seed`: 20 nodes, 1,000 payments, standard faults, a grace of
    /// 240 s, and one or two witness logs (the seed picks).
    pub fn for_seed(seed: u64) -> RoutedConfig {
        RoutedConfig {
            seed,
            nodes: 20,
            payments: 1000,
            witnesses: 1 + (seed % 2) as usize,
            expiry_grace_secs: 240,
            faults: RoutedFaults::standard(),
            keep_trace: false,
        }
    }

    /// The command that runs this configuration again: `ATOMICITY_SIM_SEED=N cargo test -p
    /// atomicity-sim --test routed_seeds -- --nocapture` for the standard one, with more
    /// variables when the node count, payment count, fault preset or strictness differ; a
    /// description when the configuration cannot be set from the environment.
    pub fn replay_hint(&self) -> String {
        let standard = RoutedConfig::for_seed(self.seed);
        let faults = if self.faults == RoutedFaults::standard() {
            Some("")
        } else if self.faults == RoutedFaults::heavy() {
            Some("ATOMICITY_SIM_FAULTS=heavy ")
        } else if self.faults == RoutedFaults::none() {
            Some("ATOMICITY_SIM_FAULTS=none ")
        } else {
            None
        };
        match faults {
            Some(faults)
                if self.witnesses == standard.witnesses
                    && self.expiry_grace_secs == standard.expiry_grace_secs =>
            {
                let mut env = format!("ATOMICITY_SIM_SEED={} ", self.seed);
                if self.nodes != standard.nodes {
                    env.push_str(&format!("ATOMICITY_SIM_NODES={} ", self.nodes));
                }
                if self.payments != standard.payments {
                    env.push_str(&format!("ATOMICITY_SIM_PAYMENTS={} ", self.payments));
                }
                env.push_str(faults);
                format!(
                    "{env}cargo test -p atomicity-sim --test routed_seeds -- --nocapture   (add \
                     ATOMICITY_SIM_TRACE=1 to print every event)"
                )
            }
            _ => format!(
                "seed {} with a non-standard configuration ({} nodes, {} payments, {} witnesses, \
                 grace {} s, faults {:?}): run_routed(RoutedConfig {{ keep_trace: true, .. }})",
                self.seed,
                self.nodes,
                self.payments,
                self.witnesses,
                self.expiry_grace_secs,
                self.faults
            ),
        }
    }

    /// Checks the ranges, and that the grace covers the faults: a claim made just before the
    /// deadline must reach its issuer within the grace even if a crash, a partition and a slow
    /// link all hold it up (past the grace the protocol's guarantee is evidence, not
    /// all-or-nothing, and this simulation checks all-or-nothing).
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_ROUTED_NODES..=MAX_ROUTED_NODES).contains(&self.nodes) {
            return Err(format!(
                "nodes must be {MIN_ROUTED_NODES}..={MAX_ROUTED_NODES}, got {}",
                self.nodes
            ));
        }
        if !(1..=MAX_WITNESS_LOGS).contains(&self.witnesses) {
            return Err(format!(
                "witnesses must be 1..={MAX_WITNESS_LOGS}, got {}",
                self.witnesses
            ));
        }
        let f = &self.faults;
        let held_up = f
            .max_downtime_secs
            .saturating_add(f.max_partition_secs)
            .saturating_add(f.max_delay_secs)
            .saturating_add(RESEND_EVERY_SECS.1 + RESEND_MIN_AGE_SECS)
            .saturating_add(f.max_clock_skew_secs.saturating_mul(2));
        if self.expiry_grace_secs < held_up.saturating_mul(2) {
            return Err(format!(
                "the expiry grace ({} s) must be at least twice the longest hold-up of a claim \
                 ({held_up} s: downtime + partition + delay + resend + skew)",
                self.expiry_grace_secs
            ));
        }
        Ok(())
    }
}

/// What a routed run did, when no invariant was violated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutedReport {
    /// The seed.
    pub seed: u64,
    /// Nodes simulated.
    pub nodes: usize,
    /// Lines between them (each a channel at both ends).
    pub lines: usize,
    /// Witness logs.
    pub witnesses: usize,
    /// Payments the users started.
    pub payments_attempted: u64,
    /// Invoices lost: the payee crashed before answering (or nobody was up).
    pub invoices_lost: u64,
    /// Payments for which the payer found no route.
    pub payments_no_route: u64,
    /// Payments the payer's own node refused (over its issue limit toward the first hop).
    pub payments_refused_locally: u64,
    /// Payments lost because the payer crashed before committing them.
    pub payments_lost_in_crash: u64,
    /// Payments committed by the payer and sent.
    pub payments_sent: u64,
    /// Parts of them (one routed IOU from the payer each).
    pub parts_sent: u64,
    /// Sent payments with a part over 2 hops or more.
    pub payments_multi_hop: u64,
    /// Sent payments split over several routes.
    pub payments_multi_part: u64,
    /// Sent payments far over most limits (meant to fail somewhere).
    pub planned_oversized: u64,
    /// Sent payments underpaying one hop's fee (meant to fail there).
    pub planned_fee_too_low: u64,
    /// Sent payments that completed: every IOU of them counted.
    pub payments_completed: u64,
    /// Sent payments that failed: no IOU of them counted.
    pub payments_failed: u64,
    /// Routed IOUs counted by their issuer's state.
    pub ious_counted: u64,
    /// Routed IOUs released (refused, or released early when the payment failed).
    pub ious_released: u64,
    /// Routed IOUs accepted and then dropped unclaimed after their deadline plus the grace.
    pub ious_expired: u64,
    /// Releases by reason.
    pub releases: BTreeMap<String, u64>,
    /// Envelopes and replies handed to the network.
    pub messages_sent: u64,
    /// Copies delivered to a running node.
    pub messages_delivered: u64,
    /// Lost by the network.
    pub messages_dropped: u64,
    /// Extra copies the network made.
    pub messages_duplicated: u64,
    /// Lost crossing a partition.
    pub messages_partitioned: u64,
    /// Arrived at a node that was down.
    pub messages_node_down: u64,
    /// Replies that came back after their sender had restarted.
    pub replies_orphaned: u64,
    /// Crashes before a commit.
    pub crashes_before_commit: u64,
    /// Crashes after a commit, before sending.
    pub crashes_after_commit: u64,
    /// Restarts from the store.
    pub restarts: u64,
    /// Partitions.
    pub partitions: u64,
    /// Witness outages.
    pub witness_outages: u64,
    /// Witness censorship periods.
    pub witness_censorships: u64,
    /// Secrets published (a proof bundle handed to the payee's ledger).
    pub publications: u64,
    /// Publication attempts that found the witness down.
    pub publish_attempts_down: u64,
    /// Publication attempts the witness refused (censored).
    pub publish_attempts_censored: u64,
    /// Secrets given up after the publish timeout (the payee released every part).
    pub publish_failed: u64,
    /// Node batches run.
    pub batches: u64,
    /// Batches that committed something (each followed by the checks).
    pub commits: u64,
    /// Simulated seconds from start to end.
    pub sim_seconds: u64,
    /// Of them, seconds spent settling without faults.
    pub settle_seconds: u64,
    /// Fingerprint of the event trace and every store's final contents.
    pub digest: u64,
    /// Every event, when [`RoutedConfig::keep_trace`] was set.
    pub trace: Vec<String>,
}

impl fmt::Display for RoutedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} nodes, {} lines, {} witnesses, {} s simulated ({} settling), {} batches, \
             {} commits",
            self.seed,
            self.nodes,
            self.lines,
            self.witnesses,
            self.sim_seconds,
            self.settle_seconds,
            self.batches,
            self.commits
        )?;
        writeln!(
            f,
            "payments: {} attempted, {} sent ({} parts, {} multi-hop, {} multi-part, {} oversized, \
             {} underpaying a fee), {} completed, {} failed; {} invoices lost, {} without route, \
             {} refused locally, {} lost in a crash",
            self.payments_attempted,
            self.payments_sent,
            self.parts_sent,
            self.payments_multi_hop,
            self.payments_multi_part,
            self.planned_oversized,
            self.planned_fee_too_low,
            self.payments_completed,
            self.payments_failed,
            self.invoices_lost,
            self.payments_no_route,
            self.payments_refused_locally,
            self.payments_lost_in_crash
        )?;
        writeln!(
            f,
            "IOUs: {} counted, {} released, {} expired; releases {:?}",
            self.ious_counted, self.ious_released, self.ious_expired, self.releases
        )?;
        writeln!(
            f,
            "messages: {} sent, {} delivered, {} dropped, {} duplicated, {} cut by partitions, {} \
             to a down node, {} orphaned replies",
            self.messages_sent,
            self.messages_delivered,
            self.messages_dropped,
            self.messages_duplicated,
            self.messages_partitioned,
            self.messages_node_down,
            self.replies_orphaned
        )?;
        writeln!(
            f,
            "faults: {} crashes before commit, {} after, {} restarts, {} partitions, {} witness \
             outages, {} censorships; publications: {} published, {} attempts on a down \
             witness, {} censored, {} given up",
            self.crashes_before_commit,
            self.crashes_after_commit,
            self.restarts,
            self.partitions,
            self.witness_outages,
            self.witness_censorships,
            self.publications,
            self.publish_attempts_down,
            self.publish_attempts_censored,
            self.publish_failed
        )?;
        write!(f, "digest {:016x}", self.digest)
    }
}

/// Runs one routed simulation: `config.payments` payments with faults, each batch of each node
/// followed by the checks, then settling without faults and the final checks.
///
/// Checked after every commit of a node, against what it committed:
/// * **hop safety**: for every forwarding link a hop committed, the IOU it issued downstream is
///   never counted while the IOU it accepted upstream is dropped (and vice versa);
/// * **all-or-nothing, as it happens**: no payment hash has both a counted and a dropped IOU;
/// * **limits**: on every channel of the node, `net + pending_in ≤ accept` (as holder) and
///   `−net + pending_out ≤ issue` (as issuer); limits never change during a run;
/// * **persist before you speak**: the ledger rebuilt from the store equals the one in memory;
/// * no evidence against an honest peer is recorded, no honest message is rejected (except
///   for lateness), no honest reply is refused, issuer and holder resolve each IOU alike;
/// * nothing panics.
///
/// Checked at the end, once every deadline plus the grace has passed and the network is quiet:
/// every IOU is resolved at both ends; every payment is all-or-nothing: all its IOUs counted
/// and the payee's invoice paid (with exactly the invoiced amount), or none counted and the
/// invoice failed; the payer's history agrees; both ends of every line hold the same states with
/// mirrored nets, nothing pending, nets summing to zero and equal to the counted IOUs.
pub fn run_routed(config: RoutedConfig) -> Result<RoutedReport, Violation> {
    let seed = config.seed;
    let replay = config.replay_hint();
    let sim = RoutedSim::new(config).map_err(|what| Violation {
        seed,
        step: 0,
        what: format!("invalid configuration: {what}"),
        trace: Vec::new(),
        replay,
    })?;
    sim.run_to_end()
}

/// What the sender of an envelope remembers about each message, to read the replies.
#[derive(Clone, Copy, Debug)]
enum Sent {
    /// An IOU state with this seq.
    State(u64),
    /// Anything else.
    Other,
}

#[derive(Clone, Debug)]
enum Packet {
    /// A sealed envelope from the sender's incarnation `epoch`.
    Envelope {
        bytes: Vec<u8>,
        epoch: u64,
        sent: Vec<Sent>,
    },
    /// Encoded replies to an envelope, for the incarnation that sent it.
    Replies {
        bytes: Vec<u8>,
        epoch: u64,
        sent: Vec<Sent>,
    },
}

/// A copy of a packet on the wire.
#[derive(Clone, Debug)]
struct InFlight {
    id: u64,
    at: u64,
    from: usize,
    to: usize,
    packet: Packet,
}

struct Node {
    key: Keypair,
    pk: PublicKey,
    store: MemoryStore,
    /// `None` while the node is down.
    ledger: Option<Ledger>,
    down_until: u64,
    /// Incarnation, bumped by every crash: replies to a dead process are dropped.
    epoch: u64,
    skew: i64,
    next_resend: u64,
    /// Newest IOU state per peer not acknowledged yet (the outbox; lost in a crash).
    unacked: BTreeMap<usize, Unacked>,
    /// Secrets being published, since when (the publisher's timeout; lost in a crash).
    publishing: BTreeMap<[u8; 32], u64>,
    /// Every channel as `Ledger::restore` rebuilds it from the store, kept up to date by
    /// restoring only the records each commit wrote (see [`RoutedSim::check_restore`]).
    shadow: BTreeMap<LineKey, Shadow>,
}

/// A state the outbox has not seen acknowledged, and when it last went out (`None`: not yet).
struct Unacked {
    state: Signed<IouState>,
    sent_at: Option<u64>,
}

/// A channel by peer key bytes and asset.
type LineKey = ([u8; 32], Asset);

/// One channel as `Ledger::restore` rebuilt it, piece by piece: the head from the line record,
/// each conditional IOU from its own record.
#[derive(Clone, Debug, Default)]
struct Shadow {
    head: Option<Head>,
    out: BTreeMap<u64, OutConditional>,
    inn: BTreeMap<u64, InConditional>,
}

/// What a channel takes from its line record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    limits: Limits,
    fees: FeePolicy,
    next_id: u64,
    out_state: Option<Signed<IouState>>,
    in_state: Option<Signed<IouState>>,
}

impl Head {
    fn of(channel: &Channel) -> Head {
        Head {
            limits: channel.limits,
            fees: channel.fees,
            next_id: channel.next_id(),
            out_state: channel.out_state().cloned(),
            in_state: channel.in_state().cloned(),
        }
    }
}

struct WitnessLog {
    log: Log,
    vkey: String,
    down_until: u64,
    censor_until: u64,
}

struct Partition {
    until: u64,
    side: Vec<bool>,
}

/// An invoice the simulation saw committed, and what the payer did with it.
#[derive(Clone, Debug)]
struct InvoiceInfo {
    payee: usize,
    amount: u64,
    /// Set once the payer committed its payment: (payer, payment id).
    paid_by: Option<(usize, [u8; 32])>,
}

/// A routed payment the payer's user asks for.
struct PayPlan {
    payee: usize,
    hash: [u8; 32],
    parts: Vec<RoutePart>,
    paths: Vec<Vec<usize>>,
    condition: WitnessCondition,
    expires_at: u64,
    payment_id: [u8; 32],
    oversized: bool,
    underpaid: bool,
}

/// One input of a node's batch.
enum Work {
    Packet(InFlight),
    /// The ledger's clock tick (expiries).
    Tick,
    /// The outbox: resend what the ledger lists (`min_age` 0 after a restart, with every
    /// newest state), and the states not acknowledged.
    Resend {
        min_age: u64,
        all_states: bool,
    },
    /// The payee's user makes an invoice.
    Invoice(Box<NewHashlock>),
    /// The payer's user pays it.
    Pay(Box<PayPlan>),
    /// The publisher got a proof.
    Published([u8; 32], Box<WitnessProof>),
    /// The publisher gave up.
    PublishFailed([u8; 32]),
}

/// What a batch does once committed.
#[derive(Default)]
struct Outgoing {
    replies: Vec<(usize, Vec<Reply>, u64, Vec<Sent>)>,
    acks: Vec<(usize, u64)>,
    resent: Vec<(usize, Message)>,
    /// Resend the states not acknowledged that went out at least this long ago.
    resend_states: Option<u64>,
    paid: Option<PayPlan>,
}

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Batch {
    Down,
    CrashedBeforeCommit,
    CrashedAfterCommit,
    Done,
}

pub(crate) struct RoutedSim {
    config: RoutedConfig,
    rng: SimRng,
    clock: u64,
    step: u64,
    faults_on: bool,
    asset: Asset,
    nodes: Vec<Node>,
    index: BTreeMap<[u8; 32], usize>,
    adj: Vec<Vec<usize>>,
    /// What `a` charges to forward to `b`.
    fees: BTreeMap<(usize, usize), FeePolicy>,
    witnesses: Vec<WitnessLog>,
    /// Packets in flight, by destination.
    net: Vec<Vec<InFlight>>,
    next_packet: u64,
    partition: Option<Partition>,
    invoices: BTreeMap<[u8; 32], InvoiceInfo>,
    /// The latest deadline of any invoice made, committed or not.
    last_deadline: u64,
    started: u64,
    tracker: Tracker,
    report: RoutedReport,
    trace: Trace,
}

impl RoutedSim {
    /// Sets up the nodes, the graph, the limits and fees, and the witness logs.
    pub(crate) fn new(config: RoutedConfig) -> Result<RoutedSim, String> {
        config.validate()?;
        let mut rng = SimRng::new(config.seed);
        let asset = Asset::new("USD", 2).map_err(|e| e.to_string())?;
        let max_skew = config.faults.max_clock_skew_secs;
        let count = config.nodes;
        let nodes: Vec<Node> = (0..count)
            .map(|_| {
                let key = Keypair::from_secret_key(&rng.bytes32());
                let skew = rng.range(0, max_skew.saturating_mul(2));
                let skew = i64::try_from(skew).unwrap_or(0) - i64::try_from(max_skew).unwrap_or(0);
                Node {
                    pk: key.public_key(),
                    key,
                    store: MemoryStore::new(),
                    ledger: None,
                    down_until: 0,
                    epoch: 0,
                    skew,
                    next_resend: START_TIME + rng.range(RESEND_EVERY_SECS.0, RESEND_EVERY_SECS.1),
                    unacked: BTreeMap::new(),
                    publishing: BTreeMap::new(),
                    shadow: BTreeMap::new(),
                }
            })
            .collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (*node.pk.as_bytes(), i))
            .collect();
        // A ring (connected) plus as many random chords: about four lines per node.
        let mut edges = BTreeSet::new();
        for a in 0..count {
            let b = (a + 1) % count;
            edges.insert((a.min(b), a.max(b)));
        }
        let mut tries = 0;
        let target = edges.len() + count;
        while edges.len() < target && tries < count * 50 {
            tries += 1;
            let (a, b) = (rng.index(count), rng.index(count));
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        }
        let mut adj = vec![Vec::new(); count];
        for (a, b) in &edges {
            adj[*a].push(*b);
            adj[*b].push(*a);
        }
        for list in &mut adj {
            list.sort_unstable();
        }
        let mut witnesses = Vec::new();
        for w in 0..config.witnesses {
            let origin = format!("witness{w}.sim/log");
            let signer = Signer::new(&origin, SigningKey::from_bytes(&rng.bytes32()))
                .map_err(|e| format!("witness key: {e}"))?;
            let vkey = signer.vkey();
            let log = Log::new(origin, signer, BLOCK_SECS, START_TIME)
                .map_err(|e| format!("witness log: {e}"))?;
            witnesses.push(WitnessLog {
                log,
                vkey,
                down_until: 0,
                censor_until: 0,
            });
        }
        let report = RoutedReport {
            seed: config.seed,
            nodes: count,
            lines: edges.len(),
            witnesses: config.witnesses,
            ..RoutedReport::default()
        };
        let keep_trace = config.keep_trace;
        let mut sim = RoutedSim {
            config,
            rng,
            clock: START_TIME,
            step: 0,
            faults_on: true,
            asset,
            nodes,
            index,
            adj,
            fees: BTreeMap::new(),
            witnesses,
            net: (0..count).map(|_| Vec::new()).collect(),
            next_packet: 0,
            partition: None,
            invoices: BTreeMap::new(),
            last_deadline: START_TIME,
            started: 0,
            tracker: Tracker::default(),
            report,
            trace: Trace::new(TRACE_TAIL, keep_trace),
        };
        sim.setup().map_err(|v| v.what)?;
        Ok(sim)
    }

    /// Each node: its neighbours as peers, random limits both ways, random fee policies.
    fn setup(&mut self) -> Result<(), Violation> {
        for n in 0..self.nodes.len() {
            let mut ledger = Ledger::new(self.nodes[n].key.clone());
            ledger.set_expiry_grace(self.config.expiry_grace_secs);
            ledger.set_batch_signing(true);
            let mut ops = Vec::new();
            for p in self.adj[n].clone() {
                let pk = self.nodes[p].pk.clone();
                ledger
                    .add_peer(pk.clone(), None, &mut ops)
                    .map_err(|e| self.violation(format!("n{n} cannot add n{p}: {e}")))?;
                let accept = Amount::from_minor(self.random_limit());
                let issue = Amount::from_minor(self.random_limit());
                ledger
                    .set_limits(&pk, &self.asset, Some(accept), Some(issue), &mut ops)
                    .map_err(|e| self.violation(format!("n{n} cannot set limits: {e}")))?;
                let fees = FeePolicy {
                    base: Amount::from_minor(self.rng.range(0, 30)),
                    ppm: if self.rng.chance(300) {
                        0
                    } else {
                        u32::try_from(self.rng.range(100, 20_000)).unwrap_or(0)
                    },
                };
                ledger
                    .set_fees(&pk, &self.asset, fees, &mut ops)
                    .map_err(|e| self.violation(format!("n{n} cannot set fees: {e}")))?;
                self.fees.insert((n, p), fees);
                self.event(format!(
                    "n{n}–n{p}: accept {} issue {}, fee {} + {} ppm",
                    accept.minor(),
                    issue.minor(),
                    fees.base.minor(),
                    fees.ppm
                ));
            }
            self.nodes[n]
                .store
                .commit(&ops)
                .map_err(|e| self.violation(format!("n{n}'s store refused the setup: {e}")))?;
            self.check_commit(n, &ops, &ledger)?;
            self.nodes[n].ledger = Some(ledger);
        }
        Ok(())
    }

    /// Most limits are large; some are small enough that payments fail on them.
    fn random_limit(&mut self) -> u64 {
        if self.rng.chance(150) {
            self.rng.range(2_000, 20_000)
        } else {
            self.rng.range(50_000, 300_000)
        }
    }

    fn run_to_end(mut self) -> Result<RoutedReport, Violation> {
        while self.started < self.config.payments {
            self.guarded(RoutedSim::step)?;
        }
        self.guarded(RoutedSim::settle)?;
        self.guarded(RoutedSim::final_checks)?;
        let mut digest = self.trace.digest();
        for node in &mut self.nodes {
            let snapshot = node.store.load();
            let history = node.store.history(usize::MAX);
            digest.write(format!("{snapshot:?}{history:?}").as_bytes());
        }
        self.report.sim_seconds = self.clock - START_TIME;
        self.report.digest = digest.value();
        self.report.trace = self.trace.take_all();
        Ok(self.report)
    }

    /// Runs `f`, turning a panic into a violation.
    fn guarded(&mut self, f: fn(&mut RoutedSim) -> Result<(), Violation>) -> Result<(), Violation> {
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

    /// One simulated second: faults come and go, crashed nodes restart, the users start new
    /// payments, then every running node (in a random order) runs one batch with what arrived
    /// for it, its clock tick and (when due) its outbox's resends, and publishes what it must.
    fn step(&mut self) -> Result<(), Violation> {
        self.step += 1;
        self.clock += 1;
        if self.faults_on {
            self.faults_come_and_go();
        } else if self.partition.take().is_some() {
            self.event("the partition heals (faults off)".into());
        }
        if let Some(p) = &self.partition
            && p.until <= self.clock
        {
            self.partition = None;
            self.event("the partition heals".into());
        }
        let clock = self.clock;
        for w in &mut self.witnesses {
            w.log.tick(clock);
        }
        for n in 0..self.nodes.len() {
            if self.nodes[n].ledger.is_none() && self.nodes[n].down_until <= self.clock {
                self.restart(n)?;
            }
        }
        if self.faults_on && self.started < self.config.payments {
            let new = match self.rng.below(10) {
                0..=2 => 0,
                3..=7 => 1,
                _ => 2,
            };
            for _ in 0..new {
                if self.started < self.config.payments {
                    self.start_payment()?;
                }
            }
        }
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        self.rng.shuffle(&mut order);
        for n in order {
            if self.nodes[n].ledger.is_none() {
                self.drop_arrivals_at_down_node(n);
                continue;
            }
            let cap = self.faults_on.then_some(MAX_PACKETS_PER_BATCH);
            let mut work: Vec<Work> = self
                .due_packets(n, cap)
                .into_iter()
                .map(Work::Packet)
                .collect();
            work.push(Work::Tick);
            if self.nodes[n].next_resend <= self.clock {
                self.nodes[n].next_resend =
                    self.clock + self.rng.range(RESEND_EVERY_SECS.0, RESEND_EVERY_SECS.1);
                work.push(Work::Resend {
                    min_age: RESEND_MIN_AGE_SECS,
                    all_states: false,
                });
            }
            self.batch(n, work)?;
            self.publish_pass(n)?;
        }
        Ok(())
    }

    /// Partitions start and heal; witnesses go down, censor, and come back.
    fn faults_come_and_go(&mut self) {
        let f = self.config.faults.clone();
        if self.partition.is_none() && self.rng.chance(f.partition_permille) {
            let count = self.nodes.len();
            let mut side: Vec<bool> = (0..count).map(|_| self.rng.chance(500)).collect();
            if side.iter().all(|s| *s) || side.iter().all(|s| !*s) {
                let i = self.rng.index(count);
                side[i] = !side[i];
            }
            let lasts = self.rng.range(5, f.max_partition_secs.max(5));
            let cut: Vec<String> = (0..count)
                .filter(|i| side[*i])
                .map(|i| format!("n{i}"))
                .collect();
            self.event(format!(
                "PARTITION for {lasts} s: {{{}}} | the rest",
                cut.join(" ")
            ));
            self.report.partitions += 1;
            self.partition = Some(Partition {
                until: self.clock + lasts,
                side,
            });
        }
        for w in 0..self.witnesses.len() {
            let clock = self.clock;
            let working =
                self.witnesses[w].down_until <= clock && self.witnesses[w].censor_until <= clock;
            if !working {
                continue;
            }
            if self.rng.chance(f.witness_down_permille) {
                let lasts = self.rng.range(5, f.max_witness_outage_secs.max(5));
                self.witnesses[w].down_until = clock + lasts;
                self.report.witness_outages += 1;
                self.event(format!("witness w{w} DOWN for {lasts} s"));
            } else if self.rng.chance(f.witness_censor_permille) {
                let lasts = self.rng.range(5, f.max_witness_outage_secs.max(5));
                self.witnesses[w].censor_until = clock + lasts;
                self.report.witness_censorships += 1;
                self.event(format!("witness w{w} CENSORS for {lasts} s"));
            }
        }
    }

    /// The node's own clock.
    fn now_of(&self, n: usize) -> u64 {
        self.clock.saturating_add_signed(self.nodes[n].skew)
    }

    fn index_of(&self, pk: &PublicKey) -> Option<usize> {
        self.index.get(pk.as_bytes()).copied()
    }

    /// Packets due at `n` now, in a random order (at most `cap`; the rest wait). Those that
    /// cross the partition are lost.
    fn due_packets(&mut self, n: usize, cap: Option<usize>) -> Vec<InFlight> {
        let clock = self.clock;
        let queue = std::mem::take(&mut self.net[n]);
        let (due, rest): (Vec<InFlight>, Vec<InFlight>) =
            queue.into_iter().partition(|p| p.at <= clock);
        self.net[n] = rest;
        let mut kept = Vec::with_capacity(due.len());
        for p in due {
            let cut = self
                .partition
                .as_ref()
                .is_some_and(|part| part.side[p.from] != part.side[p.to]);
            if cut {
                self.report.messages_partitioned += 1;
                self.event(format!(
                    "#{} n{}→n{} cut by the partition",
                    p.id, p.from, p.to
                ));
            } else {
                kept.push(p);
            }
        }
        self.rng.shuffle(&mut kept);
        if let Some(cap) = cap
            && kept.len() > cap
        {
            let later = kept.split_off(cap);
            self.net[n].extend(later);
        }
        kept
    }

    /// What arrives at a node that is down is lost (connection refused).
    fn drop_arrivals_at_down_node(&mut self, n: usize) {
        let clock = self.clock;
        let queue = std::mem::take(&mut self.net[n]);
        let (due, rest): (Vec<InFlight>, Vec<InFlight>) =
            queue.into_iter().partition(|p| p.at <= clock);
        self.net[n] = rest;
        for p in due {
            self.report.messages_node_down += 1;
            self.event(format!(
                "#{} n{}→n{} lost: n{n} is down",
                p.id, p.from, p.to
            ));
        }
    }

    /// One batch of node `n`, as the ledger actor runs it: every input through the ledger,
    /// `merge_states`, one commit (then the checks), and only then the replies, states and
    /// messages go out. A fault may crash the node before or after the commit.
    fn batch(&mut self, n: usize, work: Vec<Work>) -> Result<Batch, Violation> {
        let Some(mut ledger) = self.nodes[n].ledger.take() else {
            for w in work {
                if let Work::Packet(p) = w {
                    self.report.messages_node_down += 1;
                    self.event(format!("#{} lost: n{n} is down", p.id));
                }
            }
            return Ok(Batch::Down);
        };
        self.report.batches += 1;
        let now = self.now_of(n);
        let mut ops = Vec::new();
        let mut out = Outgoing::default();
        for w in work {
            match w {
                Work::Packet(p) => self.receive(n, &mut ledger, now, p, &mut ops, &mut out)?,
                Work::Tick => ledger.tick(now, &mut ops),
                Work::Resend {
                    min_age,
                    all_states,
                } => {
                    let resent = ledger.resend_messages(now, min_age);
                    // Sorted by their bytes, so signed first.
                    ledger.sign_batch();
                    out.resent.extend(self.sorted_messages(resent));
                    if all_states {
                        for (pk, state) in ledger.latest_out_states() {
                            if let Some(peer) = self.index_of(&pk) {
                                let sent_at = None;
                                self.nodes[n]
                                    .unacked
                                    .insert(peer, Unacked { state, sent_at });
                            }
                        }
                    }
                    out.resend_states = Some(min_age);
                }
                Work::Invoice(new) => {
                    ledger
                        .add_hashlock(*new, now, &mut ops)
                        .map_err(|e| self.violation(format!("n{n} cannot make an invoice: {e}")))?;
                }
                Work::Pay(plan) => self.pay(n, &mut ledger, now, *plan, &mut ops, &mut out)?,
                Work::Published(hash, proof) => {
                    ledger
                        .published(&hash, *proof, now, &mut ops)
                        .map_err(|e| {
                            self.violation(format!(
                                "n{n} refused a proof for {} that verified: {e}",
                                short(&hash)
                            ))
                        })?;
                    self.event(format!("n{n} learns its proof for {}", short(&hash)));
                }
                Work::PublishFailed(hash) => {
                    ledger.publish_failed(&hash, now, &mut ops);
                    self.event(format!(
                        "n{n} gives up publishing {}: releases its parts",
                        short(&hash)
                    ));
                }
            }
        }
        let mut states: Vec<(usize, Signed<IouState>)> = Vec::new();
        for (pk, state) in ledger.merge_states(now, &mut ops) {
            let peer = self
                .index_of(&pk)
                .ok_or_else(|| self.violation(format!("n{n} signed a state for a stranger")))?;
            states.push((peer, state));
        }
        states.sort_by_key(|(peer, _)| *peer);
        // As the node's actor does: one signature over the batch, before the commit.
        ledger.sign_batch();
        let messages = self.sorted_messages(ledger.take_outgoing());
        let f = &self.config.faults;
        let (before, after) = (
            u64::from(f.crash_before_commit_permille),
            u64::from(f.crash_after_commit_permille),
        );
        let roll = if self.faults_on && !ops.is_empty() {
            self.rng.below(1000)
        } else {
            u64::MAX
        };
        if roll < before {
            self.report.crashes_before_commit += 1;
            if out.paid.is_some() {
                self.report.payments_lost_in_crash += 1;
            }
            self.crash(n, "before committing", ops.len());
            return Ok(Batch::CrashedBeforeCommit);
        }
        if !ops.is_empty() {
            self.nodes[n]
                .store
                .commit(&ops)
                .map_err(|e| self.violation(format!("n{n}'s store refused a batch: {e}")))?;
            self.report.commits += 1;
            self.check_commit(n, &ops, &ledger)?;
        }
        if let Some(plan) = out.paid.take() {
            self.payment_committed(n, &plan);
        }
        if roll < before + after {
            self.report.crashes_after_commit += 1;
            self.crash(n, "after committing, before sending", ops.len());
            return Ok(Batch::CrashedAfterCommit);
        }

        // Persisted: now speak.
        for (to, replies, epoch, sent) in std::mem::take(&mut out.replies) {
            let bytes = encode_replies(&replies);
            self.send(n, to, Packet::Replies { bytes, epoch, sent });
        }
        for (peer, seq) in &out.acks {
            if self.nodes[n]
                .unacked
                .get(peer)
                .is_some_and(|u| u.state.body().seq <= *seq)
            {
                self.nodes[n].unacked.remove(peer);
            }
        }
        let mut to_send: Vec<(usize, Message, Sent)> = messages
            .into_iter()
            .chain(std::mem::take(&mut out.resent))
            .map(|(peer, m)| (peer, m, Sent::Other))
            .collect();
        for (peer, state) in states {
            self.event(format!(
                "n{n} signs a state for n{peer}: seq {} total {}",
                state.body().seq,
                state.body().total.minor()
            ));
            let sent_at = None;
            self.nodes[n]
                .unacked
                .insert(peer, Unacked { state, sent_at });
        }
        // New states go out at once; the others again once they have waited `min_age`.
        let clock = self.clock;
        let min_age = out.resend_states.unwrap_or(u64::MAX);
        for (peer, unacked) in &mut self.nodes[n].unacked {
            let due = unacked
                .sent_at
                .is_none_or(|at| clock.saturating_sub(at) >= min_age);
            if due {
                unacked.sent_at = Some(clock);
                let seq = unacked.state.body().seq;
                to_send.push((
                    *peer,
                    Message::State(unacked.state.clone()),
                    Sent::State(seq),
                ));
            }
        }
        self.send_all(n, &ledger, to_send, now);
        self.nodes[n].ledger = Some(ledger);
        Ok(Batch::Done)
    }

    /// Messages the ledger lists, by peer index, in a fixed order (the ledger iterates hash
    /// maps, so its own order is not reproducible).
    fn sorted_messages(&self, messages: Vec<(PublicKey, Message)>) -> Vec<(usize, Message)> {
        let mut keyed: Vec<(usize, u8, Vec<u8>, Message)> = messages
            .into_iter()
            .filter_map(|(pk, m)| {
                let peer = self.index_of(&pk)?;
                Some((peer, rank(&m), m.object_bytes(), m))
            })
            .collect();
        keyed.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        keyed.into_iter().map(|(p, _, _, m)| (p, m)).collect()
    }

    /// The payer's user pays: `pay_routed` with the planned routes.
    fn pay(
        &mut self,
        n: usize,
        ledger: &mut Ledger,
        now: u64,
        plan: PayPlan,
        ops: &mut Vec<StoreOp>,
        out: &mut Outgoing,
    ) -> Result<(), Violation> {
        let payee = self.nodes[plan.payee].pk.clone();
        let routes: Vec<String> = plan
            .paths
            .iter()
            .zip(&plan.parts)
            .map(|(path, part)| {
                let hops: Vec<String> = path
                    .iter()
                    .skip(1)
                    .zip(&part.hops)
                    .map(|(node, hop)| format!("n{node}:{}", hop.amount.minor()))
                    .collect();
                hops.join(">")
            })
            .collect();
        match ledger.pay_routed(
            &payee,
            &self.asset,
            plan.parts.clone(),
            plan.condition.clone(),
            plan.expires_at,
            plan.payment_id,
            String::new(),
            None,
            now,
            ops,
        ) {
            Ok(_) => {
                self.event(format!(
                    "n{n} pays {} to n{}: {}{}{}",
                    short(&plan.hash),
                    plan.payee,
                    routes.join(" + "),
                    if plan.oversized { " (oversized)" } else { "" },
                    if plan.underpaid {
                        " (underpays a fee)"
                    } else {
                        ""
                    }
                ));
                out.paid = Some(plan);
            }
            // Over the payer's issue limit toward a first hop, or (with clock skew and a short
            // deadline) an invoice already expired by the payer's clock.
            Err(e @ (LedgerError::OverIssueLimit { .. } | LedgerError::Offer(_))) => {
                self.report.payments_refused_locally += 1;
                self.event(format!(
                    "n{n} cannot pay {} ({}): {e}",
                    short(&plan.hash),
                    routes.join(" + ")
                ));
            }
            Err(e @ LedgerError::BadCondition(_)) if plan.expires_at <= now => {
                self.report.payments_refused_locally += 1;
                self.event(format!(
                    "n{n} cannot pay {} ({}): {e}",
                    short(&plan.hash),
                    routes.join(" + ")
                ));
            }
            Err(e) => {
                return Err(self.violation(format!(
                    "n{n} refused a well-formed routed payment {} ({}): {e}",
                    short(&plan.hash),
                    routes.join(" + ")
                )));
            }
        }
        Ok(())
    }

    fn payment_committed(&mut self, payer: usize, plan: &PayPlan) {
        self.report.payments_sent += 1;
        self.report.parts_sent += plan.parts.len() as u64;
        if plan.parts.len() > 1 {
            self.report.payments_multi_part += 1;
        }
        if plan.parts.iter().any(|p| p.hops.len() > 1) {
            self.report.payments_multi_hop += 1;
        }
        if plan.oversized {
            self.report.planned_oversized += 1;
        }
        if plan.underpaid {
            self.report.planned_fee_too_low += 1;
        }
        if let Some(invoice) = self.invoices.get_mut(&plan.hash) {
            invoice.paid_by = Some((payer, plan.payment_id));
        }
    }

    fn crash(&mut self, n: usize, when: &str, ops: usize) {
        let node = &mut self.nodes[n];
        node.epoch += 1;
        node.unacked.clear();
        node.publishing.clear();
        node.ledger = None;
        let down = self
            .rng
            .range(1, self.config.faults.max_downtime_secs.max(1));
        self.nodes[n].down_until = self.clock + down;
        self.event(format!("n{n} CRASHES {when} ({ops} ops), down {down} s"));
    }

    /// Restarts a node from its store: the same grace, then a batch that ticks and resends
    /// everything (every unanswered offer, release, claim and reveal, and every newest state).
    fn restart(&mut self, n: usize) -> Result<(), Violation> {
        let snapshot = self.nodes[n]
            .store
            .load()
            .map_err(|e| self.violation(format!("n{n} cannot load its store: {e}")))?;
        let mut ledger = Ledger::restore(self.nodes[n].key.clone(), snapshot)
            .map_err(|e| self.violation(format!("n{n} cannot restore its ledger: {e}")))?;
        ledger.set_expiry_grace(self.config.expiry_grace_secs);
        ledger.set_batch_signing(true);
        self.nodes[n].ledger = Some(ledger);
        self.report.restarts += 1;
        self.event(format!("n{n} restarts"));
        self.batch(
            n,
            vec![
                Work::Tick,
                Work::Resend {
                    min_age: 0,
                    all_states: true,
                },
            ],
        )?;
        self.publish_pass(n)
    }

    /// A new payment: the payee's user makes an invoice (a batch of the payee), then the
    /// payer's user routes it (a batch of the payer).
    fn start_payment(&mut self) -> Result<(), Violation> {
        self.started += 1;
        self.report.payments_attempted += 1;
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].ledger.is_some())
            .collect();
        if up.len() < 2 {
            self.report.invoices_lost += 1;
            return Ok(());
        }
        let payee = up[self.rng.index(up.len())];
        let others: Vec<usize> = up.iter().copied().filter(|n| *n != payee).collect();
        let payer = others[self.rng.index(others.len())];
        let oversized = self.rng.chance(OVERSIZED_PERMILLE);
        let amount = if oversized {
            self.rng.range(60_000, 400_000)
        } else {
            self.rng.range(100, 10_000)
        };
        let ttl = if self.rng.chance(SHORT_TTL_PERMILLE) {
            self.rng.range(SHORT_TTL_SECS.0, SHORT_TTL_SECS.1)
        } else {
            self.rng.range(TTL_SECS.0, TTL_SECS.1)
        };
        let expires_at = self.now_of(payee) + ttl;
        self.last_deadline = self.last_deadline.max(expires_at);
        let mut listed: Vec<usize> = (0..self.witnesses.len())
            .filter(|_| self.rng.chance(700))
            .collect();
        if listed.is_empty() {
            listed.push(self.rng.index(self.witnesses.len()));
        }
        // Blocks start lazily, so block numbers grow no faster than one per BLOCK_SECS: the
        // window covers the whole time to the deadline.
        let span = ttl / BLOCK_SECS + 4;
        let witnesses: Vec<WitnessTerms> = listed
            .iter()
            .map(|w| {
                let block = self.witnesses[*w].log.block();
                WitnessTerms::new(self.witnesses[*w].vkey.clone(), block, block + span)
            })
            .collect();
        let p = self.rng.bytes32();
        let hash = payment_hash(&p);
        let condition = WitnessCondition { hash, witnesses };
        let invoice = NewHashlock {
            p,
            role: HashlockRole::Payee,
            payee: self.nodes[payee].pk.clone(),
            asset: self.asset.clone(),
            amount: Amount::from_minor(amount),
            condition: condition.clone(),
            expires_at,
            memo: String::new(),
        };
        self.event(format!(
            "n{payee} invoices {amount} as {} for n{payer} (deadline in {ttl} s, witnesses {listed:?})",
            short(&hash)
        ));
        if self.batch(payee, vec![Work::Invoice(Box::new(invoice))])? != Batch::Done {
            // The user never got the invoice (it may still be stored: it expires unpaid).
            self.report.invoices_lost += 1;
            return Ok(());
        }
        self.invoices.insert(
            hash,
            InvoiceInfo {
                payee,
                amount,
                paid_by: None,
            },
        );
        let Some(plan) = self.plan(payer, payee, amount, hash, condition, expires_at, oversized)
        else {
            self.report.payments_no_route += 1;
            self.event(format!("n{payer} finds no route to n{payee}"));
            return Ok(());
        };
        self.batch(payer, vec![Work::Pay(Box::new(plan))])?;
        Ok(())
    }

    /// Splits the amount over one to three routes (simple paths of at most
    /// [`MAX_ROUTE_EDGES`] lines, not through the payer) and computes each hop's amount
    /// backward from the fee policies. Sometimes one hop's fee is underpaid by one unit.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        payer: usize,
        payee: usize,
        amount: u64,
        hash: [u8; 32],
        condition: WitnessCondition,
        expires_at: u64,
        oversized: bool,
    ) -> Option<PayPlan> {
        let dist = self.distances(payee, payer);
        let mut count = match self.rng.below(100) {
            0..=59 => 1,
            60..=84 => 2,
            _ => 3,
        };
        if amount < count {
            count = 1;
        }
        let mut cuts: Vec<u64> = (1..count).map(|_| self.rng.range(1, amount - 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut shares = Vec::new();
        let mut last = 0;
        for cut in cuts.into_iter().chain([amount]) {
            shares.push(cut - last);
            last = cut;
        }
        let mut paths = Vec::new();
        for _ in &shares {
            paths.push(self.route(payer, payee, &dist)?);
        }
        let mut parts: Vec<Vec<u64>> = Vec::new();
        for (path, share) in paths.iter().zip(&shares) {
            parts.push(self.hop_amounts(path, *share)?);
        }
        let mut underpaid = false;
        if self.rng.chance(UNDERPAID_FEE_PERMILLE) {
            // A hop j (not the payee) whose fee is positive gets one unit less than it needs.
            let candidates: Vec<(usize, usize)> = parts
                .iter()
                .enumerate()
                .flat_map(|(i, a)| {
                    (1..a.len().saturating_sub(1))
                        .filter(move |j| a[*j] > a[*j + 1])
                        .map(move |j| (i, j))
                })
                .collect();
            if !candidates.is_empty() {
                let (i, j) = candidates[self.rng.index(candidates.len())];
                parts[i][j] -= 1;
                // The hops before it need correspondingly less.
                for k in (1..j).rev() {
                    let fee = self.fees.get(&(paths[i][k], paths[i][k + 1])).copied()?;
                    parts[i][k] = fee
                        .amount_to_receive(Amount::from_minor(parts[i][k + 1]))?
                        .minor();
                }
                underpaid = true;
            }
        }
        let route_parts = paths
            .iter()
            .zip(&parts)
            .map(|(path, amounts)| RoutePart {
                hops: (1..path.len())
                    .map(|j| Hop {
                        next: self.nodes[path[j]].pk.clone(),
                        amount: Amount::from_minor(amounts[j]),
                    })
                    .collect(),
            })
            .collect();
        Some(PayPlan {
            payee,
            hash,
            parts: route_parts,
            paths,
            condition,
            expires_at,
            payment_id: self.rng.bytes32(),
            oversized,
            underpaid,
        })
    }

    /// `amounts[j]` is what node `path[j]` must receive (index 0 unused: the payer).
    fn hop_amounts(&self, path: &[usize], share: u64) -> Option<Vec<u64>> {
        let m = path.len() - 1;
        let mut amounts = vec![0u64; m + 1];
        amounts[m] = share;
        for j in (1..m).rev() {
            let fee = self.fees.get(&(path[j], path[j + 1])).copied()?;
            amounts[j] = fee
                .amount_to_receive(Amount::from_minor(amounts[j + 1]))?
                .minor();
        }
        Some(amounts)
    }

    /// Lines from each node to `target`, not passing through `avoid`.
    fn distances(&self, target: usize, avoid: usize) -> Vec<Option<usize>> {
        let mut dist = vec![None; self.nodes.len()];
        dist[target] = Some(0);
        let mut queue = VecDeque::from([target]);
        while let Some(u) = queue.pop_front() {
            let d = dist[u].unwrap_or(0);
            for v in &self.adj[u] {
                if *v != avoid && dist[*v].is_none() {
                    dist[*v] = Some(d + 1);
                    queue.push_back(*v);
                }
            }
        }
        dist
    }

    /// A random simple path from `payer` to `payee` of at most [`MAX_ROUTE_EDGES`] lines: a
    /// few random walks that can still reach the payee in time, else a shortest path.
    fn route(&mut self, payer: usize, payee: usize, dist: &[Option<usize>]) -> Option<Vec<usize>> {
        let reachable = self.adj[payer]
            .iter()
            .filter_map(|v| dist[*v])
            .min()
            .is_some_and(|d| d < MAX_ROUTE_EDGES);
        if !reachable {
            return None;
        }
        'walk: for _ in 0..4 {
            let mut path = vec![payer];
            let mut cur = payer;
            while cur != payee {
                let used = path.len() - 1;
                let candidates: Vec<usize> = self.adj[cur]
                    .iter()
                    .copied()
                    .filter(|v| *v != payer && !path.contains(v))
                    .filter(|v| dist[*v].is_some_and(|d| used + 1 + d <= MAX_ROUTE_EDGES))
                    .collect();
                if candidates.is_empty() {
                    continue 'walk;
                }
                cur = candidates[self.rng.index(candidates.len())];
                path.push(cur);
            }
            return Some(path);
        }
        // Down the distances: strictly decreasing, so simple.
        let mut path = vec![payer];
        let mut cur = payer;
        while cur != payee {
            let next = self.adj[cur]
                .iter()
                .copied()
                .filter(|v| *v != payer)
                .filter_map(|v| dist[v].map(|d| (d, v)))
                .min()?;
            cur = next.1;
            path.push(cur);
        }
        Some(path)
    }

    /// Publishes the secrets node `n`'s ledger lists, on a listed witness that works; gives up
    /// on one after [`PUBLISH_TIMEOUT_SECS`] (the ledger then releases its parts).
    fn publish_pass(&mut self, n: usize) -> Result<(), Violation> {
        let Some(ledger) = self.nodes[n].ledger.as_ref() else {
            return Ok(());
        };
        let now = self.now_of(n);
        let mut publications = ledger.publications(now);
        if publications.is_empty() && self.nodes[n].publishing.is_empty() {
            return Ok(());
        }
        publications.sort_by_key(|p| p.hash);
        let live: BTreeSet<[u8; 32]> = publications.iter().map(|p| p.hash).collect();
        self.nodes[n].publishing.retain(|h, _| live.contains(h));
        let mut work = Vec::new();
        for publication in publications {
            let clock = self.clock;
            let since = *self.nodes[n]
                .publishing
                .entry(publication.hash)
                .or_insert(clock);
            match self.try_publish(n, &publication)? {
                Some(proof) => work.push(Work::Published(publication.hash, Box::new(proof))),
                None if clock.saturating_sub(since) >= PUBLISH_TIMEOUT_SECS => {
                    self.report.publish_failed += 1;
                    work.push(Work::PublishFailed(publication.hash));
                }
                None => {}
            }
        }
        if !work.is_empty() {
            self.batch(n, work)?;
        }
        Ok(())
    }

    /// Submits a secret to the listed witnesses that work, in a random order, until one gives
    /// a proof bundle that meets the condition.
    fn try_publish(
        &mut self,
        n: usize,
        publication: &Publication,
    ) -> Result<Option<WitnessProof>, Violation> {
        let mut listed: Vec<usize> = (0..self.witnesses.len())
            .filter(|w| {
                publication
                    .condition
                    .witnesses
                    .iter()
                    .any(|t| t.log == self.witnesses[*w].vkey)
            })
            .collect();
        self.rng.shuffle(&mut listed);
        let hash = short(&publication.hash);
        for w in listed {
            let clock = self.clock;
            if self.witnesses[w].down_until > clock {
                self.report.publish_attempts_down += 1;
                self.event(format!("n{n} cannot publish {hash}: witness w{w} is down"));
                continue;
            }
            if self.witnesses[w].censor_until > clock {
                self.report.publish_attempts_censored += 1;
                self.event(format!(
                    "n{n} cannot publish {hash}: witness w{w} censors it"
                ));
                continue;
            }
            let log = &mut self.witnesses[w].log;
            let submission = log.submit(publication.p, clock);
            let bundle = match log.bundle(&publication.p) {
                Ok(Some(bundle)) => bundle,
                other => {
                    return Err(self.violation(format!(
                        "witness w{w} has no bundle for a secret it took: {other:?}"
                    )));
                }
            };
            let bytes = bundle
                .to_bytes()
                .map_err(|e| self.violation(format!("witness w{w}'s bundle: {e}")))?;
            let proof = WitnessProof {
                p: publication.p,
                log: self.witnesses[w].vkey.clone(),
                bundle: bytes,
            };
            match proof.verify(&publication.condition, publication.expires_at) {
                Ok(()) => {
                    self.report.publications += 1;
                    self.event(format!(
                        "n{n} publishes {hash} on w{w} (block {}, leaf {})",
                        submission.block, submission.index
                    ));
                    return Ok(Some(proof));
                }
                Err(e) => {
                    self.event(format!(
                        "n{n} published {hash} on w{w} too late for its condition: {e}"
                    ));
                }
            }
        }
        Ok(None)
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
        match p.packet {
            Packet::Envelope { bytes, epoch, sent } => {
                let envelope = ledger.open_envelope(&bytes, now).map_err(|e| {
                    self.violation(format!("n{n} refused an envelope of honest n{from}: {e}"))
                })?;
                if envelope.from != self.nodes[from].pk {
                    return Err(self.violation(format!(
                        "an envelope from n{from} opened as from {}",
                        envelope.from
                    )));
                }
                let what: Vec<String> = envelope.messages.iter().map(describe_message).collect();
                let replies: Vec<Reply> = envelope
                    .messages
                    .into_iter()
                    .map(|m| ledger.handle_message(&envelope.from, m, now, ops))
                    .collect();
                self.event(format!(
                    "#{} n{from}→n{n} [{}] → [{}]",
                    p.id,
                    what.join(", "),
                    describe_replies(&replies)
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
                let replies = decode_replies(&bytes).map_err(|e| {
                    self.violation(format!("replies from n{from} do not decode: {e}"))
                })?;
                if replies.len() != sent.len() {
                    return Err(self.violation(format!(
                        "n{from} sent {} replies to {} messages",
                        replies.len(),
                        sent.len()
                    )));
                }
                self.event(format!(
                    "#{} n{from}→n{n} replies [{}]",
                    p.id,
                    describe_replies(&replies)
                ));
                let pk = self.nodes[from].pk.clone();
                for (reply, sent) in replies.into_iter().zip(sent) {
                    match (sent, &reply) {
                        (Sent::State(sent_seq), Reply::StateAck { seq }) => {
                            if *seq != sent_seq {
                                return Err(self.violation(format!(
                                    "n{from} acknowledged seq {seq} for a state with seq {sent_seq}"
                                )));
                            }
                            out.acks.push((from, *seq));
                        }
                        // Delivered, and refused as stale: a newer state is held.
                        (Sent::State(sent_seq), Reply::Rejected { .. }) => {
                            out.acks.push((from, sent_seq));
                        }
                        _ => {}
                    }
                    ledger.handle_reply(&pk, reply, now, ops).map_err(|e| {
                        self.violation(format!("n{n} rejected an honest reply of n{from}: {e}"))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Seals messages per peer (in envelopes of at most [`MAX_MESSAGES`]) and sends them.
    fn send_all(
        &mut self,
        n: usize,
        ledger: &Ledger,
        messages: Vec<(usize, Message, Sent)>,
        now: u64,
    ) {
        let mut by_peer: BTreeMap<usize, Vec<(Message, Sent)>> = BTreeMap::new();
        for (peer, message, sent) in messages {
            by_peer.entry(peer).or_default().push((message, sent));
        }
        let epoch = self.nodes[n].epoch;
        for (to, messages) in by_peer {
            let pk = self.nodes[to].pk.clone();
            for chunk in messages.chunks(MAX_MESSAGES) {
                let (msgs, sent): (Vec<Message>, Vec<Sent>) = chunk.iter().cloned().unzip();
                let bytes = ledger.seal(&pk, now, msgs);
                self.send(n, to, Packet::Envelope { bytes, epoch, sent });
            }
        }
    }

    /// Hands a packet to the network, which may lose, duplicate or delay it.
    fn send(&mut self, from: usize, to: usize, packet: Packet) {
        self.report.messages_sent += 1;
        let f = &self.config.faults;
        let (drop, duplicate, max_delay) =
            (f.drop_permille, f.duplicate_permille, f.max_delay_secs);
        let on = self.faults_on;
        if on && self.rng.chance(drop) {
            self.report.messages_dropped += 1;
            self.event(format!("n{from}→n{to} lost by the network"));
            return;
        }
        let copies = if on && self.rng.chance(duplicate) {
            self.report.messages_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if on {
                self.rng.range(0, max_delay)
            } else {
                self.rng.range(0, 1)
            };
            let id = self.next_packet;
            self.next_packet += 1;
            self.net[to].push(InFlight {
                id,
                at: self.clock + delay,
                from,
                to,
                packet: packet.clone(),
            });
        }
    }

    /// The checks after node `n` committed `ops` (its ledger is `live`): outcomes, hop safety,
    /// all-or-nothing so far, evidence, memory against the store, and limits.
    fn check_commit(&mut self, n: usize, ops: &[StoreOp], live: &Ledger) -> Result<(), Violation> {
        let index = &self.index;
        let decided = self
            .tracker
            .apply(n, ops, |pk| index.get(pk.as_bytes()).copied());
        let decided = decided.map_err(|what| self.violation(what))?;
        for id in decided {
            self.count_outcome(&id)?;
        }
        self.check_restore(n, ops, live)?;
        for channel in live.channels() {
            let Some(view) = channel.view() else {
                return Err(self.violation(format!(
                    "n{n}'s channel with {} has no view (a total overflows)",
                    channel.peer()
                )));
            };
            let peer = self
                .index_of(&view.peer)
                .map_or_else(|| view.peer.to_string(), |i| format!("n{i}"));
            let as_holder = view.net + i128::from(view.pending_in.minor());
            if as_holder > i128::from(view.limits.accept.minor()) {
                return Err(self.violation(format!(
                    "n{n} is owed {} by {peer} (net {} + pending in {}), over its accept limit {}",
                    as_holder,
                    view.net,
                    view.pending_in.minor(),
                    view.limits.accept.minor()
                )));
            }
            let as_issuer = -view.net + i128::from(view.pending_out.minor());
            if as_issuer > i128::from(view.limits.issue.minor()) {
                return Err(self.violation(format!(
                    "n{n} may owe {} to {peer} (−net {} + pending out {}), over its issue limit {}",
                    as_issuer,
                    -view.net,
                    view.pending_out.minor(),
                    view.limits.issue.minor()
                )));
            }
        }
        Ok(())
    }

    /// Persist before you speak: what `Ledger::restore` rebuilds from the store equals the
    /// ledger in memory, channel by channel and IOU by IOU, with the same secrets to publish.
    ///
    /// `Ledger::restore` builds a channel's head from its line record alone and each
    /// conditional IOU from its own record alone, so the shadow of a node (every piece as last
    /// restored) stays what a full restore would give if, after each commit, exactly the records
    /// the commit wrote are restored again. That keeps the check complete at every commit while
    /// decoding only what changed (decoding is most of its cost).
    fn check_restore(&mut self, n: usize, ops: &[StoreOp], live: &Ledger) -> Result<(), Violation> {
        let mut lines: BTreeSet<LineKey> = BTreeSet::new();
        let mut conditionals: BTreeSet<(LineKey, bool, u64)> = BTreeSet::new();
        for op in ops {
            match op {
                StoreOp::PutLine(l) => {
                    lines.insert((*l.peer.as_bytes(), l.asset.clone()));
                }
                StoreOp::PutConditional(c) => {
                    let key = (*c.peer.as_bytes(), c.asset.clone());
                    lines.insert(key.clone());
                    conditionals.insert((key, c.dir == Direction::Out, c.id));
                }
                StoreOp::DeleteConditional {
                    peer,
                    asset,
                    dir,
                    id,
                } => {
                    let key = (*peer.as_bytes(), asset.clone());
                    lines.insert(key.clone());
                    conditionals.insert((key, *dir == Direction::Out, *id));
                }
                _ => {}
            }
        }
        let mut snapshot = self.nodes[n]
            .store
            .load()
            .map_err(|e| self.violation(format!("n{n} cannot load its store: {e}")))?;
        snapshot
            .lines
            .retain(|l| lines.contains(&(*l.peer.as_bytes(), l.asset.clone())));
        snapshot.conditionals.retain(|c| {
            let key = (*c.peer.as_bytes(), c.asset.clone());
            conditionals.contains(&(key, c.dir == Direction::Out, c.id))
        });
        // Forwarding links and the history are not part of a channel: the final checks
        // restore them with the rest.
        snapshot.forwards.clear();
        snapshot.pending_payments.clear();
        let restored = Ledger::restore(self.nodes[n].key.clone(), snapshot)
            .map_err(|e| self.violation(format!("n{n} cannot restore from its store: {e}")))?;
        let keys: BTreeMap<LineKey, PublicKey> = lines
            .iter()
            .filter_map(|key| {
                let i = self.index.get(&key.0)?;
                Some((key.clone(), self.nodes[*i].pk.clone()))
            })
            .collect();
        let shadow = &mut self.nodes[n].shadow;
        let channel_of = |key: &LineKey| {
            keys.get(key)
                .and_then(|peer| restored.channel(peer, &key.1))
        };
        for key in &lines {
            match channel_of(key) {
                Some(channel) => {
                    shadow.entry(key.clone()).or_default().head = Some(Head::of(channel))
                }
                None => {
                    shadow.remove(key);
                }
            }
        }
        for (key, out, id) in &conditionals {
            let Some(entry) = shadow.get_mut(key) else {
                continue;
            };
            let channel = channel_of(key);
            if *out {
                match channel.and_then(|c| c.out_conditionals().get(id)) {
                    Some(c) => entry.out.insert(*id, c.clone()),
                    None => entry.out.remove(id),
                };
            } else {
                match channel.and_then(|c| c.in_conditionals().get(id)) {
                    Some(c) => entry.inn.insert(*id, c.clone()),
                    None => entry.inn.remove(id),
                };
            }
        }
        let now = self.now_of(n);
        if let Some(what) = differs(live, &self.nodes[n].shadow, &restored, now) {
            return Err(self.violation(format!(
                "n{n}'s memory differs from its store after a commit (persist before you speak): \
                 {what}"
            )));
        }
        Ok(())
    }

    fn count_outcome(&mut self, id: &IouId) -> Result<(), Violation> {
        let Some(track) = self.tracker.ious.get(id).cloned() else {
            return Ok(());
        };
        match (track.outcome, track.answer) {
            (Some(Outcome::Counted), _) => {
                self.report.ious_counted += 1;
                self.event(format!("{} COUNTED ({})", name(id), track.amount));
            }
            (Some(Outcome::Dropped), Some(Answer::Released(reason))) => {
                self.report.ious_released += 1;
                let reason = reason.map_or_else(|| "unknown".to_string(), release_name);
                *self.report.releases.entry(reason.clone()).or_default() += 1;
                self.event(format!("{} dropped: released ({reason})", name(id)));
            }
            (Some(Outcome::Dropped), Some(Answer::Accepted)) => {
                self.report.ious_expired += 1;
                self.event(format!("{} dropped: expired unclaimed", name(id)));
            }
            (outcome, answer) => {
                return Err(self.violation(format!(
                    "{} resolved as {outcome:?} with answer {answer:?}",
                    name(id)
                )));
            }
        }
        Ok(())
    }

    /// Settling: no more faults or payments; every node runs, the network delivers within a
    /// second, the witnesses work; the clock runs past every deadline plus the grace, until
    /// every IOU is resolved and every state acknowledged.
    fn settle(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        let started = self.clock;
        self.event("settling: faults off".into());
        for w in &mut self.witnesses {
            w.down_until = 0;
            w.censor_until = 0;
        }
        let last_deadline = self.last_deadline;
        let skew = self.config.faults.max_clock_skew_secs;
        let target = last_deadline + self.config.expiry_grace_secs + 2 * skew + 1;
        let limit = target + SETTLE_LIMIT_SECS;
        loop {
            self.step()?;
            if self.clock >= target && self.quiet() {
                break;
            }
            if self.clock > limit {
                return Err(self.violation(format!(
                    "the network did not settle {SETTLE_LIMIT_SECS} s after the last deadline \
                     plus the grace: {}",
                    self.unsettled()
                )));
            }
        }
        self.report.settle_seconds = self.clock - started;
        Ok(())
    }

    fn quiet(&self) -> bool {
        self.unsettled().is_empty()
    }

    /// What still moves, for the settle loop and its failure message.
    fn unsettled(&self) -> String {
        let in_flight: usize = self.net.iter().map(Vec::len).sum();
        if in_flight > 0 {
            return format!("{in_flight} packets in flight");
        }
        for (n, node) in self.nodes.iter().enumerate() {
            let Some(ledger) = &node.ledger else {
                return format!("n{n} is down");
            };
            if !node.unacked.is_empty() {
                return format!("n{n} has {} states not acknowledged", node.unacked.len());
            }
            for channel in ledger.channels() {
                if !channel.out_conditionals().is_empty() || !channel.in_conditionals().is_empty() {
                    return format!(
                        "n{n} has unresolved IOUs with {}: {} out, {} in",
                        self.index_of(channel.peer())
                            .map_or_else(|| "?".to_string(), |i| format!("n{i}")),
                        channel.out_conditionals().len(),
                        channel.in_conditionals().len()
                    );
                }
            }
        }
        for (hash, invoice) in &self.invoices {
            if self.nodes[invoice.payee]
                .ledger
                .as_ref()
                .is_some_and(|l| l.hashlock(hash).is_some())
            {
                return format!("n{}'s invoice {} is still open", invoice.payee, short(hash));
            }
        }
        String::new()
    }

    /// The end state, once settled.
    fn final_checks(&mut self) -> Result<(), Violation> {
        self.event("final checks".into());
        self.check_end_state().map_err(|what| self.violation(what))
    }

    fn check_end_state(&mut self) -> Result<(), String> {
        // Every IOU resolved at both ends.
        for (id, track) in &self.tracker.ious {
            if track.outcome.is_none() || track.holder_outcome.is_none() {
                return Err(format!(
                    "{} is not resolved at both ends: issuer {:?}, holder {:?}",
                    name(id),
                    track.outcome,
                    track.holder_outcome
                ));
            }
        }
        // Every payment all-or-nothing, the invoice and the payer's history agreeing.
        let mut completed = 0;
        let mut failed = 0;
        for (hash, invoice) in &self.invoices {
            let ious = self.tracker.of_hash(hash);
            let outcome = |id: &IouId| self.tracker.ious.get(id).and_then(|t| t.outcome);
            let counted: Vec<&IouId> = ious
                .iter()
                .filter(|id| outcome(id) == Some(Outcome::Counted))
                .collect();
            let paid = !counted.is_empty();
            if paid && counted.len() != ious.len() {
                return Err(format!(
                    "payment {} is not all-or-nothing: {} of its {} IOUs counted",
                    short(hash),
                    counted.len(),
                    ious.len()
                ));
            }
            let status = self.nodes[invoice.payee]
                .store
                .hashlock(hash)
                .map_err(|e| format!("n{}'s store: {e}", invoice.payee))?
                .map(|h| h.status);
            let expected = if paid {
                HashlockStatus::Done
            } else {
                HashlockStatus::Failed
            };
            if status != Some(expected) {
                return Err(format!(
                    "n{}'s invoice {} ends {status:?}, but {} of its IOUs counted",
                    invoice.payee,
                    short(hash),
                    counted.len()
                ));
            }
            if paid {
                let received: u64 = counted
                    .iter()
                    .filter(|id| id.1 == invoice.payee)
                    .filter_map(|id| self.tracker.ious.get(id))
                    .map(|t| t.amount)
                    .sum();
                if received != invoice.amount {
                    return Err(format!(
                        "n{} invoiced {} as {} but was paid {received}",
                        invoice.payee,
                        invoice.amount,
                        short(hash)
                    ));
                }
            }
            let Some((payer, payment_id)) = invoice.paid_by else {
                if !ious.is_empty() {
                    return Err(format!(
                        "{} IOUs carry {}, which nobody paid",
                        ious.len(),
                        short(hash)
                    ));
                }
                continue;
            };
            if paid {
                completed += 1;
            } else {
                failed += 1;
            }
            let history = self.nodes[payer]
                .store
                .history(usize::MAX)
                .map_err(|e| format!("n{payer}'s history: {e}"))?;
            let status = history
                .iter()
                .find(|r| r.payment_id == payment_id && r.dir == atomicity_core::Direction::Out)
                .map(|r| r.status.clone());
            let agrees = match &status {
                Some(PaymentStatus::Completed) => paid,
                Some(PaymentStatus::Failed(_)) => !paid,
                _ => false,
            };
            if !agrees {
                return Err(format!(
                    "n{payer}'s history has payment {} as {status:?}, but {} of its IOUs counted",
                    short(hash),
                    counted.len()
                ));
            }
        }
        self.report.payments_completed = completed;
        self.report.payments_failed = failed;

        // Every line: both ends agree, nothing pending, nets mirror and match the counted IOUs.
        let mut counted_net: BTreeMap<(usize, usize), i128> = BTreeMap::new();
        for ((issuer, holder, _), track) in &self.tracker.ious {
            if track.outcome == Some(Outcome::Counted) {
                *counted_net.entry((*holder, *issuer)).or_default() += i128::from(track.amount);
                *counted_net.entry((*issuer, *holder)).or_default() -= i128::from(track.amount);
            }
        }
        let mut sum: i128 = 0;
        for a in 0..self.nodes.len() {
            let snapshot = self.nodes[a]
                .store
                .load()
                .map_err(|e| format!("n{a}'s store: {e}"))?;
            // Once more in one piece: the whole ledger restored from the store is the one in
            // memory.
            let restored = Ledger::restore(self.nodes[a].key.clone(), snapshot.clone())
                .map_err(|e| format!("n{a} cannot restore from its store: {e}"))?;
            let live = self.nodes[a]
                .ledger
                .as_ref()
                .ok_or_else(|| format!("n{a} is down after settling"))?;
            let whole: BTreeMap<LineKey, Shadow> = restored
                .channels()
                .map(|c| {
                    let key = (*c.peer().as_bytes(), c.asset().clone());
                    let shadow = Shadow {
                        head: Some(Head::of(c)),
                        out: c.out_conditionals().as_map().clone(),
                        inn: c.in_conditionals().as_map().clone(),
                    };
                    (key, shadow)
                })
                .collect();
            let now = self.now_of(a);
            if let Some(what) = differs(live, &whole, &restored, now) {
                return Err(format!(
                    "n{a}'s memory differs from its restored store: {what}"
                ));
            }
            if live.balances() != restored.balances() {
                return Err(format!("n{a}'s balances differ from its restored store's"));
            }
            if live.channels().count() != self.adj[a].len() {
                return Err(format!(
                    "n{a} has {} channels for {} neighbours",
                    live.channels().count(),
                    self.adj[a].len()
                ));
            }
            let ledger = self.nodes[a]
                .ledger
                .as_ref()
                .ok_or_else(|| format!("n{a} is down after settling"))?;
            if !snapshot.conditionals.is_empty()
                || !snapshot.forwards.is_empty()
                || !snapshot.pending_payments.is_empty()
                || !snapshot.hashlocks.is_empty()
            {
                return Err(format!(
                    "n{a}'s store still holds {} conditionals, {} forwarding links, {} pending \
                     payments, {} open hashlocks",
                    snapshot.conditionals.len(),
                    snapshot.forwards.len(),
                    snapshot.pending_payments.len(),
                    snapshot.hashlocks.len()
                ));
            }
            for &b in &self.adj[a] {
                let other = self.nodes[b]
                    .ledger
                    .as_ref()
                    .ok_or_else(|| format!("n{b} is down after settling"))?;
                let (Some(mine), Some(theirs)) = (
                    ledger.channel(&self.nodes[b].pk, &self.asset),
                    other.channel(&self.nodes[a].pk, &self.asset),
                ) else {
                    return Err(format!("n{a}–n{b}: a channel is missing"));
                };
                if mine.out_state() != theirs.in_state() {
                    let seq = |s: Option<&Signed<IouState>>| s.map_or(0, |s| s.body().seq);
                    return Err(format!(
                        "n{a}→n{b}: the issuer's newest state is seq {}, the holder holds seq {}",
                        seq(mine.out_state()),
                        seq(theirs.in_state())
                    ));
                }
                let (Some(va), Some(vb)) = (mine.view(), theirs.view()) else {
                    return Err(format!("n{a}–n{b}: a view overflows"));
                };
                if va.net != -vb.net {
                    return Err(format!(
                        "n{a}–n{b}: nets {} and {} do not mirror",
                        va.net, vb.net
                    ));
                }
                if !va.pending_in.is_zero() || !va.pending_out.is_zero() {
                    return Err(format!(
                        "n{a}–n{b}: still pending: {} in, {} out",
                        va.pending_in.minor(),
                        va.pending_out.minor()
                    ));
                }
                let expected = counted_net.get(&(a, b)).copied().unwrap_or(0);
                if va.net != expected {
                    return Err(format!(
                        "n{a}'s net toward n{b} is {}, but the IOUs counted between them make {}",
                        va.net, expected
                    ));
                }
                sum += va.net;
            }
        }
        if sum != 0 {
            return Err(format!("the nets sum to {sum}, not zero"));
        }
        Ok(())
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

/// The order messages to one peer go out in, within a batch.
fn rank(m: &Message) -> u8 {
    match m {
        // A settlement request goes before the conditional IOU that comes with it.
        Message::Settle(_) | Message::SettleUpdate(_) => 0,
        Message::Forward(..) => 0,
        Message::Release(_) => 1,
        Message::Proof { .. } => 2,
        Message::Accept(_) => 3,
        Message::Offer(_) => 4,
        Message::Issued(_) => 5,
        Message::State(_) => 6,
    }
}

fn release_name(reason: ReleaseReason) -> String {
    format!("{reason:?}")
}

/// Short form of a message for the trace.
fn describe_message(m: &Message) -> String {
    match m {
        Message::Forward(iou, onward) => format!(
            "forward #{} {} ({} more hops)",
            iou.body().id,
            iou.body().amount.minor(),
            onward.hops.len()
        ),
        Message::Offer(iou) => format!("offer #{}", iou.body().id),
        Message::Issued(iou) => format!("issued #{}", iou.body().id),
        Message::State(s) => format!("state seq {}", s.body().seq),
        Message::Accept(a) => format!("accept #{}", a.body().id),
        Message::Release(r) => format!("release #{} ({:?})", r.body().id, r.body().reason),
        Message::Proof { hash, .. } => format!("proof {}", short(hash)),
        Message::Settle(r) => format!("settle {}", short(&r.body().id)),
        Message::SettleUpdate(u) => format!("settle update {}", short(&u.body().id)),
    }
}

/// Short form of replies for the trace.
fn describe_replies(replies: &[Reply]) -> String {
    let parts: Vec<String> = replies
        .iter()
        .map(|r| match r {
            Reply::Accepted(a) => format!("accepted #{}", a.body().id),
            Reply::Released(r) => format!("released #{} ({:?})", r.body().id, r.body().reason),
            Reply::StateAck { seq } => format!("ack seq {seq}"),
            Reply::Ok => "ok".into(),
            Reply::Rejected { code, .. } => format!("rejected {code}"),
        })
        .collect();
    parts.join(", ")
}

/// The first difference between a running ledger and what its store rebuilds: `channels`
/// (every channel, restored piece by piece) and `restored` (a ledger restored with the payment
/// secrets).
fn differs(
    live: &Ledger,
    channels: &BTreeMap<LineKey, Shadow>,
    restored: &Ledger,
    now: u64,
) -> Option<String> {
    if live.channels().count() != channels.len() {
        return Some("channel count".into());
    }
    for channel in live.channels() {
        let Some(other) = channels.get(&(*channel.peer().as_bytes(), channel.asset().clone()))
        else {
            return Some(format!("{} channel missing", channel.asset()));
        };
        if other.head.as_ref() != Some(&Head::of(channel)) {
            return Some(format!(
                "the limits, fees, id counter or states with {}",
                channel.peer()
            ));
        }
        if *channel.out_conditionals().as_map() != other.out
            || *channel.in_conditionals().as_map() != other.inn
        {
            return Some(format!("the conditional IOUs with {}", channel.peer()));
        }
    }
    let mut a = live.publications(now);
    let mut b = restored.publications(now);
    a.sort_by_key(|p| p.hash);
    b.sort_by_key(|p| p.hash);
    if a != b {
        return Some("the secrets to publish".into());
    }
    None
}

#[cfg(test)]
mod tests {
    //! The oracle must bite: each test breaks one invariant by hand and expects the check that
    //! guards it to report a violation.

    use atomicity_core::EvidenceRecord;

    use super::*;

    fn stepped(seed: u64, steps: u64) -> RoutedSim {
        let config = RoutedConfig {
            nodes: 8,
            payments: 80,
            faults: RoutedFaults::none(),
            ..RoutedConfig::for_seed(seed)
        };
        let mut sim = RoutedSim::new(config).expect("a valid configuration");
        for _ in 0..steps {
            sim.step().expect("no violation while stepping");
        }
        sim
    }

    /// A forwarding link (in, out) whose two IOUs both ended with `outcome`.
    fn link_with(sim: &RoutedSim, outcome: Outcome) -> Option<(IouId, IouId)> {
        let ended = |id: &IouId| sim.tracker.ious.get(id).and_then(|t| t.outcome) == Some(outcome);
        sim.tracker
            .fwd
            .iter()
            .find(|(inn, out)| ended(inn) && ended(out))
            .map(|(inn, out)| (*inn, *out))
    }

    #[test]
    fn a_forged_counted_outcome_breaks_hop_safety() {
        let mut sim = stepped(21, 120);
        let (inn, out) = link_with(&sim, Outcome::Dropped).expect("a payment failed past a hop");
        // Pretend the hop's state counted the IOU it issued downstream.
        if let Some(track) = sim.tracker.ious.get_mut(&out) {
            track.outcome = Some(Outcome::Counted);
        }
        let what = sim.tracker.check_decided(&out).expect_err("not caught");
        assert!(what.contains("paid downstream"), "{what}");
        assert!(what.contains(&name(&inn)), "{what}");
    }

    #[test]
    fn a_forged_dropped_outcome_breaks_hop_safety_the_other_way() {
        let mut sim = stepped(22, 120);
        let (inn, _) = link_with(&sim, Outcome::Counted).expect("a payment completed past a hop");
        if let Some(track) = sim.tracker.ious.get_mut(&inn) {
            track.outcome = Some(Outcome::Dropped);
        }
        let what = sim.tracker.check_decided(&inn).expect_err("not caught");
        assert!(what.contains("was not paid upstream"), "{what}");
    }

    #[test]
    fn recorded_evidence_is_caught() {
        let mut sim = stepped(23, 10);
        let ledger = sim.nodes[0].ledger.take().expect("n0 runs");
        let peer = sim.adj[0][0];
        let op = StoreOp::PutEvidence(EvidenceRecord {
            peer: sim.nodes[peer].pk.clone(),
            what: "made up".into(),
            received: vec![1, 2, 3],
            at: sim.clock,
        });
        sim.nodes[0]
            .store
            .commit(std::slice::from_ref(&op))
            .expect("commit");
        let violation = sim.check_commit(0, &[op], &ledger).expect_err("not caught");
        assert!(
            violation
                .what
                .contains(&format!("evidence against honest n{peer}")),
            "{violation}"
        );
        assert_eq!(violation.seed, 23);
        assert_eq!(violation.step, 10);
        assert!(
            violation.replay.starts_with(
                "ATOMICITY_SIM_SEED=23 ATOMICITY_SIM_NODES=8 ATOMICITY_SIM_PAYMENTS=80 \
                 ATOMICITY_SIM_FAULTS=none cargo test -p atomicity-sim --test routed_seeds"
            ),
            "{violation}"
        );
    }

    #[test]
    fn memory_ahead_of_the_store_is_caught() {
        let mut sim = stepped(24, 10);
        let mut ledger = sim.nodes[0].ledger.take().expect("n0 runs");
        let peer = sim.nodes[sim.adj[0][0]].pk.clone();
        let mut forgotten = Vec::new();
        ledger
            .set_limits(
                &peer,
                &sim.asset,
                Some(Amount::from_minor(1)),
                None,
                &mut forgotten,
            )
            .expect("limits");
        let violation = sim.check_commit(0, &[], &ledger).expect_err("not caught");
        assert!(
            violation.what.contains("persist before you speak"),
            "{violation}"
        );
    }

    #[test]
    fn a_debt_over_the_accept_limit_is_caught() {
        let mut sim = stepped(25, 120);
        // A node owed something by a peer cuts its accept limit toward it to zero (the runs
        // never lower a limit, so this is the only way over it).
        let (n, peer) = (0..sim.nodes.len())
            .find_map(|n| {
                let ledger = sim.nodes[n].ledger.as_ref()?;
                ledger
                    .channels()
                    .find(|c| {
                        c.view()
                            .is_some_and(|v| v.net + i128::from(v.pending_in.minor()) > 0)
                    })
                    .map(|c| (n, c.peer().clone()))
            })
            .expect("somebody is owed something");
        let mut ledger = sim.nodes[n].ledger.take().expect("it runs");
        let mut ops = Vec::new();
        ledger
            .set_limits(&peer, &sim.asset, Some(Amount::ZERO), None, &mut ops)
            .expect("limits");
        sim.nodes[n].store.commit(&ops).expect("commit");
        let violation = sim.check_commit(n, &ops, &ledger).expect_err("not caught");
        assert!(
            violation.what.contains("over its accept limit"),
            "{violation}"
        );
    }

    #[test]
    fn a_payment_left_half_paid_is_caught_at_the_end() {
        let mut sim = stepped(26, 120);
        sim.settle().expect("settles");
        sim.check_end_state().expect("a clean end state");
        let id = sim
            .tracker
            .ious
            .iter()
            .find(|(_, t)| t.outcome == Some(Outcome::Counted))
            .map(|(id, _)| *id)
            .expect("a counted IOU");
        if let Some(track) = sim.tracker.ious.get_mut(&id) {
            track.outcome = Some(Outcome::Dropped);
            track.holder_outcome = Some(Outcome::Dropped);
        }
        let what = sim.check_end_state().expect_err("not caught");
        assert!(what.contains("not all-or-nothing"), "{what}");
    }

    #[test]
    fn routes_are_simple_short_and_avoid_the_payer() {
        let mut sim = stepped(27, 0);
        for payer in 0..sim.nodes.len() {
            for payee in (0..sim.nodes.len()).filter(|p| *p != payer) {
                let dist = sim.distances(payee, payer);
                let route = sim.route(payer, payee, &dist).expect("a connected graph");
                assert_eq!(route.first(), Some(&payer));
                assert_eq!(route.last(), Some(&payee));
                assert!(route.len() - 1 <= MAX_ROUTE_EDGES, "{route:?}");
                let distinct: BTreeSet<usize> = route.iter().copied().collect();
                assert_eq!(distinct.len(), route.len(), "{route:?}");
                for hop in route.windows(2) {
                    assert!(sim.adj[hop[0]].contains(&hop[1]), "{route:?}");
                }
            }
        }
    }
}
