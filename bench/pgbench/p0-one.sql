-- P0, one commit: the least database work one new claim needs when no
-- system of the mutuelle is asked between storing it and storing its
-- outcome (a mutuelle whose rules the broker applies itself,
-- docs/ARCHITECTURE.md, "A claim's commits"). The same rows as P0
-- (bench/pgbench/p0.sql), on the same tables, written in one transaction:
-- the claim row is inserted with its state and change number, so the
-- second write of that row and the first commit go. The broker writes
-- such a claim this way; P0 stays the limit its ratio is to, this figure
-- says how much of that ratio the one commit buys.

\set n random(1, 9000000000000000000)
\set m random(0, 9999)

BEGIN;
-- The claim row, COORDINATED at once (unique claim id, unique invoice).
INSERT INTO p0_claims (scheme_id, claim_id, provider_id, invoice_number, state, body, mutuelle_total, change_seq) VALUES ('CNSS', 'P1-' || :n, 'CHU-SO', 'INV-P1-' || :n, 'coordinated', '{"scheme_id":"CNSS","claim_id":"P1-' || :n || '","provider_id":"CHU-SO","invoice_number":"INV-P1-' || :n || '","payee":"provider","beneficiary_id":"BN-' || :m || '","date_of_care":"2026-11-20","currency":"XOF","lines":[{"act_code":"C","category":"consultation","quantity":1,"billed":5000,"tariff_base":5000,"scheme_share":3500,"scheme_outcome":"covered"}],"diagnoses":[]}', 1500, nextval('p0_changes')) RETURNING id AS claim_pk \gset
-- Each ceiling consumed by one conditional statement on its own row.
INSERT INTO p0_ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'beneficiary-year|BSOL-' || :m || '|2026', 1500, 1) ON CONFLICT (mutuelle_id, ceiling_key) DO UPDATE SET used_amount = p0_ceiling_usage.used_amount + 1500, used_count = p0_ceiling_usage.used_count + 1 WHERE p0_ceiling_usage.used_amount + 1500 <= 300000000;
INSERT INTO p0_ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'household-year|BSOL-H' || :m || '|2026', 1500, 1) ON CONFLICT (mutuelle_id, ceiling_key) DO UPDATE SET used_amount = p0_ceiling_usage.used_amount + 1500, used_count = p0_ceiling_usage.used_count + 1 WHERE p0_ceiling_usage.used_amount + 1500 <= 900000000;
-- What the claim consumed, so that a cancel gives back exactly that.
INSERT INTO p0_claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (:claim_pk, 'beneficiary-year|BSOL-' || :m || '|2026', 1500, 1), (:claim_pk, 'household-year|BSOL-H' || :m || '|2026', 1500, 1);
-- The line's shares: S + M + P = B.
INSERT INTO p0_claim_lines (claim_pk, sequence, billed, scheme_share, mutuelle_share, patient_share) VALUES (:claim_pk, 1, 5000, 3500, 1500, 0);
COMMIT;
