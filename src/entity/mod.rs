//! SeaORM entities: the database's shape, never exposed through GraphQL directly.

/// The `sessions` table.
pub mod session;
/// The `users` table.
pub mod user;
