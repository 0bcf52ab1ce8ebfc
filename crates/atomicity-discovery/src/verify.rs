//! Turning DHT announces into services one can trust with a key: each address found on a
//! service's infohash is asked to sign a fresh challenge (`GET /v1/identity`, see
//! `atomicity_witness::identity`), and kept only if the signature verifies under the key it
//! claims. Announcing costs nothing, so most of what a busy infohash returns may be junk:
//! every address is checked concurrently, each with a short timeout.

use std::net::SocketAddr;
use std::time::Duration;

use atomicity_witness::identity::{IDENTITY_PATH, IdentityProof, Role, verify_with};
use atomicity_witness::note::{CosignatureVerifier, Verifier};
use pkarr::PublicKey;
use tokio::task::JoinSet;

use crate::{Dht, DiscoveryError, Service};

/// The longest identity answer read.
const MAX_ANSWER: usize = 4096;

/// A service that proved its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedService {
    /// Its base URL (`http://<announced address>`).
    pub url: String,
    /// The key it proved: a witness's log key, a watchtower's cosigner key (signed-note verifier
    /// keys), or a router's node key (z-base32).
    pub key: String,
}

/// An announced address that did not prove a key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedService {
    /// The address announced.
    pub addr: SocketAddr,
    /// Why it was rejected, in words.
    pub why: String,
}

/// What [`Dht::discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Services that proved their keys, in the order they were announced.
    pub verified: Vec<VerifiedService>,
    /// The rest.
    pub rejected: Vec<RejectedService>,
}

fn role(service: Service) -> Role {
    match service {
        Service::Witness => Role::Witness,
        Service::Watchtower => Role::Watchtower,
        Service::Router => Role::Router,
    }
}

/// Reads a key string of `service`'s kind as the Ed25519 key it names.
fn public_key(service: Service, key: &str) -> Option<ed25519_dalek::VerifyingKey> {
    match service {
        Service::Witness => Verifier::from_vkey(key).ok().map(|v| *v.public_key()),
        Service::Watchtower => CosignatureVerifier::from_vkey(key)
            .ok()
            .map(|v| *v.public_key()),
        Service::Router => PublicKey::try_from(key).ok().map(|k| *k.verifying_key()),
    }
}

/// Asks the service at `url` to prove its key with a fresh challenge.
pub async fn check_service(
    http: &reqwest::Client,
    service: Service,
    url: &str,
) -> Result<VerifiedService, String> {
    let challenge: [u8; 32] = rand::random();
    let response = http
        .get(format!("{url}{IDENTITY_PATH}"))
        .query(&[("challenge", hex::encode(challenge))])
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if body.len() > MAX_ANSWER {
        return Err(format!("an answer of {} bytes", body.len()));
    }
    let proof: IdentityProof =
        serde_json::from_slice(&body).map_err(|e| format!("not an identity proof: {e}"))?;
    let key = verify_with(&proof, role(service), &challenge, |k| {
        public_key(service, k)
    })
    .map_err(|e| e.to_string())?;
    Ok(VerifiedService {
        url: url.to_string(),
        key,
    })
}

impl Dht {
    /// Finds `service` on the DHT and keeps the addresses that prove a key (each asked over
    /// HTTP, all at once, each within `timeout`).
    pub async fn discover(
        &self,
        service: Service,
        timeout: Duration,
    ) -> Result<Discovered, DiscoveryError> {
        let addrs = self.find(service).await?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let mut checks = JoinSet::new();
        for (i, addr) in addrs.iter().enumerate() {
            let (http, addr) = (http.clone(), *addr);
            checks.spawn(async move {
                let url = format!("http://{addr}");
                (i, addr, check_service(&http, service, &url).await)
            });
        }
        let mut results = Vec::with_capacity(addrs.len());
        while let Some(done) = checks.join_next().await {
            if let Ok(result) = done {
                results.push(result);
            }
        }
        results.sort_by_key(|(i, _, _)| *i);
        let mut discovered = Discovered::default();
        for (_, addr, result) in results {
            match result {
                Ok(found) => discovered.verified.push(found),
                Err(why) => discovered.rejected.push(RejectedService { addr, why }),
            }
        }
        Ok(discovered)
    }

    /// Announces `service` at `port` now and every `every` (announces expire from the nodes
    /// that store them), until the task is dropped; failures are logged and retried sooner.
    pub async fn announce_forever(&self, service: Service, port: u16, every: Duration) {
        loop {
            let wait = match self.announce(service, port).await {
                Ok(()) => {
                    tracing::info!(service = service.name(), port, "announced on the DHT");
                    every
                }
                Err(e) => {
                    tracing::warn!(service = service.name(), "cannot announce on the DHT: {e}");
                    Duration::from_secs(10).min(every)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
