//! Shared checks for the fuzz targets in `fuzz_targets/`: a decoder accepts only canonical
//! encodings.

use atomicity_core::encoding::{Reader, Writer};
use atomicity_core::routed::decode_condition;
use atomicity_core::signed::{BATCH_FORM, SIGNATURE_LEN, SignedBody, VERSION};
use atomicity_core::{
    Amount, Asset, Condition, ConditionalIou, Keypair, LineId, Onward, Signed, SignedError,
    WitnessCondition, WitnessProof,
};

/// Decodes `data` as a signed `T` and checks what a decoder promises: anything accepted is the
/// canonical encoding of what it decoded to, and `decode_verified` agrees with `decode` plus
/// `verify`. Panics (a fuzzer finding) if not.
pub fn check_signed<T: SignedBody>(data: &[u8]) -> Option<Signed<T>> {
    let verified: Result<Signed<T>, SignedError> = Signed::decode_verified(data);
    let Ok(signed) = Signed::<T>::decode(data) else {
        assert!(
            verified.is_err(),
            "decode_verified accepted what decode refused"
        );
        return None;
    };
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(T::KIND);
    signed.body().encode_body(&mut w);
    let canonical = w.into_bytes();
    if signed.is_batched() {
        // `2 || kind || body || path || index || size || signature`: the same body.
        assert_eq!(data[0], BATCH_FORM);
        assert!(
            data[1..].starts_with(&canonical[1..]),
            "{} accepted a non-canonical encoding",
            T::NAME
        );
    } else {
        assert_eq!(
            canonical.as_slice(),
            &data[..data.len() - SIGNATURE_LEN],
            "{} accepted a non-canonical encoding",
            T::NAME
        );
    }
    assert_eq!(signed.to_bytes(), data);
    assert_eq!(verified.is_ok(), signed.verify().is_ok());
    let _ = signed.hash();
    Some(signed)
}

/// The encoding of forwarding instructions on their own.
pub fn onward_bytes(onward: &Onward) -> Vec<u8> {
    let mut w = Writer::new();
    onward.encode(&mut w);
    w.into_bytes()
}

/// Decodes `data` as forwarding instructions (all of it); anything accepted must be canonical.
pub fn check_onward(data: &[u8]) -> Option<Onward> {
    let mut r = Reader::new(data);
    let onward = Onward::decode(&mut r).ok()?;
    r.finish().ok()?;
    assert_eq!(
        onward_bytes(&onward),
        data,
        "onward accepted a non-canonical encoding"
    );
    Some(onward)
}

/// Decodes `data` as a witness proof; anything accepted must be canonical.
pub fn check_proof(data: &[u8]) -> Option<WitnessProof> {
    let proof = WitnessProof::from_bytes(data).ok()?;
    assert_eq!(
        proof.to_bytes(),
        data,
        "proof accepted a non-canonical encoding"
    );
    Some(proof)
}

/// The encoding of a witness condition on its own, cut out of a conditional IOU that carries
/// it (version, kind, two keys, `USD:2`, id, amount and the condition tag before it; payment
/// id, expiry and an empty memo after).
pub fn condition_bytes(condition: &WitnessCondition) -> Vec<u8> {
    let a = Keypair::from_secret_key(&[1; 32]).public_key();
    let b = Keypair::from_secret_key(&[2; 32]).public_key();
    let body = ConditionalIou {
        line: LineId {
            issuer: a,
            holder: b,
            asset: Asset::new("USD", 2).expect("USD"),
        },
        id: 0,
        amount: Amount::from_minor(1),
        condition: Condition::WitnessCommit(condition.clone()),
        payment_id: [0; 32],
        expires_at: 0,
        memo: String::new(),
    };
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(ConditionalIou::KIND);
    body.encode_body(&mut w);
    let bytes = w.into_bytes();
    bytes[2 + 32 + 32 + 5 + 8 + 8 + 1..bytes.len() - (32 + 8 + 4)].to_vec()
}

/// Decodes `data` as a witness condition (`routed::decode_condition`); anything accepted must
/// be canonical.
pub fn check_condition(data: &[u8]) -> Option<WitnessCondition> {
    let condition = decode_condition(data)?;
    assert_eq!(
        condition_bytes(&condition),
        data,
        "condition accepted a non-canonical encoding"
    );
    Some(condition)
}
