//! Signed objects, amounts and the credit-line rules: round trips, tamper detection, models,
//! and a table of every rejection with its typed reason.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;

use atomicity_core::condition::{MAX_BUNDLE_LEN, MAX_COSIGNERS, MAX_VKEY_LEN, MAX_WITNESSES};
use atomicity_core::encoding::Reader;
use atomicity_core::encoding::{DecodeError, Writer};
use atomicity_core::forward::MAX_HOPS;
use atomicity_core::routed::decode_condition;
use atomicity_core::signed::{BadSignature, SignedBody, SignedError};
use atomicity_core::{
    Acceptance, Amount, AmountError, Answer, Asset, Channel, Condition, ConditionalIou, Direction,
    Envelope, EnvelopeError, IouState, Keypair, Ledger, Limits, LineId, Message, OfferError,
    Rejection, Release, ReleaseReason, Reply, ResolvedSet, Signed, StoreOp, Total, decode_replies,
    encode_replies,
};
use atomicity_core::{Hop, Onward, WitnessCondition, WitnessProof, WitnessTerms, payment_hash};
use common::{
    KEYS, acceptance, condition_bytes, conditional_iou, cosigner, envelope, flip_bit, iou_state,
    key, message, onward, onward_bytes, reencode, release, reply, routed_iou, signer, unsigned_of,
    usd, witness_condition, witness_proof, witness_vkey,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------------
// Round trips and tampering.

/// Everything a signed object must satisfy: the wire bytes are the canonical encoding plus the
/// signature, they decode and verify back to the same object, one flipped bit (at `bit`) breaks
/// them, and the same body signed by another key does not verify.
fn check_signed<T>(body: T, signer: usize, bit: Index, other: usize) -> Result<(), TestCaseError>
where
    T: SignedBody + Clone + PartialEq + Debug,
{
    let signed = Signed::sign(body.clone(), key(signer));
    let bytes = signed.to_bytes();
    let canonical = reencode(&body);
    prop_assert_eq!(unsigned_of(&bytes), canonical.as_slice());
    prop_assert_eq!(signed.verify(), Ok(()));

    let back = Signed::<T>::decode_verified(&bytes)
        .map_err(|e| TestCaseError::fail(format!("{} does not decode: {e}", T::NAME)))?;
    prop_assert_eq!(back.body(), &body);
    prop_assert_eq!(back.to_bytes(), bytes.clone());
    prop_assert_eq!(back.hash(), signed.hash());
    prop_assert_eq!(back.signature(), signed.signature());

    let flipped = flip_bit(&bytes, bit.index(bytes.len() * 8));
    prop_assert!(
        Signed::<T>::decode_verified(&flipped).is_err(),
        "a flipped bit went unnoticed"
    );

    let other = if other == signer {
        (other + 1) % KEYS
    } else {
        other
    };
    let forged = Signed::sign(body, key(other));
    prop_assert_eq!(forged.verify(), Err(BadSignature { kind: T::NAME }));
    // A check is remembered only when it succeeds: a forgery fails every time, also cloned.
    prop_assert_eq!(forged.verify(), Err(BadSignature { kind: T::NAME }));
    prop_assert_eq!(forged.clone().verify(), Err(BadSignature { kind: T::NAME }));
    prop_assert_eq!(signed.verify(), Ok(()));
    prop_assert_eq!(signed.clone().verify(), Ok(()));
    prop_assert!(matches!(
        Signed::<T>::decode_verified(&forged.to_bytes()),
        Err(SignedError::Signature(_))
    ));

    // Cut short or extended by a byte: never accepted.
    prop_assert!(Signed::<T>::decode_verified(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(Signed::<T>::decode_verified(&longer).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn iou_state_round_trip((k, body) in iou_state(), bit in any::<Index>(), other in 0..KEYS) {
        check_signed(body, k, bit, other)?;
    }

    #[test]
    fn conditional_iou_round_trip(
        (k, body) in conditional_iou(),
        bit in any::<Index>(),
        other in 0..KEYS,
    ) {
        check_signed(body, k, bit, other)?;
    }

    #[test]
    fn acceptance_round_trip((k, body) in acceptance(), bit in any::<Index>(), other in 0..KEYS) {
        check_signed(body, k, bit, other)?;
    }

    #[test]
    fn release_round_trip((k, body) in release(), bit in any::<Index>(), other in 0..KEYS) {
        check_signed(body, k, bit, other)?;
    }

    #[test]
    fn envelope_round_trip((k, body) in envelope(), bit in any::<Index>(), other in 0..KEYS) {
        // Every message inside keeps its own valid signature.
        for m in &body.messages {
            let ok = match m {
                Message::Offer(o) => o.verify().is_ok(),
                Message::State(s) => s.verify().is_ok(),
                Message::Accept(a) => a.verify().is_ok(),
                Message::Release(r) => r.verify().is_ok(),
                Message::Forward(o, _) | Message::Issued(o) => o.verify().is_ok(),
                Message::Proof { .. } => true,
                Message::Settle(r) => r.verify().is_ok(),
                Message::SettleUpdate(u) => u.verify().is_ok(),
            };
            prop_assert!(ok);
        }
        check_signed(body, k, bit, other)?;
    }

    #[test]
    fn routed_iou_round_trip(
        (k, body) in routed_iou(),
        bit in any::<Index>(),
        other in 0..KEYS,
    ) {
        check_signed(body, k, bit, other)?;
    }

    /// Every message, alone in an envelope, decodes back to itself; its object bytes are the
    /// canonical encoding, and a byte more or less inside them is refused.
    #[test]
    fn message_round_trip(m in message(), cut in any::<Index>()) {
        let envelope = |m: &Message| {
            Signed::sign(
                Envelope {
                    from: key(0).public_key(),
                    to: key(1).public_key(),
                    sent_at: 1_700_000_000,
                    messages: vec![m.clone()],
                },
                key(0),
            )
        };
        let bytes = envelope(&m).to_bytes();
        let back = Signed::<Envelope>::decode_verified(&bytes)
            .map_err(|e| TestCaseError::fail(format!("does not decode: {e}")))?;
        prop_assert_eq!(&back.body().messages, &vec![m.clone()]);
        // The message as the envelope carries it: tag, u32 length, object bytes.
        let object = m.object_bytes();
        let unsigned = unsigned_of(&bytes);
        prop_assert!(unsigned.ends_with(&object));
        let tag = unsigned[unsigned.len() - object.len() - 5];
        let expected_tag = match &m {
            Message::Offer(_) => 1,
            Message::State(_) => 2,
            Message::Accept(_) => 3,
            Message::Release(_) => 4,
            Message::Forward(..) => 5,
            Message::Proof { .. } => 6,
            Message::Issued(_) => 7,
            Message::Settle(_) => 8,
            Message::SettleUpdate(_) => 9,
        };
        prop_assert_eq!(tag, expected_tag);
        // One byte more, or one byte less, inside the object: refused (the signature is not
        // checked, so only the object's own framing can refuse it).
        let mut longer = object.clone();
        longer.push(0);
        let mut shorter = object.clone();
        shorter.remove(cut.index(shorter.len()));
        for inner in [longer, shorter] {
            let mut w = Writer::new();
            w.u8(1);
            w.u8(Envelope::KIND);
            w.key(&key(0).public_key());
            w.key(&key(1).public_key());
            w.u64(1_700_000_000);
            w.u32(1);
            w.u8(tag);
            w.bytes(&inner);
            prop_assert!(Signed::<Envelope>::decode(&with_fake_signature(w.into_bytes())).is_err());
        }
    }

    /// The routed encodings that also stand alone (the store keeps them): condition,
    /// instructions and proof decode back to themselves and refuse a trailing byte.
    #[test]
    fn routed_encodings_round_trip(
        condition in witness_condition(),
        onward in onward(),
        proof in witness_proof(),
    ) {
        let bytes = condition_bytes(&condition);
        prop_assert_eq!(decode_condition(&bytes), Some(condition.clone()));
        prop_assert_eq!(decode_condition(&[bytes.as_slice(), &[0]].concat()), None);
        prop_assert_eq!(decode_condition(&bytes[..bytes.len() - 1]), None);

        let bytes = onward_bytes(&onward);
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(Onward::decode(&mut r), Ok(onward.clone()));
        prop_assert_eq!(r.finish(), Ok(()));
        prop_assert_eq!(bytes.len(), 4 + 40 * onward.hops.len() + 1);

        let bytes = proof.to_bytes();
        prop_assert_eq!(WitnessProof::from_bytes(&bytes), Ok(proof.clone()));
        prop_assert_eq!(
            WitnessProof::from_bytes(&[bytes.as_slice(), &[0]].concat()),
            Err(DecodeError::TrailingBytes(1))
        );
        prop_assert_eq!(bytes.len(), 32 + 4 + proof.log.len() + 4 + proof.bundle.len());
    }

    /// The hop rule: a condition implies itself and any with narrower windows for the same
    /// logs and cosigners, and no condition with another hash, a wider window or another log.
    #[test]
    fn the_hop_rule_allows_only_narrower_conditions(
        condition in witness_condition(),
        which in any::<Index>(),
        shrink in 0u64..3,
    ) {
        prop_assert!(condition.implies(&condition));
        let i = which.index(condition.witnesses.len());
        // A subset of the witnesses, with one window narrowed.
        let mut narrower = condition.clone();
        let t = &mut narrower.witnesses[i];
        if t.deadline_block - t.start_block > shrink {
            t.start_block += shrink;
        }
        narrower.witnesses = vec![narrower.witnesses[i].clone()];
        prop_assert!(condition.implies(&narrower));
        // Wider: not implied (unless the window cannot grow).
        let mut wider = condition.clone();
        let t = &mut wider.witnesses[i];
        if let Some(d) = t.deadline_block.checked_add(1) {
            t.deadline_block = d;
            prop_assert!(!condition.implies(&wider));
        }
        let mut other_hash = condition.clone();
        other_hash.hash[0] ^= 1;
        prop_assert!(!condition.implies(&other_hash));
        let mut other_policy = condition.clone();
        other_policy.witnesses[i].cosigners.push(cosigner(0).verifier().vkey());
        other_policy.witnesses[i].threshold = 1;
        prop_assert!(!condition.implies(&other_policy));
    }

    #[test]
    fn replies_round_trip(replies in prop::collection::vec(reply(), 0..6)) {
        let bytes = encode_replies(&replies);
        let back = decode_replies(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&replies));
        for reply in back.into_iter().flatten() {
            match reply {
                Reply::Accepted(a) => prop_assert_eq!(a.verify(), Ok(())),
                Reply::Released(r) => prop_assert_eq!(r.verify(), Ok(())),
                _ => {}
            }
        }
        prop_assert!(decode_replies(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(4);
        prop_assert_eq!(decode_replies(&longer), Err(DecodeError::TrailingBytes(1)));
    }
}

/// Fixed objects of every kind, each signed by its proper signer.
fn fixed_objects() -> Vec<(&'static str, Vec<u8>)> {
    let line = LineId {
        issuer: key(0).public_key(),
        holder: key(1).public_key(),
        asset: usd(),
    };
    let mut resolved = ResolvedSet::new();
    for id in [0, 1, 2, 5, 9] {
        resolved.insert(id);
    }
    let state = Signed::sign(
        IouState {
            line: line.clone(),
            seq: 3,
            total: Total::from_minor(12_345),
            resolved,
        },
        key(0),
    );
    let iou = Signed::sign(
        ConditionalIou {
            line: line.clone(),
            id: 4,
            amount: Amount::from_minor(500),
            condition: Condition::HolderAccepts,
            payment_id: [7; 32],
            expires_at: 1_700_000_000,
            memo: "coffee ☕".into(),
        },
        key(0),
    );
    let accept = Signed::sign(
        Acceptance {
            line: line.clone(),
            id: 4,
            iou_hash: iou.hash(),
        },
        key(1),
    );
    let release = Signed::sign(
        Release {
            line: line.clone(),
            id: 4,
            iou_hash: iou.hash(),
            reason: ReleaseReason::Declined,
        },
        key(1),
    );
    let p = [5; 32];
    let routed = Signed::sign(
        ConditionalIou {
            line,
            id: 5,
            amount: Amount::from_minor(700),
            condition: Condition::WitnessCommit(WitnessCondition {
                hash: payment_hash(&p),
                witnesses: vec![
                    WitnessTerms::new(witness_vkey(0), 10, 20),
                    WitnessTerms {
                        log: witness_vkey(1),
                        cosigners: vec![
                            cosigner(0).verifier().vkey(),
                            cosigner(1).verifier().vkey(),
                        ],
                        threshold: 2,
                        start_block: 0,
                        deadline_block: u64::MAX,
                    },
                ],
            }),
            payment_id: [8; 32],
            expires_at: 1_700_000_600,
            memo: String::new(),
        },
        key(0),
    );
    let routed_envelope = Signed::sign(
        Envelope {
            from: key(0).public_key(),
            to: key(1).public_key(),
            sent_at: 1_700_000_000,
            messages: vec![
                Message::Forward(
                    routed.clone(),
                    Onward {
                        hops: vec![Hop {
                            next: key(2).public_key(),
                            amount: Amount::from_minor(690),
                        }],
                        payer_publishes: true,
                    },
                ),
                Message::Proof {
                    hash: payment_hash(&p),
                    proof: WitnessProof {
                        p,
                        log: witness_vkey(0),
                        bundle: b"ATWB\x01 not a real bundle".to_vec(),
                    },
                },
                Message::Issued(routed.clone()),
            ],
        },
        key(0),
    );
    let envelope = Signed::sign(
        Envelope {
            from: key(0).public_key(),
            to: key(1).public_key(),
            sent_at: 1_700_000_000,
            messages: vec![
                Message::Offer(iou.clone()),
                Message::State(state.clone()),
                Message::Accept(accept.clone()),
                Message::Release(release.clone()),
            ],
        },
        key(0),
    );
    vec![
        ("iou-state", state.to_bytes()),
        ("conditional-iou", iou.to_bytes()),
        ("acceptance", accept.to_bytes()),
        ("release", release.to_bytes()),
        ("envelope", envelope.to_bytes()),
        ("conditional-iou", routed.to_bytes()),
        ("envelope", routed_envelope.to_bytes()),
    ]
}

fn decode_verified_any(kind: &str, bytes: &[u8]) -> Result<(), SignedError> {
    match kind {
        "iou-state" => Signed::<IouState>::decode_verified(bytes).map(drop),
        "conditional-iou" => Signed::<ConditionalIou>::decode_verified(bytes).map(drop),
        "acceptance" => Signed::<Acceptance>::decode_verified(bytes).map(drop),
        "release" => Signed::<Release>::decode_verified(bytes).map(drop),
        "envelope" => Signed::<Envelope>::decode_verified(bytes).map(drop),
        other => panic!("no such kind {other}"),
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    for (kind, bytes) in fixed_objects() {
        decode_verified_any(kind, &bytes).expect("the original verifies");
        for bit in 0..bytes.len() * 8 {
            assert!(
                decode_verified_any(kind, &flip_bit(&bytes, bit)).is_err(),
                "{kind}: flipping bit {bit} went unnoticed"
            );
        }
    }
}

#[test]
fn objects_of_one_kind_do_not_decode_as_another() {
    let objects = fixed_objects();
    for (kind, bytes) in &objects {
        for (other, _) in &objects {
            if kind != other {
                assert!(
                    decode_verified_any(other, bytes).is_err(),
                    "{kind} decoded as {other}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Non-canonical encodings.

fn base_line(w: &mut Writer) {
    w.key(&key(0).public_key());
    w.key(&key(1).public_key());
    w.asset(&usd());
}

fn with_fake_signature(mut unsigned: Vec<u8>) -> Vec<u8> {
    unsigned.extend_from_slice(&[0u8; 64]);
    unsigned
}

fn state_bytes(resolved: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    w.u8(IouState::KIND);
    base_line(&mut w);
    w.u64(1);
    w.total(Total::from_minor(100));
    resolved(&mut w);
    with_fake_signature(w.into_bytes())
}

fn iou_bytes(amount: u64, condition: u8, memo: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    w.u8(ConditionalIou::KIND);
    base_line(&mut w);
    w.u64(0);
    w.u64(amount);
    w.u8(condition);
    w.fixed(&[9; 32]);
    w.u64(1_700_000_000);
    w.bytes(memo);
    with_fake_signature(w.into_bytes())
}

fn invalid(field: &'static str) -> impl Fn(&DecodeError) -> bool {
    move |e| matches!(e, DecodeError::Invalid { field: f, .. } if *f == field)
}

#[test]
fn non_canonical_encodings_are_rejected() {
    type Check = Box<dyn Fn(&DecodeError) -> bool>;
    let state = |bytes: Vec<u8>| Signed::<IouState>::decode(&bytes).map(drop);
    let iou = |bytes: Vec<u8>| Signed::<ConditionalIou>::decode(&bytes).map(drop);
    let ok_state = state_bytes(|w| {
        w.u64(3);
        w.u32(2);
        w.u64(5);
        w.u64(9);
    });
    assert_eq!(state(ok_state.clone()), Ok(()));
    assert_eq!(iou(iou_bytes(1, 1, b"hi")), Ok(()));

    let cases: Vec<(&str, Result<(), DecodeError>, Check)> = vec![
        (
            "resolved id equal to the watermark",
            state(state_bytes(|w| {
                w.u64(3);
                w.u32(1);
                w.u64(3);
            })),
            Box::new(invalid("resolved ids")),
        ),
        (
            "resolved id below the watermark",
            state(state_bytes(|w| {
                w.u64(3);
                w.u32(1);
                w.u64(1);
            })),
            Box::new(invalid("resolved ids")),
        ),
        (
            "resolved ids descending",
            state(state_bytes(|w| {
                w.u64(0);
                w.u32(2);
                w.u64(9);
                w.u64(5);
            })),
            Box::new(invalid("resolved ids")),
        ),
        (
            "resolved ids repeated",
            state(state_bytes(|w| {
                w.u64(0);
                w.u32(2);
                w.u64(5);
                w.u64(5);
            })),
            Box::new(invalid("resolved ids")),
        ),
        (
            "too many resolved ids",
            state(state_bytes(|w| {
                w.u64(0);
                w.u32(4097);
            })),
            Box::new(|e| matches!(e, DecodeError::TooLong { max: 4096, .. })),
        ),
        (
            "resolved count larger than the data",
            state(state_bytes(|w| {
                w.u64(0);
                w.u32(3);
                w.u64(5);
            })),
            Box::new(|e| matches!(e, DecodeError::Truncated { .. })),
        ),
        (
            "zero amount",
            iou(iou_bytes(0, 1, b"")),
            Box::new(invalid("amount")),
        ),
        (
            "unknown condition",
            iou(iou_bytes(1, 3, b"")),
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::UnknownTag {
                        field: "condition",
                        tag: 3
                    }
                )
            }),
        ),
        (
            "memo not UTF-8",
            iou(iou_bytes(1, 1, &[0xff, 0xfe])),
            Box::new(invalid("memo")),
        ),
        (
            "memo too long",
            iou(iou_bytes(1, 1, &[b'a'; 257])),
            Box::new(|e| matches!(e, DecodeError::TooLong { field: "memo", .. })),
        ),
        (
            "version 3",
            {
                let mut b = ok_state.clone();
                b[0] = 3;
                state(b)
            },
            Box::new(|e| *e == DecodeError::UnsupportedVersion(3)),
        ),
        (
            // 2 marks the batch form: the last 72 bytes of a state signed alone read as an
            // index, a size and a signature, and the size is not a batch's.
            "a state signed alone, marked as signed in a batch",
            {
                let mut b = ok_state.clone();
                b[0] = 2;
                state(b)
            },
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::Invalid {
                        field: "batch size",
                        ..
                    } | DecodeError::Truncated {
                        field: "batch path",
                        ..
                    }
                )
            }),
        ),
        (
            "kind of another object",
            {
                let mut b = ok_state.clone();
                b[1] = Release::KIND;
                state(b)
            },
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::UnknownTag {
                        field: "kind",
                        tag: 4
                    }
                )
            }),
        ),
        (
            "trailing byte before the signature",
            {
                let mut b = ok_state.clone();
                b.insert(b.len() - 64, 0);
                state(b)
            },
            Box::new(|e| *e == DecodeError::TrailingBytes(1)),
        ),
        (
            "shorter than a signature",
            state(vec![1; 63]),
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::Truncated {
                        field: "signature",
                        ..
                    }
                )
            }),
        ),
        (
            "issuer and holder the same key",
            {
                let mut w = Writer::new();
                w.u8(1);
                w.u8(Acceptance::KIND);
                w.key(&key(0).public_key());
                w.key(&key(0).public_key());
                w.asset(&usd());
                w.u64(0);
                w.fixed(&[0; 32]);
                Signed::<Acceptance>::decode(&with_fake_signature(w.into_bytes())).map(drop)
            },
            Box::new(invalid("line")),
        ),
        (
            "lower-case asset code",
            {
                let mut w = Writer::new();
                w.u8(1);
                w.u8(Acceptance::KIND);
                w.key(&key(0).public_key());
                w.key(&key(1).public_key());
                w.u8(3);
                w.fixed(b"usd");
                w.u8(2);
                w.u64(0);
                w.fixed(&[0; 32]);
                Signed::<Acceptance>::decode(&with_fake_signature(w.into_bytes())).map(drop)
            },
            Box::new(invalid("asset")),
        ),
        (
            "asset scale 19",
            {
                let mut w = Writer::new();
                w.u8(1);
                w.u8(Acceptance::KIND);
                w.key(&key(0).public_key());
                w.key(&key(1).public_key());
                w.u8(3);
                w.fixed(b"USD");
                w.u8(19);
                w.u64(0);
                w.fixed(&[0; 32]);
                Signed::<Acceptance>::decode(&with_fake_signature(w.into_bytes())).map(drop)
            },
            Box::new(invalid("asset")),
        ),
        (
            "unknown release reason",
            {
                let mut w = Writer::new();
                w.u8(1);
                w.u8(Release::KIND);
                base_line(&mut w);
                w.u64(0);
                w.fixed(&[0; 32]);
                w.u8(12);
                Signed::<Release>::decode(&with_fake_signature(w.into_bytes())).map(drop)
            },
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::UnknownTag {
                        field: "release reason",
                        ..
                    }
                )
            }),
        ),
        (
            "envelope without messages",
            envelope_bytes(0, |_| {}),
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::Invalid {
                        field: "messages",
                        ..
                    }
                )
            }),
        ),
        (
            "envelope with 1025 messages",
            envelope_bytes(1025, |_| {}),
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::TooLong {
                        field: "messages",
                        ..
                    }
                )
            }),
        ),
        (
            "unknown message tag",
            envelope_bytes(1, |w| {
                w.u8(10);
                w.bytes(&ok_state);
            }),
            Box::new(|e| {
                matches!(
                    e,
                    DecodeError::UnknownTag {
                        field: "message",
                        tag: 10
                    }
                )
            }),
        ),
        (
            "message tag for another kind of object",
            envelope_bytes(1, |w| {
                w.u8(1); // offer, but the object is a state
                w.bytes(&ok_state);
            }),
            Box::new(|e| matches!(e, DecodeError::UnknownTag { field: "kind", .. })),
        ),
    ];
    for (name, result, check) in cases {
        match result {
            Err(e) if check(&e) => {}
            other => panic!("{name}: unexpected {other:?}"),
        }
    }

    // Replies.
    let reply_bytes = |body: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new();
        w.u8(1);
        w.u32(1);
        body(&mut w);
        decode_replies(&w.into_bytes())
    };
    assert!(matches!(
        reply_bytes(&|w| {
            w.u8(5);
            w.u32(65_536);
            w.bytes(b"");
        }),
        Err(DecodeError::Invalid { field: "code", .. })
    ));
    assert!(matches!(
        reply_bytes(&|w| {
            w.u8(5);
            w.u32(20);
            w.bytes(&[b'x'; 513]);
        }),
        Err(DecodeError::TooLong { field: "text", .. })
    ));
    assert!(matches!(
        reply_bytes(&|w| w.u8(6)),
        Err(DecodeError::UnknownTag {
            field: "reply",
            tag: 6
        })
    ));
    assert!(matches!(
        decode_replies(&[2, 0, 0, 0, 0]),
        Err(DecodeError::UnsupportedVersion(2))
    ));
    assert!(matches!(
        decode_replies(&[1, 0, 0, 4, 1]),
        Err(DecodeError::TooLong {
            field: "replies",
            ..
        })
    ));
    // Rejection text is for humans: longer texts are cut at a character boundary when encoded.
    let long = "é".repeat(300);
    let back = decode_replies(&encode_replies(&[Reply::Rejected {
        code: 7,
        text: long,
    }]))
    .expect("decodes");
    assert_eq!(
        back,
        vec![Reply::Rejected {
            code: 7,
            text: "é".repeat(256)
        }]
    );
}

fn envelope_bytes(count: u32, messages: impl FnOnce(&mut Writer)) -> Result<(), DecodeError> {
    let mut w = Writer::new();
    w.u8(1);
    w.u8(Envelope::KIND);
    w.key(&key(0).public_key());
    w.key(&key(1).public_key());
    w.u64(1_700_000_000);
    w.u32(count);
    messages(&mut w);
    Signed::<Envelope>::decode(&with_fake_signature(w.into_bytes())).map(drop)
}

/// A conditional IOU with condition tag 2 and the condition `condition` writes.
fn routed_iou_bytes(condition: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    w.u8(ConditionalIou::KIND);
    base_line(&mut w);
    w.u64(0);
    w.u64(1);
    w.u8(2);
    condition(&mut w);
    w.fixed(&[9; 32]);
    w.u64(1_700_000_000);
    w.bytes(b"");
    with_fake_signature(w.into_bytes())
}

/// One witness's terms, written field by field.
fn terms(w: &mut Writer, log: &[u8], cosigners: &[&[u8]], threshold: u8, window: (u64, u64)) {
    w.bytes(log);
    w.u32(cosigners.len() as u32);
    for c in cosigners {
        w.bytes(c);
    }
    w.u8(threshold);
    w.u64(window.0);
    w.u64(window.1);
}

/// Forwarding instructions, written field by field.
fn onward_raw(w: &mut Writer, hops: &[([u8; 32], u64)], payer_publishes: u8) {
    w.u32(hops.len() as u32);
    for (k, amount) in hops {
        w.fixed(k);
        w.u64(*amount);
    }
    w.u8(payer_publishes);
}

/// 32 bytes that are not an Ed25519 point.
fn not_a_point() -> [u8; 32] {
    (0..=255u8)
        .map(|b| [b; 32])
        .find(|bytes| atomicity_core::PublicKey::try_from(bytes).is_err())
        .expect("some byte pattern is not a point")
}

#[test]
fn non_canonical_routed_encodings_are_rejected() {
    type Check = Box<dyn Fn(&DecodeError) -> bool>;
    let iou = |bytes: Vec<u8>| Signed::<ConditionalIou>::decode(&bytes).map(drop);
    let log = |i: usize| witness_vkey(i).into_bytes();
    let cos = |i: usize| cosigner(i).verifier().vkey().into_bytes();
    let one = |w: &mut Writer, t: &dyn Fn(&mut Writer)| {
        w.fixed(&[7; 32]);
        w.u32(1);
        t(w);
    };
    let too_long = |field: &'static str| move |e: &DecodeError| matches!(e, DecodeError::TooLong { field: f, .. } if *f == field);
    let tag = |field: &'static str, tag: u8| {
        move |e: &DecodeError| *e == DecodeError::UnknownTag { field, tag }
    };

    // The edges that are valid.
    assert_eq!(
        iou(routed_iou_bytes(|w| one(w, &|w| terms(
            w,
            &log(0),
            &[],
            0,
            (0, 1)
        )))),
        Ok(())
    );
    assert_eq!(
        iou(routed_iou_bytes(|w| {
            w.fixed(&[7; 32]);
            w.u32(MAX_WITNESSES as u32);
            for i in 0..MAX_WITNESSES {
                let all: Vec<Vec<u8>> = (0..MAX_COSIGNERS).map(|_| cos(i)).collect();
                let all: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
                terms(
                    w,
                    &log(i),
                    &all,
                    MAX_COSIGNERS as u8,
                    (u64::MAX - 1, u64::MAX),
                );
            }
        })),
        Ok(())
    );

    let ok_iou = iou_bytes(1, 1, b"");
    let ok_state = state_bytes(|w| {
        w.u64(0);
        w.u32(0);
    });
    let forward = |object: &dyn Fn(&mut Writer)| {
        envelope_bytes(1, |w| {
            let mut inner = Writer::new();
            object(&mut inner);
            w.u8(5);
            w.bytes(&inner.into_bytes());
        })
    };
    let proof = |object: &dyn Fn(&mut Writer)| {
        envelope_bytes(1, |w| {
            let mut inner = Writer::new();
            object(&mut inner);
            w.u8(6);
            w.bytes(&inner.into_bytes());
        })
    };
    let a_key = *key(2).public_key().as_bytes();
    // The valid forward and proof objects these are variations of.
    assert_eq!(
        forward(&|w| {
            w.bytes(&ok_iou);
            onward_raw(w, &[(a_key, 1)], 1);
        }),
        Ok(())
    );
    assert_eq!(
        forward(&|w| {
            w.bytes(&ok_iou);
            onward_raw(w, &vec![(a_key, 1); MAX_HOPS], 0);
        }),
        Ok(())
    );
    assert_eq!(
        proof(&|w| {
            w.fixed(&[7; 32]);
            w.fixed(&[8; 32]);
            w.bytes(b"any text: the log is checked against the condition, later");
            w.bytes(&vec![0; MAX_BUNDLE_LEN]);
        }),
        Ok(())
    );

    let cases: Vec<(&str, Result<(), DecodeError>, Check)> = vec![
        (
            "a witness condition with no witness",
            iou(routed_iou_bytes(|w| {
                w.fixed(&[7; 32]);
                w.u32(0);
            })),
            Box::new(invalid("witnesses")),
        ),
        (
            "nine witnesses",
            iou(routed_iou_bytes(|w| {
                w.fixed(&[7; 32]);
                w.u32(MAX_WITNESSES as u32 + 1);
                for i in 0..=MAX_WITNESSES {
                    terms(w, &log(i), &[], 0, (0, 1));
                }
            })),
            Box::new(too_long("witnesses")),
        ),
        (
            "a log listed twice",
            iou(routed_iou_bytes(|w| {
                w.fixed(&[7; 32]);
                w.u32(2);
                terms(w, &log(0), &[], 0, (0, 1));
                terms(w, &log(0), &[], 0, (5, 9));
            })),
            Box::new(invalid("witnesses")),
        ),
        (
            "a log key that is not a verifier key",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, b"witness.example/log", &[], 0, (0, 1)))
            })),
            Box::new(invalid("witness log key")),
        ),
        (
            "a cosigner key as the log key",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &cos(0), &[], 0, (0, 1)))
            })),
            Box::new(invalid("witness log key")),
        ),
        (
            "a log key not UTF-8",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &[0xff, 0xfe], &[], 0, (0, 1)))
            })),
            Box::new(invalid("witness log key")),
        ),
        (
            "a log key over 256 bytes",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &[b'a'; MAX_VKEY_LEN + 1], &[], 0, (0, 1)))
            })),
            Box::new(too_long("witness log key")),
        ),
        (
            "a log key as a cosigner key",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[&log(1)], 1, (0, 1)))
            })),
            Box::new(invalid("cosigner key")),
        ),
        (
            "nine cosigners",
            iou(routed_iou_bytes(|w| {
                let all: Vec<Vec<u8>> = (0..=MAX_COSIGNERS).map(cos).collect();
                let all: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
                one(w, &|w| terms(w, &log(0), &all, 1, (0, 1)))
            })),
            Box::new(too_long("cosigners")),
        ),
        (
            "threshold 0 with cosigners",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[&cos(0)], 0, (0, 1)))
            })),
            Box::new(invalid("threshold")),
        ),
        (
            "threshold above the number of cosigners",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[&cos(0), &cos(1)], 3, (0, 1)))
            })),
            Box::new(invalid("threshold")),
        ),
        (
            "a threshold without cosigners",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[], 1, (0, 1)))
            })),
            Box::new(invalid("threshold")),
        ),
        (
            "deadline block equal to the start block",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[], 0, (5, 5)))
            })),
            Box::new(invalid("deadline block")),
        ),
        (
            "deadline block before the start block",
            iou(routed_iou_bytes(|w| {
                one(w, &|w| terms(w, &log(0), &[], 0, (6, 5)))
            })),
            Box::new(invalid("deadline block")),
        ),
        (
            "seventeen hops",
            forward(&|w| {
                w.bytes(&ok_iou);
                onward_raw(w, &vec![(a_key, 1); MAX_HOPS + 1], 0);
            }),
            Box::new(too_long("hops")),
        ),
        (
            "a hop amount of zero",
            forward(&|w| {
                w.bytes(&ok_iou);
                onward_raw(w, &[(a_key, 0)], 0);
            }),
            Box::new(invalid("hop amount")),
        ),
        (
            "a hop key that is not a point",
            forward(&|w| {
                w.bytes(&ok_iou);
                onward_raw(w, &[(not_a_point(), 1)], 0);
            }),
            Box::new(invalid("hop key")),
        ),
        (
            "payer publishes 2",
            forward(&|w| {
                w.bytes(&ok_iou);
                onward_raw(w, &[], 2);
            }),
            Box::new(tag("payer publishes", 2)),
        ),
        (
            "a byte after the instructions",
            forward(&|w| {
                w.bytes(&ok_iou);
                onward_raw(w, &[], 0);
                w.u8(0);
            }),
            Box::new(|e| *e == DecodeError::TrailingBytes(1)),
        ),
        (
            "a forward without instructions",
            forward(&|w| w.bytes(&ok_iou)),
            Box::new(|e| matches!(e, DecodeError::Truncated { .. })),
        ),
        (
            "a forward of an IOU state",
            forward(&|w| {
                w.bytes(&ok_state);
                onward_raw(w, &[], 0);
            }),
            Box::new(tag("kind", IouState::KIND)),
        ),
        (
            "a proof bundle over 48 KiB",
            proof(&|w| {
                w.fixed(&[7; 32]);
                w.fixed(&[8; 32]);
                w.bytes(&log(0));
                w.bytes(&vec![0; MAX_BUNDLE_LEN + 1]);
            }),
            Box::new(too_long("proof bundle")),
        ),
        (
            "a proof log key not UTF-8",
            proof(&|w| {
                w.fixed(&[7; 32]);
                w.fixed(&[8; 32]);
                w.bytes(&[0xc3]);
                w.bytes(b"");
            }),
            Box::new(invalid("proof log key")),
        ),
        (
            "a proof log key over 256 bytes",
            proof(&|w| {
                w.fixed(&[7; 32]);
                w.fixed(&[8; 32]);
                w.bytes(&[b'a'; MAX_VKEY_LEN + 1]);
                w.bytes(b"");
            }),
            Box::new(too_long("proof log key")),
        ),
        (
            "a byte after the proof",
            proof(&|w| {
                w.fixed(&[7; 32]);
                w.fixed(&[8; 32]);
                w.bytes(&log(0));
                w.bytes(b"");
                w.u8(0);
            }),
            Box::new(|e| *e == DecodeError::TrailingBytes(1)),
        ),
        (
            "a proof without a bundle",
            proof(&|w| {
                w.fixed(&[7; 32]);
                w.fixed(&[8; 32]);
                w.bytes(&log(0));
            }),
            Box::new(|e| matches!(e, DecodeError::Truncated { .. })),
        ),
        (
            "issued carrying a release",
            envelope_bytes(1, |w| {
                let mut r = Writer::new();
                r.u8(1);
                r.u8(Release::KIND);
                base_line(&mut r);
                r.u64(0);
                r.fixed(&[0; 32]);
                r.u8(1);
                w.u8(7);
                w.bytes(&with_fake_signature(r.into_bytes()));
            }),
            Box::new(tag("kind", Release::KIND)),
        ),
        (
            "message tag 10",
            envelope_bytes(1, |w| {
                w.u8(10);
                w.bytes(&ok_iou);
            }),
            Box::new(tag("message", 10)),
        ),
    ];
    for (name, result, check) in cases {
        match result {
            Err(e) if check(&e) => {}
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ResolvedSet against a BTreeSet model.

fn model_of(set: &ResolvedSet, model: &BTreeSet<u64>) -> Result<(), TestCaseError> {
    let w = set.watermark();
    prop_assert!(set.above().windows(2).all(|p| p[0] < p[1]), "not ascending");
    prop_assert!(
        set.above().iter().all(|id| *id > w),
        "listed id at or below the watermark"
    );
    prop_assert!(!set.contains(w) || w == u64::MAX);
    prop_assert_eq!(set.listed_len(), set.above().len());
    // Every id below the watermark is in the model, and the listed ones are the rest of it.
    prop_assert_eq!(model.range(..w).count() as u64, w);
    let rest: Vec<u64> = model.range(w..).copied().collect();
    prop_assert_eq!(set.above(), rest.as_slice());
    Ok(())
}

fn resolved_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..40,
        1 => (u64::MAX - 4)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(128)))]

    #[test]
    fn resolved_set_matches_a_btreeset(
        ids in prop::collection::vec(resolved_id(), 0..64),
        probes in prop::collection::vec(resolved_id(), 0..16),
        keep in prop::collection::vec(any::<bool>(), 64),
        extra in prop::collection::vec(resolved_id(), 0..3),
    ) {
        let mut set = ResolvedSet::new();
        let mut model = BTreeSet::new();
        for id in &ids {
            set.insert(*id);
            model.insert(*id);
            prop_assert!(set.contains(*id));
            model_of(&set, &model)?;
        }
        for probe in probes.iter().chain(&ids) {
            prop_assert_eq!(set.contains(*probe), model.contains(probe), "id {}", probe);
        }
        // A set made of some of the same ids (and maybe a few others).
        let mut other = ResolvedSet::new();
        let mut other_model = BTreeSet::new();
        for (id, keep) in ids.iter().zip(&keep) {
            if *keep {
                other.insert(*id);
                other_model.insert(*id);
            }
        }
        prop_assert!(set.is_superset_of(&other));
        for id in extra {
            other.insert(id);
            other_model.insert(id);
        }
        prop_assert_eq!(set.is_superset_of(&other), other_model.is_subset(&model));
        prop_assert_eq!(other.is_superset_of(&set), model.is_subset(&other_model));
        prop_assert!(set.is_superset_of(&ResolvedSet::new()));
        prop_assert!(set.is_superset_of(&set));
    }
}

#[test]
fn resolved_set_at_the_top_of_the_range() {
    let mut set = ResolvedSet::new();
    set.insert(u64::MAX);
    set.insert(u64::MAX - 1);
    assert!(set.contains(u64::MAX) && set.contains(u64::MAX - 1) && !set.contains(0));
    assert_eq!(set.watermark(), 0);

    // A decoded set whose watermark is just below the top: inserting the last two ids folds
    // without overflowing (it used to panic in debug builds and wrap to the empty set in
    // release builds).
    let bytes = state_bytes(|w| {
        w.u64(u64::MAX - 1);
        w.u32(0);
    });
    let state = Signed::<IouState>::decode(&bytes).expect("decodes");
    let mut set = state.body().resolved.clone();
    set.insert(u64::MAX);
    set.insert(u64::MAX - 1);
    assert_eq!(set.watermark(), u64::MAX);
    assert!(set.contains(0) && set.contains(u64::MAX - 1) && set.contains(u64::MAX));
}

// ---------------------------------------------------------------------------------------------
// Amounts and assets against u64/u128 models.

fn pow10(scale: u8) -> u128 {
    10u128.pow(u32::from(scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

    #[test]
    fn amount_display_parse_round_trip(minor in any::<u64>(), scale in 0u8..=18) {
        let amount = Amount::from_minor(minor);
        let text = amount.to_decimal(scale);
        prop_assert_eq!(Amount::parse(&text, scale), Ok(amount));
        // Exactly `scale` decimals, and the digits are the u64's digits.
        match text.split_once('.') {
            Some((whole, frac)) => {
                prop_assert!(scale > 0);
                prop_assert_eq!(frac.len(), usize::from(scale));
                prop_assert!(!whole.is_empty());
                let value: u128 = format!("{whole}{frac}").parse().expect("digits");
                prop_assert_eq!(value, u128::from(minor));
            }
            None => {
                prop_assert_eq!(scale, 0);
                prop_assert_eq!(text, minor.to_string());
            }
        }
    }

    #[test]
    fn amount_parse_matches_a_u128_model(
        whole in "[0-9]{1,22}",
        frac in prop::option::of("[0-9]{0,20}"),
        scale in 0u8..=18,
    ) {
        let text = match &frac {
            Some(f) => format!("{whole}.{f}"),
            None => whole.clone(),
        };
        let frac = frac.unwrap_or_default();
        let got = Amount::parse(&text, scale);
        if text.ends_with('.') {
            prop_assert_eq!(got, Err(AmountError::BadDecimal(text)));
        } else if frac.len() > usize::from(scale) {
            prop_assert_eq!(got, Err(AmountError::TooPrecise { amount: text, scale }));
        } else {
            let whole: u128 = whole.parse().expect("digits");
            let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().expect("digits") };
            let value = whole
                .checked_mul(pow10(scale))
                .and_then(|v| v.checked_add(frac_value * pow10(scale - frac.len() as u8)));
            match value.and_then(|v| u64::try_from(v).ok()) {
                Some(v) => prop_assert_eq!(got, Ok(Amount::from_minor(v))),
                None => prop_assert_eq!(got, Err(AmountError::Overflow(text))),
            }
        }
    }

    #[test]
    fn asset_display_parse_round_trip(asset in common::asset()) {
        let text = asset.to_string();
        prop_assert_eq!(text.parse::<Asset>(), Ok(asset.clone()));
        prop_assert_eq!(format!("{}:{}", asset.code(), asset.scale()).parse::<Asset>(), Ok(asset));
    }

    #[test]
    fn format_signed_is_the_sign_and_the_magnitude(value in any::<i64>(), scale in 0u8..=18) {
        let asset = Asset::new("X", scale).expect("asset");
        let text = asset.format_signed(i128::from(value));
        let magnitude = Amount::from_minor(value.unsigned_abs()).to_decimal(scale);
        if value < 0 {
            prop_assert_eq!(text, format!("-{magnitude}"));
        } else {
            prop_assert_eq!(text, magnitude);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Credit-line rules: every rejection with its typed reason.

const NOW: u64 = 1_700_000_000;
const LATER: u64 = NOW + 3600;

/// Node 0 issues to node 1 in USD; `holder` is node 1's side, `issuer` node 0's.
struct Line {
    issuer: Channel,
    holder: Channel,
}

impl Line {
    fn new(accept: u64) -> Line {
        let (a, b) = (key(0).public_key(), key(1).public_key());
        Line {
            issuer: Channel::new(
                a.clone(),
                b.clone(),
                usd(),
                Limits {
                    accept: Amount::ZERO,
                    issue: Amount::from_minor(1_000_000),
                },
            ),
            holder: Channel::new(
                b,
                a,
                usd(),
                Limits {
                    accept: Amount::from_minor(accept),
                    issue: Amount::ZERO,
                },
            ),
        }
    }

    fn line(&self) -> LineId {
        self.holder.in_line()
    }

    /// The issuer offers `amount`; the holder answers. Returns the IOU and the answer.
    fn pay(&mut self, amount: u64) -> (Signed<ConditionalIou>, Answer) {
        let iou = self
            .issuer
            .offer(
                signer(0),
                Amount::from_minor(amount),
                [1; 32],
                LATER,
                String::new(),
            )
            .expect("offer");
        let (answer, changed) = self
            .holder
            .handle_offer(signer(1), iou.clone(), NOW, None)
            .expect("answer");
        assert!(changed);
        (iou, answer)
    }

    fn state(&self, seq: u64, total: u128, resolved: &[u64]) -> Signed<IouState> {
        signed_state(self.line(), seq, total, resolved, key(0))
    }
}

fn signed_state(
    line: LineId,
    seq: u64,
    total: u128,
    resolved: &[u64],
    signer: &Keypair,
) -> Signed<IouState> {
    let mut set = ResolvedSet::new();
    for id in resolved {
        set.insert(*id);
    }
    Signed::sign(
        IouState {
            line,
            seq,
            total: Total::from_minor(total),
            resolved: set,
        },
        signer,
    )
}

/// The holder accepted ids 0 (100) and 1 (50), released id 2 (over its 1000 limit), and holds a
/// state with seq 1 that merged id 0.
fn holder_with_history() -> Line {
    let mut line = Line::new(1000);
    assert!(line.pay(100).1.is_accepted());
    assert!(line.pay(50).1.is_accepted());
    assert!(!line.pay(2000).1.is_accepted());
    let first = line.state(1, 100, &[0]);
    assert_eq!(line.holder.handle_state(first, NOW), Ok(Some(vec![0])));
    line
}

#[test]
fn state_rules() {
    type Expect = Result<Option<Vec<u64>>, Rejection>;
    let base = holder_with_history();
    let other_asset = LineId {
        asset: Asset::new("EUR", 2).expect("EUR"),
        ..base.line()
    };
    let reversed = base.issuer.in_line();
    let cases: Vec<(&str, Signed<IouState>, Expect)> = vec![
        (
            "the held state again (replay)",
            base.state(1, 100, &[0]),
            Ok(None),
        ),
        (
            "same seq, different total (equivocation)",
            base.state(1, 101, &[0]),
            Err(Rejection::Equivocation { seq: 1 }),
        ),
        (
            "same seq, different resolved set (equivocation)",
            base.state(1, 100, &[0, 2]),
            Err(Rejection::Equivocation { seq: 1 }),
        ),
        (
            "older seq",
            base.state(0, 0, &[]),
            Err(Rejection::StaleSeq { held: 1, got: 0 }),
        ),
        (
            "total decreased",
            base.state(2, 99, &[0]),
            Err(Rejection::TotalDecreased { held: 100, got: 99 }),
        ),
        (
            "resolved set shrank",
            base.state(2, 100, &[]),
            Err(Rejection::ResolvedShrank),
        ),
        (
            "resolved set replaced",
            base.state(2, 150, &[1]),
            Err(Rejection::ResolvedShrank),
        ),
        (
            "fulfilled IOU resolved without counting it",
            base.state(2, 100, &[0, 1]),
            Err(Rejection::UncountedFulfilled { missing: 50 }),
        ),
        (
            "fulfilled IOU partly counted",
            base.state(2, 120, &[0, 1, 2]),
            Err(Rejection::UncountedFulfilled { missing: 30 }),
        ),
        (
            "released IOU counted",
            base.state(2, 2100, &[0, 2]),
            Err(Rejection::UnconsentedIncrease { excess: 2000 }),
        ),
        (
            "total grows without any accepted IOU",
            base.state(2, 101, &[0]),
            Err(Rejection::UnconsentedIncrease { excess: 1 }),
        ),
        (
            "accepted IOU counted before it is resolved",
            base.state(2, 150, &[0]),
            Err(Rejection::UnconsentedIncrease { excess: 50 }),
        ),
        (
            "total jumps past u64::MAX",
            base.state(2, 1 << 64, &[0, 1, 2]),
            Err(Rejection::UnconsentedIncrease {
                excess: (1 << 64) - 150,
            }),
        ),
        (
            "total jumps to u128::MAX",
            base.state(2, u128::MAX, &[0]),
            Err(Rejection::UnconsentedIncrease {
                excess: u128::MAX - 100,
            }),
        ),
        (
            "wrong asset",
            signed_state(other_asset, 2, 150, &[0, 1], key(0)),
            Err(Rejection::WrongLine(String::new())),
        ),
        (
            "the other direction",
            signed_state(reversed, 2, 150, &[0, 1], key(1)),
            Err(Rejection::WrongLine(String::new())),
        ),
        (
            "merges the accepted and the released IOU",
            base.state(2, 150, &[0, 1, 2]),
            Ok(Some(vec![1, 2])),
        ),
        (
            "seq may jump",
            base.state(9, 150, &[0, 1, 2]),
            Ok(Some(vec![1, 2])),
        ),
        (
            "resolves ids never offered (releases them)",
            base.state(2, 100, &[0, 7, 8]),
            Ok(Some(vec![])),
        ),
    ];
    for (name, state, expected) in cases {
        let mut line = base.holder.clone();
        let got = line.handle_state(state, NOW);
        let same = match (&got, &expected) {
            (Err(Rejection::WrongLine(_)), Err(Rejection::WrongLine(_))) => true,
            _ => got == expected,
        };
        assert!(same, "{name}: got {got:?}, expected {expected:?}");
        if got.is_err() {
            // A rejection changes nothing.
            assert_eq!(
                line.view(),
                base.holder.view(),
                "{name}: rejection changed the line"
            );
            assert_eq!(line.in_state(), base.holder.in_state());
            assert_eq!(line.in_conditionals(), base.holder.in_conditionals());
        }
    }

    // Seq 0 with no state held is not an equivocation (nobody signs seq 0).
    let mut fresh = Line::new(10);
    assert_eq!(
        fresh.holder.handle_state(fresh.state(0, 0, &[]), NOW),
        Err(Rejection::StaleSeq { held: 0, got: 0 })
    );
    let first = fresh.state(1, 0, &[]);
    assert_eq!(
        fresh.holder.handle_state(first.clone(), NOW),
        Ok(Some(vec![]))
    );
    assert_eq!(fresh.holder.handle_state(first, NOW), Ok(None));
}

#[test]
fn offer_rules() {
    let mut line = Line::new(100);
    // Within the limit: accepted, and the acceptance names exactly this IOU.
    let (iou, answer) = line.pay(60);
    let Answer::Accepted(a) = &answer else {
        panic!("expected acceptance, got {answer:?}")
    };
    assert_eq!(a.body().iou_hash, iou.hash());
    assert_eq!(a.body().id, 0);
    assert_eq!(a.body().line, line.line());
    assert_eq!(a.verify(), Ok(()));

    // Resent: the same answer, nothing changed.
    assert_eq!(
        line.holder
            .handle_offer(signer(1), iou.clone(), NOW + 10, None),
        Ok((answer.clone(), false))
    );

    // Up to the limit exactly, then one unit over it.
    assert!(line.pay(40).1.is_accepted());
    let (over, answer) = line.pay(1);
    match &answer {
        Answer::Released(r) => {
            assert_eq!(r.body().reason, ReleaseReason::OverLimit);
            assert_eq!(r.body().iou_hash, over.hash());
            assert_eq!(r.verify(), Ok(()));
        }
        other => panic!("expected OverLimit, got {other:?}"),
    }

    // Expired: at the expiry second and after it.
    let mut line = Line::new(100);
    for (expires_at, now) in [(NOW, NOW), (NOW - 1, NOW)] {
        let iou = line
            .issuer
            .offer(
                signer(0),
                Amount::from_minor(1),
                [2; 32],
                expires_at,
                String::new(),
            )
            .expect("offer");
        match line.holder.handle_offer(signer(1), iou, now, None) {
            Ok((Answer::Released(r), true)) => assert_eq!(r.body().reason, ReleaseReason::Expired),
            other => panic!("expected Expired, got {other:?}"),
        }
    }

    // Same id, different content: conflicting.
    let mut line = Line::new(100);
    let (iou, _) = line.pay(10);
    let mut body = iou.body().clone();
    body.amount = Amount::from_minor(11);
    assert_eq!(
        line.holder
            .handle_offer(signer(1), Signed::sign(body, key(0)), NOW, None),
        Err(Rejection::ConflictingOffer { id: 0 })
    );

    // An id an earlier state resolved: late and harmless.
    let state = line.state(1, 10, &[0]);
    assert_eq!(
        line.holder
            .handle_offer(signer(1), iou.clone(), NOW, None)
            .map(|r| r.1),
        Ok(false)
    );
    line.holder.handle_state(state, NOW).expect("state");
    assert_eq!(
        line.holder.handle_offer(signer(1), iou, NOW, None),
        Err(Rejection::AlreadyResolved { id: 0 })
    );

    // Wrong line: issued to somebody else, or in another asset.
    let mut line = Line::new(100);
    for wrong in [
        LineId {
            holder: key(2).public_key(),
            ..line.line()
        },
        LineId {
            asset: Asset::new("EUR", 2).expect("EUR"),
            ..line.line()
        },
    ] {
        let iou = Signed::sign(
            ConditionalIou {
                line: wrong,
                id: 0,
                amount: Amount::from_minor(1),
                condition: Condition::HolderAccepts,
                payment_id: [0; 32],
                expires_at: LATER,
                memo: String::new(),
            },
            key(0),
        );
        assert!(matches!(
            line.holder.handle_offer(signer(1), iou, NOW, None),
            Err(Rejection::WrongLine(_))
        ));
    }
}

#[test]
fn answer_rules() {
    let mut line = Line::new(100);
    let (iou, answer) = line.pay(10);
    let Answer::Accepted(acceptance) = answer.clone() else {
        panic!("accepted")
    };

    // An answer for an id never issued.
    let stray = Signed::sign(
        Acceptance {
            line: line.line(),
            id: 5,
            iou_hash: iou.hash(),
        },
        key(1),
    );
    assert_eq!(
        line.issuer.handle_answer(Answer::Accepted(stray)),
        Err(Rejection::UnknownConditional { id: 5 })
    );
    // An answer for another IOU with the same id.
    let mismatch = Signed::sign(
        Acceptance {
            line: line.line(),
            id: 0,
            iou_hash: [0; 32],
        },
        key(1),
    );
    assert_eq!(
        line.issuer.handle_answer(Answer::Accepted(mismatch)),
        Err(Rejection::HashMismatch)
    );
    // An answer on the wrong line.
    let wrong = Signed::sign(
        Acceptance {
            line: LineId {
                asset: Asset::new("EUR", 2).expect("EUR"),
                ..line.line()
            },
            id: 0,
            iou_hash: iou.hash(),
        },
        key(1),
    );
    assert!(matches!(
        line.issuer.handle_answer(Answer::Accepted(wrong)),
        Err(Rejection::WrongLine(_))
    ));

    // The real answer, twice.
    assert_eq!(line.issuer.handle_answer(answer.clone()), Ok(true));
    assert_eq!(line.issuer.handle_answer(answer.clone()), Ok(false));
    // A release after the acceptance contradicts it.
    let release = Signed::sign(
        Release {
            line: line.line(),
            id: 0,
            iou_hash: iou.hash(),
            reason: ReleaseReason::Declined,
        },
        key(1),
    );
    assert_eq!(
        line.issuer.handle_answer(Answer::Released(release)),
        Err(Rejection::ConflictingAnswer { id: 0 })
    );
    // Merged: later copies of the answer are late and harmless.
    let (state, merged) = line
        .issuer
        .merge_answered(signer(0), NOW, 0)
        .expect("merge")
        .expect("something to merge");
    assert_eq!(merged, vec![0]);
    assert_eq!(state.body().seq, 1);
    assert_eq!(state.body().total, Total::from_minor(10));
    assert_eq!(line.issuer.merge_answered(signer(0), NOW, 0), Ok(None));
    assert_eq!(
        line.issuer.handle_answer(Answer::Accepted(acceptance)),
        Err(Rejection::AlreadyResolved { id: 0 })
    );
    assert_eq!(line.holder.handle_state(state, NOW), Ok(Some(vec![0])));
    assert_eq!(line.holder.view().map(|v| v.net), Some(10));
    assert_eq!(line.issuer.view().map(|v| v.net), Some(-10));
}

/// Totals are cumulative: they pass `u64::MAX` after enough back-and-forth turnover even though
/// the debt stays small. Both sides keep working with 128-bit totals: the issuer merges, the
/// holder checks the growth exactly, and the views (net, totals) stay right.
#[test]
fn totals_past_u64_max_keep_the_line_working() {
    let mut line = Line::new(1000);
    // A long history: each side issued just below u64::MAX on its line, so the net is 0.
    let start = u128::from(u64::MAX) - 10;
    let forth = line.state(5, start, &[0, 1, 2, 3, 4]);
    let back = signed_state(line.issuer.in_line(), 3, start, &[0, 1, 2], key(1));
    line.issuer = Channel::restore(
        key(0).public_key(),
        key(1).public_key(),
        usd(),
        line.issuer.limits,
        5,
        Some(forth.clone()),
        Some(back.clone()),
        Default::default(),
        Default::default(),
    );
    line.holder = Channel::restore(
        key(1).public_key(),
        key(0).public_key(),
        usd(),
        line.holder.limits,
        3,
        Some(back),
        Some(forth),
        Default::default(),
        Default::default(),
    );
    let view = line.holder.view().expect("view");
    assert_eq!(
        (view.in_total, view.out_total, view.net),
        (Total::from_minor(start), Total::from_minor(start), 0)
    );

    let (iou, answer) = line.pay(100);
    assert!(answer.is_accepted(), "{answer:?}");
    assert_eq!(iou.body().id, 5);
    assert_eq!(line.issuer.handle_answer(answer), Ok(true));
    let (state, merged) = line
        .issuer
        .merge_answered(signer(0), NOW, 0)
        .expect("no overflow")
        .expect("something to merge");
    assert_eq!(merged, vec![5]);
    assert_eq!(state.body().total, Total::from_minor(start + 100));
    assert!(state.body().total.minor() > u128::from(u64::MAX));
    // It survives the wire.
    let back = Signed::<IouState>::decode_verified(&state.to_bytes()).expect("decodes");
    assert_eq!(back, state);
    assert_eq!(
        line.holder.handle_state(state.clone(), NOW),
        Ok(Some(vec![5]))
    );
    assert_eq!(line.holder.handle_state(state, NOW), Ok(None));
    let (issuer, holder) = (
        line.issuer.view().expect("issuer view"),
        line.holder.view().expect("holder view"),
    );
    assert_eq!(issuer.out_total, Total::from_minor(start + 100));
    assert_eq!(holder.in_total, issuer.out_total);
    assert_eq!((holder.net, issuer.net), (100, -100));

    // The rules compare the full 128 bits: one minor unit less than held is a decrease.
    let lower = line.state(7, start + 99, &[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        line.holder.handle_state(lower, NOW),
        Err(Rejection::TotalDecreased {
            held: start + 100,
            got: start + 99,
        })
    );
    // Growth by 2^64 exactly (which a u64 difference would wrap to 0) is unconsented.
    let wrapped = line.state(7, start + 100 + (1 << 64), &[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        line.holder.handle_state(wrapped, NOW),
        Err(Rejection::UnconsentedIncrease { excess: 1 << 64 })
    );
}

/// Unanswered offers are shown as one amount (`pending_out`), so the issuer never lets their
/// sum pass a `u64`, even when its limit and the peer's debt would allow it: the view stays.
#[test]
fn unanswered_offers_stay_within_a_u64() {
    let (a, b) = (key(0).public_key(), key(1).public_key());
    let limits = Limits {
        accept: Amount::from_minor(u64::MAX),
        issue: Amount::from_minor(u64::MAX),
    };
    // The peer owes me u64::MAX: I could owe up to 2 × u64::MAX by my limit.
    let owed_to_me = signed_state(
        LineId {
            issuer: b.clone(),
            holder: a.clone(),
            asset: usd(),
        },
        1,
        u128::from(u64::MAX),
        &[],
        key(1),
    );
    let mut me = Channel::restore(
        a,
        b,
        usd(),
        limits,
        0,
        None,
        Some(owed_to_me),
        Default::default(),
        Default::default(),
    );
    let max = Amount::from_minor(u64::MAX);
    assert_eq!(me.available_to_issue(), Some(max));
    me.offer(signer(0), max, [1; 32], LATER, String::new())
        .expect("first offer");
    assert_eq!(me.available_to_issue(), Some(max));
    assert_eq!(
        me.offer(
            signer(0),
            Amount::from_minor(1),
            [2; 32],
            LATER,
            String::new()
        ),
        Err(OfferError::Overflow)
    );
    let view = me.view().expect("view");
    assert_eq!(view.pending_out, max);
    assert_eq!(view.net, i128::from(u64::MAX));
    assert_eq!(me.out_conditionals().len(), 1);
}

#[test]
fn a_full_resolved_list_still_merges_the_watermark() {
    use atomicity_core::objects::MAX_RESOLVED_ABOVE;
    let mut line = Line::new(0);
    let count = MAX_RESOLVED_ABOVE as u64 + 2;
    let ious: Vec<Signed<ConditionalIou>> = (0..count)
        .map(|_| {
            line.issuer
                .offer(
                    signer(0),
                    Amount::from_minor(1),
                    [0; 32],
                    LATER,
                    String::new(),
                )
                .expect("offer")
        })
        .collect();
    let accept = |iou: &Signed<ConditionalIou>| {
        Answer::Accepted(Signed::sign(
            Acceptance {
                line: iou.body().line.clone(),
                id: iou.body().id,
                iou_hash: iou.hash(),
            },
            key(1),
        ))
    };
    // Every offer but the first is answered: the list above the watermark fills up.
    for iou in &ious[1..] {
        assert_eq!(line.issuer.handle_answer(accept(iou)), Ok(true));
    }
    let (state, merged) = line
        .issuer
        .merge_answered(signer(0), NOW, 0)
        .expect("merge")
        .expect("merged");
    assert_eq!(merged.len(), MAX_RESOLVED_ABOVE);
    assert_eq!(state.body().resolved.listed_len(), MAX_RESOLVED_ABOVE);
    assert_eq!(state.body().resolved.watermark(), 0);
    assert!(line.issuer.has_mergeable(NOW, 0));
    // Still decodable by the holder.
    assert!(Signed::<IouState>::decode_verified(&state.to_bytes()).is_ok());
    // Full: nothing more merges until the oldest offer is answered...
    assert_eq!(line.issuer.merge_answered(signer(0), NOW, 0), Ok(None));
    // ...and then it folds the list, and the rest follows.
    assert_eq!(line.issuer.handle_answer(accept(&ious[0])), Ok(true));
    let (state, merged) = line
        .issuer
        .merge_answered(signer(0), NOW, 0)
        .expect("merge")
        .expect("merged");
    assert_eq!(merged, vec![0, count - 1]);
    assert_eq!(state.body().resolved.watermark(), count);
    assert_eq!(state.body().resolved.listed_len(), 0);
    assert_eq!(state.body().total, Total::from_minor(u128::from(count)));
    assert!(!line.issuer.has_mergeable(NOW, 0));
}

#[test]
fn rejection_codes_are_stable_and_distinct() {
    let all = [
        (Rejection::BadSignature("x"), 1),
        (Rejection::WrongLine(String::new()), 10),
        (Rejection::UnknownAsset(String::new()), 11),
        (Rejection::UnknownPeer, 12),
        (Rejection::StaleSeq { held: 0, got: 0 }, 20),
        (Rejection::Equivocation { seq: 0 }, 21),
        (Rejection::TotalDecreased { held: 0, got: 0 }, 22),
        (Rejection::ResolvedShrank, 23),
        (Rejection::UncountedFulfilled { missing: 0 }, 24),
        (Rejection::UnconsentedIncrease { excess: 0 }, 25),
        (Rejection::ConflictingOffer { id: 0 }, 30),
        (Rejection::ConflictingAnswer { id: 0 }, 31),
        (Rejection::AlreadyResolved { id: 0 }, 32),
        (Rejection::UnknownConditional { id: 0 }, 33),
        (Rejection::HashMismatch, 34),
        (Rejection::TooManyPending, 40),
        (Rejection::Overflow, 41),
        (Rejection::NotExpired { id: 0 }, 26),
        (Rejection::BadProof(String::new()), 35),
        (Rejection::AlreadyClaimed { id: 0 }, 36),
    ];
    for (rejection, code) in &all {
        assert_eq!(rejection.code(), *code, "{rejection:?}");
    }
    let codes: BTreeSet<u16> = all.iter().map(|(r, _)| r.code()).collect();
    assert_eq!(codes.len(), all.len());
    for (code, reason) in [
        (1, ReleaseReason::OverLimit),
        (2, ReleaseReason::UnknownAsset),
        (3, ReleaseReason::Expired),
        (4, ReleaseReason::TooManyPending),
        (5, ReleaseReason::Declined),
        (6, ReleaseReason::CannotForward),
        (7, ReleaseReason::FeeTooLow),
        (8, ReleaseReason::UnknownPayment),
        (9, ReleaseReason::PaymentFailed),
        (10, ReleaseReason::WitnessUnavailable),
        (11, ReleaseReason::WitnessNotAccepted),
    ] {
        assert_eq!(reason.code(), code);
        assert_eq!(ReleaseReason::from_code(code), Some(reason));
    }
    assert_eq!(ReleaseReason::from_code(0), None);
    assert_eq!(ReleaseReason::from_code(12), None);
}

// ---------------------------------------------------------------------------------------------
// Ledger: messages from peers, and envelopes.

/// A ledger for node 1 with node 0 as a peer and a USD line accepting 100.
fn holder_ledger() -> Ledger {
    let mut ledger = Ledger::new(key(1).clone());
    let mut ops = Vec::new();
    ledger
        .add_peer(key(0).public_key(), None, &mut ops)
        .expect("peer");
    ledger
        .set_limits(
            &key(0).public_key(),
            &usd(),
            Some(Amount::from_minor(100)),
            None,
            &mut ops,
        )
        .expect("limits");
    ledger
}

fn offer(line: LineId, id: u64, amount: u64, signer: &Keypair) -> Signed<ConditionalIou> {
    Signed::sign(
        ConditionalIou {
            line,
            id,
            amount: Amount::from_minor(amount),
            condition: Condition::HolderAccepts,
            payment_id: [id as u8; 32],
            expires_at: LATER,
            memo: String::new(),
        },
        signer,
    )
}

fn usd_line() -> LineId {
    LineId {
        issuer: key(0).public_key(),
        holder: key(1).public_key(),
        asset: usd(),
    }
}

fn rejected_code(reply: &Reply) -> Option<u16> {
    match reply {
        Reply::Rejected { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn ledger_message_rules() {
    let a = key(0).public_key();
    let stranger = key(5).public_key();

    // Bad signature: a body signed by somebody other than its issuer.
    let mut ledger = holder_ledger();
    let mut ops = Vec::new();
    let forged = offer(usd_line(), 0, 10, key(2));
    let reply = ledger.handle_message(&a, Message::Offer(forged), NOW, &mut ops);
    assert_eq!(
        rejected_code(&reply),
        Some(Rejection::BadSignature("").code())
    );
    assert!(ops.is_empty(), "a rejection changes nothing");

    // Bad signature: one bit of the signature flipped.
    let good = offer(usd_line(), 0, 10, key(0));
    let tampered = Signed::<ConditionalIou>::decode(&flip_bit(
        &good.to_bytes(),
        good.to_bytes().len() * 8 - 1,
    ))
    .expect("parses");
    let reply = ledger.handle_message(&a, Message::Offer(tampered), NOW, &mut ops);
    assert_eq!(rejected_code(&reply), Some(1));
    let forged_state = signed_state(usd_line(), 1, 0, &[], key(3));
    let reply = ledger.handle_message(&a, Message::State(forged_state), NOW, &mut ops);
    assert_eq!(rejected_code(&reply), Some(1));
    assert!(ops.is_empty());

    // Unknown peer.
    let stranger_line = LineId {
        issuer: stranger.clone(),
        ..usd_line()
    };
    let reply = ledger.handle_message(
        &stranger,
        Message::Offer(offer(stranger_line, 0, 1, key(5))),
        NOW,
        &mut ops,
    );
    assert_eq!(rejected_code(&reply), Some(Rejection::UnknownPeer.code()));

    // An offer the sender did not issue.
    let third_party = LineId {
        issuer: key(2).public_key(),
        ..usd_line()
    };
    let reply = ledger.handle_message(
        &a,
        Message::Offer(offer(third_party, 0, 1, key(2))),
        NOW,
        &mut ops,
    );
    assert_eq!(rejected_code(&reply), Some(10));

    // A state in an asset with no line.
    let eur = Asset::new("EUR", 2).expect("EUR");
    let eur_line = LineId {
        asset: eur.clone(),
        ..usd_line()
    };
    let reply = ledger.handle_message(
        &a,
        Message::State(signed_state(eur_line.clone(), 1, 0, &[], key(0))),
        NOW,
        &mut ops,
    );
    assert_eq!(
        rejected_code(&reply),
        Some(Rejection::UnknownAsset(String::new()).code())
    );
    assert!(ops.is_empty());

    // An offer in an asset with no line: released (the holder takes no credit in it), and the
    // release is stored in a line opened with zero limits, so that a resent offer gets the
    // same release even after the user opens the line.
    let eur_offer = offer(eur_line.clone(), 0, 1, key(0));
    let reply = ledger.handle_message(&a, Message::Offer(eur_offer.clone()), NOW, &mut ops);
    let release = match &reply {
        Reply::Released(r) => {
            assert_eq!(r.body().reason, ReleaseReason::UnknownAsset);
            assert_eq!(r.body().iou_hash, eur_offer.hash());
            assert_eq!(r.verify(), Ok(()));
            r.clone()
        }
        other => panic!("expected a release, got {other:?}"),
    };
    assert!(ops.iter().any(
        |op| matches!(op, StoreOp::PutLine(l) if l.asset == eur && l.limits == Limits::default())
    ));
    assert!(
        ops.iter()
            .any(|op| matches!(op, StoreOp::PutConditional(_)))
    );
    ops.clear();
    let mut more = Vec::new();
    ledger
        .set_limits(&a, &eur, Some(Amount::from_minor(1000)), None, &mut more)
        .expect("open the EUR line");
    let reply = ledger.handle_message(&a, Message::Offer(eur_offer), NOW, &mut ops);
    assert_eq!(reply, Reply::Released(release));
    assert!(ops.is_empty());
    // Once expired, the refusal is final and signed.
    let mut late = offer(eur_line, 1, 1, key(0)).body().clone();
    late.expires_at = NOW;
    let late = Signed::sign(late, key(0));
    let reply = ledger.handle_message(&a, Message::Offer(late.clone()), NOW, &mut ops);
    match &reply {
        Reply::Released(r) => {
            assert_eq!(r.body().reason, ReleaseReason::Expired);
            assert_eq!(r.body().iou_hash, late.hash());
            assert_eq!(r.verify(), Ok(()));
        }
        other => panic!("expected a release, got {other:?}"),
    }
    ops.clear();

    // An offer to somebody else.
    let elsewhere = LineId {
        holder: key(2).public_key(),
        ..usd_line()
    };
    let reply = ledger.handle_message(
        &a,
        Message::Offer(offer(elsewhere, 0, 1, key(0))),
        NOW,
        &mut ops,
    );
    assert_eq!(rejected_code(&reply), Some(10));
    assert!(ops.is_empty());

    // Over the limit: released, and the refusal is stored so a resend gets the same answer.
    let big = offer(usd_line(), 0, 101, key(0));
    let reply = ledger.handle_message(&a, Message::Offer(big.clone()), NOW, &mut ops);
    let Reply::Released(release) = &reply else {
        panic!("expected a release, got {reply:?}")
    };
    assert_eq!(release.body().reason, ReleaseReason::OverLimit);
    assert!(matches!(
        ops.as_slice(),
        [StoreOp::PutConditional(c)] if c.dir == Direction::In && c.id == 0 && c.answer.is_some()
    ));
    ops.clear();
    assert_eq!(
        ledger.handle_message(&a, Message::Offer(big), NOW + 5, &mut ops),
        reply
    );
    assert!(ops.is_empty(), "a resent offer changes nothing");

    // A conflicting offer is misbehaviour: rejected and kept as evidence.
    let conflicting = offer(usd_line(), 0, 5, key(0));
    let reply = ledger.handle_message(&a, Message::Offer(conflicting.clone()), NOW, &mut ops);
    assert_eq!(rejected_code(&reply), Some(30));
    match ops.as_slice() {
        [StoreOp::PutEvidence(e)] => {
            assert_eq!(e.peer, a);
            assert_eq!(e.received, conflicting.to_bytes());
        }
        other => panic!("expected evidence, got {other:?}"),
    }
    ops.clear();

    // Equivocation is evidence too; a stale state is not.
    let s2 = signed_state(usd_line(), 2, 0, &[0], key(0));
    assert_eq!(
        ledger.handle_message(&a, Message::State(s2), NOW, &mut ops),
        Reply::StateAck { seq: 2 }
    );
    ops.clear();
    let other_s2 = signed_state(usd_line(), 2, 0, &[0, 1], key(0));
    let reply = ledger.handle_message(&a, Message::State(other_s2), NOW, &mut ops);
    assert_eq!(rejected_code(&reply), Some(21));
    assert!(matches!(ops.as_slice(), [StoreOp::PutEvidence(_)]));
    ops.clear();
    let s1 = signed_state(usd_line(), 1, 0, &[], key(0));
    let reply = ledger.handle_message(&a, Message::State(s1), NOW, &mut ops);
    assert_eq!(rejected_code(&reply), Some(20));
    assert!(ops.is_empty());
}

#[test]
fn conflicting_answer_in_a_reply_is_evidence() {
    let b = key(1).public_key();
    let mut payer = Ledger::new(key(0).clone());
    let mut ops = Vec::new();
    payer.add_peer(b.clone(), None, &mut ops).expect("peer");
    payer
        .set_limits(&b, &usd(), None, Some(Amount::from_minor(100)), &mut ops)
        .expect("line");
    let iou = payer
        .pay(
            &b,
            &usd(),
            Amount::from_minor(10),
            [3; 32],
            String::new(),
            NOW,
            LATER,
            &mut ops,
        )
        .expect("pay");
    let line = iou.body().line.clone();
    let accepted = Signed::sign(
        Acceptance {
            line: line.clone(),
            id: 0,
            iou_hash: iou.hash(),
        },
        key(1),
    );
    ops.clear();
    assert_eq!(
        payer.handle_reply(&b, Reply::Accepted(accepted.clone()), NOW, &mut ops),
        Ok(Some(atomicity_core::PaymentOutcome::Completed))
    );
    assert!(!ops.is_empty());
    // The same answer again changes nothing.
    ops.clear();
    assert!(
        payer
            .handle_reply(&b, Reply::Accepted(accepted), NOW, &mut ops)
            .is_ok()
    );
    assert!(ops.is_empty());
    // The opposite answer is misbehaviour, kept as evidence like in a message.
    let released = Signed::sign(
        Release {
            line,
            id: 0,
            iou_hash: iou.hash(),
            reason: ReleaseReason::Declined,
        },
        key(1),
    );
    assert_eq!(
        payer.handle_reply(&b, Reply::Released(released.clone()), NOW, &mut ops),
        Err(Rejection::ConflictingAnswer { id: 0 })
    );
    match ops.as_slice() {
        [StoreOp::PutEvidence(e)] => {
            assert_eq!(e.peer, b);
            assert_eq!(e.received, released.to_bytes());
        }
        other => panic!("expected evidence, got {other:?}"),
    }
}

#[test]
fn envelope_rules() {
    let ledger = holder_ledger();
    let a = key(0).public_key();
    let b = key(1).public_key();
    let message = Message::Offer(offer(usd_line(), 0, 1, key(0)));
    let seal = |from: &Keypair, to: &atomicity_core::PublicKey, sent_at: u64| {
        Signed::sign(
            Envelope {
                from: from.public_key(),
                to: to.clone(),
                sent_at,
                messages: vec![message.clone()],
            },
            from,
        )
        .to_bytes()
    };
    let good = seal(key(0), &b, NOW);
    assert!(ledger.open_envelope(&good, NOW).is_ok());
    assert!(
        ledger
            .open_envelope(&seal(key(0), &b, NOW - 300), NOW)
            .is_ok()
    );
    assert!(
        ledger
            .open_envelope(&seal(key(0), &b, NOW + 300), NOW)
            .is_ok()
    );

    let forged = Signed::sign(
        Envelope {
            from: a.clone(),
            to: b.clone(),
            sent_at: NOW,
            messages: vec![message.clone()],
        },
        key(3),
    )
    .to_bytes();
    let mut trailing = good.clone();
    trailing.push(0);
    type Case = (&'static str, Vec<u8>, fn(&EnvelopeError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "wrong recipient",
            seal(key(0), &key(2).public_key(), NOW),
            |e| *e == EnvelopeError::WrongRecipient,
        ),
        ("sent too long ago", seal(key(0), &b, NOW - 301), |e| {
            matches!(e, EnvelopeError::Stale { .. })
        }),
        ("sent in the future", seal(key(0), &b, NOW + 301), |e| {
            matches!(e, EnvelopeError::Stale { .. })
        }),
        ("forged signature", forged, |e| {
            *e == EnvelopeError::BadSignature
        }),
        (
            "flipped signature bit",
            flip_bit(&good, good.len() * 8 - 3),
            |e| *e == EnvelopeError::BadSignature,
        ),
        ("unknown sender", seal(key(4), &b, NOW), |e| {
            matches!(e, EnvelopeError::UnknownPeer(_))
        }),
        ("trailing byte", trailing, |e| {
            matches!(e, EnvelopeError::Malformed(DecodeError::TrailingBytes(1)))
        }),
        ("last byte missing", good[..good.len() - 1].to_vec(), |e| {
            matches!(e, EnvelopeError::Malformed(DecodeError::Truncated { .. }))
        }),
        ("only a signature's worth", good[..64].to_vec(), |e| {
            matches!(e, EnvelopeError::Malformed(_))
        }),
        ("empty", Vec::new(), |e| {
            matches!(e, EnvelopeError::Malformed(DecodeError::Truncated { .. }))
        }),
    ];
    for (name, bytes, check) in cases {
        match ledger.open_envelope(&bytes, NOW) {
            Err(e) if check(&e) => {}
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    // Every prefix of a good envelope is refused.
    for len in 0..good.len() {
        assert!(
            ledger.open_envelope(&good[..len], NOW).is_err(),
            "prefix of {len} bytes"
        );
    }
}
