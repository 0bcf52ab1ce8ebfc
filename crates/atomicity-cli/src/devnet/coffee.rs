//! Example 1, the seed's "Mom wants to buy a $5 coffee, but they only accept Lightning":
//! Mom's node asks the top of her web of trust that takes her credit and pays Lightning (me:
//! she tags me `family`) to pay the café's invoice against her IOU conditional on the
//! invoice's preimage; I approve, my wallet pays, and Mom owes me exactly the invoice amount.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use atomicity_node::api::SettlementRow;
use atomicity_node::lightning::LnNetwork;
use atomicity_node::lightning::testing::{
    add_fake_invoice, fake_wallet_calls, fake_wallet_payments, make_invoice,
};

use super::Network;

/// The coffee: 5,000 sat (about $5).
const COFFEE_SAT: u64 = 5_000;
/// The same in BTC, as balances show it.
const COFFEE_BTC: &str = "0.00005000";

/// Runs the example (see the module's documentation).
pub fn coffee(net: &Network) -> Result<()> {
    let parties = ["me", "mom"];
    net.step(
        "Mom wants a $5 coffee, but the café only takes Lightning. Mom has no Lightning \
         wallet; she has credit with me (and with Fran), in USD and BTC.",
    );
    let before = net.print_balances("Balances before", &parties)?;

    net.step("The café's Lightning wallet makes a regtest BOLT11 invoice for 5,000 sat.");
    let preimage: [u8; 32] = rand::random();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let invoice = make_invoice(
        preimage,
        Some(COFFEE_SAT * 1000),
        3600,
        LnNetwork::Regtest,
        now,
    )
    .map_err(|e| anyhow::anyhow!("making the invoice: {e}"))?;
    // The fake wallet stands for the Lightning network: it can pay this invoice.
    add_fake_invoice(net.wallet(), &invoice, &preimage)?;
    net.say(&format!("invoice: {}…", &invoice[..40.min(invoice.len())]));

    net.step(
        "Mom's node looks for the top person in her web of trust she has credit with and who \
         pays Lightning: me (she tags me family; Fran is only a friend). It sends me a swap \
         request with an IOU of 0.00005000 BTC, payable only with the invoice's preimage.",
    );
    let mom_dir = net.dir("mom")?;
    let args = ["ln", "pay-via-credit", &invoice, "--json", "--wait", "60"];
    net.say(&format!("mom$ atomicity {}", net.show_args(&args)));
    let pending = Command::new(net.bin())
        .arg("--data-dir")
        .arg(&mom_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running mom's ln pay-via-credit")?;

    let mut request: Option<SettlementRow> = None;
    net.wait(20, "my node receives Mom's swap request", || {
        let rows = settlements(net, "me").map_err(|e| e.to_string())?;
        request = rows
            .into_iter()
            .find(|r| r.kind == "swap" && r.status == "requested" && r.invoice == invoice);
        request.as_ref().map(drop).ok_or_else(|| "not yet".into())
    })?;
    let request = request.context("no request")?;
    let mom_key = net.key("mom")?;
    if request.peer != mom_key {
        bail!(
            "me: the swap request came from {}, not Mom",
            net.name_of(&request.peer)
        );
    }
    net.say(&format!(
        "my node holds Mom's request {}: {} {} for a Lightning invoice",
        &request.id[..12],
        request.amount,
        request.asset
    ));

    net.step("I approve it: my node pays the invoice with my wallet, gets the preimage, and claims Mom's IOU with it.");
    net.act("me", &["settle", "pay", &request.id])?;
    let out = pending.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "mom: ln pay-via-credit failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let row: SettlementRow =
        serde_json::from_str(&stdout).with_context(|| format!("mom's answer: {stdout}"))?;
    if row.status != "done"
        || row.evidence.as_deref() != Some(&format!("preimage {}", hex::encode(preimage)))
    {
        bail!(
            "mom: the swap is {} with evidence {:?}",
            row.status,
            row.evidence
        );
    }
    net.say(&format!(
        "Mom's node: {} (evidence: the invoice's preimage), helper {}",
        row.status,
        net.name_of(&row.peer)
    ));
    net.wait(20, "my side of the swap is done", || {
        let rows = settlements(net, "me").map_err(|e| e.to_string())?;
        match rows.iter().find(|r| r.id == request.id) {
            Some(r) if r.status == "done" => Ok(()),
            other => Err(format!("{:?}", other.map(|r| &r.status))),
        }
    })?;

    let paid = fake_wallet_payments(net.wallet())?
        .into_iter()
        .filter(|p| *p == invoice)
        .count();
    let calls = fake_wallet_calls(net.wallet())?
        .into_iter()
        .filter(|c| c.ends_with(invoice.as_str()))
        .count();
    if paid != 1 || calls != 1 {
        bail!("me: the wallet paid the café's invoice {paid} times ({calls} calls), not once");
    }
    net.say("the wallet paid the café's invoice exactly once: Mom has her coffee");

    net.step("Mom now owes me exactly the invoice's amount, in BTC; nothing else changed.");
    net.print_balances("Balances after", &parties)?;
    let minus = format!("-{COFFEE_BTC}");
    net.expect_changes(
        &before,
        &parties,
        &[
            ("me", "mom", "BTC", COFFEE_BTC),
            ("mom", "me", "BTC", &minus),
        ],
    )?;
    Ok(())
}

fn settlements(net: &Network, who: &str) -> Result<Vec<SettlementRow>> {
    let out = net.cli(who, &["settle", "list", "--json"])?;
    Ok(serde_json::from_str(&out)?)
}
