//! The open conditional IOUs of one direction of a line, indexed for the checks every payment
//! makes.
//!
//! Each payment checks limits against the owed and pending sums of its line and finds the IOUs
//! a proof is for by payment hash. Scanning every open IOU for that made a forward cost O(n)
//! in the payments in flight on the line (44% of a middle node's time with 4,000 in flight), so
//! the sums and the hash index are kept up to date as IOUs change instead. Every change goes
//! through [`Conditionals::insert`], [`Conditionals::remove`] or [`Conditionals::update`], which
//! is what keeps them true; debug builds recompute them after each change.

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::amount::Amount;

/// What the index needs to know of an open conditional IOU. The amount and the hash are the
/// signed IOU's, so they never change; whether it is owed or pending does.
pub trait Open {
    /// The IOU's amount.
    fn amount(&self) -> Amount;
    /// The payment hash of its witness condition (routed IOUs only).
    fn payment_hash(&self) -> Option<[u8; 32]>;
    /// Whether it counts as owed (see the channel's rules).
    fn is_owed(&self) -> bool;
    /// Whether it counts as pending (see the channel's rules).
    fn is_pending(&self) -> bool;
}

/// Open conditional IOUs by id, with running owed and pending sums and ids by payment hash.
#[derive(Clone, Debug)]
pub struct Conditionals<C> {
    by_id: BTreeMap<u64, C>,
    by_hash: HashMap<[u8; 32], BTreeSet<u64>>,
    /// Sum of the owed ones' amounts in minor units (`None` had it overflowed, which fewer than
    /// 2^64 amounts cannot do).
    owed: Option<u128>,
    /// Sum of the pending ones' amounts.
    pending: Option<u128>,
}

impl<C> Default for Conditionals<C> {
    fn default() -> Self {
        Conditionals {
            by_id: BTreeMap::new(),
            by_hash: HashMap::new(),
            owed: Some(0),
            pending: Some(0),
        }
    }
}

impl<C: Open> Conditionals<C> {
    /// Sum of the owed ones' amounts in minor units.
    pub fn owed(&self) -> Option<u128> {
        self.owed
    }

    /// Sum of the pending ones' amounts in minor units.
    pub fn pending(&self) -> Option<u128> {
        self.pending
    }

    /// Adds (or replaces) the IOU with id `id`.
    pub fn insert(&mut self, id: u64, c: C) {
        self.remove(id);
        self.count(&c, true);
        if let Some(hash) = c.payment_hash() {
            self.by_hash.entry(hash).or_default().insert(id);
        }
        self.by_id.insert(id, c);
        self.debug_check();
    }

    /// Takes the IOU with id `id` out.
    pub fn remove(&mut self, id: u64) -> Option<C> {
        let c = self.by_id.remove(&id)?;
        self.count(&c, false);
        if let Some(hash) = c.payment_hash()
            && let Some(ids) = self.by_hash.get_mut(&hash)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_hash.remove(&hash);
            }
        }
        self.debug_check();
        Some(c)
    }

    /// Changes the IOU with id `id` with `f` (which must not change its IOU), keeping the sums
    /// true. `None` if there is no such IOU.
    pub fn update<R>(&mut self, id: u64, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let c = self.by_id.get_mut(&id)?;
        let (owed, pending) = (c.is_owed(), c.is_pending());
        let result = f(c);
        let amount = u128::from(c.amount().minor());
        let (owed_now, pending_now) = (c.is_owed(), c.is_pending());
        self.owed = adjust(self.owed, amount, owed, owed_now);
        self.pending = adjust(self.pending, amount, pending, pending_now);
        self.debug_check();
        Some(result)
    }

    /// The ids of the IOUs with payment hash `hash`, in order.
    pub fn ids_with_hash(&self, hash: &[u8; 32]) -> Vec<u64> {
        self.by_hash
            .get(hash)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The IOUs with payment hash `hash`, by id.
    pub fn with_hash<'a>(&'a self, hash: &[u8; 32]) -> impl Iterator<Item = (u64, &'a C)> {
        self.by_hash
            .get(hash)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).map(|c| (*id, c)))
    }

    fn count(&mut self, c: &C, add: bool) {
        let amount = u128::from(c.amount().minor());
        if c.is_owed() {
            self.owed = adjust(self.owed, amount, !add, add);
        }
        if c.is_pending() {
            self.pending = adjust(self.pending, amount, !add, add);
        }
    }

    /// Debug builds: the sums and the index are what recomputing them gives.
    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        {
            let sum = |f: fn(&C) -> bool| {
                self.by_id
                    .values()
                    .filter(|c| f(c))
                    .try_fold(0u128, |acc, c| {
                        acc.checked_add(u128::from(c.amount().minor()))
                    })
            };
            debug_assert_eq!(self.owed, sum(C::is_owed), "owed sum");
            debug_assert_eq!(self.pending, sum(C::is_pending), "pending sum");
            let indexed: usize = self.by_hash.values().map(BTreeSet::len).sum();
            let routed = self
                .by_id
                .values()
                .filter(|c| c.payment_hash().is_some())
                .count();
            debug_assert_eq!(indexed, routed, "hash index");
        }
    }
}

/// A sum after an IOU of `amount` went from counted (`was`) to counted (`is`) or back.
fn adjust(sum: Option<u128>, amount: u128, was: bool, is: bool) -> Option<u128> {
    match (was, is) {
        (false, true) => sum?.checked_add(amount),
        (true, false) => sum?.checked_sub(amount),
        _ => sum,
    }
}

impl<C> Conditionals<C> {
    /// The IOU with id `id`.
    pub fn get(&self, id: &u64) -> Option<&C> {
        self.by_id.get(id)
    }

    /// Whether there is an IOU with id `id`.
    pub fn contains_key(&self, id: &u64) -> bool {
        self.by_id.contains_key(id)
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every open IOU, by id.
    pub fn iter(&self) -> btree_map::Iter<'_, u64, C> {
        self.by_id.iter()
    }

    /// Every open IOU, in id order.
    pub fn values(&self) -> btree_map::Values<'_, u64, C> {
        self.by_id.values()
    }

    /// The ids, in order.
    pub fn keys(&self) -> btree_map::Keys<'_, u64, C> {
        self.by_id.keys()
    }

    /// The IOUs as a map.
    pub fn as_map(&self) -> &BTreeMap<u64, C> {
        &self.by_id
    }
}

impl<C: Open> FromIterator<(u64, C)> for Conditionals<C> {
    fn from_iter<I: IntoIterator<Item = (u64, C)>>(iter: I) -> Self {
        let mut all = Conditionals::default();
        for (id, c) in iter {
            all.insert(id, c);
        }
        all
    }
}

impl<'a, C> IntoIterator for &'a Conditionals<C> {
    type Item = (&'a u64, &'a C);
    type IntoIter = btree_map::Iter<'a, u64, C>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_id.iter()
    }
}

impl<C: PartialEq> PartialEq for Conditionals<C> {
    fn eq(&self, other: &Self) -> bool {
        self.by_id == other.by_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An open IOU whose state the test sets directly.
    #[derive(Clone, Debug, PartialEq)]
    struct Item {
        amount: u64,
        hash: Option<u8>,
        owed: bool,
        pending: bool,
    }

    impl Open for Item {
        fn amount(&self) -> Amount {
            Amount::from_minor(self.amount)
        }
        fn payment_hash(&self) -> Option<[u8; 32]> {
            self.hash.map(|h| [h; 32])
        }
        fn is_owed(&self) -> bool {
            self.owed
        }
        fn is_pending(&self) -> bool {
            self.pending
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, Item),
        Remove(u64),
        Update(u64, bool, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let item = (
            any::<u64>(),
            prop::option::of(0u8..4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(amount, hash, owed, pending)| Item {
                amount,
                hash,
                owed,
                pending,
            });
        prop_oneof![
            (0u64..16, item).prop_map(|(id, item)| Op::Insert(id, item)),
            (0u64..16).prop_map(Op::Remove),
            (0u64..16, any::<bool>(), any::<bool>()).prop_map(|(id, o, p)| Op::Update(id, o, p)),
        ]
    }

    proptest! {
        /// Whatever the changes, the sums and the hash index are what recomputing them from a
        /// plain map gives.
        #[test]
        fn sums_and_index_follow_every_change(ops in prop::collection::vec(op(), 0..60)) {
            let mut all = Conditionals::default();
            let mut model: BTreeMap<u64, Item> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(id, item) => {
                        all.insert(id, item.clone());
                        model.insert(id, item);
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(all.remove(id), model.remove(&id));
                    }
                    Op::Update(id, owed, pending) => {
                        let done = all.update(id, |c| {
                            c.owed = owed;
                            c.pending = pending;
                        });
                        prop_assert_eq!(done.is_some(), model.contains_key(&id));
                        if let Some(c) = model.get_mut(&id) {
                            c.owed = owed;
                            c.pending = pending;
                        }
                    }
                }
                let sum = |f: fn(&Item) -> bool| {
                    model.values().filter(|c| f(c)).map(|c| u128::from(c.amount)).sum::<u128>()
                };
                prop_assert_eq!(all.owed(), Some(sum(|c| c.owed)));
                prop_assert_eq!(all.pending(), Some(sum(|c| c.pending)));
                prop_assert_eq!(all.as_map(), &model);
                for h in 0u8..4 {
                    let expected: Vec<u64> = model
                        .iter()
                        .filter(|(_, c)| c.hash == Some(h))
                        .map(|(id, _)| *id)
                        .collect();
                    prop_assert_eq!(all.ids_with_hash(&[h; 32]), expected);
                }
            }
        }
    }
}
