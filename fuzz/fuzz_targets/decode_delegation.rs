//! The delegation encodings on arbitrary bytes: a signed delegation (kind 8) and a signed
//! delegated-payment order (kind 9). Whatever is accepted is canonical (it re-encodes to
//! exactly the bytes it was read from) and keeps the decoders' promises; the node's check of
//! any accepted pair never panics, and never accepts an order the scope forbids.
#![no_main]

use atomicity_core::delegation::{MAX_LABEL_LEN, MAX_PAYEES, MAX_SCOPE_ASSETS};
use atomicity_core::{Amount, DelegatedPayment, Delegation, Signed, check_order};
use libfuzzer_sys::fuzz_target;

/// Runs the node's check of `order` under `delegation` at a few times: it may refuse, never
/// panic, and what it accepts is within the scope.
fn check_pair(delegation: &Signed<Delegation>, order: &Signed<DelegatedPayment>) {
    let d = delegation.body();
    let o = order.body();
    for now in [0, d.not_before, o.created_at, d.expires_at, u64::MAX] {
        for spent in [Amount::ZERO, Amount::from_minor(u64::MAX)] {
            if let Ok(period) = check_order(delegation, order, &d.master, now, spent, false, false)
            {
                let cap = d.cap_for(&o.asset).expect("accepted asset is in scope");
                assert!(spent.checked_add(o.amount).is_some_and(|t| t <= cap));
                assert!(d.allows_payee(&o.payee));
                assert!(period.starts_at <= now && now >= d.not_before && now < d.expires_at);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(delegation) = atomicity_fuzz::check_signed::<Delegation>(data) {
        let d = delegation.body();
        assert!((1..=MAX_SCOPE_ASSETS).contains(&d.caps.len()));
        assert!(d.payees.len() <= MAX_PAYEES);
        assert!(d.label.len() <= MAX_LABEL_LEN);
        assert!(d.period_secs > 0 && d.expires_at > d.not_before);
        assert!(d.caps.iter().all(|c| !c.cap.is_zero()));
        assert_eq!(d.validate(), Ok(()));
    }
    if let Some(order) = atomicity_fuzz::check_signed::<DelegatedPayment>(data) {
        assert!(!order.body().amount.is_zero());
    }
    // Split the input in two: a delegation and an order.
    if data.len() > 2 {
        let at = usize::from(data[0]) * data.len() / 256;
        let (left, right) = data[1..].split_at(at.min(data.len() - 1));
        if let (Ok(delegation), Ok(order)) = (
            Signed::<Delegation>::decode(left),
            Signed::<DelegatedPayment>::decode(right),
        ) {
            check_pair(&delegation, &order);
        }
    }
});
