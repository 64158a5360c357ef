//! Products and ceiling usage.

use super::*;
use crate::store::approvals::{Approved, outcome};

#[async_trait]
impl ProductStore for SqliteStore {
    async fn put_products(
        &self,
        products: &[Product],
        approved: Option<&Approved>,
    ) -> Result<Vec<PutProduct>, StoreError> {
        let products = products.to_vec();
        let approved = approved.cloned();
        self.write(Moves::Products, move |c| {
            let tx = c.savepoint()?;
            // Versions in the order of their start dates, against what is
            // stored now (writes run one at a time).
            let mut stored = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for p in &products {
                if seen.insert((p.mutuelle_id.clone(), p.id.clone())) {
                    let mut st = tx.prepare_cached(
                        "SELECT body FROM products WHERE mutuelle_id = ?1 AND product_id = ?2",
                    )?;
                    let bodies = st
                        .query_map(params![p.mutuelle_id, p.id], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()?;
                    for b in bodies {
                        stored.push(core::from_json("product body", b.as_bytes())?);
                    }
                }
            }
            crate::store::check_version_order(&products, &stored)?;
            let results = products
                .iter()
                .map(|p| put_one(&tx, p))
                .collect::<Result<Vec<_>, _>>()?;
            let changed = results
                .iter()
                .filter(|r| **r != PutProduct::Unchanged)
                .count();
            approvals::mark_applied(&tx, approved.as_ref(), &outcome::published(changed))?;
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn list_products(&self, mutuelle_id: &str) -> Result<Vec<(Product, bool)>, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(
                "SELECT body, used FROM products WHERE mutuelle_id = ?1 ORDER BY product_id, version",
            )?;
            let rows = st
                .query_map([m], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(b, used)| Ok((core::from_json("product body", b.as_bytes())?, used)))
                .collect()
        })
        .await
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        d: Date,
    ) -> Result<Option<Product>, StoreError> {
        let key = (mutuelle_id.to_string(), product_id.to_string(), d);
        self.product_days.get_or(key, || {
            let day = date::format(d);
            self.read(|c| {
                let mut st = c.prepare_cached(
                    // The newest version started by then, unless it has
                    // ended (`Product::version_on`): an older one never
                    // comes back after it.
                    "SELECT version, body FROM (SELECT version, body, valid_to FROM products \
                     WHERE mutuelle_id = ?1 AND product_id = ?2 AND valid_from <= ?3 \
                     ORDER BY valid_from DESC, version DESC LIMIT 1) \
                     WHERE valid_to IS NULL OR valid_to >= ?3",
                )?;
                let mut rows = st.query(params![mutuelle_id, product_id, day])?;
                let Some(r) = rows.next()? else {
                    return Ok(None);
                };
                let body = r.get_ref(1)?.as_str().map_err(backend)?;
                self.products
                    .get_or_parse(mutuelle_id, product_id, r.get(0)?, body)
                    .map(Some)
            })
        })
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let key = (mutuelle_id.to_string(), keys.to_vec());
        self.usages.get_or(key, || {
            self.read(|c| {
            // One snapshot for every key (and one lock taken, not one per key).
            let tx = c.unchecked_transaction()?;
            let mut st = tx.prepare_cached(
                "SELECT used_amount + held_amount, used_count + held_count, held_amount, held_count \
                 FROM ceiling_usage WHERE mutuelle_id = ?1 AND ceiling_key = ?2",
            )?;
            let mut usage = Usage::default();
            for k in keys {
                if let Some(used) = st
                    .query_row(params![mutuelle_id, k.storage_key()], |r| {
                        Ok(Used { amount: r.get(0)?, count: r.get(1)?, held_amount: r.get(2)?, held_count: r.get(3)? })
                    })
                    .optional()?
                    .filter(|u| u.amount != 0 || u.count != 0)
                {
                    usage.0.insert(k.clone(), used);
                }
            }
            Ok(usage)
        })
        })
    }
}
