//! `passerelle period ...` and `passerelle statement ...`.

use super::*;

use passerelle_files::cells::defuse;

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

/// The statement as CSV, written page by page, for programs: one row per
/// line owed, one per recovery (its negative mutuelle share alone), so that
/// the mutuelle_share column sums to the net amount due, then an `end` row
/// that counts the lines (a file without it was cut short). Its text cells
/// are defused against formulas as the console's are
/// (`passerelle_files::cells::defuse`): a file opened in a spreadsheet
/// runs none.
pub struct StatementCsv<W: std::io::Write> {
    w: csv::Writer<W>,
    /// The `line` rows written.
    lines: u64,
}

/// The word of the `status` column for a line whose claim was cancelled
/// after its period closed (empty for any other).
pub const CANCELLED_AFTER_CLOSE: &str = "cancelled_after_close";

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
            "status",
        ])?;
        Ok(StatementCsv { w, lines: 0 })
    }

    /// The lines of one page.
    pub fn lines(&mut self, s: &settlement::Statement) -> std::io::Result<()> {
        let p = s.period.clone().unwrap_or_default();
        let period = p.number.to_string();
        for payee in &s.payees {
            for l in &payee.lines {
                self.w.write_record([
                    "line",
                    &defuse(&p.scheme_id),
                    &defuse(&p.mutuelle_id),
                    &period,
                    &payee.payee_type,
                    &defuse(&payee.payee_id),
                    &defuse(&l.claim_id),
                    &defuse(&l.invoice_number),
                    &defuse(&l.date_of_care),
                    &defuse(&l.member_number),
                    &l.sequence.to_string(),
                    &defuse(&l.act_code),
                    &l.billed.to_string(),
                    &l.scheme_share.to_string(),
                    &l.mutuelle_share.to_string(),
                    &l.patient_share.to_string(),
                    &defuse(&p.currency),
                    if l.cancelled_since {
                        CANCELLED_AFTER_CLOSE
                    } else {
                        ""
                    },
                ])?;
                self.lines += 1;
            }
        }
        Ok(())
    }

    /// The recoveries (of the first page), after every line: the mutuelle
    /// share taken back, negative, and no billed, scheme or patient share
    /// (empty: they belong to the cancelled claim's own period, and a row
    /// of zeros would read as a line whose shares do not add up).
    pub fn recoveries(
        &mut self,
        p: &settlement::Period,
        recoveries: &[settlement::Recovery],
    ) -> std::io::Result<()> {
        let period = p.number.to_string();
        for r in recoveries {
            self.w.write_record([
                "recovery",
                &defuse(&p.scheme_id),
                &defuse(&p.mutuelle_id),
                &period,
                &r.payee_type,
                &defuse(&r.payee_id),
                &defuse(&r.claim_id),
                &defuse(&r.invoice_number),
                &defuse(&r.date_of_care),
                &defuse(&r.member_number),
                "",
                "",
                "",
                "",
                &r.amount.saturating_neg().to_string(),
                "",
                &defuse(&p.currency),
                "",
            ])?;
        }
        Ok(())
    }

    /// The `end` row, last: the number of `line` rows in its `line`
    /// column, so that a file cut short (it has no such row) is told from
    /// a whole one.
    pub fn finish(mut self, p: &settlement::Period) -> std::io::Result<W> {
        self.w.write_record([
            "end",
            &defuse(&p.scheme_id),
            &defuse(&p.mutuelle_id),
            &p.number.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            &self.lines.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ])?;
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// A whole statement as CSV (one page).
pub fn statement_csv(s: &settlement::Statement) -> String {
    let write = || -> std::io::Result<Vec<u8>> {
        let p = s.period.clone().unwrap_or_default();
        let mut w = StatementCsv::new(Vec::new())?;
        w.lines(s)?;
        w.recoveries(&p, &s.recoveries)?;
        w.finish(&p)
    };
    String::from_utf8(write().unwrap_or_default()).unwrap_or_default()
}

/// Whether a page after the first is of the statement the first page
/// began: the page token names the period, but an open period closed
/// during the export is read closed from then on, and a file of both would
/// mix provisional lines with the closed statement's.
fn same_statement(l: Lang, first: &settlement::Period, page: &settlement::Period) -> Out {
    let open = |p: &settlement::Period| p.state == settlement::PeriodState::Open as i32;
    if open(first) == open(page) {
        return Ok(());
    }
    Err(Failure(l.catalogue().t_args(
        "export-period-changed",
        &[("number", &first.number.to_string())],
    )))
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
            let period = first.period.clone().unwrap_or_default();
            let mut w = StatementCsv::new(out).map_err(io)?;
            w.lines(&first).map_err(io)?;
            while !next.is_empty() {
                let (p, after) = page(std::mem::take(&mut next)).await?;
                next = after;
                same_statement(ctx.lang, &period, &p.period.clone().unwrap_or_default())?;
                w.lines(&p).map_err(io)?;
            }
            w.recoveries(&period, &first.recoveries).map_err(io)?;
            w.finish(&period).map_err(io)?.flush().map_err(io)
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
        same_statement(
            ctx.lang,
            s.period.as_ref().unwrap_or(&Default::default()),
            &p.period.clone().unwrap_or_default(),
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed period's statement of one page: a payee's two lines, the
    /// first of a claim cancelled since, texts a spreadsheet would run as
    /// formulas, and a recovery.
    fn statement() -> settlement::Statement {
        let line = |claim: &str, invoice: &str, cancelled_since: bool| settlement::StatementLine {
            claim_id: claim.into(),
            invoice_number: invoice.into(),
            date_of_care: "2026-03-10".into(),
            member_number: "+22890000000".into(),
            sequence: 1,
            act_code: "@CONS".into(),
            billed: 5_000,
            scheme_share: 3_500,
            mutuelle_share: 1_000,
            patient_share: 500,
            cancelled_since,
        };
        settlement::Statement {
            period: Some(settlement::Period {
                scheme_id: "CNSS".into(),
                mutuelle_id: "MUT-R".into(),
                number: 2,
                state: settlement::PeriodState::Closed as i32,
                currency: "XOF".into(),
                claim_count: 2,
                ..Default::default()
            }),
            payees: vec![settlement::PayeeStatement {
                payee_type: "provider".into(),
                payee_id: "-CHU".into(),
                lines: vec![
                    line("C-1", "=HYPERLINK(\"http://x\")", true),
                    line("C-2", "INV-2", false),
                ],
                ..Default::default()
            }],
            recoveries: vec![settlement::Recovery {
                claim_id: "C-0".into(),
                invoice_number: "INV-0".into(),
                from_period: 1,
                amount: 1_500,
                payee_type: "provider".into(),
                payee_id: "-CHU".into(),
                member_number: "R-1".into(),
                date_of_care: "2026-02-10".into(),
            }],
            next_page_token: String::new(),
        }
    }

    fn rows(csv: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        r.records()
            .map(|rec| {
                headers
                    .iter()
                    .cloned()
                    .zip(rec.unwrap().iter().map(String::from))
                    .collect()
            })
            .collect()
    }

    /// `statement export`'s text cells get the console's apostrophe before
    /// a formula's first character, where they were written as received
    /// (docs/mutuelle-guide.md had clerks open this file).
    #[test]
    fn the_export_defuses_formulas_as_the_console_does() {
        let rows = rows(&statement_csv(&statement()));
        let first = &rows[0];
        assert_eq!(first["invoice_number"], "'=HYPERLINK(\"http://x\")");
        assert_eq!(first["member_number"], "'+22890000000");
        assert_eq!(first["act_code"], "'@CONS");
        assert_eq!(first["payee_id"], "'-CHU");
        assert_eq!(rows[2]["payee_id"], "'-CHU", "the recovery's too");
        assert_eq!(rows[1]["invoice_number"], "INV-2", "other text as it is");
    }

    /// A line whose claim was cancelled after the close says so in its
    /// `status`, as `statement show` does; the others leave it empty.
    #[test]
    fn the_export_marks_a_line_cancelled_after_the_close() {
        let rows = rows(&statement_csv(&statement()));
        assert_eq!(
            (rows[0]["claim_id"].as_str(), rows[0]["status"].as_str()),
            ("C-1", CANCELLED_AFTER_CLOSE)
        );
        assert_eq!(rows[1]["status"], "");
        assert_eq!(rows[2]["status"], "", "a recovery has no status");
    }

    /// A recovery's row has its mutuelle share alone, negative: no billed,
    /// scheme or patient share (they were 0, and the row read as a line
    /// whose shares do not add up); every line still balances, and the
    /// mutuelle share sums to the net due.
    #[test]
    fn a_recovery_has_its_mutuelle_share_alone() {
        let rows = rows(&statement_csv(&statement()));
        let recovery = &rows[2];
        assert_eq!(recovery["kind"], "recovery");
        assert_eq!(
            [
                &recovery["billed"],
                &recovery["scheme_share"],
                &recovery["mutuelle_share"],
                &recovery["patient_share"],
            ],
            ["", "", "-1500", ""]
        );
        let n = |r: &std::collections::HashMap<String, String>, c: &str| {
            r[c].parse::<i64>().unwrap_or(0)
        };
        for l in rows.iter().filter(|r| r["kind"] == "line") {
            assert_eq!(
                n(l, "scheme_share") + n(l, "mutuelle_share") + n(l, "patient_share"),
                n(l, "billed")
            );
        }
        let m: i64 = rows.iter().map(|r| n(r, "mutuelle_share")).sum();
        assert_eq!(m, 2 * 1_000 - 1_500);
    }

    /// The file ends with an `end` row that counts its lines: a file cut
    /// short has none.
    #[test]
    fn the_export_ends_with_its_count_of_lines() {
        let rows = rows(&statement_csv(&statement()));
        assert_eq!(rows.len(), 4, "two lines, a recovery, the end");
        let end = &rows[3];
        assert_eq!(
            (
                end["kind"].as_str(),
                end["period"].as_str(),
                end["line"].as_str()
            ),
            ("end", "2", "2")
        );
        assert!(
            ["billed", "mutuelle_share", "claim_id"]
                .iter()
                .all(|c| end[*c].is_empty()),
            "{end:?}"
        );
    }

    /// A page of an open period that was closed since the first page is
    /// refused, in the command line's language: the lines would mix the
    /// provisional statement with the closed one.
    #[test]
    fn a_period_closed_between_pages_is_refused() {
        let open = settlement::Period {
            number: 3,
            state: settlement::PeriodState::Open as i32,
            ..Default::default()
        };
        let closed = settlement::Period {
            state: settlement::PeriodState::Closed as i32,
            ..open.clone()
        };
        let settled = settlement::Period {
            state: settlement::PeriodState::Settled as i32,
            ..open.clone()
        };
        assert!(same_statement(Lang::Fr, &open, &open).is_ok());
        assert!(
            same_statement(Lang::Fr, &closed, &settled).is_ok(),
            "a closed statement's lines never change"
        );
        let Err(Failure(said)) = same_statement(Lang::Fr, &open, &closed) else {
            panic!("a page of the closed period after the open one's");
        };
        assert!(
            said.starts_with("La période 3 a été clôturée pendant la lecture de son bordereau"),
            "{said}"
        );
        let Err(Failure(said)) = same_statement(Lang::En, &open, &closed) else {
            panic!("refused");
        };
        assert!(said.starts_with("Period 3 was closed"), "{said}");
    }
}
