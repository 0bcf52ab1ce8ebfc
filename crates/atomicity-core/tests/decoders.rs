//! Fuzz smoke tests on stable Rust: random bytes and random mutations of valid encodings go
//! to every decoder and to a ledger; nothing may panic, every accepted encoding is canonical,
//! and whatever a peer sends, a rejection changes nothing and the ledger stays exactly what
//! its store ops rebuild. (`fuzz/` has the cargo-fuzz targets for longer runs.)

mod common;

use std::fmt::Debug;
use std::str::FromStr;

use atomicity_core::signed::SignedBody;
use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, Envelope, IouState, Keypair, Ledger,
    LineId, Message, Release, Reply, ResolvedSet, Signed, StoreOp, Total, decode_replies,
    encode_replies, parse_key,
};
use common::{
    Store, cases, conditional_iou, envelope, iou_state, key, message, print_of, reason, reencode,
    reply, unsigned_of, usd,
};
use proptest::prelude::*;
use proptest::sample::Index;

const NOW: u64 = 1_700_000_000;

type Outcome = Result<(), TestCaseError>;

// ---------------------------------------------------------------------------------------------
// Inputs.

/// One way to damage an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Overwrite four bytes with a length-like value (where the u32 length prefixes live).
    Length(Index, u32),
    /// Repeat a stretch of the input (duplicated fields and messages).
    Repeat(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => any::<Index>().prop_map(Mutation::Flip),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (
            any::<Index>(),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(64),
                Just(4096),
                Just(4097),
                Just(65_536),
                Just(u32::MAX),
                any::<u32>(),
            ]
        )
            .prop_map(|(i, v)| Mutation::Length(i, v)),
        1 => (any::<Index>(), 1usize..48).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Insert(_, b) = m {
            bytes.extend_from_slice(b);
        }
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i) => bytes[i.index(len)] ^= 1 << (i.index(8 * len) % 8),
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::Length(i, v) => {
            let at = i.index(len);
            for (k, b) in v.to_be_bytes().iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::Repeat(i, n) => {
            let at = i.index(len);
            let end = (at + n).min(len);
            let copy = bytes[at..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

fn signed_bytes(m: &Message) -> Vec<u8> {
    match m {
        Message::Offer(o) => o.to_bytes(),
        Message::State(s) => s.to_bytes(),
        Message::Accept(a) => a.to_bytes(),
        Message::Release(r) => r.to_bytes(),
        Message::Forward(o, _) | Message::Issued(o) => o.to_bytes(),
        // Not a signed object: its own bytes (which no signed decoder takes).
        Message::Proof { .. } => m.object_bytes(),
    }
}

/// A valid encoding of any kind: a signed object, an envelope, or replies.
fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => message().prop_map(|m| signed_bytes(&m)),
        2 => envelope().prop_map(|(k, e)| Signed::sign(e, key(k)).to_bytes()),
        1 => prop::collection::vec(reply(), 0..4).prop_map(|r| encode_replies(&r)),
        // An envelope that the test ledger will open: from its peer, to it, on time.
        2 => prop::collection::vec(message(), 1..3).prop_map(|messages| {
            Signed::sign(
                Envelope {
                    from: key(0).public_key(),
                    to: key(1).public_key(),
                    sent_at: NOW,
                    messages,
                },
                key(0),
            )
            .to_bytes()
        }),
    ]
}

fn mutated_encoding() -> impl Strategy<Value = Vec<u8>> {
    (valid_encoding(), prop::collection::vec(mutation(), 1..4)).prop_map(|(mut bytes, ms)| {
        for m in &ms {
            mutate(&mut bytes, m);
        }
        bytes
    })
}

// ---------------------------------------------------------------------------------------------
// Decoders.

/// Decodes `bytes` as a `T`; if that works, the bytes must be the canonical encoding and
/// `decode_verified` must agree with `decode` + `verify`.
fn try_signed<T: SignedBody + Debug>(bytes: &[u8]) -> Result<Option<Signed<T>>, TestCaseError> {
    match Signed::<T>::decode(bytes) {
        Ok(signed) => {
            let canonical = reencode(signed.body());
            prop_assert_eq!(
                canonical.as_slice(),
                unsigned_of(bytes),
                "{} accepted a non-canonical encoding",
                T::NAME
            );
            prop_assert_eq!(signed.to_bytes(), bytes.to_vec());
            let verified = signed.verify().is_ok();
            prop_assert_eq!(Signed::<T>::decode_verified(bytes).is_ok(), verified);
            let _ = signed.hash();
            Ok(Some(signed))
        }
        Err(_) => {
            prop_assert!(Signed::<T>::decode_verified(bytes).is_err());
            Ok(None)
        }
    }
}

fn feed_decoders(bytes: &[u8]) -> Outcome {
    try_signed::<IouState>(bytes)?;
    try_signed::<ConditionalIou>(bytes)?;
    try_signed::<Acceptance>(bytes)?;
    try_signed::<Release>(bytes)?;
    if let Some(envelope) = try_signed::<Envelope>(bytes)? {
        for m in &envelope.body().messages {
            // Inner objects were parsed strictly too.
            let inner = signed_bytes(m);
            prop_assert!(try_signed_any(&inner)?, "inner object does not re-decode");
            let _ = match m {
                Message::Offer(o) => o.verify(),
                Message::State(s) => s.verify(),
                Message::Accept(a) => a.verify(),
                Message::Release(r) => r.verify(),
                Message::Forward(o, _) | Message::Issued(o) => o.verify(),
                Message::Proof { .. } => Ok(()),
            };
        }
    }
    if let Ok(replies) = decode_replies(bytes) {
        // Replies are not signed; rejection texts are read leniently (lossy UTF-8), so the
        // re-encoding may differ from the input, but one round trip is stable.
        let again = encode_replies(&replies);
        prop_assert_eq!(decode_replies(&again), Ok(replies.clone()));
        let lossy_text = replies
            .iter()
            .any(|r| matches!(r, Reply::Rejected { text, .. } if text.contains('\u{fffd}')));
        if !lossy_text {
            prop_assert_eq!(
                again,
                bytes.to_vec(),
                "replies accepted a non-canonical encoding"
            );
        }
    }
    feed_text(&String::from_utf8_lossy(bytes));
    Ok(())
}

fn try_signed_any(bytes: &[u8]) -> Result<bool, TestCaseError> {
    Ok(try_signed::<IouState>(bytes)?.is_some()
        || try_signed::<ConditionalIou>(bytes)?.is_some()
        || try_signed::<Acceptance>(bytes)?.is_some()
        || try_signed::<Release>(bytes)?.is_some())
}

fn feed_text(text: &str) {
    if let Ok(asset) = Asset::from_str(text) {
        assert_eq!(asset.to_string().parse::<Asset>(), Ok(asset.clone()));
        let _ = asset.parse_amount(text);
    }
    for scale in [0u8, 2, 8, 18, 19, 255] {
        if let Ok(amount) = Amount::parse(text, scale) {
            assert_eq!(Amount::parse(&amount.to_decimal(scale), scale), Ok(amount));
        }
    }
    let _ = parse_key(text);
}

// ---------------------------------------------------------------------------------------------
// A ledger on the receiving end.

/// Node 1: node 0 is its peer with USD lines both ways, and node 1 has offered node 0 three
/// payments (ids 0, 1, 2) so that answers have something to hit.
fn receiver() -> (Ledger, Store) {
    let mut ledger = Ledger::new(key(1).clone());
    let mut ops = Vec::new();
    let peer = key(0).public_key();
    ledger.add_peer(peer.clone(), None, &mut ops).expect("peer");
    ledger
        .set_limits(
            &peer,
            &usd(),
            Some(Amount::from_minor(500)),
            Some(Amount::from_minor(500)),
            &mut ops,
        )
        .expect("line");
    for n in 0..3u8 {
        ledger
            .pay(
                &peer,
                &usd(),
                Amount::from_minor(10),
                [n; 32],
                String::new(),
                NOW,
                NOW + 60,
                &mut ops,
            )
            .expect("pay");
    }
    let mut store = Store::default();
    store.apply(&ops).expect("store");
    (ledger, store)
}

/// Hands one message to the ledger and checks the outcome: a rejection changes nothing but
/// evidence; anything else is persisted exactly.
fn deliver(ledger: &mut Ledger, store: &mut Store, from: &Keypair, message: Message) -> Outcome {
    let before = print_of(ledger);
    let mut ops = Vec::new();
    let reply = ledger.handle_message(&from.public_key(), message, NOW, &mut ops);
    if let Reply::Rejected { .. } = reply {
        prop_assert!(
            ops.iter().all(|op| matches!(op, StoreOp::PutEvidence(_))),
            "a rejection persisted {:?}",
            ops
        );
        prop_assert_eq!(print_of(ledger), before, "a rejection changed the ledger");
    }
    store
        .apply(&ops)
        .map_err(|e| TestCaseError::fail(format!("bad ops: {e}")))?;
    let restored = Ledger::restore(key(1).clone(), store.snapshot())
        .map_err(|e| TestCaseError::fail(format!("store unreadable: {e}")))?;
    prop_assert_eq!(
        print_of(&restored),
        print_of(ledger),
        "memory and store differ"
    );
    // The reply goes back over the wire.
    let bytes = encode_replies(std::slice::from_ref(&reply));
    prop_assert_eq!(decode_replies(&bytes), Ok(vec![reply]));
    Ok(())
}

fn feed_ledger(bytes: &[u8]) -> Outcome {
    let (mut ledger, mut store) = receiver();
    if let Ok(envelope) = ledger.open_envelope(bytes, NOW) {
        for m in envelope.messages {
            deliver(&mut ledger, &mut store, key(0), m)?;
        }
    }
    // A shell that forgot to check the envelope's signature must still be safe.
    if let Ok(envelope) = Signed::<Envelope>::decode(bytes) {
        for m in envelope.body().messages.clone() {
            deliver(&mut ledger, &mut store, key(0), m)?;
        }
    }
    // The same bytes as a lone object.
    for m in [
        Signed::decode(bytes).ok().map(Message::Offer),
        Signed::decode(bytes).ok().map(Message::State),
        Signed::decode(bytes).ok().map(Message::Accept),
        Signed::decode(bytes).ok().map(Message::Release),
    ]
    .into_iter()
    .flatten()
    {
        deliver(&mut ledger, &mut store, key(0), m)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        feed_decoders(&bytes)?;
        feed_ledger(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(bytes in mutated_encoding()) {
        feed_decoders(&bytes)?;
        feed_ledger(&bytes)?;
    }

    #[test]
    fn valid_encodings_decode(bytes in valid_encoding()) {
        feed_decoders(&bytes)?;
        feed_ledger(&bytes)?;
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,40}", digits in "[0-9.:A-Z]{0,30}") {
        feed_text(&text);
        feed_text(&digits);
    }
}

// ---------------------------------------------------------------------------------------------
// A hostile peer: correctly signed messages with arbitrary contents.

/// A message node 0 could send node 1, described before it is signed.
#[derive(Clone, Debug)]
enum Spec {
    Offer {
        id: u64,
        amount: u64,
        expires_in: i64,
        memo_len: usize,
    },
    State {
        seq: u64,
        total: u128,
        resolved: Vec<u64>,
    },
    /// An answer to one of node 1's offers (ids 0-2 exist).
    Answer {
        accept: bool,
        id: u64,
        right_hash: bool,
        reason: atomicity_core::ReleaseReason,
    },
    /// Something about another line or signed by another key.
    Stray(Box<Message>),
    /// Repeat an earlier message.
    Again(Index),
}

fn small() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..6, 1 => 0u64..600, 1 => any::<u64>()]
}

/// A total for a state: mostly small, sometimes past `u64::MAX` (only u128 totals can say it).
fn small_total() -> impl Strategy<Value = u128> {
    prop_oneof![
        5 => small().prop_map(u128::from),
        1 => (0u128..600).prop_map(|x| u128::from(u64::MAX) + x),
        1 => any::<u128>(),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (small(), small(), -5i64..100, 0usize..300).prop_map(
            |(id, amount, expires_in, memo_len)| Spec::Offer { id, amount, expires_in, memo_len }
        ),
        3 => (0u64..6, small_total(), prop::collection::vec(0u64..8, 0..5))
            .prop_map(|(seq, total, resolved)| Spec::State { seq, total, resolved }),
        2 => (any::<bool>(), 0u64..4, prop::bool::weighted(0.8), reason()).prop_map(
            |(accept, id, right_hash, reason)| Spec::Answer { accept, id, right_hash, reason }
        ),
        1 => prop_oneof![
            message(),
            iou_state().prop_map(|(_, body)| Message::State(Signed::sign(body, key(0)))),
            conditional_iou().prop_map(|(_, body)| Message::Offer(Signed::sign(body, key(0)))),
        ]
        .prop_map(|m| Spec::Stray(Box::new(m))),
        1 => any::<Index>().prop_map(Spec::Again),
    ]
}

fn build(spec: &Spec, ledger: &Ledger, sent: &[Message]) -> Option<Message> {
    let a = key(0);
    let line_in = LineId {
        issuer: a.public_key(),
        holder: key(1).public_key(),
        asset: usd(),
    };
    let line_out = LineId {
        issuer: key(1).public_key(),
        holder: a.public_key(),
        asset: usd(),
    };
    Some(match spec {
        Spec::Offer {
            id,
            amount,
            expires_in,
            memo_len,
        } => {
            let amount = Amount::from_minor((*amount).max(1));
            let iou = ConditionalIou {
                line: line_in,
                id: *id,
                amount,
                condition: Condition::HolderAccepts,
                payment_id: [*id as u8; 32],
                expires_at: NOW.saturating_add_signed(*expires_in),
                memo: "m".repeat(*memo_len),
            };
            Message::Offer(Signed::sign(iou, a))
        }
        Spec::State {
            seq,
            total,
            resolved,
        } => {
            let mut set = ResolvedSet::new();
            for id in resolved {
                set.insert(*id);
            }
            Message::State(Signed::sign(
                IouState {
                    line: line_in,
                    seq: *seq,
                    total: Total::from_minor(*total),
                    resolved: set,
                },
                a,
            ))
        }
        Spec::Answer {
            accept,
            id,
            right_hash,
            reason,
        } => {
            let channel = ledger.channel(&a.public_key(), &usd())?;
            let iou_hash = match channel.out_conditionals().get(id) {
                Some(c) if *right_hash => c.iou.hash(),
                _ => [*id as u8; 32],
            };
            if *accept {
                Message::Accept(Signed::sign(
                    Acceptance {
                        line: line_out,
                        id: *id,
                        iou_hash,
                    },
                    a,
                ))
            } else {
                Message::Release(Signed::sign(
                    Release {
                        line: line_out,
                        id: *id,
                        iou_hash,
                        reason: *reason,
                    },
                    a,
                ))
            }
        }
        Spec::Stray(m) => (**m).clone(),
        Spec::Again(i) => {
            if sent.is_empty() {
                return None;
            }
            sent[i.index(sent.len())].clone()
        }
    })
}

/// The message as the peer API would see it: encoded and decoded again. (The ledger trusts
/// that messages passed the decoder: a hand-built object the decoder would refuse, e.g. a
/// 257-byte memo, would be stored and then fail `Ledger::restore`.)
fn over_the_wire(m: &Message) -> Option<Message> {
    let bytes = signed_bytes(m);
    Some(match m {
        Message::Offer(_) => Message::Offer(Signed::decode(&bytes).ok()?),
        Message::State(_) => Message::State(Signed::decode(&bytes).ok()?),
        Message::Accept(_) => Message::Accept(Signed::decode(&bytes).ok()?),
        Message::Release(_) => Message::Release(Signed::decode(&bytes).ok()?),
        Message::Forward(_, onward) => {
            Message::Forward(Signed::decode(&bytes).ok()?, onward.clone())
        }
        Message::Issued(_) => Message::Issued(Signed::decode(&bytes).ok()?),
        Message::Proof { .. } => m.clone(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    /// Whatever a peer signs and sends, in any order: no panic, rejections change nothing,
    /// memory always equals what the store rebuilds, and the limits hold.
    #[test]
    fn hostile_peer_cannot_break_the_ledger(specs in prop::collection::vec(spec(), 1..40)) {
        let (mut ledger, mut store) = receiver();
        let mut sent = Vec::new();
        for spec in &specs {
            let Some(message) = build(spec, &ledger, &sent).and_then(|m| over_the_wire(&m))
            else {
                continue;
            };
            sent.push(message.clone());
            deliver(&mut ledger, &mut store, key(0), message)?;
            // Merging what was answered is always possible and consistent.
            if sent.len() % 5 == 0 {
                let mut ops = Vec::new();
                let _ = ledger.merge_states(NOW, &mut ops);
                store.apply(&ops).map_err(TestCaseError::fail)?;
            }
            let channel = ledger.channel(&key(0).public_key(), &usd()).expect("line");
            let view = channel.view().expect("numbers fit");
            // What node 0 owes node 1 never passes node 1's acceptance limit.
            prop_assert!(view.net <= 500, "{:?}", view);
            prop_assert!(-view.net + i128::from(view.pending_out.minor()) <= 500, "{:?}", view);
        }
        // Evidence is only ever kept against the peer that sent the message.
        prop_assert!(store.evidence.iter().all(|e| e.peer == key(0).public_key()));
    }

    /// A damaged store is refused or read, never a panic.
    #[test]
    fn damaged_store_never_panics(
        which in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (_, store) = receiver();
        let mut snapshot = store.snapshot();
        let mut fields: Vec<&mut Vec<u8>> = Vec::new();
        for line in &mut snapshot.lines {
            fields.extend(line.out_state.as_mut());
            fields.extend(line.in_state.as_mut());
        }
        for c in &mut snapshot.conditionals {
            fields.push(&mut c.iou);
            fields.extend(c.answer.as_mut());
        }
        let n = fields.len();
        let field = &mut fields[which.index(n)];
        for m in &mutations {
            mutate(field, m);
        }
        let _ = Ledger::restore(key(1).clone(), snapshot);
    }
}
