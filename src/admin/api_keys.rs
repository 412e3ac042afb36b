//! API keys: how a back-office script uses the admin API without a person's session.
//!
//! A key is `rsk_` followed by 256 random bits (URL-safe base64), shown once at creation; only
//! its SHA-256 is stored (a plain digest is right for a uniformly random secret, as for session
//! tokens) and looked up through a unique index. The distinct prefix tells a key from a session
//! token at a glance, in a header or a secret scanner's rules. A key holds only the
//! permissions it was given, is never staff and never a superuser, so every privilege rule
//! applies to it as to the least privileged operator: it cannot touch a staff account, grant
//! what it lacks or change staff status. Keys are made, listed and revoked with
//! `roster apikey`, on the server's machine.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    SqlErr,
};
use uuid::Uuid;

use super::Origin;
use super::links::{distinct, pairs, relink, resolve};
use crate::audit;
use crate::entity::api_key;
use crate::error::{AppError, FieldError};
use crate::sessions::Token;

/// What every API key starts with.
pub const PREFIX: &str = "rsk_";
/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The secret part of a presented key, if `raw` has the shape of one.
pub fn parse(raw: &str) -> Option<Token> {
    raw.strip_prefix(PREFIX).and_then(Token::parse)
}

/// A live key, as a request presents it: what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyCaller {
    pub id: Uuid,
    pub name: String,
    pub permissions: BTreeSet<String>,
}

/// The key's id and name only.
impl std::fmt::Debug for KeyCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCaller({}, {:?})", self.id, self.name)
    }
}

/// The codenames a key holds.
async fn permissions_of(conn: &impl ConnectionTrait, id: Uuid) -> Result<BTreeSet<String>, DbErr> {
    Ok(pairs(
        conn,
        "SELECT p.codename, p.id FROM permissions p \
         JOIN api_key_permissions kp ON kp.permission_id = p.id WHERE kp.api_key_id = $1",
        vec![id.into()],
    )
    .await?
    .into_iter()
    .map(|(codename, _)| codename)
    .collect())
}

/// The live key whose secret is `secret`, or `None` (unknown or revoked).
pub async fn authenticate(
    conn: &impl ConnectionTrait,
    secret: &Token,
) -> Result<Option<KeyCaller>, DbErr> {
    let Some(key) = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(secret.digest()))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let now = Utc::now();
    if key.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY) {
        // Best effort: a request is not refused because its key's stamp was not written.
        let touched = api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key.id))
            .exec(conn)
            .await;
        if let Err(e) = touched {
            tracing::warn!(key = %key.id, error = %e, "could not stamp an API key's last use");
        }
    }
    Ok(Some(KeyCaller {
        id: key.id,
        permissions: permissions_of(conn, key.id).await?,
        name: key.name,
    }))
}

/// The key `id` as it is now (inside a change's transaction), if it is live.
pub async fn live(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<KeyCaller>, DbErr> {
    let Some(key) = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::RevokedAt.is_null())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(KeyCaller {
        id: key.id,
        permissions: permissions_of(conn, key.id).await?,
        name: key.name,
    }))
}

/// A key's name: trimmed, 1–100 characters, no control characters.
fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    let bad = |message: &str| {
        AppError::InvalidInput(vec![FieldError::new(
            "name",
            crate::accounts::codes::INVALID,
            message,
        )])
    };
    if name.is_empty() {
        return Err(bad("A key needs a name."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("At most 100 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("No control characters."));
    }
    Ok(name.to_owned())
}

/// A new key: its row, the permissions it holds, and the key itself (shown once).
pub struct Created {
    pub key: api_key::Model,
    pub permissions: Vec<String>,
    /// `rsk_…`: printed once, stored nowhere.
    pub secret: zeroize::Zeroizing<String>,
}

/// Makes a key named `name` holding `permissions` (at least one, each known), recorded in
/// the audit log in the same transaction.
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    permissions: &[String],
    origin: &Origin,
) -> Result<Created, AppError> {
    let name = parse_name(name)?;
    let wanted = distinct("permissions", permissions)?;
    if wanted.is_empty() {
        return Err(AppError::InvalidInput(vec![FieldError::new(
            "permissions",
            crate::accounts::codes::REQUIRED,
            "A key needs at least one permission.",
        )]));
    }
    let token = Token::generate().map_err(AppError::internal)?;
    let txn = crate::txn::begin_writing(db).await?;
    let held = resolve(&txn, "permissions", "permissions", &wanted).await?;
    let key = api_key::Model {
        id: Uuid::now_v7(),
        name: name.clone(),
        secret_hash: token.digest(),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(key.id),
        name: Set(key.name.clone()),
        secret_hash: Set(key.secret_hash.clone()),
        created_at: Set(key.created_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::InvalidInput(vec![FieldError::new(
                "name",
                crate::accounts::codes::TAKEN,
                "A key of that name exists.",
            )])
        }
        _ => e.into(),
    })?;
    relink(
        &txn,
        "api_key_permissions",
        "api_key_id",
        "permission_id",
        key.id,
        &Default::default(),
        &held,
    )
    .await?;
    let permissions: Vec<String> = held.into_keys().collect();
    audit::record(
        &txn,
        &crate::audit::Who::system(),
        "api_key.created",
        None,
        origin,
        Some(serde_json::json!({ "key": key.id, "name": name, "permissions": permissions })),
    )
    .await?;
    txn.commit().await?;
    Ok(Created {
        key,
        permissions,
        secret: zeroize::Zeroizing::new(format!("{PREFIX}{}", token.expose())),
    })
}

/// Every key, newest first, with its permissions.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<(api_key::Model, Vec<String>)>, AppError> {
    let keys = api_key::Entity::find()
        .order_by_desc(api_key::Column::Id)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let permissions = permissions_of(db, key.id).await?.into_iter().collect();
        out.push((key, permissions));
    }
    Ok(out)
}

/// Revokes the key with this id or name: it authenticates nothing from the next request on,
/// on every process. `NOT_FOUND` if there is none; revoking twice changes nothing.
pub async fn revoke(
    db: &DatabaseConnection,
    id_or_name: &str,
    origin: &Origin,
) -> Result<api_key::Model, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let by = match Uuid::parse_str(id_or_name) {
        Ok(id) => api_key::Column::Id.eq(id),
        Err(_) => api_key::Column::Name.eq(id_or_name.trim()),
    };
    let key = api_key::Entity::find()
        .filter(by)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound)?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let now = Utc::now();
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(key.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        &crate::audit::Who::system(),
        "api_key.revoked",
        None,
        origin,
        Some(serde_json::json!({ "key": key.id, "name": key.name })),
    )
    .await?;
    txn.commit().await?;
    Ok(api_key::Model {
        revoked_at: Some(now),
        ..key
    })
}
