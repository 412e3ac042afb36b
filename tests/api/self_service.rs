//! Self-service over a real socket: `myData` holds everything about the caller and no secret;
//! `deleteAccount` takes everything keyed to the account, keeps the audit entries by id,
//! says goodbye by email and frees the names.

use std::time::Duration;

use roster::mfa::totp::{self, Params, Secret};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::admin::{as_user, code, make_staff};
use crate::helpers::{GOOD_PASSWORD, TestApp, spawn_app, spawn_app_with_smtp};
use crate::mailbox::SmtpServer;

const MY_DATA: &str = "{ myData }";
const DELETE: &str = "mutation($p: String!) { deleteAccount(password: $p) }";

/// Enrols TOTP for the session `token`: (secret, recovery codes). The session becomes aal2.
async fn enrol(app: &TestApp, token: &str) -> (Secret, Vec<String>) {
    let started = as_user(
        app,
        Some(token),
        "mutation { startTotpEnrollment { secret } }",
        json!({}),
    )
    .await;
    let text = started["data"]["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"));
    let secret = Secret::from_bytes(data_encoding::BASE32_NOPAD.decode(text.as_bytes()).unwrap());
    let code = totp::code_at(&secret, &Params::default(), chrono::Utc::now().timestamp());
    let done = as_user(
        app,
        Some(token),
        "mutation($c: String!) { confirmTotpEnrollment(code: $c) }",
        json!({ "c": code }),
    )
    .await;
    let codes = done["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap_or_else(|| panic!("{done}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

#[tokio::test]
async fn my_data_holds_everything_about_the_caller_and_no_secret() {
    let app = spawn_app().await;
    let (id, token) = app.sign_in("uma").await;
    let (secret, codes) = enrol(&app, &token).await;
    assert_eq!(
        code(&as_user(&app, None, MY_DATA, json!({})).await),
        "UNAUTHENTICATED"
    );

    let answer = as_user(&app, Some(&token), MY_DATA, json!({})).await;
    let data = &answer["data"]["myData"];
    assert_eq!(data["account"]["id"], id, "{answer}");
    assert_eq!(data["account"]["username"], "uma");
    assert_eq!(data["account"]["email"], "uma@example.com");
    assert_eq!(data["account"]["passwordHashFormat"], "argon2id");
    let sessions = data["sessions"].as_array().unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s["current"] == true && s["aal"] == 2),
        "{sessions:?}"
    );
    assert_eq!(data["secondFactor"]["totp"], true);
    assert_eq!(data["secondFactor"]["recoveryCodesLeft"], 10);
    let actions: Vec<&str> = data["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"login.succeeded"), "{actions:?}");
    assert!(actions.contains(&"mfa.totp_enabled"), "{actions:?}");
    assert!(
        data["emails"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "verify_email" && e["to"] == "uma@example.com"),
        "{data}"
    );

    // Nothing secret: not the hash, the session token or its digest, the TOTP secret, a
    // recovery code, an email link's token digest.
    let text = answer.to_string();
    let user = app
        .users()
        .await
        .into_iter()
        .find(|u| u.username == "uma")
        .unwrap();
    let digests: Vec<String> = roster::entity::session::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.token_hash)
        .collect();
    let mut secrets = vec![
        user.password_hash.clone(),
        token.clone(),
        secret.base32().to_string(),
    ];
    secrets.extend(digests);
    secrets.extend(codes);
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret is in myData: {s}");
    }
    assert!(!text.contains("$argon2"), "{text}");
}

#[tokio::test]
async fn deleting_an_account_takes_everything_keyed_to_it_and_frees_the_names() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (id, token) = app.sign_in("vera").await;
    // Her address is verified: the goodbye goes only to an address the account proved.
    let link = crate::mailbox::link_token(
        &smtp.wait_for(1, Duration::from_secs(15)).await[0],
        "verify-email",
    );
    let verified = app
        .graphql(
            "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }",
            json!({ "t": link }),
        )
        .await;
    assert_eq!(verified.body["data"]["verifyEmail"]["emailVerified"], true);
    let (_, _) = enrol(&app, &token).await;
    // A session waiting for its second step cannot delete the account.
    let waiting = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token mfaRequired } }",
            json!({ "i": { "identifier": "vera", "password": GOOD_PASSWORD } }),
        )
        .await
        .body["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = as_user(&app, Some(&waiting), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(code(&refused), "MFA_REQUIRED", "{refused}");
    // The password is asked for again.
    let wrong = as_user(
        &app,
        Some(&token),
        DELETE,
        json!({ "p": "not the password at all" }),
    )
    .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["fields"][0]["field"], "password",
        "{wrong}"
    );

    let done = as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(done["data"]["deleteAccount"], true, "{done}");
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    // Everything keyed to the account is gone.
    use roster::entity::{email_token, recovery_code, session, totp_device, user};
    assert!(
        user::Entity::find_by_id(uid)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );
    let count = |n: u64, what: &str| assert_eq!(n, 0, "{what} left");
    count(
        session::Entity::find()
            .filter(session::Column::UserId.eq(uid))
            .count(&app.db)
            .await
            .unwrap(),
        "sessions",
    );
    count(
        totp_device::Entity::find()
            .filter(totp_device::Column::UserId.eq(uid))
            .count(&app.db)
            .await
            .unwrap(),
        "TOTP devices",
    );
    count(
        recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(uid))
            .count(&app.db)
            .await
            .unwrap(),
        "recovery codes",
    );
    count(
        email_token::Entity::find()
            .filter(email_token::Column::UserId.eq(uid))
            .count(&app.db)
            .await
            .unwrap(),
        "email links",
    );
    // The audit log keeps its entries about the account, by id.
    let kept = app.audit_actions_about(uid).await;
    assert!(kept.iter().any(|a| a == "user.deleted"), "{kept:?}");
    assert!(kept.iter().any(|a| a == "mfa.totp_enabled"), "{kept:?}");
    // The old token is nobody; the password opens nothing.
    let me = as_user(&app, Some(&token), "{ me { username } }", json!({})).await;
    assert!(me["data"]["me"].is_null(), "{me}");
    let login = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": "vera", "password": GOOD_PASSWORD } }),
        )
        .await;
    assert_eq!(login.code(), "INVALID_CREDENTIALS", "{}", login.body);
    // A goodbye reaches the account's address; no link in it.
    let started = std::time::Instant::now();
    let goodbye = loop {
        let mail = smtp.messages();
        if let Some(m) = mail
            .iter()
            .find(|m| m["subject"] == "Your account was deleted")
        {
            break m.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{mail:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(goodbye["rcpt_tos"], json!(["vera@example.com"]));
    assert!(!goodbye["text"].as_str().unwrap().contains("token="));
    // The names are free again.
    let again = app
        .register("vera", "vera@example.com", GOOD_PASSWORD)
        .await;
    assert!(again.body["errors"].is_null(), "{}", again.body);
    // An account whose address was never verified leaves without a goodbye to it (a stranger
    // may have registered with someone else's address).
    let (_, stranger) = app.sign_in("yusuf").await;
    let done = as_user(&app, Some(&stranger), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(done["data"]["deleteAccount"], true, "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let goodbyes = smtp
        .messages()
        .iter()
        .filter(|m| m["subject"] == "Your account was deleted")
        .count();
    assert_eq!(goodbyes, 1);
}

#[tokio::test]
async fn the_last_superuser_cannot_delete_themselves_even_two_at_once() {
    let app = spawn_app().await;
    let (id, token) = app.sign_in("wanda").await;
    make_staff(&app, &id, true).await;
    // Staff need a second factor only for the admin API (off in the tests' configuration).
    let refused = as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    // Two superusers deleting themselves at once: one goes, the other stays (the rule is
    // taken in turns, as the admin changes take it).
    let (other, xena) = app.sign_in("xena").await;
    make_staff(&app, &other, true).await;
    let (a, b) = tokio::join!(
        as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })),
        as_user(&app, Some(&xena), DELETE, json!({ "p": GOOD_PASSWORD })),
    );
    let gone = [&a, &b]
        .iter()
        .filter(|r| r["data"]["deleteAccount"] == true)
        .count();
    assert_eq!(gone, 1, "{a} {b}");
    let stayed = if a["data"]["deleteAccount"] == true {
        &b
    } else {
        &a
    };
    assert_eq!(code(stayed), "FORBIDDEN", "{stayed}");
}

#[tokio::test]
async fn a_deletion_racing_logins_leaves_no_session_and_no_error_and_the_events_agree() {
    let app = crate::webhooks::spawn_hooked_app().await;
    let receiver = crate::webhooks::Receiver::start().await;
    crate::webhooks::add(
        &app.database_url,
        &receiver.url(),
        "session.created,user.deleted",
    )
    .await;
    let login = "mutation($i: LoginInput!) { login(input: $i) { token } }";
    let mut deleted = Vec::new();
    for round in 0..4 {
        let name = format!("racer{round}");
        let (id, token) = app.sign_in(&name).await;
        let credentials = json!({ "i": { "identifier": name, "password": GOOD_PASSWORD } });
        let (gone, a, b, c) = tokio::join!(
            as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })),
            as_user(&app, None, login, credentials.clone()),
            as_user(&app, None, login, credentials.clone()),
            as_user(&app, None, login, credentials.clone()),
        );
        assert_eq!(gone["data"]["deleteAccount"], true, "{gone}");
        // Each login either won the race (a session, ended with the account) or found no
        // account: never an internal error.
        for answer in [&a, &b, &c] {
            assert!(
                answer["data"]["login"]["token"].is_string()
                    || code(answer) == "INVALID_CREDENTIALS",
                "{answer}"
            );
        }
        let sessions = roster::entity::session::Entity::find()
            .filter(roster::entity::session::Column::UserId.eq(uuid::Uuid::parse_str(&id).unwrap()))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(sessions, 0, "no session outlives its account");
        deleted.push(id);
    }
    // Whatever the interleaving, a user's session.created events come before user.deleted,
    // and user.deleted is the last event of each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = receiver.seen();
    for id in &deleted {
        let events: Vec<&str> = seen
            .iter()
            .filter(|s| s.user() == id)
            .map(|s| s.event())
            .collect();
        assert_eq!(events.last(), Some(&"user.deleted"), "{events:?}");
        assert_eq!(events.iter().filter(|e| **e == "user.deleted").count(), 1);
    }
}

#[tokio::test]
async fn under_a_deletion_grace_the_account_closes_a_sign_in_reopens_it_and_the_end_deletes_it() {
    use roster::entity::pending_deletion;
    let smtp = SmtpServer::start().await;
    let smtp_url = smtp.url();
    let app = crate::helpers::spawn_app_with(move |c| {
        c.mail.smtp_url = Some(roster::config::SmtpUrl(smtp_url));
        c.mail.mail_poll_interval = Duration::from_millis(100);
        c.mail.mail_address_limit = roster::config::RateLimit::Off;
        c.deletion_grace = Duration::from_secs(7 * 86_400);
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_poll_interval = Duration::from_secs(1);
    })
    .await;
    let receiver = crate::webhooks::Receiver::start().await;
    crate::webhooks::add(
        &app.database_url,
        &receiver.url(),
        "user.deactivated,user.reactivated,user.deleted",
    )
    .await;
    let login = "mutation($i: LoginInput!) { login(input: $i) { token } }";
    let creds =
        |name: &str, password: &str| json!({ "i": { "identifier": name, "password": password } });

    // Ana, whose address is verified, closes her account.
    let (ana, token) = app.sign_in("ana").await;
    let link = crate::mailbox::link_token(
        &smtp.wait_for(1, Duration::from_secs(15)).await[0],
        "verify-email",
    );
    app.graphql(
        "mutation($t: String!) { verifyEmail(token: $t) { id } }",
        json!({ "t": link }),
    )
    .await;
    let closed = as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(closed["data"]["deleteAccount"], true, "{closed}");
    // Closed, not gone: deactivated, its sessions ended, the deletion noted a week out.
    let ana_id = uuid::Uuid::parse_str(&ana).unwrap();
    let row = roster::entity::user::Entity::find_by_id(ana_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.is_active);
    assert_eq!(
        code(&as_user(&app, Some(&token), "mutation { logout }", json!({})).await),
        "UNAUTHENTICATED"
    );
    let pending = pending_deletion::Entity::find_by_id(ana_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let days = (pending.delete_after - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "{pending:?}");
    let notice = smtp.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(notice[1]["subject"], "Your account will be deleted");
    assert!(
        notice[1]["text"]
            .as_str()
            .unwrap()
            .contains("deleted in 7 days"),
        "{}",
        notice[1]
    );
    // Nothing is due yet.
    assert_eq!(
        roster::accounts::complete_due_deletions(&app.db, &roster::outbox::Outbox::new())
            .await
            .unwrap(),
        0
    );

    // A wrong password reopens nothing; hers does, and the sign-in goes on.
    assert_eq!(
        code(&as_user(&app, None, login, creds("ana", "not the password at all")).await),
        "INVALID_CREDENTIALS"
    );
    let back = as_user(&app, None, login, creds("ana", GOOD_PASSWORD)).await;
    assert!(back["data"]["login"]["token"].is_string(), "{back}");
    let row = roster::entity::user::Entity::find_by_id(ana_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.is_active);
    assert!(
        pending_deletion::Entity::find_by_id(ana_id)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );
    let actions = app.audit_actions_about(ana_id).await;
    for action in ["user.deletion_scheduled", "user.deletion_cancelled"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // Ben closes his; when the grace ends, the housekeeping deletes it as deleteAccount would.
    let (ben, ben_token) = app.sign_in("ben").await;
    let ben_id = uuid::Uuid::parse_str(&ben).unwrap();
    as_user(
        &app,
        Some(&ben_token),
        DELETE,
        json!({ "p": GOOD_PASSWORD }),
    )
    .await;
    crate::admin::sql(
        &app,
        "UPDATE pending_deletions SET delete_after = $1 WHERE user_id = $2",
        vec![
            (chrono::Utc::now() - chrono::Duration::seconds(1)).into(),
            ben_id.into(),
        ],
    )
    .await;
    // Past the grace, his password reopens nothing.
    assert_eq!(
        code(&as_user(&app, None, login, creds("ben", GOOD_PASSWORD)).await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        roster::accounts::complete_due_deletions(&app.db, &roster::outbox::Outbox::new())
            .await
            .unwrap(),
        1
    );
    assert!(
        roster::entity::user::Entity::find_by_id(ben_id)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.audit_actions_about(ben_id)
            .await
            .iter()
            .any(|a| a == "user.deleted")
    );
    // The name is free again.
    assert!(
        app.register("ben", "ben.again@example.com", GOOD_PASSWORD)
            .await
            .body["data"]["register"]["id"]
            .is_string()
    );

    // The webhooks saw each step, in order.
    let seen = receiver.wait_for(4, Duration::from_secs(15)).await;
    let of = |id: &str| {
        seen.iter()
            .filter(|s| s.user() == id)
            .map(|s| (s.event().to_owned(), s.body["data"].clone()))
            .collect::<Vec<_>>()
    };
    let ana_events = of(&ana);
    assert_eq!(
        ana_events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["user.deactivated", "user.reactivated"]
    );
    assert!(ana_events[0].1["deletion_scheduled_for"].is_string());
    assert_eq!(ana_events[1].1["deletion_cancelled"], true);
    let ben_events: Vec<String> = of(&ben).into_iter().map(|e| e.0).collect();
    assert_eq!(ben_events, ["user.deactivated", "user.deleted"]);
}

#[tokio::test]
async fn a_closed_account_with_a_second_factor_reopens_only_with_it_and_an_operator_cannot_overrule_its_owner()
 {
    use roster::entity::pending_deletion;
    let app = crate::helpers::spawn_app_with(|c| {
        c.deletion_grace = Duration::from_secs(86_400);
    })
    .await;
    let login = "mutation($i: LoginInput!) { login(input: $i) { token mfaRequired } }";
    let creds = |name: &str| json!({ "i": { "identifier": name, "password": GOOD_PASSWORD } });
    let pending = |id: uuid::Uuid| {
        let db = app.db.clone();
        async move {
            pending_deletion::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
        }
    };

    // Cora has a second factor and closes her account with it.
    let (cora, token) = app.sign_in("cora").await;
    let cora_id = uuid::Uuid::parse_str(&cora).unwrap();
    // (The code of this time step was spent on the enrolment: a recovery code completes the
    // second step.)
    let (_, recovery) = enrol(&app, &token).await;
    let closed = as_user(&app, Some(&token), DELETE, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(closed["data"]["deleteAccount"], true, "{closed}");
    // Her password alone opens the account for the second step, and no more: the deletion
    // still stands, and happens if the step never comes.
    let half = as_user(&app, None, login, creds("cora")).await;
    assert_eq!(half["data"]["login"]["mfaRequired"], true, "{half}");
    assert!(
        pending(cora_id).await.is_some(),
        "the password alone cancels nothing"
    );
    let waiting = half["data"]["login"]["token"].as_str().unwrap().to_owned();
    let code_now = recovery[0].clone();
    let done = as_user(
        &app,
        Some(&waiting),
        "mutation($c: String!) { verifySecondFactor(code: $c) { token } }",
        json!({ "c": code_now }),
    )
    .await;
    assert!(
        done["data"]["verifySecondFactor"]["token"].is_string(),
        "{done}"
    );
    assert!(
        pending(cora_id).await.is_none(),
        "the second step cancels the deletion"
    );
    assert!(
        app.audit_actions_about(cora_id)
            .await
            .iter()
            .any(|a| a == "user.deletion_cancelled")
    );

    // Dan's password opened his account for a second step he never took: the grace ends,
    // and the account goes.
    let (dan, dan_token) = app.sign_in("dan").await;
    let dan_id = uuid::Uuid::parse_str(&dan).unwrap();
    enrol(&app, &dan_token).await;
    as_user(
        &app,
        Some(&dan_token),
        DELETE,
        json!({ "p": GOOD_PASSWORD }),
    )
    .await;
    as_user(&app, None, login, creds("dan")).await;
    crate::admin::sql(
        &app,
        "UPDATE pending_deletions SET delete_after = $1 WHERE user_id = $2",
        vec![
            (chrono::Utc::now() - chrono::Duration::seconds(1)).into(),
            dan_id.into(),
        ],
    )
    .await;
    let outbox = roster::outbox::Outbox::new();
    assert_eq!(
        roster::accounts::complete_due_deletions(&app.db, &outbox)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        roster::accounts::complete_due_deletions(&app.db, &outbox)
            .await
            .unwrap(),
        0,
        "deleted once"
    );
    assert!(
        roster::entity::user::Entity::find_by_id(dan_id)
            .one(&app.db)
            .await
            .unwrap()
            .is_none()
    );

    // Eve closes hers. An operator cannot reactivate it over her; an operator's
    // deactivation holds it closed, so that her password no longer reopens it.
    let (eve, eve_token) = app.sign_in("eve").await;
    let eve_id = uuid::Uuid::parse_str(&eve).unwrap();
    as_user(
        &app,
        Some(&eve_token),
        DELETE,
        json!({ "p": GOOD_PASSWORD }),
    )
    .await;
    let users = |verb: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["users", verb, "eve"])
            .env("DATABASE_URL", &app.database_url)
            .env("ROSTER_SECRET_KEY", crate::helpers::TEST_SECRET)
            .output()
    };
    let reactivate = users("reactivate").await.unwrap();
    assert!(!reactivate.status.success());
    assert!(
        String::from_utf8_lossy(&reactivate.stderr).contains("only its owner can reopen it"),
        "{reactivate:?}"
    );
    assert!(users("deactivate").await.unwrap().status.success());
    assert!(pending(eve_id).await.unwrap().held);
    assert_eq!(
        code(&as_user(&app, None, login, creds("eve")).await),
        "INVALID_CREDENTIALS"
    );
    assert!(
        app.audit_actions_about(eve_id)
            .await
            .iter()
            .any(|a| a == "user.deletion_held")
    );
}
