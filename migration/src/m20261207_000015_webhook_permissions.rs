use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `roster.view_webhook` (the endpoints and their deliveries) and `roster.change_webhook`
/// (adding, removing, rotating, retrying): the admin API's webhooks, with fixed ids that follow
/// `roster.change_group` of `m20261207_000006`.
pub const PERMISSIONS: [(u128, &str, &str); 2] = [
    (
        0x0190_0000_0000_7000_8000_0000_0000_0006,
        "roster.view_webhook",
        "Can view webhook endpoints and deliveries",
    ),
    (
        0x0190_0000_0000_7000_8000_0000_0000_0007,
        "roster.change_webhook",
        "Can change webhook endpoints",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (id, codename, name) in PERMISSIONS {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(Permissions::Table)
                        .columns([Permissions::Id, Permissions::Codename, Permissions::Name])
                        .values_panic([
                            sea_orm_migration::sea_orm::prelude::Uuid::from_u128(id).into(),
                            codename.into(),
                            name.into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (id, _, _) in PERMISSIONS {
            manager
                .exec_stmt(
                    Query::delete()
                        .from_table(Permissions::Table)
                        .and_where(
                            Expr::col(Permissions::Id)
                                .eq(sea_orm_migration::sea_orm::prelude::Uuid::from_u128(id)),
                        )
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Codename,
    Name,
}
