//! End to end: three real `atomicity node run` processes on 127.0.0.1, driven through the
//! `atomicity` command line exactly as a user would, paying each other in both directions and in
//! several assets; every node's `balance --json` must agree with its peers'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atomicity_cli::harness::NodeProcess;
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

/// Runs the CLI against `dir`; returns (exit code, stdout, stderr).
fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run atomicity");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = cli(dir, args);
    assert_eq!(code, 0, "atomicity {args:?} failed: {stderr}");
    stdout
}

/// `balance --json` as (peer, asset) → row.
fn balances(dir: &Path) -> HashMap<(String, String), Value> {
    let json: Value = serde_json::from_str(&cli_ok(dir, &["balance", "--json"])).expect("json");
    json.as_array()
        .expect("array")
        .iter()
        .map(|row| {
            let key = (
                row["peer"].as_str().expect("peer").to_string(),
                row["asset"].as_str().expect("asset").to_string(),
            );
            (key, row.clone())
        })
        .collect()
}

fn negate(decimal: &str) -> String {
    match decimal.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None if decimal.chars().all(|c| c == '0' || c == '.') => decimal.to_string(),
        None => format!("-{decimal}"),
    }
}

#[test]
fn three_nodes_pay_each_other_in_several_assets_and_agree() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<NodeProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| NodeProcess::start(&bin(), &root.path().join(n), "127.0.0.1:0").expect("start"))
        .collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // `id` prints the same key the node runs with.
    assert_eq!(cli_ok(a.dir(), &["id"]).trim(), a.key);

    for node in &nodes {
        for peer in &nodes {
            if node.key != peer.key {
                cli_ok(
                    node.dir(),
                    &["peer", "add", &peer.key, "--url", &peer.node_url],
                );
            }
        }
    }
    // Limits both ways on every pair, in three assets (one with scale 0).
    for (x, y) in [(a, b), (b, c), (a, c)] {
        for (asset, limit) in [("USD", "100"), ("EUR", "50.5"), ("HOUR:0", "8")] {
            for (me, peer) in [(x, y), (y, x)] {
                cli_ok(
                    me.dir(),
                    &[
                        "line", "set", &peer.key, "--asset", asset, "--accept", limit, "--issue",
                        limit,
                    ],
                );
            }
        }
    }

    let payments = [
        (a, b, "12.34", "USD"),
        (b, a, "2.34", "USD"),
        (b, c, "50.50", "EUR"),
        (c, b, "0.50", "EUR"),
        (c, a, "3", "HOUR:0"),
        (a, c, "1", "HOUR:0"),
        (a, b, "0.01", "USD"),
        (c, a, "99.99", "USD"),
    ];
    for (payer, payee, amount, asset) in payments {
        let out = cli_ok(payer.dir(), &["pay", &payee.key, amount, asset]);
        assert!(out.contains("paid"), "{out}");
    }
    // Over the payer's own limit: refused, exit code non-zero, nothing moves.
    let (code, _, stderr) = cli(a.dir(), &["pay", &b.key, "200", "USD"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("issue limit"), "{stderr}");

    // Expected net positions, from a's point of view etc.: positive = the peer owes me.
    let expected: &[(&NodeProcess, &NodeProcess, &str, &str)] = &[
        (a, b, "USD", "-10.01"),
        (b, c, "EUR", "-50.00"),
        (a, c, "HOUR:0", "2"),
        (a, c, "USD", "99.99"),
        (a, b, "EUR", "0.00"),
    ];

    // Wait until every IOU state has reached its holder, then compare both ends of every line.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let views: Vec<_> = nodes.iter().map(|n| balances(n.dir())).collect();
        let mut disagreements = Vec::new();
        for (i, me) in nodes.iter().enumerate() {
            for ((peer, asset), row) in &views[i] {
                let j = nodes.iter().position(|n| &n.key == peer).expect("peer");
                let other = &views[j][&(me.key.clone(), asset.clone())];
                let agrees = other["net"].as_str()
                    == Some(&negate(row["net"].as_str().unwrap_or("")))
                    && other["in_seq"] == row["out_seq"]
                    && other["in_total"] == row["out_total"]
                    && other["accept"] == row["issue"]
                    && row["pending_out"]
                        .as_str()
                        .is_some_and(|p| p.chars().all(|c| c == '0' || c == '.'));
                if !agrees {
                    disagreements.push(format!("{asset}: {row} vs {other}"));
                }
            }
        }
        if disagreements.is_empty() {
            for (me, peer, asset, net) in expected {
                let view = &views[nodes.iter().position(|n| n.key == me.key).expect("me")];
                assert_eq!(
                    view[&(peer.key.clone(), asset.to_string())]["net"].as_str(),
                    Some(*net),
                    "{asset}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: {disagreements:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Each payment is in both sides' history.
    let history: Value =
        serde_json::from_str(&cli_ok(a.dir(), &["history", "--json"])).expect("json");
    let completed = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["status"] == "completed")
        .count();
    assert_eq!(completed, 6, "a sent 3 and received 3: {history:#}");

    // Secrets are readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["api.token", "identity.key"] {
        let mode = std::fs::metadata(a.dir().join(file))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // SIGTERM: a clean exit that removes the files describing the running node.
    let mut nodes = nodes;
    let status = nodes[0]
        .stop()
        .expect("the node exits by itself on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!nodes[0].dir().join("api.url").exists());
    // The state is durable: started again, it has the same balances.
    let before = balances(nodes[1].dir());
    nodes[0].restart().expect("restart");
    let view = balances(nodes[0].dir());
    assert_eq!(
        view[&(nodes[1].key.clone(), "USD".to_string())]["net"],
        before[&(nodes[0].key.clone(), "USD".to_string())]["net"]
            .as_str()
            .map(negate)
            .map(serde_json::Value::from)
            .unwrap_or_default()
    );
}
