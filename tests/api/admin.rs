//! The admin API on Django's permission model, over a real socket, on both databases.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{GOOD_PASSWORD, TestApp, fresh_client, spawn_app};

/// Registers `name` and signs in: (user id, session token).
pub async fn member(app: &TestApp, name: &str) -> (String, String) {
    app.sign_in(name).await
}

pub async fn sql(app: &TestApp, statement: &str, values: Vec<sea_orm::Value>) {
    app.db
        .execute_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            statement,
            values,
        ))
        .await
        .unwrap();
}

pub fn uuid(id: &str) -> sea_orm::Value {
    uuid::Uuid::parse_str(id).unwrap().into()
}

/// Makes `id` staff (and superuser) as an import from Django would.
pub async fn make_staff(app: &TestApp, id: &str, superuser: bool) {
    sql(
        app,
        "UPDATE users SET is_staff = $1, is_superuser = $2 WHERE id = $3",
        vec![true.into(), superuser.into(), uuid(id)],
    )
    .await;
}

/// Grants `codename` to `id` directly.
pub async fn grant(app: &TestApp, id: &str, codename: &str) {
    sql(
        app,
        "INSERT INTO user_permissions (user_id, permission_id) \
         SELECT $1, id FROM permissions WHERE codename = $2",
        vec![uuid(id), codename.into()],
    )
    .await;
}

/// Puts `id` in a new group holding `codenames`.
pub async fn grant_through_group(app: &TestApp, id: &str, group: &str, codenames: &[&str]) {
    let group_id = uuid::Uuid::now_v7();
    sql(
        app,
        "INSERT INTO groups (id, name) VALUES ($1, $2)",
        vec![group_id.into(), group.into()],
    )
    .await;
    for codename in codenames {
        sql(
            app,
            "INSERT INTO group_permissions (group_id, permission_id) \
             SELECT $1, id FROM permissions WHERE codename = $2",
            vec![group_id.into(), (*codename).into()],
        )
        .await;
    }
    sql(
        app,
        "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)",
        vec![uuid(id), group_id.into()],
    )
    .await;
}

/// A GraphQL request as `token` (anonymous with `None`): the answer and the request id sent.
pub async fn as_user(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = fresh_client()
        .post(app.url())
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The actions of an `auditLog` answer, newest first, without the sign-ins (security events
/// of their own, next to every admin action of a test).
pub fn admin_actions(log: &Value) -> Vec<&str> {
    log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{log}"))
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .filter(|a| !a.starts_with("login."))
        .collect()
}

pub fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("none")
}

const USERS: &str = "query($f: UserFilter, $first: Int, $after: String) {
    users(filter: $f, first: $first, after: $after) {
        edges { cursor node { id username email isStaff passwordFormat } }
        pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn the_admin_api_needs_active_staff_holding_the_permission() {
    let app = spawn_app().await;
    let (plain_id, plain) = member(&app, "plain").await;
    let (staff_id, staff) = member(&app, "staffer").await;
    let (viewer_id, viewer) = member(&app, "viewer").await;
    let (boss_id, boss) = member(&app, "boss").await;
    make_staff(&app, &staff_id, false).await;
    make_staff(&app, &viewer_id, false).await;
    grant_through_group(&app, &viewer_id, "support", &["roster.view_user"]).await;
    make_staff(&app, &boss_id, true).await;
    // A permission without `is_staff` opens nothing, as in Django's admin.
    grant(&app, &plain_id, "roster.view_user").await;

    let vars = json!({});
    assert_eq!(
        code(&as_user(&app, None, USERS, vars.clone()).await),
        "UNAUTHENTICATED"
    );
    for token in [&plain, &staff] {
        let answer = as_user(&app, Some(token), USERS, vars.clone()).await;
        assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
        assert!(answer["data"].is_null(), "nothing ran: {answer}");
    }
    // Through a group; and a superuser holds every permission.
    for token in [&viewer, &boss] {
        let answer = as_user(&app, Some(token), USERS, vars.clone()).await;
        assert_eq!(
            answer["data"]["users"]["edges"].as_array().unwrap().len(),
            4,
            "{answer}"
        );
    }
    // view_user does not give change_user.
    let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }";
    let answer = as_user(&app, Some(&viewer), deactivate, json!({ "id": plain_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // The user's effective permissions and groups, and the hash's format, never the hash.
    let one = as_user(
        &app,
        Some(&boss),
        "query($id: ID!) { user(id: $id) { username groups permissions passwordFormat isStaff } }",
        json!({ "id": viewer_id }),
    )
    .await;
    assert_eq!(
        one["data"]["user"],
        json!({ "username": "viewer", "groups": ["support"], "permissions": ["roster.view_user"],
                "passwordFormat": "argon2id", "isStaff": true }),
        "{one}"
    );
    assert!(!one.to_string().contains("$argon2id$"), "no hash: {one}");
    let nobody = as_user(
        &app,
        Some(&boss),
        "query($id: ID!) { user(id: $id) { username } }",
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
    )
    .await;
    assert_eq!(nobody["data"]["user"], Value::Null);
}

#[tokio::test]
async fn users_are_found_by_a_prefix_of_username_or_email_and_paged_without_repeats() {
    let app = spawn_app().await;
    let (boss_id, boss) = member(&app, "boss").await;
    make_staff(&app, &boss_id, true).await;
    for (name, email) in [
        ("alice", "alice@example.com"),
        ("Alicia", "a.l@example.com"),
        ("bob", "ali.bob@example.com"),
        ("carol", "carol@example.com"),
    ] {
        assert_eq!(app.register(name, email, GOOD_PASSWORD).await.status, 200);
    }
    let names = |answer: &Value| -> Vec<String> {
        let mut v: Vec<String> = answer["data"]["users"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // A prefix of either, in any case or width (canonical forms are compared).
    for search in ["ali", "ALI", "ＡＬＩ"] {
        let answer = as_user(
            &app,
            Some(&boss),
            USERS,
            json!({ "f": { "search": search } }),
        )
        .await;
        assert_eq!(
            names(&answer),
            ["Alicia", "alice", "bob"],
            "{search}: {answer}"
        );
    }
    let answer = as_user(
        &app,
        Some(&boss),
        USERS,
        json!({ "f": { "search": "carol@" } }),
    )
    .await;
    assert_eq!(names(&answer), ["carol"]);
    let answer = as_user(
        &app,
        Some(&boss),
        USERS,
        json!({ "f": { "search": "lice" } }),
    )
    .await;
    assert!(
        names(&answer).is_empty(),
        "a prefix, not a substring: {answer}"
    );

    // Two at a time, with a user registered between pages: nobody twice, nobody missed of
    // those who were there, and the newcomer (a later id) at the end.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let answer = as_user(
            &app,
            Some(&boss),
            USERS,
            json!({ "first": 2, "after": after }),
        )
        .await;
        let edges = answer["data"]["users"]["edges"].as_array().unwrap().clone();
        assert!(edges.len() <= 2);
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["username"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if pages == 1 {
            assert_eq!(
                app.register("zed", "zed@example.com", GOOD_PASSWORD)
                    .await
                    .status,
                200
            );
        }
        if !answer["data"]["users"]["pageInfo"]["hasNextPage"]
            .as_bool()
            .unwrap()
        {
            break;
        }
        after = answer["data"]["users"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no user twice: {seen:?}");
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("zed"));
    // Bounds: at most 100 a page, a search of at most 256 bytes, a cursor that is an id.
    for (vars, field) in [
        (json!({ "first": 101 }), "first"),
        (json!({ "first": 0 }), "first"),
        (json!({ "after": "x" }), "after"),
        (json!({ "f": { "search": "a".repeat(257) } }), "search"),
    ] {
        let answer = as_user(&app, Some(&boss), USERS, vars).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["fields"][0]["field"],
            field
        );
    }
}

#[tokio::test]
async fn the_user_search_is_answered_from_the_indexes() {
    use roster::admin::users::{Filter, query};
    use sea_orm::QueryTrait as _;
    let app = spawn_app().await;
    let backend = app.db.get_database_backend();
    let filter = Filter {
        search: Some("ali".into()),
        ..Filter::default()
    };
    let sql = query(backend, &filter, 20, None).build(backend).to_string();
    let plan: Vec<String> = if backend == sea_orm::DbBackend::Postgres {
        // A planner on an empty table may well prefer a scan; what is proved here is that
        // the indexes answer the search (byte-ordered, as the ranges need).
        let txn = sea_orm::TransactionTrait::begin(&app.db).await.unwrap();
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
        let rows = txn
            .query_all_raw(Statement::from_string(backend, format!("EXPLAIN {sql}")))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect()
    } else {
        let rows = app
            .db
            .query_all_raw(Statement::from_string(
                backend,
                format!("EXPLAIN QUERY PLAN {sql}"),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(3).unwrap())
            .collect()
    };
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan on users") && !plan.contains("SCAN users"),
        "{plan}"
    );
    for index in ["username_canonical", "email_canonical"] {
        assert!(plan.contains(index), "{index} not used:\n{plan}");
    }
}

#[tokio::test]
async fn deactivation_ends_the_users_sessions_at_once_and_is_in_the_audit_log() {
    let app = spawn_app().await;
    let (admin_id, admin) = member(&app, "admin_a").await;
    make_staff(&app, &admin_id, false).await;
    grant_through_group(
        &app,
        &admin_id,
        "ops",
        &["roster.change_user", "roster.view_auditlog"],
    )
    .await;
    let (target_id, target) = member(&app, "target").await;
    let me = "{ me { id } }";
    assert_eq!(
        as_user(&app, Some(&target), me, json!({})).await["data"]["me"]["id"],
        target_id
    );

    let request_id = "audit-trail-0001";
    let answer: Value = fresh_client()
        .post(app.url())
        .bearer_auth(&admin)
        .header("x-request-id", request_id)
        .json(
            &json!({ "query": "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
                       "variables": { "id": target_id } }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["deactivateUser"]["isActive"], false,
        "{answer}"
    );
    // The next request of the user is anonymous; the forward-auth check refuses.
    assert_eq!(
        as_user(&app, Some(&target), me, json!({})).await["data"]["me"],
        Value::Null
    );
    let check = fresh_client()
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(&target)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), StatusCode::UNAUTHORIZED);
    let log = as_user(
        &app,
        Some(&admin),
        "query($u: ID) { auditLog(userId: $u) { edges { node {
            action actorKind actorUserId targetUserId ip requestId } } } }",
        json!({ "u": target_id }),
    )
    .await;
    assert_eq!(
        log["data"]["auditLog"]["edges"][0]["node"],
        json!({ "action": "user.deactivated", "actorKind": "user", "actorUserId": admin_id,
                "targetUserId": target_id, "ip": "127.0.0.1", "requestId": request_id }),
        "{log}"
    );
    // Reactivated: the ended sessions stay ended; a new login works.
    let answer = as_user(
        &app,
        Some(&admin),
        "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }",
        json!({ "id": target_id }),
    )
    .await;
    assert_eq!(
        answer["data"]["reactivateUser"]["isActive"], true,
        "{answer}"
    );
    assert_eq!(
        as_user(&app, Some(&target), me, json!({})).await["data"]["me"],
        Value::Null
    );
    let log = as_user(
        &app,
        Some(&admin),
        "{ auditLog { edges { node { action } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        admin_actions(&log),
        ["user.reactivated", "user.deactivated"]
    );
}

#[tokio::test]
async fn privilege_rules_protect_superusers_oneself_and_the_last_superuser() {
    let app = spawn_app().await;
    let (staff_id, staff) = member(&app, "staff_b").await;
    make_staff(&app, &staff_id, false).await;
    grant(&app, &staff_id, "roster.change_user").await;
    let (root_id, root) = member(&app, "root_a").await;
    make_staff(&app, &root_id, true).await;
    let (other_root_id, _) = member(&app, "root_b").await;
    make_staff(&app, &other_root_id, true).await;
    let set = |active: bool| {
        if active {
            "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }"
        } else {
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }"
        }
    };
    // Staff cannot touch a superuser or another staff account; nobody deactivates themselves.
    let answer = as_user(&app, Some(&staff), set(false), json!({ "id": root_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let (colleague_id, _) = member(&app, "colleague").await;
    make_staff(&app, &colleague_id, false).await;
    let answer = as_user(
        &app,
        Some(&staff),
        set(false),
        json!({ "id": colleague_id }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // A plain user is theirs to change; the answer is the state, not the record.
    let (plain_id, _) = member(&app, "plain_c").await;
    let answer = as_user(&app, Some(&staff), set(false), json!({ "id": plain_id })).await;
    assert_eq!(
        answer["data"]["deactivateUser"]["isActive"], false,
        "{answer}"
    );
    let record = as_user(
        &app,
        Some(&staff),
        "mutation($id: ID!) { reactivateUser(id: $id) { email } }",
        json!({ "id": plain_id }),
    )
    .await;
    assert_eq!(code(&record), "GRAPHQL_VALIDATION_FAILED", "{record}");
    let answer = as_user(&app, Some(&staff), set(false), json!({ "id": staff_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // An unknown id.
    let answer = as_user(
        &app,
        Some(&root),
        set(false),
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
    )
    .await;
    assert_eq!(code(&answer), "NOT_FOUND", "{answer}");
    // A superuser may deactivate another while one active superuser remains…
    let answer = as_user(
        &app,
        Some(&root),
        set(false),
        json!({ "id": other_root_id }),
    )
    .await;
    assert_eq!(
        answer["data"]["deactivateUser"]["isActive"], false,
        "{answer}"
    );
    // …and the command cannot deactivate the last one.
    let users = async |action: &str, name: &str| {
        crate::helpers::roster_output(
            &["--database-url", &app.database_url, "users", action, name],
            &[],
        )
        .await
    };
    let out = users("deactivate", "root_a").await;
    assert!(out.contains("last active superuser"), "{out}");
    let out = users("reactivate", "root_b").await;
    assert!(out.contains("root_b is active"), "{out}");
    let out = users("deactivate", "root_a").await;
    assert!(out.contains("deactivated"), "{out}");
    let log = as_user(
        &app,
        None,
        "{ auditLog { edges { node { action } } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&log), "UNAUTHENTICATED");
}

#[tokio::test]
async fn createsuperuser_applies_the_password_policy_and_records_the_new_superuser() {
    let app = spawn_app().await;
    let run = async |password: &str| {
        crate::helpers::roster_output(
            &[
                "--database-url",
                &app.database_url,
                "createsuperuser",
                "--username",
                "chief",
                "--email",
                "chief@example.com",
                "--no-input",
            ],
            &[("ROSTER_SUPERUSER_PASSWORD", password)],
        )
        .await
    };
    let weak = run("12345678").await;
    assert!(
        weak.contains("password") && weak.contains("password_"),
        "{weak}"
    );
    assert_eq!(app.user_count().await, 0, "nothing written");
    let made = run(GOOD_PASSWORD).await;
    assert!(made.contains("chief is a superuser"), "{made}");
    assert!(!made.contains(GOOD_PASSWORD), "{made}");
    let user = app.users().await.remove(0);
    assert!(user.is_staff && user.is_superuser && user.is_active);
    let login = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": "chief", "password": GOOD_PASSWORD } }),
        )
        .await;
    let token = login.body["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = as_user(
        &app,
        Some(&token),
        "{ auditLog { edges { node { action actorKind targetUserId } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        log["data"]["auditLog"]["edges"][1]["node"],
        json!({ "action": "user.created_superuser", "actorKind": "system",
                "targetUserId": user.id.to_string() }),
        "{log}"
    );
    assert_eq!(
        log["data"]["auditLog"]["edges"][0]["node"]["action"], "login.succeeded",
        "{log}"
    );
    // Without --no-input and without a terminal, it says how to give the password.
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "createsuperuser",
            "--username",
            "other",
            "--email",
            "other@example.com",
        ],
        &[],
    )
    .await;
    assert!(out.contains("not a terminal"), "{out}");
}
