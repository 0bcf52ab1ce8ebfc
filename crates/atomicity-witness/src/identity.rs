//! A service proving its key over HTTP.
//!
//! Anyone can announce on a service's DHT infohash, so an address found there proves nothing. A
//! client sends a fresh random challenge to `GET /v1/identity?challenge=<64 hex>`; the service
//! answers with its role, the key it claims and an Ed25519 signature over
//!
//! ```text
//! "atomicity/identity/v1\n" || role || "\n" || key || "\n" || hex(challenge)
//! ```
//!
//! made with that key. The domain prefix keeps the signature from ever being a valid note
//! signature, cosignature or protocol object. A witness proves its log key (its signed-note
//! verifier key), a watchtower its cosigner key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::note::{CosignatureVerifier, Cosigner, Signer, Verifier};

/// Where a service answers a challenge.
pub const IDENTITY_PATH: &str = "/v1/identity";
/// The domain prefix of the signed message.
const DOMAIN: &str = "atomicity/identity/v1\n";
/// The longest key string accepted (verifier keys are a name, an ID and 44 base64 characters).
const MAX_KEY_LEN: usize = 512;

/// What a service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A witness log; its key is the log's verifier key.
    Witness,
    /// A watchtower; its key is its cosigner verifier key.
    Watchtower,
    /// A router; its key is its node key (z-base32).
    Router,
}

impl Role {
    /// The role's name in proofs and on the DHT.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Witness => "witness",
            Role::Watchtower => "watchtower",
            Role::Router => "router",
        }
    }
}

/// A service's answer to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityProof {
    /// The role the service claims ([`Role::as_str`]).
    pub role: String,
    /// The key it claims.
    pub key: String,
    /// Base64 Ed25519 signature over the challenge message.
    pub signature: String,
}

/// Why a proof does not show the claimed key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The service claims another role.
    #[error("the service says it is a {got}, not a {want}")]
    WrongRole {
        /// The role asked for.
        want: &'static str,
        /// The role claimed.
        got: String,
    },
    /// The key string is not a key of that role.
    #[error("{0:?} is not a key of this role")]
    BadKey(String),
    /// The signature is not base64 of 64 bytes.
    #[error("the signature is malformed")]
    MalformedSignature,
    /// The signature does not verify under the claimed key.
    #[error("the signature does not verify under the claimed key (an impostor, or a replay)")]
    BadSignature,
}

/// The message a service signs.
pub fn message(role: Role, key: &str, challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = String::with_capacity(DOMAIN.len() + key.len() + 80);
    m.push_str(DOMAIN);
    m.push_str(role.as_str());
    m.push('\n');
    m.push_str(key);
    m.push('\n');
    for b in challenge {
        m.push_str(&format!("{b:02x}"));
    }
    m.into_bytes()
}

/// Answers a challenge with any Ed25519 key whose role-specific string is `key`.
pub fn prove(role: Role, key: &str, signing: &SigningKey, challenge: &[u8; 32]) -> IdentityProof {
    let signature = signing.sign(&message(role, key, challenge));
    IdentityProof {
        role: role.as_str().to_string(),
        key: key.to_string(),
        signature: B64.encode(signature.to_bytes()),
    }
}

/// A witness log's answer, with its log key.
pub fn prove_witness(signer: &Signer, challenge: &[u8; 32]) -> IdentityProof {
    prove(
        Role::Witness,
        &signer.vkey(),
        signer.signing_key(),
        challenge,
    )
}

/// A watchtower's answer, with its cosigner key.
pub fn prove_watchtower(cosigner: &Cosigner, challenge: &[u8; 32]) -> IdentityProof {
    prove(
        Role::Watchtower,
        &cosigner.vkey(),
        cosigner.signing_key(),
        challenge,
    )
}

/// Checks a witness's or watchtower's proof for `challenge`; returns the proven key string.
/// (A router's key is a node key: check it with [`verify_with`].)
pub fn verify(
    proof: &IdentityProof,
    role: Role,
    challenge: &[u8; 32],
) -> Result<String, IdentityError> {
    verify_with(proof, role, challenge, |key| match role {
        Role::Witness => Verifier::from_vkey(key).ok().map(|v| *v.public_key()),
        Role::Watchtower => CosignatureVerifier::from_vkey(key)
            .ok()
            .map(|v| *v.public_key()),
        Role::Router => None,
    })
}

/// [`verify`] with the caller's reading of the key string as an Ed25519 key.
pub fn verify_with(
    proof: &IdentityProof,
    role: Role,
    challenge: &[u8; 32],
    public_key: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<String, IdentityError> {
    if proof.role != role.as_str() {
        return Err(IdentityError::WrongRole {
            want: role.as_str(),
            got: proof.role.chars().take(32).collect(),
        });
    }
    if proof.key.len() > MAX_KEY_LEN {
        return Err(IdentityError::BadKey(proof.key.chars().take(64).collect()));
    }
    let key = public_key(&proof.key).ok_or_else(|| IdentityError::BadKey(proof.key.clone()))?;
    let bytes = B64
        .decode(&proof.signature)
        .map_err(|_| IdentityError::MalformedSignature)?;
    let signature = Signature::from_slice(&bytes).map_err(|_| IdentityError::MalformedSignature)?;
    key.verify_strict(&message(role, &proof.key, challenge), &signature)
        .map_err(|_| IdentityError::BadSignature)?;
    Ok(proof.key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> Signer {
        Signer::new("witness.example/log", SigningKey::from_bytes(&[seed; 32])).expect("signer")
    }

    fn cosigner(seed: u8) -> Cosigner {
        Cosigner::new("tower.example", SigningKey::from_bytes(&[seed; 32])).expect("cosigner")
    }

    #[test]
    fn a_witness_and_a_watchtower_prove_their_keys() {
        let challenge = [7u8; 32];
        let w = signer(1);
        assert_eq!(
            verify(&prove_witness(&w, &challenge), Role::Witness, &challenge),
            Ok(w.vkey())
        );
        let t = cosigner(2);
        assert_eq!(
            verify(
                &prove_watchtower(&t, &challenge),
                Role::Watchtower,
                &challenge
            ),
            Ok(t.vkey())
        );
    }

    #[test]
    fn impostors_replays_and_garbage_are_refused() {
        let challenge = [7u8; 32];
        let real = signer(1);
        let proof = prove_witness(&real, &challenge);
        // A replay of the real witness's answer to another challenge.
        assert_eq!(
            verify(&proof, Role::Witness, &[8u8; 32]),
            Err(IdentityError::BadSignature)
        );
        // An impostor claiming the real key but signing with its own.
        let impostor = prove(
            Role::Witness,
            &real.vkey(),
            &SigningKey::from_bytes(&[9; 32]),
            &challenge,
        );
        assert_eq!(
            verify(&impostor, Role::Witness, &challenge),
            Err(IdentityError::BadSignature)
        );
        // Another role, a bad key, a bad signature.
        assert!(matches!(
            verify(&proof, Role::Watchtower, &challenge),
            Err(IdentityError::WrongRole { .. })
        ));
        let mut bad = proof.clone();
        bad.key = "not a key".into();
        assert!(matches!(
            verify(&bad, Role::Witness, &challenge),
            Err(IdentityError::BadKey(_))
        ));
        let mut bad = proof.clone();
        bad.signature = "!!".into();
        assert_eq!(
            verify(&bad, Role::Witness, &challenge),
            Err(IdentityError::MalformedSignature)
        );
        // A watchtower's cosigner key is not a witness log key.
        let tower = prove_watchtower(&cosigner(2), &challenge);
        let mut as_witness = tower.clone();
        as_witness.role = "witness".into();
        assert!(matches!(
            verify(&as_witness, Role::Witness, &challenge),
            Err(IdentityError::BadKey(_))
        ));
    }

    #[test]
    fn the_message_is_domain_separated() {
        let m = message(Role::Witness, "k", &[0xab; 32]);
        let text = String::from_utf8(m).expect("utf8");
        assert!(text.starts_with("atomicity/identity/v1\nwitness\nk\nabab"));
        assert!(!text.ends_with('\n'));
    }
}
