//! `atomicity devnet`: a whole network on loopback, running the design document's examples,
//! narrated step by step.
//!
//! [`Network::start`] starts real processes: a local Mainline DHT (`dht run`), two witness logs
//! each cosigned by a watchtower (`witness run --cosigner`, `watchtower run --log`), a router
//! (`router run`, seeded with my key, announcing on the DHT) and the cast's nodes (`node run`
//! with the DHT, both witnesses, the router, regtest Lightning through a shared fake wallet).
//! It then sets up the web of trust and the credit lines every example starts from.
//!
//! Each example is a module with one function `fn(&Network) -> Result<()>`, listed in
//! [`EXAMPLES`]; it narrates what it does, prints the balances of the parties involved before and
//! after, and fails naming the party whose balance is not exactly as expected.

pub mod coffee;
pub mod dinner;
pub mod second_degree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use atomicity_node::api::BalanceRow;

use crate::harness::{self, NodeProcess, ServiceProcess};

/// The cast: every node's name and who it is.
pub const CAST: &[(&str, &str)] = &[
    ("me", "the user of the design document, \"I\""),
    ("mom", "my mother, new to Atomicity"),
    ("fran", "Mom's friend"),
    ("gus", "Fran's friend (distance 3 from me through Mom)"),
    ("cafe", "a coffee shop: takes credit from me, and Lightning"),
    ("bob", "a dinner friend"),
    ("carol", "a dinner friend"),
    ("dave", "a dinner friend"),
    ("erin", "a dinner friend"),
    ("restaurant", "where we have dinner"),
    ("grocer", "Mom's grocer: takes her credit"),
    ("hank", "Bob's brother, who lends Bob credit"),
];

/// My on-chain address (regtest), published as my `btc-bitcoin-p2wpkh` endpoint.
pub const MY_ONCHAIN_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// One of the design document's examples.
pub struct Example {
    /// A short name (`coffee`).
    pub name: &'static str,
    /// What it shows, for the narration.
    pub title: &'static str,
    /// The nodes it needs.
    pub cast: &'static [&'static str],
    /// Runs it on a started network; an error says what went wrong (and whose balance).
    pub run: fn(&Network) -> Result<()>,
}

/// The examples, in the order the devnet runs them.
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "coffee",
        title: "Mom's coffee via a Lightning swap",
        cast: &["me", "mom", "fran"],
        run: coffee::coffee,
    },
    Example {
        name: "second-degree",
        title: "Mom's friend pays through me thanks to the second-degree limit",
        cast: &["me", "mom", "fran", "gus", "cafe"],
        run: second_degree::second_degree,
    },
    Example {
        name: "dinner",
        title: "The dinner bill, filled by credit, on-chain and Lightning",
        cast: &["me", "bob", "carol", "dave", "erin", "restaurant"],
        run: dinner::dinner,
    },
];

/// Both sides of a credit line: `a` may owe `b` up to `a_issue`, `b` may owe `a` up to
/// `b_issue` (each side sets its own `issue`, the other the matching `accept`).
struct Link {
    a: &'static str,
    b: &'static str,
    asset: &'static str,
    a_issue: &'static str,
    b_issue: &'static str,
    why: &'static str,
}

const LINKS: &[Link] = &[
    Link {
        a: "me",
        b: "mom",
        asset: "USD",
        a_issue: "100",
        b_issue: "200",
        why: "I give Mom a credit limit of $100 and accept up to $200 of credit from her",
    },
    Link {
        a: "mom",
        b: "me",
        asset: "BTC",
        a_issue: "0.001",
        b_issue: "0",
        why: "Mom may owe me up to 0.001 BTC (100,000 sat), for Lightning swaps",
    },
    Link {
        a: "mom",
        b: "fran",
        asset: "BTC",
        a_issue: "0.001",
        b_issue: "0",
        why: "Mom may owe Fran up to 0.001 BTC too",
    },
    Link {
        a: "me",
        b: "cafe",
        asset: "USD",
        a_issue: "100",
        b_issue: "0",
        why: "the café takes up to $100 of my credit (not Fran's: it does not know her)",
    },
    Link {
        a: "me",
        b: "bob",
        asset: "USD",
        a_issue: "100",
        b_issue: "100",
        why: "my dinner friends and I: $100 each way",
    },
    Link {
        a: "me",
        b: "carol",
        asset: "USD",
        a_issue: "100",
        b_issue: "100",
        why: "",
    },
    Link {
        a: "me",
        b: "dave",
        asset: "USD",
        a_issue: "100",
        b_issue: "100",
        why: "",
    },
    Link {
        a: "me",
        b: "erin",
        asset: "USD",
        a_issue: "100",
        b_issue: "100",
        why: "",
    },
    Link {
        a: "mom",
        b: "grocer",
        asset: "USD",
        a_issue: "150",
        b_issue: "0",
        why: "Mom's grocer keeps a tab for her, up to $150",
    },
    Link {
        a: "bob",
        b: "hank",
        asset: "USD",
        a_issue: "300",
        b_issue: "300",
        why: "Bob and his brother Hank: $300 each way",
    },
    Link {
        a: "me",
        b: "restaurant",
        asset: "USD",
        a_issue: "500",
        b_issue: "0",
        why: "the restaurant takes up to $500 of my credit",
    },
];

/// One-sided offers: `who` is willing to owe `peer` up to `issue` (the peer sets no limit by
/// hand: only its web of trust can give one).
const OFFERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "fran",
        "me",
        "USD",
        "50",
        "Fran is willing to owe me up to $50 (I accept nothing from her yet)",
    ),
    (
        "gus",
        "me",
        "USD",
        "50",
        "Gus is willing to owe me up to $50 (I accept nothing from him yet)",
    ),
];

/// Forwarding fees: `who` charges `fee` to forward a payment onto its line to `peer`.
const FEES: &[(&str, &str, &str, &str)] = &[("me", "cafe", "USD", "0.10")];

/// Tags set up front: `who` tags `peer` with `tag`.
const TAGS: &[(&str, &str, &str)] = &[
    ("me", "bob", "friend"),
    ("me", "carol", "friend"),
    ("me", "dave", "friend"),
    ("me", "erin", "friend"),
    ("me", "cafe", "merchant"),
    ("me", "restaurant", "merchant"),
    ("mom", "me", "family"),
    ("fran", "gus", "friend"),
    ("mom", "grocer", "merchant"),
    ("bob", "hank", "family"),
];

/// A running devnet.
pub struct Network {
    root: PathBuf,
    bin: PathBuf,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    dht: Option<ServiceProcess>,
    towers: Vec<ServiceProcess>,
    witnesses: Vec<ServiceProcess>,
    router: Option<ServiceProcess>,
    router_key: String,
    nodes: Vec<(&'static str, NodeProcess)>,
    wallet: PathBuf,
    steps: AtomicU32,
}

impl Network {
    /// Starts the whole cast in `root` with the `atomicity` binary `bin`.
    pub fn start(root: &Path, bin: &Path) -> Result<Network> {
        let all: Vec<&str> = CAST.iter().map(|(n, _)| *n).collect();
        Network::start_cast(root, bin, &all)
    }

    /// Starts the services and only the nodes named in `cast`; the set-up leaves out every
    /// line and tag with someone missing.
    pub fn start_cast(root: &Path, bin: &Path, cast: &[&str]) -> Result<Network> {
        std::fs::create_dir_all(root)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut net = Network {
            root: root.to_path_buf(),
            bin: bin.to_path_buf(),
            rt,
            http,
            dht: None,
            towers: Vec::new(),
            witnesses: Vec::new(),
            router: None,
            router_key: String::new(),
            nodes: Vec::new(),
            wallet: root.join("wallet"),
            steps: AtomicU32::new(0),
        };
        net.start_processes(cast)?;
        net.set_up()?;
        Ok(net)
    }

    fn start_processes(&mut self, cast: &[&str]) -> Result<()> {
        let (bin, root) = (self.bin.clone(), self.root.clone());
        self.step("Starting a local Mainline DHT (atomicity dht run).");
        let dht = ServiceProcess::start(
            &bin,
            &root.join("dht"),
            "dht",
            &["--listen".into(), "127.0.0.1:0".into()],
        )?;
        let bootstrap = dht.url.clone();
        println!("   dht         {bootstrap}");
        self.dht = Some(dht);

        self.step(
            "Starting two witness logs, each cosigned by its own watchtower, and a router \
             that starts crawling from my key; every service announces itself on the DHT.",
        );
        std::fs::create_dir_all(&self.wallet)?;
        let pay_cmd = atomicity_node::lightning::testing::write_fake_wallet(&self.wallet)?;
        // Every node makes its Lightning invoices with the same fake wallet, which can then
        // pay them (it stands for the Lightning network).
        let invoice_cmd = format!(
            "'{}' fake-ln-invoice --wallet '{}' --network regtest",
            bin.display(),
            self.wallet.display()
        );
        let mut keys = BTreeMap::new();
        for name in cast {
            let dir = root.join(name);
            let key = match atomicity_node::datadir::DataDir::new(&dir).identity() {
                Ok(id) => id.public_key().to_z32(),
                Err(_) => harness::init(&bin, &dir)?,
            };
            keys.insert(*name, key);
        }
        let me = keys.get("me").cloned().context("the cast has no `me`")?;
        let (logs, router) = std::thread::scope(|s| {
            let logs: Vec<_> = ["w1", "w2"]
                .into_iter()
                .map(|w| {
                    let (bin, root, bootstrap) = (&bin, &root, &bootstrap);
                    s.spawn(move || cosigned_witness(bin, root, w, bootstrap))
                })
                .collect();
            let router = s.spawn(|| {
                ServiceProcess::start(
                    &bin,
                    &root.join("router"),
                    "router",
                    &strings(&[
                        "--listen",
                        "127.0.0.1:0",
                        "--dht-bootstrap",
                        &bootstrap,
                        "--seed",
                        &me,
                        "--round-seconds",
                        "1",
                        "--recrawl-seconds",
                        "1",
                    ]),
                )
            });
            let logs: Vec<Result<(ServiceProcess, ServiceProcess)>> = logs
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a thread panicked")))
                })
                .collect();
            let router = router
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a thread panicked")));
            (logs, router)
        });
        for log in logs {
            let (tower, witness) = log?;
            println!(
                "   witness     {}  cosigned by the watchtower at {}",
                witness.url, tower.url
            );
            self.towers.push(tower);
            self.witnesses.push(witness);
        }
        let router = router?;
        self.router_key = harness::cli_ok(&bin, router.dir(), &["id"])?
            .trim()
            .to_string();
        println!("   router      {}", router.url);
        let router_url = router.url.clone();
        self.router = Some(router);

        self.step(&format!(
            "Starting {} nodes ({}); each finds the others by key on the DHT, publishes \
             on both witnesses and pays regtest Lightning invoices through a fake wallet.",
            cast.len(),
            cast.join(", ")
        ));
        let witness_urls: Vec<String> = self.witnesses.iter().map(|w| w.url.clone()).collect();
        let mut args = strings(&[
            "--dht-bootstrap",
            &bootstrap,
            "--witness",
            &witness_urls.join(","),
            "--router",
            &router_url,
            "--ln-network",
            "regtest",
            "--ln-pay-cmd",
            &pay_cmd,
            "--ln-invoice-cmd",
            &invoice_cmd,
            "--trust-refresh",
            "1",
            "--witness-threshold",
            "1",
        ]);
        for tower in &self.towers {
            args.push("--witness-cosigner".into());
            args.push(tower.read("watchtower.vkey")?);
        }
        let started: Vec<(&'static str, Result<NodeProcess>)> = std::thread::scope(|s| {
            let handles: Vec<_> = CAST
                .iter()
                .filter(|(n, _)| cast.contains(n))
                .map(|(name, _)| {
                    let (bin, root, args) = (&bin, &root, &args);
                    (
                        *name,
                        s.spawn(move || {
                            NodeProcess::start_with(bin, &root.join(name), "127.0.0.1:0", args)
                        }),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| {
                    (
                        name,
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow!("a thread panicked"))),
                    )
                })
                .collect()
        });
        for (name, node) in started {
            let node = node.with_context(|| format!("starting {name}"))?;
            let who = CAST
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, w)| *w);
            println!("   {name:<11} {}  {who}", node.node_url);
            self.nodes.push((name, node));
        }
        Ok(())
    }

    fn set_up(&self) -> Result<()> {
        self.step("Credit lines (each side sets its own limits):");
        for l in LINKS {
            if !self.has(l.a) || !self.has(l.b) {
                continue;
            }
            for (me, peer, issue, accept) in [
                (l.a, l.b, l.a_issue, l.b_issue),
                (l.b, l.a, l.b_issue, l.a_issue),
            ] {
                self.add_peer(me, peer)?;
                let key = self.key(peer)?;
                self.cli(
                    me,
                    &[
                        "line", "set", &key, "--asset", l.asset, "--issue", issue, "--accept",
                        accept,
                    ],
                )?;
            }
            if !l.why.is_empty() {
                println!("   {:<10} {}: {}", l.a, l.b, l.why);
            } else {
                println!("   {:<10} {}", l.a, l.b);
            }
        }
        for (who, peer, asset, issue, why) in OFFERS {
            if !self.has(who) || !self.has(peer) {
                continue;
            }
            self.add_peer(who, peer)?;
            let key = self.key(peer)?;
            self.cli(
                who,
                &["line", "set", &key, "--asset", asset, "--issue", issue],
            )?;
            println!("   {who:<10} {peer}: {why}");
        }
        for (who, peer, asset, fee) in FEES {
            if !self.has(who) || !self.has(peer) {
                continue;
            }
            let key = self.key(peer)?;
            self.cli(
                who,
                &["line", "set", &key, "--asset", asset, "--fee-base", fee],
            )?;
            println!("   {who:<10} charges {fee} {asset} to forward a payment to {peer}");
        }
        self.step("Trust tags (published for friends to crawl):");
        for (who, peer, tag) in TAGS {
            if !self.has(who) || !self.has(peer) {
                continue;
            }
            let key = self.key(peer)?;
            self.cli(who, &["trust", "tag", &key, tag])?;
            println!("   {who:<10} tags {peer} {tag}");
        }
        if self.has("me") {
            self.cli(
                "me",
                &["endpoint", "add", "btc-bitcoin-p2wpkh", MY_ONCHAIN_ADDRESS],
            )?;
            println!("   me         publishes an on-chain address (btc-bitcoin-p2wpkh)");
        }
        Ok(())
    }

    fn add_peer(&self, who: &str, peer: &str) -> Result<()> {
        let (key, url) = {
            let p = self.node(peer)?;
            (p.key.clone(), p.node_url.clone())
        };
        self.cli(who, &["peer", "add", &key, "--url", &url])?;
        Ok(())
    }

    /// Prints the next numbered step.
    pub fn step(&self, text: &str) {
        let n = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        println!("\n{n}. {text}");
    }

    /// Prints a line of narration under the current step.
    pub fn say(&self, text: &str) {
        println!("   {text}");
    }

    /// Whether `name` runs in this network.
    pub fn has(&self, name: &str) -> bool {
        self.nodes.iter().any(|(n, _)| *n == name)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&NodeProcess> {
        self.nodes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p)
            .with_context(|| format!("no node {name} in this network"))
    }

    /// `name`'s key.
    pub fn key(&self, name: &str) -> Result<String> {
        Ok(self.node(name)?.key.clone())
    }

    /// `name`'s data directory.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.node(name)?.dir().to_path_buf())
    }

    /// The cast name of `key` (the key itself for a stranger).
    pub fn name_of(&self, key: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, p)| p.key == key)
            .map_or_else(|| key.to_string(), |(n, _)| (*n).to_string())
    }

    /// The devnet's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `atomicity` binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The shared fake Lightning wallet's directory (every node's `--ln-pay-cmd`).
    pub fn wallet(&self) -> &Path {
        &self.wallet
    }

    /// The router's base URL.
    pub fn router_url(&self) -> &str {
        self.router.as_ref().map_or("", |r| r.url.as_str())
    }

    /// Runs `atomicity --data-dir DIR/<who> ARGS..`, which must succeed: its stdout.
    pub fn cli(&self, who: &str, args: &[&str]) -> Result<String> {
        harness::cli_ok(&self.bin, self.node(who)?.dir(), args)
    }

    /// Like [`Self::cli`], printing the command first (keys shown as `<name>`).
    pub fn act(&self, who: &str, args: &[&str]) -> Result<String> {
        println!("   {who}$ atomicity {}", self.show_args(args));
        self.cli(who, args)
    }

    /// Runs a command that may fail: (exit code, stdout, stderr), printing it first.
    pub fn try_act(&self, who: &str, args: &[&str]) -> Result<(i32, String, String)> {
        println!("   {who}$ atomicity {}", self.show_args(args));
        harness::cli(&self.bin, self.node(who)?.dir(), args)
    }

    /// `args` joined, with each key shown as `<name>` and long words shortened.
    pub fn show_args(&self, args: &[&str]) -> String {
        args.iter()
            .map(|a| {
                if self.nodes.iter().any(|(_, p)| p.key == *a) {
                    format!("<{}>", self.name_of(a))
                } else if a.len() > 40 {
                    format!("{}…", &a[..24])
                } else {
                    (*a).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `who`'s balance rows.
    pub fn balances(&self, who: &str) -> Result<Vec<BalanceRow>> {
        let out = self.cli(who, &["balance", "--json"])?;
        serde_json::from_str(&out).with_context(|| format!("{who}'s balance: {out}"))
    }

    /// `who`'s accept limit toward `peer` in `asset` ("0" when it has no line).
    pub fn accept(&self, who: &str, peer: &str, asset: &str) -> Result<String> {
        let key = self.key(peer)?;
        Ok(self
            .balances(who)?
            .into_iter()
            .find(|r| r.peer == key && r.asset == asset)
            .map_or_else(|| "0".to_string(), |r| r.accept))
    }

    /// Every net position of each of `parties`: (party, peer name, asset) → net.
    pub fn snapshot(&self, parties: &[&str]) -> Result<Balances> {
        let mut all = Balances::new();
        for who in parties {
            for row in self.balances(who)? {
                all.insert(
                    ((*who).to_string(), self.name_of(&row.peer), row.asset),
                    row.net,
                );
            }
        }
        Ok(all)
    }

    /// Prints the net positions of `parties` (lines that are all zero are left out).
    pub fn print_balances(&self, title: &str, parties: &[&str]) -> Result<Balances> {
        let snap = self.snapshot(parties)?;
        println!("   {title}:");
        let mut any = false;
        for ((who, peer, asset), net) in &snap {
            if dec(net).is_ok_and(|v| v == 0) {
                continue;
            }
            any = true;
            let words = if net.starts_with('-') {
                format!("{who} owes {peer} {}", net.trim_start_matches('-'))
            } else {
                format!("{peer} owes {who} {net}")
            };
            println!("     {who:<10} with {peer:<10} {asset:<4} {net:>12}   ({words} {asset})");
        }
        if !any {
            println!("     (nobody owes anybody anything)");
        }
        Ok(snap)
    }

    /// Waits (up to 20 s) until every net position of `parties` is its value in `before`
    /// changed by `changes` (party, peer, asset, signed amount); else an error naming the
    /// first party whose balance is wrong.
    pub fn expect_changes(
        &self,
        before: &Balances,
        parties: &[&str],
        changes: &[(&str, &str, &str, &str)],
    ) -> Result<()> {
        self.expect_changes_within(before, parties, changes, Duration::from_secs(20))
    }

    /// [`Self::expect_changes`], waiting at most `timeout`.
    pub fn expect_changes_within(
        &self,
        before: &Balances,
        parties: &[&str],
        changes: &[(&str, &str, &str, &str)],
        timeout: Duration,
    ) -> Result<()> {
        let mut want: BTreeMap<(String, String, String), i128> = BTreeMap::new();
        for ((who, peer, asset), net) in before {
            want.insert((who.clone(), peer.clone(), asset.clone()), dec(net)?);
        }
        for (who, peer, asset, delta) in changes {
            *want
                .entry(((*who).into(), (*peer).into(), (*asset).into()))
                .or_default() += dec(delta)?;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.snapshot(parties)?;
            let mut keys: BTreeSet<&(String, String, String)> = want.keys().collect();
            keys.extend(got.keys());
            let mut wrong = None;
            for k in keys {
                let g = got.get(k).map(|n| dec(n)).transpose()?.unwrap_or(0);
                let w = want.get(k).copied().unwrap_or(0);
                if g != w && parties.contains(&k.0.as_str()) {
                    wrong = Some(format!(
                        "{}'s balance with {} in {} is {}, expected {}",
                        k.0,
                        k.1,
                        k.2,
                        got.get(k).map_or("nothing", String::as_str),
                        show_dec(w)
                    ));
                    break;
                }
            }
            match wrong {
                None => {
                    println!(
                        "   [ok] every balance of {} is exactly as expected",
                        parties.join(", ")
                    );
                    return Ok(());
                }
                Some(why) if Instant::now() > deadline => bail!(why),
                Some(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Asks the router for a route (`from` → `to`, `amount` of `asset`): the hops' names, or
    /// `None` when it knows none.
    pub fn router_route(
        &self,
        from: &str,
        to: &str,
        amount: &str,
        asset: &str,
    ) -> Result<Option<Vec<String>>> {
        let url = format!("{}/v1/route", self.router_url());
        let (from, to) = (self.key(from)?, self.key(to)?);
        let query = [
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("amount", amount),
            ("asset", asset),
        ];
        let body = self.rt.block_on(async {
            let response = self.http.get(&url).query(&query).send().await?;
            Ok::<_, anyhow::Error>(response.error_for_status()?.bytes().await?)
        })?;
        let key = atomicity_core::parse_key(&self.router_key)
            .map_err(|e| anyhow!("the router's key: {e}"))?;
        let doc = atomicity_core::published::verify_document(
            &body,
            &key,
            atomicity_core::router_api::ANSWER_PATH,
            None,
        )
        .map_err(|e| anyhow!("the router's answer: {e}"))?;
        let answer: atomicity_core::router_api::RoutesAnswer =
            serde_json::from_str(doc.value.get())?;
        Ok(answer
            .routes
            .first()
            .map(|r| r.hops.iter().map(|k| self.name_of(k)).collect()))
    }

    /// Polls `check` every 200 ms until it holds; after `secs`, an error with `what` and its
    /// last complaint.
    pub fn wait(
        &self,
        secs: u64,
        what: &str,
        check: impl FnMut() -> std::result::Result<(), String>,
    ) -> Result<()> {
        harness::wait_until(Duration::from_secs(secs), what, check)
    }

    /// Prints commands to try against the running network.
    pub fn print_try(&self) -> Result<()> {
        let bin = self.bin.display();
        let d = |n: &str| self.dir(n).map(|p| p.display().to_string());
        println!("\nThe network keeps running. Try, in another terminal:");
        println!("   alias atomicity={bin}");
        println!("   atomicity --data-dir {} balance", d("me")?);
        println!("   atomicity --data-dir {} trust list", d("me")?);
        if self.has("cafe") && self.has("fran") {
            println!(
                "   INVOICE=$(atomicity --data-dir {} invoice new 3.00 USD --memo tea)",
                d("cafe")?
            );
            println!(
                "   atomicity --data-dir {} invoice pay $INVOICE     # Fran, through me, found by the router",
                d("fran")?
            );
        }
        if self.has("bob") {
            println!(
                "   atomicity --data-dir {} pay {} 12.50 USD     # I pay Bob back part of the dinner",
                d("me")?,
                self.key("bob")?
            );
        }
        if self.has("carol") && self.has("dave") {
            println!(
                "   URI=$(atomicity --data-dir {} request new 60 USD --memo pizza --method credit,lightning --sats-per-unit 1100 | head -1)",
                d("me")?
            );
            println!(
                "   atomicity --data-dir {} request watch <ID it printed>   # a live progress bar",
                d("me")?
            );
            println!(
                "   atomicity --data-dir {} request pay \"$URI\" 20",
                d("carol")?
            );
            println!(
                "   atomicity --data-dir {} request pay \"$URI\" 40 --method lightning",
                d("dave")?
            );
        }
        println!(
            "   atomicity --data-dir {} wallet      # my web wallet: open the address it prints",
            d("me")?
        );
        if let Some(dht) = &self.dht {
            println!(
                "   atomicity --data-dir {} dht find router --dht-bootstrap {}",
                self.root.display(),
                dht.url
            );
        }
        println!(
            "   Data directories: {}/<name> for {}; logs in each (node.log).",
            self.root.display(),
            self.nodes
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    }

    /// Stops every process (nodes first, then the services), in parallel.
    pub fn stop(mut self) {
        std::thread::scope(|s| {
            for (_, node) in &mut self.nodes {
                s.spawn(move || node.stop());
            }
        });
        std::thread::scope(|s| {
            for service in self
                .router
                .iter_mut()
                .chain(self.witnesses.iter_mut())
                .chain(self.towers.iter_mut())
                .chain(self.dht.iter_mut())
            {
                s.spawn(move || service.stop());
            }
        });
    }
}

/// Net positions: (party, peer name, asset) → net as a decimal string.
pub type Balances = BTreeMap<(String, String, String), String>;

/// The scale [`dec`] works at (enough for BTC's 8 decimals).
const SCALE: u32 = 12;

/// A decimal string ("-5.10") in units of 10^-12.
pub fn dec(s: &str) -> Result<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > SCALE as usize || (whole.is_empty() && frac.is_empty()) {
        bail!("not a decimal: {s}");
    }
    let whole: i128 = if whole.is_empty() { 0 } else { whole.parse()? };
    let frac_val: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>()? * 10i128.pow(SCALE - frac.len() as u32)
    };
    let v = whole * 10i128.pow(SCALE) + frac_val;
    Ok(if neg { -v } else { v })
}

/// [`dec`]'s inverse, without trailing zeros past two decimals.
fn show_dec(v: i128) -> String {
    let unit = 10i128.pow(SCALE);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.abs();
    let mut frac = format!("{:012}", a % unit);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}{}.{frac}", a / unit)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_string()).collect()
}

/// A witness log cosigned by its own watchtower: the log's first run makes its key, the
/// watchtower starts knowing it, and the log runs again asking the watchtower to cosign.
fn cosigned_witness(
    bin: &Path,
    root: &Path,
    name: &str,
    bootstrap: &str,
) -> Result<(ServiceProcess, ServiceProcess)> {
    let dir = root.join(name);
    let base = strings(&["--listen", "127.0.0.1:0", "--block-seconds", "1"]);
    let mut first = ServiceProcess::start(bin, &dir, "witness", &base)?;
    let vkey = first.read("witness.vkey")?;
    first.stop();
    let tower = ServiceProcess::start(
        bin,
        &root.join(format!("{name}-tower")),
        "watchtower",
        &strings(&[
            "--listen",
            "127.0.0.1:0",
            "--poll-seconds",
            "1",
            "--log",
            &vkey,
            "--dht-bootstrap",
            bootstrap,
        ]),
    )?;
    let mut args = base;
    args.extend([
        "--cosigner".to_string(),
        format!("{},{}", tower.read("watchtower.vkey")?, tower.url),
        "--dht-bootstrap".to_string(),
        bootstrap.to_string(),
    ]);
    let witness = ServiceProcess::start(bin, &dir, "witness", &args)?;
    Ok((tower, witness))
}

/// Runs the devnet: starts the network in `dir` (a temporary directory when `None`), runs
/// every example, and (without `once`) keeps the network up until Ctrl-C. Returns whether
/// every example succeeded. Blocking: call it outside an async runtime.
pub fn run(dir: Option<PathBuf>, once: bool) -> Result<bool> {
    let started = Instant::now();
    let temp;
    let root = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("atomicity-devnet-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let bin = std::env::current_exe().context("cannot find the atomicity binary")?;
    println!("Atomicity devnet in {}", root.display());
    println!("The cast:");
    for (name, who) in CAST {
        println!("   {name:<11} {who}");
    }
    let net = Network::start(&root, &bin)?;
    println!(
        "\nThe network is up ({:.1} s). Now the design document's examples.",
        started.elapsed().as_secs_f64()
    );
    let mut failed = Vec::new();
    for (i, example) in EXAMPLES.iter().enumerate() {
        println!("\n=== Example {}: {} ===", i + 1, example.title);
        let t = Instant::now();
        match (example.run)(&net) {
            Ok(()) => println!(
                "\n   Example {} ({}) succeeded in {:.1} s.",
                i + 1,
                example.name,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                println!("\n   Example {} ({}) FAILED: {e:#}", i + 1, example.name);
                failed.push(example.name);
            }
        }
    }
    println!();
    if failed.is_empty() {
        println!(
            "All {} examples succeeded ({:.1} s in all).",
            EXAMPLES.len(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("FAILED: {}.", failed.join(", "));
    }
    if once {
        net.stop();
        return Ok(failed.is_empty());
    }
    net.print_try()?;
    println!("Press Ctrl-C to stop.");
    // SIGTERM too (kill, a supervisor): either way every process is stopped below, none is
    // left behind.
    net.rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            stopped = tokio::signal::ctrl_c() => stopped,
            _ = term.recv() => Ok(()),
        }
    })?;
    println!("\nStopping the network.");
    net.stop();
    Ok(failed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(dec("-5.10").ok(), Some(-5_100_000_000_000));
        assert_eq!(dec("0.00005000").ok(), Some(50_000_000));
        assert_eq!(dec("20").ok(), Some(20_000_000_000_000));
        assert!(dec("x").is_err());
        assert!(dec("").is_err());
        assert_eq!(show_dec(-5_100_000_000_000), "-5.10");
        assert_eq!(show_dec(50_000_000), "0.00005");
    }
}
