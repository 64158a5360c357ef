//! Prior authorizations (accords préalables): a scheme asks, before the
//! act, what the mutuelle commits to for planned care; the mutuelle's
//! answer is binding and its amount reserved on the member's ceilings (a
//! hold) until a claim quoting the authorization is paid against it, the
//! scheme cancels it, or it expires (the retry worker, on the service's
//! clock). The store keeps the rules that must hold across replicas
//! (`store::authorizations`): holds and claims never pass a ceiling, and an
//! authorization leaves `active` once.
//!
//! Through every adapter: the rules adapter computes the commitment on the
//! mutuelle's declared product and the store holds it; a remote mutuelle
//! commits and holds on its own system (PreAuthorize), and the broker keeps
//! the authorization's state, so that one claim only is paid against it.

use passerelle_adapters::{
    AdapterError, AdapterKind, CancelPreAuthorization, Commitment, PreAuthorizationRequest,
    PriorTerms,
};
use passerelle_domain::validate::check_answer;
use passerelle_domain::{CareCategory, Claim, Date, Granted, GrantedLine, Reason, Stay};

use super::partner::{Outbound, busy};
use super::{Broker, HoldReleased, ServiceError, key_digest, mask};
use crate::store::StoreError;
use crate::store::authorizations::{
    AuthorizationRecord, AuthorizationState, AuthorizationTerms, Grant, billed_elsewhere,
};

/// How far ahead care may be planned: the longest a hold may wait for its
/// claim (a year and a day).
pub const MAX_DAYS_AHEAD: i64 = 366;
/// How many times an authorization is recomputed when a ceiling moved
/// under it (another claim or hold took it first).
const MAX_HOLD_RETRIES: usize = 8;
/// Authorizations the retry worker expires per pass.
pub const EXPIRY_BATCH: u32 = 500;
/// Most authorizations a listing returns.
pub const MAX_LISTED: u32 = 500;
/// The most an authorization may be extended.
pub const MAX_EXTENSIONS: u32 = 50;
/// The most authorizations one scheme beneficiary has in force at once (a
/// soft bound: two requests at the same instant may make it one more), so
/// that a scheme's faulty system cannot hold a member's ceilings with
/// thousands of them.
pub const MAX_ACTIVE_PER_BENEFICIARY: u32 = 20;

/// The reference a claim quotes: derived from (scheme, authorization id),
/// so that two replicas answering one request give the same.
pub fn reference_of(scheme_id: &str, authorization_id: &str) -> String {
    format!(
        "PA-{}",
        key_digest(&[scheme_id, authorization_id])[..16].to_ascii_uppercase()
    )
}

/// The partner idempotency key of an authorization (extension 0) or of
/// one of its extensions.
fn preauthorize_key(scheme_id: &str, authorization_id: &str, extension: u32) -> String {
    format!(
        "pa-{}",
        key_digest(&[scheme_id, authorization_id, &extension.to_string()])
    )
}

fn release_key(scheme_id: &str, authorization_id: &str) -> String {
    format!("pax-{}", key_digest(&[scheme_id, authorization_id]))
}

/// The partner idempotency key of the release of a commitment the broker
/// refused: its own, by the partner's reference, so that a later cancel
/// of a commitment stored under the same authorization id (the partner
/// answered the resend anew) is never taken by a partner for this release
/// resent (a FHIR server creating its Task conditionally keeps the first).
fn refused_release_key(scheme_id: &str, authorization_id: &str, partner_reference: &str) -> String {
    format!(
        "pay-{}",
        key_digest(&[scheme_id, authorization_id, "refused", partner_reference])
    )
}

/// Days after the last date of care an authorization covers during which
/// a claim for that care may still be billed (a provider bills after the
/// care; a claim may wait for its mutuelle): the hold lasts until then.
pub const BILLING_GRACE_DAYS: i64 = 60;

/// The instant an authorization valid until `d` expires: the end of the
/// billing grace after that day, UTC.
fn expiry_ms(d: Date) -> i64 {
    let next = d.saturating_add(time::Duration::days(1 + BILLING_GRACE_DAYS));
    next.midnight().assume_utc().unix_timestamp() * 1000
}

/// What a claim paid against this authorization carries to its partner.
pub fn terms_of(rec: &AuthorizationRecord) -> PriorTerms {
    let t = &rec.terms;
    PriorTerms {
        partner_reference: if t.partner_reference.is_empty() {
            rec.reference.clone()
        } else {
            t.partner_reference.clone()
        },
        granted: Granted {
            lines: t
                .planned
                .lines
                .iter()
                .zip(&t.shares)
                .map(|(l, s)| GrantedLine {
                    act_code: l.act_code.clone(),
                    billed: l.billed,
                    mutuelle_share: s.mutuelle_share,
                })
                .collect(),
            tolerance_bp: t.tolerance_bp,
        },
        hold: t.hold.clone(),
        stay_id: t.planned.stay.as_ref().map(|s| s.stay_id.clone()),
        rebilled: false,
    }
}

/// Why an authorization can no longer be billed, in words.
pub fn not_active(rec: &AuthorizationRecord) -> ServiceError {
    let message = match rec.state {
        AuthorizationState::Consumed => billed_elsewhere(&rec.reference, &rec.claim_id).message,
        AuthorizationState::Cancelled => {
            format!("prior authorization {} was cancelled", rec.reference)
        }
        AuthorizationState::Expired => format!(
            "prior authorization {} expired after {}",
            rec.reference,
            passerelle_domain::date::format(rec.valid_until)
        ),
        AuthorizationState::Active => format!("prior authorization {} is active", rec.reference),
    };
    ServiceError::Precondition {
        reason: "PRIOR_AUTHORIZATION_NOT_ACTIVE",
        message,
    }
}

/// A partner's failure to commit, as the scheme is told (not reached:
/// [`Broker::unavailable`], paused by an operator or not answering).
fn refused(b: &Broker, mutuelle_id: &str, e: AdapterError) -> ServiceError {
    match e {
        AdapterError::Unsupported(m) => ServiceError::Precondition {
            reason: "PRIOR_AUTHORIZATION_UNSUPPORTED",
            message: format!("mutuelle {mutuelle_id}: {m}"),
        },
        e if e.is_transient() => b.unavailable(
            mutuelle_id,
            format!("mutuelle {mutuelle_id}: {e}; nothing was stored, send the same request again"),
        ),
        AdapterError::Rejected(r) => ServiceError::Precondition {
            reason: "PRIOR_AUTHORIZATION_REFUSED",
            message: format!("mutuelle {mutuelle_id} refused: {}", r.message),
        },
        e => ServiceError::PartnerAnswerInvalid(format!("mutuelle {mutuelle_id}: {e}")),
    }
}

/// A partner's commitment whose shares are checked against the planned
/// lines as part of the call, as a claim's adjudication is
/// (`claims::checked`): one that does not hold counts as malformed in the
/// metrics and the audit row. [`committed_terms`] then reads it.
///
/// A commitment refused here was taken by the partner all the same: its
/// reference is kept in `refused` so that the hold can be released
/// ([`Broker::release_refused`]).
async fn shares_hold(
    planned: &Claim,
    answer: impl std::future::Future<Output = Result<Commitment, AdapterError>>,
    refused: &std::sync::OnceLock<String>,
) -> Result<Commitment, AdapterError> {
    let mut c = answer.await?;
    match check_answer(&planned.lines, std::mem::take(&mut c.lines)) {
        Ok(lines) => {
            c.lines = lines;
            Ok(c)
        }
        Err(why) => {
            let _ = refused.set(c.partner_reference);
            Err(AdapterError::Malformed(why))
        }
    }
}

/// The answer to a request whose id is stored: the stored authorization
/// for the same content, MODIFIED_REQUEST for other content.
fn stored_answer(
    rec: AuthorizationRecord,
    request_hash: &str,
) -> Result<AuthorizationRecord, ServiceError> {
    if rec.request_hash == request_hash {
        Ok(rec)
    } else {
        Err(ServiceError::ModifiedRequest(format!(
            "prior authorization {}",
            rec.authorization_id
        )))
    }
}

/// An authorization's terms from a partner's commitment, bounded: valid
/// from the planned date for at most `MAX_DAYS_AHEAD` days (30 when the
/// partner says nothing), a tolerance of at most 100 %.
fn committed_terms(planned: &Claim, c: Commitment) -> (AuthorizationTerms, Date) {
    // Its shares were checked in the partner call (`shares_hold`).
    let shares = c.lines;
    let day = |n: i64| planned.date_of_care.saturating_add(time::Duration::days(n));
    let valid_until = c
        .valid_until
        .unwrap_or(day(i64::from(
            passerelle_adapters::rules::DEFAULT_AUTHORIZATION_DAYS,
        )))
        .clamp(planned.date_of_care, day(MAX_DAYS_AHEAD));
    (
        AuthorizationTerms {
            planned: planned.clone(),
            shares,
            hold: c.hold,
            tolerance_bp: c
                .tolerance_bp
                .unwrap_or(0)
                .min(passerelle_domain::money::FULL),
            partner_reference: passerelle_domain::validate::truncate_text(
                &c.partner_reference,
                passerelle_domain::validate::MAX_ID_LEN,
            ),
            product: c.product,
            extension_hashes: Vec::new(),
        },
        valid_until,
    )
}

/// The refusal of a request past [`MAX_ACTIVE_PER_BENEFICIARY`] (`said`:
/// what became of a partner's commitment, if one was released).
fn at_limit(beneficiary_id: &str, said: &str) -> ServiceError {
    ServiceError::Precondition {
        reason: "PRIOR_AUTHORIZATION_LIMIT",
        message: format!(
            "beneficiary {} has {MAX_ACTIVE_PER_BENEFICIARY} prior authorizations in force: bill or cancel some first{said}",
            mask(beneficiary_id)
        ),
    }
}

impl Broker {
    fn check_planned_date(&self, d: Date) -> Result<(), ServiceError> {
        let today = self.clock.today();
        // The day either side of UTC a claim's date of care also takes.
        if d < today.saturating_sub(time::Duration::days(super::claims::MAX_DAYS_AFTER_TODAY)) {
            return Err(ServiceError::invalid(
                "date_of_care",
                "must not be in the past: care already given is billed as a claim",
            ));
        }
        if d > today.saturating_add(time::Duration::days(MAX_DAYS_AHEAD)) {
            return Err(ServiceError::invalid(
                "date_of_care",
                format!("must be at most {MAX_DAYS_AHEAD} days ahead"),
            ));
        }
        Ok(())
    }

    /// Asks the mutuelle for a prior authorization and stores it with its
    /// hold. See `RequestPriorAuthorization` in the scheme contract.
    pub async fn request_authorization(
        &self,
        mut planned: Claim,
    ) -> Result<AuthorizationRecord, ServiceError> {
        let scheme = self.scheme(&planned.scheme_id)?;
        self.check_currency(scheme, &planned.currency)?;
        let request_hash = planned.canonical_hash();
        let (scheme_id, id) = (planned.scheme_id.clone(), planned.claim_id.clone());
        if let Some(rec) = self.store.authorization(&scheme_id, &id).await? {
            return stored_answer(rec, &request_hash);
        }
        self.check_planned_date(planned.date_of_care)?;
        // Before the partner is asked (it would hold for nothing); the
        // grant counts again in its own transaction, which requests at
        // once do not pass.
        if self
            .store
            .active_authorizations(&scheme_id, &planned.beneficiary_id)
            .await?
            >= MAX_ACTIVE_PER_BENEFICIARY
        {
            return Err(at_limit(&planned.beneficiary_id, ""));
        }
        let route = self
            .route(
                &scheme_id,
                &planned.beneficiary_id,
                planned.date_of_care,
                planned.mutuelle_id.as_deref(),
                planned.member_number.as_deref(),
            )
            .await?;
        let Some(super::routing::Route {
            mutuelle_id: mid,
            member_number,
            ..
        }) = route
        else {
            return Err(super::routing::unknown_member(
                &planned.beneficiary_id,
                planned.mutuelle_id.as_deref(),
                planned.member_number.as_deref(),
            ));
        };
        let reference = reference_of(&scheme_id, &id);
        // Hospital care opens a stay: the request's, else one named by the
        // reference, which the per-stay cap counts against.
        if planned.stay.is_none()
            && planned
                .lines
                .iter()
                .any(|l| l.category == CareCategory::Hospitalisation)
        {
            planned.stay = Some(Stay {
                stay_id: reference.clone(),
                admission: planned.date_of_care,
                discharge: None,
            });
        }
        let partner = self.partner(&mid)?;
        let Some(_slot) = partner.slots.try_take() else {
            return Err(ServiceError::PartnerUnavailable(busy(&mid)));
        };
        let key = preauthorize_key(&scheme_id, &id, 0);
        // The reference of a commitment the broker refused, if any.
        let taken = std::sync::OnceLock::new();
        for _ in 0..MAX_HOLD_RETRIES {
            let req = PreAuthorizationRequest {
                idempotency_key: &key,
                planned: &planned,
                member_number: &member_number,
                replaces: None,
            };
            let out = Outbound {
                method: "PreAuthorize",
                subject: format!("{scheme_id}/{id}"),
                key: &key,
                audited: partner.kind != AdapterKind::Rules,
            };
            let adapter = partner.adapter.get();
            let answer = shares_hold(&planned, adapter.preauthorize(req), &taken);
            let commitment = match self.call_partner(&mid, out, answer).await {
                Ok(c) => c,
                Err(e) => {
                    let why = e.to_string();
                    let err = refused(self, &mid, e);
                    let (Some(partner_reference), ServiceError::PartnerAnswerInvalid(m)) =
                        (taken.get(), &err)
                    else {
                        return Err(err);
                    };
                    // The partner's key is the authorization id's: a request
                    // of other content under the same id, stored meanwhile,
                    // may have had this same commitment, which is then its
                    // and not to release.
                    if let Some(rec) = self.store.authorization(&scheme_id, &id).await? {
                        return stored_answer(rec, &request_hash);
                    }
                    let partner_reference = if partner_reference.is_empty() {
                        // As a cancel of a stored one names it (`terms_of`).
                        reference.clone()
                    } else {
                        partner_reference.clone()
                    };
                    let (hold, said) = self
                        .release_refused(partner, &scheme_id, &id, &partner_reference, &why)
                        .await;
                    // Bounded here (the partner's words in each to a
                    // quarter of the status's bound), so that the sentence
                    // on the hold is never what that bound cuts.
                    let m = passerelle_domain::validate::truncate_text(
                        m,
                        passerelle_domain::validate::MAX_PARTNER_TEXT / 2,
                    );
                    return Err(ServiceError::CommitmentRefused {
                        message: format!("{m}{said}"),
                        hold,
                    });
                }
            };
            let (terms, valid_until) = committed_terms(&planned, commitment);
            let now = self.clock.now_ms();
            let rec = AuthorizationRecord {
                scheme_id: scheme_id.clone(),
                authorization_id: id.clone(),
                reference: reference.clone(),
                mutuelle_id: mid.clone(),
                member_number: member_number.clone(),
                beneficiary_id: planned.beneficiary_id.clone(),
                request_hash: request_hash.clone(),
                state: AuthorizationState::Active,
                terms,
                valid_until,
                expires_ms: expiry_ms(valid_until),
                extensions: 0,
                claim_id: String::new(),
                created_ms: now,
                updated_ms: now,
            };
            match self
                .store
                .grant_authorization(&rec, MAX_ACTIVE_PER_BENEFICIARY)
                .await
            {
                Ok(Grant::Created(r)) | Ok(Grant::Existing(r)) => return Ok(r),
                Ok(Grant::AtLimit(_)) => {
                    // Others were granted meanwhile: the partner's
                    // commitment, nothing of it stored, is released as a
                    // refused one is.
                    let partner_reference = if rec.terms.partner_reference.is_empty() {
                        reference.clone()
                    } else {
                        rec.terms.partner_reference.clone()
                    };
                    let why = format!(
                        "the beneficiary has {MAX_ACTIVE_PER_BENEFICIARY} prior authorizations in force"
                    );
                    let (_, said) = self
                        .release_refused(partner, &scheme_id, &id, &partner_reference, &why)
                        .await;
                    return Err(at_limit(&planned.beneficiary_id, &said));
                }
                Ok(Grant::Modified(_)) => {
                    return Err(ServiceError::ModifiedRequest(format!(
                        "prior authorization {id}"
                    )));
                }
                Err(StoreError::CeilingConflict(k)) => {
                    tracing::debug!(authorization = %id, ceiling = %k, "ceiling moved; recomputing");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::PartnerUnavailable(
            "the member's ceilings are changing too fast; send the same request again".into(),
        ))
    }

    pub async fn get_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
    ) -> Result<AuthorizationRecord, ServiceError> {
        self.scheme(scheme_id)?;
        self.store
            .authorization(scheme_id, authorization_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "prior authorization {authorization_id} of scheme {scheme_id}"
                ))
            })
    }

    /// Extends an active authorization (a stay's): the new estimate
    /// replaces the lines, the mutuelle commits anew, the hold is adjusted
    /// in one transaction. `extension` numbers it from 1.
    pub async fn extend_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
        extension: u32,
        stay: Option<Stay>,
        lines: Vec<passerelle_domain::ClaimLine>,
    ) -> Result<AuthorizationRecord, ServiceError> {
        let rec = self.get_authorization(scheme_id, authorization_id).await?;
        let mut planned = rec.terms.planned.clone();
        if let (Some(old), Some(new)) = (&planned.stay, &stay)
            && old.stay_id != new.stay_id
        {
            return Err(ServiceError::invalid(
                "stay.stay_id",
                format!("must stay the authorization's stay {}", old.stay_id),
            ));
        }
        if let Some(s) = stay {
            planned.stay = Some(s);
        }
        planned.lines = lines;
        let mut v = Vec::new();
        passerelle_domain::validate::check_claim(&planned, &mut v);
        if !v.is_empty() {
            return Err(ServiceError::Invalid(v));
        }
        let hash = planned.canonical_hash();
        if extension >= 1 && extension <= rec.extensions {
            return match rec.terms.extension_hashes.get(extension as usize - 1) {
                Some(h) if *h == hash => Ok(rec),
                _ => Err(ServiceError::ModifiedRequest(format!(
                    "extension {extension} of prior authorization {authorization_id}"
                ))),
            };
        }
        if extension != rec.extensions + 1 {
            return Err(ServiceError::invalid(
                "extension",
                format!("must be {} (the next extension)", rec.extensions + 1),
            ));
        }
        if extension > MAX_EXTENSIONS {
            return Err(ServiceError::invalid(
                "extension",
                format!("at most {MAX_EXTENSIONS} extensions"),
            ));
        }
        if rec.state != AuthorizationState::Active {
            return Err(not_active(&rec));
        }
        let partner = self.partner(&rec.mutuelle_id)?;
        let Some(_slot) = partner.slots.try_take() else {
            return Err(ServiceError::PartnerUnavailable(busy(&rec.mutuelle_id)));
        };
        let key = preauthorize_key(scheme_id, authorization_id, extension);
        let old = terms_of(&rec);
        let unused_reference = std::sync::OnceLock::new();
        for _ in 0..MAX_HOLD_RETRIES {
            let req = PreAuthorizationRequest {
                idempotency_key: &key,
                planned: &planned,
                member_number: &rec.member_number,
                replaces: Some(&old),
            };
            let out = Outbound {
                method: "PreAuthorize",
                subject: format!("{scheme_id}/{authorization_id}"),
                key: &key,
                audited: partner.kind != AdapterKind::Rules,
            };
            let adapter = partner.adapter.get();
            // An extension refused is not released: the release would end
            // the whole authorization at the partner, whose first terms the
            // broker still holds (see docs/adapters.md).
            let answer = shares_hold(&planned, adapter.preauthorize(req), &unused_reference);
            let commitment = self
                .call_partner(&rec.mutuelle_id, out, answer)
                .await
                .map_err(|e| refused(self, &rec.mutuelle_id, e))?;
            let (mut terms, valid_until) = committed_terms(&planned, commitment);
            if terms.partner_reference.is_empty() {
                terms.partner_reference = rec.terms.partner_reference.clone();
            }
            terms.extension_hashes = rec.terms.extension_hashes.clone();
            terms.extension_hashes.push(hash.clone());
            let next = AuthorizationRecord {
                terms,
                valid_until,
                expires_ms: expiry_ms(valid_until),
                extensions: extension,
                updated_ms: self.clock.now_ms(),
                ..rec.clone()
            };
            match self.store.extend_authorization(&next).await {
                Ok(true) => return self.get_authorization(scheme_id, authorization_id).await,
                Ok(false) => {
                    // Another request came first: its answer if it was this
                    // same extension.
                    let now = self.get_authorization(scheme_id, authorization_id).await?;
                    return match now.terms.extension_hashes.get(extension as usize - 1) {
                        Some(h) if *h == hash => Ok(now),
                        Some(_) => Err(ServiceError::ModifiedRequest(format!(
                            "extension {extension} of prior authorization {authorization_id}"
                        ))),
                        None => Err(not_active(&now)),
                    };
                }
                Err(StoreError::CeilingConflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::PartnerUnavailable(
            "the member's ceilings are changing too fast; send the same request again".into(),
        ))
    }

    /// Releases at a remote mutuelle the hold of a commitment the broker
    /// refused (its shares do not hold: `why`), nothing of it stored: once,
    /// under a key of its own ([`refused_release_key`]), so that a resend
    /// of the request meets the same release and a later cancel of another
    /// commitment does not. Returns what became of the hold and what the
    /// scheme is told of it (appended to the refusal's message). When the
    /// mutuelle cannot be told, the scheme's resend of the same request
    /// asks again (the partner's answer is refused again, and released
    /// again); else the partner's hold ends at its own expiry.
    async fn release_refused(
        &self,
        partner: &super::Partner,
        scheme_id: &str,
        authorization_id: &str,
        partner_reference: &str,
        why: &str,
    ) -> (HoldReleased, String) {
        // A rules mutuelle holds nothing outside the store, where nothing
        // of the refused commitment was written.
        if partner.kind == AdapterKind::Rules {
            return (HoldReleased::Released, String::new());
        }
        let mutuelle_id = partner.id.as_str();
        let key = refused_release_key(scheme_id, authorization_id, partner_reference);
        let reason = passerelle_domain::validate::truncate_text(
            &format!("passerelle refused this commitment ({why})"),
            passerelle_domain::validate::MAX_PARTNER_TEXT,
        );
        let req = CancelPreAuthorization {
            idempotency_key: &key,
            partner_reference,
            scheme_id,
            authorization_id,
            reason: &reason,
        };
        let out = Outbound {
            method: "CancelPreAuthorization",
            subject: format!("{scheme_id}/{authorization_id}"),
            key: &key,
            audited: true,
        };
        let adapter = partner.adapter.get();
        match self
            .call_partner(mutuelle_id, out, adapter.cancel_preauthorization(req))
            .await
        {
            Ok(()) => (
                HoldReleased::Released,
                "; its hold at the mutuelle was released".into(),
            ),
            Err(e) => {
                tracing::warn!(
                    mutuelle = %mutuelle_id,
                    authorization = %authorization_id,
                    error = %e,
                    "hold of a refused commitment not released"
                );
                let transient = e.is_transient();
                let e = passerelle_domain::validate::truncate_text(
                    &e.to_string(),
                    passerelle_domain::validate::MAX_PARTNER_TEXT / 4,
                );
                if transient {
                    (
                        HoldReleased::NotReleased,
                        format!(
                            "; its hold at the mutuelle could not be released ({e}): send the same request again to retry"
                        ),
                    )
                } else {
                    // Resent, it would be refused again: a person releases it.
                    (
                        HoldReleased::Refused,
                        format!(
                            "; the mutuelle refused to release its hold ({e}): it must be released in the mutuelle's system"
                        ),
                    )
                }
            }
        }
    }

    /// Cancels an authorization not billed and releases its hold.
    pub async fn cancel_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
        reason: &str,
    ) -> Result<AuthorizationRecord, ServiceError> {
        let rec = self.get_authorization(scheme_id, authorization_id).await?;
        match rec.state {
            AuthorizationState::Cancelled | AuthorizationState::Expired => return Ok(rec),
            AuthorizationState::Consumed => {
                return Err(ServiceError::Precondition {
                    reason: "PRIOR_AUTHORIZATION_CONSUMED",
                    message: format!(
                        "prior authorization {} was billed by claim {}: cancel the claim instead",
                        rec.reference, rec.claim_id
                    ),
                });
            }
            AuthorizationState::Active => {}
        }
        let partner = self.partner(&rec.mutuelle_id)?;
        let key = release_key(scheme_id, authorization_id);
        let terms = terms_of(&rec);
        let req = CancelPreAuthorization {
            idempotency_key: &key,
            partner_reference: &terms.partner_reference,
            scheme_id,
            authorization_id,
            reason,
        };
        let out = Outbound {
            method: "CancelPreAuthorization",
            subject: format!("{scheme_id}/{authorization_id}"),
            key: &key,
            audited: partner.kind != AdapterKind::Rules,
        };
        // A remote mutuelle first: if it cannot be told, nothing changes
        // here and the scheme sends the cancel again. A rules mutuelle's
        // hold is the store's alone: released even while it is paused.
        if partner.kind != AdapterKind::Rules {
            // A place among the calls waiting on this mutuelle, as every
            // other call to it takes: a scheme resending cancels to a
            // mutuelle that hangs holds no more than `max_calls_per_partner`.
            let Some(_slot) = partner.slots.try_take() else {
                return Err(ServiceError::PartnerUnavailable(busy(&rec.mutuelle_id)));
            };
            self.call_partner(
                &rec.mutuelle_id,
                out,
                partner.adapter.get().cancel_preauthorization(req),
            )
            .await
            .map_err(|e| refused(self, &rec.mutuelle_id, e))?;
        }
        self.store
            .end_authorization(
                scheme_id,
                authorization_id,
                AuthorizationState::Cancelled,
                self.clock.now_ms(),
            )
            .await?;
        let now = self.get_authorization(scheme_id, authorization_id).await?;
        // A claim billed it meanwhile: say so, as when it was billed before.
        if now.state == AuthorizationState::Consumed {
            return Err(ServiceError::Precondition {
                reason: "PRIOR_AUTHORIZATION_CONSUMED",
                message: format!(
                    "prior authorization {} was billed by claim {}: cancel the claim instead",
                    now.reference, now.claim_id
                ),
            });
        }
        Ok(now)
    }

    /// The retry worker's pass over authorizations past their date: each
    /// expires, its hold released (a remote mutuelle expires its own).
    /// Returns how many expired.
    pub async fn expire_authorizations(&self) -> Result<u64, ServiceError> {
        let now = self.clock.now_ms();
        let due = self.store.due_authorizations(now, EXPIRY_BATCH).await?;
        let mut n = 0;
        for (scheme_id, id) in due {
            if self
                .store
                .end_authorization(&scheme_id, &id, AuthorizationState::Expired, now)
                .await?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A mutuelle's authorizations, newest first (the console).
    pub async fn authorizations_of(
        &self,
        mutuelle_id: &str,
        limit: u32,
    ) -> Result<Vec<AuthorizationRecord>, ServiceError> {
        Ok(self
            .store
            .authorizations_of(mutuelle_id, limit.clamp(1, MAX_LISTED))
            .await?)
    }

    /// The authorization a claim quotes, checked before the claim is
    /// stored: the same scheme's and beneficiary's, routed to the same
    /// mutuelle, in force on the date of care, not billed by another claim.
    pub(super) async fn quoted_authorization(
        &self,
        claim: &Claim,
        mutuelle_id: &str,
    ) -> Result<(), ServiceError> {
        let Some(reference) = &claim.prior_authorization else {
            return Ok(());
        };
        let unknown = || {
            ServiceError::invalid(
                "prior_authorization_reference",
                "no prior authorization with this reference for this scheme and beneficiary",
            )
        };
        let rec = self
            .store
            .authorization_by_reference(reference)
            .await?
            .ok_or_else(unknown)?;
        if rec.scheme_id != claim.scheme_id || rec.beneficiary_id != claim.beneficiary_id {
            return Err(unknown());
        }
        if rec.mutuelle_id != mutuelle_id {
            return Err(ServiceError::invalid(
                "prior_authorization_reference",
                "the authorization was given by another mutuelle than the one this claim goes to",
            ));
        }
        // The care it authorized: a claim for other acts (a consultation
        // before the stay it authorized) is not paid against it, and would
        // use it up for the claim of the stay.
        let planned = &rec.terms.planned;
        if terms_of(&rec)
            .granted
            .matches(&claim.lines)
            .iter()
            .all(Option::is_none)
        {
            let acts = |lines: &[passerelle_domain::ClaimLine]| {
                let mut a: Vec<&str> = lines.iter().map(|l| l.act_code.as_str()).collect();
                a.sort_unstable();
                a.dedup();
                a.join(", ")
            };
            return Err(ServiceError::invalid(
                "prior_authorization_reference",
                format!(
                    "prior authorization {} covers the acts {}, none of this claim's ({}): quote it on the claim of the care it authorized",
                    rec.reference,
                    acts(&planned.lines),
                    acts(&claim.lines)
                ),
            ));
        }
        let rebillable = self.rebillable(&rec, &claim.claim_id).await?;
        let in_force = rec.state == AuthorizationState::Active || rebillable;
        if in_force && claim.date_of_care < planned.date_of_care {
            return Err(ServiceError::invalid(
                "date_of_care",
                format!(
                    "prior authorization {} covers care from {} to {}: care given before it is not paid against it",
                    rec.reference,
                    passerelle_domain::date::format(planned.date_of_care),
                    passerelle_domain::date::format(rec.valid_until)
                ),
            ));
        }
        match rec.state {
            _ if in_force && claim.date_of_care > rec.valid_until => {
                Err(ServiceError::Precondition {
                    reason: "PRIOR_AUTHORIZATION_NOT_ACTIVE",
                    message: format!(
                        "prior authorization {} covers care up to {}",
                        rec.reference,
                        passerelle_domain::date::format(rec.valid_until)
                    ),
                })
            }
            _ if in_force => Ok(()),
            AuthorizationState::Consumed if rec.claim_id == claim.claim_id => Ok(()),
            _ => Err(not_active(&rec)),
        }
    }

    /// Whether an authorization consumed by another claim may be billed by
    /// `claim_id`: that claim was cancelled since (a billing error
    /// corrected: the scheme cancels and sends the claim again, and a new
    /// authorization cannot be asked for care already given). One claim at
    /// a time is paid against it; the hold went with the first, so the
    /// correction is paid on what the ceilings hold then.
    async fn rebillable(
        &self,
        rec: &AuthorizationRecord,
        claim_id: &str,
    ) -> Result<bool, ServiceError> {
        // Within its billing grace, as an active one (`expires_ms`: the
        // end of the 60th day after `valid_until`).
        if rec.state != AuthorizationState::Consumed
            || rec.claim_id == claim_id
            || rec.expires_ms <= self.clock.now_ms()
        {
            return Ok(false);
        }
        Ok(self
            .store
            .get_claim(&rec.scheme_id, &rec.claim_id)
            .await?
            .is_some_and(|c| c.state == passerelle_domain::ClaimState::Cancelled))
    }

    /// What the authorization a claim quotes gives at this attempt: its
    /// terms while it is active ([`Quoted::Terms`]); nothing when the claim
    /// quotes none, or its authorization was cancelled or expired since
    /// (the claim is then adjudicated as any claim); and
    /// [`Quoted::BilledElsewhere`] when another claim was paid against it
    /// meanwhile (two claims quoting it in flight at once, or one waiting
    /// on its mutuelle while a second was paid): this one is refused,
    /// since one claim only is paid against an authorization.
    pub(super) async fn quoted(&self, claim: &Claim) -> Result<Quoted, ServiceError> {
        let Some(reference) = &claim.prior_authorization else {
            return Ok(Quoted::Nothing);
        };
        Ok(
            match self.store.authorization_by_reference(reference).await? {
                Some(r) if r.state == AuthorizationState::Active => {
                    Quoted::Terms(r.reference.clone(), terms_of(&r), false)
                }
                Some(r)
                    if r.state == AuthorizationState::Consumed && r.claim_id != claim.claim_id =>
                {
                    if self.rebillable(&r, &claim.claim_id).await? {
                        // Its hold went with the cancelled claim.
                        let mut terms = terms_of(&r);
                        terms.hold.clear();
                        terms.rebilled = true;
                        Quoted::Terms(r.reference.clone(), terms, true)
                    } else {
                        Quoted::BilledElsewhere(billed_elsewhere(&r.reference, &r.claim_id))
                    }
                }
                _ => Quoted::Nothing,
            },
        )
    }
}

/// What the authorization a claim quotes gives at one attempt
/// ([`Broker::quoted`]).
pub(super) enum Quoted {
    Nothing,
    /// The authorization's reference and terms, and whether it is billed
    /// again by the correction of a claim cancelled since
    /// ([`Broker::rebillable`]): its hold went with the first claim, so the
    /// correction is paid on what the ceilings hold now, and a mutuelle
    /// with its own system is not held to the commitment.
    Terms(String, PriorTerms, bool),
    /// Consumed by another claim: the reason this one is refused.
    BilledElsewhere(Reason),
}

#[cfg(test)]
#[path = "authorizations_tests.rs"]
mod tests;
