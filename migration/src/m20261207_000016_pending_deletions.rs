use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Accounts whose owners asked to delete them under `--deletion-grace`: deactivated at once,
/// deleted once `delete_after` has passed unless their owner signs in before. A table of its
/// own, so the user row (which every session lookup reads) does not change.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PendingDeletions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PendingDeletions::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PendingDeletions::DeleteAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDeletions::RequestedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // An operator deactivated the closed account: its owner cannot reopen it.
                    .col(
                        ColumnDef::new(PendingDeletions::Held)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PendingDeletions::Table, PendingDeletions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pending_deletions_due")
                    .table(PendingDeletions::Table)
                    .col(PendingDeletions::DeleteAfter)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingDeletions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PendingDeletions {
    Table,
    UserId,
    DeleteAfter,
    RequestedAt,
    Held,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
