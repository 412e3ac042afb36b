use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The table, and the unique index the service recognises a violation by.
pub const TABLE: &str = "login_names";
pub const NAME_INDEX: &str = "login_names_name_key";
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
/// on [`NAME_INDEX`]. A user's username and email may be equal (one row). Imported users
/// without an email hold a `!none:<id>` placeholder, which names nobody and is left out.
///
/// Existing rows are copied in; where two existing accounts already collide, the first to
/// have joined keeps the name and the other keeps working as before (and `login` prefers an
/// email match for an identifier shaped like an address, so such a username never shadows
/// an owner's email).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginNames::Table)
                    .col(ColumnDef::new(LoginNames::Name).string_len(1024).not_null())
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
                    .name(NAME_INDEX)
                    .table(LoginNames::Table)
                    .col(LoginNames::Name)
                    .unique()
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
        // The names of one row: its username, and its email unless equal or a placeholder.
        let insert = |row: &str| {
            format!(
                "INSERT INTO login_names (name, user_id) VALUES ({row}.username_canonical, {row}.id); \
                 INSERT INTO login_names (name, user_id) SELECT {row}.email_canonical, {row}.id \
                   WHERE {row}.email_canonical <> {row}.username_canonical \
                     AND {row}.email_canonical NOT LIKE '!none:%';"
            )
        };
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'UPDATE' THEN DELETE FROM login_names WHERE user_id = NEW.id; END IF; \
                       {} \
                       RETURN NULL; \
                     END $$",
                    insert("NEW")
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
                    "CREATE TRIGGER {TRIGGER}_insert AFTER INSERT ON users BEGIN {} END",
                    insert("NEW")
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER}_update AFTER UPDATE OF username_canonical, email_canonical \
                     ON users BEGIN DELETE FROM login_names WHERE user_id = NEW.id; {} END",
                    insert("NEW")
                ))
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "roster supports PostgreSQL and SQLite, not {other:?}"
                )));
            }
        }
        // Existing users, oldest first; a name already held stays with its first holder.
        db.execute_unprepared(
            "INSERT INTO login_names (name, user_id) \
             SELECT username_canonical, id FROM users WHERE true ORDER BY date_joined, id \
             ON CONFLICT DO NOTHING",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO login_names (name, user_id) \
             SELECT email_canonical, id FROM users \
             WHERE email_canonical <> username_canonical AND email_canonical NOT LIKE '!none:%' \
             ORDER BY date_joined, id \
             ON CONFLICT DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {TRIGGER} ON users"))
                    .await?;
                db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {TRIGGER}()"))
                    .await?;
            }
            _ => {
                for t in ["insert", "update"] {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {TRIGGER}_{t}"))
                        .await?;
                }
            }
        }
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
