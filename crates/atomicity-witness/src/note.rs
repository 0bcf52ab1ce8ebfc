//! C2SP signed notes with Ed25519 keys, checkpoints and cosignatures.
//!
//! This module implements:
//!
//! - [c2sp.org/signed-note]: text signed by one or more keys
//!   ([`Note`], [`Signer`], [`Verifier`], [`sign`], [`open`]), with Ed25519
//!   signatures (signature type `0x01`) and the verifier/signer key string
//!   encodings of `golang.org/x/mod/sumdb/note`;
//! - [c2sp.org/tlog-checkpoint]: the checkpoint note body ([`Checkpoint`]);
//! - [c2sp.org/tlog-cosignature]: timestamped Ed25519 `cosignature/v1`
//!   signatures (signature type `0x04`) ([`Cosigner`],
//!   [`CosignatureVerifier`]) and a k-of-n policy over them
//!   ([`CosignerPolicy`]).
//!
//! Every parser here is meant for untrusted input: inputs are size-bounded,
//! base64 decoding is canonical (padding required, no stray bits), and no
//! function panics.
//!
//! [c2sp.org/signed-note]: https://c2sp.org/signed-note
//! [c2sp.org/tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [c2sp.org/tlog-cosignature]: https://c2sp.org/tlog-cosignature

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Largest accepted encoded note (text plus signature lines), in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// Largest accepted number of signature lines in one note.
///
/// The spec requires accepting at least 16; this matches the limit of the Go
/// reference implementation (`golang.org/x/mod/sumdb/note`).
pub const MAX_SIGNATURES: usize = 100;

/// Largest accepted verifier or signer key string, in bytes.
pub const MAX_KEY_STRING_SIZE: usize = 4096;

/// Signature type byte of plain Ed25519 note signatures (c2sp.org/signed-note).
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Signature type byte of timestamped Ed25519 cosignatures
/// (c2sp.org/tlog-cosignature, `cosignature/v1`).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_COSIGNATURE_TIME: u64 = i64::MAX as u64;

/// Header line of the `cosignature/v1` signed message.
const COSIGNATURE_V1_HEADER: &str = "cosignature/v1\n";

/// Prefix of a signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Prefix of a signer key string.
const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// Length of a key ID.
const KEY_ID_SIZE: usize = 4;

/// Length of the cosignature timestamp.
const TIMESTAMP_SIZE: usize = 8;

/// Length of an Ed25519 signature.
const ED25519_SIG_SIZE: usize = 64;

/// Standard base64 (RFC 4648 §4) requiring canonical padding and zero
/// trailing bits, so each byte string has exactly one accepted encoding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Errors from parsing, signing and verifying notes, checkpoints and
/// cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The input exceeds a size limit.
    #[error("input too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// Limit that was exceeded.
        limit: usize,
    },
    /// The input is not valid UTF-8.
    #[error("input is not valid UTF-8")]
    NotUtf8,
    /// The input contains an ASCII control character other than newline.
    #[error("input contains a control character other than newline")]
    ControlCharacter,
    /// The note is not a text, a blank line and signature lines.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// A signature line is malformed.
    #[error("malformed signature line: {0}")]
    MalformedSignatureLine(&'static str),
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("too many signature lines (limit {MAX_SIGNATURES})")]
    TooManySignatures,
    /// A key name is empty or contains whitespace, '+' or control characters.
    #[error("invalid key name")]
    InvalidName,
    /// A verifier or signer key string is malformed.
    #[error("malformed key string: {0}")]
    MalformedKey(&'static str),
    /// A key string uses an unsupported signature type.
    #[error("unsupported signature type 0x{0:02x}")]
    UnsupportedKeyType(u8),
    /// The key ID in a key string does not match the key.
    #[error("key ID does not match the key name and public key")]
    KeyIdMismatch,
    /// The bytes are not a valid Ed25519 public key.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// A signature from a known key failed to verify.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// Several configured verifiers share the same name and key ID.
    #[error("ambiguous key {name}+{key_id:08x}")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature from a known key is present.
    #[error("note has no verifiable signatures")]
    UnverifiedNote,
    /// The signature line was not made by the expected key.
    #[error("signature is not from the expected key")]
    WrongKey,
    /// A checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A cosignature timestamp exceeds 2^63 - 1.
    #[error("cosignature timestamp exceeds 2^63 - 1")]
    TimestampOutOfRange,
    /// A cosigner policy is inconsistent.
    #[error("invalid cosigner policy: {0}")]
    InvalidPolicy(&'static str),
    /// Fewer distinct cosigners than required signed the checkpoint.
    #[error("cosigner threshold not met: {valid} valid of {threshold} required")]
    ThresholdNotMet {
        /// Number of distinct valid cosignatures found.
        valid: usize,
        /// Number required.
        threshold: usize,
    },
}

/// Checks a key name: non-empty, no Unicode whitespace, no '+', no control
/// characters.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::InvalidName);
    }
    Ok(())
}

/// Checks the note-wide character rules: no ASCII control character other
/// than newline.
fn check_chars(s: &str) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

/// Checks the rules for a note text: size, final newline, characters.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: text.len(),
            limit: MAX_NOTE_SIZE,
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MalformedNote("text does not end with a newline"));
    }
    check_chars(text)
}

/// Computes a key ID: SHA-256(name || 0x0A || type || public key)[:4], big
/// endian.
fn key_id(name: &str, sig_type: u8, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', sig_type]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses exactly eight hexadecimal digits.
fn parse_key_id(hex: &str) -> Result<u32, NoteError> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("key ID is not 8 hex digits"));
    }
    u32::from_str_radix(hex, 16).map_err(|_| NoteError::MalformedKey("key ID is not 8 hex digits"))
}

/// Parses `<name>+<hex key id>+<base64(type || key)>` into its parts, checking
/// the type, the key length and the key ID.
fn parse_key_parts(s: &str, sig_type: u8) -> Result<(String, u32, [u8; 32]), NoteError> {
    if s.len() > MAX_KEY_STRING_SIZE {
        return Err(NoteError::TooLarge {
            size: s.len(),
            limit: MAX_KEY_STRING_SIZE,
        });
    }
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("expected name+keyid+key"));
    };
    check_name(name)?;
    let id = parse_key_id(hex)?;
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::MalformedKey("bad base64 key"))?;
    let Some((&ty, key)) = raw.split_first() else {
        return Err(NoteError::MalformedKey("empty key"));
    };
    if ty != sig_type {
        return Err(NoteError::UnsupportedKeyType(ty));
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| NoteError::MalformedKey("key is not 32 bytes"))?;
    Ok((name.to_owned(), id, key))
}

/// Formats `<name>+<hex key id>+<base64(type || key)>`.
fn format_key(name: &str, id: u32, sig_type: u8, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(sig_type);
    raw.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", B64.encode(raw))
}

/// Parses a secret key string `PRIVATE+KEY+<name>+<hex key id>+<base64(type || seed)>`.
fn parse_skey(skey: &str, sig_type: u8) -> Result<(String, u32, SigningKey), NoteError> {
    let rest = skey
        .strip_prefix(SKEY_PREFIX)
        .ok_or(NoteError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
    let (name, id, seed) = parse_key_parts(rest, sig_type)?;
    Ok((name, id, SigningKey::from_bytes(&seed)))
}

/// Formats a secret key string (see [`parse_skey`]).
fn format_skey(name: &str, id: u32, sig_type: u8, key: &SigningKey) -> String {
    format!(
        "{SKEY_PREFIX}{}",
        format_key(name, id, sig_type, key.as_bytes())
    )
}

/// Strips one optional trailing newline from a single signature line.
fn strip_line(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

/// One signature line of a note: `— <name> base64(key ID || signature)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (the first four bytes of the decoded payload, big endian).
    pub key_id: u32,
    /// Signature bytes following the key ID (for cosignatures: the timestamp
    /// followed by the Ed25519 signature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line, with or without its final newline.
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let line = strip_line(line);
        if line.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: line.len(),
                limit: MAX_NOTE_SIZE,
            });
        }
        check_chars(line)?;
        if line.contains('\n') {
            return Err(NoteError::MalformedSignatureLine("embedded newline"));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(NoteError::MalformedSignatureLine("missing em dash prefix"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::MalformedSignatureLine("missing signature"))?;
        check_name(name).map_err(|_| NoteError::MalformedSignatureLine("invalid key name"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::MalformedSignatureLine("bad base64"))?;
        if raw.len() <= KEY_ID_SIZE {
            return Err(NoteError::MalformedSignatureLine("signature too short"));
        }
        let (id, sig) = raw.split_at(KEY_ID_SIZE);
        let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        Ok(Self {
            name: name.to_owned(),
            key_id,
            signature: sig.to_vec(),
        })
    }

    /// Formats the signature line, including its final newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(KEY_ID_SIZE + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// An Ed25519 note verifier (signature type `0x01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// Parses a verifier key string of signature type `sig_type` and checks its name and key ID:
/// what [`Verifier::from_vkey`] and [`CosignatureVerifier::from_vkey`] share.
fn parse_vkey(vkey: &str, sig_type: u8) -> Result<(String, u32, VerifyingKey), NoteError> {
    let (name, id, key) = parse_key_parts(vkey, sig_type)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::InvalidPublicKey)?;
    check_name(&name)?;
    if key_id(&name, sig_type, key.as_bytes()) != id {
        return Err(NoteError::KeyIdMismatch);
    }
    Ok((name, id, key))
}

impl Verifier {
    /// Creates a verifier for `name` and an Ed25519 public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, SIG_TYPE_ED25519, key.as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a verifier key string `<name>+<hex key id>+<base64(0x01 || key)>`,
    /// checking the key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, key_id, key) = parse_vkey(vkey, SIG_TYPE_ED25519)?;
        Ok(Self { name, key_id, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        format_key(
            &self.name,
            self.key_id,
            SIG_TYPE_ED25519,
            self.key.as_bytes(),
        )
    }

    /// Verifies a 64-byte Ed25519 signature (without the key ID) over `msg`,
    /// using strict RFC 8032 verification.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; ED25519_SIG_SIZE]>::try_from(sig) else {
            return false;
        };
        self.key
            .verify_strict(msg, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl std::str::FromStr for Verifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_vkey(s)
    }
}

/// An Ed25519 note signer (signature type `0x01`).
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Creates a signer for `name` and an Ed25519 signing key.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a signer key string
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`,
    /// checking the key ID against the derived public key.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_skey(skey, SIG_TYPE_ED25519)?;
        let s = Self::new(&name, key)?;
        if s.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(s)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key string of the public key.
    pub fn vkey(&self) -> String {
        format_key(
            &self.name,
            self.key_id,
            SIG_TYPE_ED25519,
            self.key.verifying_key().as_bytes(),
        )
    }

    /// The signer key string (secret).
    pub fn skey(&self) -> String {
        format_skey(&self.name, self.key_id, SIG_TYPE_ED25519, &self.key)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The Ed25519 key, for [`crate::identity`] proofs (same key, another domain).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a note text (which must end in a newline and contain no control
    /// characters other than newline).
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        Ok(self.sign_unchecked(text))
    }

    fn sign_unchecked(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline.
    pub text: String,
    /// All signature lines, in order, including those from unknown keys.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses an encoded note without verifying any signature.
    ///
    /// Enforces: at most [`MAX_NOTE_SIZE`] bytes, UTF-8, no control character
    /// other than newline, a text ending in newline separated by the last
    /// blank line from 1 to [`MAX_SIGNATURES`] well-formed signature lines.
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        if msg.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: msg.len(),
                limit: MAX_NOTE_SIZE,
            });
        }
        let msg = std::str::from_utf8(msg).map_err(|_| NoteError::NotUtf8)?;
        check_chars(msg)?;
        let split = msg
            .rfind("\n\n")
            .ok_or(NoteError::MalformedNote("no blank line before signatures"))?;
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::MalformedNote("no signature lines"));
        }
        let body = sigs.strip_suffix('\n').ok_or(NoteError::MalformedNote(
            "signature block does not end with a newline",
        ))?;
        let mut signatures = Vec::new();
        for line in body.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Encodes the note: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 1 + 128 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }
}

/// Parses a note and verifies its signatures against `verifiers`.
///
/// Signatures whose (name, key ID) match no verifier are kept in the
/// returned [`Note`] but not verified. Every signature from a known key must
/// verify (otherwise [`NoteError::InvalidSignature`]); at least one must be
/// present (otherwise [`NoteError::UnverifiedNote`]). Verifiers sharing a name
/// and key ID are rejected as ambiguous when used. The returned list holds
/// the verified signatures, one per key.
pub fn open(msg: &[u8], verifiers: &[Verifier]) -> Result<(Note, Vec<NoteSignature>), NoteError> {
    let note = Note::parse(msg)?;
    let mut verified: Vec<NoteSignature> = Vec::new();
    for sig in &note.signatures {
        let mut matching = verifiers
            .iter()
            .filter(|v| v.name == sig.name && v.key_id == sig.key_id);
        let Some(v) = matching.next() else {
            continue;
        };
        if matching.next().is_some() {
            return Err(NoteError::AmbiguousKey {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        }
        if !v.verify(note.text.as_bytes(), &sig.signature) {
            return Err(NoteError::InvalidSignature {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        }
        if !verified
            .iter()
            .any(|s| s.name == sig.name && s.key_id == sig.key_id)
        {
            verified.push(sig.clone());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::UnverifiedNote);
    }
    Ok((note, verified))
}

/// Signs `text` with each signer and returns the encoded note.
///
/// `text` must end in a newline and contain no control character other
/// than newline. Signers are applied in order; at least one is required.
pub fn sign(text: &str, signers: &[Signer]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::MalformedNote("no signers"));
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let note = Note {
        text: text.to_owned(),
        signatures: signers.iter().map(|s| s.sign_unchecked(text)).collect(),
    };
    Ok(note.to_text())
}

/// A transparency log checkpoint (c2sp.org/tlog-checkpoint): the note text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Log origin (first line); non-empty.
    pub origin: String,
    /// Tree size (number of leaves).
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: [u8; 32],
    /// Opaque extension lines (without newlines); each non-empty.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    fn check_line(line: &str, what: &'static str) -> Result<(), NoteError> {
        if line.is_empty() || line.contains('\n') {
            return Err(NoteError::MalformedCheckpoint(what));
        }
        check_chars(line)
    }

    /// Encodes the checkpoint body (note text), each line newline-terminated.
    pub fn to_text(&self) -> Result<String, NoteError> {
        Self::check_line(&self.origin, "origin must be a non-empty single line")?;
        for e in &self.extensions {
            Self::check_line(e, "extension lines must be non-empty single lines")?;
        }
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        check_text(&out)?;
        Ok(out)
    }

    /// Parses a checkpoint body strictly: origin, size in decimal without
    /// leading zeros, base64 of a 32-byte root hash, then non-empty extension
    /// lines, every line newline-terminated.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        check_text(text)?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(NoteError::MalformedCheckpoint("empty origin"));
        }
        let size = lines
            .next()
            .ok_or(NoteError::MalformedCheckpoint("missing tree size"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(NoteError::MalformedCheckpoint(
                "tree size is not canonical decimal",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| NoteError::MalformedCheckpoint("tree size overflows u64"))?;
        let root = lines
            .next()
            .ok_or(NoteError::MalformedCheckpoint("missing root hash"))?;
        let root = B64
            .decode(root)
            .map_err(|_| NoteError::MalformedCheckpoint("bad base64 root hash"))?;
        let root: [u8; 32] = root
            .try_into()
            .map_err(|_| NoteError::MalformedCheckpoint("root hash is not 32 bytes"))?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(NoteError::MalformedCheckpoint("empty extension line"));
            }
            extensions.push(line.to_owned());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Builds the `cosignature/v1` signed message for a checkpoint body.
fn cosignature_message(time: u64, checkpoint_text: &str) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}time {time}\n{checkpoint_text}").into_bytes()
}

/// A timestamped Ed25519 cosigner (`cosignature/v1`, signature type `0x04`).
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// Creates a cosigner for `name` and an Ed25519 signing key.
    ///
    /// The `cosignature/v1` message does not commit to the name: never use
    /// one key for two cosigner names.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(
            name,
            SIG_TYPE_COSIGNATURE_V1,
            key.verifying_key().as_bytes(),
        );
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a cosigner key string
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>`, as written by
    /// [`Cosigner::skey`].
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_skey(skey, SIG_TYPE_COSIGNATURE_V1)?;
        let c = Self::new(&name, key)?;
        if c.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(c)
    }

    /// The secret key string, in the signed-note key format with type byte `0x04`.
    /// The Ed25519 key, for [`crate::identity`] proofs (same key, another domain).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Keep it secret.
    pub fn skey(&self) -> String {
        format_skey(&self.name, self.key_id, SIG_TYPE_COSIGNATURE_V1, &self.key)
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (computed with type byte `0x04`).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key string `<name>+<hex key id>+<base64(0x04 || key)>`.
    pub fn vkey(&self) -> String {
        format_key(
            &self.name,
            self.key_id,
            SIG_TYPE_COSIGNATURE_V1,
            self.key.verifying_key().as_bytes(),
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns a checkpoint at `time` (POSIX seconds, at most 2^63 - 1) and
    /// returns the signature line, including its final newline.
    pub fn sign(&self, checkpoint: &Checkpoint, time: u64) -> Result<String, NoteError> {
        Ok(self.sign_signature(checkpoint, time)?.to_line())
    }

    /// Like [`Cosigner::sign`], returning the parsed signature.
    pub fn sign_signature(
        &self,
        checkpoint: &Checkpoint,
        time: u64,
    ) -> Result<NoteSignature, NoteError> {
        if time > MAX_COSIGNATURE_TIME {
            return Err(NoteError::TimestampOutOfRange);
        }
        let text = checkpoint.to_text()?;
        let sig = self.key.sign(&cosignature_message(time, &text));
        let mut signature = Vec::with_capacity(TIMESTAMP_SIZE + ED25519_SIG_SIZE);
        signature.extend_from_slice(&time.to_be_bytes());
        signature.extend_from_slice(&sig.to_bytes());
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }
}

/// Reads the timestamp of a `cosignature/v1` Ed25519 signature without
/// verifying it: the payload after the key ID must be exactly 8 + 64 bytes
/// and the timestamp at most 2^63 - 1.
pub fn cosignature_timestamp(sig: &NoteSignature) -> Result<u64, NoteError> {
    let malformed = NoteError::MalformedSignatureLine("not a cosignature/v1 Ed25519 signature");
    if sig.signature.len() != TIMESTAMP_SIZE + ED25519_SIG_SIZE {
        return Err(malformed);
    }
    let (time, _) = sig
        .signature
        .split_at_checked(TIMESTAMP_SIZE)
        .ok_or(malformed.clone())?;
    let time: [u8; TIMESTAMP_SIZE] = time.try_into().map_err(|_| malformed)?;
    let time = u64::from_be_bytes(time);
    if time > MAX_COSIGNATURE_TIME {
        return Err(NoteError::TimestampOutOfRange);
    }
    Ok(time)
}

/// A verifier of timestamped Ed25519 cosignatures (`cosignature/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Creates a verifier for cosigner `name` and its Ed25519 public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, SIG_TYPE_COSIGNATURE_V1, key.as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a vkey `<name>+<hex key id>+<base64(0x04 || key)>`, checking the
    /// key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, key_id, key) = parse_vkey(vkey, SIG_TYPE_COSIGNATURE_V1)?;
        Ok(Self { name, key_id, key })
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (computed with type byte `0x04`).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        format_key(
            &self.name,
            self.key_id,
            SIG_TYPE_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// Whether a signature line's name and key ID designate this cosigner.
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Verifies one cosignature line (with or without final newline) over a
    /// checkpoint body and returns its timestamp.
    pub fn verify(&self, checkpoint_text: &str, line: &str) -> Result<u64, NoteError> {
        self.verify_signature(checkpoint_text, &NoteSignature::parse_line(line)?)
    }

    /// Verifies a parsed cosignature over a checkpoint body and returns its
    /// timestamp.
    pub fn verify_signature(
        &self,
        checkpoint_text: &str,
        sig: &NoteSignature,
    ) -> Result<u64, NoteError> {
        if !self.matches(sig) {
            return Err(NoteError::WrongKey);
        }
        Checkpoint::from_text(checkpoint_text)?;
        let invalid = || NoteError::InvalidSignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
        };
        let (time, ed) = sig
            .signature
            .split_at_checked(TIMESTAMP_SIZE)
            .ok_or_else(invalid)?;
        let time: [u8; TIMESTAMP_SIZE] = time.try_into().map_err(|_| invalid())?;
        let ed: [u8; ED25519_SIG_SIZE] = ed.try_into().map_err(|_| invalid())?;
        let time = u64::from_be_bytes(time);
        if time > MAX_COSIGNATURE_TIME {
            return Err(NoteError::TimestampOutOfRange);
        }
        self.key
            .verify_strict(
                &cosignature_message(time, checkpoint_text),
                &Signature::from_bytes(&ed),
            )
            .map_err(|_| invalid())?;
        Ok(time)
    }
}

impl std::str::FromStr for CosignatureVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_vkey(s)
    }
}

/// A k-of-n cosigner policy: at least `threshold` distinct cosigners out of
/// `cosigners` must have validly cosigned the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerPolicy {
    /// The trusted cosigners; (name, key ID) pairs must be distinct.
    pub cosigners: Vec<CosignatureVerifier>,
    /// Minimum number of distinct valid cosignatures (1 ≤ threshold ≤ n).
    pub threshold: usize,
}

impl CosignerPolicy {
    /// Checks a parsed note whose text is a checkpoint.
    ///
    /// Signatures from keys outside the policy (including the log's own
    /// signature, to be checked with [`open`]) are ignored. A signature from
    /// a policy cosigner that fails to verify rejects the note. Returns the
    /// (name, timestamp) of each distinct cosigner with a valid cosignature,
    /// in policy order, if there are at least `threshold` of them.
    pub fn check(&self, note: &Note) -> Result<Vec<(String, u64)>, NoteError> {
        if self.threshold == 0 || self.threshold > self.cosigners.len() {
            return Err(NoteError::InvalidPolicy(
                "threshold must be between 1 and the number of cosigners",
            ));
        }
        for (i, a) in self.cosigners.iter().enumerate() {
            if self.cosigners[..i]
                .iter()
                .any(|b| a.name == b.name && a.key_id == b.key_id)
            {
                return Err(NoteError::InvalidPolicy(
                    "duplicate cosigner name and key ID",
                ));
            }
        }
        Checkpoint::from_text(&note.text)?;
        let mut times: Vec<Option<u64>> = vec![None; self.cosigners.len()];
        for sig in &note.signatures {
            let Some(i) = self.cosigners.iter().position(|c| c.matches(sig)) else {
                continue;
            };
            let t = self.cosigners[i].verify_signature(&note.text, sig)?;
            if let Some(slot) = times.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(t);
            }
        }
        let valid: Vec<(String, u64)> = self
            .cosigners
            .iter()
            .zip(times)
            .filter_map(|(c, t)| t.map(|t| (c.name.clone(), t)))
            .collect();
        if valid.len() < self.threshold {
            return Err(NoteError::ThresholdNotMet {
                valid: valid.len(),
                threshold: self.threshold,
            });
        }
        Ok(valid)
    }
}
