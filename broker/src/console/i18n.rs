//! What a person reads in the console, in French or English: the message
//! catalogue (`broker/locales/*.ftl`, Fluent), amounts with the language's
//! grouping, and dates as people write them (day first, never month first).

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use passerelle_domain::Date;

/// The languages of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

const FR: &str = include_str!("../../locales/fr.ftl");
const EN: &str = include_str!("../../locales/en.ftl");

fn bundle(lang: Lang) -> &'static FluentBundle<FluentResource> {
    static FR_B: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
    static EN_B: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
    let (cell, src, tag) = match lang {
        Lang::Fr => (&FR_B, FR, "fr"),
        Lang::En => (&EN_B, EN, "en"),
    };
    cell.get_or_init(|| {
        let res = FluentResource::try_new(src.to_string()).unwrap_or_else(|(r, _)| r);
        let mut b = FluentBundle::new_concurrent(vec![tag.parse().expect("a language tag")]);
        // No Unicode isolation marks around arguments: they would show in
        // HTML and in CSV cells.
        b.set_use_isolating(false);
        let _ = b.add_resource(res);
        b
    })
}

/// A close that failed because the open period changed since it was
/// proposed, as the store words it (`StoreError::PeriodChanged`, kept as
/// the proposal's outcome): the claims then and now. Read from the end, so
/// that ids are not taken for its words.
fn period_changed(outcome: &str) -> Option<(u32, u32)> {
    let rest = outcome.strip_prefix("the open period of ")?;
    let (_, counts) = rest.rsplit_once(" changed since its close was proposed (")?;
    let counts = counts.strip_suffix(" now, or their amounts): propose the close again")?;
    let (then, now) = counts.split_once(" claim(s) then, ")?;
    Some((then.parse().ok()?, now.parse().ok()?))
}

/// Whether a date that could not be read is written day first, with one
/// separator throughout and a month that exists (31/02/2026, 31,02,2026):
/// then its day does not exist, and saying how to write a date misleads
/// (31,12/2026 is badly written).
pub fn no_such_day(typed: &str) -> bool {
    let typed = typed.trim();
    let parts: Vec<&str> = typed.split(['/', '-', '.', ',']).collect();
    let mut seps = typed.chars().filter(|c| "/-.,".contains(*c));
    let one_sep = seps.next().is_some_and(|first| seps.all(|c| c == first));
    one_sep
        && parts.len() == 3
        && parts[0].len() <= 2
        && parts[2].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Fr => Lang::En,
            Lang::En => Lang::Fr,
        }
    }

    /// The first of French and English in an Accept-Language header, by
    /// order of preference; French when it names neither (the users are
    /// francophone first).
    pub fn from_accept(header: &str) -> Lang {
        // q-values in thousandths (RFC 9110: at most three decimals).
        let mut best: Option<(u16, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, thousandths);
            let lang = match tag.split('-').next() {
                Some("fr") => Lang::Fr,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Fr, |(_, l)| l)
    }

    /// The message `key`; the key itself when the catalogue lacks it (a
    /// test checks that both catalogues hold every key the code uses).
    pub fn t(self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with arguments.
    pub fn t_args(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut a = FluentArgs::new();
        for (k, v) in args {
            // A count is a number, so that plurals select on it; an
            // identifier made of digits ("000123", a long reference) stays
            // text as it was written (a Fluent number would drop its
            // leading zeros, or round it past 2^53).
            let count = v.len() <= 15
                && v.bytes().all(|b| b.is_ascii_digit())
                && (v.len() == 1 || !v.starts_with('0'));
            match v.parse::<i64>() {
                Ok(n) if count => a.set(*k, FluentValue::from(n)),
                _ => a.set(*k, FluentValue::from(*v)),
            }
        }
        self.format(key, Some(&a))
    }

    fn format(self, key: &str, args: Option<&FluentArgs>) -> String {
        let b = bundle(self);
        let Some(pattern) = b.get_message(key).and_then(|m| m.value()) else {
            return key.to_string();
        };
        let mut errors = Vec::new();
        b.format_pattern(pattern, args, &mut errors).into_owned()
    }

    /// A partner call's error as the broker stores it (`AdapterError`'s
    /// English, for programs and the audit log, `probe: ` before a
    /// probe's) with its kind said in this language; what the partner or
    /// the transport said after it is kept as it is (their own words).
    pub fn partner_error(self, e: &str) -> String {
        let (probe, e) = match e.strip_prefix("probe: ") {
            Some(rest) => (true, rest),
            None => (false, e),
        };
        let deadline = e
            .strip_prefix("partner missed its deadline of ")
            .and_then(|r| r.strip_suffix(" ms"));
        let said = match deadline {
            _ if e == crate::service::partner::MALFORMED_SAID => {
                self.t("partner-error-malformed-hidden")
            }
            Some(ms) => self.t_args("partner-error-deadline", &[("ms", ms)]),
            None => [
                ("partner unavailable: ", "partner-error-unavailable"),
                (passerelle_adapters::PENDING_SAID, "partner-error-pending"),
                ("malformed partner answer: ", "partner-error-malformed"),
                ("partner rejected: ", "partner-error-rejected"),
                (
                    "not supported by this partner: ",
                    "partner-error-unsupported",
                ),
            ]
            .iter()
            .find_map(|(prefix, key)| {
                e.strip_prefix(prefix).map(|rest| {
                    let (before, after) = passerelle_adapters::OPENIMIS_NO_CANCEL;
                    if let Some(code) = rest
                        .strip_prefix(before)
                        .and_then(|r| r.strip_suffix(after))
                    {
                        return self.t_args("partner-error-openimis-no-cancel", &[("claim", code)]);
                    }
                    match rest.strip_suffix(" is paused by an operator") {
                        // The broker's own words: said in full.
                        Some(m) if m.starts_with("mutuelle ") => self.t_args(
                            "partner-error-paused",
                            &[("mutuelle", m.trim_start_matches("mutuelle "))],
                        ),
                        _ => self.t_args(key, &[("detail", rest)]),
                    }
                })
            })
            .unwrap_or_else(|| e.to_string()),
        };
        if probe {
            self.t_args("partner-error-probe", &[("error", &said)])
        } else {
            said
        }
    }

    /// A claim's partner note (`ClaimDetail.partner_note`) in this
    /// language: a cancel not delivered, which a person must make in the
    /// mutuelle's system, or the last error met with the mutuelle.
    pub fn claim_note(self, note: &str) -> String {
        match note.strip_prefix(crate::service::claims::CANCEL_NOT_DELIVERED) {
            Some(why) => self.t_args(
                "claim-cancel-not-delivered",
                &[("detail", &self.partner_error(why))],
            ),
            None => self.t_args("claim-last-error", &[("error", &self.partner_error(note))]),
        }
    }

    /// What a claim RECEIVED or PENDING_PARTNER shows, said beside its
    /// lines (the console's claim page, `passerelle claim get`): M reads 0
    /// and P the whole remainder until the mutuelle answers, which are not
    /// what the patient owes.
    pub fn awaiting_mutuelle(self) -> String {
        self.t("claim-awaiting-mutuelle")
    }

    /// What a refusal of the broker means, in this language: the sentence
    /// of its ErrorInfo reason (else of its code) from the catalogue, with
    /// the broker's own words as the detail (the service speaks English;
    /// fields and values are named as sent).
    pub fn refusal(self, s: &tonic::Status) -> String {
        use tonic_types::StatusExt;
        let by_code = || self.t(&format!("error-code-{:?}", s.code()));
        let said = match s.get_details_error_info() {
            Some(i) => {
                // A card that does not hold is its own sentence: check the
                // card (the reason's says no mutuelle covers the patient).
                let key = match i.metadata.get("card").map(String::as_str) {
                    Some("mismatch") => "error-card-mismatch".to_string(),
                    Some("not_member") => "error-card-not-member".to_string(),
                    _ => format!("error-reason-{}", i.reason),
                };
                let t = self.t(&key);
                let mut said = if t == key { by_code() } else { t };
                // What became of the hold of a commitment refused: what a
                // person acts on (resend, or release it by hand).
                let hold = match i.metadata.get("hold").map(String::as_str) {
                    Some("released") => Some("error-hold-released"),
                    Some("not_released") => Some("error-hold-not-released"),
                    Some("refused") => Some("error-hold-refused"),
                    _ => None,
                };
                if let Some(key) = hold {
                    said.push(' ');
                    said.push_str(&self.t(key));
                }
                said
            }
            None => by_code(),
        };
        if s.message().is_empty() {
            return said;
        }
        self.t_args("error-refusal", &[("said", &said), ("detail", s.message())])
    }

    /// A reason in this language. The broker's own reasons carry their
    /// detail as a sentence of the catalogue with its values
    /// (`detail-KEY`), said here with amounts in `currency` (the claim's;
    /// empty where there is none). Any other reason (a partner's words, one
    /// stored before details, a key a newer broker wrote): in English its
    /// words as given, in French the catalogue's words for its code (then
    /// a mutuelle's own words for a rule of the mutuelle).
    pub fn reason_words(self, r: &passerelle_proto::common::v1::Reason, currency: &str) -> String {
        if let Some(said) = self.detail(&r.detail_key, &r.detail_args, currency) {
            return said;
        }
        let code = passerelle_proto::common::v1::ReasonCode::try_from(r.code)
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("REASON_CODE_")
                    .to_string()
            })
            .unwrap_or_else(|_| "UNSPECIFIED".into());
        match self {
            Lang::En if !r.message.is_empty() => r.message.clone(),
            // A mutuelle's rule in its own words (its system's display
            // text, often French already) after the catalogue's sentence:
            // without them a clerk, or the patient's notice, reads only "the
            // mutuelle's rule". The broker's own words have a detail key or
            // stay out of a French page.
            Lang::Fr if !r.message.is_empty() && code == "PARTNER_RULE" => {
                format!("{} : {}", self.t(&format!("reason-{code}")), r.message)
            }
            _ => self.t(&format!("reason-{code}")),
        }
    }

    /// A claim's rejection in this language, for the mutuelle's people and
    /// operators (the console's claim page): [`Lang::reason_words`], and in
    /// French the mutuelle's words after the sentence for its refusal (its
    /// system's diagnostics), which is what they take up with the
    /// mutuelle. Not for the patient.
    pub fn rejection_words(
        self,
        r: &passerelle_proto::common::v1::Reason,
        currency: &str,
    ) -> String {
        use passerelle_proto::common::v1::ReasonCode as C;
        let said = self.reason_words(r, currency);
        // Not an answer the broker refused: its words are the broker's own,
        // in English (PARTNER_ANSWER_INVALID stays the catalogue's).
        let partner = matches!(C::try_from(r.code), Ok(C::PartnerRejected));
        if self == Lang::Fr && partner && r.detail_key.is_empty() && !r.message.is_empty() {
            format!("{said} : {}", r.message)
        } else {
            said
        }
    }

    /// A reason's detail in this language (`reason_words`); `None` without
    /// a key or when the catalogue lacks its sentence.
    pub fn detail(
        self,
        key: &str,
        args: &std::collections::HashMap<String, String>,
        currency: &str,
    ) -> Option<String> {
        if key.is_empty() {
            return None;
        }
        let key = format!("detail-{key}");
        bundle(self).get_message(&key)?;
        let values: Vec<(&str, String)> = args
            .iter()
            .map(|(name, v)| (name.as_str(), self.detail_value(name, v, currency)))
            .collect();
        let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Some(self.t_args(&key, &values))
    }

    /// One value of a detail, written in this language by its name's
    /// ending (`domain::Detail`); as it is when it does not read.
    fn detail_value(self, name: &str, v: &str, currency: &str) -> String {
        if name.ends_with("_amount")
            && let Ok(a) = v.parse::<i64>()
        {
            return if currency.is_empty() {
                self.amount(a, currency)
            } else {
                self.money(a, currency)
            };
        }
        if name.ends_with("_date") {
            return self.iso_date(v);
        }
        if name.ends_with("_bp")
            && let Ok(bp) = v.parse::<u32>()
        {
            return self.percent(bp);
        }
        if name == "category" {
            let key = format!("category-{v}");
            let words = self.t(&key);
            if words != key {
                // The catalogue's name is a label ("Pharmacie"); in a
                // sentence, lower case.
                let mut c = words.chars();
                return c
                    .next()
                    .map_or_else(String::new, |f| f.to_lowercase().chain(c).collect());
            }
        }
        v.to_string()
    }

    /// The notice of a coordinated claim for its patient: a few lines to
    /// print (what the scheme and the mutuelle paid, what the patient owes,
    /// and why, line by line), and the same in one SMS (at most 160
    /// characters). `provider` and `date_of_care` as the scheme sent them.
    pub fn patient_notice(
        self,
        r: &passerelle_proto::scheme::v1::ClaimResult,
        provider: &str,
        date_of_care: Date,
    ) -> (String, String) {
        let t = r.totals.unwrap_or_default();
        let cur = r.currency.as_str();
        let mut text = self.t_args(
            "notice-head",
            &[
                ("claim", &r.claim_id),
                ("date", &self.date(date_of_care)),
                ("provider", provider),
                ("billed", &self.money(t.billed, cur)),
            ],
        );
        for (key, who, amount) in [
            ("notice-scheme", r.scheme_id.as_str(), t.scheme_share),
            ("notice-mutuelle", r.mutuelle_id.as_str(), t.mutuelle_share),
        ] {
            text.push('\n');
            text.push_str(&self.t_args(key, &[("who", who), ("amount", &self.money(amount, cur))]));
        }
        text.push('\n');
        text.push_str(&self.t_args(
            "notice-patient",
            &[("amount", &self.money(t.patient_share, cur))],
        ));
        let why: Vec<String> = r
            .lines
            .iter()
            .filter(|l| l.patient_share > 0)
            .map(|l| {
                let reasons: Vec<String> = l
                    .reasons
                    .iter()
                    .map(|x| self.reason_words(x, cur))
                    .collect();
                let reasons = if reasons.is_empty() {
                    self.t("notice-uncovered")
                } else {
                    // A reason may hold a comma of its own.
                    reasons.join(self.list_separator())
                };
                self.t_args(
                    "notice-line",
                    &[
                        ("n", &l.sequence.to_string()),
                        ("act", &l.act_code),
                        ("amount", &self.money(l.patient_share, cur)),
                        ("why", &reasons),
                    ],
                )
            })
            .collect();
        if !why.is_empty() {
            text.push('\n');
            text.push_str(&self.t("notice-why"));
            for w in why {
                text.push_str("\n- ");
                text.push_str(&w);
            }
        }
        // The SMS: amounts first, without grouping (a thin space may not
        // survive a phone's alphabet), in the currency's major unit; the
        // claim's reference last, shortened (from its start) so that the
        // whole fits in one SMS of 160 characters of the GSM alphabet.
        let digits = passerelle_domain::money::minor_unit_digits(cur).unwrap_or(0);
        let plain = |n: i64| {
            let v = passerelle_adapters::decimal::format_minor(n, digits);
            format!("{v} {cur}")
        };
        let sms_with = |claim: &str| {
            self.t_args(
                "notice-sms",
                &[
                    ("claim", claim),
                    ("scheme", &plain(t.scheme_share)),
                    ("mutuelle", &plain(t.mutuelle_share)),
                    ("patient", &plain(t.patient_share)),
                ],
            )
        };
        let mut sms = sms_with(&r.claim_id);
        let over = sms.chars().count().saturating_sub(160);
        if over > 0 {
            let id: Vec<char> = r.claim_id.chars().collect();
            let keep = id.len().saturating_sub(over + 3);
            let short: String = std::iter::once("...".to_string())
                .chain(std::iter::once(id[id.len() - keep..].iter().collect()))
                .collect();
            sms = sms_with(&short);
        }
        (text, sms)
    }

    /// What a proposal (maker-checker) changes, in words, from its body
    /// (`service::approvals::Change`): the console's approvals page and
    /// `passerelle approvals list` say it alike.
    pub fn change_words(self, body: &str) -> String {
        use crate::service::approvals::Change;
        let Ok(change) = serde_json::from_str::<Change>(body) else {
            return self.t("approvals-unreadable");
        };
        match change {
            Change::ClosePeriod {
                scheme_id,
                mutuelle_id,
                content,
                currency,
                ..
            } => self.t_args(
                "approvals-close",
                &[
                    ("pair", &format!("{scheme_id} – {mutuelle_id}")),
                    // The count selects the plural; it is written grouped.
                    ("count", &content.claim_count.to_string()),
                    ("claims", &self.amount(content.claim_count as i64, "")),
                    ("billed", &self.money(content.billed, &currency)),
                    ("mutuelle", &self.money(content.mutuelle, &currency)),
                    (
                        "recoveries",
                        &self.money(content.recoveries.saturating_neg(), &currency),
                    ),
                    (
                        "net",
                        &self.money(
                            content.mutuelle.saturating_sub(content.recoveries),
                            &currency,
                        ),
                    ),
                ],
            ),
            Change::SettlePeriod {
                scheme_id,
                mutuelle_id,
                number,
                reference,
                content,
                currency,
                owed,
            } => {
                let net = content.mutuelle.saturating_sub(content.recoveries);
                let settle = self.t_args(
                    "approvals-settle",
                    &[
                        ("pair", &format!("{scheme_id} – {mutuelle_id}")),
                        ("number", &number.to_string()),
                        ("reference", &reference),
                        ("net", &self.money(net, &currency)),
                    ],
                );
                // When some payees owe, the net due alone says neither what
                // the transfer pays nor what comes back.
                if owed > 0 {
                    let split = self.transfer_split(net.saturating_add(owed), owed, &currency);
                    format!("{settle} {split}")
                } else {
                    settle
                }
            }
            Change::PublishProducts { products, .. } => products
                .iter()
                .map(|p| {
                    self.t_args(
                        "approvals-product",
                        &[
                            ("id", &p.id),
                            ("version", &p.version.to_string()),
                            ("name", &p.name),
                            ("from", &self.date(p.valid_from)),
                        ],
                    )
                })
                .collect::<Vec<_>>()
                .join(" ; "),
        }
    }

    /// The kind of a proposal (its `kind`: "close_period", ...), in words.
    pub fn proposal_kind(self, kind: &str) -> String {
        self.t(match kind {
            "close_period" => "approvals-kind-close",
            "settle_period" => "approvals-kind-settle",
            "publish_products" => "approvals-kind-products",
            _ => "approvals-kind-unknown",
        })
    }

    /// Where a proposal is (its state's name: "pending", ...), in words; a
    /// rejection by its own author is a withdrawal.
    pub fn proposal_state(self, state: &str, withdrawn: bool) -> String {
        if withdrawn && state == "rejected" {
            return self.t("approvals-state-withdrawn");
        }
        let key = format!("approvals-state-{state}");
        let t = self.t(&key);
        if t == key {
            self.t("approvals-kind-unknown")
        } else {
            t
        }
    }

    /// What applying a proposal did (the service's outcome, "period 3
    /// closed", ...), in words; anything else (a refusal's text, a
    /// rejection's reason) as it was written.
    pub fn proposal_outcome(self, outcome: &str) -> String {
        let words: Vec<&str> = outcome.split(' ').collect();
        match words.as_slice() {
            ["period", n, "closed"] => self.t_args("approvals-outcome-closed", &[("number", n)]),
            ["period", n, "settled"] => self.t_args("approvals-outcome-settled", &[("number", n)]),
            [n, "product", "version(s)", "published"] => {
                self.t_args("approvals-outcome-published", &[("count", n)])
            }
            _ => match period_changed(outcome) {
                // As many claims: their amounts changed.
                Some((then, now)) if then == now => self.t("approvals-outcome-amounts-changed"),
                Some((then, now)) => self.t_args(
                    "approvals-outcome-period-changed",
                    &[("then", &then.to_string()), ("now", &now.to_string())],
                ),
                None if outcome.starts_with(crate::store::STARTS_IN_THE_PAST) => self.t_args(
                    "approvals-outcome-starts-in-the-past",
                    &[("detail", outcome)],
                ),
                None if outcome.starts_with(crate::store::OUT_OF_ORDER) => {
                    self.t_args("approvals-outcome-out-of-order", &[("detail", outcome)])
                }
                None => outcome.to_string(),
            },
        }
    }

    /// An identity as the audit log names it ("mutuelle:MUT-X/user:awa"),
    /// as a person reads it: the person's name when `name_of` knows the
    /// login, else the login; a certificate as its system.
    pub fn identity(self, identity: &str, name_of: impl Fn(&str) -> Option<String>) -> String {
        if identity.is_empty() {
            return String::new();
        }
        if let Some(login) = crate::identity::person_login(identity) {
            return name_of(login).unwrap_or_else(|| login.to_string());
        }
        match identity.split_once(':') {
            Some(("mutuelle", id)) => self.t_args("identity-mutuelle-system", &[("id", id)]),
            Some(("scheme", id)) => self.t_args("identity-scheme-system", &[("id", id)]),
            Some(("operator", id)) => self.t_args("identity-operator", &[("id", id)]),
            _ => identity.to_string(),
        }
    }

    /// A statement line's claim, said cancelled since where it was: a
    /// closed statement keeps the line and its amounts, and the indu is in
    /// a later period ("C-1 (annulée après la clôture)").
    pub fn statement_claim(self, claim_id: &str, cancelled_since: bool) -> String {
        if cancelled_since {
            format!("{claim_id} ({})", self.t("statement-cancelled-since"))
        } else {
            claim_id.to_string()
        }
    }

    /// An identity with the name a listing gave for it (a proposal's
    /// `proposed_by_name`): the person's name, else as [`Lang::identity`]
    /// says it.
    pub fn named_identity(self, identity: &str, name: &str) -> String {
        self.identity(identity, |_| {
            Some(name.to_string()).filter(|n| !n.is_empty())
        })
    }

    /// An amount in minor units with the language's grouping ("12 500" with
    /// a narrow no-break space, or "12,500"); a currency with decimals shows
    /// them (XOF has none).
    pub fn amount(self, minor: i64, currency: &str) -> String {
        let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
        let scale = 10u64.pow(digits);
        let abs = minor.unsigned_abs();
        let (int, frac) = (abs / scale, abs % scale);
        let sep = match self {
            Lang::Fr => '\u{202f}',
            Lang::En => ',',
        };
        let raw = int.to_string();
        let mut out = String::new();
        if minor < 0 {
            out.push('-');
        }
        for (i, ch) in raw.chars().enumerate() {
            if i > 0 && (raw.len() - i) % 3 == 0 {
                out.push(sep);
            }
            out.push(ch);
        }
        if digits > 0 {
            let dot = if self == Lang::Fr { ',' } else { '.' };
            out.push(dot);
            out.push_str(&format!("{frac:0width$}", width = digits as usize));
        }
        out
    }

    /// A label and what it names, the colon set as the language sets it:
    /// "Révoquer : awa" in French (a space before it), "Revoke: awa" in
    /// English.
    pub fn labelled(self, label: &str, what: &str) -> String {
        format!("{label}{} {what}", self.colon())
    }

    /// The colon after a label or a name: " :" in French (a space before
    /// it, as French sets a colon), ":" in English. The command line's
    /// (`cli::output::Lang::colon`) is this one.
    pub fn colon(self) -> &'static str {
        match self {
            Lang::Fr => " :",
            Lang::En => ":",
        }
    }

    /// A claim's audit trail cut short (`GetClaimAuditResponse.omitted`):
    /// how many rows were left out between its oldest and its newest (the
    /// console's claim page and `passerelle admin audit`).
    pub fn audit_omitted(self, omitted: u64) -> String {
        use crate::store::AuditTrail;
        self.t_args(
            "audit-omitted",
            &[
                (
                    "omitted",
                    &self.amount(i64::try_from(omitted).unwrap_or(i64::MAX), ""),
                ),
                ("head", &AuditTrail::HEAD.to_string()),
                (
                    "tail",
                    &(AuditTrail::MAX_ROWS - AuditTrail::HEAD).to_string(),
                ),
            ],
        )
    }

    /// An amount with its currency: "12 500 XOF".
    pub fn money(self, minor: i64, currency: &str) -> String {
        format!("{}\u{a0}{currency}", self.amount(minor, currency))
    }

    /// Who a statement line pays, in words: "prestataire X" or "adhérent
    /// Y" (the console, its exports and the command line).
    pub fn payee_words(self, payee_type: &str, payee_id: &str) -> String {
        if payee_type == "member" {
            self.t_args("statement-payee-member", &[("id", payee_id)])
        } else {
            self.t_args("statement-payee-provider", &[("id", payee_id)])
        }
    }

    /// Why the scheme cancelled a claim, labelled ("Motif de l'annulation :
    /// …"), as the command line says it.
    pub fn cancel_reason(self, reason: &str) -> String {
        self.labelled(&self.t("claim-cancel-reason"), reason)
    }

    /// A claim cancelled after its period closed: that period, what the
    /// mutuelle recovers (an indu), from whom, and where it is deducted (`into`, the
    /// period that recovery was closed into; 0: the next one). One
    /// sentence for the console's claim page and the command line.
    pub fn claim_indu(
        self,
        claim: &passerelle_proto::scheme::v1::ClaimResult,
        recovery: &passerelle_proto::settlement::v1::Recovery,
        into: u32,
    ) -> String {
        self.t_args(
            "claim-indu",
            &[
                ("claim", &claim.claim_id),
                ("period", &recovery.from_period.to_string()),
                ("amount", &self.money(recovery.amount, &claim.currency)),
                ("mutuelle", &claim.mutuelle_id),
                ("payee_type", &recovery.payee_type),
                ("payee", &recovery.payee_id),
                ("into", &into.to_string()),
            ],
        )
    }

    /// What a claim's cancel meant for the closed period it was in, when
    /// it was: the indu it raised ([`Lang::claim_indu`]), or, for a claim
    /// cancelled that the mutuelle had counted nothing for, that nothing is
    /// recovered. `None` for any other claim.
    pub fn claim_after_cancel(
        self,
        claim: &passerelle_proto::scheme::v1::ClaimResult,
        detail: &passerelle_proto::settlement::v1::ClaimDetail,
    ) -> Option<String> {
        use passerelle_proto::scheme::v1::ClaimState;
        if let Some(rec) = &detail.recovery {
            return Some(self.claim_indu(claim, rec, detail.recovery_period));
        }
        (claim.state == ClaimState::Cancelled as i32 && detail.period > 0).then(|| {
            self.t_args(
                "claim-nothing-recovered",
                &[
                    ("claim", &claim.claim_id),
                    ("period", &detail.period.to_string()),
                    ("mutuelle", &claim.mutuelle_id),
                ],
            )
        })
    }

    /// What a transfer pays a payee, or what the payee owes when its
    /// recoveries outweigh its claims (it is paid nothing): "1 600 XOF à
    /// récupérer (rien n'est versé)", never a negative amount paid.
    pub fn paid_or_owed(self, minor: i64, currency: &str) -> String {
        if minor < 0 {
            self.t_args(
                "remittance-owed",
                &[("amount", &self.money(minor.saturating_neg(), currency))],
            )
        } else {
            self.money(minor, currency)
        }
    }

    /// What a settled period's transfer pays and what the payees who owe
    /// give back, said when some owe (the net due alone says neither); a
    /// settlement that pays no one is not called a transfer.
    pub fn transfer_split(self, paid: i64, owed: i64, currency: &str) -> String {
        let owed = self.money(owed, currency);
        if paid == 0 {
            return self.t_args("remittance-nothing-paid", &[("owed", &owed)]);
        }
        self.t_args(
            "remittance-transfer-split",
            &[("paid", &self.money(paid, currency)), ("owed", &owed)],
        )
    }

    /// Between the items of a list whose items may hold commas: " ; " in
    /// French (a space before, as French sets a semicolon), "; " in
    /// English.
    pub fn list_separator(self) -> &'static str {
        match self {
            Lang::Fr => " ; ",
            Lang::En => "; ",
        }
    }

    /// A percentage in basis points, in words ("80 %", "12,5 %").
    pub fn percent(self, bp: u32) -> String {
        let (whole, frac) = (bp / 100, bp % 100);
        let sep = if self == Lang::Fr { "," } else { "." };
        let n = if frac == 0 {
            whole.to_string()
        } else {
            format!("{whole}{sep}{}", format!("{frac:02}").trim_end_matches('0'))
        };
        if self == Lang::Fr {
            format!("{n}\u{a0}%")
        } else {
            format!("{n}%")
        }
    }

    /// What is wrong with a cell of a roster row, in words.
    pub fn roster_problem(self, p: &passerelle_files::roster_csv::Problem) -> String {
        use passerelle_files::roster_csv::Problem;
        match p {
            Problem::Empty => self.t("roster-empty"),
            // Written right, a day that does not exist (31/02/2026): said
            // so, rather than how to write a date.
            Problem::NotADate(v) if no_such_day(v) => {
                self.t_args("date-no-such-day", &[("value", v.trim())])
            }
            Problem::NotADate(v) => self.t_args("roster-not-a-date", &[("value", v)]),
            Problem::EndBeforeStart => self.t("roster-end-before-start"),
            Problem::DiffersFromLine(l, v) => {
                self.t_args("roster-differs", &[("line", &l.to_string()), ("value", v)])
            }
            Problem::ExcelNumber(v) => self.t_args("roster-excel-number", &[("value", v)]),
            Problem::OverlapsLine(l) => {
                self.t_args("roster-overlaps-line", &[("line", &l.to_string())])
            }
        }
    }

    /// A member's field the broker named in a refusal of a members file
    /// ("scheme_id", "products[1].end_date"), as the file's column in
    /// words, with the member's product row when it is not the first.
    pub fn roster_field(self, field: &str) -> String {
        let (column, row) = passerelle_files::roster_csv::column_of(field);
        let key = format!("roster-col-{column}");
        let mut label = self.t(&key);
        if label == key {
            label = column.to_string();
        }
        if row == 0 {
            label
        } else {
            self.t_args(
                "cli-product-row",
                &[("column", &label), ("row", &(row + 1).to_string())],
            )
        }
    }

    /// A member of a members file the broker refused, in words: a scheme
    /// or a product it does not know, a beneficiary another mutuelle covers
    /// at those dates (a precondition of `kind` COVERAGE_OVERLAP); anything
    /// else in the broker's words after the catalogue's.
    pub fn roster_refusal(self, description: &str, kind: &str) -> String {
        let quoted = description.split('"').nth(1).filter(|q| !q.is_empty());
        if kind == "COVERAGE_OVERLAP" {
            let dates: Vec<&str> = description
                .split([' ', ',', ':'])
                .filter(|w| passerelle_domain::date::parse(w).is_some())
                .collect();
            match dates[..] {
                [from, to] => {
                    return self.t_args(
                        "roster-covered-elsewhere-to",
                        &[("from", &self.iso_date(from)), ("to", &self.iso_date(to))],
                    );
                }
                [from] => {
                    return self.t_args(
                        "roster-covered-elsewhere",
                        &[("from", &self.iso_date(from))],
                    );
                }
                _ => {}
            }
        } else if let Some(q) = quoted {
            if description.starts_with("unknown scheme ") {
                return self.t_args("roster-unknown-scheme", &[("value", q)]);
            }
            if description.starts_with("unknown product ") {
                return self.t_args("roster-unknown-product", &[("value", q)]);
            }
            if description.starts_with("differs from member ") {
                return self.t_args("roster-number-case", &[("value", q)]);
            }
        }
        // "shared by N members of M, more than MAX: ..." (the store's
        // `coverage_rule`).
        if let Some(count) = description
            .strip_prefix("shared by ")
            .and_then(|rest| rest.split(' ').next())
            .filter(|n| n.parse::<u32>().is_ok())
        {
            let max = passerelle_domain::validate::MAX_MEMBERS_PER_BENEFICIARY.to_string();
            return self.t_args(
                "roster-crowded-beneficiary",
                &[("count", count), ("max", &max)],
            );
        }
        self.t_args("roster-refused", &[("detail", description)])
    }

    /// Why a roster or opening-balances file cannot be read, in words: the
    /// spreadsheet parser says its header's problems in English, the column
    /// quoted.
    pub fn roster_unreadable(self, e: &str) -> String {
        let quoted = e.split('"').nth(1).unwrap_or("").to_string();
        if e.starts_with(passerelle_files::xlsx::OLD_EXCEL) {
            self.t("roster-old-excel")
        } else if e.starts_with("not an XLSX workbook (ZIP)") {
            // The parser's English detail (a ZIP's end not found) tells a
            // clerk nothing: a damaged or cut file.
            self.t("roster-not-xlsx")
        } else if e.starts_with("not an XLSX workbook") {
            // A ZIP that is no Excel workbook: LibreOffice's .ods, others.
            self.t("roster-other-workbook")
        } else if e.contains("the header has no column") {
            self.t_args("roster-no-column", &[("column", &quoted)])
        } else if e.contains("unknown column") {
            self.t_args("roster-unknown-column", &[("column", &quoted)])
        } else {
            self.t_args("roster-unreadable", &[("detail", e)])
        }
    }

    /// Why an opening-balances file cannot be read, in words: its own
    /// columns named for an unknown one (a members file's were), else as
    /// [`Lang::roster_unreadable`] says it.
    pub fn opening_unreadable(self, e: &str) -> String {
        if e.contains("unknown column") {
            let quoted = e.split('"').nth(1).unwrap_or("").to_string();
            self.t_args("opening-unknown-column", &[("column", &quoted)])
        } else {
            self.roster_unreadable(e)
        }
    }

    /// A message with counts: each selects its plural as `$name` and is
    /// written grouped as `$name_shown` ("12 345"), as amounts are.
    pub fn counted(self, key: &str, counts: &[(&str, u64)]) -> String {
        let owned: Vec<(String, String)> = counts
            .iter()
            .flat_map(|(k, n)| {
                [
                    (k.to_string(), n.to_string()),
                    (
                        format!("{k}_shown"),
                        self.amount(i64::try_from(*n).unwrap_or(i64::MAX), ""),
                    ),
                ]
            })
            .collect();
        let args: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.t_args(key, &args)
    }

    /// Why an opening-balances file of `rows` rows cannot be sent in one
    /// call (`MAX_OPENING_BALANCES`), in words; the console and the command
    /// line, before anything is sent (the broker's refusal names no row).
    pub fn opening_too_many(self, rows: usize) -> Option<String> {
        let max = crate::service::roster::MAX_OPENING_BALANCES;
        (rows > max).then(|| {
            self.t_args(
                "opening-too-many",
                &[
                    ("count", &rows.to_string()),
                    ("rows", &self.amount(rows as i64, "")),
                    ("max", &self.amount(max as i64, "")),
                ],
            )
        })
    }

    /// A date as people write it here, day first: "31/12/2026".
    pub fn date(self, d: Date) -> String {
        format!("{:02}/{:02}/{:04}", d.day(), u8::from(d.month()), d.year())
    }

    /// A date stored as "YYYY-MM-DD", shown day first; as it is if it does
    /// not read.
    pub fn iso_date(self, s: &str) -> String {
        passerelle_domain::date::parse(s)
            .map(|d| self.date(d))
            .unwrap_or_else(|| s.to_string())
    }

    /// A time in ms since the epoch, as "31/12/2026 14:05 UTC"; "–" for 0.
    pub fn time(self, ms: i64) -> String {
        if ms <= 0 {
            return "–".into();
        }
        match time::OffsetDateTime::from_unix_timestamp(ms / 1000) {
            Ok(t) => format!(
                "{} {:02}:{:02} UTC",
                self.date(t.date()),
                t.hour(),
                t.minute()
            ),
            Err(_) => ms.to_string(),
        }
    }
}

/// "0.8" as 800, "1" as 1000; anything else as 0 (not acceptable).
fn thousandths(q: &str) -> u16 {
    let (int, frac) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let frac: u16 = format!("{frac:0<3}").parse().unwrap_or(0);
    match int {
        "0" => frac,
        "1" if frac == 0 => 1000,
        _ => 0,
    }
}

/// A date as typed by a person: see [`passerelle_domain::date::parse_typed`].
pub fn parse_date(s: &str) -> Option<Date> {
    passerelle_domain::date::parse_typed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's refusal of a placeholder beneficiary id, as the
    /// members page and the command line read it: its count and the bound
    /// in the person's words.
    #[test]
    fn a_crowded_beneficiary_id_is_said_with_its_count() {
        let members: Vec<passerelle_domain::Member> = (0..11)
            .map(|n| crate::store::conformance::sample_member("MUT-A", &format!("P-{n}"), "0"))
            .collect();
        let incoming: Vec<(usize, &passerelle_domain::Member)> =
            members.iter().enumerate().collect();
        let Err(crate::store::StoreError::Invalid(v)) = crate::store::coverage_rule(&incoming, &[])
        else {
            panic!("eleven members of one beneficiary id accepted");
        };
        assert_eq!(v.len(), 11);
        assert_eq!(
            Lang::Fr.roster_refusal(&v[0].description, ""),
            "11 adhérents de la mutuelle auraient ce n° d'assuré, plus de 10 : il désigne une seule personne (écrivez le n° du régime, pas une valeur d'attente comme 0 ou NEANT)"
        );
        assert!(
            Lang::En
                .roster_refusal(&v[10].description, "")
                .starts_with("11 members of the mutuelle")
        );
    }

    /// An opening-balances file's unknown column names its own columns, not
    /// a members file's.
    #[test]
    fn an_opening_file_names_its_own_columns() {
        let Err(e) =
            passerelle_files::opening_csv::OpeningFile::parse("foo;plafond\n", "soldes.csv")
        else {
            panic!("an unknown column read");
        };
        let said = Lang::Fr.opening_unreadable(&e);
        assert!(said.starts_with("Colonne inconnue « foo »"), "{said}");
        assert!(
            said.contains("numero_adherent") && !said.contains("scheme_id"),
            "{said}"
        );
    }

    /// An opening-balances file past what one call takes is said before
    /// anything is sent, its count and the bound grouped as amounts are;
    /// one at the bound is sent.
    #[test]
    fn an_opening_balances_file_too_long_is_said_in_words() {
        let max = crate::service::roster::MAX_OPENING_BALANCES;
        assert_eq!(Lang::Fr.opening_too_many(max), None);
        let fr = Lang::Fr.opening_too_many(60_000).unwrap();
        assert!(
            fr.starts_with("Ce fichier compte 60\u{202f}000 lignes de soldes : au plus 50\u{202f}000 par envoi."),
            "{fr}"
        );
        let en = Lang::En.opening_too_many(max + 1).unwrap();
        assert!(
            en.starts_with("This file holds 50,001 balance rows: at most 50,000"),
            "{en}"
        );
    }

    /// A members file's date written right whose day does not exist is
    /// said so (it read "n'est pas une date (jj/mm/aaaa)", as if badly
    /// written); one badly written says how to write it.
    #[test]
    fn a_members_files_date_that_does_not_exist_is_said_so() {
        use passerelle_files::roster_csv::Problem;
        let fr = Lang::Fr;
        let said = fr.roster_problem(&Problem::NotADate("31/02/2026".into()));
        assert!(said.contains("n'existe pas"), "{said}");
        for badly in ["2026/02/31", "31,02/2026", "demain"] {
            let said = fr.roster_problem(&Problem::NotADate(badly.into()));
            assert!(said.contains("n'est pas une date"), "{badly}: {said}");
        }
    }

    /// A partner's error reads in the person's language, its kind said by
    /// the catalogue, the transport's words kept; anything else (an
    /// inbound row's outcome, "ok") as it was stored.
    #[test]
    fn a_partner_error_says_its_kind_in_the_persons_language() {
        let fr = Lang::Fr;
        assert_eq!(
            fr.partner_error("partner unavailable: Unavailable: tcp connect error"),
            "mutuelle indisponible : Unavailable: tcp connect error"
        );
        assert_eq!(
            fr.partner_error("probe: partner missed its deadline of 2000 ms"),
            "sonde : délai de 2000 ms dépassé"
        );
        assert_eq!(
            fr.partner_error("malformed partner answer: line 1: x"),
            "réponse invalide : line 1: x"
        );
        assert_eq!(
            fr.partner_error(crate::service::partner::MALFORMED_SAID),
            "réponse invalide : le détail est dans le motif de la demande (pour un accord préalable, dans l'erreur rendue au régime)"
        );
        assert_eq!(
            Lang::En.partner_error("partner rejected: no such member"),
            "refused by the mutuelle: no such member"
        );
        for kept in ["ok", "InvalidArgument: claim_id", ""] {
            assert_eq!(fr.partner_error(kept), kept);
        }
        // The broker's own words for a pause: said in full.
        assert_eq!(
            fr.partner_error("partner unavailable: mutuelle MUT-LEGACY is paused by an operator"),
            "mutuelle MUT-LEGACY mise en pause par un opérateur : rien ne lui est envoyé jusqu'à sa reprise"
        );
        // openIMIS cannot cancel: what a person does, in French too.
        let (before, after) = passerelle_adapters::OPENIMIS_NO_CANCEL;
        let note = format!(
            "{}not supported by this partner: {before}PS0123456789ABCD{after}",
            crate::service::claims::CANCEL_NOT_DELIVERED
        );
        assert_eq!(
            fr.claim_note(&note),
            fr.t_args(
                "claim-cancel-not-delivered",
                &[("detail", "openIMIS ne permet aucune annulation par FHIR : rejetez la demande PS0123456789ABCD dans openIMIS, à la main")]
            )
        );
    }

    /// What a cancel meant for the closed period a claim was in: its indu,
    /// to be deducted in the open period and then deducted in one; nothing
    /// to recover where the mutuelle had counted nothing; nothing said for
    /// a claim in no closed period or not cancelled.
    #[test]
    fn a_cancel_after_its_period_closed_says_what_follows() {
        use passerelle_proto::scheme::v1::{ClaimResult, ClaimState};
        use passerelle_proto::settlement::v1::{ClaimDetail, Recovery};
        let claim = ClaimResult {
            claim_id: "S-2".into(),
            mutuelle_id: "MUT-R".into(),
            currency: "XOF".into(),
            state: ClaimState::Cancelled as i32,
            ..Default::default()
        };
        let mut detail = ClaimDetail {
            period: 1,
            ..Default::default()
        };
        assert_eq!(
            Lang::Fr.claim_after_cancel(&claim, &detail).as_deref(),
            Some(
                "La demande S-2 reste dans la période 1, déjà clôturée : MUT-R n'avait \
                 rien pris en charge pour elle, il n'y a rien à récupérer."
            )
        );
        detail.recovery = Some(Recovery {
            amount: 1_600,
            from_period: 1,
            payee_type: "member".into(),
            payee_id: "R-2".into(),
            ..Default::default()
        });
        let said = |d: &ClaimDetail| Lang::Fr.claim_after_cancel(&claim, d).unwrap();
        assert!(
            said(&detail).ends_with(
                "auprès de l'adhérent R-2 (un indu), à déduire dans la période en cours, à sa clôture."
            ),
            "{}",
            said(&detail)
        );
        detail.recovery_period = 2;
        assert!(said(&detail).ends_with("(un indu), déduits dans la période 2."));
        // In no closed period, or not cancelled: nothing to say.
        let open = ClaimDetail::default();
        assert_eq!(Lang::Fr.claim_after_cancel(&claim, &open), None);
        let standing = ClaimResult {
            state: ClaimState::Coordinated as i32,
            ..claim.clone()
        };
        let closed = ClaimDetail {
            period: 1,
            ..Default::default()
        };
        assert_eq!(Lang::En.claim_after_cancel(&standing, &closed), None);
    }

    /// A proposed close says its count of claims grouped as the language
    /// writes numbers, its plural chosen by the count.
    #[test]
    fn a_proposed_close_groups_its_count_of_claims() {
        use crate::service::approvals::Change;
        let body = |claims: u32| {
            serde_json::to_string(&Change::ClosePeriod {
                scheme_id: "CNSS".into(),
                mutuelle_id: "MUT-A".into(),
                until_ms: 0,
                content: crate::store::PeriodContent {
                    claim_count: claims,
                    billed: 0,
                    scheme: 0,
                    mutuelle: 2_000,
                    recoveries: 3_200,
                },
                currency: "XOF".into(),
            })
            .unwrap()
        };
        let fr = Lang::Fr.change_words(&body(1000));
        assert!(fr.contains(" : 1\u{202f}000 demandes, "), "{fr}");
        assert!(Lang::Fr.change_words(&body(1)).contains(" : 1 demande, "));
        let en = Lang::En.change_words(&body(1000));
        assert!(en.contains(": 1,000 claims, "), "{en}");
        assert!(Lang::En.change_words(&body(1)).contains(": 1 claim, "));
        // Its recoveries negative beside M and the net due they make.
        assert!(
            fr.contains(
                "part mutuelle 2\u{202f}000\u{a0}XOF, indus -3\u{202f}200\u{a0}XOF, net dû -1\u{202f}200\u{a0}XOF"
            ),
            "{fr}"
        );
    }

    /// What a settlement paid and what is owed, in both languages; one
    /// that pays no one is not called a transfer.
    #[test]
    fn a_settlement_says_what_it_paid_and_what_is_owed() {
        assert_eq!(
            Lang::Fr.transfer_split(4_600, 1_600, "XOF"),
            "Le virement verse 4\u{202f}600\u{a0}XOF aux bénéficiaires payés ; 1\u{202f}600\u{a0}XOF sont à récupérer auprès de ceux qui doivent."
        );
        assert_eq!(
            Lang::En.transfer_split(4_600, 1_600, "XOF"),
            "The transfer pays 4,600\u{a0}XOF to the payees who are paid; 1,600\u{a0}XOF is to be recovered from those who owe."
        );
        assert_eq!(
            Lang::Fr.transfer_split(0, 4_600, "XOF"),
            "Ce règlement ne verse rien : 4\u{202f}600\u{a0}XOF sont à récupérer auprès de ceux qui doivent."
        );
        assert_eq!(
            Lang::En.transfer_split(0, 4_600, "XOF"),
            "This settlement pays no one: 4,600\u{a0}XOF is to be recovered from those who owe."
        );
    }

    /// Identifiers stay as written (leading zeros, long references); the
    /// SMS fits in 160 characters whatever the claim id, amounts first.
    #[test]
    fn a_notice_keeps_ids_as_written_and_its_sms_fits() {
        use passerelle_proto::scheme::v1 as pb;
        let r = |claim_id: &str| pb::ClaimResult {
            scheme_id: "CNSS".into(),
            claim_id: claim_id.into(),
            mutuelle_id: "MUT-A".into(),
            currency: "XOF".into(),
            totals: Some(pb::ClaimTotals {
                billed: 23_600,
                scheme_share: 6_400,
                mutuelle_share: 1_600,
                patient_share: 15_600,
            }),
            ..Default::default()
        };
        let day = passerelle_domain::date::parse("2026-11-20").unwrap();
        let (text, sms) = Lang::Fr.patient_notice(&r("000123"), "0042", day);
        assert!(
            text.starts_with("Demande 000123 du 20/11/2026 (0042)"),
            "{text}"
        );
        assert!(sms.ends_with("Demande 000123."), "{sms}");
        assert_eq!(
            Lang::Fr.t_args(
                "approvals-settle",
                &[
                    ("pair", "A – B"),
                    ("number", "3"),
                    ("reference", "0012345678901234567"),
                    ("net", "1")
                ]
            ),
            "Enregistrer le règlement de la période 3 de A – B, référence 0012345678901234567, net dû 1."
        );
        let long = "C".repeat(128);
        for l in [Lang::Fr, Lang::En] {
            let (_, sms) = l.patient_notice(&r(&long), "P", day);
            assert!(sms.chars().count() <= 160, "{} {sms}", sms.chars().count());
            assert!(sms.contains("15600 XOF") && sms.contains("..."), "{sms}");
        }
        let mut eur = r("E1");
        eur.currency = "EUR".into();
        let (_, sms) = Lang::En.patient_notice(&eur, "P", day);
        assert!(sms.contains("left for you to pay 156.00 EUR"), "{sms}");
    }

    /// Every `key = ` of one catalogue, in order (a key twice is there
    /// twice).
    fn key_lines(src: &str) -> Vec<String> {
        src.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && l.contains(" = "))
            .map(|l| l.split(" = ").next().unwrap().trim().to_string())
            .collect()
    }

    /// Every `key = ` of one catalogue.
    fn keys(src: &str) -> std::collections::BTreeSet<String> {
        key_lines(src).into_iter().collect()
    }

    #[test]
    fn both_catalogues_hold_the_same_keys_and_parse() {
        assert_eq!(keys(FR), keys(EN));
        assert!(keys(FR).len() > 100);
        for src in [FR, EN] {
            // A key defined twice: the bundle keeps the first and drops
            // the second without a word.
            let mut seen = std::collections::BTreeSet::new();
            for k in key_lines(src) {
                assert!(seen.insert(k.clone()), "{k} is defined twice");
            }
            FluentResource::try_new(src.to_string()).expect("a catalogue parses");
        }
        assert_eq!(
            Lang::Fr.t_args("signin-wait", &[("seconds", "8")]),
            "Trop d'essais. Réessayez dans 8 secondes."
        );
        assert_eq!(Lang::En.t("nav-claims"), "Claims");
        assert_eq!(
            Lang::Fr.t_args("signin-wait", &[("seconds", "1")]),
            "Trop d'essais. Réessayez dans 1 seconde."
        );
        assert_eq!(
            Lang::Fr.t("state-pending_partner"),
            "en attente de la mutuelle"
        );
    }

    /// Every sentence of the broker's reasons is in both catalogues and
    /// takes exactly the values the engine gives it (a missing one would
    /// show as "{$name}"); a French reader gets French with the figures
    /// written as French writes them, never the engine's English.
    #[test]
    fn every_reason_detail_reads_in_both_languages() {
        use passerelle_domain::DetailKey;
        let sample = |name: &str| match name {
            n if n.ends_with("_amount") => "200000",
            n if n.ends_with("_date") => "2026-12-31",
            n if n.ends_with("_bp") => "8050",
            "category" => "lab",
            "per" => "stay",
            "scope" => "beneficiary-year",
            "left" => "0",
            "limit" => "3",
            _ => "X-1",
        };
        for lang in [Lang::Fr, Lang::En] {
            let b = bundle(lang);
            for k in DetailKey::ALL {
                let key = format!("detail-{}", k.as_str());
                let pattern = b
                    .get_message(&key)
                    .and_then(|m| m.value())
                    .unwrap_or_else(|| panic!("{key} missing in {lang:?}"));
                let mut args = FluentArgs::new();
                for name in k.args() {
                    args.set(*name, FluentValue::from(sample(name)));
                }
                let mut errors = Vec::new();
                let said = b.format_pattern(pattern, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{key} in {lang:?}: {errors:?}");
                assert!(!said.contains('{') && !said.is_empty(), "{key}: {said}");
                // Each value the engine gives is said.
                let args: std::collections::HashMap<String, String> = k
                    .args()
                    .iter()
                    .map(|n| (n.to_string(), sample(n).to_string()))
                    .collect();
                let shown = lang.detail(k.as_str(), &args, "XOF").unwrap();
                for name in k.args() {
                    let written = lang.detail_value(name, sample(name), "XOF");
                    let selected = matches!(*name, "per" | "scope" | "left" | "what");
                    assert!(
                        selected || shown.contains(&written),
                        "{key} in {lang:?} shows no {name} ({written}): {shown}"
                    );
                }
            }
        }
        let args = |v: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ceiling = args(&[
            ("scope", "beneficiary-year"),
            ("period", "2026"),
            ("left_amount", "0"),
            ("limit_amount", "200000"),
        ]);
        assert_eq!(
            Lang::Fr.detail("ceiling-reached", &ceiling, "XOF").unwrap(),
            "plafond annuel par bénéficiaire (2026) : il restait 0\u{a0}XOF sur 200\u{202f}000\u{a0}XOF"
        );
        assert_eq!(
            Lang::En.detail("ceiling-reached", &ceiling, "XOF").unwrap(),
            "yearly ceiling per beneficiary (2026): 0\u{a0}XOF of 200,000\u{a0}XOF was left"
        );
        let stay = |left: &str| {
            args(&[
                ("limit", "3"),
                ("act", "ECHO"),
                ("per", "stay"),
                ("left", left),
            ])
        };
        assert_eq!(
            Lang::Fr.detail("act-count-limit", &stay("0"), "").unwrap(),
            "au plus 3 actes ECHO par séjour : il n'en restait aucun"
        );
        assert_eq!(
            Lang::Fr.detail("act-count-limit", &stay("2"), "").unwrap(),
            "au plus 3 actes ECHO par séjour : il en restait 2"
        );
        assert_eq!(
            Lang::En.detail("act-count-limit", &stay("1"), "").unwrap(),
            "at most 3 ECHO acts per stay: 1 was left"
        );
        // A limit of one act, in the singular.
        let day = args(&[
            ("limit", "1"),
            ("act", "CONS"),
            ("per", "day"),
            ("left", "0"),
        ]);
        assert_eq!(
            Lang::Fr.detail("act-count-limit", &day, "").unwrap(),
            "au plus 1 acte CONS par jour : il n'en restait aucun"
        );
        assert_eq!(
            Lang::En.detail("act-count-limit", &day, "").unwrap(),
            "at most 1 CONS act a day: none was left"
        );
        let category = args(&[
            ("category", "pharmacy"),
            ("period", "2026"),
            ("left_amount", "1500"),
            ("limit_amount", "60000"),
        ]);
        assert_eq!(
            Lang::Fr
                .detail("category-ceiling-reached", &category, "XOF")
                .unwrap(),
            "plafond annuel « pharmacie » (2026) : il restait 1\u{202f}500\u{a0}XOF sur 60\u{202f}000\u{a0}XOF"
        );
        assert_eq!(
            Lang::Fr
                .detail(
                    "waiting-period",
                    &args(&[("category", "lab"), ("from_date", "2027-01-15")]),
                    ""
                )
                .unwrap(),
            "délai de carence : catégorie « analyses de laboratoire » couverte à partir du 15/01/2027"
        );
        assert_eq!(
            Lang::Fr
                .detail("ticket-moderateur-rate", &args(&[("rate_bp", "8050")]), "")
                .unwrap(),
            "ticket modérateur couvert à 80,5\u{a0}%"
        );
        // A key this broker does not know, or none: the words as given.
        let unknown = passerelle_proto::common::v1::Reason {
            code: passerelle_proto::common::v1::ReasonCode::CeilingReached as i32,
            message: "a newer broker's words".into(),
            detail_key: "from-a-newer-broker".into(),
            ..Default::default()
        };
        assert_eq!(
            Lang::En.reason_words(&unknown, "XOF"),
            "a newer broker's words"
        );
        assert_eq!(Lang::Fr.reason_words(&unknown, "XOF"), "plafond atteint");
        // A mutuelle's rule in its own words, kept after the sentence for
        // its code.
        let rule = passerelle_proto::common::v1::Reason {
            code: passerelle_proto::common::v1::ReasonCode::PartnerRule as i32,
            message: "médicament hors liste".into(),
            ..Default::default()
        };
        assert_eq!(
            Lang::Fr.reason_words(&rule, "XOF"),
            "règle de la mutuelle : médicament hors liste"
        );
        assert_eq!(Lang::En.reason_words(&rule, "XOF"), "médicament hors liste");
        // A refusal met with the mutuelle: its words on the claim page (a
        // rejection), not in the patient's notice.
        let refusal = passerelle_proto::common::v1::Reason {
            code: passerelle_proto::common::v1::ReasonCode::PartnerRejected as i32,
            message: "adhérent suspendu".into(),
            ..Default::default()
        };
        assert_eq!(
            Lang::Fr.reason_words(&refusal, "XOF"),
            "refusé par la mutuelle"
        );
        assert_eq!(
            Lang::Fr.rejection_words(&refusal, "XOF"),
            "refusé par la mutuelle : adhérent suspendu"
        );
        assert_eq!(
            Lang::En.rejection_words(&refusal, "XOF"),
            "adhérent suspendu"
        );
        // An answer the broker refused: its words are the broker's own, in
        // English, kept out of the French page.
        let invalid = passerelle_proto::common::v1::Reason {
            code: passerelle_proto::common::v1::ReasonCode::PartnerAnswerInvalid as i32,
            message: "line 1: mutuelle share 5001 above the remainder 5000".into(),
            ..Default::default()
        };
        assert_eq!(
            Lang::Fr.rejection_words(&invalid, "XOF"),
            "réponse de la mutuelle invalide"
        );
        assert_eq!(
            Lang::Fr.rejection_words(&rule, "XOF"),
            Lang::Fr.reason_words(&rule, "XOF")
        );
    }

    #[test]
    fn every_key_the_code_and_templates_use_is_in_the_catalogue() {
        let known = keys(FR);
        let mut sources: Vec<String> = Vec::new();
        // The broker's own commands, whose words come from the same
        // catalogue (the dev banner's are checked by its own test).
        for file in ["src/main.rs", "src/dev.rs"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            sources.push(std::fs::read_to_string(path).unwrap());
        }
        for dir in ["src/console", "src/console/pages", "templates/console"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                if path.is_file() {
                    sources.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        let mut used = 0;
        for src in &sources {
            let calls = src
                .match_indices(".t(\"")
                .map(|(i, _)| i + 4)
                .chain(src.match_indices(".t_args(\"").map(|(i, _)| i + 9));
            for i in calls {
                let rest = &src[i..];
                let key = &rest[..rest.find('"').unwrap()];
                used += 1;
                assert!(known.contains(key), "{key} is not in the catalogue");
            }
        }
        assert!(used > 50, "{used} keys found in use");
    }

    #[test]
    fn every_reason_code_and_claim_state_has_words() {
        let known = keys(FR);
        for code in 0..64 {
            if let Ok(c) = passerelle_proto::common::v1::ReasonCode::try_from(code) {
                let key = format!(
                    "reason-{}",
                    c.as_str_name().trim_start_matches("REASON_CODE_")
                );
                assert!(known.contains(&key), "{key}");
            }
        }
        for s in [
            "received",
            "pending_partner",
            "coordinated",
            "rejected",
            "cancel_pending",
            "cancelled",
            "open",
            "closed",
            "settled",
        ] {
            assert!(known.contains(&format!("state-{s}")), "{s}");
        }
        for c in ["closed", "open", "half_open"] {
            assert!(known.contains(&format!("circuit-{c}")), "{c}");
        }
    }

    #[test]
    fn a_claims_partner_note_is_said_in_each_language() {
        let note = "cancel not delivered: partner rejected: HTTP 422";
        assert_eq!(
            Lang::Fr.claim_note(note),
            "Annulation non transmise à la mutuelle : à faire à la main dans son propre système (refus de la mutuelle : HTTP 422)."
        );
        assert_eq!(
            Lang::En.claim_note(note),
            "Cancel not delivered to the mutuelle: to be done by hand in its own system (refused by the mutuelle: HTTP 422)."
        );
        assert_eq!(
            Lang::Fr.claim_note("partner unavailable: connection refused"),
            "Dernière erreur rencontrée auprès de la mutuelle : mutuelle indisponible : connection refused"
        );
    }

    #[test]
    fn accept_language_picks_the_preferred_of_french_and_english() {
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9,fr;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("fr-FR,fr;q=0.9,en;q=0.8"), Lang::Fr);
        assert_eq!(Lang::from_accept("de-DE,en;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept("de"), Lang::Fr);
        assert_eq!(Lang::from_accept(""), Lang::Fr);
    }

    #[test]
    fn amounts_are_grouped_as_each_language_writes_them() {
        assert_eq!(Lang::Fr.amount(1_234_567, "XOF"), "1\u{202f}234\u{202f}567");
        assert_eq!(Lang::En.amount(1_234_567, "XOF"), "1,234,567");
        assert_eq!(Lang::Fr.amount(-500, "XOF"), "-500");
        assert_eq!(Lang::Fr.amount(123_456, "EUR"), "1\u{202f}234,56");
        assert_eq!(Lang::Fr.money(12_500, "XOF"), "12\u{202f}500\u{a0}XOF");
        assert_eq!(Lang::En.paid_or_owed(4_600, "XOF"), "4,600\u{a0}XOF");
        assert_eq!(Lang::En.labelled("Revoke", "awa"), "Revoke: awa");
        assert_eq!(Lang::Fr.labelled("Révoquer", "awa"), "Révoquer : awa");
        assert_eq!(
            Lang::En.paid_or_owed(-2_200, "XOF"),
            "2,200\u{a0}XOF to recover (nothing is paid)"
        );
    }

    #[test]
    fn dates_are_read_day_first_and_never_month_first() {
        let d = |y, m, day| {
            Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap()
        };
        assert_eq!(parse_date("31/12/2026"), Some(d(2026, 12, 31)));
        assert_eq!(parse_date(" 1/2/2026 "), Some(d(2026, 2, 1)));
        assert_eq!(parse_date("01-02-2026"), Some(d(2026, 2, 1)));
        assert_eq!(parse_date("2026-12-31"), Some(d(2026, 12, 31)));
        // As a phone's decimal keypad in French types it.
        assert_eq!(parse_date("31,12,2026"), Some(d(2026, 12, 31)));
        assert_eq!(parse_date("31,12/2026"), None);
        assert_eq!(parse_date("12,31,2026"), None);
        assert_eq!(parse_date("12/31/2026"), None, "month first is refused");
        assert_eq!(parse_date("31/12/26"), None);
        assert_eq!(parse_date("30/02/2026"), None);
        assert_eq!(parse_date("31/12-2026"), None, "one separator throughout");
        assert_eq!(parse_date("+1/12/2026"), None, "digits only");
        assert_eq!(crate::cli::typed_date("1/2/2026").unwrap(), "2026-02-01");
        assert!(
            crate::cli::typed_date("12/31/2026")
                .unwrap_err()
                .contains("day first")
        );
        assert_eq!(Lang::Fr.date(d(2026, 2, 1)), "01/02/2026");
    }
}
