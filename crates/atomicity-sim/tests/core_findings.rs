//! Bugs the simulation found in the crates it drives, each pinned as a test: ignored while the
//! bug is open (so that `cargo test` stays green; run with `-- --ignored`), a regression test
//! once it is fixed.

use atomicity_core::{Amount, Asset, Keypair, Ledger, Message, Reply, Total};
use atomicity_sim::{Faults, SimConfig, run};

/// Two ledgers that know each other, with `limit` both ways in `asset`.
fn pair(asset: &Asset, limit: u64) -> (Ledger, Ledger) {
    let mut a = Ledger::new(Keypair::from_secret_key(&[1; 32]));
    let mut b = Ledger::new(Keypair::from_secret_key(&[2; 32]));
    let mut ops = Vec::new();
    let (ka, kb) = (a.me().clone(), b.me().clone());
    a.add_peer(kb.clone(), None, &mut ops).expect("peer");
    b.add_peer(ka.clone(), None, &mut ops).expect("peer");
    let l = Some(Amount::from_minor(limit));
    a.set_limits(&kb, asset, l, l, &mut ops).expect("limits");
    b.set_limits(&ka, asset, l, l, &mut ops).expect("limits");
    (a, b)
}

/// One direct payment, delivered without faults: offer, answer, merge, state. Returns whether
/// the payee accepted and whether the payer signed a state merging it.
fn pay(payer: &mut Ledger, payee: &mut Ledger, asset: &Asset, amount: u64, n: u8) -> (bool, bool) {
    let (now, mut ops) = (1_700_000_000, Vec::new());
    let payee_key = payee.me().clone();
    let payer_key = payer.me().clone();
    let iou = payer
        .pay(
            &payee_key,
            asset,
            Amount::from_minor(amount),
            [n; 32],
            String::new(),
            now,
            now + 600,
            &mut ops,
        )
        .expect("the payer's node lets it pay: the net stays within its issue limit");
    let reply = payee.handle_message(&payer_key, Message::Offer(iou), now, &mut ops);
    let accepted = matches!(reply, Reply::Accepted(_));
    payer
        .handle_reply(&payee_key, reply, now, &mut ops)
        .expect("the answer is taken");
    let states = payer.merge_states(now, &mut ops);
    let merged = !states.is_empty();
    for (_, state) in states {
        let ack = payee.handle_message(&payer_key, Message::State(state), now, &mut ops);
        assert!(matches!(ack, Reply::StateAck { .. }), "{ack:?}");
    }
    (accepted, merged)
}

/// Regression (atomicity-core, fixed): an IOU state's `total` is the line's cumulative
/// turnover. It used to be a `u64` of minor units, so a line died once the payments ever made on
/// it added up to 2^64 minor units, although the net debt never passed the limits: at the largest
/// allowed scale (18, e.g. an `ETH:18` asset) that is only ~18.4 whole units of lifetime
/// turnover. `Channel::merge_answered` then failed with `Overflow`, which `Ledger::merge_states`
/// swallowed, so the accepted payment (final for the payee) was never merged; `Channel::view`
/// returned `None`, so `Ledger::balances` silently dropped the channel; and every later offer
/// failed with an overflow on one side or the other.
///
/// Totals are now `u128` ([`Total`]). Here 5 rounds of 6 ETH each way (30 ETH on each line,
/// over 1.6 × 2^64 minor units) keep working: every payment is accepted and merged, the holder
/// takes every state, both balances keep the channel, and its totals and net are exact.
#[test]
fn a_line_keeps_working_after_2_pow_64_minor_units_of_turnover() {
    let asset = Asset::new("ETH", 18).expect("asset");
    let unit = 1_000_000_000_000_000_000u64; // 1 ETH in minor units
    let (mut a, mut b) = pair(&asset, 10 * unit);
    let (ka, kb) = (a.me().clone(), b.me().clone());
    let six = 6 * u128::from(unit);
    for round in 0..5u8 {
        // 6 ETH each way: the net debt swings between 0 and 6 ETH, within the 10 ETH limits.
        let (accepted, merged) = pay(&mut a, &mut b, &asset, 6 * unit, 2 * round);
        assert!(
            accepted && merged,
            "round {round}: a→b accepted {accepted}, merged {merged}"
        );
        let (accepted, merged) = pay(&mut b, &mut a, &asset, 6 * unit, 2 * round + 1);
        assert!(
            accepted && merged,
            "round {round}: b→a accepted {accepted}, merged {merged}"
        );
        let (va, vb) = (a.balances(), b.balances());
        assert_eq!(
            va.len(),
            1,
            "round {round}: the channel vanished from a's balances"
        );
        assert_eq!(
            vb.len(),
            1,
            "round {round}: the channel vanished from b's balances"
        );
        let (va, vb) = (&va[0], &vb[0]);
        // Exact cumulative totals on both ends, agreeing with each other.
        let turnover = six * u128::from(round + 1);
        assert_eq!(va.out_total, Total::from_minor(turnover), "round {round}");
        assert_eq!(va.in_total, Total::from_minor(turnover), "round {round}");
        assert_eq!((vb.in_total, vb.out_total), (va.out_total, va.in_total));
        assert_eq!(
            (va.out_seq, va.in_seq),
            (u64::from(round) + 1, u64::from(round) + 1)
        );
        assert_eq!((vb.in_seq, vb.out_seq), (va.out_seq, va.in_seq));
        // The net is back to zero.
        assert_eq!((va.net, vb.net), (0, 0), "round {round}");
        assert!(va.pending_out.is_zero() && vb.pending_out.is_zero());
        // Both ends hold the same newest states, and nothing waits to be merged or resolved.
        let ab = a.channel(&kb, &asset).expect("a's channel");
        let ba = b.channel(&ka, &asset).expect("b's channel");
        assert_eq!(ab.out_state(), ba.in_state(), "round {round}");
        assert_eq!(ab.in_state(), ba.out_state(), "round {round}");
        for c in [ab, ba] {
            assert!(c.out_conditionals().is_empty(), "round {round}");
            assert!(c.in_conditionals().is_empty(), "round {round}");
        }
    }
    // Past 2^64 minor units each way, and shown in whole units.
    let view = &a.balances()[0];
    assert!(view.out_total.minor() > 1u128 << 64 && view.in_total.minor() > 1u128 << 64);
    assert_eq!(asset.format_total(view.out_total), "30.000000000000000000");
}

/// The same regression through the simulation: seed 11 with amounts up to 2^62 minor units and
/// limits up to 2^63 used to fail at step 289, when the payee rejected an offer with code 41
/// (amount overflow). Now the whole run, with faults, keeps every invariant, and some line's
/// signed total does pass 2^64 minor units on the way.
#[test]
fn simulation_with_large_amounts() {
    let mut config = SimConfig::for_seed(11);
    config.workload.max_amount = u64::MAX / 4;
    config.workload.max_limit = u64::MAX / 2;
    config.keep_trace = true;
    let report = run(config).unwrap_or_else(|violation| panic!("{violation}"));
    assert!(report.steps >= 289, "{report}");
    assert!(report.payments_completed > 0, "{report}");
    // Events read "nA signs ASSET state for nB: seq S total T".
    let largest = report
        .trace
        .iter()
        .filter(|event| event.contains(" signs ") && event.contains(" state for "))
        .filter_map(|event| event.rsplit_once(" total ")?.1.parse::<u128>().ok())
        .max()
        .expect("states were signed");
    assert!(
        largest > u128::from(u64::MAX),
        "the largest signed total {largest} stays below 2^64: the run no longer tests the fix"
    );
}

/// Large amounts with a turnover below 2^64: guards the simulation's own large-number handling
/// (i128 debts, u128 sums) apart from the cumulative totals.
#[test]
fn large_amounts_below_the_turnover_bound() {
    let mut config = SimConfig::for_seed(5);
    config.steps = 60;
    config.faults = Faults::none();
    config.workload.max_amount = 1 << 56;
    config.workload.max_limit = 1 << 58;
    if let Err(violation) = run(config) {
        panic!("{violation}");
    }
}

/// Regression (atomicity-core, `Ledger::try_handle`, offer to a node with no line in the asset):
/// the holder used to sign an `Expired` release *without storing it*, reasoning that expiry is absolute.
/// That holds only while the holder's clock never goes back. The node's clock is the wall clock
/// (`SystemTime`), which NTP or a VM restore can step backwards: if the holder then opens the
/// line before the (resent) offer's expiry by its new clock reading, it accepts the very IOU it
/// already released. The payer keeps whichever answer arrives first and merges it as released;
/// the payee records the payment as received; its next state from the payer "resolves an
/// accepted IOU without counting it" (`UncountedFulfilled`), which the payee keeps as evidence
/// against an honest payer and which blocks every later state on the line.
///
/// Fixed by storing the release like any other answer, in a line opened with zero limits.
#[test]
fn an_offer_released_without_a_line_is_never_accepted_later() {
    let usd = Asset::new("USD", 2).expect("asset");
    let mut a = Ledger::new(Keypair::from_secret_key(&[1; 32]));
    let mut b = Ledger::new(Keypair::from_secret_key(&[2; 32]));
    let (ka, kb) = (a.me().clone(), b.me().clone());
    let mut ops = Vec::new();
    a.add_peer(kb.clone(), None, &mut ops).expect("peer");
    b.add_peer(ka.clone(), None, &mut ops).expect("peer");
    // Only the payer has a USD line.
    let limit = Some(Amount::from_minor(10_000));
    a.set_limits(&kb, &usd, limit, limit, &mut ops)
        .expect("limits");

    let t = 1_700_000_000;
    let offer = a
        .pay(
            &kb,
            &usd,
            Amount::from_minor(500),
            [7; 32],
            String::new(),
            t,
            t + 10,
            &mut ops,
        )
        .expect("pay");
    // The offer reaches b late, by b's clock: a release it does not store.
    let first = b.handle_message(&ka, Message::Offer(offer.clone()), t + 20, &mut ops);
    assert!(matches!(first, Reply::Released(_)), "{first:?}");
    // b's clock is stepped back 15 s; its user opens the line; a's outbox resends the offer.
    b.set_limits(&ka, &usd, limit, limit, &mut ops)
        .expect("limits");
    let mut b_ops = Vec::new();
    let second = b.handle_message(&ka, Message::Offer(offer), t + 5, &mut b_ops);
    assert!(
        matches!(second, Reply::Released(_)),
        "b accepted an IOU it had already released"
    );
}
