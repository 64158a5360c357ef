//! The roster: members and the coverage rule.

use super::*;

#[async_trait]
impl RosterStore for PgStore {
    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let incoming: Vec<(usize, &Member)> = members.iter().enumerate().collect();
        check_coverage(&tx, &incoming).await?;
        upsert(&tx, members, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, StoreError> {
        let c = self.client().await?;
        let pairs = q(
            &c,
            "SELECT scheme_id, beneficiary_id FROM members \
             WHERE $1::TEXT IS NULL OR scheme_id = $1 \
             GROUP BY scheme_id, beneficiary_id HAVING COUNT(DISTINCT mutuelle_id) > 1 \
             ORDER BY scheme_id, beneficiary_id",
            &[&scheme_id],
        )
        .await?;
        let mut out = Vec::new();
        for r in pairs {
            let (s, b): (String, String) = (r.get(0), r.get(1));
            let members = beneficiary_members(&c, &s, &b).await?;
            if crate::store::gather_conflicts(&mut out, &members, limit) {
                break;
            }
        }
        Ok(out)
    }

    async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
        now_ms: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        lock_coverage(&tx, [scheme_id]).await?;
        let members = beneficiary_members(&tx, scheme_id, beneficiary_id).await?;
        let writes = crate::store::resolve_plan(&members, keep, from)?;
        upsert(&tx, &writes, now_ms).await?;
        tx.commit().await?;
        Ok(writes)
    }

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            "SELECT body, (SELECT n FROM product_generation) FROM members \
             WHERE mutuelle_id = $1 AND member_number = $2",
            &[&mutuelle_id, &member_number],
        )
        .await?;
        Ok(self.member_rows(&rows)?.0.pop())
    }

    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError> {
        let c = self.client().await?;
        let rows = beneficiary_rows(&c, scheme_id, beneficiary_id).await?;
        Ok(self.member_rows(&rows)?.0)
    }

    async fn import_roster(
        &self,
        mut import: RosterImport,
        now_ms: i64,
    ) -> Result<RosterDiff, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // One import per mutuelle at a time.
        advisory_lock(&tx, &format!("roster\u{1f}{}", import.mutuelle_id)).await?;
        // The coverage locks of every scheme the import may write, before
        // the mutuelle's members are read: the members it end-dates are
        // written from this read, so that a membership ended, or another
        // mutuelle's taking over, committed meanwhile (UpsertMembers, an
        // operator's resolution: both under these locks) is what it reads,
        // never overwritten from an older read. First the snapshot's
        // schemes, in one sorted batch; then, should the stored members
        // hold another scheme (one the file no longer names), its lock
        // too and the members read again under it.
        let mut locked: std::collections::BTreeSet<String> =
            import.members.iter().map(|m| m.scheme_id.clone()).collect();
        lock_coverage(&tx, locked.iter().map(String::as_str)).await?;
        let existing = loop {
            let rows = q(
                &tx,
                "SELECT body FROM members WHERE mutuelle_id = $1",
                &[&import.mutuelle_id],
            )
            .await?;
            let existing: Vec<Member> = rows
                .iter()
                .map(|r| body(r, "member body"))
                .collect::<Result<_, _>>()?;
            let unlocked: Vec<String> = existing
                .iter()
                .map(|m| m.scheme_id.as_str())
                .filter(|s| !locked.contains(*s))
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if unlocked.is_empty() {
                break existing;
            }
            // Out of the sorted order: a deadlock with another writer
            // (another import doing the same) is PostgreSQL's to break,
            // one of the two refused UNAVAILABLE and sent again.
            lock_coverage(&tx, unlocked.iter().map(String::as_str)).await?;
            locked.extend(unlocked);
        };
        let incoming = std::mem::take(&mut import.members);
        let (diff, writes, checked) =
            crate::store::roster_diff_checked(&existing, incoming, &import)?;
        let checked: Vec<(usize, &Member)> = checked.iter().map(|(i, m)| (*i, m)).collect();
        check_coverage(&tx, &checked).await?;
        if !import.dry_run {
            upsert(&tx, &writes, now_ms).await?;
            tx.commit().await?;
        }
        Ok(diff)
    }
}
