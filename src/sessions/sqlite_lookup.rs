//! The session lookup on a SQLite file without sqlx: every signed-in request and every
//! `/auth/check` resolves a token, so this one statement is the forward-auth check's whole
//! cost. The same reader finds the account a login names (every login asks it once, before
//! its hash: a hand-off fewer on the path whose CPU outside the hash is issue 32's margin).
//!
//! Why not sqlx: sqlx-sqlite runs each connection on a thread of its own and hands the query
//! and every row across channels, and its pool takes a permit per query. For a one-row point
//! lookup the hand-offs cost several times the lookup itself (docs/benchmarks-log.md,
//! "Forward auth, 2026-12-07"). This reader opens read-only connections of its own to the
//! same file, keeps the statement prepared, and steps it on the calling thread: WAL lets a
//! reader see every committed write at once (a logout is seen by the very next check) and
//! never wait for the writer. Nothing is cached between calls.
//!
//! sqlx stays the reference: anything unexpected — every connection in use, `SQLITE_BUSY`,
//! an error, a value in a form this decoder does not know — answers `None`, and the caller
//! asks sqlx instead. A test holds the two paths to the same answer.

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use uuid::Uuid;

use crate::entity::{session, user};

/// The session and its user by the token's digest: one indexed lookup (the unique
/// `sessions.token_hash` index, then `users`' primary key). The columns in the order
/// [`decode_session`] and [`decode_user`] read them.
const SQL: &str = "SELECT s.id, s.user_id, s.token_hash, s.created_at, s.last_seen_at, \
    s.expires_at, s.ip, s.user_agent, u.id, u.username, u.username_canonical, u.email, \
    u.email_canonical, u.username_skeleton, u.username_skeleton_lower, \
    u.username_skeleton_upper, u.password_hash, u.date_joined, u.is_active, u.last_login, \
    u.legacy_id, u.is_staff, u.is_superuser, u.email_verified, s.aal, s.mfa_pending \
    FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

/// The accounts a login identifier may name: the canonical username or the canonical email
/// (the query `AccountService::find_for_login` asks through sea-orm, same columns, same
/// limit). The columns in the order [`decode_user`] reads them, from 0.
const LOGIN_SQL: &str = "SELECT id, username, username_canonical, email, email_canonical, \
    username_skeleton, username_skeleton_lower, username_skeleton_upper, password_hash, \
    date_joined, is_active, last_login, legacy_id, is_staff, is_superuser, email_verified \
    FROM users WHERE username_canonical = ?1 OR email_canonical = ?2 LIMIT 2";

/// Where [`SQL`]'s user columns start.
const SESSION_USER_COLUMNS: c_int = 8;

/// Read-only connections to the database file, each with the statements prepared.
pub struct Lookup {
    conns: Vec<Mutex<Conn>>,
    /// Tokens and login identifiers this reader answered (found or not), for tests.
    answered: [std::sync::atomic::AtomicU64; 2],
    path: std::path::PathBuf,
    /// The file's device and inode when opened: a file put in its place (a restore by
    /// `mv`) is not the one these connections read, so sqlx answers from then on.
    identity: (u64, u64),
}

/// Resets the statement when dropped, on every exit, unwinding included: ends the read
/// transaction (which would otherwise hold back WAL checkpoints) and drops the binding.
struct Reset(*mut ffi::sqlite3_stmt);

impl Drop for Reset {
    fn drop(&mut self) {
        // SAFETY: the statement is alive (its connection is locked by the caller).
        unsafe {
            ffi::sqlite3_reset(self.0);
            ffi::sqlite3_clear_bindings(self.0);
        }
    }
}

struct Conn {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    login: *mut ffi::sqlite3_stmt,
}

// SAFETY: a connection opened with SQLITE_OPEN_NOMUTEX may be used from any thread, one at a
// time; each `Conn` is only ever reached through its `Mutex`.
unsafe impl Send for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: both handles came from SQLite and are released exactly once, the statement
        // before its connection.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
            ffi::sqlite3_finalize(self.login);
            ffi::sqlite3_close(self.db);
        }
    }
}

impl Conn {
    fn open(path: &CStr) -> Option<Self> {
        let mut db = std::ptr::null_mut();
        // SAFETY: `path` is a NUL-terminated string; `db` receives a handle (possibly one to
        // close on failure, which Drop does).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            )
        };
        let mut conn = Self {
            db,
            stmt: std::ptr::null_mut(),
            login: std::ptr::null_mut(),
        };
        if rc != ffi::SQLITE_OK || db.is_null() {
            return None;
        }
        conn.stmt = prepare(db, SQL)?;
        conn.login = prepare(db, LOGIN_SQL)?;
        Some(conn)
    }

    /// Steps the statement for `digest`. `None`: ask sqlx.
    fn find(&mut self, digest: &str) -> Option<Option<(session::Model, user::Model)>> {
        let stmt = self.stmt;
        let _reset = Reset(stmt);
        // SAFETY: `stmt` is a prepared statement of this connection, used by this thread
        // alone (the caller holds the mutex). `_reset` resets the statement on every exit.
        unsafe {
            bind(stmt, 1, digest)?;
            match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_ROW => Some(Some((
                    decode_session(stmt)?,
                    decode_user(stmt, SESSION_USER_COLUMNS)?,
                ))),
                ffi::SQLITE_DONE => Some(None),
                _ => None,
            }
        }
    }

    /// Steps [`LOGIN_SQL`] for the two canonical forms: every row, at most two. `None`: ask
    /// sqlx.
    fn find_login(&mut self, username: &str, email: &str) -> Option<Vec<user::Model>> {
        let stmt = self.login;
        let _reset = Reset(stmt);
        let mut rows = Vec::with_capacity(2);
        // SAFETY: as in `find`.
        unsafe {
            bind(stmt, 1, username)?;
            bind(stmt, 2, email)?;
            loop {
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_ROW => rows.push(decode_user(stmt, 0)?),
                    ffi::SQLITE_DONE => return Some(rows),
                    _ => return None,
                }
            }
        }
    }
}

/// `sql` prepared once for the connection's life.
fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Option<*mut ffi::sqlite3_stmt> {
    let sql = CString::new(sql).ok()?;
    let mut stmt = std::ptr::null_mut();
    // SAFETY: `db` is open; `sql` outlives the call; `stmt` receives the statement.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            db,
            sql.as_ptr(),
            -1,
            ffi::SQLITE_PREPARE_PERSISTENT,
            &mut stmt,
            std::ptr::null_mut(),
        )
    };
    (rc == ffi::SQLITE_OK && !stmt.is_null()).then_some(stmt)
}

/// Binds `value` to parameter `index`; SQLite copies it (SQLITE_TRANSIENT).
///
/// # Safety
/// `stmt` is a live statement used by this thread alone, and reset before its next use.
unsafe fn bind(stmt: *mut ffi::sqlite3_stmt, index: c_int, value: &str) -> Option<()> {
    let len = c_int::try_from(value.len()).ok()?;
    // SAFETY: the caller's; `value` is read during the call only.
    let bound = unsafe {
        ffi::sqlite3_bind_text(
            stmt,
            index,
            value.as_ptr().cast(),
            len,
            ffi::SQLITE_TRANSIENT(),
        )
    };
    (bound == ffi::SQLITE_OK).then_some(())
}

impl Lookup {
    /// `connections` read-only connections to `file`; `None` if they cannot be opened (the
    /// server then uses sqlx alone).
    pub fn open(file: &Path, connections: usize) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt as _;
        // SAFETY: no preconditions. A SQLite built single-threaded could not be used from
        // the runtime's threads at all.
        if unsafe { ffi::sqlite3_threadsafe() } == 0 {
            return None;
        }
        let identity = identity(file)?;
        let path = CString::new(file.as_os_str().as_bytes()).ok()?;
        let conns = (0..connections.max(1))
            .map(|_| Conn::open(&path).map(Mutex::new))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            conns,
            answered: Default::default(),
            path: file.to_owned(),
            identity,
        })
    }

    /// The session and user for `digest`: `Some(None)` when there is none, `None` when this
    /// reader cannot answer (ask sqlx).
    pub fn find(&self, digest: &str) -> Option<Option<(session::Model, user::Model)>> {
        let found = self.with_conn(|conn| conn.find(digest))?;
        self.answered[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(found)
    }

    /// The accounts whose canonical username is `username` or canonical email is `email`,
    /// at most two, in no particular order (the caller picks); `None` when this reader
    /// cannot answer (ask sqlx).
    pub fn find_login(&self, username: &str, email: &str) -> Option<Vec<user::Model>> {
        let found = self.with_conn(|conn| conn.find_login(username, email))?;
        self.answered[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(found)
    }

    /// How many tokens, and how many login identifiers, this reader has answered.
    pub fn answered(&self) -> (u64, u64) {
        let [tokens, logins] = &self.answered;
        (
            tokens.load(std::sync::atomic::Ordering::Relaxed),
            logins.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// `ask` on a free connection of the file still in place; `None` if there is none.
    fn with_conn<T>(&self, ask: impl FnOnce(&mut Conn) -> Option<T>) -> Option<T> {
        if identity(&self.path) != Some(self.identity) {
            return None;
        }
        // A free connection, or none: a request never waits here for another's lookup. A
        // lock poisoned by a panic holds a statement `Reset` has already reset: usable.
        self.conns
            .iter()
            .find_map(|c| match c.try_lock() {
                Ok(conn) => Some(conn),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            })
            .and_then(|mut conn| ask(&mut conn))
    }
}

/// A file's device and inode.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The row a statement has just stepped to, each column read as sqlx would decode it;
/// `None` for anything this decoder does not know.
struct Row(*mut ffi::sqlite3_stmt);

// SAFETY (for every method below): the caller of `decode_*` promises `stmt` has just returned
// `SQLITE_ROW` and the indexes are within its columns; the pointers SQLite returns stay valid
// until the next step, reset or type conversion of that column, and each is copied out
// before the next call on the same column.
impl Row {
    fn null(&self, i: c_int) -> bool {
        unsafe { ffi::sqlite3_column_type(self.0, i) == ffi::SQLITE_NULL }
    }

    fn text(&self, i: c_int) -> Option<String> {
        unsafe {
            if ffi::sqlite3_column_type(self.0, i) != ffi::SQLITE_TEXT {
                return None;
            }
            let ptr = ffi::sqlite3_column_text(self.0, i);
            let len = usize::try_from(ffi::sqlite3_column_bytes(self.0, i)).ok()?;
            if ptr.is_null() {
                return Some(String::new());
            }
            let bytes = std::slice::from_raw_parts(ptr, len);
            String::from_utf8(bytes.to_vec()).ok()
        }
    }

    fn opt_text(&self, i: c_int) -> Option<Option<String>> {
        if self.null(i) {
            Some(None)
        } else {
            self.text(i).map(Some)
        }
    }

    fn uuid(&self, i: c_int) -> Option<Uuid> {
        unsafe {
            if ffi::sqlite3_column_type(self.0, i) != ffi::SQLITE_BLOB {
                return None;
            }
            let ptr = ffi::sqlite3_column_blob(self.0, i).cast::<u8>();
            let len = usize::try_from(ffi::sqlite3_column_bytes(self.0, i)).ok()?;
            if ptr.is_null() || len != 16 {
                return None;
            }
            Uuid::from_slice(std::slice::from_raw_parts(ptr, len)).ok()
        }
    }

    fn int(&self, i: c_int) -> Option<i64> {
        unsafe {
            (ffi::sqlite3_column_type(self.0, i) == ffi::SQLITE_INTEGER)
                .then(|| ffi::sqlite3_column_int64(self.0, i))
        }
    }

    fn boolean(&self, i: c_int) -> Option<bool> {
        self.int(i).map(|v| v != 0)
    }

    /// sqlx writes RFC 3339 (`2026-12-07T03:13:49.125001+00:00`); anything else goes to
    /// sqlx, which reads more forms.
    fn time(&self, i: c_int) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.text(i)?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn opt_time(&self, i: c_int) -> Option<Option<DateTime<Utc>>> {
        if self.null(i) {
            Some(None)
        } else {
            self.time(i).map(Some)
        }
    }
}

/// The session of a [`SQL`] row; `None` for anything this decoder does not know.
///
/// # Safety
/// `stmt` has just returned `SQLITE_ROW` for [`SQL`].
unsafe fn decode_session(stmt: *mut ffi::sqlite3_stmt) -> Option<session::Model> {
    let row = Row(stmt);
    Some(session::Model {
        id: row.uuid(0)?,
        user_id: row.uuid(1)?,
        token_hash: row.text(2)?,
        created_at: row.time(3)?,
        last_seen_at: row.time(4)?,
        expires_at: row.time(5)?,
        ip: row.opt_text(6)?,
        user_agent: row.opt_text(7)?,
        aal: i16::try_from(row.int(24)?).ok()?,
        mfa_pending: row.boolean(25)?,
    })
}

/// The user whose 16 columns start at `first`, in [`LOGIN_SQL`]'s order; `None` for anything
/// this decoder does not know.
///
/// # Safety
/// `stmt` has just returned `SQLITE_ROW` for a statement with those columns there.
unsafe fn decode_user(stmt: *mut ffi::sqlite3_stmt, first: c_int) -> Option<user::Model> {
    let row = Row(stmt);
    let at = |i: c_int| first + i;
    Some(user::Model {
        id: row.uuid(at(0))?,
        username: row.text(at(1))?,
        username_canonical: row.text(at(2))?,
        email: row.text(at(3))?,
        email_canonical: row.text(at(4))?,
        username_skeleton: row.opt_text(at(5))?,
        username_skeleton_lower: row.opt_text(at(6))?,
        username_skeleton_upper: row.opt_text(at(7))?,
        password_hash: row.text(at(8))?,
        date_joined: row.time(at(9))?,
        is_active: row.boolean(at(10))?,
        last_login: row.opt_time(at(11))?,
        legacy_id: if row.null(at(12)) {
            None
        } else {
            Some(row.int(at(12))?)
        },
        is_staff: row.boolean(at(13))?,
        is_superuser: row.boolean(at(14))?,
        email_verified: row.boolean(at(15))?,
    })
}
