//! Schema migrations: applied by `roster migrate`, or at start-up (`--migrate-on-start`, the
//! default, so `cargo run` needs no setup), safe with several processes starting at once.
//!
//! On PostgreSQL the whole check-and-apply runs under an advisory lock on a connection of its
//! own, on SQLite under an exclusive lock on a file beside the database
//! (`<database>.migrate-lock`): a second process waits, then finds nothing left to do. A database whose applied
//! migrations this binary does not know (a newer roster migrated it) is refused, never
//! "repaired".

use std::collections::HashSet;
use std::path::Path;

use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement};

/// The advisory lock's key: the ASCII of "roster" (any fixed number would do; this one is
/// easy to recognise in `pg_locks`).
const LOCK_KEY: i64 = 0x726f_7374_6572;

/// Why the schema and this binary cannot work together.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database schema is newer than this roster (it has migration(s) {0} that this build does not know); run the roster version that migrated it"
    )]
    Newer(String),
    #[error(
        "the database lacks {0} migration(s) and --migrate-on-start is false: run `roster migrate` first"
    )]
    Pending(usize),
    #[error("cannot take the migration lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Database(#[from] DbErr),
}

/// What the database holds, measured against this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Known migrations not applied yet.
    pub pending: Vec<String>,
    /// Applied migrations this build does not know (the schema is newer).
    pub unknown: Vec<String>,
}

/// Reads the migration table without creating it.
pub async fn status(db: &DatabaseConnection) -> Result<Status, DbErr> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let manager = SchemaManager::new(db);
    let applied: HashSet<String> = if manager.has_table("seaql_migrations").await? {
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await?
        .iter()
        .filter_map(|row| row.try_get::<String>("", "version").ok())
        .collect()
    } else {
        HashSet::new()
    };
    let known_set: HashSet<&String> = known.iter().collect();
    let mut unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known_set.contains(v))
        .cloned()
        .collect();
    unknown.sort();
    Ok(Status {
        pending: known.into_iter().filter(|m| !applied.contains(m)).collect(),
        unknown,
    })
}

/// Applies what is pending and answers how many migrations that was. `db` must be a pool of
/// one connection: the advisory lock belongs to a connection, and every statement of the
/// migration must run on the one holding it. `sqlite_file` is the database file on SQLite
/// (`None` in memory, where no other process can share the database).
pub async fn apply(
    db: &DatabaseConnection,
    sqlite_file: Option<&Path>,
) -> Result<usize, SchemaError> {
    let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
    // Held until this function returns; the OS releases it if the process dies.
    let _file_lock = match sqlite_file {
        Some(file) if !postgres => Some(lock_beside(file).await?),
        _ => None,
    };
    if postgres {
        db.execute_unprepared(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
            .await?;
    }
    let result = async {
        // Read under the lock: another process may have just done the work.
        let found = status(db).await?;
        if !found.unknown.is_empty() {
            return Err(SchemaError::Newer(found.unknown.join(", ")));
        }
        if !found.pending.is_empty() {
            Migrator::up(db, None).await?;
            tracing::info!(applied = found.pending.len(), "migrations applied");
        }
        Ok(found.pending.len())
    }
    .await;
    if postgres {
        // Also released when the connection closes, should this fail.
        let _ = db
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .await;
    }
    result
}

/// Waits for an exclusive lock on `<file>.migrate-lock`. Why a file and not SQLite's own
/// locks: a migration is many statements and sea-orm-migration opens transactions of its
/// own, so no one SQLite transaction can hold the database from the check to the last
/// migration; without this, two processes starting together on a fresh file both read
/// "nothing applied" and the second fails on a column or index the first just made. The lock
/// file stays (removing it would race with a process that just opened it). It is opened
/// for reading when it exists (a lock needs no more), so one left by another user — a
/// `sudo roster migrate` — does not lock the service's own user out.
async fn lock_beside(file: &Path) -> Result<std::fs::File, SchemaError> {
    let path = format!("{}.migrate-lock", file.display());
    let locking = path.clone();
    let locked = tokio::task::spawn_blocking(move || {
        let lock = match std::fs::File::open(&locking) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&locking)?,
            other => other?,
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(lock = %locking, "another process is migrating this database; waiting for it");
                lock.lock()?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(lock)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    locked.map_err(|source| SchemaError::Lock { path, source })
}

/// For a process that does not migrate: the schema must be exactly what this build expects.
pub async fn check(db: &DatabaseConnection) -> Result<(), SchemaError> {
    let found = status(db).await?;
    if !found.unknown.is_empty() {
        return Err(SchemaError::Newer(found.unknown.join(", ")));
    }
    if !found.pending.is_empty() {
        return Err(SchemaError::Pending(found.pending.len()));
    }
    Ok(())
}
