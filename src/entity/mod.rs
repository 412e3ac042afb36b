//! SeaORM entities: the database's shape, never exposed through GraphQL directly.

/// The `email_tokens` table.
pub mod email_token;
/// The `outbox` table.
pub mod outbox;
/// The `sessions` table.
pub mod session;
/// The `users` table.
pub mod user;
