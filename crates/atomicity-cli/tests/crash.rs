//! Crash test: `kill -9` nodes again and again while payments are in flight, restart them, and
//! show that both ends of every line agree and that nothing acknowledged was lost.
//!
//! The kill points come from a seeded generator: `ATOMICITY_CRASH_SEED=N` replays a run,
//! `ATOMICITY_CRASH_ROUNDS=N` sets how many kills (default 12).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atomicity_cli::harness::NodeProcess;
use atomicity_node::api::{HistoryRow, PayRequest, SetLineRequest};
use atomicity_node::client::ApiClient;
use atomicity_node::datadir::DataDir;
use tokio::sync::Mutex;

/// A small deterministic generator (xorshift64*), so one seed replays the same kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Debug, Clone)]
struct Acknowledged {
    payment_id: String,
    payer: usize,
    payee: usize,
    amount_cents: u64,
}

fn cents(decimal: &str) -> i64 {
    let negative = decimal.starts_with('-');
    let digits: String = decimal.chars().filter(char::is_ascii_digit).collect();
    let value: i64 = digits.parse().expect("amount");
    if negative { -value } else { value }
}

async fn client(dir: &PathBuf) -> Option<ApiClient> {
    ApiClient::from_dir(&DataDir::new(dir)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_payments_loses_nothing_acknowledged() {
    let seed = env_u64("ATOMICITY_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let rounds = env_u64("ATOMICITY_CRASH_ROUNDS").unwrap_or(12);
    println!("crash test seed {seed} ({rounds} kills); replay with ATOMICITY_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_atomicity"));
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<NodeProcess> = (0..3)
        .map(|i| {
            NodeProcess::start(&bin, &root.path().join(format!("n{i}")), "127.0.0.1:0")
                .expect("start")
        })
        .collect();
    let dirs: Vec<PathBuf> = nodes.iter().map(|n| n.dir().to_path_buf()).collect();
    let keys: Vec<String> = nodes.iter().map(|n| n.key.clone()).collect();
    for node in &nodes {
        for peer in &nodes {
            if node.key != peer.key {
                node.api
                    .add_peer(&peer.key, Some(&peer.node_url))
                    .await
                    .expect("add peer");
                node.api
                    .set_line(&SetLineRequest {
                        peer: peer.key.clone(),
                        asset: "USD".into(),
                        accept: Some("100000".into()),
                        issue: Some("100000".into()),
                        fee_base: None,
                        fee_ppm: None,
                    })
                    .await
                    .expect("line");
            }
        }
    }

    // Four workers pay random amounts between random pairs until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (stop, acknowledged, dirs, keys) = (
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
            dirs.clone(),
            keys.clone(),
        );
        let mut rng = Rng(seed.wrapping_add(w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        workers.push(tokio::spawn(async move {
            let mut attempts = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let payer = rng.below(3) as usize;
                let payee = (payer + 1 + rng.below(2) as usize) % 3;
                let amount_cents = 1 + rng.below(500);
                let Some(api) = client(&dirs[payer]).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                attempts += 1;
                let result = api
                    .pay(&PayRequest {
                        peer: keys[payee].clone(),
                        amount: format!("{}.{:02}", amount_cents / 100, amount_cents % 100),
                        asset: "USD".into(),
                        memo: format!("w{w}"),
                        wait_ms: Some(1500),
                        routes: Vec::new(),
                    })
                    .await;
                if let Ok(r) = result
                    && r.status == "completed"
                {
                    acknowledged.lock().await.push(Acknowledged {
                        payment_id: r.payment_id,
                        payer,
                        payee,
                        amount_cents,
                    });
                }
            }
            attempts
        }));
    }

    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
        let victim = rng.below(3) as usize;
        let down_for = Duration::from_millis(rng.below(400));
        println!("round {round}: kill -9 node {victim}, down for {down_for:?}");
        tokio::task::block_in_place(|| nodes[victim].kill9());
        tokio::time::sleep(down_for).await;
        tokio::task::block_in_place(|| nodes[victim].restart()).expect("restart");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut attempts = 0;
    for w in workers {
        attempts += w.await.expect("worker");
    }
    let acknowledged = acknowledged.lock().await.clone();
    println!(
        "{attempts} payments attempted, {} acknowledged as completed",
        acknowledged.len()
    );
    assert!(
        !acknowledged.is_empty(),
        "no payment completed at all: the test proves nothing"
    );

    // Let retries finish: every offer answered and every state delivered, both ends agreeing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let apis: Vec<ApiClient> = nodes.iter().map(|n| n.api.clone()).collect();
    loop {
        let mut views = Vec::new();
        for api in &apis {
            views.push(api.balance().await.expect("balance"));
        }
        let mut problems = Vec::new();
        for (i, view) in views.iter().enumerate() {
            for row in view {
                let j = keys.iter().position(|k| *k == row.peer).expect("peer");
                let other = views[j]
                    .iter()
                    .find(|r| r.peer == keys[i] && r.asset == row.asset)
                    .expect("mirror line");
                if cents(&row.net) != -cents(&other.net)
                    || row.out_seq != other.in_seq
                    || row.out_total != other.in_total
                    || cents(&row.pending_out) != 0
                {
                    problems.push(format!("{i}->{j}: {row:?} vs {other:?}"));
                }
            }
        }
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lines did not converge after the crashes (seed {seed}): {problems:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing acknowledged was lost, and each node's net equals what its history says.
    let mut histories: Vec<Vec<HistoryRow>> = Vec::new();
    for api in &apis {
        histories.push(api.history(1_000_000).await.expect("history"));
    }
    let completed = |i: usize, direction: &str| -> HashSet<String> {
        histories[i]
            .iter()
            .filter(|r| r.direction == direction && r.status == "completed")
            .map(|r| r.payment_id.clone())
            .collect()
    };
    for ack in &acknowledged {
        assert!(
            completed(ack.payer, "sent").contains(&ack.payment_id),
            "acknowledged payment {ack:?} missing from the payer's history (seed {seed})"
        );
        assert!(
            completed(ack.payee, "received").contains(&ack.payment_id),
            "acknowledged payment {ack:?} missing from the payee's history (seed {seed})"
        );
    }
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            // What i sent j (completed, by i's history) is exactly what j received from i.
            let sent: HashSet<String> = histories[i]
                .iter()
                .filter(|r| r.direction == "sent" && r.status == "completed" && r.peer == keys[j])
                .map(|r| r.payment_id.clone())
                .collect();
            let received: HashSet<String> = histories[j]
                .iter()
                .filter(|r| r.direction == "received" && r.peer == keys[i])
                .map(|r| r.payment_id.clone())
                .collect();
            assert_eq!(sent, received, "{i} -> {j} (seed {seed})");
        }
        // Net toward each peer = received from it − sent to it.
        let mut expected: HashMap<String, i64> = HashMap::new();
        for r in histories[i].iter().filter(|r| r.status == "completed") {
            let signed = if r.direction == "received" {
                cents(&r.amount)
            } else {
                -cents(&r.amount)
            };
            *expected.entry(r.peer.clone()).or_default() += signed;
        }
        for row in apis[i].balance().await.expect("balance") {
            assert_eq!(
                cents(&row.net),
                expected.get(&row.peer).copied().unwrap_or(0),
                "node {i} toward {} (seed {seed})",
                row.peer
            );
        }
    }
    let acked_total: u64 = acknowledged.iter().map(|a| a.amount_cents).sum();
    println!("all lines agree; {acked_total} cents acknowledged, none lost");
}
