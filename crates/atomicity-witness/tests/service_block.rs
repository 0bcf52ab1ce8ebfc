//! `GET /block` and the censoring witness on an in-process witness: the block a payee reads is
//! the one its secret lands in and matches the log's `BLOCK` marker; a censoring witness checks
//! input as usual, stores nothing and answers 503 `censored`.
#![cfg(feature = "service")]

use std::time::Duration;

use atomicity_witness::bundle::{ProofBundle, verify_publication};
use atomicity_witness::leaf::Leaf;
use atomicity_witness::note::Verifier;
use atomicity_witness::service::{self, BlockResponse, RunningWitness, WitnessConfig, unix_now};
use serde_json::{Value, json};

async fn start(dir: &std::path::Path, block_seconds: u64, censor: bool) -> RunningWitness {
    service::start(WitnessConfig {
        dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        block_seconds,
        origin: None,
        cosigners: Vec::new(),
        censor,
    })
    .await
    .expect("witness starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn p(i: u8) -> [u8; 32] {
    [i; 32]
}

async fn block(c: &reqwest::Client, url: &str) -> BlockResponse {
    let response = c.get(format!("{url}/block")).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json body");
    // Exactly these four fields.
    assert_eq!(
        body.as_object().map(|o| {
            let mut keys: Vec<_> = o.keys().cloned().collect();
            keys.sort();
            keys
        }),
        Some(vec![
            "block".to_string(),
            "block_seconds".into(),
            "size".into(),
            "time".into()
        ]),
        "{body}"
    );
    serde_json::from_value(body).expect("a BlockResponse")
}

async fn post(c: &reqwest::Client, url: &str, route: &str, body: &Value) -> (u16, Value) {
    let response = c
        .post(format!("{url}{route}"))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

/// Every leaf of the log (small logs only: one page).
async fn leaves(c: &reqwest::Client, url: &str) -> Vec<Leaf> {
    let body: Value = c
        .get(format!("{url}/entries?start=0&count=1000"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    body["leaves"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|h| {
            Leaf::from_bytes(&hex::decode(h.as_str().expect("hex")).expect("hex")).expect("leaf")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn block_is_the_block_a_secret_lands_in() {
    let temp = tempfile::tempdir().expect("temp dir");
    let before = unix_now();
    // Long blocks: no marker appears in the middle of the test.
    let witness = start(temp.path(), 3600, false).await;
    let (c, url) = (client(), witness.url.clone());

    let b = block(&c, &url).await;
    assert_eq!((b.block, b.block_seconds, b.size), (0, 3600, 1));
    assert!(before <= b.time && b.time <= unix_now(), "{b:?}");
    assert_eq!(
        leaves(&c, &url).await,
        vec![Leaf::Block {
            block: 0,
            time: b.time
        }]
    );

    // A payee picks S = the current block and X = S + 1: the secret lands inside the window
    // and the bundle proves it, with the block's start time as T.
    let (status, body) = post(&c, &url, "/submit", &json!({ "p": hex::encode(p(1)) })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["block"], json!(b.block));
    let after = block(&c, &url).await;
    assert_eq!(after, BlockResponse { size: 2, ..b });
    let bytes = c
        .get(format!("{url}/bundle/{}", hex::encode(p(1))))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("bytes");
    let bundle = ProofBundle::from_bytes(&bytes).expect("bundle decodes");
    let verifier = Verifier::from_vkey(&witness.vkey).expect("vkey");
    let published = verify_publication(
        &bundle,
        &p(1),
        &verifier,
        None,
        b.block,
        b.block + 1,
        b.time,
    )
    .expect("published in the window");
    assert_eq!((published.block, published.block_time), (b.block, b.time));

    // Only GET.
    let response = c.post(format!("{url}/block")).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 405);
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_starts_a_due_block_and_matches_its_marker() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start(temp.path(), 1, false).await;
    let (c, url) = (client(), witness.url.clone());

    let first = block(&c, &url).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let asked = unix_now();
    let later = block(&c, &url).await;
    // The block answered is never overdue: it started less than block_seconds before the ask.
    assert!(later.block > first.block, "{first:?} then {later:?}");
    assert!(
        later.time >= first.time + first.block_seconds,
        "{first:?} then {later:?}"
    );
    assert!(
        later.time + later.block_seconds > asked,
        "{later:?} at {asked}"
    );
    assert_eq!(later.block_seconds, 1);

    // The answer is the log's own marker BLOCK(block, time), and size counted it.
    let log = leaves(&c, &url).await;
    assert!(log.len() as u64 >= later.size);
    let markers: Vec<_> = log
        .iter()
        .filter_map(|l| match *l {
            Leaf::Block { block, time } => Some((block, time)),
            Leaf::Commit { .. } => None,
        })
        .collect();
    assert!(
        markers.contains(&(later.block, later.time)),
        "{later:?} not in {markers:?}"
    );
    let index = log
        .iter()
        .position(|l| l.block() == later.block)
        .expect("the marker");
    assert!((index as u64) < later.size);
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_censoring_witness_checks_input_and_stores_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start(temp.path(), 3600, true).await;
    let (c, url) = (client(), witness.url.clone());
    let good = hex::encode(p(7));

    // Well-formed submissions: 503 censored, single or batch.
    for (route, body) in [
        ("/submit", json!({ "p": good })),
        ("/submit-batch", json!({ "ps": [good, hex::encode(p(8))] })),
    ] {
        let (status, answer) = post(&c, &url, route, &body).await;
        assert_eq!(status, 503, "{route}: {answer}");
        assert_eq!(answer["code"], "censored", "{route}: {answer}");
        assert_eq!(
            answer["error"], "this witness refuses submissions",
            "{route}: {answer}"
        );
    }

    // Bad input is refused as on any witness, before the censorship.
    for (route, body, code) in [
        ("/submit", json!({ "p": "zz" }), "bad_p"),
        ("/submit", json!({ "ps": [good] }), "bad_json"),
        ("/submit-batch", json!({ "ps": [] }), "empty_batch"),
        ("/submit-batch", json!({ "ps": [good, "00"] }), "bad_p"),
    ] {
        let (status, answer) = post(&c, &url, route, &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }

    // Nothing was stored; reads still work.
    let b = block(&c, &url).await;
    assert_eq!((b.block, b.size), (0, 1));
    assert_eq!(leaves(&c, &url).await.len(), 1);
    let response = c
        .get(format!("{url}/bundle/{good}"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "unknown_p");
    let vkey = c
        .get(format!("{url}/vkey"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(vkey.trim(), witness.vkey);
    witness.shutdown().await;

    // The same log without censorship takes the secret.
    let witness = start(temp.path(), 3600, false).await;
    let (status, body) = post(&c, &witness.url, "/submit", &json!({ "p": good })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "index": 1, "block": 0, "new": true }));
    witness.shutdown().await;
}
