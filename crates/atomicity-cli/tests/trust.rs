//! The web of trust end to end: real `atomicity node run` processes on 127.0.0.1 that find each
//! other on a local Mainline DHT. "I assign a second-degree credit acceptance limit to Mom's
//! friends of $20": a friend of Mom gets exactly that limit, a friend of a friend of Mom gets
//! nothing (until the rule says depth 3), a key I block gets nothing, Mom untagging her friend
//! takes the limit back, and a limit I set by hand always wins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomicity_cli::harness::{NodeProcess, cli_ok, serve_fixed, wait_until};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    cli_ok(&bin(), dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// My USD accept limit toward `peer` ("" when I have no line with it).
fn accept(dir: &Path, peer: &str) -> String {
    let rows: Value = serde_json::from_str(&ok(dir, &["balance", "--json"])).expect("json");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["peer"] == peer && r["asset"] == "USD")
        .map(|r| r["accept"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Waits until my accept limits toward each `(peer, limit)` hold ("" or "0.00": none).
fn wait_accepts(dir: &Path, want: &[(&str, &str)]) {
    wait_until(Duration::from_secs(20), "accept limits", || {
        let got: Vec<String> = want.iter().map(|(p, _)| accept(dir, p)).collect();
        let norm = |s: &str| {
            if s.is_empty() {
                "0.00".to_string()
            } else {
                s.to_string()
            }
        };
        if got.iter().zip(want).all(|(g, (_, w))| norm(g) == norm(w)) {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn second_degree_limits_follow_moms_tags() {
    let testnet = atomicity_discovery::mainline::Testnet::builder(8)
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .build()
        .expect("a local DHT");
    let root = tempfile::tempdir().expect("tempdir");
    let args = [
        "--dht-bootstrap".to_string(),
        testnet.bootstrap.join(","),
        "--trust-refresh".to_string(),
        "1".to_string(),
    ];
    let start = |name: &str| {
        NodeProcess::start_with(&bin(), &root.path().join(name), "127.0.0.1:0", &args)
            .expect("node starts")
    };
    let me = start("me");
    let mom = start("mom");
    let friend = start("friend");
    let fof = start("fof");
    let stranger = start("stranger");
    let (m, f, g, x) = (&mom.key, &friend.key, &fof.key, &stranger.key);

    ok(me.dir(), &["peer", "add", m]);
    ok(me.dir(), &["trust", "tag", m, "family"]);
    ok(mom.dir(), &["trust", "tag", f, "friend"]);
    ok(mom.dir(), &["trust", "tag", x, "friend"]);
    ok(friend.dir(), &["trust", "tag", g, "friend"]);
    // Mom's published tags, as a friend's node reads them.
    let listed: Value =
        serde_json::from_str(&ok(mom.dir(), &["trust", "list", "--json"])).expect("json");
    assert_eq!(listed["tags"][f.as_str()], serde_json::json!(["friend"]));

    ok(me.dir(), &["trust", "block", x]);
    ok(
        me.dir(),
        &[
            "trust", "degree", "set", "--asset", "USD", "--depth", "2", "--accept", "20", "--via",
            m,
        ],
    );
    // Mom's friend: exactly 20.00. Her friend's friend and the key I blocked: nothing.
    wait_accepts(me.dir(), &[(f, "20.00"), (g, ""), (x, "")]);
    let listed: Value =
        serde_json::from_str(&ok(me.dir(), &["trust", "list", "--json"])).expect("json");
    let auto = listed["auto"].as_array().expect("auto");
    assert_eq!(auto.len(), 1, "{listed}");
    assert_eq!(auto[0]["key"], f.as_str());

    // Depth 3 reaches the friend's friend; back to 2 takes it back.
    ok(
        me.dir(),
        &[
            "trust", "degree", "set", "--asset", "USD", "--depth", "3", "--accept", "20", "--via",
            m,
        ],
    );
    wait_accepts(me.dir(), &[(f, "20.00"), (g, "20.00"), (x, "")]);
    ok(
        me.dir(),
        &[
            "trust", "degree", "set", "--asset", "USD", "--depth", "2", "--accept", "20", "--via",
            m,
        ],
    );
    wait_accepts(me.dir(), &[(f, "20.00"), (g, "0.00")]);

    // Mom untags her friend: the limit goes.
    ok(mom.dir(), &["trust", "untag", f]);
    wait_accepts(me.dir(), &[(f, "0.00")]);

    // A limit I set by hand wins over the rule.
    ok(
        me.dir(),
        &["line", "set", f, "--asset", "USD", "--accept", "50"],
    );
    ok(mom.dir(), &["trust", "tag", f, "friend"]);
    std::thread::sleep(Duration::from_secs(3));
    wait_accepts(me.dir(), &[(f, "50.00")]);
}

/// "A blocked witness is never accepted in a condition": a hop that blocks the invoice's
/// witness log refuses to forward (the payer's IOU is released, nothing is owed); a payer that
/// blocks it refuses to pay at once; unblocked, the same payment goes through.
#[test]
fn a_blocked_witness_is_never_accepted_in_a_condition() {
    use atomicity_cli::harness::ServiceProcess;

    let root = tempfile::tempdir().expect("tempdir");
    let args = ["--listen", "127.0.0.1:0", "--block-seconds", "1"].map(String::from);
    let witness =
        ServiceProcess::start(&bin(), &root.path().join("w"), "witness", &args).expect("witness");
    let vkey = witness
        .read("witness.vkey")
        .expect("vkey")
        .trim()
        .to_string();
    let node_args = ["--witness".to_string(), witness.url.clone()];
    let start = |name: &str| {
        NodeProcess::start_with(&bin(), &root.path().join(name), "127.0.0.1:0", &node_args)
            .expect("node starts")
    };
    let (a, b, c) = (start("a"), start("b"), start("c"));
    for (x, y) in [(&a, &b), (&b, &c)] {
        for (me, peer) in [(x, y), (y, x)] {
            ok(
                me.dir(),
                &["peer", "add", &peer.key, "--url", &peer.node_url],
            );
            ok(
                me.dir(),
                &[
                    "line", "set", &peer.key, "--asset", "USD", "--accept", "100", "--issue", "100",
                ],
            );
        }
    }
    let invoice = || {
        let out = ok(c.dir(), &["invoice", "new", "10", "USD", "--json"]);
        let row: Value = serde_json::from_str(&out).expect("json");
        row["invoice"].as_str().expect("invoice").to_string()
    };

    // The hop blocks the log (by its origin): the payment fails, nothing is owed.
    let origin = vkey.split('+').next().expect("origin").to_string();
    ok(b.dir(), &["witness", "block", &origin]);
    let policy: Value =
        serde_json::from_str(&ok(b.dir(), &["witness", "policy", "--json"])).expect("json");
    assert_eq!(policy["block"], serde_json::json!([origin]));
    let first = invoice();
    let (code, out, err) = atomicity_cli::harness::cli(
        &bin(),
        a.dir(),
        &["invoice", "pay", &first, "--route", &b.key, "--json"],
    )
    .expect("run");
    let response: Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(
        code != 0 || response["status"] == "failed",
        "the payment through a hop that blocks the witness failed: {out}{err}"
    );
    assert!(
        format!("{out}{err}").contains("no witness in the condition is accepted"),
        "{out}{err}"
    );

    // The payer blocks it: refused before anything is signed.
    ok(a.dir(), &["witness", "block", &vkey]);
    let (code, out, err) = atomicity_cli::harness::cli(
        &bin(),
        a.dir(),
        &["invoice", "pay", &invoice(), "--route", &b.key],
    )
    .expect("run");
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("which you do not accept"), "{err}");

    // Both unblock: the same kind of payment goes through.
    ok(a.dir(), &["witness", "unblock", &vkey]);
    ok(b.dir(), &["witness", "unblock", &origin]);
    let out = ok(
        a.dir(),
        &["invoice", "pay", &invoice(), "--route", &b.key, "--json"],
    );
    let response: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(response["status"], "completed", "{response}");
}

/// "Mom's" tag list comes from a server that is not hers: signed by another key, or Mom's own
/// with a key added after she signed it. Neither is used (Mom's friend gets no limit) and
/// `trust list` says why; Mom's real list, signed by her, gives the limit.
#[test]
fn a_tag_list_not_signed_by_its_key_is_not_used() {
    use atomicity_core::Keypair;
    use atomicity_core::published::sign_document;
    use atomicity_core::trust::TRUST_PATH;

    let root = tempfile::tempdir().expect("tempdir");
    let args = ["--trust-refresh".to_string(), "1".to_string()];
    let me = NodeProcess::start_with(&bin(), &root.path().join("me"), "127.0.0.1:0", &args)
        .expect("node starts");
    let mom = Keypair::from_secret_key(&[8; 32]);
    let forger = Keypair::from_secret_key(&[9; 32]);
    let fran = Keypair::from_secret_key(&[10; 32]).public_key().to_z32();
    let gus = Keypair::from_secret_key(&[11; 32]).public_key().to_z32();
    let m = mom.public_key().to_z32();
    let tags = |keys: &[&str]| {
        let tagged: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}\":[\"friend\"]"))
            .collect();
        format!("{{\"tags\":{{{}}},\"blocked\":[]}}", tagged.join(","))
    };
    let signed = |key: &Keypair, value: &str| {
        String::from_utf8(sign_document(key, TRUST_PATH, 1, value.as_bytes()).expect("sign"))
            .expect("utf8")
    };
    let by_mom = signed(&mom, &tags(&[&fran]));
    let forged = signed(&forger, &tags(&[&fran]));
    // Mom's document with Gus slipped in after she signed it.
    let tampered = by_mom.replace(
        &format!("\"{fran}\":[\"friend\"]"),
        &format!("\"{fran}\":[\"friend\"],\"{gus}\":[\"friend\"]"),
    );
    assert_ne!(tampered, by_mom);

    ok(
        me.dir(),
        &[
            "peer",
            "add",
            &m,
            "--url",
            &serve_fixed(forged).expect("serve"),
        ],
    );
    ok(me.dir(), &["trust", "tag", &m, "family"]);
    ok(
        me.dir(),
        &[
            "trust", "degree", "set", "--asset", "USD", "--depth", "2", "--accept", "20", "--via",
            &m,
        ],
    );
    let unread = |want: &str| {
        wait_until(Duration::from_secs(20), want, || {
            let listed: Value = serde_json::from_str(&ok(me.dir(), &["trust", "list", "--json"]))
                .map_err(|e| e.to_string())?;
            let why = listed["unread"][0]["why"].as_str().unwrap_or_default();
            if listed["unread"][0]["key"] == m.as_str() && why.contains(want) {
                Ok(())
            } else {
                Err(format!("{listed}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    };
    unread(&format!("is from {}", forger.public_key().to_z32()));
    let shown = ok(me.dir(), &["trust", "list"]);
    assert!(shown.contains("trust document not used"), "{shown}");
    assert_eq!(accept(me.dir(), &fran), "");

    ok(
        me.dir(),
        &[
            "peer",
            "add",
            &m,
            "--url",
            &serve_fixed(tampered).expect("serve"),
        ],
    );
    unread("signature");
    assert_eq!(accept(me.dir(), &fran), "");
    assert_eq!(accept(me.dir(), &gus), "");

    ok(
        me.dir(),
        &[
            "peer",
            "add",
            &m,
            "--url",
            &serve_fixed(by_mom).expect("serve"),
        ],
    );
    wait_accepts(me.dir(), &[(&fran, "20.00"), (&gus, "")]);
    let listed: Value =
        serde_json::from_str(&ok(me.dir(), &["trust", "list", "--json"])).expect("json");
    assert_eq!(listed["unread"], serde_json::json!([]), "{listed}");
}
