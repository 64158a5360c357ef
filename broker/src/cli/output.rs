//! Output of the client commands: aligned tables (the default) or JSON, in
//! English or French, with money grouped by thousands.

use std::fmt::Write as _;

/// Language of the tables and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    /// From `--lang`, else from LANG / LC_ALL (fr_* gives French).
    pub fn detect(flag: Option<Lang>) -> Lang {
        if let Some(l) = flag {
            return l;
        }
        let env = std::env::var("LC_ALL")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::var("LANG").ok())
            .unwrap_or_default();
        if env.starts_with("fr") {
            Lang::Fr
        } else {
            Lang::En
        }
    }

    /// Translates an English label; unknown labels are returned as they are.
    pub fn t(self, en: &'static str) -> &'static str {
        if self == Lang::En {
            return en;
        }
        FR.iter()
            .find(|(e, _)| *e == en)
            .map(|(_, f)| *f)
            .unwrap_or(en)
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

const FR: &[(&str, &str)] = &[
    ("proposal", "proposition"),
    ("change", "changement"),
    ("proposed by", "proposée par"),
    ("proposed at", "proposée le"),
    ("hash", "empreinte"),
    ("claim", "demande"),
    ("state", "état"),
    ("scheme", "régime"),
    ("mutuelle", "mutuelle"),
    ("member", "adhérent"),
    ("household", "famille"),
    ("provider", "prestataire"),
    ("invoice", "facture"),
    ("date of care", "date des soins"),
    ("line", "ligne"),
    ("act", "acte"),
    ("billed (B)", "facturé (B)"),
    ("scheme (S)", "régime (S)"),
    ("mutuelle (M)", "mutuelle (M)"),
    ("patient (P)", "patient (P)"),
    ("remainder (R)", "reste (R)"),
    ("reasons", "motifs"),
    ("total", "total"),
    ("covered", "couvert"),
    ("not covered", "non couvert"),
    ("yes", "oui"),
    ("no", "non"),
    ("product", "produit"),
    ("dues paid until", "cotisations payées jusqu'au"),
    ("ceiling", "plafond"),
    ("period", "période"),
    ("limit", "limite"),
    ("used", "consommé"),
    ("remaining", "reste"),
    ("patient bears", "à la charge du patient"),
    ("applies to", "s'applique à"),
    ("value", "valeur"),
    ("co-payment", "participation forfaitaire"),
    ("co-payment rate", "taux de participation"),
    ("co-payment maximum", "plafond de participation"),
    ("deductible", "franchise"),
    ("excluded", "exclu"),
    ("already borne", "déjà à sa charge"),
    ("family", "famille"),
    ("out of network", "hors réseau"),
    ("annual", "annuel"),
    ("day", "par jour"),
    ("lifetime", "à vie"),
    ("claims", "demandes"),
    ("recoveries", "indus"),
    ("net due", "net à payer"),
    ("payee", "bénéficiaire du paiement"),
    ("closed", "clôturée"),
    ("settled", "réglée"),
    ("open", "ouverte"),
    ("reference", "référence"),
    ("received", "reçue"),
    ("pending at mutuelle", "en attente de la mutuelle"),
    ("coordinated", "coordonnée"),
    ("rejected", "rejetée"),
    ("cancel pending", "annulation en cours"),
    ("cancelled", "annulée"),
    ("unknown", "inconnu"),
    ("adapter", "adaptateur"),
    ("last success", "dernier succès"),
    ("last error", "dernière erreur"),
    ("pending", "en attente"),
    ("when", "quand"),
    ("direction", "sens"),
    ("party", "partie"),
    ("method", "méthode"),
    ("outcome", "résultat"),
    ("change", "changement"),
    ("added", "ajouté"),
    ("updated", "modifié"),
    ("end_dated", "clôturé"),
    ("unchanged", "inchangés"),
    (
        "dry run: nothing was written",
        "simulation : rien n'a été écrit",
    ),
    ("recovery", "indu"),
    ("from period", "de la période"),
    ("amount", "montant"),
    ("version", "version"),
    ("valid from", "valable du"),
    ("valid to", "au"),
    ("in use", "utilisé"),
    ("result", "résultat"),
    ("next page", "page suivante"),
    ("never", "jamais"),
    ("beneficiary", "assuré"),
    ("from", "du"),
    ("to", "au"),
    ("no coverage conflict", "aucun conflit de couverture"),
    ("nothing to change", "rien à changer"),
    ("calls", "appels"),
    ("paused", "en pause"),
    ("circuit open until", "circuit ouvert jusqu'au"),
    (
        "circuit half-open (trial call)",
        "circuit semi-ouvert (appel d'essai)",
    ),
    ("going", "en service"),
    ("oldest pending", "plus ancienne en attente"),
];

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

/// Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS" UTC, or "never".
pub fn when(lang: Lang, ms: i64) -> String {
    if ms <= 0 {
        return lang.t("never").to_string();
    }
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000);
    match t {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month() as u8,
            t.day(),
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
