//! The seeded runs.
//!
//! * `ATOMICITY_SIM_SEED=N` runs only seed N (300 steps) and prints its report;
//! * `ATOMICITY_SIM_TRACE=1` with it keeps every event and prints them (or puts all of them in
//!   the violation);
//! * `ATOMICITY_SIM_SEEDS=K` runs seeds `0..K` instead of the default 30;
//! * `ATOMICITY_SIM_STEPS=S` changes the steps per run (of every test here).
//!
//! A violation prints the exact command that replays it.

use atomicity_sim::{Faults, Report, SimConfig, run};

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

fn steps(default: u64) -> u64 {
    env_u64("ATOMICITY_SIM_STEPS").unwrap_or(default)
}

fn run_or_panic(config: SimConfig) -> Report {
    match run(config) {
        Ok(report) => report,
        Err(violation) => panic!("{violation}"),
    }
}

/// Sums of the counters over many runs, to show the faults were exercised.
#[derive(Default, Debug)]
struct Totals {
    runs: u64,
    completed: u64,
    refused: u64,
    refused_locally: u64,
    dropped: u64,
    duplicated: u64,
    corrupted: u64,
    crashes_before: u64,
    crashes_after: u64,
    envelopes_refused: u64,
    orphaned: u64,
}

impl Totals {
    fn add(&mut self, r: &Report) {
        self.runs += 1;
        self.completed += r.payments_completed;
        self.refused += r.payments_refused;
        self.refused_locally += r.payments_refused_locally;
        self.dropped += r.messages_dropped;
        self.duplicated += r.messages_duplicated;
        self.corrupted += r.messages_corrupted;
        self.crashes_before += r.crashes_before_commit;
        self.crashes_after += r.crashes_after_commit;
        self.envelopes_refused += r.envelopes_refused;
        self.orphaned += r.replies_orphaned;
    }
}

#[test]
fn seeds() {
    if let Some(seed) = env_u64("ATOMICITY_SIM_SEED") {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(config.steps);
        config.keep_trace = std::env::var_os("ATOMICITY_SIM_TRACE").is_some();
        let report = run_or_panic(config);
        if !report.trace.is_empty() {
            for line in &report.trace {
                println!("{line}");
            }
        }
        println!("{report}");
        return;
    }
    let count = env_u64("ATOMICITY_SIM_SEEDS").unwrap_or(30);
    let mut totals = Totals::default();
    for seed in 0..count {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(250);
        let report = run_or_panic(config);
        totals.add(&report);
    }
    println!("{totals:?}");
    if count >= 10 {
        // The runs must actually exercise what they claim to.
        assert!(totals.completed > 0, "{totals:?}");
        assert!(totals.refused > 0, "{totals:?}");
        assert!(totals.refused_locally > 0, "{totals:?}");
        assert!(
            totals.dropped > 0 && totals.duplicated > 0 && totals.corrupted > 0,
            "{totals:?}"
        );
        assert!(
            totals.crashes_before > 0 && totals.crashes_after > 0,
            "{totals:?}"
        );
        assert!(
            totals.envelopes_refused > 0 && totals.orphaned > 0,
            "{totals:?}"
        );
    }
}

#[test]
fn heavy_faults() {
    for seed in 1000..1006 {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(200);
        config.faults = Faults::heavy();
        run_or_panic(config);
    }
}

#[test]
fn no_faults_settles_with_every_payment_answered() {
    for seed in 2000..2004 {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(200);
        config.faults = Faults::none();
        let report = run_or_panic(config);
        assert_eq!(report.messages_dropped, 0);
        assert_eq!(
            report.crashes_before_commit + report.crashes_after_commit,
            0
        );
        assert_eq!(report.payments_lost_in_crash, 0);
        assert_eq!(
            report.payments_offered,
            report.payments_completed + report.payments_refused,
            "{report}"
        );
        assert!(report.payments_completed > 0, "{report}");
    }
}

#[test]
fn missing_lines_opened_late() {
    // Many holders start without a line; users open them while offers are in flight.
    for seed in 4000..4004 {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(200);
        config.workload.missing_line_permille = 400;
        config.workload.limit_change_permille = 200;
        run_or_panic(config);
    }
}

#[test]
fn tight_limits_and_short_expiries() {
    // Most payments race for little room, and many offers expire in flight.
    for seed in 5000..5004 {
        let mut config = SimConfig::for_seed(seed);
        config.steps = steps(200);
        config.workload.pay_permille = 950;
        config.workload.max_limit = 3_000;
        config.workload.short_expiry_permille = 300;
        let report = run_or_panic(config);
        assert!(report.payments_refused > 0, "{report}");
    }
}

#[test]
fn all_node_counts_and_assets() {
    for nodes in 3..=8 {
        let mut config = SimConfig::for_seed(3000 + nodes as u64);
        config.nodes = nodes;
        config.assets = 1 + nodes % 4;
        config.steps = steps(60);
        run_or_panic(config);
    }
}

#[test]
fn same_seed_same_outcome() {
    let config = || SimConfig {
        keep_trace: true,
        steps: steps(150),
        ..SimConfig::for_seed(42)
    };
    let first = run_or_panic(config());
    let second = run_or_panic(config());
    assert_eq!(first.trace, second.trace);
    assert_eq!(first, second);
    assert!(first.trace.len() > 100);
    let other = run_or_panic(SimConfig {
        keep_trace: true,
        steps: steps(150),
        ..SimConfig::for_seed(43)
    });
    assert_ne!(first.digest, other.digest);
}

#[test]
fn bad_configurations_are_refused() {
    let too_few = SimConfig {
        nodes: 2,
        ..SimConfig::for_seed(1)
    };
    let violation = run(too_few).expect_err("two nodes");
    assert!(
        violation.what.contains("invalid configuration"),
        "{violation}"
    );
    let too_many_assets = SimConfig {
        assets: 5,
        ..SimConfig::for_seed(1)
    };
    assert!(run(too_many_assets).is_err());
}
