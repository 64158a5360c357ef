//! Products and ceiling usage.

use super::*;

#[async_trait]
impl ProductStore for PgStore {
    async fn put_products(&self, products: &[Product]) -> Result<Vec<PutProduct>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Brokers starting together load the same products: one at a time.
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended('passerelle products', 0))",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(products.len());
        for p in products {
            out.push(put_one(&tx, p).await?);
        }
        tx.commit().await?;
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
        let c = self.client().await?;
        let day = date::format(d);
        let row = q1(
            &c,
            "SELECT version, body FROM products WHERE mutuelle_id = $1 AND product_id = $2 \
             AND valid_from <= $3 AND (valid_to IS NULL OR valid_to >= $3) \
             ORDER BY valid_from DESC, version DESC LIMIT 1",
            &[&mutuelle_id, &product_id, &day],
        )
        .await?;
        row.map(|r| {
            self.products.get_or_parse(
                mutuelle_id,
                product_id,
                r.get::<_, i64>(0),
                r.get::<_, &str>(1),
            )
        })
        .transpose()
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let c = self.client().await?;
        let names: Vec<String> = keys.iter().map(CeilingKey::storage_key).collect();
        let rows = q(
            &c,
            "SELECT ceiling_key, used_amount + held_amount, used_count + held_count, held_amount, held_count FROM ceiling_usage \
             WHERE mutuelle_id = $1 AND ceiling_key = ANY($2)",
            &[&mutuelle_id, &names],
        )
        .await?;
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
