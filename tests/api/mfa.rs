//! The second factor over a real socket: enrolment, the login's two steps, replay, recovery
//! codes, the limits of a session waiting for its second step, throttling, expiry, disabling,
//! and secrets sealed at rest. Codes are made by `roster::mfa::totp`, which the RFCs' own test
//! vectors hold (its unit tests); the `pyotp` test checks codes made by another implementation.

use roster::mfa::totp::{self, Params, Secret};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::admin::{as_user, code};
use crate::helpers::{GOOD_PASSWORD, TestApp, per_hour, spawn_app, spawn_app_with};

const START: &str = "mutation { startTotpEnrollment { secret otpauthUri qrSvg } }";
const CONFIRM: &str = "mutation($c: String!) { confirmTotpEnrollment(code: $c) }";
const VERIFY: &str = "mutation($c: String!) { verifySecondFactor(code: $c) {
    token mfaRequired session { aal } user { username } } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) {
    token mfaRequired session { aal } } }";

fn secret_of(enrollment: &Value) -> Secret {
    let text = enrollment["data"]["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{enrollment}"));
    Secret::from_bytes(data_encoding::BASE32_NOPAD.decode(text.as_bytes()).unwrap())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The code of the step `offset` steps from now.
fn code_at(secret: &Secret, offset: i64) -> String {
    totp::code_at(secret, &Params::default(), now() + 30 * offset)
}

async fn login(app: &TestApp, name: &str, password: &str) -> Value {
    app.graphql(
        LOGIN,
        json!({ "i": { "identifier": name, "password": password } }),
    )
    .await
    .body
}

/// Registers `name`, signs in and enrols TOTP: (session token, secret, recovery codes).
async fn enrolled(app: &TestApp, name: &str) -> (String, Secret, Vec<String>) {
    let (_, token) = app.sign_in(name).await;
    let started = as_user(app, Some(&token), START, json!({})).await;
    let secret = secret_of(&started);
    let confirmed = as_user(
        app,
        Some(&token),
        CONFIRM,
        json!({ "c": code_at(&secret, 0) }),
    )
    .await;
    let codes = confirmed["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap_or_else(|| panic!("{confirmed}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (token, secret, codes)
}

#[tokio::test]
async fn enrol_then_sign_in_with_both_steps_where_a_code_works_once() {
    let app = spawn_app().await;
    let (_, token) = app.sign_in("alice").await;
    let other = login(&app, "alice", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let started = as_user(&app, Some(&token), START, json!({})).await;
    let enrollment = &started["data"]["startTotpEnrollment"];
    let uri = enrollment["otpauthUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"));
    assert!(
        uri.starts_with("otpauth://totp/roster:alice%40example%2Ecom?secret="),
        "{uri}"
    );
    assert!(
        enrollment["qrSvg"].as_str().unwrap().contains("<svg"),
        "{started}"
    );
    let secret = secret_of(&started);
    assert_eq!(secret.as_bytes().len(), 20);

    // Not active until confirmed; a wrong code confirms nothing.
    let mfa = "{ mfa { totp recoveryCodesLeft } }";
    assert_eq!(
        as_user(&app, Some(&token), mfa, json!({})).await["data"]["mfa"]["totp"],
        false
    );
    let wrong = as_user(&app, Some(&token), CONFIRM, json!({ "c": "000000" })).await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["fields"][0]["code"], "second_factor_invalid",
        "{wrong}"
    );
    // Kept: the replay below must send this very code (a step boundary may pass meanwhile).
    let enrolment_code = code_at(&secret, 0);
    let confirmed = as_user(&app, Some(&token), CONFIRM, json!({ "c": enrolment_code })).await;
    let codes = confirmed["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap_or_else(|| panic!("{confirmed}"));
    assert_eq!(codes.len(), 10);
    assert_eq!(
        as_user(&app, Some(&token), mfa, json!({})).await["data"]["mfa"],
        json!({ "totp": true, "recoveryCodesLeft": 10 })
    );
    // This session proved the factor (aal2); the other one knew only the password: ended.
    let sessions = as_user(
        &app,
        Some(&token),
        "{ sessions { aal current } }",
        json!({}),
    )
    .await;
    assert_eq!(
        sessions["data"]["sessions"],
        json!([{ "aal": 2, "current": true }]),
        "{sessions}"
    );
    assert_eq!(
        as_user(&app, Some(&other), "{ me { id } }", json!({})).await["data"]["me"],
        Value::Null
    );

    // The password alone now opens a session that waits for the second step.
    let first = login(&app, "alice", GOOD_PASSWORD).await;
    assert_eq!(first["data"]["login"]["mfaRequired"], true, "{first}");
    assert_eq!(first["data"]["login"]["session"]["aal"], 1);
    let waiting = first["data"]["login"]["token"].as_str().unwrap().to_owned();
    let me = as_user(&app, Some(&waiting), "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "alice", "me answers: {me}");
    for query in [
        "{ sessions { id } }",
        "{ mfa { totp } }",
        "mutation { accessToken(audience: \"billing\") { token } }",
        "mutation { logoutEverywhere }",
    ] {
        let answer = as_user(&app, Some(&waiting), query, json!({})).await;
        assert_eq!(code(&answer), "MFA_REQUIRED", "{query}: {answer}");
    }
    let check = crate::helpers::fresh_client()
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(&waiting)
        .send()
        .await
        .unwrap();
    assert_eq!(
        check.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "nobody yet"
    );

    // The code confirmed at enrolment does not open it (used); the next step's does, with a
    // new token; the one that knew only the password stops working.
    let replay = as_user(&app, Some(&waiting), VERIFY, json!({ "c": enrolment_code })).await;
    assert_eq!(
        replay["errors"][0]["extensions"]["fields"][0]["code"], "second_factor_invalid",
        "{replay}"
    );
    let done = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await;
    let verified = &done["data"]["verifySecondFactor"];
    assert_eq!(verified["session"]["aal"], 2, "{done}");
    assert_eq!(verified["mfaRequired"], false);
    let full = verified["token"].as_str().unwrap().to_owned();
    assert_ne!(full, waiting);
    assert_eq!(
        as_user(&app, Some(&waiting), "{ me { id } }", json!({})).await["data"]["me"],
        Value::Null
    );
    let check = crate::helpers::fresh_client()
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(&full)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.headers()["x-roster-aal"], "2");
    // The access token says so too.
    let minted = as_user(
        &app,
        Some(&full),
        "mutation { accessToken(audience: \"billing\") { token } }",
        json!({}),
    )
    .await;
    let jwt = minted["data"]["accessToken"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{minted}"));
    let payload: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(jwt.split('.').nth(1).unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (payload["aal"].clone(), payload["amr"].clone()),
        (json!(2), json!(["pwd", "otp"]))
    );

    // That code again, on the next login: refused. A recovery code works once.
    let waiting = login(&app, "alice", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await;
    assert_eq!(
        replay["errors"][0]["extensions"]["fields"][0]["code"], "second_factor_invalid",
        "{replay}"
    );
    let recovery = codes[3].as_str().unwrap().to_lowercase().replace('-', " ");
    let done = as_user(&app, Some(&waiting), VERIFY, json!({ "c": recovery })).await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "typed loosely: {done}"
    );
    let waiting = login(&app, "alice", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = as_user(&app, Some(&waiting), VERIFY, json!({ "c": codes[3] })).await;
    assert_eq!(
        again["errors"][0]["extensions"]["fields"][0]["code"], "second_factor_invalid",
        "{again}"
    );
    let full = as_user(&app, Some(&waiting), VERIFY, json!({ "c": codes[4] })).await["data"]["verifySecondFactor"]["token"]
        .as_str().unwrap().to_owned();
    assert_eq!(
        as_user(&app, Some(&full), mfa, json!({})).await["data"]["mfa"]["recoveryCodesLeft"],
        8
    );
    let actions: Vec<String> = app
        .audit_log()
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"mfa.totp_enabled".to_owned()),
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "login.second_factor")
            .count(),
        3,
        "{actions:?}"
    );
}

#[tokio::test]
async fn the_second_step_is_throttled_expires_and_cannot_be_skipped() {
    let app = spawn_app_with(|c| {
        c.sessions.login_failure_limit = per_hour(3);
        c.sessions.mfa_challenge_ttl = std::time::Duration::from_secs(2);
    })
    .await;
    let (_, secret, _) = enrolled(&app, "bob").await;
    let waiting = login(&app, "bob", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A session that has its second step cannot take it again, nor skip it elsewhere.
    for _ in 0..3 {
        let wrong = as_user(&app, Some(&waiting), VERIFY, json!({ "c": "123456" })).await;
        assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    }
    let throttled = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await;
    assert_eq!(
        code(&throttled),
        "RATE_LIMITED",
        "even the right code waits: {throttled}"
    );
    // The waiting session expires within --mfa-challenge-ttl, used or not.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let me = as_user(&app, Some(&waiting), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null, "{me}");
    // A session at aal2 is not waiting for anything.
    let (full, _, _) = enrolled(&app, "carol").await;
    let answer = as_user(&app, Some(&full), VERIFY, json!({ "c": "123456" })).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
}

#[tokio::test]
async fn regenerating_and_disabling_need_the_second_factor_and_the_password() {
    let app = spawn_app().await;
    let (_, plain) = app.sign_in("plain").await;
    let regenerate = "mutation { regenerateRecoveryCodes }";
    let disable = "mutation($p: String!) { disableTotp(password: $p) }";
    assert_eq!(
        code(&as_user(&app, Some(&plain), regenerate, json!({})).await),
        "FORBIDDEN"
    );

    let (token, _, old) = enrolled(&app, "dora").await;
    let fresh = as_user(&app, Some(&token), regenerate, json!({})).await;
    let fresh: Vec<String> = fresh["data"]["regenerateRecoveryCodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{fresh}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let waiting = login(&app, "dora", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale = as_user(&app, Some(&waiting), VERIFY, json!({ "c": old[0] })).await;
    assert_eq!(code(&stale), "BAD_USER_INPUT", "the old set ended: {stale}");

    let wrong = as_user(
        &app,
        Some(&token),
        disable,
        json!({ "p": "not the password at all" }),
    )
    .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["fields"][0]["field"], "password",
        "{wrong}"
    );
    let done = as_user(&app, Some(&token), disable, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(done["data"]["disableTotp"], true, "{done}");
    let next = login(&app, "dora", GOOD_PASSWORD).await;
    assert_eq!(next["data"]["login"]["mfaRequired"], false, "{next}");
}

#[tokio::test]
async fn a_database_dump_alone_holds_no_usable_second_factor_secret() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_app().await;
    let (_, secret, codes) = enrolled(&app, "erin").await;
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT secret FROM totp_devices",
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get_by_index(0).unwrap();
    assert!(stored.starts_with("sealed1:"), "{stored}");
    let base32 = secret.base32();
    assert!(!stored.contains(base32.as_str()));
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT code_mac FROM recovery_codes",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    let dump: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    for code in &codes {
        let bare = code.replace('-', "");
        assert!(dump.iter().all(|m| !m.contains(&bare) && m.len() == 64));
    }
}

#[tokio::test]
#[ignore = "needs ROSTER_TEST_DJANGO_PYTHON with pyotp"]
async fn codes_made_by_pyotp_are_accepted() {
    let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect("ROSTER_TEST_DJANGO_PYTHON");
    let app = spawn_app().await;
    let (_, token) = app.sign_in("pyotp_user").await;
    let started = as_user(&app, Some(&token), START, json!({})).await;
    let uri = started["data"]["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap()
        .to_owned();
    // pyotp reads the same otpauth URI an authenticator app scans.
    let pyotp = |offset: i64| {
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, time, pyotp; t = pyotp.parse_uri(sys.argv[1]); \
                 print(t.at(int(time.time()) + int(sys.argv[2])))",
                &uri,
                &(30 * offset).to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let confirmed = as_user(&app, Some(&token), CONFIRM, json!({ "c": pyotp(0) })).await;
    assert_eq!(
        confirmed["data"]["confirmTotpEnrollment"]
            .as_array()
            .map(Vec::len),
        Some(10),
        "{confirmed}"
    );
    let waiting = login(&app, "pyotp_user", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = as_user(&app, Some(&waiting), VERIFY, json!({ "c": pyotp(1) })).await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
}

#[tokio::test]
async fn an_operator_resets_a_lost_second_factor() {
    let app = spawn_app().await;
    let (_, _, _) = enrolled(&app, "frank").await;
    let (boss_id, boss) = app.sign_in("boss").await;
    crate::admin::make_staff(&app, &boss_id, true).await;
    let frank = app
        .users()
        .await
        .into_iter()
        .find(|u| u.username == "frank")
        .unwrap();
    let reset = "mutation($id: ID!) { resetSecondFactor(id: $id) }";
    // Not on oneself; a plain user is anyone's to reset with roster.change_user.
    let own = as_user(&app, Some(&boss), reset, json!({ "id": boss_id })).await;
    assert_eq!(code(&own), "FORBIDDEN", "{own}");
    let done = as_user(
        &app,
        Some(&boss),
        reset,
        json!({ "id": frank.id.to_string() }),
    )
    .await;
    assert_eq!(done["data"]["resetSecondFactor"], true, "{done}");
    // Frank is told (the outbox row is written with the reset).
    let notices = roster::entity::outbox::Entity::find()
        .filter(roster::entity::outbox::Column::UserId.eq(frank.id))
        .filter(roster::entity::outbox::Column::Kind.eq("second_factor_removed"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1);
    let next = login(&app, "frank", GOOD_PASSWORD).await;
    assert_eq!(next["data"]["login"]["mfaRequired"], false, "{next}");
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "users",
            "reset-mfa",
            "frank",
        ],
        &[],
    )
    .await;
    assert!(out.contains("had no second factor"), "{out}");
    let log: Vec<String> = app
        .audit_log()
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        log.iter()
            .filter(|a| *a == "user.second_factor_reset")
            .count(),
        2,
        "{log:?}"
    );
}

#[tokio::test]
async fn staff_need_a_second_factor_for_the_admin_api_by_default() {
    let app = spawn_app_with(|c| c.sessions.require_mfa_for_staff = true).await;
    let (id, token) = app.sign_in("staffer").await;
    crate::admin::make_staff(&app, &id, true).await;
    let users = "{ users { edges { node { username } } } }";
    let answer = as_user(&app, Some(&token), users, json!({})).await;
    assert_eq!(code(&answer), "MFA_REQUIRED", "a password alone: {answer}");
    // Enrolling is open to them, and raises this session to aal2.
    let started = as_user(&app, Some(&token), START, json!({})).await;
    let secret = secret_of(&started);
    let confirmed = as_user(
        &app,
        Some(&token),
        CONFIRM,
        json!({ "c": code_at(&secret, 0) }),
    )
    .await;
    assert!(confirmed["errors"].is_null(), "{confirmed}");
    let answer = as_user(&app, Some(&token), users, json!({})).await;
    assert!(answer["errors"].is_null(), "at aal2: {answer}");
    // A new login: the password, then the code.
    let waiting = login(&app, "staffer", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let full = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await["data"]["verifySecondFactor"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(as_user(&app, Some(&full), users, json!({})).await["errors"].is_null());
    // A script's key is no session: the rule is not its.
    let key = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "apikey",
            "create",
            "--name",
            "s",
            "--permission",
            "roster.view_user",
        ],
        &[],
    )
    .await;
    let key = key.lines().next().unwrap().to_owned();
    assert!(as_user(&app, Some(&key), users, json!({})).await["errors"].is_null());
}

#[tokio::test]
async fn the_user_is_told_by_email_when_a_factor_is_added_removed_or_a_recovery_code_is_used() {
    let smtp = crate::mailbox::SmtpServer::start().await;
    let app = crate::helpers::spawn_app_with_smtp(&smtp).await;
    let wait = std::time::Duration::from_secs(15);
    let subjects = |mail: &[Value]| -> Vec<String> {
        mail.iter()
            .map(|m| m["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    // Registering sends the confirmation link; confirming a factor, a notice.
    let (_, secret, codes) = enrolled(&app, "nora").await;
    let mail = smtp.wait_for(2, wait).await;
    assert_eq!(
        subjects(&mail)[1],
        "A second factor was added to your account"
    );
    assert_eq!(mail[1]["rcpt_tos"], json!(["nora@example.com"]));
    // A notice carries no secret, no code and no link.
    let text = mail[1]["text"].as_str().unwrap();
    assert!(!text.contains(secret.base32().as_str()) && !text.contains("token="));
    assert!(codes.iter().all(|c| !text.contains(c.as_str())));

    // A recovery code completing a login: a notice.
    let waiting = login(&app, "nora", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = as_user(&app, Some(&waiting), VERIFY, json!({ "c": codes[0] })).await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
    let mail = smtp.wait_for(3, wait).await;
    assert_eq!(subjects(&mail)[2], "A recovery code was used to sign in");

    // A login with the phone's code: none. Disabling the factor: a notice.
    let waiting = login(&app, "nora", GOOD_PASSWORD).await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await;
    let token = done["data"]["verifySecondFactor"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"))
        .to_owned();
    let disable = "mutation($p: String!) { disableTotp(password: $p) }";
    let off = as_user(&app, Some(&token), disable, json!({ "p": GOOD_PASSWORD })).await;
    assert_eq!(off["data"]["disableTotp"], true, "{off}");
    let mail = smtp.wait_for(4, wait).await;
    assert_eq!(
        subjects(&mail)[3],
        "The second factor of your account was removed"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 4, "{:?}", subjects(&smtp.messages()));
}

#[tokio::test]
async fn a_password_reset_keeps_the_second_factor_and_signs_nobody_in_past_it() {
    let smtp = crate::mailbox::SmtpServer::start().await;
    let app = crate::helpers::spawn_app_with_smtp(&smtp).await;
    let wait = std::time::Duration::from_secs(15);
    let (_, secret, _) = enrolled(&app, "rita").await;
    let asked = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": "rita@example.com" }),
        )
        .await;
    assert_eq!(
        asked.body["data"]["requestPasswordReset"], true,
        "{}",
        asked.body
    );
    // The confirmation link, the factor's notice, then the reset link.
    let mail = smtp.wait_for(3, wait).await;
    let link = mail
        .iter()
        .find(|m| m["subject"] == "Reset your password")
        .unwrap_or_else(|| panic!("{mail:?}"));
    let token = crate::mailbox::link_token(link, "reset-password");
    let new_password = "a brand new passphrase 7";
    let reset = app
        .graphql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
            json!({ "i": { "token": token, "newPassword": new_password } }),
        )
        .await;
    assert_eq!(reset.body["data"]["resetPassword"], true, "{}", reset.body);
    // The new password opens only the first step; the factor is still asked for.
    let next = login(&app, "rita", new_password).await;
    assert_eq!(next["data"]["login"]["mfaRequired"], true, "{next}");
    assert_eq!(next["data"]["login"]["session"]["aal"], 1, "{next}");
    let waiting = next["data"]["login"]["token"].as_str().unwrap().to_owned();
    let me = as_user(&app, Some(&waiting), "{ sessions { id } }", json!({})).await;
    assert_eq!(code(&me), "MFA_REQUIRED", "{me}");
    let done = as_user(
        &app,
        Some(&waiting),
        VERIFY,
        json!({ "c": code_at(&secret, 1) }),
    )
    .await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
}

/// What a login writes beside its session, on both databases (on SQLite all of it goes in
/// one round trip with the insert, `Sessions::create_for_login_with`; PostgreSQL asks for
/// the second factor after the insert): a user without a factor gets `login.succeeded` and a
/// `session.created` event naming the session; a user with one gets a session that waits for
/// the second step and expires with the challenge, `login.password_verified`, and no event.
#[tokio::test]
async fn a_login_writes_its_audit_entry_and_event_with_its_session() {
    use roster::entity::{session, webhook_delivery};
    let app = crate::webhooks::spawn_hooked_app().await;
    // Refused at once: deliveries stay in the table, pending their retry.
    crate::webhooks::add(&app.database_url, "http://127.0.0.1:9/", "session.created").await;
    let newest_session = |user: String| {
        let db = app.db.clone();
        async move {
            session::Entity::find()
                .filter(session::Column::UserId.eq(uuid::Uuid::parse_str(&user).unwrap()))
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .max_by_key(|s| (s.created_at, s.id))
                .unwrap()
        }
    };
    let events_about = |session: uuid::Uuid| {
        let db = app.db.clone();
        async move {
            webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::EventType.eq("session.created"))
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .filter(|d| d.data.contains(&session.to_string()))
                .count()
        }
    };
    let entry_about = |session: uuid::Uuid| {
        let db = app.db.clone();
        async move {
            let (entries, _) = roster::audit::list(&db, None, None, 100, None)
                .await
                .unwrap();
            let mine: Vec<_> = entries
                .into_iter()
                .filter(|e| {
                    e.detail
                        .as_deref()
                        .is_some_and(|d| d.contains(&session.to_string()))
                })
                .collect();
            assert_eq!(mine.len(), 1, "{mine:?}");
            mine[0].clone()
        }
    };

    let (noah, _) = app.sign_in("noah").await;
    let plain = newest_session(noah.clone()).await;
    assert!(!plain.mfa_pending);
    assert!(plain.expires_at > chrono::Utc::now() + chrono::Duration::days(1));
    let entry = entry_about(plain.id).await;
    assert_eq!(
        (entry.action.as_str(), entry.actor_kind.as_str()),
        ("login.succeeded", "user")
    );
    assert_eq!(
        entry.target_user_id.map(|u| u.to_string()),
        Some(noah.clone())
    );
    assert_eq!(events_about(plain.id).await, 1);

    enrolled(&app, "maya").await;
    let answer = login(&app, "maya", GOOD_PASSWORD).await;
    assert_eq!(answer["data"]["login"]["mfaRequired"], true, "{answer}");
    let maya = roster::entity::user::Entity::find()
        .filter(roster::entity::user::Column::Username.eq("maya"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    let waiting = newest_session(maya.to_string()).await;
    assert!(waiting.mfa_pending);
    let challenge = waiting.expires_at - waiting.created_at;
    assert_eq!(
        challenge,
        chrono::Duration::minutes(5),
        "the challenge's expiry"
    );
    let entry = entry_about(waiting.id).await;
    assert_eq!(entry.action, "login.password_verified");
    assert_eq!(
        events_about(waiting.id).await,
        0,
        "announced after the second step"
    );
}
