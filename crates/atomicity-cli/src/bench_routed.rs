//! `atomicity bench routed`: routed payments on loopback with durable storage.
//!
//! - **Latency**: a chain A → B → C → D → E (four hops, fees at B, C and D) and a real witness
//!   log, all in this process but talking real HTTP. E makes an invoice (not timed), A pays it
//!   through B, C, D; the time is from A's request until A knows the payment is complete (the
//!   proof has come back to A). The publication on the witness is part of it and also timed
//!   alone (submit + bundle), so the routing share can be told apart. This witness serves a
//!   bundle against a checkpoint it signs on demand, so there is no block wait.
//! - **Latency with the witness's wait**: the same chain again, but E's invoices require a
//!   watchtower's cosignature on the checkpoint (`--witness-cosigner`), so E waits for the
//!   witness's next cosigning round (every second, see `docs/witness.md`) before it can claim.
//! - **Forwards per second**: X → M → Y and a witness as real `atomicity` processes, many
//!   payments in flight through X's local API, every one forwarded by M. Invoices are made
//!   before the clock starts. Each process's CPU time and disk writes are read from `/proc`
//!   before and after, so M's own cost per forward is reported beside the end-to-end figure
//!   (on a small machine the payer, payee, witness and load share M's cores).
//!
//! The machine's limits (cores, Ed25519 sign/verify, fsync) are measured in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use atomicity_node::RunningNode;
use atomicity_node::api::{InvoiceRequest, PayInvoiceRequest, SetLineRequest};
use atomicity_node::client::ApiClient;
use atomicity_node::witness_client::WitnessClient;
use atomicity_witness::tower_service;
use serde::Serialize;

use crate::bench::{ed25519_rates, fsync_p50, percentile, print_machine, start_node_cosigned};
use crate::harness::{NodeProcess, ServiceProcess};

/// Options of `atomicity bench routed`.
#[derive(Debug, clap::Args)]
pub struct RoutedBenchArgs {
    /// Sequential four-hop payments for the latency figures.
    #[arg(long, default_value_t = 200)]
    pub latency_payments: usize,
    /// Sequential four-hop payments whose invoices require a watchtower's cosignature (each
    /// waits for the next cosigned checkpoint, about a second).
    #[arg(long, default_value_t = 20)]
    pub cosigned_payments: usize,
    /// Payments forwarded by the middle node in the throughput run.
    #[arg(long, default_value_t = 3000)]
    pub payments: usize,
    /// Payments in flight at once in the throughput run.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The `atomicity` program to start the node processes with (default: this one; tests,
    /// whose own program is the test harness, name the real one).
    #[arg(skip)]
    pub program: Option<std::path::PathBuf>,
}

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct RoutedReport {
    /// Logical cores.
    pub cores: usize,
    /// Ed25519 signatures per second on one core.
    pub ed25519_signs_per_sec: f64,
    /// Ed25519 strict verifications per second on one core.
    pub ed25519_verifies_per_sec: f64,
    /// Median write + fsync of 4 KiB, ms.
    pub fsync_p50_ms: f64,
    /// Sequential four-hop payments measured.
    pub latency_payments: usize,
    /// Median end-to-end latency of a four-hop payment, ms.
    pub four_hop_p50_ms: f64,
    /// 99th percentile, ms.
    pub four_hop_p99_ms: f64,
    /// Sequential four-hop payments measured with a cosigned witness condition.
    pub cosigned_payments: usize,
    /// Median end-to-end latency of a four-hop payment whose condition requires a watchtower's
    /// cosignature (it includes the wait for the next cosigned checkpoint), ms.
    pub cosigned_p50_ms: f64,
    /// 99th percentile, ms.
    pub cosigned_p99_ms: f64,
    /// Median time to publish a secret on the witness (submit + bundle), ms.
    pub publish_p50_ms: f64,
    /// 99th percentile, ms.
    pub publish_p99_ms: f64,
    /// Payments forwarded by the middle node.
    pub forwarded: usize,
    /// Payments in flight at once.
    pub concurrency: usize,
    /// Forwarded payments per second through the middle node.
    pub forwards_per_sec: f64,
    /// Median payment latency under that load, ms.
    pub loaded_p50_ms: f64,
    /// 99th percentile, ms.
    pub loaded_p99_ms: f64,
    /// The slowest payment, ms (one that waited for a resend shows here).
    pub loaded_max_ms: f64,
    /// CPU time (user + system) each process spent per payment in the throughput run, µs.
    pub cpu_us_per_payment: CpuPerPayment,
    /// Forwards one core of M's own would carry: 10^6 / M's CPU µs per forward.
    pub middle_forwards_per_core_sec: f64,
    /// Share of the whole machine's CPU time that was busy during the throughput run (0 to 1).
    pub machine_busy: f64,
    /// KiB written to storage per payment, by process.
    pub written_kib_per_payment: WrittenPerPayment,
}

/// CPU time (user + system) per payment of the throughput run, µs, by process.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuPerPayment {
    /// The payer X (and its local API, which the load calls).
    pub payer: f64,
    /// The middle node M, which forwards every payment.
    pub middle: f64,
    /// The payee Y.
    pub payee: f64,
    /// The witness log.
    pub witness: f64,
    /// This process: the load generator calling X's API.
    pub load: f64,
}

/// KiB written to storage per payment of the throughput run, by process.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WrittenPerPayment {
    /// The payer X.
    pub payer: f64,
    /// The middle node M.
    pub middle: f64,
    /// The payee Y.
    pub payee: f64,
    /// The witness log.
    pub witness: f64,
}

/// What the throughput run measured.
struct Throughput {
    latencies: Vec<Duration>,
    elapsed: Duration,
    cpu_us_per_payment: CpuPerPayment,
    machine_busy: f64,
    written_kib_per_payment: WrittenPerPayment,
}

/// Bytes a process caused to be written to storage (`write_bytes` of `/proc/PID/io`).
fn written_bytes(pid: &str) -> Result<f64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .ok_or_else(|| anyhow::anyhow!("no write_bytes in /proc/{pid}/io"))?
        .trim()
        .parse::<u64>()
        .map(|b| b as f64)
        .map_err(Into::into)
}

/// Busy and total CPU time of the whole machine so far, in USER_HZ ticks (`/proc/stat`): the
/// kernel's own work for these processes (loopback networking, writeback, journaling) is not
/// all in the processes' times.
fn machine_ticks() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/stat"))?;
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .map(|t| t.parse::<u64>().map(|t| t as f64))
        .collect::<Result<_, _>>()?;
    let total: f64 = ticks.iter().sum();
    // Fields 4 and 5 are idle and iowait.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    Ok((total - idle, total))
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat` (in USER_HZ ticks,
/// which Linux fixes at 100 per second for user space).
fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse::<u64>()? as f64)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// X → M → Y as real `atomicity node run` processes with a witness process, so that each
/// one's CPU time can be told apart; the load comes from this process through X's local API.
async fn throughput(
    root: &std::path::Path,
    args: &RoutedBenchArgs,
    say: &impl Fn(&str),
) -> Result<Throughput> {
    say("starting a witness process and X -> M -> Y as node processes ...");
    let bin = match &args.program {
        Some(program) => program.clone(),
        None => std::env::current_exe()?,
    };
    let root = root.to_path_buf();
    let (witness, x, m, y) = tokio::task::spawn_blocking(move || -> Result<_> {
        let witness = ServiceProcess::start(
            &bin,
            &root.join("witness-process"),
            "witness",
            &["--listen".into(), "127.0.0.1:0".into()],
        )?;
        let with = ["--witness".to_string(), witness.url.clone()];
        let node =
            |name: &str| NodeProcess::start_with(&bin, &root.join(name), "127.0.0.1:0", &with);
        let (x, m, y) = (node("x")?, node("m")?, node("y")?);
        Ok((witness, x, m, y))
    })
    .await??;
    connect(&x, &m, ("0", 0)).await?;
    connect(&m, &y, ("0.01", 1000)).await?;
    let via = vec![m.key.clone()];
    say(&format!("making {} invoices ...", args.payments));
    let mut invoices = Vec::with_capacity(args.payments);
    for _ in 0..args.payments {
        invoices.push(invoice(&y.api).await?);
    }
    let invoices = Arc::new(invoices);
    say(&format!(
        "throughput: {} payments through M, {} in flight ...",
        args.payments, args.concurrency
    ));
    let pids: Vec<String> = [
        x.pid(),
        m.pid(),
        y.pid(),
        witness.pid(),
        Some(std::process::id()),
    ]
    .into_iter()
    .map(|p| p.map(|p| p.to_string()).unwrap_or_else(|| "self".into()))
    .collect();
    let cpu =
        |pids: &[String]| -> Result<Vec<f64>> { pids.iter().map(|p| cpu_seconds(p)).collect() };
    let disk =
        |pids: &[String]| -> Result<Vec<f64>> { pids.iter().map(|p| written_bytes(p)).collect() };
    let (machine_before, disk_before) = (machine_ticks()?, disk(&pids)?);
    let before = cpu(&pids)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (api, via, next, invoices) = (
            x.api.clone(),
            via.clone(),
            Arc::clone(&next),
            Arc::clone(&invoices),
        );
        workers.spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(inv) = invoices.get(i) else { break };
                times.push(pay(&api, inv.clone(), &via).await?);
            }
            anyhow::Ok(times)
        });
    }
    let mut latencies = Vec::with_capacity(args.payments);
    while let Some(result) = workers.join_next().await {
        latencies.extend(result??);
    }
    let elapsed = start.elapsed();
    let after = cpu(&pids)?;
    let (machine_after, disk_after) = (machine_ticks()?, disk(&pids)?);
    latencies.sort();
    let n = latencies.len().max(1) as f64;
    let per = |i: usize| (after[i] - before[i]) * 1e6 / n;
    let cpu_us_per_payment = CpuPerPayment {
        payer: per(0),
        middle: per(1),
        payee: per(2),
        witness: per(3),
        load: per(4),
    };
    let machine_busy =
        (machine_after.0 - machine_before.0) / (machine_after.1 - machine_before.1).max(1.0);
    let kib = |i: usize| (disk_after[i] - disk_before[i]) / 1024.0 / n;
    tokio::task::spawn_blocking(move || drop((x, m, y, witness))).await?;
    Ok(Throughput {
        latencies,
        elapsed,
        cpu_us_per_payment,
        machine_busy,
        written_kib_per_payment: WrittenPerPayment {
            payer: kib(0),
            middle: kib(1),
            payee: kib(2),
            witness: kib(3),
        },
    })
}

/// Something with a key, a peer URL and a local API: an in-process node or a node process.
trait Party {
    fn key(&self) -> String;
    fn url(&self) -> String;
    fn api(&self) -> ApiClient;
}

impl Party for RunningNode {
    fn key(&self) -> String {
        self.key.to_z32()
    }
    fn url(&self) -> String {
        self.node_url.clone()
    }
    fn api(&self) -> ApiClient {
        self.client()
    }
}

impl Party for NodeProcess {
    fn key(&self) -> String {
        self.key.clone()
    }
    fn url(&self) -> String {
        self.node_url.clone()
    }
    fn api(&self) -> ApiClient {
        self.api.clone()
    }
}

/// Opens lines both ways between `a` and `b`; `fee` is what `a` charges to forward to `b` and
/// `b` to forward to `a` (base, ppm).
async fn connect<P: Party>(a: &P, b: &P, fee: (&str, u32)) -> Result<()> {
    for (x, y) in [(a, b), (b, a)] {
        let api = x.api();
        api.add_peer(&y.key(), Some(&y.url())).await?;
        api.set_line(&SetLineRequest {
            peer: y.key(),
            asset: "USD".into(),
            accept: Some("100000000".into()),
            issue: Some("100000000".into()),
            fee_base: Some(fee.0.into()),
            fee_ppm: Some(fee.1),
        })
        .await?;
    }
    Ok(())
}

async fn invoice(payee: &ApiClient) -> Result<String> {
    Ok(payee
        .new_invoice(&InvoiceRequest {
            amount: "0.50".into(),
            asset: "USD".into(),
            memo: String::new(),
            expires_in: Some(3600),
        })
        .await?
        .invoice)
}

async fn pay(payer: &ApiClient, invoice: String, route: &[String]) -> Result<Duration> {
    let start = Instant::now();
    let r = payer
        .pay_invoice(&PayInvoiceRequest {
            invoice,
            routes: vec![route.to_vec()],
            wait_ms: Some(60_000),
        })
        .await?;
    if r.status != "completed" {
        bail!("routed payment {}: {:?}", r.status, r.reason);
    }
    Ok(start.elapsed())
}

/// A witness log in this process with 10-second blocks, asking `cosigners` (key, URL) to cosign.
async fn start_witness(
    dir: &std::path::Path,
    cosigners: Vec<(String, String)>,
) -> Result<atomicity_witness::service::RunningWitness> {
    Ok(
        atomicity_witness::service::start(atomicity_witness::service::WitnessConfig {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            block_seconds: 10,
            origin: None,
            cosigners,
            censor: false,
        })
        .await?,
    )
}

/// Five nodes A → B → C → D → E in this process (fees at B, C and D), using `witness`; E's
/// invoices require `cosigners`.
async fn chain(
    root: &std::path::Path,
    prefix: &str,
    witness: &str,
    cosigners: Vec<String>,
) -> Result<Vec<RunningNode>> {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        let name = format!("{prefix}{name}");
        let node =
            start_node_cosigned(root, &name, vec![witness.to_string()], cosigners.clone()).await?;
        nodes.push(node);
    }
    connect(&nodes[0], &nodes[1], ("0", 0)).await?;
    connect(&nodes[1], &nodes[2], ("0.01", 1000)).await?;
    connect(&nodes[2], &nodes[3], ("0.01", 1000)).await?;
    connect(&nodes[3], &nodes[4], ("0.01", 1000)).await?;
    Ok(nodes)
}

/// A pays E's invoices through B, C and D one at a time: `warm_up` untimed, then `count`
/// timed (sorted), each after a random pause of up to `jitter` (so that payments do not fall
/// into step with a periodic wait such as the witness's cosigning round).
async fn pay_sequentially(
    nodes: &[RunningNode],
    warm_up: usize,
    count: usize,
    jitter: Duration,
) -> Result<Vec<Duration>> {
    let (Some(a), Some(e)) = (nodes.first(), nodes.last()) else {
        bail!("no chain");
    };
    let (a, e) = (a.client(), e.client());
    let route: Vec<String> = nodes[1..nodes.len() - 1]
        .iter()
        .map(|n| n.key.to_z32())
        .collect();
    for _ in 0..warm_up {
        pay(&a, invoice(&e).await?, &route).await?;
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let inv = invoice(&e).await?;
        if !jitter.is_zero() {
            tokio::time::sleep(jitter.mul_f64(rand::random::<f64>())).await;
        }
        times.push(pay(&a, inv, &route).await?);
    }
    times.sort();
    Ok(times)
}

/// Runs the benchmark and prints the report.
pub async fn run(args: RoutedBenchArgs) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("atomicity-bench-routed-")
        .tempdir()?;
    let json = args.json;
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    say("measuring the machine: Ed25519 and fsync ...");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (signs, verifies) = ed25519_rates();
    let fsync = fsync_p50(temp.path())?;

    say("starting a witness and five nodes ...");
    let witness_dir = temp.path().join("witness");
    let witness = start_witness(&witness_dir, Vec::new()).await?;
    let nodes = chain(temp.path(), "", &witness.url, Vec::new()).await?;
    say(&format!(
        "latency: {} four-hop payments one at a time ...",
        args.latency_payments
    ));
    let four_hop = pay_sequentially(&nodes, 10, args.latency_payments, Duration::ZERO).await?;

    say("publishing secrets on the witness alone ...");
    let client = WitnessClient::new(&witness.url);
    let mut publish = Vec::with_capacity(args.latency_payments);
    for _ in 0..args.latency_payments {
        let p: [u8; 32] = rand::random();
        let start = Instant::now();
        client.submit(&p).await?;
        if client.bundle(&p).await?.is_none() {
            bail!("the witness has no bundle for a secret it took");
        }
        publish.push(start.elapsed());
    }
    publish.sort();
    for node in nodes {
        node.shutdown().await;
    }
    let log_vkey = witness.vkey.clone();
    witness.shutdown().await;

    say(&format!(
        "latency with a watchtower's cosignature: {} four-hop payments one at a time ...",
        args.cosigned_payments
    ));
    let tower = tower_service::start(tower_service::WatchtowerConfig {
        dir: temp.path().join("watchtower"),
        listen: "127.0.0.1:0".parse()?,
        name: None,
        logs: vec![(log_vkey, None)],
        poll_seconds: 10,
    })
    .await?;
    let witness =
        start_witness(&witness_dir, vec![(tower.vkey.clone(), tower.url.clone())]).await?;
    let nodes = chain(
        temp.path(),
        "cosigned-",
        &witness.url,
        vec![tower.vkey.clone()],
    )
    .await?;
    let cosigned =
        pay_sequentially(&nodes, 1, args.cosigned_payments, Duration::from_secs(1)).await?;
    for node in nodes {
        node.shutdown().await;
    }
    witness.shutdown().await;
    tower.shutdown().await;

    let run = throughput(temp.path(), &args, &say).await?;
    let report = RoutedReport {
        cores,
        ed25519_signs_per_sec: signs,
        ed25519_verifies_per_sec: verifies,
        fsync_p50_ms: fsync,
        latency_payments: four_hop.len(),
        four_hop_p50_ms: percentile(&four_hop, 0.5),
        four_hop_p99_ms: percentile(&four_hop, 0.99),
        cosigned_payments: cosigned.len(),
        cosigned_p50_ms: percentile(&cosigned, 0.5),
        cosigned_p99_ms: percentile(&cosigned, 0.99),
        publish_p50_ms: percentile(&publish, 0.5),
        publish_p99_ms: percentile(&publish, 0.99),
        forwarded: run.latencies.len(),
        concurrency: args.concurrency,
        forwards_per_sec: run.latencies.len() as f64 / run.elapsed.as_secs_f64(),
        loaded_p50_ms: percentile(&run.latencies, 0.5),
        loaded_p99_ms: percentile(&run.latencies, 0.99),
        loaded_max_ms: run.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        middle_forwards_per_core_sec: 1e6 / run.cpu_us_per_payment.middle.max(f64::MIN_POSITIVE),
        cpu_us_per_payment: run.cpu_us_per_payment,
        machine_busy: run.machine_busy,
        written_kib_per_payment: run.written_kib_per_payment,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &RoutedReport) {
    print_machine(
        r.cores,
        r.ed25519_signs_per_sec,
        r.ed25519_verifies_per_sec,
        r.fsync_p50_ms,
    );
    println!("routed payments on loopback, SQLite WAL synchronous=FULL, one witness log");
    println!(
        "  4 hops A-B-C-D-E, one at a time ({} payments)  p50 {:.2} ms   p99 {:.2} ms",
        r.latency_payments, r.four_hop_p50_ms, r.four_hop_p99_ms
    );
    println!(
        "    of which publishing the secret (submit + bundle)  p50 {:.2} ms   p99 {:.2} ms",
        r.publish_p50_ms, r.publish_p99_ms
    );
    println!(
        "  4 hops, the invoice requiring a watchtower's cosignature ({} payments)  p50 {:.2} ms   p99 {:.2} ms",
        r.cosigned_payments, r.cosigned_p50_ms, r.cosigned_p99_ms
    );
    println!(
        "    (with the wait for the witness's next cosigning round, every second; payments start at random times)"
    );
    println!(
        "  forwards through one middle node X-M-Y, {} in flight: {:.0} /s ({} payments)",
        r.concurrency, r.forwards_per_sec, r.forwarded
    );
    println!(
        "    latency under that load  p50 {:.2} ms   p99 {:.2} ms   max {:.0} ms",
        r.loaded_p50_ms, r.loaded_p99_ms, r.loaded_max_ms
    );
    let c = &r.cpu_us_per_payment;
    println!(
        "    CPU per payment, µs: M {:.0}   X {:.0}   Y {:.0}   witness {:.0}   load {:.0}",
        c.middle, c.payer, c.payee, c.witness, c.load
    );
    println!(
        "    the whole machine was {:.0}% busy (the processes' own CPU is not all of it: the kernel works for loopback and disk)",
        r.machine_busy * 100.0
    );
    let w = &r.written_kib_per_payment;
    println!(
        "    written to disk per payment, KiB: M {:.1}   X {:.1}   Y {:.1}   witness {:.1}",
        w.middle, w.payer, w.payee, w.witness
    );
    println!(
        "    M's own CPU per forward -> {:.0} forwards/s per core of M (the {} cores are shared by all five)",
        r.middle_forwards_per_core_sec, r.cores
    );
}
