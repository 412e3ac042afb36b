//! Changing the account's address over a real socket, with a real SMTP server: the old address
//! keeps working until the new one is confirmed, the old one is told, a taken address answers
//! the same and gets a notice instead of a link, two confirmations racing for one address
//! cannot both win, and links mailed to the old address stop working.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{GOOD_PASSWORD, TestApp, spawn_app_with_smtp};
use crate::mailbox::{SmtpServer, link_token};

const REQUEST: &str = "mutation($i: RequestEmailChangeInput!) { requestEmailChange(input: $i) }";
const CONFIRM: &str =
    "mutation($t: String!) { confirmEmailChange(token: $t) { email emailVerified } }";
const WAIT: Duration = Duration::from_secs(15);

async fn call(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    crate::admin::as_user(app, token, query, variables).await
}

async fn login(app: &TestApp, identifier: &str) -> Value {
    app.graphql(
        "mutation($i: LoginInput!) { login(input: $i) { token user { email } } }",
        json!({ "i": { "identifier": identifier, "password": GOOD_PASSWORD } }),
    )
    .await
    .body
}

/// The messages to `address` (its domain in any case: roster stores domains IDNA-mapped).
fn to(mail: &[Value], address: &str) -> Vec<Value> {
    mail.iter()
        .filter(|m| {
            m["rcpt_tos"].as_array().is_some_and(|r| {
                r.len() == 1 && r[0].as_str().unwrap_or("").eq_ignore_ascii_case(address)
            })
        })
        .cloned()
        .collect()
}

/// Waits until `address` has received `n` emails; returns them.
async fn wait_for(smtp: &SmtpServer, address: &str, n: usize) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let got = to(&smtp.messages(), address);
        if got.len() >= n {
            return got;
        }
        assert!(started.elapsed() < WAIT, "{address}: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_address_counts_only_once_confirmed_and_the_old_one_is_told() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (_, token) = app.sign_in("olga").await;
    let second = login(&app, "olga").await["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The password is asked for again; a bad address and a wrong password come back together.
    let wrong = call(
        &app,
        Some(&token),
        REQUEST,
        json!({ "i": { "newEmail": "not an address", "password": "not the password at all" } }),
    )
    .await;
    let fields: Vec<&str> = wrong["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{wrong}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["newEmail", "password"], "{wrong}");
    let anonymous = call(
        &app,
        None,
        REQUEST,
        json!({ "i": { "newEmail": "x@example.org", "password": GOOD_PASSWORD } }),
    )
    .await;
    assert_eq!(crate::admin::code(&anonymous), "UNAUTHENTICATED");

    let asked = call(
        &app,
        Some(&token),
        REQUEST,
        json!({ "i": { "newEmail": "Olga.New@Example.org", "password": GOOD_PASSWORD } }),
    )
    .await;
    assert_eq!(asked["data"]["requestEmailChange"], true, "{asked}");
    // The old address is told (after its confirmation link from registration); the new one
    // gets the link.
    let old = wait_for(&smtp, "olga@example.com", 2).await;
    assert_eq!(
        old[1]["subject"],
        "A change of your email address was asked for"
    );
    assert!(!old[1]["text"].as_str().unwrap().contains("token="));
    let new = wait_for(&smtp, "Olga.New@Example.org", 1).await;
    assert_eq!(new[0]["subject"], "Confirm your new email address");
    let link = link_token(&new[0], "change-email");

    // Until confirmed, the account is reached by its old address only.
    assert!(login(&app, "olga@example.com").await["data"]["login"]["token"].is_string());
    assert!(login(&app, "olga.new@example.org").await["data"]["login"].is_null());

    let done = call(&app, None, CONFIRM, json!({ "t": link })).await;
    assert_eq!(
        done["data"]["confirmEmailChange"],
        json!({ "email": "Olga.New@example.org", "emailVerified": true }),
        "{done}"
    );
    // Every session ended; the new address signs in, the old one no more.
    for stale in [&token, &second] {
        let me = call(&app, Some(stale), "{ me { username } }", json!({})).await;
        assert!(me["data"]["me"].is_null(), "{me}");
    }
    let by_new = login(&app, "OLGA.NEW@example.org").await;
    assert_eq!(
        by_new["data"]["login"]["user"]["email"],
        "Olga.New@example.org"
    );
    assert!(login(&app, "olga@example.com").await["data"]["login"].is_null());
    // The link works once.
    let again = call(&app, None, CONFIRM, json!({ "t": link })).await;
    assert_eq!(
        again["errors"][0]["extensions"]["fields"][0]["code"], "token_invalid",
        "{again}"
    );
    let actions = app.audit_log().await;
    assert!(
        actions
            .iter()
            .any(|e| e.action == "user.email_change_requested")
    );
    assert!(actions.iter().any(|e| e.action == "user.email_changed"));
}

#[tokio::test]
async fn a_taken_address_answers_the_same_and_its_owner_gets_a_notice_not_a_link() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (_, token) = app.sign_in("pavel").await;
    app.sign_in("quinn").await;
    // Quinn's address, typed in another case: the same answer as a free one.
    let asked = call(
        &app,
        Some(&token),
        REQUEST,
        json!({ "i": { "newEmail": "QUINN@example.com", "password": GOOD_PASSWORD } }),
    )
    .await;
    assert_eq!(asked["data"]["requestEmailChange"], true, "{asked}");
    let free = call(
        &app,
        Some(&token),
        REQUEST,
        json!({ "i": { "newEmail": "pavel2@example.com", "password": GOOD_PASSWORD } }),
    )
    .await;
    assert_eq!(free, asked, "the same answer, taken or free");
    // Quinn hears of it, with no link; Pavel's old address is told both times.
    let quinn = wait_for(&smtp, "quinn@example.com", 2).await;
    assert_eq!(
        quinn[1]["subject"],
        "Someone tried to use your email address"
    );
    assert!(!quinn[1]["text"].as_str().unwrap().contains("token="));
    let pavel = wait_for(&smtp, "pavel@example.com", 3).await;
    assert!(
        pavel[1..]
            .iter()
            .all(|m| m["subject"] == "A change of your email address was asked for")
    );
    wait_for(&smtp, "pavel2@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        to(&smtp.messages(), "quinn@example.com")
            .iter()
            .all(|m| !m["text"].as_str().unwrap().contains("token=")
                || m["subject"] == "Confirm your email address"),
        "no link to the taken address"
    );
    // Two registrations' links, Quinn's notice, Pavel's two notices, the free address's link.
    assert_eq!(smtp.messages().len(), 6, "{:?}", smtp.messages());
}

#[tokio::test]
async fn two_confirmations_racing_for_one_address_cannot_both_win() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (_, rosa) = app.sign_in("rosa").await;
    let (_, sven) = app.sign_in("sven").await;
    for token in [&rosa, &sven] {
        let asked = call(
            &app,
            Some(token),
            REQUEST,
            json!({ "i": { "newEmail": "shared@example.net", "password": GOOD_PASSWORD } }),
        )
        .await;
        assert_eq!(asked["data"]["requestEmailChange"], true, "{asked}");
    }
    let links: Vec<String> = wait_for(&smtp, "shared@example.net", 2)
        .await
        .iter()
        .map(|m| link_token(m, "change-email"))
        .collect();
    let (a, b) = tokio::join!(
        call(&app, None, CONFIRM, json!({ "t": links[0] })),
        call(&app, None, CONFIRM, json!({ "t": links[1] })),
    );
    let won: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|r| r["data"]["confirmEmailChange"].is_object())
        .collect();
    assert_eq!(won.len(), 1, "{a} {b}");
    let lost = if a["data"]["confirmEmailChange"].is_object() {
        &b
    } else {
        &a
    };
    assert_eq!(
        lost["errors"][0]["extensions"]["fields"][0]["code"], "taken",
        "{lost}"
    );
    let holders = app
        .users()
        .await
        .into_iter()
        .filter(|u| u.email == "shared@example.net")
        .count();
    assert_eq!(holders, 1);
}

#[tokio::test]
async fn links_mailed_to_the_old_address_stop_working_after_the_change() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (_, token) = app.sign_in("tara").await;
    let reset = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": "tara@example.com" }),
        )
        .await;
    assert_eq!(reset.body["data"]["requestPasswordReset"], true);
    let old = wait_for(&smtp, "tara@example.com", 2).await;
    let verify_link = link_token(&old[0], "verify-email");
    let reset_link = link_token(&old[1], "reset-password");
    call(
        &app,
        Some(&token),
        REQUEST,
        json!({ "i": { "newEmail": "tara@new.example", "password": GOOD_PASSWORD } }),
    )
    .await;
    let link = link_token(
        &wait_for(&smtp, "tara@new.example", 1).await[0],
        "change-email",
    );
    let done = call(&app, None, CONFIRM, json!({ "t": link })).await;
    assert!(done["data"]["confirmEmailChange"].is_object(), "{done}");
    let verify = app
        .graphql(
            "mutation($t: String!) { verifyEmail(token: $t) { id } }",
            json!({ "t": verify_link }),
        )
        .await;
    assert_eq!(
        verify.body["errors"][0]["extensions"]["fields"][0]["code"],
        "token_invalid"
    );
    let reset = app
        .graphql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
            json!({ "i": { "token": reset_link, "newPassword": "an entirely new passphrase 4" } }),
        )
        .await;
    assert_eq!(
        reset.body["errors"][0]["extensions"]["fields"][0]["code"],
        "token_invalid"
    );
}

#[tokio::test]
async fn a_password_change_or_a_newer_request_ends_a_pending_change_and_the_old_address_hears_of_a_confirmed_one()
 {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with_smtp(&smtp).await;
    let (_, token) = app.sign_in("uri").await;
    let ask = |address: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            call(
                app,
                Some(&token),
                REQUEST,
                json!({ "i": { "newEmail": address, "password": GOOD_PASSWORD } }),
            )
            .await
        }
    };
    // A phished password asked for a change; the owner changes the password, as the notice
    // says: the link already mailed stops working.
    ask("thief@evil.example").await;
    let stolen = link_token(
        &wait_for(&smtp, "thief@evil.example", 1).await[0],
        "change-email",
    );
    let changed = call(
        &app,
        Some(&token),
        "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { username } }",
        json!({ "i": { "currentPassword": GOOD_PASSWORD, "newPassword": "a fresh passphrase 42" } }),
    )
    .await;
    assert!(changed["data"]["changePassword"].is_object(), "{changed}");
    let refused = call(&app, None, CONFIRM, json!({ "t": stolen })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["fields"][0]["code"], "token_invalid",
        "{refused}"
    );
    // A newer request ends an older one's link.
    let fresh = |address: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            call(
                app,
                Some(&token),
                REQUEST,
                json!({ "i": { "newEmail": address, "password": "a fresh passphrase 42" } }),
            )
            .await
        }
    };
    fresh("first@uri.example").await;
    let first = link_token(
        &wait_for(&smtp, "first@uri.example", 1).await[0],
        "change-email",
    );
    fresh("second@uri.example").await;
    let second = link_token(
        &wait_for(&smtp, "second@uri.example", 1).await[0],
        "change-email",
    );
    let old = call(&app, None, CONFIRM, json!({ "t": first })).await;
    assert_eq!(
        old["errors"][0]["extensions"]["fields"][0]["code"], "token_invalid",
        "{old}"
    );
    let done = call(&app, None, CONFIRM, json!({ "t": second })).await;
    assert!(done["data"]["confirmEmailChange"].is_object(), "{done}");
    // The old address is told the account moved (after the notices of each request).
    let started = std::time::Instant::now();
    loop {
        let told = to(&smtp.messages(), "uri@example.com")
            .iter()
            .any(|m| m["subject"] == "Your account moved to another email address");
        if told {
            break;
        }
        assert!(started.elapsed() < WAIT, "{:?}", smtp.messages());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
