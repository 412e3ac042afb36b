use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The client's address.
///
/// `X-Forwarded-For` is believed only when the TCP peer is a configured trusted proxy, and
/// then read from the right: each trusted proxy appends the address it saw, so the rightmost
/// entry that is not itself a trusted proxy is the first one a trusted party vouches for.
/// Entries to its left were written by the client and can say anything.
pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            // Garbage where an address should be: stop trusting anything further left.
            return peer_ip;
        };
        if !trusted.contains(&ip) {
            return ip;
        }
    }
    peer_ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let peer: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let ip = resolve(peer, &headers("198.51.100.1"), &[]);
        assert_eq!(ip, peer.ip());
    }

    #[test]
    fn a_trusted_proxy_is_believed_from_the_right() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let peer = SocketAddr::new(proxy, 4000);
        // The client forged the first entry; the proxy appended the real one.
        let ip = resolve(peer, &headers("1.2.3.4, 198.51.100.7"), &[proxy]);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_in_the_header_falls_back_to_the_peer() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = resolve(SocketAddr::new(proxy, 1), &headers("not-an-ip"), &[proxy]);
        assert_eq!(ip, proxy);
    }
}
