//! Deterministic many-node simulation of the Atomicity protocol.
//!
//! One `u64` seed fixes a whole run: the nodes' keys, their credit limits, the payments the users
//! make, and every decision of the simulated network (delay, reordering, loss, duplication,
//! corruption) and of the fault injector (crashes before and after a commit, downtime, clock
//! skew). Each node is a real [`atomicity_core::Ledger`] over its own
//! [`atomicity_store::MemoryStore`], driven the way the node's ledger actor drives it: a batch
//! of inputs, `merge_states`, one commit, and only then the replies and new states go out
//! ("persist before you speak"). Messages travel as real encoded bytes, so the canonical
//! encoding, the envelope checks and the reply codec run on every hop.
//!
//! After every batch the simulator checks the protocol's invariants against what the nodes have
//! committed (see [`run`]); at the end it stops the faults, lets the network settle and checks
//! that every pair of nodes agrees. A failure names the seed and the step:
//!
//! ```text
//! ATOMICITY_SIM_SEED=1234 ATOMICITY_SIM_TRACE=1 cargo test -p atomicity-sim --test seeds seeds -- --nocapture
//! ```
//!
//! ```
//! use atomicity_sim::{SimConfig, run};
//!
//! let report = run(SimConfig { steps: 40, ..SimConfig::for_seed(7) }).expect("no violation");
//! assert_eq!(report.seed, 7);
//! ```
//!
//! # Routed payments
//!
//! [`run_routed`] simulates *routed* payments the same way: by default 20 nodes on a connected
//! random graph (a ring plus random chords, random limits and fee policies), 1,000 invoices
//! paid over one to three routes of up to five lines, and one or two real witness logs
//! ([`atomicity_witness::log::Log`]) on which the payees publish their secrets. The network
//! delays, reorders, loses and duplicates envelopes and replies, and cuts the nodes in two for a
//! while; nodes crash before or after a commit and restart from their store; witnesses go down
//! or censor. After every commit the simulator checks hop safety, all-or-nothing per payment so
//! far, every limit, that memory equals what the store rebuilds, and that no honest node keeps
//! evidence against another; at the end, once every deadline plus the expiry grace has passed,
//! that every payment was all-or-nothing and every pair of nodes agrees (see [`run_routed`]).
//!
//! ```text
//! ATOMICITY_SIM_SEED=1234 cargo test -p atomicity-sim --test routed_seeds -- --nocapture
//! ```
//!
//! Crashes and partitions are kept well below the expiry grace ([`RoutedConfig::validate`]):
//! a claim made just before a payment's deadline always reaches its issuer in time. Past the
//! grace the protocol's guarantee is evidence (the hop holds a proof its issuer ignored), not
//! all-or-nothing, and that is not what this simulation checks. Only the invoice flow is
//! simulated: the payer-published flow deliberately trades all-or-nothing for reaching an
//! offline payee.
//!
//! ```
//! use atomicity_sim::{RoutedConfig, run_routed};
//!
//! let config = RoutedConfig { nodes: 6, payments: 20, ..RoutedConfig::for_seed(3) };
//! let report = run_routed(config).expect("no violation");
//! assert_eq!(report.payments_attempted, 20);
//! ```
#![deny(missing_docs)]

mod oracle;
mod rng;
mod routed;
mod routed_check;
mod sim;
mod trace;

use std::fmt;

use thiserror::Error;

pub use rng::{Digest, SimRng};
pub use routed::{
    MAX_ROUTED_NODES, MAX_WITNESS_LOGS, MIN_ROUTED_NODES, RoutedConfig, RoutedFaults, RoutedReport,
    run_routed,
};
pub use sim::Sim;

/// Most nodes a simulation may have (the fixed keys are cheap, the all-pairs checks are not).
pub const MAX_NODES: usize = 8;
/// Fewest nodes: three, so that a node has more than one peer.
pub const MIN_NODES: usize = 3;
/// Asset codes the simulation uses, in order (all with scale 2).
pub const ASSET_CODES: [&str; 4] = ["USD", "EUR", "HOUR", "CHF"];

/// Network and process faults, as rates in parts per thousand and bounds in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// A sent envelope or reply is lost.
    pub drop_permille: u32,
    /// A sent envelope or reply arrives twice (each copy with its own delay).
    pub duplicate_permille: u32,
    /// One byte of a copy in flight is flipped.
    pub corrupt_permille: u32,
    /// Normal delays are uniform in `0..=max_delay_secs` (so messages overtake each other).
    pub max_delay_secs: u64,
    /// A copy is held past the envelope window ([`atomicity_core::ledger::ENVELOPE_WINDOW_SECS`]).
    pub stale_permille: u32,
    /// A node crashes after running a batch but before committing it: the batch's changes and
    /// messages vanish, and its in-memory ledger with them.
    pub crash_before_commit_permille: u32,
    /// A node crashes after committing a batch but before sending anything.
    pub crash_after_commit_permille: u32,
    /// A crashed node restarts after `1..=max_downtime_secs`; what arrives meanwhile is lost.
    pub max_downtime_secs: u64,
    /// Each node's clock is off by a fixed `-max_clock_skew_secs..=max_clock_skew_secs`.
    pub max_clock_skew_secs: u64,
}

impl Faults {
    /// A lossy, reordering, crashing network: the default for the seeded runs.
    pub fn standard() -> Faults {
        Faults {
            drop_permille: 80,
            duplicate_permille: 60,
            corrupt_permille: 10,
            max_delay_secs: 12,
            stale_permille: 5,
            crash_before_commit_permille: 15,
            crash_after_commit_permille: 15,
            max_downtime_secs: 40,
            max_clock_skew_secs: 20,
        }
    }

    /// A perfect network and processes that never crash (delays still reorder messages).
    pub fn none() -> Faults {
        Faults {
            drop_permille: 0,
            duplicate_permille: 0,
            corrupt_permille: 0,
            max_delay_secs: 3,
            stale_permille: 0,
            crash_before_commit_permille: 0,
            crash_after_commit_permille: 0,
            max_downtime_secs: 1,
            max_clock_skew_secs: 0,
        }
    }

    /// Everything much more often than [`Faults::standard`].
    pub fn heavy() -> Faults {
        Faults {
            drop_permille: 250,
            duplicate_permille: 200,
            corrupt_permille: 40,
            max_delay_secs: 30,
            stale_permille: 20,
            crash_before_commit_permille: 60,
            crash_after_commit_permille: 60,
            max_downtime_secs: 90,
            max_clock_skew_secs: 60,
        }
    }
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::standard()
    }
}

/// What the simulated users do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Chance that a batch of a node carries a new payment of its user.
    pub pay_permille: u32,
    /// Payments are `1..=max_amount` minor units.
    pub max_amount: u64,
    /// Offers normally expire `min_ttl_secs..=max_ttl_secs` after they are made.
    pub min_ttl_secs: u64,
    /// See `min_ttl_secs`.
    pub max_ttl_secs: u64,
    /// An offer expires within seconds (often before it arrives).
    pub short_expiry_permille: u32,
    /// A limit is zero (so offers are refused or cannot be made).
    pub zero_limit_permille: u32,
    /// Limits that are not zero are `1..=max_limit` minor units.
    pub max_limit: u64,
    /// A node has no line at all with a peer in an asset at the start.
    pub missing_line_permille: u32,
    /// Chance that a batch carries a limit change: a raise, or opening a missing line. Limits
    /// are never lowered, so the limit invariant can be checked against the current limits.
    pub limit_change_permille: u32,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            pay_permille: 600,
            max_amount: 2_000,
            min_ttl_secs: 60,
            max_ttl_secs: 600,
            short_expiry_permille: 60,
            zero_limit_permille: 150,
            max_limit: 12_000,
            missing_line_permille: 60,
            limit_change_permille: 30,
        }
    }
}

/// One simulation run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Fixes everything random in the run.
    pub seed: u64,
    /// How many nodes, [`MIN_NODES`]`..=`[`MAX_NODES`]. Every node has every other as a peer.
    pub nodes: usize,
    /// How many assets, `1..=`[`ASSET_CODES`]`.len()`.
    pub assets: usize,
    /// How many steps with faults before the network is left to settle.
    pub steps: u64,
    /// What goes wrong.
    pub faults: Faults,
    /// What the users do.
    pub workload: Workload,
    /// Keep every event in [`Report::trace`] (and in a [`Violation`]), not only the last ones.
    pub keep_trace: bool,
}

impl SimConfig {
    /// A command line that runs this configuration again, or a hint when it is not the
    /// standard one for its seed (only the seed and step count can be set from the
    /// environment).
    pub fn replay_hint(&self) -> String {
        let standard = SimConfig::for_seed(self.seed);
        let same = self.nodes == standard.nodes
            && self.assets == standard.assets
            && self.faults == standard.faults
            && self.workload == standard.workload;
        if same {
            format!(
                "ATOMICITY_SIM_SEED={} ATOMICITY_SIM_STEPS={} ATOMICITY_SIM_TRACE=1 cargo test \
                 -p atomicity-sim --test seeds seeds -- --nocapture",
                self.seed, self.steps
            )
        } else {
            format!(
                "seed {} with a non-standard configuration ({} nodes, {} assets, {} steps): rerun \
                 the failing test, or `run` this SimConfig with keep_trace = true",
                self.seed, self.nodes, self.assets, self.steps
            )
        }
    }

    /// The standard run for `seed`: 300 steps, standard faults, and a node count (3–8) and
    /// asset count (1–3) that the seed picks.
    pub fn for_seed(seed: u64) -> SimConfig {
        let mut rng = SimRng::new(seed ^ 0x5EED_C0DE_5EED_C0DE);
        SimConfig {
            seed,
            nodes: MIN_NODES + rng.index(MAX_NODES - MIN_NODES + 1),
            assets: 1 + rng.index(3),
            steps: 300,
            faults: Faults::standard(),
            workload: Workload::default(),
            keep_trace: false,
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_NODES..=MAX_NODES).contains(&self.nodes) {
            return Err(ConfigError::Nodes(self.nodes));
        }
        if !(1..=ASSET_CODES.len()).contains(&self.assets) {
            return Err(ConfigError::Assets(self.assets));
        }
        let w = &self.workload;
        if w.max_amount == 0 || w.min_ttl_secs == 0 || w.max_ttl_secs < w.min_ttl_secs {
            return Err(ConfigError::Workload);
        }
        Ok(())
    }
}

/// A configuration the simulator cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node count out of range.
    #[error("nodes must be {MIN_NODES}..={MAX_NODES}, got {0}")]
    Nodes(usize),
    /// Asset count out of range.
    #[error("assets must be 1..=4, got {0}")]
    Assets(usize),
    /// Amounts or expiries that make no sense.
    #[error("the workload needs max_amount > 0 and 0 < min_ttl_secs <= max_ttl_secs")]
    Workload,
    /// Setting up the nodes failed (a bug in the simulator or the core).
    #[error("setting up the nodes failed: {0}")]
    Setup(String),
}

/// What a run did, when no invariant was violated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes simulated.
    pub nodes: usize,
    /// Assets simulated.
    pub assets: usize,
    /// Steps run with faults (the settling rounds are not counted).
    pub steps: u64,
    /// Node batches run (steps, outbox ticks, restarts and settling included).
    pub batches: u64,
    /// Payments the users asked for.
    pub payments_attempted: u64,
    /// Payments the payer's own node refused (over its issue limit, no line).
    pub payments_refused_locally: u64,
    /// Payments lost because the payer crashed before committing the offer.
    pub payments_lost_in_crash: u64,
    /// Payments whose offer was committed and sent.
    pub payments_offered: u64,
    /// Offered payments the payee accepted (from the payers' histories at the end).
    pub payments_completed: u64,
    /// Offered payments the payee refused or let expire (from the payers' histories).
    pub payments_refused: u64,
    /// Envelopes and replies handed to the network.
    pub messages_sent: u64,
    /// Copies delivered to a running node.
    pub messages_delivered: u64,
    /// Lost by the network.
    pub messages_dropped: u64,
    /// Arrived at a node that was down (connection refused).
    pub messages_node_down: u64,
    /// Extra copies the network made.
    pub messages_duplicated: u64,
    /// Copies with a flipped byte.
    pub messages_corrupted: u64,
    /// Envelopes a node refused as a whole (corrupt, stale).
    pub envelopes_refused: u64,
    /// Replies that came back after their sender had restarted (its connection was gone).
    pub replies_orphaned: u64,
    /// Crashes before a commit.
    pub crashes_before_commit: u64,
    /// Crashes after a commit, before sending.
    pub crashes_after_commit: u64,
    /// Restarts (each restores the ledger from its store and resends).
    pub restarts: u64,
    /// Periodic outbox resends.
    pub ticks: u64,
    /// Rounds needed to settle at the end.
    pub settle_rounds: u64,
    /// IOU states signed (all nodes).
    pub states_signed: u64,
    /// Simulated seconds from start to end.
    pub sim_seconds: u64,
    /// Fingerprint of the event trace and every store's final contents: two runs of one seed
    /// have the same digest.
    pub digest: u64,
    /// Every event, when [`SimConfig::keep_trace`] was set.
    pub trace: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} nodes, {} assets, {} steps ({} batches, {} settle rounds, {} s simulated)",
            self.seed,
            self.nodes,
            self.assets,
            self.steps,
            self.batches,
            self.settle_rounds,
            self.sim_seconds
        )?;
        writeln!(
            f,
            "payments: {} attempted, {} offered, {} completed, {} refused by payee, {} refused \
             locally, {} lost in a crash",
            self.payments_attempted,
            self.payments_offered,
            self.payments_completed,
            self.payments_refused,
            self.payments_refused_locally,
            self.payments_lost_in_crash
        )?;
        writeln!(
            f,
            "messages: {} sent, {} delivered, {} dropped, {} to a down node, {} duplicated, {} \
             corrupted, {} envelopes refused, {} orphaned replies",
            self.messages_sent,
            self.messages_delivered,
            self.messages_dropped,
            self.messages_node_down,
            self.messages_duplicated,
            self.messages_corrupted,
            self.envelopes_refused,
            self.replies_orphaned
        )?;
        writeln!(
            f,
            "faults: {} crashes before commit, {} after commit, {} restarts, {} outbox ticks; {} \
             states signed",
            self.crashes_before_commit,
            self.crashes_after_commit,
            self.restarts,
            self.ticks,
            self.states_signed
        )?;
        write!(f, "digest {:016x}", self.digest)
    }
}

/// An invariant that did not hold (or a panic, or an impossible configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The seed that reproduces it.
    pub seed: u64,
    /// The step it happened at (after the last step: during settling or the final checks).
    pub step: u64,
    /// What was wrong.
    pub what: String,
    /// The events before it, oldest first (all of them with [`SimConfig::keep_trace`]).
    pub trace: Vec<String>,
    /// How to run it again.
    pub replay: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant violated at seed {} step {}: {}",
            self.seed, self.step, self.what
        )?;
        writeln!(f, "replay: {}", self.replay)?;
        if !self.trace.is_empty() {
            writeln!(f, "events before it:")?;
            for line in &self.trace {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Runs one whole simulation: `config.steps` steps with faults, each followed by the invariant
/// checks, then settling without faults and the final checks.
///
/// Checked after every batch, against what the node has committed:
/// * the store took the batch (no dangling references), and the ledger rebuilt from the store
///   equals the one in memory (persist before you speak: memory never runs ahead of the disk);
/// * no evidence of misbehaviour is ever recorded, and no honest peer's message is rejected for
///   a reason other than lateness (stale seq, already resolved) or a missing line;
/// * per line, the holder's stored in-state seq and total never decrease, and the issuer's
///   out-state seq strictly increases whenever it changes, with a total that never decreases
///   and a resolved set that only grows;
/// * whenever a holder accepts, the issuer's net debt (accepted, merged or not, minus what the
///   holder owes back) is within `min(issuer.issue, holder.accept)`;
/// * nothing panics.
///
/// Checked at the end: both ends of every line hold the same newest state, nets mirror, nothing
/// is pending, nets sum to zero per asset, every payment a payer saw completed is in the payee's
/// history, and each node's net toward each peer equals what its history received minus sent.
pub fn run(config: SimConfig) -> Result<Report, Violation> {
    let seed = config.seed;
    let replay = config.replay_hint();
    let sim = Sim::new(config).map_err(|e| Violation {
        seed,
        step: 0,
        what: format!("invalid configuration: {e}"),
        trace: Vec::new(),
        replay,
    })?;
    sim.run_to_end()
}
