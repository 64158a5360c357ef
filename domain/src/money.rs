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

/// Number of decimals of an ISO 4217 currency, for the currencies passerelle
/// is configured with; `None` for a code it does not know.
pub fn minor_unit_digits(code: &str) -> Option<u32> {
    match code {
        // CFA francs (BCEAO, BEAC), Guinean franc, and other zero-decimal codes.
        "XOF" | "XAF" | "GNF" | "JPY" | "KMF" | "RWF" | "BIF" | "DJF" | "XPF" => Some(0),
        "GHS" | "NGN" | "EUR" | "USD" | "MAD" | "CDF" | "LRD" | "SLE" | "GMD" | "CVE" | "MRU" => {
            Some(2)
        }
        _ => None,
    }
}

/// True for a syntactically valid ISO 4217 code (three uppercase letters).
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

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
