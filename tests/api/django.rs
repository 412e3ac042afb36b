//! Users carrying Django password hashes (as an import will leave them) log in with their
//! passwords, and the first login replaces the hash with roster's Argon2id.

use roster::accounts::canonical::{canonical, email_canonical};
use roster::entity::user;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// One Django hash per hasher, at cheap parameters, from `tests/django/hashes.jsonl`.
fn django_hashes() -> Vec<(String, String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    include_str!("../django/hashes.jsonl")
        .lines()
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
    assert_eq!(hashes.len(), 7, "one per Django 5.2 hasher: {hashes:?}");
    for (hasher, password, encoded) in &hashes {
        let username = format!("django_{hasher}");
        insert_user(&app, &username, encoded).await;
        let wrong = login(&app, &username, &format!("{password}x")).await;
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
