use sea_orm::entity::prelude::*;

/// An ES256 key pair that signs access tokens (`crate::tokens`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The RFC 7638 thumbprint of the public key; the tokens' `kid`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `ES256`.
    pub algorithm: String,
    /// The public key as a JWK (JSON), published in the JWKS.
    pub public_jwk: String,
    /// Hex HMAC-SHA256 (key from the server secret) of `kid`, `algorithm` and `public_jwk`:
    /// only keys whose MAC checks are published.
    pub public_mac: Option<String>,
    /// The PKCS#8 private key sealed with the server secret; `None` once wiped.
    pub private_key: Option<String>,
    /// Published in the JWKS from here on.
    pub created_at: DateTimeUtc,
    /// Signs from here on (while it is the newest such key): a rotated-in key is published
    /// a while before it signs, so verifiers holding a cached key set meet it there first.
    pub active_from: DateTimeUtc,
    /// When a newer key took over signing; the key stays published for a while after.
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
