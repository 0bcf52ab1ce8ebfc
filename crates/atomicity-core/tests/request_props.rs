//! Property test of a payment request's book: whatever payers ask and whatever happens to
//! their payments, what is paid plus what is pending never exceeds the request, what is paid
//! never goes down, and a refused fill changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use atomicity_core::request::{
    FillStatus, Method, MethodKind, RequestBook, RequestId, RequestStatus, RequestTerms,
};
use atomicity_core::{Amount, Keypair};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Reserve(u8, u64, u64),
    Paid(u32),
    Release(u32),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u64..12_000, 0u64..50).prop_map(|(m, a, t)| Op::Reserve(m, a, t)),
        (1u32..40).prop_map(Op::Paid),
        (1u32..40).prop_map(Op::Release),
        (0u64..2_000).prop_map(Op::Tick),
    ]
}

fn book(amount: u64) -> RequestBook {
    RequestBook::new(RequestTerms {
        id: RequestId([1; 16]),
        payee: Keypair::from_secret_key(&[2; 32]).public_key(),
        amount: Amount::from_minor(amount),
        asset: "USD".parse().unwrap(),
        memo: String::new(),
        methods: vec![
            Method::Credit,
            Method::Lightning { sats_per_unit: 7 },
            Method::Onchain {
                address: "bcrt1qx".into(),
                sats_per_unit: 7,
            },
        ],
        created_at: 0,
        expires_at: 1_500,
    })
}

proptest! {
    #[test]
    fn paid_plus_pending_never_exceeds_the_request(
        amount in 1u64..30_000,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut book = book(amount);
        let mut now = 0u64;
        let mut paid_before = Amount::from_minor(0);
        for (step, op) in ops.into_iter().enumerate() {
            let before = book.clone();
            match op {
                Op::Reserve(m, a, hold) => {
                    let method = MethodKind::ALL[usize::from(m)];
                    let taken = book
                        .reserve(method, Amount::from_minor(a), format!("r{step}"), None, now, now + hold)
                        .is_ok();
                    if !taken {
                        prop_assert_eq!(&book, &before);
                    }
                }
                Op::Paid(id) => {
                    let _ = book.mark_paid(id);
                }
                Op::Release(id) => {
                    if book.release(id).is_err() {
                        prop_assert_eq!(&book, &before);
                    }
                }
                Op::Tick(t) => {
                    now = now.max(t);
                    book.tick(now);
                }
            }
            let p = book.progress();
            let fills = |s: FillStatus| book
                .fills
                .iter()
                .filter(|f| f.status == s)
                .map(|f| f.amount.minor())
                .sum::<u64>();
            let paid = fills(FillStatus::Paid);
            let pending = fills(FillStatus::Reserved) + fills(FillStatus::Claimed);
            prop_assert!(paid + pending <= amount, "paid {paid} + pending {pending} > {amount}");
            prop_assert_eq!(p.paid.minor(), paid);
            prop_assert_eq!(p.left.minor(), amount - paid - pending);
            prop_assert!(p.paid >= paid_before, "paid went down");
            paid_before = p.paid;
            prop_assert_eq!(book.status(now) == RequestStatus::Filled, paid == amount);
        }
    }
}

proptest! {
    /// The fuzz target's property, run here on mutations of a valid document: no panic, and
    /// whatever parses writes back to the same terms.
    #[test]
    fn mutated_terms_never_panic_and_round_trip(
        cut in 0usize..400,
        flip in 0usize..400,
        byte in any::<u8>(),
        junk in "\\PC{0,40}",
    ) {
        let valid = book(27_000).terms.to_json();
        let mut bytes = valid.clone().into_bytes();
        if let Some(b) = bytes.get_mut(flip % valid.len()) {
            *b = byte;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        let mut candidates = vec![valid.clone(), junk.clone(), format!("{valid}{junk}")];
        if let Ok(text) = String::from_utf8(bytes) {
            candidates.push(text);
        }
        for text in candidates {
            if let Ok(terms) = RequestTerms::from_json(&text) {
                prop_assert_eq!(RequestTerms::from_json(&terms.to_json()), Ok(terms.clone()));
                let uri = atomicity_core::request::RequestUri::parse(&terms.to_uri());
                prop_assert_eq!(uri.map(|u| u.id), Ok(terms.id));
            }
            let _ = atomicity_core::request::RequestUri::parse(&text);
        }
    }
}
