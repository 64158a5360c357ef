//! Console accounts, sessions and the sign-in throttle.

use super::*;
use crate::store::users::{Backoff, Session, Throttle, Upload, User, UserChange, UserStore, sql};

#[async_trait]
impl UserStore for SqliteStore {
    async fn add_user(&self, u: &User) -> Result<bool, StoreError> {
        let u = u.clone();
        self.with(move |c| {
            let n = c.prepare_cached(&sql::add_user('?'))?.execute(params![
                u.login,
                u.display_name,
                u.role.as_str(),
                sql::scope_json(&u.scope),
                u.password_hash,
                u.totp_secret,
                u.lang,
                u.disabled_ms,
                u.created_ms,
                u.updated_ms,
                i64::from(u.must_change),
                u.password_set_ms
            ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn user(&self, login: &str) -> Result<Option<User>, StoreError> {
        let login = login.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM users WHERE login = ?1",
                sql::USER_COLS
            ))?;
            row_of(&mut st, [login], sql::user)
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM users ORDER BY login",
                sql::USER_COLS
            ))?;
            rows_of(&mut st, [], sql::user)
        })
        .await
    }

    async fn update_user(
        &self,
        login: &str,
        change: &UserChange,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (login, ch) = (login.to_string(), change.clone());
        self.with(move |c| {
            let tx = c.savepoint()?;
            let n = tx.prepare_cached(&sql::update_user('?'))?.execute(params![
                login,
                ch.password_hash,
                ch.totp_secret,
                ch.disabled_ms,
                ch.lang,
                now_ms,
                ch.must_change.map(i64::from),
                ch.expect_password_hash
            ])?;
            if n == 1
                && (ch.password_hash.is_some()
                    || ch.totp_secret.is_some()
                    || ch.disabled_ms.is_some_and(|d| d != 0))
            {
                tx.prepare_cached("DELETE FROM sessions WHERE login = ?1")?
                    .execute([&login])?;
                tx.prepare_cached(sql::PRUNE_UPLOADS)?.execute([])?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_session(
        &self,
        s: &Session,
        verified: &User,
        keep: u32,
    ) -> Result<Option<u64>, StoreError> {
        let s = s.clone();
        let (hash, totp) = (verified.password_hash.clone(), verified.totp_secret.clone());
        self.with(move |c| {
            let tx = c.savepoint()?;
            let written = tx
                .prepare_cached(&sql::create_session('?', ""))?
                .execute(params![
                    s.id_hash,
                    s.login,
                    s.csrf_secret,
                    s.mutuelle_id,
                    s.created_ms,
                    s.seen_ms,
                    s.address,
                    hash,
                    totp
                ])?;
            if written != 1 {
                return Ok(None);
            }
            let ended = tx
                .prepare_cached(&sql::trim_sessions('?'))?
                .execute(params![s.login, keep, s.id_hash])?;
            if ended > 0 {
                tx.prepare_cached(sql::PRUNE_UPLOADS)?.execute([])?;
            }
            tx.commit()?;
            Ok(Some(ended as u64))
        })
        .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let id = id_hash.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM sessions WHERE id_hash = ?1",
                sql::SESSION_COLS
            ))?;
            row_of(&mut st, [id], sql::session)
        })
        .await
    }

    async fn touch_session(&self, id_hash: &str, seen_ms: i64) -> Result<(), StoreError> {
        let id = id_hash.to_string();
        self.with(move |c| {
            c.prepare_cached("UPDATE sessions SET seen_ms = ?2 WHERE id_hash = ?1")?
                .execute(params![id, seen_ms])?;
            Ok(())
        })
        .await
    }

    async fn set_session_mutuelle(
        &self,
        id_hash: &str,
        mutuelle_id: &str,
    ) -> Result<(), StoreError> {
        let (id, m) = (id_hash.to_string(), mutuelle_id.to_string());
        self.with(move |c| {
            c.prepare_cached("UPDATE sessions SET mutuelle_id = ?2 WHERE id_hash = ?1")?
                .execute(params![id, m])?;
            Ok(())
        })
        .await
    }

    async fn use_totp_step(&self, login: &str, step: i64) -> Result<bool, StoreError> {
        let login = login.to_string();
        self.with(move |c| {
            Ok(c.prepare_cached(
                "UPDATE users SET totp_step = ?2 WHERE login = ?1 AND totp_step < ?2",
            )?
            .execute(params![login, step])?
                == 1)
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id = id_hash.to_string();
        self.with(move |c| {
            let tx = c.savepoint()?;
            tx.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
                .execute([&id])?;
            tx.prepare_cached("DELETE FROM console_uploads WHERE session_hash = ?1")?
                .execute([&id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_sessions(&self, login: &str) -> Result<u64, StoreError> {
        let login = login.to_string();
        self.with(move |c| {
            let tx = c.savepoint()?;
            let n = tx
                .prepare_cached("DELETE FROM sessions WHERE login = ?1")?
                .execute([login])?;
            tx.prepare_cached(sql::PRUNE_UPLOADS)?.execute([])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn sessions(&self, seen_after_ms: i64, limit: u32) -> Result<Vec<Session>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM sessions WHERE seen_ms > ?1 ORDER BY seen_ms DESC LIMIT ?2",
                sql::SESSION_COLS
            ))?;
            rows_of(&mut st, params![seen_after_ms, limit], sql::session)
        })
        .await
    }

    async fn throttles(&self, keys: &[String]) -> Result<Vec<Throttle>, StoreError> {
        let keys = keys.to_vec();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM signin_throttle WHERE key = ?1",
                sql::THROTTLE_COLS
            ))?;
            let mut out = Vec::new();
            for k in keys {
                out.extend(row_of(&mut st, [k], sql::throttle)?);
            }
            Ok(out)
        })
        .await
    }

    async fn throttle_attempt(
        &self,
        key: &str,
        now_ms: i64,
        reset_before_ms: i64,
        backoff: Backoff,
    ) -> Result<Option<Throttle>, StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            let mut st = c.prepare_cached(&sql::throttle_attempt('?', "MIN"))?;
            row_of(
                &mut st,
                params![
                    key,
                    now_ms,
                    reset_before_ms,
                    i64::from(backoff.free),
                    backoff.max_wait_ms
                ],
                sql::throttle,
            )
        })
        .await
    }

    async fn throttle_refund(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            c.prepare_cached(&sql::throttle_refund('?'))?
                .execute([key])?;
            Ok(())
        })
        .await
    }

    async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            c.prepare_cached("DELETE FROM signin_throttle WHERE key = ?1")?
                .execute([key])?;
            Ok(())
        })
        .await
    }

    async fn put_upload(&self, session_hash: &str, u: &Upload) -> Result<(), StoreError> {
        let (id, u) = (session_hash.to_string(), u.clone());
        self.with(move |c| {
            c.prepare_cached(&sql::put_upload('?'))?.execute(params![
                id,
                u.file_name,
                sql::encode_body(&u.body),
                u.created_ms,
                u.mutuelle_id
            ])?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, session_hash: &str) -> Result<Option<Upload>, StoreError> {
        let id = session_hash.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!("{}?1", sql::UPLOAD))?;
            row_of(&mut st, [id], sql::upload)
        })
        .await
    }

    async fn delete_upload(&self, session_hash: &str) -> Result<(), StoreError> {
        let id = session_hash.to_string();
        self.with(move |c| {
            c.prepare_cached("DELETE FROM console_uploads WHERE session_hash = ?1")?
                .execute([id])?;
            Ok(())
        })
        .await
    }

    async fn prune_console(
        &self,
        seen_before_ms: i64,
        created_before_ms: i64,
        throttles_before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.with(move |c| {
            let a = c
                .prepare_cached(&sql::prune_sessions('?'))?
                .execute([seen_before_ms, created_before_ms])?;
            let b = c
                .prepare_cached("DELETE FROM signin_throttle WHERE last_ms < ?1")?
                .execute([throttles_before_ms])?;
            let u = c.prepare_cached(sql::PRUNE_UPLOADS)?.execute([])?;
            Ok((a + b + u) as u64)
        })
        .await
    }
}
