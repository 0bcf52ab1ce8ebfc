//! Forwarding instructions and fee policies for routed payments.

use pkarr::PublicKey;

use crate::amount::Amount;
use crate::encoding::{DecodeError, Reader, Writer};

/// Most hops a route may have after the first holder.
pub const MAX_HOPS: usize = 16;

/// What a hop charges to forward over one of its lines: `base + amount × ppm / 1,000,000`,
/// rounded down, on the amount it forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeePolicy {
    /// Fixed part, in minor units.
    pub base: Amount,
    /// Proportional part, in millionths of the forwarded amount.
    pub ppm: u32,
}

impl FeePolicy {
    /// The fee for forwarding `amount`; `None` on overflow.
    pub fn fee(&self, amount: Amount) -> Option<Amount> {
        let proportional = u128::from(amount.minor()) * u128::from(self.ppm) / 1_000_000;
        let proportional = u64::try_from(proportional).ok()?;
        self.base.checked_add(Amount::from_minor(proportional))
    }

    /// What a hop with this policy must receive to forward `amount`; `None` on overflow.
    pub fn amount_to_receive(&self, amount: Amount) -> Option<Amount> {
        amount.checked_add(self.fee(amount)?)
    }
}

/// One hop of the instructions: issue an IOU of `amount` to `next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The key to forward to.
    pub next: PublicKey,
    /// The amount of the IOU to issue to it.
    pub amount: Amount,
}

/// Forwarding instructions that travel with a routed conditional IOU (not signed by itself: the
/// envelope authenticates the sender, and a hop that follows bad instructions only risks what
/// the hop rule and its own limits allow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Onward {
    /// The rest of the route: `hops[0]` is where the holder forwards. Empty: the holder is the
    /// payee.
    pub hops: Vec<Hop>,
    /// The payer, not the payee, publishes the secret (the offline-receiver flow): the last hop
    /// reports the IOU it issued to the payee back up the route, and the payee needs no invoice.
    pub payer_publishes: bool,
}

impl Onward {
    /// Canonical encoding: `count (u32) || (key || amount)* || payer_publishes (u8)`.
    pub fn encode(&self, w: &mut Writer) {
        // Bounded by MAX_HOPS when decoded or built by the node.
        w.u32(self.hops.len() as u32);
        for hop in &self.hops {
            w.key(&hop.next);
            w.amount(hop.amount);
        }
        w.u8(u8::from(self.payer_publishes));
    }

    /// Strict decoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Onward, DecodeError> {
        let count = r.count("hops", MAX_HOPS)?;
        let mut hops = Vec::with_capacity(count);
        for _ in 0..count {
            let next = r.key("hop key")?;
            let amount = r.amount("hop amount")?;
            if amount.is_zero() {
                return Err(DecodeError::Invalid {
                    field: "hop amount",
                    why: "must be greater than zero",
                });
            }
            hops.push(Hop { next, amount });
        }
        let payer_publishes = match r.u8("payer publishes")? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "payer publishes",
                    tag,
                });
            }
        };
        Ok(Onward {
            hops,
            payer_publishes,
        })
    }
}
