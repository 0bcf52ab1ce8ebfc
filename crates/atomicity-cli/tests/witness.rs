//! The witness service as a real `atomicity witness run` process on loopback: submissions,
//! signed checkpoints and proof bundles that verify offline, kill -9 in the middle of a stream
//! of submissions, and bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atomicity_cli::harness::ServiceProcess;
use atomicity_witness::bundle::{ProofBundle, verify_publication};
use atomicity_witness::merkle::verify_consistency;
use atomicity_witness::note::{self, Checkpoint, Verifier};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

/// Starts `atomicity witness run` on a free port with blocks of `block_seconds`.
fn start_witness(dir: &Path, block_seconds: u64) -> ServiceProcess {
    let args = ["--listen", "127.0.0.1:0", "--block-seconds"]
        .map(String::from)
        .into_iter()
        .chain([block_seconds.to_string()])
        .collect::<Vec<_>>();
    ServiceProcess::start(&bin(), dir, "witness", &args).expect("witness starts")
}

/// The log's key, from `witness.vkey`.
fn verifier(w: &ServiceProcess) -> Verifier {
    Verifier::from_vkey(&w.read("witness.vkey").expect("witness.vkey")).expect("vkey parses")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn submit(c: &reqwest::Client, url: &str, p: &[u8; 32]) -> reqwest::Result<Value> {
    c.post(format!("{url}/submit"))
        .json(&serde_json::json!({ "p": hex::encode(p) }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// GET /checkpoint, verified with the log's key: (checkpoint, note text).
async fn checkpoint(c: &reqwest::Client, url: &str, verifier: &Verifier) -> (Checkpoint, String) {
    let text = c
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .expect("GET /checkpoint")
        .error_for_status()
        .expect("200")
        .text()
        .await
        .expect("body");
    let (note, _) = note::open(text.as_bytes(), std::slice::from_ref(verifier))
        .expect("the checkpoint verifies with witness.vkey");
    (Checkpoint::from_text(&note.text).expect("checkpoint"), text)
}

async fn consistency(c: &reqwest::Client, url: &str, old: u64, new: u64) -> Vec<[u8; 32]> {
    let list: Vec<String> = c
        .get(format!("{url}/proof/consistency?old={old}&new={new}"))
        .send()
        .await
        .expect("GET consistency")
        .error_for_status()
        .expect("200")
        .json()
        .await
        .expect("json");
    list.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).expect("hex hash");
            out
        })
        .collect()
}

fn random_p() -> [u8; 32] {
    rand::random()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn witness_submits_checkpoints_and_bundles_verify() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut w = start_witness(&root.path().join("w"), 1);
    let c = client();
    let verifier = verifier(&w);
    let vkey = std::fs::read_to_string(w.dir().join("witness.vkey")).expect("vkey");
    assert!(vkey.starts_with("atomicity-witness/"), "{vkey}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.dir().join("witness.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (first, _) = checkpoint(&c, &w.url, &verifier).await;
    assert!(first.size >= 1, "the log starts with BLOCK(0, t)");

    let ps: Vec<[u8; 32]> = (0..5).map(|_| random_p()).collect();
    let mut indices = Vec::new();
    for p in &ps {
        let r = submit(&c, &w.url, p).await.expect("submit");
        assert_eq!(r["new"], true);
        indices.push(r["index"].as_u64().expect("index"));
    }
    // Resubmitting returns the original entry.
    let again = submit(&c, &w.url, &ps[2]).await.expect("resubmit");
    assert_eq!(again["index"].as_u64(), Some(indices[2]));
    assert_eq!(again["new"], false);

    // The entry is the commit.
    let entry: Value = c
        .get(format!("{}/entry/{}", w.url, indices[0]))
        .send()
        .await
        .expect("entry")
        .json()
        .await
        .expect("json");
    assert_eq!(entry["kind"], "commit");
    assert_eq!(entry["p"], hex::encode(ps[0]));

    let (cp, _) = checkpoint(&c, &w.url, &verifier).await;
    assert!(cp.size > *indices.iter().max().expect("some"));
    let proof = consistency(&c, &w.url, first.size, cp.size).await;
    verify_consistency(first.size, cp.size, &first.root, &cp.root, &proof)
        .expect("consistent with the first checkpoint");

    // Bundles verify offline against the log key.
    for (p, &index) in ps.iter().zip(&indices) {
        let bytes = c
            .get(format!("{}/bundle/{}", w.url, hex::encode(p)))
            .send()
            .await
            .expect("bundle")
            .error_for_status()
            .expect("200")
            .bytes()
            .await
            .expect("body");
        let bundle = ProofBundle::from_bytes(&bytes).expect("bundle decodes");
        let published = verify_publication(&bundle, p, &verifier, None, 0, u64::MAX, u64::MAX)
            .expect("bundle verifies");
        assert_eq!(published.index, index);
        assert_eq!(published.origin, cp.origin);
    }
    let unknown = c
        .get(format!("{}/bundle/{}", w.url, hex::encode(random_p())))
        .send()
        .await
        .expect("bundle");
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.expect("json")["code"],
        "unknown_p"
    );

    // Blocks advance without traffic.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (later, _) = checkpoint(&c, &w.url, &verifier).await;
    assert!(later.size > cp.size, "a BLOCK marker was added while idle");

    // A graceful stop exits 0 and removes witness.url; a restart is the same log.
    let status = w.stop().expect("stopped gracefully");
    assert!(status.success(), "{status}\n{}", w.log());
    assert!(!w.dir().join("witness.url").exists());
    w.restart().expect("witness restarts");
    assert_eq!(
        std::fs::read_to_string(w.dir().join("witness.vkey")).expect("vkey"),
        vkey
    );
    let again = submit(&c, &w.url, &ps[4]).await.expect("resubmit");
    assert_eq!(again["index"].as_u64(), Some(indices[4]));
    assert_eq!(again["new"], false);
    let (restarted, _) = checkpoint(&c, &w.url, &verifier).await;
    let proof = consistency(&c, &w.url, later.size, restarted.size).await;
    verify_consistency(
        later.size,
        restarted.size,
        &later.root,
        &restarted.root,
        &proof,
    )
    .expect("consistent across a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn witness_kill9_mid_stream_keeps_every_acknowledged_submission() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut w = start_witness(&root.path().join("w"), 1);
    let verifier = verifier(&w);
    let url = w.url.clone();
    let acked: Arc<Mutex<BTreeMap<[u8; 32], u64>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Checkpoint>>> = Arc::default();

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, acked) = (url.clone(), Arc::clone(&acked));
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let p = random_p();
                match submit(&c, &url, &p).await {
                    Ok(r) => {
                        let index = r["index"].as_u64().expect("index");
                        assert_eq!(r["new"], true);
                        acked.lock().expect("lock").insert(p, index);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    {
        let (url, seen, verifier) = (url.clone(), Arc::clone(&seen), verifier.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let Ok(response) = c.get(format!("{url}/checkpoint")).send().await else {
                    return;
                };
                let Ok(text) = response.text().await else {
                    return;
                };
                let (note, _) = note::open(text.as_bytes(), std::slice::from_ref(&verifier))
                    .expect("checkpoint verifies");
                seen.lock()
                    .expect("lock")
                    .push(Checkpoint::from_text(&note.text).expect("checkpoint"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Let the stream run (across at least one block), then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("lock").len() < 300 || seen.lock().expect("lock").len() < 20 {
        assert!(Instant::now() < deadline, "too slow:\n{}", w.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    w.kill9();
    for task in tasks {
        task.await.expect("task");
    }
    let acked = acked.lock().expect("lock").clone();
    let seen = seen.lock().expect("lock").clone();
    assert!(acked.len() >= 300);

    w.restart().expect("witness restarts");
    let c = client();
    // Every acknowledged p kept its index.
    for (p, index) in &acked {
        let r = submit(&c, &w.url, p).await.expect("resubmit");
        assert_eq!(r["index"].as_u64(), Some(*index), "{}", hex::encode(p));
        assert_eq!(r["new"], false);
    }
    // The new checkpoint extends every checkpoint served before the kill.
    let (now, _) = checkpoint(&c, &w.url, &verifier).await;
    let mut by_size: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for cp in &seen {
        if let Some(root) = by_size.insert(cp.size, cp.root) {
            assert_eq!(root, cp.root, "two roots for size {}", cp.size);
        }
    }
    for (&size, root) in &by_size {
        assert!(size <= now.size);
        let proof = consistency(&c, &w.url, size, now.size).await;
        verify_consistency(size, now.size, root, &now.root, &proof)
            .unwrap_or_else(|e| panic!("checkpoint of size {size} not extended: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn witness_refuses_bad_input_with_json_errors_and_changes_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    // Long blocks: nothing may change the log during this test but a submission.
    let w = start_witness(&root.path().join("w"), 3600);
    let c = client();
    let verifier = verifier(&w);
    let (before, before_text) = checkpoint(&c, &w.url, &verifier).await;

    let expect_error = |status: u16, code: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status().as_u16(), status);
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert!(
                content_type.starts_with("application/json"),
                "{content_type}"
            );
            let body: Value = response.json().await.expect("json error");
            assert_eq!(body["code"], code, "{body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
    };
    let post = |body: Vec<u8>| {
        c.post(format!("{}/submit", w.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    for body in [
        &b"{\"p\": "[..],
        b"not json",
        b"",
        b"{\"p\": 5}",
        b"{\"q\": \"00\"}",
        b"[]",
    ] {
        expect_error(400, "bad_json")(post(body.to_vec()).await.expect("post")).await;
    }
    let bad_hex = [
        "zz".repeat(32),
        "ab".repeat(31),
        "ab".repeat(33),
        format!("{}g", "a".repeat(63)),
    ];
    for p in &bad_hex {
        let body = serde_json::to_vec(&serde_json::json!({ "p": p })).expect("json");
        expect_error(400, "bad_p")(post(body).await.expect("post")).await;
    }
    let huge = serde_json::to_vec(&serde_json::json!({ "p": "ab".repeat(40_000) })).expect("json");
    expect_error(413, "too_large")(post(huge).await.expect("post")).await;

    let get = |path: String| c.get(format!("{}{path}", w.url)).send();
    expect_error(400, "bad_p")(get("/bundle/xyz".into()).await.expect("get")).await;
    expect_error(400, "bad_index")(get("/entry/abc".into()).await.expect("get")).await;
    expect_error(404, "no_entry")(get("/entry/99999".into()).await.expect("get")).await;
    expect_error(400, "bad_size")(get("/proof/consistency?old=1".into()).await.expect("get")).await;
    expect_error(400, "bad_request")(
        get("/proof/consistency?old=0&new=1".into())
            .await
            .expect("get"),
    )
    .await;
    expect_error(400, "bad_request")(
        get("/proof/consistency?old=1&new=999".into())
            .await
            .expect("get"),
    )
    .await;
    expect_error(404, "not_found")(get("/nope".into()).await.expect("get")).await;
    expect_error(405, "method_not_allowed")(
        c.get(format!("{}/submit", w.url))
            .send()
            .await
            .expect("get"),
    )
    .await;

    let (after, after_text) = checkpoint(&c, &w.url, &verifier).await;
    assert_eq!(after, before, "bad input changed the log");
    assert_eq!(after_text, before_text);
}
