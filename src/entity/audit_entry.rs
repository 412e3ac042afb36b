use sea_orm::entity::prelude::*;

/// One audit-log entry: who did what to whom. Only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// UUIDv7: time-ordered, the listing's cursor.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: DateTimeUtc,
    /// `user`, `api_key` or `system` (a command run where the server runs).
    pub actor_kind: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub target_user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// A small JSON object; never a secret.
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
