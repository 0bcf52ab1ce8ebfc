//! Example 3, the seed's dinner: "I decide to pay the entire $300 bill ... I post a request for
//! $270 ($300, minus my meal!) and I share a QR of it ... My app displays how much of the $270
//! has been filled, and as soon as it is, I make the payment to the waitress. Some of the
//! people paid in credit, some paid to my onchain bitcoin address, others paid to my Lightning
//! node." Bob pays in credit, Carol by Lightning, Dave on-chain, Erin offers more than is left
//! (refused) and pays the rest in credit; the moment it is filled my node pays the waitress's
//! Lightning invoice.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use atomicity_node::api::{PaidFillRow, RequestRow};
use atomicity_node::lightning::LnNetwork;
use atomicity_node::lightning::testing::{add_fake_invoice, fake_wallet_payments, make_invoice};

use super::Network;
use crate::request_cmd::progress_bar;

/// My rate: 1,100 sat per dollar.
const SATS_PER_USD: u64 = 1_100;
/// The bill: $300 = 330,000 sat.
const BILL_SAT: u64 = 300 * SATS_PER_USD;

/// Runs the example (see the module's documentation).
pub fn dinner(net: &Network) -> Result<()> {
    let parties = ["me", "bob", "carol", "dave", "erin", "restaurant"];
    net.step(
        "Dinner with Bob, Carol, Dave and Erin: the bill is $300 and the restaurant's waitress \
         takes Lightning. I pay it all to keep it simple, and ask my friends for $270 ($300 \
         minus my meal).",
    );
    let before = net.print_balances("Balances before", &parties)?;

    net.step("The waitress's Lightning wallet makes a regtest invoice for the bill: 330,000 sat.");
    let preimage: [u8; 32] = rand::random();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let waitress = make_invoice(
        preimage,
        Some(BILL_SAT * 1000),
        3600,
        LnNetwork::Regtest,
        now,
    )
    .map_err(|e| anyhow::anyhow!("making the invoice: {e}"))?;
    add_fake_invoice(net.wallet(), &waitress, &preimage)?;

    net.step(
        "I post a request for $270.00, payable in credit, to my Lightning node or to my \
         on-chain address at 1,100 sat per dollar; my node is to pay the waitress the moment it \
         is filled. I share its QR code with the table.",
    );
    let svg = net.root().join("dinner-request.svg");
    let svg_arg = svg.to_string_lossy().to_string();
    let rate = SATS_PER_USD.to_string();
    let out = net.act(
        "me",
        &[
            "request",
            "new",
            "270",
            "USD",
            "--memo",
            "dinner",
            "--method",
            "credit,lightning,onchain",
            "--sats-per-unit",
            &rate,
            "--then-pay",
            &waitress,
            "--svg",
            &svg_arg,
            "--json",
        ],
    )?;
    let row: RequestRow = serde_json::from_str(&out)?;
    let (id, uri) = (row.id.clone(), row.uri.clone());
    net.say(&format!("request {id}: {uri}"));
    if let Ok(qr) = atomicity_node::request::qr_text(&uri) {
        for line in qr.lines() {
            println!("      {line}");
        }
    }
    net.say(&format!("(also as an image: {})", svg.display()));
    show(net, &id)?;

    net.step("Bob pays $100.00 in credit: an IOU to me through our line.");
    pay(net, "bob", &uri, "100", &["--method", "credit"])?;
    wait_paid(net, &id, "100.00")?;

    net.step(
        "Carol pays $70.00 by Lightning: my node makes an invoice for 77,000 sat, her wallet \
         pays it, and her node shows mine the preimage.",
    );
    pay(net, "carol", &uri, "70", &["--method", "lightning"])?;
    wait_paid(net, &id, "170.00")?;

    net.step(
        "Dave pays $60.00 on-chain: 66,000 sat to my address with his own wallet; his node \
         tells mine the transaction id, and the part waits until I see it.",
    );
    let txid = hex::encode(rand::random::<[u8; 32]>());
    pay(
        net,
        "dave",
        &uri,
        "60",
        &["--method", "onchain", "--txid", &txid],
    )?;
    show(net, &id)?;

    net.step(
        "Erin offers $50.00, but only $40.00 is left: her node is refused before anything is \
         paid, and nothing changes.",
    );
    let snapshot = net.snapshot(&parties)?;
    let (code, out, err) = net.try_act("erin", &["request", "pay", &uri, "50"])?;
    if code == 0 || !err.contains("overpay") {
        bail!("erin: an overpayment was not refused: {out}{err}");
    }
    net.say(&format!("[ok] refused: {}", err.trim()));
    net.expect_changes(&snapshot, &parties, &[])?;

    net.step("My wallet shows Dave's transaction: I confirm his part. Erin pays the $40.00 left.");
    net.act("me", &["request", "confirm", &id, "3"])?;
    pay(net, "erin", &uri, "40", &["--method", "credit"])?;

    net.step(
        "The request is filled: my node pays the waitress's invoice at once (I watch it \
         happen with `atomicity request watch`).",
    );
    let watched = net.act("me", &["request", "watch", &id, "--timeout", "60"])?;
    for line in watched.lines() {
        net.say(line);
    }
    let row: RequestRow =
        serde_json::from_str(&net.cli("me", &["request", "show", &id, "--json"])?)?;
    if row.status != "filled" || row.paid != "270.00" {
        bail!("me: the request is {} with {} paid", row.status, row.paid);
    }
    let paid_waitress = fake_wallet_payments(net.wallet())?
        .into_iter()
        .filter(|p| *p == waitress)
        .count();
    if paid_waitress != 1 {
        bail!("me: the waitress's invoice was paid {paid_waitress} times, not once");
    }
    net.say("the waitress's invoice was paid exactly once");

    net.step(
        "Bob and Erin owe me their parts in credit; Carol and Dave paid outside the credit \
         network, so their lines did not move, nor did the restaurant's.",
    );
    net.print_balances("Balances after", &parties)?;
    net.expect_changes(
        &before,
        &parties,
        &[
            ("me", "bob", "USD", "100.00"),
            ("bob", "me", "USD", "-100.00"),
            ("me", "erin", "USD", "40.00"),
            ("erin", "me", "USD", "-40.00"),
        ],
    )?;
    Ok(())
}

/// `who` pays `amount` of the request by the method in `extra`.
fn pay(net: &Network, who: &str, uri: &str, amount: &str, extra: &[&str]) -> Result<()> {
    let mut args = vec!["request", "pay", uri, amount, "--json"];
    args.extend_from_slice(extra);
    let out = net.act(who, &args)?;
    let row: PaidFillRow = serde_json::from_str(&out)?;
    if !matches!(row.status.as_str(), "paid" | "claimed") {
        bail!("{who}: the fill is {}: {:?}", row.status, row.reason);
    }
    let sats = row.sats.map(|s| format!(" = {s} sat")).unwrap_or_default();
    net.say(&format!(
        "[ok] {who}: fill {} of {} {}{sats} by {}: {}",
        row.fill, row.amount, row.asset, row.method, row.status
    ));
    Ok(())
}

fn show(net: &Network, id: &str) -> Result<RequestRow> {
    let row: RequestRow =
        serde_json::from_str(&net.cli("me", &["request", "show", id, "--json"])?)?;
    net.say(&format!("my app shows: {}", progress_bar(&row)));
    Ok(row)
}

fn wait_paid(net: &Network, id: &str, paid: &str) -> Result<()> {
    net.wait(30, &format!("{paid} of the request paid"), || {
        let out = net
            .cli("me", &["request", "show", id, "--json"])
            .map_err(|e| e.to_string())?;
        let row: RequestRow = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        if row.paid == paid {
            Ok(())
        } else {
            Err(format!("paid {}", row.paid))
        }
    })?;
    show(net, id).map(drop)
}
