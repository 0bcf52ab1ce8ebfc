//! What the invariants are checked against: a summary of each node's committed store, read
//! without the core's channel logic (only the decoders), so the checks do not trust the code
//! they check.

use std::collections::BTreeMap;

use atomicity_core::{
    Asset, ConditionalIou, Direction, IouState, Limits, PublicKey, ResolvedSet, Signed, Snapshot,
};

/// One line as committed, seen from the node that stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LineSummary {
    /// The node's limits toward the peer.
    pub limits: Limits,
    /// The newest state the peer signed (as stored), with its seq, total and resolved set.
    pub in_state: Option<Vec<u8>>,
    pub in_seq: u64,
    pub in_total: u128,
    pub in_resolved: ResolvedSet,
    /// The newest state the node signed.
    pub out_state: Option<Vec<u8>>,
    pub out_seq: u64,
    pub out_total: u128,
    pub out_resolved: ResolvedSet,
    /// What the peer owes the node by the node's acceptances: the in-state's total plus the
    /// accepted conditional IOUs not merged yet. This is the ground truth of the debt, since an
    /// IOU counts exactly when its holder has (durably) accepted it.
    pub in_owed: u128,
    /// The node's own view of what it owes on its out line: its out-state's total plus its
    /// offers the peer accepted (as far as it knows) that no state merged yet.
    pub out_owed_view: u128,
    /// The node's offers with no answer yet.
    pub out_unanswered: u128,
}

impl LineSummary {
    /// What the node has committed to owe the peer by its own view, net of what the peer owes
    /// it: the amount its issue limit bounds.
    pub fn out_committed(&self) -> i128 {
        // Each term is a cumulative total plus at most a few thousand u64 amounts; a run's
        // turnover stays far below 2^126, so the casts are exact.
        (self.out_owed_view + self.out_unanswered) as i128 - self.in_owed as i128
    }
}

/// Every line of one node, by peer index and asset.
pub(crate) type Summary = BTreeMap<(usize, Asset), LineSummary>;

/// Reads a node's committed store. `index_of` names peers by their simulation index.
pub(crate) fn summarize(
    snapshot: &Snapshot,
    index_of: impl Fn(&PublicKey) -> Option<usize>,
) -> Result<Summary, String> {
    let mut summary = Summary::new();
    for line in &snapshot.lines {
        let peer =
            index_of(&line.peer).ok_or_else(|| format!("line with a stranger {}", line.peer))?;
        let mut s = LineSummary {
            limits: line.limits,
            ..LineSummary::default()
        };
        if let Some(bytes) = line.in_state.as_ref().map(|b| b.bytes().into_owned()) {
            let state = Signed::<IouState>::decode(&bytes)
                .map_err(|e| format!("stored in-state from n{peer} {}: {e}", line.asset))?;
            s.in_seq = state.body().seq;
            s.in_total = state.body().total.minor();
            s.in_resolved = state.body().resolved.clone();
            s.in_state = Some(bytes);
        }
        if let Some(bytes) = line.out_state.as_ref().map(|b| b.bytes().into_owned()) {
            let state = Signed::<IouState>::decode(&bytes)
                .map_err(|e| format!("stored out-state to n{peer} {}: {e}", line.asset))?;
            s.out_seq = state.body().seq;
            s.out_total = state.body().total.minor();
            s.out_resolved = state.body().resolved.clone();
            s.out_state = Some(bytes);
        }
        s.in_owed = s.in_total;
        s.out_owed_view = s.out_total;
        summary.insert((peer, line.asset.clone()), s);
    }
    for c in &snapshot.conditionals {
        let peer = index_of(&c.peer)
            .ok_or_else(|| format!("conditional IOU with a stranger {}", c.peer))?;
        let line = summary.get_mut(&(peer, c.asset.clone())).ok_or_else(|| {
            format!(
                "conditional IOU {} with n{peer} {} without a line",
                c.id, c.asset
            )
        })?;
        // Stored answers are `3 || acceptance` or `4 || release`.
        let answer = c.answer.as_ref().and_then(|a| a.bytes().first().copied());
        if c.dir == Direction::In && answer.is_none() {
            return Err(format!(
                "incoming conditional {} from n{peer} has no answer",
                c.id
            ));
        }
        if answer == Some(4) {
            continue;
        }
        let amount = Signed::<ConditionalIou>::decode(&c.iou.bytes())
            .map_err(|e| format!("stored conditional {} with n{peer}: {e}", c.id))?
            .body()
            .amount
            .minor();
        match (c.dir, answer) {
            (Direction::In, Some(3)) => line.in_owed += u128::from(amount),
            (Direction::Out, Some(3)) => line.out_owed_view += u128::from(amount),
            (Direction::Out, None) => line.out_unanswered += u128::from(amount),
            (_, Some(tag)) => {
                return Err(format!(
                    "conditional {} with n{peer} has answer tag {tag}",
                    c.id
                ));
            }
            (Direction::In, None) => {}
        }
    }
    Ok(summary)
}

/// Compares a node's store after a commit with the one before: the monotonicity invariants.
/// Returns the lines on which the node accepted new IOUs (what the peer owes it grew).
pub(crate) fn compare(
    me: usize,
    old: &Summary,
    new: &Summary,
) -> Result<Vec<(usize, Asset)>, String> {
    let mut accepted = Vec::new();
    for ((peer, asset), was) in old {
        let now = new
            .get(&(*peer, asset.clone()))
            .ok_or_else(|| format!("n{me} forgot its line with n{peer} in {asset}"))?;
        let line = format!("n{peer}→n{me} {asset}");
        if now.in_seq < was.in_seq {
            return Err(format!(
                "holder n{me}'s stored state of {line}: seq went down from {} to {}",
                was.in_seq, now.in_seq
            ));
        }
        if now.in_total < was.in_total {
            return Err(format!(
                "holder n{me}'s stored state of {line}: total went down from {} to {}",
                was.in_total, now.in_total
            ));
        }
        if !now.in_resolved.is_superset_of(&was.in_resolved) {
            return Err(format!(
                "holder n{me}'s stored state of {line}: resolved set shrank"
            ));
        }
        if now.in_seq == was.in_seq && now.in_state != was.in_state {
            return Err(format!(
                "holder n{me} replaced its state of {line} by another with the same seq"
            ));
        }
        let out_line = format!("n{me}→n{peer} {asset}");
        if now.out_state != was.out_state {
            if now.out_seq <= was.out_seq {
                return Err(format!(
                    "issuer n{me} signed a new state of {out_line} with seq {} after seq {}",
                    now.out_seq, was.out_seq
                ));
            }
            if now.out_total < was.out_total {
                return Err(format!(
                    "issuer n{me}'s total on {out_line} went down from {} to {}",
                    was.out_total, now.out_total
                ));
            }
            if !now.out_resolved.is_superset_of(&was.out_resolved) {
                return Err(format!("issuer n{me}'s resolved set on {out_line} shrank"));
            }
        }
        if now.limits.accept < was.limits.accept || now.limits.issue < was.limits.issue {
            return Err(format!(
                "n{me}'s limits toward n{peer} in {asset} went down"
            ));
        }
        match now.in_owed.cmp(&was.in_owed) {
            std::cmp::Ordering::Less => {
                return Err(format!(
                    "what n{peer} owes n{me} in {asset} by n{me}'s acceptances went down from {} to {}",
                    was.in_owed, now.in_owed
                ));
            }
            std::cmp::Ordering::Greater => accepted.push((*peer, asset.clone())),
            std::cmp::Ordering::Equal => {}
        }
    }
    for (key, now) in new {
        if !old.contains_key(key) && now.in_owed > 0 {
            accepted.push(key.clone());
        }
    }
    Ok(accepted)
}
