//! Discovery over a real (local) Mainline DHT: a fresh `mainline::Testnet` on 127.0.0.1 per
//! test, short request timeouts, no internet.
//!
//! Most nodes here run in server mode, as on a devnet. A client-mode node (the default on the
//! public DHT) answers nobody, yet nodes without bootstrap of their own (the testnet's, a
//! `BootstrapNode`) add every node that asks them `find_node` to their routing table and hand
//! it out: each query that meets a client node then waits a request timeout for it. The first
//! test uses client nodes and bounds that cost.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use atomicity_discovery::{
    BootstrapNode, Dht, DhtOptions, DiscoveryError, Keypair, NodeSettings, RECORD_NAME,
    RECORD_TTL_SECS, RecordError, Service, SignedPacket, Timestamp, node_url,
};
use mainline::Testnet;
use pkarr::dns::Name;
use pkarr::dns::rdata::TXT;

const TIMEOUT: Duration = Duration::from_millis(250);

fn testnet(nodes: usize) -> Testnet {
    Testnet::builder(nodes)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .expect("testnet")
}

/// Starts a node on 127.0.0.1 in the given mode.
fn start(bootstrap: Vec<String>, server_mode: bool) -> Result<Dht, DiscoveryError> {
    Dht::start_with(
        &DhtOptions {
            bootstrap,
            request_timeout: TIMEOUT,
        },
        NodeSettings {
            listen: Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            server_mode: Some(server_mode),
        },
    )
}

/// A server-mode node on `testnet`.
async fn node(testnet: &Testnet) -> Dht {
    start(testnet.bootstrap.clone(), true).expect("node")
}

/// A client-mode node (stores nothing for others, answers nobody) on `testnet`.
async fn client(testnet: &Testnet) -> Dht {
    start(testnet.bootstrap.clone(), false).expect("client node")
}

/// A packet "another application" signs with the same key: TXT records at the given names.
fn foreign_packet(keypair: &Keypair, records: &[(&str, &str)]) -> SignedPacket {
    let mut builder = SignedPacket::builder().timestamp(Timestamp::now());
    for (name, text) in records {
        let txt = TXT::try_from(*text).expect("txt");
        builder = builder.txt(Name::new(name).expect("name"), txt, 3600);
    }
    builder.sign(keypair).expect("foreign packet")
}

fn texts_at(packet: &SignedPacket, name: &str) -> Vec<String> {
    packet
        .resource_records(name)
        .filter_map(|rr| match &rr.rdata {
            pkarr::dns::rdata::RData::TXT(txt) => String::try_from(txt.clone()).ok(),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_published_url_resolves_from_another_node() {
    let net = testnet(8);
    let (alice, bob) = (client(&net).await, client(&net).await);
    let key = Keypair::random();

    let started = Instant::now();
    let outcome = alice
        .publish_node_url(&key, "http://127.0.0.1:4000", Timestamp::now())
        .await
        .expect("publish");
    let published_in = started.elapsed();
    assert!(outcome.stored_on >= 1, "{outcome:?}");
    assert_eq!(outcome.kept_records, 0);
    assert!(outcome.bytes > 0 && outcome.bytes < 200, "{outcome:?}");

    let resolved = bob
        .resolve_node_url(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(resolved.url, "http://127.0.0.1:4000");
    assert_eq!(resolved.ttl_secs, RECORD_TTL_SECS);
    assert_eq!(resolved.timestamp, outcome.timestamp);

    // A key nobody published: found nothing, which is not an error.
    let unknown = Keypair::random().public_key();
    assert_eq!(bob.resolve_node_url(&unknown).await.expect("resolve"), None);
    // A get query then a put, each waiting one request timeout for the other client node.
    assert!(published_in < Duration::from_secs(2), "{published_in:?}");
}

#[tokio::test]
async fn a_republish_after_a_move_resolves_to_the_new_url() {
    let net = testnet(8);
    let (alice, bob) = (node(&net).await, node(&net).await);
    let key = Keypair::random();
    let first = alice
        .publish_node_url(&key, "http://127.0.0.1:4000", Timestamp::now())
        .await
        .expect("publish");
    assert_eq!(
        bob.resolve_node_url(&key.public_key())
            .await
            .expect("resolve")
            .map(|r| r.url)
            .as_deref(),
        Some("http://127.0.0.1:4000")
    );
    // Moved, and with a clock that went backwards: the new packet must still win.
    let moved = alice
        .publish_node_url(
            &key,
            "https://moved.example:8443",
            first.timestamp - 5_000_000,
        )
        .await
        .expect("republish");
    assert!(moved.timestamp > first.timestamp);
    let resolved = bob
        .resolve_node_url(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(resolved.url, "https://moved.example:8443");
    assert_eq!(resolved.timestamp, moved.timestamp);
}

#[tokio::test]
async fn records_of_other_applications_survive_our_publish() {
    let net = testnet(8);
    let (app, ours, reader) = (node(&net).await, node(&net).await, node(&net).await);
    let key = Keypair::random();
    let theirs = foreign_packet(&key, &[("_pubky", "v=1;homeserver=abc"), (".", "apex")]);
    assert!(app.publish_packet(&theirs).await.expect("their publish") >= 1);

    let outcome = ours
        .publish_node_url(&key, "http://127.0.0.1:4001", Timestamp::now())
        .await
        .expect("publish");
    assert_eq!(outcome.kept_records, 2);
    assert!(outcome.timestamp > theirs.timestamp());

    let packet = reader
        .resolve_packet(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(texts_at(&packet, "_pubky"), vec!["v=1;homeserver=abc"]);
    assert_eq!(texts_at(&packet, "@"), vec!["apex"]);
    assert_eq!(node_url(&packet).as_deref(), Some("http://127.0.0.1:4001"));

    // A second publish replaces our record and still keeps theirs.
    ours.publish_node_url(&key, "http://127.0.0.1:4002", Timestamp::now())
        .await
        .expect("republish");
    let packet = reader
        .resolve_packet(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(texts_at(&packet, RECORD_NAME).len(), 1);
    assert_eq!(texts_at(&packet, "_pubky"), vec!["v=1;homeserver=abc"]);
    assert_eq!(node_url(&packet).as_deref(), Some("http://127.0.0.1:4002"));
}

#[tokio::test]
async fn a_full_packet_is_refused_with_the_limit_named() {
    let net = testnet(6);
    let (app, ours) = (node(&net).await, node(&net).await);
    let key = Keypair::random();
    // Their records leave no room for ours: 8 × 100 bytes of text (975 bytes encoded).
    let filler = "x".repeat(100);
    let records: Vec<(&str, &str)> = (0..8).map(|_| ("_other", filler.as_str())).collect();
    let theirs = foreign_packet(&key, &records);
    app.publish_packet(&theirs).await.expect("their publish");

    let err = ours
        .publish_node_url(&key, "http://127.0.0.1:4000", Timestamp::now())
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err,
            DiscoveryError::Record(RecordError::TooLarge { size, limit: 1000 }) if size > 1000
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("1000-byte limit"), "{err}");
    // Nothing was published: their packet is still the newest.
    let packet = ours
        .resolve_packet(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(packet.timestamp(), theirs.timestamp());
}

#[tokio::test]
async fn a_malformed_record_resolves_to_nothing_and_is_replaced() {
    let net = testnet(6);
    let (app, ours) = (node(&net).await, node(&net).await);
    let key = Keypair::random();
    let bad = foreign_packet(&key, &[(RECORD_NAME, "v=1;url=ftp://127.0.0.1:21")]);
    app.publish_packet(&bad).await.expect("publish");
    assert!(
        ours.resolve_packet(&key.public_key())
            .await
            .expect("resolve")
            .is_some()
    );
    assert_eq!(
        ours.resolve_node_url(&key.public_key())
            .await
            .expect("resolve"),
        None
    );
    let outcome = ours
        .publish_node_url(&key, "http://127.0.0.1:4000", Timestamp::now())
        .await
        .expect("publish");
    assert_eq!(
        outcome.kept_records, 0,
        "the malformed record was ours to replace"
    );
    assert_eq!(
        app.resolve_node_url(&key.public_key())
            .await
            .expect("resolve")
            .map(|r| r.url)
            .as_deref(),
        Some("http://127.0.0.1:4000")
    );
}

#[tokio::test]
async fn an_announced_service_is_found_on_its_infohash_only() {
    let net = testnet(8);
    let (provider, seeker) = (node(&net).await, node(&net).await);
    provider
        .announce(Service::Witness, 4242)
        .await
        .expect("announce");
    // Announcing again (as a provider does periodically) does not duplicate the result.
    provider
        .announce(Service::Witness, 4242)
        .await
        .expect("announce again");
    let found = seeker.find(Service::Witness).await.expect("find");
    assert_eq!(
        found,
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 4242))],
        "the port given, at the announcer's address"
    );
    assert_eq!(seeker.find(Service::Router).await.expect("find"), vec![]);
    assert_eq!(
        seeker.find(Service::Watchtower).await.expect("find"),
        vec![]
    );
    assert!(matches!(
        provider.announce(Service::Router, 0).await,
        Err(DiscoveryError::InvalidPort)
    ));
}

#[tokio::test]
async fn a_bootstrap_node_and_its_joiners_form_a_dht() {
    let boot =
        BootstrapNode::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bootstrap node");
    assert_eq!(boot.addr(), boot.local_addr().to_string());
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let node = start(vec![boot.addr()], true).expect("node");
        assert!(
            node.bootstrapped().await,
            "joined through the bootstrap node"
        );
        nodes.push(node);
    }
    let key = Keypair::random();
    let outcome = nodes[0]
        .publish_node_url(&key, "http://127.0.0.1:5000", Timestamp::now())
        .await
        .expect("publish");
    assert!(
        outcome.stored_on >= 2,
        "stored by the joiners too, not only the bootstrap node: {outcome:?}"
    );
    let resolved = nodes[3]
        .resolve_node_url(&key.public_key())
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(resolved.url, "http://127.0.0.1:5000");

    nodes[1]
        .announce(Service::Watchtower, 7000)
        .await
        .expect("announce");
    assert_eq!(
        nodes[2].find(Service::Watchtower).await.expect("find"),
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 7000))]
    );
    let info = nodes[0].info().await;
    assert!(info.server_mode);
    assert_eq!(info.local_addr, nodes[0].local_addr());
}

#[tokio::test]
async fn an_unreachable_network_is_an_error_not_an_absence() {
    // Bootstrap through a port nobody answers on.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    let addr = silent.local_addr().expect("addr").to_string();
    let dht = start(vec![addr], false).expect("node");
    let key = Keypair::random();
    let started = Instant::now();
    let err = dht
        .resolve_node_url(&key.public_key())
        .await
        .expect_err("nobody answered");
    assert!(
        matches!(err, DiscoveryError::NoResponse { responded: 0, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = dht
        .publish_node_url(&key, "http://127.0.0.1:1", Timestamp::now())
        .await
        .expect_err("nobody answered");
    assert!(matches!(err, DiscoveryError::NoResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn the_mode_follows_the_bootstrap_unless_set() {
    let boot = BootstrapNode::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("boot");
    let options = |bootstrap: &str| DhtOptions {
        bootstrap: vec![bootstrap.to_string()],
        request_timeout: TIMEOUT,
    };
    // A local DHT: every node stores for the others.
    let local = Dht::start(&options(&boot.addr())).expect("local");
    assert!(local.info().await.server_mode);
    assert_ne!(
        local.local_addr().port(),
        6881,
        "6881 is left to a bootstrap node"
    );
    // Anything else (here a documentation address, which nobody answers): a client.
    let public = Dht::start(&options("192.0.2.1:6881")).expect("public");
    assert!(!public.info().await.server_mode);
    // An explicit mode wins.
    let forced = start(vec![boot.addr()], false).expect("forced");
    assert!(!forced.info().await.server_mode);
    assert!(boot.dht().info().await.server_mode);
}

#[tokio::test]
async fn bad_options_are_refused() {
    let err = start(vec!["no-port-here".into()], false).expect_err("unresolvable bootstrap");
    assert!(matches!(err, DiscoveryError::Bootstrap(_)), "{err:?}");
    let err = BootstrapNode::start("[::1]:0".parse().expect("v6")).expect_err("IPv6");
    assert!(matches!(err, DiscoveryError::NotIpv4(_)), "{err:?}");
    let key = Keypair::random();
    let net = testnet(3);
    let err = node(&net)
        .await
        .publish_node_url(&key, "ftp://127.0.0.1", Timestamp::now())
        .await
        .expect_err("bad URL");
    assert!(
        matches!(err, DiscoveryError::Record(RecordError::InvalidUrl { .. })),
        "{err:?}"
    );
}
