//! The in-memory twin of [`SqliteStore`](crate::SqliteStore), for tests.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use atomicity_core::{
    Asset, ConditionalRecord, Direction, EvidenceRecord, ForwardRecord, HashlockRecord, LineRecord,
    PaymentRecord, PeerRecord, ProofRecord, SettlementRecord, Snapshot, StoreOp,
};

use crate::{
    Store, StoreError, check_evidence_time, check_hashlock, check_payment_times, check_proof_time,
    check_settlement, hashlocks_key, history_key, is_pending, is_unfinished, settlements_key,
};

/// A line's key: the peer's key bytes and the asset.
type LineKey = ([u8; 32], Asset);
/// A conditional IOU's key: its line, who issued it and its id.
type ConditionalKey = ([u8; 32], Asset, Direction, u64);
/// A forwarding link's key: the incoming IOU's issuer, asset and id.
type ForwardKey = ([u8; 32], Asset, u64);

/// A [`Store`] that keeps everything in memory, with the same semantics as
/// [`SqliteStore`](crate::SqliteStore) (but nothing survives the process).
///
/// Maps are keyed by the peer's key bytes, since `PublicKey` is not `Ord`.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    peers: BTreeMap<[u8; 32], PeerRecord>,
    lines: BTreeMap<LineKey, LineRecord>,
    conditionals: BTreeMap<ConditionalKey, ConditionalRecord>,
    payments: BTreeMap<[u8; 32], PaymentRecord>,
    evidence: Vec<EvidenceRecord>,
    forwards: BTreeMap<ForwardKey, ForwardRecord>,
    hashlocks: BTreeMap<[u8; 32], HashlockRecord>,
    settlements: BTreeMap<[u8; 32], SettlementRecord>,
    proofs: BTreeMap<[u8; 32], ProofRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Refuses `ops` if the SQLite store would: a timestamp out of range, an unstorable
    /// hashlock or settlement (the first in op order), or, at the end of the batch, a line without its peer or
    /// a conditional without its line.
    fn check(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut new_peers = HashSet::new();
        let mut new_lines = HashSet::new();
        let mut lines_to_check = Vec::new();
        // The last op on each conditional decides whether it exists after the commit.
        let mut conditionals: BTreeMap<ConditionalKey, bool> = BTreeMap::new();
        for op in ops {
            match op {
                StoreOp::PutPeer(p) => {
                    new_peers.insert(*p.key.as_bytes());
                }
                StoreOp::PutLine(l) => {
                    new_lines.insert((*l.peer.as_bytes(), l.asset.clone()));
                    lines_to_check.push(l);
                }
                StoreOp::PutConditional(c) => {
                    conditionals.insert((*c.peer.as_bytes(), c.asset.clone(), c.dir, c.id), true);
                }
                StoreOp::DeleteConditional {
                    peer,
                    asset,
                    dir,
                    id,
                } => {
                    conditionals.insert((*peer.as_bytes(), asset.clone(), *dir, *id), false);
                }
                StoreOp::PutPayment(p) => {
                    check_payment_times(p)?;
                }
                StoreOp::PutEvidence(e) => {
                    check_evidence_time(e)?;
                }
                StoreOp::PutHashlock(h) => {
                    check_hashlock(h)?;
                }
                StoreOp::PutSettlement(s) => {
                    check_settlement(s)?;
                }
                StoreOp::PutProof(p) => {
                    check_proof_time(p)?;
                }
                StoreOp::PutForward(_) | StoreOp::DeleteForward { .. } => {}
            }
        }
        for line in lines_to_check {
            let peer = line.peer.as_bytes();
            if !self.peers.contains_key(peer) && !new_peers.contains(peer) {
                return Err(StoreError::Dangling(format!(
                    "line {} {} without its peer",
                    line.peer, line.asset
                )));
            }
        }
        let present: BTreeSet<LineKey> = conditionals
            .into_iter()
            .filter(|(_, exists)| *exists)
            .map(|((peer, asset, _, _), _)| (peer, asset))
            .collect();
        for line in present {
            if !self.lines.contains_key(&line) && !new_lines.contains(&line) {
                return Err(StoreError::Dangling(format!(
                    "conditional IOU on {} without its line",
                    line.1
                )));
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::PutPeer(p) => {
                self.peers.insert(*p.key.as_bytes(), p.clone());
            }
            StoreOp::PutLine(l) => {
                self.lines
                    .insert((*l.peer.as_bytes(), l.asset.clone()), l.clone());
            }
            StoreOp::PutConditional(c) => {
                self.conditionals.insert(
                    (*c.peer.as_bytes(), c.asset.clone(), c.dir, c.id),
                    c.clone(),
                );
            }
            StoreOp::DeleteConditional {
                peer,
                asset,
                dir,
                id,
            } => {
                self.conditionals
                    .remove(&(*peer.as_bytes(), asset.clone(), *dir, *id));
            }
            StoreOp::PutPayment(p) => {
                self.payments.insert(p.entry, p.clone());
            }
            StoreOp::PutEvidence(e) => self.evidence.push(e.clone()),
            StoreOp::PutForward(f) => {
                self.forwards
                    .insert((*f.in_peer.as_bytes(), f.asset.clone(), f.in_id), f.clone());
            }
            StoreOp::DeleteForward {
                asset,
                in_peer,
                in_id,
            } => {
                self.forwards
                    .remove(&(*in_peer.as_bytes(), asset.clone(), *in_id));
            }
            StoreOp::PutHashlock(h) => {
                self.hashlocks.insert(h.hash, h.clone());
            }
            StoreOp::PutSettlement(s) => {
                self.settlements.insert(s.id, (**s).clone());
            }
            StoreOp::PutProof(p) => {
                self.proofs.entry(p.hash).or_insert_with(|| p.clone());
            }
        }
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            peers: self.peers.values().cloned().collect(),
            lines: self.lines.values().cloned().collect(),
            conditionals: self.conditionals.values().cloned().collect(),
            pending_payments: self
                .payments
                .values()
                .filter(|p| is_pending(p))
                .cloned()
                .collect(),
            forwards: self.forwards.values().cloned().collect(),
            hashlocks: self
                .hashlocks
                .values()
                .filter(|h| is_unfinished(h))
                .cloned()
                .collect(),
            settlements: self.settlements.values().cloned().collect(),
        })
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        self.check(ops)?;
        for op in ops {
            self.apply(op);
        }
        Ok(())
    }

    fn history(&mut self, limit: usize) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut all: Vec<&PaymentRecord> = self.payments.values().collect();
        all.sort_by_key(|p| history_key(p));
        Ok(all.into_iter().take(limit).cloned().collect())
    }

    fn evidence(&mut self) -> Result<Vec<EvidenceRecord>, StoreError> {
        Ok(self.evidence.clone())
    }

    fn hashlocks(&self, limit: usize) -> Result<Vec<HashlockRecord>, StoreError> {
        let mut all: Vec<&HashlockRecord> = self.hashlocks.values().collect();
        all.sort_by_key(|h| hashlocks_key(h));
        Ok(all.into_iter().take(limit).cloned().collect())
    }

    fn hashlock(&self, hash: &[u8; 32]) -> Result<Option<HashlockRecord>, StoreError> {
        Ok(self.hashlocks.get(hash).cloned())
    }

    fn settlements(&self, limit: usize) -> Result<Vec<SettlementRecord>, StoreError> {
        let mut all: Vec<&SettlementRecord> = self.settlements.values().collect();
        all.sort_by_key(|s| settlements_key(s));
        Ok(all.into_iter().take(limit).cloned().collect())
    }

    fn settlement(&self, id: &[u8; 32]) -> Result<Option<SettlementRecord>, StoreError> {
        Ok(self.settlements.get(id).cloned())
    }

    fn proof(&self, hash: &[u8; 32]) -> Result<Option<ProofRecord>, StoreError> {
        Ok(self.proofs.get(hash).cloned())
    }
}
