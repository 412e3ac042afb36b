//! A real SMTP server for the tests, built by cargo: a small SMTP sink on a real socket that
//! lettre (the client under test) talks to exactly as it talks to a relay.
//!
//! Why our own sink and not a crate: the SMTP server crates on crates.io are either whole
//! mail servers (stalwart) or unmaintained (mailin-embedded, samotop), and none lets a test
//! stop the listener and start it again on the same port, or refuse chosen recipients. The
//! sink speaks only what a submission client needs (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT); the MIME parsing of what arrives is `mail-parser`'s (Stalwart's, well kept), so
//! quoted-printable, base64 and encoded words are decoded by code roster did not write.
//!
//! Every message accepted is kept as JSON: envelope sender and recipients, Message-ID,
//! Subject, To, From, and the decoded text and HTML parts. A recipient whose local part
//! starts with "bounce" is refused with 550, so tests can watch a delivery fail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    running: Option<Running>,
}

/// The sink's own thread and runtime: dropping the runtime closes the listener and every
/// open connection at once, as killing a server process would.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The longest command line or message the sink reads; a longer one ends the connection.
const MAX_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts the server on `port` and waits until it listens.
    pub async fn start_on(port: u16) -> Self {
        let mut server = Self {
            port,
            received: Arc::default(),
            running: None,
        };
        server.restart().await;
        server
    }

    /// (Re)starts the server on the same port, keeping what it received.
    pub async fn restart(&mut self) {
        self.stop();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let port = self.port;
        let received = self.received.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                // tokio sets SO_REUSEADDR, so a restart can take the port back at once.
                let listener = match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let accept = async {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            tokio::spawn(session(stream, received.clone()));
                        }
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
            // The runtime drops here, and every connection task with it.
        });
        ready_rx
            .await
            .expect("the SMTP sink's thread answers")
            .unwrap_or_else(|e| panic!("the test SMTP server could not listen on {port}: {e}"));
        self.running = Some(Running { stop, thread });
    }

    /// Stops the server: the port refuses connections until [`SmtpServer::restart`].
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
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
    }
}

/// The address inside `FROM:<…>` / `TO:<…>`, without its parameters.
fn path_argument(argument: &str) -> Option<String> {
    let (_, rest) = argument.split_once(':')?;
    let rest = rest.trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// Reads one CRLF- (or LF-) terminated line; `None` at end of stream or past [`MAX_LINE`].
async fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .ok()?;
    if n == 0 || !line.ends_with(b"\n") {
        return None;
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

async fn session(stream: TcpStream, received: Arc<Mutex<Vec<Value>>>) {
    let mut reader = BufReader::new(stream);
    macro_rules! reply {
        ($text:expr) => {
            if reader
                .get_mut()
                .write_all(format!("{}\r\n", $text).as_bytes())
                .await
                .is_err()
            {
                return;
            }
        };
    }
    reply!("220 127.0.0.1 roster test SMTP sink");
    let mut mail_from: Option<String> = None;
    let mut rcpt_tos: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await {
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => reply!("250-127.0.0.1\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP"),
            "HELO" => reply!("250 127.0.0.1"),
            "MAIL" => match path_argument(argument) {
                Some(from) => {
                    mail_from = Some(from);
                    rcpt_tos.clear();
                    reply!("250 OK");
                }
                None => reply!("501 5.5.4 Syntax: MAIL FROM:<address>"),
            },
            "RCPT" => match (path_argument(argument), &mail_from) {
                (_, None) => reply!("503 5.5.1 Error: need MAIL command"),
                (None, _) => reply!("501 5.5.4 Syntax: RCPT TO:<address>"),
                (Some(to), Some(_)) if to.to_ascii_lowercase().starts_with("bounce") => {
                    reply!("550 5.1.1 mailbox unavailable")
                }
                (Some(to), Some(_)) => {
                    rcpt_tos.push(to);
                    reply!("250 OK");
                }
            },
            "DATA" => {
                let Some(from) = mail_from.take() else {
                    reply!("503 5.5.1 Error: need MAIL command");
                    continue;
                };
                if rcpt_tos.is_empty() {
                    reply!("503 5.5.1 Error: need RCPT command");
                    continue;
                }
                reply!("354 End data with <CR><LF>.<CR><LF>");
                let mut content = Vec::new();
                loop {
                    let Some(line) = read_line(&mut reader).await else {
                        return;
                    };
                    if line == "." {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                    let line = line.strip_prefix('.').unwrap_or(&line);
                    content.extend_from_slice(line.as_bytes());
                    content.extend_from_slice(b"\r\n");
                    if content.len() > MAX_MESSAGE {
                        return;
                    }
                }
                let record = parse(&from, std::mem::take(&mut rcpt_tos), &content);
                received.lock().unwrap().push(record);
                reply!("250 Message accepted for delivery");
            }
            "RSET" => {
                mail_from = None;
                rcpt_tos.clear();
                reply!("250 OK");
            }
            "NOOP" => reply!("250 OK"),
            "QUIT" => {
                reply!("221 Bye");
                return;
            }
            _ => reply!("502 5.5.2 Error: command not recognized"),
        }
    }
}

/// A received message as the tests read it; the MIME decoding is `mail-parser`'s.
fn parse(mail_from: &str, rcpt_tos: Vec<String>, content: &[u8]) -> Value {
    let message = mail_parser::MessageParser::default().parse(content);
    let header = |name: &str| {
        message
            .as_ref()
            .and_then(|m| m.header_raw(name))
            .map(|v| v.trim().to_owned())
    };
    json!({
        "mail_from": mail_from,
        "rcpt_tos": rcpt_tos,
        "message_id": header("Message-ID"),
        "subject": message.as_ref().and_then(|m| m.subject()),
        "to": header("To"),
        "from": header("From"),
        "text": message.as_ref().and_then(|m| m.body_text(0)),
        "html": message.as_ref().and_then(|m| m.body_html(0)),
    })
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
