//! A real SMTP server for the tests: aiosmtpd (Debian's `python3-aiosmtpd`) in a subprocess,
//! writing each message it accepts as a JSON file (`tests/smtp/smtp_server.py`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts the server on `port` and waits until it listens.
    pub async fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("roster-smtp-{}", uuid::Uuid::now_v7()));
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    /// (Re)starts the process on the same port and directory.
    pub async fn restart(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/smtp_server.py");
        // Debian's interpreter, which `python3-aiosmtpd` installs for (a pyenv or venv
        // `python3` earlier on PATH would not see it); ROSTER_TEST_PYTHON overrides.
        let python = std::env::var("ROSTER_TEST_PYTHON").unwrap_or_else(|_| {
            if std::path::Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3".into()
            } else {
                "python3".into()
            }
        });
        let mut child = Command::new(python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the test SMTP server (apt-get install python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).ok();
            line
        })
        .await
        .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the test SMTP server did not start (is python3-aiosmtpd installed?)"
        );
        self.child = Some(child);
    }

    /// Kills the server: the port refuses connections until [`SmtpServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `n` messages have arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "expected {n} emails within {within:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The token of the link in an email's text part, and checks the HTML part has the same link.
pub fn link_token(message: &Value, path: &str) -> String {
    let text = message["text"].as_str().expect("a text part");
    let marker = format!("/{path}?token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "{text}");
    let html = message["html"].as_str().expect("an HTML part");
    assert!(html.contains(&format!("{marker}{token}")), "{html}");
    token
}
