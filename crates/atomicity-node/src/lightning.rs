//! The Lightning rail of settlement: reading BOLT11 invoices, checking them against a
//! settlement, and paying them through the user's own wallet command.
//!
//! The node holds no Lightning keys and runs no Lightning node. It parses the invoice (checking
//! its signature, network, expiry and amount), hands it to a command the user configured (for
//! example `lncli payinvoice --force --json`), and takes the payment preimage the wallet prints
//! as proof of payment, after checking that it hashes to the invoice's payment hash.
//!
//! [`testing`] holds a fake wallet and an invoice maker for tests (here and in other crates).

use std::fmt;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef, Currency};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// How much of a wallet's stdout or stderr an error keeps, in bytes.
const OUTPUT_KEEP: usize = 500;

/// The Bitcoin network whose Lightning invoices a node pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LnNetwork {
    /// Bitcoin mainnet (invoices `lnbc…`).
    Bitcoin,
    /// Testnet (invoices `lntb…`).
    Testnet,
    /// Signet (invoices `lntbs…`).
    Signet,
    /// Regtest (invoices `lnbcrt…`).
    Regtest,
}

impl LnNetwork {
    /// The lowercase name, as accepted by [`FromStr`] and printed by [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            LnNetwork::Bitcoin => "bitcoin",
            LnNetwork::Testnet => "testnet",
            LnNetwork::Signet => "signet",
            LnNetwork::Regtest => "regtest",
        }
    }
}

impl fmt::Display for LnNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LnNetwork {
    type Err = LnError;

    /// Accepts `bitcoin` (or `mainnet`), `testnet`, `signet` and `regtest`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bitcoin" | "mainnet" => Ok(LnNetwork::Bitcoin),
            "testnet" => Ok(LnNetwork::Testnet),
            "signet" => Ok(LnNetwork::Signet),
            "regtest" => Ok(LnNetwork::Regtest),
            _ => Err(LnError::UnknownNetwork(s.trim().to_string())),
        }
    }
}

impl From<LnNetwork> for Currency {
    fn from(network: LnNetwork) -> Currency {
        match network {
            LnNetwork::Bitcoin => Currency::Bitcoin,
            LnNetwork::Testnet => Currency::BitcoinTestnet,
            LnNetwork::Signet => Currency::Signet,
            LnNetwork::Regtest => Currency::Regtest,
        }
    }
}

impl TryFrom<Currency> for LnNetwork {
    type Error = LnError;

    /// Fails only for simnet, which a node never pays.
    fn try_from(currency: Currency) -> Result<Self, Self::Error> {
        match currency {
            Currency::Bitcoin => Ok(LnNetwork::Bitcoin),
            Currency::BitcoinTestnet => Ok(LnNetwork::Testnet),
            Currency::Signet => Ok(LnNetwork::Signet),
            Currency::Regtest => Ok(LnNetwork::Regtest),
            Currency::Simnet => Err(LnError::UnknownNetwork(currency_name(&currency))),
        }
    }
}

/// A network name for an invoice's currency, including the ones a node never pays.
fn currency_name(currency: &Currency) -> String {
    match currency {
        Currency::Bitcoin => "bitcoin",
        Currency::BitcoinTestnet => "testnet",
        Currency::Signet => "signet",
        Currency::Regtest => "regtest",
        Currency::Simnet => "simnet",
    }
    .to_string()
}

/// Why an invoice cannot be paid for a settlement, or why paying it failed.
///
/// The messages are meant for humans: the CLI shows them as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LnError {
    /// The text is not a valid BOLT11 invoice (bad encoding, bad signature, missing fields).
    #[error("this is not a valid Lightning invoice: {0}")]
    Malformed(String),
    /// A network name that is not one of bitcoin, testnet, signet or regtest.
    #[error("unknown Lightning network \"{0}\" (expected bitcoin, testnet, signet or regtest)")]
    UnknownNetwork(String),
    /// The invoice is for another network than the one this node pays on.
    #[error("the invoice is for {got}, this node pays {expected} invoices")]
    WrongNetwork {
        /// The network this node pays on.
        expected: LnNetwork,
        /// The invoice's network (`simnet` is possible here).
        got: String,
    },
    /// The invoice has expired.
    #[error("the invoice expired at {expired_at} (unix seconds)")]
    Expired {
        /// When it expired, in Unix seconds.
        expired_at: u64,
    },
    /// The invoice does not name an amount, so it cannot be checked against the settlement.
    #[error("the invoice has no amount; ask for an invoice with the settlement's amount")]
    NoAmount,
    /// The invoice asks for another amount than the settlement's.
    #[error("the invoice asks {invoice_msat} msat, the settlement is for {expected_msat} msat")]
    WrongAmount {
        /// What the invoice asks, in millisatoshis.
        invoice_msat: u64,
        /// What the settlement is for, in millisatoshis.
        expected_msat: u64,
    },
    /// The preimage does not hash to the invoice's payment hash.
    #[error("the preimage does not hash to the invoice's payment hash")]
    WrongPreimage,
    /// The text is not a preimage (64 hex characters).
    #[error("a preimage is 64 hex characters (32 bytes); got {0:?}")]
    BadPreimage(String),
    /// The wallet command could not be started.
    #[error("could not run the Lightning wallet command: {0}")]
    Spawn(String),
    /// The wallet command did not finish in time. It was killed, but the payment may still go
    /// through; running it again for the same invoice is safe.
    #[error(
        "the Lightning wallet command did not finish within {timeout:?}; the payment may \
         still complete, paying the same invoice again is safe"
    )]
    Timeout {
        /// The time limit that passed.
        timeout: Duration,
    },
    /// The wallet command exited with an error.
    #[error("the Lightning wallet command failed ({status}): {stderr}")]
    CommandFailed {
        /// The exit status, as printed by the OS (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The last bytes (about 500) of what it printed on stderr.
        stderr: String,
    },
    /// The wallet command succeeded but printed no preimage.
    #[error(
        "the Lightning wallet command printed no payment preimage (expected JSON with \
         \"payment_preimage\" or 64 hex characters): {stdout:?}"
    )]
    NoPreimage {
        /// The first bytes (about 500) of what it printed on stdout.
        stdout: String,
    },
}

/// A parsed, signature-checked BOLT11 invoice: what settlement needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bolt11 {
    /// The invoice text, without a `lightning:` prefix, trimmed and lowercase.
    pub invoice: String,
    /// The payment hash: SHA-256 of the preimage the wallet gets when it pays.
    pub payment_hash: [u8; 32],
    /// The amount asked, in millisatoshis, if the invoice names one.
    pub amount_msat: Option<u64>,
    /// When the invoice was made, in Unix seconds.
    pub created_at: u64,
    /// When the invoice expires, in Unix seconds (saturating).
    pub expires_at: u64,
    /// Its network.
    pub network: LnNetwork,
    /// Its description; empty if the invoice carries only the hash of one.
    pub description: String,
}

/// Parses a BOLT11 invoice and checks it can be paid on `network` at time `now` (Unix seconds).
///
/// Accepts an optional `lightning:` prefix (any case) and an all-uppercase invoice (as in QR
/// codes). Checks the signature. Rejects an invoice for another network
/// ([`LnError::WrongNetwork`]) and one that has expired, `now >= expires_at`
/// ([`LnError::Expired`]). The amount is checked separately ([`check_amount`]).
pub fn parse_bolt11(text: &str, network: LnNetwork, now: u64) -> Result<Bolt11, LnError> {
    let mut s = text.trim();
    if s.len() >= 10 && s.is_char_boundary(10) && s[..10].eq_ignore_ascii_case("lightning:") {
        s = s[10..].trim_start_matches('/').trim();
    }
    // Bech32 is either all lowercase or all uppercase; the canonical form is lowercase.
    let lower = s.to_ascii_lowercase();
    let parsed = if s.bytes().any(|b| b.is_ascii_lowercase()) {
        Bolt11Invoice::from_str(s)
    } else {
        Bolt11Invoice::from_str(&lower)
    };
    let inv = parsed.map_err(|e| LnError::Malformed(e.to_string()))?;

    let currency = inv.currency();
    let got = match LnNetwork::try_from(currency.clone()) {
        Ok(n) => n,
        Err(_) => {
            return Err(LnError::WrongNetwork {
                expected: network,
                got: currency_name(&currency),
            });
        }
    };
    if got != network {
        return Err(LnError::WrongNetwork {
            expected: network,
            got: got.to_string(),
        });
    }

    let created_at = inv.duration_since_epoch().as_secs();
    let expires_at = created_at.saturating_add(inv.expiry_time().as_secs());
    if now >= expires_at {
        return Err(LnError::Expired {
            expired_at: expires_at,
        });
    }

    let hash: &[u8] = inv.payment_hash().as_ref();
    let payment_hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| LnError::Malformed("payment hash is not 32 bytes".to_string()))?;
    let description = match inv.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => d.to_string(),
        Bolt11InvoiceDescriptionRef::Hash(_) => String::new(),
    };
    Ok(Bolt11 {
        invoice: lower,
        payment_hash,
        amount_msat: inv.amount_milli_satoshis(),
        created_at,
        expires_at,
        network: got,
        description,
    })
}

/// Checks that the invoice asks exactly `amount_msat` millisatoshis.
pub fn check_amount(invoice: &Bolt11, amount_msat: u64) -> Result<(), LnError> {
    match invoice.amount_msat {
        None => Err(LnError::NoAmount),
        Some(a) if a == amount_msat => Ok(()),
        Some(a) => Err(LnError::WrongAmount {
            invoice_msat: a,
            expected_msat: amount_msat,
        }),
    }
}

/// Checks that SHA-256(`preimage`) is the invoice's payment hash (proof that it was paid).
pub fn check_preimage(invoice: &Bolt11, preimage: &[u8; 32]) -> Result<(), LnError> {
    let hash: [u8; 32] = Sha256::digest(preimage).into();
    if hash == invoice.payment_hash {
        Ok(())
    } else {
        Err(LnError::WrongPreimage)
    }
}

/// Parses a preimage typed by hand: 64 hex characters (surrounding whitespace ignored).
pub fn parse_preimage_hex(text: &str) -> Result<[u8; 32], LnError> {
    parse_hex32(text.trim()).ok_or_else(|| LnError::BadPreimage(cut_front(text.trim(), 80)))
}

/// Exactly 64 hex characters → 32 bytes.
fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let bytes = hex::decode(s).ok()?;
    bytes.try_into().ok()
}

/// At most `max` bytes from the start of `s`, cut at a character boundary.
fn cut_front(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// At most `max` bytes from the end of `s`, cut at a character boundary.
fn cut_back(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Finds the payment preimage in a wallet's stdout.
///
/// Candidates, in order: the string fields `payment_preimage` or `preimage` of every top-level
/// JSON object printed (all-zero values, which LND prints while a payment is in flight, are
/// skipped), then every whitespace-separated token of exactly 64 hex characters. The first
/// candidate that hashes to `payment_hash` wins; if none does, the first candidate is returned
/// (the caller then reports a wrong preimage).
fn find_preimage(stdout: &str, payment_hash: &[u8; 32]) -> Option<[u8; 32]> {
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    let stream = serde_json::Deserializer::from_str(stdout).into_iter::<serde_json::Value>();
    for value in stream {
        let Ok(value) = value else { break };
        for key in ["payment_preimage", "preimage"] {
            if let Some(p) = value
                .get(key)
                .and_then(|v| v.as_str())
                .and_then(parse_hex32)
                && p != [0u8; 32]
            {
                candidates.push(p);
            }
        }
    }
    candidates.extend(stdout.split_whitespace().filter_map(parse_hex32));
    candidates
        .iter()
        .find(|p| <[u8; 32]>::from(Sha256::digest(p)) == *payment_hash)
        .or_else(|| candidates.first())
        .copied()
}

/// Pays invoices by running the user's wallet command.
///
/// The command is run as `sh -c '<command> "$1"' atomicity-ln-pay <invoice>`: the invoice is
/// the command's last argument and is never put into the shell string. The environment also
/// has `ATOMICITY_INVOICE`, `ATOMICITY_PAYMENT_HASH` (hex) and `ATOMICITY_AMOUNT_MSAT` (empty
/// if the invoice has no amount). Stdin is empty. The command must pay the invoice and print
/// the payment preimage on stdout, either as JSON with a top-level string field
/// `payment_preimage` or `preimage` (as `lncli payinvoice --force --json`, Core Lightning's
/// `lightning-cli pay` and LDK-node style wallets print), or as a bare token of 64 hex
/// characters. A non-zero exit status means the payment failed.
///
/// **The command must be idempotent per invoice**: run again for an invoice it already paid,
/// it must not pay again but succeed with the same preimage. Every Lightning wallet refuses to
/// pay the same invoice twice (the payment hash identifies the payment) and reports the earlier
/// preimage; that is what makes retrying after a crash or a timeout safe, and the node relies
/// on it.
#[derive(Debug, Clone)]
pub struct LnPayer {
    command: String,
    timeout: Duration,
}

impl LnPayer {
    /// A payer running `command` (a shell command line, for example
    /// `lncli --network regtest payinvoice --force --json`), killed after `timeout`.
    pub fn new(command: String, timeout: Duration) -> LnPayer {
        LnPayer { command, timeout }
    }

    /// How long the command may run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The configured command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Pays `invoice` with the wallet command and returns the checked payment preimage.
    ///
    /// Errors: [`LnError::Spawn`], [`LnError::Timeout`] (the command is killed),
    /// [`LnError::CommandFailed`], [`LnError::NoPreimage`], [`LnError::WrongPreimage`].
    /// After a timeout or a crash, calling this again for the same invoice is safe as long as
    /// the command is idempotent per invoice (see [`LnPayer`]).
    pub async fn pay(&self, invoice: &Bolt11) -> Result<[u8; 32], LnError> {
        let amount = invoice
            .amount_msat
            .map(|a| a.to_string())
            .unwrap_or_default();
        let stdout = run_wallet_command(
            &self.command,
            "atomicity-ln-pay",
            &[invoice.invoice.as_str()],
            &[
                ("ATOMICITY_INVOICE", invoice.invoice.as_str()),
                ("ATOMICITY_PAYMENT_HASH", &hex::encode(invoice.payment_hash)),
                ("ATOMICITY_AMOUNT_MSAT", &amount),
            ],
            self.timeout,
        )
        .await?;
        let preimage =
            find_preimage(&stdout, &invoice.payment_hash).ok_or_else(|| LnError::NoPreimage {
                stdout: cut_front(&stdout, OUTPUT_KEEP),
            })?;
        check_preimage(invoice, &preimage)?;
        Ok(preimage)
    }
}

/// Makes Lightning invoices with the user's wallet, for the payment requests it is paid on
/// by Lightning: a command line (for example `lncli --network regtest addinvoice`) run as
/// `<command> <amount msat> <expiry seconds> <description>`, which prints the invoice (alone,
/// or inside JSON such as `{"payment_request": "lnbcrt..."}`).
#[derive(Debug, Clone)]
pub struct LnInvoicer {
    command: String,
    timeout: Duration,
}

impl LnInvoicer {
    /// An invoicer running `command`, killed after `timeout`.
    pub fn new(command: String, timeout: Duration) -> LnInvoicer {
        LnInvoicer { command, timeout }
    }

    /// An invoice for exactly `amount_msat` expiring in `expiry_secs`, checked: it parses on
    /// `network`, has not expired at `now` and asks exactly that amount.
    pub async fn invoice(
        &self,
        amount_msat: u64,
        expiry_secs: u64,
        description: &str,
        network: LnNetwork,
        now: u64,
    ) -> Result<Bolt11, LnError> {
        let (amount, expiry) = (amount_msat.to_string(), expiry_secs.to_string());
        let stdout = run_wallet_command(
            &self.command,
            "atomicity-ln-invoice",
            &[&amount, &expiry, description],
            &[],
            self.timeout,
        )
        .await?;
        let mut last_error = LnError::Malformed(format!(
            "the invoice command printed no invoice: {:?}",
            cut_front(&stdout, OUTPUT_KEEP)
        ));
        for word in stdout.split(|c: char| !c.is_ascii_alphanumeric()) {
            if !word.to_ascii_lowercase().starts_with("ln") || word.len() < 20 {
                continue;
            }
            match parse_bolt11(word, network, now) {
                Ok(invoice) => {
                    check_amount(&invoice, amount_msat)?;
                    return Ok(invoice);
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

/// Runs a wallet command line under `sh -c` with `args` as its positional arguments, in its
/// own process group (killed whole after `timeout`), and returns its stdout.
async fn run_wallet_command(
    command: &str,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<String, LnError> {
    let script = format!("{command} \"$@\"");
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(script).arg(name).args(args);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that a timeout kills the command with all its children.
    #[cfg(unix)]
    cmd.process_group(0);
    let child = cmd.spawn().map_err(|e| LnError::Spawn(e.to_string()))?;
    let pid = child.id();
    let wait = child.wait_with_output();
    tokio::pin!(wait);
    // Declared after `wait`, so if this future is dropped the group is killed before the
    // child is (kill_on_drop) and reaped.
    let mut group = GroupKiller(pid);
    let output = tokio::select! {
        output = &mut wait => {
            group.0 = None;
            output.map_err(|e| LnError::Spawn(e.to_string()))?
        }
        () = tokio::time::sleep(timeout) => {
            drop(group);
            return Err(LnError::Timeout { timeout });
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(LnError::CommandFailed {
            status: output.status.to_string(),
            stderr: cut_back(stderr.trim_end(), OUTPUT_KEEP),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Kills a wallet command's process group (its id is the command's pid) when dropped, unless
/// the command finished (`None`).
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // It may be gone already: nothing to do then.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Test support: real signed invoices and a fake wallet command that behaves like a real one
/// (idempotent per invoice). Public so that end-to-end tests in other crates can use it.
pub mod testing {
    use std::io::{self, Write};
    use std::path::Path;
    use std::time::Duration;

    use bitcoin::hashes::Hash;
    use bitcoin::hashes::sha256;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
    use sha2::{Digest, Sha256};

    use super::LnNetwork;

    /// The node secret key that signs the invoices of [`make_invoice`].
    pub const NODE_SECRET: [u8; 32] = [0x11; 32];
    /// The payment secret of the invoices of [`make_invoice`].
    pub const PAYMENT_SECRET: [u8; 32] = [0x22; 32];
    /// The name of the fake wallet's script in its directory.
    pub const FAKE_WALLET: &str = "fake-ln-wallet";

    /// A real signed BOLT11 invoice with payment hash SHA-256(`preimage`), signed by
    /// [`NODE_SECRET`], description "coffee", payment secret [`PAYMENT_SECRET`],
    /// `min_final_cltv_expiry_delta` 18, made at `created_at` (Unix seconds) and expiring
    /// `expiry_secs` later.
    pub fn make_invoice(
        preimage: [u8; 32],
        amount_msat: Option<u64>,
        expiry_secs: u64,
        network: LnNetwork,
        created_at: u64,
    ) -> Result<String, String> {
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&NODE_SECRET).map_err(|e| e.to_string())?;
        let hash: [u8; 32] = Sha256::digest(preimage).into();
        let builder = InvoiceBuilder::new(Currency::from(network))
            .description("coffee".to_string())
            .payment_hash(sha256::Hash::from_byte_array(hash))
            .payment_secret(PaymentSecret(PAYMENT_SECRET))
            .min_final_cltv_expiry_delta(18)
            .duration_since_epoch(Duration::from_secs(created_at))
            .expiry_time(Duration::from_secs(expiry_secs));
        let builder = match amount_msat {
            Some(a) => builder.amount_milli_satoshis(a),
            None => builder,
        };
        let invoice = builder
            .build_signed(|msg| secp.sign_ecdsa_recoverable(msg, &key))
            .map_err(|e| e.to_string())?;
        Ok(invoice.to_string())
    }

    const FAKE_WALLET_SCRIPT: &str = r#"#!/bin/sh
# A fake Lightning wallet for Atomicity tests. $1 is the invoice.
# Files next to this script:
#   preimages   lines "<invoice> <preimage hex>": the invoices it can pay
#   paid         the invoices it paid, one a line (written before answering)
#   calls        "pay <invoice>" or "repeat <invoice>", one a line
#   hang         if it exists: hang before doing anything
#   hang-after   if it exists: hang after recording a payment, before answering
dir=$(dirname "$0")
inv="$1"
if [ -e "$dir/hang" ]; then exec sleep 3600; fi
pre=""
if [ -f "$dir/preimages" ]; then
  pre=$(awk -v inv="$inv" '$1 == inv { print $2; exit }' "$dir/preimages")
fi
if [ -z "$pre" ]; then
  echo "no route" >&2
  exit 1
fi
if [ -f "$dir/paid" ] && grep -qxF -- "$inv" "$dir/paid"; then
  echo "repeat $inv" >> "$dir/calls"
else
  echo "$inv" >> "$dir/paid"
  echo "pay $inv" >> "$dir/calls"
  if [ -e "$dir/hang-after" ]; then exec sleep 3600; fi
fi
printf '{"payment_preimage":"%s"}\n' "$pre"
"#;

    /// Writes the fake wallet script `dir/fake-ln-wallet` (executable) and returns the command
    /// line to configure as the node's `--ln-pay-cmd`: `sh '<dir>/fake-ln-wallet'`. (Running it
    /// through `sh` rather than executing it avoids the "text file busy" race when a test
    /// process writes the script while another thread forks.)
    ///
    /// The wallet gets the invoice as `$1` and looks it up in `dir/preimages` (see
    /// [`add_fake_invoice`]); for an unknown invoice it prints "no route" on stderr and exits
    /// with status 1. Like a real wallet it pays each invoice once: the first call appends the
    /// invoice to `dir/paid` (before printing anything, so a crash after paying is still
    /// recorded) and `pay <invoice>` to `dir/calls`; a later call for the same invoice appends
    /// `repeat <invoice>` to `dir/calls`. Both print `{"payment_preimage":"<hex>"}`.
    ///
    /// If the file `dir/hang` exists it hangs before doing anything; if `dir/hang-after` exists
    /// it hangs after recording a first payment, before printing the preimage.
    pub fn write_fake_wallet(dir: &Path) -> io::Result<String> {
        let path = dir.join(FAKE_WALLET);
        std::fs::write(&path, FAKE_WALLET_SCRIPT)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        let path = path.to_string_lossy().replace('\'', r"'\''");
        Ok(format!("sh '{path}'"))
    }

    /// Lets the fake wallet in `dir` pay `invoice`, answering with `preimage`.
    pub fn add_fake_invoice(dir: &Path, invoice: &str, preimage: &[u8; 32]) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("preimages"))?;
        writeln!(file, "{} {}", invoice.trim(), hex::encode(preimage))
    }

    /// The invoices the fake wallet in `dir` paid, in order (each once).
    pub fn fake_wallet_payments(dir: &Path) -> io::Result<Vec<String>> {
        read_lines(&dir.join("paid"))
    }

    /// The fake wallet's calls in `dir`: `pay <invoice>` or `repeat <invoice>`, in order.
    pub fn fake_wallet_calls(dir: &Path) -> io::Result<Vec<String>> {
        read_lines(&dir.join("calls"))
    }

    fn read_lines(path: &Path) -> io::Result<Vec<String>> {
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(s
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::testing::*;
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const P: [u8; 32] = [7; 32];

    fn invoice(amount: Option<u64>, network: LnNetwork) -> String {
        make_invoice(P, amount, 3600, network, NOW).unwrap()
    }

    fn parsed(amount: Option<u64>) -> Bolt11 {
        parse_bolt11(
            &invoice(amount, LnNetwork::Regtest),
            LnNetwork::Regtest,
            NOW + 1,
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        for network in [
            LnNetwork::Bitcoin,
            LnNetwork::Testnet,
            LnNetwork::Signet,
            LnNetwork::Regtest,
        ] {
            let text = invoice(Some(5_000_000), network);
            let b = parse_bolt11(&text, network, NOW).unwrap();
            assert_eq!(b.invoice, text);
            assert_eq!(b.payment_hash, <[u8; 32]>::from(Sha256::digest(P)));
            assert_eq!(b.amount_msat, Some(5_000_000));
            assert_eq!(b.created_at, NOW);
            assert_eq!(b.expires_at, NOW + 3600);
            assert_eq!(b.network, network);
            assert_eq!(b.description, "coffee");
            assert_eq!(network.to_string().parse::<LnNetwork>().unwrap(), network);
            assert_eq!(
                LnNetwork::try_from(Currency::from(network)).unwrap(),
                network
            );
        }
        assert_eq!("mainnet".parse::<LnNetwork>().unwrap(), LnNetwork::Bitcoin);
        assert_eq!(
            " Regtest ".parse::<LnNetwork>().unwrap(),
            LnNetwork::Regtest
        );
        assert!(matches!(
            "liquid".parse::<LnNetwork>(),
            Err(LnError::UnknownNetwork(_))
        ));
        assert!(LnNetwork::try_from(Currency::Simnet).is_err());
        assert!(invoice(None, LnNetwork::Regtest).starts_with("lnbcrt1"));
        assert!(invoice(None, LnNetwork::Signet).starts_with("lntbs1"));
    }

    #[test]
    fn huge_expiry_saturates() {
        let text = make_invoice(P, None, u64::MAX / 2, LnNetwork::Regtest, NOW);
        // The builder or the parser may refuse it; if it is accepted it must not overflow.
        if let Ok(text) = text
            && let Ok(b) = parse_bolt11(&text, LnNetwork::Regtest, NOW)
        {
            assert!(b.expires_at >= NOW);
        }
    }

    #[test]
    fn wrong_network() {
        let text = invoice(Some(1000), LnNetwork::Regtest);
        let err = parse_bolt11(&text, LnNetwork::Bitcoin, NOW).unwrap_err();
        assert_eq!(
            err,
            LnError::WrongNetwork {
                expected: LnNetwork::Bitcoin,
                got: "regtest".to_string()
            }
        );
        assert_eq!(
            err.to_string(),
            "the invoice is for regtest, this node pays bitcoin invoices"
        );
    }

    #[test]
    fn expired() {
        let text = invoice(Some(1000), LnNetwork::Regtest);
        assert!(parse_bolt11(&text, LnNetwork::Regtest, NOW + 3599).is_ok());
        let err = parse_bolt11(&text, LnNetwork::Regtest, NOW + 3600).unwrap_err();
        assert_eq!(
            err,
            LnError::Expired {
                expired_at: NOW + 3600
            }
        );
        assert!(err.to_string().contains(&(NOW + 3600).to_string()));
    }

    #[test]
    fn amounts() {
        let b = parsed(Some(6_000_000));
        assert_eq!(check_amount(&b, 6_000_000), Ok(()));
        let err = check_amount(&b, 5_000_000).unwrap_err();
        assert_eq!(
            err,
            LnError::WrongAmount {
                invoice_msat: 6_000_000,
                expected_msat: 5_000_000
            }
        );
        assert_eq!(
            err.to_string(),
            "the invoice asks 6000000 msat, the settlement is for 5000000 msat"
        );
        assert_eq!(
            check_amount(&parsed(None), 5_000_000),
            Err(LnError::NoAmount)
        );
        assert_eq!(parsed(None).amount_msat, None);
        // An amount that is not a whole number of satoshis.
        assert_eq!(parsed(Some(1_234_567)).amount_msat, Some(1_234_567));
    }

    #[test]
    fn preimages() {
        let b = parsed(Some(1000));
        assert_eq!(check_preimage(&b, &P), Ok(()));
        assert_eq!(check_preimage(&b, &[8; 32]), Err(LnError::WrongPreimage));
        assert_eq!(
            parse_preimage_hex(&format!("  {}\n", hex::encode(P))).unwrap(),
            P
        );
        assert_eq!(
            parse_preimage_hex(&hex::encode(P).to_uppercase()).unwrap(),
            P
        );
        assert!(matches!(
            parse_preimage_hex("abcd"),
            Err(LnError::BadPreimage(_))
        ));
        assert!(matches!(
            parse_preimage_hex(&"zz".repeat(32)),
            Err(LnError::BadPreimage(_))
        ));
        assert!(matches!(
            parse_preimage_hex("é".repeat(40).as_str()),
            Err(LnError::BadPreimage(_))
        ));
    }

    #[test]
    fn prefix_case_and_whitespace() {
        let text = invoice(Some(1000), LnNetwork::Regtest);
        for given in [
            format!("lightning:{text}"),
            format!("LIGHTNING:{text}"),
            format!("  Lightning:{text}\n"),
            format!("lightning://{text}"),
            format!("LIGHTNING:{}", text.to_uppercase()),
            text.to_uppercase(),
        ] {
            let b = parse_bolt11(&given, LnNetwork::Regtest, NOW).unwrap();
            assert_eq!(b.invoice, text);
        }
    }

    #[test]
    fn garbage() {
        let text = invoice(Some(1000), LnNetwork::Regtest);
        for bad in [
            String::new(),
            "hello".to_string(),
            "lightning:".to_string(),
            "é".repeat(20),
            format!("{}x", &text[..text.len() - 1]),
            text[..text.len() - 5].to_string(),
            // Mixed case is not bech32.
            format!("{}{}", &text[..20].to_uppercase(), &text[20..]),
        ] {
            let err = parse_bolt11(&bad, LnNetwork::Regtest, NOW).unwrap_err();
            assert!(matches!(err, LnError::Malformed(_)), "{bad:?}: {err:?}");
            assert!(
                err.to_string()
                    .starts_with("this is not a valid Lightning invoice: ")
            );
        }
    }

    #[test]
    fn find_preimage_forms() {
        let h: [u8; 32] = Sha256::digest(P).into();
        let p = hex::encode(P);
        let zero = hex::encode([0u8; 32]);
        let other = hex::encode([9u8; 32]);
        assert_eq!(find_preimage(&format!("{p}\n"), &h), Some(P));
        assert_eq!(
            find_preimage(&format!("{{\"preimage\": \"{p}\"}}"), &h),
            Some(P)
        );
        // LND streams updates with an all-zero preimage before the final one.
        let lnd = format!(
            "{{\"status\":\"IN_FLIGHT\",\"payment_preimage\":\"{zero}\"}}\n\
             {{\"status\":\"SUCCEEDED\",\"payment_preimage\":\"{p}\"}}"
        );
        assert_eq!(find_preimage(&lnd, &h), Some(P));
        // The payment hash printed first does not get in the way.
        assert_eq!(
            find_preimage(&format!("hash {} preimage {p}", hex::encode(h)), &h),
            Some(P)
        );
        assert_eq!(find_preimage(&other, &h), Some([9; 32]));
        assert_eq!(find_preimage("paid!", &h), None);
        assert_eq!(
            find_preimage(&format!("{{\"preimage\": \"{zero}\"}}"), &h),
            None
        );
    }

    fn payer(cmd: &str) -> LnPayer {
        LnPayer::new(cmd.to_string(), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn pay_bare_hex_and_env() {
        let b = parsed(Some(1000));
        let p = hex::encode(P);
        let got = payer(&format!("echo {p}; true")).pay(&b).await.unwrap();
        assert_eq!(got, P);
        // The invoice arrives as $1 and in the environment.
        let cmd = format!(
            "f() {{ [ \"$1\" = \"$ATOMICITY_INVOICE\" ] && [ \"$ATOMICITY_AMOUNT_MSAT\" = 1000 ] \
             && [ \"$ATOMICITY_PAYMENT_HASH\" = {} ] && echo {p}; }}; f",
            hex::encode(b.payment_hash)
        );
        assert_eq!(payer(&cmd).pay(&b).await.unwrap(), P);
        let none = parsed(None);
        let cmd = format!("f() {{ [ -z \"$ATOMICITY_AMOUNT_MSAT\" ] && echo {p}; }}; f");
        assert_eq!(payer(&cmd).pay(&none).await.unwrap(), P);
    }

    #[tokio::test]
    async fn pay_invoice_is_not_interpolated() {
        // A hostile "invoice" would be harmless: it is only ever an argument.
        let mut b = parsed(Some(1000));
        b.invoice = "$(echo pwned >&2; exit 3)`exit 4`;exit 5".to_string();
        let cmd = format!(
            "f() {{ printf '%s' \"$1\" >&2; echo {}; }}; f",
            hex::encode(P)
        );
        assert_eq!(payer(&cmd).pay(&b).await.unwrap(), P);
    }

    #[tokio::test]
    async fn pay_json() {
        let b = parsed(Some(1000));
        let cmd = format!(
            "echo '{{\"payment_hash\":\"{}\",\"payment_preimage\":\"{}\",\"status\":\"complete\"}}'; true",
            hex::encode(b.payment_hash),
            hex::encode(P)
        );
        assert_eq!(payer(&cmd).pay(&b).await.unwrap(), P);
    }

    #[tokio::test]
    async fn pay_fails() {
        let b = parsed(Some(1000));
        let long = "x".repeat(2000);
        let cmd = format!("echo {long} >&2; echo 'no route found' >&2; exit 1; true");
        let err = payer(&cmd).pay(&b).await.unwrap_err();
        let LnError::CommandFailed { status, stderr } = &err else {
            panic!("{err:?}")
        };
        assert!(status.contains('1'), "{status}");
        assert!(stderr.ends_with("no route found"), "{stderr}");
        assert!(stderr.len() <= 500);
        assert!(err.to_string().contains("no route found"));
    }

    #[tokio::test]
    async fn pay_wrong_or_missing_preimage() {
        let b = parsed(Some(1000));
        let cmd = format!("echo {}; true", hex::encode([8u8; 32]));
        assert_eq!(payer(&cmd).pay(&b).await, Err(LnError::WrongPreimage));
        let cmd = format!(
            "echo '{{\"payment_preimage\":\"{}\"}}'; true",
            hex::encode([8u8; 32])
        );
        assert_eq!(payer(&cmd).pay(&b).await, Err(LnError::WrongPreimage));
        let err = payer(&format!("echo paid {}; true", "y".repeat(1000)))
            .pay(&b)
            .await;
        let Err(LnError::NoPreimage { stdout }) = err else {
            panic!("{err:?}")
        };
        assert!(stdout.starts_with("paid y"));
        assert!(stdout.len() <= 500);
    }

    #[tokio::test]
    async fn pay_timeout() {
        let b = parsed(Some(1000));
        let payer = LnPayer::new("sleep 5; true".to_string(), Duration::from_millis(200));
        let start = std::time::Instant::now();
        let err = payer.pay(&b).await.unwrap_err();
        assert_eq!(
            err,
            LnError::Timeout {
                timeout: Duration::from_millis(200)
            }
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        let err = LnPayer::new("no-such-wallet-command".to_string(), Duration::from_secs(5))
            .pay(&b)
            .await
            .unwrap_err();
        assert!(matches!(err, LnError::CommandFailed { .. }), "{err:?}");
    }

    /// Whether the process `pid` is gone (or a zombie), waiting up to 3 s for it.
    #[cfg(target_os = "linux")]
    async fn gone(pid: &str) -> bool {
        for _ in 0..60 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .unwrap()
                        .trim_start()
                        .starts_with('Z') =>
                {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        false
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn timeout_and_drop_kill_the_children() {
        let dir = tempfile::tempdir().unwrap();
        let b = parsed(Some(1000));
        for (i, drop_it) in [false, true].into_iter().enumerate() {
            let file = dir.path().join(format!("pid{i}"));
            let cmd = format!("sleep 30 & echo $! > '{}'; wait; true", file.display());
            let payer = LnPayer::new(cmd, Duration::from_millis(if drop_it { 5000 } else { 300 }));
            if drop_it {
                let pay = payer.pay(&b);
                assert!(
                    tokio::time::timeout(Duration::from_millis(300), pay)
                        .await
                        .is_err()
                );
            } else {
                assert!(matches!(payer.pay(&b).await, Err(LnError::Timeout { .. })));
            }
            let pid = std::fs::read_to_string(&file).unwrap();
            assert!(
                gone(pid.trim()).await,
                "the wallet's child {pid} still runs"
            );
        }
    }

    #[tokio::test]
    async fn fake_wallet() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = write_fake_wallet(dir.path()).unwrap();
        let payer = LnPayer::new(cmd, Duration::from_secs(10));

        // Unknown invoice: no route.
        let b = parsed(Some(1000));
        let err = payer.pay(&b).await.unwrap_err();
        assert!(
            matches!(&err, LnError::CommandFailed { stderr, .. } if stderr == "no route"),
            "{err:?}"
        );
        assert!(fake_wallet_payments(dir.path()).unwrap().is_empty());

        add_fake_invoice(dir.path(), &b.invoice, &P).unwrap();
        let other = make_invoice([3; 32], Some(5), 3600, LnNetwork::Regtest, NOW).unwrap();
        add_fake_invoice(dir.path(), &other, &[3; 32]).unwrap();

        assert_eq!(payer.pay(&b).await.unwrap(), P);
        assert_eq!(payer.pay(&b).await.unwrap(), P);
        assert_eq!(
            fake_wallet_payments(dir.path()).unwrap(),
            vec![b.invoice.clone()]
        );
        assert_eq!(
            fake_wallet_calls(dir.path()).unwrap(),
            vec![
                format!("pay {}", b.invoice),
                format!("repeat {}", b.invoice)
            ]
        );

        let o = parse_bolt11(&other, LnNetwork::Regtest, NOW).unwrap();
        assert_eq!(payer.pay(&o).await.unwrap(), [3; 32]);
        assert_eq!(
            fake_wallet_payments(dir.path()).unwrap(),
            vec![b.invoice.clone(), other]
        );

        // Hanging wallets time out; hang-after records the payment first.
        let third = make_invoice([4; 32], Some(5), 3600, LnNetwork::Regtest, NOW).unwrap();
        add_fake_invoice(dir.path(), &third, &[4; 32]).unwrap();
        let t = parse_bolt11(&third, LnNetwork::Regtest, NOW).unwrap();
        let quick = LnPayer::new(payer.command().to_string(), Duration::from_millis(300));
        std::fs::write(dir.path().join("hang"), "").unwrap();
        assert!(matches!(quick.pay(&t).await, Err(LnError::Timeout { .. })));
        assert_eq!(fake_wallet_payments(dir.path()).unwrap().len(), 2);
        std::fs::remove_file(dir.path().join("hang")).unwrap();
        std::fs::write(dir.path().join("hang-after"), "").unwrap();
        assert!(matches!(quick.pay(&t).await, Err(LnError::Timeout { .. })));
        assert_eq!(fake_wallet_payments(dir.path()).unwrap().len(), 3);
        std::fs::remove_file(dir.path().join("hang-after")).unwrap();
        assert_eq!(payer.pay(&t).await.unwrap(), [4; 32]);
        assert_eq!(fake_wallet_payments(dir.path()).unwrap().len(), 3);
        assert_eq!(
            fake_wallet_calls(dir.path()).unwrap().last().unwrap(),
            &format!("repeat {third}")
        );
    }

    #[tokio::test]
    async fn fake_wallet_path_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("it's a dir");
        std::fs::create_dir(&sub).unwrap();
        let cmd = write_fake_wallet(&sub).unwrap();
        let b = parsed(Some(1000));
        add_fake_invoice(&sub, &b.invoice, &P).unwrap();
        assert_eq!(
            LnPayer::new(cmd, Duration::from_secs(10))
                .pay(&b)
                .await
                .unwrap(),
            P
        );
        assert_eq!(fake_wallet_payments(&sub).unwrap().len(), 1);
    }
}
