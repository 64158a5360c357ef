//! A mutuelle's member, as the roster declares it.

use serde::{Deserialize, Serialize};

use crate::date::{self, Date};

/// A product held by a member over a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPeriod {
    pub product_id: String,
    /// Enrolment: waiting periods run from here.
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
