//! `atomicity bench dht`: publishing and resolving node records (Pkarr packets) on a local
//! Mainline DHT on loopback.
//!
//! A testnet of `--nodes` server-mode nodes with full routing tables, then one more node that
//! publishes `--keys` records one at a time (each publish is a full get query, so other
//! applications' records survive, then a put to the closest nodes), then another node, which
//! never saw them and caches nothing, resolves every key one at a time (a full get query that
//! waits for every asked node). Both extra nodes run in server mode: a client-mode node answers
//! nobody, and nodes without a bootstrap of their own (the testnet's) would hand it out as a
//! contact, so every query would also wait a request timeout for it; that is an artifact of a
//! local testnet, not of the public DHT. Loopback has no network latency: the figures are the
//! protocol's and the implementation's own cost (Mainline's node loop polls its socket every
//! 50 ms), a floor under what the public DHT gives.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use atomicity_discovery::{Dht, DhtOptions, Keypair, NodeSettings, Timestamp};
use serde::Serialize;

use crate::bench::{ed25519_rates, percentile};

/// How long a query waits for one DHT node's answer (every node here answers well before).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// Options of `atomicity bench dht`.
#[derive(Debug, clap::Args)]
pub struct DhtBenchArgs {
    /// DHT nodes in the local testnet (besides the publishing and the resolving node).
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Node records to publish and then resolve, one at a time.
    #[arg(long, default_value_t = 100)]
    pub keys: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct DhtReport {
    /// Logical cores.
    pub cores: usize,
    /// Ed25519 signatures per second on one core (one per publish).
    pub ed25519_signs_per_sec: f64,
    /// Ed25519 strict verifications per second on one core (resolving verifies each answer).
    pub ed25519_verifies_per_sec: f64,
    /// DHT nodes in the testnet.
    pub nodes: usize,
    /// Records published and resolved.
    pub keys: usize,
    /// Per-request timeout of the publishing and resolving nodes, ms.
    pub request_timeout_ms: u64,
    /// Time to start the testnet and the two nodes and fill their routing tables, ms.
    pub setup_ms: f64,
    /// Encoded DNS packet of one record, bytes (the limit is 1000).
    pub packet_bytes: usize,
    /// Median time of one publish (get query, then put), ms.
    pub publish_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub publish_p99_ms: f64,
    /// Nodes that stored a record: the least over all publishes.
    pub stored_on_min: u32,
    /// The median.
    pub stored_on_p50: u32,
    /// The most.
    pub stored_on_max: u32,
    /// Median time of one resolve by a node that had seen none of the records, ms.
    pub resolve_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub resolve_p99_ms: f64,
    /// Resolves that returned the published URL (the run fails unless all do).
    pub resolved: usize,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: DhtBenchArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let (keys, json) = (args.keys.max(1), args.json);
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    say("measuring the machine: Ed25519 ...");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (signs, verifies) = ed25519_rates();

    say(&format!(
        "starting a local DHT of {} nodes on 127.0.0.1 ...",
        args.nodes
    ));
    let setup = Instant::now();
    let nodes = args.nodes;
    // Building the testnet waits on each node's thread; keep it off the async workers.
    let testnet = tokio::task::spawn_blocking(move || {
        atomicity_discovery::mainline::Testnet::builder(nodes)
            .bind_address(Ipv4Addr::LOCALHOST)
            .build()
    })
    .await?
    .context("starting the local DHT")?;
    let options = DhtOptions {
        bootstrap: testnet.bootstrap.clone(),
        request_timeout: REQUEST_TIMEOUT,
    };
    let settings = NodeSettings {
        listen: Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        server_mode: Some(true),
    };
    let publisher = Dht::start_with(&options, settings).context("starting the publishing node")?;
    if !publisher.bootstrapped().await {
        bail!("the publishing node found no other DHT node");
    }
    let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;

    say(&format!("publishing {keys} node records one at a time ..."));
    let mut published = Vec::with_capacity(keys);
    let mut publish_times = Vec::with_capacity(keys);
    let mut stored = Vec::with_capacity(keys);
    let mut packet_bytes = 0;
    for i in 0..keys {
        let key = Keypair::random();
        let url = format!("http://127.0.0.1:{}", 10_000 + i % 50_000);
        let start = Instant::now();
        let outcome = publisher
            .publish_node_url(&key, &url, Timestamp::now())
            .await
            .with_context(|| format!("publishing record {i}"))?;
        publish_times.push(start.elapsed());
        stored.push(outcome.stored_on);
        packet_bytes = outcome.bytes;
        published.push((key.public_key(), url));
    }

    say("resolving each from another node, one at a time ...");
    let setup_resolver = Instant::now();
    let resolver = Dht::start_with(&options, settings).context("starting the resolving node")?;
    if !resolver.bootstrapped().await {
        bail!("the resolving node found no other DHT node");
    }
    let setup_ms = setup_ms + setup_resolver.elapsed().as_secs_f64() * 1000.0;
    let mut resolve_times = Vec::with_capacity(keys);
    let mut resolved = 0;
    for (key, url) in &published {
        let start = Instant::now();
        let found = resolver
            .resolve_node_url(key)
            .await
            .with_context(|| format!("resolving {key}"))?;
        resolve_times.push(start.elapsed());
        if found.as_ref().is_some_and(|r| &r.url == url) {
            resolved += 1;
        }
    }
    if resolved != keys {
        bail!("only {resolved} of {keys} records resolved to the URL published");
    }

    publish_times.sort();
    resolve_times.sort();
    stored.sort();
    let report = DhtReport {
        cores,
        ed25519_signs_per_sec: signs,
        ed25519_verifies_per_sec: verifies,
        nodes: args.nodes,
        keys,
        request_timeout_ms: u64::try_from(REQUEST_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        setup_ms,
        packet_bytes,
        publish_p50_ms: percentile(&publish_times, 0.5),
        publish_p99_ms: percentile(&publish_times, 0.99),
        stored_on_min: stored.first().copied().unwrap_or(0),
        stored_on_p50: stored.get(stored.len() / 2).copied().unwrap_or(0),
        stored_on_max: stored.last().copied().unwrap_or(0),
        resolve_p50_ms: percentile(&resolve_times, 0.5),
        resolve_p99_ms: percentile(&resolve_times, 0.99),
        resolved,
    };
    drop((publisher, resolver, testnet));
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &DhtReport) {
    println!("machine");
    println!("  cores                      {}", r.cores);
    println!(
        "  Ed25519 sign               {:.0} /s (one core)",
        r.ed25519_signs_per_sec
    );
    println!(
        "  Ed25519 verify (strict)    {:.0} /s (one core)",
        r.ed25519_verifies_per_sec
    );
    println!(
        "node records on a local Mainline DHT, {} nodes on loopback, request timeout {} ms (set-up {:.0} ms)",
        r.nodes, r.request_timeout_ms, r.setup_ms
    );
    println!(
        "  publish, get + put ({} records of {} bytes)   p50 {:.2} ms   p99 {:.2} ms",
        r.keys, r.packet_bytes, r.publish_p50_ms, r.publish_p99_ms
    );
    println!(
        "    stored on                nodes: min {}   median {}   max {}",
        r.stored_on_min, r.stored_on_p50, r.stored_on_max
    );
    println!(
        "  resolve from another node, no cache ({} of {} found)   p50 {:.2} ms   p99 {:.2} ms",
        r.resolved, r.keys, r.resolve_p50_ms, r.resolve_p99_ms
    );
}
