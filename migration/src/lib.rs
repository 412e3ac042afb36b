//! roster's schema migrations, applied at server start-up, by `roster migrate` and by
//! `roster import-django` (never by `cargo run -p migration`, which skips the migration lock
//! and the look-alike backfill).

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
/// `signing_keys`: the access tokens' ES256 key pairs, private halves encrypted.
pub mod m20261207_000003_create_signing_keys;
/// `signing_keys.public_mac`: only keys the server secret vouches for are published.
pub mod m20261207_000004_signing_keys_mac;
/// Django's permission model (groups, permissions, their links) and the audit log.
pub mod m20261207_000005_create_permissions;
/// `roster.change_group`: the permission group CRUD asks for.
pub mod m20261207_000006_add_change_group;
/// `api_keys`: back-office scripts' credentials, with their permissions.
pub mod m20261207_000007_create_api_keys;
/// A second factor: TOTP devices, recovery codes, sessions' assurance level.
pub mod m20261207_000008_create_second_factor;
/// An index for the audit log's filter by action.
pub mod m20261207_000009_audit_action_index;
/// The outbox's `kind` widened for the security notices.
pub mod m20261207_000010_widen_outbox_kind;
/// The new address an email-change token is for.
pub mod m20261207_000011_email_change;
/// Outbox rows that belong to no user (a deleted account's goodbye).
pub mod m20261207_000012_outbox_without_user;
/// The Django ids of deleted accounts, which an import never brings back.
pub mod m20261207_000013_deleted_legacy_ids;
/// Webhook endpoints and their deliveries (the outbox of events).
pub mod m20261207_000014_create_webhooks;
/// `roster.view_webhook` and `roster.change_webhook`.
pub mod m20261207_000015_webhook_permissions;
/// Accounts deleted under `--deletion-grace`, until the grace ends.
pub mod m20261207_000016_pending_deletions;

/// A unique index whose violation the service turns into a field error, named once here for
/// both databases: PostgreSQL names the index (or key constraint) in its error, SQLite the
/// indexed `table.column`. Matching these, not free text, means a renamed column or index
/// breaks a test here instead of silently turning `taken` into a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueIndex {
    pub name: &'static str,
    pub table: &'static str,
    pub column: &'static str,
}

impl UniqueIndex {
    /// Whether a unique-violation message, from either database, is about this index.
    pub fn violated_by(&self, message: &str) -> bool {
        if message.contains(&format!("\"{}\"", self.name)) {
            return true;
        }
        // SQLite: `UNIQUE constraint failed: users.username_skeleton` must not match the
        // `_lower` index, so the column must end where the name ends.
        let qualified = format!("{}.{}", self.table, self.column);
        message.match_indices(&qualified).any(|(at, _)| {
            message[at + qualified.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        })
    }
}

/// Every unique index a registration or an import can violate.
pub mod unique {
    use super::UniqueIndex;

    pub const USERNAME: UniqueIndex = UniqueIndex {
        name: super::m20261124_000001_create_users::USERNAME_INDEX,
        table: "users",
        column: "username_canonical",
    };
    pub const EMAIL: UniqueIndex = UniqueIndex {
        name: super::m20261124_000001_create_users::EMAIL_INDEX,
        table: "users",
        column: "email_canonical",
    };
    /// The three look-alike keys (as written, lower-cased, upper-cased).
    pub const LOOKALIKE: [UniqueIndex; 3] = [
        UniqueIndex {
            name: super::m20261125_000001_add_username_skeleton::SKELETON_INDEXES[0],
            table: "users",
            column: "username_skeleton",
        },
        UniqueIndex {
            name: super::m20261125_000001_add_username_skeleton::SKELETON_INDEXES[1],
            table: "users",
            column: "username_skeleton_lower",
        },
        UniqueIndex {
            name: super::m20261125_000001_add_username_skeleton::SKELETON_INDEXES[2],
            table: "users",
            column: "username_skeleton_upper",
        },
    ];
    /// The login-identifier namespace (`login_names`' key).
    pub const LOGIN_NAME: UniqueIndex = UniqueIndex {
        name: super::m20261207_000002_create_login_names::KEY,
        table: super::m20261207_000002_create_login_names::TABLE,
        column: "name",
    };

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn both_databases_messages_are_matched_exactly() {
            let sqlite = "error returned from database: (code: 2067) UNIQUE constraint failed: users.username_skeleton_lower";
            assert!(LOOKALIKE[1].violated_by(sqlite));
            assert!(!LOOKALIKE[0].violated_by(sqlite), "a prefix is not a match");
            let postgres =
                "duplicate key value violates unique constraint \"users_email_canonical_key\"";
            assert!(EMAIL.violated_by(postgres));
            assert!(!USERNAME.violated_by(postgres));
            assert!(LOGIN_NAME.violated_by("UNIQUE constraint failed: login_names.name"));
            assert!(LOGIN_NAME.violated_by(
                "duplicate key value violates unique constraint \"login_names_pkey\""
            ));
        }
    }
}

/// Drops roster's triggers, for a migration's `down`: on PostgreSQL each `(trigger, table)`
/// and the function of the same name it runs; on SQLite the triggers named (it has no
/// functions, and one PostgreSQL trigger may be several SQLite ones).
pub(crate) async fn drop_triggers<C: sea_orm_migration::sea_orm::ConnectionTrait>(
    db: &C,
    postgres: &[(&str, &str)],
    sqlite: &[&str],
) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
        for (name, table) in postgres {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
                .await?;
            db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {name}()"))
                .await?;
        }
    } else {
        for name in sqlite {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name}"))
                .await?;
        }
    }
    Ok(())
}

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
            Box::new(m20261207_000003_create_signing_keys::Migration),
            Box::new(m20261207_000004_signing_keys_mac::Migration),
            Box::new(m20261207_000005_create_permissions::Migration),
            Box::new(m20261207_000006_add_change_group::Migration),
            Box::new(m20261207_000007_create_api_keys::Migration),
            Box::new(m20261207_000008_create_second_factor::Migration),
            Box::new(m20261207_000009_audit_action_index::Migration),
            Box::new(m20261207_000010_widen_outbox_kind::Migration),
            Box::new(m20261207_000011_email_change::Migration),
            Box::new(m20261207_000012_outbox_without_user::Migration),
            Box::new(m20261207_000013_deleted_legacy_ids::Migration),
            Box::new(m20261207_000014_create_webhooks::Migration),
            Box::new(m20261207_000015_webhook_permissions::Migration),
            Box::new(m20261207_000016_pending_deletions::Migration),
        ]
    }
}
