//! A mutuelle's prior authorizations (accords préalables) in the console:
//! for each, the member, the planned date, until when it holds, what the
//! mutuelle committed (and so holds on the member's ceilings while it is in
//! force), what the patient will owe, and what became of it (the claim
//! that billed it, a cancel, an expiry). Read through
//! `SettlementService.ListPriorAuthorizations`, as the person.

use std::collections::BTreeMap;

use super::*;
use passerelle_proto::scheme::v1::PriorAuthorizationState as St;

/// How many a page lists (the newest).
const SHOWN: u32 = 200;

pub(super) async fn list(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    let Some(mid) = ctx.person.mutuelle().map(String::from) else {
        return ctx.forbidden().into_response();
    };
    let msg = settlement::ListPriorAuthorizationsRequest {
        mutuelle_id: mid,
        page_size: SHOWN,
    };
    let r = match c
        .call(&ctx.person, ctx.peer, msg, |r| {
            c.settlement.list_prior_authorizations(r)
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return ctx.status(e).into_response(),
    };
    let mut t = Table::new(
        lang,
        &[
            "pa-reference",
            "col-scheme",
            "col-member",
            "pa-date",
            "pa-valid-until",
            "pa-committed",
            "pa-patient",
            "pa-state",
        ],
        &[5, 6],
    );
    let mut held: BTreeMap<String, i64> = BTreeMap::new();
    for a in &r.authorizations {
        let totals = a.totals.unwrap_or_default();
        let state = St::try_from(a.state).unwrap_or(St::Unspecified);
        let (words, href) = match state {
            St::Active => {
                *held.entry(a.currency.clone()).or_default() += totals.mutuelle_share;
                (lang.t("pa-state-active"), String::new())
            }
            St::Consumed => (
                lang.t_args("pa-state-consumed", &[("claim", &a.claim_id)]),
                format!("/claims/{}/{}", url(&a.scheme_id), url(&a.claim_id)),
            ),
            St::Cancelled => (lang.t("pa-state-cancelled"), String::new()),
            St::Expired => (lang.t("pa-state-expired"), String::new()),
            St::Unspecified => (String::new(), String::new()),
        };
        // A hospital stay it opened: its id, and until when it is planned.
        let words = match &a.stay {
            Some(st) if !st.stay_id.is_empty() => {
                let until = if st.discharge_date.is_empty() {
                    String::new()
                } else {
                    format!(" → {}", lang.iso_date(&st.discharge_date))
                };
                format!(
                    "{words} · {}{until}",
                    lang.t_args("pa-stay", &[("stay", &st.stay_id)])
                )
            }
            _ => words,
        };
        let words = if a.extensions > 0 {
            format!(
                "{words} · {}",
                lang.t_args("pa-extensions", &[("n", &a.extensions.to_string())])
            )
        } else {
            words
        };
        t.row(
            href,
            vec![
                a.reference.clone(),
                a.scheme_id.clone(),
                a.member_number.clone(),
                lang.iso_date(&a.date_of_care),
                lang.iso_date(&a.valid_until),
                lang.money(totals.mutuelle_share, &a.currency),
                lang.money(totals.patient_share, &a.currency),
                words,
            ],
        );
    }
    let summary = if held.is_empty() {
        lang.t("pa-nothing-held")
    } else {
        let amounts: Vec<String> = held.iter().map(|(cur, n)| lang.money(*n, cur)).collect();
        lang.t_args(
            "pa-held",
            &[
                ("amount", &amounts.join(" + ")),
                ("shown", &SHOWN.to_string()),
            ],
        )
    };
    page(ListPage {
        ui: ctx.ui(lang.t("pa-title"), "authorizations"),
        heading: lang.t("pa-title"),
        form: format!("<p>{}</p>", esc(&lang.t("pa-intro"))),
        summary: if r.authorizations.is_empty() {
            String::new()
        } else {
            summary
        },
        tables: vec![(String::new(), t)],
        empty: if r.authorizations.is_empty() {
            lang.t("pa-none")
        } else {
            String::new()
        },
        after: String::new(),
    })
}
