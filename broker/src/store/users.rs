//! People who use the console: their accounts, their sessions, and the
//! sign-in throttle that every replica shares. The rules (who may sign in,
//! how long a session lasts, the back-off) live in `service::users`; the
//! store keeps the rows, one transaction per method.

use async_trait::async_trait;

use super::StoreError;

/// What a person does in the console. Each maps to one identity of the
/// broker's authorization (`identity::Caller`): clerks and managers act as
/// their mutuelle, scheme staff as their scheme, operators as operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserRole {
    /// A mutuelle's clerk: members, claims, statements.
    Clerk,
    /// A mutuelle's manager: what a clerk does, plus proposing and approving
    /// product versions and period closings.
    Manager,
    /// A scheme's (or delegate's) staff: their claims and statements.
    SchemeStaff,
    /// An operator of the broker: partners, pending claims, users.
    Operator,
}

impl UserRole {
    pub const ALL: [UserRole; 4] = [
        UserRole::Clerk,
        UserRole::Manager,
        UserRole::SchemeStaff,
        UserRole::Operator,
    ];

    /// The name stored and typed (`passerelle users add --role`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Clerk => "clerk",
            UserRole::Manager => "manager",
            UserRole::SchemeStaff => "scheme",
            UserRole::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<UserRole> {
        UserRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Clerks and managers: scoped to mutuelles.
    pub fn is_mutuelle(self) -> bool {
        matches!(self, UserRole::Clerk | UserRole::Manager)
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Unique, as typed at sign-in (lower case).
    pub login: String,
    pub display_name: String,
    pub role: UserRole,
    /// The mutuelles a clerk or manager works for (several: a federation),
    /// or the one scheme of scheme staff; empty for operators.
    pub scope: Vec<String>,
    /// argon2id, PHC string.
    pub password_hash: String,
    /// TOTP secret (base32); empty: no second factor.
    pub totp_secret: String,
    /// "fr" or "en"; empty: the browser's.
    pub lang: String,
    /// When it was disabled; 0: enabled.
    pub disabled_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Its password was given by someone else (an operator, `passerelle
    /// users add|reset`): its owner chooses their own before anything else.
    pub must_change: bool,
    /// When its password was set (the account's creation, a reset, its
    /// owner's change): a password given by someone else signs in for a
    /// bounded time after it (`service::users::TEMPORARY_PASSWORD_MS`).
    /// Written by the store with every new password hash.
    pub password_set_ms: i64,
}

/// A change to an account. Any change of password or of the second factor,
/// and disabling, end the account's sessions in the same transaction.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    /// `Some(0)`: enable again; `Some(t)`: disabled at t.
    pub disabled_ms: Option<i64>,
    pub lang: Option<String>,
    /// Whether the owner must choose a new password at their next request.
    pub must_change: Option<bool>,
    /// Written only while the account holds this password hash (the one a
    /// person's change of their own password verified): a reset committed
    /// meanwhile is kept, and the change writes nothing.
    pub expect_password_hash: Option<String>,
}

/// A signed-in session. The cookie holds a random id; the store keeps only
/// its SHA-256, so that a copy of the database signs no one in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub login: String,
    /// The secret the session's CSRF tokens are masked from.
    pub csrf_secret: String,
    /// The mutuelle a federation's manager works on now (one of the
    /// account's scope); empty otherwise.
    pub mutuelle_id: String,
    pub created_ms: i64,
    /// Last request seen (written at most once a minute).
    pub seen_ms: i64,
    /// The peer address at sign-in, for the operator's page.
    pub address: String,
}

/// Sign-in attempts under one key (an address, a login from an address, a
/// login) not followed by a success, since the current interval began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub key: String,
    pub failures: u32,
    /// The last attempt.
    pub last_ms: i64,
    /// No attempt under this key before then.
    pub next_ms: i64,
}

/// How a throttle key backs off: the first `free` attempts cost no wait,
/// then each doubles it from one second up to `max_wait_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub max_wait_ms: i64,
}

/// A file a person uploaded in the console, kept between its check and its
/// apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub file_name: String,
    /// The mutuelle it was checked for: it is applied there only.
    pub mutuelle_id: String,
    pub body: Vec<u8>,
    pub created_ms: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Adds an account; `false` when the login is taken.
    async fn add_user(&self, user: &User) -> Result<bool, StoreError>;

    async fn user(&self, login: &str) -> Result<Option<User>, StoreError>;

    /// Every account, by login.
    async fn users(&self) -> Result<Vec<User>, StoreError>;

    /// Changes an account; `false` when there is none. A new password or
    /// second factor, or disabling, removes its sessions too.
    async fn update_user(
        &self,
        login: &str,
        change: &UserChange,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Writes a session for the account as the sign-in verified it
    /// (`verified`: its password hash and second factor's secret, read
    /// before the check); `None`, nothing written, when the account changed
    /// meanwhile (a reset of either, a disabling) or is gone. In the same
    /// transaction the account's oldest sessions past `keep` (this one
    /// counted, and kept) end, with their uploads: `Some` of how many.
    async fn create_session(
        &self,
        session: &Session,
        verified: &User,
        keep: u32,
    ) -> Result<Option<u64>, StoreError>;

    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError>;

    /// Records activity.
    async fn touch_session(&self, id_hash: &str, seen_ms: i64) -> Result<(), StoreError>;

    /// The mutuelle a federation's manager switched to.
    async fn set_session_mutuelle(
        &self,
        id_hash: &str,
        mutuelle_id: &str,
    ) -> Result<(), StoreError>;

    /// Spends a TOTP time step for an account: `false` when that step (or a
    /// later one) was used already, so that a code is accepted once.
    async fn use_totp_step(&self, login: &str, step: i64) -> Result<bool, StoreError>;

    /// Ends one session (sign-out, expiry), with its upload.
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;

    /// Ends every session of an account (an operator revoking them), with
    /// their uploads; returns how many sessions.
    async fn delete_sessions(&self, login: &str) -> Result<u64, StoreError>;

    /// Sessions seen since `seen_after_ms`, newest first, at most `limit`.
    async fn sessions(&self, seen_after_ms: i64, limit: u32) -> Result<Vec<Session>, StoreError>;

    /// The throttle rows of these keys (absent: no failure).
    async fn throttles(&self, keys: &[String]) -> Result<Vec<Throttle>, StoreError>;

    /// Takes an attempt under `key` before any password is checked: counts
    /// it (starting again at 1 when the last attempt is older than
    /// `reset_before_ms`) and sets the key's next allowed time by
    /// `backoff`, only if the key is not in its wait. `None`: it is. One
    /// conditional upsert, so that concurrent attempts, on any replica,
    /// each take their turn.
    async fn throttle_attempt(
        &self,
        key: &str,
        now_ms: i64,
        reset_before_ms: i64,
        backoff: Backoff,
    ) -> Result<Option<Throttle>, StoreError>;

    /// Gives back an attempt that was not a failure (a sign-in that
    /// succeeded, or one never checked): one fewer, and no wait.
    async fn throttle_refund(&self, key: &str) -> Result<(), StoreError>;

    /// Forgets a key.
    async fn throttle_clear(&self, key: &str) -> Result<(), StoreError>;

    /// Keeps a session's uploaded file (replacing the one it had), for the
    /// step that applies it.
    async fn put_upload(&self, session_hash: &str, upload: &Upload) -> Result<(), StoreError>;

    /// A session's uploaded file.
    async fn upload(&self, session_hash: &str) -> Result<Option<Upload>, StoreError>;

    async fn delete_upload(&self, session_hash: &str) -> Result<(), StoreError>;

    /// Removes sessions last seen before `seen_before_ms` or opened before
    /// `created_before_ms` (and their uploads), and throttle rows older
    /// than `throttles_before_ms`; returns how many rows.
    async fn prune_console(
        &self,
        seen_before_ms: i64,
        created_before_ms: i64,
        throttles_before_ms: i64,
    ) -> Result<u64, StoreError>;
}

/// SQL shared by both backends (`ph`: the placeholder character).
pub(super) mod sql {
    use super::super::core::{self, Row};
    use super::*;

    pub const USER_COLS: &str = "login, display_name, role, scope, password_hash, totp_secret, \
                                 lang, disabled_ms, created_ms, updated_ms, must_change, \
                                 password_set_ms";
    pub const SESSION_COLS: &str =
        "id_hash, login, csrf_secret, mutuelle_id, created_ms, seen_ms, address";
    pub const THROTTLE_COLS: &str = "key, failures, last_ms, next_ms";

    pub fn user(r: &dyn Row) -> Result<User, StoreError> {
        let role = r.text(2)?;
        Ok(User {
            login: r.text(0)?,
            display_name: r.text(1)?,
            role: UserRole::parse(&role)
                .ok_or_else(|| StoreError::Backend(format!("unknown user role {role:?}")))?,
            scope: core::from_json("user scope", r.text(3)?.as_bytes())?,
            password_hash: r.text(4)?,
            totp_secret: r.text(5)?,
            lang: r.text(6)?,
            disabled_ms: r.int(7)?,
            created_ms: r.int(8)?,
            updated_ms: r.int(9)?,
            must_change: r.int(10)? != 0,
            password_set_ms: r.int(11)?,
        })
    }

    pub fn session(r: &dyn Row) -> Result<Session, StoreError> {
        Ok(Session {
            id_hash: r.text(0)?,
            login: r.text(1)?,
            csrf_secret: r.text(2)?,
            mutuelle_id: r.text(3)?,
            created_ms: r.int(4)?,
            seen_ms: r.int(5)?,
            address: r.text(6)?,
        })
    }

    pub fn throttle(r: &dyn Row) -> Result<Throttle, StoreError> {
        Ok(Throttle {
            key: r.text(0)?,
            failures: r.int(1)?.clamp(0, u32::MAX as i64) as u32,
            last_ms: r.int(2)?,
            next_ms: r.int(3)?,
        })
    }

    /// Gives back an attempt (parameter: key): one fewer, no wait.
    pub fn throttle_refund(ph: char) -> String {
        format!(
            "UPDATE signin_throttle SET \
             failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END, next_ms = last_ms \
             WHERE key = {ph}1"
        )
    }

    /// Upserts a session's upload (parameters: session, name, body as
    /// base64, when, mutuelle).
    pub fn put_upload(ph: char) -> String {
        format!(
            "INSERT INTO console_uploads (session_hash, file_name, body, created_ms, mutuelle_id) \
             VALUES ({ph}1, {ph}2, {ph}3, {ph}4, {ph}5) ON CONFLICT (session_hash) DO UPDATE SET \
             file_name = excluded.file_name, body = excluded.body, \
             created_ms = excluded.created_ms, mutuelle_id = excluded.mutuelle_id"
        )
    }

    pub const UPLOAD: &str = "SELECT file_name, body, created_ms, mutuelle_id \
                              FROM console_uploads WHERE session_hash = ";

    pub fn upload(r: &dyn Row) -> Result<Upload, StoreError> {
        Ok(Upload {
            file_name: r.text(0)?,
            body: decode_body(&r.text(1)?)?,
            created_ms: r.int(2)?,
            mutuelle_id: r.text(3)?,
        })
    }

    /// Uploads of sessions that are gone.
    pub const PRUNE_UPLOADS: &str = "DELETE FROM console_uploads WHERE session_hash NOT IN \
         (SELECT id_hash FROM sessions)";

    /// Sessions past their idle or absolute end (parameters: last seen
    /// before, opened before).
    pub fn prune_sessions(ph: char) -> String {
        format!("DELETE FROM sessions WHERE seen_ms < {ph}1 OR created_ms < {ph}2")
    }

    /// An account's sessions but its newest `keep` (parameters: login,
    /// keep, the session just opened, which is always kept).
    pub fn trim_sessions(ph: char) -> String {
        format!(
            "DELETE FROM sessions WHERE login = {ph}1 AND id_hash NOT IN \
             (SELECT id_hash FROM sessions WHERE login = {ph}1 \
             ORDER BY (id_hash = {ph}3) DESC, created_ms DESC, id_hash DESC LIMIT {ph}2)"
        )
    }

    pub fn encode_body(body: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(body)
    }

    pub fn decode_body(text: &str) -> Result<Vec<u8>, StoreError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| StoreError::Corrupt(format!("console upload: {e}")))
    }

    pub fn scope_json(scope: &[String]) -> String {
        serde_json::to_string(scope).unwrap_or_else(|_| "[]".into())
    }

    pub fn add_user(ph: char) -> String {
        format!(
            "INSERT INTO users ({USER_COLS}) VALUES \
             ({ph}1, {ph}2, {ph}3, {ph}4, {ph}5, {ph}6, {ph}7, {ph}8, {ph}9, {ph}10, {ph}11, \
             {ph}12) ON CONFLICT (login) DO NOTHING"
        )
    }

    /// Parameters: login, password hash, totp secret, disabled, lang, now,
    /// must change (0 or 1) (NULL: unchanged), the password hash the account
    /// must hold (NULL: any). A new password hash is set now.
    pub fn update_user(ph: char) -> String {
        format!(
            "UPDATE users SET password_hash = COALESCE({ph}2, password_hash), \
             password_set_ms = CASE WHEN CAST({ph}2 AS TEXT) IS NULL THEN password_set_ms \
             ELSE {ph}6 END, \
             totp_secret = COALESCE({ph}3, totp_secret), \
             disabled_ms = COALESCE({ph}4, disabled_ms), \
             lang = COALESCE({ph}5, lang), must_change = COALESCE({ph}7, must_change), \
             updated_ms = {ph}6 WHERE login = {ph}1 \
             AND (CAST({ph}8 AS TEXT) IS NULL OR password_hash = {ph}8)"
        )
    }

    /// A session, written only while its account holds the credentials
    /// the sign-in verified (parameters 8 and 9: password hash, second
    /// factor's secret) and is enabled: a reset or a disabling committed
    /// meanwhile leaves no session behind. `lock`: the backend's row lock
    /// on the account read (` FOR SHARE` on PostgreSQL, so that a reset
    /// in flight is waited for and its row read again, never an older
    /// snapshot's; empty on SQLite, whose writes run one at a time).
    pub fn create_session(ph: char, lock: &str) -> String {
        format!(
            "INSERT INTO sessions ({SESSION_COLS}) \
             SELECT CAST({ph}1 AS TEXT), CAST({ph}2 AS TEXT), CAST({ph}3 AS TEXT), CAST({ph}4 AS TEXT), \
             CAST({ph}5 AS BIGINT), CAST({ph}6 AS BIGINT), CAST({ph}7 AS TEXT) \
             FROM users WHERE login = {ph}2 AND password_hash = {ph}8 AND totp_secret = {ph}9 \
             AND disabled_ms = 0{lock}"
        )
    }

    /// The attempt upsert (parameters: key, now, reset before, free
    /// attempts, longest wait). `least`: the backend's two-argument minimum
    /// (`MIN` on SQLite, `LEAST` on PostgreSQL). The wait after `f`
    /// attempts: 0 below `free`, else 1 s doubled `f - free` times (at most
    /// 20), at most the longest wait.
    pub fn throttle_attempt(ph: char, least: &str) -> String {
        let f = format!(
            "(CASE WHEN signin_throttle.last_ms < {ph}3 THEN 1 ELSE signin_throttle.failures + 1 END)"
        );
        format!(
            "INSERT INTO signin_throttle ({THROTTLE_COLS}) VALUES ({ph}1, 1, {ph}2, {ph}2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = {f}, \
             last_ms = excluded.last_ms, \
             next_ms = excluded.last_ms + CASE WHEN {f} < {ph}4 THEN 0 ELSE \
             {least}(CAST(1000 AS BIGINT) << CAST({least}({f} - {ph}4, 20) AS INTEGER), {ph}5) END \
             WHERE signin_throttle.next_ms <= excluded.last_ms OR signin_throttle.last_ms < {ph}3 \
             RETURNING {THROTTLE_COLS}"
        )
    }
}
