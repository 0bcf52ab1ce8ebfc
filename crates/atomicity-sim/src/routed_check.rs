//! The routed simulation's oracle: what became of every routed IOU, read only from the store
//! operations the nodes committed (and the decoders), so the checks do not trust the channel
//! logic they check.
//!
//! An IOU is decided when its *issuer* commits the state that resolves it
//! ([`StoreOp::DeleteConditional`] with [`Direction::Out`]): it was **counted** (the issuer now
//! owes it) if its last stored record was accepted and claimed with a proof, otherwise
//! **dropped** (released, or expired unclaimed). The holder decides it again when it takes that
//! state ([`Direction::In`]); both must agree. Forwarding links ([`StoreOp::PutForward`]) tie the
//! IOU a hop accepted to the one it issued for it.

use std::collections::BTreeMap;

use atomicity_core::{
    ConditionalIou, Direction, PublicKey, Release, ReleaseReason, Signed, StoreOp,
};

/// A routed IOU: (issuer, holder, id on the issuer's line), by node index (one asset).
pub(crate) type IouId = (usize, usize, u64);

/// What an IOU finally was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The issuer's state counted it: the holder was paid.
    Counted,
    /// Resolved without being counted: released or expired.
    Dropped,
}

/// The answer a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Accepted,
    Released(Option<ReleaseReason>),
}

/// Everything known about one routed IOU.
#[derive(Clone, Debug)]
pub(crate) struct IouTrack {
    pub hash: [u8; 32],
    pub amount: u64,
    /// The answer in the issuer's last record.
    pub answer: Option<Answer>,
    /// Whether the issuer ever stored an acceptance.
    pub ever_accepted: bool,
    /// The issuer's last record says the holder claimed it.
    pub claimed: bool,
    /// The holder's last record: (accepted, has a proof).
    pub holder_view: Option<(bool, bool)>,
    /// Decided by the issuer.
    pub outcome: Option<Outcome>,
    /// Decided by the holder.
    pub holder_outcome: Option<Outcome>,
}

/// Every routed IOU and forwarding link any node committed.
#[derive(Default)]
pub(crate) struct Tracker {
    pub ious: BTreeMap<IouId, IouTrack>,
    pub by_hash: BTreeMap<[u8; 32], Vec<IouId>>,
    /// Incoming IOU of a hop → the IOU it issued to forward it.
    pub fwd: BTreeMap<IouId, IouId>,
    /// Outgoing IOU → the incoming IOU it forwards.
    pub back: BTreeMap<IouId, IouId>,
}

/// A short name for an IOU in messages.
pub(crate) fn name(id: &IouId) -> String {
    format!("n{}→n{}#{}", id.0, id.1, id.2)
}

/// The first four bytes of a hash, in hex.
pub(crate) fn short(hash: &[u8; 32]) -> String {
    hash[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_answer(bytes: &[u8]) -> Result<Answer, String> {
    match bytes.split_first() {
        Some((3, _)) => Ok(Answer::Accepted),
        Some((4, rest)) => {
            let release =
                Signed::<Release>::decode(rest).map_err(|e| format!("stored release: {e}"))?;
            Ok(Answer::Released(Some(release.body().reason)))
        }
        _ => Err("a stored answer with an unknown tag".into()),
    }
}

impl Tracker {
    /// Takes the ops node `n` just committed. Returns the IOUs decided by them (issuer side),
    /// or what is wrong. `index_of` names keys by node index.
    pub fn apply(
        &mut self,
        n: usize,
        ops: &[StoreOp],
        index_of: impl Fn(&PublicKey) -> Option<usize>,
    ) -> Result<Vec<IouId>, String> {
        let mut decided = Vec::new();
        let peer_of = |pk: &PublicKey| {
            index_of(pk).ok_or_else(|| format!("n{n} stored something about a stranger {pk}"))
        };
        for op in ops {
            match op {
                StoreOp::PutConditional(rec) => {
                    let peer = peer_of(&rec.peer)?;
                    let id = match rec.dir {
                        Direction::Out => (n, peer, rec.id),
                        Direction::In => (peer, n, rec.id),
                    };
                    if !self.ious.contains_key(&id) {
                        let iou = Signed::<ConditionalIou>::decode(&rec.iou.bytes())
                            .map_err(|e| format!("n{n} stored an undecodable IOU: {e}"))?;
                        let Some(condition) = iou.body().condition.witness() else {
                            // Direct IOUs are not part of this simulation.
                            return Err(format!("n{n} stored a direct IOU {}", name(&id)));
                        };
                        self.by_hash.entry(condition.hash).or_default().push(id);
                        self.ious.insert(
                            id,
                            IouTrack {
                                hash: condition.hash,
                                amount: iou.body().amount.minor(),
                                answer: None,
                                ever_accepted: false,
                                claimed: false,
                                holder_view: None,
                                outcome: None,
                                holder_outcome: None,
                            },
                        );
                    }
                    let Some(track) = self.ious.get_mut(&id) else {
                        continue;
                    };
                    let answer = rec
                        .answer
                        .as_ref()
                        .map(|a| decode_answer(&a.bytes()))
                        .transpose()?;
                    match rec.dir {
                        Direction::Out => {
                            if track.outcome.is_some() {
                                return Err(format!(
                                    "n{n} stored {} again after its state resolved it",
                                    name(&id)
                                ));
                            }
                            if matches!(track.answer, Some(Answer::Released(_)))
                                && answer == Some(Answer::Accepted)
                            {
                                return Err(format!(
                                    "n{n}'s record of {} went from released back to accepted",
                                    name(&id)
                                ));
                            }
                            if track.claimed && !rec.claimed {
                                return Err(format!("n{n} forgot that {} was claimed", name(&id)));
                            }
                            if track.answer.is_some() && answer.is_none() {
                                return Err(format!(
                                    "n{n}'s record of {} lost its answer",
                                    name(&id)
                                ));
                            }
                            track.answer = answer;
                            track.ever_accepted |= answer == Some(Answer::Accepted);
                            track.claimed = rec.claimed;
                            if track.claimed && track.answer != Some(Answer::Accepted) {
                                return Err(format!(
                                    "n{n} records {} claimed without an acceptance",
                                    name(&id)
                                ));
                            }
                        }
                        Direction::In => {
                            if track.holder_outcome.is_some() {
                                return Err(format!(
                                    "holder n{n} stored {} again after a state resolved it",
                                    name(&id)
                                ));
                            }
                            let accepted = answer == Some(Answer::Accepted);
                            let proof = rec.proof.is_some();
                            if let Some((_, had_proof)) = track.holder_view
                                && had_proof
                                && !proof
                            {
                                return Err(format!(
                                    "holder n{n} forgot its proof for {}",
                                    name(&id)
                                ));
                            }
                            if proof && !accepted {
                                return Err(format!(
                                    "holder n{n} holds a proof for {}, which it released",
                                    name(&id)
                                ));
                            }
                            track.holder_view = Some((accepted, proof));
                        }
                    }
                }
                StoreOp::DeleteConditional { peer, dir, id, .. } => {
                    let peer = peer_of(peer)?;
                    let key = match dir {
                        Direction::Out => (n, peer, *id),
                        Direction::In => (peer, n, *id),
                    };
                    let Some(track) = self.ious.get_mut(&key) else {
                        return Err(format!("n{n} resolved {}, which nobody stored", name(&key)));
                    };
                    match dir {
                        Direction::Out => {
                            if track.outcome.is_some() {
                                return Err(format!("n{n} resolved {} twice", name(&key)));
                            }
                            let counted = track.answer == Some(Answer::Accepted) && track.claimed;
                            track.outcome = Some(if counted {
                                Outcome::Counted
                            } else {
                                Outcome::Dropped
                            });
                            decided.push(key);
                        }
                        Direction::In => {
                            if track.holder_outcome.is_some() {
                                return Err(format!("holder n{n} resolved {} twice", name(&key)));
                            }
                            let counted = track.holder_view == Some((true, true));
                            track.holder_outcome = Some(if counted {
                                Outcome::Counted
                            } else {
                                Outcome::Dropped
                            });
                            match track.outcome {
                                None => {
                                    return Err(format!(
                                        "holder n{n} resolved {} before its issuer did",
                                        name(&key)
                                    ));
                                }
                                Some(o) if Some(o) != track.holder_outcome => {
                                    return Err(format!(
                                        "{}: the issuer's state resolved it as {o:?}, the holder \
                                         took it as {:?}",
                                        name(&key),
                                        track.holder_outcome
                                    ));
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
                StoreOp::PutForward(f) => {
                    let inn = (peer_of(&f.in_peer)?, n, f.in_id);
                    let out = (n, peer_of(&f.out_peer)?, f.out_id);
                    if let Some(prev) = self.fwd.get(&inn)
                        && *prev != out
                    {
                        return Err(format!(
                            "n{n} forwarded {} twice: as {} and as {}",
                            name(&inn),
                            name(prev),
                            name(&out)
                        ));
                    }
                    if let Some(prev) = self.back.get(&out)
                        && *prev != inn
                    {
                        return Err(format!(
                            "n{n}'s IOU {} forwards both {} and {}",
                            name(&out),
                            name(prev),
                            name(&inn)
                        ));
                    }
                    self.fwd.insert(inn, out);
                    self.back.insert(out, inn);
                }
                StoreOp::PutEvidence(e) => {
                    let who =
                        index_of(&e.peer).map_or_else(|| e.peer.to_string(), |i| format!("n{i}"));
                    return Err(format!(
                        "n{n} recorded evidence against honest {who}: {}",
                        e.what
                    ));
                }
                _ => {}
            }
        }
        for id in &decided {
            self.check_decided(id)?;
        }
        Ok(decided)
    }

    /// The checks when the issuer decides `id`: hop safety across its forwarding links, and
    /// all-or-nothing across every IOU of its payment hash.
    pub fn check_decided(&self, id: &IouId) -> Result<(), String> {
        let Some(track) = self.ious.get(id) else {
            return Ok(());
        };
        let outcome = |x: &IouId| self.ious.get(x).and_then(|t| t.outcome);
        if track.outcome == Some(Outcome::Counted)
            && let Some(inn) = self.back.get(id)
            && outcome(inn) == Some(Outcome::Dropped)
        {
            return Err(format!(
                "hop n{} paid downstream ({} counted) but was not paid upstream ({} dropped)",
                id.0,
                name(id),
                name(inn)
            ));
        }
        if track.outcome == Some(Outcome::Dropped)
            && let Some(out) = self.fwd.get(id)
            && outcome(out) == Some(Outcome::Counted)
        {
            return Err(format!(
                "hop n{} was not paid upstream ({} dropped) but paid downstream ({} counted)",
                id.1,
                name(id),
                name(out)
            ));
        }
        let all = self.by_hash.get(&track.hash).map_or(&[][..], Vec::as_slice);
        let counted = all.iter().find(|x| outcome(x) == Some(Outcome::Counted));
        let dropped = all.iter().find(|x| outcome(x) == Some(Outcome::Dropped));
        if let (Some(c), Some(d)) = (counted, dropped) {
            return Err(format!(
                "payment {} is not all-or-nothing: {} was counted, {} dropped ({})",
                short(&track.hash),
                name(c),
                name(d),
                self.describe(d)
            ));
        }
        Ok(())
    }

    /// How an IOU ended, for messages.
    pub fn describe(&self, id: &IouId) -> String {
        match self.ious.get(id) {
            None => "unknown".into(),
            Some(t) => format!(
                "answer {:?}, ever accepted {}, claimed {}, holder view {:?}",
                t.answer, t.ever_accepted, t.claimed, t.holder_view
            ),
        }
    }

    /// The IOUs with a payment hash.
    pub fn of_hash(&self, hash: &[u8; 32]) -> &[IouId] {
        self.by_hash.get(hash).map_or(&[][..], Vec::as_slice)
    }
}
