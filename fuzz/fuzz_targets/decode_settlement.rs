//! The settlement encodings on arbitrary bytes: a signed settlement request (kind 6), a signed
//! settlement update (kind 7) and, on their own, the evidence an update carries
//! (`Evidence::from_bytes`). Whatever is accepted is canonical (it re-encodes to exactly the
//! bytes it was read from) and keeps the decoders' promises; checking evidence never panics.
#![no_main]

use atomicity_core::{
    Amount, Asset, Evidence, Keypair, Outcome, SettlementKind, SettlementRequest, SettlementUpdate,
};
use libfuzzer_sys::fuzz_target;

/// Runs the requester's checks of `evidence` against fixed keys: they may fail, never panic.
fn check_evidence(evidence: &Evidence) {
    let payer = Keypair::from_secret_key(&[1; 32]).public_key();
    let payee = Keypair::from_secret_key(&[2; 32]).public_key();
    let usd = Asset::new("USD", 2).expect("USD");
    let _ = evidence.check_credit(&payer, &payee, &usd, Amount::from_minor(1), &[0; 32]);
    let _ = evidence.check_routed(&payee, &usd, Amount::from_minor(1), &[0; 32]);
    if let Evidence::Credit { iou, acceptance } = evidence {
        let body = iou.body();
        let _ = evidence.check_credit(
            &body.line.issuer,
            &body.line.holder,
            &body.line.asset,
            body.amount,
            &body.payment_id,
        );
        let _ = acceptance.verify();
    }
}

/// The evidence's own encoding decodes back to it.
fn round_trip(evidence: &Evidence) {
    let bytes = evidence.to_bytes();
    assert_eq!(
        Evidence::from_bytes(&bytes).as_ref(),
        Ok(evidence),
        "evidence does not decode from its own encoding"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Some(request) = atomicity_fuzz::check_signed::<SettlementRequest>(data) {
        let body = request.body();
        assert!(!body.amount.is_zero());
        assert!((1..=atomicity_core::settlement::MAX_METHODS).contains(&body.methods.len()));
        assert!(body.invoice.is_ascii());
        assert!(body.expires_at > body.created_at);
        assert!(body.condition.is_none() || !body.invoice.is_empty());
        assert!(body.kind == SettlementKind::Settle || body.condition.is_some());
    }
    if let Some(update) = atomicity_fuzz::check_signed::<SettlementUpdate>(data)
        && let Outcome::Paid { evidence, .. } = &update.body().outcome
    {
        round_trip(evidence);
        check_evidence(evidence);
    }
    if let Ok(evidence) = Evidence::from_bytes(data) {
        assert_eq!(
            evidence.to_bytes(),
            data,
            "evidence accepted a non-canonical encoding"
        );
        round_trip(&evidence);
        check_evidence(&evidence);
    }
});
