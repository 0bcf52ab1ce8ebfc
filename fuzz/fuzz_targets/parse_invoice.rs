//! `Invoice::parse` on arbitrary text: no panic, and whatever parses is a usable invoice whose
//! `to_uri` parses back to it.
#![no_main]

use atomicity_core::Invoice;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(invoice) = Invoice::parse(&text) else {
        return;
    };
    assert!(!invoice.amount.is_zero());
    assert!(!invoice.condition.witnesses.is_empty());
    for w in &invoice.condition.witnesses {
        assert!(w.start_block < w.deadline_block);
        assert!(w.verifier().is_ok());
    }
    let uri = invoice.to_uri();
    assert_eq!(Invoice::parse(&uri), Ok(invoice.clone()), "{uri}");
    // Usable: an IOU carrying its condition decodes at the next hop.
    let bytes = atomicity_fuzz::condition_bytes(&invoice.condition);
    assert_eq!(
        atomicity_fuzz::check_condition(&bytes).as_ref(),
        Some(&invoice.condition),
        "a parsed invoice's condition does not decode: {uri}"
    );
});
