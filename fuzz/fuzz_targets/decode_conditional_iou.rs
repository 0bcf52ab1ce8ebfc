//! `Signed::<ConditionalIou>::decode_verified` on arbitrary bytes.
#![no_main]

use atomicity_core::ConditionalIou;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    atomicity_fuzz::check_signed::<ConditionalIou>(data);
});
