//! The roster: what mutuelles declare of their members (UpsertMembers,
//! ImportRoster, GetMember) and the coverage conflicts operators resolve.
//! Products named must be declared (rules mutuelles); the coverage rule
//! itself is the store's (see [`crate::store::coverage_overlaps`]).

use passerelle_adapters::AdapterKind;
use passerelle_domain::engine::{self, CeilingView};
use passerelle_domain::validate::FieldViolation;
use passerelle_domain::{Date, Member, Product};

use super::{Broker, ServiceError, mask};
use crate::store::{CoverageConflict, RosterDiff, RosterImport};

/// A roster snapshot of one mutuelle (ImportRoster), as the edge read it.
#[derive(Debug)]
pub struct RosterSnapshot {
    pub mutuelle_id: String,
    pub members: Vec<Member>,
    /// Members absent from the snapshot end the day before this date
    /// (`None`: today, on the service's clock).
    pub as_of: Option<Date>,
    /// Never end-date these member numbers (rows the client skipped).
    pub keep: Vec<String>,
    /// End-date absent members (false: leave them as they are).
    pub end_missing: bool,
    pub dry_run: bool,
}

/// Most opening balances in one call.
pub const MAX_OPENING_BALANCES: usize = 50_000;

/// One opening balance as the edge read it.
#[derive(Clone, Debug)]
pub struct OpeningInput {
    pub member_number: String,
    /// "beneficiary-year", "household-year", "category-year", "count".
    pub scope: String,
    pub category: Option<passerelle_domain::CareCategory>,
    pub year: u32,
    pub amount: i64,
    pub count: u32,
}

/// A member of a mutuelle passerelle adjudicates for, on a date: the
/// product version in force, its ceilings used and left, and whether the
/// member is covered then, as eligibility answers (`reason`: why not).
#[derive(Debug)]
pub struct MemberCover {
    pub product: Option<Product>,
    pub date: Date,
    pub ceilings: Vec<CeilingView>,
    pub covered: bool,
    pub reason: Option<passerelle_domain::Reason>,
}

impl Broker {
    /// Sets a rules mutuelle's opening balances (see `ImportOpeningBalances`
    /// in the roster contract): every row checked (its member, its ceiling,
    /// its figures), then all set or none by the store. Returns (set,
    /// unchanged).
    pub async fn import_opening_balances(
        &self,
        mutuelle_id: &str,
        rows: Vec<OpeningInput>,
        dry_run: bool,
    ) -> Result<(u32, u32), ServiceError> {
        use passerelle_domain::{CeilingKey, CeilingScope};
        if self.partners.get(mutuelle_id).map(|p| p.kind) != Some(AdapterKind::Rules) {
            return Err(ServiceError::Refused(format!(
                "{mutuelle_id} keeps its own ceilings in its own system: opening balances are declared there"
            )));
        }
        if rows.len() > MAX_OPENING_BALANCES {
            return Err(ServiceError::invalid(
                "balances",
                format!("at most {MAX_OPENING_BALANCES} per call"),
            ));
        }
        let mut bad: Vec<FieldViolation> = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for (i, r) in rows.iter().enumerate() {
            let f = |name: &str| format!("balances[{i}].{name}");
            // An identifier as every other, before it is looked up (a NUL
            // reached PostgreSQL and was answered "store unavailable").
            let before = bad.len();
            passerelle_domain::validate::check_id(&f("member_number"), &r.member_number, &mut bad);
            if bad.len() > before {
                continue;
            }
            let Some(member) = self.store.get_member(mutuelle_id, &r.member_number).await? else {
                bad.push(FieldViolation::new(
                    f("member_number"),
                    format!("{} is not a member of {mutuelle_id}", r.member_number),
                ));
                continue;
            };
            let scope = match (r.scope.as_str(), r.category) {
                ("beneficiary-year", _) => CeilingScope::BeneficiaryYear,
                ("household-year", _) => CeilingScope::HouseholdYear,
                ("category-year", Some(c)) => CeilingScope::CategoryYear(c),
                ("count", Some(c)) => CeilingScope::Count(c),
                ("category-year" | "count", None) => {
                    bad.push(FieldViolation::new(
                        f("care_category"),
                        "required for category-year and count",
                    ));
                    continue;
                }
                _ => {
                    bad.push(FieldViolation::new(
                        f("scope"),
                        "must be beneficiary-year, household-year, category-year or count",
                    ));
                    continue;
                }
            };
            if !(2000..=2100).contains(&r.year) {
                bad.push(FieldViolation::new(
                    f("year"),
                    "must be a year such as 2026",
                ));
                continue;
            }
            let is_count = matches!(scope, CeilingScope::Count(_));
            if r.amount < 0 || r.amount > passerelle_domain::validate::MAX_PRODUCT_AMOUNT {
                bad.push(FieldViolation::new(
                    f("amount"),
                    "must be 0 or more, in minor units",
                ));
                continue;
            }
            if is_count && r.amount != 0 {
                bad.push(FieldViolation::new(f("amount"), "a count takes no amount"));
                continue;
            }
            if !is_count && r.count != 0 {
                bad.push(FieldViolation::new(
                    f("count"),
                    "an amount ceiling takes no count",
                ));
                continue;
            }
            let key = CeilingKey {
                scope,
                subject: if scope == CeilingScope::HouseholdYear {
                    member.household().to_string()
                } else {
                    member.member_number.clone()
                },
                period: r.year.to_string(),
                act: String::new(),
            };
            let storage = key.storage_key();
            if !seen.insert(storage.clone()) {
                bad.push(FieldViolation::new(
                    f("scope"),
                    "this ceiling is listed twice (a household's, by two of its members?)",
                ));
                continue;
            }
            out.push(crate::store::opening::OpeningRow {
                key: storage,
                label: format!("member {} ({} {})", r.member_number, r.scope, r.year),
                amount: r.amount,
                count: r.count,
            });
        }
        if !bad.is_empty() {
            return Err(ServiceError::Invalid(bad));
        }
        Ok(self
            .store
            .set_opening_balances(mutuelle_id, &out, dry_run, self.clock.now_ms())
            .await?)
    }

    /// Every product a member names must be declared, for a mutuelle the
    /// broker adjudicates for (adapter `rules`): a typo would otherwise be
    /// stored and eligibility answer NO_PRODUCT. A mutuelle with its own
    /// system owns its product ids, passed through as they are.
    async fn check_products(
        &self,
        mutuelle_id: &str,
        members: &[Member],
    ) -> Result<(), ServiceError> {
        if self.partners.get(mutuelle_id).map(|p| p.kind) != Some(AdapterKind::Rules) {
            return Ok(());
        }
        let declared: std::collections::HashSet<String> = self
            .store
            .list_products(mutuelle_id)
            .await?
            .into_iter()
            .map(|(p, _)| p.id)
            .collect();
        let mut v = Vec::new();
        for (i, m) in members.iter().enumerate() {
            for (j, p) in m.products.iter().enumerate() {
                if !declared.contains(&p.product_id) {
                    v.push(FieldViolation::new(
                        format!("members[{i}].products[{j}].product_id"),
                        format!(
                            "unknown product {:?} for mutuelle {mutuelle_id}",
                            p.product_id
                        ),
                    ));
                }
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid(v))
        }
    }

    /// Creates or replaces members of one mutuelle (UpsertMembers): products
    /// checked, then the coverage rule in the store (see
    /// [`crate::store::coverage_overlaps`]).
    pub async fn upsert_members(
        &self,
        mutuelle_id: &str,
        members: Vec<Member>,
    ) -> Result<usize, ServiceError> {
        self.check_products(mutuelle_id, &members).await?;
        self.store
            .upsert_members(&members, self.clock.now_ms())
            .await?;
        Ok(members.len())
    }

    /// Applies (or, dry, computes) a roster snapshot (ImportRoster), with the
    /// same checks as [`Broker::upsert_members`].
    /// `place`: the mutuelle's one import in this broker
    /// ([`Broker::roster_import_place`]), taken before the snapshot was
    /// read.
    pub async fn import_roster(
        &self,
        place: &ImportRunning<'_>,
        s: RosterSnapshot,
    ) -> Result<RosterDiff, ServiceError> {
        if place.mutuelle_id != s.mutuelle_id {
            return Err(ServiceError::invalid(
                "mutuelle_id",
                "the import's place was taken for another mutuelle",
            ));
        }
        let today = self.clock.today();
        let as_of = s.as_of.unwrap_or(today);
        if s.end_missing {
            check_as_of(as_of, today)?;
        }
        self.check_products(&s.mutuelle_id, &s.members).await?;
        let import = RosterImport {
            mutuelle_id: s.mutuelle_id,
            members: s.members,
            as_of,
            keep: s.keep,
            end_missing: s.end_missing,
            dry_run: s.dry_run,
        };
        Ok(self
            .store
            .import_roster(import, self.clock.now_ms())
            .await?)
    }

    /// The place of a mutuelle's roster import in this broker, taken before
    /// its members are read ([`ImportRunning`]).
    pub fn roster_import_place(
        &self,
        mutuelle_id: &str,
    ) -> Result<ImportRunning<'_>, ServiceError> {
        ImportRunning::take(self, mutuelle_id)
    }

    /// A member of a mutuelle, by member number.
    pub async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Member, ServiceError> {
        self.store
            .get_member(mutuelle_id, member_number)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("member {member_number}")))
    }

    /// A member's ceilings on a date, for a mutuelle the broker adjudicates
    /// for: the product version in force and, for each of its ceilings,
    /// the limit, what claims used and what is left (the figures an
    /// eligibility answer gives, read from the same store).
    pub async fn member_ceilings(
        &self,
        mutuelle_id: &str,
        member_number: &str,
        date: Option<Date>,
    ) -> Result<MemberCover, ServiceError> {
        if self.partners.get(mutuelle_id).map(|p| p.kind) != Some(AdapterKind::Rules) {
            return Err(ServiceError::Refused(format!(
                "{mutuelle_id} keeps its own ceilings in its own system: passerelle holds them only for mutuelles it adjudicates for"
            )));
        }
        let date = date.unwrap_or_else(|| self.clock.today());
        let member = self.get_member(mutuelle_id, member_number).await?;
        let product = match member.product_on(date) {
            Some(period) => {
                self.store
                    .product_on(mutuelle_id, &period.product_id, date)
                    .await?
            }
            None => None,
        };
        let mut usage = Default::default();
        if let Some(product) = &product {
            let categories = product.categories.iter().map(|r| r.category);
            let mut keys = engine::keys_for(&member, product, date, None, categories);
            let acts = product.act_limits.iter().map(|a| a.act_code.as_str());
            keys.extend(engine::act_keys(&member, product, date, None, acts));
            if !keys.is_empty() {
                usage = self.store.usage(mutuelle_id, &keys).await?;
            }
        }
        // Covered as eligibility answers a scheme (the rules' own test:
        // product, dues, waiting periods), with the ceilings it shows.
        let answer = passerelle_adapters::rules::evaluate_eligibility(
            &engine::Context {
                member: &member,
                product: product.as_ref(),
                date_of_care: date,
                diagnoses: &[],
                stay_id: None,
                usage: &usage,
            },
            &[],
        );
        Ok(MemberCover {
            product,
            date,
            ceilings: answer.ceilings,
            covered: answer.covered,
            reason: answer.reason,
        })
    }

    /// Beneficiaries declared by two mutuelles on the same dates.
    pub async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, ServiceError> {
        if let Some(s) = scheme_id {
            self.scheme(s)?;
        }
        Ok(self.store.coverage_conflicts(scheme_id, limit).await?)
    }

    /// Resolves a beneficiary's coverage conflict in favour of `keep`: the
    /// other mutuelles' overlapping periods are ended or removed.
    pub async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
    ) -> Result<Vec<Member>, ServiceError> {
        self.scheme(scheme_id)?;
        if self.partners.get(keep).is_none() {
            return Err(ServiceError::invalid(
                "keep_mutuelle_id",
                format!("unknown mutuelle {keep:?}"),
            ));
        }
        let changed = self
            .store
            .resolve_coverage(scheme_id, beneficiary_id, keep, from, self.clock.now_ms())
            .await?;
        for m in &changed {
            tracing::info!(
                scheme = scheme_id,
                beneficiary = %mask(beneficiary_id),
                kept = keep,
                mutuelle = %m.mutuelle_id,
                member = %mask(&m.member_number),
                "coverage conflict resolved: membership end-dated"
            );
        }
        Ok(changed)
    }
}

/// A mutuelle's roster import running in this broker: one at a time per
/// mutuelle, a second refused before its members are read
/// (FAILED_PRECONDITION `ROSTER_IMPORT_RUNNING`). The store runs one per
/// mutuelle anyway (on PostgreSQL under a lock); a second waiting there
/// held a database connection all along, so that one mutuelle sending
/// imports at once could take every connection of the pool from claims
/// and eligibility. Per broker: another replica's import of the same
/// mutuelle still waits on the store's lock.
pub struct ImportRunning<'a> {
    broker: &'a Broker,
    mutuelle_id: String,
}

impl<'a> ImportRunning<'a> {
    fn take(broker: &'a Broker, mutuelle_id: &str) -> Result<Self, ServiceError> {
        let mut running = broker
            .roster_imports
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !running.insert(mutuelle_id.to_string()) {
            return Err(ServiceError::Precondition {
                reason: "ROSTER_IMPORT_RUNNING",
                message: format!(
                    "a roster import of mutuelle {mutuelle_id} is running: send this one again once it has ended"
                ),
            });
        }
        Ok(ImportRunning {
            broker,
            mutuelle_id: mutuelle_id.to_string(),
        })
    }
}

impl Drop for ImportRunning<'_> {
    fn drop(&mut self) {
        self.broker
            .roster_imports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.mutuelle_id);
    }
}

/// How far from today a snapshot that ends its missing members may be
/// dated, either way ([`check_as_of`]).
pub const AS_OF_MAX_DAYS: i64 = 92;

/// A snapshot that ends the members it does not list ends them the day
/// before its date: dated years back by a slip of the keyboard (1900 for
/// 2026), it would end every missing member's cover over dates already
/// paid. Its date is at most [`AS_OF_MAX_DAYS`] from today, either way (a
/// file of the month's first day imported late, next month's imported
/// early).
fn check_as_of(as_of: Date, today: Date) -> Result<(), ServiceError> {
    let bound = time::Duration::days(AS_OF_MAX_DAYS);
    if as_of < today.saturating_sub(bound) || as_of > today.saturating_add(bound) {
        return Err(ServiceError::invalid(
            "header.as_of",
            format!(
                "{} is more than {AS_OF_MAX_DAYS} days from today ({}): a snapshot ends its missing members the day before its date; check the date",
                passerelle_domain::date::format(as_of),
                passerelle_domain::date::format(today)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(mutuelle_id: &str) -> RosterSnapshot {
        RosterSnapshot {
            mutuelle_id: mutuelle_id.into(),
            members: vec![],
            as_of: None,
            keep: vec![],
            end_missing: false,
            dry_run: true,
        }
    }

    /// A mutuelle's second import while its first runs is refused at once,
    /// holding nothing; another mutuelle's goes on; once the first ends,
    /// the next is taken.
    #[tokio::test]
    async fn one_roster_import_at_a_time_per_mutuelle() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let running = b.roster_import_place("MUT-X").unwrap();
        let err = b.roster_import_place("MUT-X").err().expect("refused");
        assert!(
            matches!(
                err,
                ServiceError::Precondition {
                    reason: "ROSTER_IMPORT_RUNNING",
                    ..
                }
            ),
            "{err:?}"
        );
        let other = b.roster_import_place("MUT-Y").unwrap();
        b.import_roster(&other, snapshot("MUT-Y")).await.unwrap();
        // A place is its mutuelle's only.
        assert!(b.import_roster(&other, snapshot("MUT-X")).await.is_err());
        b.import_roster(&running, snapshot("MUT-X")).await.unwrap();
        drop(running);
        let again = b.roster_import_place("MUT-X").unwrap();
        b.import_roster(&again, snapshot("MUT-X")).await.unwrap();
    }

    /// A snapshot that ends its missing members is dated within 92 days of
    /// today (2026-03-10 on the test clock), either way: 1900 for 2026 is
    /// refused, naming the field, before anything is read or written.
    #[tokio::test]
    async fn a_snapshot_that_ends_members_is_dated_near_today() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let place = b.roster_import_place("MUT-X").unwrap();
        let dated = |as_of: &str, end_missing: bool| RosterSnapshot {
            as_of: passerelle_domain::date::parse(as_of),
            end_missing,
            ..snapshot("MUT-X")
        };
        for far in ["1900-01-01", "2025-12-07", "2026-06-11"] {
            match b.import_roster(&place, dated(far, true)).await {
                Err(ServiceError::Invalid(v)) => assert_eq!(v[0].field, "header.as_of", "{far}"),
                r => panic!("{far}: {r:?}"),
            }
        }
        for near in ["2025-12-08", "2026-03-10", "2026-06-10"] {
            b.import_roster(&place, dated(near, true)).await.unwrap();
        }
        // A snapshot that ends no one: its date changes nothing.
        b.import_roster(&place, dated("1900-01-01", false))
            .await
            .unwrap();
    }
}
