//! Domain of passerelle: claims, members, products, and the
//! coordination-of-benefits engine.
//!
//! This crate is pure: no I/O, no clock, no async, no prost types. Everything
//! the engine needs (the member, the product version in force, what the
//! ceilings have used so far) is handed to it, and it answers with the shares
//! and with what the claim consumes, which the store then applies in one
//! conditional transaction.

pub mod claim;
pub mod date;
pub mod engine;
pub mod member;
pub mod money;
pub mod product;
pub mod reason;
pub mod validate;

pub use claim::{
    CareCategory, Claim, ClaimLine, ClaimState, EligibilityInput, LineShare, Payee, SchemeOutcome,
    Stay,
};
pub use date::Date;
pub use engine::{
    Adjudication, CeilingKey, CeilingScope, CeilingUse, CeilingView, Context, Granted, GrantedLine,
    Prior, Usage, Used,
};
pub use member::{Member, ProductPeriod};
pub use money::{Amount, BasisPoints};
pub use product::{
    ActLimit, ActPeriod, BeneficiaryRule, CategoryRule, PriorAuthorizationRule, Product, ProductRef,
};
pub use reason::{Detail, DetailKey, Reason, ReasonCode};
pub use validate::FieldViolation;
