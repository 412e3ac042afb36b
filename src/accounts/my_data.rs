//! `myData`: everything roster stores about the caller, as one JSON document (the data
//! subject's copy). Never a secret: no password hash, no token or token digest, no TOTP
//! secret, no recovery code or its HMAC.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde_json::{Value, json};

use super::AccountService;
use crate::entity::{audit_entry, outbox, recovery_code, session, totp_device, user};
use crate::error::AppError;
use crate::sessions::Caller;

/// Most audit entries in one document (the newest); `auditLogTruncated` says when there were
/// more. The log grows with every login (and with strangers' failed logins): the document
/// must stay bounded, well inside the response limit.
const MAX_AUDIT_ENTRIES: u64 = 1000;
/// Most emails listed (the newest); `emailsTruncated` says when there were more.
const MAX_EMAILS: u64 = 100;

/// The names a query of one text column answers.
async fn names(
    conn: &impl ConnectionTrait,
    sql: &str,
    user: uuid::Uuid,
) -> Result<Vec<String>, AppError> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            [user.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).map_err(AppError::from))
        .collect()
}

impl AccountService {
    /// The caller's data: the account, its groups and own permissions, its sessions (with
    /// addresses and agents), its second factor (whether one is set up, since when, codes
    /// left), emails queued or sent to it, and the audit entries about it.
    #[tracing::instrument(name = "my_data", skip_all, fields(user_id = %caller.user.id))]
    pub async fn my_data(&self, caller: &Caller) -> Result<Value, AppError> {
        let id = caller.user.id;
        let db = &self.db;
        let Some(u) = user::Entity::find_by_id(id).one(db).await? else {
            return Err(AppError::Unauthenticated);
        };
        let groups = names(
            db,
            "SELECT g.name FROM groups g JOIN user_groups ug ON ug.group_id = g.id \
             WHERE ug.user_id = $1 ORDER BY g.name",
            id,
        )
        .await?;
        let permissions = names(
            db,
            "SELECT p.codename FROM permissions p JOIN user_permissions up \
             ON up.permission_id = p.id WHERE up.user_id = $1 ORDER BY p.codename",
            id,
        )
        .await?;
        let sessions: Vec<Value> = session::Entity::find()
            .filter(session::Column::UserId.eq(id))
            .order_by_asc(session::Column::CreatedAt)
            .all(db)
            .await?
            .into_iter()
            .map(|s| {
                json!({
                    "id": s.id, "createdAt": s.created_at, "lastSeenAt": s.last_seen_at,
                    "expiresAt": s.expires_at, "ip": s.ip, "userAgent": s.user_agent,
                    "aal": s.aal, "waitingForSecondFactor": s.mfa_pending,
                    "current": s.id == caller.session.id,
                })
            })
            .collect();
        let device = totp_device::Entity::find()
            .filter(totp_device::Column::UserId.eq(id))
            .one(db)
            .await?;
        let codes_left = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(db)
            .await?;
        // Not the links to other addresses (`change_email`): whether one was written says
        // whether that address is free, which `requestEmailChange` does not tell.
        let mut emails: Vec<Value> = outbox::Entity::find()
            .filter(outbox::Column::UserId.eq(id))
            .filter(outbox::Column::Kind.ne(crate::outbox::Kind::ChangeEmail.as_str()))
            .order_by_desc(outbox::Column::Id)
            .limit(MAX_EMAILS + 1)
            .all(db)
            .await?
            .into_iter()
            .map(|e| {
                json!({
                    "kind": e.kind, "to": e.recipient, "status": e.status,
                    "createdAt": e.created_at, "deliveredAt": e.delivered_at,
                })
            })
            .collect();
        let emails_truncated = emails.len() as u64 > MAX_EMAILS;
        emails.truncate(MAX_EMAILS as usize);
        // Entries about the caller (the indexed column; what they did to themselves is about
        // them too). Someone else's address and request id stay out of it: an operator's
        // action shows as what it was, not where the operator sat.
        let mut audit: Vec<Value> = audit_entry::Entity::find()
            .filter(audit_entry::Column::TargetUserId.eq(id))
            .order_by_desc(audit_entry::Column::Id)
            .limit(MAX_AUDIT_ENTRIES + 1)
            .all(db)
            .await?
            .into_iter()
            .map(|e| {
                let own = e.actor_user_id == Some(id) || e.actor_kind == "anonymous";
                json!({
                    "at": e.at, "action": e.action, "actorKind": e.actor_kind,
                    "byYou": e.actor_user_id == Some(id),
                    "ip": if own { e.ip } else { None },
                    "requestId": if own { e.request_id } else { None },
                    "detail": e.detail.and_then(|d| serde_json::from_str::<Value>(&d).ok()),
                })
            })
            .collect();
        let truncated = audit.len() as u64 > MAX_AUDIT_ENTRIES;
        audit.truncate(MAX_AUDIT_ENTRIES as usize);
        Ok(json!({
            "exportedAt": chrono::Utc::now(),
            "account": {
                "id": u.id, "username": u.username,
                "email": (!u.email.is_empty()).then_some(&u.email),
                "emailVerified": u.email_verified, "dateJoined": u.date_joined,
                "lastLogin": u.last_login, "isActive": u.is_active, "isStaff": u.is_staff,
                "isSuperuser": u.is_superuser, "legacyId": u.legacy_id,
                "passwordHashFormat": crate::password::format_name(&u.password_hash),
                "groups": groups, "permissions": permissions,
            },
            "sessions": sessions,
            "secondFactor": {
                "totp": device.as_ref().is_some_and(|d| d.confirmed),
                "totpSetUpAt": device.as_ref().filter(|d| d.confirmed).map(|d| d.created_at),
                "recoveryCodesLeft": codes_left,
            },
            "emails": emails,
            "emailsTruncated": emails_truncated,
            "auditLog": audit,
            "auditLogTruncated": truncated,
        }))
    }
}
