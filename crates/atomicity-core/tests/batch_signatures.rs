//! Objects signed in a batch: one signature over the Merkle root of everything a ledger made in
//! one commit. Each object still stands alone: it decodes, verifies and re-encodes by itself,
//! has the same identity as if signed alone, and no change to any of its bits passes.
#![allow(clippy::unwrap_used)]

mod common;

use atomicity_core::signed::{BATCH_FORM, SignedBody, VERSION};
use atomicity_core::{
    Acceptance, Amount, Condition, ConditionalIou, IouState, LineId, Release, ReleaseReason,
    ResolvedSet, Signed, Signer, Total, VerifiedRoots,
};
use common::{key, usd};
use proptest::prelude::*;

/// The line key 0 issues on to key 1, and the one key 1 issues on to key 0.
fn lines() -> (LineId, LineId) {
    let (a, b) = (key(0).public_key(), key(1).public_key());
    let out = LineId {
        issuer: a.clone(),
        holder: b.clone(),
        asset: usd(),
    };
    let inn = LineId {
        issuer: b,
        holder: a,
        asset: usd(),
    };
    (out, inn)
}

/// Encoded objects of every kind a ledger signs, all for key 0.
#[derive(Clone, Debug)]
enum Made {
    Iou(Signed<ConditionalIou>),
    State(Signed<IouState>),
    Accept(Signed<Acceptance>),
    Release(Signed<Release>),
}

impl Made {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Made::Iou(o) => o.to_bytes(),
            Made::State(o) => o.to_bytes(),
            Made::Accept(o) => o.to_bytes(),
            Made::Release(o) => o.to_bytes(),
        }
    }

    fn is_batched(&self) -> bool {
        match self {
            Made::Iou(o) => o.is_batched(),
            Made::State(o) => o.is_batched(),
            Made::Accept(o) => o.is_batched(),
            Made::Release(o) => o.is_batched(),
        }
    }

    /// Decodes `bytes` as this kind and checks it: `Ok` only if it decodes and verifies.
    fn check(&self, bytes: &[u8], roots: &mut VerifiedRoots) -> Result<(), String> {
        fn one<T: SignedBody + std::fmt::Debug>(
            bytes: &[u8],
            roots: &mut VerifiedRoots,
        ) -> Result<(), String> {
            let o = Signed::<T>::decode(bytes).map_err(|e| e.to_string())?;
            o.verify_with(roots).map_err(|e| e.to_string())?;
            assert_eq!(o.to_bytes(), bytes, "what decodes re-encodes the same");
            Ok(())
        }
        match self {
            Made::Iou(_) => one::<ConditionalIou>(bytes, roots),
            Made::State(_) => one::<IouState>(bytes, roots),
            Made::Accept(_) => one::<Acceptance>(bytes, roots),
            Made::Release(_) => one::<Release>(bytes, roots),
        }
    }
}

/// Object `i` of a batch: the kinds in turn, each with `i` in it so that all differ.
fn make(signer: &Signer, i: u64) -> Made {
    let (out, inn) = lines();
    match i % 4 {
        0 => Made::Iou(signer.sign(ConditionalIou {
            line: out,
            id: i,
            amount: Amount::from_minor(i + 1),
            condition: Condition::HolderAccepts,
            payment_id: [i as u8; 32],
            expires_at: 1_000 + i,
            memo: "x".repeat(i as usize % 7),
        })),
        1 => Made::State(signer.sign(IouState {
            line: out,
            seq: i,
            total: Total::ZERO,
            resolved: ResolvedSet::new(),
        })),
        2 => Made::Accept(signer.sign(Acceptance {
            line: inn,
            id: i,
            iou_hash: [i as u8; 32],
        })),
        _ => Made::Release(signer.sign(Release {
            line: inn,
            id: i,
            iou_hash: [i as u8; 32],
            reason: ReleaseReason::Expired,
        })),
    }
}

fn batch(n: u64) -> Vec<Made> {
    let signer = Signer::batching(key(0).clone());
    let made: Vec<Made> = (0..n).map(|i| make(&signer, i)).collect();
    assert_eq!(signer.waiting(), n as usize);
    assert_eq!(signer.sign_batch(), n as usize);
    assert_eq!(signer.waiting(), 0);
    made
}

#[test]
fn a_batch_verifies_object_by_object_and_with_one_check_between_them() {
    let made = batch(5);
    let mut roots = VerifiedRoots::default();
    for m in &made {
        assert!(m.is_batched());
        let bytes = m.to_bytes();
        assert_eq!(bytes[0], BATCH_FORM);
        // Alone, as a third party checks one piece of evidence...
        m.check(&bytes, &mut VerifiedRoots::default()).unwrap();
        // ...and together, as a node checks an envelope.
        m.check(&bytes, &mut roots).unwrap();
    }
}

#[test]
fn a_batched_object_is_the_same_object_as_one_signed_alone() {
    let Made::Accept(batched) = &batch(3)[2] else {
        panic!("object 2 is an acceptance")
    };
    let alone = Signed::sign(batched.body().clone(), key(0));
    assert!(!alone.is_batched());
    assert_eq!(alone.to_bytes()[0], VERSION);
    assert_eq!(alone.hash(), batched.hash());
    assert!(alone.same_body(batched));
    assert_ne!(
        &alone, batched,
        "equal objects are equal in their signature too"
    );
    assert_ne!(alone.signature(), batched.signature());
}

#[test]
fn a_batch_of_one_is_signed_alone_and_a_signer_that_does_not_batch_signs_at_once() {
    let signer = Signer::batching(key(0).clone());
    let Made::Iou(iou) = make(&signer, 0) else {
        panic!("object 0 is an IOU")
    };
    assert_eq!(
        iou.signature(),
        None,
        "no signature before the batch is signed"
    );
    signer.sign_batch();
    assert!(!iou.is_batched());
    assert_eq!(
        iou.to_bytes(),
        Signed::sign(iou.body().clone(), key(0)).to_bytes()
    );
    assert_eq!(signer.sign_batch(), 0, "nothing left to sign");

    let at_once = Signer::new(key(0).clone());
    let Made::Iou(iou) = make(&at_once, 0) else {
        panic!("object 0 is an IOU")
    };
    assert!(iou.signature().is_some());
    assert_eq!(at_once.sign_batch(), 0);
}

/// A batch signed by key 0 with an object in it that names key 1 as its signer (a bug, or a
/// forger's try) fails for that object only.
#[test]
fn an_object_in_another_keys_batch_fails() {
    let signer = Signer::batching(key(0).clone());
    let (out, _) = lines();
    let mine = signer.sign(Acceptance {
        line: lines().1,
        id: 1,
        iou_hash: [1; 32],
    });
    let not_mine = signer.sign(Acceptance {
        line: out,
        id: 1,
        iou_hash: [1; 32],
    });
    signer.sign_batch();
    let mut roots = VerifiedRoots::default();
    mine.verify_with(&mut roots).unwrap();
    assert!(not_mine.verify_with(&mut roots).is_err());
    assert!(not_mine.verify().is_err());
}

/// An object's leaf is bound to its kind: an acceptance's place in a batch, put under a release
/// with the same fields, does not verify.
#[test]
fn a_place_in_a_batch_does_not_move_to_another_kind() {
    let made = batch(4);
    let Made::Accept(acceptance) = &made[2] else {
        panic!("object 2 is an acceptance")
    };
    let release = Signed::sign(
        Release {
            line: acceptance.body().line.clone(),
            id: acceptance.body().id,
            iou_hash: acceptance.body().iou_hash,
            reason: ReleaseReason::Expired,
        },
        key(0),
    );
    let trailer_len = acceptance.wire_len() - unsigned_len(acceptance);
    let accepted = acceptance.to_bytes();
    let mut forged = release.to_bytes();
    forged.truncate(forged.len() - 64);
    forged[0] = BATCH_FORM;
    forged.extend_from_slice(&accepted[accepted.len() - trailer_len..]);
    let decoded = Signed::<Release>::decode(&forged).unwrap();
    assert!(decoded.is_batched());
    assert!(decoded.verify().is_err());
}

/// The length of an acceptance's unsigned encoding.
fn unsigned_len(acceptance: &Signed<Acceptance>) -> usize {
    Signed::sign(acceptance.body().clone(), key(0)).wire_len() - 64
}

#[test]
fn malformed_batch_seals_are_rejected_by_the_decoder() {
    let made = batch(3);
    let bytes = made[0].to_bytes();
    let n = bytes.len();
    let with = |at: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + value.len()].copy_from_slice(value);
        b
    };
    // The seal ends with index (u32), size (u32), signature (64).
    let (index_at, size_at) = (n - 72, n - 68);
    for (name, b) in [
        ("size 1", with(size_at, &1u32.to_be_bytes())),
        ("size 0", with(size_at, &0u32.to_be_bytes())),
        ("index at the size", with(index_at, &3u32.to_be_bytes())),
        (
            "size over the limit",
            with(size_at, &(1u32 << 21).to_be_bytes()),
        ),
        ("truncated", bytes[..60].to_vec()),
        ("only a seal", bytes[n - 72..].to_vec()),
    ] {
        let mut roots = VerifiedRoots::default();
        assert!(made[0].check(&b, &mut roots).is_err(), "{name}");
    }
    assert!(Signed::<ConditionalIou>::decode(&[BATCH_FORM]).is_err());
    assert!(Signed::<ConditionalIou>::decode(&[]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every object of batches of every size verifies; changing any one bit of an encoded
    /// object (its form, body, path, place or signature) makes it fail to decode or to
    /// verify, also when the batch's root is already remembered as verified.
    #[test]
    fn every_object_verifies_and_no_bit_can_change(
        n in 1u64..40,
        pick in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let made = batch(n);
        let mut roots = VerifiedRoots::default();
        for m in &made {
            prop_assert_eq!(m.is_batched(), n > 1);
            let bytes = m.to_bytes();
            prop_assert!(m.check(&bytes, &mut roots).is_ok());
        }
        let m = &made[pick.index(made.len())];
        let mut bytes = m.to_bytes();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(m.check(&bytes, &mut roots).is_err(), "bit {} of {}", bit, bytes.len());
    }
}
