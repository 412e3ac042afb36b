//! Requests written by someone who means harm, over real sockets: each is answered as the
//! Security table (docs/security.md) says, writes nothing, and leaves `/healthz` answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    GOOD_PASSWORD, REGISTER, fresh_client, raw_exchange, spawn_app, spawn_app_with,
    spawn_app_with_shutdown, unique_user,
};
use roster::config::{parse_ip_net, parse_rate_limit};

fn fan_out_document(levels: usize) -> String {
    let mut doc = String::from("query { ...F0 }\n");
    for i in 0..levels {
        doc.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    doc.push_str(&format!("fragment F{levels} on Query {{ __typename }}"));
    doc
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_fragment_fan_out_bomb_is_refused_before_execution_and_health_keeps_answering() {
    let app = Arc::new(spawn_app().await);
    let doc = fan_out_document(24);
    assert!(doc.len() < 1500, "a small document: {} bytes", doc.len());
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (app, doc) = (app.clone(), doc.clone());
            tokio::spawn(async move { app.graphql(&doc, json!({})).await })
        })
        .collect();
    let (status, took) = app.healthz().await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "healthz took {took:?}");
    for bomb in bombs {
        let answer = bomb.await.unwrap();
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.code(), "GRAPHQL_VALIDATION_FAILED");
        assert!(
            message(&answer.body).contains("more than 500 selections"),
            "{}",
            answer.body
        );
    }
    // Fragments of nothing but spreads, three to a level, ending in an unknown fragment: not
    // a single field, 3^30 nodes. Spreads count, and an unknown fragment is refused.
    let mut spreads = String::from("{ ...F0 }\n");
    for i in 0..30 {
        spreads.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    for end in ["...Nope", "__typename"] {
        let doc = format!("{spreads}fragment F30 on Query {{ {end} }}");
        let started = Instant::now();
        let answer = app.graphql(&doc, json!({})).await;
        assert_eq!(answer.status, 400, "{end}: {}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(2), "{end}");
    }
    // A cycle is refused too, not followed.
    let cycle = app
        .graphql(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            json!({}),
        )
        .await;
    assert_eq!(cycle.status, 400, "{}", cycle.body);
}

#[tokio::test]
async fn graphiqls_introspection_fits_every_document_limit() {
    // The limits must not break the playground: its own query passes with room to spare.
    let app = spawn_app_with(|c| {
        c.limits.max_fields = 250;
        c.limits.max_tokens = 400;
    })
    .await;
    let answer = app.graphql(crate::http::INTROSPECTION, json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn documents_over_each_count_limit_are_refused_with_small_answers() {
    let app = spawn_app().await;
    let many_args = format!(
        "{{ passwordPolicy({}) {{ minLength }} }}",
        "x: 1 ".repeat(12_000)
    );
    let many_vars = format!(
        "query Q({}) {{ __typename }}",
        (0..4500)
            .map(|i| format!("$v{i}: Int "))
            .collect::<String>()
    );
    let aliased_introspection = format!(
        "{{ {} }}",
        (0..214)
            .map(|i| format!("a{i}: __schema {{ types {{ name }} }} "))
            .collect::<String>()
    );
    let few_vars = format!(
        "query Q({}) {{ __typename }}",
        (0..40).map(|i| format!("$v{i}: Int ")).collect::<String>()
    );
    let aliases = format!(
        "{{ {} }}",
        (0..16)
            .map(|i| format!("t{i}: __typename "))
            .collect::<String>()
    );
    let fragments = format!(
        "{{ __typename }} {}",
        (0..40)
            .map(|i| format!("fragment F{i} on Query {{ __typename }} "))
            .collect::<String>()
    );
    let operations = (0..20)
        .map(|i| format!("query Q{i} {{ __typename }} "))
        .collect::<String>();
    let deep_introspection = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }";
    let cases = [
        (many_args.as_str(), "tokens"),
        (many_vars.as_str(), "tokens"),
        (aliased_introspection.as_str(), "tokens"),
        (few_vars.as_str(), "variables"),
        (aliases.as_str(), "aliases"),
        (fragments.as_str(), "fragments"),
        (operations.as_str(), "operations"),
        (deep_introspection, "introspection lists"),
    ];
    for (doc, what) in cases {
        assert!(doc.len() < 64 * 1024);
        let answer = app.graphql(doc, json!({})).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.code(), "GRAPHQL_VALIDATION_FAILED", "{what}");
        assert!(
            message(&answer.body).contains(what),
            "{what}: {}",
            answer.body
        );
        let size = answer.body.to_string().len();
        assert!(size < 1024, "{what}: a {size}-byte answer");
    }
}

#[tokio::test]
async fn error_lists_and_responses_are_capped() {
    let app = spawn_app().await;
    // 60 unknown fields: 60 validation errors, within the token limit.
    let doc = format!(
        "{{ {} }}",
        (0..60).map(|i| format!("nope{i} ")).collect::<String>()
    );
    let answer = app.graphql(&doc, json!({})).await;
    let errors = answer.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 21, "{}", answer.body);
    assert!(message(&json!({ "errors": [errors[20]] })).contains("40 more errors omitted"));

    let small = spawn_app_with(|c| c.limits.max_response_bytes = 2048).await;
    let answer = small.graphql(crate::http::INTROSPECTION, json!({})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.code(), "RESPONSE_TOO_LARGE");
}

#[tokio::test]
async fn parse_errors_say_where_not_what() {
    let app = spawn_app().await;
    let doc = "mutation { register(input: {username: \"a\", email: \"a@b.co\", password: \"SECRET-pw-9\"} { id } }";
    let answer = app.graphql(doc, json!({})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.code(), "GRAPHQL_PARSE_FAILED");
    let text = answer.body.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(
        message(&answer.body).starts_with("syntax error at line 1, column"),
        "{text}"
    );
}

#[tokio::test]
async fn wrong_shaped_inputs_are_validation_errors_that_echo_nothing() {
    let app = spawn_app().await;
    let secret = "SECRET-pw-value-42";
    let input = json!({ "username": "shape", "email": "shape@example.com", "password": secret });
    let cases = [
        (REGISTER.to_owned(), json!({ "input": [input.clone()] })),
        (REGISTER.to_owned(), json!({ "input": "a string" })),
        (
            REGISTER.to_owned(),
            json!({ "input": { "username": ["x"], "email": "e@x.co", "password": secret } }),
        ),
        (
            "mutation($i: [RegisterInput!]) { register(input: $i) { id } }".to_owned(),
            json!({ "i": [input.clone()] }),
        ),
        (
            format!(
                "mutation {{ register(input: [{{username: \"shape\", email: \"shape@example.com\", password: \"{secret}\"}}]) {{ id }} }}"
            ),
            json!({}),
        ),
    ];
    for (doc, variables) in cases {
        let answer = app.graphql(&doc, variables.clone()).await;
        assert_eq!(answer.status, 400, "{variables}: {}", answer.body);
        assert_eq!(
            answer.code(),
            "GRAPHQL_VALIDATION_FAILED",
            "{}",
            answer.body
        );
        assert!(!answer.body.to_string().contains(secret), "{}", answer.body);
        assert!(answer.body.get("data").is_none());
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn repeated_json_keys_are_refused_so_no_filter_can_be_fooled() {
    let app = spawn_app().await;
    let bodies = [
        r#"{"query": "{ __typename }", "query": "mutation { register(input: {username: \"x\", email: \"x@x.co\", password: \"p\"}) { id } }"}"#,
        r#"{"query": "query($v: Int) { __typename }", "variables": {"v": 1, "v": 2}}"#,
    ];
    for body in bodies {
        let answer = app.post_raw(body).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.code(), "BAD_REQUEST");
        assert!(message(&answer.body).contains("repeats an object key"));
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn lengths_are_judged_first_and_similarity_only_against_valid_attributes() {
    let app = spawn_app().await;
    // Over 600 characters: refused on its raw length alone, before NFKC, so none of the other
    // username rules (here: spaces are invalid characters) is even evaluated.
    let long = "a b".repeat(20_000);
    let answer = app.register(&long, "len@example.com", GOOD_PASSWORD).await;
    let username_codes: Vec<_> = answer
        .field_codes()
        .into_iter()
        .filter(|(f, _)| f == "username")
        .collect();
    assert_eq!(
        username_codes,
        vec![("username".to_owned(), "username_too_long".to_owned())]
    );
    // An invalid username is not compared with the password (Django compares with the
    // saved user, whose fields are valid); a valid one is. The invalid pair is identical, so
    // were it compared it would score 1.0, far past the 0.7 cut-off.
    let answer = app
        .register("alice quartz!!", "zed@example.com", "alice quartz!!")
        .await;
    assert!(
        !answer
            .field_codes()
            .contains(&("password".to_owned(), "password_too_similar".to_owned())),
        "{}",
        answer.body
    );
    let answer = app
        .register("alice_quartz", "zed@example.com", "alice_quartz!")
        .await;
    assert!(
        answer
            .field_codes()
            .contains(&("password".to_owned(), "password_too_similar".to_owned())),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_huge_username_costs_one_count_and_health_keeps_answering() {
    let app = Arc::new(spawn_app().await);
    let long = "a".repeat(62_000);
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let (app, long) = (app.clone(), long.clone());
            tokio::spawn(async move {
                app.register(&long, "huge@example.com", &"p".repeat(200))
                    .await
            })
        })
        .collect();
    let (status, took) = app.healthz().await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "healthz took {took:?}");
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        let codes = answer.field_codes();
        assert!(
            codes.contains(&("username".into(), "username_too_long".into())),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("password".into(), "password_too_long".into())),
            "{codes:?}"
        );
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn a_half_sent_request_head_and_an_idle_connection_are_closed() {
    let app = spawn_app_with(|c| c.limits.header_timeout_secs = 1).await;
    let started = Instant::now();
    let answer = raw_exchange(
        app.addr,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");

    // One request, then silence: the kept-alive connection is closed too.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the idle connection was never closed");
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn connections_over_the_cap_get_a_quick_503_and_the_cap_frees_up() {
    let app = spawn_app_with(|c| {
        c.limits.max_connections = 20;
        c.limits.header_timeout_secs = 2;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"POST /graphql HTTP/1.1\r\n").await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let answer = raw_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"SERVER_BUSY\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The stalled heads time out and free their slots.
    let mut healthy = false;
    for _ in 0..50 {
        if app.healthz().await.0 == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "slots came free after the header timeout");
    drop(stalled);
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_loses_its_connection() {
    // One connection slot; a client pipelines requests for a 1 MB file and never reads.
    let app = spawn_app_with(|c| {
        c.limits.max_connections = 1;
        c.limits.body_timeout_secs = 1;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut hog = socket.connect(app.addr).await.unwrap();
    let request = b"GET /graphiql/graphiql.min.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(30);
    hog.write_all(&request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = raw_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "the only slot is taken: {refused}"
    );
    let mut freed = false;
    for _ in 0..80 {
        if app.healthz().await.0 == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the stalled writer's connection was dropped");
    drop(hog);
}

#[tokio::test]
async fn one_address_cannot_take_every_connection_unless_it_is_a_trusted_proxy() {
    let app = spawn_app_with(|c| {
        c.limits.max_connections_per_ip = 5;
        c.limits.header_timeout_secs = 30;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"POST /graphql HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = raw_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("from this address"), "{answer}");
    drop(held);

    let proxied = spawn_app_with(|c| {
        c.limits.max_connections_per_ip = 5;
        c.limits.header_timeout_secs = 30;
        c.limits.trusted_proxies = vec![parse_ip_net("127.0.0.0/8").unwrap()];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(proxied.addr).await.unwrap();
        s.write_all(b"POST /graphql HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        proxied.healthz().await.0,
        200,
        "a trusted proxy carries many clients"
    );
    drop(held);
}

#[tokio::test]
async fn expect_continue_with_an_oversized_length_is_413_at_once_without_100_continue() {
    let app = spawn_app().await;
    let started = Instant::now();
    let answer = raw_exchange(
        app.addr,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"code\":\"BAD_REQUEST\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn shutdown_closes_stalled_connections_at_the_drain_deadline() {
    let (mut app, shutdown) = spawn_app_with_shutdown(|c| {
        c.limits.shutdown_timeout_secs = 1;
        c.limits.header_timeout_secs = 60;
        c.limits.body_timeout_secs = 60;
    })
    .await;
    // A request whose body never finishes keeps its connection busy.
    let mut stalled = TcpStream::connect(app.addr).await.unwrap();
    stalled
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    shutdown.send(()).unwrap();
    let server = app.server.take().unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(finished.is_ok(), "the server waited on a stalled client");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), stalled.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stalled connection was closed");
}

#[tokio::test]
async fn every_error_status_carries_a_json_body_with_a_code() {
    let app = spawn_app().await;
    for method in ["PUT", "DELETE"] {
        let answer = raw_exchange(
            app.addr,
            format!("{method} /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(answer.contains("\"code\":\"BAD_REQUEST\""), "{answer}");
    }
    // Hyper's own answers: a request line that is not HTTP, and too many headers.
    let garbage = raw_exchange(
        app.addr,
        b"\x16\x03\x01 not http\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(garbage.contains("\"code\":\"BAD_REQUEST\""), "{garbage}");
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let big = raw_exchange(app.addr, many.as_bytes(), Duration::from_secs(3)).await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
    assert!(big.contains("\"code\":\"BAD_REQUEST\""), "{big}");
    let long_uri = format!(
        "GET /graphql?query={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let too_long = raw_exchange(app.addr, long_uri.as_bytes(), Duration::from_secs(3)).await;
    assert!(
        too_long.starts_with("HTTP/1.1 414"),
        "{}",
        &too_long[..too_long.len().min(200)]
    );
    assert!(too_long.contains("\"code\":\"BAD_REQUEST\""), "{too_long}");
    for path in ["/graphiql/nope.js", "/graphiql/%FF%FE", "/nowhere"] {
        let answer = raw_exchange(
            app.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(
            answer.contains("\"code\":\"BAD_REQUEST\""),
            "{path}: {answer}"
        );
    }
}

#[tokio::test]
async fn djangos_similarity_rule_refuses_a_reversed_username() {
    // Django's quick_ratio counts shared characters in any order: `ecila123` is as close to
    // `alice` as `alice123` (0.77 ≥ 0.7). Django refuses both; so does roster.
    let app = spawn_app().await;
    for password in ["ecila123", "alice123"] {
        let answer = app.register("alice", "alice@example.com", password).await;
        assert!(
            answer
                .field_codes()
                .contains(&("password".to_owned(), "password_too_similar".to_owned())),
            "{password}: {}",
            answer.body
        );
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn a_request_over_the_deadline_gets_a_json_408_and_writes_nothing() {
    let app = Arc::new(
        spawn_app_with(|c| {
            c.limits.request_timeout_secs = 1;
            c.hashing.hash_workers = 1;
            c.hashing.argon2_memory_kib = 64 * 1024;
            c.hashing.argon2_iterations = 32;
        })
        .await,
    );
    // The first occupies the only worker for seconds; the second waits in the queue.
    let (a, a_email) = unique_user();
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.register(&a, &a_email, GOOD_PASSWORD).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (b, b_email) = unique_user();
    let second = app.register(&b, &b_email, GOOD_PASSWORD).await;
    assert_eq!(second.status, 408, "{}", second.body);
    assert_eq!(second.code(), "BAD_REQUEST");
    let _ = first.await;
    let names: Vec<String> = app.users().await.into_iter().map(|u| u.username).collect();
    assert!(!names.contains(&b), "{names:?}");
}

#[tokio::test]
async fn a_registration_whose_insert_started_is_finished_and_answered_not_timed_out() {
    let app = spawn_app_with(|c| c.limits.request_timeout_secs = 1).await;
    // Hold the table's write lock from another connection, so the INSERT waits past the
    // deadline; release it after 2.5 s.
    let locker = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let txn = sea_orm::TransactionTrait::begin(&locker).await.unwrap();
    let lock = if crate::helpers::on_postgres() {
        "LOCK TABLE users IN EXCLUSIVE MODE"
    } else {
        "INSERT INTO users (id, username, username_canonical, email, email_canonical, password_hash, date_joined) \
         VALUES ('00000000-0000-0000-0000-000000000000', 'lock', 'lock', 'l@l.co', 'l@l.co', 'x', '2026-01-01T00:00:00Z')"
    };
    sea_orm::ConnectionTrait::execute_unprepared(&txn, lock)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        txn.rollback().await.unwrap();
    });
    let (name, email) = unique_user();
    let answer = app.register(&name, &email, GOOD_PASSWORD).await;
    release.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["data"]["register"]["username"], name.as_str());
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_and_forwarded_ports_do_not_make_new_clients() {
    let app = spawn_app_with(|c| {
        c.limits.register_rate_limit = parse_rate_limit("1/1h").unwrap();
        c.limits.trusted_proxies = vec![parse_ip_net("127.0.0.0/8").unwrap()];
    })
    .await;
    let register_via = |xff: &'static str| {
        let app = &app;
        async move {
            let (name, email) = unique_user();
            let body = json!({ "query": REGISTER, "variables": { "input": { "username": name, "email": email, "password": GOOD_PASSWORD } } });
            let response = fresh_client()
                .post(app.url())
                .header("content-type", "application/json")
                .header("x-forwarded-for", xff)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let table = [
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2:ffff::9", 429),  // same /64
        ("[2001:db8:1:2::7]:443", 429), // bracketed with a port, same /64
        ("2001:db8:1:3::1", 200),       // the next /64
        ("198.51.100.7:4711", 200),
        ("198.51.100.7:4712", 429), // another port is not another client
    ];
    for (xff, want) in table {
        assert_eq!(register_via(xff).await, want, "{xff}");
    }
}

#[tokio::test]
async fn a_busy_answer_spends_no_rate_limit_token() {
    let app = Arc::new(
        spawn_app_with(|c| {
            c.limits.register_rate_limit = parse_rate_limit("3/1h").unwrap();
            c.hashing.hash_workers = 1;
            c.hashing.hash_queue = 1;
            c.hashing.argon2_memory_kib = 64 * 1024;
            c.hashing.argon2_iterations = 3;
        })
        .await,
    );
    let wave: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let (name, email) = unique_user();
                let answer = app.register(&name, &email, GOOD_PASSWORD).await;
                (answer.status.as_u16(), name, email)
            })
        })
        .collect();
    let mut first_ok = 0;
    let mut busy = Vec::new();
    for task in wave {
        let (status, name, email) = task.await.unwrap();
        match status {
            200 => first_ok += 1,
            503 => busy.push((name, email)),
            other => panic!("first wave: unexpected {other}"),
        }
    }
    assert!(!busy.is_empty(), "the queue was never full");
    assert!(first_ok <= 3);
    // Clients told to retry do so, one at a time: they get the tokens the busy answers kept.
    let mut statuses = Vec::new();
    for (name, email) in busy {
        statuses.push(
            app.register(&name, &email, GOOD_PASSWORD)
                .await
                .status
                .as_u16(),
        );
    }
    let later_ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        first_ok + later_ok,
        3,
        "the budget is spent on registrations only: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn every_request_counts_against_a_per_client_budget_but_probes_do_not() {
    let app = spawn_app_with(|c| {
        c.limits.request_rate_limit = parse_rate_limit("5/1m").unwrap();
    })
    .await;
    for _ in 0..5 {
        let answer = app.post_raw(r#"{"query":"{ __typename }"}"#).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let limited = app.post_raw(r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.code(), "RATE_LIMITED");
    assert!(limited.headers.contains_key("retry-after"));
    let page = fresh_client()
        .get(format!("http://{}/graphiql/graphiql.min.css", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429, "assets count too");
    assert_eq!(app.healthz().await.0, 200, "probes are never limited");
    let ready = fresh_client()
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_default_request_budget_lets_a_burst_of_hundreds_through() {
    let app = spawn_app().await;
    for _ in 0..300 {
        let answer = app.graphql("{ __typename }", json!({})).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

#[tokio::test]
async fn names_that_render_as_reserved_or_existing_names_are_refused() {
    let app = spawn_app().await;
    for (name, why) in [
        ("АРІ", "all-Cyrillic, renders as API"),
        ("ЅУЅТЕМ", "all-Cyrillic, renders as SYSTEM"),
        ("ΑΡΙ", "all-Greek, renders as API"),
        ("аdmin", "mixed script"),
    ] {
        let answer = app.register(name, "x@example.com", GOOD_PASSWORD).await;
        let codes = answer.field_codes();
        assert!(
            codes.iter().any(|(f, c)| f == "username"
                && (c == "username_reserved" || c == "username_confusable")),
            "{why}: {codes:?}"
        );
    }
    assert_eq!(
        app.register("scope", "scope@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    let answer = app
        .register("ѕсоре", "scope2@example.com", GOOD_PASSWORD)
        .await;
    assert_eq!(
        answer.field_codes(),
        vec![("username".to_owned(), "username_lookalike".to_owned())],
        "all-Cyrillic ѕсоре renders as scope"
    );
    assert_eq!(
        app.register("luke", "luke@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    let answer = app
        .register("Iuke", "iuke@example.com", GOOD_PASSWORD)
        .await;
    assert_eq!(
        answer.field_codes(),
        vec![("username".to_owned(), "username_lookalike".to_owned())],
        "capital i + uke looks like luke"
    );
    assert_eq!(app.user_count().await, 2);
    // Look-alikes that differ by case are not over-matched: `ali` and `all` both exist.
    assert_eq!(
        app.register("ali", "ali@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(
        app.register("all", "all@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
    // A real name in one script is still welcome.
    assert_eq!(
        app.register("Вера", "vera@example.com", GOOD_PASSWORD)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_look_alike_sign_ups_make_exactly_one_user() {
    // Latin `scope` and all-Cyrillic `ѕсоре` differ in canonical form: only the look-alike
    // unique index can stop both from passing the pre-check at the same time.
    let app = Arc::new(spawn_app().await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            let name = if i % 2 == 0 { "scope" } else { "ѕсоре" };
            tokio::spawn(async move {
                app.register(name, &format!("scope{i}@example.com"), GOOD_PASSWORD)
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status == 200 && answer.body["data"]["register"]["id"].is_string() {
            ok += 1;
        } else {
            let codes = answer.field_codes();
            assert!(
                codes == vec![("username".to_owned(), "taken".to_owned())]
                    || codes == vec![("username".to_owned(), "username_lookalike".to_owned())],
                "{codes:?}"
            );
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn get_variables_with_repeated_keys_are_refused() {
    let app = spawn_app().await;
    let query = serde_urlencoded::to_string([
        ("query", "query($v: Int) { __typename }"),
        ("variables", r#"{"v": 1, "v": 2}"#),
    ])
    .unwrap();
    let response = fresh_client()
        .get(format!("{}?{query}", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn bad_settings_fail_at_start_up_with_a_message() {
    let (url, file) = crate::helpers::fresh_database_url().await;
    let mut config = crate::helpers::test_config(url);
    config.limits.cors_origins = vec!["*".into()];
    let error = roster::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    crate::helpers::remove_sqlite(file);
    assert!(error.to_string().contains("--cors-origins"), "{error}");
}

#[tokio::test]
async fn the_database_password_never_shows_in_help_or_errors() {
    let secret = "s3cret-DbPa55word";
    // A URL whose server refuses (port 1) and one that does not parse: neither error quotes it.
    for (args, url) in [
        (
            vec!["--help"],
            format!("postgres://roster:{secret}@127.0.0.1:1/roster"),
        ),
        (
            vec!["--listen", "127.0.0.1:0"],
            format!("postgres://roster:{secret}@127.0.0.1:1/roster?connect_timeout=2"),
        ),
        (
            vec!["--listen", "127.0.0.1:0"],
            format!("postgres://roster:{secret}@[::1/roster"),
        ),
    ] {
        let all = crate::helpers::roster_output(&args, &[("DATABASE_URL", &url)]).await;
        assert!(
            all.contains("database-url") || all.contains("database"),
            "{all}"
        );
        assert!(!all.contains(secret), "{args:?}: {all}");
    }
}
