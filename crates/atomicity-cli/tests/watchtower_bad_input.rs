//! Bad input against a real `atomicity watchtower run` process: malformed notes, wrong keys,
//! oversized bodies and garbage proofs on every endpoint, and bad arguments on the command
//! line.
//!
//! Each test starts its own watchtower (own temporary data directory) watching logs whose
//! keys the test holds, so it can sign checkpoints over its own Merkle trees. Every refusal
//! must carry the status the protocol prescribes and a JSON body `{"code", "error"}` with a
//! stable code (the only exception is c2sp.org/tlog-witness's 409 for a wrong old size,
//! whose body is the size), and must change nothing: `/v1/logs`, `/v1/indicted` and
//! `/v1/refused` read back the same, a valid request still works afterwards, and the state
//! survives a kill -9.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use atomicity_cli::harness::ServiceProcess;
use atomicity_witness::fork::{ForkKind, ForkProof, sign_checkpoint};
use atomicity_witness::http::ErrorBody;
use atomicity_witness::merkle::{Tree, empty_root};
use atomicity_witness::note::{self, CosignatureVerifier, Note, Signer, Verifier};
use atomicity_witness::tower_service::{
    CheckpointStatus, IndictedStatus, LogStatus, MAX_BODY, ProofAccepted, RefusalStatus,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_atomicity");
/// How long a CLI invocation that must fail may run before the test gives up on it.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// The core's own limit on an `add-checkpoint` body (below the HTTP limit [`MAX_BODY`]).
const MAX_ADD_CHECKPOINT_BODY: usize = atomicity_witness::watchtower::MAX_ADD_CHECKPOINT_BODY;

// ---------------------------------------------------------------------------------------------
// Fixture: a real watchtower process and logs whose keys the test holds.
// ---------------------------------------------------------------------------------------------

/// A log under the test's control: it signs checkpoints over trees the test builds.
struct TestLog {
    signer: Signer,
}

impl TestLog {
    fn new(origin: &str) -> TestLog {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        TestLog {
            signer: Signer::new(origin, key).expect("signer"),
        }
    }

    fn origin(&self) -> String {
        self.signer.name().to_string()
    }

    fn vkey(&self) -> String {
        self.signer.vkey()
    }

    fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }

    /// The signed checkpoint of the first `size` leaves of `tree`.
    fn sign(&self, tree: &Tree, size: u64) -> String {
        sign_checkpoint(&self.signer, &self.origin(), tree, size).expect("sign checkpoint")
    }

    /// A note over an arbitrary text, signed by this log's key.
    fn sign_text(&self, text: &str) -> String {
        note::sign(text, std::slice::from_ref(&self.signer)).expect("sign text")
    }
}

/// A tree of `n` distinct leaves; `salt` makes different histories.
fn tree(n: u64, salt: &str) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        t.push_data(format!("{salt} leaf {i}").as_bytes());
    }
    t
}

/// The checkpoint text of a signed note (what a cosignature signs).
fn note_text(note: &str) -> String {
    Note::parse(note.as_bytes()).expect("note parses").text
}

/// An `add-checkpoint` body: `old N`, the proof lines, an empty line, the note.
fn add_body(old: u64, proof: &[[u8; 32]], note: &str) -> Vec<u8> {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body.into_bytes()
}

/// An `add-checkpoint` body with a literal first line and literal proof lines.
fn add_body_raw(first: &str, proof_lines: &[&str], note: &str) -> Vec<u8> {
    let mut body = format!("{first}\n");
    for line in proof_lines {
        body.push_str(line);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body.into_bytes()
}

/// `note` with the last byte of every signature flipped (same key name and key ID).
fn tamper_signatures(note: &str) -> String {
    let mut out = Note::parse(note.as_bytes()).expect("note parses");
    for s in &mut out.signatures {
        let last = s.signature.last_mut().expect("signature bytes");
        *last ^= 1;
    }
    out.to_text()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One watchtower process. Field order matters: the process is killed before its directory
/// is deleted.
struct Tower {
    process: ServiceProcess,
    _dir: TempDir,
    http: reqwest::Client,
}

fn tower_args(logs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--poll-seconds", "60"]
        .map(String::from)
        .to_vec();
    for log in logs {
        args.push("--log".into());
        args.push(log.clone());
    }
    args
}

impl Tower {
    /// Starts `atomicity watchtower run --listen 127.0.0.1:0 --log VKEY..` in a new
    /// temporary directory.
    fn start(logs: &[String]) -> Tower {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = tower_args(logs);
        let process = tokio::task::block_in_place(|| {
            ServiceProcess::start(Path::new(BIN), dir.path(), "watchtower", &args)
        })
        .expect("watchtower starts");
        Tower {
            process,
            _dir: dir,
            // No connection reuse: a server may close a connection after refusing an
            // oversized body, and a later request must not fail for that reason.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    fn url(&self) -> &str {
        &self.process.url
    }

    /// kill -9, then the same command again (new port).
    fn kill9_and_restart(&mut self) {
        self.process.kill9();
        tokio::task::block_in_place(|| self.process.restart()).expect("watchtower restarts");
    }

    /// The cosigner's verifier key, from `DIR/watchtower.vkey`.
    fn cosigner_vkey(&self) -> String {
        self.process
            .read("watchtower.vkey")
            .expect("watchtower.vkey")
    }

    fn cosigner(&self) -> CosignatureVerifier {
        CosignatureVerifier::from_vkey(&self.cosigner_vkey()).expect("cosigner vkey parses")
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url()))
            .header(CONTENT_TYPE, "text/plain")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post(path, serde_json::to_vec(body).expect("json"))
            .await
    }

    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path_and_query}", self.url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
    }

    async fn logs(&self) -> Vec<LogStatus> {
        let r = self.get("/v1/logs").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("/v1/logs JSON")
    }

    async fn log(&self, origin: &str) -> LogStatus {
        self.logs()
            .await
            .into_iter()
            .find(|l| l.origin == origin)
            .unwrap_or_else(|| panic!("{origin} is not in /v1/logs"))
    }

    /// `GET /v1/indicted?vkey=` with the key URL-encoded.
    async fn indicted(&self, vkey: &str) -> IndictedStatus {
        let r = self
            .http
            .get(format!("{}/v1/indicted", self.url()))
            .query(&[("vkey", vkey)])
            .send()
            .await
            .expect("GET /v1/indicted");
        assert_eq!(r.status(), StatusCode::OK, "/v1/indicted for {vkey}");
        r.json().await.expect("/v1/indicted JSON")
    }

    async fn refused(&self, origin: &str) -> Vec<RefusalStatus> {
        let r = self
            .http
            .get(format!("{}/v1/refused", self.url()))
            .query(&[("origin", origin)])
            .send()
            .await
            .expect("GET /v1/refused");
        assert_eq!(r.status(), StatusCode::OK, "/v1/refused for {origin}");
        r.json().await.expect("/v1/refused JSON")
    }

    /// POSTs an `add-checkpoint` body that must be cosigned; checks the cosignature line
    /// offline with `DIR/watchtower.vkey` and returns it.
    async fn expect_cosigned(&self, body: Vec<u8>, note: &str, what: &str) -> String {
        let r = self.post("/add-checkpoint", body).await;
        let status = r.status();
        let content_type = header(&r, CONTENT_TYPE);
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "{what}: {text}");
        assert!(
            content_type.starts_with("text/plain"),
            "{what}: content type {content_type}"
        );
        // Blank lines are skipped here; the exact shape of the answer is checked by
        // `add_checkpoint_answer_is_exactly_the_cosignature_lines`.
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: one cosignature line: {text:?}");
        assert!(
            text.ends_with('\n') && lines[0].starts_with("— "),
            "{text:?}"
        );
        let time = self
            .cosigner()
            .verify(&note_text(note), lines[0])
            .unwrap_or_else(|e| panic!("{what}: the cosignature does not verify: {e}"));
        assert!(
            time.abs_diff(unix_now()) < 300,
            "{what}: cosignature time {time}"
        );
        text
    }

    /// POSTs an `add-checkpoint` body that must get tlog-witness's 409 for a wrong old size:
    /// the body is the latest cosigned size and a newline, typed `text/x.tlog.size`.
    async fn expect_wrong_old_size(&self, body: Vec<u8>, latest: u64, what: &str) {
        let r = self.post("/add-checkpoint", body).await;
        let status = r.status();
        let content_type = header(&r, CONTENT_TYPE);
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::CONFLICT, "{what}: {text}");
        assert_eq!(content_type, "text/x.tlog.size", "{what}");
        assert_eq!(text, format!("{latest}\n"), "{what}");
    }
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_string())
        .unwrap_or_default()
}

/// Checks that a response is the JSON error `{"code", "error"}` with this status and code,
/// and returns the words.
async fn expect_error(r: reqwest::Response, status: StatusCode, code: &str, what: &str) -> String {
    let got = r.status();
    let content_type = header(&r, CONTENT_TYPE);
    let body = r.text().await.expect("error body");
    assert_eq!(got, status, "{what}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}: {body}"
    );
    let e: ErrorBody = serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("{what}: not a JSON error ({err}): {body}"));
    assert_eq!(e.code, code, "{what}: {body}");
    assert!(!e.error.trim().is_empty(), "{what}: empty error words");
    e.error
}

/// Like [`expect_error`], and the words must name `needle`.
async fn expect_error_naming(
    r: reqwest::Response,
    status: StatusCode,
    code: &str,
    needle: &str,
    what: &str,
) {
    let words = expect_error(r, status, code, what).await;
    assert!(
        words.contains(needle),
        "{what}: the error {words:?} does not say {needle:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /add-checkpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn add_checkpoint_bad_input_is_refused_and_changes_nothing() {
    let log = TestLog::new("example.com/log-a");
    let stranger = TestLog::new("example.com/stranger");
    // Same origin as the watched log, another key.
    let impostor = TestLog::new("example.com/log-a");
    let mut t = Tower::start(&[log.vkey()]);
    let origin = log.origin();

    let history = tree(12, "a");
    let note4 = log.sign(&history, 4);
    let note8 = log.sign(&history, 8);
    let note12 = log.sign(&history, 12);
    let cp4_text = note_text(&note4);

    let initial = t.logs().await;
    assert_eq!(
        initial,
        vec![LogStatus {
            origin: origin.clone(),
            vkey: log.vkey(),
            url: None,
            cosigned_size: 0,
            monitored_size: 0,
            checkpoints_seen: 0,
            indicted: false,
        }]
    );

    // ---- Malformed requests: 400, nothing recorded, not even a sighting. ----
    let hash = B64.encode([7u8; 32]);
    let mut sixty_four = String::from("old 4\n");
    for _ in 0..64 {
        sixty_four.push_str(&hash);
        sixty_four.push('\n');
    }
    sixty_four.push('\n');
    sixty_four.push_str(&note8);
    let root_b64 = B64.encode(history.root_at(4).expect("root"));
    let malformed: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "old size line"),
        ("no newline at all", b"old 0".to_vec(), "old size line"),
        (
            "not UTF-8",
            [b"old 0\n\n".as_slice(), &[0xff, 0xfe, b'\n']].concat(),
            "UTF-8",
        ),
        (
            "missing old line (the note alone)",
            note4.clone().into_bytes(),
            "old <size>",
        ),
        (
            "missing old line (starts with the blank line)",
            format!("\n{note4}").into_bytes(),
            "old <size>",
        ),
        ("old 01", add_body_raw("old 01", &[], &note4), "canonical"),
        ("old x", add_body_raw("old x", &[], &note4), "canonical"),
        ("old -1", add_body_raw("old -1", &[], &note4), "canonical"),
        (
            "old with two spaces",
            add_body_raw("old  0", &[], &note4),
            "canonical",
        ),
        (
            "old with a sign",
            add_body_raw("old +0", &[], &note4),
            "canonical",
        ),
        ("old empty", add_body_raw("old ", &[], &note4), "canonical"),
        (
            "OLD in capitals",
            add_body_raw("OLD 0", &[], &note4),
            "old <size>",
        ),
        (
            "old with CRLF",
            add_body_raw("old 0\r", &[], &note4),
            "canonical",
        ),
        (
            "old overflows u64",
            add_body_raw("old 18446744073709551616", &[], &note4),
            "overflows",
        ),
        (
            "non-base64 proof line",
            add_body_raw("old 0", &["!!not base64!!"], &note4),
            "base64 32-byte hash",
        ),
        (
            "31-byte hash line",
            add_body_raw("old 0", &[&B64.encode([1u8; 31])], &note4),
            "base64 32-byte hash",
        ),
        (
            "33-byte hash line",
            add_body_raw("old 0", &[&B64.encode([1u8; 33])], &note4),
            "base64 32-byte hash",
        ),
        (
            "hash line without padding",
            add_body_raw("old 0", &[hash.trim_end_matches('=')], &note4),
            "base64 32-byte hash",
        ),
        ("64 proof lines", sixty_four.into_bytes(), "63"),
        (
            "missing blank line (a proof line, then nothing)",
            format!("old 0\n{hash}\n").into_bytes(),
            "empty line",
        ),
        (
            "missing blank line (a proof line without newline)",
            format!("old 0\n{hash}").into_bytes(),
            "empty line",
        ),
        (
            "nothing after the blank line",
            b"old 0\n\n".to_vec(),
            "malformed note",
        ),
        (
            "note without signature lines",
            format!("old 0\n\n{cp4_text}\n").into_bytes(),
            "no signature lines",
        ),
        (
            "note without the blank line before its signatures",
            format!("old 0\n\n{}", note4.replacen("\n\n", "\n", 1)).into_bytes(),
            "malformed",
        ),
        (
            "signature line with bad base64",
            format!("old 0\n\n{cp4_text}\n— {origin} !!!\n").into_bytes(),
            "signature line",
        ),
        (
            "signature line without the em dash",
            format!("old 0\n\n{}", note4.replace("— ", "- ")).into_bytes(),
            "em dash",
        ),
        (
            "signature line without a final newline",
            format!("old 0\n\n{}", note4.trim_end()).into_bytes(),
            "newline",
        ),
        (
            "control character in the note",
            format!("old 0\n\n{}", note4.replacen('4', "4\t", 1)).into_bytes(),
            "control character",
        ),
        (
            "signed checkpoint without root",
            add_body_raw("old 0", &[], &log.sign_text(&format!("{origin}\n4\n"))),
            "missing root hash",
        ),
        (
            "signed checkpoint whose root is not 32 bytes",
            add_body_raw(
                "old 0",
                &[],
                &log.sign_text(&format!("{origin}\n4\n{}\n", B64.encode([3u8; 31]))),
            ),
            "not 32 bytes",
        ),
        (
            "signed checkpoint whose root is not base64",
            add_body_raw(
                "old 0",
                &[],
                &log.sign_text(&format!("{origin}\n4\nnot base64!\n")),
            ),
            "base64 root",
        ),
        (
            "signed checkpoint with a non-canonical size",
            add_body_raw(
                "old 0",
                &[],
                &log.sign_text(&format!("{origin}\n04\n{root_b64}\n")),
            ),
            "tree size",
        ),
        (
            "signed checkpoint without size",
            add_body_raw("old 0", &[], &log.sign_text(&format!("{origin}\n"))),
            "missing tree size",
        ),
        (
            "signed checkpoint with an empty extension line",
            add_body_raw(
                "old 0",
                &[],
                &log.sign_text(&format!("{origin}\n4\n{root_b64}\n\next\n")),
            ),
            "malformed",
        ),
    ];
    for (what, body, needle) in malformed {
        let r = t.post("/add-checkpoint", body).await;
        expect_error_naming(r, StatusCode::BAD_REQUEST, "bad_request", needle, what).await;
    }
    assert_eq!(
        t.logs().await,
        initial,
        "malformed requests changed nothing"
    );

    // ---- Wrong keys: 403, unknown origin: 404. ----
    let forged = impostor.sign(&history, 4);
    let r = t.post("/add-checkpoint", add_body(0, &[], &forged)).await;
    expect_error(
        r,
        StatusCode::FORBIDDEN,
        "bad_signature",
        "same origin, another key",
    )
    .await;
    let r = t
        .post(
            "/add-checkpoint",
            add_body(0, &[], &tamper_signatures(&note4)),
        )
        .await;
    expect_error(
        r,
        StatusCode::FORBIDDEN,
        "bad_signature",
        "the log's key ID with a bad signature",
    )
    .await;
    // The log's signature over another checkpoint text.
    let moved = format!(
        "{}{}",
        note_text(&log.sign(&history, 5)),
        &note4[cp4_text.len()..]
    );
    let r = t.post("/add-checkpoint", add_body(0, &[], &moved)).await;
    expect_error(
        r,
        StatusCode::FORBIDDEN,
        "bad_signature",
        "a signature moved to another checkpoint",
    )
    .await;
    let r = t
        .post(
            "/add-checkpoint",
            add_body(0, &[], &stranger.sign(&history, 4)),
        )
        .await;
    expect_error_naming(
        r,
        StatusCode::NOT_FOUND,
        "unknown_log",
        "example.com/stranger",
        "unknown origin",
    )
    .await;
    // An unknown origin is 404 even when the old size is also wrong.
    let r = t
        .post(
            "/add-checkpoint",
            add_body(9, &[], &stranger.sign(&history, 4)),
        )
        .await;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "unknown_log",
        "unknown origin, old 9",
    )
    .await;

    // ---- Oversized bodies. ----
    // Over the HTTP limit: 413 before the body is even parsed.
    for size in [MAX_BODY + 1, 2 * MAX_BODY] {
        let r = t.post("/add-checkpoint", vec![b'a'; size]).await;
        expect_error(
            r,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("{size} bytes"),
        )
        .await;
    }
    // Within the HTTP limit but over the protocol's own limit, even if it starts well.
    let mut big = add_body(0, &[], &note4);
    big.resize(MAX_ADD_CHECKPOINT_BODY + 1, b'\n');
    let r = t.post("/add-checkpoint", big).await;
    expect_error_naming(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "at most",
        "a body over the add-checkpoint limit",
    )
    .await;
    assert_eq!(t.logs().await, initial, "rejected requests changed nothing");
    assert!(t.refused(&origin).await.is_empty());
    assert!(!t.indicted(&log.vkey()).await.indicted);

    // ---- old > size: 400. The checkpoint itself is signed by the log, so it is kept as a
    // sighting (it could be half of a split view); nothing else changes. ----
    let r = t.post("/add-checkpoint", add_body(5, &[], &note4)).await;
    expect_error_naming(
        r,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "larger",
        "old 5 > size 4",
    )
    .await;
    let after = t.logs().await;
    assert_eq!(after[0].cosigned_size, 0);
    assert_eq!(after[0].checkpoints_seen, 1);
    assert!(!t.indicted(&log.vkey()).await.indicted);

    // ---- A wrong old size: 409 with the size, typed text/x.tlog.size. ----
    t.expect_wrong_old_size(add_body(2, &[], &note4), 0, "old 2 before any cosignature")
        .await;
    t.expect_wrong_old_size(add_body(4, &[], &note4), 0, "old 4 before any cosignature")
        .await;
    assert_eq!(t.log(&origin).await.cosigned_size, 0);
    assert!(t.refused(&origin).await.is_empty(), "a 409 is not evidence");

    // ---- A bad consistency proof: 422, and the note is kept as evidence. ----
    let r = t
        .post("/add-checkpoint", add_body(0, &[[9u8; 32]], &note4))
        .await;
    expect_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inconsistent",
        "old 0 with a proof line",
    )
    .await;
    let refused = t.refused(&origin).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].note, note4);
    assert!(!refused[0].reason.is_empty());
    assert!(refused[0].time.abs_diff(unix_now()) < 300);
    let status = t.log(&origin).await;
    assert_eq!(status.cosigned_size, 0);
    assert!(!status.indicted);

    // ---- The valid sequence still works: old 0, then a consistency proof. ----
    t.expect_cosigned(add_body(0, &[], &note4), &note4, "old 0 → 4")
        .await;
    assert_eq!(t.log(&origin).await.cosigned_size, 4);

    let proof = history.consistency_proof(4, 8).expect("proof 4 → 8");
    assert!(!proof.is_empty());
    let mut flipped = proof.clone();
    flipped[0][0] ^= 1;
    let mut longer = proof.clone();
    longer.push([5u8; 32]);
    let bad_proofs: Vec<(&str, Vec<[u8; 32]>)> = vec![
        ("a flipped hash", flipped),
        ("no proof", Vec::new()),
        ("an extra hash", longer),
        ("the proof of another tree", {
            tree(8, "other").consistency_proof(4, 8).expect("proof")
        }),
    ];
    for (what, bad) in bad_proofs {
        let r = t.post("/add-checkpoint", add_body(4, &bad, &note8)).await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "inconsistent", what).await;
        assert_eq!(t.log(&origin).await.cosigned_size, 4, "{what}");
    }
    // Stale and future old sizes.
    t.expect_wrong_old_size(add_body(0, &[], &note8), 4, "old 0 after 4")
        .await;
    t.expect_wrong_old_size(add_body(8, &[], &note8), 4, "old 8 after 4")
        .await;
    let r = t.post("/add-checkpoint", add_body(9, &proof, &note8)).await;
    expect_error(r, StatusCode::BAD_REQUEST, "bad_request", "old 9 > size 8").await;
    // Malformed and forged requests after a cosignature change nothing either.
    let r = t
        .post(
            "/add-checkpoint",
            add_body(4, &proof, &impostor.sign(&history, 8)),
        )
        .await;
    expect_error(r, StatusCode::FORBIDDEN, "bad_signature", "forged note 8").await;
    let r = t
        .post("/add-checkpoint", add_body_raw("old 04", &[], &note8))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "bad_request", "old 04").await;
    assert_eq!(t.log(&origin).await.cosigned_size, 4);

    // The refused note 8 is kept once, newest first.
    let refused = t.refused(&origin).await;
    let notes: Vec<&str> = refused.iter().map(|r| r.note.as_str()).collect();
    assert_eq!(notes, vec![note8.as_str(), note4.as_str()]);

    t.expect_cosigned(add_body(4, &proof, &note8), &note8, "4 → 8")
        .await;
    let after = t.log(&origin).await;
    assert_eq!(after.cosigned_size, 8);
    assert!(!after.indicted);
    t.expect_wrong_old_size(add_body(4, &proof, &note8), 8, "a replay of 4 → 8")
        .await;

    // ---- kill -9: the cosigned size and the evidence survive. ----
    t.kill9_and_restart();
    let restarted = t.log(&origin).await;
    assert_eq!(restarted.cosigned_size, 8);
    assert!(!restarted.indicted);
    assert_eq!(restarted.checkpoints_seen, after.checkpoints_seen);
    let refused_after = t.refused(&origin).await;
    assert_eq!(refused_after, refused);
    t.expect_wrong_old_size(add_body(4, &proof, &note8), 8, "a replay after restart")
        .await;
    let r = t
        .post("/add-checkpoint", add_body_raw("old x", &[], &note12))
        .await;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "old x after restart",
    )
    .await;
    let proof12 = history.consistency_proof(8, 12).expect("proof 8 → 12");
    t.expect_cosigned(
        add_body(8, &proof12, &note12),
        &note12,
        "8 → 12 after restart",
    )
    .await;
    assert_eq!(t.log(&origin).await.cosigned_size, 12);
    assert!(!t.indicted(&log.vkey()).await.indicted);
}

/// c2sp.org/tlog-witness: the 200 answer "MUST be a sequence of one or more note signature
/// lines, each starting with the `—` character (U+2014) and ending with a newline character",
/// and a client "MAY concatenate it to the checkpoint, and use a note verification function".
#[tokio::test(flavor = "multi_thread")]
async fn add_checkpoint_answer_is_exactly_the_cosignature_lines() {
    let log = TestLog::new("example.com/log-answer");
    let t = Tower::start(&[log.vkey()]);
    let history = tree(3, "answer");
    let note3 = log.sign(&history, 3);
    let answer = t
        .expect_cosigned(add_body(0, &[], &note3), &note3, "old 0 → 3")
        .await;
    assert!(
        answer.starts_with("— ") && answer.ends_with('\n') && !answer.contains("\n\n"),
        "not a sequence of signature lines: {answer:?}"
    );
    assert!(answer.lines().all(|l| l.starts_with("— ")), "{answer:?}");
    // The spec's client recipe: append the answer to the note and verify it as a note.
    let cosigned = format!("{note3}{answer}");
    let parsed = Note::parse(cosigned.as_bytes())
        .unwrap_or_else(|e| panic!("the cosigned note does not parse: {e}: {cosigned:?}"));
    assert_eq!(parsed.signatures.len(), 2);
    let cosigner = t.cosigner();
    let sig = parsed
        .signatures
        .iter()
        .find(|s| cosigner.matches(s))
        .expect("the watchtower's cosignature is in the note");
    cosigner
        .verify_signature(&parsed.text, sig)
        .expect("the cosignature verifies");
    note::open(cosigned.as_bytes(), &[log.verifier()]).expect("the log's signature verifies");
}

/// c2sp.org/tlog-witness: "The proof MUST be empty if the old size is zero" — the empty tree
/// is a prefix of every tree. A log whose first checkpoint (size 0, the empty tree's root) was
/// cosigned must still get its next checkpoint cosigned with `old 0` and an empty proof.
#[tokio::test(flavor = "multi_thread")]
async fn add_checkpoint_after_cosigning_the_empty_tree_still_works() {
    let log = TestLog::new("example.com/fresh-log");
    let t = Tower::start(&[log.vkey()]);
    let origin = log.origin();
    let empty = Tree::new();
    assert_eq!(empty.root(), empty_root());
    let note0 = log.sign(&empty, 0);
    t.expect_cosigned(add_body(0, &[], &note0), &note0, "old 0 → 0")
        .await;
    assert_eq!(t.log(&origin).await.cosigned_size, 0);

    let history = tree(4, "fresh");
    let note4 = log.sign(&history, 4);
    // The latest cosigned size is 0, so `old` must be 0 and the proof empty.
    t.expect_cosigned(add_body(0, &[], &note4), &note4, "0 → 4")
        .await;
    assert_eq!(t.log(&origin).await.cosigned_size, 4);
    assert!(
        t.refused(&origin).await.is_empty(),
        "an honest extension of the empty tree was kept as evidence against the log"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /v1/checkpoints
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_bad_input_is_refused_and_changes_nothing() {
    let log = TestLog::new("example.com/log-c");
    let stranger = TestLog::new("example.com/stranger-c");
    let impostor = TestLog::new("example.com/log-c");
    let mut t = Tower::start(&[log.vkey()]);
    let origin = log.origin();
    let history = tree(6, "c");
    let note6 = log.sign(&history, 6);
    let cp6_text = note_text(&note6);
    let initial = t.logs().await;

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "garbage",
            b"hello, watchtower".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "empty body",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "not UTF-8",
            [note6.as_bytes(), &[0xff]].concat(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "an add-checkpoint body instead of a note",
            add_body(0, &[], &note6),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "no signature lines",
            format!("{cp6_text}\n").into_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "bad signature line",
            format!("{cp6_text}\n— {origin} %%%\n").into_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "signed checkpoint without root",
            log.sign_text(&format!("{origin}\n6\n")).into_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "signed checkpoint whose root is not 32 bytes",
            log.sign_text(&format!("{origin}\n6\n{}\n", B64.encode([1u8; 16])))
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_checkpoint",
        ),
        (
            "unknown origin",
            stranger.sign(&history, 6).into_bytes(),
            StatusCode::NOT_FOUND,
            "unknown_log",
        ),
        (
            "same origin, another key",
            impostor.sign(&history, 6).into_bytes(),
            StatusCode::FORBIDDEN,
            "bad_signature",
        ),
        (
            "the log's key ID with a bad signature",
            tamper_signatures(&note6).into_bytes(),
            StatusCode::FORBIDDEN,
            "bad_signature",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = t.post("/v1/checkpoints", body).await;
        expect_error(r, status, code, what).await;
    }
    let r = t.post("/v1/checkpoints", vec![b'a'; MAX_BODY + 1]).await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large", "oversized").await;
    let r = t.get("/v1/checkpoints").await;
    expect_error(
        r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "GET /v1/checkpoints",
    )
    .await;
    assert_eq!(
        t.logs().await,
        initial,
        "rejected checkpoints changed nothing"
    );

    // A good one: new, then known (also with an extra signature from an unknown key, which
    // is ignored).
    let sighting = |s: &str| CheckpointStatus {
        origin: origin.clone(),
        size: 6,
        sighting: s.to_string(),
    };
    for (what, body, expected) in [
        ("first sighting", note6.clone(), "new"),
        ("second sighting", note6.clone(), "known"),
        (
            "with an unknown extra signature",
            format!(
                "{note6}{}",
                &stranger.sign_text(&cp6_text)[cp6_text.len() + 1..]
            ),
            "known",
        ),
    ] {
        let r = t.post("/v1/checkpoints", body.into_bytes()).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        let got: CheckpointStatus = r.json().await.expect("JSON");
        assert_eq!(got, sighting(expected), "{what}");
    }
    let status = t.log(&origin).await;
    assert_eq!(status.checkpoints_seen, 1);
    assert_eq!(status.cosigned_size, 0);
    assert!(!status.indicted);

    // Refusals after the sighting change nothing either.
    let r = t
        .post(
            "/v1/checkpoints",
            impostor.sign(&tree(6, "evil"), 6).into_bytes(),
        )
        .await;
    expect_error(
        r,
        StatusCode::FORBIDDEN,
        "bad_signature",
        "forged other root",
    )
    .await;
    assert_eq!(t.log(&origin).await, status);
    assert!(!t.indicted(&log.vkey()).await.indicted);
    assert!(!t.indicted(&impostor.vkey()).await.indicted);

    t.kill9_and_restart();
    assert_eq!(t.log(&origin).await, status);
    let r = t.post("/v1/checkpoints", note6.clone().into_bytes()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: CheckpointStatus = r.json().await.expect("JSON");
    assert_eq!(got, sighting("known"), "the sighting survived the restart");
}

// ---------------------------------------------------------------------------------------------
// POST /v1/fork-proofs, GET /v1/indicted
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn fork_proof_bad_input_is_refused_and_indicts_nobody() {
    let log = TestLog::new("example.com/log-f");
    let other = TestLog::new("example.com/other-f");
    let impostor = TestLog::new("example.com/log-f");
    let mut t = Tower::start(&[log.vkey(), other.vkey()]);
    let origin = log.origin();

    // A real split view: two differently rooted checkpoints of size 4, both signed by `log`.
    let (one, two) = (tree(4, "one"), tree(4, "two"));
    let a = log.sign(&one, 4);
    let b = log.sign(&two, 4);
    let proof = ForkProof::SplitView {
        a: a.clone(),
        b: b.clone(),
    }
    .to_bytes()
    .expect("encode");
    let proof_b64 = B64.encode(&proof);
    assert_eq!(
        ForkProof::from_bytes(&proof)
            .expect("decodes")
            .verify(&log.verifier())
            .expect("a real split view"),
        ForkKind::SplitView
    );
    // What an honest log can produce: one checkpoint twice, two sizes of one tree.
    let honest_same = ForkProof::SplitView {
        a: a.clone(),
        b: a.clone(),
    }
    .to_bytes()
    .expect("encode");
    let honest_sizes = ForkProof::SplitView {
        a: a.clone(),
        b: log.sign(&one, 3),
    }
    .to_bytes()
    .expect("encode");
    // The same fork, signed by the other log, claimed against `log`.
    let other_fork = ForkProof::SplitView {
        a: other.sign(&one, 4),
        b: other.sign(&two, 4),
    }
    .to_bytes()
    .expect("encode");
    let mut trailing = proof.clone();
    trailing.push(0);
    let truncated = &proof[..proof.len() - 10];

    let initial = t.logs().await;
    let json = |value: serde_json::Value| serde_json::to_vec(&value).expect("json");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "not JSON",
            b"this is not JSON".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "empty body",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "the raw proof instead of JSON",
            proof.clone(),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "a JSON array",
            json(serde_json::json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "missing proof",
            json(serde_json::json!({ "vkey": log.vkey() })),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "missing vkey",
            json(serde_json::json!({ "proof": proof_b64 })),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "unknown field",
            json(
                serde_json::json!({ "vkey": log.vkey(), "proof": proof_b64, "kind": "split_view" }),
            ),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "vkey of the wrong type",
            json(serde_json::json!({ "vkey": 7, "proof": proof_b64 })),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "proof as an array of bytes",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": proof })),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "bad vkey string",
            json(serde_json::json!({ "vkey": "not-a-key", "proof": proof_b64 })),
            StatusCode::BAD_REQUEST,
            "bad_vkey",
        ),
        (
            "empty vkey",
            json(serde_json::json!({ "vkey": "", "proof": proof_b64 })),
            StatusCode::BAD_REQUEST,
            "bad_vkey",
        ),
        (
            "vkey with a wrong key ID",
            json(serde_json::json!({
                "vkey": wrong_key_id(&log.vkey()),
                "proof": proof_b64,
            })),
            StatusCode::BAD_REQUEST,
            "bad_vkey",
        ),
        (
            "a cosigner key instead of a log key",
            json(serde_json::json!({ "vkey": t.cosigner_vkey(), "proof": proof_b64 })),
            StatusCode::BAD_REQUEST,
            "bad_vkey",
        ),
        (
            "proof not base64",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": "!!! not base64 !!!" })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "proof as URL-safe base64",
            json(serde_json::json!({
                "vkey": log.vkey(),
                "proof": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&proof),
            })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "empty proof",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": "" })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "garbage bytes",
            json(serde_json::json!({
                "vkey": log.vkey(),
                "proof": B64.encode(rand::random::<[u8; 32]>()),
            })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "a truncated real proof",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": B64.encode(truncated) })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "a real proof with a trailing byte",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": B64.encode(&trailing) })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "a real proof with an unknown version",
            json(serde_json::json!({
                "vkey": log.vkey(),
                "proof": B64.encode({
                    let mut p = proof.clone();
                    p[4] ^= 0x40;
                    p
                }),
            })),
            StatusCode::BAD_REQUEST,
            "bad_proof",
        ),
        (
            "a valid proof against another watched log's key",
            json(serde_json::json!({ "vkey": other.vkey(), "proof": proof_b64 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_evidence",
        ),
        (
            // Proofs are kept only for watched logs: anyone can make a key and fork it.
            "a valid proof against another key of the watched origin (not watched)",
            json(serde_json::json!({ "vkey": impostor.vkey(), "proof": proof_b64 })),
            StatusCode::NOT_FOUND,
            "unknown_log",
        ),
        (
            "another log's fork claimed against this log",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": B64.encode(&other_fork) })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_evidence",
        ),
        (
            "an honest log: one checkpoint twice",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": B64.encode(&honest_same) })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_evidence",
        ),
        (
            "an honest log: two sizes of one tree",
            json(serde_json::json!({ "vkey": log.vkey(), "proof": B64.encode(&honest_sizes) })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_evidence",
        ),
        (
            "a split view with a forged second signature",
            json(serde_json::json!({
                "vkey": log.vkey(),
                "proof": B64.encode(
                    ForkProof::SplitView { a: a.clone(), b: tamper_signatures(&b) }
                        .to_bytes()
                        .expect("encode"),
                ),
            })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_evidence",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = t.post("/v1/fork-proofs", body).await;
        expect_error(r, status, code, what).await;
    }
    // Oversized: the valid proof padded with whitespace past the limit.
    let mut padded = json(serde_json::json!({ "vkey": log.vkey(), "proof": proof_b64 }));
    padded.resize(MAX_BODY + 1, b' ');
    let r = t.post("/v1/fork-proofs", padded).await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large", "oversized").await;

    // Nobody is indicted, nothing changed.
    for vkey in [log.vkey(), other.vkey(), impostor.vkey()] {
        let status = t.indicted(&vkey).await;
        assert_eq!(
            status,
            IndictedStatus {
                vkey: vkey.clone(),
                watched: vkey != impostor.vkey(),
                indicted: false,
                proofs: Vec::new(),
            }
        );
    }
    assert_eq!(t.logs().await, initial);
    // The log still gets cosigned.
    let note2 = log.sign(&one, 2);
    t.expect_cosigned(add_body(0, &[], &note2), &note2, "cosign before the proof")
        .await;

    // The real proof with the right key indicts the log, once.
    let submission = serde_json::json!({ "vkey": log.vkey(), "proof": proof_b64 });
    let r = t.post_json("/v1/fork-proofs", &submission).await;
    assert_eq!(r.status(), StatusCode::OK);
    let accepted: ProofAccepted = r.json().await.expect("JSON");
    let expected = |new: bool| ProofAccepted {
        kind: "split_view".into(),
        new,
        indicted: true,
    };
    assert_eq!(accepted, expected(true));
    let again = t.post_json("/v1/fork-proofs", &submission).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<ProofAccepted>().await.expect("JSON"),
        expected(false)
    );
    // A non-canonical spelling of the same key (surrounding whitespace) is the same log.
    let spaced = serde_json::json!({ "vkey": format!("  {}\n", log.vkey()), "proof": proof_b64 });
    let r = t.post_json("/v1/fork-proofs", &spaced).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<ProofAccepted>().await.expect("JSON"),
        expected(false)
    );

    check_indicted(&t, &log, &proof).await;
    for vkey in [other.vkey(), impostor.vkey()] {
        assert!(!t.indicted(&vkey).await.indicted, "{vkey} is not indicted");
    }
    let logs = t.logs().await;
    let flags: Vec<(String, bool)> = logs
        .iter()
        .map(|l| (l.origin.clone(), l.indicted))
        .collect();
    assert_eq!(
        flags,
        vec![(origin.clone(), true), (other.origin(), false)],
        "{logs:?}"
    );
    // An indicted log is no longer cosigned.
    let note3 = log.sign(&one, 3);
    let cons = one.consistency_proof(2, 3).expect("proof");
    let r = t.post("/add-checkpoint", add_body(2, &cons, &note3)).await;
    expect_error(
        r,
        StatusCode::CONFLICT,
        "indicted",
        "cosign after the indictment",
    )
    .await;
    // (The refused checkpoint is still recorded as seen: every checkpoint the log signs is.)
    assert_eq!(t.log(&origin).await.cosigned_size, 2);
    let logs = t.logs().await;

    // ---- kill -9: the indictment survives, nobody else is indicted. ----
    t.kill9_and_restart();
    check_indicted(&t, &log, &proof).await;
    for vkey in [other.vkey(), impostor.vkey()] {
        assert!(!t.indicted(&vkey).await.indicted, "{vkey} after restart");
    }
    assert_eq!(t.logs().await, logs);
    let r = t.post_json("/v1/fork-proofs", &submission).await;
    assert_eq!(
        r.json::<ProofAccepted>().await.expect("JSON"),
        expected(false)
    );
}

/// `vkey` with its key ID changed (the key no longer matches its ID).
fn wrong_key_id(vkey: &str) -> String {
    let mut parts: Vec<String> = vkey.splitn(3, '+').map(String::from).collect();
    let id = u32::from_str_radix(&parts[1], 16).expect("hex key ID");
    parts[1] = format!("{:08x}", id ^ 1);
    parts.join("+")
}

/// `/v1/indicted` for `log`, asked with the key URL-encoded and with raw `+` (which arrive
/// as spaces): indicted, with `proof`, which decodes and verifies offline with the log's key.
async fn check_indicted(t: &Tower, log: &TestLog, proof: &[u8]) {
    let encoded = t.indicted(&log.vkey()).await;
    let raw = t.get(&format!("/v1/indicted?vkey={}", log.vkey())).await;
    assert_eq!(raw.status(), StatusCode::OK);
    let raw: IndictedStatus = raw.json().await.expect("JSON");
    assert_eq!(
        raw, encoded,
        "raw `+` and URL-encoded keys give the same answer"
    );
    assert!(encoded.indicted);
    assert_eq!(encoded.vkey, log.vkey());
    assert_eq!(encoded.proofs.len(), 1, "{encoded:?}");
    let held = &encoded.proofs[0];
    assert_eq!(held.kind, "split_view");
    assert!(held.received.abs_diff(unix_now()) < 300);
    let bytes = B64.decode(&held.proof).expect("the proof is base64");
    assert_eq!(bytes, proof);
    let kind = ForkProof::from_bytes(&bytes)
        .expect("the proof decodes")
        .verify(&log.verifier())
        .expect("the proof verifies offline with the log's key");
    assert_eq!(kind, ForkKind::SplitView);
}

// ---------------------------------------------------------------------------------------------
// Queries, routes, methods
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn queries_routes_and_methods_give_json_errors() {
    let log = TestLog::new("example.com/log-q");
    let t = Tower::start(&[log.vkey()]);
    let initial = t.logs().await;

    for (query, what) in [
        ("/v1/indicted", "no vkey"),
        ("/v1/indicted?key=x", "another parameter"),
        ("/v1/indicted?vkey=", "empty vkey"),
        ("/v1/indicted?vkey=not-a-key", "malformed vkey"),
        ("/v1/indicted?vkey=a+b+c", "three parts, not a key"),
    ] {
        let r = t.get(query).await;
        expect_error(r, StatusCode::BAD_REQUEST, "bad_vkey", what).await;
    }
    let r = t
        .http
        .get(format!("{}/v1/indicted", t.url()))
        .query(&[("vkey", wrong_key_id(&log.vkey()))])
        .send()
        .await
        .expect("GET");
    expect_error(r, StatusCode::BAD_REQUEST, "bad_vkey", "wrong key ID").await;
    let r = t
        .http
        .get(format!("{}/v1/indicted", t.url()))
        .query(&[("vkey", t.cosigner_vkey())])
        .send()
        .await
        .expect("GET");
    expect_error(r, StatusCode::BAD_REQUEST, "bad_vkey", "a cosigner key").await;

    let r = t.get("/v1/refused").await;
    expect_error(r, StatusCode::BAD_REQUEST, "bad_origin", "no origin").await;
    let r = t.get("/v1/refused?vkey=x").await;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "bad_origin",
        "another parameter",
    )
    .await;
    assert!(t.refused("example.com/nobody").await.is_empty());

    for path in [
        "/nope",
        "/",
        "/v1",
        "/v1/log",
        "/add-checkpoint/x",
        "/v1/indicted/x",
    ] {
        let r = t.get(path).await;
        expect_error(r, StatusCode::NOT_FOUND, "not_found", path).await;
    }
    let r = t.post("/nope", b"x".to_vec()).await;
    expect_error(r, StatusCode::NOT_FOUND, "not_found", "POST /nope").await;

    let wrong_methods = [
        (reqwest::Method::GET, "/add-checkpoint"),
        (reqwest::Method::PUT, "/add-checkpoint"),
        (reqwest::Method::GET, "/v1/fork-proofs"),
        (reqwest::Method::DELETE, "/v1/fork-proofs"),
        (reqwest::Method::POST, "/v1/logs"),
        (reqwest::Method::POST, "/v1/indicted"),
        (reqwest::Method::POST, "/v1/refused"),
        (reqwest::Method::POST, "/vkey"),
    ];
    for (method, path) in wrong_methods {
        let r = t
            .http
            .request(method.clone(), format!("{}{path}", t.url()))
            .send()
            .await
            .expect("request");
        expect_error(
            r,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} {path}"),
        )
        .await;
    }

    // What does work.
    let r = t.get("/vkey").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body").trim(), t.cosigner_vkey());
    assert_eq!(t.logs().await, initial);
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

/// Runs `atomicity --data-dir DIR ARGS..` that must exit by itself; kills it and fails the
/// test if it is still running after [`CLI_TIMEOUT`] (a command that should have failed and
/// serves instead).
fn run_cli(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ATOMICITY_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the atomicity binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLI_TIMEOUT) {
        Ok(out) => out.expect("wait for atomicity"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!(
                "`atomicity {}` did not exit within {CLI_TIMEOUT:?}",
                args.join(" ")
            );
        }
    }
}

fn assert_cli_failed(out: &Output, args: &[&str], needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr does not name {needle:?}: {stderr}"
        );
    }
}

fn watchtower_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["watchtower", "run", "--no-dht", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_bad_arguments_fail_clearly_and_start_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("example.com/log-cli");
    let impostor = TestLog::new("example.com/log-cli");
    let vkey = log.vkey();

    // A bad key on a fresh directory.
    let fresh = root.path().join("fresh");
    let bad_keys: Vec<(String, Vec<String>)> = vec![
        ("not-a-key".into(), vec!["not-a-key".into()]),
        (wrong_key_id(&vkey), vec![wrong_key_id(&vkey)]),
        ("example.com/x+0000000".into(), vec!["example.com/x".into()]),
    ];
    for (bad, needles) in &bad_keys {
        let args = watchtower_run(&["--log", bad]);
        let out = run_cli(&fresh, &args);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_cli_failed(&out, &args, &needles);
        assert!(
            !fresh.join("watchtower.url").exists(),
            "{bad}: watchtower.url written"
        );
    }
    // One good and one bad key: nothing starts either.
    let args = watchtower_run(&["--log", &vkey, "--log", "not-a-key"]);
    let out = run_cli(&fresh, &args);
    assert_cli_failed(&out, &args, &["not-a-key"]);
    assert!(!fresh.join("watchtower.url").exists());

    // --poll-seconds 0 fails before touching the directory.
    let never = root.path().join("never");
    let args = watchtower_run(&["--log", &vkey, "--poll-seconds", "0"]);
    let out = run_cli(&never, &args);
    assert_cli_failed(&out, &args, &["--poll-seconds", "at least 1"]);
    assert!(
        !never.exists(),
        "--poll-seconds 0 created the data directory"
    );
    for (bad, needle) in [
        ("-1", "'-1'"),
        ("x", "--poll-seconds"),
        ("", "--poll-seconds"),
    ] {
        let args = watchtower_run(&["--log", &vkey, "--poll-seconds", bad]);
        let out = run_cli(&never, &args);
        assert_cli_failed(&out, &args, &[needle]);
    }
    assert!(!never.exists());
    // An invalid cosigner name.
    let args = watchtower_run(&["--log", &vkey, "--name", "two words"]);
    let out = run_cli(&root.path().join("named"), &args);
    assert_cli_failed(&out, &args, &["two words"]);
    assert!(!root.path().join("named/watchtower.url").exists());

    // A watchtower that ran before: bad arguments change nothing.
    let dir = root.path().join("tower");
    let mut first = tokio::task::block_in_place(|| {
        ServiceProcess::start(
            Path::new(BIN),
            &dir,
            "watchtower",
            &tower_args(std::slice::from_ref(&vkey)),
        )
    })
    .expect("watchtower starts");
    let cosigner = first.read("watchtower.vkey").expect("vkey");
    let first_url = first.url.clone();
    let http = reqwest::Client::new();
    let logs_of = |url: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/v1/logs"))
                .send()
                .await
                .expect("GET /v1/logs")
                .json::<Vec<LogStatus>>()
                .await
                .expect("JSON")
        }
    };
    let before = logs_of(first_url.clone()).await;
    assert_eq!(before.len(), 1);

    // A second watchtower on the same directory fails and leaves the first alone.
    let args = watchtower_run(&["--log", &vkey]);
    let out = run_cli(&dir, &args);
    assert_cli_failed(&out, &args, &["already running"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("watchtower.url"))
            .expect("the first watchtower's url file is still there")
            .trim(),
        first_url
    );
    assert_eq!(logs_of(first_url.clone()).await, before);

    // Stopped: bad arguments fail and leave the state as it was.
    assert!(
        first.stop().is_some_and(|s| s.success()),
        "SIGTERM stops the watchtower cleanly"
    );
    let impostor_vkey = impostor.vkey();
    let bad_runs: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            watchtower_run(&["--log", &vkey, "--log", "not-a-key"]),
            vec!["not-a-key"],
        ),
        (
            watchtower_run(&["--log", &impostor_vkey]),
            vec!["example.com/log-cli", "already watched"],
        ),
        (
            watchtower_run(&["--name", "another-name"]),
            vec!["another-name"],
        ),
    ];
    for (args, needles) in &bad_runs {
        let out = run_cli(&dir, args);
        assert_cli_failed(&out, args, needles);
        assert!(!dir.join("watchtower.url").exists(), "{args:?}");
    }
    tokio::task::block_in_place(|| first.restart()).expect("restarts");
    assert_eq!(logs_of(first.url.clone()).await, before);
    assert_eq!(first.read("watchtower.vkey").expect("vkey"), cosigner);
}

/// A `--log VKEY,URL` whose URL cannot be fetched from should be refused at start, like a
/// bad key, instead of being stored and failing on every poll.
#[tokio::test(flavor = "multi_thread")]
async fn cli_bad_log_url_fails_clearly() {
    let root = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new("example.com/log-url");
    let mut accepted = Vec::new();
    for (i, url) in ["", "not a url", "ftp://example.com/log", "http://"]
        .into_iter()
        .enumerate()
    {
        let dir = root.path().join(format!("d{i}"));
        let arg = format!("{},{url}", log.vkey());
        let args = watchtower_run(&["--log", &arg]);
        let out = run_cli_until_started(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("--log") {
            accepted.push(url);
        }
    }
    assert!(accepted.is_empty(), "bad URLs accepted: {accepted:?}");
}

/// Like [`run_cli`], but a process that writes `DIR/watchtower.url` (it started) is killed at
/// once and reported as a success.
fn run_cli_until_started(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ATOMICITY_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the atomicity binary");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if dir.join("watchtower.url").exists() || started.elapsed() > CLI_TIMEOUT {
            let _ = child.kill();
            let mut out = child.wait_with_output().expect("output");
            // Report it as "it ran": a success status with what it printed.
            out.status = success_status();
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn success_status() -> std::process::ExitStatus {
    Command::new("true").status().expect("run true")
}
