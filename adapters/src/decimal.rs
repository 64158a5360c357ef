//! Exact decimals to integer minor units and back: never through floats.
//!
//! "135.57" in a currency with 2 decimals is 13557; "12500" in XOF (0
//! decimals) is 12500; "12500.5" in XOF is an error (finer than the currency
//! allows), never rounded silently.

/// Parses a decimal text into minor units of a currency with `digits`
/// decimals. Accepts an optional sign, digits, and one decimal separator
/// (`.`, or `,` when `comma` is true); spaces (including non-breaking ones)
/// group thousands when `spaces` is true. Trailing zeros past the currency's
/// decimals are fine ("10.00" in XOF); other digits there are an error.
pub fn parse_minor(text: &str, digits: u32, comma: bool, spaces: bool) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty number".into());
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let mut int = String::new();
    let mut frac = String::new();
    let mut seen_sep = false;
    for ch in body.chars() {
        match ch {
            '0'..='9' if seen_sep => frac.push(ch),
            '0'..='9' => int.push(ch),
            '.' if !comma && !seen_sep => seen_sep = true,
            ',' if comma && !seen_sep => seen_sep = true,
            ' ' | '\u{a0}' | '\u{202f}' if spaces && !seen_sep => {}
            'e' | 'E' => return Err(format!("{text:?}: exponents are not accepted in amounts")),
            _ => return Err(format!("{text:?} is not a number in the expected format")),
        }
    }
    if int.is_empty() && frac.is_empty() {
        return Err(format!("{text:?} is not a number"));
    }
    let extra = frac.len().saturating_sub(digits as usize);
    if frac[frac.len() - extra..].chars().any(|c| c != '0') {
        return Err(format!(
            "{text:?} is finer than the currency allows ({digits} decimals)"
        ));
    }
    let frac = &frac[..frac.len() - extra];
    let scaled = format!("{int}{frac:0<width$}", width = digits as usize);
    let v: i64 = scaled
        .trim_start_matches('0')
        .parse::<i64>()
        .or_else(|e| {
            if scaled.chars().all(|c| c == '0') {
                Ok(0)
            } else {
                Err(e)
            }
        })
        .map_err(|_| format!("{text:?} is too large"))?;
    Ok(if neg { -v } else { v })
}

/// Refuses a text an XML partner may have written with its thousands
/// grouped by the decimal separator ("12.000", or "12,000" with a decimal
/// comma: twelve thousand as French or English write it) where it reads
/// as twelve in a currency of fewer than three decimals, which would pay
/// a thousandth of the amount meant. Not for a partner writing three
/// decimals itself (`written`: its `write_decimals`), nor for zero, nor
/// for numbers a JSON document carries (they cannot group thousands).
pub fn check_not_grouped(
    text: &str,
    digits: u32,
    comma: bool,
    written: Option<u32>,
) -> Result<(), String> {
    if digits >= 3 || written.is_some_and(|w| w >= 3) {
        return Ok(());
    }
    let sep = if comma { ',' } else { '.' };
    let t = text.trim().trim_start_matches(['-', '+']);
    match t.split_once(sep) {
        Some((int, "000"))
            if (1..=3).contains(&int.len())
                && int.bytes().all(|b| b.is_ascii_digit())
                && !int.trim_start_matches('0').is_empty() =>
        {
            Err(format!(
                "{text:?} may be {int} thousand with its thousands grouped: write the amount without grouping"
            ))
        }
        _ => Ok(()),
    }
}

/// Formats minor units as a decimal text with `digits` decimals ("135.57",
/// "12500").
pub fn format_minor(v: i64, digits: u32) -> String {
    if digits == 0 {
        return v.to_string();
    }
    let scale = 10i64.pow(digits);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        a / scale as u64,
        a % scale as u64,
        width = digits as usize
    )
}

/// Parses a plain decimal that must be a whole number ("10.0" -> 10): FHIR
/// quantities.
pub fn parse_whole(text: &str) -> Result<i64, String> {
    parse_minor(text, 0, false, false)
}

/// An amount both ways, as `passerelle translate` shows it: the decimal in
/// the currency's major unit and the minor-unit count, with the currency.
pub fn amount_json(minor: i64, currency: &str) -> serde_json::Value {
    let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
    serde_json::json!({ "value": format_minor(minor, digits), "minor": minor, "currency": currency })
}

/// [`amount_json`], or null.
pub fn opt_amount_json(v: Option<i64>, currency: &str) -> serde_json::Value {
    v.map(|m| amount_json(m, currency))
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_in_both_directions() {
        assert_eq!(parse_minor("135.57", 2, false, false), Ok(13557));
        assert_eq!(parse_minor("10.00", 0, false, false), Ok(10));
        assert_eq!(parse_minor("21000.0", 0, false, false), Ok(21000));
        assert_eq!(parse_minor("0.1", 2, false, false), Ok(10));
        assert_eq!(parse_minor("-4.5", 2, false, false), Ok(-450));
        assert_eq!(parse_minor("12 500", 0, false, true), Ok(12500));
        assert_eq!(parse_minor("12\u{a0}500,00", 0, true, true), Ok(12500));
        assert_eq!(parse_minor("1 234,56", 2, true, true), Ok(123456));
        assert!(
            parse_minor("12500.5", 0, false, false)
                .unwrap_err()
                .contains("finer")
        );
        assert!(parse_minor("1e3", 0, false, false).is_err());
        assert!(
            parse_minor("12.500,00", 0, true, true).is_err(),
            "a dot is not a grouping we accept"
        );
        assert!(parse_minor("abc", 0, false, false).is_err());
        // An XML partner's separator before three zeros may group
        // thousands: refused, never read as a thousandth of the amount; in
        // a currency of three decimals, written with three decimals by the
        // partner, or zero, it is the amount.
        for (t, comma) in [("12.000", false), ("12,000", true), ("-5.000", false)] {
            for digits in [0, 2] {
                assert!(
                    check_not_grouped(t, digits, comma, None)
                        .unwrap_err()
                        .contains("thousands grouped"),
                    "{t}"
                );
            }
        }
        assert!(check_not_grouped("12.000", 3, false, None).is_ok());
        assert!(check_not_grouped("500.000", 0, false, Some(3)).is_ok());
        assert!(check_not_grouped("0.000", 0, false, None).is_ok());
        assert!(check_not_grouped("12000.000", 0, false, None).is_ok());
        assert!(check_not_grouped("12.00", 0, false, None).is_ok());
        assert!(
            check_not_grouped("12.000", 0, true, None).is_ok(),
            "a dot with a decimal comma"
        );
        assert_eq!(parse_whole("2.000"), Ok(2), "a quantity is no amount");
        assert_eq!(format_minor(13557, 2), "135.57");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(12500, 0), "12500");
        assert_eq!(format_minor(-450, 2), "-4.50");
        assert_eq!(parse_whole("10.0"), Ok(10));
        assert!(parse_whole("2.5").is_err());
    }
}
