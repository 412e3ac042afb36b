use sea_orm::entity::prelude::*;

/// A user's TOTP device (at most one). The secret is sealed with the server secret.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// `sealed:` + base64url(nonce ‖ ciphertext ‖ tag); the user id is the associated data.
    pub secret: String,
    pub digits: i16,
    pub step: i32,
    pub t0: i64,
    pub drift: i32,
    /// A device counts only once a code from it was accepted.
    pub confirmed: bool,
    /// The last time step accepted: codes of it or earlier steps are refused.
    pub last_step: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
