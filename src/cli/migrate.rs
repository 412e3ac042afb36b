use crate::config::Config;

/// `roster migrate`: exit 0 once the schema is current, 1 when it cannot be (a newer schema,
/// a failed migration), 2 when the database cannot be reached.
pub async fn run(config: &Config) -> std::process::ExitCode {
    use std::process::ExitCode;
    let admin = match crate::db::connect_with(config, Vec::new(), 1).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("migrate: {e}");
            return ExitCode::from(2);
        }
    };
    let result = crate::db::migrate(&admin, config).await;
    let _ = admin.close().await;
    match result {
        Ok(0) => {
            eprintln!("migrate: the schema is up to date");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            eprintln!("migrate: {n} migration(s) applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::from(1)
        }
    }
}
