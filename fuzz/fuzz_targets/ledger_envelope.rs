//! Arbitrary envelope bytes to `Ledger::open_envelope` and every message to `handle_message`
//! (also the messages of envelopes whose signature does not verify, so the fuzzer gets past
//! it). A rejection must change nothing, and the ledger must stay what its store ops rebuild.
#![no_main]

use std::sync::OnceLock;

use atomicity_core::{Amount, Asset, Envelope, Keypair, Ledger, Reply, Signed, StoreOp};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

fn keys() -> &'static (Keypair, Keypair) {
    static KEYS: OnceLock<(Keypair, Keypair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            Keypair::from_secret_key(&[1; 32]),
            Keypair::from_secret_key(&[2; 32]),
        )
    })
}

/// The holder `[2; 32]` with the peer `[1; 32]`, USD lines both ways, and one offer of its own.
fn receiver() -> (Ledger, Vec<StoreOp>) {
    let (peer, me) = keys();
    let usd = Asset::new("USD", 2).expect("USD");
    let mut ledger = Ledger::new(me.clone());
    let mut ops = Vec::new();
    ledger
        .add_peer(peer.public_key(), None, &mut ops)
        .expect("peer");
    ledger
        .set_limits(
            &peer.public_key(),
            &usd,
            Some(Amount::from_minor(1000)),
            Some(Amount::from_minor(1000)),
            &mut ops,
        )
        .expect("line");
    ledger
        .pay(
            &peer.public_key(),
            &usd,
            Amount::from_minor(10),
            [0; 32],
            String::new(),
            NOW,
            NOW + 60,
            &mut ops,
        )
        .expect("pay");
    (ledger, ops)
}

fn balances(ledger: &Ledger) -> String {
    format!("{:?}", ledger.balances())
}

fuzz_target!(|data: &[u8]| {
    let (mut ledger, _) = receiver();
    let mut messages = Vec::new();
    if let Ok(envelope) = ledger.open_envelope(data, NOW) {
        messages.extend(envelope.messages);
    }
    if let Ok(envelope) = Signed::<Envelope>::decode(data) {
        messages.extend(envelope.body().messages.clone());
    }
    let from = keys().0.public_key();
    for message in messages {
        let before = balances(&ledger);
        let mut ops = Vec::new();
        let reply = ledger.handle_message(&from, message, NOW, &mut ops);
        if let Reply::Rejected { .. } = reply {
            assert!(ops.iter().all(|op| matches!(op, StoreOp::PutEvidence(_))));
            assert_eq!(balances(&ledger), before);
        }
        let mut merged = Vec::new();
        let _ = ledger.merge_states(&mut merged);
    }
});
