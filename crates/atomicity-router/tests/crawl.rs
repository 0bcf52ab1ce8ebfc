//! The crawler against small HTTP servers in this test that serve channel lists: good ones,
//! a forged one (signed by another key), a malformed one, one that regresses to an older
//! document, and one whose line changes. Only verified documents reach the index.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomicity_core::Keypair;
use atomicity_core::published::{CHANNELS_PATH, ChannelsValue, LineAd, sign_document};
use atomicity_router::crawl::{CrawlConfig, Crawler};
use atomicity_router::index::{Index, RouteAsk};

/// Serves whatever `body` holds at the channel-list path.
async fn serve(body: Arc<Mutex<Vec<u8>>>) -> String {
    let router = axum::Router::new().route(
        CHANNELS_PATH,
        axum::routing::get(move || {
            let body = body.lock().expect("lock").clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

fn channels(signer: &Keypair, seq: u64, lines: &[(&Keypair, &str, &str)]) -> Vec<u8> {
    let value = ChannelsValue {
        lines: lines
            .iter()
            .map(|(peer, capacity, fee)| LineAd {
                peer: peer.public_key().to_z32(),
                asset: "USD".into(),
                capacity_hint: capacity.to_string(),
                fee_base: fee.to_string(),
                fee_ppm: 0,
            })
            .collect(),
        witnesses: Vec::new(),
    };
    let json = serde_json::to_vec(&value).expect("json");
    sign_document(signer, CHANNELS_PATH, seq, &json).expect("sign")
}

fn ask(from: &Keypair, to: &Keypair, amount: &str) -> RouteAsk {
    let asset: atomicity_core::Asset = "USD".parse().expect("asset");
    RouteAsk {
        from: from.public_key(),
        to: to.public_key(),
        amount: asset.parse_amount(amount).expect("amount"),
        asset,
        max_hops: None,
        witnesses: Vec::new(),
        avoid: Vec::new(),
    }
}

#[tokio::test]
async fn only_verified_channel_lists_enter_the_index_and_changes_are_learned() {
    let (a, b, c) = (Keypair::random(), Keypair::random(), Keypair::random());
    let (forger, malformed) = (Keypair::random(), Keypair::random());
    // A → B → C, B charging 0.10 to forward to C.
    let a_doc = Arc::new(Mutex::new(channels(&a, 10, &[(&b, "50.00", "0.00")])));
    let b_doc = Arc::new(Mutex::new(channels(&b, 10, &[(&c, "50.00", "0.10")])));
    // Claims to be `forger` but signs with another key; lists a line to C.
    let forged = Arc::new(Mutex::new(channels(
        &Keypair::random(),
        10,
        &[(&c, "1000.00", "0.00")],
    )));
    let junk = Arc::new(Mutex::new(b"{\"value\": not json".to_vec()));
    let seeds = vec![
        (a.public_key(), Some(serve(a_doc.clone()).await)),
        (b.public_key(), Some(serve(b_doc.clone()).await)),
        (forger.public_key(), Some(serve(forged).await)),
        (malformed.public_key(), Some(serve(junk).await)),
    ];
    let config = CrawlConfig {
        min_interval: Duration::ZERO,
        ..CrawlConfig::default()
    };
    let mut crawler = Crawler::new(config, None, seeds);
    let mut index = Index::default();

    let (changes, report) = crawler.round(1_000).await;
    assert_eq!(
        (report.fetched, report.changed, report.failed),
        (4, 2, 2),
        "{report:?}"
    );
    // C was found in B's list (it has no URL and there is no DHT: it fails next round).
    assert_eq!(report.discovered, 1, "{report:?}");
    index.apply(changes);
    assert_eq!(index.indexed_nodes(), 2);
    let routes = index.routes(&ask(&a, &c, "10"), 3);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].amounts, ["10.10", "10.00"]);
    // A payer that avoids B has no route.
    let mut avoiding_b = ask(&a, &c, "10");
    avoiding_b.avoid.push(b.public_key());
    assert!(index.routes(&avoiding_b, 3).is_empty());
    // The forger's line to C never entered the index.
    assert!(index.routes(&ask(&forger, &c, "10"), 3).is_empty());

    // Nothing changed: nothing is re-parsed.
    let (changes, report) = crawler.round(1_001).await;
    assert!(changes.updated.is_empty(), "{changes:?}");
    assert_eq!(report.unchanged, 2, "{report:?}");

    // B raises its fee (a new document); A's server regresses to an older one (a replay).
    *b_doc.lock().expect("lock") = channels(&b, 11, &[(&c, "50.00", "0.25")]);
    *a_doc.lock().expect("lock") = channels(&a, 9, &[(&b, "1.00", "0.00")]);
    let (changes, report) = crawler.round(1_002).await;
    assert_eq!(changes.updated.len(), 1, "{changes:?}");
    assert!(report.failed >= 1, "the replay is refused: {report:?}");
    index.apply(changes);
    let routes = index.routes(&ask(&a, &c, "10"), 3);
    assert_eq!(
        routes[0].amounts,
        ["10.25", "10.00"],
        "the new fee, A's old capacity"
    );
}

#[tokio::test]
async fn nodes_that_stop_answering_expire() {
    let (a, b) = (Keypair::random(), Keypair::random());
    let a_doc = Arc::new(Mutex::new(channels(&a, 10, &[(&b, "5.00", "0.00")])));
    let url = serve(a_doc).await;
    // A discovered node (no URL of its own) that never answers, and the seed itself.
    let config = CrawlConfig {
        min_interval: Duration::ZERO,
        expire_after: Duration::from_secs(60),
        ..CrawlConfig::default()
    };
    let mut crawler = Crawler::new(config, None, vec![(a.public_key(), Some(url))]);
    let (changes, _) = crawler.round(1_000).await;
    assert_eq!(changes.updated.len(), 1);
    assert_eq!(crawler.known(), 2, "B was discovered");
    // B never answers (no URL, no DHT); after expire_after it is forgotten.
    let (_, report) = crawler.round(1_100).await;
    assert_eq!(report.known, 1, "{report:?}");
}

/// A seed given by key alone (found on the DHT) that does not answer at first, e.g. because it
/// is still starting, is tried again later, not forgotten after its first failure.
#[tokio::test]
async fn a_seed_by_key_alone_is_never_forgotten() {
    let a = Keypair::random();
    let config = CrawlConfig {
        min_interval: Duration::ZERO,
        expire_after: Duration::from_secs(60),
        ..CrawlConfig::default()
    };
    let mut crawler = Crawler::new(config, None, vec![(a.public_key(), None)]);
    let (_, report) = crawler.round(1_000).await;
    assert_eq!((report.failed, report.known), (1, 1), "{report:?}");
    let (_, report) = crawler.round(10_000).await;
    assert_eq!(report.known, 1, "{report:?}");
}
