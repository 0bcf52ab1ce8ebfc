//! Tests for `atomicity_witness::merkle`.
//!
//! Known-answer vectors come from transparency-dev/merkle (the Go successor of the
//! certificate-transparency / trillian Merkle code):
//! - `testonly/constants.go`: `LeafInputs`, `NodeHashes`, `RootHashes`, `CompactTrees`;
//! - `proof/verify_test.go`: `inclusionProofs`, `consistencyProofs` and the
//!   corruption probes (`corruptInclusionProof`, `corruptConsistencyProof`,
//!   `TestVerifyConsistency`).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use atomicity_witness::merkle::{
    Hash, ProofError, Tree, consistency_proof, empty_root, inclusion_len, inclusion_proof,
    leaf_hash, node_hash, root, root_and_inclusion_proofs, root_from_inclusion, verify_consistency,
    verify_inclusion,
};
use proptest::prelude::*;

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

/// testonly/constants.go `LeafInputs()`.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// testonly/constants.go `NodeHashes()[0]`: the leaf hashes.
const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// testonly/constants.go `NodeHashes()[1..]`: complete subtrees of levels 1, 2, 3.
const LEVEL1: [&str; 4] = [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
];
const LEVEL2: [&str; 2] = [
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
];
const LEVEL3: &str = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";

/// testonly/constants.go `RootHashes()`, indexed by tree size 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// proof/verify_test.go `inclusionProofs` (its `leaf` is 1-based; here 0-based).
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            hs(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            5,
            8,
            hs(&[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            3,
            hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        ),
        (
            1,
            5,
            hs(&[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ]
}

/// proof/verify_test.go `consistencyProofs`.
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            hs(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            6,
            8,
            hs(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            5,
            hs(&[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
        (
            6,
            7,
            hs(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
    ]
}

fn vector_leaves() -> Vec<Hash> {
    LEAF_INPUTS
        .iter()
        .map(|s| leaf_hash(&hex::decode(s).unwrap()))
        .collect()
}

fn vector_root(size: u64) -> Hash {
    h(ROOTS[size as usize])
}

/// A hash that is none of the test hashes (verify_test.go `sha256SomeHash`).
fn some_hash() -> Hash {
    h("abacaba000000000000000000000000000000000000000000060061e00123456")
}

#[test]
fn empty_root_is_sha256_of_empty_string() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(root(&[]), h(ROOTS[0]));
    assert_eq!(Tree::new().root(), h(ROOTS[0]));
    assert_eq!(Tree::new().root_at(0).unwrap(), h(ROOTS[0]));
}

#[test]
fn leaf_and_node_hashes_match_vectors() {
    let leaves = vector_leaves();
    assert_eq!(leaves, hs(&LEAF_HASHES));
    let l1: Vec<Hash> = leaves.chunks(2).map(|c| node_hash(&c[0], &c[1])).collect();
    assert_eq!(l1, hs(&LEVEL1));
    let l2: Vec<Hash> = l1.chunks(2).map(|c| node_hash(&c[0], &c[1])).collect();
    assert_eq!(l2, hs(&LEVEL2));
    assert_eq!(node_hash(&l2[0], &l2[1]), h(LEVEL3));
}

#[test]
fn roots_match_vectors() {
    let leaves = vector_leaves();
    for size in 0..=8u64 {
        assert_eq!(
            root(&leaves[..size as usize]),
            vector_root(size),
            "size {size}"
        );
    }
}

#[test]
fn tree_roots_and_right_edge_match_vectors() {
    let leaves = vector_leaves();
    // testonly/constants.go `CompactTrees()`.
    let (n0, n1, n2) = (hs(&LEAF_HASHES), hs(&LEVEL1), hs(&LEVEL2));
    let compact: [Vec<Hash>; 9] = [
        vec![],
        vec![n0[0]],
        vec![n1[0]],
        vec![n1[0], n0[2]],
        vec![n2[0]],
        vec![n2[0], n0[4]],
        vec![n2[0], n1[2]],
        vec![n2[0], n1[2], n0[6]],
        vec![h(LEVEL3)],
    ];
    let mut tree = Tree::new();
    assert_eq!(tree.right_edge(), compact[0]);
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(tree.push(*leaf), i as u64);
        let size = i as u64 + 1;
        assert_eq!(tree.len(), size);
        assert_eq!(tree.root(), vector_root(size), "size {size}");
        assert_eq!(tree.right_edge(), compact[i + 1], "size {size}");
    }
    for size in 0..=8u64 {
        assert_eq!(
            tree.root_at(size).unwrap(),
            vector_root(size),
            "size {size}"
        );
    }
    assert_eq!(
        tree.root_at(9),
        Err(ProofError::SizeOutOfRange {
            size: 9,
            available: 8
        })
    );
    let mut by_data = Tree::new();
    for s in LEAF_INPUTS {
        by_data.push_data(&hex::decode(s).unwrap());
    }
    assert_eq!(by_data, tree);
}

#[test]
fn inclusion_proofs_match_vectors() {
    let leaves = vector_leaves();
    let tree = Tree::from_leaf_hashes(&leaves);
    for (index, size, want) in inclusion_vectors() {
        let got = inclusion_proof(&leaves[..size as usize], index).unwrap();
        assert_eq!(got, want, "free ({index}, {size})");
        assert_eq!(tree.inclusion_proof(index, size).unwrap(), want);
        let leaf = leaves[index as usize];
        verify_inclusion(&leaf, index, size, &want, &vector_root(size)).unwrap();
    }
}

#[test]
fn inclusion_rejects_corruptions() {
    // verify_test.go `corruptInclusionProof` probes (those expressible with 32-byte
    // hashes), for every non-trivial vector.
    let leaves = vector_leaves();
    for (index, size, proof) in inclusion_vectors().into_iter().skip(1) {
        let leaf = leaves[index as usize];
        let root = vector_root(size);
        let bad = |i: u64, s: u64, leaf: Hash, proof: &[Hash], root: Hash| {
            verify_inclusion(&leaf, i, s, proof, &root).is_err()
        };
        assert!(bad(index.wrapping_sub(1), size, leaf, &proof, root));
        assert!(bad(index + 1, size, leaf, &proof, root));
        assert!(bad(index ^ 2, size, leaf, &proof, root));
        assert!(bad(index, size * 2, leaf, &proof, root));
        assert!(bad(index, size / 2, leaf, &proof, root));
        assert!(bad(index, size, some_hash(), &proof, root));
        assert!(bad(index, size, leaf, &proof, empty_root()));
        assert!(bad(index, size, leaf, &proof, some_hash()));
        let mut longer = proof.clone();
        longer.push(root);
        assert!(bad(index, size, leaf, &longer, root));
        let mut front = vec![root];
        front.extend_from_slice(&proof);
        assert!(bad(index, size, leaf, &front, root));
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i][0] ^= 8;
            assert!(bad(index, size, leaf, &p, root));
        }
        assert!(bad(index, size, leaf, &proof[..proof.len() - 1], root));
        if proof.len() > 1 {
            let mut p = vec![proof[0], some_hash()];
            p.extend_from_slice(&proof[1..]);
            assert!(bad(index, size, leaf, &p, root));
        }
    }
}

#[test]
fn inclusion_edge_cases() {
    // verify_test.go `TestVerifyInclusion` probes and `TestVerifyInclusionSingleEntry`.
    for (index, size) in [(0, 0), (1, 0), (2, 1)] {
        assert_eq!(
            verify_inclusion(&some_hash(), index, size, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index, size })
        );
    }
    assert_eq!(
        verify_inclusion(&some_hash(), 0, 1, &[], &empty_root()),
        Err(ProofError::RootMismatch)
    );
    let hash = leaf_hash(b"data");
    verify_inclusion(&hash, 0, 1, &[], &hash).unwrap();
    assert_eq!(
        verify_inclusion(&hash, 0, 1, &[hash], &hash),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        inclusion_proof(&[], 0),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    let tree = Tree::from_leaf_hashes(&vector_leaves());
    assert_eq!(
        tree.inclusion_proof(3, 3),
        Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 9),
        Err(ProofError::SizeOutOfRange {
            size: 9,
            available: 8
        })
    );
    assert_eq!(
        verify_inclusion(&hash, u64::MAX - 1, u64::MAX, &[], &hash),
        Err(ProofError::WrongProofLength {
            expected: 63,
            got: 0
        })
    );
    // Huge sizes run the full algorithm without overflow.
    for (index, size) in [(u64::MAX - 1, u64::MAX), (0, u64::MAX), (1 << 63, u64::MAX)] {
        let len = if index == 0 || index == 1 << 63 {
            64
        } else {
            63
        };
        assert_eq!(
            verify_inclusion(&hash, index, size, &vec![hash; len], &hash),
            Err(ProofError::RootMismatch)
        );
    }
}

#[test]
fn consistency_proofs_match_vectors() {
    let leaves = vector_leaves();
    let tree = Tree::from_leaf_hashes(&leaves);
    for (old, new, want) in consistency_vectors() {
        let got = consistency_proof(&leaves[..new as usize], old).unwrap();
        assert_eq!(got, want, "free ({old}, {new})");
        assert_eq!(tree.consistency_proof(old, new).unwrap(), want);
        verify_consistency(old, new, &vector_root(old), &vector_root(new), &want).unwrap();
    }
}

#[test]
fn consistency_rejects_corruptions() {
    // verify_test.go `corruptConsistencyProof` probes for every non-trivial vector.
    for (old, new, proof) in consistency_vectors().into_iter().skip(1) {
        let (r1, r2) = (vector_root(old), vector_root(new));
        let bad = |o: u64, n: u64, r1: Hash, r2: Hash, p: &[Hash]| {
            verify_consistency(o, n, &r1, &r2, p).is_err()
        };
        assert!(bad(old - 1, new, r1, r2, &proof));
        assert!(bad(old + 1, new, r1, r2, &proof));
        assert!(bad(old ^ 2, new, r1, r2, &proof));
        assert!(bad(old, new * 2, r1, r2, &proof));
        assert!(bad(old, new / 2, r1, r2, &proof));
        assert!(bad(old, new, some_hash(), r2, &proof));
        assert!(bad(old, new, r1, some_hash(), &proof));
        assert!(bad(old, new, r2, r1, &proof));
        assert!(bad(old, new, r1, r2, &[]));
        for extra in [r1, r2] {
            let mut p = proof.clone();
            p.push(extra);
            assert!(bad(old, new, r1, r2, &p));
        }
        for extra in [r1, r2, proof[0]] {
            let mut p = vec![extra];
            p.extend_from_slice(&proof);
            assert!(bad(old, new, r1, r2, &p));
        }
        assert!(bad(old, new, r1, r2, &proof[..proof.len() - 1]));
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i][0] ^= 16;
            assert!(bad(old, new, r1, r2, &p));
        }
    }
}

#[test]
fn consistency_edge_cases() {
    // verify_test.go `TestVerifyConsistency`, except that size 0 is rejected here.
    let (a, b) = (some_hash(), empty_root());
    let invalid = |old, new| ProofError::InvalidSizes { old, new };
    assert_eq!(verify_consistency(0, 0, &a, &a, &[]), Err(invalid(0, 0)));
    assert_eq!(verify_consistency(0, 1, &a, &b, &[]), Err(invalid(0, 1)));
    assert_eq!(verify_consistency(1, 0, &a, &b, &[]), Err(invalid(1, 0)));
    assert_eq!(verify_consistency(2, 1, &a, &b, &[]), Err(invalid(2, 1)));
    verify_consistency(1, 1, &a, &a, &[]).unwrap();
    verify_consistency(5, 5, &b, &b, &[]).unwrap();
    assert_eq!(
        verify_consistency(1, 1, &a, &b, &[]),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(1, 1, &b, &b, &[b]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        verify_consistency(1, 2, &a, &b, &[]),
        Err(ProofError::WrongProofLength {
            expected: 1,
            got: 0
        })
    );
    let leaves = vector_leaves();
    assert_eq!(consistency_proof(&leaves, 0), Err(invalid(0, 8)));
    assert_eq!(consistency_proof(&leaves, 9), Err(invalid(9, 8)));
    assert_eq!(consistency_proof(&leaves, 8).unwrap(), Vec::<Hash>::new());
    let tree = Tree::from_leaf_hashes(&leaves);
    assert_eq!(tree.consistency_proof(3, 2), Err(invalid(3, 2)));
    assert_eq!(
        tree.consistency_proof(3, 9),
        Err(ProofError::SizeOutOfRange {
            size: 9,
            available: 8
        })
    );
    assert!(verify_consistency(u64::MAX - 1, u64::MAX, &a, &b, &[]).is_err());
    for (old, new) in [(u64::MAX - 1, u64::MAX), (1, u64::MAX), (1 << 63, u64::MAX)] {
        for len in 0..130 {
            let r = verify_consistency(old, new, &a, &b, &vec![b; len]);
            assert!(r.is_err(), "({old}, {new}) len {len}");
        }
    }
}

/// Distinct pseudo-random leaf hashes.
/// Every leaf's proof made at once is the proof made for that leaf alone, and leads back to
/// the root: for every size up to 70 (all the shapes of small unbalanced trees) and the vectors.
#[test]
fn all_inclusion_proofs_at_once_match_one_at_a_time() {
    assert_eq!(root_and_inclusion_proofs(&[]), (empty_root(), vec![]));
    for n in 1..=70 {
        let leaves = random_leaves(n, n as u64);
        let (r, paths) = root_and_inclusion_proofs(&leaves);
        assert_eq!(r, root(&leaves), "size {n}");
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(
                *path,
                inclusion_proof(&leaves, i as u64).unwrap(),
                "{i} of {n}"
            );
            assert_eq!(path.len(), inclusion_len(i as u64, n as u64));
            assert_eq!(
                root_from_inclusion(&leaves[i], i as u64, n as u64, path).unwrap(),
                r
            );
        }
    }
    let leaves = vector_leaves();
    let (r, _) = root_and_inclusion_proofs(&leaves);
    assert_eq!(r, vector_root(leaves.len() as u64));
    assert_eq!(inclusion_len(3, 3), 0);
}

fn random_leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect()
}

fn flip(mut x: Hash, bit: usize) -> Hash {
    x[(bit / 8) % 32] ^= 1 << (bit % 8);
    x
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every inclusion proof (free and `Tree`) of a random tree verifies, and only
    /// for its own leaf, index and checkpoint.
    #[test]
    fn prop_every_inclusion_proof_verifies(n in 1usize..300, seed: u64) {
        let leaves = random_leaves(n, seed);
        let tree = Tree::from_leaf_hashes(&leaves);
        let size = n as u64;
        let r = root(&leaves);
        prop_assert_eq!(tree.root(), r);
        for (i, leaf) in leaves.iter().enumerate() {
            let index = i as u64;
            let proof = inclusion_proof(&leaves, index).unwrap();
            prop_assert_eq!(&tree.inclusion_proof(index, size).unwrap(), &proof);
            prop_assert_eq!(verify_inclusion(leaf, index, size, &proof, &r), Ok(()));
            // Wrong index against the same checkpoint.
            for j in [index.wrapping_sub(1), index + 1, index ^ 1, index ^ 2] {
                if j != index {
                    prop_assert!(verify_inclusion(leaf, j, size, &proof, &r).is_err());
                }
            }
            // Wrong size: the proof does not verify against another checkpoint.
            for s in [size - 1, size / 2, index + 1] {
                if s != size && s > index {
                    let rs = tree.root_at(s).unwrap();
                    prop_assert!(verify_inclusion(leaf, index, s, &proof, &rs).is_err());
                }
            }
        }
    }

    /// Flipping any single bit of a proof hash, the leaf hash or the root fails.
    #[test]
    fn prop_inclusion_bit_flips_fail(
        n in 1usize..300,
        seed: u64,
        index_pick: usize,
        bit in 0usize..256,
    ) {
        let leaves = random_leaves(n, seed);
        let index = index_pick % n;
        let size = n as u64;
        let (leaf, r) = (leaves[index], root(&leaves));
        let proof = inclusion_proof(&leaves, index as u64).unwrap();
        let i = index as u64;
        prop_assert!(verify_inclusion(&flip(leaf, bit), i, size, &proof, &r).is_err());
        prop_assert!(verify_inclusion(&leaf, i, size, &proof, &flip(r, bit)).is_err());
        for k in 0..proof.len() {
            let mut p = proof.clone();
            p[k] = flip(p[k], bit);
            prop_assert!(verify_inclusion(&leaf, i, size, &p, &r).is_err());
        }
    }

    /// Every consistency proof to the full tree verifies (free and `Tree`), and
    /// `Tree` serves the same proofs for earlier sizes; wrong sizes fail.
    #[test]
    fn prop_every_consistency_proof_verifies(n in 1usize..300, seed: u64, new_pick: usize) {
        let leaves = random_leaves(n, seed);
        let tree = Tree::from_leaf_hashes(&leaves);
        let roots: Vec<Hash> = (0..=n).map(|k| root(&leaves[..k])).collect();
        let earlier = 1 + new_pick % n;
        for new in [n, earlier] {
            let new_u = new as u64;
            for old in 1..=new {
                let old_u = old as u64;
                let proof = consistency_proof(&leaves[..new], old_u).unwrap();
                prop_assert_eq!(&tree.consistency_proof(old_u, new_u).unwrap(), &proof);
                prop_assert_eq!(
                    verify_consistency(old_u, new_u, &roots[old], &roots[new], &proof),
                    Ok(())
                );
                // Wrong old size, against that size's real root.
                for o in [old - 1, old + 1, old / 2] {
                    if o != old && o >= 1 && o <= new {
                        prop_assert!(
                            verify_consistency(o as u64, new_u, &roots[o], &roots[new], &proof)
                                .is_err()
                        );
                    }
                }
                // Wrong new size, against that size's real root.
                for s in [new - 1, new + 1] {
                    if s != new && s >= old && s <= n && old != new {
                        prop_assert!(
                            verify_consistency(old_u, s as u64, &roots[old], &roots[s], &proof)
                                .is_err()
                        );
                    }
                }
            }
        }
    }

    /// Flipping any single bit of a consistency proof hash or either root fails.
    #[test]
    fn prop_consistency_bit_flips_fail(
        n in 2usize..300,
        seed: u64,
        old_pick: usize,
        bit in 0usize..256,
    ) {
        let leaves = random_leaves(n, seed);
        let old = 1 + old_pick % (n - 1);
        let (o, s) = (old as u64, n as u64);
        let (r1, r2) = (root(&leaves[..old]), root(&leaves));
        let proof = consistency_proof(&leaves, o).unwrap();
        prop_assert_eq!(verify_consistency(o, s, &r1, &r2, &proof), Ok(()));
        prop_assert!(verify_consistency(o, s, &flip(r1, bit), &r2, &proof).is_err());
        prop_assert!(verify_consistency(o, s, &r1, &flip(r2, bit), &proof).is_err());
        for k in 0..proof.len() {
            let mut p = proof.clone();
            p[k] = flip(p[k], bit);
            prop_assert!(verify_consistency(o, s, &r1, &r2, &p).is_err());
        }
    }

    /// Brute force: `Tree::root_at(k)` and the incremental root equal `root(&leaves[..k])`
    /// for every k, the right edge folds to the root, and `Tree` serves inclusion
    /// proofs for earlier sizes identical to the free function's.
    #[test]
    fn prop_tree_agrees_with_free_functions(n in 0usize..300, seed: u64, pick: usize) {
        let leaves = random_leaves(n, seed);
        let mut tree = Tree::new();
        for k in 0..=n {
            let want = root(&leaves[..k]);
            prop_assert_eq!(tree.root(), want);
            let edge = tree.right_edge();
            let folded = edge.iter().rev().copied().reduce(|acc, l| node_hash(&l, &acc));
            prop_assert_eq!(folded.unwrap_or_else(empty_root), want);
            if k < n {
                tree.push(leaves[k]);
            }
        }
        prop_assert_eq!(tree.leaf_hashes(), &leaves[..]);
        for k in 0..=n {
            prop_assert_eq!(tree.root_at(k as u64).unwrap(), root(&leaves[..k]));
            if k > 0 {
                let index = (pick % k) as u64;
                prop_assert_eq!(
                    tree.inclusion_proof(index, k as u64).unwrap(),
                    inclusion_proof(&leaves[..k], index).unwrap()
                );
            }
        }
    }

    /// `Tree::truncate(k)` leaves exactly the tree built from the first `k` leaves, and
    /// pushing after it behaves the same too.
    #[test]
    fn prop_truncate_equals_rebuilt_prefix(n in 0usize..300, seed: u64, cut: usize, more: u64) {
        let leaves = random_leaves(n, seed);
        let k = if n == 0 { 0 } else { cut % (n + 1) };
        let mut tree = Tree::from_leaf_hashes(&leaves);
        tree.truncate(k as u64);
        prop_assert_eq!(&tree, &Tree::from_leaf_hashes(&leaves[..k]));
        let extra = random_leaves(3, more);
        tree.extend(extra.iter().copied());
        let mut want = leaves[..k].to_vec();
        want.extend(extra);
        prop_assert_eq!(tree, Tree::from_leaf_hashes(&want));
    }
}

/// Timing on a 10^6-leaf tree; run with
/// `cargo test --release -p atomicity-witness --test merkle -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn timing_million_leaves() {
    const N: u64 = 1_000_000;
    let t = Instant::now();
    let mut tree = Tree::new();
    for i in 0..N {
        tree.push_data(&i.to_le_bytes());
    }
    println!("build {N} leaves: {:?}", t.elapsed());
    let t = Instant::now();
    let r = tree.root();
    println!("root(): {:?}", t.elapsed());
    assert_eq!(tree.root_at(N).unwrap(), r);

    const K: u64 = 10_000;
    let sizes: Vec<u64> = (0..K).map(|i| N - (i * 7919) % (N / 2)).collect();
    let t = Instant::now();
    let roots: Vec<Hash> = sizes.iter().map(|&s| tree.root_at(s).unwrap()).collect();
    println!("root_at: {:?} each", t.elapsed() / K as u32);

    let t = Instant::now();
    let proofs: Vec<Vec<Hash>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| tree.inclusion_proof((i as u64 * 104_729) % s, s).unwrap())
        .collect();
    println!("inclusion_proof: {:?} each", t.elapsed() / K as u32);
    let t = Instant::now();
    for (i, (&s, p)) in sizes.iter().zip(&proofs).enumerate() {
        let index = (i as u64 * 104_729) % s;
        let leaf = tree.leaf_hash(index).unwrap();
        verify_inclusion(&leaf, index, s, p, &roots[i]).unwrap();
    }
    println!("verify_inclusion: {:?} each", t.elapsed() / K as u32);

    let olds: Vec<u64> = (0..K).map(|i| 1 + (i * 15_485_863) % (N / 2)).collect();
    let t = Instant::now();
    let cproofs: Vec<Vec<Hash>> = olds
        .iter()
        .zip(&sizes)
        .map(|(&o, &s)| tree.consistency_proof(o, s).unwrap())
        .collect();
    println!("consistency_proof: {:?} each", t.elapsed() / K as u32);
    let old_roots: Vec<Hash> = olds.iter().map(|&o| tree.root_at(o).unwrap()).collect();
    let t = Instant::now();
    for i in 0..K as usize {
        verify_consistency(olds[i], sizes[i], &old_roots[i], &roots[i], &cproofs[i]).unwrap();
    }
    println!("verify_consistency: {:?} each", t.elapsed() / K as u32);

    let leaves = tree.leaf_hashes();
    let t = Instant::now();
    let p = inclusion_proof(leaves, 123_456).unwrap();
    println!("free inclusion_proof (O(n)): {:?}", t.elapsed());
    assert_eq!(p, tree.inclusion_proof(123_456, N).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Verification never panics on arbitrary peer input.
    #[test]
    fn prop_verify_garbage_never_panics(
        a: u64,
        b: u64,
        len in 0usize..70,
        fill: [u8; 32],
    ) {
        let proof = vec![fill; len];
        let _ = verify_inclusion(&fill, a, b, &proof, &fill);
        let _ = verify_consistency(a, b, &fill, &fill, &proof);
        let _ = verify_consistency(a.min(b), a.max(b), &fill, &fill, &proof);
    }
}
