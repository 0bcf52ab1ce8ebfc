//! The design document's examples as the devnet runs them, each on its own fresh network of
//! real processes on 127.0.0.1 (a local DHT, two witnesses with their watchtowers, a router,
//! and the nodes the example needs): every balance of every party involved is checked exactly
//! by the example itself, which fails naming the party whose balance is wrong.

use std::path::PathBuf;
use std::time::Instant;

use atomicity_cli::devnet::{EXAMPLES, Network};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atomicity"))
}

fn run(name: &str) {
    let example = EXAMPLES
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no example {name}"));
    let mut root = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("ATOMICITY_KEEP_TEST_DIRS").is_some() {
        root.disable_cleanup(true);
        eprintln!("keeping {}", root.path().display());
    }
    let started = Instant::now();
    let net = Network::start_cast(root.path(), &bin(), example.cast).expect("the network starts");
    let up = started.elapsed();
    let result = (example.run)(&net);
    eprintln!(
        "{name}: network up in {:.1} s, example {:.1} s",
        up.as_secs_f64(),
        (started.elapsed() - up).as_secs_f64()
    );
    net.stop();
    if let Err(e) = result {
        panic!("example {name} failed: {e:#}");
    }
}

#[test]
fn moms_coffee_via_a_lightning_swap() {
    run("coffee");
}

#[test]
fn moms_friend_pays_through_me_thanks_to_the_second_degree_limit() {
    run("second-degree");
}

#[test]
fn the_dinner_bill_filled_by_credit_onchain_and_lightning() {
    run("dinner");
}

/// A balance that is not as expected fails the check, naming the party, the peer and both
/// amounts.
#[test]
fn a_wrong_balance_names_the_party() {
    let root = tempfile::tempdir().expect("tempdir");
    let net = Network::start_cast(root.path(), &bin(), &["me", "mom"]).expect("starts");
    let before = net.snapshot(&["me", "mom"]).expect("balances");
    let err = net
        .expect_changes_within(
            &before,
            &["me", "mom"],
            &[("mom", "me", "USD", "-1.00")],
            std::time::Duration::from_secs(1),
        )
        .expect_err("nothing was paid");
    assert_eq!(
        err.to_string(),
        "mom's balance with me in USD is 0.00, expected -1.00"
    );
    net.stop();
}
