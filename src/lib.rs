//! roster: a GraphQL account service. See `docs/api.md` for the API and `docs/errors.md` for its error codes.

/// The registration domain: newtypes, rules, the service.
pub mod accounts;
/// Operators: Django's permission model, the admin use cases, the audit log.
pub mod admin;
/// The audit log: written in the transaction of the change it records.
pub mod audit;
/// The auth seam: a request's credential, the caller it stands for, and what they may do.
pub mod auth;
/// The binary's command line and its commands (`migrate`, `import-django`, `outbox`).
pub mod cli;
/// Settings from flags and environment.
pub mod config;
/// Opening and migrating the database.
pub mod db;
/// The request deadline that lets a started commit finish.
pub mod deadline;
/// SeaORM entities.
pub mod entity;
/// The service's error type and its stable codes.
pub mod error;
/// The GraphQL schema.
pub mod graphql;
/// The HTTP layer in front of the schema.
pub mod http;
/// `roster import-django`: Django users and their hashes into roster.
pub mod import;
/// Email: templates, transports (SMTP, console), the outbox delivery worker.
pub mod mail;
/// Prometheus metrics, one registry per server.
pub mod metrics;
/// A second factor: TOTP and recovery codes, kept sealed.
pub mod mfa;
/// Migrations at start-up or by `roster migrate`, under a database lock.
pub mod migrate;
/// The transactional outbox: emails queued in the transaction that needs them.
pub mod outbox;
/// Password hashing and verification on a bounded worker pool.
pub mod password;
/// Per-client rate limits keyed by IP or IPv6 prefix, with bounded memory.
pub mod ratelimit;
/// The server secret: what seals access-token keys, TOTP secrets and webhook secrets.
pub mod secret;
/// Sessions: hashed opaque tokens, expiry, revocation.
pub mod sessions;
/// Connect, migrate, bind, serve, shut down.
pub mod startup;
/// JSON that refuses repeated object keys (request bodies, dumpdata files).
pub mod strict_json;
/// The last active staff superuser stays one (admin changes and self-deletion alike).
pub mod superusers;
/// Log output.
pub mod telemetry;
/// Access tokens (ES256 JWTs), their signing keys and the server secret that seals them.
pub mod tokens;
/// The Django ids of deleted accounts, which an import never brings back.
pub mod tombstones;
/// Transactions that read, then write (SQLite's write lock taken first).
pub mod txn;
/// Webhooks: events written with the change, signed, delivered through the SSRF guard.
pub mod webhooks;
