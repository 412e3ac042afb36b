use std::process::ExitCode;

use crate::config::Config;
use crate::tokens::keys::{self, KeyState};
use crate::tokens::{KeyStore, ServerSecret};

/// `roster keys list|rotate|revoke`: exit 0; 1 when `revoke` found no such key; 2 when the
/// database cannot be read or written, or (rotate, revoke) there is no secret.
pub async fn run(config: &Config, command: &super::KeysCommand) -> ExitCode {
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("keys: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        super::KeysCommand::List => match keys::list(&db).await {
            Ok(rows) => {
                println!(
                    "{:<43}  {:<8}  {:<19}  {:<19}  {:<19}  published until",
                    "kid", "state", "created (UTC)", "signs from", "retired"
                );
                let time =
                    |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
                for key in &rows {
                    let until = match key.state {
                        KeyState::Active | KeyState::Next | KeyState::Standby => {
                            "while live".to_owned()
                        }
                        KeyState::Retiring { published_until } => time(published_until),
                        KeyState::Retired => "-".to_owned(),
                    };
                    println!(
                        "{:<43}  {:<8}  {:<19}  {:<19}  {:<19}  {until}",
                        key.kid,
                        key.state.name(),
                        time(key.created_at),
                        time(key.active_from),
                        key.retired_at.map_or("-".to_owned(), time),
                    );
                }
                eprintln!("keys: {} key(s)", rows.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keys: {e}");
                ExitCode::from(2)
            }
        },
        super::KeysCommand::Revoke { kid } => {
            let secret = match secret_for(config) {
                Ok(secret) => secret,
                Err(code) => return code,
            };
            match KeyStore::new(db, &secret).revoke(kid).await {
                Ok(true) => {
                    eprintln!(
                        "keys: {kid} is out of the JWKS (verifiers refetching it drop it within \
                         a minute) and its private half is wiped"
                    );
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!("keys: no key has that id");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("keys: {e}");
                    ExitCode::from(2)
                }
            }
        }
        super::KeysCommand::Rotate {
            replace_secret,
            now,
        } => {
            let secret = match secret_for(config) {
                Ok(secret) => secret,
                Err(code) => return code,
            };
            match KeyStore::new(db, &secret)
                .rotate(*replace_secret, *now)
                .await
            {
                Ok(key) => {
                    println!("{}", key.kid);
                    eprintln!(
                        "keys: {} is published now and signs every new token from {} UTC, on \
                         every process; the keys it replaces stay published {} minutes after that",
                        key.kid,
                        key.active_from.format("%Y-%m-%d %H:%M:%S"),
                        keys::PUBLISHED_AFTER_RETIREMENT.as_secs() / 60
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("keys: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The server secret, as the server would resolve it; the exit code to end with otherwise.
fn secret_for(config: &Config) -> Result<ServerSecret, ExitCode> {
    match config.tokens.server_secret(&config.database_url) {
        Ok(Some((secret, _))) => Ok(secret),
        Ok(None) => {
            eprintln!(
                "keys: this needs the server secret: set --secret-key-file or ROSTER_SECRET_KEY"
            );
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("keys: {e}");
            Err(ExitCode::from(2))
        }
    }
}
