//! The auth seam: who is calling, and may they. A request's credential (session cookie or
//! bearer token, [`credential`]) is resolved to its [`Caller`] at most once per request
//! ([`Auth`]), and checked against what an operation requires ([`Permission`]). The GraphQL
//! guard asks here today; forward-auth checks, a second factor's assurance level and staff
//! permissions extend these types rather than the four modules that use them.

use tokio::sync::OnceCell;

use crate::error::AppError;
use crate::sessions::{Caller, Sessions, Token};

/// Reading the credential from HTTP headers; the session cookie's names.
pub mod credential;

/// What a root field requires of its caller; the GraphQL counterpart of DRF's
/// `permission_classes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Anyone, signed in or not.
    AllowAny,
    /// A live session of an active user; otherwise one `UNAUTHENTICATED` error and nothing
    /// runs.
    IsAuthenticated,
}

/// The request's credentials and, once asked for, the caller they stand for. The lookup
/// happens at most once per request and only if a field needs it.
pub struct Auth {
    token: Option<Token>,
    sessions: Option<Sessions>,
    caller: OnceCell<Option<Caller>>,
    /// Set once the request ended its own session: later fields of the same document run
    /// as anonymous.
    forgotten: std::sync::atomic::AtomicBool,
}

impl Auth {
    pub fn new(token: Option<Token>, sessions: Sessions) -> Self {
        Self {
            token,
            sessions: Some(sessions),
            caller: OnceCell::new(),
            forgotten: Default::default(),
        }
    }

    /// No credentials (requests outside HTTP).
    pub fn anonymous() -> Self {
        Self {
            token: None,
            sessions: None,
            caller: OnceCell::new(),
            forgotten: Default::default(),
        }
    }

    /// The signed-in caller, or `None`: a missing, unknown, expired or revoked token, or a
    /// deactivated user, all make the caller anonymous.
    pub async fn caller(&self) -> Result<Option<&Caller>, AppError> {
        let (Some(token), Some(sessions)) = (&self.token, &self.sessions) else {
            return Ok(None);
        };
        if self.forgotten.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(None);
        }
        let caller = self
            .caller
            .get_or_try_init(|| sessions.authenticate(token))
            .await?;
        Ok(caller.as_ref())
    }

    /// The request's session has ended (logout, revocation): from now on it is anonymous.
    pub fn forget(&self) {
        self.forgotten
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The caller, or `UNAUTHENTICATED`.
    pub async fn require(&self) -> Result<&Caller, AppError> {
        self.caller().await?.ok_or(AppError::Unauthenticated)
    }

    /// Whether the caller may run an operation that requires `permission`: `Ok(false)` is
    /// `UNAUTHENTICATED` to the client.
    pub async fn allows(&self, permission: Permission) -> Result<bool, AppError> {
        match permission {
            Permission::AllowAny => Ok(true),
            Permission::IsAuthenticated => Ok(self.caller().await?.is_some()),
        }
    }
}
