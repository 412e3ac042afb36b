use std::process::ExitCode;

use crate::admin::{Origin, api_keys};
use crate::config::Config;
use crate::error::AppError;

/// `roster apikey create|list|revoke`: exit 0; 1 when the input is refused or there is no such
/// key; 2 when the database cannot be read or written. The key is printed once, on stdout
/// alone (so `KEY=$(roster apikey create …)` captures it); everything else goes to stderr.
pub async fn run(config: &Config, command: &super::ApiKeyCommand) -> ExitCode {
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("apikey: {e}");
            return ExitCode::from(2);
        }
    };
    let refused = |e: AppError| match e {
        AppError::InvalidInput(fields) => {
            for f in fields {
                eprintln!("apikey: {}: {} ({})", f.field, f.message, f.code);
            }
            ExitCode::from(1)
        }
        AppError::NotFound => {
            eprintln!("apikey: no key has that id or name");
            ExitCode::from(1)
        }
        e => {
            eprintln!("apikey: {e}");
            ExitCode::from(2)
        }
    };
    match command {
        super::ApiKeyCommand::Create { name, permission } => {
            match api_keys::create(&db, name, permission, &Origin::default()).await {
                Ok(created) => {
                    println!("{}", created.secret.as_str());
                    eprintln!(
                        "apikey: {} ({}) holds {}; the key above is shown once — store it now \
                         (send it as `Authorization: Bearer rsk_…`)",
                        created.key.name,
                        created.key.id,
                        created.permissions.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e),
            }
        }
        super::ApiKeyCommand::List => match api_keys::list(&db).await {
            Ok(keys) => {
                let time =
                    |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
                println!(
                    "{:<36}  {:<24}  {:<19}  {:<19}  {:<19}  permissions",
                    "id", "name", "created (UTC)", "last used", "revoked"
                );
                for (key, permissions) in &keys {
                    println!(
                        "{:<36}  {:<24}  {:<19}  {:<19}  {:<19}  {}",
                        key.id,
                        key.name,
                        time(key.created_at),
                        key.last_used_at.map_or("-".to_owned(), time),
                        key.revoked_at.map_or("-".to_owned(), time),
                        permissions.join(",")
                    );
                }
                eprintln!("apikey: {} key(s)", keys.len());
                ExitCode::SUCCESS
            }
            Err(e) => refused(e),
        },
        super::ApiKeyCommand::Revoke { key } => {
            match api_keys::revoke(&db, key, &Origin::default()).await {
                Ok(key) => {
                    eprintln!(
                        "apikey: {} ({}) is revoked: it authenticates nothing from now on",
                        key.name, key.id
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e),
            }
        }
    }
}
