//! Products and ceiling usage.

use super::*;
use crate::store::approvals::{Approved, outcome};

#[async_trait]
impl ProductStore for PgStore {
    async fn put_products(
        &self,
        products: &[Product],
        approved: Option<&Approved>,
    ) -> Result<Vec<PutProduct>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Brokers starting together load the same products: one at a time.
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended('passerelle products', 0))",
            &[],
        )
        .await?;
        // Versions in the order of their start dates, against what is
        // stored now (under the lock above: one writer of products at a
        // time, whichever replica).
        let mut stored = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in products {
            if seen.insert((&p.mutuelle_id, &p.id)) {
                let rows = q(
                    &tx,
                    "SELECT body FROM products WHERE mutuelle_id = $1 AND product_id = $2",
                    &[&p.mutuelle_id, &p.id],
                )
                .await?;
                for r in &rows {
                    stored.push(body(r, "product body")?);
                }
            }
        }
        crate::store::check_version_order(products, &stored)?;
        let mut out = Vec::with_capacity(products.len());
        for p in products {
            out.push(put_one(&tx, p).await?);
        }
        // The generation these writes moved to: once committed, this
        // replica reads its own write at once, without a member read
        // first; the others see it at their next member read.
        let at: i64 = q1(&tx, "SELECT n FROM product_generation", &[])
            .await?
            .ok_or_else(|| StoreError::Corrupt("product_generation holds no row".into()))?
            .try_get(0)?;
        let changed = out.iter().filter(|r| **r != PutProduct::Unchanged).count();
        approvals::mark_applied(&tx, approved, &outcome::published(changed)).await?;
        tx.commit().await?;
        self.saw_products(at);
        Ok(out)
    }

    async fn list_products(&self, mutuelle_id: &str) -> Result<Vec<(Product, bool)>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            "SELECT body, used FROM products WHERE mutuelle_id = $1 ORDER BY product_id, version",
            &[&mutuelle_id],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((body(r, "product body")?, r.get::<_, bool>(1))))
            .collect()
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        d: Date,
    ) -> Result<Option<Product>, StoreError> {
        // From memory when read at the latest products' generation this
        // store has seen (or a later one): a claim's member read, just
        // before, returned the generation of that moment (`member_rows`).
        let key = (mutuelle_id.to_string(), product_id.to_string(), d);
        let seen = self
            .products_seen
            .load(std::sync::atomic::Ordering::Acquire);
        if let Some((at, p)) = self.products_on().get(&key)
            && *at >= seen
        {
            return Ok(p.clone());
        }
        let c = self.client().await?;
        let day = date::format(d);
        // The generation in the same snapshot as the product (a row even
        // when no version is in force).
        let row = q1(
            &c,
            "SELECT g.n, p.version, p.body FROM product_generation g LEFT JOIN LATERAL \
             (SELECT version, body FROM (SELECT version, body, valid_to FROM products \
             WHERE mutuelle_id = $1 AND product_id = $2 AND valid_from <= $3 \
             ORDER BY valid_from DESC, version DESC LIMIT 1) v \
             WHERE v.valid_to IS NULL OR v.valid_to >= $3) p ON TRUE",
            &[&mutuelle_id, &product_id, &day],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("product_generation holds no row".into()))?;
        let at: i64 = row.try_get(0)?;
        let product = match row.try_get::<_, Option<i64>>(1)? {
            Some(version) => Some(self.products.get_or_parse(
                mutuelle_id,
                product_id,
                version,
                row.try_get::<_, &str>(2)?,
            )?),
            None => None,
        };
        self.saw_products(at);
        let mut on = self.products_on();
        if on.len() >= PRODUCTS_ON_MAX {
            on.clear();
        }
        on.insert(key, (at, product.clone()));
        Ok(product)
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let names: Vec<String> = keys.iter().map(CeilingKey::storage_key).collect();
        if names.is_empty() {
            return Ok(Usage::default());
        }
        let c = self.client().await?;
        let rows = match usage_sql(names.len()) {
            UsageSql::Inline { sql, slots } => {
                // The last key again in the slots past the keys: `IN` takes
                // it once.
                let last = &names[names.len() - 1];
                let mut p: Vec<P<'_>> = Vec::with_capacity(1 + slots);
                p.push(&mutuelle_id);
                p.extend(names.iter().map(|n| n as P<'_>));
                p.extend(std::iter::repeat_n(last as P<'_>, slots - names.len()));
                q(&c, sql, &p).await?
            }
            UsageSql::Any(sql) => q(&c, sql, &[&mutuelle_id, &names]).await?,
        };
        let mut usage = Usage::default();
        for r in rows {
            let name: String = r.get(0);
            let (amount, count): (i64, i64) = (r.get(1), r.get(2));
            let (held_amount, held_count): (i64, i64) = (r.get(3), r.get(4));
            if (amount != 0 || count != 0)
                && let Some(i) = names.iter().position(|n| *n == name)
            {
                usage.0.insert(
                    keys[i].clone(),
                    Used {
                        amount,
                        count: count as u32,
                        held_amount,
                        held_count: held_count as u32,
                    },
                );
            }
        }
        Ok(usage)
    }
}

/// The most ceiling keys [`usage_sql`] names one by one. An eligibility
/// check asks for every ceiling of the member's product: a product that
/// limits all nine categories by amount and by count asks for 18 keys, 20
/// with the beneficiary's and the household's yearly ceilings, and each
/// act limit adds one. A claim asks for those of its lines. Past this
/// bound, which no known product reaches, the read is by `= ANY` (whose
/// generic plan assumes ten keys; how PostgreSQL plans it then was not
/// measured).
const USAGE_INLINE_KEYS: usize = 1024;

/// How [`usage_sql`] reads `n` keys.
enum UsageSql {
    /// `IN` with `slots` placeholders after the mutuelle's, `slots` being
    /// `n` rounded up to a power of two.
    Inline { sql: &'static str, slots: usize },
    /// `= ANY($2)`, past [`USAGE_INLINE_KEYS`].
    Any(&'static str),
}

/// The ceiling read for `n` keys, `n` at least 1. PostgreSQL builds a
/// prepared statement's first five plans from their parameters' values,
/// then keeps its generic plan only if that one's estimated cost is below
/// the custom plans' average, which counts their planning. With
/// `ceiling_key = ANY($2)` it never was on a seeded store (a generic plan
/// assumes an array of ten elements), so every rules claim and eligibility
/// check planned this read again: 49 µs of planning for a 23 µs read
/// (pg_stat_statements with `track_planning`, docs/PERFORMANCE.md,
/// fifteenth part). With its keys counted (`IN ($2, $3, …)`), the generic
/// plan's estimate is about a custom plan's for a mutuelle the statistics
/// count, and with the planning charge it is kept (for a mutuelle they
/// count as absent, a custom plan looked cheaper every time: see below).
/// Rounding the count up to a power of two, the last key repeated, makes
/// eleven statement texts (each prepared once per connection) serve every
/// count up to [`USAGE_INLINE_KEYS`].
///
/// The mutuelle is compared through a subquery, `(SELECT $1::TEXT)`,
/// whose value no plan sees: a custom plan then estimates what the
/// generic plan does, for every mutuelle, and the generic plan is kept.
/// With `mutuelle_id = $1`, a mutuelle the statistics do not hold (one
/// joined since the table was last analysed, while the table's other
/// mutuelles all are among its most common values) looked cheaper to plan
/// each time (one index condition, almost no rows expected), and was: on
/// 20,000 rows over 50 mutuelles, 246,309 plans for 246,305 calls (pgbench,
/// docs/PERFORMANCE.md, sixteenth part). The index is used either way
/// (both columns of the primary key in its condition).
fn usage_sql(n: usize) -> UsageSql {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let select = "SELECT ceiling_key, used_amount + held_amount, used_count + held_count, \
                      held_amount, held_count FROM ceiling_usage \
                      WHERE mutuelle_id = (SELECT $1::TEXT) AND ceiling_key";
        let mut all: Vec<String> = (0..=USAGE_INLINE_KEYS.trailing_zeros())
            .map(|power| {
                let slots: Vec<String> = (2..(1usize << power) + 2)
                    .map(|i| format!("${i}"))
                    .collect();
                format!("{select} IN ({})", slots.join(", "))
            })
            .collect();
        all.push(format!("{select} = ANY($2)"));
        all
    });
    if n > USAGE_INLINE_KEYS {
        return UsageSql::Any(&all[all.len() - 1]);
    }
    let slots = n.max(1).next_power_of_two();
    UsageSql::Inline {
        sql: &all[slots.trailing_zeros() as usize],
        slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(n: usize) -> (&'static str, usize) {
        match usage_sql(n) {
            UsageSql::Inline { sql, slots } => (sql, slots),
            UsageSql::Any(sql) => panic!("{n} keys read by {sql}"),
        }
    }

    #[test]
    fn each_key_has_a_placeholder_and_counts_round_up_to_a_power_of_two() {
        let (sql, slots) = inline(1);
        assert_eq!(slots, 1);
        assert!(
            sql.ends_with("mutuelle_id = (SELECT $1::TEXT) AND ceiling_key IN ($2)"),
            "{sql}"
        );
        let (sql, slots) = inline(3);
        assert_eq!(slots, 4);
        assert!(sql.ends_with("ceiling_key IN ($2, $3, $4, $5)"), "{sql}");
        assert_eq!(inline(4), (sql, 4));
        let (sql, slots) = inline(20);
        assert_eq!(slots, 32);
        assert!(sql.ends_with(", $33)"), "{sql}");
        let (sql, slots) = inline(USAGE_INLINE_KEYS);
        assert_eq!(slots, USAGE_INLINE_KEYS);
        assert!(
            sql.ends_with(&format!(", ${})", USAGE_INLINE_KEYS + 1)),
            "{sql}"
        );
        assert!(matches!(
            usage_sql(USAGE_INLINE_KEYS + 1),
            UsageSql::Any(sql) if sql.ends_with("ceiling_key = ANY($2)")
        ));
    }
}
