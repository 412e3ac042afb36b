//! SeaORM entities: the database's shape, never exposed through GraphQL directly.

/// The `users` table.
pub mod user;
