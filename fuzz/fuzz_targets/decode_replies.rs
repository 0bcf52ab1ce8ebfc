//! `decode_replies` on arbitrary bytes.
#![no_main]

use atomicity_core::{Reply, decode_replies, encode_replies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(replies) = decode_replies(data) else {
        return;
    };
    // One round trip is stable; it is the identity unless a rejection text was not UTF-8
    // (those are read leniently).
    let again = encode_replies(&replies);
    assert_eq!(decode_replies(&again).as_ref(), Ok(&replies));
    let lossy = replies
        .iter()
        .any(|r| matches!(r, Reply::Rejected { text, .. } if text.contains('\u{fffd}')));
    if !lossy {
        assert_eq!(again, data);
    }
    for reply in &replies {
        match reply {
            Reply::Accepted(a) => {
                let _ = a.verify();
            }
            Reply::Released(r) => {
                let _ = r.verify();
            }
            _ => {}
        }
    }
});
