//! The routed encodings that also stand alone (the store keeps them), on arbitrary bytes: a
//! witness condition (`routed::decode_condition`), forwarding instructions (`Onward::decode`)
//! and a witness proof (`WitnessProof::from_bytes`). Whatever is accepted is canonical; a
//! condition also passes the hop rule against itself, and a proof is verified against it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let condition = atomicity_fuzz::check_condition(data);
    if let Some(condition) = &condition {
        assert!(condition.implies(condition));
    }
    atomicity_fuzz::check_onward(data);
    if let Some(proof) = atomicity_fuzz::check_proof(data)
        && let Some(condition) = &condition
    {
        let _ = proof.verify(condition, u64::MAX);
    }
    // The first byte picks a split: a condition, then a proof.
    if let Some((&split, rest)) = data.split_first() {
        let at = usize::from(split).min(rest.len());
        let (c, p) = rest.split_at(at);
        if let (Some(condition), Some(proof)) = (
            atomicity_fuzz::check_condition(c),
            atomicity_fuzz::check_proof(p),
        ) {
            let _ = proof.verify(&condition, u64::MAX);
        }
    }
});
