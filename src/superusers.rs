//! The last active staff superuser stays one, whoever asks: the admin use cases (deactivate,
//! demote, delete another) and a superuser deleting their own account obey the same rule, taken
//! in turns on PostgreSQL. Below both `admin` and `accounts`, so neither imports the other.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter,
};

use crate::entity::user;
use crate::error::AppError;

/// One privileged change at a time on PostgreSQL: two operators demoting or deactivating
/// the last two superusers (each other) take turns instead of both passing the "another one
/// remains" check or deadlocking on the rows. SQLite runs one writer at a time already
/// ([`crate::txn::begin_writing`]).
pub async fn serialize(txn: &DatabaseTransaction) -> Result<(), AppError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7275890112)")
            .await?;
    }
    Ok(())
}

/// Refuses a change that would leave no active staff superuser when `leaving` is one: the
/// last one who could still run the admin API as a superuser stays.
pub async fn keeps_a_superuser(
    txn: &DatabaseTransaction,
    leaving: &user::Model,
    refusal: &'static str,
) -> Result<(), AppError> {
    if !(leaving.is_superuser && leaving.is_staff && leaving.is_active) {
        return Ok(());
    }
    let others = user::Entity::find()
        .filter(user::Column::IsSuperuser.eq(true))
        .filter(user::Column::IsStaff.eq(true))
        .filter(user::Column::IsActive.eq(true))
        .filter(user::Column::Id.ne(leaving.id))
        .count(txn)
        .await?;
    if others == 0 {
        return Err(AppError::Forbidden(refusal));
    }
    Ok(())
}
