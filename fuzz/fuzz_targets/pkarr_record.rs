//! A Pkarr packet as the DHT hands it over (`signature || timestamp || DNS packet`, the BEP 44
//! item the discovery crate turns back into a packet with `SignedPacket::from_relay_payload`):
//! reading the node's `_atomicity` record out of whatever verifies, and rewriting the packet
//! with our record (keeping the others), never panics.
//!
//! (The target signs the fuzzed DNS packet itself, so the reader is reached with valid
//! signatures: the bytes after the first 72 are taken as the DNS packet.)
#![no_main]

use atomicity_discovery::{SignedPacket, node_packet, node_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = atomicity_core::Keypair::from_secret_key(&[7; 32]);
    // As it arrives: arbitrary bytes under some key (almost never a valid signature).
    let _ =
        SignedPacket::from_relay_payload(&key.public_key(), &bytes::Bytes::copy_from_slice(data));
    // Validly signed arbitrary DNS bytes, to reach the record reader.
    let encoded = data.get(8..).unwrap_or_default();
    let timestamp = data
        .get(..8)
        .and_then(|t| <[u8; 8]>::try_from(t).ok())
        .map_or(1, u64::from_be_bytes)
        & 0x7fff_ffff_ffff_ffff;
    let mut payload = Vec::with_capacity(72 + encoded.len());
    let mut signable = format!("3:seqi{timestamp}e1:v{}:", encoded.len()).into_bytes();
    signable.extend_from_slice(encoded);
    payload.extend_from_slice(&key.sign(&signable).to_bytes());
    payload.extend_from_slice(&timestamp.to_be_bytes());
    payload.extend_from_slice(encoded);
    let Ok(packet) = SignedPacket::from_relay_payload(&key.public_key(), &payload.into()) else {
        return;
    };
    let _ = node_url(&packet);
    let _ = atomicity_discovery::record::node_record(&packet);
    let _ = node_packet(&key, "http://127.0.0.1:7420", Some(&packet), 1u64);
});
