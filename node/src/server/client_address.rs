//! Who is on the other end of a request, for the limits that count per client address.
//!
//! The client's address is the TCP peer's, unless that peer is a reverse proxy the
//! operator named in `[node] trusted_proxies`: then it is what the proxy reports, in
//! `X-Forwarded-For` (the rightmost entry that is not itself a trusted proxy: proxies
//! append what they saw, so everything left of the last untrusted hop may be made up by
//! the client) or, without that header, in `Forwarded: for=` (RFC 7239), read the same
//! way. A request straight from anyone else cannot choose its address with a header.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};

use super::AppState;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `192.0.2.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or a network like 10.0.0.0/8"))?;
        let addr = canonical(addr);
        let bits = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {bits}"))?,
        };
        let network = Network { addr, prefix };
        if network.masked(addr) != addr {
            return Err(format!(
                "`{text}` has address bits set past its /{prefix}; write the network, like {}/{prefix}",
                network.masked(addr)
            ));
        }
        Ok(network)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:192.0.2.1`) is that IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// The `[node] trusted_proxies` setting; the error names the entry at fault.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Network::parse(e.as_ref()).map_err(|e| format!("node.trusted_proxies: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address, for a request from TCP peer `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers);
        // From the right: each hop was appended by the proxy to its right, which we trust
        // so far. The first hop that is not a trusted proxy is the client; a hop we cannot
        // read (`unknown`, an obfuscated name) ends the walk at the last proxy we trusted.
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => nearest = *ip,
                Some(ip) => return *ip,
                None => return nearest,
            }
        }
        nearest
    }
}

/// The hops a proxy reports, leftmost first: `X-Forwarded-For` if present, else the `for=`
/// of each `Forwarded` element. `None` for a hop that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff: Vec<String> = values("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    if !xff.is_empty() {
        return xff.iter().map(|hop| node_address(hop)).collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node_address(value))
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not.
fn node_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The client address of a request (see the module's documentation), as an extractor.
/// Needs the server to run with `into_make_service_with_connect_info::<SocketAddr>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => {
                warn_of_untrusted_proxy(&state.proxies, peer.ip(), &parts.headers);
                Ok(ClientAddress(
                    state.proxies.client(peer.ip(), &parts.headers),
                ))
            }
            None => {
                tracing::error!("the server runs without connection info; no client address");
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the client's address is unknown",
                ))
            }
        }
    }
}

/// A reverse proxy on this machine that is not in `trusted_proxies` makes every client
/// behind it one address, which then shares one address's limits: say so, once.
fn warn_of_untrusted_proxy(proxies: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let forwarded = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
    if forwarded
        && canonical(peer).is_loopback()
        && !proxies.trusts(peer)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            %peer,
            "a request from this machine carries X-Forwarded-For or Forwarded, but its \
             address is not in [node] trusted_proxies: every client behind that proxy counts \
             as one address for the per-address limits"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.3.4")));
        assert!(
            ten.contains(ip("::ffff:10.1.2.3")),
            "IPv4 seen through IPv6"
        );
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::a00:1")));
        let one = Network::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        for (bad, says) in [
            ("localhost", "not an IP address"),
            ("10.0.0.0/33", "0 to 32"),
            ("10.0.0.0/x", "0 to 32"),
            ("::1/129", "0 to 128"),
            ("10.0.0.1/8", "like 10.0.0.0/8"),
        ] {
            let err = Network::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let err = TrustedProxies::parse(&["127.0.0.1", "nope"]).unwrap_err();
        assert!(err.starts_with("node.trusted_proxies: `nope`"), "{err}");
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
        ]);
        assert_eq!(
            none.client(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        let local = proxies(&["127.0.0.1"]);
        assert_eq!(
            local.client(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1"),
            "trusting a proxy does not trust everyone"
        );
        assert_eq!(
            none.client(ip("::ffff:198.51.100.1"), &HeaderMap::new()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_reports_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // The client sent its own X-Forwarded-For; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(trusted.client(peer, &h), ip("203.0.113.7"));
        // A chain of trusted proxies is walked through.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(trusted.client(peer, &h), ip("203.0.113.7"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.5"),
        ]);
        assert_eq!(trusted.client(peer, &h), ip("203.0.113.9"));
        // Ports and IPv6.
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:5555")]);
        assert_eq!(trusted.client(peer, &h), ip("2001:db8::7"));
        let h = headers(&[("x-forwarded-for", "2001:db8::8")]);
        assert_eq!(trusted.client(peer, &h), ip("2001:db8::8"));
        // Something that is not an address stops at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage, 10.0.0.9")]);
        assert_eq!(trusted.client(peer, &h), ip("10.0.0.9"));
        // No header: the proxy itself.
        assert_eq!(trusted.client(peer, &HeaderMap::new()), peer);
        // Every hop trusted: the leftmost is as far as we can see.
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(trusted.client(peer, &h), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies(&["127.0.0.1"]);
        let peer = ip("127.0.0.1");
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=127.0.0.1",
        )]);
        assert_eq!(trusted.client(peer, &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "For=192.0.2.60;proto=http")]);
        assert_eq!(trusted.client(peer, &h), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(trusted.client(peer, &h), peer);
        let h = headers(&[("forwarded", "for=\"_hidden\", for=192.0.2.1")]);
        assert_eq!(trusted.client(peer, &h), ip("192.0.2.1"));
        // X-Forwarded-For wins when both are there.
        let h = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ]);
        assert_eq!(trusted.client(peer, &h), ip("192.0.2.2"));
    }
}
