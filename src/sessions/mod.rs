//! Sessions: opaque bearer tokens, stored only as a SHA-256, with an idle and an absolute
//! expiry, revocable one by one or all at once.
//!
//! Knows the `users` table only to check that a session's user is still active; the rules
//! about who may log in live in `accounts`.

/// The token lookup on PostgreSQL: lookups asked together share one statement.
pub mod batched;
/// The token lookup on a SQLite file, on the calling thread (sqlx answers when it cannot).
pub mod sqlite_lookup;
/// The token: 256 bits from the OS, URL-safe text, hashed at rest.
mod token;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, LockType, Query, QueryStatementBuilder};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QueryResult, Statement,
};
use uuid::Uuid;

pub use token::Token;

use crate::entity::{session, user};

/// `last_seen_at` is written at most this often per session: a request does not cost a
/// write, and the idle expiry is exact to within this much.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest `User-Agent` kept with a session, in bytes (cut at a character boundary).
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends a session not used for this long (Django's `SESSION_COOKIE_AGE`: 14 days).
    pub idle_ttl: Duration,
    /// Ends every session this long after login, used or not.
    pub max_ttl: Duration,
    /// Sessions one user may hold; a login past it ends the user's oldest sessions.
    pub max_per_user: u32,
}

/// A session as callers see it (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// 1: password; 2: password and a second factor.
    pub aal: i16,
    /// Waiting for the second step (`verifySecondFactor`): nothing else is allowed.
    pub mfa_pending: bool,
}

impl From<session::Model> for Session {
    fn from(m: session::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            created_at: m.created_at,
            last_seen_at: m.last_seen_at,
            expires_at: m.expires_at,
            ip: m.ip,
            user_agent: m.user_agent,
            aal: m.aal,
            mfa_pending: m.mfa_pending,
        }
    }
}

/// A session just created by [`Sessions::create_for_login`], with its token (shown to the
/// client once, never stored).
#[derive(Debug)]
pub struct NewSession {
    pub token: Token,
    pub session: Session,
    /// The user had `max_per_user` sessions or more besides this one: once the login has
    /// committed, call [`Sessions::end_oldest_beyond_cap`].
    pub over_cap: bool,
}

/// The session a login's insert (built, not yet run) creates.
struct LoginDraft {
    token: Token,
    row: session::Model,
    cap: u32,
    /// When the insert decides whether the session waits for a second factor: the expiry it
    /// then has.
    challenge_expiry: Option<DateTime<Utc>>,
}

impl LoginDraft {
    /// The session, from the row the insert returned (the count of the user's other
    /// sessions, then `mfa_pending`).
    fn finish(self, returned: &QueryResult) -> Result<NewSession, DbErr> {
        let others: i64 = returned.try_get_by_index(0)?;
        let mut row = self.row;
        if let Some(expiry) = self.challenge_expiry {
            row.mfa_pending = returned.try_get_by_index(1)?;
            if row.mfa_pending {
                row.expires_at = expiry;
            }
        }
        Ok(NewSession {
            token: self.token,
            session: row.into(),
            over_cap: others >= i64::from(self.cap),
        })
    }
}

/// A session waiting for its second step, created at `created_at`, expires `ttl` later.
fn challenge_expiry(created_at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    created_at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5))
}

/// A request's signed-in caller: a live session of an active user.
#[derive(Clone)]
pub struct Caller {
    pub session: Session,
    pub user: user::Model,
}

/// Ids only: the user row holds the password hash and personal data.
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user_id", &self.user.id)
            .field("session_id", &self.session.id)
            .finish()
    }
}

/// The session store. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    db: DatabaseConnection,
    policy: SessionPolicy,
    /// On a SQLite file: the direct lookup.
    direct: Option<std::sync::Arc<sqlite_lookup::Lookup>>,
    /// On PostgreSQL: the lookups in flight together share a statement.
    batched: Option<std::sync::Arc<batched::Batched>>,
}

impl Sessions {
    pub fn new(db: DatabaseConnection, policy: SessionPolicy) -> Self {
        Self {
            db,
            policy,
            direct: None,
            batched: None,
        }
    }

    /// Resolves tokens with [`sqlite_lookup::Lookup`] first (a SQLite database file).
    pub fn with_direct_lookup(mut self, lookup: sqlite_lookup::Lookup) -> Self {
        self.direct = Some(std::sync::Arc::new(lookup));
        self
    }

    /// Resolves tokens with [`batched::Batched`] (PostgreSQL, over connections opened with
    /// `options`, whose `statement_timeout` is given): concurrent lookups share a statement.
    pub fn with_batched_lookup(
        mut self,
        options: sea_orm::sqlx::postgres::PgConnectOptions,
        statement_timeout: Duration,
    ) -> Self {
        self.batched = Some(std::sync::Arc::new(batched::Batched::start(
            options,
            statement_timeout,
        )));
        self
    }

    /// Lookups the batched lookup answered, and the statements it sent for them.
    pub fn batched_lookups(&self) -> (u64, u64) {
        self.batched.as_ref().map_or((0, 0), |b| b.counts())
    }

    /// The database the sessions live in (for what the auth seam reads beside them).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// How many tokens the direct SQLite lookup has resolved (found or not).
    pub fn direct_lookups(&self) -> u64 {
        self.direct.as_ref().map_or(0, |d| d.answered().0)
    }

    /// The direct SQLite reader, on a SQLite file (a login's account lookup uses it too).
    pub fn direct_reader(&self) -> Option<&sqlite_lookup::Lookup> {
        self.direct.as_deref()
    }

    /// Starts a session for `user_id` if the user is still active and still has
    /// `password_hash` — the hash the login just verified — and returns the token (shown to
    /// the client once, never stored) and the session; `None` when the user changed in the
    /// meantime (a password change, a deactivation), and then nothing is written.
    ///
    /// One statement, `INSERT INTO sessions … SELECT … FROM users WHERE …` (with
    /// `FOR NO KEY UPDATE` on PostgreSQL, so it waits for and re-checks a concurrent change of the
    /// row; SQLite runs one writer at a time): the insert fires the trigger that stamps
    /// `users.last_login` (migration `m20261203_000001`), so a login needs no transaction
    /// of its own. Inside the caller's transaction when `conn` is one. On PostgreSQL that
    /// transaction commits asynchronously (see the comment inside). The statement also counts
    /// the user's other sessions, up to the cap, for [`NewSession::over_cap`].
    pub async fn create_for_login(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        password_hash: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<Option<NewSession>, DbErr> {
        let backend = conn.get_database_backend();
        let (insert, draft) =
            self.login_insert(backend, user_id, password_hash, ip, user_agent, None)?;
        let Some(returned) = conn.query_one_raw(insert).await? else {
            return Ok(None);
        };
        draft.finish(&returned).map(Some)
    }

    /// On SQLite, [`Sessions::create_for_login`] and what the login writes with it, in one
    /// round trip to sqlx's connection thread instead of one per statement (each hand-off
    /// wakes two threads on cores the hash keeps busy: docs/benchmarks-log.md, "Login on
    /// SQLite in three hand-offs"). The insert itself asks whether the user has a second
    /// factor (`mfa::FACTOR`): then the session waits for it and expires after
    /// `challenge_ttl`. `then(session_id)` gives the statements that follow in the same
    /// transaction, written with `?` parameters only; each must write nothing when no session
    /// `session_id` exists (the insert found the user changed). Answers the session and how
    /// many rows those statements returned. SQLite runs one writer at a time, so asking in
    /// the insert sees what asking after it would; PostgreSQL asks after it
    /// (`mfa::required`), for a confirmation the insert may have waited for.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_for_login_with(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        password_hash: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        challenge_ttl: Duration,
        then: impl FnOnce(Uuid) -> Result<Vec<Statement>, DbErr>,
    ) -> Result<Option<(NewSession, usize)>, DbErr> {
        let backend = conn.get_database_backend();
        if backend != DbBackend::Sqlite {
            return Err(DbErr::Custom(
                "create_for_login_with is SQLite's".to_owned(),
            ));
        }
        let (insert, draft) = self.login_insert(
            backend,
            user_id,
            password_hash,
            ip,
            user_agent,
            Some(challenge_ttl),
        )?;
        // sqlx-sqlite steps every statement of one query string, numbering the `?`
        // parameters on from one statement to the next: one hand-off for all of them.
        let mut sql = insert.sql;
        let mut values = insert.values.map(|v| v.0).unwrap_or_default();
        for statement in then(draft.row.id)? {
            sql.push_str(";\n");
            sql.push_str(&statement.sql);
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        // The insert's row comes first; without it nothing else wrote either.
        let mut rows = rows.into_iter();
        let Some(returned) = rows.next() else {
            return Ok(None);
        };
        Ok(Some((draft.finish(&returned)?, rows.count())))
    }

    /// The statement behind [`Sessions::create_for_login`]; with `ask_factor`, the insert
    /// also decides whether the session waits for a second factor (SQLite's
    /// [`Sessions::create_for_login_with`]).
    fn login_insert(
        &self,
        backend: DbBackend,
        user_id: Uuid,
        password_hash: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        ask_factor: Option<Duration>,
    ) -> Result<(Statement, LoginDraft), DbErr> {
        let token = Token::generate().map_err(|e| DbErr::Custom(format!("OS RNG: {e}")))?;
        let now = now();
        let expires_at = self.expiry(now, now);
        let row = session::Model {
            id: Uuid::now_v7(),
            user_id,
            token_hash: token.digest(),
            created_at: now,
            last_seen_at: now,
            expires_at,
            ip: ip.map(|ip| ip.to_string()),
            user_agent: user_agent.and_then(clean_user_agent),
            aal: 1,
            mfa_pending: false,
        };
        // With `ask_factor`, whether the session waits for a second factor is the user's
        // `crate::mfa::FACTOR`, read in this statement, and so is its expiry.
        let factor = || Expr::cust(crate::mfa::FACTOR.replace("$1", "\"users\".\"id\""));
        let (expires_at, mfa_pending): (Expr, Expr) = match ask_factor {
            None => (Expr::val(row.expires_at), Expr::val(row.mfa_pending)),
            Some(ttl) => (
                Expr::case(factor(), challenge_expiry(now, ttl))
                    .finally(row.expires_at)
                    .into(),
                factor(),
            ),
        };
        let mut values = Query::select()
            .expr(Expr::val(row.id))
            .column((user::Entity, user::Column::Id))
            .expr(Expr::val(row.token_hash.clone()))
            .expr(Expr::val(row.created_at))
            .expr(Expr::val(row.last_seen_at))
            .expr(expires_at)
            .expr(Expr::val(row.ip.clone()))
            .expr(Expr::val(row.user_agent.clone()))
            .expr(Expr::val(row.aal))
            .expr(mfa_pending)
            .from(user::Entity)
            .and_where(user::Column::Id.eq(user_id))
            .and_where(user::Column::PasswordHash.eq(password_hash))
            .and_where(user::Column::IsActive.eq(true))
            // PostgreSQL only (sea-query writes no lock clause for SQLite). The weakest lock
            // that orders this login with a change of the hash or of `is_active`; it does
            // not block the key-share locks of rows that merely reference the user.
            .lock(LockType::NoKeyUpdate)
            .to_owned();
        if backend == DbBackend::Postgres {
            // Asynchronous commit for this transaction only (`is_local`): PostgreSQL answers
            // without waiting for the WAL flush, which is most of its CPU for a login
            // (docs/benchmarks-log.md, "Login, 2026-12-04: PostgreSQL commits a login
            // asynchronously"). What a database crash can cost is the logins of its last
            // fraction of a second: their tokens stop working and those users sign in again. Revocations, password changes and registrations
            // keep synchronous commit; a login inside a caller's transaction (the hash
            // upgrade) makes that transaction asynchronous, and losing the upgrade leaves the
            // old hash, which still verifies. (SQLite's WAL with `synchronous=NORMAL` makes a
            // like trade for every commit: a power loss may forget the last ones.)
            values.and_where(Expr::cust(
                "set_config('synchronous_commit', 'off', true) IS NOT NULL",
            ));
        }
        // The user's other sessions are counted in the same statement, no further than the
        // cap: a login costs a second statement only for a user past it, and the count never
        // reads more than `max_per_user` index entries. (The new row is left out by its id:
        // SQLite's subquery would see it, PostgreSQL's would not.)
        let cap = self.policy.max_per_user;
        let up_to_cap = Query::select()
            .expr(Expr::val(1))
            .from(session::Entity)
            .and_where(session::Column::UserId.eq(user_id))
            .and_where(session::Column::Id.ne(row.id))
            .limit(u64::from(cap))
            .to_owned();
        let count_mine = Query::select()
            .expr(Expr::cust("COUNT(*)"))
            .from_subquery(up_to_cap, "up_to_cap")
            .to_owned();
        let count_mine = Expr::SubQuery(None, Box::new(count_mine.into_sub_query_statement()));
        let insert = Query::insert()
            .into_table(session::Entity)
            .columns([
                session::Column::Id,
                session::Column::UserId,
                session::Column::TokenHash,
                session::Column::CreatedAt,
                session::Column::LastSeenAt,
                session::Column::ExpiresAt,
                session::Column::Ip,
                session::Column::UserAgent,
                session::Column::Aal,
                session::Column::MfaPending,
            ])
            .select_from(values)
            .map_err(|e| DbErr::Custom(format!("session insert: {e}")))?
            .returning(
                Query::returning().exprs([count_mine, Expr::col(session::Column::MfaPending)]),
            )
            .to_owned();
        let draft = LoginDraft {
            token,
            row,
            cap,
            challenge_expiry: ask_factor.map(|ttl| challenge_expiry(now, ttl)),
        };
        Ok((backend.build(&insert), draft))
    }

    /// Ends the oldest sessions of a user who went past the cap with `new`, so that `new` and
    /// the newest older ones make the cap less a tenth of it (rounded down). Only sessions
    /// that started before `new` go: concurrent logins never end each other's brand-new
    /// sessions (the later one trims the earlier). Call it after the login committed, outside
    /// any transaction: best effort, a failure is logged and the next login past the cap
    /// trims again. Without a cap a client with the password could fill the table one login
    /// (one hash) at a time, and `sessions` would answer with all of it. The tenth of slack is
    /// for the clients that go past the cap — scripts that log in for every job and never
    /// log out: they pay this statement once every tenth of the cap, not at every login
    /// (docs/benchmarks-log.md, "Login, 2026-12-04"). Concurrent logins of one user near the cap each
    /// count without the others, so the cap can be passed by that many until the next login.
    pub async fn end_oldest_beyond_cap(&self, new: &Session) {
        // `ExprTrait` gives `or`/`and` on column conditions; scoped here, its `max`/`min`
        // would shadow the integer and date ones elsewhere in this module.
        use sea_orm::sea_query::ExprTrait as _;
        let cap = std::cmp::max(self.policy.max_per_user, 1);
        let keep_older = u64::from(cap - cap / 10 - 1);
        let older = || {
            session::Column::CreatedAt
                .lt(new.created_at)
                .or(session::Column::CreatedAt
                    .eq(new.created_at)
                    .and(session::Column::Id.lt(new.id)))
        };
        let newest_older = Query::select()
            .column(session::Column::Id)
            .from(session::Entity)
            .and_where(session::Column::UserId.eq(new.user_id))
            .and_where(older())
            .order_by(session::Column::CreatedAt, sea_orm::Order::Desc)
            .order_by(session::Column::Id, sea_orm::Order::Desc)
            .limit(keep_older)
            .to_owned();
        let trimmed = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(new.user_id))
            .filter(older())
            .filter(session::Column::Id.not_in_subquery(newest_older))
            .exec(&self.db)
            .await;
        if let Err(error) = trimmed {
            tracing::error!(user_id = %new.user_id, %error, "could not end sessions past the cap");
        }
    }

    /// The caller a token stands for, or `None` when the token is unknown, expired, revoked
    /// or its user deactivated. Refreshes `last_seen_at` (and with it the idle expiry) at
    /// most once per [`TOUCH_INTERVAL`].
    pub async fn authenticate(&self, token: &Token) -> Result<Option<Caller>, DbErr> {
        let now = now();
        let digest = token.digest();
        // One query for the session and its user: every signed-in request and every
        // `/auth/check` pays it, so it is a join by the unique token index, not two trips;
        // on a SQLite file, without sqlx's hand-offs when it can.
        let direct = self
            .direct
            .as_ref()
            .and_then(|d| Some(d.find(&digest)?.map(|(s, u)| (s, Some(u)))));
        let found = match (direct, &self.batched) {
            (Some(found), _) => found,
            (None, Some(batched)) => batched.find(digest).await?,
            (None, None) => {
                session::Entity::find()
                    .find_also_related(user::Entity)
                    .filter(session::Column::TokenHash.eq(digest))
                    .one(&self.db)
                    .await?
            }
        };
        let Some((found, Some(user))) = found else {
            return Ok(None);
        };
        if found.expires_at <= now || !user.is_active {
            return Ok(None);
        }
        let mut session: Session = found.into();
        let stale = now.signed_duration_since(session.last_seen_at);
        // A session waiting for its second step keeps its short expiry: use never extends it.
        if !session.mfa_pending && stale.to_std().is_ok_and(|d| d >= TOUCH_INTERVAL) {
            let expires_at = self.expiry(session.created_at, now);
            // Conditional on the value read: of concurrent requests, one writes.
            session::Entity::update_many()
                .col_expr(session::Column::LastSeenAt, Expr::value(now))
                .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
                .filter(session::Column::Id.eq(session.id))
                .filter(session::Column::LastSeenAt.eq(session.last_seen_at))
                .exec(&self.db)
                .await?;
            session.last_seen_at = now;
            session.expires_at = expires_at;
        }
        Ok(Some(Caller { session, user }))
    }

    /// The user's live sessions, newest first.
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<Session>, DbErr> {
        Ok(session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::ExpiresAt.gt(now()))
            .order_by_desc(session::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Session::from)
            .collect())
    }

    /// Ends one of the user's sessions (by the user: `logout`, `revokeSession`), recorded in
    /// the audit log in the same transaction; `false` when `id` is not one of theirs.
    pub async fn revoke(
        &self,
        user_id: Uuid,
        id: Uuid,
        origin: &crate::audit::Origin,
    ) -> Result<bool, DbErr> {
        // Answered even past the request deadline: never "timed out" about a done delete.
        crate::deadline::commit_started();
        let txn = sea_orm::TransactionTrait::begin(&self.db).await?;
        let done = session::Entity::delete_many()
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        crate::audit::record(
            &txn,
            &crate::audit::Who::user(user_id),
            "session.ended",
            Some(user_id),
            origin,
            Some(serde_json::json!({ "session": id })),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            user_id,
            crate::webhooks::events::Ended::One(id),
            done.rows_affected,
            "logout",
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The second step of a login succeeded: the waiting session `id` gets a **new** token
    /// (the one that knew only the password stops working: no fixation), assurance level 2
    /// and the ordinary expiry, inside the caller's transaction. `None` when the session is
    /// no longer waiting (ended, expired, or completed by a concurrent request).
    pub async fn complete_second_step(
        &self,
        conn: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<Option<(Token, Session)>, DbErr> {
        let token = Token::generate().map_err(|e| DbErr::Custom(format!("OS RNG: {e}")))?;
        let now = now();
        let Some(found) = session::Entity::find_by_id(id)
            .filter(session::Column::MfaPending.eq(true))
            .filter(session::Column::ExpiresAt.gt(now))
            .one(conn)
            .await?
        else {
            return Ok(None);
        };
        let expires_at = self.expiry(found.created_at, now);
        let done = session::Entity::update_many()
            .col_expr(session::Column::TokenHash, Expr::value(token.digest()))
            .col_expr(session::Column::Aal, Expr::value(2i16))
            .col_expr(session::Column::MfaPending, Expr::value(false))
            .col_expr(session::Column::LastSeenAt, Expr::value(now))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::MfaPending.eq(true))
            .exec(conn)
            .await?;
        if done.rows_affected != 1 {
            return Ok(None);
        }
        let session = Session {
            last_seen_at: now,
            expires_at,
            aal: 2,
            mfa_pending: false,
            ..found.into()
        };
        Ok(Some((token, session)))
    }

    /// Turns a session just created into one waiting for its second step (`ttl` to live),
    /// inside the login's transaction.
    pub async fn make_pending(
        &self,
        conn: &impl ConnectionTrait,
        session: &mut Session,
        ttl: Duration,
    ) -> Result<(), DbErr> {
        let expires_at = challenge_expiry(session.created_at, ttl);
        session::Entity::update_many()
            .col_expr(session::Column::MfaPending, Expr::value(true))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(session.id))
            .exec(conn)
            .await?;
        session.mfa_pending = true;
        session.expires_at = expires_at;
        Ok(())
    }

    /// Raises a live session to assurance level 2 (its user just proved a second factor while
    /// signed in: enrolment), inside the caller's transaction.
    pub async fn raise_to_aal2(&self, conn: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
        session::Entity::update_many()
            .col_expr(session::Column::Aal, Expr::value(2i16))
            .filter(session::Column::Id.eq(id))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Ends every session of the user but `keep` (all of them when `keep` is `None`), inside
    /// the caller's transaction; returns how many were live.
    pub async fn revoke_all(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        keep: Option<Uuid>,
    ) -> Result<u64, DbErr> {
        let delete = || {
            let mut query =
                session::Entity::delete_many().filter(session::Column::UserId.eq(user_id));
            if let Some(keep) = keep {
                query = query.filter(session::Column::Id.ne(keep));
            }
            query
        };
        let live = delete()
            .filter(session::Column::ExpiresAt.gt(now()))
            .exec(conn)
            .await?
            .rows_affected;
        // The expired ones too: nothing of the user's old sessions should outlive this.
        delete().exec(conn).await?;
        Ok(live)
    }

    /// Deletes expired sessions (they are already refused; this reclaims the rows).
    pub async fn purge_expired(&self) -> Result<u64, DbErr> {
        let done = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(now()))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected)
    }

    /// The earlier of the idle and the absolute expiry.
    fn expiry(&self, created_at: DateTime<Utc>, last_seen_at: DateTime<Utc>) -> DateTime<Utc> {
        let add = |t: DateTime<Utc>, d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| t.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        add(last_seen_at, self.policy.idle_ttl).min(add(created_at, self.policy.max_ttl))
    }
}

/// Both databases store microseconds; truncate so what is answered equals the row.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A `User-Agent` worth keeping: control characters dropped, at most
/// [`MAX_USER_AGENT_BYTES`], `None` when nothing is left.
fn clean_user_agent(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_USER_AGENT_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim().to_owned();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cleaned_and_bounded() {
        assert_eq!(
            clean_user_agent("curl/8\r\nX: y").as_deref(),
            Some("curl/8X: y")
        );
        assert_eq!(clean_user_agent("  \t "), None);
        let long = "é".repeat(500);
        let kept = clean_user_agent(&long).unwrap();
        assert!(kept.len() <= MAX_USER_AGENT_BYTES && kept.chars().all(|c| c == 'é'));
    }
}
