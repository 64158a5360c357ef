//! Console accounts, sessions and the sign-in throttle.

use super::*;
use crate::store::users::{Backoff, Session, Throttle, Upload, User, UserChange, UserStore, sql};

#[async_trait]
impl UserStore for PgStore {
    async fn add_user(&self, u: &User) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = x(
            &c,
            &sql::add_user('$'),
            &[
                &u.login,
                &u.display_name,
                &u.role.as_str(),
                &sql::scope_json(&u.scope),
                &u.password_hash,
                &u.totp_secret,
                &u.lang,
                &u.disabled_ms,
                &u.created_ms,
                &u.updated_ms,
                &i64::from(u.must_change),
                &u.password_set_ms,
            ],
        )
        .await?;
        Ok(n == 1)
    }

    async fn user(&self, login: &str) -> Result<Option<User>, StoreError> {
        let c = self.client().await?;
        let sql = format!("SELECT {} FROM users WHERE login = $1", sql::USER_COLS);
        q1(&c, &sql, &[&login])
            .await?
            .map(|r| sql::user(&r))
            .transpose()
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let c = self.client().await?;
        let sql = format!("SELECT {} FROM users ORDER BY login", sql::USER_COLS);
        decode(&q(&c, &sql, &[]).await?, sql::user)
    }

    async fn update_user(
        &self,
        login: &str,
        ch: &UserChange,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = x(
            &tx,
            &sql::update_user('$'),
            &[
                &login,
                &ch.password_hash,
                &ch.totp_secret,
                &ch.disabled_ms,
                &ch.lang,
                &now_ms,
                &ch.must_change.map(i64::from),
                &ch.expect_password_hash,
            ],
        )
        .await?;
        if n == 1
            && (ch.password_hash.is_some()
                || ch.totp_secret.is_some()
                || ch.disabled_ms.is_some_and(|d| d != 0))
        {
            x(&tx, "DELETE FROM sessions WHERE login = $1", &[&login]).await?;
            x(&tx, sql::PRUNE_UPLOADS, &[]).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn create_session(
        &self,
        s: &Session,
        verified: &User,
        keep: u32,
    ) -> Result<Option<u64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Sign-ins of one account one at a time: each counts the others'
        // sessions when it keeps the newest.
        x(
            &tx,
            "SELECT 1 FROM users WHERE login = $1 FOR UPDATE",
            &[&s.login],
        )
        .await?;
        let written = x(
            &tx,
            &sql::create_session('$', " FOR SHARE"),
            &[
                &s.id_hash,
                &s.login,
                &s.csrf_secret,
                &s.mutuelle_id,
                &s.created_ms,
                &s.seen_ms,
                &s.address,
                &verified.password_hash,
                &verified.totp_secret,
            ],
        )
        .await?;
        if written != 1 {
            return Ok(None);
        }
        let ended = x(
            &tx,
            &sql::trim_sessions('$'),
            &[&s.login, &i64::from(keep), &s.id_hash],
        )
        .await?;
        if ended > 0 {
            x(&tx, sql::PRUNE_UPLOADS, &[]).await?;
        }
        tx.commit().await?;
        Ok(Some(ended))
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {} FROM sessions WHERE id_hash = $1",
            sql::SESSION_COLS
        );
        q1(&c, &sql, &[&id_hash])
            .await?
            .map(|r| sql::session(&r))
            .transpose()
    }

    async fn touch_session(&self, id_hash: &str, seen_ms: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(
            &c,
            "UPDATE sessions SET seen_ms = $2 WHERE id_hash = $1",
            &[&id_hash, &seen_ms],
        )
        .await?;
        Ok(())
    }

    async fn set_session_mutuelle(
        &self,
        id_hash: &str,
        mutuelle_id: &str,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(
            &c,
            "UPDATE sessions SET mutuelle_id = $2 WHERE id_hash = $1",
            &[&id_hash, &mutuelle_id],
        )
        .await?;
        Ok(())
    }

    async fn use_totp_step(&self, login: &str, step: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(x(
            &c,
            "UPDATE users SET totp_step = $2 WHERE login = $1 AND totp_step < $2",
            &[&login, &step],
        )
        .await?
            == 1)
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        x(&tx, "DELETE FROM sessions WHERE id_hash = $1", &[&id_hash]).await?;
        x(
            &tx,
            "DELETE FROM console_uploads WHERE session_hash = $1",
            &[&id_hash],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_sessions(&self, login: &str) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = x(&tx, "DELETE FROM sessions WHERE login = $1", &[&login]).await?;
        x(&tx, sql::PRUNE_UPLOADS, &[]).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn sessions(&self, seen_after_ms: i64, limit: u32) -> Result<Vec<Session>, StoreError> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {} FROM sessions WHERE seen_ms > $1 ORDER BY seen_ms DESC LIMIT $2",
            sql::SESSION_COLS
        );
        decode(
            &q(&c, &sql, &[&seen_after_ms, &(limit as i64)]).await?,
            sql::session,
        )
    }

    async fn throttles(&self, keys: &[String]) -> Result<Vec<Throttle>, StoreError> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {} FROM signin_throttle WHERE key = ANY($1) ORDER BY key",
            sql::THROTTLE_COLS
        );
        decode(&q(&c, &sql, &[&keys]).await?, sql::throttle)
    }

    async fn throttle_attempt(
        &self,
        key: &str,
        now_ms: i64,
        reset_before_ms: i64,
        backoff: Backoff,
    ) -> Result<Option<Throttle>, StoreError> {
        let c = self.client().await?;
        q1(
            &c,
            &sql::throttle_attempt('$', "LEAST"),
            &[
                &key,
                &now_ms,
                &reset_before_ms,
                &i64::from(backoff.free),
                &backoff.max_wait_ms,
            ],
        )
        .await?
        .map(|r| sql::throttle(&r))
        .transpose()
    }

    async fn throttle_refund(&self, key: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(&c, &sql::throttle_refund('$'), &[&key]).await?;
        Ok(())
    }

    async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(&c, "DELETE FROM signin_throttle WHERE key = $1", &[&key]).await?;
        Ok(())
    }

    async fn put_upload(&self, session_hash: &str, u: &Upload) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(
            &c,
            &sql::put_upload('$'),
            &[
                &session_hash,
                &u.file_name,
                &sql::encode_body(&u.body),
                &u.created_ms,
                &u.mutuelle_id,
            ],
        )
        .await?;
        Ok(())
    }

    async fn upload(&self, session_hash: &str) -> Result<Option<Upload>, StoreError> {
        let c = self.client().await?;
        q1(&c, &format!("{}$1", sql::UPLOAD), &[&session_hash])
            .await?
            .map(|r| sql::upload(&r))
            .transpose()
    }

    async fn delete_upload(&self, session_hash: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(
            &c,
            "DELETE FROM console_uploads WHERE session_hash = $1",
            &[&session_hash],
        )
        .await?;
        Ok(())
    }

    async fn prune_console(
        &self,
        seen_before_ms: i64,
        created_before_ms: i64,
        throttles_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let a = x(
            &c,
            &sql::prune_sessions('$'),
            &[&seen_before_ms, &created_before_ms],
        )
        .await?;
        let b = x(
            &c,
            "DELETE FROM signin_throttle WHERE last_ms < $1",
            &[&throttles_before_ms],
        )
        .await?;
        let u = x(&c, sql::PRUNE_UPLOADS, &[]).await?;
        Ok(a + b + u)
    }
}
