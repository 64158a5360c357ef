//! `passerelle translate --adapter xml-http`: what the broker reads from one
//! XML answer with a partner's mapping, as JSON.

use serde_json::{Value, json};

use crate::decimal::amount_json as amount;

/// The partner's `[partners.xml]` table, read as the broker reads it
/// (unknown keys refused, named): translate needs only its number format
/// and answer paths, so `url`, `cancel` and the request templates may be left out.
fn settings_of(table: toml::Table) -> Result<super::XmlConfig, String> {
    crate::registry::translate_settings(table, "partners.xml", |t| {
        t.entry("url")
            .or_insert_with(|| "http://translate.invalid".into());
        for name in ["adjudicate", "cancel"] {
            let op = t
                .entry(name)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(op) = op {
                op.entry("template").or_insert_with(|| "".into());
            }
        }
    })
}

/// Reads an adjudication answer with the mapping's paths and number format.
pub fn translate(
    settings: toml::Table,
    payload: &[u8],
    _file: &str,
    currency: &str,
) -> Result<Value, String> {
    let cfg = settings_of(settings)?;
    let root = super::parse_xml(payload, 1 << 20, 32)?;
    let root = super::unwrap_soap(root).map_err(|e| e.to_string())?;
    let a = cfg.adjudicate.answer;
    if a.lines.is_none() {
        return Err("the config's adjudicate.answer.lines is needed to read an answer".into());
    }
    let answer = super::read_adjudication(&root, &a, &cfg.numbers, currency)?;
    let lines: Vec<Value> = answer
        .lines
        .iter()
        .map(|l| {
            json!({
                "sequence": l.sequence,
                "mutuelle_share": amount(l.share, currency),
                "reason": l.reason,
            })
        })
        .collect();
    Ok(json!({ "document": root.name, "currency": currency, "lines": lines }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partner_table_refuses_what_the_broker_refuses() {
        let t = |text: &str| settings_of(text.parse().unwrap());
        let cfg =
            t("[numbers]\ndecimal_comma = true\n[adjudicate.answer]\nlines = \"Lignes/Ligne\"\n")
                .unwrap();
        assert_eq!(cfg.adjudicate.answer.lines.as_deref(), Some("Lignes/Ligne"));
        let e = t("[adjudicate.answers]\nlines = \"L\"\n").unwrap_err();
        assert!(e.contains("answers"), "{e}");
        let e = t("[partners.xml]\nurl = \"http://x\"\n").unwrap_err();
        assert!(e.contains("[partners.xml]"), "{e}");
    }
}
