//! Conformance of `ProductStore`.

#[allow(unused_imports)]
use super::*;

/// A version left without an end is in force until a newer one starts:
/// once the newer one ends, nothing is, and the older one never comes back
/// (it would price care at rates the mutuelle replaced).
pub async fn an_older_version_never_comes_back_after_a_newer_one_ended(store: Arc<dyn Store>) {
    let v1 = sample_product("MUT-A", 1, "2026-01-01");
    let mut v2 = sample_product("MUT-A", 2, "2026-03-01");
    v2.valid_to = Some(d("2026-06-30"));
    put(&store, &v1).await.unwrap();
    put(&store, &v2).await.unwrap();
    let on = |day: &'static str| {
        let store = store.clone();
        async move {
            store
                .product_on("MUT-A", "ESS", d(day))
                .await
                .unwrap()
                .map(|p| p.version)
        }
    };
    assert_eq!(on("2026-02-28").await, Some(1));
    assert_eq!(on("2026-03-01").await, Some(2));
    assert_eq!(on("2026-06-30").await, Some(2));
    assert_eq!(on("2026-07-01").await, None);
    let versions = [v1, v2];
    for day in ["2026-02-28", "2026-03-01", "2026-07-01"] {
        assert_eq!(
            Product::version_on(&versions, d(day)).map(|p| p.version),
            on(day).await,
            "{day}"
        );
    }
}

pub async fn products_are_versioned_and_immutable_once_used(store: Arc<dyn Store>) {
    let v1 = sample_product("MUT-A", 1, "2025-01-01");
    let v2 = sample_product("MUT-A", 2, "2026-07-01");
    assert_eq!(put(&store, &v1).await.unwrap(), PutProduct::Inserted);
    assert_eq!(put(&store, &v1).await.unwrap(), PutProduct::Unchanged);
    assert_eq!(put(&store, &v2).await.unwrap(), PutProduct::Inserted);
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-03-10"))
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-07-01"))
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(
        store
            .product_on("MUT-A", "ESS", d("2024-12-31"))
            .await
            .unwrap()
            .is_none()
    );
    // A version starting before the one below it, or after the one above
    // it, is refused whole, in the write's own transaction: two proposals
    // each in order alone are not both published.
    let v3 = sample_product("MUT-A", 3, "2026-03-01");
    let err = put(&store, &v3).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused(m) if m.starts_with(crate::store::OUT_OF_ORDER)
            && m.contains("version 2 of ESS starts on 2026-07-01")),
        "{err:?}"
    );
    assert_eq!(store.list_products("MUT-A").await.unwrap().len(), 2);
    // Unused: may be corrected in place.
    let mut v1b = v1.clone();
    v1b.name = "Essentiel (corrigé)".into();
    assert_eq!(put(&store, &v1b).await.unwrap(), PutProduct::Replaced);
    // Used by a claim: immutable.
    begin(&store, sample_claim("CNSS", "U1", "I1")).await;
    let out = Outcome::Coordinated {
        shares: shares(&[0, 0]),
        product: Some(ProductRef {
            id: "ESS".into(),
            version: 1,
            name: "Essentiel".into(),
        }),
        partner_reference: String::new(),
        consumption: vec![],
        authorization: None,
    };
    store
        .complete_stored("CNSS", "U1", out, 2_000)
        .await
        .unwrap();
    let err = put(&store, &v1).await.unwrap_err();
    assert!(matches!(err, StoreError::ProductInUse(_)), "{err:?}");
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-03-10"))
            .await
            .unwrap()
            .unwrap(),
        v1b
    );
}
