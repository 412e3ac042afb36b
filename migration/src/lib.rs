//! roster's schema migrations, applied at server start-up and by `cargo run -p migration`.

pub use sea_orm_migration::prelude::*;

/// Creates `users` with unique indexes on the canonical username and email.
pub mod m20261124_000001_create_users;
/// Adds `users.username_skeleton{,_lower,_upper}` (TR39 look-alike keys), uniquely indexed.
pub mod m20261125_000001_add_username_skeleton;
/// Adds `users.is_active` and `users.last_login`; creates `sessions` (token stored hashed).
pub mod m20261126_000001_create_sessions;
/// Adds `users.legacy_id`, `is_staff`, `is_superuser` for users imported from Django.
pub mod m20261126_000002_add_import_fields;
/// Adds `users.email_verified`; creates `email_tokens` (hashed, single-use) and `outbox`.
pub mod m20261202_000001_create_mail;
/// A trigger: inserting a session stamps its user's `last_login`, so a login commits in one
/// statement.
pub mod m20261203_000001_session_stamps_last_login;
/// A trigger: deactivating a user ends their sessions and email links (not merely suspends).
pub mod m20261207_000001_deactivation_ends_sessions;
/// `login_names`: usernames and emails in one uniquely indexed namespace, kept by triggers.
pub mod m20261207_000002_create_login_names;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261125_000001_add_username_skeleton::Migration),
            Box::new(m20261126_000001_create_sessions::Migration),
            Box::new(m20261126_000002_add_import_fields::Migration),
            Box::new(m20261202_000001_create_mail::Migration),
            Box::new(m20261203_000001_session_stamps_last_login::Migration),
            Box::new(m20261207_000001_deactivation_ends_sessions::Migration),
            Box::new(m20261207_000002_create_login_names::Migration),
        ]
    }
}
