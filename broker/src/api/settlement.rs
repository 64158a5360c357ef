//! `passerelle.settlement.v1.SettlementService`: claim listings, periods and
//! statements (bordereaux).

use std::sync::Arc;

use passerelle_domain::ClaimState;
use passerelle_proto::settlement::v1 as pb;
use pb::settlement_service_server::SettlementService;
use tonic::{Request, Response, Status};

use super::auth::{mutuelle_scope, pair_scope, scheme_scope};
use super::call::serve;
use super::parse::Violations;
use crate::identity::{Auth, Role};
use crate::service::approvals::Proposed;
use crate::service::settlement::{MAX_PAGE_LINES, MAX_PAYEES_PAGE};
use crate::service::{Broker, ServiceError};
use crate::store::approvals::{Proposal, ProposalState};
use crate::store::{
    ClaimFilter, ClaimPage, LineKey, PeriodRecord, PeriodState, RecoveryLine, StatementData,
    StatementPage, Totals,
};

const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

pub struct SettlementApi {
    broker: Arc<Broker>,
}

impl SettlementApi {
    pub fn new(broker: Arc<Broker>) -> Self {
        SettlementApi { broker }
    }

    /// What is wrong with a scheme × mutuelle pair.
    fn check_pair(&self, scheme_id: &str, mutuelle_id: &str) -> Violations {
        let mut v = Violations::new();
        v.id("scheme_id", scheme_id);
        v.id("mutuelle_id", mutuelle_id);
        if !scheme_id.is_empty() && self.broker.scheme(scheme_id).is_err() {
            v.add("scheme_id", format!("unknown scheme {scheme_id:?}"));
        }
        if !mutuelle_id.is_empty() && !self.broker.partners().any(|p| p.id == mutuelle_id) {
            v.add("mutuelle_id", format!("unknown mutuelle {mutuelle_id:?}"));
        }
        v
    }
}

pub fn totals_to_pb(t: &Totals) -> pb::Totals {
    pb::Totals {
        billed: t.billed,
        scheme_share: t.scheme,
        mutuelle_share: t.mutuelle,
        patient_share: t.patient(),
    }
}

pub fn period_to_pb(p: &PeriodRecord, currency: &str) -> pb::Period {
    pb::Period {
        scheme_id: p.scheme_id.clone(),
        mutuelle_id: p.mutuelle_id.clone(),
        number: p.number,
        state: match p.state {
            PeriodState::Open => pb::PeriodState::Open,
            PeriodState::Closed => pb::PeriodState::Closed,
            PeriodState::Settled => pb::PeriodState::Settled,
        } as i32,
        currency: currency.to_string(),
        claim_count: p.claim_count,
        totals: Some(totals_to_pb(&p.totals)),
        recoveries: p.recoveries,
        net_due: p.net_due(),
        closed_at_ms: p.closed_ms,
        settled_at_ms: p.settled_ms,
        settlement_reference: p.reference.clone(),
    }
}

/// The period and page a GetStatement asks for (`None`: the whole
/// statement), its mistakes added to `v`. A page after the first reads the
/// period its token names: the open period asked as 0 stays the same period
/// to its last page, even if it is closed meanwhile.
fn statement_page(
    msg: &pb::GetStatementRequest,
    v: &mut Violations,
) -> (u32, Option<StatementPage>) {
    if msg.page_size == 0 {
        if !msg.page_token.is_empty() {
            v.add("page_size", "a page_token needs the page_size of its pages");
        }
        return (msg.number, None);
    }
    if msg.page_size > MAX_PAGE_LINES {
        v.add(
            "page_size",
            format!("at most {MAX_PAGE_LINES} lines per page"),
        );
    }
    let (number, after) = match msg.page_token.as_str() {
        "" => (msg.number, None),
        token => match read_page_token(msg.number, token) {
            Some((number, k)) => (number, Some(k)),
            None => {
                v.add(
                    "page_token",
                    "not a next_page_token of this statement: start again without one",
                );
                (msg.number, None)
            }
        },
    };
    (
        number,
        Some(StatementPage {
            after,
            size: msg.page_size,
        }),
    )
}

/// The payees a page of remittance totals holds when none is asked for.
const DEFAULT_PAYEES: u32 = 100;

/// Where a GetRemittanceAdvice's page of payees' totals starts (`None`: at
/// the first payee), its mistakes added to `v`: pages are of totals only.
fn remittance_page(
    msg: &pb::GetRemittanceAdviceRequest,
    one_payee: bool,
    v: &mut Violations,
) -> Option<(String, String)> {
    if !msg.totals_only {
        if msg.page_size != 0 {
            v.add("page_size", "pages are of payees' totals: set totals_only");
        }
        if !msg.page_token.is_empty() {
            v.add("page_token", "pages are of payees' totals: set totals_only");
        }
        return None;
    }
    if one_payee {
        v.add(
            "totals_only",
            "gives every payee's totals: leave payee_type and payee_id empty",
        );
    }
    if msg.page_size > MAX_PAYEES_PAGE {
        v.add(
            "page_size",
            format!("at most {MAX_PAYEES_PAGE} payees per page"),
        );
    }
    if msg.page_token.is_empty() {
        return None;
    }
    let after = read_payee_token(msg.number, &msg.page_token);
    if after.is_none() {
        v.add(
            "page_token",
            "not a next_page_token of this period's payees: start again without one",
        );
    }
    after
}

/// A page of payees' next_page_token: the period and the last payee sent,
/// opaque to clients (base64url).
fn payee_token(number: u32, (payee_type, payee_id): &(String, String)) -> String {
    token(&[&number.to_string(), payee_type, payee_id])
}

/// The payee a page of payees' token names, if it is one of this period's.
fn read_payee_token(number: u32, token: &str) -> Option<(String, String)> {
    let parts = read_token(token)?;
    let [n, payee_type, payee_id] = parts.as_slice() else {
        return None;
    };
    if n.parse::<u32>().ok()? != number || !matches!(payee_type.as_str(), "provider" | "member") {
        return None;
    }
    Some((payee_type.clone(), payee_id.clone()))
}

/// A next_page_token: its parts joined by U+001F (which no id holds),
/// opaque to clients (base64url).
fn token(parts: &[&str]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\u{1f}"))
}

/// The parts of a [`token`], if it is one.
fn read_token(token: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(text.split('\u{1f}').map(String::from).collect())
}

/// A statement's next_page_token: the period read and the last line sent.
fn page_token(number: u32, k: &LineKey) -> String {
    let (n, sequence) = (number.to_string(), k.sequence.to_string());
    token(&[&n, &k.payee_type, &k.payee_id, &k.claim_id, &sequence])
}

/// The period and line a page_token names, if it is one of this
/// statement's: the period asked, or any when the open one was asked (0).
fn read_page_token(number: u32, token: &str) -> Option<(u32, LineKey)> {
    let parts = read_token(token)?;
    let [n, payee_type, payee_id, claim_id, sequence] = parts.as_slice() else {
        return None;
    };
    let period = n.parse::<u32>().ok()?;
    if (number != 0 && period != number) || !matches!(payee_type.as_str(), "provider" | "member") {
        return None;
    }
    Some((
        period,
        LineKey {
            payee_type: payee_type.clone(),
            payee_id: payee_id.clone(),
            claim_id: claim_id.clone(),
            sequence: sequence.parse().ok()?,
        },
    ))
}

/// Groups a statement's lines by payee, with totals per payee. The lines'
/// text is moved, not copied, and each store line is dropped as it is
/// converted: a payee's advice of 50,000 lines is never held twice.
pub fn statement_to_pb(d: StatementData, currency: &str) -> pb::Statement {
    let cut = d.cut;
    let mut payees: Vec<pb::PayeeStatement> = Vec::new();
    for l in d.lines {
        let same = payees
            .last()
            .is_some_and(|p| p.payee_type == l.payee_type && p.payee_id == l.payee_id);
        if !same {
            payees.push(pb::PayeeStatement {
                payee_type: l.payee_type,
                payee_id: l.payee_id,
                lines: Vec::new(),
                totals: Some(pb::Totals::default()),
                continued: payees.is_empty() && cut.first_continued,
                continues: false,
                whole_claim_count: 0,
                whole_mutuelle_share: 0,
            });
        }
        let p = payees.last_mut().expect("pushed above");
        // Saturating: a stored row must never make a statement fail (the
        // inputs are bounded, see validate::MAX_LINE_AMOUNT).
        let patient = l.billed.saturating_sub(l.scheme).saturating_sub(l.mutuelle);
        let t = p.totals.get_or_insert_with(Default::default);
        t.billed = t.billed.saturating_add(l.billed);
        t.scheme_share = t.scheme_share.saturating_add(l.scheme);
        t.mutuelle_share = t.mutuelle_share.saturating_add(l.mutuelle);
        t.patient_share = t.patient_share.saturating_add(patient);
        p.lines.push(pb::StatementLine {
            claim_id: l.claim_id,
            invoice_number: l.invoice_number,
            date_of_care: l.date_of_care,
            member_number: l.member_number,
            sequence: l.sequence,
            act_code: l.act_code,
            billed: l.billed,
            scheme_share: l.scheme,
            mutuelle_share: l.mutuelle,
            patient_share: patient,
            cancelled_since: l.cancelled,
        });
    }
    if let Some(last) = payees.last_mut() {
        last.continues = cut.last_continues;
    }
    pb::Statement {
        next_page_token: String::new(),
        period: Some(period_to_pb(&d.period, currency)),
        payees,
        recoveries: d.recoveries.into_iter().map(recovery_to_pb).collect(),
    }
}

fn recovery_to_pb(r: RecoveryLine) -> pb::Recovery {
    pb::Recovery {
        claim_id: r.claim_id,
        invoice_number: r.invoice_number,
        from_period: r.from_period,
        amount: r.amount,
        payee_type: r.payee_type,
        payee_id: r.payee_id,
        member_number: r.member_number,
        date_of_care: r.date_of_care,
    }
}

/// A ListClaims request as a store filter, the row it starts after and the
/// page size; every wrong field collected.
fn claims_query(msg: pb::ListClaimsRequest) -> Result<(ClaimFilter, i64, u32), ServiceError> {
    let mut v = Violations::new();
    for (field, value) in [
        ("member_number", &msg.member_number),
        ("provider_id", &msg.provider_id),
    ] {
        if !value.is_empty() {
            v.id(field, value);
        }
    }
    let state = if msg.state.is_empty() {
        None
    } else {
        let s = ClaimState::parse(&msg.state);
        if s.is_none() {
            v.add("state", "must be received, pending_partner, coordinated, rejected, cancel_pending or cancelled");
        }
        s
    };
    // Scheme and mutuelle callers have theirs filled in by the scope: both
    // empty is an operator's listing, across schemes, of the claims waiting.
    let waiting = matches!(
        state,
        Some(ClaimState::Received | ClaimState::PendingPartner | ClaimState::CancelPending)
    );
    if msg.scheme_id.is_empty() && msg.mutuelle_id.is_empty() && !waiting {
        v.add(
            "scheme_id",
            "give scheme_id, mutuelle_id or both (an operator may list every scheme's claims in one waiting state: received, pending_partner or cancel_pending)",
        );
    }
    let care_from = (!msg.care_from.is_empty())
        .then(|| v.date("care_from", &msg.care_from))
        .flatten();
    let care_to = (!msg.care_to.is_empty())
        .then(|| v.date("care_to", &msg.care_to))
        .flatten();
    if let (Some(a), Some(b)) = (care_from, care_to)
        && b < a
    {
        v.add("care_to", "must not be before care_from");
    }
    if msg.page_size > MAX_PAGE {
        v.add("page_size", format!("must be at most {MAX_PAGE}"));
    }
    let after = if msg.page_token.is_empty() {
        0
    } else {
        msg.page_token
            .strip_prefix('p')
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| {
                v.add("page_token", "not a token returned by ListClaims");
                0
            })
    };
    v.finish(()).map_err(ServiceError::Invalid)?;
    let limit = if msg.page_size == 0 {
        DEFAULT_PAGE
    } else {
        msg.page_size
    };
    let filter = ClaimFilter {
        scheme_id: Some(msg.scheme_id).filter(|s| !s.is_empty()),
        mutuelle_id: Some(msg.mutuelle_id).filter(|s| !s.is_empty()),
        state,
        care_from,
        care_to,
        member_number: Some(msg.member_number).filter(|s| !s.is_empty()),
        provider_id: Some(msg.provider_id).filter(|s| !s.is_empty()),
    };
    Ok((filter, after, limit))
}

/// A page of claims read with one row more than `limit`: the page, and a
/// token only when that row says more follow.
fn claims_page_to_pb(mut page: ClaimPage, limit: u32) -> pb::ListClaimsResponse {
    let next = if page.rows.len() > limit as usize {
        page.rows.truncate(limit as usize);
        page.rows
            .last()
            .map(|r| format!("p{}", r.pk))
            .unwrap_or_default()
    } else {
        String::new()
    };
    pb::ListClaimsResponse {
        claims: page
            .rows
            .iter()
            .map(|c| pb::ClaimSummary {
                scheme_id: c.scheme_id.clone(),
                claim_id: c.claim_id.clone(),
                mutuelle_id: c.mutuelle_id.clone(),
                state: c.state.as_str().to_string(),
                provider_id: c.provider_id.clone(),
                invoice_number: c.invoice_number.clone(),
                date_of_care: c.date_of_care.clone(),
                currency: c.currency.clone(),
                totals: Some(totals_to_pb(&c.totals)),
                period: c.period,
                updated_at_ms: c.updated_ms,
            })
            .collect(),
        totals: Some(totals_to_pb(&page.totals)),
        total_count: page.total_count,
        next_page_token: next,
    }
}

/// Settlement's party: the scheme the request names, else its mutuelle.
fn claimed<'a>(scheme_id: &'a str, mutuelle_id: &'a str) -> &'a str {
    if scheme_id.is_empty() {
        mutuelle_id
    } else {
        scheme_id
    }
}

// A scheme sees its own claims (and its delegates'), a mutuelle its own; an
// operator any.
call!(pb::ListClaimsRequest, "ListClaims", "party",
    |m| claimed: claimed(&m.scheme_id, &m.mutuelle_id),
    scope(auth, dir) -> (): {
        match auth {
            Auth::Caller(c) if c.role == Role::Scheme => {
                m.scheme_id = scheme_scope(auth, dir, &m.scheme_id)?;
            }
            Auth::Caller(c) if c.role == Role::Mutuelle => {
                m.mutuelle_id = mutuelle_scope(auth, &m.mutuelle_id)?;
            }
            _ => {
                pair_scope(auth, dir, &m.scheme_id, &m.mutuelle_id)?;
            }
        }
        Ok(())
    },
    subject: format!("{}/{}/claims", m.scheme_id, m.mutuelle_id));

/// [`call!`] for a request on one scheme × mutuelle: either party or an
/// operator; the body gets the pair with its empty parts filled from the
/// caller (the request is audited as it came).
macro_rules! pair_call {
    ($t:ty, $method:literal, $what:literal) => {
        call!($t, $method, "party",
            |m| claimed: claimed(&m.scheme_id, &m.mutuelle_id),
            scope(auth, dir) -> (String, String):
                pair_scope(auth, dir, &m.scheme_id, &m.mutuelle_id),
            subject: format!("{}/{}/{}", m.scheme_id, m.mutuelle_id, $what));
    };
}

// Either party of the claim or an operator: who the parties are is known
// once the claim is read, so the body checks them. A claim out of scope
// reads as absent (NOT_FOUND, the words of a missing claim); its audit row
// says why.
call!(pb::GetClaimRequest, "GetClaim", "party",
    |m| claimed: &m.scheme_id,
    scope(auth, _dir) -> Auth: match auth {
        Auth::Missing => Err(ServiceError::PermissionDenied("the call was not authenticated".into())),
        _ => Ok(auth.clone()),
    },
    subject: format!("{}/{}", m.scheme_id, m.claim_id));

pair_call!(pb::ListPeriodsRequest, "ListPeriods", "periods");
/// [`pair_call!`] for a change that needs two people: the body also gets
/// who asks (the proposer, `service::approvals`).
macro_rules! proposal_call {
    ($t:ty, $method:literal) => {
        call!($t, $method, "party",
            |m| claimed: claimed(&m.scheme_id, &m.mutuelle_id),
            scope(auth, dir) -> (String, String, Auth): {
                let (s, m) = pair_scope(auth, dir, &m.scheme_id, &m.mutuelle_id)?;
                Ok((s, m, auth.clone()))
            },
            subject: format!("{}/{}/periods", m.scheme_id, m.mutuelle_id));
    };
}

proposal_call!(pb::ClosePeriodRequest, "ClosePeriod");
proposal_call!(pb::MarkSettledRequest, "MarkSettled");

// A proposal's scope (its mutuelle) is known once it is read: the service
// checks who may read or decide it.
macro_rules! decision_call {
    ($t:ty, $method:literal) => {
        call!($t, $method, "party",
            |m| claimed: "-",
            scope(auth, _dir) -> Auth: match auth {
                Auth::Missing => Err(ServiceError::PermissionDenied("the call was not authenticated".into())),
                _ => Ok(auth.clone()),
            },
            subject: format!("proposals/{}", m.id));
    };
}

decision_call!(pb::ApproveProposalRequest, "ApproveProposal");
decision_call!(pb::RejectProposalRequest, "RejectProposal");
mutuelle_call!(pb::ListProposalsRequest, "ListProposals", |m| format!(
    "{}/proposals",
    m.mutuelle_id
));
mutuelle_call!(
    pb::ListPriorAuthorizationsRequest,
    "ListPriorAuthorizations",
    |m| format!("{}/authorizations", m.mutuelle_id)
);

/// A proposal on the wire.
pub fn proposal_to_pb(p: &Proposal) -> pb::Proposal {
    let kind = match p.kind.as_str() {
        "close_period" => pb::ProposalKind::ClosePeriod,
        "settle_period" => pb::ProposalKind::SettlePeriod,
        "publish_products" => pb::ProposalKind::PublishProducts,
        _ => pb::ProposalKind::Unspecified,
    };
    let state = match p.state {
        ProposalState::Pending => pb::ProposalState::Pending,
        ProposalState::Approved => pb::ProposalState::Approved,
        ProposalState::Applied => pb::ProposalState::Applied,
        ProposalState::Failed => pb::ProposalState::Failed,
        ProposalState::Rejected => pb::ProposalState::Rejected,
        ProposalState::Expired => pb::ProposalState::Expired,
    };
    pb::Proposal {
        id: p.id,
        mutuelle_id: p.mutuelle_id.clone(),
        scheme_id: p.scheme_id.clone(),
        kind: kind as i32,
        body: p.body.clone(),
        hash: p.hash.clone(),
        proposed_by: p.proposed_by.clone(),
        proposed_at_ms: p.proposed_ms,
        state: state as i32,
        decided_by: p.decided_by.clone(),
        decided_at_ms: p.decided_ms,
        outcome: p.outcome.clone(),
        ..Default::default()
    }
}

/// A listed proposal on the wire, with the names of the people behind its
/// identities (`people`: by login, [`crate::service::Broker::people_of`]).
fn listed_proposal_to_pb(
    p: &Proposal,
    people: &std::collections::HashMap<String, String>,
) -> pb::Proposal {
    let name = |identity: &str| {
        crate::identity::person_login(identity)
            .and_then(|login| people.get(login).cloned())
            .unwrap_or_default()
    };
    pb::Proposal {
        proposed_by_name: name(&p.proposed_by),
        decided_by_name: name(&p.decided_by),
        ..proposal_to_pb(p)
    }
}

/// Most characters of a rejection's reason.
pub const MAX_REASON: usize = 500;
pair_call!(pb::GetStatementRequest, "GetStatement", "statement");
pair_call!(
    pb::GetRemittanceAdviceRequest,
    "GetRemittanceAdvice",
    "statement"
);

#[tonic::async_trait]
impl SettlementService for SettlementApi {
    async fn get_claim(
        &self,
        request: Request<pb::GetClaimRequest>,
    ) -> Result<Response<pb::ClaimDetail>, Status> {
        serve(&self.broker, request, |msg, auth| async move {
            let mut v = Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("claim_id", &msg.claim_id);
            v.finish(())?;
            let rec = self.broker.get(&msg.scheme_id, &msg.claim_id).await?;
            // Another's claim reads as a missing one: a mutuelle probing
            // a scheme's claim ids learns nothing of who covers whom. The
            // refusal is in the audit row only.
            if let Err(e) = pair_scope(
                &auth,
                self.broker.directory(),
                &rec.claim.scheme_id,
                &rec.mutuelle_id,
            ) {
                return Err(crate::service::claims::absent_claim(
                    &msg.scheme_id,
                    &msg.claim_id,
                    e,
                ));
            }
            // Read once the caller may see the claim.
            let periods = self
                .broker
                .claim_periods(&msg.scheme_id, &msg.claim_id)
                .await?;
            let (recovery, recovery_period) = match periods.recovery {
                Some((r, into)) => (Some(recovery_to_pb(r)), into),
                None => (None, 0),
            };
            Ok(pb::ClaimDetail {
                result: Some(super::scheme::claim_result(&rec)),
                beneficiary_id: rec.claim.beneficiary_id.clone(),
                provider_id: rec.claim.provider_id.clone(),
                invoice_number: rec.claim.invoice_number.clone(),
                date_of_care: passerelle_domain::date::format(rec.claim.date_of_care),
                period: periods.period,
                cancel_reason: rec.cancel_reason.clone(),
                recovery,
                recovery_period,
                // A partner's error text is for its mutuelle and the
                // operators, as in ListPartners.
                partner_note: match &auth {
                    crate::identity::Auth::Caller(c)
                        if matches!(
                            c.role,
                            crate::identity::Role::Mutuelle | crate::identity::Role::Operator
                        ) =>
                    {
                        rec.last_error.clone()
                    }
                    // The plaintext development listener trusts the request.
                    crate::identity::Auth::Plaintext => rec.last_error.clone(),
                    _ => String::new(),
                },
                prior_authorization_reference: rec
                    .claim
                    .prior_authorization
                    .clone()
                    .unwrap_or_default(),
            })
        })
        .await
    }

    async fn list_claims(
        &self,
        request: Request<pb::ListClaimsRequest>,
    ) -> Result<Response<pb::ListClaimsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let (filter, after, limit) = claims_query(msg)?;
            // One row more than the page: whether another page follows (a
            // full last page gave a token to an empty page).
            let page = self
                .broker
                .list_claims(&filter, after, limit.saturating_add(1))
                .await?;
            Ok(claims_page_to_pb(page, limit))
        })
        .await
    }

    async fn list_periods(
        &self,
        request: Request<pb::ListPeriodsRequest>,
    ) -> Result<Response<pb::ListPeriodsResponse>, Status> {
        serve(
            &self.broker,
            request,
            |_, (scheme_id, mutuelle_id)| async move {
                self.check_pair(&scheme_id, &mutuelle_id).finish(())?;
                let currency = self.broker.currency_of(&scheme_id);
                let periods = self.broker.list_periods(&scheme_id, &mutuelle_id).await?;
                Ok(pb::ListPeriodsResponse {
                    periods: periods.iter().map(|p| period_to_pb(p, &currency)).collect(),
                })
            },
        )
        .await
    }

    async fn close_period(
        &self,
        request: Request<pb::ClosePeriodRequest>,
    ) -> Result<Response<pb::Period>, Status> {
        serve(
            &self.broker,
            request,
            |_, (scheme_id, mutuelle_id, auth)| async move {
                self.check_pair(&scheme_id, &mutuelle_id).finish(())?;
                let p = self
                    .broker
                    .propose_close(&auth, &scheme_id, &mutuelle_id)
                    .await?;
                Err::<pb::Period, _>(ServiceError::approval_required(&p))
            },
        )
        .await
    }

    async fn mark_settled(
        &self,
        request: Request<pb::MarkSettledRequest>,
    ) -> Result<Response<pb::Period>, Status> {
        serve(
            &self.broker,
            request,
            |msg, (scheme_id, mutuelle_id, auth)| async move {
                let mut v = self.check_pair(&scheme_id, &mutuelle_id);
                v.id("reference", &msg.reference);
                if msg.number == 0 {
                    v.add("number", "must be the number of a closed period");
                }
                v.finish(())?;
                match self
                    .broker
                    .propose_settle(&auth, &scheme_id, &mutuelle_id, msg.number, &msg.reference)
                    .await?
                {
                    Proposed::Done(p) => Ok(period_to_pb(&p, &self.broker.currency_of(&scheme_id))),
                    Proposed::Waiting(p) => Err(ServiceError::approval_required(&p)),
                }
            },
        )
        .await
    }

    async fn list_proposals(
        &self,
        request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ListProposalsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("mutuelle_id", &msg.mutuelle_id);
            v.finish(())?;
            let list = self
                .broker
                .proposals(std::slice::from_ref(&msg.mutuelle_id), msg.pending_only)
                .await?;
            let people = self.broker.people_of(&list).await?;
            Ok(pb::ListProposalsResponse {
                proposals: list
                    .iter()
                    .map(|p| listed_proposal_to_pb(p, &people))
                    .collect(),
            })
        })
        .await
    }

    async fn list_prior_authorizations(
        &self,
        request: Request<pb::ListPriorAuthorizationsRequest>,
    ) -> Result<Response<pb::ListPriorAuthorizationsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("mutuelle_id", &msg.mutuelle_id);
            if msg.page_size > crate::service::authorizations::MAX_LISTED {
                v.add(
                    "page_size",
                    format!("at most {}", crate::service::authorizations::MAX_LISTED),
                );
            }
            v.finish(())?;
            let size = if msg.page_size == 0 {
                100
            } else {
                msg.page_size
            };
            let list = self
                .broker
                .authorizations_of(&msg.mutuelle_id, size)
                .await?;
            Ok(pb::ListPriorAuthorizationsResponse {
                authorizations: list
                    .iter()
                    .map(crate::api::scheme::authorization_result)
                    .collect(),
            })
        })
        .await
    }

    async fn approve_proposal(
        &self,
        request: Request<pb::ApproveProposalRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        serve(&self.broker, request, |msg, auth| async move {
            let mut v = Violations::new();
            if msg.id <= 0 {
                v.add("id", "must be a proposal's id");
            }
            if msg.hash.len() != 64 || !msg.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.add(
                    "hash",
                    "must be the proposal's SHA-256, 64 hexadecimal digits",
                );
            }
            v.finish(())?;
            let p = self.broker.approve(&auth, msg.id, &msg.hash).await?;
            Ok(proposal_to_pb(&p))
        })
        .await
    }

    async fn reject_proposal(
        &self,
        request: Request<pb::RejectProposalRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        serve(&self.broker, request, |msg, auth| async move {
            let mut v = Violations::new();
            if msg.id <= 0 {
                v.add("id", "must be a proposal's id");
            }
            // A free text the other approver reads: bounded, no control
            // characters, no bidirectional overrides.
            passerelle_domain::validate::check_text("reason", &msg.reason, MAX_REASON, &mut v.0);
            v.finish(())?;
            let p = self.broker.reject(&auth, msg.id, &msg.reason).await?;
            Ok(proposal_to_pb(&p))
        })
        .await
    }

    async fn get_remittance_advice(
        &self,
        request: Request<pb::GetRemittanceAdviceRequest>,
    ) -> Result<Response<pb::GetRemittanceAdviceResponse>, Status> {
        serve(
            &self.broker,
            request,
            |msg, (scheme_id, mutuelle_id)| async move {
                let mut v = self.check_pair(&scheme_id, &mutuelle_id);
                if msg.number == 0 {
                    v.add("number", "must be the number of a settled period");
                }
                let payee = match (msg.payee_type.as_str(), msg.payee_id.as_str()) {
                    ("", "") => None,
                    ("provider" | "member", id) if !id.is_empty() => {
                        Some((msg.payee_type.clone(), msg.payee_id.clone()))
                    }
                    _ => {
                        v.add(
                            "payee_type",
                            "must be provider or member, with payee_id; or both empty",
                        );
                        None
                    }
                };
                let after = remittance_page(&msg, payee.is_some(), &mut v);
                let lang = super::parse::language(&mut v, "language", &msg.language);
                v.finish(())?;
                let currency = self.broker.currency_of(&scheme_id);
                if msg.totals_only {
                    let size = if msg.page_size == 0 {
                        DEFAULT_PAYEES
                    } else {
                        msg.page_size
                    };
                    let p = self
                        .broker
                        .remittance_payees(&scheme_id, &mutuelle_id, msg.number, after, size)
                        .await?;
                    let period = period_to_pb(&p.period, &currency);
                    return Ok(pb::GetRemittanceAdviceResponse {
                        transfer_reference: p.period.reference.clone(),
                        transfer_amount: period.net_due.saturating_add(p.owed),
                        owed_amount: p.owed,
                        period: Some(period),
                        payees: p
                            .payees
                            .into_iter()
                            .map(|a| pb::RemittanceAdvice {
                                payee_type: a.payee_type,
                                payee_id: a.payee_id,
                                amount: a.amount,
                                claim_count: u32::try_from(a.claims).unwrap_or(u32::MAX),
                                ..Default::default()
                            })
                            .collect(),
                        next_page_token: p
                            .next
                            .map(|k| payee_token(p.period.number, &k))
                            .unwrap_or_default(),
                    });
                }
                let one = payee.as_ref().map(|(t, id)| (t.as_str(), id.as_str()));
                let (d, owed) = self
                    .broker
                    .remittance(&scheme_id, &mutuelle_id, msg.number, one)
                    .await?;
                let transfer_reference = d.period.reference.clone();
                // The lines are held once: moved from the store's into the
                // wire's, then into the advice.
                let s = statement_to_pb(d, &currency);
                let period = s.period.clone();
                let payees = super::remittance::advice(s, one, lang);
                let net_due = period.as_ref().map_or(0, |p| p.net_due);
                Ok(pb::GetRemittanceAdviceResponse {
                    transfer_reference,
                    period,
                    payees,
                    next_page_token: String::new(),
                    transfer_amount: net_due.saturating_add(owed),
                    owed_amount: owed,
                })
            },
        )
        .await
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::Statement>, Status> {
        serve(
            &self.broker,
            request,
            |msg, (scheme_id, mutuelle_id)| async move {
                let mut v = self.check_pair(&scheme_id, &mutuelle_id);
                let (number, page) = statement_page(&msg, &mut v);
                let page = v.finish(page)?;
                let d = self
                    .broker
                    .statement(&scheme_id, &mutuelle_id, number, page)
                    .await?;
                let next = d.next.as_ref().map(|k| page_token(d.period.number, k));
                let number = d.period.number;
                let mut s = statement_to_pb(d, &self.broker.currency_of(&scheme_id));
                s.next_page_token = next.unwrap_or_default();
                // A payee the page cuts (the first, the last): its whole
                // statement's claims and share, that payee's claims read.
                for p in s.payees.iter_mut().filter(|p| p.continued || p.continues) {
                    if let Some(w) = self
                        .broker
                        .statement_payee_total(
                            &scheme_id,
                            &mutuelle_id,
                            number,
                            &p.payee_type,
                            &p.payee_id,
                        )
                        .await?
                    {
                        p.whole_claim_count = u32::try_from(w.claims).unwrap_or(u32::MAX);
                        p.whole_mutuelle_share = w.mutuelle;
                    }
                }
                Ok(s)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(number: u32, page_size: u32, page_token: &str) -> pb::GetStatementRequest {
        pb::GetStatementRequest {
            scheme_id: "CNSS".into(),
            mutuelle_id: "MUT-A".into(),
            number,
            page_size,
            page_token: page_token.into(),
        }
    }

    #[test]
    fn a_page_token_names_its_statement_and_line() {
        let k = LineKey {
            payee_type: "provider".into(),
            payee_id: "CHU-SO".into(),
            claim_id: "C-7".into(),
            sequence: 3,
        };
        let token = page_token(4, &k);
        assert_eq!(read_page_token(4, &token), Some((4, k.clone())));
        assert_eq!(read_page_token(5, &token), None, "another period's");
        assert_eq!(
            read_page_token(0, &token),
            Some((4, k.clone())),
            "the open period, as read on the first page"
        );
        assert_eq!(read_page_token(4, "not a token"), None);
        assert_eq!(read_page_token(4, ""), None);

        let mut v = Violations::new();
        let page = statement_page(&request(4, 100, &token), &mut v);
        assert!(v.0.is_empty());
        let after = Some(k.clone());
        assert_eq!(page, (4, Some(StatementPage { after, size: 100 })));
        // Asked as the open period: the next pages stay in period 4.
        let mut v = Violations::new();
        assert_eq!(statement_page(&request(0, 100, &token), &mut v).0, 4);
        let mut v = Violations::new();
        assert_eq!(statement_page(&request(4, 0, ""), &mut v), (4, None));
        assert!(v.0.is_empty());
        for (r, field) in [
            (request(4, 0, &token), "page_size"),
            (request(4, MAX_PAGE_LINES + 1, ""), "page_size"),
            (request(5, 10, &token), "page_token"),
            (request(4, 10, "@@@"), "page_token"),
        ] {
            let mut v = Violations::new();
            statement_page(&r, &mut v);
            assert_eq!(v.0.len(), 1, "{r:?}");
            assert_eq!(v.0[0].field, field, "{r:?}");
        }
    }

    #[test]
    fn a_page_of_payees_names_its_period_and_payee() {
        let ask =
            |totals_only: bool, page_size: u32, page_token: &str| pb::GetRemittanceAdviceRequest {
                scheme_id: "CNSS".into(),
                mutuelle_id: "MUT-A".into(),
                number: 4,
                totals_only,
                page_size,
                page_token: page_token.into(),
                ..Default::default()
            };
        let payee = ("member".to_string(), "M-7".to_string());
        let token = payee_token(4, &payee);
        assert_eq!(read_payee_token(4, &token), Some(payee.clone()));
        assert_eq!(read_payee_token(5, &token), None, "another period's");
        assert_eq!(read_payee_token(4, "@@@"), None);
        // A statement's token is not a page of payees'.
        let line = LineKey {
            payee_type: "member".into(),
            payee_id: "M-7".into(),
            claim_id: "C-1".into(),
            sequence: 1,
        };
        assert_eq!(read_payee_token(4, &page_token(4, &line)), None);
        let mut v = Violations::new();
        assert_eq!(
            remittance_page(&ask(true, 10, &token), false, &mut v),
            Some(payee)
        );
        assert!(v.0.is_empty());
        let mut v = Violations::new();
        assert_eq!(remittance_page(&ask(true, 0, ""), false, &mut v), None);
        assert!(v.0.is_empty());
        let mut v = Violations::new();
        assert_eq!(remittance_page(&ask(false, 0, ""), true, &mut v), None);
        assert!(v.0.is_empty(), "one payee's whole advice");
        for (r, one, field) in [
            (ask(false, 10, ""), false, "page_size"),
            (ask(false, 0, &token), false, "page_token"),
            (ask(true, 0, ""), true, "totals_only"),
            (ask(true, MAX_PAYEES_PAGE + 1, ""), false, "page_size"),
            (ask(true, 10, "@@@"), false, "page_token"),
            (
                ask(true, 10, &payee_token(5, &("member".into(), "M-7".into()))),
                false,
                "page_token",
            ),
        ] {
            let mut v = Violations::new();
            remittance_page(&r, one, &mut v);
            assert_eq!(v.0.len(), 1, "{r:?}");
            assert_eq!(v.0[0].field, field, "{r:?}");
        }
    }
}
