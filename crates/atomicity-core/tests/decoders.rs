//! Fuzz smoke tests on stable Rust: random bytes and random mutations of valid encodings go
//! to every decoder, to the invoice parser and to a ledger; nothing may panic, every accepted
//! encoding is canonical, and whatever its peers send (direct and routed payments, proofs,
//! releases, states, in any order and at any time), a rejection changes nothing and the ledger
//! stays exactly what its store ops rebuild. (`fuzz/` has the cargo-fuzz targets for longer
//! runs.)

mod common;

use std::fmt::Debug;
use std::str::FromStr;

use atomicity_core::encoding::Reader;
use atomicity_core::routed::decode_condition;
use atomicity_core::signed::SignedBody;
use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, Envelope, FeePolicy, HashlockRecord,
    HashlockRole, Hop, Invoice, IouState, Keypair, Ledger, LineId, Message, NewHashlock, Onward,
    Publication, Release, ReleaseReason, Reply, ResolvedSet, RoutePart, Signed, StoreOp, Total,
    WitnessCondition, WitnessProof, WitnessTerms, decode_replies, encode_replies, parse_key,
    payment_hash,
};
use atomicity_witness::log::Log;
use common::{
    LedgerPrint, Store, acceptance, cases, condition_bytes, conditional_iou, cosigner, envelope,
    invoice, iou_state, key, message, onward, onward_bytes, print_of, reason, reencode, release,
    reply, routed_iou, unsigned_of, usd, witness_condition, witness_proof, witness_signer,
    witness_vkey,
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

/// The bytes a decoder of its own takes for a message: a signed object's wire form, or the
/// encoded proof.
fn signed_bytes(m: &Message) -> Vec<u8> {
    match m {
        Message::Offer(o) | Message::Issued(o) | Message::Forward(o, _) => o.to_bytes(),
        Message::State(s) => s.to_bytes(),
        Message::Accept(a) => a.to_bytes(),
        Message::Release(r) => r.to_bytes(),
        Message::Proof { proof, .. } => proof.to_bytes(),
        Message::Settle(r) => r.to_bytes(),
        Message::SettleUpdate(u) => u.to_bytes(),
    }
}

/// A valid encoding of any kind: a signed object, an envelope, replies, or one of the routed
/// encodings that have a decoder of their own (condition, instructions, proof).
fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => message().prop_map(|m| signed_bytes(&m)),
        2 => envelope().prop_map(|(k, e)| Signed::sign(e, key(k)).to_bytes()),
        1 => prop::collection::vec(reply(), 0..4).prop_map(|r| encode_replies(&r)),
        1 => witness_condition().prop_map(|c| condition_bytes(&c)),
        1 => onward().prop_map(|o| onward_bytes(&o)),
        2 => batch_encoding(),
        2 => prop::collection::vec(message(), 1..3).prop_map(to_test_ledger),
    ]
}

/// Objects of the kinds a ledger signs, signed in one batch by key 0; then one of them alone,
/// or all of them in an envelope from key 0 to key 1 (the test ledger's peer and itself).
fn batch_encoding() -> impl Strategy<Value = Vec<u8>> {
    let me = || key(0).public_key();
    let kinds = prop_oneof![
        acceptance().prop_map(move |(_, mut a)| {
            a.line.holder = me();
            Kind::Accept(a)
        }),
        release().prop_map(move |(_, mut r)| {
            r.line.holder = me();
            Kind::Release(r)
        }),
        iou_state().prop_map(move |(_, mut s)| {
            s.line.issuer = me();
            Kind::State(s)
        }),
        conditional_iou().prop_map(move |(_, mut i)| {
            i.line.issuer = me();
            Kind::Offer(i)
        }),
    ];
    (
        prop::collection::vec(kinds, 1..6),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(kinds, pick, in_envelope)| {
            let signer = atomicity_core::Signer::batching(key(0).clone());
            let messages: Vec<Message> = kinds
                .into_iter()
                .map(|kind| match kind {
                    Kind::Accept(a) => Message::Accept(signer.sign(a)),
                    Kind::Release(r) => Message::Release(signer.sign(r)),
                    Kind::State(s) => Message::State(signer.sign(s)),
                    Kind::Offer(i) => Message::Offer(signer.sign(i)),
                })
                .collect();
            signer.sign_batch();
            if !in_envelope {
                return signed_bytes(&messages[pick.index(messages.len())]);
            }
            to_test_ledger(messages)
        })
}

/// An envelope that the test ledger will open: from its peer, to it, on time.
fn to_test_ledger(messages: Vec<Message>) -> Vec<u8> {
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
}

/// A body of a kind a ledger signs.
#[derive(Clone, Debug)]
enum Kind {
    Accept(Acceptance),
    Release(Release),
    State(IouState),
    Offer(ConditionalIou),
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
            if signed.is_batched() {
                // `2 || kind || body || seal`: the body is the canonical one's.
                prop_assert_eq!(bytes[0], atomicity_core::signed::BATCH_FORM);
                prop_assert!(
                    bytes[1..].starts_with(&canonical[1..]),
                    "{} accepted a non-canonical encoding",
                    T::NAME
                );
            } else {
                prop_assert_eq!(
                    canonical.as_slice(),
                    unsigned_of(bytes),
                    "{} accepted a non-canonical encoding",
                    T::NAME
                );
            }
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

/// An object decoded inside an envelope re-decodes on its own (it was parsed as strictly).
fn redecodes<T: SignedBody + Debug>(signed: &Signed<T>) -> Outcome {
    prop_assert!(
        try_signed::<T>(&signed.to_bytes())?.is_some(),
        "inner {} does not re-decode",
        T::NAME
    );
    let _ = signed.verify();
    Ok(())
}

/// The routed encodings with decoders of their own: whatever they accept is canonical.
fn feed_routed_decoders(bytes: &[u8]) -> Outcome {
    if let Ok(proof) = WitnessProof::from_bytes(bytes) {
        prop_assert_eq!(proof.to_bytes(), bytes.to_vec(), "proof not canonical");
    }
    if let Some(condition) = decode_condition(bytes) {
        prop_assert_eq!(
            condition_bytes(&condition),
            bytes.to_vec(),
            "condition not canonical"
        );
        prop_assert!(!condition.witnesses.is_empty());
        prop_assert!(condition.implies(&condition));
    }
    let mut r = Reader::new(bytes);
    if let Ok(onward) = Onward::decode(&mut r)
        && r.finish().is_ok()
    {
        prop_assert_eq!(
            onward_bytes(&onward),
            bytes.to_vec(),
            "onward not canonical"
        );
    }
    Ok(())
}

fn feed_decoders(bytes: &[u8]) -> Outcome {
    try_signed::<IouState>(bytes)?;
    try_signed::<ConditionalIou>(bytes)?;
    try_signed::<Acceptance>(bytes)?;
    try_signed::<Release>(bytes)?;
    if let Some(envelope) = try_signed::<Envelope>(bytes)? {
        for m in &envelope.body().messages {
            match m {
                Message::Offer(o) | Message::Issued(o) => redecodes(o)?,
                Message::State(s) => redecodes(s)?,
                Message::Accept(a) => redecodes(a)?,
                Message::Release(r) => redecodes(r)?,
                Message::Settle(r) => redecodes(r)?,
                Message::SettleUpdate(u) => redecodes(u)?,
                Message::Forward(o, onward) => {
                    redecodes(o)?;
                    let bytes = onward_bytes(onward);
                    let mut r = Reader::new(&bytes);
                    let back = Onward::decode(&mut r);
                    prop_assert_eq!(back.as_ref(), Ok(onward));
                    prop_assert!(r.finish().is_ok());
                }
                Message::Proof { proof, .. } => {
                    prop_assert_eq!(
                        WitnessProof::from_bytes(&proof.to_bytes()),
                        Ok(proof.clone())
                    );
                }
            }
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
    feed_routed_decoders(bytes)?;
    let text = String::from_utf8_lossy(bytes);
    feed_text(&text);
    feed_invoice(&text)?;
    Ok(())
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
// Invoices.

/// Parses `text` as an invoice; whatever parses is a usable invoice that survives `to_uri`.
fn feed_invoice(text: &str) -> Outcome {
    let Ok(invoice) = Invoice::parse(text) else {
        return Ok(());
    };
    prop_assert!(!invoice.amount.is_zero());
    prop_assert!(invoice.memo.len() <= atomicity_core::objects::MAX_MEMO_LEN);
    let witnesses = &invoice.condition.witnesses;
    prop_assert!((1..=atomicity_core::condition::MAX_WITNESSES).contains(&witnesses.len()));
    for w in witnesses {
        prop_assert!(w.start_block < w.deadline_block);
        prop_assert!(w.cosigners.len() <= atomicity_core::condition::MAX_COSIGNERS);
        prop_assert_eq!(w.cosigners.is_empty(), w.threshold == 0);
        prop_assert!(usize::from(w.threshold) <= w.cosigners.len());
        prop_assert!(w.policy().is_ok());
        prop_assert!(w.verifier().is_ok());
    }
    // Stable: its URI parses back to the same invoice.
    let uri = invoice.to_uri();
    prop_assert_eq!(Invoice::parse(&uri), Ok(invoice.clone()), "{}", uri);
    // Usable: an IOU carrying its condition decodes at the next hop.
    prop_assert_eq!(
        decode_condition(&condition_bytes(&invoice.condition)),
        Some(invoice.condition.clone()),
        "a parsed invoice's condition does not decode: {}",
        uri
    );
    Ok(())
}

/// A valid invoice's URI with its fields reordered, an unknown field added, surrounding
/// whitespace and an upper-case hash: the same invoice (only the witnesses, each with its
/// cosigners after it, keep their order).
fn reordered_uri(invoice: &Invoice, rotate: usize) -> String {
    let uri = invoice.to_uri();
    let (head, query) = uri.split_once('?').expect("a query");
    let (witnesses, mut others): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .partition(|f| f.starts_with("witness=") || f.starts_with("cosigners="));
    let n = others.len();
    others.rotate_left(rotate % n);
    let hash = format!("hash={}", hex::encode(invoice.condition.hash));
    let upper = format!("hash={}", hex::encode_upper(invoice.condition.hash));
    let mut fields: Vec<String> = others
        .iter()
        .map(|f| {
            if *f == hash {
                upper.clone()
            } else {
                f.to_string()
            }
        })
        .collect();
    fields.insert(rotate % (n + 1), "later=field&x".into());
    fields.extend(witnesses.iter().map(|w| w.to_string()));
    format!(" \t{head}?{}\n", fields.join("&"))
}

/// One edit of an invoice URI's `&`-separated fields.
#[derive(Clone, Debug)]
enum FieldEdit {
    Duplicate(Index),
    Remove(Index),
    Swap(Index, Index),
    /// Replace a field's value (after its `=`).
    Value(Index, String),
    /// Append a field.
    Add(String, String),
}

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1.000".to_string()),
        Just("%ZZ".to_string()),
        Just("%F0%9F%92%A5".to_string()),
        Just("a;b;c;d".to_string()),
        (0..common::WITNESS_LOGS, 0u64..5, 0u64..5).prop_map(|(l, s, d)| {
            let value = format!("{};{s};{d}", witness_vkey(l));
            form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        }),
        (0u8..4, prop::collection::vec(0..common::WITNESS_LOGS, 0..4)).prop_map(|(t, cs)| {
            let keys: Vec<String> = cs.iter().map(|c| cosigner(*c).verifier().vkey()).collect();
            let value = format!("{t} {}", keys.join(" "));
            form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        }),
        "[ -~]{0,40}",
    ]
}

fn field_edit() -> impl Strategy<Value = FieldEdit> {
    let name = prop::sample::select(vec![
        "amount",
        "asset",
        "hash",
        "expires",
        "witness",
        "cosigners",
        "memo",
        "other",
    ]);
    prop_oneof![
        2 => any::<Index>().prop_map(FieldEdit::Duplicate),
        1 => any::<Index>().prop_map(FieldEdit::Remove),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| FieldEdit::Swap(a, b)),
        2 => (any::<Index>(), field_value()).prop_map(|(i, v)| FieldEdit::Value(i, v)),
        1 => (name, field_value()).prop_map(|(n, v)| FieldEdit::Add(n.to_string(), v)),
    ]
}

/// Applies field edits to a URI's query.
fn edit_fields(uri: &str, edits: &[FieldEdit]) -> String {
    let (head, query) = uri.split_once('?').expect("a query");
    let mut fields: Vec<String> = query.split('&').map(str::to_string).collect();
    for edit in edits {
        let n = fields.len();
        match edit {
            FieldEdit::Duplicate(i) if n > 0 => {
                let f = fields[i.index(n)].clone();
                fields.push(f);
            }
            FieldEdit::Remove(i) if n > 0 => {
                fields.remove(i.index(n));
            }
            FieldEdit::Swap(a, b) if n > 0 => fields.swap(a.index(n), b.index(n)),
            FieldEdit::Value(i, v) if n > 0 => {
                let f = &mut fields[i.index(n)];
                let name = f.split('=').next().unwrap_or_default().to_string();
                *f = format!("{name}={v}");
            }
            FieldEdit::Add(name, v) => fields.push(format!("{name}={v}")),
            _ => {}
        }
    }
    format!("{head}?{}", fields.join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn invoices_round_trip(invoice in invoice(), rotate in 0usize..8) {
        let uri = invoice.to_uri();
        prop_assert!(uri.starts_with(atomicity_core::invoice::SCHEME));
        prop_assert_eq!(Invoice::parse(&uri), Ok(invoice.clone()));
        prop_assert_eq!(Invoice::parse(&reordered_uri(&invoice, rotate)), Ok(invoice.clone()));
        feed_invoice(&uri)?;
    }

    #[test]
    fn random_text_is_never_an_invoice_panic(text in "\\PC{0,300}", tail in "[a-z0-9=&;%+.:]{0,80}") {
        feed_invoice(&text)?;
        feed_invoice(&format!("atomicity:{text}"))?;
        feed_invoice(&format!("atomicity:{}?{tail}", key(0).public_key().to_z32()))?;
    }

    #[test]
    fn mutated_invoices_never_panic(
        invoice in invoice(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = invoice.to_uri().into_bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        feed_invoice(&String::from_utf8_lossy(&bytes))?;
        // Mutations that keep it text: also as a full input to every decoder.
        feed_decoders(&bytes)?;
    }

    #[test]
    fn invoices_with_edited_fields_never_panic(
        invoice in invoice(),
        edits in prop::collection::vec(field_edit(), 1..4),
    ) {
        feed_invoice(&edit_fields(&invoice.to_uri(), &edits))?;
    }
}

// ---------------------------------------------------------------------------------------------
// A ledger on the receiving end.

/// The limit each side sets on each line of [`receiver`], both ways.
const LIMIT: u64 = 500;
/// The deadline of [`receiver`]'s routed payments and invoice.
const DEADLINE: u64 = NOW + 600;
/// The secret of node 1's invoice (node 1 is the payee, of 20).
const INVOICE_SECRET: [u8; 32] = [0xa1; 32];
/// The secret of node 1's payer-published payment to node 3 through node 0 (10 delivered).
const PAYER_SECRET: [u8; 32] = [0xa2; 32];
/// The secret of node 1's payment to node 4 through node 2 (the payee publishes).
const OTHER_SECRET: [u8; 32] = [0xa3; 32];
/// The hashes node 1 keeps a payment secret for.
const SECRETS: [[u8; 32]; 3] = [INVOICE_SECRET, PAYER_SECRET, OTHER_SECRET];

/// The witness log the routed conditions of [`receiver`] list (fixed log 0), started at `NOW`.
fn witness_log() -> Log {
    let signer = witness_signer(0).clone();
    Log::new(signer.name().to_string(), signer, 10, NOW).expect("log")
}

/// The condition of the routed payments of [`receiver`]: log 0, blocks 0 to 1000.
fn routed_condition(p: &[u8; 32]) -> WitnessCondition {
    WitnessCondition {
        hash: payment_hash(p),
        witnesses: vec![WitnessTerms::new(witness_vkey(0), 0, 1000)],
    }
}

/// Node 1, with peers 0 and 2 (USD lines both ways, [`LIMIT`] each way) and something on every
/// line for answers, proofs and states to hit:
/// - three direct offers to node 0 (ids 0, 1, 2);
/// - a payer-published routed payment to node 3 through node 0 (id 3 to node 0);
/// - a routed payment to node 4 through node 2 (id 0 to node 2);
/// - an open invoice of its own, for 20;
/// - a fee of 1 + 1% to forward to node 2.
fn receiver() -> (Ledger, Store) {
    let mut ledger = Ledger::new(key(1).clone());
    let mut ops = Vec::new();
    for peer in [key(0).public_key(), key(2).public_key()] {
        ledger.add_peer(peer.clone(), None, &mut ops).expect("peer");
        ledger
            .set_limits(
                &peer,
                &usd(),
                Some(Amount::from_minor(LIMIT)),
                Some(Amount::from_minor(LIMIT)),
                &mut ops,
            )
            .expect("line");
    }
    let peer = key(0).public_key();
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
    let hop = |k: usize, amount: u64| Hop {
        next: key(k).public_key(),
        amount: Amount::from_minor(amount),
    };
    ledger
        .pay_routed(
            &key(3).public_key(),
            &usd(),
            vec![RoutePart {
                hops: vec![hop(0, 12), hop(3, 10)],
            }],
            routed_condition(&PAYER_SECRET),
            DEADLINE,
            [0xb2; 32],
            String::new(),
            Some(PAYER_SECRET),
            NOW,
            &mut ops,
        )
        .expect("payer-published payment");
    ledger
        .pay_routed(
            &key(4).public_key(),
            &usd(),
            vec![RoutePart {
                hops: vec![hop(2, 12), hop(4, 10)],
            }],
            routed_condition(&OTHER_SECRET),
            DEADLINE,
            [0xb3; 32],
            String::new(),
            None,
            NOW,
            &mut ops,
        )
        .expect("routed payment");
    ledger
        .add_hashlock(
            NewHashlock {
                p: INVOICE_SECRET,
                role: HashlockRole::Payee,
                payee: key(1).public_key(),
                asset: usd(),
                amount: Amount::from_minor(20),
                condition: routed_condition(&INVOICE_SECRET),
                expires_at: DEADLINE,
                memo: String::new(),
            },
            NOW,
            &mut ops,
        )
        .expect("invoice");
    ledger
        .set_fees(
            &key(2).public_key(),
            &usd(),
            FeePolicy {
                base: Amount::from_minor(1),
                ppm: 10_000,
            },
            &mut ops,
        )
        .expect("fees");
    let _ = ledger.take_outgoing();
    let mut store = Store::default();
    store.apply(&ops).expect("store");
    (ledger, store)
}

/// What the ledger shows, with what the common print leaves out: fee policies, the payment
/// secrets and what is due for publication.
#[derive(Debug, PartialEq)]
struct FullPrint {
    ledger: LedgerPrint,
    fees: Vec<([u8; 32], Asset, FeePolicy)>,
    hashlocks: Vec<Option<HashlockRecord>>,
    publications: Vec<Publication>,
}

fn full_print(ledger: &Ledger, now: u64) -> FullPrint {
    let mut fees: Vec<_> = ledger
        .channels()
        .map(|c| (*c.peer().as_bytes(), c.asset().clone(), c.fees))
        .collect();
    fees.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut publications = ledger.publications(now);
    publications.sort_by_key(|p| p.hash);
    FullPrint {
        ledger: print_of(ledger),
        fees,
        hashlocks: SECRETS
            .iter()
            .map(|p| ledger.hashlock(&payment_hash(p)).cloned())
            .collect(),
        publications,
    }
}

/// Commits a batch: the ops apply to the store, and what the store rebuilds is the ledger.
fn commit(ledger: &Ledger, store: &mut Store, ops: &[StoreOp], now: u64) -> Outcome {
    store
        .apply(ops)
        .map_err(|e| TestCaseError::fail(format!("bad ops: {e}")))?;
    let restored = Ledger::restore(key(1).clone(), store.snapshot())
        .map_err(|e| TestCaseError::fail(format!("store unreadable: {e}")))?;
    prop_assert_eq!(
        full_print(&restored, now),
        full_print(ledger, now),
        "memory and store differ"
    );
    Ok(())
}

/// Hands one message to the ledger and checks the outcome: a rejection changes nothing but
/// evidence (against the sender) and sends nothing; anything else is persisted exactly.
fn deliver(
    ledger: &mut Ledger,
    store: &mut Store,
    from: &Keypair,
    message: Message,
    now: u64,
) -> Outcome {
    let before = full_print(ledger, now);
    let mut ops = Vec::new();
    let reply = ledger.handle_message(&from.public_key(), message.clone(), now, &mut ops);
    let outgoing = ledger.take_outgoing();
    for op in &ops {
        if let StoreOp::PutEvidence(e) = op {
            prop_assert_eq!(&e.peer, &from.public_key(), "evidence against another peer");
        }
    }
    if let Reply::Rejected { .. } = &reply {
        prop_assert!(
            ops.iter().all(|op| matches!(op, StoreOp::PutEvidence(_))),
            "a rejection persisted {:?}",
            ops
        );
        prop_assert_eq!(
            full_print(ledger, now),
            before,
            "a rejection changed the ledger"
        );
        prop_assert!(outgoing.is_empty(), "a rejection sent {:?}", outgoing);
    }
    // Whatever it sends goes to a peer.
    for (to, _) in &outgoing {
        prop_assert!(ledger.peer(to).is_some(), "a message to a stranger");
    }
    commit(ledger, store, &ops, now)?;
    // The reply goes back over the wire.
    let bytes = encode_replies(std::slice::from_ref(&reply));
    prop_assert_eq!(decode_replies(&bytes), Ok(vec![reply]));
    Ok(())
}

fn feed_ledger(bytes: &[u8]) -> Outcome {
    let (mut ledger, mut store) = receiver();
    if let Ok(envelope) = ledger.open_envelope(bytes, NOW) {
        for m in envelope.messages {
            deliver(&mut ledger, &mut store, key(0), m, NOW)?;
        }
    }
    // A shell that forgot to check the envelope's signature must still be safe.
    if let Ok(envelope) = Signed::<Envelope>::decode(bytes) {
        for m in envelope.body().messages.clone() {
            deliver(&mut ledger, &mut store, key(0), m, NOW)?;
        }
    }
    // The same bytes as a lone object.
    let iou = Signed::<ConditionalIou>::decode(bytes).ok();
    for m in [
        iou.clone().map(Message::Offer),
        iou.clone().map(Message::Issued),
        iou.map(|o| {
            Message::Forward(
                o,
                Onward {
                    hops: Vec::new(),
                    payer_publishes: false,
                },
            )
        }),
        Signed::decode(bytes).ok().map(Message::State),
        Signed::decode(bytes).ok().map(Message::Accept),
        Signed::decode(bytes).ok().map(Message::Release),
        WitnessProof::from_bytes(bytes)
            .ok()
            .map(|proof| Message::Proof {
                hash: payment_hash(&proof.p),
                proof,
            }),
    ]
    .into_iter()
    .flatten()
    {
        deliver(&mut ledger, &mut store, key(0), m, NOW)?;
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
// Hostile peers: correctly signed messages with arbitrary contents, at any time.

/// A payment secret a spec can use: one of node 1's, or one it knows nothing about.
#[derive(Clone, Copy, Debug)]
enum Secret {
    Invoice,
    Payer,
    Other,
    Fresh(u8),
}

impl Secret {
    fn p(self) -> [u8; 32] {
        match self {
            Secret::Invoice => INVOICE_SECRET,
            Secret::Payer => PAYER_SECRET,
            Secret::Other => OTHER_SECRET,
            Secret::Fresh(n) => [0xc0 + n; 32],
        }
    }
}

/// A hard deadline: the one of node 1's payments, or relative to the current time.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    Payment,
    In(i64),
}

impl Deadline {
    fn at(self, now: u64) -> u64 {
        match self {
            Deadline::Payment => DEADLINE,
            Deadline::In(secs) => now.saturating_add_signed(secs),
        }
    }
}

/// The witness terms of a routed IOU.
#[derive(Clone, Debug)]
enum Terms {
    /// Node 1's: log 0, blocks 0 to 1000.
    Same,
    /// Log 0 with another window.
    Window(u64, u64),
    /// A log nobody publishes on.
    OtherLog,
    /// Anything (with the secret's hash).
    Any(WitnessCondition),
}

/// The bundle of a proof.
#[derive(Clone, Debug)]
enum Bundle {
    /// Published on log 0 now (valid if now is before the IOU's deadline).
    Valid,
    /// A valid bundle from log 0, claimed to be from log 1.
    WrongLog,
    /// Arbitrary bytes.
    Bytes(Vec<u8>),
}

/// Something one of node 1's peers (node 0 or node 2) sends it, described before it is signed,
/// or something that happens to node 1.
#[derive(Clone, Debug)]
enum Spec {
    Offer {
        from: usize,
        id: u64,
        amount: u64,
        expires_in: i64,
        memo_len: usize,
    },
    Forward {
        from: usize,
        id: u64,
        amount: u64,
        deadline: Deadline,
        secret: Secret,
        terms: Terms,
        /// (key index, amount).
        hops: Vec<(usize, u64)>,
        payer_publishes: bool,
        memo_len: usize,
    },
    State {
        from: usize,
        seq: u64,
        total: u128,
        resolved: Vec<u64>,
    },
    /// An answer to one of node 1's IOUs to the sender (node 0: ids 0-3, node 2: 0 and any it
    /// forwarded; `None`: the newest), or an early release of one it accepted.
    Answer {
        from: usize,
        accept: bool,
        id: Option<u64>,
        right_hash: bool,
        reason: ReleaseReason,
    },
    /// A claim (of an IOU node 1 issued to the sender) or a reveal (of one the sender issued).
    Proof {
        from: usize,
        secret: Secret,
        bundle: Bundle,
        right_hash: bool,
    },
    /// An IOU issued to a payee, passed up a payer-published route.
    Issued {
        from: usize,
        issuer: usize,
        holder: usize,
        id: u64,
        amount: u64,
        secret: Secret,
        deadline: Deadline,
    },
    /// Time passes: node 1 ticks and merges.
    Tick(u64),
    /// Node 1's shell publishes what node 1 asks for (or fails to).
    Publish { fail: bool },
    /// Node 1 restarts from its store.
    Restart,
    /// Node 1's outbox resends.
    Resend,
    /// Something about another line, or signed by another key.
    Stray { from: usize, message: Box<Message> },
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

fn peer() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 2])
}

fn secret() -> impl Strategy<Value = Secret> {
    prop_oneof![
        6 => Just(Secret::Invoice),
        1 => Just(Secret::Payer),
        1 => Just(Secret::Other),
        1 => (0u8..3).prop_map(Secret::Fresh),
    ]
}

fn deadline() -> impl Strategy<Value = Deadline> {
    prop_oneof![
        3 => Just(Deadline::Payment),
        1 => (-5i64..700).prop_map(Deadline::In),
    ]
}

fn terms() -> impl Strategy<Value = Terms> {
    prop_oneof![
        6 => Just(Terms::Same),
        1 => (0u64..3, 1u64..2000).prop_map(|(s, d)| Terms::Window(s, s + d)),
        1 => Just(Terms::OtherLog),
        1 => witness_condition().prop_map(Terms::Any),
    ]
}

fn bundle() -> impl Strategy<Value = Bundle> {
    prop_oneof![
        6 => Just(Bundle::Valid),
        1 => Just(Bundle::WrongLog),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Bundle::Bytes),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        2 => (peer(), small(), small(), -5i64..100, 0usize..300).prop_map(
            |(from, id, amount, expires_in, memo_len)| Spec::Offer {
                from, id, amount, expires_in, memo_len
            }
        ),
        4 => (
            (peer(), small(), small(), deadline(), secret(), terms()),
            (
                prop::collection::vec(
                    (prop::sample::select(vec![2usize, 2, 2, 0, 1, 3, 4]), small()),
                    0..3,
                ),
                prop::bool::weighted(0.3),
                prop_oneof![4 => Just(0usize), 1 => 0usize..300],
            ),
        )
            .prop_map(|((from, id, amount, deadline, secret, terms), (hops, payer_publishes, memo_len))| {
                Spec::Forward {
                    from, id, amount, deadline, secret, terms, hops, payer_publishes, memo_len,
                }
            }),
        2 => (peer(), 0u64..6, small_total(), prop::collection::vec(0u64..8, 0..5))
            .prop_map(|(from, seq, total, resolved)| Spec::State { from, seq, total, resolved }),
        3 => (
            peer(),
            any::<bool>(),
            prop::option::weighted(0.6, 0u64..6),
            prop::bool::weighted(0.8),
            reason(),
        )
            .prop_map(
            |(from, accept, id, right_hash, reason)| Spec::Answer {
                from, accept, id, right_hash, reason
            }
        ),
        3 => (peer(), secret(), bundle(), prop::bool::weighted(0.9)).prop_map(
            |(from, secret, bundle, right_hash)| Spec::Proof { from, secret, bundle, right_hash }
        ),
        1 => (
            peer(),
            prop::sample::select(vec![0usize, 2, 4, 5]),
            prop::sample::select(vec![3usize, 3, 3, 1, 4]),
            small(),
            small(),
            secret(),
            deadline(),
        )
            .prop_map(|(from, issuer, holder, id, amount, secret, deadline)| Spec::Issued {
                from, issuer, holder, id, amount, secret, deadline,
            }),
        2 => prop_oneof![3 => 0u64..60, 1 => 550u64..700].prop_map(Spec::Tick),
        1 => prop::bool::weighted(0.2).prop_map(|fail| Spec::Publish { fail }),
        1 => Just(Spec::Restart),
        1 => Just(Spec::Resend),
        1 => (
            peer(),
            prop_oneof![
                message(),
                iou_state().prop_map(|(_, body)| Message::State(Signed::sign(body, key(0)))),
                conditional_iou().prop_map(|(_, body)| Message::Offer(Signed::sign(body, key(0)))),
                (routed_iou(), onward())
                    .prop_map(|((_, body), o)| Message::Forward(Signed::sign(body, key(0)), o)),
                witness_proof().prop_map(|proof| Message::Proof {
                    hash: payment_hash(&proof.p),
                    proof,
                }),
            ],
        )
            .prop_map(|(from, m)| Spec::Stray { from, message: Box::new(m) }),
        1 => any::<Index>().prop_map(Spec::Again),
    ]
}

/// Publishes `p` on the log now (once) and returns the proof.
fn publish(log: &mut Log, p: &[u8; 32], now: u64) -> Result<WitnessProof, TestCaseError> {
    log.submit(*p, now);
    let bundle = log
        .bundle(p)
        .map_err(|e| TestCaseError::fail(format!("log: {e}")))?
        .ok_or_else(|| TestCaseError::fail("not submitted"))?;
    Ok(WitnessProof {
        p: *p,
        log: witness_vkey(0),
        bundle: bundle
            .to_bytes()
            .map_err(|e| TestCaseError::fail(format!("bundle: {e}")))?,
    })
}

/// The message a spec describes, and its sender.
fn build(
    spec: &Spec,
    ledger: &Ledger,
    log: &mut Log,
    now: u64,
    sent: &[(usize, Message)],
) -> Result<Option<(usize, Message)>, TestCaseError> {
    let in_line = |from: usize| LineId {
        issuer: key(from).public_key(),
        holder: key(1).public_key(),
        asset: usd(),
    };
    let out_line = |to: usize| LineId {
        issuer: key(1).public_key(),
        holder: key(to).public_key(),
        asset: usd(),
    };
    let condition = |secret: Secret, terms: &Terms| {
        let hash = payment_hash(&secret.p());
        match terms {
            Terms::Same => routed_condition(&secret.p()),
            Terms::Window(start, deadline) => WitnessCondition {
                hash,
                witnesses: vec![WitnessTerms::new(witness_vkey(0), *start, *deadline)],
            },
            Terms::OtherLog => WitnessCondition {
                hash,
                witnesses: vec![WitnessTerms::new(witness_vkey(1), 0, 1000)],
            },
            Terms::Any(c) => WitnessCondition {
                hash,
                witnesses: c.witnesses.clone(),
            },
        }
    };
    Ok(Some(match spec {
        Spec::Offer {
            from,
            id,
            amount,
            expires_in,
            memo_len,
        } => {
            let iou = ConditionalIou {
                line: in_line(*from),
                id: *id,
                amount: Amount::from_minor((*amount).max(1)),
                condition: Condition::HolderAccepts,
                payment_id: [*id as u8; 32],
                expires_at: now.saturating_add_signed(*expires_in),
                memo: "m".repeat(*memo_len),
            };
            (*from, Message::Offer(Signed::sign(iou, key(*from))))
        }
        Spec::Forward {
            from,
            id,
            amount,
            deadline,
            secret,
            terms,
            hops,
            payer_publishes,
            memo_len,
        } => {
            let iou = ConditionalIou {
                line: in_line(*from),
                id: *id,
                amount: Amount::from_minor((*amount).max(1)),
                condition: Condition::WitnessCommit(condition(*secret, terms)),
                payment_id: secret.p(),
                expires_at: deadline.at(now),
                memo: "m".repeat(*memo_len),
            };
            let onward = Onward {
                hops: hops
                    .iter()
                    .map(|(k, a)| Hop {
                        next: key(*k).public_key(),
                        amount: Amount::from_minor((*a).max(1)),
                    })
                    .collect(),
                payer_publishes: *payer_publishes,
            };
            (
                *from,
                Message::Forward(Signed::sign(iou, key(*from)), onward),
            )
        }
        Spec::State {
            from,
            seq,
            total,
            resolved,
        } => {
            let mut set = ResolvedSet::new();
            for id in resolved {
                set.insert(*id);
            }
            let state = IouState {
                line: in_line(*from),
                seq: *seq,
                total: Total::from_minor(*total),
                resolved: set,
            };
            (*from, Message::State(Signed::sign(state, key(*from))))
        }
        Spec::Answer {
            from,
            accept,
            id,
            right_hash,
            reason,
        } => {
            let Some(channel) = ledger.channel(&key(*from).public_key(), &usd()) else {
                return Ok(None);
            };
            let id = &id.unwrap_or_else(|| {
                let newest = channel.out_conditionals().keys().next_back();
                newest.copied().unwrap_or(0)
            });
            let iou_hash = match channel.out_conditionals().get(id) {
                Some(c) if *right_hash => c.iou.hash(),
                _ => [*id as u8; 32],
            };
            let line = out_line(*from);
            let message = if *accept {
                Message::Accept(Signed::sign(
                    Acceptance {
                        line,
                        id: *id,
                        iou_hash,
                    },
                    key(*from),
                ))
            } else {
                Message::Release(Signed::sign(
                    Release {
                        line,
                        id: *id,
                        iou_hash,
                        reason: *reason,
                    },
                    key(*from),
                ))
            };
            (*from, message)
        }
        Spec::Proof {
            from,
            secret,
            bundle,
            right_hash,
        } => {
            let p = secret.p();
            let proof = match bundle {
                Bundle::Valid => publish(log, &p, now)?,
                Bundle::WrongLog => WitnessProof {
                    log: witness_vkey(1),
                    ..publish(log, &p, now)?
                },
                Bundle::Bytes(bytes) => WitnessProof {
                    p,
                    log: witness_vkey(0),
                    bundle: bytes.clone(),
                },
            };
            let hash = if *right_hash {
                payment_hash(&p)
            } else {
                [0x55; 32]
            };
            (*from, Message::Proof { hash, proof })
        }
        Spec::Issued {
            from,
            issuer,
            holder,
            id,
            amount,
            secret,
            deadline,
        } => {
            let iou = ConditionalIou {
                line: LineId {
                    issuer: key(*issuer).public_key(),
                    holder: key(*holder).public_key(),
                    asset: usd(),
                },
                id: *id,
                amount: Amount::from_minor((*amount).max(1)),
                condition: Condition::WitnessCommit(routed_condition(&secret.p())),
                payment_id: secret.p(),
                expires_at: deadline.at(now),
                memo: String::new(),
            };
            (*from, Message::Issued(Signed::sign(iou, key(*issuer))))
        }
        Spec::Stray { from, message } => (*from, (**message).clone()),
        Spec::Again(i) => {
            if sent.is_empty() {
                return Ok(None);
            }
            sent[i.index(sent.len())].clone()
        }
        Spec::Tick(_) | Spec::Publish { .. } | Spec::Restart | Spec::Resend => return Ok(None),
    }))
}

/// The message as the peer API would see it: sent in an envelope and decoded again, or `None`
/// if the decoder refuses it. (The ledger trusts that messages passed the decoder: a hand-built
/// object the decoder would refuse, e.g. a 257-byte memo, would be stored and then fail
/// `Ledger::restore`.)
fn over_the_wire(m: &Message) -> Result<Option<Message>, TestCaseError> {
    let envelope = Signed::sign(
        Envelope {
            from: key(0).public_key(),
            to: key(1).public_key(),
            sent_at: NOW,
            messages: vec![m.clone()],
        },
        key(0),
    );
    let Ok(back) = Signed::<Envelope>::decode(&envelope.to_bytes()) else {
        return Ok(None);
    };
    prop_assert_eq!(&back.body().messages, &vec![m.clone()]);
    Ok(back.body().messages.first().cloned())
}

/// Merges, ticks or publishes: the ops and what the ledger sends are committed and checked.
fn local(ledger: &mut Ledger, store: &mut Store, ops: Vec<StoreOp>, now: u64) -> Outcome {
    let mut ops = ops;
    let states = ledger.merge_states(now, &mut ops);
    let outgoing = ledger.take_outgoing();
    for to in states
        .iter()
        .map(|(to, _)| to)
        .chain(outgoing.iter().map(|(to, _)| to))
    {
        prop_assert!(ledger.peer(to).is_some(), "a message to a stranger");
    }
    commit(ledger, store, &ops, now)
}

/// Every proof the store keeps is one: its secret matches its hash and its bundle parses, and a
/// payment secret is paid only with a proof that fulfils its condition (see
/// `known_bug_a_proof_that_verifies_for_nothing_is_kept_and_pays_the_invoice`).
fn stored_proofs_hold(store: &Store) -> Outcome {
    for (hash, record) in &store.proofs {
        let proof = WitnessProof::from_bytes(&record.proof)
            .map_err(|e| TestCaseError::fail(format!("stored proof: {e}")))?;
        prop_assert_eq!(&payment_hash(&proof.p), hash);
        prop_assert!(
            atomicity_witness::bundle::ProofBundle::from_bytes(&proof.bundle).is_ok(),
            "a stored proof's bundle does not parse"
        );
    }
    for h in store.hashlocks.values() {
        if h.status.as_str() != "paid" {
            continue;
        }
        let proof = h
            .proof
            .as_deref()
            .map(WitnessProof::from_bytes)
            .and_then(Result::ok)
            .ok_or_else(|| TestCaseError::fail("paid without a proof"))?;
        let condition = decode_condition(&h.condition).expect("stored condition");
        prop_assert_eq!(
            proof.verify(&condition, h.expires_at),
            Ok(()),
            "paid with a bad proof"
        );
    }
    Ok(())
}

/// What node 0 and node 2 owe node 1, counting the routed IOUs it accepted, never passes its
/// accept limit; what node 1 owes them, counting all it issued and may still owe, never passes
/// its issue limit.
fn limits_hold(ledger: &Ledger) -> Outcome {
    for peer in [0, 2] {
        let channel = ledger
            .channel(&key(peer).public_key(), &usd())
            .expect("line");
        let view = channel.view().expect("numbers fit");
        let limit = i128::from(LIMIT);
        prop_assert!(
            view.net + i128::from(view.pending_in.minor()) <= limit,
            "{:?}",
            view
        );
        prop_assert!(
            -view.net + i128::from(view.pending_out.minor()) <= limit,
            "{:?}",
            view
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Whatever node 1's peers sign and send, in any order and at any time, while node 1 ticks,
    /// publishes, merges and restarts: no panic, rejections change nothing, memory always
    /// equals what the store rebuilds, and the limits hold.
    #[test]
    fn hostile_peers_cannot_break_the_ledger(specs in prop::collection::vec(spec(), 1..64)) {
        let (mut ledger, mut store) = receiver();
        let mut log = witness_log();
        let mut now = NOW;
        let mut sent: Vec<(usize, Message)> = Vec::new();
        for (n, spec) in specs.iter().enumerate() {
            match spec {
                Spec::Tick(secs) => {
                    now += secs;
                    let mut ops = Vec::new();
                    ledger.tick(now, &mut ops);
                    local(&mut ledger, &mut store, ops, now)?;
                }
                Spec::Publish { fail } => {
                    for publication in ledger.publications(now) {
                        let mut ops = Vec::new();
                        if *fail {
                            ledger.publish_failed(&publication.hash, now, &mut ops);
                        } else {
                            let proof = publish(&mut log, &publication.p, now)?;
                            ledger
                                .published(&publication.hash, proof, now, &mut ops)
                                .map_err(|e| TestCaseError::fail(format!("published: {e}")))?;
                        }
                        local(&mut ledger, &mut store, ops, now)?;
                    }
                }
                Spec::Restart => {
                    ledger = Ledger::restore(key(1).clone(), store.snapshot())
                        .map_err(|e| TestCaseError::fail(format!("store unreadable: {e}")))?;
                }
                Spec::Resend => {
                    for (to, m) in ledger.resend_messages(now, 0) {
                        prop_assert!(ledger.peer(&to).is_some(), "a resend to a stranger");
                        prop_assert!(over_the_wire(&m)?.is_some(), "a resend no peer decodes");
                    }
                }
                _ => {
                    let Some((from, message)) = build(spec, &ledger, &mut log, now, &sent)? else {
                        continue;
                    };
                    let Some(message) = over_the_wire(&message)? else {
                        continue;
                    };
                    sent.push((from, message.clone()));
                    deliver(&mut ledger, &mut store, key(from), message, now)?;
                }
            }
            // Merging is always possible and consistent.
            if n % 5 == 4 {
                local(&mut ledger, &mut store, Vec::new(), now)?;
            }
            limits_hold(&ledger)?;
            stored_proofs_hold(&store)?;
        }
        // Evidence is only ever kept against a peer (`deliver` checks: the sender).
        prop_assert!(store.evidence.iter().all(|e| ledger.peer(&e.peer).is_some()));
    }

    /// A damaged store is refused or read, never a panic; what it reads still ticks, merges,
    /// resends and publishes without one.
    #[test]
    fn damaged_store_never_panics(
        which in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (_, store) = receiver();
        let mut snapshot = store.snapshot();
        let mut fields: Vec<&mut Vec<u8>> = Vec::new();
        for line in &mut snapshot.lines {
            fields.extend(line.out_state.as_mut().map(atomicity_core::Blob::bytes_mut));
            fields.extend(line.in_state.as_mut().map(atomicity_core::Blob::bytes_mut));
        }
        for c in &mut snapshot.conditionals {
            fields.push(c.iou.bytes_mut());
            fields.extend(c.answer.as_mut().map(atomicity_core::Blob::bytes_mut));
            fields.extend(c.onward.as_mut());
            fields.extend(c.proof.as_mut());
        }
        for h in &mut snapshot.hashlocks {
            fields.push(&mut h.condition);
            fields.extend(h.proof.as_mut());
            fields.extend(h.issued.iter_mut());
        }
        let n = fields.len();
        let field = &mut fields[which.index(n)];
        for m in &mutations {
            mutate(field, m);
        }
        if let Ok(mut ledger) = Ledger::restore(key(1).clone(), snapshot) {
            let mut ops = Vec::new();
            let _ = ledger.publications(NOW);
            let _ = ledger.resend_messages(NOW, 0);
            ledger.tick(DEADLINE + 3600, &mut ops);
            let _ = ledger.merge_states(DEADLINE + 3600, &mut ops);
            let _ = ledger.take_outgoing();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Core bugs the properties above (or a reading of `routed.rs`) once found, each fixed: the
// minimal cases stay as regression tests.

/// Minimal input of `hostile_peers_cannot_break_the_ledger`: node 0 forwards through node 1 to
/// node 2, node 0 reveals the secret (node 1 claims its incoming IOU), then node 2 releases
/// the IOU node 1 forwarded to it. `Ledger::handle_answer` records the release (memory and a
/// `PutConditional` op), then `release_upstream` fails with `AlreadyClaimed` for the upstream
/// IOU and the `?` turns that into a rejection (36) of node 2's honest release, with evidence
/// against node 2, although the ledger changed. The same happens to a last hop of a
/// payer-published route whose payee comes back after the deadline and releases (reason 3).
#[test]
fn known_bug_a_release_after_the_upstream_claim_is_a_rejection_that_changes_the_ledger() {
    let (mut ledger, _) = receiver();
    let mut log = witness_log();
    let iou = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: key(0).public_key(),
                holder: key(1).public_key(),
                asset: usd(),
            },
            id: 0,
            amount: Amount::from_minor(4),
            condition: Condition::WitnessCommit(routed_condition(&INVOICE_SECRET)),
            payment_id: INVOICE_SECRET,
            expires_at: DEADLINE,
            memo: String::new(),
        },
        key(0),
    );
    let onward = Onward {
        hops: vec![Hop {
            next: key(2).public_key(),
            amount: Amount::from_minor(1),
        }],
        payer_publishes: false,
    };
    let mut ops = Vec::new();
    let reply = ledger.handle_message(
        &key(0).public_key(),
        Message::Forward(iou, onward),
        NOW,
        &mut ops,
    );
    assert!(matches!(reply, Reply::Accepted(_)), "{reply:?}");
    let proof = publish(&mut log, &INVOICE_SECRET, NOW).expect("published");
    let reveal = Message::Proof {
        hash: payment_hash(&INVOICE_SECRET),
        proof,
    };
    let reply = ledger.handle_message(&key(0).public_key(), reveal, NOW, &mut ops);
    assert_eq!(reply, Reply::Ok);
    let forwarded = ledger
        .channel(&key(2).public_key(), &usd())
        .and_then(|c| c.out_conditionals().get(&1))
        .expect("forwarded as id 1")
        .iou
        .clone();
    let release = Signed::sign(
        Release {
            line: forwarded.body().line.clone(),
            id: 1,
            iou_hash: forwarded.hash(),
            reason: ReleaseReason::OverLimit,
        },
        key(2),
    );
    let before = full_print(&ledger, NOW);
    let mut ops = Vec::new();
    let reply = ledger.handle_message(
        &key(2).public_key(),
        Message::Release(release),
        NOW,
        &mut ops,
    );
    if let Reply::Rejected { .. } = reply {
        let persisted = ops
            .iter()
            .filter(|op| !matches!(op, StoreOp::PutEvidence(_)))
            .count();
        assert!(
            full_print(&ledger, NOW) == before && persisted == 0,
            "rejected ({reply:?}), but the ledger changed and {persisted} ops besides evidence \
             were made"
        );
    }
    assert!(
        !ops.iter().any(|op| matches!(op, StoreOp::PutEvidence(_))),
        "evidence against node 2, which released an IOU it never claimed: {reply:?}"
    );
}

/// The `cosigners` field of an invoice: it belongs to the witness before it, round-trips, and
/// each malformed form is refused naming the field, never silently dropped (a payer that
/// dropped it would build a condition the payee refuses).
#[test]
fn invoice_cosigners_belong_to_their_witness_and_bad_ones_are_refused() {
    let mut condition = routed_condition(&[9; 32]);
    let c0 = cosigner(0).verifier().vkey();
    let c1 = cosigner(1).verifier().vkey();
    condition.witnesses[0].cosigners = vec![c0.clone(), c1.clone()];
    condition.witnesses[0].threshold = 1;
    let invoice = Invoice {
        payee: key(3).public_key(),
        amount: Amount::from_minor(10),
        asset: usd(),
        condition,
        expires_at: NOW + 60,
        memo: String::new(),
    };
    let uri = invoice.to_uri();
    assert!(uri.contains("&cosigners=1+"), "{uri}");
    assert_eq!(Invoice::parse(&uri), Ok(invoice.clone()));
    assert_invoice_is_usable(&uri);

    let (head, _) = uri.split_once("&cosigners=").expect("cosigners");
    let with = |value: &str| {
        let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        format!("{head}&cosigners={encoded}")
    };
    let witness_key = witness_vkey(0);
    for (uri, why) in [
        (with(&format!("0 {c0}")), "must be 1 to 1"),
        (with(&format!("2 {c0}")), "must be 1 to 1"),
        (with("1"), "expected 1 to 8 cosigner keys"),
        (with(&format!("x {c0}")), "cosigners threshold"),
        (with(&format!("1 {c0} {c0}")), "listed twice"),
        (with(&format!("1 {witness_key}")), "cosigners"),
        (with(&format!("1  {c0}")), "cosigners"),
        (
            format!(
                "{}&cosigners=1+{}",
                with(&format!("1 {c0}")),
                c1.replace('+', "%2B")
            ),
            "given twice",
        ),
    ] {
        let err = Invoice::parse(&uri).expect_err(&uri).to_string();
        assert!(err.contains(why), "{uri}: {err}");
    }
    // Before any witness it belongs to nothing.
    let (scheme_and_payee, query) = uri.split_once('?').expect("query");
    let first = format!(
        "{scheme_and_payee}?cosigners=1+{}&{query}",
        c0.replace('+', "%2B")
    );
    let err = Invoice::parse(&first)
        .expect_err("no witness yet")
        .to_string();
    assert!(err.contains("must follow the witness"), "{err}");
}

/// An invoice URI that parses must give a condition the wire decoder accepts; otherwise the
/// payer signs IOUs no hop can decode (`pay_routed` takes the condition as it is), and every
/// envelope carrying one is refused whole.
fn assert_invoice_is_usable(uri: &str) {
    let Ok(invoice) = Invoice::parse(uri) else {
        return;
    };
    let (mut ledger, _) = receiver();
    let mut ops = Vec::new();
    let sent = ledger.pay_routed(
        &key(3).public_key(),
        &usd(),
        vec![RoutePart {
            hops: vec![
                Hop {
                    next: key(0).public_key(),
                    amount: Amount::from_minor(11),
                },
                Hop {
                    next: key(3).public_key(),
                    amount: Amount::from_minor(10),
                },
            ],
        }],
        invoice.condition.clone(),
        NOW + 60,
        [0xd0; 32],
        String::new(),
        None,
        NOW,
        &mut ops,
    );
    let Ok(sent) = sent else {
        return;
    };
    for (_, message) in ledger.take_outgoing() {
        let envelope = ledger.seal(&key(0).public_key(), NOW, vec![message]);
        assert!(
            Signed::<Envelope>::decode(&envelope).is_ok(),
            "the invoice parses, but no peer can decode the IOU paying it: {uri}"
        );
    }
    assert!(!sent.is_empty());
}

/// The `witness` field repeated: `Invoice::parse` keeps both, `WitnessCondition::decode`
/// refuses a log listed twice.
#[test]
fn known_bug_an_invoice_with_a_repeated_witness_is_unusable() {
    let invoice = Invoice {
        payee: key(3).public_key(),
        amount: Amount::from_minor(10),
        asset: usd(),
        condition: routed_condition(&[9; 32]),
        expires_at: NOW + 60,
        memo: String::new(),
    };
    let uri = invoice.to_uri();
    let (_, witness) = uri.split_once("&witness=").expect("a witness");
    let uri = format!("{uri}&witness={witness}");
    assert_invoice_is_usable(&uri);
}

/// A log key longer than the wire's 256 bytes (a valid note key: names may be long):
/// `Invoice::parse` accepts it, `WitnessCondition::decode` refuses it.
#[test]
fn known_bug_an_invoice_with_a_long_witness_key_is_unusable() {
    let signer = atomicity_witness::note::Signer::new(
        &format!("{}/log", "w".repeat(250)),
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .expect("signer");
    let vkey = signer.verifier().vkey();
    assert!(vkey.len() > atomicity_core::condition::MAX_VKEY_LEN);
    let invoice = Invoice {
        payee: key(3).public_key(),
        amount: Amount::from_minor(10),
        asset: usd(),
        condition: WitnessCondition {
            hash: [9; 32],
            witnesses: vec![WitnessTerms::new(vkey, 0, 10)],
        },
        expires_at: NOW + 60,
        memo: String::new(),
    };
    assert_invoice_is_usable(&invoice.to_uri());
}

/// A log name with a `;` (allowed in note key names, and `witness run --origin` takes any):
/// `to_uri` writes `<vkey>;<start>;<deadline>` and `parse` splits on every `;`, so the invoice
/// does not parse back (splitting the last two fields off from the right would).
#[test]
fn known_bug_an_invoice_whose_log_name_has_a_semicolon_does_not_round_trip() {
    let signer = atomicity_witness::note::Signer::new(
        "witness;example/log",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .expect("a valid key name");
    let invoice = Invoice {
        payee: key(3).public_key(),
        amount: Amount::from_minor(10),
        asset: usd(),
        condition: WitnessCondition {
            hash: [9; 32],
            witnesses: vec![WitnessTerms::new(signer.verifier().vkey(), 0, 10)],
        },
        expires_at: NOW + 60,
        memo: String::new(),
    };
    assert_eq!(Invoice::parse(&invoice.to_uri()), Ok(invoice));
}

/// A routed IOU (condition 2) sent as an offer (tag 1) instead of a forward: the ledger takes
/// it like a direct payment, without the payee's invoice check, and records an incoming
/// payment as completed, although the IOU is only pending (it is not owed until claimed, and
/// nobody may ever know its secret). It should be refused (or released) as an offer.
#[test]
fn known_bug_a_routed_iou_offered_directly_is_recorded_as_paid() {
    let (mut ledger, _) = receiver();
    let iou = Signed::sign(
        ConditionalIou {
            line: LineId {
                issuer: key(0).public_key(),
                holder: key(1).public_key(),
                asset: usd(),
            },
            id: 0,
            amount: Amount::from_minor(100),
            condition: Condition::WitnessCommit(routed_condition(&[0xee; 32])),
            payment_id: [0xee; 32],
            expires_at: u64::MAX,
            memo: String::new(),
        },
        key(0),
    );
    let mut ops = Vec::new();
    let reply = ledger.handle_message(&key(0).public_key(), Message::Offer(iou), NOW, &mut ops);
    let completed = ops.iter().any(|op| {
        matches!(
            op,
            StoreOp::PutPayment(p) if p.status == atomicity_core::PaymentStatus::Completed
        )
    });
    assert!(
        !completed,
        "a routed IOU nobody can claim is recorded as a completed incoming payment (accepted: {})",
        matches!(reply, Reply::Accepted(_))
    );
}

/// A proof message whose secret matches its hash but whose bundle verifies for nothing (here:
/// garbage) is still "learned" (`Ledger::learn_proof` runs whenever `handle_proof` found no
/// error): it is stored for good as a `ProofRecord` (any peer can send proofs for fresh
/// secrets of its own with 48 KiB bundles, without bound; and the store keeps the first proof
/// per hash, so a bogus one sent early shadows the real one), and a payment secret with that
/// hash is marked paid (`Done`, with the bogus proof) although no part was claimed; the
/// shell's later `published` then fails with `UnknownHash` and the payee never claims.
#[test]
fn known_bug_a_proof_that_verifies_for_nothing_is_kept_and_pays_the_invoice() {
    let (mut ledger, mut store) = receiver();
    let hash = payment_hash(&INVOICE_SECRET);
    let bogus = WitnessProof {
        p: INVOICE_SECRET,
        log: witness_vkey(0),
        bundle: b"not a bundle".to_vec(),
    };
    let mut ops = Vec::new();
    let reply = ledger.handle_message(
        &key(0).public_key(),
        Message::Proof { hash, proof: bogus },
        NOW,
        &mut ops,
    );
    store.apply(&ops).expect("commit");
    let stored = store.proofs.len();
    let paid = store
        .hashlocks
        .get(&hash)
        .map(|h| h.status.as_str().to_string());
    assert!(
        stored == 0 && paid.as_deref() != Some("paid"),
        "a proof that verifies for nothing ({reply:?}) was stored ({stored} proofs) and left the \
         invoice {paid:?}"
    );
    // A proof for a fresh secret of the sender's, with a 48 KiB bundle: stored too.
    let p = [0x99; 32];
    let mut ops = Vec::new();
    ledger.handle_message(
        &key(0).public_key(),
        Message::Proof {
            hash: payment_hash(&p),
            proof: WitnessProof {
                p,
                log: String::new(),
                bundle: vec![0; atomicity_core::condition::MAX_BUNDLE_LEN],
            },
        },
        NOW,
        &mut ops,
    );
    assert!(
        !ops.iter().any(|op| matches!(op, StoreOp::PutProof(_))),
        "a proof about nothing the ledger holds is kept for good"
    );
}
