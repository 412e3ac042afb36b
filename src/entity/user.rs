use sea_orm::entity::prelude::*;

/// A stored account. `*_canonical` columns carry the unique indexes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub username: String,
    #[sea_orm(unique)]
    pub username_canonical: String,
    /// Empty for an imported user who had no email in Django.
    pub email: String,
    /// Unique; for a user without email, `!none:<id>` (never a valid address, so it collides
    /// with nothing), since the column predates users without one.
    #[sea_orm(unique)]
    pub email_canonical: String,
    /// TR39 look-alike keys (`accounts::skeleton`) of the name as written, lower-cased and
    /// upper-cased; NULL on rows the backfill after migrating has not reached yet, and on
    /// rows that look like another user's (imported, or left so by the backfill).
    #[sea_orm(unique)]
    pub username_skeleton: Option<String>,
    #[sea_orm(unique)]
    pub username_skeleton_lower: Option<String>,
    #[sea_orm(unique)]
    pub username_skeleton_upper: Option<String>,
    pub password_hash: String,
    pub date_joined: DateTimeUtc,
    /// A deactivated user cannot log in, and their sessions stop working.
    pub is_active: bool,
    pub last_login: Option<DateTimeUtc>,
    /// Django's `auth_user.id` for imported users (unique); `None` for roster's own.
    #[sea_orm(unique)]
    pub legacy_id: Option<i64>,
    /// Django's flags: staff may use the admin API with the permissions they hold; a
    /// superuser holds every permission (an imported Django superuser is one here too).
    pub is_staff: bool,
    pub is_superuser: bool,
    /// The user proved they read the address (`verifyEmail`, or a completed password reset).
    pub email_verified: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
