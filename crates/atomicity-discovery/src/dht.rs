//! The DHT node: publishes and resolves node records (Pkarr packets, BEP 44 mutable items) and
//! announces and finds services (BEP 5), all through one Mainline node.
//!
//! One node, not two: Pkarr 8.1's clients (`pkarr::Client`, `pkarr::dht::DhtClient`) each
//! start a Mainline node of their own and cannot be handed an existing one, so announces would
//! need a second node (a second UDP port, routing table and bootstrap). Instead this module
//! drives `mainline` directly and uses Pkarr only for its packet format: a packet goes out as
//! the BEP 44 item Pkarr would put (`key`, `sig`, `seq` = timestamp, `v` = DNS packet) and
//! comes back through `SignedPacket::from_relay_payload`, which checks the signature again.

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::errors::{PutMutableError, PutQueryError};
use mainline::{GetMutableOutcome, MutableItem};
use pkarr::{Keypair, PublicKey, SignedPacket, Timestamp};

use crate::record::{self, RecordError};
use crate::service::{Service, infohash};

/// Which DHT to join.
#[derive(Debug, Clone)]
pub struct DhtOptions {
    /// Nodes to join the DHT through, as `HOST:PORT` (IPv4). Empty: start a network of its own
    /// (the first node of a local DHT). Names that do not resolve are skipped with a warning.
    pub bootstrap: Vec<String>,
    /// How long to wait for one DHT node's answer. Queries end when every asked node answered
    /// or timed out, so this bounds how long a query waits on dead nodes.
    pub request_timeout: Duration,
}

/// Where and how the node itself runs; the default suits both the public and a local DHT.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeSettings {
    /// Address to bind the UDP socket to. `None`: all interfaces; on the public DHT port 6881
    /// if free, else any; on a local DHT any port, leaving 6881 to a local bootstrap node.
    pub listen: Option<SocketAddrV4>,
    /// Answer other nodes' requests (store records and announces) from the start. `None`:
    /// decide from the bootstrap addresses, see [`Dht::start`].
    pub server_mode: Option<bool>,
}

/// The public Mainline DHT's usual bootstrap nodes (BitTorrent's, Transmission's,
/// libtorrent's and Pkarr's), as `HOST:PORT`.
pub fn public_bootstrap() -> Vec<String> {
    mainline::DEFAULT_BOOTSTRAP_NODES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for DhtOptions {
    /// The public Mainline DHT, with mainline's default request timeout (2 s).
    fn default() -> Self {
        DhtOptions {
            bootstrap: public_bootstrap(),
            request_timeout: mainline::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Why a DHT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The node could not bind its UDP socket or start its thread.
    #[error("the DHT node could not start: {0}")]
    Start(std::io::Error),
    /// Mainline speaks IPv4 only.
    #[error("the Mainline DHT is IPv4 only; {0} is not an IPv4 address")]
    NotIpv4(SocketAddr),
    /// Bootstrap addresses were given but none resolved to an IPv4 address.
    #[error("no bootstrap address resolved to an IPv4 address: {}", .0.join(", "))]
    Bootstrap(Vec<String>),
    /// The record could not be built.
    #[error("{0}")]
    Record(#[from] RecordError),
    /// No DHT node gave a usable answer: the network is unreachable, not "no record".
    #[error("no DHT node answered ({queried} asked, {responded} responded)")]
    NoResponse {
        /// Nodes asked.
        queried: u32,
        /// Nodes that answered (with an error or malformed reply).
        responded: u32,
    },
    /// The newest value under the key is not a valid Pkarr packet; it still supersedes older
    /// valid ones (resolvers keep the highest sequence number).
    #[error("the newest value under this key (sequence {seq}) is not a valid Pkarr packet")]
    InvalidPacket {
        /// Its BEP 44 sequence number.
        seq: i64,
    },
    /// No DHT node stored the packet.
    #[error("publishing on the DHT failed: {0}")]
    Publish(PutMutableError),
    /// No DHT node stored the announce.
    #[error("announcing on the DHT failed: {0}")]
    Announce(PutQueryError),
    /// Port 0 names no service.
    #[error("cannot announce port 0")]
    InvalidPort,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Size of the encoded DNS packet, bytes (the part limited to 1000).
    pub bytes: usize,
    /// DHT nodes that acknowledged storing it.
    pub stored_on: u32,
    /// The packet's timestamp (its BEP 44 sequence number), microseconds since the epoch.
    pub timestamp: Timestamp,
    /// Records of other applications carried over from the previous packet.
    pub kept_records: usize,
}

/// A node URL found on the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The node's HTTP endpoint.
    pub url: String,
    /// How long the record may be cached, seconds.
    pub ttl_secs: u32,
    /// When the owner signed the packet, microseconds since the epoch.
    pub timestamp: Timestamp,
}

/// A snapshot of the node's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DhtInfo {
    /// The node's DHT id, hex.
    pub id: String,
    /// The bound UDP address.
    pub local_addr: SocketAddrV4,
    /// The address other nodes see, once they have told us.
    pub public_address: Option<SocketAddrV4>,
    /// Whether the node seems unreachable from outside.
    pub firewalled: bool,
    /// Whether it answers other nodes' requests.
    pub server_mode: bool,
    /// Estimated number of nodes in the DHT.
    pub dht_size_estimate: usize,
}

/// A running DHT node. Cheap to clone; the node stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Dht {
    node: AsyncDht,
    local_addr: SocketAddrV4,
}

/// The newest values a get query saw under one key.
struct Latest {
    /// The most recent valid packet.
    packet: Option<SignedPacket>,
    /// The highest sequence number seen, valid packet or not.
    highest_seq: Option<i64>,
    outcome: GetMutableOutcome,
}

impl Latest {
    /// The newest packet, `None` if the key has none, or why the answer cannot be trusted.
    fn newest(&self) -> Result<Option<&SignedPacket>, DiscoveryError> {
        if let Some(seq) = self.highest_seq
            && self
                .packet
                .as_ref()
                .is_none_or(|p| seq_of(p).is_none_or(|s| s < seq))
        {
            return Err(DiscoveryError::InvalidPacket { seq });
        }
        if self.packet.is_none() && self.outcome.valid_responses() == 0 {
            return Err(DiscoveryError::NoResponse {
                queried: self.outcome.queried,
                responded: self.outcome.responded(),
            });
        }
        Ok(self.packet.as_ref())
    }
}

impl Dht {
    /// Starts a node and begins joining the DHT through `options.bootstrap` (in the
    /// background: the first query waits for it). Blocks briefly: bootstrap names are looked up
    /// in DNS, and the node's thread is asked for its address.
    ///
    /// The node runs in server mode (stores records and announces for others, answers their
    /// queries) when the DHT is local: no bootstrap, or only loopback, private and link-local
    /// bootstrap addresses. The nodes of a local DHT must store for each other, and a node that
    /// answers nobody slows everyone down there: the bootstrap node hands it out as a contact,
    /// and every query that meets it waits a request timeout. On the public DHT the node starts
    /// as a client, and Mainline switches it to server mode once it has run for 15 minutes and
    /// other nodes can reach it.
    pub fn start(options: &DhtOptions) -> Result<Dht, DiscoveryError> {
        Dht::start_with(options, NodeSettings::default())
    }

    /// [`Dht::start`] with an address to bind and, if given, the mode.
    pub fn start_with(options: &DhtOptions, settings: NodeSettings) -> Result<Dht, DiscoveryError> {
        let bootstrap = resolve_bootstrap(&options.bootstrap)?;
        let local = bootstrap.iter().all(|addr| {
            let ip = addr.ip();
            ip.is_loopback() || ip.is_private() || ip.is_link_local()
        });
        let server_mode = settings.server_mode.unwrap_or(local);
        let mut builder = mainline::Dht::builder();
        builder
            .bootstrap(&bootstrap)
            .request_timeout(options.request_timeout);
        if server_mode {
            builder.server_mode();
        }
        if let Some(listen) = settings.listen {
            builder.bind_address(*listen.ip()).port(listen.port());
        } else if local {
            builder.port(0);
        }
        let node = builder.build().map_err(DiscoveryError::Start)?;
        // The blocking call is deprecated in favour of the async one; it lets `start` stay
        // synchronous (callable outside a runtime) and waits one turn of the node's loop.
        #[allow(deprecated)]
        let local_addr = node.info().local_addr();
        let node = node.as_async();
        tracing::debug!(%local_addr, bootstrap = bootstrap.len(), server_mode, "DHT node started");
        Ok(Dht { node, local_addr })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// A snapshot of the node's state.
    pub async fn info(&self) -> DhtInfo {
        let info = self.node.info().await;
        DhtInfo {
            id: info.id().to_string(),
            local_addr: info.local_addr(),
            public_address: info.public_address(),
            firewalled: info.firewalled(),
            server_mode: info.server_mode(),
            dht_size_estimate: info.dht_size_estimate().0,
        }
    }

    /// Waits for a lookup of the node's own id, which fills its routing table; `false` if no
    /// other node answered.
    pub async fn bootstrapped(&self) -> bool {
        self.node.bootstrapped().await
    }

    /// Publishes `url` as `keypair`'s node endpoint.
    ///
    /// Reads the key's newest packet from the network first, so records other applications
    /// keep under the same key survive and the new packet's timestamp is above the old one.
    /// No compare-and-swap, as in Pkarr: a packet another application publishes between our
    /// read and our write is overwritten.
    pub async fn publish_node_url(
        &self,
        keypair: &Keypair,
        url: &str,
        now: impl Into<Timestamp>,
    ) -> Result<PublishOutcome, DiscoveryError> {
        record::check_url(url)?;
        let now = now.into();
        let latest = self.latest(&keypair.public_key()).await;
        let (previous, now) = match latest.newest() {
            Ok(previous) => (previous, now),
            // Build on the newest valid packet, above the invalid value's sequence number.
            Err(DiscoveryError::InvalidPacket { seq }) => {
                let floor = Timestamp::from(u64::try_from(seq).unwrap_or(0).saturating_add(1));
                (latest.packet.as_ref(), now.max(floor))
            }
            Err(e) => return Err(e),
        };
        let kept_records = previous.map_or(0, |p| {
            p.all_resource_records().count() - p.resource_records(record::RECORD_NAME).count()
        });
        let packet = record::node_packet(keypair, url, previous, now)?;
        let stored_on = self.publish_packet(&packet).await?;
        Ok(PublishOutcome {
            bytes: packet.encoded_packet().len(),
            stored_on,
            timestamp: packet.timestamp(),
            kept_records,
        })
    }

    /// Publishes a signed packet as it is; returns how many DHT nodes stored it.
    pub async fn publish_packet(&self, packet: &SignedPacket) -> Result<u32, DiscoveryError> {
        let seq = seq_of(packet).ok_or(RecordError::TimestampExhausted)?;
        let item = MutableItem::new_signed_unchecked(
            packet.public_key().to_bytes(),
            packet.signature().to_bytes(),
            &packet.encoded_packet(),
            seq,
            None,
        );
        let outcome = self
            .node
            .put_mutable(item, None)
            .await
            .map_err(DiscoveryError::Publish)?;
        Ok(outcome.stored_at)
    }

    /// The node URL `key` published, asking the network every time (callers cache with the
    /// record's TTL). `Ok(None)`: no packet, no well-formed record, or an invalid newest value.
    pub async fn resolve_node_url(
        &self,
        key: &PublicKey,
    ) -> Result<Option<Resolved>, DiscoveryError> {
        let packet = match self.resolve_packet(key).await {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(None),
            Err(DiscoveryError::InvalidPacket { seq }) => {
                tracing::debug!(%key, seq, "newest DHT value is not a Pkarr packet");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(
            record::node_record(&packet).map(|(url, ttl_secs)| Resolved {
                url,
                ttl_secs,
                timestamp: packet.timestamp(),
            }),
        )
    }

    /// The newest valid packet of `key` on the network, or `None` if nobody has it.
    pub async fn resolve_packet(
        &self,
        key: &PublicKey,
    ) -> Result<Option<SignedPacket>, DiscoveryError> {
        let latest = self.latest(key).await;
        latest.newest()?;
        Ok(latest.packet)
    }

    /// Announces that this host offers `service` on `port` (BEP 5 `announce_peer`).
    ///
    /// The port is sent explicitly (`implied_port` unset); the storing nodes record it with the
    /// IP address the announce came from, so the service must run on this host, reachable at
    /// that address. Announces last until storing nodes evict them (LRU, no expiry time):
    /// re-announce every 30 minutes, as BitTorrent clients do, so new storing nodes learn it.
    pub async fn announce(&self, service: Service, port: u16) -> Result<(), DiscoveryError> {
        if port == 0 {
            return Err(DiscoveryError::InvalidPort);
        }
        self.node
            .announce_peer(infohash(service), Some(port))
            .await
            .map_err(DiscoveryError::Announce)?;
        Ok(())
    }

    /// Addresses announced for `service`, deduplicated, in the order they arrived. Unverified:
    /// see [`crate::service`].
    pub async fn find(&self, service: Service) -> Result<Vec<SocketAddr>, DiscoveryError> {
        let mut peers = self.node.get_peers(infohash(service));
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        while let Some(batch) = peers.next().await {
            for peer in batch {
                if seen.insert(peer) {
                    found.push(SocketAddr::V4(peer));
                }
            }
        }
        Ok(found)
    }

    /// Runs a full get query for `key` and keeps the newest value.
    async fn latest(&self, key: &PublicKey) -> Latest {
        let mut query = self.node.get_mutable_detailed(key.as_bytes(), None, None);
        let mut latest = Latest {
            packet: None,
            highest_seq: None,
            outcome: GetMutableOutcome::default(),
        };
        while let Some(item) = query.items.next().await {
            let seq = item.seq();
            latest.highest_seq = Some(latest.highest_seq.map_or(seq, |s| s.max(seq)));
            match packet_from_item(key, &item) {
                Ok(packet) => {
                    if latest
                        .packet
                        .as_ref()
                        .is_none_or(|best| packet.more_recent_than(best))
                    {
                        latest.packet = Some(packet);
                    }
                }
                Err(error) => tracing::debug!(%key, seq, %error, "DHT value is not a Pkarr packet"),
            }
        }
        latest.outcome = query.outcome.recv().await;
        latest
    }
}

/// A Mainline node for others to join a local DHT through: server mode from the start, no
/// bootstrap of its own. It stores records and announces like any other node.
#[derive(Debug, Clone)]
pub struct BootstrapNode {
    dht: Dht,
}

impl BootstrapNode {
    /// Binds `listen` (IPv4; port 0 picks one) and starts answering.
    pub fn start(listen: SocketAddr) -> Result<BootstrapNode, DiscoveryError> {
        let SocketAddr::V4(listen) = listen else {
            return Err(DiscoveryError::NotIpv4(listen));
        };
        let dht = Dht::start_with(
            &DhtOptions {
                bootstrap: Vec::new(),
                ..DhtOptions::default()
            },
            NodeSettings {
                listen: Some(listen),
                server_mode: Some(true),
            },
        )?;
        Ok(BootstrapNode { dht })
    }

    /// `HOST:PORT` to give other nodes as their bootstrap. When bound to `0.0.0.0`, the host
    /// part is `0.0.0.0`; nodes on other machines need a reachable address of this one.
    pub fn addr(&self) -> String {
        self.dht.local_addr().to_string()
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.dht.local_addr()
    }

    /// The node itself, to inspect it or use it as a client.
    pub fn dht(&self) -> &Dht {
        &self.dht
    }
}

/// Resolves `HOST:PORT` entries to IPv4 addresses; an entry that does not resolve is skipped.
fn resolve_bootstrap(entries: &[String]) -> Result<Vec<SocketAddrV4>, DiscoveryError> {
    let mut resolved = Vec::new();
    for entry in entries {
        match entry.to_socket_addrs() {
            Ok(addrs) => resolved.extend(addrs.filter_map(|addr| match addr {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })),
            Err(error) => tracing::warn!(%entry, %error, "skipping a DHT bootstrap address"),
        }
    }
    if resolved.is_empty() && !entries.is_empty() {
        return Err(DiscoveryError::Bootstrap(entries.to_vec()));
    }
    resolved.dedup();
    Ok(resolved)
}

/// The packet's BEP 44 sequence number: its timestamp, if it fits an i64.
fn seq_of(packet: &SignedPacket) -> Option<i64> {
    i64::try_from(packet.timestamp().as_u64()).ok()
}

/// The Pkarr packet in a BEP 44 item: `sig || seq (u64 big-endian) || v` is Pkarr's relay
/// payload, whose parser verifies the signature over `seq` and `v` with `key`.
fn packet_from_item(
    key: &PublicKey,
    item: &MutableItem,
) -> Result<SignedPacket, pkarr::errors::SignedPacketVerifyError> {
    let mut payload = Vec::with_capacity(72 + item.value().len());
    payload.extend_from_slice(item.signature());
    payload.extend_from_slice(&(item.seq() as u64).to_be_bytes());
    payload.extend_from_slice(item.value());
    SignedPacket::from_relay_payload(key, &Bytes::from(payload))
}
