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
