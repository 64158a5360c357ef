//! `passerelle.roster.v1.RosterService`.

use std::sync::Arc;

use passerelle_domain::Member;
use passerelle_proto::roster::v1 as pb;
use pb::roster_service_server::RosterService;
use tonic::{Request, Response, Status};

use super::call::{Incoming, serve, serve_incoming};
use super::parse::Violations;
use crate::service::RosterSnapshot;
use crate::service::{Broker, ServiceError};

/// Most members in one UpsertMembers call or ImportRoster message.
pub const MAX_MEMBERS: usize = 1000;
/// Most members in one ImportRoster snapshot (and messages in its stream).
pub const MAX_IMPORT: usize = 500_000;
/// Past this many wrong fields an import stops reading its stream.
pub const MAX_IMPORT_VIOLATIONS: usize = 1000;

/// One member of an import that a refusal names: its index in the import
/// ("members[i]..." in the field violations of INVALID_ARGUMENT or the
/// violations of FAILED_PRECONDITION), the rest of the field's path
/// ("scheme_id", "products[0].product_id"), the violation's words, and its
/// type (a precondition's, such as COVERAGE_OVERLAP; empty for a field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedMember {
    pub index: usize,
    pub field: String,
    pub description: String,
    pub kind: String,
}

/// The members of an import of `members` that a refusal names, in the
/// order it names them: what the command line and the console read to name
/// the file's lines. A beneficiary id refused as shared by too many
/// members (the store's `coverage_rule`) refuses every member of the
/// import that has it, named or not: a refusal lists at most
/// `MAX_VIOLATIONS`, and the import sent again without those alone would
/// let the rest of a placeholder's rows through.
pub fn refused_members(s: &Status, members: &[pb::Member]) -> Vec<RefusedMember> {
    let mut refused = named_members(s, members.len());
    let crowded: std::collections::HashMap<(&str, &str), RefusedMember> = refused
        .iter()
        .filter(|r| r.field == "beneficiary_id" && r.description.starts_with("shared by "))
        .map(|r| {
            let m = &members[r.index];
            ((m.scheme_id.as_str(), m.beneficiary_id.as_str()), r.clone())
        })
        .collect();
    if !crowded.is_empty() {
        let named: std::collections::HashSet<usize> = refused.iter().map(|r| r.index).collect();
        for (index, m) in members.iter().enumerate() {
            if let Some(r) = crowded.get(&(m.scheme_id.as_str(), m.beneficiary_id.as_str()))
                && !named.contains(&index)
            {
                refused.push(RefusedMember { index, ..r.clone() });
            }
        }
    }
    refused
}

/// The member numbers an import sent again without its `refused` rows
/// keeps as they are (never ended): each refused member's number; for a
/// number refused as a letter-case slip of a stored one, that stored one
/// (absent from the file, it would else be ended: the command line ended
/// it); none for a number refused otherwise, which the broker would refuse
/// in the kept list too. The console's check and the command line both.
pub fn kept_numbers(refused: &[RefusedMember], members: &[pb::Member]) -> Vec<String> {
    let mut keep = Vec::new();
    let bad_number: std::collections::HashSet<usize> = refused
        .iter()
        .filter(|r| r.field == "member_number")
        .map(|r| r.index)
        .collect();
    for r in refused {
        if r.field == "member_number" {
            if r.description.starts_with("differs from member ")
                && let Some(stored) = r.description.split('"').nth(1)
            {
                keep.push(stored.to_string());
            }
        } else if !bad_number.contains(&r.index) {
            keep.push(members[r.index].member_number.clone());
        }
    }
    keep.sort();
    keep.dedup();
    keep
}

/// The members a refusal names itself, by their index among `count`.
pub fn named_members(s: &Status, count: usize) -> Vec<RefusedMember> {
    use tonic_types::StatusExt;
    let mut found: Vec<(String, String, String)> = Vec::new();
    if let Some(br) = s.get_details_bad_request() {
        found.extend(
            br.field_violations
                .into_iter()
                .map(|v| (v.field, v.description, String::new())),
        );
    }
    if let Some(pf) = s.get_details_precondition_failure() {
        found.extend(
            pf.violations
                .into_iter()
                .map(|v| (v.subject, v.description, v.r#type)),
        );
    }
    found
        .into_iter()
        .filter_map(|(path, description, kind)| {
            let (i, tail) = path.strip_prefix("members[")?.split_once(']')?;
            let index: usize = i.parse().ok()?;
            (index < count).then(|| RefusedMember {
                index,
                field: tail.trim_start_matches('.').to_string(),
                description,
                kind,
            })
        })
        .collect()
}

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

/// A member of an upsert or an import: `passerelle_proto::parse::member`,
/// with the schemes this broker serves.
fn member_from_pb(
    v: &mut Violations,
    i: usize,
    mutuelle_id: &str,
    m: pb::Member,
    broker: &Broker,
) -> Option<Member> {
    passerelle_proto::parse::member(v, i, mutuelle_id, m, &|s| broker.scheme(s).is_ok())
}

impl RosterApi {
    /// Reads an import's members after its header, every wrong field
    /// collected (up to [`MAX_IMPORT_VIOLATIONS`]); a stream the client
    /// cut is its error.
    async fn read_import<S>(
        &self,
        header: pb::ImportRosterHeader,
        stream: &mut S,
    ) -> Result<RosterSnapshot, Status>
    where
        S: futures::Stream<Item = Result<pb::ImportRosterRequest, Status>> + Unpin + Send,
    {
        use futures::StreamExt;
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
        'messages: while let Some(msg) = stream
            .next()
            .await
            .transpose()
            .map_err(crate::api::edge::decode_refusal)?
        {
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
                            break 'messages;
                        }
                        // Within a message too: one message of 1,000 bad
                        // members passed the bound of wrong fields.
                        if v.0.len() >= MAX_IMPORT_VIOLATIONS {
                            v.add(
                                "members",
                                "too many messages or errors: the import stops here",
                            );
                            break 'messages;
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
            if v.0.len() >= MAX_IMPORT_VIOLATIONS {
                break;
            }
            if !seen.insert(m.member_number.as_str()) {
                v.add(
                    format!("members[{i}].member_number"),
                    "listed twice in this import",
                );
            }
        }
        v.finish(()).map_err(ServiceError::Invalid)?;
        Ok(RosterSnapshot {
            mutuelle_id: header.mutuelle_id,
            members,
            as_of,
            keep: header.keep_member_numbers,
            end_missing: !header.no_end_dating,
            dry_run: header.dry_run,
        })
    }

    /// An import after its header: the gRPC stream's messages, or the
    /// batches of a file the console read. Authorized, admitted and audited
    /// as one call under its header (`serve_incoming`).
    pub(crate) async fn import_from<S>(
        &self,
        incoming: Incoming<pb::ImportRosterHeader>,
        refused: Option<Status>,
        mut stream: S,
    ) -> Result<Response<pb::ImportRosterResponse>, Status>
    where
        S: futures::Stream<Item = Result<pb::ImportRosterRequest, Status>> + Unpin + Send,
    {
        // The place is taken before the stream is read: an import over the
        // limit reads nothing (its members would fill memory first).
        serve_incoming(&self.broker, incoming, refused, |header, ()| async move {
            let dry_run = header.dry_run;
            // The mutuelle's one import in this broker, before its members
            // are read: a second is refused without buffering them.
            let place = self.broker.roster_import_place(&header.mutuelle_id)?;
            let snapshot = self.read_import(header, &mut stream).await?;
            let d = self.broker.import_roster(&place, snapshot).await?;
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
            Ok::<_, Status>(pb::ImportRosterResponse {
                added: d.added.len() as u32,
                updated: d.updated.len() as u32,
                end_dated: d.end_dated.len() as u32,
                unchanged: d.unchanged,
                changes,
                dry_run,
                in_force_before: d.in_force_before,
            })
        })
        .await
    }
}

mutuelle_call!(pb::UpsertMembersRequest, "UpsertMembers", |m| format!(
    "{}/roster",
    m.mutuelle_id
));
mutuelle_call!(pb::GetMemberRequest, "GetMember", |m| format!(
    "{}/roster",
    m.mutuelle_id
));
mutuelle_call!(
    pb::GetMemberCeilingsRequest,
    "GetMemberCeilings",
    |m| format!("{}/roster", m.mutuelle_id)
);
// An import is audited under its header (the first message); members are
// counted in the outcome.
mutuelle_call!(pb::ImportRosterHeader, "ImportRoster", |m| format!(
    "{}/roster",
    m.mutuelle_id
));

mutuelle_call!(
    pb::ImportOpeningBalancesRequest,
    "ImportOpeningBalances",
    |m| format!("{}/opening-balances", m.mutuelle_id)
);

#[tonic::async_trait]
impl RosterService for RosterApi {
    async fn import_opening_balances(
        &self,
        request: Request<pb::ImportOpeningBalancesRequest>,
    ) -> Result<Response<pb::ImportOpeningBalancesResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            self.check_mutuelle(&mut v, &msg.mutuelle_id);
            let rows: Vec<_> = msg
                .balances
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let category = match b.care_category {
                        0 => None,
                        c => {
                            let cat = passerelle_proto::convert::care_category(c);
                            if cat.is_none() {
                                v.add(
                                    format!("balances[{i}].care_category"),
                                    "must be a known care category",
                                );
                            }
                            cat
                        }
                    };
                    crate::service::roster::OpeningInput {
                        member_number: b.member_number.clone(),
                        scope: b.scope.clone(),
                        category,
                        year: b.year,
                        amount: b.amount,
                        count: b.count,
                    }
                })
                .collect();
            v.finish(())?;
            let (set, unchanged) = self
                .broker
                .import_opening_balances(&msg.mutuelle_id, rows, msg.dry_run)
                .await?;
            Ok(pb::ImportOpeningBalancesResponse {
                set,
                unchanged,
                dry_run: msg.dry_run,
            })
        })
        .await
    }

    async fn upsert_members(
        &self,
        request: Request<pb::UpsertMembersRequest>,
    ) -> Result<Response<pb::UpsertMembersResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
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
            Ok(pb::UpsertMembersResponse {
                upserted: upserted as u32,
            })
        })
        .await
    }

    async fn import_roster(
        &self,
        request: Request<tonic::Streaming<pb::ImportRosterRequest>>,
    ) -> Result<Response<pb::ImportRosterResponse>, Status> {
        let Incoming {
            auth,
            peer,
            msg: mut stream,
            audited,
            trace,
            accept_language,
        } = Incoming::of(request);
        // The header comes first; its mutuelle names the caller for the
        // audit. An import without one is refused, and audited all the same.
        let (header, refused) = match stream.message().await {
            Ok(Some(pb::ImportRosterRequest {
                part: Some(pb::import_roster_request::Part::Header(h)),
            })) => (h, None),
            Ok(_) => (
                pb::ImportRosterHeader::default(),
                Some(
                    ServiceError::invalid("header", "the first message must carry the header")
                        .into(),
                ),
            ),
            Err(status) => (
                pb::ImportRosterHeader::default(),
                Some(crate::api::edge::decode_refusal(status)),
            ),
        };
        let incoming = Incoming {
            auth,
            peer,
            msg: header,
            audited,
            trace,
            accept_language,
        };
        self.import_from(incoming, refused, stream).await
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            self.check_mutuelle(&mut v, &msg.mutuelle_id);
            v.id("member_number", &msg.member_number);
            v.finish(())?;
            let m = self
                .broker
                .get_member(&msg.mutuelle_id, &msg.member_number)
                .await?;
            Ok(pb::Member::from(&m))
        })
        .await
    }

    async fn get_member_ceilings(
        &self,
        request: Request<pb::GetMemberCeilingsRequest>,
    ) -> Result<Response<pb::GetMemberCeilingsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            self.check_mutuelle(&mut v, &msg.mutuelle_id);
            v.id("member_number", &msg.member_number);
            let date = if msg.date.is_empty() {
                None
            } else {
                v.date("date", &msg.date)
            };
            v.finish(())?;
            let m = self
                .broker
                .member_ceilings(&msg.mutuelle_id, &msg.member_number, date)
                .await?;
            Ok(pb::GetMemberCeilingsResponse {
                product: m.product.as_ref().map(|p| {
                    passerelle_proto::convert::product_ref_to_pb(
                        &passerelle_domain::ProductRef::from(p),
                    )
                }),
                date: passerelle_domain::date::format(m.date),
                ceilings: m
                    .ceilings
                    .iter()
                    .map(passerelle_proto::convert::ceiling_to_pb)
                    .collect(),
                covered: m.covered,
                reason: m
                    .reason
                    .as_ref()
                    .map(passerelle_proto::convert::reason_to_pb),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::roster::v1::import_roster_request::Part;
    use passerelle_proto::roster::v1::roster_service_client::RosterServiceClient;
    use passerelle_proto::roster::v1::roster_service_server::RosterServiceServer;
    use tonic::Code;
    use tonic::transport::Channel;

    use super::*;
    use crate::admission::Pool;
    use crate::config::LimitsConfig;
    use crate::identity::Auth;
    use crate::service::testing::broker_with;

    /// The roster service alone on a plaintext socket of its own.
    async fn roster_client(broker: Arc<Broker>) -> RosterServiceClient<Channel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = tonic::service::interceptor::InterceptedService::new(
            RosterServiceServer::new(RosterApi::new(broker)),
            |mut r: Request<()>| {
                r.extensions_mut().insert(Auth::Plaintext);
                Ok(r)
            },
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        RosterServiceClient::new(channel)
    }

    fn header(mutuelle_id: &str) -> pb::ImportRosterRequest {
        pb::ImportRosterRequest {
            part: Some(Part::Header(pb::ImportRosterHeader {
                mutuelle_id: mutuelle_id.into(),
                dry_run: true,
                ..Default::default()
            })),
        }
    }

    /// One message of bad members stops at the bound of wrong fields,
    /// where it read and checked all of its members (three violations
    /// each, up to 500,000) whatever the bound.
    #[tokio::test]
    async fn one_message_of_bad_members_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with(dir.path(), LimitsConfig::default());
        let mut client = roster_client(broker).await;
        let bad = pb::Member {
            scheme_id: String::new(),
            beneficiary_id: String::new(),
            member_number: String::new(),
            ..Default::default()
        };
        let batch = pb::ImportRosterRequest {
            part: Some(Part::Members(pb::MemberBatch {
                members: vec![bad; 1_000],
            })),
        };
        let err = client
            .import_roster(tokio_stream::iter(vec![header("MUT-X"), batch]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let more: usize = err
            .message()
            .rsplit_once("; and ")
            .and_then(|(_, n)| n.strip_suffix(" more"))
            .and_then(|n| n.parse().ok())
            .expect("a count of the rest");
        assert!(
            // A member's own violations (three here) and the stop's.
            more + crate::api::status::MAX_VIOLATIONS <= MAX_IMPORT_VIOLATIONS + 4,
            "{more} more"
        );
    }

    /// An import refused before its members are read (no header, no place)
    /// leaves its audit row like any other call.
    #[tokio::test]
    async fn a_refused_import_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LimitsConfig {
            max_in_flight_per_caller: 1,
            ..Default::default()
        };
        let broker = broker_with(dir.path(), limits);
        let mut client = roster_client(broker.clone()).await;

        // The first message is not the header.
        let members = pb::ImportRosterRequest {
            part: Some(Part::Members(pb::MemberBatch { members: vec![] })),
        };
        let err = client
            .import_roster(tokio_stream::iter(vec![members]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // The caller's one place is taken: refused before its stream is read.
        let held = broker
            .admit("plaintext:mutuelle:MUT-X", Pool::Calls)
            .unwrap();
        let err = client
            .import_roster(tokio_stream::iter(vec![header("MUT-X")]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        drop(held);

        // Admitted: an empty dry run answers.
        let ok = client
            .import_roster(tokio_stream::iter(vec![header("MUT-X")]))
            .await
            .unwrap()
            .into_inner();
        assert!(ok.dry_run);

        broker.audit().flush().await;
        let rows: Vec<_> = broker
            .store()
            .read_audit(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.method == "ImportRoster")
            .collect();
        let seen: Vec<(&str, &str)> = rows
            .iter()
            .map(|e| (e.subject.as_str(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "/roster",
                    "InvalidArgument: header: the first message must carry the header"
                ),
                ("MUT-X/roster", seen[1].1),
                ("MUT-X/roster", "ok"),
            ]
        );
        assert!(
            seen[1].1.starts_with("ResourceExhausted: "),
            "{}",
            seen[1].1
        );
        assert!(rows[0].party.starts_with("plaintext:mutuelle:@127.0.0.1:"));
        assert!(rows.iter().all(|e| e.request_hash.len() == 64));
    }
}
