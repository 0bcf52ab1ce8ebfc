//! `Asset` and `Amount` parsing on arbitrary text: no panic, and what parses prints back.
#![no_main]

use atomicity_core::{Amount, Asset, parse_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&scale, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if let Ok(asset) = text.parse::<Asset>() {
        assert_eq!(asset.to_string().parse::<Asset>(), Ok(asset.clone()));
        let _ = asset.parse_amount(&text);
    }
    if let Ok(amount) = Amount::parse(&text, scale) {
        assert_eq!(Amount::parse(&amount.to_decimal(scale), scale), Ok(amount));
    }
    let _ = parse_key(&text);
});
