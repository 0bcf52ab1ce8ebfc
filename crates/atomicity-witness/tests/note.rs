//! Tests for C2SP signed notes, checkpoints and cosignatures.
//!
//! Vector sources:
//! - golang/mod `sumdb/note/note_test.go` (PeterNeumann / EnochRoot keys,
//!   signed text and signature lines, malformed notes);
//! - C2SP/C2SP `signed-note.md`, `tlog-checkpoint.md`, `tlog-cosignature.md`
//!   (example notes, checkpoint and cosignature line);
//! - transparency-dev/formats `note/note_cosigv1_test.go` (cosignature/v1
//!   vkeys and timestamp vector).

use atomicity_witness::note::{
    Checkpoint, CosignatureVerifier, Cosigner, CosignerPolicy, MAX_COSIGNATURE_TIME, Note,
    NoteError, NoteSignature, Signer, Verifier, cosignature_timestamp, open, sign,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

// golang/mod sumdb/note/note_test.go
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// C2SP/C2SP tlog-checkpoint.md and tlog-cosignature.md
const SPEC_CHECKPOINT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const SPEC_LOG_SIG: &str = "\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
const SPEC_COSIG: &str = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

fn peter() -> Verifier {
    Verifier::from_vkey(PETER_VKEY).expect("peter vkey")
}

fn enoch() -> Verifier {
    Verifier::from_vkey(ENOCH_VKEY).expect("enoch vkey")
}

fn note_with(sigs: &str) -> String {
    format!("{TEXT}\n{sigs}")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sample_checkpoint() -> Checkpoint {
    Checkpoint::from_text(SPEC_CHECKPOINT).expect("spec checkpoint")
}

// ---------------------------------------------------------------- keys

#[test]
fn go_vector_verifier_key_parses() {
    let v = peter();
    assert_eq!(v.name(), "PeterNeumann");
    assert_eq!(v.key_id(), 0xc74f20a3);
    assert_eq!(v.vkey(), PETER_VKEY);
    assert_eq!(PETER_VKEY.parse::<Verifier>().expect("FromStr"), v);
    let e = enoch();
    assert_eq!(e.name(), "EnochRoot");
    assert_eq!(e.key_id(), 0xaf0cfe78);
    assert_eq!(e.vkey(), ENOCH_VKEY);
}

#[test]
fn go_vector_key_id_is_sha256_prefix() {
    let v = peter();
    let mut h = Sha256::new();
    h.update(b"PeterNeumann\n\x01");
    h.update(v.public_key().as_bytes());
    let d = h.finalize();
    assert_eq!(hex::encode(&d[..4]), "c74f20a3");
}

#[test]
fn go_vector_signer_key_round_trips() {
    let s = Signer::from_skey(PETER_SKEY).expect("peter skey");
    assert_eq!(s.name(), "PeterNeumann");
    assert_eq!(s.key_id(), 0xc74f20a3);
    assert_eq!(s.vkey(), PETER_VKEY);
    assert_eq!(s.skey(), PETER_SKEY);
    assert_eq!(s.verifier(), peter());
    // Debug output must not leak the secret seed.
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("AYEKFALV"), "{dbg}");
}

#[test]
fn go_vector_mangled_verifier_keys_rejected() {
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let k = String::from_utf8_lossy(&b[i..j]);
            assert!(Verifier::from_vkey(&k).is_err(), "accepted substring {k:?}");
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] = m[i].wrapping_add(1);
        let k = String::from_utf8_lossy(&m);
        assert!(Verifier::from_vkey(&k).is_err(), "accepted mangled {k:?}");
    }
    // Wrong-length key with adjusted key hash; unknown algorithm with adjusted key hash.
    assert!(
        Verifier::from_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
        .is_err()
    );
    assert!(matches!(
        Verifier::from_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::UnsupportedKeyType(0x65))
    ));
}

#[test]
fn go_vector_mangled_signer_keys_rejected() {
    let b = PETER_SKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let k = String::from_utf8_lossy(&b[i..j]);
            assert!(Signer::from_skey(&k).is_err(), "accepted substring {k:?}");
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] = m[i].wrapping_add(1);
        let k = String::from_utf8_lossy(&m);
        assert!(Signer::from_skey(&k).is_err(), "accepted mangled {k:?}");
    }
}

#[test]
fn key_strings_reject_bad_forms() {
    // Sign prefix on the hex key ID (u32::from_str_radix would accept it).
    assert!(
        Verifier::from_vkey("PeterNeumann++74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .is_err()
    );
    // Key ID mismatch.
    assert_eq!(
        Verifier::from_vkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyIdMismatch)
    );
    // transparency-dev/formats note_cosigv1_test.go: wrong parts, bad base64, bad algo.
    assert!(Verifier::from_vkey("bananas.sigstore.dev+12344556").is_err());
    assert!(Verifier::from_vkey("rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!").is_err());
    assert!(Verifier::from_vkey("rekor.sigstore.dev+12345678+AwEB").is_err());
    // Oversized key string.
    assert!(matches!(
        Verifier::from_vkey(&"a".repeat(5000)),
        Err(NoteError::TooLarge { .. })
    ));
}

#[test]
fn names_are_validated() {
    for bad in [
        "",
        "a b",
        "a+b",
        "a\tb",
        "a\u{00a0}b",
        "a\u{3000}b",
        "a\u{1}b",
        "a\nb",
    ] {
        assert_eq!(
            Signer::new(bad, key(1)).map(|_| ()),
            Err(NoteError::InvalidName),
            "{bad:?}"
        );
        assert_eq!(
            Cosigner::new(bad, key(1)).map(|_| ()),
            Err(NoteError::InvalidName),
            "{bad:?}"
        );
    }
    assert!(Signer::new("example.com/log\u{2014}ok", key(1)).is_ok());
}

#[test]
fn verifier_verify_checks_message_and_signature() {
    let s = Signer::from_skey(PETER_SKEY).expect("skey");
    let v = s.verifier();
    let sig = s.sign("hi\n").expect("sign");
    assert!(v.verify(b"hi\n", &sig.signature));
    assert!(!v.verify(b"hj\n", &sig.signature));
    let mut bad = sig.signature.clone();
    bad[0] ^= 1;
    assert!(!v.verify(b"hi\n", &bad));
    assert!(!v.verify(b"hi\n", &sig.signature[..63]));
}

// ---------------------------------------------------------------- signing

#[test]
fn go_vector_sign_is_exact() {
    let s = Signer::from_skey(PETER_SKEY).expect("skey");
    assert_eq!(
        sign(TEXT, std::slice::from_ref(&s)).expect("sign"),
        note_with(PETER_SIG)
    );
    let line = s.sign(TEXT).expect("sign").to_line();
    assert_eq!(line, PETER_SIG);
}

#[test]
fn sign_rejects_bad_text() {
    let s = Signer::from_skey(PETER_SKEY).expect("skey");
    assert!(matches!(
        sign("abc", std::slice::from_ref(&s)),
        Err(NoteError::MalformedNote(_))
    ));
    assert_eq!(
        sign("a\rb\n", std::slice::from_ref(&s)),
        Err(NoteError::ControlCharacter)
    );
    assert!(matches!(sign(TEXT, &[]), Err(NoteError::MalformedNote(_))));
    assert!(matches!(
        s.sign("no newline"),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn sign_multiple_signers_in_order() {
    let a = Signer::new("a.example/one", key(1)).expect("a");
    let b = Signer::new("b.example/two", key(2)).expect("b");
    let msg = sign("hello\n\nworld\n", &[a.clone(), b.clone()]).expect("sign");
    let (note, verified) = open(msg.as_bytes(), &[b.verifier(), a.verifier()]).expect("open");
    assert_eq!(note.text, "hello\n\nworld\n");
    assert_eq!(verified.len(), 2);
    assert_eq!(verified[0].name, "a.example/one");
    assert_eq!(verified[1].name, "b.example/two");
    assert_eq!(note.to_text(), msg);
}

// ---------------------------------------------------------------- open

#[test]
fn go_vector_open_one_verified_one_unknown() {
    let msg = note_with(&format!("{PETER_SIG}{ENOCH_SIG}"));
    let (note, verified) = open(msg.as_bytes(), &[peter()]).expect("open");
    assert_eq!(note.text, TEXT);
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name, "PeterNeumann");
    assert_eq!(verified[0].key_id, 0xc74f20a3);
    assert_eq!(note.signatures[1].name, "EnochRoot");
    assert_eq!(note.signatures[1].key_id, 0xaf0cfe78);
}

#[test]
fn go_vector_open_both_verified() {
    let msg = note_with(&format!("{PETER_SIG}{ENOCH_SIG}"));
    let (_, verified) = open(msg.as_bytes(), &[peter(), enoch()]).expect("open");
    assert_eq!(verified.len(), 2);
    assert_eq!(verified[1].name, "EnochRoot");
}

#[test]
fn go_vector_open_no_known_key() {
    let msg = note_with(&format!("{PETER_SIG}{ENOCH_SIG}"));
    assert_eq!(
        open(msg.as_bytes(), &[]).map(|_| ()),
        Err(NoteError::UnverifiedNote)
    );
    // Parsing alone still works and keeps unverified signatures.
    assert_eq!(
        Note::parse(msg.as_bytes()).expect("parse").signatures.len(),
        2
    );
}

#[test]
fn go_vector_open_ambiguous_verifiers() {
    let msg = note_with(ENOCH_SIG);
    assert_eq!(
        open(msg.as_bytes(), &[enoch(), peter(), enoch()]).map(|_| ()),
        Err(NoteError::AmbiguousKey {
            name: "EnochRoot".into(),
            key_id: 0xaf0cfe78
        })
    );
    // Unused duplicated verifier is fine.
    let msg = note_with(PETER_SIG);
    assert!(open(msg.as_bytes(), &[enoch(), peter(), enoch()]).is_ok());
}

#[test]
fn go_vector_open_too_many_signatures() {
    let msg = note_with(&PETER_SIG.repeat(101));
    assert_eq!(
        open(msg.as_bytes(), &[peter()]).map(|_| ()),
        Err(NoteError::TooManySignatures)
    );
    assert_eq!(
        open(msg.as_bytes(), &[]).map(|_| ()),
        Err(NoteError::TooManySignatures)
    );
    let msg = note_with(&PETER_SIG.repeat(100));
    let (note, verified) = open(msg.as_bytes(), &[peter()]).expect("100 signatures accepted");
    assert_eq!(note.signatures.len(), 100);
    assert_eq!(verified.len(), 1);
}

#[test]
fn go_vector_open_invalid_signature() {
    let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        open(note_with(&bad).as_bytes(), &[peter()]).map(|_| ()),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );
}

#[test]
fn go_vector_open_duplicate_signatures_counted_once() {
    let enoch_abcd = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    let msg = note_with(&format!(
        "{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{enoch_abcd}"
    ));
    let (note, verified) = open(msg.as_bytes(), &[peter()]).expect("open");
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name, "PeterNeumann");
    assert_eq!(note.signatures.len(), 5);
    // A corrupt duplicate of a known key's signature is still verified and rejected.
    let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let msg = note_with(&format!("{PETER_SIG}{bad}"));
    assert!(matches!(
        open(msg.as_bytes(), &[peter()]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn go_vector_malformed_notes_rejected() {
    let bad_msgs: Vec<Vec<u8>> = vec![
        TEXT.into(),
        format!("{TEXT}\n").into(),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]).into(),
        format!("\x01{TEXT}\n{PETER_SIG}").into(),
        [b"\xff".as_slice(), note_with(PETER_SIG).as_bytes()].concat(),
        format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=").into(),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n").into(),
    ];
    for msg in bad_msgs {
        assert!(
            open(&msg, &[peter()]).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(&msg)
        );
        assert!(
            Note::parse(&msg).is_err(),
            "parsed {:?}",
            String::from_utf8_lossy(&msg)
        );
    }
}

#[test]
fn malformed_signature_lines_rejected() {
    let b64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
    for line in [
        format!("- PeterNeumann {b64}"),         // hyphen, not em dash
        format!("\u{2014}PeterNeumann {b64}"),   // no space
        format!("\u{2014} PeterNeumann  {b64}"), // double space
        format!("\u{2014} PeterNeumann {}", &b64[..b64.len() - 1]), // bad padding
        format!("\u{2014} PeterNeumann {}", b64.trim_end_matches('=')), // no padding
        format!("\u{2014} PeterNeumann {b64} "), // trailing space
        format!("\u{2014} Peter+Neumann {b64}"), // '+' in name
        "\u{2014} PeterNeumann AAAAAA==".to_string(), // key ID only
        "\u{2014} PeterNeumann ".to_string(),    // empty signature
        "\u{2014} PeterNeumann AAAAAAB=".to_string(), // non-canonical bits
    ] {
        assert!(
            NoteSignature::parse_line(&line).is_err(),
            "accepted {line:?}"
        );
        assert!(
            Note::parse(note_with(&format!("{line}\n")).as_bytes()).is_err(),
            "{line:?}"
        );
    }
}

#[test]
fn every_bit_flip_of_signature_rejected() {
    let sig = NoteSignature::parse_line(PETER_SIG).expect("line");
    let mut raw = sig.key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&sig.signature);
    assert_eq!(raw.len(), 68);
    for bit in 0..raw.len() * 8 {
        let mut m = raw.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let line = format!("\u{2014} PeterNeumann {}\n", B64.encode(&m));
        let res = open(note_with(&line).as_bytes(), &[peter()]);
        if bit < 32 {
            assert_eq!(res.map(|_| ()), Err(NoteError::UnverifiedNote), "bit {bit}");
        } else {
            assert!(
                matches!(res, Err(NoteError::InvalidSignature { .. })),
                "bit {bit}"
            );
        }
    }
}

#[test]
fn wrong_key_and_wrong_name_rejected() {
    let msg = note_with(PETER_SIG);
    assert_eq!(
        open(msg.as_bytes(), &[enoch()]).map(|_| ()),
        Err(NoteError::UnverifiedNote)
    );
    // Same public key registered under another name: different key ID, unknown.
    let other = Verifier::new("PeterNeuman", *peter().public_key()).expect("v");
    assert_eq!(
        open(msg.as_bytes(), &[other]).map(|_| ()),
        Err(NoteError::UnverifiedNote)
    );
    let renamed = note_with(&PETER_SIG.replace("PeterNeumann", "PeterNeuman"));
    assert_eq!(
        open(renamed.as_bytes(), &[peter()]).map(|_| ()),
        Err(NoteError::UnverifiedNote)
    );
}

#[test]
fn modified_body_rejected() {
    let msg = note_with(PETER_SIG).replace("cryptography", "cryptographY");
    assert!(matches!(
        open(msg.as_bytes(), &[peter()]),
        Err(NoteError::InvalidSignature { .. })
    ));
    // Extra blank line moves the text/signature split into the text.
    let msg = format!("{TEXT}\n\n{PETER_SIG}");
    assert!(matches!(
        open(msg.as_bytes(), &[peter()]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn every_truncation_rejected() {
    let msg = note_with(PETER_SIG);
    let b = msg.as_bytes();
    for n in 0..b.len() {
        assert!(open(&b[..n], &[peter()]).is_err(), "prefix {n} accepted");
    }
    assert!(open(b, &[peter()]).is_ok());
    // With two signatures, the only accepted strict prefix drops the whole
    // second line, and then only the first signature remains.
    let msg = note_with(&format!("{PETER_SIG}{ENOCH_SIG}"));
    let b = msg.as_bytes();
    for n in 0..b.len() {
        match open(&b[..n], &[peter(), enoch()]) {
            Ok((note, verified)) => {
                assert_eq!(n, note_with(PETER_SIG).len());
                assert_eq!((note.signatures.len(), verified.len()), (1, 1));
            }
            Err(_) => assert_ne!(n, note_with(PETER_SIG).len()),
        }
    }
}

#[test]
fn oversized_note_rejected() {
    let big = format!("{}\n\n{PETER_SIG}", "a".repeat(1 << 20));
    assert!(matches!(
        Note::parse(big.as_bytes()),
        Err(NoteError::TooLarge { .. })
    ));
}

#[test]
fn spec_example_notes_parse() {
    // C2SP/C2SP signed-note.md
    let msg = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n\n\u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    let note = Note::parse(msg.as_bytes()).expect("parse");
    assert_eq!(
        note.text,
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n"
    );
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(note.signatures[0].signature.len(), 64);
    assert_eq!(note.to_text(), msg);

    // C2SP/C2SP tlog-cosignature.md: checkpoint with log signature and cosignature.
    let msg = format!("{SPEC_CHECKPOINT}\n{SPEC_LOG_SIG}{SPEC_COSIG}");
    let note = Note::parse(msg.as_bytes()).expect("parse");
    assert_eq!(note.text, SPEC_CHECKPOINT);
    assert_eq!(note.signatures[0].name, "example.com/behind-the-sofa");
    assert_eq!(note.signatures[0].signature.len(), 64);
    assert_eq!(note.signatures[1].name, "witness.example.com/w1");
    // The spec's cosignature timestamp matches its "time 1679315147" example.
    assert_eq!(cosignature_timestamp(&note.signatures[1]), Ok(1679315147));
    assert!(cosignature_timestamp(&note.signatures[0]).is_err());
    assert_eq!(note.to_text(), msg);
}

// ---------------------------------------------------------------- checkpoints

#[test]
fn spec_checkpoint_parses() {
    let c = sample_checkpoint();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20852163);
    assert_eq!(
        c.root.to_vec(),
        B64.decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
            .expect("b64")
    );
    assert!(c.extensions.is_empty());
    assert_eq!(c.to_text().expect("text"), SPEC_CHECKPOINT);
}

#[test]
fn checkpoint_extensions_and_zero_size() {
    let text =
        "example.com/log\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nfoo bar\n\u{2014} baz\n";
    let c = Checkpoint::from_text(text).expect("parse");
    assert_eq!(c.size, 0);
    assert_eq!(
        c.extensions,
        vec!["foo bar".to_string(), "\u{2014} baz".to_string()]
    );
    assert_eq!(c.to_text().expect("text"), text);
    let max = format!(
        "o\n{}\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        u64::MAX
    );
    assert_eq!(Checkpoint::from_text(&max).expect("max").size, u64::MAX);
}

#[test]
fn checkpoint_strict_parsing() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let bad = [
        format!("o\n020852163\n{root}\n"),            // leading zero
        format!("o\n00\n{root}\n"),                   // leading zero
        format!("o\n+1\n{root}\n"),                   // sign
        format!("o\n-1\n{root}\n"),                   // negative
        format!("o\n 1\n{root}\n"),                   // space
        format!("o\n1 \n{root}\n"),                   // trailing space
        format!("o\n0x10\n{root}\n"),                 // hex
        format!("o\n\n{root}\n"),                     // empty size
        format!("o\n18446744073709551616\n{root}\n"), // overflow
        format!("\n1\n{root}\n"),                     // empty origin
        "o\n1\n".to_string(),                         // missing root
        "o\n".to_string(),                            // missing size
        String::new(),                                // empty
        format!("o\n1\n{root}"),                      // no final newline
        format!("o\n1\n{root}\n\n"),                  // empty extension
        format!("o\n1\n{root}\next\n\n"),             // empty extension
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_string(), // no padding
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_string(), // non-canonical bits
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n".to_string(), // 31 bytes
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2IA\n".to_string(), // 33 bytes
        "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_string(), // URL alphabet
        format!("o\n1\n {root}\n"),                   // leading space
        format!("o\r\n1\n{root}\n"),                  // control char
    ];
    for t in bad {
        assert!(Checkpoint::from_text(&t).is_err(), "accepted {t:?}");
    }
}

#[test]
fn checkpoint_to_text_validates() {
    let mut c = sample_checkpoint();
    c.origin = String::new();
    assert!(c.to_text().is_err());
    c.origin = "a\nb".into();
    assert!(c.to_text().is_err());
    c.origin = "o".into();
    c.extensions = vec![String::new()];
    assert!(c.to_text().is_err());
    c.extensions = vec!["x\ny".into()];
    assert!(c.to_text().is_err());
    c.extensions = vec!["x\u{7}".into()];
    assert!(c.to_text().is_err());
}

// ---------------------------------------------------------------- cosignatures

#[test]
fn formats_vector_cosignature_vkeys() {
    // transparency-dev/formats note/note_cosigv1_test.go: native 0x04 vkey.
    let vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";
    let v = CosignatureVerifier::from_vkey(vkey).expect("cosig vkey");
    assert_eq!(v.name(), "remora.n621.de");
    assert_eq!(v.key_id(), 0xda77ade7);
    assert_eq!(v.vkey(), vkey);
    // A plain Ed25519 (0x01) vkey is a note verifier, not a cosignature verifier.
    let plain = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6";
    assert_eq!(
        Verifier::from_vkey(plain).expect("0x01 vkey").key_id(),
        0x7997405c
    );
    assert_eq!(
        CosignatureVerifier::from_vkey(plain),
        Err(NoteError::UnsupportedKeyType(0x01))
    );
    assert!(Verifier::from_vkey(vkey).is_err());
    assert!(CosignatureVerifier::from_vkey("rekor.sigstore.dev+12345678+AwEB").is_err());
    assert_eq!(
        CosignatureVerifier::from_vkey(
            "remora.n621.de+da77ade8+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
        ),
        Err(NoteError::KeyIdMismatch)
    );
}

#[test]
fn formats_vector_cosignature_timestamp() {
    // transparency-dev/formats note/note_cosigv1_test.go TestCosignatureTimestamp.
    let ok = "\u{2014} w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==";
    let sig = NoteSignature::parse_line(ok).expect("line");
    assert_eq!(cosignature_timestamp(&sig), Ok(1727964367));
    let wrong_type = "\u{2014} w eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=";
    let sig = NoteSignature::parse_line(wrong_type).expect("line");
    assert!(cosignature_timestamp(&sig).is_err());
    assert!(NoteSignature::parse_line("\u{2014} w 5%/$!\n 2").is_err());
}

#[test]
fn cosignature_key_id_uses_type_0x04() {
    let sk = key(7);
    let c = Cosigner::new("witness.example/w1", sk.clone()).expect("cosigner");
    let mut h = Sha256::new();
    h.update(b"witness.example/w1\n\x04");
    h.update(sk.verifying_key().as_bytes());
    let d = h.finalize();
    assert_eq!(c.key_id(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    let plain = Signer::new("witness.example/w1", sk).expect("signer");
    assert_ne!(plain.key_id(), c.key_id());
    assert!(
        c.vkey()
            .starts_with(&format!("witness.example/w1+{:08x}+B", c.key_id()))
    );
    assert_eq!(CosignatureVerifier::from_vkey(&c.vkey()), Ok(c.verifier()));
}

#[test]
fn cosignature_round_trip_and_layout() {
    let c = Cosigner::new("witness.example/w1", key(7)).expect("cosigner");
    let cp = sample_checkpoint();
    let line = c.sign(&cp, 1679315147).expect("sign");
    assert!(line.starts_with("\u{2014} witness.example/w1 "));
    assert!(line.ends_with('\n'));
    let sig = NoteSignature::parse_line(&line).expect("parse");
    assert_eq!(sig.key_id, c.key_id());
    assert_eq!(sig.signature.len(), 72);
    assert_eq!(&sig.signature[..8], &1679315147u64.to_be_bytes());
    // The Ed25519 signature covers exactly the cosignature/v1 message.
    let msg = format!("cosignature/v1\ntime 1679315147\n{SPEC_CHECKPOINT}");
    let ed = ed25519_dalek::Signature::from_bytes(&sig.signature[8..].try_into().expect("64"));
    assert!(
        key(7)
            .verifying_key()
            .verify_strict(msg.as_bytes(), &ed)
            .is_ok()
    );
    let v = c.verifier();
    assert_eq!(v.verify(SPEC_CHECKPOINT, &line), Ok(1679315147));
    assert_eq!(v.verify(SPEC_CHECKPOINT, line.trim_end()), Ok(1679315147));
    // A cosignature is not a plain note signature by the same key.
    let plain = Verifier::new("witness.example/w1", key(7).verifying_key()).expect("v");
    let msg = format!("{SPEC_CHECKPOINT}\n{line}");
    assert_eq!(
        open(msg.as_bytes(), &[plain]).map(|_| ()),
        Err(NoteError::UnverifiedNote)
    );
}

#[test]
fn cosignature_negative_cases() {
    let c = Cosigner::new("witness.example/w1", key(7)).expect("cosigner");
    let v = c.verifier();
    let cp = sample_checkpoint();
    let line = c.sign(&cp, 1000).expect("sign");
    let sig = NoteSignature::parse_line(&line).expect("parse");
    // Every bit flip of the payload (key ID, timestamp, signature).
    let mut raw = sig.key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&sig.signature);
    for bit in 0..raw.len() * 8 {
        let mut m = raw.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let l = format!("\u{2014} witness.example/w1 {}\n", B64.encode(&m));
        assert!(v.verify(SPEC_CHECKPOINT, &l).is_err(), "bit {bit}");
    }
    // Wrong key, wrong name.
    let other = Cosigner::new("witness.example/w1", key(8))
        .expect("other")
        .verifier();
    assert_eq!(
        other.verify(SPEC_CHECKPOINT, &line),
        Err(NoteError::WrongKey)
    );
    let renamed = line.replace("witness.example/w1", "witness.example/w2");
    assert_eq!(
        v.verify(SPEC_CHECKPOINT, &renamed),
        Err(NoteError::WrongKey)
    );
    // Modified checkpoint (size, extension).
    let modified = SPEC_CHECKPOINT.replace("20852163", "20852164");
    assert!(matches!(
        v.verify(&modified, &line),
        Err(NoteError::InvalidSignature { .. })
    ));
    let mut ext = cp.clone();
    ext.extensions = vec!["Extendo".into()];
    let ext_line = c.sign(&ext, 1000).expect("sign");
    let ext_text = ext.to_text().expect("text");
    assert_eq!(v.verify(&ext_text, &ext_line), Ok(1000));
    assert!(
        v.verify(&ext_text.replace("Extendo", "Extend@"), &ext_line)
            .is_err()
    );
    assert!(v.verify(SPEC_CHECKPOINT, &ext_line).is_err());
    // Not a checkpoint.
    assert!(matches!(
        v.verify("nobbled\n", &line),
        Err(NoteError::MalformedCheckpoint(_))
    ));
    // Timestamps above 2^63 - 1.
    assert_eq!(
        c.sign(&cp, MAX_COSIGNATURE_TIME + 1),
        Err(NoteError::TimestampOutOfRange)
    );
    assert!(c.sign(&cp, MAX_COSIGNATURE_TIME).is_ok());
    let mut m = raw.clone();
    m[4..12].copy_from_slice(&(1u64 << 63).to_be_bytes());
    let l = format!("\u{2014} witness.example/w1 {}\n", B64.encode(&m));
    assert_eq!(
        v.verify(SPEC_CHECKPOINT, &l),
        Err(NoteError::TimestampOutOfRange)
    );
    // Truncated payload.
    let l = format!(
        "\u{2014} witness.example/w1 {}\n",
        B64.encode(&raw[..raw.len() - 1])
    );
    assert!(matches!(
        v.verify(SPEC_CHECKPOINT, &l),
        Err(NoteError::InvalidSignature { .. })
    ));
}

// ---------------------------------------------------------------- policy

struct Fixture {
    log: Signer,
    cosigners: Vec<Cosigner>,
    checkpoint: Checkpoint,
}

fn fixture() -> Fixture {
    Fixture {
        log: Signer::new("example.com/behind-the-sofa", key(1)).expect("log"),
        cosigners: (0..4)
            .map(|i| Cosigner::new(&format!("w{i}.example"), key(10 + i)).expect("cosigner"))
            .collect(),
        checkpoint: sample_checkpoint(),
    }
}

fn cosigned(f: &Fixture, which: &[usize], extra: &str) -> Note {
    let text = f.checkpoint.to_text().expect("text");
    let mut msg = sign(&text, std::slice::from_ref(&f.log)).expect("sign");
    for &i in which {
        msg.push_str(
            &f.cosigners[i]
                .sign(&f.checkpoint, 100 + i as u64)
                .expect("cosign"),
        );
    }
    msg.push_str(extra);
    let (note, _) = open(msg.as_bytes(), &[f.log.verifier()]).expect("log signature");
    note
}

fn policy(f: &Fixture, threshold: usize) -> CosignerPolicy {
    CosignerPolicy {
        cosigners: f.cosigners[..3].iter().map(Cosigner::verifier).collect(),
        threshold,
    }
}

#[test]
fn policy_k_of_n() {
    let f = fixture();
    let note = cosigned(&f, &[2, 0], "");
    assert_eq!(
        policy(&f, 2).check(&note),
        Ok(vec![("w0.example".into(), 100), ("w2.example".into(), 102)])
    );
    assert_eq!(
        policy(&f, 3).check(&note),
        Err(NoteError::ThresholdNotMet {
            valid: 2,
            threshold: 3
        })
    );
}

#[test]
fn policy_duplicates_and_outsiders_do_not_count() {
    let f = fixture();
    // w0 twice (different timestamps) and w3, who is not in the policy.
    let again = f.cosigners[0].sign(&f.checkpoint, 999).expect("cosign");
    let note = cosigned(&f, &[0, 3], &again);
    assert_eq!(
        policy(&f, 2).check(&note),
        Err(NoteError::ThresholdNotMet {
            valid: 1,
            threshold: 2
        })
    );
    assert_eq!(
        policy(&f, 1).check(&note),
        Ok(vec![("w0.example".into(), 100)])
    );
}

#[test]
fn policy_rejects_bad_cosignature_from_known_cosigner() {
    let f = fixture();
    let forged = f.cosigners[3]
        .sign(&f.checkpoint, 5)
        .expect("cosign")
        .replace("w3.example", "w1.example");
    // Name matches w1 but key ID is w3's: unknown key, ignored.
    let note = cosigned(&f, &[0], &forged);
    assert_eq!(
        policy(&f, 1).check(&note),
        Ok(vec![("w0.example".into(), 100)])
    );
    // Matching name and key ID but a bad signature: whole note rejected.
    let mut sig =
        NoteSignature::parse_line(&f.cosigners[1].sign(&f.checkpoint, 5).expect("s")).expect("p");
    sig.signature[20] ^= 1;
    let note = cosigned(&f, &[0, 2], &sig.to_line());
    assert!(matches!(
        policy(&f, 1).check(&note),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn policy_validation() {
    let f = fixture();
    let note = cosigned(&f, &[0, 1, 2], "");
    assert!(matches!(
        policy(&f, 0).check(&note),
        Err(NoteError::InvalidPolicy(_))
    ));
    assert!(matches!(
        policy(&f, 4).check(&note),
        Err(NoteError::InvalidPolicy(_))
    ));
    let dup = CosignerPolicy {
        cosigners: vec![f.cosigners[0].verifier(), f.cosigners[0].verifier()],
        threshold: 2,
    };
    assert!(matches!(dup.check(&note), Err(NoteError::InvalidPolicy(_))));
    // The note text must be a checkpoint.
    let not_cp = Note::parse(
        sign("hello\n", std::slice::from_ref(&f.log))
            .expect("s")
            .as_bytes(),
    )
    .expect("p");
    assert!(matches!(
        policy(&f, 1).check(&not_cp),
        Err(NoteError::MalformedCheckpoint(_))
    ));
}

// ---------------------------------------------------------------- properties

fn text_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[^\\x00-\\x1f]{0,20}", 1..6).prop_map(|lines| {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    })
}

fn checkpoint_strategy() -> impl Strategy<Value = Checkpoint> {
    (
        "[^\\x00-\\x1f]{1,30}",
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[^\\x00-\\x1f]{1,20}", 0..4),
    )
        .prop_map(|(origin, size, root, extensions)| Checkpoint {
            origin,
            size,
            root,
            extensions,
        })
}

proptest! {
    #[test]
    fn prop_sign_open_round_trip(text in text_strategy(), seed in any::<[u8; 32]>()) {
        let s = Signer::new("prop.example/log", SigningKey::from_bytes(&seed)).expect("signer");
        let msg = sign(&text, std::slice::from_ref(&s)).expect("sign");
        let (note, verified) = open(msg.as_bytes(), &[s.verifier()]).expect("open");
        prop_assert_eq!(&note.text, &text);
        prop_assert_eq!(verified.len(), 1);
        prop_assert_eq!(note.to_text(), msg);
        let reparsed = Verifier::from_vkey(&s.vkey()).expect("vkey");
        prop_assert_eq!(reparsed, s.verifier());
        prop_assert_eq!(Signer::from_skey(&s.skey()).expect("skey").vkey(), s.vkey());
    }

    #[test]
    fn prop_checkpoint_round_trip(cp in checkpoint_strategy()) {
        let text = cp.to_text().expect("text");
        prop_assert_eq!(Checkpoint::from_text(&text).expect("parse"), cp);
    }

    #[test]
    fn prop_cosignature_round_trip(cp in checkpoint_strategy(), time in 0..=MAX_COSIGNATURE_TIME, seed in any::<[u8; 32]>()) {
        let c = Cosigner::new("prop.example/witness", SigningKey::from_bytes(&seed)).expect("cosigner");
        let line = c.sign(&cp, time).expect("sign");
        let text = cp.to_text().expect("text");
        prop_assert_eq!(c.verifier().verify(&text, &line), Ok(time));
        let sig = NoteSignature::parse_line(&line).expect("line");
        prop_assert_eq!(cosignature_timestamp(&sig), Ok(time));
        prop_assert_eq!(sig.to_line(), line);
    }

    #[test]
    fn prop_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Note::parse(&bytes);
        let _ = open(&bytes, &[peter()]);
        let s = String::from_utf8_lossy(&bytes);
        let _ = Checkpoint::from_text(&s);
        let _ = NoteSignature::parse_line(&s);
        let _ = Verifier::from_vkey(&s);
        let _ = Signer::from_skey(&s);
        let _ = CosignatureVerifier::from_vkey(&s);
    }

    #[test]
    fn prop_random_suffix_after_valid_note_rejected_or_ignored(extra in "[^\\x00-\\x1f]{1,40}") {
        // Appending a non-signature line to a valid note must never verify.
        let msg = format!("{}{extra}\n", note_with(PETER_SIG));
        if let Ok((note, _)) = open(msg.as_bytes(), &[peter()]) {
            // Only possible if `extra` is itself a well-formed signature line.
            prop_assert_eq!(note.signatures.len(), 2);
        }
    }
}
