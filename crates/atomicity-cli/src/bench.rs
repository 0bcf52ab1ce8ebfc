//! `atomicity bench`: direct payments between two nodes on loopback with durable storage, with
//! the machine's own limits (cores, Ed25519 sign/verify rates, fsync latency) measured in the
//! same run and printed beside the results. `atomicity bench witness` measures the witness log
//! ([`crate::bench_witness`]) with the same machine probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use atomicity_core::Keypair;
use atomicity_node::api::{PayRequest, SetLineRequest};
use atomicity_node::client::ApiClient;
use atomicity_node::{NodeConfig, RunningNode};
use serde::Serialize;

/// `atomicity bench`'s subcommands (without one it measures direct payments).
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Measure the witness log: durable submissions/s (single, batched, storage only) and
    /// proof sizes and verification times at a given log size.
    Witness(crate::bench_witness::WitnessBenchArgs),
    /// Measure routed payments: four-hop latency, and forwards per second through one node.
    Routed(crate::bench_routed::RoutedBenchArgs),
    /// Measure the Mainline DHT on loopback: publishing and resolving node records.
    Dht(crate::bench_dht::DhtBenchArgs),
    /// Measure path finding on synthetic credit graphs (15k/75k and 100k/350k).
    Route(crate::bench_route::RouteBenchArgs),
}

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Logical cores.
    pub cores: usize,
    /// Ed25519 signatures per second on one core.
    pub ed25519_signs_per_sec: f64,
    /// Ed25519 strict verifications per second on one core.
    pub ed25519_verifies_per_sec: f64,
    /// Median latency of write + fsync of 4 KiB in the data directory, ms.
    pub fsync_p50_ms: f64,
    /// Sequential payments measured for latency.
    pub latency_payments: usize,
    /// Median latency of one payment with nothing else in flight, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub latency_p99_ms: f64,
    /// Payments in the throughput run.
    pub throughput_payments: usize,
    /// Payments in flight at once.
    pub concurrency: usize,
    /// Completed payments per second.
    pub payments_per_sec: f64,
    /// Median latency under load, ms.
    pub loaded_p50_ms: f64,
    /// 99th percentile under load, ms.
    pub loaded_p99_ms: f64,
}

/// The `p` quantile (0 to 1) of sorted durations, ms.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Ed25519 (signs, strict verifies) per second on one core.
pub(crate) fn ed25519_rates() -> (f64, f64) {
    let key = Keypair::from_secret_key(&[7u8; 32]);
    let message = [0u8; 200];
    let n = 3000;
    let start = Instant::now();
    let mut signature = key.sign(&message);
    for i in 0..n {
        let mut m = message;
        m[0] = i as u8;
        signature = key.sign(&m);
    }
    let signs = n as f64 / start.elapsed().as_secs_f64();
    let public = key.public_key();
    let mut m = message;
    m[0] = (n - 1) as u8;
    let start = Instant::now();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(public.verifying_key().verify_strict(&m, &signature).is_ok());
    }
    let verifies = n as f64 / start.elapsed().as_secs_f64();
    debug_assert_eq!(ok, n);
    (signs, verifies)
}

/// Median latency of write + fsync of 4 KiB in `dir`, ms.
pub(crate) fn fsync_p50(dir: &std::path::Path) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_all()?;
        times.push(start.elapsed());
    }
    std::fs::remove_file(&path)?;
    times.sort();
    Ok(percentile(&times, 0.5))
}

/// A node in this process on loopback, in `root/name`, using `witnesses`.
pub(crate) async fn start_node(
    root: &std::path::Path,
    name: &str,
    witnesses: Vec<String>,
) -> Result<RunningNode> {
    start_node_cosigned(root, name, witnesses, Vec::new()).await
}

/// [`start_node`] whose invoices require `cosigners` to cosign the witness checkpoints.
pub(crate) async fn start_node_cosigned(
    root: &std::path::Path,
    name: &str,
    witnesses: Vec<String>,
    witness_cosigners: Vec<String>,
) -> Result<RunningNode> {
    let dir = atomicity_node::datadir::DataDir::new(root.join(name));
    dir.init()?;
    Ok(atomicity_node::start(NodeConfig {
        witnesses,
        witness_cosigners,
        ..NodeConfig::new(dir.root())
    })
    .await?)
}

async fn pay_once(api: &ApiClient, payee: &str) -> Result<Duration> {
    let start = Instant::now();
    let r = api
        .pay(&PayRequest {
            peer: payee.to_string(),
            amount: "0.01".into(),
            asset: "USD".into(),
            memo: String::new(),
            wait_ms: Some(30_000),
            routes: Vec::new(),
        })
        .await?;
    if r.status != "completed" {
        bail!("payment {}: {:?}", r.status, r.reason);
    }
    Ok(start.elapsed())
}

/// Runs the benchmark and prints the report.
pub async fn run(payments: usize, concurrency: usize, json: bool) -> Result<()> {
    let concurrency = concurrency.max(1);
    let temp = tempfile::Builder::new()
        .prefix("atomicity-bench-")
        .tempdir()?;
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    say("measuring the machine: Ed25519 and fsync ...");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (signs, verifies) = ed25519_rates();
    let fsync = fsync_p50(temp.path())?;

    say("starting two nodes ...");
    let alice = start_node(temp.path(), "alice", Vec::new()).await?;
    let bob = start_node(temp.path(), "bob", Vec::new()).await?;
    let (a, b) = (alice.client(), bob.client());
    a.add_peer(&bob.key.to_z32(), Some(&bob.node_url)).await?;
    b.add_peer(&alice.key.to_z32(), Some(&alice.node_url))
        .await?;
    let big = Some("100000000".to_string());
    for (api, peer) in [(&a, &bob.key), (&b, &alice.key)] {
        api.set_line(&SetLineRequest {
            peer: peer.to_z32(),
            asset: "USD".into(),
            accept: big.clone(),
            issue: big.clone(),
            fee_base: None,
            fee_ppm: None,
        })
        .await?;
    }
    let payee = bob.key.to_z32();

    let latency_payments = 500.min(payments.max(1));
    say(&format!(
        "latency: {latency_payments} payments one at a time ..."
    ));
    for _ in 0..20 {
        pay_once(&a, &payee).await?;
    }
    let mut lat = Vec::with_capacity(latency_payments);
    for _ in 0..latency_payments {
        lat.push(pay_once(&a, &payee).await?);
    }
    lat.sort();

    say(&format!(
        "throughput: {payments} payments, {concurrency} in flight ..."
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, payee, next) = (a.clone(), payee.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut times = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < payments {
                times.push(pay_once(&api, &payee).await?);
            }
            anyhow::Ok(times)
        });
    }
    let mut loaded = Vec::with_capacity(payments);
    while let Some(result) = workers.join_next().await {
        loaded.extend(result??);
    }
    let elapsed = start.elapsed();
    loaded.sort();

    // Both ends must agree at the end, or the figures mean nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ra, rb) = (a.balance().await?, b.balance().await?);
        if let (Some(x), Some(y)) = (ra.first(), rb.first())
            && x.out_seq == y.in_seq
            && x.out_total == y.in_total
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the two nodes did not converge after the run");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.shutdown().await;
    bob.shutdown().await;

    let report = Report {
        cores,
        ed25519_signs_per_sec: signs,
        ed25519_verifies_per_sec: verifies,
        fsync_p50_ms: fsync,
        latency_payments,
        latency_p50_ms: percentile(&lat, 0.5),
        latency_p99_ms: percentile(&lat, 0.99),
        throughput_payments: loaded.len(),
        concurrency,
        payments_per_sec: loaded.len() as f64 / elapsed.as_secs_f64(),
        loaded_p50_ms: percentile(&loaded, 0.5),
        loaded_p99_ms: percentile(&loaded, 0.99),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// The machine's limits, printed above a benchmark's figures.
pub(crate) fn print_machine(cores: usize, signs: f64, verifies: f64, fsync_ms: f64) {
    println!("machine");
    println!("  cores                      {cores}");
    println!("  Ed25519 sign               {signs:.0} /s (one core)");
    println!("  Ed25519 verify (strict)    {verifies:.0} /s (one core)");
    println!("  write+fsync 4 KiB, p50     {fsync_ms:.3} ms");
}

fn print_report(r: &Report) {
    print_machine(
        r.cores,
        r.ed25519_signs_per_sec,
        r.ed25519_verifies_per_sec,
        r.fsync_p50_ms,
    );
    println!("direct payments, two nodes on loopback, SQLite WAL synchronous=FULL");
    println!(
        "  one at a time ({} payments)   p50 {:.2} ms   p99 {:.2} ms",
        r.latency_payments, r.latency_p50_ms, r.latency_p99_ms
    );
    println!(
        "  {} in flight ({} payments)    {:.0} payments/s   p50 {:.2} ms   p99 {:.2} ms",
        r.concurrency, r.throughput_payments, r.payments_per_sec, r.loaded_p50_ms, r.loaded_p99_ms
    );
}
