use sea_orm::entity::prelude::*;

/// An email to send: what and to whom, never the token or the body (the delivery worker
/// mints the token and renders the message when it sends).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// An `outbox::Kind`.
    pub kind: String,
    /// `None` for a deleted account's goodbye (written as the account is deleted).
    pub user_id: Option<Uuid>,
    pub recipient: String,
    /// `pending`, `sending` (claimed until `locked_until`), `delivered`, `failed`, `skipped`.
    pub status: String,
    /// Delivery attempts started so far (a claim counts one).
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
