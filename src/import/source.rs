use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use serde::Deserialize;
use tokio::sync::mpsc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ImportError;
use super::perms::DjangoPerms;

/// One row of Django's `auth_user`, as roster keeps it (names, flags, dates, the hash as is).
#[derive(Debug, Clone)]
pub struct DjangoUser {
    pub legacy_id: i64,
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

/// Where rows come from.
pub enum Rows {
    /// `auth_user`, read page by page in primary-key order.
    Database { db: DatabaseConnection, after: i64 },
    /// A dumpdata file parsed on a blocking thread and handed over through a bounded
    /// channel: the file is never held in memory whole. Its groups, permissions and links
    /// (small beside the users) are collected as it goes and left in the slot once the
    /// whole file is read.
    Json(mpsc::Receiver<Result<DjangoUser, String>>, PermsSlot),
}

/// Where a dumpdata file's groups and permissions are left when the file has been read.
pub type PermsSlot = Arc<Mutex<Option<DjangoPerms>>>;

/// Whether `source` is a database URL (not a dumpdata file).
pub fn is_database(source: &str) -> bool {
    source.starts_with("sqlite:") || source.starts_with("postgres")
}

/// One connection to a Django database (read-only on SQLite).
pub async fn connect(source: &str) -> Result<DatabaseConnection, ImportError> {
    let url = if source.starts_with("sqlite:") && !source.contains('?') {
        // Read-only: the import never writes to the Django database.
        format!("{source}?mode=ro")
    } else {
        source.to_owned()
    };
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|e| ImportError::Source(e.to_string()))
}

/// Opens `source`: a database URL, or a path to a dumpdata JSON file.
pub async fn open(source: &str) -> Result<Rows, ImportError> {
    if is_database(source) {
        return Ok(Rows::Database {
            db: connect(source).await?,
            after: i64::MIN,
        });
    }
    let file =
        std::fs::File::open(source).map_err(|e| ImportError::Source(format!("{source}: {e}")))?;
    let (tx, rx) = mpsc::channel(2 * super::BATCH);
    let slot = PermsSlot::default();
    let fixture_slot = slot.clone();
    tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::new(file);
        let mut de = serde_json::Deserializer::from_reader(reader);
        let fixture = Fixture {
            tx: tx.clone(),
            slot: fixture_slot,
        };
        let result = serde::Deserializer::deserialize_seq(&mut de, fixture);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(format!("not a dumpdata JSON array: {e}")));
        }
    });
    Ok(Rows::Json(rx, slot))
}

impl Rows {
    /// A dumpdata file's slot for its groups and permissions.
    pub fn perms_slot(&self) -> Option<PermsSlot> {
        match self {
            Self::Json(_, slot) => Some(slot.clone()),
            Self::Database { .. } => None,
        }
    }

    /// How many rows there are, when the source can say without reading them all (a
    /// database can; a dumpdata stream cannot).
    pub async fn total(&self) -> Option<u64> {
        let Self::Database { db, .. } = self else {
            return None;
        };
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM auth_user",
            ))
            .await
            .ok()??;
        row.try_get::<i64>("", "n")
            .ok()
            .and_then(|n| u64::try_from(n).ok())
    }

    /// The next page of at most `size` rows; `None` at the end.
    pub async fn next_batch(
        &mut self,
        size: usize,
    ) -> Result<Option<Vec<DjangoUser>>, ImportError> {
        match self {
            Self::Database { db, after } => {
                let backend = db.get_database_backend();
                let placeholder = match backend {
                    DatabaseBackend::Postgres => "$1",
                    _ => "?",
                };
                let sql = format!(
                    "SELECT CAST(id AS BIGINT) AS id, username, email, password, is_active, is_staff, \
                     is_superuser, date_joined, last_login FROM auth_user WHERE id > {placeholder} \
                     ORDER BY id LIMIT {size}"
                );
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        backend,
                        sql,
                        [(*after).into()],
                    ))
                    .await
                    .map_err(|e| ImportError::Source(e.to_string()))?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let get_time = |name: &str| -> Result<Option<DateTime<Utc>>, ImportError> {
                        // PostgreSQL has timestamptz; Django's SQLite stores text in UTC. (Not
                        // "try one, then the other": a failed `try_get` formats an error, and
                        // that was a third of the reading time.)
                        if backend == DatabaseBackend::Postgres {
                            return r
                                .try_get::<Option<DateTime<Utc>>>("", name)
                                .map_err(|e| ImportError::Source(e.to_string()));
                        }
                        let text: Option<String> = r
                            .try_get("", name)
                            .map_err(|e| ImportError::Source(e.to_string()))?;
                        text.map(|t| parse_time(&t))
                            .transpose()
                            .map_err(ImportError::Source)
                    };
                    let get = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
                    let user = DjangoUser {
                        legacy_id: r.try_get("", "id").map_err(get)?,
                        username: r.try_get("", "username").map_err(get)?,
                        email: r.try_get("", "email").map_err(get)?,
                        password: r.try_get("", "password").map_err(get)?,
                        is_active: r.try_get("", "is_active").map_err(get)?,
                        is_staff: r.try_get("", "is_staff").map_err(get)?,
                        is_superuser: r.try_get("", "is_superuser").map_err(get)?,
                        date_joined: get_time("date_joined")?
                            .ok_or_else(|| ImportError::Source("date_joined is NULL".into()))?,
                        last_login: get_time("last_login")?,
                    };
                    *after = user.legacy_id;
                    out.push(user);
                }
                Ok(Some(out))
            }
            Self::Json(rx, _) => {
                let mut out = Vec::new();
                while out.len() < size {
                    match rx.recv().await {
                        Some(Ok(user)) => out.push(user),
                        Some(Err(e)) => return Err(ImportError::Source(e)),
                        None => break,
                    }
                }
                Ok((!out.is_empty()).then_some(out))
            }
        }
    }
}

/// Django's text timestamps: `2026-11-25 03:28:29.824816` (SQLite, UTC) or RFC 3339
/// (`2026-11-25T03:28:29.824Z` in dumpdata).
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| format!("unreadable timestamp {text:?}"))
}

/// One element of a dumpdata array.
#[derive(Deserialize)]
struct Entry {
    model: String,
    pk: i64,
    fields: serde_json::Value,
}

#[derive(Deserialize)]
struct Fields {
    username: String,
    #[serde(default)]
    email: String,
    password: String,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    is_staff: bool,
    #[serde(default)]
    is_superuser: bool,
    date_joined: String,
    last_login: Option<String>,
    /// Group ids, or natural keys (`["name"]`).
    #[serde(default)]
    groups: Vec<serde_json::Value>,
    /// Permission ids, or natural keys (`["codename", "app_label", "model"]`).
    #[serde(default)]
    user_permissions: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ContentTypeFields {
    app_label: String,
    model: String,
}

#[derive(Deserialize)]
struct PermissionFields {
    name: String,
    codename: String,
    /// A content-type id, or its natural key (`["app_label", "model"]`).
    content_type: serde_json::Value,
}

#[derive(Deserialize)]
struct GroupFields {
    name: String,
    #[serde(default)]
    permissions: Vec<serde_json::Value>,
}

/// A dumpdata file's groups, permissions and links as read, before references are resolved
/// (an entry may name one that comes later in the file).
#[derive(Default)]
struct RawPerms {
    content_types: HashMap<i64, (String, String)>,
    /// (pk, codename, name, content type).
    permissions: Vec<(i64, String, String, serde_json::Value)>,
    /// (pk, name, permissions).
    groups: Vec<(i64, String, Vec<serde_json::Value>)>,
    /// (user pk, groups, permissions).
    users: Vec<(i64, Vec<serde_json::Value>, Vec<serde_json::Value>)>,
}

impl RawPerms {
    /// Django ids throughout; references that name nothing in the file are left out (a
    /// permission whose content type the file lacks cannot be named `app_label.codename`).
    fn resolve(self) -> DjangoPerms {
        let mut out = DjangoPerms::default();
        let app_of = |ct: &serde_json::Value| -> Option<(String, String)> {
            match ct {
                serde_json::Value::Number(n) => self.content_types.get(&n.as_i64()?).cloned(),
                serde_json::Value::Array(a) => Some((
                    a.first()?.as_str()?.to_owned(),
                    a.get(1)?.as_str()?.to_owned(),
                )),
                _ => None,
            }
        };
        // (codename, app_label, model) → pk, for natural keys.
        let mut by_natural = HashMap::new();
        for (pk, codename, name, ct) in &self.permissions {
            let Some((app_label, model)) = app_of(ct) else {
                continue;
            };
            by_natural.insert((codename.clone(), app_label.clone(), model), *pk);
            out.permissions
                .push((*pk, format!("{app_label}.{codename}"), name.clone()));
        }
        let known: std::collections::HashSet<i64> =
            out.permissions.iter().map(|(pk, _, _)| *pk).collect();
        let permission = |v: &serde_json::Value| -> Option<i64> {
            match v {
                serde_json::Value::Number(n) => n.as_i64().filter(|pk| known.contains(pk)),
                serde_json::Value::Array(a) => by_natural
                    .get(&(
                        a.first()?.as_str()?.to_owned(),
                        a.get(1)?.as_str()?.to_owned(),
                        a.get(2)?.as_str()?.to_owned(),
                    ))
                    .copied(),
                _ => None,
            }
        };
        let group_by_name: HashMap<&str, i64> = self
            .groups
            .iter()
            .map(|(pk, name, _)| (name.as_str(), *pk))
            .collect();
        let group_pks: std::collections::HashSet<i64> =
            self.groups.iter().map(|(pk, _, _)| *pk).collect();
        let group = |v: &serde_json::Value| -> Option<i64> {
            match v {
                serde_json::Value::Number(n) => n.as_i64().filter(|pk| group_pks.contains(pk)),
                serde_json::Value::Array(a) => group_by_name.get(a.first()?.as_str()?).copied(),
                _ => None,
            }
        };
        for (pk, name, permissions) in &self.groups {
            out.groups.push((*pk, name.clone()));
            out.group_permissions
                .extend(permissions.iter().filter_map(&permission).map(|p| (*pk, p)));
        }
        for (pk, groups, permissions) in &self.users {
            out.user_groups
                .extend(groups.iter().filter_map(&group).map(|g| (*pk, g)));
            out.user_permissions
                .extend(permissions.iter().filter_map(&permission).map(|p| (*pk, p)));
        }
        out
    }
}

fn yes() -> bool {
    true
}

/// Visits the top-level array element by element, sending each user on and collecting the
/// groups and permissions.
struct Fixture {
    tx: mpsc::Sender<Result<DjangoUser, String>>,
    slot: PermsSlot,
}

/// A malformed entry of `model`, as the import reports it.
fn malformed(model: &str, e: serde_json::Error) -> String {
    format!("malformed {model} entry: {e}")
}

impl<'de> serde::de::Visitor<'de> for Fixture {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a dumpdata JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Other models in the same file are skipped; their fields are not read into memory
        // beyond one element at a time.
        // Strict: an entry with a repeated key (two `password`s, say) is refused rather than
        // read as its last one.
        let mut raw = RawPerms::default();
        while let Some(crate::strict_json::StrictJson(entry)) = seq.next_element()? {
            let entry: Entry = match serde_json::from_value(entry) {
                Ok(e) => e,
                Err(e) => {
                    let _ = self.tx.blocking_send(Err(format!("malformed entry: {e}")));
                    return Ok(());
                }
            };
            let model = entry.model.as_str();
            if model != "auth.user" {
                let collected = match model {
                    "contenttypes.contenttype" => {
                        serde_json::from_value::<ContentTypeFields>(entry.fields).map(|f| {
                            raw.content_types.insert(entry.pk, (f.app_label, f.model));
                        })
                    }
                    "auth.permission" => serde_json::from_value::<PermissionFields>(entry.fields)
                        .map(|f| {
                            raw.permissions
                                .push((entry.pk, f.codename, f.name, f.content_type));
                        }),
                    "auth.group" => serde_json::from_value::<GroupFields>(entry.fields).map(|f| {
                        raw.groups.push((entry.pk, f.name, f.permissions));
                    }),
                    _ => Ok(()),
                };
                if let Err(e) = collected {
                    let _ = self.tx.blocking_send(Err(malformed(model, e)));
                    return Ok(());
                }
                continue;
            }
            let f: Fields = match serde_json::from_value(entry.fields) {
                Ok(f) => f,
                Err(e) => {
                    let _ = self.tx.blocking_send(Err(malformed("auth.user", e)));
                    return Ok(());
                }
            };
            if !f.groups.is_empty() || !f.user_permissions.is_empty() {
                raw.users.push((entry.pk, f.groups, f.user_permissions));
            }
            let user = (|| {
                Ok(DjangoUser {
                    legacy_id: entry.pk,
                    username: f.username,
                    email: f.email,
                    password: f.password,
                    is_active: f.is_active,
                    is_staff: f.is_staff,
                    is_superuser: f.is_superuser,
                    date_joined: parse_time(&f.date_joined)?,
                    last_login: f.last_login.as_deref().map(parse_time).transpose()?,
                })
            })();
            if self.tx.blocking_send(user).is_err() {
                // The importer stopped reading: stop parsing.
                return Ok(());
            }
        }
        // Before the sender goes (with `self`): the importer reads the slot once the stream
        // has ended.
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(raw.resolve());
        }
        Ok(())
    }
}
