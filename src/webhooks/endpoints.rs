use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use uuid::Uuid;

use super::EventType;
use super::signing::Secret;
use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::secret::{Sealer, ServerSecret};

/// Longest endpoint URL accepted.
pub const MAX_URL_BYTES: usize = 2000;
/// Most endpoints: each event is written once per subscribed endpoint, in the transaction
/// of the change, so their number bounds what a login or a registration writes.
pub const MAX_ENDPOINTS: u64 = 20;
/// How long the secret before `rotate-secret` keeps signing beside the new one.
pub const ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What `roster webhooks` can refuse.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "the URL must be http:// or https:// with a host, no user or password, no fragment, at most {MAX_URL_BYTES} bytes"
    )]
    BadUrl,
    /// The name is not quoted back: it is whatever was sent, of any length.
    #[error("unknown event type (see `roster webhooks add --help` for the list)")]
    UnknownEvent,
    #[error("name at least one event type (or `all`)")]
    NoEvents,
    #[error("{}", super::guard::REFUSED)]
    Private,
    #[error("at most {MAX_ENDPOINTS} endpoints; remove one first")]
    TooMany,
    #[error("no endpoint has that id")]
    NotFound,
    #[error(
        "the previous secret still signs (24 hours after a rotation): rotate again after that, or remove and add the endpoint"
    )]
    Rotating,
    #[error("the endpoint's secret does not open with this server secret")]
    Sealed,
    #[error("{0}")]
    Crypto(&'static str),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The sealing key of endpoint secrets, from the server secret.
pub fn sealer(secret: &ServerSecret) -> Sealer {
    secret.sealer("roster webhook endpoint secret v1")
}

/// The URL as stored, checked: http(s), a host, no credentials (they would sit in clear in
/// the database and in `list`), no fragment.
pub fn parse_url(text: &str, allow_private: bool) -> Result<url::Url, EndpointError> {
    let text = text.trim();
    if text.len() > MAX_URL_BYTES {
        return Err(EndpointError::BadUrl);
    }
    let url = url::Url::parse(text).map_err(|_| EndpointError::BadUrl)?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(EndpointError::BadUrl);
    }
    super::guard::check_literal(&url, allow_private).map_err(|_| EndpointError::Private)?;
    Ok(url)
}

/// `user.registered,session.created` (or `all`) as the stored, comma-wrapped list.
pub fn parse_events(list: &[String]) -> Result<String, EndpointError> {
    let mut chosen = Vec::new();
    for name in list.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        if name == "all" {
            chosen.extend(EventType::ALL);
            continue;
        }
        chosen.push(EventType::parse(name).ok_or(EndpointError::UnknownEvent)?);
    }
    if chosen.is_empty() {
        return Err(EndpointError::NoEvents);
    }
    let names: Vec<&str> = EventType::ALL
        .into_iter()
        .filter(|e| chosen.contains(e))
        .map(EventType::as_str)
        .collect();
    Ok(format!(",{},", names.join(",")))
}

/// The URL as shown to operators: scheme, host and port, and `/…` for any path or query —
/// either may carry the receiver's own token (`/services/T0/B0/<secret>`, `?token=`).
pub fn shown_url(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "(unreadable)".to_owned();
    };
    let mut shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
    if let Some(port) = parsed.port() {
        shown.push_str(&format!(":{port}"));
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        shown.push_str("/…");
    }
    shown
}

/// The stored list as names.
pub fn event_names(stored: &str) -> Vec<&str> {
    stored.split(',').filter(|s| !s.is_empty()).collect()
}

/// Registers an endpoint inside the caller's transaction (on SQLite, one that took the write
/// lock first: it counts, then inserts); its secret is returned to be shown once.
pub async fn add(
    conn: &impl ConnectionTrait,
    sealer: &Sealer,
    url: &str,
    events: &[String],
    allow_private: bool,
) -> Result<(webhook_endpoint::Model, Secret), EndpointError> {
    use sea_orm::PaginatorTrait;
    let url = parse_url(url, allow_private)?;
    let events = parse_events(events)?;
    let id = Uuid::now_v7();
    let secret = Secret::generate().map_err(EndpointError::Crypto)?;
    let sealed = sealer
        .seal(secret.expose().as_bytes(), id.as_bytes())
        .map_err(EndpointError::Crypto)?;
    if webhook_endpoint::Entity::find().count(conn).await? >= MAX_ENDPOINTS {
        return Err(EndpointError::TooMany);
    }
    let model = webhook_endpoint::ActiveModel {
        id: Set(id),
        url: Set(url.to_string()),
        events: Set(events),
        secret: Set(sealed),
        previous_secret: Set(None),
        previous_until: Set(None),
        created_at: Set(crate::outbox::now()),
    }
    .insert(conn)
    .await?;
    Ok((model, secret))
}

/// Every endpoint, oldest first.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .all(conn)
        .await
}

/// Removes an endpoint and every delivery to it not made yet (and its history), inside the
/// caller's transaction.
pub async fn remove(conn: &impl ConnectionTrait, id: Uuid) -> Result<(), EndpointError> {
    let done = webhook_endpoint::Entity::delete_by_id(id)
        .exec(conn)
        .await?;
    if done.rows_affected == 0 {
        return Err(EndpointError::NotFound);
    }
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A new secret for an endpoint (inside the caller's transaction), shown once; the old one keeps signing beside it for
/// [`ROTATION_GRACE`] (deliveries carry both signatures), so a receiver can switch without
/// refusing a delivery.
pub async fn rotate_secret(
    conn: &impl ConnectionTrait,
    sealer: &Sealer,
    id: Uuid,
) -> Result<Secret, EndpointError> {
    let found = webhook_endpoint::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(EndpointError::NotFound)?;
    // The current secret must open: sealing a new one beside a secret sealed with another
    // server secret would leave the grace period signing with nothing.
    if sealer.open(&found.secret, id.as_bytes()).is_none() {
        return Err(EndpointError::Sealed);
    }
    // A second rotation inside the grace period would drop the secret receivers may still
    // hold before they had the promised day to switch.
    if found
        .previous_until
        .is_some_and(|until| until > crate::outbox::now())
    {
        return Err(EndpointError::Rotating);
    }
    let secret = Secret::generate().map_err(EndpointError::Crypto)?;
    let sealed = sealer
        .seal(secret.expose().as_bytes(), id.as_bytes())
        .map_err(EndpointError::Crypto)?;
    let until = crate::outbox::add(crate::outbox::now(), ROTATION_GRACE);
    let mut active: webhook_endpoint::ActiveModel = found.clone().into();
    active.previous_secret = Set(Some(found.secret));
    active.previous_until = Set(Some(until));
    active.secret = Set(sealed);
    active.update(conn).await?;
    Ok(secret)
}

/// The secrets that sign a delivery to `endpoint` at `now`: the current one, and the
/// previous one during its grace period.
pub fn signing_secrets(
    sealer: &Sealer,
    endpoint: &webhook_endpoint::Model,
    now: DateTime<Utc>,
) -> Result<Vec<Secret>, EndpointError> {
    let open = |sealed: &str| {
        let plain = sealer
            .open(sealed, endpoint.id.as_bytes())
            .ok_or(EndpointError::Sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| EndpointError::Sealed)?;
        Secret::from_text(text).ok_or(EndpointError::Sealed)
    };
    let mut secrets = vec![open(&endpoint.secret)?];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
        && until > now
    {
        secrets.push(open(previous)?);
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_fragments_or_other_schemes_are_refused() {
        for bad in [
            "ftp://hooks.example/x",
            "https://user:pass@hooks.example/x",
            "https://hooks.example/x#frag",
            "not a url",
            "file:///etc/passwd",
            "http://127.0.0.1/x",
            "http://[::1]/x",
        ] {
            assert!(parse_url(bad, false).is_err(), "{bad}");
        }
        assert!(
            parse_url(
                &format!("https://h.example/{}", "a".repeat(MAX_URL_BYTES)),
                false
            )
            .is_err()
        );
        assert!(parse_url("https://hooks.example/roster?x=1", false).is_ok());
        assert!(parse_url("http://127.0.0.1:9000/x", true).is_ok());
    }

    #[test]
    fn events_are_checked_and_stored_in_a_fixed_order() {
        let list = |s: &[&str]| parse_events(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            list(&["session.created,user.registered"]).unwrap(),
            ",user.registered,session.created,"
        );
        assert_eq!(
            event_names(&list(&["all"]).unwrap()).len(),
            EventType::ALL.len()
        );
        assert!(matches!(
            list(&["user.%"]),
            Err(EndpointError::UnknownEvent)
        ));
        assert!(matches!(list(&[""]), Err(EndpointError::NoEvents)));
    }
}
