//! The `register` contract (issue: the register mutation, end to end).

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use serde_json::json;

use crate::helpers::{GOOD_PASSWORD, spawn_app, unique_user};

#[tokio::test]
async fn a_valid_registration_returns_the_user_and_stores_it_once() {
    let app = spawn_app().await;
    let answer = app.register("Ada", "Ada@Example.COM", GOOD_PASSWORD).await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let user = &answer.body["data"]["register"];
    assert_eq!(user["username"], "Ada");
    assert_eq!(user["email"], "Ada@example.com", "the domain is lowercased");
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    assert!(answer.body.get("errors").is_none());

    let rows = app.users().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id, id);
    assert_eq!(row.username_canonical, "ada");
    assert_eq!(row.email_canonical, "ada@example.com");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(user["dateJoined"].as_str().unwrap()).unwrap(),
        row.date_joined
    );
    assert!(
        row.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        row.password_hash
    );
    assert!(!row.password_hash.contains(GOOD_PASSWORD));
    let parsed = PasswordHash::new(&row.password_hash).unwrap();
    assert!(
        Argon2::default()
            .verify_password(GOOD_PASSWORD.as_bytes(), &parsed)
            .is_ok()
    );
    assert!(
        Argon2::default()
            .verify_password(b"wrong password", &parsed)
            .is_err()
    );
}

#[tokio::test]
async fn every_violation_of_every_field_comes_back_in_one_error() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com", GOOD_PASSWORD)
        .await;

    let answer = app.register("ALICE", "not-an-email", "1234").await;

    assert_eq!(answer.status, 200);
    assert!(answer.body["data"].is_null());
    let errors = answer.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "one error carries every field problem");
    assert_eq!(errors[0]["message"], "invalid input");
    assert_eq!(errors[0]["path"], json!(["register"]));
    let codes = answer.field_codes();
    let expected = [
        ("username", "taken"),
        ("email", "email_invalid"),
        ("password", "password_too_short"),
        ("password", "password_too_common"),
        ("password", "password_entirely_numeric"),
        ("password", "password_too_weak"),
    ];
    let got: Vec<(&str, &str)> = codes
        .iter()
        .map(|(f, c)| (f.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, expected);
    for field in errors[0]["extensions"]["fields"].as_array().unwrap() {
        assert!(!field["message"].as_str().unwrap().is_empty());
        // Exactly these keys: validator's `params` (which quote the submitted value) never
        // reach the client.
        let mut keys: Vec<&str> = field
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["code", "field", "message"], "{field}");
    }
    // And no submitted value is quoted anywhere in the answer.
    let text = answer.body.to_string();
    for submitted in ["not-an-email", "\"1234\"", "ALICE"] {
        assert!(!text.contains(submitted), "{submitted} echoed in {text}");
    }
    assert_eq!(app.user_count().await, 1, "nothing new was written");
}

#[tokio::test]
async fn usernames_and_emails_collide_ignoring_case_and_compatibility_forms() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("alice", "alice@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );

    // (username, email, which field collides, why)
    let cases = [
        ("Alice", "other1@example.com", "username", "ASCII case"),
        (
            "ＡＬＩＣＥ",
            "other2@example.com",
            "username",
            "fullwidth NFKC form",
        ),
        (
            "carol_x",
            "ALICE@EXAMPLE.COM",
            "email",
            "the whole address, case-folded",
        ),
        ("bob_2", "Alice@Example.Com", "email", "mixed-case address"),
    ];
    for (username, email, field, why) in cases {
        let answer = app.register(username, email, GOOD_PASSWORD).await;
        assert_eq!(
            answer.field_codes(),
            vec![(field.to_owned(), "taken".to_owned())],
            "{why}: {}",
            answer.body
        );
    }
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn missing_or_unknown_input_fields_are_rejected_before_anything_runs() {
    let app = spawn_app().await;
    let (username, email) = unique_user();
    let cases = [
        (
            json!({ "username": username, "email": email }),
            "password missing",
        ),
        (
            json!({ "username": username, "email": email, "password": GOOD_PASSWORD, "isAdmin": true }),
            "unknown field",
        ),
        (
            json!({ "username": username, "email": email, "password": 12345678 }),
            "wrong type",
        ),
        (
            json!({ "username": null, "email": email, "password": GOOD_PASSWORD }),
            "null",
        ),
    ];
    for (input, why) in cases {
        let answer = app
            .graphql(crate::helpers::REGISTER, json!({ "input": input }))
            .await;
        assert_eq!(answer.status, 400, "{why}: {}", answer.body);
        assert_eq!(
            answer.code(),
            "GRAPHQL_VALIDATION_FAILED",
            "{why}: {}",
            answer.body
        );
        assert!(answer.body.get("data").is_none(), "{why}: no data key");
    }
    assert_eq!(app.user_count().await, 0);
}

/// Runs 50 concurrent registrations and counts successes and `taken` on `field`; any other
/// answer fails the test.
async fn fifty_at_once(
    app: &std::sync::Arc<crate::helpers::TestApp>,
    field: &str,
    make: impl Fn(usize) -> (String, String),
) -> (usize, usize) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = app.clone();
            let (username, email) = make(i);
            tokio::spawn(async move { app.register(&username, &email, GOOD_PASSWORD).await })
        })
        .collect();
    let (mut ok, mut taken, mut other) = (0, 0, Vec::new());
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.body["data"]["register"]["id"].is_string() {
            ok += 1;
        } else if answer.code() == "BAD_USER_INPUT"
            && answer.field_codes() == vec![(field.to_owned(), "taken".to_owned())]
        {
            taken += 1;
        } else {
            other.push(answer.body);
        }
    }
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    (ok, taken)
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_name_make_exactly_one_user() {
    let app = std::sync::Arc::new(spawn_app().await);
    let spellings = ["racer", "Racer", "RACER", "rAcEr", "ＲＡＣＥＲ"];
    let counts = fifty_at_once(&app, "username", |i| {
        (
            spellings[i % spellings.len()].to_owned(),
            format!("racer{i}@example.com"),
        )
    })
    .await;
    assert_eq!(counts, (1, 49));
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_email_make_exactly_one_user() {
    let app = std::sync::Arc::new(spawn_app().await);
    let spellings = [
        "racer@example.com",
        "Racer@Example.com",
        "RACER@EXAMPLE.COM",
    ];
    let counts = fifty_at_once(&app, "email", |i| {
        (
            format!("rider{i}"),
            spellings[i % spellings.len()].to_owned(),
        )
    })
    .await;
    assert_eq!(counts, (1, 49));
    assert_eq!(app.user_count().await, 1);
}
