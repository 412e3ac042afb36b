use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The unique indexes on the look-alike keys (TR39 skeletons of the username as written,
/// lower-cased and upper-cased); the service recognises a violation by these names on
/// PostgreSQL and by `users.<column>` on SQLite ([`crate::unique`]).
pub const SKELETON_INDEXES: [&str; 3] = [
    "users_username_skeleton_key",
    "users_username_skeleton_lower_key",
    "users_username_skeleton_upper_key",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable: the keys are computed in Rust (Unicode TR39), so rows that exist before
        // this migration are filled in by the server at start-up. NULLs never collide.
        // One ALTER per column: SQLite adds one column per statement.
        for (column, index) in columns().into_iter().zip(SKELETON_INDEXES) {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(ColumnDef::new(column.clone()).string_len(2400).null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(index)
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
        for (column, index) in columns().into_iter().zip(SKELETON_INDEXES) {
            manager
                .drop_index(Index::drop().name(index).table(Users::Table).to_owned())
                .await?;
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

fn columns() -> [Users; 3] {
    [
        Users::UsernameSkeleton,
        Users::UsernameSkeletonLower,
        Users::UsernameSkeletonUpper,
    ]
}

#[derive(DeriveIden, Clone)]
enum Users {
    Table,
    UsernameSkeleton,
    UsernameSkeletonLower,
    UsernameSkeletonUpper,
}
