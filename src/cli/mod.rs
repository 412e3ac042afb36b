//! The `roster` binary's command line: serving is the default; `schema` (printed by `main`),
//! `migrate`, `import-django`, `outbox` and `keys` are commands, the last four one file each, thin:
//! parse, call the use case, print, exit with a status.

use clap::{Parser, Subcommand};

use crate::config::Config;

/// `roster apikey create|list|revoke`.
pub mod apikey;
/// `roster import-django`.
pub mod import_django;
/// `roster keys list|rotate`.
pub mod keys;
/// `roster migrate`.
pub mod migrate;
/// `roster outbox list|retry`.
pub mod outbox;
/// `roster createsuperuser`, `roster users deactivate|reactivate`.
pub mod users;
/// `roster webhooks add|list|remove|rotate-secret|deliveries|retry`.
pub mod webhooks;

/// Command line of the `roster` binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "roster", version, about = "A GraphQL account service", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What the binary does; serving is the default.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Print the GraphQL schema (SDL) to stdout; `schema.graphql` is this output.
    Schema,
    /// Apply pending database migrations and exit (safe to run from several places at once
    /// on PostgreSQL: they take turns under an advisory lock).
    Migrate,
    /// Import users from Django (`auth_user`) with their password hashes, into the database
    /// of `--database-url`; problem rows are listed as JSON lines.
    ImportDjango(crate::import::ImportArgs),
    /// Inspect or requeue the outbox of confirmation and password-reset emails.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// List or rotate the keys that sign access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create a superuser (staff, every permission), as Django's `manage.py createsuperuser`:
    /// the password is asked twice without echo, or read from ROSTER_SUPERUSER_PASSWORD with
    /// `--no-input`; it must pass the registration policy.
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Never prompt: the password comes from ROSTER_SUPERUSER_PASSWORD.
        #[arg(long)]
        no_input: bool,
    },
    /// Deactivate or reactivate a user by username (for a locked-out team; recorded in the
    /// audit log as done by the system).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Set a user's password, as Django's `manage.py changepassword`: asked twice without
    /// echo, or read from ROSTER_NEW_PASSWORD with `--no-input`; it must pass the password
    /// policy. Every session of the user ends and their reset links stop working.
    Changepassword {
        username: String,
        /// Never prompt: the password comes from ROSTER_NEW_PASSWORD.
        #[arg(long)]
        no_input: bool,
    },
    /// API keys for back-office scripts: the admin API without a person's session.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Endpoints that receive signed events (user.registered, session.created, …), and their
    /// deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

/// `roster webhooks …`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint. Prints its id, then its signing secret (`whsec_…`, Standard
    /// Webhooks), shown this once. Needs the server secret, which seals it.
    Add {
        /// Where events are POSTed (http or https; no private address unless
        /// --webhook-allow-private).
        url: String,
        /// Event types, comma-separated, or `all`: user.registered, user.email_verified,
        /// user.email_changed, user.password_changed, user.password_reset, user.deactivated,
        /// user.reactivated, user.deleted, session.created, session.ended.
        #[arg(long, required = true)]
        events: Vec<String>,
    },
    /// Every endpoint: id, when added, URL, events. Never a secret.
    List,
    /// Remove an endpoint and its deliveries (sent or not).
    Remove { id: uuid::Uuid },
    /// A new signing secret, shown once; the old one signs beside it for 24 hours.
    RotateSecret { id: uuid::Uuid },
    /// Deliveries, newest first: number, event id (the receiver's `webhook-id`), type,
    /// status, attempts, next attempt, last HTTP status and error.
    Deliveries {
        /// Only this status: pending, sending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only to this endpoint.
        #[arg(long)]
        endpoint: Option<uuid::Uuid>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Make failed deliveries due again now, with a fresh attempt budget (the user's later
    /// events to that endpoint follow it, in order).
    Retry {
        /// The delivery's number (`seq` in `deliveries`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        seq: Option<i64>,
        /// Every failed delivery.
        #[arg(long)]
        all_failed: bool,
    },
}

/// `roster apikey …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key holding the given permissions (never staff or superuser: the privilege
    /// rules apply to it as to the least privileged operator). The key is printed once on
    /// stdout; only its SHA-256 is stored.
    Create {
        /// A unique name (1–100 characters), for `list` and the audit log.
        #[arg(long)]
        name: String,
        /// A permission (`app_label.codename`, e.g. roster.view_user); repeat for more.
        #[arg(long, required = true)]
        permission: Vec<String>,
    },
    /// Every key, newest first: id, name, when made, last used (to the minute) and revoked,
    /// permissions. Never the key.
    List,
    /// Revoke a key by id or name: it authenticates nothing from the next request on, on
    /// every process.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
}

/// `roster users …`.
#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Deactivate: every session and email link of the user ends at once. The last active
    /// superuser cannot be deactivated.
    Deactivate { username: String },
    /// Reactivate (ended sessions stay ended).
    Reactivate { username: String },
    /// Remove the user's second factor (TOTP device and recovery codes): for someone who lost
    /// both, or after `keys rotate --replace-secret` (sealed secrets no longer open).
    ResetMfa { username: String },
}

/// `roster keys …`: the access tokens' signing keys. Never prints key material.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Every key, newest first: id (the tokens' `kid`), state (active, retiring, retired),
    /// when it was made and retired, and until when the JWKS publishes it.
    List,
    /// Adds a new key, published at once, that signs every new token two minutes later (so
    /// verifiers meet it in the key set first), on every process; the keys it replaces stay
    /// in the JWKS until the tokens they signed have expired. Needs the server secret, as
    /// the server does.
    Rotate {
        /// Sign with the new key at once (a leaked key): verifiers holding a cached key set
        /// may refuse new tokens until they refetch it.
        #[arg(long)]
        now: bool,
        /// Seal the new key with this secret even though it does not open the current key:
        /// how a fleet moves to a new secret. Implies `--now`; restart every process with
        /// the new secret right after (until then they cannot sign).
        #[arg(long)]
        replace_secret: bool,
    },
    /// Takes a key out of the JWKS at once and wipes its private half (a key that leaked):
    /// every token it signed stops verifying. Rotate first (`rotate --now`) when it is the
    /// key that signs, or the next token makes a new key on the spot.
    Revoke {
        /// The key's id (`kid`, from `roster keys list`). A kid is base64url and may begin
        /// with `-`: it is taken as the id, never as a flag.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// `roster outbox …`: what operators need when email delivery fails.
#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCommand {
    /// Emails not delivered yet (pending, being sent, failed), oldest first: id, kind,
    /// recipient, attempts, next attempt, last error. Never a token or a body.
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Makes failed emails due again now, with a fresh attempt budget.
    Retry {
        /// The id of one failed email (from `roster outbox list`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<uuid::Uuid>,
        /// Every failed email.
        #[arg(long)]
        all_failed: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_that_begins_with_a_dash_is_an_id_not_a_flag() {
        let cli = Cli::try_parse_from(["roster", "keys", "revoke", "-Vz3Kq"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Keys(KeysCommand::Revoke { kid })) if kid == "-Vz3Kq")
        );
        let cli = Cli::try_parse_from(["roster", "apikey", "revoke", "-odd"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Apikey(ApiKeyCommand::Revoke { key })) if key == "-odd")
        );
    }
}
