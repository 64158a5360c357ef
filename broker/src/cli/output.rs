//! Output of the client commands: aligned tables (the default) or JSON, in
//! English or French, with money grouped by thousands.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// Language of the tables and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    /// From `--lang`, else from the environment ([`Lang::from_locale`]).
    /// Also the language of the process's messages from then on
    /// ([`Lang::of_process`]): a command runs in one language.
    pub fn detect(flag: Option<Lang>) -> Lang {
        let l = flag.unwrap_or_else(|| Lang::from_locale(|name| std::env::var(name).ok()));
        let _ = PROCESS_LANG.set(l);
        l
    }

    /// The language of the locale's messages as gettext reads them: the
    /// first of LC_ALL, LC_MESSAGES, LANG that is set; then, unless that
    /// locale is C or POSIX, the first language of LANGUAGE's list
    /// (`fr:en`) that is French or English, before the locale's own.
    /// French for `fr*`, else English.
    pub fn from_locale(var: impl Fn(&str) -> Option<String>) -> Lang {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let locale = set("LC_ALL")
            .or_else(|| set("LC_MESSAGES"))
            .or_else(|| set("LANG"))
            .unwrap_or_default();
        let of = |tag: &str| {
            if tag.starts_with("fr") {
                Some(Lang::Fr)
            } else if tag.starts_with("en") {
                Some(Lang::En)
            } else {
                None
            }
        };
        let c_locale =
            locale.is_empty() || locale == "C" || locale == "POSIX" || locale.starts_with("C.");
        let listed = if c_locale {
            None
        } else {
            set("LANGUAGE").and_then(|list| list.split(':').find_map(of))
        };
        listed.or_else(|| of(&locale)).unwrap_or(Lang::En)
    }

    /// The language [`Lang::detect`] chose for this process (English
    /// before it ran).
    pub fn of_process() -> Lang {
        PROCESS_LANG.get().copied().unwrap_or(Lang::En)
    }

    /// The console catalogue's language of the same name.
    pub fn catalogue(self) -> crate::console::i18n::Lang {
        match self {
            Lang::Fr => crate::console::i18n::Lang::Fr,
            Lang::En => crate::console::i18n::Lang::En,
        }
    }

    /// A word or phrase of the tables and messages, given in English: its
    /// text in this language, from the one message catalogue
    /// (`broker/locales/*.ftl`, key `cli-` and the English text in lower
    /// case with dashes; see [`catalogue_key`]). A phrase the catalogue
    /// lacks is shown in English (a test checks every one used is there).
    pub fn t(self, en: &'static str) -> &'static str {
        static CACHE: OnceLock<Mutex<HashMap<(bool, &'static str), &'static str>>> =
            OnceLock::new();
        let fr = self == Lang::Fr;
        let cache = CACHE.get_or_init(Default::default);
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: one entry per phrase of the code and language, each
        // read once from the catalogue (and kept for the process).
        let text: &'static str = map.entry((fr, en)).or_insert_with(|| {
            let key = catalogue_key(en);
            let text = self.catalogue().t(&key);
            if text == key {
                en
            } else {
                Box::leak(text.into_boxed_str())
            }
        });
        text
    }

    /// The colon after a label or a name: " :" in French (a space before
    /// it, as French sets a colon), ":" in English.
    pub fn colon(self) -> &'static str {
        self.catalogue().colon()
    }

    /// A phrase of [`Lang::t`] as a label, its colon set as the language
    /// sets it: "couvert :", "covered:".
    pub fn label(self, en: &'static str) -> String {
        format!("{}{}", self.t(en), self.colon())
    }

    /// An amount in minor units, grouped: "12,500" or "12 500" (XOF has no
    /// decimals; two-decimal currencies show them).
    pub fn money(self, amount: i64, currency: &str) -> String {
        let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
        let neg = amount < 0;
        let abs = amount.unsigned_abs();
        let scale = 10u64.pow(digits);
        let (int, frac) = (abs / scale, abs % scale);
        let sep = if self == Lang::Fr { '\u{202f}' } else { ',' };
        let raw = int.to_string();
        let mut grouped = String::new();
        for (i, ch) in raw.chars().enumerate() {
            if i > 0 && (raw.len() - i) % 3 == 0 {
                grouped.push(sep);
            }
            grouped.push(ch);
        }
        if digits > 0 {
            let dot = if self == Lang::Fr { ',' } else { '.' };
            let _ = write!(grouped, "{dot}{frac:0width$}", width = digits as usize);
        }
        if neg { format!("-{grouped}") } else { grouped }
    }

    /// A claim state, in words.
    pub fn state(self, s: &str) -> &'static str {
        let en = match s {
            "received" => "received",
            "pending_partner" => "pending at mutuelle",
            "coordinated" => "coordinated",
            "rejected" => "rejected",
            "cancel_pending" => "cancel pending",
            "cancelled" => "cancelled",
            "open" => "open",
            "closed" => "closed",
            "settled" => "settled",
            _ => "unknown",
        };
        self.t(en)
    }
}

static PROCESS_LANG: OnceLock<Lang> = OnceLock::new();

/// The catalogue key of a phrase the code gives in English:
/// `cli-` and the phrase in lower case, each run of other characters a dash
/// ("billed (B)" is `cli-billed-b`).
pub fn catalogue_key(en: &str) -> String {
    let mut key = String::from("cli-");
    let mut dash = false;
    for c in en.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            if dash && !key.ends_with('-') {
                key.push('-');
            }
            key.push(c);
            dash = false;
        } else {
            dash = true;
        }
    }
    key
}

/// A plain table: a header row and rows, numbers right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    pub fn new(lang: Lang, header: &[&'static str]) -> Table {
        Table {
            header: header.iter().map(|h| lang.t(h).to_string()).collect(),
            rows: Vec::new(),
            right: vec![false; header.len()],
        }
    }

    /// Right-aligns these columns (amounts, counts).
    pub fn right(mut self, cols: &[usize]) -> Table {
        for &c in cols {
            if c < self.right.len() {
                self.right[c] = true;
            }
        }
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.header.len();
        let width = |c: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut parts = Vec::with_capacity(n);
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(cell.chars().count());
                parts.push(if self.right[c] {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                });
            }
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(&mut out, &self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

/// Milliseconds since the epoch as "31/12/2026 14:05:09" UTC (day first,
/// as every date the CLI shows), or "never".
pub fn when(lang: Lang, ms: i64) -> String {
    if ms <= 0 {
        return lang.t("never").to_string();
    }
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000);
    match t {
        Ok(t) => format!(
            "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
            t.day(),
            t.month() as u8,
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The locale's language as gettext reads it: LANGUAGE's list first,
    /// unless the locale is C; then LC_ALL, LC_MESSAGES, LANG.
    #[test]
    fn the_language_is_read_from_the_locale_as_gettext_does() {
        let cases: [(&[(&str, &str)], Lang); 9] = [
            (&[], Lang::En),
            (&[("LANG", "fr_TG.UTF-8")], Lang::Fr),
            (
                &[("LANG", "fr_ML.UTF-8"), ("LC_MESSAGES", "en_US.UTF-8")],
                Lang::En,
            ),
            (
                &[("LANG", "en_US.UTF-8"), ("LC_ALL", "fr_FR.UTF-8")],
                Lang::Fr,
            ),
            (&[("LANG", "en_US.UTF-8"), ("LANGUAGE", "fr:en")], Lang::Fr),
            (
                &[("LANG", "fr_TG.UTF-8"), ("LANGUAGE", "de:en_GB:fr")],
                Lang::En,
            ),
            (&[("LANG", "fr_TG.UTF-8"), ("LANGUAGE", "de")], Lang::Fr),
            (&[("LANG", "C.UTF-8"), ("LANGUAGE", "fr")], Lang::En),
            (&[("LANGUAGE", "fr")], Lang::En),
        ];
        for (vars, want) in cases {
            let var = |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            assert_eq!(Lang::from_locale(var), want, "{vars:?}");
        }
    }

    /// Every phrase the commands show through `t` (and every table
    /// header) is in both catalogues.
    #[test]
    fn every_phrase_of_the_commands_is_in_the_catalogue() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
        let mut files = vec![];
        for d in [dir.clone(), dir.join("commands")] {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(p).unwrap();
                    // The code, not its tests (this one included).
                    files.push(text.split("#[cfg(test)]").next().unwrap().to_string());
                }
            }
        }
        let mut phrases = Vec::new();
        for src in &files {
            for call in [".t(\"", ".label(\""] {
                for (i, _) in src.match_indices(call) {
                    let rest = &src[i + call.len()..];
                    phrases.push(rest[..rest.find('"').unwrap()].to_string());
                }
            }
            for (i, _) in src.match_indices("Table::new(") {
                let rest = &src[i..];
                let Some(open) = rest.find("&[") else {
                    continue;
                };
                let close = rest[open..].find(']').unwrap() + open;
                for lit in rest[open..close].split('"').skip(1).step_by(2) {
                    phrases.push(lit.to_string());
                }
            }
        }
        assert!(phrases.len() > 60, "{}", phrases.len());
        for p in &phrases {
            let key = catalogue_key(p);
            for l in [
                crate::console::i18n::Lang::Fr,
                crate::console::i18n::Lang::En,
            ] {
                assert_ne!(
                    l.t(&key),
                    key,
                    "{p:?} ({key}) is missing from the {l:?} catalogue"
                );
            }
        }
        assert_eq!(Lang::Fr.t("billed (B)"), "facturé (B)");
        assert_eq!(Lang::En.t("billed (B)"), "billed (B)");
        assert_eq!(
            catalogue_key("circuit half-open (trial call)"),
            "cli-circuit-half-open-trial-call"
        );
    }

    #[test]
    fn money_is_grouped_per_language() {
        assert_eq!(Lang::En.money(1_234_567, "XOF"), "1,234,567");
        assert_eq!(Lang::Fr.money(1_234_567, "XOF"), "1\u{202f}234\u{202f}567");
        assert_eq!(Lang::En.money(-4500, "XOF"), "-4,500");
        assert_eq!(Lang::En.money(123456, "EUR"), "1,234.56");
        assert_eq!(Lang::Fr.money(5, "EUR"), "0,05");
        assert_eq!(Lang::En.money(0, "XOF"), "0");
    }

    #[test]
    fn tables_align_numbers_right() {
        let mut t = Table::new(Lang::En, &["claim", "billed (B)"]).right(&[1]);
        t.row(vec!["C-1".into(), "5,000".into()]);
        t.row(vec!["C-22".into(), "17,000".into()]);
        assert_eq!(
            t.render(),
            "claim  billed (B)\n-----  ----------\nC-1         5,000\nC-22       17,000\n"
        );
        assert_eq!(Lang::Fr.t("billed (B)"), "facturé (B)");
        assert_eq!(Lang::Fr.state("coordinated"), "coordonnée");
    }
}
