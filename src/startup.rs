//! Start-up: connect and migrate the database, start the hash workers, build the router,
//! bind, serve until a shutdown signal, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tokio::net::TcpListener;

use crate::accounts::{AccountService, RegistrationPolicy};
use crate::config::Config;
use crate::graphql::{self, RegisterRateLimiter};
use crate::http::{self, AppState};
use crate::password::Hasher;

/// Why the server could not start. Printed as is: no secrets inside.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Database(#[source] sea_orm::DbErr),
    #[error("cannot apply migrations: {0}")]
    Migration(#[source] sea_orm::DbErr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the hash workers: {0}")]
    Hasher(#[source] crate::password::HashError),
}

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    db: DatabaseConnection,
    rate_limiter: RegisterRateLimiter,
}

impl Application {
    /// Does everything up to (and including) binding the port; port 0 picks a free one.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let policy =
            RegistrationPolicy::from_config(&config.policy).map_err(StartupError::Config)?;
        let hasher = Hasher::start(&config.hashing).map_err(StartupError::Hasher)?;
        let db = connect(&config).await?;
        Migrator::up(&db, None)
            .await
            .map_err(StartupError::Migration)?;

        let service = AccountService::new(db.clone(), hasher, policy);
        let rate_limiter = RegisterRateLimiter::new(config.limits.register_rate_limit);
        let schema = graphql::schema_builder(&config.limits, config.introspection)
            .data(service.clone())
            .data(rate_limiter.clone())
            .finish();
        let state = AppState {
            schema,
            service,
            graphiql: config.graphiql,
            body_limit: config.limits.body_limit,
            trusted_proxies: Arc::from(config.limits.trusted_proxies.clone()),
        };
        let router = http::router(state, &config);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            router,
            db,
            rate_limiter,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish, and closes the database pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limiter = self.rate_limiter.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiter.forget_idle();
            }
        });
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        if let Err(e) = self.db.close().await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        result
    }
}

/// Opens the pool. SQLite gets WAL (readers never wait for the writer), a busy timeout (a
/// writer waits for the lock instead of failing) and `synchronous=NORMAL` (safe with WAL).
pub async fn connect(config: &Config) -> Result<DatabaseConnection, StartupError> {
    let workers = config.hashing.workers() as u32;
    let max = if config.db_max_connections > 0 {
        config.db_max_connections
    } else {
        // Every registration holds a connection twice, briefly; a few per hash worker keeps
        // the workers fed without crowding Postgres when many instances share it.
        (workers * 4).max(4)
    };
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(max)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .map_err(StartupError::Database)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
