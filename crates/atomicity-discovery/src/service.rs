//! Services found on the DHT: each kind has a fixed infohash that providers announce themselves
//! on (BEP 5 `announce_peer`) and clients look up (`get_peers`).
//!
//! An announce says only "something at this address claims to offer this service": anyone can
//! announce anything. A client must make the service prove its key before trusting it.

use sha2::{Digest, Sha256};

/// A kind of service a node can offer to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// A witness log (publishes secrets with proofs of when).
    Witness,
    /// A watchtower (cosigns witness checkpoints).
    Watchtower,
    /// A router (finds paths through credit lines).
    Router,
}

impl Service {
    /// Every service, in a fixed order.
    pub const ALL: [Service; 3] = [Service::Witness, Service::Watchtower, Service::Router];

    /// Short lower-case name, as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Witness => "witness",
            Service::Watchtower => "watchtower",
            Service::Router => "router",
        }
    }

    /// The fixed string hashed into the service's infohash. Versioned so a later protocol can
    /// move to new infohashes without meeting old providers.
    pub fn topic(self) -> &'static str {
        match self {
            Service::Witness => "atomicity/v1/service/witness",
            Service::Watchtower => "atomicity/v1/service/watchtower",
            Service::Router => "atomicity/v1/service/router",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| format!("unknown service {s:?} (witness, watchtower or router)"))
    }
}

/// The service's infohash: the first 20 bytes of SHA-256 of its [topic](Service::topic).
pub fn infohash(service: Service) -> mainline::Id {
    let digest = Sha256::digest(service.topic().as_bytes());
    let mut id = [0u8; 20];
    id.copy_from_slice(&digest[..20]);
    mainline::Id::from(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values docs/discovery.md lists; a change here is a protocol change.
    #[test]
    fn infohashes_are_the_documented_ones() {
        let expected = [
            (Service::Witness, "904825988e132a09dbdd91be67250f30ef2315b0"),
            (
                Service::Watchtower,
                "e28d520d6aa71b98dcbcb97b6b94f74dd8624ee1",
            ),
            (Service::Router, "c3a7a484a1b3c64445fc7b074a636500b046cad5"),
        ];
        for (service, hex) in expected {
            assert_eq!(infohash(service).to_string(), hex, "{service}");
            let full = Sha256::digest(service.topic().as_bytes());
            assert_eq!(infohash(service).as_bytes()[..], full[..20]);
        }
    }

    #[test]
    fn names_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>(), Ok(service));
        }
        assert!("tower".parse::<Service>().is_err());
    }
}
