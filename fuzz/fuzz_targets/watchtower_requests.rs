//! Everything a stranger can send a watchtower, on arbitrary bytes: an `add-checkpoint` body,
//! a checkpoint note, a fork proof, a monitor observation. No panic, and a refused request
//! changes nothing (no `Change` is emitted unless it succeeded or is kept as evidence).
#![no_main]

use atomicity_witness::note::{Cosigner, Signer};
use atomicity_witness::watchtower::{Change, Watchtower};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Ok(log), Ok(cosigner)) = (
        Signer::new("fuzz.example/log", SigningKey::from_bytes(&[1; 32])),
        Cosigner::new("fuzz.example/tower", SigningKey::from_bytes(&[2; 32])),
    ) else {
        return;
    };
    let mut tower = Watchtower::new(cosigner);
    let mut out = Vec::new();
    if tower.watch(&log.vkey(), None, &mut out).is_err() {
        return;
    }
    let mut out = Vec::new();
    if tower.add_checkpoint(data, 1, &mut out).is_err() {
        assert!(out.iter().all(|c| matches!(
            c,
            Change::Refused { .. } | Change::Seen { .. } | Change::Indicted { .. }
        )));
    }
    let _ = tower.ingest_fork_proof(&log.vkey(), data, 1, &mut Vec::new());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tower.ingest_checkpoint(text, 1, &mut Vec::new());
        let _ = tower.observe(text, &[data.to_vec()], 1, &mut Vec::new());
    }
});
