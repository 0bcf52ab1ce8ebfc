//! `atomicity bench witness`: the witness log's durable submission rate and its proofs' sizes
//! and verification times, with the machine's limits (cores, SHA-256, Ed25519, fsync) measured
//! in the same run and printed beside them.
//!
//! Submissions are measured three ways, each acknowledged only after its fsynced commit:
//! single `POST /submit` requests and `POST /submit-batch` requests to a real witness started in
//! this process (loopback HTTP, SQLite WAL with `synchronous=FULL`), and the log plus its
//! SQLite store driven directly, which is the storage ceiling under the HTTP figures.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use atomicity_witness::bundle::verify_publication;
use atomicity_witness::log::Log;
use atomicity_witness::merkle::{leaf_hash, node_hash, verify_consistency, verify_inclusion};
use atomicity_witness::note::Signer;
use atomicity_witness::service::{
    self, MAX_SUBMIT_BATCH, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest, SubmitResponse,
    WitnessConfig,
};
use atomicity_witness::store::WitnessStore;
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::bench::{ed25519_rates, fsync_p50, percentile};

/// The throughput goal, durable submissions per second.
const GOAL_SUBMISSIONS_PER_SEC: f64 = 20_000.0;
/// The verification goal, µs per inclusion proof.
const GOAL_INCLUSION_VERIFY_US: f64 = 50.0;
/// Random samples behind each median of the proof figures.
const SAMPLES: usize = 10_000;
/// Leaves appended to the in-memory log per call while building it.
const BUILD_CHUNK: usize = 65_536;
/// How often long phases report progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Options of `atomicity bench witness`.
#[derive(Debug, Clone, clap::Args)]
pub struct WitnessBenchArgs {
    /// Submissions in each throughput mode.
    #[arg(long, default_value_t = 100_000)]
    pub submissions: usize,
    /// Single `/submit` requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Secrets per `/submit-batch` request, and per commit in the storage-only mode (1 to 512).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// `/submit-batch` requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub batch_in_flight: usize,
    /// Leaves in the log the proof figures are measured on.
    #[arg(long, default_value_t = 1_000_000)]
    pub leaves: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The machine's limits, measured in the same run.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical cores.
    pub cores: usize,
    /// SHA-256 of 65-byte inputs (an RFC 6962 interior node: `0x01 || left || right`) per
    /// second on one core.
    pub sha256_node_hashes_per_sec: f64,
    /// SHA-256 over 1 MiB buffers, MiB per second on one core.
    pub sha256_mib_per_sec: f64,
    /// Ed25519 signatures per second on one core.
    pub ed25519_signs_per_sec: f64,
    /// Ed25519 strict verifications per second on one core.
    pub ed25519_verifies_per_sec: f64,
    /// Median latency of write + fsync of 4 KiB in the data directory, ms.
    pub fsync_p50_ms: f64,
}

/// One throughput mode.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Submissions made (all acknowledged as new and durable).
    pub submissions: usize,
    /// Secrets per request or commit (1 for single `/submit`).
    pub batch: usize,
    /// Requests in flight at once (1 for the storage-only mode).
    pub in_flight: usize,
    /// Durable submissions per second.
    pub submissions_per_sec: f64,
    /// Median latency of one request (or one commit in the storage-only mode), ms.
    pub p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub p99_ms: f64,
}

/// Proof figures at one log size.
#[derive(Debug, Serialize)]
pub struct Proofs {
    /// Leaves in the log.
    pub leaves: u64,
    /// Leaves appended per second while building the in-memory log (hashing, tree, index).
    pub build_leaves_per_sec: f64,
    /// Longest inclusion proof among the samples, in hashes.
    pub inclusion_hashes: usize,
    /// The same in bytes.
    pub inclusion_bytes: usize,
    /// Largest encoded proof bundle among the samples, bytes (no cosignatures).
    pub bundle_bytes: usize,
    /// Random leaves (or sizes) behind each median.
    pub samples: usize,
    /// Median time to generate an inclusion proof, µs.
    pub inclusion_generate_us: f64,
    /// Median time to verify one (leaf hash, path, root comparison), µs.
    pub inclusion_verify_us: f64,
    /// Median time to verify a consistency proof from a random earlier size, µs.
    pub consistency_verify_us: f64,
    /// Median time of `bundle::verify_publication` (two inclusion proofs and the log's
    /// checkpoint signature, no cosigner policy), µs.
    pub verify_publication_us: f64,
}

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The goal, submissions/s.
    pub goal_submissions_per_sec: f64,
    /// The log and its SQLite store driven directly, `batch` secrets per fsynced commit.
    pub storage_only: Throughput,
    /// `POST /submit`, one secret per request.
    pub http_single: Throughput,
    /// `POST /submit-batch`.
    pub http_batch: Throughput,
    /// The goal for inclusion-proof verification, µs.
    pub goal_inclusion_verify_us: f64,
    /// Proofs at `--leaves` leaves.
    pub proofs: Proofs,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: WitnessBenchArgs) -> Result<()> {
    if !(1..=MAX_SUBMIT_BATCH).contains(&args.batch) {
        bail!("--batch must be 1 to {MAX_SUBMIT_BATCH}");
    }
    if args.leaves < 2 {
        bail!("--leaves must be at least 2");
    }
    let (submissions, json) = (args.submissions.max(1), args.json);
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    let temp = tempfile::Builder::new()
        .prefix("atomicity-bench-witness-")
        .tempdir()?;

    say("measuring the machine: SHA-256, Ed25519 and fsync ...");
    let (node_hashes, mib) = sha256_rates();
    let (signs, verifies) = ed25519_rates();
    let machine = Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sha256_node_hashes_per_sec: node_hashes,
        sha256_mib_per_sec: mib,
        ed25519_signs_per_sec: signs,
        ed25519_verifies_per_sec: verifies,
        fsync_p50_ms: fsync_p50(temp.path())?,
    };

    say(&format!(
        "storage only: {submissions} submissions, {} per fsynced commit ...",
        args.batch
    ));
    let storage_dir = temp.path().join("storage");
    std::fs::create_dir_all(&storage_dir)?;
    let storage_only = {
        let dir = storage_dir.clone();
        let batch = args.batch;
        tokio::task::spawn_blocking(move || storage_run(&dir, submissions, batch)).await??
    };

    say("starting a witness on loopback ...");
    let witness = service::start(WitnessConfig {
        dir: temp.path().join("witness"),
        listen: "127.0.0.1:0".parse()?,
        block_seconds: service::DEFAULT_BLOCK_SECONDS,
        origin: None,
        cosigners: Vec::new(),
        censor: false,
    })
    .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(args.batch_in_flight))
        .timeout(Duration::from_secs(60))
        .build()?;
    let concurrency = args.concurrency.max(1);
    say(&format!(
        "HTTP /submit: {submissions} submissions, {concurrency} in flight ..."
    ));
    let http_single = http_single(&client, &witness.url, submissions, concurrency, json).await?;
    let in_flight = args.batch_in_flight.max(1);
    say(&format!(
        "HTTP /submit-batch: {submissions} submissions, {} per request, {in_flight} in flight ...",
        args.batch
    ));
    let http_batch = http_batch(
        &client,
        &witness.url,
        submissions,
        args.batch,
        in_flight,
        json,
    )
    .await?;
    witness.shutdown().await;

    say(&format!(
        "proofs: building a log of {} leaves in memory ...",
        args.leaves
    ));
    let leaves = args.leaves;
    let proofs = tokio::task::spawn_blocking(move || proof_run(leaves, json)).await??;

    let report = Report {
        machine,
        goal_submissions_per_sec: GOAL_SUBMISSIONS_PER_SEC,
        storage_only,
        http_single,
        http_batch,
        goal_inclusion_verify_us: GOAL_INCLUSION_VERIFY_US,
        proofs,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// (interior node hashes/s, MiB/s over 1 MiB buffers), one core.
fn sha256_rates() -> (f64, f64) {
    let n = 200_000u32;
    let mut h = [7u8; 32];
    let start = Instant::now();
    for _ in 0..n {
        // Chained, so no call can be skipped.
        h = node_hash(&h, &h);
    }
    let nodes = f64::from(n) / start.elapsed().as_secs_f64();
    let buffer = vec![h[0]; 1 << 20];
    let rounds = 64u32;
    let start = Instant::now();
    for _ in 0..rounds {
        h = leaf_hash(&buffer);
    }
    let mib = f64::from(rounds) / start.elapsed().as_secs_f64();
    std::hint::black_box(h);
    (nodes, mib)
}

fn bench_signer() -> Result<Signer> {
    Ok(Signer::new(
        "bench.atomicity.invalid/log",
        SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
    )?)
}

/// Sorted durations' median, µs.
fn median_us(times: &mut [Duration]) -> f64 {
    times.sort();
    percentile(times, 0.5) * 1000.0
}

/// Prints `done/total` every few seconds until aborted.
fn progress(
    json: bool,
    done: Arc<AtomicUsize>,
    total: usize,
) -> Option<tokio::task::JoinHandle<()>> {
    if json {
        return None;
    }
    let start = Instant::now();
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(PROGRESS_EVERY);
        interval.tick().await;
        loop {
            interval.tick().await;
            let n = done.load(Ordering::Relaxed).min(total);
            eprintln!(
                "  {n}/{total} ({:.0}/s)",
                n as f64 / start.elapsed().as_secs_f64()
            );
        }
    }))
}

/// The log and its store driven directly: what the service's writer thread does, without HTTP.
fn storage_run(dir: &Path, submissions: usize, batch: usize) -> Result<Throughput> {
    let mut store = WitnessStore::open(&dir.join(service::DB_FILE))?;
    let mut log = Log::new(
        "bench.atomicity.invalid/log".into(),
        bench_signer()?,
        service::DEFAULT_BLOCK_SECONDS,
        service::unix_now(),
    )?;
    let note = log.latest_checkpoint()?;
    store.append(0, log.leaves(), Some((log.size(), &note)))?;
    let mut commits = Vec::with_capacity(submissions.div_ceil(batch));
    let mut left = submissions;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(batch);
        left -= n;
        let ps: Vec<[u8; 32]> = (0..n).map(|_| rand::random()).collect();
        let t = Instant::now();
        let done = log.submit_batch(&ps, service::unix_now());
        if done.iter().any(|s| !s.new) {
            bail!("a random secret repeated");
        }
        let stored = store.size();
        let note = log.latest_checkpoint()?;
        let first = usize::try_from(stored)?;
        let new = log.leaves().get(first..).unwrap_or_default();
        store.append(stored, new, Some((log.size(), &note)))?;
        commits.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    commits.sort();
    Ok(Throughput {
        submissions,
        batch,
        in_flight: 1,
        submissions_per_sec: submissions as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&commits, 0.5),
        p99_ms: percentile(&commits, 0.99),
    })
}

async fn http_single(
    client: &reqwest::Client,
    url: &str,
    submissions: usize,
    concurrency: usize,
    json: bool,
) -> Result<Throughput> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let ticker = progress(json, Arc::clone(&done), submissions);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), format!("{url}/submit"));
        let (next, done) = (Arc::clone(&next), Arc::clone(&done));
        workers.spawn(async move {
            let mut times = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < submissions {
                let request = SubmitRequest {
                    p: hex::encode(rand::random::<[u8; 32]>()),
                };
                let t = Instant::now();
                let answer: SubmitResponse = client
                    .post(&url)
                    .json(&request)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                times.push(t.elapsed());
                if !answer.new {
                    bail!("a random secret repeated");
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(times)
        });
    }
    let mut times = Vec::with_capacity(submissions);
    while let Some(result) = workers.join_next().await {
        times.extend(result??);
    }
    let elapsed = start.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    times.sort();
    Ok(Throughput {
        submissions: times.len(),
        batch: 1,
        in_flight: concurrency,
        submissions_per_sec: times.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
    })
}

async fn http_batch(
    client: &reqwest::Client,
    url: &str,
    submissions: usize,
    batch: usize,
    in_flight: usize,
    json: bool,
) -> Result<Throughput> {
    // `next` counts secrets handed out, so the last batch may be short and the total exact.
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let ticker = progress(json, Arc::clone(&done), submissions);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (client, url) = (client.clone(), format!("{url}/submit-batch"));
        let (next, done) = (Arc::clone(&next), Arc::clone(&done));
        workers.spawn(async move {
            let mut times = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= submissions {
                    break;
                }
                let n = batch.min(submissions - first);
                let request = SubmitBatchRequest {
                    ps: (0..n)
                        .map(|_| hex::encode(rand::random::<[u8; 32]>()))
                        .collect(),
                };
                let t = Instant::now();
                let answer: SubmitBatchResponse = client
                    .post(&url)
                    .json(&request)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                times.push(t.elapsed());
                if answer.entries.len() != n || answer.entries.iter().any(|e| !e.new) {
                    bail!("the witness did not take every secret of a batch as new");
                }
                done.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(times)
        });
    }
    let mut times = Vec::new();
    while let Some(result) = workers.join_next().await {
        times.extend(result??);
    }
    let elapsed = start.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    times.sort();
    let made = done.load(Ordering::Relaxed);
    Ok(Throughput {
        submissions: made,
        batch,
        in_flight,
        submissions_per_sec: made as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
    })
}

/// Builds a log of `leaves` leaves in memory, then times proofs against its full size.
fn proof_run(leaves: u64, json: bool) -> Result<Proofs> {
    let now = service::unix_now();
    // One block for the whole log: markers do not change proof sizes or times.
    let mut log = Log::new(
        "bench.atomicity.invalid/log".into(),
        bench_signer()?,
        3600,
        now,
    )?;
    let commits = usize::try_from(leaves - 1)?;
    let mut ps: Vec<[u8; 32]> = Vec::with_capacity(commits);
    let start = Instant::now();
    let mut reported = Instant::now();
    while ps.len() < commits {
        let first = ps.len();
        let n = BUILD_CHUNK.min(commits - first);
        ps.extend((0..n).map(|_| rand::random::<[u8; 32]>()));
        log.submit_batch(&ps[first..], now);
        if !json && reported.elapsed() >= PROGRESS_EVERY {
            eprintln!("  {}/{leaves} leaves", log.size());
            reported = Instant::now();
        }
    }
    let build = start.elapsed();
    if log.size() != leaves {
        bail!("a random secret repeated while building the log");
    }
    let size = log.size();
    let root = log.root_at(size)?;

    let mut generate = Vec::with_capacity(SAMPLES);
    let mut verify = Vec::with_capacity(SAMPLES);
    let mut longest = 0;
    for _ in 0..SAMPLES {
        let index = rand::random_range(0..size);
        let leaf = log.entry(index).context("leaf in range")?;
        let t = Instant::now();
        let proof = log.inclusion_proof(index, size)?;
        generate.push(t.elapsed());
        longest = longest.max(proof.len());
        let t = Instant::now();
        verify_inclusion(&leaf.hash(), index, size, &proof, &root)?;
        verify.push(t.elapsed());
    }

    let mut consistency = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let old = rand::random_range(1..size);
        let old_root = log.root_at(old)?;
        let proof = log.consistency_proof(old, size)?;
        let t = Instant::now();
        verify_consistency(old, size, &old_root, &root, &proof)?;
        consistency.push(t.elapsed());
    }

    let verifier = log.verifier();
    let mut publication = Vec::with_capacity(SAMPLES);
    let mut bundle_bytes = 0;
    for _ in 0..SAMPLES {
        let p = ps[rand::random_range(0..ps.len())];
        let bundle = log.bundle(&p)?.context("a committed secret has a bundle")?;
        bundle_bytes = bundle_bytes.max(bundle.to_bytes()?.len());
        let t = Instant::now();
        verify_publication(&bundle, &p, &verifier, None, 0, u64::MAX, u64::MAX)?;
        publication.push(t.elapsed());
    }

    Ok(Proofs {
        leaves: size,
        build_leaves_per_sec: size as f64 / build.as_secs_f64(),
        inclusion_hashes: longest,
        inclusion_bytes: longest * 32,
        bundle_bytes,
        samples: SAMPLES,
        inclusion_generate_us: median_us(&mut generate),
        inclusion_verify_us: median_us(&mut verify),
        consistency_verify_us: median_us(&mut consistency),
        verify_publication_us: median_us(&mut publication),
    })
}

/// `n` rounded, with thousands separators: 20,000.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn print_report(r: &Report) {
    let m = &r.machine;
    println!("machine");
    println!("  cores                                {}", m.cores);
    println!(
        "  SHA-256, interior node (65 B)        {} hashes/s (one core)",
        thousands(m.sha256_node_hashes_per_sec)
    );
    println!(
        "  SHA-256, 1 MiB buffers               {} MiB/s (one core)",
        thousands(m.sha256_mib_per_sec)
    );
    println!(
        "  Ed25519 sign                         {} /s (one core)",
        thousands(m.ed25519_signs_per_sec)
    );
    println!(
        "  Ed25519 verify (strict)              {} /s (one core)",
        thousands(m.ed25519_verifies_per_sec)
    );
    println!(
        "  write+fsync 4 KiB, p50               {:.3} ms",
        m.fsync_p50_ms
    );
    println!("durable submissions (SQLite WAL synchronous=FULL, committed before each answer)");
    println!(
        "  goal: >= {} submissions/s sustained: {} by /submit-batch",
        thousands(r.goal_submissions_per_sec),
        verdict(r.http_batch.submissions_per_sec >= r.goal_submissions_per_sec)
    );
    let rows = [
        (
            format!("storage only, {} per commit", r.storage_only.batch),
            &r.storage_only,
            "commit",
        ),
        (
            format!("HTTP /submit, {} in flight", r.http_single.in_flight),
            &r.http_single,
            "request",
        ),
        (
            format!(
                "HTTP /submit-batch, {} x {} in flight",
                r.http_batch.batch, r.http_batch.in_flight
            ),
            &r.http_batch,
            "batch",
        ),
    ];
    for (label, s, per) in rows {
        println!(
            "  {label:<36} {:>9} submissions/s   per {per} p50 {:.2} ms   p99 {:.2} ms",
            thousands(s.submissions_per_sec),
            s.p50_ms,
            s.p99_ms
        );
    }
    println!(
        "  ({} submissions each; the HTTP client runs in the same process, on the same cores)",
        r.http_batch.submissions
    );
    let p = &r.proofs;
    println!(
        "proofs at {} leaves (built in memory at {} leaves/s; medians of {} random samples)",
        thousands(p.leaves as f64),
        thousands(p.build_leaves_per_sec),
        p.samples
    );
    println!(
        "  goal: inclusion-proof verification <= {:.0} µs: {}",
        r.goal_inclusion_verify_us,
        verdict(p.inclusion_verify_us <= r.goal_inclusion_verify_us)
    );
    println!(
        "  inclusion proof                      {} hashes ({} bytes) at most",
        p.inclusion_hashes, p.inclusion_bytes
    );
    println!(
        "  proof bundle, encoded                {} bytes at most (no cosignatures)",
        p.bundle_bytes
    );
    println!(
        "  inclusion proof generation           {:.2} µs",
        p.inclusion_generate_us
    );
    println!(
        "  inclusion proof verification         {:.2} µs (leaf hash + path)",
        p.inclusion_verify_us
    );
    println!(
        "  consistency proof verification       {:.2} µs (from a random earlier size)",
        p.consistency_verify_us
    );
    println!(
        "  verify_publication                   {:.2} µs (two inclusion proofs + checkpoint signature)",
        p.verify_publication_us
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(20_000.0), "20,000");
        assert_eq!(thousands(1_234_567.6), "1,234,568");
    }
}
