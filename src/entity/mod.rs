//! SeaORM entities: the database's shape, never exposed through GraphQL directly.

/// The `api_keys` table.
pub mod api_key;
/// The `audit_log` table.
pub mod audit_entry;
/// The `email_tokens` table.
pub mod email_token;
/// The `outbox` table.
pub mod outbox;
/// The `pending_deletions` table.
pub mod pending_deletion;
/// The `recovery_codes` table.
pub mod recovery_code;
/// The `sessions` table.
pub mod session;
/// The `signing_keys` table.
pub mod signing_key;
/// The `totp_devices` table.
pub mod totp_device;
/// The `users` table.
pub mod user;
/// The `webhook_deliveries` table.
pub mod webhook_delivery;
/// The `webhook_endpoints` table.
pub mod webhook_endpoint;
