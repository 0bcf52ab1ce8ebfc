//! Shared checks for the fuzz targets in `fuzz_targets/`.

use atomicity_core::encoding::Writer;
use atomicity_core::signed::{SIGNATURE_LEN, SignedBody, VERSION};
use atomicity_core::{Signed, SignedError};

/// Decodes `data` as a signed `T` and checks what a decoder promises: anything accepted is the
/// canonical encoding of what it decoded to, and `decode_verified` agrees with `decode` plus
/// `verify`. Panics (a fuzzer finding) if not.
pub fn check_signed<T: SignedBody>(data: &[u8]) -> Option<Signed<T>> {
    let verified: Result<Signed<T>, SignedError> = Signed::decode_verified(data);
    let Ok(signed) = Signed::<T>::decode(data) else {
        assert!(
            verified.is_err(),
            "decode_verified accepted what decode refused"
        );
        return None;
    };
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(T::KIND);
    signed.body().encode_body(&mut w);
    let canonical = w.into_bytes();
    assert_eq!(
        canonical.as_slice(),
        &data[..data.len() - SIGNATURE_LEN],
        "{} accepted a non-canonical encoding",
        T::NAME
    );
    assert_eq!(signed.to_bytes(), data);
    assert_eq!(verified.is_ok(), signed.verify().is_ok());
    let _ = signed.hash();
    Some(signed)
}
