//! `atomicity`: one binary for every role and the wallet commands (see CLI.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use atomicity_cli::settle_cmd::{LnCommand, SettleCommand};
use atomicity_cli::trust_cmd::TrustCommand;
use atomicity_cli::{bench, devnet, output, settle_cmd, trust_cmd};
use atomicity_node::api::{PayRequest, SetLineRequest};
use atomicity_node::client::ApiClient;
use atomicity_node::datadir::DataDir;
use atomicity_node::{DhtMode, NodeConfig, RunningNode};
use clap::{Parser, Subcommand};

use atomicity_cli::EXIT_PENDING;

#[derive(Parser)]
#[command(name = "atomicity", version, about = "Peer-to-peer mutual credit", long_about = None)]
struct Cli {
    /// Data directory [default: $ATOMICITY_DIR, else $XDG_DATA_HOME/atomicity or ~/.local/share/atomicity]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an identity and a database in DIR; prints the public key.
    Init,
    /// Print this node's public key (z-base32).
    Id,
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Manage peers.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Manage credit lines.
    Line {
        #[command(subcommand)]
        command: LineCommand,
    },
    /// My Paykit payment endpoints, published at
    /// /pub/paykit/v0/apps/atomicity/endpoints/{ID} on the peer API.
    Endpoint {
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Settlement: ask an issuer to pay out its credit through my Paykit endpoints, and pay
    /// what I am asked.
    Settle {
        #[command(subcommand)]
        command: SettleCommand,
    },
    /// Lightning through the credit network.
    Ln {
        #[command(subcommand)]
        command: LnCommand,
    },
    /// The web wallet of the running node: prints its address (with the API token in the
    /// fragment, which the browser never sends to the server); --open opens it.
    Wallet {
        /// Open it in the default browser (xdg-open, or open on macOS).
        #[arg(long)]
        open: bool,
    },
    /// Payment requests: ask many payers for parts of an amount (credit, Lightning,
    /// on-chain), follow it live, pay someone's.
    Request {
        #[command(subcommand)]
        command: atomicity_cli::request_cmd::RequestCommand,
    },
    /// The fake Lightning wallet's invoice maker (devnet and tests): prints a BOLT11 invoice
    /// for AMOUNT_MSAT that the fake wallet in WALLET can pay.
    #[command(hide = true)]
    FakeLnInvoice {
        /// The fake wallet's directory.
        #[arg(long)]
        wallet: PathBuf,
        /// The invoice's network.
        #[arg(long, default_value = "regtest")]
        network: atomicity_node::lightning::LnNetwork,
        /// Millisatoshis.
        amount_msat: u64,
        /// Seconds until it expires.
        expiry: u64,
        /// Ignored (the description is fixed).
        description: Option<String>,
    },
    /// My web of trust: tags, blocked keys, and accept limits by degree of separation.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Delegated payment accounts: a sub key an app holds may pay through my credit lines,
    /// within caps per period and to chosen payees, until it expires or I revoke it.
    Delegate {
        #[command(subcommand)]
        command: atomicity_cli::delegate_cmd::DelegateCommand,
    },
    /// Pay KEY directly, or through intermediate keys with --route: AMOUNT is a decimal string
    /// ("5", "5.00"), ASSET a code (USD) or CODE:SCALE. A routed payment without an invoice is
    /// published by the payer, so the payee may be offline.
    Pay {
        /// The payee's key.
        key: String,
        /// The amount.
        amount: String,
        /// The asset.
        asset: String,
        /// A note for the payee.
        #[arg(long, default_value = "")]
        memo: String,
        /// Intermediate keys in order, K1,K2,..; repeat for a multi-path payment (the amount is
        /// split evenly over the routes).
        #[arg(long = "route", value_name = "K1,K2,..")]
        routes: Vec<String>,
        /// Seconds to wait for the payee before reporting the payment as pending.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invoices: ask to be paid through the credit network.
    Invoice {
        #[command(subcommand)]
        command: InvoiceCommand,
    },
    /// One row per (peer, asset): net position, limits, pending amounts.
    Balance {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Payments made and received, newest first.
    History {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Most rows to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Start a local network of nodes on loopback and show payments, step by step.
    Devnet {
        /// Directory for the nodes' data [default: a temporary directory].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run the examples once and exit: 0 when all succeeded.
        #[arg(long)]
        once: bool,
    },
    /// Run the deterministic simulation: many nodes, a faulty network, crashes; one seed
    /// replays a run exactly.
    Sim {
        /// The seed (one seed is one run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Runs, with seeds SEED, SEED+1, ...
        #[arg(long, default_value_t = 1)]
        runs: u64,
        /// Steps per run.
        #[arg(long)]
        steps: Option<u64>,
        /// Heavier faults.
        #[arg(long)]
        heavy: bool,
    },
    /// Run a witness log (the commit method for routed payments).
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
    /// A watchtower: cosigns witness checkpoints, monitors logs, keeps fork proofs.
    Watchtower {
        #[command(subcommand)]
        command: WatchtowerCommand,
    },
    /// A router: crawls the channel lists nodes publish and answers route queries.
    Router {
        #[command(subcommand)]
        command: RouterCommand,
    },
    /// A Mainline DHT node for a local network (nodes take `--dht-bootstrap HOST:PORT`).
    Dht {
        #[command(subcommand)]
        command: DhtCommand,
    },
    /// Measure direct payments between two nodes on loopback (durable storage); `bench witness`
    /// measures the witness log.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        command: Option<bench::BenchCommand>,
        /// Payments to make.
        #[arg(long, default_value_t = 5000)]
        payments: usize,
        /// Payments in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run the node in the foreground until SIGINT/SIGTERM.
    Run {
        /// Peer API address; 127.0.0.1:0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: SocketAddr,
        /// Local API address (keep it on loopback).
        #[arg(long, default_value = "127.0.0.1:0")]
        api_listen: SocketAddr,
        /// The URL peers should use [default: http://<listen address>].
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        dht: DhtArgs,
        /// A router to ask for routes when a payment names none (its base URL; repeat for
        /// more). Routers found on the DHT are asked too.
        #[arg(long = "router", value_name = "URL")]
        routers: Vec<String>,
        /// Witness logs to publish payment secrets on and name in invoices (base URLs).
        #[arg(long = "witness", value_name = "URL[,..]", value_delimiter = ',')]
        witnesses: Vec<String>,
        /// Seconds after a routed IOU's deadline before it may expire unclaimed (for tests).
        #[arg(long, hide = true)]
        expiry_grace: Option<u64>,
        /// A cosigner (watchtower) whose cosignature my invoices require on the witness
        /// logs' checkpoints: its cosigner verifier key (repeat for more). Payments then wait
        /// for the next cosigned checkpoint (about a second) before they complete.
        #[arg(long = "witness-cosigner", value_name = "VKEY")]
        witness_cosigners: Vec<String>,
        /// How many of the --witness-cosigner keys must cosign [default: all].
        #[arg(long, value_name = "N")]
        witness_threshold: Option<u8>,
        /// My Lightning wallet: a command that pays the BOLT11 invoice given as its last
        /// argument and prints the preimage (JSON `payment_preimage`, or 64 hex digits), e.g.
        /// "lncli payinvoice --force --json". It must refuse to pay an invoice twice (every
        /// wallet does), which makes resuming after a crash safe. With it the node pays
        /// Lightning settlements and swaps, and says so in its published capabilities.
        #[arg(long, value_name = "CMD")]
        ln_pay_cmd: Option<String>,
        /// My Lightning wallet's invoice maker, for payment requests paid by Lightning: a
        /// command run as `CMD <amount msat> <expiry seconds> <description>` that prints a
        /// BOLT11 invoice (alone or in JSON), e.g. a script around "lncli addinvoice".
        #[arg(long, value_name = "CMD")]
        ln_invoice_cmd: Option<String>,
        /// The network of the Lightning invoices the node pays and accepts.
        #[arg(
            long,
            default_value = "bitcoin",
            value_name = "bitcoin|testnet|signet|regtest"
        )]
        ln_network: atomicity_node::lightning::LnNetwork,
        /// Seconds the Lightning wallet command may run.
        #[arg(long, default_value_t = 120)]
        ln_timeout: u64,
        /// Seconds between two crawls of the web of trust (it is also crawled after every
        /// change of mine).
        #[arg(long, default_value_t = 300)]
        trust_refresh: u64,
    },
}

#[derive(Subcommand)]
enum InvoiceCommand {
    /// Make an invoice and print it as an `atomicity:` URI.
    New {
        /// The amount to receive.
        amount: String,
        /// The asset.
        asset: String,
        /// A note for the payer.
        #[arg(long, default_value = "")]
        memo: String,
        /// Seconds until the payment's hard deadline.
        #[arg(long, default_value_t = 600)]
        expires_in: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pay an invoice.
    Pay {
        /// The `atomicity:` URI.
        invoice: String,
        /// Intermediate keys in order, K1,K2,..; repeat for a multi-path payment. Without it
        /// the payee is paid directly.
        #[arg(long = "route", value_name = "K1,K2,..")]
        routes: Vec<String>,
        /// Seconds to wait for the outcome before reporting the payment as pending.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one of my invoices by its payment hash.
    Show {
        /// Hex payment hash.
        hash: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Whether and how a service uses the Mainline DHT.
#[derive(clap::Args, Clone, Debug)]
struct DhtArgs {
    /// Do not use the Mainline DHT (a node's peers then need URLs; a service is not
    /// announced).
    #[arg(long, conflicts_with = "dht_bootstrap")]
    no_dht: bool,
    /// Reach the Mainline DHT through these nodes (e.g. a local `atomicity dht run`) instead of
    /// the public bootstrap nodes.
    #[arg(long, value_name = "HOST:PORT[,..]", value_delimiter = ',')]
    dht_bootstrap: Vec<String>,
}

impl DhtArgs {
    fn mode(&self) -> DhtMode {
        if self.no_dht {
            DhtMode::Off
        } else if self.dht_bootstrap.is_empty() {
            DhtMode::Public
        } else {
            DhtMode::Bootstrap(self.dht_bootstrap.clone())
        }
    }

    /// A DHT client, unless `--no-dht`.
    fn start(&self) -> Result<Option<atomicity_discovery::Dht>> {
        let bootstrap = match self.mode() {
            DhtMode::Off => return Ok(None),
            DhtMode::Public => atomicity_discovery::public_bootstrap(),
            DhtMode::Bootstrap(nodes) => nodes,
        };
        Ok(Some(atomicity_discovery::Dht::start(
            &atomicity_discovery::DhtOptions {
                bootstrap,
                request_timeout: std::time::Duration::from_secs(2),
            },
        )?))
    }
}

/// How often a service announces itself again (announces fall out of the nodes that keep them).
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Announces `service` at the port of `url` until the returned task is aborted.
fn announce(
    dht: Option<atomicity_discovery::Dht>,
    service: atomicity_discovery::Service,
    url: &str,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(dht) = dht else { return Ok(None) };
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {url}"))?;
    Ok(Some(tokio::spawn(async move {
        dht.announce_forever(service, port, ANNOUNCE_EVERY).await;
    })))
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Serve the witness log in the foreground until SIGINT/SIGTERM; writes DIR/witness.url and
    /// DIR/witness.vkey.
    Run {
        /// Listening address; 127.0.0.1:0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7430")]
        listen: SocketAddr,
        /// Block length in seconds.
        #[arg(long, default_value_t = atomicity_witness::service::DEFAULT_BLOCK_SECONDS)]
        block_seconds: u64,
        /// The log's origin line, for a new log [default: atomicity-witness/<8 hex of its key>].
        #[arg(long)]
        origin: Option<String>,
        /// A cosigner (watchtower) to ask for cosignatures on each new checkpoint: its
        /// cosigner verifier key (DIR/watchtower.vkey) and URL (repeat for more).
        #[arg(long = "cosigner", value_name = "VKEY,URL")]
        cosigners: Vec<String>,
        /// Refuse every submission (a censoring witness, for tests).
        #[arg(long, hide = true)]
        censor: bool,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Accept only listed logs in payment conditions (this one, and others allowed).
    Allow {
        /// The log's verifier key (`<origin>+<key id>+<base64>`) or its origin.
        witness: String,
    },
    /// Take a log off the allow list.
    Disallow {
        /// The log's verifier key or origin.
        witness: String,
    },
    /// Never accept a payment condition that names this log.
    Block {
        /// The log's verifier key or origin.
        witness: String,
    },
    /// Take a log off the block list.
    Unblock {
        /// The log's verifier key or origin.
        witness: String,
    },
    /// The witness logs my node accepts in payment conditions.
    Policy {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RouterCommand {
    /// Run the router in the foreground until SIGINT/SIGTERM; writes DIR/router.url. Its key
    /// is DIR's identity (made on the first run).
    Run {
        /// Listening address; 127.0.0.1:0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7450")]
        listen: SocketAddr,
        /// A key to start crawling from, as KEY or KEY@URL (repeat for more); the crawl follows
        /// the peers each channel list names.
        #[arg(long = "seed", value_name = "KEY[@URL]")]
        seeds: Vec<String>,
        /// Seconds between two crawl rounds.
        #[arg(long, default_value_t = 10)]
        round_seconds: u64,
        /// The shortest time between two fetches of one node, in seconds.
        #[arg(long, default_value_t = 30)]
        recrawl_seconds: u64,
        /// Fetches in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[command(flatten)]
        dht: DhtArgs,
    },
}

#[derive(Subcommand)]
enum DhtCommand {
    /// Run a DHT bootstrap node in the foreground until SIGINT/SIGTERM; prints its HOST:PORT
    /// and writes it to DIR/dht.url.
    Run {
        /// UDP address; 127.0.0.1:0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6881")]
        listen: SocketAddr,
    },
    /// Find a kind of service on the DHT (witness, watchtower, router) and print those that
    /// prove their keys; the others are listed with the reason on stderr.
    Find {
        /// witness, watchtower or router.
        service: atomicity_discovery::Service,
        #[command(flatten)]
        dht: DhtArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WatchtowerCommand {
    /// Run the watchtower in the foreground until SIGINT/SIGTERM; writes DIR/watchtower.url and
    /// DIR/watchtower.vkey (its cosigner key).
    Run {
        /// Listening address; 127.0.0.1:0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7440")]
        listen: SocketAddr,
        /// A log to watch: its verifier key, and optionally `,URL` to monitor it there
        /// (repeat for more logs; logs watched before stay watched).
        #[arg(long = "log", value_name = "VKEY[,URL]")]
        logs: Vec<String>,
        /// Seconds between two polls of each monitored log.
        #[arg(long, default_value_t = atomicity_witness::tower_service::DEFAULT_POLL_SECONDS)]
        poll_seconds: u64,
        /// The cosigner name, for a new key [default: atomicity-watchtower/<8 hex of its key>].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        dht: DhtArgs,
    },
}

/// Splits `VKEY[,URL]` (`--log`, `--cosigner`): the URL starts at the first comma after the key's last `+` (a key's
/// name may hold commas, its key ID and base64 key cannot).
fn split_log_arg(arg: &str) -> (String, Option<String>) {
    let key_start = arg.rfind('+').map_or(0, |i| i + 1);
    match arg[key_start..].find(',') {
        Some(i) => {
            let (vkey, url) = arg.split_at(key_start + i);
            let url = url[1..].trim().trim_end_matches('/');
            (vkey.trim().to_string(), Some(url.to_string()))
        }
        None => (arg.trim().to_string(), None),
    }
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Remember a peer.
    Add {
        /// Its key.
        key: String,
        /// Its peer API URL.
        #[arg(long)]
        url: Option<String>,
    },
    /// List peers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LineCommand {
    /// My limits toward KEY in ASSET.
    Set {
        /// The peer.
        key: String,
        /// The asset.
        #[arg(long)]
        asset: String,
        /// How much KEY may owe me.
        #[arg(long)]
        accept: Option<String>,
        /// How much I am willing to owe KEY.
        #[arg(long)]
        issue: Option<String>,
        /// My fixed fee for forwarding routed payments to KEY (decimal).
        #[arg(long)]
        fee_base: Option<String>,
        /// My proportional fee for forwarding to KEY, in millionths (1000 = 0.1%).
        #[arg(long)]
        fee_ppm: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the peer's newest signed IOU state toward me from its published data (for when
    /// its push did not arrive).
    Refresh {
        /// The peer (the issuer).
        key: String,
        /// The asset.
        #[arg(long)]
        asset: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// Publish a payment endpoint: ID is {asset}-{rail}-{format} (e.g. btc-lightning-bolt11),
    /// VALUE its value (a string, or JSON with --json-value).
    Add {
        /// {asset}-{rail}-{format}.
        id: String,
        /// The value.
        value: String,
        /// VALUE is JSON (an object, a number...), not a plain string.
        #[arg(long)]
        json_value: bool,
    },
    /// List my endpoints (the automatic `{asset}-atomicity-key` ones too).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop publishing an endpoint.
    Remove {
        /// Its ID.
        id: String,
    },
}

fn print_witness_policy(policy: &atomicity_node::api::WitnessPolicyView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(policy)?);
        return Ok(());
    }
    if policy.allow.is_empty() {
        println!("accepted: every witness log not blocked");
    } else {
        for w in &policy.allow {
            println!("allowed  {w}");
        }
    }
    for w in &policy.block {
        println!("blocked  {w}");
    }
    Ok(())
}

fn default_data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ATOMICITY_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(xdg).join("atomicity"));
    }
    let home = std::env::var_os("HOME").context("no --data-dir, $ATOMICITY_DIR or $HOME")?;
    Ok(PathBuf::from(home).join(".local/share/atomicity"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Services log what they do; client commands only speak up when something is wrong.
    let default_level = match cli.command {
        Command::Node { .. }
        | Command::Witness {
            command: WitnessCommand::Run { .. },
        }
        | Command::Watchtower { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATOMICITY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let dir = DataDir::new(&data_dir);
    let api = || ApiClient::from_dir(&dir);
    match cli.command {
        Command::Init => {
            let key = dir.init()?;
            println!("{}", key.public_key());
        }
        Command::Id => println!("{}", dir.identity()?.public_key()),
        Command::Node {
            command:
                NodeCommand::Run {
                    listen,
                    api_listen,
                    public_url,
                    dht,
                    witnesses,
                    expiry_grace,
                    witness_cosigners,
                    witness_threshold,
                    routers,
                    ln_pay_cmd,
                    ln_invoice_cmd,
                    ln_network,
                    ln_timeout,
                    trust_refresh,
                },
        } => {
            let node = atomicity_node::start(NodeConfig {
                data_dir,
                listen,
                api_listen,
                public_url,
                witnesses,
                expiry_grace,
                witness_cosigners,
                witness_threshold,
                dht: dht.mode(),
                routers,
                ln_pay_cmd,
                ln_invoice_cmd,
                ln_network,
                ln_timeout: std::time::Duration::from_secs(ln_timeout),
                trust_refresh: std::time::Duration::from_secs(trust_refresh.max(1)),
            })
            .await?;
            println!(
                "node {} listening on {} (local API {})",
                node.key, node.node_url, node.api_url
            );
            wait_for_signal(node).await?;
        }
        Command::Witness {
            command:
                WitnessCommand::Run {
                    listen,
                    block_seconds,
                    origin,
                    cosigners,
                    censor,
                    dht,
                },
        } => {
            let mut pairs = Vec::new();
            for arg in &cosigners {
                match split_log_arg(arg) {
                    (vkey, Some(url)) => pairs.push((vkey, url)),
                    (_, None) => anyhow::bail!("--cosigner {arg}: give VKEY,URL"),
                }
            }
            let witness =
                atomicity_witness::service::start(atomicity_witness::service::WitnessConfig {
                    dir: data_dir,
                    listen,
                    block_seconds,
                    origin,
                    cosigners: pairs,
                    censor,
                })
                .await?;
            println!(
                "witness {} listening on {} (vkey {})",
                witness.origin, witness.url, witness.vkey
            );
            let announcing = announce(
                dht.start()?,
                atomicity_discovery::Service::Witness,
                &witness.url,
            )?;
            stop_signal().await?;
            if let Some(task) = announcing {
                task.abort();
            }
            eprintln!("shutting down");
            witness.shutdown().await;
        }
        Command::Router {
            command:
                RouterCommand::Run {
                    listen,
                    seeds,
                    round_seconds,
                    recrawl_seconds,
                    concurrency,
                    dht,
                },
        } => {
            let mut parsed = Vec::new();
            for seed in &seeds {
                let (key, url) = match seed.split_once('@') {
                    Some((key, url)) => (key, Some(url.trim_end_matches('/').to_string())),
                    None => (seed.as_str(), None),
                };
                let key = atomicity_core::parse_key(key)
                    .map_err(|e| anyhow::anyhow!("--seed {seed}: {e}"))?;
                parsed.push((key, url));
            }
            if !dir
                .root()
                .join(atomicity_node::datadir::IDENTITY_FILE)
                .exists()
            {
                dir.init()?;
            }
            let key = dir.identity()?;
            let dht = dht.start()?.map(std::sync::Arc::new);
            let router = atomicity_router::service::start(
                atomicity_router::service::RouterConfig {
                    key,
                    listen,
                    seeds: parsed,
                    crawl: atomicity_router::crawl::CrawlConfig {
                        concurrency: concurrency.max(1),
                        min_interval: std::time::Duration::from_secs(recrawl_seconds),
                        ..Default::default()
                    },
                    round_every: std::time::Duration::from_secs(round_seconds.max(1)),
                },
                dht.clone(),
            )
            .await?;
            std::fs::write(data_dir.join("router.url"), format!("{}\n", router.url))?;
            println!("router {} listening on {}", router.key, router.url);
            let announcing = announce(
                dht.as_deref().cloned(),
                atomicity_discovery::Service::Router,
                &router.url,
            )?;
            stop_signal().await?;
            eprintln!("shutting down");
            if let Some(task) = announcing {
                task.abort();
            }
            let _ = std::fs::remove_file(data_dir.join("router.url"));
            router.shutdown().await;
        }
        Command::Dht {
            command: DhtCommand::Run { listen },
        } => {
            let node = atomicity_discovery::BootstrapNode::start(listen)?;
            let addr = node.addr();
            std::fs::create_dir_all(&data_dir)?;
            std::fs::write(data_dir.join("dht.url"), format!("{addr}\n"))?;
            println!("{addr}");
            stop_signal().await?;
            eprintln!("shutting down");
            let _ = std::fs::remove_file(data_dir.join("dht.url"));
            drop(node);
        }
        Command::Dht {
            command: DhtCommand::Find { service, dht, json },
        } => {
            let Some(dht) = dht.start()? else {
                bail!("`dht find` needs the DHT: drop --no-dht");
            };
            let found = dht
                .discover(service, std::time::Duration::from_secs(3))
                .await?;
            for r in &found.rejected {
                eprintln!("rejected {}: {}", r.addr, r.why);
            }
            if json {
                let rows: Vec<serde_json::Value> = found
                    .verified
                    .iter()
                    .map(|v| serde_json::json!({ "url": v.url, "key": v.key }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if found.verified.is_empty() {
                println!("no {} proved its key", service.name());
            } else {
                for v in &found.verified {
                    println!("{} {}", v.url, v.key);
                }
            }
        }
        Command::Watchtower {
            command:
                WatchtowerCommand::Run {
                    listen,
                    logs,
                    poll_seconds,
                    name,
                    dht,
                },
        } => {
            use atomicity_witness::tower_service;
            let tower = tower_service::start(tower_service::WatchtowerConfig {
                dir: data_dir,
                listen,
                name,
                logs: logs.iter().map(|l| split_log_arg(l)).collect(),
                poll_seconds,
            })
            .await?;
            println!(
                "watchtower listening on {} (cosigner vkey {})",
                tower.url, tower.vkey
            );
            let announcing = announce(
                dht.start()?,
                atomicity_discovery::Service::Watchtower,
                &tower.url,
            )?;
            stop_signal().await?;
            if let Some(task) = announcing {
                task.abort();
            }
            eprintln!("shutting down");
            tower.shutdown().await;
        }
        Command::Peer {
            command: PeerCommand::Add { key, url },
        } => {
            let row = api()?.add_peer(&key, url.as_deref()).await?;
            match row.url {
                Some(url) => println!("peer {} at {url}", row.key),
                None => println!("peer {}", row.key),
            }
        }
        Command::Peer {
            command: PeerCommand::List { json },
        } => {
            let peers = api()?.peers().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&peers)?);
            } else {
                for p in peers {
                    println!("{}  {}", p.key, p.url.as_deref().unwrap_or("-"));
                }
            }
        }
        Command::Line {
            command:
                LineCommand::Set {
                    key,
                    asset,
                    accept,
                    issue,
                    fee_base,
                    fee_ppm,
                    json,
                },
        } => {
            if accept.is_none() && issue.is_none() && fee_base.is_none() && fee_ppm.is_none() {
                bail!("give --accept, --issue, --fee-base, --fee-ppm or several");
            }
            let row = api()?
                .set_line(&SetLineRequest {
                    peer: key,
                    asset,
                    accept,
                    issue,
                    fee_base,
                    fee_ppm,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!(
                    "line with {} in {}: they may owe you up to {}, you may owe them up to {}",
                    row.peer, row.asset, row.accept, row.issue
                );
            }
        }
        Command::Line {
            command: LineCommand::Refresh { key, asset, json },
        } => {
            let r = api()?.refresh_line(&key, &asset).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.updated {
                println!(
                    "took {}'s newer state (seq {}): net {} {}",
                    key, r.seq, r.line.net, r.line.asset
                );
            } else {
                println!(
                    "already up to date (seq {}): net {} {}",
                    r.seq, r.line.net, r.line.asset
                );
            }
        }
        Command::Witness {
            command: WitnessCommand::Policy { json },
        } => print_witness_policy(&api()?.witness_policy().await?, json)?,
        Command::Witness {
            command: WitnessCommand::Allow { witness },
        } => print_witness_policy(&api()?.witness_change("allow", &witness).await?, false)?,
        Command::Witness {
            command: WitnessCommand::Disallow { witness },
        } => print_witness_policy(&api()?.witness_change("disallow", &witness).await?, false)?,
        Command::Witness {
            command: WitnessCommand::Block { witness },
        } => print_witness_policy(&api()?.witness_change("block", &witness).await?, false)?,
        Command::Witness {
            command: WitnessCommand::Unblock { witness },
        } => print_witness_policy(&api()?.witness_change("unblock", &witness).await?, false)?,
        Command::Settle { command } => settle_cmd::settle(api()?, command).await?,
        Command::Ln { command } => settle_cmd::ln(api()?, command).await?,
        Command::Trust { command } => trust_cmd::run(api()?, command).await?,
        Command::Wallet { open } => wallet(&dir, open)?,
        Command::Request { command } => {
            return atomicity_cli::request_cmd::run(api()?, command).await;
        }
        Command::FakeLnInvoice {
            wallet,
            network,
            amount_msat,
            expiry,
            description: _,
        } => atomicity_cli::request_cmd::fake_ln_invoice(&wallet, network, amount_msat, expiry)?,
        Command::Delegate { command } => {
            return atomicity_cli::delegate_cmd::run(api, command).await;
        }
        Command::Endpoint { command } => match command {
            EndpointCommand::Add {
                id,
                value,
                json_value,
            } => {
                let value = if json_value {
                    serde_json::from_str(&value).context("VALUE is not JSON")?
                } else {
                    serde_json::Value::String(value)
                };
                let row = api()?.add_endpoint(&id, value).await?;
                println!("published {} at {}", row.id, row.path);
            }
            EndpointCommand::List { json } => {
                let rows = api()?.list_endpoints().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for row in rows {
                        let value = match &row.value {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let auto = if row.automatic { "  (automatic)" } else { "" };
                        println!("{}  {value}{auto}", row.id);
                    }
                }
            }
            EndpointCommand::Remove { id } => {
                let row = api()?.remove_endpoint(&id).await?;
                println!("removed {}", row.id);
            }
        },
        Command::Pay {
            key,
            amount,
            asset,
            memo,
            routes,
            wait,
            json,
        } => {
            let response = api()?
                .pay(&PayRequest {
                    peer: key.clone(),
                    amount: amount.clone(),
                    asset: asset.clone(),
                    memo,
                    wait_ms: Some(wait.saturating_mul(1000)),
                    routes: atomicity_cli::split_routes(&routes),
                })
                .await?;
            return report_payment(&response, json, &format!("paid {amount} {asset} to {key}"));
        }
        Command::Invoice {
            command:
                InvoiceCommand::New {
                    amount,
                    asset,
                    memo,
                    expires_in,
                    json,
                },
        } => {
            let row = api()?
                .new_invoice(&atomicity_node::api::InvoiceRequest {
                    amount,
                    asset,
                    memo,
                    expires_in: Some(expires_in),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!("{}", row.invoice);
            }
        }
        Command::Invoice {
            command:
                InvoiceCommand::Pay {
                    invoice,
                    routes,
                    wait,
                    json,
                },
        } => {
            let parsed = atomicity_core::Invoice::parse(&invoice)
                .map_err(|e| anyhow::anyhow!("not an invoice: {e}"))?;
            let response = api()?
                .pay_invoice(&atomicity_node::api::PayInvoiceRequest {
                    invoice,
                    routes: atomicity_cli::split_routes(&routes),
                    wait_ms: Some(wait.saturating_mul(1000)),
                })
                .await?;
            let done = format!(
                "paid {} {} to {}",
                parsed.asset.format(parsed.amount),
                parsed.asset,
                parsed.payee
            );
            return report_payment(&response, json, &done);
        }
        Command::Invoice {
            command: InvoiceCommand::Show { hash, json },
        } => {
            let row = api()?.invoice(&hash).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!(
                    "{} {} {}  {}\n{}",
                    row.amount, row.asset, row.status, row.memo, row.invoice
                );
            }
        }
        Command::Balance { json } => {
            let rows = api()?.balance().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::balance_table(&rows));
            }
        }
        Command::History { json, limit } => {
            let rows = api()?.history(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::history_table(&rows));
            }
        }
        Command::Devnet { dir, once } => {
            // The devnet drives processes with blocking calls: on its own thread, outside
            // this runtime.
            let ok = std::thread::spawn(move || devnet::run(dir, once))
                .join()
                .map_err(|_| anyhow::anyhow!("the devnet panicked"))??;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Bench {
            command: Some(bench::BenchCommand::Witness(args)),
            ..
        } => atomicity_cli::bench_witness::run(args).await?,
        Command::Bench {
            command: Some(bench::BenchCommand::Routed(args)),
            ..
        } => atomicity_cli::bench_routed::run(args).await?,
        Command::Bench {
            command: Some(bench::BenchCommand::Dht(args)),
            ..
        } => atomicity_cli::bench_dht::run(args).await?,
        Command::Bench {
            command: Some(bench::BenchCommand::Route(args)),
            ..
        } => atomicity_cli::bench_route::run(args).await?,
        Command::Bench {
            command: None,
            payments,
            concurrency,
            json,
        } => bench::run(payments, concurrency, json).await?,
        Command::Sim {
            seed,
            runs,
            steps,
            heavy,
        } => {
            for seed in seed..seed.saturating_add(runs) {
                let mut config = atomicity_sim::SimConfig::for_seed(seed);
                if let Some(steps) = steps {
                    config.steps = steps;
                }
                if heavy {
                    config.faults = atomicity_sim::Faults::heavy();
                }
                match atomicity_sim::run(config) {
                    Ok(report) => println!("{report}"),
                    Err(violation) => {
                        eprintln!("{violation}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT or SIGTERM.
async fn stop_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn wait_for_signal(node: RunningNode) -> Result<()> {
    stop_signal().await?;
    eprintln!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Prints a payment's outcome; the exit code says it (0 paid, 1 failed, 3 pending).
fn report_payment(
    response: &atomicity_node::api::PayResponse,
    json: bool,
    done: &str,
) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
    }
    let reason = response.reason.clone().unwrap_or_default();
    Ok(match response.status.as_str() {
        "completed" => {
            if !json {
                println!("{done} (payment {})", response.payment_id);
            }
            ExitCode::SUCCESS
        }
        "failed" => {
            eprintln!("error: payment failed: {reason}");
            ExitCode::FAILURE
        }
        _ => {
            eprintln!(
                "payment {} is pending: {reason}; see `atomicity history`",
                response.payment_id
            );
            ExitCode::from(EXIT_PENDING)
        }
    })
}

/// `atomicity wallet`: the web wallet's address on the node's local API, with the token.
fn wallet(dir: &DataDir, open: bool) -> Result<()> {
    use atomicity_node::datadir::{API_TOKEN_FILE, API_URL_FILE};
    let running = |e| {
        anyhow::anyhow!(
            "no node is running on {} ({e}); start one with `atomicity node run`",
            dir.root().display()
        )
    };
    let url = dir.read_text(API_URL_FILE).map_err(running)?;
    let token = dir.read_text(API_TOKEN_FILE).map_err(running)?;
    let address = format!(
        "{}/wallet#token={}",
        url.trim().trim_end_matches('/'),
        token.trim()
    );
    println!("{address}");
    if open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        match std::process::Command::new(opener)
            .arg(&address)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(_) => eprintln!("opened with {opener}"),
            Err(e) => eprintln!("could not run {opener} ({e}): open the address above yourself"),
        }
    }
    Ok(())
}
