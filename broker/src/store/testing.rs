//! Test support shared by the unit and end-to-end suites: a fresh PostgreSQL
//! schema per test, from the URL in PASSERELLE_TEST_POSTGRES.
//!
//! Outside CI, a test that cannot reach PostgreSQL says so and skips; under
//! CI=true it fails instead, so that CI never passes by skipping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::PostgresConfig;
use crate::store::Store;
use crate::store::postgres::PgStore;

/// The test database URL: PASSERELLE_TEST_POSTGRES, else the local default.
pub fn postgres_url() -> String {
    std::env::var("PASSERELLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// True under CI=true.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A config for a new, empty schema (not created yet).
pub fn postgres_config() -> PostgresConfig {
    static N: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        crate::audit::now_ms() % 1_000_000
    );
    PostgresConfig {
        url: postgres_url(),
        schema: Some(schema),
        pool_size: 8,
        connect_timeout_ms: 2000,
        wait_timeout_ms: 5000,
        statement_timeout_ms: 10_000,
        tls: None,
    }
}

/// Handles an unreachable database: panics under CI, else says it skips.
pub fn unreachable(e: impl std::fmt::Display) -> Option<Arc<dyn Store>> {
    assert!(
        !in_ci(),
        "PostgreSQL is required under CI=true: {e} (PASSERELLE_TEST_POSTGRES={})",
        postgres_url()
    );
    eprintln!(
        "skipping: PostgreSQL not reachable at {}: {e}",
        postgres_url()
    );
    None
}

/// A migrated store in a fresh schema, or `None` outside CI when PostgreSQL
/// is not reachable.
pub async fn postgres_store() -> Option<Arc<dyn Store>> {
    Some(Arc::new(migrated_postgres(&postgres_config()).await?))
}

/// The store of `cfg`, migrated, or `None` outside CI when PostgreSQL is
/// not reachable; a second one on the same config is a second replica.
pub async fn migrated_postgres(cfg: &PostgresConfig) -> Option<PgStore> {
    let store = match PgStore::new(cfg, std::path::Path::new(".")) {
        Ok(s) => s,
        Err(e) => {
            unreachable(e);
            return None;
        }
    };
    match store.migrate().await {
        Ok(_) => Some(store),
        Err(e) => {
            unreachable(e);
            None
        }
    }
}
