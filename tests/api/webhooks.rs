//! Webhooks over real sockets: endpoints added with the real binary, events written by the
//! real mutations, delivered by the worker to receivers listening on this machine, their
//! Standard Webhooks signatures checked with an HMAC computed here (and, in
//! `a_standard_webhooks_library_verifies_every_event`, by the `standardwebhooks` package).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::admin::as_user;
use crate::helpers::{GOOD_PASSWORD, TEST_SECRET, TestApp, spawn_app_with};

/// One request a receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub raw: String,
    pub body: Value,
    /// What the receiver answered.
    pub answered: u16,
}

impl Seen {
    pub fn event(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
    pub fn user(&self) -> &str {
        self.body["data"]["user_id"].as_str().unwrap_or_default()
    }
}

/// A receiver on this machine: records every POST, answers `status` (200 by default), or
/// never answers while `hang` is set.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    pub status: Arc<AtomicU16>,
    pub hang: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_at("127.0.0.1", 0).await
    }

    /// On `host:port`.
    pub async fn start_at(host: &str, port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((host, port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self {
            addr,
            seen: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            hang: Arc::default(),
        };
        let state = receiver.clone();
        let app =
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let answered = state.status.load(Ordering::SeqCst);
                    state.seen.lock().unwrap().push(Seen {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                        raw: body,
                        answered,
                    });
                    if state.hang.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    axum::http::StatusCode::from_u16(answered).unwrap()
                }
            });
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/roster", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen> {
        let started = Instant::now();
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                started.elapsed() < within,
                "expected {n} deliveries within {within:?}, got {}: {:?}",
                seen.len(),
                seen.iter()
                    .map(|s| s.event().to_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a delivery's signature as the specification says, with an HMAC computed here:
/// true when any of its `v1,` signatures is the one `secret` makes.
pub fn signed_by(seen: &Seen, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", seen.id, seen.timestamp, seen.raw);
    let expected = base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    seen.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// `roster webhooks …` (the real binary) on a database: (exit code, stdout, stderr).
///
/// Awaited, not blocking: the test's server runs on the same runtime, and a command waiting
/// on a row lock held by one of the server's transactions would otherwise wait forever.
pub async fn cli(database_url: &str, args: &[&str], allow_private: bool) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("webhooks")
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("ROSTER_SECRET_KEY", TEST_SECRET)
        .env(
            "ROSTER_WEBHOOK_ALLOW_PRIVATE",
            if allow_private { "true" } else { "false" },
        )
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Adds an endpoint with the CLI: (id, secret).
pub async fn add(database_url: &str, url: &str, events: &str) -> (String, String) {
    let (code, out, err) = cli(database_url, &["add", url, "--events", events], true).await;
    assert_eq!(code, 0, "{out}{err}");
    let mut lines = out.lines();
    let id = lines.next().unwrap().to_owned();
    let secret = lines.next().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{out}");
    (id, secret)
}

/// An app that delivers webhooks to this machine's receivers, retrying after about a second.
pub async fn spawn_hooked_app() -> TestApp {
    spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_base = Duration::from_secs(1);
        c.webhooks.webhook_timeout = Duration::from_secs(2);
        c.webhooks.webhook_poll_interval = Duration::from_secs(1);
    })
    .await
}

async fn login(app: &TestApp, name: &str) -> String {
    login_with(app, name, GOOD_PASSWORD).await
}

async fn login_with(app: &TestApp, name: &str, password: &str) -> String {
    let answer = as_user(
        app,
        None,
        "mutation($i: LoginInput!) { login(input: $i) { token } }",
        json!({ "i": { "identifier": name, "password": password } }),
    )
    .await;
    answer["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// The event types each user's deliveries carried, in arrival order.
fn per_user(seen: &[Seen]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut users = std::collections::BTreeMap::<String, Vec<String>>::new();
    for s in seen {
        users
            .entry(s.user().to_owned())
            .or_default()
            .push(s.event().to_owned());
    }
    users
}

#[tokio::test]
async fn each_change_sends_its_event_once_signed_in_order_with_the_user_and_no_secret() {
    let app = spawn_hooked_app().await;
    let receiver = Receiver::start().await;
    let (_, secret) = add(&app.database_url, &receiver.url(), "all").await;

    let (wendy, first) = app.sign_in("wendy").await;
    let second = login(&app, "wendy").await;
    let changed = as_user(
        &app,
        Some(&first),
        "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { id } }",
        json!({ "i": { "currentPassword": GOOD_PASSWORD, "newPassword": "an0ther long passphrase" } }),
    )
    .await;
    assert!(changed["errors"].is_null(), "{changed}");
    assert_eq!(
        as_user(&app, Some(&second), "mutation { logout }", json!({})).await["errors"][0]["extensions"]
            ["code"],
        "UNAUTHENTICATED",
        "the second session ended with the password change"
    );
    let out = as_user(&app, Some(&first), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    // An operator deactivates and reactivates another user; then wendy deletes herself.
    let (xavier, _) = app.sign_in("xavier").await;
    for verb in ["deactivate", "reactivate"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["users", verb, "xavier"])
            .env("DATABASE_URL", &app.database_url)
            .env("ROSTER_SECRET_KEY", TEST_SECRET)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let third = login_with(&app, "wendy", "an0ther long passphrase").await;
    let gone = as_user(
        &app,
        Some(&third),
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": "an0ther long passphrase" }),
    )
    .await;
    assert_eq!(gone["data"]["deleteAccount"], true, "{gone}");

    let seen = receiver.wait_for(12, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_now = receiver.seen();
    assert_eq!(
        seen_now.len(),
        12,
        "nothing twice, nothing more: {:?}",
        per_user(&seen_now)
    );
    let users = per_user(&seen);
    assert_eq!(
        users[&wendy],
        [
            "user.registered",
            "session.created",
            "session.created",
            "user.password_changed",
            "session.ended",
            "session.ended",
            "session.created",
            "user.deleted",
        ]
    );
    assert_eq!(
        users[&xavier],
        [
            "user.registered",
            "session.created",
            "user.deactivated",
            "user.reactivated"
        ]
    );
    let mut ids = std::collections::HashSet::new();
    for s in &seen {
        assert!(signed_by(s, &secret), "{s:?}");
        assert!(ids.insert(s.id.clone()), "one id per event: {s:?}");
        assert!(s.id.starts_with("msg_"));
        let age = chrono::Utc::now().timestamp() - s.timestamp.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "the attempt's time: {s:?}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(s.body["timestamp"].as_str().unwrap()).is_ok()
        );
        for key in ["user_id", "username", "email", "legacy_id"] {
            assert!(s.body["data"].get(key).is_some(), "{key} in {}", s.raw);
        }
        for key in s.body["data"].as_object().unwrap().keys() {
            for secretish in ["password", "hash", "token", "secret", "code"] {
                assert!(!key.contains(secretish), "{key} in {}", s.raw);
            }
        }
        for stored in ["$argon2", "sealed1:", "whsec_"] {
            assert!(!s.raw.contains(stored), "{}", s.raw);
        }
        for plaintext in [GOOD_PASSWORD, "an0ther long passphrase"] {
            assert!(!s.raw.contains(plaintext), "{}", s.raw);
        }
    }
    let wendys: Vec<&Seen> = seen.iter().filter(|s| s.user() == wendy).collect();
    assert_eq!(wendys[0].body["data"]["username"], "wendy");
    assert_eq!(wendys[0].body["data"]["email"], "wendy@example.com");
    assert_eq!(wendys[0].body["data"]["legacy_id"], Value::Null);
    // The sessions: the password change ended the other one and kept the caller's; the
    // logout ended the caller's.
    let ended: Vec<&&Seen> = wendys
        .iter()
        .filter(|s| s.event() == "session.ended")
        .collect();
    assert_eq!(ended[0].body["data"]["reason"], "password_changed");
    assert_eq!(ended[0].body["data"]["session_id"], Value::Null);
    assert!(ended[0].body["data"]["kept_session_id"].is_string());
    assert_eq!(ended[1].body["data"]["reason"], "logout");
    assert_eq!(
        ended[1].body["data"]["session_id"],
        ended[0].body["data"]["kept_session_id"]
    );
    assert_eq!(wendys[7].body["data"]["by"], "self");

    // The deliveries, as an operator sees them: all delivered, HTTP 200.
    let (code, out, _) = cli(
        &app.database_url,
        &["deliveries", "--status", "delivered"],
        true,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 13, "{out}");
    assert!(out.lines().skip(1).all(|l| l.contains(" 200 ")), "{out}");
}

#[tokio::test]
async fn only_subscribed_events_are_written_and_a_removed_endpoint_gets_nothing_more() {
    let app = spawn_hooked_app().await;
    let receiver = Receiver::start().await;
    let (id, _) = add(
        &app.database_url,
        &format!("{}?token=receivers-own-token", receiver.url()),
        "user.registered,user.deleted",
    )
    .await;
    let (code, out, _) = cli(&app.database_url, &["list"], true).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("user.registered,user.deleted"),
        "{out}"
    );
    assert!(
        !out.contains("whsec_") && !out.contains("sealed"),
        "no secret listed: {out}"
    );
    assert!(
        out.contains(&format!("http://{}/…", receiver.addr))
            && !out.contains("hooks/roster")
            && !out.contains("receivers-own-token"),
        "the query is not shown: {out}"
    );

    app.sign_in("yara").await;
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0].event(), "user.registered");
    // No row is written for an event nobody subscribed to.
    let rows = roster::webhooks::worker::deliveries(&app.db, None, None, 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");

    let (code, _, err) = cli(&app.database_url, &["remove", &id], true).await;
    assert_eq!(code, 0, "{err}");
    app.sign_in("yusuf").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.seen().len(), 1);
    let (code, _, err) = cli(&app.database_url, &["remove", &id], true).await;
    assert_eq!((code, err.trim()), (1, "webhooks: no endpoint has that id"));
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_later_in_order_per_user_once_each() {
    let app = spawn_hooked_app().await;
    // The receiver is down (its load balancer answers 503): two users' events pile up and
    // are retried with backoff.
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let (_, secret) = add(&app.database_url, &receiver.url(), "all").await;
    let (zoe, zoe_token) = app.sign_in("zoe").await;
    let (zack, _) = app.sign_in("zack").await;
    login(&app, "zoe").await;
    as_user(
        &app,
        Some(&zoe_token),
        "mutation { logoutEverywhere }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failing = roster::webhooks::worker::deliveries(&app.db, Some("pending"), None, 100)
        .await
        .unwrap();
    assert!(
        failing
            .iter()
            .any(|r| r.attempts >= 1 && r.last_error.as_deref() == Some("HTTP 503: ")),
        "{failing:?}"
    );
    // Only the head of each user's chain was tried; the rest wait their turn.
    assert!(
        failing
            .iter()
            .filter(|r| r.attempts > 0)
            .all(|r| r.event_type == "user.registered"),
        "{failing:?}"
    );

    receiver.status.store(200, Ordering::SeqCst);
    let delivered = || {
        receiver
            .seen()
            .into_iter()
            .filter(|s| s.answered == 200)
            .collect::<Vec<_>>()
    };
    let started = Instant::now();
    while delivered().len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{:?}",
            per_user(&delivered())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = delivered();
    assert_eq!(seen.len(), 6, "none twice");
    let users = per_user(&seen);
    assert_eq!(
        users[&zoe],
        [
            "user.registered",
            "session.created",
            "session.created",
            "session.ended"
        ]
    );
    assert_eq!(users[&zack], ["user.registered", "session.created"]);
    assert_eq!(
        users[&zoe].iter().filter(|e| *e == "session.ended").count(),
        1
    );
    assert!(seen.iter().all(|s| signed_by(s, &secret)));
}

#[tokio::test]
async fn a_failed_event_holds_the_users_later_ones_until_retried_and_metrics_count_it() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_base = Duration::from_secs(1);
        c.webhooks.webhook_max_attempts = 2;
        c.webhooks.webhook_poll_interval = Duration::from_secs(1);
        c.public_metrics = true;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    add(
        &app.database_url,
        &receiver.url(),
        "user.registered,session.created",
    )
    .await;
    let (ava, _) = app.sign_in("ava").await;
    // Two attempts at user.registered, then it fails for good; session.created waits.
    receiver.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "no third attempt: {seen:?}");
    assert!(seen.iter().all(|s| s.event() == "user.registered"));
    assert_eq!(seen[0].id, seen[1].id, "a retry carries the same id");
    let (_, failed, _) = cli(
        &app.database_url,
        &["deliveries", "--status", "failed"],
        true,
    )
    .await;
    assert!(
        failed.contains("user.registered") && failed.contains(" 500 "),
        "{failed}"
    );
    assert!(failed.contains("HTTP 500"), "{failed}");
    let (_, pending, _) = cli(
        &app.database_url,
        &["deliveries", "--status", "pending"],
        true,
    )
    .await;
    assert!(pending.contains("session.created"), "{pending}");
    let metrics = crate::helpers::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"webhook_deliveries_total{event="user.registered",outcome="attempt_failed"} 1"#,
        r#"webhook_deliveries_total{event="user.registered",outcome="failed"} 1"#,
        r#"webhook_backlog{status="failed"} 1"#,
        r#"webhook_backlog{status="pending"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // Fixed receiver, one command: both arrive, in order.
    receiver.status.store(204, Ordering::SeqCst);
    let (code, _, err) = cli(&app.database_url, &["retry", "--all-failed"], true).await;
    assert_eq!(code, 0, "{err}");
    let seen = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(seen[2].event(), "user.registered");
    assert_eq!(seen[3].event(), "session.created");
    assert_eq!(seen[3].user(), ava);
    let (code, _, _) = cli(&app.database_url, &["retry", "999999"], true).await;
    assert_eq!(code, 1);
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed_by_address_and_by_name() {
    // The server does not allow private destinations (the default).
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_retry_base = Duration::from_secs(1);
        c.webhooks.webhook_max_attempts = 1;
        c.webhooks.webhook_poll_interval = Duration::from_secs(1);
    })
    .await;
    let receiver = Receiver::start().await;
    for literal in [
        receiver.url(),
        "http://[::1]:9/x".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/x".to_owned(),
    ] {
        let (code, out, err) = cli(
            &app.database_url,
            &["add", &literal, "--events", "all"],
            false,
        )
        .await;
        assert_eq!(code, 1, "{literal}: {out}{err}");
        assert!(err.contains("private, loopback or reserved"), "{err}");
        assert!(out.is_empty());
    }
    for bad in [
        "ftp://example.com/x",
        "https://u:p@example.com/x",
        "nonsense",
    ] {
        let (code, _, err) = cli(&app.database_url, &["add", bad, "--events", "all"], false).await;
        assert_eq!(code, 1, "{bad}");
        assert!(err.contains("http:// or https://"), "{err}");
        assert!(!err.contains("u:p"), "the URL is not echoed: {err}");
    }
    let (code, _, err) = cli(
        &app.database_url,
        &["add", "https://hooks.example/x", "--events", "user.*"],
        false,
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown event type"), "{err}");

    // A name is resolved at delivery: `localhost` is refused there, the receiver never
    // hears of it.
    let by_name = format!("http://localhost:{}/hooks", receiver.addr.port());
    let (code, _, err) = cli(
        &app.database_url,
        &["add", &by_name, "--events", "all"],
        false,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    app.sign_in("bram").await;
    let started = Instant::now();
    let failed = loop {
        let rows = roster::webhooks::worker::deliveries(&app.db, Some("failed"), None, 10)
            .await
            .unwrap();
        if !rows.is_empty() {
            break rows;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some(roster::webhooks::guard::REFUSED)
    );
    assert!(receiver.seen().is_empty());
}

/// A raw receiver that answers every request with `answer`, then (when `endless`) keeps
/// sending body bytes until the client goes away; counts the requests it read.
async fn raw_receiver(answer: &'static str, endless: bool) -> (SocketAddr, Arc<AtomicU16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU16::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                counted.fetch_add(1, Ordering::SeqCst);
                if answer.is_empty() {
                    // Holds the connection, answers nothing.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                if endless {
                    let chunk = vec![b'x'; 16384];
                    while socket.write_all(&chunk).await.is_ok() {}
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn redirects_are_not_followed_endless_answers_are_cut_and_slow_receivers_time_out() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_base = Duration::from_secs(1);
        c.webhooks.webhook_max_attempts = 1;
        c.webhooks.webhook_timeout = Duration::from_secs(1);
        c.webhooks.webhook_poll_interval = Duration::from_secs(1);
    })
    .await;
    let target = Receiver::start().await;
    let redirect: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
            target.url()
        )
        .into_boxed_str(),
    );
    let (redirecting, _) = raw_receiver(redirect, false).await;
    let (endless, endless_count) = raw_receiver(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n",
        true,
    )
    .await;
    // Accepts, reads, never answers.
    let (silent, _) = raw_receiver("", false).await;
    let (r, _) = add(
        &app.database_url,
        &format!("http://{redirecting}/"),
        "user.registered",
    )
    .await;
    let (e, _) = add(
        &app.database_url,
        &format!("http://{endless}/"),
        "user.registered",
    )
    .await;
    let (s, _) = add(
        &app.database_url,
        &format!("http://{silent}/"),
        "user.registered",
    )
    .await;
    app.sign_in("cleo").await;

    let started = Instant::now();
    let rows = loop {
        let rows = roster::webhooks::worker::deliveries(&app.db, None, None, 10)
            .await
            .unwrap();
        if rows
            .iter()
            .all(|r| r.status == "failed" || r.status == "delivered")
        {
            break rows;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let of = |id: &str| {
        rows.iter()
            .find(|r| r.endpoint_id.to_string() == id)
            .unwrap()
            .clone()
    };
    let redirected = of(&r);
    assert_eq!(redirected.status, "failed");
    assert_eq!(redirected.last_status, Some(307));
    assert!(redirected.last_error.unwrap().contains("redirect"));
    assert!(target.seen().is_empty(), "the redirect was not followed");
    // A gigabyte promised, a few kilobytes read: delivered (2xx), and the worker moved on
    // well within the timeout.
    assert_eq!(of(&e).status, "delivered");
    assert_eq!(endless_count.load(Ordering::SeqCst), 1);
    let slow = of(&s);
    assert_eq!(slow.status, "failed");
    assert!(slow.last_error.unwrap().starts_with("timeout"), "{rows:?}");
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_shown_once_and_rotate_with_a_grace_period() {
    use sea_orm::EntityTrait;
    let app = spawn_hooked_app().await;
    let receiver = Receiver::start().await;
    let (id, old) = add(&app.database_url, &receiver.url(), "user.registered").await;
    let stored = roster::entity::webhook_endpoint::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert!(stored[0].secret.starts_with("sealed1:"));
    let key = old.strip_prefix("whsec_").unwrap();
    assert!(!stored[0].secret.contains(key));

    let (code, out, err) = cli(&app.database_url, &["rotate-secret", &id], true).await;
    assert_eq!(code, 0, "{err}");
    let new = out.trim().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    app.sign_in("dara").await;
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0].signature.split(' ').count(), 2, "{:?}", seen[0]);
    assert!(signed_by(&seen[0], &new) && signed_by(&seen[0], &old));
    assert!(!signed_by(
        &seen[0],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ));

    // A second rotation inside the day would drop the secret receivers may still hold.
    let (code, _, err) = cli(&app.database_url, &["rotate-secret", &id], true).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("previous secret still signs"), "{err}");

    // Another server secret opens nothing: the command says so, exit 2.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["webhooks", "rotate-secret", &id])
        .env("DATABASE_URL", &app.database_url)
        .env(
            "ROSTER_SECRET_KEY",
            "another-secret-0123456789abcdef0123456789",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not open"));
}

#[tokio::test]
async fn a_delivery_cut_by_sigkill_is_made_again_after_the_lease() {
    let (url, file) = crate::helpers::fresh_database_url().await;
    let args = [
        "--webhook-allow-private",
        "true",
        "--webhook-timeout",
        "2s",
        "--webhook-retry-base",
        "1s",
        "--webhook-poll-interval",
        "1s",
    ];
    let env_secret = [("ROSTER_SECRET_KEY", TEST_SECRET)];
    let first = crate::process::Process::start_with_env(&url, &args, &env_secret).await;
    let receiver = Receiver::start().await;
    receiver.hang.store(true, Ordering::SeqCst);
    let (_, secret) = add(&url, &receiver.url(), "user.registered").await;
    let registered = first
        .graphql(
            "mutation($i: RegisterInput!) { register(input: $i) { id } }",
            json!({ "i": { "username": "eli", "email": "eli@example.com", "password": GOOD_PASSWORD } }),
        )
        .await;
    let eli = registered["data"]["register"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The delivery is in flight (the receiver holds it) when the process dies.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let mut first = first;
    first.kill();
    receiver.hang.store(false, Ordering::SeqCst);
    let _second = crate::process::Process::start_with_env(&url, &args, &env_secret).await;
    // Its claim runs out (2 × 2 s + 5 s) and the new process delivers it: the same event id.
    let seen = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(seen[0].id, seen[1].id);
    assert_eq!(seen[1].user(), eli);
    assert!(signed_by(&seen[1], &secret));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.seen().len(), 2);
    crate::helpers::remove_sqlite(file);
}

/// The Python receiver (`tests/webhooks/receiver.py`): its port, its JSON lines as they come.
struct PythonReceiver {
    child: std::process::Child,
    port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl PythonReceiver {
    /// On a free port of its choosing, the secret read from `secret_file`, down (503) while
    /// `down_file` exists.
    fn start(secret_file: &std::path::Path, down_file: &std::path::Path) -> Self {
        use std::io::{BufRead, BufReader};
        let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect("ROSTER_TEST_DJANGO_PYTHON");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args(["127.0.0.1", "0"])
            .args([secret_file, down_file])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sink, out) = (lines.clone(), child.stdout.take().unwrap());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = ready_tx.send(port.parse::<u16>().unwrap());
                } else if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let port = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver starts");
        Self { child, port, lines }
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if lines.len() >= n {
                return lines;
            }
            assert!(started.elapsed() < within, "{n} lines expected: {lines:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs ROSTER_TEST_DJANGO_PYTHON with standardwebhooks"]
async fn a_standard_webhooks_library_verifies_every_event_delivered_after_an_outage() {
    let app = spawn_hooked_app().await;
    let dir = std::env::temp_dir().join(format!("receiver_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir(&dir).unwrap();
    let (secret_file, down_file) = (dir.join("secret"), dir.join("down"));
    std::fs::write(&down_file, "").unwrap();
    let receiver = PythonReceiver::start(&secret_file, &down_file);
    let port = receiver.port;
    let (_, secret) = add(
        &app.database_url,
        &format!("http://127.0.0.1:{port}/"),
        "all",
    )
    .await;
    std::fs::write(&secret_file, &secret).unwrap();
    // The receiver is down (503) while two users register, sign in and out.
    let (ines, ines_token) = app.sign_in("ines").await;
    let (jon, _) = app.sign_in("jon").await;
    as_user(&app, Some(&ines_token), "mutation { logout }", json!({})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(receiver.lines.lock().unwrap().is_empty());

    std::fs::remove_file(&down_file).unwrap();
    receiver.wait_for(5, Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines = receiver.lines.lock().unwrap().clone();
    assert!(lines.iter().all(|l| l["verified"] == true), "{lines:?}");
    let ids: std::collections::HashSet<_> = lines.iter().map(|l| l["id"].clone()).collect();
    assert_eq!(ids.len(), 5, "none twice: {lines:?}");
    let of = |user: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["user_id"] == user)
            .map(|l| l["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        of(&ines),
        ["user.registered", "session.created", "session.ended"]
    );
    assert_eq!(of(&jon), ["user.registered", "session.created"]);

    // The library does refuse: a forged signature and a replayed old timestamp.
    let url = format!("http://127.0.0.1:{port}/");
    let now = chrono::Utc::now().timestamp();
    for (timestamp, signature) in [
        (
            now,
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
        ),
        (now - 3600, {
            let seen = Seen {
                id: "msg_replay".into(),
                timestamp: (now - 3600).to_string(),
                signature: String::new(),
                raw: "{}".into(),
                body: Value::Null,
                answered: 0,
            };
            let key = base64::engine::general_purpose::STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap();
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
            let signed = format!("{}.{}.{}", seen.id, seen.timestamp, seen.raw);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD
                    .encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref())
            )
        }),
    ] {
        let status = crate::helpers::fresh_client()
            .post(&url)
            .header("webhook-id", "msg_replay")
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401);
    }
    let all = receiver.wait_for(7, Duration::from_secs(5)).await;
    assert!(all[5..].iter().all(|l| l["verified"] == false), "{all:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_admin_api_manages_endpoints_under_djangos_permissions_and_audits_it() {
    use crate::admin::{code, grant, make_staff};
    let app = spawn_hooked_app().await;
    let receiver = Receiver::start().await;
    let (ops_id, ops) = app.sign_in("opsperson").await;
    make_staff(&app, &ops_id, false).await;
    let add_q = "mutation($u: String!, $e: [String!]!) { addWebhookEndpoint(url: $u, events: $e) \
                 { endpoint { id url events } secret } }";
    let list_q = "{ webhookEndpoints { id url events previousSecretUntil } }";
    let url = format!("{}?token=receivers-own-token", receiver.url());
    let vars = json!({ "u": url, "e": ["user.registered", "session.created"] });

    // Staff without the permissions: refused, nothing made.
    assert_eq!(
        code(&as_user(&app, Some(&ops), add_q, vars.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&as_user(&app, Some(&ops), list_q, json!({})).await),
        "FORBIDDEN"
    );
    let (_, someone) = app.sign_in("someone").await;
    assert_eq!(
        code(&as_user(&app, Some(&someone), add_q, vars.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&as_user(&app, None, add_q, vars.clone()).await),
        "UNAUTHENTICATED"
    );
    assert!(receiver.seen().is_empty());
    assert!(
        roster::webhooks::endpoints::list(&app.db)
            .await
            .unwrap()
            .is_empty()
    );

    grant(&app, &ops_id, "roster.change_webhook").await;
    // An endpoint receives every user's username and address: adding one also takes the
    // right to read them.
    let refused = as_user(&app, Some(&ops), add_q, vars.clone()).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    grant(&app, &ops_id, "roster.view_user").await;
    // Bad input is named by field.
    for (bad, field) in [
        (json!({ "u": "ftp://x.example/", "e": ["all"] }), "url"),
        (json!({ "u": receiver.url(), "e": ["user.*"] }), "events"),
        (json!({ "u": receiver.url(), "e": [] }), "events"),
    ] {
        let answer = as_user(&app, Some(&ops), add_q, bad).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["fields"][0]["field"], field,
            "{answer}"
        );
    }
    let added = as_user(&app, Some(&ops), add_q, vars).await;
    let endpoint = &added["data"]["addWebhookEndpoint"];
    let id = endpoint["endpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{added}"))
        .to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // Path and query may hold the receiver's own token: neither is shown.
    assert_eq!(
        endpoint["endpoint"]["url"],
        format!("http://{}/…", receiver.addr)
    );
    assert_eq!(
        endpoint["endpoint"]["events"],
        json!(["user.registered", "session.created"])
    );

    // Reading needs its own permission; the secret is never read back.
    grant(&app, &ops_id, "roster.view_webhook").await;
    let listed = as_user(&app, Some(&ops), list_q, json!({})).await;
    assert_eq!(
        listed["data"]["webhookEndpoints"][0]["id"],
        id.as_str(),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains("whsec_")
            && !listed.to_string().contains("receivers-own-token")
    );

    let (newcomer, _) = app.sign_in("newcomer").await;
    let seen = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        seen.iter()
            .all(|s| s.user() == newcomer && signed_by(s, &secret))
    );
    let deliveries = as_user(
        &app,
        Some(&ops),
        "query($s: String) { webhookDeliveries(status: $s) { id eventId eventType status attempts lastHttpStatus } }",
        json!({ "s": "delivered" }),
    )
    .await;
    let rows = deliveries["data"]["webhookDeliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("{deliveries}"));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["lastHttpStatus"] == 200));
    assert!(rows.iter().any(|r| r["eventId"] == seen[0].id.as_str()));
    let bad_status = as_user(
        &app,
        Some(&ops),
        "{ webhookDeliveries(status: \"lost\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&bad_status), "BAD_USER_INPUT");

    // Rotation: both secrets sign for a day; a second rotation inside it is refused.
    let rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id) }";
    let rotated = as_user(&app, Some(&ops), rotate, json!({ "id": id })).await;
    let new = rotated["data"]["rotateWebhookSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();
    assert_eq!(
        code(&as_user(&app, Some(&ops), rotate, json!({ "id": id })).await),
        "BAD_USER_INPUT"
    );
    app.sign_in("another").await;
    let seen = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert!(signed_by(&seen[3], &new) && signed_by(&seen[3], &secret));
    let retried = as_user(
        &app,
        Some(&ops),
        "mutation { retryWebhookDeliveries }",
        json!({}),
    )
    .await;
    assert_eq!(retried["data"]["retryWebhookDeliveries"], 0, "{retried}");
    let unknown = as_user(
        &app,
        Some(&ops),
        "mutation { retryWebhookDeliveries(id: \"999999\") }",
        json!({}),
    )
    .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");

    let remove = "mutation($id: ID!) { removeWebhookEndpoint(id: $id) }";
    assert_eq!(
        as_user(&app, Some(&ops), remove, json!({ "id": id })).await["data"]["removeWebhookEndpoint"],
        true
    );
    assert_eq!(
        code(&as_user(&app, Some(&ops), remove, json!({ "id": id })).await),
        "NOT_FOUND"
    );
    let actions: Vec<String> = app
        .audit_log()
        .await
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("webhook."))
        .collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    for action in ["webhook.added", "webhook.secret_rotated", "webhook.removed"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}
