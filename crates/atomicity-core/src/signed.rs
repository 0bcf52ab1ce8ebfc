//! Signed objects: one canonical, versioned, domain-separated encoding and its Ed25519 signature.
//!
//! Wire form of every signed object, signed alone:
//! `version (u8 = 1) || kind (u8) || body || signature (64)`.
//! The signature covers `"atomicity/v1/" || name || 0x00 || version || kind || body`, so a
//! signature made for one kind of object (or for a Pkarr packet with the same key) can never be
//! taken for another.
//!
//! Or signed in a batch, with one signature over the Merkle root of many objects (RFC 9162
//! tree; each leaf is `SHA-256(0x00 || signing input)` of one object):
//! `2 || kind || body || path (32 each) || index (u32) || size (u32) || signature (64)`, the
//! signature covering `"atomicity/v1/batch" || 0x00 || size || root`. The object's identity
//! ([`Signed::hash`]) and signing input are the same in both forms: they start with version 1.
//! A node signs everything one commit of its ledger makes as one batch ([`Signer`]), so one
//! signature and one verification serve many payments.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use atomicity_witness::merkle;
use ed25519_dalek::Signature;
use pkarr::{Keypair, PublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::encoding::{DecodeError, Reader, Writer};

/// The only encoding version this implementation speaks.
pub const VERSION: u8 = 1;
/// The first byte of an object signed in a batch, in place of [`VERSION`].
pub const BATCH_FORM: u8 = 2;
/// Prefix of every signing input.
pub const DOMAIN_PREFIX: &[u8] = b"atomicity/v1/";
/// The domain name of a batch root's signing input (no object kind has it).
pub const BATCH_NAME: &str = "batch";
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Most objects in one batch: the path of a leaf is then at most 20 hashes.
pub const MAX_BATCH: u32 = 1 << 20;

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

/// How an object is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seal {
    /// A signature over the object's own signing input.
    Alone([u8; SIGNATURE_LEN]),
    /// A signature over the root of a batch, and the object's place in it.
    Batch(Box<BatchSeal>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct BatchSeal {
    path: Vec<merkle::Hash>,
    index: u32,
    size: u32,
    signature: [u8; SIGNATURE_LEN],
}

/// A body together with its canonical encoding and signature.
///
/// Holding a `Signed<T>` does not mean the signature was checked: [`Signed::decode`] only parses;
/// [`Signed::decode_verified`] and [`Signed::verify`] check. A successful check is remembered
/// with the object (its bytes never change), so a node can check what arrives on its network
/// threads and its ledger thread's own check is then free.
///
/// An object made by a batching [`Signer`] gets its signature when the signer's batch is
/// signed ([`Signer::sign_batch`]); every clone shares it. It must not be encoded before.
#[derive(Clone)]
pub struct Signed<T> {
    body: T,
    unsigned: Vec<u8>,
    seal: Arc<OnceLock<Seal>>,
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
            seal: Arc::new(OnceLock::from(Seal::Alone(signature))),
            checked: OnceLock::new(),
        }
    }

    /// The signed fields.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The 64 signature bytes: over the object alone, or over the root of its batch. `None`
    /// while a batching [`Signer`] has not signed its batch yet.
    pub fn signature(&self) -> Option<&[u8; SIGNATURE_LEN]> {
        self.seal.get().map(|seal| match seal {
            Seal::Alone(signature) => signature,
            Seal::Batch(batch) => &batch.signature,
        })
    }

    /// Whether the object was signed in a batch.
    pub fn is_batched(&self) -> bool {
        matches!(self.seal.get(), Some(Seal::Batch(_)))
    }

    /// SHA-256 of the unsigned encoding: the object's identity, independent of the signature.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.unsigned).into()
    }

    /// Whether `other` has the same signed fields (whatever signs them).
    pub fn same_body(&self, other: &Signed<T>) -> bool {
        self.unsigned == other.unsigned
    }

    /// The length of [`Signed::to_bytes`], without building it.
    pub fn wire_len(&self) -> usize {
        let seal = match self.seal.get() {
            Some(Seal::Batch(batch)) => batch.path.len() * 32 + 8,
            _ => 0,
        };
        self.unsigned.len() + seal + SIGNATURE_LEN
    }

    /// The full wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        out.extend_from_slice(&self.unsigned);
        match self.seal.get() {
            Some(Seal::Alone(signature)) => out.extend_from_slice(signature),
            Some(Seal::Batch(batch)) => {
                out[0] = BATCH_FORM;
                for hash in &batch.path {
                    out.extend_from_slice(hash);
                }
                out.extend_from_slice(&batch.index.to_be_bytes());
                out.extend_from_slice(&batch.size.to_be_bytes());
                out.extend_from_slice(&batch.signature);
            }
            None => {
                // A bug in the caller: encoded before its batch was signed. The zero signature
                // fails every check, so a peer rejects it rather than taking it.
                debug_assert!(false, "a {} encoded before its batch was signed", T::NAME);
                out.extend_from_slice(&[0; SIGNATURE_LEN]);
            }
        }
        out
    }

    /// Parses the wire encoding (either form) without checking the signature.
    pub fn decode(bytes: &[u8]) -> Result<Signed<T>, DecodeError> {
        let (unsigned, seal) = match bytes.first() {
            Some(&BATCH_FORM) => split_batch(bytes)?,
            _ => {
                let at = bytes.len().checked_sub(SIGNATURE_LEN).ok_or_else(|| {
                    DecodeError::Truncated {
                        field: "signature",
                        needed: SIGNATURE_LEN - bytes.len(),
                    }
                })?;
                let (unsigned, signature) = bytes.split_at(at);
                let mut sig = [0u8; SIGNATURE_LEN];
                sig.copy_from_slice(signature);
                (unsigned.to_vec(), Seal::Alone(sig))
            }
        };
        let mut r = Reader::new(&unsigned);
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
        Ok(Signed {
            body,
            unsigned,
            seal: Arc::new(OnceLock::from(seal)),
            checked: OnceLock::new(),
        })
    }

    /// Checks the signature against the body's signer (strict Ed25519: no malleable signatures,
    /// no small-order keys).
    pub fn verify(&self) -> Result<(), BadSignature> {
        self.verify_with(&mut VerifiedRoots::default())
    }

    /// [`Signed::verify`], with the batch roots already verified for this signer taken as
    /// they are, and a batch root that verifies remembered: the objects of one batch cost one
    /// signature check between them.
    pub fn verify_with(&self, roots: &mut VerifiedRoots) -> Result<(), BadSignature> {
        if self.checked.get().is_some() {
            return Ok(());
        }
        let bad = BadSignature { kind: T::NAME };
        let key = self.body.signer();
        match self.seal.get().ok_or(bad)? {
            Seal::Alone(signature) => {
                verify_strict(key, &signing_input::<T>(&self.unsigned), signature).ok_or(bad)?
            }
            Seal::Batch(batch) => {
                let leaf = leaf_hash::<T>(&self.unsigned);
                let root = merkle::root_from_inclusion(
                    &leaf,
                    u64::from(batch.index),
                    u64::from(batch.size),
                    &batch.path,
                )
                .map_err(|_| bad)?;
                let seen = (key.to_bytes(), batch.size, root, batch.signature);
                if !roots.0.contains(&seen) {
                    let input = batch_signing_input(batch.size, &root);
                    verify_strict(key, &input, &batch.signature).ok_or(bad)?;
                    roots.0.insert(seen);
                }
            }
        }
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

/// Batch roots whose signature verified, by signer: see [`Signed::verify_with`]. Keep one for
/// the objects of one envelope or reply, where one batch's objects travel together.
#[derive(Default, Debug)]
pub struct VerifiedRoots(HashSet<([u8; 32], u32, merkle::Hash, [u8; SIGNATURE_LEN])>);

fn verify_strict(key: &PublicKey, input: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Option<()> {
    key.verifying_key()
        .verify_strict(input, &Signature::from_bytes(signature))
        .ok()
}

/// Splits a batch-form encoding into the unsigned encoding (with version 1) and its seal.
fn split_batch(bytes: &[u8]) -> Result<(Vec<u8>, Seal), DecodeError> {
    let truncated = |field, needed| DecodeError::Truncated { field, needed };
    let at = bytes
        .len()
        .checked_sub(SIGNATURE_LEN + 8)
        .ok_or_else(|| truncated("batch seal", SIGNATURE_LEN + 8 - bytes.len()))?;
    let (rest, seal) = bytes.split_at(at);
    let mut r = Reader::new(seal);
    let index = r.u32("batch index")?;
    let size = r.u32("batch size")?;
    let signature = r.array("signature")?;
    if !(2..=MAX_BATCH).contains(&size) || index >= size {
        return Err(DecodeError::Invalid {
            field: "batch size",
            why: "a batch has 2 to 2^20 objects and the index is below its size",
        });
    }
    let path_len = merkle::inclusion_len(u64::from(index), u64::from(size)) * 32;
    let at = rest
        .len()
        .checked_sub(path_len)
        .ok_or_else(|| truncated("batch path", path_len - rest.len()))?;
    let (unsigned, path) = rest.split_at(at);
    let mut r = Reader::new(path);
    let path = (0..path.len() / 32)
        .map(|_| r.array("batch path"))
        .collect::<Result<_, _>>()?;
    let mut unsigned = unsigned.to_vec();
    match unsigned.first_mut() {
        Some(first) => *first = VERSION,
        None => return Err(truncated("version", 1)),
    }
    let seal = BatchSeal {
        path,
        index,
        size,
        signature,
    };
    Ok((unsigned, Seal::Batch(Box::new(seal))))
}

fn leaf_hash<T: SignedBody>(unsigned: &[u8]) -> merkle::Hash {
    merkle::leaf_hash(&signing_input::<T>(unsigned))
}

/// The exact bytes whose signature signs a batch of `size` objects with Merkle root `root`.
pub fn batch_signing_input(size: u32, root: &merkle::Hash) -> Vec<u8> {
    let mut input = Vec::with_capacity(DOMAIN_PREFIX.len() + BATCH_NAME.len() + 1 + 4 + 32);
    input.extend_from_slice(DOMAIN_PREFIX);
    input.extend_from_slice(BATCH_NAME.as_bytes());
    input.push(0);
    input.extend_from_slice(&size.to_be_bytes());
    input.extend_from_slice(root);
    input
}

/// Signs objects for one key: at once, or (batching) all together when
/// [`Signer::sign_batch`] is called, with one signature over their Merkle root.
///
/// A batching signer's objects have no signature until then, so its owner signs the batch
/// before it encodes, stores or sends any of them: a node's ledger does it once per commit.
#[derive(Debug)]
pub struct Signer {
    key: Keypair,
    /// `Some` when batching: the objects waiting for the batch signature.
    waiting: Option<Mutex<Vec<Waiting>>>,
}

/// The list stays whole whatever panicked while it was held (a push is the only change).
fn lock(waiting: &Mutex<Vec<Waiting>>) -> MutexGuard<'_, Vec<Waiting>> {
    waiting.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Waiting {
    input: Vec<u8>,
    seal: Arc<OnceLock<Seal>>,
}

impl Signer {
    /// A signer that signs each object at once.
    pub fn new(key: Keypair) -> Signer {
        Signer { key, waiting: None }
    }

    /// A signer that signs its objects in batches.
    pub fn batching(key: Keypair) -> Signer {
        Signer {
            key,
            waiting: Some(Mutex::new(Vec::new())),
        }
    }

    /// The key.
    pub fn key(&self) -> &Keypair {
        &self.key
    }

    /// Signs `body` now, or registers it in the batch.
    pub fn sign<T: SignedBody>(&self, body: T) -> Signed<T> {
        let Some(waiting) = &self.waiting else {
            return Signed::sign(body, &self.key);
        };
        let unsigned = encode_unsigned(&body);
        let seal = Arc::new(OnceLock::new());
        lock(waiting).push(Waiting {
            input: signing_input::<T>(&unsigned),
            seal: seal.clone(),
        });
        Signed {
            body,
            unsigned,
            seal,
            checked: OnceLock::new(),
        }
    }

    /// How many objects wait for the batch signature.
    pub fn waiting(&self) -> usize {
        self.waiting.as_ref().map_or(0, |w| lock(w).len())
    }

    /// Signs every waiting object: one alone, several with one signature over their Merkle
    /// root (split into batches of at most [`MAX_BATCH`]). Returns how many were signed.
    pub fn sign_batch(&self) -> usize {
        let Some(waiting) = &self.waiting else {
            return 0;
        };
        let waiting = std::mem::take(&mut *lock(waiting));
        for batch in waiting.chunks(MAX_BATCH as usize) {
            if let [one] = batch {
                let signature = self.key.sign(&one.input).to_bytes();
                let _ = one.seal.set(Seal::Alone(signature));
                continue;
            }
            let leaves: Vec<merkle::Hash> =
                batch.iter().map(|w| merkle::leaf_hash(&w.input)).collect();
            let (root, paths) = merkle::root_and_inclusion_proofs(&leaves);
            // At most MAX_BATCH, so within a u32.
            let size = batch.len() as u32;
            let signature = self.key.sign(&batch_signing_input(size, &root)).to_bytes();
            for ((index, w), path) in (0u32..).zip(batch).zip(paths) {
                let _ = w.seal.set(Seal::Batch(Box::new(BatchSeal {
                    path,
                    index,
                    size,
                    signature,
                })));
            }
        }
        waiting.len()
    }
}

/// The body and the seal: not whether it was checked yet, which two equal objects may differ in.
impl<T: std::fmt::Debug> std::fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("body", &self.body)
            .field("seal", &self.seal.get())
            .finish()
    }
}

impl<T: PartialEq> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.unsigned == other.unsigned && self.seal.get() == other.seal.get()
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
