//! The log's side of c2sp.org/tlog-witness: asking cosigners (watchtowers) to cosign a
//! checkpoint, and attaching their cosignatures to it. Pure functions; the witness service does
//! the HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use thiserror::Error;

use crate::merkle::Hash;
use crate::note::{Checkpoint, CosignatureVerifier, Note, NoteError, NoteSignature};

/// Why a cosigner's answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CosignError {
    /// The checkpoint note does not parse.
    #[error("checkpoint: {0}")]
    Checkpoint(NoteError),
    /// A response line is not a note signature line.
    #[error("response line {0:?} is not a signature line: {1}")]
    BadLine(String, NoteError),
    /// The cosigner's own signature does not verify.
    #[error("the cosignature does not verify: {0}")]
    Invalid(NoteError),
    /// The response holds no signature by this cosigner.
    #[error("the response holds no cosignature by {0}")]
    Missing(String),
}

/// The body of an `add-checkpoint` request: `old <size>`, one base64 hash per line, an empty
/// line, then the signed checkpoint note.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&B64.encode(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// Reads a `409 Conflict` body (`text/x.tlog.size`): the size the cosigner last cosigned.
pub fn parse_conflict_size(body: &str) -> Option<u64> {
    let digits = body.strip_suffix('\n')?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok()
}

/// Picks the cosignature lines by `cosigner` out of an `add-checkpoint` response and checks
/// each against the checkpoint note (lines by other keys are ignored, as the spec says).
pub fn verified_cosignatures(
    response: &str,
    note: &str,
    cosigner: &CosignatureVerifier,
) -> Result<Vec<NoteSignature>, CosignError> {
    let parsed = Note::parse(note.as_bytes()).map_err(CosignError::Checkpoint)?;
    Checkpoint::from_text(&parsed.text).map_err(CosignError::Checkpoint)?;
    let mut out = Vec::new();
    for line in response.lines().filter(|l| !l.is_empty()) {
        let sig =
            NoteSignature::parse_line(line).map_err(|e| CosignError::BadLine(line.into(), e))?;
        if !cosigner.matches(&sig) {
            continue;
        }
        cosigner
            .verify_signature(&parsed.text, &sig)
            .map_err(CosignError::Invalid)?;
        out.push(sig);
    }
    if out.is_empty() {
        return Err(CosignError::Missing(cosigner.name().to_owned()));
    }
    Ok(out)
}

/// The note with `extra` signature lines appended (a signature with the same name and key ID
/// as one already there replaces it, so a note carries one cosignature per cosigner).
pub fn attach(note: &str, extra: &[NoteSignature]) -> Result<String, CosignError> {
    let mut parsed = Note::parse(note.as_bytes()).map_err(CosignError::Checkpoint)?;
    for sig in extra {
        parsed
            .signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        parsed.signatures.push(sig.clone());
    }
    Ok(parsed.to_text())
}
