use sea_orm::entity::prelude::*;

/// One event for one endpoint: what happened (never a secret), and how its delivery goes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Insertion order: a user's events reach an endpoint in this order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The idempotency id (`webhook-id: msg_…`), shared by the event's endpoints.
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub user_id: Uuid,
    pub username: String,
    /// The account's address when the event happened.
    pub email: String,
    pub legacy_id: Option<i64>,
    /// The event's own fields, a JSON object (`{}` when none).
    pub data: String,
    pub occurred_at: DateTimeUtc,
    /// `pending`, `sending` (claimed until `locked_until`), `delivered`, `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// The receiver's last HTTP status, when it answered.
    pub last_status: Option<i32>,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
