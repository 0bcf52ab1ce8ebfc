//! Routers end to end: ten real `atomicity node run` processes on a local Mainline testnet, a
//! witness, and a real `atomicity router run` that crawls their published channel lists from
//! one seed key. A payer that names no route asks the routers it finds on the DHT (and one it
//! was given that lies), pays, and rates them; when a line changes, the router's next crawl
//! learns it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomicity_cli::harness::{self, NodeProcess, ServiceProcess};
use atomicity_core::published::{ROUTERS_PATH, sign_document, verify_document};
use atomicity_core::router_api::{ANSWER_PATH, QueryEcho, RouteJson, RoutesAnswer};
use atomicity_witness::identity::{IDENTITY_PATH, Role, prove};
use axum::response::IntoResponse as _;
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    harness::cli(&bin(), dir, args).expect("run atomicity")
}

fn cli_ok(dir: &Path, args: &[&str]) -> String {
    harness::cli_ok(&bin(), dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A router that proves a key of its own but answers every query with a route that is not
/// one (it starts at a stranger).
async fn lying_router() -> (String, String) {
    let key = atomicity_core::Keypair::random();
    let z32 = key.public_key().to_z32();
    let stranger = atomicity_core::Keypair::random().public_key().to_z32();
    let signing = ed25519_dalek::SigningKey::from_bytes(&key.secret_key());
    let identity_key = z32.clone();
    let router = axum::Router::new()
        .route(
            IDENTITY_PATH,
            axum::routing::get(
                move |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| {
                    let signing = signing.clone();
                    let identity_key = identity_key.clone();
                    async move {
                        let mut challenge = [0u8; 32];
                        hex::decode_to_slice(
                            q.get("challenge").cloned().unwrap_or_default(),
                            &mut challenge,
                        )
                        .expect("hex challenge");
                        axum::Json(prove(Role::Router, &identity_key, &signing, &challenge))
                    }
                },
            ),
        )
        .route(
            atomicity_core::router_api::ROUTE_PATH,
            axum::routing::get(
                move |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| {
                    let key = key.clone();
                    let stranger = stranger.clone();
                    async move {
                        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                        let answer = RoutesAnswer {
                            query: QueryEcho {
                                kind: "route".into(),
                                from: get("from"),
                                to: get("to"),
                                amount: get("amount"),
                                asset: get("asset"),
                            },
                            routes: vec![RouteJson {
                                hops: vec![stranger, get("to")],
                                amounts: vec![get("amount"), get("amount")],
                                fees: "0.00".into(),
                            }],
                            nodes: 2,
                            lines: 1,
                        };
                        let json = serde_json::to_vec(&answer).expect("json");
                        let doc = sign_document(&key, ANSWER_PATH, 1, &json).expect("sign");
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            doc,
                        )
                            .into_response()
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, z32)
}

fn wait_until(timeout: Duration, what: &str, check: impl FnMut() -> Result<(), String>) {
    harness::wait_until(timeout, what, check).unwrap_or_else(|e| panic!("{e}"));
}

/// The router's best route from `from` to `to` for `amount` USD, as keys (verified answer).
fn ask_route(
    rt: &tokio::runtime::Handle,
    router: &ServiceProcess,
    router_key: &str,
    from: &str,
    to: &str,
    amount: &str,
) -> Option<Vec<String>> {
    let body = rt
        .block_on(async {
            reqwest::Client::new()
                .get(format!("{}/v1/route", router.url))
                .query(&[
                    ("from", from),
                    ("to", to),
                    ("amount", amount),
                    ("asset", "USD"),
                ])
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
        })
        .expect("the router answers");
    let key = atomicity_core::parse_key(router_key).expect("key");
    let doc = verify_document(&body, &key, ANSWER_PATH, None).expect("signed by the router");
    let answer: RoutesAnswer = serde_json::from_str(doc.value.get()).expect("an answer");
    answer.routes.first().map(|r| r.hops.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_crawls_ten_nodes_and_payments_without_routes_use_it() {
    let testnet = atomicity_discovery::mainline::Testnet::builder(8)
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .build()
        .expect("a local DHT");
    let bootstrap = testnet.bootstrap.join(",");
    let root = tempfile::tempdir().expect("tempdir");
    let (liar_url, liar_key) = lying_router().await;
    let rt = tokio::runtime::Handle::current();

    tokio::task::block_in_place(|| {
        let witness = ServiceProcess::start(
            &bin(),
            &root.path().join("witness"),
            "witness",
            &["--listen", "127.0.0.1:0", "--block-seconds", "1"].map(String::from),
        )
        .expect("witness");
        let base: Vec<String> = ["--dht-bootstrap", &bootstrap, "--witness", &witness.url]
            .map(String::from)
            .to_vec();
        let nodes: Vec<NodeProcess> = (0..10)
            .map(|i| {
                let mut extra = base.clone();
                if i == 0 {
                    extra.extend(["--router".to_string(), liar_url.clone()]);
                }
                NodeProcess::start_with(
                    &bin(),
                    &root.path().join(format!("n{i}")),
                    "127.0.0.1:0",
                    &extra,
                )
                .expect("node starts")
            })
            .collect();
        let key = |i: usize| nodes[i].key.clone();
        let dir = |i: usize| nodes[i].dir().to_path_buf();
        // A chain n0 – n1 – … – n9, and a shortcut n2 – n7; every hop charges 0.01 (the
        // shortcut 0.05). Peers by key only.
        let mut links: Vec<(usize, usize)> = (0..9).map(|i| (i, i + 1)).collect();
        links.push((2, 7));
        for (x, y) in links {
            for (me, peer) in [(x, y), (y, x)] {
                cli_ok(&dir(me), &["peer", "add", &key(peer)]);
                let fee = if (me, peer) == (2, 7) { "0.05" } else { "0.01" };
                cli_ok(
                    &dir(me),
                    &[
                        "line",
                        "set",
                        &key(peer),
                        "--asset",
                        "USD",
                        "--accept",
                        "100",
                        "--issue",
                        "100",
                        "--fee-base",
                        fee,
                    ],
                );
            }
        }

        let router = ServiceProcess::start(
            &bin(),
            &root.path().join("router"),
            "router",
            &[
                "--listen",
                "127.0.0.1:0",
                "--dht-bootstrap",
                &bootstrap,
                "--seed",
                &key(0),
                "--round-seconds",
                "1",
                "--recrawl-seconds",
                "1",
            ]
            .map(String::from),
        )
        .expect("router starts");
        let router_key = cli_ok(&root.path().join("router"), &["id"])
            .trim()
            .to_string();
        // It crawls the whole network from one seed.
        wait_until(
            Duration::from_secs(60),
            "the router indexes ten nodes",
            || {
                let status: Value = rt
                    .block_on(async {
                        reqwest::get(format!("{}/v1/status", router.url))
                            .await?
                            .json()
                            .await
                    })
                    .map_err(|e| e.to_string())?;
                match status["nodes"].as_u64() {
                    Some(n) if n >= 10 => Ok(()),
                    _ => Err(format!("{status}")),
                }
            },
        );
        // The shortcut: n0 → n1 → n2 → n7 → n8.
        let via = ask_route(&rt, &router, &router_key, &key(0), &key(8), "1").expect("a route");
        assert_eq!(via, [1, 2, 7, 8].map(key).to_vec());

        // An invoice paid with no route: n0 finds the router on the DHT (and has the liar).
        let out = cli_ok(&dir(9), &["invoice", "new", "5", "USD", "--json"]);
        let invoice: Value = serde_json::from_str(&out).expect("json");
        let invoice = invoice["invoice"].as_str().expect("invoice").to_string();
        let (code, out, err) = cli(&dir(0), &["invoice", "pay", &invoice, "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        let paid: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(paid["status"], "completed", "{paid}");
        // And a payment to a key alone (the payer publishes the secret).
        let (code, out, err) = cli(&dir(0), &["pay", &key(6), "2", "USD", "--json"]);
        assert_eq!(code, 0, "{out}{err}");

        // A peer with no line in the asset is also asked of the routers (which know none).
        let (code, out, err) = cli(&dir(0), &["pay", &key(1), "1", "EUR"]);
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains("no router gave a route"), "{err}");

        // n0 blocks n7: its routers are asked to avoid it, and every way to n8 goes through
        // it; unblocked, n8 is paid again.
        cli_ok(&dir(0), &["trust", "block", &key(7)]);
        let (code, out, err) = cli(&dir(0), &["pay", &key(8), "1", "USD"]);
        assert_ne!(code, 0, "a route avoiding n7 does not exist: {out}{err}");
        assert!(
            err.contains("no router gave a route") || err.contains("refused"),
            "{err}"
        );
        cli_ok(&dir(0), &["trust", "unblock", &key(7)]);
        let (code, out, err) = cli(&dir(0), &["pay", &key(8), "1", "USD", "--json"]);
        assert_eq!(code, 0, "{out}{err}");

        // n0 rated both routers, and publishes the ratings.
        let ratings: Value = rt
            .block_on(async {
                reqwest::get(format!("{}{ROUTERS_PATH}", nodes[0].node_url))
                    .await?
                    .bytes()
                    .await
            })
            .map(|body| {
                let key = atomicity_core::parse_key(&key(0)).expect("key");
                let doc = verify_document(&body, &key, ROUTERS_PATH, None).expect("signed");
                serde_json::from_str(doc.value.get()).expect("json")
            })
            .expect("ratings");
        assert!(ratings[&liar_key]["bad"].as_u64() >= Some(1), "{ratings}");
        assert_eq!(ratings[&router_key]["bad"].as_u64(), Some(0), "{ratings}");
        assert!(
            ratings[&router_key]["good"].as_u64() >= Some(2),
            "{ratings}"
        );

        // A line changes: n2 stops issuing to n7. The next crawl drops the shortcut.
        cli_ok(
            &dir(2),
            &["line", "set", &key(7), "--asset", "USD", "--issue", "0"],
        );
        wait_until(
            Duration::from_secs(30),
            "the router learns the change",
            || {
                let via = ask_route(&rt, &router, &router_key, &key(0), &key(8), "1");
                if via == Some((1..=8).map(key).collect()) {
                    Ok(())
                } else {
                    Err(format!("{via:?}"))
                }
            },
        );
    });
}
