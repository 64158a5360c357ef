//! `passerelle conformance --partner ID`: the adapter conformance checks a
//! live partner allows, against a configured partner (use its test
//! environment: the golden path adjudicates, then cancels, one small claim).
//! The checks that need a misbehaving partner (down, slow, malformed, share
//! above the remainder) run in CI against the simulated partners
//! (adapters/tests/kit.rs).

use std::path::Path;
use std::sync::Arc;

use passerelle_adapters::rules::NoStore;
use passerelle_adapters::{AdjudicationRequest, CancelRequest, EligibilityQuery};
use passerelle_domain::validate::check_answer;
use passerelle_domain::{CareCategory, Claim, ClaimLine, Payee, ReasonCode, SchemeOutcome};

use crate::config::Config;

pub struct Member {
    pub scheme: String,
    pub beneficiary: String,
    pub number: String,
    pub act: String,
}

/// One check's result.
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

/// Runs the live checks against the partner `id` of a config.
pub async fn run(cfg: &Config, base: &Path, id: &str, m: &Member) -> Result<Vec<Check>, String> {
    let p = cfg
        .partners
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| format!("no partner {id:?} in the config"))?;
    let adapter = p.adapter.build(&p.id, base, Arc::new(NoStore))?;
    let currency = cfg
        .schemes
        .iter()
        .find(|s| s.id == m.scheme)
        .map(|s| s.currency.clone())
        .unwrap_or_else(|| "XOF".into());
    #[allow(
        clippy::disallowed_methods,
        reason = "the live check's claim is dated today, on the client"
    )]
    let today = time::OffsetDateTime::now_utc().date();
    let stamp = crate::audit::now_ms();
    let key = format!("conformance-{id}-{stamp}");
    let line = |act: &str| ClaimLine {
        act_code: act.into(),
        category: CareCategory::Consultation,
        quantity: 1,
        billed: 1000,
        tariff_base: 1000,
        scheme_share: 800,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    };
    let claim = Claim {
        scheme_id: m.scheme.clone(),
        claim_id: key.clone(),
        provider_id: "CONFORMANCE".into(),
        invoice_number: key.clone(),
        payee: Payee::Provider,
        beneficiary_id: m.beneficiary.clone(),
        beneficiary_category: String::new(),
        mutuelle_id: Some(id.into()),
        member_number: Some(m.number.clone()),
        date_of_care: today,
        stay: None,
        diagnoses: vec![],
        currency: currency.clone(),
        lines: vec![line(&m.act)],
        prior_authorization: None,
    };
    let mut checks = Vec::new();
    let e = adapter
        .eligibility(&EligibilityQuery {
            idempotency_key: format!("{key}-elig"),
            scheme_id: m.scheme.clone(),
            beneficiary_id: m.beneficiary.clone(),
            member_number: Some(m.number.clone()),
            member: None,
            date_of_care: today,
            currency: currency.clone(),
            lines: vec![],
            diagnoses: vec![],
        })
        .await;
    checks.push(Check {
        name: "eligibility",
        outcome: e
            .map(|a| format!("covered: {}", a.covered))
            .map_err(|e| e.to_string()),
    });
    let req = AdjudicationRequest {
        idempotency_key: &key,
        claim: &claim,
        member_number: &m.number,
        member: None,
        prior: None,
        unread_ceilings: false,
    };
    let first = adapter.adjudicate(req).await;
    let golden = match &first {
        Ok(a) => check_answer(&claim.lines, a.lines.clone())
            .map(|s| format!("M = {} of R = 200", s[0].mutuelle_share)),
        Err(e) => Err(e.to_string()),
    };
    checks.push(Check {
        name: "golden path",
        outcome: golden,
    });
    let dup = match (&first, adapter.adjudicate(req).await) {
        (Ok(a), Ok(b)) if a.lines == b.lines => Ok("same key, same answer".to_string()),
        (Ok(_), Ok(_)) => Err("the same key gave another answer".to_string()),
        (_, Err(e)) => Err(e.to_string()),
        (Err(_), Ok(_)) => Err("the first call failed".to_string()),
    };
    checks.push(Check {
        name: "duplicate",
        outcome: dup,
    });
    let cancel = adapter
        .cancel(CancelRequest {
            idempotency_key: &format!("{key}-cxl"),
            adjudication_key: &key,
            scheme_id: &m.scheme,
            claim_id: &key,
            reason: "passerelle conformance check",
        })
        .await;
    checks.push(Check {
        name: "cancel",
        outcome: cancel
            .map(|_| "accepted".to_string())
            .map_err(|e| e.to_string()),
    });
    let mut unmapped = claim.clone();
    unmapped.claim_id = format!("{key}-unmapped");
    unmapped.lines = vec![line("PASSERELLE-NO-SUCH-CODE")];
    let u = adapter
        .adjudicate(AdjudicationRequest {
            idempotency_key: &format!("{key}-unmapped"),
            claim: &unmapped,
            member_number: &m.number,
            member: None,
            prior: None,
            unread_ceilings: false,
        })
        .await;
    let u = match u {
        Ok(a)
            if a.lines
                .first()
                .is_some_and(|l| l.reasons.iter().any(|r| r.code == ReasonCode::UnmappedCode)) =>
        {
            Ok("answered UNMAPPED_CODE without asking the partner".to_string())
        }
        Ok(_) => Ok("no act table: codes pass through to the partner (n/a)".to_string()),
        Err(e) => Err(e.to_string()),
    };
    checks.push(Check {
        name: "unmapped code",
        outcome: u,
    });
    Ok(checks)
}
