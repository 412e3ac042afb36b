use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `requestEmailChange`: the link sent to the new address carries a token whose row holds that
/// address until it is confirmed (the account keeps its old address meanwhile), and the
/// outbox row of the email that carried it: a link works only while that email stands (a
/// password change or a newer request cancels it, even one being sent at that moment).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .add_column(ColumnDef::new(EmailTokens::NewEmail).string_len(254).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .add_column(ColumnDef::new(EmailTokens::OutboxId).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .drop_column(EmailTokens::OutboxId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .drop_column(EmailTokens::NewEmail)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    NewEmail,
    OutboxId,
}
