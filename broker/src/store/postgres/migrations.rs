//! The schema migrations of this backend.

/// Schema migrations, in order; the schema version is their count. Never
/// edit one that has shipped: append.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE periods (
    id                    BIGSERIAL PRIMARY KEY,
    scheme_id             TEXT NOT NULL,
    mutuelle_id           TEXT NOT NULL,
    number                BIGINT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('closed', 'settled')),
    closed_ms             BIGINT NOT NULL,
    settled_ms            BIGINT NOT NULL DEFAULT 0,
    settlement_reference  TEXT NOT NULL DEFAULT '',
    UNIQUE (scheme_id, mutuelle_id, number)
);

CREATE TABLE claims (
    id                BIGSERIAL PRIMARY KEY,
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
    product_version   BIGINT,
    product_name      TEXT,
    partner_reference TEXT NOT NULL DEFAULT '',
    rejection_code    TEXT,
    rejection_message TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms   BIGINT,
    last_error        TEXT NOT NULL DEFAULT '',
    change_seq        BIGINT NOT NULL,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL,
    date_of_care      TEXT NOT NULL,
    currency          TEXT NOT NULL,
    payee_type        TEXT NOT NULL,
    billed_total      BIGINT NOT NULL,
    scheme_total      BIGINT NOT NULL,
    mutuelle_total    BIGINT NOT NULL DEFAULT 0,
    period_id         BIGINT REFERENCES periods (id),
    UNIQUE (scheme_id, claim_id)
);
CREATE UNIQUE INDEX claims_change_seq ON claims (change_seq);
CREATE INDEX claims_scheme_change ON claims (scheme_id, change_seq);
CREATE INDEX claims_invoice ON claims (scheme_id, provider_id, invoice_number);
CREATE INDEX claims_due ON claims (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;
CREATE INDEX claims_mutuelle_state ON claims (mutuelle_id, state);
CREATE INDEX claims_settlement ON claims (scheme_id, mutuelle_id, period_id, state);

CREATE TABLE change_counter (id INT PRIMARY KEY, v BIGINT NOT NULL);
INSERT INTO change_counter VALUES (1, 0);

CREATE TABLE claim_lines (
    claim_pk        BIGINT NOT NULL REFERENCES claims (id),
    sequence        BIGINT NOT NULL,
    act_code        TEXT NOT NULL,
    care_category   TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    billed          BIGINT NOT NULL,
    tariff_base     BIGINT NOT NULL,
    scheme_share    BIGINT NOT NULL,
    mutuelle_share  BIGINT NOT NULL CHECK (mutuelle_share >= 0),
    patient_share   BIGINT NOT NULL CHECK (patient_share >= 0),
    reasons         TEXT NOT NULL,
    PRIMARY KEY (claim_pk, sequence),
    CHECK (scheme_share + mutuelle_share + patient_share = billed)
);

CREATE TABLE ceiling_usage (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    used_amount  BIGINT NOT NULL CHECK (used_amount >= 0),
    used_count   BIGINT NOT NULL CHECK (used_count >= 0),
    PRIMARY KEY (mutuelle_id, ceiling_key)
);

CREATE TABLE claim_consumption (
    claim_pk     BIGINT NOT NULL REFERENCES claims (id),
    ceiling_key  TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (claim_pk, ceiling_key)
);

CREATE TABLE members (
    mutuelle_id     TEXT NOT NULL,
    member_number   TEXT NOT NULL,
    scheme_id       TEXT NOT NULL,
    beneficiary_id  TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    PRIMARY KEY (mutuelle_id, member_number)
);
CREATE INDEX members_beneficiary ON members (scheme_id, beneficiary_id);

CREATE TABLE products (
    mutuelle_id  TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    version      BIGINT NOT NULL,
    valid_from   TEXT NOT NULL,
    valid_to     TEXT,
    body         TEXT NOT NULL,
    used         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (mutuelle_id, product_id, version)
);

CREATE TABLE recoveries (
    id           BIGSERIAL PRIMARY KEY,
    claim_pk     BIGINT NOT NULL UNIQUE REFERENCES claims (id),
    scheme_id    TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL,
    from_period  BIGINT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount > 0),
    period_id    BIGINT REFERENCES periods (id),
    created_ms   BIGINT NOT NULL
);
CREATE INDEX recoveries_open ON recoveries (scheme_id, mutuelle_id, period_id);

CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    direction     TEXT NOT NULL,
    party         TEXT NOT NULL,
    method        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit_log (subject, id);
CREATE INDEX audit_party ON audit_log (party, outcome, id);
CREATE INDEX audit_at ON audit_log (at_ms);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"#,
    // 2: indexes in the order the eligibility lookups read (no sort).
    r#"
CREATE INDEX members_beneficiary_order ON members (scheme_id, beneficiary_id, mutuelle_id, member_number);
DROP INDEX members_beneficiary;
CREATE INDEX products_validity ON products (mutuelle_id, product_id, valid_from, version);
"#,
    // 3: the claim that holds the invoice of a claim rejected as a duplicate.
    r#"
ALTER TABLE claims ADD COLUMN duplicate_of TEXT;
"#,
    // 4: change numbers from transaction ids, without a global row (see
    // changes.rs); the base keeps them above every number the counter gave.
    r#"
CREATE TABLE change_base (
    one                BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    base               BIGINT NOT NULL,
    system_identifier  BIGINT
);
INSERT INTO change_base (base, system_identifier) SELECT GREATEST(0, GREATEST(
    (SELECT COALESCE(MAX(change_seq), 0) FROM claims),
    (SELECT v FROM change_counter)) - pg_current_xact_id()::text::bigint) + 1,
    (SELECT system_identifier FROM pg_control_system());
DROP TABLE change_counter;
"#,
    // 5: at most one claim holds an invoice (core::SQL_HOLDS_INVOICE), by
    // a unique key rather than a lock: a new claim is one statement. Fewer
    // index entries per claim: the change feed's one index is unique per
    // scheme (no global one), the invoice index is the partial one, and the
    // mutuelle index holds only the claims waiting on it (core::SQL_WAITING).
    r#"
CREATE UNIQUE INDEX claims_invoice_held ON claims (scheme_id, provider_id, invoice_number)
    WHERE state IN ('received', 'pending_partner', 'coordinated', 'cancel_pending');
DROP INDEX claims_invoice;
CREATE UNIQUE INDEX claims_scheme_change_unique ON claims (scheme_id, change_seq);
DROP INDEX claims_scheme_change;
DROP INDEX claims_change_seq;
CREATE INDEX claims_waiting ON claims (mutuelle_id)
    WHERE state IN ('received', 'pending_partner', 'cancel_pending');
DROP INDEX claims_mutuelle_state;
"#,
    // 6: operators' pauses and the partners' circuit breakers (issue 17),
    // shared by every replica and kept across restarts.
    r#"
CREATE TABLE partner_controls (
    partner_id             TEXT PRIMARY KEY,
    paused_ms              BIGINT NOT NULL DEFAULT 0,
    paused_by              TEXT NOT NULL DEFAULT '',
    breaker_open_until_ms  BIGINT NOT NULL DEFAULT 0
);
"#,
    // 7: the W3C trace id of each audited call (issue 17). No rewrite (a
    // constant default), but a brief exclusive lock on the audit log: given
    // up after 10 s behind a long reader rather than holding up every audit
    // insert (run the migration again).
    r#"
SET LOCAL lock_timeout = '10s';
ALTER TABLE audit_log ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';
"#,
    // 8: the console's accounts, sessions and sign-in throttle (issue 19).
    r#"
CREATE TABLE users (
    login          TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL DEFAULT '',
    totp_step      BIGINT NOT NULL DEFAULT 0,
    disabled_ms    BIGINT NOT NULL DEFAULT 0,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    login        TEXT NOT NULL REFERENCES users (login),
    csrf_secret  TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL DEFAULT '',
    created_ms   BIGINT NOT NULL,
    seen_ms      BIGINT NOT NULL,
    address      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_login ON sessions (login);
CREATE INDEX sessions_seen ON sessions (seen_ms);
CREATE TABLE signin_throttle (
    key       TEXT PRIMARY KEY,
    failures  BIGINT NOT NULL,
    last_ms   BIGINT NOT NULL,
    next_ms   BIGINT NOT NULL
);
CREATE INDEX signin_throttle_last ON signin_throttle (last_ms);
"#,
    // 9: a roster file uploaded in the console, kept between its check and
    // its apply (one per session; issue 19).
    r#"
CREATE TABLE console_uploads (
    session_hash  TEXT PRIMARY KEY,
    file_name     TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);
"#, // 10: the mutuelle an upload was checked for: it is applied there only.
    r#"
ALTER TABLE console_uploads ADD COLUMN mutuelle_id TEXT NOT NULL DEFAULT '';
"#,
    // 11: changes that need two people: proposals and their decisions
    // (maker-checker, issue 19).
    r#"
CREATE TABLE proposals (
    id           BIGSERIAL PRIMARY KEY,
    mutuelle_id  TEXT NOT NULL,
    scheme_id    TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    proposed_by  TEXT NOT NULL,
    proposed_ms  BIGINT NOT NULL,
    state        TEXT NOT NULL,
    decided_by   TEXT NOT NULL DEFAULT '',
    decided_ms   BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX proposals_mutuelle ON proposals (mutuelle_id, state, id);
"#,
    // 12: prior authorizations and the holds they take on ceilings
    // (issue 20). The columns' constant default writes no row; their
    // checks hold for every write from here on, and are checked against
    // the rows already there after the migrations commit
    // (`DEFERRED_CHECKS`): checked here, they read every ceiling row while
    // the migrations' transaction holds the table, so that each claim's
    // outcome and each rules check waited for that read too
    // (docs/PERFORMANCE.md, twenty-ninth part).
    r#"
ALTER TABLE ceiling_usage ADD COLUMN held_amount BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN held_count BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT ceiling_usage_held_amount_check CHECK (held_amount >= 0) NOT VALID,
    ADD CONSTRAINT ceiling_usage_held_count_check CHECK (held_count >= 0) NOT VALID;
CREATE TABLE prior_authorizations (
    scheme_id         TEXT NOT NULL,
    authorization_id  TEXT NOT NULL,
    reference         TEXT NOT NULL UNIQUE,
    mutuelle_id       TEXT NOT NULL,
    member_number     TEXT NOT NULL,
    beneficiary_id    TEXT NOT NULL,
    request_hash      TEXT NOT NULL,
    state             TEXT NOT NULL,
    body              TEXT NOT NULL,
    valid_until       TEXT NOT NULL,
    expires_ms        BIGINT NOT NULL,
    extensions        BIGINT NOT NULL DEFAULT 0,
    claim_id          TEXT NOT NULL DEFAULT '',
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL,
    PRIMARY KEY (scheme_id, authorization_id)
);
CREATE INDEX prior_authorizations_due ON prior_authorizations (expires_ms) WHERE state = 'active';
CREATE INDEX prior_authorizations_mutuelle ON prior_authorizations (mutuelle_id, created_ms);
"#,
    // 13: opening balances of a mutuelle joining during a year (issue 20).
    r#"
CREATE TABLE opening_balances (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    count        BIGINT NOT NULL CHECK (count >= 0),
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (mutuelle_id, ceiling_key)
);
"#,
    // 14: active authorizations of a beneficiary, counted before a new
    // one (at most 20 in force).
    r#"
CREATE INDEX prior_authorizations_beneficiary ON prior_authorizations (scheme_id, beneficiary_id) WHERE state = 'active';
"#,
    // 15: a claim's outcome is one statement (claims.rs, `coordinate`):
    // when one of its ceilings has no room, it fails with this error,
    // naming the ceiling by its position (not its key, which holds a
    // member number), and none of its writes stays. Only a function can
    // raise an error of our own from within a statement.
    r#"
CREATE FUNCTION passerelle_refuse(ceiling INT) RETURNS BOOLEAN AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PA001',
        MESSAGE = format('ceiling %s has no room (a concurrent claim used it; passerelle computes the claim again)', ceiling);
END
$$ LANGUAGE plpgsql;
"#,
    // 16: a period closed from now on keeps its totals
    // (core::store_period_totals); its index is in CONCURRENT_INDEXES.
    r#"
ALTER TABLE periods ADD COLUMN claim_count BIGINT, ADD COLUMN billed_total BIGINT,
    ADD COLUMN scheme_total BIGINT, ADD COLUMN mutuelle_total BIGINT, ADD COLUMN recoveries_total BIGINT;
"#,
    // 17: the products' generation, moved by every change of what a
    // product says (a version added, replaced or removed), by any writer,
    // old binaries included: a statement trigger, in the writer's
    // transaction. A claim marking a version used (`used` alone) moves
    // nothing. Every member read returns it, so a replica serves a product
    // from memory only while it has seen no later generation
    // (`PgStore::product_on`). One row, written only by product changes.
    // The function keeps the migration's schema (`SET search_path FROM
    // CURRENT`): a writer whose session names another schema (an
    // operator's psql) still moves this schema's generation. One row by
    // its key; it starts from the clock (µs), so that a table made again
    // (a schema taken back and migrated) never goes below what a running
    // replica saw.
    r#"
CREATE TABLE product_generation (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    n   BIGINT NOT NULL
);
INSERT INTO product_generation (n) VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT);
CREATE FUNCTION passerelle_products_changed() RETURNS trigger AS $$
BEGIN
    UPDATE product_generation SET n = n + 1;
    RETURN NULL;
END $$ LANGUAGE plpgsql SET search_path FROM CURRENT;
CREATE TRIGGER products_changed AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF valid_from, valid_to, body
    ON products FOR EACH STATEMENT EXECUTE FUNCTION passerelle_products_changed();
"#,
    // 18: the audit log by month (issue 16): retention drops a month's
    // partition instead of deleting its rows one by one (audit.rs,
    // `prune_audit`). The table written so far becomes `audit_kept`, as it
    // is: no row is copied and no row read, so the migration takes as
    // long on a year of a country as on an empty store (a rename, under a
    // lock held for milliseconds). It keeps its rows until retention
    // prunes them row by row as before, and receives the rows of claims
    // not final yet when their month is dropped. New rows go to the month
    // of their time, or to `audit_log_default` when no month is made for
    // it (the months ahead are made in this migration's transaction, then
    // by `PgStore::make_audit_months`). Readers read both through
    // `audit_all`, by the same ids: the sequence goes on (`LIKE`: the same
    // columns, defaults and NOT NULLs as the table it follows). Indexes: by id
    // (the audit export's order), subject and party, as before; no index
    // by time, which only the row batches of the default partition need
    // (its own). The rename waits at most 10 s behind a long reader of the
    // log (then run the migration again), not holding up every audit
    // insert meanwhile.
    r#"
SET LOCAL lock_timeout = '10s';
ALTER TABLE audit_log RENAME TO audit_kept;
CREATE TABLE audit_log (LIKE audit_kept INCLUDING DEFAULTS) PARTITION BY RANGE (at_ms);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
CREATE INDEX audit_log_id ON audit_log (id);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_party ON audit_log (party, outcome, id);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
CREATE INDEX audit_log_default_at ON audit_log_default (at_ms);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE VIEW audit_all AS
    SELECT id, at_ms, direction, party, method, subject, request_hash, outcome, trace_id FROM audit_log
    UNION ALL
    SELECT id, at_ms, direction, party, method, subject, request_hash, outcome, trace_id FROM audit_kept;
"#,
    // 19: a closed period's oldest claim (its creation time, set by the
    // close), so that retention, dropping a month, looks only into the
    // periods not settled that may hold a claim of that month
    // (audit.rs, `STALE_PERIODS`). Periods closed before have none: each
    // is looked into while it is not settled. A column without a default:
    // no row is rewritten.
    r#"
ALTER TABLE periods ADD COLUMN first_created_ms BIGINT;
"#,
    // 20: an act limit per stay counts under a scope of its own,
    // `stay-act` (engine::CeilingScope::StayActCount): it used to share
    // `act` with the calendar limits, so a stay named "2026" shared the
    // act's yearly count. A stored `act` count whose period is no day,
    // month or year was a stay's and moves; one whose period looks like
    // one stays, since a stay so named already shared its count. The same
    // rule as `CeilingKey`'s reading of a stored key: the text after the
    // key's last `|`. (`[|]`, not an escape: the pattern does not depend on
    // standard_conforming_strings.) Every row of both tables is read once;
    // only the moved rows are locked.
    r#"
UPDATE ceiling_usage SET ceiling_key = 'stay-act|' || substr(ceiling_key, 5)
    WHERE ceiling_key LIKE 'act|%' AND ceiling_key !~ '[|][0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$';
UPDATE claim_consumption SET ceiling_key = 'stay-act|' || substr(ceiling_key, 5)
    WHERE ceiling_key LIKE 'act|%' AND ceiling_key !~ '[|][0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$';
"#,
    // 21: a console account whose password someone else gave (an
    // operator, `passerelle users add|reset`) chooses its own first.
    // Accounts stored before keep theirs (0). A constant default: no
    // table rewrite, a lock of the users table for an instant.
    r#"
ALTER TABLE users ADD COLUMN IF NOT EXISTS must_change BIGINT NOT NULL DEFAULT 0;
"#,
    // 22: when an account's password was set, so that one given by
    // someone else signs in for a bounded time only. Accounts stored
    // before count from their last change (a creation or a reset is one).
    // The users table is small: its rewrite by the UPDATE is an instant.
    r#"
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_set_ms BIGINT NOT NULL DEFAULT 0;
UPDATE users SET password_set_ms = updated_ms WHERE password_set_ms = 0;
"#,
];

/// Indexes over every claim, built after the migrations commit, beside
/// live writers (`CREATE INDEX CONCURRENTLY`, `PgStore::migrate`): built in
/// the migrations' transaction, one held every claim writer for its whole
/// build (6.4 s at a million claims, docs/PERFORMANCE.md). Each: its name,
/// its definition, what it replaces (dropped once it is valid). An
/// interrupted build leaves an invalid index, which the next migrate
/// drops and builds again; until then what it replaces serves.
pub(super) const CONCURRENT_INDEXES: &[(&str, &str, Replaces)] = &[
    // With schema 16: a statement's pages are ranges of one index in the
    // statement's order (core::period_claims, core::statement_lines):
    // before, every page sorted the whole statement (2.3 s a page for a
    // mutuelle's 550,000 lines). It replaces the settlement index, whose
    // queries it serves (a period's totals, its close, listings by
    // mutuelle), so a claim writes no more index entries than before.
    (
        "claims_statement",
        r#"CREATE INDEX CONCURRENTLY claims_statement ON claims (scheme_id, mutuelle_id,
    (CASE WHEN period_id IS NOT NULL THEN period_id WHEN state = 'coordinated' THEN 0 ELSE -1 END),
    (CASE payee_type WHEN 'member' THEN 'member' ELSE 'provider' END) COLLATE "C",
    (CASE payee_type WHEN 'member' THEN member_number ELSE provider_id END) COLLATE "C",
    claim_id COLLATE "C")"#,
        Replaces::Index("claims_settlement"),
    ),
    // The claims' key with their state and period, so that retention's
    // test of each audit row (core::audit_row_held) reads the index alone,
    // not the claim's row, which was most of what the test read from the
    // OS (docs/PERFORMANCE.md, ninth part). It replaces the key's
    // constraint of migration 1, whose index it is plus two columns: every
    // claim insert writes as many index entries as before, and the columns
    // are those whose change already writes new entries (claims_statement
    // and the partial indexes' predicates hold them: such an update is
    // never HOT).
    (
        "claims_key",
        "CREATE UNIQUE INDEX CONCURRENTLY claims_key ON claims (scheme_id, claim_id) \
         INCLUDE (state, period_id)",
        Replaces::Constraint("claims", "claims_scheme_id_claim_id_key"),
    ),
    // With schema 19: the claims coordinated in no closed period, by
    // creation time (`audit::OPEN_CLAIM`). A month's drop reads those
    // created before its end and a day (audit.rs, `move_open_sql`): on a
    // store of a year, a few claims, where it probed the claims' key for
    // every subject of the month (850,000 at 10 million claims, 45 x live
    // p99 on a cold cache, docs/PERFORMANCE.md). A claim writes one entry
    // when it is coordinated, and one when a cancel is asked of it in no
    // closed period (state is already indexed: such updates were never
    // HOT); none while it waits on its partner, none once its period
    // closes.
    (
        "claims_open",
        "CREATE INDEX CONCURRENTLY claims_open ON claims (created_ms, id) \
         WHERE period_id IS NULL AND state IN ('coordinated', 'cancel_pending')",
        Replaces::Nothing,
    ),
    // The claims that hold their invoice (core::SQL_HOLDS_INVOICE): those
    // live and never rejected. It replaces migration 5's, on the live
    // states alone, which a rejected claim re-entered when a scheme
    // cancelled it: that cancel then broke the key against the corrected
    // claim holding the invoice, and failed at every resend.
    (
        "claims_invoice_live",
        "CREATE UNIQUE INDEX CONCURRENTLY claims_invoice_live ON claims \
         (scheme_id, provider_id, invoice_number) \
         WHERE state IN ('received', 'pending_partner', 'coordinated', 'cancel_pending') \
         AND rejection_code IS NULL",
        Replaces::Index("claims_invoice_held"),
    ),
    // The claims that owe their partner a cancel after the broker refused
    // its answer or the claim (core::SQL_OWES_WITHDRAWAL), by mutuelle:
    // counted with the claims waiting on it (`partner_activity`). Few
    // rows, written only then; a claim entering or leaving that state
    // already writes new index entries (its state is indexed).
    (
        "claims_owing",
        "CREATE INDEX CONCURRENTLY claims_owing ON claims (mutuelle_id) \
         WHERE state = 'rejected' AND cancel_key IS NOT NULL AND next_attempt_ms IS NOT NULL",
        Replaces::Nothing,
    ),
];

/// Checks added `NOT VALID` by a migration (enforced on every write from
/// then on) and validated against the rows already stored after the
/// migrations commit, beside live writers (`ALTER TABLE .. VALIDATE
/// CONSTRAINT` reads the table under a lock that readers and writers do
/// not wait for): each, its table and its name, as PostgreSQL names a
/// column's check. One left unvalidated (an interrupted migrate) is
/// validated by the next migrate.
pub(super) const DEFERRED_CHECKS: &[(&str, &str)] = &[
    // With schema 12: a hold is never negative.
    ("ceiling_usage", "ceiling_usage_held_amount_check"),
    ("ceiling_usage", "ceiling_usage_held_count_check"),
];

/// What an index of [`CONCURRENT_INDEXES`] replaces.
pub(super) enum Replaces {
    /// An index, dropped concurrently.
    Index(&'static str),
    /// A table's unique constraint (with its index): dropping it takes the
    /// table's lock for an instant, waited for at most
    /// `CONSTRAINT_LOCK_TIMEOUT`; a busy table keeps it until the next
    /// migrate, and uniqueness holds either way.
    Constraint(&'static str, &'static str),
    /// Nothing: a new index.
    Nothing,
}

#[cfg(test)]
mod unit {
    /// The index of the claims owing a cancel is on the predicate the
    /// partners' counts read (`core::SQL_OWES_WITHDRAWAL`).
    #[test]
    fn the_owing_index_is_on_the_owing_predicate() {
        let (_, create, _) = super::CONCURRENT_INDEXES
            .iter()
            .find(|(name, _, _)| *name == "claims_owing")
            .expect("listed");
        let flat = create.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(super::super::core::SQL_OWES_WITHDRAWAL),
            "{flat}"
        );
    }

    #[test]
    fn partial_indexes_are_on_the_states_of_their_queries() {
        assert!(super::MIGRATIONS[4].contains(&format!(
            "WHERE state IN {};",
            super::super::core::SQL_HOLDS_INVOICE_STATES
        )));
        let (_, live, _) = super::CONCURRENT_INDEXES
            .iter()
            .find(|(name, _, _)| *name == "claims_invoice_live")
            .expect("listed");
        let flat = live.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.ends_with(&format!("WHERE {}", super::super::core::SQL_HOLDS_INVOICE)),
            "{flat}"
        );
        assert!(super::MIGRATIONS[4].contains(&format!(
            "WHERE state IN {};",
            super::super::core::SQL_WAITING
        )));
    }

    /// Each deferred check is added by a migration as `NOT VALID`, under
    /// its name: a check written inline (`ADD COLUMN .. CHECK`) or added
    /// valid would read every row inside the migrations' transaction.
    #[test]
    fn deferred_checks_are_added_not_valid() {
        let all = super::MIGRATIONS.concat();
        for (table, check) in super::DEFERRED_CHECKS {
            let at = all
                .find(&format!("ADD CONSTRAINT {check} CHECK"))
                .unwrap_or_else(|| panic!("{check} is not added by a migration"));
            let statement = &all[..at];
            let statement = &statement[statement.rfind(';').map_or(0, |i| i + 1)..];
            assert!(
                statement.contains(&format!("ALTER TABLE {table} ")),
                "{check}: {statement}"
            );
            let rest = &all[at..];
            let clause = &rest[..rest.find([',', ';']).unwrap_or(rest.len())];
            assert!(clause.ends_with(" NOT VALID"), "{clause}");
            assert_eq!(all.matches(check).count(), 1, "{check}");
        }
        // The columns they check are added with no check of their own.
        assert!(!super::MIGRATIONS[11].contains("DEFAULT 0 CHECK"));
    }

    /// Retention's index of the claims coordinated in no closed period is on the
    /// predicate its query writes.
    #[test]
    fn the_open_claims_index_is_on_the_predicate_of_its_query() {
        let (name, create, _) = &super::CONCURRENT_INDEXES[2];
        assert_eq!(*name, "claims_open");
        assert!(
            create.ends_with(&format!("WHERE {}", super::super::audit::OPEN_CLAIM)),
            "{create}"
        );
        assert!(super::super::audit::move_open_sql("t").contains(&format!(
            "WHERE {} AND (created_ms, id) >",
            super::super::audit::OPEN_CLAIM
        )));
    }

    /// The statement's index holds the expressions of its queries, as they
    /// are written there (without the `c.` of the claims' alias).
    #[test]
    fn the_statement_index_is_on_the_expressions_of_its_queries() {
        use super::super::core;
        let index = super::CONCURRENT_INDEXES[0]
            .1
            .replace(char::is_whitespace, "");
        let plain = |sql: &str| sql.replace("c.", "").replace(char::is_whitespace, "");
        let period = plain(&core::period_claims(""));
        let period = period.trim_end_matches('=');
        let order = core::statement_claim_order("").map(|o| plain(&o));
        assert!(index.contains(&format!("mutuelle_id,{period},")), "{index}");
        assert!(
            index.contains(&format!("{}COLLATE\"C\",", order[0])),
            "{index}"
        );
        assert!(
            index.contains(&format!("{}COLLATE\"C\",", order[1])),
            "{index}"
        );
        assert!(index.ends_with("claim_idCOLLATE\"C\")"), "{index}");
    }
}
