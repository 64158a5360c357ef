//! A year of a country, scaled down: the seeding tool (bulk `INSERT ...
//! SELECT` over `generate_series`, server-side, the same bulk path as COPY
//! without a client round trip per row) and what is measured on the seeded
//! PostgreSQL store: database size per million claims, claims against the
//! same figure on the nearly empty store, ListChangedClaims paging through
//! the seeded changes, retention pruning a month of audit rows, and a large
//! mutuelle's statement exported by pages with the process's memory, and
//! the schema's last migrations applied again to the seeded data while a
//! writer waits on them.
//!
//! Seeded per run with `--scale N` claims (default 200,000; 20,000 in smoke
//! runs): N/5 members of the large mutuelle (each with the record of one
//! of its members, [`MEMBER`], under its own numbers and its own household,
//! so that an eligibility check of any of them does that member's work),
//! claims over 200 mutuelles, each claim one coordinated
//! consultation line with its ceiling consumption, and two audit rows per
//! claim over one year (half of them eligibility checks, half the calls
//! of their claims). The first [`SETTLED_MONTHS`] months' claims are each
//! in a settled period of their mutuelle, one a month, as a year's oldest
//! months are (statements are closed and settled monthly), but for one in
//! a thousand, still open: retention drops those months' partitions, one a
//! round, and keeps those claims' rows. Half the claims go to one large
//! mutuelle, the dev broker's MUT-SOLIDARITE, whose open statement then
//! holds the other months' claims of it. Those are its odd-numbered
//! members' claims, five each over the year, whose usage (the member's
//! and its household's yearly ceilings) an eligibility check about that
//! year reads ([`ELIGIBILITY_DATE`]); its even-numbered members claimed
//! nothing there that year, as not every member does, and their checks
//! find no row. (The other mutuelles' claims carry the same member
//! numbers under those mutuelles: other people.)

use std::sync::Arc;
use std::time::Instant;

use passerelle_broker::store::Store;

use crate::postgres::{BenchDb, admin};

/// The large mutuelle: half the seeded claims, all in its open period.
pub const LARGE: &str = "MUT-SOLIDARITE";

/// The dev member whose record every seeded member carries (covered, dues
/// paid): an eligibility check of a seeded member does the same work as one
/// of this member, on a store that holds the seeded ones.
pub const MEMBER: &str = "TG-1001";

/// One year in milliseconds, the span of the seeded claims and audit rows.
const YEAR_MS: i64 = 365 * 24 * 3_600_000;
/// The seeded year starts here (1 January 2025, UTC).
const YEAR_START_MS: i64 = 1_735_689_600_000;
/// The seeded year as its claims' dates of care and its ceiling keys name
/// it (the year of [`YEAR_START_MS`]).
const YEAR: &str = "2025";
/// The date of care eligibility asks about at scale, in both stores: a day
/// of the seeded year, so that the check of a seeded member who claimed
/// that year (every other one) reads the usage its claims left, its own
/// and its household's rows found (their heap pages with them), as on a
/// year's store. The rounds once asked about 2026, for which no seeded
/// row exists: the ceiling read then stopped at the index leaf, and the
/// seeded figure left out those pages. The nearly empty store's member has
/// no usage in any year, as an empty store's: the figure compares rows
/// found on a year's store with none on an empty one.
pub const ELIGIBILITY_DATE: &str = "2025-11-20";
/// The seeded year's months settled, each a round of retention's
/// measurement (a month pruned while live claims run): as many as
/// eligibility's rounds, so that one stall of the host moves one window of
/// five, not the figure.
pub const SETTLED_MONTHS: usize = 5;
/// The ends of the seeded year's first months (1 February to 1 June 2025,
/// UTC): each month's claims are in its settled period, and retention's
/// cutoff in round `k` is the `k`th.
const MONTH_ENDS_MS: [i64; SETTLED_MONTHS] = {
    let days = [31, 59, 90, 120, 151];
    let mut ends = [0; SETTLED_MONTHS];
    let mut k = 0;
    while k < SETTLED_MONTHS {
        ends[k] = YEAR_START_MS + days[k] * 24 * 3_600_000;
        k += 1;
    }
    ends
};

pub struct Seeded {
    pub claims: u64,
    /// The change number the seeded changes come after.
    pub first_cursor: u64,
    /// What PostgreSQL refused while seeding (the figures are then void).
    pub errors: Vec<String>,
    pub seed_secs: f64,
    pub database_bytes: i64,
    pub claims_in_database: i64,
}

impl Seeded {
    /// Database size per million claims, in MiB.
    pub fn mib_per_million(&self) -> f64 {
        self.database_bytes as f64 / (1 << 20) as f64 * 1e6 / self.claims_in_database.max(1) as f64
    }
}

/// Loads `n` claims (and their members, lines, ceilings, consumption and
/// audit rows) into the run's schema; a claim the broker stored lends its
/// body.
pub async fn seed(db: &BenchDb, n: u64) -> Seeded {
    let m = (n / 5).max(1);
    let step = YEAR_MS / n as i64;
    let audit_step = YEAR_MS / (2 * n as i64);
    // The audit log's months of the seeded year (the broker makes them
    // ahead of the clock only).
    let months = crate::postgres::pg_store(db)
        .make_audit_months(YEAR_START_MS, YEAR_START_MS + YEAR_MS)
        .await
        .err()
        .map(|e| format!("the seeded year's audit months: {e}"));
    let sql = format!(
        "SET search_path TO \"{schema}\";
INSERT INTO periods (scheme_id, mutuelle_id, number, state, closed_ms, settled_ms, settlement_reference)
  SELECT 'CNSS', m, e.k, 'settled', e.end_ms, e.end_ms + 86400000, 'seeded'
  FROM (SELECT '{LARGE}' AS m UNION ALL SELECT 'SCALE-' || g FROM generate_series(0, 199) g) t,
    (VALUES {ends}) e(k, end_ms);
INSERT INTO members (mutuelle_id, member_number, scheme_id, beneficiary_id, body, updated_ms)
  SELECT '{LARGE}', 'SM-' || g, 'CNSS', 'SB-' || g,
    replace(replace(replace(t.body, '\"{MEMBER}\"', '\"SB-' || g || '\"'), '\"' || t.member_number || '\"', '\"SM-' || g || '\"'),
      '\"household_id\":\"' || t.household || '\"', '\"household_id\":\"SH-' || g || '\"'), 1
  FROM (SELECT body, member_number, body::jsonb ->> 'household_id' AS household FROM members
    WHERE mutuelle_id = '{LARGE}' AND beneficiary_id = '{MEMBER}') t,
    generate_series(1::BIGINT, {m}) g;
DO $$ BEGIN IF EXISTS (SELECT 1 FROM members WHERE member_number = 'SM-1' AND body::jsonb ->> 'household_id' IS DISTINCT FROM 'SH-1') THEN
  RAISE EXCEPTION 'a seeded member kept the dev member''s household: every seeded check would share one household row';
END IF; END $$;
INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, mutuelle_id,
    member_number, state, adjudication_key, change_seq, created_ms, updated_ms, date_of_care, currency,
    payee_type, billed_total, scheme_total, mutuelle_total, period_id)
  SELECT 'CNSS', 'SC-' || g, t.request_hash, t.body, 'SP-' || (g % 500), 'SI-' || g,
    k.m, 'SM-' || (g % {m} + 1), 'coordinated', 'sk-' || g, t.seq + g, {YEAR_START_MS} + g * {step},
    {YEAR_START_MS} + g * {step}, '{YEAR}-06-01', 'XOF', 'provider', 5000, 3500, 1500,
    CASE WHEN {YEAR_START_MS} + g * {step} < {last_end} AND g % 1000 <> 0
      THEN (SELECT id FROM periods p WHERE p.scheme_id = 'CNSS' AND p.mutuelle_id = k.m
        AND p.number = CASE {month_of} END) END
  FROM (SELECT request_hash, body, (SELECT MAX(change_seq) FROM claims) AS seq FROM claims
    WHERE claim_id LIKE 'BENCH-%' LIMIT 1) t,
    generate_series(1::BIGINT, {n}) g,
    LATERAL (SELECT CASE WHEN g % 2 = 0 THEN '{LARGE}' ELSE 'SCALE-' || (g % 200) END AS m) k;
UPDATE change_base SET base = base + {n} + 1;
INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, tariff_base,
    scheme_share, mutuelle_share, patient_share, reasons)
  SELECT id, 1, 'C', 'consultation', 1, 5000, 5000, 3500, 1500, 0, '[]' FROM claims WHERE claim_id LIKE 'SC-%';
INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count)
  SELECT mutuelle_id, k.key, SUM(1500), COUNT(*)
  FROM claims, LATERAL ({year_keys}) k(key)
  WHERE claim_id LIKE 'SC-%' GROUP BY mutuelle_id, k.key
  ON CONFLICT DO NOTHING;
INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count)
  SELECT id, k.key, 1500, 1 FROM claims, LATERAL ({year_keys}) k(key) WHERE claim_id LIKE 'SC-%';
INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome)
  SELECT {YEAR_START_MS} + g * {audit_step}, 'in', 'scheme:CNSS',
    CASE WHEN g % 2 = 0 THEN 'CoordinateClaim' ELSE 'CheckEligibility' END,
    CASE WHEN g % 2 = 0 THEN 'CNSS/SC-' || (g / 2) ELSE 'CNSS/eligibility' END, 'h', 'ok'
  FROM generate_series(1::BIGINT, {two_n}) g;
DO $$ BEGIN IF EXISTS (SELECT 1 FROM audit_log_default) THEN
  RAISE EXCEPTION 'seeded audit rows outside the months made: retention would prune them row by row';
END IF; END $$;
ANALYZE members, claims, claim_lines, ceiling_usage, claim_consumption, audit_log, periods;",
        schema = db.schema,
        two_n = 2 * n,
        // The year's ceilings a seeded consultation consumes under the dev
        // product (SOLIDARITE-ESSENTIEL): its member's and its household's.
        year_keys = format!(
            "VALUES ('beneficiary-year|-|' || member_number || '|{YEAR}'), \
             ('household-year|-|SH-' || substring(member_number from 4) || '|{YEAR}')"
        ),
        ends = MONTH_ENDS_MS
            .iter()
            .enumerate()
            .map(|(k, end)| format!("({}, {end}::BIGINT)", k + 1))
            .collect::<Vec<_>>()
            .join(", "),
        last_end = MONTH_ENDS_MS[SETTLED_MONTHS - 1],
        month_of = MONTH_ENDS_MS
            .iter()
            .enumerate()
            .map(|(k, end)| format!("WHEN {YEAR_START_MS} + g * {step} < {end} THEN {}", k + 1))
            .collect::<Vec<_>>()
            .join(" "),
    );
    // The seeded changes come after every change stored so far (P's rows,
    // whose bodies the broker does not read, among them).
    let first_cursor = size(db).await.2;
    let t0 = Instant::now();
    let mut errors = admin(db, &[sql]).await;
    errors.extend(months);
    let seed_secs = t0.elapsed().as_secs_f64();
    // A year's data is at rest: vacuumed (hint bits and visibility set, as
    // autovacuum leaves rows months old) and durable. Without it the first
    // reads of each seeded page write it again (eligibility's members), and
    // the flushing of what the vacuum dirtied (gigabytes at 10 million
    // claims) falls in the measured windows. Measured 3 December at 10
    // million claims, with the checkpoint before the vacuum: live claims'
    // commits waited on WAL writes while the disk wrote 2,354 MiB in
    // retention's 25 s (live p99 462 ms, 98 x idle); in this order, 519
    // MiB and 9.9 ms (2.1 x). The checkpoint comes last, so that it
    // flushes the vacuum's pages too. (It needs a superuser or
    // pg_checkpoint; without, it is only reported.)
    crate::postgres::vacuum(db).await;
    crate::postgres::checkpoint(db).await;
    let (database_bytes, claims_in_database, _) = size(db).await;
    Seeded {
        first_cursor,
        claims: n,
        errors,
        seed_secs,
        database_bytes,
        claims_in_database,
    }
}

/// The schema's tables and indexes, in bytes, its claims, and its last
/// change number.
async fn size(db: &BenchDb) -> (i64, i64, u64) {
    let Ok((client, conn)) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await else {
        return (0, 0, 0);
    };
    tokio::spawn(conn);
    let row = client
        .query_one(
            &format!(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT, \
                 (SELECT COUNT(*) FROM \"{0}\".claims), \
                 (SELECT COALESCE(MAX(change_seq), 0) FROM \"{0}\".claims) \
                 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = '{0}' AND c.relkind = 'r' AND c.relname NOT LIKE 'p0\\_%'",
                db.schema
            ),
            &[],
        )
        .await;
    match row {
        Ok(r) => (r.get(0), r.get(1), r.get::<_, i64>(2).max(0) as u64),
        Err(e) => {
            eprintln!("database size: {e}");
            (0, 0, 0)
        }
    }
}

/// ListChangedClaims through the store, pages of 500 from `from`, until
/// `changes` have been read: (changes read, seconds).
pub async fn page_changes(store: &Arc<dyn Store>, from: u64, changes: u64) -> (u64, f64) {
    let t0 = Instant::now();
    let (mut read, mut cursor) = (0u64, from);
    while read < changes {
        let page = store
            .list_changed("CNSS", cursor, 500)
            .await
            .expect("list_changed on the seeded store");
        let Some(last) = page.last() else { break };
        cursor = last.change_seq;
        read += page.len() as u64;
    }
    (read, t0.elapsed().as_secs_f64())
}

/// Retention pruning the seeded year's month `k` (0 the first; the
/// months before it pruned by the earlier rounds): the rows of its claims
/// still open kept, its partition detached and its files freed. (rows
/// pruned, seconds).
pub async fn prune_month(store: &Arc<dyn Store>, k: usize) -> (u64, f64) {
    let t0 = Instant::now();
    let n = store
        .prune_audit(MONTH_ENDS_MS[k])
        .await
        .expect("prune on the seeded store")
        .unwrap_or(0);
    (n, t0.elapsed().as_secs_f64())
}

/// A large statement exported by pages through the broker (gRPC, as
/// `passerelle statement export` reads it), with the broker's memory, and
/// the same statement read whole from the store as before pages, with this
/// process's.
pub struct Export {
    /// The month's close (the store's `close_period`): its number, its
    /// claims, and how long it took.
    pub number: u32,
    pub closed_claims: u32,
    pub close_secs: f64,
    pub lines: u64,
    pub pages: u64,
    pub secs: f64,
    /// The broker's RSS before the export, and its peak during it: a
    /// broker in a process of its own on the seeded store
    /// (`child::ChildBroker`), so that the figure is the broker's alone.
    pub rss_before_mib: f64,
    pub peak_mib: f64,
    /// The peak while the store read the whole statement at once (in this
    /// process), or why it could not (at millions of lines it outlasts the
    /// statement timeout: what pages are for).
    pub whole_peak_mib: Result<f64, String>,
    /// The same statement downloaded from the console (CSV, workbook),
    /// from a broker of its own: filled in by the caller.
    pub console: Option<crate::console::ConsoleExports>,
    /// The month's remittance advice once settled: filled in by the caller.
    pub remittance: Option<Result<Remittance, String>>,
}

/// Closes [`LARGE`]'s month (the seeded year's months after the settled
/// ones, as one period: a statement larger than a month's can be) and
/// exports its statement through `channel`, a
/// broker in process `broker_pid`, by pages of 5,000 lines (each page
/// decoded by the client, then dropped), then reads it whole from `store`.
pub async fn export_statement(
    channel: tonic::transport::Channel,
    broker_pid: u32,
    store: &Arc<dyn Store>,
) -> Export {
    use crate::load::{peak_rss_kib, reset_peak_rss, rss_kib};
    use passerelle_proto::settlement::v1 as pb;
    let t0 = Instant::now();
    let closed = store
        .close_period(
            "CNSS",
            LARGE,
            &passerelle_broker::store::CloseUpTo::everything(),
            passerelle_broker::audit::now_ms(),
            None,
        )
        .await
        .expect("the month closed");
    let close_secs = t0.elapsed().as_secs_f64();
    let mut client = pb::settlement_service_client::SettlementServiceClient::new(channel);
    let broker = Some(broker_pid);
    let rss_before_mib = rss_kib(broker) as f64 / 1024.0;
    reset_peak_rss(broker);
    let t0 = Instant::now();
    let mut request = pb::GetStatementRequest {
        scheme_id: "CNSS".into(),
        mutuelle_id: LARGE.into(),
        number: closed.number,
        page_size: 5_000,
        page_token: String::new(),
    };
    let (mut lines, mut pages) = (0u64, 0u64);
    loop {
        let page = client
            .get_statement(request.clone())
            .await
            .expect("a statement page")
            .into_inner();
        pages += 1;
        lines += page
            .payees
            .iter()
            .map(|p| p.lines.len() as u64)
            .sum::<u64>();
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let secs = t0.elapsed().as_secs_f64();
    let peak_mib = peak_rss_kib(broker) as f64 / 1024.0;
    reset_peak_rss(None);
    let whole_peak_mib = match store.statement("CNSS", LARGE, closed.number).await {
        Ok(whole) => {
            drop(whole);
            Ok(peak_rss_kib(None) as f64 / 1024.0)
        }
        Err(e) => Err(e.to_string()),
    };
    Export {
        number: closed.number,
        console: None,
        remittance: None,
        closed_claims: closed.claim_count,
        close_secs,
        lines,
        pages,
        secs,
        rss_before_mib,
        peak_mib,
        whole_peak_mib,
    }
}

/// The closed month's remittance advice once it is settled, through the
/// broker (gRPC, as `passerelle statement remittance` reads it): every
/// payee's totals by pages, then the largest payee's advice with its
/// lines and FHIR resource, with the broker's peak memory.
pub struct Remittance {
    /// Payees listed, in how many pages, and how long it took.
    pub payees: u64,
    pub pages: u64,
    pub totals_secs: f64,
    /// Whether the payees' amounts add up to the period's net due.
    pub ties_out: bool,
    /// The largest payee (by claims) whose advice is within its bound of
    /// lines: its id, lines, and how long its advice took; the FHIR
    /// resource's size.
    pub payee: String,
    /// Larger payees whose advice was refused, past its bound of lines
    /// (the service's `MAX_PAYEE_LINES`), with their claims and the
    /// broker's peak MiB while it read them and refused.
    pub past_bound: Vec<(String, u32, f64)>,
    pub payee_lines: u64,
    pub payee_secs: f64,
    pub fhir_bytes: u64,
    /// The payee's whole answer, encoded.
    pub answer_bytes: u64,
    pub peak_mib: f64,
}

impl Remittance {
    pub fn line(&self) -> String {
        let past = if self.past_bound.is_empty() {
            String::new()
        } else {
            format!(
                "; larger, refused past the advice's bound of lines as documented (to be read by the statement's pages): {}",
                self.past_bound
                    .iter()
                    .map(|(p, n, mib)| {
                        format!("{p} of {n} claims, the broker's peak meanwhile {mib:.0} MiB")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "remittance advice of the month, settled: {} payees' totals by {} pages of 1,000 in {:.2} s ({}); the largest payee within the bound, {}: its advice of {} lines with its FHIR PaymentReconciliation ({:.1} MiB; the answer {:.1} MiB) in {:.2} s, the broker's peak {:.0} MiB = {:.2} x the 100 MiB limit{past}",
            self.payees,
            self.pages,
            self.totals_secs,
            if self.ties_out {
                "their amounts add up to the net due"
            } else {
                "their amounts DO NOT add up to the net due"
            },
            self.payee,
            self.payee_lines,
            self.fhir_bytes as f64 / 1048576.0,
            self.answer_bytes as f64 / 1048576.0,
            self.payee_secs,
            self.peak_mib,
            self.peak_mib / 100.0
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "payees": self.payees,
            "pages": self.pages,
            "totals_secs": (self.totals_secs * 1000.0).round() / 1000.0,
            "ties_out": self.ties_out,
            "payee": self.payee,
            "payees_past_bound": self.past_bound,
            "payee_lines": self.payee_lines,
            "payee_secs": (self.payee_secs * 1000.0).round() / 1000.0,
            "fhir_bytes": self.fhir_bytes,
            "answer_bytes": self.answer_bytes,
            "broker_peak_rss_mib": self.peak_mib.round(),
        })
    }
}

/// Payees past the advice's bound tried before the run gives up.
const MAX_PAST_BOUND: usize = 5;

/// Settles [`LARGE`]'s closed month `number` in `store` (the benchmark's
/// set-up, as its close is: no second person) and reads its remittance
/// advice through `channel`, a broker in process `broker_pid`: the payees'
/// totals by pages of 1,000, then the largest payee's advice. An answer
/// refused or failed is the error.
pub async fn remittance_advice(
    channel: tonic::transport::Channel,
    broker_pid: u32,
    store: &Arc<dyn Store>,
    number: u32,
) -> Result<Remittance, String> {
    use crate::load::{peak_rss_kib, reset_peak_rss};
    use passerelle_proto::settlement::v1 as pb;
    let period = store
        .settle_period(
            "CNSS",
            LARGE,
            number,
            "VIR-BENCH",
            passerelle_broker::audit::now_ms(),
            None,
        )
        .await
        .map_err(|e| format!("settling the month: {e}"))?;
    // A payee's advice of tens of thousands of lines is past the default 4
    // MiB a message: an integrator raises the limit, as the CLI does.
    let mut client = pb::settlement_service_client::SettlementServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024);
    let broker = Some(broker_pid);
    reset_peak_rss(broker);
    let t0 = Instant::now();
    let mut ask = pb::GetRemittanceAdviceRequest {
        scheme_id: "CNSS".into(),
        mutuelle_id: LARGE.into(),
        number,
        totals_only: true,
        page_size: 1_000,
        ..Default::default()
    };
    let (mut pages, mut net) = (0u64, 0i64);
    let mut all = Vec::new();
    loop {
        let r = client
            .get_remittance_advice(ask.clone())
            .await
            .map_err(|s| format!("the payees' totals: {}", s.message()))?
            .into_inner();
        pages += 1;
        for a in r.payees {
            net += a.amount;
            all.push((a.claim_count, a.payee_type, a.payee_id));
        }
        if r.next_page_token.is_empty() {
            break;
        }
        ask.page_token = r.next_page_token;
    }
    let totals_secs = t0.elapsed().as_secs_f64();
    let payees = all.len() as u64;
    // The largest payees first: one past the advice's bound of lines is
    // refused as documented (FAILED_PRECONDITION, pointing to the
    // statement's pages) and counted; the largest within it is measured.
    all.sort_by_key(|a| std::cmp::Reverse(a.0));
    let mut past_bound = Vec::new();
    let (one, payee_secs, largest) = loop {
        let Some(largest) = all.get(past_bound.len()).cloned() else {
            return Err("every payee's advice was refused".into());
        };
        // Each payee's read its own peak: a refused one reads past the
        // bound's lines before it is refused.
        reset_peak_rss(broker);
        let t0 = Instant::now();
        let r = client
            .get_remittance_advice(pb::GetRemittanceAdviceRequest {
                scheme_id: "CNSS".into(),
                mutuelle_id: LARGE.into(),
                number,
                payee_type: largest.1.clone(),
                payee_id: largest.2.clone(),
                ..Default::default()
            })
            .await;
        match r {
            Ok(one) => break (one.into_inner(), t0.elapsed().as_secs_f64(), largest),
            Err(s)
                if s.code() == tonic::Code::FailedPrecondition
                    && s.message().contains("has more than")
                    && past_bound.len() < MAX_PAST_BOUND =>
            {
                past_bound.push((
                    largest.2.clone(),
                    largest.0,
                    peak_rss_kib(broker) as f64 / 1024.0,
                ));
            }
            Err(s) => return Err(format!("the advice of {}: {}", largest.2, s.message())),
        }
    };
    let answer_bytes = prost::Message::encoded_len(&one) as u64;
    let a = one
        .payees
        .first()
        .ok_or_else(|| format!("no advice for {}", largest.2))?;
    if a.claim_count != largest.0 {
        return Err(format!(
            "{}: {} claims in its advice, {} in the totals",
            largest.2, a.claim_count, largest.0
        ));
    }
    Ok(Remittance {
        payees,
        pages,
        totals_secs,
        ties_out: net == period.net_due(),
        payee: largest.2.clone(),
        past_bound,
        payee_lines: a.lines.len() as u64,
        payee_secs,
        fhir_bytes: a.fhir_payment_reconciliation.len() as u64,
        answer_bytes,
        peak_mib: peak_rss_kib(broker) as f64 / 1024.0,
    })
}

/// Live claims while retention prunes a month, and as many just before
/// when it does not: one round.
pub struct PruningRound {
    /// Audit rows pruned, and how long the pass took.
    pub pruned: u64,
    pub secs: f64,
    /// Calls sent while pruning ran (idle: the bench's seconds' worth, at
    /// least 200, before).
    pub calls: u64,
    pub idle: crate::load::Latency,
    pub during: crate::load::Latency,
    /// CPU milliseconds the hypervisor took in each window, idle and
    /// while pruning (`None` where /proc could not be read).
    pub idle_steal_ms: Option<f64>,
    pub during_steal_ms: Option<f64>,
}

/// Live claims while retention prunes, in rounds of [`PruningRound`], a
/// month each ([`SETTLED_MONTHS`]).
pub struct LiveDuringPruning {
    /// Claims per second offered (open loop).
    pub rate: f64,
    pub rounds: Vec<PruningRound>,
}

impl LiveDuringPruning {
    /// The target's figure: the median of the windows' p99 while pruning
    /// over the median of the idle windows' (limit 2). Each window counts
    /// once, as in [`OpenLoops::p99_median_ratio`]: a window's
    /// p99 is its slowest 1 % of calls, which one stall of the host (or of
    /// its file system) sets, in a pass's window or an idle one.
    pub fn p99_median_ratio(&self) -> f64 {
        let median = |f: fn(&PruningRound) -> &crate::load::Latency| {
            crate::load::median(
                &self
                    .rounds
                    .iter()
                    .map(|r| f(r).p99_us as f64)
                    .collect::<Vec<_>>(),
            )
        };
        median(|r| &r.during) / median(|r| &r.idle).max(1.0)
    }

    /// Audit rows pruned over all rounds, and the passes' seconds.
    pub fn pruned(&self) -> (u64, f64) {
        self.rounds
            .iter()
            .fold((0, 0.0), |(n, s), r| (n + r.pruned, s + r.secs))
    }
}

/// Open loops at one rate on both stores, in eligibility's rounds: the
/// nearly empty store's before the first round and after each (one more
/// than the seeded store's), the seeded store's one a round between two of
/// them.
#[derive(Default)]
pub struct OpenLoops {
    /// The rate's fraction of the nearly empty store's first saturation
    /// ([`HALF`], [`LOW`]), and the calls per second offered.
    pub fraction: f64,
    pub rate: f64,
    pub empty: Vec<crate::load::Latency>,
    pub scale: Vec<crate::load::Latency>,
    /// CPU milliseconds the hypervisor took during each open loop, the
    /// empty store's and the seeded store's (`None` where /proc could not
    /// be read): a round whose p99 stalled with them was the host's.
    pub empty_steal_ms: Vec<Option<f64>>,
    pub scale_steal_ms: Vec<Option<f64>>,
}

impl OpenLoops {
    /// At `fraction` of the nearly empty store's first saturation,
    /// `first_rps` (one call a second at least).
    pub fn new(first_rps: f64, fraction: f64) -> Self {
        Self {
            fraction,
            rate: (first_rps * fraction).max(1.0),
            ..Self::default()
        }
    }

    /// The rate as a person reads it.
    pub fn label(&self) -> String {
        format!(
            "{:.0} % of the nearly empty store's first saturation",
            self.fraction * 100.0
        )
    }

    /// The target's figure at this rate: the median of the empty store's open-loop
    /// p99s over the median of the seeded store's (below 1 when the seeded
    /// store answers later). Each window counts once, so a stall moves one
    /// value of one median; in the rounds' ratios ([`Self::p99_ratios`])
    /// a stalled empty window enters the two rounds around it, and two
    /// such windows carry the rounds' median (a 10-million run of 5
    /// December: rounds' median 2.70 from two stalled empty windows, the
    /// medians' ratio 0.71).
    pub fn p99_median_ratio(&self) -> f64 {
        median_p99(&self.empty) / median_p99(&self.scale).max(1.0)
    }

    /// Each round's mean of the empty store's p99 either side over the
    /// seeded store's p99 (below 1 when the seeded store answers later).
    pub fn p99_ratios(&self) -> Vec<f64> {
        self.scale
            .iter()
            .zip(self.empty.windows(2))
            .map(|(s, e)| (e[0].p99_us + e[1].p99_us) as f64 / 2.0 / s.p99_us.max(1) as f64)
            .collect()
    }

    /// Calls the open loops shed, seeded store's and empty store's.
    pub fn shed(&self) -> (u64, u64) {
        shed(&self.empty, &self.scale)
    }

    /// Calls that failed in these open loops, both stores'.
    pub fn errors(&self) -> u64 {
        errors(&self.empty, &self.scale)
    }
}

/// The median of some windows' p99s.
fn median_p99(v: &[crate::load::Latency]) -> f64 {
    crate::load::median(&v.iter().map(|l| l.p99_us as f64).collect::<Vec<_>>())
}

/// Calls shed in two stores' windows: the seeded store's, then the nearly
/// empty store's (the order they are printed in).
fn shed(empty: &[crate::load::Latency], scale: &[crate::load::Latency]) -> (u64, u64) {
    let sum = |v: &[crate::load::Latency]| v.iter().map(|l| l.shed).sum();
    (sum(scale), sum(empty))
}

/// Calls that failed in two stores' windows, both stores'.
fn errors(empty: &[crate::load::Latency], scale: &[crate::load::Latency]) -> u64 {
    empty.iter().chain(scale).map(|l| l.errors).sum()
}

/// Both stores' latency in rounds, each round's two figures measured
/// together (in one loop, or in one round's interleaved windows): a
/// round's ratio is already paired.
#[derive(Default)]
pub struct Rounds {
    pub empty: Vec<crate::load::Latency>,
    pub scale: Vec<crate::load::Latency>,
}

impl Rounds {
    pub fn push(&mut self, empty: crate::load::Latency, scale: crate::load::Latency) {
        self.empty.push(empty);
        self.scale.push(scale);
    }

    /// `f(empty, seeded)` of each round.
    fn each(&self, f: impl Fn(&crate::load::Latency, &crate::load::Latency) -> f64) -> Vec<f64> {
        self.empty
            .iter()
            .zip(&self.scale)
            .map(|(e, s)| f(e, s))
            .collect()
    }

    /// Each round's empty store's p99 over the seeded store's (below 1
    /// when the seeded store answers later).
    pub fn p99_ratios(&self) -> Vec<f64> {
        self.each(|e, s| e.p99_us as f64 / s.p99_us.max(1) as f64)
    }

    /// The rounds' median of [`Self::p99_ratios`].
    pub fn p99_rounds_median(&self) -> f64 {
        crate::load::median(&self.p99_ratios())
    }

    /// The median of the empty store's p99s over the median of the seeded
    /// store's: the statistic of the target's figure
    /// ([`OpenLoops::p99_median_ratio`]).
    pub fn p99_medians_ratio(&self) -> f64 {
        median_p99(&self.empty) / median_p99(&self.scale).max(1.0)
    }

    /// Each round's p50 ratio, their median.
    pub fn p50_ratio(&self) -> f64 {
        crate::load::median(&self.each(|e, s| e.p50_us as f64 / s.p50_us.max(1) as f64))
    }

    /// How much later the seeded store's p99 is than the empty store's in
    /// the same round, µs (negative: sooner), the rounds' median.
    pub fn p99_later_us(&self) -> f64 {
        crate::load::median(&self.each(|e, s| s.p99_us as f64 - e.p99_us as f64))
    }

    /// Calls shed, the seeded store's and the empty store's.
    pub fn shed(&self) -> (u64, u64) {
        shed(&self.empty, &self.scale)
    }

    /// The rounds' figures as the benchmark's JSON gives them, each way of
    /// pairing them (a loop's own figure is added by its caller).
    pub fn json(&self) -> serde_json::Value {
        let p99s = |v: &[crate::load::Latency]| v.iter().map(|l| l.p99_us).collect::<Vec<_>>();
        serde_json::json!({
            "p99_us_empty": p99s(&self.empty),
            "p99_us_scale": p99s(&self.scale),
            "p99_ratios": self.p99_ratios(),
            "p99_rounds_median": self.p99_rounds_median(),
            "p99_medians_ratio": self.p99_medians_ratio(),
            "p99_later_us": self.p99_later_us(),
            "p50_ratio": self.p50_ratio(),
            "shed_scale_empty": self.shed(),
        })
    }

    pub fn errors(&self) -> u64 {
        errors(&self.empty, &self.scale)
    }
}

/// Both stores in one open loop, a round's window each: calls dealt in
/// turn to the nearly empty store and to the seeded one
/// ([`crate::load::open_loop_lanes`]), at [`HALF`] the nearly empty
/// store's first saturation in all (a quarter each). Each store's calls
/// meet the same moments of the host: a stall lands in both stores' p99,
/// where in [`OpenLoops`] it lands in one window of one store. What this
/// does not measure: the capacity a year's data costs (the rate ratio's),
/// since the seeded store's extra work per call delays the nearly empty
/// store's calls as much as its own; and both stores' calls wait in the
/// same queues (the cores, the pacer, the database), which at p99 are
/// milliseconds against the tens of microseconds of database CPU a
/// seeded call costs more, pulling the p99 ratio towards 1. So its p99
/// ratio is not the target's figure; what it shows is how much later a
/// seeded call answers than a nearly empty store's call sent beside it,
/// read also at p50 and as the p99s' difference. Its figure is the
/// rounds' median ([`Rounds::p99_rounds_median`]). Its sheds: the loop's
/// waiting calls are shared, so a store's sheds may be the other's
/// slowness.
#[derive(Default)]
pub struct PairedLoops {
    /// Calls per second offered, both stores together.
    pub rate: f64,
    pub rounds: Rounds,
    /// CPU milliseconds the hypervisor took during each window.
    pub steal_ms: Vec<Option<f64>>,
}

/// Each store alone, in short windows taken in turn: a round is
/// [`IN_TURN_WINDOWS`] windows of each store at [`HALF`] the nearly empty
/// store's first saturation, in the order [`in_turn_order`] gives, each
/// window's calls all answered before the next begins; each store's calls
/// of a round counted as one ([`crate::load::Pooled`]), as many as a
/// window of [`OpenLoops`]. Each store is loaded alone at one rate, as in
/// [`OpenLoops`], with its windows cut short and interleaved: a drift of
/// the host over more than a short window lands in both stores' calls,
/// where [`OpenLoops`]' windows of seconds each meet their own; and unlike
/// [`PairedLoops`] no store's calls wait behind the other's. Its figure
/// is the target's statistic ([`Rounds::p99_medians_ratio`]), the rounds'
/// median beside it.
#[derive(Default)]
pub struct InTurnLoops {
    /// Calls per second offered to the store whose window it is.
    pub rate: f64,
    /// Each round's calls of each store, pooled over its windows.
    pub rounds: Rounds,
    /// CPU milliseconds the hypervisor took during each round's windows,
    /// the nearly empty store's and the seeded store's, summed.
    pub empty_steal_ms: Vec<Option<f64>>,
    pub scale_steal_ms: Vec<Option<f64>>,
}

/// Short windows of each store a round in [`InTurnLoops`]: ten, each a
/// tenth of a window of [`OpenLoops`] (half a second at the default five
/// seconds). Even, so that [`in_turn_order`]'s pairs balance.
pub const IN_TURN_WINDOWS: usize = 10;
const _: () = assert!(IN_TURN_WINDOWS.is_multiple_of(2));

/// The order of a round's `2 * windows` short windows, `true` for the
/// seeded store's: in pairs, each pair the other way round from the one
/// before (A B, B A, A B, ...), so that, for an even number of windows,
/// both stores' windows sit at the same mean position in the round and a
/// steady drift of the host favours neither; a round starting with the
/// seeded store's (`seeded_first`) swaps every pair.
pub fn in_turn_order(windows: usize, seeded_first: bool) -> Vec<bool> {
    (0..2 * windows)
        .map(|i| ((i / 2) % 2 == 1) ^ (i % 2 == 1) ^ seeded_first)
        .collect()
}

/// Eligibility on the nearly empty store and on the seeded one: saturation,
/// and latency at the same rates on both, in rounds that alternate the two
/// stores (`eligibility_rounds` in main.rs): the host's speed drifts within
/// minutes by more than the figures sought.
pub struct EligibilityAtScale {
    /// The nearly empty store's saturation before the first round and
    /// after each (one more than the seeded store's).
    pub empty_rps: Vec<f64>,
    /// CPU per call in each saturation window: (database, this process),
    /// in µs; the empty store's, then the seeded store's. `None` where
    /// /proc could not be read.
    pub empty_cpu: Vec<Option<(f64, f64)>>,
    pub scale_cpu: Vec<Option<(f64, f64)>>,
    /// The seeded store's, one a round, between two of the empty store's.
    pub scale_rps: Vec<f64>,
    /// The open loops at half the empty store's first saturation
    /// ([`HALF`]): the store loaded, so that its extra work per call
    /// queues.
    pub half: OpenLoops,
    /// The open loops at a fifth of it ([`LOW`]): the seeded store at
    /// about a fifth of its own saturation, its latency with little
    /// queueing.
    pub low: OpenLoops,
    /// Both stores in one open loop at half in all, a window a round.
    pub paired: PairedLoops,
    /// Each store alone at half, in short windows taken in turn, a round's
    /// worth a round.
    pub in_turn: InTurnLoops,
    /// Calls refused by the broker's bounds over all measured windows, not
    /// the warm-ups (as `answered`
    /// in main.rs counts them): the broker failing fast as documented, not
    /// failed calls.
    pub refused: u64,
    /// Checkpoints begun during each round (the first round with the
    /// empty store's first windows), after a requested one before them, as
    /// PostgreSQL reports them (its counters may lag a little);
    /// `None` where they could not be counted.
    pub checkpoints: Vec<Option<i64>>,
    /// pgbench running the same database work on the seeded store.
    pub engine: crate::postgres::EngineEligibility,
    /// What was warmed before the rounds: into shared buffers where they
    /// hold it twice over, else into the page cache
    /// ([`crate::postgres::warm`]); `None` if it could not be.
    pub warmed: Option<crate::postgres::Warmed>,
}

/// The open loops' rates, as fractions of the nearly empty store's first
/// saturation. Half loads the store: in the twenty-third part's four
/// 10-million runs (docs/PERFORMANCE.md) it put the seeded store at 45 to
/// 70 % of its own saturation, where queueing multiplies the seeded
/// store's extra database CPU per call (139 to 149 µs against 100 to 117),
/// so that the p99 ratio carries the capacity the rate ratio already
/// measures. A fifth is two fifths of half: 18 to 28 % in the same runs,
/// the latency of a year's data with little queueing.
pub const HALF: f64 = 0.5;
pub const LOW: f64 = 0.2;

impl EligibilityAtScale {
    /// Each round's seeded rate over the mean of the empty store's either
    /// side.
    pub fn rate_ratios(&self) -> Vec<f64> {
        self.scale_rps
            .iter()
            .zip(self.empty_rps.windows(2))
            .map(|(s, e)| s / ((e[0] + e[1]) / 2.0).max(1e-9))
            .collect()
    }

    /// The median CPU per call at saturation, (database, this process) in
    /// µs, of the seeded store's windows and of the empty store's; `None`
    /// where a window's could not be read.
    pub fn cpu_us(&self) -> [Option<(f64, f64)>; 2] {
        let median = |v: &[Option<(f64, f64)>]| {
            let v: Vec<(f64, f64)> = v.iter().copied().collect::<Option<_>>()?;
            (!v.is_empty()).then(|| {
                let (db, own): (Vec<f64>, Vec<f64>) = v.into_iter().unzip();
                (crate::load::median(&db), crate::load::median(&own))
            })
        };
        [median(&self.scale_cpu), median(&self.empty_cpu)]
    }

    /// `rate` as a share of the seeded store's median saturation.
    pub fn seeded_share(&self, rate: f64) -> f64 {
        rate / crate::load::median(&self.scale_rps).max(1e-9)
    }
}

/// The version the seeded store is taken back to before [`remigrate`]: the
/// migrations after it (12: ceiling holds, two columns on every ceiling
/// row, their CHECKs validated after the commit, and the prior
/// authorizations' table; 13: opening
/// balances; 14: an index on an empty table; 15: the refusal function; 16:
/// the periods' totals, then the statement's index over every claim,
/// built concurrently after they commit; 17: the products' generation,
/// its table, function and trigger; 18: the audit log by month, a rename
/// of the table written so far and a new partitioned one; then the
/// claims' key with their state and period, built concurrently in place
/// of the key's constraint; 19: a column on the periods, then the index of
/// the claims coordinated in no closed period, built concurrently; 20: the
/// stays' act counts moved to their own scope, a read of every ceiling row
/// and of every claim's consumption, of which the seeded store has none to
/// move; 21: a column with a constant default on the console's accounts)
/// are the last ones of a release, the kind an upgrade applies.
const MIGRATED_FROM: i64 = 11;

/// What undoing them takes (the seeded store holds no hold, authorization
/// or opening balance: nothing is lost; the large mutuelle's closed month
/// loses its stored totals, which are then added up when read, as for a
/// period closed before migration 16). Undoing 18 drops the months'
/// partitions with their rows (the year's audit, already measured): the
/// table written before them becomes the audit log again, which 18 renames
/// without reading a row, whatever it holds. Migration 20 moved no row
/// here (no act limit per stay is seeded): its version is enough.
const UNDO: &str = "ALTER TABLE users DROP COLUMN password_set_ms;
ALTER TABLE users DROP COLUMN must_change;
DROP INDEX claims_open;
ALTER TABLE periods DROP COLUMN first_created_ms;
ALTER TABLE claims ADD CONSTRAINT claims_scheme_id_claim_id_key UNIQUE (scheme_id, claim_id);
DROP INDEX claims_key;
DROP VIEW audit_all;
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_kept.id;
DROP TABLE audit_log;
ALTER TABLE audit_kept RENAME TO audit_log;
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
DROP TRIGGER products_changed ON products;
DROP FUNCTION passerelle_products_changed();
DROP TABLE product_generation;
CREATE INDEX claims_settlement ON claims (scheme_id, mutuelle_id, period_id, state);
DROP INDEX claims_statement;
ALTER TABLE periods DROP COLUMN claim_count, DROP COLUMN billed_total, DROP COLUMN scheme_total,
    DROP COLUMN mutuelle_total, DROP COLUMN recoveries_total;
DROP FUNCTION passerelle_refuse(INT);
DROP TABLE opening_balances;
DROP TABLE prior_authorizations;
ALTER TABLE ceiling_usage DROP COLUMN held_amount, DROP COLUMN held_count;
DELETE FROM schema_version WHERE version > 11;";

/// The migrations after [`MIGRATED_FROM`] applied to the seeded data as an
/// upgrade would (`PgStore::migrate`, one transaction), while a writer
/// updates one seeded ceiling row and one seeded claim every 2 ms, as each
/// claim's outcome does.
pub struct Migrations {
    pub from: i64,
    pub to: i64,
    pub secs: f64,
    /// Rows of the ceiling table, which migration 12 alters (migration 20
    /// reads it and `claim_consumption`).
    pub ceiling_rows: i64,
    pub writes: u64,
    /// The writer's longest write of a ceiling row: how long the
    /// migrations held ceiling writers.
    pub longest_write_ms: f64,
    /// The same for a claim's row.
    pub longest_claim_write_ms: f64,
    /// Writes that failed (the writer gives up after 60 s).
    pub failed: u64,
    /// Whether the claims' key constraint was still there after the
    /// migrate (`claims_key` replaces it unless the table stayed busy past
    /// the lock's wait); `None` if it could not be read.
    pub key_constraint_kept: Option<bool>,
    pub error: Option<String>,
}

pub async fn remigrate(db: &BenchDb) -> Migrations {
    let mut out = Migrations {
        from: MIGRATED_FROM,
        to: 0,
        secs: 0.0,
        ceiling_rows: 0,
        writes: 0,
        longest_write_ms: 0.0,
        longest_claim_write_ms: 0.0,
        failed: 0,
        key_constraint_kept: None,
        error: None,
    };
    // The undo is written for these migrations: a later one must be added
    // to it first.
    if passerelle_broker::store::postgres::SCHEMA_VERSION != 22 {
        out.error = Some(format!(
            "the undo knows migrations 12 to 22, the schema has {}: extend UNDO",
            passerelle_broker::store::postgres::SCHEMA_VERSION
        ));
        return out;
    }
    // The writer and its row, before anything is undone.
    let Ok((client, conn)) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await else {
        out.error = Some("the writer could not connect".into());
        return out;
    };
    tokio::spawn(conn);
    let setup = format!(
        "SET search_path TO \"{}\"; SET lock_timeout = '60s'",
        db.schema
    );
    let row = match client.batch_execute(&setup).await {
        Ok(()) => {
            client
                .query_opt(
                    "SELECT COUNT(*) OVER (), mutuelle_id, ceiling_key, \
                     (SELECT MIN(id) FROM claims) FROM ceiling_usage LIMIT 1",
                    &[],
                )
                .await
        }
        Err(e) => Err(e),
    };
    let (rows, mutuelle, key, claim): (i64, String, String, i64) = match row {
        Ok(Some(r)) => match (r.try_get(0), r.try_get(1), r.try_get(2), r.try_get(3)) {
            (Ok(n), Ok(m), Ok(k), Ok(c)) => (n, m, k, c),
            _ => {
                out.error = Some("writer: unreadable ceiling row".into());
                return out;
            }
        },
        Ok(None) => {
            out.error = Some("writer: no ceiling row seeded".into());
            return out;
        }
        Err(e) => {
            out.error = Some(format!("writer: {e}"));
            return out;
        }
    };
    let undone = admin(
        db,
        &[format!("SET search_path TO \"{}\";\n{UNDO}", db.schema)],
    )
    .await;
    if let Some(e) = undone.first() {
        // One transaction: nothing was undone.
        out.error = Some(format!("undoing migrations 12 to 20: {e}"));
        return out;
    }
    out.ceiling_rows = rows;
    // The claim's writer on a connection of its own: one writer of both
    // would show only the first lock it waits for.
    let claims_client = match tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
        Ok((c, conn)) => {
            tokio::spawn(conn);
            match c.batch_execute(&setup).await {
                Ok(()) => c,
                Err(e) => {
                    out.error = Some(format!("claim writer: {e}"));
                    return out;
                }
            }
        }
        Err(e) => {
            out.error = Some(format!("claim writer: {e}"));
            return out;
        }
    };
    let (done, until) = tokio::sync::watch::channel(false);
    let ceilings = writer(
        client,
        "UPDATE ceiling_usage SET used_count = used_count WHERE mutuelle_id = $1 AND ceiling_key = $2",
        vec![Box::new(mutuelle), Box::new(key)],
        until.clone(),
    );
    let claims = writer(
        claims_client,
        "UPDATE claims SET updated_ms = updated_ms WHERE id = $1",
        vec![Box::new(claim)],
        until,
    );
    let store = crate::postgres::pg_store(db);
    let t0 = Instant::now();
    let migrated = store.migrate().await;
    out.secs = t0.elapsed().as_secs_f64();
    let _ = done.send(true);
    match migrated {
        Ok(v) => out.to = v,
        Err(e) => out.error = Some(format!("migrate: {e}")),
    }
    if let Ok((c, conn)) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        out.key_constraint_kept = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint \
                 WHERE conname = 'claims_scheme_id_claim_id_key' \
                 AND connamespace = $1::TEXT::regnamespace)",
                &[&db.schema],
            )
            .await
            .map(|r| r.get(0))
            .ok();
    }
    for (w, longest) in [
        (ceilings.await, &mut out.longest_write_ms),
        (claims.await, &mut out.longest_claim_write_ms),
    ] {
        if let Ok((writes, failed, ms)) = w {
            out.writes += writes;
            out.failed += failed;
            *longest = ms;
        }
    }
    out
}

/// Runs `sql` with `params` every 2 ms on `client` until `until` turns
/// true: (writes, failed writes, the longest in ms).
fn writer(
    client: tokio_postgres::Client,
    sql: &'static str,
    params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
    mut until: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(u64, u64, f64)> {
    tokio::spawn(async move {
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let (mut writes, mut failed, mut longest) = (0u64, 0u64, 0f64);
        loop {
            let t = Instant::now();
            let r = client.execute(sql, &refs).await;
            longest = longest.max(t.elapsed().as_secs_f64() * 1e3);
            writes += 1;
            failed += u64::from(r.is_err());
            if *until.borrow() {
                return (writes, failed, longest);
            }
            // The writer's pace, not a wait for readiness: the end is the
            // signal above.
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(2), until.changed()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_domain::date;

    /// A round's ratio is of its own two p99s (one window's, or one
    /// round's interleaved windows'): one stalled round moves one ratio,
    /// in both stores alike. The rounds' median and the medians' ratio
    /// (the target's statistic) are both read.
    #[test]
    fn rounds_compare_their_own_two_p99s() {
        let l = |p99_us| crate::load::Latency {
            p50_us: p99_us / 2,
            p99_us,
            ..Default::default()
        };
        let mut rounds = Rounds::default();
        for (e, s) in [(4_000, 5_000), (90_000, 100_000), (3_000, 3_000)] {
            rounds.push(l(e), l(s));
        }
        assert_eq!(rounds.p99_ratios(), vec![0.8, 0.9, 1.0]);
        assert_eq!(rounds.p99_rounds_median(), 0.9);
        assert_eq!(rounds.p99_medians_ratio(), 0.8);
        assert_eq!(rounds.p99_later_us(), 1_000.0);
        assert_eq!(rounds.p50_ratio(), 0.9);
        let json = rounds.json();
        assert_eq!(
            json["p99_us_scale"],
            serde_json::json!([5_000, 100_000, 3_000])
        );
        assert_eq!(json["p99_medians_ratio"], serde_json::json!(0.8));
        assert_eq!(json["shed_scale_empty"], serde_json::json!([0, 0]));
        assert_eq!(Rounds::default().p99_rounds_median(), 0.0);
        assert_eq!(Rounds::default().p99_medians_ratio(), 0.0);
    }

    /// A round's short windows go in pairs, each pair the other way round
    /// (A B B A A B ...), as many of each store; a round that starts with
    /// the seeded store's swaps every pair. Each store's windows sit at
    /// the same mean position in the round, so that a steady drift of the
    /// host favours neither.
    #[test]
    fn short_windows_alternate_in_pairs_each_the_other_way_round() {
        let (e, s) = (false, true);
        assert_eq!(in_turn_order(3, false), vec![e, s, s, e, e, s]);
        assert_eq!(in_turn_order(3, true), vec![s, e, e, s, s, e]);
        let order = in_turn_order(IN_TURN_WINDOWS, false);
        let at = |store: bool| -> usize {
            order
                .iter()
                .enumerate()
                .filter(|&(_, &o)| o == store)
                .map(|(i, _)| i)
                .sum()
        };
        assert_eq!(order.iter().filter(|&&o| o).count(), IN_TURN_WINDOWS);
        assert_eq!(at(true), at(false));
    }

    /// Eligibility at scale asks about a day of the seeded year, the year
    /// the seeded claims' times span and their ceiling keys name: a seeded
    /// member's check then finds its year's usage row.
    #[test]
    fn eligibility_asks_about_the_seeded_year() {
        let first = date::parse(&format!("{YEAR}-01-01")).expect("the seeded year");
        let epoch = date::parse("1970-01-01").expect("the epoch");
        let start_days = i64::from(first.to_julian_day() - epoch.to_julian_day());
        assert_eq!(start_days * 86_400_000, YEAR_START_MS);
        let asked = date::parse(ELIGIBILITY_DATE).expect("eligibility's date of care");
        assert_eq!(asked.year(), first.year());
        let asked_ms = i64::from(asked.to_julian_day() - epoch.to_julian_day()) * 86_400_000;
        assert!(asked_ms < YEAR_START_MS + YEAR_MS);
    }

    /// The seeded members and ceiling usage go into shared buffers only
    /// where they take at most half of them: not at PostgreSQL's default
    /// 128 MB (16,384 pages) with 1.75 GiB of them (229,376 pages), yes
    /// with a quarter of this machine's 24 GiB.
    #[test]
    fn warmed_into_shared_buffers_only_where_they_fit_twice() {
        use crate::postgres::fits_in_shared_buffers;
        assert!(!fits_in_shared_buffers(229_376, 16_384));
        assert!(fits_in_shared_buffers(229_376, 786_432));
        assert!(fits_in_shared_buffers(8_192, 16_384));
        assert!(!fits_in_shared_buffers(8_193, 16_384));
        assert!(!fits_in_shared_buffers(0, 16_384));
        assert!(!fits_in_shared_buffers(i64::MAX, i64::MAX));
    }

    /// pgbench's eligibility scripts read the seeded year's keys, the
    /// three the broker asks for, as the broker's rounds do.
    #[test]
    fn pgbench_reads_the_seeded_years_keys() {
        for script in [
            crate::postgres::ELIGIBILITY_RANDOM,
            crate::postgres::ELIGIBILITY_ONE,
        ] {
            let read = script
                .lines()
                .find(|l| l.starts_with("SELECT ceiling_key"))
                .expect("the ceiling read");
            for scope in [
                "beneficiary-year|-|",
                "count|maternity|",
                "household-year|-|",
            ] {
                assert!(read.contains(scope), "{scope} in {read}");
            }
            assert_eq!(read.matches(&format!("|{YEAR}'")).count(), 3, "{read}");
        }
    }
}
