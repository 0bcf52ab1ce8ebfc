//! `Signed::<Envelope>::decode_verified` on arbitrary bytes, and every object inside.
#![no_main]

use atomicity_core::{Envelope, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(envelope) = atomicity_fuzz::check_signed::<Envelope>(data) {
        for message in &envelope.body().messages {
            // Inner objects were decoded just as strictly: they re-decode on their own.
            match message {
                Message::Offer(o) => {
                    assert!(
                        atomicity_fuzz::check_signed::<atomicity_core::ConditionalIou>(
                            &o.to_bytes()
                        )
                        .is_some()
                    );
                }
                Message::State(s) => {
                    assert!(
                        atomicity_fuzz::check_signed::<atomicity_core::IouState>(&s.to_bytes())
                            .is_some()
                    );
                }
                Message::Accept(a) => {
                    assert!(
                        atomicity_fuzz::check_signed::<atomicity_core::Acceptance>(&a.to_bytes())
                            .is_some()
                    );
                }
                Message::Release(r) => {
                    assert!(
                        atomicity_fuzz::check_signed::<atomicity_core::Release>(&r.to_bytes())
                            .is_some()
                    );
                }
            }
        }
    }
});
