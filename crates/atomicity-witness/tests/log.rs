//! Tests for the witness log state machine and proof bundles.

use atomicity_witness::bundle::{
    BundleError, CheckpointCache, MAX_CHECKPOINT_SIZE, ProofBundle, Published, verify_publication,
    verify_publication_cached,
};
use atomicity_witness::leaf::Leaf;
use atomicity_witness::log::{Log, LogError, Submission};
use atomicity_witness::merkle::{ProofError, verify_consistency};
use atomicity_witness::note::{
    Checkpoint, Cosigner, CosignerPolicy, Note, NoteError, Signer, Verifier, open,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ORIGIN: &str = "witness.example/log";
const DELTA: u64 = 60;
const T0: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn signer() -> Signer {
    Signer::new(ORIGIN, key(1)).expect("signer")
}

fn new_log() -> Log {
    Log::new(ORIGIN.to_owned(), signer(), DELTA, T0).expect("log")
}

fn secret(i: u64) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[..8].copy_from_slice(&i.to_be_bytes());
    p[31] = 0xa5;
    p
}

/// splitmix64, for reproducible pseudo-random logs without extra dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A log with `n` submissions (some repeated) at random time steps; returns it, the distinct
/// secrets in order and the final time.
fn random_log(seed: u64, n: u64) -> (Log, Vec<[u8; 32]>, u64) {
    let mut rng = Rng(seed);
    let mut log = new_log();
    let mut now = T0;
    let mut ps = Vec::new();
    for i in 0..n {
        now += rng.next() % 50;
        let p = if i > 0 && rng.next().is_multiple_of(5) {
            ps[(rng.next() % ps.len() as u64) as usize]
        } else {
            secret(seed * 1000 + i)
        };
        let s = log.submit(p, now);
        if s.new {
            ps.push(p);
        }
    }
    (log, ps, now)
}

fn verify(b: &ProofBundle, p: &[u8; 32], v: &Verifier) -> Result<Published, BundleError> {
    verify_publication(b, p, v, None, 0, u64::MAX, u64::MAX)
}

fn add_cosignatures(note: &str, cosigners: &[(&Cosigner, u64)]) -> String {
    let mut parsed = Note::parse(note.as_bytes()).expect("note");
    let cp = Checkpoint::from_text(&parsed.text).expect("checkpoint");
    for (c, t) in cosigners {
        parsed
            .signatures
            .push(c.sign_signature(&cp, *t).expect("cosign"));
    }
    parsed.to_text()
}

#[test]
fn blocks_advance_with_time_and_never_decrease() {
    let mut log = new_log();
    assert_eq!(log.entry(0), Some(Leaf::Block { block: 0, time: T0 }));
    assert_eq!(log.submit(secret(1), T0 + DELTA - 1).block, 0);
    assert_eq!(log.submit(secret(2), T0 + DELTA).block, 1);
    assert_eq!(log.block_start(), T0 + DELTA);
    assert_eq!(
        log.entry(2),
        Some(Leaf::Block {
            block: 1,
            time: T0 + DELTA
        })
    );
    // A long gap starts exactly one block, stamped with the current time.
    let late = T0 + 100 * DELTA;
    let s = log.submit(secret(3), late);
    assert_eq!(s.block, 2);
    assert_eq!(
        log.entry(s.index - 1),
        Some(Leaf::Block {
            block: 2,
            time: late
        })
    );
    // A clock going backwards starts no block and never lowers the block number.
    assert_eq!(log.submit(secret(4), T0).block, 2);
    assert_eq!(log.tick(late - 1), 2);
    assert_eq!(log.tick(late + DELTA), 3);
    assert_eq!(log.marker_index(3), Some(log.size() - 1));
    let mut last = 0;
    for leaf in log.leaves() {
        assert!(leaf.block() >= last);
        last = leaf.block();
    }
}

#[test]
fn resubmission_returns_the_same_entry() {
    let mut log = new_log();
    let first = log.submit(secret(1), T0);
    assert_eq!(
        first,
        Submission {
            index: 1,
            block: 0,
            new: true
        }
    );
    let size = log.size();
    let again = log.submit(secret(1), T0 + 5 * DELTA);
    assert_eq!((again.index, again.block, again.new), (1, 0, false));
    assert_eq!(log.size(), size + 1, "only the new BLOCK marker was added");
    let batch = log.submit_batch(
        &[secret(2), secret(1), secret(3), secret(2)],
        T0 + 5 * DELTA,
    );
    assert_eq!(
        batch.iter().map(|s| (s.index, s.new)).collect::<Vec<_>>(),
        vec![(3, true), (1, false), (4, true), (3, false)]
    );
    assert!(batch.iter().filter(|s| s.new).all(|s| s.block == 1));
    assert_eq!(log.index_of(&secret(3)), Some(4));
    assert_eq!(log.index_of(&secret(9)), None);
    assert_eq!(log.entry(99), None);
}

#[test]
fn checkpoints_verify_and_match_the_root() {
    let (mut log, _, now) = random_log(7, 40);
    let v = log.verifier();
    let note = log.checkpoint(now).expect("checkpoint");
    let (parsed, sigs) = open(note.as_bytes(), std::slice::from_ref(&v)).expect("verifies");
    assert_eq!(sigs.len(), 1);
    let cp = Checkpoint::from_text(&parsed.text).expect("checkpoint text");
    assert_eq!(cp.origin, ORIGIN);
    assert_eq!(cp.size, log.size());
    assert_eq!(cp.root, log.root_at(log.size()).expect("root"));
    // Same size: the same note, not re-signed.
    assert_eq!(log.checkpoint(now).expect("checkpoint"), note);
    // Growth: a new note, consistent with the old one.
    log.submit(secret(999_999), now);
    let note2 = log.checkpoint(now).expect("checkpoint");
    assert_ne!(note2, note);
    let (parsed2, _) = open(note2.as_bytes(), &[v]).expect("verifies");
    let cp2 = Checkpoint::from_text(&parsed2.text).expect("checkpoint text");
    assert_eq!(cp2.size, cp.size + 1);
    let proof = log.consistency_proof(cp.size, cp2.size).expect("proof");
    verify_consistency(cp.size, cp2.size, &cp.root, &cp2.root, &proof).expect("consistent");
    // Checkpoint advances blocks too.
    let b = log.block();
    log.checkpoint(now + DELTA).expect("checkpoint");
    assert_eq!(log.block(), b + 1);
    assert!(matches!(
        log.inclusion_proof(0, log.size() + 1),
        Err(LogError::Proof(ProofError::SizeOutOfRange { .. }))
    ));
}

#[test]
fn bad_origin_is_rejected() {
    for origin in ["", "two\nlines"] {
        assert!(matches!(
            Log::new(origin.to_owned(), signer(), DELTA, T0),
            Err(LogError::Note(_))
        ));
    }
}

#[test]
fn every_bundle_of_a_random_log_verifies() {
    for seed in 1..4 {
        let (mut log, ps, _) = random_log(seed, 60);
        let v = log.verifier();
        for p in &ps {
            let b = log.bundle(p).expect("bundle").expect("committed");
            let bytes = b.to_bytes().expect("encode");
            let decoded = ProofBundle::from_bytes(&bytes).expect("decode");
            assert_eq!(decoded, b);
            let got = verify(&decoded, p, &v).expect("verifies");
            let Some(Leaf::Commit { block, .. }) = log.entry(got.index) else {
                panic!("not a commit");
            };
            assert_eq!(got.block, block);
            assert_eq!(got.size, log.size());
            assert_eq!(got.origin, ORIGIN);
            assert_eq!(
                log.entry(log.marker_index(block).expect("marker")),
                Some(Leaf::Block {
                    block,
                    time: got.block_time
                })
            );
        }
        assert_eq!(log.bundle(&secret(u64::MAX)).expect("bundle"), None);
    }
}

#[test]
fn every_bit_flip_in_bundle_bytes_fails() {
    let (mut log, ps, _) = random_log(11, 30);
    let v = log.verifier();
    for p in [ps[0], ps[ps.len() / 2], ps[ps.len() - 1]] {
        let bytes = log
            .bundle(&p)
            .expect("bundle")
            .expect("committed")
            .to_bytes()
            .expect("encode");
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = ProofBundle::from_bytes(&bad).and_then(|b| verify(&b, &p, &v));
            assert!(result.is_err(), "bit {bit} flip accepted");
        }
    }
}

#[test]
fn every_bit_flip_in_p_or_checkpoint_fails() {
    let (mut log, ps, _) = random_log(12, 20);
    let v = log.verifier();
    let p = ps[ps.len() / 2];
    let b = log.bundle(&p).expect("bundle").expect("committed");
    for bit in 0..256 {
        let mut bad = p;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(verify(&b, &bad, &v), Err(BundleError::WrongSecret));
    }
    let cp = b.checkpoint.as_bytes();
    for bit in 0..cp.len() * 8 {
        let mut bad = cp.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        // Flips that break UTF-8 cannot even be put in a bundle.
        let Ok(text) = String::from_utf8(bad) else {
            continue;
        };
        let mut flipped = b.clone();
        flipped.checkpoint = text;
        assert!(verify(&flipped, &p, &v).is_err(), "bit {bit} flip accepted");
    }
}

/// One cache across every check of a log's bundles gives the same verdict as checking each
/// alone: a checkpoint verified once lends nothing to a flipped bundle, another secret, another
/// key or another window.
#[test]
fn a_checkpoint_cache_never_changes_a_verdict() {
    let (mut log, ps, _) = random_log(14, 25);
    let v = log.verifier();
    let wrong = Signer::new(ORIGIN, key(2)).expect("signer").verifier();
    let mut cache = CheckpointCache::default();
    let mut checks = 0;
    for p in &ps {
        let bytes = log
            .bundle(p)
            .expect("bundle")
            .expect("committed")
            .to_bytes()
            .expect("encode");
        let mut cases = vec![bytes.clone()];
        for bit in (0..bytes.len() * 8).step_by(7) {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            cases.push(bad);
        }
        for case in &cases {
            let Ok(b) = ProofBundle::from_bytes(case) else {
                continue;
            };
            for (secret_to_check, verifier, window) in [
                (*p, &v, (0, u64::MAX)),
                (secret(u64::MAX), &v, (0, u64::MAX)),
                (*p, &wrong, (0, u64::MAX)),
                (*p, &v, (0, 1)),
            ] {
                let alone = verify_publication(
                    &b,
                    &secret_to_check,
                    verifier,
                    None,
                    window.0,
                    window.1,
                    u64::MAX,
                );
                let cached = verify_publication_cached(
                    &b,
                    &secret_to_check,
                    verifier,
                    None,
                    window.0,
                    window.1,
                    u64::MAX,
                    &mut cache,
                );
                assert_eq!(alone, cached);
                checks += 1;
            }
        }
    }
    assert!(checks > 1000);
    assert!(!cache.is_empty());
}

#[test]
fn wrong_key_fails() {
    let (mut log, ps, _) = random_log(13, 10);
    let b = log.bundle(&ps[0]).expect("bundle").expect("committed");
    let same_name = Signer::new(ORIGIN, key(2)).expect("signer").verifier();
    let other_name = Signer::new("other.example/log", key(1))
        .expect("signer")
        .verifier();
    for v in [same_name, other_name] {
        assert!(matches!(
            verify(&b, &ps[0], &v),
            Err(BundleError::Note(NoteError::UnverifiedNote))
        ));
    }
    // A log with a different key cannot vouch for this log's bundle either.
    let mut other = Log::new(
        ORIGIN.to_owned(),
        Signer::new(ORIGIN, key(3)).expect("s"),
        DELTA,
        T0,
    )
    .expect("log");
    other.submit(ps[0], T0);
    let theirs = other.bundle(&ps[0]).expect("bundle").expect("committed");
    assert!(verify(&theirs, &ps[0], &log.verifier()).is_err());
}

#[test]
fn block_window_and_deadline_checks() {
    let mut log = new_log();
    for i in 0..5 {
        log.submit(secret(i), T0 + i * DELTA);
    }
    let v = log.verifier();
    let p = secret(2); // block 2, started at T0 + 2Δ
    let b = log.bundle(&p).expect("bundle").expect("committed");
    let t = T0 + 2 * DELTA;
    let ok = verify_publication(&b, &p, &v, None, 2, 3, t).expect("in window");
    assert_eq!((ok.block, ok.block_time), (2, t));
    verify_publication(&b, &p, &v, None, 0, 100, u64::MAX).expect("wide window");
    assert_eq!(
        verify_publication(&b, &p, &v, None, 3, 10, u64::MAX),
        Err(BundleError::TooEarly { block: 2, start: 3 })
    );
    assert_eq!(
        verify_publication(&b, &p, &v, None, 0, 2, u64::MAX),
        Err(BundleError::TooLate {
            block: 2,
            deadline: 2
        })
    );
    assert_eq!(
        verify_publication(&b, &p, &v, None, 0, 10, t - 1),
        Err(BundleError::AfterDeadline {
            time: t,
            deadline: t - 1
        })
    );
    // A marker of another block, or one placed after the commit, is rejected.
    let mut wrong = b.clone();
    let other = log.bundle(&secret(3)).expect("bundle").expect("committed");
    wrong.block_leaf = other.block_leaf;
    wrong.block_leaf_index = other.block_leaf_index;
    wrong.block_inclusion = other.block_inclusion;
    assert_eq!(verify(&wrong, &p, &v), Err(BundleError::BadMarker));
}

#[test]
fn cosigner_policy_bounds_time_by_cosignatures() {
    let mut log = new_log();
    let p = secret(1);
    log.submit(p, T0 + 10);
    let v = log.verifier();
    let cosigners: Vec<Cosigner> = (0..3)
        .map(|i| Cosigner::new(&format!("w{i}.example"), key(20 + i)).expect("cosigner"))
        .collect();
    let policy = CosignerPolicy {
        cosigners: cosigners.iter().map(Cosigner::verifier).collect(),
        threshold: 2,
    };
    let note = log.checkpoint(T0 + 10).expect("checkpoint");
    let t = T0 + 100;
    // Two of three cosigned by T, one later.
    let cosigned = add_cosignatures(
        &note,
        &[
            (&cosigners[0], t - 5),
            (&cosigners[1], t + 50),
            (&cosigners[2], t),
        ],
    );
    let b = log
        .bundle_with(&p, cosigned.clone())
        .expect("bundle")
        .expect("committed");
    let bytes = b.to_bytes().expect("encode");
    let b = ProofBundle::from_bytes(&bytes).expect("decode");
    verify_publication(&b, &p, &v, Some(&policy), 0, 1, t).expect("2 of 3 by T");
    // A cache keeps the cosignatures' times, not the verdict: the deadline is applied each time.
    let mut cache = CheckpointCache::default();
    for deadline in [t, t - 1, t + 50, t - 5] {
        assert_eq!(
            verify_publication_cached(&b, &p, &v, Some(&policy), 0, 1, deadline, &mut cache),
            verify_publication(&b, &p, &v, Some(&policy), 0, 1, deadline),
        );
    }
    assert_eq!(
        verify_publication(&b, &p, &v, Some(&policy), 0, 1, t - 1),
        Err(BundleError::CosignedTooLate {
            valid: 1,
            threshold: 2
        })
    );
    // Without cosignatures the policy is not met.
    let plain = log.bundle(&p).expect("bundle").expect("committed");
    assert!(matches!(
        verify_publication(&plain, &p, &v, Some(&policy), 0, 1, t),
        Err(BundleError::Note(NoteError::ThresholdNotMet { .. }))
    ));
    // Every bit flip of the cosigned bundle fails under the policy.
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let result = ProofBundle::from_bytes(&bad)
            .and_then(|b| verify_publication(&b, &p, &v, Some(&policy), 0, 1, u64::MAX));
        // Flips in the third (surplus) cosignature's key name make it an unknown key, which
        // the policy ignores; 2 of 3 still holds. Everything else must fail.
        if let Ok(ok) = result {
            let decoded = ProofBundle::from_bytes(&bad).expect("decoded");
            assert_ne!(decoded.checkpoint, b.checkpoint, "bit {bit}");
            assert_eq!(ok.index, 1);
        }
    }
}

#[test]
fn bundle_with_rejects_foreign_or_stale_checkpoints() {
    let mut log = new_log();
    let old_note = log.checkpoint(T0).expect("checkpoint");
    log.submit(secret(1), T0);
    // The old checkpoint (size 1) does not cover the commit at index 1.
    assert_eq!(log.bundle_with(&secret(1), old_note).expect("ok"), None);
    let mut other = Log::new("other.example/log".to_owned(), signer(), DELTA, T0).expect("log");
    other.submit(secret(1), T0);
    let foreign = other.checkpoint(T0).expect("checkpoint");
    assert_eq!(
        log.bundle_with(&secret(1), foreign),
        Err(LogError::ForeignCheckpoint)
    );
    let mut fork = Log::new(ORIGIN.to_owned(), signer(), DELTA, T0).expect("log");
    fork.submit(secret(2), T0);
    let forked = fork.checkpoint(T0).expect("checkpoint");
    assert_eq!(
        log.bundle_with(&secret(1), forked),
        Err(LogError::ForeignCheckpoint)
    );
    assert!(log.bundle_with(&secret(1), "junk".to_owned()).is_err());
}

#[test]
fn malformed_bundle_bytes_are_rejected() {
    let (mut log, ps, _) = random_log(14, 10);
    let bytes = log
        .bundle(&ps[3])
        .expect("bundle")
        .expect("committed")
        .to_bytes()
        .expect("encode");
    for cut in 0..bytes.len() {
        assert!(ProofBundle::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        ProofBundle::from_bytes(&longer),
        Err(BundleError::Malformed("trailing bytes"))
    );
    let mut huge = bytes.clone();
    huge[5..9].copy_from_slice(&(MAX_CHECKPOINT_SIZE as u32 + 1).to_be_bytes());
    assert_eq!(
        ProofBundle::from_bytes(&huge),
        Err(BundleError::Malformed("checkpoint size out of range"))
    );
    assert!(ProofBundle::from_bytes(&[]).is_err());
    // Encoding refuses what cannot be decoded.
    let mut b = ProofBundle::from_bytes(&bytes).expect("decode");
    b.leaf = b.block_leaf;
    assert!(b.to_bytes().is_err());
}

#[test]
fn restore_gives_the_identical_log() {
    let (mut log, ps, now) = random_log(21, 80);
    let mut restored =
        Log::restore(ORIGIN.to_owned(), signer(), DELTA, log.leaves().to_vec()).expect("restore");
    assert_eq!(restored.leaves(), log.leaves());
    assert_eq!(restored.block(), log.block());
    assert_eq!(restored.block_start(), log.block_start());
    for size in 1..=log.size() {
        assert_eq!(restored.root_at(size), log.root_at(size));
    }
    for p in &ps {
        assert_eq!(restored.index_of(p), log.index_of(p));
    }
    assert_eq!(
        restored.checkpoint(now).expect("checkpoint"),
        log.checkpoint(now).expect("checkpoint")
    );
    // Both continue identically.
    let later = now + 3 * DELTA;
    assert_eq!(restored.submit(ps[0], later), log.submit(ps[0], later));
    assert_eq!(
        restored.submit(secret(7), later),
        log.submit(secret(7), later)
    );
    assert_eq!(restored.root_at(restored.size()), log.root_at(log.size()));
}

#[test]
fn restore_rejects_tampered_leaf_sequences() {
    let restore = |leaves: Vec<Leaf>| Log::restore(ORIGIN.to_owned(), signer(), DELTA, leaves);
    let b = |block, time| Leaf::Block { block, time };
    let c = |block, i| Leaf::Commit {
        block,
        p: secret(i),
    };
    let good = vec![
        b(0, T0),
        c(0, 1),
        b(1, T0 + DELTA),
        c(1, 2),
        b(2, T0 + 2 * DELTA),
    ];
    restore(good.clone()).expect("good");
    assert_eq!(restore(vec![]).err(), Some(LogError::MissingGenesis));
    assert_eq!(
        restore(good[1..].to_vec()).err(),
        Some(LogError::MissingGenesis)
    );
    assert_eq!(
        restore(vec![b(1, T0)]).err(),
        Some(LogError::MissingGenesis)
    );
    // Decreasing block number in a commit.
    let mut t = good.clone();
    t[3] = c(0, 2);
    assert_eq!(
        restore(t).err(),
        Some(LogError::CommitBlock {
            index: 3,
            expected: 1,
            got: 0
        })
    );
    // Decreasing, repeated or skipped block markers.
    for bad in [0, 1, 3] {
        let mut t = good.clone();
        t[4] = b(bad, T0 + 2 * DELTA);
        assert_eq!(
            restore(t).err(),
            Some(LogError::BlockSequence {
                index: 4,
                expected: 2,
                got: bad
            })
        );
    }
    // Marker time going backwards.
    let mut t = good.clone();
    t[4] = b(2, T0);
    assert_eq!(
        restore(t).err(),
        Some(LogError::TimeRegression { index: 4 })
    );
    // Duplicate p.
    let mut t = good.clone();
    t[3] = c(1, 1);
    assert_eq!(
        restore(t).err(),
        Some(LogError::DuplicateCommit { index: 3, first: 1 })
    );
    // Commit ahead of its block.
    let mut t = good;
    t.push(c(3, 9));
    assert!(matches!(restore(t), Err(LogError::CommitBlock { .. })));
}

#[derive(Debug, Clone)]
enum Op {
    Submit(u8, u64),
    Batch(Vec<u8>, u64),
    Checkpoint(u64),
    /// A clock step backwards.
    Back(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 0..150u64).prop_map(|(p, dt)| Op::Submit(p % 24, dt)),
        1 => (prop::collection::vec(any::<u8>(), 0..6), 0..150u64)
            .prop_map(|(ps, dt)| Op::Batch(ps.into_iter().map(|p| p % 24).collect(), dt)),
        1 => (0..150u64).prop_map(Op::Checkpoint),
        1 => (0..150u64).prop_map(Op::Back),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..40)) {
        let mut log = new_log();
        let v = log.verifier();
        let mut now = T0;
        let mut seen: std::collections::HashMap<u8, u64> = Default::default();
        for op in ops {
            let block_before = log.block();
            match op {
                Op::Submit(id, dt) => {
                    now += dt;
                    let s = log.submit(secret(u64::from(id)), now);
                    let first = *seen.entry(id).or_insert(s.index);
                    prop_assert_eq!(first, s.index);
                    if s.new {
                        prop_assert_eq!(s.index + 1, log.size());
                        prop_assert_eq!(s.block, log.block());
                    }
                    let leaf = Leaf::Commit { block: s.block, p: secret(u64::from(id)) };
                    prop_assert_eq!(log.entry(s.index), Some(leaf));
                }
                Op::Batch(ids, dt) => {
                    now += dt;
                    for (s, id) in log.submit_batch(
                        &ids.iter().map(|i| secret(u64::from(*i))).collect::<Vec<_>>(), now,
                    ).into_iter().zip(ids) {
                        let first = *seen.entry(id).or_insert(s.index);
                        prop_assert_eq!(first, s.index);
                    }
                }
                Op::Checkpoint(dt) => {
                    now += dt;
                    log.checkpoint(now).expect("checkpoint");
                }
                Op::Back(dt) => now = now.saturating_sub(dt),
            }
            prop_assert!(log.block() >= block_before);
            prop_assert!(log.block() <= block_before + 1);
        }
        // Leaves are a valid sequence, restore reproduces the root, and every bundle verifies.
        let restored = Log::restore(ORIGIN.to_owned(), signer(), DELTA, log.leaves().to_vec())
            .expect("restore");
        prop_assert_eq!(restored.root_at(restored.size()), log.root_at(log.size()));
        for id in seen.keys() {
            let p = secret(u64::from(*id));
            let b = log.bundle(&p).expect("bundle").expect("committed");
            let b = ProofBundle::from_bytes(&b.to_bytes().expect("encode")).expect("decode");
            let got = verify(&b, &p, &v).expect("verifies");
            prop_assert_eq!(Some(got.index), log.index_of(&p));
            prop_assert!(verify_publication(&b, &p, &v, None, got.block + 1, u64::MAX, u64::MAX).is_err());
        }
    }
}
