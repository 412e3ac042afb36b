//! The token lookup on PostgreSQL: the lookups asked at one moment share one statement, sent
//! on connections of the lookup's own.
//!
//! Why batches: on PostgreSQL a lookup is a round trip to a backend that shares the machine's
//! cores, and the backend's fixed work per statement (waking up, binding, starting the
//! executor, answering) is most of it; the index probe is a small part. `/auth/check` runs on
//! every request of the team's other services, so under load a statement per check spends the
//! cores on that fixed work. Here the lookups waiting when a statement can start go together,
//! `… WHERE token_hash = ANY($1)`, and pay it once.
//!
//! Why connections of its own, not the pool: sqlx's pool pings a PostgreSQL connection when it
//! hands it out (`db::connect_with` keeps that, for failovers) and again when it takes it back
//! (always), so a pooled statement costs three round trips. A lookup connection is pinged
//! never: a statement that fails on a connection kept from before is sent once more on a new
//! one, which is what the pings are for (a restart or failover killed the idle connection) —
//! safe here because a lookup writes nothing. Both measured in docs/benchmarks-log.md,
//! "Forward auth on PostgreSQL".
//!
//! **Not a cache.** A lookup joins a statement that starts *after* it was asked, and a
//! statement sees every transaction committed before it started (READ COMMITTED): a logout,
//! a revocation or a deactivation answered before a check was asked is seen by that check,
//! on every process. Nothing is kept between statements.
//!
//! At most [`IN_FLIGHT`] statements run at once (one), each on its own connection. While it
//! runs, new lookups wait in the queue and go together in the next one; when the connection
//! is free a lookup goes at once, alone, so an idle server adds no wait. A batch's rows are handed back
//! by token hash, and each lookup gets only the row of its own hash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, PgFunc};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{
    DbBackend, DbErr, EntityTrait, QueryFilter, QueryResult, QueryTrait, SelectTwoModel,
    SelectorTrait,
};
use tokio::sync::{mpsc, oneshot};

use crate::entity::{session, user};

/// Statements running at once (and connections held). One: the lookups that arrive while it
/// runs make the next batch. Two made batches half the size (about 8 lookups per statement
/// against 17) and checks dearer, on two cores shared with PostgreSQL (docs/benchmarks-log.md,
/// "Forward auth on PostgreSQL"). An idle server's lookup still goes at once; a busy one's
/// waits for at most the statement before it.
const IN_FLIGHT: usize = 1;
/// Lookups in one statement at most (the array bound to it stays under 10 KiB).
const MAX_BATCH: usize = 128;
/// How long opening a lookup connection may take, as the pool's `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to the server's `statement_timeout` for a statement's deadline on this side.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);
/// Between two attempts to reach PostgreSQL once a connection could not be opened. Meanwhile
/// lookups are refused at once: with one statement at a time, waiting for each attempt
/// (up to [`CONNECT_TIMEOUT`] on a host that drops packets) would hold every check of the
/// process that long, and a proxy's every request behind it.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What a lookup finds: the session and its user (`None` for a user row that is gone).
pub type Found = Option<(session::Model, Option<user::Model>)>;

type Reply = oneshot::Sender<Result<Found, DbErr>>;

/// The queue of lookups and the task that sends them. Share it behind an `Arc`.
pub struct Batched {
    queue: mpsc::Sender<(String, Reply)>,
    counts: Arc<Counts>,
}

/// How every statement reaches PostgreSQL.
struct Route {
    options: PgConnectOptions,
    sql: Arc<str>,
    /// The server's `statement_timeout` and a margin. The server's own limit cannot end a
    /// statement on a connection that died silently (a NAT entry dropped while idle, a host
    /// gone in a failover): without this the statement would wait for the kernel to give up
    /// on the socket, or for ever, with every lookup of the process behind it.
    deadline: Duration,
    /// Set when a connection could not be opened, until a background attempt opens one
    /// (`reconnect`): lookups are refused at once meanwhile.
    unreachable: AtomicBool,
    /// The connection that background attempt opened, for the next statement.
    spare: std::sync::Mutex<Option<PgConnection>>,
}

/// How many lookups were asked (answered or failed), in how many statements (for tests and
/// benchmarks).
#[derive(Default)]
struct Counts {
    lookups: AtomicU64,
    statements: AtomicU64,
}

impl Batched {
    /// Starts the task that sends lookups over connections opened with `options` (the
    /// serving pool's, its session settings included), each statement given up after
    /// `statement_timeout` (the server's setting) and a margin. Nothing connects until the
    /// first lookup; the task ends with the last handle.
    pub fn start(options: PgConnectOptions, statement_timeout: Duration) -> Self {
        // Bounded: a full queue makes a lookup wait for room. An entry is a request waiting
        // for its answer (or one that gave up, skipped when its batch is made), so the
        // server's connection limit bounds it anyway.
        let (queue, waiting) = mpsc::channel(MAX_BATCH * 8);
        let counts = Arc::new(Counts::default());
        let route = Route {
            options,
            sql: lookup_sql().into(),
            deadline: statement_timeout + DEADLINE_MARGIN,
            unreachable: AtomicBool::new(false),
            spare: std::sync::Mutex::new(None),
        };
        tokio::spawn(dispatch(Arc::new(route), waiting, counts.clone()));
        Self { queue, counts }
    }

    /// The session whose token hash is `digest`, with its user.
    pub async fn find(&self, digest: String) -> Result<Found, DbErr> {
        let (reply, answer) = oneshot::channel();
        let gone = || DbErr::Custom("the session lookup task has stopped".into());
        self.queue.send((digest, reply)).await.map_err(|_| gone())?;
        // A dropped reply means the statement's task ended without answering (a panic).
        answer.await.map_err(|_| gone())?
    }

    /// Lookups asked (answered or failed), and statements sent for them.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.lookups.load(Ordering::Relaxed),
            self.counts.statements.load(Ordering::Relaxed),
        )
    }
}

/// A lookup connection (or room for one not opened yet) lent to one statement; it goes back
/// to the dispatcher when dropped, a panic included, so a slot is never lost.
struct Slot {
    link: Option<PgConnection>,
    free: mpsc::Sender<Option<PgConnection>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Never full: there are only IN_FLIGHT slots and the channel holds as many.
        let _ = self.free.try_send(self.link.take());
    }
}

/// Takes a free connection, then every lookup waiting (up to [`MAX_BATCH`]), and sends them
/// as one statement on a task of its own.
async fn dispatch(
    route: Arc<Route>,
    mut waiting: mpsc::Receiver<(String, Reply)>,
    counts: Arc<Counts>,
) {
    let (free, mut free_links) = mpsc::channel(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        let _ = free.try_send(None);
    }
    loop {
        // The connection first: while every one is busy the lookups pile up in the queue, and
        // the next statement takes them all.
        let Some(link) = free_links.recv().await else {
            return;
        };
        let slot = Slot {
            link,
            free: free.clone(),
        };
        let mut batch = Vec::new();
        while batch.is_empty() {
            let Some(first) = waiting.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // A request that gave up (its client went, its deadline passed) needs no answer.
            batch.retain(|(_, reply)| !reply.is_closed());
        }
        let (route, counts) = (route.clone(), counts.clone());
        tokio::spawn(async move {
            let mut slot = slot;
            answer(&mut slot, &route, batch, &counts).await;
        });
    }
}

/// The join `find_also_related` sends, with the token hashes as one array parameter; rows are
/// decoded by sea-orm as that query's would be.
fn lookup_sql() -> String {
    // `= ANY($1)`: one statement whatever the batch's size, an array rather than a list of
    // parameters.
    session::Entity::find()
        .find_also_related(user::Entity)
        .filter(
            Expr::col((session::Entity, session::Column::TokenHash))
                .eq(PgFunc::any(Expr::cust("$1"))),
        )
        .build(DbBackend::Postgres)
        .sql
}

async fn answer(slot: &mut Slot, route: &Arc<Route>, batch: Vec<(String, Reply)>, counts: &Counts) {
    let mut digests: Vec<&str> = batch.iter().map(|(d, _)| d.as_str()).collect();
    digests.sort_unstable();
    digests.dedup();
    let rows = query(slot, route, &digests).await;
    counts.statements.fetch_add(1, Ordering::Relaxed);
    counts
        .lookups
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    match rows {
        Ok(rows) => {
            let found: HashMap<String, (session::Model, Option<user::Model>)> = rows
                .into_iter()
                .map(|(s, u)| (s.token_hash.clone(), (s, u)))
                .collect();
            for (digest, reply) in batch {
                // The receiver may have gone (its request was cancelled): nothing to do.
                let _ = reply.send(Ok(found.get(&digest).cloned()));
            }
        }
        Err(e) => {
            // DbErr is not Clone: each waiter gets the message (an internal error either way).
            let message = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(DbErr::Custom(message.clone())));
            }
        }
    }
}

/// Runs the lookup on the slot's connection, opening one if it has none. A connection that
/// fails is closed (never reused after an error); when a connection kept from an earlier
/// statement turns out lost (it died idle, in a restart or a failover), the lookup is sent
/// once more on a new one. Only then: a statement timeout or an overloaded server is not
/// sent twice. When a new connection cannot be opened, the lookup fails, and so does every
/// one after it at once, until a background attempt every [`RETRY_PAUSE`] opens one.
async fn query(
    slot: &mut Slot,
    route: &Arc<Route>,
    digests: &[&str],
) -> Result<Vec<(session::Model, Option<user::Model>)>, DbErr> {
    let mut kept = slot.link.is_some();
    loop {
        let spare = || route.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut link = match slot.link.take() {
            Some(link) => link,
            None if route.unreachable.load(Ordering::Acquire) => {
                return Err(DbErr::Custom(
                    "PostgreSQL could not be reached for the session lookup; retrying in the background"
                        .into(),
                ));
            }
            None => match spare() {
                Some(link) => {
                    // Opened by `reconnect`, maybe a while ago: as good as a kept one.
                    kept = true;
                    link
                }
                None => match connect(route).await {
                    Ok(link) => link,
                    Err(e) => {
                        if !route.unreachable.swap(true, Ordering::AcqRel) {
                            tracing::error!(error = %e, "the session lookup cannot reach PostgreSQL; lookups fail at once until a connection opens");
                            tokio::spawn(reconnect(route.clone()));
                        }
                        return Err(e);
                    }
                },
            },
        };
        // Built by sea-orm from constants (`lookup_sql`): no input of anyone's in it.
        let statement = sqlx::query(sqlx::AssertSqlSafe(route.sql.clone())).bind(digests);
        let Ok(done) = tokio::time::timeout(route.deadline, statement.fetch_all(&mut link)).await
        else {
            return Err(DbErr::Custom(format!(
                "the session lookup had no answer within {:?}",
                route.deadline
            )));
        };
        match done {
            Ok(rows) => {
                slot.link = Some(link);
                return rows
                    .into_iter()
                    .map(|row| {
                        SelectTwoModel::<session::Model, user::Model>::from_raw_query_result(
                            QueryResult::from(row),
                        )
                    })
                    .collect();
            }
            Err(e) if kept && lost(&e) => kept = false,
            Err(e) => return Err(DbErr::Custom(format!("the session lookup: {e}"))),
        }
    }
}

/// A new lookup connection, or why none could be opened within [`CONNECT_TIMEOUT`].
async fn connect(route: &Route) -> Result<PgConnection, DbErr> {
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&route.options))
        .await
        .map_err(|_| DbErr::Custom("connecting for the session lookup timed out".into()))?
        .map_err(|e| DbErr::Custom(format!("connecting for the session lookup: {e}")))
}

/// Tries to open a connection every [`RETRY_PAUSE`] until one opens, leaves it for the next
/// statement and lets lookups through again. One runs at a time (`unreachable` is set by the
/// failure that starts it and cleared only here).
async fn reconnect(route: Arc<Route>) {
    loop {
        tokio::time::sleep(RETRY_PAUSE).await;
        if let Ok(link) = connect(&route).await {
            *route.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
            route.unreachable.store(false, Ordering::Release);
            tracing::info!("the session lookup reaches PostgreSQL again");
            return;
        }
    }
}

/// The connection itself failed: closed, reset, or ended by the server (class 08, connection
/// exception; 57P01–57P03, shut down or terminated by an administrator).
fn lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lookup_is_the_join_by_token_hash_with_one_array_parameter() {
        let sql = super::lookup_sql();
        assert!(
            sql.ends_with(r#"WHERE "sessions"."token_hash" = ANY($1)"#),
            "{sql}"
        );
        assert!(sql.contains(r#"LEFT JOIN "users""#), "{sql}");
    }
}
