use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::validation::FIELDS;
use super::{Email, Password, Registration, RegistrationPolicy, Username, codes};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::outbox::{Kind, Outbox};
use crate::password::{HashError, Hasher, Plaintext};
use crate::ratelimit::{Admission, FailureThrottle, KeyLimiter};
use crate::sessions::Sessions;

/// Email requests (`resendVerificationEmail`, `requestPasswordReset`) that may be pending
/// in the background at once.
pub(super) const BACKGROUND_SLOTS: usize = 1024;

/// A registered user, as the service returns it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub date_joined: DateTime<Utc>,
    pub email_verified: bool,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            username: m.username,
            email: m.email,
            date_joined: m.date_joined,
            email_verified: m.email_verified,
        }
    }
}

/// The email rules: whether `login` needs a verified address, and the per-address limit on
/// the mutations that send email on request.
#[derive(Clone)]
pub struct EmailPolicy {
    /// `--require-verified-email`.
    pub require_verified: bool,
    /// `--mail-address-limit`.
    pub address_limiter: KeyLimiter,
}

/// A registration that passed every rule, ready to store.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
}

/// The account use cases (`register` here; `login` and `change_password` in their own
/// files): each validates, hashes on the pool, and owns its database work.
#[derive(Clone)]
pub struct AccountService {
    pub(super) db: DatabaseConnection,
    pub(super) hasher: Hasher,
    pub(super) policy: std::sync::Arc<RegistrationPolicy>,
    pub(super) sessions: Sessions,
    /// Failed password checks per account (`--login-failure-limit`).
    pub(super) failures: FailureThrottle,
    /// Emails to send, queued in the transaction that needs them.
    pub(super) outbox: Outbox,
    pub(super) email: EmailPolicy,
    pub(super) second_factor: super::SecondFactorPolicy,
    pub(super) metrics: crate::metrics::Metrics,
    /// `--deletion-grace`: zero deletes at once.
    pub(super) deletion_grace: std::time::Duration,
    /// Bounds the email requests being looked up in the background.
    pub(super) background: std::sync::Arc<tokio::sync::Semaphore>,
}

/// What the account use cases are built from (start-up wires them).
pub struct Parts {
    pub db: DatabaseConnection,
    pub hasher: Hasher,
    pub policy: RegistrationPolicy,
    pub sessions: Sessions,
    pub failures: FailureThrottle,
    pub outbox: Outbox,
    pub email: EmailPolicy,
    pub second_factor: super::SecondFactorPolicy,
    pub metrics: crate::metrics::Metrics,
    /// `--deletion-grace`: zero deletes at once.
    pub deletion_grace: std::time::Duration,
}

impl AccountService {
    pub fn new(parts: Parts) -> Self {
        Self {
            metrics: parts.metrics,
            db: parts.db,
            hasher: parts.hasher,
            policy: std::sync::Arc::new(parts.policy),
            sessions: parts.sessions,
            failures: parts.failures,
            outbox: parts.outbox,
            email: parts.email,
            second_factor: parts.second_factor,
            deletion_grace: parts.deletion_grace,
            background: std::sync::Arc::new(tokio::sync::Semaphore::new(BACKGROUND_SLOTS)),
        }
    }

    /// The session store.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The email outbox (admin use cases queue their emails in their own transactions).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The policy in force.
    pub fn policy(&self) -> &RegistrationPolicy {
        &self.policy
    }

    /// Registers a user, or reports every violated rule of every field at once. The
    /// verification email is queued in the same transaction as the user: both exist, or
    /// neither.
    ///
    /// Uniqueness is decided by the database's unique indexes: the pre-check only saves a
    /// hash (and lets `taken` be reported next to other errors); a concurrent registration
    /// that wins the race after it is still answered `taken`, never a 500.
    ///
    /// Nothing the client sent is logged: the span carries no field, and the one log line
    /// on success names the new user's id.
    ///
    /// `admit` is the caller's admission check (the per-client rate limit). It runs only
    /// after a hash-queue slot is reserved: a registration answered `SERVER_BUSY` spends no
    /// token, so a client that retries as told is not locked out by its own retries.
    #[tracing::instrument(name = "register", skip_all)]
    pub async fn register(
        &self,
        registration: Registration,
        admit: Admission,
    ) -> Result<User, AppError> {
        // Under overload, shed before validation: zxcvbn and the uniqueness lookup cost far
        // more than answering SERVER_BUSY, and the client must retry anyway.
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        admit.check().await?;
        let new_user = self.validate(registration).await?;
        let password_hash = self
            .hasher
            .hash_reserved(slot, new_user.password.into_plaintext())
            .await
            .map_err(|e| match e {
                HashError::Busy => AppError::ServerBusy,
                other => AppError::internal(other),
            })?;
        let row = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            username: Set(new_user.username.as_str().to_owned()),
            username_canonical: Set(new_user.username.canonical().to_owned()),
            email: Set(new_user.email.as_str().to_owned()),
            email_canonical: Set(new_user.email.canonical().to_owned()),
            username_skeleton: Set(Some(new_user.username.keys().written.clone())),
            username_skeleton_lower: Set(Some(new_user.username.keys().lower.clone())),
            username_skeleton_upper: Set(Some(new_user.username.keys().upper.clone())),
            password_hash: Set(password_hash),
            // Both databases store microseconds; truncate so the answer equals the row.
            date_joined: Set(Utc::now().trunc_subsecs(6)),
            is_active: Set(true),
            last_login: Set(None),
            legacy_id: Set(None),
            is_staff: Set(false),
            is_superuser: Set(false),
            email_verified: Set(false),
        };
        // From here the request deadline lets the insert finish and be answered: a client
        // must never be told "timed out" about a row that exists.
        crate::deadline::commit_started();
        let inserted = async {
            let txn = self.db.begin().await?;
            let model = row.insert(&txn).await?;
            self.outbox
                .enqueue(&txn, Kind::VerifyEmail, model.id, &model.email)
                .await?;
            crate::webhooks::emit(
                &txn,
                crate::webhooks::EventType::UserRegistered,
                model.id,
                serde_json::json!({}),
            )
            .await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(model)
        }
        .await;
        match inserted {
            Ok(model) => {
                self.outbox.wake();
                tracing::info!(user_id = %model.id, "user registered");
                Ok(model.into())
            }
            Err(e) => match unique_violation(&e) {
                // The row that won the race is committed now: ask again, so a duplicate of
                // the same name is `taken` even when the database happened to report the
                // look-alike index (which any same-spelled name also violates).
                Some(first) => {
                    let found = self
                        .already_taken(Some(&new_user.username), Some(&new_user.email))
                        .await?;
                    let mut errors = found.errors();
                    if errors.is_empty() {
                        errors.push(first);
                    }
                    Err(AppError::InvalidInput(errors))
                }
                None => Err(e.into()),
            },
        }
    }

    /// Runs every rule in a fixed order and returns the parsed values or all violations.
    ///
    /// The rules are pure CPU (normalization, confusables, zxcvbn): they run on the blocking
    /// pool so a request thread never stalls on them, and their cost is bounded because every
    /// length is checked before anything else is computed.
    async fn validate(&self, registration: Registration) -> Result<NewUser, AppError> {
        let policy = self.policy.clone();
        let span = tracing::Span::current();
        let checked = tokio::task::spawn_blocking(move || {
            span.in_scope(|| Checked::run(registration, &policy))
        })
        .await
        .map_err(AppError::internal)?;
        let Checked {
            mut errors,
            username,
            email,
            password,
        } = checked;

        let found = self
            .already_taken(
                username.as_ref().and_then(|r| r.as_ref().ok()),
                email.as_ref().and_then(|r| r.as_ref().ok()),
            )
            .await?;
        for result_errors in [
            username.as_ref().and_then(|r| r.as_ref().err()),
            email.as_ref().and_then(|r| r.as_ref().err()),
            password.as_ref().and_then(|r| r.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        {
            errors.extend(result_errors.iter().cloned());
        }
        errors.extend(found.errors());
        // Stable order: by field (username, email, password), then rule order within it.
        errors.sort_by_key(|e| FIELDS.iter().position(|f| *f == e.field));

        match (username, email, password) {
            (Some(Ok(username)), Some(Ok(email)), Some(Ok(password))) if errors.is_empty() => {
                Ok(NewUser {
                    username,
                    email,
                    password,
                })
            }
            _ => Err(AppError::InvalidInput(errors)),
        }
    }

    /// One query answers all three questions.
    async fn already_taken(
        &self,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<Found, AppError> {
        let mut condition = Condition::any();
        // Usernames and emails are one namespace of login identifiers (the `login_names`
        // index): a username is taken by another's email too, and an email by a username.
        if let Some(u) = username {
            condition = condition
                .add(user::Column::UsernameCanonical.eq(u.canonical()))
                .add(user::Column::EmailCanonical.eq(u.canonical()))
                .add(user::Column::UsernameSkeleton.eq(&u.keys().written))
                .add(user::Column::UsernameSkeletonLower.eq(&u.keys().lower))
                .add(user::Column::UsernameSkeletonUpper.eq(&u.keys().upper));
        }
        if let Some(e) = email {
            condition = condition
                .add(user::Column::EmailCanonical.eq(e.canonical()))
                .add(user::Column::UsernameCanonical.eq(e.canonical()));
        }
        if username.is_none() && email.is_none() {
            return Ok(Found::default());
        }
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = user::Entity::find()
            .select_only()
            .column(user::Column::UsernameCanonical)
            .column(user::Column::EmailCanonical)
            .column(user::Column::UsernameSkeleton)
            .column(user::Column::UsernameSkeletonLower)
            .column(user::Column::UsernameSkeletonUpper)
            .filter(condition)
            // Up to seven rows can match (one per column looked at): read them all.
            .limit(8)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(Found {
            username_taken: username.is_some_and(|u| {
                rows.iter()
                    .any(|r| r.0 == u.canonical() || r.1 == u.canonical())
            }),
            username_lookalike: username.is_some_and(|u| {
                let k = u.keys();
                rows.iter().any(|r| {
                    r.2.as_ref() == Some(&k.written)
                        || r.3.as_ref() == Some(&k.lower)
                        || r.4.as_ref() == Some(&k.upper)
                })
            }),
            email_taken: email.is_some_and(|e| {
                rows.iter()
                    .any(|r| r.1 == e.canonical() || r.0 == e.canonical())
            }),
        })
    }

    /// Ends every session of a user (`logoutEverywhere`), recorded in the audit log in the
    /// same transaction; answers how many were live.
    pub async fn revoke_all_sessions(
        &self,
        user_id: Uuid,
        origin: &crate::audit::Origin,
    ) -> Result<u64, AppError> {
        crate::deadline::commit_started();
        let txn = self.db.begin().await?;
        let ended = self.sessions.revoke_all(&txn, user_id, None).await?;
        crate::audit::record(
            &txn,
            &crate::audit::Who::user(user_id),
            "user.sessions_ended",
            Some(user_id),
            origin,
            Some(serde_json::json!({ "ended": ended })),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            user_id,
            crate::webhooks::events::Ended::All,
            ended,
            "logout_everywhere",
        )
        .await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// The serving pool (for the metrics' pool gauges and outbox counts).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }
}

/// What the uniqueness pre-check found.
#[derive(Default)]
struct Found {
    username_taken: bool,
    username_lookalike: bool,
    email_taken: bool,
}

impl Found {
    /// The field errors for what was found: `taken` wins over `username_lookalike`.
    fn errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.username_taken {
            errors.push(taken("username"));
        } else if self.username_lookalike {
            errors.push(lookalike());
        }
        if self.email_taken {
            errors.push(taken("email"));
        }
        errors
    }
}

/// The CPU-only part of validation, run off the request threads.
struct Checked {
    errors: Vec<FieldError>,
    username: Option<Result<Username, Vec<FieldError>>>,
    email: Option<Result<Email, Vec<FieldError>>>,
    password: Option<Result<Password, Vec<FieldError>>>,
}

impl Checked {
    fn run(registration: Registration, policy: &RegistrationPolicy) -> Self {
        let errors = registration.shape_errors();
        let failed = |field: &str| errors.iter().any(|e| e.field == field);
        let username =
            (!failed("username")).then(|| Username::parse(&registration.username, policy));
        let email = (!failed("email")).then(|| Email::parse(&registration.email));
        // The password is compared only with attributes that passed their own rules.
        let password = (!failed("password")).then(|| {
            Password::parse(
                Plaintext::new(registration.password),
                &policy.password,
                username
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(Username::as_str),
                email
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(Email::as_str),
            )
        });
        let mut errors = errors;
        // A username with an `@` in its canonical form must be the account's own address:
        // otherwise a stranger could hold `victim@corp.example` as a username, pre-empting
        // (or, before the login-name index, capturing) the owner's login by email. Judged on
        // the canonical form, not on whether the username parses as an address: `gloß@…`
        // is no valid address, but folds to `gloss@…`, which is.
        if let (Some(Ok(u)), Some(Ok(e))) = (&username, &email)
            && u.canonical().contains('@')
            && super::canonical::email_canonical(u.canonical()) != e.canonical()
        {
            errors.push(FieldError::new(
                "username",
                codes::USERNAME_NOT_OWN_EMAIL,
                "A username that is an email address must be your own email address.",
            ));
        }
        Self {
            errors,
            username,
            email,
            password,
        }
    }
}

fn taken(field: &'static str) -> FieldError {
    let message = match field {
        "username" => "A user with that username already exists.",
        _ => "A user with that email address already exists.",
    };
    FieldError::new(field, codes::TAKEN, message)
}

fn lookalike() -> FieldError {
    FieldError::new(
        "username",
        codes::USERNAME_LOOKALIKE,
        "This username looks like an existing user's username (Unicode TR39 confusables).",
    )
}

/// The field error for a unique-index violation, recognised by the indexes the migrations
/// export ([`migration::unique`]). A violation of the login-identifier namespace says only
/// that a name is held by another account's username or email: which field is decided by
/// asking again, as for any violation (see [`AccountService::register`]).
fn unique_violation(e: &sea_orm::DbErr) -> Option<FieldError> {
    use migration::unique;
    let Some(SqlErr::UniqueConstraintViolation(message)) = e.sql_err() else {
        return None;
    };
    if unique::LOOKALIKE.iter().any(|i| i.violated_by(&message)) {
        Some(lookalike())
    } else if unique::USERNAME.violated_by(&message) || unique::LOGIN_NAME.violated_by(&message) {
        Some(taken("username"))
    } else if unique::EMAIL.violated_by(&message) {
        Some(taken("email"))
    } else {
        None
    }
}

/// Fills `username_skeleton` on rows created before the look-alike key existed. A row whose
/// key collides with another's is left without one (and logged by id): both accounts predate
/// the rule and keep working.
pub async fn backfill_skeletons(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    let mut filled = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Username)
            .filter(user::Column::UsernameSkeleton.is_null());
        if let Some(after) = after {
            query = query.filter(user::Column::Id.gt(after));
        }
        let rows: Vec<(Uuid, String)> = query
            .order_by_asc(user::Column::Id)
            .limit(500)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(filled);
        };
        after = Some(last.0);
        for (id, username) in rows {
            let keys = super::skeleton::Keys::of(&username);
            let update = user::Entity::update_many()
                .col_expr(
                    user::Column::UsernameSkeleton,
                    sea_orm::sea_query::Expr::value(keys.written),
                )
                .col_expr(
                    user::Column::UsernameSkeletonLower,
                    sea_orm::sea_query::Expr::value(keys.lower),
                )
                .col_expr(
                    user::Column::UsernameSkeletonUpper,
                    sea_orm::sea_query::Expr::value(keys.upper),
                )
                .filter(user::Column::Id.eq(id))
                .exec(db)
                .await;
            match update {
                Ok(_) => filled += 1,
                Err(e) if unique_violation(&e).is_some() => {
                    tracing::warn!(user_id = %id, "username looks like another user's; left without a look-alike key");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
