//! Money: integer counts of a currency's minor unit, never floats.
//!
//! # Rounding rule
//!
//! A share computed as a percentage is `floor(amount x rate / 10000)`, with the
//! rate in basis points (8000 = 80%), computed once per line and per rule (the
//! ticket moderateur rule, the overrun rule, the out-of-basket rule). The
//! amounts are never negative, so floor is rounding towards zero; the
//! fraction of a minor unit that rounding leaves stays with the patient share
//! P, which is always computed as B - S - M. This is the only rounding
//! anywhere in passerelle.

/// An amount in a currency's minor unit (XOF: francs, no decimals).
pub type Amount = i64;

/// A rate in basis points: 10000 = 100%.
pub type BasisPoints = u32;

/// 100% in basis points.
pub const FULL: BasisPoints = 10_000;

/// `floor(amount x bp / 10000)` for a non-negative amount; see the module's
/// rounding rule. A rate above 100% is treated as 100%.
pub fn apply_rate(amount: Amount, bp: BasisPoints) -> Amount {
    let bp = bp.min(FULL);
    let amount = amount.max(0);
    // i128: amount x 10000 cannot overflow.
    ((amount as i128 * bp as i128) / FULL as i128) as Amount
}

/// The minor unit (decimal places) of every ISO 4217 currency in use: XOF
/// has 0, most have 2, BHD, IQD, JOD, KWD, LYD, OMR and TND 3, CLF and UYW 4.
/// `None` for a code that is not in the list, withdrawn (HRK, SLL, ZWL,
/// BGN, ...) or without minor unit (gold, SDR, the testing code XXX): no
/// amount in such a code can be read or written exactly.
pub fn minor_unit_digits(code: &str) -> Option<u32> {
    ISO_4217
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| ISO_4217[i].1)
}

/// ISO 4217 "List one" (current currencies and funds) with their minor
/// units, sorted by code. Source: the list of the ISO 4217 maintenance
/// agency (SIX Financial Information), transcribed from the `isodata.tsv`
/// table of the iso_currency crate 0.7.1 (MIT), current at the end of 2025
/// (BGN withdrawn for EUR on 2026-01-01). Entries whose minor unit is
/// "N.A." (precious metals, bond units, SDR, XSU, XUA, XTS, XXX) and
/// withdrawn codes are left out on purpose.
const ISO_4217: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAD", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// True for a syntactically valid ISO 4217 code (three uppercase letters).
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iso_4217_currency_has_its_minor_unit() {
        assert!(
            ISO_4217.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no repeat"
        );
        assert!(ISO_4217.iter().all(|(c, _)| is_currency_code(c)));
        assert_eq!(ISO_4217.len(), 164);
        for (code, digits) in [
            ("XOF", 0),
            ("XAF", 0),
            ("GNF", 0),
            ("EUR", 2),
            ("SAR", 2),
            ("GHS", 2),
            ("TND", 3),
            ("KWD", 3),
            ("CLF", 4),
        ] {
            assert_eq!(minor_unit_digits(code), Some(digits), "{code}");
        }
        for code in ["XXX", "XAU", "HRK", "SLL", "xof", "", "ZZZ"] {
            assert_eq!(minor_unit_digits(code), None, "{code}");
        }
    }

    #[test]
    fn rounding_is_floor() {
        assert_eq!(apply_rate(1001, 5000), 500);
        assert_eq!(apply_rate(999, 3333), 332);
        assert_eq!(apply_rate(12500, 10000), 12500);
        assert_eq!(apply_rate(12500, 0), 0);
        assert_eq!(apply_rate(i64::MAX, 10000), i64::MAX);
        assert_eq!(apply_rate(100, 20000), 100);
    }
}
