use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use sea_orm::{DatabaseConnection, EntityTrait, TransactionTrait};
use tokio::sync::watch;

use super::{Rendered, Templates, Transport};
use crate::accounts::email_tokens::{self, Purpose};
use crate::entity::{outbox as row, user};
use crate::outbox::{self, Kind, Outbox};

/// Most rows claimed at once.
const MAX_BATCH: u64 = 16;
/// Longest wait between retries, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How the worker delivers.
#[derive(Clone)]
pub struct DeliverySettings {
    pub from: Mailbox,
    /// Links are `{public_url}/verify-email?token=…` and `{public_url}/reset-password?token=…`.
    pub public_url: String,
    pub verify_email_ttl: Duration,
    pub reset_password_ttl: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub smtp_timeout: Duration,
}

/// Drains the outbox: claims due rows, mints each email's token, renders, sends, records.
/// Started beside the HTTP server and stopped with it.
pub struct Delivery {
    db: DatabaseConnection,
    outbox: Outbox,
    transport: Arc<Transport>,
    templates: Arc<Templates>,
    settings: DeliverySettings,
}

impl Delivery {
    pub fn new(
        db: DatabaseConnection,
        outbox: Outbox,
        transport: Transport,
        templates: Templates,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            db,
            outbox,
            transport: Arc::new(transport),
            templates: Arc::new(templates),
            settings,
        }
    }

    /// Runs until `stop` turns true: the email being sent is finished, rows claimed but not
    /// started are handed back.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut claim_failing = false;
        // Every row of a claim must be sent before its lease ends, even if each send takes
        // the whole SMTP timeout; otherwise another worker would claim it meanwhile.
        let per_send = self.settings.smtp_timeout.as_secs().max(1);
        let batch = (self.settings.lease.as_secs() / per_send / 2).clamp(1, MAX_BATCH);
        loop {
            if *stop.borrow() {
                return;
            }
            let mut full = false;
            match outbox::claim(&self.db, batch, self.settings.lease).await {
                Ok(rows) => {
                    claim_failing = false;
                    full = rows.len() as u64 == batch;
                    let mut rows = rows.into_iter();
                    while let Some(row) = rows.next() {
                        if *stop.borrow() {
                            for unsent in std::iter::once(row).chain(rows.by_ref()) {
                                if let Err(e) = outbox::release(&self.db, &unsent).await {
                                    tracing::warn!(outbox_id = %unsent.id, error = %e, "could not hand a claimed email back; it is due again when its lease ends");
                                }
                            }
                            return;
                        }
                        self.deliver(row, &mut stop).await;
                    }
                }
                Err(e) => {
                    // Logged once per outage, not once per poll.
                    if !claim_failing {
                        tracing::warn!(error = %e, "cannot read the outbox; retrying");
                        claim_failing = true;
                    }
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = self.outbox.woken() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One claimed row, start to finish. Errors end up on the row (and as a log line without
    /// the recipient), never in a panic.
    async fn deliver(&self, claimed: row::Model, stop: &mut watch::Receiver<bool>) {
        let outcome = self.attempt(&claimed, stop).await;
        let recorded = match outcome {
            Outcome::Released => outbox::release(&self.db, &claimed).await,
            Outcome::LeaseLost => Ok(()),
            Outcome::Sent => {
                tracing::info!(outbox_id = %claimed.id, kind = %claimed.kind, attempt = claimed.attempts, "email delivered");
                outbox::delivered(&self.db, &claimed).await
            }
            Outcome::Skip(why) => {
                tracing::info!(outbox_id = %claimed.id, kind = %claimed.kind, reason = why, "email no longer needed; not sent");
                outbox::skipped(&self.db, &claimed, why).await
            }
            Outcome::Failed {
                kind,
                code,
                detail,
                last,
            } => {
                let attempts = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
                let retry_at = (!last && attempts < self.settings.max_attempts).then(|| {
                    outbox::add(outbox::now(), backoff(self.settings.retry_base, attempts))
                });
                tracing::warn!(
                    outbox_id = %claimed.id,
                    kind = %claimed.kind,
                    attempt = claimed.attempts,
                    error_kind = kind,
                    smtp_code = code,
                    retry_at = retry_at.map(|t| t.to_rfc3339()),
                    "email delivery failed{}",
                    if retry_at.is_some() { "; will retry" } else { "; giving up (see `roster outbox list`)" }
                );
                outbox::attempt_failed(&self.db, &claimed, &detail, retry_at).await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the row is claimed again: at-least-once.
            tracing::warn!(outbox_id = %claimed.id, error = %e, "could not record an email's outcome");
        }
    }

    async fn attempt(&self, claimed: &row::Model, stop: &mut watch::Receiver<bool>) -> Outcome {
        let Some(kind) = Kind::parse(&claimed.kind) else {
            return Outcome::final_failure("outbox", "unknown email kind");
        };
        // A bare address: a stored value in `Name <addr>` form (an imported row) must not
        // redirect the email, and nothing but the address reaches the transport.
        let Ok(address) = claimed.recipient.trim().parse::<lettre::Address>() else {
            return Outcome::final_failure("address", "the recipient is not a deliverable address");
        };
        let found = match user::Entity::find_by_id(claimed.user_id)
            .one(&self.db)
            .await
        {
            Ok(found) => found,
            Err(e) => return Outcome::failed("database", e.to_string()),
        };
        let Some(found) = found else {
            return Outcome::Skip("the user no longer exists");
        };
        if !found.is_active {
            return Outcome::Skip("the user is deactivated");
        }
        if kind == Kind::VerifyEmail && found.email_verified {
            return Outcome::Skip("the address is already verified");
        }
        let (purpose, ttl, path) = match kind {
            Kind::VerifyEmail => (
                Purpose::VerifyEmail,
                self.settings.verify_email_ttl,
                "verify-email",
            ),
            Kind::ResetPassword => (
                Purpose::ResetPassword,
                self.settings.reset_password_ttl,
                "reset-password",
            ),
        };
        // Minted now, not at enqueue time: the outbox never holds a token, and a retried
        // delivery carries a fresh one (the older ones stop working).
        let minted = async {
            let txn = self.db.begin().await?;
            let token = email_tokens::mint(&txn, found.id, purpose, ttl).await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(token)
        }
        .await;
        let token = match minted {
            Ok(t) => t,
            Err(e) => return Outcome::failed("database", e.to_string()),
        };
        let link = format!(
            "{}/{path}?token={}",
            self.settings.public_url,
            token.expose()
        );
        let (subject, text, html) = self.templates.render(kind, &link, &claimed.recipient, ttl);
        // The claim is renewed right before the send, so the time spent so far (database
        // work, earlier rows of the batch) cannot eat into the lease the send needs.
        match outbox::renew(&self.db, claimed, self.settings.lease).await {
            Ok(true) => {}
            Ok(false) => return Outcome::LeaseLost,
            Err(e) => return Outcome::failed("database", e.to_string()),
        }
        let email = Rendered {
            to: address.to_string(),
            subject,
            text,
            html,
            message_id: message_id(claimed.id, &self.settings.from),
        };
        let sent = tokio::select! {
            sent = tokio::time::timeout(
                self.settings.smtp_timeout,
                self.transport.send(&self.settings.from, &email),
            ) => sent,
            // Shutting down: give the row back rather than hold the process for a slow relay.
            _ = stop.wait_for(|stopped| *stopped) => return Outcome::Released,
        };
        match sent {
            Ok(Ok(())) => Outcome::Sent,
            Ok(Err(e)) => Outcome::Failed {
                // The address or the message itself is wrong: no retry can change that.
                last: matches!(e.kind, "address" | "message"),
                kind: e.kind,
                code: e.code,
                detail: e.detail,
            },
            Err(_) => Outcome::failed("timeout", "the SMTP exchange took too long"),
        }
    }
}

enum Outcome {
    Sent,
    Skip(&'static str),
    Failed {
        kind: &'static str,
        code: Option<u16>,
        detail: String,
        /// No retry could succeed.
        last: bool,
    },
    /// Handed back unsent (the worker is stopping).
    Released,
    /// Another worker owns the row now (this claim's lease ran out).
    LeaseLost,
}

impl Outcome {
    fn failed(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Failed {
            kind,
            code: None,
            detail: detail.into(),
            last: false,
        }
    }

    fn final_failure(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Failed {
            kind,
            code: None,
            detail: detail.into(),
            last: true,
        }
    }
}

/// `<outbox-row-id@domain-of-from>`: the same for every attempt of one row.
fn message_id(id: uuid::Uuid, from: &Mailbox) -> String {
    format!("<{id}@{}>", from.email.domain())
}

/// Exponential backoff with jitter: `base · 2^(attempt−1)`, at most an hour (or `base` if
/// longer), then a random point in its upper half so retries of many rows spread out.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(MAX_BACKOFF.max(base));
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        1.0
    };
    full.mul_f64(0.5 + 0.5 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for attempt in 1..=30u32 {
            let full = base
                .saturating_mul(1 << attempt.saturating_sub(1).min(20))
                .min(MAX_BACKOFF);
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn message_ids_are_fixed_per_row() {
        let from: Mailbox = "roster <noreply@accounts.example>".parse().unwrap();
        let id = uuid::Uuid::now_v7();
        assert_eq!(message_id(id, &from), message_id(id, &from));
        assert_eq!(message_id(id, &from), format!("<{id}@accounts.example>"));
    }
}
