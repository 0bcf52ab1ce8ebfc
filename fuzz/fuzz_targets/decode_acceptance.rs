//! `Signed::<Acceptance>::decode_verified` on arbitrary bytes.
#![no_main]

use atomicity_core::Acceptance;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    atomicity_fuzz::check_signed::<Acceptance>(data);
});
