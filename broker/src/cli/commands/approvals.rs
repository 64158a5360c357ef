//! `passerelle approvals ...`: changes that need two people (a period's
//! close or settlement, product versions), and what `period close`,
//! `period settle` and `products import` answer when they record one.

use super::*;
use crate::cli::output::when;

/// A proposal's kind and state in words, from the catalogue (the
/// console's words).
fn kind_words(l: Lang, kind: i32) -> String {
    let k = settlement::ProposalKind::try_from(kind).ok();
    let name = enum_word(k.map(|k| k.as_str_name()), "PROPOSAL_KIND_");
    l.catalogue().proposal_kind(&name)
}

fn state_words(l: Lang, p: &settlement::Proposal) -> String {
    let s = settlement::ProposalState::try_from(p.state).ok();
    let name = enum_word(s.map(|s| s.as_str_name()), "PROPOSAL_STATE_");
    l.catalogue()
        .proposal_state(&name, p.decided_by == p.proposed_by)
}

/// What a command that asks for a change answers when the broker recorded
/// it as a proposal (APPROVAL_REQUIRED): the proposal and how to approve
/// it, and success. Any other error fails as usual.
pub(super) fn proposed(ctx: &Ctx, mutuelle: &str, s: tonic::Status) -> Out {
    use tonic_types::StatusExt as _;
    let Some(info) = s
        .get_details_error_info()
        .filter(|i| i.reason == "APPROVAL_REQUIRED")
    else {
        return Err(status_failure(s, None));
    };
    let id: i64 = info
        .metadata
        .get("proposal_id")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let hash = info
        .metadata
        .get("proposal_hash")
        .cloned()
        .unwrap_or_default();
    // Only what the answer tells (the whole proposal: `approvals list`).
    if ctx.json {
        ctx.print_value(serde_json::json!({
            "id": id.to_string(),
            "mutuelleId": mutuelle,
            "hash": hash,
            "state": "PROPOSAL_STATE_PENDING",
        }));
        return Ok(());
    }
    // The identity that proposed cannot approve: a manager does, in the
    // console (`approvals approve` approves what someone else proposed).
    outln!(
        "{}",
        ctx.lang.catalogue().t_args(
            "cli-proposal-recorded",
            &[
                ("id", &id.to_string()),
                ("hash", &hash),
                ("mutuelle", mutuelle)
            ],
        )
    );
    Ok(())
}

pub(super) async fn approvals(ctx: &Ctx, cmd: ApprovalsCmd) -> Out {
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone());
    let l = ctx.lang;
    let decided = match cmd {
        ApprovalsCmd::List { partner, all } => {
            let r = c
                .list_proposals(settlement::ListProposalsRequest {
                    mutuelle_id: partner,
                    pending_only: !all,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print(&r);
                return Ok(());
            }
            if r.proposals.is_empty() {
                // As the console's approvals page says it (and, with
                // --all, that none was ever made).
                outln!(
                    "{}",
                    l.catalogue().t(if all {
                        "approvals-none-at-all"
                    } else {
                        "approvals-none"
                    })
                );
                return Ok(());
            }
            // With the decided ones (--all), what each came to: a
            // failed one's state says to see it.
            let mut columns = vec![
                "proposal",
                "change",
                "what",
                "proposed by",
                "proposed at (UTC)",
                "state",
            ];
            if all {
                columns.extend(["decided by", "decided at (UTC)", "outcome"]);
            }
            columns.push("hash");
            let mut t = Table::new(l, &columns).right(&[0]);
            for p in &r.proposals {
                let cat = l.catalogue();
                let mut row = vec![
                    p.id.to_string(),
                    kind_words(l, p.kind),
                    cat.change_words(&p.body),
                    cat.named_identity(&p.proposed_by, &p.proposed_by_name),
                    when(l, p.proposed_at_ms),
                    state_words(l, p),
                ];
                if all {
                    row.push(cat.named_identity(&p.decided_by, &p.decided_by_name));
                    row.push(if p.decided_at_ms > 0 {
                        when(l, p.decided_at_ms)
                    } else {
                        String::new()
                    });
                    row.push(cat.proposal_outcome(&p.outcome));
                }
                row.push(p.hash.clone());
                t.row(row);
            }
            out!("{}", t.render());
            return Ok(());
        }
        ApprovalsCmd::Approve { id, hash, .. } => c
            .approve_proposal(settlement::ApproveProposalRequest { id, hash })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
        ApprovalsCmd::Reject { id, reason, .. } => c
            .reject_proposal(settlement::RejectProposalRequest {
                id,
                reason: reason.unwrap_or_default(),
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
    };
    if ctx.json {
        ctx.print(&decided);
    } else {
        outln!(
            "{} {}{} {} ({}){}",
            l.t("proposal"),
            decided.id,
            l.colon(),
            kind_words(l, decided.kind),
            state_words(l, &decided),
            if decided.outcome.is_empty() {
                String::new()
            } else {
                format!(
                    "{} {}",
                    l.colon(),
                    l.catalogue().proposal_outcome(&decided.outcome)
                )
            }
        );
    }
    Ok(())
}
