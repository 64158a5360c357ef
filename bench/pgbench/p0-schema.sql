-- The tables P0 (bench/pgbench/p0.sql) writes to, in the benchmark's own
-- schema, beside the broker's: as plain as the claim's guarantees allow.

-- A claim, stored before its partner is asked: unique per (scheme, claim
-- id), the idempotency key, and per (scheme, provider, invoice), the
-- duplicate-invoice rule; its request body, to resume it after a crash;
-- its state and change number, for the scheme's change feed.
CREATE TABLE IF NOT EXISTS p0_claims (
    id BIGSERIAL PRIMARY KEY,
    scheme_id TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    mutuelle_total BIGINT NOT NULL DEFAULT 0,
    change_seq BIGINT,
    UNIQUE (scheme_id, claim_id),
    UNIQUE (scheme_id, provider_id, invoice_number)
);
-- The change numbers: a sequence, which serializes nothing.
CREATE SEQUENCE IF NOT EXISTS p0_changes;
-- The shares of each line.
CREATE TABLE IF NOT EXISTS p0_claim_lines (
    claim_pk BIGINT NOT NULL REFERENCES p0_claims (id),
    sequence INT NOT NULL,
    billed BIGINT NOT NULL,
    scheme_share BIGINT NOT NULL,
    mutuelle_share BIGINT NOT NULL,
    patient_share BIGINT NOT NULL,
    PRIMARY KEY (claim_pk, sequence)
);
-- What each ceiling has used, one row per ceiling.
CREATE TABLE IF NOT EXISTS p0_ceiling_usage (
    mutuelle_id TEXT NOT NULL,
    ceiling_key TEXT NOT NULL,
    used_amount BIGINT NOT NULL,
    used_count INT NOT NULL,
    PRIMARY KEY (mutuelle_id, ceiling_key)
);
-- What a claim consumed, to give it back exactly on cancel.
CREATE TABLE IF NOT EXISTS p0_claim_consumption (
    claim_pk BIGINT NOT NULL REFERENCES p0_claims (id),
    ceiling_key TEXT NOT NULL,
    amount BIGINT NOT NULL,
    count INT NOT NULL,
    PRIMARY KEY (claim_pk, ceiling_key)
);
