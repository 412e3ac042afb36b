use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const LEGACY_ID_INDEX: &str = "users_legacy_id_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Carried over from Django's `auth_user` by `roster import-django`: the old primary key
        // (unique, so a re-run skips what it imported) and the two flags, kept as data.
        // One ALTER per column: SQLite adds one per statement.
        let columns = [
            ColumnDef::new(Users::LegacyId)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Users::IsStaff)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Users::IsSuperuser)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(LEGACY_ID_INDEX)
                    .table(Users::Table)
                    .col(Users::LegacyId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(LEGACY_ID_INDEX)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Users::LegacyId, Users::IsStaff, Users::IsSuperuser] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    LegacyId,
    IsStaff,
    IsSuperuser,
}
