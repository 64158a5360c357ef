//! The embedded SQLite store, the default: nothing else to install.
//!
//! WAL journal with `synchronous=FULL`, so that an acknowledged claim survives
//! a power cut. One connection serves every call on a blocking thread; SQLite
//! serialises writers anyway, and every write is an IMMEDIATE transaction so
//! that a read-then-write never upgrades a lock half-way.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use passerelle_domain::{
    CeilingKey, Claim, ClaimState, Date, LineShare, Member, Product, ProductRef, Reason,
    ReasonCode, Usage, Used, date,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    AuditEntry, Begin, ClaimRecord, Direction, NewClaim, Outcome, PutProduct, Store, StoreError,
    Transition,
};

/// Schema migrations, applied in order; the schema version is their count.
/// Never edit a migration that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: claims, lines, ceilings, roster, products, audit.
    r#"
CREATE TABLE claims (
    id                INTEGER PRIMARY KEY,
    scheme_id         TEXT NOT NULL,
    claim_id          TEXT NOT NULL,
    request_hash      TEXT NOT NULL,
    body              TEXT NOT NULL,
    provider_id       TEXT NOT NULL,
    invoice_number    TEXT NOT NULL,
    mutuelle_id       TEXT NOT NULL,
    member_number     TEXT NOT NULL,
    state             TEXT NOT NULL,
    adjudication_key  TEXT NOT NULL,
    cancel_key        TEXT,
    cancel_reason     TEXT NOT NULL DEFAULT '',
    product_id        TEXT,
    product_version   INTEGER,
    product_name      TEXT,
    partner_reference TEXT NOT NULL DEFAULT '',
    rejection_code    TEXT,
    rejection_message TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms   INTEGER,
    last_error        TEXT NOT NULL DEFAULT '',
    change_seq        INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL,
    UNIQUE (scheme_id, claim_id)
);
CREATE UNIQUE INDEX claims_change_seq ON claims (change_seq);
CREATE INDEX claims_scheme_change ON claims (scheme_id, change_seq);
CREATE INDEX claims_invoice ON claims (scheme_id, provider_id, invoice_number);
CREATE INDEX claims_due ON claims (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;

-- The accounting of every coordinated line: S + M + P = B.
CREATE TABLE claim_lines (
    claim_pk        INTEGER NOT NULL REFERENCES claims (id),
    sequence        INTEGER NOT NULL,
    act_code        TEXT NOT NULL,
    care_category   TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    billed          INTEGER NOT NULL,
    tariff_base     INTEGER NOT NULL,
    scheme_share    INTEGER NOT NULL,
    mutuelle_share  INTEGER NOT NULL CHECK (mutuelle_share >= 0),
    patient_share   INTEGER NOT NULL CHECK (patient_share >= 0),
    reasons         TEXT NOT NULL,
    PRIMARY KEY (claim_pk, sequence),
    CHECK (scheme_share + mutuelle_share + patient_share = billed)
);

CREATE TABLE ceiling_usage (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    used_amount  INTEGER NOT NULL CHECK (used_amount >= 0),
    used_count   INTEGER NOT NULL CHECK (used_count >= 0),
    PRIMARY KEY (mutuelle_id, ceiling_key)
);

-- What each claim consumed, so that a cancel restores exactly that.
CREATE TABLE claim_consumption (
    claim_pk     INTEGER NOT NULL REFERENCES claims (id),
    ceiling_key  TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (claim_pk, ceiling_key)
);

CREATE TABLE members (
    mutuelle_id     TEXT NOT NULL,
    member_number   TEXT NOT NULL,
    scheme_id       TEXT NOT NULL,
    beneficiary_id  TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (mutuelle_id, member_number)
);
CREATE INDEX members_beneficiary ON members (scheme_id, beneficiary_id);

CREATE TABLE products (
    mutuelle_id  TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    valid_to     TEXT,
    body         TEXT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mutuelle_id, product_id, version)
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at_ms         INTEGER NOT NULL,
    direction     TEXT NOT NULL,
    party         TEXT NOT NULL,
    method        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(backend)?
    }
}

/// Applies pending migrations in one transaction; returns the version.
fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(backend(format!(
            "database schema version {found} is newer than this binary's {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(SCHEMA_VERSION)
}

const CLAIM_COLS: &str = "id, body, request_hash, state, mutuelle_id, member_number, \
    adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, \
    partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, \
    last_error, change_seq, created_ms, updated_ms";

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serializable")
}

fn code_str(c: ReasonCode) -> String {
    json(&c).trim_matches('"').to_string()
}

fn code_parse(s: &str) -> ReasonCode {
    serde_json::from_str(&format!("\"{s}\"")).unwrap_or(ReasonCode::PartnerRule)
}

/// Reads a claim row (without its lines).
fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, ClaimRecord)> {
    let pk: i64 = r.get(0)?;
    let body: String = r.get(1)?;
    let claim: Claim = serde_json::from_str(&body).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let state: String = r.get(3)?;
    let product_id: Option<String> = r.get(9)?;
    let rejection_code: Option<String> = r.get(13)?;
    Ok((
        pk,
        ClaimRecord {
            claim,
            request_hash: r.get(2)?,
            state: ClaimState::parse(&state).unwrap_or(ClaimState::Received),
            mutuelle_id: r.get(4)?,
            member_number: r.get(5)?,
            adjudication_key: r.get(6)?,
            cancel_key: r.get(7)?,
            cancel_reason: r.get(8)?,
            shares: None,
            product: product_id.map(|id| ProductRef {
                id,
                version: r.get::<_, Option<u32>>(10).ok().flatten().unwrap_or(0),
                name: r
                    .get::<_, Option<String>>(11)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            }),
            partner_reference: r.get(12)?,
            rejection: rejection_code.map(|c| Reason {
                code: code_parse(&c),
                message: r
                    .get::<_, Option<String>>(14)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            }),
            attempts: r.get(15)?,
            next_attempt_ms: r.get(16)?,
            last_error: r.get(17)?,
            change_seq: r.get::<_, i64>(18)? as u64,
            created_ms: r.get(19)?,
            updated_ms: r.get(20)?,
        },
    ))
}

fn load_lines(c: &Connection, pk: i64) -> Result<Option<Vec<LineShare>>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT sequence, mutuelle_share, reasons FROM claim_lines WHERE claim_pk = ?1 ORDER BY sequence",
    )?;
    let rows = st
        .query_map([pk], |r| {
            let reasons: String = r.get(2)?;
            Ok(LineShare {
                sequence: r.get(0)?,
                mutuelle_share: r.get(1)?,
                reasons: serde_json::from_str(&reasons).unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!rows.is_empty()).then_some(rows))
}

fn load_by_key(
    c: &Connection,
    scheme_id: &str,
    claim_id: &str,
) -> Result<Option<(i64, ClaimRecord)>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {CLAIM_COLS} FROM claims WHERE scheme_id = ?1 AND claim_id = ?2"
    ))?;
    let Some((pk, mut rec)) = st
        .query_row(params![scheme_id, claim_id], row_to_record)
        .optional()?
    else {
        return Ok(None);
    };
    rec.shares = load_lines(c, pk)?;
    Ok(Some((pk, rec)))
}

fn load_existing(
    c: &Connection,
    scheme_id: &str,
    claim_id: &str,
) -> Result<(i64, ClaimRecord), StoreError> {
    load_by_key(c, scheme_id, claim_id)?
        .ok_or_else(|| StoreError::NotFound(format!("claim {scheme_id}/{claim_id}")))
}

fn next_seq(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "SELECT COALESCE(MAX(change_seq), 0) + 1 FROM claims",
        [],
        |r| r.get(0),
    )?)
}

fn write_lines(
    tx: &Transaction<'_>,
    pk: i64,
    claim: &Claim,
    shares: &[LineShare],
) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, \
         tariff_base, scheme_share, mutuelle_share, patient_share, reasons) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (line, share) in claim.lines.iter().zip(shares) {
        st.execute(params![
            pk,
            share.sequence,
            line.act_code,
            line.category.as_str(),
            line.quantity,
            line.billed,
            line.tariff_base,
            line.scheme_share,
            share.mutuelle_share,
            line.billed - line.scheme_share - share.mutuelle_share,
            json(&share.reasons),
        ])?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cl = &new.claim;
            if let Some((_, rec)) = load_by_key(&tx, &cl.scheme_id, &cl.claim_id)? {
                return Ok(if rec.request_hash == new.request_hash {
                    Begin::Existing(rec)
                } else {
                    Begin::Modified(rec)
                });
            }
            let dup: Option<String> = tx
                .query_row(
                    "SELECT claim_id FROM claims WHERE scheme_id = ?1 AND provider_id = ?2 \
                     AND invoice_number = ?3 \
                     AND state IN ('received', 'pending_partner', 'coordinated', 'cancel_pending') \
                     LIMIT 1",
                    params![cl.scheme_id, cl.provider_id, cl.invoice_number],
                    |r| r.get(0),
                )
                .optional()?;
            let seq = next_seq(&tx)?;
            let (state, next, rej_code, rej_msg) = match &dup {
                None => (ClaimState::Received, Some(new.lease_until_ms), None, None),
                Some(other) => (
                    ClaimState::Rejected,
                    None,
                    Some(code_str(ReasonCode::DuplicateInvoice)),
                    Some(format!(
                        "invoice {} of provider {} is already on claim {other}",
                        cl.invoice_number, cl.provider_id
                    )),
                ),
            };
            tx.execute(
                "INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, \
                 invoice_number, mutuelle_id, member_number, state, adjudication_key, \
                 rejection_code, rejection_message, next_attempt_ms, change_seq, created_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
                params![
                    cl.scheme_id,
                    cl.claim_id,
                    new.request_hash,
                    json(cl),
                    cl.provider_id,
                    cl.invoice_number,
                    new.mutuelle_id,
                    new.member_number,
                    state.as_str(),
                    new.adjudication_key,
                    rej_code,
                    rej_msg,
                    next,
                    seq,
                    new.now_ms,
                ],
            )?;
            let (_, rec) = load_existing(&tx, &cl.scheme_id, &cl.claim_id)?;
            tx.commit()?;
            Ok(if dup.is_some() {
                Begin::DuplicateInvoice(rec)
            } else {
                Begin::Created(rec)
            })
        })
        .await
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let (s, c) = (scheme_id.to_string(), claim_id.to_string());
        self.with(move |conn| Ok(load_by_key(conn, &s, &c)?.map(|(_, r)| r)))
            .await
    }

    async fn complete_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if !rec.state.awaiting_partner() {
                return Ok(Transition::Stale(rec));
            }
            let seq = next_seq(&tx)?;
            match outcome {
                Outcome::Coordinated {
                    shares,
                    product,
                    partner_reference,
                    consumption,
                } => {
                    for u in consumption.iter().filter(|u| u.amount != 0 || u.count != 0) {
                        let key = u.key.storage_key();
                        tx.execute(
                            "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
                             VALUES (?1, ?2, 0, 0) ON CONFLICT DO NOTHING",
                            params![rec.mutuelle_id, key],
                        )?;
                        let n = tx.execute(
                            "UPDATE ceiling_usage SET used_amount = used_amount + ?3, used_count = used_count + ?4 \
                             WHERE mutuelle_id = ?1 AND ceiling_key = ?2 \
                             AND (?5 IS NULL OR used_amount + ?3 <= ?5) \
                             AND (?6 IS NULL OR used_count + ?4 <= ?6)",
                            params![rec.mutuelle_id, key, u.amount, u.count, u.limit_amount, u.limit_count],
                        )?;
                        if n == 0 {
                            // Dropping the transaction rolls everything back.
                            return Err(StoreError::CeilingConflict(key));
                        }
                        tx.execute(
                            "INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (?1, ?2, ?3, ?4)",
                            params![pk, key, u.amount, u.count],
                        )?;
                    }
                    write_lines(&tx, pk, &rec.claim, &shares)?;
                    if let Some(p) = &product {
                        tx.execute(
                            "UPDATE products SET used = 1 WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3",
                            params![rec.mutuelle_id, p.id, p.version],
                        )?;
                    }
                    tx.execute(
                        "UPDATE claims SET state = 'coordinated', product_id = ?2, product_version = ?3, \
                         product_name = ?4, partner_reference = ?5, next_attempt_ms = NULL, last_error = '', \
                         change_seq = ?6, updated_ms = ?7 WHERE id = ?1",
                        params![
                            pk,
                            product.as_ref().map(|p| p.id.clone()),
                            product.as_ref().map(|p| p.version),
                            product.as_ref().map(|p| p.name.clone()),
                            partner_reference,
                            seq,
                            now_ms
                        ],
                    )?;
                }
                Outcome::Rejected(reason) => {
                    tx.execute(
                        "UPDATE claims SET state = 'rejected', rejection_code = ?2, rejection_message = ?3, \
                         next_attempt_ms = NULL, change_seq = ?4, updated_ms = ?5 WHERE id = ?1",
                        params![pk, code_str(reason.code), reason.message, seq, now_ms],
                    )?;
                }
            }
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid, err) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            last_error.to_string(),
        );
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            let new_state = match rec.state {
                ClaimState::Received | ClaimState::PendingPartner => ClaimState::PendingPartner,
                ClaimState::CancelPending => ClaimState::CancelPending,
                _ => return Ok(Transition::Stale(rec)),
            };
            let seq = if new_state != rec.state {
                next_seq(&tx)?
            } else {
                rec.change_seq as i64
            };
            tx.execute(
                "UPDATE claims SET state = ?2, next_attempt_ms = ?3, last_error = ?4, change_seq = ?5, \
                 updated_ms = ?6 WHERE id = ?1",
                params![pk, new_state.as_str(), next_attempt_ms, err, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due: Vec<(i64, i64, String, String)> = {
                let mut st = tx.prepare_cached(
                    "SELECT id, next_attempt_ms, scheme_id, claim_id FROM claims \
                     WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= ?1 \
                     AND state IN ('received', 'pending_partner', 'cancel_pending') \
                     ORDER BY next_attempt_ms LIMIT ?2",
                )?;
                st.query_map(params![now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(due.len());
            for (pk, old, s, cid) in due {
                let n = tx.execute(
                    "UPDATE claims SET next_attempt_ms = ?2, attempts = attempts + 1 \
                     WHERE id = ?1 AND next_attempt_ms = ?3",
                    params![pk, now_ms + lease_ms, old],
                )?;
                if n == 1 {
                    out.push(load_existing(&tx, &s, &cid)?.1);
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn begin_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        cancel_key: &str,
        reason: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid, key, why) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            cancel_key.to_string(),
            reason.to_string(),
        );
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if matches!(rec.state, ClaimState::CancelPending | ClaimState::Cancelled) {
                return Ok(Transition::Stale(rec));
            }
            let seq = next_seq(&tx)?;
            tx.execute(
                "UPDATE claims SET state = 'cancel_pending', cancel_key = ?2, cancel_reason = ?3, \
                 next_attempt_ms = ?4, attempts = 0, change_seq = ?5, updated_ms = ?6 WHERE id = ?1",
                params![pk, key, why, lease_until_ms, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if rec.state != ClaimState::CancelPending {
                return Ok(Transition::Stale(rec));
            }
            tx.execute(
                "UPDATE ceiling_usage SET \
                   used_amount = used_amount - (SELECT amount FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key), \
                   used_count = used_count - (SELECT count FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key) \
                 WHERE mutuelle_id = ?2 AND ceiling_key IN (SELECT ceiling_key FROM claim_consumption WHERE claim_pk = ?1)",
                params![pk, rec.mutuelle_id],
            )?;
            tx.execute("DELETE FROM claim_consumption WHERE claim_pk = ?1", [pk])?;
            let seq = next_seq(&tx)?;
            tx.execute(
                "UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = '', \
                 change_seq = ?2, updated_ms = ?3 WHERE id = ?1",
                params![pk, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let s = scheme_id.to_string();
        self.with(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CLAIM_COLS} FROM claims WHERE scheme_id = ?1 AND change_seq > ?2 \
                 ORDER BY change_seq LIMIT ?3"
            ))?;
            let rows = st
                .query_map(params![s, after_seq as i64, limit], row_to_record)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(pk, mut rec)| {
                    rec.shares = load_lines(c, pk)?;
                    Ok(rec)
                })
                .collect()
        })
        .await
    }

    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
        let members = members.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO members (mutuelle_id, member_number, scheme_id, beneficiary_id, body, updated_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (mutuelle_id, member_number) DO UPDATE SET \
                     scheme_id = excluded.scheme_id, beneficiary_id = excluded.beneficiary_id, \
                     body = excluded.body, updated_ms = excluded.updated_ms",
                )?;
                for m in &members {
                    st.execute(params![m.mutuelle_id, m.member_number, m.scheme_id, m.beneficiary_id, json(m), now_ms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError> {
        let (m, n) = (mutuelle_id.to_string(), member_number.to_string());
        self.with(move |c| {
            let body: Option<String> = c
                .prepare_cached(
                    "SELECT body FROM members WHERE mutuelle_id = ?1 AND member_number = ?2",
                )?
                .query_row(params![m, n], |r| r.get(0))
                .optional()?;
            body.map(|b| serde_json::from_str(&b).map_err(backend))
                .transpose()
        })
        .await
    }

    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError> {
        let (s, b) = (scheme_id.to_string(), beneficiary_id.to_string());
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT body FROM members WHERE scheme_id = ?1 AND beneficiary_id = ?2 ORDER BY mutuelle_id, member_number",
            )?;
            let bodies = st.query_map(params![s, b], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            bodies.iter().map(|b| serde_json::from_str(b).map_err(backend)).collect()
        })
        .await
    }

    async fn put_product(&self, product: &Product) -> Result<PutProduct, StoreError> {
        let p = product.clone();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let body = json(&p);
            let existing: Option<(String, bool)> = tx
                .query_row(
                    "SELECT body, used FROM products WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3",
                    params![p.mutuelle_id, p.id, p.version],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let result = match existing {
                Some((b, _)) if b == body => PutProduct::Unchanged,
                Some((_, true)) => {
                    return Err(StoreError::ProductInUse(format!("{}/{} version {}", p.mutuelle_id, p.id, p.version)));
                }
                Some((_, false)) => {
                    tx.execute(
                        "UPDATE products SET valid_from = ?4, valid_to = ?5, body = ?6 \
                         WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3",
                        params![p.mutuelle_id, p.id, p.version, date::format(p.valid_from), p.valid_to.map(date::format), body],
                    )?;
                    PutProduct::Replaced
                }
                None => {
                    tx.execute(
                        "INSERT INTO products (mutuelle_id, product_id, version, valid_from, valid_to, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![p.mutuelle_id, p.id, p.version, date::format(p.valid_from), p.valid_to.map(date::format), body],
                    )?;
                    PutProduct::Inserted
                }
            };
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        d: Date,
    ) -> Result<Option<Product>, StoreError> {
        let (m, p, day) = (
            mutuelle_id.to_string(),
            product_id.to_string(),
            date::format(d),
        );
        self.with(move |c| {
            let body: Option<String> = c
                .prepare_cached(
                    "SELECT body FROM products WHERE mutuelle_id = ?1 AND product_id = ?2 \
                     AND valid_from <= ?3 AND (valid_to IS NULL OR valid_to >= ?3) \
                     ORDER BY valid_from DESC, version DESC LIMIT 1",
                )?
                .query_row(params![m, p, day], |r| r.get(0))
                .optional()?;
            body.map(|b| serde_json::from_str(&b).map_err(backend))
                .transpose()
        })
        .await
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let (m, keys) = (mutuelle_id.to_string(), keys.to_vec());
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT used_amount, used_count FROM ceiling_usage WHERE mutuelle_id = ?1 AND ceiling_key = ?2",
            )?;
            let mut usage = Usage::default();
            for k in keys {
                if let Some((amount, count)) = st
                    .query_row(params![m, k.storage_key()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .filter(|(a, n): &(i64, u32)| *a != 0 || *n != 0)
                {
                    usage.0.insert(k, Used { amount, count });
                }
            }
            Ok(usage)
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for e in &entries {
                    st.execute(params![e.at_ms, e.direction.as_str(), e.party, e.method, e.subject, e.request_hash, e.outcome])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, at_ms, direction, party, method, subject, request_hash, outcome FROM audit_log \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![after_id, limit], |r| {
                    let dir: String = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        AuditEntry {
                            at_ms: r.get(1)?,
                            direction: if dir == "out" { Direction::Out } else { Direction::In },
                            party: r.get(3)?,
                            method: r.get(4)?,
                            subject: r.get(5)?,
                            request_hash: r.get(6)?,
                            outcome: r.get(7)?,
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_conformance_suite!(|| async {
        std::sync::Arc::new(SqliteStore::open_in_memory().unwrap()) as std::sync::Arc<dyn Store>
    });

    #[tokio::test]
    async fn audit_log_refuses_updates() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.append_audit(&[AuditEntry {
            at_ms: 1,
            direction: Direction::In,
            party: "p".into(),
            method: "m".into(),
            subject: "s".into(),
            request_hash: "h".into(),
            outcome: "ok".into(),
        }])
        .await
        .unwrap();
        let err = s
            .with(|c| Ok(c.execute("UPDATE audit_log SET outcome = 'x'", [])?))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.upsert_members(
                &[crate::store::conformance::sample_member("M", "1", "B")],
                1,
            )
            .await
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.get_member("M", "1").await.unwrap().is_some());
        let v: i64 = s
            .with(|c| Ok(c.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
