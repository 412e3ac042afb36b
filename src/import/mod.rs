//! `roster import-django`: users from a Django `auth_user` table (a database URL, read-only,
//! or a `dumpdata auth.user` JSON file, streamed) into roster, with their password hashes as
//! they are; each is upgraded to Argon2id at the user's first login.
//!
//! Rows are read in pages of [`BATCH`] and inserted with one multi-row INSERT per page inside
//! a savepoint, trusting the unique indexes; a page that violates one is rolled back to the
//! savepoint and sorted out against what the target holds (earlier pages included: the
//! import is one transaction). Memory does not grow with the input, and a failed or refused
//! import leaves nothing behind.

/// django-otp's and django-allauth's second-factor devices, for the users imported.
pub mod devices;
/// Groups, permissions and their links, after the users.
pub mod perms;
/// Reading `auth_user` from a database or a dumpdata file.
mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    Set, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::accounts::canonical::{canonical, email_canonical};
use crate::accounts::skeleton::Keys;
use crate::entity::user;
use crate::password::{ForeignLimits, FormatError, StoredHash};
pub use source::DjangoUser;

/// Rows read, checked and inserted at a time.
pub const BATCH: usize = 500;
/// Pages read and prepared ahead of the one being inserted.
const PIPELINE: usize = 2;

/// What to do when some rows cannot be imported as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Import every row that can be, list the others, succeed.
    Skip,
    /// Write nothing if any row conflicts; list them; fail.
    Fail,
}

/// `roster import-django` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// A Django database URL (`sqlite:///path/db.sqlite3`, `postgres://…/django_db`; read
    /// only) or a JSON file from `python manage.py dumpdata auth.user`.
    #[arg(required_unless_present = "status")]
    pub source: Option<String>,
    /// Import nothing: count roster's users by password hash and say how many are still on
    /// an imported or outdated one (each is upgraded at that user's next login).
    #[arg(long, conflicts_with_all = ["source", "dry_run", "report", "on_conflict"])]
    pub status: bool,
    /// Check everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `skip`: import what can be and list the rest; `fail`: import nothing if any row
    /// conflicts.
    #[arg(long, value_enum, default_value_t = OnConflict::Skip)]
    pub on_conflict: OnConflict,
    /// Write the problem rows here, one JSON object per line (default: standard output).
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Put weak legacy hashes (salted or unsalted MD5 and SHA-1, DES crypt) under Argon2id
    /// now, without the passwords: Argon2id over the digest Django stored, so the weak digest
    /// is not kept at rest and every guess costs an Argon2id. The user's first login
    /// computes the old digest, then verifies it, then stores a plain Argon2id hash. Costs one
    /// Argon2id hash per weak row at import.
    #[arg(long, conflicts_with = "status")]
    pub wrap_weak: bool,
}

/// One problem row of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub legacy_id: i64,
    pub username: String,
    pub reason: String,
    /// `conflict` (not imported) or `warning` (imported, with a remark).
    pub kind: &'static str,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub imported: u64,
    /// Already imported by an earlier run (same `legacy_id`).
    pub skipped: u64,
    /// Imported by an earlier run and deleted in roster since: not brought back.
    pub deleted: u64,
    pub conflicts: u64,
    pub warnings: u64,
    /// Imported users by the algorithm of their hash.
    pub by_algorithm: BTreeMap<String, u64>,
    /// Whether the rows were written (not a dry run, not refused by `--on-conflict fail`).
    pub committed: bool,
    /// Groups, permissions and links (database sources).
    pub perms: perms::PermsSummary,
    /// django-otp and django-allauth devices (database sources).
    pub devices: devices::DeviceSummary,
    /// The Django ids of the users this run created: devices come over with their user, in
    /// that user's first run only, so a re-run never brings back a factor removed or
    /// replaced in roster.
    pub created: std::collections::BTreeSet<i64>,
}

/// Why an import could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the source: {0}")]
    Source(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot write the report: {0}")]
    Report(#[from] std::io::Error),
}

/// Runs an import into `target`; problem rows go to `report` as they are found.
///
/// Two stages overlap: a task reads the source and prepares each page (hash formats,
/// canonical forms, look-alike keys: CPU work), a bounded channel of [`PIPELINE`] pages ahead,
/// while this one inserts the previous page. Reading and inserting took about as long as
/// each other when they ran one after the other. (A third stage, preparing apart from
/// reading, measured no faster: the two cores are busy by then.)
pub async fn run(
    target: &DatabaseConnection,
    args: &ImportArgs,
    limits: ForeignLimits,
    configured: &argon2::Params,
    keys: Option<&crate::mfa::Keys>,
    report: &mut dyn Write,
) -> Result<Summary, ImportError> {
    let source = args.source.as_deref().unwrap_or_default();
    let mut rows = source::open(source).await?;
    let json_perms = rows.perms_slot();
    let progress = Progress::new(rows.total().await);
    // The write lock from the start on SQLite: the first statement on the target is now a read
    // (the deleted accounts' ids), and a snapshot taken by a read could not be written from
    // once another connection had committed.
    let txn = crate::txn::begin_writing(target).await?;
    let started = chrono::Utc::now();
    let (pages, mut prepared) = tokio::sync::mpsc::channel(PIPELINE);
    let configured_for_reader = configured.clone();
    let wrap_weak = args.wrap_weak;
    // The reader ends the stream with `Ok(None)`: a channel that closes without it means the
    // reader died (a panic), which must not pass for the end of the source.
    let reader = AbortOnDrop(tokio::spawn(async move {
        // Every `pk` this run has read: a repeat is a conflict of its own (it would otherwise
        // break the page's insert with a raw unique-constraint error, or pass for a re-run's
        // skip on a later page). Eight bytes a user.
        let mut seen = HashSet::new();
        loop {
            let page = match rows.next_batch(BATCH).await {
                // `--wrap-weak` hashes on this thread: tell the runtime it blocks.
                Ok(Some(batch)) => Ok(Some(tokio::task::block_in_place(|| {
                    prepare(batch, limits, &configured_for_reader, &mut seen, wrap_weak)
                }))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let last = !matches!(page, Ok(Some(_)));
            if pages.send(page).await.is_err() || last {
                break;
            }
        }
    }));
    let mut summary = Summary::default();
    let imported = async {
        loop {
            let page = match prepared.recv().await {
                Some(Ok(Some(page))) => page,
                Some(Ok(None)) => return Ok(()),
                Some(Err(e)) => return Err(e),
                None => return Err(ImportError::Source("the source reader stopped".into())),
            };
            summary.read += page.read;
            let problems = insert_page(&txn, page, &mut summary).await?;
            for p in problems {
                serde_json::to_writer(&mut *report, &p).map_err(std::io::Error::other)?;
                report.write_all(b"\n")?;
            }
            progress.update(&summary);
        }
    }
    .await;
    // Whatever happened, the reader is done with or no longer wanted (dropping it aborts it).
    drop(reader);
    // Then the groups and permissions, in the same transaction (so a refused or dry run
    // writes none of them either).
    let imported = match imported {
        Ok(()) if source::is_database(source) => {
            async {
                let db = source::connect(source).await?;
                summary.perms = perms::import(&db, &txn).await?;
                let mut problems = Vec::new();
                summary.devices =
                    devices::import(&db, &txn, keys, &summary.created, &mut problems).await?;
                for p in problems {
                    serde_json::to_writer(&mut *report, &p).map_err(std::io::Error::other)?;
                    report.write_all(b"\n")?;
                }
                let _ = db.close().await;
                Ok(())
            }
            .await
        }
        Ok(()) => {
            let taken = json_perms.and_then(|slot| slot.lock().ok()?.take());
            match taken {
                Some(found) => perms::apply(&txn, &found).await.map(|s| summary.perms = s),
                None => Ok(()),
            }
        }
        other => other,
    };
    // An account deleted while this import ran (its tombstone committed after a page was
    // checked) may have been inserted again: taken out now, before the commit. A tombstone
    // committed later belongs to a deletion that waited for nothing of ours (the account's old
    // row was gone before our insert could succeed), so it is visible here already.
    let imported = match imported {
        Ok(()) => {
            match crate::tombstones::undo_comebacks(&txn, started - chrono::Duration::minutes(1))
                .await
            {
                Ok(n) => {
                    summary.imported = summary.imported.saturating_sub(n);
                    summary.deleted += n;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        other => other,
    };
    if let Err(e) = imported {
        txn.rollback().await?;
        return Err(e);
    }
    progress.finish();
    let refused = args.on_conflict == OnConflict::Fail && summary.conflicts > 0;
    if args.dry_run || refused {
        txn.rollback().await?;
    } else {
        // One entry for the run, in its transaction: who came over, staff and superusers
        // included, is on record.
        crate::audit::record(
            &txn,
            &crate::audit::Who::system(),
            "django.imported",
            None,
            &crate::audit::Origin::default(),
            Some(serde_json::json!({
                "imported": summary.imported,
                "skipped": summary.skipped,
                "deleted": summary.deleted,
                "conflicts": summary.conflicts,
                "groups": summary.perms.groups,
                "permissions": summary.perms.permissions,
                "new_links": summary.perms.links,
                "totp_devices": summary.devices.totp,
                "recovery_codes": summary.devices.recovery_codes,
            })),
        )
        .await?;
        txn.commit().await?;
        summary.committed = true;
    }
    report.flush()?;
    Ok(summary)
}

/// Aborts the task when dropped: an import that fails stops reading its source at once.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What `--status` reports: the users by the algorithm of their stored hash.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HashStatus {
    pub users: u64,
    /// Users that came from Django (`legacy_id` set).
    pub imported: u64,
    /// By algorithm: `argon2id` is roster's own with the configured parameters; anything else
    /// (Django's hashers, Argon2 with other parameters as `argon2id (other parameters)`) is
    /// replaced at the user's next login. `unusable` (Django's `!…`) and `unknown` never log in.
    pub by_algorithm: BTreeMap<String, u64>,
    /// Active users whose next successful login rewrites their hash.
    pub to_upgrade: u64,
    /// Deactivated users with such a hash: they cannot log in, so only a reactivation (then
    /// a login) or a password reset moves them; counted apart so `to_upgrade` can reach 0.
    pub to_upgrade_inactive: u64,
}

/// Counts users by stored hash, reading only that column, as a stream (memory does not
/// grow with the table).
pub async fn status(
    db: &DatabaseConnection,
    configured: &argon2::Params,
) -> Result<HashStatus, sea_orm::DbErr> {
    use async_graphql::futures_util::TryStreamExt;
    let mut status = HashStatus::default();
    let mut hashes = user::Entity::find()
        .select_only()
        .column(user::Column::PasswordHash)
        .column(user::Column::LegacyId)
        .column(user::Column::IsActive)
        .into_tuple::<(String, Option<i64>, bool)>()
        .stream(db)
        .await?;
    while let Some((hash, legacy_id, is_active)) = hashes.try_next().await? {
        status.users += 1;
        status.imported += u64::from(legacy_id.is_some());
        let name = match StoredHash::parse(&hash) {
            Ok(stored) if stored.needs_rehash(configured) => {
                if is_active {
                    status.to_upgrade += 1;
                } else {
                    status.to_upgrade_inactive += 1;
                }
                match stored.algorithm() {
                    "argon2id" => "argon2id (other parameters)",
                    other => other,
                }
            }
            Ok(stored) => stored.algorithm(),
            Err(FormatError::Unusable) => "unusable",
            Err(_) => "unknown",
        };
        *status.by_algorithm.entry(name.to_owned()).or_default() += 1;
    }
    Ok(status)
}

/// Progress on standard error: a bar with rows/s and ETA on a terminal (a spinner when the
/// total is unknown), a plain line every 2 s otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(n) => (
                    indicatif::ProgressBar::new(n),
                    "{bar:40} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
                ),
                None => (
                    indicatif::ProgressBar::new_spinner(),
                    "{spinner} {human_pos} rows  {per_sec}",
                ),
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_line: std::cell::Cell::new(Instant::now()),
        }
    }

    fn update(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.set_position(summary.read);
        } else if self.last_line.get().elapsed().as_secs_f64() >= 2.0 {
            self.last_line.set(Instant::now());
            eprintln!(
                "import: {} rows read, {} imported ({:.0} rows/s)",
                summary.read,
                summary.imported,
                summary.read as f64 / self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A row ready to insert, with what it must not collide with.
struct Candidate {
    row: DjangoUser,
    username_canonical: String,
    email_canonical: Option<String>,
    keys: Keys,
    algorithm: &'static str,
}

/// A page of the source, checked and given its canonical forms, ready to insert.
struct Page {
    read: u64,
    candidates: Vec<Candidate>,
    /// Rows refused before any database work (unusable hash format, empty username).
    problems: Vec<Problem>,
}

/// The per-row work that needs no database: runs on the reading side of the pipeline.
fn prepare(
    batch: Vec<DjangoUser>,
    limits: ForeignLimits,
    configured: &argon2::Params,
    seen: &mut HashSet<i64>,
    wrap_weak: bool,
) -> Page {
    let read = batch.len() as u64;
    let mut problems = Vec::new();
    let mut candidates = Vec::new();
    for mut row in batch {
        if !seen.insert(row.legacy_id) {
            let reason = format!("pk {} appears more than once in the source", row.legacy_id);
            problems.push(problem(&row, reason, "conflict"));
            continue;
        }
        let mut algorithm = match importable(&row.password, limits, configured) {
            Ok(a) => a,
            Err(reason) => {
                problems.push(problem(&row, reason, "conflict"));
                continue;
            }
        };
        if wrap_weak && crate::password::django::WEAK_ALGORITHMS.contains(&algorithm) {
            match crate::password::wrap_weak(&row.password, configured) {
                Ok(Some(wrapped)) => {
                    row.password = wrapped;
                    algorithm = match StoredHash::parse(&row.password) {
                        Ok(hash) => hash.algorithm(),
                        Err(_) => algorithm,
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    let reason = format!("could not wrap the weak hash: {e}");
                    problems.push(problem(&row, reason, "conflict"));
                    continue;
                }
            }
        }
        if row.username.is_empty() {
            problems.push(problem(&row, "empty username".into(), "conflict"));
            continue;
        }
        let email = row.email.trim();
        let email_canonical = (!email.is_empty()).then(|| email_canonical(email));
        candidates.push(Candidate {
            username_canonical: canonical(&row.username),
            email_canonical,
            keys: Keys::of(&row.username),
            algorithm,
            row,
        });
    }
    Page {
        read,
        candidates,
        problems,
    }
}

async fn insert_page(
    txn: &DatabaseTransaction,
    page: Page,
    summary: &mut Summary,
) -> Result<Vec<Problem>, ImportError> {
    let Page {
        candidates,
        mut problems,
        ..
    } = page;

    // Fast path: assume the page meets nothing already in the target (true for most pages
    // of most imports) and let the unique indexes say otherwise; the page is inserted inside
    // a savepoint, so a violation undoes only this attempt. An account deleted in roster has
    // no row to collide with: one indexed question first sends such a page the slow way.
    let ids: Vec<i64> = candidates.iter().map(|c| c.row.legacy_id).collect();
    let deleted = crate::tombstones::among(txn, &ids).await?;
    let attempt = classify(&candidates, &Known::default());
    let savepoint = txn.begin().await?;
    let inserted = if !deleted.is_empty() {
        Err(None)
    } else if attempt.models.is_empty() {
        Ok(())
    } else {
        user::Entity::insert_many(attempt.models.clone())
            .exec(&savepoint)
            .await
            .map(|_| ())
            .map_err(Some)
    };
    let outcome = match inserted {
        Ok(()) => {
            savepoint.commit().await?;
            attempt
        }
        Err(e)
            if e.as_ref().is_none_or(|e| {
                matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                )
            }) =>
        {
            savepoint.rollback().await?;
            // Slow path: ask what the target holds, classify again, insert what is left.
            let mut known = Known::load(txn, &candidates).await?;
            known.deleted = deleted;
            let outcome = classify(&candidates, &known);
            if !outcome.models.is_empty() {
                user::Entity::insert_many(outcome.models.clone())
                    .exec(txn)
                    .await?;
            }
            outcome
        }
        // Any other database error (`None` is taken by the arm above).
        Err(e) => {
            return Err(e.map_or_else(
                || ImportError::Source("the page could not be classified".into()),
                ImportError::from,
            ));
        }
    };
    summary.skipped += outcome.skipped;
    summary.deleted += outcome.deleted;
    summary.imported += outcome.models.len() as u64;
    summary.created.extend(
        outcome
            .models
            .iter()
            .filter_map(|m| m.legacy_id.clone().take().flatten()),
    );
    for algorithm in outcome.algorithms {
        *summary
            .by_algorithm
            .entry(algorithm.to_owned())
            .or_default() += 1;
    }
    problems.extend(outcome.problems);
    summary.conflicts += problems.iter().filter(|p| p.kind == "conflict").count() as u64;
    summary.warnings += problems.iter().filter(|p| p.kind == "warning").count() as u64;
    Ok(problems)
}

fn problem(row: &DjangoUser, reason: String, kind: &'static str) -> Problem {
    Problem {
        legacy_id: row.legacy_id,
        username: row.username.clone(),
        reason,
        kind,
    }
}

/// What a page comes to, given what the target holds.
struct Outcome {
    models: Vec<user::ActiveModel>,
    problems: Vec<Problem>,
    skipped: u64,
    deleted: u64,
    /// The hash algorithm of each model, in order.
    algorithms: Vec<&'static str>,
}

/// Decides each candidate: skip (already imported), conflict (collides with the target or an
/// earlier row of the page), or a row to insert (with warnings).
fn classify(candidates: &[Candidate], known: &Known) -> Outcome {
    let by = |legacy: Option<i64>| match legacy {
        Some(id) => format!("the user imported from legacy_id {id}"),
        None => "an existing roster user".to_owned(),
    };
    let mut out = Outcome {
        models: Vec::new(),
        problems: Vec::new(),
        skipped: 0,
        deleted: 0,
        algorithms: Vec::new(),
    };
    let mut page_names: HashMap<String, i64> = HashMap::new();
    let mut page_emails: HashMap<String, i64> = HashMap::new();
    let mut page_looks: HashSet<&str> = HashSet::new();
    for c in candidates {
        let row = &c.row;
        if known.imported.contains(&row.legacy_id) {
            // A re-run: skipped, never duplicated.
            out.skipped += 1;
            continue;
        }
        if known.deleted.contains(&row.legacy_id) {
            // Its user (or an operator) deleted it in roster: it stays deleted.
            out.deleted += 1;
            out.problems.push(problem(
                row,
                "deleted in roster (by its user or an operator): not brought back".into(),
                "deleted",
            ));
            continue;
        }
        // Usernames and emails are one namespace of login identifiers (the `login_names`
        // index): a name collides with another user's username or email alike, so an
        // imported username can never shadow someone's login by email.
        let holder = |name: &str| {
            known
                .names
                .get(name)
                .or_else(|| known.emails.get(name))
                .copied()
                .or_else(|| page_names.get(name).map(|id| Some(*id)))
                .or_else(|| page_emails.get(name).map(|id| Some(*id)))
        };
        // A username with an `@` is also held against the email it spells (IDNA-mapped as
        // emails are stored): `x@bücher.example` must not sit beside `x@xn--bcher-kva.example`.
        let as_email = c
            .username_canonical
            .contains('@')
            .then(|| email_canonical(&c.username_canonical))
            .filter(|e| *e != c.username_canonical);
        if let Some(other) =
            holder(&c.username_canonical).or_else(|| as_email.as_deref().and_then(holder))
        {
            let reason = format!(
                "username collides (ignoring case and width) with the username or email of {}",
                by(other)
            );
            out.problems.push(problem(row, reason, "conflict"));
            continue;
        }
        if let Some(e) = &c.email_canonical
            && *e != c.username_canonical
            && let Some(other) = holder(e)
        {
            let reason = format!(
                "email collides (ignoring case) with the email or username of {}",
                by(other)
            );
            out.problems.push(problem(row, reason, "conflict"));
            continue;
        }
        page_names.insert(c.username_canonical.clone(), row.legacy_id);
        if let Some(spelled) = as_email {
            page_names.insert(spelled, row.legacy_id);
        }
        if let Some(e) = &c.email_canonical {
            page_emails.insert(e.clone(), row.legacy_id);
        }
        let id = Uuid::now_v7();
        let email_canonical = match &c.email_canonical {
            Some(e) => e.clone(),
            None => {
                out.problems.push(problem(
                    row,
                    "no email address: imported without one".into(),
                    "warning",
                ));
                format!("!none:{id}")
            }
        };
        if c.algorithm == "unusable" {
            out.problems.push(problem(
                row,
                "unusable password: the user must reset it to log in".into(),
                "warning",
            ));
        }
        // A look-alike of another user is not a conflict (Django allowed it and both
        // accounts exist); the later one just carries no look-alike key, as rows from before
        // the keys existed.
        let k = &c.keys;
        let keys = [k.written.as_str(), k.lower.as_str(), k.upper.as_str()];
        let alike = keys
            .iter()
            .any(|key| known.looks.contains(*key) || page_looks.contains(key));
        if !alike {
            page_looks.extend(keys);
        }
        let key = |s: &String| Set((!alike).then(|| s.clone()));
        out.algorithms.push(c.algorithm);
        out.models.push(user::ActiveModel {
            id: Set(id),
            username: Set(row.username.clone()),
            username_canonical: Set(c.username_canonical.clone()),
            email: Set(row.email.trim().to_owned()),
            email_canonical: Set(email_canonical),
            username_skeleton: key(&k.written),
            username_skeleton_lower: key(&k.lower),
            username_skeleton_upper: key(&k.upper),
            password_hash: Set(row.password.clone()),
            date_joined: Set(row.date_joined),
            is_active: Set(row.is_active),
            last_login: Set(row.last_login),
            legacy_id: Set(Some(row.legacy_id)),
            is_staff: Set(row.is_staff),
            is_superuser: Set(row.is_superuser),
            // Django never proved the address; the user confirms it with roster's email.
            email_verified: Set(false),
        });
    }
    out
}

/// What the target database already holds that a page of candidates could meet.
#[derive(Default)]
struct Known {
    /// `legacy_id`s already imported.
    imported: HashSet<i64>,
    /// `legacy_id`s of accounts deleted in roster: never brought back.
    deleted: HashSet<i64>,
    /// Canonical usernames and emails taken, with the `legacy_id` of their holder.
    names: HashMap<String, Option<i64>>,
    emails: HashMap<String, Option<i64>>,
    /// Look-alike keys taken.
    looks: HashSet<String>,
}

impl Known {
    /// Asks the target, one indexed question per column.
    async fn load(txn: &DatabaseTransaction, page: &[Candidate]) -> Result<Self, ImportError> {
        let ids: Vec<i64> = page.iter().map(|c| c.row.legacy_id).collect();
        let imported: HashSet<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::LegacyId)
            .filter(user::Column::LegacyId.is_in(ids))
            .into_tuple::<Option<i64>>()
            .all(txn)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // Every name of the page, asked of both columns (one namespace).
        let spelled: Vec<String> = page
            .iter()
            .filter(|c| c.username_canonical.contains('@'))
            .map(|c| email_canonical(&c.username_canonical))
            .collect();
        let names: Vec<&str> = page
            .iter()
            .map(|c| c.username_canonical.as_str())
            .chain(page.iter().filter_map(|c| c.email_canonical.as_deref()))
            .chain(spelled.iter().map(String::as_str))
            .collect();
        let emails = names.clone();
        let holders = |column: user::Column, values: Vec<&str>| {
            user::Entity::find()
                .select_only()
                .column(column)
                .column(user::Column::LegacyId)
                .filter(column.is_in(values))
                .into_tuple::<(String, Option<i64>)>()
                .all(txn)
        };
        let names: HashMap<String, Option<i64>> = holders(user::Column::UsernameCanonical, names)
            .await?
            .into_iter()
            .collect();
        let emails: HashMap<String, Option<i64>> = holders(user::Column::EmailCanonical, emails)
            .await?
            .into_iter()
            .collect();
        let mut looks = HashSet::new();
        type KeyOf = fn(&Keys) -> &str;
        let columns: [(user::Column, KeyOf); 3] = [
            (user::Column::UsernameSkeleton, |k| &k.written),
            (user::Column::UsernameSkeletonLower, |k| &k.lower),
            (user::Column::UsernameSkeletonUpper, |k| &k.upper),
        ];
        for (column, key) in columns {
            let values: Vec<&str> = page.iter().map(|c| key(&c.keys)).collect();
            let found: Vec<Option<String>> = user::Entity::find()
                .select_only()
                .column(column)
                .filter(column.is_in(values))
                .into_tuple()
                .all(txn)
                .await?;
            looks.extend(found.into_iter().flatten());
        }
        Ok(Self {
            imported,
            deleted: HashSet::new(),
            names,
            emails,
            looks,
        })
    }
}

/// The algorithm of a hash roster can verify within its bounds, or why not.
fn importable(
    stored: &str,
    limits: ForeignLimits,
    configured: &argon2::Params,
) -> Result<&'static str, String> {
    match StoredHash::parse(stored) {
        Ok(hash) => match hash.check_import_cost(configured, &limits) {
            Ok(()) => Ok(hash.algorithm()),
            Err(e) => Err(format!("password hash refused: {e}")),
        },
        Err(FormatError::Unusable) => Ok("unusable"),
        Err(e) => Err(format!("password hash refused: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ForeignLimits {
        ForeignLimits {
            max_memory_kib: 131_072,
            max_iterations: 16,
            max_parallelism: 16,
        }
    }

    /// Every hash Django 4.2's legacy hashers made (`tests/django/hashes_legacy.jsonl`, `crypt$`
    /// included) is importable under its own name; a SHA-crypt row in `crypt$` is not.
    #[test]
    fn legacy_hashes_are_importable_and_sha_crypt_is_a_conflict() {
        let configured = argon2::Params::default();
        for line in include_str!("../../tests/django/hashes_legacy.jsonl").lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(encoded) = v["encoded"].as_str() else {
                continue;
            };
            assert_eq!(
                importable(encoded, limits(), &configured).as_deref(),
                Ok(v["hasher"].as_str().unwrap()),
                "{encoded}"
            );
        }
        let sha_crypt = "crypt$$$6$rounds=999999999$salt$abcdefghijklmnopqrstuvwxyz";
        assert!(importable(sha_crypt, limits(), &configured).is_err());
    }
}
