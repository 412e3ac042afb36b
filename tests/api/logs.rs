//! Nothing a client sent reaches a log line before it is validated, and no password, hash or
//! email address ever does — in the text and the JSON format, and in no response body.

use serde_json::json;

use crate::helpers::{LOGS, REGISTER, spawn_app};

#[tokio::test]
async fn logs_and_answers_never_contain_passwords_hashes_or_submitted_names() {
    let app = spawn_app().await;
    let password = "zebra-quartz-LOGCANARY-7731";
    let email = "canary.person@logs-example.com";
    // An email-shaped username is valid when it is one's own address; it is personal data
    // all the same.
    let username = email;
    let mut bodies = Vec::new();
    // Success, a taken name, and a policy failure with canaries everywhere.
    bodies.push(app.register(username, email, password).await.body);
    bodies.push(app.register(username, email, password).await.body);
    bodies.push(
        app.register("log canary\nFORGED-LINE", "bad@", "LOGCANARY")
            .await
            .body,
    );
    // A document that fails to parse, with the secrets in it.
    let broken = format!(
        "mutation {{ register(input: {{username: \"{username}\", email: \"{email}\", password: \"{password}\"}} {{ id }} }}"
    );
    bodies.push(app.graphql(&broken, json!({})).await.body);
    // A document that fails validation, with the secrets in it.
    let extra = format!(
        "mutation {{ register(input: {{username: \"x\", email: \"{email}\", password: \"{password}\", extra: 1}}) {{ id }} }}"
    );
    bodies.push(app.graphql(&extra, json!({})).await.body);
    // The input wrapped in a list: async-graphql would fail at execution and quote it.
    bodies.push(
        app.graphql(
            REGISTER,
            json!({ "input": [{ "username": "x2", "email": email, "password": password }] }),
        )
        .await
        .body,
    );
    // Literal list where an object is expected.
    let listed = format!(
        "mutation {{ register(input: [{{username: \"x3\", email: \"{email}\", password: \"{password}\"}}]) {{ id }} }}"
    );
    bodies.push(app.graphql(&listed, json!({})).await.body);
    let stored_hash = app.users().await[0].password_hash.clone();
    // Logins (right, wrong, unknown) and a password change, canaries everywhere.
    let login = "mutation($i: LoginInput!) { login(input: $i) { token } }";
    let ok = app
        .graphql(
            login,
            json!({ "i": { "identifier": username, "password": password } }),
        )
        .await
        .body;
    let token = ok["data"]["login"]["token"]
        .as_str()
        .expect("logged in")
        .to_owned();
    for (identifier, pw) in [
        (username, "LOGCANARY-wrong"),
        ("ghost.LOGCANARY@x.example", password),
    ] {
        bodies.push(
            app.graphql(
                login,
                json!({ "i": { "identifier": identifier, "password": pw } }),
            )
            .await
            .body,
        );
    }
    let change = format!(
        "mutation {{ changePassword(input: {{currentPassword: \"{password}\", newPassword: \"LOGCANARY-new-violet-harbor\"}}) {{ id }} }}"
    );
    let changed = app
        .client
        .post(app.url())
        .bearer_auth(&token)
        .json(&json!({ "query": change }))
        .send()
        .await
        .unwrap();
    bodies.push(changed.json().await.unwrap());

    assert_eq!(
        bodies[0]["data"]["register"]["email"], email,
        "the one answer that may"
    );
    for body in &bodies[1..] {
        let text = body.to_string();
        for secret in [password, "LOGCANARY", email] {
            assert!(!text.contains(secret), "{secret:?} echoed in {text}");
        }
    }
    let logs = String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned();
    // Both formats are captured (the JSON line alone would also satisfy a plain
    // `contains("user registered")`): a JSON line, and a text line that is not JSON.
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"message\":\"user registered\"")),
        "the JSON capture works"
    );
    assert!(
        logs.lines()
            .any(|l| !l.starts_with('{') && l.contains("user registered")),
        "the text capture works"
    );
    for secret in [
        password,
        "LOGCANARY",
        email,
        username,
        "log canary",
        "FORGED-LINE",
        stored_hash.as_str(),
        "$argon2id$",
        token.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret:?} found in the logs");
    }
}
