//! The session lookup on a SQLite file without sqlx: every signed-in request and every
//! `/auth/check` resolves a token, so this one statement is the forward-auth check's whole
//! cost.
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
/// [`decode`] reads them.
const SQL: &str = "SELECT s.id, s.user_id, s.token_hash, s.created_at, s.last_seen_at, \
    s.expires_at, s.ip, s.user_agent, u.id, u.username, u.username_canonical, u.email, \
    u.email_canonical, u.username_skeleton, u.username_skeleton_lower, \
    u.username_skeleton_upper, u.password_hash, u.date_joined, u.is_active, u.last_login, \
    u.legacy_id, u.is_staff, u.is_superuser, u.email_verified, s.aal, s.mfa_pending \
    FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

/// Read-only connections to the database file, each with the statement prepared.
pub struct Lookup {
    conns: Vec<Mutex<Conn>>,
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
        };
        if rc != ffi::SQLITE_OK || db.is_null() {
            return None;
        }
        let sql = CString::new(SQL).ok()?;
        // SAFETY: `db` is open; `sql` outlives the call; `stmt` receives the statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut conn.stmt,
                std::ptr::null_mut(),
            )
        };
        (rc == ffi::SQLITE_OK && !conn.stmt.is_null()).then_some(conn)
    }

    /// Steps the statement for `digest`. `None`: ask sqlx.
    fn find(&mut self, digest: &str) -> Option<Option<(session::Model, user::Model)>> {
        let stmt = self.stmt;
        let _reset = Reset(stmt);
        let len = c_int::try_from(digest.len()).ok()?;
        // SAFETY: `stmt` is a prepared statement of this connection, used by this thread
        // alone (the caller holds the mutex). The digest is copied by SQLite
        // (SQLITE_TRANSIENT). `_reset` resets the statement on every exit.
        unsafe {
            let bound = ffi::sqlite3_bind_text(
                stmt,
                1,
                digest.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            );
            if bound != ffi::SQLITE_OK {
                return None;
            }
            match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_ROW => decode(stmt).map(Some),
                ffi::SQLITE_DONE => Some(None),
                _ => None,
            }
        }
    }
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
            path: file.to_owned(),
            identity,
        })
    }

    /// The session and user for `digest`: `Some(None)` when there is none, `None` when this
    /// reader cannot answer (ask sqlx).
    pub fn find(&self, digest: &str) -> Option<Option<(session::Model, user::Model)>> {
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
            .and_then(|mut conn| conn.find(digest))
    }
}

/// A file's device and inode.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The row as sqlx would decode it; `None` for anything this decoder does not know.
///
/// # Safety
/// `stmt` has just returned `SQLITE_ROW` for [`SQL`].
unsafe fn decode(stmt: *mut ffi::sqlite3_stmt) -> Option<(session::Model, user::Model)> {
    // SAFETY (for every closure below): column indexes are within SQL's 26 columns; the
    // pointers SQLite returns stay valid until the next step, reset or type conversion of
    // that column, and each is copied out before the next call on the same column.
    let null = |i: c_int| unsafe { ffi::sqlite3_column_type(stmt, i) == ffi::SQLITE_NULL };
    let text = |i: c_int| -> Option<String> {
        unsafe {
            if ffi::sqlite3_column_type(stmt, i) != ffi::SQLITE_TEXT {
                return None;
            }
            let ptr = ffi::sqlite3_column_text(stmt, i);
            let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).ok()?;
            if ptr.is_null() {
                return Some(String::new());
            }
            let bytes = std::slice::from_raw_parts(ptr, len);
            String::from_utf8(bytes.to_vec()).ok()
        }
    };
    let opt_text = |i: c_int| {
        if null(i) {
            Some(None)
        } else {
            text(i).map(Some)
        }
    };
    let uuid = |i: c_int| -> Option<Uuid> {
        unsafe {
            if ffi::sqlite3_column_type(stmt, i) != ffi::SQLITE_BLOB {
                return None;
            }
            let ptr = ffi::sqlite3_column_blob(stmt, i).cast::<u8>();
            let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).ok()?;
            if ptr.is_null() || len != 16 {
                return None;
            }
            Uuid::from_slice(std::slice::from_raw_parts(ptr, len)).ok()
        }
    };
    let int = |i: c_int| -> Option<i64> {
        unsafe {
            (ffi::sqlite3_column_type(stmt, i) == ffi::SQLITE_INTEGER)
                .then(|| ffi::sqlite3_column_int64(stmt, i))
        }
    };
    let boolean = |i: c_int| int(i).map(|v| v != 0);
    // sqlx writes RFC 3339 (`2026-12-07T03:13:49.125001+00:00`); anything else goes to sqlx,
    // which reads more forms.
    let time = |i: c_int| -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&text(i)?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let opt_time = |i: c_int| {
        if null(i) {
            Some(None)
        } else {
            time(i).map(Some)
        }
    };
    let session = session::Model {
        id: uuid(0)?,
        user_id: uuid(1)?,
        token_hash: text(2)?,
        created_at: time(3)?,
        last_seen_at: time(4)?,
        expires_at: time(5)?,
        ip: opt_text(6)?,
        user_agent: opt_text(7)?,
        aal: i16::try_from(int(24)?).ok()?,
        mfa_pending: boolean(25)?,
    };
    let user = user::Model {
        id: uuid(8)?,
        username: text(9)?,
        username_canonical: text(10)?,
        email: text(11)?,
        email_canonical: text(12)?,
        username_skeleton: opt_text(13)?,
        username_skeleton_lower: opt_text(14)?,
        username_skeleton_upper: opt_text(15)?,
        password_hash: text(16)?,
        date_joined: time(17)?,
        is_active: boolean(18)?,
        last_login: opt_time(19)?,
        legacy_id: if null(20) { None } else { Some(int(20)?) },
        is_staff: boolean(21)?,
        is_superuser: boolean(22)?,
        email_verified: boolean(23)?,
    };
    Some((session, user))
}
