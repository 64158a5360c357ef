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
        // The generation these writes moved to: once committed, this
        // replica reads its own write at once, without a member read
        // first; the others see it at their next member read.
        let at: i64 = q1(&tx, "SELECT n FROM product_generation", &[])
            .await?
            .ok_or_else(|| StoreError::Corrupt("product_generation holds no row".into()))?
            .try_get(0)?;
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
             (SELECT version, body FROM products WHERE mutuelle_id = $1 AND product_id = $2 \
             AND valid_from <= $3 AND (valid_to IS NULL OR valid_to >= $3) \
             ORDER BY valid_from DESC, version DESC LIMIT 1) p ON TRUE",
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
