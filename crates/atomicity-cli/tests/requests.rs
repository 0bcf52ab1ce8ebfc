//! Payment requests end to end, with real `atomicity node run` and `atomicity witness run`
//! processes on 127.0.0.1: the design document's dinner (a $270 request filled by credit,
//! Lightning and on-chain, an overpayment refused, the waitress's invoice paid once it is
//! filled), and forged or tampered requests refused with nothing changed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomicity_cli::harness::{NodeProcess, ServiceProcess, cli, cli_ok, serve_fixed, wait_until};
use atomicity_node::lightning::LnNetwork;
use atomicity_node::lightning::testing::{
    add_fake_invoice, fake_wallet_payments, make_invoice, write_fake_wallet,
};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn root() -> tempfile::TempDir {
    let mut root = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("ATOMICITY_KEEP_TEST_DIRS").is_some() {
        root.disable_cleanup(true);
        eprintln!("keeping {}", root.path().display());
    }
    root
}

fn ok(dir: &Path, args: &[&str]) -> String {
    cli_ok(&bin(), dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must fail; returns its stderr and stdout.
fn fails(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = cli(&bin(), dir, args).expect("run atomicity");
    assert_ne!(code, 0, "atomicity {args:?} should fail: {stdout}");
    format!("{stderr}{stdout}")
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// `net` of every line of `dir` in `asset`, by peer key.
fn nets(dir: &Path, asset: &str) -> HashMap<String, String> {
    json(dir, &["balance", "--json"])
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["asset"] == asset)
        .map(|r| {
            (
                r["peer"].as_str().expect("peer").to_string(),
                r["net"].as_str().expect("net").to_string(),
            )
        })
        .collect()
}

fn net(dir: &Path, peer: &str) -> String {
    nets(dir, "USD").get(peer).cloned().unwrap_or_default()
}

/// `payer` may owe `payee` up to 100.00 USD, and `payee` accepts it.
fn link(payer: &NodeProcess, payee: &NodeProcess) {
    for (me, peer) in [(payer, payee), (payee, payer)] {
        ok(
            me.dir(),
            &["peer", "add", &peer.key, "--url", &peer.node_url],
        );
    }
    ok(
        payer.dir(),
        &[
            "line", "set", &payee.key, "--asset", "USD", "--issue", "100",
        ],
    );
    ok(
        payee.dir(),
        &[
            "line", "set", &payer.key, "--asset", "USD", "--accept", "100",
        ],
    );
}

fn request(dir: &Path, id: &str) -> Value {
    json(dir, &["request", "show", id, "--json"])
}

/// Waits until request `id` of `dir` has `field` equal to `want`.
fn wait_field(dir: &Path, id: &str, field: &str, want: &str) {
    wait_until(
        Duration::from_secs(20),
        &format!("{field} = {want}"),
        || {
            let row = request(dir, id);
            if row[field] == want {
                Ok(())
            } else {
                Err(format!("{field} is {}", row[field]))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The dinner: I paid the $300 bill and ask my four friends for $270 at 1,100 sat/USD. Bob
/// pays 100.00 in credit, Carol 70.00 by Lightning (77,000 sat), Dave 60.00 on-chain (66,000
/// sat, which I confirm), Erin offers 50.00 when only 40.00 is left (refused, nothing changes)
/// and pays 40.00 in credit. The request is filled, and my node pays the waitress's invoice
/// once. My node restarts halfway and loses nothing.
#[test]
fn the_dinner_bill_is_filled_by_credit_lightning_and_onchain() {
    let root = root();
    let ln = root.path().join("ln");
    std::fs::create_dir_all(&ln).expect("ln dir");
    let pay_cmd = write_fake_wallet(&ln).expect("fake wallet");
    let invoice_cmd = format!(
        "'{}' fake-ln-invoice --wallet '{}' --network regtest",
        bin().display(),
        ln.display()
    );
    let witness = ServiceProcess::start(
        &bin(),
        &root.path().join("witness"),
        "witness",
        &["--listen", "127.0.0.1:0", "--block-seconds", "1"].map(String::from),
    )
    .expect("witness");
    let mut args = vec![
        "--witness".to_string(),
        witness.url.clone(),
        "--ln-network".into(),
        "regtest".into(),
        "--ln-pay-cmd".into(),
        pay_cmd,
    ];
    let friend_args = args.clone();
    args.extend(["--ln-invoice-cmd".to_string(), invoice_cmd]);
    let mut me =
        NodeProcess::start_with(&bin(), &root.path().join("me"), "127.0.0.1:0", &args).expect("me");
    let node = |name: &str| {
        NodeProcess::start_with(&bin(), &root.path().join(name), "127.0.0.1:0", &friend_args)
            .expect("friend")
    };
    let (bob, carol, dave, erin) = (node("bob"), node("carol"), node("dave"), node("erin"));
    link(&bob, &me);
    link(&erin, &me);
    for friend in [&carol, &dave] {
        ok(
            friend.dir(),
            &["peer", "add", &me.key, "--url", &me.node_url],
        );
    }

    // The waitress's invoice: $300 at 1,100 sat/USD.
    let now = atomicity_node::unix_now();
    let waitress_preimage = [0x5a; 32];
    let waitress = make_invoice(
        waitress_preimage,
        Some(330_000_000),
        3600,
        LnNetwork::Regtest,
        now,
    )
    .expect("invoice");
    add_fake_invoice(&ln, &waitress, &waitress_preimage).expect("add invoice");

    let svg = root.path().join("dinner.svg");
    let row = json(
        me.dir(),
        &[
            "request",
            "new",
            "270",
            "USD",
            "--memo",
            "dinner",
            "--method",
            "credit,lightning,onchain",
            "--sats-per-unit",
            "1100",
            "--address",
            "bcrt1qdinner0address",
            "--then-pay",
            &waitress,
            "--svg",
            svg.to_str().expect("path"),
            "--json",
        ],
    );
    let id = row["id"].as_str().expect("id").to_string();
    let uri = row["uri"].as_str().expect("uri").to_string();
    assert!(
        uri.starts_with(&format!("atomicity:{}?request={id}", me.key)),
        "{uri}"
    );
    assert_eq!(row["status"], "open");
    assert!(
        std::fs::read_to_string(&svg)
            .expect("svg")
            .starts_with("<?xml")
    );
    // The terminal QR code is printed too.
    let shown = ok(me.dir(), &["request", "show", &id, "--qr"]);
    assert!(shown.contains('█') || shown.contains('▀'), "{shown}");

    // Bob: 100.00 in credit.
    let paid = json(bob.dir(), &["request", "pay", &uri, "100", "--json"]);
    assert_eq!(paid["status"], "paid", "{paid}");
    wait_field(me.dir(), &id, "paid", "100.00");

    // My node restarts: the request and its fill are still there.
    me.restart().expect("restart");
    assert_eq!(request(me.dir(), &id)["paid"], "100.00");

    // Carol: 70.00 by Lightning = 77,000 sat, through her wallet.
    let paid = json(
        carol.dir(),
        &[
            "request",
            "pay",
            &uri,
            "70",
            "--method",
            "lightning",
            "--json",
        ],
    );
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["sats"], 77_000);
    wait_field(me.dir(), &id, "paid", "170.00");

    // Dave first tries credit, but has no line with me: his payment fails before anything is
    // signed, and his node gives the fill back at once (not when its invoice expires).
    let err = fails(dave.dir(), &["request", "pay", &uri, "60"]);
    assert!(err.contains("line") || err.contains("route"), "{err}");
    let row = request(me.dir(), &id);
    assert_eq!(row["fills"][2]["status"], "released", "{row}");
    assert_eq!(row["left"], "100.00", "{row}");

    // Dave: on-chain. Without a txid he is told what to send; with it the fill waits for me.
    let err = fails(
        dave.dir(),
        &["request", "pay", &uri, "60", "--method", "onchain"],
    );
    assert!(
        err.contains("send 66000 sat to bcrt1qdinner0address"),
        "{err}"
    );
    let paid = json(
        dave.dir(),
        &[
            "request", "pay", &uri, "60", "--method", "onchain", "--txid", "d1ce", "--json",
        ],
    );
    assert_eq!(paid["status"], "claimed", "{paid}");
    let row = request(me.dir(), &id);
    assert_eq!(
        (row["paid"].as_str(), row["pending"].as_str()),
        (Some("170.00"), Some("60.00"))
    );

    // Erin offers 50.00 when 40.00 is left: refused, and nothing changes anywhere.
    let err = fails(erin.dir(), &["request", "pay", &uri, "50"]);
    assert!(err.contains("overpay") && err.contains("40.00"), "{err}");
    assert_eq!(net(erin.dir(), &me.key), "0.00");
    assert_eq!(
        request(me.dir(), &id)["fills"].as_array().map(Vec::len),
        Some(4)
    );

    // I see Dave's transaction and confirm it; Erin pays what is left.
    ok(me.dir(), &["request", "confirm", &id, "4"]);
    let paid = json(erin.dir(), &["request", "pay", &uri, "40", "--json"]);
    assert_eq!(paid["status"], "paid", "{paid}");

    // Filled: watch returns at once, after my node paid the waitress.
    let watched = ok(me.dir(), &["request", "watch", &id, "--timeout", "30"]);
    assert!(watched.contains("filled: 270.00 USD paid"), "{watched}");
    assert!(watched.contains("paid the invoice"), "{watched}");
    let row = request(me.dir(), &id);
    assert_eq!(row["status"], "filled");
    assert_eq!(row["percent"], 100);
    assert_eq!(row["action"]["status"], "paid");
    assert_eq!(row["action"]["preimage"], hex::encode(waitress_preimage));

    // Exact balances: Bob and Erin owe me their credit; Carol and Dave owe nothing.
    assert_eq!(net(me.dir(), &bob.key), "100.00");
    assert_eq!(net(me.dir(), &erin.key), "40.00");
    assert_eq!(net(bob.dir(), &me.key), "-100.00");
    assert_eq!(net(erin.dir(), &me.key), "-40.00");
    assert!(nets(carol.dir(), "USD").is_empty());
    assert!(nets(dave.dir(), "USD").is_empty());
    // The fake Lightning network paid Carol's fill invoice and the waitress, once each.
    let payments = fake_wallet_payments(&ln).expect("payments");
    assert_eq!(payments.len(), 2, "{payments:?}");
    assert_eq!(payments[1], waitress);

    // Filled: nobody can pay more.
    let err = fails(bob.dir(), &["request", "pay", &uri, "1"]);
    assert!(err.contains("already filled"), "{err}");
    assert_eq!(net(bob.dir(), &me.key), "-100.00");
}

/// The body of `GET base/path` (HTTP/1.0, so the server closes when done).
fn http_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// A payer reaches "the payee" at a server that serves the real request with its amount
/// changed, or the same request signed by another key: both are refused as not signed by the
/// payee, and nothing is reserved or paid. Bad URIs and unknown requests are refused too.
#[test]
fn a_forged_or_tampered_request_is_refused() {
    let root = root();
    let me = NodeProcess::start(&bin(), &root.path().join("me"), "127.0.0.1:0").expect("me");
    let bob = NodeProcess::start(&bin(), &root.path().join("bob"), "127.0.0.1:0").expect("bob");
    link(&bob, &me);
    let row = json(
        me.dir(),
        &["request", "new", "30", "USD", "--memo", "lunch", "--json"],
    );
    let id = row["id"].as_str().expect("id").to_string();
    let uri = row["uri"].as_str().expect("uri").to_string();
    let path = format!("/pub/atomicity/v1/requests/{id}");
    let real = http_get(&me.node_url, &path);
    assert!(real.contains("\"amount\":\"30.00\""), "{real}");

    // The real document with another amount: its signature no longer holds.
    let tampered = real.replace("\"amount\":\"30.00\"", "\"amount\":\"3.00\"");
    // The same request signed by a key that is not the payee's.
    let forger = atomicity_core::Keypair::from_secret_key(&[9; 32]);
    let value =
        &real[real.find("{\"id\"").expect("value")..real.find(",\"atomicity\"").expect("meta")];
    let forged = String::from_utf8(
        atomicity_core::published::sign_document(&forger, &path, 1, value.as_bytes())
            .expect("sign"),
    )
    .expect("utf8");
    for (doc, why) in [
        (tampered, "signature does not verify"),
        (forged, "the document is from"),
    ] {
        let url = serve_fixed(doc).expect("serve");
        ok(bob.dir(), &["peer", "add", &me.key, "--url", &url]);
        let err = fails(bob.dir(), &["request", "pay", &uri, "10"]);
        assert!(
            err.contains("not validly signed") && err.to_lowercase().contains(why),
            "{err}"
        );
    }
    ok(bob.dir(), &["peer", "add", &me.key, "--url", &me.node_url]);
    assert_eq!(request(me.dir(), &id)["fills"], serde_json::json!([]));
    assert_eq!(net(bob.dir(), &me.key), "0.00");

    // Bad URIs, unknown requests, methods the request does not take.
    let err = fails(
        bob.dir(),
        &["request", "pay", "atomicity:nonsense?request=1", "1"],
    );
    assert!(err.contains("not a public key"), "{err}");
    let other = uri.replace(&id, &"ab".repeat(16));
    let err = fails(bob.dir(), &["request", "pay", &other, "1"]);
    assert!(err.contains("no such payment request"), "{err}");
    let err = fails(
        bob.dir(),
        &["request", "pay", &uri, "1", "--method", "lightning"],
    );
    assert!(err.contains("does not accept lightning"), "{err}");
    let err = fails(
        bob.dir(),
        &["request", "pay", &uri, "1", "--method", "cash"],
    );
    assert!(err.contains("not credit, lightning or onchain"), "{err}");
    // The payee's own bad input: no rate for Lightning, no wallet for --then-pay.
    let err = fails(
        me.dir(),
        &[
            "request",
            "new",
            "5",
            "USD",
            "--method",
            "onchain",
            "--address",
            "bc1q",
        ],
    );
    assert!(err.contains("sats-per-unit"), "{err}");
    let err = fails(me.dir(), &["request", "new", "0", "USD"]);
    assert!(err.contains("zero"), "{err}");
    assert_eq!(
        json(me.dir(), &["request", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
