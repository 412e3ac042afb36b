use crate::config::Config;

/// `roster outbox list|retry`: prints to stdout; exit 0, 1 when `retry ID` found no failed
/// email with that id, 2 when the database could not be read.
pub async fn run(config: &Config, command: &super::OutboxCommand) -> std::process::ExitCode {
    use super::OutboxCommand;
    use std::process::ExitCode;
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("outbox: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        OutboxCommand::List { limit } => crate::outbox::unfinished(&db, *limit).await.map(|rows| {
            println!(
                "{:<36}  {:<14}  {:<9}  {:>8}  {:<25}  {:<30}  last error",
                "id", "kind", "status", "attempts", "next attempt (UTC)", "recipient"
            );
            for r in &rows {
                println!(
                    "{:<36}  {:<14}  {:<9}  {:>8}  {:<25}  {:<30}  {}",
                    r.id,
                    r.kind,
                    r.status,
                    r.attempts,
                    if r.status == crate::outbox::status::FAILED {
                        "-".to_owned()
                    } else {
                        r.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string()
                    },
                    printable(&r.recipient),
                    printable(r.last_error.as_deref().unwrap_or("-"))
                );
            }
            eprintln!("outbox: {} not delivered", rows.len());
            ExitCode::SUCCESS
        }),
        OutboxCommand::Retry { id, all_failed } => {
            let target = if *all_failed { None } else { *id };
            crate::outbox::retry_failed(&db, target).await.map(|n| {
                eprintln!("outbox: {n} failed email(s) due again now");
                if n == 0 && target.is_some() {
                    eprintln!("outbox: no failed email has that id");
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            })
        }
    };
    let _ = db.close().await;
    result.unwrap_or_else(|e| {
        eprintln!("outbox: cannot read the outbox: {e}");
        ExitCode::from(2)
    })
}

/// A stored value fit for a terminal: control characters (escapes, line breaks) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
