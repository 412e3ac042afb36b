use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Index names are stable: the service recognises a unique violation by them
/// ([`crate::unique`]): PostgreSQL names the index in its error, SQLite `users.<column>`.
pub const USERNAME_INDEX: &str = "users_username_canonical_key";
pub const EMAIL_INDEX: &str = "users_email_canonical_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Username).string_len(600).not_null())
                    .col(
                        ColumnDef::new(Users::UsernameCanonical)
                            .string_len(600)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Users::Email).string_len(1024).not_null())
                    .col(
                        ColumnDef::new(Users::EmailCanonical)
                            .string_len(1024)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::PasswordHash)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::DateJoined)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            (USERNAME_INDEX, Users::UsernameCanonical),
            (EMAIL_INDEX, Users::EmailCanonical),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Users::Table)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameCanonical,
    Email,
    EmailCanonical,
    PasswordHash,
    DateJoined,
}
