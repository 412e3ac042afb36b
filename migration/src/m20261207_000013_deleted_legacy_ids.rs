use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The Django ids of deleted accounts: `import-django` run again never brings back an account
/// its user (or an operator) deleted in roster. An id only, and when.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeletedLegacyIds::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DeletedLegacyIds::LegacyId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DeletedLegacyIds::DeletedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeletedLegacyIds::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeletedLegacyIds {
    Table,
    LegacyId,
    DeletedAt,
}
