//! The database: opening the pool (per-engine settings, the SQLite plan-once call), reading a
//! `sqlite:` URL as sqlx does, and migrating under the lock. Used by the server's start-up
//! and by every command that touches the database.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr};

use crate::config::Config;

/// Why the database could not be opened or brought up to date. Printed as is: no secrets.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The driver's message with the URL taken out ([`without_url`]): sea-orm quotes a URL
    /// it cannot parse, password and all.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("cannot apply migrations: {0}")]
    Migration(#[source] DbErr),
    #[error("{0}")]
    Schema(#[from] crate::migrate::SchemaError),
}

/// Applies pending migrations under the database lock, then fills data a migration left to
/// code (look-alike keys of users created before they existed).
pub(crate) async fn migrate(admin: &DatabaseConnection, config: &Config) -> Result<usize, DbError> {
    let file = sqlite_file_to_migrate(&config.database_url);
    let applied = crate::migrate::apply(admin, file.as_deref()).await?;
    let filled = crate::accounts::backfill_skeletons(admin)
        .await
        .map_err(DbError::Migration)?;
    if filled > 0 {
        tracing::info!(
            users = filled,
            "look-alike keys filled in for existing users"
        );
    }
    Ok(applied)
}

/// Says at start-up how many users still carry a hash that is not roster's Argon2id (imported
/// from Django, or made with other parameters): each is upgraded at that user's next login.
pub(crate) async fn report_legacy_hashes(db: &DatabaseConnection) {
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

/// The file a `sqlite:` URL names, as sqlx reads it (percent-decoded), if it names one (not
/// an in-memory database).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
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

/// What the pool's PostgreSQL connections are opened with (the URL, `settings` as session
/// settings, no statement logging), for the connections roster holds outside the pool
/// (`sessions::batched`); `None` for a URL that is not PostgreSQL's.
pub fn postgres_options(
    url: &str,
    settings: &[(&'static str, String)],
) -> Option<sea_orm::sqlx::postgres::PgConnectOptions> {
    use sea_orm::sqlx::ConnectOptions as _;
    use std::str::FromStr as _;
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return None;
    }
    let options = sea_orm::sqlx::postgres::PgConnectOptions::from_str(url).ok()?;
    Some(
        options
            .options(settings.iter().cloned())
            .disable_statement_logging(),
    )
}

/// Opens the pool. SQLite gets WAL (readers never wait for the writer), a busy timeout (a
/// writer waits for the lock instead of failing) and `synchronous=NORMAL` (safe with WAL).
///
/// `postgres_settings` are session settings for every PostgreSQL connection of the pool
/// (ignored on SQLite): the serving pool's `statement_timeout`, the importer's plan mode.
pub async fn connect(
    config: &Config,
    postgres_settings: Vec<(&'static str, String)>,
) -> Result<DatabaseConnection, DbError> {
    let workers = config.hashing.settings().map_or(1, |s| s.workers) as u32;
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
pub(crate) async fn connect_with(
    config: &Config,
    postgres_settings: Vec<(&'static str, String)>,
    max: u32,
) -> Result<DatabaseConnection, DbError> {
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
                    DbError::Connect(without_url(&e.to_string(), &config.database_url))
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
