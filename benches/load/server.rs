//! The server under test: a scratch database, the release binary in a child process.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

use super::*;

pub(crate) struct BenchDatabase {
    pub(crate) url: String,
    pub(crate) cleanup: Cleanup,
}

pub(crate) enum Cleanup {
    File(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl BenchDatabase {
    pub(crate) async fn create(backend: Backend) -> Self {
        let name = format!("roster_bench_{}", uuid::Uuid::now_v7().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("ROSTER_BENCH_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let db = Database::connect(&admin)
                    .await
                    .expect("PostgreSQL reachable");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                db.close().await.ok();
                // The database name is the path's last segment; a query string (`?host=` for
                // a Unix socket, `?sslmode=`) stays as it is.
                let (path, query) = admin
                    .split_once('?')
                    .map_or((admin.as_str(), None), |(p, q)| (p, Some(q)));
                let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                Self {
                    url: format!("{base}/{name}{query}"),
                    cleanup: Cleanup::Postgres { admin, name },
                }
            }
        }
    }

    pub(crate) async fn drop_it(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin, name } => {
                if let Ok(db) = Database::connect(&admin).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    db.close().await.ok();
                }
            }
        }
    }
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
}

impl Server {
    pub(crate) fn start(database_url: &str) -> Self {
        // `ROSTER_BENCH_SERVER` runs another build (an older release, for a before/after
        // under one harness and one raw-rate reference). Settings go by environment so a
        // build that predates one of them still starts (clap ignores unknown variables).
        let binary = std::env::var("ROSTER_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roster").to_owned());
        // The log goes to a file, as a service's log file would: read through a pipe, every
        // line would wake a reader thread here, and on two cores that wake-up preempts a hash
        // worker — a cost of this harness, not of roster.
        let log_path = std::env::temp_dir().join(format!(
            "roster_bench_{}_{}.log",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let log = std::fs::File::create(&log_path).expect("server log file");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .env("ROSTER_REGISTER_RATE_LIMIT", "off")
            .env("ROSTER_REQUEST_RATE_LIMIT", "off")
            // The flood models many clients; from one address it would mostly measure the
            // per-address connection cap instead.
            .env("ROSTER_MAX_CONNECTIONS_PER_IP", "100000")
            // One load generator logs in to one account, over and over.
            .env("ROSTER_LOGIN_RATE_LIMIT", "off")
            .env("ROSTER_ACCESS_TOKEN_RATE_LIMIT", "off")
            // Access tokens on PostgreSQL too (SQLite would make a development secret).
            .env(
                "ROSTER_SECRET_KEY",
                "bench-secret-0123456789abcdef0123456789abcdef",
            )
            .env("ROSTER_LOGIN_FAILURE_LIMIT", "off")
            .env("DATABASE_URL", database_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start roster");
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(|line| {
                line.trim()
                    .strip_prefix("roster is ready: GraphiQL at http://")
                    .map(|rest| rest.trim_end_matches("/graphql").to_owned())
            }) {
                break addr.parse().expect("address");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("roster exited ({status}) before it was ready; its log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "roster did not start; its log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = std::fs::remove_file(&log_path);
        let pid = child.id();
        Self { child, pid, addr }
    }

    /// SIGTERM, as an orchestrator would, then wait.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub(crate) async fn first_answer(addr: SocketAddr) -> Option<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let request = graphql_request(r#"{"query":"{ __typename }"}"#);
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(addr).await
            && let Ok((200, _)) = conn.send(&request).await
        {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}
