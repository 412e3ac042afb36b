use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::watch;
use uuid::Uuid;

use super::endpoints::{self, EndpointError};
use super::signing;
use crate::entity::{webhook_delivery as row, webhook_endpoint};
use crate::outbox::{add, now};
use crate::secret::Sealer;

/// Most rows claimed (and sent, concurrently) at once.
const MAX_BATCH: u64 = 16;
/// Once woken, how long the worker waits for the change's commit and for more events.
const LINGER: Duration = Duration::from_millis(100);
/// Most of a receiver's answer read (and kept, shortened, for `deliveries`): the rest is
/// never read, whatever the receiver sends.
const MAX_RESPONSE_BYTES: usize = 4096;
/// Longest `last_error` kept, in characters.
const MAX_ERROR_CHARS: usize = 300;

/// Row states: the outbox's (a delivery is never `skipped`).
pub use crate::outbox::status;

/// How deliveries go (`--webhook-*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub allow_private: bool,
    /// Per attempt: connecting, sending, and reading the answer's head and first bytes.
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub poll_interval: Duration,
}

impl WebhookSettings {
    /// A claim outlives its attempt (bounded by the timeout) by a margin; past it (the worker
    /// died), the row is due again.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// The delivery worker: started beside the HTTP server, stopped with it.
pub struct Worker {
    db: DatabaseConnection,
    metrics: crate::metrics::Metrics,
    sealer: Option<Sealer>,
    client: reqwest::Client,
    settings: WebhookSettings,
}

enum Outcome {
    Delivered(u16),
    Failed {
        error: String,
        status: Option<u16>,
        /// No retry could succeed.
        last: bool,
    },
    /// Handed back unsent (the worker is stopping).
    Released,
}

impl Worker {
    pub fn new(
        db: DatabaseConnection,
        metrics: crate::metrics::Metrics,
        sealer: Option<Sealer>,
        settings: WebhookSettings,
    ) -> Result<Self, String> {
        Ok(Self {
            db,
            metrics,
            sealer,
            client: client(&settings)?,
            settings,
        })
    }

    /// Runs until `stop` turns true; deliveries in flight then are handed back (and sent
    /// again later: at least once).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut wake = super::wake::woken();
        let mut claim_failing = false;
        let this = Arc::new(self);
        loop {
            if *stop.borrow() {
                return;
            }
            let mut progress = false;
            match claim(&this.db, MAX_BATCH, this.settings.lease()).await {
                Ok(rows) => {
                    claim_failing = false;
                    if !rows.is_empty() {
                        // A delivered event may free the user's next one: look again at once.
                        progress = this.clone().deliver_batch(rows, &mut stop).await;
                    }
                }
                Err(e) => {
                    if !claim_failing {
                        tracing::warn!(error = %e, "cannot read the webhook deliveries; retrying");
                        claim_failing = true;
                    }
                }
            }
            if progress {
                continue;
            }
            tokio::select! {
                _ = wake.changed() => tokio::time::sleep(LINGER).await,
                _ = tokio::time::sleep(this.settings.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Sends a claimed batch concurrently and records each outcome; `true` when any was
    /// delivered.
    async fn deliver_batch(
        self: Arc<Self>,
        rows: Vec<row::Model>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.endpoint_id).collect();
        let found = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(ids))
            .all(&self.db)
            .await;
        let endpoints: HashMap<Uuid, webhook_endpoint::Model> = match found {
            Ok(found) => found.into_iter().map(|e| (e.id, e)).collect(),
            Err(e) => {
                for r in &rows {
                    self.record(r, Outcome::failed(format!("database: {e}")))
                        .await;
                }
                return false;
            }
        };
        let mut set = tokio::task::JoinSet::new();
        let mut waiting: HashMap<i64, row::Model> = HashMap::new();
        for r in rows {
            let Some(endpoint) = endpoints.get(&r.endpoint_id).cloned() else {
                // Its endpoint was removed while the change that wrote it was still open
                // (PostgreSQL): nobody to send it to, ever.
                if let Err(e) = row::Entity::delete_by_id(r.seq).exec(&self.db).await {
                    tracing::warn!(error = %e, "could not drop a delivery of a removed endpoint");
                }
                continue;
            };
            let this = self.clone();
            let claimed = r.clone();
            waiting.insert(r.seq, r);
            set.spawn(async move {
                let outcome = this.deliver(&endpoint, &claimed).await;
                (claimed, outcome)
            });
        }
        let mut any = false;
        loop {
            let next = tokio::select! {
                next = set.join_next() => Some(next),
                _ = stop.wait_for(|stopped| *stopped) => None,
            };
            let Some(next) = next else {
                set.abort_all();
                for r in waiting.values() {
                    self.record(r, Outcome::Released).await;
                }
                break;
            };
            let Some(joined) = next else { break };
            let Ok((r, outcome)) = joined else { continue };
            waiting.remove(&r.seq);
            match outcome {
                Outcome::Delivered(code) => {
                    self.metrics.webhook_delivery(&r.event_type, "delivered");
                    tracing::info!(event_id = %r.event_id, event = %r.event_type, attempt = r.attempts, status = code, "webhook delivered");
                    any = true;
                    // Recorded at once, well inside the lease, not when the batch ends.
                    self.record(&r, Outcome::Delivered(code)).await;
                }
                other => self.record(&r, other).await,
            }
        }
        // A task that panicked leaves its row claimed: the lease runs out and it is sent again.
        any
    }

    /// One attempt: sign, POST, read at most a little of the answer.
    async fn deliver(&self, endpoint: &webhook_endpoint::Model, r: &row::Model) -> Outcome {
        let url = match endpoints::parse_url(&endpoint.url, self.settings.allow_private) {
            Ok(url) => url,
            Err(EndpointError::Private) => return Outcome::last(super::guard::REFUSED),
            Err(_) => return Outcome::last("the endpoint's URL is not valid"),
        };
        let Some(sealer) = &self.sealer else {
            return Outcome::failed(
                "no server secret (--secret-key-file or ROSTER_SECRET_KEY) to open the endpoint's secret",
            );
        };
        let secrets = match endpoints::signing_secrets(sealer, endpoint, now()) {
            Ok(s) => s,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let body = body(r);
        let id = message_id(r.event_id);
        let timestamp = Utc::now().timestamp();
        let signature = signing::signature_header(&secrets, &id, timestamp, body.as_bytes());
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let attempt = async {
            let mut response = request.send().await?;
            let code = response.status();
            let mut head = Vec::new();
            while head.len() < MAX_RESPONSE_BYTES {
                match response.chunk().await? {
                    Some(chunk) => {
                        let room = MAX_RESPONSE_BYTES - head.len();
                        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((code, head))
        };
        match tokio::time::timeout(self.settings.timeout, attempt).await {
            Err(_) => Outcome::failed("timeout: no complete answer in time"),
            Ok(Err(e)) => Outcome::failed(describe(&e)),
            Ok(Ok((code, _))) if code.is_success() => Outcome::Delivered(code.as_u16()),
            Ok(Ok((code, head))) => {
                let said = String::from_utf8_lossy(&head[..head.len().min(200)]).into_owned();
                let why = if code.is_redirection() {
                    "a redirect (never followed)".to_owned()
                } else {
                    said
                };
                Outcome::Failed {
                    error: format!("HTTP {}: {why}", code.as_u16()),
                    status: Some(code.as_u16()),
                    last: false,
                }
            }
        }
    }

    async fn record(&self, claimed: &row::Model, outcome: Outcome) {
        let recorded = match outcome {
            Outcome::Delivered(code) => delivered(&self.db, claimed, code).await,
            Outcome::Released => release(&self.db, claimed).await,
            Outcome::Failed {
                error,
                status,
                last,
            } => {
                let attempts = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
                let retry_at = (!last && attempts < self.settings.max_attempts).then(|| {
                    add(
                        now(),
                        crate::outbox::backoff(self.settings.retry_base, attempts),
                    )
                });
                self.metrics.webhook_delivery(
                    &claimed.event_type,
                    if retry_at.is_some() {
                        "attempt_failed"
                    } else {
                        "failed"
                    },
                );
                tracing::warn!(
                    event_id = %claimed.event_id,
                    event = %claimed.event_type,
                    endpoint_id = %claimed.endpoint_id,
                    attempt = claimed.attempts,
                    status = status,
                    retry_at = retry_at.map(|t| t.to_rfc3339()),
                    "webhook delivery failed{}",
                    if retry_at.is_some() { "; will retry" } else { "; giving up (see `roster webhooks deliveries`)" }
                );
                attempt_failed(&self.db, claimed, &error, status, retry_at).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(event_id = %claimed.event_id, error = %e, "could not record a webhook's outcome");
        }
    }
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Self {
        Self::Failed {
            error: error.into(),
            status: None,
            last: false,
        }
    }

    fn last(error: impl Into<String>) -> Self {
        Self::Failed {
            error: error.into(),
            status: None,
            last: true,
        }
    }
}

/// The HTTP client of every delivery: no redirects, no proxy from the environment, the
/// guarded resolver, a timeout, HTTP/1.1 over rustls (ring, webpki's roots).
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, String> {
    // reqwest is built without a crypto provider of its own (its default, aws-lc-rs, is a C
    // build roster avoids): ring becomes the process's default, so any client built later
    // (an embedding application's, a test's) finds one instead of panicking. Another already
    // installed stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("webhook TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(super::guard::GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("roster-webhooks/", env!("CARGO_PKG_VERSION")))
        .http1_only()
        .build()
        .map_err(|e| format!("webhook HTTP client: {e}"))
}

/// A failed request in words, without the URL (it may carry the receiver's own token).
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.to_string() == super::guard::REFUSED {
            return super::guard::REFUSED.to_owned();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timeout: no complete answer in time".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// `msg_` + the event's id: the same for every attempt and every endpoint.
pub fn message_id(event_id: Uuid) -> String {
    format!("msg_{}", event_id.simple())
}

/// The JSON body: `{"type", "timestamp", "data": {user_id, username, email, legacy_id, …}}`, the
/// same bytes on every attempt (keys sorted).
pub fn body(r: &row::Model) -> String {
    let mut data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&r.data).unwrap_or_default();
    data.insert("user_id".into(), r.user_id.to_string().into());
    data.insert("username".into(), r.username.clone().into());
    data.insert("email".into(), r.email.clone().into());
    data.insert("legacy_id".into(), r.legacy_id.into());
    serde_json::json!({
        "type": r.event_type,
        "timestamp": r.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data,
    })
    .to_string()
}

/// Claims up to `batch` due rows for `lease`, each the oldest of its user's rows to its
/// endpoint that is not delivered (a user's events go out one after the other, in order;
/// a failed one holds the ones after it until it is retried). Each claim counts an attempt.
pub async fn claim(
    db: &DatabaseConnection,
    batch: u64,
    lease: Duration,
) -> Result<Vec<row::Model>, DbErr> {
    let now = now();
    let until = add(now, lease);
    let backend = db.get_database_backend();
    let (p, lock) = match backend {
        DatabaseBackend::Postgres => (["$1", "$2", "$3", "$4", "$5"], " FOR UPDATE SKIP LOCKED"),
        _ => (["?", "?", "?", "?", "?"], ""),
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1, locked_until = {p0} \
         WHERE seq IN (SELECT d.seq FROM webhook_deliveries d \
           WHERE ((d.status = 'pending' AND d.next_attempt_at <= {p1}) \
              OR (d.status = 'sending' AND d.locked_until <= {p2})) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries b \
               WHERE b.endpoint_id = d.endpoint_id AND b.user_id = d.user_id AND b.seq < d.seq \
                 AND b.status IN ('pending', 'sending', 'failed')) \
           ORDER BY d.seq LIMIT {p3}{lock}) \
         AND (status = 'pending' OR locked_until <= {p4}) \
         RETURNING *",
        p0 = p[0],
        p1 = p[1],
        p2 = p[2],
        p3 = p[3],
        p4 = p[4],
    );
    row::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [
                until.into(),
                now.into(),
                now.into(),
                (batch as i64).into(),
                now.into(),
            ],
        ))
        .all(db)
        .await
}

/// The claim of `r` (same attempt, still ours).
fn finish(r: &row::Model) -> sea_orm::UpdateMany<row::Entity> {
    row::Entity::update_many()
        .filter(row::Column::Seq.eq(r.seq))
        .filter(row::Column::Status.eq(status::SENDING))
        .filter(row::Column::Attempts.eq(r.attempts))
        .col_expr(row::Column::LockedUntil, Expr::value(None::<DateTime<Utc>>))
}

async fn delivered(db: &DatabaseConnection, r: &row::Model, code: u16) -> Result<(), DbErr> {
    finish(r)
        .col_expr(row::Column::Status, Expr::value(status::DELIVERED))
        .col_expr(row::Column::DeliveredAt, Expr::value(now()))
        .col_expr(row::Column::LastStatus, Expr::value(i32::from(code)))
        .col_expr(row::Column::LastError, Expr::value(None::<String>))
        .exec(db)
        .await?;
    Ok(())
}

async fn attempt_failed(
    db: &DatabaseConnection,
    r: &row::Model,
    error: &str,
    code: Option<u16>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let error: String = error
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    let mut update = finish(r)
        .col_expr(row::Column::LastError, Expr::value(error))
        .col_expr(row::Column::LastStatus, Expr::value(code.map(i32::from)));
    update = match retry_at {
        Some(at) => update
            .col_expr(row::Column::Status, Expr::value(status::PENDING))
            .col_expr(row::Column::NextAttemptAt, Expr::value(at)),
        None => update.col_expr(row::Column::Status, Expr::value(status::FAILED)),
    };
    update.exec(db).await?;
    Ok(())
}

async fn release(db: &DatabaseConnection, r: &row::Model) -> Result<(), DbErr> {
    finish(r)
        .col_expr(row::Column::Status, Expr::value(status::PENDING))
        .col_expr(row::Column::Attempts, Expr::value(r.attempts - 1))
        .exec(db)
        .await?;
    Ok(())
}

/// Deliveries, newest first: every state, or one (`failed`, `pending`, …).
pub async fn deliveries(
    db: &impl sea_orm::ConnectionTrait,
    state: Option<&str>,
    endpoint: Option<Uuid>,
    limit: u64,
) -> Result<Vec<row::Model>, DbErr> {
    let mut find = row::Entity::find()
        .order_by_desc(row::Column::Seq)
        .limit(limit);
    if let Some(state) = state {
        find = find.filter(row::Column::Status.eq(state));
    }
    if let Some(endpoint) = endpoint {
        find = find.filter(row::Column::EndpointId.eq(endpoint));
    }
    find.all(db).await
}

/// Makes failed deliveries due now with a fresh attempt budget: one (by `seq`) or all.
pub async fn retry_failed(
    db: &impl sea_orm::ConnectionTrait,
    seq: Option<i64>,
) -> Result<u64, DbErr> {
    let mut update = row::Entity::update_many()
        .filter(row::Column::Status.eq(status::FAILED))
        .col_expr(row::Column::Status, Expr::value(status::PENDING))
        .col_expr(row::Column::Attempts, Expr::value(0))
        .col_expr(row::Column::NextAttemptAt, Expr::value(now()));
    if let Some(seq) = seq {
        update = update.filter(row::Column::Seq.eq(seq));
    }
    let n = update.exec(db).await?.rows_affected;
    if n > 0 {
        super::wake::wake();
    }
    Ok(n)
}

/// How many deliveries wait (pending or being sent) and how many failed for good.
pub async fn backlog(db: &DatabaseConnection) -> Result<(i64, i64), DbErr> {
    use sea_orm::PaginatorTrait;
    let waiting = row::Entity::find()
        .filter(row::Column::Status.is_in([status::PENDING, status::SENDING]))
        .count(db)
        .await?;
    let failed = row::Entity::find()
        .filter(row::Column::Status.eq(status::FAILED))
        .count(db)
        .await?;
    Ok((
        i64::try_from(waiting).unwrap_or(i64::MAX),
        i64::try_from(failed).unwrap_or(i64::MAX),
    ))
}

/// Deletes delivered rows older than `age` (history).
pub async fn purge_delivered(db: &DatabaseConnection, age: Duration) -> Result<u64, DbErr> {
    let before = chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now().checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    Ok(row::Entity::delete_many()
        .filter(row::Column::Status.eq(status::DELIVERED))
        .filter(row::Column::DeliveredAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_stable_and_holds_the_user_and_the_event_fields() {
        let r = row::Model {
            seq: 1,
            event_id: Uuid::nil(),
            endpoint_id: Uuid::nil(),
            event_type: "user.email_changed".into(),
            user_id: Uuid::nil(),
            username: "ana".into(),
            email: "ana@example.com".into(),
            legacy_id: Some(7),
            data: r#"{"previous_email":"old@example.com"}"#.into(),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            status: status::PENDING.into(),
            attempts: 0,
            next_attempt_at: Utc::now(),
            locked_until: None,
            last_error: None,
            last_status: None,
            delivered_at: None,
        };
        assert_eq!(
            body(&r),
            r#"{"data":{"email":"ana@example.com","legacy_id":7,"previous_email":"old@example.com","user_id":"00000000-0000-0000-0000-000000000000","username":"ana"},"timestamp":"2023-11-14T22:13:20.123456Z","type":"user.email_changed"}"#
        );
        assert_eq!(body(&r), body(&r));
        assert_eq!(
            message_id(Uuid::nil()),
            "msg_00000000000000000000000000000000"
        );
    }
}
