use sea_orm::entity::prelude::*;

/// An account its owner deleted under `--deletion-grace`: deactivated, and deleted once
/// `delete_after` has passed unless they sign in before.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_deletions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub delete_after: DateTimeUtc,
    pub requested_at: DateTimeUtc,
    /// An operator deactivated the closed account: its owner can no longer reopen it, and
    /// it is deleted when the grace ends.
    pub held: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
