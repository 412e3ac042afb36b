//! What operators do to users and groups (staff status, grants, groups, deletion, sessions,
//! reset emails), each privilege rule tried by the account it should stop, over a real
//! socket on both databases.

use roster::admin::{Actor, Origin};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::admin::{admin_actions, as_user, code, grant, make_staff, member, sql, uuid};
use crate::helpers::{GOOD_PASSWORD, per_hour, spawn_app, spawn_app_with};

const SET_PERMS: &str =
    "mutation($id: ID!, $p: [String!]!) { setUserPermissions(id: $id, permissions: $p) }";
const SET_GROUPS: &str =
    "mutation($id: ID!, $g: [String!]!) { setUserGroups(id: $id, groups: $g) }";
const CREATE_GROUP: &str = "mutation($n: String!, $p: [String!]!) {
    createGroup(input: { name: $n, permissions: $p }) { id name permissions } }";
const UPDATE_GROUP: &str = "mutation($id: ID!, $p: [String!]) {
    updateGroup(id: $id, input: { permissions: $p }) { name permissions } }";
const SET_STAFF: &str = "mutation($id: ID!, $s: Boolean!, $su: Boolean!) {
    setStaff(id: $id, isStaff: $s, isSuperuser: $su) { isStaff isSuperuser } }";
const PERMS_OF: &str = "query($id: ID!) { user(id: $id) { groups permissions userPermissions } }";

fn field_code(answer: &Value) -> (&str, &str) {
    let f = &answer["errors"][0]["extensions"]["fields"][0];
    (
        f["field"].as_str().unwrap_or("none"),
        f["code"].as_str().unwrap_or("none"),
    )
}

#[tokio::test]
async fn permissions_and_groups_are_granted_only_by_those_who_hold_them() {
    let app = spawn_app().await;
    let (boss_id, boss) = member(&app, "boss").await;
    make_staff(&app, &boss_id, true).await;
    // A team lead: staff, may change users and groups and view users, nothing else.
    let (lead_id, lead) = member(&app, "lead").await;
    make_staff(&app, &lead_id, false).await;
    for p in [
        "roster.change_user",
        "roster.change_group",
        "roster.view_user",
    ] {
        grant(&app, &lead_id, p).await;
    }
    let (plain_id, plain) = member(&app, "plain").await;

    // The lead cannot grant what it lacks: directly, through a new group, or a boss's group.
    let answer = as_user(
        &app,
        Some(&lead),
        SET_PERMS,
        json!({ "id": plain_id, "p": ["roster.delete_user"] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&lead),
        CREATE_GROUP,
        json!({ "n": "deleters", "p": ["roster.delete_user"] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&boss),
        CREATE_GROUP,
        json!({ "n": "auditors", "p": ["roster.view_auditlog"] }),
    )
    .await;
    assert_eq!(
        answer["data"]["createGroup"]["permissions"],
        json!(["roster.view_auditlog"])
    );
    let auditors_id = answer["data"]["createGroup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = as_user(
        &app,
        Some(&lead),
        SET_GROUPS,
        json!({ "id": plain_id, "g": ["auditors"] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // Nor strip a group of a permission it does not hold.
    let answer = as_user(
        &app,
        Some(&lead),
        UPDATE_GROUP,
        json!({ "id": auditors_id, "p": [] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");

    // What it holds, it may grant; the user's effective permissions follow at once.
    let answer = as_user(
        &app,
        Some(&lead),
        CREATE_GROUP,
        json!({ "n": "helpers", "p": ["roster.view_user"] }),
    )
    .await;
    assert_eq!(answer["data"]["createGroup"]["name"], "helpers", "{answer}");
    let answer = as_user(
        &app,
        Some(&lead),
        SET_GROUPS,
        json!({ "id": plain_id, "g": ["helpers", "helpers"] }),
    )
    .await;
    assert_eq!(
        answer["data"]["setUserGroups"],
        json!(["helpers"]),
        "{answer}"
    );
    let answer = as_user(
        &app,
        Some(&lead),
        SET_PERMS,
        json!({ "id": plain_id, "p": ["roster.change_user"] }),
    )
    .await;
    assert_eq!(
        answer["data"]["setUserPermissions"],
        json!(["roster.change_user"]),
        "{answer}"
    );
    let answer = as_user(&app, Some(&boss), PERMS_OF, json!({ "id": plain_id })).await;
    assert_eq!(
        answer["data"]["user"],
        json!({ "groups": ["helpers"], "permissions": ["roster.change_user", "roster.view_user"],
                "userPermissions": ["roster.change_user"] }),
        "{answer}"
    );
    // Still not staff: the permissions open nothing yet (Django's admin rule).
    let answer = as_user(
        &app,
        Some(&plain),
        "{ users { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");

    // A staff account is a superuser's to change: its grants, and a group it is in.
    let (colleague_id, _) = member(&app, "colleague").await;
    make_staff(&app, &colleague_id, false).await;
    let answer = as_user(
        &app,
        Some(&lead),
        SET_PERMS,
        json!({ "id": colleague_id, "p": ["roster.view_user"] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&lead),
        SET_PERMS,
        json!({ "id": lead_id, "p": [] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "own grants: {answer}");
    let answer = as_user(
        &app,
        Some(&boss),
        SET_GROUPS,
        json!({ "id": colleague_id, "g": ["helpers"] }),
    )
    .await;
    assert_eq!(
        answer["data"]["setUserGroups"],
        json!(["helpers"]),
        "{answer}"
    );
    let helpers_id = as_user(&app, Some(&boss), "{ groups { id name } }", json!({})).await["data"]
        ["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "helpers")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = as_user(
        &app,
        Some(&lead),
        UPDATE_GROUP,
        json!({ "id": helpers_id, "p": [] }),
    )
    .await;
    assert_eq!(
        code(&answer),
        "FORBIDDEN",
        "a staff member's group: {answer}"
    );
    let answer = as_user(
        &app,
        Some(&lead),
        "mutation($id: ID!) { deleteGroup(id: $id) }",
        json!({ "id": helpers_id }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");

    // Bad input is named by field, and nothing half-done stays.
    let answer = as_user(
        &app,
        Some(&boss),
        SET_PERMS,
        json!({ "id": plain_id, "p": ["roster.view_user", "auth.fly"] }),
    )
    .await;
    assert_eq!(field_code(&answer), ("permissions", "invalid"), "{answer}");
    let answer = as_user(
        &app,
        Some(&boss),
        CREATE_GROUP,
        json!({ "n": " helpers ", "p": [] }),
    )
    .await;
    assert_eq!(field_code(&answer), ("name", "taken"), "{answer}");
    let answer = as_user(
        &app,
        Some(&boss),
        CREATE_GROUP,
        json!({ "n": "  ", "p": [] }),
    )
    .await;
    assert_eq!(field_code(&answer), ("name", "invalid"), "{answer}");
    let answer = as_user(
        &app,
        Some(&boss),
        SET_GROUPS,
        json!({ "id": plain_id, "g": ["help\u{0}ers"] }),
    )
    .await;
    assert_eq!(
        field_code(&answer),
        ("groups", "invalid"),
        "a NUL is refused, not a 500: {answer}"
    );
    let answer = as_user(&app, Some(&boss), PERMS_OF, json!({ "id": plain_id })).await;
    assert_eq!(
        answer["data"]["user"]["userPermissions"],
        json!(["roster.change_user"])
    );

    // The boss deletes a group: its members lose what it gave them.
    let answer = as_user(
        &app,
        Some(&boss),
        "mutation($id: ID!) { deleteGroup(id: $id) }",
        json!({ "id": helpers_id }),
    )
    .await;
    assert_eq!(answer["data"]["deleteGroup"], true, "{answer}");
    let answer = as_user(&app, Some(&boss), PERMS_OF, json!({ "id": plain_id })).await;
    assert_eq!(
        answer["data"]["user"]["permissions"],
        json!(["roster.change_user"])
    );

    // Every change is in the audit log, with what was added.
    let log = as_user(
        &app,
        Some(&boss),
        "{ auditLog(first: 100) { edges { node { action actorUserId detail } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        admin_actions(&log),
        [
            "group.deleted",
            "user.groups_set",
            "user.permissions_set",
            "user.groups_set",
            "group.created",
            "group.created"
        ],
        "{log}"
    );
    let granted = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["action"] == "user.permissions_set")
        .unwrap();
    assert_eq!(granted["actorUserId"], lead_id.as_str());
    let detail: Value = serde_json::from_str(granted["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail,
        json!({ "added": ["roster.change_user"], "removed": [] })
    );
}

#[tokio::test]
async fn only_a_superuser_changes_staff_status_and_the_last_one_stays() {
    let app = spawn_app().await;
    let (root_id, root) = member(&app, "rooty").await;
    make_staff(&app, &root_id, true).await;
    let (lead_id, lead) = member(&app, "lead").await;
    make_staff(&app, &lead_id, false).await;
    grant(&app, &lead_id, "roster.change_user").await;
    let (plain_id, _) = member(&app, "plain").await;

    // Staff with change_user cannot make anyone staff, itself least of all.
    for id in [&plain_id, &lead_id] {
        let answer = as_user(
            &app,
            Some(&lead),
            SET_STAFF,
            json!({ "id": id, "s": true, "su": true }),
        )
        .await;
        assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    }
    // A superuser makes a second superuser, who then demotes the first.
    let answer = as_user(
        &app,
        Some(&root),
        SET_STAFF,
        json!({ "id": plain_id, "s": true, "su": true }),
    )
    .await;
    assert_eq!(
        answer["data"]["setStaff"],
        json!({ "isStaff": true, "isSuperuser": true })
    );
    let (_, second) = {
        let login = app
            .graphql(
                "mutation($i: LoginInput!) { login(input: $i) { token } }",
                json!({ "i": { "identifier": "plain", "password": GOOD_PASSWORD } }),
            )
            .await;
        (
            (),
            login.body["data"]["login"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    // Nobody demotes themselves (another superuser does it).
    let answer = as_user(
        &app,
        Some(&root),
        SET_STAFF,
        json!({ "id": root_id, "s": true, "su": false }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&second),
        SET_STAFF,
        json!({ "id": root_id, "s": false, "su": false }),
    )
    .await;
    assert_eq!(
        answer["data"]["setStaff"],
        json!({ "isStaff": false, "isSuperuser": false })
    );
    // The demoted one's next request holds nothing.
    let answer = as_user(
        &app,
        Some(&root),
        "{ users { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");

    // `plain` is now the last active staff superuser: no command demotes, deactivates or
    // deletes it.
    let db = &app.db;
    let target = uuid::Uuid::parse_str(&plain_id).unwrap();
    let origin = Origin::default();
    let demote =
        roster::admin::set_staff::set_staff(db, &Actor::System, target, true, false, &origin).await;
    assert!(matches!(demote, Err(roster::error::AppError::Forbidden(m)) if m.contains("last")));
    let delete = roster::admin::delete_user::delete_user(db, &Actor::System, target, &origin).await;
    assert!(matches!(delete, Err(roster::error::AppError::Forbidden(m)) if m.contains("last")));
    let deactivate =
        roster::admin::set_active::set_active(db, &Actor::System, target, false, &origin).await;
    assert!(matches!(deactivate, Err(roster::error::AppError::Forbidden(m)) if m.contains("last")));
    assert!(
        app.users()
            .await
            .iter()
            .any(|u| u.id == target && u.is_superuser && u.is_active)
    );
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_frees_their_names_and_keeps_the_audit_entries() {
    let app = spawn_app().await;
    let (ops_id, ops) = member(&app, "ops").await;
    make_staff(&app, &ops_id, false).await;
    grant(&app, &ops_id, "roster.delete_user").await;
    grant(&app, &ops_id, "roster.view_auditlog").await;
    let (changer_id, changer) = member(&app, "changer").await;
    make_staff(&app, &changer_id, false).await;
    grant(&app, &changer_id, "roster.change_user").await;
    let (gone_id, gone) = member(&app, "gone").await;
    sql(
        &app,
        "INSERT INTO user_permissions (user_id, permission_id) \
         SELECT $1, id FROM permissions WHERE codename = 'roster.view_user'",
        vec![uuid(&gone_id)],
    )
    .await;
    let delete = "mutation($id: ID!) { deleteUser(id: $id) }";

    // roster.change_user is not roster.delete_user; nobody deletes themselves or staff.
    let answer = as_user(&app, Some(&changer), delete, json!({ "id": gone_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(&app, Some(&ops), delete, json!({ "id": ops_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(&app, Some(&ops), delete, json!({ "id": changer_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&ops),
        delete,
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
    )
    .await;
    assert_eq!(code(&answer), "NOT_FOUND", "{answer}");

    let answer = as_user(&app, Some(&ops), delete, json!({ "id": gone_id })).await;
    assert_eq!(answer["data"]["deleteUser"], true, "{answer}");
    let me = as_user(&app, Some(&gone), "{ me { id } }", json!({})).await;
    assert_eq!(
        me["data"]["me"],
        Value::Null,
        "the session ended with the user"
    );
    assert!(
        app.users()
            .await
            .iter()
            .all(|u| u.id.to_string() != gone_id)
    );
    // Nothing keyed to the user is left (sessions, grants, queued emails).
    for table in ["sessions", "user_permissions", "outbox", "email_tokens"] {
        let left = app
            .db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                app.db.get_database_backend(),
                format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1"),
                [uuid(&gone_id)],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    // The name and the address are free again; the audit log still names the id.
    let again = app
        .register("gone", "gone@example.com", GOOD_PASSWORD)
        .await;
    assert!(
        again.body["data"]["register"]["id"].is_string(),
        "{}",
        again.body
    );
    let log = as_user(
        &app,
        Some(&ops),
        "query($u: ID) { auditLog(userId: $u) { edges { node { action } } } }",
        json!({ "u": gone_id }),
    )
    .await;
    assert_eq!(
        admin_actions(&log),
        ["user.deleted"],
        "the sign-in stays too"
    );
    assert_eq!(
        log["data"]["auditLog"]["edges"][1]["node"]["action"],
        "login.succeeded"
    );
}

#[tokio::test]
async fn an_operator_ends_a_users_sessions_and_sends_a_reset_link_without_seeing_it() {
    let app = spawn_app().await;
    let (ops_id, ops) = member(&app, "ops").await;
    make_staff(&app, &ops_id, false).await;
    grant(&app, &ops_id, "roster.change_user").await;
    let (user_id, token) = member(&app, "someone").await;
    let (root_id, _) = member(&app, "rooty").await;
    make_staff(&app, &root_id, true).await;

    let end = "mutation($id: ID!) { endUserSessions(id: $id) }";
    let answer = as_user(&app, Some(&ops), end, json!({ "id": root_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(&app, Some(&ops), end, json!({ "id": user_id })).await;
    assert_eq!(answer["data"]["endUserSessions"], 1, "{answer}");
    let me = as_user(&app, Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null);

    let send = "mutation($id: ID!) { sendPasswordReset(id: $id) }";
    let answer = as_user(&app, Some(&ops), send, json!({ "id": root_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(&app, Some(&ops), send, json!({ "id": user_id })).await;
    assert_eq!(answer["data"]["sendPasswordReset"], true, "{answer}");
    assert!(!answer.to_string().contains("token"), "{answer}");
    let queued = app
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "SELECT COUNT(*) FROM outbox WHERE user_id = $1 AND kind = 'reset_password'",
            [uuid(&user_id)],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(queued, 1);
    // A deactivated user gets nothing.
    as_user(
        &app,
        Some(&ops),
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }",
        json!({ "id": user_id }),
    )
    .await;
    let answer = as_user(&app, Some(&ops), send, json!({ "id": user_id })).await;
    assert_eq!(field_code(&answer), ("id", "invalid"), "{answer}");
}

#[tokio::test]
async fn admin_mutations_are_rate_limited_per_actor_and_counted() {
    let app = spawn_app_with(|c| {
        c.limits.admin_rate_limit = per_hour(2);
        c.public_metrics = true;
    })
    .await;
    let (ops_id, ops) = member(&app, "ops").await;
    make_staff(&app, &ops_id, false).await;
    grant(&app, &ops_id, "roster.change_user").await;
    let (user_id, _) = member(&app, "someone").await;
    let end = "mutation($id: ID!) { endUserSessions(id: $id) }";
    for _ in 0..2 {
        let answer = as_user(&app, Some(&ops), end, json!({ "id": user_id })).await;
        assert!(answer["errors"].is_null(), "{answer}");
    }
    let answer = as_user(&app, Some(&ops), end, json!({ "id": user_id })).await;
    assert_eq!(code(&answer), "RATE_LIMITED", "{answer}");
    let metrics = crate::helpers::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"roster_graphql_operations_total{operation="endUserSessions",outcome="ok"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"operation="endUserSessions",outcome="RATE_LIMITED"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_script_with_an_api_key_holds_only_its_permissions_and_stops_when_revoked() {
    let app = spawn_app().await;
    let apikey = async |args: &[&str]| {
        let mut all = vec!["--database-url", app.database_url.as_str(), "apikey"];
        all.extend_from_slice(args);
        crate::helpers::roster_output(&all, &[]).await
    };
    let refused = apikey(&["create", "--name", "nightly", "--permission", "auth.fly"]).await;
    assert!(
        refused.contains("permissions: Unknown: auth.fly"),
        "{refused}"
    );
    let out = apikey(&[
        "create",
        "--name",
        "nightly",
        "--permission",
        "roster.view_user",
        "--permission",
        "roster.change_user",
    ])
    .await;
    let key = out.lines().next().unwrap().to_owned();
    assert!(key.starts_with("rsk_") && key.len() == 47, "{out}");
    assert!(out.contains("shown once"), "{out}");
    let taken = apikey(&[
        "create",
        "--name",
        "nightly",
        "--permission",
        "roster.view_user",
    ])
    .await;
    assert!(taken.contains("name") && taken.contains("taken"), "{taken}");
    // Only the digest is stored.
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT id, secret_hash FROM api_keys",
        ))
        .await
        .unwrap()
        .unwrap();
    let key_id: uuid::Uuid = row.try_get_by_index(0).unwrap();
    let digest: String = row.try_get_by_index(1).unwrap();
    assert_eq!(digest.len(), 64);
    assert!(!key.contains(&digest) && !digest.contains(&key[4..]));

    let (boss_id, boss) = member(&app, "boss").await;
    make_staff(&app, &boss_id, true).await;
    let (plain_id, plain) = member(&app, "plain").await;
    let (staffer_id, _) = member(&app, "staffer").await;
    make_staff(&app, &staffer_id, false).await;

    // The key reads users, as its permission says.
    let answer = as_user(
        &app,
        Some(&key),
        "{ users { edges { node { username } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        answer["data"]["users"]["edges"].as_array().map(Vec::len),
        Some(3),
        "{answer}"
    );
    // It is no session: not a person, not for forward auth, nothing else.
    let me = as_user(&app, Some(&key), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null, "{me}");
    let answer = as_user(&app, Some(&key), "{ sessions { id } }", json!({})).await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    let check = crate::helpers::fresh_client()
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), reqwest::StatusCode::UNAUTHORIZED);
    // What it was not given, it cannot do or give.
    let answer = as_user(
        &app,
        Some(&key),
        "{ auditLog { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&key),
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": plain_id }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&key),
        SET_PERMS,
        json!({ "id": plain_id, "p": ["roster.delete_user"] }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // Never staff: it cannot touch a staff account or make one.
    let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }";
    let answer = as_user(&app, Some(&key), deactivate, json!({ "id": staffer_id })).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = as_user(
        &app,
        Some(&key),
        SET_STAFF,
        json!({ "id": plain_id, "s": true, "su": true }),
    )
    .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // What it holds works, and the audit log names the key.
    let answer = as_user(&app, Some(&key), deactivate, json!({ "id": plain_id })).await;
    assert_eq!(
        answer["data"]["deactivateUser"]["isActive"], false,
        "{answer}"
    );
    let me = as_user(&app, Some(&plain), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null);
    let log = as_user(
        &app,
        Some(&boss),
        "query($u: ID) { auditLog(userId: $u) { edges { node {
        action actorKind actorUserId actorApiKeyId } } } }",
        json!({ "u": plain_id }),
    )
    .await;
    assert_eq!(
        log["data"]["auditLog"]["edges"][0]["node"],
        json!({ "action": "user.deactivated",
        "actorKind": "api_key", "actorUserId": null, "actorApiKeyId": key_id.to_string() }),
        "{log}"
    );

    // The list shows when it was last used, never the key; revoked, it opens nothing.
    let listed = apikey(&["list"]).await;
    assert!(
        listed.contains("nightly") && listed.contains("roster.change_user,roster.view_user"),
        "{listed}"
    );
    assert!(!listed.contains(&key[4..]), "{listed}");
    let revoked = apikey(&["revoke", "nightly"]).await;
    assert!(revoked.contains("revoked"), "{revoked}");
    let answer = as_user(
        &app,
        Some(&key),
        "{ users { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    let unknown = apikey(&["revoke", "nobody"]).await;
    assert!(unknown.contains("no key has that id or name"), "{unknown}");
    // A key-shaped string that is no key is anonymous too.
    let forged = format!("rsk_{}", "A".repeat(43));
    let answer = as_user(
        &app,
        Some(&forged),
        "{ users { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
}

#[tokio::test]
async fn changepassword_applies_the_policy_and_ends_the_users_sessions() {
    let app = spawn_app().await;
    let (id, token) = member(&app, "forgetful").await;
    let run = async |password: &str, name: &str| {
        crate::helpers::roster_output(
            &[
                "--database-url",
                &app.database_url,
                "changepassword",
                name,
                "--no-input",
            ],
            &[("ROSTER_NEW_PASSWORD", password)],
        )
        .await
    };
    let weak = run("12345678", "forgetful").await;
    assert!(weak.contains("password_"), "{weak}");
    let me = as_user(&app, Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(
        me["data"]["me"]["id"],
        id.as_str(),
        "a refused password changes nothing"
    );
    let nobody = run("a perfectly fine passphrase 42", "nobody").await;
    assert!(nobody.contains("no user is named"), "{nobody}");
    let done = run("a perfectly fine passphrase 42", "forgetful").await;
    assert!(done.contains("1 session(s) ended"), "{done}");
    assert!(!done.contains("passphrase"), "{done}");
    let me = as_user(&app, Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null);
    let login = app.graphql("mutation($i: LoginInput!) { login(input: $i) { token } }",
        json!({ "i": { "identifier": "forgetful", "password": "a perfectly fine passphrase 42" } })).await;
    assert!(
        login.body["data"]["login"]["token"].is_string(),
        "{}",
        login.body
    );
    let audited = app.db.query_one_raw(sea_orm::Statement::from_sql_and_values(
        app.db.get_database_backend(),
        "SELECT actor_kind FROM audit_log WHERE action = 'user.password_changed' AND target_user_id = $1",
        [uuid(&id)],
    )).await.unwrap().unwrap().try_get_by_index::<String>(0).unwrap();
    assert_eq!(audited, "system");
}

#[tokio::test]
async fn the_admin_page_is_compiled_in_under_a_strict_csp_with_nothing_external() {
    let app = spawn_app().await;
    let page = crate::helpers::get(format!("http://{}/admin", app.addr))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="pages/admin.js">"#), "{html}");
    for asset in ["admin.js", "admin.css"] {
        let body = crate::helpers::get(format!("http://{}/pages/{asset}", app.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} fetches nothing external"
        );
        // Server values are set as text, never parsed as HTML.
        assert!(!body.contains("innerHTML"), "{asset}");
    }
}

/// docs/operations.md, "Running the user base": a superuser, a Django import, finding a user
/// by an address prefix, deactivating them (their session ends), the audit log; then the
/// same from a script with an API key.
#[tokio::test]
async fn the_operators_walkthrough_works_as_documented() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &url,
            "createsuperuser",
            "--username",
            "chief",
            "--email",
            "chief@example.com",
            "--no-input",
        ],
        &[("ROSTER_SUPERUSER_PASSWORD", GOOD_PASSWORD)],
    )
    .await;
    assert!(out.contains("chief is a superuser"), "{out}");
    let (code_, _, stderr) =
        crate::django::import(&app, &crate::django::django_sqlite(), &[]).await;
    assert_eq!(code_, 0, "{stderr}");

    let chief = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": "chief", "password": GOOD_PASSWORD } }),
        )
        .await
        .body["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // An imported user, signed in with their Django password.
    let theirs = app
        .graphql("mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": "user_argon2", "password": "correct horse battery staple" } }))
        .await;
    let theirs = theirs.body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", theirs.body))
        .to_owned();
    let find = "query($s: String) { users(filter: {search: $s}) { edges { node { id username email } } } }";
    let found = as_user(&app, Some(&chief), find, json!({ "s": "ARGON" })).await;
    let edges = found["data"]["users"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"));
    let target = edges
        .iter()
        .find(|e| e["node"]["username"] == "user_argon2")
        .unwrap_or_else(|| panic!("by the address's prefix: {found}"))["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }";
    let done = as_user(&app, Some(&chief), deactivate, json!({ "id": target })).await;
    assert_eq!(done["data"]["deactivateUser"]["isActive"], false, "{done}");
    assert_eq!(
        as_user(&app, Some(&theirs), "{ me { id } }", json!({})).await["data"]["me"],
        Value::Null
    );
    let log = as_user(
        &app,
        Some(&chief),
        "query($u: ID) { auditLog(userId: $u) { edges { node { action actorKind } } } }",
        json!({ "u": target }),
    )
    .await;
    assert_eq!(
        log["data"]["auditLog"]["edges"][0]["node"],
        json!({ "action": "user.deactivated", "actorKind": "user" }),
        "{log}"
    );

    // The script.
    let key = crate::helpers::roster_output(
        &[
            "--database-url",
            &url,
            "apikey",
            "create",
            "--name",
            "offboarding",
            "--permission",
            "roster.view_user",
            "--permission",
            "roster.change_user",
        ],
        &[],
    )
    .await;
    let key = key.lines().next().unwrap().to_owned();
    let found = as_user(&app, Some(&key), find, json!({ "s": "argon" })).await;
    assert!(found.to_string().contains("user_argon2"), "{found}");
    let reactivate = "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }";
    let done = as_user(&app, Some(&key), reactivate, json!({ "id": target })).await;
    assert_eq!(done["data"]["reactivateUser"]["isActive"], true, "{done}");
    let log = as_user(
        &app,
        Some(&chief),
        "query($u: ID) { auditLog(userId: $u) { edges { node { action actorKind } } } }",
        json!({ "u": target }),
    )
    .await;
    assert_eq!(
        log["data"]["auditLog"]["edges"][0]["node"],
        json!({ "action": "user.reactivated", "actorKind": "api_key" }),
        "{log}"
    );
    // The whole log, by action.
    let by_action = as_user(
        &app,
        Some(&chief),
        "{ auditLog(action: \"login.succeeded\") { edges { node { action } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        by_action["data"]["auditLog"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{by_action}"
    );
}
