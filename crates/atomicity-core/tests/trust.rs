//! The web of trust, pure: trust documents read strictly, my settings, and the automatic limits
//! by degree of separation (issue 8, acceptance item 2, at the core's level), checked by tables
//! and against a naive model of distances.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use atomicity_core::trust::{
    MAX_BLOCKED_KEYS, MAX_REACHED_PER_RULE, MAX_RULES, MAX_TAGGED_KEYS, MAX_TAGS_PER_KEY,
    TRUST_PATH, auto_limits, keys_to_crawl, parse_z32, rule_reach,
};
use atomicity_core::{
    Amount, Asset, DegreeRule, Keypair, MyTrust, PublicKey, TrustDoc, TrustError,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

const KEY_COUNT: usize = 24;

/// The key with secret `[i + 1; 32]`.
fn key(i: usize) -> &'static PublicKey {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..KEY_COUNT)
            .map(|i| Keypair::from_secret_key(&[i as u8 + 1; 32]).public_key())
            .collect()
    })[i]
}

fn z(i: usize) -> String {
    key(i).to_z32()
}

// Named keys of the tables.
const ME: usize = 0;
const MOM: usize = 1;
const FRIEND: usize = 2; // Mom tags FRIEND
const FOF: usize = 3; // FRIEND tags FOF (distance 3)
const FOFOF: usize = 4; // FOF tags FOFOF (distance 4)
const DAD: usize = 5;
const STRANGER: usize = 6;
const COUSIN: usize = 7; // Mom tags COUSIN "family"

fn usd() -> Asset {
    "USD".parse().unwrap()
}

fn eur() -> Asset {
    "EUR".parse().unwrap()
}

fn dollars(s: &str) -> Amount {
    usd().parse_amount(s).unwrap()
}

fn rule(via: usize, depth: u8, accept: &str, tag: Option<&str>) -> DegreeRule {
    DegreeRule {
        asset: usd(),
        depth,
        accept: dollars(accept),
        via: key(via).clone(),
        tag: tag.map(str::to_string),
    }
}

/// A world of documents: (from, to, tags) edges and (from, to) blocks.
fn world(
    edges: &[(usize, usize, &[&str])],
    blocks: &[(usize, usize)],
) -> HashMap<String, TrustDoc> {
    let mut docs: HashMap<String, TrustDoc> = HashMap::new();
    for (from, to, tags) in edges {
        let doc = docs.entry(z(*from)).or_default();
        for tag in *tags {
            doc.tag(key(*to), tag).unwrap();
        }
    }
    for (from, to) in blocks {
        docs.entry(z(*from)).or_default().block(key(*to)).unwrap();
    }
    docs
}

fn mine(rules: &[DegreeRule], blocked: &[usize]) -> MyTrust {
    let mut mine = MyTrust::new();
    mine.tag(key(MOM), "family").unwrap();
    for r in rules {
        mine.set_degree(r.clone()).unwrap();
    }
    for b in blocked {
        mine.block(key(*b)).unwrap();
    }
    mine
}

fn limits(entries: &[(usize, &Asset, &str)]) -> BTreeMap<(String, Asset), Amount> {
    entries
        .iter()
        .map(|(k, asset, amount)| {
            (
                (z(*k), (*asset).clone()),
                asset.parse_amount(amount).unwrap(),
            )
        })
        .collect()
}

/// Mom tags FRIEND (friend) and COUSIN (family); FRIEND tags FOF; FOF tags FOFOF.
const CHAIN: &[(usize, usize, &[&str])] = &[
    (MOM, FRIEND, &["friend"]),
    (MOM, COUSIN, &["family"]),
    (FRIEND, FOF, &["friend"]),
    (FOF, FOFOF, &["friend"]),
];

// ---------------------------------------------------------------------------------------------
// Acceptance item 2, as a table

struct Case {
    name: &'static str,
    edges: &'static [(usize, usize, &'static [&'static str])],
    blocks: &'static [(usize, usize)],
    rules: Vec<DegreeRule>,
    my_blocks: &'static [usize],
    expect: Vec<(usize, Asset, &'static str)>,
}

#[test]
fn degree_rules_table() {
    let cases = vec![
        Case {
            name: "a friend of Mom gets exactly the configured limit (depth 2)",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 2, "20", None)],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20.00"), (COUSIN, usd(), "20.00")],
        },
        Case {
            name: "distance 3 gets it with depth 3",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 3, "20", None)],
            my_blocks: &[],
            expect: vec![
                (FRIEND, usd(), "20"),
                (COUSIN, usd(), "20"),
                (FOF, usd(), "20"),
            ],
        },
        Case {
            name: "distance 4 with depth 4",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 4, "20", None)],
            my_blocks: &[],
            expect: vec![
                (FRIEND, usd(), "20"),
                (COUSIN, usd(), "20"),
                (FOF, usd(), "20"),
                (FOFOF, usd(), "20"),
            ],
        },
        Case {
            name: "a tag filter follows only that tag",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 3, "20", Some("family"))],
            my_blocks: &[],
            expect: vec![(COUSIN, usd(), "20")],
        },
        Case {
            name: "the tag filter applies at every step",
            edges: &[(MOM, FRIEND, &["friend"]), (FRIEND, FOF, &["family"])],
            blocks: &[],
            rules: vec![rule(MOM, 3, "20", Some("friend"))],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20")],
        },
        Case {
            name: "a key I blocked gets nothing and is not followed",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 4, "20", None)],
            my_blocks: &[FRIEND],
            expect: vec![(COUSIN, usd(), "20")],
        },
        Case {
            name: "a key Mom blocked gets nothing, even when someone else tags it",
            edges: &[(MOM, FRIEND, &["friend"]), (FRIEND, STRANGER, &["friend"])],
            blocks: &[(MOM, STRANGER)],
            rules: vec![rule(MOM, 3, "20", None)],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20")],
        },
        Case {
            name: "a rule via a key I blocked is inactive",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 2, "20", None)],
            my_blocks: &[MOM],
            expect: vec![],
        },
        Case {
            name: "two rules: the larger limit wins, per asset",
            edges: &[
                (MOM, FRIEND, &["friend"]),
                (DAD, FRIEND, &["friend"]),
                (DAD, STRANGER, &["friend"]),
            ],
            blocks: &[],
            rules: vec![
                rule(MOM, 2, "20", None),
                rule(DAD, 2, "50", None),
                DegreeRule {
                    asset: eur(),
                    ..rule(MOM, 2, "7", None)
                },
            ],
            my_blocks: &[],
            expect: vec![
                (FRIEND, usd(), "50"),
                (FRIEND, eur(), "7"),
                (STRANGER, usd(), "50"),
            ],
        },
        Case {
            name: "two rules via the same key: the nearer-depth rule's larger limit wins",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 2, "30", None), rule(MOM, 3, "10", Some("friend"))],
            my_blocks: &[],
            expect: vec![
                (FRIEND, usd(), "30"),
                (COUSIN, usd(), "30"),
                (FOF, usd(), "10"),
            ],
        },
        Case {
            name: "a cycle terminates, shortest distances",
            edges: &[
                (MOM, FRIEND, &["friend"]),
                (FRIEND, FOF, &["friend"]),
                (FOF, MOM, &["friend"]),
                (FOF, FRIEND, &["friend"]),
                (FRIEND, FRIEND, &["friend"]),
            ],
            blocks: &[],
            rules: vec![rule(MOM, 4, "20", None)],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20"), (FOF, usd(), "20")],
        },
        Case {
            name: "me and Mom never get automatic limits",
            edges: &[
                (MOM, ME, &["family"]),
                (MOM, FRIEND, &["friend"]),
                (FRIEND, MOM, &["friend"]),
                (FRIEND, ME, &["friend"]),
            ],
            blocks: &[],
            rules: vec![rule(MOM, 3, "20", None)],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20")],
        },
        Case {
            name: "my own tags carry the search on (me is followed, never given a limit)",
            edges: &[(MOM, ME, &["family"]), (ME, STRANGER, &["friend"])],
            blocks: &[],
            rules: vec![rule(MOM, 3, "20", None)],
            my_blocks: &[],
            expect: vec![(STRANGER, usd(), "20")],
        },
        Case {
            name: "a key whose document is missing has no edges",
            edges: &[(MOM, FRIEND, &["friend"])],
            blocks: &[],
            rules: vec![rule(MOM, 4, "20", None), rule(STRANGER, 4, "20", None)],
            my_blocks: &[],
            expect: vec![(FRIEND, usd(), "20")],
        },
        Case {
            name: "a zero limit is no limit",
            edges: CHAIN,
            blocks: &[],
            rules: vec![rule(MOM, 2, "0", None)],
            my_blocks: &[],
            expect: vec![],
        },
    ];
    for case in cases {
        let docs = world(case.edges, case.blocks);
        let mine = mine(&case.rules, case.my_blocks);
        let expect: Vec<(usize, &Asset, &str)> =
            case.expect.iter().map(|(k, a, s)| (*k, a, *s)).collect();
        assert_eq!(
            auto_limits(key(ME), &mine, &docs),
            limits(&expect),
            "{}",
            case.name
        );
    }
}

#[test]
fn distance_three_needs_depth_three() {
    let docs = world(CHAIN, &[]);
    let at = |depth| {
        auto_limits(key(ME), &mine(&[rule(MOM, depth, "20", None)], &[]), &docs)
            .get(&(z(FOF), usd()))
            .copied()
    };
    assert_eq!(at(2), None);
    assert_eq!(at(3), Some(dollars("20")));
}

#[test]
fn untagging_removes_the_limit() {
    let mut docs = world(CHAIN, &[]);
    let mine = mine(&[rule(MOM, 2, "20", None)], &[]);
    assert_eq!(
        auto_limits(key(ME), &mine, &docs).get(&(z(FRIEND), usd())),
        Some(&dollars("20.00"))
    );
    // Mom publishes a new document without FRIEND.
    let mut moms = docs[&z(MOM)].clone();
    assert!(moms.untag(key(FRIEND), None));
    let text = moms.to_json();
    docs.insert(z(MOM), TrustDoc::from_json(&text).unwrap());
    assert_eq!(
        auto_limits(key(ME), &mine, &docs),
        limits(&[(COUSIN, &usd(), "20")])
    );
    // Blocking it instead has the same effect.
    let docs = world(CHAIN, &[(MOM, FRIEND)]);
    assert!(!auto_limits(key(ME), &mine, &docs).contains_key(&(z(FRIEND), usd())));
}

#[test]
fn rule_reach_reports_distances() {
    let docs = world(CHAIN, &[]);
    let mine = mine(&[], &[]);
    let reach = rule_reach(&mine, &rule(MOM, 4, "1", None), &docs);
    let expect: BTreeMap<String, u8> = [(MOM, 1), (FRIEND, 2), (COUSIN, 2), (FOF, 3), (FOFOF, 4)]
        .into_iter()
        .map(|(k, d)| (z(k), d))
        .collect();
    assert_eq!(reach, expect);
    // A bad depth reaches nothing.
    assert!(rule_reach(&mine, &rule(MOM, 5, "1", None), &docs).is_empty());
}

#[test]
fn reach_is_bounded() {
    // Mom tags 5 keys, each of which tags 1000 more: 5006 keys within distance 3 > 4096.
    let keys = many_keys(6 * 1024);
    let mut docs: HashMap<String, TrustDoc> = HashMap::new();
    let mut moms = TrustDoc::new();
    for k in &keys[..5] {
        moms.tag(k, "f").unwrap();
    }
    docs.insert(z(MOM), moms);
    for (i, k) in keys[..5].iter().enumerate() {
        let mut doc = TrustDoc::new();
        for t in &keys[5 + i * 1000..5 + (i + 1) * 1000] {
            doc.tag(t, "f").unwrap();
        }
        docs.insert(k.to_z32(), doc);
    }
    let mine = mine(&[rule(MOM, 3, "1", None)], &[]);
    let reach = rule_reach(&mine, &mine.degrees[0], &docs);
    assert_eq!(reach.len(), MAX_REACHED_PER_RULE);
    assert_eq!(
        auto_limits(key(ME), &mine, &docs).len(),
        MAX_REACHED_PER_RULE - 1
    );
    // Deterministic however the map was built.
    let again: HashMap<String, TrustDoc> = docs
        .into_iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(rule_reach(&mine, &mine.degrees[0], &again), reach);
}

// ---------------------------------------------------------------------------------------------
// Crawling

/// Fetches `keys_to_crawl` from `world` until nothing new is asked for; returns the documents
/// fetched and the number of rounds.
fn crawl(mine: &MyTrust, world: &HashMap<String, TrustDoc>) -> (HashMap<String, TrustDoc>, usize) {
    let mut docs = HashMap::new();
    let mut asked = BTreeSet::new();
    for round in 1..=64 {
        let want = keys_to_crawl(mine, &docs);
        let new: Vec<String> = want.difference(&asked).cloned().collect();
        if new.is_empty() {
            return (docs, round);
        }
        for k in new {
            if let Some(doc) = world.get(&k) {
                docs.insert(k.clone(), doc.clone());
            }
            asked.insert(k);
        }
    }
    panic!("the crawl did not reach a fixpoint");
}

#[test]
fn keys_to_crawl_grows_to_a_fixpoint() {
    let everyone = world(
        &[
            (MOM, FRIEND, &["friend"]),
            (MOM, COUSIN, &["family"]),
            (FRIEND, FOF, &["friend"]),
            (FOF, FOFOF, &["friend"]),
            (FOFOF, STRANGER, &["friend"]),
            (DAD, STRANGER, &["friend"]),
            (COUSIN, MOM, &["family"]),
        ],
        &[],
    );
    let mine = mine(&[rule(MOM, 3, "20", None), rule(DAD, 2, "5", None)], &[]);
    assert_eq!(
        keys_to_crawl(&mine, &HashMap::new()),
        [z(MOM), z(DAD)].into_iter().collect()
    );
    let (docs, rounds) = crawl(&mine, &everyone);
    assert_eq!(rounds, 3);
    // Whose documents depth 3 via Mom needs: Mom, her tags (distance 2); Dad (depth 2).
    let crawled: BTreeSet<String> = docs.keys().cloned().collect();
    let expect: BTreeSet<String> = [MOM, FRIEND, COUSIN, DAD].into_iter().map(z).collect();
    assert_eq!(crawled, expect);
    assert_eq!(keys_to_crawl(&mine, &docs), expect);
    assert_eq!(
        auto_limits(key(ME), &mine, &docs),
        auto_limits(key(ME), &mine, &everyone)
    );
    assert_eq!(
        auto_limits(key(ME), &mine, &docs),
        limits(&[
            (FRIEND, &usd(), "20"),
            (COUSIN, &usd(), "20"),
            (FOF, &usd(), "20"),
            (STRANGER, &usd(), "5"),
        ])
    );
    // No rules, nothing to crawl; a rule via a key I block, nothing either.
    assert!(keys_to_crawl(&MyTrust::new(), &everyone).is_empty());
    let blocked = self::mine(&[rule(MOM, 3, "20", None)], &[MOM]);
    assert!(keys_to_crawl(&blocked, &everyone).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Trust documents: strict reading

#[test]
fn trust_doc_round_trip() {
    assert_eq!(TRUST_PATH, "/pub/atomicity/v1/trust");
    let doc = world(CHAIN, &[(MOM, STRANGER), (MOM, DAD)])
        .remove(&z(MOM))
        .unwrap();
    let text = doc.to_json();
    assert_eq!(TrustDoc::from_json(&text).unwrap(), doc);
    assert_eq!(TrustDoc::from_json(&text).unwrap().to_json(), text);
    // Sorted keys: the same document built in another order prints the same.
    let mut other = TrustDoc::new();
    other.block(key(DAD)).unwrap();
    other.block(key(STRANGER)).unwrap();
    other.tag(key(COUSIN), "family").unwrap();
    other.tag(key(FRIEND), "friend").unwrap();
    assert_eq!(other.to_json(), text);
    let mut sorted_keys = [z(FRIEND), z(COUSIN)];
    sorted_keys.sort();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tags: Vec<&String> = value["tags"].as_object().unwrap().keys().collect();
    assert_eq!(tags, sorted_keys.iter().collect::<Vec<_>>());
    assert!(text.starts_with("{\"tags\":{"));

    assert_eq!(doc.tags_of(key(FRIEND)).unwrap().len(), 1);
    assert!(doc.tags_of(key(STRANGER)).is_none());
    assert!(doc.is_blocked(key(STRANGER)));
    assert!(!doc.is_blocked(key(FRIEND)));

    // Empty, missing members, unknown members, and pretty printing are fine.
    assert_eq!(TrustDoc::from_json("{}").unwrap(), TrustDoc::new());
    assert_eq!(TrustDoc::new().to_json(), r#"{"tags":{},"blocked":[]}"#);
    let text = format!(
        r#" {{ "v2": {{"x": [1, null]}}, "blocked": ["{}"], "note": "hi" }} "#,
        z(DAD)
    );
    assert!(TrustDoc::from_json(&text).unwrap().is_blocked(key(DAD)));
}

/// A trust document with the given `tags` JSON and `blocked` JSON.
fn doc_text(tags: &str, blocked: &str) -> String {
    format!(r#"{{"tags": {tags}, "blocked": {blocked}}}"#)
}

#[test]
fn trust_doc_rejections_table() {
    let k1 = z(1);
    let k2 = z(2);
    let tags33 = "a".repeat(33);
    let nine: Vec<String> = (0..9).map(|i| format!("\"t{i}\"")).collect();
    let nine = nine.join(",");
    let many = many_keys(MAX_TAGGED_KEYS + 1);
    let too_many_tagged = format!(
        "{{{}}}",
        many.iter()
            .map(|k| format!("\"{}\":[\"f\"]", k.to_z32()))
            .collect::<Vec<_>>()
            .join(",")
    );
    let too_many_blocked = format!(
        "[{}]",
        many.iter()
            .map(|k| format!("\"{}\"", k.to_z32()))
            .collect::<Vec<_>>()
            .join(",")
    );
    // The same key with non-canonical trailing bits: it decodes, but is not canonical.
    let mut noncanonical = k1.clone();
    let last = noncanonical.pop().unwrap();
    let alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769";
    let pos = alphabet.find(last).unwrap();
    let flipped = alphabet.chars().nth(pos ^ 1).unwrap();
    noncanonical.push(flipped);

    type Check = fn(&TrustError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        ("not JSON", "{".into(), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("an array", "[{}, []]".into(), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("a string", "\"x\"".into(), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("trailing bytes", "{} {}".into(), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("tags is a list", doc_text("[]", "[]"), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("tags is null", doc_text("null", "[]"), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        ("blocked is an object", doc_text("{}", "{}"), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        (
            "tags of a key is a string",
            doc_text(&format!(r#"{{"{k1}": "friend"}}"#), "[]"),
            |e| matches!(e, TrustError::Malformed(_)),
        ),
        (
            "a tag is a number",
            doc_text(&format!(r#"{{"{k1}": [1]}}"#), "[]"),
            |e| matches!(e, TrustError::Malformed(_)),
        ),
        ("a blocked key is a number", doc_text("{}", "[7]"), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
        (
            "tags given twice",
            r#"{"tags": {}, "tags": {}}"#.to_string(),
            |e| matches!(e, TrustError::Malformed(_)),
        ),
        (
            "a bad tagged key",
            doc_text(r#"{"mom": ["friend"]}"#, "[]"),
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        ("a bad blocked key", doc_text("{}", r#"["mom"]"#), |e| {
            matches!(e, TrustError::BadKey { .. })
        }),
        (
            "a pk: prefix",
            doc_text("{}", &format!(r#"["pk:{k1}"]"#)),
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        (
            "a non-canonical key",
            doc_text("{}", &format!(r#"["{noncanonical}"]"#)),
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        (
            "an empty tag list",
            doc_text(&format!(r#"{{"{k1}": []}}"#), "[]"),
            |e| matches!(e, TrustError::NoTags { .. }),
        ),
        (
            "an empty tag",
            doc_text(&format!(r#"{{"{k1}": [""]}}"#), "[]"),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "an uppercase tag",
            doc_text(&format!(r#"{{"{k1}": ["Friend"]}}"#), "[]"),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "a tag with a space",
            doc_text(&format!(r#"{{"{k1}": ["best friend"]}}"#), "[]"),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "a non-ASCII tag",
            doc_text(&format!(r#"{{"{k1}": ["amié"]}}"#), "[]"),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "a 33-byte tag",
            doc_text(&format!(r#"{{"{k1}": ["{tags33}"]}}"#), "[]"),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "nine tags on a key",
            doc_text(&format!(r#"{{"{k1}": [{nine}]}}"#), "[]"),
            |e| matches!(e, TrustError::TooManyTags { count: 9, .. }),
        ),
        (
            "a tag twice",
            doc_text(&format!(r#"{{"{k1}": ["friend", "friend"]}}"#), "[]"),
            |e| matches!(e, TrustError::DuplicateTag { .. }),
        ),
        (
            "a tagged key twice",
            doc_text(
                &format!(r#"{{"{k1}": ["a"], "{k2}": ["b"], "{k1}": ["c"]}}"#),
                "[]",
            ),
            |e| matches!(e, TrustError::DuplicateKey { list: "tags", .. }),
        ),
        (
            "a blocked key twice",
            doc_text("{}", &format!(r#"["{k2}", "{k2}"]"#)),
            |e| {
                matches!(
                    e,
                    TrustError::DuplicateKey {
                        list: "blocked",
                        ..
                    }
                )
            },
        ),
        (
            "tagged and blocked",
            doc_text(
                &format!(r#"{{"{k1}": ["friend"]}}"#),
                &format!(r#"["{k2}", "{k1}"]"#),
            ),
            |e| matches!(e, TrustError::TaggedAndBlocked { .. }),
        ),
        ("1025 tagged keys", doc_text(&too_many_tagged, "[]"), |e| {
            matches!(
                e,
                TrustError::TooManyTagged {
                    count: 1025,
                    max: 1024
                }
            )
        }),
        (
            "1025 blocked keys",
            doc_text("{}", &too_many_blocked),
            |e| {
                matches!(
                    e,
                    TrustError::TooManyBlocked {
                        count: 1025,
                        max: 1024
                    }
                )
            },
        ),
        (
            "over 64 KiB",
            format!(r#"{{"pad": "{}"}}"#, "x".repeat(64 * 1024)),
            |e| matches!(e, TrustError::TooLarge { .. }),
        ),
    ];
    for (name, text, check) in cases {
        match TrustDoc::from_json(&text) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                assert!(check(&e), "{name}: wrong error {e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // The bounds themselves are accepted.
    let bound = many_keys(MAX_TAGGED_KEYS);
    let text = doc_text(
        &format!(
            "{{{}}}",
            bound
                .iter()
                .map(|k| format!("\"{}\":[\"f\"]", k.to_z32()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        "[]",
    );
    assert_eq!(
        TrustDoc::from_json(&text).unwrap().tagged().len(),
        MAX_TAGGED_KEYS
    );
    let eight: Vec<String> = (0..MAX_TAGS_PER_KEY).map(|i| format!("\"t{i}\"")).collect();
    let text = doc_text(&format!(r#"{{"{k1}": [{}]}}"#, eight.join(",")), "[]");
    assert_eq!(
        TrustDoc::from_json(&text)
            .unwrap()
            .tags_of(key(1))
            .unwrap()
            .len(),
        8
    );
    let text = doc_text(
        &format!(r#"{{"{k1}": ["{}", "a-b_9"]}}"#, "z".repeat(32)),
        "[]",
    );
    assert!(TrustDoc::from_json(&text).is_ok());
}

#[test]
fn trust_doc_changes() {
    let mut doc = TrustDoc::new();
    assert!(doc.tag(key(1), "friend").unwrap());
    assert!(!doc.tag(key(1), "friend").unwrap());
    assert!(matches!(
        doc.tag(key(1), "Friend"),
        Err(TrustError::BadTag { .. })
    ));
    for i in 1..MAX_TAGS_PER_KEY {
        doc.tag(key(1), &format!("t{i}")).unwrap();
    }
    let before = doc.clone();
    assert!(matches!(
        doc.tag(key(1), "one-more"),
        Err(TrustError::TooManyTags { count: 9, .. })
    ));
    assert_eq!(doc, before, "a refused change changes nothing");
    // Blocking removes the tags; tagging a blocked key is refused.
    assert!(doc.block(key(1)).unwrap());
    assert!(!doc.block(key(1)).unwrap());
    assert!(doc.tags_of(key(1)).is_none());
    assert!(matches!(
        doc.tag(key(1), "friend"),
        Err(TrustError::TaggedAndBlocked { .. })
    ));
    assert!(doc.unblock(key(1)));
    assert!(!doc.unblock(key(1)));
    doc.tag(key(1), "friend").unwrap();
    doc.tag(key(1), "family").unwrap();
    assert!(doc.untag(key(1), Some("friend")));
    assert!(!doc.untag(key(1), Some("friend")));
    assert!(doc.untag(key(1), Some("family")));
    assert!(doc.tags_of(key(1)).is_none(), "no tags left: not tagged");
    assert!(!doc.untag(key(1), None));

    // The key bound.
    let many = many_keys(MAX_TAGGED_KEYS + 1);
    let mut doc = TrustDoc::new();
    for k in &many[..MAX_TAGGED_KEYS] {
        doc.tag(k, "f").unwrap();
    }
    assert!(matches!(
        doc.tag(&many[MAX_TAGGED_KEYS], "f"),
        Err(TrustError::TooManyTagged { .. })
    ));
    // The size bound: every document built stays publishable.
    let mut doc = TrustDoc::new();
    let mut refused = None;
    for k in &many[..MAX_TAGGED_KEYS] {
        if let Err(e) = doc.tag(k, &"x".repeat(32)) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(refused, Some(TrustError::TooLarge { .. })),
        "{refused:?}"
    );
    assert!(doc.to_json().len() <= 64 * 1024 - 1024);
    assert!(TrustDoc::from_json(&doc.to_json()).is_ok());
    // The blocked bound.
    let mut doc = TrustDoc::new();
    let mut refused = None;
    for k in &many {
        if let Err(e) = doc.block(k) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(
            refused,
            Some(TrustError::TooManyBlocked { .. } | TrustError::TooLarge { .. })
        ),
        "{refused:?}"
    );
    assert!(doc.blocked().len() <= MAX_BLOCKED_KEYS);
}

// ---------------------------------------------------------------------------------------------
// My settings

#[test]
fn my_trust_round_trip_and_rules() {
    let mut mine = mine(&[rule(MOM, 2, "20", None)], &[STRANGER]);
    mine.set_degree(rule(DAD, 3, "5.5", Some("friend")))
        .unwrap();
    // The same asset, via and tag: replaced.
    mine.set_degree(rule(MOM, 3, "25", None)).unwrap();
    assert_eq!(mine.degrees.len(), 2);
    assert_eq!(mine.degrees[0].accept, dollars("25"));
    assert_eq!(mine.degrees[0].depth, 3);
    assert!(matches!(
        mine.set_degree(rule(MOM, 1, "1", None)),
        Err(TrustError::BadDepth(1))
    ));
    assert!(matches!(
        mine.set_degree(rule(MOM, 5, "1", None)),
        Err(TrustError::BadDepth(5))
    ));
    assert!(matches!(
        mine.set_degree(rule(MOM, 2, "1", Some("Bad"))),
        Err(TrustError::BadTag { .. })
    ));

    let text = mine.to_json();
    let back = MyTrust::from_json(&text).unwrap();
    assert_eq!(back, mine);
    assert_eq!(back.to_json(), text);
    let via_serde: MyTrust =
        serde_json::from_str(&serde_json::to_string_pretty(&mine).unwrap()).unwrap();
    assert_eq!(via_serde, mine);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["degrees"][0]["accept"], "25.00");
    assert_eq!(value["degrees"][0]["asset"], "USD");
    assert_eq!(value["degrees"][0]["via"], z(MOM).as_str());
    assert_eq!(value["degrees"][1]["tag"], "friend");
    assert_eq!(value["blocked"][0], z(STRANGER).as_str());

    // What I publish: my tags and blocks, not my rules.
    let published = TrustDoc::from_mine(&mine);
    assert_eq!(published.tagged(), &mine.tags);
    assert_eq!(published.blocked(), &mine.blocked);
    assert!(!published.to_json().contains("degrees"));
    assert!(published.tags_of(key(MOM)).is_some());

    assert!(mine.remove_degree(&usd(), key(DAD), Some("friend")));
    assert!(!mine.remove_degree(&usd(), key(DAD), Some("friend")));
    assert_eq!(mine.degrees.len(), 1);

    // The rule bound.
    let mut full = MyTrust::new();
    for i in 0..MAX_RULES {
        full.set_degree(DegreeRule {
            asset: Asset::new(&format!("A{i}"), 0).unwrap(),
            ..rule(MOM, 2, "1", None)
        })
        .unwrap();
    }
    assert!(matches!(
        full.set_degree(rule(MOM, 2, "1", None)),
        Err(TrustError::TooManyRules { .. })
    ));
    assert!(MyTrust::from_json(&full.to_json()).is_ok());
    assert_eq!(MyTrust::from_json("{}").unwrap(), MyTrust::new());
}

#[test]
fn my_trust_rejections_table() {
    let mom = z(MOM);
    let r = |body: &str| format!(r#"{{"degrees": [{body}]}}"#);
    let good = format!(r#"{{"asset": "USD", "depth": 2, "accept": "20", "via": "{mom}"}}"#);
    assert!(MyTrust::from_json(&r(&good)).is_ok());
    type Check = fn(&TrustError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        (
            "depth 1",
            r(&format!(
                r#"{{"asset": "USD", "depth": 1, "accept": "20", "via": "{mom}"}}"#
            )),
            |e| matches!(e, TrustError::BadDepth(1)),
        ),
        (
            "a bad asset",
            r(&format!(
                r#"{{"asset": "usd$", "depth": 2, "accept": "20", "via": "{mom}"}}"#
            )),
            |e| matches!(e, TrustError::BadRule(_)),
        ),
        (
            "too precise",
            r(&format!(
                r#"{{"asset": "USD", "depth": 2, "accept": "0.001", "via": "{mom}"}}"#
            )),
            |e| matches!(e, TrustError::BadRule(_)),
        ),
        (
            "a bad via",
            r(r#"{"asset": "USD", "depth": 2, "accept": "20", "via": "mom"}"#),
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        (
            "a bad tag",
            r(&format!(
                r#"{{"asset": "USD", "depth": 2, "accept": "20", "via": "{mom}", "tag": ""}}"#
            )),
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        ("the same rule twice", r(&format!("{good}, {good}")), |e| {
            matches!(e, TrustError::DuplicateRule { .. })
        }),
        (
            "depth as a string",
            r(&format!(
                r#"{{"asset": "USD", "depth": "2", "accept": "20", "via": "{mom}"}}"#
            )),
            |e| matches!(e, TrustError::Malformed(_)),
        ),
        (
            "tagged and blocked",
            format!(r#"{{"tags": {{"{mom}": ["family"]}}, "blocked": ["{mom}"]}}"#),
            |e| matches!(e, TrustError::TaggedAndBlocked { .. }),
        ),
        ("not an object", "[]".into(), |e| {
            matches!(e, TrustError::Malformed(_))
        }),
    ];
    for (name, text, check) in cases {
        match MyTrust::from_json(&text) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(check(&e), "{name}: wrong error {e:?}"),
        }
        if name != "not an object" {
            // (Through serde, a JSON array would be read like an object: from_json is stricter.)
            assert!(
                serde_json::from_str::<MyTrust>(&text).is_err(),
                "{name}: serde accepted"
            );
        }
    }
}

#[test]
fn open_fields_are_checked() {
    let mom = z(MOM);
    let fine = mine(&[rule(MOM, 2, "20", None)], &[STRANGER]);
    assert_eq!(fine.check(), Ok(()));
    type Change = fn(&mut MyTrust);
    type Check = fn(&TrustError) -> bool;
    let cases: Vec<(&str, Change, Check)> = vec![
        (
            "a bad key",
            |m| {
                m.tags.insert("mom".into(), ["f".to_string()].into());
            },
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        (
            "an empty tag set",
            |m| {
                m.tags.insert(z(DAD), BTreeSet::new());
            },
            |e| matches!(e, TrustError::NoTags { .. }),
        ),
        (
            "a bad tag",
            |m| {
                m.tags.insert(z(DAD), ["A".to_string()].into());
            },
            |e| matches!(e, TrustError::BadTag { .. }),
        ),
        (
            "tagged and blocked",
            |m| {
                m.blocked.insert(z(MOM));
            },
            |e| matches!(e, TrustError::TaggedAndBlocked { .. }),
        ),
        (
            "a bad blocked key",
            |m| {
                m.blocked.insert(format!("pk:{}", z(DAD)));
            },
            |e| matches!(e, TrustError::BadKey { .. }),
        ),
        (
            "a bad depth",
            |m| m.degrees[0].depth = 9,
            |e| matches!(e, TrustError::BadDepth(9)),
        ),
        (
            "the same rule twice",
            |m| m.degrees.push(m.degrees[0].clone()),
            |e| matches!(e, TrustError::DuplicateRule { .. }),
        ),
    ];
    for (name, change, check) in cases {
        let mut m = fine.clone();
        change(&mut m);
        let e = m.check().unwrap_err();
        assert!(check(&e), "{name}: wrong error {e:?}");
        assert!(
            MyTrust::from_json(&m.to_json()).is_err(),
            "{name}: read back"
        );
        // What is published of bad settings is still a valid document.
        let doc = TrustDoc::from_mine(&m);
        assert_eq!(TrustDoc::from_json(&doc.to_json()).unwrap(), doc, "{name}");
        // A bad rule is skipped, the others still count.
        let docs = world(CHAIN, &[]);
        let limits = auto_limits(key(ME), &m, &docs);
        assert!(limits.len() <= 2, "{name}");
    }
    // Tagged and blocked: blocked wins in the document and in the evaluation.
    let mut m = fine.clone();
    m.tags.insert(z(FRIEND), ["f".to_string()].into());
    m.blocked.insert(z(FRIEND));
    assert!(TrustDoc::from_mine(&m).tags_of(key(FRIEND)).is_none());
    assert!(TrustDoc::from_mine(&m).is_blocked(key(FRIEND)));
    assert!(!auto_limits(key(ME), &m, &world(CHAIN, &[])).contains_key(&(z(FRIEND), usd())));
    // A refused change changes nothing.
    let mut m = fine.clone();
    assert!(m.set_degree(rule(MOM, 7, "1", None)).is_err());
    assert_eq!(m, fine);
    assert!(matches!(
        m.tag(key(STRANGER), "f"),
        Err(TrustError::TaggedAndBlocked { .. })
    ));
    assert_eq!(m, fine);
    assert!(m.tag(key(DAD), "f").unwrap());
    assert!(!m.tag(key(DAD), "f").unwrap());
    assert!(m.block(key(DAD)).unwrap());
    assert!(!m.tags.contains_key(&z(DAD)));
    assert!(m.unblock(key(DAD)));
    assert!(m.untag(key(MOM), Some("family")));
    assert!(!m.tags.contains_key(&mom));
}

#[test]
fn keys_must_be_canonical() {
    assert_eq!(&parse_z32(&z(3)).unwrap(), key(3));
    assert!(parse_z32(&format!("pk:{}", z(3))).is_err());
    assert!(parse_z32(&format!("https://{}", z(3))).is_err());
    assert!(parse_z32(&z(3).to_uppercase()).is_err());
}

/// `n` distinct keys (secrets from a counter).
fn many_keys(n: usize) -> Vec<PublicKey> {
    (0..n)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Keypair::from_secret_key(&secret).public_key()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Against a naive model

const N: usize = 10;
const TAGS: [&str; 2] = ["friend", "family"];

#[derive(Debug, Clone)]
struct Graph {
    /// Which keys have a document.
    has_doc: Vec<bool>,
    /// (from, to, tag bits: 1 friend, 2 family, 3 both).
    edges: Vec<(usize, usize, u8)>,
    /// (by, blocked).
    blocks: Vec<(usize, usize)>,
    my_blocks: Vec<usize>,
    /// (via, depth, accept minor units, euro?, tag: 0 none, 1 friend, 2 family)
    rules: Vec<(usize, u8, u64, bool, u8)>,
}

fn graph() -> impl Strategy<Value = Graph> {
    (
        prop::collection::vec(prop::bool::weighted(0.85), N),
        prop::collection::vec((0..N, 0..N, 1u8..=3), 0..40),
        prop::collection::vec((0..N, 0..N), 0..6),
        prop::collection::vec(0..N, 0..3),
        prop::collection::vec((0..N, 2u8..=4, 0u64..4, any::<bool>(), 0u8..3), 1..4),
    )
        .prop_map(|(has_doc, edges, blocks, my_blocks, rules)| Graph {
            has_doc,
            edges,
            blocks,
            my_blocks,
            rules,
        })
}

fn build(g: &Graph) -> (MyTrust, HashMap<String, TrustDoc>) {
    let mut docs: HashMap<String, TrustDoc> = HashMap::new();
    for (from, to, bits) in &g.edges {
        if !g.has_doc[*from] {
            continue;
        }
        let doc = docs.entry(z(*from)).or_default();
        for (i, tag) in TAGS.iter().enumerate() {
            if bits & (1 << i) != 0 && !doc.is_blocked(key(*to)) {
                doc.tag(key(*to), tag).unwrap();
            }
        }
    }
    for (by, blocked) in &g.blocks {
        if g.has_doc[*by] {
            docs.entry(z(*by))
                .or_default()
                .block(key(*blocked))
                .unwrap();
        }
    }
    let mut mine = MyTrust::new();
    for b in &g.my_blocks {
        mine.block(key(*b)).unwrap();
    }
    for (via, depth, accept, euro, tag) in &g.rules {
        mine.set_degree(DegreeRule {
            asset: if *euro { eur() } else { usd() },
            depth: *depth,
            accept: Amount::from_minor(*accept),
            via: key(*via).clone(),
            tag: match tag {
                0 => None,
                t => Some(TAGS[usize::from(*t) - 1].to_string()),
            },
        })
        .unwrap();
    }
    (mine, docs)
}

/// Distances from the rule's `via` by repeated relaxation over every edge (Bellman–Ford), in
/// the graph without the keys I block or `via` blocks; `None` if I block `via`.
fn naive_distances(
    mine: &MyTrust,
    rule: &DegreeRule,
    docs: &HashMap<String, TrustDoc>,
) -> Option<BTreeMap<String, u8>> {
    let via = rule.via.to_z32();
    if mine.blocked.contains(&via) {
        return None;
    }
    let via_blocked: BTreeSet<String> = docs
        .get(&via)
        .map(|d| d.blocked().clone())
        .unwrap_or_default();
    let mut dist: BTreeMap<String, u8> = BTreeMap::new();
    dist.insert(via, 1);
    for _ in 0..=N {
        for (from, doc) in docs {
            let Some(&d) = dist.get(from) else { continue };
            for (to, tags) in doc.tagged() {
                let follows = rule.tag.as_ref().is_none_or(|t| tags.contains(t));
                let removed = mine.blocked.contains(to) || via_blocked.contains(to);
                if follows && !removed {
                    let e = dist.entry(to.clone()).or_insert(u8::MAX);
                    *e = (*e).min(d + 1);
                }
            }
        }
    }
    Some(dist)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn auto_limits_match_a_naive_model(g in graph()) {
        let (mine, docs) = build(&g);
        let me = z(ME);
        let got = auto_limits(key(ME), &mine, &docs);

        let mut expect: BTreeMap<(String, Asset), Amount> = BTreeMap::new();
        let mut crawl_expect = BTreeSet::new();
        for rule in &mine.degrees {
            let Some(dist) = naive_distances(&mine, rule, &docs) else { continue };
            for (k, d) in &dist {
                if *d < rule.depth {
                    crawl_expect.insert(k.clone());
                }
                if (2..=rule.depth).contains(d) && *k != me && !rule.accept.is_zero() {
                    let e = expect.entry((k.clone(), rule.asset.clone())).or_default();
                    *e = (*e).max(rule.accept);
                }
            }
        }
        prop_assert_eq!(&got, &expect);
        prop_assert_eq!(keys_to_crawl(&mine, &docs), crawl_expect);

        // Never me, a key I block, a via key's blocked key, a via key by its own rule.
        for ((k, asset), amount) in &got {
            prop_assert!(*k != me);
            prop_assert!(!mine.blocked.contains(k));
            prop_assert!(!amount.is_zero());
            let rules: Vec<&DegreeRule> = mine
                .degrees
                .iter()
                .filter(|r| r.asset == *asset && r.accept == *amount)
                .collect();
            let given = rules.iter().any(|r| {
                let via = r.via.to_z32();
                via != *k && !docs.get(&via).is_some_and(|d| d.blocked().contains(k))
            });
            prop_assert!(given);
        }

        // Deterministic, whatever the map's order.
        prop_assert_eq!(auto_limits(key(ME), &mine, &docs), got.clone());
        let rebuilt: HashMap<String, TrustDoc> = docs
            .iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .rev()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        prop_assert_eq!(auto_limits(key(ME), &mine, &rebuilt), got);
    }

    #[test]
    fn crawling_reaches_the_same_limits(g in graph()) {
        let (mine, everyone) = build(&g);
        let (docs, rounds) = crawl(&mine, &everyone);
        prop_assert!(rounds <= 5);
        prop_assert_eq!(auto_limits(key(ME), &mine, &docs), auto_limits(key(ME), &mine, &everyone));
    }

    #[test]
    fn documents_round_trip(g in graph()) {
        let (mine, docs) = build(&g);
        for doc in docs.values() {
            let text = doc.to_json();
            prop_assert_eq!(&TrustDoc::from_json(&text).unwrap(), doc);
        }
        prop_assert_eq!(MyTrust::from_json(&mine.to_json()).unwrap(), mine);
    }
}
