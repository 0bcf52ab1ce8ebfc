//! Payment requests as a payer reads them: the URI someone shares and the terms inside the
//! signed document. No panic; whatever parses writes back to something that parses the same.
#![no_main]

use atomicity_core::request::{RequestTerms, RequestUri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(terms) = RequestTerms::from_json(text) {
        let again = RequestTerms::from_json(&terms.to_json()).expect("round trip");
        assert_eq!(again, terms);
        let uri = RequestUri::parse(&terms.to_uri()).expect("own uri");
        assert_eq!(uri.id, terms.id);
    }
    let _ = RequestUri::parse(text);
});
