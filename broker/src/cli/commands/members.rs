//! `passerelle roster import`: the roster spreadsheet, streamed in chunks;
//! `passerelle roster opening`: opening balances.

use super::*;

pub(super) async fn roster_import(
    ctx: &Ctx,
    file: &Path,
    partner: String,
    dry_run: bool,
    as_of: Option<String>,
    skip_bad_rows: bool,
    no_end_dating: bool,
) -> Out {
    let l = ctx.lang;
    let cat = l.catalogue();
    let f = RosterFile::read(file).map_err(|e| Failure(cat.roster_unreadable(&e)))?;
    let colon = l.colon();
    for b in &f.bad {
        eprintln!(
            "{}{colon} {} {}{colon} {}{colon} {}",
            file.display(),
            l.t("line"),
            b.line,
            b.field,
            cat.roster_problem(&b.kind)
        );
    }
    // A dry run goes on to ask the broker about the good rows, round
    // after round as --skip-bad-rows does, so that it lists every row the
    // broker refuses too (as the console's check does), then fails.
    let collect = skip_bad_rows || dry_run;
    if !f.bad.is_empty() && !collect {
        return Err(Failure(cat.t_args(
            "cli-bad-rows-nothing-imported",
            &[("count", &f.bad_rows().to_string())],
        )));
    }
    let (mut keep, unknown_member) = f.kept_on_import();
    if unknown_member && !no_end_dating {
        eprintln!(
            "{}",
            l.t(
                "warning: a skipped row has no member number: no member is end-dated by this import"
            )
        );
    }
    let send = |members: Vec<roster::Member>, keep: Vec<String>| {
        let header = roster::ImportRosterRequest {
            part: Some(roster::import_roster_request::Part::Header(
                roster::ImportRosterHeader {
                    mutuelle_id: partner.clone(),
                    as_of: as_of.clone().unwrap_or_default(),
                    dry_run,
                    keep_member_numbers: keep,
                    no_end_dating: no_end_dating || unknown_member,
                },
            )),
        };
        let batches: Vec<_> = members
            .chunks(1000)
            .map(|chunk| roster::ImportRosterRequest {
                part: Some(roster::import_roster_request::Part::Members(
                    roster::MemberBatch {
                        members: chunk.to_vec(),
                    },
                )),
            })
            .collect();
        let stream: Vec<_> = std::iter::once(header).chain(batches).collect();
        // The answer lists every member that changes: 500,000 at most,
        // past the default 4 MiB a message.
        let mut c = roster::roster_service_client::RosterServiceClient::new(ctx.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        async move { c.import_roster(tokio_stream::iter(stream)).await }
    };
    // Rows the broker refuses (an unknown product, a beneficiary another
    // mutuelle covers) are bad rows too: with --skip-bad-rows they are
    // reported, left as they are (kept, never end-dated), and the others
    // imported. An error lists at most 20 rows: it is sent again without
    // them until it passes or a round removes nothing.
    let mut members = f.members.clone();
    let mut lines = f.first_line.clone();
    let mut skipped_by_broker = 0;
    let r = loop {
        let s = match send(members.clone(), keep.clone()).await {
            Ok(r) => break r.into_inner(),
            Err(s) => s,
        };
        let refused = crate::api::roster::refused_members(&s, &members);
        if refused.is_empty() {
            return Err(status_failure(s, Some(&lines)));
        }
        // Collecting, the rows counted without a name are named by the
        // next round; otherwise the person is told to check again.
        let rows = refused_rows(&s, &refused, &lines, !collect);
        if !collect {
            return Err(Failure(format!("{}{rows}", file_refusal_head(&s))));
        }
        eprintln!("{}{} {}", file.display(), l.colon(), rows.trim_start());
        // Kept as they are: a letter-case slip keeps the member as stored,
        // which the import ended (one rule with the console).
        keep.extend(crate::api::roster::kept_numbers(&refused, &members));
        let refused: std::collections::BTreeSet<usize> =
            refused.into_iter().map(|r| r.index).collect();
        let (mut kept_members, mut kept_lines) = (Vec::new(), Vec::new());
        for (i, (m, line)) in members.into_iter().zip(lines).enumerate() {
            if refused.contains(&i) {
                skipped_by_broker += 1;
            } else {
                kept_members.push(m);
                kept_lines.push(line);
            }
        }
        members = kept_members;
        lines = kept_lines;
    };
    // A dry run of a file with bad rows has listed them all: it fails, as
    // the file would be refused without --skip-bad-rows.
    let bad = f.bad_rows() + skipped_by_broker;
    if !skip_bad_rows && bad > 0 {
        return Err(Failure(cat.t_args(
            "cli-bad-rows-nothing-imported",
            &[("count", &bad.to_string())],
        )));
    }
    if ctx.json {
        ctx.print_with(&r, "skippedRows", (f.bad_rows() + skipped_by_broker).into());
        return Ok(());
    }
    if !r.changes.is_empty() {
        let mut t = Table::new(l, &["member", "change"]);
        for ch in &r.changes {
            let change = match ch.change.as_str() {
                "added" => l.t("added"),
                "updated" => l.t("updated"),
                "end_dated" => l.t("end_dated"),
                _ => "?",
            };
            t.row(vec![ch.member_number.clone(), change.to_string()]);
        }
        out!("{}", t.render());
    }
    // Counts grouped by thousands as amounts are ("100 001").
    let n = |v: u32| l.catalogue().amount(i64::from(v), "");
    outln!(
        "{} {}, {} {}, {} {}, {} {}",
        l.label("added"),
        n(r.added),
        l.label("updated"),
        n(r.updated),
        l.label("end_dated"),
        n(r.end_dated),
        l.label("unchanged"),
        n(r.unchanged)
    );
    let skipped = f.bad_rows() + skipped_by_broker;
    if skipped > 0 {
        outln!(
            "{} {}",
            l.label("skipped rows"),
            l.catalogue().amount(skipped as i64, "")
        );
    }
    if r.dry_run {
        outln!("{}", l.t("dry run: nothing was written"));
    }
    Ok(())
}

/// `passerelle roster opening FILE`: every bad cell named by line; nothing
/// sent while one is wrong.
pub(super) async fn opening_balances(
    ctx: &Ctx,
    file: &Path,
    partner: String,
    dry_run: bool,
) -> Out {
    let l = ctx.lang;
    let cat = l.catalogue();
    let f = passerelle_files::opening_csv::OpeningFile::read(file)
        .map_err(|e| Failure(cat.opening_unreadable(&e)))?;
    for b in &f.bad {
        let words = match l {
            Lang::Fr => &b.french,
            Lang::En => &b.english,
        };
        let colon = l.colon();
        eprintln!(
            "{}{colon} {} {}{colon} {}{colon} {words}",
            file.display(),
            l.t("line"),
            b.line,
            cat.t(&format!("opening-col-{}", b.column))
        );
    }
    if !f.bad.is_empty() {
        return Err(Failure(cat.t_args(
            "cli-bad-cells-nothing-declared",
            &[("count", &f.bad.len().to_string())],
        )));
    }
    if let Some(msg) = cat.opening_too_many(f.balances.len()) {
        return Err(Failure(msg));
    }
    let lines = f.lines.clone();
    let mut c = roster::roster_service_client::RosterServiceClient::new(ctx.channel.clone());
    let r = match c
        .import_opening_balances(roster::ImportOpeningBalancesRequest {
            mutuelle_id: partner,
            balances: f.balances,
            dry_run,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            // The broker's refusals of rows, by the file's line, in words.
            use tonic_types::StatusExt;
            let violations = s
                .get_error_details()
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default();
            for v in &violations {
                // A row's cell, by the file's line in the catalogue's
                // words; anything else (the mutuelle, the whole file) as
                // the broker says it.
                let cell = v
                    .field
                    .strip_prefix("balances[")
                    .and_then(|r| r.split_once("]."))
                    .and_then(|(i, c)| Some((lines.get(i.parse::<usize>().ok()?)?, c)))
                    .filter(|(_, c)| {
                        let key = format!("opening-bad-{c}");
                        cat.t(&key) != key
                    });
                let colon = l.colon();
                match cell {
                    Some((line, column)) => eprintln!(
                        "{}{colon} {} {line}{colon} {}{colon} {}",
                        file.display(),
                        l.t("line"),
                        cat.t(&format!("opening-col-{column}")),
                        cat.t(&format!("opening-bad-{column}"))
                    ),
                    None => eprintln!(
                        "{}{colon} {}{colon} {}",
                        file.display(),
                        v.field,
                        v.description
                    ),
                }
            }
            return Err(Failure(cat.t_args(
                "cli-bad-cells-nothing-declared",
                &[("count", &violations.len().max(1).to_string())],
            )));
        }
        Err(s) => return Err(status_failure(s, None)),
    };
    if ctx.json {
        ctx.print(&r);
        return Ok(());
    }
    outln!(
        "{} {} · {} {}{}",
        l.t("opening balances set"),
        r.set,
        l.t("unchanged"),
        r.unchanged,
        if r.dry_run {
            format!(" ({})", l.t("dry run: nothing written"))
        } else {
            String::new()
        }
    );
    Ok(())
}

/// What heads a roster file's refusal: the catalogue's sentence for the
/// refusal and its code, without the broker's own summary of the rows
/// (English, cut at 1,000 characters), which the rows below say.
fn file_refusal_head(s: &tonic::Status) -> String {
    let bare = tonic::Status::with_details(
        s.code(),
        String::new(),
        bytes::Bytes::copy_from_slice(s.details()),
    );
    let Failure(head) = Failure::from(bare);
    head
}

/// The rows of a roster file the broker refused (`refused`: by the
/// broker, and a placeholder id's other rows), one per line, in the
/// file's order, by line and column, in the command line's language (in
/// French the console's words for them, `Lang::roster_refusal`); then
/// what it counted without naming, and what is not a row's (the header).
fn refused_rows(
    s: &tonic::Status,
    refused: &[crate::api::roster::RefusedMember],
    lines: &[u64],
    say_unnamed: bool,
) -> String {
    let l = Lang::of_process();
    let mut sorted: Vec<&crate::api::roster::RefusedMember> = refused.iter().collect();
    sorted.sort_by_key(|r| r.index);
    let mut out = String::new();
    for r in sorted {
        let words = match l {
            Lang::Fr => l.catalogue().roster_refusal(&r.description, &r.kind),
            Lang::En => r.description.clone(),
        };
        out.push_str(&format!(
            "\n  {} {}{} {}{} {words}",
            l.t("line"),
            lines[r.index],
            l.colon(),
            file_column(&r.field),
            l.colon(),
        ));
    }
    // Past the violations one refusal lists, the broker counts the rest
    // ("; and N more"): those the placeholder's rows do not account for
    // are said, to be found by checking the file again.
    let named = crate::api::roster::named_members(s, lines.len()).len();
    let counted = s
        .message()
        .rsplit_once("; and ")
        .and_then(|(_, rest)| rest.strip_suffix(" more"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let unnamed = counted.saturating_sub(refused.len().saturating_sub(named));
    if say_unnamed && unnamed > 0 {
        out.push_str("\n  ");
        out.push_str(
            &l.catalogue()
                .t_args("cli-more-unnamed", &[("count", &unnamed.to_string())]),
        );
    }
    for (field, description) in others_of(s) {
        out.push_str(&format!("\n  {field}{} {description}", l.colon()));
    }
    out
}

/// The violations of a refusal that name no member (an import's header,
/// its mutuelle), as the broker said them.
fn others_of(s: &tonic::Status) -> Vec<(String, String)> {
    let mut found = status_violations(s);
    found.retain(|(f, _)| !f.starts_with("members["));
    found
}
