//! The real `roster` binary in a child process, as an operator runs it.

use std::time::Duration;

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// The real binary, as an operator runs it; stdout and stderr are collected as they come.
pub struct Process {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Process {
    pub async fn start(database_url: &str, args: &[&str]) -> Self {
        Self::start_with_env(database_url, args, &[]).await
    }

    /// [`Process::start`] with extra environment variables.
    pub async fn start_with_env(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        crate::helpers::tls();
        // Defaults for a test, each unless the caller sets it.
        let mut defaults = vec![];
        for (flag, value) in [
            ("--listen", "127.0.0.1:0"),
            ("--register-rate-limit", "off"),
            ("--mail-poll-interval", "1s"),
        ] {
            if !args.contains(&flag) {
                defaults.extend([flag, value]);
            }
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["--database-url", database_url])
            .args(defaults)
            .args(args)
            .env_remove("ROSTER_SMTP_URL")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (
            std::sync::Arc::new(std::sync::Mutex::new(String::new())),
            std::sync::Arc::new(std::sync::Mutex::new(String::new())),
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("roster is ready: GraphiQL at http://") {
                    let _ = ready_tx.send(url.trim_end_matches("/graphql").to_owned());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let out = BufReader::new(child.stdout.take().unwrap());
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let addr = tokio::task::spawn_blocking(move || ready_rx.recv_timeout(WAIT))
            .await
            .unwrap()
            .expect("the binary starts")
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        crate::helpers::client()
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path` on this process.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = crate::helpers::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
