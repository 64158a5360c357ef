//! The roster's rules, pure, that every backend applies inside its write
//! transactions: the coverage rule (one mutuelle per scheme beneficiary and
//! date), how an operator resolves a conflict, and what a roster snapshot
//! changes.

use passerelle_domain::validate::{FieldViolation, MAX_MEMBERS_PER_BENEFICIARY};
use passerelle_domain::{Date, Member};

use super::{RosterDiff, RosterImport, StoreError};

/// A product period of an incoming member that overlaps a membership of
/// another mutuelle for the same scheme beneficiary. It names the dates of
/// the overlap and nothing else of the other mutuelle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageOverlap {
    /// Index of the member in the request (UpsertMembers' `members`, or the
    /// order of ImportRoster's members).
    pub member: usize,
    /// Index of the product period in that member.
    pub period: usize,
    /// First day both cover.
    pub from: Date,
    /// Last day both cover; `None`: both run on.
    pub to: Option<Date>,
}

/// The intersection of two inclusive date ranges (`None` end: open).
fn intersect(a: (Date, Option<Date>), b: (Date, Option<Date>)) -> Option<(Date, Option<Date>)> {
    let from = a.0.max(b.0);
    let to = match (a.1, b.1) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(x), Some(y)) => Some(x.min(y)),
    };
    to.is_none_or(|t| from <= t).then_some((from, to))
}

/// What both backends check of members about to be written, inside the
/// transaction that writes them, against `others` (every stored member of
/// the same scheme beneficiaries, whatever their mutuelle): first that no
/// mutuelle would hold more than [`MAX_MEMBERS_PER_BENEFICIARY`] members of
/// one scheme beneficiary ([`StoreError::Invalid`], each such incoming
/// member named at `members[i].beneficiary_id`), then the coverage rule
/// ([`coverage_overlaps`], [`StoreError::CoverageOverlap`]). The first
/// bounds the second: a placeholder id shared by thousands of members
/// would have each compared with every other mutuelle's.
pub fn coverage_rule(incoming: &[(usize, &Member)], others: &[Member]) -> Result<(), StoreError> {
    let crowded = crowded_beneficiaries(incoming, others);
    if !crowded.is_empty() {
        return Err(StoreError::Invalid(crowded));
    }
    let overlaps = coverage_overlaps(incoming, others);
    if overlaps.is_empty() {
        Ok(())
    } else {
        Err(StoreError::CoverageOverlap(overlaps))
    }
}

/// The incoming members that join a scheme beneficiary's members of their
/// mutuelle (not stored under it already) when these would then be more
/// than [`MAX_MEMBERS_PER_BENEFICIARY`], stored members they replace not
/// counted. A member already among them may be rewritten (its dues, its
/// products) whatever their number, and one moved out always passes: data
/// stored before the bound can be mended, never grown.
fn crowded_beneficiaries(incoming: &[(usize, &Member)], others: &[Member]) -> Vec<FieldViolation> {
    use std::collections::{HashMap, HashSet};
    type Group<'a> = (&'a str, &'a str, &'a str);
    fn group(m: &Member) -> Group<'_> {
        (&m.mutuelle_id, &m.scheme_id, &m.beneficiary_id)
    }
    let replaced: HashSet<(&str, &str)> = incoming
        .iter()
        .map(|(_, m)| (m.mutuelle_id.as_str(), m.member_number.as_str()))
        .collect();
    let mut count: HashMap<Group<'_>, usize> = HashMap::new();
    let stored = others
        .iter()
        .filter(|o| !replaced.contains(&(o.mutuelle_id.as_str(), o.member_number.as_str())));
    for m in stored.chain(incoming.iter().map(|(_, m)| *m)) {
        *count.entry(group(m)).or_default() += 1;
    }
    // Stored under the group already (by its member number): not joining.
    let already: HashSet<(Group<'_>, &str)> = others
        .iter()
        .map(|o| (group(o), o.member_number.as_str()))
        .collect();
    let joins = |m: &Member| !already.contains(&(group(m), m.member_number.as_str()));
    incoming
        .iter()
        .filter(|(_, m)| count[&group(m)] > MAX_MEMBERS_PER_BENEFICIARY && joins(m))
        .map(|(i, m)| {
            FieldViolation::new(
                format!("members[{i}].beneficiary_id"),
                format!(
                    "shared by {} members of {}, more than {MAX_MEMBERS_PER_BENEFICIARY}: a scheme beneficiary id names one person (write the scheme's id, not a placeholder)",
                    count[&group(m)],
                    m.mutuelle_id
                ),
            )
        })
        .collect()
}

/// The coverage rule: on a given date, one scheme beneficiary is covered by
/// at most one mutuelle. Checks `incoming` (members about to be written,
/// with their index in the request) against `others`: every stored member
/// of the same scheme beneficiaries, whatever their mutuelle. Stored records
/// that an incoming member replaces (same mutuelle and member number) do not
/// count; incoming members are checked against each other too. Members of
/// the same mutuelle never conflict here (a mutuelle may renumber a member).
///
/// Both backends call this inside the transaction that writes, after taking
/// the roster lock of every scheme involved, so that two mutuelles racing
/// for one beneficiary cannot both pass.
pub fn coverage_overlaps(incoming: &[(usize, &Member)], others: &[Member]) -> Vec<CoverageOverlap> {
    use std::collections::{HashMap, HashSet};
    let replaced: HashSet<(&str, &str)> = incoming
        .iter()
        .map(|(_, m)| (m.mutuelle_id.as_str(), m.member_number.as_str()))
        .collect();
    // Members by scheme beneficiary: each incoming member is compared with
    // its own beneficiary's records only (an import of 500,000 members is
    // linear, not quadratic).
    type Key<'a> = (&'a str, &'a str);
    let mut by_beneficiary: HashMap<Key<'_>, HashMap<&str, Vec<&Member>>> = HashMap::new();
    let stored = others
        .iter()
        .filter(|o| !replaced.contains(&(o.mutuelle_id.as_str(), o.member_number.as_str())));
    for m in stored.chain(incoming.iter().map(|(_, m)| *m)) {
        by_beneficiary
            .entry((m.scheme_id.as_str(), m.beneficiary_id.as_str()))
            .or_default()
            .entry(m.mutuelle_id.as_str())
            .or_default()
            .push(m);
    }
    let mut out = Vec::new();
    for (i, m) in incoming {
        let same = &by_beneficiary[&(m.scheme_id.as_str(), m.beneficiary_id.as_str())];
        let of_others = same
            .iter()
            .filter(|(mutuelle, _)| **mutuelle != m.mutuelle_id.as_str())
            .flat_map(|(_, ms)| ms.iter());
        for o in of_others {
            for (j, p) in m.products.iter().enumerate() {
                for q in &o.products {
                    if let Some((from, to)) = intersect((p.start, p.end), (q.start, q.end)) {
                        out.push(CoverageOverlap {
                            member: *i,
                            period: j,
                            from,
                            to,
                        });
                    }
                }
            }
        }
    }
    out.sort_by_key(|o| (o.member, o.period, o.from));
    out.dedup();
    out
}

/// Two mutuelles covering one scheme beneficiary on the same dates (data
/// stored before the coverage rule, or written around it): for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageConflict {
    pub scheme_id: String,
    pub beneficiary_id: String,
    /// (mutuelle, member number) of each side, the first mutuelle id lower.
    pub first: (String, String),
    pub second: (String, String),
    pub from: Date,
    pub to: Option<Date>,
}

/// Every conflict among the members of one scheme beneficiary (any number of
/// mutuelles), each pair once.
pub fn conflicts_among(members: &[Member]) -> Vec<CoverageConflict> {
    let mut out = Vec::new();
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            if a.mutuelle_id == b.mutuelle_id
                || a.scheme_id != b.scheme_id
                || a.beneficiary_id != b.beneficiary_id
            {
                continue;
            }
            let (a, b) = if a.mutuelle_id < b.mutuelle_id {
                (a, b)
            } else {
                (b, a)
            };
            for p in &a.products {
                for q in &b.products {
                    if let Some((from, to)) = intersect((p.start, p.end), (q.start, q.end)) {
                        out.push(CoverageConflict {
                            scheme_id: a.scheme_id.clone(),
                            beneficiary_id: a.beneficiary_id.clone(),
                            first: (a.mutuelle_id.clone(), a.member_number.clone()),
                            second: (b.mutuelle_id.clone(), b.member_number.clone()),
                            from,
                            to,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Adds the conflicts among one beneficiary's members to `out`; true once
/// `limit` is reached (`out` is then cut to it). Both backends list
/// conflicts with this, one beneficiary at a time.
pub fn gather_conflicts(out: &mut Vec<CoverageConflict>, members: &[Member], limit: u32) -> bool {
    out.extend(conflicts_among(members));
    let full = out.len() >= limit as usize;
    out.truncate(limit as usize);
    full
}

/// How an operator resolves a conflict in favour of `keep`: every period of
/// another mutuelle loses the days `keep` covers. What it covered before
/// `keep`'s coverage stays (ending the day before), what it covered after
/// stays (starting the day after); a period within it is removed. Returns
/// the member records to write (only those that change). With `from`, what
/// `keep` covers is every day from `from` on (a transfer away from a
/// mutuelle that no longer runs, before `keep` declares the member).
///
/// Without `from`, `keep` must hold a membership of the beneficiary.
pub fn resolve_plan(
    members: &[Member],
    keep: &str,
    from: Option<Date>,
) -> Result<Vec<Member>, StoreError> {
    if from.is_none() && !members.iter().any(|m| m.mutuelle_id == keep) {
        return Err(StoreError::NotFound(format!(
            "membership of {keep} for this beneficiary"
        )));
    }
    let mut kept: Vec<(Date, Option<Date>)> = match from {
        Some(d) => vec![(d, None)],
        None => members
            .iter()
            .filter(|m| m.mutuelle_id == keep)
            .flat_map(|m| m.products.iter().map(|p| (p.start, p.end)))
            .collect(),
    };
    kept.sort();
    let mut writes = Vec::new();
    for m in members.iter().filter(|m| m.mutuelle_id != keep) {
        let mut changed = m.clone();
        changed.products = m
            .products
            .iter()
            .flat_map(|p| {
                // `p` minus every kept period, in date order.
                let mut pieces = vec![p.clone()];
                for k in &kept {
                    pieces = pieces.into_iter().flat_map(|q| subtract(q, *k)).collect();
                }
                pieces
            })
            .collect();
        if changed != *m {
            writes.push(changed);
        }
    }
    Ok(writes)
}

/// A product period without the days of `k`: none, one or two pieces.
fn subtract(
    p: passerelle_domain::ProductPeriod,
    k: (Date, Option<Date>),
) -> Vec<passerelle_domain::ProductPeriod> {
    if intersect((p.start, p.end), k).is_none() {
        return vec![p];
    }
    let mut out = Vec::new();
    if let Some(last) = k.0.previous_day()
        && p.start <= last
    {
        out.push(passerelle_domain::ProductPeriod {
            end: Some(last),
            ..p.clone()
        });
    }
    if let Some(first) = k.1.and_then(|e| e.next_day())
        && p.end.is_none_or(|e| first <= e)
    {
        out.push(passerelle_domain::ProductPeriod { start: first, ..p });
    }
    out
}

/// What [`roster_diff_checked`] gives: the diff, the members to write, and
/// those to check against the coverage rule with their index.
pub type CheckedDiff = (RosterDiff, Vec<Member>, Vec<(usize, Member)>);

/// [`roster_diff`], plus the members to check against the coverage rule:
/// those the snapshot adds or changes, with their index in the snapshot;
/// refused ([`StoreError::Invalid`]) when a member number differs from a
/// stored one only in letter case.
pub fn roster_diff_checked(
    existing: &[Member],
    incoming: Vec<Member>,
    import: &RosterImport,
) -> Result<CheckedDiff, StoreError> {
    // A number that differs from a stored member's only in letter case,
    // that member absent from the file: a typing slip, not a renumbering
    // (which would start the member's ceilings again: they are the member
    // number's). Refused, naming the stored number.
    let stored: std::collections::HashMap<String, &str> = existing
        .iter()
        .map(|m| (m.member_number.to_lowercase(), m.member_number.as_str()))
        .collect();
    let exact: std::collections::HashSet<&str> =
        incoming.iter().map(|m| m.member_number.as_str()).collect();
    let slips: Vec<FieldViolation> = incoming
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let other = *stored.get(&m.member_number.to_lowercase())?;
            (other != m.member_number && !exact.contains(other)).then(|| {
                FieldViolation::new(
                    format!("members[{i}].member_number"),
                    format!(
                        "differs from member {other:?} only in letter case: write it as stored (another number would start the member's ceilings again)"
                    ),
                )
            })
        })
        .collect();
    if !slips.is_empty() {
        return Err(StoreError::Invalid(slips));
    }
    let index: std::collections::HashMap<String, usize> = incoming
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_number.clone(), i))
        .collect();
    let (diff, writes) = roster_diff(existing, incoming, import);
    let changed: std::collections::HashSet<&str> = diff
        .added
        .iter()
        .chain(diff.updated.iter())
        .map(String::as_str)
        .collect();
    let checked = writes
        .iter()
        .filter(|m| changed.contains(m.member_number.as_str()))
        .filter_map(|m| index.get(&m.member_number).map(|i| (*i, m.clone())))
        .collect();
    Ok((diff, writes, checked))
}

/// Computes a roster snapshot's changes against the stored members, and the
/// member records to write. Shared by every backend so that they agree.
///
/// Absent members (unless kept) have their open product periods end the day
/// before `as_of`; a period that had not started by `as_of` is dropped.
pub fn roster_diff(
    existing: &[Member],
    incoming: Vec<Member>,
    import: &RosterImport,
) -> (RosterDiff, Vec<Member>) {
    use std::collections::{HashMap, HashSet};
    let mut diff = RosterDiff::default();
    let mut writes = Vec::new();
    let stored: HashMap<&str, &Member> = existing
        .iter()
        .map(|m| (m.member_number.as_str(), m))
        .collect();
    let present: HashSet<String> = incoming.iter().map(|m| m.member_number.clone()).collect();
    let open_on = |m: &Member| {
        m.products
            .iter()
            .any(|p| p.end.is_none_or(|e| e >= import.as_of))
    };
    diff.in_force_before = existing.iter().filter(|m| open_on(m)).count() as u32;
    for m in incoming {
        match stored.get(m.member_number.as_str()) {
            None => {
                diff.added.push(m.member_number.clone());
                writes.push(m);
            }
            Some(old) if **old == m => diff.unchanged += 1,
            Some(_) => {
                diff.updated.push(m.member_number.clone());
                writes.push(m);
            }
        }
    }
    let keep: HashSet<&str> = import.keep.iter().map(String::as_str).collect();
    let last_day = import.as_of.previous_day().unwrap_or(import.as_of);
    for old in existing {
        if present.contains(&old.member_number) || keep.contains(old.member_number.as_str()) {
            continue;
        }
        if !import.end_missing || !open_on(old) {
            diff.unchanged += 1;
            continue;
        }
        let mut m = old.clone();
        m.products.retain(|p| p.start < import.as_of);
        for p in &mut m.products {
            if p.end.is_none_or(|e| e > last_day) {
                p.end = Some(last_day);
            }
        }
        diff.end_dated.push(m.member_number.clone());
        writes.push(m);
    }
    diff.added.sort();
    diff.updated.sort();
    diff.end_dated.sort();
    (diff, writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{d, sample_member};

    #[test]
    fn resolve_ends_the_others_before_the_kept_coverage() {
        let mut keep = sample_member("MUT-A", "A-1", "TG-1");
        keep.products[0].start = d("2025-06-01");
        keep.products[0].end = Some(d("2025-12-31"));
        let mut other = sample_member("MUT-B", "B-1", "TG-1");
        // Began before the kept coverage and runs past it: the days before
        // and the days after stay, in two pieces.
        other.products[0].start = d("2025-01-01");
        other.products[0].end = Some(d("2026-03-31"));
        // Within it: removed. After it: kept as it is.
        other.products.push(passerelle_domain::ProductPeriod {
            product_id: "ESS".into(),
            start: d("2025-07-01"),
            end: Some(d("2025-08-31")),
        });
        other.products.push(passerelle_domain::ProductPeriod {
            product_id: "ESS".into(),
            start: d("2026-06-01"),
            end: None,
        });
        let writes = resolve_plan(&[keep.clone(), other.clone()], "MUT-A", None).unwrap();
        assert_eq!(writes.len(), 1);
        let spans: Vec<_> = writes[0]
            .products
            .iter()
            .map(|p| (p.start, p.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                (d("2025-01-01"), Some(d("2025-05-31"))),
                (d("2026-01-01"), Some(d("2026-03-31"))),
                (d("2026-06-01"), None),
            ]
        );
        // Nothing overlaps any more; nothing to write the second time.
        let after = [keep, writes[0].clone()];
        assert!(conflicts_among(&after).is_empty());
        assert!(resolve_plan(&after, "MUT-A", None).unwrap().is_empty());
    }

    #[test]
    fn overlaps_name_the_shared_dates_only() {
        let mut a = sample_member("MUT-A", "A-1", "TG-1");
        a.products[0].end = Some(d("2025-12-31"));
        let mut b = sample_member("MUT-B", "B-1", "TG-1");
        b.products[0].start = d("2025-11-01");
        let o = coverage_overlaps(&[(3, &b)], std::slice::from_ref(&a));
        assert_eq!(
            o,
            vec![CoverageOverlap {
                member: 3,
                period: 0,
                from: d("2025-11-01"),
                to: Some(d("2025-12-31")),
            }]
        );
        // Touching, not overlapping: a transfer on 1 January.
        b.products[0].start = d("2026-01-01");
        assert!(coverage_overlaps(&[(0, &b)], &[a]).is_empty());
    }
}
