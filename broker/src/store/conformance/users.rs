//! UserStore: console accounts, sessions, and the throttle replicas share.

use super::*;
use crate::store::users::{Backoff, Session, User, UserChange, UserRole};

fn user(login: &str, role: UserRole, scope: &[&str]) -> User {
    User {
        login: login.into(),
        display_name: format!("Agent {login}"),
        role,
        scope: scope.iter().map(|s| s.to_string()).collect(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        totp_secret: String::new(),
        lang: "fr".into(),
        disabled_ms: 0,
        created_ms: 10,
        updated_ms: 10,
        must_change: false,
        password_set_ms: 10,
    }
}

fn session(id: &str, login: &str, seen_ms: i64) -> Session {
    Session {
        id_hash: id.into(),
        login: login.into(),
        csrf_secret: format!("csrf-{id}"),
        mutuelle_id: String::new(),
        created_ms: seen_ms,
        seen_ms,
        address: "127.0.0.1".into(),
    }
}

/// A session opened as a sign-in opens it: for the account as stored.
async fn open(store: &Arc<dyn Store>, s: &Session) {
    assert_eq!(open_keeping(store, s, 100).await, Some(0), "{s:?}");
}

/// [`open`], the account keeping at most `keep` sessions: how many older
/// ones ended.
async fn open_keeping(store: &Arc<dyn Store>, s: &Session, keep: u32) -> Option<u64> {
    let verified = store.user(&s.login).await.unwrap().expect("the account");
    store.create_session(s, &verified, keep).await.unwrap()
}

pub async fn users_sessions_and_their_end(store: Arc<dyn Store>) {
    let ama = user("ama", UserRole::Manager, &["MUT-A", "MUT-B"]);
    assert!(store.add_user(&ama).await.unwrap());
    assert!(
        !store
            .add_user(&user("ama", UserRole::Operator, &[]))
            .await
            .unwrap(),
        "a login is taken once"
    );
    assert!(
        store
            .add_user(&user("kofi", UserRole::Clerk, &["MUT-A"]))
            .await
            .unwrap()
    );
    assert_eq!(store.user("ama").await.unwrap(), Some(ama.clone()));
    assert_eq!(store.user("nobody").await.unwrap(), None);
    // An account whose password someone else gave says so.
    let mut temp = user("yao", UserRole::Clerk, &["MUT-A"]);
    temp.must_change = true;
    assert!(store.add_user(&temp).await.unwrap());
    assert_eq!(store.user("yao").await.unwrap(), Some(temp));
    let all = store.users().await.unwrap();
    assert_eq!(
        all.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(),
        ["ama", "kofi", "yao"]
    );

    open(&store, &session("s1", "ama", 100)).await;
    open(&store, &session("s2", "ama", 200)).await;
    open(&store, &session("s3", "kofi", 300)).await;
    store.touch_session("s1", 400).await.unwrap();
    store.set_session_mutuelle("s1", "MUT-B").await.unwrap();
    let s1 = store.session("s1").await.unwrap().unwrap();
    assert_eq!((s1.seen_ms, s1.mutuelle_id.as_str()), (400, "MUT-B"));
    let recent = store.sessions(150, 10).await.unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|s| s.id_hash.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s3", "s2"],
        "newest first, only those seen after the bound"
    );

    // A language change keeps the sessions; a new password ends them.
    let lang = UserChange {
        lang: Some("en".into()),
        ..Default::default()
    };
    assert!(store.update_user("ama", &lang, 500).await.unwrap());
    assert!(store.session("s1").await.unwrap().is_some());
    let reset = UserChange {
        password_hash: Some("$argon2id$new".into()),
        must_change: Some(true),
        ..Default::default()
    };
    assert!(store.update_user("ama", &reset, 600).await.unwrap());
    let ama2 = store.user("ama").await.unwrap().unwrap();
    assert_eq!(
        (
            ama2.lang.as_str(),
            ama2.password_hash.as_str(),
            ama2.updated_ms,
            ama2.must_change,
            ama2.password_set_ms
        ),
        ("en", "$argon2id$new", 600, true, 600)
    );
    // Kept by a change that does not name it; cleared by one that does.
    // Only a new password moves the time its password was set.
    assert!(store.update_user("ama", &lang, 610).await.unwrap());
    let ama3 = store.user("ama").await.unwrap().unwrap();
    assert_eq!((ama3.must_change, ama3.password_set_ms), (true, 600));
    let chosen = UserChange {
        must_change: Some(false),
        ..Default::default()
    };
    assert!(store.update_user("ama", &chosen, 620).await.unwrap());
    assert!(!store.user("ama").await.unwrap().unwrap().must_change);
    // A change over a password the account no longer holds (reset
    // meanwhile) writes nothing; over the one it holds, writes.
    let over = |hash: &str| UserChange {
        password_hash: Some("$argon2id$mine".into()),
        expect_password_hash: Some(hash.into()),
        ..Default::default()
    };
    assert!(
        !store
            .update_user("ama", &over("$argon2id$old"), 630)
            .await
            .unwrap()
    );
    assert_eq!(
        store.user("ama").await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    assert!(
        store
            .update_user("ama", &over("$argon2id$new"), 640)
            .await
            .unwrap()
    );
    assert_eq!(
        store.user("ama").await.unwrap().unwrap().password_hash,
        "$argon2id$mine"
    );
    assert_eq!(store.session("s1").await.unwrap(), None);
    assert_eq!(store.session("s2").await.unwrap(), None);
    assert!(
        store.session("s3").await.unwrap().is_some(),
        "another account's session stays"
    );
    assert!(
        !store.update_user("nobody", &lang, 700).await.unwrap(),
        "no such account"
    );

    // Disabling ends the sessions too; revoking ends them alone.
    open(&store, &session("s4", "kofi", 800)).await;
    assert_eq!(store.delete_sessions("kofi").await.unwrap(), 2);
    open(&store, &session("s5", "kofi", 900)).await;
    let off = UserChange {
        disabled_ms: Some(950),
        ..Default::default()
    };
    assert!(store.update_user("kofi", &off, 950).await.unwrap());
    assert_eq!(store.user("kofi").await.unwrap().unwrap().disabled_ms, 950);
    assert_eq!(store.session("s5").await.unwrap(), None);
    // A sign-in that verified the account before a change committed opens
    // no session: not for a disabled account, not with a password or a
    // second factor reset meanwhile.
    let kofi_then = user("kofi", UserRole::Clerk, &["MUT-A"]);
    assert_eq!(
        store
            .create_session(&session("s-late", "kofi", 960), &kofi_then, 10)
            .await
            .unwrap(),
        None
    );
    let ama_before_reset = ama.clone();
    assert_eq!(
        store
            .create_session(&session("s-late", "ama", 960), &ama_before_reset, 10)
            .await
            .unwrap(),
        None
    );
    let ama_now = store.user("ama").await.unwrap().unwrap();
    let totp = UserChange {
        totp_secret: Some("JBSWY3DPEHPK3PXP".into()),
        ..Default::default()
    };
    assert!(store.update_user("ama", &totp, 970).await.unwrap());
    assert_eq!(
        store
            .create_session(&session("s-late", "ama", 980), &ama_now, 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .create_session(&session("s-late", "nobody", 980), &ama_now, 10)
            .await
            .unwrap(),
        None,
        "no such account"
    );
    assert_eq!(store.session("s-late").await.unwrap(), None);

    open(&store, &session("s6", "ama", 1_000)).await;
    store.delete_session("s6").await.unwrap();
    assert_eq!(store.session("s6").await.unwrap(), None);

    // A session's upload: one, replaced, read back byte for byte, and gone
    // with its session.
    open(&store, &session("s7", "ama", 2_000)).await;
    assert_eq!(store.upload("s7").await.unwrap(), None);
    let up = |name: &str, body: Vec<u8>, at: i64| crate::store::users::Upload {
        file_name: name.into(),
        mutuelle_id: "MUT-A".into(),
        body,
        created_ms: at,
    };
    store
        .put_upload("s7", &up("a.csv", b"one".to_vec(), 2_000))
        .await
        .unwrap();
    let body: Vec<u8> = (0..=255u8).collect();
    store
        .put_upload("s7", &up("b.xlsx", body.clone(), 2_001))
        .await
        .unwrap();
    assert_eq!(
        store.upload("s7").await.unwrap(),
        Some(up("b.xlsx", body, 2_001))
    );
    store.delete_upload("s7").await.unwrap();
    assert_eq!(store.upload("s7").await.unwrap(), None);
    store
        .put_upload("s7", &up("c.csv", b"x".to_vec(), 2_002))
        .await
        .unwrap();
    store.delete_session("s7").await.unwrap();
    assert_eq!(store.upload("s7").await.unwrap(), None);
    assert_eq!(
        store.prune_console(0, 0, 0).await.unwrap(),
        0,
        "no upload outlives its session"
    );
}

/// Sessions end idle or old, and past an account's bound, each with the
/// file uploaded in it: an expired session and its members file stayed 12
/// hours (pruned only by their last request, 12 hours after it).
pub async fn sessions_end_idle_old_or_past_the_bound_with_their_uploads(store: Arc<dyn Store>) {
    assert!(
        store
            .add_user(&user("ama", UserRole::Clerk, &["MUT-A"]))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_user(&user("kofi", UserRole::Clerk, &["MUT-A"]))
            .await
            .unwrap()
    );
    let up = |at: i64| crate::store::users::Upload {
        file_name: "membres.csv".into(),
        mutuelle_id: "MUT-A".into(),
        body: b"ligne".to_vec(),
        created_ms: at,
    };
    // Idle since 100; opened at 200 and used since; opened at 4,000.
    for (id, login, created, seen) in [
        ("idle", "ama", 100, 100),
        ("old", "ama", 200, 5_000),
        ("fresh", "ama", 4_000, 4_500),
        ("kofi", "kofi", 4_000, 4_500),
    ] {
        let mut s = session(id, login, created);
        s.seen_ms = seen;
        open(&store, &s).await;
        store.put_upload(id, &up(created)).await.unwrap();
    }
    // Seen before 1,000 or opened before 300: two sessions, two uploads.
    assert_eq!(store.prune_console(1_000, 300, 0).await.unwrap(), 4);
    for gone in ["idle", "old"] {
        assert_eq!(store.session(gone).await.unwrap(), None, "{gone}");
        assert_eq!(store.upload(gone).await.unwrap(), None, "{gone}");
    }
    for kept in ["fresh", "kofi"] {
        assert!(store.session(kept).await.unwrap().is_some(), "{kept}");
        assert!(store.upload(kept).await.unwrap().is_some(), "{kept}");
    }

    // At most 3 for ama: the fourth ends the oldest, with its upload;
    // kofi's are not counted.
    for (n, id) in ["b1", "b2"].iter().enumerate() {
        let s = session(id, "ama", 6_000 + n as i64);
        assert_eq!(open_keeping(&store, &s, 3).await, Some(0), "{id}");
    }
    assert_eq!(
        open_keeping(&store, &session("b3", "ama", 6_002), 3).await,
        Some(1)
    );
    assert_eq!(store.session("fresh").await.unwrap(), None);
    assert_eq!(store.upload("fresh").await.unwrap(), None);
    assert!(store.session("kofi").await.unwrap().is_some());
    assert!(store.upload("kofi").await.unwrap().is_some());
    // The session being opened is kept, whatever its time says (a clock
    // set back): the oldest of the others ends.
    assert_eq!(
        open_keeping(&store, &session("b0", "ama", 1), 3).await,
        Some(1)
    );
    let left: Vec<String> = store
        .sessions(0, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.login == "ama")
        .map(|s| s.id_hash)
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["b0", "b2", "b3"]);
}

pub async fn the_throttle_counts_across_replicas_and_resets(store: Arc<dyn Store>) {
    let b = Backoff {
        free: 3,
        max_wait_ms: 60_000,
    };
    let key = "pair:ama@10.0.0.1".to_string();
    assert!(
        store
            .throttles(std::slice::from_ref(&key))
            .await
            .unwrap()
            .is_empty()
    );
    // Three free attempts, then a wait of 1 s, doubling.
    for f in 1..=3 {
        let t = store
            .throttle_attempt(&key, 1_000, 0, b)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((t.failures, t.last_ms), (f, 1_000));
    }
    let t = &store.throttles(std::slice::from_ref(&key)).await.unwrap()[0];
    assert_eq!(t.next_ms, 2_000, "after the third, one second");
    assert_eq!(
        store.throttle_attempt(&key, 1_500, 0, b).await.unwrap(),
        None,
        "in its wait"
    );
    let t = store
        .throttle_attempt(&key, 2_000, 0, b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.failures, t.next_ms), (4, 4_000));
    // The wait is capped.
    let mut now = 4_000;
    for _ in 0..12 {
        let t = store
            .throttle_attempt(&key, now, 0, b)
            .await
            .unwrap()
            .unwrap();
        assert!(t.next_ms - now <= b.max_wait_ms);
        now = t.next_ms;
    }
    assert_eq!(
        store.throttles(std::slice::from_ref(&key)).await.unwrap()[0].next_ms
            - store.throttles(std::slice::from_ref(&key)).await.unwrap()[0].last_ms,
        60_000
    );
    // A refund: one fewer, no wait. An attempt after the interval starts
    // the count again.
    store.throttle_refund(&key).await.unwrap();
    let t = &store.throttles(std::slice::from_ref(&key)).await.unwrap()[0];
    assert_eq!((t.failures, t.next_ms), (15, t.last_ms));
    let t = store
        .throttle_attempt(&key, now + 10_000_000, now + 1, b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.failures, 1);

    // Concurrent attempts on a fresh key (as from two replicas): exactly
    // the free ones pass, whatever the interleaving.
    let fresh = "address:10.0.0.2";
    let tries = (0..8).map(|_| store.throttle_attempt(fresh, 5_000, 0, b));
    let passed = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(passed, 3);
    store.throttle_clear(fresh).await.unwrap();
    assert!(
        store
            .throttles(&[fresh.to_string()])
            .await
            .unwrap()
            .is_empty()
    );

    // Pruning: old sessions and old throttle rows only.
    store
        .add_user(&user("ama", UserRole::Clerk, &["MUT-A"]))
        .await
        .unwrap();
    open(&store, &session("old", "ama", 10)).await;
    open(&store, &session("new", "ama", 9_000)).await;
    assert_eq!(store.prune_console(1_000, 0, i64::MAX).await.unwrap(), 2);
    assert_eq!(store.session("old").await.unwrap(), None);
    assert!(store.session("new").await.unwrap().is_some());
    assert!(store.throttles(&[key]).await.unwrap().is_empty());

    // A TOTP step is spent once, and never an earlier one after it.
    assert!(store.use_totp_step("ama", 100).await.unwrap());
    assert!(!store.use_totp_step("ama", 100).await.unwrap());
    assert!(!store.use_totp_step("ama", 99).await.unwrap());
    assert!(store.use_totp_step("ama", 101).await.unwrap());
}
