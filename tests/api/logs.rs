//! No password, hash or full email address ever reaches a log line.

use crate::helpers::{LOGS, spawn_app};

#[tokio::test]
async fn logs_never_contain_passwords_hashes_or_email_addresses() {
    let app = spawn_app().await;
    let password = "zebra-quartz-LOGCANARY-7731";
    let email = "canary.person@logs-example.com";
    // Success, a taken name (second call), and a policy failure with a canary password.
    app.register("log_canary", email, password).await;
    app.register("log_canary", email, password).await;
    app.register("log canary", "bad@", "LOGCANARY").await;
    // A request error with the password in the document itself.
    app.graphql(
        &format!("mutation {{ register(input: {{username: \"x\", email: \"{email}\", password: \"{password}\", extra: 1}}) {{ id }} }}"),
        serde_json::json!({}),
    )
    .await;
    let stored_hash = app.users().await[0].password_hash.clone();

    let logs = String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned();
    assert!(
        logs.contains("log_canary"),
        "the capture works: the username is logged"
    );
    for secret in [
        password,
        "LOGCANARY",
        email,
        stored_hash.as_str(),
        "$argon2id$",
    ] {
        assert!(!logs.contains(secret), "{secret:?} found in the logs");
    }
}
