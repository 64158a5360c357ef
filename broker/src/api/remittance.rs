//! Remittance advice (avis de paiement): what a settled period's transfer
//! covers for one payee, on the wire and as a FHIR R4 PaymentReconciliation,
//! built from the statement the period already has. See
//! `SettlementService.GetRemittanceAdvice`.

use passerelle_proto::settlement::v1 as pb;
use serde_json::{Value, json};

use crate::console::i18n::Lang;

/// The payees of a settled period's statement, each with its lines, its
/// recoveries and the amount the transfer pays it; only `payee` when given
/// (type, id); the FHIR resources' texts in `lang`.
/// The statement's lines are moved, not copied: a payee's advice of tens
/// of thousands of lines is held once, then its FHIR resource beside it.
pub fn advice(
    s: pb::Statement,
    payee: Option<(&str, &str)>,
    lang: Lang,
) -> Vec<pb::RemittanceAdvice> {
    let period = s.period.clone().unwrap_or_default();
    let mut out: Vec<pb::RemittanceAdvice> = Vec::new();
    fn entry<'a>(
        out: &'a mut Vec<pb::RemittanceAdvice>,
        t: &str,
        id: &str,
    ) -> &'a mut pb::RemittanceAdvice {
        let i = match out
            .iter()
            .position(|a| a.payee_type == t && a.payee_id == id)
        {
            Some(i) => i,
            None => {
                out.push(pb::RemittanceAdvice {
                    payee_type: t.to_string(),
                    payee_id: id.to_string(),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        &mut out[i]
    }
    for p in s.payees {
        entry(&mut out, &p.payee_type, &p.payee_id)
            .lines
            .extend(p.lines);
    }
    for r in s.recoveries {
        let e = entry(&mut out, &r.payee_type, &r.payee_id);
        e.recoveries.push(r);
    }
    out.retain(|a| payee.is_none_or(|(t, id)| a.payee_type == t && a.payee_id == id));
    // The statement's order, byte by byte, as the payees' totals come: a
    // payee with only recoveries takes its place among the others.
    out.sort_by(|a, b| (&a.payee_type, &a.payee_id).cmp(&(&b.payee_type, &b.payee_id)));
    for a in &mut out {
        let paid = a
            .lines
            .iter()
            .fold(0i64, |acc, l| acc.saturating_add(l.mutuelle_share));
        let back = a
            .recoveries
            .iter()
            .fold(0i64, |acc, r| acc.saturating_add(r.amount));
        a.amount = paid.saturating_sub(back);
        // Lines come by claim id then line: a claim's lines are together.
        let mut claims: Vec<&str> = a.lines.iter().map(|l| l.claim_id.as_str()).collect();
        claims.dedup();
        a.claim_count = u32::try_from(claims.len()).unwrap_or(u32::MAX);
        a.fhir_payment_reconciliation = payment_reconciliation(&period, a, lang);
    }
    out
}

/// A minor-unit amount as a FHIR Money value (XOF has no decimals; a
/// two-decimal currency gets its point).
fn money(minor: i64, currency: &str) -> Value {
    let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
    // Exact (serde_json with arbitrary precision), as the FHIR adapters
    // write amounts: never a float.
    json!({ "value": passerelle_adapters::fhir::decimal(minor, digits), "currency": currency })
}

/// Unix milliseconds as a FHIR dateTime (UTC) and date.
fn when(ms: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
    (
        format!(
            "{date}T{:02}:{:02}:{:02}Z",
            t.hour(),
            t.minute(),
            t.second()
        ),
        date,
    )
}

/// The PaymentReconciliation of one payee's part of a settled period's
/// transfer: one detail per claim (its mutuelle shares, type `payment`) and
/// per recovery (negative, type `adjustment`); paymentIdentifier the
/// transfer's reference; identifiers in passerelle's systems, as the FHIR
/// adapters name claims. paymentAmount is what the transfer pays the
/// payee: for a payee whose recoveries outweigh its claims, nothing (0),
/// never a negative payment under the transfer's reference; what it owes
/// is the details' sum, said in a processNote. Its texts (disposition,
/// note) are in `lang`, which its `language` names.
///
/// Written as text detail by detail: a payee of tens of thousands of claims
/// never has its resource in memory as a tree.
pub fn payment_reconciliation(period: &pb::Period, a: &pb::RemittanceAdvice, lang: Lang) -> String {
    let cur = period.currency.as_str();
    let (created, date) = when(period.settled_at_ms);
    let mut head = json!({
        "resourceType": "PaymentReconciliation",
        "language": lang.code(),
        "identifier": [{
            "system": "urn:passerelle:remittance",
            "value": format!(
                "{}/{}/{}/{}:{}",
                period.scheme_id, period.mutuelle_id, period.number, a.payee_type, a.payee_id
            ),
        }],
        "status": "active",
        "created": created,
        "paymentIssuer": {"identifier": {
            "system": "urn:passerelle:mutuelle",
            "value": period.mutuelle_id,
        }},
        "outcome": "complete",
        "disposition": lang.t_args(
            "fhir-remittance-disposition",
            &[
                ("number", &period.number.to_string()),
                ("scheme", &period.scheme_id),
                ("mutuelle", &period.mutuelle_id),
            ],
        ),
        "paymentDate": date,
        "paymentAmount": money(a.amount.max(0), cur),
        "paymentIdentifier": {
            "system": "urn:passerelle:transfer",
            "value": period.settlement_reference,
        },
    });
    if a.amount < 0 {
        head["processNote"] = json!([{
            "type": "display",
            "text": lang.t_args(
                "fhir-remittance-owed",
                &[("amount", &lang.money(a.amount.saturating_neg(), cur))],
            ),
        }]);
    }
    let resource = Resource {
        head: &head,
        detail: Details {
            period,
            advice: a,
            date: &date,
        },
    };
    // Written into room sized from its first detail, so that the text is
    // not grown by doubling (a copy of it, and up to twice its size kept).
    let details = a.claim_count as usize + a.recoveries.len();
    let first = a.lines.first().map_or(0, |l| {
        let d = resource
            .detail
            .detail("payment", &l.claim_id, l.mutuelle_share);
        d.to_string().len()
    });
    let room = head.to_string().len() + details.saturating_mul(first + 16) + 64;
    let mut out = Vec::with_capacity(room.min(MAX_FHIR_ROOM));
    serde_json::to_writer(&mut out, &resource).expect("plain JSON values always serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// The most room a PaymentReconciliation's text is given before it is
/// written (a payee's 50,000 lines take about 17 MB).
const MAX_FHIR_ROOM: usize = 32 * 1024 * 1024;

/// A PaymentReconciliation: its head's members, then `detail`.
struct Resource<'a> {
    head: &'a Value,
    detail: Details<'a>,
}

impl serde::Serialize for Resource<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let Value::Object(head) = self.head {
            for (k, v) in head {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("detail", &self.detail)?;
        m.end()
    }
}

/// One detail per claim (its lines' mutuelle shares summed, type
/// `payment`), then one per recovery (negative, type `adjustment`), each
/// built and written in turn.
struct Details<'a> {
    period: &'a pb::Period,
    advice: &'a pb::RemittanceAdvice,
    date: &'a str,
}

impl Details<'_> {
    /// One detail: a claim's payment or a recovery's adjustment.
    fn detail(&self, code: &str, claim_id: &str, amount: i64) -> Value {
        let (period, a) = (self.period, self.advice);
        json!({
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/payment-type",
                "code": code,
            }]},
            "request": {"identifier": {
                "system": format!("urn:passerelle:claim:{}", period.scheme_id),
                "value": claim_id,
            }},
            "payee": {"identifier": {
                "system": format!("urn:passerelle:{}", a.payee_type),
                "value": a.payee_id,
            }},
            "date": self.date,
            "amount": money(amount, &period.currency),
        })
    }
}

impl serde::Serialize for Details<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let a = self.advice;
        let detail = |code: &str, claim_id: &str, amount: i64| self.detail(code, claim_id, amount);
        // Each claim's lines summed, in the order the claims first come (a
        // claim's lines are together in a statement; found by index if not).
        let mut claims: Vec<(&str, i64)> = Vec::new();
        let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for l in &a.lines {
            match at.get(l.claim_id.as_str()) {
                Some(&i) => claims[i].1 = claims[i].1.saturating_add(l.mutuelle_share),
                None => {
                    at.insert(&l.claim_id, claims.len());
                    claims.push((&l.claim_id, l.mutuelle_share));
                }
            }
        }
        let mut seq = s.serialize_seq(Some(claims.len() + a.recoveries.len()))?;
        for (claim_id, m) in claims {
            seq.serialize_element(&detail("payment", claim_id, m))?;
        }
        for r in &a.recoveries {
            seq.serialize_element(&detail(
                "adjustment",
                &r.claim_id,
                r.amount.saturating_neg(),
            ))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(claim: &str, seq: u32, m: i64) -> pb::StatementLine {
        pb::StatementLine {
            claim_id: claim.into(),
            invoice_number: format!("F-{claim}"),
            date_of_care: "2026-11-20".into(),
            member_number: "SOL-0005".into(),
            sequence: seq,
            act_code: "CS-GEN".into(),
            billed: 5000,
            scheme_share: 4000,
            mutuelle_share: m,
            patient_share: 1000 - m,
            cancelled_since: false,
        }
    }

    fn statement() -> pb::Statement {
        pb::Statement {
            period: Some(pb::Period {
                scheme_id: "CNSS".into(),
                mutuelle_id: "MUT-SOLIDARITE".into(),
                number: 2,
                state: pb::PeriodState::Settled as i32,
                currency: "XOF".into(),
                settled_at_ms: 1_796_205_600_000,
                settlement_reference: "VIR-2026-12".into(),
                ..Default::default()
            }),
            payees: vec![
                pb::PayeeStatement {
                    payee_type: "provider".into(),
                    payee_id: "CHU-SO".into(),
                    lines: vec![line("C1", 1, 1000), line("C1", 2, 600), line("C2", 1, 400)],
                    totals: None,
                    ..Default::default()
                },
                pb::PayeeStatement {
                    payee_type: "member".into(),
                    payee_id: "SOL-0005".into(),
                    lines: vec![line("C3", 1, 1000)],
                    totals: None,
                    ..Default::default()
                },
            ],
            recoveries: vec![pb::Recovery {
                claim_id: "C0".into(),
                invoice_number: "F-C0".into(),
                from_period: 1,
                amount: 500,
                payee_type: "provider".into(),
                payee_id: "CHU-SO".into(),
                ..Default::default()
            }],
            next_page_token: String::new(),
        }
    }

    #[test]
    fn each_payee_gets_its_lines_less_its_recoveries() {
        let all = advice(statement(), None, Lang::En);
        assert_eq!(all.len(), 2);
        // In the statement's order (type, then id, byte by byte), whatever
        // order they came in.
        let (member, chu) = (&all[0], &all[1]);
        assert_eq!(
            (chu.payee_id.as_str(), chu.amount, chu.claim_count),
            ("CHU-SO", 1000 + 600 + 400 - 500, 2)
        );
        assert_eq!(chu.recoveries.len(), 1);
        assert_eq!(
            (member.payee_id.as_str(), member.amount, member.claim_count),
            ("SOL-0005", 1000, 1)
        );
        let one = advice(statement(), Some(("member", "SOL-0005")), Lang::En);
        assert_eq!(one.len(), 1);
        let fhir: Value = serde_json::from_str(&chu.fhir_payment_reconciliation).unwrap();
        assert_eq!(fhir["resourceType"], "PaymentReconciliation");
        assert_eq!(fhir["paymentIdentifier"]["value"], "VIR-2026-12");
        assert_eq!(fhir["paymentAmount"]["value"].to_string(), "1500");
        assert_eq!(fhir["paymentDate"], "2026-12-02");
        let detail = fhir["detail"].as_array().unwrap();
        // One detail per claim (C1's two lines summed), one per recovery.
        assert_eq!(detail.len(), 3);
        assert_eq!(detail[0]["amount"]["value"].to_string(), "1600");
        assert_eq!(detail[2]["type"]["coding"][0]["code"], "adjustment");
        assert_eq!(detail[2]["amount"]["value"].to_string(), "-500");
        // The details add up to the payment.
        let sum: i64 = detail
            .iter()
            .map(|d| d["amount"]["value"].to_string().parse::<i64>().unwrap())
            .sum();
        assert_eq!(sum, chu.amount);
    }

    /// The statement with a recovery that outweighs the member's claim:
    /// the member owes 1,000.
    fn statement_where_a_payee_owes() -> pb::Statement {
        let mut s = statement();
        s.recoveries.push(pb::Recovery {
            claim_id: "C9".into(),
            invoice_number: "F-C9".into(),
            from_period: 1,
            amount: 2000,
            payee_type: "member".into(),
            payee_id: "SOL-0005".into(),
            ..Default::default()
        });
        s
    }

    /// A payee who owes is paid nothing by the transfer: paymentAmount 0,
    /// never a negative payment under the transfer's reference; its
    /// details still add up to what it owes, said in a processNote.
    #[test]
    fn a_payee_who_owes_is_paid_nothing_in_its_payment_reconciliation() {
        let all = advice(statement_where_a_payee_owes(), None, Lang::En);
        let member = &all[0];
        assert_eq!(
            (member.payee_id.as_str(), member.amount),
            ("SOL-0005", -1000)
        );
        let fhir: Value = serde_json::from_str(&member.fhir_payment_reconciliation).unwrap();
        assert_eq!(fhir["paymentAmount"]["value"].to_string(), "0");
        assert_eq!(fhir["paymentIdentifier"]["value"], "VIR-2026-12");
        assert_eq!(
            fhir["processNote"][0]["text"],
            "1,000\u{a0}XOF to recover from this payee (its recoveries outweigh its claims): nothing is paid to it by this transfer"
        );
        assert_eq!(
            (&fhir["language"], &fhir["disposition"]),
            (&json!("en"), &json!("period 2 of CNSS x MUT-SOLIDARITE"))
        );
        // In French, the same resource's texts, and its language said.
        let fr = advice(statement_where_a_payee_owes(), None, Lang::Fr);
        let fhir: Value = serde_json::from_str(&fr[0].fhir_payment_reconciliation).unwrap();
        assert_eq!(
            fhir["processNote"][0]["text"],
            "1\u{202f}000\u{a0}XOF à récupérer auprès de ce bénéficiaire (ses indus dépassent ses demandes) : ce virement ne lui verse rien"
        );
        assert_eq!(
            (&fhir["language"], &fhir["disposition"]),
            (&json!("fr"), &json!("période 2 de CNSS x MUT-SOLIDARITE"))
        );
        let sum: i64 = fhir["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["amount"]["value"].to_string().parse::<i64>().unwrap())
            .sum();
        assert_eq!(sum, -1000);
        // A payee who is paid has no such note.
        let chu: Value = serde_json::from_str(&all[1].fhir_payment_reconciliation).unwrap();
        assert!(chu.get("processNote").is_none(), "{chu}");
    }

    /// Every PaymentReconciliation validates against FHIR R4 (4.0.1), with
    /// `tools/fhir-validate.py`; under CI=true the validator is required.
    /// A payee who owes is among them, in both languages.
    #[test]
    fn a_payment_reconciliation_validates_against_fhir_r4() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        for lang in [Lang::En, Lang::Fr] {
            let all = advice(statement_where_a_payee_owes(), None, lang);
            assert_eq!(all.len(), 2);
            for a in &all {
                std::fs::write(
                    dir.path().join(format!("{n}.json")),
                    &a.fhir_payment_reconciliation,
                )
                .unwrap();
                n += 1;
            }
        }
        passerelle_adapters::kit::validate_fhir_r4(dir.path(), n);
    }
}
