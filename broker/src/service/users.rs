//! People who use the console: accounts, sign-in, sessions.
//!
//! - Passwords are hashed with argon2id (19 MiB, 2 passes: OWASP's
//!   minimum), on blocking threads, at most [`MAX_HASHES`] at once: a flood
//!   of sign-ins queues for [`HASH_WAIT`] then is refused, it never takes
//!   every core or 19 MiB per request.
//! - Sign-in is throttled before any hashing, per address and per account,
//!   by back-off and never lockout: the first [`FREE_FAILURES`] failures
//!   cost nothing, then each doubles the wait, up to [`MAX_BACKOFF_MS`]; a
//!   key's count starts again [`THROTTLE_INTERVAL_MS`] after its last
//!   failure. The counts are in the store, so replicas share them.
//! - Failures are audited grouped: one row at the 1st, 10th, 100th...
//!   failure of a key within its interval, with the count, so no one can
//!   grow the audit log without bound.
//! - A session is a random 256-bit id in a cookie; the store keeps its
//!   SHA-256. It ends [`IDLE_MS`] after its last request or [`ABSOLUTE_MS`]
//!   after sign-in, whichever comes first (the service's clock: injectable);
//!   the retention job removes it then, with the file uploaded in it. An
//!   account keeps at most [`MAX_SESSIONS_PER_LOGIN`]: a sign-in past them
//!   ends the oldest.
//! - A password someone else gave signs in for [`TEMPORARY_PASSWORD_MS`]
//!   after it was set, then is refused (its owner asks for a new one); an
//!   operator's first change of it also gives them a second factor of
//!   their own, which the operator who made the account never saw.
//! - Operators need a second factor (TOTP, RFC 6238, 6 digits, 30 s, one
//!   step of drift).

use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use super::{Broker, ServiceError};
use crate::identity::{Caller, Role};
use crate::store::users::{Backoff, Session, User, UserChange, UserRole};
use crate::store::{AuditEntry, Direction};

/// Password hashes computed at once, in the whole process.
pub const MAX_HASHES: usize = 2;
/// How long a sign-in waits for a hashing slot before it is refused.
pub const HASH_WAIT: Duration = Duration::from_secs(5);
/// Failures per key and interval that cost no wait.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait between two attempts on one login from one address,
/// or from one address.
pub const MAX_BACKOFF_MS: i64 = 15 * 60 * 1000;
/// The longest wait on one login from anywhere.
pub const ACCOUNT_MAX_WAIT_MS: i64 = 60 * 1000;
/// A key's failures are forgotten this long after its last one.
pub const THROTTLE_INTERVAL_MS: i64 = 60 * 60 * 1000;
/// A session ends after this long without a request...
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// ...or this long after sign-in.
pub const ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// Sessions an account keeps at once: a sign-in past them ends the oldest.
pub const MAX_SESSIONS_PER_LOGIN: u32 = 10;
/// A password given by someone else (an operator, `passerelle users
/// add|reset`) signs in for this long after it was set; then its owner
/// asks for a new one.
pub const TEMPORARY_PASSWORD_MS: i64 = 72 * 60 * 60 * 1000;
/// A session's last-seen time is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
/// Bounds of what a person types.
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;
/// The fewest different characters a password its owner chooses holds.
pub const MIN_DISTINCT: usize = 5;
const MAX_LOGIN: usize = 64;

static HASHES: Semaphore = Semaphore::const_new(MAX_HASHES);

fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Runs `f` on a blocking thread once a hashing slot is free.
async fn hashing<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let permit = tokio::time::timeout(HASH_WAIT, HASHES.acquire())
        .await
        .map_err(|_| ServiceError::Overloaded("too many sign-ins at once: try again".into()))?
        .map_err(|_| ServiceError::Overloaded("closing".into()))?;
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Store(crate::store::StoreError::Backend(e.to_string())))?;
    drop(permit);
    Ok(out)
}

/// An argon2id hash of `password` (PHC string).
pub async fn hash_password(password: &str) -> Result<String, ServiceError> {
    let password = password.to_string();
    hashing(move || {
        argon2()
            .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| ServiceError::Refused(format!("password not hashed: {e}")))
}

/// Checks `password` against a stored hash; an unreadable hash never
/// matches.
async fn verify_password(password: &str, stored: &str) -> Result<bool, ServiceError> {
    let (password, stored) = (password.to_string(), stored.to_string());
    hashing(move || {
        argon2()
            .verify_password(password.as_bytes(), stored.as_str())
            .is_ok()
    })
    .await
}

/// A hash of a password no one has, checked when the login is unknown, so
/// that an unknown login takes as long as a wrong password.
static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the system's random source");
    b
}

/// A random token, base64url without padding.
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// The SHA-256 of a session id, as the store keeps it.
pub fn session_hash(id: &str) -> String {
    crate::audit::hash(id.as_bytes())
}

/// The keys a sign-in attempt is counted under, each with its back-off:
/// - the login from this address: [`FREE_FAILURES`] free, then up to
///   [`MAX_BACKOFF_MS`] (a guesser at one account);
/// - the address: 10 free (an office behind one address), then up to
///   [`MAX_BACKOFF_MS`] (a guesser spraying accounts);
/// - the login from anywhere: 20 free, then at most [`ACCOUNT_MAX_WAIT_MS`]:
///   a guesser from many addresses is slowed, and someone failing on
///   purpose delays the account's owner by a minute at most, never locks
///   them out.
///
/// Logins are hashed into a fixed number of keys (65,536), known or not:
/// the throttle tells nothing of which logins exist, and typing names
/// cannot grow its table beyond that.
fn throttle_keys(login: &str, address: &str) -> [(String, Backoff); 3] {
    let bucket = &crate::audit::hash(login.as_bytes())[..4];
    let address = network_of(address);
    let strict = Backoff {
        free: FREE_FAILURES,
        max_wait_ms: MAX_BACKOFF_MS,
    };
    [
        (format!("login:{bucket}@{address}"), strict),
        (format!("address:{address}"), Backoff { free: 10, ..strict }),
        (
            format!("login:{bucket}"),
            Backoff {
                free: 20,
                max_wait_ms: ACCOUNT_MAX_WAIT_MS,
            },
        ),
    ]
}

/// The network an address counts under ([`crate::net::peer_network`]):
/// an IPv6 one written with its /64; anything else (a test's name) as it
/// is.
fn network_of(address: &str) -> String {
    match address
        .parse::<std::net::IpAddr>()
        .map(crate::net::peer_network)
    {
        Ok(net @ std::net::IpAddr::V6(_)) => format!("{net}/64"),
        Ok(v4) => v4.to_string(),
        Err(_) => address.to_string(),
    }
}

/// A new account, as `passerelle users add` or the operator's page gives it.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub login: String,
    pub display_name: String,
    pub role: UserRole,
    pub scope: Vec<String>,
    pub password: String,
    pub lang: String,
    /// The password was made for the person by someone else (an operator,
    /// the command line): they choose their own at their first request.
    pub must_change: bool,
}

/// Why a sign-in failed, as the person is told: never whether the login
/// exists.
#[derive(Debug, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong login, password or code (or a disabled account).
    Refused,
    /// The right password and code, but a password someone else gave,
    /// set more than [`TEMPORARY_PASSWORD_MS`] ago: ask for a new one.
    TemporaryExpired,
    /// Too many failures: try again in this many seconds.
    Wait(i64),
    /// No hashing slot, or the store failed.
    Unavailable(String),
}

/// Why a person's change of their own password was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordChangeError {
    /// The current password or code is wrong, a wait, or the store.
    Credentials(SignInError),
    /// The new password is shorter or longer than allowed.
    Length,
    /// The new password is the current one.
    Same,
    /// The new password is a few characters repeated, or holds the login.
    Weak,
    /// The account's password changed while this one was checked (an
    /// operator's reset): nothing written.
    Changed,
}

/// A person signed in, as each request of the console sees them.
#[derive(Clone, Debug)]
pub struct Person {
    pub user: User,
    pub session: Session,
}

impl Person {
    /// The mutuelle a clerk or manager works on now: the session's choice
    /// within their scope, else the first of it.
    pub fn mutuelle(&self) -> Option<&str> {
        if !self.user.role.is_mutuelle() {
            return None;
        }
        let chosen = self.session.mutuelle_id.as_str();
        if self.user.scope.iter().any(|m| m == chosen) {
            Some(chosen)
        } else {
            self.user.scope.first().map(String::as_str)
        }
    }

    /// The identity the broker's authorization knows this person as.
    pub fn caller(&self) -> Caller {
        let (role, id) = match self.user.role {
            UserRole::Clerk | UserRole::Manager => (
                Role::Mutuelle,
                self.mutuelle().unwrap_or_default().to_string(),
            ),
            UserRole::SchemeStaff => (
                Role::Scheme,
                self.user.scope.first().cloned().unwrap_or_default(),
            ),
            UserRole::Operator => (Role::Operator, self.user.login.clone()),
        };
        Caller {
            role,
            id,
            user: Some(self.user.login.clone()),
            clerk: self.user.role == UserRole::Clerk,
        }
    }
}

fn check_login(login: &str) -> Result<(), ServiceError> {
    let ok = !login.is_empty()
        && login.len() <= MAX_LOGIN
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "login",
            format!("1 to {MAX_LOGIN} characters among a-z, 0-9 and . _ - @ (lower case)"),
        ))
    }
}

pub fn check_password(password: &str) -> Result<(), ServiceError> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "password",
            format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ))
    }
}

/// A new TOTP secret (160 bits, base32 without padding, as authenticator
/// apps read it).
pub fn new_totp_secret() -> String {
    base32_encode(&random_bytes::<20>())
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Base32 (RFC 4648, case and spaces ignored, padding optional); `None`
/// when a character is not base32.
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = B32
            .iter()
            .position(|b| *b as char == c.to_ascii_uppercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// HOTP (RFC 4226) with HMAC-SHA-1, six digits: what RFC 6238's TOTP
/// computes for each 30-second step, as every authenticator app does.
fn hotp(key: &[u8], counter: u64) -> Option<u32> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).ok()?;
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    Some(bin % 1_000_000)
}

const TOTP_STEP_MS: i64 = 30_000;

/// The time step whose code `code` is, within one step of `now_ms` either
/// way (a phone's clock a little off); compared in constant time. An empty
/// or unreadable secret matches nothing.
fn totp_step(secret: &str, code: &str, now_ms: i64) -> Option<i64> {
    let key = base32_decode(secret).filter(|k| !k.is_empty())?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now_ms.div_euclid(TOTP_STEP_MS);
    let mut found = None;
    for s in [step - 1, step, step + 1] {
        let Ok(counter) = u64::try_from(s) else {
            continue;
        };
        if let Some(c) = hotp(&key, counter) {
            let diff = format!("{c:06}")
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y));
            if diff == 0 {
                found = Some(s);
            }
        }
    }
    found
}

/// The otpauth:// address an authenticator app reads (as a QR code or
/// typed).
pub fn totp_url(secret: &str, login: &str) -> Option<String> {
    base32_decode(secret)?;
    let login: String = login
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Some(format!(
        "otpauth://totp/passerelle:{login}?secret={secret}&issuer=passerelle&algorithm=SHA1&digits=6&period=30"
    ))
}

/// The code of a secret at `now_ms` (`passerelle users code`, tests).
pub fn totp_code(secret: &str, now_ms: i64) -> Option<String> {
    let key = base32_decode(secret).filter(|k| !k.is_empty())?;
    let step = u64::try_from(now_ms.div_euclid(TOTP_STEP_MS)).ok()?;
    hotp(&key, step).map(|c| format!("{c:06}"))
}

impl Broker {
    /// Adds an account. Operators get a second factor: its secret is in
    /// the returned user, to be shown once.
    pub async fn add_user(&self, new: NewUser, by: &str) -> Result<User, ServiceError> {
        check_login(&new.login)?;
        check_password(&new.password)?;
        if new.display_name.trim().is_empty() || new.display_name.chars().count() > 100 {
            return Err(ServiceError::invalid("display_name", "1 to 100 characters"));
        }
        match new.role {
            UserRole::Clerk | UserRole::Manager => {
                if new.scope.is_empty() {
                    return Err(ServiceError::invalid(
                        "scope",
                        "a clerk or manager works for at least one mutuelle",
                    ));
                }
                for m in &new.scope {
                    if !self.directory().mutuelles.contains(m) {
                        return Err(ServiceError::invalid(
                            "scope",
                            format!("unknown mutuelle {m:?}"),
                        ));
                    }
                }
            }
            UserRole::SchemeStaff => {
                if new.scope.len() != 1 || self.scheme(&new.scope[0]).is_err() {
                    return Err(ServiceError::invalid(
                        "scope",
                        "scheme staff work for one configured scheme",
                    ));
                }
            }
            UserRole::Operator => {
                if !new.scope.is_empty() {
                    return Err(ServiceError::invalid("scope", "operators have no scope"));
                }
            }
        }
        if !["", "fr", "en"].contains(&new.lang.as_str()) {
            return Err(ServiceError::invalid("lang", "fr or en"));
        }
        let now = self.clock.now_ms();
        let user = User {
            login: new.login,
            display_name: new.display_name.trim().to_string(),
            role: new.role,
            scope: new.scope,
            password_hash: hash_password(&new.password).await?,
            totp_secret: if new.role == UserRole::Operator {
                new_totp_secret()
            } else {
                String::new()
            },
            lang: new.lang,
            disabled_ms: 0,
            created_ms: now,
            updated_ms: now,
            must_change: new.must_change,
            password_set_ms: now,
        };
        if !self.store.add_user(&user).await? {
            return Err(ServiceError::Refused(format!(
                "the login {} is taken",
                user.login
            )));
        }
        self.account_audit(by, "AddUser", &user.login, user.role.as_str())
            .await;
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<User>, ServiceError> {
        Ok(self.store.users().await?)
    }

    /// Changes an account (`passerelle users reset|disable|enable`, the
    /// operator's page); a new password, second factor or disabling ends
    /// its sessions.
    pub async fn change_user(
        &self,
        login: &str,
        password: Option<&str>,
        new_totp: bool,
        disabled: Option<bool>,
        by: &str,
    ) -> Result<User, ServiceError> {
        let mut change = UserChange::default();
        if let Some(p) = password {
            check_password(p)?;
            change.password_hash = Some(hash_password(p).await?);
            // Given by someone else: its owner chooses their own first.
            change.must_change = Some(true);
        }
        if new_totp {
            change.totp_secret = Some(new_totp_secret());
        }
        let now = self.clock.now_ms();
        change.disabled_ms = disabled.map(|d| if d { now.max(1) } else { 0 });
        if !self.store.update_user(login, &change, now).await? {
            return Err(ServiceError::NotFound(format!("user {login}")));
        }
        let what = [
            password.map(|_| "new password"),
            new_totp.then_some("new second factor"),
            disabled.map(|d| if d { "disabled" } else { "enabled" }),
        ];
        let what: Vec<&str> = what.into_iter().flatten().collect();
        self.account_audit(by, "ChangeUser", login, &what.join(", "))
            .await;
        self.store
            .user(login)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user {login}")))
    }

    /// Sessions with a request in the last [`IDLE_MS`], newest first (at
    /// most 200), for the operator's page.
    pub async fn recent_sessions(&self) -> Result<Vec<Session>, ServiceError> {
        let now = self.clock.now_ms();
        Ok(self.store.sessions(now - IDLE_MS, 200).await?)
    }

    /// Ends every session of an account; returns how many.
    pub async fn revoke_sessions(&self, login: &str, by: &str) -> Result<u64, ServiceError> {
        let n = self.store.delete_sessions(login).await?;
        self.account_audit(by, "RevokeSessions", login, &format!("{n} session(s)"))
            .await;
        Ok(n)
    }

    /// An audit row for a change to an account, `by` whoever made it (an
    /// operator in the console, `cli:<user>` on the broker's host).
    async fn account_audit(&self, by: &str, method: &str, login: &str, what: &str) {
        self.audit
            .record(AuditEntry {
                at_ms: self.clock.now_ms(),
                direction: Direction::In,
                party: by.to_string(),
                method: method.to_string(),
                subject: format!("user/{login}"),
                request_hash: String::new(),
                outcome: format!("ok: {what}"),
                trace_id: String::new(),
            })
            .await;
    }

    /// A login's password (and second factor, for an operator or an
    /// account that has one) checked under the sign-in throttle: the
    /// account, or why not. The throttle is asked before any hashing; an
    /// unknown or disabled login costs the same hash. Sign-in and a
    /// person's change of their own password.
    async fn verify(
        &self,
        login: &str,
        password: &str,
        code: &str,
        address: &str,
        now: i64,
    ) -> Result<User, SignInError> {
        let unavailable = |e: ServiceError| SignInError::Unavailable(e.to_string());
        let login = login.trim().to_lowercase();
        // Every attempt is taken under its keys before any hashing, known
        // login or not (so that the throttle tells nothing of which logins
        // exist); a key in its wait refuses, and the keys taken are given
        // back.
        let keys = throttle_keys(&login, address);
        let mut taken: Vec<(&str, u32)> = Vec::new();
        for (key, backoff) in &keys {
            match self
                .store
                .throttle_attempt(key, now, now - THROTTLE_INTERVAL_MS, *backoff)
                .await
            {
                Ok(Some(t)) => taken.push((key.as_str(), t.failures)),
                Ok(None) => {
                    self.refund(taken.iter().map(|(k, _)| *k)).await;
                    let rows = self
                        .store
                        .throttles(std::slice::from_ref(key))
                        .await
                        .unwrap_or_default();
                    let wait = rows.first().map_or(1000, |t| t.next_ms - now).max(1000);
                    return Err(SignInError::Wait((wait + 999) / 1000));
                }
                Err(e) => {
                    self.refund(taken.iter().map(|(k, _)| *k)).await;
                    return Err(unavailable(e.into()));
                }
            }
        }
        let user = if check_login(&login).is_ok() && password.chars().count() <= MAX_PASSWORD {
            self.store
                .user(&login)
                .await
                .map_err(|e| unavailable(e.into()))?
        } else {
            None
        };
        let ok = match &user {
            Some(u) if u.disabled_ms == 0 => verify_password(password, &u.password_hash)
                .await
                .map_err(unavailable)?,
            _ => {
                // An unknown or disabled login costs the same hash.
                let decoy = match DECOY.get() {
                    Some(d) => d.clone(),
                    None => {
                        let h = hash_password(&random_token()).await.map_err(unavailable)?;
                        DECOY.get_or_init(|| h).clone()
                    }
                };
                verify_password(password, &decoy)
                    .await
                    .map_err(unavailable)?;
                false
            }
        };
        let user = match (ok, user) {
            (true, Some(u)) => u,
            _ => {
                self.signin_failed(&taken, &login, address, now).await;
                return Err(SignInError::Refused);
            }
        };
        if user.role == UserRole::Operator || !user.totp_secret.is_empty() {
            // A missing code is refused like a wrong one (and counted), so
            // that the answer never tells that the password was right.
            let code = code.trim();
            // A code is accepted once: its step is spent.
            let fresh = match totp_step(&user.totp_secret, code, now) {
                Some(step) => self
                    .store
                    .use_totp_step(&user.login, step)
                    .await
                    .map_err(|e| unavailable(e.into()))?,
                None => false,
            };
            if !fresh {
                self.signin_failed(&taken, &login, address, now).await;
                return Err(SignInError::Refused);
            }
        }
        self.refund(taken.iter().map(|(k, _)| *k)).await;
        Ok(user)
    }

    /// A person chooses a new password, giving their current one (and
    /// their code, for an operator): checked under the sign-in throttle as
    /// a sign-in is. Every session of the account ends, this one too (the
    /// person signs in again with the new password), and the account no
    /// longer must change it. A password someone else gave, changed by an
    /// account with a second factor (every operator), also gives it a new
    /// secret, returned to be shown to this person only: the one shown to
    /// whoever made the account or reset it no longer signs in.
    pub async fn change_own_password(
        &self,
        person: &Person,
        current: &str,
        code: &str,
        new: &str,
        address: &str,
    ) -> Result<Option<String>, PasswordChangeError> {
        if check_password(new).is_err() {
            return Err(PasswordChangeError::Length);
        }
        if new == current {
            return Err(PasswordChangeError::Same);
        }
        // A few characters repeated ("aaaaaaaaaaaa", "abababababab") or the
        // login itself (one of 4 characters or more: "ama" is in many
        // words): guessed first.
        let distinct: std::collections::HashSet<char> = new.chars().collect();
        let login = &person.user.login;
        if distinct.len() < MIN_DISTINCT
            || (login.chars().count() >= 4 && new.to_lowercase().contains(login.as_str()))
        {
            return Err(PasswordChangeError::Weak);
        }
        let unavailable = |e: ServiceError| {
            PasswordChangeError::Credentials(SignInError::Unavailable(e.to_string()))
        };
        let now = self.clock.now_ms();
        let user = self
            .verify(&person.user.login, current, code, address, now)
            .await
            .map_err(PasswordChangeError::Credentials)?;
        let second_factor = (user.must_change
            && (user.role == UserRole::Operator || !user.totp_secret.is_empty()))
        .then(new_totp_secret);
        let change = UserChange {
            password_hash: Some(hash_password(new).await.map_err(unavailable)?),
            totp_secret: second_factor.clone(),
            must_change: Some(false),
            // Only over the password checked: an operator's reset
            // committed during the hashing is kept.
            expect_password_hash: Some(user.password_hash.clone()),
            ..UserChange::default()
        };
        let written = self
            .store
            .update_user(&user.login, &change, now)
            .await
            .map_err(|e| unavailable(e.into()))?;
        if !written {
            return Err(PasswordChangeError::Changed);
        }
        let outcome = if second_factor.is_some() {
            "ok: new second factor"
        } else {
            "ok"
        };
        self.console_audit(person, address, "ChangePassword", &user.login, outcome)
            .await;
        Ok(second_factor)
    }

    /// Signs a person in: the new session's cookie id and the person. The
    /// throttle is asked before any hashing.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        code: &str,
        address: &str,
    ) -> Result<(String, Person), SignInError> {
        let unavailable = |e: ServiceError| SignInError::Unavailable(e.to_string());
        let now = self.clock.now_ms();
        let user = self.verify(login, password, code, address, now).await?;
        // A password someone else gave, unused for too long: its owner
        // asks for a new one (said only once the password and code hold).
        // An account an older replica made during an upgrade wrote no
        // `password_set_ms` (0): its `updated_ms` then. Never the later of
        // the two: disabling and enabling an account would give an unused
        // temporary password 72 more hours.
        let set_ms = if user.password_set_ms == 0 {
            user.updated_ms
        } else {
            user.password_set_ms
        };
        if user.must_change && now - set_ms > TEMPORARY_PASSWORD_MS {
            self.audit
                .record(AuditEntry {
                    at_ms: now,
                    direction: Direction::In,
                    party: format!("console@{address}"),
                    method: "SignIn".into(),
                    subject: format!("user/{}", user.login),
                    request_hash: String::new(),
                    outcome: "refused: temporary password expired".into(),
                    trace_id: String::new(),
                })
                .await;
            return Err(SignInError::TemporaryExpired);
        }
        let id = random_token();
        let session = Session {
            id_hash: session_hash(&id),
            login: user.login.clone(),
            csrf_secret: random_token(),
            mutuelle_id: user
                .scope
                .first()
                .filter(|_| user.role.is_mutuelle())
                .cloned()
                .unwrap_or_default(),
            created_ms: now,
            seen_ms: now,
            address: address.to_string(),
        };
        // Written only if the account still holds what was verified: a
        // reset or a disabling committed while the password was checked
        // (up to a hashing slot's wait) leaves no session behind.
        // The account's oldest sessions past the bound end with it.
        let opened = self
            .store
            .create_session(&session, &user, MAX_SESSIONS_PER_LOGIN)
            .await
            .map_err(|e| unavailable(e.into()))?;
        let Some(ended) = opened else {
            tracing::info!(
                login = %user.login,
                "console sign-in refused: the account changed while it was checked"
            );
            return Err(SignInError::Refused);
        };
        let person = Person { user, session };
        let outcome = match ended {
            0 => "ok".to_string(),
            n => format!("ok: its {n} oldest session(s) ended (at most {MAX_SESSIONS_PER_LOGIN})"),
        };
        self.console_audit(&person, address, "SignIn", &person.user.login, &outcome)
            .await;
        Ok((id, person))
    }

    /// Gives back attempts that were not failures.
    async fn refund(&self, keys: impl Iterator<Item = &str>) {
        for k in keys {
            if let Err(e) = self.store.throttle_refund(k).await {
                tracing::warn!(error = %e, "sign-in throttle not refunded");
            }
        }
    }

    /// A failed sign-in: its attempts stay counted; audited at the 1st,
    /// 10th, 100th... failure of a key within its interval.
    async fn signin_failed(&self, taken: &[(&str, u32)], login: &str, address: &str, now: i64) {
        for (key, failures) in taken {
            if is_power_of_ten(*failures) {
                self.audit
                    .record(AuditEntry {
                        at_ms: now,
                        direction: Direction::In,
                        party: format!("console@{address}"),
                        method: "SignIn".into(),
                        subject: format!("user/{}", truncate(login, MAX_LOGIN)),
                        request_hash: String::new(),
                        outcome: format!(
                            "refused: {failures} failure(s) under {key} this interval"
                        ),
                        trace_id: String::new(),
                    })
                    .await;
            }
        }
    }

    /// The person a session cookie names, if the session is current; an
    /// expired one is removed. Fails closed: a store error is an error,
    /// never a signed-in person.
    pub async fn person(&self, cookie_id: &str) -> Result<Option<Person>, ServiceError> {
        self.person_of(&session_hash(cookie_id)).await
    }

    /// The person of a session as they are now (their account's role,
    /// scope and state read again), if the session is still current: for
    /// work that outlasts the request that began it, such as a download
    /// read a page at a time. Fails closed as [`Broker::person`] does.
    pub async fn person_again(&self, person: &Person) -> Result<Option<Person>, ServiceError> {
        self.person_of(&person.session.id_hash).await
    }

    async fn person_of(&self, hash: &str) -> Result<Option<Person>, ServiceError> {
        let Some(session) = self.store.session(hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if now - session.seen_ms > IDLE_MS || now - session.created_ms > ABSOLUTE_MS {
            self.store.delete_session(hash).await?;
            return Ok(None);
        }
        let Some(user) = self.store.user(&session.login).await? else {
            return Ok(None);
        };
        if user.disabled_ms != 0 {
            return Ok(None);
        }
        let mut session = session;
        if now - session.seen_ms >= TOUCH_EVERY_MS {
            self.store.touch_session(hash, now).await?;
            session.seen_ms = now;
        }
        let person = Person { user, session };
        // An account with no identity to act as (a clerk without a
        // mutuelle, scheme staff without a scheme) is refused, never given
        // an empty one.
        if person.caller().id.is_empty() {
            return Ok(None);
        }
        Ok(Some(person))
    }

    /// A federation's manager switches to another of their mutuelles.
    pub async fn switch_mutuelle(
        &self,
        person: &Person,
        mutuelle_id: &str,
    ) -> Result<(), ServiceError> {
        if !person.user.role.is_mutuelle() || !person.user.scope.iter().any(|m| m == mutuelle_id) {
            return Err(ServiceError::PermissionDenied(format!(
                "{} does not work for {mutuelle_id}",
                person.user.login
            )));
        }
        self.store
            .set_session_mutuelle(&person.session.id_hash, mutuelle_id)
            .await?;
        Ok(())
    }

    pub async fn sign_out(&self, person: &Person, address: &str) -> Result<(), ServiceError> {
        self.store.delete_session(&person.session.id_hash).await?;
        self.console_audit(person, address, "SignOut", &person.user.login, "ok")
            .await;
        Ok(())
    }

    /// An audit row for a console action that is not a service call (sign-in,
    /// sign-out, account changes).
    pub async fn console_audit(
        &self,
        person: &Person,
        address: &str,
        method: &str,
        subject: &str,
        outcome: &str,
    ) {
        self.audit
            .record(AuditEntry {
                at_ms: self.clock.now_ms(),
                direction: Direction::In,
                party: format!("{}@{address}", person.caller().display()),
                method: method.to_string(),
                subject: format!("user/{subject}"),
                request_hash: String::new(),
                outcome: outcome.to_string(),
                trace_id: String::new(),
            })
            .await;
    }

    /// An audit row for a console request from someone not signed in.
    pub async fn anonymous_audit(&self, address: &str, method: &str, outcome: &str) {
        self.audit
            .record(AuditEntry {
                at_ms: self.clock.now_ms(),
                direction: Direction::In,
                party: format!("console@{address}"),
                method: method.to_string(),
                subject: "console".into(),
                request_hash: String::new(),
                outcome: outcome.to_string(),
                trace_id: String::new(),
            })
            .await;
    }

    /// Removes the sessions past their end, idle past [`IDLE_MS`] or
    /// older than [`ABSOLUTE_MS`], with the files uploaded in them, and
    /// forgotten throttle rows (the retention job).
    pub async fn prune_console(&self) -> Result<u64, ServiceError> {
        let now = self.clock.now_ms();
        Ok(self
            .store
            .prune_console(now - IDLE_MS, now - ABSOLUTE_MS, now - THROTTLE_INTERVAL_MS)
            .await?)
    }
}

fn is_power_of_ten(n: u32) -> bool {
    let mut p = 1;
    while p < n {
        p = p.saturating_mul(10);
    }
    p == n
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_throttled_under_three_keys_that_name_no_login() {
        let keys = throttle_keys("ama", "10.0.0.1");
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.iter().all(|k| !k.contains("ama")), "{names:?}");
        assert!(names[0].ends_with("@10.0.0.1") && names[1] == "address:10.0.0.1");
        assert_eq!(keys[2].1.max_wait_ms, ACCOUNT_MAX_WAIT_MS);
        assert_eq!(throttle_keys("ama", "10.0.0.2")[2].0, keys[2].0);
    }

    /// An IPv6 client counts by its /64: one subscriber holds 2^64
    /// addresses, and a key per address let it spray accounts freely.
    #[test]
    fn an_ipv6_address_counts_by_its_network() {
        let a = throttle_keys("ama", "2001:db8:1:2::1");
        let b = throttle_keys("ama", "2001:db8:1:2:ffff:0:0:9");
        assert_eq!((&a[0].0, &a[1].0), (&b[0].0, &b[1].0));
        assert_eq!(a[1].0, "address:2001:db8:1:2::/64");
        assert_ne!(throttle_keys("ama", "2001:db8:1:3::1")[1].0, a[1].0);
        // An IPv4 client behind an IPv6 socket is the IPv4 address.
        assert_eq!(
            throttle_keys("ama", "::ffff:10.0.0.1")[1].0,
            "address:10.0.0.1"
        );
    }

    #[test]
    fn failures_are_audited_at_powers_of_ten() {
        let audited: Vec<u32> = (1..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(audited, [1, 10, 100, 1000]);
    }

    #[tokio::test]
    async fn a_password_hash_verifies_only_its_password() {
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h).await.unwrap());
        assert!(!verify_password("correct horsf", &h).await.unwrap());
        assert!(
            !verify_password("correct horse", "not a hash")
                .await
                .unwrap()
        );
    }

    #[test]
    fn totp_matches_rfc_6238_and_checks_within_one_step() {
        // RFC 6238, appendix B: the SHA-1 key "12345678901234567890".
        let secret = base32_encode(b"12345678901234567890");
        assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp_code(&secret, t * 1000).unwrap(), code, "t = {t}");
        }
        let now = 1_234_567_890_000;
        assert_eq!(totp_step(&secret, "005924", now), Some(41_152_263));
        assert_eq!(
            totp_step(&secret, "005924", now + 29_000),
            Some(41_152_263),
            "one step late"
        );
        assert_eq!(totp_step(&secret, "005924", now + 95_000), None);
        assert_eq!(totp_step(&secret, "00592", now), None);
        assert_eq!(
            totp_step("", "005924", now),
            None,
            "no secret: nothing matches"
        );
        assert_eq!(totp_step("not base32!", "005924", now), None);
        let fresh = new_totp_secret();
        assert_eq!(base32_decode(&fresh).unwrap().len(), 20);
        assert!(
            totp_url(&fresh, "ops")
                .unwrap()
                .starts_with("otpauth://totp/passerelle:ops?secret=")
        );
    }

    /// The unit-test broker (MUT-X, CNSS) with one account of each kind
    /// this module needs: a clerk and an operator.
    async fn accounts(dir: &std::path::Path) -> (std::sync::Arc<Broker>, String) {
        let b = crate::service::testing::broker(dir);
        b.add_user(
            NewUser {
                login: "ama".into(),
                display_name: "Ama".into(),
                role: UserRole::Clerk,
                scope: vec!["MUT-X".into()],
                password: "correct horse".into(),
                lang: String::new(),
                must_change: false,
            },
            "test",
        )
        .await
        .unwrap();
        let ops = b
            .add_user(
                NewUser {
                    login: "ops".into(),
                    display_name: "Ops".into(),
                    role: UserRole::Operator,
                    scope: vec![],
                    password: "operator pass".into(),
                    lang: String::new(),
                    must_change: false,
                },
                "test",
            )
            .await
            .unwrap();
        (b, ops.totp_secret)
    }

    const MIN: std::time::Duration = std::time::Duration::from_secs(60);

    /// A password its owner chooses: not a few characters repeated, not
    /// holding a login of 4 characters or more; a login of 3 ("ama") is
    /// inside too many words to be refused in them.
    #[tokio::test]
    async fn a_chosen_password_is_not_guessed_first() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        b.add_user(
            NewUser {
                login: "kofi2".into(),
                display_name: "Kofi".into(),
                role: UserRole::Clerk,
                scope: vec!["MUT-X".into()],
                password: "given by ops".into(),
                lang: String::new(),
                must_change: true,
            },
            "test",
        )
        .await
        .unwrap();
        let (_, kofi) = b.sign_in("kofi2", "given by ops", "", "::1").await.unwrap();
        for weak in ["abababababab", "ma phrase KOFI2 a moi"] {
            assert_eq!(
                b.change_own_password(&kofi, "given by ops", "", weak, "::1")
                    .await,
                Err(PasswordChangeError::Weak),
                "{weak}"
            );
        }
        let (_, ama) = b.sign_in("ama", "correct horse", "", "::1").await.unwrap();
        assert_eq!(
            b.change_own_password(&ama, "correct horse", "", "une amande verte", "::1")
                .await,
            Ok(None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_end_when_idle_and_at_their_absolute_end() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let (id, p) = b
            .sign_in("Ama", "correct horse", "", "10.0.0.1")
            .await
            .unwrap();
        assert_eq!(p.caller().display(), "mutuelle:MUT-X/user:ama");
        // Used every 29 minutes, it lives until 12 hours after sign-in.
        let mut used = std::time::Duration::ZERO;
        while used + 29 * MIN < std::time::Duration::from_millis(ABSOLUTE_MS as u64) {
            tokio::time::advance(29 * MIN).await;
            used += 29 * MIN;
            assert!(b.person(&id).await.unwrap().is_some(), "alive at {used:?}");
        }
        tokio::time::advance(29 * MIN).await;
        assert!(b.person(&id).await.unwrap().is_none(), "past 12 hours");
        // Left alone 31 minutes, it ends.
        let (id, _) = b
            .sign_in("ama", "correct horse", "", "10.0.0.1")
            .await
            .unwrap();
        tokio::time::advance(31 * MIN).await;
        assert!(b.person(&id).await.unwrap().is_none());
        // Revoked, it ends at once; a cookie never issued names no one.
        let (id, _) = b
            .sign_in("ama", "correct horse", "", "10.0.0.1")
            .await
            .unwrap();
        assert_eq!(b.revoke_sessions("ama", "test").await.unwrap(), 1);
        assert!(b.person(&id).await.unwrap().is_none());
        assert!(b.person("forged").await.unwrap().is_none());
    }

    /// The retention job removes a session once it is idle past
    /// [`IDLE_MS`] or older than [`ABSOLUTE_MS`], with the file uploaded
    /// in it: both stayed until 12 hours after their last request.
    #[tokio::test(start_paused = true)]
    async fn retention_removes_ended_sessions_and_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let upload = |at: i64| crate::store::users::Upload {
            file_name: "membres.csv".into(),
            mutuelle_id: "MUT-X".into(),
            body: b"SOL-0001;Ama".to_vec(),
            created_ms: at,
        };
        let kept_as = |p: &Person| {
            let (b, hash) = (b.clone(), p.session.id_hash.clone());
            async move {
                (
                    b.store().session(&hash).await.unwrap().is_some(),
                    b.store().upload(&hash).await.unwrap().is_some(),
                )
            }
        };
        // Left idle.
        let (_, idle) = b
            .sign_in("ama", "correct horse", "", "10.0.0.1")
            .await
            .unwrap();
        b.store()
            .put_upload(&idle.session.id_hash, &upload(b.clock().now_ms()))
            .await
            .unwrap();
        // Used every 29 minutes.
        let (busy_id, busy) = b
            .sign_in("ama", "correct horse", "", "10.0.0.1")
            .await
            .unwrap();
        b.store()
            .put_upload(&busy.session.id_hash, &upload(b.clock().now_ms()))
            .await
            .unwrap();
        tokio::time::advance(29 * MIN).await;
        assert!(b.person(&busy_id).await.unwrap().is_some());
        tokio::time::advance(2 * MIN).await;
        b.prune_console().await.unwrap();
        assert_eq!(kept_as(&idle).await, (false, false), "idle 31 minutes");
        assert_eq!(kept_as(&busy).await, (true, true), "seen 2 minutes ago");
        assert!(b.person(&busy_id).await.unwrap().is_some());
        let mut used = 31 * MIN;
        while used + 29 * MIN <= std::time::Duration::from_millis(ABSOLUTE_MS as u64) {
            tokio::time::advance(29 * MIN).await;
            used += 29 * MIN;
            assert!(b.person(&busy_id).await.unwrap().is_some(), "{used:?}");
        }
        tokio::time::advance(std::time::Duration::from_millis(ABSOLUTE_MS as u64) - used).await;
        tokio::time::advance(MIN).await;
        b.prune_console().await.unwrap();
        assert_eq!(kept_as(&busy).await, (false, false), "past 12 hours");
    }

    /// An account keeps at most [`MAX_SESSIONS_PER_LOGIN`] sessions: a
    /// sign-in past them ends the oldest, and its audit row says so.
    #[tokio::test(start_paused = true)]
    async fn a_sign_in_past_the_bound_ends_the_oldest_session() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let mut ids = Vec::new();
        for _ in 0..=MAX_SESSIONS_PER_LOGIN {
            let (id, _) = b
                .sign_in("ama", "correct horse", "", "10.0.0.1")
                .await
                .unwrap();
            ids.push(id);
            tokio::time::advance(std::time::Duration::from_secs(1)).await;
        }
        assert!(
            b.person(&ids[0]).await.unwrap().is_none(),
            "the oldest ended"
        );
        for id in &ids[1..] {
            assert!(b.person(id).await.unwrap().is_some());
        }
        b.audit().flush().await;
        let rows = b.store().audit_of("user/ama").await.unwrap().rows;
        let said: Vec<&str> = rows
            .iter()
            .filter(|r| r.method == "SignIn")
            .map(|r| r.outcome.as_str())
            .collect();
        assert_eq!(said.len(), MAX_SESSIONS_PER_LOGIN as usize + 1, "{said:?}");
        assert_eq!(
            said.iter().filter(|o| **o == "ok").count(),
            MAX_SESSIONS_PER_LOGIN as usize
        );
        assert!(
            said.contains(&"ok: its 1 oldest session(s) ended (at most 10)"),
            "{said:?}"
        );
    }

    /// A password someone else gave signs in for
    /// [`TEMPORARY_PASSWORD_MS`] after it was set, then is refused saying
    /// so (it never expired); a wrong one is still just refused. A reset
    /// gives 72 hours again; a password its owner chose does not expire.
    #[tokio::test(start_paused = true)]
    async fn a_temporary_password_signs_in_for_72_hours_only() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let new = |login: &str| NewUser {
            login: login.into(),
            display_name: "Yao".into(),
            role: UserRole::Clerk,
            scope: vec!["MUT-X".into()],
            password: "given by ops".into(),
            lang: String::new(),
            must_change: true,
        };
        b.add_user(new("yao"), "test").await.unwrap();
        b.add_user(new("efua"), "test").await.unwrap();
        let hour = std::time::Duration::from_secs(3600);
        tokio::time::advance(71 * hour + 59 * MIN).await;
        assert!(
            b.sign_in("efua", "given by ops", "", "10.0.0.1")
                .await
                .is_ok()
        );
        tokio::time::advance(2 * MIN).await;
        assert_eq!(
            b.sign_in("yao", "given by ops", "", "10.0.0.1")
                .await
                .unwrap_err(),
            SignInError::TemporaryExpired
        );
        assert_eq!(
            b.sign_in("yao", "not given by ops", "", "10.0.0.2")
                .await
                .unwrap_err(),
            SignInError::Refused,
            "a wrong password says nothing more"
        );
        // An account an older replica made during a rolling upgrade wrote
        // no `password_set_ms` (0): its 72 hours count from `updated_ms`.
        let mut older = b.store().user("efua").await.unwrap().unwrap();
        older.login = "kwame".into();
        older.password_set_ms = 0;
        older.updated_ms = b.clock().now_ms();
        assert!(b.store().add_user(&older).await.unwrap());
        assert!(
            b.sign_in("kwame", "given by ops", "", "10.0.0.3")
                .await
                .is_ok()
        );
        b.audit().flush().await;
        let rows = b.store().audit_of("user/yao").await.unwrap().rows;
        assert!(
            rows.iter()
                .any(|r| r.outcome == "refused: temporary password expired"),
            "{rows:?}"
        );
        // Reset by an operator: 72 hours again.
        b.change_user("yao", Some("given again!"), false, None, "test")
            .await
            .unwrap();
        let (_, yao) = b
            .sign_in("yao", "given again!", "", "10.0.0.1")
            .await
            .unwrap();
        // Chosen by its owner: no end.
        assert_eq!(
            b.change_own_password(&yao, "given again!", "", "ma phrase à moi", "10.0.0.1")
                .await,
            Ok(None)
        );
        tokio::time::advance(100 * hour).await;
        assert!(
            b.sign_in("yao", "ma phrase à moi", "", "10.0.0.1")
                .await
                .is_ok()
        );
    }

    /// A new operator's first change of the password they were given also
    /// gives them a second factor of their own, returned once: the secret
    /// shown to the operator who made the account no longer signs in.
    #[tokio::test(start_paused = true)]
    async fn an_operators_first_change_gives_them_their_own_second_factor() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let made = b
            .add_user(
                NewUser {
                    login: "nana".into(),
                    display_name: "Nana".into(),
                    role: UserRole::Operator,
                    scope: vec![],
                    password: "given by ops".into(),
                    lang: String::new(),
                    must_change: true,
                },
                "test",
            )
            .await
            .unwrap();
        let seen_by_maker = made.totp_secret;
        let code = |secret: &str| totp_code(secret, b.clock().now_ms()).unwrap();
        let step = std::time::Duration::from_secs(30);
        let (_, nana) = b
            .sign_in("nana", "given by ops", &code(&seen_by_maker), "10.0.0.1")
            .await
            .unwrap();
        tokio::time::advance(step).await;
        let own = b
            .change_own_password(
                &nana,
                "given by ops",
                &code(&seen_by_maker),
                "ma phrase à moi",
                "10.0.0.1",
            )
            .await
            .unwrap()
            .expect("a second factor of their own");
        assert_ne!(own, seen_by_maker);
        assert_eq!(
            b.store().user("nana").await.unwrap().unwrap().totp_secret,
            own
        );
        tokio::time::advance(step).await;
        assert_eq!(
            b.sign_in("nana", "ma phrase à moi", &code(&seen_by_maker), "10.0.0.1")
                .await
                .unwrap_err(),
            SignInError::Refused
        );
        assert!(
            b.sign_in("nana", "ma phrase à moi", &code(&own), "10.0.0.1")
                .await
                .is_ok()
        );
        // A later change of a password they chose keeps it.
        let (_, nana) = {
            tokio::time::advance(step).await;
            b.sign_in("nana", "ma phrase à moi", &code(&own), "10.0.0.2")
                .await
                .unwrap()
        };
        tokio::time::advance(step).await;
        assert_eq!(
            b.change_own_password(
                &nana,
                "ma phrase à moi",
                &code(&own),
                "une autre phrase",
                "10.0.0.2"
            )
            .await,
            Ok(None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sign_in_backs_off_per_key_and_never_locks_the_owner_out() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = accounts(dir.path()).await;
        let wrong = |addr: &'static str| {
            let b = b.clone();
            async move { b.sign_in("ama", "wrong horse!", "", addr).await }
        };
        for _ in 0..FREE_FAILURES {
            assert_eq!(wrong("10.0.0.1").await.unwrap_err(), SignInError::Refused);
        }
        // The fourth attempt from that address waits, the right password
        // included: nothing is hashed.
        assert_eq!(wrong("10.0.0.1").await.unwrap_err(), SignInError::Wait(1));
        assert_eq!(
            b.sign_in("ama", "correct horse", "", "10.0.0.1")
                .await
                .unwrap_err(),
            SignInError::Wait(1)
        );
        // The owner, from another address, is not held back.
        assert!(
            b.sign_in("ama", "correct horse", "", "10.0.0.9")
                .await
                .is_ok()
        );
        // Each failure past the free ones doubles the wait.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert_eq!(wrong("10.0.0.1").await.unwrap_err(), SignInError::Refused);
        assert_eq!(wrong("10.0.0.1").await.unwrap_err(), SignInError::Wait(2));
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        // A success gives its attempt back: no wait after it.
        assert!(
            b.sign_in("ama", "correct horse", "", "10.0.0.1")
                .await
                .is_ok()
        );
        assert!(
            b.sign_in("ama", "correct horse", "", "10.0.0.1")
                .await
                .is_ok()
        );

        // Attempts sent together take turns: only the free ones are checked.
        let tries = (0..8).map(|_| wrong("10.0.0.2"));
        let out = futures::future::join_all(tries).await;
        let checked = out
            .iter()
            .filter(|r| matches!(r, Err(SignInError::Refused)))
            .count();
        assert_eq!(checked, FREE_FAILURES as usize, "{out:?}");

        // An unknown login waits as a known one does: the throttle does not
        // tell them apart.
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                b.sign_in("nobody", "whatever!!", "", "10.0.0.3")
                    .await
                    .unwrap_err(),
                SignInError::Refused
            );
        }
        assert_eq!(
            b.sign_in("nobody", "whatever!!", "", "10.0.0.3")
                .await
                .unwrap_err(),
            SignInError::Wait(1)
        );
        // An hour after the last attempt, everything is forgotten.
        tokio::time::advance(61 * MIN).await;
        assert_eq!(wrong("10.0.0.2").await.unwrap_err(), SignInError::Refused);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operator_needs_a_code_and_a_code_is_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let (b, secret) = accounts(dir.path()).await;
        assert_eq!(
            b.sign_in("ops", "operator pass", "", "10.0.0.1")
                .await
                .unwrap_err(),
            SignInError::Refused,
            "without its code, the right password says nothing"
        );
        let code = totp_code(&secret, b.clock().now_ms()).unwrap();
        let (_, p) = b
            .sign_in("ops", "operator pass", &code, "10.0.0.1")
            .await
            .unwrap();
        assert_eq!(p.caller().display(), "operator:ops/user:ops");
        assert_eq!(
            b.sign_in("ops", "operator pass", &code, "10.0.0.2")
                .await
                .unwrap_err(),
            SignInError::Refused,
            "the same code again"
        );
        tokio::time::advance(std::time::Duration::from_secs(30)).await;
        let next = totp_code(&secret, b.clock().now_ms()).unwrap();
        assert!(
            b.sign_in("ops", "operator pass", &next, "10.0.0.2")
                .await
                .is_ok()
        );
        // Disabled: refused like a wrong password.
        b.change_user("ama", None, false, Some(true), "test")
            .await
            .unwrap();
        assert_eq!(
            b.sign_in("ama", "correct horse", "", "10.0.0.5")
                .await
                .unwrap_err(),
            SignInError::Refused
        );
    }
}
