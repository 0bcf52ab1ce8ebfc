//! Tests for the sans-I/O watchtower: cosigning (c2sp.org/tlog-witness `add-checkpoint`), split
//! views, fork proofs from anyone, checkpoint gossip, the monitor, and restoring from the
//! changes a store would have kept.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use atomicity_witness::fork::{self, ForkError, ForkKind, ForkProof, Inclusion, LeafAt};
use atomicity_witness::leaf::Leaf;
use atomicity_witness::log::Log;
use atomicity_witness::merkle::{Hash, Tree, leaf_hash};
use atomicity_witness::note::{
    self, Checkpoint, Cosigner, Note, NoteSignature, Signer, Verifier, cosignature_timestamp,
};
use atomicity_witness::watchtower::{
    AddError, Change, Indictment, MAX_ADD_CHECKPOINT_BODY, MAX_CONSISTENCY_LINES,
    MAX_PROOFS_PER_LOG, Observed, Sighting, WatchError, Watchtower, canonical_vkey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ORIGIN: &str = "witness.example/log";
const OTHER_ORIGIN: &str = "other.example/log";
const URL: &str = "http://127.0.0.1:7430";
const DELTA: u64 = 60;
const T0: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The (honest or not) log's signer: one key, whatever trees it signs.
fn signer() -> Signer {
    Signer::new(ORIGIN, key(1)).unwrap()
}

fn vkey() -> String {
    signer().vkey()
}

fn log_verifier() -> Verifier {
    signer().verifier()
}

fn cosigner() -> Cosigner {
    Cosigner::new("tower.example", key(9)).unwrap()
}

fn new_tower() -> Watchtower {
    Watchtower::new(cosigner())
}

/// A tower watching the log of [`signer`], and the changes that pushed.
fn watched(url: Option<&str>) -> (Watchtower, Vec<Change>) {
    let mut t = new_tower();
    let mut out = Vec::new();
    t.watch(&vkey(), url.map(str::to_owned), &mut out).unwrap();
    (t, out)
}

fn secret(i: u64, salt: u8) -> [u8; 32] {
    let mut p = [salt; 32];
    p[..8].copy_from_slice(&i.to_be_bytes());
    p
}

fn tree_of(leaves: &[Leaf]) -> Tree {
    leaves.iter().map(Leaf::hash).collect()
}

fn bytes_of(leaves: &[Leaf]) -> Vec<Vec<u8>> {
    leaves.iter().map(Leaf::to_bytes).collect()
}

/// Leaves of a log that never existed honestly: valid-looking (non-decreasing blocks), all
/// different from the honest log's (its genesis time differs).
fn fake_leaves(n: u64, salt: u8) -> Vec<Leaf> {
    (0..n)
        .map(|k| {
            if k == 0 {
                Leaf::Block {
                    block: 0,
                    time: T0 + 1 + u64::from(salt),
                }
            } else {
                Leaf::Commit {
                    block: 0,
                    p: secret(k, salt),
                }
            }
        })
        .collect()
}

/// A checkpoint of `tree` at `size`, signed with the log's key.
fn signed(tree: &Tree, size: u64) -> String {
    fork::sign_checkpoint(&signer(), ORIGIN, tree, size).unwrap()
}

/// An honest log (crate::log::Log) and its clock.
struct Honest {
    log: Log,
    signer: Signer,
    now: u64,
    next: u64,
    salt: u8,
}

impl Honest {
    fn new() -> Self {
        Self::with(signer(), ORIGIN, 0xa5)
    }

    fn with(signer: Signer, origin: &str, salt: u8) -> Self {
        let log = Log::new(origin.to_owned(), signer.clone(), DELTA, T0).unwrap();
        Self {
            log,
            signer,
            now: T0,
            next: 0,
            salt,
        }
    }

    /// Submits `n` new secrets, 25 seconds apart (so blocks start every few), and returns the
    /// log's checkpoint.
    fn grow(&mut self, n: u64) -> String {
        for _ in 0..n {
            self.now += 25;
            let s = self.log.submit(secret(self.next, self.salt), self.now);
            assert!(s.new);
            self.next += 1;
        }
        self.log.checkpoint(self.now).unwrap()
    }

    fn size(&self) -> u64 {
        self.log.size()
    }

    fn vkey(&self) -> String {
        self.signer.vkey()
    }

    fn origin(&self) -> &str {
        self.log.origin()
    }

    fn tree(&self) -> Tree {
        tree_of(self.log.leaves())
    }

    /// The checkpoint the log signed (or would have signed) at an earlier size.
    fn note_at(&self, size: u64) -> String {
        fork::sign_checkpoint(&self.signer, self.log.origin(), &self.tree(), size).unwrap()
    }

    /// The consistency proof an add-checkpoint request carries from `old` to `new`.
    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 || old == new {
            Vec::new()
        } else {
            self.log.consistency_proof(old, new).unwrap()
        }
    }

    /// The encoded leaves `from..to`.
    fn leaves(&self, from: u64, to: u64) -> Vec<Vec<u8>> {
        bytes_of(&self.log.leaves()[from as usize..to as usize])
    }
}

/// An `add-checkpoint` request body.
fn body(old: u64, proof: &[Hash], note: &str) -> Vec<u8> {
    let mut s = format!("old {old}\n");
    for h in proof {
        s.push_str(&B64.encode(h));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(note);
    s.into_bytes()
}

/// The checkpoint text (body) of a signed note.
fn text_of(note: &str) -> String {
    Note::parse(note.as_bytes()).unwrap().text
}

fn size_of(note: &str) -> u64 {
    Checkpoint::from_text(&text_of(note)).unwrap().size
}

/// Checks a cosignature response of the tower: exactly one line, a cosignature that verifies
/// over the checkpoint with the tower's cosigner key, timestamped `now`.
fn check_cosignature(t: &Watchtower, note: &str, response: &str, now: u64) {
    assert!(response.ends_with('\n'), "{response:?}");
    assert_eq!(response.matches('\n').count(), 1, "{response:?}");
    let line = response;
    assert!(line.starts_with("\u{2014} tower.example "), "{line:?}");
    let text = text_of(note);
    assert_eq!(t.cosigner().verifier().verify(&text, line), Ok(now));
    let sig = NoteSignature::parse_line(line).unwrap();
    assert!(t.cosigner().verifier().matches(&sig));
    assert_eq!(cosignature_timestamp(&sig), Ok(now));
    // It signs this checkpoint, not another one.
    let other = Checkpoint {
        size: size_of(note) + 1,
        ..Checkpoint::from_text(&text).unwrap()
    };
    assert!(
        t.cosigner()
            .verifier()
            .verify(&other.to_text().unwrap(), line)
            .is_err()
    );
}

/// The timestamp of the tower's cosignature response (one line) over `text`.
fn cosignature_time(t: &Watchtower, text: &str, response: &str) -> Result<u64, note::NoteError> {
    if response.matches('\n').count() != 1 {
        return Err(note::NoteError::MalformedSignatureLine(
            "not exactly one line",
        ));
    }
    t.cosigner().verifier().verify(text, response)
}

fn count(out: &[Change], pred: impl Fn(&Change) -> bool) -> usize {
    out.iter().filter(|c| pred(c)).count()
}

fn cosigned_changes(out: &[Change]) -> usize {
    count(out, |c| matches!(c, Change::Cosigned { .. }))
}

fn indicted_changes(out: &[Change]) -> usize {
    count(out, |c| matches!(c, Change::Indicted { .. }))
}

/// No cosignature, indictment or monitor progress among the changes.
fn assert_no_progress(out: &[Change]) {
    assert_eq!(cosigned_changes(out), 0, "{out:?}");
    assert_eq!(indicted_changes(out), 0, "{out:?}");
    assert_eq!(
        count(out, |c| matches!(c, Change::Leaves { .. })),
        0,
        "{out:?}"
    );
}

fn cosigned_size(t: &Watchtower) -> u64 {
    t.logs()[ORIGIN].cosigned_size()
}

fn monitored_size(t: &Watchtower) -> u64 {
    t.logs()[ORIGIN].monitored_size()
}

fn indictments(t: &Watchtower) -> Vec<Indictment> {
    t.indictments_of(&vkey()).unwrap().to_vec()
}

/// A tower that cosigned an honest log at a few sizes; returns the tower, the log and the
/// last cosigned note.
fn cosigned_log(steps: &[u64]) -> (Watchtower, Honest, String) {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let mut old = 0;
    let mut note = String::new();
    for &n in steps {
        note = h.grow(n);
        let size = h.size();
        t.add_checkpoint(&body(old, &h.proof(old, size), &note), h.now, &mut out)
            .unwrap();
        old = size;
    }
    assert_eq!(cosigned_size(&t), h.size());
    (t, h, note)
}

/// Appends a signature line of an unknown key, `len` bytes long: anyone can do this to a
/// log's note, and verifiers ignore it.
fn with_junk_signature(note: &str, len: usize) -> String {
    let mut n = Note::parse(note.as_bytes()).unwrap();
    n.signatures.push(NoteSignature {
        name: "junk.example".to_owned(),
        key_id: 0x0102_0304,
        signature: vec![0x42; len],
    });
    n.to_text()
}

// ---------------------------------------------------------------------------------------------
// 1. Cosigning.

#[test]
fn cosigns_an_honest_log_as_it_grows() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(None);
    assert_eq!(
        out,
        vec![Change::Log {
            vkey: vkey(),
            url: None
        }]
    );
    assert_eq!(cosigned_size(&t), 0);

    // The first request: old 0 and an empty proof.
    let note = h.grow(3);
    let size = h.size();
    out.clear();
    let line = t
        .add_checkpoint(&body(0, &[], &note), h.now, &mut out)
        .unwrap();
    check_cosignature(&t, &note, &line, h.now);
    assert_eq!(
        out,
        vec![
            Change::Seen {
                origin: ORIGIN.to_owned(),
                size,
                note: note.clone()
            },
            Change::Cosigned {
                origin: ORIGIN.to_owned(),
                size,
                note: note.clone()
            }
        ]
    );
    assert_eq!(cosigned_size(&t), size);
    assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), 1);

    // Larger checkpoints with correct consistency proofs, and each one sent again.
    let mut old = size;
    for n in [1, 5, 0, 17, 2, 40] {
        let note = h.grow(n);
        let size = h.size();
        out.clear();
        let line = t
            .add_checkpoint(&body(old, &h.proof(old, size), &note), h.now, &mut out)
            .unwrap();
        check_cosignature(&t, &note, &line, h.now);
        assert_eq!(
            out.last(),
            Some(&Change::Cosigned {
                origin: ORIGIN.to_owned(),
                size,
                note: note.clone()
            })
        );
        assert_eq!(cosigned_changes(&out), 1);
        assert_eq!(cosigned_size(&t), size);
        old = size;

        // The same checkpoint again, with old == size and an empty proof: cosigned again,
        // at the new time; it is not seen for the first time.
        let later = h.now + 7;
        out.clear();
        let again = t
            .add_checkpoint(&body(size, &[], &note), later, &mut out)
            .unwrap();
        check_cosignature(&t, &note, &again, later);
        assert_eq!(
            out,
            vec![Change::Cosigned {
                origin: ORIGIN.to_owned(),
                size,
                note: note.clone()
            }]
        );
        assert_eq!(cosigned_size(&t), size);
    }

    // The log's checkpoint already carrying another witness's cosignature is accepted; the
    // extra line is ignored.
    let other = Cosigner::new("other-witness.example", key(8)).unwrap();
    let note = h.log.latest_checkpoint().unwrap();
    let mut with_other = Note::parse(note.as_bytes()).unwrap();
    with_other.signatures.push(
        other
            .sign_signature(&Checkpoint::from_text(&with_other.text).unwrap(), h.now)
            .unwrap(),
    );
    let with_other = with_other.to_text();
    out.clear();
    let line = t
        .add_checkpoint(&body(old, &[], &with_other), h.now, &mut out)
        .unwrap();
    check_cosignature(&t, &note, &line, h.now);
    assert_eq!(cosigned_changes(&out), 1);
    assert!(t.indictments().is_empty());
}

#[test]
fn a_first_request_may_start_at_any_size() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(None);
    let note = h.grow(30);
    let line = t
        .add_checkpoint(&body(0, &[], &note), h.now, &mut out)
        .unwrap();
    check_cosignature(&t, &note, &line, h.now);
    assert_eq!(cosigned_size(&t), h.size());
}

/// c2sp.org/tlog-witness: the 200 response body is the cosignature line(s), each ending in a
/// newline; `add_checkpoint` documents "the cosignature line (ending in a newline)".
#[test]
fn the_cosignature_response_is_exactly_one_line() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(None);
    let note = h.grow(3);
    let response = t
        .add_checkpoint(&body(0, &[], &note), h.now, &mut out)
        .unwrap();
    assert_eq!(response.matches('\n').count(), 1, "{response:?}");
    assert!(response.ends_with('\n'));
    // As a whole, it is one valid cosignature line over the checkpoint.
    assert_eq!(
        t.cosigner().verifier().verify(&text_of(&note), &response),
        Ok(h.now)
    );
    // Appended to the log's note, it gives a note a k-of-n policy accepts.
    let cosigned = format!("{note}{response}");
    let parsed = Note::parse(cosigned.as_bytes()).unwrap();
    let policy = note::CosignerPolicy {
        cosigners: vec![t.cosigner().verifier()],
        threshold: 1,
    };
    assert_eq!(
        policy.check(&parsed),
        Ok(vec![("tower.example".to_owned(), h.now)])
    );
}

/// Every malformed body: 400, and nothing changes at all.
#[test]
fn malformed_requests_are_400_and_change_nothing() {
    let (mut t, mut h, _) = cosigned_log(&[4, 6]);
    let old = h.size();
    let next = h.grow(5);
    let size = h.size();
    let proof = h.proof(old, size);
    let good = String::from_utf8(body(old, &proof, &next)).unwrap();
    let lines: String = proof
        .iter()
        .map(|p| format!("{}\n", B64.encode(p)))
        .collect();
    let hash_line = |bytes: &[u8]| format!("{}\n", B64.encode(bytes));
    let unpadded = B64.encode(proof[0]).trim_end_matches('=').to_owned();

    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("no old line", format!("\n{next}").into_bytes()),
        ("no newline at all", b"old 5".to_vec()),
        ("only the checkpoint", next.clone().into_bytes()),
        (
            "old 01",
            format!("old 0{old}\n{lines}\n{next}").into_bytes(),
        ),
        ("old 00", format!("old 00\n\n{next}").into_bytes()),
        ("old -1", format!("old -1\n\n{next}").into_bytes()),
        (
            "old +5",
            format!("old +{old}\n{lines}\n{next}").into_bytes(),
        ),
        ("old empty", format!("old \n\n{next}").into_bytes()),
        (
            "old hex",
            format!("old 0x{old:x}\n{lines}\n{next}").into_bytes(),
        ),
        (
            "old two spaces",
            format!("old  {old}\n{lines}\n{next}").into_bytes(),
        ),
        (
            "old trailing space",
            format!("old {old} \n{lines}\n{next}").into_bytes(),
        ),
        ("Old", format!("Old {old}\n{lines}\n{next}").into_bytes()),
        (
            "old overflow",
            format!("old 18446744073709551616\n\n{next}").into_bytes(),
        ),
        (
            "old CRLF",
            format!("old {old}\r\n{lines}\n{next}").into_bytes(),
        ),
        (
            "non-base64 proof line",
            format!("old {old}\nnot base64!\n{lines}\n{next}").into_bytes(),
        ),
        (
            "unpadded base64",
            format!("old {old}\n{unpadded}\n\n{next}").into_bytes(),
        ),
        (
            "31-byte hash",
            format!("old {old}\n{}\n{next}", hash_line(&[7; 31])).into_bytes(),
        ),
        (
            "33-byte hash",
            format!("old {old}\n{}\n{next}", hash_line(&[7; 33])).into_bytes(),
        ),
        (
            "64 proof lines",
            format!("old {old}\n{}\n{next}", hash_line(&[7; 32]).repeat(64)).into_bytes(),
        ),
        (
            "missing empty line",
            format!("old {old}\n{}", lines.trim_end()).into_bytes(),
        ),
        (
            "missing empty line before the note",
            format!("old {old}\n{lines}{next}").into_bytes(),
        ),
        ("not UTF-8", {
            let mut b = format!("old {old}\n{lines}\n").into_bytes();
            b.push(0xff);
            b.extend_from_slice(next.as_bytes());
            b
        }),
        (
            "malformed note",
            format!("old {old}\n{lines}\ngarbage\n").into_bytes(),
        ),
        ("no note", format!("old {old}\n{lines}\n").into_bytes()),
        (
            "note without signatures",
            format!("old {old}\n{lines}\n{}\n", text_of(&next)).into_bytes(),
        ),
        (
            "signed note that is not a checkpoint",
            format!(
                "old {old}\n{lines}\n{}",
                note::sign("hello\nworld\n", &[signer()]).unwrap()
            )
            .into_bytes(),
        ),
        ("too large", {
            let mut b = good.clone().into_bytes();
            b.resize(MAX_ADD_CHECKPOINT_BODY + 1, b'\n');
            b
        }),
    ];
    // A body just over the limit is refused before anything else, whatever it holds.
    bodies.push(("too large, all zero", vec![0; MAX_ADD_CHECKPOINT_BODY + 1]));

    let before = t.logs()[ORIGIN].checkpoints_seen();
    for (what, b) in &bodies {
        let mut out = Vec::new();
        let r = t.add_checkpoint(b, h.now, &mut out);
        assert!(matches!(r, Err(AddError::Malformed(_))), "{what}: {r:?}");
        assert_eq!(r.unwrap_err().status(), 400, "{what}");
        assert!(out.is_empty(), "{what}: {out:?}");
        assert_eq!(cosigned_size(&t), old, "{what}");
        assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), before, "{what}");
    }
    assert!(t.indictments().is_empty());

    // 63 proof lines is the most the parser takes: that request gets past parsing (and its
    // garbage proof is then refused as inconsistent).
    assert_eq!(MAX_CONSISTENCY_LINES, 63);
    let many = format!("old {old}\n{}\n{next}", hash_line(&[7; 32]).repeat(63));
    let mut out = Vec::new();
    let r = t.add_checkpoint(many.as_bytes(), h.now, &mut out);
    assert!(matches!(r, Err(AddError::Inconsistent(_))), "{r:?}");
    assert_eq!(cosigned_size(&t), old);

    // The well-formed request still succeeds afterwards.
    let mut out = Vec::new();
    t.add_checkpoint(good.as_bytes(), h.now, &mut out).unwrap();
    assert_eq!(cosigned_size(&t), size);
}

#[test]
fn unknown_origin_is_404() {
    let (mut t, h, _) = cosigned_log(&[3]);
    let mut stranger = Honest::with(Signer::new(OTHER_ORIGIN, key(1)).unwrap(), OTHER_ORIGIN, 1);
    let note = stranger.grow(2);
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(0, &[], &note), stranger.now, &mut out);
    assert_eq!(r, Err(AddError::UnknownOrigin(OTHER_ORIGIN.to_owned())));
    assert_eq!(r.unwrap_err().status(), 404);
    assert!(out.is_empty());
    assert_eq!(cosigned_size(&t), h.size());
    assert!(!t.logs().contains_key(OTHER_ORIGIN));
}

#[test]
fn checkpoints_not_signed_by_the_log_are_403() {
    let (mut t, mut h, _) = cosigned_log(&[3]);
    let old = h.size();
    let honest = h.grow(4);
    let size = h.size();
    let proof = h.proof(old, size);

    // Another key with the same origin name signs the very same checkpoint.
    let mallory = Signer::new(ORIGIN, key(2)).unwrap();
    let forged = note::sign(&text_of(&honest), std::slice::from_ref(&mallory)).unwrap();
    // The log's signature over a different root.
    let mut tampered = Note::parse(honest.as_bytes()).unwrap();
    let mut cp = Checkpoint::from_text(&tampered.text).unwrap();
    cp.root[0] ^= 1;
    tampered.text = cp.to_text().unwrap();
    let tampered = tampered.to_text();
    // A signature line with the log's name and key ID but a corrupted signature.
    let mut corrupted = Note::parse(honest.as_bytes()).unwrap();
    corrupted.signatures[0].signature[10] ^= 0x80;
    let corrupted = corrupted.to_text();

    for (what, n) in [
        ("other key", &forged),
        ("tampered", &tampered),
        ("corrupted", &corrupted),
    ] {
        let mut out = Vec::new();
        let r = t.add_checkpoint(&body(old, &proof, n), h.now, &mut out);
        assert!(matches!(r, Err(AddError::NotSigned(_))), "{what}: {r:?}");
        assert_eq!(r.unwrap_err().status(), 403);
        assert!(out.is_empty(), "{what}: {out:?}");
        assert_eq!(cosigned_size(&t), old);
        assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), 1);
    }
    // Both keys signing: the log's valid signature is enough.
    let both = note::sign(&text_of(&honest), &[mallory, signer()]).unwrap();
    let mut out = Vec::new();
    t.add_checkpoint(&body(old, &proof, &both), h.now, &mut out)
        .unwrap();
    assert_eq!(cosigned_size(&t), size);
    assert!(t.indictments().is_empty());
}

#[test]
fn old_larger_than_the_checkpoint_is_400() {
    let (mut t, mut h, _) = cosigned_log(&[3]);
    let old = h.size();
    let next = h.grow(2);
    let size = h.size();
    for bad_old in [size + 1, size + 100, u64::MAX] {
        let mut out = Vec::new();
        let r = t.add_checkpoint(&body(bad_old, &[], &next), h.now, &mut out);
        assert_eq!(r, Err(AddError::OldTooLarge { old: bad_old, size }));
        assert_eq!(r.unwrap_err().status(), 400);
        assert_no_progress(&out);
        assert_eq!(cosigned_size(&t), old);
    }
}

#[test]
fn old_other_than_the_last_cosigned_size_is_409() {
    let (mut t, mut h, _) = cosigned_log(&[3, 5]);
    let latest = h.size();
    let next = h.grow(6);
    let size = h.size();
    for bad_old in [0, 1, latest - 1, latest + 1, size] {
        let mut out = Vec::new();
        let r = t.add_checkpoint(
            &body(bad_old, &h.proof(bad_old, size), &next),
            h.now,
            &mut out,
        );
        assert_eq!(
            r,
            Err(AddError::WrongOldSize {
                old: bad_old,
                latest
            }),
            "old {bad_old}"
        );
        assert_eq!(r.unwrap_err().status(), 409);
        assert_no_progress(&out);
        assert_eq!(
            count(&out, |c| matches!(c, Change::Refused { .. })),
            0,
            "{out:?}"
        );
        assert_eq!(cosigned_size(&t), latest);
    }
    // An older checkpoint, even with its own size as old, is not cosigned.
    let older = h.note_at(latest - 2);
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(latest - 2, &[], &older), h.now, &mut out);
    assert_eq!(
        r,
        Err(AddError::WrongOldSize {
            old: latest - 2,
            latest
        })
    );
    assert_no_progress(&out);
    // The right old size works.
    let mut out = Vec::new();
    t.add_checkpoint(
        &body(latest, &h.proof(latest, size), &next),
        h.now,
        &mut out,
    )
    .unwrap();
    assert_eq!(cosigned_size(&t), size);
}

#[test]
fn wrong_consistency_proofs_are_422_and_kept_as_evidence() {
    let (mut t, mut h, _) = cosigned_log(&[5]);
    let old = h.size();
    let next = h.grow(9);
    let size = h.size();
    let good = h.proof(old, size);
    assert!(good.len() >= 2, "{good:?}");

    let mut flipped = good.clone();
    flipped[0][0] ^= 1;
    let mut swapped = good.clone();
    swapped.swap(0, 1);
    let mut extra = good.clone();
    extra.push([3; 32]);
    let mut proofs: Vec<(&str, u64, Vec<Hash>)> = vec![
        ("garbage", old, vec![[0xab; 32]; good.len()]),
        ("one bit flipped", old, flipped),
        ("swapped", old, swapped),
        ("truncated", old, good[..good.len() - 1].to_vec()),
        ("extra hash", old, extra),
        ("empty", old, Vec::new()),
        ("from another size", old, h.proof(old - 1, size)),
    ];
    // Resending the cosigned checkpoint with a non-empty proof.
    let cosigned_note = h.note_at(old);
    let mut cases: Vec<(&str, u64, Vec<Hash>, String)> = proofs
        .drain(..)
        .map(|(w, o, p)| (w, o, p, next.clone()))
        .collect();
    cases.push((
        "same size, non-empty proof",
        old,
        vec![[1; 32]],
        cosigned_note,
    ));

    for (what, o, proof, n) in &cases {
        let mut out = Vec::new();
        let now = h.now + 3;
        let r = t.add_checkpoint(&body(*o, proof, n), now, &mut out);
        assert!(matches!(r, Err(AddError::Inconsistent(_))), "{what}: {r:?}");
        assert_eq!(r.unwrap_err().status(), 422, "{what}");
        assert_no_progress(&out);
        let refused: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Change::Refused {
                    origin,
                    note,
                    time,
                    reason,
                } => Some((origin.clone(), note.clone(), *time, reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1, "{what}: {out:?}");
        assert_eq!(refused[0].0, ORIGIN);
        assert_eq!(&refused[0].1, n, "{what}");
        assert_eq!(refused[0].2, now);
        assert!(!refused[0].3.is_empty());
        assert_eq!(cosigned_size(&t), old, "{what}");
    }
    assert!(t.indictments().is_empty());

    // A non-empty proof with old 0 on the first request is refused too.
    let mut h2 = Honest::new();
    let (mut t2, _) = watched(None);
    let n = h2.grow(6);
    let mut out = Vec::new();
    let r = t2.add_checkpoint(&body(0, &[[1; 32]], &n), h2.now, &mut out);
    assert!(matches!(r, Err(AddError::Inconsistent(_))), "{r:?}");
    assert_eq!(r.unwrap_err().status(), 422);
    assert_eq!(count(&out, |c| matches!(c, Change::Refused { .. })), 1);
    assert_no_progress(&out);
    assert_eq!(t2.logs()[ORIGIN].cosigned_size(), 0);

    // The right proof is still accepted.
    let mut out = Vec::new();
    t.add_checkpoint(&body(old, &good, &next), h.now, &mut out)
        .unwrap();
    assert_eq!(cosigned_size(&t), size);
}

/// c2sp.org/tlog-witness: a log of size 0 may be cosigned; the next request then has old 0
/// and an empty proof (every tree extends the empty one).
#[test]
fn cosigns_again_after_an_empty_checkpoint() {
    let (mut t, _) = watched(None);
    let empty = signed(&Tree::new(), 0);
    let mut out = Vec::new();
    let line = t
        .add_checkpoint(&body(0, &[], &empty), T0, &mut out)
        .unwrap();
    check_cosignature(&t, &empty, &line, T0);
    assert_eq!(cosigned_size(&t), 0);
    let leaves = fake_leaves(5, 0);
    let five = signed(&tree_of(&leaves), 5);
    let mut out = Vec::new();
    let line = t
        .add_checkpoint(&body(0, &[], &five), T0 + 1, &mut out)
        .unwrap();
    check_cosignature(&t, &five, &line, T0 + 1);
    assert_eq!(cosigned_size(&t), 5);
    // From there on, proofs as usual.
    let mut more = leaves.clone();
    more.extend(fake_leaves(9, 0).into_iter().skip(5));
    let tree = tree_of(&more);
    let nine = signed(&tree, 9);
    let proof = tree.consistency_proof(5, 9).unwrap();
    t.add_checkpoint(&body(5, &proof, &nine), T0 + 2, &mut out)
        .unwrap();
    assert_eq!(cosigned_size(&t), 9);
    assert!(t.indictments().is_empty());
}

/// A size-0 checkpoint must carry the empty tree's root; any other root is refused (422) and
/// kept as evidence. A non-empty proof from old 0 is refused too. Two size-0 roots signed by
/// the log are a split view.
#[test]
fn an_empty_checkpoint_needs_the_empty_root() {
    let bogus = Checkpoint {
        origin: ORIGIN.to_owned(),
        size: 0,
        root: [7; 32],
        extensions: Vec::new(),
    };
    let bogus = note::sign(&bogus.to_text().unwrap(), &[signer()]).unwrap();
    let empty = signed(&Tree::new(), 0);

    let (mut t, _) = watched(None);
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(0, &[], &bogus), T0, &mut out);
    assert!(matches!(r, Err(AddError::Inconsistent(_))), "{r:?}");
    assert_eq!(r.unwrap_err().status(), 422);
    assert_no_progress(&out);
    assert_eq!(count(&out, |c| matches!(c, Change::Refused { .. })), 1);
    assert_eq!(cosigned_size(&t), 0);
    assert!(indictments(&t).is_empty());

    let (mut t, _) = watched(None);
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(0, &[[1; 32]], &empty), T0, &mut out);
    assert!(matches!(r, Err(AddError::Inconsistent(_))), "{r:?}");
    assert_no_progress(&out);
    assert_eq!(count(&out, |c| matches!(c, Change::Refused { .. })), 1);
    // The empty checkpoint was seen; the bogus one of the same size is a split view.
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(0, &[], &bogus), T0, &mut out);
    assert_eq!(r, Err(AddError::RootConflict(0)));
    assert_eq!(indicted_changes(&out), 1);
    assert_eq!(indictments(&t).len(), 1);
    assert_eq!(cosigned_size(&t), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Split view through cosigning.

#[test]
fn split_view_through_cosigning_indicts_the_log() {
    let (mut t, mut h, cosigned_note) = cosigned_log(&[4, 7]);
    let size = h.size();
    let fake = fake_leaves(size, 7);
    let fake_tree = tree_of(&fake);
    let fake_note = signed(&fake_tree, size);

    let now = h.now + 1;
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(size, &[], &fake_note), now, &mut out);
    assert_eq!(r, Err(AddError::RootConflict(size)));
    assert_eq!(r.unwrap_err().status(), 409);
    assert_eq!(cosigned_changes(&out), 0);
    assert_eq!(cosigned_size(&t), size);

    let held = indictments(&t);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, ForkKind::SplitView);
    assert_eq!(held[0].received, now);
    let proof = ForkProof::from_bytes(&held[0].proof).unwrap();
    assert_eq!(proof.verify(&log_verifier()), Ok(ForkKind::SplitView));
    assert_eq!(
        proof,
        ForkProof::SplitView {
            a: cosigned_note,
            b: fake_note.clone()
        }
    );
    assert_eq!(
        out,
        vec![Change::Indicted {
            vkey: vkey(),
            indictment: held[0].clone()
        }]
    );
    assert_eq!(t.indictments().len(), 1);
    assert_eq!(t.monitor_target(ORIGIN), None);

    // From now on nothing of this log is cosigned.
    let next = h.grow(3);
    let bigger = h.size();
    let fake_more = fake_leaves(bigger + 3, 7);
    let requests = [
        body(size, &h.proof(size, bigger), &next),
        body(size, &[], &h.note_at(size)),
        body(
            size,
            &tree_of(&fake_more)
                .consistency_proof(size, bigger + 3)
                .unwrap(),
            &signed(&tree_of(&fake_more), bigger + 3),
        ),
    ];
    for b in &requests {
        let mut out = Vec::new();
        let r = t.add_checkpoint(b, h.now, &mut out);
        assert_eq!(r, Err(AddError::Indicted));
        assert_eq!(r.unwrap_err().status(), 409);
        assert_eq!(cosigned_changes(&out), 0);
        assert_eq!(cosigned_size(&t), size);
    }
    // The conflicting checkpoint itself, again: still refused with 409, the same proof is
    // not kept twice.
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(size, &[], &fake_note), h.now, &mut out);
    assert_eq!(r.unwrap_err().status(), 409);
    assert_eq!(indicted_changes(&out), 0);
    assert_eq!(indictments(&t).len(), 1);
}

#[test]
fn split_view_at_a_size_seen_but_not_cosigned_is_caught() {
    let (mut t, mut h, _) = cosigned_log(&[4]);
    let old = h.size();
    let next = h.grow(6);
    let size = h.size();
    // The log sends a checkpoint of a tree that does not extend the cosigned one: refused
    // (422), but seen.
    let fake = fake_leaves(size, 3);
    let fake_note = signed(&tree_of(&fake), size);
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(old, &[[9; 32]; 3], &fake_note), h.now, &mut out);
    assert_eq!(r.unwrap_err().status(), 422);
    assert!(indictments(&t).is_empty());
    // Its honest checkpoint of that size is a split view of it.
    let mut out = Vec::new();
    let r = t.add_checkpoint(&body(old, &h.proof(old, size), &next), h.now, &mut out);
    assert_eq!(r, Err(AddError::RootConflict(size)));
    assert_eq!(indicted_changes(&out), 1);
    assert_eq!(indictments(&t)[0].kind, ForkKind::SplitView);
    assert_eq!(cosigned_size(&t), old);
}

/// A note larger than a fork proof can carry (fork::MAX_CHECKPOINT_NOTE_SIZE, 32 KiB) still
/// fits an add-checkpoint body (64 KiB) or a gossiped checkpoint. Anyone can make one by
/// appending an unknown signature line to the log's note, and the log itself by signing a long
/// extension line. Whether the tower strips, shortens or refuses such notes, one of them must
/// not keep a later split view at its size from being proven.
#[test]
fn an_oversized_note_does_not_hide_a_split_view() {
    let mut h = Honest::new();
    let note = h.grow(6);
    let size = h.size();
    let padded = with_junk_signature(&note, 30_000);
    let mut cp = Checkpoint::from_text(&text_of(&note)).unwrap();
    cp.extensions.push("x".repeat(40_000));
    let extended = note::sign(&cp.to_text().unwrap(), &[signer()]).unwrap();
    let fake_note = signed(&tree_of(&fake_leaves(size, 4)), size);

    for (what, big) in [("junk signature", &padded), ("long extension", &extended)] {
        assert!(big.len() > fork::MAX_CHECKPOINT_NOTE_SIZE);
        // Through gossip: the oversized note (kept or refused), then the plain one, then a
        // different root at that size.
        let (mut t, mut out) = watched(None);
        let _ = t.ingest_checkpoint(big, h.now, &mut out);
        let plain = t.ingest_checkpoint(&note, h.now, &mut out);
        assert!(
            matches!(plain, Ok(Sighting::New | Sighting::Known)),
            "{what}: {plain:?}"
        );
        assert_eq!(
            t.ingest_checkpoint(&fake_note, h.now, &mut out),
            Ok(Sighting::SplitView),
            "{what}"
        );
        assert_eq!(
            indictments(&t).len(),
            1,
            "{what}: SplitView sighting but no indictment"
        );

        // Through cosigning: the oversized note fits the request body.
        let (mut t, mut out) = watched(None);
        let b = body(0, &[], big);
        assert!(b.len() <= MAX_ADD_CHECKPOINT_BODY);
        let _ = t.add_checkpoint(&b, h.now, &mut out);
        let old = cosigned_size(&t);
        t.add_checkpoint(&body(old, &h.proof(old, size), &note), h.now, &mut out)
            .unwrap();
        let r = t.add_checkpoint(&body(size, &[], &fake_note), h.now, &mut out);
        assert_eq!(r, Err(AddError::RootConflict(size)), "{what}");
        assert_eq!(
            indictments(&t).len(),
            1,
            "{what}: RootConflict but no indictment"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Fork proofs from anyone.

/// Two diverging histories signed by the log's key, agreeing on `[0, d)`.
fn diverging(n: u64, d: u64) -> (Vec<Leaf>, Vec<Leaf>) {
    let a = fake_leaves(n, 1);
    let mut b = fake_leaves(n, 2);
    b[..d as usize].copy_from_slice(&a[..d as usize]);
    (a, b)
}

/// Leaves whose block numbers go down: leaf 4 is in block 0 after block 1 started at 2.
fn regressing_leaves() -> Vec<Leaf> {
    vec![
        Leaf::Block { block: 0, time: T0 },
        Leaf::Commit {
            block: 0,
            p: secret(1, 3),
        },
        Leaf::Block {
            block: 1,
            time: T0 + DELTA,
        },
        Leaf::Commit {
            block: 1,
            p: secret(2, 3),
        },
        Leaf::Commit {
            block: 0,
            p: secret(3, 3),
        },
        Leaf::Commit {
            block: 1,
            p: secret(4, 3),
        },
    ]
}

/// One proof of each kind against the log of [`signer`].
fn all_kinds() -> Vec<(ForkKind, ForkProof)> {
    let (la, lb) = diverging(12, 4);
    let (ta, tb) = (tree_of(&la), tree_of(&lb));
    let split = ForkProof::SplitView {
        a: signed(&ta, 10),
        b: signed(&tb, 10),
    };
    let rewrite = ForkProof::prefix_rewrite(&signed(&ta, 7), &ta, &signed(&tb, 12), &tb).unwrap();
    let conflict = ForkProof::conflicting_leaves(
        5,
        (&signed(&ta, 9), &ta, &la[5].to_bytes()),
        (&signed(&tb, 11), &tb, &lb[5].to_bytes()),
    )
    .unwrap();
    let lr = regressing_leaves();
    let tr = tree_of(&lr);
    let regression = ForkProof::find_block_regression(&signed(&tr, 6), &tr, &lr).unwrap();
    let ForkProof::BlockRegression { i, j, .. } = &regression else {
        panic!("wrong kind")
    };
    assert_eq!((i.index, j.index), (2, 4));
    vec![
        (ForkKind::SplitView, split),
        (ForkKind::PrefixRewrite, rewrite),
        (ForkKind::ConflictingLeaves, conflict),
        (ForkKind::BlockRegression, regression),
    ]
}

#[test]
fn every_kind_of_fork_proof_is_kept_once() {
    let (mut t, mut out) = watched(Some(URL));
    let mut expected = Vec::new();
    for (k, (kind, proof)) in (0u64..).zip(all_kinds()) {
        let bytes = proof.to_bytes().unwrap();
        let now = T0 + k;
        out.clear();
        assert_eq!(
            t.ingest_fork_proof(&vkey(), &bytes, now, &mut out),
            Ok((kind, true))
        );
        let indictment = Indictment {
            kind,
            proof: bytes.clone(),
            received: now,
        };
        assert_eq!(
            out,
            vec![Change::Indicted {
                vkey: vkey(),
                indictment: indictment.clone()
            }]
        );
        expected.push(indictment);
        // Again: known, nothing pushed.
        out.clear();
        assert_eq!(
            t.ingest_fork_proof(&vkey(), &bytes, now + 100, &mut out),
            Ok((kind, false))
        );
        assert!(out.is_empty());
        assert_eq!(indictments(&t), expected);
    }
    // A non-canonical spelling of the key finds the same indictments.
    assert_eq!(
        t.indictments_of(&format!("  {}\n", vkey())).unwrap(),
        expected.as_slice()
    );
    assert_eq!(canonical_vkey(&format!(" {}\n", vkey())), Ok(vkey()));
    assert_eq!(t.indictments().len(), 1);
    assert_eq!(t.indictments()[&vkey()], expected);

    // The watched log is indicted: no monitoring, no cosigning.
    assert_eq!(t.monitor_target(ORIGIN), None);
    let mut h = Honest::new();
    let note = h.grow(2);
    let mut out = Vec::new();
    assert_eq!(
        t.add_checkpoint(&body(0, &[], &note), h.now, &mut out),
        Err(AddError::Indicted)
    );
    assert_eq!(
        t.observe(&note, &h.leaves(0, h.size()), h.now, &mut out),
        Ok(Observed::Indicted(ForkKind::SplitView))
    );
    assert_eq!(monitored_size(&t), 0);
}

/// Anyone can make a key and fork it: proofs against keys the tower does not watch (or
/// another key for a watched origin) are refused and store nothing; once watched, the same
/// proof is kept.
#[test]
fn fork_proofs_against_unwatched_keys_are_refused() {
    let mut t = new_tower();
    let (kind, proof) = all_kinds().remove(2);
    let bytes = proof.to_bytes().unwrap();
    let mut out = Vec::new();
    assert_eq!(
        t.ingest_fork_proof(&vkey(), &bytes, T0, &mut out),
        Err(WatchError::UnknownOrigin(ORIGIN.to_owned()))
    );
    assert!(out.is_empty());
    assert!(t.indictments().is_empty());

    // Watching another key for the origin does not make this one watched.
    let mallory = Signer::new(ORIGIN, key(2)).unwrap();
    t.watch(&mallory.vkey(), None, &mut out).unwrap();
    out.clear();
    assert_eq!(
        t.ingest_fork_proof(&vkey(), &bytes, T0, &mut out),
        Err(WatchError::UnknownOrigin(ORIGIN.to_owned()))
    );
    assert!(out.is_empty());
    assert!(t.indictments().is_empty());

    // Watched: kept, and the log is indicted.
    let mut t = new_tower();
    t.watch(&vkey(), Some(URL.to_owned()), &mut out).unwrap();
    assert_eq!(
        t.ingest_fork_proof(&vkey(), &bytes, T0, &mut out),
        Ok((kind, true))
    );
    assert_eq!(t.monitor_target(ORIGIN), None);
    let mut h = Honest::new();
    let note = h.grow(2);
    assert_eq!(
        t.add_checkpoint(&body(0, &[], &note), h.now, &mut out),
        Err(AddError::Indicted)
    );
}

#[test]
fn bad_fork_proofs_are_rejected_and_change_nothing() {
    let (mut t, _) = watched(None);
    // Other watched logs: the same key under another origin, another key and origin.
    let renamed = Signer::new("renamed.example/log", key(1)).unwrap();
    let other_log = Signer::new(OTHER_ORIGIN, key(2)).unwrap();
    let mut ignored = Vec::new();
    t.watch(&renamed.vkey(), None, &mut ignored).unwrap();
    t.watch(&other_log.vkey(), None, &mut ignored).unwrap();
    for (kind, proof) in all_kinds() {
        let bytes = proof.to_bytes().unwrap();
        let mut out = Vec::new();
        // Truncated at every length, and with a trailing byte.
        for cut in 0..bytes.len() {
            let r = t.ingest_fork_proof(&vkey(), &bytes[..cut], T0, &mut out);
            assert!(
                matches!(r, Err(WatchError::ProofMalformed(_))),
                "{kind:?} {cut}: {r:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            t.ingest_fork_proof(&vkey(), &longer, T0, &mut out),
            Err(WatchError::ProofMalformed(ForkError::Malformed(
                "trailing bytes"
            )))
        );
        // A valid proof, checked against other watched keys.
        for other in [renamed.vkey(), other_log.vkey()] {
            let r = t.ingest_fork_proof(&other, &bytes, T0, &mut out);
            assert!(
                matches!(r, Err(WatchError::ProofRejected(_))),
                "{kind:?}: {r:?}"
            );
        }
        // A key that does not parse.
        for bad in [
            "",
            "nope",
            "witness.example/log+00000000+AAAA",
            &vkey()[1..],
        ] {
            let r = t.ingest_fork_proof(bad, &bytes, T0, &mut out);
            assert!(matches!(r, Err(WatchError::BadKey(_))), "{bad:?}: {r:?}");
        }
        assert!(out.is_empty(), "{out:?}");
    }
    let mut out = Vec::new();
    let garbage: [&[u8]; 5] = [b"", b"hello", b"ATFP", b"ATFP\x01\x09", &[0xff; 300]];
    for garbage in garbage {
        let r = t.ingest_fork_proof(&vkey(), garbage, T0, &mut out);
        assert!(matches!(r, Err(WatchError::ProofMalformed(_))), "{r:?}");
    }
    assert!(out.is_empty());
    assert!(t.indictments().is_empty());
    assert_eq!(indictments(&t), vec![]);
    assert!(matches!(
        t.indictments_of("nope"),
        Err(WatchError::BadKey(_))
    ));
}

#[test]
fn honest_evidence_never_indicts() {
    let mut h = Honest::new();
    h.grow(12);
    let n = h.size();
    let tree = h.tree();
    let leaves = h.log.leaves().to_vec();
    let v = log_verifier();
    let (a, b) = (h.note_at(n), h.log.checkpoint(h.now).unwrap());
    assert_eq!(a, b, "one size, one note");
    let (mut t, _) = watched(None);
    let mut out = Vec::new();
    let mut reject = |p: ForkProof| {
        let r = t.ingest_fork_proof(&vkey(), &p.to_bytes().unwrap(), h.now, &mut out);
        assert!(
            matches!(r, Err(WatchError::ProofRejected(_))),
            "{p:?}: {r:?}"
        );
    };
    // Two checkpoints of the same size of an honest log, and of different sizes.
    reject(ForkProof::SplitView {
        a: a.clone(),
        b: b.clone(),
    });
    reject(ForkProof::SplitView {
        a: h.note_at(n - 3),
        b: a.clone(),
    });
    // A consistent prefix: the builder finds nothing; hand-made ones fail.
    assert!(matches!(
        ForkProof::prefix_rewrite(&h.note_at(n - 4), &tree, &a, &tree),
        Err(ForkError::NotAFork(_))
    ));
    reject(ForkProof::PrefixRewrite {
        old: h.note_at(n - 4),
        new: a.clone(),
        index: 2,
        old_leaf_hash: tree.leaf_hash(2).unwrap(),
        old_proof: tree.inclusion_proof(2, n - 4).unwrap(),
        new_leaf_hash: tree.leaf_hash(2).unwrap(),
        new_proof: tree.inclusion_proof(2, n).unwrap(),
    });
    reject(ForkProof::PrefixRewrite {
        old: h.note_at(n - 4),
        new: a.clone(),
        index: 2,
        old_leaf_hash: tree.leaf_hash(2).unwrap(),
        old_proof: tree.inclusion_proof(2, n - 4).unwrap(),
        new_leaf_hash: tree.leaf_hash(3).unwrap(),
        new_proof: tree.inclusion_proof(2, n).unwrap(),
    });
    // The same leaf at one index of two honest checkpoints.
    let leaf2 = leaves[2].to_bytes();
    assert!(matches!(
        ForkProof::conflicting_leaves(2, (&h.note_at(n - 1), &tree, &leaf2), (&a, &tree, &leaf2)),
        Err(ForkError::NotAFork(_))
    ));
    reject(ForkProof::ConflictingLeaves {
        index: 2,
        a: Inclusion {
            checkpoint: h.note_at(n - 1),
            leaf: leaf2.clone(),
            proof: tree.inclusion_proof(2, n - 1).unwrap(),
        },
        b: Inclusion {
            checkpoint: a.clone(),
            leaf: leaves[3].to_bytes(),
            proof: tree.inclusion_proof(2, n).unwrap(),
        },
    });
    // Honest blocks never decrease.
    assert!(matches!(
        ForkProof::find_block_regression(&a, &tree, &leaves),
        Err(ForkError::NotAFork(_))
    ));
    let at = |k: u64| LeafAt {
        index: k,
        leaf: leaves[k as usize].to_bytes(),
        proof: tree.inclusion_proof(k, n).unwrap(),
    };
    let last = n - 1;
    for (i, j) in [(0, last), (1, 2), (last, 0)] {
        reject(ForkProof::BlockRegression {
            checkpoint: a.clone(),
            i: at(i),
            j: at(j),
        });
    }
    assert!(out.is_empty());
    assert!(t.indictments().is_empty());
    // The honest log's own proofs all still verify as non-forks.
    assert!(ForkProof::SplitView { a: a.clone(), b }.verify(&v).is_err());
}

#[test]
fn at_most_max_proofs_per_log_are_kept() {
    let (la, lb) = diverging(40, 0);
    let (ta, tb) = (tree_of(&la), tree_of(&lb));
    let (mut t, _) = watched(None);
    let mut out = Vec::new();
    let proofs: Vec<Vec<u8>> = (1..=MAX_PROOFS_PER_LOG as u64 + 4)
        .map(|size| {
            ForkProof::SplitView {
                a: signed(&ta, size),
                b: signed(&tb, size),
            }
            .to_bytes()
            .unwrap()
        })
        .collect();
    for (k, p) in proofs.iter().enumerate() {
        let r = t.ingest_fork_proof(&vkey(), p, T0, &mut out).unwrap();
        assert_eq!(r, (ForkKind::SplitView, k < MAX_PROOFS_PER_LOG), "{k}");
    }
    assert_eq!(indicted_changes(&out), MAX_PROOFS_PER_LOG);
    assert_eq!(indictments(&t).len(), MAX_PROOFS_PER_LOG);
    let kept: Vec<Vec<u8>> = indictments(&t).into_iter().map(|i| i.proof).collect();
    assert_eq!(kept, proofs[..MAX_PROOFS_PER_LOG]);
    // Another watched log has its own allowance.
    let other_log = Signer::new(OTHER_ORIGIN, key(2)).unwrap();
    t.watch(&other_log.vkey(), None, &mut out).unwrap();
    let p = ForkProof::SplitView {
        a: fork::sign_checkpoint(&other_log, OTHER_ORIGIN, &ta, 3).unwrap(),
        b: fork::sign_checkpoint(&other_log, OTHER_ORIGIN, &tb, 3).unwrap(),
    };
    assert_eq!(
        t.ingest_fork_proof(&other_log.vkey(), &p.to_bytes().unwrap(), T0, &mut out),
        Ok((ForkKind::SplitView, true))
    );
    assert_eq!(t.indictments().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Checkpoints from anyone.

#[test]
fn ingested_checkpoints_are_compared_per_size() {
    let mut h = Honest::new();
    let note = h.grow(5);
    let size = h.size();
    let (mut t, mut out) = watched(None);
    out.clear();
    assert_eq!(
        t.ingest_checkpoint(&note, h.now, &mut out),
        Ok(Sighting::New)
    );
    assert_eq!(
        out,
        vec![Change::Seen {
            origin: ORIGIN.to_owned(),
            size,
            note: note.clone()
        }]
    );
    out.clear();
    assert_eq!(
        t.ingest_checkpoint(&note, h.now, &mut out),
        Ok(Sighting::Known)
    );
    // The same checkpoint with an extra signature line is the same checkpoint.
    assert_eq!(
        t.ingest_checkpoint(&with_junk_signature(&note, 64), h.now, &mut out),
        Ok(Sighting::Known)
    );
    assert!(out.is_empty());
    // Another size is new.
    assert_eq!(
        t.ingest_checkpoint(&h.note_at(size - 1), h.now, &mut out),
        Ok(Sighting::New)
    );
    assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), 2);
    assert!(indictments(&t).is_empty());

    // A different root at a known size.
    let fake = signed(&tree_of(&fake_leaves(size, 5)), size);
    out.clear();
    assert_eq!(
        t.ingest_checkpoint(&fake, h.now + 1, &mut out),
        Ok(Sighting::SplitView)
    );
    let held = indictments(&t);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, ForkKind::SplitView);
    assert_eq!(
        ForkProof::from_bytes(&held[0].proof)
            .unwrap()
            .verify(&log_verifier()),
        Ok(ForkKind::SplitView)
    );
    assert_eq!(
        out,
        vec![Change::Indicted {
            vkey: vkey(),
            indictment: held[0].clone()
        }]
    );
    assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), 2);
    // Again: still a split view, not kept twice.
    out.clear();
    assert_eq!(
        t.ingest_checkpoint(&fake, h.now + 2, &mut out),
        Ok(Sighting::SplitView)
    );
    assert!(out.is_empty());
    assert_eq!(indictments(&t).len(), 1);
}

#[test]
fn ingested_checkpoints_must_be_signed_by_a_watched_log() {
    let (mut t, _) = watched(None);
    let mut out = Vec::new();
    let mut stranger = Honest::with(Signer::new(OTHER_ORIGIN, key(1)).unwrap(), OTHER_ORIGIN, 1);
    let note = stranger.grow(2);
    assert_eq!(
        t.ingest_checkpoint(&note, T0, &mut out),
        Err(WatchError::UnknownOrigin(OTHER_ORIGIN.to_owned()))
    );
    let mut h = Honest::new();
    let honest = h.grow(3);
    let forged = note::sign(&text_of(&honest), &[Signer::new(ORIGIN, key(2)).unwrap()]).unwrap();
    assert!(matches!(
        t.ingest_checkpoint(&forged, T0, &mut out),
        Err(WatchError::NotSigned(_))
    ));
    let mut tampered = Note::parse(honest.as_bytes()).unwrap();
    let mut cp = Checkpoint::from_text(&tampered.text).unwrap();
    cp.size += 1;
    tampered.text = cp.to_text().unwrap();
    assert!(matches!(
        t.ingest_checkpoint(&tampered.to_text(), T0, &mut out),
        Err(WatchError::NotSigned(_))
    ));
    for bad in [
        String::new(),
        "garbage".to_owned(),
        format!("{}\n", text_of(&honest)),
        note::sign("hello\n", &[signer()]).unwrap(),
        honest.replace(ORIGIN, ""),
    ] {
        let r = t.ingest_checkpoint(&bad, T0, &mut out);
        assert!(matches!(r, Err(WatchError::Malformed(_))), "{bad:?}: {r:?}");
    }
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(t.logs()[ORIGIN].checkpoints_seen(), 0);
    assert!(t.indictments().is_empty());
}

#[test]
fn watch_keys_and_urls() {
    let mut t = new_tower();
    let mut out = Vec::new();
    assert!(matches!(
        t.watch("nope", None, &mut out),
        Err(WatchError::BadKey(_))
    ));
    t.watch(&format!(" {}\n", vkey()), None, &mut out).unwrap();
    assert_eq!(
        out,
        vec![Change::Log {
            vkey: vkey(),
            url: None
        }]
    );
    assert_eq!(t.monitor_target(ORIGIN), None);
    assert_eq!(t.logs()[ORIGIN].url(), None);
    assert_eq!(t.logs()[ORIGIN].verifier(), &log_verifier());
    // Watching again without a URL changes nothing.
    out.clear();
    t.watch(&vkey(), None, &mut out).unwrap();
    assert!(out.is_empty());
    // A URL makes it monitored.
    t.watch(&vkey(), Some(URL.to_owned()), &mut out).unwrap();
    assert_eq!(
        out,
        vec![Change::Log {
            vkey: vkey(),
            url: Some(URL.to_owned())
        }]
    );
    assert_eq!(t.monitor_target(ORIGIN), Some((URL.to_owned(), 0)));
    out.clear();
    t.watch(&vkey(), Some(URL.to_owned()), &mut out).unwrap();
    t.watch(&vkey(), None, &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(t.logs()[ORIGIN].url(), Some(URL));
    // One key per origin.
    let mallory = Signer::new(ORIGIN, key(2)).unwrap();
    assert!(matches!(
        t.watch(&mallory.vkey(), None, &mut out),
        Err(WatchError::BadKey(_))
    ));
    assert!(out.is_empty());
    assert_eq!(t.logs()[ORIGIN].verifier(), &log_verifier());
    assert_eq!(t.monitor_target("unknown"), None);
}

// ---------------------------------------------------------------------------------------------
// 5. The monitor.

/// One monitor round against an honest log: what `monitor_target` asks for, then observe.
fn monitor_round(t: &mut Watchtower, h: &Honest, note: &str, out: &mut Vec<Change>) -> Observed {
    let (url, from) = t.monitor_target(h.origin()).unwrap();
    assert_eq!(url, URL);
    let size = size_of(note);
    let leaves = if size > from {
        h.leaves(from, size)
    } else {
        Vec::new()
    };
    t.observe(note, &leaves, h.now, out).unwrap()
}

#[test]
fn monitor_follows_an_honest_log() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    assert_eq!(t.monitor_target(ORIGIN), Some((URL.to_owned(), 0)));
    let mut sizes = Vec::new();
    for round in 0..6 {
        let note = h.grow(round * 3);
        let size = h.size();
        let from = monitored_size(&t);
        out.clear();
        assert_eq!(
            monitor_round(&mut t, &h, &note, &mut out),
            Observed::Extended { size }
        );
        let leaves_change = Change::Leaves {
            origin: ORIGIN.to_owned(),
            start: from,
            leaves: h.leaves(from, size),
            note: note.clone(),
        };
        assert!(out.contains(&leaves_change), "{out:?}");
        assert_eq!(monitored_size(&t), size);
        assert_eq!(t.monitor_target(ORIGIN), Some((URL.to_owned(), size)));
        sizes.push(size);
    }
    // The same checkpoint again: extended by nothing.
    let note = h.log.latest_checkpoint().unwrap();
    out.clear();
    assert_eq!(
        t.observe(&note, &[], h.now, &mut out),
        Ok(Observed::Extended { size: h.size() })
    );
    // Older honest checkpoints.
    for size in [1, sizes[2], h.size() - 1] {
        out.clear();
        assert_eq!(
            t.observe(&h.note_at(size), &[], h.now, &mut out),
            Ok(Observed::Older),
            "{size}"
        );
        assert_no_progress(&out);
    }
    assert_eq!(monitored_size(&t), h.size());
    assert!(t.indictments().is_empty());
    // Cosigning and monitoring agree.
    let size = h.size();
    t.add_checkpoint(&body(0, &[], &note), h.now, &mut out)
        .unwrap();
    assert_eq!(cosigned_size(&t), size);
}

#[test]
fn wrong_leaves_are_not_evidence() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let note = h.grow(8);
    monitor_round(&mut t, &h, &note, &mut out);
    let have = h.size();
    let note = h.grow(6);
    let size = h.size();
    let mut wrong = h.leaves(have, size);
    let last = wrong.len() - 1;
    wrong[last][5] ^= 1;

    out.clear();
    assert_eq!(
        t.observe(&note, &wrong, h.now, &mut out),
        Ok(Observed::Diverged { size })
    );
    assert_no_progress(&out);
    assert_eq!(monitored_size(&t), have);
    assert_eq!(t.monitor_target(ORIGIN), Some((URL.to_owned(), have)));

    // All leaves, with the same wrong ones.
    let mut all_wrong = h.leaves(0, have);
    all_wrong.extend(wrong.iter().cloned());
    out.clear();
    assert_eq!(
        t.observe_full(&note, &all_wrong, h.now, &mut out),
        Err(WatchError::LeavesMismatch(size))
    );
    // All the right leaves: the prefix agrees, nothing to prove (and nothing kept either).
    assert_eq!(
        t.observe_full(&note, &h.leaves(0, size), h.now, &mut out),
        Err(WatchError::LeavesMismatch(size))
    );
    assert_no_progress(&out);
    assert!(indictments(&t).is_empty());
    assert_eq!(monitored_size(&t), have);

    // The monitor's tree was not damaged: the right leaves extend it.
    out.clear();
    assert_eq!(
        monitor_round(&mut t, &h, &note, &mut out),
        Observed::Extended { size }
    );
    assert_eq!(monitored_size(&t), size);
    assert!(t.indictments().is_empty());
}

/// The honest log's leaves up to its size with one commit rewritten, then `extra` more
/// commits.
fn rewritten(h: &Honest, upto: u64, extra: u64) -> (Vec<Leaf>, u64) {
    let mut l = h.log.leaves()[..upto as usize].to_vec();
    let k = (2..upto as usize)
        .find(|&k| matches!(l[k], Leaf::Commit { .. }))
        .unwrap();
    l[k] = Leaf::Commit {
        block: l[k].block(),
        p: [0xee; 32],
    };
    let block = l.last().unwrap().block();
    for i in 0..extra {
        l.push(Leaf::Commit {
            block,
            p: secret(5000 + i, 0xee),
        });
    }
    (l, k as u64)
}

fn check_stored_proof(t: &Watchtower, kind: ForkKind) -> ForkProof {
    let held = indictments(t);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, kind);
    let proof = ForkProof::from_bytes(&held[0].proof).unwrap();
    assert_eq!(proof.verify(&log_verifier()), Ok(kind));
    proof
}

#[test]
fn monitor_proves_a_rewritten_bigger_tree() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let note = h.grow(10);
    monitor_round(&mut t, &h, &note, &mut out);
    let have = h.size();
    let (l, k) = rewritten(&h, have, 5);
    let tree = tree_of(&l);
    let size = have + 5;
    let bigger = signed(&tree, size);
    let all = bytes_of(&l);

    out.clear();
    assert_eq!(
        t.observe(&bigger, &all[have as usize..], h.now, &mut out),
        Ok(Observed::Diverged { size })
    );
    assert_no_progress(&out);
    assert_eq!(monitored_size(&t), have);
    assert!(indictments(&t).is_empty());

    out.clear();
    assert_eq!(
        t.observe_full(&bigger, &all, h.now + 1, &mut out),
        Ok(Observed::Indicted(ForkKind::PrefixRewrite))
    );
    let proof = check_stored_proof(&t, ForkKind::PrefixRewrite);
    let ForkProof::PrefixRewrite {
        old, new, index, ..
    } = &proof
    else {
        panic!("wrong kind")
    };
    assert_eq!((old, new, *index), (&note, &bigger, k));
    assert_eq!(indicted_changes(&out), 1);
    assert_eq!(indictments(&t)[0].received, h.now + 1);
    assert_eq!(t.monitor_target(ORIGIN), None);
    // Once indicted, observing reports it and follows nothing more.
    let next = h.grow(2);
    assert_eq!(
        t.observe(&next, &h.leaves(have, h.size()), h.now, &mut out),
        Ok(Observed::Indicted(ForkKind::PrefixRewrite))
    );
    assert_eq!(
        t.observe_full(&next, &h.leaves(0, h.size()), h.now, &mut out),
        Ok(Observed::Indicted(ForkKind::PrefixRewrite))
    );
    assert_eq!(monitored_size(&t), have);
    assert_eq!(
        t.add_checkpoint(&body(0, &[], &next), h.now, &mut out),
        Err(AddError::Indicted)
    );
}

#[test]
fn monitor_proves_a_rewritten_smaller_tree() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let note = h.grow(3);
    monitor_round(&mut t, &h, &note, &mut out);
    let small = h.size();
    let note = h.grow(12);
    monitor_round(&mut t, &h, &note, &mut out);
    let have = h.size();
    // A size between the two the monitor saw, whose tree differs from the followed one.
    let m = small + 5;
    assert!(m < have);
    let (l, k) = rewritten(&h, m, 0);
    assert!(k < m);
    let smaller = signed(&tree_of(&l), m);

    out.clear();
    assert_eq!(
        t.observe(&smaller, &[], h.now, &mut out),
        Ok(Observed::Diverged { size: m })
    );
    assert_no_progress(&out);
    // Wrong leaves for it are not evidence.
    let mut wrong = bytes_of(&l);
    wrong[0][3] ^= 1;
    assert_eq!(
        t.observe_full(&smaller, &wrong, h.now, &mut out),
        Err(WatchError::LeavesMismatch(m))
    );
    assert!(indictments(&t).is_empty());
    out.clear();
    assert_eq!(
        t.observe_full(&smaller, &bytes_of(&l), h.now, &mut out),
        Ok(Observed::Indicted(ForkKind::PrefixRewrite))
    );
    let proof = check_stored_proof(&t, ForkKind::PrefixRewrite);
    let ForkProof::PrefixRewrite {
        old, new, index, ..
    } = &proof
    else {
        panic!("wrong kind")
    };
    assert_eq!((old, new, *index), (&smaller, &note, k));
    assert_eq!(monitored_size(&t), have);
    assert_eq!(t.monitor_target(ORIGIN), None);
}

#[test]
fn monitor_catches_a_split_view() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let note = h.grow(7);
    monitor_round(&mut t, &h, &note, &mut out);
    let size = h.size();
    let fake = signed(&tree_of(&fake_leaves(size, 6)), size);
    out.clear();
    assert_eq!(
        t.observe(&fake, &[], h.now, &mut out),
        Ok(Observed::Indicted(ForkKind::SplitView))
    );
    assert_eq!(indicted_changes(&out), 1);
    check_stored_proof(&t, ForkKind::SplitView);
    assert_eq!(monitored_size(&t), size);
    assert_eq!(t.monitor_target(ORIGIN), None);
}

#[test]
fn monitor_catches_a_block_regression() {
    let lr = regressing_leaves();
    let tree = tree_of(&lr);
    let all = bytes_of(&lr);

    // Across two rounds: leaf 4 (block 0) after leaf 2 (block 1).
    let (mut t, mut out) = watched(Some(URL));
    assert_eq!(
        t.observe(&signed(&tree, 4), &all[..4], T0, &mut out),
        Ok(Observed::Extended { size: 4 })
    );
    assert!(t.indictments().is_empty());
    out.clear();
    let note = signed(&tree, 6);
    assert_eq!(
        t.observe(&note, &all[4..], T0 + 1, &mut out),
        Ok(Observed::Indicted(ForkKind::BlockRegression))
    );
    // The leaves were verified and kept, then the log indicted.
    assert!(out.contains(&Change::Leaves {
        origin: ORIGIN.to_owned(),
        start: 4,
        leaves: all[4..].to_vec(),
        note: note.clone(),
    }));
    assert_eq!(indicted_changes(&out), 1);
    let proof = check_stored_proof(&t, ForkKind::BlockRegression);
    let ForkProof::BlockRegression { checkpoint, i, j } = &proof else {
        panic!("wrong kind")
    };
    assert_eq!((checkpoint, i.index, j.index), (&note, 2, 4));
    assert_eq!(t.monitor_target(ORIGIN), None);
    assert_eq!(
        t.add_checkpoint(&body(0, &[], &note), T0, &mut out),
        Err(AddError::Indicted)
    );

    // All in the first round.
    let (mut t, mut out) = watched(Some(URL));
    assert_eq!(
        t.observe(&signed(&tree, 6), &all, T0, &mut out),
        Ok(Observed::Indicted(ForkKind::BlockRegression))
    );
    let proof = check_stored_proof(&t, ForkKind::BlockRegression);
    let ForkProof::BlockRegression { i, j, .. } = &proof else {
        panic!("wrong kind")
    };
    assert_eq!((i.index, j.index), (2, 4));

    // Equal block numbers are fine; a regression after a plateau points at the earliest leaf
    // of the highest block.
    let mut plateau = vec![
        Leaf::Block { block: 0, time: T0 },
        Leaf::Block {
            block: 1,
            time: T0 + 1,
        },
        Leaf::Commit {
            block: 1,
            p: secret(1, 1),
        },
        Leaf::Commit {
            block: 1,
            p: secret(2, 1),
        },
    ];
    let (mut t, mut out) = watched(Some(URL));
    let tp = tree_of(&plateau);
    assert_eq!(
        t.observe(&signed(&tp, 4), &bytes_of(&plateau), T0, &mut out),
        Ok(Observed::Extended { size: 4 })
    );
    plateau.push(Leaf::Block { block: 0, time: T0 });
    let tp = tree_of(&plateau);
    assert_eq!(
        t.observe(&signed(&tp, 5), &bytes_of(&plateau[4..]), T0, &mut out),
        Ok(Observed::Indicted(ForkKind::BlockRegression))
    );
    let proof = check_stored_proof(&t, ForkKind::BlockRegression);
    let ForkProof::BlockRegression { i, j, .. } = &proof else {
        panic!("wrong kind")
    };
    assert_eq!((i.index, j.index), (1, 4));
}

#[test]
fn monitor_checks_leaf_counts_and_leaf_encodings() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(Some(URL));
    let note = h.grow(5);
    monitor_round(&mut t, &h, &note, &mut out);
    let have = h.size();
    let note = h.grow(4);
    let size = h.size();
    let leaves = h.leaves(have, size);
    out.clear();
    for got in [0, leaves.len() - 1, leaves.len() + 1] {
        let mut given = leaves.clone();
        given.resize(got, vec![1]);
        assert_eq!(
            t.observe(&note, &given, h.now, &mut out),
            Err(WatchError::LeafCount {
                expected: size - have,
                got: got as u64
            })
        );
    }
    for got in [0, size - 1, size + 1] {
        let mut given = h.leaves(0, size);
        given.resize(got as usize, vec![1]);
        assert_eq!(
            t.observe_full(&note, &given, h.now, &mut out),
            Err(WatchError::LeafCount {
                expected: size,
                got
            })
        );
    }
    assert_no_progress(&out);
    assert_eq!(monitored_size(&t), have);

    // The log commits to something that is not a leaf: it matches the root but does not
    // parse. Not followed, not evidence.
    let mut junk = h.leaves(0, size);
    junk.push(b"\x03junk".to_vec());
    junk.push(vec![0x01; 40]);
    let tree: Tree = junk.iter().map(|d| leaf_hash(d)).collect();
    let junk_note = signed(&tree, size + 2);
    out.clear();
    assert_eq!(
        t.observe(&junk_note, &junk[have as usize..], h.now, &mut out),
        Err(WatchError::BadLeaf(size))
    );
    assert_no_progress(&out);
    assert_eq!(monitored_size(&t), have);
    assert!(t.indictments().is_empty());
    // The monitor still follows the log afterwards.
    assert_eq!(
        monitor_round(&mut t, &h, &note, &mut out),
        Observed::Extended { size }
    );
}

#[test]
fn monitor_rejects_unsigned_and_unknown_checkpoints() {
    let mut h = Honest::new();
    let (mut t, _) = watched(Some(URL));
    let mut out = Vec::new();
    let note = h.grow(3);
    let leaves = h.leaves(0, h.size());
    let forged = note::sign(&text_of(&note), &[Signer::new(ORIGIN, key(2)).unwrap()]).unwrap();
    assert!(matches!(
        t.observe(&forged, &leaves, h.now, &mut out),
        Err(WatchError::NotSigned(_))
    ));
    assert!(matches!(
        t.observe_full(&forged, &leaves, h.now, &mut out),
        Err(WatchError::NotSigned(_))
    ));
    assert!(matches!(
        t.observe("garbage", &leaves, h.now, &mut out),
        Err(WatchError::Malformed(_))
    ));
    let mut stranger = Honest::with(Signer::new(OTHER_ORIGIN, key(1)).unwrap(), OTHER_ORIGIN, 1);
    let other = stranger.grow(1);
    assert_eq!(
        t.observe(
            &other,
            &stranger.leaves(0, stranger.size()),
            h.now,
            &mut out
        ),
        Err(WatchError::UnknownOrigin(OTHER_ORIGIN.to_owned()))
    );
    assert!(out.is_empty());
    assert_eq!(monitored_size(&t), 0);
    // Before anything is followed, observe_full has nothing to compare with.
    assert_eq!(
        t.observe_full(&note, &leaves, h.now, &mut out),
        Err(WatchError::LeavesMismatch(h.size()))
    );
}

/// A split view the monitor is shown in a note larger than a fork proof can carry must not
/// panic the tower (observe debug-asserts that a SplitView sighting left the log indicted),
/// nor leave a split view sighted but unproven: the tower either indicts (it can drop the
/// unknown signature line) or refuses the note.
#[test]
fn monitor_split_view_in_an_oversized_note_indicts() {
    let mut h = Honest::new();
    let note = h.grow(7);
    let size = h.size();
    let fake = signed(&tree_of(&fake_leaves(size, 6)), size);
    let padded = with_junk_signature(&fake, 30_000);
    let mut cp = Checkpoint::from_text(&text_of(&fake)).unwrap();
    cp.extensions.push("x".repeat(40_000));
    let extended = note::sign(&cp.to_text().unwrap(), &[signer()]).unwrap();
    for (what, big) in [("junk signature", &padded), ("long extension", &extended)] {
        let (mut t, mut out) = watched(Some(URL));
        monitor_round(&mut t, &h, &note, &mut out);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.observe(big, &[], h.now, &mut out)
        }));
        let Ok(r) = r else {
            panic!("{what}: observe panicked");
        };
        match r {
            Ok(Observed::Indicted(ForkKind::SplitView)) => {
                check_stored_proof(&t, ForkKind::SplitView);
            }
            Err(WatchError::Malformed(_)) => assert!(t.indictments().is_empty()),
            other => panic!("{what}: {other:?}"),
        }
        // The plain split view is proven in any case.
        assert_eq!(
            t.observe(&fake, &[], h.now, &mut out),
            Ok(Observed::Indicted(ForkKind::SplitView)),
            "{what}"
        );
        assert_eq!(indictments(&t).len(), 1, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Restore.

/// What a store keeps from the changes, grouped per log.
#[derive(Debug, Default)]
struct StoredLog {
    vkey: String,
    url: Option<String>,
    cosigned: Option<String>,
    seen: Vec<String>,
    leaves: Vec<Vec<u8>>,
    leaves_note: Option<String>,
}

#[derive(Debug, Default)]
struct Store {
    logs: BTreeMap<String, StoredLog>,
    indictments: Vec<(String, Indictment)>,
    refused: usize,
}

impl Store {
    fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Log { vkey, url } => {
                    let origin = Verifier::from_vkey(vkey).unwrap().name().to_owned();
                    let log = self.logs.entry(origin).or_default();
                    log.vkey.clone_from(vkey);
                    log.url.clone_from(url);
                }
                Change::Cosigned { origin, note, .. } => {
                    self.logs.get_mut(origin).unwrap().cosigned = Some(note.clone());
                }
                Change::Seen { origin, note, .. } => {
                    self.logs.get_mut(origin).unwrap().seen.push(note.clone());
                }
                Change::Refused { .. } => self.refused += 1,
                Change::Leaves {
                    origin,
                    start,
                    leaves,
                    note,
                } => {
                    let log = self.logs.get_mut(origin).unwrap();
                    assert_eq!(*start, log.leaves.len() as u64);
                    log.leaves.extend(leaves.iter().cloned());
                    log.leaves_note = Some(note.clone());
                }
                Change::Indicted { vkey, indictment } => {
                    self.indictments.push((vkey.clone(), indictment.clone()));
                }
            }
        }
    }

    fn restore(&self) -> Watchtower {
        let mut t = new_tower();
        for log in self.logs.values() {
            t.restore_log(
                &log.vkey,
                log.url.clone(),
                log.cosigned.as_deref(),
                &log.seen,
                &log.leaves,
                log.leaves_note.as_deref(),
            )
            .unwrap();
        }
        for (vkey, i) in &self.indictments {
            t.restore_indictment(vkey, i.clone());
        }
        t
    }
}

/// The observable state of one watched log: key, URL, cosigned size, monitored size,
/// checkpoints seen, monitor target.
type LogSummary = (
    String,
    Option<String>,
    u64,
    u64,
    usize,
    Option<(String, u64)>,
);

/// The observable state of a tower, per log.
fn summary(t: &Watchtower) -> Vec<LogSummary> {
    t.logs()
        .iter()
        .map(|(origin, log)| {
            (
                log.verifier().vkey(),
                log.url().map(str::to_owned),
                log.cosigned_size(),
                log.monitored_size(),
                log.checkpoints_seen(),
                t.monitor_target(origin),
            )
        })
        .collect()
}

#[test]
fn restoring_the_changes_gives_the_same_tower() {
    let mut store = Store::default();
    let mut t = new_tower();
    let mut out = Vec::new();
    let mut h = Honest::new();
    let mut b = Honest::with(Signer::new(OTHER_ORIGIN, key(2)).unwrap(), OTHER_ORIGIN, 2);
    let third = Signer::new("third.example/log", key(3)).unwrap();

    t.watch(&h.vkey(), Some(URL.to_owned()), &mut out).unwrap();
    t.watch(&b.vkey(), None, &mut out).unwrap();

    // Log A: cosigned and monitored over several rounds, with a refused request on the way
    // and a gossiped older checkpoint.
    let mut old = 0;
    for n in [3, 4, 9] {
        let note = h.grow(n);
        let size = h.size();
        t.add_checkpoint(&body(old, &h.proof(old, size), &note), h.now, &mut out)
            .unwrap();
        old = size;
        let _ = monitor_round(&mut t, &h, &note, &mut out);
    }
    let note = h.grow(5);
    let size = h.size();
    assert!(
        t.add_checkpoint(&body(old, &[[1; 32]; 3], &note), h.now, &mut out)
            .is_err()
    );
    assert_eq!(
        monitor_round(&mut t, &h, &note, &mut out),
        Observed::Extended { size }
    );
    assert_eq!(
        t.ingest_checkpoint(&h.note_at(4), h.now, &mut out),
        Ok(Sighting::New)
    );

    // Log B: cosigned, then a split view.
    let bnote = b.grow(4);
    let bsize = b.size();
    t.add_checkpoint(&body(0, &[], &bnote), b.now, &mut out)
        .unwrap();
    let bfake = fork::sign_checkpoint(
        &b.signer,
        OTHER_ORIGIN,
        &tree_of(&fake_leaves(bsize, 9)),
        bsize,
    )
    .unwrap();
    assert_eq!(
        t.add_checkpoint(&body(bsize, &[], &bfake), b.now, &mut out),
        Err(AddError::RootConflict(bsize))
    );

    // A third log, watched without a URL: a fork proof from someone.
    t.watch(&third.vkey(), None, &mut out).unwrap();
    let (la, lb) = diverging(6, 1);
    let proof = ForkProof::SplitView {
        a: fork::sign_checkpoint(&third, "third.example/log", &tree_of(&la), 5).unwrap(),
        b: fork::sign_checkpoint(&third, "third.example/log", &tree_of(&lb), 5).unwrap(),
    };
    t.ingest_fork_proof(&third.vkey(), &proof.to_bytes().unwrap(), T0, &mut out)
        .unwrap();

    store.apply(&out);
    assert_eq!(store.refused, 1);
    let mut r = store.restore();
    assert_eq!(summary(&r), summary(&t));
    assert_eq!(r.indictments(), t.indictments());
    assert_eq!(r.logs()[ORIGIN].cosigned_size(), old);
    assert_eq!(r.logs()[ORIGIN].monitored_size(), size);
    assert_eq!(r.indictments().len(), 2);

    // Both towers now behave the same, change for change.
    let mut step = |f: &dyn Fn(&mut Watchtower, &mut Vec<Change>) -> String| {
        let (mut o1, mut o2) = (Vec::new(), Vec::new());
        let a1 = f(&mut t, &mut o1);
        let a2 = f(&mut r, &mut o2);
        assert_eq!(a1, a2);
        assert_eq!(o1, o2);
        store.apply(&o1);
        a1
    };
    // A further cosigning request with the right old size.
    let note = h.grow(6);
    let size2 = h.size();
    let req = body(old, &h.proof(old, size2), &note);
    let res = step(&|t, o| format!("{:?}", t.add_checkpoint(&req, h.now, o)));
    assert!(res.starts_with("Ok("), "{res}");
    // The wrong old size is still refused.
    let req = body(old, &h.proof(old, size2), &note);
    let res = step(&|t, o| format!("{:?}", t.add_checkpoint(&req, h.now, o)));
    assert!(res.contains("WrongOldSize"), "{res}");
    // The monitor resumes where it was.
    let leaves = h.leaves(size, size2);
    let res = step(&|t, o| format!("{:?}", t.observe(&note, &leaves, h.now, o)));
    assert_eq!(
        res,
        format!(
            "{:?}",
            Ok::<_, WatchError>(Observed::Extended { size: size2 })
        )
    );
    // Log B stays indicted.
    let bnext = b.grow(2);
    let req = body(bsize, &b.proof(bsize, b.size()), &bnext);
    let res = step(&|t, o| format!("{:?}", t.add_checkpoint(&req, b.now, o)));
    assert_eq!(res, format!("{:?}", Err::<String, _>(AddError::Indicted)));
    // A split view of a restored seen checkpoint (size 4, only gossiped) is caught.
    let fake4 = signed(&tree_of(&fake_leaves(4, 8)), 4);
    let res = step(&|t, o| format!("{:?}", t.ingest_checkpoint(&fake4, h.now, o)));
    assert_eq!(
        res,
        format!("{:?}", Ok::<_, WatchError>(Sighting::SplitView))
    );
    assert_eq!(r.indictments(), t.indictments());
    assert_eq!(r.indictments_of(&vkey()).unwrap().len(), 1);

    // A second restore from the grown store matches too.
    let again = store.restore();
    assert_eq!(summary(&again), summary(&t));
    assert_eq!(again.indictments(), t.indictments());
}

#[test]
fn a_restored_monitor_catches_a_split_view_and_a_regression_across_the_restart() {
    let lr = regressing_leaves();
    let tree = tree_of(&lr);
    let all = bytes_of(&lr);
    let (mut t, mut out) = watched(Some(URL));
    let note4 = signed(&tree, 4);
    assert_eq!(
        t.observe(&note4, &all[..4], T0, &mut out),
        Ok(Observed::Extended { size: 4 })
    );
    let mut store = Store::default();
    store.apply(&out);

    // Regression: the top block (1, at leaf 2) is recomputed from the restored leaves.
    let mut r = store.restore();
    assert_eq!(r.monitor_target(ORIGIN), Some((URL.to_owned(), 4)));
    let mut out = Vec::new();
    assert_eq!(
        r.observe(&signed(&tree, 6), &all[4..], T0, &mut out),
        Ok(Observed::Indicted(ForkKind::BlockRegression))
    );
    let ForkProof::BlockRegression { i, j, .. } = check_stored_proof(&r, ForkKind::BlockRegression)
    else {
        panic!("wrong kind")
    };
    assert_eq!((i.index, j.index), (2, 4));

    // Split view of the followed checkpoint.
    let mut r = store.restore();
    let fake = signed(&tree_of(&fake_leaves(4, 1)), 4);
    assert_eq!(
        r.observe(&fake, &[], T0, &mut out),
        Ok(Observed::Indicted(ForkKind::SplitView))
    );

    // Prefix rewrite against the restored tree.
    let mut r = store.restore();
    let mut rewritten = lr.clone();
    rewritten[1] = Leaf::Commit {
        block: 0,
        p: [0xdd; 32],
    };
    rewritten.truncate(4);
    rewritten.push(Leaf::Commit {
        block: 1,
        p: [0xde; 32],
    });
    let bigger = signed(&tree_of(&rewritten), 5);
    let rb = bytes_of(&rewritten);
    assert_eq!(
        r.observe(&bigger, &rb[4..], T0, &mut out),
        Ok(Observed::Diverged { size: 5 })
    );
    assert_eq!(
        r.observe_full(&bigger, &rb, T0, &mut out),
        Ok(Observed::Indicted(ForkKind::PrefixRewrite))
    );
    check_stored_proof(&r, ForkKind::PrefixRewrite);
}

// ---------------------------------------------------------------------------------------------
// 7. Properties.

/// Flips one bit of one hash of the proof.
fn flip_hash_bit(proof: &[Hash], bit: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    let bit = bit % (p.len() * 256);
    p[bit / 256][(bit % 256) / 8] ^= 1 << (bit % 8);
    p
}

/// Flips one bit of the proof lines' text in a request body.
fn flip_text_bit(old: u64, proof: &[Hash], note: &str, bit: usize) -> Vec<u8> {
    let mut b = body(old, proof, note);
    let start = format!("old {old}\n").len();
    let len = proof.len() * 45;
    let bit = bit % (len * 8);
    b[start + bit / 8] ^= 1 << (bit % 8);
    b
}

/// Sends a refused request and checks that nothing was cosigned or indicted.
fn assert_refused(t: &mut Watchtower, req: &[u8], now: u64, old: u64) -> Result<u16, String> {
    let mut out = Vec::new();
    let r = t.add_checkpoint(req, now, &mut out);
    let Err(e) = r else {
        return Err(format!("accepted: {r:?}"));
    };
    if t.logs()[ORIGIN].cosigned_size() != old {
        return Err("cosigned size changed".to_owned());
    }
    if cosigned_changes(&out) + indicted_changes(&out) != 0 || !t.indictments().is_empty() {
        return Err(format!("changes: {out:?}"));
    }
    Ok(e.status())
}

#[test]
fn every_bit_flip_of_a_consistency_proof_is_refused() {
    let mut h = Honest::new();
    let (mut t, mut out) = watched(None);
    let note = h.grow(4);
    let old = h.size();
    t.add_checkpoint(&body(0, &[], &note), h.now, &mut out)
        .unwrap();
    let note = h.grow(20);
    let size = h.size();
    let proof = h.proof(old, size);
    assert!(proof.len() >= 3);
    for bit in 0..proof.len() * 256 {
        let req = body(old, &flip_hash_bit(&proof, bit), &note);
        assert_eq!(
            assert_refused(&mut t, &req, h.now, old),
            Ok(422),
            "bit {bit}"
        );
    }
    for bit in 0..proof.len() * 45 * 8 {
        let req = flip_text_bit(old, &proof, &note, bit);
        let status = assert_refused(&mut t, &req, h.now, old);
        assert!(
            matches!(status, Ok(400 | 422)),
            "text bit {bit}: {status:?}"
        );
    }
    t.add_checkpoint(&body(old, &proof, &note), h.now, &mut out)
        .unwrap();
    assert_eq!(cosigned_size(&t), size);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// An honest log, cosigned and monitored at random points with correct proofs: every
    /// request is cosigned, every round extends, nothing is ever indicted.
    #[test]
    fn honest_logs_are_always_cosigned(
        salt in any::<u8>(),
        steps in proptest::collection::vec((0u64..12, any::<bool>(), any::<bool>()), 1..10),
    ) {
        let mut h = Honest::with(signer(), ORIGIN, salt);
        let (mut t, mut out) = watched(Some(URL));
        let mut old = 0;
        for (grow, resend, observe) in steps {
            let note = h.grow(grow);
            let size = h.size();
            let line = t
                .add_checkpoint(&body(old, &h.proof(old, size), &note), h.now, &mut out)
                .map_err(|e| TestCaseError::fail(format!("{old} -> {size}: {e}")))?;
            let text = text_of(&note);
            prop_assert_eq!(cosignature_time(&t, &text, &line), Ok(h.now));
            prop_assert_eq!(cosigned_size(&t), size);
            old = size;
            if resend {
                let line = t
                    .add_checkpoint(&body(size, &[], &note), h.now + 1, &mut out)
                    .map_err(|e| TestCaseError::fail(format!("resend {size}: {e}")))?;
                prop_assert_eq!(cosignature_time(&t, &text, &line), Ok(h.now + 1));
            }
            if observe {
                prop_assert_eq!(
                    monitor_round(&mut t, &h, &note, &mut out),
                    Observed::Extended { size }
                );
                // Gossip of any older checkpoint is consistent too.
                let s = t.ingest_checkpoint(&h.note_at(size / 2), h.now, &mut out);
                prop_assert!(matches!(s, Ok(Sighting::New | Sighting::Known)), "{:?}", s);
            }
            prop_assert!(t.indictments().is_empty());
        }
        prop_assert_eq!(indicted_changes(&out), 0);
        prop_assert_eq!(count(&out, |c| matches!(c, Change::Refused { .. })), 0);
    }

    /// One bit flipped anywhere in the consistency proof of a non-trivial step (as bytes or
    /// as text) is refused without any state change; the right proof then works.
    #[test]
    fn a_flipped_proof_bit_is_refused(
        first in 0u64..30,
        more in 1u64..40,
        hash_bit in any::<usize>(),
        text_bit in any::<usize>(),
    ) {
        let mut h = Honest::new();
        let (mut t, mut out) = watched(None);
        let note = h.grow(first);
        let old = h.size();
        t.add_checkpoint(&body(0, &[], &note), h.now, &mut out).unwrap();
        let note = h.grow(more);
        let size = h.size();
        prop_assert!(old < size);
        let proof = h.proof(old, size);
        prop_assert!(!proof.is_empty());

        let req = body(old, &flip_hash_bit(&proof, hash_bit), &note);
        prop_assert_eq!(assert_refused(&mut t, &req, h.now, old), Ok(422));
        let req = flip_text_bit(old, &proof, &note, text_bit);
        let status = assert_refused(&mut t, &req, h.now, old);
        prop_assert!(matches!(status, Ok(400 | 422)), "{:?}", status);

        let line = t.add_checkpoint(&body(old, &proof, &note), h.now, &mut out).unwrap();
        prop_assert_eq!(cosignature_time(&t, &text_of(&note), &line), Ok(h.now));
        prop_assert_eq!(cosigned_size(&t), size);
    }
}
