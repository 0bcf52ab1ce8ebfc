//! `POST /submit-batch` and `GET /entries` on an in-process witness: order, idempotence, all or
//! nothing on bad input, and that the downloaded leaves recompute the signed root.
#![cfg(feature = "service")]

use std::time::Duration;

use atomicity_witness::leaf::Leaf;
use atomicity_witness::merkle::{leaf_hash, root};
use atomicity_witness::note::{self, Checkpoint, Verifier};
use atomicity_witness::service::{self, RunningWitness, WitnessConfig};
use serde_json::{Value, json};

async fn start(dir: &std::path::Path) -> RunningWitness {
    service::start(WitnessConfig {
        dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        // Long blocks: no marker appears in the middle of a test.
        block_seconds: 3600,
        origin: None,
        cosigners: Vec::new(),
        censor: false,
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

fn p(i: u8) -> String {
    hex::encode([i; 32])
}

async fn post(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = c
        .post(format!("{url}/submit-batch"))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

async fn get(c: &reqwest::Client, url: &str, query: &str) -> (u16, Value) {
    let response = c
        .get(format!("{url}/entries?{query}"))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

/// Every leaf, fetched page by page.
async fn all_leaves(c: &reqwest::Client, url: &str, page: u64) -> Vec<Vec<u8>> {
    let mut leaves = Vec::new();
    loop {
        let start = leaves.len();
        let (status, body) = get(c, url, &format!("start={start}&count={page}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["start"], json!(start));
        let got = body["leaves"].as_array().expect("leaves").clone();
        if got.is_empty() {
            return leaves;
        }
        for hex_leaf in got {
            leaves.push(hex::decode(hex_leaf.as_str().expect("hex")).expect("hex decodes"));
        }
    }
}

/// The log's latest checkpoint, signature checked.
async fn checkpoint(c: &reqwest::Client, url: &str, vkey: &str) -> Checkpoint {
    let text = c
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    let verifier = Verifier::from_vkey(vkey).expect("vkey");
    let (note, _) = note::open(text.as_bytes(), &[verifier]).expect("signed by the log");
    Checkpoint::from_text(&note.text).expect("checkpoint")
}

fn entry(body: &Value, i: usize) -> (u64, u64, bool) {
    let e = &body["entries"][i];
    (
        e["index"].as_u64().expect("index"),
        e["block"].as_u64().expect("block"),
        e["new"].as_bool().expect("new"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_ordered_idempotent_and_durable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start(temp.path()).await;
    let (c, url) = (client(), witness.url.clone());

    // Leaf 0 is BLOCK(0); the batch follows in request order, a repeat gets the first index.
    let (status, body) = post(&c, &url, &json!({ "ps": [p(1), p(2), p(3), p(2)] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(4));
    assert_eq!(entry(&body, 0), (1, 0, true));
    assert_eq!(entry(&body, 1), (2, 0, true));
    assert_eq!(entry(&body, 2), (3, 0, true));
    assert_eq!(entry(&body, 3), (2, 0, false));

    // Resubmitted: the original indexes with new = false; a fresh secret is appended.
    let (status, body) = post(&c, &url, &json!({ "ps": [p(3), p(4), p(1)] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entry(&body, 0), (3, 0, false));
    assert_eq!(entry(&body, 1), (4, 0, true));
    assert_eq!(entry(&body, 2), (1, 0, false));

    // Single submissions and batches share one log.
    let single: Value = c
        .post(format!("{url}/submit"))
        .json(&json!({ "p": p(2) }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(single, json!({ "index": 2, "block": 0, "new": false }));

    // The largest batch is accepted.
    let ps: Vec<String> = (0..512u32)
        .map(|i| hex::encode([&[0xA0u8; 28][..], &i.to_be_bytes()].concat()))
        .collect();
    let (status, body) = post(&c, &url, &json!({ "ps": ps })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entry(&body, 0), (5, 0, true));
    assert_eq!(entry(&body, 511), (516, 0, true));

    // Acknowledged means on disk: a restarted witness has the same leaves.
    let before = all_leaves(&c, &url, 1000).await;
    assert_eq!(before.len(), 517);
    witness.shutdown().await;
    let witness = start(temp.path()).await;
    let url = witness.url.clone();
    assert_eq!(all_leaves(&c, &url, 1000).await, before);
    let (status, body) = post(&c, &url, &json!({ "ps": [p(4)] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entry(&body, 0), (4, 0, false));
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_batches_are_refused_whole() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start(temp.path()).await;
    let (c, url) = (client(), witness.url.clone());

    let cases = [
        (json!({ "ps": [] }), "empty_batch", None),
        (
            json!({ "ps": vec![p(9); 513] }),
            "too_many",
            Some("at most 512"),
        ),
        (
            json!({ "ps": [p(1), p(2), "zz".repeat(32), p(3)] }),
            "bad_p",
            Some("ps[2]"),
        ),
        (json!({ "ps": [p(1), &p(2)[..62]] }), "bad_p", Some("ps[1]")),
        (json!({ "p": p(1) }), "bad_json", None),
        (json!({ "ps": [1, 2] }), "bad_json", None),
    ];
    for (request, code, words) in cases {
        let (status, body) = post(&c, &url, &request).await;
        assert_eq!(status, 400, "{request}: {body}");
        assert_eq!(body["code"], code, "{request}: {body}");
        if let Some(words) = words {
            let error = body["error"].as_str().expect("error");
            assert!(error.contains(words), "{error}");
        }
    }
    let response = c
        .post(format!("{url}/submit-batch"))
        .header("content-type", "application/json")
        .body(vec![b' '; service::MAX_BODY + 1])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 413);

    // Nothing was submitted: the log still holds only BLOCK(0).
    let (status, body) = get(&c, &url, "start=0&count=1000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["leaves"].as_array().map(Vec::len), Some(1));
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_page_through_the_log_and_recompute_the_root() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start(temp.path()).await;
    let (c, url) = (client(), witness.url.clone());
    let ps: Vec<String> = (1..=40u8).map(p).collect();
    let (status, body) = post(&c, &url, &json!({ "ps": ps })).await;
    assert_eq!(status, 200, "{body}");
    let size = 41u64;

    // Pages of 7: the last one is cut at the size, the one at the size is empty.
    let leaves = all_leaves(&c, &url, 7).await;
    assert_eq!(leaves.len() as u64, size);
    let (status, body) = get(&c, &url, "start=35&count=7").await;
    assert_eq!(status, 200);
    assert_eq!(body["leaves"].as_array().map(Vec::len), Some(6));
    let (status, body) = get(&c, &url, &format!("start={size}&count=1000")).await;
    assert_eq!(
        (status, body),
        (200, json!({ "start": size, "leaves": [] }))
    );

    // The hex is the canonical leaf encoding: it decodes, and hashing it gives the signed root.
    assert!(matches!(
        Leaf::from_bytes(&leaves[0]),
        Ok(Leaf::Block { block: 0, .. })
    ));
    assert_eq!(
        Leaf::from_bytes(&leaves[5]),
        Ok(Leaf::Commit {
            block: 0,
            p: [5; 32]
        })
    );
    let cp = checkpoint(&c, &url, &witness.vkey).await;
    assert_eq!(cp.size, size);
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(root(&hashes), cp.root);

    for (query, status, code) in [
        ("start=0&count=0", 400, "bad_count"),
        ("start=0&count=1001", 400, "bad_count"),
        ("start=0&count=x", 400, "bad_count"),
        ("start=0", 400, "bad_count"),
        ("count=5", 400, "bad_index"),
        ("start=-1&count=5", 400, "bad_index"),
        ("start=42&count=5", 404, "no_entry"),
        ("start=18446744073709551615&count=1000", 404, "no_entry"),
    ] {
        let (got, body) = get(&c, &url, query).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{query}"
        );
    }
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bundles_come_many_at_once_and_unknown_secrets_are_marked() {
    use atomicity_witness::bundle::{MAX_BUNDLES, ProofBundle, decode_bundles, verify_publication};
    let dir = tempfile::tempdir().expect("temp dir");
    let witness = start(dir.path()).await;
    let c = client();
    let (status, _) = post(&c, &witness.url, &json!({ "ps": [p(1), p(2)] })).await;
    assert_eq!(status, 200);
    let ask = |ps: Value| {
        let c = c.clone();
        let url = format!("{}/bundles", witness.url);
        async move {
            let response = c.post(url).json(&ps).send().await.expect("send");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("body").to_vec())
        }
    };
    let (status, body) = ask(json!({ "ps": [p(2), p(9), p(1)] })).await;
    assert_eq!(status, 200);
    let bundles = decode_bundles(&body, 3).expect("three answers");
    assert!(bundles[1].is_none(), "9 was never submitted");
    let log = Verifier::from_vkey(&witness.vkey).expect("vkey");
    for (i, secret) in [(0, [2u8; 32]), (2, [1u8; 32])] {
        let bytes = bundles[i].as_ref().expect("a bundle");
        let bundle = ProofBundle::from_bytes(bytes).expect("decodes");
        verify_publication(&bundle, &secret, &log, None, 0, u64::MAX, u64::MAX)
            .expect("proves its own secret");
    }
    // The same bundle as the single call gives.
    let single = c
        .get(format!("{}/bundle/{}", witness.url, p(1)))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("body");
    assert_eq!(bundles[2].as_deref(), Some(&single[..]));
    // Refused whole: empty, too many, one bad secret.
    let too_many: Vec<String> = (0..=MAX_BUNDLES).map(|i| p(i as u8)).collect();
    for (ps, code) in [
        (json!({ "ps": [] }), "empty_batch"),
        (json!({ "ps": too_many }), "too_many"),
        (json!({ "ps": [p(1), "zz"] }), "bad_p"),
        (json!({ "p": p(1) }), "bad_json"),
    ] {
        let (status, body) = ask(ps).await;
        assert_eq!(status, 400);
        let error: Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(error["code"], code, "{error}");
    }
    witness.shutdown().await;
}
