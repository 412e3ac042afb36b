use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Set, SqlErr,
};
use uuid::Uuid;

use super::validation::FIELDS;
use super::{Email, Password, Registration, RegistrationPolicy, Username, codes};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::password::{HashError, Hasher};

/// A registered user, as the service returns it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub date_joined: DateTime<Utc>,
}

/// A registration that passed every rule, ready to store.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
}

/// Owns the registration rules: validation, uniqueness, hashing, insert.
#[derive(Clone)]
pub struct AccountService {
    db: DatabaseConnection,
    hasher: Hasher,
    policy: std::sync::Arc<RegistrationPolicy>,
}

impl AccountService {
    pub fn new(db: DatabaseConnection, hasher: Hasher, policy: RegistrationPolicy) -> Self {
        Self {
            db,
            hasher,
            policy: std::sync::Arc::new(policy),
        }
    }

    /// Whether a hash requested now would be refused: lets callers shed before doing work.
    pub fn is_saturated(&self) -> bool {
        self.hasher.is_saturated()
    }

    /// The policy in force.
    pub fn policy(&self) -> &RegistrationPolicy {
        &self.policy
    }

    /// Registers a user, or reports every violated rule of every field at once.
    ///
    /// Uniqueness is decided by the database's unique indexes: the pre-check only saves a
    /// hash (and lets `taken` be reported next to other errors); a concurrent registration
    /// that wins the race after it is still answered `taken`, never a 500.
    #[tracing::instrument(name = "register", skip_all, fields(username = %registration.username))]
    pub async fn register(&self, registration: Registration) -> Result<User, AppError> {
        // Under overload, shed before validation: zxcvbn and the uniqueness lookup cost far
        // more than answering SERVER_BUSY, and the client must retry anyway.
        if self.hasher.is_saturated() {
            return Err(AppError::ServerBusy);
        }
        let new_user = self.validate(registration).await?;
        let password_hash = self
            .hasher
            .hash(new_user.password)
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
            password_hash: Set(password_hash),
            // Both databases store microseconds; truncate so the answer equals the row.
            date_joined: Set(Utc::now().trunc_subsecs(6)),
        };
        match row.insert(&self.db).await {
            Ok(model) => {
                tracing::info!(user_id = %model.id, "user registered");
                Ok(User {
                    id: model.id,
                    username: model.username,
                    email: model.email,
                    date_joined: model.date_joined,
                })
            }
            Err(e) => match unique_violation_field(&e) {
                Some(field) => Err(AppError::InvalidInput(vec![taken(field)])),
                None => Err(e.into()),
            },
        }
    }

    /// Runs every rule in a fixed order and returns the parsed values or all violations.
    async fn validate(&self, registration: Registration) -> Result<NewUser, AppError> {
        let mut errors = registration.shape_errors();
        let failed = |field: &str, errors: &[FieldError]| errors.iter().any(|e| e.field == field);

        let username = if failed("username", &errors) {
            None
        } else {
            Some(Username::parse(&registration.username, &self.policy))
        };
        let email = if failed("email", &errors) {
            None
        } else {
            Some(Email::parse(&registration.email))
        };
        let password = if failed("password", &errors) {
            None
        } else {
            Some(Password::parse(
                registration.password,
                &self.policy.password,
                &registration.username,
                &registration.email,
            ))
        };

        let (username_taken, email_taken) = self
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
        if username_taken {
            errors.push(taken("username"));
        }
        if email_taken {
            errors.push(taken("email"));
        }
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

    /// One query answers both questions.
    async fn already_taken(
        &self,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<(bool, bool), AppError> {
        let mut condition = Condition::any();
        if let Some(u) = username {
            condition = condition.add(user::Column::UsernameCanonical.eq(u.canonical()));
        }
        if let Some(e) = email {
            condition = condition.add(user::Column::EmailCanonical.eq(e.canonical()));
        }
        if username.is_none() && email.is_none() {
            return Ok((false, false));
        }
        let rows: Vec<(String, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::UsernameCanonical)
            .column(user::Column::EmailCanonical)
            .filter(condition)
            .limit(2)
            .into_tuple()
            .all(&self.db)
            .await?;
        let username_taken = username.is_some_and(|u| rows.iter().any(|r| r.0 == u.canonical()));
        let email_taken = email.is_some_and(|e| rows.iter().any(|r| r.1 == e.canonical()));
        Ok((username_taken, email_taken))
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }
}

fn taken(field: &'static str) -> FieldError {
    let message = match field {
        "username" => "A user with that username already exists.",
        _ => "A user with that email address already exists.",
    };
    FieldError::new(field, codes::TAKEN, message)
}

/// Which field a unique-index violation is about. SQLite names the column
/// (`UNIQUE constraint failed: users.username_canonical`), Postgres the index
/// (`users_username_canonical_key`); both contain the column name.
fn unique_violation_field(e: &sea_orm::DbErr) -> Option<&'static str> {
    let Some(SqlErr::UniqueConstraintViolation(message)) = e.sql_err() else {
        return None;
    };
    if message.contains("username_canonical") {
        Some("username")
    } else if message.contains("email_canonical") {
        Some("email")
    } else {
        None
    }
}
