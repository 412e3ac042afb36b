use sea_orm::entity::prelude::*;

/// A receiver of webhooks, registered by an operator (`roster webhooks add`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    /// The event types it receives, comma-wrapped: `,user.registered,session.created,`.
    pub events: String,
    /// The signing secret, sealed with the server secret (`sealed1:…`).
    pub secret: String,
    /// The secret before the last `rotate-secret`, still signing beside the new one until
    /// `previous_until`, so receivers can switch without losing a delivery.
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
