//! Signed objects: one canonical, versioned, domain-separated encoding and its Ed25519 signature.
//!
//! Wire form of every signed object: `version (u8 = 1) || kind (u8) || body || signature (64)`.
//! The signature covers `"atomicity/v1/" || name || 0x00 || version || kind || body`, so a
//! signature made for one kind of object (or for a Pkarr packet with the same key) can never be
//! taken for another.

use std::sync::OnceLock;

use ed25519_dalek::Signature;
use pkarr::{Keypair, PublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::encoding::{DecodeError, Reader, Writer};

/// The only encoding version this implementation speaks.
pub const VERSION: u8 = 1;
/// Prefix of every signing input.
pub const DOMAIN_PREFIX: &[u8] = b"atomicity/v1/";
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A body that can be signed: its kind byte, its domain name, its canonical encoding, and
/// whose key must sign it.
pub trait SignedBody: Sized {
    /// The kind byte that follows the version.
    const KIND: u8;
    /// The domain-separation name inside the signing input.
    const NAME: &'static str;
    /// Writes the body's fields in canonical order.
    fn encode_body(&self, w: &mut Writer);
    /// Reads the body's fields, rejecting anything non-canonical.
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// The key whose signature makes this body valid.
    fn signer(&self) -> &PublicKey;
}

/// The signature does not verify under the key that must sign this object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("bad signature on {kind}")]
pub struct BadSignature {
    /// The kind of object.
    pub kind: &'static str,
}

/// A body together with its canonical encoding and signature.
///
/// Holding a `Signed<T>` does not mean the signature was checked: [`Signed::decode`] only parses;
/// [`Signed::decode_verified`] and [`Signed::verify`] check. A successful check is remembered
/// with the object (its bytes never change), so a node can check what arrives on its network
/// threads and its ledger thread's own check is then free.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    body: T,
    unsigned: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    /// Set once the signature verified.
    checked: OnceLock<()>,
}

impl<T: SignedBody> Signed<T> {
    /// Signs `body` with `key`. The caller makes sure `key` is the body's signer; a body signed
    /// by the wrong key fails [`Signed::verify`] like any forgery.
    pub fn sign(body: T, key: &Keypair) -> Signed<T> {
        let unsigned = encode_unsigned(&body);
        let signature = key.sign(&signing_input::<T>(&unsigned)).to_bytes();
        Signed {
            body,
            unsigned,
            signature,
            checked: OnceLock::new(),
        }
    }

    /// The signed fields.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The 64 signature bytes.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// SHA-256 of the unsigned encoding: the object's identity, independent of the signature.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.unsigned).into()
    }

    /// The length of [`Signed::to_bytes`], without building it.
    pub fn wire_len(&self) -> usize {
        self.unsigned.len() + SIGNATURE_LEN
    }

    /// The full wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.unsigned.len() + SIGNATURE_LEN);
        out.extend_from_slice(&self.unsigned);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the wire encoding without checking the signature.
    pub fn decode(bytes: &[u8]) -> Result<Signed<T>, DecodeError> {
        if bytes.len() < SIGNATURE_LEN {
            return Err(DecodeError::Truncated {
                field: "signature",
                needed: SIGNATURE_LEN - bytes.len(),
            });
        }
        let (unsigned, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let mut r = Reader::new(unsigned);
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8("kind")?;
        if kind != T::KIND {
            return Err(DecodeError::UnknownTag {
                field: "kind",
                tag: kind,
            });
        }
        let body = T::decode_body(&mut r)?;
        r.finish()?;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(signature);
        Ok(Signed {
            body,
            unsigned: unsigned.to_vec(),
            signature: sig,
            checked: OnceLock::new(),
        })
    }

    /// Checks the signature against the body's signer (strict Ed25519: no malleable signatures,
    /// no small-order keys).
    pub fn verify(&self) -> Result<(), BadSignature> {
        if self.checked.get().is_some() {
            return Ok(());
        }
        let bad = BadSignature { kind: T::NAME };
        let signature = Signature::from_bytes(&self.signature);
        self.body
            .signer()
            .verifying_key()
            .verify_strict(&signing_input::<T>(&self.unsigned), &signature)
            .map_err(|_| bad)?;
        let _ = self.checked.set(());
        Ok(())
    }

    /// Parses and checks the signature.
    pub fn decode_verified(bytes: &[u8]) -> Result<Signed<T>, SignedError> {
        let signed = Signed::decode(bytes)?;
        signed.verify()?;
        Ok(signed)
    }
}

impl<T: PartialEq> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.unsigned == other.unsigned && self.signature == other.signature
    }
}

impl<T: Eq> Eq for Signed<T> {}

/// A signed object that failed to parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignedError {
    /// Malformed bytes.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Forged or corrupted signature.
    #[error(transparent)]
    Signature(#[from] BadSignature),
}

fn encode_unsigned<T: SignedBody>(body: &T) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(T::KIND);
    body.encode_body(&mut w);
    w.into_bytes()
}

/// The exact bytes that are signed for an object of kind `T` whose unsigned encoding is
/// `unsigned` (exposed for test vectors and for other implementations to check against).
pub fn signing_input<T: SignedBody>(unsigned: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(DOMAIN_PREFIX.len() + T::NAME.len() + 1 + unsigned.len());
    input.extend_from_slice(DOMAIN_PREFIX);
    input.extend_from_slice(T::NAME.as_bytes());
    input.push(0);
    input.extend_from_slice(unsigned);
    input
}
