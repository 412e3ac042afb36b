//! Access tokens (`accessToken`) and the JWKS, over a real socket, on both databases. The
//! signature is checked here with ring against the published JWK; a JWT library roster did
//! not write (Node's `jose`) checks the same in CI's second pass.

use base64::Engine as _;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    GOOD_PASSWORD, TEST_SECRET, TestApp, fresh_client, per_hour, spawn_app, spawn_app_with,
};

const MINT: &str = "mutation($a: String) { accessToken(audience: $a) { token expiresAt } }";

async fn sign_in(app: &TestApp, name: &str) -> String {
    app.sign_in(name).await.1
}

/// `GET /auth/check` with `token` as the bearer.
async fn bearer_check(app: &TestApp, token: &str) -> reqwest::Response {
    fresh_client()
        .get(format!("http://{}/auth/check", app.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A server with `--auth-check-jwt` for the audience `intranet`.
async fn check_jwt_app() -> TestApp {
    spawn_app_with(|c| {
        c.tokens.auth_check_jwt = true;
        c.tokens.jwt_default_audience = Some("intranet".into());
    })
    .await
}

/// `accessToken` as `token`'s session: the whole GraphQL answer.
async fn mint(app: &TestApp, token: &str, audience: Option<&str>) -> Value {
    fresh_client()
        .post(app.url())
        .bearer_auth(token)
        .json(&json!({ "query": MINT, "variables": { "a": audience } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn jwt_of(answer: &Value) -> String {
    answer["data"]["accessToken"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

async fn jwks(app: &TestApp) -> Value {
    let response = fresh_client()
        .get(format!("http://{}/.well-known/jwks.json", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    response.json().await.unwrap()
}

fn part(jwt: &str, i: usize) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Verifies the ES256 signature against the JWKS key the header names; returns the claims.
fn verify(jwt: &str, keys: &Value) -> Result<Value, String> {
    let header = part(jwt, 0);
    if header["alg"] != "ES256" || header["typ"] != "JWT" {
        return Err(format!("header {header}"));
    }
    let kid = header["kid"].as_str().unwrap();
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("no key {kid} in the JWKS"))?;
    let b64 = |s: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let mut point = vec![4u8];
    point.extend(b64(&key["x"]));
    point.extend(b64(&key["y"]));
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "bad signature".to_owned())?;
    Ok(part(jwt, 1))
}

#[tokio::test]
async fn a_token_names_the_session_and_its_user_and_verifies_against_the_jwks() {
    let app = spawn_app().await;
    let token = sign_in(&app, "alice").await;
    let answer = mint(&app, &token, Some("billing")).await;
    let jwt = jwt_of(&answer);
    let keys = jwks(&app).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let key = &keys["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    assert!(key.get("d").is_none(), "no private part in the JWKS");
    let claims = verify(&jwt, &keys).unwrap();

    let user = app.users().await.remove(0);
    let session: roster::entity::session::Model = roster::entity::session::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims["iss"], format!("http://{}", app.addr));
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["sid"], session.id.to_string());
    assert_eq!(claims["aud"], "billing");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["email_verified"], false);
    assert!(claims.get("legacy_id").is_none(), "not imported");
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 300, "the default --jwt-ttl is five minutes");
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() <= 5, "iat {iat}, now {now}");
    let expires_at = answer["data"]["accessToken"]["expiresAt"].as_str().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(expires_at)
            .unwrap()
            .timestamp(),
        exp
    );
    // Nothing but these claims: nothing secret rides along.
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aal",
            "amr",
            "aud",
            "email_verified",
            "exp",
            "iat",
            "iss",
            "jti",
            "nbf",
            "sid",
            "sub",
            "username"
        ]
    );
    // Every token is its own: a fresh `jti`, and a tampered payload fails the signature.
    let again = jwt_of(&mint(&app, &token, Some("billing")).await);
    assert_ne!(part(&again, 1)["jti"], claims["jti"]);
    let (header, rest) = jwt.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut forged = claims.clone();
    forged["sub"] = json!(uuid::Uuid::now_v7().to_string());
    let forged = format!(
        "{header}.{}.{signature}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string())
    );
    assert_eq!(verify(&forged, &keys).unwrap_err(), "bad signature");
}

#[tokio::test]
async fn an_imported_user_s_token_carries_the_django_id() {
    let app = spawn_app().await;
    let token = sign_in(&app, "legacy").await;
    app.db
        .execute_unprepared("UPDATE users SET legacy_id = 4242, email_verified = true")
        .await
        .unwrap();
    let claims = verify(
        &jwt_of(&mint(&app, &token, Some("old-app")).await),
        &jwks(&app).await,
    )
    .unwrap();
    assert_eq!(claims["legacy_id"], 4242);
    assert_eq!(claims["email_verified"], true);
}

#[tokio::test]
async fn minting_needs_a_session_and_an_audience_and_is_limited_per_session() {
    let app = spawn_app_with(|c| {
        c.tokens.access_token_rate_limit = per_hour(3);
        c.public_metrics = true;
    })
    .await;
    // Anonymous, or a token that is no session: refused before anything is signed.
    let anonymous = app.graphql(MINT, json!({ "a": "billing" })).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    let forged = roster::sessions::Token::generate().unwrap();
    let answer = mint(&app, forged.expose(), Some("billing")).await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let token = sign_in(&app, "bob").await;
    for (audience, code) in [
        (None, "required"),
        (Some(""), "required"),
        (Some(" billing"), "invalid"),
        (Some("bil\nling"), "invalid"),
        (Some(&*"a".repeat(257)), "invalid"),
    ] {
        let answer = mint(&app, &token, audience).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
        assert_eq!(
            answer["errors"][0]["extensions"]["fields"][0],
            json!({ "field": "audience", "code": code,
                    "message": answer["errors"][0]["extensions"]["fields"][0]["message"] }),
            "{audience:?}"
        );
    }
    // Three per hour for this session (refused audiences were not charged)…
    for _ in 0..3 {
        jwt_of(&mint(&app, &token, Some("billing")).await);
    }
    let refused = mint(&app, &token, Some("billing")).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        refused["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            > 0
    );
    // …and another session of another user is not held back by it.
    let other = sign_in(&app, "carol").await;
    jwt_of(&mint(&app, &other, Some("billing")).await);
    let metrics = crate::helpers::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"roster_access_tokens_total{outcome="minted"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"roster_access_tokens_total{outcome="rate_limited"} 1"#));
    assert!(metrics.contains(r#"roster_access_tokens_total{outcome="invalid_audience"} 5"#));
}

#[tokio::test]
async fn without_an_audience_the_default_one_is_used_and_the_ttl_is_configurable() {
    let app = spawn_app_with(|c| {
        c.tokens.jwt_default_audience = Some("intranet".into());
        c.tokens.jwt_ttl = std::time::Duration::from_secs(90);
    })
    .await;
    let token = sign_in(&app, "dave").await;
    let claims = part(&jwt_of(&mint(&app, &token, None).await), 1);
    assert_eq!(claims["aud"], "intranet");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        90
    );
    let claims = part(&jwt_of(&mint(&app, &token, Some("billing")).await), 1);
    assert_eq!(claims["aud"], "billing", "an audience given wins");
}

/// `roster keys rotate` on the test's database with the test's secret: the new key's id.
async fn rotate(app: &TestApp, extra: &[&str]) -> String {
    let mut args = vec![
        "--database-url",
        app.database_url.as_str(),
        "keys",
        "rotate",
    ];
    args.extend_from_slice(extra);
    let out = crate::helpers::roster_output(&args, &[("ROSTER_SECRET_KEY", TEST_SECRET)]).await;
    let kid = out.lines().next().unwrap().trim().to_owned();
    assert_eq!(kid.len(), 43, "a base64url SHA-256: {out}");
    kid
}

/// `roster keys list`: each key id's state.
async fn states(app: &TestApp) -> Vec<(String, String)> {
    let listed =
        crate::helpers::roster_output(&["--database-url", &app.database_url, "keys", "list"], &[])
            .await;
    assert!(
        !listed.contains("\"d\"") && !listed.contains("v1:"),
        "no key material: {listed}"
    );
    listed
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .filter(|(kid, _)| kid.len() == 43)
        .collect()
}

fn state_of(states: &[(String, String)], kid: &str) -> String {
    states
        .iter()
        .find(|(k, _)| k == kid)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("{kid} not in {states:?}"))
}

/// The server reads the JWKS at most once a second (`tokens::JWKS_CACHE`).
async fn past_jwks_cache() {
    tokio::time::sleep(roster::tokens::JWKS_CACHE + std::time::Duration::from_millis(100)).await;
}

/// Moves time on for the keys: what `ACTIVATION_DELAY` (two minutes) would do.
async fn activate_now(app: &TestApp, kid: &str) {
    use roster::entity::signing_key::{Column, Entity};
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    Entity::update_many()
        .col_expr(Column::ActiveFrom, sea_orm::sea_query::Expr::value(past))
        .filter(Column::Kid.eq(kid))
        .exec(&app.db)
        .await
        .unwrap();
    Entity::update_many()
        .col_expr(Column::RetiredAt, sea_orm::sea_query::Expr::value(past))
        .filter(Column::Kid.ne(kid))
        .filter(Column::RetiredAt.gt(past))
        .exec(&app.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rotated_key_is_published_first_then_signs_everywhere_and_the_old_one_stays_published() {
    let app = spawn_app().await;
    let token = sign_in(&app, "erin").await;
    let kid = |jwt: &str| part(jwt, 0)["kid"].as_str().unwrap().to_owned();
    let before = jwt_of(&mint(&app, &token, Some("billing")).await);
    let old_kid = kid(&before);

    // The command an operator runs, on the same database, with the same secret: the new key
    // is in the JWKS at once, but the old one signs until it activates.
    let new_kid = rotate(&app, &[]).await;
    assert_ne!(new_kid, old_kid);
    let keys = jwks(&app).await;
    let published: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published, [new_kid.as_str(), old_kid.as_str()], "{keys}");
    assert_eq!(
        kid(&jwt_of(&mint(&app, &token, Some("billing")).await)),
        old_kid
    );
    let listed = states(&app).await;
    assert_eq!(state_of(&listed, &new_kid), "next");
    assert_eq!(state_of(&listed, &old_kid), "active");

    // Once it activates, the running server signs with it (read on every mint, no restart),
    // and a token of the old key still verifies.
    activate_now(&app, &new_kid).await;
    let after = jwt_of(&mint(&app, &token, Some("billing")).await);
    assert_eq!(kid(&after), new_kid);
    let keys = jwks(&app).await;
    verify(&before, &keys).expect("a token of the retired key still verifies");
    verify(&after, &keys).unwrap();
    let listed = states(&app).await;
    assert_eq!(state_of(&listed, &new_kid), "active");
    assert_eq!(state_of(&listed, &old_kid), "retiring");

    // `--now` (a leaked key): the next token already uses the newest key.
    let urgent = rotate(&app, &["--now"]).await;
    assert_eq!(
        kid(&jwt_of(&mint(&app, &token, Some("billing")).await)),
        urgent
    );

    // A key retired longer ago than any token lives leaves the JWKS, and its private half
    // is wiped at the next rotation.
    roster::entity::signing_key::Entity::update_many()
        .col_expr(
            roster::entity::signing_key::Column::RetiredAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::hours(2)),
        )
        .filter(roster::entity::signing_key::Column::Kid.eq(old_kid.clone()))
        .exec(&app.db)
        .await
        .unwrap();
    past_jwks_cache().await;
    let keys = jwks(&app).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(
        verify(&before, &keys).unwrap_err(),
        format!("no key {old_kid} in the JWKS")
    );
    assert_eq!(state_of(&states(&app).await, &old_kid), "retired");
    rotate(&app, &[]).await;
    let row = roster::entity::signing_key::Entity::find_by_id(old_kid.clone())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.private_key, None, "wiped");
}

#[tokio::test]
async fn a_database_dump_alone_cannot_mint_and_a_wrong_or_missing_secret_is_refused() {
    let app = spawn_app().await;
    let token = sign_in(&app, "frank").await;
    jwt_of(&mint(&app, &token, Some("billing")).await);
    let row = roster::entity::signing_key::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    // The private half is sealed: no PKCS#8 structure (which starts 0x30 0x81 or 0x30 0x82
    // and holds the P-256 OID) anywhere in what the database holds.
    let sealed = row.private_key.clone().unwrap();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&sealed[3..])
        .unwrap();
    let p256_oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    assert!(!bytes.windows(8).any(|w| w == p256_oid), "a key in clear");
    assert!(
        ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &bytes[12..],
            &ring::rand::SystemRandom::new()
        )
        .is_err()
    );

    // A server with another secret refuses to start, and says why (not what the secret is).
    let other = "another-secret-0123456789abcdef0123456789";
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "--listen",
            "127.0.0.1:0",
        ],
        &[("ROSTER_SECRET_KEY", other)],
    )
    .await;
    assert!(
        out.contains("the server secret does not open signing key"),
        "{out}"
    );
    assert!(!out.contains(other) && !out.contains(TEST_SECRET), "{out}");
    // So does a rotation with it, unless told the secret is being replaced.
    let out = crate::helpers::roster_output(
        &["--database-url", &app.database_url, "keys", "rotate"],
        &[("ROSTER_SECRET_KEY", other)],
    )
    .await;
    assert!(out.contains("does not open"), "{out}");
    // Without any secret, a database holding keys is refused (on SQLite too, where the
    // development secret would otherwise be made: it does not open these keys either).
    let refused = roster::tokens::AccessTokens::open(
        app.db.clone(),
        None,
        roster::tokens::TokenSettings {
            issuer: "http://x".into(),
            ttl: std::time::Duration::from_secs(60),
            default_audience: None,
        },
        roster::ratelimit::KeyLimiter::new("access_token", roster::ratelimit::RateLimit::Off, 10),
        roster::metrics::Metrics::new(),
    )
    .await
    .err()
    .expect("refused");
    assert!(
        refused
            .to_string()
            .contains("--secret-key-file or ROSTER_SECRET_KEY"),
        "{refused}"
    );
    // Moving to the new secret: the rotation is told so, and a server with the new secret
    // starts, signs with the new key, and still publishes the old one.
    let before = jwt_of(&mint(&app, &token, Some("billing")).await);
    let moved = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "keys",
            "rotate",
            "--replace-secret",
        ],
        &[("ROSTER_SECRET_KEY", other)],
    )
    .await;
    let new_kid = moved.lines().next().unwrap().trim().to_owned();
    let renewed = crate::helpers::spawn_app_on(app.database_url.clone(), |c| {
        c.tokens.secret_key = Some(roster::config::SecretText::new(other));
    })
    .await;
    let after = jwt_of(&mint(&renewed, &token, Some("billing")).await);
    assert_eq!(part(&after, 0)["kid"], new_kid.as_str(), "{moved}");
    let keys = jwks(&renewed).await;
    verify(&before, &keys).unwrap();
    verify(&after, &keys).unwrap();
    // Nor does `--help`, with the secret in the environment.
    let help =
        crate::helpers::roster_output(&["--help"], &[("ROSTER_SECRET_KEY", TEST_SECRET)]).await;
    assert!(
        help.contains("ROSTER_SECRET_KEY") && !help.contains(TEST_SECRET),
        "{help}"
    );
    // The secret itself never reaches a response or the JWKS.
    let keys = jwks(&app).await.to_string();
    assert!(!keys.contains(TEST_SECRET) && !keys.contains(&sealed[3..20]));
}

#[tokio::test]
async fn with_no_secret_configured_a_sqlite_file_gets_a_development_secret_beside_it() {
    let (url, file) = crate::helpers::fresh_sqlite("dev_secret");
    let secret_file = roster::secret::development_file(&file);
    {
        let app = crate::helpers::spawn_app_on(url.clone(), |c| c.tokens.secret_key = None).await;
        let token = sign_in(&app, "gina").await;
        let jwt = jwt_of(&mint(&app, &token, Some("billing")).await);
        verify(&jwt, &jwks(&app).await).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    // The next start reads the same secret and opens the same key.
    let app = crate::helpers::spawn_app_on(url, |c| c.tokens.secret_key = None).await;
    let token = sign_in(&app, "hank").await;
    jwt_of(&mint(&app, &token, Some("billing")).await);
    assert_eq!(jwks(&app).await["keys"].as_array().unwrap().len(), 1);
    drop(app);
    crate::helpers::remove_sqlite(Some(file));
    assert!(!secret_file.exists());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn on_postgres_without_a_secret_tokens_are_unavailable_and_the_jwks_empty() {
    assert!(
        crate::helpers::on_postgres(),
        "this test needs ROSTER_TEST_DATABASE_URL (PostgreSQL); .ci/run sets it"
    );
    let app = spawn_app_with(|c| c.tokens.secret_key = None).await;
    let token = sign_in(&app, "ivan").await;
    let answer = mint(&app, &token, Some("billing")).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "ACCESS_TOKENS_UNAVAILABLE",
        "{answer}"
    );
    assert_eq!(jwks(&app).await, json!({ "keys": [] }));
}

/// The verifier CI installs (`npm install jose` into `ROSTER_TEST_JOSE_DIR`): one Node process
/// that keeps one remote key set, as a service would, and verifies each token written to it.
const JOSE_VERIFIER: &str = r#"
import * as jose from "jose";
import readline from "node:readline";
const [jwksUrl, issuer, cooldown] = process.argv.slice(2);
const jwks = jose.createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: Number(cooldown) });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { token, audience } = JSON.parse(line);
  try {
    const { payload, protectedHeader } =
      await jose.jwtVerify(token, jwks, { issuer, audience, algorithms: ["ES256"] });
    console.log(JSON.stringify({ ok: true, kid: protectedHeader.kid, sub: payload.sub }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, code: e.code ?? String(e) }));
  }
}
"#;

struct Jose {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    script: std::path::PathBuf,
}

impl Jose {
    async fn start(app: &TestApp, issuer: &str, cooldown_ms: u64) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let dir = std::env::var("ROSTER_TEST_JOSE_DIR").expect(
            "this test needs Node and `npm install jose` in ROSTER_TEST_JOSE_DIR; .ci/run sets it",
        );
        let script = std::path::Path::new(&dir)
            .join(format!("verify-{}.mjs", uuid::Uuid::now_v7().simple()));
        std::fs::write(&script, JOSE_VERIFIER).unwrap();
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .arg(format!("http://{}/.well-known/jwks.json", app.addr))
            .arg(issuer)
            .arg(cooldown_ms.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            script,
        }
    }

    async fn verify(&mut self, token: &str, audience: &str) -> Value {
        use tokio::io::AsyncWriteExt as _;
        let stdin = self.child.stdin.as_mut().unwrap();
        let line = json!({ "token": token, "audience": audience }).to_string() + "\n";
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("jose answers")
                .unwrap()
                .expect("a line");
        serde_json::from_str(&answer).unwrap()
    }
}

impl Drop for Jose {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

#[tokio::test]
#[ignore = "needs Node with jose: run with ROSTER_TEST_JOSE_DIR set (.ci/run installs it) and -- --include-ignored"]
async fn jose_verifies_roster_s_tokens_through_a_rotation_and_refuses_forgeries() {
    let app = spawn_app().await;
    let issuer = format!("http://{}", app.addr);
    let token = sign_in(&app, "jose").await;
    let first = jwt_of(&mint(&app, &token, Some("billing")).await);
    let old_kid = part(&first, 0)["kid"].as_str().unwrap().to_owned();
    // jose refetches the key set on an unknown `kid` at most every `cooldownDuration` (30 s by
    // default), which the two-minute activation delay outlasts; the test compresses both.
    let mut jose = Jose::start(&app, &issuer, 0).await;
    let user_id = app.users().await.remove(0).id.to_string();

    let ok = jose.verify(&first, "billing").await;
    assert_eq!(ok, json!({ "ok": true, "kid": old_kid, "sub": user_id }));
    // Another service's audience, another issuer, a tampered payload, `alg: none`.
    assert_eq!(
        jose.verify(&first, "payroll").await,
        json!({ "ok": false, "code": "ERR_JWT_CLAIM_VALIDATION_FAILED" })
    );
    let mut other_issuer = Jose::start(&app, "https://elsewhere.example", 0).await;
    assert_eq!(
        other_issuer.verify(&first, "billing").await["code"],
        "ERR_JWT_CLAIM_VALIDATION_FAILED"
    );
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let (header, rest) = first.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let mut claims = part(&first, 1);
    claims["sub"] = json!(uuid::Uuid::now_v7().to_string());
    let tampered = format!("{header}.{}.{signature}", b64(&claims));
    assert_eq!(
        jose.verify(&tampered, "billing").await,
        json!({ "ok": false, "code": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" })
    );
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&part(&first, 1))
    );
    assert_eq!(jose.verify(&unsigned, "billing").await["ok"], false);

    // A rotation: the verifier that cached the old set meets the new key, and the old
    // key's token still verifies.
    let new_kid = rotate(&app, &[]).await;
    activate_now(&app, &new_kid).await;
    past_jwks_cache().await;
    let second = jwt_of(&mint(&app, &token, Some("billing")).await);
    assert_eq!(
        jose.verify(&second, "billing").await,
        json!({ "ok": true, "kid": new_kid, "sub": user_id })
    );
    assert_eq!(jose.verify(&first, "billing").await["kid"], old_kid);
}

/// Two real processes on one PostgreSQL database with one secret.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with ROSTER_TEST_DATABASE_URL set and -- --include-ignored"]
async fn two_processes_share_signing_keys_and_forward_auth_sees_a_logout_on_the_other() {
    assert!(
        crate::helpers::on_postgres(),
        "this test needs ROSTER_TEST_DATABASE_URL (PostgreSQL); .ci/run sets it"
    );
    let (url, _) = crate::helpers::fresh_database_url().await;
    let args = [
        "--secret-key",
        TEST_SECRET,
        "--session-cookie-secure",
        "false",
    ];
    let a = crate::process::Process::start(&url, &args).await;
    let b = crate::process::Process::start(&url, &args).await;
    let client = fresh_client();
    let gql = |p: &crate::process::Process, token: Option<&str>, query: &str, vars: Value| {
        let mut request = client
            .post(format!("http://{}/graphql", p.addr))
            .json(&json!({ "query": query, "variables": vars }));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    gql(
        &a,
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { id } }",
        json!({ "i": { "username": "fleet", "email": "fleet@example.com", "password": GOOD_PASSWORD } }),
    )
    .await;
    let login = gql(
        &a,
        None,
        "mutation($i: LoginInput!) { login(input: $i) { token } }",
        json!({ "i": { "identifier": "fleet", "password": GOOD_PASSWORD } }),
    )
    .await;
    let token = login["data"]["login"]["token"].as_str().unwrap().to_owned();
    let mint_on = |p| gql(p, Some(&token), MINT, json!({ "a": "billing" }));
    let kid = |answer: Value| {
        part(&jwt_of(&answer), 0)["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // One key for the fleet: both processes sign with it.
    let first = kid(mint_on(&a).await);
    assert_eq!(kid(mint_on(&b).await), first);

    // Rotated by the command (as an operator would, `--now`): the other process's very next
    // token uses the new key, and the first process publishes it.
    let out = crate::helpers::roster_output(
        &["--database-url", &url, "keys", "rotate", "--now"],
        &[("ROSTER_SECRET_KEY", TEST_SECRET)],
    )
    .await;
    let rotated = out.lines().next().unwrap().trim().to_owned();
    assert_eq!(kid(mint_on(&b).await), rotated);
    let keys: Value = client
        .get(format!("http://{}/.well-known/jwks.json", a.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    verify(&jwt_of(&mint_on(&a).await), &keys).unwrap();

    // A logout on one process: the other's forward-auth check refuses at once.
    let check = |p: &crate::process::Process| {
        client
            .get(format!("http://{}/auth/check", p.addr))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(check(&b).await.unwrap().status(), StatusCode::OK);
    let out = gql(&a, Some(&token), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(check(&b).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_auth_check_jwt_a_check_carries_one_token_per_session_that_verifies() {
    let app = check_jwt_app().await;
    let token = sign_in(&app, "kim").await;
    let check = |credential: Option<&str>| {
        let mut request = fresh_client().get(format!("http://{}/auth/check", app.addr));
        if let Some(t) = credential {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    let first = check(Some(&token)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let session_id = first.headers()["x-roster-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let jwt = first.headers()["x-roster-jwt"].to_str().unwrap().to_owned();
    let claims = verify(&jwt, &jwks(&app).await).unwrap();
    assert_eq!(claims["aud"], "intranet");
    assert_eq!(claims["sid"], session_id.as_str());
    assert_eq!(claims["email_verified"], false);

    // The next check reuses the token (no signature per check)…
    let again = check(Some(&token)).await.unwrap();
    assert_eq!(again.headers()["x-roster-jwt"], jwt.as_str());
    // …until what it says of the user changes.
    app.db
        .execute_unprepared("UPDATE users SET email_verified = true")
        .await
        .unwrap();
    let changed = check(Some(&token)).await.unwrap();
    let renewed = changed.headers()["x-roster-jwt"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(renewed, jwt);
    assert_eq!(part(&renewed, 1)["email_verified"], true);

    // Anonymous and logged out: 401, and no token.
    let anonymous = check(None).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().get("x-roster-jwt").is_none());
    let out = fresh_client()
        .post(app.url())
        .bearer_auth(&token)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(out["data"]["logout"], true);
    let after = check(Some(&token)).await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(after.headers().get("x-roster-jwt").is_none());

    // Off by default: no token in a check.
    let plain = spawn_app().await;
    let token = sign_in(&plain, "lee").await;
    let answer = bearer_check(&plain, &token).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers().get("x-roster-jwt").is_none());
}

/// A row written into `signing_keys` by anyone without the server secret: a key pair of the
/// attacker's, made the newest and active.
async fn plant_key(app: &TestApp, mac: Option<&str>) -> String {
    use roster::entity::signing_key::{ActiveModel, Entity};
    use sea_orm::ActiveValue::Set;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    use ring::signature::KeyPair as _;
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let kid = format!("planted{}", uuid::Uuid::now_v7().simple());
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]),
                      "kid": kid, "use": "sig", "alg": "ES256" });
    Entity::insert(ActiveModel {
        kid: Set(kid.clone()),
        algorithm: Set("ES256".into()),
        public_jwk: Set(jwk.to_string()),
        public_mac: Set(mac.map(str::to_owned)),
        private_key: Set(Some(format!("v1:{}", b64(&[7u8; 80])))),
        created_at: Set(chrono::Utc::now()),
        active_from: Set(chrono::Utc::now()),
        retired_at: Set(None),
    })
    .exec(&app.db)
    .await
    .unwrap();
    kid
}

#[tokio::test]
async fn a_key_written_into_the_database_is_never_published_and_never_signs() {
    let app = check_jwt_app().await;
    let token = sign_in(&app, "mallory").await;
    let honest = part(&jwt_of(&mint(&app, &token, Some("billing")).await), 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Without a MAC, or with one made up: not in the JWKS (only the honest key is).
    let unvouched = plant_key(&app, None).await;
    let forged = plant_key(&app, Some(&"0".repeat(64))).await;
    let keys = jwks(&app).await;
    let published: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published, [honest.as_str()], "{unvouched} {forged}");
    // Made the key that signs, it cannot be opened: minting fails closed (an internal
    // error, logged), and a check that promised a token answers 503 rather than pass the
    // request on without one.
    let answer = mint(&app, &token, Some("billing")).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR",
        "{answer}"
    );
    let check = bearer_check(&app, &token).await;
    assert_eq!(check.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(check.headers().get("x-roster-user-id").is_none());
}

#[tokio::test]
async fn a_revoked_key_leaves_the_jwks_at_once_and_a_key_from_before_macs_is_vouched_for() {
    let (url, file) = crate::helpers::fresh_sqlite("revoke");
    let app = crate::helpers::spawn_app_on(url.clone(), |_| {}).await;
    let token = sign_in(&app, "nina").await;
    let before = jwt_of(&mint(&app, &token, Some("billing")).await);
    let leaked = part(&before, 0)["kid"].as_str().unwrap().to_owned();
    let fresh = rotate(&app, &["--now"]).await;
    let out = crate::helpers::roster_output(
        &[
            "--database-url",
            &app.database_url,
            "keys",
            "revoke",
            &leaked,
        ],
        &[("ROSTER_SECRET_KEY", TEST_SECRET)],
    )
    .await;
    assert!(out.contains("out of the JWKS"), "{out}");
    let keys = jwks(&app).await;
    assert_eq!(
        verify(&before, &keys).unwrap_err(),
        format!("no key {leaked} in the JWKS")
    );
    assert_eq!(state_of(&states(&app).await, &leaked), "retired");
    let row = roster::entity::signing_key::Entity::find_by_id(leaked.clone())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.private_key, None, "wiped");
    // A key whose row predates `public_mac` is published again once a server with the
    // secret has opened it.
    roster::entity::signing_key::Entity::update_many()
        .col_expr(
            roster::entity::signing_key::Column::PublicMac,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .exec(&app.db)
        .await
        .unwrap();
    past_jwks_cache().await;
    assert_eq!(jwks(&app).await["keys"], json!([]));
    drop(app);
    let again = crate::helpers::spawn_app_on(url, |_| {}).await;
    let keys = jwks(&again).await;
    assert_eq!(keys["keys"][0]["kid"], fresh.as_str(), "{keys}");
    drop(again);
    crate::helpers::remove_sqlite(Some(file));
}
