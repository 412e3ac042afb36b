//! Start-up: connect and migrate the database, start the hash workers, build the router,
//! bind, serve until a shutdown signal, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr};
use tokio::net::TcpListener;

use crate::accounts::{AccountService, EmailPolicy, RegistrationPolicy};
use crate::config::Config;
use crate::graphql::{self, LoginRateLimiter, MailRateLimiter, RegisterRateLimiter, SessionCookie};
use crate::http::serve::ServeSettings;
use crate::http::{self, AppState};
use crate::mail::worker::{Delivery, DeliverySettings};
use crate::outbox::Outbox;
use crate::password::Hasher;
use crate::ratelimit::{AddressLimiter, ClientLimiter, FailureThrottle, Shared};
use crate::sessions::{SessionPolicy, Sessions};

/// Why the server could not start. Printed as is: no secrets inside.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The driver's message with the URL taken out ([`without_url`]): sea-orm quotes a URL
    /// it cannot parse, password and all.
    #[error("cannot connect to the database: {0}")]
    Database(String),
    #[error("cannot apply migrations: {0}")]
    Migration(#[source] sea_orm::DbErr),
    #[error("{0}")]
    Schema(#[from] crate::migrate::SchemaError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the hash workers: {0}")]
    Hasher(#[source] crate::password::HashError),
    #[error("cannot set up email: {0}")]
    Mail(String),
}

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    db: DatabaseConnection,
    limiters: Vec<ClientLimiter>,
    failures: FailureThrottle,
    sessions: Sessions,
    serve: ServeSettings,
    hasher: Hasher,
    address_limiter: AddressLimiter,
    delivery: Delivery,
    shared: Option<Shared>,
    /// `--admin-listen`: its listener and router (probes and metrics).
    admin: Option<(TcpListener, axum::Router)>,
    metrics: crate::metrics::Metrics,
}

impl Application {
    /// Does everything up to (and including) binding the port; port 0 picks a free one.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate().map_err(StartupError::Config)?;
        let policy =
            RegistrationPolicy::from_config(&config.policy).map_err(StartupError::Config)?;
        let mc = &config.mail;
        let templates = crate::mail::Templates::load(mc.mail_templates.as_deref())
            .map_err(StartupError::Mail)?;
        let transport = crate::mail::Transport::new(mc.smtp_url.as_ref(), mc.smtp_timeout)
            .map_err(StartupError::Mail)?;
        match &mc.smtp_url {
            None => tracing::warn!(
                "no --smtp-url: emails are printed to stdout, not sent (development only)"
            ),
            Some(url) => crate::mail::warn_if_plaintext_credentials(url),
        }
        let hasher = Hasher::start(&config.hashing).map_err(StartupError::Hasher)?;
        let metrics = crate::metrics::Metrics::new();
        hasher.set_metrics(metrics.clone());
        // Migrations and the look-alike backfill run on a pool of their own, without the
        // statement timeout the serving pool has: an index build may take longer.
        let admin = connect_with(&config, Vec::new(), 1).await?;
        if config.migrate_on_start {
            migrate(&admin, &config).await?;
        } else {
            crate::migrate::check(&admin).await?;
        }
        report_legacy_hashes(&admin).await;
        if let Err(e) = admin.close().await {
            tracing::warn!(error = %e, "closing the migration pool failed");
        }
        let statement_timeout = config.limits.request_timeout().max(Duration::from_secs(10));
        // Bounds every statement: a registration past its request deadline waits for its
        // INSERT (see `crate::deadline`), so that INSERT must itself end.
        let timeout = format!("{}ms", statement_timeout.as_millis());
        let db = connect(&config, vec![("statement_timeout", timeout)]).await?;

        let limits = &config.limits;
        let sc = &config.sessions;
        let sessions = Sessions::new(
            db.clone(),
            SessionPolicy {
                idle_ttl: sc.session_idle_ttl,
                max_ttl: sc.session_max_ttl,
                max_per_user: sc.max_sessions_per_user,
            },
        );
        let shared = match &config.redis_url {
            Some(url) => Some(Shared::new(&url.0).map_err(StartupError::Config)?),
            None => None,
        };
        let failures = FailureThrottle::new(sc.login_failure_limit, limits.rate_limit_max_clients)
            .with_shared(shared.clone())
            .with_metrics(metrics.clone());
        let outbox = Outbox::new();
        let address_limiter =
            AddressLimiter::new(mc.mail_address_limit, limits.rate_limit_max_clients)
                .with_shared(shared.clone())
                .with_metrics(metrics.clone());
        let service = AccountService::new(crate::accounts::Parts {
            db: db.clone(),
            hasher: hasher.clone(),
            policy,
            sessions: sessions.clone(),
            failures: failures.clone(),
            outbox: outbox.clone(),
            email: EmailPolicy {
                require_verified: mc.require_verified_email,
                address_limiter: address_limiter.clone(),
            },
            metrics: metrics.clone(),
        });
        let limiter = |name, rate| {
            ClientLimiter::new(
                name,
                rate,
                limits.ipv6_prefix,
                limits.rate_limit_max_clients,
            )
            .with_shared(shared.clone())
            .with_metrics(metrics.clone())
        };
        let register_limiter = limiter("register", limits.register_rate_limit);
        let request_limiter = limiter("request", limits.request_rate_limit);
        let login_limiter = limiter("login", sc.login_rate_limit);
        let mail_limiter = limiter("mail", mc.mail_rate_limit);
        let schema = graphql::schema_builder(limits, config.introspection)
            .data(service.clone())
            .data(RegisterRateLimiter(register_limiter.clone()))
            .data(LoginRateLimiter(login_limiter.clone()))
            .data(MailRateLimiter(mail_limiter.clone()))
            .data(metrics.clone())
            .data(SessionCookie {
                enabled: sc.session_cookie,
                secure: sc.session_cookie_secure,
                max_age: sc.session_max_ttl,
            })
            .finish();
        let state = AppState {
            schema,
            service,
            graphiql: config.graphiql,
            body_limit: limits.body_limit,
            max_response_bytes: limits.max_response_bytes,
            checker: graphql::document_checker(limits),
            trusted_proxies: Arc::from(limits.trusted_proxies.clone()),
            request_limiter: request_limiter.clone(),
            sessions: sessions.clone(),
            session_cookie: sc
                .session_cookie
                .then(|| crate::graphql::SessionCookie::name(sc.session_cookie_secure)),
            shared: shared.clone(),
            metrics: metrics.clone(),
            hasher: hasher.clone(),
        };
        let router = http::router(state.clone(), &config);
        let admin = match config.admin_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?;
                Some((listener, http::admin_router(state)))
            }
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let delivery = Delivery::new(
            db.clone(),
            metrics.clone(),
            outbox,
            transport,
            templates,
            DeliverySettings {
                from: mc
                    .mail_from
                    .parse()
                    .map_err(|_| StartupError::Config("--mail-from is not an address".into()))?,
                public_url: crate::mail::public_url(mc.public_url.as_deref(), bound),
                verify_email_ttl: mc.verify_email_ttl,
                reset_password_ttl: mc.reset_password_ttl,
                max_attempts: mc.mail_max_attempts,
                retry_base: mc.mail_retry_base,
                lease: mc.mail_lease,
                poll_interval: mc.mail_poll_interval,
                smtp_timeout: mc.smtp_timeout,
            },
        );
        let serve = ServeSettings {
            header_timeout: limits.header_timeout(),
            max_connections: fit_connections_to_fd_limit(limits.max_connections),
            drain_timeout: limits.shutdown_timeout(),
            write_timeout: limits.body_timeout(),
            max_connections_per_ip: limits.max_connections_per_ip,
            exempt: Arc::from(limits.trusted_proxies.clone()),
            ipv6_prefix: limits.ipv6_prefix,
        };
        Ok(Self {
            listener,
            router,
            db,
            limiters: vec![
                register_limiter,
                request_limiter,
                login_limiter,
                mail_limiter,
            ],
            failures,
            sessions,
            serve,
            hasher,
            address_limiter,
            delivery,
            shared,
            admin,
            metrics,
        })
    }

    /// The address `--admin-listen` bound, if set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The server's metrics.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.metrics.clone()
    }

    /// The hash pool, for tests that count the hashes it computed.
    pub fn hasher(&self) -> Hasher {
        self.hasher.clone()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish for at most `--shutdown-timeout-secs`, closes what is left and the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limiters = self.limiters.clone();
        let failures = self.failures.clone();
        let sessions = self.sessions.clone();
        let address_limiter = self.address_limiter.clone();
        let housekeeping_db = self.db.clone();
        // The outbox worker runs beside the server and stops after it: an email being sent
        // when the signal comes is finished, claimed ones not yet started are handed back.
        let (stop_delivery, stopped) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(self.delivery.run(stopped));
        let redis_probe = self.shared.clone().map(|s| tokio::spawn(s.run_probe()));
        // The failed-login floor learns the costliest stored formats before the first login.
        let (seed_db, seed_hasher) = (self.db.clone(), self.hasher.clone());
        tokio::spawn(async move {
            match crate::accounts::seed_failure_floor(&seed_db, &seed_hasher).await {
                Ok(classes) => {
                    tracing::debug!(classes, floor = ?seed_hasher.failure_floor(), "failed-login floor seeded")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not sample stored hashes for the failed-login floor")
                }
            }
        });
        // Housekeeping beside the server, stopped with it: idle rate-limit entries are
        // forgotten every minute, expired sessions deleted every ten (they are refused
        // already; this reclaims the rows).
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                for limiter in &limiters {
                    limiter.forget_idle();
                }
                failures.forget_idle();
                address_limiter.forget_idle();
                if ticks.is_multiple_of(10) {
                    match sessions.purge_expired().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(sessions = n, "expired sessions purged"),
                        Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
                    }
                    match crate::accounts::email_tokens::purge(&housekeeping_db).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(tokens = n, "used and expired email tokens purged"),
                        Err(e) => tracing::warn!(error = %e, "purging email tokens failed"),
                    }
                    // Delivered emails are kept a week for `roster outbox`; failed ones stay.
                    let week = Duration::from_secs(7 * 86_400);
                    match crate::outbox::purge_finished(&housekeeping_db, week).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            emails = n,
                            "delivered emails older than a week purged from the outbox"
                        ),
                        Err(e) => tracing::warn!(error = %e, "purging the outbox failed"),
                    }
                }
                ticks = ticks.wrapping_add(1);
            }
        });
        // One signal stops everything at once: the listeners (which then drain in-flight
        // requests), and the email worker, which hands back an email it is sending rather
        // than hold the process for a slow relay.
        let (stop_all, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_delivery.send(true);
            let _ = stop_all.send(true);
        });
        let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let admin = self.admin.map(|(listener, router)| {
            tokio::spawn(http::serve::serve(
                listener,
                router,
                self.serve.clone(),
                signal(stopping.clone()),
            ))
        });
        let result =
            http::serve::serve(self.listener, self.router, self.serve, signal(stopping)).await;
        sweeper.abort();
        if let Some(probe) = redis_probe {
            probe.abort();
        }
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        if tokio::time::timeout(Duration::from_secs(5), delivery)
            .await
            .is_err()
        {
            tracing::warn!(
                "the email worker did not stop in time; its claimed emails are due again after their lease"
            );
        }
        if let Err(e) = self.db.close().await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        result
    }
}

/// Applies pending migrations under the database lock, then fills data a migration left to
/// code (look-alike keys of users created before they existed).
async fn migrate(admin: &DatabaseConnection, config: &Config) -> Result<usize, StartupError> {
    let file = sqlite_file_to_migrate(&config.database_url);
    let applied = crate::migrate::apply(admin, file.as_deref()).await?;
    let filled = crate::accounts::backfill_skeletons(admin)
        .await
        .map_err(StartupError::Migration)?;
    if filled > 0 {
        tracing::info!(
            users = filled,
            "look-alike keys filled in for existing users"
        );
    }
    Ok(applied)
}

/// `roster migrate`: exit 0 once the schema is current, 1 when it cannot be (a newer schema,
/// a failed migration), 2 when the database cannot be reached.
pub async fn migrate_command(config: &Config) -> std::process::ExitCode {
    use std::process::ExitCode;
    let admin = match connect_with(config, Vec::new(), 1).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("migrate: {e}");
            return ExitCode::from(2);
        }
    };
    let result = migrate(&admin, config).await;
    let _ = admin.close().await;
    match result {
        Ok(0) => {
            eprintln!("migrate: the schema is up to date");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            eprintln!("migrate: {n} migration(s) applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Says at start-up how many users still carry a hash that is not roster's Argon2id (imported
/// from Django, or made with other parameters): each is upgraded at that user's next login.
async fn report_legacy_hashes(db: &DatabaseConnection) {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let legacy = crate::entity::user::Entity::find()
        .filter(crate::entity::user::Column::PasswordHash.not_like("$argon2id$%"))
        .count(db)
        .await;
    match legacy {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            users = n,
            "users still on imported (non-Argon2id) password hashes; each is upgraded at its next login"
        ),
        Err(e) => tracing::warn!(error = %e, "counting users on legacy hashes failed"),
    }
}

/// `roster import-django`: migrates the target database, imports, prints a summary.
/// Exit status 0 when the import ran (conflicts listed), 1 when `--on-conflict fail` refused
/// it, 2 when it could not run.
pub async fn import_django(
    config: &Config,
    args: &crate::import::ImportArgs,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    if args.status {
        return import_status(config).await;
    }
    let result = async {
        config.validate().map_err(|e| e.to_string())?;
        let params = config.hashing.params().map_err(|e| e.to_string())?;
        // The import asks PostgreSQL the same `IN (…500 values…)` questions page after page
        // while the table grows inside its transaction; a cached generic plan for those
        // turns into a sequential scan per query (200 rows/s measured). Custom plans use
        // the unique indexes.
        let custom_plans = vec![("plan_cache_mode", "force_custom_plan".to_owned())];
        let admin = connect_with(config, Vec::new(), 1)
            .await
            .map_err(|e| e.to_string())?;
        migrate(&admin, config).await.map_err(|e| e.to_string())?;
        let _ = admin.close().await;
        let db = connect(config, custom_plans)
            .await
            .map_err(|e| e.to_string())?;
        let mut report: Box<dyn std::io::Write> = match &args.report {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        let started = std::time::Instant::now();
        let summary = crate::import::run(
            &db,
            args,
            config.hashing.foreign_limits(),
            &params,
            &mut report,
        )
        .await
        .map_err(|e| e.to_string())?;
        let _ = db.close().await;
        Ok::<_, String>((summary, started.elapsed()))
    }
    .await;
    match result {
        Ok((s, took)) => {
            let algorithms: Vec<String> = s
                .by_algorithm
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect();
            eprintln!(
                "import-django: {} read, {} imported, {} skipped (already imported), {} conflicts, {} warnings in {:.1} s ({:.0} rows/s); by hash: {}",
                s.read,
                s.imported,
                s.skipped,
                s.conflicts,
                s.warnings,
                took.as_secs_f64(),
                s.read as f64 / took.as_secs_f64().max(1e-9),
                if algorithms.is_empty() {
                    "none".to_owned()
                } else {
                    algorithms.join(", ")
                }
            );
            if s.committed {
                ExitCode::SUCCESS
            } else if args.dry_run {
                eprintln!("import-django: dry run, nothing written");
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "import-django: {} conflicts and --on-conflict fail: nothing written",
                    s.conflicts
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("import-django: {e}");
            ExitCode::from(2)
        }
    }
}

/// `roster import-django --status`: users by stored hash, on standard output; exit 0, or 2
/// when the database could not be read. Reads only; migrates nothing.
async fn import_status(config: &Config) -> std::process::ExitCode {
    use std::process::ExitCode;
    let result = async {
        config.validate().map_err(|e| e.to_string())?;
        let params = config.hashing.params().map_err(|e| e.to_string())?;
        // The default URL creates its SQLite file (`mode=rwc`); a status must not.
        if let Some(path) = sqlite_file(&config.database_url)
            && !path.exists()
        {
            return Err(format!("no database at {}", path.display()));
        }
        let db = connect(config, Vec::new())
            .await
            .map_err(|e| e.to_string())?;
        // Read-only, so it does not migrate; it says so rather than "no such table".
        match crate::migrate::check(&db).await {
            Ok(()) => {}
            Err(crate::migrate::SchemaError::Pending(n)) => {
                return Err(format!(
                    "the database lacks {n} migration(s): run `roster migrate` (or an import) first"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        let status = crate::import::status(&db, &params)
            .await
            .map_err(|e| e.to_string());
        let _ = db.close().await;
        status
    }
    .await;
    match result {
        Ok(s) => {
            println!("users: {} ({} imported from Django)", s.users, s.imported);
            for (algorithm, n) in &s.by_algorithm {
                println!("  {algorithm:<30} {n:>10}");
            }
            println!(
                "to upgrade at next login: {} (hashes other than Argon2id with the configured parameters; {} more on deactivated accounts, which cannot log in)",
                s.to_upgrade, s.to_upgrade_inactive
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("import-django --status: {e}");
            ExitCode::from(2)
        }
    }
}

/// The file a `sqlite:` URL names, as sqlx reads it (percent-decoded), if it names one (not
/// an in-memory database).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    sqlite_url(url).map(|(file, _)| file)
}

/// The file to take the migration lock beside: [`sqlite_file`], unless the URL opens it
/// read-only or immutable (nothing can be migrated there, and its directory may be
/// read-only).
fn sqlite_file_to_migrate(url: &str) -> Option<std::path::PathBuf> {
    let (file, query) = sqlite_url(url)?;
    let read_only = query
        .iter()
        .any(|&(key, value)| (key, value) == ("mode", "ro") || key == "immutable");
    (!read_only).then_some(file)
}

/// The file sqlx opens for a `sqlite:` URL that names one (not an in-memory database), and
/// the URL's query pairs. (The query is split here: sqlx keeps its reading private, and its
/// `to_url_lossy` panics on an in-memory database's internal name.)
fn sqlite_url(url: &str) -> Option<(std::path::PathBuf, Vec<(&str, &str)>)> {
    use std::str::FromStr as _;
    let rest = url.strip_prefix("sqlite:")?;
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query: Vec<(&str, &str)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let path = path.strip_prefix("//").unwrap_or(path);
    let memory = path.is_empty() || path == ":memory:" || query.contains(&("mode", "memory"));
    (!memory).then(|| (options.get_filename().to_path_buf(), query))
}

/// `roster outbox list|retry`: prints to stdout; exit 0, 1 when `retry ID` found no failed
/// email with that id, 2 when the database could not be read.
pub async fn outbox_command(
    config: &Config,
    command: &crate::config::OutboxCommand,
) -> std::process::ExitCode {
    use crate::config::OutboxCommand;
    use std::process::ExitCode;
    let db = match connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("outbox: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        OutboxCommand::List { limit } => crate::outbox::unfinished(&db, *limit).await.map(|rows| {
            println!(
                "{:<36}  {:<14}  {:<9}  {:>8}  {:<25}  {:<30}  last error",
                "id", "kind", "status", "attempts", "next attempt (UTC)", "recipient"
            );
            for r in &rows {
                println!(
                    "{:<36}  {:<14}  {:<9}  {:>8}  {:<25}  {:<30}  {}",
                    r.id,
                    r.kind,
                    r.status,
                    r.attempts,
                    if r.status == crate::outbox::status::FAILED {
                        "-".to_owned()
                    } else {
                        r.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string()
                    },
                    printable(&r.recipient),
                    printable(r.last_error.as_deref().unwrap_or("-"))
                );
            }
            eprintln!("outbox: {} not delivered", rows.len());
            ExitCode::SUCCESS
        }),
        OutboxCommand::Retry { id, all_failed } => {
            let target = if *all_failed { None } else { *id };
            crate::outbox::retry_failed(&db, target).await.map(|n| {
                eprintln!("outbox: {n} failed email(s) due again now");
                if n == 0 && target.is_some() {
                    eprintln!("outbox: no failed email has that id");
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            })
        }
    };
    let _ = db.close().await;
    result.unwrap_or_else(|e| {
        eprintln!("outbox: cannot read the outbox: {e}");
        ExitCode::from(2)
    })
}

/// A stored value fit for a terminal: control characters (escapes, line breaks) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Raises the soft file-descriptor limit to the hard one, and lowers the connection cap to
/// what the limit leaves room for (64 descriptors kept for the database pool, logs and the
/// listener), so a connection flood is answered 503 instead of failing `accept` with EMFILE.
fn fit_connections_to_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write only the struct passed by pointer.
        let soft = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return wanted;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        };
        let room = usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(64)
            .max(1);
        if room < wanted {
            tracing::warn!(
                max_connections = room,
                wanted,
                "the file-descriptor limit lowers the connection cap"
            );
            return room;
        }
    }
    wanted
}

/// Opens the pool. SQLite gets WAL (readers never wait for the writer), a busy timeout (a
/// writer waits for the lock instead of failing) and `synchronous=NORMAL` (safe with WAL).
///
/// `postgres_settings` are session settings for every PostgreSQL connection of the pool
/// (ignored on SQLite): the serving pool's `statement_timeout`, the importer's plan mode.
pub async fn connect(
    config: &Config,
    postgres_settings: Vec<(&'static str, String)>,
) -> Result<DatabaseConnection, StartupError> {
    let workers = config.hashing.workers() as u32;
    let max = if config.db_max_connections > 0 {
        config.db_max_connections
    } else {
        // Every registration holds a connection twice, briefly; a few per hash worker keeps
        // the workers fed without crowding Postgres when many instances share it.
        (workers * 4).max(4)
    };
    connect_with(config, postgres_settings, max).await
}

/// [`connect`] with a pool of at most `max` connections (the migration pool has one: its
/// advisory lock belongs to that connection).
async fn connect_with(
    config: &Config,
    postgres_settings: Vec<(&'static str, String)>,
    max: u32,
) -> Result<DatabaseConnection, StartupError> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(max)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |o| o.options(postgres_settings.clone()))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|o| o.after_connect(|conn, _| Box::pin(plan_once(conn))));
    if config.database_url.starts_with("sqlite:") {
        // sqlx pings a connection when it goes back to the pool, and by default again when
        // it is taken out. On SQLite a ping is only a hand-off to the connection's own thread
        // (there is no server that could have gone away), and under load each hand-off
        // preempts a hash worker: skip the second ping for a connection used in the last
        // second (docs/benchmarks-log.md, "Login, 2026-12-03 evening"). PostgreSQL keeps it: after a
        // restart or a failover it is what turns every dead pooled connection into a
        // reconnect instead of a failed request (tested:
        // `resilience::connections_killed_while_idle_in_the_pool_cost_no_request`; skipping
        // it for recently used connections on PostgreSQL too gained nothing measurable,
        // docs/benchmarks-log.md "Login, 2026-12-04").
        options.test_before_acquire_if_idle_for(Duration::from_secs(1));
    }
    // Several processes opening one fresh SQLite file together: switching it to WAL needs the
    // database to itself, and that first open answers SQLITE_BUSY at once instead of waiting
    // out the busy timeout. Try again for as long as the busy timeout would have waited.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Database::connect(options.clone()).await {
            Err(e) if sqlite_busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => {
                return other.map_err(|e| {
                    StartupError::Database(without_url(&e.to_string(), &config.database_url))
                });
            }
        }
    }
}

/// `message` with every copy of `url` and of its password replaced: a driver may quote
/// the connection string in an error, and start-up errors are printed as they are.
fn without_url(message: &str, url: &str) -> String {
    let mut message = message.replace(url, "<--database-url>");
    // A URL that does not parse has no password we could find by parsing: take what sits
    // between the scheme's `//user:` and the last `@`, as a parser would read it.
    let secret = url.split_once("://").and_then(|(_, rest)| {
        let userinfo = &rest[..rest.rfind('@')?];
        let (_, password) = userinfo.split_once(':')?;
        (!password.is_empty()).then_some(password)
    });
    if let Some(secret) = secret {
        message = message.replace(secret, "***");
    }
    message
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for a
/// new connection: a statement is planned once, when sqlx first prepares it, whatever values
/// are bound to it later.
///
/// Why: without it SQLite marks a statement for re-preparing whenever a newly bound value
/// *could* change its plan, and since 3.4x a bound `LIMIT ?` is such a value. sea-orm binds
/// every limit, `.one()`'s `LIMIT 1` included, so most of roster's statements were parsed
/// and planned again at every execution: 27% of the instructions of a login on SQLite, and
/// 60% of SQLite's own (callgrind, docs/benchmarks-log.md "SQLite re-planned its statements at every execution").
/// What the guarantee costs: plans that depend on a bound value (a partial index matched by
/// it, `LIKE ?` prefix ranges, STAT4 samples after `ANALYZE`); roster has none of them.
///
/// sqlx has no setting for it, so this is one FFI call on the connection's handle.
async fn plan_once(conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    use std::ffi::c_int;
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut now_on: c_int = -1;
    // SAFETY: `db` is the connection's open handle, held locked by `handle` (sqlx's worker
    // thread does not touch it meanwhile) for the whole call. `SQLITE_DBCONFIG_ENABLE_QPSG`
    // takes exactly an `int` (1: on) and an `int*` that SQLite writes the new setting to;
    // `now_on` outlives the call.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as c_int,
            &mut now_on as *mut c_int,
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK || now_on != 1 {
        return Err(sea_orm::sqlx::Error::Configuration(
            format!("SQLite refused SQLITE_DBCONFIG_ENABLE_QPSG (code {rc})").into(),
        ));
    }
    Ok(())
}

/// SQLite's "database is locked" (`SQLITE_BUSY` and its extended codes).
fn sqlite_busy(e: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(e) = &**e else {
        return false;
    };
    e.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
        && e.code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn sqlite_urls_name_the_file_sqlx_opens_and_the_lock_goes_beside_writable_ones() {
        let file = |url| sqlite_file(url);
        let to_migrate = |url| sqlite_file_to_migrate(url);
        assert_eq!(
            file("sqlite://roster.db?mode=rwc"),
            Some(PathBuf::from("roster.db"))
        );
        assert_eq!(
            file("sqlite:///var/lib/roster/my%20db.db"),
            Some(PathBuf::from("/var/lib/roster/my db.db")),
            "percent-decoded as sqlx decodes it"
        );
        for memory in [
            "sqlite::memory:",
            "sqlite://?mode=memory",
            "sqlite://a.db?mode=memory",
        ] {
            assert_eq!(file(memory), None, "{memory}");
            assert_eq!(to_migrate(memory), None, "{memory}");
        }
        assert_eq!(
            to_migrate("sqlite://roster.db?mode=rwc"),
            Some(PathBuf::from("roster.db"))
        );
        for read_only in ["sqlite://a.db?mode=ro", "sqlite://a.db?immutable=true"] {
            assert_eq!(file(read_only), Some(PathBuf::from("a.db")), "{read_only}");
            assert_eq!(to_migrate(read_only), None, "{read_only}");
        }
        assert_eq!(file("postgres://u@h/db"), None);
        assert_eq!(to_migrate("postgres://u@h/db"), None);
    }
}
