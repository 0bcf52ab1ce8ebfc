//! Callers waiting for the outcome of a payment they started, by payment id.
//!
//! Each update goes to the one caller that waits for that payment, not to every waiter: with
//! many payments in flight, a broadcast would wake every waiter for every update. Updates are
//! matched on the history entry's key, which for a payment I sent is its payment id and for
//! one I received is an IOU's hash: a payer who reuses my payment id reaches nobody.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use atomicity_core::PaymentRecord;
use tokio::sync::mpsc;

/// The registry the ledger actor notifies after each commit.
#[derive(Default)]
pub struct PaymentWaiters {
    waiting: Mutex<HashMap<[u8; 32], Waiter>>,
    next_token: AtomicU64,
}

struct Waiter {
    token: u64,
    tx: mpsc::UnboundedSender<PaymentRecord>,
}

impl PaymentWaiters {
    /// Starts watching payment `id` (before the payment starts, so no update is missed). A
    /// second watch of the same id replaces the first, whose updates then end.
    pub fn watch(self: &Arc<Self>, id: [u8; 32]) -> PaymentWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Waiter { token, tx });
        PaymentWatch {
            waiters: Arc::clone(self),
            id,
            token,
            updates: rx,
        }
    }

    /// Hands a committed change of a payment to its waiter, if anyone waits for it.
    pub fn notify(&self, record: &PaymentRecord) {
        if let Some(waiter) = self.lock().get(&record.entry) {
            let _ = waiter.tx.send(record.clone());
        }
    }

    /// How many payments are watched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The updates of one payment; stops watching when dropped.
pub struct PaymentWatch {
    waiters: Arc<PaymentWaiters>,
    id: [u8; 32],
    token: u64,
    updates: mpsc::UnboundedReceiver<PaymentRecord>,
}

impl PaymentWatch {
    /// The next committed change of the payment (`None` once the node stops).
    pub async fn next(&mut self) -> Option<PaymentRecord> {
        self.updates.recv().await
    }
}

impl Drop for PaymentWatch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        // Only my own entry: a newer watch of the same id may have replaced it.
        if waiting.get(&self.id).is_some_and(|w| w.token == self.token) {
            waiting.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomicity_core::{Amount, Asset, Direction, PaymentStatus};

    fn record(id: [u8; 32], status: PaymentStatus) -> PaymentRecord {
        PaymentRecord {
            entry: id,
            payment_id: id,
            dir: Direction::Out,
            peer: atomicity_core::Keypair::random().public_key(),
            asset: Asset::new("USD", 2).expect("asset"),
            amount: Amount::from_minor(1),
            status,
            memo: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test]
    async fn only_the_payments_waiter_hears_and_dropping_forgets() {
        let waiters = Arc::new(PaymentWaiters::default());
        let mut a = waiters.watch([1; 32]);
        let mut b = waiters.watch([2; 32]);
        waiters.notify(&record([1; 32], PaymentStatus::Completed));
        waiters.notify(&record([3; 32], PaymentStatus::Pending));
        assert_eq!(
            a.next().await.map(|r| r.status),
            Some(PaymentStatus::Completed)
        );
        assert!(b.updates.try_recv().is_err());
        drop(a);
        assert_eq!(waiters.len(), 1);
        // A replaced watch ends, and dropping it leaves the newer one in place.
        let newer = waiters.watch([2; 32]);
        assert_eq!(b.next().await, None);
        drop(b);
        assert_eq!(waiters.len(), 1);
        drop(newer);
        assert!(waiters.is_empty());
    }
}
