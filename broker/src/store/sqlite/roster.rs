//! The roster: members and the coverage rule.

use super::*;

#[async_trait]
impl RosterStore for SqliteStore {
    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
        let members = members.to_vec();
        self.write(Moves::Roster, move |c| {
            let tx = c.savepoint()?;
            // The writer thread runs one write at a time: the check and the
            // write below cannot interleave with another mutuelle's.
            let incoming: Vec<(usize, &Member)> = members.iter().enumerate().collect();
            check_coverage(&tx, &incoming)?;
            write_members(&tx, &members, now_ms)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, StoreError> {
        let scheme = scheme_id.map(str::to_string);
        self.scan(move |c| {
            // Beneficiaries held by more than one mutuelle, then their members.
            let mut st = c.prepare_cached(
                "SELECT scheme_id, beneficiary_id FROM members \
                 WHERE ?1 IS NULL OR scheme_id = ?1 \
                 GROUP BY scheme_id, beneficiary_id HAVING COUNT(DISTINCT mutuelle_id) > 1 \
                 ORDER BY scheme_id, beneficiary_id",
            )?;
            let pairs = st
                .query_map(params![scheme], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::new();
            for (s, b) in pairs {
                let members = beneficiary_members(c, &s, &b)?;
                if crate::store::gather_conflicts(&mut out, &members, limit) {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
        now_ms: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let (s, b, k) = (
            scheme_id.to_string(),
            beneficiary_id.to_string(),
            keep.to_string(),
        );
        self.write(Moves::Roster, move |c| {
            let tx = c.savepoint()?;
            let members = beneficiary_members(&tx, &s, &b)?;
            let writes = crate::store::resolve_plan(&members, &k, from)?;
            write_members(&tx, &writes, now_ms)?;
            tx.commit()?;
            Ok(writes)
        })
        .await
    }

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError> {
        let key = (mutuelle_id.to_string(), member_number.to_string());
        self.by_number.get_or(key, || {
            self.read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT body FROM members WHERE mutuelle_id = ?1 AND member_number = ?2",
                )?;
                let mut rows = st.query(params![mutuelle_id, member_number])?;
                match rows.next()? {
                    Some(r) => Ok(Some(from_json_ref("member body", r.get_ref(0)?)?)),
                    None => Ok(None),
                }
            })
        })
    }

    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError> {
        let key = (scheme_id.to_string(), beneficiary_id.to_string());
        self.by_beneficiary.get_or(key, || {
            self.read(|c| beneficiary_members(c, scheme_id, beneficiary_id))
        })
    }

    async fn import_roster(
        &self,
        mut import: RosterImport,
        now_ms: i64,
    ) -> Result<RosterDiff, StoreError> {
        // A dry run only reads: on a read connection, so that a large one
        // never holds up the writer (claims keep being stored meanwhile).
        if import.dry_run {
            return self.scan(move |c| Ok(import_plan(c, &mut import)?.0)).await;
        }
        self.write(Moves::Roster, move |c| {
            let tx = c.savepoint()?;
            let (diff, writes) = import_plan(&tx, &mut import)?;
            write_members(&tx, &writes, now_ms)?;
            tx.commit()?;
            Ok(diff)
        })
        .await
    }
}
