//! The accept loop: HTTP/1.1 connections served by hyper with the timeouts `axum::serve`
//! leaves off, a cap on open connections, and a shutdown that cannot be held open.
//!
//! Why not `axum::serve`: it installs no hyper timer, so a client that sends half a request
//! head (or nothing, on a kept-alive connection) holds its socket forever; it has no
//! connection cap, so such clients exhaust file descriptors; and its graceful shutdown waits
//! for every connection without a deadline, so one stalled client keeps the process alive.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::ratelimit::ClientKey;

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Time to send a request head; also the idle time allowed between keep-alive requests.
    pub header_timeout: Duration,
    /// Open connections at most; the next one is answered 503 and closed.
    pub max_connections: usize,
    /// After shutdown begins, how long in-flight requests may still take.
    pub drain_timeout: Duration,
    /// How long a response write may make no progress before the connection is dropped
    /// (a client that never reads would otherwise hold its connection for ever).
    pub write_timeout: Duration,
    /// Open connections per client address at most; peers inside these ranges (trusted
    /// proxies, which carry many clients) are exempt.
    pub max_connections_per_ip: usize,
    pub exempt: Arc<[ipnet::IpNet]>,
    /// IPv6 peers are counted per `/N` (`--ipv6-prefix`), as every rate limit keys them: a
    /// subscriber's /64 is one client, whichever of its addresses it connects from.
    pub ipv6_prefix: u8,
}

/// Open connections per client (peer address, IPv6 by prefix); an entry is removed when its
/// last connection closes.
#[derive(Default)]
struct PerIp(std::sync::Mutex<std::collections::HashMap<ClientKey, usize>>);

impl PerIp {
    fn try_add(&self, ip: ClientKey, max: usize) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        let n = map.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, ip: ClientKey) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for at most `drain_timeout`, and closes what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true)
        // Hyper's own error answers (400, 431…) are rewritten by `ErrorBodies`; one flat
        // write per response keeps that rewrite simple and reliable.
        .writev(false);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE/ENFILE and aborted handshakes: wait a moment instead of
                    // spinning on a listener that cannot accept right now.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            connections.spawn(refuse(stream, "too many open connections; retry shortly"));
            continue;
        };
        let peer_ip = peer.ip().to_canonical();
        let counted = !settings.exempt.iter().any(|net| net.contains(&peer_ip));
        let client = ClientKey::of(peer_ip, settings.ipv6_prefix);
        if counted && !per_ip.try_add(client, settings.max_connections_per_ip) {
            drop(permit);
            connections.spawn(refuse(
                stream,
                "too many open connections from this address; retry shortly",
            ));
            continue;
        }
        let per_ip = per_ip.clone();
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(unwrap_infallible(router.oneshot(request).await)) }
        });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        let write_timeout = settings.write_timeout;
        connections.spawn(async move {
            let io = TokioIo::new(ErrorBodies::new(stream, write_timeout));
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            if counted {
                per_ip.remove(client);
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(settings.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown deadline passed; closing the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn unwrap_infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// The answer to a connection over the cap: a JSON 503, written with a short deadline so a
/// client that does not read cannot hold even this.
async fn refuse(mut stream: TcpStream, message: &str) {
    let response = http_error(
        503,
        "Service Unavailable",
        crate::error::codes::SERVER_BUSY,
        message,
        Some(1),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
        // Read (and drop) what the client sent, briefly: closing with unread data makes the
        // kernel send a reset, and the client may lose the answer.
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    })
    .await;
}

/// A complete HTTP/1.1 error response with a GraphQL-shaped JSON body, closing the connection.
pub fn http_error(
    status: u16,
    reason: &str,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Vec<u8> {
    let body = super::errors::error_body(code, message).to_string();
    let retry = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The connection's IO, with two jobs hyper does not do:
/// - Hyper answers requests it cannot parse (400), heads that are too large (431) and URIs
///   that are too long (414) itself, with an empty body, before any handler runs. This
///   wrapper recognises those heads on their way out — a 4xx head with `content-length: 0`,
///   which no handler of ours produces — and writes our JSON error instead. Hyper closes the
///   connection after them, so the different length cannot desynchronise anything.
/// - Hyper has no write timeout: a client that stops reading holds its connection (and a
///   connection slot) for ever. A write that makes no progress for `write_timeout` fails.
struct ErrorBodies<S> {
    inner: S,
    /// Our replacement, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
    write_timeout: Duration,
    /// Armed while a write is blocked; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> ErrorBodies<S> {
    fn new(inner: S, write_timeout: Duration) -> Self {
        Self {
            inner,
            pending: None,
            write_timeout,
            stalled: None,
        }
    }

    /// Passes a write's outcome through: progress disarms the stall timer; `Pending` arms it
    /// and becomes an error once no progress was made for `write_timeout`.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.check_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    /// Fails once no progress was made for `write_timeout`.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// If `buf` is one of hyper's bodiless error heads, the response to write instead.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > 512 || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = std::str::from_utf8(rest.get(..3)?).ok()?;
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    if !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (code, reason, message) = match status {
        "400" => (400, "Bad Request", "the request is not valid HTTP"),
        "414" => (414, "URI Too Long", "the request URI is too long"),
        "431" => (
            431,
            "Request Header Fields Too Large",
            "the request headers are too large",
        ),
        "505" => (505, "HTTP Version Not Supported", "use HTTP/1.1"),
        _ => return None,
    };
    Some(http_error(
        code,
        reason,
        crate::error::codes::BAD_REQUEST,
        message,
        None,
    ))
}

impl<S: AsyncWrite + Unpin> ErrorBodies<S> {
    /// Writes what remains of the replacement; `Ready(Ok)` once it is all out.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let polled = match &self.pending {
                None => return Poll::Ready(Ok(())),
                Some((bytes, written)) if *written == bytes.len() => {
                    self.pending = None;
                    return Poll::Ready(Ok(()));
                }
                Some((bytes, written)) => {
                    Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..])
                }
            };
            let n = ready!(self.progress(cx, polled))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, written)) = &mut self.pending {
                *written += n;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ErrorBodies<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            match replacement(buf) {
                Some(ours) => self.pending = Some((ours, 0)),
                None => {
                    let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
                    return self.progress(cx, polled);
                }
            }
        }
        // Hyper's bytes count as written once ours are.
        ready!(self.drive(cx))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft file-descriptor limit to the hard one, and lowers the connection cap to
/// what the limit leaves room for (64 descriptors kept for the database pool, logs and the
/// listener), so a connection flood is answered 503 instead of failing `accept` with EMFILE.
pub fn fit_connections_to_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write only the struct passed by pointer.
        let soft = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return wanted;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        };
        let room = usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(64)
            .max(1);
        if room < wanted {
            tracing::warn!(
                max_connections = room,
                wanted,
                "the file-descriptor limit lowers the connection cap"
            );
            return room;
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::{ClientKey, PerIp};

    /// The connection cap counts a client as the rate limits do: two addresses of one IPv6
    /// /64 are one client (it used to key the full address, so a /64 had 2^64 caps).
    #[test]
    fn the_connection_cap_counts_an_ipv6_64_as_one_client() {
        let per_ip = PerIp::default();
        let a = ClientKey::of("2001:db8:1:2::1".parse().unwrap(), 64);
        let b = ClientKey::of("2001:db8:1:2:ffff::7".parse().unwrap(), 64);
        let other = ClientKey::of("2001:db8:1:3::1".parse().unwrap(), 64);
        assert!(per_ip.try_add(a, 2));
        assert!(per_ip.try_add(b, 2));
        assert!(!per_ip.try_add(a, 2), "the /64 is at its cap");
        assert!(per_ip.try_add(other, 2), "another /64 is another client");
        per_ip.remove(b);
        assert!(per_ip.try_add(a, 2), "a closed connection frees its slot");
    }

    use super::*;

    #[test]
    fn only_hypers_bodiless_error_heads_are_replaced() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let ours = replacement(hyper_431).expect("replaced");
        let text = String::from_utf8(ours).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\"code\":\"BAD_REQUEST\""), "{text}");
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 57\r\n\r\n";
        assert!(replacement(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ok).is_none());
        assert!(replacement(b"{\"errors\":[]}").is_none());
    }
}
