//! One integration-test binary: every test drives the real router over HTTP against a real
//! database of its own (a fresh SQLite file, or a fresh Postgres database when
//! `ROSTER_TEST_DATABASE_URL` is set).

mod admin;
mod admin_manage;
mod audit;
mod auth_check;
mod django;
mod docs;
mod email;
mod email_change;
mod fleet;
mod helpers;
mod hostile;
mod http;
mod logs;
mod mailbox;
mod mfa;
mod nginx;
mod policy;
mod process;
mod register;
mod resilience;
mod schema;
mod self_service;
mod sessions;
mod tokens;
mod webhooks;
