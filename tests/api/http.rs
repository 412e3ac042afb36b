//! GraphQL over HTTP, limits, rate limiting, shedding and probes (issue: a public endpoint
//! that cannot be abused).

use std::time::Duration;

use reqwest::StatusCode;
use roster::config::{RateLimit, parse_rate_limit};
use serde_json::{Value, json};

use crate::helpers::{Answer, GOOD_PASSWORD, REGISTER, spawn_app, spawn_app_with, unique_user};

/// POSTs a registration of a fresh user as plain `application/json`.
async fn post_register(app: &crate::helpers::TestApp) -> Answer {
    post_register_via(app, None).await
}

/// The same, with an `X-Forwarded-For` header when given.
/// A new connection per request, as distinct clients would open.
async fn post_register_via(app: &crate::helpers::TestApp, xff: Option<&str>) -> Answer {
    let mut request = crate::helpers::fresh_client()
        .post(app.url())
        .header("content-type", "application/json")
        .body(register_body().to_string());
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    Answer::from(request.send().await.unwrap()).await
}

fn register_body() -> Value {
    let (username, email) = unique_user();
    json!({ "query": REGISTER, "variables": { "input": { "username": username, "email": email, "password": GOOD_PASSWORD } } })
}

#[tokio::test]
async fn a_mutation_over_get_is_405_and_runs_nothing() {
    let app = spawn_app().await;
    let (username, email) = unique_user();
    let query = format!(
        "mutation {{ register(input: {{username: \"{username}\", email: \"{email}\", password: \"{GOOD_PASSWORD}\"}}) {{ id }} }}"
    );
    let url = format!(
        "{}?{}",
        app.url(),
        serde_urlencoded::to_string([("query", query)]).unwrap()
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn a_query_over_get_runs() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}?query=%7B%20__typename%20%7D", app.url()))
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn other_methods_are_405() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = app
            .client
            .request(method.clone(), app.url())
            .header("content-type", "application/json")
            .body(register_body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn simple_content_types_are_415_so_cross_site_forms_cannot_register() {
    let app = spawn_app().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let mut request = app.client.post(app.url()).body(register_body().to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let answer = Answer::from(request.send().await.unwrap()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(answer.code(), "BAD_REQUEST");
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn an_oversized_body_is_413_before_it_is_read() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let body = json!({ "query": "{ __typename }", "extensions": { "pad": padding } });
    let response = app
        .client
        .post(app.url())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn batches_are_400() {
    let app = spawn_app().await;
    let batch = Value::Array((0..20).map(|_| register_body()).collect());
    let response = app
        .client
        .post(app.url())
        .header("content-type", "application/json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_json_error_and_no_data() {
    let app = spawn_app().await;
    let bodies = [
        ("{not json", "BAD_REQUEST", "malformed JSON"),
        (r#"{"query": 42}"#, "BAD_REQUEST", "non-string query"),
        (r#"{"variables": {}}"#, "BAD_REQUEST", "missing query"),
        (
            r#"{"query": "{ __typename"}"#,
            "GRAPHQL_PARSE_FAILED",
            "unparsable document",
        ),
        (
            r#"{"query": "{ nope }"}"#,
            "GRAPHQL_VALIDATION_FAILED",
            "unknown field",
        ),
        (
            r#"{"query": "query A { __typename } query B { __typename }"}"#,
            "BAD_REQUEST",
            "ambiguous operation",
        ),
    ];
    for (body, code, why) in bodies {
        let response = app
            .client
            .post(app.url())
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/graphql-response+json; charset=utf-8"
        );
        let answer = Answer::from(response).await;
        assert_eq!(answer.status, 400, "{why}: {}", answer.body);
        assert_eq!(answer.code(), code, "{why}: {}", answer.body);
        assert!(answer.body.get("data").is_none(), "{why}");
        let text = answer.body.to_string();
        assert!(
            !text.contains("Error {") && !text.contains("src/"),
            "{why}: internals leaked: {text}"
        );
    }
}

#[tokio::test]
async fn accept_decides_the_response_type() {
    let app = spawn_app().await;
    let cases = [
        (
            Some("application/json"),
            StatusCode::OK,
            "application/json; charset=utf-8",
        ),
        (
            Some("*/*"),
            StatusCode::OK,
            "application/json; charset=utf-8",
        ),
        (
            Some("application/graphql-response+json"),
            StatusCode::OK,
            "application/graphql-response+json; charset=utf-8",
        ),
        (
            Some("text/csv"),
            StatusCode::NOT_ACCEPTABLE,
            "application/json; charset=utf-8",
        ),
    ];
    for (accept, status, content_type) in cases {
        let mut request = app
            .client
            .post(app.url())
            .header("content-type", "application/json")
            .body(r#"{"query":"{ __typename }"}"#);
        if let Some(a) = accept {
            request = request.header("accept", a);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{accept:?}");
        assert_eq!(
            response.headers()["content-type"],
            content_type,
            "{accept:?}"
        );
    }
    // Legacy clients keep 200 for a document that does not validate, per the spec.
    let response = app
        .client
        .post(app.url())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(r#"{"query":"{ nope }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sixteen_aliased_registers_are_rejected_and_nothing_is_written() {
    let app = spawn_app().await;
    let selections: String = (0..16)
        .map(|i| {
            format!(
                "r{i}: register(input: {{username: \"alias{i}\", email: \"alias{i}@example.com\", password: \"{GOOD_PASSWORD}\"}}) {{ id }}\n"
            )
        })
        .collect();
    let answer = app
        .graphql(&format!("mutation {{ {selections} }}"), json!({}))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.code(), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn two_identical_register_selections_are_rejected() {
    let app = spawn_app().await;
    let field = format!(
        "register(input: {{username: \"twice\", email: \"twice@example.com\", password: \"{GOOD_PASSWORD}\"}}) {{ id }}"
    );
    for document in [
        format!("mutation {{ {field} {field} }}"),
        format!("mutation {{ ...A ...A }} fragment A on Mutation {{ {field} }}"),
        format!(
            "mutation {{ ...A ...B }} fragment A on Mutation {{ {field} }} fragment B on Mutation {{ {field} }}"
        ),
    ] {
        let answer = app.graphql(&document, json!({})).await;
        assert_eq!(answer.status, 400, "{document}: {}", answer.body);
        assert_eq!(answer.code(), "GRAPHQL_VALIDATION_FAILED");
    }
    assert_eq!(app.user_count().await, 0);
}

/// The introspection query GraphiQL sends (graphql-js `getIntrospectionQuery`, TypeRef part):
/// the deepest legitimate document, which the default limits must admit.
pub const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name }
  types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } }";

#[tokio::test]
async fn graphiqls_introspection_passes_but_deeper_documents_are_rejected() {
    let app = spawn_app().await;
    let answer = app.graphql(INTROSPECTION, json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["data"]["__schema"]["queryType"]["name"],
        "Query"
    );

    let nested = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let answer = app.graphql(&nested, json!({})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep")
    );
}

#[tokio::test]
async fn introspection_and_suggestions_can_be_turned_off() {
    let app = spawn_app_with(|c| c.introspection = false).await;
    let answer = app
        .graphql("{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        answer.body["data"]["__schema"].is_null() || answer.status == 400,
        "{}",
        answer.body
    );
    let answer = app
        .graphql("{ passwordPolicyy { minLength } }", json!({}))
        .await;
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");

    let open = spawn_app().await;
    let answer = open
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        answer.body["data"]["__schema"]["queryType"]["name"],
        "Query"
    );
}

#[tokio::test]
async fn the_rate_limit_trips_and_recovers() {
    let app = spawn_app_with(|c| {
        c.limits.register_rate_limit = parse_rate_limit("2/2s").unwrap();
    })
    .await;
    for _ in 0..2 {
        let answer = post_register(&app).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let limited = post_register(&app).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "RATE_LIMITED");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Queries are not counted.
    assert_eq!(app.graphql("{ __typename }", json!({})).await.status, 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = post_register(&app).await;
    assert_eq!(
        answer.status, 200,
        "one token is back after period/burst: {}",
        answer.body
    );
    assert_eq!(app.user_count().await, 3);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = spawn_app_with(|c| {
        c.limits.register_rate_limit = parse_rate_limit("1/1h").unwrap();
    })
    .await;
    assert_eq!(
        post_register_via(&app, Some("198.51.100.1")).await.status,
        200
    );
    assert_eq!(
        post_register_via(&app, Some("198.51.100.2")).await.status,
        429,
        "a new XFF is not a new client"
    );

    // Behind a trusted proxy, the address it appends is the client.
    let proxied = spawn_app_with(|c| {
        c.limits.register_rate_limit = parse_rate_limit("1/1h").unwrap();
        c.limits.trusted_proxies = vec![roster::config::parse_ip_net("127.0.0.1").unwrap()];
    })
    .await;
    for (xff, status) in [
        ("198.51.100.1", 200),
        ("198.51.100.2", 200),
        ("6.6.6.6, 198.51.100.2", 429),
    ] {
        let answer = post_register_via(&proxied, Some(xff)).await;
        assert_eq!(answer.status, status, "{xff}");
    }
}

#[tokio::test]
async fn a_full_hash_queue_answers_503_at_once() {
    // One worker, one queue slot, and a hash slow enough to keep them busy.
    let app = std::sync::Arc::new(spawn_app_with(crate::helpers::full_hash_queue).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answer = post_register(&app).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    let mut busy = Vec::new();
    let mut ok = Vec::new();
    for task in tasks {
        let (answer, took) = task.await.unwrap();
        match answer.status.as_u16() {
            200 => ok.push(took),
            503 => {
                assert_eq!(answer.code(), "SERVER_BUSY");
                assert!(answer.headers.contains_key("retry-after"));
                busy.push(took);
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert!(
        !busy.is_empty() && !ok.is_empty(),
        "ok={ok:?} busy={busy:?}"
    );
    // "At once": a refusal waits for nothing — no hash, no validation, no free slot — so every
    // 503 is back in under a quarter of the quickest registration that did hash. (A refusal
    // that waited for a slot to free up came back after the first registration's validation,
    // at about a quarter of it: red.)
    let slowest_refusal = *busy.iter().max().unwrap();
    let quickest_hash = *ok.iter().min().unwrap();
    assert!(
        slowest_refusal * 4 < quickest_hash,
        "503s took up to {slowest_refusal:?}, a hashed registration {quickest_hash:?}"
    );
    let ok = ok.len() as u64;
    assert_eq!(app.user_count().await, ok);
}

#[tokio::test]
async fn health_and_readiness_answer_outside_graphql() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.addr);
    let health = app
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let response = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-abc.123",
        "a sane id is kept"
    );
    let response = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .header("x-request-id", "evil\tinjected log line")
        .send()
        .await
        .unwrap();
    assert_ne!(
        response.headers()["x-request-id"],
        "evil\tinjected log line"
    );
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary_with_no_external_url() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg"));
    for asset in [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
        "init.js",
    ] {
        assert!(html.contains(asset), "{asset} is referenced");
        let response = app
            .client
            .get(format!("http://{}/graphiql/{asset}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let body = response.bytes().await.unwrap();
        assert!(body.len() > 100, "{asset}");
    }
    // The CSS pulls nothing from elsewhere: fonts are inlined.
    let css = app
        .client
        .get(format!("http://{}/graphiql/graphiql.min.css", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!css.contains("url(http") && !css.contains("@import"));

    let off = spawn_app_with(|c| c.graphiql = false).await;
    let response = off
        .client
        .get(off.url())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        406,
        "no playground, and HTML is not a GraphQL response type"
    );
}

#[test]
fn rate_limit_setting_parses_off() {
    assert_eq!(parse_rate_limit("off").unwrap(), RateLimit::Off);
}
