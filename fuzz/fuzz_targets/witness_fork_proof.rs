//! `ForkProof::from_bytes` on arbitrary bytes, then `verify`: no panic, canonical re-encoding.
#![no_main]

use atomicity_witness::fork::ForkProof;
use atomicity_witness::note::Signer;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = ForkProof::from_bytes(data) {
        assert_eq!(proof.to_bytes().ok().as_deref(), Some(data));
        if let Ok(log) = Signer::new("fuzz.example/log", SigningKey::from_bytes(&[1; 32])) {
            let _ = proof.verify(&log.verifier());
        }
    }
});
