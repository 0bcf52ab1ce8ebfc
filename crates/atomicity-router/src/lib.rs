//! The Atomicity router (`atomicity router run`): everyone who routes publishes a signed
//! channel list; a router crawls them ([`crawl`]), keeps them in a compact graph ([`index`],
//! over `atomicity-route`), and answers route, multi-route and max-sendable queries with signed
//! answers ([`service`]). Payers find routers on the DHT, ask several and rate them.
#![deny(missing_docs)]

pub mod crawl;
pub mod index;
pub mod service;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Microseconds since the Unix epoch (answer seqs).
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
