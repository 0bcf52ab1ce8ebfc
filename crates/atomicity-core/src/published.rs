//! Signed public documents: what a node serves at Pubky-style paths for anyone to read, such as
//! its Paykit endpoints, its channel list and its newest IOU states.
//!
//! A document is JSON:
//!
//! ```json
//! {"value": <any JSON>, "atomicity": {"v": 1, "key": "<z-base32>", "path": "/pub/…", "seq": 17…, "sig": "<base64>"}}
//! ```
//!
//! A Paykit reader reads `value` and ignores the rest; an Atomicity reader also checks the
//! signature with [`verify_document`]. The signature covers a domain-separated binary encoding
//! of the key, the path, the seq and the **exact bytes** of `value` as served (see
//! [`signing_input`]), so no canonical JSON is needed: the reader takes the value's bytes as
//! they stand in the document. `docs/publishing.md` specifies the format, with a test vector.
//!
//! Pure and sans-I/O like the rest of the core: the caller chooses `seq` (the node uses a clock
//! that never goes backward).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signature;
use pkarr::{Keypair, PublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

pub use serde_json::value::RawValue;

use crate::amount::Asset;
use crate::encoding::Writer;
use crate::objects::IouState;
use crate::signed::{SIGNATURE_LEN, Signed};

/// The document format version (`"v"`), also the version byte of the signing input.
pub const VERSION: u8 = 1;
/// The domain tag at the start of every signing input, followed by a `0x00` byte. It extends
/// the protocol's `atomicity/v1/` prefix with a name that no signed object kind uses, so a
/// document signature can never be taken for a protocol object's, nor the reverse.
pub const DOMAIN: &[u8] = b"atomicity/v1/published";
/// Largest document, in bytes, that is signed or read (64 KiB).
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;
/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Largest `seq`: 2^53 − 1, so that JavaScript readers read it exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;
/// Longest Paykit endpoint id, in bytes.
pub const MAX_ENDPOINT_ID_LEN: usize = 96;

/// The directory of the node's Paykit endpoints; an endpoint is at this path plus its id.
pub const PAYKIT_ENDPOINTS_DIR: &str = "/pub/paykit/v0/apps/atomicity/endpoints/";
/// The node's channel list: the lines it offers to route over.
pub const CHANNELS_PATH: &str = "/pub/atomicity/v1/channels";
/// The witness logs the node publishes payment secrets on.
pub const WITNESSES_PATH: &str = "/pub/atomicity/v1/witnesses";
/// The node's ratings of the routers it asked (value: key → `{url, good, bad, silent}`).
pub const ROUTERS_PATH: &str = "/pub/atomicity/v1/routers";
/// The path of the rails a node can pay out through for others (settlements and swaps):
/// `{"pays": ["lightning-bolt11", ...], "lightning_network": "bitcoin"}`.
pub const CAPABILITIES_PATH: &str = "/pub/atomicity/v1/capabilities";
/// The directory of the issuer's newest IOU states: `{STATES_DIR}{holder z32}/{asset}`.
pub const STATES_DIR: &str = "/pub/atomicity/v1/states/";

/// Why a document could not be signed or read. Each verification failure has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PublishedError {
    /// Longer than [`MAX_DOCUMENT_LEN`].
    #[error("document too large: {len} bytes > {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Not a JSON object of the document's shape (also: a member given twice, a field of the
    /// wrong type, trailing bytes).
    #[error("malformed document: {0}")]
    Malformed(String),
    /// No `value` member.
    #[error("the document has no value")]
    MissingValue,
    /// No `atomicity` member: nothing to verify.
    #[error("the document is not signed (no \"atomicity\" member)")]
    Unsigned,
    /// A format version this implementation does not read.
    #[error("unsupported document version {0}")]
    UnsupportedVersion(u64),
    /// Signed by, or claiming to be from, another key than the one expected.
    #[error("the document is from {got}, not {expected}")]
    WrongKey {
        /// The key expected (z-base32).
        expected: String,
        /// The key in the document.
        got: String,
    },
    /// Signed for another path than the one it was fetched from.
    #[error("the document is for path {got:?}, not {expected:?}")]
    WrongPath {
        /// The path expected.
        expected: String,
        /// The path in the document.
        got: String,
    },
    /// The signature does not verify (or is not 64 bytes of base64).
    #[error("the document's signature does not verify")]
    BadSignature,
    /// Older than a document already seen.
    #[error("stale document: seq {got} is below {min}")]
    StaleSeq {
        /// The lowest seq the reader accepts.
        min: u64,
        /// The document's seq.
        got: u64,
    },
    /// A seq above [`MAX_SEQ`].
    #[error("seq {0} is above 2^53 - 1")]
    BadSeq(u64),
    /// A path that is not `/pub/…` (see [`check_path`]).
    #[error("bad path {path:?}: {why}")]
    BadPath {
        /// The path (cut to 100 bytes).
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The value to sign is not one JSON value.
    #[error("the value is not JSON: {0}")]
    BadValue(String),
    /// A state document whose value is not a valid IOU state for the line expected.
    #[error("bad state document: {0}")]
    BadState(String),
}

/// A document whose signature, key and path were checked.
#[derive(Debug, Clone)]
pub struct VerifiedDocument {
    /// The value, exactly as served.
    pub value: Box<RawValue>,
    /// Its seq.
    pub seq: u64,
}

impl VerifiedDocument {
    /// The value's JSON text, exactly as served.
    pub fn value_str(&self) -> &str {
        self.value.get()
    }

    /// The value read as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PublishedError> {
        serde_json::from_str(self.value.get())
            .map_err(|e| PublishedError::Malformed(format!("value: {e}")))
    }
}

/// The bytes that are signed:
/// `DOMAIN || 0x00 || version (u8) || key (32) || path (bytes) || seq (u64) || value (bytes)`,
/// with the protocol's encoding (big-endian, `bytes` = `u32` length then the bytes).
pub fn signing_input(key: &PublicKey, path: &str, seq: u64, value: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.fixed(DOMAIN);
    w.u8(0);
    w.u8(VERSION);
    w.key(key);
    w.bytes(path.as_bytes());
    w.u64(seq);
    w.bytes(value);
    w.into_bytes()
}

/// Checks that `path` can be published: `/pub/` then segments of printable ASCII other than
/// `"` `#` `?` `\` and `%`, no empty, `.` or `..` segment, no trailing `/` (a document is a
/// file, not a directory), at most [`MAX_PATH_LEN`] bytes.
pub fn check_path(path: &str) -> Result<(), PublishedError> {
    let bad = |why| PublishedError::BadPath {
        path: cut(path, 100),
        why,
    };
    if path.len() > MAX_PATH_LEN {
        return Err(bad("longer than 1024 bytes"));
    }
    let Some(rest) = path.strip_prefix("/pub/") else {
        return Err(bad("does not start with /pub/"));
    };
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'?' | b'\\' | b'%'))
    {
        return Err(bad("only printable ASCII without \" # ? \\ % is allowed"));
    }
    if rest
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(bad("an empty, . or .. segment (or a trailing /)"));
    }
    Ok(())
}

/// Signs `value_json` (one JSON value; surrounding whitespace is dropped, everything else is
/// kept byte for byte) as the document at `path` with `seq`, and returns the document.
pub fn sign_document(
    keypair: &Keypair,
    path: &str,
    seq: u64,
    value_json: &[u8],
) -> Result<Vec<u8>, PublishedError> {
    check_path(path)?;
    if seq > MAX_SEQ {
        return Err(PublishedError::BadSeq(seq));
    }
    if value_json.len() > MAX_DOCUMENT_LEN {
        return Err(PublishedError::TooLarge {
            len: value_json.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    let text = std::str::from_utf8(value_json)
        .map_err(|_| PublishedError::BadValue("not UTF-8".into()))?;
    let value = RawValue::from_string(text.to_string())
        .map_err(|e| PublishedError::BadValue(e.to_string()))?;
    let key = keypair.public_key();
    let input = signing_input(&key, path, seq, value.get().as_bytes());
    let signature = BASE64.encode(keypair.sign(&input).to_bytes());
    let path_json =
        serde_json::to_string(path).map_err(|e| PublishedError::BadValue(e.to_string()))?;
    let document = format!(
        "{{\"value\":{},\"atomicity\":{{\"v\":{VERSION},\"key\":\"{}\",\"path\":{path_json},\"seq\":{seq},\"sig\":\"{signature}\"}}}}",
        value.get(),
        key.to_z32(),
    );
    if document.len() > MAX_DOCUMENT_LEN {
        return Err(PublishedError::TooLarge {
            len: document.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    Ok(document.into_bytes())
}

/// The document's shape. Unknown members are ignored (they are not signed); a member given
/// twice is refused, so that no two readers can see different values in one document.
#[derive(Deserialize)]
struct Document<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    atomicity: Option<&'a RawValue>,
}

/// Reads a JSON object as `T` (serde would also take an array for a struct).
fn object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, PublishedError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(PublishedError::Malformed("not a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| PublishedError::Malformed(e.to_string()))
}

/// A present member, even `null` (plain `Option` would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Meta {
    v: u64,
    key: String,
    path: String,
    seq: u64,
    sig: String,
}

/// Reads a document fetched from `expected_path` of `expected_key` and checks, in order: its
/// size, its shape, its version, its key, its path, its signature, then that its seq is at
/// least `min_seq` (give the last seq seen to accept it again or anything newer; `None` takes
/// any). The value comes back exactly as served.
pub fn verify_document(
    bytes: &[u8],
    expected_key: &PublicKey,
    expected_path: &str,
    min_seq: Option<u64>,
) -> Result<VerifiedDocument, PublishedError> {
    if bytes.len() > MAX_DOCUMENT_LEN {
        return Err(PublishedError::TooLarge {
            len: bytes.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    let document: Document<'_> = object(bytes)?;
    let value = document.value.ok_or(PublishedError::MissingValue)?;
    let meta: Meta = object(
        document
            .atomicity
            .ok_or(PublishedError::Unsigned)?
            .get()
            .as_bytes(),
    )?;
    if meta.v != u64::from(VERSION) {
        return Err(PublishedError::UnsupportedVersion(meta.v));
    }
    let expected = expected_key.to_z32();
    if meta.key != expected {
        return Err(PublishedError::WrongKey {
            expected,
            got: cut(&meta.key, 100),
        });
    }
    if meta.path != expected_path {
        return Err(PublishedError::WrongPath {
            expected: expected_path.to_string(),
            got: cut(&meta.path, 100),
        });
    }
    if meta.seq > MAX_SEQ {
        return Err(PublishedError::BadSeq(meta.seq));
    }
    let signature: [u8; SIGNATURE_LEN] = BASE64
        .decode(meta.sig.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(PublishedError::BadSignature)?;
    let input = signing_input(expected_key, &meta.path, meta.seq, value.get().as_bytes());
    expected_key
        .verifying_key()
        .verify_strict(&input, &Signature::from_bytes(&signature))
        .map_err(|_| PublishedError::BadSignature)?;
    if let Some(min) = min_seq
        && meta.seq < min
    {
        return Err(PublishedError::StaleSeq { min, got: meta.seq });
    }
    Ok(VerifiedDocument {
        value: value.to_owned(),
        seq: meta.seq,
    })
}

/// `pubky://<key z32><path>`: a document's address as Pubky clients write it (and as
/// directory listings name their entries).
pub fn pubky_url(key: &PublicKey, path: &str) -> String {
    format!("pubky://{}{path}", key.to_z32())
}

/// The path of the Paykit endpoint `id`.
pub fn endpoint_path(id: &EndpointId) -> String {
    format!("{PAYKIT_ENDPOINTS_DIR}{id}")
}

/// The path of the issuer's newest IOU state toward `holder` in `asset` (the asset in its text
/// form: `USD`, `HOUR:0`).
pub fn state_path(holder: &PublicKey, asset: &Asset) -> String {
    format!("{STATES_DIR}{}/{asset}", holder.to_z32())
}

/// A Paykit payment-endpoint id, `{asset}-{rail}-{format}`: exactly three non-empty parts of
/// lower-case ASCII letters, digits and `_`, joined by `-` (at most [`MAX_ENDPOINT_ID_LEN`]
/// bytes), e.g. `usd-atomicity-key`, `btc-lightning-bolt11`, `btc-bitcoin-address`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(String);

/// Why a string is not an [`EndpointId`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{id:?} is not an endpoint id ({{asset}}-{{rail}}-{{format}}): {why}")]
pub struct EndpointIdError {
    /// The string (cut to 100 bytes).
    pub id: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl EndpointId {
    /// Parses an id.
    pub fn parse(text: &str) -> Result<EndpointId, EndpointIdError> {
        let bad = |why| EndpointIdError {
            id: cut(text, 100),
            why,
        };
        if text.len() > MAX_ENDPOINT_ID_LEN {
            return Err(bad("longer than 96 bytes"));
        }
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() != 3 {
            return Err(bad("it needs exactly three parts joined by '-'"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("a part is empty"));
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        if !text.bytes().all(|b| b == b'-' || allowed(b)) {
            return Err(bad("only a-z, 0-9 and '_' are allowed in each part"));
        }
        Ok(EndpointId(text.to_string()))
    }

    /// The node's own endpoint for `asset`: `{asset code in lower case}-atomicity-key`.
    pub fn atomicity_key(asset: &Asset) -> EndpointId {
        EndpointId(format!(
            "{}-atomicity-key",
            asset.code().to_ascii_lowercase()
        ))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn part(&self, n: usize) -> &str {
        self.0.split('-').nth(n).unwrap_or_default()
    }

    /// Its asset part.
    pub fn asset(&self) -> &str {
        self.part(0)
    }

    /// Its rail part.
    pub fn rail(&self) -> &str {
        self.part(1)
    }

    /// Its format part.
    pub fn format(&self) -> &str {
        self.part(2)
    }

    /// Whether the id is one the node publishes by itself (`*-atomicity-key`), which a user
    /// may not set.
    pub fn is_reserved(&self) -> bool {
        self.rail() == "atomicity" && self.format() == "key"
    }
}

impl FromStr for EndpointId {
    type Err = EndpointIdError;

    fn from_str(s: &str) -> Result<EndpointId, EndpointIdError> {
        EndpointId::parse(s)
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of [`CHANNELS_PATH`]: the lines the node offers to route over.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelsValue {
    /// One per line with an issue limit above zero, sorted by peer then asset.
    pub lines: Vec<LineAd>,
    /// The verifier keys of the witness logs the node publishes on.
    pub witnesses: Vec<String>,
}

/// One line of [`ChannelsValue`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineAd {
    /// The peer (z-base32).
    pub peer: String,
    /// The asset's text form.
    pub asset: String,
    /// What the node would still issue to the peer now (decimal): its issue limit minus its
    /// net debt and pending offers. A hint: it changes with every payment.
    pub capacity_hint: String,
    /// Its fixed forwarding fee toward the peer (decimal).
    pub fee_base: String,
    /// Its proportional forwarding fee toward the peer, in millionths.
    pub fee_ppm: u32,
}

/// The value of [`WITNESSES_PATH`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessesValue {
    /// The logs, in the node's order.
    pub witnesses: Vec<WitnessAd>,
}

/// One witness log of [`WitnessesValue`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessAd {
    /// Its verifier key.
    pub vkey: String,
    /// Its base URL.
    pub url: String,
}

/// The value of a [`state_path`] document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateValue {
    /// Base64 (standard, padded) of the signed IOU state's wire form.
    pub state: String,
}

impl StateValue {
    /// The value for `state`.
    pub fn new(state: &Signed<IouState>) -> StateValue {
        StateValue {
            state: BASE64.encode(state.to_bytes()),
        }
    }
}

/// Reads the state document fetched from [`state_path`]`(holder, asset)` of `issuer`: checks
/// the document ([`verify_document`]), then that its value holds an IOU state signed by
/// `issuer` on the line `issuer → holder` in `asset`. Whether the state is newer than one held
/// is the ledger's question (it takes it like a pushed state).
pub fn verify_state_document(
    bytes: &[u8],
    issuer: &PublicKey,
    holder: &PublicKey,
    asset: &Asset,
    min_seq: Option<u64>,
) -> Result<(Signed<IouState>, VerifiedDocument), PublishedError> {
    let document = verify_document(bytes, issuer, &state_path(holder, asset), min_seq)?;
    let value: StateValue = document
        .parse()
        .map_err(|e| PublishedError::BadState(e.to_string()))?;
    let wire = BASE64
        .decode(value.state.as_bytes())
        .map_err(|e| PublishedError::BadState(format!("not base64: {e}")))?;
    let state = Signed::<IouState>::decode_verified(&wire)
        .map_err(|e| PublishedError::BadState(e.to_string()))?;
    let line = &state.body().line;
    if line.issuer != *issuer || line.holder != *holder || line.asset != *asset {
        return Err(PublishedError::BadState(format!(
            "the state is for the line {line}, not {issuer}→{holder} {asset}"
        )));
    }
    Ok((state, document))
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::objects::{LineId, ResolvedSet};
    use crate::{Total, signed::SignedBody};
    use proptest::prelude::*;

    fn keypair(byte: u8) -> Keypair {
        Keypair::from_secret_key(&[byte; 32])
    }

    const PATH: &str = "/pub/paykit/v0/apps/atomicity/endpoints/usd-atomicity-key";
    const SEQ: u64 = 1_700_000_000_000_000;

    fn sample() -> (Keypair, Vec<u8>, String) {
        let key = keypair(1);
        let value = format!("\"{}\"", key.public_key().to_z32());
        let doc = sign_document(&key, PATH, SEQ, value.as_bytes()).unwrap();
        (key, doc, value)
    }

    fn text(doc: &[u8]) -> String {
        String::from_utf8(doc.to_vec()).unwrap()
    }

    fn verify(doc: &[u8], key: &Keypair) -> Result<VerifiedDocument, PublishedError> {
        verify_document(doc, &key.public_key(), PATH, None)
    }

    #[test]
    fn round_trip() {
        let (key, doc, value) = sample();
        let verified = verify(&doc, &key).unwrap();
        assert_eq!(verified.value_str(), value);
        assert_eq!(verified.seq, SEQ);
        assert_eq!(
            verified.parse::<String>().unwrap(),
            key.public_key().to_z32()
        );
        // The seq the reader saw last is accepted again, and anything older is stale.
        let pk = key.public_key();
        assert!(verify_document(&doc, &pk, PATH, Some(SEQ)).is_ok());
        assert_eq!(
            verify_document(&doc, &pk, PATH, Some(SEQ + 1)).unwrap_err(),
            PublishedError::StaleSeq {
                min: SEQ + 1,
                got: SEQ
            }
        );
    }

    #[test]
    fn a_paykit_reader_reads_the_value() {
        let (key, doc, _) = sample();
        let json: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(json["value"], key.public_key().to_z32());
    }

    #[test]
    fn the_value_is_signed_byte_for_byte() {
        let key = keypair(1);
        let value = "  { \"b\" : [1, 2.50],  \"a\":\"\\u00e9\" }\n";
        let doc = sign_document(&key, PATH, 5, value.as_bytes()).unwrap();
        let verified = verify(&doc, &key).unwrap();
        // Only the surrounding whitespace is dropped.
        assert_eq!(verified.value_str(), value.trim());
        // The same JSON written differently is a different document.
        let respaced = text(&doc).replacen("[1, 2.50]", "[1,2.50]", 1);
        assert_eq!(
            verify(respaced.as_bytes(), &key).unwrap_err(),
            PublishedError::BadSignature
        );
    }

    #[test]
    fn every_tampering_is_refused_with_its_own_error() {
        let (key, doc, _) = sample();
        let pk = key.public_key();
        let original = text(&doc);
        let z32 = pk.to_z32();

        // A byte of the value.
        let first = z32.chars().next().unwrap();
        let other = if first == 'y' { 'o' } else { 'y' };
        let tampered = original.replacen(
            &format!("\"value\":\"{first}"),
            &format!("\"value\":\"{other}"),
            1,
        );
        assert_ne!(tampered, original);
        assert_eq!(
            verify(tampered.as_bytes(), &key).unwrap_err(),
            PublishedError::BadSignature
        );

        // A byte of the signature (another base64 letter).
        let at = original.find("\"sig\":\"").unwrap() + 7 + 10;
        let mut bytes = doc.clone();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(&bytes, &key).unwrap_err(),
            PublishedError::BadSignature
        );

        // A signature of the wrong length.
        let sig_at = original.find("\"sig\":\"").unwrap() + 7;
        let short = format!("{}{}", &original[..sig_at], &original[sig_at + 4..]);
        assert_eq!(
            verify(short.as_bytes(), &key).unwrap_err(),
            PublishedError::BadSignature
        );

        // The path: the reader fetched it from PATH, the document names another.
        let moved = original.replacen("usd-atomicity-key\"", "eur-atomicity-key\"", 1);
        assert!(matches!(
            verify(moved.as_bytes(), &key).unwrap_err(),
            PublishedError::WrongPath { .. }
        ));
        // ...and served at the path it names, the signature gives it away.
        let eur = PATH.replace("usd", "eur");
        assert_eq!(
            verify_document(moved.as_bytes(), &pk, &eur, None).unwrap_err(),
            PublishedError::BadSignature
        );

        // The key: another key named in the document.
        let stranger = keypair(2).public_key();
        let rekeyed = original.replacen(&z32[..], &stranger.to_z32(), 2);
        // (the value also held the key: the first replacement was the value's)
        assert!(matches!(
            verify(rekeyed.as_bytes(), &key).unwrap_err(),
            PublishedError::WrongKey { .. }
        ));
        // ...and read as the stranger's, the signature is not the stranger's.
        assert_eq!(
            verify_document(rekeyed.as_bytes(), &stranger, PATH, None).unwrap_err(),
            PublishedError::BadSignature
        );
        // A reader expecting another key refuses the genuine document.
        assert!(matches!(
            verify_document(&doc, &stranger, PATH, None).unwrap_err(),
            PublishedError::WrongKey { .. }
        ));

        // The seq: a replayed document cannot be made to look newer.
        let bumped = original.replacen(
            &format!("\"seq\":{SEQ}"),
            &format!("\"seq\":{}", SEQ + 1),
            1,
        );
        assert_eq!(
            verify(bumped.as_bytes(), &key).unwrap_err(),
            PublishedError::BadSignature
        );
        let huge = original.replacen(&format!("\"seq\":{SEQ}"), "\"seq\":9007199254740992", 1);
        assert_eq!(
            verify(huge.as_bytes(), &key).unwrap_err(),
            PublishedError::BadSeq(1 << 53)
        );

        // The version.
        let v2 = original.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            verify(v2.as_bytes(), &key).unwrap_err(),
            PublishedError::UnsupportedVersion(2)
        );
    }

    #[test]
    fn shapes_that_are_not_documents() {
        let (key, doc, _) = sample();
        let original = text(&doc);
        let meta_at = original.find(",\"atomicity\"").unwrap();
        let meta = &original[meta_at + 1..original.len() - 1];

        let no_value = format!("{{{meta}}}");
        assert_eq!(
            verify(no_value.as_bytes(), &key).unwrap_err(),
            PublishedError::MissingValue
        );
        let unsigned = format!("{}}}", &original[..meta_at]);
        assert_eq!(
            verify(unsigned.as_bytes(), &key).unwrap_err(),
            PublishedError::Unsigned
        );
        // A value given twice could be read differently by different readers.
        let twice = original.replacen("{\"value\":", "{\"value\":1,\"value\":", 1);
        assert!(matches!(
            verify(twice.as_bytes(), &key).unwrap_err(),
            PublishedError::Malformed(_)
        ));
        // Serde would read a struct from an array too: the document would verify.
        let json: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        let m = &json["atomicity"];
        let array_meta = serde_json::json!({
            "value": json["value"],
            "atomicity": [m["v"], m["key"], m["path"], m["seq"], m["sig"]],
        })
        .to_string();
        let array_doc = format!("[\"x\",{}]", &original[meta_at + 13..original.len() - 1]);
        for junk in [
            "",
            "[]",
            "null",
            "{\"value\":1",
            "{} {}",
            "\"x\"",
            &array_meta,
            &array_doc,
        ] {
            assert!(
                matches!(
                    verify(junk.as_bytes(), &key).unwrap_err(),
                    PublishedError::Malformed(_)
                ),
                "{junk}"
            );
        }
        let not_utf8 = [b'{', 0xff, b'}'];
        assert!(matches!(
            verify(&not_utf8, &key).unwrap_err(),
            PublishedError::Malformed(_)
        ));
        let big = vec![b' '; MAX_DOCUMENT_LEN + 1];
        assert_eq!(
            verify(&big, &key).unwrap_err(),
            PublishedError::TooLarge {
                len: MAX_DOCUMENT_LEN + 1,
                max: MAX_DOCUMENT_LEN
            }
        );
        // Unknown members are not signed, and ignored; whitespace between members too.
        let extra = original.replacen("{\"value\":", "{ \"note\": [1], \"value\" :", 1);
        assert!(verify(extra.as_bytes(), &key).is_ok());
        // A null value is a value.
        let null = sign_document(&key, PATH, 1, b"null").unwrap();
        assert_eq!(verify(&null, &key).unwrap().value_str(), "null");
    }

    #[test]
    fn signing_refuses_what_cannot_be_published() {
        let key = keypair(1);
        for path in [
            "/pub",
            "/pub/",
            "/priv/x",
            "pub/x",
            "/pub/a//b",
            "/pub/a/",
            "/pub/./a",
            "/pub/a/..",
            "/pub/a b",
            "/pub/a?b",
            "/pub/a#b",
            "/pub/é",
            "/pub/a%2F",
        ] {
            assert!(
                matches!(
                    sign_document(&key, path, 1, b"1").unwrap_err(),
                    PublishedError::BadPath { .. }
                ),
                "{path}"
            );
        }
        let long = format!("/pub/{}", "a".repeat(MAX_PATH_LEN));
        assert!(matches!(
            sign_document(&key, &long, 1, b"1").unwrap_err(),
            PublishedError::BadPath { .. }
        ));
        for value in [&b""[..], b"{", b"1 2", b"\xff", b"{\"a\":}"] {
            assert!(
                matches!(
                    sign_document(&key, PATH, 1, value).unwrap_err(),
                    PublishedError::BadValue(_)
                ),
                "{value:?}"
            );
        }
        assert_eq!(
            sign_document(&key, PATH, MAX_SEQ + 1, b"1").unwrap_err(),
            PublishedError::BadSeq(MAX_SEQ + 1)
        );
        let big = format!("\"{}\"", "a".repeat(MAX_DOCUMENT_LEN - 100));
        assert!(matches!(
            sign_document(&key, PATH, 1, big.as_bytes()).unwrap_err(),
            PublishedError::TooLarge { .. }
        ));
        assert!(sign_document(&key, PATH, MAX_SEQ, b"1").is_ok());
    }

    #[test]
    fn endpoint_ids() {
        for good in [
            "usd-atomicity-key",
            "btc-lightning-bolt11",
            "btc-bitcoin-address",
            "hour_0-x-y",
            "1-2-3",
        ] {
            let id = EndpointId::parse(good).unwrap();
            assert_eq!(id.as_str(), good);
            assert_eq!(id.to_string(), good);
        }
        let id: EndpointId = "btc-lightning-bolt11".parse().unwrap();
        assert_eq!(
            (id.asset(), id.rail(), id.format()),
            ("btc", "lightning", "bolt11")
        );
        assert!(!id.is_reserved());
        assert!(
            EndpointId::parse("eur-atomicity-key")
                .unwrap()
                .is_reserved()
        );
        let usd: Asset = "USD".parse().unwrap();
        assert_eq!(
            EndpointId::atomicity_key(&usd).as_str(),
            "usd-atomicity-key"
        );
        assert_eq!(
            endpoint_path(&EndpointId::atomicity_key(&usd)),
            "/pub/paykit/v0/apps/atomicity/endpoints/usd-atomicity-key"
        );
        for bad in [
            "",
            "usd",
            "usd-atomicity",
            "usd-atomicity-key-x",
            "usd--key",
            "-a-b",
            "a-b-",
            "USD-atomicity-key",
            "usd-atomicity-kéy",
            "usd-atomicity-k y",
            "usd.x-a-b",
            "a/b-c-d",
        ] {
            assert!(EndpointId::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}-a-b", "a".repeat(MAX_ENDPOINT_ID_LEN));
        assert_eq!(
            EndpointId::parse(&long).unwrap_err().why,
            "longer than 96 bytes"
        );
        assert_eq!(
            EndpointId::parse("a-b").unwrap_err().to_string(),
            "\"a-b\" is not an endpoint id ({asset}-{rail}-{format}): it needs exactly three parts joined by '-'"
        );
        // Every id makes a publishable path.
        assert!(check_path(&endpoint_path(&id)).is_ok());
    }

    #[test]
    fn paths() {
        let holder = keypair(2).public_key();
        let usd: Asset = "USD".parse().unwrap();
        let hour: Asset = "HOUR:0".parse().unwrap();
        assert_eq!(
            state_path(&holder, &usd),
            format!("/pub/atomicity/v1/states/{}/USD", holder.to_z32())
        );
        assert_eq!(
            state_path(&holder, &hour),
            format!("/pub/atomicity/v1/states/{}/HOUR:0", holder.to_z32())
        );
        for path in [
            CHANNELS_PATH.to_string(),
            WITNESSES_PATH.to_string(),
            state_path(&holder, &hour),
        ] {
            check_path(&path).unwrap();
        }
        assert_eq!(
            pubky_url(&holder, CHANNELS_PATH),
            format!("pubky://{}/pub/atomicity/v1/channels", holder.to_z32())
        );
    }

    fn state(issuer: &Keypair, holder: &PublicKey, asset: &Asset, seq: u64) -> Signed<IouState> {
        Signed::sign(
            IouState {
                line: LineId {
                    issuer: issuer.public_key(),
                    holder: holder.clone(),
                    asset: asset.clone(),
                },
                seq,
                total: Total::from_minor(u128::from(seq) * 100),
                resolved: ResolvedSet::new(),
            },
            issuer,
        )
    }

    #[test]
    fn state_documents() {
        let issuer = keypair(1);
        let holder = keypair(2).public_key();
        let usd: Asset = "USD".parse().unwrap();
        let path = state_path(&holder, &usd);
        let signed = state(&issuer, &holder, &usd, 7);
        let value = serde_json::to_vec(&StateValue::new(&signed)).unwrap();
        let doc = sign_document(&issuer, &path, 42, &value).unwrap();
        let (got, document) =
            verify_state_document(&doc, &issuer.public_key(), &holder, &usd, None).unwrap();
        assert_eq!(got, signed);
        assert_eq!(document.seq, 42);

        // Served for another holder or asset: the path does not match.
        let other = keypair(3).public_key();
        assert!(matches!(
            verify_state_document(&doc, &issuer.public_key(), &other, &usd, None).unwrap_err(),
            PublishedError::WrongPath { .. }
        ));

        // A genuine document holding a state for another line.
        let eur: Asset = "EUR".parse().unwrap();
        let wrong_line = state(&issuer, &holder, &eur, 7);
        let value = serde_json::to_vec(&StateValue::new(&wrong_line)).unwrap();
        let doc = sign_document(&issuer, &path, 43, &value).unwrap();
        assert!(matches!(
            verify_state_document(&doc, &issuer.public_key(), &holder, &usd, None).unwrap_err(),
            PublishedError::BadState(_)
        ));

        // A genuine document holding a forged state (its signature broken).
        let mut forged = signed.to_bytes();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let value = serde_json::to_vec(&StateValue {
            state: BASE64.encode(&forged),
        })
        .unwrap();
        let doc = sign_document(&issuer, &path, 44, &value).unwrap();
        assert!(matches!(
            verify_state_document(&doc, &issuer.public_key(), &holder, &usd, None).unwrap_err(),
            PublishedError::BadState(_)
        ));

        // Not base64, not a state.
        for value in [
            &b"{\"state\":\"!!\"}"[..],
            b"{\"state\":\"AAAA\"}",
            b"{}",
            b"1",
        ] {
            let doc = sign_document(&issuer, &path, 45, value).unwrap();
            assert!(matches!(
                verify_state_document(&doc, &issuer.public_key(), &holder, &usd, None).unwrap_err(),
                PublishedError::BadState(_)
            ));
        }
        assert_eq!(IouState::NAME, "iou-state");
    }

    // The test vector of docs/publishing.md: key [0x01; 32], the endpoint path above, seq
    // 1700000000000000 and the value "<the key in z-base32>".
    const VECTOR_INPUT: &str = "61746f6d69636974792f76312f7075626c697368656400018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c000000392f7075622f7061796b69742f76302f617070732f61746f6d69636974792f656e64706f696e74732f7573642d61746f6d69636974792d6b657900060a24181e40000000003622746b7271387a6d77623861336d396b313563737533713137716d6667716e703964736b627267397571317279647079787037717922";
    const VECTOR_SIG: &str = "c90a6f6922d9ea969389457626c96952b794b267115af4583a567c043b846ddaf44e82605f65ba03f7c3723e4cd3add64d06d3907d65426769b93b195a3fc503";
    const VECTOR_DOC: &str = r#"{"value":"tkrq8zmwb8a3m9k15csu3q17qmfgqnp9dskbrg9uq1rydpyxp7qy","atomicity":{"v":1,"key":"tkrq8zmwb8a3m9k15csu3q17qmfgqnp9dskbrg9uq1rydpyxp7qy","path":"/pub/paykit/v0/apps/atomicity/endpoints/usd-atomicity-key","seq":1700000000000000,"sig":"yQpvaSLZ6paTiUV2JslpUreUsmcRWvRYOlZ8BDuEbdr0ToJgX2W6A/fDcj5M063WTQbTkH1lQmdpuTsZWj/FAw=="}}"#;

    #[test]
    fn test_vector() {
        let (key, doc, value) = sample();
        let input = signing_input(&key.public_key(), PATH, SEQ, value.as_bytes());
        let signature = key.sign(&input).to_bytes();
        assert_eq!(hex::encode(&input), VECTOR_INPUT);
        assert_eq!(hex::encode(signature), VECTOR_SIG);
        assert_eq!(text(&doc), VECTOR_DOC);
        let spec = include_str!("../../../docs/publishing.md");
        let squashed: String = spec.split_whitespace().collect();
        for hex in [VECTOR_INPUT, VECTOR_SIG] {
            assert!(squashed.contains(hex), "docs/publishing.md lacks {hex}");
        }
        assert!(
            spec.contains(VECTOR_DOC),
            "docs/publishing.md lacks the document"
        );
    }

    /// A valid document with one edit: a byte flipped, inserted or removed, or cut short.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (any::<usize>(), any::<u8>(), 0u8..4).prop_map(|(at, byte, how)| {
            let (_, mut doc, _) = sample();
            let at = at % doc.len();
            match how {
                0 => doc[at] ^= byte.max(1),
                1 => doc.insert(at, byte),
                2 => {
                    doc.remove(at);
                }
                _ => doc.truncate(at),
            }
            doc
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let key = keypair(1);
            let _ = verify(&bytes, &key);
        }

        #[test]
        fn random_text_never_panics(text in "\\PC{0,300}") {
            let key = keypair(1);
            let _ = verify(text.as_bytes(), &key);
            let _ = EndpointId::parse(&text);
            let _ = check_path(&text);
            let _ = sign_document(&key, PATH, 1, text.as_bytes());
        }

        #[test]
        fn mutated_documents_never_verify_another_value(doc in mutated()) {
            let (key, _, value) = sample();
            // Whatever still verifies (whitespace or an unknown member added) says the same.
            if let Ok(verified) = verify(&doc, &key) {
                prop_assert_eq!(verified.value_str(), value.as_str());
                prop_assert_eq!(verified.seq, SEQ);
            }
        }

        #[test]
        fn any_value_round_trips(value in json_value()) {
            let key = keypair(3);
            let bytes = serde_json::to_vec(&value).unwrap();
            let doc = sign_document(&key, CHANNELS_PATH, 9, &bytes).unwrap();
            let verified = verify_document(&doc, &key.public_key(), CHANNELS_PATH, Some(9)).unwrap();
            prop_assert_eq!(verified.value_str().as_bytes(), &bytes[..]);
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z\"\\\\]{0,5}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
