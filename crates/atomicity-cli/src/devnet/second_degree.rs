//! Example 2, the seed's "I assign a second-degree credit acceptance limit to her friends of
//! $20. Now her friends can use me as a possible route when paying for coffees": once Mom tags
//! Fran, my node accepts up to $20.00 from Fran (and nothing from Gus, Fran's friend), the
//! router finds the way Fran → me → café, Fran's coffee goes through, and a payment over the
//! limit is refused with nothing changed.

use anyhow::{Result, bail};
use serde_json::Value;

use super::{Network, dec};

/// Runs the example (see the module's documentation).
pub fn second_degree(net: &Network) -> Result<()> {
    let parties = ["me", "mom", "fran", "gus", "cafe"];
    let (mom, fran) = (net.key("mom")?, net.key("fran")?);
    net.step(
        "Fran (Mom's friend) wants a $5 coffee at the café. The café takes credit from me, \
         not from Fran; Fran is willing to owe me up to $50, but I have never set a limit \
         for her.",
    );
    let before = net.print_balances("Balances before", &parties)?;

    net.step(
        "Mom is new to Atomicity, but I trust her not to befriend anyone untrustworthy: I tag \
         her family and accept up to $20.00 from each of her friends (distance 2 through her).",
    );
    net.act("me", &["trust", "tag", &mom, "family"])?;
    net.act(
        "me",
        &[
            "trust", "degree", "set", "--asset", "USD", "--depth", "2", "--accept", "20", "--via",
            &mom,
        ],
    )?;
    let limit = net.accept("me", "fran", "USD")?;
    if dec(&limit)? != 0 {
        bail!("me: accepts {limit} from Fran before Mom tagged her");
    }
    net.say("Mom has not tagged Fran yet, so my node accepts nothing from Fran.");

    net.step("Fran tries to pay the café's $5.00 invoice now, naming no route: there is none.");
    let invoice = new_invoice(net, "5.00", "a coffee")?;
    let (code, out, err) = net.try_act("fran", &["invoice", "pay", &invoice, "--wait", "20"])?;
    if code == 0 && out.contains("completed") {
        bail!("fran: paid the café with no limit from me: {out}");
    }
    net.say(&format!(
        "[ok] refused: {}",
        first_line(&format!("{err}{out}"))
    ));
    net.expect_changes(&before, &parties, &[])?;

    net.step(
        "Mom tags Fran as a friend. My node crawls Mom's published trust list and now accepts \
         up to $20.00 from Fran; Gus, Fran's friend, is at distance 3 and gets nothing.",
    );
    net.act("mom", &["trust", "tag", &fran, "friend"])?;
    net.wait(30, "my node gives Fran the $20.00 limit", || {
        match net.accept("me", "fran", "USD").map(|a| dec(&a)) {
            Ok(Ok(v)) if v == dec("20").unwrap_or_default() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })?;
    net.say(&format!(
        "me: accept from Fran = {}",
        net.accept("me", "fran", "USD")?
    ));
    let gus = net.accept("me", "gus", "USD")?;
    if dec(&gus)? != 0 {
        bail!("me: accepts {gus} from Gus, who is at distance 3");
    }
    net.say(&format!(
        "me: accept from Gus = {gus} (distance 3: nothing)"
    ));

    net.step("The router crawls the channel lists again and finds a way from Fran to the café.");
    let mut route = None;
    net.wait(30, "the router finds Fran → me → café", || {
        route = net
            .router_route("fran", "cafe", "5.00", "USD")
            .map_err(|e| e.to_string())?;
        route
            .as_ref()
            .map(drop)
            .ok_or_else(|| "no route yet".into())
    })?;
    let hops = route.unwrap_or_default();
    net.say(&format!("the router's route: fran → {}", hops.join(" → ")));

    net.step(
        "Fran pays the café's $5.00 invoice with no --route: her node asks the router and pays \
         through me; I charge $0.10 to forward.",
    );
    let invoice = new_invoice(net, "5.00", "a coffee")?;
    let out = net.act(
        "fran",
        &["invoice", "pay", &invoice, "--json", "--wait", "30"],
    )?;
    let paid: Value = serde_json::from_str(&out)?;
    if paid["status"] != "completed" {
        bail!("fran: the payment is {}: {out}", paid["status"]);
    }
    net.say("[ok] completed");
    net.print_balances("Balances after", &parties)?;
    net.expect_changes(
        &before,
        &parties,
        &[
            ("fran", "me", "USD", "-5.10"),
            ("me", "fran", "USD", "5.10"),
            ("me", "cafe", "USD", "-5.00"),
            ("cafe", "me", "USD", "5.00"),
        ],
    )?;

    net.step(
        "Fran tries to pay a $20.00 invoice the same way: she would owe me $25.20, over the \
         $20.00 I accept from her. Refused; nothing changes.",
    );
    let after = net.snapshot(&parties)?;
    let invoice = new_invoice(net, "20.00", "coffee beans")?;
    let (code, out, err) = net.try_act("fran", &["invoice", "pay", &invoice, "--wait", "20"])?;
    if code == 0 && out.contains("completed") {
        bail!("fran: paid 20.00 more, over the limit I accept from her: {out}");
    }
    net.say(&format!(
        "[ok] refused: {}",
        first_line(&format!("{err}{out}"))
    ));
    net.expect_changes(&after, &parties, &[])?;
    Ok(())
}

/// A café invoice for `amount` USD.
fn new_invoice(net: &Network, amount: &str, memo: &str) -> Result<String> {
    let out = net.act(
        "cafe",
        &["invoice", "new", amount, "USD", "--memo", memo, "--json"],
    )?;
    let row: Value = serde_json::from_str(&out)?;
    row["invoice"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("cafe: no invoice in {out}"))
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
