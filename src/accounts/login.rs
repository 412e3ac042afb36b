//! `login`: identifier + password → a new session.

use std::net::IpAddr;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use super::canonical::{canonical, email_canonical};
use super::{AccountService, User};
use crate::audit::{self, Origin, Who};
use crate::entity::user;
use crate::error::AppError;
use crate::password::{HashError, Plaintext, Verified};
use crate::ratelimit::{Admission, FailureKey};
use crate::sessions::{NewSession, Session, Token};

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
    /// For the audit log.
    pub request_id: Option<String>,
}

/// A successful login: the token is shown to the client once and stored only hashed.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: Token,
    pub session: Session,
    pub user: User,
    /// The user has a second factor: this session waits for `verifySecondFactor` and can do
    /// nothing else meanwhile.
    pub mfa_required: bool,
}

impl Login {
    fn origin(&self) -> Origin {
        Origin {
            ip: self.ip.map(|ip| ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }
}

impl AccountService {
    /// Logs a user in by username or email (canonical forms) and password.
    ///
    /// An unknown identifier, a wrong password and a deactivated account get the same
    /// answer, [`AppError::InvalidCredentials`], no sooner than
    /// [`crate::password::Hasher::failure_floor`] after verification began: one verification
    /// of the stored hash (of a dummy Argon2id hash when there is no account or the stored
    /// one cannot be verified), and one attempt counted against the account, or against the
    /// identifier's canonical form when there is none (cleared once the password verifies).
    /// A key that has used up `--login-failure-limit` is answered `RATE_LIMITED` before any
    /// hash is computed.
    ///
    /// `admit` is the per-client limit (`--login-rate-limit`), spent only once a hash-queue
    /// slot is reserved, as for `register`. A stored hash with other parameters than the
    /// configured ones is replaced by a fresh Argon2id hash on success (Django's
    /// `must_update`), when the pool has room for it.
    #[tracing::instrument(name = "login", skip_all)]
    pub async fn login(&self, login: Login, admit: Admission) -> Result<LoggedIn, AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        admit.check().await?;
        let identifier: String = login
            .identifier
            .chars()
            .take(MAX_IDENTIFIER_CHARS)
            .collect();
        let too_long = login.identifier.chars().nth(MAX_IDENTIFIER_CHARS).is_some();
        let account = if identifier.is_empty() || too_long {
            None
        } else {
            self.find_for_login(&canonical(&identifier), &email_canonical(&identifier))
                .await?
        };
        // Username and email of one account share a key. An unknown identifier is keyed by
        // the broadest form the lookup uses (the email canonical form, which also maps IDNA
        // dots and widths), so two spellings that would find the same account share a key
        // whether or not it exists.
        let key = match &account {
            Some(u) => FailureKey::Account(u.id),
            None => FailureKey::Unknown(email_canonical(&identifier)),
        };
        // Counted before the password is checked, so concurrent attempts cannot all pass.
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;

        let verify_started = std::time::Instant::now();
        let matches = match &account {
            Some(u) => {
                let result = self
                    .hasher
                    .verify_reserved(slot, login.password.clone(), &u.password_hash)
                    .await;
                match result {
                    Ok(v) => Some(v),
                    Err(e @ (HashError::Unverifiable(_) | HashError::Argon2(_))) => {
                        // A stored hash roster cannot check: refuse, after the same work as
                        // an unknown identifier so the answer takes as long.
                        tracing::warn!(user_id = %u.id, error = %e, "stored password hash cannot be verified; login refused");
                        self.spend_dummy(login.password.clone()).await?;
                        None
                    }
                    Err(e) => return Err(pool_error(e)),
                }
            }
            None => {
                self.hasher
                    .verify_dummy(slot, login.password.clone())
                    .await
                    .map_err(pool_error)?;
                None
            }
        };
        // An account its owner closed under `--deletion-grace` reopens once its password is
        // proven (only ever asked for an inactive account whose password matched).
        let account = match (account, &matches) {
            (Some(u), Some(v)) if v.matches && !u.is_active => Some(
                self.reopen_if_closed_for_deletion(u, &login.origin())
                    .await?,
            ),
            (account, _) => account,
        };
        let (user, verified) = match (account, matches) {
            (Some(u), Some(v)) if v.matches && u.is_active => (u, v),
            (account, _) => {
                // One insert whether or not the account exists: the answer's timing stays
                // the same. Never the identifier (it may be a password typed in the wrong
                // field), only the account it named, if any.
                let origin = login.origin();
                let entry = audit::record(
                    &self.db,
                    &Who::anonymous(),
                    "login.failed",
                    account.map(|u| u.id),
                    &origin,
                    None,
                )
                .await;
                if let Err(e) = entry {
                    tracing::warn!(error = %e, "a failed login could not be written to the audit log");
                }
                return Err(self.failed_after(verify_started).await);
            }
        };
        // The password is proven: the attempt was not a guess, so its count is cleared now,
        // before anything else can fail or the request be dropped (a busy pool while
        // re-checking, a database error, the deadline, a client that hangs up, an unverified
        // email). A user who keeps typing the right password while the server struggles is
        // not locked out by it. A login that then loses a race with a password change or a
        // deactivation answers like the wrong password it has become, and counts like one.
        self.failures.succeeded(&key).await;
        let finished = self.finish_login(user, verified, login).await;
        if matches!(finished, Err(AppError::InvalidCredentials)) {
            // Counted again, not refused: the answer is already decided.
            let _ = self.failures.begin(&key).await;
        }
        finished
    }

    /// The rest of [`AccountService::login`] once the password has verified: the email
    /// check, the hash upgrade and the session.
    async fn finish_login(
        &self,
        user: user::Model,
        verified: Verified,
        login: Login,
    ) -> Result<LoggedIn, AppError> {
        if self.email.require_verified && !user.email_verified {
            // Only now, with the password right: a stranger learns nothing from it. The
            // attempt was not a guess, so it does not count against the account (`login`
            // clears it).
            return Err(AppError::EmailNotVerified);
        }
        if crate::password::django::WEAK_ALGORITHMS.contains(&verified.algorithm) {
            tracing::warn!(user_id = %user.id, algorithm = verified.algorithm, "password stored with a weak legacy Django hash; upgrading it now");
        }

        // Upgrade the stored hash while the plaintext is at hand. Best effort: a busy pool
        // or a failure leaves the old hash, which still verifies, for the next login.
        let upgraded = if verified.needs_rehash {
            match self.hasher.reserve() {
                Ok(slot) => self
                    .hasher
                    .hash_reserved(slot, login.password.clone())
                    .await
                    .ok(),
                Err(_) => None,
            }
        } else {
            None
        };

        // A user with a second factor gets a session that waits for it (minutes, nothing
        // else allowed): asked inside the session's transaction (`commit_login`), only now,
        // with the password right, so a stranger learns nothing.
        crate::deadline::commit_started();
        let agent = login.user_agent.as_deref();
        let origin = login.origin();
        let mut created = self
            .commit_login(&user, upgraded.as_deref(), login.ip, agent, &origin)
            .await?;
        // Only a first commit that went through stored the upgrade; a retry below does not.
        let upgraded_from = match (&created, &upgraded) {
            (Some(_), Some(_)) => Some(verified.algorithm),
            _ => None,
        };
        let mut user = user;
        if created.is_none() {
            // The row changed since the lookup. When another login of the same user upgraded
            // the hash meanwhile, the password is still right: check it once against the
            // stored hash rather than refuse a good login. A password change or a
            // deactivation still ends here with no session. Nothing was written, so the
            // request deadline applies to this check again.
            crate::deadline::commit_abandoned();
            if let Some(fresh) = self.reverify(&user, login.password).await? {
                crate::deadline::commit_started();
                created = self
                    .commit_login(&fresh, None, login.ip, agent, &origin)
                    .await?;
                user = fresh;
            }
        }
        let Some(created) = created else {
            return Err(AppError::InvalidCredentials);
        };
        // A session still waiting for its second step trims nothing: a stranger with the
        // password alone must not push the owner's sessions out.
        if created.over_cap && !created.session.mfa_pending {
            self.sessions.end_oldest_beyond_cap(&created.session).await;
        }
        let NewSession { token, session, .. } = created;
        self.metrics.session_created();
        tracing::info!(
            user_id = %user.id,
            session_id = %session.id,
            upgraded_from,
            "logged in"
        );
        Ok(LoggedIn {
            mfa_required: session.mfa_pending,
            token,
            session,
            user: user.into(),
        })
    }

    /// Creates the session, only while `user.password_hash` (the hash the password was
    /// checked against) is still the stored one and the user still active: a login racing a
    /// password change or a deactivation gets no session (see `Sessions::create_for_login`).
    /// The usual login is that one statement; an upgrade first swaps the hash, under the
    /// same condition, in one transaction with it. `None`: the row changed, nothing written.
    async fn commit_login(
        &self,
        user: &user::Model,
        upgraded: Option<&str>,
        ip: Option<IpAddr>,
        agent: Option<&str>,
        origin: &Origin,
    ) -> Result<Option<NewSession>, AppError> {
        let txn = self.db.begin().await?;
        if upgraded.is_none() && txn.get_database_backend() == DbBackend::Sqlite {
            // The usual login on SQLite: what follows, in one round trip.
            let created = self
                .sessions
                .create_for_login_with(
                    &txn,
                    user.id,
                    &user.password_hash,
                    ip,
                    agent,
                    self.second_factor.challenge_ttl,
                    |session_id| {
                        let entry = audit::record_for_session(
                            DbBackend::Sqlite,
                            &Who::user(user.id),
                            (PASSWORD_VERIFIED, SUCCEEDED),
                            Some(user.id),
                            origin,
                            Some(serde_json::json!({ "session": session_id })),
                            session_id,
                        );
                        let event = crate::webhooks::emit_for_session(
                            crate::webhooks::EventType::SessionCreated,
                            user.id,
                            serde_json::json!({ "session_id": session_id, "aal": 1 }),
                            session_id,
                        );
                        Ok(vec![entry?, event])
                    },
                )
                .await?;
            let Some((created, deliveries)) = created else {
                txn.rollback().await?;
                return Ok(None);
            };
            txn.commit().await?;
            if deliveries > 0 {
                crate::webhooks::wake();
            }
            return Ok(Some(created));
        }
        let swapped = match upgraded {
            None => true,
            Some(hash) => {
                user::Entity::update_many()
                    .col_expr(user::Column::PasswordHash, Expr::value(hash))
                    .filter(user::Column::Id.eq(user.id))
                    .filter(user::Column::PasswordHash.eq(&user.password_hash))
                    .filter(user::Column::IsActive.eq(true))
                    .exec(&txn)
                    .await?
                    .rows_affected
                    == 1
            }
        };
        let hash = upgraded.unwrap_or(&user.password_hash);
        let created = if swapped {
            self.sessions
                .create_for_login(&txn, user.id, hash, ip, agent)
                .await?
        } else {
            None
        };
        let mut created = created;
        if let Some(created) = &mut created {
            // Asked once, inside the transaction, after the insert (one statement fewer per
            // login than asking before it too): a second factor confirmed at any time before
            // (its confirmation ends the sessions it can see, and this one it could not)
            // makes this session wait for its second step. On PostgreSQL the insert waited
            // for a confirmation holding the user row.
            if crate::mfa::required(&txn, user.id).await? {
                let ttl = self.second_factor.challenge_ttl;
                self.sessions
                    .make_pending(&txn, &mut created.session, ttl)
                    .await?;
            }
            let action = if created.session.mfa_pending {
                PASSWORD_VERIFIED
            } else {
                SUCCEEDED
            };
            audit::record(
                &txn,
                &Who::user(user.id),
                action,
                Some(user.id),
                origin,
                Some(serde_json::json!({ "session": created.session.id })),
            )
            .await?;
            // A session waiting for its second step is announced when that step completes.
            if !created.session.mfa_pending {
                crate::webhooks::emit(
                    &txn,
                    crate::webhooks::EventType::SessionCreated,
                    user.id,
                    serde_json::json!({ "session_id": created.session.id, "aal": 1 }),
                )
                .await?;
            }
            txn.commit().await?;
        } else {
            txn.rollback().await?;
        }
        Ok(created)
    }

    /// The user's row as it is now, when it is active, holds another hash than `seen` and
    /// `password` verifies against that hash (one more Argon2id verification, on a slot of
    /// its own). Only a caller that already proved the password against `seen` gets here,
    /// so the extra work tells a guesser nothing.
    async fn reverify(
        &self,
        seen: &user::Model,
        password: Plaintext,
    ) -> Result<Option<user::Model>, AppError> {
        let Some(fresh) = user::Entity::find_by_id(seen.id).one(&self.db).await? else {
            return Ok(None);
        };
        if !fresh.is_active || fresh.password_hash == seen.password_hash {
            return Ok(None);
        }
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        match self
            .hasher
            .verify_reserved(slot, password, &fresh.password_hash)
            .await
        {
            Ok(v) if v.matches => Ok(Some(fresh)),
            Ok(_) | Err(HashError::Unverifiable(_) | HashError::Argon2(_)) => Ok(None),
            Err(e) => Err(pool_error(e)),
        }
    }

    /// A failed login's answer, given no sooner than
    /// [`crate::password::Hasher::failure_floor`] after its
    /// verification began: an unknown name, a wrong password against any stored format
    /// (salted MD5 answers in microseconds, Django's PBKDF2 in a hundred milliseconds), a
    /// deactivated account, a hash roster cannot verify — all answer after the same time,
    /// as Django's `harden_runtime` means to. The wait is a timer, not work: no worker is
    /// held and no CPU is spent.
    async fn failed_after(&self, verify_started: std::time::Instant) -> AppError {
        if let Some(floor) = self.hasher.failure_floor() {
            tokio::time::sleep_until((verify_started + floor).into()).await;
        }
        AppError::InvalidCredentials
    }

    /// One verification against the dummy hash, on a slot of its own.
    async fn spend_dummy(&self, password: Plaintext) -> Result<(), AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        self.hasher
            .verify_dummy(slot, password)
            .await
            .map_err(pool_error)
    }

    /// The account whose canonical username or canonical email matches; a username match
    /// wins (Django's usernames may look like addresses).
    async fn find_for_login(
        &self,
        username: &str,
        email: &str,
    ) -> Result<Option<user::Model>, AppError> {
        // On a SQLite file the same query is stepped on this thread, without sqlx's
        // hand-offs to its connection thread and back (`sessions::sqlite_lookup`); sqlx
        // answers whenever that reader cannot.
        let direct = self
            .sessions
            .direct_reader()
            .and_then(|reader| reader.find_login(username, email));
        let rows = match direct {
            Some(rows) => rows,
            None => {
                user::Entity::find()
                    .filter(
                        Condition::any()
                            .add(user::Column::UsernameCanonical.eq(username))
                            .add(user::Column::EmailCanonical.eq(email)),
                    )
                    .limit(2)
                    .all(&self.db)
                    .await?
            }
        };
        // A username may not equal another account's email (the `login_names` index), but
        // accounts from before that rule may, and a username's canonical form keeps a
        // Unicode domain its owner's email spells in IDNA: for an identifier shaped like an
        // address the email match wins, so no username can capture an owner's login by email.
        let preferred = if username.contains('@') {
            rows.iter().position(|u| u.email_canonical == email)
        } else {
            rows.iter().position(|u| u.username_canonical == username)
        };
        Ok(match preferred {
            Some(i) => rows.into_iter().nth(i),
            None => rows.into_iter().next(),
        })
    }
}

/// The audit entry of a login whose session waits for its second factor.
const PASSWORD_VERIFIED: &str = "login.password_verified";
/// The audit entry of a login that signed its user in.
const SUCCEEDED: &str = "login.succeeded";

/// A pool failure as the client sees it.
pub(super) fn pool_error(e: HashError) -> AppError {
    match e {
        HashError::Busy => AppError::ServerBusy,
        other => AppError::internal(other),
    }
}

/// Seeds [`crate::password::Hasher::failure_floor`] at start-up: one verification (of a
/// password that matches nothing) against each cost class found among a sample of the stored
/// hashes that are not roster's own Argon2id, so that the first failed login against, say, a
/// dormant account on Django's PBKDF2 is already answered no sooner than any other. Reads at
/// most `SAMPLE` rows and verifies at most `CLASSES` hashes; runs in the background.
pub async fn seed_failure_floor(
    db: &sea_orm::DatabaseConnection,
    hasher: &crate::password::Hasher,
) -> Result<usize, sea_orm::DbErr> {
    const SAMPLE: u64 = 1000;
    const CLASSES: usize = 16;
    let stored: Vec<String> = user::Entity::find()
        .select_only()
        .column(user::Column::PasswordHash)
        .filter(user::Column::PasswordHash.not_like("$argon2id$%"))
        .limit(SAMPLE)
        .into_tuple()
        .all(db)
        .await?;
    let mut classes = std::collections::HashSet::new();
    for hash in stored {
        if classes.len() >= CLASSES {
            break;
        }
        if !classes.insert(cost_class(&hash)) {
            continue;
        }
        let Ok(slot) = hasher.reserve() else {
            break;
        };
        // Unverifiable rows are refused before any work: nothing to learn from them.
        let _ = hasher
            .verify_reserved(slot, Plaintext::new("\0failure-floor-seed".into()), &hash)
            .await;
    }
    Ok(classes.len())
}

/// What decides a stored hash's cost, without its salt or digest: the algorithm and every
/// field that is a number or a `key=value` parameter (`pbkdf2_sha256$1000000`,
/// `bcrypt$$2b$12`, `scrypt$16384$8$5`, `argon2$argon2id$v=19$m=102400,t=2,p=8`).
fn cost_class(stored: &str) -> String {
    let mut fields = stored.split('$');
    let mut class = fields.next().unwrap_or_default().to_owned();
    for field in fields {
        let parameter = (!field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))
            || field.contains('=')
            || field.starts_with("argon2")
            || matches!(field, "2a" | "2b" | "2y");
        if parameter {
            class.push('$');
            class.push_str(field);
        }
    }
    class
}
