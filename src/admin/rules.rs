//! The privilege rules every admin use case applies inside its own transaction, against the
//! rows as they are then (not as they were when the request started):
//! - the acting user is read again and must still be active staff holding the permission;
//! - only a superuser touches a staff account or a superuser;
//! - only a superuser grants a permission it does not hold itself;
//! - the last active staff superuser stays one (not deactivated, demoted or deleted).
//!
//! A command run where the server runs (`Actor::System`) acts as a superuser, but the last
//! superuser rule binds it too.

use std::collections::BTreeSet;

use sea_orm::{DatabaseTransaction, EntityTrait};
use uuid::Uuid;

use super::Actor;
use crate::entity::user;
use crate::error::AppError;
pub(super) use crate::superusers::{keeps_a_superuser, serialize};

pub(super) const NOT_ALLOWED: &str = "This needs a staff account with the right permission.";
pub(super) const STAFF_TARGET: &str = "Only a superuser may change a staff account or a superuser.";
pub(super) const NOT_HELD: &str = "Only a superuser may grant a permission it does not hold.";

/// Who acts, as read inside the transaction.
pub(super) struct Acting {
    /// The acting user (`None` for a key or a command).
    pub me: Option<user::Model>,
    /// What the actor holds (unused for a superuser or a command).
    pub held: BTreeSet<String>,
    /// A superuser, or a command.
    pub superuser: bool,
}

/// Reads the actor again and checks it may use `permission`.
pub(super) async fn acting(
    txn: &DatabaseTransaction,
    actor: &Actor,
    permission: &str,
) -> Result<Acting, AppError> {
    match actor {
        Actor::System => Ok(Acting {
            me: None,
            held: BTreeSet::new(),
            superuser: true,
        }),
        Actor::ApiKey(key) => {
            // Revoked meanwhile, or its permissions changed: the key as it is now decides.
            let key = crate::admin::api_keys::live(txn, key.id)
                .await?
                .ok_or(AppError::Forbidden(NOT_ALLOWED))?;
            if !key.permissions.contains(permission) {
                return Err(AppError::Forbidden(NOT_ALLOWED));
            }
            Ok(Acting {
                me: None,
                held: key.permissions,
                superuser: false,
            })
        }
        Actor::User(me) => {
            let me = user::Entity::find_by_id(me.id)
                .one(txn)
                .await?
                .ok_or(AppError::Forbidden(NOT_ALLOWED))?;
            let held = super::perms::effective(txn, &me).await?;
            if !super::perms::staff_may(&me, &held, permission) {
                return Err(AppError::Forbidden(NOT_ALLOWED));
            }
            Ok(Acting {
                superuser: me.is_superuser,
                me: Some(me),
                held,
            })
        }
    }
}

impl Acting {
    /// A superuser, or a command.
    pub fn is_superuser(&self) -> bool {
        self.superuser
    }

    /// Whether the actor is the user `id`.
    pub fn is(&self, id: Uuid) -> bool {
        self.me.as_ref().is_some_and(|m| m.id == id)
    }

    /// Only a superuser touches a staff account or a superuser.
    pub fn may_touch(&self, target: &user::Model) -> Result<(), AppError> {
        if (target.is_staff || target.is_superuser) && !self.is_superuser() {
            return Err(AppError::Forbidden(STAFF_TARGET));
        }
        Ok(())
    }

    /// Only a superuser grants (or takes away) a permission it does not hold.
    pub fn holds_all<'a>(
        &self,
        mut permissions: impl Iterator<Item = &'a String>,
    ) -> Result<(), AppError> {
        if self.is_superuser() || permissions.all(|p| self.held.contains(p)) {
            Ok(())
        } else {
            Err(AppError::Forbidden(NOT_HELD))
        }
    }
}

/// The user `id`, or `NOT_FOUND`.
pub(super) async fn target(txn: &DatabaseTransaction, id: Uuid) -> Result<user::Model, AppError> {
    user::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound)
}
