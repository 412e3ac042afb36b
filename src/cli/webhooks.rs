use std::process::ExitCode;

use crate::admin::{Actor, Origin, webhooks as admin};
use crate::config::Config;
use crate::error::AppError;
use crate::webhooks::endpoints;
use crate::webhooks::worker;

/// `roster webhooks add|list|remove|rotate-secret|deliveries|retry`: the admin use cases, run
/// as the system (recorded in the audit log). Exit 0; 1 when the endpoint or delivery named
/// does not exist or the input is refused; 2 when the database cannot be read or written, or
/// (add, rotate-secret) there is no server secret, or it does not open the endpoint's.
pub async fn run(config: &Config, command: &super::WebhooksCommand) -> ExitCode {
    use super::WebhooksCommand as C;
    let db = match crate::db::connect(config, Vec::new()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("webhooks: {e}");
            return ExitCode::from(2);
        }
    };
    let allow_private = config.webhooks.webhook_allow_private;
    let code = match command {
        C::Add { url, events } => match sealer(config) {
            Err(code) => code,
            Ok(sealer) => match admin::add(
                &db,
                &Actor::System,
                Some(&sealer),
                url,
                events,
                allow_private,
                &Origin::default(),
            )
            .await
            {
                Ok((endpoint, secret)) => {
                    if endpoint.url.starts_with("http://") {
                        eprintln!(
                            "webhooks: warning: plain http: events (addresses included) cross the network unencrypted"
                        );
                    }
                    println!("{}", endpoint.id);
                    println!("{}", secret.expose());
                    eprintln!(
                        "webhooks: endpoint {} added; its signing secret (above) is shown this once: \
                         give it to the receiver's Standard Webhooks library",
                        endpoint.id
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e),
            },
        },
        C::List => match admin::list(&db).await {
            Ok(rows) => {
                println!(
                    "{:<36}  {:<19}  {:<50}  events",
                    "id", "created (UTC)", "url"
                );
                for e in &rows {
                    println!(
                        "{:<36}  {:<19}  {:<50}  {}",
                        e.id,
                        e.created_at.format("%Y-%m-%d %H:%M:%S"),
                        printable(&endpoints::shown_url(&e.url)),
                        endpoints::event_names(&e.events).join(",")
                    );
                }
                eprintln!("webhooks: {} endpoint(s)", rows.len());
                ExitCode::SUCCESS
            }
            Err(e) => refused(e),
        },
        C::Remove { id } => match admin::remove(&db, &Actor::System, *id, &Origin::default()).await
        {
            Ok(()) => {
                eprintln!("webhooks: endpoint {id} removed, with its deliveries");
                ExitCode::SUCCESS
            }
            Err(e) => refused(e),
        },
        C::RotateSecret { id } => match sealer(config) {
            Err(code) => code,
            Ok(sealer) => match admin::rotate_secret(
                &db,
                &Actor::System,
                Some(&sealer),
                *id,
                &Origin::default(),
            )
            .await
            {
                Ok(secret) => {
                    println!("{}", secret.expose());
                    eprintln!(
                        "webhooks: new secret (above, shown this once); deliveries carry both \
                         signatures for {} hours, then only the new one",
                        endpoints::ROTATION_GRACE.as_secs() / 3600
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e),
            },
        },
        C::Deliveries {
            status,
            endpoint,
            limit,
        } => match admin::deliveries(&db, status.as_deref(), *endpoint, *limit).await {
            Ok(rows) => {
                println!(
                    "{:>8}  {:<36}  {:<22}  {:<10}  {:>8}  {:<19}  {:>6}  last error",
                    "seq", "event id", "event", "status", "attempts", "next attempt (UTC)", "http"
                );
                for r in &rows {
                    println!(
                        "{:>8}  {:<36}  {:<22}  {:<10}  {:>8}  {:<19}  {:>6}  {}",
                        r.seq,
                        r.event_id,
                        r.event_type,
                        r.status,
                        r.attempts,
                        if r.status == worker::status::PENDING {
                            r.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string()
                        } else {
                            "-".to_owned()
                        },
                        r.last_status.map_or("-".to_owned(), |s| s.to_string()),
                        printable(r.last_error.as_deref().unwrap_or("-")),
                    );
                }
                eprintln!("webhooks: {} deliveries", rows.len());
                ExitCode::SUCCESS
            }
            Err(e) => refused(e),
        },
        C::Retry { seq, all_failed } => {
            let target = if *all_failed { None } else { *seq };
            match admin::retry(&db, &Actor::System, target, &Origin::default()).await {
                Err(AppError::NotFound) => {
                    eprintln!("webhooks: no failed delivery has that number");
                    ExitCode::from(1)
                }
                Ok(n) => {
                    eprintln!("webhooks: {n} failed deliveries due again now");
                    if n == 0 && target.is_some() {
                        eprintln!("webhooks: no failed delivery has that number");
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => refused(e),
            }
        }
    };
    let _ = db.close().await;
    code
}

fn refused(e: AppError) -> ExitCode {
    let (said, code) = match &e {
        AppError::InvalidInput(fields) => (
            fields
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
            1,
        ),
        AppError::NotFound => ("no endpoint has that id".to_owned(), 1),
        // The command resolved a secret: it is the wrong one for this endpoint.
        AppError::WebhooksUnavailable => (
            "the endpoint's secret does not open with this server secret".to_owned(),
            2,
        ),
        AppError::Internal(cause) => (format!("internal error: {cause}"), 2),
        other => (other.to_string(), 2),
    };
    eprintln!("webhooks: {said}");
    ExitCode::from(code)
}

/// The sealing key of endpoint secrets, as the server resolves the secret.
fn sealer(config: &Config) -> Result<crate::secret::Sealer, ExitCode> {
    match config.tokens.server_secret(&config.database_url) {
        Ok(Some((secret, _))) => Ok(endpoints::sealer(&secret)),
        Ok(None) => {
            eprintln!(
                "webhooks: this needs the server secret (it seals endpoint secrets): set \
                 --secret-key-file or ROSTER_SECRET_KEY"
            );
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("webhooks: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// A stored value fit for a terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
