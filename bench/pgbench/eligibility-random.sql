-- The database work of one eligibility check through the rules adapter,
-- for a different seeded member each time (`-D members=N`: the seeded
-- store's N members, 2,000,000 at `--scale 10000000`): the member read
-- (routing), the ceiling read, and the check's audit row (the broker writes those in batches; one row here).
-- The ceiling keys are those the broker asks for under the dev product
-- (the member's year, its maternity count, its household's year), of the
-- seeded year (2025), which the broker's rounds ask about
-- (`scale::ELIGIBILITY_DATE`): the odd-numbered members' rows are found
-- (their claims in the large mutuelle), the others' not, as not every
-- member claims in a year; no seeded claim counts a maternity act.
-- The product is served from the broker's cache, so it is left out.
-- With bench/pgbench/eligibility-one.sql (always the dev member TG-1001,
-- whose pages stay in shared buffers), it gives the engine's own ratio for
-- "eligibility on the seeded store against the nearly empty one": what the
-- broker's ratio can be held against. Run on a schema the benchmark left
-- (`passerelle-bench --only "at scale" --scale N --keep-schema`):
--   PGOPTIONS="-c search_path=bench_..." pgbench -n -M prepared -c 8 -j 2 \
--     -T 8 -D members=2000000 -f bench/pgbench/eligibility-random.sql test
-- The scale scenario runs both itself (`postgres::engine_eligibility`) and
-- prints the engine's ratios beside the broker's.
-- (chr(58) is ':', which pgbench would read as a variable.)
\set k random(1, :members)
SELECT body FROM members WHERE scheme_id = 'CNSS' AND beneficiary_id = 'SB-' || :k ORDER BY mutuelle_id, member_number;
SELECT ceiling_key, used_amount + held_amount, used_count + held_count, held_amount, held_count FROM ceiling_usage WHERE mutuelle_id = 'MUT-SOLIDARITE' AND ceiling_key = ANY(ARRAY['beneficiary-year|-|SM-' || :k || '|2025', 'count|maternity|SM-' || :k || '|2025', 'household-year|-|SH-' || :k || '|2025']);
INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) VALUES (1800000000000, 'in', 'scheme' || chr(58) || 'CNSS', 'CheckEligibility', 'CNSS/eligibility', 'h', 'ok');
