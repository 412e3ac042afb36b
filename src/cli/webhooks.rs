use std::process::ExitCode;

use crate::config::Config;
use crate::webhooks::endpoints::{self, EndpointError};
use crate::webhooks::worker;

/// `roster webhooks add|list|remove|rotate-secret|deliveries|retry`: exit 0; 1 when the
/// endpoint or delivery named does not exist or the input is refused; 2 when the database
/// cannot be read or written, or (add, rotate-secret) there is no server secret.
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
            Ok(sealer) => match endpoints::add(&db, &sealer, url, events, allow_private).await {
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
        C::List => match endpoints::list(&db).await {
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
                        printable(&without_query(&e.url)),
                        endpoints::event_names(&e.events).join(",")
                    );
                }
                eprintln!("webhooks: {} endpoint(s)", rows.len());
                ExitCode::SUCCESS
            }
            Err(e) => refused(e.into()),
        },
        C::Remove { id } => match endpoints::remove(&db, *id).await {
            Ok(()) => {
                eprintln!("webhooks: endpoint {id} removed, with its deliveries");
                ExitCode::SUCCESS
            }
            Err(e) => refused(e),
        },
        C::RotateSecret { id } => match sealer(config) {
            Err(code) => code,
            Ok(sealer) => match endpoints::rotate_secret(&db, &sealer, *id).await {
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
        } => match worker::deliveries(&db, status.as_deref(), *endpoint, *limit).await {
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
            Err(e) => refused(e.into()),
        },
        C::Retry { seq, all_failed } => {
            let target = if *all_failed { None } else { *seq };
            match worker::retry_failed(&db, target).await {
                Ok(n) => {
                    eprintln!("webhooks: {n} failed deliveries due again now");
                    if n == 0 && target.is_some() {
                        eprintln!("webhooks: no failed delivery has that number");
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => refused(e.into()),
            }
        }
    };
    let _ = db.close().await;
    code
}

fn refused(e: EndpointError) -> ExitCode {
    eprintln!("webhooks: {e}");
    match e {
        EndpointError::Db(_) | EndpointError::Crypto(_) | EndpointError::Sealed => {
            ExitCode::from(2)
        }
        _ => ExitCode::from(1),
    }
}

/// The sealing key of endpoint secrets, as the server resolves the secret.
fn sealer(config: &Config) -> Result<crate::tokens::Sealer, ExitCode> {
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

/// The URL without its query, which may carry the receiver's own token: `?…` shows there
/// is one.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// A stored value fit for a terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
