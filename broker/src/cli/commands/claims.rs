//! `passerelle eligibility` and `passerelle claim ...`.

use super::*;

pub(super) async fn eligibility(
    ctx: &Ctx,
    scheme_id: String,
    beneficiary: String,
    date: Option<String>,
    mutuelle: Option<String>,
    member: Option<String>,
) -> Out {
    let mut c = scheme::scheme_service_client::SchemeServiceClient::new(ctx.channel.clone());
    let r = c
        .check_eligibility(scheme::CheckEligibilityRequest {
            scheme_id,
            beneficiary_id: beneficiary,
            date_of_care: date.unwrap_or_else(today),
            mutuelle_id: mutuelle.unwrap_or_default(),
            member_number: member.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|s| status_failure(s, None))?
        .into_inner();
    let product = r.product.clone().unwrap_or_default();
    let contribution = r.contribution.clone().unwrap_or_default();
    if ctx.json {
        ctx.print(&r);
        return Ok(());
    }
    let l = ctx.lang;
    let yes_no = |b: bool| l.t(if b { "yes" } else { "no" }).to_string();
    outln!("{} {}", l.label("covered"), yes_no(r.covered));
    if let Some(reason) = &r.reason {
        outln!("  {}", reason_text(l, reason, ""));
    }
    if !r.mutuelle_id.is_empty() {
        outln!("{} {}", l.label("mutuelle"), r.mutuelle_id);
        // A partner may answer without them: no empty label.
        if !r.member_number.is_empty() {
            outln!("{} {}", l.label("member"), r.member_number);
        }
        if !r.household_id.is_empty() {
            outln!("{} {}", l.label("household"), r.household_id);
        }
    }
    if !product.product_id.is_empty() {
        outln!(
            "{} {} v{} ({})",
            l.label("product"),
            product.product_id,
            product.version,
            product.name
        );
    }
    if !contribution.paid_until.is_empty() {
        outln!(
            "{} {}",
            l.label("dues paid until"),
            l.catalogue().iso_date(&contribution.paid_until)
        );
    }
    if !r.ceilings.is_empty() {
        outln!();
        // Held by prior authorizations: a column of its own when something
        // is held (remaining = limit − used − held).
        let holds = r.ceilings.iter().any(|c| c.held != 0 || c.count_held != 0);
        let mut t = if holds {
            Table::new(
                l,
                &["ceiling", "period", "limit", "used", "held", "remaining"],
            )
            .right(&[2, 3, 4, 5])
        } else {
            Table::new(l, &["ceiling", "period", "limit", "used", "remaining"]).right(&[2, 3, 4])
        };
        for c in &r.ceilings {
            // A count ceiling (rules: scope "count" or "act"; a partner's: a
            // count and no amount).
            let (limit, used, held, left) =
                if c.scope == "count" || c.scope == "act" || (c.count_limit > 0 && c.limit == 0) {
                    (
                        c.count_limit.to_string(),
                        c.count_used.to_string(),
                        c.count_held.to_string(),
                        c.count_remaining.to_string(),
                    )
                } else {
                    (
                        l.money(c.limit, "XOF"),
                        l.money(c.used, "XOF"),
                        l.money(c.held, "XOF"),
                        l.money(c.remaining, "XOF"),
                    )
                };
            let category = passerelle_proto::common::v1::CareCategory::try_from(c.care_category)
                .ok()
                .filter(|_| c.care_category != 0)
                .map(|cat| {
                    cat.as_str_name()
                        .trim_start_matches("CARE_CATEGORY_")
                        .to_lowercase()
                });
            let mut name = ceiling_words(l, &c.scope, category.as_deref());
            if !c.act_code.is_empty() {
                name = format!("{name} · {}", c.act_code);
            }
            let mut period = words(l, &c.period);
            if !c.next_allowed.is_empty() {
                period = format!(
                    "{period} · {} {}",
                    l.t("next act covered on"),
                    l.catalogue().iso_date(&c.next_allowed)
                );
            }
            let mut cells = vec![name, period, limit, used];
            if holds {
                cells.push(held);
            }
            cells.push(left);
            t.row(cells);
        }
        out!("{}", t.render());
    }
    if !r.cost_shares.is_empty() {
        use passerelle_proto::common::v1::CostShareKind as K;
        outln!();
        let mut t = Table::new(
            l,
            &[
                "patient bears",
                "applies to",
                "value",
                "already borne",
                "period",
            ],
        )
        .right(&[2, 3]);
        for c in &r.cost_shares {
            let kind = K::try_from(c.kind).unwrap_or(K::Unspecified);
            let (what, value) = match kind {
                K::CopayPercent => ("co-payment rate", l.catalogue().percent(c.rate_bp)),
                K::Excluded => ("excluded", String::new()),
                other => (
                    match other {
                        K::CopayMaximum => "co-payment maximum",
                        K::Deductible => "deductible",
                        _ => "co-payment",
                    },
                    if c.amount > 0 {
                        format!("{} {}", l.money(c.amount, &c.currency), c.currency)
                    } else if c.count > 0 {
                        c.count.to_string()
                    } else {
                        String::new()
                    },
                ),
            };
            let used = if c.used_amount > 0 {
                format!("{} {}", l.money(c.used_amount, &c.currency), c.currency)
            } else if c.used_count > 0 {
                c.used_count.to_string()
            } else {
                String::new()
            };
            t.row(vec![
                l.t(what).to_string(),
                words(l, &c.applies_to),
                value,
                used,
                words(l, &c.term),
            ]);
        }
        out!("{}", t.render());
    }
    Ok(())
}

/// A partner's ceiling or cost-share wording in the reader's language: the
/// qualifiers the FHIR adapter adds ("(family)", "(out of network)") and
/// FHIR's terms (annual, day, lifetime); the partner's own words as they
/// are.
/// A ceiling's name: in French, the catalogue's words for a rules
/// mutuelle's scopes and categories (those of the console's member page);
/// else, and for a partner's own scopes, as the broker names it.
fn ceiling_words(l: crate::cli::output::Lang, scope: &str, category: Option<&str>) -> String {
    let raw = match category {
        Some(c) => format!("{scope} {c}"),
        None => scope.to_string(),
    };
    if l != crate::cli::output::Lang::Fr {
        return words(l, &raw);
    }
    let cat = l.catalogue();
    let key = format!("ceiling-{scope}");
    let name = cat.t(&key);
    if name == key {
        return words(l, &raw);
    }
    match category {
        Some(c) => format!("{name} · {}", cat.t(&format!("category-{c}"))),
        None => name,
    }
}

fn words(l: crate::cli::output::Lang, text: &str) -> String {
    for (suffix, word) in [
        (" (family)", "family"),
        (" (out of network)", "out of network"),
    ] {
        if let Some(head) = text.strip_suffix(suffix) {
            return format!("{} ({})", words(l, head), l.t(word));
        }
    }
    match text {
        "annual" => l.t("annual").to_string(),
        "day" => l.t("day").to_string(),
        "lifetime" => l.t("lifetime").to_string(),
        // A day or a month of an act limit, day first as dates are shown.
        other if other.len() == 10 => l.catalogue().iso_date(other),
        other => match other.split_once('-') {
            Some((y, m))
                if passerelle_domain::engine::is_calendar_period(other) && other.len() == 7 =>
            {
                format!("{m}/{y}")
            }
            _ => other.to_string(),
        },
    }
}

/// A prior authorization: its reference, state, term and tolerance, then
/// the planned lines with the committed M and the planned P.
fn print_authorization(ctx: &Ctx, r: &scheme::PriorAuthorization) {
    if ctx.json {
        ctx.print(r);
        return;
    }
    let l = ctx.lang;
    let state = scheme::PriorAuthorizationState::try_from(r.state)
        .unwrap_or(scheme::PriorAuthorizationState::Unspecified);
    let words = match state {
        scheme::PriorAuthorizationState::Active => l.t("in force (amount held)").to_string(),
        scheme::PriorAuthorizationState::Consumed => {
            format!("{} {}", l.t("billed by claim"), r.claim_id)
        }
        scheme::PriorAuthorizationState::Cancelled => l.t("cancelled by the scheme").to_string(),
        scheme::PriorAuthorizationState::Expired => l.t("expired, not billed").to_string(),
        scheme::PriorAuthorizationState::Unspecified => String::new(),
    };
    outln!(
        "{} {}/{}{} {} · {} {}",
        l.t("prior authorization"),
        r.scheme_id,
        r.authorization_id,
        l.colon(),
        words,
        l.t("reference"),
        r.reference
    );
    outln!(
        "{} {} ({} {}) · {} {} · {} {}",
        l.label("mutuelle"),
        r.mutuelle_id,
        l.t("member"),
        r.member_number,
        l.t("valid until"),
        l.catalogue().iso_date(&r.valid_until),
        l.t("tolerance"),
        l.catalogue().percent(r.tolerance_bp)
    );
    lines_table(l, &r.currency, &r.lines, r.totals.unwrap_or_default());
}

/// A claim as the settlement service gives it (its provider and day), or
/// `None` when it cannot be read (said elsewhere, if at all).
async fn claim_detail(
    ctx: &Ctx,
    scheme_id: &str,
    claim_id: &str,
) -> Option<settlement::ClaimDetail> {
    settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone())
        .get_claim(settlement::GetClaimRequest {
            scheme_id: scheme_id.to_string(),
            claim_id: claim_id.to_string(),
        })
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// What the settlement service adds to a claim's text: why it was
/// cancelled, the recovery (indu) its cancel raised after its period
/// closed, with where it is deducted, and what stands with its mutuelle
/// (a cancel to make by hand, or the last error met asking it).
fn print_cancellation(ctx: &Ctx, d: &settlement::ClaimDetail) {
    let (Some(r), l) = (&d.result, ctx.lang.catalogue()) else {
        return;
    };
    if !d.prior_authorization_reference.is_empty() {
        outln!(
            "{}",
            l.t_args(
                "claim-quotes-authorization",
                &[("reference", d.prior_authorization_reference.as_str())]
            )
        );
    }
    if !d.cancel_reason.is_empty() {
        outln!("{}", l.cancel_reason(&d.cancel_reason));
    }
    if let Some(said) = l.claim_after_cancel(r, d) {
        outln!("{said}");
    }
    if !d.partner_note.is_empty() {
        outln!("{}", l.claim_note(&d.partner_note));
    }
}

fn print_claim(ctx: &Ctx, r: &scheme::ClaimResult) {
    if ctx.json {
        ctx.print(r);
        return;
    }
    let l = ctx.lang;
    let cur = r.currency.as_str();
    outln!(
        "{} {}/{}{} {}",
        l.t("claim"),
        r.scheme_id,
        r.claim_id,
        l.colon(),
        l.state(&claim_state_name(r.state))
    );
    // The member number in brackets when there is one (a claim rejected
    // before routing read it has none: no empty "(member )").
    if !r.mutuelle_id.is_empty() && r.member_number.is_empty() {
        outln!("{} {}", l.label("mutuelle"), r.mutuelle_id);
    } else if !r.mutuelle_id.is_empty() {
        outln!(
            "{} {} ({} {})",
            l.label("mutuelle"),
            r.mutuelle_id,
            l.t("member"),
            r.member_number
        );
    }
    if let Some(x) = &r.rejection {
        outln!("  {}", reason_text(l, x, cur));
    }
    // Before the mutuelle answers, M reads 0 and P the whole remainder.
    if matches!(
        scheme::ClaimState::try_from(r.state),
        Ok(scheme::ClaimState::Received | scheme::ClaimState::PendingPartner)
    ) {
        outln!("  {}", l.catalogue().awaiting_mutuelle());
    }
    lines_table(l, cur, &r.lines, r.totals.unwrap_or_default());
}

/// Lines with B, S, R, M, P and the reasons, then the totals.
fn lines_table(l: Lang, cur: &str, lines: &[scheme::LineResult], tot: scheme::ClaimTotals) {
    let mut t = Table::new(
        l,
        &[
            "line",
            "act",
            "billed (B)",
            "scheme (S)",
            "remainder (R)",
            "mutuelle (M)",
            "patient (P)",
            "reasons",
        ],
    )
    .right(&[0, 2, 3, 4, 5, 6]);
    for line in lines {
        let reasons: Vec<String> = line
            .reasons
            .iter()
            .map(|x| match l {
                // In French, a partner's words after the catalogue's for
                // its code; in English, the words alone (the broker's own
                // in either language with their figures).
                Lang::Fr => reason_text(l, x, cur),
                Lang::En => l.catalogue().reason_words(x, cur),
            })
            .collect();
        t.row(vec![
            line.sequence.to_string(),
            line.act_code.clone(),
            l.money(line.billed, cur),
            l.money(line.scheme_share, cur),
            l.money(line.remainder, cur),
            l.money(line.mutuelle_share, cur),
            l.money(line.patient_share, cur),
            reasons.join(l.catalogue().list_separator()),
        ]);
    }
    t.row(vec![
        String::new(),
        l.t("total").to_string(),
        l.money(tot.billed, cur),
        l.money(tot.scheme_share, cur),
        l.money(tot.billed - tot.scheme_share, cur),
        l.money(tot.mutuelle_share, cur),
        l.money(tot.patient_share, cur),
        String::new(),
    ]);
    out!("{}", t.render());
}

pub(super) async fn claim(ctx: &Ctx, cmd: ClaimCmd) -> Out {
    let mut c = scheme::scheme_service_client::SchemeServiceClient::new(ctx.channel.clone());
    match cmd {
        ClaimCmd::Submit { file } => {
            let req = crate::cli::claim_file::ClaimFile::read(&file)
                .map_err(Failure)?
                .into_request();
            let r = c
                .coordinate_claim(req)
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
        }
        ClaimCmd::Authorize { file } => {
            let c_ = crate::cli::claim_file::ClaimFile::read(&file)
                .map_err(Failure)?
                .into_request();
            let req = scheme::RequestPriorAuthorizationRequest {
                scheme_id: c_.scheme_id,
                authorization_id: c_.claim_id,
                provider_id: c_.provider_id,
                beneficiary_id: c_.beneficiary_id,
                beneficiary_category: c_.beneficiary_category,
                mutuelle_id: c_.mutuelle_id,
                member_number: c_.member_number,
                date_of_care: c_.date_of_care,
                stay: c_.stay,
                diagnoses: c_.diagnoses,
                currency: c_.currency,
                lines: c_.lines,
            };
            let r = c
                .request_prior_authorization(req)
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_authorization(ctx, &r);
        }
        ClaimCmd::Authorization {
            scheme,
            authorization_id,
        } => {
            let r = c
                .get_prior_authorization(scheme::GetPriorAuthorizationRequest {
                    scheme_id: scheme,
                    authorization_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_authorization(ctx, &r);
        }
        ClaimCmd::Release {
            scheme,
            authorization_id,
            reason,
        } => {
            let r = c
                .cancel_prior_authorization(scheme::CancelPriorAuthorizationRequest {
                    scheme_id: scheme,
                    authorization_id,
                    reason,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_authorization(ctx, &r);
        }
        ClaimCmd::Get { scheme, claim_id } => {
            let r = c
                .get_claim(scheme::GetClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
            if !ctx.json
                && let Some(d) = claim_detail(ctx, &r.scheme_id, &r.claim_id).await
            {
                print_cancellation(ctx, &d);
            }
        }
        ClaimCmd::Notice {
            scheme,
            claim_id,
            sms,
        } => {
            let r = c
                .get_patient_notice(scheme::GetPatientNoticeRequest {
                    scheme_id: scheme,
                    claim_id,
                    language: ctx.lang.catalogue().code().to_string(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
            } else if sms {
                outln!("{}", r.sms);
            } else {
                outln!("{}", r.text);
            }
        }
        ClaimCmd::Cancel {
            scheme,
            claim_id,
            reason,
        } => {
            let r = c
                .cancel_claim(scheme::CancelClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                    reason: reason.clone(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
            // The settlement service's detail: why, and the indu a cancel
            // after the claim's period closed raised (the cancel itself
            // has been said whatever this read gives).
            if !ctx.json
                && let Some(d) = claim_detail(ctx, &r.scheme_id, &r.claim_id).await
            {
                print_cancellation(ctx, &d);
                // A cancel sent again changes nothing, its reason included.
                if d.cancel_reason != reason {
                    outln!(
                        "{}",
                        ctx.lang.t(
                            "this claim had already been cancelled: its reason stays the first cancel's"
                        )
                    );
                }
            }
        }
        ClaimCmd::List {
            scheme,
            mutuelle,
            state,
            from,
            to,
            member,
            provider,
            page_size,
            page,
        } => {
            let mut s = settlement::settlement_service_client::SettlementServiceClient::new(
                ctx.channel.clone(),
            );
            let r = s
                .list_claims(settlement::ListClaimsRequest {
                    scheme_id: scheme.unwrap_or_default(),
                    mutuelle_id: mutuelle.unwrap_or_default(),
                    state: state.clone().unwrap_or_default(),
                    care_from: from.unwrap_or_default(),
                    care_to: to.unwrap_or_default(),
                    page_size,
                    page_token: page.unwrap_or_default(),
                    member_number: member.unwrap_or_default(),
                    provider_id: provider.unwrap_or_default(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            let totals = r.totals.unwrap_or_default();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            let l = ctx.lang;
            let cur = r
                .claims
                .first()
                .map(|c| c.currency.clone())
                .unwrap_or_else(|| "XOF".into());
            let mut t = Table::new(
                l,
                &[
                    "claim",
                    "scheme",
                    "mutuelle",
                    "state",
                    "date of care",
                    "billed (B)",
                    "scheme (S)",
                    "mutuelle (M)",
                    "patient (P)",
                    "period",
                ],
            )
            .right(&[5, 6, 7, 8, 9]);
            for c in &r.claims {
                let ct = c.totals.unwrap_or_default();
                t.row(vec![
                    c.claim_id.clone(),
                    c.scheme_id.clone(),
                    c.mutuelle_id.clone(),
                    l.state(&c.state).to_string(),
                    l.catalogue().iso_date(&c.date_of_care),
                    l.money(ct.billed, &c.currency),
                    l.money(ct.scheme_share, &c.currency),
                    l.money(ct.mutuelle_share, &c.currency),
                    l.money(ct.patient_share, &c.currency),
                    if c.period == 0 {
                        String::new()
                    } else {
                        c.period.to_string()
                    },
                ]);
            }
            // Every claim listed is counted; a cancelled claim's amounts
            // are not added up (they no longer stand), unless cancelled
            // claims are what is listed: said under the table, so that the
            // words do not widen its first column.
            t.row(vec![
                format!(
                    "{} ({})",
                    l.t("total"),
                    l.catalogue()
                        .amount(i64::try_from(r.total_count).unwrap_or(i64::MAX), "")
                ),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                l.money(totals.billed, &cur),
                l.money(totals.scheme_share, &cur),
                l.money(totals.mutuelle_share, &cur),
                l.money(totals.patient_share, &cur),
                String::new(),
            ]);
            out!("{}", t.render());
            if state.as_deref().unwrap_or_default().is_empty() {
                outln!(
                    "{} {}",
                    l.label("total"),
                    l.t("amounts excluding cancelled claims")
                );
            }
            if !r.next_page_token.is_empty() {
                outln!("{} --page {}", l.label("next page"), r.next_page_token);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod words_tests {
    use super::words;
    use crate::cli::output::Lang;

    /// A FHIR partner's qualifiers and terms read in French; its own words
    /// stay as written.
    #[test]
    fn partner_wording_in_french() {
        assert_eq!(
            words(Lang::Fr, "hospital (family) (out of network)"),
            "hospital (famille) (hors réseau)"
        );
        assert_eq!(words(Lang::Fr, "lifetime"), "à vie");
        assert_eq!(words(Lang::En, "annual"), "annual");
        assert_eq!(words(Lang::Fr, "consultations_left"), "consultations_left");
    }
}
