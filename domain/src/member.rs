//! A mutuelle's member, as the roster declares it.

use serde::{Deserialize, Serialize};

use crate::date::{self, Date};

/// A product held by a member over a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPeriod {
    pub product_id: String,
    /// First day covered. Waiting periods run from the start of the
    /// unbroken run of periods of this product that holds it
    /// ([`Member::continuous_start`]).
    #[serde(with = "date::serde_iso")]
    pub start: Date,
    /// Last day covered; `None` while it runs.
    #[serde(with = "date::serde_iso::option", default)]
    pub end: Option<Date>,
}

impl ProductPeriod {
    pub fn covers(&self, d: Date) -> bool {
        self.start <= d && self.end.is_none_or(|e| d <= e)
    }
}

/// A member of one mutuelle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub mutuelle_id: String,
    pub scheme_id: String,
    pub beneficiary_id: String,
    pub member_number: String,
    /// Household for household ceilings; empty means a household of one.
    #[serde(default)]
    pub household_id: String,
    /// Dues paid up to and including this date.
    #[serde(with = "date::serde_iso::option", default)]
    pub paid_until: Option<Date>,
    #[serde(default)]
    pub products: Vec<ProductPeriod>,
}

impl Member {
    /// The product period in force on a date.
    pub fn product_on(&self, d: Date) -> Option<&ProductPeriod> {
        self.products.iter().find(|p| p.covers(d))
    }

    /// The first day of the member's unbroken cover by the product in force
    /// on `d`: that period's start, or the start of a period of the same
    /// product that ends the day before it, and so on back. `None` when no
    /// product is in force on `d`.
    pub fn continuous_start(&self, d: Date) -> Option<Date> {
        let period = self.product_on(d)?;
        let mut start = period.start;
        // Each step moves to an earlier period: at most one per period.
        for _ in 0..self.products.len() {
            let Some(before) = start.previous_day() else {
                break;
            };
            match self
                .products
                .iter()
                .find(|p| p.product_id == period.product_id && p.end == Some(before))
            {
                Some(p) if p.start < start => start = p.start,
                _ => break,
            }
        }
        Some(start)
    }

    /// Dues paid up to the date (inclusive).
    pub fn dues_paid_on(&self, d: Date) -> bool {
        self.paid_until.is_some_and(|p| p >= d)
    }

    /// Household key for household ceilings.
    pub fn household(&self) -> &str {
        if self.household_id.is_empty() {
            &self.member_number
        } else {
            &self.household_id
        }
    }
}
