use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The index that finds the key that signs now (and the keys the JWKS still publishes).
pub const RETIRED_INDEX: &str = "signing_keys_retired_at_active_from_idx";

/// `signing_keys`: the ES256 key pairs that sign access tokens, shared by every process of a
/// fleet through the database. The private key is stored only encrypted with the server
/// secret (`--secret-key-file` / `ROSTER_SECRET_KEY`), which never reaches the database, so
/// a dump alone cannot mint a token. A key is published from `created_at`, signs from
/// `active_from` (the newest such key signs) until `retired_at`, and stays published until
/// every token it signed has expired; then its private half is wiped.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(
                        // The RFC 7638 thumbprint of the public key: the JWT header's `kid`.
                        ColumnDef::new(SigningKeys::Kid)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::Algorithm)
                            .string_len(16)
                            .not_null(),
                    )
                    // The public key as a JWK (JSON text), published as is.
                    .col(ColumnDef::new(SigningKeys::PublicJwk).text().not_null())
                    // `v1:` + base64url(nonce ‖ ChaCha20-Poly1305(PKCS#8)); NULL once wiped.
                    .col(ColumnDef::new(SigningKeys::PrivateKey).text().null())
                    .col(
                        ColumnDef::new(SigningKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::ActiveFrom)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::RetiredAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RETIRED_INDEX)
                    .table(SigningKeys::Table)
                    .col(SigningKeys::RetiredAt)
                    .col(SigningKeys::ActiveFrom)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PublicJwk,
    PrivateKey,
    CreatedAt,
    ActiveFrom,
    RetiredAt,
}
