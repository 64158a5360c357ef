//! Opening balances in the console (soldes d'ouverture): a mutuelle joining
//! during a year declares, from a spreadsheet like the members file, what
//! each member had already consumed of a ceiling that year. Checked first
//! (every bad cell by line and column, then the broker's own
//! ImportOpeningBalances as a dry run), applied without a new upload (the
//! file is kept for the session, bound to the mutuelle and to the SHA-256 of
//! the file checked, as the members file is).

use super::*;
use passerelle_files::opening_csv::OpeningFile;

fn form(ui: &Ui, lang: Lang) -> String {
    format!(
        "<p>{}</p><form method=\"post\" action=\"/opening\" enctype=\"multipart/form-data\" class=\"filters\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{}<input type=\"file\" name=\"file\" accept=\".csv,.xlsx,text/csv\" required></label>\
         <button class=\"primary\" name=\"action\" value=\"check\">{}</button></form>",
        esc(&lang.t("opening-intro")),
        esc(&ui.csrf),
        esc(&lang.t("roster-file")),
        esc(&lang.t("roster-check"))
    )
}

pub(super) async fn page_get(ctx: Ctx) -> Response {
    if ctx.person.mutuelle().is_none() {
        return ctx.forbidden().into_response();
    }
    let ui = ctx.ui(ctx.t("opening-title"), "members");
    let form = form(&ui, ctx.lang);
    page(ListPage {
        ui,
        heading: ctx.t("opening-title"),
        form,
        summary: String::new(),
        tables: Vec::new(),
        empty: String::new(),
        after: String::new(),
    })
}

/// The file's balances, or why it cannot be read, in the reader's language.
pub(super) fn read(lang: Lang, name: &str, bytes: &[u8]) -> Result<OpeningFile, String> {
    let text = super::spreadsheet_text(lang, bytes, &[])?;
    OpeningFile::parse(&text, name).map_err(|e| lang.opening_unreadable(&e))
}

/// A check or an apply.
pub(super) async fn page_post(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    multipart: axum::extract::Multipart,
) -> Response {
    let lang = ctx.lang;
    let Some(mid) = ctx.person.mutuelle().map(str::to_string) else {
        return ctx.forbidden().into_response();
    };
    let Posted {
        name, bytes, apply, ..
    } = match posted_file(&c, &ctx, multipart, &mid).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let session = ctx.person.session.id_hash.clone();
    let ui = ctx.ui(lang.t("opening-title"), "members");
    let form = form(&ui, lang);
    let shown = |ui: Ui, form: String, summary: String, tables, after| {
        page(ListPage {
            ui,
            heading: lang.t("opening-title"),
            form,
            summary,
            tables,
            empty: String::new(),
            after,
        })
    };
    let (bytes, reading) = {
        let name = name.clone();
        super::read_off_runtime(lang, bytes, move |b| read(lang, &name, b)).await
    };
    let file = match reading {
        Ok(f) => f,
        Err(msg) => {
            let form = format!("<p class=\"error\" role=\"alert\">{}</p>{form}", esc(&msg));
            return shown(ui, form, String::new(), Vec::new(), String::new());
        }
    };
    let mut bad = Table::new(
        lang,
        &["roster-line", "roster-column", "roster-problem"],
        &[0],
    );
    for b in file.bad.iter().take(super::ROSTER_CHANGES_SHOWN) {
        bad.row(
            String::new(),
            vec![
                b.line.to_string(),
                lang.t(&format!("opening-col-{}", b.column)),
                match lang {
                    Lang::Fr => b.french.clone(),
                    Lang::En => b.english.clone(),
                },
            ],
        );
    }
    super::more_bad_rows(lang, &mut bad, file.bad.len());
    if !file.bad.is_empty() {
        let after = format!(
            "<p class=\"error\">{}</p>",
            esc(&lang.t("roster-fix-first"))
        );
        return shown(
            ui,
            form,
            String::new(),
            vec![(super::bad_rows_heading(lang, file.bad.len()), bad)],
            after,
        );
    }
    // More rows than one call takes: said in words, before anything is
    // sent (the broker's refusal names no row).
    if let Some(msg) = lang.opening_too_many(file.balances.len()) {
        let form = format!("<p class=\"error\" role=\"alert\">{}</p>{form}", esc(&msg));
        return shown(ui, form, String::new(), Vec::new(), String::new());
    }
    let msg = roster::ImportOpeningBalancesRequest {
        mutuelle_id: mid.clone(),
        balances: file.balances.clone(),
        dry_run: !apply,
    };
    let r = match c
        .call(&ctx.person, ctx.peer, msg, |r| {
            c.roster.import_opening_balances(r)
        })
        .await
    {
        Ok(r) => r,
        Err(e) if e.code() == tonic::Code::InvalidArgument => {
            // Each refused row by its line in the file, in words.
            use tonic_types::StatusExt;
            for v in e
                .get_error_details()
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default()
            {
                let (i, column) = v
                    .field
                    .strip_prefix("balances[")
                    .and_then(|r| r.split_once("]."))
                    .and_then(|(i, c)| Some((i.parse::<usize>().ok()?, c.to_string())))
                    .unwrap_or((usize::MAX, v.field.clone()));
                // A refusal of no row of the file: the broker's words.
                let row = match file.lines.get(i) {
                    Some(line) => vec![
                        line.to_string(),
                        lang.t(&format!("opening-col-{column}")),
                        lang.t(&format!("opening-bad-{column}")),
                    ],
                    None => vec![String::new(), String::new(), v.description.clone()],
                };
                bad.row(String::new(), row);
            }
            let after = format!(
                "<p class=\"error\">{}</p>",
                esc(&lang.t("roster-fix-first"))
            );
            return shown(
                ui,
                form,
                String::new(),
                vec![(lang.t("roster-bad-rows"), bad)],
                after,
            );
        }
        Err(e) => return ctx.status(e).into_response(),
    };
    let counts = [
        ("set", u64::from(r.set)),
        ("unchanged", u64::from(r.unchanged)),
    ];
    let mut after = String::new();
    let summary = if apply {
        let _ = c.broker.store().delete_upload(&session).await;
        lang.counted("opening-applied", &counts)
    } else {
        after = match keep_checked(&c, &ctx, &ui, &mid, "/opening", &name, &bytes, "").await {
            Ok(form) => form,
            Err(r) => return r,
        };
        lang.counted("opening-would", &counts)
    };
    shown(ui, form, summary, Vec::new(), after)
}
