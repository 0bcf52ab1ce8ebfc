//! Delegated payment accounts end to end: real `atomicity node run` processes on 127.0.0.1. A
//! master M with USD lines to P1 and P2 issues delegations; an app holding only a token file
//! pays through M within the scope and nothing more, every balance exact after every step, and
//! nothing changes on any refusal. Revocation takes effect at once; spends and revocations
//! survive a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomicity_cli::harness::{NodeProcess, cli, cli_ok, wait_until};
use atomicity_core::{Amount, Asset, DelegatedPayment, Delegation, Keypair, Signed, parse_key};
use atomicity_node::api::{DelegatedPayBody, DelegatedPayResponse, DelegationToken};
use atomicity_node::client::{ApiClient, ClientError};
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

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).expect("json")
}

fn net(dir: &Path, peer: &str) -> String {
    json(dir, &["balance", "--json"])
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["asset"] == "USD" && r["peer"] == peer)
        .and_then(|r| r["net"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Both peers with a USD line: `x` may owe `y` up to `x_issue`.
fn link(x: &NodeProcess, y: &NodeProcess, x_issue: &str) {
    for (me, peer, issue, accept) in [(x, y, x_issue, "0"), (y, x, "0", x_issue)] {
        ok(
            me.dir(),
            &["peer", "add", &peer.key, "--url", &peer.node_url],
        );
        ok(
            me.dir(),
            &[
                "line", "set", &peer.key, "--asset", "USD", "--issue", issue, "--accept", accept,
            ],
        );
    }
}

/// The three nodes' data directories and keys (which outlive a restart).
struct Net {
    m: (PathBuf, String),
    p1: (PathBuf, String),
    p2: (PathBuf, String),
}

impl Net {
    /// Waits until M owes P1 exactly `to_p1` and P2 exactly `to_p2`, on both sides.
    fn owes(&self, to_p1: &str, to_p2: &str) {
        let neg = |x: &str| {
            if x == "0.00" {
                x.to_string()
            } else {
                format!("-{x}")
            }
        };
        let want = vec![neg(to_p1), to_p1.to_string(), neg(to_p2), to_p2.to_string()];
        wait_until(Duration::from_secs(15), "balances", || {
            let got = vec![
                net(&self.m.0, &self.p1.1),
                net(&self.p1.0, &self.m.1),
                net(&self.m.0, &self.p2.1),
                net(&self.p2.0, &self.m.1),
            ];
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:?}, want {want:?}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `delegate new ARGS --out ROOT/NAME.json --json` on M: (id, token path).
fn delegate(m: &NodeProcess, root: &Path, name: &str, args: &[&str]) -> (String, PathBuf) {
    let token = root.join(format!("{name}.json"));
    let token_arg = token.to_str().expect("utf-8 path");
    let mut all = vec!["delegate", "new"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--label", name, "--out", token_arg, "--json"]);
    let row = json(m.dir(), &all);
    (row["id"].as_str().expect("id").to_string(), token)
}

/// The app pays with a token, from an empty directory (it has no node): (exit code, output).
fn app_pay(root: &Path, token: &Path, payee: &str, amount: &str, asset: &str) -> (i32, String) {
    let app_dir = root.join("app");
    let token = token.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = cli(
        &bin(),
        &app_dir,
        &["delegate", "pay", "--token", token, payee, amount, asset],
    )
    .expect("run atomicity");
    (code, format!("{stdout}{stderr}"))
}

fn paid(root: &Path, token: &Path, payee: &str, amount: &str) {
    let (code, out) = app_pay(root, token, payee, amount, "USD");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("paid {amount} USD")), "{out}");
}

fn refused(root: &Path, token: &Path, payee: &str, amount: &str, asset: &str, code: &str) {
    let (exit, out) = app_pay(root, token, payee, amount, asset);
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains(&format!("refused ({code})")), "{out}");
}

fn read_token(path: &Path) -> (DelegationToken, Signed<Delegation>, Keypair) {
    let token: DelegationToken =
        serde_json::from_str(&std::fs::read_to_string(path).expect("token")).expect("json");
    let d = Signed::<Delegation>::decode(&hex::decode(&token.delegation).expect("hex"))
        .expect("delegation");
    let secret: [u8; 32] = hex::decode(&token.sub_secret)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    (token, d, Keypair::from_secret_key(&secret))
}

fn order(d: &Signed<Delegation>, sub: &Keypair, payee: &str, cents: u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    Signed::sign(
        DelegatedPayment {
            delegation_id: d.body().id,
            order_id: rand::random(),
            sub: sub.public_key(),
            payee: parse_key(payee).expect("key"),
            asset: Asset::new("USD", 2).expect("USD"),
            amount: Amount::from_minor(cents),
            memo: "raw".into(),
            created_at: now,
        },
        sub,
    )
    .to_bytes()
}

/// Posts a raw delegation and order to the master's peer API, as an app would.
fn post(
    url: &str,
    delegation: &[u8],
    order: &[u8],
) -> Result<DelegatedPayResponse, (String, String)> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let body = DelegatedPayBody {
        delegation: hex::encode(delegation),
        order: hex::encode(order),
    };
    runtime
        .block_on(ApiClient::new(url, "").delegated_pay(&body))
        .map_err(|e| match e {
            ClientError::Api { code, error, .. } => (code, error),
            other => panic!("{other}"),
        })
}

fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["id"] == id)
        .expect("row")
}

#[test]
fn an_app_pays_within_its_scope_and_nothing_more() {
    let root = root();
    let root = root.path();
    std::fs::create_dir_all(root.join("app")).expect("app dir");
    let start = |name: &str| {
        NodeProcess::start(&bin(), &root.join(name), "127.0.0.1:0").expect("node starts")
    };
    let mut m = start("m");
    let p1 = start("p1");
    let p2 = start("p2");
    link(&m, &p1, "100");
    link(&m, &p2, "100");
    let id = |n: &NodeProcess| (n.dir().to_path_buf(), n.key.clone());
    let net = Net {
        m: id(&m),
        p1: id(&p1),
        p2: id(&p2),
    };
    net.owes("0.00", "0.00");

    // A: 20.00 USD a day, to P1 only.
    let (a, a_token) = delegate(
        &m,
        root,
        "coffee",
        &[
            "--asset",
            "USD",
            "--cap",
            "20",
            "--period",
            "1d",
            "--payee",
            &p1.key,
            "--expires",
            "30d",
        ],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&a_token)
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    paid(root, &a_token, &p1.key, "5.00");
    net.owes("5.00", "0.00");
    refused(root, &a_token, &p1.key, "16.00", "USD", "over_cap");
    net.owes("5.00", "0.00");
    paid(root, &a_token, &p1.key, "15.00");
    net.owes("20.00", "0.00");
    refused(root, &a_token, &p1.key, "0.01", "USD", "over_cap");
    refused(root, &a_token, &p2.key, "1.00", "USD", "payee_not_allowed");
    refused(root, &a_token, &p1.key, "1.00", "EUR", "asset_not_in_scope");
    net.owes("20.00", "0.00");
    let rows = json(m.dir(), &["delegate", "list", "--json"]);
    assert_eq!(row(&rows, &a)["caps"][0]["spent"], "20.00");
    assert_eq!(row(&rows, &a)["caps"][0]["cap"], "20.00");

    // Raw orders, as a hostile app could send them.
    let (r, r_token) = delegate(
        &m,
        root,
        "raw",
        &[
            "--asset",
            "USD",
            "--cap",
            "5",
            "--payee",
            &p1.key,
            "--expires",
            "1d",
        ],
    );
    let (token, d, sub) = read_token(&r_token);
    // The same terms signed by another key.
    let forged = Signed::sign(d.body().clone(), &Keypair::from_secret_key(&[7; 32]));
    let refusal = post(
        &token.node_url,
        &forged.to_bytes(),
        &order(&d, &sub, &p1.key, 100),
    )
    .expect_err("forged");
    assert_eq!(refusal.0, "forged_delegation", "{refusal:?}");
    // A flipped byte in the order's amount.
    let mut tampered = order(&d, &sub, &p1.key, 100);
    let at = tampered.len() - 64 - 8 - 4 - 3 - 1;
    tampered[at] ^= 0x01;
    let refusal = post(&token.node_url, &d.to_bytes(), &tampered).expect_err("tampered");
    assert_eq!(refusal.0, "bad_order_signature", "{refusal:?}");
    net.owes("20.00", "0.00");
    // The same order twice: paid once.
    let once = order(&d, &sub, &p1.key, 100);
    let answer = post(&token.node_url, &d.to_bytes(), &once).expect("paid");
    assert_eq!(answer.status, "completed", "{answer:?}");
    assert_eq!(answer.spent, "1.00");
    assert_eq!(answer.cap, "5.00");
    let refusal = post(&token.node_url, &d.to_bytes(), &once).expect_err("replayed");
    assert_eq!(refusal.0, "replayed_order", "{refusal:?}");
    net.owes("21.00", "0.00");

    // B expires after 5 seconds (room for a loaded machine): it works at once, not after.
    let (_b, b_token) = delegate(
        &m,
        root,
        "brief",
        &["--asset", "USD", "--cap", "20", "--expires", "5"],
    );
    paid(root, &b_token, &p1.key, "1.00");
    net.owes("22.00", "0.00");
    std::thread::sleep(Duration::from_secs(6));
    refused(root, &b_token, &p1.key, "1.00", "USD", "expired");
    net.owes("22.00", "0.00");

    // C works until revoked, then not at all.
    let (c, c_token) = delegate(
        &m,
        root,
        "revoked",
        &["--asset", "USD", "--cap", "20", "--expires", "1d"],
    );
    paid(root, &c_token, &p2.key, "1.00");
    net.owes("22.00", "1.00");
    assert!(ok(m.dir(), &["delegate", "revoke", &c]).contains(&c));
    refused(root, &c_token, &p2.key, "1.00", "USD", "revoked");
    net.owes("22.00", "1.00");

    // After a restart: spends, revocations and seen orders are still there.
    m.restart().expect("restart");
    let rows = json(m.dir(), &["delegate", "list", "--json"]);
    assert_eq!(row(&rows, &a)["caps"][0]["spent"], "20.00");
    assert_eq!(row(&rows, &r)["caps"][0]["spent"], "1.00");
    assert_eq!(row(&rows, &c)["revoked"], true);
    assert_eq!(row(&rows, &a)["revoked"], false);
    let table = ok(m.dir(), &["delegate", "list"]);
    assert!(table.contains(&a) && table.contains("revoked"), "{table}");
    refused(root, &a_token, &p1.key, "0.01", "USD", "over_cap");
    refused(root, &c_token, &p2.key, "1.00", "USD", "revoked");
    let refusal = post(&token.node_url, &d.to_bytes(), &once).expect_err("replayed");
    assert_eq!(refusal.0, "replayed_order", "{refusal:?}");
    // And the rest of a cap still pays.
    let answer = post(
        &token.node_url,
        &d.to_bytes(),
        &order(&d, &sub, &p1.key, 400),
    )
    .expect("paid");
    assert_eq!(answer.status, "completed", "{answer:?}");
    assert_eq!(answer.spent, "5.00");
    net.owes("26.00", "1.00");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let root = root();
    let dir = root.path();
    let run = |args: &[&str]| {
        let (code, stdout, stderr) = cli(&bin(), dir, args).expect("run atomicity");
        assert_ne!(code, 0, "atomicity {args:?} should fail: {stdout}");
        stderr
    };
    let missing = dir.join("missing.json");
    let missing = missing.to_str().expect("utf-8");
    let err = run(&["delegate", "pay", "--token", missing, "x", "1", "USD"]);
    assert!(err.contains("cannot read the token file"), "{err}");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{}").expect("write");
    let junk = junk.to_str().expect("utf-8");
    let err = run(&["delegate", "pay", "--token", junk, "x", "1", "USD"]);
    assert!(err.contains("not a delegation token file"), "{err}");
    let out = dir.join("t.json");
    let out = out.to_str().expect("utf-8");
    let err = run(&[
        "delegate",
        "new",
        "--asset",
        "USD",
        "--cap",
        "20",
        "--expires",
        "1y",
        "--out",
        out,
    ]);
    assert!(err.contains("not a duration"), "{err}");
    let err = run(&[
        "delegate",
        "new",
        "--asset",
        "USD",
        "--cap",
        "20",
        "--payee",
        "nokey",
        "--expires",
        "1d",
        "--out",
        out,
    ]);
    assert!(err.contains("not a public key"), "{err}");
    let err = run(&[
        "delegate",
        "new",
        "--asset",
        "USD",
        "--asset",
        "EUR",
        "--cap",
        "20",
        "--expires",
        "1d",
        "--out",
        out,
    ]);
    assert!(err.contains("--cap after each --asset"), "{err}");
    // A real token from a node that is not running: a bad amount is refused before sending.
    let m = NodeProcess::start(&bin(), &dir.join("m"), "127.0.0.1:0").expect("node");
    let p = Keypair::from_secret_key(&[9; 32]).public_key().to_z32();
    let (_, token) = delegate(
        &m,
        dir,
        "t",
        &["--asset", "USD", "--cap", "1", "--expires", "1d"],
    );
    let token = token.to_str().expect("utf-8");
    for (amount, asset, why) in [
        ("abc", "USD", "not a decimal"),
        ("1.001", "USD", "decimal places"),
        ("0", "USD", "greater than zero"),
        ("1", "USD:99", "scale"),
    ] {
        let err = run(&["delegate", "pay", "--token", token, &p, amount, asset]);
        assert!(err.contains(why), "{amount} {asset}: {err}");
    }
    let err = run(&["delegate", "pay", "--token", token, "nokey", "1", "USD"]);
    assert!(err.contains("not a public key"), "{err}");
    let (code, _, err) = cli(&bin(), m.dir(), &["delegate", "revoke", "00"]).expect("run");
    assert_ne!(code, 0);
    assert!(err.contains("no delegation"), "{err}");
    let err = run(&[
        "delegate",
        "new",
        "--asset",
        "USD",
        "--cap",
        "1",
        "--expires",
        "1d",
        "--out",
        token,
    ]);
    assert!(err.contains("exists"), "{err}");
}
