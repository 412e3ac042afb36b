//! Email confirmation and password reset over HTTP, against a real database and a real SMTP
//! server (aiosmtpd in a subprocess): the outbox, delivery, retries, single-use tokens.

use std::time::Duration;

use roster::config::{Config, RateLimit, SmtpUrl};
use roster::entity::{email_token, outbox, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{Answer, GOOD_PASSWORD, LOGS, TestApp, spawn_app_with, unique_user};
use crate::mailbox::{SmtpServer, free_port, link_token};
use crate::process::Process;

const VERIFY: &str =
    "mutation V($token: String!) { verifyEmail(token: $token) { id username emailVerified } }";
const RESEND: &str = "mutation R($email: String!) { resendVerificationEmail(email: $email) }";
const REQUEST_RESET: &str = "mutation P($email: String!) { requestPasswordReset(email: $email) }";
const RESET: &str = "mutation S($input: ResetPasswordInput!) { resetPassword(input: $input) }";
const LOGIN: &str =
    "mutation L($input: LoginInput!) { login(input: $input) { token user { emailVerified } } }";
const NEW_PASSWORD: &str = "purple elephant dancing quietly";
const WAIT: Duration = Duration::from_secs(15);

/// Fast polling and retries, no per-address or per-client mail limit unless a test sets one.
fn mail_config(c: &mut Config, smtp_url: String) {
    c.mail.smtp_url = Some(SmtpUrl(smtp_url));
    c.mail.mail_poll_interval = Duration::from_millis(100);
    c.mail.mail_retry_base = Duration::from_millis(200);
    c.mail.mail_address_limit = RateLimit::Off;
    c.mail.mail_rate_limit = RateLimit::Off;
}

async fn mail_app(smtp: &SmtpServer, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |c| {
        mail_config(c, url);
        adjust(c);
    })
    .await
}

impl TestApp {
    async fn verify(&self, token: &str) -> Answer {
        self.graphql(VERIFY, json!({ "token": token })).await
    }

    async fn reset(&self, token: &str, password: &str) -> Answer {
        self.graphql(
            RESET,
            json!({ "input": { "token": token, "newPassword": password } }),
        )
        .await
    }

    async fn log_in(&self, identifier: &str, password: &str) -> Answer {
        self.graphql(
            LOGIN,
            json!({ "input": { "identifier": identifier, "password": password } }),
        )
        .await
    }

    async fn outbox_rows(&self) -> Vec<outbox::Model> {
        outbox::Entity::find().all(&self.db).await.unwrap()
    }

    /// Waits until the (only) outbox row has `status`, and returns it.
    async fn wait_for_status(&self, status: &str) -> outbox::Model {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let rows = self.outbox_rows().await;
            if rows[0].status == status {
                return rows[0].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn user_by_name(&self, name: &str) -> user::Model {
        user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap()
    }

    /// Registers a fresh user and returns (username, email).
    async fn new_user(&self) -> (String, String) {
        let (name, email) = unique_user();
        let answer = self.register(&name, &email, GOOD_PASSWORD).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.body["errors"].is_null(), "{}", answer.body);
        (name, email)
    }
}

fn token_code(answer: &Answer) -> String {
    let codes = answer.field_codes();
    assert_eq!(codes.len(), 1, "{}", answer.body);
    assert_eq!(codes[0].0, "token", "{}", answer.body);
    codes[0].1.clone()
}

#[tokio::test]
async fn registering_sends_one_verification_email_whose_link_verifies_once() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let (name, email) = (format!("name_{tag}"), format!("inbox_{tag}@example.com"));
    let answer = app.register(&name, &email, GOOD_PASSWORD).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);

    let mail = smtp.wait_for(1, WAIT).await;
    let message = &mail[0];
    assert_eq!(message["rcpt_tos"], json!([email]));
    assert_eq!(message["subject"], "Confirm your email address");
    assert_eq!(message["from"], "roster <roster@localhost>");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("http://{}/verify-email?token=", app.addr)),
        "{text}"
    );
    assert!(
        !text.contains(&name),
        "the username is not in the email: {text}"
    );
    let rows = app.outbox_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        message["message_id"],
        format!("<{}@localhost>", rows[0].id),
        "a stable Message-ID per outbox row"
    );
    let token = link_token(message, "verify-email");

    // Nothing rests in clear: not in the outbox, not in the token table, not in the logs.
    let tokens = email_token::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(tokens.len(), 1);
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(tokens[0].token_hash, digest);
    assert!(!format!("{rows:?}{tokens:?}").contains(&token));
    let logs = String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned();
    assert!(!logs.contains(&token), "the token is in the logs");

    assert!(!app.user_by_name(&name).await.email_verified);
    let answer = app.verify(&token).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    assert_eq!(answer.body["data"]["verifyEmail"]["emailVerified"], true);
    assert_eq!(
        answer.body["data"]["verifyEmail"]["username"],
        name.as_str()
    );
    assert!(app.user_by_name(&name).await.email_verified);
    app.wait_for_status("delivered").await;

    let again = app.verify(&token).await;
    assert_eq!(token_code(&again), "token_invalid");
    for garbage in ["", "not-a-token", &"A".repeat(43), &"é".repeat(5000)] {
        assert_eq!(token_code(&app.verify(garbage).await), "token_invalid");
    }
}

#[tokio::test]
async fn an_expired_link_is_refused_and_changes_nothing() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| c.mail.verify_email_ttl = Duration::from_secs(1)).await;
    let (name, _) = app.new_user().await;
    let token = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(token_code(&app.verify(&token).await), "token_expired");
    assert!(!app.user_by_name(&name).await.email_verified);
}

#[tokio::test]
async fn with_smtp_down_registration_succeeds_at_once_and_the_email_follows() {
    // First a server that accepts and never answers (the worst "down": a refused port fails
    // fast anyway), with a long SMTP timeout: a registration that waited for the mail would
    // take all of it.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hung.local_addr().unwrap().port();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        let accept = async {
            loop {
                if let Ok((stream, _)) = hung.accept().await {
                    held.push(stream);
                }
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = released => {}
        }
        // Dropping the listener and every accepted connection: the port is down now.
    });
    let app = spawn_app_with(|c| {
        mail_config(c, format!("smtp://127.0.0.1:{port}"));
        c.mail.smtp_timeout = Duration::from_secs(8);
        c.mail.mail_lease = Duration::from_secs(20);
    })
    .await;
    let started = std::time::Instant::now();
    let (name, email) = app.new_user().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "registration waited for SMTP: {took:?}"
    );
    let _ = release.send(());
    holder.await.unwrap();

    // Attempts fail and are recorded, with a retry scheduled.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows = app.outbox_rows().await;
        if rows[0].attempts >= 2 {
            assert!(["pending", "sending"].contains(&rows[0].status.as_str()));
            assert!(rows[0].last_error.is_some());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let smtp = SmtpServer::start_on(port).await;
    let mail = smtp.wait_for(1, WAIT).await;
    assert_eq!(mail[0]["rcpt_tos"], json!([email]));
    let token = link_token(&mail[0], "verify-email");
    let answer = app.verify(&token).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    assert!(app.user_by_name(&name).await.email_verified);
}

#[tokio::test]
async fn a_failing_recipient_is_retried_then_marked_failed() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| {
        c.mail.mail_max_attempts = 3;
        c.mail.mail_retry_base = Duration::from_millis(100);
    })
    .await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let answer = app
        .register(
            &format!("b{}", &tag[20..]),
            &format!("bounce{}@example.com", &tag[20..]),
            GOOD_PASSWORD,
        )
        .await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    let row = app.wait_for_status("failed").await;
    assert_eq!(row.attempts, 3);
    assert!(row.last_error.unwrap().contains("550"));
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn password_reset_sets_a_new_password_verifies_and_ends_every_session() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, email) = app.new_user().await;
    smtp.wait_for(1, WAIT).await;
    let login = app.log_in(&name, GOOD_PASSWORD).await;
    let session = login.body["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let asked = app
        .graphql(REQUEST_RESET, json!({ "email": email.to_uppercase() }))
        .await;
    assert_eq!(
        asked.body["data"]["requestPasswordReset"], true,
        "{}",
        asked.body
    );
    let mail = smtp.wait_for(2, WAIT).await;
    assert_eq!(mail[1]["subject"], "Reset your password");
    let token = link_token(&mail[1], "reset-password");

    // A password the policy refuses leaves the token usable.
    let weak = app.reset(&token, "password").await;
    let codes = weak.field_codes();
    assert!(codes.iter().all(|(f, _)| f == "newPassword"), "{codes:?}");
    assert!(
        codes.iter().any(|(_, c)| c == "password_too_common"),
        "{codes:?}"
    );

    let done = app.reset(&token, NEW_PASSWORD).await;
    assert_eq!(done.body["data"]["resetPassword"], true, "{}", done.body);
    assert_eq!(
        app.log_in(&name, GOOD_PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let fresh = app.log_in(&name, NEW_PASSWORD).await;
    assert_eq!(
        fresh.body["data"]["login"]["user"]["emailVerified"], true,
        "{}",
        fresh.body
    );
    let me = app
        .client
        .post(app.url())
        .bearer_auth(&session)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(me["data"]["me"], Value::Null, "the old session ended");
    assert_eq!(
        token_code(&app.reset(&token, "another fine passphrase").await),
        "token_invalid"
    );
    // The reset is in the audit log, as done by the user, and the link is not.
    let user = app.user_by_name(&name).await;
    let log = app.audit_log().await;
    let reset = log
        .iter()
        .find(|e| e.action == "user.password_reset")
        .expect("the reset is audited");
    assert_eq!(
        (reset.actor_user_id, reset.target_user_id),
        (Some(user.id), Some(user.id))
    );
    assert_eq!(reset.ip.as_deref(), Some("127.0.0.1"));
    assert!(log.iter().all(|e| !format!("{e:?}").contains(&token)));
}

#[tokio::test]
async fn unknown_addresses_get_true_and_no_email() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    for query in [REQUEST_RESET, RESEND] {
        let answer = app
            .graphql(query, json!({ "email": "nobody-here@example.com" }))
            .await;
        assert_eq!(answer.status, 200);
        let data = answer.body["data"].as_object().unwrap();
        assert_eq!(data.values().next(), Some(&json!(true)), "{}", answer.body);
    }
    let bad = app
        .graphql(REQUEST_RESET, json!({ "email": "no at sign" }))
        .await;
    assert_eq!(
        bad.field_codes(),
        vec![("email".into(), "email_invalid".into())]
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(app.outbox_rows().await.is_empty());
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn resend_sends_a_fresh_link_and_the_older_one_stops_working() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, email) = app.new_user().await;
    let first = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    let answer = app.graphql(RESEND, json!({ "email": email })).await;
    assert_eq!(answer.body["data"]["resendVerificationEmail"], true);
    let second = link_token(&smtp.wait_for(2, WAIT).await[1], "verify-email");
    assert_ne!(first, second);
    assert_eq!(token_code(&app.verify(&first).await), "token_invalid");
    assert!(app.verify(&second).await.body["errors"].is_null());
    let user = app.user_by_name(&name).await;
    assert!(user.email_verified);
    assert_eq!(
        app.audit_actions_about(user.id).await,
        ["user.email_verified"],
        "one verification, audited once"
    );
    // Verified: a resend sends nothing.
    app.graphql(RESEND, json!({ "email": email })).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test]
async fn a_newer_reset_request_or_a_password_change_ends_older_reset_links() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, email) = app.new_user().await;
    smtp.wait_for(1, WAIT).await;
    app.graphql(REQUEST_RESET, json!({ "email": email })).await;
    let first = link_token(&smtp.wait_for(2, WAIT).await[1], "reset-password");
    app.graphql(REQUEST_RESET, json!({ "email": email })).await;
    let second = link_token(&smtp.wait_for(3, WAIT).await[2], "reset-password");
    assert_eq!(
        token_code(&app.reset(&first, NEW_PASSWORD).await),
        "token_invalid"
    );

    // changePassword ends the outstanding one.
    let session = app.log_in(&name, GOOD_PASSWORD).await.body["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = app
        .client
        .post(app.url())
        .bearer_auth(&session)
        .json(&json!({
            "query": "mutation C($i: ChangePasswordInput!) { changePassword(input: $i) { id } }",
            "variables": { "i": { "currentPassword": GOOD_PASSWORD, "newPassword": NEW_PASSWORD } }
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(changed["errors"].is_null(), "{changed}");
    assert_eq!(
        token_code(&app.reset(&second, "another fine passphrase").await),
        "token_invalid"
    );
}

#[tokio::test]
async fn one_token_used_concurrently_succeeds_once() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (_, email) = app.new_user().await;
    let verify = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    app.graphql(REQUEST_RESET, json!({ "email": email })).await;
    let reset = link_token(&smtp.wait_for(2, WAIT).await[1], "reset-password");

    let verifies = join_all((0..8).map(|_| app.verify(&verify)).collect()).await;
    let ok = verifies
        .iter()
        .filter(|a| a.body["errors"].is_null())
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        verifies.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for a in verifies.iter().filter(|a| !a.body["errors"].is_null()) {
        assert_eq!(token_code(a), "token_invalid");
    }

    let resets = join_all((0..4).map(|_| app.reset(&reset, NEW_PASSWORD)).collect()).await;
    let ok = resets
        .iter()
        .filter(|a| a.body["data"]["resetPassword"] == true)
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        resets.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
}

/// Polls the requests together, so they are in flight at once.
async fn join_all<Fut: std::future::Future<Output = Answer>>(futures: Vec<Fut>) -> Vec<Answer> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Answer>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn mail_requests_are_limited_per_address_and_per_client() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| {
        c.mail.mail_address_limit = RateLimit::PerPeriod {
            burst: 1.try_into().unwrap(),
            period: Duration::from_secs(60),
        };
        c.mail.mail_rate_limit = RateLimit::PerPeriod {
            burst: 5.try_into().unwrap(),
            period: Duration::from_secs(60),
        };
    })
    .await;
    let (_, email) = app.new_user().await;
    // Per address, known or not, and whatever the spelling.
    for address in [email.as_str(), "unknown-person@example.com"] {
        let first = app
            .graphql(REQUEST_RESET, json!({ "email": address }))
            .await;
        assert_eq!(first.body["data"]["requestPasswordReset"], true);
        let second = app
            .graphql(REQUEST_RESET, json!({ "email": address.to_uppercase() }))
            .await;
        assert_eq!(second.status, 429, "{}", second.body);
        assert_eq!(second.code(), "RATE_LIMITED");
        assert!(second.headers.get("retry-after").is_some());
    }
    // Each kind of email has its own bucket: a stranger's reset requests never block the
    // owner's confirmation email.
    let other_kind = app.graphql(RESEND, json!({ "email": email })).await;
    assert_eq!(
        other_kind.body["data"]["resendVerificationEmail"], true,
        "{}",
        other_kind.body
    );
    // Per client: five were spent above; the sixth is refused.
    let sixth = app
        .graphql(
            REQUEST_RESET,
            json!({ "email": "someone-else@example.com" }),
        )
        .await;
    assert_eq!(sixth.code(), "RATE_LIMITED", "{}", sixth.body);
}

/// A full per-address table still limits the addresses it knows: filling it with other
/// addresses used to switch the limit off for every address, a victim's included.
#[tokio::test]
async fn a_full_address_table_still_limits_an_address_it_knows() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| {
        c.mail.mail_address_limit = RateLimit::PerPeriod {
            burst: 1.try_into().unwrap(),
            period: Duration::from_secs(60),
        };
        c.mail.mail_rate_limit = RateLimit::Off;
        c.limits.rate_limit_max_clients = 4;
    })
    .await;
    let (_, victim) = app.new_user().await;
    let first = app.graphql(REQUEST_RESET, json!({ "email": victim })).await;
    assert_eq!(first.body["data"]["requestPasswordReset"], true);
    for n in 0..8 {
        // Fill the table, and more: new addresses then share one bucket.
        let _ = app
            .graphql(
                REQUEST_RESET,
                json!({ "email": format!("filler{n}@example.com") }),
            )
            .await;
        let again = app.graphql(REQUEST_RESET, json!({ "email": victim })).await;
        assert_eq!(again.status, 429, "after {n} fillers: {}", again.body);
    }
    let fresh = app
        .graphql(REQUEST_RESET, json!({ "email": "late-comer@example.com" }))
        .await;
    assert_eq!(
        fresh.status, 429,
        "a new address is never unlimited: {}",
        fresh.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resets = smtp
        .messages()
        .iter()
        .filter(|m| m["rcpt_tos"][0] == victim.as_str() && m["subject"] == "Reset your password")
        .count();
    assert!(resets <= 1, "the victim got {resets} reset emails");
}

#[tokio::test]
async fn a_hung_smtp_server_does_not_hold_shutdown_and_the_email_is_handed_back() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let (app, stop) = crate::helpers::spawn_app_with_shutdown(|c| {
        mail_config(c, format!("smtp://127.0.0.1:{port}"));
        c.mail.smtp_timeout = Duration::from_secs(60);
        c.mail.mail_lease = Duration::from_secs(120);
    })
    .await;
    app.new_user().await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.outbox_rows().await[0].status != "sending" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    let mut app = app;
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown waits for no SMTP timeout")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let row = &app.outbox_rows().await[0];
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("pending", 0),
        "{row:?}"
    );
    held.abort();
}

#[tokio::test]
async fn undeliverable_recipients_fail_at_once_and_never_reach_a_display_name() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, _) = app.new_user().await;
    smtp.wait_for(1, WAIT).await;
    let user_id = app.user_by_name(&name).await.id;
    // As an imported row might hold it: a display name with another address inside.
    roster::outbox::Outbox::new()
        .enqueue(
            &app.db,
            roster::outbox::Kind::ResetPassword,
            user_id,
            "Imp <eve@evil.example>",
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let failed = loop {
        let rows = app.outbox_rows().await;
        if let Some(r) = rows.iter().find(|r| r.status == "failed") {
            break r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.attempts, 1, "no retry can fix an address");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "nothing was sent to the address inside"
    );

    // Registration refuses what the mailer could never reach; the email mutations refuse
    // control characters before any lookup.
    let literal = app
        .register("lit_user", "x@[127.0.0.1]", GOOD_PASSWORD)
        .await;
    assert_eq!(
        literal.field_codes(),
        vec![("email".into(), "email_invalid".into())]
    );
    let nul = app
        .graphql(REQUEST_RESET, json!({ "email": "a\u{0}@b.example" }))
        .await;
    assert_eq!(
        nul.field_codes(),
        vec![("email".into(), "email_invalid".into())]
    );
}

#[tokio::test]
async fn a_deactivated_accounts_link_confirms_nothing() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, _) = app.new_user().await;
    let token = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    let mut row: user::ActiveModel = app.user_by_name(&name).await.into();
    row.is_active = sea_orm::Set(false);
    sea_orm::ActiveModelTrait::update(row, &app.db)
        .await
        .unwrap();
    assert_eq!(token_code(&app.verify(&token).await), "token_invalid");
    assert!(!app.user_by_name(&name).await.email_verified);
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_cannot_be_renewed_by_its_old_owner() {
    let app = spawn_app_with(|c| c.mail.mail_poll_interval = Duration::from_secs(3600)).await;
    let (name, _) = app.new_user().await;
    let user_id = app.user_by_name(&name).await.id;
    // The registration's own email may be claimed by the app's worker; use a row of our own.
    let id = roster::outbox::Outbox::new()
        .enqueue(
            &app.db,
            roster::outbox::Kind::ResetPassword,
            user_id,
            "x@example.com",
        )
        .await
        .unwrap();
    let mine = |rows: Vec<outbox::Model>| rows.into_iter().find(|r| r.id == id);
    let mut first = None;
    while first.is_none() {
        first = mine(
            roster::outbox::claim(&app.db, 16, Duration::from_millis(1))
                .await
                .unwrap(),
        );
    }
    let first = first.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = mine(
        roster::outbox::claim(&app.db, 16, Duration::from_secs(60))
            .await
            .unwrap(),
    )
    .expect("an expired lease makes the row due again");
    assert_eq!(second.attempts, first.attempts + 1);
    assert!(
        !roster::outbox::renew(&app.db, &first, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        roster::outbox::renew(&app.db, &second, Duration::from_secs(60))
            .await
            .unwrap()
    );
}
#[tokio::test]
async fn login_can_require_a_verified_address() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| c.mail.require_verified_email = true).await;
    let (name, _) = app.new_user().await;
    let token = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    assert_eq!(
        app.log_in(&name, "wrong password!").await.code(),
        "INVALID_CREDENTIALS"
    );
    let refused = app.log_in(&name, GOOD_PASSWORD).await;
    assert_eq!(refused.code(), "EMAIL_NOT_VERIFIED", "{}", refused.body);
    assert!(refused.body["data"].is_null() || refused.body["data"]["login"].is_null());
    assert!(app.verify(&token).await.body["errors"].is_null());
    let ok = app.log_in(&name, GOOD_PASSWORD).await;
    assert!(ok.body["errors"].is_null(), "{}", ok.body);
}

#[tokio::test]
async fn concurrent_claims_hand_each_email_to_one_worker() {
    let app = spawn_app_with(|c| {
        // This app's own worker stays out of the way.
        c.mail.mail_poll_interval = Duration::from_secs(3600);
    })
    .await;
    let (name, _) = app.new_user().await;
    let user_id = app.user_by_name(&name).await.id;
    // The registration's email woke the app's worker; once it is done, that worker sleeps.
    app.wait_for_status("delivered").await;
    let queue = roster::outbox::Outbox::new();
    for _ in 0..40 {
        queue
            .enqueue(
                &app.db,
                roster::outbox::Kind::ResetPassword,
                user_id,
                "x@example.com",
            )
            .await
            .unwrap();
    }
    let mut claimers = Vec::new();
    for _ in 0..3 {
        let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = roster::outbox::claim(&db, 4, Duration::from_secs(60))
                    .await
                    .unwrap();
                if rows.is_empty() {
                    return mine;
                }
                mine.extend(rows.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "an email was claimed twice");
    assert_eq!(total, 40);
}

fn register_vars(name: &str, email: &str) -> Value {
    json!({ "input": { "username": name, "email": email, "password": GOOD_PASSWORD } })
}

#[tokio::test]
async fn emails_left_by_a_killed_server_are_delivered_by_the_next_one() {
    let (url, sqlite_file) = crate::helpers::fresh_database_url().await;
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let settings = [
        "--smtp-url",
        smtp_url.as_str(),
        "--mail-retry-base",
        "1s",
        "--mail-lease",
        "2s",
        "--smtp-timeout",
        "1s",
    ];
    let mut first = Process::start(&url, &settings).await;
    let (name, email) = unique_user();
    let answer = first
        .graphql(crate::helpers::REGISTER, register_vars(&name, &email))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let db = sea_orm::Database::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while outbox::Entity::find().all(&db).await.unwrap()[0].attempts < 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();

    let smtp = SmtpServer::start_on(port).await;
    let second = Process::start(&url, &settings).await;
    let mail = smtp.wait_for(1, WAIT).await;
    assert_eq!(mail[0]["rcpt_tos"], json!([email]));
    let token = link_token(&mail[0], "verify-email");
    let verified = second.graphql(VERIFY, json!({ "token": token })).await;
    assert_eq!(
        verified["data"]["verifyEmail"]["emailVerified"], true,
        "{verified}"
    );
    drop(second);
    db.close().await.ok();
    crate::helpers::remove_sqlite(sqlite_file);
}

#[tokio::test]
async fn without_smtp_the_email_is_printed_and_its_link_works() {
    let (url, sqlite_file) = crate::helpers::fresh_database_url().await;
    let server = Process::start(&url, &[]).await;
    assert!(
        server
            .stderr
            .lock()
            .unwrap()
            .contains("emails are printed to stdout, not sent"),
        "the start-up warning"
    );
    let (name, email) = unique_user();
    let answer = server
        .graphql(crate::helpers::REGISTER, register_vars(&name, &email))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let deadline = std::time::Instant::now() + WAIT;
    let printed = loop {
        let out = server.stdout.lock().unwrap().clone();
        if out.contains("===== end of email =====") {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing printed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(printed.contains(&format!("To: {email}")), "{printed}");
    let message = json!({ "text": printed, "html": printed });
    let token = link_token(&message, "verify-email");
    assert!(printed.contains(&format!(
        "http://{}/verify-email?token={token}",
        server.addr
    )));
    let verified = server.graphql(VERIFY, json!({ "token": token })).await;
    assert_eq!(
        verified["data"]["verifyEmail"]["emailVerified"], true,
        "{verified}"
    );
    drop(server);
    crate::helpers::remove_sqlite(sqlite_file);
}

#[tokio::test]
async fn operators_list_and_retry_failed_emails_without_seeing_a_token() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |c| c.mail.mail_max_attempts = 1).await;
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let answer = app
        .register(
            &format!("op_{tag}"),
            &format!("bounce_{tag}@example.com"),
            GOOD_PASSWORD,
        )
        .await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    let row = app.wait_for_status("failed").await;
    let tokens: Vec<String> = email_token::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_hash)
        .collect();

    let roster = async |args: &[&str]| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["--database-url", &app.database_url])
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, listed, _) = roster(&["outbox", "list"]).await;
    assert_eq!(code, Some(0));
    let line = listed
        .lines()
        .find(|l| l.starts_with(&row.id.to_string()))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("verify_email") && line.contains("failed") && line.contains("550"),
        "{line}"
    );
    for hash in &tokens {
        assert!(!listed.contains(hash.as_str()));
    }

    let (code, _, said) = roster(&["outbox", "retry", &uuid::Uuid::now_v7().to_string()]).await;
    assert_eq!(code, Some(1), "{said}");
    let (code, _, said) = roster(&["outbox", "retry", "--all-failed"]).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("1 failed email(s) due again"), "{said}");
    // Due again: the worker tries once more (and the address bounces again).
    let again = app.wait_for_status("failed").await;
    assert_eq!(again.attempts, 1);
    assert!(again.next_attempt_at > row.next_attempt_at);
}

#[tokio::test]
async fn the_smtp_password_never_shows_in_help_or_errors() {
    let secret = "s3cret-Pa55word";
    for args in [
        vec!["--help"],
        vec![
            "--smtp-url",
            "ftp://u:s3cret-Pa55word@host",
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let url = format!("smtp://user:{secret}@mail.example:587");
        let all = crate::helpers::roster_output(&args, &[("ROSTER_SMTP_URL", &url)]).await;
        assert!(all.contains("smtp-url"), "{all}");
        assert!(!all.contains(secret), "{args:?}: {all}");
    }
}

#[tokio::test]
async fn opening_a_link_page_consumes_nothing_and_the_page_is_locked_down() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, |_| {}).await;
    let (name, _) = app.new_user().await;
    let token = link_token(&smtp.wait_for(1, WAIT).await[0], "verify-email");
    for path in ["verify-email", "reset-password"] {
        let page = crate::helpers::get(format!("http://{}/{path}?token={token}", app.addr))
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let h = page.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        let body = page.text().await.unwrap();
        assert!(
            body.contains("pages/account.js") && !body.contains("http"),
            "{body}"
        );
    }
    for asset in ["account.js", "account.css"] {
        let r = crate::helpers::get(format!("http://{}/pages/{asset}", app.addr))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let missing = crate::helpers::get(format!("http://{}/pages/x.js", app.addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        !app.user_by_name(&name).await.email_verified,
        "a GET verified"
    );
    assert!(
        app.verify(&token).await.body["errors"].is_null(),
        "a GET used the token"
    );
}
