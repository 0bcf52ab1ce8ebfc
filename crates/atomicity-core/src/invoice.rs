//! Invoices: what a payee hands a payer, as an `atomicity:` URI.
//!
//! ```text
//! atomicity:<payee z-base32>?amount=10.00&asset=USD&hash=<64 hex>&expires=<unix seconds>
//!          &witness=<log vkey>;<start block>;<deadline block>[&cosigners=<threshold> <vkey>..]
//!          [&witness=...][&memo=<text>]
//! ```
//!
//! A `cosigners` field belongs to the `witness` field before it: the cosigners whose
//! cosignatures that log's checkpoint needs, and how many of them.
//!
//! Query values are form-urlencoded (a verifier key's `+` becomes `%2B`). Every routed IOU of
//! the payment carries exactly this condition and deadline; the payee refuses any other.

use pkarr::PublicKey;
use thiserror::Error;

use crate::amount::{Amount, Asset};
use crate::condition::{
    MAX_COSIGNERS, MAX_VKEY_LEN, MAX_WITNESSES, WitnessCondition, WitnessTerms,
};
use crate::objects::MAX_MEMO_LEN;

/// The URI scheme.
pub const SCHEME: &str = "atomicity:";

/// A payee's request to be paid through the credit network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    /// Who is paid.
    pub payee: PublicKey,
    /// How much the payee must receive.
    pub amount: Amount,
    /// The asset.
    pub asset: Asset,
    /// The payment hash and the witness logs the payee will publish on.
    pub condition: WitnessCondition,
    /// The hard deadline T* (unix seconds): every part's `expires_at`.
    pub expires_at: u64,
    /// A note for the payer.
    pub memo: String,
}

/// Why a string is not an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvoiceError {
    /// Not an `atomicity:` URI.
    #[error("an invoice starts with `atomicity:`")]
    Scheme,
    /// The payee key does not parse.
    #[error("bad payee key: {0}")]
    Payee(String),
    /// A field is missing.
    #[error("the invoice has no {0}")]
    Missing(&'static str),
    /// A field does not parse.
    #[error("bad {field}: {why}")]
    Bad {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

fn bad(field: &'static str, why: impl ToString) -> InvoiceError {
    InvoiceError::Bad {
        field,
        why: why.to_string(),
    }
}

impl Invoice {
    /// The `atomicity:` URI.
    pub fn to_uri(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("amount", &self.asset.format(self.amount));
        query.append_pair("asset", &self.asset.to_string());
        query.append_pair("hash", &hex::encode(self.condition.hash));
        query.append_pair("expires", &self.expires_at.to_string());
        for w in &self.condition.witnesses {
            query.append_pair(
                "witness",
                &format!("{};{};{}", w.log, w.start_block, w.deadline_block),
            );
            if !w.cosigners.is_empty() {
                query.append_pair(
                    "cosigners",
                    &format!("{} {}", w.threshold, w.cosigners.join(" ")),
                );
            }
        }
        if !self.memo.is_empty() {
            query.append_pair("memo", &self.memo);
        }
        format!("{SCHEME}{}?{}", self.payee.to_z32(), query.finish())
    }

    /// Parses and checks an `atomicity:` URI.
    pub fn parse(uri: &str) -> Result<Invoice, InvoiceError> {
        let rest = uri
            .trim()
            .strip_prefix(SCHEME)
            .ok_or(InvoiceError::Scheme)?;
        let (payee, query) = rest
            .split_once('?')
            .ok_or(InvoiceError::Missing("amount"))?;
        let payee = crate::parse_key(payee).map_err(InvoiceError::Payee)?;
        let (mut amount, mut asset, mut hash, mut expires, mut memo) =
            (None, None, None, None, String::new());
        let mut witnesses = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "amount" => amount = Some(value.into_owned()),
                "asset" => asset = Some(value.parse::<Asset>().map_err(|e| bad("asset", e))?),
                "hash" => {
                    let bytes = hex::decode(value.as_ref()).map_err(|e| bad("hash", e))?;
                    hash = Some(
                        <[u8; 32]>::try_from(bytes.as_slice())
                            .map_err(|_| bad("hash", "not 32 bytes"))?,
                    );
                }
                "expires" => expires = Some(value.parse::<u64>().map_err(|e| bad("expires", e))?),
                "witness" => {
                    let terms = parse_witness(&value)?;
                    if witnesses.iter().any(|w: &WitnessTerms| w.log == terms.log) {
                        return Err(bad("witness", "a log is listed twice"));
                    }
                    witnesses.push(terms);
                }
                "cosigners" => {
                    let Some(terms) = witnesses.last_mut() else {
                        return Err(bad("cosigners", "must follow the witness it is for"));
                    };
                    if !terms.cosigners.is_empty() {
                        return Err(bad("cosigners", "given twice for one witness"));
                    }
                    (terms.threshold, terms.cosigners) = parse_cosigners(&value)?;
                }
                "memo" => memo = value.into_owned(),
                // Unknown fields are for later versions: ignored.
                _ => {}
            }
        }
        let asset = asset.ok_or(InvoiceError::Missing("asset"))?;
        let amount = asset
            .parse_amount(&amount.ok_or(InvoiceError::Missing("amount"))?)
            .map_err(|e| bad("amount", e))?;
        if amount.is_zero() {
            return Err(bad("amount", "must be greater than zero"));
        }
        if witnesses.is_empty() {
            return Err(InvoiceError::Missing("witness"));
        }
        if witnesses.len() > MAX_WITNESSES {
            return Err(bad("witness", format!("more than {MAX_WITNESSES}")));
        }
        if memo.len() > MAX_MEMO_LEN {
            return Err(bad("memo", format!("longer than {MAX_MEMO_LEN} bytes")));
        }
        Ok(Invoice {
            payee,
            amount,
            asset,
            condition: WitnessCondition {
                hash: hash.ok_or(InvoiceError::Missing("hash"))?,
                witnesses,
            },
            expires_at: expires.ok_or(InvoiceError::Missing("expires"))?,
            memo,
        })
    }
}

fn parse_witness(value: &str) -> Result<WitnessTerms, InvoiceError> {
    // From the right: a log's name may contain `;`, the block numbers cannot.
    let mut fields = value.rsplitn(3, ';');
    let (Some(deadline), Some(start), Some(log)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad(
            "witness",
            "expected <vkey>;<start block>;<deadline block>",
        ));
    };
    if log.len() > MAX_VKEY_LEN {
        return Err(bad(
            "witness",
            format!("key longer than {MAX_VKEY_LEN} bytes"),
        ));
    }
    crate::condition::log_verifier(log).map_err(|e| bad("witness", e))?;
    let start: u64 = start.parse().map_err(|e| bad("witness start block", e))?;
    let deadline: u64 = deadline
        .parse()
        .map_err(|e| bad("witness deadline block", e))?;
    if deadline <= start {
        return Err(bad(
            "witness",
            "the deadline block must be after the start block",
        ));
    }
    Ok(WitnessTerms::new(log.to_string(), start, deadline))
}

/// `<threshold> <vkey> [<vkey>..]`: key names hold no whitespace, so a space separates them.
fn parse_cosigners(value: &str) -> Result<(u8, Vec<String>), InvoiceError> {
    let mut fields = value.split(' ');
    let threshold: u8 = fields
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| bad("cosigners threshold", e))?;
    let mut cosigners: Vec<String> = Vec::new();
    for vkey in fields {
        if vkey.len() > MAX_VKEY_LEN {
            return Err(bad(
                "cosigners",
                format!("key longer than {MAX_VKEY_LEN} bytes"),
            ));
        }
        crate::condition::cosigner_verifier(vkey).map_err(|e| bad("cosigners", e))?;
        if cosigners.iter().any(|c| c == vkey) {
            return Err(bad("cosigners", "a cosigner is listed twice"));
        }
        cosigners.push(vkey.to_string());
    }
    if cosigners.is_empty() || cosigners.len() > MAX_COSIGNERS {
        return Err(bad(
            "cosigners",
            format!("expected 1 to {MAX_COSIGNERS} cosigner keys"),
        ));
    }
    if threshold == 0 || usize::from(threshold) > cosigners.len() {
        return Err(bad(
            "cosigners threshold",
            format!("must be 1 to {} (the number of cosigners)", cosigners.len()),
        ));
    }
    Ok((threshold, cosigners))
}
