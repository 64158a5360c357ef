//! Prior authorizations (accords préalables) and their holds.
//!
//! A granted authorization reserves what its mutuelle committed on the
//! member's ceilings (`ceiling_usage.held_*`, for partners whose ceilings
//! the broker keeps): a hold. Every ceiling write checks
//! `used + held + new <= limit` in one conditional update on the ceiling's
//! row, so that holds and claims together never pass a limit, whatever the
//! replica. An authorization leaves `active` once, by one conditional
//! update: to `consumed` (a claim paid against it, in the transaction that
//! stores the claim's shares, its hold released as the claim's consumption
//! is applied), `cancelled` or `expired` (its hold released). The rules
//! (who may ask, what a claim may take) live in `service::authorizations`.

use async_trait::async_trait;
use passerelle_domain::{
    CeilingUse, Claim, Date, Detail, DetailKey, LineShare, ProductRef, Reason, ReasonCode,
};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Where an authorization is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthorizationState {
    Active,
    Consumed,
    Cancelled,
    Expired,
}

impl AuthorizationState {
    pub const ALL: [AuthorizationState; 4] = [
        AuthorizationState::Active,
        AuthorizationState::Consumed,
        AuthorizationState::Cancelled,
        AuthorizationState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationState::Active => "active",
            AuthorizationState::Consumed => "consumed",
            AuthorizationState::Cancelled => "cancelled",
            AuthorizationState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<AuthorizationState> {
        AuthorizationState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// What an authorization holds besides its columns (its JSON body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationTerms {
    /// The planned care as the scheme sent it (after an extension, the
    /// extension's stay and lines); `claim_id` is the authorization id.
    pub planned: Claim,
    /// M committed per planned line.
    pub shares: Vec<LineShare>,
    /// What is held on the broker's ceilings (partners whose ceilings the
    /// broker keeps); empty for a remote mutuelle, which holds its own.
    pub hold: Vec<CeilingUse>,
    pub tolerance_bp: u32,
    /// The mutuelle's own reference (a remote partner's preAuthRef).
    #[serde(default)]
    pub partner_reference: String,
    #[serde(default)]
    pub product: Option<ProductRef>,
    /// The request hash of each extension, in order: a resend of extension
    /// N is recognised by it.
    #[serde(default)]
    pub extension_hashes: Vec<String>,
}

/// One authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRecord {
    pub scheme_id: String,
    pub authorization_id: String,
    /// What a claim quotes; unique across schemes.
    pub reference: String,
    pub mutuelle_id: String,
    pub member_number: String,
    pub beneficiary_id: String,
    /// SHA-256 of the first request's canonical form.
    pub request_hash: String,
    pub state: AuthorizationState,
    pub terms: AuthorizationTerms,
    /// Last date of care covered.
    pub valid_until: Date,
    /// When the retry worker expires it: the end of `valid_until`, UTC.
    pub expires_ms: i64,
    pub extensions: u32,
    /// The claim paid against it, once consumed.
    pub claim_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What storing a new authorization did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Created(AuthorizationRecord),
    /// The same request was stored already (a resend, or a race of two).
    Existing(AuthorizationRecord),
    /// Another request was stored under this id.
    Modified(AuthorizationRecord),
    /// The beneficiary has this many authorizations in force already (the
    /// bound the grant was given): nothing written.
    AtLimit(u32),
}

#[async_trait]
pub trait AuthorizationStore: Send + Sync + 'static {
    async fn authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError>;

    async fn authorization_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError>;

    /// Stores a new active authorization and takes its hold, each ceiling
    /// by one conditional update (`used + held + hold <= limit`), in one
    /// transaction. `CeilingConflict` when a ceiling moved (nothing
    /// written: recompute and try again). [`Grant::AtLimit`] when the
    /// beneficiary (of the scheme) would have more than `max_active`
    /// authorizations in force: counted in the same transaction, one grant
    /// of a beneficiary at a time, so that grants at once never pass it.
    async fn grant_authorization(
        &self,
        rec: &AuthorizationRecord,
        max_active: u32,
    ) -> Result<Grant, StoreError>;

    /// Replaces an active authorization's terms by an extension's
    /// (`rec.extensions` = the stored one + 1), releasing the old hold and
    /// taking the new one conditionally, in one transaction. `false` when
    /// it is no longer active or another extension came first;
    /// `CeilingConflict` when a ceiling moved.
    async fn extend_authorization(&self, rec: &AuthorizationRecord) -> Result<bool, StoreError>;

    /// Active → `to` (cancelled or expired), its hold released: one
    /// conditional update, `false` when it was no longer active.
    async fn end_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
        to: AuthorizationState,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Active authorizations whose `expires_ms <= now_ms`, at most `limit`,
    /// as (scheme, authorization id).
    async fn due_authorizations(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// How many authorizations of one scheme beneficiary are active.
    async fn active_authorizations(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<u32, StoreError>;

    /// A mutuelle's authorizations, newest first, at most `limit`.
    async fn authorizations_of(
        &self,
        mutuelle_id: &str,
        limit: u32,
    ) -> Result<Vec<AuthorizationRecord>, StoreError>;
}

/// SQL and decisions shared by both backends (`ph`: the placeholder
/// character).
pub(super) mod sql {
    use super::super::core::{self, Row};
    use super::*;

    pub const COLS: &str = "scheme_id, authorization_id, reference, mutuelle_id, member_number, \
                            beneficiary_id, request_hash, state, body, valid_until, expires_ms, \
                            extensions, claim_id, created_ms, updated_ms";

    pub fn record(r: &dyn Row) -> Result<AuthorizationRecord, StoreError> {
        let state = r.text(7)?;
        let valid_until = r.text(9)?;
        Ok(AuthorizationRecord {
            scheme_id: r.text(0)?,
            authorization_id: r.text(1)?,
            reference: r.text(2)?,
            mutuelle_id: r.text(3)?,
            member_number: r.text(4)?,
            beneficiary_id: r.text(5)?,
            request_hash: r.text(6)?,
            state: AuthorizationState::parse(&state)
                .ok_or_else(|| core::corrupt("prior authorization state", &state))?,
            terms: core::from_json("prior authorization body", r.text(8)?.as_bytes())?,
            valid_until: passerelle_domain::date::parse(&valid_until)
                .ok_or_else(|| core::corrupt("prior authorization valid_until", &valid_until))?,
            expires_ms: r.int(10)?,
            extensions: u32::try_from(r.int(11)?)
                .map_err(|_| core::corrupt("prior authorization extensions", "out of range"))?,
            claim_id: r.text(12)?,
            created_ms: r.int(13)?,
            updated_ms: r.int(14)?,
        })
    }

    pub fn body(rec: &AuthorizationRecord) -> String {
        core::json(&rec.terms)
    }

    pub fn valid_until(rec: &AuthorizationRecord) -> String {
        passerelle_domain::date::format(rec.valid_until)
    }

    pub fn one(ph: char) -> String {
        format!(
            "SELECT {COLS} FROM prior_authorizations WHERE scheme_id = {ph}1 AND authorization_id = {ph}2"
        )
    }

    pub fn by_reference(ph: char) -> String {
        format!("SELECT {COLS} FROM prior_authorizations WHERE reference = {ph}1")
    }

    /// Parameters in `COLS` order, state 'active'.
    pub fn insert(ph: char) -> String {
        format!(
            "INSERT INTO prior_authorizations ({COLS}) VALUES ({ph}1, {ph}2, {ph}3, {ph}4, {ph}5, \
             {ph}6, {ph}7, 'active', {ph}8, {ph}9, {ph}10, {ph}11, '', {ph}12, {ph}12) \
             ON CONFLICT (scheme_id, authorization_id) DO NOTHING"
        )
    }

    /// Parameters: scheme, id, body, valid_until, expires, extensions (new),
    /// now.
    pub fn extend(ph: char) -> String {
        format!(
            "UPDATE prior_authorizations SET body = {ph}3, valid_until = {ph}4, expires_ms = {ph}5, \
             extensions = {ph}6, updated_ms = {ph}7 \
             WHERE scheme_id = {ph}1 AND authorization_id = {ph}2 AND state = 'active' \
             AND extensions = CAST({ph}6 AS BIGINT) - 1"
        )
    }

    /// Parameters: scheme, id, to, now.
    pub fn end(ph: char) -> String {
        format!(
            "UPDATE prior_authorizations SET state = {ph}3, updated_ms = {ph}4 \
             WHERE scheme_id = {ph}1 AND authorization_id = {ph}2 AND state = 'active'"
        )
    }

    /// Parameters: reference, claim id, now.
    /// Active, or consumed by a claim since cancelled (its correction is
    /// billed against it, `Broker::rebillable`), to consumed by claim 2.
    pub fn consume(ph: char) -> String {
        format!(
            "UPDATE prior_authorizations SET state = 'consumed', claim_id = {ph}2, updated_ms = {ph}3 \
             WHERE reference = {ph}1 AND (state = 'active' OR (state = 'consumed' AND claim_id <> {ph}2 \
             AND expires_ms > {ph}3 \
             AND EXISTS (SELECT 1 FROM claims c WHERE c.scheme_id = prior_authorizations.scheme_id \
             AND c.claim_id = prior_authorizations.claim_id AND c.state = 'cancelled')))"
        )
    }

    /// Parameters: now, limit.
    pub fn due(ph: char) -> String {
        format!(
            "SELECT scheme_id, authorization_id FROM prior_authorizations \
             WHERE state = 'active' AND expires_ms <= {ph}1 ORDER BY expires_ms LIMIT {ph}2"
        )
    }

    /// Parameters: scheme, beneficiary.
    pub fn active_of(ph: char) -> String {
        format!(
            "SELECT COUNT(*) FROM prior_authorizations WHERE scheme_id = {ph}1 \
             AND beneficiary_id = {ph}2 AND state = 'active'"
        )
    }

    /// Parameters: mutuelle, limit.
    pub fn of_mutuelle(ph: char) -> String {
        format!(
            "SELECT {COLS} FROM prior_authorizations WHERE mutuelle_id = {ph}1 \
             ORDER BY created_ms DESC, authorization_id LIMIT {ph}2"
        )
    }

    /// A hold taken: parameters mutuelle, key, amount, count, limit amount,
    /// limit count. One row or none (a limit would be passed).
    pub fn take_hold(ph: char) -> String {
        format!(
            "UPDATE ceiling_usage SET held_amount = held_amount + {ph}3, held_count = held_count + {ph}4 \
             WHERE mutuelle_id = {ph}1 AND ceiling_key = {ph}2 \
             AND (CAST({ph}5 AS BIGINT) IS NULL OR used_amount + held_amount + {ph}3 <= {ph}5) \
             AND (CAST({ph}6 AS BIGINT) IS NULL OR used_count + held_count + {ph}4 <= {ph}6)"
        )
    }

    /// A hold released: parameters mutuelle, key, amount, count.
    pub fn release_hold(ph: char) -> String {
        format!(
            "UPDATE ceiling_usage SET held_amount = held_amount - {ph}3, held_count = held_count - {ph}4 \
             WHERE mutuelle_id = {ph}1 AND ceiling_key = {ph}2"
        )
    }

    /// The ceiling's row, so that a hold or a claim has one to update.
    pub fn ensure_row(ph: char) -> String {
        format!(
            "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
             VALUES ({ph}1, {ph}2, 0, 0) ON CONFLICT DO NOTHING"
        )
    }

    /// The uses of a hold worth writing, by storage key.
    /// In key order, the order every writer takes ceiling rows in (no
    /// deadlock between replicas).
    pub fn uses(hold: &[CeilingUse]) -> Vec<(String, &CeilingUse)> {
        let mut out: Vec<_> = hold
            .iter()
            .filter(|u| u.amount != 0 || u.count != 0)
            .map(|u| (u.key.storage_key(), u))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The row of one authorization, locked until the transaction ends
    /// (PostgreSQL).
    pub fn one_for_update() -> String {
        format!("{} FOR UPDATE", one('$'))
    }

    pub fn by_reference_for_update() -> String {
        format!("{} FOR UPDATE", by_reference('$'))
    }

    /// What storing a request found stored already.
    pub fn found(stored: AuthorizationRecord, request_hash: &str) -> Grant {
        if stored.request_hash == request_hash {
            Grant::Existing(stored)
        } else {
            Grant::Modified(stored)
        }
    }

    pub fn hold_conflict(key: &str) -> StoreError {
        StoreError::CeilingConflict(key.to_string())
    }

    pub fn gone(reference: &str) -> StoreError {
        StoreError::CeilingConflict(format!("prior authorization {reference}"))
    }
}

/// The reason a claim is refused when the authorization it quotes was
/// paid against another claim while it waited. A rejection is stored as
/// its code and words: its detail is said again from them
/// ([`billed_elsewhere_again`]).
pub fn billed_elsewhere(reference: &str, other_claim: &str) -> Reason {
    Reason::said(
        ReasonCode::PriorAuthorizationNotActive,
        format!("prior authorization {reference}{BILLED_BY}{other_claim}"),
        DetailKey::AuthorizationBilledElsewhere,
        [
            ("reference", reference.to_string()),
            ("claim", other_claim.to_string()),
        ],
    )
}

const BILLED_BY: &str = " was billed by claim ";

/// [`billed_elsewhere`]'s detail, from the words it stored (`core::claim`),
/// which name the claim paid; words of another making give none (the
/// message is then read as it is).
pub fn billed_elsewhere_again(message: &str) -> Option<Detail> {
    let (reference, other) = message
        .strip_prefix("prior authorization ")?
        .split_once(BILLED_BY)?;
    billed_elsewhere(reference, other).detail
}
