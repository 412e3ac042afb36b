//! Email: the compiled-in templates (overridable from a directory), the transports (SMTP
//! with lettre, or the console for development) and the delivery worker that drains the
//! outbox.

/// The background task that claims, renders, sends and records outbox rows.
pub mod worker;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::outbox::Kind;

/// An SMTP URL. Holds credentials, so it is never printed: `Debug` redacts it and `--help`
/// hides the environment's value.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(pub String);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpUrl(<redacted>)")
    }
}

/// One email, ready to send.
#[derive(Clone)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Fixed per outbox row, so a receiver can drop a retried duplicate.
    pub message_id: String,
}

/// Why a send failed. `detail` is kept on the outbox row for operators; only `kind` and
/// `code` are logged (a server's reply may quote the recipient's address).
#[derive(Debug)]
pub struct SendError {
    pub kind: &'static str,
    pub code: Option<u16>,
    pub detail: String,
}

/// Where emails go.
pub enum Transport {
    /// An SMTP server, as `--smtp-url` says.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Printed to stdout (Django's console backend): the development default.
    Console,
}

impl Transport {
    /// The SMTP transport for `url` (read exactly as lettre's `from_url` reads it), or the
    /// console when there is none.
    pub fn new(url: Option<&SmtpUrl>, timeout: Duration) -> Result<Self, String> {
        match url {
            None => Ok(Self::Console),
            Some(url) => {
                // lettre's error says what is wrong without repeating the URL.
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url.0)
                    .map_err(|e| format!("--smtp-url: {e}"))?;
                Ok(Self::Smtp(builder.timeout(Some(timeout)).build()))
            }
        }
    }

    pub async fn send(&self, from: &Mailbox, email: &Rendered) -> Result<(), SendError> {
        match self {
            Self::Console => {
                // Nothing in an email may move the cursor or forge lines on a terminal.
                let clean = |s: &str| -> String {
                    s.chars()
                        .filter(|c| !c.is_control() || *c == '\n')
                        .collect()
                };
                let printed = format!(
                    "===== email (console transport: printed, not sent) =====\n\
                     Message-ID: {}\nFrom: {from}\nTo: {}\nSubject: {}\n\n{}\n\
                     ===== end of email =====\n",
                    email.message_id,
                    clean(&email.to).replace('\n', " "),
                    clean(&email.subject).replace('\n', " "),
                    clean(&email.text)
                );
                // Off the runtime threads: a stdout pipe nobody reads would block the write,
                // and the worker's timeout can only give up on a task it can leave behind.
                let written = tokio::task::spawn_blocking(move || {
                    let mut out = std::io::stdout().lock();
                    out.write_all(printed.as_bytes()).and_then(|()| out.flush())
                })
                .await;
                match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
                .map_err(|detail| SendError {
                    kind: "console",
                    code: None,
                    detail,
                })
            }
            Self::Smtp(smtp) => {
                let to: Mailbox = email.to.parse().map_err(|e| SendError {
                    kind: "address",
                    code: None,
                    detail: format!("recipient address: {e}"),
                })?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(email.subject.clone())
                    .message_id(Some(email.message_id.clone()))
                    .multipart(MultiPart::alternative_plain_html(
                        email.text.clone(),
                        email.html.clone(),
                    ))
                    .map_err(|e| SendError {
                        kind: "message",
                        code: None,
                        detail: e.to_string(),
                    })?;
                smtp.send(message).await.map(|_| ()).map_err(|e| SendError {
                    kind: if e.is_permanent() {
                        "permanent"
                    } else if e.is_transient() {
                        "transient"
                    } else if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    },
                    code: e.status().map(|c| {
                        let text = c.to_string();
                        text.parse().unwrap_or(0)
                    }),
                    detail: e.to_string(),
                })
            }
        }
    }
}

/// One email's three parts, with `{{link}}`, `{{email}}` and `{{expires_in}}` placeholders.
#[derive(Debug, Clone)]
struct Template {
    subject: String,
    text: String,
    html: String,
}

/// The templates of every kind of email, in `Kind::ALL`'s order.
#[derive(Debug, Clone)]
pub struct Templates {
    by_kind: Vec<Template>,
}

/// The compiled-in templates: subject, text, HTML, by kind.
fn builtin(kind: Kind) -> (&'static str, &'static str, &'static str) {
    macro_rules! files {
        ($name:literal) => {
            (
                include_str!(concat!("templates/", $name, ".subject")),
                include_str!(concat!("templates/", $name, ".txt")),
                include_str!(concat!("templates/", $name, ".html")),
            )
        };
    }
    match kind {
        Kind::VerifyEmail => files!("verify_email"),
        Kind::ResetPassword => files!("reset_password"),
        Kind::SecondFactorAdded => files!("second_factor_added"),
        Kind::SecondFactorRemoved => files!("second_factor_removed"),
        Kind::RecoveryCodeUsed => files!("recovery_code_used"),
        Kind::ChangeEmail => files!("change_email"),
        Kind::EmailChangeRequested => files!("email_change_requested"),
        Kind::EmailInUse => files!("email_in_use"),
        Kind::AccountDeleted => files!("account_deleted"),
        Kind::EmailChanged => files!("email_changed"),
        Kind::AccountDeletionScheduled => files!("account_deletion_scheduled"),
    }
}

impl Templates {
    /// The compiled-in templates, with any file of `dir` taking the place of its
    /// namesake. Refuses a link email's template without `{{link}}` (the email would be
    /// useless) and a subject over one line.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let read = |name: &str, builtin: &str| -> Result<String, String> {
            let Some(dir) = dir else {
                return Ok(builtin.to_owned());
            };
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(builtin.to_owned()),
                Err(e) => Err(format!("--mail-templates: {}: {e}", path.display())),
            }
        };
        let template = |kind: Kind| {
            let name = kind.as_str();
            let (subject, text, html) = builtin(kind);
            let t = Template {
                subject: read(&format!("{name}.subject"), subject)?.trim().to_owned(),
                text: read(&format!("{name}.txt"), text)?,
                html: read(&format!("{name}.html"), html)?,
            };
            if t.subject.is_empty() || t.subject.contains('\n') {
                return Err(format!(
                    "--mail-templates: {name}.subject must be one non-empty line"
                ));
            }
            for (part, body) in [("txt", &t.text), ("html", &t.html)] {
                if kind.has_link() && !body.contains("{{link}}") {
                    return Err(format!(
                        "--mail-templates: {name}.{part} has no {{{{link}}}} placeholder"
                    ));
                }
            }
            Ok::<_, String>(t)
        };
        Ok(Self {
            by_kind: Kind::ALL
                .into_iter()
                .map(template)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Subject, text and HTML for one email. Values are HTML-escaped in the HTML part. The
    /// recipient's address is the only personal data (an email is read by whoever holds the
    /// inbox, so no username).
    pub fn render(
        &self,
        kind: Kind,
        link: &str,
        recipient: &str,
        expires_in: Duration,
    ) -> (String, String, String) {
        // `Kind::ALL` lists the kinds in declaration order (a test holds it).
        let t = &self.by_kind[kind as usize];
        let expires = human_duration(expires_in);
        let fill = |body: &str, escape: bool| {
            let value = |v: &str| {
                if escape { html_escape(v) } else { v.to_owned() }
            };
            body.replace("{{link}}", &value(link))
                .replace("{{email}}", &value(recipient))
                .replace("{{expires_in}}", &value(&expires))
        };
        (
            fill(&t.subject, false),
            fill(&t.text, false),
            fill(&t.html, true),
        )
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `24 hours`, `1 hour`, `90 seconds`, `30 minutes`, `2 days`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) && secs >= 2 * 86_400 {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The address links point at: `--public-url`, or roster's own bound address (a wildcard
/// becomes `localhost`, with a warning, since a link must name a host).
pub fn public_url(configured: Option<&str>, bound: std::net::SocketAddr) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    if bound.ip().is_unspecified() {
        tracing::warn!(
            "no --public-url and roster listens on a wildcard address: links in emails point at http://localhost:{}",
            bound.port()
        );
        format!("http://localhost:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

/// Warns when `--smtp-url` would send credentials unencrypted to a host that is not this
/// machine (plain `smtp://` without `tls=required`).
pub fn warn_if_plaintext_credentials(url: &SmtpUrl) {
    if sends_credentials_in_clear(url) {
        tracing::warn!(
            "--smtp-url sends the SMTP credentials unencrypted to a host that is not this machine; use smtps:// or ?tls=required"
        );
    }
}

/// Credentials in the URL, no TLS required (`smtp://` with no `tls=required`; lettre's
/// `opportunistic` can be stripped by anyone on the path), and a host other than loopback.
fn sends_credentials_in_clear(url: &SmtpUrl) -> bool {
    let Ok(parsed) = url::Url::parse(&url.0) else {
        return false;
    };
    let has_credentials = !parsed.username().is_empty() || parsed.password().is_some();
    let tls_required = parsed.scheme() == "smtps"
        || parsed
            .query_pairs()
            .any(|(k, v)| k == "tls" && v == "required");
    // `smtp:` is not a "special" scheme to the URL parser, so an IP comes back as a domain.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    has_credentials && !tls_required && !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_escape() {
        let t = Templates::load(None).unwrap();
        let (subject, text, html) = t.render(
            Kind::ResetPassword,
            "http://x/reset-password?token=a&b",
            "o'brien@example.com",
            Duration::from_secs(3600),
        );
        assert_eq!(subject, "Reset your password");
        assert!(text.contains("http://x/reset-password?token=a&b"));
        assert!(text.contains("1 hour") && text.contains("o'brien@example.com"));
        assert!(html.contains("token=a&amp;b") && html.contains("o&#39;brien"));
        assert!(!text.contains("{{") && !html.contains("{{"));
    }

    #[test]
    fn a_template_directory_overrides_and_is_checked() {
        let dir = std::env::temp_dir().join(format!("roster-tpl-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("verify_email.subject"), "Bitte bestätigen\n").unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let (subject, _, _) = t.render(Kind::VerifyEmail, "l", "e", Duration::from_secs(60));
        assert_eq!(subject, "Bitte bestätigen");
        std::fs::write(dir.join("reset_password.txt"), "no link here").unwrap();
        let e = Templates::load(Some(&dir)).unwrap_err();
        assert!(e.contains("reset_password.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_kind_has_its_own_template() {
        let t = Templates::load(None).unwrap();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            let (subject, text, html) = t.render(
                kind,
                "https://l.example/x",
                "a@b.c",
                Duration::from_secs(60),
            );
            assert!(!subject.is_empty() && text.contains("a@b.c") && html.contains("a@b.c"));
            assert_eq!(
                kind.has_link(),
                text.contains("https://l.example/x"),
                "{kind:?}"
            );
            assert!(!text.contains("{{") && !html.contains("{{"), "{kind:?}");
        }
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(Duration::from_secs(7 * 86_400)), "7 days");
    }

    #[test]
    fn credentials_in_clear_to_another_host_are_recognised() {
        let clear = |u: &str| sends_credentials_in_clear(&SmtpUrl(u.into()));
        assert!(clear("smtp://user:pw@mail.example:587"));
        assert!(clear("smtp://user:pw@mail.example:587?tls=opportunistic"));
        assert!(!clear("smtp://user:pw@mail.example:587?tls=required"));
        assert!(!clear("smtps://user:pw@mail.example:465"));
        assert!(!clear("smtp://mail.example:25"));
        assert!(!clear("smtp://user:pw@127.0.0.1:25"));
        assert!(!clear("smtp://user:pw@localhost:25"));
        assert!(!clear("smtp://user:pw@[::1]:25"));
    }

    #[test]
    fn public_url_defaults_to_the_bound_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert_eq!(public_url(None, bound), "http://127.0.0.1:8000");
        let any: std::net::SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(public_url(None, any), "http://localhost:8000");
        assert_eq!(
            public_url(Some("https://a.example/accounts/"), bound),
            "https://a.example/accounts"
        );
    }
}
