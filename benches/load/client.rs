//! A minimal HTTP/1.1 keep-alive client and the request bodies the benchmark sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;

/// A minimal HTTP/1.1 keep-alive client: one request at a time, Content-Length bodies.
pub(crate) struct Conn {
    pub(crate) stream: BufReader<TcpStream>,
    pub(crate) line: String,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    pub(crate) async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.get_mut().write_all(request).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

pub(crate) fn graphql_request(body: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Payload {
    /// A fresh username and email every time: every request hashes.
    Unique,
    /// Every field invalid (bad username characters, bad email, short password): validation
    /// errors only, no database query, no hash.
    Invalid,
    /// A well-formed username with a bad email and a short password: validation errors plus
    /// the `taken` lookup, no hash.
    InvalidNamed,
    /// A taken username with otherwise valid input: caught by the pre-check.
    Duplicate,
    /// Registers the `n`th account the login phase uses (the first one also serves the
    /// failed-login timing).
    LoginAccount(usize),
    /// A login with the right password: one verification, one session row.
    Login,
}

pub(crate) fn login_body(identifier: &str, password: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"query":"mutation L($i: LoginInput!) {{ login(input: $i) {{ token }} }}","variables":{{"i":{{"identifier":"{identifier}","password":"{password}"}}}}}}"#
    );
    graphql_request(&body)
}

pub(crate) static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many accounts the login phase spreads its logins over, round robin
/// (`ROSTER_BENCH_LOGIN_ACCOUNTS`, default 1: every login is the same user's, the worst case
/// for the database, which serializes them on that user's row).
pub(crate) fn login_accounts() -> usize {
    std::env::var("ROSTER_BENCH_LOGIN_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// The `account`th login account of this run; the first is also the failed-login timing's.
pub(crate) fn login_account_name(run: u32, account: usize) -> String {
    if account == 0 {
        format!("bench_login_{run}")
    } else {
        format!("bench_login_{run}_{account}")
    }
}

pub(crate) fn register_body(payload: Payload) -> Vec<u8> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let run = std::process::id();
    let (username, email, password) = match payload {
        Payload::Login => {
            // Round robin over the accounts, in another case than registered (the canonical
            // lookup is part of the path measured).
            let name = login_account_name(run, n as usize % login_accounts()).to_uppercase();
            return login_body(&name, &format!("{PASSWORD_BASE}-login"));
        }
        Payload::Unique => (
            format!("bench_{run}_{n}"),
            format!("bench_{run}_{n}@example.com"),
            format!("{PASSWORD_BASE}-{n}"),
        ),
        Payload::Invalid => (
            format!("bad name {run} {n}!"),
            "not-an-email".to_owned(),
            "short".to_owned(),
        ),
        Payload::InvalidNamed => (
            format!("bench_bad_{run}_{n}"),
            "not-an-email".to_owned(),
            "short".to_owned(),
        ),
        Payload::Duplicate => (
            format!("bench_{run}_0"),
            format!("dup_{run}_{n}@example.com"),
            format!("{PASSWORD_BASE}-{n}"),
        ),
        Payload::LoginAccount(account) => {
            let name = login_account_name(run, account);
            let email = format!("{name}@example.com");
            (name, email, format!("{PASSWORD_BASE}-login"))
        }
    };
    let body = format!(
        r#"{{"query":"mutation R($i: RegisterInput!) {{ register(input: $i) {{ id }} }}","variables":{{"i":{{"username":"{username}","email":"{email}","password":"{password}"}}}}}}"#
    );
    graphql_request(&body)
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
