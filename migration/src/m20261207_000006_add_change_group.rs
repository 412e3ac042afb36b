use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `roster.change_group`: creating, renaming, deleting a group and setting its permissions
/// (Django's `auth.add_group`/`change_group`/`delete_group` in one), with a fixed id that
/// follows the four roster permissions of `m20261207_000005`.
pub const CHANGE_GROUP: (&str, &str) = ("roster.change_group", "Can change groups");

fn id() -> sea_orm_migration::sea_orm::prelude::Uuid {
    sea_orm_migration::sea_orm::prelude::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0005)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Permissions::Table)
                    .columns([Permissions::Id, Permissions::Codename, Permissions::Name])
                    .values_panic([id().into(), CHANGE_GROUP.0.into(), CHANGE_GROUP.1.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(Permissions::Table)
                    .and_where(Expr::col(Permissions::Id).eq(id()))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Codename,
    Name,
}
