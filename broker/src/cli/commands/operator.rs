//! `passerelle admin ...`: the operators' commands.

use super::*;

pub(super) async fn admin_cmd(ctx: &Ctx, cmd: AdminCmd) -> Out {
    let mut c = admin::admin_service_client::AdminServiceClient::new(ctx.channel.clone());
    let l = ctx.lang;
    match cmd {
        AdminCmd::Partners => {
            let r = c
                .list_partners(admin::ListPartnersRequest {})
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            out!("{}", partners_table(l, &r.partners));
        }
        AdminCmd::Pause { mutuelle } => {
            let r = c
                .pause_partner(admin::PausePartnerRequest {
                    mutuelle_id: mutuelle,
                })
                .await;
            one_partner(ctx, r)?;
        }
        AdminCmd::Resume { mutuelle } => {
            let r = c
                .resume_partner(admin::ResumePartnerRequest {
                    mutuelle_id: mutuelle,
                })
                .await;
            one_partner(ctx, r)?;
        }
        AdminCmd::Retry { scheme, claim_id } => {
            let r = c
                .retry_claim(admin::RetryClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
            } else {
                outln!("{} {}", l.label("state"), l.state(&r.state));
                if !r.last_error.is_empty() {
                    outln!(
                        "{} {}",
                        l.label("last error"),
                        l.catalogue().partner_error(&r.last_error)
                    );
                }
            }
        }
        AdminCmd::Audit { scheme, claim_id } => {
            let r = c
                .get_claim_audit(admin::GetClaimAuditRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            let mut t = Table::new(l, &["when", "direction", "party", "method", "outcome"]);
            for a in &r.records {
                t.row(vec![
                    when(l, a.at_ms),
                    // "in" or "out", as the console's audit page says them.
                    l.catalogue().t(&format!("audit-{}", a.direction)),
                    a.party.clone(),
                    a.method.clone(),
                    l.catalogue().partner_error(&a.outcome),
                ]);
            }
            out!("{}", t.render());
            if r.omitted > 0 {
                outln!("{}", l.catalogue().audit_omitted(r.omitted));
            }
        }
        AdminCmd::CoverageConflicts { scheme } => {
            let r = c
                .list_coverage_conflicts(admin::ListCoverageConflictsRequest {
                    scheme_id: scheme.unwrap_or_default(),
                    limit: 0,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            if r.conflicts.is_empty() {
                outln!("{}", l.t("no coverage conflict"));
                return Ok(());
            }
            let mut t = Table::new(
                l,
                &[
                    "scheme",
                    "beneficiary",
                    "mutuelle",
                    "member",
                    "mutuelle",
                    "member",
                    "from",
                    "to",
                ],
            );
            for c in &r.conflicts {
                t.row(vec![
                    c.scheme_id.clone(),
                    c.beneficiary_id.clone(),
                    c.first_mutuelle_id.clone(),
                    c.first_member_number.clone(),
                    c.second_mutuelle_id.clone(),
                    c.second_member_number.clone(),
                    l.catalogue().iso_date(&c.from_date),
                    if c.to_date.is_empty() {
                        "-".into()
                    } else {
                        l.catalogue().iso_date(&c.to_date)
                    },
                ]);
            }
            out!("{}", t.render());
        }
        AdminCmd::ResolveCoverage {
            scheme,
            beneficiary,
            keep,
            from,
        } => {
            let r = c
                .resolve_coverage_conflict(admin::ResolveCoverageConflictRequest {
                    scheme_id: scheme,
                    beneficiary_id: beneficiary,
                    keep_mutuelle_id: keep,
                    from_date: from.unwrap_or_default(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            if r.changed.is_empty() {
                outln!("{}", l.t("nothing to change"));
                return Ok(());
            }
            let mut t = Table::new(l, &["mutuelle", "member", "change"]);
            for m in &r.changed {
                t.row(vec![
                    m.mutuelle_id.clone(),
                    m.member_number.clone(),
                    l.t("updated").to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

/// The answer of `pause` or `resume`: the partner's state.
fn one_partner(ctx: &Ctx, r: Result<tonic::Response<admin::PartnerStatus>, tonic::Status>) -> Out {
    let r = r.map_err(|s| status_failure(s, None))?.into_inner();
    if ctx.json {
        ctx.print(&r);
    } else {
        out!("{}", partners_table(ctx.lang, std::slice::from_ref(&r)));
    }
    Ok(())
}

/// The partners' table of `admin partners`, `pause` and `resume`.
fn partners_table(l: Lang, partners: &[admin::PartnerStatus]) -> String {
    let mut t = Table::new(
        l,
        &[
            "mutuelle",
            "adapter",
            "calls",
            "last success",
            "last error",
            "pending",
            "oldest pending",
        ],
    )
    .right(&[5]);
    for p in partners {
        let err = if p.last_error_ms > 0 {
            format!(
                "{} {}",
                when(l, p.last_error_ms),
                l.catalogue().partner_error(&p.last_error)
            )
        } else {
            when(l, 0)
        };
        let calls = if p.paused_ms > 0 {
            format!("{} ({})", l.t("paused"), p.paused_by)
        } else {
            match p.circuit.as_str() {
                "open" => format!(
                    "{} {}",
                    l.t("circuit open until"),
                    when(l, p.circuit_open_until_ms)
                ),
                "half_open" => l.t("circuit half-open (trial call)").to_string(),
                _ => l.t("going").to_string(),
            }
        };
        let oldest = if p.oldest_pending_ms > 0 {
            when(l, p.oldest_pending_ms)
        } else {
            "-".to_string()
        };
        t.row(vec![
            p.mutuelle_id.clone(),
            p.adapter.clone(),
            calls,
            when(l, p.last_success_ms),
            err,
            p.pending.to_string(),
            oldest,
        ]);
    }
    t.render()
}
