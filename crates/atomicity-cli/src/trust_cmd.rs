//! `atomicity trust …`: my web of trust.

use anyhow::Result;
use atomicity_node::api::{DegreeRow, KeyRequest, RemoveDegreeRequest, TagRequest, TrustView};
use atomicity_node::client::ApiClient;
use clap::Subcommand;

/// `atomicity trust …`.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Tag KEY (friend, family, merchant, or your own words); published with my data.
    Tag {
        /// The key.
        key: String,
        /// One or more tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Remove tags from KEY (no TAG: every tag).
    Untag {
        /// The key.
        key: String,
        /// Tags to remove.
        tags: Vec<String>,
    },
    /// Block KEY: no automatic limit ever, and my friends see it blocked.
    Block {
        /// The key.
        key: String,
    },
    /// Unblock KEY.
    Unblock {
        /// The key.
        key: String,
    },
    /// My tags, blocked keys, degree rules and the limits they set now.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Defaults by degree of separation.
    Degree {
        /// What to do.
        #[command(subcommand)]
        command: DegreeCommand,
    },
}

/// `atomicity trust degree …`.
#[derive(Subcommand)]
pub enum DegreeCommand {
    /// Accept up to ACCEPT of ASSET from every key at distance 2..=DEPTH through VIA (VIA's
    /// friends at depth 2): "I accept $20 from Mom's friends".
    Set {
        /// The asset.
        #[arg(long)]
        asset: String,
        /// 2 (the keys VIA tags) to 4.
        #[arg(long, default_value_t = 2)]
        depth: u8,
        /// The accept limit.
        #[arg(long)]
        accept: String,
        /// The key the rule goes through.
        #[arg(long)]
        via: String,
        /// Only keys tagged with this tag along the way [default: any tag].
        #[arg(long)]
        tag: Option<String>,
    },
    /// Remove the rule for ASSET through VIA.
    Remove {
        /// The asset.
        #[arg(long)]
        asset: String,
        /// The key the rule goes through.
        #[arg(long)]
        via: String,
    },
}

fn print(view: &TrustView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
        return Ok(());
    }
    if view.tags.is_empty() && view.blocked.is_empty() && view.degrees.is_empty() {
        println!("no tags, no blocked keys, no degree rules");
    }
    for (key, tags) in &view.tags {
        println!("{key}  {}", tags.join(", "));
    }
    for key in &view.blocked {
        println!("{key}  blocked");
    }
    for d in &view.degrees {
        let tag = d
            .tag
            .as_deref()
            .map(|t| format!(" tagged {t}"))
            .unwrap_or_default();
        println!(
            "accept {} {} from keys at distance 2..={} through {}{tag}",
            d.accept, d.asset, d.depth, d.via
        );
    }
    for a in &view.auto {
        println!(
            "  {}  accept {} {} (web of trust)",
            a.key, a.accept, a.asset
        );
    }
    for u in &view.unread {
        println!("  {}  trust document not used: {}", u.key, u.why);
    }
    Ok(())
}

/// Runs a `trust` command.
pub async fn run(api: ApiClient, command: TrustCommand) -> Result<()> {
    let view = match command {
        TrustCommand::Tag { key, tags } => {
            api.trust_change("tag", &TagRequest { key, tags }).await?
        }
        TrustCommand::Untag { key, tags } => {
            api.trust_change("untag", &TagRequest { key, tags }).await?
        }
        TrustCommand::Block { key } => api.trust_change("block", &KeyRequest { key }).await?,
        TrustCommand::Unblock { key } => api.trust_change("unblock", &KeyRequest { key }).await?,
        TrustCommand::List { json } => return print(&api.trust().await?, json),
        TrustCommand::Degree { command } => match command {
            DegreeCommand::Set {
                asset,
                depth,
                accept,
                via,
                tag,
            } => {
                let row = DegreeRow {
                    asset,
                    depth,
                    accept,
                    via,
                    tag,
                };
                api.trust_change("degrees", &row).await?
            }
            DegreeCommand::Remove { asset, via } => {
                api.trust_change("degrees/remove", &RemoveDegreeRequest { asset, via })
                    .await?
            }
        },
    };
    print(&view, false)
}
