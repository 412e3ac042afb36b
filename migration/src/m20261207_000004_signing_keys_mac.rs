use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `signing_keys.public_mac`: an HMAC, keyed from the server secret, over a key's id,
/// algorithm and public JWK. Only rows whose MAC checks are published in the JWKS, so a
/// database write alone cannot publish a key of someone else's (verifiers would trust
/// tokens it signs). Rows made before this column get theirs at the next start-up, once
/// their sealed private key has proved to open with the secret and to match the public one.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(ColumnDef::new(SigningKeys::PublicMac).string_len(64).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .drop_column(SigningKeys::PublicMac)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    PublicMac,
}
