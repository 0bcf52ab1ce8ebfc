//! `atomicity delegate …`: delegated payment accounts. `new`, `list` and `revoke` talk to my
//! node's local API; `pay` is the app's side: it needs only a token file, no node of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use atomicity_core::objects::MAX_MEMO_LEN;
use atomicity_core::{Asset, DelegatedPayment, Delegation, Keypair, Signed, parse_key};
use atomicity_node::api::{
    DelegatedPayBody, DelegatedPayResponse, DelegationRow, DelegationToken, NewDelegationRequest,
    ScopeCap,
};
use atomicity_node::client::{ApiClient, ClientError};
use clap::Subcommand;

use crate::output::table;

use crate::EXIT_PENDING;

/// `atomicity delegate …`.
#[derive(Subcommand)]
pub enum DelegateCommand {
    /// Make a delegated payment account: a new sub key that may pay through my credit lines,
    /// at most CAP of each ASSET per period, to the given payees only. Writes the app's token
    /// file (mode 0600).
    New {
        /// An asset the sub key may spend (repeat, each followed by its --cap).
        #[arg(long = "asset", value_name = "ASSET", required = true)]
        assets: Vec<String>,
        /// The cap per period of the --asset before it (decimal).
        #[arg(long = "cap", value_name = "AMOUNT", required = true)]
        caps: Vec<String>,
        /// The period the caps are for: SECONDS or a number with s, m, h, d or w.
        #[arg(long, default_value = "1d")]
        period: String,
        /// A key the sub key may pay (repeat); none: any payee.
        #[arg(long = "payee", value_name = "KEY")]
        payees: Vec<String>,
        /// How long the delegation lasts: SECONDS or a number with s, m, h, d or w.
        #[arg(long)]
        expires: String,
        /// A label for my own view.
        #[arg(long, default_value = "")]
        label: String,
        /// Where to write the token file (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// My delegations: scope, spent this period, expiry, revoked.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke delegation ID: its next order is refused.
    Revoke {
        /// The delegation id (32 hex digits).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The app's side: pay KEY AMOUNT ASSET with the sub key of a token file, through the
    /// master's node (no data directory or node needed). Exit 0 paid, 1 refused or failed, 3
    /// pending.
    Pay {
        /// The token file `delegate new` wrote.
        #[arg(long)]
        token: PathBuf,
        /// The payee's key.
        payee: String,
        /// The amount.
        amount: String,
        /// The asset.
        asset: String,
        /// A note for the payee.
        #[arg(long, default_value = "")]
        memo: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d` or `2w` into seconds (greater than zero).
pub fn parse_duration(text: &str) -> Result<u64> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let bad = || anyhow!("{text:?} is not a duration like 90, 90s, 15m, 12h, 30d or 2w");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    if secs == 0 {
        bail!("{text:?}: a duration must be at least one second");
    }
    Ok(secs)
}

/// `86400` → `1d`, `90` → `90s`: the largest whole unit.
fn show_duration(secs: u64) -> String {
    for (unit, n) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= n && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

fn status(row: &DelegationRow) -> &'static str {
    if row.revoked {
        "revoked"
    } else if row.expired {
        "expired"
    } else {
        "active"
    }
}

fn list_table(rows: &[DelegationRow]) -> String {
    if rows.is_empty() {
        return "no delegations yet; make one with `atomicity delegate new`\n".into();
    }
    table(
        &[
            "ID", "LABEL", "SUB KEY", "SCOPE", "SPENT", "PAYEES", "EXPIRES", "STATUS",
        ],
        &rows
            .iter()
            .map(|r| {
                let scope = r
                    .caps
                    .iter()
                    .map(|c| format!("{} {}/{}", c.cap, c.asset, show_duration(r.period_secs)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let spent = r
                    .caps
                    .iter()
                    .map(|c| format!("{} {}", c.spent, c.asset))
                    .collect::<Vec<_>>()
                    .join(", ");
                let payees = match r.payees.len() {
                    0 => "any".to_string(),
                    1 => r.payees[0].clone(),
                    n => format!("{n} keys"),
                };
                vec![
                    r.id.clone(),
                    r.label.clone(),
                    r.sub_key.clone(),
                    scope,
                    spent,
                    payees,
                    r.expires_at.to_string(),
                    status(r).to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Writes `token` to a new file at `path`, readable by its owner only.
fn write_token(path: &Path, token: &DelegationToken) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the token file {}", path.display()))?;
    file.write_all(serde_json::to_string_pretty(token)?.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

fn read_token(path: &Path) -> Result<(DelegationToken, Signed<Delegation>, Keypair)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token: DelegationToken = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a delegation token file", path.display()))?;
    let bytes = hex::decode(token.delegation.trim())
        .map_err(|_| anyhow!("the token's delegation is not hex"))?;
    let delegation = Signed::<Delegation>::decode(&bytes)
        .map_err(|e| anyhow!("the token's delegation does not decode: {e}"))?;
    let secret: [u8; 32] = hex::decode(token.sub_secret.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("the token's sub_secret is not 64 hex digits"))?;
    let sub = Keypair::from_secret_key(&secret);
    if sub.public_key() != delegation.body().sub {
        bail!("the token's secret is not the delegation's sub key");
    }
    Ok((token, delegation, sub))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a `delegate` command; `api` is my node's local API (not needed by `pay`).
pub async fn run(
    api: impl FnOnce() -> Result<ApiClient, ClientError>,
    command: DelegateCommand,
) -> Result<ExitCode> {
    match command {
        DelegateCommand::New {
            assets,
            caps,
            period,
            payees,
            expires,
            label,
            out,
            json,
        } => {
            if assets.len() != caps.len() {
                bail!("give one --cap after each --asset");
            }
            for a in &assets {
                a.parse::<Asset>()?;
            }
            for p in &payees {
                parse_key(p).map_err(|e| anyhow!("--payee: {e}"))?;
            }
            let period_secs = parse_duration(&period).context("--period")?;
            let expires_in = parse_duration(&expires).context("--expires")?;
            if out.exists() {
                bail!("{} exists; give a new file for the token", out.display());
            }
            let request = NewDelegationRequest {
                label,
                caps: assets
                    .into_iter()
                    .zip(caps)
                    .map(|(asset, cap)| ScopeCap { asset, cap })
                    .collect(),
                period_secs,
                payees,
                expires_in,
                not_before: None,
            };
            let made = api()?.new_delegation(&request).await?;
            write_token(
                &out,
                &DelegationToken {
                    node_url: made.node_url.clone(),
                    delegation: made.signed.clone(),
                    sub_secret: made.sub_secret.clone(),
                },
            )?;
            let row = &made.delegation;
            if json {
                println!("{}", serde_json::to_string_pretty(row)?);
            } else {
                println!("delegation {}", row.id);
                println!("  sub key  {}", row.sub_key);
                for c in &row.caps {
                    println!(
                        "  cap      {} {} per {}",
                        c.cap,
                        c.asset,
                        show_duration(row.period_secs)
                    );
                }
                if row.payees.is_empty() {
                    println!("  payees   any");
                }
                for p in &row.payees {
                    println!("  payee    {p}");
                }
                println!(
                    "  expires  {} (in {})",
                    row.expires_at,
                    show_duration(expires_in)
                );
                println!(
                    "  token    {} (give it to the app; it spends)",
                    out.display()
                );
            }
        }
        DelegateCommand::List { json } => {
            let rows = api()?.delegations().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", list_table(&rows));
            }
        }
        DelegateCommand::Revoke { id, json } => {
            let row = api()?.revoke_delegation(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!("revoked {}", row.id);
            }
        }
        DelegateCommand::Pay {
            token,
            payee,
            amount,
            asset,
            memo,
            json,
        } => return pay(&token, &payee, &amount, &asset, memo, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn pay(
    token: &Path,
    payee: &str,
    amount: &str,
    asset: &str,
    memo: String,
    json: bool,
) -> Result<ExitCode> {
    let (token, delegation, sub) = read_token(token)?;
    let payee = parse_key(payee).map_err(|e| anyhow!(e))?;
    let asset: Asset = asset.parse()?;
    let amount = asset.parse_amount(amount)?;
    if amount.is_zero() {
        bail!("the amount must be greater than zero");
    }
    if memo.len() > MAX_MEMO_LEN {
        bail!("the memo is at most {MAX_MEMO_LEN} bytes");
    }
    let order = Signed::sign(
        DelegatedPayment {
            delegation_id: delegation.body().id,
            order_id: rand::random(),
            sub: sub.public_key(),
            payee: payee.clone(),
            asset: asset.clone(),
            amount,
            memo,
            created_at: now(),
        },
        &sub,
    );
    let body = DelegatedPayBody {
        delegation: token.delegation.trim().to_string(),
        order: hex::encode(order.to_bytes()),
    };
    let outcome = ApiClient::new(&token.node_url, "")
        .delegated_pay(&body)
        .await;
    let response: DelegatedPayResponse = match outcome {
        Ok(r) => r,
        Err(ClientError::Api { code, error, .. }) => {
            eprintln!("error: refused ({code}): {error}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    }
    let reason = response.reason.clone().unwrap_or_default();
    Ok(match response.status.as_str() {
        "completed" => {
            if !json {
                println!(
                    "paid {} {} to {payee} (payment {}; {} of {} spent this period)",
                    response.amount,
                    response.asset,
                    response.payment_id,
                    response.spent,
                    response.cap
                );
            }
            ExitCode::SUCCESS
        }
        "failed" => {
            eprintln!("error: payment failed: {reason}");
            ExitCode::FAILURE
        }
        _ => {
            eprintln!(
                "payment {} is pending: {reason}; the master's node keeps trying",
                response.payment_id
            );
            ExitCode::from(EXIT_PENDING)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2").ok(), Some(2));
        assert_eq!(parse_duration("90s").ok(), Some(90));
        assert_eq!(parse_duration("15m").ok(), Some(900));
        assert_eq!(parse_duration("12h").ok(), Some(43_200));
        assert_eq!(parse_duration("30d").ok(), Some(2_592_000));
        assert_eq!(parse_duration("2w").ok(), Some(1_209_600));
        for bad in [
            "",
            "d",
            "0",
            "0d",
            "1y",
            "-1",
            "1.5d",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(86_400), "1d");
        assert_eq!(show_duration(90), "90s");
        assert_eq!(show_duration(3600), "1h");
    }
}
