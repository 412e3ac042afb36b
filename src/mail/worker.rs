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
/// How long the worker waits, once woken, for more emails to claim together.
const LINGER: Duration = Duration::from_millis(200);

/// How the worker delivers.
#[derive(Clone)]
pub struct DeliverySettings {
    pub from: Mailbox,
    /// Links are `{public_url}/verify-email?token=…`, `…/reset-password?token=…` and
    /// `…/change-email?token=…`.
    pub public_url: String,
    pub verify_email_ttl: Duration,
    pub reset_password_ttl: Duration,
    pub email_change_ttl: Duration,
    /// `--deletion-grace`, said in the notice of a closed account.
    pub deletion_grace: Duration,
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
    metrics: crate::metrics::Metrics,
    outbox: Outbox,
    transport: Arc<Transport>,
    templates: Arc<Templates>,
    settings: DeliverySettings,
}

impl Delivery {
    pub fn new(
        db: DatabaseConnection,
        metrics: crate::metrics::Metrics,
        outbox: Outbox,
        transport: Transport,
        templates: Templates,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            db,
            metrics,
            outbox,
            transport: Arc::new(transport),
            templates: Arc::new(templates),
            settings,
        }
    }

    /// Runs until `stop` turns true: the email being sent is handed back, and so are rows
    /// claimed but not started.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut claim_failing = false;
        let batch = MAX_BATCH;
        loop {
            if *stop.borrow() {
                return;
            }
            let mut full = false;
            match outbox::claim(&self.db, batch, self.settings.lease).await {
                Ok(rows) => {
                    claim_failing = false;
                    full = rows.len() as u64 == batch;
                    if !rows.is_empty() {
                        self.deliver_batch(rows, &mut stop).await;
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
                _ = self.outbox.woken() => {
                    // Let a few more arrive: under load, one claim then carries a batch and
                    // the database work per email shrinks; an email waits 200 ms more.
                    tokio::time::sleep(LINGER).await;
                }
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One claim, start to finish, with the database work done once for the whole batch:
    /// one read of the users, one transaction minting every token, one write marking what
    /// was sent. Errors end up on the rows (and as log lines without the recipient), never
    /// in a panic.
    async fn deliver_batch(&self, claimed: Vec<row::Model>, stop: &mut watch::Receiver<bool>) {
        let claimed_at = std::time::Instant::now();
        let mut ready: Vec<(row::Model, Prepared)> = Vec::new();
        let users = self.users_of(&claimed).await;
        // Oldest first, so a newer email of the same kind to the same user replaces an older
        // one of the batch: only the newest link could work anyway.
        let mut claimed = claimed;
        claimed.sort_by_key(|r| r.id);
        for row in claimed {
            let decided = match &users {
                Ok(users) => self.prepare(&row, row.user_id.and_then(|id| users.get(&id))),
                Err(e) => Err(Outcome::failed("database", e.clone())),
            };
            match decided {
                Ok(prepared) => {
                    // Notices are each sent; of two links of one user and purpose, only the
                    // newer.
                    let same = ready.iter().position(|(_, p)| {
                        matches!((&p.link, &prepared.link), (Some(a), Some(b))
                            if a.user_id == b.user_id && a.purpose == b.purpose)
                    });
                    if let Some(older) = same {
                        let (older, _) = ready.remove(older);
                        self.record(
                            &older,
                            Outcome::Skip("replaced by a newer email of the same kind"),
                        )
                        .await;
                    }
                    ready.push((row, prepared));
                }
                Err(outcome) => self.record(&row, outcome).await,
            }
        }
        if ready.is_empty() {
            return;
        }
        // Minted now, not at enqueue time: the outbox never holds a token, and a retried
        // delivery carries a fresh one (the older ones stop working).
        let wanted: Vec<_> = ready
            .iter()
            .filter_map(|(row, p)| {
                let link = p.link.as_ref()?;
                let change = link.purpose == Purpose::ChangeEmail;
                Some(email_tokens::Wanted {
                    user_id: link.user_id,
                    purpose: link.purpose,
                    ttl: link.ttl,
                    // The address a change link goes to is the one it confirms, and the link
                    // lives only while this email does.
                    new_email: change.then(|| row.recipient.clone()),
                    outbox_id: change.then_some(row.id),
                })
            })
            .collect();
        let tokens = async {
            let txn = self.db.begin().await?;
            let tokens = email_tokens::mint_many(&txn, &wanted).await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(tokens)
        }
        .await;
        let mut minted = match tokens {
            Ok(t) => t.into_iter(),
            Err(e) => {
                for (row, _) in &ready {
                    self.record(row, Outcome::failed("database", e.to_string()))
                        .await;
                }
                return;
            }
        };
        // Each link email with its token, in order; notices with none.
        let tokens: Vec<Option<crate::sessions::Token>> = ready
            .iter()
            .map(|(_, p)| p.link.as_ref().and_then(|_| minted.next()))
            .collect();
        let mut sent = Vec::new();
        let mut pending = ready.into_iter().zip(tokens);
        while let Some(((row, prepared), token)) = pending.next() {
            if *stop.borrow() {
                self.record(&row, Outcome::Released).await;
                for ((unsent, _), _) in pending.by_ref() {
                    self.record(&unsent, Outcome::Released).await;
                }
                break;
            }
            // A claim normally ends well inside its lease. When what is left of it could not
            // cover a whole SMTP exchange, the row's claim is renewed first (or, if another
            // worker took the row meanwhile, left to that worker): a row is never sent by two
            // workers at once, whatever the batch size and however slow the relay.
            if claimed_at.elapsed() + self.settings.smtp_timeout >= self.settings.lease {
                match outbox::renew(&self.db, &row, self.settings.lease).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.record(&row, Outcome::failed("database", e.to_string()))
                            .await;
                        continue;
                    }
                }
            }
            match self.send(&row, prepared, token.as_ref(), stop).await {
                Outcome::Sent => {
                    tracing::info!(outbox_id = %row.id, kind = %row.kind, attempt = row.attempts, "email delivered");
                    let latency = (outbox::now() - row.created_at)
                        .to_std()
                        .unwrap_or_default();
                    self.metrics.email_delivered(&row.kind, latency);
                    sent.push(row);
                }
                other => self.record(&row, other).await,
            }
        }
        if let Err(e) = outbox::delivered_all(&self.db, &sent).await {
            // The leases run out and the rows are claimed again: at-least-once.
            tracing::warn!(error = %e, emails = sent.len(), "could not record delivered emails");
        }
    }

    /// The users of a batch, by id.
    async fn users_of(
        &self,
        rows: &[row::Model],
    ) -> Result<std::collections::HashMap<uuid::Uuid, user::Model>, String> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let ids: Vec<uuid::Uuid> = rows.iter().filter_map(|r| r.user_id).collect();
        user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(&self.db)
            .await
            .map(|users| users.into_iter().map(|u| (u.id, u)).collect())
            .map_err(|e| e.to_string())
    }

    /// What a row needs sending, or why it needs nothing (or can never be sent).
    fn prepare(&self, row: &row::Model, found: Option<&user::Model>) -> Result<Prepared, Outcome> {
        let Some(kind) = Kind::parse(&row.kind) else {
            return Err(Outcome::final_failure("outbox", "unknown email kind"));
        };
        // A bare address: a stored value in `Name <addr>` form (an imported row) must not
        // redirect the email, and nothing but the address reaches the transport.
        let Ok(address) = row.recipient.trim().parse::<lettre::Address>() else {
            return Err(Outcome::final_failure(
                "address",
                "the recipient is not a deliverable address",
            ));
        };
        if kind == Kind::AccountDeleted {
            // Written as the account was deleted: there is no user to check any more.
            return Ok(Prepared {
                kind,
                address,
                link: None,
            });
        }
        let Some(found) = found else {
            return Err(Outcome::Skip("the user no longer exists"));
        };
        // The notice of an account closed for deletion goes to an inactive account by design.
        if !found.is_active && kind != Kind::AccountDeletionScheduled {
            return Err(Outcome::Skip("the user is deactivated"));
        }
        if found.is_active && kind == Kind::AccountDeletionScheduled {
            return Err(Outcome::Skip("the account was reopened meanwhile"));
        }
        if kind == Kind::VerifyEmail && found.email_verified {
            return Err(Outcome::Skip("the address is already verified"));
        }
        // A link or notice for the account's address, sent to an address the account no
        // longer has (changed meanwhile), would reach the wrong inbox. Every row is written
        // with the address as the account had it, so the stored strings are compared. Not
        // for the emails meant for another address: the new one, one held by another
        // account, and the old one's notices of a change.
        let to_account = !matches!(
            kind,
            Kind::ChangeEmail | Kind::EmailInUse | Kind::EmailChangeRequested | Kind::EmailChanged
        );
        if to_account && row.recipient != found.email {
            return Err(Outcome::Skip("the account's address changed meanwhile"));
        }
        if kind == Kind::ChangeEmail && row.recipient == found.email {
            return Err(Outcome::Skip("the address is the account's already"));
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
            Kind::ChangeEmail => (
                Purpose::ChangeEmail,
                self.settings.email_change_ttl,
                "change-email",
            ),
            Kind::SecondFactorAdded
            | Kind::SecondFactorRemoved
            | Kind::RecoveryCodeUsed
            | Kind::EmailChangeRequested
            | Kind::EmailInUse
            | Kind::EmailChanged
            | Kind::AccountDeletionScheduled
            | Kind::AccountDeleted => {
                return Ok(Prepared {
                    kind,
                    address,
                    link: None,
                });
            }
        };
        Ok(Prepared {
            kind,
            address,
            link: Some(Link {
                user_id: found.id,
                purpose,
                ttl,
                path,
            }),
        })
    }

    async fn send(
        &self,
        row: &row::Model,
        p: Prepared,
        token: Option<&crate::sessions::Token>,
        stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let (link, ttl) = match (p.link, token) {
            (Some(link), Some(token)) => (
                format!(
                    "{}/{}?token={}",
                    self.settings.public_url,
                    link.path,
                    token.expose()
                ),
                link.ttl,
            ),
            (Some(_), None) => return Outcome::failed("database", "no token was minted"),
            // A notice's only duration: how long a closed account waits for its owner.
            (None, _) if p.kind == Kind::AccountDeletionScheduled => {
                (String::new(), self.settings.deletion_grace)
            }
            (None, _) => (String::new(), Duration::ZERO),
        };
        let (subject, text, html) = self.templates.render(p.kind, &link, &row.recipient, ttl);
        let email = Rendered {
            to: p.address.to_string(),
            subject,
            text,
            html,
            message_id: message_id(row.id, &self.settings.from),
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

    /// Writes a row's outcome (all but `Sent`, which is written for the batch at once).
    async fn record(&self, claimed: &row::Model, outcome: Outcome) {
        let recorded = match outcome {
            Outcome::Released => outbox::release(&self.db, claimed).await,
            Outcome::Sent => outbox::delivered_all(&self.db, std::slice::from_ref(claimed)).await,
            Outcome::Skip(why) => {
                tracing::info!(outbox_id = %claimed.id, kind = %claimed.kind, reason = why, "email no longer needed; not sent");
                outbox::skipped(&self.db, claimed, why).await
            }
            Outcome::Failed {
                kind,
                code,
                detail,
                last,
            } => {
                self.metrics.email_attempt_failed(&claimed.kind);
                let attempts = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
                let retry_at = (!last && attempts < self.settings.max_attempts).then(|| {
                    outbox::add(
                        outbox::now(),
                        outbox::backoff(self.settings.retry_base, attempts),
                    )
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
                outbox::attempt_failed(&self.db, claimed, &detail, retry_at).await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the row is claimed again: at-least-once.
            tracing::warn!(outbox_id = %claimed.id, error = %e, "could not record an email's outcome");
        }
    }
}

/// A claimed row ready to send.
struct Prepared {
    kind: Kind,
    address: lettre::Address,
    /// For a link email; notices (a deleted account's goodbye included) carry none.
    link: Option<Link>,
}

/// A link email's token: whose, what for, how long it works, the page it opens.
struct Link {
    user_id: uuid::Uuid,
    purpose: Purpose,
    ttl: Duration,
    path: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_fixed_per_row() {
        let from: Mailbox = "roster <noreply@accounts.example>".parse().unwrap();
        let id = uuid::Uuid::now_v7();
        assert_eq!(message_id(id, &from), message_id(id, &from));
        assert_eq!(message_id(id, &from), format!("<{id}@accounts.example>"));
    }
}
