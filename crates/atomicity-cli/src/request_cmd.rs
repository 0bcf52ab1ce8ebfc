//! `atomicity request …`: payment requests that many payers fill in parts (the design
//! document's dinner), and `atomicity fake-ln-invoice`, the invoice maker of the fake Lightning
//! wallet that the devnet and the tests use.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use atomicity_node::api::{NewRequestBody, PaidFillRow, PayRequestBody, RequestRow};
use atomicity_node::client::ApiClient;
use atomicity_node::request::{Action, qr_svg, qr_text};
use clap::Subcommand;

use crate::EXIT_PENDING;

/// `atomicity request …`.
#[derive(Subcommand)]
pub enum RequestCommand {
    /// Ask to be paid AMOUNT ASSET, in parts, by anyone holding the request's URI. Prints the
    /// URI (first line) and the request id.
    New {
        /// The amount in all.
        amount: String,
        /// The asset.
        asset: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        memo: String,
        /// The methods it accepts: credit, lightning, onchain.
        #[arg(long = "method", value_delimiter = ',', default_value = "credit")]
        methods: Vec<String>,
        /// Satoshis per whole unit of ASSET, for Lightning and on-chain (implied for BTC).
        #[arg(long)]
        sats_per_unit: Option<u64>,
        /// My on-chain address [default: my first on-chain Paykit endpoint].
        #[arg(long)]
        address: Option<String>,
        /// Seconds until it expires [default: one day].
        #[arg(long)]
        expires: Option<u64>,
        /// Pay this Lightning invoice with my wallet once the request is filled (the
        /// waitress's bill).
        #[arg(long, value_name = "BOLT11")]
        then_pay: Option<String>,
        /// Also print the URI as a QR code.
        #[arg(long)]
        qr: bool,
        /// Write the URI as an SVG QR code to FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// My payment requests.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One of my requests with its fills.
    Show {
        /// The request id.
        id: String,
        /// Also print the URI as a QR code.
        #[arg(long)]
        qr: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a request of mine live until it is filled (exit 0), expires or is cancelled
    /// (exit 1), or TIMEOUT passes (exit 3).
    Watch {
        /// The request id.
        id: String,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Pay AMOUNT (in the request's asset) of someone's request, by METHOD.
    Pay {
        /// The request's `atomicity:` URI.
        uri: String,
        /// How much of it I pay.
        amount: String,
        /// credit, lightning (my node's wallet pays) or onchain (I paid already: give --txid).
        #[arg(long, default_value = "credit")]
        method: String,
        /// On-chain: the transaction I sent to the request's address.
        #[arg(long)]
        txid: Option<String>,
        /// Credit: intermediate keys K1,K2,.. (repeat for multi-path) [default: direct, or
        /// routers].
        #[arg(long = "route", value_name = "K1,K2,..")]
        routes: Vec<String>,
        /// Seconds to wait for a credit payment's outcome.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Confirm a claimed on-chain fill of my request: the transaction arrived.
    Confirm {
        /// The request id.
        id: String,
        /// The fill number.
        fill: u32,
    },
    /// Reject a claimed on-chain fill of my request: no such transaction arrived.
    Reject {
        /// The request id.
        id: String,
        /// The fill number.
        fill: u32,
    },
    /// Take no more fills.
    Cancel {
        /// The request id.
        id: String,
    },
}

/// Runs `atomicity request …`.
pub async fn run(api: ApiClient, command: RequestCommand) -> Result<ExitCode> {
    match command {
        RequestCommand::New {
            amount,
            asset,
            memo,
            methods,
            sats_per_unit,
            address,
            expires,
            then_pay,
            qr,
            svg,
            json,
        } => {
            let row = api
                .new_request(&NewRequestBody {
                    amount,
                    asset,
                    memo,
                    methods,
                    sats_per_unit,
                    address,
                    expires_in: expires,
                    then_pay,
                })
                .await?;
            if let Some(path) = svg {
                write_svg(&path, &row.uri)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!("{}", row.uri);
                println!(
                    "request {}: {} {} by {}{}",
                    row.id,
                    row.amount,
                    row.asset,
                    row.methods.join(", "),
                    if row.memo.is_empty() {
                        String::new()
                    } else {
                        format!(" for {:?}", row.memo)
                    }
                );
                if qr {
                    print!("{}", qr_text(&row.uri).map_err(anyhow::Error::msg)?);
                    println!();
                }
                println!("follow it with `atomicity request watch {}`", row.id);
            }
        }
        RequestCommand::List { json } => {
            let rows = api.requests().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            format!("{} {}", r.amount, r.asset),
                            format!("{} ({}%)", r.paid, r.percent),
                            r.status.clone(),
                            r.memo.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    crate::output::table(&["ID", "AMOUNT", "PAID", "STATUS", "MEMO"], &table)
                );
            }
        }
        RequestCommand::Show { id, qr, json } => {
            let row = api.request(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                print_request(&row);
                if qr {
                    print!("{}", qr_text(&row.uri).map_err(anyhow::Error::msg)?);
                }
            }
        }
        RequestCommand::Watch { id, timeout } => return watch(&api, &id, timeout).await,
        RequestCommand::Pay {
            uri,
            amount,
            method,
            txid,
            routes,
            wait,
            json,
        } => {
            let row = api
                .pay_request(&PayRequestBody {
                    uri,
                    amount,
                    method: Some(method),
                    txid,
                    routes: crate::split_routes(&routes),
                    wait_ms: Some(wait.saturating_mul(1000)),
                })
                .await?;
            return report_fill(&row, json);
        }
        RequestCommand::Confirm { id, fill } => {
            print_request(
                &api.request_change(&id, &format!("fills/{fill}/confirm"))
                    .await?,
            );
        }
        RequestCommand::Reject { id, fill } => {
            print_request(
                &api.request_change(&id, &format!("fills/{fill}/reject"))
                    .await?,
            );
        }
        RequestCommand::Cancel { id } => {
            print_request(&api.request_change(&id, "cancel").await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_svg(path: &Path, uri: &str) -> Result<()> {
    let svg = qr_svg(uri).map_err(anyhow::Error::msg)?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// Prints a paid fill; the exit code says how it went (0 paid or claimed, 1 failed, 3 pending).
fn report_fill(row: &PaidFillRow, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(row)?);
    }
    let sats = row.sats.map(|s| format!(" ({s} sat)")).unwrap_or_default();
    let reason = row.reason.clone().unwrap_or_default();
    Ok(match row.status.as_str() {
        "paid" => {
            if !json {
                println!(
                    "paid {} {}{sats} by {} (request {}, fill {})",
                    row.amount, row.asset, row.method, row.request, row.fill
                );
            }
            ExitCode::SUCCESS
        }
        "claimed" => {
            if !json {
                println!(
                    "sent {} {}{sats} on-chain (request {}, fill {}): {reason}",
                    row.amount, row.asset, row.request, row.fill
                );
            }
            ExitCode::SUCCESS
        }
        "failed" => {
            eprintln!("error: the fill was not paid: {reason}");
            ExitCode::FAILURE
        }
        other => {
            eprintln!(
                "fill {} is {other}: {reason}; see `atomicity history`",
                row.fill
            );
            ExitCode::from(EXIT_PENDING)
        }
    })
}

/// Prints a request and its fills.
pub fn print_request(row: &RequestRow) {
    println!(
        "request {}  {} {}  {}  {}",
        row.id, row.amount, row.asset, row.status, row.memo
    );
    println!("  {}", progress_bar(row));
    println!("  uri: {}", row.uri);
    for f in &row.fills {
        let sats = f.sats.map(|s| format!(" = {s} sat")).unwrap_or_default();
        let payer = f.payer.as_deref().map(short).unwrap_or("?");
        println!(
            "  fill {:>3}  {:<9} {:>12} {}{sats}  from {payer}  {}",
            f.id, f.method, f.amount, row.asset, f.status
        );
    }
    if let Some(action) = &row.action {
        println!("  when filled: {}", describe_action(action));
    }
}

fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

fn describe_action(action: &Action) -> String {
    match action {
        Action::None => "nothing".into(),
        Action::Waiting { .. } => "pay the invoice (waiting)".into(),
        Action::Paying { .. } => "paying the invoice…".into(),
        Action::Paid { preimage, .. } => format!("paid the invoice (preimage {preimage})"),
        Action::Failed { reason, .. } => format!("paying the invoice failed: {reason}"),
    }
}

/// `[##########..........]  135.00 / 270.00 USD  50%  (20.00 pending)`.
pub fn progress_bar(row: &RequestRow) -> String {
    const WIDTH: usize = 30;
    let done = usize::from(row.percent.min(100)) * WIDTH / 100;
    let pending = if row.pending.trim_start_matches(['0', '.']).is_empty() {
        String::new()
    } else {
        format!("  ({} pending)", row.pending)
    };
    format!(
        "[{}{}] {:>10} / {} {} {:>3}%{pending}",
        "#".repeat(done),
        ".".repeat(WIDTH - done),
        row.paid,
        row.amount,
        row.asset,
        row.percent
    )
}

async fn watch(api: &ApiClient, id: &str, timeout: u64) -> Result<ExitCode> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut out = std::io::stdout();
    loop {
        let row = api.request(id).await?;
        let line = format!("{}  {}", progress_bar(&row), row.status);
        if line != last {
            if tty {
                write!(out, "\r{line}\x1b[K")?;
            } else {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            last = line;
        }
        let action_busy = matches!(
            row.action,
            Some(Action::Waiting { .. } | Action::Paying { .. })
        );
        match row.status.as_str() {
            "filled" if !action_busy => {
                if tty {
                    writeln!(out)?;
                }
                println!("filled: {} {} paid", row.paid, row.asset);
                if let Some(action) = &row.action {
                    println!("then: {}", describe_action(action));
                    if matches!(action, Action::Failed { .. }) {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            "expired" | "cancelled" => {
                if tty {
                    writeln!(out)?;
                }
                eprintln!(
                    "the request is {} with {} {} paid",
                    row.status, row.paid, row.asset
                );
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            if tty {
                writeln!(out)?;
            }
            eprintln!("still {} after {timeout} s", row.status);
            return Ok(ExitCode::from(EXIT_PENDING));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `atomicity fake-ln-invoice --wallet DIR AMOUNT_MSAT EXPIRY DESCRIPTION`: the invoice maker of
/// the fake Lightning wallet in DIR (see `atomicity_node::lightning::testing`): a real signed
/// BOLT11 invoice with a fresh preimage that the fake wallet of every node sharing DIR can then
/// pay. For the devnet and tests; configure it as `node run --ln-invoice-cmd`.
pub fn fake_ln_invoice(
    wallet: &Path,
    network: atomicity_node::lightning::LnNetwork,
    amount_msat: u64,
    expiry: u64,
) -> Result<()> {
    use atomicity_node::lightning::testing::{add_fake_invoice, make_invoice};
    let preimage: [u8; 32] = rand::random();
    let now = atomicity_node::unix_now();
    let invoice = make_invoice(preimage, Some(amount_msat), expiry, network, now)
        .map_err(anyhow::Error::msg)?;
    add_fake_invoice(wallet, &invoice, &preimage)
        .with_context(|| format!("cannot write to the fake wallet in {}", wallet.display()))?;
    println!("{invoice}");
    Ok(())
}
