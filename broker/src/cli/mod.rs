//! The client commands of the `passerelle` binary: what a mutuelle clerk, a
//! scheme analyst or an operator runs against a broker. Tables by default,
//! `--json` for scripts, `--lang fr|en` (or LANG) for the language.

/// A date typed on the command line: day first (31/12/2026, 31-12-2026)
/// or 2026-12-31, passed on as YYYY-MM-DD; month first is refused, never
/// read as another day.
pub fn typed_date(s: &str) -> Result<String, String> {
    passerelle_domain::date::parse_typed(s)
        .map(passerelle_domain::date::format)
        .ok_or_else(|| {
            // In the language early_lang read from the command line, which
            // clap parses after. Written as a date (digits in three parts)
            // but no day of the calendar (31/02, or month first): said so,
            // rather than asked again for the form it has.
            let dated = s.trim().split(['/', '-', '.']).count() == 3
                && s.trim()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"/-.".contains(&b));
            let key = if s.trim().is_empty() {
                "cli-date-missing"
            } else if dated {
                "cli-no-such-date"
            } else {
                "cli-not-a-date"
            };
            output::Lang::of_process()
                .catalogue()
                .t_args(key, &[("value", s)])
        })
}

/// A claim state typed on the command line, passed on as the API names it:
/// its API name, or its words in either language as the tables print them
/// (`annulée`, `"en attente de la mutuelle"`, `cancel pending`), in any
/// case, accents optional, French words in any gender and number
/// (`annulé`, `annulées`). Anything else is refused with the states named
/// in the reader's language.
pub fn claim_state(s: &str) -> Result<String, String> {
    // Lower case, accents dropped, spaces and dashes as underscores, each
    // word without a final s and the e's before it (so that annulé,
    // annulée and annulées read alike).
    let fold = |w: &str| -> String {
        let flat: String = w
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .flat_map(char::to_lowercase)
            .map(|c| match c {
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'à' | 'â' => 'a',
                'ô' => 'o',
                'î' | 'ï' => 'i',
                'ù' | 'û' => 'u',
                'ç' => 'c',
                ' ' | '-' => '_',
                c => c,
            })
            .collect();
        flat.split('_')
            .map(|word| {
                let word = word.strip_suffix('s').unwrap_or(word);
                word.trim_end_matches('e')
            })
            .collect::<Vec<_>>()
            .join("_")
    };
    let typed = fold(s);
    let states = passerelle_domain::ClaimState::ALL.map(|s| s.as_str());
    states
        .iter()
        .find(|name| {
            [output::Lang::En, output::Lang::Fr]
                .iter()
                .any(|l| fold(l.state(name)) == typed)
                || fold(name) == typed
        })
        .map(|name| name.to_string())
        .ok_or_else(|| {
            let l = output::Lang::of_process();
            // A state of several words quoted, as it must be typed.
            let states: Vec<String> = states
                .iter()
                .map(|n| match l.state(n) {
                    w if w.contains(' ') => l.catalogue().t_args("quoted", &[("text", w)]),
                    w => w.to_string(),
                })
                .collect();
            l.catalogue().t_args(
                "cli-not-a-claim-state",
                &[("value", s), ("states", &states.join(", "))],
            )
        })
}

/// A closed period's number, as the reader counts periods: from 1 (the
/// API's 0 names the open period, which has no remittance advice). A value
/// that is no number is refused as any number is (`usage::parser_words`
/// says why, in the reader's language).
pub fn period_number(s: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    match s.trim().parse::<u32>()? {
        0 => Err(output::Lang::of_process()
            .catalogue()
            .t_args("cli-periods-start-at-one", &[("value", s)])
            .into()),
        n => Ok(n),
    }
}

/// `println!` that stops quietly when stdout is closed
/// (`passerelle claim list | head`) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}

/// Why a store could not be opened, as the command's reader reads it: a
/// SQLite database held by another process (a running broker) in their
/// language, with what to do; anything else in the store's words.
pub fn start_error(lang: crate::console::i18n::Lang, e: &crate::server::StartError) -> String {
    use crate::store::StoreError as S;
    let n = |v: &i64| v.to_string();
    match e {
        crate::server::StartError::Store(S::InUse(db)) => {
            lang.t_args("cli-db-in-use", &[("db", db)])
        }
        crate::server::StartError::Store(S::NoDatabase(path)) => {
            lang.t_args("cli-db-missing", &[("path", path)])
        }
        // No schema at all: a new database, or an address mistyped.
        crate::server::StartError::Store(S::SchemaTooOld { found: 0, .. }) => {
            lang.t_args("cli-db-empty", &[])
        }
        crate::server::StartError::Store(S::SchemaTooOld { found, want }) => lang.t_args(
            "cli-db-too-old",
            &[("found", &n(found)), ("want", &n(want))],
        ),
        crate::server::StartError::Store(S::SchemaTooNew { found, want }) => lang.t_args(
            "cli-db-too-new",
            &[("found", &n(found)), ("want", &n(want))],
        ),
        crate::server::StartError::Store(S::Backend(detail)) => {
            lang.t_args("cli-store-failed", &[("detail", detail)])
        }
        e => e.to_string(),
    }
}

pub mod commands;
pub mod conformance;
pub mod output;
pub mod translate;
pub mod usage;
pub mod users;

// The file formats live in passerelle-files (fuzzed on their own).
pub use passerelle_files::{claim_file, roster_csv};

use std::path::PathBuf;

use clap::{Args, Subcommand};

use output::Lang;

/// Options every client command takes.
#[derive(Args, Clone, Debug)]
pub struct Client {
    /// The broker's address: https:// for mutual TLS, http:// for a
    /// plaintext development broker.
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_BROKER",
        default_value = "https://127.0.0.1:50051"
    )]
    pub broker: String,
    /// Folder of certificates named as `passerelle certs` and `dev` make them:
    /// the command picks the certificate of the party it acts for
    /// (`scheme-CNSS.crt`, `mutuelle-MUT-X.crt`, `operator-dev.crt`).
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_CERTS",
        default_value = ".passerelle/certs"
    )]
    pub certs: PathBuf,
    /// Client certificate (PEM), instead of the one picked from --certs.
    #[arg(long, global = true, env = "PASSERELLE_CERT")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, env = "PASSERELLE_KEY")]
    pub key: Option<PathBuf>,
    /// CA that signed the broker's certificate (default: --certs/ca.crt).
    #[arg(long, global = true, env = "PASSERELLE_CA")]
    pub ca: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Language of tables and messages (default: from the locale,
    /// LANGUAGE then LC_ALL, LC_MESSAGES, LANG).
    #[arg(long, global = true, value_enum)]
    pub lang: Option<Lang>,
}

#[derive(Subcommand, Debug)]
pub enum ClaimCmd {
    /// Submit a claim from a JSON or TOML file (see docs/cli.md).
    Submit { file: PathBuf },
    /// Show a claim with S, M and P per line.
    Get {
        #[arg(long)]
        scheme: String,
        claim_id: String,
    },
    /// The patient's notice of a coordinated claim, in the command's
    /// language: to print, and (--sms) in one SMS.
    Notice {
        #[arg(long)]
        scheme: String,
        claim_id: String,
        /// Only the SMS text (at most 160 characters).
        #[arg(long)]
        sms: bool,
    },
    /// List claims with their B, S, M and P totals.
    List {
        #[arg(long)]
        scheme: Option<String>,
        #[arg(long)]
        mutuelle: Option<String>,
        /// received, pending_partner, coordinated, rejected, cancel_pending,
        /// cancelled; or as the table says them (annulée, "cancel pending").
        #[arg(long, value_parser = claim_state)]
        state: Option<String>,
        /// First date of care, 31/12/2026 (day first) or 2026-12-31.
        #[arg(long, value_parser = typed_date)]
        from: Option<String>,
        /// Last date of care, 31/12/2026 (day first) or 2026-12-31.
        #[arg(long, value_parser = typed_date)]
        to: Option<String>,
        /// A member number at the mutuelle.
        #[arg(long)]
        member: Option<String>,
        /// A provider, as the scheme names it.
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        /// A page token printed by the previous page.
        #[arg(long)]
        page: Option<String>,
    },
    /// Ask a prior authorization (accord préalable) for planned care, from
    /// a claim file: its claim_id is the authorization's id, its lines the
    /// planned ones (see docs/cli.md).
    Authorize { file: PathBuf },
    /// Show a prior authorization: what the mutuelle committed, until when.
    Authorization {
        #[arg(long)]
        scheme: String,
        authorization_id: String,
    },
    /// Cancel a prior authorization not billed: its hold is released.
    Release {
        #[arg(long)]
        scheme: String,
        authorization_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Cancel a claim; ceilings it consumed are restored.
    Cancel {
        #[arg(long)]
        scheme: String,
        claim_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RosterCmd {
    /// Replace a mutuelle's roster with a CSV snapshot (see docs/cli.md):
    /// members missing from the file are end-dated, never deleted.
    Import {
        file: PathBuf,
        #[arg(long)]
        partner: String,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Date of the snapshot (default today): 31/12/2026 or 2026-12-31.
        #[arg(long, value_parser = typed_date)]
        as_of: Option<String>,
        /// Import the good rows of a file that has bad ones (the members of
        /// bad rows are left as they are).
        #[arg(long)]
        skip_bad_rows: bool,
        /// Do not end-date members missing from the file.
        #[arg(long)]
        no_end_dating: bool,
    },
    /// Declare opening balances (what members already consumed this year,
    /// for a mutuelle joining during it) from a CSV (see docs/cli.md).
    Opening {
        file: PathBuf,
        #[arg(long)]
        partner: String,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProductsCmd {
    /// Declare product versions from a TOML or JSON file of [[products]].
    Import { file: PathBuf },
    /// List a mutuelle's product versions.
    List {
        #[arg(long)]
        partner: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeriodCmd {
    /// Periods of a scheme x mutuelle, with totals.
    List {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
    },
    /// Propose closing the open period into a statement (another person
    /// approves: `approvals`).
    Close {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
    },
    /// Propose recording that a closed period was paid (another person
    /// approves: `approvals`).
    Settle {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
        number: u32,
        /// The payment's reference.
        #[arg(long)]
        reference: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StatementCmd {
    /// Show a period's statement (bordereau), by payee.
    Show {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
        /// The period; the open one (provisional) if left out.
        number: Option<u32>,
        /// Lines asked of the broker per request (1 to 10,000).
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        page_size: u32,
    },
    /// Export a period's statement as CSV, written as its pages arrive (a
    /// statement of any size, in bounded memory).
    Export {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
        number: Option<u32>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Lines asked of the broker per request (1 to 10,000).
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        page_size: u32,
    },
    /// The remittance advice of a settled period: what its transfer pays
    /// each payee, claim by claim, recoveries netted.
    Remittance {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        partner: String,
        /// The settled period's number (1 for the first).
        #[arg(value_parser = period_number)]
        number: u32,
        /// One payee's kind: provider or member (with --payee).
        #[arg(long, requires = "payee", value_parser = ["provider", "member"])]
        payee_type: Option<String>,
        /// One payee's id as the statement names it: the provider's code
        /// (CHU-SO) or the member's number in the mutuelle (SOL-0001), not
        /// the scheme's beneficiary id (with --payee-type).
        #[arg(long, requires = "payee_type")]
        payee: Option<String>,
        /// Print each payee's FHIR R4 PaymentReconciliation (one JSON
        /// resource per line).
        #[arg(long)]
        fhir: bool,
        /// Each payee's claims and amount only, without its lines: for a
        /// period of any size (every payee's lines at once are refused
        /// above 50,000 lines).
        #[arg(long, conflicts_with_all = ["payee", "payee_type", "fhir"])]
        totals: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Mutuelles with their adapter, circuit or pause, last success and
    /// error, pending claims and the oldest one.
    Partners,
    /// Pause a mutuelle: its claims are accepted and wait, no call and no
    /// retry goes to it until `admin resume` (every broker, across restarts).
    Pause {
        /// The mutuelle id.
        mutuelle: String,
    },
    /// Resume a paused mutuelle: its waiting claims go at once.
    Resume {
        /// The mutuelle id.
        mutuelle: String,
    },
    /// Retry a pending claim (or cancel) now.
    Retry {
        #[arg(long)]
        scheme: String,
        claim_id: String,
    },
    /// A claim's audit trail.
    Audit {
        #[arg(long)]
        scheme: String,
        claim_id: String,
    },
    /// Beneficiaries that two mutuelles declare on the same dates.
    CoverageConflicts {
        /// Only this scheme.
        #[arg(long)]
        scheme: Option<String>,
    },
    /// Resolve a beneficiary's coverage conflict in favour of one mutuelle:
    /// the other mutuelles' overlapping periods are ended or removed.
    ResolveCoverage {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        beneficiary: String,
        /// The mutuelle that keeps the beneficiary.
        #[arg(long)]
        keep: String,
        /// Keep it with that mutuelle from this date (31/12/2026 (day first) or 2026-12-31) on, even
        /// before it declares the member: a transfer away from a mutuelle
        /// that no longer runs.
        #[arg(long, value_parser = typed_date)]
        from: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCmd {
    /// Create a development CA (and an empty CRL) in --dir.
    Ca {
        /// The CA's folder (default: --certs, else .passerelle/certs).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue the broker's server certificate.
    Server {
        /// The CA's folder (default: --certs, else .passerelle/certs).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// DNS names (repeatable).
        #[arg(long, default_value = "localhost")]
        dns: Vec<String>,
        /// IP addresses (repeatable).
        #[arg(long, default_values = ["127.0.0.1", "::1"])]
        ip: Vec<std::net::IpAddr>,
    },
    /// Issue a client certificate carrying urn:passerelle:<role>:<id>.
    Client {
        /// The CA's folder (default: --certs, else .passerelle/certs).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// scheme, mutuelle or operator.
        #[arg(long, value_parser = ["scheme", "mutuelle", "operator"])]
        role: String,
        /// The scheme, mutuelle or operator id, as configured.
        #[arg(long)]
        id: String,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Revoke a certificate of this CA: rewrites crl.pem (brokers reload it).
    Revoke {
        /// The CA's folder (default: --certs, else .passerelle/certs).
        #[arg(long)]
        dir: Option<PathBuf>,
        cert: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Does a mutuelle cover this beneficiary? With ceilings left.
    Eligibility {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        beneficiary: String,
        /// Date of care, 31/12/2026 (day first) or 2026-12-31 (default today).
        #[arg(long, value_parser = typed_date)]
        date: Option<String>,
        #[arg(long)]
        mutuelle: Option<String>,
        #[arg(long)]
        member: Option<String>,
    },
    /// Claims and prior authorizations, as a scheme sends them.
    #[command(subcommand)]
    Claim(ClaimCmd),
    /// A mutuelle's members and opening balances.
    #[command(subcommand)]
    Roster(RosterCmd),
    /// A mutuelle's products (rules mutuelles).
    #[command(subcommand)]
    Products(ProductsCmd),
    /// Settlement periods: list, close, settle.
    #[command(subcommand)]
    Period(PeriodCmd),
    /// A period's statement and remittance advice.
    #[command(subcommand)]
    Statement(StatementCmd),
    /// Operators: partners (pause, resume), retries, audit trails,
    /// coverage conflicts.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Changes that need two people: list, approve, reject.
    #[command(subcommand)]
    Approvals(ApprovalsCmd),
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCmd {
    /// A mutuelle's proposals (those waiting, or --all).
    List {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        all: bool,
    },
    /// Approve a proposal (another person than its author) and apply it.
    Approve {
        id: i64,
        /// The proposal's hash, as `approvals list` shows it.
        #[arg(long)]
        hash: String,
        /// The mutuelle whose certificate approves.
        #[arg(long)]
        partner: String,
    },
    /// Reject a proposal (or withdraw your own).
    Reject {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        partner: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim state is typed as the API names it or as the tables print
    /// it, in either language; anything else is refused, the states named.
    #[test]
    fn claim_states_are_read_in_either_language() {
        for (typed, name) in [
            ("cancelled", "cancelled"),
            ("annulée", "cancelled"),
            ("Annulee", "cancelled"),
            (" ANNULÉE ", "cancelled"),
            ("en attente de la mutuelle", "pending_partner"),
            ("pending at mutuelle", "pending_partner"),
            ("pending_partner", "pending_partner"),
            ("annulation en cours", "cancel_pending"),
            ("cancel pending", "cancel_pending"),
            ("coordonnée", "coordinated"),
            ("reçue", "received"),
            ("rejetée", "rejected"),
            ("annulé", "cancelled"),
            ("annulées", "cancelled"),
            ("Coordonnés", "coordinated"),
            ("reçu", "received"),
            ("  annulation   en cours ", "cancel_pending"),
        ] {
            assert_eq!(claim_state(typed).as_deref(), Ok(name), "{typed:?}");
        }
        // Every state's words in both languages, and its API name, lead to
        // it and to no other (no two states fold alike).
        for state in passerelle_domain::ClaimState::ALL.map(|s| s.as_str()) {
            for typed in [
                state,
                output::Lang::En.state(state),
                output::Lang::Fr.state(state),
            ] {
                assert_eq!(claim_state(typed).as_deref(), Ok(state), "{typed:?}");
            }
        }
        for bad in ["", "annu", "paid", "open", "payée"] {
            let e = claim_state(bad).unwrap_err();
            assert!(e.contains(bad) && !e.starts_with("cli-"), "{bad:?}: {e}");
        }
    }

    /// A period's number on the command line: from 1; 0 refused in its
    /// own words, anything else not a number as a number's parser does.
    #[test]
    fn period_numbers_start_at_one() {
        assert_eq!(period_number("7").ok(), Some(7));
        assert_eq!(period_number(" 12 ").ok(), Some(12));
        let zero = period_number("0").unwrap_err().to_string();
        assert_eq!(
            zero,
            output::Lang::of_process()
                .catalogue()
                .t_args("cli-periods-start-at-one", &[("value", "0")])
        );
        assert_ne!(zero, "cli-periods-start-at-one");
        for (bad, kind) in [
            ("4294967296", std::num::IntErrorKind::PosOverflow),
            ("", std::num::IntErrorKind::Empty),
            ("abc", std::num::IntErrorKind::InvalidDigit),
        ] {
            let e = period_number(bad).unwrap_err();
            let e = e.downcast_ref::<std::num::ParseIntError>();
            assert_eq!(e.map(|e| *e.kind()), Some(kind), "{bad:?}");
        }
    }
}
