-- bench/pgbench/eligibility-random.sql's work for one member, the dev
-- broker's TG-1001 (member SOL-0001 of MUT-SOLIDARITE, household
-- SOL-H01, no usage in the seeded year), as the benchmark's "nearly empty
-- store" figure asks for: its pages stay in shared buffers.
SELECT body FROM members WHERE scheme_id = 'CNSS' AND beneficiary_id = 'TG-1001' ORDER BY mutuelle_id, member_number;
SELECT ceiling_key, used_amount + held_amount, used_count + held_count, held_amount, held_count FROM ceiling_usage WHERE mutuelle_id = 'MUT-SOLIDARITE' AND ceiling_key = ANY(ARRAY['beneficiary-year|-|SOL-0001|2025', 'count|maternity|SOL-0001|2025', 'household-year|-|SOL-H01|2025']);
INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) VALUES (1800000000000, 'in', 'scheme' || chr(58) || 'CNSS', 'CheckEligibility', 'CNSS/eligibility', 'h', 'ok');
