//! Tests for fork proofs: a deliberately misbehaving log (two diverging trees
//! signed by one key) yields verifiable proofs of every kind; honest data never do.

use atomicity_witness::fork::{
    ForkError, ForkKind, ForkProof, Inclusion, LeafAt, first_divergence, sign_checkpoint,
};
use atomicity_witness::leaf::Leaf;
use atomicity_witness::merkle::{Tree, leaf_hash};
use atomicity_witness::note::{Signer, Verifier};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ORIGIN: &str = "example.org/log";

fn signer(seed: u8) -> Signer {
    Signer::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).expect("signer")
}

fn log() -> (Signer, Verifier) {
    let s = signer(1);
    let v = s.verifier();
    (s, v)
}

/// Distinct leaves with non-decreasing blocks; `salt` changes the secrets.
fn leaves(n: u64, salt: u8) -> Vec<Leaf> {
    (0..n)
        .map(|k| {
            if k % 4 == 3 {
                Leaf::Block {
                    block: k / 3,
                    time: 1_700_000_000 + k + u64::from(salt) * 1000,
                }
            } else {
                let mut p = [salt; 32];
                p[..8].copy_from_slice(&k.to_be_bytes());
                Leaf::Commit { block: k / 3, p }
            }
        })
        .collect()
}

fn tree(leaves: &[Leaf]) -> Tree {
    let mut t = Tree::new();
    for l in leaves {
        t.push(l.hash());
    }
    t
}

/// An honest history of `n` leaves and a rewritten one that agrees on `[0, d)`.
fn diverging(n: u64, d: u64) -> (Vec<Leaf>, Vec<Leaf>) {
    let a = leaves(n, 0);
    let mut b = leaves(n, 7);
    b[..d as usize].copy_from_slice(&a[..d as usize]);
    (a, b)
}

fn cp(s: &Signer, t: &Tree, size: u64) -> String {
    sign_checkpoint(s, ORIGIN, t, size).expect("checkpoint")
}

fn all_kinds(s: &Signer) -> Vec<ForkProof> {
    let (la, lb) = diverging(12, 4);
    let (ta, tb) = (tree(&la), tree(&lb));
    let split = ForkProof::SplitView {
        a: cp(s, &ta, 10),
        b: cp(s, &tb, 10),
    };
    let rewrite =
        ForkProof::prefix_rewrite(&cp(s, &ta, 7), &ta, &cp(s, &tb, 12), &tb).expect("rewrite");
    let conflict = ForkProof::conflicting_leaves(
        5,
        (&cp(s, &ta, 9), &ta, &la[5].to_bytes()),
        (&cp(s, &tb, 11), &tb, &lb[5].to_bytes()),
    )
    .expect("conflict");
    let mut lr = leaves(9, 3);
    lr[6] = Leaf::Commit {
        block: 0,
        p: [0xee; 32],
    };
    let tr = tree(&lr);
    let regression = ForkProof::find_block_regression(&cp(s, &tr, 9), &tr, &lr).expect("regr");
    vec![split, rewrite, conflict, regression]
}

#[test]
fn every_kind_verifies_and_names_its_kind() {
    let (s, v) = log();
    let kinds = [
        ForkKind::SplitView,
        ForkKind::PrefixRewrite,
        ForkKind::ConflictingLeaves,
        ForkKind::BlockRegression,
    ];
    for (proof, kind) in all_kinds(&s).iter().zip(kinds) {
        assert_eq!(proof.kind(), kind);
        assert_eq!(proof.verify(&v), Ok(kind), "{proof:?}");
        let bytes = proof.to_bytes().expect("encode");
        let back = ForkProof::from_bytes(&bytes).expect("decode");
        assert_eq!(&back, proof);
        assert_eq!(back.to_bytes().expect("re-encode"), bytes);
    }
}

#[test]
fn prefix_rewrite_points_at_first_divergence() {
    let (s, v) = log();
    let (la, lb) = diverging(20, 6);
    let (ta, tb) = (tree(&la), tree(&lb));
    assert_eq!(first_divergence(&ta, &tb, 20), Some(6));
    assert_eq!(first_divergence(&ta, &tb, 6), None);
    assert_eq!(first_divergence(&ta, &tb, 21), None);
    let p = ForkProof::prefix_rewrite(&cp(&s, &ta, 13), &ta, &cp(&s, &tb, 20), &tb).expect("p");
    let ForkProof::PrefixRewrite { index, .. } = &p else {
        panic!("wrong kind")
    };
    assert_eq!(*index, 6);
    assert_eq!(p.verify(&v), Ok(ForkKind::PrefixRewrite));
}

#[test]
fn split_view_rejects_honest_checkpoints() {
    let (s, v) = log();
    let (la, lb) = diverging(10, 4);
    let (ta, tb) = (tree(&la), tree(&lb));
    // Same root (even re-signed: Ed25519 is deterministic, so the same note).
    let same = ForkProof::SplitView {
        a: cp(&s, &ta, 10),
        b: cp(&s, &ta, 10),
    };
    assert!(matches!(same.verify(&v), Err(ForkError::NotAFork(_))));
    // Different sizes of an honest log have different roots: not a split view.
    let grown = ForkProof::SplitView {
        a: cp(&s, &ta, 9),
        b: cp(&s, &ta, 10),
    };
    assert!(matches!(grown.verify(&v), Err(ForkError::NotAFork(_))));
    // Different sizes of diverging trees: still not a split view.
    let sizes = ForkProof::SplitView {
        a: cp(&s, &ta, 9),
        b: cp(&s, &tb, 10),
    };
    assert!(matches!(sizes.verify(&v), Err(ForkError::NotAFork(_))));
    // Before the divergence the roots agree.
    let prefix = ForkProof::SplitView {
        a: cp(&s, &ta, 4),
        b: cp(&s, &tb, 4),
    };
    assert!(matches!(prefix.verify(&v), Err(ForkError::NotAFork(_))));
    // Different origins are different logs.
    let other = ForkProof::SplitView {
        a: cp(&s, &ta, 10),
        b: sign_checkpoint(&s, "example.org/other", &tb, 10).expect("cp"),
    };
    assert_eq!(other.verify(&v), Err(ForkError::OriginMismatch));
}

#[test]
fn prefix_rewrite_rejects_honest_data() {
    let (s, v) = log();
    let (la, lb) = diverging(12, 5);
    let (ta, tb) = (tree(&la), tree(&lb));
    // Honest growth: the builder finds nothing.
    assert!(matches!(
        ForkProof::prefix_rewrite(&cp(&s, &ta, 7), &ta, &cp(&s, &ta, 12), &ta),
        Err(ForkError::NotAFork(_))
    ));
    // The divergence is not below the old size.
    assert!(matches!(
        ForkProof::prefix_rewrite(&cp(&s, &ta, 5), &ta, &cp(&s, &tb, 12), &tb),
        Err(ForkError::NotAFork(_))
    ));
    // Equal sizes belong to SplitView.
    assert!(matches!(
        ForkProof::prefix_rewrite(&cp(&s, &ta, 12), &ta, &cp(&s, &tb, 12), &tb),
        Err(ForkError::NotAFork(_))
    ));
    // Hand-made: the same leaf hash in both.
    let same = ForkProof::PrefixRewrite {
        old: cp(&s, &ta, 7),
        new: cp(&s, &ta, 12),
        index: 2,
        old_leaf_hash: la[2].hash(),
        old_proof: ta.inclusion_proof(2, 7).expect("p"),
        new_leaf_hash: la[2].hash(),
        new_proof: ta.inclusion_proof(2, 12).expect("p"),
    };
    assert!(matches!(same.verify(&v), Err(ForkError::NotAFork(_))));
    // Hand-made: a different "leaf" claimed with an honest proof.
    let mut fake = same.clone();
    if let ForkProof::PrefixRewrite { new_leaf_hash, .. } = &mut fake {
        *new_leaf_hash = lb[8].hash();
    }
    assert!(matches!(fake.verify(&v), Err(ForkError::Proof(_))));
    // A genuine proof with the sizes swapped is rejected.
    let ForkProof::PrefixRewrite {
        old,
        new,
        index,
        old_leaf_hash,
        old_proof,
        new_leaf_hash,
        new_proof,
    } = ForkProof::prefix_rewrite(&cp(&s, &ta, 8), &ta, &cp(&s, &tb, 12), &tb).expect("p")
    else {
        panic!("wrong kind")
    };
    let swapped = ForkProof::PrefixRewrite {
        old: new,
        new: old,
        index,
        old_leaf_hash: new_leaf_hash,
        old_proof: new_proof,
        new_leaf_hash: old_leaf_hash,
        new_proof: old_proof,
    };
    assert!(matches!(swapped.verify(&v), Err(ForkError::NotAFork(_))));
}

#[test]
fn conflicting_leaves_rejects_honest_data() {
    let (s, v) = log();
    let (la, lb) = diverging(10, 4);
    let (ta, tb) = (tree(&la), tree(&lb));
    let (a9, a10) = (cp(&s, &ta, 9), cp(&s, &ta, 10));
    // Identical leaves.
    assert!(matches!(
        ForkProof::conflicting_leaves(
            2,
            (&a9, &ta, &la[2].to_bytes()),
            (&a10, &ta, &la[2].to_bytes())
        ),
        Err(ForkError::NotAFork(_))
    ));
    let same = ForkProof::ConflictingLeaves {
        index: 2,
        a: Inclusion {
            checkpoint: a9.clone(),
            leaf: la[2].to_bytes(),
            proof: ta.inclusion_proof(2, 9).expect("p"),
        },
        b: Inclusion {
            checkpoint: a10.clone(),
            leaf: la[2].to_bytes(),
            proof: ta.inclusion_proof(2, 10).expect("p"),
        },
    };
    assert!(matches!(same.verify(&v), Err(ForkError::NotAFork(_))));
    // A leaf the honest tree does not hold, with the honest proof.
    let ForkProof::ConflictingLeaves { index, a, mut b } = same else {
        panic!("wrong kind")
    };
    b.leaf = lb[6].to_bytes();
    let lie = ForkProof::ConflictingLeaves { index, a, b };
    assert!(matches!(lie.verify(&v), Err(ForkError::Proof(_))));
    // A real conflict, but at another index than claimed.
    let real = ForkProof::conflicting_leaves(
        6,
        (&a10, &ta, &la[6].to_bytes()),
        (&cp(&s, &tb, 10), &tb, &lb[6].to_bytes()),
    )
    .expect("real");
    assert_eq!(real.verify(&v), Ok(ForkKind::ConflictingLeaves));
    let ForkProof::ConflictingLeaves { a, b, .. } = real else {
        panic!("wrong kind")
    };
    let moved = ForkProof::ConflictingLeaves { index: 7, a, b };
    assert!(matches!(moved.verify(&v), Err(ForkError::Proof(_))));
    // Index beyond one checkpoint.
    assert!(
        ForkProof::conflicting_leaves(
            9,
            (&a9, &ta, &la[9].to_bytes()),
            (&cp(&s, &tb, 10), &tb, &lb[9].to_bytes())
        )
        .is_err()
    );
}

#[test]
fn block_regression_rejects_honest_data() {
    let (s, v) = log();
    let l = leaves(12, 0);
    let t = tree(&l);
    let c = cp(&s, &t, 12);
    assert!(matches!(
        ForkProof::find_block_regression(&c, &t, &l),
        Err(ForkError::NotAFork(_))
    ));
    let at = |k: usize| LeafAt {
        index: k as u64,
        leaf: l[k].to_bytes(),
        proof: t.inclusion_proof(k as u64, 12).expect("p"),
    };
    // Increasing blocks, equal blocks, and a decrease claimed with i > j.
    for (i, j) in [(1, 10), (3, 4), (10, 1), (5, 5)] {
        let p = ForkProof::BlockRegression {
            checkpoint: c.clone(),
            i: at(i),
            j: at(j),
        };
        assert!(
            matches!(p.verify(&v), Err(ForkError::NotAFork(_))),
            "{i} {j}"
        );
    }
    // Leaves that are not log leaves.
    let mut t2 = Tree::new();
    t2.push_data(b"\x03junk");
    t2.push_data(b"\x03junk2");
    let p = ForkProof::block_regression(&cp(&s, &t2, 2), &t2, (0, b"\x03junk"), (1, b"\x03junk2"))
        .expect("p");
    assert!(matches!(p.verify(&v), Err(ForkError::Leaf(_))));
}

#[test]
fn block_regression_found_after_a_plateau() {
    let (s, v) = log();
    let mut l = leaves(16, 2);
    l[13] = Leaf::Block { block: 2, time: 1 };
    let t = tree(&l);
    let p = ForkProof::find_block_regression(&cp(&s, &t, 16), &t, &l).expect("p");
    let ForkProof::BlockRegression { i, j, .. } = &p else {
        panic!("wrong kind")
    };
    // The earliest leaf of the highest block seen before leaf 13 (block 4 at 12).
    assert_eq!((i.index, j.index), (12, 13));
    assert_eq!(p.verify(&v), Ok(ForkKind::BlockRegression));
    // Not within the first 13 leaves.
    assert!(matches!(
        ForkProof::find_block_regression(&cp(&s, &t, 13), &t, &l),
        Err(ForkError::NotAFork(_))
    ));
}

#[test]
fn every_bit_flip_fails_to_decode_or_verify() {
    let (s, v) = log();
    for proof in all_kinds(&s) {
        let bytes = proof.to_bytes().expect("encode");
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let r = ForkProof::from_bytes(&b).and_then(|p| p.verify(&v));
            assert!(r.is_err(), "{:?}: bit {bit} still verifies", proof.kind());
        }
        for cut in 0..bytes.len() {
            assert!(ForkProof::from_bytes(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ForkProof::from_bytes(&longer),
            Err(ForkError::Malformed("trailing bytes"))
        );
    }
}

#[test]
fn another_key_does_not_verify() {
    let (s, v) = log();
    let mallory = signer(2);
    for proof in all_kinds(&mallory) {
        assert!(matches!(proof.verify(&v), Err(ForkError::Note(_))));
        assert_eq!(proof.verify(&mallory.verifier()), Ok(proof.kind()));
    }
    // One checkpoint by the log, the other by someone else.
    let (la, lb) = diverging(8, 2);
    let mixed = ForkProof::SplitView {
        a: cp(&s, &tree(&la), 8),
        b: cp(&mallory, &tree(&lb), 8),
    };
    assert!(matches!(mixed.verify(&v), Err(ForkError::Note(_))));
}

#[test]
fn decoder_enforces_bounds() {
    assert!(ForkProof::from_bytes(b"").is_err());
    assert_eq!(
        ForkProof::from_bytes(b"ATFP\x02\x01"),
        Err(ForkError::Malformed("unsupported version"))
    );
    assert_eq!(
        ForkProof::from_bytes(b"ATFP\x01\x05"),
        Err(ForkError::Malformed("unknown kind"))
    );
    // A huge note length is refused before reading.
    assert_eq!(
        ForkProof::from_bytes(b"ATFP\x01\x01\xff\xff\xff\xff"),
        Err(ForkError::Malformed("checkpoint note size out of range"))
    );
    // Over-long paths and leaves cannot be encoded.
    let (s, _) = log();
    let t = tree(&leaves(4, 0));
    let at = LeafAt {
        index: 0,
        leaf: vec![1; 2000],
        proof: vec![],
    };
    let p = ForkProof::BlockRegression {
        checkpoint: cp(&s, &t, 4),
        i: at.clone(),
        j: LeafAt {
            leaf: vec![1],
            proof: vec![[0; 32]; 65],
            ..at
        },
    };
    assert!(p.to_bytes().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_forks_are_proven(n in 2u64..40, d_frac in 0.0f64..1.0, m_frac in 0.0f64..1.0) {
        let (s, v) = log();
        let d = ((n as f64 * d_frac) as u64).min(n - 1);
        let (la, lb) = diverging(n, d);
        let (ta, tb) = (tree(&la), tree(&lb));
        prop_assert_eq!(first_divergence(&ta, &tb, n), Some(d));
        // Old size m in (d, n): strictly after the divergence, strictly below n.
        let m = d + 1 + ((n - d - 1) as f64 * m_frac) as u64;
        let split = ForkProof::SplitView { a: cp(&s, &ta, n), b: cp(&s, &tb, n) };
        prop_assert_eq!(split.verify(&v), Ok(ForkKind::SplitView));
        if m < n {
            let p = ForkProof::prefix_rewrite(&cp(&s, &ta, m), &ta, &cp(&s, &tb, n), &tb);
            let p = p.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(p.verify(&v), Ok(ForkKind::PrefixRewrite));
            let enc = p.to_bytes().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ForkProof::from_bytes(&enc), Ok(p));
        }
        let k = d as usize;
        let c = ForkProof::conflicting_leaves(
            d,
            (&cp(&s, &ta, m), &ta, &la[k].to_bytes()),
            (&cp(&s, &tb, n), &tb, &lb[k].to_bytes()),
        ).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(c.verify(&v), Ok(ForkKind::ConflictingLeaves));
        // Honest views of either history never prove a fork.
        for t in [&ta, &tb] {
            let split = ForkProof::SplitView { a: cp(&s, t, m), b: cp(&s, t, n) };
            prop_assert!(split.verify(&v).is_err());
            prop_assert!(ForkProof::prefix_rewrite(&cp(&s, t, m), t, &cp(&s, t, n), t).is_err());
        }
        // Agreeing prefixes: below d neither builder finds anything.
        if d > 0 {
            prop_assert!(ForkProof::prefix_rewrite(&cp(&s, &ta, d), &ta, &cp(&s, &tb, n), &tb).is_err());
            let same = ForkProof::SplitView { a: cp(&s, &ta, d), b: cp(&s, &tb, d) };
            prop_assert!(same.verify(&v).is_err());
        }
    }

    #[test]
    fn random_block_regressions_are_proven(n in 2u64..40, at_frac in 0.0f64..1.0, drop in 1u64..5) {
        let (s, v) = log();
        let mut l = leaves(n, 9);
        let t = tree(&l);
        prop_assert!(ForkProof::find_block_regression(&cp(&s, &t, n), &t, &l).is_err());
        // Lower one leaf's block below the maximum before it, if there is room.
        let k = (1 + ((n - 1) as f64 * at_frac) as u64).min(n - 1) as usize;
        let top = l[..k].iter().map(Leaf::block).max().unwrap_or(0);
        prop_assume!(top > 0);
        l[k] = Leaf::Block { block: top.saturating_sub(drop), time: 5 };
        let t = tree(&l);
        let p = ForkProof::find_block_regression(&cp(&s, &t, n), &t, &l)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(p.verify(&v), Ok(ForkKind::BlockRegression));
        if let ForkProof::BlockRegression { j, .. } = &p {
            prop_assert_eq!(j.index, k as u64);
        }
        prop_assert_eq!(leaf_hash(&l[k].to_bytes()), l[k].hash());
    }
}
