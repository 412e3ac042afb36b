//! The operator's half: Django's permission model over roster's users, the admin use cases
//! (one per file, each owning its transaction) and the audit log. Knows nothing of HTTP or
//! GraphQL; who may call what is `auth::Permission::Staff`.

/// The audit log: entries written in the transaction of the change they record.
pub mod audit;
/// Deleting a user and everything keyed to them.
pub mod delete_user;
/// Ending every session of a user.
pub mod end_sessions;
/// A user's own permissions and groups.
pub mod grants;
/// Group CRUD.
pub mod groups;
/// Effective permissions (own ∪ groups', all for a superuser, none when inactive).
pub mod perms;
/// The privilege rules, applied inside each use case's transaction.
mod rules;
/// An operator sends a user the password-reset email.
pub mod send_reset;
/// Deactivating and reactivating a user.
pub mod set_active;
/// Granting and taking away staff and superuser status.
pub mod set_staff;
/// Finding users: a prefix of the canonical username or email, cursor pagination.
pub mod users;

use crate::entity::user;

/// Who acts: a signed-in staff user, or a command run where the server runs.
#[derive(Clone)]
pub enum Actor {
    User(Box<user::Model>),
    System,
}

/// Ids only: the user row holds the password hash.
impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(u) => write!(f, "Actor::User({})", u.id),
            Self::System => f.write_str("Actor::System"),
        }
    }
}

impl Actor {
    fn user_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::User(u) => Some(u.id),
            Self::System => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::System => "system",
        }
    }
}

/// Where an action came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}
