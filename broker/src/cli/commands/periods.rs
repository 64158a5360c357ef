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
            l.catalogue().amount(i64::from(p.claim_count), ""),
            l.money(tot.billed, c),
            l.money(tot.scheme_share, c),
            l.money(tot.mutuelle_share, c),
            l.money(tot.patient_share, c),
            l.money(p.recoveries.saturating_neg(), c),
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
        PeriodCmd::Close { scheme, partner } => {
            let r = c
                .close_period(settlement::ClosePeriodRequest {
                    scheme_id: scheme,
                    mutuelle_id: partner.clone(),
                })
                .await;
            match r {
                Ok(p) => vec![p.into_inner()],
                Err(s) => return proposed(ctx, &partner, s),
            }
        }
        PeriodCmd::Settle {
            scheme,
            partner,
            number,
            reference,
        } => {
            let r = c
                .mark_settled(settlement::MarkSettledRequest {
                    scheme_id: scheme,
                    mutuelle_id: partner.clone(),
                    number,
                    reference,
                })
                .await;
            match r {
                Ok(p) => vec![p.into_inner()],
                Err(s) => return proposed(ctx, &partner, s),
            }
        }
    };
    if ctx.json {
        ctx.print(&settlement::ListPeriodsResponse { periods });
    } else {
        out!("{}", periods_table(ctx.lang, &periods));
    }
    Ok(())
}

/// Whose period a remittance advice is of, in what currency, and the
/// transfer's reference: the lines above its tables.
fn remittance_heading(l: Lang, r: &settlement::GetRemittanceAdviceResponse) {
    if let Some(p) = &r.period {
        outln!(
            "{} {} ({} {}, {} {}), {}",
            l.t("period"),
            p.number,
            l.t("scheme"),
            p.scheme_id,
            l.t("mutuelle"),
            p.mutuelle_id,
            p.currency
        );
    }
    outln!("{} {}", l.label("reference"), r.transfer_reference);
}

/// A settled period's remittance advice: per payee, what the transfer pays
/// it and for which claims (every payee's: `whole`, then the period's net
/// due); or each payee's PaymentReconciliation.
fn remittance(
    ctx: &Ctx,
    r: &settlement::GetRemittanceAdviceResponse,
    fhir: bool,
    whole: bool,
) -> Out {
    if fhir {
        for a in &r.payees {
            outln!("{}", a.fhir_payment_reconciliation);
        }
        return Ok(());
    }
    if ctx.json {
        ctx.print(r);
        return Ok(());
    }
    let l = ctx.lang;
    let cur = r.period.as_ref().map_or("XOF", |p| p.currency.as_str());
    remittance_heading(l, r);
    for a in &r.payees {
        let colon = l.colon();
        outln!(
            "\n{} {} {}{colon} {}",
            l.t("payee"),
            l.t(if a.payee_type == "member" {
                "member"
            } else {
                "provider"
            }),
            a.payee_id,
            l.catalogue().paid_or_owed(a.amount, cur),
        );
        let mut t = Table::new(
            l,
            &[
                "claim",
                "invoice",
                "date of care",
                "line",
                "act",
                "mutuelle (M)",
            ],
        )
        .right(&[3, 5]);
        for line in &a.lines {
            t.row(vec![
                l.catalogue()
                    .statement_claim(&line.claim_id, line.cancelled_since),
                line.invoice_number.clone(),
                l.catalogue().iso_date(&line.date_of_care),
                line.sequence.to_string(),
                line.act_code.clone(),
                l.money(line.mutuelle_share, cur),
            ]);
        }
        for x in &a.recoveries {
            t.row(vec![
                x.claim_id.clone(),
                x.invoice_number.clone(),
                // The cancelled claim's date of care.
                l.catalogue().iso_date(&x.date_of_care),
                String::new(),
                l.catalogue().t_args(
                    "statement-recovery",
                    &[("period", &x.from_period.to_string())],
                ),
                l.money(x.amount.saturating_neg(), cur),
            ]);
        }
        out!("{}", t.render());
    }
    if let Some(p) = r.period.as_ref().filter(|_| whole) {
        outln!(
            "\n{} {}",
            l.label("net due"),
            l.catalogue().money(p.net_due, cur)
        );
        transfer_split(l, r, cur);
    }
    Ok(())
}

/// Under the period's net due, when some payees owe: what the transfer
/// paid and what they give back (the net due alone says neither).
fn transfer_split(l: Lang, r: &settlement::GetRemittanceAdviceResponse, currency: &str) {
    if r.owed_amount > 0 {
        outln!(
            "{}",
            l.catalogue()
                .transfer_split(r.transfer_amount, r.owed_amount, currency)
        );
    }
}

/// A settled period's payees with their claims and what the transfer pays
/// each, without their lines.
fn remittance_totals(ctx: &Ctx, r: &settlement::GetRemittanceAdviceResponse) -> Out {
    if ctx.json {
        ctx.print(r);
        return Ok(());
    }
    let l = ctx.lang;
    let cur = r.period.as_ref().map_or("XOF", |p| p.currency.as_str());
    remittance_heading(l, r);
    let mut t = Table::new(l, &["payee", "claims", "amount"]).right(&[1, 2]);
    for a in &r.payees {
        let kind = if a.payee_type == "member" {
            "member"
        } else {
            "provider"
        };
        t.row(vec![
            format!("{} {}", l.t(kind), a.payee_id),
            l.catalogue().amount(i64::from(a.claim_count), ""),
            l.catalogue().paid_or_owed(a.amount, cur),
        ]);
    }
    // The period's net due: what the payees are paid less what those who
    // owe give back (negative: the mutuelle is owed more than it pays).
    if let Some(p) = &r.period {
        t.row(vec![
            l.t("net due").to_string(),
            l.catalogue().amount(i64::from(p.claim_count), ""),
            l.catalogue().money(p.net_due, cur),
        ]);
    }
    out!("{}", t.render());
    transfer_split(l, r, cur);
    Ok(())
}

/// The statement as CSV, written page by page: one row per line owed, one
/// per recovery (as a negative mutuelle share), so that the mutuelle_share
/// column sums to the net amount due.
pub struct StatementCsv<W: std::io::Write> {
    w: csv::Writer<W>,
}

impl<W: std::io::Write> StatementCsv<W> {
    /// The header row.
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
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
        ])?;
        Ok(StatementCsv { w })
    }

    /// The lines of one page.
    pub fn lines(&mut self, s: &settlement::Statement) -> std::io::Result<()> {
        let p = s.period.clone().unwrap_or_default();
        let period = p.number.to_string();
        for payee in &s.payees {
            for l in &payee.lines {
                self.w.write_record([
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
                ])?;
            }
        }
        Ok(())
    }

    /// The recoveries (of the first page), after every line.
    pub fn recoveries(
        &mut self,
        p: &settlement::Period,
        recoveries: &[settlement::Recovery],
    ) -> std::io::Result<()> {
        let period = p.number.to_string();
        for r in recoveries {
            self.w.write_record([
                "recovery",
                &p.scheme_id,
                &p.mutuelle_id,
                &period,
                &r.payee_type,
                &r.payee_id,
                &r.claim_id,
                &r.invoice_number,
                &r.date_of_care,
                &r.member_number,
                "",
                "",
                "0",
                "0",
                &(-r.amount).to_string(),
                "0",
                &p.currency,
            ])?;
        }
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// A whole statement as CSV (one page).
pub fn statement_csv(s: &settlement::Statement) -> String {
    let write = || -> std::io::Result<Vec<u8>> {
        let mut w = StatementCsv::new(Vec::new())?;
        w.lines(s)?;
        w.recoveries(&s.period.clone().unwrap_or_default(), &s.recoveries)?;
        w.finish()
    };
    String::from_utf8(write().unwrap_or_default()).unwrap_or_default()
}

/// Adds a page to the statement read so far (a payee split across pages
/// becomes one, its totals summed).
fn merge_page(whole: &mut settlement::Statement, page: settlement::Statement) {
    for payee in page.payees {
        match whole.payees.last_mut() {
            Some(last)
                if last.payee_type == payee.payee_type && last.payee_id == payee.payee_id =>
            {
                let (t, add) = (
                    last.totals.get_or_insert_with(Default::default),
                    payee.totals.unwrap_or_default(),
                );
                t.billed = t.billed.saturating_add(add.billed);
                t.scheme_share = t.scheme_share.saturating_add(add.scheme_share);
                t.mutuelle_share = t.mutuelle_share.saturating_add(add.mutuelle_share);
                t.patient_share = t.patient_share.saturating_add(add.patient_share);
                last.lines.extend(payee.lines);
            }
            _ => whole.payees.push(payee),
        }
    }
}

pub(super) async fn statement(ctx: &Ctx, cmd: StatementCmd) -> Out {
    // One payee's remittance advice holds up to 50,000 lines and its FHIR
    // resource: about 410 bytes a line, past the default 4 MiB a message.
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES);
    // A large statement is read page by page (`--page-size` lines a
    // request), never whole, by the broker or by this command.
    let (scheme, partner, number, output, export, page_size) = match cmd {
        StatementCmd::Remittance {
            scheme,
            partner,
            number,
            payee_type,
            payee,
            fhir,
            totals,
        } => {
            let mut ask = settlement::GetRemittanceAdviceRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
                number,
                payee_type: payee_type.unwrap_or_default(),
                payee_id: payee.unwrap_or_default(),
                totals_only: totals,
                page_size: if totals { 1_000 } else { 0 },
                // `--fhir`'s texts in the reader's language.
                language: ctx.lang.catalogue().code().to_string(),
                ..Default::default()
            };
            let mut r = c
                .get_remittance_advice(ask.clone())
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if !totals {
                return remittance(ctx, &r, fhir, ask.payee_id.is_empty());
            }
            // Every page of payees, then one answer (a payee is about a
            // hundred bytes: 10,000 payees are about a megabyte).
            while !r.next_page_token.is_empty() {
                if r.next_page_token == ask.page_token {
                    // A broker that names the same page again would never
                    // end: stop rather than loop.
                    return Err(Failure(
                        ctx.lang.t("the broker named the same page twice").into(),
                    ));
                }
                ask.page_token = std::mem::take(&mut r.next_page_token);
                let next = c
                    .get_remittance_advice(ask.clone())
                    .await
                    .map_err(|s| status_failure(s, None))?
                    .into_inner();
                r.payees.extend(next.payees);
                r.next_page_token = next.next_page_token;
            }
            return remittance_totals(ctx, &r);
        }
        StatementCmd::Show {
            scheme,
            partner,
            number,
            page_size,
        } => (scheme, partner, number, None, false, page_size),
        StatementCmd::Export {
            scheme,
            partner,
            number,
            output,
            page_size,
        } => (scheme, partner, number, output, true, page_size),
    };
    let mut request = settlement::GetStatementRequest {
        scheme_id: scheme,
        mutuelle_id: partner,
        number: number.unwrap_or(0),
        page_size,
        page_token: String::new(),
    };
    // One page: the statement's lines from `token` on, and the token of
    // the next page (empty after the last).
    let mut page = async |token: String| {
        request.page_token = token;
        let mut s = c
            .get_statement(request.clone())
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner();
        let next = std::mem::take(&mut s.next_page_token);
        Ok::<_, Failure>((s, next))
    };
    let (first, mut next) = page(String::new()).await?;
    if export {
        let io = |e: std::io::Error| {
            Failure(match &output {
                Some(path) => format!("{}: {e}", path.display()),
                None => e.to_string(),
            })
        };
        // A file is written beside its place and renamed once whole: a
        // failure half way never leaves a partial statement under its name.
        let partial = output.as_ref().map(|path| {
            let mut name = path.as_os_str().to_owned();
            name.push(".partial");
            std::path::PathBuf::from(name)
        });
        let out: Box<dyn std::io::Write> = match &partial {
            Some(path) => Box::new(std::io::BufWriter::new(private_file(path).map_err(io)?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let written = async {
            let mut w = StatementCsv::new(out).map_err(io)?;
            w.lines(&first).map_err(io)?;
            while !next.is_empty() {
                let (p, after) = page(std::mem::take(&mut next)).await?;
                next = after;
                w.lines(&p).map_err(io)?;
            }
            w.recoveries(&first.period.clone().unwrap_or_default(), &first.recoveries)
                .map_err(io)?;
            w.finish().map_err(io)?.flush().map_err(io)
        }
        .await;
        return match (written, &partial, &output) {
            (Ok(()), Some(from), Some(to)) => std::fs::rename(from, to).map_err(io),
            (Ok(()), _, _) => Ok(()),
            (Err(e), Some(from), _) => {
                let _ = std::fs::remove_file(from);
                Err(e)
            }
            (Err(e), None, _) => Err(e),
        };
    }
    let mut s = first;
    while !next.is_empty() {
        let (p, after) = page(std::mem::take(&mut next)).await?;
        next = after;
        merge_page(&mut s, p);
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
    // A settled period's payment, as the console's statement says it.
    if !p.settlement_reference.is_empty() {
        outln!("{} {}", l.label("reference"), p.settlement_reference);
    }
    for payee in &s.payees {
        outln!(
            "\n{} {} {}{}",
            l.t("payee"),
            l.t(if payee.payee_type == "member" {
                "member"
            } else {
                "provider"
            }),
            payee.payee_id,
            l.colon()
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
                l.catalogue()
                    .statement_claim(&line.claim_id, line.cancelled_since),
                line.invoice_number.clone(),
                l.catalogue().iso_date(&line.date_of_care),
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
        // The mutuelle's share taken back, negative, as the console's
        // statement and the exports write it.
        let mut t = Table::new(
            l,
            &[
                "claim",
                "invoice",
                "date of care",
                "member",
                "from period",
                "payee",
                "mutuelle (M)",
            ],
        )
        .right(&[4, 6]);
        for r in &s.recoveries {
            t.row(vec![
                r.claim_id.clone(),
                r.invoice_number.clone(),
                l.catalogue().iso_date(&r.date_of_care),
                r.member_number.clone(),
                r.from_period.to_string(),
                l.catalogue().payee_words(&r.payee_type, &r.payee_id),
                l.money(r.amount.saturating_neg(), cur),
            ]);
        }
        out!("{}", t.render());
    }
    let tot = p.totals.unwrap_or_default();
    outln!(
        "\n{} (M){} {}   {} {}   {} {} {}",
        l.t("total"),
        l.colon(),
        l.money(tot.mutuelle_share, cur),
        l.label("recoveries"),
        l.money(p.recoveries.saturating_neg(), cur),
        l.label("net due"),
        l.money(p.net_due, cur),
        cur
    );
    Ok(())
}

/// A file only its owner reads (0600 on Unix): a statement names members
/// and their care, whatever the umask.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}
