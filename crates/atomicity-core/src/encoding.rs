//! The canonical byte encoding used for everything that is signed or sent between peers.
//!
//! Fixed field order, big-endian fixed-width integers, length-prefixed byte strings, no
//! optional padding: every value has exactly one encoding, and the decoder rejects anything
//! else (trailing bytes, non-minimal sets, unknown tags). `docs/protocol.md` specifies it.

use pkarr::PublicKey;
use thiserror::Error;

use crate::amount::{Amount, Asset, Total};

/// Why bytes could not be decoded. Every variant means "the sender sent garbage".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended in the middle of a field.
    #[error("truncated: needed {needed} more bytes for {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes remained after the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A version this implementation does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A kind or tag byte that is not defined.
    #[error("unknown {field} tag {tag}")]
    UnknownTag {
        /// The field being read.
        field: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// A field whose value is outside its allowed range or not in canonical form.
    #[error("invalid {field}: {why}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A list or string longer than the protocol allows.
    #[error("{field} too long: {len} > {max}")]
    TooLong {
        /// The field being read.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
}

thread_local! {
    /// Keys decoded recently on this thread (a node decodes the same few peer keys in every
    /// message).
    static KEYS: crate::memo::Cache<[u8; 32], PublicKey> = crate::memo::Cache::default();
}

/// The key with these bytes, if they are a valid Ed25519 point (memoized per thread).
pub(crate) fn known_key(bytes: &[u8; 32]) -> Option<PublicKey> {
    crate::memo::memoized(&KEYS, bytes, |b| PublicKey::try_from(b)).ok()
}

/// Appends canonical encodings to a byte buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Big-endian u128.
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Raw bytes of a fixed-size field.
    pub fn fixed(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// A u32 length, then the bytes.
    ///
    /// # Panics
    /// Never for protocol values: they are bounded far below 4 GiB before they get here.
    pub fn bytes(&mut self, v: &[u8]) {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(v);
    }

    /// A 32-byte Ed25519 public key.
    pub fn key(&mut self, k: &PublicKey) {
        self.fixed(k.as_bytes());
    }

    /// An amount in minor units.
    pub fn amount(&mut self, a: Amount) {
        self.u64(a.minor());
    }

    /// A line's cumulative total in minor units (u128).
    pub fn total(&mut self, t: Total) {
        self.u128(t.minor());
    }

    /// An asset: code length (u8), code bytes, scale (u8).
    pub fn asset(&mut self, a: &Asset) {
        let code = a.code().as_bytes();
        // Asset codes are at most 12 bytes, checked when the Asset was built.
        self.u8(code.len() as u8);
        self.fixed(code);
        self.u8(a.scale());
    }
}

/// Reads canonical encodings from a byte slice, failing on anything non-canonical.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Big-endian u128.
    pub fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array(field)?))
    }

    /// A u32 count of list items, at most `max`.
    pub fn count(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        Ok(len)
    }

    /// Length-prefixed bytes of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.count(field, max)?;
        self.take(len, field)
    }

    /// A 32-byte Ed25519 public key that is a valid curve point.
    pub fn key(&mut self, field: &'static str) -> Result<PublicKey, DecodeError> {
        let bytes: [u8; 32] = self.array(field)?;
        known_key(&bytes).ok_or(DecodeError::Invalid {
            field,
            why: "not an Ed25519 public key",
        })
    }

    /// An amount in minor units.
    pub fn amount(&mut self, field: &'static str) -> Result<Amount, DecodeError> {
        Ok(Amount::from_minor(self.u64(field)?))
    }

    /// A line's cumulative total in minor units (u128).
    pub fn total(&mut self, field: &'static str) -> Result<Total, DecodeError> {
        Ok(Total::from_minor(self.u128(field)?))
    }

    /// An asset, validated like [`Asset::new`].
    pub fn asset(&mut self) -> Result<Asset, DecodeError> {
        let len = self.u8("asset code length")? as usize;
        let code = self.take(len, "asset code")?;
        let scale = self.u8("asset scale")?;
        let code = std::str::from_utf8(code).map_err(|_| DecodeError::Invalid {
            field: "asset code",
            why: "not UTF-8",
        })?;
        Asset::new(code, scale).map_err(|_| DecodeError::Invalid {
            field: "asset",
            why: "code must be 1-12 of A-Z 0-9 and scale at most 18",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u128_and_totals_are_16_bytes_big_endian() {
        let mut w = Writer::new();
        w.u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        w.total(Total::from_minor(u128::MAX));
        w.total(Total::from_minor(12_345));
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 48);
        assert_eq!(
            hex::encode(&bytes[..16]),
            "0102030405060708090a0b0c0d0e0f10"
        );
        assert_eq!(bytes[16..32], [0xff; 16]);
        assert_eq!(
            hex::encode(&bytes[32..]),
            "00000000000000000000000000003039"
        );

        let mut r = Reader::new(&bytes);
        assert_eq!(r.u128("a"), Ok(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10));
        assert_eq!(r.total("b"), Ok(Total::from_minor(u128::MAX)));
        assert_eq!(r.total("c"), Ok(Total::from_minor(12_345)));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn a_short_u128_is_truncated() {
        let mut r = Reader::new(&[0u8; 15]);
        assert_eq!(
            r.total("total"),
            Err(DecodeError::Truncated {
                field: "total",
                needed: 1
            })
        );
    }
}
