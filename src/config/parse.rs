//! Reading setting values: durations, rates, addresses, URLs that hold secrets (never
//! quoted back in an error), and the checks `validate` runs on origins and the public URL.

use std::num::NonZeroU32;
use std::time::Duration;

use super::*;

/// A Redis URL. May hold a password, so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// Never fails, like [`parse_smtp_url`]: checked when the client is built, without quoting.
pub(super) fn parse_redis_url(s: &str) -> Result<RedisUrl, std::convert::Infallible> {
    Ok(RedisUrl(s.trim().to_owned()))
}

/// Never fails: clap would quote a refused value, password included, in its error. The
/// scheme is checked by [`Config::validate`], whose message leaves the value out.
pub(super) fn parse_smtp_url(s: &str) -> Result<SmtpUrl, std::convert::Infallible> {
    Ok(SmtpUrl(s.trim().to_owned()))
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128).
pub fn parse_ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected an IP address or CIDR range such as 10.0.0.0/8; got {s:?}"))
}

/// `off` (zero: no grace) or a duration such as `7d`.
pub(super) fn parse_grace(s: &str) -> Result<Duration, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    parse_duration(s).map_err(|e| format!("{e}, or off"))
}

/// Parses `30/5m`, `10/30s`, `100/1h` or `off`.
pub fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(RateLimit::Off);
    }
    let err = || format!("expected N/PERIOD such as 30/5m, or off; got {s:?}");
    let (count, period) = s.split_once('/').ok_or_else(err)?;
    let burst: NonZeroU32 = count.trim().parse().map_err(|_| err())?;
    let period = parse_duration(period).map_err(|_| err())?;
    Ok(RateLimit::PerPeriod { burst, period })
}

/// Parses `90s`, `5m`, `24h`, `14d` (a bare unit means 1 of it): between one second and a
/// year, so the arithmetic cannot wrap and a typo is caught.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let err = || format!("expected a duration such as 90s, 5m, 24h or 14d; got {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| err())?
    };
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    let secs = num
        .checked_mul(unit_secs)
        .filter(|s| (1..=365 * 86_400).contains(s))
        .ok_or_else(err)?;
    Ok(Duration::from_secs(secs))
}

/// A CORS origin is `scheme://host[:port]`: no path, no wildcard. `*` would let any site
/// read answers meant for the user's browser; list the front ends instead.
pub(super) fn check_origin(origin: &str) -> Result<(), String> {
    let o = origin.trim();
    let bad = |why: &str| Err(format!("--cors-origins: {o:?} {why}"));
    if o.contains('*') {
        return bad("is a wildcard; list each allowed origin (e.g. https://app.example.com)");
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return bad("is not an origin of the form scheme://host[:port]");
    };
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
        || axum::http::HeaderValue::from_str(o).is_err()
    {
        return bad("is not an origin of the form http(s)://host[:port] (no path)");
    }
    Ok(())
}

/// `--public-url` is where people open links: `http(s)://host[:port][/path]`, no query,
/// no credentials, nothing a template would expand.
pub(super) fn check_public_url(raw: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "--public-url: {raw:?} is not a URL such as https://accounts.example.com"
        ))
    };
    let Ok(url) = url::Url::parse(raw) else {
        return bad();
    };
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || raw.contains(['{', '}', '"', '<', '>', '\\', ' '])
    {
        return bad();
    }
    Ok(())
}
