//! The seeded runs of the routed-payment simulation.
//!
//! * `ATOMICITY_SIM_SEED=N` runs only seed N and prints its report (the other tests here then
//!   do nothing, so a violation's replay command runs just that seed);
//! * `ATOMICITY_SIM_TRACE=1` with it keeps every event and prints them (or puts all of them in
//!   the violation);
//! * `ATOMICITY_SIM_SEEDS=K` runs seeds `0..K` instead of the default 20
//!   (`ATOMICITY_SIM_FIRST_SEED=F` runs `F..F+K`);
//! * `ATOMICITY_SIM_NODES`, `ATOMICITY_SIM_PAYMENTS` and `ATOMICITY_SIM_FAULTS=heavy|none`
//!   change the runs of `routed_seeds`.
//!
//! A violation prints the exact command that replays it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use atomicity_core::{
    Amount, Asset, Hop, Keypair, Ledger, Message, PaymentOutcome, Reply, RoutePart, StoreOp,
    WitnessCondition, WitnessTerms, payment_hash,
};
use atomicity_sim::{RoutedConfig, RoutedFaults, RoutedReport, Violation, run_routed};
use atomicity_witness::note::Signer;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// The configuration for `seed`, with the overrides the environment sets.
fn configured(seed: u64) -> RoutedConfig {
    let mut config = RoutedConfig::for_seed(seed);
    if let Some(nodes) = env_u64("ATOMICITY_SIM_NODES") {
        config.nodes = usize::try_from(nodes).unwrap_or(usize::MAX);
    }
    if let Some(payments) = env_u64("ATOMICITY_SIM_PAYMENTS") {
        config.payments = payments;
    }
    match std::env::var("ATOMICITY_SIM_FAULTS").as_deref() {
        Ok("heavy") => config.faults = RoutedFaults::heavy(),
        Ok("none") => config.faults = RoutedFaults::none(),
        Ok("standard") | Err(_) => {}
        Ok(other) => panic!("ATOMICITY_SIM_FAULTS={other:?}: use heavy, none or standard"),
    }
    config
}

/// When one seed is asked for, only `routed_seeds` runs it.
fn single_seed_mode() -> bool {
    std::env::var_os("ATOMICITY_SIM_SEED").is_some()
}

/// Runs the configurations on a few threads (each run is single-threaded and deterministic),
/// returning the results in order.
fn run_all(configs: Vec<RoutedConfig>) -> Vec<Result<RoutedReport, Violation>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RoutedReport, Violation>>>> =
        Mutex::new(configs.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(configs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(config) = configs.get(i) else {
                        return;
                    };
                    let result = run_routed(config.clone());
                    results.lock().expect("results")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every run finished"))
        .collect()
}

/// Panics with every violation (each with its replay command), or returns the reports.
fn reports_or_panic(results: Vec<Result<RoutedReport, Violation>>) -> Vec<RoutedReport> {
    let mut reports = Vec::new();
    let mut violations = Vec::new();
    for result in results {
        match result {
            Ok(report) => reports.push(report),
            Err(violation) => violations.push(violation.to_string()),
        }
    }
    if !violations.is_empty() {
        panic!(
            "{} run(s) violated an invariant:\n\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
    reports
}

/// Sums of the counters over many runs, to show the faults and both outcomes were exercised.
#[derive(Default, Debug)]
struct Totals {
    runs: u64,
    nodes: u64,
    payments_attempted: u64,
    payments_sent: u64,
    completed: u64,
    failed: u64,
    multi_hop: u64,
    multi_part: u64,
    oversized: u64,
    fee_too_low_planned: u64,
    refused_locally: u64,
    ious_counted: u64,
    ious_released: u64,
    ious_expired: u64,
    over_limit_releases: u64,
    fee_too_low_releases: u64,
    cannot_forward_releases: u64,
    expired_releases: u64,
    witness_unavailable_releases: u64,
    payment_failed_releases: u64,
    messages_sent: u64,
    dropped: u64,
    duplicated: u64,
    partitioned: u64,
    to_down_nodes: u64,
    orphaned_replies: u64,
    crashes_before_commit: u64,
    crashes_after_commit: u64,
    restarts: u64,
    partitions: u64,
    witness_outages: u64,
    witness_censorships: u64,
    publications: u64,
    publish_attempts_down: u64,
    publish_attempts_censored: u64,
    publish_failed: u64,
    commits: u64,
    sim_seconds: u64,
}

impl Totals {
    fn add(&mut self, r: &RoutedReport) {
        let release = |reason: &str| r.releases.get(reason).copied().unwrap_or(0);
        self.runs += 1;
        self.nodes += r.nodes as u64;
        self.payments_attempted += r.payments_attempted;
        self.payments_sent += r.payments_sent;
        self.completed += r.payments_completed;
        self.failed += r.payments_failed;
        self.multi_hop += r.payments_multi_hop;
        self.multi_part += r.payments_multi_part;
        self.oversized += r.planned_oversized;
        self.fee_too_low_planned += r.planned_fee_too_low;
        self.refused_locally += r.payments_refused_locally;
        self.ious_counted += r.ious_counted;
        self.ious_released += r.ious_released;
        self.ious_expired += r.ious_expired;
        self.over_limit_releases += release("OverLimit");
        self.fee_too_low_releases += release("FeeTooLow");
        self.cannot_forward_releases += release("CannotForward");
        self.expired_releases += release("Expired");
        self.witness_unavailable_releases += release("WitnessUnavailable");
        self.payment_failed_releases += release("PaymentFailed");
        self.messages_sent += r.messages_sent;
        self.dropped += r.messages_dropped;
        self.duplicated += r.messages_duplicated;
        self.partitioned += r.messages_partitioned;
        self.to_down_nodes += r.messages_node_down;
        self.orphaned_replies += r.replies_orphaned;
        self.crashes_before_commit += r.crashes_before_commit;
        self.crashes_after_commit += r.crashes_after_commit;
        self.restarts += r.restarts;
        self.partitions += r.partitions;
        self.witness_outages += r.witness_outages;
        self.witness_censorships += r.witness_censorships;
        self.publications += r.publications;
        self.publish_attempts_down += r.publish_attempts_down;
        self.publish_attempts_censored += r.publish_attempts_censored;
        self.publish_failed += r.publish_failed;
        self.commits += r.commits;
        self.sim_seconds += r.sim_seconds;
    }
}

/// The acceptance runs: 20 seeds (by default) of 1,000 routed payments over 20 nodes each,
/// with every fault, every invariant checked after every commit.
#[test]
fn routed_seeds() {
    if let Some(seed) = env_u64("ATOMICITY_SIM_SEED") {
        let mut config = configured(seed);
        config.keep_trace = std::env::var_os("ATOMICITY_SIM_TRACE").is_some();
        let started = std::time::Instant::now();
        let report = match run_routed(config) {
            Ok(report) => report,
            Err(violation) => panic!("{violation}"),
        };
        for line in &report.trace {
            println!("{line}");
        }
        println!("{report}");
        println!("({:.1} s)", started.elapsed().as_secs_f64());
        return;
    }
    let first = env_u64("ATOMICITY_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("ATOMICITY_SIM_SEEDS").unwrap_or(20);
    let configs: Vec<RoutedConfig> = (first..first + count).map(configured).collect();
    let standard = configs.iter().all(|c| *c == RoutedConfig::for_seed(c.seed));
    let started = std::time::Instant::now();
    let reports = reports_or_panic(run_all(configs));
    let mut totals = Totals::default();
    for report in &reports {
        println!(
            "seed {:>3}: {} nodes, {} payments sent, {} completed, {} failed, {} crashes, {} \
             partitions, {} witness outages/censorships, {} s simulated, digest {:016x}",
            report.seed,
            report.nodes,
            report.payments_sent,
            report.payments_completed,
            report.payments_failed,
            report.crashes_before_commit + report.crashes_after_commit,
            report.partitions,
            report.witness_outages + report.witness_censorships,
            report.sim_seconds,
            report.digest
        );
        totals.add(report);
    }
    println!("{totals:#?}");
    println!(
        "{} runs in {:.1} s",
        totals.runs,
        started.elapsed().as_secs_f64()
    );
    if standard && count >= 20 {
        // The acceptance bar, and proof that the runs exercise what they claim to.
        assert!(totals.nodes >= 20 * totals.runs, "{totals:#?}");
        assert!(
            totals.payments_attempted >= 1000 * totals.runs,
            "{totals:#?}"
        );
        assert!(totals.completed > 0 && totals.failed > 0, "{totals:#?}");
        assert!(totals.multi_hop > 0 && totals.multi_part > 0, "{totals:#?}");
        assert!(
            totals.oversized > 0 && totals.fee_too_low_planned > 0 && totals.refused_locally > 0,
            "{totals:#?}"
        );
        assert!(
            totals.over_limit_releases > 0
                && totals.fee_too_low_releases > 0
                && totals.cannot_forward_releases > 0
                && totals.expired_releases > 0
                && totals.witness_unavailable_releases > 0
                && totals.payment_failed_releases > 0,
            "{totals:#?}"
        );
        assert!(
            totals.dropped > 0
                && totals.duplicated > 0
                && totals.partitioned > 0
                && totals.to_down_nodes > 0
                && totals.orphaned_replies > 0,
            "{totals:#?}"
        );
        assert!(
            totals.crashes_before_commit > 0
                && totals.crashes_after_commit > 0
                && totals.restarts > 0
                && totals.partitions > 0,
            "{totals:#?}"
        );
        assert!(
            totals.witness_outages > 0
                && totals.witness_censorships > 0
                && totals.publish_attempts_down > 0
                && totals.publish_attempts_censored > 0
                && totals.publish_failed > 0,
            "{totals:#?}"
        );
    }
}

#[test]
fn same_seed_same_run() {
    if single_seed_mode() {
        return;
    }
    let config = |seed| RoutedConfig {
        nodes: 8,
        payments: 120,
        keep_trace: true,
        ..RoutedConfig::for_seed(seed)
    };
    let results = run_all(vec![config(42), config(42), config(43)]);
    let reports = reports_or_panic(results);
    assert_eq!(reports[0].trace, reports[1].trace);
    assert_eq!(reports[0], reports[1]);
    assert!(reports[0].trace.len() > 1000);
    assert_ne!(reports[0].digest, reports[2].digest);
}

#[test]
fn heavy_faults_small_and_large_networks() {
    if single_seed_mode() {
        return;
    }
    let configs = vec![
        RoutedConfig {
            payments: 300,
            faults: RoutedFaults::heavy(),
            ..RoutedConfig::for_seed(1000)
        },
        RoutedConfig {
            nodes: 5,
            payments: 300,
            faults: RoutedFaults::heavy(),
            ..RoutedConfig::for_seed(1001)
        },
        RoutedConfig {
            nodes: 64,
            payments: 300,
            ..RoutedConfig::for_seed(1002)
        },
    ];
    let reports = reports_or_panic(run_all(configs));
    for report in &reports {
        println!("{report}\n");
        assert!(report.payments_completed > 0, "{report}");
    }
}

#[test]
fn without_faults_only_limits_and_fees_fail_payments() {
    if single_seed_mode() {
        return;
    }
    let configs = (2000..2002)
        .map(|seed| RoutedConfig {
            payments: 250,
            faults: RoutedFaults::none(),
            ..RoutedConfig::for_seed(seed)
        })
        .collect();
    for report in reports_or_panic(run_all(configs)) {
        assert_eq!(report.messages_dropped + report.messages_partitioned, 0);
        assert_eq!(
            report.crashes_before_commit + report.crashes_after_commit,
            0
        );
        assert_eq!(report.publish_failed + report.invoices_lost, 0, "{report}");
        assert_eq!(report.ious_expired, 0, "{report}");
        let by_witness = report.releases.get("WitnessUnavailable").copied();
        assert_eq!(by_witness, None, "{report}");
        assert!(
            report.payments_completed > report.payments_failed,
            "{report}"
        );
    }
}

#[test]
fn bad_configurations_are_refused() {
    let too_few = RoutedConfig {
        nodes: 2,
        ..RoutedConfig::for_seed(1)
    };
    let violation = run_routed(too_few).expect_err("two nodes");
    assert!(
        violation.what.contains("invalid configuration"),
        "{violation}"
    );
    let short_grace = RoutedConfig {
        expiry_grace_secs: 30,
        ..RoutedConfig::for_seed(1)
    };
    let violation = run_routed(short_grace).expect_err("a grace shorter than the faults");
    assert!(violation.what.contains("grace"), "{violation}");
}

#[test]
fn replay_commands() {
    assert_eq!(
        RoutedConfig::for_seed(7).replay_hint(),
        "ATOMICITY_SIM_SEED=7 cargo test -p atomicity-sim --test routed_seeds -- --nocapture   \
         (add ATOMICITY_SIM_TRACE=1 to print every event)"
    );
    let heavy = RoutedConfig {
        nodes: 5,
        payments: 300,
        faults: RoutedFaults::heavy(),
        ..RoutedConfig::for_seed(1001)
    };
    assert!(heavy.replay_hint().starts_with(
        "ATOMICITY_SIM_SEED=1001 ATOMICITY_SIM_NODES=5 ATOMICITY_SIM_PAYMENTS=300 \
         ATOMICITY_SIM_FAULTS=heavy cargo test"
    ));
}

/// Finding R1 of this simulation (fixed), reduced to three ledgers: A pays C through B; B
/// accepts A's IOU and forwards it; C refuses it, so B releases A's IOU early. B's Release
/// reaches A before B's (delayed) Accepted reply does. A must take the late acceptance as
/// stale: B signed both honestly, and the IOU stays released. A used to reject the reply as a
/// conflicting answer and keep it as evidence against B (seed 0 found it at step 45).
#[test]
fn r1_a_late_acceptance_after_an_early_release_is_stale() {
    let usd = Asset::new("USD", 2).expect("asset");
    let keys: Vec<Keypair> = (1..=3u8)
        .map(|i| Keypair::from_secret_key(&[i; 32]))
        .collect();
    let pk = |i: usize| keys[i].public_key();
    let mut ledgers: Vec<Ledger> = keys.iter().map(|k| Ledger::new(k.clone())).collect();
    let mut ops = Vec::new();
    let limit = Some(Amount::from_minor(100_000));
    for (x, y) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        ledgers[x].add_peer(pk(y), None, &mut ops).expect("peer");
        ledgers[x]
            .set_limits(&pk(y), &usd, limit, limit, &mut ops)
            .expect("limits");
    }
    let signer = Signer::new(
        "witness.test/log",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .expect("signer");
    let now = 1_700_000_000;
    let p = [5; 32];
    let condition = WitnessCondition {
        hash: payment_hash(&p),
        witnesses: vec![WitnessTerms::new(signer.vkey(), 0, 100)],
    };
    // A pays 10 to C through B (C made no invoice, so it will refuse: any refusal will do).
    let hops = vec![
        Hop {
            next: pk(1),
            amount: Amount::from_minor(1000),
        },
        Hop {
            next: pk(2),
            amount: Amount::from_minor(1000),
        },
    ];
    ledgers[0]
        .pay_routed(
            &pk(2),
            &usd,
            vec![RoutePart { hops }],
            condition,
            now + 600,
            [9; 32],
            String::new(),
            None,
            now,
            &mut ops,
        )
        .expect("pay");
    let forward = ledgers[0].take_outgoing().remove(0).1;
    let accepted = ledgers[1].handle_message(&pk(0), forward, now, &mut ops);
    assert!(matches!(accepted, Reply::Accepted(_)), "{accepted:?}");
    let onward = ledgers[1].take_outgoing().remove(0).1;
    let refused = ledgers[2].handle_message(&pk(1), onward, now, &mut ops);
    assert!(matches!(refused, Reply::Released(_)), "{refused:?}");
    ledgers[1]
        .handle_reply(&pk(2), refused, now, &mut ops)
        .expect("B takes C's release");
    let release = ledgers[1].take_outgoing().remove(0).1;
    assert!(matches!(release, Message::Release(_)), "{release:?}");
    // The release overtakes the acceptance.
    let answer = ledgers[0].handle_message(&pk(1), release, now, &mut ops);
    assert_eq!(answer, Reply::Ok);
    let mut late = Vec::new();
    let outcome = ledgers[0].handle_reply(&pk(1), accepted, now + 1, &mut late);
    assert!(
        matches!(outcome, Ok(None | Some(PaymentOutcome::Refused(_)))),
        "A refuses B's late acceptance: {outcome:?}"
    );
    assert!(
        !late.iter().any(|op| matches!(op, StoreOp::PutEvidence(_))),
        "A keeps evidence against honest B: {late:?}"
    );
}
