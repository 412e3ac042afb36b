//! Security events in the audit log: each written in the transaction of what it records,
//! with the client address and request id, never a password, token or hash; and the
//! retention that is the log's only deletion.

use serde_json::{Value, json};

use crate::helpers::{
    GOOD_PASSWORD, TEST_SECRET, TestApp, fresh_client, spawn_app, spawn_app_with,
};

const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { token session { id } } }";

/// A request with an `X-Request-Id`, as `token` when given.
async fn traced(app: &TestApp, token: Option<&str>, id: &str, query: &str, vars: Value) -> Value {
    let mut request = fresh_client()
        .post(app.url())
        .header("x-request-id", id)
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn logins_password_changes_and_ended_sessions_are_audited_with_address_and_request_id() {
    let app = spawn_app().await;
    let (id, first) = app.sign_in("watched").await;
    let user = uuid::Uuid::parse_str(&id).unwrap();
    let login = |password: &'static str, who: &'static str, rid: &'static str| {
        let app = &app;
        async move {
            traced(
                app,
                None,
                rid,
                LOGIN,
                json!({ "i": { "identifier": who, "password": password } }),
            )
            .await
        }
    };
    let wrong = login("not the password at all", "watched", "req-wrong").await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
    let unknown = login("not the password at all", "nobody-at-all", "req-unknown").await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
    let second = login(GOOD_PASSWORD, "watched", "req-ok").await;
    let second_token = second["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_session = second["data"]["login"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let changed = traced(&app, Some(&first), "req-change",
        "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { id } }",
        json!({ "i": { "currentPassword": GOOD_PASSWORD, "newPassword": "a new and long passphrase 7" } })).await;
    assert!(changed["errors"].is_null(), "{changed}");
    let third = login("a new and long passphrase 7", "watched", "req-ok-2").await;
    let third_token = third["data"]["login"]["token"].as_str().unwrap().to_owned();
    let out = traced(
        &app,
        Some(&third_token),
        "req-logout",
        "mutation { logout }",
        json!({}),
    )
    .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let everywhere = traced(
        &app,
        Some(&first),
        "req-everywhere",
        "mutation { logoutEverywhere }",
        json!({}),
    )
    .await;
    assert_eq!(everywhere["data"]["logoutEverywhere"], 1, "{everywhere}");

    let log = app.audit_log().await;
    let about: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .filter(|e| e.target_user_id == Some(user) || e.action == "login.failed")
        .map(|e| {
            (
                e.action.as_str(),
                e.actor_kind.as_str(),
                e.request_id.as_deref(),
            )
        })
        .collect();
    // The first login sent no `X-Request-Id`: the server made one.
    assert!(about[0].2.is_some_and(|id| !id.is_empty()), "{log:#?}");
    assert_eq!(
        about[1..],
        [
            ("login.failed", "anonymous", Some("req-wrong")),
            ("login.failed", "anonymous", Some("req-unknown")),
            ("login.succeeded", "user", Some("req-ok")),
            ("user.password_changed", "user", Some("req-change")),
            ("login.succeeded", "user", Some("req-ok-2")),
            ("session.ended", "user", Some("req-logout")),
            ("user.sessions_ended", "user", Some("req-everywhere")),
        ],
        "{log:#?}"
    );
    // A failed login names the account it tried, if any, never what was typed.
    let failed: Vec<_> = log.iter().filter(|e| e.action == "login.failed").collect();
    assert_eq!(failed[0].target_user_id, Some(user));
    assert_eq!(failed[1].target_user_id, None);
    assert!(log.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
    let everything = format!("{log:?}");
    for secret in [
        GOOD_PASSWORD,
        "not the password at all",
        "nobody-at-all",
        &first,
        &second_token,
    ] {
        assert!(!everything.contains(secret), "{secret} is in the audit log");
    }
    // The password change ended the second session, and says how many it ended.
    let change = log
        .iter()
        .find(|e| e.action == "user.password_changed")
        .unwrap();
    assert_eq!(
        change.detail.as_deref(),
        Some(r#"{"other_sessions_ended":1}"#)
    );
    let _ = second_session;
}

#[tokio::test]
async fn signing_key_rotations_are_audited_and_old_entries_leave_after_the_retention() {
    // The server's own hourly purge is off here: its first run, late on a loaded machine,
    // would take the back-dated entry before the purge this test calls.
    let app = spawn_app_with(|c| c.audit_retention = std::time::Duration::ZERO).await;
    let keys = async |args: &[&str]| {
        let mut all = vec!["--database-url", app.database_url.as_str(), "keys"];
        all.extend_from_slice(args);
        crate::helpers::roster_output(&all, &[("ROSTER_SECRET_KEY", TEST_SECRET)]).await
    };
    let out = keys(&["rotate", "--now"]).await;
    assert!(out.contains("kid") || out.contains("signs"), "{out}");
    let kid = app
        .audit_log()
        .await
        .last()
        .map(|e| e.detail.clone())
        .unwrap()
        .unwrap();
    let kid: Value = serde_json::from_str(&kid).unwrap();
    let kid = kid["kid"].as_str().unwrap().to_owned();
    let out = keys(&["revoke", &kid]).await;
    assert!(out.contains("out of the JWKS"), "{out}");
    let actions: Vec<String> = app
        .audit_log()
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["signing_key.rotated", "signing_key.revoked"]);

    // Retention: an entry past it goes, a newer one stays; a retention beyond the calendar
    // deletes nothing. (Entries are ordered by their UUIDv7 id, which carries the time.)
    use sea_orm::ConnectionTrait;
    let old = chrono::Utc::now() - chrono::Duration::days(400);
    let old_id = uuid::Uuid::from_u128(
        (u128::from(old.timestamp_millis().unsigned_abs()) << 80) | 0x7000_8000_0000_0000_0001,
    );
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "UPDATE audit_log SET at = $1, id = $2 WHERE action = 'signing_key.rotated'",
            [old.into(), old_id.into()],
        ))
        .await
        .unwrap();
    let year = std::time::Duration::from_secs(365 * 86_400);
    assert_eq!(
        roster::audit::purge_older_than(&app.db, std::time::Duration::MAX)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        roster::audit::purge_older_than(&app.db, year)
            .await
            .unwrap(),
        1
    );
    let actions: Vec<String> = app
        .audit_log()
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["signing_key.revoked"]);
}
