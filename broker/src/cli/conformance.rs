//! `passerelle conformance --partner ID`: the adapter conformance checks a
//! live partner allows, against a configured partner (use its test
//! environment: the golden path adjudicates, then cancels, one small claim;
//! the unmapped-code check, where the partner is asked, another, cancelled
//! too).
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
    /// The provider the test claims come from (`--provider`).
    pub provider: String,
}

/// One check's result: its name (`conformance-check-<name>` in the
/// catalogue) and what it found, said in the reader's language.
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<Said, Said>,
}

/// What a check found: a sentence of the catalogue with its values, or a
/// partner's error as the adapter gave it (`Lang::partner_error` says its
/// kind, the partner's own words kept).
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    Key(&'static str, Vec<(&'static str, String)>),
    Partner(String),
}

impl Said {
    fn key(key: &'static str) -> Said {
        Said::Key(key, Vec::new())
    }
    fn partner(e: impl std::fmt::Display) -> Said {
        Said::Partner(e.to_string())
    }
    /// The finding in `lang`.
    pub fn words(&self, lang: crate::console::i18n::Lang) -> String {
        match self {
            Said::Key(key, args) => {
                let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                lang.t_args(key, &args)
            }
            Said::Partner(e) => lang.partner_error(e),
        }
    }
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
        provider_id: m.provider.clone(),
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
            .map(|a| {
                Said::key(if a.covered {
                    "conformance-covered"
                } else {
                    "conformance-not-covered"
                })
            })
            .map_err(Said::partner),
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
            .map(|s| {
                Said::Key(
                    "conformance-golden",
                    vec![("m", s[0].mutuelle_share.to_string()), ("r", "200".into())],
                )
            })
            .map_err(Said::partner),
        Err(e) => Err(Said::partner(e)),
    };
    checks.push(Check {
        name: "golden path",
        outcome: golden,
    });
    // The same key must give the same adjudication, not only the same
    // shares: a partner that adjudicates again answers with another
    // reference (and counts the care twice on its side).
    let dup = match (&first, adapter.adjudicate(req).await) {
        (Ok(a), Ok(b)) if a.lines == b.lines && a.partner_reference == b.partner_reference => {
            Ok(Said::key("conformance-duplicate-same"))
        }
        (Ok(a), Ok(b)) if a.lines == b.lines => Err(Said::Key(
            "conformance-duplicate-again",
            vec![
                ("first", a.partner_reference.clone()),
                ("second", b.partner_reference.clone()),
            ],
        )),
        (Ok(_), Ok(_)) => Err(Said::key("conformance-duplicate-other")),
        (_, Err(e)) => Err(Said::partner(e)),
        (Err(_), Ok(_)) => Err(Said::key("conformance-duplicate-first-failed")),
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
            // What the partner's answer gave it, as the broker stores it.
            partner_reference: first.as_ref().map_or("", |a| a.partner_reference.as_str()),
            answer_refused: false,
        })
        .await;
    checks.push(Check {
        name: "cancel",
        outcome: match cancel {
            Ok(()) => Ok(Said::key("conformance-cancel-accepted")),
            // A partner that cannot cancel at all over its protocol
            // (openIMIS over FHIR) behaves as its adapter says: the broker
            // cancels in its own accounts and a person cancels at the
            // partner. Said, with what that person must do for this test
            // claim. Any other partner must take a cancel (a gRPC
            // partner's UNIMPLEMENTED fails: docs/partners.md).
            Err(passerelle_adapters::AdapterError::Unsupported(what))
                if p.adapter.cancels_by_hand() =>
            {
                Ok(Said::Key(
                    "conformance-cancel-by-hand",
                    vec![("detail", what)],
                ))
            }
            Err(e) => Err(Said::partner(e)),
        },
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
            Ok(Said::key("conformance-unmapped-answered"))
        }
        // The partner was asked and adjudicated this claim too: cancelled,
        // as the golden path's, so that the check leaves nothing open.
        Ok(answered) => {
            let cancel = adapter
                .cancel(CancelRequest {
                    idempotency_key: &format!("{key}-unmapped-cxl"),
                    adjudication_key: &format!("{key}-unmapped"),
                    scheme_id: &m.scheme,
                    claim_id: &unmapped.claim_id,
                    reason: "passerelle conformance check",
                    partner_reference: &answered.partner_reference,
                    answer_refused: false,
                })
                .await;
            match cancel {
                Ok(()) => Ok(Said::key("conformance-unmapped-passed-through")),
                Err(e) => Err(Said::partner(e)),
            }
        }
        Err(e) => Err(Said::partner(e)),
    };
    checks.push(Check {
        name: "unmapped code",
        outcome: u,
    });
    Ok(checks)
}
