//! Whether a browser's `Origin` is this node's own. A page elsewhere may open a WebSocket
//! to the node, and the browser sends the member's session cookie with it (and in open
//! mode any socket without credentials acts as an admin): such sockets must come from the
//! node's own pages.

/// `scheme://host[:port]` in lowercase, without the scheme's default port, for an `http`
/// or `https` origin or URL (a path is ignored); `None` for anything else (`null`, other
/// schemes, user info, a bad port).
pub fn normalize(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (inside, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{inside}]"), port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.clone(), None),
        },
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
    };
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether `origin` is the node's own: the origin of `public_url` when it is set,
/// otherwise the request's `host` with `http` or `https`.
pub fn is_own(origin: &str, public_url: &str, host: Option<&str>) -> bool {
    let Some(origin) = normalize(origin) else {
        return false;
    };
    if !public_url.is_empty() {
        return normalize(public_url).as_deref() == Some(origin.as_str());
    }
    let Some(host) = host.filter(|h| !h.contains(['/', '@', '?', '#'])) else {
        return false;
    };
    ["http", "https"]
        .iter()
        .any(|scheme| normalize(&format!("{scheme}://{host}")).as_deref() == Some(origin.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize("https://IBIS.example.org:443").as_deref(),
            Some("https://ibis.example.org")
        );
        assert_eq!(
            normalize("http://ibis.example.org:8080/app/").as_deref(),
            Some("http://ibis.example.org:8080")
        );
        assert_eq!(
            normalize("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        assert_eq!(
            normalize("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "null",
            "file://x",
            "https://",
            "https://user@host",
            "http://host:x",
            "http://host:",
            "http://[::1",
            "http://a:b:c",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_nodes_own_origin() {
        // With a public URL, that is the origin, whatever the Host.
        let public = "https://ibis.example.org/";
        assert!(is_own(
            "https://ibis.example.org",
            public,
            Some("evil.example")
        ));
        assert!(!is_own("http://ibis.example.org", public, None));
        assert!(!is_own(
            "http://127.0.0.1:8080",
            public,
            Some("127.0.0.1:8080")
        ));
        // Without one, the request's Host with either scheme.
        assert!(is_own("http://127.0.0.1:8080", "", Some("127.0.0.1:8080")));
        assert!(is_own("https://node.example", "", Some("node.example")));
        assert!(is_own("https://node.example", "", Some("node.example:443")));
        assert!(!is_own(
            "https://node.example:8443",
            "",
            Some("node.example")
        ));
        assert!(!is_own("https://evil.example", "", Some("node.example")));
        assert!(!is_own("https://node.example", "", None));
        assert!(!is_own("null", "", Some("node.example")));
        assert!(!is_own("https://evil.example", "", Some("evil.example/x")));
    }
}
