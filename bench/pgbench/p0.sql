-- P0: the least database work one new claim needs under passerelle's
-- guarantees, with no row every claim writes: the limit of this server for
-- the necessary work, not a replay of the broker's own transactions (that
-- is P, bench/pgbench/claim.sql). Tables: bench/pgbench/p0-schema.sql.
--
-- The claim of passerelle-bench: one consultation line of 5,000 XOF (scheme
-- 3,500, remainder 1,500, all paid by the mutuelle), for one of 10,000
-- members, consuming its beneficiary-year and household-year ceilings.
-- Left out as not database work: routing and product reads (served from
-- the broker's caches), the engine, gRPC; the audit rows (written in
-- batches by one task).

\set n random(1, 9000000000000000000)
\set m random(0, 9999)

-- Commit 1, before the partner is asked: the claim row, so that a crash or
-- a resend finds it (unique claim id: never adjudicated twice; unique
-- invoice: never paid twice). One statement, its own transaction.
INSERT INTO p0_claims (scheme_id, claim_id, provider_id, invoice_number, state, body) VALUES ('CNSS', 'P0-' || :n, 'CHU-SO', 'INV-P0-' || :n, 'received', '{"scheme_id":"CNSS","claim_id":"P0-' || :n || '","provider_id":"CHU-SO","invoice_number":"INV-P0-' || :n || '","payee":"provider","beneficiary_id":"BN-' || :m || '","date_of_care":"2026-11-20","currency":"XOF","lines":[{"act_code":"C","category":"consultation","quantity":1,"billed":5000,"tariff_base":5000,"scheme_share":3500,"scheme_outcome":"covered"}],"diagnoses":[]}') RETURNING id AS claim_pk \gset

-- Commit 2, with the partner's answer: all of it or none.
BEGIN;
-- Each ceiling consumed by one conditional statement on its own row (used
-- + amount within the limit; the first use creates the row): never a sum
-- read then written, so replicas cannot overspend it.
INSERT INTO p0_ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'beneficiary-year|BSOL-' || :m || '|2026', 1500, 1) ON CONFLICT (mutuelle_id, ceiling_key) DO UPDATE SET used_amount = p0_ceiling_usage.used_amount + 1500, used_count = p0_ceiling_usage.used_count + 1 WHERE p0_ceiling_usage.used_amount + 1500 <= 300000000;
INSERT INTO p0_ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'household-year|BSOL-H' || :m || '|2026', 1500, 1) ON CONFLICT (mutuelle_id, ceiling_key) DO UPDATE SET used_amount = p0_ceiling_usage.used_amount + 1500, used_count = p0_ceiling_usage.used_count + 1 WHERE p0_ceiling_usage.used_amount + 1500 <= 900000000;
-- What the claim consumed, so that a cancel gives back exactly that.
INSERT INTO p0_claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (:claim_pk, 'beneficiary-year|BSOL-' || :m || '|2026', 1500, 1), (:claim_pk, 'household-year|BSOL-H' || :m || '|2026', 1500, 1);
-- The line's shares: S + M + P = B.
INSERT INTO p0_claim_lines (claim_pk, sequence, billed, scheme_share, mutuelle_share, patient_share) VALUES (:claim_pk, 1, 5000, 3500, 1500, 0);
-- Its state and its place in the change feed (a sequence, no shared row).
UPDATE p0_claims SET state = 'coordinated', mutuelle_total = 1500, change_seq = nextval('p0_changes') WHERE id = :claim_pk;
COMMIT;
