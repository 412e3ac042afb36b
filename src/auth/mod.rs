//! The auth seam: who is calling, and may they. A request's credential (session cookie or
//! bearer token, [`credential`]) is resolved to its [`Caller`] at most once per request
//! ([`Auth`]), and checked against what an operation requires ([`Permission`]). The GraphQL
//! guard asks here today; forward-auth checks, a second factor's assurance level and staff
//! permissions extend these types rather than the four modules that use them.

use tokio::sync::OnceCell;

use crate::admin::api_keys::KeyCaller;
use crate::error::AppError;
use crate::sessions::{Caller, Sessions};

pub use credential::Credential;

/// Reading the credential from HTTP headers; the session cookie's names.
pub mod credential;

/// What a root field requires of its caller; the GraphQL counterpart of DRF's
/// `permission_classes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Anyone, signed in or not.
    AllowAny,
    /// A live session of an active user, past its second step when the user has one;
    /// otherwise one `UNAUTHENTICATED` (or `MFA_REQUIRED`) error and nothing runs.
    IsAuthenticated,
    /// A live session, even one still waiting for its second step (`verifySecondFactor`,
    /// `logout`).
    SecondStep,
    /// An active **staff** user holding this Django permission (`app_label.codename`; a
    /// superuser holds all): Django's admin rule; or an API key given this permission.
    /// Anonymous: `UNAUTHENTICATED`; anyone else signed in: `FORBIDDEN`.
    Staff(&'static str),
}

/// The request's credentials and, once asked for, the caller they stand for. The lookup
/// happens at most once per request and only if a field needs it.
pub struct Auth {
    credential: Option<Credential>,
    sessions: Option<Sessions>,
    caller: OnceCell<Option<Caller>>,
    /// The API key presented, looked up once per request if a field needs it.
    api_key: OnceCell<Option<KeyCaller>>,
    /// The caller's effective permissions, read once per request if a field needs them.
    permissions: OnceCell<std::collections::BTreeSet<String>>,
    /// Set once the request ended its own session: later fields of the same document run
    /// as anonymous.
    forgotten: std::sync::atomic::AtomicBool,
    /// `--require-mfa-for-staff`: staff permissions need a session at aal2.
    staff_need_aal2: bool,
}

impl Auth {
    pub fn new(credential: Option<Credential>, sessions: Sessions) -> Self {
        Self {
            credential,
            sessions: Some(sessions),
            caller: OnceCell::new(),
            api_key: OnceCell::new(),
            permissions: OnceCell::new(),
            forgotten: Default::default(),
            staff_need_aal2: false,
        }
    }

    /// `--require-mfa-for-staff`: a staff permission needs a session signed in with a second
    /// factor.
    pub fn staff_need_aal2(mut self, on: bool) -> Self {
        self.staff_need_aal2 = on;
        self
    }

    /// No credentials (requests outside HTTP).
    pub fn anonymous() -> Self {
        Self {
            credential: None,
            sessions: None,
            caller: OnceCell::new(),
            api_key: OnceCell::new(),
            permissions: OnceCell::new(),
            forgotten: Default::default(),
            staff_need_aal2: false,
        }
    }

    /// The signed-in caller, or `None`: a missing, unknown, expired or revoked token, or a
    /// deactivated user, all make the caller anonymous (an API key is no session either).
    pub async fn caller(&self) -> Result<Option<&Caller>, AppError> {
        let (Some(token), Some(sessions)) = (
            self.credential.as_ref().and_then(Credential::session),
            &self.sessions,
        ) else {
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

    /// The live API key the request presents, or `None` (no key, unknown, revoked).
    pub async fn api_key(&self) -> Result<Option<&KeyCaller>, AppError> {
        let (Some(Credential::ApiKey(secret)), Some(sessions)) = (&self.credential, &self.sessions)
        else {
            return Ok(None);
        };
        let key = self
            .api_key
            .get_or_try_init(|| crate::admin::api_keys::authenticate(sessions.db(), secret))
            .await?;
        Ok(key.as_ref())
    }

    /// The caller, or `UNAUTHENTICATED`; `MFA_REQUIRED` for a session still waiting for its
    /// second step.
    pub async fn require(&self) -> Result<&Caller, AppError> {
        let caller = self.require_any().await?;
        if caller.session.mfa_pending {
            return Err(AppError::MfaRequired(
                "This session needs its second step first (verifySecondFactor).",
            ));
        }
        Ok(caller)
    }

    /// The caller, even one whose session waits for its second step; or `UNAUTHENTICATED`.
    pub async fn require_any(&self) -> Result<&Caller, AppError> {
        self.caller().await?.ok_or(AppError::Unauthenticated)
    }

    /// Whether the caller may run an operation that requires `permission`: `Ok(())`, or the
    /// error to answer (`UNAUTHENTICATED`, `FORBIDDEN`).
    pub async fn authorize(&self, permission: Permission) -> Result<(), AppError> {
        match permission {
            Permission::AllowAny => Ok(()),
            Permission::IsAuthenticated => self.require().await.map(|_| ()),
            Permission::SecondStep => self.require_any().await.map(|_| ()),
            Permission::Staff(name) if matches!(self.credential, Some(Credential::ApiKey(_))) => {
                let key = self.api_key().await?.ok_or(AppError::Unauthenticated)?;
                if key.permissions.contains(name) {
                    Ok(())
                } else {
                    Err(AppError::Forbidden(
                        "This needs a staff account with the right permission.",
                    ))
                }
            }
            Permission::Staff(name) => {
                let caller = self.require().await?;
                if !caller.user.is_staff {
                    return Err(AppError::Forbidden(
                        "This needs a staff account with the right permission.",
                    ));
                }
                if self.staff_need_aal2 && caller.session.aal < 2 {
                    return Err(AppError::MfaRequired(
                        "Staff use the admin API from a session signed in with a second factor: \
                         set one up (startTotpEnrollment) and sign in with it.",
                    ));
                }
                let held = self.permissions(caller).await?;
                if crate::admin::perms::staff_may(&caller.user, held, name) {
                    Ok(())
                } else {
                    Err(AppError::Forbidden(
                        "This needs a staff account with the right permission.",
                    ))
                }
            }
        }
    }

    /// The caller's effective permissions (read once per request).
    pub async fn permissions(
        &self,
        caller: &Caller,
    ) -> Result<&std::collections::BTreeSet<String>, AppError> {
        let sessions = self
            .sessions
            .as_ref()
            .ok_or_else(|| AppError::internal("permissions asked outside a request"))?;
        Ok(self
            .permissions
            .get_or_try_init(|| crate::admin::perms::effective(sessions.db(), &caller.user))
            .await?)
    }
}
