use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use roster::config::{Config, RateLimit};
use roster::entity::user;
use roster::startup::Application;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

/// Everything the tests logged, at every level, for the no-secrets-in-logs test.
pub static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    tls();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        // Production's own layers, both formats, at every level.
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let (a, b) = (Capture(buffer.clone()), Capture(buffer.clone()));
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("trace"))
            .with(roster::telemetry::layer(
                roster::config::LogFormat::Json,
                move || a.clone(),
            ))
            .with(roster::telemetry::layer(
                roster::config::LogFormat::Text,
                move || b.clone(),
            ))
            .init();
        buffer
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    /// The server's hash pool, to count the hashes it computed.
    pub hasher: roster::password::Hasher,
    /// The server's session store.
    pub sessions: roster::sessions::Sessions,
    /// The serving task: finishes when the server has shut down.
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub database_url: String,
    sqlite_file: Option<PathBuf>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        remove_sqlite(self.sqlite_file.take());
    }
}

/// Removes a test's SQLite database and every file SQLite or roster made beside it.
pub fn remove_sqlite(file: Option<PathBuf>) {
    if let Some(path) = file {
        for suffix in ["", "-wal", "-shm", ".migrate-lock", ".secret"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// Whether the suite runs against Postgres.
pub fn on_postgres() -> bool {
    std::env::var("ROSTER_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// reqwest is built without a crypto provider (see `roster::webhooks::worker`): the tests'
/// clients use ring, as roster does. Called before any test builds a client.
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database_url() -> (String, Option<PathBuf>) {
    tls();
    let name = format!("roster_test_{}", uuid::Uuid::now_v7().simple());
    match std::env::var("ROSTER_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let admin = Database::connect(&admin_url)
                .await
                .expect("ROSTER_TEST_DATABASE_URL must point to a reachable Postgres");
            drop_stale_databases(&admin).await;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), None)
        }
        _ => {
            let (url, path) = fresh_sqlite("roster_test");
            (url, Some(path))
        }
    }
}

/// A SQLite URL for a new file in the temp directory (created on first connect), and the
/// file's path for `remove_sqlite`. `prefix` names the test's files; a UUIDv7 makes it unique.
pub fn fresh_sqlite(prefix: &str) -> (String, PathBuf) {
    let path = std::env::temp_dir().join(format!("{prefix}_{}.db", uuid::Uuid::now_v7().simple()));
    (format!("sqlite://{}?mode=rwc", path.display()), path)
}

/// Drops, once per test process, the test databases of earlier runs: tests do not drop their
/// own (a test's server still holds connections when it ends), so without this every local
/// run would leave its databases behind. Only databases created over an hour ago (the time is
/// in the name's UUIDv7) go, so a run in progress elsewhere keeps its own.
async fn drop_stale_databases(admin: &DatabaseConnection) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let Ok(rows) = admin
            .query_all_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                "SELECT datname FROM pg_database WHERE datname LIKE 'roster\\_test\\_%'",
            ))
            .await
        else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for row in rows {
            let Ok(name) = row.try_get_by_index::<String>(0) else {
                continue;
            };
            let created = name
                .strip_prefix("roster_test_")
                .and_then(|id| uuid::Uuid::parse_str(id).ok())
                .and_then(|id| id.get_timestamp())
                .map(|t| t.to_unix().0);
            if created.is_some_and(|t| t + 3600 < now) {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    })
    .await;
}

/// The configuration every test starts from: defaults, a free port, a fresh database,
/// no rate limit (all tests share one client IP).
pub fn test_config(database_url: String) -> Config {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = database_url;
    config.limits.register_rate_limit = RateLimit::Off;
    config.sessions.login_rate_limit = RateLimit::Off;
    // A configured secret, as in production (and so access tokens work on PostgreSQL too);
    // the development secret beside a SQLite file has tests of its own.
    config.tokens.secret_key = Some(roster::config::SecretText::new(TEST_SECRET));
    // The admin tests sign staff in with a password alone; `mfa::staff_need_*` turns the
    // rule (on by default) back on.
    config.sessions.require_mfa_for_staff = false;
    config
}

/// The server secret of the tests' servers.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// One hash worker and a hash of a few hundred milliseconds: requests visibly overlap.
pub fn slow_hash(c: &mut Config) {
    c.hashing.hash_workers = 1;
    c.hashing.argon2_memory_kib = 64 * 1024;
    c.hashing.argon2_iterations = 3;
}

/// [`slow_hash`] with a single queue slot: the next hash is refused as busy.
pub fn full_hash_queue(c: &mut Config) {
    slow_hash(c);
    c.hashing.hash_queue = 1;
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (url, sqlite_file) = fresh_database_url().await;
    let mut app = spawn_app_on(url, adjust).await;
    app.sqlite_file = sqlite_file;
    app
}

/// An app whose graceful shutdown the test triggers.
pub async fn spawn_app_with_shutdown(
    adjust: impl FnOnce(&mut Config),
) -> (TestApp, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (url, sqlite_file) = fresh_database_url().await;
    let mut app = start(url, adjust, async move {
        let _ = rx.await;
    })
    .await;
    app.sqlite_file = sqlite_file;
    (app, tx)
}

/// An app that delivers its emails to `smtp`: polled every 100 ms, no per-address budget
/// (that budget is its own tests' business).
pub async fn spawn_app_with_smtp(smtp: &crate::mailbox::SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |c| {
        c.mail.smtp_url = Some(roster::config::SmtpUrl(url));
        c.mail.mail_poll_interval = std::time::Duration::from_millis(100);
        c.mail.mail_address_limit = roster::config::RateLimit::Off;
    })
    .await
}

/// An app on a database URL the test chose.
pub async fn spawn_app_on(url: String, adjust: impl FnOnce(&mut Config)) -> TestApp {
    start(url, adjust, std::future::pending()).await
}

async fn start(
    url: String,
    adjust: impl FnOnce(&mut Config),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> TestApp {
    init_logs();
    let mut config = test_config(url.clone());
    adjust(&mut config);
    let app = Application::build(config).await.expect("the app starts");
    let addr = app.local_addr();
    let hasher = app.hasher();
    let sessions = app.sessions();
    let server = tokio::spawn(app.run_until(shutdown));
    let db = Database::connect(&url).await.expect("test connection");
    TestApp {
        addr,
        client: client(),
        db,
        hasher,
        sessions,
        server: Some(server),
        database_url: url,
        sqlite_file: None,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `(field, code)` pairs of a `BAD_USER_INPUT` error, in order.
    pub fn field_codes(&self) -> Vec<(String, String)> {
        let error = &self.body["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{}",
            self.body
        );
        error["extensions"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap().to_owned(),
                    f["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The `extensions.code` of the first error.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }
}

pub const REGISTER: &str = "mutation Register($input: RegisterInput!) {
    register(input: $input) { id username email dateJoined }
}";

/// A password that passes every rule.
pub const GOOD_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// POSTs a raw body as `application/json` on a fresh connection.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> Answer {
        let response = fresh_client()
            .post(self.url())
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(body)
            .send()
            .await
            .expect("request");
        Answer::from(response).await
    }

    /// `GET /healthz` on a fresh connection; its status and how long it took.
    pub async fn healthz(&self) -> (u16, std::time::Duration) {
        let started = std::time::Instant::now();
        let status = fresh_client()
            .get(format!("http://{}/healthz", self.addr))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        (status, started.elapsed())
    }

    /// POSTs a GraphQL request as `application/json`, accepting the spec's preferred type.
    pub async fn graphql(&self, query: &str, variables: Value) -> Answer {
        let response = self
            .client
            .post(self.url())
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        Answer::from(response).await
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Answer {
        self.graphql(
            REGISTER,
            json!({ "input": { "username": username, "email": email, "password": password } }),
        )
        .await
    }

    /// Registers `name` (with `name@example.com`) and signs in: (user id, session token).
    pub async fn sign_in(&self, name: &str) -> (String, String) {
        let answer = self
            .register(name, &format!("{name}@example.com"), GOOD_PASSWORD)
            .await;
        let id = answer.body["data"]["register"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", answer.body))
            .to_owned();
        let login = self
            .graphql(
                "mutation($i: LoginInput!) { login(input: $i) { token } }",
                serde_json::json!({ "i": { "identifier": name, "password": GOOD_PASSWORD } }),
            )
            .await;
        let token = login.body["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", login.body))
            .to_owned();
        (id, token)
    }

    pub async fn user_count(&self) -> u64 {
        user::Entity::find().count(&self.db).await.unwrap()
    }

    pub async fn users(&self) -> Vec<user::Model> {
        user::Entity::find().all(&self.db).await.unwrap()
    }

    /// The audit log, oldest first.
    pub async fn audit_log(&self) -> Vec<roster::entity::audit_entry::Model> {
        use sea_orm::QueryOrder;
        roster::entity::audit_entry::Entity::find()
            .order_by_asc(roster::entity::audit_entry::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// The actions of the audit log about `user`, oldest first.
    pub async fn audit_actions_about(&self, user: uuid::Uuid) -> Vec<String> {
        self.audit_log()
            .await
            .into_iter()
            .filter(|e| e.target_user_id == Some(user))
            .map(|e| e.action)
            .collect()
    }
}

impl Answer {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }
}

/// A client that opens a new connection for every request, as distinct clients would.
pub fn fresh_client() -> reqwest::Client {
    client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A client builder for the tests' plain-HTTP requests. reqwest's own TLS set-up (a platform
/// verifier, built per client) costs milliseconds a client, which the timing tests would
/// measure; one rustls configuration without roots, made once, costs nothing to reuse.
pub fn client_builder() -> reqwest::ClientBuilder {
    static TLS: OnceLock<rustls::ClientConfig> = OnceLock::new();
    tls();
    let config = TLS.get_or_init(|| {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    });
    reqwest::Client::builder().tls_backend_preconfigured(config.clone())
}

/// A client for the tests' plain-HTTP requests (see [`client_builder`]).
pub fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// `GET url` with a [`client`].
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

/// Sends raw bytes on a new connection and reads until the server closes it (or `wait`).
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// `burst` requests per hour: a limit a test can exhaust and rely on not refilling.
pub fn per_hour(burst: u32) -> RateLimit {
    RateLimit::PerPeriod {
        burst: burst.try_into().unwrap(),
        period: std::time::Duration::from_secs(3600),
    }
}

/// Runs the `roster` binary with `args` and extra environment, and returns what it printed
/// (stdout and stderr together).
///
/// Awaited, never blocking: the test's own server runs on the test's runtime, and a command
/// waiting on a lock one of that server's transactions holds (SQLite's write lock, a
/// PostgreSQL row) would wait for a server that cannot run.
pub async fn roster_output(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A unique, valid username/email pair.
pub fn unique_user() -> (String, String) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let tag = &tag[tag.len() - 12..];
    (format!("user_{tag}"), format!("user_{tag}@example.com"))
}
