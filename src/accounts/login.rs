//! `login`: identifier + password → a new session.

use std::net::IpAddr;

use chrono::{SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};

use super::canonical::{canonical, email_canonical};
use super::{AccountService, User};
use crate::entity::user;
use crate::error::AppError;
use crate::password::{HashError, Plaintext, Verified};
use crate::sessions::{Session, Token};

/// No stored username (150) or email (254) is longer than this, so a longer identifier is
/// looked up nowhere and costs no normalization beyond this prefix.
const MAX_IDENTIFIER_CHARS: usize = 320;

/// What a client submits to log in.
#[derive(Debug)]
pub struct Login {
    /// A username or an email address, in any case or width.
    pub identifier: String,
    pub password: Plaintext,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A successful login: the token is shown to the client once and stored only hashed.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: Token,
    pub session: Session,
    pub user: User,
}

impl AccountService {
    /// Logs a user in by username or email (canonical forms) and password.
    ///
    /// An unknown identifier, a wrong password and a deactivated account get the same
    /// answer, [`AppError::InvalidCredentials`], after the same work: one Argon2id
    /// verification (against a dummy hash when there is no account) and one failure counted
    /// against the account, or against the identifier's canonical form when there is none.
    /// A key that has used up `--login-failure-limit` is answered `RATE_LIMITED` before the
    /// hash pool is touched.
    ///
    /// `admit` is the per-client limit (`--login-rate-limit`), spent only once a hash-queue
    /// slot is reserved, as for `register`. A stored hash with other parameters than the
    /// configured ones is replaced by a fresh Argon2id hash on success (Django's
    /// `must_update`), when the pool has room for it.
    #[tracing::instrument(name = "login", skip_all)]
    pub async fn login(
        &self,
        login: Login,
        admit: impl FnOnce() -> Result<(), AppError>,
    ) -> Result<LoggedIn, AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        admit()?;
        let identifier: String = login
            .identifier
            .chars()
            .take(MAX_IDENTIFIER_CHARS)
            .collect();
        let too_long = login.identifier.chars().nth(MAX_IDENTIFIER_CHARS).is_some();
        let username_key = canonical(&identifier);
        let account = if identifier.is_empty() || too_long {
            None
        } else {
            self.find_for_login(&username_key, &email_canonical(&identifier))
                .await?
        };
        // Username and email of one account share a key; an unknown identifier has its own.
        let key = match &account {
            Some(u) => format!("user:{}", u.id),
            None => format!("unknown:{username_key}"),
        };
        self.failures
            .check(&key)
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;

        let verified = match &account {
            Some(u) => {
                let result = self
                    .hasher
                    .verify_reserved(slot, login.password.clone(), &u.password_hash)
                    .await;
                match result {
                    Ok(v) => v,
                    Err(HashError::Unverifiable(e)) => {
                        tracing::warn!(user_id = %u.id, error = %e, "stored password hash cannot be verified; login refused");
                        Verified {
                            matches: false,
                            needs_rehash: false,
                        }
                    }
                    Err(e) => return Err(pool_error(e)),
                }
            }
            None => {
                self.hasher
                    .verify_dummy(slot, login.password.clone())
                    .await
                    .map_err(pool_error)?;
                Verified {
                    matches: false,
                    needs_rehash: false,
                }
            }
        };
        let user = match account {
            Some(u) if verified.matches && u.is_active => u,
            _ => {
                self.failures.record_failure(&key);
                return Err(AppError::InvalidCredentials);
            }
        };
        self.failures.reset(&key);

        // Upgrade the stored hash while the plaintext is at hand. Best effort: a busy pool
        // or a failure leaves the old hash, which still verifies, for the next login.
        let upgraded = if verified.needs_rehash {
            match self.hasher.reserve() {
                Ok(slot) => self.hasher.hash_reserved(slot, login.password).await.ok(),
                Err(_) => None,
            }
        } else {
            None
        };

        crate::deadline::commit_started();
        let now = Utc::now().trunc_subsecs(6);
        let txn = self.db.begin().await?;
        user::Entity::update_many()
            .col_expr(user::Column::LastLogin, Expr::value(now))
            .filter(user::Column::Id.eq(user.id))
            .exec(&txn)
            .await?;
        if let Some(hash) = &upgraded {
            // Only over the hash that was verified: a concurrent password change wins.
            user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, Expr::value(hash.clone()))
                .filter(user::Column::Id.eq(user.id))
                .filter(user::Column::PasswordHash.eq(&user.password_hash))
                .exec(&txn)
                .await?;
        }
        let (token, session) = self
            .sessions
            .create(&txn, user.id, login.ip, login.user_agent.as_deref())
            .await?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, rehashed = upgraded.is_some(), "logged in");
        Ok(LoggedIn {
            token,
            session,
            user: user.into(),
        })
    }

    /// The account whose canonical username or canonical email matches; a username match
    /// wins (Django's usernames may look like addresses).
    async fn find_for_login(
        &self,
        username: &str,
        email: &str,
    ) -> Result<Option<user::Model>, AppError> {
        let rows = user::Entity::find()
            .filter(
                Condition::any()
                    .add(user::Column::UsernameCanonical.eq(username))
                    .add(user::Column::EmailCanonical.eq(email)),
            )
            .limit(2)
            .all(&self.db)
            .await?;
        let by_name = rows.iter().position(|u| u.username_canonical == username);
        Ok(match by_name {
            Some(i) => rows.into_iter().nth(i),
            None => rows.into_iter().next(),
        })
    }
}

/// A pool failure as the client sees it.
pub(super) fn pool_error(e: HashError) -> AppError {
    match e {
        HashError::Busy => AppError::ServerBusy,
        other => AppError::internal(other),
    }
}
