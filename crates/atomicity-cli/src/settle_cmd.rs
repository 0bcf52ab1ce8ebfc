//! `atomicity settle …` and `atomicity ln …`: settlement requests and Lightning swaps.

use anyhow::Result;
use atomicity_node::api::{PayViaCreditBody, SettlePayBody, SettleRequestBody, SettlementRow};
use atomicity_node::client::ApiClient;
use clap::Subcommand;

/// `atomicity settle …`.
#[derive(Subcommand)]
pub enum SettleCommand {
    /// Ask KEY, who owes me, to pay out AMOUNT of ASSET through one of my Paykit endpoints
    /// (another Atomicity key of mine: credit reassignment; an on-chain address; cash...), or
    /// to pay a Lightning invoice (--invoice) against my conditional IOU.
    Request {
        /// The issuer asked to pay.
        key: String,
        /// The amount.
        amount: String,
        /// The asset.
        asset: String,
        /// An endpoint id I accept, best first (repeat) [default: my configured endpoints].
        #[arg(long = "method", value_name = "ID")]
        methods: Vec<String>,
        /// A BOLT11 invoice (made by my Lightning wallet) to be paid.
        #[arg(long)]
        invoice: Option<String>,
        /// A note for the payer.
        #[arg(long, default_value = "")]
        memo: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Settlements I asked for and was asked for, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One settlement.
    Show {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pay a settlement I was asked for, through the requester's best method I can pay.
    Pay {
        /// Its id.
        id: String,
        /// Use this endpoint id only.
        #[arg(long, value_name = "ID")]
        method: Option<String>,
        /// What I paid outside Atomicity (an on-chain transaction id, a note), for on-chain
        /// and manual methods.
        #[arg(long)]
        reference: Option<String>,
        /// The preimage, when I paid the request's Lightning invoice by hand.
        #[arg(long)]
        preimage: Option<String>,
        /// Pay the requester's endpoint key through these keys, K1,K2,.. [default: a direct
        /// line, else a route from the routers].
        #[arg(long, value_name = "K1,K2,..", value_delimiter = ',')]
        route: Option<Vec<String>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Confirm that a settlement I asked for was paid (on-chain, cash): my receipt lowers what
    /// the payer owes me.
    Confirm {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a settlement I was asked for.
    Refuse {
        /// Its id.
        id: String,
        /// Why, for the requester.
        #[arg(long)]
        reason: String,
    },
}

/// `atomicity ln …`.
#[derive(Subcommand)]
pub enum LnCommand {
    /// Pay a Lightning invoice I cannot pay myself: a peer that pays Lightning pays it against
    /// my IOU, conditional on the invoice's preimage (both happen or neither).
    PayViaCredit {
        /// The BOLT11 invoice.
        invoice: String,
        /// The asset of the credit I give.
        #[arg(long, default_value = "BTC")]
        asset: String,
        /// How much credit [default: the invoice's amount, for BTC].
        #[arg(long)]
        amount: Option<String>,
        /// The peer to ask [default: the first that pays Lightning and takes my credit].
        #[arg(long)]
        via: Option<String>,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print(row: &SettlementRow, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(row)?);
        return Ok(());
    }
    let who = match row.role.as_str() {
        "requester" => format!("asked {}", row.peer),
        _ => format!("asked by {}", row.peer),
    };
    println!(
        "{}  {} {} {}  {}  {}",
        row.id, row.kind, row.amount, row.asset, who, row.status
    );
    if let Some(method) = &row.method {
        println!("  method: {method}");
    } else {
        println!("  accepts: {}", row.methods.join(", "));
    }
    if let Some(evidence) = &row.evidence {
        println!("  evidence: {evidence}");
    }
    if !row.note.is_empty() {
        println!("  {}", row.note);
    }
    Ok(())
}

/// Runs a `settle` command.
pub async fn settle(api: ApiClient, command: SettleCommand) -> Result<()> {
    match command {
        SettleCommand::Request {
            key,
            amount,
            asset,
            methods,
            invoice,
            memo,
            json,
        } => {
            let row = api
                .settle_request(&SettleRequestBody {
                    peer: key,
                    amount,
                    asset,
                    methods,
                    invoice,
                    memo,
                    expires_in: None,
                })
                .await?;
            print(&row, json)?;
            if row.status == "refused" {
                anyhow::bail!("the request was refused: {}", row.note);
            }
        }
        SettleCommand::List { json } => {
            let rows = api.settlements().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no settlements");
            } else {
                for row in &rows {
                    print(row, false)?;
                }
            }
        }
        SettleCommand::Show { id, json } => print(&api.settlement(&id).await?, json)?,
        SettleCommand::Pay {
            id,
            method,
            reference,
            preimage,
            route,
            json,
        } => {
            let row = api
                .settle_pay(
                    &id,
                    &SettlePayBody {
                        method,
                        reference,
                        preimage,
                        route,
                    },
                )
                .await?;
            print(&row, json)?;
        }
        SettleCommand::Confirm { id, json } => print(&api.settle_confirm(&id).await?, json)?,
        SettleCommand::Refuse { id, reason } => {
            print(&api.settle_refuse(&id, &reason).await?, false)?
        }
    }
    Ok(())
}

/// Runs an `ln` command.
pub async fn ln(api: ApiClient, command: LnCommand) -> Result<()> {
    match command {
        LnCommand::PayViaCredit {
            invoice,
            asset,
            amount,
            via,
            wait,
            json,
        } => {
            let row = api
                .pay_via_credit(&PayViaCreditBody {
                    invoice,
                    asset: Some(asset),
                    amount,
                    via,
                    wait_ms: Some(wait.saturating_mul(1000)),
                })
                .await?;
            print(&row, json)?;
            match row.status.as_str() {
                "done" => {}
                "refused" | "failed" => anyhow::bail!("the invoice was not paid: {}", row.note),
                other => anyhow::bail!(
                    "not finished after {wait} s (status {other}); see `atomicity settle show {}`",
                    row.id
                ),
            }
        }
    }
    Ok(())
}
