use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address.
///
/// `X-Forwarded-For` is believed only when the TCP peer is inside a configured trusted proxy
/// range, and then read from the right: each trusted proxy appends the address it saw, so the
/// rightmost entry that is not itself a trusted proxy is the first one a trusted party vouches
/// for. Entries to its left were written by the client and can say anything. Entries may
/// carry a port (`198.51.100.7:4711`, `[2001:db8::1]:443`) or brackets, as some proxies write.
pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    // Bytes, not `to_str`: one non-ASCII byte written by the client must not void the whole
    // line (and with it the entry the proxy appended), which would key the client to the proxy.
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .collect();
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            // Garbage where an address should be: stop trusting anything further left.
            return peer_ip;
        };
        if !is_trusted(&ip) {
            return ip;
        }
    }
    peer_ip
}

/// `ip`, `ipv4:port`, `[ipv6]` or `[ipv6]:port`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = entry.parse::<SocketAddr>() {
        sa.ip()
    } else {
        entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| crate::config::parse_ip_net(s).unwrap())
            .collect()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let peer: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let ip = resolve(peer, &headers("198.51.100.1"), &[]);
        assert_eq!(ip, peer.ip());
    }

    #[test]
    fn a_trusted_proxy_is_believed_from_the_right() {
        let peer: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        // The client forged the first entry; the proxy appended the real one.
        let ip = resolve(
            peer,
            &headers("1.2.3.4, 198.51.100.7"),
            &nets(&["10.0.0.2"]),
        );
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn proxies_may_be_ranges_and_entries_may_carry_ports() {
        let peer: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let table = [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::2]", "2001:db8::2"),
            ("203.0.113.1, 198.51.100.8:1, 10.9.9.9", "198.51.100.8"),
            ("198.51.100.9, fd00::5", "198.51.100.9"),
        ];
        for (xff, want) in table {
            assert_eq!(
                resolve(peer, &headers(xff), &trusted),
                want.parse::<IpAddr>().unwrap(),
                "{xff}"
            );
        }
    }

    #[test]
    fn a_client_written_non_ascii_byte_does_not_void_the_proxys_entry() {
        let peer: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        let ip = resolve(peer, &h, &nets(&["10.0.0.2"]));
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_in_the_header_falls_back_to_the_peer() {
        let peer: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let ip = resolve(peer, &headers("not-an-ip"), &nets(&["10.0.0.2"]));
        assert_eq!(ip, peer.ip());
    }
}
