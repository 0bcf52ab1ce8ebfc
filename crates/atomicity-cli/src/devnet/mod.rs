//! `atomicity devnet`: a whole local network on loopback, narrated step by step.
//!
//! Today: three real node processes (Alice, Bob, Carol) that open credit lines, pay each other
//! directly in two assets, see an over-limit payment refused, and check that both ends of every
//! line agree. Later issues add witnesses, routers and the design document's examples.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use atomicity_node::api::{BalanceRow, PayRequest, SetLineRequest};

use crate::harness::NodeProcess;
use crate::output;

struct Net {
    nodes: Vec<(&'static str, NodeProcess)>,
}

impl Net {
    fn node(&self, name: &str) -> Result<&NodeProcess> {
        self.nodes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p)
            .with_context(|| format!("no node {name}"))
    }

    fn name_of(&self, key: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, p)| p.key == key)
            .map_or_else(|| key.to_string(), |(n, _)| n.to_string())
    }
}

fn step(n: &mut u32, text: &str) {
    *n += 1;
    println!("\n{n}. {text}");
}

/// Runs the devnet. With `once`, returns whether every check passed; otherwise keeps the
/// network up until Ctrl-C.
pub async fn run(dir: Option<PathBuf>, once: bool) -> Result<bool> {
    let temp;
    let root = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("atomicity-devnet-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let bin = std::env::current_exe().context("cannot find the atomicity binary")?;
    println!("Atomicity devnet in {}", root.display());
    let mut n = 0;

    step(
        &mut n,
        "Starting three nodes on loopback: Alice, Bob and Carol.",
    );
    let mut nodes = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let dir = root.join(name);
        let node = tokio::task::block_in_place(|| NodeProcess::start(&bin, &dir, "127.0.0.1:0"))?;
        println!("   {name:<5} {}  at {}", node.key, node.node_url);
        nodes.push((name, node));
    }
    let net = Net { nodes };

    step(&mut n, "Each node adds the others as peers (key + URL).");
    for (name, node) in &net.nodes {
        for (other, peer) in &net.nodes {
            if name != other {
                node.api.add_peer(&peer.key, Some(&peer.node_url)).await?;
            }
        }
    }
    println!("   done: every node knows the other two");

    step(
        &mut n,
        "Alice and Bob open a USD line: Alice lets Bob owe her up to 200.00 and will owe him up to 100.00; Bob mirrors it.",
    );
    set_line(&net, "alice", "bob", "USD", "200", "100").await?;
    set_line(&net, "bob", "alice", "USD", "100", "200").await?;
    step(
        &mut n,
        "Bob and Carol open lines in USD (Bob: 50.00 each way; Carol would owe Bob up to 100.00) and in hours of work, HOUR:0 (10 each way).",
    );
    set_line(&net, "bob", "carol", "USD", "50", "50").await?;
    set_line(&net, "carol", "bob", "USD", "50", "100").await?;
    set_line(&net, "bob", "carol", "HOUR:0", "10", "10").await?;
    set_line(&net, "carol", "bob", "HOUR:0", "10", "10").await?;

    let mut ok = true;
    step(&mut n, "Alice pays Bob 5.00 USD for a coffee.");
    ok &= pay(&net, "alice", "bob", "5.00", "USD", "coffee", true).await?;
    step(&mut n, "Bob pays Alice back 2.50 USD.");
    ok &= pay(&net, "bob", "alice", "2.50", "USD", "half the coffee", true).await?;
    step(&mut n, "Carol pays Bob 3 hours for fixing her bike.");
    ok &= pay(&net, "carol", "bob", "3", "HOUR:0", "bike repair", true).await?;
    step(&mut n, "Bob pays Carol 20.00 USD.");
    ok &= pay(&net, "bob", "carol", "20", "USD", "groceries", true).await?;
    step(
        &mut n,
        "Carol tries to pay Bob 80.00 USD: Carol's node offers it, but Bob only lets Carol owe him 50.00 (plus the 20.00 he owes her), so Bob's node refuses with a signed release.",
    );
    ok &= pay(&net, "carol", "bob", "80", "USD", "too much", false).await?;
    step(
        &mut n,
        "Alice tries to pay Bob 150.00 USD: over the 100.00 she is willing to owe him, so her own node refuses before sending anything.",
    );
    ok &= pay(&net, "alice", "bob", "150", "USD", "too much", false).await?;

    step(
        &mut n,
        "Waiting until every IOU state has reached its holder, then comparing both ends of every line.",
    );
    ok &= check_agreement(&net).await?;

    step(
        &mut n,
        "Balances, as each node sees them (NET > 0: the peer owes this node).",
    );
    for (name, node) in &net.nodes {
        let rows = node.api.balance().await?;
        println!("\n   {name}:");
        for line in output::balance_table(&named(&net, rows)).lines() {
            println!("   {line}");
        }
    }

    println!();
    if ok {
        println!("All steps succeeded.");
    } else {
        println!("Some steps FAILED (see above).");
    }
    if once {
        return Ok(ok);
    }
    println!("\nThe network keeps running. Try, in another terminal:");
    let alice = net.node("alice")?;
    let bob = net.node("bob")?;
    println!(
        "   atomicity --data-dir {} pay {} 1.00 USD",
        alice.dir().display(),
        bob.key
    );
    println!("   atomicity --data-dir {} balance", bob.dir().display());
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(ok)
}

fn named(net: &Net, mut rows: Vec<BalanceRow>) -> Vec<BalanceRow> {
    for row in &mut rows {
        row.peer = net.name_of(&row.peer);
    }
    rows
}

async fn set_line(
    net: &Net,
    who: &str,
    peer: &str,
    asset: &str,
    accept: &str,
    issue: &str,
) -> Result<()> {
    let row = net
        .node(who)?
        .api
        .set_line(&SetLineRequest {
            peer: net.node(peer)?.key.clone(),
            asset: asset.into(),
            accept: Some(accept.into()),
            issue: Some(issue.into()),
            fee_base: None,
            fee_ppm: None,
        })
        .await?;
    println!(
        "   {who}: {peer} may owe me up to {} {asset}; I may owe {peer} up to {} {asset}",
        row.accept, row.issue
    );
    Ok(())
}

async fn pay(
    net: &Net,
    from: &str,
    to: &str,
    amount: &str,
    asset: &str,
    memo: &str,
    expect_success: bool,
) -> Result<bool> {
    let response = net
        .node(from)?
        .api
        .pay(&PayRequest {
            peer: net.node(to)?.key.clone(),
            amount: amount.into(),
            asset: asset.into(),
            memo: memo.into(),
            wait_ms: Some(10_000),
            routes: Vec::new(),
        })
        .await;
    let (succeeded, words) = match response {
        Ok(r) if r.status == "completed" => {
            (true, format!("{to} accepted: {amount} {asset} moved"))
        }
        Ok(r) => (
            false,
            format!(
                "{} ({})",
                r.status,
                r.reason.unwrap_or_else(|| "no reason".into())
            ),
        ),
        Err(e) => (false, format!("error: {e}")),
    };
    let as_expected = succeeded == expect_success;
    let mark = if as_expected { "ok" } else { "UNEXPECTED" };
    println!("   [{mark}] {words}");
    Ok(as_expected)
}

/// Waits (up to 10 s) until, for every pair, each side's view is the mirror of the other's.
async fn check_agreement(net: &Net) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut views: HashMap<(String, String, String), BalanceRow> = HashMap::new();
        for (_, node) in &net.nodes {
            for row in node.api.balance().await? {
                views.insert((node.key.clone(), row.peer.clone(), row.asset.clone()), row);
            }
        }
        let mut problems = Vec::new();
        for ((me, peer, asset), row) in &views {
            match views.get(&(peer.clone(), me.clone(), asset.clone())) {
                Some(other) => {
                    let mirrored = other.net == negate(&row.net)
                        && other.in_seq == row.out_seq
                        && other.in_total == row.out_total
                        && is_zero(&row.pending_out);
                    if !mirrored {
                        problems.push(format!(
                            "{} and {} disagree on {asset}: {} vs {}",
                            net.name_of(me),
                            net.name_of(peer),
                            row.net,
                            other.net
                        ));
                    }
                }
                None => problems.push(format!(
                    "{} has a {asset} line with {} that {} does not have",
                    net.name_of(me),
                    net.name_of(peer),
                    net.name_of(peer)
                )),
            }
        }
        if problems.is_empty() {
            println!(
                "   [ok] every line: both ends agree on the net position and the newest signed state"
            );
            return Ok(true);
        }
        if Instant::now() > deadline {
            for p in problems {
                println!("   [FAILED] {p}");
            }
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `"5.00"` → `"-5.00"`, `"-5.00"` → `"5.00"`, zero stays unsigned.
fn negate(decimal: &str) -> String {
    if let Some(rest) = decimal.strip_prefix('-') {
        rest.to_string()
    } else if is_zero(decimal) {
        decimal.to_string()
    } else {
        format!("-{decimal}")
    }
}

fn is_zero(decimal: &str) -> bool {
    decimal.chars().all(|c| c == '0' || c == '.')
}
