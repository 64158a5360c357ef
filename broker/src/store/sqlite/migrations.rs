//! The schema migrations of this backend.

/// Schema migrations, applied in order; the schema version is their count.
/// Never edit a migration that has shipped: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 2: settlement periods and recoveries; per-claim totals for listings.
    r#"
CREATE TABLE periods (
    id                    INTEGER PRIMARY KEY,
    scheme_id             TEXT NOT NULL,
    mutuelle_id           TEXT NOT NULL,
    number                INTEGER NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('closed', 'settled')),
    closed_ms             INTEGER NOT NULL,
    settled_ms            INTEGER NOT NULL DEFAULT 0,
    settlement_reference  TEXT NOT NULL DEFAULT '',
    UNIQUE (scheme_id, mutuelle_id, number)
);

ALTER TABLE claims ADD COLUMN date_of_care TEXT NOT NULL DEFAULT '';
ALTER TABLE claims ADD COLUMN currency TEXT NOT NULL DEFAULT '';
ALTER TABLE claims ADD COLUMN payee_type TEXT NOT NULL DEFAULT 'provider';
ALTER TABLE claims ADD COLUMN billed_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE claims ADD COLUMN scheme_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE claims ADD COLUMN mutuelle_total INTEGER NOT NULL DEFAULT 0;
-- The closed period the claim is owed in; NULL while in the open period.
ALTER TABLE claims ADD COLUMN period_id INTEGER REFERENCES periods (id);

UPDATE claims SET
    date_of_care = json_extract(body, '$.date_of_care'),
    currency = json_extract(body, '$.currency'),
    payee_type = json_extract(body, '$.payee'),
    billed_total = (SELECT COALESCE(SUM(json_extract(l.value, '$.billed')), 0) FROM json_each(claims.body, '$.lines') AS l),
    scheme_total = (SELECT COALESCE(SUM(json_extract(l.value, '$.scheme_share')), 0) FROM json_each(claims.body, '$.lines') AS l),
    mutuelle_total = (SELECT COALESCE(SUM(mutuelle_share), 0) FROM claim_lines WHERE claim_pk = claims.id);

CREATE INDEX claims_mutuelle_state ON claims (mutuelle_id, state);
CREATE INDEX claims_settlement ON claims (scheme_id, mutuelle_id, period_id, state);

-- A claim cancelled after its period closed: what the mutuelle recovers.
CREATE TABLE recoveries (
    id           INTEGER PRIMARY KEY,
    claim_pk     INTEGER NOT NULL UNIQUE REFERENCES claims (id),
    scheme_id    TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL,
    from_period  INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    period_id    INTEGER REFERENCES periods (id),
    created_ms   INTEGER NOT NULL
);
CREATE INDEX recoveries_open ON recoveries (scheme_id, mutuelle_id, period_id);

CREATE INDEX audit_subject ON audit_log (subject, id);
CREATE INDEX audit_party ON audit_log (party, outcome, id);
"#,
    // 3: indexes in the order the eligibility lookups read, so that neither
    // sorts (they ran on every eligibility check with a temporary B-tree).
    r#"
CREATE INDEX members_beneficiary_order ON members (scheme_id, beneficiary_id, mutuelle_id, member_number);
DROP INDEX members_beneficiary;
CREATE INDEX products_validity ON products (mutuelle_id, product_id, valid_from, version);
"#,
    // 4: the claim that holds the invoice of a claim rejected as a duplicate,
    // for the scheme to reconcile.
    r#"
ALTER TABLE claims ADD COLUMN duplicate_of TEXT;
"#,
    // 5: retention reads the oldest audit rows first (issue 16: without
    // this index every pruning batch read the whole log).
    r#"
CREATE INDEX audit_at ON audit_log (at_ms);
"#,
    // 6: operators' pauses and the partners' circuit breakers (issue 17),
    // shared by every broker and kept across restarts.
    r#"
CREATE TABLE partner_controls (
    partner_id             TEXT PRIMARY KEY,
    paused_ms              INTEGER NOT NULL DEFAULT 0,
    paused_by              TEXT NOT NULL DEFAULT '',
    breaker_open_until_ms  INTEGER NOT NULL DEFAULT 0
);
"#,
    // 7: the claims waiting on their mutuelle, as PostgreSQL has them
    // (its migration 5): what an operator lists across schemes, and the
    // metrics' waiting counts.
    r#"
CREATE INDEX claims_waiting ON claims (mutuelle_id)
    WHERE state IN ('received', 'pending_partner', 'cancel_pending');
"#,
    // 8: the W3C trace id of each audited call (issue 17).
    r#"
ALTER TABLE audit_log ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';
"#,
    // 9: the console's accounts, sessions and sign-in throttle (issue 19).
    r#"
CREATE TABLE users (
    login          TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL DEFAULT '',
    totp_step      INTEGER NOT NULL DEFAULT 0,
    disabled_ms    INTEGER NOT NULL DEFAULT 0,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    login        TEXT NOT NULL REFERENCES users (login),
    csrf_secret  TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL DEFAULT '',
    created_ms   INTEGER NOT NULL,
    seen_ms      INTEGER NOT NULL,
    address      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_login ON sessions (login);
CREATE INDEX sessions_seen ON sessions (seen_ms);
CREATE TABLE signin_throttle (
    key       TEXT PRIMARY KEY,
    failures  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL,
    next_ms   INTEGER NOT NULL
);
CREATE INDEX signin_throttle_last ON signin_throttle (last_ms);
"#,
    // 10: a roster file uploaded in the console, kept between its check and
    // its apply (one per session; issue 19).
    r#"
CREATE TABLE console_uploads (
    session_hash  TEXT PRIMARY KEY,
    file_name     TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);
"#, // 11: the mutuelle an upload was checked for: it is applied there only.
    r#"
ALTER TABLE console_uploads ADD COLUMN mutuelle_id TEXT NOT NULL DEFAULT '';
"#,
    // 12: changes that need two people: proposals and their decisions
    // (maker-checker, issue 19).
    r#"
CREATE TABLE proposals (
    id           INTEGER PRIMARY KEY,
    mutuelle_id  TEXT NOT NULL,
    scheme_id    TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    proposed_by  TEXT NOT NULL,
    proposed_ms  INTEGER NOT NULL,
    state        TEXT NOT NULL,
    decided_by   TEXT NOT NULL DEFAULT '',
    decided_ms   INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX proposals_mutuelle ON proposals (mutuelle_id, state, id);
"#,
    // 13: prior authorizations and the holds they take on ceilings
    // (issue 20).
    r#"
ALTER TABLE ceiling_usage ADD COLUMN held_amount INTEGER NOT NULL DEFAULT 0 CHECK (held_amount >= 0);
ALTER TABLE ceiling_usage ADD COLUMN held_count INTEGER NOT NULL DEFAULT 0 CHECK (held_count >= 0);
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
    expires_ms        INTEGER NOT NULL,
    extensions        INTEGER NOT NULL DEFAULT 0,
    claim_id          TEXT NOT NULL DEFAULT '',
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL,
    PRIMARY KEY (scheme_id, authorization_id)
);
CREATE INDEX prior_authorizations_due ON prior_authorizations (expires_ms) WHERE state = 'active';
CREATE INDEX prior_authorizations_mutuelle ON prior_authorizations (mutuelle_id, created_ms);
"#,
    // 14: opening balances of a mutuelle joining during a year (issue 20).
    r#"
CREATE TABLE opening_balances (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount >= 0),
    count        INTEGER NOT NULL CHECK (count >= 0),
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (mutuelle_id, ceiling_key)
);
"#,
    // 15: active authorizations of a beneficiary, counted before a new
    // one (at most 20 in force).
    r#"
CREATE INDEX prior_authorizations_beneficiary ON prior_authorizations (scheme_id, beneficiary_id) WHERE state = 'active';
"#,
    // 16: a statement's pages are ranges of one index in the statement's
    // order (core::period_claims, core::statement_lines) instead of a sort
    // of the whole statement for every page. The payee is in two generated
    // columns: SQLite seeks a row comparison on columns, not on an index's
    // expressions (virtual: nothing more is stored in the table). It replaces the settlement
    // index, whose queries it serves (a period's totals, its close). A
    // period closed from now on keeps its totals (core::store_period_totals).
    r#"
ALTER TABLE periods ADD COLUMN claim_count INTEGER;
ALTER TABLE periods ADD COLUMN billed_total INTEGER;
ALTER TABLE periods ADD COLUMN scheme_total INTEGER;
ALTER TABLE periods ADD COLUMN mutuelle_total INTEGER;
ALTER TABLE periods ADD COLUMN recoveries_total INTEGER;
ALTER TABLE claims ADD COLUMN statement_payee_type TEXT
    GENERATED ALWAYS AS (CASE payee_type WHEN 'member' THEN 'member' ELSE 'provider' END) VIRTUAL;
ALTER TABLE claims ADD COLUMN statement_payee_id TEXT
    GENERATED ALWAYS AS (CASE payee_type WHEN 'member' THEN member_number ELSE provider_id END) VIRTUAL;
CREATE INDEX claims_statement ON claims (scheme_id, mutuelle_id,
    (CASE WHEN period_id IS NOT NULL THEN period_id WHEN state = 'coordinated' THEN 0 ELSE -1 END),
    statement_payee_type, statement_payee_id, claim_id);
DROP INDEX claims_settlement;
"#,
    // 17: an act limit per stay counts under a scope of its own,
    // `stay-act` (engine::CeilingScope::StayActCount): it used to share
    // `act` with the calendar limits, so a stay named "2026" shared the
    // act's yearly count. A stored `act` count whose period is no day,
    // month or year was a stay's and moves; one whose period looks like
    // one stays, since a stay so named already shared its count. The same
    // rule as `CeilingKey`'s reading of a stored key: the text after the
    // key's last `|`.
    r#"
UPDATE ceiling_usage SET ceiling_key = 'stay-act|' || substr(ceiling_key, 5)
    WHERE ceiling_key GLOB 'act|*' AND NOT (
        ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]'
        OR ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]-[0-9][0-9]'
        OR ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]');
UPDATE claim_consumption SET ceiling_key = 'stay-act|' || substr(ceiling_key, 5)
    WHERE ceiling_key GLOB 'act|*' AND NOT (
        ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]'
        OR ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]-[0-9][0-9]'
        OR ceiling_key GLOB '*|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]');
"#,
    // 18: the claims that owe their partner a cancel after the broker
    // refused its answer (core::SQL_OWES_WITHDRAWAL), by mutuelle: counted
    // with the claims waiting on it (`partner_activity`: the metrics, the
    // console's and the CLI's partners). Few rows, written only then.
    r#"
CREATE INDEX IF NOT EXISTS claims_owing ON claims (mutuelle_id)
    WHERE state = 'rejected' AND cancel_key IS NOT NULL AND next_attempt_ms IS NOT NULL;
"#,
    // 19: a console account whose password someone else gave (an
    // operator, `passerelle users add|reset`) chooses its own first.
    // Accounts stored before keep theirs (0).
    r#"
ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0;
"#,
    // 20: when an account's password was set, so that one given by
    // someone else signs in for a bounded time only. Accounts stored
    // before count from their last change (a creation or a reset is one).
    r#"
ALTER TABLE users ADD COLUMN password_set_ms INTEGER NOT NULL DEFAULT 0;
UPDATE users SET password_set_ms = updated_ms;
"#,
];

#[cfg(test)]
mod unit {
    /// The index of the claims owing a cancel is on the predicate the
    /// partners' counts read (`core::SQL_OWES_WITHDRAWAL`).
    #[test]
    fn the_owing_index_is_on_the_owing_predicate() {
        let m = super::MIGRATIONS[17]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(m.contains("claims_owing"), "{m}");
        assert!(m.contains(super::super::core::SQL_OWES_WITHDRAWAL), "{m}");
    }

    /// The statement's index holds the statement period of its queries
    /// (`core::period_claims`), and its generated columns the payee as a
    /// statement line reads it (`core::PAYEE_COLS`).
    #[test]
    fn the_statement_index_is_on_the_expressions_of_its_queries() {
        use super::super::core;
        let m = super::MIGRATIONS[15].replace(char::is_whitespace, "");
        let plain = |sql: &str| sql.replace("c.", "").replace(char::is_whitespace, "");
        let period = plain(&core::period_claims(""));
        let period = period.trim_end_matches('=');
        assert!(m.contains(&format!("mutuelle_id,{period},")), "{m}");
        let payee = plain(core::PAYEE_COLS);
        let (kind, id) = payee.split_once(',').expect("two columns");
        assert!(
            m.contains(&format!(
                "statement_payee_typeTEXTGENERATEDALWAYSAS({kind})VIRTUAL"
            )),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "statement_payee_idTEXTGENERATEDALWAYSAS({id})VIRTUAL"
            )),
            "{m}"
        );
    }
}
