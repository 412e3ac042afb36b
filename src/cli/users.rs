use std::process::ExitCode;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};

use crate::admin::{Actor, Origin};
use crate::config::Config;
use crate::entity::user;

/// The environment variable `createsuperuser --no-input` reads the password from (Django's
/// is `DJANGO_SUPERUSER_PASSWORD`).
pub const PASSWORD_ENV: &str = "ROSTER_SUPERUSER_PASSWORD";

/// `roster createsuperuser`: registers a user under the registration policy (the password is
/// judged as any other), then makes them staff and superuser and records it (the promotion
/// and its audit entry in one transaction, after the registration's own: should the
/// promotion fail, an ordinary user is left, which `roster users …` can deactivate). Exit 0;
/// 1 when the input is refused (every reason printed); 2 when the database or the hash
/// workers cannot be reached.
pub async fn create_superuser(
    config: &Config,
    username: &str,
    email: &str,
    no_input: bool,
) -> ExitCode {
    // As Django: the variable is read with --no-input only; otherwise the terminal asks.
    let password = if no_input {
        match std::env::var(PASSWORD_ENV) {
            Ok(p) if !p.is_empty() => zeroize::Zeroizing::new(p),
            _ => {
                eprintln!(
                    "createsuperuser: --no-input reads the password from {PASSWORD_ENV}, which is not set"
                );
                return ExitCode::from(1);
            }
        }
    } else {
        match prompt_password("createsuperuser", PASSWORD_ENV) {
            Some(p) => p,
            None => return ExitCode::from(1),
        }
    };
    let (db, service) = match crate::startup::account_service(config).await {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("createsuperuser: {e}");
            return ExitCode::from(2);
        }
    };
    let registration = crate::accounts::Registration {
        username: username.to_owned(),
        email: email.to_owned(),
        password: password.to_string(),
    };
    let created = service
        .register(registration, crate::ratelimit::Admission::new(None, None))
        .await;
    let created = match created {
        Ok(user) => user,
        Err(crate::error::AppError::InvalidInput(fields)) => {
            for f in fields {
                eprintln!("createsuperuser: {}: {} ({})", f.field, f.message, f.code);
            }
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("createsuperuser: {e}");
            return ExitCode::from(2);
        }
    };
    match promote(&db, created.id).await {
        Ok(()) => {
            println!("{}", created.id);
            eprintln!("createsuperuser: {} is a superuser", created.username);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("createsuperuser: {e}");
            ExitCode::from(2)
        }
    }
}

async fn promote(db: &DatabaseConnection, id: uuid::Uuid) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    let txn = db.begin().await?;
    user::Entity::update_many()
        .col_expr(user::Column::IsStaff, Expr::value(true))
        .col_expr(user::Column::IsSuperuser, Expr::value(true))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    crate::audit::record(
        &txn,
        &crate::audit::Who::system(),
        "user.created_superuser",
        Some(id),
        &Origin::default(),
        None,
    )
    .await?;
    txn.commit().await
}

/// `roster users deactivate|reactivate USERNAME`: the admin API's use case, run as the
/// system (the rules that protect the last superuser still hold). Exit 0; 1 when there is no
/// such user or a rule refuses; 2 when the database cannot be reached.
pub async fn set_active(config: &Config, username: &str, active: bool) -> ExitCode {
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("users: {e}");
            return ExitCode::from(2);
        }
    };
    let canonical = crate::accounts::canonical::canonical(username);
    let found = user::Entity::find()
        .filter(user::Column::UsernameCanonical.eq(canonical))
        .one(&db)
        .await;
    let target = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("users: no user is named {username:?}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("users: {e}");
            return ExitCode::from(2);
        }
    };
    match crate::admin::set_active::set_active(
        &db,
        &Actor::System,
        target.id,
        active,
        &Origin::default(),
    )
    .await
    {
        Ok(u) => {
            eprintln!(
                "users: {} is {}",
                u.username,
                if active {
                    "active"
                } else {
                    "deactivated (its sessions ended)"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e @ crate::error::AppError::Forbidden(_)) => {
            eprintln!("users: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("users: {e}");
            ExitCode::from(2)
        }
    }
}

/// The environment variable `changepassword --no-input` reads the new password from.
pub const NEW_PASSWORD_ENV: &str = "ROSTER_NEW_PASSWORD";

/// `roster changepassword USERNAME`: sets the password under the policy; the user's sessions
/// and reset links end, recorded in the audit log as done by the system. Exit 0; 1 when there
/// is no such user or the password is refused (every reason printed); 2 when the database or
/// the hash workers cannot be reached.
pub async fn change_password(config: &Config, username: &str, no_input: bool) -> ExitCode {
    let password = if no_input {
        match std::env::var(NEW_PASSWORD_ENV) {
            Ok(p) if !p.is_empty() => zeroize::Zeroizing::new(p),
            _ => {
                eprintln!(
                    "changepassword: --no-input reads the password from {NEW_PASSWORD_ENV}, which is not set"
                );
                return ExitCode::from(1);
            }
        }
    } else {
        match prompt_password("changepassword", NEW_PASSWORD_ENV) {
            Some(p) => p,
            None => return ExitCode::from(1),
        }
    };
    let (db, service) = match crate::startup::account_service(config).await {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("changepassword: {e}");
            return ExitCode::from(2);
        }
    };
    let canonical = crate::accounts::canonical::canonical(username);
    let found = user::Entity::find()
        .filter(user::Column::UsernameCanonical.eq(canonical))
        .one(&db)
        .await;
    let target = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("changepassword: no user is named {username:?}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("changepassword: {e}");
            return ExitCode::from(2);
        }
    };
    let plaintext = crate::password::Plaintext::new(password.to_string());
    match service
        .set_password(
            target.id,
            plaintext,
            &crate::audit::Who::system(),
            &Origin::default(),
        )
        .await
    {
        Ok(ended) => {
            eprintln!(
                "changepassword: the password of {} is changed; {ended} session(s) ended",
                target.username
            );
            ExitCode::SUCCESS
        }
        Err(crate::error::AppError::InvalidInput(fields)) => {
            for f in fields {
                eprintln!("changepassword: password: {} ({})", f.message, f.code);
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("changepassword: {e}");
            ExitCode::from(2)
        }
    }
}

/// `roster users reset-mfa USERNAME`: the admin API's `resetSecondFactor`, as the system.
/// Exit 0; 1 when there is no such user; 2 when the database cannot be reached.
pub async fn reset_mfa(config: &Config, username: &str) -> ExitCode {
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("users: {e}");
            return ExitCode::from(2);
        }
    };
    let canonical = crate::accounts::canonical::canonical(username);
    let found = user::Entity::find()
        .filter(user::Column::UsernameCanonical.eq(canonical))
        .one(&db)
        .await;
    let target = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("users: no user is named {username:?}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("users: {e}");
            return ExitCode::from(2);
        }
    };
    // The notice is sent by a running server's mail worker (it polls the outbox).
    let outbox = crate::outbox::Outbox::new();
    match crate::admin::reset_mfa::reset_mfa(
        &db,
        &outbox,
        &Actor::System,
        target.id,
        &Origin::default(),
    )
    .await
    {
        Ok(had) => {
            eprintln!(
                "users: {} {}",
                target.username,
                if had {
                    "has no second factor any more; their next login asks for the password only"
                } else {
                    "had no second factor"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("users: {e}");
            ExitCode::from(2)
        }
    }
}

/// Asks for the password twice on the terminal, without echo.
fn prompt_password(command: &str, env: &str) -> Option<zeroize::Zeroizing<String>> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        eprintln!("{command}: not a terminal; set {env} (with --no-input for scripts)");
        return None;
    }
    let read = |label: &str| -> Option<zeroize::Zeroizing<String>> {
        eprint!("{label}");
        let _ = std::io::stderr().flush();
        let _echo_off = EchoOff::new();
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).ok()?;
        eprintln!();
        let trimmed = line.trim_end_matches(['\n', '\r']).to_owned();
        Some(zeroize::Zeroizing::new(trimmed))
    };
    let first = read("Password: ")?;
    let again = read("Password (again): ")?;
    if *first != *again {
        eprintln!("{command}: the passwords differ");
        return None;
    }
    Some(first)
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: `termios` is plain data; tcgetattr fills it for fd 0 or fails, in which case
        // nothing is changed.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `new` on the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}
