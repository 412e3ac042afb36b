//! Login, sessions, `me`, logout, revocation, change password, throttling and the
//! deny-by-default permissions, over HTTP against a real database.

use std::time::Duration;

use reqwest::header::HeaderMap;
use roster::entity::{session, user};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, Set};
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{
    Answer, GOOD_PASSWORD, TestApp, fresh_client, spawn_app, spawn_app_on, spawn_app_with,
};

const LOGIN: &str = "mutation Login($input: LoginInput!) {
    login(input: $input) { token session { id current createdAt lastSeenAt expiresAt userAgent ip } user { id username email } }
}";
const NEW_PASSWORD: &str = "purple elephant dancing quietly";

impl TestApp {
    async fn login(&self, identifier: &str, password: &str) -> Answer {
        self.post_as(
            LOGIN,
            json!({ "input": { "identifier": identifier, "password": password } }),
            &[],
        )
        .await
    }

    /// Logs in and returns the token.
    async fn token(&self, identifier: &str, password: &str) -> String {
        let answer = self.login(identifier, password).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        token_of(&answer)
    }

    /// POSTs on a fresh connection with extra headers.
    async fn post_as(&self, query: &str, variables: Value, headers: &[(&str, String)]) -> Answer {
        let mut request = fresh_client()
            .post(self.url())
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    async fn with_bearer(&self, query: &str, token: &str) -> Answer {
        self.post_as(
            query,
            json!({}),
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    }

    /// `me.username` for a bearer token (`Null` when anonymous).
    async fn me(&self, token: &str) -> Value {
        let answer = self.with_bearer("{ me { username } }", token).await;
        assert!(answer.body.get("errors").is_none(), "{}", answer.body);
        answer.body["data"]["me"]["username"].clone()
    }

    /// A session store on the test's database with these lifetimes and cap.
    fn session_store(
        &self,
        idle_ttl: Duration,
        max_ttl: Duration,
        max_per_user: u32,
    ) -> roster::sessions::Sessions {
        roster::sessions::Sessions::new(
            self.db.clone(),
            roster::sessions::SessionPolicy {
                idle_ttl,
                max_ttl,
                max_per_user,
            },
        )
    }

    /// Registers alice and returns her row and a session store (1 min idle, 2 min absolute,
    /// `max_per_user` sessions), for tests that drive `Sessions` directly.
    async fn alice_and_store(
        &self,
        max_per_user: u32,
    ) -> (user::Model, roster::sessions::Sessions) {
        self.alice().await;
        let alice = self.users().await.remove(0);
        let store = self.session_store(
            Duration::from_secs(60),
            Duration::from_secs(120),
            max_per_user,
        );
        (alice, store)
    }

    async fn session_rows(&self) -> Vec<session::Model> {
        session::Entity::find().all(&self.db).await.unwrap()
    }

    /// Registers alice (username `Alice`, email `Alice@Example.com`).
    async fn alice(&self) {
        let answer = self
            .register("Alice", "Alice@Example.com", GOOD_PASSWORD)
            .await;
        assert!(
            answer.body["data"]["register"]["id"].is_string(),
            "{}",
            answer.body
        );
    }
}

/// A `DateTime` field of an answer.
fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a DateTime: {v}"))
}

/// The token of a successful `login` answer.
fn token_of(answer: &Answer) -> String {
    answer.body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .to_owned()
}

fn set_cookie(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn login_by_username_or_email_in_any_case_or_width() {
    let app = spawn_app().await;
    app.alice().await;
    for identifier in [
        "Alice",
        "ALICE",
        "ａｌｉｃｅ",
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
    ] {
        let answer = app.login(identifier, GOOD_PASSWORD).await;
        assert_eq!(answer.status, 200, "{identifier}: {}", answer.body);
        let login = &answer.body["data"]["login"];
        assert_eq!(login["user"]["username"], "Alice", "{identifier}");
        assert_eq!(login["session"]["current"], true);
        assert_eq!(login["session"]["ip"], "127.0.0.1");
        assert!(login["token"].as_str().unwrap().len() >= 43, "256 bits");
    }
    let sessions = app.session_rows().await;
    assert_eq!(sessions.len(), 5);
    let user = &app.users().await[0];
    let newest = sessions.iter().map(|s| s.created_at).max();
    assert_eq!(
        user.last_login, newest,
        "last_login is the newest session's start"
    );
}

/// The one statement a login commits with: a session only for the hash the login verified
/// and an active user, and `last_login` stamped by the same statement (the trigger) or not
/// at all.
#[tokio::test]
async fn a_login_commit_checks_the_user_row_it_verified_against() {
    let app = spawn_app().await;
    let (alice, sessions) = app.alice_and_store(100).await;

    let set_active = |active: bool| {
        let mut row = alice.clone().into_active_model();
        row.is_active = Set(active);
        row.update(&app.db)
    };
    // The password changed since it was verified (a stale hash), or the user was deactivated
    // since: nothing is written either way.
    let stale_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
    for (hash, active) in [(stale_hash, true), (alice.password_hash.as_str(), false)] {
        set_active(active).await.unwrap();
        let refused = sessions
            .create_for_login(&app.db, alice.id, hash, None, Some("agent"))
            .await
            .unwrap();
        assert!(refused.is_none(), "active {active}");
        assert!(app.session_rows().await.is_empty());
        assert_eq!(app.users().await[0].last_login, None);
    }

    // Active, the verified hash: one row, its token stored hashed, last_login stamped.
    set_active(true).await.unwrap();
    let roster::sessions::NewSession { token, session, .. } = sessions
        .create_for_login(&app.db, alice.id, &alice.password_hash, None, Some("agent"))
        .await
        .unwrap()
        .expect("a session");
    let rows = app.session_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, session.id);
    assert_eq!(rows[0].token_hash, token.digest());
    assert_eq!(rows[0].user_agent.as_deref(), Some("agent"));
    assert_eq!(rows[0].created_at, session.created_at);
    assert_eq!(app.users().await[0].last_login, Some(session.created_at));

    // A session that started earlier but commits later does not move last_login back.
    let earlier = session.created_at - chrono::Duration::minutes(5);
    session::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(alice.id),
        token_hash: Set("0".repeat(64)),
        created_at: Set(earlier),
        last_seen_at: Set(earlier),
        expires_at: Set(session.expires_at),
        ip: Set(None),
        user_agent: Set(None),
        aal: Set(1),
        mfa_pending: Set(false),
    }
    .insert(&app.db)
    .await
    .unwrap();
    assert_eq!(app.users().await[0].last_login, Some(session.created_at));
}

/// On PostgreSQL a login's commit waits for a concurrent, uncommitted change of the user row
/// and re-checks the row once it commits (`FOR NO KEY UPDATE`): a login verified against the
/// old hash while a password change is in flight gets no session. Without the lock, the
/// `INSERT … SELECT` reads the row as it was before the change and inserts the session.
#[tokio::test]
#[ignore = "needs PostgreSQL (row locks): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn a_login_commit_waits_for_and_rechecks_a_concurrent_password_change_on_postgres() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    assert!(
        crate::helpers::on_postgres(),
        "this test holds a PostgreSQL row lock; set ROSTER_TEST_DATABASE_URL"
    );
    let app = spawn_app().await;
    let (alice, sessions) = app.alice_and_store(100).await;

    // A password change, written but not yet committed.
    let change = app.db.begin().await.unwrap();
    let mut row = alice.clone().into_active_model();
    row.password_hash = Set("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned());
    row.update(&change).await.unwrap();

    // A login that verified the old hash commits meanwhile.
    let login = tokio::spawn({
        let (db, hash) = (app.db.clone(), alice.password_hash.clone());
        async move {
            sessions
                .create_for_login(&db, alice.id, &hash, None, None)
                .await
        }
    });
    // Wait until PostgreSQL shows the login blocked on the row lock, so the test proves the
    // re-check rather than a login that merely started after the change committed.
    let waiting = sea_orm::Statement::from_string(
        app.db.get_database_backend(),
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = app
            .db
            .query_one_raw(waiting.clone())
            .await
            .unwrap()
            .unwrap();
        if row.try_get_by_index::<i64>(0).unwrap() >= 1 {
            break;
        }
        assert!(!login.is_finished(), "the login must wait for the change");
        assert!(
            std::time::Instant::now() < deadline,
            "the login never blocked on the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    change.commit().await.unwrap();

    let created = login.await.unwrap().unwrap();
    assert!(
        created.is_none(),
        "a session for a password that was just changed"
    );
    assert!(app.session_rows().await.is_empty());
    assert_eq!(app.users().await[0].last_login, None);
}

/// The connection's `synchronous_commit`, as PostgreSQL reports it.
async fn synchronous_commit(c: &impl sea_orm::ConnectionTrait) -> String {
    let show = sea_orm::Statement::from_string(c.get_database_backend(), "SHOW synchronous_commit");
    c.query_one_raw(show)
        .await
        .unwrap()
        .expect("SHOW answers a row")
        .try_get_by_index::<String>(0)
        .unwrap()
}

/// On PostgreSQL a login's commit does not wait for the WAL flush, and only that
/// transaction: the pooled connection goes back with synchronous commit, so the next
/// registration or revocation on it is as durable as ever.
#[tokio::test]
#[ignore = "needs PostgreSQL (a PostgreSQL setting): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn a_login_alone_commits_asynchronously_on_postgres() {
    use sea_orm::{ConnectOptions, Database, TransactionTrait};
    assert!(
        crate::helpers::on_postgres(),
        "this test reads a PostgreSQL setting; set ROSTER_TEST_DATABASE_URL"
    );
    let app = spawn_app().await;
    let (alice, sessions) = app.alice_and_store(100).await;
    // One connection, so every statement below runs on the one the login used.
    let mut options = ConnectOptions::new(app.database_url.clone());
    options.max_connections(1).min_connections(1);
    let conn = Database::connect(options).await.unwrap();
    assert_eq!(synchronous_commit(&conn).await, "on");

    let txn = conn.begin().await.unwrap();
    assert_eq!(synchronous_commit(&txn).await, "on");
    sessions
        .create_for_login(&txn, alice.id, &alice.password_hash, None, None)
        .await
        .unwrap()
        .expect("a session");
    assert_eq!(
        synchronous_commit(&txn).await,
        "off",
        "the login's transaction"
    );
    txn.commit().await.unwrap();
    assert_eq!(
        synchronous_commit(&conn).await,
        "on",
        "after it, on the same connection"
    );

    // The usual login, one statement in a transaction of its own: what this half shows is
    // only that the setting does not outlive that statement on a pooled connection (the
    // transaction above is what shows the setting is taken; an autocommit statement leaves
    // nothing to read it in).
    sessions
        .create_for_login(&conn, alice.id, &alice.password_hash, None, None)
        .await
        .unwrap()
        .expect("a session");
    assert_eq!(synchronous_commit(&conn).await, "on");
    assert_eq!(app.session_rows().await.len(), 2);
}

#[tokio::test]
async fn bearer_and_cookie_both_sign_in_and_anonymous_is_null() {
    let app = spawn_app().await;
    app.alice().await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    let token = token_of(&answer);
    let cookies = set_cookie(&answer.headers);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(
        cookie.starts_with(&format!("__Host-roster_session={token};")),
        "{cookie}"
    );
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing: {cookie}"
        );
    }
    assert_eq!(answer.headers["cache-control"], "no-store");

    assert_eq!(app.me(&token).await, "Alice");
    let by_cookie = app
        .post_as(
            "{ me { username } }",
            json!({}),
            &[(
                "cookie",
                format!("theme=dark; __Host-roster_session={token}"),
            )],
        )
        .await;
    assert_eq!(
        by_cookie.body["data"]["me"]["username"], "Alice",
        "{}",
        by_cookie.body
    );

    // Anonymous, unknown, malformed: `me` is null and there is no error.
    let anonymous = app.post_as("{ me { username } }", json!({}), &[]).await;
    assert_eq!(anonymous.body, json!({ "data": { "me": null } }));
    let unknown = roster::sessions::Token::generate().unwrap();
    assert_eq!(app.me(unknown.expose()).await, Value::Null);
    assert_eq!(app.me("not-a-token").await, Value::Null);
    assert_eq!(app.me(&"x".repeat(5000)).await, Value::Null);
}

#[tokio::test]
async fn the_cookie_can_be_turned_off_or_made_plain_http() {
    let app = spawn_app_with(|c| c.sessions.session_cookie = false).await;
    app.alice().await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    assert!(set_cookie(&answer.headers).is_empty());
    let token = answer.body["data"]["login"]["token"].as_str().unwrap();
    let by_cookie = app
        .post_as(
            "{ me { username } }",
            json!({}),
            &[("cookie", format!("__Host-roster_session={token}"))],
        )
        .await;
    assert_eq!(
        by_cookie.body["data"]["me"],
        Value::Null,
        "cookies are not read when off"
    );
    assert_eq!(app.me(token).await, "Alice", "bearer still works");

    let app = spawn_app_with(|c| c.sessions.session_cookie_secure = false).await;
    app.alice().await;
    let cookie = set_cookie(&app.login("alice", GOOD_PASSWORD).await.headers).remove(0);
    assert!(
        !cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A plain-HTTP cookie cannot carry the `__Host-` prefix (browsers refuse it), so it is
    // `roster_session`, and that name is the one read.
    let token = token_of(&app.login("alice", GOOD_PASSWORD).await);
    assert!(cookie.starts_with("roster_session="), "{cookie}");
    let me = |cookie: String| {
        let app = &app;
        async move {
            app.post_as("{ me { username } }", json!({}), &[("cookie", cookie)])
                .await
                .body["data"]["me"]
                .clone()
        }
    };
    assert_eq!(
        me(format!("roster_session={token}")).await["username"],
        "Alice"
    );
    assert_eq!(
        me(format!("__Host-roster_session={token}")).await,
        Value::Null
    );
}

/// With `Secure` (the default) the cookie is `__Host-roster_session` and no other name signs
/// anyone in: a sibling subdomain can set `roster_session` for the parent domain (login
/// CSRF: the victim would be signed in as the attacker), but never a `__Host-` cookie.
#[tokio::test]
async fn the_secure_cookie_is_host_prefixed_and_a_sibling_hosts_cookie_signs_in_nobody() {
    let app = spawn_app().await;
    app.alice().await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    let cookie = set_cookie(&answer.headers).remove(0);
    assert!(cookie.starts_with("__Host-roster_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("; Path=/"),
        "{cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let token = token_of(&answer);
    for planted in [
        format!("roster_session={token}"),
        format!("__Secure-roster_session={token}"),
    ] {
        let answer = app
            .post_as(
                "{ me { username } }",
                json!({}),
                &[("cookie", planted.clone())],
            )
            .await;
        assert_eq!(answer.body["data"]["me"], Value::Null, "{planted}");
    }
    let answer = app
        .post_as(
            "{ me { username } }",
            json!({}),
            &[("cookie", format!("__Host-roster_session={token}"))],
        )
        .await;
    assert_eq!(answer.body["data"]["me"]["username"], "Alice");
    // Logging out clears the same name.
    let out = app
        .post_as(
            "mutation { logout }",
            json!({}),
            &[("cookie", format!("__Host-roster_session={token}"))],
        )
        .await;
    let cleared = set_cookie(&out.headers).remove(0);
    assert!(cleared.starts_with("__Host-roster_session=;"), "{cleared}");
}

#[tokio::test]
async fn a_cookie_never_signs_in_a_request_another_site_could_send() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let cookie = format!("__Host-roster_session={token}");
    // A cross-site form or a no-preflight fetch: text/plain or form-encoded bodies.
    for (content_type, body) in [
        ("text/plain", r#"{"query":"mutation { logout }"}"#.to_owned()),
        ("application/x-www-form-urlencoded", "query=mutation%20%7B%20logout%20%7D".to_owned()),
        ("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nmutation { logout }\r\n--x--".to_owned()),
    ] {
        let response = fresh_client()
            .post(app.url())
            .header("content-type", content_type)
            .header("cookie", &cookie)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }
    // A GET (an <img> or a link) is never signed in by the cookie.
    let response = fresh_client()
        .get(format!("{}?query=%7Bme%7Busername%7D%7D", app.url()))
        .header("accept", "application/json")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"], Value::Null, "{body}");
    // Nothing was logged out.
    assert_eq!(app.me(&token).await, "Alice");
    assert_eq!(app.session_rows().await.len(), 1);
}

#[tokio::test]
async fn every_protected_field_refuses_an_anonymous_caller_and_changes_nothing() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let session_id = app.session_rows().await[0].id.to_string();
    let hash_before = app.users().await[0].password_hash.clone();
    let fields = [
        ("{ sessions { id } }".to_owned(), "sessions"),
        ("mutation { logout }".to_owned(), "logout"),
        (
            format!("mutation {{ revokeSession(id: \"{session_id}\") }}"),
            "revokeSession",
        ),
        (
            "mutation { logoutEverywhere }".to_owned(),
            "logoutEverywhere",
        ),
        (
            format!(
                "mutation {{ changePassword(input: {{currentPassword: \"{GOOD_PASSWORD}\", newPassword: \"{NEW_PASSWORD}\"}}) {{ id }} }}"
            ),
            "changePassword",
        ),
    ];
    for bad_token in [
        None,
        Some("garbage".to_owned()),
        Some(
            roster::sessions::Token::generate()
                .unwrap()
                .expose()
                .to_owned(),
        ),
    ] {
        for (query, field) in &fields {
            let headers: Vec<(&str, String)> = bad_token
                .iter()
                .map(|t| ("authorization", format!("Bearer {t}")))
                .collect();
            let answer = app.post_as(query, json!({}), &headers).await;
            let errors = answer.body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{field}: {}", answer.body));
            assert_eq!(errors.len(), 1, "{field}: {}", answer.body);
            assert_eq!(answer.code(), "UNAUTHENTICATED", "{field}: {}", answer.body);
            assert_eq!(errors[0]["message"], "You must be signed in.");
            assert_eq!(errors[0]["path"], json!([field]));
        }
    }
    assert_eq!(app.me(&token).await, "Alice", "the session survived");
    assert_eq!(app.session_rows().await.len(), 1);
    assert_eq!(app.users().await[0].password_hash, hash_before);
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let other = app.token("alice", GOOD_PASSWORD).await;
    let answer = app.with_bearer("mutation { logout }", &token).await;
    assert_eq!(answer.body, json!({ "data": { "logout": true } }));
    let cleared = set_cookie(&answer.headers).remove(0);
    assert!(
        cleared.starts_with("__Host-roster_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(app.me(&token).await, Value::Null);
    assert_eq!(app.me(&other).await, "Alice", "only that session ended");
    let again = app.with_bearer("mutation { logout }", &token).await;
    assert_eq!(again.code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn revoke_session_ends_ones_own_sessions_only() {
    let app = spawn_app().await;
    app.alice().await;
    app.register("bob", "bob@example.com", GOOD_PASSWORD).await;
    let first = app.token("alice", GOOD_PASSWORD).await;
    let second = app.token("alice@example.com", GOOD_PASSWORD).await;
    let bobs = app.token("bob", GOOD_PASSWORD).await;

    let listed = app.with_bearer("{ sessions { id current } }", &first).await;
    let sessions = listed.body["data"]["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{}", listed.body);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let second_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs_list = app.with_bearer("{ sessions { id } }", &bobs).await;
    let bobs_id = bobs_list.body["data"]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else's session, a made-up id, a malformed id: false, nothing changes.
    for id in [
        bobs_id.as_str(),
        "01a21086-a06e-732c-80ca-0bd15cc20bc9",
        "nope",
    ] {
        let answer = app
            .with_bearer(
                &format!("mutation {{ revokeSession(id: \"{id}\") }}"),
                &first,
            )
            .await;
        assert_eq!(
            answer.body,
            json!({ "data": { "revokeSession": false } }),
            "{id}"
        );
    }
    assert_eq!(app.me(&bobs).await, "bob");
    assert_eq!(app.session_rows().await.len(), 3);

    let answer = app
        .with_bearer(
            &format!("mutation {{ revokeSession(id: \"{second_id}\") }}"),
            &first,
        )
        .await;
    assert_eq!(answer.body, json!({ "data": { "revokeSession": true } }));
    assert_eq!(app.me(&second).await, Value::Null);
    assert_eq!(app.me(&first).await, "Alice");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_and_counts_them() {
    let app = spawn_app().await;
    app.alice().await;
    let tokens = [
        app.token("alice", GOOD_PASSWORD).await,
        app.token("alice", GOOD_PASSWORD).await,
        app.token("alice", GOOD_PASSWORD).await,
    ];
    let answer = app
        .with_bearer("mutation { logoutEverywhere }", &tokens[0])
        .await;
    assert_eq!(answer.body, json!({ "data": { "logoutEverywhere": 3 } }));
    assert!(set_cookie(&answer.headers)[0].contains("Max-Age=0"));
    for token in &tokens {
        assert_eq!(app.me(token).await, Value::Null);
    }
    assert!(app.session_rows().await.is_empty());
}

#[tokio::test]
async fn sessions_expire_when_idle_and_are_purged() {
    let app = spawn_app_with(|c| {
        c.sessions.session_idle_ttl = Duration::from_secs(1);
        c.sessions.session_max_ttl = Duration::from_secs(1);
    })
    .await;
    app.alice().await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    let session = &answer.body["data"]["login"]["session"];
    let (created, expires) = (time(&session["createdAt"]), time(&session["expiresAt"]));
    assert_eq!(expires - created, chrono::Duration::seconds(1));
    let token = token_of(&answer);
    assert_eq!(app.me(&token).await, "Alice");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.me(&token).await, Value::Null, "expired is refused");
    assert_eq!(
        app.with_bearer("mutation { logout }", &token).await.code(),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        app.session_rows().await.len(),
        1,
        "refused before it is purged"
    );
    let sessions = app.session_store(Duration::from_secs(1), Duration::from_secs(1), 100);
    assert_eq!(sessions.purge_expired().await.unwrap(), 1);
    assert!(app.session_rows().await.is_empty());
}

#[tokio::test]
async fn expiry_is_the_earlier_of_idle_and_absolute() {
    let app = spawn_app_with(|c| {
        c.sessions.session_idle_ttl = Duration::from_secs(3600);
        c.sessions.session_max_ttl = Duration::from_secs(7200);
    })
    .await;
    app.alice().await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    let session = &answer.body["data"]["login"]["session"];
    let (created, expires) = (time(&session["createdAt"]), time(&session["expiresAt"]));
    assert_eq!(expires - created, chrono::Duration::seconds(3600));
    // A session last seen long ago: its next use refreshes lastSeenAt, capped by the max.
    let mut row = app.session_rows().await.remove(0).into_active_model();
    let long_ago = (chrono::Utc::now() - chrono::Duration::seconds(5000)).trunc_subsecs_to_micros();
    row.created_at = Set(long_ago);
    row.last_seen_at = Set(long_ago);
    row.update(&app.db).await.unwrap();
    let token = answer.body["data"]["login"]["token"].as_str().unwrap();
    let listed = app
        .with_bearer("{ sessions { lastSeenAt expiresAt createdAt } }", token)
        .await;
    let s = &listed.body["data"]["sessions"][0];
    let seen = time(&s["lastSeenAt"]);
    let expires = time(&s["expiresAt"]);
    assert!(
        chrono::Utc::now() - seen < chrono::Duration::seconds(30),
        "touched: {s}"
    );
    let cap = long_ago + chrono::Duration::seconds(7200);
    assert_eq!(expires, cap, "the absolute limit wins: {s}");
    // Touched at most once a minute: an immediate second use writes nothing.
    let before = app.session_rows().await[0].last_seen_at;
    app.me(token).await;
    assert_eq!(app.session_rows().await[0].last_seen_at, before);
}

trait Micros {
    fn trunc_subsecs_to_micros(self) -> Self;
}
impl Micros for chrono::DateTime<chrono::Utc> {
    fn trunc_subsecs_to_micros(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 6)
    }
}

#[tokio::test]
async fn unknown_wrong_and_deactivated_are_indistinguishable() {
    let app = spawn_app().await;
    app.alice().await;
    app.register("carol", "carol@example.com", GOOD_PASSWORD)
        .await;
    let carols = app.token("carol", GOOD_PASSWORD).await;
    let mut carol = app
        .users()
        .await
        .into_iter()
        .find(|u| u.username == "carol")
        .unwrap()
        .into_active_model();
    carol.is_active = Set(false);
    carol.update(&app.db).await.unwrap();

    let before = app.hasher.computed();
    let answers = [
        app.login("nobody", GOOD_PASSWORD).await,
        app.login("alice", "wrong password").await,
        app.login("carol", GOOD_PASSWORD).await,
    ];
    // Each cost exactly one Argon2id verification, the unknown one included.
    assert_eq!(app.hasher.computed() - before, 3);
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            json!({ "data": null, "errors": [{
                "message": "Invalid username/email or password.",
                "locations": [{ "line": 2, "column": 5 }],
                "path": ["login"],
                "extensions": { "code": "INVALID_CREDENTIALS" },
            }] })
        );
        assert!(set_cookie(&answer.headers).is_empty());
    }
    assert_eq!(
        app.me(&carols).await,
        Value::Null,
        "a deactivated user's sessions stop working"
    );
    assert_eq!(
        app.session_rows().await.len(),
        0,
        "deactivation ended carol's session, and a failed login makes none"
    );
}

#[tokio::test]
async fn the_database_holds_no_token_in_clear() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let row = app.session_rows().await.remove(0);
    let digest: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(row.token_hash, digest);
    let everything = format!("{row:?} {:?}", app.users().await);
    assert!(
        !everything.contains(&token),
        "the token is stored somewhere in clear"
    );
}

#[tokio::test]
async fn change_password_applies_the_policy_and_revokes_other_sessions() {
    let app = spawn_app().await;
    app.alice().await;
    let current = app.token("alice", GOOD_PASSWORD).await;
    let other = app.token("alice", GOOD_PASSWORD).await;
    let change = |current_password: &str, new_password: &str| {
        format!(
            "mutation {{ changePassword(input: {{currentPassword: \"{current_password}\", newPassword: \"{new_password}\"}}) {{ username }} }}"
        )
    };
    let hash_before = app.users().await[0].password_hash.clone();

    let answer = app
        .with_bearer(&change(GOOD_PASSWORD, "short"), &current)
        .await;
    assert_eq!(
        answer.field_codes(),
        vec![
            ("newPassword".to_owned(), "password_too_short".to_owned()),
            ("newPassword".to_owned(), "password_too_weak".to_owned())
        ]
    );
    let answer = app.with_bearer(&change("not it", "alice"), &current).await;
    let codes = answer.field_codes();
    assert_eq!(
        codes[0],
        ("currentPassword".to_owned(), "invalid".to_owned())
    );
    assert!(
        codes[1..]
            .iter()
            .any(|c| c == &("newPassword".to_owned(), "password_too_similar".to_owned())),
        "{codes:?}"
    );
    let answer = app
        .with_bearer(&change("not it", NEW_PASSWORD), &current)
        .await;
    assert_eq!(
        answer.field_codes(),
        vec![("currentPassword".to_owned(), "invalid".to_owned())]
    );
    assert_eq!(
        app.users().await[0].password_hash,
        hash_before,
        "nothing changed"
    );
    assert_eq!(app.me(&other).await, "Alice");

    let answer = app
        .with_bearer(&change(GOOD_PASSWORD, NEW_PASSWORD), &current)
        .await;
    assert_eq!(
        answer.body,
        json!({ "data": { "changePassword": { "username": "Alice" } } })
    );
    assert_eq!(
        app.me(&current).await,
        "Alice",
        "the caller's session stays"
    );
    assert_eq!(
        app.me(&other).await,
        Value::Null,
        "every other session ends"
    );
    assert_eq!(
        app.login("alice", GOOD_PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    app.token("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_login_rehashes_with_the_configured_parameters() {
    let cheap = |c: &mut roster::config::Config| {
        c.hashing.argon2_memory_kib = 1024;
        c.hashing.argon2_iterations = 1;
    };
    let first = spawn_app_with(cheap).await;
    first.alice().await;
    let old = first.users().await[0].password_hash.clone();
    assert!(old.contains("$m=1024,t=1,p=1$"), "{old}");
    let url = first.database_url.clone();
    let second = spawn_app_on(url, |c| {
        c.hashing.argon2_memory_kib = 2048;
        c.hashing.argon2_iterations = 2;
    })
    .await;
    second.token("alice", GOOD_PASSWORD).await;
    let new = second.users().await[0].password_hash.clone();
    assert!(new.contains("$m=2048,t=2,p=1$"), "{new}");
    // The upgraded hash verifies, and an unchanged one is left alone.
    second.token("alice", GOOD_PASSWORD).await;
    assert_eq!(second.users().await[0].password_hash, new);
}

/// A user holds at most `--max-sessions-per-user` sessions: a login beyond it ends the
/// oldest, never the one it creates. Without the cap anyone with the password could fill the
/// table one login at a time, and `sessions` would list all of it.
#[tokio::test]
async fn logins_beyond_the_session_cap_end_the_oldest_sessions() {
    let app = spawn_app_with(|c| c.sessions.max_sessions_per_user = 3).await;
    app.alice().await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(app.token("alice", GOOD_PASSWORD).await);
    }
    assert_eq!(app.session_rows().await.len(), 3);
    for (i, token) in tokens.iter().enumerate() {
        let me = app.with_bearer("{ me { username } }", token).await;
        let expected = if i < 2 {
            Value::Null
        } else {
            json!({ "username": "Alice" })
        };
        assert_eq!(me.body["data"]["me"], expected, "login {i}: {}", me.body);
    }
    let listed = app
        .with_bearer("{ sessions { id current } }", &tokens[4])
        .await;
    assert_eq!(
        listed.body["data"]["sessions"].as_array().map(Vec::len),
        Some(3),
        "{}",
        listed.body
    );

    // Another user's sessions are not touched by alice's cap.
    app.register("bob", "bob@example.com", GOOD_PASSWORD).await;
    let bob = app.token("bob", GOOD_PASSWORD).await;
    app.token("alice", GOOD_PASSWORD).await;
    assert_eq!(app.session_rows().await.len(), 4);
    let me = app.with_bearer("{ me { username } }", &bob).await;
    assert_eq!(me.body["data"]["me"]["username"], "bob", "{}", me.body);
}

/// Past a cap of 20 the oldest sessions go in one statement, down to 18 (a tenth of slack, so a
/// client that logs in over and over pays that statement every third login, not at each);
/// the count never exceeds the cap and the newest login always works.
#[tokio::test]
async fn the_session_cap_trims_a_tenth_at_a_time_and_is_never_exceeded() {
    let app = spawn_app_with(|c| c.sessions.max_sessions_per_user = 20).await;
    app.alice().await;
    let mut counts = Vec::new();
    for _ in 0..30 {
        let token = app.token("alice", GOOD_PASSWORD).await;
        counts.push(app.session_rows().await.len());
        let me = app.with_bearer("{ me { username } }", &token).await;
        assert_eq!(me.body["data"]["me"]["username"], "Alice", "{}", me.body);
    }
    assert!(counts.iter().all(|&n| n <= 20), "{counts:?}");
    assert!(counts[20..].iter().all(|&n| n >= 18), "{counts:?}");
    assert!(counts[20..].contains(&18), "trimmed to 18: {counts:?}");
}

/// Concurrent logins past the cap never end each other's new sessions: each trims only
/// sessions older than its own. Replayed here in the order that would end both — insert A,
/// insert B, trim for A, trim for B — with a cap of one: B, the newest, survives.
#[tokio::test]
async fn concurrent_logins_past_the_cap_never_end_each_others_sessions() {
    let app = spawn_app_with(|c| c.sessions.max_sessions_per_user = 1).await;
    let (alice, sessions) = app.alice_and_store(1).await;
    app.token("alice", GOOD_PASSWORD).await;
    let mut created = Vec::new();
    for _ in 0..2 {
        let new = sessions
            .create_for_login(&app.db, alice.id, &alice.password_hash, None, None)
            .await
            .unwrap()
            .expect("a session");
        assert!(new.over_cap);
        created.push(new);
    }
    for new in &created {
        sessions.end_oldest_beyond_cap(&new.session).await;
    }
    let rows = app.session_rows().await;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![created[1].session.id],
        "only the newest login's session is left"
    );
    let me = app
        .with_bearer("{ me { username } }", created[1].token.expose())
        .await;
    assert_eq!(me.body["data"]["me"]["username"], "Alice", "{}", me.body);
}

/// With a cap of one, each login ends the previous session.
#[tokio::test]
async fn a_cap_of_one_session_keeps_the_newest_login() {
    let app = spawn_app_with(|c| c.sessions.max_sessions_per_user = 1).await;
    app.alice().await;
    let first = app.token("alice", GOOD_PASSWORD).await;
    let second = app.token("alice", GOOD_PASSWORD).await;
    assert_eq!(app.session_rows().await.len(), 1);
    let me = |token: String| {
        let app = &app;
        async move { app.with_bearer("{ me { username } }", &token).await.body["data"]["me"].clone() }
    };
    assert_eq!(me(first).await, Value::Null);
    assert_eq!(me(second).await["username"], "Alice");
}

/// Two devices signing in at once, as an imported user's first logins often do: every login
/// verifies the old hash and computes an upgrade, but only the first can swap it in. The
/// others must still sign in (against the hash now stored), not be told the right password
/// is wrong.
#[tokio::test]
async fn concurrent_logins_that_upgrade_one_hash_all_sign_in() {
    // The old hash is the slow one, so every lookup happens before the first commit.
    let first = spawn_app_with(|c| {
        c.hashing.argon2_memory_kib = 8192;
        c.hashing.argon2_iterations = 4;
    })
    .await;
    first.alice().await;
    let second = std::sync::Arc::new(
        spawn_app_on(first.database_url.clone(), |c| {
            c.hashing.argon2_memory_kib = 1024;
            c.hashing.argon2_iterations = 1;
        })
        .await,
    );
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let app = second.clone();
            tokio::spawn(async move { app.login("alice", GOOD_PASSWORD).await })
        })
        .collect();
    for login in logins {
        let answer = login.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        token_of(&answer);
    }
    assert_eq!(second.session_rows().await.len(), 4);
    let stored = second.users().await[0].password_hash.clone();
    assert!(stored.contains("$m=1024,t=1,p=1$"), "{stored}");
}

#[tokio::test]
async fn login_attempts_are_limited_per_client() {
    let app = spawn_app_with(|c| {
        c.sessions.login_rate_limit = roster::config::parse_rate_limit("3/1h").unwrap();
    })
    .await;
    app.alice().await;
    for _ in 0..2 {
        assert_eq!(
            app.login("alice", "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    app.token("alice", GOOD_PASSWORD).await;
    let answer = app.login("alice", GOOD_PASSWORD).await;
    assert_eq!(answer.status, 429, "successes count too: {}", answer.body);
    assert_eq!(answer.code(), "RATE_LIMITED");
    assert!(
        answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1000
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_then_forgiven() {
    let app = spawn_app_with(|c| {
        c.sessions.login_failure_limit = roster::config::parse_rate_limit("3/2s").unwrap();
    })
    .await;
    app.alice().await;
    // The username and the email of one account count together.
    for identifier in ["alice", "ALICE@example.com", "Alice"] {
        assert_eq!(
            app.login(identifier, "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    // An unknown identifier behaves the same way, keyed by its canonical form.
    for identifier in ["ghost", "GHOST", "ｇｈｏｓｔ"] {
        assert_eq!(
            app.login(identifier, "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    let hashes = app.hasher.computed();
    for identifier in ["alice@example.com", "ghost"] {
        // Even the right password: the account is throttled, and the pool is not touched.
        let answer = app.login(identifier, GOOD_PASSWORD).await;
        assert_eq!(answer.status, 429, "{identifier}: {}", answer.body);
        assert_eq!(answer.code(), "RATE_LIMITED");
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(
        app.hasher.computed(),
        hashes,
        "throttled attempts never reach the hash pool"
    );
    // Another account is not affected.
    app.register("bob", "bob@example.com", GOOD_PASSWORD).await;
    app.token("bob", GOOD_PASSWORD).await;
    // No permanent lockout: after the window the victim logs in.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.token("alice", GOOD_PASSWORD).await;
    // And a success resets the count.
    for _ in 0..2 {
        app.login("alice", "wrong").await;
    }
    app.token("alice", GOOD_PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(
            app.login("alice", "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
    }
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_outrun_the_account_limit() {
    let app = std::sync::Arc::new(
        spawn_app_with(|c| {
            c.sessions.login_failure_limit = roster::config::parse_rate_limit("3/1h").unwrap();
        })
        .await,
    );
    app.alice().await;
    let hashes = app.hasher.computed();
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let app = app.clone();
            let identifier = if n % 2 == 0 {
                "alice"
            } else {
                "alice@example.com"
            };
            tokio::spawn(async move { app.login(identifier, "wrong").await.code().to_owned() })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let invalid = codes.iter().filter(|c| *c == "INVALID_CREDENTIALS").count();
    let limited = codes.iter().filter(|c| *c == "RATE_LIMITED").count();
    assert_eq!((invalid, limited), (3, 9), "{codes:?}");
    assert_eq!(
        app.hasher.computed() - hashes,
        3,
        "only the admitted attempts hashed"
    );
}

#[tokio::test]
async fn spellings_of_one_unknown_address_share_a_count_as_a_real_accounts_do() {
    let app = spawn_app_with(|c| {
        c.sessions.login_failure_limit = roster::config::parse_rate_limit("2/1h").unwrap();
    })
    .await;
    app.alice().await;
    // U+3002 (ideographic full stop) is a dot to IDNA: both spellings name one address, so
    // whether the address exists must not change how the second spelling is counted.
    for (first, second) in [
        ("alice@example.com", "alice@example\u{3002}com"),
        ("ghost@example.com", "ghost@example\u{3002}com"),
    ] {
        assert_eq!(
            app.login(first, "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
        assert_eq!(
            app.login(first, "wrong").await.code(),
            "INVALID_CREDENTIALS"
        );
        let answer = app.login(second, "wrong").await;
        assert_eq!(answer.code(), "RATE_LIMITED", "{second}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_right_password_the_server_fails_to_finish_does_not_count_against_the_account() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app_with(|c| {
        c.sessions.login_failure_limit = roster::config::parse_rate_limit("2/1h").unwrap();
    })
    .await;
    app.alice().await;
    // The database refuses every new session: the password verifies, then the commit fails.
    let postgres = app.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let refuse = if postgres {
        vec![
            "CREATE FUNCTION test_refuse_session() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER test_refuse_session BEFORE INSERT ON sessions \
             FOR EACH ROW EXECUTE FUNCTION test_refuse_session()",
        ]
    } else {
        vec![
            "CREATE TRIGGER test_refuse_session BEFORE INSERT ON sessions \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ]
    };
    for sql in refuse {
        app.db.execute_unprepared(sql).await.unwrap();
    }
    // More right-password attempts than the failure limit allows wrong ones.
    for _ in 0..3 {
        let answer = app.login("alice", GOOD_PASSWORD).await;
        assert_eq!(answer.code(), "INTERNAL_SERVER_ERROR", "{}", answer.body);
        assert!(!answer.body.to_string().contains("refused by the test"));
    }
    assert_eq!(app.session_rows().await.len(), 0, "nothing half-written");
    let drop = if postgres {
        "DROP TRIGGER test_refuse_session ON sessions"
    } else {
        "DROP TRIGGER test_refuse_session"
    };
    app.db.execute_unprepared(drop).await.unwrap();
    // None of them counted: alice signs in at once, and still has her full allowance after.
    app.token("alice", GOOD_PASSWORD).await;
    assert_eq!(
        app.login("alice", "wrong").await.code(),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn a_login_that_loses_a_race_with_a_password_change_counts_as_a_failure() {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    let app = std::sync::Arc::new(
        spawn_app_with(|c| {
            crate::helpers::slow_hash(c);
            c.sessions.login_failure_limit = roster::config::parse_rate_limit("1/1h").unwrap();
        })
        .await,
    );
    app.alice().await;
    let changed = app
        .hasher
        .hash(roster::password::Plaintext::new(NEW_PASSWORD.into()))
        .await
        .unwrap();
    let racing = {
        let app = app.clone();
        tokio::spawn(async move { app.login("alice", GOOD_PASSWORD).await })
    };
    // While that login verifies the old password, the password changes under it.
    let started = std::time::Instant::now();
    while app.hasher.active() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the login never hashed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(changed))
        .filter(user::Column::UsernameCanonical.eq("alice"))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.hasher.active(),
        1,
        "the change landed while the login was verifying"
    );
    let answer = racing.await.unwrap();
    assert_eq!(answer.code(), "INVALID_CREDENTIALS", "{}", answer.body);
    assert_eq!(app.session_rows().await.len(), 0);
    // It counted as the wrong password it became: the one attempt the limit allows is spent.
    let next = app.login("alice", NEW_PASSWORD).await;
    assert_eq!(next.code(), "RATE_LIMITED", "{}", next.body);
}

#[tokio::test]
async fn a_session_ended_by_the_document_is_anonymous_for_the_rest_of_it() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let query = format!(
        "mutation {{ logout changePassword(input: {{currentPassword: \"{GOOD_PASSWORD}\", newPassword: \"{NEW_PASSWORD}\"}}) {{ id }} }}"
    );
    let answer = app.with_bearer(&query, &token).await;
    assert_eq!(answer.body["data"]["logout"], true, "{}", answer.body);
    assert!(
        answer.body["data"]
            .get("changePassword")
            .is_none_or(Value::is_null),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{}",
        answer.body
    );
    assert_eq!(answer.body["errors"][0]["path"], json!(["changePassword"]));
    let hash = app.users().await[0].password_hash.clone();
    app.token("alice", GOOD_PASSWORD).await;
    assert_eq!(
        app.users().await[0].password_hash,
        hash,
        "the password did not change"
    );
}

#[tokio::test]
async fn two_session_cookies_sign_in_nobody() {
    let app = spawn_app().await;
    app.alice().await;
    let token = app.token("alice", GOOD_PASSWORD).await;
    let planted = roster::sessions::Token::generate().unwrap();
    for cookie in [
        format!(
            "__Host-roster_session={}; __Host-roster_session={token}",
            planted.expose()
        ),
        format!("__Host-roster_session={token}; __Host-roster_session={token}"),
    ] {
        let answer = app
            .post_as("{ me { username } }", json!({}), &[("cookie", cookie)])
            .await;
        assert_eq!(answer.body["data"]["me"], Value::Null, "{}", answer.body);
    }
}

#[tokio::test]
async fn a_full_hash_queue_answers_login_with_503() {
    let app = std::sync::Arc::new(spawn_app_with(crate::helpers::full_hash_queue).await);
    app.alice().await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("alice", GOOD_PASSWORD).await })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(answer.code(), "SERVER_BUSY");
                busy += 1;
            }
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
    assert_eq!(session::Entity::find().count(&app.db).await.unwrap(), ok);
}

/// Deny by default: every root field of the schema has a declared permission.
#[test]
fn every_root_field_declares_a_permission() {
    let sdl = roster::graphql::sdl();
    let mut missing = Vec::new();
    let mut seen = 0;
    for root in ["Query", "Mutation"] {
        let start = sdl
            .find(&format!("type {root} {{"))
            .unwrap_or_else(|| panic!("no {root}"));
        let body = &sdl[start..start + sdl[start..].find("\n}").unwrap()];
        let mut in_doc = false;
        for line in body.lines().skip(1) {
            let line = line.trim();
            if line.starts_with("\"\"\"") {
                in_doc = !in_doc;
                continue;
            }
            if in_doc || line.is_empty() {
                continue;
            }
            let name = line.split(['(', ':']).next().unwrap().trim();
            seen += 1;
            if roster::graphql::guard::permission(root, name).is_none() {
                missing.push(format!("{root}.{name}"));
            }
        }
    }
    assert!(seen >= 9, "the walk found {seen} fields");
    assert!(
        missing.is_empty(),
        "root fields without a declared permission: {missing:?}"
    );
}

/// The user table row for a username, for tests that change it behind the API's back.
#[allow(dead_code)]
async fn user_named(app: &TestApp, name: &str) -> user::Model {
    app.users()
        .await
        .into_iter()
        .find(|u| u.username == name)
        .unwrap()
}

/// GraphiQL's example holds `register`, `login` and `changePassword` (1000 complexity points
/// each) as separate operations; the one named runs, and only it counts.
#[tokio::test]
async fn a_document_of_several_hashing_operations_runs_the_one_named() {
    let app = spawn_app().await;
    let document = format!(
        "mutation Register {{ register(input: {{username: \"ada\", email: \"ada@example.com\", password: \"{GOOD_PASSWORD}\"}}) {{ username }} }}
         mutation Login {{ login(input: {{identifier: \"ADA\", password: \"{GOOD_PASSWORD}\"}}) {{ ...Who }} }}
         mutation ChangePassword {{ changePassword(input: {{currentPassword: \"x\", newPassword: \"y\"}}) {{ username }} }}
         fragment Who on LoginPayload {{ user {{ username }} }}
         fragment Unused on User {{ id }}"
    );
    for (operation, expected) in [
        ("Register", json!({ "register": { "username": "ada" } })),
        (
            "Login",
            json!({ "login": { "user": { "username": "ada" } } }),
        ),
    ] {
        let answer = app.post_as_operation(&document, operation).await;
        assert_eq!(answer.body, json!({ "data": expected }), "{operation}");
    }
    // Two hashing fields in one operation are still refused.
    let two = format!(
        "mutation Two {{ a: login(input: {{identifier: \"ada\", password: \"{GOOD_PASSWORD}\"}}) {{ token }} b: login(input: {{identifier: \"ada\", password: \"{GOOD_PASSWORD}\"}}) {{ token }} }}"
    );
    let answer = app.post_as_operation(&two, "Two").await;
    assert_eq!(
        answer.code(),
        "GRAPHQL_VALIDATION_FAILED",
        "{}",
        answer.body
    );
}

impl TestApp {
    async fn post_as_operation(&self, document: &str, operation: &str) -> Answer {
        let response = fresh_client()
            .post(self.url())
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": document, "operationName": operation }))
            .send()
            .await
            .expect("request");
        Answer::from(response).await
    }
}

/// Deactivation ends a user's sessions and email links; it does not merely suspend them, so
/// reactivating the account revives nothing. Done here by SQL, as operators do it today: the
/// database itself (a trigger) ends them in the statement that deactivates.
#[tokio::test]
async fn deactivation_ends_sessions_and_links_so_reactivation_revives_nothing() {
    let app = spawn_app().await;
    app.register("carol", "carol@example.com", GOOD_PASSWORD)
        .await;
    let token = app.token("carol", GOOD_PASSWORD).await;
    let carol = app
        .users()
        .await
        .into_iter()
        .find(|u| u.username == "carol")
        .unwrap();
    let links = || async {
        roster::entity::email_token::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.user_id == carol.id)
            .count()
    };
    // The worker mints the confirmation link when it delivers the email (console transport).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while links().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no confirmation link minted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut row = carol.clone().into_active_model();
    row.is_active = Set(false);
    row.update(&app.db).await.unwrap();
    assert_eq!(app.me(&token).await, Value::Null);
    assert_eq!(app.session_rows().await.len(), 0, "the session row is gone");
    assert_eq!(links().await, 0, "the email link is gone");
    // A link minted after the deactivation (the mail worker read the user as active just
    // before) is deleted in the statement that inserts it.
    let late = roster::entity::email_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(carol.id),
        purpose: Set("verify_email".into()),
        token_hash: Set("0".repeat(64)),
        created_at: Set(chrono::Utc::now()),
        expires_at: Set(chrono::Utc::now() + chrono::Duration::hours(1)),
        used_at: Set(None),
        new_email: Set(None),
        outbox_id: Set(None),
    };
    let _ = late.insert(&app.db).await;
    assert_eq!(
        links().await,
        0,
        "a late link for an inactive user is gone too"
    );

    let mut row = carol.clone().into_active_model();
    row.is_active = Set(true);
    row.update(&app.db).await.unwrap();
    assert_eq!(
        app.me(&token).await,
        Value::Null,
        "reactivation does not revive the old session"
    );
    // Reactivated, carol signs in afresh.
    let again = app.token("carol", GOOD_PASSWORD).await;
    assert_eq!(app.me(&again).await, "carol");
}

/// Usernames and emails are one namespace of login identifiers. A stranger who registered
/// the username `victim@corp.example` used to capture the victim's login by email (a
/// username match won) and collect the victim's failed-login count.
#[tokio::test]
async fn a_username_can_never_capture_anothers_login_by_email() {
    let app = spawn_app().await;
    // The stranger first: an address-shaped username must be one's own address.
    let early = app
        .register(
            "victim@corp.example",
            "stranger1@example.com",
            GOOD_PASSWORD,
        )
        .await;
    assert_eq!(
        early.field_codes(),
        [("username".to_owned(), "username_not_own_email".to_owned())]
    );
    // Judged on the canonical form: `ß` folds to `ss`, so `gloß@…` names `gloss@…`.
    for name in ["gloß@corp.example", "claẞ@corp.example"] {
        let folded = app
            .register(name, "stranger0@example.com", GOOD_PASSWORD)
            .await;
        assert_eq!(
            folded.field_codes(),
            [("username".to_owned(), "username_not_own_email".to_owned())],
            "{name}"
        );
    }
    app.register("victim", "victim@corp.example", GOOD_PASSWORD)
        .await;
    // The stranger after, in another case and width: taken, by the victim's email.
    for name in ["Victim@Corp.Example", "ＶＩＣＴＩＭ@corp.example"] {
        let late = app
            .register(name, "stranger2@example.com", GOOD_PASSWORD)
            .await;
        let codes = late.field_codes();
        assert!(
            codes.contains(&("username".to_owned(), "taken".to_owned()))
                || codes.contains(&("username".to_owned(), "username_not_own_email".to_owned())),
            "{name}: {codes:?}"
        );
    }
    assert_eq!(app.users().await.len(), 1);
    // The victim signs in by email.
    let token = app.token("victim@corp.example", GOOD_PASSWORD).await;
    assert_eq!(app.me(&token).await, "victim");

    // The database has the last word, whatever wrote the row (an import, an operator's
    // SQL): a username equal to another account's email is a unique violation, and so is
    // an email equal to another's username.
    let victim = app.users().await.remove(0);
    for (username, email) in [
        ("victim@corp.example", "stranger3@example.com"),
        ("stranger4", "victim"),
    ] {
        let mut row = victim.clone().into_active_model();
        row.id = Set(uuid::Uuid::now_v7());
        row.username = Set(username.to_owned());
        row.username_canonical = Set(username.to_owned());
        row.email = Set(email.to_owned());
        row.email_canonical = Set(email.to_owned());
        row.username_skeleton = Set(None);
        row.username_skeleton_lower = Set(None);
        row.username_skeleton_upper = Set(None);
        let inserted = sea_orm::ActiveModelTrait::insert(row, &app.db).await;
        let err = inserted.expect_err("the login-name index refuses the row");
        assert!(
            matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ),
            "{err}"
        );
    }
    assert_eq!(app.users().await.len(), 1);
}
