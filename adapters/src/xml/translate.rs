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

/// Reads an adjudication answer with the mapping's paths and number format,
/// as the broker does (`read_answer`): an answer its `error` element
/// refuses shows that refusal (the mutuelle's words) and no lines, one its
/// `busy` element puts off shows that; one the broker would refuse
/// whatever the claim (refusing and paying lines, no line, a line twice, a
/// negative share) is an error saying so; otherwise its lines and
/// reference. The checks against the claim's own lines (M above R, a line
/// missing) need the claim, and are the broker's.
pub fn translate(
    settings: toml::Table,
    payload: &[u8],
    _file: &str,
    currency: &str,
) -> Result<Value, String> {
    let cfg = settings_of(settings)?;
    // What the broker refuses at start, refused here too.
    super::check_operations(&cfg)?;
    let root = super::parse_xml(payload, 1 << 20, 32)?;
    let root = super::unwrap_soap(root).map_err(|e| e.to_string())?;
    let a = cfg.adjudicate.answer;
    if a.lines.is_none() {
        return Err("the config's adjudicate.answer.lines is needed to read an answer".into());
    }
    let answer = match super::read_answer(&a, &root, &cfg.numbers, currency) {
        Ok(answer) => answer,
        Err(crate::AdapterError::Rejected(r)) => {
            return Ok(json!({ "document": root.name, "refused": r.message, "lines": [] }));
        }
        // `busy`: the broker asks again later.
        Err(crate::AdapterError::Unavailable(m)) => {
            return Ok(json!({ "document": root.name, "try_again_later": m, "lines": [] }));
        }
        // What the broker refuses, by the path of the element at fault.
        Err(crate::AdapterError::Malformed(m)) => return Err(m),
        Err(e) => return Err(e.to_string()),
    };
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
    Ok(json!({
        "document": root.name,
        "currency": currency,
        "reference": answer.reference,
        "lines": lines,
    }))
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

    /// What translate shows is what the broker reads: a refusal at
    /// `error` as such, an answer it refuses whatever the claim as an
    /// error, and the reference.
    #[test]
    fn an_answer_is_shown_as_the_broker_reads_it() {
        let settings: toml::Table = "[numbers]\ngroup_spaces = true\n[adjudicate.answer]\n\
             lines = \"reponse/details/ligne\"\nsequence = \"@num\"\nshare = \"montant_pec\"\n\
             reference = \"reponse/numero_pec\"\nerror = \"reponse/erreur\"\n"
            .parse()
            .unwrap();
        let read = |doc: &str| translate(settings.clone(), doc.as_bytes(), "a.xml", "XOF");
        let v = read(
            "<reponse><erreur/><numero_pec>PEC-1</numero_pec><details>\
             <ligne num=\"1\"><montant_pec>12 500</montant_pec></ligne></details></reponse>",
        )
        .unwrap();
        assert_eq!(v["reference"], "PEC-1");
        assert_eq!(v["lines"][0]["sequence"], 1);
        assert!(v.get("refused").is_none(), "{v}");
        let v = read("<reponse><erreur>Adhérent inconnu</erreur></reponse>").unwrap();
        assert_eq!(v["refused"], "Adhérent inconnu");
        let e = read(
            "<reponse><details><ligne num=\"1\"><montant_pec>1</montant_pec></ligne>\
             <ligne num=\"1\"><montant_pec>2</montant_pec></ligne></details></reponse>",
        )
        .unwrap_err();
        assert!(e.contains("line 1 answered twice"), "{e}");
        let e = read(
            "<reponse><details><ligne num=\"1\"><montant_pec>-300</montant_pec></ligne></details></reponse>",
        )
        .unwrap_err();
        assert!(e.contains("ligne[1]: negative mutuelle share"), "{e}");
        let e = read(
            "<reponse><erreur>code 12</erreur><details><ligne num=\"1\"><montant_pec>1</montant_pec></ligne></details></reponse>",
        )
        .unwrap_err();
        assert!(
            e.contains("both refuses (code 12) and answers 1 line(s)"),
            "{e}"
        );
        let e = read("<reponse><details/></reponse>").unwrap_err();
        assert!(e.contains("no line in the answer"), "{e}");
        // A mapping the broker would not start with is refused here too:
        // a busy attribute without its values, an unknown variable.
        let mut no_values = settings.clone();
        no_values["adjudicate"]["answer"]
            .as_table_mut()
            .unwrap()
            .insert("busy".into(), "reponse/statut/@code".into());
        let e = translate(no_values, b"<reponse/>", "a.xml", "XOF").unwrap_err();
        assert!(e.contains("busy_values must list"), "{e}");
        let mut misspelt = settings.clone();
        misspelt["adjudicate"]
            .as_table_mut()
            .unwrap()
            .insert("template".into(), "<d>{{membre}}</d>".into());
        let e = translate(misspelt, b"<reponse/>", "a.xml", "XOF").unwrap_err();
        assert!(e.contains("adjudicate.template"), "{e}");
    }
}
