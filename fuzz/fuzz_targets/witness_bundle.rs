//! `ProofBundle::from_bytes` on arbitrary bytes, then `verify_publication` on whatever decodes:
//! no panic, and a decoded bundle re-encodes to the same bytes. The same for a batched answer
//! of `POST /bundles` (`decode_bundles`), its count taken from the first byte.
#![no_main]

use atomicity_witness::bundle::{
    MAX_BUNDLES, ProofBundle, decode_bundles, encode_bundles, verify_publication,
};
use atomicity_witness::note::Signer;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = ProofBundle::from_bytes(data) {
        assert_eq!(bundle.to_bytes().ok().as_deref(), Some(data));
        let log = Signer::new("fuzz.example/log", SigningKey::from_bytes(&[1; 32]))
            .map(|s| s.verifier());
        if let Ok(log) = log {
            let _ = verify_publication(&bundle, &[0; 32], &log, None, 0, u64::MAX, u64::MAX);
        }
    }
    if let Some((&count, rest)) = data.split_first()
        && let Ok(list) = decode_bundles(rest, usize::from(count) % (MAX_BUNDLES + 1))
    {
        assert_eq!(encode_bundles(&list), rest);
    }
});
