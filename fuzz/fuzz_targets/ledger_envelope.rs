//! Arbitrary envelope bytes to `Ledger::open_envelope` and every message to `handle_message`
//! (also the messages of envelopes whose signature does not verify, so the fuzzer gets past
//! it), then time passes and the ledger ticks and merges. The ledger has direct and routed
//! payments in flight, an invoice and a second peer to forward to. A rejection must change
//! nothing and send nothing.
#![no_main]

use std::sync::OnceLock;

use atomicity_core::{
    Amount, Asset, Envelope, FeePolicy, HashlockRole, Hop, Keypair, Ledger, NewHashlock, Reply,
    RoutePart, Signed, StoreOp, WitnessCondition, WitnessTerms, payment_hash,
};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

/// The peer `[1; 32]` (the sender), the ledger `[2; 32]`, a second peer `[3; 32]`.
fn keys() -> &'static (Keypair, Keypair, Keypair) {
    static KEYS: OnceLock<(Keypair, Keypair, Keypair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            Keypair::from_secret_key(&[1; 32]),
            Keypair::from_secret_key(&[2; 32]),
            Keypair::from_secret_key(&[3; 32]),
        )
    })
}

/// A condition on `p` with one witness log (the `docs/protocol.md` vector's).
fn condition(p: &[u8; 32]) -> WitnessCondition {
    static VKEY: OnceLock<String> = OnceLock::new();
    let vkey = VKEY.get_or_init(|| {
        atomicity_witness::note::Signer::new(
            "witness.example/log",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .expect("signer")
        .verifier()
        .vkey()
    });
    WitnessCondition {
        hash: payment_hash(p),
        witnesses: vec![WitnessTerms::new(vkey.clone(), 0, 1000)],
    }
}

/// The ledger `[2; 32]`: USD lines both ways with both peers, one direct offer and one routed
/// payment (through the sender) of its own, an open invoice (secret `[0x42; 32]`, 10.00 USD,
/// deadline `NOW + 600`), and a fee to forward to the second peer.
fn receiver() -> Ledger {
    let (peer, me, other) = keys();
    let usd = Asset::new("USD", 2).expect("USD");
    let mut ledger = Ledger::new(me.clone());
    let mut ops = Vec::new();
    for p in [peer.public_key(), other.public_key()] {
        ledger.add_peer(p.clone(), None, &mut ops).expect("peer");
        ledger
            .set_limits(
                &p,
                &usd,
                Some(Amount::from_minor(100_000)),
                Some(Amount::from_minor(100_000)),
                &mut ops,
            )
            .expect("line");
    }
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
    ledger
        .pay_routed(
            &other.public_key(),
            &usd,
            vec![RoutePart {
                hops: vec![
                    Hop {
                        next: peer.public_key(),
                        amount: Amount::from_minor(11),
                    },
                    Hop {
                        next: other.public_key(),
                        amount: Amount::from_minor(10),
                    },
                ],
            }],
            condition(&[0x43; 32]),
            NOW + 600,
            [1; 32],
            String::new(),
            None,
            NOW,
            &mut ops,
        )
        .expect("routed payment");
    ledger
        .add_hashlock(
            NewHashlock {
                p: [0x42; 32],
                role: HashlockRole::Payee,
                payee: me.public_key(),
                asset: usd.clone(),
                amount: Amount::from_minor(1000),
                condition: condition(&[0x42; 32]),
                expires_at: NOW + 600,
                memo: String::new(),
            },
            NOW,
            &mut ops,
        )
        .expect("invoice");
    ledger
        .set_fees(
            &other.public_key(),
            &usd,
            FeePolicy {
                base: Amount::from_minor(1),
                ppm: 1000,
            },
            &mut ops,
        )
        .expect("fees");
    let _ = ledger.take_outgoing();
    ledger
}

/// What a rejection must leave as it was.
fn print(ledger: &Ledger) -> String {
    let hashlock = ledger.hashlock(&payment_hash(&[0x42; 32])).cloned();
    let channels: Vec<String> = ledger
        .channels()
        .map(|c| format!("{:?} {:?}", c.out_conditionals(), c.in_conditionals()))
        .collect();
    format!("{:?} {hashlock:?} {channels:?}", ledger.balances())
}

fuzz_target!(|data: &[u8]| {
    let mut ledger = receiver();
    let mut messages = Vec::new();
    if let Ok(envelope) = ledger.open_envelope(data, NOW) {
        messages.extend(envelope.messages);
    }
    if let Ok(envelope) = Signed::<Envelope>::decode(data) {
        messages.extend(envelope.body().messages.clone());
    }
    let from = keys().0.public_key();
    for message in messages {
        let before = print(&ledger);
        let mut ops = Vec::new();
        let reply = ledger.handle_message(&from, message, NOW, &mut ops);
        let outgoing = ledger.take_outgoing();
        if let Reply::Rejected { .. } = reply {
            assert!(ops.iter().all(|op| matches!(op, StoreOp::PutEvidence(_))));
            assert_eq!(print(&ledger), before);
            assert!(outgoing.is_empty());
        }
        let mut merged = Vec::new();
        let _ = ledger.merge_states(NOW, &mut merged);
    }
    // Time passes: the invoice and the routed IOUs expire.
    let later = NOW + 700;
    let mut ops = Vec::new();
    ledger.tick(later, &mut ops);
    let _ = ledger.merge_states(later, &mut ops);
    let _ = ledger.resend_messages(later, 0);
    let _ = ledger.take_outgoing();
});
