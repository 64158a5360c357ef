//! `passerelle approvals ...`: changes that need two people (a period's
//! close or settlement, product versions), and what `period close`,
//! `period settle` and `products import` answer when they record one.

use super::*;
use crate::cli::output::when;

fn kind_word(l: Lang, kind: i32) -> &'static str {
    let (en, fr) = match settlement::ProposalKind::try_from(kind) {
        Ok(settlement::ProposalKind::ClosePeriod) => ("close a period", "clôture de période"),
        Ok(settlement::ProposalKind::SettlePeriod) => ("settle a period", "règlement de période"),
        Ok(settlement::ProposalKind::PublishProducts) => {
            ("publish product versions", "publication de produits")
        }
        _ => ("unknown", "inconnue"),
    };
    if l == Lang::Fr { fr } else { en }
}

fn state_word(l: Lang, state: i32) -> &'static str {
    let (en, fr) = match settlement::ProposalState::try_from(state) {
        Ok(settlement::ProposalState::Pending) => {
            ("waiting for approval", "en attente d'approbation")
        }
        Ok(settlement::ProposalState::Approved) => {
            ("approved, not applied", "approuvée, non appliquée")
        }
        Ok(settlement::ProposalState::Applied) => {
            ("approved and applied", "approuvée et appliquée")
        }
        Ok(settlement::ProposalState::Failed) => {
            ("approved, refused by the store", "approuvée, refusée")
        }
        Ok(settlement::ProposalState::Rejected) => ("rejected", "rejetée"),
        Ok(settlement::ProposalState::Expired) => ("expired", "expirée"),
        _ => ("unknown", "inconnu"),
    };
    if l == Lang::Fr { fr } else { en }
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
    if ctx.json {
        ctx.print(&settlement::Proposal {
            id,
            mutuelle_id: mutuelle.to_string(),
            hash,
            state: settlement::ProposalState::Pending as i32,
            ..Default::default()
        });
        return Ok(());
    }
    // The identity that proposed cannot approve: a manager does, in the
    // console (`approvals approve` approves what someone else proposed).
    match ctx.lang {
        Lang::Fr => outln!(
            "Proposition {id} enregistrée (empreinte {hash}) : elle s'appliquera quand un gestionnaire de {mutuelle} l'aura approuvée dans la console (Approbations)."
        ),
        Lang::En => outln!(
            "Proposal {id} recorded (hash {hash}): it applies once a manager of {mutuelle} approves it in the console (Approvals)."
        ),
    }
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
            let mut t = Table::new(
                l,
                &[
                    "proposal",
                    "change",
                    "scheme",
                    "proposed by",
                    "proposed at",
                    "state",
                    "hash",
                ],
            )
            .right(&[0]);
            for p in &r.proposals {
                t.row(vec![
                    p.id.to_string(),
                    kind_word(l, p.kind).to_string(),
                    p.scheme_id.clone(),
                    p.proposed_by.clone(),
                    when(l, p.proposed_at_ms),
                    state_word(l, p.state).to_string(),
                    p.hash.clone(),
                ]);
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
            "{} {}: {} ({}){}",
            l.t("proposal"),
            decided.id,
            kind_word(l, decided.kind),
            state_word(l, decided.state),
            if decided.outcome.is_empty() {
                String::new()
            } else {
                format!(": {}", decided.outcome)
            }
        );
    }
    Ok(())
}
