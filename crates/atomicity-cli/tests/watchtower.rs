//! The watchtower as a real `atomicity watchtower run` process on loopback, against a real
//! honest `atomicity witness run` process and against deliberately misbehaving logs (small HTTP
//! servers in this test that serve forked, rewritten and block-regressing trees). Every kind of
//! fork proof is built, verified by the watchtower and reported; the honest log never is, and
//! everything survives a kill -9 of the watchtower.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atomicity_cli::harness::ServiceProcess;
use atomicity_witness::fork::{ForkKind, ForkProof, sign_checkpoint};
use atomicity_witness::leaf::Leaf;
use atomicity_witness::merkle::{Tree, leaf_hash};
use atomicity_witness::note::{self, Checkpoint, CosignatureVerifier, Signer, Verifier};
use axum::extract::{Query, State};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn watchtower(dir: &Path, logs: &[String]) -> ServiceProcess {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--poll-seconds", "1"]
        .map(String::from)
        .to_vec();
    for log in logs {
        args.push("--log".into());
        args.push(log.clone());
    }
    ServiceProcess::start(&bin(), dir, "watchtower", &args).expect("watchtower starts")
}

/// A log under the test's control: its key, its leaves, and what its HTTP server serves.
#[derive(Clone)]
struct EvilLog {
    signer: Signer,
    served: Arc<Mutex<Served>>,
    url: String,
}

#[derive(Default)]
struct Served {
    note: String,
    leaves: Vec<Vec<u8>>,
}

fn commit(block: u64, seed: u8) -> Leaf {
    Leaf::Commit {
        block,
        p: [seed; 32],
    }
}

fn marker(block: u64) -> Leaf {
    Leaf::Block {
        block,
        time: 1_700_000_000 + block,
    }
}

/// An honest-looking history: blocks 0..blocks, each with `per_block` commits.
fn history(blocks: u64, per_block: u8, salt: u8) -> Vec<Leaf> {
    let mut leaves = Vec::new();
    for b in 0..blocks {
        leaves.push(marker(b));
        for k in 0..per_block {
            leaves.push(commit(b, salt.wrapping_add(b as u8 * per_block + k)));
        }
    }
    leaves
}

fn tree_of(leaves: &[Leaf]) -> Tree {
    leaves.iter().map(|l| leaf_hash(&l.to_bytes())).collect()
}

impl EvilLog {
    async fn start(name: &str) -> EvilLog {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let signer = Signer::new(&format!("evil.example/{name}"), key).expect("signer");
        let served = Arc::new(Mutex::new(Served::default()));
        let router = axum::Router::new()
            .route("/checkpoint", axum::routing::get(serve_checkpoint))
            .route("/entries", axum::routing::get(serve_entries))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        EvilLog {
            signer,
            served,
            url,
        }
    }

    fn vkey(&self) -> String {
        self.signer.vkey()
    }

    fn origin(&self) -> String {
        self.signer.name().to_string()
    }

    fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }

    /// Signs the checkpoint of `leaves` (all of them).
    fn sign(&self, leaves: &[Leaf]) -> String {
        let tree = tree_of(leaves);
        sign_checkpoint(&self.signer, &self.origin(), &tree, tree.len()).expect("sign")
    }

    /// From now on serves `leaves` and their signed checkpoint.
    fn serve(&self, leaves: &[Leaf]) -> String {
        let note = self.sign(leaves);
        let mut s = self.served.lock().expect("lock");
        s.note = note.clone();
        s.leaves = leaves.iter().map(Leaf::to_bytes).collect();
        note
    }
}

async fn serve_checkpoint(State(served): State<Arc<Mutex<Served>>>) -> String {
    served.lock().expect("lock").note.clone()
}

async fn serve_entries(
    State(served): State<Arc<Mutex<Served>>>,
    Query(q): Query<HashMap<String, u64>>,
) -> axum::Json<Value> {
    let s = served.lock().expect("lock");
    let start = q.get("start").copied().unwrap_or(0) as usize;
    let count = q.get("count").copied().unwrap_or(1000) as usize;
    let end = (start + count).min(s.leaves.len());
    let leaves: Vec<String> = s
        .leaves
        .get(start.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(hex::encode)
        .collect();
    axum::Json(serde_json::json!({ "start": start, "leaves": leaves }))
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

async fn indicted(c: &reqwest::Client, tower: &str, vkey: &str) -> Value {
    c.get(format!("{tower}/v1/indicted"))
        .query(&[("vkey", vkey)])
        .send()
        .await
        .expect("GET /v1/indicted")
        .json()
        .await
        .expect("JSON")
}

/// Waits until the watchtower reports the log indicted; checks every proof it returns
/// offline with the log's key and returns the kinds.
async fn wait_indicted(c: &reqwest::Client, tower: &str, log: &Verifier) -> Vec<ForkKind> {
    let started = Instant::now();
    loop {
        let v = indicted(c, tower, &log.vkey()).await;
        if v["indicted"] == true {
            let proofs = v["proofs"].as_array().expect("proofs");
            return proofs
                .iter()
                .map(|p| {
                    let bytes = B64
                        .decode(p["proof"].as_str().expect("proof"))
                        .expect("b64");
                    let kind = ForkProof::from_bytes(&bytes)
                        .expect("decodes")
                        .verify(log)
                        .expect("the proof the watchtower holds verifies offline");
                    assert_eq!(p["kind"], kind.name());
                    kind
                })
                .collect();
        }
        assert!(started.elapsed() < WAIT, "not indicted: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the watchtower's monitor has verified `size` leaves of the log.
async fn wait_monitored(c: &reqwest::Client, tower: &str, origin: &str, size: u64) {
    let started = Instant::now();
    loop {
        let logs = get_json(c, &format!("{tower}/v1/logs")).await;
        let log = logs
            .as_array()
            .expect("array")
            .iter()
            .find(|l| l["origin"] == origin)
            .cloned()
            .expect("the log is watched");
        if log["monitored_size"].as_u64() >= Some(size) {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "monitor stuck at {log} (want {size})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn add_checkpoint(
    c: &reqwest::Client,
    tower: &str,
    old: u64,
    proof: &[[u8; 32]],
    note: &str,
) -> reqwest::Response {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    c.post(format!("{tower}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .expect("POST /add-checkpoint")
}

async fn witness_checkpoint(
    c: &reqwest::Client,
    url: &str,
    log: &Verifier,
) -> (Checkpoint, String) {
    let text = c
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .expect("GET /checkpoint")
        .text()
        .await
        .expect("body");
    let (n, _) = note::open(text.as_bytes(), std::slice::from_ref(log)).expect("signed");
    (Checkpoint::from_text(&n.text).expect("checkpoint"), text)
}

async fn consistency(c: &reqwest::Client, url: &str, old: u64, new: u64) -> Vec<[u8; 32]> {
    let hashes: Vec<String> = c
        .get(format!("{url}/proof/consistency?old={old}&new={new}"))
        .send()
        .await
        .expect("GET consistency")
        .json()
        .await
        .expect("JSON");
    hashes
        .iter()
        .map(|h| hex::decode(h).expect("hex").try_into().expect("32 bytes"))
        .collect()
}

/// A real witness log is cosigned as it grows (c2sp.org/tlog-witness), monitored to its
/// current size, and never indicted; the cosigned size survives a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_witness_is_cosigned_and_monitored_but_never_indicted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let c = client();
    let witness_args: Vec<String> = ["--listen", "127.0.0.1:0", "--block-seconds", "1"]
        .map(String::from)
        .to_vec();
    let witness = ServiceProcess::start(&bin(), &tmp.path().join("w"), "witness", &witness_args)
        .expect("witness starts");
    let log_vkey = witness.read("witness.vkey").expect("vkey");
    let log = Verifier::from_vkey(&log_vkey).expect("log vkey");
    let mut tower = watchtower(
        &tmp.path().join("t"),
        &[format!("{log_vkey},{}", witness.url)],
    );
    let cosigner =
        CosignatureVerifier::from_vkey(&tower.read("watchtower.vkey").expect("vkey")).expect("ok");

    let mut cosigned: Option<Checkpoint> = None;
    for round in 0..5u8 {
        for k in 0..10u8 {
            let p = hex::encode([round * 16 + k + 1; 32]);
            c.post(format!("{}/submit", witness.url))
                .json(&serde_json::json!({ "p": p }))
                .send()
                .await
                .expect("submit")
                .error_for_status()
                .expect("200");
        }
        let (cp, note) = witness_checkpoint(&c, &witness.url, &log).await;
        let (old, proof) = match &cosigned {
            None => (0, Vec::new()),
            Some(prev) => (
                prev.size,
                consistency(&c, &witness.url, prev.size, cp.size).await,
            ),
        };
        let response = add_checkpoint(&c, &tower.url, old, &proof, &note).await;
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().await.expect("body")
        );
        let lines = response.text().await.expect("body");
        assert!(lines.ends_with('\n') && lines.starts_with('—'), "{lines:?}");
        let time = cosigner
            .verify(&cp.to_text().expect("text"), lines.trim_end())
            .expect("the cosignature verifies with watchtower.vkey");
        assert!(time > 1_700_000_000);
        // Anyone may also show the watchtower a checkpoint they were given.
        let shown: Value = c
            .post(format!("{}/v1/checkpoints", tower.url))
            .body(note.clone())
            .send()
            .await
            .expect("POST /v1/checkpoints")
            .json()
            .await
            .expect("JSON");
        assert_eq!(shown["sighting"], "known", "{shown}");
        cosigned = Some(cp);
    }
    let size = cosigned.as_ref().map(|c| c.size).expect("cosigned");
    wait_monitored(&c, &tower.url, log.name(), size).await;

    // A stale old size gets 409 with the latest cosigned size, as tlog-witness says.
    let (_, note) = witness_checkpoint(&c, &witness.url, &log).await;
    let response = add_checkpoint(&c, &tower.url, 0, &[], &note).await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/x.tlog.size"
    );
    assert_eq!(response.text().await.expect("body"), format!("{size}\n"));

    // kill -9: the cosigned size and the monitor's copy survive.
    tower.kill9();
    tower.restart().expect("restarts");
    let logs = get_json(&c, &format!("{}/v1/logs", tower.url)).await;
    assert_eq!(logs[0]["cosigned_size"], size, "{logs}");
    assert!(logs[0]["monitored_size"].as_u64() >= Some(size), "{logs}");
    let response = add_checkpoint(&c, &tower.url, 0, &[], &note).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.text().await.expect("body"), format!("{size}\n"));

    // The log keeps growing (blocks tick every second); the monitor follows, no indictment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cp, _) = witness_checkpoint(&c, &witness.url, &log).await;
    wait_monitored(&c, &tower.url, log.name(), cp.size).await;
    let v = indicted(&c, &tower.url, &log_vkey).await;
    assert_eq!(v["indicted"], false, "{v}");
    assert_eq!(v["proofs"].as_array().map(Vec::len), Some(0));
}

/// Four misbehaving logs, one per kind of fork proof, and one honest log, all watched by one
/// watchtower: each misbehaving log is indicted with a proof anyone can check offline, the
/// honest one never, and the indictments survive a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_logs_are_indicted_for_every_kind_of_fork() {
    let tmp = tempfile::tempdir().expect("tmp");
    let c = client();
    let split = EvilLog::start("split").await;
    let rewrite = EvilLog::start("rewrite").await;
    let regress = EvilLog::start("regress").await;
    let conflict = EvilLog::start("conflict").await;
    let honest = EvilLog::start("honest").await;

    let base = history(3, 2, 0);
    for log in [&split, &rewrite, &conflict, &honest] {
        log.serve(&base);
    }
    // Block 1 again after block 2: a regression in the log's own signed tree.
    let mut regressed = base.clone();
    regressed.push(commit(1, 200));
    regress.serve(&regressed);

    let logs: Vec<String> = [&split, &rewrite, &regress, &conflict, &honest]
        .iter()
        .map(|l| format!("{},{}", l.vkey(), l.url))
        .collect();
    let mut tower = watchtower(&tmp.path().join("t"), &logs);
    let size = base.len() as u64;
    for log in [&split, &rewrite, &conflict, &honest] {
        wait_monitored(&c, &tower.url, &log.origin(), size).await;
    }

    // 1. Block regression: found by the monitor in the signed tree itself.
    assert_eq!(
        wait_indicted(&c, &tower.url, &regress.verifier()).await,
        [ForkKind::BlockRegression]
    );

    // 2. Split view: someone was shown another tree of the same size, and passes its
    //    checkpoint on to the watchtower.
    let mut other = base.clone();
    other[2] = commit(0, 99);
    let other_note = split.sign(&other);
    let shown: Value = c
        .post(format!("{}/v1/checkpoints", tower.url))
        .body(other_note.clone())
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(shown["sighting"], "split_view", "{shown}");
    assert_eq!(
        wait_indicted(&c, &tower.url, &split.verifier()).await,
        [ForkKind::SplitView]
    );
    // An indicted log gets no more cosignatures.
    let response = add_checkpoint(&c, &tower.url, 0, &[], &other_note).await;
    assert_eq!(response.status(), 409);

    // 3. Prefix rewrite: the log grows, but an early COMMIT was swapped for another one.
    let mut rewritten = base.clone();
    rewritten[1] = commit(0, 77);
    rewritten.extend([marker(3), commit(3, 50), commit(3, 51)]);
    rewrite.serve(&rewritten);
    assert_eq!(
        wait_indicted(&c, &tower.url, &rewrite.verifier()).await,
        [ForkKind::PrefixRewrite]
    );

    // 4. Conflicting leaves: two payees hold proof bundles for different COMMITs at the same
    //    index; either of them builds the proof and hands it in.
    let mut theirs = base.clone();
    theirs[4] = commit(1, 123);
    let (ours_tree, theirs_tree) = (tree_of(&base), tree_of(&theirs));
    let proof = ForkProof::conflicting_leaves(
        4,
        (&conflict.sign(&base), &ours_tree, &base[4].to_bytes()),
        (&conflict.sign(&theirs), &theirs_tree, &theirs[4].to_bytes()),
    )
    .expect("builds");
    let body = serde_json::json!({
        "vkey": conflict.vkey(),
        "proof": B64.encode(proof.to_bytes().expect("encodes")),
    });
    // Handed to the wrong log's key, it is no evidence.
    let wrong = serde_json::json!({ "vkey": honest.vkey(), "proof": body["proof"] });
    let response = c
        .post(format!("{}/v1/fork-proofs", tower.url))
        .json(&wrong)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 422);
    let accepted: Value = c
        .post(format!("{}/v1/fork-proofs", tower.url))
        .json(&body)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(accepted["kind"], "conflicting_leaves", "{accepted}");
    assert_eq!(accepted["new"], true);
    assert_eq!(
        wait_indicted(&c, &tower.url, &conflict.verifier()).await,
        [ForkKind::ConflictingLeaves]
    );

    // The honest log grows the honest way and is never indicted.
    let mut grown = base.clone();
    grown.extend([marker(3), commit(3, 60), marker(4)]);
    honest.serve(&grown);
    wait_monitored(&c, &tower.url, &honest.origin(), grown.len() as u64).await;
    let v = indicted(&c, &tower.url, &honest.vkey()).await;
    assert_eq!(v["indicted"], false, "{v}");

    // kill -9 and restart: every indictment is still there, the honest log still clean.
    tower.kill9();
    tower.restart().expect("restarts");
    for (log, kind) in [
        (&regress, ForkKind::BlockRegression),
        (&split, ForkKind::SplitView),
        (&rewrite, ForkKind::PrefixRewrite),
        (&conflict, ForkKind::ConflictingLeaves),
    ] {
        assert_eq!(wait_indicted(&c, &tower.url, &log.verifier()).await, [kind]);
    }
    let v = indicted(&c, &tower.url, &honest.vkey()).await;
    assert_eq!(v["indicted"], false, "{v}");
    let listed = get_json(&c, &format!("{}/v1/logs", tower.url)).await;
    let flags: Vec<(String, bool)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|l| {
            (
                l["origin"].as_str().expect("origin").to_string(),
                l["indicted"].as_bool().expect("bool"),
            )
        })
        .collect();
    for (origin, flag) in flags {
        assert_eq!(flag, origin != honest.origin(), "{origin}");
    }
}

/// The whole commit method: a witness asks a watchtower to cosign each new checkpoint
/// (tlog-witness, with consistency proofs as the log grows), and the proof bundles it serves
/// satisfy a 1-of-1 cosigner policy offline, with cosigner timestamps bounded by the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_bundles_carry_watchtower_cosignatures() {
    use atomicity_witness::bundle::{ProofBundle, verify_publication};
    use atomicity_witness::note::CosignerPolicy;

    let tmp = tempfile::tempdir().expect("tmp");
    let c = client();
    let witness_dir = tmp.path().join("w");
    let base_args: Vec<String> = ["--listen", "127.0.0.1:0", "--block-seconds", "1"]
        .map(String::from)
        .to_vec();
    // First run only creates the log's key.
    let mut first =
        ServiceProcess::start(&bin(), &witness_dir, "witness", &base_args).expect("witness starts");
    let log_vkey = first.read("witness.vkey").expect("vkey");
    first.stop();
    let log = Verifier::from_vkey(&log_vkey).expect("log vkey");
    let tower = watchtower(&tmp.path().join("t"), std::slice::from_ref(&log_vkey));
    let tower_vkey = tower.read("watchtower.vkey").expect("vkey");
    let mut args = base_args.clone();
    args.extend([
        "--cosigner".to_string(),
        format!("{tower_vkey},{}", tower.url),
    ]);
    let witness = ServiceProcess::start(&bin(), &witness_dir, "witness", &args)
        .expect("witness with a cosigner starts");
    let policy = CosignerPolicy {
        cosigners: vec![CosignatureVerifier::from_vkey(&tower_vkey).expect("cosigner vkey")],
        threshold: 1,
    };

    let mut cosigned_sizes = Vec::new();
    for round in 0..3u8 {
        let p = [0xA0 + round; 32];
        c.post(format!("{}/submit", witness.url))
            .json(&serde_json::json!({ "p": hex::encode(p) }))
            .send()
            .await
            .expect("submit")
            .error_for_status()
            .expect("200");
        let started = Instant::now();
        let published = loop {
            let bytes = c
                .get(format!("{}/bundle/{}", witness.url, hex::encode(p)))
                .send()
                .await
                .expect("GET bundle")
                .bytes()
                .await
                .expect("body");
            let bundle = ProofBundle::from_bytes(&bytes).expect("bundle decodes");
            match verify_publication(&bundle, &p, &log, Some(&policy), 0, u64::MAX, u64::MAX) {
                Ok(published) => break (published, bundle),
                Err(e) => {
                    assert!(started.elapsed() < WAIT, "never cosigned: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let (_, bundle) = published;
        // The cosignature's timestamp bounds the hard deadline: one second before it fails.
        let (n, _) = note::open(bundle.checkpoint.as_bytes(), std::slice::from_ref(&log))
            .expect("signed by the log");
        let checks = policy.check(&n).expect("policy holds");
        let time = checks[0].1;
        assert!(
            verify_publication(&bundle, &p, &log, Some(&policy), 0, u64::MAX, time - 1).is_err()
        );
        cosigned_sizes.push(Checkpoint::from_text(&n.text).expect("checkpoint").size);
    }
    assert!(
        cosigned_sizes.windows(2).all(|w| w[0] < w[1]),
        "each round is cosigned at a larger size (consistency proofs): {cosigned_sizes:?}"
    );
    // A 2-of-2 policy with a cosigner that never signed is not met.
    let stranger = atomicity_witness::note::Cosigner::new(
        "stranger.example/w",
        SigningKey::from_bytes(&[9; 32]),
    )
    .expect("cosigner")
    .verifier();
    let strict = CosignerPolicy {
        cosigners: vec![policy.cosigners[0].clone(), stranger],
        threshold: 2,
    };
    let note = c
        .get(format!("{}/checkpoint/cosigned", witness.url))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let parsed = atomicity_witness::note::Note::parse(note.as_bytes()).expect("note");
    assert!(policy.check(&parsed).is_ok());
    assert!(strict.check(&parsed).is_err());
    // The watchtower cosigned the witness's growing log and holds nothing against it.
    let v = indicted(&c, &tower.url, &log_vkey).await;
    assert_eq!(v["indicted"], false, "{v}");
    assert_eq!(v["watched"], true, "{v}");
}
