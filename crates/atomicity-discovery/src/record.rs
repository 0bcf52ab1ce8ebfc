//! A node's record in its Pkarr packet: the HTTP endpoint peers reach it at.
//!
//! Pure: no I/O, and time comes in as an argument. A key has one packet on the DHT, shared by
//! every application that publishes under that key, so [`node_packet`] rewrites only our own
//! name (`_atomicity`) and carries every other record over.
//!
//! The record is a TXT record at `_atomicity.<z-base32 key>` whose text is `v=1;url=<url>`:
//! `;`-separated `key=value` fields, `v=1` first; readers ignore fields they do not know, so
//! later versions can add fields without breaking older readers.

use pkarr::dns::rdata::{RData, TXT};
use pkarr::dns::{Name, ResourceRecord};
use pkarr::errors::SignedPacketBuildError;
use pkarr::{Keypair, SignedPacket, Timestamp};

/// The DNS name (relative to the key) of a node's endpoint record.
pub const RECORD_NAME: &str = "_atomicity";

/// TTL of the endpoint record, seconds: how long resolvers may cache it. Five minutes is
/// Pkarr's minimum TTL; a node that moves is found again within that time.
pub const RECORD_TTL_SECS: u32 = 300;

/// Largest encoded DNS packet a Pkarr record may have, bytes: BEP 44's limit on a mutable
/// value, which every DHT node enforces.
pub const MAX_PACKET_BYTES: usize = 1000;

/// The record format version this crate writes and reads.
const VERSION_FIELD: &str = "v=1";

/// Why a node packet could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The URL is not one peers can use.
    #[error("invalid node URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The records (ours plus those other applications keep under the same key) do not fit.
    #[error(
        "the key's DNS packet would be {size} bytes, over the {limit}-byte limit of a Pkarr \
         record (BEP 44); other applications' records under this key take part of it"
    )]
    TooLarge {
        /// Encoded size of the packet that was refused, bytes.
        size: usize,
        /// The limit, [`MAX_PACKET_BYTES`].
        limit: usize,
    },
    /// The previous packet is signed by another key.
    #[error("the previous packet belongs to another key")]
    WrongKey,
    /// The previous packet's timestamp leaves no later one (BEP 44 sequence numbers are i64).
    #[error("no timestamp after the previous packet's fits a BEP 44 sequence number")]
    TimestampExhausted,
    /// The DNS encoder refused the packet.
    #[error("DNS encoding failed: {0}")]
    Dns(String),
}

/// Checks that `url` is an absolute `http` or `https` URL with a host, in printable ASCII and
/// without `;` (the record's field separator). The URL is published as given, not normalized.
pub fn check_url(url: &str) -> Result<(), RecordError> {
    let invalid = |reason| RecordError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    if url.is_empty() {
        return Err(invalid("empty"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("only printable ASCII without spaces is allowed"));
    }
    if url.contains(';') {
        return Err(invalid("';' separates the record's fields"));
    }
    let parsed = url::Url::parse(url).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}

/// The text of a node's endpoint record.
pub fn record_text(url: &str) -> String {
    format!("{VERSION_FIELD};url={url}")
}

/// Reads the URL out of a record's text; `None` for another version or a malformed text.
pub fn parse_record_text(text: &str) -> Option<String> {
    let mut fields = text.split(';');
    if fields.next()? != VERSION_FIELD {
        return None;
    }
    let url = fields.find_map(|field| field.strip_prefix("url="))?;
    check_url(url).ok()?;
    Some(url.to_string())
}

/// Builds and signs `keypair`'s packet announcing `url`.
///
/// Every record of `previous` (the key's newest packet on the network, if any) whose name is
/// not `_atomicity` is kept as it was: other applications publish under the same key, and a
/// packet replaces the whole previous one. The packet's timestamp is `timestamp`, or one
/// microsecond after `previous`'s if that is not later, because DHT nodes refuse a sequence
/// number lower than the one they hold and resolvers keep the highest.
pub fn node_packet(
    keypair: &Keypair,
    url: &str,
    previous: Option<&SignedPacket>,
    timestamp: impl Into<Timestamp>,
) -> Result<SignedPacket, RecordError> {
    check_url(url)?;
    let timestamp = timestamp.into();
    let ours = own_name(keypair);
    let mut records: Vec<ResourceRecord<'static>> = Vec::new();
    let mut timestamp = timestamp;
    if let Some(previous) = previous {
        if previous.public_key() != keypair.public_key() {
            return Err(RecordError::WrongKey);
        }
        let next = previous
            .timestamp()
            .as_u64()
            .checked_add(1)
            .ok_or(RecordError::TimestampExhausted)?;
        timestamp = timestamp.max(Timestamp::from(next));
        records.extend(
            previous
                .all_resource_records()
                .filter(|rr| !rr.name.to_string().eq_ignore_ascii_case(&ours))
                .map(|rr| rr.clone().into_owned()),
        );
    }
    if timestamp.as_u64() > i64::MAX as u64 {
        return Err(RecordError::TimestampExhausted);
    }
    let text = record_text(url);
    let txt = TXT::try_from(text.as_str())
        .map_err(|e| RecordError::Dns(e.to_string()))?
        .into_owned();
    let name = Name::new(RECORD_NAME).map_err(|e| RecordError::Dns(e.to_string()))?;
    records.push(ResourceRecord::new(
        name,
        pkarr::dns::CLASS::IN,
        RECORD_TTL_SECS,
        RData::TXT(txt),
    ));
    // Pkarr measures the encoded packet before signing, so an oversized one costs no signature.
    SignedPacket::new(keypair, &records, timestamp).map_err(|e| match e {
        SignedPacketBuildError::PacketTooLarge(size) => RecordError::TooLarge {
            size,
            limit: MAX_PACKET_BYTES,
        },
        other => RecordError::Dns(other.to_string()),
    })
}

/// The node's endpoint record in `packet`: its URL and TTL (seconds). The first well-formed
/// `_atomicity` TXT record wins; malformed ones are ignored.
pub fn node_record(packet: &SignedPacket) -> Option<(String, u32)> {
    packet
        .resource_records(RECORD_NAME)
        .find_map(|rr| match &rr.rdata {
            RData::TXT(txt) => {
                let text = String::try_from(txt.clone()).ok()?;
                Some((parse_record_text(&text)?, rr.ttl))
            }
            _ => None,
        })
}

/// The node URL published in `packet`, if it has a well-formed `_atomicity` record.
pub fn node_url(packet: &SignedPacket) -> Option<String> {
    node_record(packet).map(|(url, _)| url)
}

/// `_atomicity.<z-base32 key>`, the full name Pkarr stores our record under.
fn own_name(keypair: &Keypair) -> String {
    format!("{RECORD_NAME}.{}", keypair.public_key().to_z32())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> Keypair {
        Keypair::from_secret_key(&[seed; 32])
    }

    fn foreign(keypair: &Keypair, records: &[(&str, &str)], ts: u64) -> SignedPacket {
        let mut builder = SignedPacket::builder().timestamp(Timestamp::from(ts));
        for (name, text) in records {
            builder = builder.txt(
                Name::new(name).expect("name"),
                TXT::try_from(*text).expect("txt"),
                7200,
            );
        }
        builder.sign(keypair).expect("sign")
    }

    #[test]
    fn round_trip_without_previous() {
        let k = key(1);
        let packet =
            node_packet(&k, "https://node.example:8443/x", None, 1_000u64).expect("packet");
        assert_eq!(packet.timestamp(), Timestamp::from(1_000));
        assert_eq!(
            node_url(&packet).as_deref(),
            Some("https://node.example:8443/x")
        );
        assert_eq!(
            node_record(&packet).map(|r| r.1),
            Some(RECORD_TTL_SECS),
            "the record carries our TTL"
        );
        let text: Vec<String> = packet
            .resource_records(RECORD_NAME)
            .filter_map(|rr| match &rr.rdata {
                RData::TXT(t) => String::try_from(t.clone()).ok(),
                _ => None,
            })
            .collect();
        assert_eq!(
            text,
            vec!["v=1;url=https://node.example:8443/x".to_string()]
        );
    }

    #[test]
    fn keeps_foreign_records_and_replaces_ours() {
        let k = key(2);
        let first = foreign(&k, &[("_pubky", "homeserver=abc"), (".", "hello")], 500);
        let ours = node_packet(&k, "http://127.0.0.1:1", Some(&first), 10u64).expect("p");
        // Strictly after the previous even though `now` is earlier (a clock behind).
        assert_eq!(ours.timestamp(), Timestamp::from(501));
        let moved = node_packet(&k, "http://10.0.0.2:2", Some(&ours), 2_000u64).expect("p");
        assert_eq!(moved.timestamp(), Timestamp::from(2_000));
        assert_eq!(node_url(&moved).as_deref(), Some("http://10.0.0.2:2"));
        assert_eq!(
            moved.resource_records(RECORD_NAME).count(),
            1,
            "ours replaced"
        );
        assert_eq!(moved.resource_records("_pubky").count(), 1, "foreign kept");
        assert_eq!(moved.resource_records("@").count(), 1, "apex kept");
        let pubky = moved.resource_records("_pubky").next().expect("pubky");
        assert_eq!(pubky.ttl, 7200, "foreign records keep their TTL");
    }

    #[test]
    fn equal_timestamp_is_bumped() {
        let k = key(3);
        let first = node_packet(&k, "http://a.example", None, 42u64).expect("p");
        let second = node_packet(&k, "http://b.example", Some(&first), 42u64).expect("p");
        assert_eq!(second.timestamp(), Timestamp::from(43));
    }

    #[test]
    fn previous_of_another_key_is_refused() {
        let first = node_packet(&key(4), "http://a.example", None, 1u64).expect("p");
        assert_eq!(
            node_packet(&key(5), "http://a.example", Some(&first), 2u64).err(),
            Some(RecordError::WrongKey)
        );
    }

    #[test]
    fn urls_are_checked() {
        let k = key(6);
        for bad in [
            "",
            "ftp://x.example",
            "http//x",
            "x.example:80",
            "http://a.example/;b",
            "http://a.example/ b",
            "mailto:x@y",
            "http://a.example/é",
        ] {
            assert!(
                matches!(
                    node_packet(&k, bad, None, 1u64),
                    Err(RecordError::InvalidUrl { .. })
                ),
                "{bad:?} accepted"
            );
        }
        for good in [
            "http://127.0.0.1:8080",
            "https://[::1]:443/",
            "http://a.b/c?d=e",
        ] {
            node_packet(&k, good, None, 1u64).expect(good);
        }
    }

    #[test]
    fn long_urls_span_several_txt_strings() {
        let k = key(7);
        let url = format!("https://node.example/{}", "a".repeat(400));
        let packet = node_packet(&k, &url, None, 1u64).expect("p");
        assert_eq!(node_url(&packet), Some(url));
    }

    /// Signs TXT records at `_other` with `texts`.
    fn sign_texts(
        keypair: &Keypair,
        texts: &[String],
    ) -> Result<SignedPacket, SignedPacketBuildError> {
        let mut builder = SignedPacket::builder().timestamp(Timestamp::from(1));
        for text in texts {
            let txt = TXT::try_from(text.as_str()).expect("txt");
            builder = builder.txt(Name::new("_other").expect("name"), txt, 60);
        }
        builder.sign(keypair)
    }

    /// A packet of `keypair` filled with foreign TXT records to within a few bytes of the limit.
    fn nearly_full(keypair: &Keypair) -> SignedPacket {
        let mut texts = Vec::new();
        for size in [100, 5] {
            loop {
                texts.push("x".repeat(size));
                if sign_texts(keypair, &texts).is_err() {
                    texts.pop();
                    break;
                }
            }
        }
        sign_texts(keypair, &texts).expect("fits")
    }

    #[test]
    fn too_large_names_the_limit() {
        let k = key(8);
        let full = nearly_full(&k);
        assert!(full.encoded_packet().len() > MAX_PACKET_BYTES - 20);
        let err = node_packet(&k, "http://a.example", Some(&full), 2u64).expect_err("big");
        match &err {
            RecordError::TooLarge { size, limit } => {
                assert!(*size > MAX_PACKET_BYTES, "{size}");
                assert_eq!(*limit, 1000);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("1000-byte limit"), "{err}");
    }

    #[test]
    fn malformed_records_are_ignored() {
        let k = key(9);
        for text in [
            "url=http://a.example",
            "v=2;url=http://a.example",
            "v=1",
            "v=1;url=",
            "v=1;url=ftp://a.example",
            "v=1;url=not a url",
        ] {
            let p = foreign(&k, &[(RECORD_NAME, text)], 1);
            assert_eq!(node_url(&p), None, "{text:?}");
        }
        // Unknown fields are skipped; the first well-formed record wins.
        let p = foreign(
            &k,
            &[
                (RECORD_NAME, "garbage"),
                (RECORD_NAME, "v=1;future=yes;url=http://b.example"),
            ],
            1,
        );
        assert_eq!(node_url(&p).as_deref(), Some("http://b.example"));
        // A record of the right text at another name is not ours.
        let p = foreign(&k, &[("_atomicity2", "v=1;url=http://c.example")], 1);
        assert_eq!(node_url(&p), None);
    }
}
