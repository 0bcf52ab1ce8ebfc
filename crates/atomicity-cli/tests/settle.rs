//! Settlement end to end: real `atomicity node run` and `atomicity witness run` processes on
//! 127.0.0.1. Credit reassignment across three nodes, the design document's Mom-coffee Lightning
//! swap (a real BOLT11 invoice, a wallet command that returns the preimage) and its failure,
//! bad input of every kind, and kill -9 at random points of a settlement.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atomicity_cli::harness::{NodeProcess, ServiceProcess, cli, cli_ok, wait_until};
use atomicity_core::{
    Amount, Asset, Envelope, Keypair, Message, Reply, SettlementKind, SettlementRequest, Signed,
    decode_replies,
};
use atomicity_node::lightning::LnNetwork;
use atomicity_node::lightning::testing::{
    add_fake_invoice, fake_wallet_calls, fake_wallet_payments, make_invoice, write_fake_wallet,
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
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
    serde_json::from_str(&ok(dir, args)).expect("json")
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run atomicity")
}

/// `net` of every line of `dir` in `asset`, by peer key ("" when no line).
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

fn net(dir: &Path, peer: &str, asset: &str) -> String {
    nets(dir, asset).get(peer).cloned().unwrap_or_default()
}

/// Waits until every `(dir, peer, asset, net)` holds.
fn wait_nets(expected: &[(&Path, &str, &str, &str)]) {
    wait_until(Duration::from_secs(15), "balances settle", || {
        let got: Vec<String> = expected
            .iter()
            .map(|(dir, peer, asset, _)| net(dir, peer, asset))
            .collect();
        let want: Vec<&str> = expected.iter().map(|e| e.3).collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn settlements(dir: &Path) -> Vec<Value> {
    json(dir, &["settle", "list", "--json"])
        .as_array()
        .expect("rows")
        .clone()
}

/// Waits until `dir` holds settlement `id` with `status`.
fn wait_status(dir: &Path, id: &str, status: &str, secs: u64) {
    wait_until(
        Duration::from_secs(secs),
        &format!("settlement {id} {status}"),
        || {
            let (code, out, err) =
                cli(&bin(), dir, &["settle", "show", id, "--json"]).map_err(|e| e.to_string())?;
            if code != 0 {
                return Err(err);
            }
            let row: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            if row["status"] == status {
                Ok(())
            } else {
                Err(format!("{} ({})", row["status"], row["note"]))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Both peers with a line in `asset`: `x` may owe `y` up to `x_issue` (and `y` accepts it),
/// `y` may owe `x` up to `y_issue`.
fn link(x: &NodeProcess, y: &NodeProcess, asset: &str, x_issue: &str, y_issue: &str) {
    for (me, peer, issue, accept) in [(x, y, x_issue, y_issue), (y, x, y_issue, x_issue)] {
        ok(
            me.dir(),
            &["peer", "add", &peer.key, "--url", &peer.node_url],
        );
        ok(
            me.dir(),
            &[
                "line", "set", &peer.key, "--asset", asset, "--issue", issue, "--accept", accept,
            ],
        );
    }
}

fn node(root: &Path, name: &str, extra: &[String]) -> NodeProcess {
    NodeProcess::start_with(&bin(), &root.join(name), "127.0.0.1:0", extra).expect("node starts")
}

fn witness(root: &Path) -> ServiceProcess {
    let args = ["--listen", "127.0.0.1:0", "--block-seconds", "1"].map(String::from);
    ServiceProcess::start(&bin(), &root.join("witness"), "witness", &args).expect("witness")
}

/// H holds 50.00 USD of I's credit; H's `usd-atomicity-key` endpoint names T; I has a line to
/// T. H asks I to settle 20.00: I pays T 20.00 on H's behalf (T's acceptance is the evidence),
/// H's node checks it and gives its receipt (a counter-IOU), and every balance is exact.
#[test]
fn credit_reassignment_across_three_nodes() {
    let root = root();
    let h = node(root.path(), "h", &[]);
    let i = node(root.path(), "i", &[]);
    let t = node(root.path(), "t", &[]);
    link(&i, &h, "USD", "100", "0");
    link(&i, &t, "USD", "100", "0");
    ok(i.dir(), &["pay", &h.key, "50", "USD"]);
    assert_eq!(net(h.dir(), &i.key, "USD"), "50.00");

    // Over what is owed: refused by H's own node, nothing recorded.
    let err = fails(h.dir(), &["settle", "request", &i.key, "50.01", "USD"]);
    assert!(err.contains("over what is owed"), "{err}");
    // No endpoint to be paid through yet.
    let err = fails(h.dir(), &["settle", "request", &i.key, "20", "USD"]);
    assert!(err.contains("endpoint add"), "{err}");
    assert!(settlements(h.dir()).is_empty());

    ok(h.dir(), &["endpoint", "add", "usd-atomicity-key", &t.key]);
    let row: Value = json(
        h.dir(),
        &["settle", "request", &i.key, "20", "USD", "--json"],
    );
    let id = row["id"].as_str().expect("id").to_string();
    assert_eq!(row["status"], "requested");
    assert_eq!(row["delivered"], true, "{row}");

    let asked = settlements(i.dir());
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["id"], id.as_str());
    assert_eq!(asked[0]["role"], "payer");
    ok(i.dir(), &["settle", "pay", &id]);

    wait_status(h.dir(), &id, "done", 20);
    wait_status(i.dir(), &id, "done", 20);
    let paid = json(i.dir(), &["settle", "show", &id, "--json"]);
    assert_eq!(paid["method"], "usd-atomicity-key");
    assert!(
        paid["evidence"].as_str().unwrap_or("").contains(&t.key),
        "{paid}"
    );

    // I owes H 30, I owes T 20; nothing pending anywhere.
    wait_nets(&[
        (h.dir(), &i.key, "USD", "30.00"),
        (i.dir(), &h.key, "USD", "-30.00"),
        (i.dir(), &t.key, "USD", "-20.00"),
        (t.dir(), &i.key, "USD", "20.00"),
    ]);

    // Paying again changes nothing.
    let err = fails(i.dir(), &["settle", "pay", &id]);
    assert!(err.contains("not waiting to be paid"), "{err}");
}

/// The issuer has no line to the holder's endpoint key: it pays the key over a route (B),
/// publishing the secret itself; the IOU B issued to T and the witness proof are the evidence
/// H's node checks before its receipt. B earns its fee; every balance is exact.
#[test]
fn credit_reassignment_over_a_route() {
    let root = root();
    let witness = witness(root.path());
    let args = vec!["--witness".to_string(), witness.url.clone()];
    let h = node(root.path(), "h", &args);
    let i = node(root.path(), "i", &args);
    let b = node(root.path(), "b", &args);
    let t = node(root.path(), "t", &args);
    link(&i, &h, "USD", "100", "0");
    link(&i, &b, "USD", "100", "0");
    link(&b, &t, "USD", "100", "0");
    ok(
        b.dir(),
        &[
            "line",
            "set",
            &t.key,
            "--asset",
            "USD",
            "--fee-base",
            "0.10",
        ],
    );
    ok(i.dir(), &["pay", &h.key, "50", "USD"]);
    ok(h.dir(), &["endpoint", "add", "usd-atomicity-key", &t.key]);
    let err = fails(h.dir(), &["settle", "request", &i.key, "0", "USD"]);
    assert!(
        err.contains("zero") || err.contains("greater than"),
        "{err}"
    );

    let row = json(
        h.dir(),
        &["settle", "request", &i.key, "20", "USD", "--json"],
    );
    let id = row["id"].as_str().expect("id").to_string();
    // No line to T and no router: refused with the reason, which the holder sees.
    let err = fails(i.dir(), &["settle", "pay", &id, "--json"]);
    assert!(err.contains("no mutual payment method"), "{err}");
    assert!(err.contains("no router"), "{err}");
    wait_status(h.dir(), &id, "refused", 10);

    let row = json(
        h.dir(),
        &["settle", "request", &i.key, "20", "USD", "--json"],
    );
    let id = row["id"].as_str().expect("id").to_string();
    ok(i.dir(), &["settle", "pay", &id, "--route", &b.key]);
    wait_status(h.dir(), &id, "done", 30);
    wait_status(i.dir(), &id, "done", 30);
    let shown = json(h.dir(), &["settle", "show", &id, "--json"]);
    assert!(
        shown["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("over a route"),
        "{shown}"
    );
    wait_nets(&[
        (h.dir(), &i.key, "USD", "30.00"),
        (i.dir(), &b.key, "USD", "-20.10"),
        (b.dir(), &t.key, "USD", "-20.00"),
        (t.dir(), &b.key, "USD", "20.00"),
    ]);
}

/// Lightning set-up for the swap tests: a witness, Mom and a helper that pays regtest invoices
/// through a fake wallet; Mom may owe the helper up to 0.001 BTC.
struct Swap {
    _witness: ServiceProcess,
    mom: NodeProcess,
    helper: NodeProcess,
    wallet: PathBuf,
}

fn swap_net(root: &Path, grace: Option<u64>) -> Swap {
    let witness = witness(root);
    let wallet = root.join("wallet");
    std::fs::create_dir_all(&wallet).expect("wallet dir");
    let command = write_fake_wallet(&wallet).expect("fake wallet");
    let mut common = vec![
        "--witness".to_string(),
        witness.url.clone(),
        "--ln-network".to_string(),
        "regtest".to_string(),
    ];
    if let Some(grace) = grace {
        common.extend(["--expiry-grace".to_string(), grace.to_string()]);
    }
    let mom = node(root, "mom", &common);
    let mut helper_args = common.clone();
    helper_args.extend(["--ln-pay-cmd".to_string(), command]);
    let helper = node(root, "helper", &helper_args);
    link(&mom, &helper, "BTC", "0.001", "0");
    Swap {
        _witness: witness,
        mom,
        helper,
        wallet,
    }
}

/// A regtest invoice for `sat` satoshis with preimage `p`, known to the fake wallet.
fn invoice(wallet: &Path, p: [u8; 32], sat: u64, expiry: u64) -> String {
    let text =
        make_invoice(p, Some(sat * 1000), expiry, LnNetwork::Regtest, now()).expect("invoice");
    add_fake_invoice(wallet, &text, &p).expect("wallet knows it");
    text
}

/// Waits for the helper to hold a swap request; returns its id.
fn wait_request(helper: &Path) -> String {
    let mut id = String::new();
    wait_until(
        Duration::from_secs(15),
        "the helper holds the request",
        || {
            let rows = settlements(helper);
            match rows.first() {
                Some(r) if r["status"] == "requested" => {
                    id = r["id"].as_str().unwrap_or_default().to_string();
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    id
}

/// Mom's coffee: she cannot pay a Lightning invoice, the helper can. Her node finds the helper
/// (it publishes a Lightning capability and takes her credit), sends the request with an IOU
/// conditional on the invoice's preimage; the helper pays the invoice with its wallet, publishes
/// the preimage on the witness log and claims the IOU. Then the failure case: the helper never
/// pays, the IOU expires, nothing is owed.
#[test]
fn mom_pays_a_lightning_invoice_through_the_helper_or_nothing() {
    let root = root();
    let s = swap_net(root.path(), Some(1));
    let p = [7u8; 32];
    let coffee = invoice(&s.wallet, p, 5_000, 3600);

    let pending = spawn(
        s.mom.dir(),
        &["ln", "pay-via-credit", &coffee, "--json", "--wait", "60"],
    );
    let id = wait_request(s.helper.dir());
    ok(s.helper.dir(), &["settle", "pay", &id]);
    let out = pending.wait_with_output().expect("mom's command");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(row["status"], "done");
    assert_eq!(row["kind"], "swap");
    assert_eq!(row["evidence"], format!("preimage {}", hex::encode(p)));
    wait_status(s.helper.dir(), &id, "done", 20);
    assert_eq!(
        fake_wallet_payments(&s.wallet).expect("paid"),
        vec![coffee.clone()]
    );
    // Mom owes the helper 5000 sat.
    wait_nets(&[
        (s.mom.dir(), &s.helper.key, "BTC", "-0.00005000"),
        (s.helper.dir(), &s.mom.key, "BTC", "0.00005000"),
    ]);

    // The helper never pays: the IOU expires at its deadline (the invoice's expiry, 35 s).
    let tea = invoice(&s.wallet, [8u8; 32], 2_000, 35);
    // Not finished after a second: the command says so and fails, the request stands.
    let (code, stdout, _) = cli(
        &bin(),
        s.mom.dir(),
        &["ln", "pay-via-credit", &tea, "--json", "--wait", "1"],
    )
    .expect("run");
    assert_ne!(code, 0);
    let row: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(row["status"], "requested");
    let tea_id = row["id"].as_str().expect("id").to_string();
    wait_status(s.mom.dir(), &tea_id, "failed", 60);
    wait_status(s.helper.dir(), &tea_id, "failed", 20);
    let err = fails(s.helper.dir(), &["settle", "pay", &tea_id]);
    assert!(err.contains("not waiting to be paid"), "{err}");
    assert_eq!(
        fake_wallet_payments(&s.wallet).expect("paid"),
        vec![coffee],
        "the wallet never paid the second invoice"
    );
    assert_eq!(net(s.mom.dir(), &s.helper.key, "BTC"), "-0.00005000");
    assert_eq!(net(s.helper.dir(), &s.mom.key, "BTC"), "0.00005000");
}

/// Bad input is refused with a clear error and changes nothing: an expired invoice, an invoice
/// for another amount or network, a wrong preimage, a forged or unsigned request.
#[test]
fn bad_settlement_input_is_refused_and_changes_nothing() {
    let root = root();
    let s = swap_net(root.path(), None);
    let mom = s.mom.dir();

    let expired = make_invoice(
        [1; 32],
        Some(1_000_000),
        60,
        LnNetwork::Regtest,
        now() - 120,
    )
    .expect("invoice");
    let err = fails(mom, &["ln", "pay-via-credit", &expired]);
    assert!(err.contains("expired"), "{err}");

    let fifty = invoice(&s.wallet, [2; 32], 50, 3600);
    let err = fails(
        mom,
        &["ln", "pay-via-credit", &fifty, "--amount", "0.00000060"],
    );
    assert!(err.contains("the invoice asks 50000 msat"), "{err}");

    let mainnet =
        make_invoice([3; 32], Some(50_000), 3600, LnNetwork::Bitcoin, now()).expect("invoice");
    let err = fails(mom, &["ln", "pay-via-credit", &mainnet]);
    assert!(err.contains("the invoice is for bitcoin"), "{err}");

    let err = fails(mom, &["ln", "pay-via-credit", "lnbcrt1garbage"]);
    assert!(err.contains("not a valid Lightning invoice"), "{err}");
    assert!(settlements(mom).is_empty());
    assert!(settlements(s.helper.dir()).is_empty());

    // A wrong preimage typed by hand: refused, the settlement still waits.
    let pending = spawn(
        mom,
        &["ln", "pay-via-credit", &fifty, "--json", "--wait", "30"],
    );
    let id = wait_request(s.helper.dir());
    let wrong = hex::encode([9u8; 32]);
    let err = fails(
        s.helper.dir(),
        &["settle", "pay", &id, "--preimage", &wrong],
    );
    assert!(err.contains("does not hash"), "{err}");
    let row = json(s.helper.dir(), &["settle", "show", &id, "--json"]);
    assert_eq!(row["status"], "requested");
    // The right one, by hand: paid.
    ok(
        s.helper.dir(),
        &["settle", "pay", &id, "--preimage", &hex::encode([2u8; 32])],
    );
    let out = pending.wait_with_output().expect("mom's command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fake_wallet_calls(&s.wallet).expect("calls").is_empty());

    // Forged and unsigned requests straight to the helper's peer API, in envelopes Mom signs.
    let mom_key = atomicity_node::datadir::DataDir::new(mom)
        .identity()
        .expect("mom's key");
    let helper_key = atomicity_core::parse_key(&s.helper.key).expect("key");
    let body = SettlementRequest {
        id: [5; 32],
        from: mom_key.public_key(),
        to: helper_key.clone(),
        kind: SettlementKind::Settle,
        asset: Asset::new("BTC", 8).expect("asset"),
        amount: Amount::from_minor(10),
        methods: vec![
            atomicity_core::published::EndpointId::parse("btc-bitcoin-address").expect("id"),
        ],
        invoice: String::new(),
        condition: None,
        created_at: now(),
        expires_at: now() + 3600,
        memo: String::new(),
    };
    let forged = Signed::sign(body.clone(), &Keypair::from_secret_key(&[42; 32]));
    let mut unsigned_bytes = Signed::sign(body.clone(), &mom_key).to_bytes();
    let last = unsigned_bytes.len() - 1;
    unsigned_bytes[last] ^= 1;
    let unsigned = Signed::<SettlementRequest>::decode(&unsigned_bytes).expect("decodes");
    // Over what is owed: the helper owes Mom nothing.
    let greedy = Signed::sign(body, &mom_key);
    let replies = send(
        &mom_key,
        &helper_key,
        &s.helper.node_url,
        vec![
            Message::Settle(Box::new(forged)),
            Message::Settle(Box::new(unsigned)),
            Message::Settle(Box::new(greedy)),
        ],
    );
    for (reply, why) in replies
        .iter()
        .zip(["signature", "signature", "over what is owed"])
    {
        match reply {
            Reply::Rejected { text, .. } => assert!(text.contains(why), "{text}"),
            other => panic!("accepted: {other:?}"),
        }
    }
    assert_eq!(settlements(s.helper.dir()).len(), 1, "only the paid one");
}

/// Posts an envelope of `messages` from `from` to a node's peer API; its replies.
fn send(
    from: &Keypair,
    to: &atomicity_core::PublicKey,
    url: &str,
    messages: Vec<Message>,
) -> Vec<Reply> {
    let envelope = Signed::sign(
        Envelope {
            from: from.public_key(),
            to: to.clone(),
            sent_at: now(),
            messages,
        },
        from,
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let body = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/peer/v1/envelope"))
            .header("content-type", "application/octet-stream")
            .body(envelope.to_bytes())
            .send()
            .await
            .expect("post")
            .bytes()
            .await
            .expect("body")
    });
    decode_replies(&body).expect("replies")
}

/// kill -9 either side at random points of settlements; after restarts nothing is paid twice
/// and every receipt survives. Then a helper killed while its wallet pays, restarted: the wallet
/// is asked again and answers with the same preimage (it pays once), and the IOU is claimed.
#[test]
fn a_settlement_survives_kill_9_on_either_side() {
    let root = root();
    let mut h = node(root.path(), "h", &[]);
    let mut i = node(root.path(), "i", &[]);
    let t = node(root.path(), "t", &[]);
    link(&i, &h, "USD", "100", "0");
    link(&i, &t, "USD", "100", "0");
    ok(i.dir(), &["pay", &h.key, "60", "USD"]);
    ok(h.dir(), &["endpoint", "add", "usd-atomicity-key", &t.key]);

    let seed = now();
    eprintln!("crash test seed {seed}");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut ids = Vec::new();
    for round in 0..3 {
        let row = json(
            h.dir(),
            &["settle", "request", &i.key, "10", "USD", "--json"],
        );
        let id = row["id"].as_str().expect("id").to_string();
        ids.push(id.clone());
        let payer = spawn(i.dir(), &["settle", "pay", &id]);
        std::thread::sleep(Duration::from_millis(next() % 400));
        let victim = if next() % 2 == 0 { &mut i } else { &mut h };
        eprintln!("round {round}: kill -9 {}", victim.key);
        victim.kill9();
        let _ = payer.wait_with_output();
        victim.restart().expect("restart");
        // If the kill came before the payer recorded anything, pay again: the ledger refuses
        // a second payment of the same settlement.
        let row = json(i.dir(), &["settle", "show", &id, "--json"]);
        if row["status"] == "requested" {
            ok(i.dir(), &["settle", "pay", &id]);
        }
        wait_status(i.dir(), &id, "done", 30);
        wait_status(h.dir(), &id, "done", 30);
    }
    wait_nets(&[
        (h.dir(), &i.key, "USD", "30.00"),
        (i.dir(), &t.key, "USD", "-30.00"),
        (t.dir(), &i.key, "USD", "30.00"),
    ]);
    // One payout and one receipt per settlement in the histories.
    let history = json(i.dir(), &["history", "--json"]);
    let to_t = history
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["peer"] == t.key.as_str() && r["status"] == "completed")
        .count();
    assert_eq!(to_t, 3, "{history}");
    let receipts = history
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| {
            r["peer"] == h.key.as_str()
                && r["memo"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("settlement receipt")
        })
        .count();
    assert_eq!(receipts, 3, "{history}");

    // The Lightning side: the helper dies while its wallet pays.
    let s = swap_net(&root.path().join("ln"), None);
    let mut helper = s.helper;
    let coffee = invoice(&s.wallet, [11; 32], 3_000, 3600);
    std::fs::write(s.wallet.join("hang-after"), b"").expect("hang");
    let pending = spawn(
        s.mom.dir(),
        &["ln", "pay-via-credit", &coffee, "--json", "--wait", "60"],
    );
    let id = wait_request(helper.dir());
    let paying = spawn(helper.dir(), &["settle", "pay", &id]);
    wait_until(
        Duration::from_secs(10),
        "the wallet paid",
        || match fake_wallet_payments(&s.wallet) {
            Ok(paid) if paid.len() == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    helper.kill9();
    let _ = paying.wait_with_output();
    std::fs::remove_file(s.wallet.join("hang-after")).expect("unhang");
    helper.restart().expect("restart");
    let out = pending.wait_with_output().expect("mom");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(helper.dir(), &id, "done", 20);
    assert_eq!(fake_wallet_payments(&s.wallet).expect("paid"), vec![coffee]);
    let calls = fake_wallet_calls(&s.wallet).expect("calls");
    assert!(calls.iter().any(|c| c.starts_with("repeat")), "{calls:?}");
    assert_eq!(net(helper.dir(), &s.mom.key, "BTC"), "0.00003000");
}
