use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// roster's own operations, as Django permissions (`app_label.codename`), present in every
/// database: what the admin API asks of a staff user.
pub const ROSTER_PERMISSIONS: [(&str, &str); 4] = [
    ("roster.view_user", "Can view users"),
    ("roster.change_user", "Can change users"),
    ("roster.delete_user", "Can delete users"),
    ("roster.view_auditlog", "Can view the audit log"),
];

/// PostgreSQL: byte-ordered indexes for the admin search's prefix ranges.
pub const PREFIX_INDEXES: [(&str, &str); 2] = [
    ("users_username_canonical_prefix_idx", "username_canonical"),
    ("users_email_canonical_prefix_idx", "email_canonical"),
];

/// The audit log's listing about one user, newest first (the primary key, a UUIDv7, orders
/// the whole log).
pub const AUDIT_TARGET_INDEX: &str = "audit_log_target_user_id_id_idx";

/// Django's permission model, and the audit log.
///
/// `groups`, `permissions` (named `app_label.codename`, the string Django's `has_perm` takes)
/// and the three links (user↔group, user↔permission, group↔permission), so an imported user
/// base keeps its staff, groups and permissions. Ids are roster's (UUIDs); `legacy_id` keeps
/// Django's for re-imports.
///
/// `audit_log`: who did what to whom, when and from where, written in the transaction of the
/// change it records. No foreign keys: an entry outlives the user it names.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Groups::Table)
                    .col(ColumnDef::new(Groups::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(Groups::Name)
                            .string_len(150)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Groups::LegacyId)
                            .big_integer()
                            .null()
                            .unique_key(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Permissions::Table)
                    .col(
                        ColumnDef::new(Permissions::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Permissions::Codename)
                            .string_len(255)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Permissions::Name).string_len(255).not_null())
                    .col(
                        ColumnDef::new(Permissions::LegacyId)
                            .big_integer()
                            .null()
                            .unique_key(),
                    )
                    .to_owned(),
            )
            .await?;
        for (table, left, left_to, right, right_to) in [
            (
                Links::UserGroups,
                Links::UserId,
                Users::Table.into_iden(),
                Links::GroupId,
                Groups::Table.into_iden(),
            ),
            (
                Links::UserPermissions,
                Links::UserId,
                Users::Table.into_iden(),
                Links::PermissionId,
                Permissions::Table.into_iden(),
            ),
            (
                Links::GroupPermissions,
                Links::GroupId,
                Groups::Table.into_iden(),
                Links::PermissionId,
                Permissions::Table.into_iden(),
            ),
        ] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .col(ColumnDef::new(left).uuid().not_null())
                        .col(ColumnDef::new(right).uuid().not_null())
                        .primary_key(Index::create().col(left).col(right))
                        .foreign_key(
                            ForeignKey::create()
                                .from(table, left)
                                .to(left_to, Alias::new("id"))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(table, right)
                                .to(right_to, Alias::new("id"))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;
            // The reverse direction (who holds this group or permission) for deletes.
            manager
                .create_index(
                    Index::create()
                        .name(format!("{}_{}_idx", table.to_string(), right.to_string()))
                        .table(table)
                        .col(right)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(ColumnDef::new(AuditLog::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(AuditLog::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // `user`, `system` (a command on the server's machine).
                    .col(
                        ColumnDef::new(AuditLog::ActorKind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditLog::ActorUserId).uuid().null())
                    .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::TargetUserId).uuid().null())
                    .col(ColumnDef::new(AuditLog::Ip).string_len(45).null())
                    .col(ColumnDef::new(AuditLog::RequestId).string_len(64).null())
                    // A small JSON object of what changed (never a secret).
                    .col(ColumnDef::new(AuditLog::Detail).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(AUDIT_TARGET_INDEX)
                    .table(AuditLog::Table)
                    .col(AuditLog::TargetUserId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        // The admin search is a prefix of the canonical username or email, answered from an
        // index: a range on the column. SQLite's unique indexes compare bytes already;
        // PostgreSQL's follow the database's collation, where a byte range is not a prefix
        // range, so it gets byte-ordered (`COLLATE "C"`) indexes for the search.
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            let db = manager.get_connection();
            for (name, column) in PREFIX_INDEXES {
                db.execute_unprepared(&format!(
                    "CREATE INDEX {name} ON users ({column} COLLATE \"C\")"
                ))
                .await?;
            }
        }
        // roster's own permissions, with fixed ids so every database agrees.
        let mut insert = Query::insert()
            .into_table(Permissions::Table)
            .columns([Permissions::Id, Permissions::Codename, Permissions::Name])
            .to_owned();
        for (i, (codename, name)) in ROSTER_PERMISSIONS.iter().enumerate() {
            let id = sea_orm_migration::sea_orm::prelude::Uuid::from_u128(
                0x0190_0000_0000_7000_8000_0000_0000_0001 + i as u128,
            );
            insert.values_panic([id.into(), (*codename).into(), (*name).into()]);
        }
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            for (name, _) in PREFIX_INDEXES {
                manager
                    .get_connection()
                    .execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                    .await?;
            }
        }
        for table in [
            AuditLog::Table.into_iden(),
            Links::GroupPermissions.into_iden(),
            Links::UserPermissions.into_iden(),
            Links::UserGroups.into_iden(),
            Permissions::Table.into_iden(),
            Groups::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    Name,
    LegacyId,
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Codename,
    Name,
    LegacyId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Links {
    UserGroups,
    UserPermissions,
    GroupPermissions,
    UserId,
    GroupId,
    PermissionId,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorKind,
    ActorUserId,
    Action,
    TargetUserId,
    Ip,
    RequestId,
    Detail,
}
