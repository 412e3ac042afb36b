//! nginx (Debian's) in front of a small application, asking roster who is calling with
//! `auth_request`, configured by exactly the file the docs give (`docs/nginx/auth-request.conf`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{GOOD_PASSWORD, spawn_app};
use crate::mailbox::free_port;

/// nginx in a directory of its own, stopped when dropped.
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers (a killed master leaves
        // them running, holding the port and the test's output open).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a signal to our own child process, which we then wait for.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nginx")
        .to_owned()
}

fn start_nginx(listen: u16, roster: std::net::SocketAddr, upstream: u16) -> Nginx {
    let dir = std::env::temp_dir().join(format!("roster-nginx-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = include_str!("../../docs/nginx/auth-request.conf");
    let conf = template
        .replace("{{PREFIX}}", dir.to_str().unwrap())
        .replace("{{LISTEN}}", &format!("127.0.0.1:{listen}"))
        .replace("{{ROSTER}}", &roster.to_string())
        .replace("{{UPSTREAM}}", &format!("127.0.0.1:{upstream}"));
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new(nginx_binary())
        .args(["-p", dir.to_str().unwrap(), "-c", path.to_str().unwrap()])
        .args(["-g", "daemon off;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (apt-get install nginx)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child, dir }
}

/// The application behind nginx: answers every request with the `X-Roster-*` headers it
/// received, as JSON.
async fn start_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-roster-"))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("?").to_owned()),
                )
            })
            .collect();
        axum::Json(Value::Object(seen))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
#[ignore = "needs nginx (Debian's `nginx`): run with -- --include-ignored"]
async fn nginx_passes_roster_identities_to_the_application_and_refuses_everyone_else() {
    let app = spawn_app().await;
    let upstream = start_upstream().await;
    let listen = free_port();
    let _nginx = start_nginx(listen, app.addr, upstream);
    let base = format!("http://127.0.0.1:{listen}");
    let client = crate::helpers::client();

    // Anonymous, or with forged identity headers: refused, the application never sees it.
    for forged in [false, true] {
        let mut request = client.get(format!("{base}/dashboard"));
        if forged {
            request = request.header("x-roster-user-id", "00000000-0000-0000-0000-000000000000");
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }

    // Signing in through the proxy, as a browser on the application's origin would.
    let graphql = |body: Value, token: Option<String>| {
        let client = client.clone();
        let url = format!("{base}/graphql");
        async move {
            let mut request = client.post(url).json(&body);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            request.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let registered = graphql(
        json!({ "query": "mutation($i: RegisterInput!) { register(input: $i) { id } }",
                "variables": { "i": { "username": "Zoë", "email": "zoe@example.com", "password": GOOD_PASSWORD } } }),
        None,
    )
    .await;
    let user_id = registered["data"]["register"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = graphql(
        json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { token } }",
                "variables": { "i": { "identifier": "zoe@example.com", "password": GOOD_PASSWORD } } }),
        None,
    )
    .await;
    let token = login["data"]["login"]["token"].as_str().unwrap().to_owned();

    // By bearer and by cookie, with a forged header alongside: the application sees roster's
    // identity, never the client's.
    for credential in [
        ("authorization", format!("Bearer {token}")),
        ("cookie", format!("__Host-roster_session={token}")),
    ] {
        let seen: Value = client
            .get(format!("{base}/dashboard"))
            .header(credential.0, &credential.1)
            .header("x-roster-user-id", "00000000-0000-0000-0000-000000000000")
            .header("x-roster-legacy-id", "1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["x-roster-user-id"], user_id.as_str(), "{seen}");
        assert_eq!(seen["x-roster-username"], "Zo%C3%AB", "{seen}");
        assert_eq!(seen["x-roster-email-verified"], "false", "{seen}");
        assert!(seen.get("x-roster-session-id").is_some(), "{seen}");
        assert!(
            seen.get("x-roster-legacy-id").is_none(),
            "a client's own X-Roster-Legacy-Id never reaches the application: {seen}"
        );
    }

    // After logout, the next request is refused.
    let out = graphql(
        json!({ "query": "mutation { logout }" }),
        Some(token.clone()),
    )
    .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let after = client
        .get(format!("{base}/dashboard"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

/// The strangler fig, whole: a real Django application behind the documented nginx, on the
/// Django database `roster import-django` read, with the documented middleware
/// (docs/django/roster_middleware.py). Users sign in to roster; Django sees its own
/// `auth_user`.
#[tokio::test]
#[ignore = "needs nginx and Django: run with ROSTER_TEST_DJANGO_PYTHON (a python with Django; .ci/run makes one) and -- --include-ignored"]
async fn a_django_app_behind_nginx_sees_roster_s_user_as_its_own_auth_user() {
    use tokio::io::AsyncBufReadExt as _;
    let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect(
        "this test needs ROSTER_TEST_DJANGO_PYTHON, a python with Django installed; .ci/run sets it",
    );
    let app = spawn_app().await;
    let source = crate::django::django_sqlite();
    let (code, report, stderr) = crate::django::import(&app, &source, &[]).await;
    assert!(code == 0 || !report.is_empty(), "{stderr}");
    let django_file = source.strip_prefix("sqlite://").unwrap().to_owned();

    let port = free_port();
    let mut django = tokio::process::Command::new(&python)
        .arg(format!(
            "{}/tests/django/strangler_app.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(&django_file)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut lines = tokio::io::BufReader::new(django.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("Django starts")
        .unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));
    let listen = free_port();
    let _nginx = start_nginx(listen, app.addr, port);
    let base = format!("http://127.0.0.1:{listen}");
    let client = crate::helpers::client();
    let whoami = |token: Option<&str>, forged: Option<&str>| {
        let mut request = client.get(format!("{base}/whoami"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(id) = forged {
            request = request.header("x-roster-legacy-id", id);
        }
        request.send()
    };

    // Nobody signed in, even claiming to be Django's superuser: nginx refuses.
    assert_eq!(whoami(None, Some("14")).await.unwrap().status(), 401);

    // Django's user signs in to roster, with the password Django hashed, through nginx.
    let login: Value = client
        .post(format!("{base}/graphql"))
        .json(
            &json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { token } }",
                       "variables": { "i": { "identifier": "user_pbkdf2_sha256",
                                              "password": GOOD_PASSWORD } } }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{login}"))
        .to_owned();

    // Django sees its own auth_user 1, whatever the client claims.
    for forged in [None, Some("14")] {
        let seen: Value = whoami(Some(&token), forged)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            seen,
            json!({ "authenticated": true, "id": 1, "username": "user_pbkdf2_sha256", "is_staff": false }),
            "forged: {forged:?}"
        );
    }

    // Logged out of roster: Django's pages refuse at once.
    let out: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(whoami(Some(&token), None).await.unwrap().status(), 401);
    let _ = std::fs::remove_file(&django_file);
}
