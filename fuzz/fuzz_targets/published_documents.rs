//! What a node reads from others over plain HTTP: signed documents (`verify_document`, and
//! the state documents a holder refreshes from), channel lists as the router's crawler parses
//! them, router answers and identity proofs. No panic; whatever verifies verifies again the same.
#![no_main]

use atomicity_core::published::{
    CHANNELS_PATH, ChannelsValue, verify_document, verify_state_document,
};
use atomicity_core::router_api::RoutesAnswer;
use atomicity_witness::identity::{IdentityProof, Role, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = atomicity_core::Keypair::from_secret_key(&[7; 32]).public_key();
    let holder = atomicity_core::Keypair::from_secret_key(&[8; 32]).public_key();
    if let Ok(doc) = verify_document(data, &key, CHANNELS_PATH, None) {
        let again = verify_document(data, &key, CHANNELS_PATH, Some(doc.seq)).expect("stable");
        assert_eq!(again.value.get(), doc.value.get());
        if let Ok(value) = serde_json::from_str::<ChannelsValue>(doc.value.get()) {
            let channels = atomicity_router::crawl::parse_channels(doc.seq, value);
            assert!(
                channels
                    .lines
                    .iter()
                    .all(|l| !l.asset.to_string().is_empty())
            );
        }
    }
    let usd: atomicity_core::Asset = "USD".parse().expect("asset");
    let _ = verify_state_document(data, &key, &holder, &usd, None);
    if let Ok(answer) = serde_json::from_slice::<RoutesAnswer>(data) {
        let _ = serde_json::to_vec(&answer);
    }
    if let Ok(proof) = serde_json::from_slice::<IdentityProof>(data) {
        for role in [Role::Witness, Role::Watchtower, Role::Router] {
            let _ = verify(&proof, role, &[3; 32]);
        }
    }
});
