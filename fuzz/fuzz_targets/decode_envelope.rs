//! `Signed::<Envelope>::decode_verified` on arbitrary bytes, and every message inside: offers,
//! states, answers, forwards (IOU and instructions), proofs, issued IOUs, and settlement
//! requests and updates.
#![no_main]

use atomicity_core::{
    Acceptance, ConditionalIou, Envelope, IouState, Message, Release, SettlementRequest,
    SettlementUpdate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(envelope) = atomicity_fuzz::check_signed::<Envelope>(data) {
        for message in &envelope.body().messages {
            // Inner objects were decoded just as strictly: they re-decode on their own.
            match message {
                Message::Offer(o) | Message::Issued(o) => {
                    assert!(
                        atomicity_fuzz::check_signed::<ConditionalIou>(&o.to_bytes()).is_some()
                    );
                }
                Message::State(s) => {
                    assert!(atomicity_fuzz::check_signed::<IouState>(&s.to_bytes()).is_some());
                }
                Message::Accept(a) => {
                    assert!(atomicity_fuzz::check_signed::<Acceptance>(&a.to_bytes()).is_some());
                }
                Message::Release(r) => {
                    assert!(atomicity_fuzz::check_signed::<Release>(&r.to_bytes()).is_some());
                }
                Message::Forward(o, onward) => {
                    assert!(
                        atomicity_fuzz::check_signed::<ConditionalIou>(&o.to_bytes()).is_some()
                    );
                    let bytes = atomicity_fuzz::onward_bytes(onward);
                    assert_eq!(atomicity_fuzz::check_onward(&bytes).as_ref(), Some(onward));
                }
                Message::Proof { proof, .. } => {
                    let bytes = proof.to_bytes();
                    assert_eq!(atomicity_fuzz::check_proof(&bytes).as_ref(), Some(proof));
                }
                Message::Settle(r) => {
                    assert!(
                        atomicity_fuzz::check_signed::<SettlementRequest>(&r.to_bytes()).is_some()
                    );
                }
                Message::SettleUpdate(u) => {
                    assert!(
                        atomicity_fuzz::check_signed::<SettlementUpdate>(&u.to_bytes()).is_some()
                    );
                }
            }
            // The message's object bytes are what the envelope carried (the envelope's own
            // canonical check covers them; this re-encodes each message alone).
            let _ = message.object_bytes();
        }
    }
});
