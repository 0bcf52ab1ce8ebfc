//! Finding Atomicity nodes and services on the Mainline DHT, without servers of our own.
//!
//! A node publishes its HTTP endpoint as a Pkarr record under its own key ([`record`]), so a
//! peer that knows only the key can reach it, and find it again after it moves. Witnesses,
//! watchtowers and routers announce themselves on fixed infohashes ([`service`]). [`Dht`] does
//! both over one Mainline node; [`BootstrapNode`] starts a local DHT for the devnet and tests.
//! The formats are in `docs/discovery.md`.
#![deny(missing_docs)]

pub mod dht;
pub mod record;
pub mod service;
pub mod verify;

pub use dht::{
    BootstrapNode, Dht, DhtInfo, DhtOptions, DiscoveryError, NodeSettings, PublishOutcome,
    Resolved, public_bootstrap,
};
pub use record::{
    MAX_PACKET_BYTES, RECORD_NAME, RECORD_TTL_SECS, RecordError, node_packet, node_url,
};
pub use service::{Service, infohash};
pub use verify::{Discovered, RejectedService, VerifiedService, check_service};

pub use pkarr::{Keypair, PublicKey, SignedPacket, Timestamp};

/// The Mainline DHT implementation, for `mainline::Testnet` (a local DHT in one process, for
/// tests and benchmarks) and the types [`Service`] infohashes are made of.
pub use mainline;
/// Pkarr, whose packet types the records are.
pub use pkarr;
