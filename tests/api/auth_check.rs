//! `GET /auth/check`: forward auth for a reverse proxy, over a real socket, on both databases.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::helpers::{GOOD_PASSWORD, TestApp, fresh_client, spawn_app, spawn_app_with};

const IDENTITY: [&str; 5] = [
    "x-roster-user-id",
    "x-roster-username",
    "x-roster-session-id",
    "x-roster-email-verified",
    "x-roster-legacy-id",
];

async fn token(app: &TestApp, identifier: &str) -> String {
    let answer = app
        .graphql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "identifier": identifier, "password": GOOD_PASSWORD } }),
        )
        .await;
    answer.body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .to_owned()
}

async fn check(app: &TestApp, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = fresh_client().get(format!("http://{}/auth/check", app.addr));
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    request.send().await.unwrap()
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn assert_anonymous(response: &reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="roster""#
    );
    for name in IDENTITY {
        assert!(response.headers().get(name).is_none(), "{name} on a 401");
    }
}

#[tokio::test]
async fn a_signed_in_caller_gets_their_identity_in_headers_and_anyone_else_401() {
    let app = spawn_app().await;
    assert_anonymous(&check(&app, &[]).await);
    assert_anonymous(&check(&app, &bearer("not-a-token")).await);
    let forged = roster::sessions::Token::generate().unwrap();
    assert_anonymous(&check(&app, &bearer(forged.expose())).await);

    assert_eq!(
        app.register("Zoë_ü", "zoe@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    let token = token(&app, "zoe@example.com").await;
    let before = app.hasher.computed();
    for headers in [
        bearer(&token),
        vec![("cookie", format!("__Host-roster_session={token}"))],
    ] {
        let response = check(&app, &headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers().clone();
        let user = app.users().await.remove(0);
        assert_eq!(h["x-roster-user-id"], user.id.to_string());
        assert_eq!(h["x-roster-username"], "Zo%C3%AB_%C3%BC");
        assert_eq!(h["x-roster-email-verified"], "false");
        assert!(h.get("x-roster-legacy-id").is_none(), "not imported");
        assert_eq!(h["cache-control"], "no-store");
        let session: Value = app
            .client
            .post(app.url())
            .bearer_auth(&token)
            .json(&json!({ "query": "{ sessions { id current } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            h["x-roster-session-id"],
            session["data"]["sessions"][0]["id"].as_str().unwrap()
        );
        assert!(response.text().await.unwrap().is_empty(), "an empty body");
    }
    assert_eq!(app.hasher.computed(), before, "a check computes no hash");

    // HEAD works as GET does.
    let head = fresh_client()
        .head(format!("http://{}/auth/check", app.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["x-roster-username"], "Zo%C3%AB_%C3%BC");

    // An imported user carries Django's id.
    let mut row = app.users().await.remove(0).into_active_model();
    row.legacy_id = Set(Some(4242));
    row.update(&app.db).await.unwrap();
    let response = check(&app, &bearer(&token)).await;
    assert_eq!(response.headers()["x-roster-legacy-id"], "4242");
}

/// Revocation is immediate: there is no cache that could serve an ended session.
#[tokio::test]
async fn logout_revocation_password_change_and_deactivation_answer_401_at_once() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com", GOOD_PASSWORD)
        .await;
    let graphql = |token: String, query: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url())
                .bearer_auth(token)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // logout
    let t = token(&app, "alice").await;
    assert_eq!(check(&app, &bearer(&t)).await.status(), StatusCode::OK);
    graphql(t.clone(), "mutation { logout }").await;
    assert_anonymous(&check(&app, &bearer(&t)).await);
    // logoutEverywhere
    let (a, b) = (token(&app, "alice").await, token(&app, "alice").await);
    graphql(a.clone(), "mutation { logoutEverywhere }").await;
    assert_anonymous(&check(&app, &bearer(&a)).await);
    assert_anonymous(&check(&app, &bearer(&b)).await);
    // a password change ends the other sessions
    let (keep, other) = (token(&app, "alice").await, token(&app, "alice").await);
    let changed = app
        .client
        .post(app.url())
        .bearer_auth(&keep)
        .json(&json!({
            "query": "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { id } }",
            "variables": { "i": { "currentPassword": GOOD_PASSWORD, "newPassword": "purple elephant dancing quietly" } }
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(changed["errors"].is_null(), "{changed}");
    assert_anonymous(&check(&app, &bearer(&other)).await);
    assert_eq!(check(&app, &bearer(&keep)).await.status(), StatusCode::OK);
    // deactivation
    let mut row = app.users().await.remove(0).into_active_model();
    row.is_active = Set(false);
    row.update(&app.db).await.unwrap();
    assert_anonymous(&check(&app, &bearer(&keep)).await);
}

/// A proxy sends every user's check from its own address: with the proxy trusted, the
/// request budget is the forwarded client's, so one busy user cannot throttle everyone.
#[tokio::test]
async fn checks_through_a_trusted_proxy_are_budgeted_per_forwarded_client() {
    let app = spawn_app_with(|c| {
        c.limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.request_rate_limit = crate::helpers::per_hour(2);
    })
    .await;
    let from = |client: &str| vec![("x-forwarded-for", client.to_owned())];
    assert_eq!(check(&app, &from("198.51.100.1")).await.status(), 401);
    assert_eq!(check(&app, &from("198.51.100.1")).await.status(), 401);
    assert_eq!(
        check(&app, &from("198.51.100.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the busy client is limited"
    );
    assert_eq!(
        check(&app, &from("203.0.113.9")).await.status(),
        401,
        "another client behind the same proxy is not"
    );
}

/// The direct SQLite lookup (`sessions::sqlite_lookup`) against sqlx's answer for the same
/// tokens, on a SQLite file whatever database the suite runs on.
#[tokio::test]
async fn the_direct_sqlite_lookup_answers_as_sqlx_does_and_sees_a_logout_at_once() {
    use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
    let (url, file) = crate::helpers::fresh_sqlite("direct_lookup");
    let app = crate::helpers::spawn_app_on(url.clone(), |_| {}).await;
    let path = roster::db::sqlite_file(&url).unwrap();
    let lookup = roster::sessions::sqlite_lookup::Lookup::open(&path, 2).expect("opens");
    assert_eq!(
        app.register("Zoë", "zoe@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    let plain = token(&app, "zoe@example.com").await;
    // Every column in use: a legacy id, a login time, skeletons, an agent, an address.
    app.db
        .execute_unprepared("UPDATE users SET legacy_id = 77, is_staff = 1, email_verified = 1")
        .await
        .unwrap();
    let digest = roster::sessions::Token::parse(&plain).unwrap().digest();
    let by_sqlx = roster::entity::session::Entity::find()
        .find_also_related(roster::entity::user::Entity)
        .filter(roster::entity::session::Column::TokenHash.eq(digest.clone()))
        .one(&app.db)
        .await
        .unwrap()
        .map(|(s, u)| (s, u.unwrap()));
    assert!(
        by_sqlx
            .as_ref()
            .is_some_and(|(_, u)| u.last_login.is_some())
    );
    assert_eq!(lookup.find(&digest), Some(by_sqlx));
    // A login's account lookup, by either canonical form, as sea-orm reads the row.
    let by_sqlx = roster::entity::user::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lookup.find_login(&by_sqlx.username_canonical, "nobody@example.com"),
        Some(vec![by_sqlx.clone()])
    );
    assert_eq!(
        lookup.find_login("nobody", &by_sqlx.email_canonical),
        Some(vec![by_sqlx.clone()])
    );
    assert_eq!(
        lookup.find_login("nobody", "nobody@example.com"),
        Some(vec![])
    );
    // Unknown token: found to be nobody's (not "ask sqlx").
    let unknown = roster::sessions::Token::generate().unwrap().digest();
    assert_eq!(lookup.find(&unknown), Some(None));
    // A logout is seen by the very next lookup: nothing is cached.
    let out = app
        .client
        .post(app.url())
        .bearer_auth(&plain)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(lookup.find(&digest), Some(None));
    // And the server resolves through it: the check after the logout is refused.
    let before = app.sessions.direct_lookups();
    assert_anonymous(&check(&app, &bearer(&plain)).await);
    assert_eq!(
        app.sessions.direct_lookups(),
        before + 1,
        "not through sqlx"
    );
    // A login finds its account through it too.
    let reader = app.sessions.direct_reader().expect("on a SQLite file");
    let logins = reader.answered().1;
    token(&app, "Zoë").await;
    assert_eq!(reader.answered().1, logins + 1, "not through sqlx");
    drop(app);
    crate::helpers::remove_sqlite(Some(file));
}

/// The batched lookup (`sessions::batched`, PostgreSQL's): many lookups asked at once share a
/// few statements, and each gets its own session — never a neighbour's — or nobody for an
/// unknown token; a logout is seen by the very next batch.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn lookups_asked_together_share_statements_and_each_gets_its_own_session() {
    use roster::entity::session;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    assert!(
        crate::helpers::on_postgres(),
        "the batched lookup is PostgreSQL's; set ROSTER_TEST_DATABASE_URL"
    );
    let app = spawn_app().await;
    // Three users, two sessions each, and two tokens nobody holds.
    let mut tokens = Vec::new();
    for name in ["ann", "bob", "cyd"] {
        let email = format!("{name}@example.com");
        assert_eq!(app.register(name, &email, GOOD_PASSWORD).await.status, 200);
        for _ in 0..2 {
            let plain = token(&app, &email).await;
            let digest = roster::sessions::Token::parse(&plain).unwrap().digest();
            let row = session::Entity::find()
                .filter(session::Column::TokenHash.eq(digest))
                .one(&app.db)
                .await
                .unwrap()
                .expect("the login's session");
            tokens.push((plain, Some((row.id, row.user_id))));
        }
    }
    for _ in 0..2 {
        let unknown = roster::sessions::Token::generate().unwrap();
        tokens.push((unknown.expose().to_owned(), None));
    }
    let store = roster::sessions::Sessions::new(
        app.db.clone(),
        roster::sessions::SessionPolicy {
            idle_ttl: std::time::Duration::from_secs(3600),
            max_ttl: std::time::Duration::from_secs(7200),
            max_per_user: 10,
        },
    )
    .with_batched_lookup(
        roster::db::postgres_options(&app.database_url, &[]).unwrap(),
        std::time::Duration::from_secs(10),
    );
    let ask_all = |tokens: Vec<(String, Option<(uuid::Uuid, uuid::Uuid)>)>| {
        let store = store.clone();
        async move {
            let mut asked = tokio::task::JoinSet::new();
            for i in 0..200 {
                let (plain, expected) = tokens[(i * 7) % tokens.len()].clone();
                let store = store.clone();
                asked.spawn(async move {
                    let token = roster::sessions::Token::parse(&plain).unwrap();
                    let found = store.authenticate(&token).await.expect("looked up");
                    (found.map(|c| (c.session.id, c.user.id)), expected)
                });
            }
            let mut answers = Vec::new();
            while let Some(answer) = asked.join_next().await {
                answers.push(answer.unwrap());
            }
            answers
        }
    };
    for (found, expected) in ask_all(tokens.clone()).await {
        assert_eq!(found, expected, "each lookup gets its own session");
    }
    let (lookups, statements) = store.batched_lookups();
    assert_eq!(lookups, 200);
    assert!(
        statements * 4 <= lookups,
        "{lookups} lookups asked at once went in {statements} statements"
    );
    // bob's first session logs out: the next batch says nobody for it, the rest unchanged.
    let out = app
        .client
        .post(app.url())
        .bearer_auth(&tokens[2].0)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    tokens[2].1 = None;
    for (found, expected) in ask_all(tokens.clone()).await {
        assert_eq!(found, expected, "after the logout");
    }
}

/// On PostgreSQL the server resolves every check through the batched lookup.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn on_postgres_the_server_checks_through_the_batched_lookup() {
    assert!(
        crate::helpers::on_postgres(),
        "the batched lookup is PostgreSQL's; set ROSTER_TEST_DATABASE_URL"
    );
    let app = spawn_app().await;
    assert_eq!(
        app.register("Zoë", "zoe@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    let plain = token(&app, "zoe@example.com").await;
    let (before, _) = app.sessions.batched_lookups();
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let addr = app.addr;
        let plain = plain.clone();
        checks.spawn(async move {
            fresh_client()
                .get(format!("http://{addr}/auth/check"))
                .bearer_auth(plain)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = checks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.sessions.batched_lookups().0, before + 20);
    assert_eq!(app.sessions.direct_lookups(), 0);
}
