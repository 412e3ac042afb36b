use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The table; a violation of its primary key (`name`) is how the service recognises a
/// name held by another account (both databases name the table in the error).
pub const TABLE: &str = "login_names";
/// PostgreSQL's name for the table's primary key (SQLite names `login_names.name`).
pub const KEY: &str = "login_names_pkey";
/// The triggers (and PostgreSQL function) that keep the table in step with `users`.
pub const TRIGGER: &str = "users_login_names";

/// One namespace for login identifiers: every account's canonical username and canonical
/// email, under one unique index, so that no account's username equals another's email.
///
/// Why: `login` takes a username or an email, and usernames may contain `@` and `.`. A
/// stranger who registered the username `victim@corp.example` captured the victim's login by
/// email (a username match won), and the victim's wrong-password count landed on the
/// stranger's account. Two unique indexes on two columns cannot forbid a value appearing in
/// both; a table of names can, and the database enforces it, so no race slips through.
///
/// Kept by triggers, on both databases, so every way a user row is written (registration,
/// the importer, an operator's SQL, an email change to come) keeps the namespace, in the
/// statement that writes the row; a collision fails that statement with a unique violation
/// on the table's key. A user's username and email may be equal (one row). Imported users
/// without an email hold a `!none:<id>` placeholder, which names nobody and is left out.
///
/// Existing rows are copied in, the earliest to join first; where two existing accounts
/// already collide, the older keeps the name, and `login` prefers an email match for an
/// identifier shaped like an address, so such a username never shadows an owner's email.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `name` is the primary key: the unique index that decides, and a key for logical
        // replication.
        manager
            .create_table(
                Table::create()
                    .table(LoginNames::Table)
                    .col(
                        ColumnDef::new(LoginNames::Name)
                            .string_len(1024)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(LoginNames::UserId).uuid().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoginNames::Table, LoginNames::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_names_user_id")
                    .table(LoginNames::Table)
                    .col(LoginNames::UserId)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        // A new row's names: its username, and its email unless equal or a placeholder.
        const INSERT: &str = "INSERT INTO login_names (name, user_id) VALUES (NEW.username_canonical, NEW.id); \
             INSERT INTO login_names (name, user_id) SELECT NEW.email_canonical, NEW.id \
               WHERE NEW.email_canonical <> NEW.username_canonical \
                 AND NEW.email_canonical NOT LIKE '!none:%';";
        // A changed name: the old one is released (unless the row's other column still holds
        // it), the new one taken (unless the row holds it already; held by another row, the
        // statement fails). An unchanged name is left alone, so an UPDATE that merely lists a
        // column never trips over a collision that predates this table.
        let changed = |column: &str, other: &str, skip_placeholder: bool| {
            let placeholder = if skip_placeholder {
                " AND NEW.email_canonical NOT LIKE '!none:%'"
            } else {
                ""
            };
            format!(
                "DELETE FROM login_names WHERE name = OLD.{column} AND user_id = NEW.id \
                   AND OLD.{column} <> NEW.{other}; \
                 INSERT INTO login_names (name, user_id) SELECT NEW.{column}, NEW.id \
                   WHERE NOT EXISTS (SELECT 1 FROM login_names WHERE name = NEW.{column} AND user_id = NEW.id){placeholder};"
            )
        };
        let username_changed = changed("username_canonical", "email_canonical", false);
        let email_changed = changed("email_canonical", "username_canonical", true);
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'INSERT' THEN {INSERT} \
                       ELSE \
                         IF OLD.username_canonical IS DISTINCT FROM NEW.username_canonical THEN {username_changed} END IF; \
                         IF OLD.email_canonical IS DISTINCT FROM NEW.email_canonical THEN {email_changed} END IF; \
                       END IF; \
                       RETURN NULL; \
                     END $$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OF username_canonical, email_canonical \
                     ON users FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
                ))
                .await?;
            }
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER}_insert AFTER INSERT ON users BEGIN {INSERT} END"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER}_username AFTER UPDATE OF username_canonical ON users \
                     WHEN OLD.username_canonical IS NOT NEW.username_canonical \
                     BEGIN {username_changed} END"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER}_email AFTER UPDATE OF email_canonical ON users \
                     WHEN OLD.email_canonical IS NOT NEW.email_canonical \
                     BEGIN {email_changed} END"
                ))
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "roster supports PostgreSQL and SQLite, not {other:?}"
                )));
            }
        }
        // Existing users' names in one pass, the earliest to join first: where two existing
        // accounts already collide, the older one keeps the name.
        db.execute_unprepared(
            "INSERT INTO login_names (name, user_id) \
             SELECT name, id FROM ( \
               SELECT username_canonical AS name, id, date_joined FROM users \
               UNION ALL \
               SELECT email_canonical AS name, id, date_joined FROM users \
                 WHERE email_canonical <> username_canonical AND email_canonical NOT LIKE '!none:%' \
             ) AS names WHERE true ORDER BY date_joined, id \
             ON CONFLICT DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sqlite = ["insert", "username", "email"].map(|t| format!("{TRIGGER}_{t}"));
        let sqlite: Vec<&str> = sqlite.iter().map(String::as_str).collect();
        crate::drop_triggers(manager.get_connection(), &[(TRIGGER, "users")], &sqlite).await?;
        manager
            .drop_table(Table::drop().table(LoginNames::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoginNames {
    Table,
    Name,
    UserId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
