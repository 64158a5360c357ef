//! `passerelle.roster.v1.RosterService`.

use std::sync::Arc;

use passerelle_domain::validate::MAX_PRODUCT_PERIODS;
use passerelle_domain::{Member, ProductPeriod, date};
use passerelle_proto::roster::v1 as pb;
use pb::roster_service_server::RosterService;
use tonic::{Request, Response, Status};

use super::auth::{auth_of, mutuelle_scope, party_of};
use super::{Admit, audited, audited_in, parse::Violations};
use crate::admission::Pool;
use crate::service::RosterSnapshot;
use crate::service::{Broker, ServiceError};

/// Most members in one UpsertMembers call or ImportRoster message.
pub const MAX_MEMBERS: usize = 1000;
/// Most members in one ImportRoster snapshot (and messages in its stream).
pub const MAX_IMPORT: usize = 500_000;
/// Past this many wrong fields an import stops reading its stream.
pub const MAX_IMPORT_VIOLATIONS: usize = 1000;

pub struct RosterApi {
    broker: Arc<Broker>,
}

impl RosterApi {
    pub fn new(broker: Arc<Broker>) -> Self {
        RosterApi { broker }
    }

    fn check_mutuelle(&self, v: &mut Violations, id: &str) {
        v.id("mutuelle_id", id);
        if !id.is_empty() && !self.broker.partners().any(|p| p.id == id) {
            v.add("mutuelle_id", format!("unknown mutuelle {id:?}"));
        }
    }
}

fn member_from_pb(
    v: &mut Violations,
    i: usize,
    mutuelle_id: &str,
    m: pb::Member,
    broker: &Broker,
) -> Option<Member> {
    let f = |name: &str| format!("members[{i}].{name}");
    v.id(&f("scheme_id"), &m.scheme_id);
    if !m.scheme_id.is_empty() && broker.scheme(&m.scheme_id).is_err() {
        v.add(f("scheme_id"), format!("unknown scheme {:?}", m.scheme_id));
    }
    v.id(&f("beneficiary_id"), &m.beneficiary_id);
    v.id(&f("member_number"), &m.member_number);
    if !m.household_id.is_empty() {
        v.id(&f("household_id"), &m.household_id);
    }
    let paid_until = if m.contribution_paid_until.is_empty() {
        None
    } else {
        v.date(&f("contribution_paid_until"), &m.contribution_paid_until)
    };
    if m.products.len() > MAX_PRODUCT_PERIODS {
        v.add(
            f("products"),
            format!("at most {MAX_PRODUCT_PERIODS} product periods"),
        );
        return None;
    }
    let mut products = Vec::with_capacity(m.products.len());
    for (j, p) in m.products.iter().enumerate() {
        let pf = |name: &str| format!("members[{i}].products[{j}].{name}");
        v.id(&pf("product_id"), &p.product_id);
        let start = v.date(&pf("start_date"), &p.start_date);
        let end = if p.end_date.is_empty() {
            None
        } else {
            v.date(&pf("end_date"), &p.end_date)
        };
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            v.add(pf("end_date"), "must not be before start_date");
        }
        if let Some(start) = start {
            products.push(ProductPeriod {
                product_id: p.product_id.clone(),
                start,
                end,
            });
        }
    }
    let mut sorted: Vec<&ProductPeriod> = products.iter().collect();
    sorted.sort_by_key(|p| p.start);
    for w in sorted.windows(2) {
        if w[0].end.is_none_or(|e| e >= w[1].start) {
            v.add(f("products"), "product periods must not overlap");
            break;
        }
    }
    Some(Member {
        mutuelle_id: mutuelle_id.to_string(),
        scheme_id: m.scheme_id,
        beneficiary_id: m.beneficiary_id,
        member_number: m.member_number,
        household_id: m.household_id,
        paid_until,
        products,
    })
}

fn member_to_pb(m: &Member) -> pb::Member {
    pb::Member {
        scheme_id: m.scheme_id.clone(),
        beneficiary_id: m.beneficiary_id.clone(),
        member_number: m.member_number.clone(),
        household_id: m.household_id.clone(),
        contribution_paid_until: m.paid_until.map(date::format).unwrap_or_default(),
        products: m
            .products
            .iter()
            .map(|p| pb::ProductPeriod {
                product_id: p.product_id.clone(),
                start_date: date::format(p.start),
                end_date: p.end.map(date::format).unwrap_or_default(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl RosterService for RosterApi {
    async fn upsert_members(
        &self,
        request: Request<pb::UpsertMembersRequest>,
    ) -> Result<Response<pb::UpsertMembersResponse>, Status> {
        let auth = auth_of(&request);
        let who = party_of(&request, &auth, "mutuelle", &request.get_ref().mutuelle_id);
        let mut msg = request.into_inner();
        let scope = mutuelle_scope(&auth, &msg.mutuelle_id);
        if let Ok(m) = &scope {
            msg.mutuelle_id.clone_from(m);
        }
        let subject = format!("{}/roster", msg.mutuelle_id);
        audited(
            &self.broker,
            who,
            "UpsertMembers",
            subject,
            msg,
            |msg| async move {
                scope?;
                let mut v = Violations::new();
                self.check_mutuelle(&mut v, &msg.mutuelle_id);
                if msg.members.len() > MAX_MEMBERS {
                    v.add("members", format!("at most {MAX_MEMBERS} members per call"));
                    return Err(ServiceError::Invalid(v.0));
                }
                let mut members = Vec::with_capacity(msg.members.len());
                for (i, m) in msg.members.iter().cloned().enumerate() {
                    if let Some(m) = member_from_pb(&mut v, i, &msg.mutuelle_id, m, &self.broker) {
                        if members
                            .iter()
                            .any(|o: &Member| o.member_number == m.member_number)
                        {
                            v.add(
                                format!("members[{i}].member_number"),
                                "listed twice in this call",
                            );
                        }
                        members.push(m);
                    }
                }
                v.finish(())?;
                let upserted = self
                    .broker
                    .upsert_members(&msg.mutuelle_id, members)
                    .await?;
                Ok::<_, ServiceError>(pb::UpsertMembersResponse {
                    upserted: upserted as u32,
                })
            },
        )
        .await
    }

    async fn import_roster(
        &self,
        request: Request<tonic::Streaming<pb::ImportRosterRequest>>,
    ) -> Result<Response<pb::ImportRosterResponse>, Status> {
        let auth = auth_of(&request);
        let peer_req = request.remote_addr();
        let mut stream = request.into_inner();
        // The header comes first; its mutuelle names the caller for the audit.
        let header = match stream.message().await? {
            Some(pb::ImportRosterRequest {
                part: Some(pb::import_roster_request::Part::Header(h)),
            }) => h,
            _ => {
                return Err(ServiceError::invalid(
                    "header",
                    "the first message must carry the header",
                )
                .into());
            }
        };
        let mut header = header;
        let scope = mutuelle_scope(&auth, &header.mutuelle_id);
        if let Ok(m) = &scope {
            header.mutuelle_id.clone_from(m);
        }
        let who = match (&auth, peer_req) {
            (crate::identity::Auth::Caller(c), Some(a)) => format!("{}@{a}", c.display()),
            (crate::identity::Auth::Caller(c), None) => c.display(),
            (_, Some(a)) => format!("plaintext:mutuelle:{}@{a}", header.mutuelle_id),
            (_, None) => format!("plaintext:mutuelle:{}", header.mutuelle_id),
        };
        let subject = format!("{}/roster", header.mutuelle_id);
        // The place is taken before the stream is read: an import over the
        // limit reads nothing (its members would fill memory first).
        let admit = match self.broker.admit(super::caller_key(&who), Pool::Calls) {
            Ok(p) => Admit::Held(p),
            Err(e) => {
                let hashed = header.clone();
                return audited_in(
                    &self.broker,
                    Admit::Refused(e),
                    who,
                    "ImportRoster",
                    subject,
                    hashed,
                    |_| async { Ok::<pb::ImportRosterResponse, ServiceError>(Default::default()) },
                )
                .await;
            }
        };
        let mut members = Vec::new();
        let mut v = Violations::new();
        self.check_mutuelle(&mut v, &header.mutuelle_id);
        if header.keep_member_numbers.len() > MAX_IMPORT {
            v.add(
                "header.keep_member_numbers",
                format!("at most {MAX_IMPORT} member numbers"),
            );
        } else {
            for (i, n) in header.keep_member_numbers.iter().enumerate() {
                v.id(&format!("header.keep_member_numbers[{i}]"), n);
            }
        }
        // Empty: today, on the service's clock.
        let as_of = (!header.as_of.is_empty()).then(|| {
            v.date("header.as_of", &header.as_of)
                .unwrap_or(time::Date::MIN)
        });
        let mut count = 0usize;
        let mut messages = 0usize;
        while let Some(msg) = stream.message().await? {
            // Past a bound, stop reading: the answer lists what is wrong so
            // far, and memory stays bounded.
            messages += 1;
            if messages > MAX_IMPORT || v.0.len() >= MAX_IMPORT_VIOLATIONS {
                v.add(
                    "members",
                    "too many messages or errors: the import stops here",
                );
                break;
            }
            match msg.part {
                Some(pb::import_roster_request::Part::Members(batch)) => {
                    if batch.members.len() > MAX_MEMBERS {
                        v.add(
                            "members",
                            format!("at most {MAX_MEMBERS} members per message"),
                        );
                    }
                    for m in batch.members {
                        if count >= MAX_IMPORT {
                            v.add(
                                "members",
                                format!("at most {MAX_IMPORT} members per import"),
                            );
                            messages = MAX_IMPORT;
                            break;
                        }
                        if let Some(m) =
                            member_from_pb(&mut v, count, &header.mutuelle_id, m, &self.broker)
                        {
                            members.push(m);
                        }
                        count += 1;
                    }
                }
                _ => v.add("header", "only the first message may carry the header"),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in members.iter().enumerate() {
            if !seen.insert(m.member_number.as_str()) {
                v.add(
                    format!("members[{i}].member_number"),
                    "listed twice in this import",
                );
            }
        }
        let broker = self.broker.clone();
        // The audit hash covers the header; members are counted in the outcome.
        let hashed = header.clone();
        audited_in(
            &self.broker,
            admit,
            who,
            "ImportRoster",
            subject,
            hashed,
            |header| async move {
                scope?;
                v.finish(())?;
                let dry_run = header.dry_run;
                let import = RosterSnapshot {
                    mutuelle_id: header.mutuelle_id,
                    members,
                    as_of,
                    keep: header.keep_member_numbers,
                    end_missing: !header.no_end_dating,
                    dry_run,
                };
                let d = broker.import_roster(import).await?;
                let changes = d
                    .added
                    .iter()
                    .map(|n| (n, "added"))
                    .chain(d.updated.iter().map(|n| (n, "updated")))
                    .chain(d.end_dated.iter().map(|n| (n, "end_dated")))
                    .map(|(n, c)| pb::RosterChange {
                        member_number: n.clone(),
                        change: c.to_string(),
                    })
                    .collect();
                Ok(pb::ImportRosterResponse {
                    added: d.added.len() as u32,
                    updated: d.updated.len() as u32,
                    end_dated: d.end_dated.len() as u32,
                    unchanged: d.unchanged,
                    changes,
                    dry_run,
                })
            },
        )
        .await
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let auth = auth_of(&request);
        let who = party_of(&request, &auth, "mutuelle", &request.get_ref().mutuelle_id);
        let mut msg = request.into_inner();
        let scope = mutuelle_scope(&auth, &msg.mutuelle_id);
        if let Ok(m) = &scope {
            msg.mutuelle_id.clone_from(m);
        }
        let subject = format!("{}/roster", msg.mutuelle_id);
        audited(
            &self.broker,
            who,
            "GetMember",
            subject,
            msg,
            |msg| async move {
                scope?;
                let mut v = Violations::new();
                self.check_mutuelle(&mut v, &msg.mutuelle_id);
                v.id("member_number", &msg.member_number);
                v.finish(())?;
                let m = self
                    .broker
                    .get_member(&msg.mutuelle_id, &msg.member_number)
                    .await?;
                Ok::<_, ServiceError>(member_to_pb(&m))
            },
        )
        .await
    }
}
