//! Remittance advice in the console (avis de paiement): for a settled
//! period, what its transfer pays each payee, with each payee's part as a
//! CSV that French Excel opens and as a FHIR R4 PaymentReconciliation, so
//! that a hospital's accountant matches a bank transfer to claims. Read
//! through `SettlementService.GetRemittanceAdvice`, as the person.

use super::*;

/// The columns of a payee's part, CSV and workbook alike: the amount,
/// then a line's state (a claim cancelled after the close, which the
/// transfer still pays and a later one takes back).
const COLUMNS: [&str; 9] = [
    "remittance-reference",
    "remittance-payee",
    "col-claim",
    "col-invoice",
    "col-date",
    "col-line",
    "col-act",
    "col-mutuelle-share",
    "col-state",
];

/// The column of the amounts (before the state), where the totals row
/// writes the payee's.
const AMOUNT_COLUMN: usize = COLUMNS.len() - 2;

/// The state's column, after the amount.
const STATE_COLUMN: usize = COLUMNS.len() - 1;

/// The headings: the amount's names the currency, the state's does not.
fn column_headings(lang: Lang, currency: &str) -> Vec<String> {
    let mut out = super::headings(lang, &COLUMNS[..STATE_COLUMN], AMOUNT_COLUMN, currency);
    out.push(lang.t(COLUMNS[STATE_COLUMN]));
    out
}

/// The totals row's label: "Total", or for a payee who owes (a negative
/// amount, kept signed so that the file's amounts still add up) a label
/// that says nothing is paid.
fn total_label(lang: Lang, amount: i64) -> String {
    lang.t(if amount < 0 {
        "remittance-total-owed"
    } else {
        "claims-total"
    })
}

/// A payee's part as an Excel workbook: text as text (never a formula),
/// dates as dates, amounts as numbers in the currency's units, a totals
/// row: what the transfer pays this payee, or (negative) what it owes.
fn workbook(
    lang: Lang,
    currency: &str,
    reference: &str,
    a: &settlement::RemittanceAdvice,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(lang.t("remittance-sheet"))?;
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let amount = sheet_amount_format(currency);
    for (col, heading) in column_headings(lang, currency).iter().enumerate() {
        ws.write_string_with_format(0, col as u16, heading, &bold)?;
    }
    let payee = lang.payee_words(&a.payee_type, &a.payee_id);
    let mut row = 1u32;
    for l in &a.lines {
        ws.write_string(row, 0, reference)?;
        ws.write_string(row, 1, &payee)?;
        ws.write_string(row, 2, &l.claim_id)?;
        ws.write_string(row, 3, &l.invoice_number)?;
        super::sheet_date(ws, row, 4, &l.date_of_care, &date)?;
        ws.write_number(row, 5, l.sequence)?;
        ws.write_string(row, 6, &l.act_code)?;
        ws.write_number_with_format(
            row,
            AMOUNT_COLUMN as u16,
            sheet_amount(l.mutuelle_share, currency),
            &amount,
        )?;
        if l.cancelled_since {
            ws.write_string(row, STATE_COLUMN as u16, lang.t("export-cancelled-since"))?;
        }
        row += 1;
    }
    for x in &a.recoveries {
        ws.write_string(row, 0, reference)?;
        ws.write_string(row, 1, &payee)?;
        ws.write_string(row, 2, &x.claim_id)?;
        ws.write_string(row, 3, &x.invoice_number)?;
        // The cancelled claim's date of care.
        super::sheet_date(ws, row, 4, &x.date_of_care, &date)?;
        ws.write_string(
            row,
            6,
            lang.t_args(
                "statement-recovery",
                &[("period", &x.from_period.to_string())],
            ),
        )?;
        ws.write_number_with_format(
            row,
            AMOUNT_COLUMN as u16,
            sheet_amount(x.amount.saturating_neg(), currency),
            &amount,
        )?;
        row += 1;
    }
    ws.write_string_with_format(row, 0, total_label(lang, a.amount), &bold)?;
    ws.write_number_with_format(
        row,
        AMOUNT_COLUMN as u16,
        sheet_amount(a.amount, currency),
        &amount.clone().set_bold(),
    )?;
    ws.set_freeze_panes(1, 0)?;
    wb.save_to_buffer()
}

/// The payees a page of the remittance advice lists.
const PAYEES_PAGE: u32 = 100;

async fn advice(
    c: &Console,
    ctx: &Ctx,
    msg: settlement::GetRemittanceAdviceRequest,
) -> Result<settlement::GetRemittanceAdviceResponse, Reply> {
    c.call(&ctx.person, ctx.peer, msg, |r| {
        c.settlement.get_remittance_advice(r)
    })
    .await
    .map_err(|e| ctx.status(e))
}

/// A settled period's payees, a page of them, each with its claims, what
/// the transfer pays it and its files: their totals only, so that a period
/// of any size is listed (a payee's lines are read when its file is).
pub(super) async fn page_of(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number)): Path<(String, String, u32)>,
    Query(q): Query<super::PageQuery>,
) -> Response {
    let lang = ctx.lang;
    let msg = settlement::GetRemittanceAdviceRequest {
        scheme_id: scheme.clone(),
        mutuelle_id: mutuelle.clone(),
        number,
        totals_only: true,
        page_size: PAYEES_PAGE,
        page_token: q.page.clone(),
        ..Default::default()
    };
    let r = match advice(&c, &ctx, msg).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let cur = r.period.as_ref().map_or("XOF", |p| p.currency.as_str());
    let mut t = Table::new(
        lang,
        &["remittance-payee", "remittance-claims", "remittance-amount"],
        &[1, 2],
    );
    let mut links = String::new();
    for a in &r.payees {
        let base = format!(
            "/periods/{}/{}/{number}/remittance/{}/{}",
            url(&scheme),
            url(&mutuelle),
            url(&a.payee_type),
            url(&a.payee_id)
        );
        t.row(
            String::new(),
            vec![
                lang.payee_words(&a.payee_type, &a.payee_id),
                lang.amount(i64::from(a.claim_count), ""),
                lang.paid_or_owed(a.amount, cur),
            ],
        );
        links.push_str(&format!(
            "<li>{} <a href=\"{base}.xlsx\" download>{}</a> · <a href=\"{base}.csv\" download>{}</a> · <a href=\"{base}.json\" download>{}</a></li>",
            esc(&lang.t_args(
                "remittance-files",
                &[(
                    "payee",
                    &lang.payee_words(&a.payee_type, &a.payee_id)
                )]
            )),
            esc(&lang.t("remittance-xlsx")),
            esc(&lang.t("remittance-csv")),
            esc(&lang.t("remittance-fhir")),
        ));
    }
    // Under every page, the whole period's net due: what its payees are
    // paid less what those who owe give back (negative: the mutuelle is
    // owed more than it pays, though some payees may still be paid).
    if let Some(p) = &r.period {
        t.foot = vec![
            lang.t("remittance-net-due"),
            lang.amount(i64::from(p.claim_count), ""),
            lang.money(p.net_due, cur),
        ];
    }
    let mut after = String::new();
    // When some payees owe, the net due is not what the transfer paid:
    // both said.
    if r.owed_amount > 0 {
        after.push_str(&format!(
            "<p>{}</p>",
            esc(&lang.transfer_split(r.transfer_amount, r.owed_amount, cur))
        ));
    }
    after.push_str(&format!("<ul class=\"actions\">{links}</ul>"));
    if !q.page.is_empty() {
        // Tokens lead forward only: the way back is to the first page.
        after.push_str(&format!(
            "<p><a href=\"/periods/{}/{}/{number}/remittance\">{}</a></p>",
            url(&scheme),
            url(&mutuelle),
            esc(&lang.t("remittance-first-page"))
        ));
    }
    if !r.next_page_token.is_empty() {
        after.push_str(&format!(
            "<p>{} <a href=\"/periods/{}/{}/{number}/remittance?page={}\">{}</a></p>",
            esc(&lang.t("remittance-more")),
            url(&scheme),
            url(&mutuelle),
            url(&r.next_page_token),
            esc(&lang.t("claims-next"))
        ));
    }
    page(ListPage {
        ui: ctx.ui(lang.t("remittance-title"), "periods"),
        heading: lang.t_args(
            "remittance-heading",
            &[
                ("number", &number.to_string()),
                ("pair", &format!("{scheme} – {mutuelle}")),
                ("reference", &r.transfer_reference),
            ],
        ),
        form: String::new(),
        summary: String::new(),
        tables: vec![(String::new(), t)],
        empty: lang.t("claims-none"),
        after,
    })
}

/// One payee's part: `<id>.xlsx` (a workbook), `<id>.csv` (French Excel:
/// `;`, BOM, headers in the person's language, amounts in the currency's
/// units ([`amount_cell`]), the currency named in their heading, text cells defused,
/// a totals row as the workbook's) or `<id>.json` (its
/// PaymentReconciliation).
pub(super) async fn file_of(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number, payee_type, file)): Path<(String, String, u32, String, String)>,
) -> Response {
    let lang = ctx.lang;
    let (id, kind) = match file.rsplit_once('.') {
        Some((id, "csv")) => (id.to_string(), "csv"),
        Some((id, "json")) => (id.to_string(), "json"),
        Some((id, "xlsx")) => (id.to_string(), "xlsx"),
        _ => {
            return ctx
                .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
                .into_response();
        }
    };
    // A payee's part holds up to all of its lines of the period: one of
    // the exports' places (`MAX_EXPORTS`, two a person), held until the
    // file is written.
    let Some(_slot) = c.exports.take(&ctx.person.user.login) else {
        return super::exports_busy(&ctx);
    };
    let msg = settlement::GetRemittanceAdviceRequest {
        scheme_id: scheme.clone(),
        mutuelle_id: mutuelle.clone(),
        number,
        payee_type: payee_type.clone(),
        payee_id: id.clone(),
        // The FHIR resource's texts in the person's language.
        language: lang.code().into(),
        ..Default::default()
    };
    let r = match advice(&c, &ctx, msg).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(a) = r.payees.first() else {
        return ctx
            .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
            .into_response();
    };
    // The period's currency, which every amount is in.
    let currency = r
        .period
        .as_ref()
        .map(|p| p.currency.clone())
        .unwrap_or_default();
    let name = format!(
        "avis-{}-{}-{number}-{}",
        super::file_part(&mutuelle),
        super::file_part(&scheme),
        super::file_part(&id)
    );
    if kind == "json" {
        return super::attachment(
            "application/fhir+json",
            format!("{name}.json"),
            a.fhir_payment_reconciliation.clone().into_bytes(),
        );
    }
    if kind == "xlsx" {
        // Written on a blocking thread: a large part takes seconds of CPU,
        // which the runtime's workers (the schemes' calls too) do not wait.
        let (reference, a) = (r.transfer_reference.clone(), a.clone());
        let written =
            tokio::task::spawn_blocking(move || workbook(lang, &currency, &reference, &a)).await;
        return match written {
            Ok(Ok(body)) => super::attachment(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                format!("{name}.xlsx"),
                body,
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "console: a remittance workbook was not written");
                ctx.error(StatusCode::INTERNAL_SERVER_ERROR, ctx.t("error-internal"))
                    .into_response()
            }
            Err(e) => {
                tracing::error!(error = %e, "console: a remittance workbook's thread failed");
                ctx.error(StatusCode::INTERNAL_SERVER_ERROR, ctx.t("error-internal"))
                    .into_response()
            }
        };
    }
    let mut out = String::from("\u{feff}");
    let head: Vec<String> = column_headings(lang, &currency)
        .iter()
        .map(|h| cells::csv_text(h))
        .collect();
    out.push_str(&head.join(";"));
    out.push_str("\r\n");
    let payee = lang.payee_words(&a.payee_type, &a.payee_id);
    for l in &a.lines {
        let cells = [
            cells::csv_id(&r.transfer_reference),
            cells::csv_text(&payee),
            cells::csv_id(&l.claim_id),
            cells::csv_id(&l.invoice_number),
            cells::csv_text(&lang.iso_date(&l.date_of_care)),
            l.sequence.to_string(),
            cells::csv_id(&l.act_code),
            amount_cell(lang, l.mutuelle_share, &currency),
            if l.cancelled_since {
                cells::csv_text(&lang.t("export-cancelled-since"))
            } else {
                String::new()
            },
        ];
        out.push_str(&cells.join(";"));
        out.push_str("\r\n");
    }
    for x in &a.recoveries {
        let cells = [
            cells::csv_id(&r.transfer_reference),
            cells::csv_text(&payee),
            cells::csv_id(&x.claim_id),
            cells::csv_id(&x.invoice_number),
            cells::csv_text(&lang.iso_date(&x.date_of_care)),
            String::new(),
            cells::csv_text(&lang.t_args(
                "statement-recovery",
                &[("period", &x.from_period.to_string())],
            )),
            amount_cell(lang, x.amount.saturating_neg(), &currency),
            String::new(),
        ];
        out.push_str(&cells.join(";"));
        out.push_str("\r\n");
    }
    // The totals row, as the workbook's: what the transfer pays this
    // payee, or (negative) what it owes.
    let mut total = vec![String::new(); COLUMNS.len()];
    total[0] = cells::csv_text(&total_label(lang, a.amount));
    total[AMOUNT_COLUMN] = amount_cell(lang, a.amount, &currency);
    out.push_str(&total.join(";"));
    out.push_str("\r\n");
    super::attachment(
        "text/csv; charset=utf-8",
        format!("{name}.csv"),
        out.into_bytes(),
    )
}
