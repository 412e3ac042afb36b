//! Transactions that read, then write.
//!
//! SQLite starts a transaction deferred: its first read takes a snapshot, and when the
//! transaction later writes while another connection has committed since, SQLite refuses at
//! once (`SQLITE_BUSY_SNAPSHOT`: the busy timeout does not apply), which a client would see as
//! an internal error. A transaction that checks rules and then writes therefore takes the
//! write lock first, waiting its turn under the busy timeout like any writer. PostgreSQL
//! needs nothing of the kind (its readers never block a later write).

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr};

/// Begins a transaction that holds SQLite's write lock from its first statement.
pub async fn begin_writing(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    if txn.get_database_backend() == DbBackend::Sqlite {
        // A write statement takes the lock even when it changes no row.
        txn.execute_unprepared("UPDATE users SET id = id WHERE 0")
            .await?;
    }
    Ok(txn)
}
