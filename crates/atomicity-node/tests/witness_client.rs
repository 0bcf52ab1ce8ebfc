//! The node's witness client against real witness services on loopback: the single calls, and
//! `publish_any` past a dead witness, past a censoring one, and timing out when every witness
//! censors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atomicity_node::witness_client::{
    BlockInfo, PublishError, PublishTarget, WitnessClient, WitnessClientError, publish_any,
};
use atomicity_witness::bundle::{ProofBundle, verify_publication};
use atomicity_witness::note::Verifier;
use atomicity_witness::service::{self, RunningWitness, WitnessConfig};
use tokio::time::Instant;

async fn start_witness(dir: &std::path::Path, censor: bool) -> RunningWitness {
    service::start(WitnessConfig {
        dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        // Long blocks: no marker appears in the middle of a test.
        block_seconds: 3600,
        origin: None,
        cosigners: Vec::new(),
        censor,
    })
    .await
    .expect("witness starts")
}

/// A loopback URL with nothing listening.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}")
}

/// A target that takes a bundle only if it proves `p` in the log with key `vkey`.
fn target(url: &str, vkey: &str, p: [u8; 32]) -> PublishTarget {
    let verifier = Verifier::from_vkey(vkey).expect("vkey");
    PublishTarget {
        client: WitnessClient::new(url),
        accept: Box::new(move |bytes| {
            let bundle = ProofBundle::from_bytes(bytes).map_err(|e| e.to_string())?;
            verify_publication(&bundle, &p, &verifier, None, 0, u64::MAX, u64::MAX)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

fn verified(bytes: &[u8], p: &[u8; 32], vkey: &str) -> u64 {
    let bundle = ProofBundle::from_bytes(bytes).expect("bundle decodes");
    let verifier = Verifier::from_vkey(vkey).expect("vkey");
    verify_publication(&bundle, p, &verifier, None, 0, u64::MAX, u64::MAX)
        .expect("bundle verifies")
        .block
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[tokio::test(flavor = "multi_thread")]
async fn vkey_block_submit_and_bundle() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start_witness(temp.path(), false).await;
    let client = WitnessClient::new(&format!("{}/", witness.url));
    assert_eq!(client.url(), witness.url);

    assert_eq!(client.vkey().await.expect("vkey"), witness.vkey);
    let block = client.block().await.expect("block");
    assert!(
        matches!(
            block,
            BlockInfo {
                block: 0,
                block_seconds: 3600,
                size: 1,
                ..
            }
        ),
        "{block:?}"
    );
    assert!(block.time > 0);

    let p = [5u8; 32];
    assert_eq!(client.bundle(&p).await.expect("bundle"), None);
    let first = client.submit(&p).await.expect("submit");
    assert_eq!((first.index, first.block, first.new), (1, 0, true));
    let again = client.submit(&p).await.expect("submit again");
    assert_eq!((again.index, again.block, again.new), (1, 0, false));
    let bytes = client
        .bundle(&p)
        .await
        .expect("bundle")
        .expect("a bundle for a submitted secret");
    assert_eq!(verified(&bytes, &p, &witness.vkey), 0);
    assert_eq!(client.block().await.expect("block").size, 2);

    // A refusal names the URL and carries the witness's code.
    let censoring_dir = tempfile::tempdir().expect("temp dir");
    let censoring = start_witness(censoring_dir.path(), true).await;
    let e = WitnessClient::new(&censoring.url)
        .submit(&p)
        .await
        .expect_err("censored");
    assert_eq!(e.code(), Some("censored"));
    assert!(
        matches!(e, WitnessClientError::Refused { status: 503, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains(&censoring.url), "{e}");

    // A server that is not a witness: its error is an error, not "unknown p".
    let e = WitnessClient::new(&format!("{}/nothing", witness.url))
        .bundle(&p)
        .await
        .expect_err("not a witness route");
    assert_eq!(e.code(), Some("not_found"), "{e}");

    censoring.shutdown().await;
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_witness_is_unreachable_and_named() {
    let url = dead_url().await;
    let client = WitnessClient::new(&url);
    for e in [
        client.vkey().await.expect_err("dead"),
        client.block().await.map(|_| ()).expect_err("dead"),
        client.submit(&[1; 32]).await.map(|_| ()).expect_err("dead"),
        client.bundle(&[1; 32]).await.map(|_| ()).expect_err("dead"),
    ] {
        assert!(matches!(e, WitnessClientError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_any_goes_past_a_dead_witness() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start_witness(temp.path(), false).await;
    let p = [7u8; 32];
    let targets = vec![
        target(&dead_url().await, &witness.vkey, p),
        target(&witness.url, &witness.vkey, p),
    ];
    let (index, bytes) = publish_any(targets, p, soon(10_000), Duration::from_millis(100))
        .await
        .expect("published");
    assert_eq!(index, 1);
    assert_eq!(verified(&bytes, &p, &witness.vkey), 0);
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_any_goes_past_a_censoring_witness() {
    let (a, b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let censoring = start_witness(a.path(), true).await;
    let good = start_witness(b.path(), false).await;
    let p = [8u8; 32];
    let targets = vec![
        target(&censoring.url, &censoring.vkey, p),
        target(&good.url, &good.vkey, p),
    ];
    let (index, bytes) = publish_any(targets, p, soon(10_000), Duration::from_millis(100))
        .await
        .expect("published");
    assert_eq!(index, 1);
    assert_eq!(verified(&bytes, &p, &good.vkey), 0);
    // The censoring witness stored nothing.
    assert_eq!(
        WitnessClient::new(&censoring.url)
            .bundle(&p)
            .await
            .expect("bundle"),
        None
    );
    censoring.shutdown().await;
    good.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_any_times_out_when_every_witness_censors() {
    let temp = tempfile::tempdir().expect("temp dir");
    let censoring = start_witness(temp.path(), true).await;
    let p = [9u8; 32];
    let started = Instant::now();
    let e = publish_any(
        vec![target(&censoring.url, &censoring.vkey, p)],
        p,
        soon(1_200),
        Duration::from_millis(100),
    )
    .await
    .expect_err("nobody publishes");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1_100) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let PublishError::Timeout { attempts } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].contains("censored"), "{attempts:?}");
    assert!(attempts[0].contains(&censoring.url), "{attempts:?}");
    assert!(e.to_string().contains("censored"), "{e}");

    // No targets at all.
    assert_eq!(
        publish_any(Vec::new(), p, soon(1_000), Duration::from_millis(100)).await,
        Err(PublishError::NoTargets)
    );
    censoring.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_bundle_is_fetched_again() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start_witness(temp.path(), false).await;
    let p = [10u8; 32];
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let check = target(&witness.url, &witness.vkey, p).accept;
    // Refuses the first two bundles, as a policy would while cosignatures are missing.
    let targets = vec![PublishTarget {
        client: WitnessClient::new(&witness.url),
        accept: Box::new(move |bytes| {
            if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err("not cosigned yet".into());
            }
            check(bytes)
        }),
    }];
    let (index, bytes) = publish_any(targets, p, soon(10_000), Duration::from_millis(50))
        .await
        .expect("published");
    assert_eq!(index, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(verified(&bytes, &p, &witness.vkey), 0);

    // Until the deadline, the last words say why the bundle was refused.
    let refusing = vec![PublishTarget {
        client: WitnessClient::new(&witness.url),
        accept: Box::new(|_| Err("not cosigned yet".into())),
    }];
    let e = publish_any(refusing, p, soon(500), Duration::from_millis(50))
        .await
        .expect_err("never accepted");
    assert!(e.to_string().contains("not cosigned yet"), "{e}");
    assert!(e.to_string().contains(&witness.url), "{e}");
    witness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_published_at_once_share_requests_and_each_gets_its_own_bundle() {
    let temp = tempfile::tempdir().expect("temp dir");
    let witness = start_witness(temp.path(), false).await;
    let client = WitnessClient::new(&witness.url);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u8 {
        let client = client.clone();
        tasks.spawn(async move {
            let p = [i; 32];
            let submitted = client.submit_soon(&p).await.expect("submitted");
            let bytes = client
                .bundle_soon(&p)
                .await
                .expect("bundle")
                .expect("a bundle for a submitted secret");
            (p, submitted.index, bytes)
        });
    }
    let mut indexes = std::collections::BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let (p, index, bytes) = done.expect("task");
        assert_eq!(verified(&bytes, &p, &witness.vkey), 0);
        assert!(indexes.insert(index), "index {index} given twice");
    }
    assert_eq!(indexes.len(), 200);
    // A secret the witness never logged, among known ones.
    let answers = client
        .bundles(&[[1; 32], [250; 32]])
        .await
        .expect("bundles");
    assert!(answers[0].is_some() && answers[1].is_none(), "{answers:?}");
    // A censoring witness refuses every secret of a batch, each caller hears it.
    let censoring_dir = tempfile::tempdir().expect("temp dir");
    let censoring = start_witness(censoring_dir.path(), true).await;
    let e = WitnessClient::new(&censoring.url)
        .submit_soon(&[1; 32])
        .await
        .expect_err("censored");
    assert_eq!(e.code(), Some("censored"));
    censoring.shutdown().await;
    witness.shutdown().await;
}
