//! Signed public documents served by real in-process nodes on 127.0.0.1: Paykit endpoints,
//! the channel list, the witnesses, the issuer's newest states, and a holder refreshing a line
//! from its issuer's published state.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomicity_core::published::{
    self, ChannelsValue, EndpointId, PublishedError, StateValue, WitnessesValue,
};
use atomicity_core::{
    Asset, Envelope, IouState, Keypair, LineId, Message, PublicKey, ResolvedSet, Signed, Total,
};
use atomicity_node::api::{BalanceRow, PayRequest, SetLineRequest};
use atomicity_node::client::{ApiClient, ClientError};
use atomicity_node::datadir::DataDir;
use atomicity_node::{NodeConfig, RunningNode};
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;

async fn start(dir: &DataDir) -> RunningNode {
    atomicity_node::start(NodeConfig::new(dir.root()))
        .await
        .unwrap()
}

async fn new_node(root: &std::path::Path, name: &str) -> (DataDir, RunningNode) {
    let dir = DataDir::new(root.join(name));
    dir.init().unwrap();
    let node = start(&dir).await;
    (dir, node)
}

fn line(peer: &PublicKey, accept: &str, issue: &str) -> SetLineRequest {
    SetLineRequest {
        peer: peer.to_z32(),
        asset: "USD".into(),
        accept: Some(accept.into()),
        issue: Some(issue.into()),
        fee_base: None,
        fee_ppm: None,
    }
}

/// GETs a path of a node's peer API: status, content type, body.
async fn get(base: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// The API error's status and code.
fn api_error(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn error_code(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    json["code"].as_str().unwrap().to_string()
}

async fn balance(api: &ApiClient, peer: &PublicKey) -> BalanceRow {
    api.balance()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.peer == peer.to_z32() && r.asset == "USD")
        .unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_published_listed_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let (dir_a, a) = new_node(root.path(), "a").await;
    let (_dir_b, b) = new_node(root.path(), "b").await;
    let api = a.client();
    api.add_peer(&b.key.to_z32(), Some(&b.node_url))
        .await
        .unwrap();

    // No line yet: no automatic endpoint.
    assert!(api.list_endpoints().await.unwrap().is_empty());
    api.set_line(&line(&b.key, "100", "50")).await.unwrap();
    let rows = api.list_endpoints().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "usd-atomicity-key");
    assert!(rows[0].automatic);
    assert_eq!(rows[0].value, json!(a.key.to_z32()));

    let bolt11 = json!("lnbc10u1p3xyzexample");
    let row = api
        .add_endpoint("btc-lightning-bolt11", bolt11.clone())
        .await
        .unwrap();
    assert!(!row.automatic);
    assert_eq!(
        row.path,
        "/pub/paykit/v0/apps/atomicity/endpoints/btc-lightning-bolt11"
    );
    let address = json!({"address": "bc1qexample", "network": "mainnet"});
    api.add_endpoint("btc-bitcoin-address", address.clone())
        .await
        .unwrap();

    // Refusals, each with its code, changing nothing.
    let before = api.list_endpoints().await.unwrap();
    let big = json!("x".repeat(4100));
    for (id, value, status, code) in [
        ("BTC-lightning-bolt11", json!("x"), 400, "bad_endpoint_id"),
        ("btc-lightning", json!("x"), 400, "bad_endpoint_id"),
        ("usd-atomicity-key", json!("x"), 400, "reserved_endpoint"),
        ("eur-atomicity-key", json!("x"), 400, "reserved_endpoint"),
        ("btc-lightning-bolt11", json!(""), 400, "bad_endpoint_value"),
        (
            "btc-lightning-bolt11",
            json!("  "),
            400,
            "bad_endpoint_value",
        ),
        ("btc-lightning-bolt11", json!({}), 400, "bad_endpoint_value"),
        ("btc-lightning-bolt11", json!(5), 400, "bad_endpoint_value"),
        (
            "btc-lightning-bolt11",
            json!(null),
            400,
            "bad_endpoint_value",
        ),
        (
            "btc-lightning-bolt11",
            json!(["x"]),
            400,
            "bad_endpoint_value",
        ),
        ("btc-lightning-bolt11", big, 413, "endpoint_too_large"),
    ] {
        assert_eq!(
            api_error(api.add_endpoint(id, value.clone()).await),
            (status, code.to_string()),
            "{id} {value}"
        );
    }
    // A request without a value.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/endpoints", a.api_url))
        .bearer_auth(&a.api_token)
        .json(&json!({"id": "btc-lightning-bolt11"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_code(&response.bytes().await.unwrap()),
        "bad_endpoint_value"
    );
    // The local API needs the token.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/endpoints", a.api_url))
        .json(&json!({"id": "btc-lightning-bolt12", "value": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.list_endpoints().await.unwrap(), before);

    // Anyone reads them with a plain GET, and they verify.
    let ids: Vec<&str> = before.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "btc-bitcoin-address",
            "btc-lightning-bolt11",
            "usd-atomicity-key"
        ]
    );
    for row in &before {
        let (status, content_type, body) = get(&a.node_url, &row.path).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        // A Paykit reader just reads `value`.
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["value"], row.value);
        let verified = published::verify_document(&body, &a.key, &row.path, None).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(verified.value_str()).unwrap(),
            row.value
        );
    }

    // Unchanged content is served from the cache: the same bytes, the same seq.
    let path = published::endpoint_path(&EndpointId::parse("btc-lightning-bolt11").unwrap());
    let (_, _, first) = get(&a.node_url, &path).await;
    let (_, _, again) = get(&a.node_url, &path).await;
    assert_eq!(first, again);
    let first_seq = published::verify_document(&first, &a.key, &path, None)
        .unwrap()
        .seq;

    // Tampered bytes are refused by the reader.
    let text = String::from_utf8(first.clone()).unwrap();
    let tampered = text.replacen("lnbc10u1p3xyz", "lnbc99u1p3xyz", 1);
    assert_eq!(
        published::verify_document(tampered.as_bytes(), &a.key, &path, None).unwrap_err(),
        PublishedError::BadSignature
    );
    let other_path = published::endpoint_path(&EndpointId::parse("btc-lightning-bolt12").unwrap());
    assert!(matches!(
        published::verify_document(&first, &a.key, &other_path, None).unwrap_err(),
        PublishedError::WrongPath { .. }
    ));
    assert!(matches!(
        published::verify_document(&first, &b.key, &path, None).unwrap_err(),
        PublishedError::WrongKey { .. }
    ));
    assert_eq!(
        published::verify_document(&first, &a.key, &path, Some(first_seq + 1)).unwrap_err(),
        PublishedError::StaleSeq {
            min: first_seq + 1,
            got: first_seq
        }
    );

    // Replacing a value signs it again with a higher seq.
    let bolt11_v2 = json!("lnbc20u1p3xyzexample");
    api.add_endpoint("btc-lightning-bolt11", bolt11_v2.clone())
        .await
        .unwrap();
    let (_, _, body) = get(&a.node_url, &path).await;
    let verified = published::verify_document(&body, &a.key, &path, Some(first_seq + 1)).unwrap();
    assert_eq!(verified.value_str(), bolt11_v2.to_string());

    // The Pubky-style directory listing.
    let (status, content_type, body) =
        get(&a.node_url, "/pub/paykit/v0/apps/atomicity/endpoints/").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    let listing = String::from_utf8(body).unwrap();
    let expected: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                "pubky://{}/pub/paykit/v0/apps/atomicity/endpoints/{id}",
                a.key.to_z32()
            )
        })
        .collect();
    assert_eq!(listing.lines().collect::<Vec<_>>(), expected);
    let (_, _, body) = get(
        &a.node_url,
        "/pub/paykit/v0/apps/atomicity/endpoints/?cursor=btc-bitcoin-address&limit=1",
    )
    .await;
    assert_eq!(
        String::from_utf8(body).unwrap().lines().collect::<Vec<_>>(),
        [expected[1].as_str()]
    );

    // Removing.
    let removed = api.remove_endpoint("btc-lightning-bolt11").await.unwrap();
    assert_eq!(removed.value, bolt11_v2);
    let (status, content_type, body) = get(&a.node_url, &path).await;
    assert_eq!(status, 404);
    assert!(content_type.starts_with("application/json"));
    assert_eq!(error_code(&body), "not_found");
    assert_eq!(
        api_error(api.remove_endpoint("btc-lightning-bolt11").await),
        (404, "unknown_endpoint".to_string())
    );
    assert_eq!(
        api_error(api.remove_endpoint("usd-atomicity-key").await),
        (400, "reserved_endpoint".to_string())
    );
    let (status, _, body) = get(
        &a.node_url,
        "/pub/paykit/v0/apps/atomicity/endpoints/NOT-an-id",
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_endpoint_id")
    );

    // The endpoints and the seqs survive a restart.
    let key_path = published::endpoint_path(&EndpointId::parse("btc-bitcoin-address").unwrap());
    let (_, _, body) = get(&a.node_url, &key_path).await;
    let seq_before = published::verify_document(&body, &a.key, &key_path, None)
        .unwrap()
        .seq;
    assert!(dir_a.file("endpoints.json").exists());
    a.shutdown().await;
    let a = start(&dir_a).await;
    let rows = a.client().list_endpoints().await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["btc-bitcoin-address", "usd-atomicity-key"]);
    let (_, _, body) = get(&a.node_url, &key_path).await;
    let verified =
        published::verify_document(&body, &a.key, &key_path, Some(seq_before + 1)).unwrap();
    assert_eq!(verified.parse::<serde_json::Value>().unwrap(), address);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_list_follows_the_limits() {
    let root = tempfile::tempdir().unwrap();
    let (_dir_a, a) = new_node(root.path(), "a").await;
    let (_dir_b, b) = new_node(root.path(), "b").await;
    let (_dir_c, c) = new_node(root.path(), "c").await;
    let api = a.client();
    for peer in [&b, &c] {
        api.add_peer(&peer.key.to_z32(), Some(&peer.node_url))
            .await
            .unwrap();
    }
    let channels = || async {
        let (status, content_type, body) = get(&a.node_url, published::CHANNELS_PATH).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        let doc =
            published::verify_document(&body, &a.key, published::CHANNELS_PATH, None).unwrap();
        (doc.parse::<ChannelsValue>().unwrap(), doc.seq)
    };
    let (empty, seq0) = channels().await;
    assert!(empty.lines.is_empty());
    assert!(empty.witnesses.is_empty());

    api.set_line(&line(&b.key, "100", "50")).await.unwrap();
    // A line I issue nothing on is not advertised.
    api.set_line(&line(&c.key, "100", "0")).await.unwrap();
    let (list, seq1) = channels().await;
    assert!(seq1 > seq0);
    assert_eq!(list.lines.len(), 1);
    let ad = &list.lines[0];
    assert_eq!(ad.peer, b.key.to_z32());
    assert_eq!(ad.asset, "USD");
    assert_eq!(ad.capacity_hint, "50.00");
    assert_eq!((ad.fee_base.as_str(), ad.fee_ppm), ("0.00", 0));

    // Unchanged: the same document.
    assert_eq!(channels().await.1, seq1);

    let mut raise = line(&b.key, "100", "80");
    raise.fee_base = Some("0.01".into());
    raise.fee_ppm = Some(1000);
    api.set_line(&raise).await.unwrap();
    let (list, seq2) = channels().await;
    assert!(seq2 > seq1);
    assert_eq!(list.lines[0].capacity_hint, "80.00");
    assert_eq!(
        (list.lines[0].fee_base.as_str(), list.lines[0].fee_ppm),
        ("0.01", 1000)
    );

    // Paying B uses up what I would still issue to it.
    let bapi = b.client();
    bapi.add_peer(&a.key.to_z32(), Some(&a.node_url))
        .await
        .unwrap();
    bapi.set_line(&line(&a.key, "100", "0")).await.unwrap();
    let paid = api
        .pay(&PayRequest {
            peer: b.key.to_z32(),
            amount: "30".into(),
            asset: "USD".into(),
            memo: String::new(),
            wait_ms: Some(10_000),
            routes: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(paid.status, "completed");
    assert_eq!(channels().await.0.lines[0].capacity_hint, "50.00");

    api.set_line(&line(&b.key, "100", "0")).await.unwrap();
    assert!(channels().await.0.lines.is_empty());

    // The witnesses document (this node has none).
    let (status, _, body) = get(&a.node_url, published::WITNESSES_PATH).await;
    assert_eq!(status, 200);
    let doc = published::verify_document(&body, &a.key, published::WITNESSES_PATH, None).unwrap();
    assert_eq!(
        doc.parse::<WitnessesValue>().unwrap(),
        WitnessesValue {
            witnesses: Vec::new()
        }
    );
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

/// An HTTP proxy in front of a node's peer API that can drop the envelopes that carry only
/// IOU states: the holder then misses its issuer's pushed states.
#[derive(Clone)]
struct Proxy {
    target: String,
    drop_states: Arc<Mutex<bool>>,
    http: reqwest::Client,
}

async fn proxy(
    proxy: axum::extract::State<Proxy>,
    uri: Uri,
    body: Bytes,
) -> axum::response::Response {
    let only_states = Signed::<Envelope>::decode(&body).is_ok_and(|e| {
        e.body()
            .messages
            .iter()
            .all(|m| matches!(m, Message::State(_)))
    });
    if only_states && *proxy.drop_states.lock().unwrap() {
        return (StatusCode::SERVICE_UNAVAILABLE, "dropped").into_response();
    }
    let answer = proxy
        .http
        .post(format!("{}{}", proxy.target, uri.path()))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    (status, answer.bytes().await.unwrap()).into_response()
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn pay(from: &ApiClient, to: &PublicKey, amount: &str) {
    let paid = from
        .pay(&PayRequest {
            peer: to.to_z32(),
            amount: amount.into(),
            asset: "USD".into(),
            memo: String::new(),
            wait_ms: Some(10_000),
            routes: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(paid.status, "completed", "{paid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_refreshes_a_line_from_the_issuers_published_state() {
    let root = tempfile::tempdir().unwrap();
    let (_dir_a, a) = new_node(root.path(), "a").await;
    let (_dir_b, b) = new_node(root.path(), "b").await;
    let drop_states = Arc::new(Mutex::new(false));
    let proxy_url = serve(axum::Router::new().fallback(proxy).with_state(Proxy {
        target: a.node_url.clone(),
        drop_states: Arc::clone(&drop_states),
        http: reqwest::Client::new(),
    }))
    .await;
    let (api_a, api_b) = (a.client(), b.client());
    api_a
        .add_peer(&b.key.to_z32(), Some(&b.node_url))
        .await
        .unwrap();
    // B reaches A only through the proxy.
    api_b
        .add_peer(&a.key.to_z32(), Some(&proxy_url))
        .await
        .unwrap();
    api_a.set_line(&line(&b.key, "100", "100")).await.unwrap();
    api_b.set_line(&line(&a.key, "100", "100")).await.unwrap();

    // No state signed yet.
    let state_path = published::state_path(&a.key, &"USD".parse().unwrap());
    let (status, _, body) = get(&b.node_url, &state_path).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        api_error(api_a.refresh_line(&b.key.to_z32(), "USD").await),
        (404, "no_published_state".to_string())
    );

    // B pays A; its state reaches A.
    pay(&api_b, &a.key, "5").await;
    wait_for("A to hold B's first state", async || {
        balance(&api_a, &b.key).await.in_seq == 1
    })
    .await;

    // B pays A again, but A misses the state B pushes.
    *drop_states.lock().unwrap() = true;
    pay(&api_b, &a.key, "2").await;
    wait_for("B to sign its second state", async || {
        balance(&api_b, &a.key).await.out_seq == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let missed = balance(&api_a, &b.key).await;
    assert_eq!((missed.in_seq, missed.in_total.as_str()), (1, "5.00"));

    // Anyone can read B's newest state toward A, signed twice by B.
    let (status, content_type, body) = get(&b.node_url, &state_path).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let usd: Asset = "USD".parse().unwrap();
    let (state, _) = published::verify_state_document(&body, &b.key, &a.key, &usd, None).unwrap();
    assert_eq!(state.body().seq, 2);
    // ... under its canonical path only: another holder's is not there.
    let (status, _, _) = get(&b.node_url, &published::state_path(&b.key, &usd)).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&b.node_url, "/pub/atomicity/v1/states/nonsense/USD").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_key")
    );

    // A refreshes the line from B's document.
    let refreshed = api_a.refresh_line(&b.key.to_z32(), "USD").await.unwrap();
    assert!(refreshed.updated);
    assert_eq!(refreshed.seq, 2);
    assert_eq!(
        (refreshed.line.in_seq, refreshed.line.in_total.as_str()),
        (2, "7.00")
    );
    assert_eq!(refreshed.line.net, "7.00");
    // Again: nothing new.
    let again = api_a.refresh_line(&b.key.to_z32(), "USD").await.unwrap();
    assert!(!again.updated);
    assert_eq!(again.seq, 2);

    // A pays B: A's own state changes, B's toward A does not.
    pay(&api_a, &b.key, "1").await;
    let after = api_a.refresh_line(&b.key.to_z32(), "USD").await.unwrap();
    assert!(!after.updated);
    assert_eq!(after.line.net, "6.00");

    // Asking badly.
    assert_eq!(
        api_error(api_a.refresh_line(&b.key.to_z32(), "EUR").await),
        (422, "no_line".to_string())
    );
    let stranger = Keypair::random().public_key();
    assert_eq!(
        api_error(api_a.refresh_line(&stranger.to_z32(), "USD").await),
        (404, "unknown_peer".to_string())
    );
    assert_eq!(
        api_error(api_a.refresh_line("nonsense", "USD").await),
        (400, "bad_key".to_string())
    );
    let response = reqwest::Client::new()
        .post(format!("{}/v1/lines/{}/refresh", a.api_url, b.key.to_z32()))
        .bearer_auth(&a.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(&response.bytes().await.unwrap()), "bad_query");

    a.shutdown().await;
    b.shutdown().await;
}

/// A fake issuer: its key, and the answer its peer API gives to every request.
#[derive(Clone)]
struct FakeIssuer {
    answer: Arc<Mutex<(StatusCode, Vec<u8>)>>,
}

async fn fake(issuer: axum::extract::State<FakeIssuer>) -> axum::response::Response {
    let (status, body) = issuer.answer.lock().unwrap().clone();
    (status, [("content-type", "application/json")], body).into_response()
}

fn iou_state(
    signer: &Keypair,
    issuer: &PublicKey,
    holder: &PublicKey,
    seq: u64,
    total: u128,
    resolved: &[u64],
) -> Signed<IouState> {
    let mut set = ResolvedSet::new();
    for id in resolved {
        set.insert(*id);
    }
    Signed::sign(
        IouState {
            line: LineId {
                issuer: issuer.clone(),
                holder: holder.clone(),
                asset: "USD".parse().unwrap(),
            },
            seq,
            total: Total::from_minor(total),
            resolved: set,
        },
        signer,
    )
}

fn state_doc(signer: &Keypair, holder: &PublicKey, state: &Signed<IouState>) -> Vec<u8> {
    let value = serde_json::to_vec(&StateValue::new(state)).unwrap();
    let path = published::state_path(holder, &"USD".parse().unwrap());
    published::sign_document(signer, &path, 1_700_000_000_000_000, &value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_forged_published_states_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (_dir_a, a) = new_node(root.path(), "a").await;
    let issuer = Keypair::random();
    let f = issuer.public_key();
    let answer = Arc::new(Mutex::new((StatusCode::NOT_FOUND, b"{}".to_vec())));
    let url = serve(axum::Router::new().fallback(fake).with_state(FakeIssuer {
        answer: Arc::clone(&answer),
    }))
    .await;
    let api = a.client();
    api.add_peer(&f.to_z32(), Some(&url)).await.unwrap();
    api.set_line(&line(&f, "100", "0")).await.unwrap();
    let serve_doc = |doc: Vec<u8>| *answer.lock().unwrap() = (StatusCode::OK, doc);
    let f_z32 = f.to_z32();
    let refresh = || api.refresh_line(&f_z32, "USD");

    // Two genuine states in turn (nothing paid yet: totals stay 0).
    let first = state_doc(&issuer, &a.key, &iou_state(&issuer, &f, &a.key, 1, 0, &[]));
    serve_doc(first.clone());
    let r = refresh().await.unwrap();
    assert!(r.updated && r.seq == 1);
    let second = iou_state(&issuer, &f, &a.key, 2, 0, &[]);
    serve_doc(state_doc(&issuer, &a.key, &second));
    let r = refresh().await.unwrap();
    assert!(r.updated && r.seq == 2);

    let held = || async { balance(&api, &f).await };
    let unchanged = |row: BalanceRow| {
        assert_eq!((row.in_seq, row.in_total.as_str()), (2, "0.00"));
    };

    // A replayed older document: stale.
    serve_doc(first);
    assert_eq!(api_error(refresh().await), (409, "stale_state".to_string()));
    unchanged(held().await);

    // The right state in a document signed by someone else.
    let mallory = Keypair::random();
    let third = iou_state(&issuer, &f, &a.key, 3, 0, &[]);
    serve_doc(state_doc(&mallory, &a.key, &third));
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    // A forged state (claiming to be the issuer's) in the issuer's own document.
    let forged = iou_state(&mallory, &f, &a.key, 3, 0, &[]);
    serve_doc(state_doc(&issuer, &a.key, &forged));
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    // The issuer's state for someone else's line.
    let other = Keypair::random().public_key();
    serve_doc(state_doc(
        &issuer,
        &a.key,
        &iou_state(&issuer, &f, &other, 3, 0, &[]),
    ));
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    // A document for another holder's path.
    serve_doc(state_doc(&issuer, &other, &third));
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    // Genuine bytes tampered with on the way.
    let mut tampered = state_doc(&issuer, &a.key, &third);
    let at = String::from_utf8(tampered.clone())
        .unwrap()
        .find("\"state\":\"")
        .unwrap()
        + 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    serve_doc(tampered);
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    // Not a document at all, and too large.
    serve_doc(b"<html>moved</html>".to_vec());
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    serve_doc(vec![b' '; published::MAX_DOCUMENT_LEN + 10]);
    assert_eq!(
        api_error(refresh().await),
        (502, "bad_document".to_string())
    );
    unchanged(held().await);

    // Genuine, but the ledger refuses it as it would a pushed state: a total that grows
    // without any payment, and a second, different state with the seq held (equivocation).
    serve_doc(state_doc(
        &issuer,
        &a.key,
        &iou_state(&issuer, &f, &a.key, 3, 500, &[]),
    ));
    assert_eq!(
        api_error(refresh().await),
        (409, "state_rejected".to_string())
    );
    serve_doc(state_doc(
        &issuer,
        &a.key,
        &iou_state(&issuer, &f, &a.key, 2, 0, &[0]),
    ));
    assert_eq!(
        api_error(refresh().await),
        (409, "state_rejected".to_string())
    );
    unchanged(held().await);

    // The issuer's server fails.
    *answer.lock().unwrap() = (StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec());
    assert_eq!(
        api_error(refresh().await),
        (502, "peer_unreachable".to_string())
    );

    // And the genuine next state is taken.
    serve_doc(state_doc(&issuer, &a.key, &third));
    let r = refresh().await.unwrap();
    assert!(r.updated && r.seq == 3);
    a.shutdown().await;
}
