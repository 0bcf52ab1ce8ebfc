//! Bad input against a real `atomicity node run` process.
//!
//! Each test starts its own node N (own temporary data directory) and plays a fake peer F
//! (`Keypair::from_secret_key(&[9; 32])`) registered at N with a USD line (N accepts 100 from F,
//! issues 0). It then sends forged, malformed, stale and rule-breaking input through the peer
//! API, bad requests through the local API, and bad arguments through the CLI, and checks the
//! precise error code of every answer *and* that nothing changed (balance, history and peers
//! read back identical).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atomicity_cli::harness::NodeProcess;
use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, Envelope, IouState, Keypair, LineId,
    MAX_ENVELOPE_LEN, Message, PublicKey, Release, ReleaseReason, Reply, ResolvedSet, Signed,
    SignedBody, Total, WitnessProof, decode_replies, envelope_batches, parse_key,
    signed::signing_input,
};
use atomicity_node::api::{BalanceRow, ErrorBody, HistoryRow, PeerRow, SetLineRequest};
use atomicity_node::datadir::{API_TOKEN_FILE, API_URL_FILE, DataDir};
use atomicity_node::unix_now;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_atomicity");
/// The largest body either API takes: the protocol's largest envelope.
const MAX_BODY: usize = MAX_ENVELOPE_LEN;
/// F's USD line toward N: N accepts up to 100.00 from F.
const ACCEPT: &str = "100";

// ---------------------------------------------------------------------------------------------
// Fixture: one real node N, one fake peer F.
// ---------------------------------------------------------------------------------------------

/// One node process and the fake peer that talks to it. Field order matters: the node is
/// stopped before its directory is deleted.
struct Fixture {
    node: NodeProcess,
    dir: TempDir,
    /// N's key.
    n: PublicKey,
    /// The fake peer F.
    f: Keypair,
    http: reqwest::Client,
    api_url: String,
    token: String,
}

/// Everything a user can see of N's state.
#[derive(Debug, PartialEq, Eq)]
struct View {
    balance: Vec<BalanceRow>,
    history: Vec<HistoryRow>,
    peers: Vec<PeerRow>,
}

fn other_key(seed: u8) -> Keypair {
    Keypair::from_secret_key(&[seed; 32])
}

fn usd() -> Asset {
    "USD".parse().expect("USD")
}

fn eur() -> Asset {
    "EUR".parse().expect("EUR")
}

/// `major` whole units of a 2-decimal asset.
fn units(major: u64) -> Amount {
    Amount::from_minor(major * 100)
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let node = tokio::task::spawn_blocking(move || {
        NodeProcess::start(Path::new(BIN), &path, "127.0.0.1:0")
    })
    .await
    .expect("join")
    .expect("start node");
    let n = parse_key(&node.key).expect("N's key");
    let f = other_key(9);
    let fz = f.public_key().to_z32();
    node.api
        .add_peer(&fz, Some("http://127.0.0.1:9"))
        .await
        .expect("add F");
    node.api
        .set_line(&SetLineRequest {
            peer: fz,
            asset: "USD".into(),
            accept: Some(ACCEPT.into()),
            issue: Some("0".into()),
            fee_base: None,
            fee_ppm: None,
        })
        .await
        .expect("line with F");
    let data = DataDir::new(dir.path());
    let api_url = data.read_text(API_URL_FILE).expect("api.url");
    let token = data.read_text(API_TOKEN_FILE).expect("api.token");
    Fixture {
        node,
        dir,
        n,
        f,
        // No connection reuse: the node closes a connection after refusing an oversized body,
        // and a later request must not fail on it for reasons unrelated to what it tests.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        api_url,
        token,
    }
}

impl Fixture {
    fn fz(&self) -> String {
        self.f.public_key().to_z32()
    }

    async fn view(&self) -> View {
        View {
            balance: self.node.api.balance().await.expect("balance"),
            history: self.node.api.history(1000).await.expect("history"),
            peers: self.node.api.peers().await.expect("peers"),
        }
    }

    /// N's net position toward F in `asset` (positive: F owes N).
    async fn net(&self, asset: &str) -> Option<String> {
        let fz = self.fz();
        self.node
            .api
            .balance()
            .await
            .expect("balance")
            .into_iter()
            .find(|r| r.peer == fz && r.asset == asset)
            .map(|r| r.net)
    }

    // --- peer API ----------------------------------------------------------------------------

    fn line(&self, asset: Asset) -> LineId {
        LineId {
            issuer: self.f.public_key(),
            holder: self.n.clone(),
            asset,
        }
    }

    /// A conditional IOU F issues to N.
    fn offer_in(&self, asset: Asset, id: u64, amount: Amount, expires_at: u64) -> ConditionalIou {
        ConditionalIou {
            line: self.line(asset),
            id,
            amount,
            condition: Condition::HolderAccepts,
            payment_id: payment_id(id, amount),
            expires_at,
            memo: format!("offer {id}"),
        }
    }

    /// A signed USD offer from F, valid for ten minutes.
    fn offer(&self, id: u64, amount: Amount) -> Signed<ConditionalIou> {
        Signed::sign(self.offer_in(usd(), id, amount, unix_now() + 600), &self.f)
    }

    /// A signed USD state from F (its total given as an amount: the tests stay far below 2^64).
    fn state(&self, seq: u64, total: Amount, resolved: &[u64]) -> Signed<IouState> {
        Signed::sign(
            IouState {
                line: self.line(usd()),
                seq,
                total: Total::from(total),
                resolved: resolved_set(resolved),
            },
            &self.f,
        )
    }

    /// An envelope from F to N, sent now.
    fn envelope(&self, messages: Vec<Message>) -> Vec<u8> {
        seal(&self.f, &self.n, unix_now(), messages)
    }

    /// A POST of `body` to N's envelope endpoint.
    fn envelope_request(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/peer/v1/envelope", self.node.node_url))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
    }

    /// Posts a body that may be over the limit. The node may answer 413 and close the
    /// connection before the upload ends: the client sees the status, or a reset (`None`).
    async fn post_oversized(&self, body: Vec<u8>) -> Option<StatusCode> {
        let sent = self.envelope_request(body).send().await;
        sent.ok().map(|response| response.status())
    }

    async fn post_envelope(&self, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let response = self
            .envelope_request(body)
            .send()
            .await
            .expect("POST envelope");
        let status = response.status();
        let body = response.bytes().await.expect("body").to_vec();
        (status, body)
    }

    /// Sends messages from F in one valid envelope and returns N's replies.
    async fn send(&self, messages: Vec<Message>) -> Vec<Reply> {
        let count = messages.len();
        let (status, body) = self.post_envelope(self.envelope(messages)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "valid envelope refused: {}",
            String::from_utf8_lossy(&body)
        );
        let replies = decode_replies(&body).expect("replies decode");
        assert_eq!(replies.len(), count, "one reply per message");
        replies
    }

    async fn send_one(&self, message: Message) -> Reply {
        self.send(vec![message]).await.remove(0)
    }

    /// Posts raw bytes and asserts the envelope-level error, and that nothing changed.
    async fn expect_refused(&self, body: Vec<u8>, status: StatusCode, code: &str, what: &str) {
        let before = self.view().await;
        let (got_status, got) = self.post_envelope(body).await;
        assert_eq!(
            got_status,
            status,
            "{what}: body {}",
            String::from_utf8_lossy(&got)
        );
        let error: ErrorBody = serde_json::from_slice(&got)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {got:?}"));
        assert_eq!(error.code, code, "{what}: {}", error.error);
        assert!(!error.error.is_empty(), "{what}: empty error text");
        assert_eq!(self.view().await, before, "{what}: state changed");
    }

    /// Sends one message and asserts it is rejected with `code`, and that nothing changed.
    async fn expect_rejected(&self, message: Message, code: u16, what: &str) {
        let before = self.view().await;
        match self.send_one(message).await {
            Reply::Rejected { code: got, text } => {
                assert_eq!(got, code, "{what}: rejected with {got} ({text})");
                assert!(!text.is_empty(), "{what}: empty rejection text");
            }
            other => panic!("{what}: expected rejection {code}, got {other:?}"),
        }
        assert_eq!(self.view().await, before, "{what}: state changed");
    }

    /// Offers and asserts N accepts, with an acceptance N really signed for exactly this IOU.
    async fn expect_accepted(&self, offer: &Signed<ConditionalIou>) -> Signed<Acceptance> {
        match self.send_one(Message::Offer(offer.clone())).await {
            Reply::Accepted(a) => {
                assert_signed_by_n(&a, &self.n);
                assert_eq!(a.body().line, offer.body().line);
                assert_eq!(a.body().id, offer.body().id);
                assert_eq!(a.body().iou_hash, offer.hash());
                a
            }
            other => panic!("offer {} not accepted: {other:?}", offer.body().id),
        }
    }

    /// Offers, asserts N releases it for `reason`, and that nothing the user sees changed.
    async fn expect_released(
        &self,
        offer: &Signed<ConditionalIou>,
        reason: ReleaseReason,
    ) -> Signed<Release> {
        let before = self.view().await;
        let release = match self.send_one(Message::Offer(offer.clone())).await {
            Reply::Released(r) => r,
            other => panic!("offer {} not released: {other:?}", offer.body().id),
        };
        assert_eq!(release.body().reason, reason);
        assert_eq!(release.body().id, offer.body().id);
        assert_eq!(release.body().iou_hash, offer.hash());
        assert_eq!(release.body().line, offer.body().line);
        assert_signed_by_n(&release, &self.n);
        assert_eq!(
            self.view().await,
            before,
            "a released offer changed the state"
        );
        release
    }

    /// Like [`Self::expect_released`] for an offer in an asset with no line: the only change is
    /// a new line in that asset with zero limits, nothing owed and nothing pending.
    async fn expect_released_opening_line(
        &self,
        offer: &Signed<ConditionalIou>,
        reason: ReleaseReason,
    ) -> Signed<Release> {
        let before = self.view().await;
        let release = match self.send_one(Message::Offer(offer.clone())).await {
            Reply::Released(r) => r,
            other => panic!("offer {} not released: {other:?}", offer.body().id),
        };
        assert_eq!(release.body().reason, reason);
        assert_eq!(release.body().iou_hash, offer.hash());
        assert_signed_by_n(&release, &self.n);
        let after = self.view().await;
        assert_eq!(after.history, before.history);
        assert_eq!(after.peers, before.peers);
        let asset = offer.body().line.asset.to_string();
        let mut rows = after.balance.clone();
        let opened = rows
            .iter()
            .position(|r| r.asset == asset)
            .map(|i| rows.remove(i))
            .expect("a line opened for the release");
        assert_eq!(rows, before.balance, "only the new line may appear");
        let zero = |s: &str| s.chars().all(|c| c == '0' || c == '.');
        for value in [
            &opened.net,
            &opened.accept,
            &opened.issue,
            &opened.pending_out,
        ] {
            assert!(zero(value), "{opened:?}");
        }
        // Resent: the same, stored release.
        assert_eq!(
            self.send_one(Message::Offer(offer.clone())).await,
            Reply::Released(release.clone())
        );
        release
    }

    // --- local API ---------------------------------------------------------------------------

    /// A raw local API request: `token` None sends no Authorization header.
    async fn local(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = self.http.request(method, format!("{}{path}", self.api_url));
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.expect("local API request");
        let status = response.status();
        let body = response.bytes().await.expect("body").to_vec();
        (status, body)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Sends an authorised request and asserts the error status and code, and no change.
    async fn expect_api_error(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        status: StatusCode,
        code: &str,
    ) {
        let auth = self.bearer();
        self.expect_api_error_as(method, path, Some(&auth), body, status, code)
            .await;
    }

    async fn expect_api_error_as(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
        status: StatusCode,
        code: &str,
    ) {
        let what = format!(
            "{method} {path} auth={auth:?} body={:?}",
            body.as_deref().map(String::from_utf8_lossy)
        );
        let before = self.view().await;
        let (got_status, got) = self.local(method, path, auth, body).await;
        assert_eq!(
            got_status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&got)
        );
        let error: ErrorBody = serde_json::from_slice(&got)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {got:?}"));
        assert_eq!(error.code, code, "{what}: {}", error.error);
        assert!(!error.error.is_empty(), "{what}: empty error text");
        assert_eq!(self.view().await, before, "{what}: state changed");
    }

    // --- CLI ---------------------------------------------------------------------------------

    fn cli(&self, args: &[&str]) -> Output {
        cli(self.dir.path(), args)
    }

    /// Runs the CLI and asserts it fails with every `needle` on stderr and changes nothing.
    async fn expect_cli_error(&self, args: &[&str], needles: &[&str]) {
        let before = self.view().await;
        let out = self.cli(args);
        assert_cli_failed(&out, args, needles);
        assert_eq!(self.view().await, before, "{args:?}: state changed");
    }
}

fn payment_id(id: u64, amount: Amount) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[..8].copy_from_slice(&id.to_be_bytes());
    p[8..16].copy_from_slice(&amount.minor().to_be_bytes());
    p[31] = 0xf0;
    p
}

fn resolved_set(ids: &[u64]) -> ResolvedSet {
    let mut set = ResolvedSet::new();
    for id in ids {
        set.insert(*id);
    }
    set
}

fn seal(from: &Keypair, to: &PublicKey, sent_at: u64, messages: Vec<Message>) -> Vec<u8> {
    Signed::sign(
        Envelope {
            from: from.public_key(),
            to: to.clone(),
            sent_at,
            messages,
        },
        from,
    )
    .to_bytes()
}

/// Checks `object`'s signature against N's key directly (not only against the key the object
/// names), so an object signed by anybody else fails.
fn assert_signed_by_n<T: SignedBody>(object: &Signed<T>, n: &PublicKey) {
    assert_eq!(object.body().signer(), n, "signer named in the object");
    object.verify().expect("signature verifies");
    if object.is_batched() {
        // Checked above against the key it names, which is N's: nothing more to check apart.
        return;
    }
    let bytes = object.to_bytes();
    let unsigned = &bytes[..bytes.len() - atomicity_core::signed::SIGNATURE_LEN];
    let signature = ed25519_dalek::Signature::from_bytes(object.signature().expect("signed"));
    n.verifying_key()
        .verify_strict(&signing_input::<T>(unsigned), &signature)
        .expect("signed by N's key");
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ATOMICITY_DIR")
        .output()
        .expect("run the atomicity binary")
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
    // The error goes to stderr, never only to stdout.
    assert!(!stderr.trim().is_empty(), "{args:?}: nothing on stderr");
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(dir).expect("prefix").to_path_buf());
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Peer API: envelopes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn peer_envelope_with_forged_signature_is_bad_signature() {
    let fx = fixture().await;
    let offer = fx.offer(0, units(10));
    let valid = fx.envelope(vec![Message::Offer(offer.clone())]);
    let sig_start = valid.len() - 64;
    // One flipped bit in each byte of the signature.
    for (i, bit) in (sig_start..valid.len()).zip((0..8).cycle()) {
        let mut forged = valid.clone();
        forged[i] ^= 1 << bit;
        fx.expect_refused(
            forged,
            StatusCode::BAD_REQUEST,
            "bad_signature",
            &format!("signature byte {} flipped", i - sig_start),
        )
        .await;
    }
    // A flipped bit in the signed part: sent_at, and the amount inside the offer.
    let mut tampered = valid.clone();
    tampered[73] ^= 1;
    fx.expect_refused(
        tampered,
        StatusCode::BAD_REQUEST,
        "bad_signature",
        "sent_at changed",
    )
    .await;
    let amount_at = find(&valid, &units(10).minor().to_be_bytes()).expect("amount in envelope");
    let mut tampered = valid.clone();
    tampered[amount_at + 6] ^= 0x10;
    fx.expect_refused(
        tampered,
        StatusCode::BAD_REQUEST,
        "bad_signature",
        "amount changed",
    )
    .await;
    // An all-zero signature.
    let mut zeroed = valid.clone();
    zeroed[sig_start..].fill(0);
    fx.expect_refused(
        zeroed,
        StatusCode::BAD_REQUEST,
        "bad_signature",
        "zero signature",
    )
    .await;
    // Signed by another key, claiming to be from F.
    let mallory = other_key(10);
    let impostor = Signed::sign(
        Envelope {
            from: fx.f.public_key(),
            to: fx.n.clone(),
            sent_at: unix_now(),
            messages: vec![Message::Offer(offer.clone())],
        },
        &mallory,
    )
    .to_bytes();
    fx.expect_refused(
        impostor,
        StatusCode::BAD_REQUEST,
        "bad_signature",
        "signed by another key",
    )
    .await;
    // Control: the untouched envelope is taken.
    assert_eq!(fx.net("USD").await.as_deref(), Some("0.00"));
    fx.expect_accepted(&offer).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("10.00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_message_signed_by_another_key_is_rejected_with_code_1() {
    let fx = fixture().await;
    let mallory = other_key(10);
    // Offer on F's line, but signed by Mallory.
    let offer = Signed::sign(fx.offer_in(usd(), 0, units(10), unix_now() + 600), &mallory);
    fx.expect_rejected(Message::Offer(offer), 1, "offer signed by another key")
        .await;
    // State on F's line, signed by Mallory.
    let state = Signed::sign(
        IouState {
            line: fx.line(usd()),
            seq: 1,
            total: Total::ZERO,
            resolved: ResolvedSet::new(),
        },
        &mallory,
    );
    fx.expect_rejected(Message::State(state), 1, "state signed by another key")
        .await;
    // An offer with a corrupted signature (valid envelope around it).
    let good = fx.offer(0, units(10));
    let mut bytes = good.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let corrupted = Signed::<ConditionalIou>::decode(&bytes).expect("still parses");
    fx.expect_rejected(
        Message::Offer(corrupted),
        1,
        "offer with a flipped signature bit",
    )
    .await;
    // Mallory's own valid offer to N, relayed inside F's envelope: not F's line.
    let relayed = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: mallory.public_key(),
                holder: fx.n.clone(),
                asset: usd(),
            },
            ..fx.offer_in(usd(), 0, units(10), unix_now() + 600)
        },
        &mallory,
    );
    fx.expect_rejected(Message::Offer(relayed), 10, "offer issued by somebody else")
        .await;
    // F's offer on a line to somebody else.
    let misdirected = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: fx.f.public_key(),
                holder: mallory.public_key(),
                asset: usd(),
            },
            ..fx.offer_in(usd(), 0, units(10), unix_now() + 600)
        },
        &fx.f,
    );
    fx.expect_rejected(Message::Offer(misdirected), 10, "offer to another holder")
        .await;
    // Control: the properly signed offer is accepted.
    fx.expect_accepted(&good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_envelope_to_another_recipient_is_refused() {
    let fx = fixture().await;
    let offer = Message::Offer(fx.offer(0, units(10)));
    for (to, what) in [
        (other_key(10).public_key(), "addressed to a third key"),
        (fx.f.public_key(), "addressed to the sender itself"),
    ] {
        let body = seal(&fx.f, &to, unix_now(), vec![offer.clone()]);
        fx.expect_refused(body, StatusCode::BAD_REQUEST, "wrong_recipient", what)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_stale_envelope_is_refused() {
    let fx = fixture().await;
    let offer = Message::Offer(fx.offer(0, units(10)));
    let now = unix_now();
    for (sent_at, what) in [
        (now - 3600, "an hour old"),
        (now - 600, "ten minutes old"),
        (now + 3600, "an hour in the future"),
        (0, "sent at the epoch"),
        (u64::MAX, "sent at u64::MAX"),
    ] {
        let body = seal(&fx.f, &fx.n, sent_at, vec![offer.clone()]);
        fx.expect_refused(body, StatusCode::BAD_REQUEST, "stale", what)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_envelope_from_unknown_key_is_forbidden() {
    let fx = fixture().await;
    let stranger = other_key(11);
    // A perfectly valid offer from the stranger on its own line.
    let offer = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: stranger.public_key(),
                holder: fx.n.clone(),
                asset: usd(),
            },
            ..fx.offer_in(usd(), 0, units(1), unix_now() + 600)
        },
        &stranger,
    );
    let body = seal(&stranger, &fx.n, unix_now(), vec![Message::Offer(offer)]);
    fx.expect_refused(
        body,
        StatusCode::FORBIDDEN,
        "unknown_peer",
        "unknown sender",
    )
    .await;
    // The stranger relaying F's (validly signed) offer is still a stranger.
    let body = seal(
        &stranger,
        &fx.n,
        unix_now(),
        vec![Message::Offer(fx.offer(0, units(1)))],
    );
    fx.expect_refused(
        body,
        StatusCode::FORBIDDEN,
        "unknown_peer",
        "stranger relaying F",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_malformed_bodies_are_refused() {
    let fx = fixture().await;
    let offer = fx.offer(0, units(10));
    let valid = fx.envelope(vec![Message::Offer(offer.clone())]);
    let bad = StatusCode::BAD_REQUEST;

    fx.expect_refused(Vec::new(), bad, "malformed", "empty body")
        .await;
    fx.expect_refused(b"hello, node".to_vec(), bad, "malformed", "text")
        .await;
    fx.expect_refused(vec![0xff; 200], bad, "malformed", "0xff bytes")
        .await;
    fx.expect_refused(vec![0; 500], bad, "malformed", "zero bytes")
        .await;
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fx.expect_refused(noise, bad, "malformed", "pseudo-random bytes")
        .await;

    // Every proper prefix of a valid envelope.
    for len in 0..valid.len() {
        fx.expect_refused(
            valid[..len].to_vec(),
            bad,
            "malformed",
            &format!("prefix of {len}/{} bytes", valid.len()),
        )
        .await;
    }
    // A valid envelope followed by extra bytes.
    for extra in [1usize, 2, 32, 63, 64, 65, 200] {
        let mut body = valid.clone();
        body.extend((0..extra).map(|i| i as u8));
        fx.expect_refused(body, bad, "malformed", &format!("{extra} trailing bytes"))
            .await;
    }
    // Two valid envelopes back to back.
    let mut twice = valid.clone();
    twice.extend_from_slice(&valid);
    fx.expect_refused(twice, bad, "malformed", "two envelopes")
        .await;

    // Bad header and structure bytes (rejected before the signature is checked).
    let patched = |at: usize, bytes: &[u8]| {
        let mut body = valid.clone();
        body[at..at + bytes.len()].copy_from_slice(bytes);
        body
    };
    for (body, what) in [
        (patched(0, &[2]), "version 2"),
        (patched(0, &[0]), "version 0"),
        (patched(1, &[1]), "kind of an IOU state"),
        (patched(1, &[99]), "unknown kind"),
        (patched(74, &0u32.to_be_bytes()), "message count 0"),
        (
            patched(74, &2u32.to_be_bytes()),
            "message count 2, one message",
        ),
        (patched(74, &1025u32.to_be_bytes()), "message count 1025"),
        (
            patched(74, &u32::MAX.to_be_bytes()),
            "message count u32::MAX",
        ),
        (patched(78, &[9]), "unknown message tag"),
        (
            patched(79, &u32::MAX.to_be_bytes()),
            "object length u32::MAX",
        ),
        (patched(79, &0u32.to_be_bytes()), "object length 0"),
    ] {
        fx.expect_refused(body, bad, "malformed", what).await;
    }
    // A correctly signed envelope with no messages.
    let empty = seal(&fx.f, &fx.n, unix_now(), Vec::new());
    fx.expect_refused(empty, bad, "malformed", "signed envelope without messages")
        .await;
    // A correctly signed envelope whose offer has an amount of zero (not canonical).
    let zero = Signed::sign(fx.offer_in(usd(), 0, Amount::ZERO, unix_now() + 600), &fx.f);
    let body = fx.envelope(vec![Message::Offer(zero)]);
    fx.expect_refused(body, bad, "malformed", "offer of zero")
        .await;
    // A correctly signed envelope whose message tag does not match its object.
    let mut mislabeled = fx.envelope(vec![Message::Offer(offer.clone())]);
    mislabeled[78] = 2; // "state", but the object is an offer
    fx.expect_refused(mislabeled, bad, "malformed", "offer labelled as a state")
        .await;

    // Control: the untouched envelope is taken.
    fx.expect_accepted(&offer).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("10.00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_oversized_body_is_refused() {
    let fx = fixture().await;
    let before = fx.view().await;
    for (size, what) in [(MAX_BODY + 1, "1 MiB + 1"), (4 * MAX_BODY, "4 MiB")] {
        // A 413 or a reset: both mean "refused".
        if let Some(status) = fx.post_oversized(vec![0x01; size]).await {
            assert!(
                status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::BAD_REQUEST,
                "{what}: {status}"
            );
        }
    }
    // A body just under the limit is read and refused as malformed, not as too large.
    fx.expect_refused(
        vec![0x01; MAX_BODY],
        StatusCode::BAD_REQUEST,
        "malformed",
        "1 MiB",
    )
    .await;
    assert_eq!(fx.view().await, before);
    // The node still works.
    fx.expect_accepted(&fx.offer(0, units(1))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_takes_each_envelope_a_sender_splits_off() {
    // A thousand proofs (about 1.1 KB each, as a hop queues them when that many payments
    // complete at once) do not fit one envelope; the sender's batches each do, the first one
    // close to the limit.
    let fx = fixture().await;
    let proofs: Vec<Message> = (0..1000u32)
        .map(|i| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            Message::Proof {
                hash,
                proof: WitnessProof {
                    p: [7; 32],
                    log: "a witness log".into(),
                    bundle: vec![0xab; 1000],
                },
            }
        })
        .collect();
    let whole = fx.envelope(proofs.clone());
    assert!(whole.len() > MAX_BODY);
    let before = fx.view().await;
    if let Some(status) = fx.post_oversized(whole).await {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let batches = envelope_batches(&proofs);
    assert_eq!(batches.len(), 2);
    assert!(fx.envelope(batches[0].to_vec()).len() > MAX_BODY - 2_000);
    for batch in batches {
        // Proofs for hashes N never issued on: each rejected, the envelope taken.
        for reply in fx.send(batch.to_vec()).await {
            assert!(matches!(reply, Reply::Rejected { .. }), "{reply:?}");
        }
    }
    assert_eq!(fx.view().await, before);
}

// ---------------------------------------------------------------------------------------------
// Peer API: credit rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn credit_offer_is_accepted_once_and_conflicts_are_rejected() {
    let fx = fixture().await;
    let offer = fx.offer(0, units(10));
    let acceptance = fx.expect_accepted(&offer).await;
    let after_first = fx.view().await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("10.00"));
    let received: Vec<&HistoryRow> = after_first.history.iter().collect();
    assert_eq!(
        received.len(),
        1,
        "one payment in the history: {received:?}"
    );
    assert_eq!(received[0].direction, "received");
    assert_eq!(received[0].amount, "10.00");
    assert_eq!(received[0].status, "completed");
    assert_eq!(received[0].peer, fx.fz());
    assert_eq!(received[0].payment_id, hex::encode(offer.body().payment_id));

    // The same offer again, alone and twice in one envelope: the same acceptance, counted once.
    let again = fx.expect_accepted(&offer).await;
    assert_eq!(
        again, acceptance,
        "a resent offer gets the stored acceptance"
    );
    assert_eq!(again.to_bytes(), acceptance.to_bytes());
    let replies = fx
        .send(vec![
            Message::Offer(offer.clone()),
            Message::Offer(offer.clone()),
        ])
        .await;
    for reply in replies {
        assert_eq!(reply, Reply::Accepted(acceptance.clone()));
    }
    assert_eq!(
        fx.view().await,
        after_first,
        "a resent offer changed the state"
    );
    assert_eq!(fx.net("USD").await.as_deref(), Some("10.00"));

    // A different offer with the same id: conflicting (code 30).
    for (conflict, what) in [
        (fx.offer(0, units(11)), "another amount"),
        (
            Signed::sign(
                ConditionalIou {
                    memo: "something else".into(),
                    ..offer.body().clone()
                },
                &fx.f,
            ),
            "another memo",
        ),
        (
            Signed::sign(
                ConditionalIou {
                    expires_at: offer.body().expires_at + 1,
                    ..offer.body().clone()
                },
                &fx.f,
            ),
            "another expiry",
        ),
    ] {
        fx.expect_rejected(Message::Offer(conflict), 30, what).await;
    }
    assert_eq!(fx.net("USD").await.as_deref(), Some("10.00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn credit_state_rules_are_enforced() {
    let fx = fixture().await;
    fx.expect_accepted(&fx.offer(0, units(10))).await;

    // Seq 0 is the empty state nobody signs: refused as stale (20), not taken as a state.
    fx.expect_rejected(Message::State(fx.state(0, Amount::ZERO, &[])), 20, "seq 0")
        .await;

    // Seq 1 counts the 10 and resolves id 0.
    let s1 = fx.state(1, units(10), &[0]);
    assert_eq!(
        fx.send_one(Message::State(s1.clone())).await,
        Reply::StateAck { seq: 1 }
    );
    let after_s1 = fx.view().await;
    let row = after_s1
        .balance
        .iter()
        .find(|r| r.asset == "USD")
        .expect("USD row");
    assert_eq!(
        (row.net.as_str(), row.in_seq, row.in_total.as_str()),
        ("10.00", 1, "10.00")
    );

    // The same state again: acknowledged, nothing changes.
    assert_eq!(
        fx.send_one(Message::State(s1.clone())).await,
        Reply::StateAck { seq: 1 }
    );
    assert_eq!(fx.view().await, after_s1);

    // A different state with the held seq: equivocation (21).
    fx.expect_rejected(
        Message::State(fx.state(1, units(11), &[0])),
        21,
        "other seq 1 total",
    )
    .await;
    fx.expect_rejected(
        Message::State(fx.state(1, units(10), &[0, 5])),
        21,
        "other seq 1 set",
    )
    .await;
    // The resolved offer sent again: already resolved (32).
    fx.expect_rejected(
        Message::Offer(fx.offer(0, units(10))),
        32,
        "offer 0 after seq 1",
    )
    .await;

    // A second payment, merged by seq 2.
    fx.expect_accepted(&fx.offer(1, units(5))).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("15.00"));
    let s2 = fx.state(2, units(15), &[0, 1]);
    assert_eq!(
        fx.send_one(Message::State(s2)).await,
        Reply::StateAck { seq: 2 }
    );
    assert_eq!(fx.net("USD").await.as_deref(), Some("15.00"));

    // Seq 1 again, now older than the held state: stale (20).
    fx.expect_rejected(Message::State(s1), 20, "seq 1 after seq 2")
        .await;
    // A total going down: 22.
    fx.expect_rejected(
        Message::State(fx.state(3, units(14), &[0, 1])),
        22,
        "total 15 → 14",
    )
    .await;
    fx.expect_rejected(
        Message::State(fx.state(3, Amount::ZERO, &[0, 1])),
        22,
        "total → 0",
    )
    .await;

    // A third accepted payment, id 2 (3.00).
    fx.expect_accepted(&fx.offer(2, units(3))).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("18.00"));
    // Resolving id 2 without counting it: 24; counting only part of it: 24.
    fx.expect_rejected(
        Message::State(fx.state(3, units(15), &[0, 1, 2])),
        24,
        "uncounted id 2",
    )
    .await;
    fx.expect_rejected(
        Message::State(fx.state(3, Amount::from_minor(1799), &[0, 1, 2])),
        24,
        "id 2 counted one cent short",
    )
    .await;
    // Un-resolving id 1: 23.
    fx.expect_rejected(
        Message::State(fx.state(3, units(18), &[0, 2])),
        23,
        "id 1 un-resolved",
    )
    .await;
    // Growing the total by more than accepted: 25 (with and without resolving id 2).
    fx.expect_rejected(
        Message::State(fx.state(3, units(19), &[0, 1, 2])),
        25,
        "18 + 1",
    )
    .await;
    fx.expect_rejected(
        Message::State(fx.state(3, units(16), &[0, 1])),
        25,
        "total up, no id",
    )
    .await;
    // Counting id 2 without resolving it (debt twice once it is resolved later): 25.
    fx.expect_rejected(
        Message::State(fx.state(3, units(18), &[0, 1])),
        25,
        "id 2 unresolved",
    )
    .await;
    // A state on another asset (no line) and on another line.
    let eur_state = Signed::sign(
        IouState {
            line: fx.line(eur()),
            seq: 1,
            total: units(1).into(),
            resolved: ResolvedSet::new(),
        },
        &fx.f,
    );
    fx.expect_rejected(Message::State(eur_state), 11, "EUR state")
        .await;
    let misdirected = Signed::sign(
        IouState {
            line: LineId {
                issuer: fx.f.public_key(),
                holder: other_key(10).public_key(),
                asset: usd(),
            },
            seq: 3,
            total: units(18).into(),
            resolved: resolved_set(&[0, 1, 2]),
        },
        &fx.f,
    );
    fx.expect_rejected(Message::State(misdirected), 10, "state of another line")
        .await;

    // Control: the honest seq 3 is taken.
    assert_eq!(
        fx.send_one(Message::State(fx.state(3, units(18), &[0, 1, 2])))
            .await,
        Reply::StateAck { seq: 3 }
    );
    assert_eq!(fx.net("USD").await.as_deref(), Some("18.00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn credit_offers_beyond_the_rules_are_released() {
    let fx = fixture().await;
    let now = unix_now();
    // Over the acceptance limit of 100.
    let over = fx.offer(0, units(200));
    let release = fx.expect_released(&over, ReleaseReason::OverLimit).await;
    // Resent: the same release.
    assert_eq!(
        fx.send_one(Message::Offer(over.clone())).await,
        Reply::Released(release)
    );
    // Expired before it arrived (and exactly at its expiry).
    let expired = Signed::sign(fx.offer_in(usd(), 1, units(1), now - 1), &fx.f);
    fx.expect_released(&expired, ReleaseReason::Expired).await;
    let expired = Signed::sign(fx.offer_in(usd(), 2, units(1), 0), &fx.f);
    fx.expect_released(&expired, ReleaseReason::Expired).await;
    // In an asset N has no line in: released (N takes no credit in it). N keeps the release
    // in a line it opens with zero limits, so that a resent offer gets the same release even
    // after the user opens the line; nothing else changes.
    let eur_offer = Signed::sign(fx.offer_in(eur(), 0, units(1), now + 600), &fx.f);
    fx.expect_released_opening_line(&eur_offer, ReleaseReason::UnknownAsset)
        .await;
    let eur_expired = Signed::sign(fx.offer_in(eur(), 1, units(1), now - 1), &fx.f);
    fx.expect_released(&eur_expired, ReleaseReason::Expired)
        .await;
    let usd0: Asset = "USD:0".parse().expect("USD:0");
    let usd0_offer = Signed::sign(
        fx.offer_in(usd0, 0, Amount::from_minor(1), now + 600),
        &fx.f,
    );
    fx.expect_released_opening_line(&usd0_offer, ReleaseReason::UnknownAsset)
        .await;

    // Exactly up to the limit is fine; one cent more is not.
    fx.expect_accepted(&fx.offer(3, units(60))).await;
    fx.expect_released(&fx.offer(4, units(41)), ReleaseReason::OverLimit)
        .await;
    fx.expect_accepted(&fx.offer(5, units(40))).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("100.00"));
    fx.expect_released(
        &fx.offer(6, Amount::from_minor(1)),
        ReleaseReason::OverLimit,
    )
    .await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("100.00"));
    let history = fx.view().await.history;
    assert_eq!(
        history.len(),
        2,
        "only accepted offers are payments: {history:?}"
    );

    // A released id can be resolved without counting it.
    assert_eq!(
        fx.send_one(Message::State(fx.state(
            1,
            units(100),
            &[0, 1, 2, 3, 4, 5, 6]
        )))
        .await,
        Reply::StateAck { seq: 1 }
    );
    assert_eq!(fx.net("USD").await.as_deref(), Some("100.00"));
}

// ---------------------------------------------------------------------------------------------
// Local API
// ---------------------------------------------------------------------------------------------

/// Every endpoint with a body that would succeed (or at least be looked at).
fn endpoints(fx: &Fixture) -> Vec<(Method, &'static str, Option<Vec<u8>>)> {
    let g = other_key(10).public_key().to_z32();
    vec![
        (Method::GET, "/v1/id", None),
        (Method::GET, "/v1/peers", None),
        (
            Method::POST,
            "/v1/peers",
            Some(json(
                serde_json::json!({"key": g, "url": "http://127.0.0.1:9"}),
            )),
        ),
        (
            Method::POST,
            "/v1/lines",
            Some(json(
                serde_json::json!({"peer": fx.fz(), "asset": "USD", "accept": "50"}),
            )),
        ),
        (
            Method::POST,
            "/v1/pay",
            Some(json(
                serde_json::json!({"peer": fx.fz(), "amount": "1", "asset": "USD", "wait_ms": 0}),
            )),
        ),
        (Method::GET, "/v1/balance", None),
        (Method::GET, "/v1/history", None),
        (Method::GET, "/v1/history?limit=5", None),
    ]
}

fn json(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_requires_the_token() {
    let fx = fixture().await;
    let wrong = format!("Bearer {}x", fx.token);
    let mut flipped = fx.token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = format!("Bearer {}", String::from_utf8(flipped).expect("hex"));
    let short = format!("Bearer {}", &fx.token[..fx.token.len() - 1]);
    for (method, path, body) in endpoints(&fx) {
        let unauthorized = StatusCode::UNAUTHORIZED;
        for auth in [None, Some("Basic Zm9vOmJhcg=="), Some(fx.token.as_str())] {
            fx.expect_api_error_as(
                method.clone(),
                path,
                auth,
                body.clone(),
                unauthorized,
                "no_token",
            )
            .await;
        }
        for auth in [
            wrong.as_str(),
            flipped.as_str(),
            short.as_str(),
            "Bearer nope",
        ] {
            fx.expect_api_error_as(
                method.clone(),
                path,
                Some(auth),
                body.clone(),
                unauthorized,
                "bad_token",
            )
            .await;
        }
    }
    // Control: with the token, the reads work.
    let (status, _) = fx
        .local(Method::GET, "/v1/id", Some(&fx.bearer()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_rejects_malformed_json() {
    let fx = fixture().await;
    let g = other_key(10).public_key().to_z32();
    let f = fx.fz();
    let cases: Vec<(&str, Vec<u8>, Vec<serde_json::Value>)> = vec![
        (
            "/v1/peers",
            json(serde_json::json!({"key": g, "url": "http://127.0.0.1:9"})),
            vec![
                serde_json::json!({"key": 5}),
                serde_json::json!({"key": g, "url": 7}),
                serde_json::json!({"key": [g]}),
                serde_json::json!({"url": "http://127.0.0.1:9"}),
                serde_json::json!({}),
                serde_json::json!(g),
                serde_json::json!(null),
            ],
        ),
        (
            "/v1/lines",
            json(serde_json::json!({"peer": f, "asset": "USD", "accept": "50", "issue": "5"})),
            vec![
                serde_json::json!({"peer": f, "asset": "USD", "accept": 50}),
                serde_json::json!({"peer": f, "asset": "USD", "issue": 5.5}),
                serde_json::json!({"peer": f, "asset": 840, "accept": "50"}),
                serde_json::json!({"peer": true, "asset": "USD", "accept": "50"}),
                serde_json::json!({"asset": "USD", "accept": "50"}),
                serde_json::json!({"peer": f, "accept": "50"}),
                serde_json::json!({"peer": f, "asset": "USD", "accept": {"v": "50"}}),
            ],
        ),
        (
            "/v1/pay",
            json(serde_json::json!({"peer": f, "amount": "1", "asset": "USD", "wait_ms": 0})),
            vec![
                serde_json::json!({"peer": f, "amount": 1, "asset": "USD"}),
                serde_json::json!({"peer": f, "amount": "1", "asset": "USD", "wait_ms": "0"}),
                serde_json::json!({"peer": f, "amount": "1", "asset": "USD", "wait_ms": -1}),
                serde_json::json!({"peer": f, "amount": "1", "asset": "USD", "memo": 3}),
                serde_json::json!({"peer": f, "asset": "USD"}),
                serde_json::json!({"amount": "1", "asset": "USD"}),
                serde_json::json!(1),
            ],
        ),
    ];
    for (path, valid, wrong_types) in cases {
        let mut bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"{not json".to_vec(),
            b"{\"key\": }".to_vec(),
            b"\xff\xfe\x00".to_vec(),
            b"   ".to_vec(),
            valid[..valid.len() / 2].to_vec(),
            valid[..valid.len() - 1].to_vec(),
        ];
        // Trailing garbage after a valid body.
        let mut trailing = valid.clone();
        trailing.extend_from_slice(b" }");
        bodies.push(trailing);
        bodies.extend(wrong_types.into_iter().map(json));
        for body in bodies {
            fx.expect_api_error(
                Method::POST,
                path,
                Some(body),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_rejects_bad_keys() {
    let fx = fixture().await;
    let f = fx.fz();
    let mut bad_char = f.clone();
    bad_char.replace_range(0..1, "0"); // '0' is not in the z-base32 alphabet
    let keys = [
        "notakey".to_string(),
        String::new(),
        "pk:".to_string(),
        f[..f.len() - 1].to_string(),
        format!("{f}y"),
        bad_char,
        hex::encode(fx.f.public_key().as_bytes()),
    ];
    for key in &keys {
        let bodies = [
            (
                "/v1/peers",
                serde_json::json!({"key": key, "url": "http://127.0.0.1:9"}),
            ),
            (
                "/v1/lines",
                serde_json::json!({"peer": key, "asset": "USD", "accept": "1"}),
            ),
            (
                "/v1/pay",
                serde_json::json!({"peer": key, "amount": "1", "asset": "USD", "wait_ms": 0}),
            ),
        ];
        for (path, body) in bodies {
            fx.expect_api_error(
                Method::POST,
                path,
                Some(json(body)),
                StatusCode::BAD_REQUEST,
                "bad_key",
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_rejects_bad_assets() {
    let fx = fixture().await;
    let f = fx.fz();
    for asset in [
        "usd!",
        "XYZ",
        "",
        "US D",
        "USD:99",
        "USD:x",
        "USD:-1",
        ":2",
        "ABCDEFGHIJKLM:2",
    ] {
        for (path, body) in [
            (
                "/v1/lines",
                serde_json::json!({"peer": f, "asset": asset, "accept": "1"}),
            ),
            (
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "1", "asset": asset, "wait_ms": 0}),
            ),
        ] {
            fx.expect_api_error(
                Method::POST,
                path,
                Some(json(body)),
                StatusCode::BAD_REQUEST,
                "bad_asset",
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_rejects_bad_amounts() {
    let fx = fixture().await;
    let f = fx.fz();
    for amount in [
        "-1",
        "1.001",
        "abc",
        "1e3",
        "",
        "1.",
        ".5",
        " 1",
        "1 ",
        "+1",
        "1,00",
        "0x10",
        "18446744073709551616",
        "184467440737095516.16",
    ] {
        let bodies = [
            (
                "/v1/lines",
                serde_json::json!({"peer": f, "asset": "USD", "accept": amount}),
            ),
            (
                "/v1/lines",
                serde_json::json!({"peer": f, "asset": "USD", "accept": "1", "issue": amount}),
            ),
            (
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": amount, "asset": "USD", "wait_ms": 0}),
            ),
        ];
        for (path, body) in bodies {
            fx.expect_api_error(
                Method::POST,
                path,
                Some(json(body)),
                StatusCode::BAD_REQUEST,
                "bad_amount",
            )
            .await;
        }
    }
    // Zero decimals for JPY.
    fx.expect_api_error(
        Method::POST,
        "/v1/pay",
        Some(json(
            serde_json::json!({"peer": f, "amount": "1.5", "asset": "JPY", "wait_ms": 0}),
        )),
        StatusCode::BAD_REQUEST,
        "bad_amount",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_refuses_impossible_payments_and_lines() {
    let fx = fixture().await;
    let f = fx.fz();
    let stranger = other_key(12).public_key().to_z32();
    let post = |path: &'static str, body: serde_json::Value| (path, json(body));
    let cases = [
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": stranger, "amount": "1", "asset": "USD", "wait_ms": 0}),
            ),
            StatusCode::NOT_FOUND,
            "unknown_peer",
        ),
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": fx.node.key, "amount": "1", "asset": "USD", "wait_ms": 0}),
            ),
            StatusCode::NOT_FOUND,
            "unknown_peer",
        ),
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "1", "asset": "EUR", "wait_ms": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_line",
        ),
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "1", "asset": "XYZ:2", "wait_ms": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_line",
        ),
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "1", "asset": "USD:0", "wait_ms": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_line",
        ),
        (
            // N's issue limit toward F is 0.
            post(
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "0.01", "asset": "USD", "wait_ms": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_limit",
        ),
        (
            post(
                "/v1/pay",
                serde_json::json!({"peer": f, "amount": "0", "asset": "USD", "wait_ms": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_payment",
        ),
        (
            post(
                "/v1/lines",
                serde_json::json!({"peer": stranger, "asset": "USD", "accept": "1"}),
            ),
            StatusCode::NOT_FOUND,
            "unknown_peer",
        ),
        (
            post(
                "/v1/peers",
                serde_json::json!({"key": fx.node.key, "url": "http://127.0.0.1:9"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "self_peer",
        ),
        (
            post(
                "/v1/peers",
                serde_json::json!({"key": stranger, "url": "ftp://127.0.0.1:9"}),
            ),
            StatusCode::BAD_REQUEST,
            "bad_url",
        ),
        (
            post(
                "/v1/peers",
                serde_json::json!({"key": stranger, "url": "not a url"}),
            ),
            StatusCode::BAD_REQUEST,
            "bad_url",
        ),
    ];
    for ((path, body), status, code) in cases {
        fx.expect_api_error(Method::POST, path, Some(body), status, code)
            .await;
    }
    // A memo longer than 256 bytes.
    fx.node
        .api
        .set_line(&SetLineRequest {
            peer: f.clone(),
            asset: "USD".into(),
            accept: None,
            issue: Some("1".into()),
            fee_base: None,
            fee_ppm: None,
        })
        .await
        .expect("issue limit 1");
    fx.expect_api_error(
        Method::POST,
        "/v1/pay",
        Some(json(serde_json::json!({
            "peer": f, "amount": "0.5", "asset": "USD", "memo": "m".repeat(257), "wait_ms": 0
        }))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_payment",
    )
    .await;
    // Not JSON at all.
    let before = fx.view().await;
    let response = fx
        .http
        .post(format!("{}/v1/peers", fx.api_url))
        .header(AUTHORIZATION, fx.bearer())
        .header(CONTENT_TYPE, "text/plain")
        .body(json(serde_json::json!({"key": stranger})))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error: ErrorBody = response.json().await.expect("error body");
    assert_eq!(error.code, "bad_content_type");
    assert_eq!(fx.view().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_api_history_rejects_a_bad_limit() {
    let fx = fixture().await;
    for query in ["abc", "-1", "1.5", "1e3", "99999999999999999999999"] {
        fx.expect_api_error(
            Method::GET,
            &format!("/v1/history?limit={query}"),
            None,
            StatusCode::BAD_REQUEST,
            "bad_query",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn cli_bad_arguments_fail_with_a_message_and_change_nothing() {
    let fx = fixture().await;
    let f = fx.fz();
    let stranger = other_key(12).public_key().to_z32();
    fx.expect_cli_error(&["pay", &f, "abc", "USD"], &["\"abc\"", "decimal amount"])
        .await;
    // Taken for a flag by the argument parser, or passed through after `--`.
    fx.expect_cli_error(&["pay", &f, "-1", "USD"], &["'-1'"])
        .await;
    fx.expect_cli_error(
        &["pay", &f, "--", "-1", "USD"],
        &["\"-1\"", "decimal amount"],
    )
    .await;
    fx.expect_cli_error(
        &["pay", &f, "1.001", "USD"],
        &["\"1.001\"", "decimal places"],
    )
    .await;
    fx.expect_cli_error(&["pay", &f, "1", "usd!"], &["USD!"])
        .await;
    fx.expect_cli_error(&["pay", &f, "1", "XYZ"], &["unknown asset XYZ"])
        .await;
    fx.expect_cli_error(
        &["pay", &stranger, "1", "USD"],
        &["unknown peer", &stranger],
    )
    .await;
    fx.expect_cli_error(&["pay", &f, "1", "EUR"], &["no line", "EUR"])
        .await;
    fx.expect_cli_error(
        &["pay", "notakey", "1", "USD"],
        &["\"notakey\"", "not a public key"],
    )
    .await;
    fx.expect_cli_error(
        &["line", "set", &f, "--asset", "USD"],
        &["--accept", "--issue"],
    )
    .await;
    fx.expect_cli_error(
        &["line", "set", &f, "--asset", "USD", "--accept", "1e3"],
        &["\"1e3\""],
    )
    .await;
    fx.expect_cli_error(
        &["line", "set", &stranger, "--asset", "USD", "--accept", "1"],
        &["unknown peer"],
    )
    .await;
    fx.expect_cli_error(
        &["peer", "add", "notakey"],
        &["\"notakey\"", "not a public key"],
    )
    .await;
    fx.expect_cli_error(
        &["peer", "add", &stranger, "--url", "ftp://x"],
        &["ftp://x"],
    )
    .await;
    // Usage errors from the argument parser.
    fx.expect_cli_error(&["pay", &f], &["required"]).await;
    fx.expect_cli_error(&["frobnicate"], &["frobnicate"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_without_a_running_node_fails_clearly() {
    let f = other_key(9).public_key().to_z32();
    let commands: [&[&str]; 5] = [
        &["balance"],
        &["history"],
        &["pay", &f, "1", "USD"],
        &["peer", "add", &f],
        &["line", "set", &f, "--asset", "USD", "--accept", "1"],
    ];

    // A directory that was never initialised.
    let empty = tempfile::tempdir().expect("tempdir");
    for args in commands {
        let out = cli(empty.path(), args);
        assert_cli_failed(&out, args, &["no running node", "atomicity node run"]);
    }
    assert!(
        files_under(empty.path()).is_empty(),
        "files created: {:?}",
        files_under(empty.path())
    );
    let out = cli(empty.path(), &["id"]);
    assert_cli_failed(&out, &["id"], &["no identity", "atomicity init"]);

    // Initialised, but no node running.
    let idle = tempfile::tempdir().expect("tempdir");
    atomicity_cli::harness::init(Path::new(BIN), idle.path()).expect("init");
    let files = files_under(idle.path());
    for args in commands {
        let out = cli(idle.path(), args);
        assert_cli_failed(&out, args, &["no running node", "atomicity node run"]);
    }
    assert_eq!(files_under(idle.path()), files);

    // A node that died without cleaning up: its files point at a closed port.
    let dead = DataDir::new(idle.path());
    dead.write_text(API_URL_FILE, "http://127.0.0.1:9", false)
        .expect("api.url");
    dead.write_text(API_TOKEN_FILE, "00", true)
        .expect("api.token");
    for args in commands {
        let out = cli(idle.path(), args);
        assert_cli_failed(&out, args, &["cannot reach the node", "127.0.0.1:9"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these tests found, now fixed (the offer arm of `Ledger::try_handle` and the
// history key of the store).
// ---------------------------------------------------------------------------------------------

/// Was a bug (crates/atomicity-core/src/ledger.rs, `Ledger::try_handle`, `Message::Offer` arm): an
/// offer in an asset with no line is answered with a signed `Release { reason: UnknownAsset }`
/// that is *not stored* (the comment says "a resent offer gets the same release"). Once the user
/// opens a line in that asset, the same offer (resent, or replayed by anybody within the
/// envelope window) is *accepted*: N has signed both "I will never claim this IOU" and "I accept
/// it", counts the debt, and then rejects the honest issuer's next state (which resolves the
/// released id without counting it) as misbehaviour (24), keeping it as evidence.
#[tokio::test(flavor = "multi_thread")]
async fn regression_unknown_asset_release_is_contradicted_once_a_line_exists() {
    let fx = fixture().await;
    let offer = Signed::sign(fx.offer_in(eur(), 0, units(1), unix_now() + 600), &fx.f);
    // The fix: N keeps the signed release (in a line opened with zero limits) and stands by it.
    let release = Some(
        fx.expect_released_opening_line(&offer, ReleaseReason::UnknownAsset)
            .await,
    );
    fx.node
        .api
        .set_line(&SetLineRequest {
            peer: fx.fz(),
            asset: "EUR".into(),
            accept: Some("100".into()),
            issue: None,
            fee_base: None,
            fee_ppm: None,
        })
        .await
        .expect("EUR line");
    let Some(release) = release else { return };
    let before = fx.view().await;
    // The same offer again (resent, or replayed by anybody within the envelope window): N must
    // stand by the release it signed.
    assert_eq!(
        fx.send_one(Message::Offer(offer.clone())).await,
        Reply::Released(release),
        "N accepted an offer it had already released"
    );
    assert_eq!(fx.view().await, before);
    assert_eq!(fx.net("EUR").await.as_deref(), Some("0.00"));
    // F, holding N's release, resolves id 0 without counting it: an honest state.
    let state = Signed::sign(
        IouState {
            line: fx.line(eur()),
            seq: 1,
            total: Total::ZERO,
            resolved: resolved_set(&[0]),
        },
        &fx.f,
    );
    assert_eq!(
        fx.send_one(Message::State(state)).await,
        Reply::StateAck { seq: 1 }
    );
}

/// Was a bug (crates/atomicity-core/src/ledger.rs, `Ledger::try_handle`, `Message::Offer` arm, with
/// the store's payments key `(payment_id, dir)` in crates/atomicity-store): every accepted
/// incoming offer writes `PutPayment` under the payment id *chosen by the payer*. Two accepted
/// offers sharing a payment id leave one history row (the balance counts 15.00, the history
/// shows 5.00), and any other peer can overwrite my record of a payment from F by reusing F's
/// payment id (the row then names the other peer and its amount).
#[tokio::test(flavor = "multi_thread")]
async fn regression_history_loses_payments_that_share_a_payment_id() {
    let fx = fixture().await;
    let first = fx.offer(0, units(10));
    let second = Signed::sign(
        ConditionalIou {
            id: 1,
            amount: units(5),
            ..first.body().clone()
        },
        &fx.f,
    );
    fx.expect_accepted(&first).await;
    fx.expect_accepted(&second).await;
    assert_eq!(fx.net("USD").await.as_deref(), Some("15.00"));

    // A second peer G reuses F's payment id.
    let g = other_key(10);
    let gz = g.public_key().to_z32();
    fx.node
        .api
        .add_peer(&gz, Some("http://127.0.0.1:9"))
        .await
        .expect("add G");
    fx.node
        .api
        .set_line(&SetLineRequest {
            peer: gz.clone(),
            asset: "USD".into(),
            accept: Some("100".into()),
            issue: None,
            fee_base: None,
            fee_ppm: None,
        })
        .await
        .expect("line with G");
    let from_g = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: g.public_key(),
                holder: fx.n.clone(),
                asset: usd(),
            },
            id: 0,
            amount: units(1),
            ..first.body().clone()
        },
        &g,
    );
    let body = seal(&g, &fx.n, unix_now(), vec![Message::Offer(from_g)]);
    let (status, replies) = fx.post_envelope(body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(
        decode_replies(&replies).expect("replies").as_slice(),
        [Reply::Accepted(_)]
    ));

    let history = fx.view().await.history;
    let received_from = |peer: &str| -> u64 {
        history
            .iter()
            .filter(|r| r.direction == "received" && r.peer == peer)
            .map(|r| usd().parse_amount(&r.amount).expect("amount").minor())
            .sum()
    };
    assert_eq!(
        (received_from(&fx.fz()), received_from(&gz)),
        (units(15).minor(), units(1).minor()),
        "history does not match what was received: {history:#?}"
    );
}

/// BUG (minor; crates/atomicity-core/src/ledger.rs, `Ledger::try_handle`, `Message::Offer`
/// arm): F's offer on a line to *another* holder, in an asset N has no line in, is answered
/// with a release N signs for somebody else's line (it cannot even verify: a release must be
/// signed by the line's holder). In an asset with a line the same offer is rejected as the
/// wrong line (10), which is what should happen here too.
#[tokio::test(flavor = "multi_thread")]
async fn regression_offer_to_another_holder_in_unknown_asset_is_released() {
    let fx = fixture().await;
    let misdirected = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: fx.f.public_key(),
                holder: other_key(10).public_key(),
                asset: eur(),
            },
            ..fx.offer_in(eur(), 0, units(1), unix_now() + 600)
        },
        &fx.f,
    );
    fx.expect_rejected(
        Message::Offer(misdirected),
        10,
        "offer to another holder in EUR",
    )
    .await;
}

/// Errors made by the HTTP framework itself (unknown route, wrong method, body too large) have
/// the same JSON shape as the node's own; a line with no limits at all is refused.
#[tokio::test(flavor = "multi_thread")]
async fn framework_errors_are_json_too() {
    let fx = fixture().await;
    let before = fx.view().await;
    let auth = format!("Bearer {}", fx.token);
    let http = &fx.http;
    let cases = [
        (
            http.get(format!("{}/v1/nothing-here", fx.api_url)),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            http.delete(format!("{}/v1/balance", fx.api_url)),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            http.post(format!("{}/v1/pay", fx.api_url))
                .header(CONTENT_TYPE, "application/json")
                .body(vec![b' '; 2 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            http.get(format!("{}/peer/v1/nothing", fx.node.node_url)),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            http.post(format!("{}/v1/lines", fx.api_url))
                .header(CONTENT_TYPE, "application/json")
                .body(format!(r#"{{"peer":"{}","asset":"USD"}}"#, fx.fz())),
            StatusCode::BAD_REQUEST,
            "no_limits",
        ),
    ];
    for (request, status, code) in cases {
        let Ok(response) = request.header(AUTHORIZATION, &auth).send().await else {
            // A large upload may be cut off by the early 413; that is a refusal too.
            assert_eq!(code, "too_large");
            continue;
        };
        assert_eq!(response.status(), status, "{code}");
        let body: serde_json::Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["code"], code);
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(fx.view().await, before);
}

/// A peer added without a URL cannot be paid yet (no DHT lookup until discovery exists): the
/// payment is refused before anything is signed, instead of hanging as pending.
#[tokio::test(flavor = "multi_thread")]
async fn pay_to_a_peer_without_url_is_refused() {
    let fx = fixture().await;
    let g = other_key(13).public_key().to_z32();
    fx.node
        .api
        .add_peer(&g, None)
        .await
        .expect("peer without URL");
    fx.node
        .api
        .set_line(&SetLineRequest {
            peer: g.clone(),
            asset: "USD".into(),
            accept: Some("10".into()),
            issue: Some("10".into()),
            fee_base: None,
            fee_ppm: None,
        })
        .await
        .expect("line");
    let before = fx.view().await;
    fx.expect_api_error(
        Method::POST,
        "/v1/pay",
        Some(json(
            serde_json::json!({"peer": g, "amount": "1", "asset": "USD", "wait_ms": 0}),
        )),
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_url",
    )
    .await;
    assert_eq!(fx.view().await, before);
}
