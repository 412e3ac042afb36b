use sea_orm::entity::prelude::*;

/// A single-use token sent in an email link. Only a SHA-256 of the token is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `verify_email`, `reset_password` or `change_email`.
    pub purpose: String,
    /// Lower-case hex SHA-256 of the token.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set when the token was used; a used token never works again.
    pub used_at: Option<DateTimeUtc>,
    /// For `change_email`: the address the link was sent to, the account's once confirmed.
    pub new_email: Option<String>,
    /// For `change_email`: the outbox row of the email that carried the link; the link
    /// works only while that email is not cancelled.
    pub outbox_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
