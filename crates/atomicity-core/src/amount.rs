//! Assets and exact amounts.
//!
//! An [`Amount`] is a count of an asset's minor units (cents for `USD:2`). There are no floats
//! anywhere: decimal strings are parsed and printed digit by digit with the asset's scale, and
//! every operation that could overflow is checked. A line's cumulative [`Total`] is 128-bit:
//! it only ever grows, so it must outlast any realistic turnover even at scale 18.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The largest scale an asset may have: 10^18 still fits in a `u64`.
pub const MAX_SCALE: u8 = 18;
/// The longest asset code.
pub const MAX_CODE_LEN: usize = 12;

/// Assets whose scale everybody agrees on, so that users may write just the code.
const WELL_KNOWN: &[(&str, u8)] = &[
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("JPY", 0),
    ("BTC", 8),
    ("SAT", 0),
    ("HOUR", 2),
];

/// An asset: a ticker code and the number of decimal places of its minor unit.
///
/// `USD:2` and `USD:0` are different assets; a line is always in exactly one of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asset {
    code: String,
    scale: u8,
}

/// Why an asset or amount string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    /// The code is empty, too long, or has characters other than `A-Z` and `0-9`.
    #[error("asset code {0:?} must be 1-12 characters A-Z or 0-9")]
    BadCode(String),
    /// The scale is above [`MAX_SCALE`].
    #[error("asset scale {0} is above the maximum of 18")]
    BadScale(u8),
    /// A code that is not well known was given without a scale.
    #[error("unknown asset {0}: give its scale too, e.g. {0}:2")]
    UnknownAsset(String),
    /// The decimal string is not of the form `123` or `123.45`.
    #[error("{0:?} is not a decimal amount like 5 or 5.00")]
    BadDecimal(String),
    /// More decimal places than the asset has.
    #[error("{amount:?} has more than {scale} decimal places")]
    TooPrecise {
        /// The string given.
        amount: String,
        /// The asset's scale.
        scale: u8,
    },
    /// The value does not fit in a `u64` of minor units.
    #[error("{0:?} is too large")]
    Overflow(String),
}

impl Asset {
    /// An asset from a code and scale, checking both.
    pub fn new(code: &str, scale: u8) -> Result<Asset, AmountError> {
        let valid = !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !valid {
            return Err(AmountError::BadCode(code.to_string()));
        }
        if scale > MAX_SCALE {
            return Err(AmountError::BadScale(scale));
        }
        Ok(Asset {
            code: code.to_string(),
            scale,
        })
    }

    /// The ticker code, e.g. `USD`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Decimal places of the minor unit, e.g. 2 for cents.
    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// Parses a decimal string such as `5`, `5.00` or `0.25` into minor units of this asset.
    pub fn parse_amount(&self, s: &str) -> Result<Amount, AmountError> {
        Amount::parse(s, self.scale)
    }

    /// Formats an amount of this asset with exactly `scale` decimal places.
    pub fn format(&self, amount: Amount) -> String {
        amount.to_decimal(self.scale)
    }

    /// Formats a line's cumulative total of this asset with exactly `scale` decimal places.
    pub fn format_total(&self, total: Total) -> String {
        format_minor(total.minor(), self.scale)
    }

    /// Formats a signed quantity (a net position) of this asset.
    pub fn format_signed(&self, value: i128) -> String {
        let magnitude = value.unsigned_abs();
        let digits = format_minor(magnitude, self.scale);
        if value < 0 {
            format!("-{digits}")
        } else {
            digits
        }
    }
}

/// `USD` (well-known code) or `CODE:SCALE` (any asset).
impl FromStr for Asset {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Asset, AmountError> {
        match s.split_once(':') {
            Some((code, scale)) => {
                let scale: u8 = scale
                    .parse()
                    .map_err(|_| AmountError::BadCode(s.to_string()))?;
                Asset::new(code, scale)
            }
            None => {
                let upper = s.to_ascii_uppercase();
                match WELL_KNOWN.iter().find(|(code, _)| *code == upper) {
                    Some((code, scale)) => Asset::new(code, *scale),
                    None => {
                        Asset::new(&upper, 0)?;
                        Err(AmountError::UnknownAsset(upper))
                    }
                }
            }
        }
    }
}

/// Shows `USD` for well-known assets with their usual scale, `CODE:SCALE` otherwise, so that the
/// output always parses back to the same asset.
impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let well_known = WELL_KNOWN
            .iter()
            .any(|(code, scale)| *code == self.code && *scale == self.scale);
        if well_known {
            f.write_str(&self.code)
        } else {
            write!(f, "{}:{}", self.code, self.scale)
        }
    }
}

/// A non-negative count of an asset's minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// An amount of `minor` minor units.
    pub const fn from_minor(minor: u64) -> Amount {
        Amount(minor)
    }

    /// The count of minor units.
    pub const fn minor(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would go below zero.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses `123`, `123.4` or `123.45` (at most `scale` decimals) into minor units.
    pub fn parse(s: &str, scale: u8) -> Result<Amount, AmountError> {
        let bad = || AmountError::BadDecimal(s.to_string());
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(frac) {
            return Err(bad());
        }
        if s.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        if frac.len() > usize::from(scale) {
            return Err(AmountError::TooPrecise {
                amount: s.to_string(),
                scale,
            });
        }
        let overflow = || AmountError::Overflow(s.to_string());
        let mut value: u64 = 0;
        let padded = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(scale.into());
        for b in whole.bytes().chain(padded) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(overflow)?;
        }
        Ok(Amount(value))
    }

    /// Formats with exactly `scale` decimal places: `Amount(500).to_decimal(2) == "5.00"`.
    pub fn to_decimal(self, scale: u8) -> String {
        format_minor(u128::from(self.0), scale)
    }
}

/// A line's cumulative total in minor units: everything ever issued on it. It only grows.
///
/// Single amounts and limits are [`Amount`]s (`u64`), but a total adds up a line's whole
/// lifetime of payments, back and forth, while the net debt stays small. At scale 18 a `u64`
/// holds only ~18.4 whole units, so totals are `u128`: 2^64 payments of the largest amount
/// still fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Total(u128);

impl Total {
    /// Nothing issued yet.
    pub const ZERO: Total = Total(0);

    /// A total of `minor` minor units.
    pub const fn from_minor(minor: u128) -> Total {
        Total(minor)
    }

    /// The count of minor units.
    pub const fn minor(self) -> u128 {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + amount`, or `None` on overflow (beyond 2^128 minor units).
    pub fn checked_add(self, amount: Amount) -> Option<Total> {
        self.0.checked_add(u128::from(amount.minor())).map(Total)
    }

    /// How much `self` grew since `earlier`, or `None` if it is smaller than `earlier`.
    pub fn checked_sub(self, earlier: Total) -> Option<u128> {
        self.0.checked_sub(earlier.0)
    }
}

impl From<Amount> for Total {
    fn from(amount: Amount) -> Total {
        Total(u128::from(amount.minor()))
    }
}

fn format_minor(value: u128, scale: u8) -> String {
    let digits = value.to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, frac) = padded.split_at(padded.len() - scale);
    format!("{whole}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Asset {
        "USD".parse().expect("usd")
    }

    #[test]
    fn parses_and_prints_decimal_strings() {
        let usd = usd();
        for (text, minor, shown) in [
            ("5", 500, "5.00"),
            ("5.0", 500, "5.00"),
            ("5.00", 500, "5.00"),
            ("0.25", 25, "0.25"),
            ("0", 0, "0.00"),
            ("007.10", 710, "7.10"),
        ] {
            let amount = usd.parse_amount(text).expect(text);
            assert_eq!(amount.minor(), minor, "{text}");
            assert_eq!(usd.format(amount), shown);
        }
    }

    #[test]
    fn rejects_bad_decimal_strings() {
        let usd = usd();
        for text in [
            "", ".", "5.", ".5", "-1", "+1", "1e3", "1,00", " 1", "1 ", "0x10", "1.2.3",
        ] {
            assert!(
                matches!(usd.parse_amount(text), Err(AmountError::BadDecimal(_))),
                "{text:?}"
            );
        }
        assert!(matches!(
            usd.parse_amount("1.001"),
            Err(AmountError::TooPrecise { .. })
        ));
        assert!(matches!(
            usd.parse_amount("184467440737095516.16"),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!(
            usd.parse_amount("184467440737095516.15").map(Amount::minor),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn asset_codes_and_scales() {
        assert_eq!(usd().scale(), 2);
        assert_eq!("btc".parse::<Asset>().map(|a| a.scale()), Ok(8));
        assert_eq!(
            "HOUR:0".parse::<Asset>().map(|a| a.to_string()),
            Ok("HOUR:0".to_string())
        );
        assert_eq!(
            "XYZ".parse::<Asset>(),
            Err(AmountError::UnknownAsset("XYZ".into()))
        );
        assert!("XYZ:19".parse::<Asset>().is_err());
        assert!("ABCDEFGHIJKLM:2".parse::<Asset>().is_err());
        assert!("us-d:2".parse::<Asset>().is_err());
        assert!(":2".parse::<Asset>().is_err());
        assert_eq!(usd().format_signed(-1234), "-12.34");
        assert_eq!(usd().format_signed(5), "0.05");
    }

    #[test]
    fn checked_arithmetic() {
        let max = Amount::from_minor(u64::MAX);
        assert_eq!(max.checked_add(Amount::from_minor(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::from_minor(1)), None);
    }

    #[test]
    fn totals_go_past_u64() {
        let max = Amount::from_minor(u64::MAX);
        let two_max = Total::from(max).checked_add(max).expect("fits");
        assert_eq!(two_max.minor(), 2 * u128::from(u64::MAX));
        assert!(two_max > Total::from(max));
        assert_eq!(
            two_max.checked_sub(Total::from(max)),
            Some(u128::from(u64::MAX))
        );
        assert_eq!(Total::from(max).checked_sub(two_max), None);
        assert_eq!(Total::ZERO.checked_sub(Total::ZERO), Some(0));
        assert_eq!(
            Total::from_minor(u128::MAX).checked_add(Amount::from_minor(1)),
            None
        );
        assert_eq!(
            Total::from_minor(u128::MAX).checked_add(Amount::ZERO),
            Some(Total::from_minor(u128::MAX))
        );
        assert!(Total::ZERO.is_zero() && Total::default().is_zero());
        assert!(!Total::from_minor(1).is_zero());
    }

    #[test]
    fn formats_totals() {
        let usd = usd();
        assert_eq!(usd.format_total(Total::ZERO), "0.00");
        assert_eq!(usd.format_total(Total::from_minor(12_345)), "123.45");
        assert_eq!(usd.format_total(Total::from_minor(5)), "0.05");
        // 2^64 minor units of a scale-18 asset: ~18.4 whole units.
        let eth = Asset::new("ETH", 18).expect("eth");
        assert_eq!(
            eth.format_total(Total::from_minor(1 << 64)),
            "18.446744073709551616"
        );
        assert_eq!(
            eth.format_total(Total::from_minor(u128::MAX)),
            "340282366920938463463.374607431768211455"
        );
        assert_eq!(
            Asset::new("SAT", 0)
                .expect("sat")
                .format_total(Total::from_minor(u128::MAX)),
            u128::MAX.to_string()
        );
    }
}
