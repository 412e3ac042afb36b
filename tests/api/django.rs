//! Users carrying Django password hashes (as an import will leave them) log in with their
//! passwords, and the first login replaces the hash with roster's Argon2id.

use roster::accounts::canonical::{canonical, email_canonical};
use roster::entity::user;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{GOOD_PASSWORD, TestApp, spawn_app};

/// One Django hash per hasher, at cheap parameters, from `tests/django/hashes.jsonl`.
fn django_hashes() -> Vec<(String, String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    [
        include_str!("../django/hashes.jsonl"),
        include_str!("../django/hashes_legacy.jsonl"),
    ]
    .iter()
    .flat_map(|f| f.lines())
    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    .filter(|v| v["default"] == false)
    .filter(|v| seen.insert(v["hasher"].as_str().unwrap_or("").to_owned()))
    .map(|v| {
        (
            v["hasher"].as_str().unwrap().to_owned(),
            v["password"].as_str().unwrap().to_owned(),
            v["encoded"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

async fn insert_user(app: &TestApp, username: &str, password_hash: &str) -> uuid::Uuid {
    let email = format!("{username}@example.com");
    let id = uuid::Uuid::now_v7();
    user::ActiveModel {
        id: Set(id),
        username: Set(username.to_owned()),
        username_canonical: Set(canonical(username)),
        email_canonical: Set(email_canonical(&email)),
        email: Set(email),
        username_skeleton: Set(None),
        username_skeleton_lower: Set(None),
        username_skeleton_upper: Set(None),
        password_hash: Set(password_hash.to_owned()),
        date_joined: Set(chrono::Utc::now()),
        is_active: Set(true),
        last_login: Set(None),
        legacy_id: Set(None),
        is_staff: Set(false),
        is_superuser: Set(false),
        email_verified: Set(false),
    }
    .insert(&app.db)
    .await
    .unwrap();
    id
}

async fn login(app: &TestApp, identifier: &str, password: &str) -> Value {
    app.graphql(
        "mutation($i: LoginInput!) { login(input: $i) { user { username } } }",
        json!({ "i": { "identifier": identifier, "password": password } }),
    )
    .await
    .body
}

async fn stored_hash(app: &TestApp, username: &str) -> String {
    app.users()
        .await
        .into_iter()
        .find(|u| u.username == username)
        .unwrap()
        .password_hash
}

#[tokio::test]
async fn each_django_hasher_logs_in_once_then_the_hash_is_argon2id() {
    let app = spawn_app().await;
    let hashes = django_hashes();
    assert_eq!(
        hashes.len(),
        11,
        "one per Django 5.2 hasher and per legacy one: {hashes:?}"
    );
    for (hasher, password, encoded) in &hashes {
        let username = format!("django_{hasher}");
        insert_user(&app, &username, encoded).await;
        // Wrong in its first character: crypt(3) reads only 8 bytes and bcrypt 72, so a
        // wrong *suffix* would pass both, in Django as here.
        let wrong = login(&app, &username, &format!("x{password}")).await;
        assert_eq!(
            wrong["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
            "{hasher}"
        );
        assert_eq!(
            &stored_hash(&app, &username).await,
            encoded,
            "{hasher}: unchanged after a failure"
        );

        let ok = login(&app, &username, password).await;
        assert_eq!(
            ok["data"]["login"]["user"]["username"],
            username.as_str(),
            "{hasher}: {ok}"
        );
        let upgraded = stored_hash(&app, &username).await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hasher}: {upgraded}"
        );
        let again = login(&app, &username, password).await;
        assert_eq!(
            again["data"]["login"]["user"]["username"],
            username.as_str(),
            "{hasher}"
        );
    }
}

#[tokio::test]
async fn an_unusable_django_password_never_logs_in_and_costs_what_a_wrong_one_does() {
    let app = spawn_app().await;
    insert_user(&app, "locked", "!Ro5gXKtHbaY3zOSPqMkTOqImPcGCvTomWG2xZvLr").await;
    let before = app.hasher.computed();
    let answer = login(&app, "locked", "anything at all").await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        answer["errors"][0]["message"],
        "Invalid username/email or password."
    );
    assert_eq!(
        app.hasher.computed() - before,
        1,
        "one dummy verification, as for a stranger"
    );
}

/// The users `tests/django/make_auth_db.py` created, with their passwords.
fn fixture_users() -> Vec<Value> {
    include_str!("../django/auth_users.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `roster import-django` (the real binary) against the app's database.
pub(crate) async fn import(
    app: &TestApp,
    source: &str,
    extra: &[&str],
) -> (i32, Vec<Value>, String) {
    let report = std::env::temp_dir().join(format!("report_{}.jsonl", uuid::Uuid::now_v7()));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    command
        .args(["--database-url", &app.database_url, "import-django", source])
        .args(["--report", report.to_str().unwrap()])
        .args(extra)
        // The servers' secret: devices brought over are sealed with it, as in production.
        .env("ROSTER_SECRET_KEY", crate::helpers::TEST_SECRET)
        .env_remove("RUST_LOG");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run roster import-django");
    let lines = std::fs::read_to_string(&report)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&report);
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    format!("{}/tests/django/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The Django SQLite file, copied so the import can open it read-only wherever it runs.
pub(crate) fn django_sqlite() -> String {
    let copy = std::env::temp_dir().join(format!("django_{}.sqlite3", uuid::Uuid::now_v7()));
    std::fs::copy(fixture("auth_user.sqlite3"), &copy).unwrap();
    format!("sqlite://{}", copy.display())
}

fn kinds(report: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_django_database_is_imported_and_its_users_log_in() {
    let app = spawn_app().await;
    let (code, report, stderr) = import(&app, &django_sqlite(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let expected: Vec<(String, String)> = [
        ("alice", "conflict"),
        ("bigargon", "conflict"),
        ("blank1", "warning"),
        ("blank2", "warning"),
        ("dup2", "conflict"),
        ("nopass", "warning"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(kinds(&report), expected, "{report:?}");
    assert!(stderr.contains("18 read, 15 imported"), "{stderr}");
    assert_eq!(app.user_count().await, 15);

    let users = app.users().await;
    let admin = users.iter().find(|u| u.username == "admin").unwrap();
    assert!(admin.is_staff && admin.is_superuser && admin.legacy_id.is_some());
    let sleeper = users.iter().find(|u| u.username == "sleeper").unwrap();
    assert!(!sleeper.is_active);

    // Every hasher's user logs in with the Django password; inactive and unusable do not.
    for u in fixture_users() {
        let name = u["username"].as_str().unwrap();
        let Some(password) = u["password"].as_str() else {
            continue;
        };
        let answer = login(&app, name, password).await;
        let imported = users.iter().any(|x| x.username == name);
        let should = imported && name != "sleeper";
        assert_eq!(
            answer["data"]["login"]["user"]["username"].as_str() == Some(name),
            should,
            "{name}: {answer}"
        );
    }
    // A user without email has `email: null`.
    let blank = app
        .graphql(
            "mutation { login(input: {identifier: \"blank1\", password: \"correct horse battery staple\"}) { user { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        blank.body["data"]["login"]["user"]["email"],
        Value::Null,
        "{}",
        blank.body
    );
    // The unusable password never logs in.
    let nopass = login(&app, "nopass", "").await;
    assert_eq!(
        nopass["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn a_dumpdata_file_imports_the_same_and_a_rerun_duplicates_nothing() {
    let app = spawn_app().await;
    let (code, report, stderr) = import(&app, &fixture("auth_user.json"), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report.len(), 6, "{report:?}");
    assert_eq!(app.user_count().await, 15);
    let hashes: Vec<String> = app
        .users()
        .await
        .into_iter()
        .map(|u| u.password_hash)
        .collect();
    assert!(
        login(&app, "user_scrypt", "correct horse battery staple").await["data"]["login"]
            .is_object()
    );

    let (code, _, stderr) = import(&app, &django_sqlite(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 imported, 15 skipped"), "{stderr}");
    assert_eq!(app.user_count().await, 15);
    let after: Vec<String> = app
        .users()
        .await
        .into_iter()
        .map(|u| u.password_hash)
        .collect();
    assert_eq!(hashes.len(), after.len());
}

/// `roster import-django --status` against `database_url`: (exit code, stdout, stderr).
async fn status_of(database_url: &str) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    command
        .args(["--database-url", database_url, "import-django", "--status"])
        .env_remove("RUST_LOG");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run roster import-django --status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same against the app's database: (exit code, stdout).
async fn status(app: &TestApp) -> (i32, String) {
    let (code, out, _) = status_of(&app.database_url).await;
    (code, out)
}

/// The count of one algorithm's line (`  <label padded>  <count>`) of the status output; 0
/// when the line is absent.
fn count(out: &str, label: &str) -> u64 {
    out.lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().rsplit_once(' '))
        .find(|(name, _)| name.trim_end() == label)
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or(0)
}

/// The "to upgrade at next login" count of the status output.
fn to_upgrade(out: &str) -> u64 {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("to upgrade at next login: "))
        .unwrap_or_else(|| panic!("no upgrade count in:\n{out}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn status_counts_users_by_hash_and_a_login_moves_one_to_argon2id() {
    let app = spawn_app().await;
    // One user of roster's own, made by `register`.
    let registered = app
        .register("native", "native@example.com", GOOD_PASSWORD)
        .await;
    assert!(
        registered.body["data"]["register"].is_object(),
        "{}",
        registered.body
    );
    let (code, _, stderr) = import(&app, &django_sqlite(), &[]).await;
    assert_eq!(code, 0, "{stderr}");

    let (code, out) = status(&app).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("users: 16 (15 imported from Django)"), "{out}");
    assert_eq!(count(&out, "argon2id"), 1, "{out}");
    assert_eq!(count(&out, "argon2id (other parameters)"), 1, "{out}");
    assert_eq!(count(&out, "bcrypt_sha256"), 1, "{out}");
    assert_eq!(count(&out, "unusable"), 1, "{out}");
    let pbkdf2 = count(&out, "pbkdf2_sha256");
    // Everyone but the registered user (roster's hash), `nopass` (never logs in) and the
    // deactivated `sleeper`, who is counted apart: the count can reach 0.
    assert_eq!(to_upgrade(&out), 13, "{out}");
    assert!(out.contains("; 1 more on deactivated accounts"), "{out}");

    let answer = login(&app, "user_pbkdf2_sha256", "correct horse battery staple").await;
    assert!(answer["data"]["login"].is_object(), "{answer}");
    let (_, after) = status(&app).await;
    assert_eq!(count(&after, "argon2id"), 2, "{after}");
    assert_eq!(count(&after, "pbkdf2_sha256"), pbkdf2 - 1, "{after}");
    assert_eq!(to_upgrade(&after), 12, "{after}");
    // Reading only: the status neither writes nor needs a source.
    assert_eq!(app.user_count().await, 16);
}

#[tokio::test]
async fn status_on_an_unmigrated_database_says_to_migrate_and_creates_nothing() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let path = std::env::temp_dir().join(format!("unmigrated_{}.sqlite3", uuid::Uuid::now_v7()));
    // An empty file is an empty SQLite database.
    std::fs::File::create(&path).unwrap();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let (code, _, stderr) = status_of(&url).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("run `roster migrate`"), "{stderr}");
    let db = Database::connect(&url).await.unwrap();
    let tables = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table'",
        ))
        .await
        .unwrap();
    db.close().await.ok();
    let _ = std::fs::remove_file(&path);
    assert!(tables.is_empty(), "{} tables were created", tables.len());

    // A SQLite file that is not there is not created (the default URL has `mode=rwc`).
    let missing = std::env::temp_dir().join(format!("missing_{}.sqlite3", uuid::Uuid::now_v7()));
    let (code, _, stderr) = status_of(&format!("sqlite://{}?mode=rwc", missing.display())).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn dry_runs_and_refused_imports_write_nothing() {
    let app = spawn_app().await;
    let (code, report, stderr) = import(&app, &django_sqlite(), &["--dry-run"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report.len(), 6);
    assert!(stderr.contains("dry run"), "{stderr}");
    assert_eq!(app.user_count().await, 0);

    let (code, report, stderr) = import(&app, &django_sqlite(), &["--on-conflict", "fail"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report.iter().filter(|p| p["kind"] == "conflict").count(), 3);
    assert_eq!(app.user_count().await, 0);

    let (code, _, stderr) = import(&app, "/nonexistent/dump.json", &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(app.user_count().await, 0);
}

/// A source that breaks after more than a page has been read and inserted (reading runs
/// ahead of inserting): the import stops with exit status 2 and its transaction leaves
/// nothing behind.
#[tokio::test]
async fn a_source_that_breaks_midway_leaves_nothing_behind() {
    let app = spawn_app().await;
    let hash = "pbkdf2_sha256$1000$salt$aGFzaA==";
    let mut entries: Vec<String> = (1..=1200)
        .map(|n| {
            json!({"model": "auth.user", "pk": n, "fields": {
                "username": format!("user{n}"), "email": format!("user{n}@example.com"),
                "password": hash, "date_joined": "2024-01-01T00:00:00Z", "last_login": null}})
            .to_string()
        })
        .collect();
    entries.insert(
        1100,
        r#"{"model": "auth.user", "pk": "not a number"}"#.to_owned(),
    );
    let path = std::env::temp_dir().join(format!("broken_{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&path, format!("[{}]", entries.join(","))).unwrap();
    let (code, _, stderr) = import(&app, path.to_str().unwrap(), &[]).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("malformed entry"), "{stderr}");
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (the source is a Django database on PostgreSQL): run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn a_django_database_on_postgres_is_a_source_too() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    assert!(
        crate::helpers::on_postgres(),
        "this test builds a Django database on PostgreSQL; set ROSTER_TEST_DATABASE_URL"
    );
    // Django's table on PostgreSQL, filled with the rows Django wrote to the SQLite fixture.
    let (url, _) = crate::helpers::fresh_database_url().await;
    let django = Database::connect(&url).await.unwrap();
    django
        .execute_unprepared(include_str!("../django/auth_user_postgres.sql"))
        .await
        .unwrap();
    let fixture = Database::connect(format!("{}?mode=ro", django_sqlite()))
        .await
        .unwrap();
    let rows = fixture
        .query_all_raw(Statement::from_string(
            fixture.get_database_backend(),
            "SELECT id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined FROM auth_user",
        ))
        .await
        .unwrap();
    for r in rows {
        let text = |c: &str| r.try_get::<String>("", c).unwrap();
        let time = |c: &str| r.try_get::<Option<String>>("", c).unwrap();
        let flag = |c: &str| r.try_get::<bool>("", c).unwrap();
        django
            .execute_raw(Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) \
                 VALUES ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9, $10, $11::timestamptz)",
                [
                    r.try_get::<i32>("", "id").unwrap().into(),
                    text("password").into(),
                    time("last_login").map(|t| format!("{t}+00")).into(),
                    flag("is_superuser").into(),
                    text("username").into(),
                    text("first_name").into(),
                    text("last_name").into(),
                    text("email").into(),
                    flag("is_staff").into(),
                    flag("is_active").into(),
                    format!("{}+00", time("date_joined").unwrap()).into(),
                ],
            ))
            .await
            .unwrap();
    }
    django.close().await.ok();

    let app = spawn_app().await;
    let (code, report, stderr) = import(&app, &url, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report.len(), 6, "{report:?}");
    assert!(stderr.contains("18 read, 15 imported"), "{stderr}");
    let answer = login(&app, "user_bcrypt_sha256", "correct horse battery staple").await;
    assert_eq!(
        answer["data"]["login"]["user"]["username"], "user_bcrypt_sha256",
        "{answer}"
    );
    let imported = app.users().await;
    let sleeper = imported.iter().find(|u| u.username == "sleeper").unwrap();
    assert!(!sleeper.is_active);
}

/// Stored hashes whose *work* has no bound, though each parameter is within its own limit:
/// PBKDF2 with two output blocks (every block repeats every iteration), a row longer than
/// Django's 128-character column, scrypt at N=2^17, r=8, p=16, Argon2 at m=128 MiB, t=16,
/// p=16; and a truncated bcrypt hash. Each fits roster's `VARCHAR(255)` column, so a row
/// imported before the bounds can be in the table (inserted directly here).
fn unbounded_hashes() -> Vec<(&'static str, String)> {
    use base64::Engine;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    let b64_nopad =
        |n: usize| base64::engine::general_purpose::STANDARD_NO_PAD.encode(vec![7u8; n]);
    let salt = "abcdefghijkl";
    let hashes = vec![
        (
            "pbkdf2_2_blocks",
            format!("pbkdf2_sha256$250000${salt}${}", b64(64)),
        ),
        (
            "pbkdf2_long_row",
            format!("pbkdf2_sha256$1000000${}${}", "s".repeat(150), b64(32)),
        ),
        (
            "scrypt_work",
            format!("scrypt$131072${salt}$8$16${}", b64(64)),
        ),
        (
            "argon2_work",
            format!(
                "argon2$argon2id$v=19$m=131072,t=16,p=16${}${}",
                b64_nopad(16),
                b64_nopad(32)
            ),
        ),
        (
            "bcrypt_truncated",
            "bcrypt$$2b$12$abcdefghijklmnopqrstuv".to_owned(),
        ),
    ];
    for (name, hash) in &hashes {
        assert!(hash.len() <= 255, "{name} must fit the column");
    }
    hashes
}

#[tokio::test]
async fn hashes_whose_work_has_no_bound_are_refused_at_import_and_cost_only_the_dummy() {
    let app = spawn_app().await;
    for (name, hash) in unbounded_hashes() {
        let id = insert_user(&app, name, &hash).await;
        let before = app.hasher.computed();
        let answer = login(&app, name, "wrong password").await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
            "{name}"
        );
        assert_eq!(
            app.hasher.computed() - before,
            1,
            "{name}: one verification"
        );
        // The one verification was the dummy: the row was refused before any work.
        let logs = String::from_utf8_lossy(&crate::helpers::LOGS.get().unwrap().lock().unwrap())
            .into_owned();
        assert!(
            logs.lines()
                .any(|l| l.contains(&id.to_string()) && l.contains("cannot be verified")),
            "{name}: the row was not refused before verification"
        );
    }

    // The importer refuses the same rows, each as a conflict of its own; a repeated pk is a
    // conflict too, not a raw unique-constraint error that aborts the import.
    let mut hashes = unbounded_hashes();
    // And one no column would hold: 1.4 million characters, refused before any work.
    hashes.push((
        "huge_row",
        format!("pbkdf2_sha256$1000$abc${}", "A".repeat(1_400_000)),
    ));
    let mut entries: Vec<Value> = hashes
        .clone()
        .into_iter()
        .enumerate()
        .map(|(n, (name, hash))| {
            json!({ "model": "auth.user", "pk": 9000 + n, "fields": {
                "username": format!("imported_{name}"), "email": "", "password": hash,
                "date_joined": "2026-11-25T03:28:29.824Z", "last_login": null } })
        })
        .collect();
    let good = "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$".to_owned()
        + "nXZKJRs6q0HmvN4cF5e5WYL1JJ2EVmZJEdN1vIfTbJk=";
    for name in ["first_of_two", "second_of_two"] {
        entries.push(json!({ "model": "auth.user", "pk": 9100, "fields": {
            "username": name, "email": "", "password": good,
            "date_joined": "2026-11-25T03:28:29.824Z", "last_login": null } }));
    }
    let file = std::env::temp_dir().join(format!("unbounded_{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_vec(&entries).unwrap()).unwrap();
    let (code, report, stderr) =
        import(&app, file.to_str().unwrap(), &["--on-conflict", "skip"]).await;
    assert_eq!(code, 0, "{stderr}");
    for (name, _) in hashes {
        let row = report
            .iter()
            .find(|p| p["username"] == format!("imported_{name}"))
            .unwrap_or_else(|| panic!("{name} was not reported: {report:?}"));
        assert_eq!(row["kind"], "conflict", "{row}");
    }
    let repeated = report
        .iter()
        .find(|p| p["username"] == "second_of_two")
        .unwrap_or_else(|| panic!("the repeated pk was not reported: {report:?}"));
    assert!(
        repeated["reason"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{repeated}"
    );

    // An entry with a repeated key is refused, not read as its last value.
    std::fs::write(
        &file,
        r#"[{"model": "auth.user", "pk": 9200, "fields": {"username": "twice", "email": "",
            "password": "!x", "password": "md5$$5f4dcc3b5aa765d61d8327deb882cf99",
            "date_joined": "2026-11-25T03:28:29.824Z", "last_login": null}}]"#,
    )
    .unwrap();
    let (code, _, stderr) = import(&app, file.to_str().unwrap(), &[]).await;
    assert_ne!(code, 0, "a repeated key must not import: {stderr}");
    assert!(stderr.contains("duplicate key"), "{stderr}");
    let _ = std::fs::remove_file(&file);
}

/// A wrong password for an imported salted-MD5 user answered in about a millisecond, for a
/// Django-default PBKDF2 user in several Argon2id times, for an unknown name in one: one
/// request told a dormant migrated account from a name that does not exist. Every failed
/// login is now answered no sooner than the costliest verification the server knows of
/// (compared as medians; unpadded, MD5 against unknown is under a tenth).
#[tokio::test]
async fn a_failed_login_takes_as_long_whatever_hash_the_account_holds() {
    use base64::Engine;
    let app = spawn_app().await;
    insert_user(
        &app,
        "dormant_md5",
        "md5$KDYc5FiWVChszsmNJtuhLF$aaefbf33530fce9ef8412a5b2860ea43",
    )
    .await;
    let digest = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    insert_user(
        &app,
        "dormant_pbkdf2",
        &format!("pbkdf2_sha256$600000$abcdefghijkl${digest}"),
    )
    .await;
    // The server learns the costliest format (at start-up from a sample, here also from
    // this first attempt).
    let _ = login(&app, "dormant_pbkdf2", "wrong password").await;
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (mut md5, mut pbkdf2, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..5 {
        for (name, times) in [
            ("dormant_md5".to_owned(), &mut md5),
            ("dormant_pbkdf2".to_owned(), &mut pbkdf2),
            (format!("nobody{n}"), &mut unknown),
        ] {
            let started = std::time::Instant::now();
            let answer = login(&app, &name, "wrong password").await;
            times.push(started.elapsed());
            assert_eq!(
                answer["errors"][0]["extensions"]["code"],
                "INVALID_CREDENTIALS"
            );
        }
    }
    let (md5, pbkdf2, unknown) = (median(md5), median(pbkdf2), median(unknown));
    for (name, t) in [("MD5", md5), ("PBKDF2", pbkdf2)] {
        let ratio = t / unknown;
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{name} {t:.3}s against unknown {unknown:.3}s"
        );
    }
    // And the right password still signs in (and upgrades the hash).
    let ok = login(&app, "dormant_md5", "correct horse battery staple").await;
    assert!(ok["errors"].is_null(), "{ok}");
}

async fn user_named(app: &TestApp, name: &str) -> user::Model {
    app.users()
        .await
        .into_iter()
        .find(|u| u.username == name)
        .unwrap()
}

/// `import-django --wrap-weak` puts weak legacy hashes under Argon2id without the passwords:
/// the weak digest is no longer at rest, a guess costs an Argon2id, and each user still signs
/// in with their Django password (the old digest is computed first), after which the hash is
/// roster's own.
#[tokio::test]
async fn wrap_weak_puts_weak_hashes_under_argon2id_and_their_users_still_log_in() {
    let app = spawn_app().await;
    let password = "correct horse battery staple";
    let weak = [
        (
            "w_md5",
            "md5$KDYc5FiWVChszsmNJtuhLF$aaefbf33530fce9ef8412a5b2860ea43",
            "aaefbf33530fce9ef8412a5b2860ea43",
        ),
        (
            "w_sha1",
            "sha1$zhgJfZD2Ub5bTpZKdAsAOs$f18bb80fbb6b490ae733d3b5eb97369e09b2e9bb",
            "f18bb80fbb6b490ae733d3b5eb97369e09b2e9bb",
        ),
        (
            "w_unsalted_sha1",
            "sha1$$abf7aad6438836dbe526aa231abde2d0eef74d42",
            "abf7aad6438836dbe526aa231abde2d0eef74d42",
        ),
        (
            "w_unsalted_md5",
            "9cc2ae8a1ba7a93da39b46fc1019c481",
            "9cc2ae8a1ba7a93da39b46fc1019c481",
        ),
        ("w_crypt", "crypt$$FGN3T/0eNVM8o", "FGN3T/0eNVM8o"),
    ];
    let entries: Vec<Value> = weak
        .iter()
        .enumerate()
        .map(|(n, (name, hash, _))| {
            json!({ "model": "auth.user", "pk": 9300 + n, "fields": {
                "username": name, "email": format!("{name}@example.com"), "password": hash,
                "date_joined": "2026-11-25T03:28:29.824Z", "last_login": null } })
        })
        .collect();
    let file = std::env::temp_dir().join(format!("weak_{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_vec(&entries).unwrap()).unwrap();
    let (code, report, stderr) = import(&app, file.to_str().unwrap(), &["--wrap-weak"]).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 0, "{stderr}");
    assert!(report.is_empty(), "{report:?}");
    for (name, _, digest) in weak {
        let row = user_named(&app, name).await;
        assert!(
            row.password_hash.starts_with("wrapped$") && row.password_hash.contains("$argon2id$"),
            "{name}: {}",
            row.password_hash
        );
        assert!(
            !row.password_hash.contains(digest),
            "{name}: the weak digest is at rest"
        );
        let wrong = login(&app, name, "wrong password").await;
        assert_eq!(
            wrong["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
            "{name}"
        );
        let ok = login(&app, name, password).await;
        assert!(ok["errors"].is_null(), "{name}: {ok}");
        let upgraded = user_named(&app, name).await;
        assert!(
            upgraded.password_hash.starts_with("$argon2id$"),
            "{name}: {}",
            upgraded.password_hash
        );
    }
}

/// Django's groups, permissions and links come over with the users (from a database source),
/// in the import's transaction, and a re-run adds nothing twice.
#[tokio::test]
async fn groups_and_permissions_come_over_with_the_users_and_a_rerun_adds_nothing() {
    use sea_orm::{ColumnTrait, ConnectionTrait as _, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    let source = django_sqlite();
    // Django's own tables in the copy (made by Django's `migrate`), filled as its admin would:
    // a group holding `auth.view_user`, user 1 in it, user 14 holding `auth.change_user`.
    let django = sea_orm::Database::connect(format!("{source}?mode=rw"))
        .await
        .unwrap();
    for statement in [
        "INSERT INTO auth_group (id, name) VALUES (3, 'support')",
        "INSERT INTO auth_group_permissions (group_id, permission_id) \
         SELECT 3, p.id FROM auth_permission p JOIN django_content_type ct \
         ON ct.id = p.content_type_id WHERE ct.app_label = 'auth' AND p.codename = 'view_user'",
        "INSERT INTO auth_user_groups (user_id, group_id) VALUES (1, 3)",
        "INSERT INTO auth_user_user_permissions (user_id, permission_id) \
         SELECT 14, p.id FROM auth_permission p JOIN django_content_type ct \
         ON ct.id = p.content_type_id WHERE ct.app_label = 'auth' AND p.codename = 'change_user'",
    ] {
        django.execute_unprepared(statement).await.unwrap();
    }
    django.close().await.unwrap();

    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 groups"), "{stderr}");
    let perms = |legacy: i64| {
        let db = app.db.clone();
        async move {
            let user = user::Entity::find()
                .filter(user::Column::LegacyId.eq(legacy))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            let held = roster::admin::perms::effective(&db, &user).await.unwrap();
            let groups = roster::admin::perms::groups(&db, user.id).await.unwrap();
            (held, groups)
        }
    };
    let (held, groups) = perms(1).await;
    assert_eq!(groups, ["support"]);
    assert_eq!(held.into_iter().collect::<Vec<_>>(), ["auth.view_user"]);
    let (held, _) = perms(14).await;
    assert!(held.contains("auth.change_user"), "{held:?}");

    // Again: users skipped, groups and permissions updated in place, no link twice.
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 new links"), "{stderr}");
    let count = |table: &'static str| {
        let db = app.db.clone();
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
        }
    };
    assert_eq!(count("groups").await, 1);
    assert_eq!(count("user_groups").await, 1);
    let _ = std::fs::remove_file(source.trim_start_matches("sqlite://"));
}

#[tokio::test]
async fn a_dumpdata_file_brings_groups_and_permissions_by_id_or_natural_key() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    // As `manage.py dumpdata contenttypes auth` writes it (user 1, ids), and as
    // `--natural-foreign` writes it (user 2, natural keys), in one file; the group comes
    // after the users that name it.
    let user = |pk: i64, name: &str, groups: Value, perms: Value| {
        json!({ "model": "auth.user", "pk": pk, "fields": {
            "password": "!unusable", "last_login": null, "is_superuser": false,
            "username": name, "first_name": "", "last_name": "", "email": format!("{name}@example.com"),
            "is_staff": true, "is_active": true, "date_joined": "2026-11-25T03:28:29.824Z",
            "groups": groups, "user_permissions": perms } })
    };
    let dump = json!([
        { "model": "contenttypes.contenttype", "pk": 4, "fields": { "app_label": "auth", "model": "user" } },
        { "model": "auth.permission", "pk": 21, "fields": { "name": "Can change user", "content_type": 4, "codename": "change_user" } },
        { "model": "auth.permission", "pk": 24, "fields": { "name": "Can view user", "content_type": ["auth", "user"], "codename": "view_user" } },
        { "model": "auth.permission", "pk": 99, "fields": { "name": "Orphan", "content_type": 77, "codename": "orphan" } },
        user(1, "by_ids", json!([3]), json!([21, 99])),
        user(2, "by_keys", json!([["support"]]), json!([["change_user", "auth", "user"]])),
        { "model": "auth.group", "pk": 3, "fields": { "name": "support", "permissions": [["view_user", "auth", "user"]] } },
    ]);
    let file = std::env::temp_dir().join(format!("dump_{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_vec_pretty(&dump).unwrap()).unwrap();
    let source = file.to_str().unwrap().to_owned();

    // A group an operator made and filled in roster under Django's name is not adopted: its
    // members would get Django's permissions.
    use sea_orm::ConnectionTrait;
    let (member, _) = app.sign_in("chosen").await;
    let planted = uuid::Uuid::now_v7();
    for (sql, values) in [
        (
            "INSERT INTO groups (id, name) VALUES ($1, 'support')",
            vec![planted.into()],
        ),
        (
            "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)",
            vec![
                uuid::Uuid::parse_str(&member).unwrap().into(),
                planted.into(),
            ],
        ),
    ] {
        app.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                app.db.get_database_backend(),
                sql,
                values,
            ))
            .await
            .unwrap();
    }
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("rename that group"), "{stderr}");
    assert_eq!(app.user_count().await, 1, "nothing was imported");
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "DELETE FROM groups WHERE id = $1",
            [planted.into()],
        ))
        .await
        .unwrap();

    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 groups"), "{stderr}");
    let runs: Vec<_> = app
        .audit_log()
        .await
        .into_iter()
        .filter(|e| e.action == "django.imported")
        .collect();
    assert_eq!(runs.len(), 1, "one entry for the committed run");
    for name in ["by_ids", "by_keys"] {
        let user = user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let held = roster::admin::perms::effective(&app.db, &user)
            .await
            .unwrap();
        assert_eq!(
            held.into_iter().collect::<Vec<_>>(),
            ["auth.change_user", "auth.view_user"],
            "{name}: own and the group's; a permission without its content type is left out"
        );
        assert_eq!(
            roster::admin::perms::groups(&app.db, user.id)
                .await
                .unwrap(),
            ["support"]
        );
    }
    // Again: nothing new.
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 new links"), "{stderr}");
    let _ = std::fs::remove_file(file);
}

/// A django-otp code for `device` (from tests/django/otp_devices.json), now, `offset` steps on:
/// made by roster's TOTP (the RFCs' vectors hold it), or by django-otp itself when asked.
fn otp_code(device: &Value, offset: i64, by_django: bool) -> String {
    let key = device["key"].as_str().unwrap();
    let (step, t0, digits, drift) = (
        device["step"].as_i64().unwrap(),
        device["t0"].as_i64().unwrap(),
        device["digits"].as_i64().unwrap(),
        device["drift"].as_i64().unwrap(),
    );
    if by_django {
        let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect("ROSTER_TEST_DJANGO_PYTHON");
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import sys, time; from django_otp.oath import TOTP; \
                 k, s, t0, d, dr, off = sys.argv[1:]; \
                 t = TOTP(bytes.fromhex(k), int(s), int(t0), int(d), int(dr)); \
                 t.time = time.time() + int(off) * int(s); \
                 print(str(t.token()).zfill(int(d)))",
                key,
                &step.to_string(),
                &t0.to_string(),
                &digits.to_string(),
                &drift.to_string(),
                &offset.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout).unwrap().trim().to_owned();
    }
    let secret = roster::mfa::totp::Secret::from_bytes(
        data_encoding::HEXLOWER.decode(key.as_bytes()).unwrap(),
    );
    let params = roster::mfa::totp::Params {
        digits: digits as u32,
        step,
        t0,
        drift,
    };
    roster::mfa::totp::code_at(
        &secret,
        &params,
        chrono::Utc::now().timestamp() + offset * step,
    )
}

async fn devices_come_over(by_django: bool) {
    let app = spawn_app().await;
    let source = std::env::temp_dir().join(format!("otp_{}.sqlite3", uuid::Uuid::now_v7()));
    std::fs::copy(fixture("otp.sqlite3"), &source).unwrap();
    let source = format!("sqlite://{}", source.display());
    let devices: Vec<Value> =
        serde_json::from_str(include_str!("../django/otp_devices.json")).unwrap();
    let (code, report, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("3 TOTP devices, 3 recovery codes"),
        "{stderr}"
    );
    // Bob's unconfirmed device and Carol's second phone are reported, not dropped.
    let not_imported: Vec<(String, String)> = kinds(&report)
        .into_iter()
        .filter(|(_, k)| k == "device_not_imported")
        .collect();
    assert_eq!(
        not_imported,
        [
            ("otp_bob".to_owned(), "device_not_imported".to_owned()),
            ("otp_carol".to_owned(), "device_not_imported".to_owned())
        ],
        "{report:?}"
    );
    const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { token mfaRequired } }";
    const VERIFY: &str =
        "mutation($c: String!) { verifySecondFactor(code: $c) { session { aal } } }";
    let login = |name: &'static str| {
        let app = &app;
        async move {
            app.graphql(
                LOGIN,
                json!({ "i": { "identifier": name, "password": "correct horse battery staple" } }),
            )
            .await
            .body["data"]["login"]
                .clone()
        }
    };
    let verify = |token: String, code: String| {
        let app = &app;
        async move {
            crate::helpers::fresh_client()
                .post(app.url())
                .bearer_auth(token)
                .json(&json!({ "query": VERIFY, "variables": { "c": code } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Alice is asked for her phone's code at the first login, as in Django.
    let first = login("otp_alice").await;
    assert_eq!(first["mfaRequired"], true, "{first}");
    let code_now = otp_code(&devices[0]["totp"][0], 0, by_django);
    let done = verify(first["token"].as_str().unwrap().to_owned(), code_now).await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
    // Her Django backup token works once, typed in any case.
    let token = devices[0]["static"][1].as_str().unwrap().to_uppercase();
    let again = login("otp_alice").await;
    let done = verify(again["token"].as_str().unwrap().to_owned(), token.clone()).await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
    let third = login("otp_alice").await;
    let used = verify(third["token"].as_str().unwrap().to_owned(), token).await;
    assert_eq!(
        used["errors"][0]["extensions"]["fields"][0]["code"], "second_factor_invalid",
        "{used}"
    );
    // Bob's device keeps its 8 digits, 60 s steps and drift.
    let bob = login("otp_bob").await;
    let done = verify(
        bob["token"].as_str().unwrap().to_owned(),
        otp_code(&devices[1]["totp"][0], 0, by_django),
    )
    .await;
    assert_eq!(
        done["data"]["verifySecondFactor"]["session"]["aal"], 2,
        "{done}"
    );
    // Dave had none.
    assert_eq!(login("otp_dave").await["mfaRequired"], false);
    // Alice's factor is reset in roster (a lost phone): a re-run brings nothing back, for
    // anyone (devices come over with their user's first run only).
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "users",
            "reset-mfa",
            "otp_alice",
        ],
        &[],
    )
    .await;
    assert!(out.contains("has no second factor any more"), "{out}");
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("TOTP devices"), "{stderr}");
    assert_eq!(login("otp_alice").await["mfaRequired"], false);
}

#[tokio::test]
async fn django_otp_devices_come_over_and_are_asked_for_at_the_first_login() {
    devices_come_over(false).await;
}

#[tokio::test]
#[ignore = "needs ROSTER_TEST_DJANGO_PYTHON with django-otp"]
async fn codes_made_by_django_otp_itself_open_the_imported_devices() {
    devices_come_over(true).await;
}

/// A code for a base32 TOTP secret now, `offset` steps on (allauth's 6 digits, 30 s): made by
/// roster's TOTP, or by pyotp when asked.
fn allauth_code(secret: &str, offset: i64, by_pyotp: bool) -> String {
    if by_pyotp {
        let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect("ROSTER_TEST_DJANGO_PYTHON");
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import sys, time, pyotp; s, off = sys.argv[1:]; \
                 print(pyotp.TOTP(s).at(time.time() + int(off) * 30))",
                secret,
                &offset.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout).unwrap().trim().to_owned();
    }
    let secret = roster::mfa::totp::Secret::from_bytes(
        data_encoding::BASE32.decode(secret.as_bytes()).unwrap(),
    );
    roster::mfa::totp::code_at(
        &secret,
        &roster::mfa::totp::Params::default(),
        chrono::Utc::now().timestamp() + offset * 30,
    )
}

async fn allauth_authenticators_come_over(by_pyotp: bool) {
    let app = spawn_app().await;
    let source = std::env::temp_dir().join(format!("allauth_{}.sqlite3", uuid::Uuid::now_v7()));
    std::fs::copy(fixture("allauth.sqlite3"), &source).unwrap();
    let source = format!("sqlite://{}", source.display());
    let devices: Vec<Value> =
        serde_json::from_str(include_str!("../django/allauth_devices.json")).unwrap();
    let (code, report, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    // Erin's and Gina's phones; Erin's 9 unused codes and Frank's 2 migrated ones.
    assert!(
        stderr.contains("2 TOTP devices, 11 recovery codes"),
        "{stderr}"
    );
    // Gina's security key and Hank's encrypted secret are reported, not dropped.
    let not_imported: Vec<(String, String)> = kinds(&report)
        .into_iter()
        .filter(|(_, k)| k == "device_not_imported")
        .collect();
    assert_eq!(
        not_imported,
        [
            ("aa_gina".to_owned(), "device_not_imported".to_owned()),
            ("aa_hank".to_owned(), "device_not_imported".to_owned())
        ],
        "{report:?}"
    );
    let reasons = format!("{report:?}");
    assert!(reasons.contains("WebAuthn"), "{reasons}");
    assert!(reasons.contains("encrypted"), "{reasons}");

    const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { token mfaRequired } }";
    const VERIFY: &str =
        "mutation($c: String!) { verifySecondFactor(code: $c) { session { aal } } }";
    let login = |name: &'static str| {
        let app = &app;
        async move {
            app.graphql(
                LOGIN,
                json!({ "i": { "identifier": name, "password": "correct horse battery staple" } }),
            )
            .await
            .body["data"]["login"]
                .clone()
        }
    };
    let verify = |name: &'static str, code: String| {
        let app = &app;
        async move {
            let started = login(name).await;
            assert_eq!(started["mfaRequired"], true, "{name}: {started}");
            let done: Value = crate::helpers::fresh_client()
                .post(app.url())
                .bearer_auth(started["token"].as_str().unwrap())
                .json(&json!({ "query": VERIFY, "variables": { "c": code } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            done["data"]["verifySecondFactor"]["session"]["aal"] == 2
        }
    };
    // Erin: her phone's code, then a recovery code allauth had left (once), never the one she
    // used in Django.
    let erin = &devices[0];
    let phone = allauth_code(erin["totp"].as_str().unwrap(), 0, by_pyotp);
    assert!(verify("aa_erin", phone).await, "Erin's phone");
    let left = erin["unused"][4].as_str().unwrap().to_owned();
    assert!(verify("aa_erin", left.clone()).await, "an unused code");
    assert!(!verify("aa_erin", left).await, "a code works once");
    let used = erin["used"][0].as_str().unwrap().to_owned();
    assert!(!verify("aa_erin", used).await, "a code used in Django");
    // Frank's migrated codes, typed without their hyphen, as allauth allows.
    assert!(
        verify("aa_frank", "K3J9Q2XD".into()).await,
        "a migrated code"
    );
    // Gina keeps her phone; Hank, whose secret roster could not read, signs in with a password
    // alone (the report says so, for an operator to ask him to enrol again).
    let gina = allauth_code(devices[2]["totp"].as_str().unwrap(), 0, by_pyotp);
    assert!(verify("aa_gina", gina).await, "Gina's phone");
    assert_eq!(login("aa_hank").await["mfaRequired"], false);
    // Again: nothing twice.
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("TOTP devices"), "{stderr}");
}

#[tokio::test]
async fn allauth_authenticators_come_over_and_are_asked_for_at_the_first_login() {
    allauth_authenticators_come_over(false).await;
}

#[tokio::test]
#[ignore = "needs ROSTER_TEST_DJANGO_PYTHON with pyotp"]
async fn codes_made_by_pyotp_open_the_imported_allauth_phones() {
    allauth_authenticators_come_over(true).await;
}

#[tokio::test]
async fn an_account_deleted_in_roster_is_never_brought_back_by_a_re_run() {
    let app = spawn_app().await;
    let source = std::env::temp_dir().join(format!("otp_{}.sqlite3", uuid::Uuid::now_v7()));
    std::fs::copy(fixture("otp.sqlite3"), &source).unwrap();
    let source = format!("sqlite://{}", source.display());
    let (code, _, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    // Dave (no second factor) deletes his account.
    let login = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": "otp_dave", "password": "correct horse battery staple" } }),
        )
        .await;
    let token = login.body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", login.body))
        .to_owned();
    let deleted = crate::admin::as_user(
        &app,
        Some(&token),
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": "correct horse battery staple" }),
    )
    .await;
    assert_eq!(deleted["data"]["deleteAccount"], true, "{deleted}");
    // An operator deletes Bob.
    let (boss_id, boss) = app.sign_in("boss").await;
    crate::admin::make_staff(&app, &boss_id, true).await;
    let bob = app
        .users()
        .await
        .into_iter()
        .find(|u| u.username == "otp_bob")
        .unwrap();
    let deleted = crate::admin::as_user(
        &app,
        Some(&boss),
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": bob.id.to_string() }),
    )
    .await;
    assert!(deleted["errors"].is_null(), "{deleted}");
    // The import runs again: both stay deleted, and the report says why.
    let (code, report, stderr) = import(&app, &source, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 deleted in roster"), "{stderr}");
    for name in ["otp_dave", "otp_bob"] {
        assert!(
            kinds(&report).contains(&(name.to_owned(), "deleted".to_owned())),
            "{report:?}"
        );
        assert!(
            app.users().await.iter().all(|u| u.username != name),
            "{name} brought back"
        );
    }
}
