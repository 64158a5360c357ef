//! A mutuelle's product: the rules it covers the remainder by.
//!
//! Modelled after openIMIS's product (openimis-be-product_py): coverage of the
//! ticket moderateur per care category as a percentage or a fixed amount per
//! act, overruns covered apart, out-of-basket acts covered only if said,
//! ceilings per act / per stay / per category per year / per beneficiary per
//! year / per household per year, counts per year, waiting periods and
//! exclusions. Versioned by start date; immutable once a claim used it.

use serde::{Deserialize, Serialize};

use crate::claim::CareCategory;
use crate::date::{self, Date};
use crate::money::{Amount, BasisPoints};

/// Rules for one care category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    /// The category these rules apply to.
    pub category: CareCategory,
    /// Share of the ticket moderateur covered, in basis points (10000 = 100%).
    #[serde(default)]
    pub tm_rate_bp: BasisPoints,
    /// Instead of a percentage: a fixed amount per unit, capped at the ticket
    /// moderateur. When set, `tm_rate_bp` is ignored.
    #[serde(default)]
    pub fixed_per_act: Option<Amount>,
    /// Share of the overrun above the scheme tariff (B - E) covered; 0 = none.
    #[serde(default)]
    pub overrun_rate_bp: BasisPoints,
    /// Share of an out-of-basket act (S = 0) covered, of its whole amount;
    /// 0 = out-of-basket acts are not covered.
    #[serde(default)]
    pub out_of_basket_rate_bp: BasisPoints,
    /// Most the mutuelle pays per unit of an act in this category.
    #[serde(default)]
    pub per_act_limit: Option<Amount>,
    /// Most the mutuelle pays per beneficiary per calendar year in this category.
    #[serde(default)]
    pub year_limit: Option<Amount>,
    /// Most units (acts) covered per beneficiary per calendar year, for
    /// example 4 antenatal visits.
    #[serde(default)]
    pub year_count_limit: Option<u32>,
    /// Days from enrolment in the product before this category is covered.
    #[serde(default)]
    pub waiting_days: u32,
    /// ICD-10 code prefixes excluded for this category only.
    #[serde(default)]
    pub excluded_diagnoses: Vec<String>,
}

/// Most entries in one exclusion list of a product (diagnosis prefixes, act
/// codes).
pub const MAX_EXCLUSIONS: usize = 500;

/// One version of a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// The mutuelle that declares the product.
    pub mutuelle_id: String,
    /// Product id, stable across versions.
    pub id: String,
    /// Version number, from 1; a new version is a new start date.
    pub version: u32,
    pub name: String,
    /// First date of care this version applies to.
    #[serde(with = "date::serde_iso")]
    pub valid_from: Date,
    /// Last date of care this version applies to; `None`: until a newer version.
    #[serde(with = "date::serde_iso::option", default)]
    pub valid_to: Option<Date>,
    /// Currency of every amount in the product.
    pub currency: String,
    /// Covered categories; a category absent here is not covered.
    pub categories: Vec<CategoryRule>,
    /// Most the mutuelle pays per hospital stay.
    #[serde(default)]
    pub stay_limit: Option<Amount>,
    /// Most the mutuelle pays per beneficiary per calendar year.
    #[serde(default)]
    pub beneficiary_year_limit: Option<Amount>,
    /// Most the mutuelle pays per household per calendar year.
    #[serde(default)]
    pub household_year_limit: Option<Amount>,
    /// ICD-10 code prefixes excluded for every category ("Z41" excludes
    /// "Z41.1").
    #[serde(default)]
    pub excluded_diagnoses: Vec<String>,
    /// Act codes never covered.
    #[serde(default)]
    pub excluded_acts: Vec<String>,
    /// Days from enrolment before anything is covered (a category's own
    /// `waiting_days`, when longer, still applies to it). Not written when
    /// 0, so that a product without one is stored as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting_days: u32,
    /// Rules for beneficiaries of a category the scheme declares on the
    /// claim (`beneficiary_category`: "indigent", "enfant",
    /// "femme-enceinte"...): another rate, or another yearly ceiling, for a
    /// care category. Not written when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beneficiary_rules: Vec<BeneficiaryRule>,
    /// Prior authorization (accord préalable): which acts need one, how
    /// long one stays valid, the billing tolerance above it. Not written
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_authorization: Option<PriorAuthorizationRule>,
    /// Most acts of one code per period (three obstetric ultrasounds per
    /// pregnancy followed as one stay, one consultation a day). Not written
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub act_limits: Vec<ActLimit>,
}

/// At most `max` acts of `act_code` per beneficiary per period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActLimit {
    pub act_code: String,
    pub max: u32,
    pub per: ActPeriod,
}

/// The period an act limit counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActPeriod {
    /// A calendar day.
    Day,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
    /// A stay (or an episode the scheme follows as one, such as a
    /// pregnancy): the claim's stay (a hospital claim naming none is its
    /// own stay); another claim naming none is not limited.
    Stay,
}

impl ActPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            ActPeriod::Day => "day",
            ActPeriod::Month => "month",
            ActPeriod::Year => "year",
            ActPeriod::Stay => "stay",
        }
    }

    /// The period holding `d` ("2026-03-10", "2026-03", "2026"); `None` for
    /// a stay, which the claim names.
    pub fn of(self, d: Date) -> Option<String> {
        match self {
            ActPeriod::Day => Some(date::format(d)),
            ActPeriod::Month => Some(format!("{:04}-{:02}", d.year(), d.month() as u8)),
            ActPeriod::Year => Some(d.year().to_string()),
            ActPeriod::Stay => None,
        }
    }

    /// The first day of the next period after the one holding `d`.
    pub fn next_start(self, d: Date) -> Option<Date> {
        match self {
            ActPeriod::Day => d.next_day(),
            ActPeriod::Month => {
                let (y, m) = if d.month() == time::Month::December {
                    (d.year() + 1, time::Month::January)
                } else {
                    (d.year(), d.month().next())
                };
                Date::from_calendar_date(y, m, 1).ok()
            }
            ActPeriod::Year => Date::from_calendar_date(d.year() + 1, time::Month::January, 1).ok(),
            ActPeriod::Stay => None,
        }
    }
}

/// Most days a prior authorization may stay valid.
pub const MAX_AUTHORIZATION_DAYS: u32 = 366;

/// A product's prior-authorization rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorAuthorizationRule {
    /// Care categories whose every act needs a prior authorization.
    #[serde(default)]
    pub categories: Vec<CareCategory>,
    /// Act codes that need one, whatever their category.
    #[serde(default)]
    pub acts: Vec<String>,
    /// Days an authorization stays valid from the date of care it plans
    /// (1 to 366).
    pub validity_days: u32,
    /// How much more than the authorized amount a claim may bill and still
    /// be paid as billed, in basis points of the authorized amounts (1000 =
    /// 10 %); above it the claim gets the committed amount.
    #[serde(default)]
    pub tolerance_bp: BasisPoints,
}

impl PriorAuthorizationRule {
    /// True when an act of this code and category needs an authorization.
    pub fn requires(&self, act_code: &str, category: CareCategory) -> bool {
        self.categories.contains(&category) || self.acts.iter().any(|a| a == act_code)
    }
}

/// Another rate or yearly ceiling of one care category, for beneficiaries
/// of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryRule {
    pub beneficiary_category: String,
    pub category: CareCategory,
    /// Replaces the care category's `tm_rate_bp`.
    #[serde(default)]
    pub tm_rate_bp: Option<BasisPoints>,
    /// Replaces the care category's `year_limit`.
    #[serde(default)]
    pub year_limit: Option<Amount>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Product {
    /// The product as it applies to a beneficiary of this category (the
    /// scheme's declaration on the claim): its beneficiary rules for that
    /// category applied to their care categories; the product itself when
    /// none applies.
    pub fn for_beneficiary(&self, beneficiary_category: &str) -> std::borrow::Cow<'_, Product> {
        let rules: Vec<&BeneficiaryRule> = self
            .beneficiary_rules
            .iter()
            .filter(|b| {
                !beneficiary_category.is_empty() && b.beneficiary_category == beneficiary_category
            })
            .collect();
        if rules.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut p = self.clone();
        for b in rules {
            if let Some(r) = p.categories.iter_mut().find(|r| r.category == b.category) {
                if let Some(rate) = b.tm_rate_bp {
                    r.tm_rate_bp = rate;
                }
                if let Some(limit) = b.year_limit {
                    r.year_limit = Some(limit);
                }
            }
        }
        std::borrow::Cow::Owned(p)
    }

    pub fn rule(&self, c: CareCategory) -> Option<&CategoryRule> {
        self.categories.iter().find(|r| r.category == c)
    }

    /// The version of a product in force on `d`, among its versions: the
    /// newest started on or before `d` (by start, then version), unless it
    /// has ended. An older version never comes back after a newer one
    /// ended: its `valid_to` left empty means "until a newer version".
    /// The stores' lookups read the same rule in SQL.
    pub fn version_on<'a>(
        versions: impl IntoIterator<Item = &'a Product>,
        d: Date,
    ) -> Option<&'a Product> {
        versions
            .into_iter()
            .filter(|p| p.valid_from <= d)
            .max_by_key(|p| (p.valid_from, p.version))
            .filter(|p| p.valid_to.is_none_or(|t| d <= t))
    }

    /// The days this version is in force among its product's `versions`
    /// (the rule of [`Product::version_on`], as one span): from its start
    /// to its end, or to the day before the next version starts, whichever
    /// is first; `None` when a version starting the same day with a higher
    /// number hides it.
    pub fn in_force_among<'a>(
        &self,
        versions: impl IntoIterator<Item = &'a Product>,
    ) -> Option<(Date, Option<Date>)> {
        let next = versions
            .into_iter()
            .filter(|o| (o.valid_from, o.version) > (self.valid_from, self.version))
            .map(|o| o.valid_from)
            .min();
        if next == Some(self.valid_from) {
            return None;
        }
        let before_next = next.and_then(|n| n.previous_day());
        let to = match (self.valid_to, before_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        to.is_none_or(|t| t >= self.valid_from)
            .then_some((self.valid_from, to))
    }

    /// Checks the product's own consistency; returns (field, problem) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut bad = Vec::new();
        // The same rule as every identifier (128 characters, no blanks
        // around, no control characters).
        let mut id = Vec::new();
        crate::validate::check_id("id", &self.id, &mut id);
        bad.extend(id.into_iter().map(|v| (v.field, v.description)));
        if self.version == 0 {
            bad.push(("version".into(), "must be 1 or more".into()));
        }
        if !crate::money::is_currency_code(&self.currency) {
            bad.push(("currency".into(), "must be an ISO 4217 code".into()));
        }
        if let Some(t) = self.valid_to
            && t < self.valid_from
        {
            bad.push(("valid_to".into(), "must not be before valid_from".into()));
        }
        let limits = [
            ("stay_limit", self.stay_limit),
            ("beneficiary_year_limit", self.beneficiary_year_limit),
            ("household_year_limit", self.household_year_limit),
        ];
        let max = crate::validate::MAX_PRODUCT_AMOUNT;
        let amount = |v: Option<i64>| match v {
            Some(v) if v < 0 => Some("must not be negative".to_string()),
            Some(v) if v > max => Some(format!("must be at most {max} (minor units)")),
            _ => None,
        };
        for (name, v) in limits {
            if let Some(problem) = amount(v) {
                bad.push((name.into(), problem));
            }
        }
        let mut lists: Vec<(String, &Vec<String>)> = vec![
            ("excluded_diagnoses".into(), &self.excluded_diagnoses),
            ("excluded_acts".into(), &self.excluded_acts),
        ];
        for (i, r) in self.categories.iter().enumerate() {
            lists.push((
                format!("categories[{i}].excluded_diagnoses"),
                &r.excluded_diagnoses,
            ));
        }
        for (name, list) in lists {
            if list.len() > MAX_EXCLUSIONS {
                bad.push((name, format!("at most {MAX_EXCLUSIONS} entries")));
            } else if list
                .iter()
                .any(|c| c.chars().count() > crate::validate::MAX_ID_LEN)
            {
                bad.push((
                    name,
                    format!(
                        "each entry must be at most {} characters",
                        crate::validate::MAX_ID_LEN
                    ),
                ));
            }
        }
        for (i, b) in self.beneficiary_rules.iter().enumerate() {
            let f = |name: &str| format!("beneficiary_rules[{i}].{name}");
            if b.beneficiary_category.trim().is_empty()
                || b.beneficiary_category.chars().count() > crate::validate::MAX_ID_LEN
            {
                bad.push((
                    f("beneficiary_category"),
                    "must be 1 to 128 characters".into(),
                ));
            }
            if self.rule(b.category).is_none() {
                bad.push((
                    f("category"),
                    "must be a care category of the product".into(),
                ));
            }
            if b.tm_rate_bp.is_some_and(|bp| bp > crate::money::FULL) {
                bad.push((f("tm_rate_bp"), "must be 0 to 10000".into()));
            }
            if b.year_limit.is_some_and(|a| a < 0) {
                bad.push((f("year_limit"), "must not be negative".into()));
            }
        }
        if let Some(pa) = &self.prior_authorization {
            if pa.validity_days == 0 || pa.validity_days > MAX_AUTHORIZATION_DAYS {
                bad.push((
                    "prior_authorization.validity_days".into(),
                    format!("must be 1 to {MAX_AUTHORIZATION_DAYS}"),
                ));
            }
            if pa.tolerance_bp > crate::money::FULL {
                bad.push((
                    "prior_authorization.tolerance_bp".into(),
                    "must be 0 to 10000".into(),
                ));
            }
            if pa.acts.len() > MAX_EXCLUSIONS {
                bad.push((
                    "prior_authorization.acts".into(),
                    format!("at most {MAX_EXCLUSIONS} entries"),
                ));
            } else if pa
                .acts
                .iter()
                .any(|a| a.trim().is_empty() || a.chars().count() > crate::validate::MAX_ID_LEN)
            {
                bad.push((
                    "prior_authorization.acts".into(),
                    format!(
                        "each entry must be 1 to {} characters",
                        crate::validate::MAX_ID_LEN
                    ),
                ));
            }
            if pa
                .categories
                .iter()
                .enumerate()
                .any(|(i, c)| pa.categories[..i].contains(c))
            {
                bad.push((
                    "prior_authorization.categories".into(),
                    "a category is listed twice".into(),
                ));
            }
        }
        if self.act_limits.len() > MAX_EXCLUSIONS {
            bad.push((
                "act_limits".into(),
                format!("at most {MAX_EXCLUSIONS} entries"),
            ));
        }
        for (i, a) in self.act_limits.iter().enumerate() {
            let mut id = Vec::new();
            crate::validate::check_id(&format!("act_limits[{i}].act_code"), &a.act_code, &mut id);
            bad.extend(id.into_iter().map(|v| (v.field, v.description)));
            if a.max == 0 {
                bad.push((
                    format!("act_limits[{i}].max"),
                    "must be 1 or more (exclude the act instead)".into(),
                ));
            }
            if self.act_limits[..i]
                .iter()
                .any(|o| o.act_code == a.act_code && o.per == a.per)
            {
                bad.push((format!("act_limits[{i}]"), "listed twice".into()));
            }
        }
        if self.name.chars().count() > crate::validate::MAX_TEXT_LEN {
            bad.push((
                "name".into(),
                format!(
                    "must be at most {} characters",
                    crate::validate::MAX_TEXT_LEN
                ),
            ));
        }
        for (i, r) in self.categories.iter().enumerate() {
            for (name, bp) in [
                ("tm_rate_bp", r.tm_rate_bp),
                ("overrun_rate_bp", r.overrun_rate_bp),
                ("out_of_basket_rate_bp", r.out_of_basket_rate_bp),
            ] {
                if bp > crate::money::FULL {
                    bad.push((
                        format!("categories[{i}].{name}"),
                        "must be 0 to 10000".into(),
                    ));
                }
            }
            for (name, v) in [
                ("fixed_per_act", r.fixed_per_act),
                ("per_act_limit", r.per_act_limit),
                ("year_limit", r.year_limit),
            ] {
                if let Some(problem) = amount(v) {
                    bad.push((format!("categories[{i}].{name}"), problem));
                }
            }
            if self.categories[..i]
                .iter()
                .any(|o| o.category == r.category)
            {
                bad.push((format!("categories[{i}].category"), "listed twice".into()));
            }
        }
        bad
    }

    /// True when `code` falls under one of the excluded ICD-10 prefixes.
    pub fn diagnosis_excluded(prefixes: &[String], code: &str) -> bool {
        let norm = |s: &str| s.replace('.', "").to_ascii_uppercase();
        let code = norm(code);
        prefixes.iter().any(|p| code.starts_with(&norm(p)))
    }
}

/// A product by id and version, as answers name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRef {
    pub id: String,
    pub version: u32,
    pub name: String,
}

impl From<&Product> for ProductRef {
    fn from(p: &Product) -> Self {
        ProductRef {
            id: p.id.clone(),
            version: p.version,
            name: p.name.clone(),
        }
    }
}
