-- The database work of one new claim, as passerelle's PostgreSQL store does
-- it (broker/src/store/postgres/claims.rs; the writer mark's second key is
-- the schema's hash there, 1 here), for pgbench: the limit P that the
-- benchmark's "claims PostgreSQL" figure is a ratio to.
--
-- One consultation line of 5,000 XOF (scheme 3,500, remainder 1,500) for a
-- member of a rules mutuelle, two ceilings consumed (beneficiary year and
-- household year), as passerelle-bench sends them. Run against a schema that
-- `passerelle migrate` made (search_path), by passerelle-bench itself:
--   PGOPTIONS="-c search_path=SCHEMA" pgbench -n -M prepared -f claim.sql ...
-- What it leaves out: gRPC, JSON, the engine, and the audit rows (written in
-- batches of up to 512 by one task, not per claim).

\set n random(1, 9000000000000000000)
\set m random(0, 9999)

-- Routing and the rules adapter: the member, its product, its ceilings.
SELECT body FROM members WHERE scheme_id = 'CNSS' AND beneficiary_id = 'BN-' || :m ORDER BY mutuelle_id, member_number;
SELECT body FROM members WHERE mutuelle_id = 'MUT-SOLIDARITE' AND member_number = 'BSOL-' || :m;
SELECT version, body FROM products WHERE mutuelle_id = 'MUT-SOLIDARITE' AND product_id = 'SOLIDARITE-ESSENTIEL' AND valid_from <= '2026-11-20' AND (valid_to IS NULL OR valid_to >= '2026-11-20') ORDER BY valid_from DESC, version DESC LIMIT 1;
SELECT ceiling_key, used_amount, used_count FROM ceiling_usage WHERE mutuelle_id = 'MUT-SOLIDARITE' AND ceiling_key = ANY(ARRAY['beneficiary-year|-|BSOL-' || :m || '|2026', 'household-year|-|BSOL-H' || :m || '|2026']);

-- begin_claim: store the claim as RECEIVED, once per (scheme, claim id) and
-- per invoice.
BEGIN;
SELECT id, body, request_hash, state, mutuelle_id, member_number, adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, last_error, change_seq, created_ms, updated_ms FROM claims WHERE scheme_id = 'CNSS' AND claim_id = 'PGB-' || :n;
SELECT pg_advisory_xact_lock(hashtextextended('CNSS' || chr(31) || 'CHU-SO' || chr(31) || 'INV-PGB-' || :n, 0)), (SELECT pg_advisory_xact_lock_shared(1885434739::int4, 1::int4));
SELECT claim_id FROM claims WHERE scheme_id = 'CNSS' AND provider_id = 'CHU-SO' AND invoice_number = 'INV-PGB-' || :n AND state IN ('received', 'pending_partner', 'coordinated', 'cancel_pending') LIMIT 1;
INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, mutuelle_id, member_number, state, adjudication_key, rejection_code, rejection_message, next_attempt_ms, change_seq, created_ms, updated_ms, date_of_care, currency, payee_type, billed_total, scheme_total) VALUES ('CNSS', 'PGB-' || :n, '6f1ed002ab5595859014ebf0951522d9e2d8a2a5c1a8c5cf8d0e3a0b7c6f5e4d', '{"scheme_id":"CNSS","claim_id":"PGB-' || :n || '","provider_id":"CHU-SO","invoice_number":"INV-PGB-' || :n || '","payee":"provider","beneficiary_id":"BN-' || :m || '","date_of_care":"2026-11-20","currency":"XOF","lines":[{"act_code":"C","category":"consultation","quantity":1,"billed":5000,"tariff_base":5000,"scheme_share":3500,"scheme_outcome":"covered"}],"diagnoses":[]}', 'CHU-SO', 'INV-PGB-' || :n, 'MUT-SOLIDARITE', 'BSOL-' || :m, 'received', 'adj-' || :n, NULL, NULL, 1, (pg_current_xact_id()::text::bigint + (SELECT base FROM change_base)), 1, 1, '2026-11-20', 'XOF', 'provider', 5000, 3500);
COMMIT;
SELECT id, body, request_hash, state, mutuelle_id, member_number, adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, last_error, change_seq, created_ms, updated_ms FROM claims WHERE scheme_id = 'CNSS' AND claim_id = 'PGB-' || :n \gset c_
SELECT sequence, mutuelle_share, reasons FROM claim_lines WHERE claim_pk = :c_id ORDER BY sequence;

-- complete_claim: consume the ceilings (conditionally), store the shares of
-- every line, mark the product version used, move to COORDINATED.
BEGIN;
SELECT id, body, request_hash, state, mutuelle_id, member_number, adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, last_error, change_seq, created_ms, updated_ms FROM claims, (SELECT pg_advisory_xact_lock_shared(1885434739::int4, 1::int4)) mark WHERE scheme_id = 'CNSS' AND claim_id = 'PGB-' || :n FOR UPDATE OF claims;
SELECT sequence, mutuelle_share, reasons FROM claim_lines WHERE claim_pk = :c_id ORDER BY sequence;
INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'beneficiary-year|-|BSOL-' || :m || '|2026', 0, 0) ON CONFLICT DO NOTHING;
UPDATE ceiling_usage SET used_amount = used_amount + 1500, used_count = used_count + 1 WHERE mutuelle_id = 'MUT-SOLIDARITE' AND ceiling_key = 'beneficiary-year|-|BSOL-' || :m || '|2026' AND (300000000::BIGINT IS NULL OR used_amount + 1500 <= 300000000) AND (NULL::BIGINT IS NULL OR used_count + 1 <= NULL);
INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (:c_id, 'beneficiary-year|-|BSOL-' || :m || '|2026', 1500, 1);
INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) VALUES ('MUT-SOLIDARITE', 'household-year|-|BSOL-H' || :m || '|2026', 0, 0) ON CONFLICT DO NOTHING;
UPDATE ceiling_usage SET used_amount = used_amount + 1500, used_count = used_count + 1 WHERE mutuelle_id = 'MUT-SOLIDARITE' AND ceiling_key = 'household-year|-|BSOL-H' || :m || '|2026' AND (900000000::BIGINT IS NULL OR used_amount + 1500 <= 900000000) AND (NULL::BIGINT IS NULL OR used_count + 1 <= NULL);
INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (:c_id, 'household-year|-|BSOL-H' || :m || '|2026', 1500, 1);
INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, tariff_base, scheme_share, mutuelle_share, patient_share, reasons) VALUES (:c_id, 1, 'C', 'consultation', 1, 5000, 5000, 3500, 1500, 0, '[]');
UPDATE products SET used = TRUE WHERE mutuelle_id = 'MUT-SOLIDARITE' AND product_id = 'SOLIDARITE-ESSENTIEL' AND version = 1 AND NOT used;
UPDATE claims SET state = 'coordinated', product_id = 'SOLIDARITE-ESSENTIEL', product_version = 1, product_name = 'Essentiel', partner_reference = '', next_attempt_ms = NULL, last_error = '', change_seq = (pg_current_xact_id()::text::bigint + (SELECT base FROM change_base)), updated_ms = 2, mutuelle_total = 1500 WHERE id = :c_id;
COMMIT;
SELECT id, body, request_hash, state, mutuelle_id, member_number, adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, last_error, change_seq, created_ms, updated_ms FROM claims WHERE id = :c_id;
SELECT sequence, mutuelle_share, reasons FROM claim_lines WHERE claim_pk = :c_id ORDER BY sequence;
