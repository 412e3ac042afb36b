//! Shutdown, slow clients, cancelled requests, and a database that goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    GOOD_PASSWORD, REGISTER, on_postgres, slow_hash, spawn_app_with, spawn_app_with_shutdown,
    unique_user,
};

#[tokio::test]
async fn shutdown_finishes_in_flight_registrations() {
    let (app, shutdown) = spawn_app_with_shutdown(slow_hash).await;
    let app = Arc::new(app);
    let (username, email) = unique_user();
    let in_flight = {
        let app = app.clone();
        tokio::spawn(async move { app.register(&username, &email, GOOD_PASSWORD).await })
    };
    // Long enough for the request to be accepted even on a loaded CI machine; the hash
    // (64 MiB, t=3, one worker) is still running when the signal arrives.
    tokio::time::sleep(Duration::from_millis(250)).await;
    shutdown.send(()).unwrap();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body["data"]["register"]["id"].is_string());
    assert_eq!(app.user_count().await, 1);
    // And no new connection is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.client
            .get(format!("http://{}/healthz", app.addr))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_with_408() {
    let app = spawn_app_with(|c| c.limits.body_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":")
        .await
        .unwrap();
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    assert!(
        read.is_ok(),
        "the server must not wait for the body forever"
    );
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_client_that_disconnects_while_queued_leaks_nothing() {
    let app = Arc::new(
        spawn_app_with(|c| {
            slow_hash(c);
            c.hashing.argon2_iterations = 12;
            c.hashing.hash_queue = 1;
        })
        .await,
    );
    // A occupies the only worker (its hash takes over a second)…
    let (a_name, a_email) = unique_user();
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.register(&a_name, &a_email, GOOD_PASSWORD).await })
    };
    // …once its job has left the queue for the worker.
    for _ in 0..500 {
        if app.hasher.active() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.hasher.active(), 1, "A is being hashed");
    // B takes the only queue slot, then hangs up.
    let (b_name, b_email) = unique_user();
    let abandoned = {
        let app = app.clone();
        let b_name = b_name.clone();
        tokio::spawn(async move { app.register(&b_name, &b_email, GOOD_PASSWORD).await })
    };
    for _ in 0..100 {
        if app.hasher.is_saturated() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        app.hasher.is_saturated(),
        "B holds the only queue slot before it hangs up"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    abandoned.abort();
    assert_eq!(first.await.unwrap().status, 200);
    // The slot and the worker come free again: two more registrations go through in turn.
    // The worker drops B's job just after answering A, so the first attempt may still see the
    // slot taken for a moment; a leaked slot would keep answering 503 for ever.
    for _ in 0..2 {
        let (name, email) = unique_user();
        let mut answer = app.register(&name, &email, GOOD_PASSWORD).await;
        for _ in 0..50 {
            if answer.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            answer = app.register(&name, &email, GOOD_PASSWORD).await;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let names: Vec<String> = app.users().await.into_iter().map(|u| u.username).collect();
    assert_eq!(names.len(), 3, "{names:?}; B was {b_name}");
    assert!(
        !names.contains(&b_name),
        "the abandoned registration was not performed"
    );
    assert_eq!(
        app.hasher.computed(),
        3,
        "the abandoned job was skipped, not hashed and thrown away"
    );
}

/// A new user's session token.
async fn signed_in(app: &crate::helpers::TestApp) -> String {
    let (name, email) = unique_user();
    assert_eq!(app.register(&name, &email, GOOD_PASSWORD).await.status, 200);
    let login = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": email, "password": GOOD_PASSWORD } }),
        )
        .await;
    login.body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", login.body))
        .to_owned()
}

/// What `/auth/check` answers for `token`.
async fn auth_check(app: &crate::helpers::TestApp, token: &str) -> reqwest::StatusCode {
    app.client
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// A TCP relay to Postgres that the test can cut and restore, or freeze: the connections open
/// then stay open and carry nothing more, as after a NAT entry dropped silently; or turn into
/// a black hole: new connections are accepted and never answered.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    swallow: Arc<AtomicBool>,
    conns: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
    freeze: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    /// A fresh database, a relay to its server, and an app (configured by `adjust`) that
    /// reaches the database only through the relay.
    async fn serving(
        adjust: impl FnOnce(&mut roster::config::Config),
    ) -> (Self, crate::helpers::TestApp) {
        let (url, _) = crate::helpers::fresh_database_url().await;
        // postgres://user@host:port/db → route through the relay.
        let (head, db) = url.rsplit_once('/').unwrap();
        let (user, hostport) = head.rsplit_once('@').unwrap();
        let relay = Self::start(hostport.to_owned()).await;
        let relayed = format!("{user}@127.0.0.1:{}/{db}", relay.port);
        let app = crate::helpers::spawn_app_on(relayed, adjust).await;
        (relay, app)
    }

    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let swallow = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (freeze, frozen) = tokio::sync::watch::channel(false);
        let (up2, swallow2, conns2) = (up.clone(), swallow.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                if swallow2.load(Ordering::SeqCst) {
                    // Held open, never read nor answered, until the relay cuts it.
                    conns2.lock().await.spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await
                    });
                    continue;
                }
                let target = target.clone();
                let mut frozen = frozen.clone();
                frozen.mark_unchanged();
                conns2.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            // Frozen: both sockets stay open, and nothing is read or written.
                            _ = frozen.changed() => std::future::pending::<()>().await,
                        }
                    }
                });
            }
        });
        Self {
            port,
            up,
            swallow,
            conns,
            freeze,
        }
    }

    /// The connections open now go silent; later ones are relayed as before.
    fn freeze(&self) {
        self.freeze.send_replace(true);
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.conns.lock().await.abort_all();
    }

    /// The open connections are cut; new ones are accepted and never answered, as by a host
    /// that drops packets (connecting waits for its timeout).
    async fn blackhole(&self) {
        self.swallow.store(true, Ordering::SeqCst);
        self.conns.lock().await.abort_all();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.swallow.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (an embedded SQLite file cannot become unreachable): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn the_service_reports_a_lost_database_and_recovers_without_a_restart() {
    assert!(
        on_postgres(),
        "this test cuts a TCP link to PostgreSQL; set ROSTER_TEST_DATABASE_URL"
    );
    let (relay, app) = Relay::serving(|_| {}).await;
    let ready = || async {
        app.client
            .get(format!("http://{}/readyz", app.addr))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);

    relay.cut().await;
    assert_eq!(ready().await, 503);
    let (name, email) = unique_user();
    let answer = app.register(&name, &email, GOOD_PASSWORD).await;
    assert_eq!(answer.code(), "INTERNAL_SERVER_ERROR", "{}", answer.body);
    assert_eq!(answer.body["errors"][0]["message"], "internal server error");

    relay.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if ready().await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "readiness comes back once the database does");
    let answer = app
        .graphql(
            REGISTER,
            json!({ "input": { "username": name, "email": email, "password": GOOD_PASSWORD } }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body["data"]["register"]["id"].is_string(),
        "{}",
        answer.body
    );
}

/// The session lookup keeps a connection of its own (`sessions::batched`). When that connection
/// goes silent — no reset, no answer — its statement is given up after the statement timeout,
/// and the next lookups go on a new connection instead of waiting behind it for ever.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn a_session_lookup_on_a_connection_gone_silent_is_given_up_and_replaced() {
    assert!(
        on_postgres(),
        "this test relays PostgreSQL's connections; set ROSTER_TEST_DATABASE_URL"
    );
    // Requests end after 3 s; statements after roster's shortest statement timeout, 10 s.
    let (relay, app) = Relay::serving(|c| c.limits.request_timeout_secs = 3).await;
    let token = signed_in(&app).await;
    let check = || auth_check(&app, &token);
    assert_eq!(check().await, 200);

    relay.freeze();
    let frozen = std::time::Instant::now();
    // The request's own deadline answers first; the statement is still waiting.
    assert_eq!(check().await, 408);
    // Until the statement is given up (10 s + the margin), checks wait behind it; then they go
    // on a new connection. Without the deadline they would wait for ever.
    let mut status = check().await;
    while status != 200 && frozen.elapsed() < Duration::from_secs(30) {
        status = check().await;
    }
    assert_eq!(status, 200, "checks recover on a new connection");
    let recovered = frozen.elapsed();
    assert!(
        recovered >= Duration::from_secs(10) && recovered < Duration::from_secs(20),
        "the silent statement was given up after the statement timeout and its margin, not {recovered:?}"
    );
}

/// A PostgreSQL host that stops answering (packets dropped, not refused): the check that finds
/// its lookup connection gone waits for a new one until the connect timeout (5 s) and is
/// refused; the checks after it are refused at once while a background attempt every second
/// looks for the way back, rather than each waiting for an attempt of its own with every
/// check of the process behind it; once PostgreSQL answers again, checks pass again without
/// a restart.
#[tokio::test]
#[ignore = "needs PostgreSQL (an embedded SQLite file cannot become unreachable): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn while_postgres_drops_packets_checks_are_refused_at_once_and_recover() {
    assert!(
        on_postgres(),
        "this test relays PostgreSQL's connections; set ROSTER_TEST_DATABASE_URL"
    );
    let (relay, app) = Relay::serving(|_| {}).await;
    let token = signed_in(&app).await;
    let check = || auth_check(&app, &token);
    assert_eq!(check().await, 200);

    relay.blackhole().await;
    let started = std::time::Instant::now();
    assert_eq!(check().await, 503);
    let first = started.elapsed();
    assert!(
        first >= Duration::from_secs(4) && first < Duration::from_secs(9),
        "the first check waited for the connect timeout, not {first:?}"
    );
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(check().await, 503);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "refused at once while unreachable, not after {took:?}"
        );
    }

    relay.restore();
    let restored = std::time::Instant::now();
    let mut status = check().await;
    while status != 200 && restored.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = check().await;
    }
    assert_eq!(status, 200, "checks pass again without a restart");
    // The attempt under way when the host came back may wait out its connect timeout (5 s),
    // then the next comes a second later.
    assert!(
        restored.elapsed() < Duration::from_secs(10),
        "{:?}",
        restored.elapsed()
    );
}

/// A restart or failover of PostgreSQL leaves the pool holding connections whose backends are
/// gone. On PostgreSQL every connection is pinged before it is handed out (see
/// `db::connect_with`), so each dead one becomes a reconnect, not a failed request.
#[tokio::test]
#[ignore = "needs PostgreSQL (backends to terminate): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn connections_killed_while_idle_in_the_pool_cost_no_request() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    assert!(
        on_postgres(),
        "this test terminates PostgreSQL backends; set ROSTER_TEST_DATABASE_URL"
    );
    let app = Arc::new(
        spawn_app_with(|c| {
            c.hashing.argon2_memory_kib = 1024;
            c.hashing.argon2_iterations = 1;
        })
        .await,
    );
    // Concurrent registrations, so the server's pool holds several connections.
    let register_eight = || {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let app = Arc::clone(&app);
                tokio::spawn(async move {
                    let (name, email) = unique_user();
                    app.register(&name, &email, GOOD_PASSWORD).await
                })
            })
            .collect();
        async move {
            for task in tasks {
                let answer = task.await.unwrap();
                assert_eq!(answer.status, 200, "{}", answer.body);
                assert!(
                    answer.body["data"]["register"]["id"].is_string(),
                    "{}",
                    answer.body
                );
            }
        }
    };
    register_eight().await;
    // A session whose checks go through the session lookup's own connection
    // (`sessions::batched`), which is never pinged: it must reconnect by itself.
    let token = signed_in(&app).await;
    let check = || auth_check(&app, &token);
    assert_eq!(check().await, 200);

    // Every backend of the test's database goes, as in a restart.
    let admin = Database::connect(std::env::var("ROSTER_TEST_DATABASE_URL").unwrap())
        .await
        .unwrap();
    let name = app.database_url.rsplit('/').next().unwrap();
    let killed = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        ))
        .await
        .unwrap()
        .len();
    admin.close().await.unwrap();
    // The server's pool, its session lookup's connection and this test's own connection.
    assert!(killed >= 3, "only {killed} backend(s) to terminate");
    tokio::time::sleep(Duration::from_millis(500)).await;

    register_eight().await;
    assert_eq!(check().await, 200, "the lookup's connection was replaced");
    assert_eq!(app.sessions.batched_lookups().0, 2);
}
