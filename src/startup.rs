//! The server's start-up: connect and migrate the database (`db`), start the hash workers,
//! build the router, bind, serve until a shutdown signal, then drain. The other commands
//! are in `cli`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::accounts::{AccountService, EmailPolicy};
use crate::config::Config;
use crate::graphql::{self, LoginRateLimiter, MailRateLimiter, RegisterRateLimiter, SessionCookie};
use crate::http::serve::ServeSettings;
use crate::http::{self, AppState};
use crate::mail::worker::{Delivery, DeliverySettings};
use crate::outbox::Outbox;
use crate::password::Hasher;
use crate::ratelimit::{ClientLimiter, FailureThrottle, KeyLimiter, Shared};
use crate::secret::{SecretOrigin, ServerSecret};
use crate::sessions::Sessions;

/// Why the server could not start. Printed as is: no secrets inside.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
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
    #[error("cannot set up access tokens: {0}")]
    Tokens(String),
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
    address_limiter: KeyLimiter,
    tokens: crate::tokens::AccessTokens,
    delivery: Delivery,
    webhooks: crate::webhooks::worker::Worker,
    /// For the housekeeping that completes deletions (their goodbyes).
    outbox: Outbox,
    shared: Option<Shared>,
    /// `--admin-listen`: its listener and router (probes and metrics).
    admin: Option<(TcpListener, axum::Router)>,
    metrics: crate::metrics::Metrics,
    /// `--audit-retention`.
    audit_retention: Duration,
}

impl Application {
    /// Does everything up to (and including) binding the port; port 0 picks a free one.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate().map_err(StartupError::Config)?;
        let policy = config.policy.policy().map_err(StartupError::Config)?;
        // Resolved once: it seals the access-token keys, TOTP secrets and webhook secrets.
        let secret = config
            .tokens
            .server_secret(&config.database_url)
            .map_err(StartupError::Tokens)?;
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
        let hash_settings = config.hashing.settings().map_err(StartupError::Config)?;
        let hasher = Hasher::start(&hash_settings).map_err(StartupError::Hasher)?;
        let implementation = crate::password::engine::Implementation::preferred().name();
        tracing::info!(
            implementation = %implementation,
            workers = hash_settings.workers,
            "Argon2id hashing"
        );
        let metrics = crate::metrics::Metrics::new();
        metrics.argon2_implementation(&implementation);
        hasher.set_metrics(metrics.clone());
        // Migrations and the look-alike backfill run on a pool of their own, without the
        // statement timeout the serving pool has: an index build may take longer.
        let admin = crate::db::connect_with(&config, Vec::new(), 1).await?;
        if config.migrate_on_start {
            crate::db::migrate(&admin, &config).await?;
        } else {
            crate::migrate::check(&admin)
                .await
                .map_err(crate::db::DbError::from)?;
        }
        crate::db::report_legacy_hashes(&admin).await;
        if let Err(e) = admin.close().await {
            tracing::warn!(error = %e, "closing the migration pool failed");
        }
        let statement_timeout = config.limits.request_timeout().max(Duration::from_secs(10));
        // Bounds every statement: a registration past its request deadline waits for its
        // INSERT (see `crate::deadline`), so that INSERT must itself end.
        let timeout = format!("{}ms", statement_timeout.as_millis());
        let settings = vec![("statement_timeout", timeout)];
        let db = crate::db::connect(&config, settings.clone()).await?;

        let limits = &config.limits;
        let sc = &config.sessions;
        let mut sessions = Sessions::new(db.clone(), sc.policy());
        if let Some(options) = crate::db::postgres_options(&config.database_url, &settings) {
            sessions = sessions.with_batched_lookup(options, statement_timeout);
        }
        if let Some(file) = crate::db::sqlite_file(&config.database_url) {
            // Two per core: a lookup holds one only while it steps; past them, sqlx answers.
            let n = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
            match crate::sessions::sqlite_lookup::Lookup::open(&file, n) {
                Some(lookup) => sessions = sessions.with_direct_lookup(lookup),
                None => tracing::warn!(
                    "the direct session lookup could not open the database file; sqlx answers every lookup"
                ),
            }
        }
        let shared = match &config.redis_url {
            Some(url) => Some(Shared::new(&url.0).map_err(StartupError::Config)?),
            None => None,
        };
        let failures = FailureThrottle::new(sc.login_failure_limit, limits.rate_limit_max_clients)
            .with_shared(shared.clone())
            .with_metrics(metrics.clone());
        let outbox = Outbox::new();
        let address_limiter = KeyLimiter::new(
            "mail_address",
            mc.mail_address_limit,
            limits.rate_limit_max_clients,
        )
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
            second_factor: second_factor(&config, secret.as_ref())?,
            metrics: metrics.clone(),
            deletion_grace: config.deletion_grace,
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
        let public_url = crate::mail::public_url(mc.public_url.as_deref(), bound);
        let tokens = open_tokens(
            &config,
            secret.as_ref(),
            &db,
            public_url.clone(),
            &shared,
            &metrics,
        )
        .await?;
        let webhook_sealer = secret
            .as_ref()
            .map(|(secret, _)| crate::webhooks::endpoints::sealer(secret));
        let schema = graphql::schema_builder(limits, config.introspection)
            .data(service.clone())
            .data(RegisterRateLimiter(register_limiter.clone()))
            .data(LoginRateLimiter(login_limiter.clone()))
            .data(MailRateLimiter(mail_limiter.clone()))
            .data(metrics.clone())
            .data(tokens.clone())
            .data(graphql::admin::AdminRateLimiter(
                crate::ratelimit::KeyLimiter::new(
                    "admin",
                    limits.admin_rate_limit,
                    limits.rate_limit_max_clients,
                )
                .with_shared(shared.clone())
                .with_metrics(metrics.clone()),
            ))
            .data(graphql::admin::webhooks::WebhookAdmin {
                sealer: webhook_sealer.clone(),
                allow_private: config.webhooks.webhook_allow_private,
            })
            .data(SessionCookie {
                enabled: sc.session_cookie,
                secure: sc.session_cookie_secure,
                max_age: sc.session_max_ttl,
            })
            .finish();
        let state = AppState::new(crate::http::AppParts {
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
                .then(|| crate::auth::credential::cookie_name(sc.session_cookie_secure)),
            shared: shared.clone(),
            metrics: metrics.clone(),
            hasher: hasher.clone(),
            tokens: tokens.clone(),
            auth_check_jwt: config.tokens.auth_check_jwt,
            require_mfa_for_staff: config.sessions.require_mfa_for_staff,
        });
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
        let delivery = Delivery::new(
            db.clone(),
            metrics.clone(),
            outbox.clone(),
            transport,
            templates,
            DeliverySettings {
                from: mc
                    .mail_from
                    .parse()
                    .map_err(|_| StartupError::Config("--mail-from is not an address".into()))?,
                public_url,
                verify_email_ttl: mc.verify_email_ttl,
                reset_password_ttl: mc.reset_password_ttl,
                email_change_ttl: mc.email_change_ttl,
                deletion_grace: config.deletion_grace,
                max_attempts: mc.mail_max_attempts,
                retry_base: mc.mail_retry_base,
                lease: mc.mail_lease,
                poll_interval: mc.mail_poll_interval,
                smtp_timeout: mc.smtp_timeout,
            },
        );
        let webhooks = crate::webhooks::worker::Worker::new(
            db.clone(),
            metrics.clone(),
            webhook_sealer,
            config.webhooks.settings(),
        )
        .map_err(StartupError::Config)?;
        let serve = ServeSettings {
            header_timeout: limits.header_timeout(),
            max_connections: http::serve::fit_connections_to_fd_limit(limits.max_connections),
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
            tokens,
            delivery,
            webhooks,
            outbox,
            shared,
            admin,
            metrics,
            audit_retention: config.audit_retention,
        })
    }

    /// The server's metrics.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.metrics.clone()
    }

    /// The session store, for tests that ask how tokens were resolved.
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
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
        let tokens = self.tokens.clone();
        let housekeeping_db = self.db.clone();
        let audit_retention = self.audit_retention;
        let deletions_outbox = self.outbox.clone();
        // The outbox worker runs beside the server and stops after it: an email being sent
        // when the signal comes is finished, claimed ones not yet started are handed back.
        let (stop_delivery, stopped) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(self.delivery.run(stopped.clone()));
        let webhooks = tokio::spawn(self.webhooks.run(stopped));
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
                tokens.forget_idle();
                tokens.refresh().await;
                // Accounts whose `--deletion-grace` ended (none without one).
                match crate::accounts::complete_due_deletions(&housekeeping_db, &deletions_outbox)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        accounts = n,
                        "closed accounts deleted at the end of their grace"
                    ),
                    Err(e) => tracing::warn!(error = %e, "completing due deletions failed"),
                }
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
                    if !audit_retention.is_zero() {
                        match crate::audit::purge_older_than(&housekeeping_db, audit_retention)
                            .await
                        {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(
                                entries = n,
                                "audit-log entries past --audit-retention deleted"
                            ),
                            Err(e) => tracing::warn!(error = %e, "purging the audit log failed"),
                        }
                    }
                    // Delivered and skipped emails are deleted after a week; failed ones stay for
                    // `roster outbox`.
                    let week = Duration::from_secs(7 * 86_400);
                    match crate::outbox::purge_finished(&housekeeping_db, week).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            emails = n,
                            "delivered emails older than a week purged from the outbox"
                        ),
                        Err(e) => tracing::warn!(error = %e, "purging the outbox failed"),
                    }
                    // Delivered webhooks likewise; failed ones stay for `roster webhooks`.
                    match crate::webhooks::worker::purge_delivered(&housekeeping_db, week).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            deliveries = n,
                            "delivered webhooks older than a week purged"
                        ),
                        Err(e) => tracing::warn!(error = %e, "purging webhook deliveries failed"),
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
        if tokio::time::timeout(Duration::from_secs(5), webhooks)
            .await
            .is_err()
        {
            tracing::warn!(
                "the webhook worker did not stop in time; its claimed deliveries are due again after their lease"
            );
        }
        if let Err(e) = self.db.close().await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        result
    }
}

/// The account service on its own, for a command that registers a user
/// (`roster createsuperuser`): the database (migrated as the server would), the hash
/// workers and the registration policy; emails are queued for the server to deliver.
pub async fn account_service(
    config: &Config,
) -> Result<(DatabaseConnection, AccountService), StartupError> {
    config.validate().map_err(StartupError::Config)?;
    let policy = config.policy.policy().map_err(StartupError::Config)?;
    let secret = config
        .tokens
        .server_secret(&config.database_url)
        .map_err(StartupError::Tokens)?;
    let hasher = Hasher::start(&config.hashing.settings().map_err(StartupError::Config)?)
        .map_err(StartupError::Hasher)?;
    let db = crate::db::connect(config, Vec::new()).await?;
    if config.migrate_on_start {
        crate::db::migrate(&db, config).await?;
    } else {
        crate::migrate::check(&db)
            .await
            .map_err(crate::db::DbError::from)?;
    }
    let sc = &config.sessions;
    let max = config.limits.rate_limit_max_clients;
    let service = AccountService::new(crate::accounts::Parts {
        db: db.clone(),
        hasher,
        policy,
        sessions: Sessions::new(db.clone(), sc.policy()),
        failures: FailureThrottle::new(sc.login_failure_limit, max),
        outbox: Outbox::new(),
        email: EmailPolicy {
            require_verified: config.mail.require_verified_email,
            address_limiter: KeyLimiter::new("mail_address", config.mail.mail_address_limit, max),
        },
        second_factor: second_factor(config, secret.as_ref())?,
        metrics: crate::metrics::Metrics::new(),
        deletion_grace: config.deletion_grace,
    });
    Ok((db, service))
}

/// The second factor's settings, and its keys from the server secret (none without one).
fn second_factor(
    config: &Config,
    secret: Option<&(ServerSecret, SecretOrigin)>,
) -> Result<crate::accounts::SecondFactorPolicy, StartupError> {
    if secret.is_none() && config.sessions.require_mfa_for_staff {
        // Staff need a second factor for the admin API, and none can be set up without a
        // secret to seal it: say so at start, not on a staff member's first admin call.
        tracing::warn!(
            "no server secret (--secret-key-file or ROSTER_SECRET_KEY): nobody can set up a \
             second factor, and with --require-mfa-for-staff (on) staff cannot use the admin \
             API; configure a secret, or pass --require-mfa-for-staff false"
        );
    }
    Ok(crate::accounts::SecondFactorPolicy {
        keys: secret.map(|(secret, _)| crate::mfa::Keys::new(secret)),
        challenge_ttl: config.sessions.mfa_challenge_ttl,
        issuer: config.sessions.totp_issuer.clone(),
    })
}

/// The server secret (configured, or the development one beside a SQLite file) and the
/// signing keys it opens; without a secret on PostgreSQL, tokens are unavailable, and a
/// database holding keys is refused.
async fn open_tokens(
    config: &Config,
    secret: Option<&(ServerSecret, SecretOrigin)>,
    db: &DatabaseConnection,
    issuer: String,
    shared: &Option<Shared>,
    metrics: &crate::metrics::Metrics,
) -> Result<crate::tokens::AccessTokens, StartupError> {
    use crate::tokens::AccessTokens;
    let tc = &config.tokens;
    match secret {
        Some((_, SecretOrigin::DevelopmentFile(path))) => tracing::warn!(
            path = %path.display(),
            "no --secret-key-file: access-token keys are sealed with a development secret kept beside the database, so a copy of both can mint tokens (development only)"
        ),
        Some((_, SecretOrigin::Ephemeral)) => tracing::warn!(
            "no --secret-key-file: access-token keys are sealed with a random secret that ends with this process (in-memory database)"
        ),
        Some((_, SecretOrigin::Configured)) => {}
        None => tracing::warn!(
            "no --secret-key-file or ROSTER_SECRET_KEY: accessToken answers ACCESS_TOKENS_UNAVAILABLE"
        ),
    }
    if tc.auth_check_jwt && secret.is_none() {
        return Err(StartupError::Config(
            "--auth-check-jwt needs a server secret to sign with: set --secret-key-file or \
             ROSTER_SECRET_KEY"
                .into(),
        ));
    }
    if secret.is_some()
        && config.mail.public_url.is_none()
        && config.database_url.starts_with("postgres")
    {
        tracing::warn!(
            "no --public-url: access tokens name this process's own address as their issuer, \
             which differs from process to process in a fleet; set --public-url"
        );
    }
    let settings = tc.settings(issuer).map_err(StartupError::Config)?;
    let limiter = crate::ratelimit::KeyLimiter::new(
        "access_token",
        tc.access_token_rate_limit,
        config.limits.rate_limit_max_clients,
    )
    .with_shared(shared.clone())
    .with_metrics(metrics.clone());
    AccessTokens::open(
        db.clone(),
        secret.map(|(s, _)| s),
        settings,
        limiter,
        metrics.clone(),
    )
    .await
    .map_err(|e| StartupError::Tokens(e.to_string()))
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
