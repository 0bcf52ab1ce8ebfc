//! `atomicity bench routed`: routed payments on loopback with durable storage.
//!
//! - **Latency**: a chain A → B → C → D → E (four hops, fees at B, C and D) and a real witness
//!   log, all in this process but talking real HTTP. E makes an invoice (not timed), A pays it
//!   through B, C, D; the time is from A's request until A knows the payment is complete (the
//!   proof has come back to A). The publication on the witness is part of it and also timed
//!   alone (submit + bundle), so the routing share can be told apart. This witness serves a
//!   bundle against a checkpoint it signs on demand, so there is no block wait; with cosigners
//!   a payee would also wait for the next cosigned checkpoint (the cosign loop runs every
//!   second, see `docs/witness.md`).
//! - **Forwards per second**: X → M → Y, many payments in flight, every one forwarded by M.
//!   Invoices are made before the clock starts.
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
use serde::Serialize;

use crate::bench::{ed25519_rates, fsync_p50, percentile, print_machine, start_node};

/// Options of `atomicity bench routed`.
#[derive(Debug, clap::Args)]
pub struct RoutedBenchArgs {
    /// Sequential four-hop payments for the latency figures.
    #[arg(long, default_value_t = 200)]
    pub latency_payments: usize,
    /// Payments forwarded by the middle node in the throughput run.
    #[arg(long, default_value_t = 3000)]
    pub payments: usize,
    /// Payments in flight at once in the throughput run.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
}

/// Opens lines both ways between `a` and `b`; `fee` is what `a` charges to forward to `b` and
/// `b` to forward to `a` (base, ppm).
async fn connect(a: &RunningNode, b: &RunningNode, fee: (&str, u32)) -> Result<()> {
    for (x, y) in [(a, b), (b, a)] {
        let api = x.client();
        api.add_peer(&y.key.to_z32(), Some(&y.node_url)).await?;
        api.set_line(&SetLineRequest {
            peer: y.key.to_z32(),
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
    let witness = atomicity_witness::service::start(atomicity_witness::service::WitnessConfig {
        dir: temp.path().join("witness"),
        listen: "127.0.0.1:0".parse()?,
        block_seconds: 10,
        origin: None,
        cosigners: Vec::new(),
        censor: false,
    })
    .await?;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        nodes.push(start_node(temp.path(), name, vec![witness.url.clone()]).await?);
    }
    connect(&nodes[0], &nodes[1], ("0", 0)).await?;
    connect(&nodes[1], &nodes[2], ("0.01", 1000)).await?;
    connect(&nodes[2], &nodes[3], ("0.01", 1000)).await?;
    connect(&nodes[3], &nodes[4], ("0.01", 1000)).await?;
    let (a, e) = (nodes[0].client(), nodes[4].client());
    let route: Vec<String> = nodes[1..4].iter().map(|n| n.key.to_z32()).collect();

    say(&format!(
        "latency: {} four-hop payments one at a time ...",
        args.latency_payments
    ));
    for _ in 0..10 {
        pay(&a, invoice(&e).await?, &route).await?;
    }
    let mut four_hop = Vec::with_capacity(args.latency_payments);
    for _ in 0..args.latency_payments {
        let inv = invoice(&e).await?;
        four_hop.push(pay(&a, inv, &route).await?);
    }
    four_hop.sort();

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

    say("starting X -> M -> Y ...");
    let x = start_node(temp.path(), "x", vec![witness.url.clone()]).await?;
    let m = start_node(temp.path(), "m", vec![witness.url.clone()]).await?;
    let y = start_node(temp.path(), "y", vec![witness.url.clone()]).await?;
    connect(&x, &m, ("0", 0)).await?;
    connect(&m, &y, ("0.01", 1000)).await?;
    let (xa, ya) = (x.client(), y.client());
    let via = vec![m.key.to_z32()];
    say(&format!("making {} invoices ...", args.payments));
    let mut invoices = Vec::with_capacity(args.payments);
    for _ in 0..args.payments {
        invoices.push(invoice(&ya).await?);
    }
    let invoices = Arc::new(invoices);
    say(&format!(
        "throughput: {} payments through M, {} in flight ...",
        args.payments, args.concurrency
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (api, via, next, invoices) = (
            xa.clone(),
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
    let mut loaded = Vec::with_capacity(args.payments);
    while let Some(result) = workers.join_next().await {
        loaded.extend(result??);
    }
    let elapsed = start.elapsed();
    loaded.sort();
    for node in [x, m, y] {
        node.shutdown().await;
    }
    witness.shutdown().await;

    let report = RoutedReport {
        cores,
        ed25519_signs_per_sec: signs,
        ed25519_verifies_per_sec: verifies,
        fsync_p50_ms: fsync,
        latency_payments: four_hop.len(),
        four_hop_p50_ms: percentile(&four_hop, 0.5),
        four_hop_p99_ms: percentile(&four_hop, 0.99),
        publish_p50_ms: percentile(&publish, 0.5),
        publish_p99_ms: percentile(&publish, 0.99),
        forwarded: loaded.len(),
        concurrency: args.concurrency,
        forwards_per_sec: loaded.len() as f64 / elapsed.as_secs_f64(),
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
        "  forwards through one middle node X-M-Y, {} in flight: {:.0} /s ({} payments)",
        r.concurrency, r.forwards_per_sec, r.forwarded
    );
    println!(
        "    latency under that load  p50 {:.2} ms   p99 {:.2} ms",
        r.loaded_p50_ms, r.loaded_p99_ms
    );
}
