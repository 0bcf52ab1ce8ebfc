//! Fee arithmetic, exactly [`atomicity_core::FeePolicy`]'s: a hop that forwards `amount` over one
//! of its lines charges `base + floor(amount × ppm / 1,000,000)`. Integers only, checked.

/// One million: `ppm` is in millionths.
pub(crate) const MILLION: u128 = 1_000_000;

/// The fee for forwarding `amount` with `base` and `ppm`; `None` on overflow. The same value as
/// [`atomicity_core::FeePolicy::fee`] (a test checks it).
#[inline]
pub fn fee(base: u64, ppm: u32, amount: u64) -> Option<u64> {
    base.checked_add(ppm_part(amount, ppm)?)
}

/// `floor(amount × ppm / 1,000,000)`; `None` if it does not fit a `u64` (only with `ppm` above a
/// million).
#[inline]
pub fn ppm_part(amount: u64, ppm: u32) -> Option<u64> {
    if amount <= u64::from(u32::MAX) {
        // amount × ppm < 2^64: u64 arithmetic, whose division by a constant compiles to a
        // multiply (u128 division is a library call).
        Some(amount * u64::from(ppm) / 1_000_000)
    } else {
        u64::try_from(u128::from(amount) * u128::from(ppm) / MILLION).ok()
    }
}

/// The most a hop that receives `received` can forward over a line with `base` and `ppm`: the
/// largest `y` with `y + fee(y) ≤ received`. `None` if not even 0 can be forwarded (`received`
/// below `base`).
pub fn max_forwardable(base: u64, ppm: u32, received: u64) -> Option<u64> {
    let rest = u128::from(received.checked_sub(base)?);
    let ppm = u128::from(ppm);
    // g(y) = y + floor(y·ppm/10^6) is strictly increasing, and g(y) ≤ y·(10^6+ppm)/10^6, so
    // y0 = floor(rest·10^6/(10^6+ppm)) is feasible; since g(y) > y·(10^6+ppm)/10^6 − 1, at most
    // a step or two above y0 is.
    let g = |y: u128| y + y * ppm / MILLION;
    let mut y = rest * MILLION / (MILLION + ppm);
    while y < rest && g(y + 1) <= rest {
        y += 1;
    }
    u64::try_from(y).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomicity_core::{Amount, FeePolicy};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fee_is_fee_policy(
            base in any::<u64>(),
            ppm in any::<u32>(),
            amount in prop_oneof![any::<u64>(), 0..=u64::from(u32::MAX), Just(u64::from(u32::MAX))],
        ) {
            let policy = FeePolicy { base: Amount::from_minor(base), ppm };
            prop_assert_eq!(
                fee(base, ppm, amount),
                policy.fee(Amount::from_minor(amount)).map(Amount::minor)
            );
        }

        #[test]
        fn max_forwardable_is_the_largest(
            base in 0u64..1000,
            ppm in prop_oneof![0u32..10_000, any::<u32>()],
            received in prop_oneof![0u64..1_000_000, any::<u64>()],
        ) {
            match max_forwardable(base, ppm, received) {
                None => prop_assert!(received < base),
                Some(y) => {
                    let total = |y: u64| fee(base, ppm, y).and_then(|f| y.checked_add(f));
                    prop_assert!(total(y).is_some_and(|t| t <= received));
                    if let Some(next) = y.checked_add(1) {
                        prop_assert!(total(next).is_none_or(|t| t > received));
                    }
                }
            }
        }
    }
}
