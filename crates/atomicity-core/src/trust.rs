//! The web of trust, pure: the trust document a key publishes (its tags on other keys and the
//! keys it blocks), my own settings (my tags, my blocks and my rules by degree of separation),
//! and the evaluation that turns rules and other keys' documents into automatic accept limits.
//!
//! A key publishes a [`TrustDoc`] at [`TRUST_PATH`], as the value of a signed document (see
//! [`crate::published`]):
//!
//! ```json
//! {"tags": {"<z-base32 key>": ["family", "friend"]}, "blocked": ["<z-base32 key>"]}
//! ```
//!
//! A [`DegreeRule`] such as "a second-degree acceptance limit of $20 for Mom's friends" gives
//! its `accept` limit to every key at distance `2..=depth` from its `via` key (Mom), where
//! distances are counted over the tags that documents publish (see [`rule_reach`]).
//! [`auto_limits`] evaluates every rule over the documents at hand; [`keys_to_crawl`] says whose
//! documents are needed, so that a crawler can fetch, ask again, and stop when nothing new is
//! asked for.
//!
//! Keys are compared as their canonical z-base32 text (what [`PublicKey::to_z32`] returns):
//! `PublicKey` has no order, and a key's text is checked to be canonical wherever it is read, so
//! one key has exactly one spelling.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use pkarr::PublicKey;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::published::MAX_DOCUMENT_LEN;

/// Where a key publishes its [`TrustDoc`].
pub const TRUST_PATH: &str = "/pub/atomicity/v1/trust";
/// Most keys one document may tag.
pub const MAX_TAGGED_KEYS: usize = 1024;
/// Most keys one document may block.
pub const MAX_BLOCKED_KEYS: usize = 1024;
/// Most tags on one key.
pub const MAX_TAGS_PER_KEY: usize = 8;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 32;
/// Longest trust document text [`TrustDoc::from_json`] reads: a published document's maximum.
pub const MAX_TRUST_JSON_LEN: usize = MAX_DOCUMENT_LEN;
/// Longest text [`TrustDoc::to_json`] may produce, so that the signed document around it (key,
/// path, seq, signature: about 250 bytes) stays within [`MAX_DOCUMENT_LEN`]. The mutators
/// ([`TrustDoc::tag`], [`TrustDoc::block`]) refuse a change that would go over it.
pub const MAX_PUBLISHED_TRUST_LEN: usize = MAX_DOCUMENT_LEN - 1024;
/// The smallest depth of a [`DegreeRule`] (the `via` key's direct tags).
pub const MIN_DEPTH: u8 = 2;
/// The largest depth of a [`DegreeRule`].
pub const MAX_DEPTH: u8 = 4;
/// Most rules in [`MyTrust`].
pub const MAX_RULES: usize = 64;
/// Most keys one rule's search reaches, its `via` key included ([`rule_reach`]): the search
/// stops there, keeping the keys found first (nearest first, then in z-base32 order of the
/// key that tagged them and of their own text), so the result stays deterministic.
pub const MAX_REACHED_PER_RULE: usize = 4096;

/// Why a trust document, a setting or a change was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrustError {
    /// The text is longer than the maximum.
    #[error("trust document too large: {len} bytes > {max}")]
    TooLarge {
        /// Its length (for a change: the length of the document it would make).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Not JSON, not an object, or a member of the wrong type.
    #[error("malformed trust document: {0}")]
    Malformed(String),
    /// A key that is not the canonical z-base32 text of a public key.
    #[error("{key:?} is not a public key in z-base32: {why}")]
    BadKey {
        /// The text (cut to 64 bytes).
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// The same key twice in `tags` or in `blocked`.
    #[error("key {key} is listed twice in {list}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// `tags` or `blocked`.
        list: &'static str,
    },
    /// More tagged keys than [`MAX_TAGGED_KEYS`].
    #[error("too many tagged keys: {count} > {max}")]
    TooManyTagged {
        /// How many.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// More blocked keys than [`MAX_BLOCKED_KEYS`].
    #[error("too many blocked keys: {count} > {max}")]
    TooManyBlocked {
        /// How many.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// More tags on one key than [`MAX_TAGS_PER_KEY`].
    #[error("too many tags on {key}: {count} > {max}")]
    TooManyTags {
        /// The key.
        key: String,
        /// How many.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A tagged key with an empty list of tags.
    #[error("key {key} is tagged with an empty list")]
    NoTags {
        /// The key.
        key: String,
    },
    /// A tag that is not 1–32 bytes of `a-z`, `0-9`, `-`, `_`.
    #[error("bad tag {tag:?}: {why}")]
    BadTag {
        /// The tag (cut to 64 bytes).
        tag: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The same tag twice on one key.
    #[error("tag {tag:?} is given twice on {key}")]
    DuplicateTag {
        /// The key.
        key: String,
        /// The tag.
        tag: String,
    },
    /// A key both tagged and blocked.
    #[error("key {key} is both tagged and blocked")]
    TaggedAndBlocked {
        /// The key.
        key: String,
    },
    /// A rule's depth outside [`MIN_DEPTH`]`..=`[`MAX_DEPTH`].
    #[error("depth {0} is not between 2 and 4")]
    BadDepth(u8),
    /// A rule whose asset or amount does not read.
    #[error("bad degree rule: {0}")]
    BadRule(String),
    /// Two rules for the same asset, `via` key and tag.
    #[error("two degree rules for {asset} via {via} with tag {tag:?}")]
    DuplicateRule {
        /// The asset.
        asset: String,
        /// The `via` key.
        via: String,
        /// The tag, if the rules name one.
        tag: Option<String>,
    },
    /// More rules than [`MAX_RULES`].
    #[error("too many degree rules: {count} > {max}")]
    TooManyRules {
        /// How many.
        count: usize,
        /// The maximum.
        max: usize,
    },
}

/// Checks a tag: 1–[`MAX_TAG_LEN`] bytes of lowercase ASCII letters, digits, `-` and `_`.
pub fn check_tag(tag: &str) -> Result<(), TrustError> {
    let bad = |why| TrustError::BadTag {
        tag: cut(tag, 64),
        why,
    };
    if tag.is_empty() {
        return Err(bad("empty"));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(bad("longer than 32 bytes"));
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(bad("only a-z, 0-9, - and _ are allowed"));
    }
    Ok(())
}

/// Reads a key's canonical z-base32 text (52 characters, exactly what
/// [`PublicKey::to_z32`] prints: no `pk:` prefix, no URL).
pub fn parse_z32(text: &str) -> Result<PublicKey, TrustError> {
    let bad = |why: String| TrustError::BadKey {
        key: cut(text, 64),
        why,
    };
    let key: PublicKey = text.parse().map_err(|e| bad(format!("{e}")))?;
    if key.to_z32() != text {
        return Err(bad("not the key's canonical z-base32 text".to_string()));
    }
    Ok(key)
}

/// What a key publishes at [`TRUST_PATH`]: its tags on other keys and the keys it blocks.
///
/// Always valid: at most [`MAX_TAGGED_KEYS`] tagged keys with 1 to [`MAX_TAGS_PER_KEY`] valid
/// tags each ([`check_tag`]), at most [`MAX_BLOCKED_KEYS`] blocked keys, no key both tagged and
/// blocked, and every key its canonical z-base32 text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustDoc {
    tags: BTreeMap<String, BTreeSet<String>>,
    blocked: BTreeSet<String>,
}

impl TrustDoc {
    /// A document with no tags and no blocked keys.
    pub fn new() -> TrustDoc {
        TrustDoc::default()
    }

    /// The document to publish for my settings: my tags and my blocked keys (my rules stay
    /// private). Settings that pass [`MyTrust::check`] are copied as they are; of others, only
    /// what would pass is kept (a key with a bad text, a bad tag, a tagged key also blocked,
    /// entries over the bounds, in z-base32 order, then tagged keys from the last until the
    /// document fits [`MAX_PUBLISHED_TRUST_LEN`]), so that the document is always valid.
    pub fn from_mine(mine: &MyTrust) -> TrustDoc {
        let mut doc = TrustDoc::default();
        for key in &mine.blocked {
            if doc.blocked.len() < MAX_BLOCKED_KEYS && parse_z32(key).is_ok() {
                doc.blocked.insert(key.clone());
            }
        }
        for (key, tags) in &mine.tags {
            if doc.tags.len() >= MAX_TAGGED_KEYS
                || doc.blocked.contains(key)
                || parse_z32(key).is_err()
            {
                continue;
            }
            let tags: BTreeSet<String> = tags
                .iter()
                .filter(|tag| check_tag(tag).is_ok())
                .take(MAX_TAGS_PER_KEY)
                .cloned()
                .collect();
            if !tags.is_empty() {
                doc.tags.insert(key.clone(), tags);
            }
        }
        while doc.check_published_len().is_err() {
            if doc.tags.pop_last().is_none() && doc.blocked.pop_last().is_none() {
                break;
            }
        }
        doc
    }

    /// Reads a document's value, strictly: at most [`MAX_TRUST_JSON_LEN`] bytes, one JSON
    /// object, `tags` (optional, an object of key → list of tags) and `blocked` (optional, a
    /// list of keys) of the right types and within the bounds, no key or tag given twice, no key
    /// both tagged and blocked. Members it does not know are ignored.
    pub fn from_json(text: &str) -> Result<TrustDoc, TrustError> {
        if text.len() > MAX_TRUST_JSON_LEN {
            return Err(TrustError::TooLarge {
                len: text.len(),
                max: MAX_TRUST_JSON_LEN,
            });
        }
        let wire: DocIn = json_object(text)?;
        TrustDoc::from_wire(wire.tags, wire.blocked)
    }

    /// The document's JSON, deterministic: `{"tags":{…},"blocked":[…]}` with keys and tags
    /// sorted.
    pub fn to_json(&self) -> String {
        // Only strings, maps and lists: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Every tagged key (z-base32) with its tags.
    pub fn tagged(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.tags
    }

    /// Every blocked key (z-base32).
    pub fn blocked(&self) -> &BTreeSet<String> {
        &self.blocked
    }

    /// The tags on `key`, if it is tagged.
    pub fn tags_of(&self, key: &PublicKey) -> Option<&BTreeSet<String>> {
        self.tags.get(&key.to_z32())
    }

    /// Whether `key` is blocked.
    pub fn is_blocked(&self, key: &PublicKey) -> bool {
        self.blocked.contains(&key.to_z32())
    }

    /// Tags `key` with `tag`; returns whether the tag is new. Refused (nothing changes) for a
    /// bad tag, a blocked key (unblock it first), a key that would get too many tags, one tagged
    /// key too many, or a document that would grow over [`MAX_PUBLISHED_TRUST_LEN`].
    pub fn tag(&mut self, key: &PublicKey, tag: &str) -> Result<bool, TrustError> {
        check_tag(tag)?;
        let z32 = key.to_z32();
        if self.blocked.contains(&z32) {
            return Err(TrustError::TaggedAndBlocked { key: z32 });
        }
        let mut next = self.clone();
        let tags = next.tags.entry(z32.clone()).or_default();
        if !tags.insert(tag.to_string()) {
            return Ok(false);
        }
        if tags.len() > MAX_TAGS_PER_KEY {
            return Err(TrustError::TooManyTags {
                key: z32,
                count: tags.len(),
                max: MAX_TAGS_PER_KEY,
            });
        }
        if next.tags.len() > MAX_TAGGED_KEYS {
            return Err(TrustError::TooManyTagged {
                count: next.tags.len(),
                max: MAX_TAGGED_KEYS,
            });
        }
        next.check_published_len()?;
        *self = next;
        Ok(true)
    }

    /// Removes `tag` from `key`, or every tag of `key` if `tag` is `None`; returns whether
    /// anything was removed. A key left with no tag is no longer tagged.
    pub fn untag(&mut self, key: &PublicKey, tag: Option<&str>) -> bool {
        let z32 = key.to_z32();
        let Some(tags) = self.tags.get_mut(&z32) else {
            return false;
        };
        let removed = match tag {
            Some(tag) => tags.remove(tag),
            None => {
                tags.clear();
                true
            }
        };
        if tags.is_empty() {
            self.tags.remove(&z32);
        }
        removed
    }

    /// Blocks `key`, removing its tags; returns whether it was not blocked yet. Refused
    /// (nothing changes) for one blocked key too many or a document that would grow over
    /// [`MAX_PUBLISHED_TRUST_LEN`].
    pub fn block(&mut self, key: &PublicKey) -> Result<bool, TrustError> {
        let z32 = key.to_z32();
        if self.blocked.contains(&z32) {
            return Ok(false);
        }
        let mut next = self.clone();
        next.tags.remove(&z32);
        next.blocked.insert(z32);
        if next.blocked.len() > MAX_BLOCKED_KEYS {
            return Err(TrustError::TooManyBlocked {
                count: next.blocked.len(),
                max: MAX_BLOCKED_KEYS,
            });
        }
        next.check_published_len()?;
        *self = next;
        Ok(true)
    }

    /// Unblocks `key`; returns whether it was blocked.
    pub fn unblock(&mut self, key: &PublicKey) -> bool {
        self.blocked.remove(&key.to_z32())
    }

    fn check_published_len(&self) -> Result<(), TrustError> {
        let len = self.to_json().len();
        if len > MAX_PUBLISHED_TRUST_LEN {
            return Err(TrustError::TooLarge {
                len,
                max: MAX_PUBLISHED_TRUST_LEN,
            });
        }
        Ok(())
    }

    /// Checks the members as read, in order, and builds the document.
    fn from_wire(tags: TagEntries, blocked: Vec<String>) -> Result<TrustDoc, TrustError> {
        if tags.0.len() > MAX_TAGGED_KEYS {
            return Err(TrustError::TooManyTagged {
                count: tags.0.len(),
                max: MAX_TAGGED_KEYS,
            });
        }
        if blocked.len() > MAX_BLOCKED_KEYS {
            return Err(TrustError::TooManyBlocked {
                count: blocked.len(),
                max: MAX_BLOCKED_KEYS,
            });
        }
        let mut doc = TrustDoc::default();
        for (key, list) in tags.0 {
            parse_z32(&key)?;
            if list.is_empty() {
                return Err(TrustError::NoTags { key });
            }
            if list.len() > MAX_TAGS_PER_KEY {
                return Err(TrustError::TooManyTags {
                    key,
                    count: list.len(),
                    max: MAX_TAGS_PER_KEY,
                });
            }
            let mut set = BTreeSet::new();
            for tag in list {
                check_tag(&tag)?;
                if set.contains(&tag) {
                    return Err(TrustError::DuplicateTag { key, tag });
                }
                set.insert(tag);
            }
            if doc.tags.contains_key(&key) {
                return Err(TrustError::DuplicateKey { key, list: "tags" });
            }
            doc.tags.insert(key, set);
        }
        for key in blocked {
            parse_z32(&key)?;
            if doc.tags.contains_key(&key) {
                return Err(TrustError::TaggedAndBlocked { key });
            }
            if doc.blocked.contains(&key) {
                return Err(TrustError::DuplicateKey {
                    key,
                    list: "blocked",
                });
            }
            doc.blocked.insert(key);
        }
        Ok(doc)
    }
}

impl Serialize for TrustDoc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DocOut {
            tags: &self.tags,
            blocked: &self.blocked,
        }
        .serialize(serializer)
    }
}

/// Reads and checks like [`TrustDoc::from_json`] (without its length bound).
impl<'de> Deserialize<'de> for TrustDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TrustDoc, D::Error> {
        let wire = DocIn::deserialize(deserializer)?;
        TrustDoc::from_wire(wire.tags, wire.blocked).map_err(de::Error::custom)
    }
}

/// "Keys at distance `2..=depth` from `via` get an accept limit of `accept` in `asset`":
/// `DegreeRule { asset: USD, depth: 2, accept: 20.00, via: Mom, tag: None }` is "a
/// second-degree acceptance limit of $20 for the keys Mom tags". With a `tag`, only edges with
/// that tag count, at every step: `tag: Some("friend")` with depth 3 reaches Mom's friends and
/// their friends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DegreeRule {
    /// The asset of the limit.
    pub asset: Asset,
    /// The largest distance that gets the limit, [`MIN_DEPTH`]`..=`[`MAX_DEPTH`].
    pub depth: u8,
    /// The accept limit given.
    pub accept: Amount,
    /// The key the distances are counted from (at distance 1; it gets nothing by this rule).
    pub via: PublicKey,
    /// The only tag followed, or any tag if `None`.
    pub tag: Option<String>,
}

impl DegreeRule {
    /// Checks the depth and the tag.
    pub fn check(&self) -> Result<(), TrustError> {
        if !(MIN_DEPTH..=MAX_DEPTH).contains(&self.depth) {
            return Err(TrustError::BadDepth(self.depth));
        }
        if let Some(tag) = &self.tag {
            check_tag(tag)?;
        }
        Ok(())
    }

    /// Whether this rule and `other` are for the same asset, `via` key and tag (one replaces
    /// the other in [`MyTrust::set_degree`]).
    pub fn same_target(&self, other: &DegreeRule) -> bool {
        self.asset == other.asset && self.via == other.via && self.tag == other.tag
    }

    /// Whether an edge with these tags is followed.
    fn follows(&self, tags: &BTreeSet<String>) -> bool {
        match &self.tag {
            Some(tag) => tags.contains(tag),
            None => true,
        }
    }
}

/// My web-of-trust settings: my tags and my blocked keys (together: the [`TrustDoc`] I publish,
/// [`TrustDoc::from_mine`]) and my rules by degree of separation.
///
/// The fields are open so that the node can change them; [`MyTrust::check`] says whether they
/// are valid, and every way of reading them ([`MyTrust::from_json`], serde) checks. The
/// methods ([`MyTrust::tag`], [`MyTrust::block`], [`MyTrust::set_degree`]…) change nothing
/// unless the result passes the check. The evaluation ([`auto_limits`]) never trusts the
/// fields: it skips a bad rule, and a key both tagged and blocked counts as blocked.
///
/// Serde form (the node's settings file): `{"tags": {…}, "blocked": […], "degrees": [{"asset":
/// "USD", "depth": 2, "accept": "20.00", "via": "<z-base32>", "tag": null}]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MyTrust {
    /// My tags: key (canonical z-base32) → its tags.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// The keys I block (canonical z-base32).
    pub blocked: BTreeSet<String>,
    /// My rules by degree of separation, in the order they were set.
    pub degrees: Vec<DegreeRule>,
}

impl MyTrust {
    /// No tags, no blocked keys, no rules.
    pub fn new() -> MyTrust {
        MyTrust::default()
    }

    /// Checks everything: the tags and blocked keys as a [`TrustDoc`] would be (bounds, tags,
    /// canonical keys, no key both tagged and blocked, an empty tag set is refused) and small
    /// enough to publish ([`MAX_PUBLISHED_TRUST_LEN`]); at most [`MAX_RULES`] rules, each
    /// passing [`DegreeRule::check`], no two for the same asset, `via` key and tag.
    pub fn check(&self) -> Result<(), TrustError> {
        if self.tags.len() > MAX_TAGGED_KEYS {
            return Err(TrustError::TooManyTagged {
                count: self.tags.len(),
                max: MAX_TAGGED_KEYS,
            });
        }
        if self.blocked.len() > MAX_BLOCKED_KEYS {
            return Err(TrustError::TooManyBlocked {
                count: self.blocked.len(),
                max: MAX_BLOCKED_KEYS,
            });
        }
        for (key, tags) in &self.tags {
            parse_z32(key)?;
            if tags.is_empty() {
                return Err(TrustError::NoTags { key: key.clone() });
            }
            if tags.len() > MAX_TAGS_PER_KEY {
                return Err(TrustError::TooManyTags {
                    key: key.clone(),
                    count: tags.len(),
                    max: MAX_TAGS_PER_KEY,
                });
            }
            for tag in tags {
                check_tag(tag)?;
            }
            if self.blocked.contains(key) {
                return Err(TrustError::TaggedAndBlocked { key: key.clone() });
            }
        }
        for key in &self.blocked {
            parse_z32(key)?;
        }
        let len = self.published_json().len();
        if len > MAX_PUBLISHED_TRUST_LEN {
            return Err(TrustError::TooLarge {
                len,
                max: MAX_PUBLISHED_TRUST_LEN,
            });
        }
        if self.degrees.len() > MAX_RULES {
            return Err(TrustError::TooManyRules {
                count: self.degrees.len(),
                max: MAX_RULES,
            });
        }
        for (i, rule) in self.degrees.iter().enumerate() {
            rule.check()?;
            if self.degrees[..i].iter().any(|r| r.same_target(rule)) {
                return Err(TrustError::DuplicateRule {
                    asset: rule.asset.to_string(),
                    via: rule.via.to_z32(),
                    tag: rule.tag.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reads the settings strictly (as [`TrustDoc::from_json`] for the tags and blocked keys,
    /// a key or tag given twice included), then [`MyTrust::check`]s them.
    pub fn from_json(text: &str) -> Result<MyTrust, TrustError> {
        let wire: MyIn = json_object(text)?;
        MyTrust::from_wire(wire)
    }

    /// The settings' JSON (deterministic).
    pub fn to_json(&self) -> String {
        // Only strings, numbers, maps and lists: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Tags `key` with `tag`; returns whether the tag is new. Refused (nothing changes) for a
    /// bad tag, a blocked key (unblock it first), or settings that would fail the check.
    pub fn tag(&mut self, key: &PublicKey, tag: &str) -> Result<bool, TrustError> {
        check_tag(tag)?;
        let z32 = key.to_z32();
        if self.blocked.contains(&z32) {
            return Err(TrustError::TaggedAndBlocked { key: z32 });
        }
        if self.tags.get(&z32).is_some_and(|tags| tags.contains(tag)) {
            return Ok(false);
        }
        self.change(|mine| {
            mine.tags.entry(z32).or_default().insert(tag.to_string());
        })?;
        Ok(true)
    }

    /// Removes `tag` from `key`, or every tag of `key` if `tag` is `None`; returns whether
    /// anything was removed. A key left with no tag is no longer tagged.
    pub fn untag(&mut self, key: &PublicKey, tag: Option<&str>) -> bool {
        let z32 = key.to_z32();
        let Some(tags) = self.tags.get_mut(&z32) else {
            return false;
        };
        let removed = match tag {
            Some(tag) => tags.remove(tag),
            None => {
                tags.clear();
                true
            }
        };
        if tags.is_empty() {
            self.tags.remove(&z32);
        }
        removed
    }

    /// Blocks `key`, removing its tags; returns whether it was not blocked yet. Refused
    /// (nothing changes) if the settings would fail the check. Rules via a key I block are
    /// kept but inactive while it is blocked.
    pub fn block(&mut self, key: &PublicKey) -> Result<bool, TrustError> {
        let z32 = key.to_z32();
        if self.blocked.contains(&z32) {
            return Ok(false);
        }
        self.change(|mine| {
            mine.tags.remove(&z32);
            mine.blocked.insert(z32);
        })?;
        Ok(true)
    }

    /// Unblocks `key`; returns whether it was blocked.
    pub fn unblock(&mut self, key: &PublicKey) -> bool {
        self.blocked.remove(&key.to_z32())
    }

    /// Adds `rule`, or replaces the rule for the same asset, `via` key and tag; refused
    /// (nothing changes) if the settings would fail the check.
    pub fn set_degree(&mut self, rule: DegreeRule) -> Result<(), TrustError> {
        self.change(
            |mine| match mine.degrees.iter_mut().find(|r| r.same_target(&rule)) {
                Some(old) => *old = rule,
                None => mine.degrees.push(rule),
            },
        )
    }

    /// Removes the rule for `asset` via `via` with `tag`; returns whether there was one.
    pub fn remove_degree(&mut self, asset: &Asset, via: &PublicKey, tag: Option<&str>) -> bool {
        let before = self.degrees.len();
        self.degrees
            .retain(|r| !(r.asset == *asset && r.via == *via && r.tag.as_deref() == tag));
        self.degrees.len() != before
    }

    /// Applies `change` to a copy and keeps it if it passes the check.
    fn change(&mut self, change: impl FnOnce(&mut MyTrust)) -> Result<(), TrustError> {
        let mut next = self.clone();
        change(&mut next);
        next.check()?;
        *self = next;
        Ok(())
    }

    /// The JSON of the document [`TrustDoc::from_mine`] makes of valid settings.
    fn published_json(&self) -> String {
        serde_json::to_string(&DocOut {
            tags: &self.tags,
            blocked: &self.blocked,
        })
        .unwrap_or_default()
    }

    fn from_wire(wire: MyIn) -> Result<MyTrust, TrustError> {
        let doc = TrustDoc::from_wire(wire.tags, wire.blocked)?;
        if wire.degrees.len() > MAX_RULES {
            return Err(TrustError::TooManyRules {
                count: wire.degrees.len(),
                max: MAX_RULES,
            });
        }
        let mut degrees: Vec<DegreeRule> = Vec::with_capacity(wire.degrees.len());
        for rule in wire.degrees {
            let asset: Asset = rule
                .asset
                .parse()
                .map_err(|e| TrustError::BadRule(format!("asset: {e}")))?;
            let accept = asset
                .parse_amount(&rule.accept)
                .map_err(|e| TrustError::BadRule(format!("accept: {e}")))?;
            degrees.push(DegreeRule {
                asset,
                depth: rule.depth,
                accept,
                via: parse_z32(&rule.via)?,
                tag: rule.tag,
            });
        }
        let mine = MyTrust {
            tags: doc.tags,
            blocked: doc.blocked,
            degrees,
        };
        mine.check()?;
        Ok(mine)
    }
}

impl Serialize for MyTrust {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MyOut {
            tags: &self.tags,
            blocked: &self.blocked,
            degrees: self
                .degrees
                .iter()
                .map(|r| RuleOut {
                    asset: r.asset.to_string(),
                    depth: r.depth,
                    accept: r.asset.format(r.accept),
                    via: r.via.to_z32(),
                    tag: r.tag.as_deref(),
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

/// Reads and checks like [`MyTrust::from_json`].
impl<'de> Deserialize<'de> for MyTrust {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MyTrust, D::Error> {
        let wire = MyIn::deserialize(deserializer)?;
        MyTrust::from_wire(wire).map_err(de::Error::custom)
    }
}

/// The keys `rule` reaches, each with its distance from the rule's `via` key (the `via` key
/// itself at 1, the keys it tags at 2, the keys those tag at 3, … up to `rule.depth`), by a
/// breadth-first search over the tags in `docs` (z-base32 key → its document; a key whose
/// document is missing has no outgoing edges). With a `rule.tag`, only edges with that tag are
/// followed.
///
/// Removed from the graph (neither reached nor followed): the keys I block and the keys the
/// `via` key blocks (in its document). A rule whose `via` key I block reaches nothing, nor does
/// a rule with a bad depth or tag. `me` is not removed (the caller leaves it out of any
/// result): my own tags may carry the search further. At most [`MAX_REACHED_PER_RULE`] keys.
pub fn rule_reach(
    mine: &MyTrust,
    rule: &DegreeRule,
    docs: &HashMap<String, TrustDoc>,
) -> BTreeMap<String, u8> {
    let mut reached = BTreeMap::new();
    if rule.check().is_err() {
        return reached;
    }
    let via = rule.via.to_z32();
    if mine.blocked.contains(&via) {
        return reached;
    }
    let via_blocked = docs.get(&via).map(|doc| &doc.blocked);
    let removed =
        |key: &str| mine.blocked.contains(key) || via_blocked.is_some_and(|b| b.contains(key));
    reached.insert(via.clone(), 1);
    let mut frontier = vec![via];
    for distance in MIN_DEPTH..=rule.depth {
        let mut next = Vec::new();
        for key in &frontier {
            let Some(doc) = docs.get(key) else {
                continue;
            };
            for (tagged, tags) in &doc.tags {
                if !rule.follows(tags) || reached.contains_key(tagged) || removed(tagged) {
                    continue;
                }
                if reached.len() >= MAX_REACHED_PER_RULE {
                    return reached;
                }
                reached.insert(tagged.clone(), distance);
                next.push(tagged.clone());
            }
        }
        frontier = next;
    }
    reached
}

/// The automatic accept limits my rules give: for each rule, every key it reaches at distance
/// `2..=depth` ([`rule_reach`]) gets the rule's `accept` in its asset; where several rules give
/// a limit to the same key in the same asset, the largest wins. Never `me`, never a rule's
/// `via` key (by that rule), never a key I block or the `via` key blocks, never a zero limit.
///
/// Deterministic: the same settings and documents give the same limits.
pub fn auto_limits(
    me: &PublicKey,
    mine: &MyTrust,
    docs: &HashMap<String, TrustDoc>,
) -> BTreeMap<(String, Asset), Amount> {
    let me = me.to_z32();
    let mut limits: BTreeMap<(String, Asset), Amount> = BTreeMap::new();
    for rule in &mine.degrees {
        if rule.accept.is_zero() {
            continue;
        }
        for (key, distance) in rule_reach(mine, rule, docs) {
            if distance < MIN_DEPTH || key == me {
                continue;
            }
            let limit = limits.entry((key, rule.asset.clone())).or_default();
            *limit = (*limit).max(rule.accept);
        }
    }
    limits
}

/// Whose trust documents [`auto_limits`] needs: every active rule's `via` key and every key it
/// reaches at distance `1..depth` (their tags lead one step further). A crawler fetches the
/// documents of these keys, asks again with them, and stops when no key is new: the set is
/// bounded by [`MAX_REACHED_PER_RULE`] keys per rule.
pub fn keys_to_crawl(mine: &MyTrust, docs: &HashMap<String, TrustDoc>) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for rule in &mine.degrees {
        for (key, distance) in rule_reach(mine, rule, docs) {
            if distance < rule.depth {
                keys.insert(key);
            }
        }
    }
    keys
}

/// The tags and blocked members as read, before any check.
#[derive(Deserialize)]
struct DocIn {
    #[serde(default)]
    tags: TagEntries,
    #[serde(default)]
    blocked: Vec<String>,
}

#[derive(Serialize)]
struct DocOut<'a> {
    tags: &'a BTreeMap<String, BTreeSet<String>>,
    blocked: &'a BTreeSet<String>,
}

#[derive(Deserialize)]
struct MyIn {
    #[serde(default)]
    tags: TagEntries,
    #[serde(default)]
    blocked: Vec<String>,
    #[serde(default)]
    degrees: Vec<RuleIn>,
}

#[derive(Serialize)]
struct MyOut<'a> {
    tags: &'a BTreeMap<String, BTreeSet<String>>,
    blocked: &'a BTreeSet<String>,
    degrees: Vec<RuleOut<'a>>,
}

#[derive(Deserialize)]
struct RuleIn {
    asset: String,
    depth: u8,
    accept: String,
    via: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Serialize)]
struct RuleOut<'a> {
    asset: String,
    depth: u8,
    accept: String,
    via: String,
    tag: Option<&'a str>,
}

/// The entries of the `tags` object in the order read, duplicates kept (a map would keep only
/// the last), so that a key given twice is an error.
#[derive(Default)]
struct TagEntries(Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for TagEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TagEntries, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = TagEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of key → list of tags")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TagEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Vec<String>>()? {
                    entries.push(entry);
                }
                Ok(TagEntries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Reads `text` as one JSON object of shape `T` (serde would also take an array for a struct).
fn json_object<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, TrustError> {
    if !text.trim_start().starts_with('{') {
        return Err(TrustError::Malformed("not a JSON object".to_string()));
    }
    serde_json::from_str(text).map_err(|e| TrustError::Malformed(e.to_string()))
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Which witness logs I accept in a payment's condition: never a blocked one; with an allow
/// list, only those. A log is named by its verifier key (`<origin>+<key id>+<base64>`) or by
/// its origin alone. Since any listed log's proof fulfils a condition (the existential rule),
/// one log I do not accept is enough to refuse the whole condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessPolicy {
    /// Only these logs, if any are listed.
    #[serde(default)]
    pub allow: BTreeSet<String>,
    /// Never these logs.
    #[serde(default)]
    pub block: BTreeSet<String>,
}

/// Most logs a witness allow or block list holds.
pub const MAX_WITNESS_LIST: usize = 256;

impl WitnessPolicy {
    fn names(log: &str) -> [&str; 2] {
        [log, log.split('+').next().unwrap_or(log)]
    }

    /// Whether I accept the log with verifier key `log`.
    pub fn accepts_log(&self, log: &str) -> bool {
        let names = WitnessPolicy::names(log);
        !names.iter().any(|n| self.block.contains(*n))
            && (self.allow.is_empty() || names.iter().any(|n| self.allow.contains(*n)))
    }

    /// Whether I accept every log `condition` lists; the first I do not, if any.
    pub fn check(&self, condition: &crate::condition::WitnessCondition) -> Result<(), String> {
        match condition
            .witnesses
            .iter()
            .find(|t| !self.accepts_log(&t.log))
        {
            Some(t) => Err(t.log.clone()),
            None => Ok(()),
        }
    }
}
