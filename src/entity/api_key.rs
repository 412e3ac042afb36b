use sea_orm::entity::prelude::*;

/// An API key for back-office scripts. The key itself is shown once; only its SHA-256 is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    /// Lower-case hex SHA-256 of the key's secret part (uniformly random, as session tokens).
    #[sea_orm(unique)]
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    /// Written at most once a minute.
    pub last_used_at: Option<DateTimeUtc>,
    /// A revoked key authenticates nothing; the row stays for the audit log's sake.
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
