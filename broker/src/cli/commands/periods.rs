//! `passerelle period ...` and `passerelle statement ...`.

use super::*;

fn period_state_name(s: i32) -> String {
    let name = settlement::PeriodState::try_from(s)
        .ok()
        .filter(|s| *s != settlement::PeriodState::Unspecified);
    enum_word(name.map(|s| s.as_str_name()), "PERIOD_STATE_")
}

fn periods_table(l: Lang, periods: &[settlement::Period]) -> String {
    let mut t = Table::new(
        l,
        &[
            "period",
            "state",
            "claims",
            "billed (B)",
            "scheme (S)",
            "mutuelle (M)",
            "patient (P)",
            "recoveries",
            "net due",
            "reference",
        ],
    )
    .right(&[0, 2, 3, 4, 5, 6, 7, 8]);
    for p in periods {
        let tot = p.totals.unwrap_or_default();
        let c = p.currency.as_str();
        t.row(vec![
            p.number.to_string(),
            l.state(&period_state_name(p.state)).to_string(),
            p.claim_count.to_string(),
            l.money(tot.billed, c),
            l.money(tot.scheme_share, c),
            l.money(tot.mutuelle_share, c),
            l.money(tot.patient_share, c),
            l.money(p.recoveries, c),
            l.money(p.net_due, c),
            p.settlement_reference.clone(),
        ]);
    }
    t.render()
}

pub(super) async fn period(ctx: &Ctx, cmd: PeriodCmd) -> Out {
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone());
    let periods = match cmd {
        PeriodCmd::List { scheme, partner } => {
            c.list_periods(settlement::ListPeriodsRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner()
            .periods
        }
        PeriodCmd::Close { scheme, partner } => vec![
            c.close_period(settlement::ClosePeriodRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
        ],
        PeriodCmd::Settle {
            scheme,
            partner,
            number,
            reference,
        } => vec![
            c.mark_settled(settlement::MarkSettledRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
                number,
                reference,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
        ],
    };
    if ctx.json {
        ctx.print(&settlement::ListPeriodsResponse { periods });
    } else {
        out!("{}", periods_table(ctx.lang, &periods));
    }
    Ok(())
}

/// The statement as CSV: one row per line owed, one per recovery (as a
/// negative mutuelle share), so that the mutuelle_share column sums to the
/// net amount due.
pub fn statement_csv(s: &settlement::Statement) -> String {
    let p = s.period.clone().unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "kind",
        "scheme_id",
        "mutuelle_id",
        "period",
        "payee_type",
        "payee_id",
        "claim_id",
        "invoice_number",
        "date_of_care",
        "member_number",
        "line",
        "act_code",
        "billed",
        "scheme_share",
        "mutuelle_share",
        "patient_share",
        "currency",
    ]);
    let period = p.number.to_string();
    for payee in &s.payees {
        for l in &payee.lines {
            let _ = w.write_record([
                "line",
                &p.scheme_id,
                &p.mutuelle_id,
                &period,
                &payee.payee_type,
                &payee.payee_id,
                &l.claim_id,
                &l.invoice_number,
                &l.date_of_care,
                &l.member_number,
                &l.sequence.to_string(),
                &l.act_code,
                &l.billed.to_string(),
                &l.scheme_share.to_string(),
                &l.mutuelle_share.to_string(),
                &l.patient_share.to_string(),
                &p.currency,
            ]);
        }
    }
    for r in &s.recoveries {
        let _ = w.write_record([
            "recovery",
            &p.scheme_id,
            &p.mutuelle_id,
            &period,
            &r.payee_type,
            &r.payee_id,
            &r.claim_id,
            &r.invoice_number,
            "",
            "",
            "",
            "",
            "0",
            "0",
            &(-r.amount).to_string(),
            "0",
            &p.currency,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

pub(super) async fn statement(ctx: &Ctx, cmd: StatementCmd) -> Out {
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone());
    let (scheme, partner, number, output, export) = match cmd {
        StatementCmd::Show {
            scheme,
            partner,
            number,
        } => (scheme, partner, number, None, false),
        StatementCmd::Export {
            scheme,
            partner,
            number,
            output,
        } => (scheme, partner, number, output, true),
    };
    let s = c
        .get_statement(settlement::GetStatementRequest {
            scheme_id: scheme,
            mutuelle_id: partner,
            number: number.unwrap_or(0),
        })
        .await
        .map_err(|s| status_failure(s, None))?
        .into_inner();
    if export {
        let text = statement_csv(&s);
        match output {
            Some(path) => std::fs::write(&path, text)
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?,
            None => out!("{text}"),
        }
        return Ok(());
    }
    let p = s.period.clone().unwrap_or_default();
    if ctx.json {
        ctx.print(&s);
        return Ok(());
    }
    let l = ctx.lang;
    let cur = p.currency.as_str();
    outln!(
        "{} {} x {}, {} {} ({})",
        l.t("scheme"),
        p.scheme_id,
        p.mutuelle_id,
        l.t("period"),
        p.number,
        l.state(&period_state_name(p.state))
    );
    for payee in &s.payees {
        outln!(
            "\n{} {}: {}",
            l.t("payee"),
            l.t(if payee.payee_type == "member" {
                "member"
            } else {
                "provider"
            }),
            payee.payee_id
        );
        let mut t = Table::new(
            l,
            &[
                "claim",
                "invoice",
                "date of care",
                "line",
                "act",
                "billed (B)",
                "scheme (S)",
                "mutuelle (M)",
                "patient (P)",
            ],
        )
        .right(&[3, 5, 6, 7, 8]);
        for line in &payee.lines {
            t.row(vec![
                line.claim_id.clone(),
                line.invoice_number.clone(),
                line.date_of_care.clone(),
                line.sequence.to_string(),
                line.act_code.clone(),
                l.money(line.billed, cur),
                l.money(line.scheme_share, cur),
                l.money(line.mutuelle_share, cur),
                l.money(line.patient_share, cur),
            ]);
        }
        let tot = payee.totals.unwrap_or_default();
        t.row(vec![
            l.t("total").to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            l.money(tot.billed, cur),
            l.money(tot.scheme_share, cur),
            l.money(tot.mutuelle_share, cur),
            l.money(tot.patient_share, cur),
        ]);
        out!("{}", t.render());
    }
    if !s.recoveries.is_empty() {
        outln!("\n{}", l.t("recoveries"));
        let mut t =
            Table::new(l, &["claim", "invoice", "from period", "payee", "amount"]).right(&[2, 4]);
        for r in &s.recoveries {
            t.row(vec![
                r.claim_id.clone(),
                r.invoice_number.clone(),
                r.from_period.to_string(),
                r.payee_id.clone(),
                l.money(r.amount, cur),
            ]);
        }
        out!("{}", t.render());
    }
    let tot = p.totals.unwrap_or_default();
    outln!(
        "\n{} (M): {}   {}: {}   {}: {} {}",
        l.t("total"),
        l.money(tot.mutuelle_share, cur),
        l.t("recoveries"),
        l.money(p.recoveries, cur),
        l.t("net due"),
        l.money(p.net_due, cur),
        cur
    );
    Ok(())
}
