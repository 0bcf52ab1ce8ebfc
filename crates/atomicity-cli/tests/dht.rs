//! Reach anyone by key: real `atomicity node run` processes on 127.0.0.1 that know each other
//! only by key, over a fresh local Mainline testnet. Each node publishes its Pkarr record; the
//! others find it there, pay, and still find a node that restarted on another port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atomicity_cli::harness::{self, NodeProcess};
use atomicity_discovery::{Dht, DhtOptions};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn cli_ok(dir: &Path, args: &[&str]) -> String {
    harness::cli_ok(&bin(), dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// `balance --json`: peer key → net, for USD.
fn nets(dir: &Path) -> HashMap<String, String> {
    let json: Value = serde_json::from_str(&cli_ok(dir, &["balance", "--json"])).expect("json");
    json.as_array()
        .expect("array")
        .iter()
        .filter(|row| row["asset"] == "USD")
        .map(|row| {
            (
                row["peer"].as_str().expect("peer").to_string(),
                row["net"].as_str().expect("net").to_string(),
            )
        })
        .collect()
}

/// Waits until `check` holds, or fails with what it last said.
fn wait_until(timeout: Duration, what: &str, check: impl FnMut() -> Result<(), String>) {
    harness::wait_until(timeout, what, check).unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until the DHT says `node` is at its current URL.
fn wait_published(rt: &tokio::runtime::Runtime, dht: &Dht, node: &NodeProcess) {
    let key = atomicity_core::parse_key(&node.key).expect("key");
    wait_until(Duration::from_secs(30), "the node's record", || {
        let found = rt
            .block_on(dht.resolve_node_url(&key))
            .map_err(|e| e.to_string())?;
        match found {
            Some(record) if record.url == node.node_url => Ok(()),
            other => Err(format!(
                "{} is at {}, the DHT says {:?}",
                node.key,
                node.node_url,
                other.map(|r| r.url)
            )),
        }
    });
}

#[test]
fn nodes_that_know_only_keys_pay_and_find_a_node_that_moved() {
    let testnet = atomicity_discovery::mainline::Testnet::builder(8)
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .build()
        .expect("a local DHT");
    let bootstrap = testnet.bootstrap.join(",");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let observer = rt
        .block_on(async {
            Dht::start(&DhtOptions {
                bootstrap: testnet.bootstrap.clone(),
                request_timeout: Duration::from_millis(500),
            })
        })
        .expect("a DHT client");

    let root = tempfile::tempdir().expect("tempdir");
    let extra = ["--dht-bootstrap".to_string(), bootstrap];
    let mut nodes: Vec<NodeProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            NodeProcess::start_with(&bin(), &root.path().join(n), "127.0.0.1:0", &extra)
                .expect("node starts")
        })
        .collect();
    for node in &nodes {
        wait_published(&rt, &observer, node);
    }
    let keys: Vec<String> = nodes.iter().map(|n| n.key.clone()).collect();
    let dirs: Vec<PathBuf> = nodes.iter().map(|n| n.dir().to_path_buf()).collect();
    let (a, b, c) = (0, 1, 2);

    // Peers by key alone, lines both ways.
    for (x, y) in [(a, b), (b, c)] {
        for (me, peer) in [(x, y), (y, x)] {
            let out = cli_ok(&dirs[me], &["peer", "add", &keys[peer]]);
            assert!(!out.contains("http"), "no URL was given: {out}");
            cli_ok(
                &dirs[me],
                &[
                    "line",
                    "set",
                    &keys[peer],
                    "--asset",
                    "USD",
                    "--accept",
                    "100",
                    "--issue",
                    "100",
                ],
            );
        }
    }
    // C publishes a Lightning endpoint; anyone reads it, and C's own Atomicity endpoint, with a
    // plain GET at the Paykit path, and it verifies under C's key.
    cli_ok(
        &dirs[c],
        &["endpoint", "add", "btc-lightning-bolt11", "lnbc1pexample"],
    );
    let listed = cli_ok(&dirs[c], &["endpoint", "list"]);
    assert!(
        listed.contains("btc-lightning-bolt11  lnbc1pexample"),
        "{listed}"
    );
    assert!(listed.contains("usd-atomicity-key"), "{listed}");
    let c_key = atomicity_core::parse_key(&keys[c]).expect("key");
    for (id, value) in [
        ("btc-lightning-bolt11", "lnbc1pexample".to_string()),
        ("usd-atomicity-key", keys[c].clone()),
    ] {
        let path = format!("/pub/paykit/v0/apps/atomicity/endpoints/{id}");
        let body = rt
            .block_on(async {
                reqwest::get(format!("{}{path}", nodes[c].node_url))
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await
            })
            .expect("a plain GET");
        let json: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["value"], value.as_str(), "{json}");
        atomicity_core::published::verify_document(&body, &c_key, &path, None)
            .expect("signed by C");
    }

    cli_ok(&dirs[a], &["pay", &keys[b], "5", "USD"]);
    cli_ok(&dirs[c], &["pay", &keys[b], "2.50", "USD"]);
    let settled = |want: &[(usize, usize, &str)]| {
        wait_until(Duration::from_secs(20), "balances", || {
            for (me, peer, net) in want {
                let got = nets(&dirs[*me]).get(&keys[*peer]).cloned();
                if got.as_deref() != Some(*net) {
                    return Err(format!("{me} toward {peer}: {got:?}, want {net}"));
                }
            }
            Ok(())
        })
    };
    settled(&[
        (a, b, "-5.00"),
        (b, a, "5.00"),
        (c, b, "-2.50"),
        (b, c, "2.50"),
    ]);

    // B moves to another port; A and C still reach it by key.
    let old_url = nodes[b].node_url.clone();
    nodes[b].restart_at("127.0.0.1:0").expect("b restarts");
    assert_ne!(nodes[b].node_url, old_url, "b has a new port");
    wait_published(&rt, &observer, &nodes[b]);
    cli_ok(&dirs[a], &["pay", &keys[b], "1", "USD"]);
    cli_ok(&dirs[c], &["pay", &keys[b], "1", "USD"]);
    // And B reaches them (it pays back).
    cli_ok(&dirs[b], &["pay", &keys[a], "0.25", "USD"]);
    settled(&[
        (a, b, "-5.75"),
        (b, a, "5.75"),
        (c, b, "-3.50"),
        (b, c, "3.50"),
    ]);
    // A had B's old URL cached: the refused connection made it look B up again.
    let log = std::fs::read_to_string(dirs[a].join("node.log")).expect("a's log");
    assert!(log.contains("the peer moved"), "{log}");
}

/// A fake service for `discover` to meet: it answers every identity challenge with `answer`.
async fn impostor(answer: Option<atomicity_witness::identity::IdentityProof>) -> u16 {
    let router = axum::Router::new().route(
        atomicity_witness::identity::IDENTITY_PATH,
        axum::routing::get(move || {
            let answer = answer.clone();
            async move {
                match answer {
                    Some(proof) => axum::Json(proof).into_response(),
                    None => (axum::http::StatusCode::NOT_FOUND, "no").into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    port
}

use axum::response::IntoResponse as _;

/// A witness and a watchtower announce themselves on a local DHT; a client finds them from the
/// DHT alone and checks their keys. Impostors on the witness infohash (one replaying the real
/// witness's answer to another challenge, one that is no service at all) are rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_found_on_the_dht_prove_their_keys_and_impostors_do_not() {
    use atomicity_cli::harness::ServiceProcess;
    use atomicity_discovery::Service;

    let testnet = atomicity_discovery::mainline::Testnet::builder(8)
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .build()
        .expect("a local DHT");
    let options = DhtOptions {
        bootstrap: testnet.bootstrap.clone(),
        request_timeout: Duration::from_millis(500),
    };
    let client = Dht::start(&options).expect("client");
    let root = tempfile::tempdir().expect("tempdir");
    let dht_args = ["--dht-bootstrap".to_string(), testnet.bootstrap.join(",")];
    let listen = ["--listen".to_string(), "127.0.0.1:0".to_string()];
    let (witness, tower) = tokio::task::block_in_place(|| {
        let args: Vec<String> = listen.iter().chain(&dht_args).cloned().collect();
        let witness = ServiceProcess::start(&bin(), &root.path().join("w"), "witness", &args)
            .expect("witness starts");
        let tower = ServiceProcess::start(&bin(), &root.path().join("t"), "watchtower", &args)
            .expect("watchtower starts");
        (witness, tower)
    });
    let witness_key = witness.read("witness.vkey").expect("vkey");
    let tower_key = tower.read("watchtower.vkey").expect("vkey");

    // The real witness's answer to one challenge, replayed by an impostor to every other.
    let replayed: atomicity_witness::identity::IdentityProof = reqwest::Client::new()
        .get(format!("{}/v1/identity", witness.url))
        .query(&[("challenge", "00".repeat(32))])
        .send()
        .await
        .expect("identity")
        .json()
        .await
        .expect("json");
    assert_eq!(replayed.key, witness_key);
    let impostors = [impostor(Some(replayed)).await, impostor(None).await];
    for port in impostors {
        client
            .announce(Service::Witness, port)
            .await
            .expect("announce");
    }

    let start = Instant::now();
    let found = loop {
        let found = client
            .discover(Service::Witness, Duration::from_secs(2))
            .await
            .expect("discover");
        if !found.verified.is_empty() && found.rejected.len() == impostors.len() {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the witness was not found: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found.verified.len(), 1, "{found:?}");
    assert_eq!(found.verified[0].key, witness_key);
    assert_eq!(found.verified[0].url, witness.url);
    let mut rejected_ports: Vec<u16> = found.rejected.iter().map(|r| r.addr.port()).collect();
    rejected_ports.sort();
    let mut want = impostors.to_vec();
    want.sort();
    assert_eq!(rejected_ports, want, "{found:?}");
    assert!(
        found
            .rejected
            .iter()
            .any(|r| r.why.contains("does not verify")),
        "the replay is refused for its signature: {found:?}"
    );

    // The watchtower, on its own infohash, with its cosigner key; nobody announced a router.
    let start = Instant::now();
    loop {
        let found = client
            .discover(Service::Watchtower, Duration::from_secs(2))
            .await
            .expect("discover");
        if let Some(v) = found.verified.first() {
            assert_eq!(
                (v.key.as_str(), v.url.as_str()),
                (tower_key.as_str(), tower.url.as_str())
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no watchtower: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let routers = client
        .discover(Service::Router, Duration::from_secs(2))
        .await
        .expect("discover");
    assert!(routers.verified.is_empty() && routers.rejected.is_empty());

    // The same from the command line.
    let bootstrap = testnet.bootstrap.join(",");
    let out = tokio::task::block_in_place(|| {
        cli_ok(
            root.path(),
            &[
                "dht",
                "find",
                "witness",
                "--dht-bootstrap",
                &bootstrap,
                "--json",
            ],
        )
    });
    let rows: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[0]["key"], witness_key.as_str(), "{out}");
}
