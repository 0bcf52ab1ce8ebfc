//! The Atomicity node: a thin async shell around the sans-I/O core.
//!
//! - [`actor`]: the single writer that runs the core and commits to the store (group commit),
//!   answering only after the commit.
//! - [`server`]: the peer API (signed binary envelopes) and the local API (JSON + bearer token).
//! - [`peer`]: sending envelopes to peers, and the outbox that retries until they take them.
//! - [`directory`]: where peers are (configured URLs, or their Pkarr records on the DHT).
//! - [`published`]: the signed documents served at `/pub/…` (Paykit endpoints, channel list,
//!   newest states), and reading a peer's back.
//! - [`client`]: a typed client of the local API, used by the CLI, the devnet and tests.
#![deny(missing_docs)]

pub mod actor;
pub mod api;
pub mod client;
pub mod datadir;
pub mod delegate;
mod delegate_api;
pub mod directory;
pub mod lightning;
pub mod peer;
pub mod published;
pub mod publisher;
mod rails;
pub mod request;
mod request_api;
pub mod routers;
pub mod server;
pub mod settle;
mod settle_api;
pub mod trust;
mod trust_api;
pub mod waiters;
pub mod web;
pub mod witness_client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use atomicity_core::{Ledger, PublicKey};
use atomicity_store::{SqliteStore, Store};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::datadir::{API_TOKEN_FILE, API_URL_FILE, DB_FILE, DataDir, DataDirError, NODE_URL_FILE};
use crate::peer::{Directory, Outbox, PeerClient};
use crate::server::AppState;

/// How long an offered payment stays valid, in seconds.
pub const OFFER_TTL_SECS: u64 = 3600;

/// Seconds since the Unix epoch (the shell's clock; the core takes time as an argument).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Microseconds since the Unix epoch (Pkarr timestamps, document seqs).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The data directory (must have been initialised).
    pub data_dir: PathBuf,
    /// Where the peer API listens.
    pub listen: SocketAddr,
    /// Where the local API listens (keep it on loopback).
    pub api_listen: SocketAddr,
    /// The URL peers should use, if not `http://<listen address>`.
    pub public_url: Option<String>,
    /// Witness logs this node publishes on and names in its invoices (base URLs).
    pub witnesses: Vec<String>,
    /// How long after a routed IOU's deadline the node lets it expire unclaimed (default
    /// [`atomicity_core::ledger::DEFAULT_EXPIRY_GRACE_SECS`]).
    pub expiry_grace: Option<u64>,
    /// Cosigners whose cosignatures this node's invoices require on witness checkpoints
    /// (verifier keys; empty: none).
    pub witness_cosigners: Vec<String>,
    /// How many of `witness_cosigners` must cosign (default: all).
    pub witness_threshold: Option<u8>,
    /// Whether the node publishes its URL on the Mainline DHT and looks peers up there.
    pub dht: DhtMode,
    /// Routers to ask for routes (base URLs), besides those the DHT finds.
    pub routers: Vec<String>,
    /// The user's Lightning wallet command (pays the invoice given as its last argument and
    /// prints the preimage), for settlements and swaps; `None`: the node pays no invoices.
    pub ln_pay_cmd: Option<String>,
    /// The user's Lightning invoice command (run as `CMD <amount msat> <expiry secs>
    /// <description>`, prints a BOLT11 invoice), for payment requests paid by Lightning;
    /// `None`: the node's requests do not offer Lightning.
    pub ln_invoice_cmd: Option<String>,
    /// The Lightning network whose invoices the node pays and accepts.
    pub ln_network: lightning::LnNetwork,
    /// How long the wallet command may run.
    pub ln_timeout: std::time::Duration,
    /// How often the web of trust is crawled again (also at once after every change).
    pub trust_refresh: std::time::Duration,
}

impl NodeConfig {
    /// A node in `data_dir` listening on loopback ports the system picks, with no witness, no
    /// DHT and no router: set the rest with struct update syntax.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        NodeConfig {
            data_dir: data_dir.into(),
            listen: loopback,
            api_listen: loopback,
            public_url: None,
            witnesses: Vec::new(),
            expiry_grace: None,
            witness_cosigners: Vec::new(),
            witness_threshold: None,
            dht: DhtMode::Off,
            routers: Vec::new(),
            ln_pay_cmd: None,
            ln_invoice_cmd: None,
            ln_network: lightning::LnNetwork::Bitcoin,
            ln_timeout: std::time::Duration::from_secs(120),
            trust_refresh: std::time::Duration::from_secs(300),
        }
    }
}

/// Whether and where a node uses the Mainline DHT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DhtMode {
    /// No DHT: peers need URLs (`peer add KEY --url URL`).
    #[default]
    Off,
    /// The public Mainline DHT, through its usual bootstrap nodes.
    Public,
    /// A DHT reached through these bootstrap nodes (`HOST:PORT`), e.g. a local one.
    Bootstrap(Vec<String>),
}

/// How long one DHT request may take before the node gives up on that DHT node.
const DHT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often the node republishes its record (records live about two hours on the DHT).
const DHT_REPUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The data directory is not usable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database could not be opened or read.
    #[error("database: {0}")]
    Store(String),
    /// Another node runs on this data directory.
    #[error("another node is already running on {0}")]
    Locked(PathBuf),
    /// A configured witness could not be reached.
    #[error("{0}")]
    Witness(String),
    /// The DHT client could not start.
    #[error("DHT: {0}")]
    Dht(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A node running in this process.
pub struct RunningNode {
    /// Its key.
    pub key: PublicKey,
    /// Its peer-facing URL.
    pub node_url: String,
    /// Its local API URL.
    pub api_url: String,
    /// Its local API token.
    pub api_token: String,
    shutdown: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    ledger_thread: Option<std::thread::JoinHandle<()>>,
    actor: Option<actor::ActorHandle>,
    dir: DataDir,
    _lock: std::fs::File,
}

impl RunningNode {
    /// A local API client for this node.
    pub fn client(&self) -> client::ApiClient {
        client::ApiClient::new(&self.api_url, &self.api_token)
    }

    /// Stops serving, lets requests in progress finish, and waits for the ledger to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
        for task in self.background.drain(..) {
            task.abort();
            let _ = task.await;
        }
        // Dropping the last actor handles ends the ledger thread after its current batch.
        self.actor.take();
        if let Some(thread) = self.ledger_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.dir.clear_run_files();
    }
}

/// Starts a node: opens its store, rebuilds the ledger, binds both APIs, writes `node.url`,
/// `api.url` and `api.token`, and resumes delivering what peers have not taken yet.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let dir = DataDir::new(&config.data_dir);
    let key = dir.identity()?;
    let lock = lock_dir(&dir)?;
    let mut store =
        SqliteStore::open(&dir.file(DB_FILE)).map_err(|e| NodeError::Store(e.to_string()))?;
    let snapshot = store.load().map_err(|e| NodeError::Store(e.to_string()))?;
    let mut ledger =
        Ledger::restore(key.clone(), snapshot).map_err(|e| NodeError::Store(e.to_string()))?;
    if let Some(grace) = config.expiry_grace {
        ledger.set_expiry_grace(grace);
    }
    let cosigning = publisher::CosignerRequirement::new(
        config.witness_cosigners.clone(),
        config.witness_threshold,
    )
    .map_err(NodeError::Witness)?;
    let witnesses = Arc::new(
        publisher::discover_remembered(&dir, &config.witnesses)
            .await
            .map_err(NodeError::Witness)?,
    );
    let dht = start_dht(&config.dht)?;
    let directory = Directory::new(dht.clone());
    for peer in ledger.peers() {
        directory.set(peer.key.clone(), peer.url.clone());
    }

    let peer_listener = bind(config.listen).await?;
    let api_listener = bind(config.api_listen).await?;
    let peer_addr = peer_listener
        .local_addr()
        .map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| NodeError::Bind {
            addr: config.api_listen,
            source,
        })?;
    let node_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{peer_addr}"));
    let api_url = format!("http://{api_addr}");
    let api_token = hex::encode(rand::random::<[u8; 32]>());

    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    let payments = Arc::new(waiters::PaymentWaiters::default());
    let outputs = actor::ActorOutputs {
        outbound: outbound_tx,
        publish: publish_tx,
        payments: Arc::clone(&payments),
    };
    let (actor, ledger_thread) = actor::spawn(key.clone(), ledger, Box::new(store), outputs);
    let client = PeerClient::new(key.clone(), actor.clone(), directory.clone());
    let outbox = Outbox::new();
    let state = AppState::new(server::Shared {
        me: key.public_key(),
        node_url: node_url.clone(),
        actor: actor.clone(),
        directory,
        client: client.clone(),
        token: Arc::new(api_token.clone()),
        outbox: Arc::clone(&outbox),
        witnesses: Arc::clone(&witnesses),
        cosigning: Arc::new(cosigning),
        routers: Arc::new(routers::Routers::new(
            config.routers.clone(),
            dht.clone(),
            &dir,
        )),
        payments,
        quotes: Arc::default(),
        published: Arc::new(published::Publisher::open(key.clone(), &dir)?),
        lightning: Arc::new(
            settle::Lightning::new(
                config
                    .ln_pay_cmd
                    .clone()
                    .map(|cmd| lightning::LnPayer::new(cmd, config.ln_timeout)),
                config.ln_network,
            )
            .with_invoicer(
                config
                    .ln_invoice_cmd
                    .clone()
                    .map(|cmd| lightning::LnInvoicer::new(cmd, config.ln_timeout)),
            ),
        ),
        requests: Arc::new(request::Requests::open(&dir)?),
        trust: Arc::new(trust::Trust::open(&dir, config.trust_refresh)?),
        delegations: Arc::new(delegate::Delegations::open(&dir, key.clone())?),
    });
    // The witness lists hold before any peer is heard.
    trust::apply_witness_policy(&state)
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?;

    dir.write_text(API_TOKEN_FILE, &api_token, true)?;
    dir.write_text(NODE_URL_FILE, &node_url, false)?;
    dir.write_text(API_URL_FILE, &api_url, false)?;

    let (shutdown, _) = watch::channel(false);
    let serve = |listener: tokio::net::TcpListener, router: axum::Router| {
        let mut stop = shutdown.subscribe();
        tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!("server stopped: {e}");
            }
        })
    };
    let servers = vec![
        serve(peer_listener, server::peer_router(state.clone())),
        serve(
            api_listener,
            web::local_app(state.clone(), api_addr, shutdown.subscribe()),
        ),
    ];
    let mut background = vec![
        tokio::spawn(settle::run(state.clone())),
        tokio::spawn(request::run(state.clone())),
        tokio::spawn(trust::run(state)),
        tokio::spawn(outbox.run(client, outbound_rx, actor.clone())),
        tokio::spawn(publisher::run(witnesses, actor.clone(), publish_rx)),
        tokio::spawn(tick(actor.clone())),
    ];
    if let Some(dht) = dht {
        background.push(tokio::spawn(publish_record(
            dht,
            key.clone(),
            node_url.clone(),
        )));
    }
    tracing::info!(key = %key.public_key(), %node_url, %api_url, "node running");
    Ok(RunningNode {
        key: key.public_key(),
        node_url,
        api_url,
        api_token,
        shutdown,
        servers,
        background,
        ledger_thread: Some(ledger_thread),
        actor: Some(actor),
        dir,
        _lock: lock,
    })
}

/// Tells the ledger the time every second, for expiries.
async fn tick(actor: actor::ActorHandle) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        if actor
            .call(|r| actor::Command::Tick(unix_now(), r))
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

fn lock_dir(dir: &DataDir) -> Result<std::fs::File, NodeError> {
    let path = dir.file("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DataDirError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Locked(dir.root().to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(DataDirError::Io { path, source }.into()),
    }
}

fn start_dht(mode: &DhtMode) -> Result<Option<Arc<atomicity_discovery::Dht>>, NodeError> {
    let bootstrap = match mode {
        DhtMode::Off => return Ok(None),
        DhtMode::Public => atomicity_discovery::public_bootstrap(),
        DhtMode::Bootstrap(nodes) => nodes.clone(),
    };
    let dht = atomicity_discovery::Dht::start(&atomicity_discovery::DhtOptions {
        bootstrap,
        request_timeout: DHT_REQUEST_TIMEOUT,
    })
    .map_err(|e| NodeError::Dht(e.to_string()))?;
    Ok(Some(Arc::new(dht)))
}

/// Publishes the node's Pkarr record (its peer URL) now and every [`DHT_REPUBLISH_EVERY`],
/// retrying sooner after a failure; a record too large to publish is reported once.
async fn publish_record(
    dht: Arc<atomicity_discovery::Dht>,
    key: atomicity_core::Keypair,
    url: String,
) {
    let mut retry = std::time::Duration::from_secs(1);
    loop {
        let wait = match dht.publish_node_url(&key, &url, unix_micros()).await {
            Ok(outcome) => {
                tracing::info!(
                    %url,
                    bytes = outcome.bytes,
                    stored_on = outcome.stored_on,
                    "published the node's record on the DHT"
                );
                retry = std::time::Duration::from_secs(1);
                DHT_REPUBLISH_EVERY
            }
            Err(e) => {
                tracing::warn!("cannot publish the node's record on the DHT: {e}");
                retry = (retry * 2).min(std::time::Duration::from_secs(60));
                retry
            }
        };
        tokio::time::sleep(wait).await;
    }
}
