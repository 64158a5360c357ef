//! Protobuf requests to domain values. Every wrong field is collected, so a
//! caller learns all its mistakes in one answer; the broker answers them as
//! INVALID_ARGUMENT (`passerelle_broker::api::parse`).

use passerelle_domain::validate::{
    FieldViolation, MAX_DIAGNOSES, MAX_LINES, MAX_PRODUCT_PERIODS, check_claim, check_id,
    check_line,
};
use passerelle_domain::{
    CareCategory, Claim, ClaimLine, Date, EligibilityInput, Member, Payee, Product, SchemeOutcome,
    Stay, date,
};

use crate::convert;
use crate::scheme::v1 as pb;

/// The wrong fields of one request, collected.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Violations(Vec::new())
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn date(&mut self, field: &str, s: &str) -> Option<Date> {
        if s.is_empty() {
            self.add(field, "must not be empty (YYYY-MM-DD)");
            return None;
        }
        let d = date::parse(s);
        if d.is_none() {
            if date::parse_stored(s).is_some() {
                self.add(
                    field,
                    format!(
                        "{s:?}: the year must be from {} to {}",
                        date::MIN_YEAR,
                        date::MAX_YEAR
                    ),
                );
            } else {
                self.add(field, format!("{s:?} is not a date YYYY-MM-DD"));
            }
        }
        d
    }

    pub fn id(&mut self, field: &str, v: &str) {
        check_id(field, v, &mut self.0);
    }

    /// `v`, or every wrong field.
    pub fn finish<T>(self, v: T) -> Result<T, Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(self.0)
        }
    }
}

fn optional(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A line from its protobuf fields. Unset enums are reported and replaced by
/// placeholders, so that the amounts are still checked in the same answer.
#[allow(clippy::too_many_arguments)]
fn line(
    v: &mut Violations,
    prefix: &str,
    act_code: &str,
    care_category: i32,
    quantity: u32,
    billed: i64,
    tariff_base: i64,
    scheme_share: i64,
    scheme_outcome: i32,
    scheme_reason: &str,
) -> ClaimLine {
    let category = convert::care_category(care_category).unwrap_or_else(|| {
        v.add(
            format!("{prefix}.care_category"),
            "must be set to a known care category",
        );
        CareCategory::Other
    });
    let outcome = convert::scheme_outcome(scheme_outcome).unwrap_or_else(|| {
        v.add(
            format!("{prefix}.scheme_outcome"),
            "must be SCHEME_LINE_OUTCOME_COVERED, SCHEME_LINE_OUTCOME_OUT_OF_BASKET or SCHEME_LINE_OUTCOME_REFUSED (1, 2 or 3)",
        );
        SchemeOutcome::Covered
    });
    ClaimLine {
        act_code: act_code.to_string(),
        category,
        quantity,
        billed,
        tariff_base,
        scheme_share,
        outcome,
        scheme_reason: scheme_reason.to_string(),
    }
}

/// A CoordinateClaimRequest as a domain claim, or every wrong field.
pub fn claim(r: pb::CoordinateClaimRequest) -> Result<Claim, Vec<FieldViolation>> {
    let mut v = Violations::new();
    // Placeholders keep the other checks running when a field is unusable.
    let placeholder = Date::MIN;
    let date_of_care = v
        .date("date_of_care", &r.date_of_care)
        .unwrap_or(placeholder);
    let payee = convert::payee(r.payee).unwrap_or_else(|| {
        v.add("payee", "must be PAYEE_PROVIDER or PAYEE_MEMBER (1 or 2)");
        Payee::Provider
    });
    let stay = r.stay.as_ref().map(|s| Stay {
        stay_id: s.stay_id.clone(),
        admission: v
            .date("stay.admission_date", &s.admission_date)
            .unwrap_or(placeholder),
        discharge: if s.discharge_date.is_empty() {
            None
        } else {
            v.date("stay.discharge_date", &s.discharge_date)
        },
    });
    if r.lines.len() > MAX_LINES {
        v.add("lines", format!("at most {MAX_LINES} lines"));
        return Err(v.0);
    }
    let lines = r
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            line(
                &mut v,
                &format!("lines[{i}]"),
                &l.act_code,
                l.care_category,
                l.quantity,
                l.billed,
                l.tariff_base,
                l.scheme_share,
                l.scheme_outcome,
                &l.scheme_reason,
            )
        })
        .collect();
    let claim = Claim {
        scheme_id: r.scheme_id,
        claim_id: r.claim_id,
        provider_id: r.provider_id,
        invoice_number: r.invoice_number,
        payee,
        beneficiary_id: r.beneficiary_id,
        beneficiary_category: r.beneficiary_category,
        mutuelle_id: optional(&r.mutuelle_id),
        member_number: optional(&r.member_number),
        date_of_care,
        stay,
        diagnoses: r.diagnoses,
        currency: r.currency,
        lines,
        prior_authorization: optional(&r.prior_authorization_reference),
    };
    // An identifier as every other: bounded, no control characters (a
    // NUL reached PostgreSQL and was answered "store unavailable, retry").
    if let Some(p) = &claim.prior_authorization {
        v.id("prior_authorization_reference", p);
    }
    check_claim(&claim, &mut v.0);
    v.finish(claim)
}

/// A RequestPriorAuthorizationRequest as planned care in the shape of a
/// claim (`claim_id`: the authorization id; no invoice, the provider
/// paid), or every wrong field, named as the request names it.
pub fn prior_authorization(
    r: pb::RequestPriorAuthorizationRequest,
) -> Result<Claim, Vec<FieldViolation>> {
    let as_claim = pb::CoordinateClaimRequest {
        scheme_id: r.scheme_id,
        claim_id: r.authorization_id,
        provider_id: r.provider_id,
        invoice_number: PLANNED.to_string(),
        payee: crate::common::v1::Payee::Provider as i32,
        beneficiary_id: r.beneficiary_id,
        beneficiary_category: r.beneficiary_category,
        mutuelle_id: r.mutuelle_id,
        member_number: r.member_number,
        date_of_care: r.date_of_care,
        stay: r.stay,
        diagnoses: r.diagnoses,
        currency: r.currency,
        lines: r.lines,
        prior_authorization_reference: String::new(),
    };
    claim(as_claim).map_err(|v| {
        v.into_iter()
            .map(|mut f| {
                if f.field == "claim_id" {
                    f.field = "authorization_id".into();
                }
                f
            })
            .collect()
    })
}

/// The invoice number of planned care (an authorization has none).
pub const PLANNED: &str = "planned";

/// What an ExtendPriorAuthorizationRequest asks: its number, the stay
/// as now planned and the whole new estimate, each field checked as a
/// claim's (the service checks them against the authorization).
pub struct Extension {
    pub extension: u32,
    pub stay: Option<Stay>,
    pub lines: Vec<ClaimLine>,
}

pub fn extension(r: pb::ExtendPriorAuthorizationRequest) -> Result<Extension, Vec<FieldViolation>> {
    // The lines and stay checked as a claim's, under a header that is
    // valid by construction; only their own violations are kept.
    let date_of_care = r
        .stay
        .as_ref()
        .map(|s| s.admission_date.clone())
        .filter(|d| date::parse(d).is_some())
        .unwrap_or_else(|| "2000-01-01".into());
    let as_claim = pb::CoordinateClaimRequest {
        scheme_id: "x".into(),
        claim_id: "x".into(),
        provider_id: "x".into(),
        invoice_number: PLANNED.to_string(),
        payee: crate::common::v1::Payee::Provider as i32,
        beneficiary_id: "x".into(),
        date_of_care,
        stay: r.stay,
        currency: "XOF".into(),
        lines: r.lines,
        ..Default::default()
    };
    let mut v: Vec<FieldViolation> = match claim(as_claim) {
        Ok(c) => {
            if r.extension == 0 {
                return Err(vec![FieldViolation::new("extension", "must be 1 or more")]);
            }
            return Ok(Extension {
                extension: r.extension,
                stay: c.stay,
                lines: c.lines,
            });
        }
        Err(v) => v
            .into_iter()
            .filter(|f| f.field.starts_with("lines") || f.field.starts_with("stay"))
            .collect(),
    };
    if r.extension == 0 {
        v.push(FieldViolation::new("extension", "must be 1 or more"));
    }
    if v.is_empty() {
        v.push(FieldViolation::new("lines", "must be valid planned lines"));
    }
    Err(v)
}

/// A CheckEligibilityRequest in domain form.
pub fn eligibility(
    r: pb::CheckEligibilityRequest,
) -> Result<EligibilityInput, Vec<FieldViolation>> {
    let mut v = Violations::new();
    v.id("scheme_id", &r.scheme_id);
    v.id("beneficiary_id", &r.beneficiary_id);
    let d = v.date("date_of_care", &r.date_of_care);
    if !r.mutuelle_id.is_empty() {
        v.id("mutuelle_id", &r.mutuelle_id);
    }
    if !r.member_number.is_empty() {
        v.id("member_number", &r.member_number);
    }
    if r.planned_lines.len() > MAX_LINES {
        v.add("planned_lines", format!("at most {MAX_LINES} lines"));
    }
    if r.diagnoses.len() > MAX_DIAGNOSES {
        v.add("diagnoses", format!("at most {MAX_DIAGNOSES} diagnoses"));
    } else {
        for (i, d) in r.diagnoses.iter().enumerate() {
            v.id(&format!("diagnoses[{i}]"), d);
        }
    }
    if !r.planned_lines.is_empty() && !passerelle_domain::money::is_currency_code(&r.currency) {
        v.add(
            "currency",
            "must be an ISO 4217 code such as XOF when lines are given",
        );
    }
    let mut lines = Vec::with_capacity(r.planned_lines.len());
    for (i, l) in r.planned_lines.iter().take(MAX_LINES).enumerate() {
        let prefix = format!("planned_lines[{i}]");
        let cl = line(
            &mut v,
            &prefix,
            &l.act_code,
            l.care_category,
            l.quantity,
            l.billed,
            l.tariff_base,
            l.scheme_share,
            l.scheme_outcome,
            "",
        );
        check_line(&prefix, &cl, &mut v.0);
        lines.push(cl);
    }
    let Some(date_of_care) = d else {
        return Err(v.0);
    };
    v.finish(EligibilityInput {
        scheme_id: r.scheme_id,
        beneficiary_id: r.beneficiary_id,
        date_of_care,
        mutuelle_id: optional(&r.mutuelle_id),
        member_number: optional(&r.member_number),
        currency: r.currency,
        lines,
        diagnoses: r.diagnoses,
    })
}

/// The `i`-th product of a PutProducts request, its bad fields added to `v`
/// (paths `products[i]....`).
pub fn product(v: &mut Violations, i: usize, p: crate::product::v1::Product) -> Product {
    let f = |n: &str| format!("products[{i}].{n}");
    let valid_from = v.date(&f("valid_from"), &p.valid_from).unwrap_or(Date::MIN);
    let valid_to = if p.valid_to.is_empty() {
        None
    } else {
        v.date(&f("valid_to"), &p.valid_to)
    };
    let categories = p
        .categories
        .into_iter()
        .enumerate()
        .map(|(j, c)| passerelle_domain::CategoryRule {
            category: convert::care_category(c.category).unwrap_or_else(|| {
                v.add(
                    format!("products[{i}].categories[{j}].category"),
                    "must be a known care category",
                );
                passerelle_domain::CareCategory::Other
            }),
            tm_rate_bp: c.tm_rate_bp,
            fixed_per_act: c.fixed_per_act,
            overrun_rate_bp: c.overrun_rate_bp,
            out_of_basket_rate_bp: c.out_of_basket_rate_bp,
            per_act_limit: c.per_act_limit,
            year_limit: c.year_limit,
            year_count_limit: c.year_count_limit,
            waiting_days: c.waiting_days,
            excluded_diagnoses: c.excluded_diagnoses,
        })
        .collect();
    let product = Product {
        mutuelle_id: p.mutuelle_id,
        id: p.product_id,
        version: p.version,
        name: p.name,
        valid_from,
        valid_to,
        currency: p.currency,
        categories,
        stay_limit: p.stay_limit,
        beneficiary_year_limit: p.beneficiary_year_limit,
        household_year_limit: p.household_year_limit,
        excluded_diagnoses: p.excluded_diagnoses,
        excluded_acts: p.excluded_acts,
        waiting_days: p.waiting_days,
        beneficiary_rules: p
            .beneficiary_rules
            .into_iter()
            .enumerate()
            .map(|(j, b)| passerelle_domain::BeneficiaryRule {
                beneficiary_category: b.beneficiary_category,
                category: convert::care_category(b.category).unwrap_or_else(|| {
                    v.add(
                        format!("products[{i}].beneficiary_rules[{j}].category"),
                        "must be a known care category",
                    );
                    passerelle_domain::CareCategory::Other
                }),
                tm_rate_bp: b.tm_rate_bp,
                year_limit: b.year_limit,
            })
            .collect(),
        prior_authorization: p.prior_authorization.map(|r| {
            passerelle_domain::PriorAuthorizationRule {
                categories: r
                    .categories
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        convert::care_category(*c).unwrap_or_else(|| {
                            v.add(
                                format!("products[{i}].prior_authorization.categories[{j}]"),
                                "must be a known care category",
                            );
                            passerelle_domain::CareCategory::Other
                        })
                    })
                    .collect(),
                acts: r.acts,
                validity_days: r.validity_days,
                tolerance_bp: r.tolerance_bp,
            }
        }),
        act_limits: p
            .act_limits
            .into_iter()
            .enumerate()
            .map(|(j, a)| {
                use crate::product::v1::ActPeriod as Pb;
                let per = match Pb::try_from(a.per) {
                    Ok(Pb::Day) => passerelle_domain::ActPeriod::Day,
                    Ok(Pb::Month) => passerelle_domain::ActPeriod::Month,
                    Ok(Pb::Year) => passerelle_domain::ActPeriod::Year,
                    Ok(Pb::Stay) => passerelle_domain::ActPeriod::Stay,
                    _ => {
                        v.add(
                            format!("products[{i}].act_limits[{j}].per"),
                            "must be ACT_PERIOD_DAY, ACT_PERIOD_MONTH, ACT_PERIOD_YEAR or ACT_PERIOD_STAY (1 to 4)",
                        );
                        passerelle_domain::ActPeriod::Year
                    }
                };
                passerelle_domain::ActLimit {
                    act_code: a.act_code,
                    max: a.max,
                    per,
                }
            })
            .collect(),
    };
    for (field, problem) in product.check() {
        // Product::check names fields as the config does; the contract calls
        // the id "product_id".
        let field = if field == "id" {
            "product_id".to_string()
        } else {
            field
        };
        v.add(f(&field), problem);
    }
    product
}

/// A roster member (UpsertMembers, ImportRoster) of `mutuelle_id`, at
/// position `i`: every wrong field named in `v` as `members[i].<field>`;
/// `None` when it cannot be read at all. `known_scheme` says which schemes
/// the broker serves.
pub fn member(
    v: &mut Violations,
    i: usize,
    mutuelle_id: &str,
    m: crate::roster::v1::Member,
    known_scheme: &dyn Fn(&str) -> bool,
) -> Option<Member> {
    let f = |name: &str| format!("members[{i}].{name}");
    v.id(&f("scheme_id"), &m.scheme_id);
    if !m.scheme_id.is_empty() && !known_scheme(&m.scheme_id) {
        v.add(f("scheme_id"), format!("unknown scheme {:?}", m.scheme_id));
    }
    v.id(&f("beneficiary_id"), &m.beneficiary_id);
    v.id(&f("member_number"), &m.member_number);
    if !m.household_id.is_empty() {
        v.id(&f("household_id"), &m.household_id);
    }
    let paid_until = if m.contribution_paid_until.is_empty() {
        None
    } else {
        v.date(&f("contribution_paid_until"), &m.contribution_paid_until)
    };
    if m.products.len() > MAX_PRODUCT_PERIODS {
        v.add(
            f("products"),
            format!("at most {MAX_PRODUCT_PERIODS} product periods"),
        );
        return None;
    }
    let mut products = Vec::with_capacity(m.products.len());
    for (j, p) in m.products.iter().enumerate() {
        let pf = |name: &str| format!("members[{i}].products[{j}].{name}");
        v.id(&pf("product_id"), &p.product_id);
        let start = v.date(&pf("start_date"), &p.start_date);
        let end = if p.end_date.is_empty() {
            None
        } else {
            v.date(&pf("end_date"), &p.end_date)
        };
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            v.add(pf("end_date"), "must not be before start_date");
        }
        if let Some(start) = start {
            products.push(passerelle_domain::ProductPeriod {
                product_id: p.product_id.clone(),
                start,
                end,
            });
        }
    }
    let mut sorted: Vec<&passerelle_domain::ProductPeriod> = products.iter().collect();
    sorted.sort_by_key(|p| p.start);
    for w in sorted.windows(2) {
        if w[0].end.is_none_or(|e| e >= w[1].start) {
            v.add(f("products"), "product periods must not overlap");
            break;
        }
    }
    Some(Member {
        mutuelle_id: mutuelle_id.to_string(),
        scheme_id: m.scheme_id,
        beneficiary_id: m.beneficiary_id,
        member_number: m.member_number,
        household_id: m.household_id,
        paid_until,
        products,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product id is an identifier like any other: 128 characters, no
    /// blanks around it, no control characters (it was only checked for
    /// emptiness, and a product id of megabytes was stored).
    #[test]
    fn a_product_id_is_bounded_like_every_identifier() {
        for (id, ok) in [
            ("ESSENTIEL".to_string(), true),
            ("x".repeat(128), true),
            ("x".repeat(129), false),
            (" ESSENTIEL".to_string(), false),
            ("ESS\nENTIEL".to_string(), false),
            (String::new(), false),
        ] {
            let mut v = Violations::new();
            product(
                &mut v,
                0,
                crate::product::v1::Product {
                    mutuelle_id: "MUT-X".into(),
                    product_id: id.clone(),
                    version: 1,
                    name: "Essentiel".into(),
                    valid_from: "2026-01-01".into(),
                    currency: "XOF".into(),
                    ..Default::default()
                },
            );
            let fields: Vec<&str> = v.0.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(
                fields.contains(&"products[0].product_id"),
                !ok,
                "{id:?}: {fields:?}"
            );
        }
    }
}
