//! The operator's half: Django's permission model over roster's users, the admin use cases
//! (one per file, each owning its transaction) and the audit log. Knows nothing of HTTP or
//! GraphQL; who may call what is `auth::Permission::Staff`.

/// API keys for back-office scripts: made, listed and revoked by `roster apikey`.
pub mod api_keys;
/// Deleting a user and everything keyed to them.
pub mod delete_user;
/// Ending every session of a user.
pub mod end_sessions;
/// A user's own permissions and groups.
pub mod grants;
/// Group CRUD.
pub mod groups;
/// Name lists and link tables the grant-setting use cases share.
mod links;
/// Effective permissions (own ∪ groups', all for a superuser, none when inactive).
pub mod perms;
/// Removing a user's second factor.
pub mod reset_mfa;
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
/// Webhook endpoints and their deliveries.
pub mod webhooks;

use crate::entity::user;

/// Who acts: a signed-in staff user, a script's API key, or a command run where the server
/// runs.
#[derive(Clone)]
pub enum Actor {
    User(Box<user::Model>),
    ApiKey(api_keys::KeyCaller),
    System,
}

/// Ids only: the user row holds the password hash.
impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(u) => write!(f, "Actor::User({})", u.id),
            Self::ApiKey(k) => write!(f, "Actor::ApiKey({})", k.id),
            Self::System => f.write_str("Actor::System"),
        }
    }
}

impl Actor {
    /// How the audit log names this actor.
    pub fn who(&self) -> crate::audit::Who {
        match self {
            Self::User(u) => crate::audit::Who::user(u.id),
            Self::ApiKey(k) => crate::audit::Who::api_key(k.id),
            Self::System => crate::audit::Who::system(),
        }
    }
}

/// Where an action came from, for the audit log.
pub use crate::audit::Origin;
